// Host emulation of the CUDA device code the kernels use, so that the kernels' own source
// (kernels/*.cu, rewritten by tests/emulation/rewrite_cu.cpp) runs on the CPU as a logic check.
// It is not a substitute for a GPU run: no timing, no memory model weaker than the host's, no
// register or occupancy limits, host libm instead of the device's math.
//
// Execution model (tests/emulation/emu_runtime.cpp):
//   - A launch runs its blocks one after the other on each of a few host worker threads (blocks
//     of one launch run in parallel on different workers, so cross-block protocols such as the
//     decode attention's "last block combines" run with real atomics and fences).
//   - Inside a block every CUDA thread is a fiber (a ucontext coroutine with its own stack) on
//     the worker's thread. A fiber runs until it reaches a barrier (__syncthreads*,
//     __syncwarp), a warp collective (__shfl*_sync, __ballot_sync, __any/__all_sync,
//     __match_any_sync, the wmma *_sync calls) or its end; the scheduler then runs the next
//     runnable fiber, in thread order (GPT2_EMU_ORDER=reverse or shuffle[:seed] changes it).
//     A barrier completes when every thread of the block has reached it; a warp collective when
//     every lane of its mask has, and the last lane to arrive computes the result for all.
//   - Misuse that is undefined behaviour on a GPU is reported as a launch failure naming the
//     threads and lines: a barrier reached by some threads while others exited or wait at a
//     different __syncthreads, a warp collective whose mask names a lane that exited or waits
//     elsewhere, overlapping masks, a deadlock, shared memory above the limits.
//   - Shared memory is allocated per block and filled with 0xff bytes (NaN as float or half,
//     -1 as int) before the block runs, so a read of shared memory nobody wrote shows up. Each
//     variable is aligned exactly as declared and no more (an address that is a multiple of
//     its alignment but not of twice it), so a wider access than the declaration allows is
//     visible to an alignment sanitizer.
//   - Errors surface the way a GPU fault does: the launch sets the error that the next
//     cudaGetLastError returns (cudaLaunchKernelEx returns it), so the kernels' own
//     check_launch turns it into a gpt2::Error with the emulator's message.
#pragma once

#include <math.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

#include "common/dtype.h"

// ---- qualifiers ------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __constant__
#define __managed__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
#define __grid_constant__
// __shared__ declarations are rewritten by rewrite_cu; one left over is a compile error here.
#define __shared__ __shared___declaration_not_rewritten_by_tests_emulation_rewrite_cu

