#include "server/connection.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace gpt2::server {
namespace {

// One end of a TCP connection as /proc/net/tcp{,6} writes it: "0100007F:1F90" is the address's
// 32-bit words, each printed as a host-order integer (so its bytes in memory are the address's
// bytes in network order), a colon, and the port in hexadecimal.
struct Endpoint {
  unsigned char addr[16] = {};
  size_t addr_len = 0;  // 4 (tcp) or 16 (tcp6)
  int port = 0;
};

bool parse_endpoint(const std::string& text, size_t addr_len, Endpoint& out) {
  const size_t colon = text.find(':');
  if (colon != addr_len * 2 || text.size() <= colon + 1) return false;
  for (size_t word = 0; word < addr_len / 4; ++word) {
    uint32_t v = 0;
    if (std::sscanf(text.c_str() + word * 8, "%8x", &v) != 1) return false;
    std::memcpy(out.addr + word * 4, &v, 4);
  }
  out.addr_len = addr_len;
  out.port = static_cast<int>(std::strtol(text.c_str() + colon + 1, nullptr, 16));
  return true;
}

// The address httplib wrote (getnameinfo's numeric form, "127.0.0.1" or "::ffff:127.0.0.1",
// maybe with a "%zone"), as the bytes /proc/net lists; false when it is neither family.
bool parse_address(std::string text, Endpoint& out) {
  const size_t zone = text.find('%');
  if (zone != std::string::npos) text.resize(zone);
  if (inet_pton(AF_INET, text.c_str(), out.addr) == 1) {
    out.addr_len = 4;
    return true;
  }
  if (inet_pton(AF_INET6, text.c_str(), out.addr) == 1) {
    out.addr_len = 16;
    return true;
  }
  return false;
}

// The socket inode of the connection (remote, local_port) in one /proc/net table, or 0.
unsigned long find_inode(const char* table, const Endpoint& remote, int local_port) {
  std::ifstream in(table);
  std::string line;
  std::getline(in, line);  // the column titles
  while (std::getline(in, line)) {
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
    std::istringstream fields(line);
    std::string sl, local_text, remote_text, st, queues, timer, retransmits;
    long uid = 0, timeout = 0;
    unsigned long inode = 0;
    if (!(fields >> sl >> local_text >> remote_text >> st >> queues >> timer >> retransmits >> uid >> timeout >>
          inode))
      continue;
    Endpoint local, peer;
    if (!parse_endpoint(local_text, remote.addr_len, local) || !parse_endpoint(remote_text, remote.addr_len, peer))
      continue;
    if (local.port == local_port && peer.port == remote.port &&
        std::memcmp(peer.addr, remote.addr, remote.addr_len) == 0 && inode != 0)
      return inode;
  }
  return 0;
}

}  // namespace

int find_connection_socket(const std::string& remote_addr, int remote_port, int local_port) {
  Endpoint remote;
  if (!parse_address(remote_addr, remote)) return -1;
  remote.port = remote_port;
  const unsigned long inode = find_inode(remote.addr_len == 4 ? "/proc/net/tcp" : "/proc/net/tcp6", remote, local_port);
  if (inode == 0) return -1;

  // The descriptor whose link reads "socket:[inode]". readlink touches no descriptor: other
  // threads may close theirs meanwhile, and this request's socket stays open while its handler runs.
  const std::string wanted = "socket:[" + std::to_string(inode) + "]";
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int found = -1;
  while (dirent* entry = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0') continue;
    char link[64];
    const std::string path = std::string("/proc/self/fd/") + entry->d_name;
    const ssize_t n = readlink(path.c_str(), link, sizeof link);
    if (n > 0 && static_cast<size_t>(n) == wanted.size() && wanted.compare(0, wanted.size(), link, n) == 0) {
      found = static_cast<int>(fd);
      break;
    }
  }
  closedir(dir);
  return found;
}

bool peer_closed(int fd) {
  if (fd < 0) return false;
  pollfd p{};
  p.fd = fd;
  p.events = POLLIN | POLLRDHUP;
  if (poll(&p, 1, 0) <= 0) return false;
  if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) return true;
  if (p.revents & POLLIN) {
    char c;
    const ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0;
  }
  return false;
}

}  // namespace gpt2::server
