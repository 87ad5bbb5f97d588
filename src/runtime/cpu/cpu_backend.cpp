// The CPU backend: GPT-2's ops on host memory, run by a fork-join thread pool (thread_pool.h)
// with the vectorized kernels of cpu_kernels.h (AVX-512, AVX2 or generic, chosen at run time).
//
// Memory (RAII, allocated once in load()):
//   weights: ONE allocation (huge pages on Linux). Linear weights (attn_qkv_w, attn_proj_w,
//     mlp_fc_w, mlp_proj_w and the tied wte/lm_head [V, C]) are packed in panels of 16 outputs
//     (cpu_kernels.h) in the weight dtype: fp32, bf16 (math in fp32), or int8 (weight-only,
//     one fp32 scale per group of 64 inputs, quantized at load from the fp32 weights).
//     wpe, LayerNorm gains and all biases stay fp32, row-major.
//   KV cache: k and v, each [max_batch, n_layer, n_head, n_ctx, head_dim] fp32 (head-major, so
//     one head's keys are contiguous for the decode step's attention).
//   activations: alloc() hands out zeroed, 64-byte-aligned [rows, cols] fp32 buffers.
//
// Parallelization (tasks claimed dynamically; no reduction is ever split, so results do not
// depend on the thread count or on which thread runs what):
//   linear:    over groups of output panels; every row of a panel is computed by one thread.
//   attention: over (sequence, head, query token) triples.
//   layernorm, embed, KV append: over rows.
#include "runtime/cpu/cpu_backend.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <fstream>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "common/error.h"
#include "runtime/cpu/cpu_kernels.h"
#include "runtime/cpu/thread_pool.h"

namespace gpt2 {
namespace {

constexpr int32_t kInt8GroupSize = 64;
constexpr size_t kHugePage = size_t{2} << 20;

enum class Fill { zero, none };

// The memory this process may hold: physical RAM, or less under a cgroup limit (v2 or v1).
size_t host_memory_limit() {
  size_t limit = SIZE_MAX;
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGE_SIZE)
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  if (pages > 0 && page > 0) limit = static_cast<size_t>(pages) * static_cast<size_t>(page);
#endif
  for (const char* path : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    std::ifstream in(path);
    unsigned long long value = 0;
    if (in >> value && value > 0) limit = std::min<size_t>(limit, static_cast<size_t>(value));  // "max" fails
  }
  return limit;
}

// Bytes of AlignedBuffers alive in this process. With overcommit, aligned_alloc grants
// far more than the machine has, and zeroing the buffer then gets the process killed by the
// OOM killer (no message at all): a request past the machine's memory is refused up front.
std::atomic<size_t> g_live_bytes{0};

// A 64-byte-aligned allocation, zeroed unless its owner writes every byte it reads (the
// weights: zeroing 0.5 GB first would cost as much as converting them), freed by the
// destructor. Move-only.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t bytes, Fill fill = Fill::zero) : bytes_(bytes) {
    // Large buffers (weights, KV cache) are 2 MiB aligned and asked to be backed by huge
    // pages before first touch: decode streams every weight once per token, and 4 KiB pages
    // would cost a TLB miss every 4 KiB.
    const size_t align = bytes >= kHugePage ? kHugePage : 64;
    if (bytes > SIZE_MAX / 2)
      throw Error("out of host memory: cannot allocate " + std::to_string(bytes >> 20) + " MiB for the CPU backend");
    const size_t rounded = (std::max<size_t>(bytes, 1) + align - 1) / align * align;
    static const size_t limit = host_memory_limit();
    const size_t live = g_live_bytes.load();
    if (live + rounded > limit)
      throw Error("out of host memory: the CPU backend needs " + std::to_string((live + rounded) >> 20) +
                  " MiB (weights, KV cache and activations for this batch) but this machine has " +
                  std::to_string(limit >> 20) + " MiB");
    data_ = std::aligned_alloc(align, rounded);
    if (!data_)
      throw Error("out of host memory: cannot allocate " + std::to_string(bytes >> 20) + " MiB for the CPU backend");
    rounded_ = rounded;
    g_live_bytes += rounded_;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (align == kHugePage) madvise(data_, rounded, MADV_HUGEPAGE);  // a hint: failure is harmless
#endif
    if (fill == Fill::zero) std::memset(data_, 0, rounded);
  }
  AlignedBuffer(AlignedBuffer&& o) noexcept : data_(o.data_), bytes_(o.bytes_), rounded_(o.rounded_) {
    o.data_ = nullptr;
    o.bytes_ = 0;
    o.rounded_ = 0;
  }
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    if (this != &o) {
      release();
      data_ = o.data_;
      bytes_ = o.bytes_;
      rounded_ = o.rounded_;
      o.data_ = nullptr;
      o.bytes_ = 0;
      o.rounded_ = 0;
    }
    return *this;
  }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer() { release(); }

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  bool contains(const void* p) const {
    const char* c = static_cast<const char*>(p);
    const char* base = static_cast<const char*>(data_);
    return data_ && c >= base && c < base + bytes_;
  }

 private:
  void release() {
    std::free(data_);
    g_live_bytes -= rounded_;
    data_ = nullptr;
    rounded_ = 0;
  }

  void* data_ = nullptr;
  size_t bytes_ = 0;
  size_t rounded_ = 0;  // counted in g_live_bytes
};

