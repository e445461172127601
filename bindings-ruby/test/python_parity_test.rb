# frozen_string_literal: true

require_relative "test_helper"
require_relative "proxy_harness"
require "open3"

# One core, two bindings, one answer: every recorded provider stream (the project's own fixtures,
# and ../shared/fixtures when present) decodes through the C ABI to exactly the completion — or the
# error kind — that the Python package gives for the same bytes, whole and at random splits.
class PythonParityTest < Minitest::Test
  include SplitHelpers

  DIALECTS = {
    "openai" => "openai_chat", "groq" => "openai_chat", "mistral" => "openai_chat",
    "openai_compatible" => "openai_chat", "deepseek" => "openai_chat", "openrouter" => "openai_chat",
    "together" => "openai_chat", "anthropic" => "anthropic", "gemini" => "gemini",
    "cohere" => "cohere", "ollama" => "ollama", "openai_responses" => "openai_responses",
    "bedrock" => "bedrock_converse"
  }.freeze

  PYTHON = <<~PY
    import json, sys
    from polystream import ChunkDecoder, errors
    out = {}
    for path, dialect in json.load(sys.stdin):
        d = ChunkDecoder(dialect, accumulate=True)
        kind = None
        try:
            with open(path, "rb") as f:
                d.feed(f.read())
            d.finish()
        except errors.PolystreamError as e:
            kind = e.kind
        out[path] = {"completion": d.snapshot().to_dict(), "error": kind}
    json.dump(out, sys.stdout)
  PY

  def cases
    roots = [File.join(TestPaths::PROJECT_FIXTURES, "providers")]
    roots << File.join(TestPaths::SHARED_FIXTURES, "providers") if TestPaths.shared?
    roots.flat_map do |root|
      Dir[File.join(root, "*", "*.{sse,ndjson,json,eventstream}")].sort.filter_map do |path|
        next if path.end_with?(".expected.json", ".frames.json")

        dialect = DIALECTS[File.basename(File.dirname(path))]
        [path, dialect] if dialect
      end
    end
  end

  def python_results(list)
    py = ProxyHarness.python or skip("no python with polystream (set POLYSTREAM_PYTHON or run `make install`)")
    out, status = Open3.capture2(py, "-c", PYTHON, stdin_data: JSON.dump(list))
    assert status.success?, "the Python side failed"
    JSON.parse(out)
  end

  def ruby_result(dialect, pieces)
    dec = Polystream::Native::ChunkDecoder.new(dialect, accumulate: true)
    error = nil
    begin
      pieces.each { |p| dec.feed(p) }
      dec.finish
    rescue Polystream::Error => e
      error = e.kind
    end
    { "completion" => dec.snapshot, "error" => error }
  ensure
    dec&.close
  end

  def test_every_recording_matches_the_python_package
    list = cases
    assert_operator list.size, :>=, 40, "fixtures found"
    expected = python_results(list)
    rng = Random.new(SEED)
    list.each do |path, dialect|
      bytes = File.binread(path)
      [[bytes], random_split(bytes, rng, 12)].each_with_index do |pieces, i|
        got = ruby_result(dialect, pieces)
        assert_equal expected.fetch(path), got, "#{path} (#{i.zero? ? "whole" : "random split"})"
      end
    end
    puts "python parity: #{list.size} recordings, identical completions and error kinds"
  end
end