// ---- vector types ----------------------------------------------------------------------------
struct char2 { signed char x, y; };
struct alignas(4) char4 { signed char x, y, z, w; };
struct alignas(2) uchar2 { unsigned char x, y; };
struct alignas(4) uchar4 { unsigned char x, y, z, w; };
struct alignas(8) int2 { int x, y; };
struct int3 { int x, y, z; };
struct alignas(16) int4 { int x, y, z, w; };
struct alignas(8) uint2 { unsigned x, y; };
struct uint3 { unsigned x, y, z; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
struct alignas(8) float2 { float x, y; };
struct float3 { float x, y, z; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(16) double2 { double x, y; };
struct alignas(16) longlong2 { long long x, y; };
struct alignas(16) ulonglong2 { unsigned long long x, y; };

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};

inline int2 make_int2(int x, int y) { return int2{x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return int4{x, y, z, w}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return uint2{x, y}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }
inline float2 make_float2(float x, float y) { return float2{x, y}; }
inline float3 make_float3(float x, float y, float z) { return float3{x, y, z}; }
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

// ---- built-in variables (per host worker thread; the scheduler sets them per fiber) --------
extern thread_local uint3 threadIdx;
extern thread_local uint3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;
constexpr int warpSize = 32;

// ---- fp16 / bf16: the host's conversions (src/common/dtype.h), round to nearest even ---------
struct alignas(2) __half {
  uint16_t __x;
  __half() = default;
  __half(float f) : __x(gpt2::f32_to_f16(f)) {}
  operator float() const { return gpt2::f16_to_f32(__x); }
};
struct alignas(2) __nv_bfloat16 {
  uint16_t __x;
  __nv_bfloat16() = default;
  __nv_bfloat16(float f) : __x(gpt2::f32_to_bf16(f)) {}
  operator float() const { return gpt2::bf16_to_f32(__x); }
};
struct alignas(4) __half2 { __half x, y; };
struct alignas(4) __nv_bfloat162 { __nv_bfloat16 x, y; };
using half = __half;
using half2 = __half2;

inline __half __float2half_rn(float f) { return __half(f); }
inline __half __float2half(float f) { return __half(f); }
inline float __half2float(__half h) { return gpt2::f16_to_f32(h.__x); }
inline __half2 __floats2half2_rn(float a, float b) { return __half2{__half(a), __half(b)}; }
inline __half2 __float22half2_rn(float2 f) { return __half2{__half(f.x), __half(f.y)}; }
inline __half2 __halves2half2(__half a, __half b) { return __half2{a, b}; }
inline float2 __half22float2(__half2 h) { return float2{__half2float(h.x), __half2float(h.y)}; }
inline float __low2float(__half2 h) { return __half2float(h.x); }
inline float __high2float(__half2 h) { return __half2float(h.y); }
inline unsigned short __half_as_ushort(__half h) { return h.__x; }
inline __half __ushort_as_half(unsigned short u) {
  __half h;
  h.__x = u;
  return h;
}

inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
inline float __bfloat162float(__nv_bfloat16 h) { return gpt2::bf16_to_f32(h.__x); }
inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) {
  return __nv_bfloat162{__nv_bfloat16(a), __nv_bfloat16(b)};
}
inline __nv_bfloat162 __float22bfloat162_rn(float2 f) { return __nv_bfloat162{__nv_bfloat16(f.x), __nv_bfloat16(f.y)}; }
inline float2 __bfloat1622float2(__nv_bfloat162 h) { return float2{__bfloat162float(h.x), __bfloat162float(h.y)}; }
inline float __low2float(__nv_bfloat162 h) { return __bfloat162float(h.x); }
inline float __high2float(__nv_bfloat162 h) { return __bfloat162float(h.y); }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.__x; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) {
  __nv_bfloat16 h;
  h.__x = u;
  return h;
}

// ---- bit casts, integer intrinsics, math -----------------------------------------------------
namespace gpt2emu {
template <typename To, typename From>
inline To bit_cast(From from) {
  static_assert(sizeof(To) == sizeof(From), "bit_cast between types of different sizes");
  To to;
  std::memcpy(&to, &from, sizeof to);
  return to;
}
}  // namespace gpt2emu

inline float __uint_as_float(unsigned u) { return gpt2emu::bit_cast<float>(u); }
inline float __int_as_float(int i) { return gpt2emu::bit_cast<float>(i); }
inline unsigned __float_as_uint(float f) { return gpt2emu::bit_cast<unsigned>(f); }
inline int __float_as_int(float f) { return gpt2emu::bit_cast<int>(f); }
inline double __longlong_as_double(long long i) { return gpt2emu::bit_cast<double>(i); }
inline long long __double_as_longlong(double d) { return gpt2emu::bit_cast<long long>(d); }

inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll(static_cast<unsigned long long>(x)); }
inline unsigned __brev(unsigned x) {
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
  return r;
}