size_t align64(size_t n) { return (n + 63) / 64 * 64; }

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(const BackendOptions& options) : kernels_(cpu::best_kernels()) {
    if (options.threads < 0) throw UsageError("--threads must be positive (or 0 for all cores)");
    n_threads_ = options.threads > 0 ? options.threads
                                     : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    pool_ = std::make_unique<cpu::ThreadPool>(n_threads_);
    dtype_ = options.auto_dtype ? DType::f32 : options.weight_dtype;
    if (dtype_ == DType::f16)
      throw UsageError("--dtype fp16 is for CUDA; use fp32, bf16 or int8 on the CPU");
    if (dtype_ != DType::f32 && dtype_ != DType::bf16 && dtype_ != DType::i8)
      throw UsageError(std::string("--dtype ") + dtype_name(dtype_) + " is not supported on the CPU; use fp32, bf16 or int8");
  }

  std::string name() const override { return "cpu"; }
  DType weight_dtype() const override { return dtype_; }
  std::string describe() const override {
    return "cpu (" + std::to_string(n_threads_) + (n_threads_ == 1 ? " thread, " : " threads, ") +
           cpu::isa_name(kernels_.isa) + ")";
  }

  void load(const Config& config, const ModelWeights& host, int max_batch) override;
  const ModelWeights& weights() const override { return weights_; }

  Tensor alloc(int64_t rows, int64_t cols) override {
    if (rows < 0 || cols < 0) throw Error("internal: negative activation shape");
    buffers_.emplace_back(static_cast<size_t>(rows * cols) * sizeof(float));
    Tensor t;
    t.data = buffers_.back().data();
    t.rows = rows;
    t.cols = cols;
    return t;
  }

  void set_step(const int32_t* tokens, const StepShape& shape) override {
    if (shape.batch < 1 || shape.n_tokens < 1 || shape.pos < 0 || shape.batch > max_batch_ ||
        shape.pos + shape.n_tokens > config_.n_ctx)
      throw Error("internal: step shape outside the loaded limits");
    for (int i = 0; i < shape.rows(); ++i)
      if (tokens[i] < 0 || tokens[i] >= config_.n_vocab)
        throw Error("internal: token id " + std::to_string(tokens[i]) + " outside the vocabulary");
    shape_ = shape;
    tokens_.assign(tokens, tokens + shape.rows());
  }
  void run_step(const StepShape& shape, const std::function<void()>& record) override {
    shape_ = shape;
    record();
  }

  void embed(Tensor x) override;
  void layernorm(Tensor out, Tensor x, Tensor g, Tensor b) override;
  void add_layernorm(Tensor residual, Tensor delta, Tensor out, Tensor g, Tensor b) override;
  void linear(Tensor out, Tensor in, Tensor w, Tensor bias, Epilogue epilogue) override;
  void attention(Tensor out, Tensor qkv, int layer) override;
  void take_last(Tensor out, Tensor in) override;
  void read(float* dst, Tensor src) override {
    std::memcpy(dst, src.data, static_cast<size_t>(src.numel()) * sizeof(float));
  }
  void top_k(Tensor logits, int64_t n_cols, int k, int32_t* ids, float* values, int32_t* invalid) override;

 private:
  const cpu::KernelTable& kernels_;
  int n_threads_ = 1;
  std::unique_ptr<cpu::ThreadPool> pool_;
  DType dtype_ = DType::f32;
  Config config_;
  int max_batch_ = 0;
  AlignedBuffer weight_storage_;
  ModelWeights weights_;
  AlignedBuffer k_cache_, v_cache_;  // [max_batch, n_layer, n_head, n_ctx, head_dim] each
  std::vector<AlignedBuffer> buffers_;
  StepShape shape_;
  std::vector<int32_t> tokens_;
  std::vector<float> scratch_;  // attention scores, one n_ctx row per thread
};

