#include "server/http_client.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

#include "common/error.h"

namespace gpt2::server {
namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  const size_t e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

bool wait_for(int fd, short events, double timeout_s) {
  pollfd p{};
  p.fd = fd;
  p.events = events;
  for (;;) {
    const int r = poll(&p, 1, static_cast<int>(timeout_s * 1000));
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) return false;
  }
}

}  // namespace

std::string HttpResponse::header(const std::string& name) const {
  const auto it = headers.find(lower(name));
  return it == headers.end() ? std::string() : it->second;
}

HttpConnection::HttpConnection(const std::string& host, int port, double timeout_s, int receive_buffer)
    : timeout_s_(timeout_s) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  if (getaddrinfo(host.c_str(), service.c_str(), &hints, &res) != 0 || res == nullptr)
    throw Error("cannot resolve " + host);
  std::string why = "no address";
  for (addrinfo* a = res; a != nullptr && fd_ < 0; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    if (receive_buffer > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
      fd_ = fd;
    } else {
      why = std::strerror(errno);
      ::close(fd);
    }
  }
  freeaddrinfo(res);
  if (fd_ < 0) throw Error("cannot connect to " + host + ":" + service + ": " + why);
  const int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

HttpConnection::~HttpConnection() { close(); }

void HttpConnection::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void HttpConnection::send_raw(const std::string& bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    if (fd_ < 0 || !wait_for(fd_, POLLOUT, timeout_s_)) throw Error("HTTP client: timed out sending");
    const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(std::string("HTTP client: send failed: ") + std::strerror(errno));
    }
    sent += static_cast<size_t>(n);
  }
}

void HttpConnection::send(const std::string& method, const std::string& path, const std::string& body,
                          const std::vector<std::string>& headers, const std::string& content_type) {
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  for (const std::string& h : headers) req += h + "\r\n";
  if (!body.empty() || method == "POST" || method == "PUT") {
    req += "Content-Type: " + content_type + "\r\n";
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  req += "\r\n";
  req += body;
  send_raw(req);
}

bool HttpConnection::fill() {
  if (fd_ < 0) return false;
  if (at_ > 0 && at_ == buf_.size()) {
    buf_.clear();
    at_ = 0;
  }
  char tmp[16384];
  for (;;) {
    if (!wait_for(fd_, POLLIN, timeout_s_)) throw Error("HTTP client: timed out waiting for the server");
    const ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ECONNRESET) return false;
      throw Error(std::string("HTTP client: recv failed: ") + std::strerror(errno));
    }
    if (n == 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }
}

std::string HttpConnection::read_line() {
  for (;;) {
    const size_t nl = buf_.find('\n', at_);
    if (nl != std::string::npos) {
      std::string line = buf_.substr(at_, nl - at_);
      at_ = nl + 1;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      return line;
    }
    if (buf_.size() - at_ > (1u << 20)) throw Error("HTTP client: a header line over 1 MiB");
    if (!fill()) throw Error("HTTP client: the connection closed in the middle of the response head");
  }
}

HttpResponse HttpConnection::read_head() {
  HttpResponse r;
  const std::string status = read_line();
  if (status.compare(0, 5, "HTTP/") != 0 || status.size() < 12) throw Error("HTTP client: bad status line '" + status + "'");
  r.status = std::stoi(status.substr(9, 3));
  for (;;) {
    const std::string line = read_line();
    if (line.empty()) break;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    r.headers[lower(line.substr(0, colon))] = trim(line.substr(colon + 1));
  }
  reusable_ = lower(r.header("connection")) != "close";
  chunk_open_ = false;
  if (lower(r.header("transfer-encoding")).find("chunked") != std::string::npos) {
    body_ = Body::chunked;
    left_ = 0;
  } else if (!r.header("content-length").empty()) {
    body_ = Body::length;
    left_ = std::stoull(r.header("content-length"));
    if (left_ == 0) body_ = Body::none;
  } else {
    body_ = Body::until_close;
    reusable_ = false;
  }
  return r;
}

bool HttpConnection::read_body_piece(std::string& piece) {
  piece.clear();
  auto take = [&](size_t max) {
    const size_t n = std::min(max, buf_.size() - at_);
    piece.append(buf_, at_, n);
    at_ += n;
    return n;
  };
  switch (body_) {
    case Body::none: return false;
    case Body::length:
      if (left_ == 0) {
        body_ = Body::none;
        return false;
      }
      if (at_ == buf_.size() && !fill()) throw Error("HTTP client: the connection closed in the middle of the body");
      left_ -= take(left_);
      return true;
    case Body::until_close:
      if (at_ == buf_.size() && !fill()) {
        body_ = Body::none;
        return false;
      }
      take(buf_.size() - at_);
      return true;
    case Body::chunked:
      for (;;) {
        if (!chunk_open_) {
          const std::string size_line = read_line();
          const size_t size = std::stoull(size_line, nullptr, 16);
          if (size == 0) {
            while (!read_line().empty()) {
            }  // trailers
            body_ = Body::none;
            return false;
          }
          left_ = size;
          chunk_open_ = true;
        }
        while (left_ > 0) {
          if (at_ == buf_.size() && !fill()) throw Error("HTTP client: the connection closed in the middle of a chunk");
          left_ -= take(left_);
        }
        read_line();  // the CRLF after the chunk
        chunk_open_ = false;
        if (!piece.empty()) return true;
      }
  }
  return false;
}

HttpResponse HttpConnection::read_response() {
  HttpResponse r = read_head();
  std::string piece;
  while (read_body_piece(piece)) r.body += piece;
  return r;
}

HttpResponse http_request(const std::string& host, int port, const std::string& method, const std::string& path,
                          const std::string& body, const std::vector<std::string>& headers, double timeout_s) {
  HttpConnection conn(host, port, timeout_s);
  std::vector<std::string> h = headers;
  h.push_back("Connection: close");
  conn.send(method, path, body, h);
  return conn.read_response();
}

bool SseReader::next(std::string& data) {
  for (;;) {
    // An event ends with a blank line; its "data: " lines are the payload.
    const size_t end = pending_.find("\n\n");
    if (end != std::string::npos) {
      const std::string event = pending_.substr(0, end);
      pending_.erase(0, end + 2);
      data.clear();
      bool any = false;
      size_t at = 0;
      while (at <= event.size()) {
        size_t nl = event.find('\n', at);
        if (nl == std::string::npos) nl = event.size();
        const std::string line = event.substr(at, nl - at);
        if (line.compare(0, 5, "data:") == 0) {
          if (any) data += "\n";
          data += line.size() > 5 && line[5] == ' ' ? line.substr(6) : line.substr(5);
          any = true;
        }
        at = nl + 1;
      }
      if (any) return true;
      continue;  // a comment or an event without data
    }
    if (ended_) return false;
    std::string piece;
    if (!conn_.read_body_piece(piece)) {
      ended_ = true;
      if (pending_.find_first_not_of("\r\n") == std::string::npos) return false;
      pending_ += "\n\n";
      continue;
    }
    pending_ += piece;
  }
}

}  // namespace gpt2::server
