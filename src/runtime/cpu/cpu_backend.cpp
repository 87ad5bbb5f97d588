// The CPU backend: GPT-2's ops on host memory, run by a fork-join thread pool (thread_pool.h)
// with the vectorized kernels of cpu_kernels.h (AVX-512, AVX2 or generic, chosen at run time).
//
// Memory (RAII, allocated once in load()):
//   weights: ONE allocation (huge pages on Linux). Linear weights (attn_qkv_w, attn_proj_w,
//     mlp_fc_w, mlp_proj_w and the tied wte/lm_head [V, C]) are packed in panels of 16 outputs
//     (cpu_kernels.h) in the weight dtype: fp32, bf16 (math in fp32), int8 (weight-only, one fp32
//     scale per group of 64 inputs) or int4 (groups of 32, Q4_0's quantization), quantized at load
//     from fp32 weights. A quantized GGUF's own integers (Q4_0 as int4; Q8_0, Q5_0, Q6_K as int8)
//     are packed as they are under --dtype int8/int4/auto (cpu::pack_plan), and dequantized
//     for fp32/bf16. wpe, LayerNorm gains and all biases stay fp32, row-major.
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
#include <cstdint>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "common/error.h"
#include "common/log.h"
#include "common/memory.h"
#include "runtime/cpu/cpu_kernels.h"
#include "common/order.h"
#include "common/thread_pool.h"

namespace gpt2 {
namespace {

constexpr size_t kHugePage = size_t{2} << 20;

enum class Fill { zero, none };

// A 64-byte-aligned allocation, zeroed unless its owner writes every byte it reads (the
// weights: zeroing 0.5 GB first would cost as much as converting them), freed by the
// destructor. Move-only.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  // `what` names the buffer in the message when the machine's memory cannot hold it.
  AlignedBuffer(size_t bytes, const std::string& what, Fill fill = Fill::zero) : bytes_(bytes) {
    // Large buffers (weights, KV cache) are 2 MiB aligned and asked to be backed by huge
    // pages before first touch: decode streams every weight once per token, and 4 KiB pages
    // would cost a TLB miss every 4 KiB.
    const size_t align = bytes >= kHugePage ? kHugePage : 64;
    const size_t rounded = add_sizes(std::max<size_t>(bytes, 1), align - 1) / align * align;
    counted_ = HostMemory(rounded, what);  // refused here, before any allocation, past the machine's memory
    data_ = std::aligned_alloc(align, rounded);
    if (!data_) throw Error("out of host memory: cannot allocate " + format_bytes(rounded) + " for " + what);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (align == kHugePage) madvise(data_, rounded, MADV_HUGEPAGE);  // a hint: failure is harmless
#endif
    if (fill == Fill::zero) std::memset(data_, 0, rounded);
  }
  AlignedBuffer(AlignedBuffer&& o) noexcept : data_(o.data_), bytes_(o.bytes_), counted_(std::move(o.counted_)) {
    o.data_ = nullptr;
    o.bytes_ = 0;
  }
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    if (this != &o) {
      release();
      data_ = o.data_;
      bytes_ = o.bytes_;
      counted_ = std::move(o.counted_);
      o.data_ = nullptr;
      o.bytes_ = 0;
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
    data_ = nullptr;
    counted_ = HostMemory();
  }

  void* data_ = nullptr;
  size_t bytes_ = 0;
  HostMemory counted_;  // the rounded size, counted against the machine's memory (common/memory.h)
};

size_t align64(size_t n) { return (n + 63) / 64 * 64; }

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(const BackendOptions& options) : kernels_(cpu::best_kernels(options.cpu_isa)) {
    if (options.threads < 0) throw UsageError("--threads must be positive (or 0 for all cores)");
    n_threads_ = options.threads > 0 ? options.threads
                                     : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    pool_ = std::make_unique<ThreadPool>(n_threads_);
    // auto: fp32, or the integer kernels when asked for (a quantized file: BackendOptions).
    dtype_ = options.auto_dtype ? (options.weight_dtype == DType::i8 ? DType::i8 : DType::f32) : options.weight_dtype;
    if (dtype_ == DType::f16)
      throw UsageError("--dtype fp16 is for CUDA; use fp32, bf16 or int8 on the CPU");
    if (dtype_ != DType::f32 && dtype_ != DType::bf16 && dtype_ != DType::i8 && dtype_ != DType::i4)
      throw UsageError(std::string("--dtype ") + dtype_name(dtype_) +
                       " is not supported on the CPU; use fp32, bf16, int8 or int4");
    verbose_ = options.verbose;
  }

  std::string name() const override { return "cpu"; }
  DType weight_dtype() const override { return dtype_; }
  std::string describe() const override {
    return "cpu (" + std::to_string(n_threads_) + (n_threads_ == 1 ? " thread, " : " threads, ") +
           cpu::isa_name(kernels_.isa) + ")";
  }

