// Embedding lookup: x[n, c] = wte[tokens[n], c] + wpe[positions[n], c]
//
// Shapes: tokens, positions [N] int32 (the device batch, kernels/batch.cuh: each row its own
// position, so sequences at different positions share one launch), wte [V, C], wpe [n_ctx, C] in
// the weight dtype, x [N, C] fp32 row-major.
// Work split: one block per row, threads stride over the C columns (coalesced).
// Numerics: each table value converted to fp32, one fp32 add (exact match with the CPU).
// Token ids and positions are validated on the host (Gpt2::forward) before they reach the device.
// Source: Radford et al. 2019 (GPT-2), token + learned position embeddings.
#include "kernels/common.cuh"
#include "kernels/embed.cuh"

namespace gpt2::cuda {

namespace {

template <typename T>
__global__ void embed_kernel(float* x, const T* wte, const T* wpe, DeviceBatch batch, int n_embd) {
  pdl_wait();  // the batch was uploaded by this step; x may still be read by the previous kernel
  const int row = blockIdx.x;
  const int64_t token = batch.tokens[row];
  const int64_t position = batch.positions[row];
  const T* te = wte + token * n_embd;
  const T* pe = wpe + position * n_embd;
  float* out = x + static_cast<int64_t>(row) * n_embd;
  for (int c = threadIdx.x; c < n_embd; c += blockDim.x) out[c] = to_float(te[c]) + to_float(pe[c]);
}

}  // namespace

void embed(float* x, const void* wte, const void* wpe, DType dtype, DeviceBatch batch, int rows, int n_embd, bool pdl,
           cudaStream_t stream) {
  if (rows <= 0) return;
  GPT2_DISPATCH_FLOAT_TYPES(dtype, "embed", {
    launch_pdl("embed", embed_kernel<T>, dim3(rows), dim3(256), 0, pdl, stream, x, static_cast<const T*>(wte),
               static_cast<const T*>(wpe), batch, n_embd);
  });
  check_launch("embed");
}

}  // namespace gpt2::cuda
