// Selection over a row of logits: argmax, and the k most likely entries in order.
//
// argmax: out[r] = min { j : logits[r, j] = max_i logits[r, i] }
// top_k:  ids[r, 0..k) = the first k indices of row r sorted by the total order
//           a before b  <=>  x_a > x_b  or  (x_a == x_b  and  a < b)
//         (sampler.cpp more_likely), values[r, t] = logits[r, ids[r, t]] (same bits),
//         invalid[r] = 1 when some x_j (j < cols) is NaN or +inf.
//
// Shapes: logits [rows, ld] fp32 row-major, of which columns [0, cols) are read (rows = batch,
// cols = n_vocab = 50257); out, invalid [rows] int32; ids [rows, k] int32, values [rows, k] fp32.
//
// argmax work split: one block of 1024 threads per row; each thread scans a strided slice keeping
// (value, index), then a warp butterfly and one pass over the 32 warp results. The comparison
// prefers the larger value and, on equal values, the smaller index, so the result does not depend
// on the thread split (the same answer as a left-to-right host scan). NaN compares false and is
// never selected.
//
// top_k: a radix select, then a sort of the k survivors (Alabi et al. 2012, "Fast k-selection
// algorithms for graphics processing units"; the same plan as PyTorch's radixSelect in
// aten/src/ATen/native/cuda/SortingRadixSelect.cuh). One block of 1024 threads per row (rows is
// the batch, a few dozen at most, so the grid is small and each block is latency bound: the row,
// 200 KB, is read from L2 five times, 4 loads in flight per thread).
//  1. Keys. Each float maps to a uint32 whose unsigned order is the float order:
//       key(x) = bits | 0x80000000 for x >= +0, ~bits for x < 0;
//     -0.0 is first made +0.0 (they are equal floats, so they must get one key) and every NaN
//     gets key 0, below key(-inf) = 0x007fffff. The tests are on the bits, so a flush-to-zero
//     build cannot merge denormals with 0. For non-NaN x, y: x > y <=> key(x) > key(y), and
//     x == y <=> key(x) == key(y), so "(key desc, index asc)" is exactly more_likely.
//  2. Threshold. Let K be the k-th largest key counted with multiplicity. Four passes find it
//     8 bits at a time, most significant first: pass p histograms digit p of the keys whose
//     higher digits equal the prefix found so far (256 bins in shared memory; the lanes of a warp
//     with the same digit add once, via __match_any_sync, because the first digit of
//     similar-sized logits is one or two values and 1024 threads would otherwise serialize on
//     one bin). One warp scans the bins from the top and picks the digit d where the count of
//     larger keys, c_gt, satisfies c_gt < need <= c_gt + bin[d]; then need -= c_gt. Invariant:
//     need >= 1 elements are still to take among the keys with the current prefix, and at
//     least need such keys exist. After pass 4, K is the prefix, exactly k - need keys are > K,
//     and at least need keys are == K.
//  3. Gather. Every key > K takes a slot in [0, k - need) (shared atomic counter; the order is
//     fixed by step 4). The keys == K take slots k - need + pos, pos = their rank among the
//     equal keys in index order, while pos < need: the row is walked in chunks of 1024
//     consecutive indices, and a ballot per warp plus the 32 warp counts give each thread its
//     rank (a block-wide ordered scan, one barrier per chunk: the warp counts are double
//     buffered). This takes the equal keys with the smallest indices, as the order requires.
//  4. Sort. The 256 slots, [k, 256) filled with the sentinel (key 0, index INT_MAX) that every
//     real entry precedes, are sorted by (key desc, index asc) with a bitonic network (36
//     compare-exchange stages, one barrier each); slots [0, k) are the answer. values are read
//     back from the row at the chosen indices, so -0.0 stays -0.0.
// Numerics: exact (integer keys and comparisons only). A NaN never displaces a number; it can
// only fill a row with fewer than k non-NaN entries, and such a row is flagged invalid.
// Resources: 3.3 KB static shared memory; no dynamic allocation.
#include "kernels/common.cuh"
#include "kernels/top_k.cuh"

#include <climits>

namespace gpt2::cuda {

namespace {

constexpr int kThreads = 1024;

// ---- argmax ------------------------------------------------------------------------------------

__device__ __forceinline__ void take_better(float& v, int& i, float ov, int oi) {
  if (ov > v || (ov == v && oi < i)) {
    v = ov;
    i = oi;
  }
}

__global__ __launch_bounds__(kThreads) void argmax_kernel(int32_t* out, const float* logits, int cols) {
  __shared__ float best_v[kThreads / 32];
  __shared__ int best_i[kThreads / 32];
  const float* row = logits + static_cast<int64_t>(blockIdx.x) * cols;
  float v = -INFINITY;
  int i = 0x7fffffff;  // "no index yet": loses every tie against a real index
  for (int j = threadIdx.x; j < cols; j += kThreads) take_better(v, i, row[j], j);
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1)
    take_better(v, i, __shfl_xor_sync(0xffffffffu, v, offset), __shfl_xor_sync(0xffffffffu, i, offset));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    best_v[warp] = v;
    best_i[warp] = i;
  }
  __syncthreads();
  if (warp == 0) {
    v = best_v[lane];
    i = best_i[lane];
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1)
      take_better(v, i, __shfl_xor_sync(0xffffffffu, v, offset), __shfl_xor_sync(0xffffffffu, i, offset));
    if (lane == 0) out[blockIdx.x] = i == 0x7fffffff ? 0 : i;
  }
}

