# frozen_string_literal: true

require "fileutils"
require "json"
require "net/http"
require "rbconfig"
require "socket"
require "tmpdir"

# The real thing for the client and example tests: a redis-server, the replay upstream
# (python -m polystream.testing.replay, serving an OpenAI chat stream written here) and
# `polystream serve` with a LiteLLM-format config (Redis through cache_params, a master key and
# two virtual keys). Started once, on first use, and stopped after the run (Minitest.after_run);
# every process is ours and is stopped by its pid.
#
# Executables: ENV["POLYSTREAM_PYTHON"], else <repo>/.venv/bin/python (made by `make install`);
# `polystream` beside that python, else the first on PATH, else `python -m polystream.cli`.
# Without a python that has polystream, or without redis-server, these tests skip (saying why).
class ProxyHarness
  REPO_ROOT = File.expand_path("../..", __dir__)
  MASTER_KEY = "sk-ruby-master-key-0001"
  KEY_A = "sk-ruby-user-a-virtual-0001"
  KEY_B = "sk-ruby-user-b-virtual-0002"
  MODEL = "gpt-replay"
  # What the upstream streams, word by word (160 words, one SSE event each, 10 ms apart: ~1.7 s).
  TEXT = Array.new(20) { |i| "Sentence #{i + 1} says café, naïve, 漢字 and “quotes”." }.join(" ").freeze
  PIECE_DELAY = 0.01

  # One child process: spawned with its output in a log file, stopped by pid (TERM, then KILL).
  class Child
    attr_reader :name, :pid, :log

    def initialize(name, argv, log, env: {})
      @name = name
      @log = log
      @pid = Process.spawn(env, *argv, in: File::NULL, out: log, err: log)
    end

    def alive?
      Process.waitpid(@pid, Process::WNOHANG).nil?
    rescue Errno::ECHILD
      false
    end

    def stop(timeout: 5, signal: "TERM")
      return unless @pid

      pid = @pid
      @pid = nil
      Process.kill(signal, pid)
      deadline = ProxyHarness.now + timeout
      until Process.waitpid(pid, Process::WNOHANG)
        if ProxyHarness.now > deadline
          Process.kill("KILL", pid)
          Process.waitpid(pid)
          break
        end
        sleep 0.02
      end
    rescue Errno::ESRCH, Errno::ECHILD
      nil
    end

    def output
      File.exist?(@log) ? File.read(@log) : ""
    end
  end

  class << self
    def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

    # The shared harness (started on first call), or raises Minitest::Skip with the reason.
    def instance
      return @instance if @instance
      raise @failed if @failed # started once, failed: every test says why, none retries

      @unavailable ||= missing_tools
      raise Minitest::Skip, @unavailable if @unavailable

      harness = new
      Minitest.after_run { harness.stop }
      begin
        harness.start
      rescue StandardError => e
        harness.stop
        @failed = e
        raise
      end
      @instance = harness
    end

    def python
      candidates = [ENV["POLYSTREAM_PYTHON"], File.join(REPO_ROOT, ".venv", "bin", "python")]
      candidates.compact.reject(&:empty?).find { |p| File.executable?(p) }
    end

    # argv prefix that runs the `polystream` command.
    def polystream_command
      py = python
      beside = File.join(File.dirname(py), "polystream")
      return [beside] if File.executable?(beside)

      on_path = which("polystream")
      on_path ? [on_path] : [py, "-m", "polystream.cli"]
    end

    def which(name)
      ENV.fetch("PATH", "").split(File::PATH_SEPARATOR).map { |d| File.join(d, name) }
         .find { |p| File.file?(p) && File.executable?(p) }
    end

    def free_port
      server = TCPServer.new("127.0.0.1", 0)
      server.addr[1]
    ensure
      server&.close
    end

    def wait_until(what, timeout: 20, child: nil)
      deadline = now + timeout
      loop do
        result = yield
        return result if result
        log = -> { child ? ":\n#{child.output[-3000..] || child.output}" : "" }
        raise "#{child.name} exited while waiting for #{what}#{log.call}" if child && !child.alive?
        raise "timed out waiting for #{what}#{log.call}" if now > deadline

        sleep 0.05
      end
    end

    private

    def missing_tools
      py = python
      return "no python with polystream (set POLYSTREAM_PYTHON or run `make install`)" unless py
      return "redis-server not installed" unless which("redis-server")

      ok = system(py, "-c", "import polystream.server, polystream.testing.replay, redis", out: File::NULL,
                                                                                         err: File::NULL)
      ok ? nil : "#{py} cannot import polystream.server / redis (run `make install`)"
    end
  end

  attr_reader :url, :upstream_base, :dir

  def initialize
    @dir = Dir.mktmpdir("polystream-ruby-")
    @children = []
    @proxies = []
  end

  def start
    t0 = self.class.now
    start_redis
    start_replay
    File.write(config_path, JSON.pretty_generate(config)) # JSON is YAML
    @url = start_proxy.last
    puts format("polystream harness: redis :%d, replay %s, proxy %s up in %.2f s (logs in %s)",
                @redis_port, @upstream_base, @url, self.class.now - t0, @dir)
  end

  # Starts one more `polystream serve` on the same config (a test may stop it). Returns [child, url].
  def start_proxy
    port = self.class.free_port
    argv = [*self.class.polystream_command, "serve", "--config", config_path, "--host", "127.0.0.1",
            "--port", port.to_s, "--log-level", "warning"]
    child = spawn("proxy-#{port}", argv)
    url = "http://127.0.0.1:#{port}"
    self.class.wait_until("the proxy at #{url}", child: child) { ready?(url) }
    [child, url]
  end

  def stop
    @children.reverse_each(&:stop)
    @children.clear
    FileUtils.rm_rf(@dir) if @dir && ENV["POLYSTREAM_KEEP_LOGS"].nil?
  end

  def python = self.class.python

  def config_path = File.join(@dir, "config.json")

  # The LiteLLM-format config: one model on the replay upstream, Redis via cache_params.
  def config
    {
      "model_list" => [{ "model_name" => MODEL, "litellm_params" => {
        "model" => "openai/gpt-upstream", "api_base" => @upstream_base, "api_key" => "sk-upstream-not-real",
      } }],
      "general_settings" => { "master_key" => MASTER_KEY },
      "litellm_settings" => {
        "cache" => true,
        "cache_params" => { "type" => "redis", "host" => "127.0.0.1", "port" => @redis_port, "ttl" => 600 },
      },
      "polystream" => { "keys" => [KEY_A, { "key" => KEY_B, "name" => "team-b" }] },
    }
  end

  private

  def spawn(name, argv)
    child = Child.new(name, argv, File.join(@dir, "#{name}.log"))
    @children << child
    child
  end

  def start_redis
    @redis_port = self.class.free_port
    child = spawn("redis", ["redis-server", "--port", @redis_port.to_s, "--bind", "127.0.0.1", "--save", "",
                            "--appendonly", "no", "--dir", @dir])
    self.class.wait_until("redis-server", child: child) { redis_ping? }
  end

  def redis_ping?
    Socket.tcp("127.0.0.1", @redis_port, connect_timeout: 0.2) do |s|
      s.write("PING\r\n")
      s.wait_readable(0.5) && s.readpartial(64).start_with?("+PONG")
    end
  rescue SystemCallError, IOError
    false
  end

  def start_replay
    fixture = File.join(@dir, "upstream.sse")
    File.write(fixture, self.class.upstream_sse)
    child = spawn("replay", [python, "-u", "-m", "polystream.testing.replay", "--port", "0", "--provider", "openai",
                             "--fixture", fixture, "--split", "event", "--delay", PIECE_DELAY.to_s])
    @upstream_base = self.class.wait_until("the replay server", child: child) do
      child.output[/api_base=(\S+)/, 1]
    end
  end

  def ready?(url)
    uri = URI("#{url}/health/readiness")
    Net::HTTP.start(uri.host, uri.port, open_timeout: 0.2, read_timeout: 1) { |h| h.get(uri.path).code == "200" }
  rescue SystemCallError, IOError, Net::OpenTimeout, Net::ReadTimeout
    false
  end

  # An OpenAI chat-completions SSE body streaming TEXT word by word, with usage and [DONE].
  def self.upstream_sse
    base = { "id" => "chatcmpl-ruby", "object" => "chat.completion.chunk", "created" => 1_700_000_000,
             "model" => "gpt-upstream" }
    chunk = ->(delta, finish = nil) { base.merge("choices" => [{ "index" => 0, "delta" => delta, "finish_reason" => finish }]) }
    words = TEXT.scan(/\S+\s*/)
    events = [chunk.call({ "role" => "assistant", "content" => "" })]
    events.concat(words.map { |w| chunk.call({ "content" => w }) })
    events << chunk.call({}, "stop")
    events << base.merge("choices" => [], "usage" => { "prompt_tokens" => 5, "completion_tokens" => words.size,
                                                       "total_tokens" => 5 + words.size })
    events.map { |e| "data: #{JSON.generate(e)}\n\n" }.join + "data: [DONE]\n\n"
  end
end
