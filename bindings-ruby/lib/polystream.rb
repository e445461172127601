# frozen_string_literal: true

# polystream for Ruby: standard library only.
#
# - Polystream::Native — the Rust core through its C ABI (Fiddle): SSE decoding, provider
#   dialects and accumulation at native speed, plus Native.stream over Net::HTTP.
# - Polystream::Client — the HTTP polling client for the polystream proxy's background responses
#   (net/http + json); it needs no native library.
#
# Each part loads on first use, so code that only needs one never loads the other (the native
# library in particular is opened only when Polystream::Native is first touched).
require_relative "polystream/version"
require_relative "polystream/errors"

module Polystream
  autoload :Native, File.expand_path("polystream/native", __dir__)
  autoload :Client, File.expand_path("polystream/client", __dir__)
  autoload :PollResult, File.expand_path("polystream/poll_result", __dir__)
end
