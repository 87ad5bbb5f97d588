// Embedding lookup: x[r, c] = wte[tokens[r], c] + wpe[pos + r % T, c]
//
// Shapes: tokens [B*T] int32, pos [1] int32 (device memory; positions of a step are
// pos .. pos+T-1 for every sequence), wte [V, C], wpe [n_ctx, C] in the weight dtype,
// x [B*T, C] fp32 row-major (row b*T + t is token t of sequence b).
// Work split: one block per row, threads stride over the C columns (coalesced).
// Numerics: each table value converted to fp32, one fp32 add (exact match with the CPU).
// Token ids are validated on the host (Gpt2::forward) before they reach the device.
// Source: Radford et al. 2019 (GPT-2), token + learned position embeddings.
#include "kernels/common.cuh"
#include "kernels/embed.cuh"

namespace gpt2::cuda {

namespace {

template <typename T>
__global__ void embed_kernel(float* x, const T* wte, const T* wpe, const int32_t* tokens, const int32_t* pos,
                             int n_tokens, int n_embd) {
  pdl_wait();
  const int row = blockIdx.x;
  const int64_t token = tokens[row];
  const int64_t position = *pos + row % n_tokens;
  const T* te = wte + token * n_embd;
  const T* pe = wpe + position * n_embd;
  float* out = x + static_cast<int64_t>(row) * n_embd;
  for (int c = threadIdx.x; c < n_embd; c += blockDim.x) out[c] = to_float(te[c]) + to_float(pe[c]);
}

}  // namespace

void embed(float* x, const void* wte, const void* wpe, DType dtype, const int32_t* tokens, const int32_t* pos,
           int rows, int n_tokens, int n_embd, cudaStream_t stream) {
  if (rows <= 0) return;
  if (n_tokens <= 0 || rows % n_tokens != 0) throw Error("embed: rows must be a multiple of n_tokens");
  GPT2_DISPATCH_FLOAT_TYPES(dtype, "embed", {
    launch_pdl("embed", embed_kernel<T>, dim3(rows), dim3(256), 0, stream, x, static_cast<const T*>(wte),
               static_cast<const T*>(wpe), tokens, pos, n_tokens, n_embd);
  });
  check_launch("embed");
}

}  // namespace gpt2::cuda
