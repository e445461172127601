# frozen_string_literal: true

require_relative "test_helper"

# Native memory is freed deterministically (block form, #close) or by GC, never twice.
class LifecycleTest < Minitest::Test
  N = Polystream::Native

  def test_block_form_closes_even_when_the_block_raises
    kept = nil
    assert_raises(RuntimeError) do
      N::SSEDecoder.open do |d|
        kept = d
        raise "boom"
      end
    end
    assert kept.closed?
  end

  def test_open_returns_the_block_value_and_closes
    decoder = nil
    value = N::ChunkDecoder.open("openai_chat") { |d| (decoder = d) && 42 }
    assert_equal 42, value
    assert decoder.closed?
  end

  def test_close_is_idempotent_and_use_after_close_raises
    [N::SSEDecoder.new, N::ChunkDecoder.new("openai"), N::Accumulator.new].each do |h|
      refute h.closed?
      h.close
      h.close
      assert h.closed?
      error = assert_raises(Polystream::ClosedError) { h.is_a?(N::Accumulator) ? h.snapshot : h.feed("x") }
      assert_kind_of Polystream::Error, error
    end
  end

  def test_closed_then_collected_objects_are_not_freed_twice
    # A double free would corrupt the allocator and crash here or soon after.
    5_000.times do
      d = N::SSEDecoder.new
      d.feed("data: x\n\n")
      d.close
    end
    GC.start(full_mark: true, immediate_sweep: true)
    N::SSEDecoder.open { |d| assert_equal ["y"], d.feed("data: y\n\n").map { |e| e["data"] } }
  end

  def test_sse_decoder_state_accessors
    N::SSEDecoder.open do |d|
      assert_nil d.reconnection_time
      assert_equal "", d.last_event_id
      events = d.feed("retry: 2500\nid: 41\nevent: update\ndata: a\ndata: b\n\n")
      assert_equal [{ "event" => "update", "data" => "a\nb", "id" => "41", "retry" => 2500 }], events
      assert_equal 2500, d.reconnection_time
      assert_equal "41", d.last_event_id
      yielded = []
      assert_nil(d.feed("data: c\n\n") { |e| yielded << e["data"] })
      assert_equal ["c"], yielded
      d.finish
    end
  end

  def test_dialects_are_listed_and_creatable
    names = N.dialects
    assert_includes names, "openai_chat"
    names.each { |n| N::ChunkDecoder.open(n) { |d| assert_equal n, d.dialect } }
    assert_equal 1, N.abi_version
  end
end
