#!/usr/bin/env ruby
# frozen_string_literal: true

# A single-threaded Ruby HTTP service that keeps answering its own requests while background
# responses from the polystream proxy are polled to completion *between* those requests.
#
# One thread, one loop (no Thread.new anywhere):
#
#   loop:
#     IO.select(listening socket + open connections, timeout: until the next poll is due)
#     read whatever arrived (non-blocking); a connection whose request is complete is served
#     advance at most ONE background job by ONE short poll (Polystream::Client#poll)
#
# A poll is one small request that returns only what is new, so the worst a request of ours waits
# is one poll (a few ms; at most the client's read_timeout if the proxy hangs). WEBrick (shipped
# with Ruby 3.1) parses requests and routes them (mount_proc), but its own accept loop, which
# starts a thread per connection, is not used: requests are read here, without blocking, and
# handed to WEBrick only once complete.
#
#   polystream serve                       # the proxy; its embedded default needs no key
#   ruby -Ilib examples/single_threaded_service.rb --port 9292
#   curl -s -XPOST localhost:9292/jobs -d '{"input": "Tell me about background mode"}'
#   curl -s localhost:9292/jobs/<id>       # the text so far, status, polls made
#   curl -s localhost:9292/ping            # answers at once, whatever the jobs are doing
#   curl -s localhost:9292/stats           # threads (always 1, max_threads too), polls, slowest poll
#
# Options (or environment): --proxy (POLYSTREAM_URL, default http://127.0.0.1:4000),
# --api-key (POLYSTREAM_API_KEY), --model (POLYSTREAM_MODEL, default polystream-mock),
# --port (PORT, default 9292; 0 picks one), --poll-interval (default 0.1 s).

require "json"
require "optparse"
require "socket"
require "stringio"
require "webrick"

$LOAD_PATH.unshift(File.expand_path("../lib", __dir__))
require "polystream"

