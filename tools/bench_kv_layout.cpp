// Fixed KV slots versus paged blocks (vLLM's PagedAttention), measured: the decode attention of
// one query over n cached keys of one head (head_dim 64), with the keys and values either in one
// contiguous slot [n_ctx, 64] (what gpt2 does) or in blocks of 16 positions scattered over a pool
// and found through a block table. Both loops are the same arithmetic (scores, softmax, weighted
// sum of values); the difference is the block table's indirection and the lost streaming.
//
//   build/bench_kv_layout --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// The memory side needs no benchmark: a fixed slot reserves n_ctx positions whatever the sequence
// uses; README "Design notes" works out both for the mixed workload of `gpt2 bench --mixed`.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

namespace {

constexpr int kHeadDim = 64;
constexpr int kBlock = 16;   // positions per page (vLLM's default block size)
constexpr int kCtx = 1024;   // GPT-2's context
constexpr int kPool = 64 * kCtx / kBlock;  // blocks in the pool: as if 64 sequences shared it

// One query over n keys: scores, softmax, the weighted sum of values. row(cache, j) is where
// position j's 64 values of `cache` live: the one difference between the layouts.
template <typename Row>
float attend(const float* q, int n, const float* k, const float* v, Row row, float* scores, float* out) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(kHeadDim));
  float m = -INFINITY;
  for (int j = 0; j < n; ++j) {
    const float* kr = row(k, j);
    float s = 0;
    for (int d = 0; d < kHeadDim; ++d) s += q[d] * kr[d];
    scores[j] = s * scale;
    m = std::max(m, scores[j]);
  }
  float sum = 0;
  for (int j = 0; j < n; ++j) sum += scores[j] = std::exp(scores[j] - m);
  std::fill(out, out + kHeadDim, 0.0f);
  for (int j = 0; j < n; ++j) {
    const float* vr = row(v, j);
    const float p = scores[j] / sum;
    for (int d = 0; d < kHeadDim; ++d) out[d] += p * vr[d];
  }
  return out[0];
}

struct Data {
  std::vector<float> q, k, v, pool_k, pool_v;
  std::vector<int> block_table;  // logical block -> pool block
  Data() : q(kHeadDim), k(static_cast<size_t>(kCtx) * kHeadDim), v(k.size()),
           pool_k(static_cast<size_t>(kPool) * kBlock * kHeadDim), pool_v(pool_k.size()), block_table(kCtx / kBlock) {
    std::mt19937 rng(1);
    std::normal_distribution<float> g(0.0f, 1.0f);
    for (float& x : q) x = g(rng);
    for (float& x : k) x = g(rng);
    for (float& x : v) x = g(rng);
    std::vector<int> blocks(kPool);
    std::iota(blocks.begin(), blocks.end(), 0);
    std::shuffle(blocks.begin(), blocks.end(), rng);
    for (size_t b = 0; b < block_table.size(); ++b) block_table[b] = blocks[b];
    for (int j = 0; j < kCtx; ++j) {  // the same keys and values, scattered
      const size_t at = (static_cast<size_t>(block_table[j / kBlock]) * kBlock + j % kBlock) * kHeadDim;
      std::copy_n(&k[static_cast<size_t>(j) * kHeadDim], kHeadDim, &pool_k[at]);
      std::copy_n(&v[static_cast<size_t>(j) * kHeadDim], kHeadDim, &pool_v[at]);
    }
  }
};

// Contiguous slot: row j at base + j * 64, so the loops stream.
void BM_fixed_slot(benchmark::State& state) {
  static Data data;
  const int n = static_cast<int>(state.range(0));
  std::vector<float> scores(kCtx), out(kHeadDim);
  auto row = [](const float* base, int j) { return base + static_cast<size_t>(j) * kHeadDim; };
  for (auto _ : state)
    benchmark::DoNotOptimize(attend(data.q.data(), n, data.k.data(), data.v.data(), row, scores.data(), out.data()));
  state.SetItemsProcessed(state.iterations() * n);
}

// Paged: row j in block block_table[j / 16] of the pool, looked up for every key.
void BM_paged_blocks(benchmark::State& state) {
  static Data data;
  const int n = static_cast<int>(state.range(0));
  std::vector<float> scores(kCtx), out(kHeadDim);
  const int* table = data.block_table.data();
  auto row = [table](const float* pool, int j) {
    return pool + (static_cast<size_t>(table[j / kBlock]) * kBlock + j % kBlock) * kHeadDim;
  };
  for (auto _ : state)
    benchmark::DoNotOptimize(
        attend(data.q.data(), n, data.pool_k.data(), data.pool_v.data(), row, scores.data(), out.data()));
  state.SetItemsProcessed(state.iterations() * n);
}

}  // namespace

BENCHMARK(BM_fixed_slot)->Arg(128)->Arg(512)->Arg(1024);
BENCHMARK(BM_paged_blocks)->Arg(128)->Arg(512)->Arg(1024);
BENCHMARK_MAIN();
