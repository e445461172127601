# frozen_string_literal: true

require_relative "test_helper"
require_relative "proxy_harness"
require_relative "stub_server"
require "pp"

# Polystream::Client against the real proxy (`polystream serve`, Redis store, replay upstream).
class ClientProxyTest < Minitest::Test
  H = ProxyHarness
  TEXT = ProxyHarness::TEXT

  def setup
    @harness = ProxyHarness.instance
    @a = client(H::KEY_A)
    @b = client(H::KEY_B)
  end

  def teardown
    [@a, @b].compact.each(&:close)
  end

  def client(key, url: @harness.url, **opts)
    Polystream::Client.new(base_url: url, api_key: key, **opts)
  end

  def now = ProxyHarness.now

  def test_create_then_poll_until_completed_with_the_upstreams_text
    created = @a.create(model: H::MODEL, input: "Tell me something")
    assert_match(/\Aresp_/, created["id"])
    assert_equal true, created["background"]
    assert_includes %w[queued in_progress], created["status"]

    statuses = []
    response = nil
    deadline = now + 15
    loop do
      response = @a.retrieve(created["id"])
      statuses << response["status"]
      break if Polystream::Client::TERMINAL.include?(response["status"])

      flunk "not completed in 15 s: #{statuses.uniq}" if now > deadline
      sleep 0.05
    end
    assert_equal "completed", response["status"]
    assert_equal TEXT, Polystream::Client.output_text(response)
    assert_includes statuses, "in_progress"
  end

  def test_incremental_polls_return_only_what_is_new_and_concatenate_to_the_text
    id = @a.create(model: H::MODEL, input: "hi")["id"]
    cursor = 0
    deltas = []
    sequence = []
    polls = 0
    deadline = now + 15
    loop do
      result = @a.poll(id, cursor)
      polls += 1
      assert_kind_of Polystream::PollResult, result
      assert_equal id, result.id
      assert_operator result.cursor, :>=, cursor
      sequence.concat(result.events.map { |e| e["sequence_number"] })
      deltas << result.text unless result.text.empty?
      cursor = result.cursor
      break if result.done?

      flunk "not done in 15 s" if now > deadline
      sleep 0.03
    end
    assert_equal TEXT, deltas.join
    assert_operator deltas.size, :>=, 3, "the text should arrive over several polls, got #{deltas.size}"
    assert_equal (0...cursor).to_a, sequence, "each event exactly once, in order"
    puts format("\nincremental polls: %d polls, %d non-empty deltas, %d events", polls, deltas.size, cursor)

    last = @a.poll(id, cursor) # nothing new after the end
    assert_equal ["", [], "completed", true, cursor], [last.text, last.events, last.status, last.done?, last.cursor]
    whole = @a.poll(id, 0) # from 0 again: everything at once
    assert_equal TEXT, whole.text
    assert_equal "response.completed", whole.events.last["type"]
    assert_equal TEXT, Polystream::Client.output_text(whole.response)
  end

  def test_each_delta_yields_the_deltas_and_returns_the_final_response
    id = @a.create(model: H::MODEL, input: "hi")["id"]
    deltas = []
    response = @a.each_delta(id, interval: 0.05, timeout: 20) { |text| deltas << text }
    assert_equal TEXT, deltas.join
    assert_operator deltas.size, :>=, 3
    assert(deltas.none?(&:empty?))
    assert_equal "completed", response["status"]
    assert_equal id, response["id"]
    assert_equal TEXT, Polystream::Client.output_text(response)
    enum = @a.each_delta(id) # without a block: an Enumerator of the deltas
    assert_equal TEXT, enum.to_a.join
    assert_equal "completed", enum.each { nil }["status"]
  end

  def test_each_delta_gives_up_after_its_timeout
    id = @a.create(model: H::MODEL, input: "hi")["id"]
    t0 = now
    error = assert_raises(Polystream::TimeoutError) { @a.each_delta(id, interval: 0.05, timeout: 0.3) { nil } }
    took = now - t0
    assert_operator took, :<, 1.0
    assert_operator took, :>=, 0.3
    assert_match(/#{id}.*each_delta timeout/, error.message)
  ensure
    @a.cancel(id) if id
  end

  def test_cancel_stops_the_response
    id = @a.create(model: H::MODEL, input: "hi")["id"]
    @a.each_delta(id, interval: 0.02, timeout: 10) { |_t| break } # wait for the first text
    cancelled = @a.cancel(id)
    assert_equal "cancelled", cancelled["status"]
    result = @a.poll(id, 0)
    assert_equal "cancelled", result.status
    assert result.done?
    assert TEXT.start_with?(result.text), "the text kept is a prefix of the upstream's"
    assert_operator result.text.size, :<, TEXT.size
    sleep 0.3 # the producer is stopped: nothing more arrives
    assert_equal result.cursor, @a.poll(id, 0).cursor
    assert_equal "cancelled", @a.cancel(id)["status"] # idempotent
    assert_equal "cancelled", @a.each_delta(id, interval: 0.01, timeout: 5) { nil }["status"]
  end

  def test_delete
    id = @a.create(model: H::MODEL, input: "hi")["id"]
    assert_equal({ "id" => id, "object" => "response.deleted", "deleted" => true }, @a.delete(id))
    assert_raises(Polystream::NotFoundError) { @a.retrieve(id) }
    assert_raises(Polystream::NotFoundError) { @a.poll(id) }
    assert_raises(Polystream::NotFoundError) { @a.delete(id) }
  end

  def test_another_keys_response_is_not_found
    id = @a.create(model: H::MODEL, input: "hi")["id"]
    calls = { retrieve: -> { @b.retrieve(id) }, poll: -> { @b.poll(id, 0) }, cancel: -> { @b.cancel(id) },
              delete: -> { @b.delete(id) }, each_delta: -> { @b.each_delta(id) { nil } } }
    calls.each do |name, call|
      error = assert_raises(Polystream::NotFoundError, name.to_s) { call.call }
      assert_equal 404, error.status
      assert_equal "response_not_found", error.error_code
      assert_equal "response_not_found", error.body["error"]["code"]
      refute_includes error.message, H::KEY_B
    end
    assert_equal TEXT, Polystream::Client.output_text(@a.each_delta(id, interval: 0.05, timeout: 20) { nil })
  end

  def test_http_errors_are_typed_and_carry_the_openai_body
    error = assert_raises(Polystream::AuthenticationError) { client("sk-not-a-key-at-all").retrieve("resp_x") }
    assert_equal 401, error.status
    assert_equal "invalid_api_key", error.error_code
    assert_equal "authentication_error", error.error_type
    refute_includes error.message, "sk-not-a-key-at-all"

    error = assert_raises(Polystream::NotFoundError) { @a.create(model: "no-such-model", input: "hi") }
    assert_equal "model_not_found", error.error_code

    error = assert_raises(Polystream::BadRequestError) { @a.create(model: H::MODEL, input: "hi", max_output_tokens: -1) }
    assert_equal 400, error.status
    assert_equal "max_output_tokens", error.param
    assert_kind_of Polystream::HTTPError, error
    assert_kind_of Polystream::Error, error
  end

  def test_nothing_listening_is_a_connection_error_at_once
    port = ProxyHarness.free_port
    down = client(H::KEY_A, url: "http://127.0.0.1:#{port}", open_timeout: 1)
    t0 = now
    error = assert_raises(Polystream::ConnectionError) { down.poll("resp_x", 0) }
    took = now - t0
    refute_kind_of Polystream::TimeoutError, error
    assert_match(/connection refused.*127\.0\.0\.1:#{port}/, error.message)
    assert_kind_of Errno::ECONNREFUSED, error.cause
    assert_operator took, :<, 1.0
    refute_includes error.message, H::KEY_A
    assert_raises(Polystream::ConnectionError) { down.create(model: H::MODEL, input: "hi") }
  end

  def test_the_proxy_going_down_mid_session_is_a_connection_error_within_the_timeout
    proxy, url = @harness.start_proxy
    c = client(H::KEY_A, url: url, open_timeout: 1, read_timeout: 2)
    id = c.create(model: H::MODEL, input: "hi")["id"]
    c.poll(id, 0) # the connection is kept alive
    proxy.stop(signal: "KILL") # a crash; the proxy's TCP connections close with it
    t0 = now
    error = assert_raises(Polystream::ConnectionError) { c.poll(id, 0) }
    took = now - t0
    puts format("\nproxy down: %s after %.1f ms: %s", error.class, took * 1000, error.message)
    assert_operator took, :<, 1.0
    assert_match(/#{Regexp.escape(url)}/, error.message)
    # still usable: the shared proxy (same Redis) has the response
    assert_includes Polystream::Client::TERMINAL + %w[queued in_progress], @a.poll(id, 0).status
  ensure
    proxy&.stop
    @a.cancel(id) if id
  end
end

# What needs a server misbehaving on demand: a stub on a thread (the client itself is not threaded).
class ClientOfflineTest < Minitest::Test
  KEY = "sk-offline-secret-key-1234"

  def setup
    @stubs = []
  end

  def teardown
    @stubs.each(&:close)
  end

  def stub(&handler)
    StubServer.new(&handler).tap { |s| @stubs << s }
  end

  def client(url, **opts)
    Polystream::Client.new(base_url: url, api_key: KEY, **opts)
  end

  def now = ProxyHarness.now

  def poll_body(text, cursor, done: false)
    { "id" => "resp_1", "status" => done ? "completed" : "in_progress", "cursor" => cursor, "text" => text,
      "events" => [], "done" => done }
  end

  def test_one_connection_is_kept_alive_across_polls
    server = stub { |_m, path, *| [200, {}, poll_body("x", path[/cursor=(\d+)/, 1].to_i + 1)] }
    c = client(server.url)
    cursors = (0...5).map { |i| c.poll("resp_1", i).cursor }
    assert_equal [1, 2, 3, 4, 5], cursors
    assert_equal 1, server.connections
    requests = server.all_requests
    assert_equal ["/v1/responses/resp_1/poll?cursor=0"], requests.first(1).map(&:path)
    assert_equal "Bearer #{KEY}", requests.first.headers["authorization"]
    c.close
    c.poll("resp_1", 0)
    assert_equal 2, server.connections
  end

  def test_a_dropped_kept_alive_connection_is_retried_once_for_reads_only
    server = stub do |method, _path, _h, _b, conn, count|
      next :drop if conn == 1 && count == 2 # the second request on the first connection

      method == "POST" ? [200, {}, { "id" => "resp_1", "status" => "queued" }] : [200, {}, poll_body("", 0)]
    end
    c = client(server.url)
    c.poll("resp_1", 0)
    assert_equal "in_progress", c.poll("resp_1", 0).status # retried on a new connection
    assert_equal 2, server.connections

    server2 = stub { |_m, _p, _h, _b, conn, count| conn == 1 && count == 2 ? :drop : [200, {}, { "id" => "resp_1" }] }
    c2 = client(server2.url)
    c2.retrieve("resp_1")
    error = assert_raises(Polystream::ConnectionError) { c2.create(model: "m", input: "hi") } # never sent twice
    assert_match(/closed the connection/, error.message)
    assert_equal "resp_1", c2.retrieve("resp_1")["id"] # reconnects after the error
  end

  def test_a_server_that_never_answers_is_a_timeout_within_read_timeout
    server = stub { :hang }
    c = client(server.url, read_timeout: 0.3)
    t0 = now
    error = assert_raises(Polystream::TimeoutError) { c.poll("resp_1", 0) }
    took = now - t0
    assert_kind_of Polystream::ConnectionError, error
    assert_match(/no answer within 0.3 s \(read_timeout\)/, error.message)
    assert_operator took, :<, 0.6, "one attempt only (Net::HTTP would retry a GET)"
    assert_operator took, :>=, 0.3
  end

  def test_status_codes_map_to_typed_errors
    err = ->(message, type, code = nil) { { "error" => { "message" => message, "type" => type, "code" => code } } }
    replies = {
      "/v1/responses/r429" => [429, { "retry-after" => "7" }, err.call("slow down", "rate_limit_error", "rate_limit_exceeded")],
      "/v1/responses/r503" => [503, { "retry-after" => "1" }, err.call("store down", "service_unavailable", "store_unavailable")],
      "/v1/responses/r502" => [502, { "content-type" => "text/html" }, "<html>bad gateway</html>"],
      "/v1/responses/r403" => [403, {}, err.call("not this model", "permission_error")],
      "/v1/responses/r418" => [418, {}, err.call("teapot", "invalid_request_error")],
      "/v1/responses/r200" => [200, { "content-type" => "text/plain" }, "not json"],
    }
    server = stub { |_m, path, *| replies.fetch(path) }
    c = client(server.url)
    error = assert_raises(Polystream::RateLimitError) { c.retrieve("r429") }
    assert_equal [429, 7.0, "rate_limit_exceeded"], [error.status, error.retry_after, error.error_code]
    assert_match(/\A429 .*slow down \(rate_limit_exceeded\)/, error.message)
    error = assert_raises(Polystream::ServerError) { c.retrieve("r503") }
    assert_equal [503, 1.0, "store_unavailable"], [error.status, error.retry_after, error.error_code]
    error = assert_raises(Polystream::ServerError) { c.retrieve("r502") }
    assert_equal "<html>bad gateway</html>", error.body
    assert_equal({}, error.error)
    assert_raises(Polystream::PermissionDeniedError) { c.retrieve("r403") }
    error = assert_raises(Polystream::HTTPError) { c.retrieve("r418") }
    assert_equal Polystream::HTTPError, error.class
    error = assert_raises(Polystream::HTTPError) { c.retrieve("r200") }
    assert_match(/not a JSON object/, error.message)
  end

  def test_the_api_key_never_shows
    server = stub { [401, {}, { "error" => { "message" => "Bad key #{KEY} given", "code" => "invalid_api_key" } }] }
    c = client(server.url)
    error = assert_raises(Polystream::AuthenticationError) { c.retrieve("resp_1") }
    refute_includes error.message, KEY
    assert_includes error.message, "[REDACTED]"
    refute_includes error.full_message, KEY
    [c.inspect, c.to_s, c.pretty_inspect].each { |text| refute_includes text, KEY }
    refute_includes client("http://127.0.0.1:#{ProxyHarness.free_port}").then { |d|
      assert_raises(Polystream::ConnectionError) { d.poll("resp_1", 0) }
    }.message, KEY
  end

  def test_base_url_forms_and_id_escaping
    server = stub { |_m, path, *| [200, {}, { "id" => path }] }
    assert_equal "/v1/responses/a", client("#{server.url}/v1/").retrieve("a")["id"]
    assert_equal "/proxy/v1/responses/a", client("#{server.url}/proxy").retrieve("a")["id"]
    assert_equal "/v1/responses/a%2F..%2Fb%20c", client(server.url).retrieve("a/../b c")["id"]
    assert_raises(ArgumentError) { client(server.url).retrieve("") }
    assert_raises(ArgumentError) { client(server.url).poll("a", -1) }
    assert_raises(ArgumentError) { Polystream::Client.new(base_url: "ftp://x", api_key: KEY) }
    assert_raises(ArgumentError) { Polystream::Client.new(base_url: server.url, api_key: "") }
    assert_raises(ArgumentError) { client(server.url).create(model: "m", input: "hi", stream: true) }
  end

  def test_create_sends_the_body_and_each_delta_uses_the_cursor
    steps = [poll_body("Hel", 2), poll_body("", 2), poll_body("lo", 5),
             poll_body("!", 7, done: true).merge("events" => [{ "type" => "response.completed", "sequence_number" => 6,
                                                                  "response" => { "id" => "resp_1", "status" => "completed" } }])]
    server = stub do |method, path, _h, body, *|
      if method == "POST"
        [200, {}, JSON.parse(body).merge("id" => "resp_1", "status" => "queued")]
      else
        [200, {}, steps.shift.merge("path" => path)]
      end
    end
    c = client(server.url)
    created = c.create(model: "m", input: [{ "role" => "user", "content" => "hi" }], instructions: "be brief")
    assert_equal({ "model" => "m", "input" => [{ "role" => "user", "content" => "hi" }], "background" => true,
                   "instructions" => "be brief", "id" => "resp_1", "status" => "queued" }, created)
    deltas = []
    final = c.each_delta("resp_1", interval: 0.01) { |t| deltas << t }
    assert_equal %w[Hel lo !], deltas
    assert_equal({ "id" => "resp_1", "status" => "completed" }, final) # from the terminal event, no extra request
    paths = server.all_requests.drop(1).map(&:path)
    assert_equal %w[0 2 2 5].map { |n| "/v1/responses/resp_1/poll?cursor=#{n}" }, paths
  end
end
