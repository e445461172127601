# frozen_string_literal: true

# SSE events/s and chunks/s through the native binding vs a pure-Ruby line parser, on the same
# generated OpenAI-style stream (100 MB by default), fed in 16 KiB reads (Net::HTTP's read size).
#
#   cd bindings-ruby && ruby -Ilib bench/sse_bench.rb            # or: rake bench
#   POLYSTREAM_BENCH_MB=20 POLYSTREAM_BENCH_READ=65536 ruby -Ilib bench/sse_bench.rb
#
# Both sides produce the same Ruby objects: one Hash per SSE event ("event", "data", "id",
# "retry"), one parsed chat.completion.chunk Hash per chunk. The pure-Ruby parser is a typical
# lean one (LF/CRLF lines, data/event/id/retry fields, comments); it is less complete than the
# native decoder (no lone-CR line ends, no BOM, no size limit), which only flatters it.
$LOAD_PATH.unshift(File.expand_path("../lib", __dir__))
require "polystream"
require "json"

MB = Integer(ENV.fetch("POLYSTREAM_BENCH_MB", "100"))
READ = Integer(ENV.fetch("POLYSTREAM_BENCH_READ", "16384"))

def generate_stream(target_bytes)
  words = %w[The quick brown fox jumps over the lazy dog while streaming tokens arrive one by one
             from a large language model , . ! ? naïve café 日本語 emoji 🙂 "quoted" back\\slash]
  head = '{"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk",' \
         '"created":1741569952,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_eb9dce56a8",' \
         '"service_tier":"default","choices":[{"index":0,"delta":'
  tail = ',"logprobs":null,"finish_reason":null}]}'
  out = String.new(capacity: target_bytes + 4096, encoding: Encoding::BINARY)
  out << "data: #{head}{\"role\":\"assistant\",\"content\":\"\"}#{tail}\n\n".b
  i = 0
  while out.bytesize < target_bytes
    out << "data: #{head}{\"content\":#{JSON.generate("#{words[i % words.size]} ")}}#{tail}\n\n".b
    i += 1
  end
  out << "data: #{head}{}#{tail.sub('"finish_reason":null', '"finish_reason":"stop"')}\n\n".b
  out << "data: [DONE]\n\n"
  out
end

# A lean pure-Ruby SSE parser: feed(bytes) { |event_hash| }.
class RubySSEParser
  def initialize
    @buffer = +""
    @data = nil
    @event = nil
    @id = +""
    @retry = nil
  end

  def feed(bytes)
    @buffer << bytes
    start = 0
    while (nl = @buffer.index("\n", start))
      line_end = nl.positive? && @buffer.getbyte(nl - 1) == 13 ? nl - 1 : nl
      line = @buffer.byteslice(start, line_end - start)
      start = nl + 1
      if line.empty?
        if @data
          yield({ "event" => @event || "message", "data" => @data, "id" => @id, "retry" => @retry })
        end
        @data = nil
        @event = nil
        @retry = nil
        next
      end
      next if line.start_with?(":")

      field, value = line.split(":", 2)
      value = value ? value.delete_prefix(" ") : ""
      case field
      when "data" then @data = @data ? "#{@data}\n#{value}" : value
      when "event" then @event = value
      when "id" then @id = value unless value.include?("\0")
      when "retry" then @retry = Integer(value, 10) if value.match?(/\A\d+\z/)
      end
    end
    @buffer = @buffer.byteslice(start, @buffer.bytesize - start)
  end
end

def reads(stream)
  (0...stream.bytesize).step(READ).map { |off| stream.byteslice(off, READ) }
end

def measure
  GC.start
  t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  count = yield
  [count, Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0]
end

N = Polystream::Native

puts "generating a #{MB} MB OpenAI-style stream…"
stream = generate_stream(MB * 1_000_000)
pieces = reads(stream)
puts format("%<mb>.1f MB, %<n>d reads of %<r>d bytes, ruby %<v>s, native library %<lib>s",
            mb: stream.bytesize / 1e6, n: pieces.size, r: READ, v: RUBY_VERSION, lib: N::Library.path)

results = []

results << ["SSE events -> Hash", "native SSEDecoder", *measure {
  n = 0
  N::SSEDecoder.open { |d| pieces.each { |p| n += d.feed(p).size } }
  n
}]
results << ["SSE events -> Hash", "pure-Ruby parser", *measure {
  n = 0
  parser = RubySSEParser.new
  pieces.each { |p| parser.feed(p) { |_e| n += 1 } }
  n
}]

results << ["chunks -> Hash", "native ChunkDecoder", *measure {
  n = 0
  N::ChunkDecoder.open("openai_chat") do |d|
    pieces.each { |p| n += d.feed(p).size }
    n += d.finish.size
  end
  n
}]
results << ["chunks -> Hash", "pure Ruby + JSON.parse", *measure {
  n = 0
  parser = RubySSEParser.new
  pieces.each do |p|
    parser.feed(p) do |e|
      next if e["data"] == "[DONE]"

      JSON.parse(e["data"])
      n += 1
    end
  end
  n
}]

native_text = nil
ruby_text = nil
results << ["chunks + accumulate", "native (accumulate: true)", *measure {
  n = 0
  N::ChunkDecoder.open("openai_chat", accumulate: true) do |d|
    pieces.each { |p| n += d.feed(p).size }
    d.finish
    native_text = d.snapshot["choices"][0]["message"]["content"]
  end
  n
}]
results << ["chunks + accumulate", "pure Ruby + JSON.parse", *measure {
  n = 0
  text = +""
  parser = RubySSEParser.new
  pieces.each do |p|
    parser.feed(p) do |e|
      next if e["data"] == "[DONE]"

      chunk = JSON.parse(e["data"])
      content = chunk.dig("choices", 0, "delta", "content")
      text << content if content
      n += 1
    end
  end
  ruby_text = text
  n
}]

abort "native and pure-Ruby accumulations differ" unless native_text == ruby_text
results.each_slice(2) do |(_, _, a, _), (_, _, b, _)|
  abort "event counts differ: #{a} vs #{b}" unless a == b
end

puts
puts format("%-22s %-27s %10s %8s %12s %9s %8s", "what", "how", "items", "s", "items/s", "µs/item", "MB/s")
results.each_slice(2) do |pair|
  base = pair[1][3]
  pair.each do |what, how, count, secs|
    puts format("%-22s %-27s %10d %8.2f %12.0f %9.2f %8.1f%s", what, how, count, secs, count / secs,
                secs * 1e6 / count, stream.bytesize / 1e6 / secs, how == pair[0][1] ? format("  (%.1fx)", base / secs) : "")
  end
end
