# frozen_string_literal: true

module Polystream
  VERSION = "0.1.0"
end
