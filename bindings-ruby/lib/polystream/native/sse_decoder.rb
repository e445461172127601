# frozen_string_literal: true

module Polystream
  module Native
    # WHATWG Server-Sent Events framing in native code.
    #
    #   Polystream::Native::SSEDecoder.open do |sse|
    #     sse.feed(bytes).each { |ev| ev["event"]; ev["data"]; ev["id"]; ev["retry"] }
    #   end
    #
    # Each event is a Hash with String keys: "event" ("message" by default), "data", "id" (the
    # last-event-id at dispatch) and "retry" (ms, or nil). Feed bytes split anywhere.
    # A decode error raises (EventTooLarge, …) with the events completed before it in
    # +error.partial+; the decoder is poisoned afterwards.
    class SSEDecoder < Handle
      # +max_event_size+: bytes allowed for one event (its data plus the line being read);
      # nil for the library's default (16 MiB).
      def initialize(max_event_size: nil)
        super()
        adopt(Library.call(:polystream_sse_decoder_new, Integer(max_event_size || 0)), :polystream_sse_decoder_free)
        @len = Fiddle::Pointer.malloc(Fiddle::SIZEOF_SIZE_T, Fiddle::RUBY_FREE)
      end

      # Decodes +bytes+ (a String, any encoding), returning the events it completed. With a block,
      # yields each event instead and returns nil.
      def feed(bytes)
        # The packed form (CR-separated fields) costs Ruby a third of what JSON.parse would.
        code = Library.call(:polystream_sse_decoder_feed_packed, pointer, bytes, bytes.bytesize, @out, @len)
        events = unpack(Library.take_bytes(@out, @len))
        raise Library.last_error(code, partial: events) unless code == Library::OK
        return events unless block_given?

        events.each { |e| yield e }
        nil
      end

      # End of stream: an unfinished event is discarded. The last event ID and reconnection time
      # survive, and the decoder is ready for the next stream of a reconnect.
      def finish
        code = Library.call(:polystream_sse_decoder_finish, pointer)
        raise Library.last_error(code) unless code == Library::OK

        nil
      end

      # The last event ID, to send as Last-Event-ID when reconnecting ("" if none).
      def last_event_id
        code = Library.call(:polystream_sse_decoder_last_event_id, pointer, @out)
        id = Library.take_string(@out)
        raise Library.last_error(code) unless code == Library::OK

        id
      end

      # The reconnection time (ms) from the last valid retry field, or nil if none came.
      def reconnection_time
        slot = Fiddle::Pointer.malloc(8, Fiddle::RUBY_FREE)
        code = Library.call(:polystream_sse_decoder_reconnection_time, pointer, slot)
        raise Library.last_error(code) if code.negative?

        code == 1 ? slot[0, 8].unpack1("Q") : nil
      end

      private

      # Events from polystream_sse_decoder_feed_packed's buffer: per event, event type, data, id
      # and retry, each followed by CR (which no field can contain).
      def unpack(packed)
        return [] if packed.nil?

        fields = packed.force_encoding(Encoding::UTF_8).split("\r", -1)
        Array.new(fields.size / 4) do |i|
          retry_ms = fields[(i * 4) + 3]
          { "event" => fields[i * 4], "data" => fields[(i * 4) + 1], "id" => fields[(i * 4) + 2],
            "retry" => retry_ms.empty? ? nil : retry_ms.to_i }
        end
      end
    end
  end
end
