// Row gather: out[r, :] = in[logit_rows[r], :]
//
// Shapes: in [N, C] fp32, logit_rows [R] int32 (the device batch, kernels/batch.cuh), out [R, C]
// fp32, row-major. It selects the rows the LM head runs on: each sequence's last row in a
// generation step, every row when scoring. The row list comes from device memory rather than
// from a host-side copy with fixed offsets because a decode graph captured once must gather
// whatever rows the batch of each replay names.
// Work split: one block per output row, threads stride over the row's float4s (coalesced;
// plain floats when a row is not a multiple of 4 floats or not 16-byte aligned).
// Numerics: a copy (bit-exact).
#include "kernels/common.cuh"
#include "kernels/gather_rows.cuh"

namespace gpt2::cuda {

namespace {

// V: float4 (rows of a multiple of 4 floats, the activations of every GPT-2 size) or float.
template <typename V>
__global__ void gather_rows_kernel(V* out, const V* in, DeviceBatch batch, int64_t row_len) {
  pdl_wait();
  const int r = blockIdx.x;
  const int64_t src = batch.logit_rows[r];
  const V* from = in + src * row_len;
  V* to = out + static_cast<int64_t>(r) * row_len;
  for (int64_t c = threadIdx.x; c < row_len; c += blockDim.x) to[c] = from[c];
}

}  // namespace

void gather_rows(float* out, const float* in, DeviceBatch batch, int n_out, int64_t cols, bool pdl,
                 cudaStream_t stream) {
  if (n_out <= 0) return;
  const dim3 grid(static_cast<unsigned>(n_out)), block(128);
  const bool aligned = cols % 4 == 0 && reinterpret_cast<uintptr_t>(out) % 16 == 0 &&
                       reinterpret_cast<uintptr_t>(in) % 16 == 0;
  if (aligned)
    launch_pdl("gather_rows", gather_rows_kernel<float4>, grid, block, 0, pdl, stream, reinterpret_cast<float4*>(out),
               reinterpret_cast<const float4*>(in), batch, cols / 4);
  else
    launch_pdl("gather_rows", gather_rows_kernel<float>, grid, block, 0, pdl, stream, out, in, batch, cols);
  check_launch("gather_rows");
}

}  // namespace gpt2::cuda
