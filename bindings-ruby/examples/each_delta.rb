#!/usr/bin/env ruby
# frozen_string_literal: true

# A script: start a background response, print its text as it grows, then its final status.
#
#   polystream serve &                                   # the proxy (embedded default: no key)
#   ruby -Ilib examples/each_delta.rb "Tell me about background mode"
#
# Environment: POLYSTREAM_URL (default http://127.0.0.1:4000), POLYSTREAM_API_KEY,
# POLYSTREAM_MODEL (default polystream-mock).

$LOAD_PATH.unshift(File.expand_path("../lib", __dir__))
require "polystream"

client = Polystream::Client.new(base_url: ENV.fetch("POLYSTREAM_URL", "http://127.0.0.1:4000"),
                                api_key: ENV.fetch("POLYSTREAM_API_KEY", "sk-polystream-example"))
input = ARGV.join(" ")
input = "Hello!" if input.empty?

begin
  id = client.create(model: ENV.fetch("POLYSTREAM_MODEL", "polystream-mock"), input: input)["id"]
  $stdout.sync = true
  response = client.each_delta(id, interval: 0.1, timeout: 120) { |text| print text }
  puts
  warn "#{id}: #{response['status']}"
  exit(response["status"] == "completed" ? 0 : 1)
rescue Interrupt
  client.cancel(id) if id # stop the response (and its upstream request), not just our polling
  warn "\n#{id}: cancelled"
  exit 130
rescue Polystream::Error => e
  warn "error: #{e.message} (#{e.class})"
  exit 2
end
