// Whether the client of a request has gone away, while its handler waits for the engine.
//
// cpp-httplib 0.11 (Debian 12's) does not tell a handler that its client disconnected (later
// versions have Request::is_connection_closed), nor which socket the request came on. A TCP
// connection is named by its two ends, though: the handler knows the peer's address and port
// and the local port, and the one socket of this process with those ends is found by asking each
// open descriptor (/proc/self/fd) for its peer and local names. The handler then polls it
// without reading: a peer that closed its end shows as POLLRDHUP/POLLHUP, or as readable with
// nothing to read (a MSG_PEEK of 0 bytes). Bytes of a pipelined next request are left in place.
#pragma once

#include <string>

namespace gpt2::server {

// The descriptor of the connected TCP socket from (remote_addr, remote_port) to local_port, or -1.
int find_connection_socket(const std::string& remote_addr, int remote_port, int local_port);

// True when the peer of socket `fd` has closed the connection (or the socket is in error).
bool peer_closed(int fd);

}  // namespace gpt2::server
