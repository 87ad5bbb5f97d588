// ThreadPool: every task of every job runs exactly once, jobs never overlap, thread ids stay in
// range — over many short jobs (the decode pattern) and odd chunk sizes.
#include <catch2/catch.hpp>

#include <atomic>
#include <vector>

#include "common/thread_pool.h"

using gpt2::ThreadPool;

TEST_CASE("thread pool runs every task exactly once per job", "[cpu][pool]") {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    REQUIRE(pool.size() == threads);
    std::vector<std::atomic<int>> hits(1000);
    bool ok = true;
    for (int job = 0; job < 1000; ++job) {
      const int64_t n = 1 + (job * 37) % 1000;
      const int64_t chunk = 1 + job % 7;
      for (int64_t i = 0; i < n; ++i) hits[i].store(0);
      pool.parallel_for(n, chunk, [&](int64_t begin, int64_t end, int thread) {
        if (thread < 0 || thread >= threads || begin >= end || end > n) ok = false;
        for (int64_t i = begin; i < end; ++i) hits[i].fetch_add(1);
      });
      for (int64_t i = 0; i < n; ++i)
        if (hits[i].load() != 1) ok = false;
      if (!ok) break;
    }
    INFO("threads " << threads);
    CHECK(ok);
  }
}

TEST_CASE("thread pool default chunking covers the range", "[cpu][pool]") {
  ThreadPool pool(2);
  std::atomic<int64_t> sum{0};
  pool.parallel_for(12345, [&](int64_t begin, int64_t end, int) {
    int64_t s = 0;
    for (int64_t i = begin; i < end; ++i) s += i;
    sum += s;
  });
  CHECK(sum.load() == 12345LL * 12344 / 2);
  pool.parallel_for(0, [&](int64_t, int64_t, int) { sum = -1; });  // no tasks: fn never called
  CHECK(sum.load() == 12345LL * 12344 / 2);
}
