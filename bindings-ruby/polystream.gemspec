# frozen_string_literal: true

require_relative "lib/polystream/version"

Gem::Specification.new do |spec|
  spec.name = "polystream"
  spec.version = Polystream::VERSION
  spec.summary = "Fast, correct streaming of LLM output: the polystream Rust core for Ruby"
  spec.description = "Polystream::Client polls the polystream proxy's background responses " \
                     "(net/http; one short request per poll, for single-threaded hosts). " \
                     "Polystream::Native binds polystream's C ABI with Fiddle (WHATWG SSE decoding, " \
                     "provider dialects and accumulation at native speed). Standard library only."
  spec.authors = ["polystream contributors"]
  spec.license = "MIT"
  spec.required_ruby_version = ">= 3.0"
  spec.files = Dir["lib/**/*.rb"] + Dir["examples/*.rb"] + ["polystream.gemspec", "Rakefile", "README.md"]
  spec.require_paths = ["lib"]
  spec.metadata["rubygems_mfa_required"] = "true"
  # The native library is built from rust/capi (`cargo build --release -p polystream-capi`) and
  # found through POLYSTREAM_LIB or the cargo target directory; see lib/polystream/native/library.rb.
end