 protected:
  size_t do_upload_bytes(int64_t rows, int64_t cols, WeightUse use) const override;
  bool do_takes_host(DType dtype, WeightUse use) const override {
    return dtype == DType::f32 || (packed(use) && (dtype == DType::i8 || dtype == DType::i4));
  }
  size_t do_upload_bytes_for(const Tensor& host, WeightUse use) const override;
  void do_reserve_weights(size_t bytes) override;
  Tensor do_upload(const Tensor& host, WeightUse use) override;
  Tensor do_alloc(int64_t rows, int64_t cols) override {
    buffers_.emplace_back(mul_sizes({static_cast<size_t>(rows), static_cast<size_t>(cols), sizeof(float)}),
                          "activations [" + std::to_string(rows) + ", " + std::to_string(cols) + "]");
    Tensor t;
    t.data = buffers_.back().data();
    t.rows = rows;
    t.cols = cols;
    return t;
  }
  KvCache do_alloc_kv(int n_layer, int n_slots, int n_ctx, int n_head, int head_dim) override;
  void do_reserve_batch(int, int) override {}
  void do_run_step(const Batch&, const StepKey&, const std::function<void()>& record) override { record(); }

  void do_embed(Tensor x, Tensor wte, Tensor wpe, const Batch& batch) override;
  void do_layernorm(Tensor out, Tensor x, Tensor g, Tensor b, float eps) override;
  void do_add_layernorm(Tensor residual, Tensor delta, Tensor out, Tensor g, Tensor b, float eps) override;
  void do_linear(Tensor out, Tensor in, Tensor w, Tensor bias, Epilogue epilogue) override;
  void do_attention(Tensor out, Tensor qkv, Tensor qkv_bias, const KvLayer& kv, const Batch& batch) override;
  void do_gather_rows(Tensor out, Tensor in, const Batch& batch) override {
    const size_t row_bytes = static_cast<size_t>(in.cols) * sizeof(float);
    for (int r = 0; r < batch.n_logit_rows(); ++r)
      std::memcpy(out.f32() + r * in.cols, in.f32() + static_cast<int64_t>(batch.logit_rows[r]) * in.cols, row_bytes);
  }
  void do_read(float* dst, Tensor src) override {
    std::memcpy(dst, src.data, static_cast<size_t>(src.numel()) * sizeof(float));
  }
  void do_top_k(Tensor logits, int64_t n_cols, int k, int32_t* ids, float* values, int32_t* invalid) override;

 private:
  static bool packed(WeightUse use) { return use == WeightUse::matrix || use == WeightUse::embedding; }

  // The packed form of a host matrix, and a note (with -v) the first time each kind is packed.
  cpu::PackPlan plan(const Tensor& host) const { return cpu::pack_plan(host, dtype_); }
  void note_packing(const Tensor& host, const cpu::PackPlan& plan);

  const cpu::KernelTable& kernels_;
  bool verbose_ = false;
  std::vector<std::string> noted_;  // packings already noted
  cpu::QuantizedRowsBuffer quantized_;  // a linear's input for the integer kernels
  int n_threads_ = 1;
  std::unique_ptr<ThreadPool> pool_;
  DType dtype_ = DType::f32;
  AlignedBuffer weight_storage_;
  size_t weight_used_ = 0;  // bytes of weight_storage_ handed out by upload()
  std::vector<AlignedBuffer> buffers_;
  std::vector<float> scratch_;  // attention scores, one n_ctx row per thread
};

// ---- weights ------------------------------------------------------------------------------------
// Matrices and embeddings ([out, in]: linear weights, wte and an untied LM head) are packed in
// the weight dtype; tables (wpe, read row by row), biases and gains stay fp32 row-major.

size_t CpuBackend::do_upload_bytes(int64_t rows, int64_t cols, WeightUse use) const {
  if (!packed(use)) return align64(static_cast<size_t>(rows * cols) * sizeof(float));
  Tensor host;  // an fp32 source of this shape
  host.rows = rows;
  host.cols = cols;
  return do_upload_bytes_for(host, use);
}

size_t CpuBackend::do_upload_bytes_for(const Tensor& host, WeightUse use) const {
  if (!packed(use)) return align64(static_cast<size_t>(host.rows * host.cols) * sizeof(float));
  const cpu::PackPlan p = plan(host);
  return align64(cpu::packed_bytes(p.dtype, host.rows, host.cols)) +
         align64(cpu::packed_scale_bytes(p.dtype, host.rows, host.cols, p.group_size));
}

void CpuBackend::do_reserve_weights(size_t bytes) {
  if (weight_storage_.data()) throw Error("internal: CPU weights reserved twice");
  weight_storage_ = AlignedBuffer(bytes, "the CPU backend's weights", Fill::none);
  weight_used_ = 0;
}

