# frozen_string_literal: true

require_relative "test_helper"
require "webrick"
require "logger"

# Native.stream against a local WEBrick server that sends SSE in small pieces: chunks are yielded
# as the bytes arrive (the server holds the rest of the stream back until the client has yielded
# the first chunk), and the accumulated completion is returned.
class StreamTest < Minitest::Test
  N = Polystream::Native

  def chunk(text, finish: nil)
    JSON.generate({ "id" => "c1", "object" => "chat.completion.chunk", "created" => 1, "model" => "m",
                    "choices" => [{ "index" => 0, "delta" => { "content" => text }, "finish_reason" => finish }] })
  end

  def setup
    @requests = Queue.new
    @gate = Queue.new
    @server = WEBrick::HTTPServer.new(BindAddress: "127.0.0.1", Port: 0, Logger: Logger.new(nil), AccessLog: [])
    @server.mount_proc("/v1/chat/completions") { |req, res| serve(req, res) }
    @server.mount_proc("/error") do |_req, res|
      res.status = 429
      res["Content-Type"] = "application/json"
      res.body = '{"error":{"message":"slow down"}}'
    end
    @thread = Thread.new { @server.start }
    @base = "http://127.0.0.1:#{@server.config[:Port]}"
  end

  def teardown
    @server.shutdown
    @thread.join(10)
  end

  def serve(req, res)
    @requests << { body: req.body, auth: req["Authorization"], accept: req["Accept"] }
    truncated = req.query_string.to_s.include?("truncate")
    first = "data: #{chunk('Hel')}\n\n"
    rest = "data: #{chunk('lo, ')}\n\n: keep-alive\n\ndata: #{chunk('world')}\r\n\r\n"
    # A truncated stream stops before the finish reason and [DONE] (either proves it whole).
    rest += "data: #{chunk('', finish: 'stop')}\n\ndata: [DONE]\n\n" unless truncated
    res.status = 200
    res["Content-Type"] = "text/event-stream"
    res.chunked = true
    res.body = proc do |out|
      first.bytes.each_slice(5) { |piece| out.write(piece.pack("C*")) }
      # Hold the rest back until the client has yielded the first chunk (or give up after 10 s,
      # which the test then reports as "not incremental").
      @released = begin
        Timeout.timeout(10) { @gate.pop }
        true
      rescue Timeout::Error
        false
      end
      rest.bytes.each_slice(7) { |piece| out.write(piece.pack("C*")) }
    end
  end

  def test_stream_yields_chunks_as_they_arrive_and_returns_the_completion
    texts = []
    completion = N.stream("#{@base}/v1/chat/completions", { "Authorization" => "Bearer k" },
                          { "model" => "m", "stream" => true }) do |c|
      texts << c["choices"][0]["delta"]["content"]
      @gate << :go if texts.size == 1
    end
    assert @released, "the first chunk was not yielded before the rest of the body was sent"
    assert_equal ["Hel", "lo, ", "world", ""], texts
    assert_equal "Hello, world", completion["choices"][0]["message"]["content"]
    assert_equal "stop", completion["choices"][0]["finish_reason"]
    req = @requests.pop
    assert_equal({ "model" => "m", "stream" => true }, JSON.parse(req[:body]))
    assert_equal "Bearer k", req[:auth]
    assert_equal "text/event-stream", req[:accept]
  end

  def test_a_truncated_stream_raises_incomplete_with_the_partial_completion
    error = assert_raises(Polystream::Incomplete) do
      N.stream("#{@base}/v1/chat/completions?truncate=1", {}, "{}") { |_c| @gate << :go }
    end
    assert_equal "Hello, world", error.completion["choices"][0]["message"]["content"]
  end

  def test_a_non_2xx_status_raises_http_error_with_the_body
    error = assert_raises(Polystream::HTTPError) { N.stream("#{@base}/error", {}, "{}") }
    assert_equal 429, error.status
    assert_match(/slow down/, error.body)
    assert_kind_of Polystream::Error, error
  end
end
