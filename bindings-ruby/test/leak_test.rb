# frozen_string_literal: true

require_relative "test_helper"

# Resident memory stays roughly flat over 100,000 native create/feed/free lifecycles — closed
# explicitly, left to GC, and through error paths. Each lifecycle moves more than 1 KB through
# native memory (a held-back partial line, out-strings, an accumulated completion), so leaking
# any one of them would grow RSS by tens of MB.
class LeakTest < Minitest::Test
  N = Polystream::Native
  LIFECYCLES = 100_000
  WARMUP = 10_000
  BOUND_KB = 10 * 1024

  TEXT = "x" * 1200
  SSE_INPUT = "id: 1\ndata: #{TEXT}\n\ndata: unterminated #{TEXT}".b.freeze
  CHUNK = JSON.generate({ "id" => "c", "object" => "chat.completion.chunk", "created" => 1, "model" => "m",
                          "choices" => [{ "index" => 0, "delta" => { "content" => TEXT } }] }).freeze
  STREAM = "data: #{CHUNK}\n\ndata: #{CHUNK}\n\n".b.freeze

  def rss_kb
    File.read("/proc/self/status")[/^VmRSS:\s+(\d+)/, 1].to_i
  end

  def lifecycle(i)
    case i % 4
    when 0
      N::SSEDecoder.open { |d| d.feed(SSE_INPUT) }
    when 1
      N::ChunkDecoder.open("openai_chat", accumulate: true) do |d|
        d.feed(STREAM)
        d.finish
      rescue Polystream::Incomplete => e
        e.completion # the error path: last error set, partial snapshot taken
      end
    when 2
      N::Accumulator.open { |a| (a << CHUNK).snapshot }
    else
      # Never closed: freed by GC through the pointer's free function.
      N::SSEDecoder.new.feed(SSE_INPUT)
      N::ChunkDecoder.new("openai_chat").feed(STREAM)
    end
  end

  def test_rss_is_flat_over_100k_lifecycles
    skip "no /proc/self/status on this platform" unless File.exist?("/proc/self/status")

    WARMUP.times { |i| lifecycle(i) }
    GC.start(full_mark: true, immediate_sweep: true)
    before = rss_kb
    LIFECYCLES.times { |i| lifecycle(i) }
    GC.start(full_mark: true, immediate_sweep: true)
    after = rss_kb
    puts format("\nleak check: VmRSS after %<w>d warm-up lifecycles %<b>d KB, after %<n>d more %<a>d KB " \
                "(growth %<g>+d KB, bound %<bound>d KB)",
                w: WARMUP, b: before, n: LIFECYCLES, a: after, g: after - before, bound: BOUND_KB)
    assert_operator after - before, :<, BOUND_KB, "RSS grew by #{after - before} KB over #{LIFECYCLES} lifecycles"
  end
end
