// The emulator itself (shim/gpt2emu.h, emu_runtime.cpp, shim/mma.h): barriers, warp collectives
// against their documented semantics, shared memory that starts as garbage, WMMA fragments that
// multiply correctly, and the faults a GPU leaves undefined reported as launch failures.
// Test kernels are plain functions launched with gpt2emu::launch_kernel (what a rewritten
// <<<...>>> becomes).
#include <catch2/catch.hpp>

#include <mma.h>

#include <algorithm>
#include <string>
#include <vector>

#include "emu_test_util.h"
#include "gpt2emu.h"

using namespace gpt2;
using namespace gpt2::emu_test;

namespace {

std::string launch_error(cudaError_t err) {
  if (err == cudaSuccess) return "";
  cudaGetLastError();
  return cudaGetErrorString(err);
}

// ---- barriers and shared memory -----------------------------------------------------------------

void rotate_kernel(int* first_read, int* out) {
  auto& s = gpt2emu::shared_variable<int[256]>("rotate s", 0);
  const int t = static_cast<int>(threadIdx.x), n = static_cast<int>(blockDim.x);
  first_read[blockIdx.x * n + t] = s[t];  // before any write: garbage
  s[t] = t + 1000 * static_cast<int>(blockIdx.x);
  __syncthreads();
  out[blockIdx.x * n + t] = s[(t + 1) % n];
}

TEST_CASE("emulator: __syncthreads orders shared memory; shared memory starts as 0xff", "[emulation][emulator]") {
  const int blocks = 3, threads = 256;
  DeviceArray<int> first(blocks * threads), out(blocks * threads);
  REQUIRE(gpt2emu::launch_kernel("rotate", rotate_kernel, dim3(blocks), dim3(threads), 0, first.data(), out.data()) ==
          cudaSuccess);
  for (int b = 0; b < blocks; ++b)
    for (int t = 0; t < threads; ++t) {
      CHECK(first[b * threads + t] == -1);
      CHECK(out[b * threads + t] == (t + 1) % threads + 1000 * b);
    }
}

void reduce_barrier_kernel(int* out, int modulus) {
  const int t = static_cast<int>(threadIdx.x);
  const int any = __syncthreads_or(t % modulus == 0 && t > 0);
  const int all = __syncthreads_and(t < 1000);
  const int count = __syncthreads_count(t % modulus == 0);
  if (t == 0) {
    out[0] = any;
    out[1] = all;
    out[2] = count;
  }
}

TEST_CASE("emulator: __syncthreads_or/and/count", "[emulation][emulator]") {
  DeviceArray<int> out(3);
  REQUIRE(gpt2emu::launch_kernel("reduce", reduce_barrier_kernel, dim3(1), dim3(100), 0, out.data(), 7) ==
          cudaSuccess);
  CHECK(out[0] == 1);
  CHECK(out[1] == 1);
  CHECK(out[2] == 15);  // 0, 7, ..., 98
  REQUIRE(gpt2emu::launch_kernel("reduce", reduce_barrier_kernel, dim3(1), dim3(100), 0, out.data(), 200) ==
          cudaSuccess);
  CHECK(out[0] == 0);
  CHECK(out[2] == 1);
}

void dynamic_kernel(float* out) {
  float* s = gpt2emu::dynamic_shared<float>();
  const int t = static_cast<int>(threadIdx.x);
  out[t] = reinterpret_cast<uintptr_t>(s) % 16 == 0 ? s[t] : 0.0f;  // garbage (NaN) when aligned
}

TEST_CASE("emulator: dynamic shared memory is garbage, 16-byte aligned, limited to 48 KiB unless raised",
          "[emulation][emulator]") {
  DeviceArray<float> out(64);
  REQUIRE(gpt2emu::launch_kernel("dynamic", dynamic_kernel, dim3(1), dim3(64), 64 * 4, out.data()) == cudaSuccess);
  for (int i = 0; i < 64; ++i) CHECK(std::isnan(out[i]));
  CHECK(launch_error(gpt2emu::launch_kernel("dynamic", dynamic_kernel, dim3(1), dim3(64), 49 * 1024, out.data()))
            .find("dynamic shared memory") != std::string::npos);
  REQUIRE(cudaFuncSetAttribute(dynamic_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 100 * 1024) ==
          cudaSuccess);
  CHECK(gpt2emu::launch_kernel("dynamic", dynamic_kernel, dim3(1), dim3(64), 99 * 1024, out.data()) == cudaSuccess);
  CHECK(cudaFuncSetAttribute(dynamic_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 300 * 1024) ==
        cudaErrorInvalidValue);
  cudaGetLastError();
}

void empty_kernel() {}

TEST_CASE("emulator: invalid launch configurations fail like on the device", "[emulation][emulator]") {
  CHECK(gpt2emu::launch_kernel("empty", empty_kernel, dim3(1), dim3(1025), 0) == cudaErrorInvalidConfiguration);
  CHECK(gpt2emu::launch_kernel("empty", empty_kernel, dim3(0), dim3(32), 0) == cudaErrorInvalidConfiguration);
  CHECK(gpt2emu::launch_kernel("empty", empty_kernel, dim3(1, 65536), dim3(32), 0) == cudaErrorInvalidConfiguration);
  CHECK(gpt2emu::launch_kernel("empty", empty_kernel, dim3(2, 3, 4), dim3(8, 4, 2), 0) == cudaSuccess);
  // The <<<>>> form leaves the error for cudaGetLastError, which clears it.
  gpt2emu::launch("empty", empty_kernel, gpt2emu::LaunchConfig(dim3(1), dim3(2000)));
  CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
  CHECK(cudaGetLastError() == cudaSuccess);
}

// ---- warp collectives -------------------------------------------------------------------------------

struct WarpOut {
  int idx, up, down, bfly, idx8, up8, down8, bfly8;
  unsigned ballot, match;
  int any, all;
};

void warp_kernel(WarpOut* out) {
  const int t = static_cast<int>(threadIdx.x);
  const int v = 100 * t;
  WarpOut& o = out[t];
  o.idx = __shfl_sync(0xffffffffu, v, (t * 7) % 32);
  o.up = __shfl_up_sync(0xffffffffu, v, 3);
  o.down = __shfl_down_sync(0xffffffffu, v, 5);
  o.bfly = __shfl_xor_sync(0xffffffffu, v, 6);
  o.idx8 = __shfl_sync(0xffffffffu, v, 3, 8);
  o.up8 = __shfl_up_sync(0xffffffffu, v, 2, 8);
  o.down8 = __shfl_down_sync(0xffffffffu, v, 2, 8);
  o.bfly8 = __shfl_xor_sync(0xffffffffu, v, 12, 8);  // outside the 8-lane segment: own value
  o.ballot = __ballot_sync(0xffffffffu, t % 3 == 0);
  o.match = __match_any_sync(0xffffffffu, t % 5);
  o.any = __any_sync(0xffffffffu, t == 37);
  o.all = __all_sync(0xffffffffu, t != 40);
}

TEST_CASE("emulator: shuffles, votes and matches follow the CUDA documentation", "[emulation][emulator]") {
  const int n = 64;
  DeviceArray<WarpOut> out(n);
  REQUIRE(gpt2emu::launch_kernel("warp", warp_kernel, dim3(1), dim3(n), 0, out.data()) == cudaSuccess);
  for (int t = 0; t < n; ++t) {
    const int lane = t % 32, base = t - lane, seg = t - t % 8;
    const WarpOut& o = out[t];
    CHECK(o.idx == 100 * (base + (lane * 7) % 32));
    CHECK(o.up == 100 * (lane >= 3 ? t - 3 : t));
    CHECK(o.down == 100 * (lane + 5 < 32 ? t + 5 : t));
    CHECK(o.bfly == 100 * (base + (lane ^ 6)));
    CHECK(o.idx8 == 100 * (seg + 3));
    CHECK(o.up8 == 100 * (t % 8 >= 2 ? t - 2 : t));
    CHECK(o.down8 == 100 * (t % 8 + 2 < 8 ? t + 2 : t));
    CHECK(o.bfly8 == 100 * t);
    unsigned ballot = 0, match = 0;
    for (int l = 0; l < 32; ++l) {
      if ((base + l) % 3 == 0) ballot |= 1u << l;
      if ((base + l) % 5 == t % 5) match |= 1u << l;
    }
    CHECK(o.ballot == ballot);
    CHECK(o.match == match);
    CHECK(o.any == (base == 32 ? 1 : 0));
    CHECK(o.all == (base == 32 ? 0 : 1));
  }
}

void partial_warp_kernel(int* out, unsigned mask) {
  const int t = static_cast<int>(threadIdx.x);
  out[t] = __shfl_xor_sync(t < 32 ? 0xffffffffu : mask, t, 1);
}

TEST_CASE("emulator: a partial last warp takes masks of its lanes only", "[emulation][emulator]") {
  DeviceArray<int> out(40);
  REQUIRE(gpt2emu::launch_kernel("partial", partial_warp_kernel, dim3(1), dim3(40), 0, out.data(), 0xffu) ==
          cudaSuccess);
  for (int t = 0; t < 40; ++t) CHECK(out[t] == (t ^ 1));
  const std::string err =
      launch_error(gpt2emu::launch_kernel("partial", partial_warp_kernel, dim3(1), dim3(40), 0, out.data(), 0xffffffffu));
  CHECK(err.find("do not exist") != std::string::npos);
}

// ---- faults that are undefined behaviour on a GPU --------------------------------------------------

void early_exit_kernel(int* out) {
  if (threadIdx.x == 5) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

void divergent_barrier_kernel(int* out) {
  if (threadIdx.x % 2)
    __syncthreads();
  else
    __syncthreads();
  out[threadIdx.x] = 1;
}

void divergent_shuffle_kernel(int* out) {
  int v = static_cast<int>(threadIdx.x);
  if (threadIdx.x % 32 < 16) v = __shfl_xor_sync(0xffffffffu, v, 1);  // the other lanes never come
  __syncthreads();
  out[threadIdx.x] = v;
}

void exit_in_shuffle_kernel(int* out) {
  if (threadIdx.x == 3) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, static_cast<int>(threadIdx.x), 1);
}

void half_warp_kernel(int* out) {
  int v = 0;
  if (threadIdx.x < 32) v = __shfl_xor_sync(0xffffffffu, 1, 1);  // warp 0: every lane
  if (threadIdx.x >= 32 && threadIdx.x < 48) v = __shfl_xor_sync(0xffffffffu, 1, 1);  // warp 1: half
  out[threadIdx.x] = v;
}

TEST_CASE("emulator: undefined barrier and warp-collective use is a launch failure naming the line",
          "[emulation][emulator]") {
  DeviceArray<int> out(64);
  std::string err = launch_error(gpt2emu::launch_kernel("early_exit", early_exit_kernel, dim3(1), dim3(64), 0, out.data()));
  CHECK(err.find("early_exit") != std::string::npos);
  CHECK(err.find("exit") != std::string::npos);

  err = launch_error(gpt2emu::launch_kernel("divergent", divergent_barrier_kernel, dim3(1), dim3(64), 0, out.data()));
  CHECK(err.find("divergent code") != std::string::npos);

  err = launch_error(gpt2emu::launch_kernel("divergent_shuffle", divergent_shuffle_kernel, dim3(1), dim3(64), 0,
                                            out.data()));
  CHECK(err.find("deadlock") != std::string::npos);

  err = launch_error(gpt2emu::launch_kernel("exit_in_shuffle", exit_in_shuffle_kernel, dim3(1), dim3(32), 0,
                                            out.data()));
  CHECK(err.find("exit") != std::string::npos);

  err = launch_error(gpt2emu::launch_kernel("half_warp", half_warp_kernel, dim3(1), dim3(64), 0, out.data()));
  CHECK(err.find("wait for it in __shfl_xor_sync (line") != std::string::npos);
  INFO(err);
  CHECK(cudaGetLastError() == cudaSuccess);
}

// ---- the schedule exposes races ---------------------------------------------------------------------

void racy_kernel(int* out) {
  auto& s = gpt2emu::shared_variable<int>("racy s", 0);
  if (threadIdx.x / 32 == 1) s = static_cast<int>(threadIdx.x);
  __syncwarp();  // orders the warp, not the block: warp 0's read races with warp 1's writes
  if (threadIdx.x / 32 == 0) out[threadIdx.x] = s;
}

TEST_CASE("emulator: a race between barriers changes results with the schedule", "[emulation][emulator]") {
  DeviceArray<int> a(64), b(64);
  gpt2emu::set_schedule(gpt2emu::Schedule::forward);
  REQUIRE(gpt2emu::launch_kernel("racy", racy_kernel, dim3(1), dim3(64), 0, a.data()) == cudaSuccess);
  gpt2emu::set_schedule(gpt2emu::Schedule::reverse);
  REQUIRE(gpt2emu::launch_kernel("racy", racy_kernel, dim3(1), dim3(64), 0, b.data()) == cudaSuccess);
  gpt2emu::set_schedule(gpt2emu::Schedule::forward);
  CHECK(compare_bits(a.data(), b.data(), 32) != "");
}

// ---- atomics and fences across blocks (blocks run on several host threads) --------------------------

void count_kernel(int* counter, int* last) {
  __threadfence();
  const int before = atomicAdd(counter, 1);
  if (before == static_cast<int>(gridDim.x * blockDim.x) - 1) atomicAdd(last, 1);
}

TEST_CASE("emulator: atomics across blocks", "[emulation][emulator]") {
  DeviceArray<int> counter(std::vector<int>{0}), last(std::vector<int>{0});
  REQUIRE(gpt2emu::launch_kernel("count", count_kernel, dim3(64), dim3(96), 0, counter.data(), last.data()) ==
          cudaSuccess);
  CHECK(counter[0] == 64 * 96);
  CHECK(last[0] == 1);
}

// ---- WMMA ---------------------------------------------------------------------------------------

namespace wmma = nvcuda::wmma;

// D = A B + C for one 16x16x16 tile, A row-major or column-major per `a_row`, B likewise,
// C loaded and D stored in row- or column-major memory.
template <typename T, typename LA, typename LB>
void wmma_kernel(float* d, const T* a, const T* b, const float* c, wmma::layout_t c_layout) {
  wmma::fragment<wmma::matrix_a, 16, 16, 16, T, LA> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 16, T, LB> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> fc;
  wmma::load_matrix_sync(fa, a, 24);
  wmma::load_matrix_sync(fb, b, 24);
  wmma::load_matrix_sync(fc, c, 20, c_layout);
  wmma::mma_sync(fc, fa, fb, fc);
  for (int e = 0; e < fc.num_elements; ++e) fc.x[e] *= 2.0f;  // element-wise ops are layout-free
  wmma::store_matrix_sync(d, fc, 20, c_layout);
}

template <typename T, typename LA, typename LB>
void check_wmma(DType dtype, wmma::layout_t c_layout) {
  const bool a_row = std::is_same<LA, wmma::row_major>::value, b_row = std::is_same<LB, wmma::row_major>::value;
  const bool c_row = c_layout == wmma::mem_row_major;
  std::vector<float> a(16 * 24), b(16 * 24), c(16 * 20);
  std::mt19937 rng(7);
  for (float& x : a) x = static_cast<float>(static_cast<int>(rng() % 9) - 4) * 0.5f;  // exact in fp16 and bf16
  for (float& x : b) x = static_cast<float>(static_cast<int>(rng() % 7) - 3);
  for (float& x : c) x = static_cast<float>(static_cast<int>(rng() % 11) - 5);
  DeviceArray<uint8_t> a16 = encode(a, dtype), b16 = encode(b, dtype);
  DeviceArray<float> cd(c), d(16 * 20);
  REQUIRE(gpt2emu::launch_kernel("wmma", wmma_kernel<T, LA, LB>, dim3(1), dim3(32), 0, d.data(),
                                 reinterpret_cast<const T*>(a16.data()), reinterpret_cast<const T*>(b16.data()),
                                 cd.data(), c_layout) == cudaSuccess);
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j) {
      double s = c[static_cast<size_t>(c_row ? i * 20 + j : j * 20 + i)];
      for (int k = 0; k < 16; ++k)
        s += static_cast<double>(a[static_cast<size_t>(a_row ? i * 24 + k : k * 24 + i)]) *
             b[static_cast<size_t>(b_row ? k * 24 + j : j * 24 + k)];
      CHECK(d[static_cast<size_t>(c_row ? i * 20 + j : j * 20 + i)] == static_cast<float>(2 * s));
    }
}

