// Host memory bounds: what this process may hold, what the engine's large host buffers hold now,
// and the one check (and the one message) for a run that would need more.
//
// Why up front: with Linux's overcommit, malloc grants far more than the machine has, and the
// first touch of the pages then gets the process killed by the OOM killer with no message at
// all. So every large host buffer (the host copy of the weights, the CPU backend's weights,
// activations and KV cache, logits read back to the host, the inspect commands' recordings,
// score's token arrays, the server's per-choice room) is counted here before it is allocated,
// and one that would pass the limit is refused with gpt2::Error, one line giving both numbers:
//   out of host memory: the KV cache (100000 slots) needs 7.0 TiB (7.0 TiB with the 482 MiB held
//   already) but this machine has 23.5 GiB
// The CLI also checks a run's shape (KV cache, activations, logits: model/gpt2.h run_bytes)
// before the weights are read, so that an impossible request fails in milliseconds.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <string>

namespace gpt2 {

// The bytes this process may hold: physical RAM, or less under a cgroup limit (v2 or v1).
// Read once.
size_t host_memory_limit();

// Bytes counted by the HostMemory objects alive now.
size_t host_memory_held();

// "512 KiB", "482 MiB", "23.5 GiB", "7.0 TiB".
std::string format_bytes(size_t bytes);

// The product of sizes, saturating at SIZE_MAX instead of wrapping (shapes from a file's header or
// a command line can multiply past 2^64): a saturated product is simply refused.
size_t mul_sizes(std::initializer_list<size_t> factors);
// a + b, saturating.
size_t add_sizes(size_t a, size_t b);

// Throws gpt2::Error (the message above) when `bytes` more than host_memory_held() would pass
// host_memory_limit(). `what` names the buffer: "the KV cache (8 slots)".
void check_host_memory(size_t bytes, const std::string& what);

// `bytes` of host memory counted while the object lives: checked (check_host_memory) by the
// constructor, released by the destructor. The owner of a large buffer holds one beside it, made
// before the buffer is allocated. Move-only.
class HostMemory {
 public:
  HostMemory() = default;
  HostMemory(size_t bytes, const std::string& what);
  HostMemory(HostMemory&& o) noexcept : bytes_(o.bytes_) { o.bytes_ = 0; }
  HostMemory& operator=(HostMemory&& o) noexcept;
  HostMemory(const HostMemory&) = delete;
  HostMemory& operator=(const HostMemory&) = delete;
  ~HostMemory() { release(); }

  size_t bytes() const { return bytes_; }
  // Counts `bytes` instead (the check applies to the growth only).
  void resize(size_t bytes, const std::string& what);

 private:
  void release();
  size_t bytes_ = 0;
};

}  // namespace gpt2
