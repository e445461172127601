# frozen_string_literal: true

require "json"
require "time"

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

  # The binary framing is corrupt (an eventstream CRC mismatch, an impossible length, a malformed
  # header): the bytes are not the stream they claim to be.
  class InvalidFrame < Error
    def framing = detail["framing"]
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

  # The server answered with a status the caller cannot use (non-2xx), or with a body that is not
  # the JSON it should be. The subclasses below say which; anything else is a plain HTTPError.
  # - +status+: the HTTP status (Integer),
  # - +body+: the parsed JSON body (OpenAI shape: +{"error" => {"message", "type", "param", "code"}}+)
  #   when it is JSON, else the raw String,
  # - +headers+: the response headers (+{"name" => [values]}+, lower-case names),
  # - +error+: the +"error"+ object of the body (a Hash, empty when there is none), with
  #   +error_type+, +error_code+ and +param+ as shortcuts,
  # - +retry_after+: seconds the server asked to wait (Retry-After), or nil.
  class HTTPError < Error
    attr_reader :status, :body, :headers

    def initialize(message = nil, status:, body: nil, headers: {}, kind: "http_error")
      super(message, kind: kind)
      @status = status
      @body = body
      @headers = headers || {}
    end

    def error
      @error ||= begin
        parsed = body.is_a?(String) ? JSON.parse(body) : body
        parsed.is_a?(Hash) && parsed["error"].is_a?(Hash) ? parsed["error"] : {}
      rescue JSON::ParserError
        {}
      end
    end

    def error_type = error["type"]
    def error_code = error["code"]
    def param = error["param"]

    def retry_after
      value = Array(headers["retry-after"]).first
      return nil if value.nil? || value.strip.empty?
      return [Float(value), 0.0].max if value.strip.match?(/\A\d+(\.\d+)?\z/)

      [Time.httpdate(value) - Time.now, 0.0].max
    rescue ArgumentError
      nil
    end

    # The exception class for an HTTP status: BadRequestError, AuthenticationError, … or HTTPError.
    def self.class_for(status)
      case status
      when 400, 409, 413, 422 then BadRequestError
      when 401 then AuthenticationError
      when 403 then PermissionDeniedError
      when 404 then NotFoundError
      when 429 then RateLimitError
      when 500..599 then ServerError
      else HTTPError
      end
    end

    # The typed error for +status+; +message+ defaults to "404 Not Found: <the body's message>".
    def self.for_status(status, body: nil, headers: {}, reason: nil, message: nil)
      klass = class_for(status)
      error = klass.new("", status: status, body: body, headers: headers)
      detail = error.error["message"]
      detail = body.strip[0, 200] if detail.nil? && body.is_a?(String) && !body.strip.empty?
      head = [status, reason].compact.join(" ")
      text = message || [head, detail].compact.reject { |s| s.to_s.empty? }.join(": ")
      code = error.error_code
      text += " (#{code})" if message.nil? && code.is_a?(String) && !code.empty? && !text.include?(code)
      klass.new(text, status: status, body: body, headers: headers)
    end
  end

  # 400 (also 409, 413, 422): the request itself is wrong (unknown parameter, body too large, …).
  class BadRequestError < HTTPError; end

  # 401: the api key is missing or not one the proxy knows.
  class AuthenticationError < HTTPError; end

  # 403: the key is valid but may not do this (a model it is not allowed to use).
  class PermissionDeniedError < HTTPError; end

  # 404: no such response — or it belongs to another key (indistinguishable on purpose), or
  # no such model.
  class NotFoundError < HTTPError; end

  # 429: slow down; +retry_after+ says for how long when the server said so.
  class RateLimitError < HTTPError; end

  # 5xx: the proxy (or its store, or the provider behind it) failed; 503s carry +retry_after+.
  class ServerError < HTTPError; end

  # No HTTP answer at all: connection refused or reset, DNS failure, the connection closed
  # before a complete response. +cause+ is the underlying Ruby exception.
  class ConnectionError < Error
    def initialize(message = nil, kind: "connection_error")
      super(message, kind: kind)
    end
  end

  # No answer in time: Client's open/read/write timeouts, and each_delta's overall +timeout:+.
  # A kind of ConnectionError (as in the openai SDKs), so one rescue covers "no answer".
  class TimeoutError < ConnectionError
    def initialize(message = nil, kind: "timeout")
      super(message, kind: kind)
    end
  end

  # Every kind the native library reports, mapped to its exception class.
  ERROR_KINDS = {
    "event_too_large" => EventTooLarge,
    "invalid_json" => InvalidJSON,
    "invalid_frame" => InvalidFrame,
    "provider_error" => ProviderError,
    "incomplete" => Incomplete,
    "unknown_dialect" => UnknownDialect,
    "poisoned" => Poisoned,
    "invalid_argument" => InvalidArgument,
    "null_pointer" => NullPointer,
    "panic" => NativePanic,
  }.freeze
end
