# frozen_string_literal: true

require "json"
require "net/http"
require "uri"

require_relative "errors"
require_relative "native/library"
require_relative "native/handle"
require_relative "native/sse_decoder"
require_relative "native/chunk_decoder"
require_relative "native/accumulator"

module Polystream
  # The Rust core through its C ABI (rust/capi, loaded with Fiddle): SSE decoding, every provider
  # dialect, and accumulation at native speed. See Native::Library for where the shared library is
  # looked for.
  module Native
    module_function

    # The dialect names ChunkDecoder accepts ("openai_chat", "anthropic", …).
    def dialects
      Library.dialect_names
    end

    # The ABI version of the loaded library.
    def abi_version
      Library.call(:polystream_abi_version)
    end

    # Test hook: makes the library panic on purpose. The panic is caught at the C boundary and
    # comes back as a Polystream::NativePanic; the process goes on.
    def debug_panic!
      Library.debug_panic!
    end

    # POSTs +body+ (a String, or anything JSON.generate takes) to +url+ with +headers+, reads the
    # response body as it arrives and decodes it natively with +dialect+, yielding each chunk Hash
    # (chat.completion.chunk shape) as soon as the network read that completed it. Returns the
    # accumulated chat.completion Hash.
    #
    # Raises HTTPError for a non-2xx status (its typed subclass: RateLimitError, NotFoundError, …),
    # and the decoder's typed errors (ProviderError, Incomplete, InvalidJSON, …) with the
    # completion so far in +error.completion+.
    # Net::HTTP's own errors (timeouts, refused connections) pass through unchanged.
    def stream(url, headers = {}, body = nil, dialect: "openai_chat", open_timeout: 30, read_timeout: 600,
               max_event_size: nil)
      uri = URI(url)
      payload = body.nil? || body.is_a?(String) ? body.to_s : JSON.generate(body)
      ChunkDecoder.open(dialect, accumulate: true, max_event_size: max_event_size) do |decoder|
        Net::HTTP.start(uri.host, uri.port, use_ssl: uri.scheme == "https",
                                            open_timeout: open_timeout, read_timeout: read_timeout) do |http|
          http.request(build_post(uri, headers, payload)) do |response|
            raise http_error(response) unless response.is_a?(Net::HTTPSuccess)

            response.read_body do |bytes|
              chunks = decoder.feed(bytes)
              chunks.each { |chunk| yield chunk } if block_given?
            end
          end
        end
        chunks = decoder.finish
        chunks.each { |chunk| yield chunk } if block_given?
        decoder.snapshot
      end
    end

    def build_post(uri, headers, payload)
      request = Net::HTTP::Post.new(uri)
      request["Content-Type"] = "application/json"
      request["Accept"] = "text/event-stream"
      headers.each { |name, value| request[name.to_s] = value.to_s }
      request.body = payload
      request
    end

    # The typed HTTPError subclass for the status (RateLimitError, NotFoundError, …), raw body kept.
    def http_error(response)
      HTTPError.for_status(Integer(response.code), body: response.body, headers: response.to_hash,
                                                   reason: response.message.to_s.strip)
    end

    private_class_method :build_post, :http_error
  end
end