// ---- load -------------------------------------------------------------------------------------

void CpuBackend::load(const Config& config, const ModelWeights& host, int max_batch) {
  if (max_batch < 1) throw Error("internal: max_batch must be at least 1");
  if (static_cast<int>(host.h.size()) != config.n_layer)
    throw Error("internal: host weights have " + std::to_string(host.h.size()) + " blocks, config says " +
                std::to_string(config.n_layer));
  config_ = config;
  max_batch_ = max_batch;
  const bool tied = host.lm_head.data == host.wte.data;

  // Two passes over the same list of tensors: size them, then place and convert them. Linear
  // weights and wte (also the tied LM head) are packed in the weight dtype; wpe (read row by
  // row), biases and gains stay fp32 row-major.
  weights_ = ModelWeights{};
  const std::vector<WeightPair> slots = weight_pairs(weights_, host, /*with_lm_head=*/!tied);
  auto packed = [](const WeightPair& p) {
    return p.role != WeightRole::vector && p.role != WeightRole::position_embedding;
  };

  size_t total = 0;
  for (const WeightPair& s : slots) {
    if (s.src->empty() || s.src->dtype != DType::f32)
      throw Error("internal: host weights must be present and fp32");
    if (packed(s)) {
      total += align64(cpu::packed_bytes(dtype_, s.src->rows, s.src->cols));
      total += align64(cpu::packed_scale_bytes(dtype_, s.src->rows, s.src->cols, kInt8GroupSize));
    } else {
      total += align64(s.src->bytes());
    }
  }
  weight_storage_ = AlignedBuffer(total, Fill::none);
  char* base = static_cast<char*>(weight_storage_.data());
  size_t offset = 0;
  for (const WeightPair& s : slots) {
    if (packed(s)) {
      void* data = base + offset;
      offset += align64(cpu::packed_bytes(dtype_, s.src->rows, s.src->cols));
      float* scales = reinterpret_cast<float*>(base + offset);
      offset += align64(cpu::packed_scale_bytes(dtype_, s.src->rows, s.src->cols, kInt8GroupSize));
      *s.dst = cpu::pack_matrix(*s.src, dtype_, kInt8GroupSize, data, scales, n_threads_);
    } else {
      std::memcpy(base + offset, s.src->data, s.src->bytes());
      *s.dst = *s.src;
      s.dst->data = base + offset;
      offset += align64(s.src->bytes());
    }
  }
  if (tied) weights_.lm_head = weights_.wte;

  const size_t cache_floats =
      static_cast<size_t>(max_batch) * config.n_layer * config.n_ctx * static_cast<size_t>(config.n_embd);
  k_cache_ = AlignedBuffer(cache_floats * sizeof(float));
  v_cache_ = AlignedBuffer(cache_floats * sizeof(float));
  scratch_.assign(static_cast<size_t>(n_threads_) * config.n_ctx, 0.0f);
}

// ---- ops ----------------------------------------------------------------------------------------

void CpuBackend::embed(Tensor x) {
  const int64_t C = config_.n_embd, N = shape_.rows();
  if (x.rows < N || x.cols != C) throw Error("internal: embed output has the wrong shape");
  const Tensor wte = weights_.wte;
  const float* wpe = weights_.wpe.f32();
  pool_->parallel_for(N, [&](int64_t begin, int64_t end, int) {
    for (int64_t n = begin; n < end; ++n) {
      float* row = x.f32() + n * C;
      cpu::unpack_row(row, wte, tokens_[static_cast<size_t>(n)]);
      const float* p = wpe + (shape_.pos + n % shape_.n_tokens) * C;
      for (int64_t c = 0; c < C; ++c) row[c] += p[c];
    }
  });
}