void CpuBackend::note_packing(const Tensor& host, const cpu::PackPlan& p) {
  if (!verbose_) return;
  const bool host_int = host.dtype == DType::i8 || host.dtype == DType::i4;
  std::string line;
  if (host_int && p.dtype == host.dtype)
    line = std::string("cpu: ") + dtype_name(host.dtype) + " weights of the file (groups of " +
           std::to_string(host.group_size) + ") run on the " + dtype_name(p.dtype) + " kernels as they are";
  else if (host_int)
    line = std::string("cpu: ") + dtype_name(host.dtype) + " weights of the file dequantized for the " +
           dtype_name(p.dtype) + " kernels";
  else if (p.dtype == DType::i8 || p.dtype == DType::i4)
    line = std::string("cpu: ") + dtype_name(host.dtype) + " weights quantized to " + dtype_name(p.dtype) +
           " (groups of " + std::to_string(p.group_size) + ")";
  else if (p.dtype != host.dtype)
    line = std::string("cpu: ") + dtype_name(host.dtype) + " weights converted to " + dtype_name(p.dtype);
  else
    return;
  if (std::find(noted_.begin(), noted_.end(), line) != noted_.end()) return;
  noted_.push_back(line);
  log_note(line);
}

Tensor CpuBackend::do_upload(const Tensor& host, WeightUse use) {
  const size_t bytes = do_upload_bytes_for(host, use);
  if (!weight_storage_.data() || weight_used_ + bytes > weight_storage_.bytes())
    throw Error("internal: CPU upload past the reserved weight memory");
  char* at = static_cast<char*>(weight_storage_.data()) + weight_used_;
  weight_used_ += bytes;
  if (!packed(use)) {
    std::memcpy(at, host.data, host.bytes());
    Tensor t = host;
    t.data = at;
    return t;
  }
  const cpu::PackPlan p = plan(host);
  note_packing(host, p);
  float* scales = reinterpret_cast<float*>(at + align64(cpu::packed_bytes(p.dtype, host.rows, host.cols)));
  return cpu::pack_matrix(host, p.dtype, p.group_size, at, scales, *pool_);
}

KvCache CpuBackend::do_alloc_kv(int n_layer, int n_slots, int n_ctx, int n_head, int head_dim) {
  const size_t per_tensor = mul_sizes({static_cast<size_t>(n_slots), static_cast<size_t>(n_head),
                                       static_cast<size_t>(n_ctx), static_cast<size_t>(head_dim)});  // floats
  auto storage = std::make_shared<AlignedBuffer>(
      mul_sizes({per_tensor, 2, static_cast<size_t>(n_layer), sizeof(float)}),
      "the KV cache (" + std::to_string(n_slots) + (n_slots == 1 ? " slot)" : " slots)"));
  std::vector<KvLayer> layers = kv_layer_views(storage->data(), per_tensor * sizeof(float), DType::f32, n_layer,
                                               n_slots, n_ctx, n_head, head_dim);
  if (scratch_.size() < static_cast<size_t>(n_threads_) * n_ctx) scratch_.assign(static_cast<size_t>(n_threads_) * n_ctx, 0.0f);
  return KvCache(std::move(layers), n_slots, n_ctx, std::move(storage));
}

// ---- ops ----------------------------------------------------------------------------------------

void CpuBackend::do_embed(Tensor x, Tensor wte, Tensor wpe, const Batch& batch) {
  const int64_t C = x.cols;
  const float* pe = wpe.f32();
  pool_->parallel_for(x.rows, [&](int64_t begin, int64_t end, int) {
    for (int64_t n = begin; n < end; ++n) {
      float* row = x.f32() + n * C;
      cpu::unpack_row(row, wte, batch.tokens[static_cast<size_t>(n)]);
      const float* p = pe + static_cast<int64_t>(batch.positions[static_cast<size_t>(n)]) * C;
      for (int64_t c = 0; c < C; ++c) row[c] += p[c];
    }
  });
}

void CpuBackend::do_layernorm(Tensor out, Tensor x, Tensor g, Tensor b, float eps) {
  const int64_t C = x.cols;
  const auto ln = kernels_.layernorm_row;
  pool_->parallel_for(x.rows, [&](int64_t begin, int64_t end, int) {
    for (int64_t n = begin; n < end; ++n) ln(out.f32() + n * C, x.f32() + n * C, g.f32(), b.f32(), C, eps);
  });
}

