// The one parallel-for of gpt2: a small fork-join thread pool, used by the CPU backend's ops, weight
// packing, and the loader's conversion, all sized by --threads.
//
// Why not OpenMP: a decode step issues ~90 short parallel ops. libgomp's workers spin ~0.3 ms
// and then sleep; on a busy machine (more runnable threads than cores) every op then waits a
// scheduler time slice for a descheduled worker — measured on a loaded 2-core machine: 0.9
// tok/s with 2 OpenMP threads against 17 tok/s with 1. Here:
//   - tasks are claimed dynamically (an atomic counter), so a worker that is not running
//     simply gets no tasks: the caller does them, nobody waits for a sleeping thread to
//     start;
//   - idle workers spin briefly (enough for the gap between two ops of one step), then sleep
//     on a condition variable;
//   - the caller waits for claimed tasks only, spinning briefly and then yielding.
// Results never depend on which thread runs a task: every task writes its own outputs.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace gpt2 {

class ThreadPool {
 public:
  // n_threads counts the caller: n_threads - 1 workers are started.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(begin, end, thread) over [0, n_tasks) in chunks of `chunk` tasks; `thread` is in
  // [0, size()) (0 = the caller) and identifies per-thread scratch memory. Returns when every
  // task is done. Not reentrant: fn must not call parallel_for.
  using Fn = std::function<void(int64_t begin, int64_t end, int thread)>;
  void parallel_for(int64_t n_tasks, int64_t chunk, const Fn& fn);
  // Chunks of about n_tasks / (8 * size()) tasks: balance and few claims.
  void parallel_for(int64_t n_tasks, const Fn& fn);

 private:
  void worker(int thread);
  // Claims and runs chunks of job `gen` until none are left; returns when it ran none more.
  void run_chunks(uint32_t gen, int thread);

  int n_threads_;
  std::vector<std::thread> threads_;
  // The current job. `next_` packs (generation << 32 | next task index): a claim succeeds only
  // for the generation it was made for, so a late worker never takes a task of a newer job.
  std::atomic<uint64_t> next_{0};
  std::atomic<int64_t> done_{0};  // tasks finished in the current job
  std::atomic<int64_t> n_tasks_{0};  // atomics: read by workers racing with the next job's setup
  std::atomic<int64_t> chunk_{1};
  std::atomic<const Fn*> fn_{nullptr};
  std::atomic<uint32_t> generation_{0};
  std::atomic<bool> stop_{false};
  std::atomic<int> sleepers_{0};
  std::mutex mutex_;
  std::condition_variable wake_;
};

}  // namespace gpt2
