# frozen_string_literal: true

module Polystream
  # What one Client#poll returns: only what is new since the cursor it was given.
  #
  # - +id+:     the response id
  # - +status+: the status now ("queued", "in_progress", "completed", "failed", "incomplete",
  #             "cancelled")
  # - +text+:   the output text added since the cursor ("" when nothing new)
  # - +events+: the Responses-API events since the cursor (Hashes with "type" and
  #             "sequence_number"; the terminal one carries the final "response")
  # - +cursor+: pass it to the next poll
  # - +done+:   true once the status is terminal (also +done?+)
  PollResult = Struct.new(:id, :status, :text, :events, :cursor, :done, keyword_init: true) do
    def self.from_json(hash)
      new(id: hash["id"], status: hash["status"], text: hash["text"] || "", events: hash["events"] || [],
          cursor: Integer(hash.fetch("cursor")), done: hash["done"] ? true : false)
    end

    def done? = done

    # The final Response Hash carried by this poll's terminal event, or nil.
    def response
      event = events.reverse_each.find { |e| e.is_a?(Hash) && e["response"].is_a?(Hash) }
      event && Client::TERMINAL.include?(event["response"]["status"]) ? event["response"] : nil
    end
  end
end