void CpuBackend::layernorm(Tensor out, Tensor x, Tensor g, Tensor b) {
  if (x.cols != g.cols || x.cols != b.cols || out.cols != x.cols || out.rows < x.rows)
    throw Error("internal: layernorm shapes do not match");
  const int64_t C = x.cols;
  const float eps = config_.layer_norm_epsilon;
  const auto ln = kernels_.layernorm_row;
  pool_->parallel_for(x.rows, [&](int64_t begin, int64_t end, int) {
    for (int64_t n = begin; n < end; ++n) ln(out.f32() + n * C, x.f32() + n * C, g.f32(), b.f32(), C, eps);
  });
}

void CpuBackend::add_layernorm(Tensor residual, Tensor delta, Tensor out, Tensor g, Tensor b) {
  if (residual.cols != delta.cols || delta.rows < residual.rows || residual.cols != g.cols ||
      residual.cols != b.cols || out.cols != residual.cols || out.rows < residual.rows)
    throw Error("internal: add_layernorm shapes do not match");
  const int64_t C = residual.cols;
  const float eps = config_.layer_norm_epsilon;
  const auto ln = kernels_.layernorm_row;
  pool_->parallel_for(residual.rows, [&](int64_t begin, int64_t end, int) {
    for (int64_t n = begin; n < end; ++n) {
      float* r = residual.f32() + n * C;
      const float* d = delta.f32() + n * C;
      for (int64_t c = 0; c < C; ++c) r[c] += d[c];
      ln(out.f32() + n * C, r, g.f32(), b.f32(), C, eps);
    }
  });
}

void CpuBackend::linear(Tensor out, Tensor in, Tensor w, Tensor bias, Epilogue epilogue) {
  if (in.cols != w.cols || out.cols != w.rows || out.rows < in.rows || (!bias.empty() && bias.numel() != w.rows))
    throw Error("internal: linear shapes do not match: in [" + std::to_string(in.rows) + ", " +
                std::to_string(in.cols) + "], w [" + std::to_string(w.rows) + ", " + std::to_string(w.cols) +
                "], out [" + std::to_string(out.rows) + ", " + std::to_string(out.cols) + "]");
  // The backend's own weights are packed already; any other matrix (a caller's row-major
  // tensor) is packed into a temporary first, so both give the same results.
  AlignedBuffer tmp, tmp_scales;
  if (!weight_storage_.contains(w.data)) {
    const DType dt = w.dtype == DType::i8 ? DType::i8 : w.dtype == DType::bf16 ? DType::bf16 : DType::f32;
    const int32_t group = w.dtype == DType::i8 ? w.group_size : kInt8GroupSize;
    tmp = AlignedBuffer(cpu::packed_bytes(dt, w.rows, w.cols));
    tmp_scales = AlignedBuffer(cpu::packed_scale_bytes(dt, w.rows, w.cols, group));
    w = cpu::pack_matrix(w, dt, group, tmp.data(), static_cast<float*>(tmp_scales.data()), n_threads_);
  }
  cpu::LinearArgs args;
  args.out = out.f32();
  args.ldo = out.cols;
  args.in = in.f32();
  args.ldi = in.cols;
  args.n_rows = in.rows;
  args.w = w;
  args.bias = bias.empty() ? nullptr : bias.f32();
  args.epilogue = epilogue;
  const int64_t P = cpu::panel_count(w.rows);
  const int64_t per_task = kernels_.panels_per_task;
  const int64_t n_tasks = (P + per_task - 1) / per_task;
  const auto kernel = kernels_.linear_panels;
  pool_->parallel_for(n_tasks, [&](int64_t begin, int64_t end, int) {
    kernel(args, begin * per_task, std::min(P, end * per_task));
  });
}