// ---- top_k -------------------------------------------------------------------------------------

constexpr int kWarps = kThreads / 32;
constexpr int kUnroll = 4;       // loads in flight per thread
constexpr int kRadixBits = 8;    // 4 passes over the 32-bit key
constexpr int kBins = 1 << kRadixBits;
constexpr int kMaxCols = 1 << 30;  // keeps base + kUnroll * kThreads inside int
static_assert(kTopKMax == 256 && kBins == 256, "one warp scans 8 bins per lane; the sort has 256 slots");

__device__ __forceinline__ bool is_nan_bits(uint32_t bits) { return (bits & 0x7fffffffu) > 0x7f800000u; }

// Order-preserving key (header, step 1): NaN -> 0, -0.0 -> key(+0.0).
__device__ __forceinline__ uint32_t order_key(uint32_t bits) {
  if (is_nan_bits(bits)) return 0u;
  if ((bits << 1) == 0u) bits = 0u;
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

// Loads elements base + u * kThreads + threadIdx.x (u < kUnroll) of the row as bits; `in` says
// which are inside the row.
__device__ __forceinline__ void load_chunk(uint32_t (&bits)[kUnroll], bool (&in)[kUnroll], const uint32_t* row,
                                           int base, int cols) {
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    const int j = base + u * kThreads + static_cast<int>(threadIdx.x);
    in[u] = j < cols;
    bits[u] = in[u] ? row[j] : 0u;
  }
}

