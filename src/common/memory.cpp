#include "common/memory.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <fstream>

#include <unistd.h>

#include "common/error.h"

namespace gpt2 {

namespace {

std::atomic<size_t> g_held{0};

size_t read_limit() {
  size_t limit = SIZE_MAX;
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGE_SIZE)
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  if (pages > 0 && page > 0) limit = mul_sizes({static_cast<size_t>(pages), static_cast<size_t>(page)});
#endif
  for (const char* path : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    std::ifstream in(path);
    unsigned long long value = 0;
    if (in >> value && value > 0) limit = std::min<size_t>(limit, static_cast<size_t>(value));  // "max" fails
  }
  return limit;
}

}  // namespace

size_t host_memory_limit() {
  static const size_t limit = read_limit();
  return limit;
}

size_t host_memory_held() { return g_held.load(); }

std::string format_bytes(size_t bytes) {
  const double b = static_cast<double>(bytes);
  char text[64];
  if (bytes < (size_t{1} << 20)) std::snprintf(text, sizeof text, "%.0f KiB", b / 1024);
  else if (bytes < (size_t{1} << 30)) std::snprintf(text, sizeof text, "%.0f MiB", b / (1 << 20));
  else if (bytes < (size_t{1} << 40)) std::snprintf(text, sizeof text, "%.1f GiB", b / (1 << 30));
  else std::snprintf(text, sizeof text, "%.1f TiB", b / static_cast<double>(size_t{1} << 40));
  return text;
}

size_t mul_sizes(std::initializer_list<size_t> factors) {
  size_t product = 1;
  for (size_t f : factors) {
    if (f == 0) return 0;
    if (product > SIZE_MAX / f) product = SIZE_MAX;
    else product *= f;
  }
  return product;
}

size_t add_sizes(size_t a, size_t b) { return a > SIZE_MAX - b ? SIZE_MAX : a + b; }

namespace {

[[noreturn]] void refuse(size_t bytes, size_t held, const std::string& what) {
  std::string message = "out of host memory: " + what + " needs " + format_bytes(bytes);
  if (held >= (size_t{1} << 20))
    message += " (" + format_bytes(add_sizes(held, bytes)) + " with the " + format_bytes(held) + " held already)";
  throw Error(message + " but this machine has " + format_bytes(host_memory_limit()));
}

}  // namespace

void check_host_memory(size_t bytes, const std::string& what) {
  const size_t held = host_memory_held();
  if (add_sizes(held, bytes) > host_memory_limit()) refuse(bytes, held, what);
}

namespace {

// Checked and counted in one atomic step, so that two threads cannot both pass the check.
void count(size_t bytes, const std::string& what) {
  size_t held = g_held.load();
  do {
    if (add_sizes(held, bytes) > host_memory_limit()) refuse(bytes, held, what);
  } while (!g_held.compare_exchange_weak(held, held + bytes));
}

}  // namespace

HostMemory::HostMemory(size_t bytes, const std::string& what) {
  count(bytes, what);
  bytes_ = bytes;
}

HostMemory& HostMemory::operator=(HostMemory&& o) noexcept {
  if (this != &o) {
    release();
    bytes_ = o.bytes_;
    o.bytes_ = 0;
  }
  return *this;
}

void HostMemory::resize(size_t bytes, const std::string& what) {
  if (bytes > bytes_) count(bytes - bytes_, what);
  else g_held -= bytes_ - bytes;
  bytes_ = bytes;
}

void HostMemory::release() {
  g_held -= bytes_;
  bytes_ = 0;
}

}  // namespace gpt2
