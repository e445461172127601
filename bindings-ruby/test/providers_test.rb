# frozen_string_literal: true

require_relative "test_helper"

# Recorded OpenAI streams with an .expected.json sidecar (the accumulated result the openai SDK's
# own tests assert) decode and accumulate to the sidecar's content, refusals, tool calls, logprobs
# and finish reasons — whole, one byte at a time and at random splits, through the chunk decoder's
# own accumulation and through a separate Accumulator fed the decoded chunks.
class ProvidersTest < Minitest::Test
  include SplitHelpers

  DIR = File.join(TestPaths::SHARED_FIXTURES, "providers", "openai")
  CASES = Dir[File.join(DIR, "*.sse")].sort.select { |f| File.exist?(f.sub(/\.sse\z/, ".expected.json")) }

  def decode(pieces)
    Polystream::Native::ChunkDecoder.open("openai_chat", accumulate: true) do |dec|
      chunks = pieces.flat_map { |p| dec.feed(p) }
      chunks.concat(dec.finish)
      assert dec.done?, "stream ended without [DONE]"
      [chunks, dec.snapshot]
    end
  end

  # Every field the sidecar states must match; fields it leaves out are not compared.
  def assert_matches(expected, actual, where)
    case expected
    when Hash
      assert_kind_of Hash, actual, where
      expected.each do |k, v|
        next if k == "_source"

        assert actual.key?(k), "#{where}: missing #{k}" unless v.nil?
        assert_matches(v, actual[k], "#{where}.#{k}")
      end
    when Array
      assert_kind_of Array, actual, where
      assert_equal expected.size, actual.size, "#{where}: length"
      expected.each_with_index { |v, i| assert_matches(v, actual[i], "#{where}[#{i}]") }
    when nil
      assert_nil actual, where
    else
      assert_equal expected, actual, where
    end
  end

  CASES.each do |path|
    name = File.basename(path, ".sse")
    define_method("test_#{name}") do
      bytes = File.binread(path)
      expected = JSON.parse(File.read(path.sub(/\.sse\z/, ".expected.json")))
      rng = Random.new(SEED ^ bytes.bytesize)
      splits = [[bytes], one_byte_split(bytes), random_split(bytes, rng, 20), random_split(bytes, rng, 200)]
      baseline = nil
      splits.each_with_index do |pieces, i|
        chunks, completion = decode(pieces)
        assert_matches(expected, completion, "#{name}[split #{i}]")
        baseline ||= chunks
        assert_equal baseline, chunks, "#{name}: chunks differ between splits"
      end
      Polystream::Native::Accumulator.open do |acc|
        baseline.each_slice(3) { |slice| acc << slice }
        assert_equal baseline.size, acc.chunk_count
        assert_matches(expected, acc.snapshot, "#{name}[Accumulator]")
      end
    end
  end

  def test_the_recorded_streams_were_found
    skip "#{DIR} not present (the shared fixtures sit beside the checkout in CI)" unless TestPaths.shared?
    assert_operator CASES.size, :>=, 5
  end
end
