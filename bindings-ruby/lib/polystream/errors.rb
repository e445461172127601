# frozen_string_literal: true

module Polystream
  # The root of every exception polystream raises. Errors that come from the native core carry:
  # - +kind+: the core's stable kind name (+"event_too_large"+, +"provider_error"+, …),
  # - +native_code+: the C ABI's negative return code,
  # - +detail+: a Hash of structured detail (see polystream.h, +polystream_last_error_detail+),
  # - +partial+: what the failing call completed before the error (events or chunk Hashes),
  # - +completion+: the accumulated completion so far, when the decoder accumulates —
  #   so a partial answer is never lost.
  class Error < StandardError
    attr_reader :kind, :native_code, :detail
    attr_accessor :partial, :completion

    def initialize(message = nil, kind: nil, native_code: nil, detail: nil, partial: nil, completion: nil)
      super(message)
      @kind = kind
      @native_code = native_code
      @detail = detail || {}
      @partial = partial || []
      @completion = completion
    end
  end

  # One SSE event or NDJSON line grew past the decoder's maximum event size.
  class EventTooLarge < Error
    def limit = detail["limit"]
  end

  # A frame's payload (or JSON given to an Accumulator) is not the JSON expected.
  class InvalidJSON < Error
    def dialect = detail["dialect"]
    def payload = detail["payload"]
  end

  # The provider reported an error inside the stream.
  class ProviderError < Error
    def error_type = detail["type"]
    def error_code = detail["code"]
    def param = detail["param"]
    def body = detail["body"]
  end

  # The stream ended before the provider's terminator (a truncated response).
  class Incomplete < Error
    def dialect = detail["dialect"]
  end

  # No dialect of that name.
  class UnknownDialect < Error
    def name = detail["name"]
  end

  # The decoder already failed (a decode error or a caught native panic); create a new one.
  class Poisoned < Error; end

  # An argument the native library could not use (invalid UTF-8, wrong handle type, …).
  class InvalidArgument < Error; end

  # A NULL pointer reached the native library (a binding bug, never a stream's fault).
  class NullPointer < InvalidArgument; end

  # Rust panicked inside the native library; the panic was caught at the C boundary and the
  # process goes on. The handle involved refuses further use (Poisoned).
  class NativePanic < Error; end

  # A method was called on a decoder or accumulator after #close.
  class ClosedError < Error; end

  # The server answered with a non-2xx status instead of a stream.
  class HTTPError < Error
    attr_reader :status, :body, :headers

    def initialize(message = nil, status:, body: nil, headers: {})
      super(message, kind: "http_error")
      @status = status
      @body = body
      @headers = headers
    end
  end

  # Every kind the native library reports, mapped to its exception class.
  ERROR_KINDS = {
    "event_too_large" => EventTooLarge,
    "invalid_json" => InvalidJSON,
    "provider_error" => ProviderError,
    "incomplete" => Incomplete,
    "unknown_dialect" => UnknownDialect,
    "poisoned" => Poisoned,
    "invalid_argument" => InvalidArgument,
    "null_pointer" => NullPointer,
    "panic" => NativePanic,
  }.freeze
end
