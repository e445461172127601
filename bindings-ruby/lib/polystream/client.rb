# frozen_string_literal: true

require "json"
require "net/http"
require "uri"
require "zlib"

require_relative "version"
require_relative "errors"
require_relative "poll_result"

module Polystream
  # An HTTP client for the polystream proxy's background responses (/v1/responses), made for hosts
  # that cannot hold a stream open: a single-threaded web server starts a response, then advances
  # it with #poll — one short request returning only what is new — between its own requests.
  #
  #   client = Polystream::Client.new(base_url: "http://127.0.0.1:4000", api_key: ENV["POLYSTREAM_KEY"])
  #   id = client.create(model: "gpt-4o-mini", input: "Write a haiku")["id"]
  #   cursor = 0
  #   # … later, between other work:
  #   result = client.poll(id, cursor)   # => PollResult(text: "new text", status:, cursor:, done:)
  #   cursor = result.cursor
  #
  # Every request has timeouts (open 2 s, read 5 s by default), so a poll never holds the host for
  # long. One keep-alive connection is reused per client (requests from several threads take
  # turns on it); after any network error it is dropped and the next request reconnects.
  #
  # Errors: HTTPError subclasses for an HTTP status (AuthenticationError, NotFoundError,
  # RateLimitError, ServerError, …, carrying +status+ and the OpenAI-shaped +body+),
  # ConnectionError when no answer came, TimeoutError (a ConnectionError) when it came too late.
  # The api key never appears in messages or in #inspect.
  class Client
    TERMINAL = %w[completed failed incomplete cancelled].freeze

    DEFAULT_OPEN_TIMEOUT = 2
    DEFAULT_READ_TIMEOUT = 5
    DEFAULT_KEEP_ALIVE_TIMEOUT = 2

    # Failures that leave no usable HTTP answer (Net::HTTP's own plus the socket's).
    NETWORK_ERRORS = [IOError, EOFError, SocketError, SystemCallError, Net::HTTPBadResponse,
                      Net::ProtocolError, Zlib::Error,
                      (OpenSSL::SSL::SSLError if defined?(OpenSSL::SSL))].compact.freeze
    TIMEOUT_ERRORS = [Net::OpenTimeout, Net::ReadTimeout, Net::WriteTimeout].freeze
    # What a reused keep-alive connection the server has just closed looks like (safe to retry
    # an idempotent request once, on a fresh connection).
    STALE_ERRORS = [EOFError, Errno::ECONNRESET, Errno::EPIPE, Errno::ECONNABORTED].freeze
    private_constant :NETWORK_ERRORS, :TIMEOUT_ERRORS, :STALE_ERRORS

    attr_reader :base_url, :open_timeout, :read_timeout, :write_timeout

    # +base_url+: the proxy, e.g. "http://127.0.0.1:4000" (a trailing "/v1" is accepted too).
    # +api_key+: a key the proxy knows (master or virtual key); responses belong to it.
    # Timeouts in seconds: +open_timeout+ to connect, +read_timeout+ for each read of the answer,
    # +write_timeout+ for sending (default: read_timeout). +keep_alive_timeout+: how long an idle
    # connection is reused (0: a new connection per request). +headers+: sent with every request.
    def initialize(base_url:, api_key:, open_timeout: DEFAULT_OPEN_TIMEOUT, read_timeout: DEFAULT_READ_TIMEOUT,
                   write_timeout: nil, keep_alive_timeout: DEFAULT_KEEP_ALIVE_TIMEOUT, headers: {})
      raise ArgumentError, "api_key must be a non-empty String" unless api_key.is_a?(String) && !api_key.empty?

      @uri = URI(base_url.to_s)
      unless @uri.is_a?(URI::HTTP) && @uri.host
        raise ArgumentError, "base_url must be an http(s) URL, not #{base_url.to_s.sub(/\/\/[^@\/]*@/, '//')}"
      end

      @prefix = @uri.path.to_s.sub(%r{/+\z}, "").sub(%r{/v1\z}, "")
      @base_url = "#{@uri.scheme}://#{@uri.host}:#{@uri.port}#{@prefix}".freeze # no userinfo
      @api_key = api_key.dup.freeze
      @open_timeout = open_timeout
      @read_timeout = read_timeout
      @write_timeout = write_timeout || read_timeout
      @keep_alive_timeout = keep_alive_timeout
      @headers = {
        "Accept" => "application/json",
        "User-Agent" => "polystream-ruby/#{VERSION} (Ruby #{RUBY_VERSION})",
      }.merge(headers.to_h { |k, v| [k.to_s, v.to_s] }).freeze
      @lock = Mutex.new
      @http = nil
      @pid = Process.pid
    end

    # POST /v1/responses. Returns the Response Hash: at once with status "queued" when
    # +background+ (the default); the final Response otherwise (the proxy answers only when it
    # is complete, so give such a client a read_timeout long enough). +params+ go into the body
    # as is (instructions:, max_output_tokens:, metadata:, temperature:, …).
    def create(model:, input:, background: true, **params)
      if params[:stream] || params["stream"]
        raise ArgumentError, "stream: true is not supported by Polystream::Client; use #poll or #each_delta"
      end

      body = { "model" => model, "input" => input, "background" => background }
      params.each { |k, v| body[k.to_s] = v }
      request(:post, "/v1/responses", body: body, idempotent: false)
    end

    # GET /v1/responses/{id}: the Response Hash as it stands (its text so far, status, usage…).
    def retrieve(id)
      request(:get, "/v1/responses/#{escape(id)}")
    end

    # GET /v1/responses/{id}/poll?cursor=N: one short request; only what is new after +cursor+
    # (start at 0, then pass back result.cursor). Returns a PollResult.
    def poll(id, cursor = 0)
      cursor = Integer(cursor)
      raise ArgumentError, "cursor must be >= 0" if cursor.negative?

      path = "/v1/responses/#{escape(id)}/poll?cursor=#{cursor}"
      data = request(:get, path)
      begin
        PollResult.from_json(data)
      rescue KeyError, TypeError, ArgumentError
        raise HTTPError.new("GET #{path}: 200 but not a poll result (is #{@base_url} a polystream proxy?)",
                            status: 200, body: data)
      end
    end

    # For scripts: polls every +interval+ seconds until the response is terminal, yielding each
    # text delta (non-empty Strings) as it arrives, and returns the final Response Hash (check its
    # "status": "completed", or "failed"/"incomplete"/"cancelled" with "error"/"incomplete_details").
    # Raises TimeoutError when it is not terminal within +timeout+ seconds (the response goes on
    # in the proxy; cancel it if it is no longer wanted). Without a block, an Enumerator.
    def each_delta(id, interval: 0.25, timeout: 600, cursor: 0)
      return enum_for(:each_delta, id, interval: interval, timeout: timeout, cursor: cursor) unless block_given?

      deadline = now + timeout
      loop do
        result = poll(id, cursor)
        cursor = result.cursor
        yield result.text unless result.text.empty?
        return result.response || retrieve(id) if result.done?

        remaining = deadline - now
        if remaining <= 0
          raise TimeoutError, "response #{id} was still #{result.status} after #{timeout} s " \
                              "(each_delta timeout); it goes on in the proxy until cancelled"
        end
        sleep([interval, remaining].min)
      end
    end

    # POST /v1/responses/{id}/cancel: stops the response (idempotent). Returns the Response Hash.
    def cancel(id)
      request(:post, "/v1/responses/#{escape(id)}/cancel", idempotent: true)
    end

    # DELETE /v1/responses/{id}: {"id", "object" => "response.deleted", "deleted" => true}.
    def delete(id)
      request(:delete, "/v1/responses/#{escape(id)}")
    end

    # The text of a Response Hash (OpenAI's +output_text+): every output_text part, joined.
    def self.output_text(response)
      Array(response && response["output"]).flat_map do |item|
        next [] unless item.is_a?(Hash) && item["type"] == "message"

        Array(item["content"]).filter_map { |part| part["text"] if part.is_a?(Hash) && part["type"] == "output_text" }
      end.join
    end

    # Closes the kept-alive connection (the next request opens a new one).
    def close
      @lock.synchronize { drop_connection }
      nil
    end

    def inspect
      "#<#{self.class} #{@base_url} open_timeout=#{@open_timeout} read_timeout=#{@read_timeout}>"
    end
    alias to_s inspect

    def pretty_print(printer)
      printer.text(inspect)
    end

    private

    METHODS = { get: Net::HTTP::Get, post: Net::HTTP::Post, delete: Net::HTTP::Delete }.freeze
    private_constant :METHODS

    def request(method, path, body: nil, idempotent: method != :post)
      req = METHODS.fetch(method).new(@prefix + path)
      @headers.each { |k, v| req[k] = v }
      req["Authorization"] = "Bearer #{@api_key}"
      if body || method == :post
        req["Content-Type"] = "application/json"
        req.body = body ? JSON.generate(body) : "" # Content-Length: 0 for a bodiless POST
      end
      response = @lock.synchronize { perform(req, method, path, idempotent) }
      parse(response, method, path)
    end

    def perform(req, method, path, idempotent)
      retried = false
      begin
        http, reused = connection
        http.request(req)
      rescue *TIMEOUT_ERRORS => e
        drop_connection
        raise TimeoutError, timeout_message(e, method, path)
      rescue *NETWORK_ERRORS => e
        drop_connection
        if reused && idempotent && !retried && STALE_ERRORS.any? { |k| e.is_a?(k) }
          retried = true
          retry
        end
        raise ConnectionError, "#{verb(method)} #{@base_url}#{path} failed: #{describe(e)}"
      rescue Exception # rubocop:disable Lint/RescueException
        # Interrupt (or a caller's Timeout) mid-request: the connection's state is unknown.
        drop_connection
        raise
      end
    end

    # The kept-alive Net::HTTP (started), and whether it served a request before.
    def connection
      if @pid != Process.pid # forked: the parent's socket is not ours to use (or to close)
        @http = nil
        @pid = Process.pid
      end
      if @http&.started?
        return [@http, true] if @keep_alive_timeout&.positive?

        drop_connection
      end
      http = Net::HTTP.new(@uri.hostname, @uri.port)
      http.use_ssl = @uri.scheme == "https"
      http.open_timeout = @open_timeout
      http.read_timeout = @read_timeout
      http.write_timeout = @write_timeout
      http.keep_alive_timeout = @keep_alive_timeout if @keep_alive_timeout&.positive?
      http.max_retries = 0 # a timed-out poll must not silently take twice as long
      http.start
      @http = http
      [http, false]
    end

    def drop_connection
      http = @http
      @http = nil
      http.finish if http&.started?
    rescue IOError, SystemCallError
      nil
    end

    def parse(response, method, path)
      status = Integer(response.code)
      raw = response.body.to_s
      data = parse_json(raw)
      if status.between?(200, 299)
        return data if data.is_a?(Hash)

        raise HTTPError.new("#{verb(method)} #{path}: #{status} but the body is not a JSON object",
                            status: status, body: raw, headers: response.to_hash)
      end
      error = HTTPError.for_status(status, body: data.is_a?(Hash) ? data : raw, headers: response.to_hash,
                                           reason: response.message.to_s.strip)
      raise error.exception(redact(error.message))
    end

    def parse_json(raw)
      raw.empty? ? nil : JSON.parse(raw)
    rescue JSON::ParserError
      nil
    end

    def escape(id)
      id = id.to_s
      raise ArgumentError, "a response id is required" if id.empty?

      id.b.gsub(/[^A-Za-z0-9_.~-]/) { |c| format("%%%02X", c.ord) }
    end

    def timeout_message(error, method, path)
      which, seconds = case error
                       when Net::OpenTimeout then ["open_timeout", @open_timeout]
                       when Net::WriteTimeout then ["write_timeout", @write_timeout]
                       else ["read_timeout", @read_timeout]
                       end
      "#{verb(method)} #{@base_url}#{path}: no answer within #{seconds} s (#{which})"
    end

    def describe(error)
      case error
      when Errno::ECONNREFUSED then return "connection refused (is the proxy running at #{@base_url}?)"
      when EOFError then return "the server closed the connection without a complete answer"
      end
      text = error.message.to_s
      text = error.class.name if text.empty? || text == error.class.name
      redact(text.sub(/\AFailed to open TCP connection to \S+ \((.*)\)\z/m, '\1'))
    end

    def redact(text)
      text.to_s.gsub(@api_key, "[REDACTED]")
    end

    def verb(method)
      method.to_s.upcase
    end

    def now
      Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end
  end
end
