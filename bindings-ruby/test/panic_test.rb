# frozen_string_literal: true

require_relative "test_helper"
require "open3"
require "rbconfig"

# A panic inside the Rust library is caught at the C boundary and comes back as a Ruby exception;
# the process lives on.
class PanicTest < Minitest::Test
  LIB = File.expand_path("../lib", __dir__)

  def test_a_native_panic_raises_native_panic_and_the_process_goes_on
    error = assert_raises(Polystream::NativePanic) { Polystream::Native.debug_panic! }
    assert_equal "panic", error.kind
    assert_equal(-3, error.native_code)
    assert_match(/polystream_debug_panic called/, error.message)
    assert_kind_of Polystream::Error, error
    # Still alive, and the library still works.
    Polystream::Native::SSEDecoder.open do |d|
      assert_equal ["alive"], d.feed("data: alive\n\n").map { |e| e["data"] }
    end
  end

  def test_a_separate_process_survives_repeated_panics_and_exits_cleanly
    script = <<~RUBY
      require "polystream"
      caught = 0
      100.times do
        Polystream::Native.debug_panic!
      rescue Polystream::NativePanic
        caught += 1
      end
      puts "caught \#{caught}"
    RUBY
    out, err, status = Open3.capture3(RbConfig.ruby, "-I", LIB, "-e", script)
    assert status.success?, "child died: #{status.inspect}\n#{err}"
    assert_equal "caught 100\n", out
    # Rust's panic hook reports each panic on stderr; the process still exits 0.
    assert_match(/polystream_debug_panic called/, err)
  end
end