// CUDA's min/max overloads (device code calls them unqualified).
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline long min(long a, long b) { return a < b ? a : b; }
inline long max(long a, long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline unsigned long min(unsigned long a, unsigned long b) { return a < b ? a : b; }
inline unsigned long max(unsigned long a, unsigned long b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }

// The fast intrinsics as their accurate host functions (a logic check, not a numerics one).
inline float __expf(float x) { return expf(x); }
inline float __exp2f(float x) { return exp2f(x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }

// Cache-hinted loads and stores are plain accesses.
template <typename T>
inline T __ldg(const T* p) { return *p; }
template <typename T>
inline T __ldcg(const T* p) { return *p; }
template <typename T>
inline T __ldca(const T* p) { return *p; }
template <typename T>
inline T __ldcs(const T* p) { return *p; }
template <typename T>
inline T __ldlu(const T* p) { return *p; }
template <typename T>
inline T __ldcv(const T* p) { return *p; }
template <typename T>
inline void __stcg(T* p, T v) { *p = v; }
template <typename T>
inline void __stcs(T* p, T v) { *p = v; }
template <typename T>
inline void __stwb(T* p, T v) { *p = v; }
template <typename T>
inline void __stwt(T* p, T v) { *p = v; }

// ---- the emulator's interface (emu_runtime.cpp) -----------------------------------------------
namespace gpt2emu {

// One lane's part of a warp collective: the last lane to arrive calls `complete` with every
// participating lane's `lane_data` (indexed by lane; null for lanes outside `mask`).
using WarpComplete = void (*)(void* const* lane_data, unsigned mask, const void* shared_arg);
void warp_collective(const char* op, unsigned mask, int line, void* lane_data, WarpComplete complete,
                     const void* shared_arg = nullptr);

// Block barrier with the three reductions of __syncthreads_{or,and,count}.
struct BarrierResult {
  int any, all, count;
};
BarrierResult block_barrier(const char* op, int line, int predicate);

// The current thread's lane and warp, and the lanes of its warp that exist (a partial last
// warp has fewer than 32).
int lane_id();
unsigned warp_lanes_present();

// Shared memory of the running block: a static __shared__ variable (one per block, keyed by
// its declaration, 0xff-filled when first used) and the dynamic (extern) area.
void* shared_variable_bytes(const char* key, size_t bytes, size_t align);
void* dynamic_shared_bytes();
template <typename T>
inline T& shared_variable(const char* key, size_t align) {
  static_assert(std::is_trivially_default_constructible<T>::value && std::is_trivially_destructible<T>::value,
                "a __shared__ variable must be of a trivial type");
  return *static_cast<T*>(shared_variable_bytes(key, sizeof(T), align > alignof(T) ? align : alignof(T)));
}
template <typename T>
inline T* dynamic_shared() { return static_cast<T*>(dynamic_shared_bytes()); }

// Reports a device-side error (undefined behaviour on a GPU) and abandons the launch.
[[noreturn]] void device_fault(const char* message);

// The order in which the scheduler runs a block's runnable threads (GPT2_EMU_ORDER in the
// environment: forward, reverse, shuffle or shuffle:SEED). A kernel whose results depend on
// it has a race between two synchronization points.
enum class Schedule { forward, reverse, shuffle };
void set_schedule(Schedule schedule, uint64_t seed = 1);
Schedule schedule();
// Host worker threads that run blocks in parallel (GPT2_EMU_WORKERS; default: the cores, at most 4).
void set_workers(int workers);

// Counters since the start of the process, for the tests' summary.
struct Stats {
  uint64_t launches = 0, blocks = 0, threads = 0, switches = 0;
};
Stats stats();

}  // namespace gpt2emu

// ---- barriers and fences ---------------------------------------------------------------------
inline void __syncthreads(int line = __builtin_LINE()) { gpt2emu::block_barrier("__syncthreads", line, 0); }
inline int __syncthreads_or(int p, int line = __builtin_LINE()) {
  return gpt2emu::block_barrier("__syncthreads_or", line, p).any;
}
inline int __syncthreads_and(int p, int line = __builtin_LINE()) {
  return gpt2emu::block_barrier("__syncthreads_and", line, p).all;
}
inline int __syncthreads_count(int p, int line = __builtin_LINE()) {
  return gpt2emu::block_barrier("__syncthreads_count", line, p).count;
}
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_system() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

inline void __syncwarp(unsigned mask = 0xffffffffu, int line = __builtin_LINE()) {
  gpt2emu::warp_collective("__syncwarp", mask, line, nullptr, [](void* const*, unsigned, const void*) {});
}
// Divergence is not modelled: every lane of the warp that exists and has not exited.
unsigned __activemask();

// ---- warp collectives --------------------------------------------------------------------------
namespace gpt2emu {

// A shuffle's lane data: the value (as bytes), the lane parameter, and the result.
struct ShuffleLane {
  uint64_t value;
  int param;
  int width;
  uint64_t result;
};
enum class ShuffleKind { idx, up, down, bfly };

void shuffle_complete(void* const* lanes, unsigned mask, const void* kind);

template <typename T>
inline T shuffle(const char* op, ShuffleKind kind, unsigned mask, T var, int param, int width, int line) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle of a type wider than 8 bytes");
  if (width <= 0 || width > 32 || (width & (width - 1)) != 0) device_fault("shuffle width must be a power of 2 <= 32");
  ShuffleLane lane{0, param, width, 0};
  std::memcpy(&lane.value, &var, sizeof(T));
  static const ShuffleKind kinds[4] = {ShuffleKind::idx, ShuffleKind::up, ShuffleKind::down, ShuffleKind::bfly};
  warp_collective(op, mask, line, &lane, shuffle_complete, &kinds[static_cast<int>(kind)]);
  T out;
  std::memcpy(&out, &lane.result, sizeof(T));
  return out;
}

// Vote-style collectives: every lane contributes a 64-bit value and receives a 32-bit mask or
// flag computed from all of them.
struct VoteLane {
  uint64_t value;
  unsigned result;
};
enum class VoteKind { ballot, any, all, match_any, match_all, reduce_add, reduce_min, reduce_max, reduce_and,
                      reduce_or, reduce_xor };
void vote_complete(void* const* lanes, unsigned mask, const void* kind);
unsigned vote(const char* op, VoteKind kind, unsigned mask, uint64_t value, int line);

}  // namespace gpt2emu

template <typename T>
inline T __shfl_sync(unsigned mask, T var, int src_lane, int width = 32, int line = __builtin_LINE()) {
  return gpt2emu::shuffle("__shfl_sync", gpt2emu::ShuffleKind::idx, mask, var, src_lane, width, line);
}
template <typename T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = 32, int line = __builtin_LINE()) {
  return gpt2emu::shuffle("__shfl_up_sync", gpt2emu::ShuffleKind::up, mask, var, static_cast<int>(delta), width,
                          line);
}
template <typename T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = 32, int line = __builtin_LINE()) {
  return gpt2emu::shuffle("__shfl_down_sync", gpt2emu::ShuffleKind::down, mask, var, static_cast<int>(delta), width,
                          line);
}
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = 32, int line = __builtin_LINE()) {
  return gpt2emu::shuffle("__shfl_xor_sync", gpt2emu::ShuffleKind::bfly, mask, var, lane_mask, width, line);
}

