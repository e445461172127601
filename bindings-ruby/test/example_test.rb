# frozen_string_literal: true

require_relative "test_helper"
require_relative "proxy_harness"
require "open3"
require "rbconfig"

# The examples, run as their own processes against the real proxy.
class ExampleTest < Minitest::Test
  H = ProxyHarness
  ROOT = File.expand_path("..", __dir__)
  SERVICE = File.join(ROOT, "examples", "single_threaded_service.rb")
  SCRIPT = File.join(ROOT, "examples", "each_delta.rb")
  LIMIT_MS = 50.0

  def setup
    @harness = ProxyHarness.instance
  end

  def now = ProxyHarness.now

  def get(port, path)
    Net::HTTP.start("127.0.0.1", port, open_timeout: 1, read_timeout: 2) { |h| h.get(path) }
  end

  def post(port, path, body)
    Net::HTTP.start("127.0.0.1", port, open_timeout: 1, read_timeout: 2) do |h|
      h.post(path, body, "Content-Type" => "application/json")
    end
  end

  # While one background response streams and the service polls it between requests, the
  # service keeps answering /ping: every ping is timed (a new connection each, as a browser
  # would), the slowest must stay under 50 ms.
  def test_the_single_threaded_service_answers_while_a_response_is_polled_to_completion
    log = File.join(@harness.dir, "service.log")
    service = ProxyHarness::Child.new(
      "example-service",
      [RbConfig.ruby, "-I", File.join(ROOT, "lib"), SERVICE, "--port", "0", "--proxy", @harness.url,
       "--api-key", H::KEY_A, "--model", H::MODEL, "--poll-interval", "0.05"],
      log,
    )
    port = ProxyHarness.wait_until("the example service", child: service) do
      File.read(log)[%r{listening on http://127\.0\.0\.1:(\d+)}, 1]&.to_i
    end

    job = JSON.parse(post(port, "/jobs", JSON.generate(input: "Tell me about polling")).body)
    assert_match(/\Aresp_/, job["id"])

    pings = []
    seen = []
    deadline = now + 20
    until job["done"]
      flunk "the job did not finish in 20 s: #{job}" if now > deadline
      t0 = now
      response = get(port, "/ping")
      pings << (now - t0) * 1000
      assert_equal "pong\n", response.body
      if pings.size % 5 == 0
        job = JSON.parse(get(port, "/jobs/#{job['id']}").body)
        seen << job["text"].size
      end
      sleep 0.01
    end
    stats = JSON.parse(get(port, "/stats").body)

    sorted = pings.sort
    pct = ->(p) { sorted[((sorted.size - 1) * p).round] }
    puts format("\nsingle-threaded service: %d pings while the response streamed (%.2f s): " \
                "p50 %.2f ms, p95 %.2f ms, max %.2f ms (limit %d ms); %d polls by the service, " \
                "slowest poll %.2f ms, threads %d (max %d)",
                pings.size, job["seconds"], pct.call(0.5), pct.call(0.95), sorted.last, LIMIT_MS,
                stats["polls"], stats["slowest_poll_ms"], stats["threads"], stats["max_threads"])

    assert_equal "completed", job["status"]
    assert_equal H::TEXT, job["text"]
    assert_operator pings.size, :>=, 20
    assert_operator sorted.last, :<, LIMIT_MS
    assert_equal [1, 1], stats.values_at("threads", "max_threads"), "the service must run on one thread"
    assert_operator stats["polls"], :>=, 5, "polled incrementally, between requests"
    assert_operator seen.uniq.size, :>=, 3, "the text grew while we watched: #{seen}"
  ensure
    service&.stop
  end

  def test_the_each_delta_script_prints_the_text_as_it_grows
    env = { "POLYSTREAM_URL" => @harness.url, "POLYSTREAM_API_KEY" => H::KEY_A, "POLYSTREAM_MODEL" => H::MODEL }
    out, err, status = Open3.capture3(env, RbConfig.ruby, "-I", File.join(ROOT, "lib"), SCRIPT, "Say", "something")
    assert status.success?, "each_delta.rb failed: #{err}"
    assert_equal "#{H::TEXT}\n", out
    assert_match(/\Aresp_\w+: completed$/, err)
  end
end
