// Whether the client of a request has gone away, while its handler waits for the engine.
//
// cpp-httplib 0.11 (Debian 12's) does not tell a handler that its client disconnected (later
// versions have Request::is_connection_closed), nor which socket the request came on. A TCP
// connection is named by its two ends, though: the handler knows the peer's address and port
// and the local port. The kernel's table of connections (/proc/net/tcp, tcp6) gives the socket
// inode of the connection with those ends, and the descriptor of this process whose link
// (/proc/self/fd/N) reads "socket:[inode]" is its socket. Nothing is asked of any descriptor
// but that one (other threads close theirs meanwhile: asking each descriptor for its names, as
// an earlier version did, raced with those closes). The handler then polls it
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
