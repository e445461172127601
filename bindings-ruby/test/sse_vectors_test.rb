# frozen_string_literal: true

require_relative "test_helper"
require "zlib"

# Every SSE conformance vector — the project's own (tests/fixtures/sse/vectors.json) and the shared
# suite (../shared/fixtures/sse/vectors.json, when present) — through the native decoder whole, one
# byte at a time, at random splits and at the vector's own split, in both of the C ABI's output
# forms (packed and JSON): the events and the final retry must match every time.
class SSEVectorsTest < Minitest::Test
  include SplitHelpers

  def self.load_cases(path, origin)
    JSON.parse(File.read(path)).map do |c|
      input = c["input"] ? c["input"].b : c["input_b64"].unpack1("m")
      chunks = if c["chunks"] then c["chunks"].map(&:b)
               elsif c["chunks_b64"] then c["chunks_b64"].map { |s| s.unpack1("m") }
               end
      c.merge("origin" => origin, "bytes" => input, "split" => chunks)
    end
  end

  OWN = load_cases(File.join(TestPaths::PROJECT_FIXTURES, "sse", "vectors.json"), "own")
  SHARED_PATH = File.join(TestPaths::SHARED_FIXTURES, "sse", "vectors.json")
  SHARED = File.exist?(SHARED_PATH) ? load_cases(SHARED_PATH, "shared") : []

  def decode(pieces)
    Polystream::Native::SSEDecoder.open do |d|
      events = pieces.flat_map { |p| d.feed(p) }
      d.finish
      [events.map { |e| [e["event"], e["data"], e["id"], e["retry"]] }, d.reconnection_time]
    end
  end

  # The same through the JSON form of the C ABI (polystream_sse_decoder_feed), which SSEDecoder#feed
  # does not use (it takes the packed form).
  def decode_json(pieces)
    lib = Polystream::Native::Library
    Polystream::Native::SSEDecoder.open do |d|
      out = lib.out_slot
      events = pieces.flat_map do |p|
        assert_equal 0, lib.call(:polystream_sse_decoder_feed, d.send(:pointer), p, p.bytesize, out)
        JSON.parse(lib.take_string(out))
      end
      d.finish
      [events.map { |e| [e["event"], e["data"], e["id"], e["retry"]] }, d.reconnection_time]
    end
  end

  def expected(c)
    events = c["events"].map { |e| [e["type"], e["data"], e["id"], e["retry"]] }
    [events, c["final_retry"]]
  end

  def check(c)
    want = expected(c)
    bytes = c["bytes"]
    assert_equal want, decode([bytes]), "#{c['name']}: whole input"
    assert_equal want, decode(one_byte_split(bytes)), "#{c['name']}: 1-byte split"
    assert_equal want, decode_json(random_split(bytes, Random.new(SEED))), "#{c['name']}: JSON form"
    rng = Random.new(SEED ^ Zlib.crc32(c["name"]))
    4.times do
      pieces = random_split(bytes, rng)
      assert_equal want, decode(pieces), "#{c['name']}: random split #{pieces.map(&:bytesize).inspect}"
    end
    assert_equal want, decode(c["split"]), "#{c['name']}: the vector's own split" if c["split"]
  end

  (OWN + SHARED).each do |c|
    define_method("test_#{c['origin']}_#{c['name'].gsub(/[^A-Za-z0-9_]/, '_')}") { check(c) }
  end

  def test_the_vector_files_were_found
    assert_operator OWN.size, :>=, 30
    [OWN, SHARED].each { |cases| assert_equal cases.size, cases.map { |c| c["name"] }.uniq.size, "duplicate names" }
    if TestPaths.shared?
      assert_operator SHARED.size, :>=, 100, "shared vectors present but fewer than expected"
    else
      puts "note: #{SHARED_PATH} not present; the project's own vectors only"
    end
  end
end
