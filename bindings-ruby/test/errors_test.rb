# frozen_string_literal: true

require_relative "test_helper"

# Native errors come back as typed Ruby exceptions, with what completed before them.
class ErrorsTest < Minitest::Test
  N = Polystream::Native
  HEADER = File.join(TestPaths::REPO_ROOT, "rust", "capi", "include", "polystream.h")

  def openai_chunk(text)
    JSON.generate({ "id" => "c1", "object" => "chat.completion.chunk", "created" => 1, "model" => "m",
                    "choices" => [{ "index" => 0, "delta" => { "content" => text }, "finish_reason" => nil }] })
  end

  def stream_of(*texts, done: true)
    texts.map { |t| "data: #{openai_chunk(t)}\n\n" }.join + (done ? "data: [DONE]\n\n" : "")
  end

  def test_every_kind_in_the_header_has_its_own_exception_class
    kinds = File.read(HEADER).scan(/Kind `"([a-z_]+)"`/).flatten.uniq
    assert_operator kinds.size, :>=, 9
    kinds.each do |kind|
      klass = Polystream::ERROR_KINDS.fetch(kind) { flunk "no exception class for native kind #{kind}" }
      assert_operator klass, :<, Polystream::Error
    end
    assert_equal Polystream::ERROR_KINDS.values.uniq.size, Polystream::ERROR_KINDS.size
  end

  def test_unknown_dialect
    error = assert_raises(Polystream::UnknownDialect) { N::ChunkDecoder.new("no_such_dialect") }
    assert_equal "unknown_dialect", error.kind
    assert_equal "no_such_dialect", error.name
  end

  def test_non_utf8_and_nul_dialect_names_are_invalid_arguments
    assert_raises(Polystream::InvalidArgument) { N::ChunkDecoder.new("open\xFFai".b) }
    assert_raises(Polystream::InvalidArgument) { N::ChunkDecoder.new("openai_chat\0x") }
  end

  def test_null_pointers_reaching_the_library_raise_null_pointer
    code = N::Library.call(:polystream_sse_decoder_feed, nil, nil, 0, nil)
    error = N::Library.last_error(code)
    assert_instance_of Polystream::NullPointer, error
    assert_kind_of Polystream::InvalidArgument, error
    assert_equal(-1, error.native_code)
  end

  def test_event_too_large_keeps_the_events_before_it_and_poisons_the_decoder
    N::SSEDecoder.open(max_event_size: 32) do |d|
      error = assert_raises(Polystream::EventTooLarge) { d.feed("data: ok\n\ndata: #{'x' * 100}\n\n") }
      assert_equal 32, error.limit
      assert_equal ["ok"], error.partial.map { |e| e["data"] }
      assert_raises(Polystream::Poisoned) { d.feed("data: more\n\n") }
    end
  end

  def test_a_provider_error_mid_stream_keeps_the_partial_answer
    body = stream_of("partial ", "answer", done: false) +
           "event: error\ndata: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\",\"code\":\"529\"}}\n\n"
    N::ChunkDecoder.open("openai_chat", accumulate: true) do |dec|
      error = assert_raises(Polystream::ProviderError) { dec.feed(body) }
      assert_equal "server_error", error.error_type
      assert_equal "529", error.error_code
      assert_match(/overloaded/, error.message)
      assert_equal 2, error.partial.size
      assert_equal "partial answer", error.completion["choices"][0]["message"]["content"]
      assert_equal "partial answer", dec.snapshot["choices"][0]["message"]["content"]
    end
  end

  def test_a_truncated_stream_raises_incomplete_with_the_completion_so_far
    N::ChunkDecoder.open("openai_chat", accumulate: true) do |dec|
      dec.feed(stream_of("cut ", "off", done: false))
      refute dec.done?
      error = assert_raises(Polystream::Incomplete) { dec.finish }
      assert_equal "openai_chat", error.dialect
      assert_equal "cut off", error.completion["choices"][0]["message"]["content"]
    end
  end

  def test_invalid_json_in_the_stream
    N::ChunkDecoder.open("openai_chat") do |dec|
      error = assert_raises(Polystream::InvalidJSON) { dec.feed("data: {oops\n\n") }
      assert_equal "{oops", error.payload
      assert_nil error.completion
    end
  end

  def bedrock_fixture(name)
    File.binread(File.join(TestPaths::PROJECT_FIXTURES, "providers", "bedrock", "#{name}.eventstream"))
  end

  def test_corrupt_binary_framing_is_invalid_frame_with_the_answer_so_far
    body = bedrock_fixture("bedrock_text_multibyte")
    body.setbyte(-1, body.getbyte(-1) ^ 1) # the last message's CRC
    N::ChunkDecoder.open("bedrock_converse", accumulate: true) do |dec|
      error = assert_raises(Polystream::InvalidFrame) { dec.feed(body) }
      assert_equal "invalid_frame", error.kind
      assert_equal "eventstream", error.framing
      assert_equal 6, error.partial.size
      assert_equal "東京は日本の首都です。 🗼 Café crème brûlée 🍮!",
                   error.completion["choices"][0]["message"]["content"]
      assert_raises(Polystream::Poisoned) { dec.feed("x") }
    end
  end

  def test_a_bedrock_exception_message_is_a_provider_error
    N::ChunkDecoder.open("bedrock", accumulate: true) do |dec|
      error = assert_raises(Polystream::ProviderError) { dec.feed(bedrock_fixture("bedrock_exception_after_content")) }
      assert_equal "modelStreamErrorException", error.error_type
      assert_match(/interrupted/, error.message)
      assert_equal "The first part", error.completion["choices"][0]["message"]["content"]
    end
  end

  def test_snapshot_needs_accumulate
    N::ChunkDecoder.open("openai_chat") do |dec|
      assert_raises(Polystream::InvalidArgument) { dec.snapshot }
    end
  end

  def test_accumulator_rejects_non_chunks_all_or_nothing
    N::Accumulator.open do |acc|
      acc << JSON.parse(openai_chunk("kept"))
      assert_raises(Polystream::InvalidJSON) { acc << [JSON.parse(openai_chunk(" lost")), { "choices" => 5 }] }
      assert_raises(Polystream::InvalidJSON) { acc.add("{not json") }
      assert_equal 1, acc.chunk_count
      assert_equal "kept", acc.snapshot["choices"][0]["message"]["content"]
    end
  end
end
