# frozen_string_literal: true

module Polystream
  module Native
    # Merges chat.completion.chunk objects into the final chat.completion, natively.
    #
    #   Polystream::Native::Accumulator.open do |acc|
    #     chunks.each { |c| acc << c }
    #     acc.snapshot # => Hash
    #   end
    class Accumulator < Handle
      def initialize
        super()
        adopt(Library.call(:polystream_accumulator_new), :polystream_accumulator_free)
      end

      # Adds one chunk or an Array of chunks: Hashes, or a JSON String of either. All or nothing:
      # if any of it is not a chunk, nothing is added and InvalidJSON is raised.
      def add(chunk)
        json = chunk.is_a?(String) ? chunk : JSON.generate(chunk)
        code = Library.call(:polystream_accumulator_add, pointer, json, json.bytesize)
        raise Library.last_error(code) unless code == Library::OK

        self
      end
      alias << add

      # The chat.completion Hash so far (callable at any time).
      def snapshot
        code = Library.call(:polystream_accumulator_snapshot, pointer, @out)
        json = Library.take_string(@out)
        raise Library.last_error(code) unless code == Library::OK

        Library.parse(json)
      end

      # How many chunks have been added.
      def chunk_count
        count = Library.call(:polystream_accumulator_chunk_count, pointer)
        raise Library.last_error(count) if count.negative?

        count
      end
    end
  end
end
