// ThreadPool (thread_pool.h): dynamic claiming with generation-tagged task counters, brief
// spinning, then sleeping on a condition variable.
#include "common/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <system_error>

#include "common/error.h"

namespace gpt2 {
namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// How long an idle worker keeps polling for the next op before it sleeps, and how long the
// caller polls for the last claimed tasks before it yields its core: longer than the gap
// between two ops of one step (a few microseconds), far shorter than a scheduler time slice.
constexpr auto kWorkerSpin = std::chrono::microseconds(300);
constexpr auto kCallerSpin = std::chrono::microseconds(50);

constexpr uint64_t kClosed = 0xffffffffu;  // task index meaning "no task can be claimed"

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  try {
    for (int t = 1; t < n_threads_; ++t) threads_.emplace_back([this, t] { worker(t); });
  } catch (const std::system_error& e) {
    stop_ = true;
    generation_.fetch_add(1);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      wake_.notify_all();
    }
    for (std::thread& th : threads_) th.join();
    throw Error(std::string("cannot start CPU worker threads: ") + e.what());
  }
}

ThreadPool::~ThreadPool() {
  stop_ = true;
  generation_.fetch_add(1);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    wake_.notify_all();
  }
  for (std::thread& th : threads_) th.join();
}

void ThreadPool::parallel_for(int64_t n_tasks, const Fn& fn) {
  parallel_for(n_tasks, std::max<int64_t>(1, n_tasks / (8 * n_threads_)), fn);
}

void ThreadPool::parallel_for(int64_t n_tasks, int64_t chunk, const Fn& fn) {
  if (n_tasks <= 0) return;
  chunk = std::max<int64_t>(1, chunk);
  if (n_threads_ == 1 || n_tasks <= chunk) {
    fn(0, n_tasks, 0);
    return;
  }
  if (n_tasks >= static_cast<int64_t>(kClosed)) throw Error("internal: too many tasks for one parallel op");
  const uint32_t gen = generation_.load(std::memory_order_relaxed) + 1;
  const uint64_t tag = static_cast<uint64_t>(gen) << 32;
  // Close claiming before the job's fields change: a worker still holding the previous
  // generation fails its claim, one that sees the new generation finds no task yet.
  next_.store(tag | kClosed, std::memory_order_seq_cst);
  n_tasks_.store(n_tasks, std::memory_order_relaxed);
  chunk_.store(chunk, std::memory_order_relaxed);
  fn_.store(&fn, std::memory_order_relaxed);
  done_.store(0, std::memory_order_relaxed);
  next_.store(tag, std::memory_order_release);  // publishes the fields above
  generation_.store(gen, std::memory_order_seq_cst);
  if (sleepers_.load(std::memory_order_seq_cst) > 0) {
    std::lock_guard<std::mutex> lock(mutex_);
    wake_.notify_all();
  }

  run_chunks(gen, 0);

  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; done_.load(std::memory_order_acquire) < n_tasks; ++i) {
    if ((i & 63) == 0 && std::chrono::steady_clock::now() - start > kCallerSpin) {
      std::this_thread::yield();  // a worker is mid-task but not running: let it run
    } else {
      cpu_relax();
    }
  }
}

void ThreadPool::run_chunks(uint32_t gen, int thread) {
  for (;;) {
    uint64_t v = next_.load(std::memory_order_acquire);
    int64_t begin, n_tasks, chunk;
    do {
      if ((v >> 32) != gen) return;
      begin = static_cast<int64_t>(v & kClosed);
      n_tasks = n_tasks_.load(std::memory_order_relaxed);
      chunk = chunk_.load(std::memory_order_relaxed);
      if (begin >= n_tasks) return;
    } while (!next_.compare_exchange_weak(v, v + static_cast<uint64_t>(chunk), std::memory_order_acq_rel,
                                          std::memory_order_acquire));
    // The claim succeeded, so job `gen` cannot end before this chunk is counted as done: its
    // fields stay valid while we use them.
    const int64_t end = std::min(n_tasks, begin + chunk);
    (*fn_.load(std::memory_order_relaxed))(begin, end, thread);
    done_.fetch_add(end - begin, std::memory_order_release);
  }
}

void ThreadPool::worker(int thread) {
  uint32_t seen = 0;
  for (;;) {
    uint32_t gen = generation_.load(std::memory_order_acquire);
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; gen == seen && !stop_.load(std::memory_order_relaxed); ++i) {
      if ((i & 63) == 0 && std::chrono::steady_clock::now() - start > kWorkerSpin) {
        std::unique_lock<std::mutex> lock(mutex_);
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        while (generation_.load(std::memory_order_seq_cst) == seen && !stop_.load()) wake_.wait(lock);
        sleepers_.fetch_sub(1, std::memory_order_relaxed);
        start = std::chrono::steady_clock::now();
      } else {
        cpu_relax();
      }
      gen = generation_.load(std::memory_order_acquire);
    }
    if (stop_.load()) return;
    seen = gen;
    run_chunks(gen, thread);
  }
}

}  // namespace gpt2
