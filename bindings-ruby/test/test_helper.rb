# frozen_string_literal: true

$LOAD_PATH.unshift(File.expand_path("../lib", __dir__))
require "minitest/autorun"
require "json"
require "polystream"

module TestPaths
  REPO_ROOT = File.expand_path("../..", __dir__)
  PROJECT_FIXTURES = File.join(REPO_ROOT, "tests", "fixtures")
  # The shared fixtures live beside the checkout (../shared/fixtures) when present (CI has them).
  SHARED_FIXTURES = File.expand_path("../shared/fixtures", REPO_ROOT)

  module_function

  def shared?
    File.directory?(SHARED_FIXTURES)
  end
end

# Deterministic randomness: set POLYSTREAM_SEED to replay a run.
SEED = Integer(ENV.fetch("POLYSTREAM_SEED", Random.new_seed % 1_000_000))
puts "polystream tests: POLYSTREAM_SEED=#{SEED}"

module SplitHelpers
  # +bytes+ cut at +count+ random points (duplicates allowed: some pieces are empty).
  def random_split(bytes, rng, count = rng.rand(1..8))
    return [bytes] if bytes.empty?

    cuts = Array.new(count) { rng.rand(0..bytes.bytesize) }.sort
    pieces = []
    prev = 0
    cuts.each do |c|
      pieces << bytes.byteslice(prev, c - prev)
      prev = c
    end
    pieces << bytes.byteslice(prev, bytes.bytesize - prev)
  end

  def one_byte_split(bytes)
    bytes.each_byte.map(&:chr)
  end
end
