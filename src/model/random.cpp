// Seeded random GPT-2 weights with the real shapes, for benchmarks and tests without a
// download (`-m random:gpt2` ... `random:gpt2-xl`).
//
// Scales follow GPT-2's initialization (Radford et al. 2019; HF GPT2PreTrainedModel._init_weights):
// matrices and wte ~ N(0, 0.02), the residual projections (attn.c_proj, mlp.c_proj) scaled by
// 1/sqrt(2 * n_layer), wpe ~ N(0, 0.01); LayerNorm gains 1 + N(0, 0.02) and small biases
// N(0, 0.01), so the activations have realistic magnitudes (a benchmark of all-zero weights
// would let a backend skip work, and NaN/denormal paths would differ from real models).
//
// Speed: gpt2-xl has 1.56e9 parameters. Each value costs one 64-bit splitmix64 draw, split into
// four 16-bit uniforms whose sum is close to Gaussian (Irwin-Hall, n = 4: kurtosis 2.7 vs 3).
// Work is cut into fixed chunks of 64Ki values, each seeded from (seed, tensor, chunk), and
// shared over all cores; the values therefore do not depend on the thread count.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <system_error>
#include <thread>
#include <vector>

#include "common/thread_pool.h"
#include "model/host_model.h"
#include "model/weights.h"

namespace gpt2 {

namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

struct FillJob {
  float* data;
  int64_t n;
  float mean;
  float stddev;
  uint64_t stream;  // seed for this tensor
};

constexpr int64_t kChunk = int64_t{1} << 16;

void fill_chunk(const FillJob& job, int64_t chunk) {
  uint64_t state = job.stream ^ (static_cast<uint64_t>(chunk) * 0xd1b54a32d192ed03ull);
  splitmix64(state);  // decorrelate neighbouring chunk seeds
  // Sum of four U{0..65535}: mean 131070, variance 4 * (65536^2 - 1) / 12.
  const float scale = job.stddev / std::sqrt(4.0f * (65536.0f * 65536.0f - 1.0f) / 12.0f);
  const int64_t begin = chunk * kChunk, end = std::min(job.n, begin + kChunk);
  for (int64_t i = begin; i < end; ++i) {
    const uint64_t r = splitmix64(state);
    const int32_t sum = static_cast<int32_t>((r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff) + (r >> 48));
    job.data[i] = job.mean + scale * static_cast<float>(sum - 131070);
  }
}

}  // namespace

HostModel random_model(const Config& config, uint64_t seed, ThreadPool& pool) {
  HostModel m = allocate_host_model(config, /*tied_head=*/true);
  const float proj_std = 0.02f / std::sqrt(2.0f * static_cast<float>(config.n_layer));

  std::vector<FillJob> jobs;
  uint64_t tensor_index = 0;
  uint64_t seed_state = seed;
  for (const WeightEntry& s : weight_table(config, m.weights, /*tied_head=*/true)) {
    FillJob job{s.tensor->f32(), s.tensor->numel(), 0.0f, 0.02f, 0};
    // The only vectors named ".weight" are LayerNorm gains (ln_1, ln_2, ln_f); the rest are biases.
    const bool gain = s.use == WeightUse::vector && s.name.size() > 7 &&
                      s.name.compare(s.name.size() - 7, 7, ".weight") == 0;
    const bool residual_proj = s.name.find("c_proj.weight") != std::string::npos;
    if (s.name == "wpe.weight") job.stddev = 0.01f;
    else if (residual_proj) job.stddev = proj_std;
    else if (gain) job.mean = 1.0f;
    else if (s.use == WeightUse::vector) job.stddev = 0.01f;  // biases
    job.stream = splitmix64(seed_state) + (tensor_index++);
    jobs.push_back(job);
  }

  // (job, chunk) pairs, claimed by the threads in order.
  std::vector<int64_t> first_chunk(jobs.size() + 1, 0);
  for (size_t j = 0; j < jobs.size(); ++j) first_chunk[j + 1] = first_chunk[j] + (jobs[j].n + kChunk - 1) / kChunk;
  const int64_t n_chunks = first_chunk.back();
  pool.parallel_for(n_chunks, 4, [&](int64_t begin, int64_t end, int) {
    for (int64_t c = begin; c < end; ++c) {
      const size_t j = static_cast<size_t>(std::upper_bound(first_chunk.begin(), first_chunk.end(), c) -
                                           first_chunk.begin() - 1);
      fill_chunk(jobs[j], c - first_chunk[j]);
    }
  });
  return m;
}

}  // namespace gpt2
