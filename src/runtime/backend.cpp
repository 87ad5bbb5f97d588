// The public ops of Backend: each checks its operands once, for every backend, then calls the
// backend's math.
#include "runtime/backend.h"

#include <string>
#include <vector>

#include "common/error.h"

namespace gpt2 {

namespace {

std::string shape(const Tensor& t) { return "[" + std::to_string(t.rows) + ", " + std::to_string(t.cols) + "]"; }

void require(bool ok, const char* op, const std::string& what) {
  if (!ok) throw Error(std::string("internal: ") + op + ": " + what);
}

void require_f32(const Tensor& t, const char* op, const char* name) {
  require(!t.empty() && t.dtype == DType::f32, op, std::string(name) + " must be an fp32 tensor");
}

void require_vector(const Tensor& t, int64_t n, const char* op, const char* name) {
  require_f32(t, op, name);
  require(t.numel() == n, op, std::string(name) + " " + shape(t) + " must have " + std::to_string(n) + " elements");
}

}  // namespace

// ---- memory ----

size_t Backend::upload_bytes(int64_t rows, int64_t cols, WeightUse use) const {
  require(rows > 0 && cols > 0, "upload_bytes", "empty shape");
  return do_upload_bytes(rows, cols, use);
}

void Backend::reserve_weights(size_t bytes) { do_reserve_weights(bytes); }

size_t Backend::upload_bytes(const Tensor& host, WeightUse use) const {
  require(host.rows > 0 && host.cols > 0, "upload_bytes", "empty shape");
  if (host.dtype == DType::f32 || !do_takes_host(host.dtype, use)) return do_upload_bytes(host.rows, host.cols, use);
  return do_upload_bytes_for(host, use);
}

Tensor Backend::upload(const Tensor& host, WeightUse use) {
  require(!host.empty(), "upload", "the host tensor is empty");
  require(host.rows > 0 && host.cols > 0, "upload", "empty tensor");
  require(use != WeightUse::vector || host.rows == 1, "upload", "a vector must be [1, n], got " + shape(host));
  if (host.dtype == DType::f32) return do_upload(host, use);
  const bool integer = host.dtype == DType::i8 || host.dtype == DType::i4;
  require(integer && (use == WeightUse::matrix || use == WeightUse::embedding) && host.scales && host.group_size > 0 &&
              host.cols % host.group_size == 0,
          "upload", std::string("a host tensor of dtype ") + dtype_name(host.dtype) + " for this use");
  if (do_takes_host(host.dtype, use)) return do_upload(host, use);
  // Dequantized for a backend that keeps only fp32 sources: value = q * scale of its group.
  std::vector<float> values(static_cast<size_t>(host.numel()));
  const int8_t* q = static_cast<const int8_t*>(host.data);
  const int64_t n_groups = host.cols / host.group_size;
  for (int64_t r = 0; r < host.rows; ++r)
    for (int64_t c = 0; c < host.cols; ++c)
      values[static_cast<size_t>(r * host.cols + c)] =
          static_cast<float>(q[r * host.cols + c]) * host.scales[r * n_groups + c / host.group_size];
  Tensor t = host;
  t.data = values.data();
  t.dtype = DType::f32;
  t.scales = nullptr;
  t.group_size = 0;
  return do_upload(t, use);
}

Tensor Backend::alloc(int64_t rows, int64_t cols) {
  require(rows > 0 && cols > 0, "alloc", "activation of " + std::to_string(rows) + " x " + std::to_string(cols));
  return do_alloc(rows, cols);
}

KvCache Backend::alloc_kv(int n_layer, int n_slots, int n_ctx, int n_head, int head_dim) {
  require(n_layer > 0 && n_slots > 0 && n_ctx > 0 && n_head > 0 && head_dim > 0, "alloc_kv", "empty cache shape");
  return do_alloc_kv(n_layer, n_slots, n_ctx, n_head, head_dim);
}

// ---- a step ----

void Backend::reserve_batch(int max_rows, int max_sequences) {
  require(max_rows > 0 && max_sequences > 0 && max_sequences <= max_rows, "reserve_batch", "bad limits");
  require(max_rows_ == 0, "reserve_batch", "called twice");
  max_rows_ = max_rows;
  max_sequences_ = max_sequences;
  do_reserve_batch(max_rows, max_sequences);
}

void Backend::run_step(const Batch& batch, const StepKey& key, const std::function<void()>& record) {
  require(max_rows_ > 0, "run_step", "reserve_batch was not called");
  require(!batch.empty(), "run_step", "empty batch");
  require(batch.rows() <= max_rows_ && batch.sequences() <= max_sequences_, "run_step",
          "batch of " + std::to_string(batch.rows()) + " rows in " + std::to_string(batch.sequences()) +
              " sequences exceeds the reserved " + std::to_string(max_rows_) + " / " + std::to_string(max_sequences_));
  const StepKey want{batch.rows(), batch.n_logit_rows(), batch.sequences(), batch.max_seq_tokens, key.observed,
                     key.cache};
  require(!(want < key) && !(key < want), "run_step", "the step key does not describe the batch");
  step_batch_ = &batch;
  struct Clear {
    const Batch** p;
    ~Clear() { *p = nullptr; }
  } clear{&step_batch_};
  do_run_step(batch, key, record);
}

void Backend::require_step(const Batch& batch, const char* op) const {
  require(step_batch_ == &batch, op, "called outside run_step, or with another batch than the step's");
}

// ---- ops ----

void Backend::embed(Tensor x, Tensor wte, Tensor wpe, const Batch& batch) {
  require_step(batch, "embed");
  require_f32(x, "embed", "x");
  require(!wte.empty() && !wpe.empty() && wte.cols == x.cols && wpe.cols == x.cols, "embed",
          "wte " + shape(wte) + " and wpe " + shape(wpe) + " must have x's " + std::to_string(x.cols) + " columns");
  require(x.rows == batch.rows(), "embed", "x " + shape(x) + " must have one row per batch row");
  do_embed(x, wte, wpe, batch);
}

void Backend::layernorm(Tensor out, Tensor x, Tensor g, Tensor b, float eps) {
  require_f32(out, "layernorm", "out");
  require_f32(x, "layernorm", "x");
  require(out.rows == x.rows && out.cols == x.cols, "layernorm", "out " + shape(out) + " must equal x " + shape(x));
  require_vector(g, x.cols, "layernorm", "g");
  require_vector(b, x.cols, "layernorm", "b");
  do_layernorm(out, x, g, b, eps);
}

void Backend::add_layernorm(Tensor residual, Tensor delta, Tensor out, Tensor g, Tensor b, float eps) {
  require_f32(residual, "add_layernorm", "residual");
  require_f32(delta, "add_layernorm", "delta");
  require_f32(out, "add_layernorm", "out");
  require(delta.rows == residual.rows && delta.cols == residual.cols && out.rows == residual.rows &&
              out.cols == residual.cols,
          "add_layernorm",
          "residual " + shape(residual) + ", delta " + shape(delta) + " and out " + shape(out) + " must be equal");
  require_vector(g, residual.cols, "add_layernorm", "g");
  require_vector(b, residual.cols, "add_layernorm", "b");
  do_add_layernorm(residual, delta, out, g, b, eps);
}

void Backend::linear(Tensor out, Tensor in, Tensor w, Tensor bias, Epilogue epilogue) {
  require_f32(out, "linear", "out");
  require_f32(in, "linear", "in");
  require(!w.empty() && in.cols == w.cols && out.cols == w.rows && out.rows == in.rows, "linear",
          "in " + shape(in) + " @ w " + shape(w) + "^T -> out " + shape(out));
  if (!bias.empty()) require_vector(bias, w.rows, "linear", "bias");
  do_linear(out, in, w, bias, epilogue);
}

void Backend::attention(Tensor out, Tensor qkv, Tensor qkv_bias, const KvLayer& kv, const Batch& batch) {
  require_step(batch, "attention");
  require_f32(out, "attention", "out");
  require_f32(qkv, "attention", "qkv");
  const int64_t C = static_cast<int64_t>(kv.n_head) * kv.head_dim;
  require(qkv.rows == batch.rows() && qkv.cols == 3 * C && out.rows == qkv.rows && out.cols == C, "attention",
          "qkv " + shape(qkv) + " must be [N, 3C] and out " + shape(out) + " [N, C], C = " + std::to_string(C));
  if (!qkv_bias.empty()) require_vector(qkv_bias, 3 * C, "attention", "qkv_bias");
  require(!kv.k.empty() && !kv.v.empty(), "attention", "no KV cache");
  do_attention(out, qkv, qkv_bias, kv, batch);
}

void Backend::gather_rows(Tensor out, Tensor in, const Batch& batch) {
  require_step(batch, "gather_rows");
  require_f32(out, "gather_rows", "out");
  require_f32(in, "gather_rows", "in");
  require(in.rows == batch.rows() && out.rows == batch.n_logit_rows() && out.cols == in.cols, "gather_rows",
          "in " + shape(in) + " -> out " + shape(out) + " for " + std::to_string(batch.n_logit_rows()) + " rows");
  do_gather_rows(out, in, batch);
}

void Backend::read(float* dst, Tensor src) {
  require_f32(src, "read", "src");
  require(dst != nullptr, "read", "no destination");
  do_read(dst, src);
}

void Backend::top_k(Tensor logits, int64_t n_cols, int k, int32_t* ids, float* values, int32_t* invalid) {
  require_f32(logits, "top_k", "logits");
  require(k >= 1 && k <= kMaxTopK && k <= n_cols && n_cols <= logits.cols, "top_k",
          "top " + std::to_string(k) + " of " + std::to_string(n_cols) + " of " + std::to_string(logits.cols) +
              " columns");
  require(ids && values && invalid, "top_k", "no destination");
  do_top_k(logits, n_cols, k, ids, values, invalid);
}

}  // namespace gpt2