inline unsigned __ballot_sync(unsigned mask, int pred, int line = __builtin_LINE()) {
  return gpt2emu::vote("__ballot_sync", gpt2emu::VoteKind::ballot, mask, pred != 0, line);
}
inline int __any_sync(unsigned mask, int pred, int line = __builtin_LINE()) {
  return static_cast<int>(gpt2emu::vote("__any_sync", gpt2emu::VoteKind::any, mask, pred != 0, line));
}
inline int __all_sync(unsigned mask, int pred, int line = __builtin_LINE()) {
  return static_cast<int>(gpt2emu::vote("__all_sync", gpt2emu::VoteKind::all, mask, pred != 0, line));
}
template <typename T>
inline unsigned __match_any_sync(unsigned mask, T value, int line = __builtin_LINE()) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "__match_any_sync takes 32- or 64-bit values");
  uint64_t v = 0;
  std::memcpy(&v, &value, sizeof(T));
  return gpt2emu::vote("__match_any_sync", gpt2emu::VoteKind::match_any, mask, v, line);
}
template <typename T>
inline unsigned __match_all_sync(unsigned mask, T value, int* pred, int line = __builtin_LINE()) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "__match_all_sync takes 32- or 64-bit values");
  uint64_t v = 0;
  std::memcpy(&v, &value, sizeof(T));
  const unsigned r = gpt2emu::vote("__match_all_sync", gpt2emu::VoteKind::match_all, mask, v, line);
  *pred = r != 0;
  return r;
}
inline unsigned __reduce_add_sync(unsigned mask, unsigned v, int line = __builtin_LINE()) {
  return gpt2emu::vote("__reduce_add_sync", gpt2emu::VoteKind::reduce_add, mask, v, line);
}
inline unsigned __reduce_min_sync(unsigned mask, unsigned v, int line = __builtin_LINE()) {
  return gpt2emu::vote("__reduce_min_sync", gpt2emu::VoteKind::reduce_min, mask, v, line);
}
inline unsigned __reduce_max_sync(unsigned mask, unsigned v, int line = __builtin_LINE()) {
  return gpt2emu::vote("__reduce_max_sync", gpt2emu::VoteKind::reduce_max, mask, v, line);
}
inline unsigned __reduce_and_sync(unsigned mask, unsigned v, int line = __builtin_LINE()) {
  return gpt2emu::vote("__reduce_and_sync", gpt2emu::VoteKind::reduce_and, mask, v, line);
}
inline unsigned __reduce_or_sync(unsigned mask, unsigned v, int line = __builtin_LINE()) {
  return gpt2emu::vote("__reduce_or_sync", gpt2emu::VoteKind::reduce_or, mask, v, line);
}
inline unsigned __reduce_xor_sync(unsigned mask, unsigned v, int line = __builtin_LINE()) {
  return gpt2emu::vote("__reduce_xor_sync", gpt2emu::VoteKind::reduce_xor, mask, v, line);
}