void CpuBackend::do_add_layernorm(Tensor residual, Tensor delta, Tensor out, Tensor g, Tensor b, float eps) {
  const int64_t C = residual.cols;
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

void CpuBackend::do_linear(Tensor out, Tensor in, Tensor w, Tensor bias, Epilogue epilogue) {
  // The backend's own weights are packed already; any other matrix (a caller's row-major
  // tensor) is packed into a temporary first, so both give the same results.
  AlignedBuffer tmp, tmp_scales;
  if (!weight_storage_.contains(w.data)) {
    const bool integer = w.dtype == DType::i8 || w.dtype == DType::i4;
    const cpu::PackPlan p = integer ? cpu::PackPlan{w.dtype, w.group_size}
                                    : cpu::PackPlan{w.dtype == DType::bf16 ? DType::bf16 : DType::f32, 0};
    tmp = AlignedBuffer(cpu::packed_bytes(p.dtype, w.rows, w.cols), "a packed matrix");
    tmp_scales = AlignedBuffer(cpu::packed_scale_bytes(p.dtype, w.rows, w.cols, p.group_size), "a packed matrix");
    w = cpu::pack_matrix(w, p.dtype, p.group_size, tmp.data(), static_cast<float*>(tmp_scales.data()), *pool_);
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
  // Integer weights: the input quantized once, here, for every task.
  cpu::QuantizedRows quantized;
  if (w.dtype == DType::i8 || w.dtype == DType::i4) {
    quantized = cpu::quantize_rows(args.in, args.ldi, args.n_rows, w.cols, w.group_size, w.dtype == DType::i4, quantized_);
    args.quantized = &quantized;
  }
  const int64_t P = cpu::panel_count(w.rows);
  const int64_t per_task = kernels_.panels_per_task;
  const int64_t n_tasks = (P + per_task - 1) / per_task;
  const auto kernel = kernels_.linear_panels;
  pool_->parallel_for(n_tasks, [&](int64_t begin, int64_t end, int) {
    kernel(args, begin * per_task, std::min(P, end * per_task));
  });
}

// Two passes over the batch's rows: first each row's q | k | v gets the bias and its k, v go to
// the row's slot at its position (every key of the step is in the cache before any query
// reads), then each (row, head) query attends to positions [0, position] of its slot.
void CpuBackend::do_attention(Tensor out, Tensor qkv, Tensor qkv_bias, const KvLayer& kv, const Batch& batch) {
  const int64_t H = kv.n_head, hd = kv.head_dim, C = H * hd, n_ctx = kv.n_ctx;
  if (static_cast<size_t>(n_ctx) * n_threads_ > scratch_.size())
    throw Error("internal: CPU attention: the KV cache was not made by this backend");
  float* kc = kv.k.f32();
  float* vc = kv.v.f32();
  // Head-major cache: the keys (values) one head attends over are one contiguous stream.
  auto cache_at = [&](float* cache, int64_t slot, int64_t h, int64_t p) {
    return cache + ((slot * H + h) * n_ctx + p) * hd;
  };
  const float* bias = qkv_bias.empty() ? nullptr : qkv_bias.f32();
  pool_->parallel_for(qkv.rows, [&](int64_t begin, int64_t end, int) {
    for (int64_t n = begin; n < end; ++n) {
      float* row = qkv.f32() + n * 3 * C;
      if (bias)
        for (int64_t c = 0; c < 3 * C; ++c) row[c] += bias[c];
      const int64_t slot = batch.row_slots[static_cast<size_t>(n)], p = batch.positions[static_cast<size_t>(n)];
      for (int64_t h = 0; h < H; ++h) {
        std::memcpy(cache_at(kc, slot, h, p), row + C + h * hd, hd * sizeof(float));
        std::memcpy(cache_at(vc, slot, h, p), row + 2 * C + h * hd, hd * sizeof(float));
      }
    }
  });
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const auto query = kernels_.attention_query;
  pool_->parallel_for(qkv.rows * H, [&](int64_t begin, int64_t end, int thread) {
    float* scores = scratch_.data() + static_cast<size_t>(thread) * n_ctx;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / H, h = task % H;
      const int64_t slot = batch.row_slots[static_cast<size_t>(n)], p = batch.positions[static_cast<size_t>(n)];
      query(out.f32() + n * C + h * hd, qkv.f32() + n * 3 * C + h * hd, cache_at(kc, slot, h, 0),
            cache_at(vc, slot, h, 0), hd, p + 1, hd, scale, scores);
    }
  });
}

}  // namespace

// A bounded heap per row whose front is the least likely kept: nearly every logit costs one
// comparison, and only the k survivors are stored and sorted.
void CpuBackend::do_top_k(Tensor logits, int64_t n_cols, int k, int32_t* ids, float* values, int32_t* invalid) {
  struct Entry {
    float value;
    int32_t id;
  };
  auto more_likely = [](const Entry& a, const Entry& b) { return most_likely_first(a.value, a.id, b.value, b.id); };
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