void CpuBackend::attention(Tensor out, Tensor qkv, int layer) {
  const int64_t C = config_.n_embd, H = config_.n_head, hd = C / H;
  const int64_t B = shape_.batch, T = shape_.n_tokens, pos = shape_.pos, n_ctx = config_.n_ctx;
  if (qkv.rows < B * T || qkv.cols != 3 * C || out.cols != C || layer < 0 || layer >= config_.n_layer)
    throw Error("internal: attention shapes do not match");
  float* kc = static_cast<float*>(k_cache_.data());
  float* vc = static_cast<float*>(v_cache_.data());
  // Head-major cache: the keys (values) one head attends over are one contiguous stream.
  auto cache_at = [&](float* cache, int64_t b, int64_t h, int64_t p) {
    return cache + (((b * config_.n_layer + layer) * H + h) * n_ctx + p) * hd;
  };
  // Append this step's k, v at positions [pos, pos + T) of each sequence.
  pool_->parallel_for(B * T, [&](int64_t begin, int64_t end, int) {
    for (int64_t n = begin; n < end; ++n) {
      const int64_t b = n / T, t = n % T;
      const float* row = qkv.f32() + n * 3 * C;
      for (int64_t h = 0; h < H; ++h) {
        std::memcpy(cache_at(kc, b, h, pos + t), row + C + h * hd, hd * sizeof(float));
        std::memcpy(cache_at(vc, b, h, pos + t), row + 2 * C + h * hd, hd * sizeof(float));
      }
    }
  });
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const auto query = kernels_.attention_query;
  const int64_t n_tasks = B * H * T;
  pool_->parallel_for(n_tasks, [&](int64_t begin, int64_t end, int thread) {
    float* scores = scratch_.data() + static_cast<size_t>(thread) * n_ctx;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / (H * T), h = (task / T) % H, t = task % T;
      const int64_t n = b * T + t;
      query(out.f32() + n * C + h * hd, qkv.f32() + n * 3 * C + h * hd, cache_at(kc, b, h, 0), cache_at(vc, b, h, 0),
            hd, pos + t + 1, hd, scale, scores);
    }
  });
}

void CpuBackend::take_last(Tensor out, Tensor in) {
  const int64_t B = shape_.batch, T = shape_.n_tokens, C = in.cols;
  if (out.cols != C || out.rows < B || in.rows < B * T) throw Error("internal: take_last shapes do not match");
  for (int64_t b = 0; b < B; ++b)
    std::memcpy(out.f32() + b * C, in.f32() + (b * T + T - 1) * C, C * sizeof(float));
}

}  // namespace

// A bounded heap per row whose front is the least likely kept: nearly every logit costs one
// comparison, and only the k survivors are stored and sorted.
void CpuBackend::top_k(Tensor logits, int64_t n_cols, int k, int32_t* ids, float* values, int32_t* invalid) {
  if (k < 1 || k > kMaxTopK || k > n_cols || n_cols > logits.cols)
    throw Error("internal: top_k of " + std::to_string(k) + " over " + std::to_string(n_cols) + " of " +
                std::to_string(logits.cols) + " columns");
  struct Entry {
    float value;
    int32_t id;
  };
  auto more_likely = [](const Entry& a, const Entry& b) { return a.value > b.value || (a.value == b.value && a.id < b.id); };
  std::vector<Entry> heap;
  heap.reserve(static_cast<size_t>(k));
  for (int64_t r = 0; r < logits.rows; ++r) {
    const float* row = logits.f32() + r * logits.cols;
    heap.clear();
    bool bad = false;
    for (int32_t j = 0; j < static_cast<int32_t>(n_cols); ++j) {
      const Entry e{row[j], j};
      if (std::isnan(e.value) || e.value == INFINITY) {
        bad = true;
        continue;
      }
      if (static_cast<int>(heap.size()) < k) {
        heap.push_back(e);
        std::push_heap(heap.begin(), heap.end(), more_likely);
      } else if (more_likely(e, heap.front())) {
        std::pop_heap(heap.begin(), heap.end(), more_likely);
        heap.back() = e;
        std::push_heap(heap.begin(), heap.end(), more_likely);
      }
    }
    std::sort(heap.begin(), heap.end(), more_likely);
    heap.resize(static_cast<size_t>(k), Entry{-INFINITY, 0});  // only short of k when the row is invalid
    for (int i = 0; i < k; ++i) {
      ids[r * k + i] = heap[i].id;
      values[r * k + i] = heap[i].value;
    }
    invalid[r] = bad ? 1 : 0;
  }
}

std::unique_ptr<Backend> make_cpu_backend(const BackendOptions& options) {
  return std::make_unique<CpuBackend>(options);
}

}  // namespace gpt2
