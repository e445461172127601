# frozen_string_literal: true

module Polystream
  module Native
    # The lifecycle every native object shares. The native handle lives in a Fiddle::Pointer
    # whose free function is the handle's +*_free+: #close frees it at once (the block form of
    # .open calls #close for you), and an object dropped without #close is freed when Ruby's GC
    # collects the pointer. Fiddle runs a pointer's free function at most once, so #close
    # followed by GC never frees twice. Not thread-safe: use one object from one thread at a time.
    class Handle
      # Creates the object, yields it, and closes it when the block returns or raises. Without a
      # block, returns the object (close it yourself, or let GC do it).
      def self.open(*args, **kwargs)
        handle = new(*args, **kwargs)
        return handle unless block_given?

        begin
          yield handle
        ensure
          handle.close
        end
      end

      # Frees the native handle now. Idempotent.
      def close
        @pointer.call_free unless @pointer.nil? || @pointer.freed?
        nil
      end

      def closed?
        @pointer.nil? || @pointer.freed?
      end

      private

      # Takes ownership of +address+ (a Fiddle::Pointer returned by a +*_new+ function), freed by
      # +free_fn+. A NULL address means creation failed: raise the library's last error.
      def adopt(address, free_fn)
        raise Library.last_error if address.null?

        @pointer = Fiddle::Pointer.new(address.to_i, 0, Library.fn(free_fn))
        @out = Library.out_slot
      end

      def pointer
        raise ClosedError.new("#{self.class.name} is closed", kind: "closed") if closed?

        @pointer
      end
    end
  end
end
