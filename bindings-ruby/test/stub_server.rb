# frozen_string_literal: true

require "json"
require "socket"

# A tiny HTTP/1.1 server on a thread, for what the real proxy will not do on demand (a 429 with
# Retry-After, an HTML 502, a connection dropped mid-request). The handler gets
# (method, path, headers, body, connection_number, request_number_on_that_connection) and returns
# [status, headers, body], or :drop to close the connection without answering, or :hang to never
# answer. Connections are kept alive.
class StubServer
  Request = Struct.new(:method, :path, :headers, :body, :connection)

  attr_reader :requests, :connections, :port

  def initialize(&handler)
    @handler = handler
    @server = TCPServer.new("127.0.0.1", 0)
    @port = @server.addr[1]
    @requests = Queue.new
    @connections = 0
    @open = []
    @thread = Thread.new { accept_loop }
  end

  def url = "http://127.0.0.1:#{@port}"

  def all_requests
    out = []
    out << @requests.pop until @requests.empty?
    out
  end

  def close
    @server.close
    @open.each { |s| s.close unless s.closed? }
    @thread.kill
    @thread.join(1)
  end

  private

  def accept_loop
    loop do
      sock = @server.accept
      @connections += 1
      @open << sock
      n = @connections
      Thread.new { serve(sock, n) }
    end
  rescue IOError, SystemCallError
    nil
  end

  def serve(sock, conn)
    count = 0
    loop do
      line = sock.gets or break
      method, path, = line.split(" ")
      headers = {}
      while (h = sock.gets) && h != "\r\n"
        k, v = h.split(":", 2)
        headers[k.downcase] = v.strip
      end
      body = sock.read(headers.fetch("content-length", "0").to_i)
      count += 1
      @requests << Request.new(method, path, headers, body, conn)
      reply = @handler.call(method, path, headers, body, conn, count)
      break if reply == :drop
      next sleep(3600) if reply == :hang

      status, extra, payload = reply
      payload = JSON.generate(payload) unless payload.is_a?(String)
      head = ["HTTP/1.1 #{status} X", "Content-Length: #{payload.bytesize}"]
      head << "Content-Type: application/json" unless extra.key?("content-type")
      extra.each { |k, v| head << "#{k}: #{v}" }
      sock.write(head.join("\r\n") + "\r\n\r\n" + payload)
    end
  rescue IOError, SystemCallError
    nil
  ensure
    sock.close unless sock.closed?
  end
end
