// A small blocking HTTP/1.1 client for talking to `gpt2 serve` over loopback: the server's tests
// and tools/serve_load use it. (httplib's own Client cannot be used with Debian's compiled
// libcpp-httplib without its OpenSSL macro, which changes the Client's layout; this client also
// lets a test do what a well-behaved library would not: send malformed requests, stop reading,
// or drop the connection mid-stream.)
//
// Every wait is bounded by the connection's timeout; errors throw gpt2::Error.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace gpt2::server {

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;                            // de-chunked
  std::string header(const std::string& name) const;  // "" when absent
};

class HttpConnection {
 public:
  // Connects to host:port (a numeric address or "localhost"); timeout bounds every read/write.
  // receive_buffer > 0 caps the socket's receive buffer (SO_RCVBUF, set before connecting, so the
  // TCP window stays that small): a client that stops reading then stalls the server quickly.
  HttpConnection(const std::string& host, int port, double timeout_s = 30, int receive_buffer = 0);
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  // Sends a request (Content-Length set from body; "Host" added). Extra headers as "Name: value".
  void send(const std::string& method, const std::string& path, const std::string& body = "",
            const std::vector<std::string>& headers = {}, const std::string& content_type = "application/json");
  // Sends raw bytes as they are.
  void send_raw(const std::string& bytes);

  // Reads a response's status line and headers; then read_body_piece() until it returns false.
  HttpResponse read_head();
  // The next piece of the body (a chunk, or what arrived); false at its end.
  bool read_body_piece(std::string& piece);
  // read_head() and the whole body.
  HttpResponse read_response();

  // Whether the server may take another request on this connection.
  bool reusable() const { return reusable_; }
  void close();
  int fd() const { return fd_; }

 private:
  bool fill();  // reads more into buf_; false at EOF
  std::string read_line();

  int fd_ = -1;
  double timeout_s_;
  std::string buf_;
  size_t at_ = 0;  // start of unread bytes in buf_
  // the body being read
  enum class Body { none, length, chunked, until_close } body_ = Body::none;
  size_t left_ = 0;  // bytes of the body (length) or of the current chunk (chunked)
  bool reusable_ = false;
  bool chunk_open_ = false;
};

// One request on a fresh connection, the whole response.
HttpResponse http_request(const std::string& host, int port, const std::string& method, const std::string& path,
                          const std::string& body = "", const std::vector<std::string>& headers = {},
                          double timeout_s = 30);

// Server-Sent Events over a response body: the payload of each "data: ..." line in order.
class SseReader {
 public:
  explicit SseReader(HttpConnection& conn) : conn_(conn) {}
  // The next event's data; false at the end of the body.
  bool next(std::string& data);

 private:
  HttpConnection& conn_;
  std::string pending_;
  bool ended_ = false;
};

}  // namespace gpt2::server
