# frozen_string_literal: true

module Polystream
  module Native
    # A provider's stream bytes in, normalised chat.completion.chunk Hashes out (OpenAI's shape,
    # String keys), for any dialect the core knows: Polystream::Native.dialects lists them.
    #
    #   Polystream::Native::ChunkDecoder.open("anthropic", accumulate: true) do |dec|
    #     body.each { |bytes| dec.feed(bytes).each { |chunk| … } }
    #     dec.finish
    #     dec.snapshot # => the chat.completion Hash
    #   end
    #
    # Errors (ProviderError, InvalidJSON, Incomplete, …) carry the chunks the failing call completed
    # in +error.partial+ and, with +accumulate: true+, the completion so far in +error.completion+.
    class ChunkDecoder < Handle
      attr_reader :dialect

      # +accumulate+: also merge every chunk into a completion inside the decoder (#snapshot).
      # +max_event_size+: bytes per SSE event or NDJSON line; nil for the default (16 MiB).
      def initialize(dialect = "openai_chat", accumulate: false, max_event_size: nil)
        super()
        @dialect = String(dialect)
        @accumulate = accumulate ? true : false
        flags = @accumulate ? Library::ACCUMULATE : 0
        # The name goes over as a NUL-terminated C string; an embedded NUL would cut it short.
        raise InvalidArgument.new("dialect name contains NUL", kind: "invalid_argument") if @dialect.include?("\0")

        address = Library.call(:polystream_chunk_decoder_new_with_options, "#{@dialect}\0",
                               Integer(max_event_size || 0), flags)
        adopt(address, :polystream_chunk_decoder_free)
      end

      def accumulate?
        @accumulate
      end

      # Decodes +bytes+, returning the chunks it completed. With a block, yields each and returns nil.
      def feed(bytes, &block)
        run(Library.call(:polystream_chunk_decoder_feed, pointer, bytes, bytes.bytesize, @out), &block)
      end

      # End of stream: returns (or yields) any chunks held back. Raises Incomplete if the
      # provider's terminator never came.
      def finish(&block)
        run(Library.call(:polystream_chunk_decoder_finish, pointer, @out), &block)
      end

      # Whether the provider's terminator ([DONE], message_stop, …) has been seen.
      def done?
        code = Library.call(:polystream_chunk_decoder_is_done, pointer)
        raise Library.last_error(code) if code.negative?

        code == 1
      end

      # The chat.completion Hash accumulated so far (needs +accumulate: true+). Works after errors.
      def snapshot
        code = Library.call(:polystream_chunk_decoder_snapshot, pointer, @out)
        json = Library.take_string(@out)
        raise Library.last_error(code) unless code == Library::OK

        Library.parse(json)
      end

      private

      def run(code)
        json = Library.take_string(@out)
        chunks = json ? Library.parse(json) : []
        unless code == Library::OK
          error = Library.last_error(code, partial: chunks)
          error.completion = safe_snapshot if @accumulate
          raise error
        end
        return chunks unless block_given?

        chunks.each { |c| yield c }
        nil
      end

      def safe_snapshot
        snapshot
      rescue Error
        nil
      end
    end
  end
end