// ---- atomics (relaxed, as on the device; __threadfence orders them) --------------------------
// Overloads, not templates, as in CUDA: atomicAdd(unsigned*, 1) converts the 1.
namespace gpt2emu {
template <typename F, typename U, typename Op>
inline F atomic_float_update(F* p, F v, Op op) {
  U old = __atomic_load_n(reinterpret_cast<U*>(p), __ATOMIC_RELAXED);
  for (;;) {
    const U desired = bit_cast<U>(static_cast<F>(op(bit_cast<F>(old), v)));
    if (__atomic_compare_exchange_n(reinterpret_cast<U*>(p), &old, desired, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
      return bit_cast<F>(old);
  }
}
template <typename T>
inline T atomic_max(T* p, T v) {
  T old = __atomic_load_n(p, __ATOMIC_RELAXED);
  while (old < v && !__atomic_compare_exchange_n(p, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return old;
}
template <typename T>
inline T atomic_min(T* p, T v) {
  T old = __atomic_load_n(p, __ATOMIC_RELAXED);
  while (old > v && !__atomic_compare_exchange_n(p, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return old;
}
}  // namespace gpt2emu

#define GPT2EMU_INTEGER_ATOMICS(T)                                                                   \
  inline T atomicAdd(T* p, T v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }               \
  inline T atomicSub(T* p, T v) { return __atomic_fetch_sub(p, v, __ATOMIC_RELAXED); }               \
  inline T atomicAnd(T* p, T v) { return __atomic_fetch_and(p, v, __ATOMIC_RELAXED); }               \
  inline T atomicOr(T* p, T v) { return __atomic_fetch_or(p, v, __ATOMIC_RELAXED); }                 \
  inline T atomicXor(T* p, T v) { return __atomic_fetch_xor(p, v, __ATOMIC_RELAXED); }               \
  inline T atomicExch(T* p, T v) { return __atomic_exchange_n(p, v, __ATOMIC_RELAXED); }             \
  inline T atomicMax(T* p, T v) { return gpt2emu::atomic_max(p, v); }                                \
  inline T atomicMin(T* p, T v) { return gpt2emu::atomic_min(p, v); }                                \
  inline T atomicCAS(T* p, T compare, T v) {                                                         \
    __atomic_compare_exchange_n(p, &compare, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);          \
    return compare;                                                                                  \
  }
GPT2EMU_INTEGER_ATOMICS(int)
GPT2EMU_INTEGER_ATOMICS(unsigned)
GPT2EMU_INTEGER_ATOMICS(long long)
GPT2EMU_INTEGER_ATOMICS(unsigned long long)
#undef GPT2EMU_INTEGER_ATOMICS
inline float atomicAdd(float* p, float v) {
  return gpt2emu::atomic_float_update<float, uint32_t>(p, v, [](float a, float b) { return a + b; });
}
inline double atomicAdd(double* p, double v) {
  return gpt2emu::atomic_float_update<double, uint64_t>(p, v, [](double a, double b) { return a + b; });
}
inline float atomicExch(float* p, float v) {
  return gpt2emu::atomic_float_update<float, uint32_t>(p, v, [](float, float b) { return b; });
}
inline float atomicMax(float* p, float v) {
  return gpt2emu::atomic_float_update<float, uint32_t>(p, v, [](float a, float b) { return fmaxf(a, b); });
}
inline float atomicMin(float* p, float v) {
  return gpt2emu::atomic_float_update<float, uint32_t>(p, v, [](float a, float b) { return fminf(a, b); });
}

// ---- host runtime API subset -----------------------------------------------------------------
enum cudaError {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDeviceFunction = 98,
  cudaErrorNoDevice = 100,
  cudaErrorLaunchFailure = 719,
};
using cudaError_t = cudaError;

struct CUstream_st;
using cudaStream_t = CUstream_st*;
struct CUevent_st;
using cudaEvent_t = CUevent_st*;

enum cudaDeviceAttr {
  cudaDevAttrMaxThreadsPerBlock = 1,
  cudaDevAttrMaxSharedMemoryPerBlock = 8,
  cudaDevAttrWarpSize = 10,
  cudaDevAttrMultiProcessorCount = 16,
  cudaDevAttrComputeCapabilityMajor = 75,
  cudaDevAttrComputeCapabilityMinor = 76,
  cudaDevAttrMaxSharedMemoryPerMultiprocessor = 81,
  cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
};

enum cudaFuncAttribute {
  cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
  cudaFuncAttributePreferredSharedMemoryCarveout = 9,
};

struct cudaFuncAttributes {
  size_t sharedSizeBytes = 0;
  size_t constSizeBytes = 0;
  size_t localSizeBytes = 0;
  int maxThreadsPerBlock = 1024;
  int numRegs = 0;
  int ptxVersion = 90;
  int binaryVersion = 90;
  int maxDynamicSharedSizeBytes = 48 * 1024;
};

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};

enum cudaLaunchAttributeID {
  cudaLaunchAttributeProgrammaticStreamSerialization = 5,
};
union cudaLaunchAttributeValue {
  int programmaticStreamSerializationAllowed;
  char pad[64];
};
struct cudaLaunchAttribute {
  cudaLaunchAttributeID id;
  cudaLaunchAttributeValue val;
};
struct cudaLaunchConfig_t {
  dim3 gridDim;
  dim3 blockDim;
  size_t dynamicSmemBytes;
  cudaStream_t stream;
  cudaLaunchAttribute* attrs;
  unsigned numAttrs;
};

const char* cudaGetErrorString(cudaError_t err);
const char* cudaGetErrorName(cudaError_t err);
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
// "Device" memory is host memory; copies are synchronous.
cudaError_t cudaMalloc(void** ptr, size_t bytes);
template <typename T>
inline cudaError_t cudaMalloc(T** ptr, size_t bytes) { return cudaMalloc(reinterpret_cast<void**>(ptr), bytes); }
cudaError_t cudaFree(void* ptr);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream = nullptr);
cudaError_t cudaMemset(void* dst, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t stream = nullptr);

namespace gpt2emu {

// The emulated device: sm_90 with an H200's SM count and shared-memory limits. Tests may
// lower the SM count (a launcher that sizes its grid by it then runs its grid-stride loops).
struct DeviceProps {
  int sm_count = 132;
  int smem_per_sm = 233472;          // 228 KiB
  int smem_per_block_optin = 232448; // 227 KiB
  int max_threads_per_sm = 2048;
  int cc_major = 9, cc_minor = 0;
};
DeviceProps& device_props();

// Per-kernel attributes, keyed by the kernel's address.
int max_dynamic_smem(const void* kernel);
cudaError_t set_max_dynamic_smem(const void* kernel, int bytes);

// Runs a grid: `body` is called once per CUDA thread (on that thread's fiber).
struct KernelBody {
  void (*call)(const void* self);
  const void* self;
};
cudaError_t run_grid(const void* kernel, const char* name, dim3 grid, dim3 block, size_t smem, KernelBody body);
void set_last_error(cudaError_t err);

struct LaunchConfig {
  dim3 grid, block;
  size_t smem;
  cudaStream_t stream;
  LaunchConfig(dim3 g, dim3 b, size_t s = 0, cudaStream_t st = nullptr) : grid(g), block(b), smem(s), stream(st) {}
};

template <typename... KArgs, typename... Args>
cudaError_t launch_kernel(const char* name, void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem,
                          Args&&... args) {
  // Kernel parameters are per-thread copies: every thread calls the kernel with its own copy
  // of these (std::apply passes the tuple's elements to by-value parameters).
  const std::tuple<typename std::decay<KArgs>::type...> params(static_cast<KArgs>(std::forward<Args>(args))...);
  struct Closure {
    void (*kernel)(KArgs...);
    const std::tuple<typename std::decay<KArgs>::type...>* params;
  } closure{kernel, &params};
  const KernelBody body{[](const void* self) {
                          const Closure* c = static_cast<const Closure*>(self);
                          std::apply(c->kernel, *c->params);
                        },
                        &closure};
  return run_grid(reinterpret_cast<const void*>(kernel), name, grid, block, smem, body);
}

// The rewritten form of `kernel<<<grid, block, smem, stream>>>(args...)`.
template <typename... KArgs, typename... Args>
void launch(const char* name, void (*kernel)(KArgs...), const LaunchConfig& config, Args&&... args) {
  set_last_error(launch_kernel(name, kernel, config.grid, config.block, config.smem, std::forward<Args>(args)...));
}

}  // namespace gpt2emu

template <typename... KArgs, typename... Args>
inline cudaError_t cudaLaunchKernelEx(const cudaLaunchConfig_t* config, void (*kernel)(KArgs...), Args&&... args) {
  // The launch attributes (programmatic dependent launch) only allow overlap with the previous
  // kernel; emulated launches run one after the other, so they are accepted and ignored.
  const cudaError_t err = gpt2emu::launch_kernel("cudaLaunchKernelEx", kernel, config->gridDim, config->blockDim,
                                                 config->dynamicSmemBytes, std::forward<Args>(args)...);
  gpt2emu::set_last_error(err);
  return err;
}

template <typename T>
inline cudaError_t cudaFuncSetAttribute(T* kernel, cudaFuncAttribute attr, int value) {
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize)
    return gpt2emu::set_max_dynamic_smem(reinterpret_cast<const void*>(kernel), value);
  return cudaSuccess;
}
template <typename T>
inline cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attr, T* kernel) {
  *attr = cudaFuncAttributes{};
  attr->maxDynamicSharedSizeBytes = gpt2emu::max_dynamic_smem(reinterpret_cast<const void*>(kernel));
  return cudaSuccess;
}
// Resident blocks per SM from threads and shared memory only (registers are not modelled).
template <typename T>
inline cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* blocks, T* kernel, int block_size,
                                                                 size_t smem) {
  (void)kernel;
  const gpt2emu::DeviceProps& d = gpt2emu::device_props();
  if (block_size <= 0 || block_size > 1024) return cudaErrorInvalidValue;
  int n = d.max_threads_per_sm / block_size;
  const int by_smem = static_cast<int>(static_cast<size_t>(d.smem_per_sm) / (smem + 1024));
  n = n < by_smem ? n : by_smem;
  *blocks = n < 32 ? n : 32;
  return cudaSuccess;
}
template <typename T>
inline cudaError_t cudaMemcpyToSymbol(T& symbol, const void* src, size_t bytes, size_t offset = 0,
                                      cudaMemcpyKind = cudaMemcpyHostToDevice) {
  std::memcpy(reinterpret_cast<char*>(&symbol) + offset, src, bytes);
  return cudaSuccess;
}
