# frozen_string_literal: true

require "fiddle"
require "json"
require "rbconfig"

module Polystream
  module Native
    # Finds and opens libpolystream (rust/capi), declares its functions, and turns its return
    # codes and thread-local last error into Ruby exceptions.
    #
    # Where the library is looked for, first match wins:
    # 1. ENV["POLYSTREAM_LIB"]: the path of the shared library itself;
    # 2. the cargo target directory (ENV["CARGO_TARGET_DIR"], else <repo>/target): release/, then debug/.
    module Library
      ABI_VERSION = 1
      REPO_ROOT = File.expand_path("../../../..", __dir__)

      OK = 0

      module_function

      def file_name
        case RbConfig::CONFIG["host_os"]
        when /darwin/ then "libpolystream.dylib"
        when /mswin|mingw|cygwin/ then "polystream.dll"
        else "libpolystream.so"
        end
      end

      def candidates
        return [ENV["POLYSTREAM_LIB"]] if ENV["POLYSTREAM_LIB"] && !ENV["POLYSTREAM_LIB"].empty?

        target = ENV["CARGO_TARGET_DIR"] || File.join(REPO_ROOT, "target")
        %w[release debug].map { |profile| File.join(target, profile, file_name) }
      end

      def path
        @path ||= candidates.find { |p| File.file?(p) } or
          raise LoadError, "polystream native library not found (looked in #{candidates.join(', ')}); " \
                           "build it with `cargo build --release -p polystream-capi` or set POLYSTREAM_LIB"
      end

      def handle
        @handle ||= Fiddle.dlopen(path)
      end

      V = Fiddle::TYPE_VOIDP
      SZ = Fiddle::TYPE_SIZE_T
      I32 = Fiddle::TYPE_INT32_T
      I64 = Fiddle::TYPE_INT64_T
      U32 = -Fiddle::TYPE_INT32_T # Fiddle spells unsigned types as the negated signed ones
      VOID = Fiddle::TYPE_VOID

      SIGNATURES = {
        polystream_abi_version: [[], U32],
        polystream_string_free: [[V], VOID],
        polystream_bytes_free: [[V, SZ], VOID],
        polystream_dialect_names: [[V], I32],
        polystream_debug_panic: [[], I32],
        polystream_last_error_code: [[], I32],
        polystream_last_error_kind: [[], V],
        polystream_last_error_message: [[], V],
        polystream_last_error_detail: [[], V],
        polystream_sse_decoder_new: [[SZ], V],
        polystream_sse_decoder_free: [[V], VOID],
        polystream_sse_decoder_feed: [[V, V, SZ, V], I32],
        polystream_sse_decoder_feed_packed: [[V, V, SZ, V, V], I32],
        polystream_sse_decoder_finish: [[V], I32],
        polystream_sse_decoder_last_event_id: [[V, V], I32],
        polystream_sse_decoder_reconnection_time: [[V, V], I32],
        polystream_chunk_decoder_new_with_options: [[V, SZ, U32], V],
        polystream_chunk_decoder_free: [[V], VOID],
        polystream_chunk_decoder_feed: [[V, V, SZ, V], I32],
        polystream_chunk_decoder_finish: [[V, V], I32],
        polystream_chunk_decoder_is_done: [[V], I32],
        polystream_chunk_decoder_snapshot: [[V, V], I32],
        polystream_accumulator_new: [[], V],
        polystream_accumulator_free: [[V], VOID],
        polystream_accumulator_add: [[V, V, SZ], I32],
        polystream_accumulator_snapshot: [[V, V], I32],
        polystream_accumulator_chunk_count: [[V], I64],
      }.freeze

      ACCUMULATE = 1

      # The Fiddle::Function for +name+ (declared once, on first use).
      def fn(name)
        functions.fetch(name)
      end

      def functions
        @functions ||= begin
          fns = SIGNATURES.to_h do |name, (args, ret)|
            [name, Fiddle::Function.new(handle[name.to_s], args, ret, name: name.to_s)]
          end
          version = fns[:polystream_abi_version].call
          unless version == ABI_VERSION
            raise LoadError, "#{path} implements polystream ABI #{version}, this binding needs #{ABI_VERSION}"
          end
          fns.freeze
        end
      end

      # Calls +name+ with +args+.
      def call(name, *args)
        fn(name).call(*args)
      end

      # A NUL-terminated string the library lends (the last-error accessors), or nil.
      def borrowed_string(ptr)
        ptr.null? ? nil : ptr.to_s.force_encoding(Encoding::UTF_8)
      end

      # Takes the owned string in the out-parameter +out+ (a pointer-sized Fiddle::Pointer): copies
      # it, frees it, clears +out+. Returns nil if the library left it NULL.
      def take_string(out)
        ptr = out.ptr
        return nil if ptr.null?

        begin
          ptr.to_s.force_encoding(Encoding::UTF_8)
        ensure
          out[0, Fiddle::SIZEOF_VOIDP] = NULL_BYTES
          fn(:polystream_string_free).call(ptr)
        end
      end

      NULL_BYTES = ("\0" * Fiddle::SIZEOF_VOIDP).b.freeze
      SIZE_T_FORMAT = Fiddle::SIZEOF_SIZE_T == 8 ? "Q" : "L"

      # Takes the byte buffer in the out-parameters +out+/+len_slot+ (pointer and size_t) and frees
      # it. Returns nil if the library left it NULL.
      def take_bytes(out, len_slot)
        ptr = out.ptr
        return nil if ptr.null?

        len = len_slot[0, Fiddle::SIZEOF_SIZE_T].unpack1(SIZE_T_FORMAT)
        begin
          ptr.to_s(len)
        ensure
          out[0, Fiddle::SIZEOF_VOIDP] = NULL_BYTES
          fn(:polystream_bytes_free).call(ptr, len)
        end
      end

      # A pointer-sized out-parameter slot, freed by Ruby's GC.
      def out_slot
        slot = Fiddle::Pointer.malloc(Fiddle::SIZEOF_VOIDP, Fiddle::RUBY_FREE)
        slot[0, Fiddle::SIZEOF_VOIDP] = NULL_BYTES
        slot
      end

      # The last error of this thread as a Polystream::Error (never raises it).
      def last_error(code = nil, partial: nil, completion: nil)
        kind = borrowed_string(call(:polystream_last_error_kind))
        message = borrowed_string(call(:polystream_last_error_message))
        detail_text = borrowed_string(call(:polystream_last_error_detail))
        code ||= call(:polystream_last_error_code)
        detail = detail_text ? JSON.parse(detail_text) : {}
        klass = ERROR_KINDS.fetch(kind) { Error }
        klass.new(message || "polystream native error #{code}", kind: kind, native_code: code,
                                                                detail: detail, partial: partial,
                                                                completion: completion)
      end

      # Parses JSON handed out by the library.
      def parse(json)
        JSON.parse(json)
      end

      def dialect_names
        out = out_slot
        code = call(:polystream_dialect_names, out)
        names = take_string(out)
        raise last_error(code) unless code == OK

        parse(names)
      end

      def debug_panic!
        code = call(:polystream_debug_panic)
        raise last_error(code)
      end
    end
  end
end