void wmma_misaligned_kernel(float* d, const __half* a) {
  wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa;
  wmma::load_matrix_sync(fa, a + 4, 16);  // 8 bytes past a 256-byte boundary
  (void)d;
}

TEST_CASE("emulator: WMMA fragments load, multiply and store consistently", "[emulation][emulator]") {
  check_wmma<__half, wmma::row_major, wmma::col_major>(DType::f16, wmma::mem_row_major);
  check_wmma<__half, wmma::col_major, wmma::row_major>(DType::f16, wmma::mem_col_major);
  check_wmma<__nv_bfloat16, wmma::row_major, wmma::row_major>(DType::bf16, wmma::mem_row_major);
  check_wmma<__nv_bfloat16, wmma::col_major, wmma::col_major>(DType::bf16, wmma::mem_col_major);
  DeviceArray<__half> a(512);
  DeviceArray<float> d(256);
  const std::string err = launch_error(
      gpt2emu::launch_kernel("wmma_misaligned", wmma_misaligned_kernel, dim3(1), dim3(32), 0, d.data(), a.data()));
  CHECK(err.find("256-bit aligned") != std::string::npos);
}

// ---- fp16 / bf16 conversions are the host's ----------------------------------------------------------

TEST_CASE("emulator: __float2half_rn and __float2bfloat16_rn equal src/common/dtype.h", "[emulation][emulator]") {
  std::vector<float> xs = random_floats(2000, 3, 100.0f);
  const float specials[] = {0.0f, -0.0f, 65504.0f, 65519.0f, 65520.0f, 1e-8f, 6e-8f, 3e-5f, -3e-5f,
                            std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::denorm_min(),
                            3.3895314e38f, 1.0f + 1.0f / 256, 1.0f + 3.0f / 512};
  xs.insert(xs.end(), std::begin(specials), std::end(specials));
  for (float x : xs) {
    CHECK(__float2half_rn(x).__x == f32_to_f16(x));
    CHECK(__float2bfloat16_rn(x).__x == f32_to_bf16(x));
    CHECK(bits_of(__half2float(__float2half_rn(x))) == bits_of(f16_to_f32(f32_to_f16(x))));
    CHECK(bits_of(__bfloat162float(__float2bfloat16_rn(x))) == bits_of(bf16_to_f32(f32_to_bf16(x))));
  }
}

}  // namespace