__global__ __launch_bounds__(kThreads) void top_k_kernel(int32_t* ids, float* values, int32_t* invalid,
                                                         const float* logits, int cols, int64_t ld, int k) {
  __shared__ uint32_t hist[kBins];              // [256] counts of the current digit
  __shared__ uint32_t cand_key[kTopKMax];       // [256] survivors' keys, then sorted
  __shared__ int32_t cand_idx[kTopKMax];        // [256] survivors' column indices
  __shared__ int warp_count[2][kWarps];         // [2][32] equal-key counts per warp, double buffered
  __shared__ uint32_t s_prefix;                 // threshold digits found so far
  __shared__ int s_need;                        // keys still to take at the current prefix
  __shared__ int s_above;                       // slots taken by keys > threshold

  const uint32_t* row = reinterpret_cast<const uint32_t*>(logits + static_cast<int64_t>(blockIdx.x) * ld);
  const int tid = static_cast<int>(threadIdx.x), lane = tid % 32, warp = tid / 32;
  const unsigned full = 0xffffffffu;

  if (tid < kTopKMax) {  // sentinels; the gather overwrites slots [0, k)
    cand_key[tid] = 0u;
    cand_idx[tid] = INT_MAX;
  }
  if (tid == 0) s_above = 0;

  // Step 2: the threshold key, 8 bits per pass. Every loop below runs the same number of
  // iterations on all threads (base is uniform), so the warp-wide intrinsics see full warps.
  uint32_t prefix = 0u;
  int need = k;
  bool bad = false;  // NaN or +inf seen by this thread
  for (int shift = 32 - kRadixBits; shift >= 0; shift -= kRadixBits) {
    const uint32_t mask = shift == 32 - kRadixBits ? 0u : ~0u << (shift + kRadixBits);  // digits above
    if (tid < kBins) hist[tid] = 0u;
    __syncthreads();
    for (int base = 0; base < cols; base += kUnroll * kThreads) {
      uint32_t bits[kUnroll];
      bool in[kUnroll];
      load_chunk(bits, in, row, base, cols);
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        bad |= in[u] && (is_nan_bits(bits[u]) || bits[u] == 0x7f800000u);
        const uint32_t key = order_key(bits[u]);
        const bool match = in[u] && (key & mask) == prefix;
        if (__any_sync(full, match)) {
          const uint32_t digit = match ? (key >> shift) & (kBins - 1) : static_cast<uint32_t>(kBins);
          const unsigned peers = __match_any_sync(full, digit);
          if (match && lane == __ffs(peers) - 1) atomicAdd(&hist[digit], static_cast<uint32_t>(__popc(peers)));
        }
      }
    }
    __syncthreads();
    if (warp == 0) {
      // Lane l holds bins 255 - 8 l - i, i < 8 (descending digits); an inclusive scan over lanes
      // gives each lane the count of keys at or above its lowest bin.
      uint32_t c[8], sum = 0u;
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        c[i] = hist[kBins - 1 - 8 * lane - i];
        sum += c[i];
      }
      uint32_t incl = sum;
#pragma unroll
      for (int offset = 1; offset < 32; offset <<= 1) {
        const uint32_t o = __shfl_up_sync(full, incl, offset);
        if (lane >= offset) incl += o;
      }
      uint32_t above = incl - sum;
      const uint32_t want = static_cast<uint32_t>(need);
      if (above < want && want <= incl) {  // exactly one lane: the counts are nondecreasing
        for (int i = 0; i < 8; ++i) {
          if (above + c[i] >= want) {
            s_prefix = prefix | (static_cast<uint32_t>(kBins - 1 - 8 * lane - i) << shift);
            s_need = need - static_cast<int>(above);
            break;
          }
          above += c[i];
        }
      }
    }
    __syncthreads();
    prefix = s_prefix;
    need = s_need;
  }
  const bool row_bad = __syncthreads_or(bad) != 0;

  // Step 3: gather the k survivors. `taken` (equal keys placed so far) is the same on every
  // thread, so the branch around the barrier is uniform.
  const int n_above = k - need;
  int taken = 0, parity = 0;
  for (int base = 0; base < cols; base += kUnroll * kThreads) {
    uint32_t bits[kUnroll];
    bool in[kUnroll];
    load_chunk(bits, in, row, base, cols);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int j = base + u * kThreads + tid;
      const uint32_t key = order_key(bits[u]);
      if (in[u] && key > prefix) {
        const int slot = atomicAdd(&s_above, 1);  // < n_above by step 2
        cand_key[slot] = key;
        cand_idx[slot] = j;
      }
      if (taken < need) {
        const bool eq = in[u] && key == prefix;
        const unsigned ballot = __ballot_sync(full, eq);
        if (lane == 0) warp_count[parity][warp] = __popc(ballot);
        __syncthreads();
        int before = 0, total = 0;
#pragma unroll 8
        for (int w = 0; w < kWarps; ++w) {
          const int c = warp_count[parity][w];
          before += w < warp ? c : 0;
          total += c;
        }
        const int pos = taken + before + __popc(ballot & ((1u << lane) - 1u));
        if (eq && pos < need) {
          cand_key[n_above + pos] = key;
          cand_idx[n_above + pos] = j;
        }
        taken += total;
        parity ^= 1;
      }
    }
  }
  __syncthreads();

  // Step 4: bitonic sort of the 256 slots, best first. In a block of size `size`, the pairs of
  // the first half of each 2 size run best first, of the second half best last.
  for (int size = 2; size <= kTopKMax; size <<= 1) {
    for (int stride = size / 2; stride > 0; stride >>= 1) {
      const int partner = tid ^ stride;
      if (tid < kTopKMax && partner > tid) {
        const uint32_t ka = cand_key[tid], kb = cand_key[partner];
        const int32_t ia = cand_idx[tid], ib = cand_idx[partner];
        const bool b_first = kb > ka || (kb == ka && ib < ia);
        if (b_first == ((tid & size) == 0)) {
          cand_key[tid] = kb;
          cand_key[partner] = ka;
          cand_idx[tid] = ib;
          cand_idx[partner] = ia;
        }
      }
      __syncthreads();
    }
  }

  const int64_t out = static_cast<int64_t>(blockIdx.x) * k;
  if (tid < k) {
    const int32_t idx = cand_idx[tid];
    ids[out + tid] = idx;
    values[out + tid] = __uint_as_float(row[idx]);
  }
  if (tid == 0) invalid[blockIdx.x] = row_bad ? 1 : 0;
}

}  // namespace

void argmax(int32_t* out, const float* logits, int64_t rows, int64_t cols, cudaStream_t stream) {
  if (rows <= 0) return;
  if (cols <= 0 || cols > kMaxCols) throw Error("argmax: bad row length " + std::to_string(cols));
  argmax_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(out, logits, static_cast<int>(cols));
  check_launch("argmax");
}

void top_k(int32_t* ids, float* values, int32_t* invalid, const float* logits, int64_t rows, int64_t cols,
           int64_t ld, int k, cudaStream_t stream) {
  if (rows <= 0) return;
  if (cols <= 0 || cols > kMaxCols) throw Error("top_k: bad row length " + std::to_string(cols));
  if (ld < cols) throw Error("top_k: row stride " + std::to_string(ld) + " < row length " + std::to_string(cols));
  if (k < 1 || k > kTopKMax || k > cols)
    throw Error("top_k: k = " + std::to_string(k) + " outside [1, min(" + std::to_string(kTopKMax) + ", " +
                std::to_string(cols) + ")]");
  if (rows > 0x7fffffff) throw Error("top_k: too many rows " + std::to_string(rows));
  top_k_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(ids, values, invalid, logits,
                                                                     static_cast<int>(cols), ld, k);
  check_launch("top_k");
}

}  // namespace gpt2::cuda