module Example
  def self.now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

  # The background responses this service follows. Each is advanced by single short polls; the
  # loop asks how long until the next one is due, and calls #advance when it is.
  class Jobs
    Job = Struct.new(:id, :status, :text, :cursor, :polls, :due, :done, :error, :started, :finished,
                     keyword_init: true) do
      def to_h
        { id: id, status: status, text: text, cursor: cursor, polls: polls, done: done, error: error,
          seconds: ((finished || Example.now) - started).round(3) }
      end
    end

    attr_reader :polls, :slowest_poll

    def initialize(client, interval:)
      @client = client
      @interval = interval
      @jobs = {}
      @polls = 0
      @slowest_poll = 0.0
    end

    # Starts a background response: one short request (the proxy answers "queued" at once).
    def start(model:, input:)
      response = @client.create(model: model, input: input, background: true)
      job = Job.new(id: response["id"], status: response["status"], text: +"", cursor: 0, polls: 0,
                    due: Example.now, done: false, started: Example.now)
      @jobs[job.id] = job
    end

    def [](id) = @jobs[id]
    def size = @jobs.size

    # Seconds until a poll is due (0: now), or nil when no job is running.
    def due_in
      due = @jobs.each_value.reject(&:done).map(&:due).min
      due && [due - Example.now, 0.0].max
    end

    # One poll of the most overdue job, if one is due. Returns true if it polled.
    def advance
      job = @jobs.each_value.reject(&:done).min_by(&:due)
      return false unless job && job.due <= Example.now

      poll(job)
      true
    end

    private

    def poll(job)
      t0 = Example.now
      @polls += 1
      job.polls += 1
      result = @client.poll(job.id, job.cursor)
      job.text << result.text
      job.cursor = result.cursor
      job.status = result.status
      job.error = nil
      job.due = Example.now + @interval
      finish(job) if result.done?
    rescue Polystream::NotFoundError => e # deleted, expired, or another key's
      job.status = "lost"
      job.error = e.message
      finish(job)
    rescue Polystream::RateLimitError, Polystream::ServerError, Polystream::ConnectionError => e
      job.error = e.message # transient: try again later, backing off
      job.due = Example.now + [e.respond_to?(:retry_after) && e.retry_after || 0, @interval * 5].max
    rescue Polystream::Error => e # the key was revoked, …: give up on this job, not on the service
      job.status = "error"
      job.error = e.message
      finish(job)
    ensure
      took = Example.now - t0
      @slowest_poll = took if took > @slowest_poll
    end

    def finish(job)
      job.done = true
      job.finished = Example.now
      $stdout.puts "job #{job.id} #{job.status} after #{job.polls} polls (#{job.text.bytesize} bytes of text)"
    end
  end

  # The event loop: a WEBrick::HTTPServer for parsing and routing, driven by IO.select.
  class Service
    MAX_REQUEST = 1 << 20
    IDLE_LIMIT = 10 # seconds a connection may take to send its request

    Conn = Struct.new(:sock, :buf, :since)

    attr_reader :port

    def initialize(jobs, host: "127.0.0.1", port: 9292, model: "polystream-mock")
      @jobs = jobs
      @model = model
      @http = WEBrick::HTTPServer.new(BindAddress: host, Port: port, AccessLog: [], DoNotReverseLookup: true,
                                      Logger: WEBrick::Log.new($stderr, WEBrick::Log::WARN),
                                      RequestTimeout: 0) # 0: WEBrick starts no timeout thread
      @port = @http.config[:Port]
      @conns = {}
      @wake_r, @wake_w = IO.pipe
      @stopping = false
      @max_threads = 1
      mount_routes
    end

    # Runs until #stop (or SIGINT/SIGTERM when +signals+). Single thread throughout.
    def run(signals: true)
      %w[INT TERM].each { |sig| trap(sig) { stop } } if signals
      until @stopping
        begin
          turn
        rescue StandardError => e # a bug in a handler must not stop the service
          $stderr.puts "#{e.class}: #{e.message}"
        end
      end
    ensure
      @conns.each_key(&:close)
      @http.listeners.each(&:close)
    end

    # Safe from a trap handler: wakes the loop through a pipe.
    def stop
      @stopping = true
      @wake_w.write_nonblock(".", exception: false)
    end

    private

    def turn
      @max_threads = [@max_threads, Thread.list.size].max # 1, always: see /stats
      timeout = @jobs.due_in
      idle_check = @conns.empty? ? nil : 1.0
      timeout = [timeout, idle_check].compact.min
      readable, = IO.select([@wake_r, *@http.listeners, *@conns.keys], nil, nil, timeout)
      (readable || []).each do |io|
        if io == @wake_r then io.read_nonblock(64, exception: false)
        elsif @http.listeners.include?(io) then accept(io)
        else receive(@conns[io])
        end
      end
      drop_idle
      @jobs.advance # at most one poll per turn: requests get served in between
    end

    def accept(listener)
      sock = listener.accept_nonblock(exception: false)
      @conns[sock] = Conn.new(sock, +"", Example.now) unless sock == :wait_readable
    end

    # Reads what arrived; serves the request once all of it (head and body) is here.
    def receive(conn)
      data = conn.sock.read_nonblock(65_536, exception: false)
      return if data == :wait_readable
      return close(conn) if data.nil? || conn.buf.bytesize + data.bytesize > MAX_REQUEST

      conn.buf << data
      head_end = conn.buf.index("\r\n\r\n")
      return unless head_end

      length = conn.buf[0, head_end][/^content-length:\s*(\d+)/i, 1].to_i
      return if conn.buf.bytesize < head_end + 4 + length

      respond(conn)
    end

    def respond(conn)
      req = WEBrick::HTTPRequest.new(@http.config)
      res = WEBrick::HTTPResponse.new(@http.config)
      begin
        req.parse(StringIO.new(conn.buf))
        res.request_method = req.request_method
        res.request_uri = req.request_uri
        res.request_http_version = req.http_version
        @http.service(req, res)
      rescue WEBrick::HTTPStatus::Status => e
        res.set_error(e)
      rescue StandardError => e
        $stderr.puts "#{e.class}: #{e.message}"
        res.set_error(e, true)
      end
      res.keep_alive = false # one request per connection keeps the loop simple
      res.send_response(conn.sock)
    ensure
      close(conn)
    end

    def close(conn)
      @conns.delete(conn.sock)
      conn.sock.close unless conn.sock.closed?
    end

    def drop_idle
      limit = Example.now - IDLE_LIMIT
      @conns.each_value.select { |c| c.since < limit }.each { |c| close(c) }
    end

    def mount_routes
      @http.mount_proc("/ping") { |_req, res| text(res, "pong\n") }
      @http.mount_proc("/stats") do |_req, res|
        json(res, 200, threads: Thread.list.size, max_threads: @max_threads, jobs: @jobs.size,
                       polls: @jobs.polls, slowest_poll_ms: (@jobs.slowest_poll * 1000).round(2))
      end
      @http.mount_proc("/jobs") { |req, res| jobs_route(req, res) }
    end

    def jobs_route(req, res)
      id = req.path.sub(%r{\A/jobs/?}, "")
      if req.request_method == "POST" && id.empty?
        params = req.body.to_s.empty? ? {} : JSON.parse(req.body)
        job = @jobs.start(model: params["model"] || @model, input: params["input"] || "Hello!")
        json(res, 202, job.to_h)
      elsif req.request_method == "GET" && (job = @jobs[id])
        json(res, 200, job.to_h)
      else
        json(res, 404, error: "no such job")
      end
    rescue JSON::ParserError
      json(res, 400, error: "the body must be JSON: {\"input\": \"…\"}")
    rescue Polystream::Error => e # the proxy refused the create (bad key, unknown model, down…)
      json(res, 502, error: e.message)
    end

    def text(res, body)
      res.status = 200
      res["Content-Type"] = "text/plain"
      res.body = body
    end

    def json(res, status, value)
      res.status = status
      res["Content-Type"] = "application/json"
      res.body = JSON.generate(value)
    end
  end
end

if $PROGRAM_NAME == __FILE__
  options = {
    proxy: ENV.fetch("POLYSTREAM_URL", "http://127.0.0.1:4000"),
    api_key: ENV.fetch("POLYSTREAM_API_KEY", "sk-polystream-example"), # any key works on an open proxy
    model: ENV.fetch("POLYSTREAM_MODEL", "polystream-mock"),
    port: Integer(ENV.fetch("PORT", 9292)),
    interval: 0.1,
  }
  OptionParser.new do |o|
    o.on("--proxy URL") { |v| options[:proxy] = v }
    o.on("--api-key KEY") { |v| options[:api_key] = v }
    o.on("--model NAME") { |v| options[:model] = v }
    o.on("--port N", Integer) { |v| options[:port] = v }
    o.on("--poll-interval SECONDS", Float) { |v| options[:interval] = v }
  end.parse!

  # Short timeouts: a poll must never hold this thread (and every request waiting on it) for long.
  client = Polystream::Client.new(base_url: options[:proxy], api_key: options[:api_key],
                                  open_timeout: 0.5, read_timeout: 2)
  service = Example::Service.new(Example::Jobs.new(client, interval: options[:interval]),
                                 port: options[:port], model: options[:model])
  $stdout.sync = true
  puts "listening on http://127.0.0.1:#{service.port} (proxy #{options[:proxy]}, one thread)"
  service.run
end
