// Emulation shim for <mma.h>: nvcuda::wmma with a fixed emulated fragment layout.
//
// The CUDA documentation leaves the mapping of fragment elements to lanes unspecified, so a
// kernel may only use load_matrix_sync / store_matrix_sync / mma_sync / fill_fragment (and
// element-wise operations that treat every element alike). The emulation therefore gives
// lane l the elements e * 32 + l (e < num_elements) of the logical matrix in row-major order:
// a kernel that assumed the hardware's layout gets wrong answers here, as it would on a
// different GPU generation.
// Each *_sync call is a warp collective over all 32 lanes: the last lane to arrive loads,
// stores or multiplies for the whole warp. The documented preconditions are checked: the
// pointer 256-bit aligned, ldm a multiple of 16 bytes, pointer, ldm and layout the same on
// every lane. mma_sync multiplies the 16-bit inputs exactly (as fp32 products of the values)
// and accumulates in fp32 in k order (the hardware's internal accumulation order and rounding
// are not modelled).
#pragma once

#include <cstdint>
#include <cstdio>

#include "gpt2emu.h"

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K>
struct fragment_shape;
template <int M, int N, int K>
struct fragment_shape<matrix_a, M, N, K> {
  static constexpr int rows = M, cols = K;
};
template <int M, int N, int K>
struct fragment_shape<matrix_b, M, N, K> {
  static constexpr int rows = K, cols = N;
};
template <int M, int N, int K>
struct fragment_shape<accumulator, M, N, K> {
  static constexpr int rows = M, cols = N;
};

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
  static constexpr int rows = fragment_shape<Use, M, N, K>::rows;
  static constexpr int cols = fragment_shape<Use, M, N, K>::cols;
  static_assert(rows * cols % 32 == 0, "fragment size must be a multiple of the warp size");
  static constexpr int num_elements = rows * cols / 32;
  using element_type = T;
  T x[num_elements];
};

template <typename Use, int M, int N, int K, typename T, typename Layout>
inline void fill_fragment(fragment<Use, M, N, K, T, Layout>& f, const T& value) {
  for (int e = 0; e < f.num_elements; ++e) f.x[e] = value;
}
template <typename Use, int M, int N, int K, typename T, typename Layout, typename V>
inline void fill_fragment(fragment<Use, M, N, K, T, Layout>& f, const V& value) {
  fill_fragment(f, static_cast<T>(value));
}

namespace detail {

// Element (row, col) of the logical matrix that lane `lane`'s element `e` holds.
template <typename Frag>
inline void element_position(int lane, int e, int& row, int& col) {
  const int flat = e * 32 + lane;
  row = flat / Frag::cols;
  col = flat % Frag::cols;
}

template <typename Frag, typename P>
struct MemLane {
  Frag* frag;
  P* ptr;
  unsigned ldm;
  bool row_major;
};

template <typename Frag, typename P>
inline void check_uniform(void* const* lanes, const char* op) {
  const auto* first = static_cast<const MemLane<Frag, P>*>(lanes[0]);
  if (reinterpret_cast<uintptr_t>(first->ptr) % 32 != 0) {
    char msg[160];
    std::snprintf(msg, sizeof msg, "%s: pointer %p is not 256-bit aligned", op, static_cast<const void*>(first->ptr));
    gpt2emu::device_fault(msg);
  }
  if (first->ldm * sizeof(P) % 16 != 0) {
    char msg[160];
    std::snprintf(msg, sizeof msg, "%s: ldm %u is not a multiple of 16 bytes", op, first->ldm);
    gpt2emu::device_fault(msg);
  }
  for (int l = 1; l < 32; ++l) {
    const auto* d = static_cast<const MemLane<Frag, P>*>(lanes[l]);
    if (d->ptr != first->ptr || d->ldm != first->ldm || d->row_major != first->row_major) {
      char msg[200];
      std::snprintf(msg, sizeof msg, "%s: lane %d passes pointer %p ldm %u, lane 0 pointer %p ldm %u (must be uniform)",
                    op, l, static_cast<const void*>(d->ptr), d->ldm, static_cast<const void*>(first->ptr), first->ldm);
      gpt2emu::device_fault(msg);
    }
  }
}

template <typename Frag, typename P>
void load_complete(void* const* lanes, unsigned, const void*) {
  check_uniform<Frag, P>(lanes, "wmma::load_matrix_sync");
  for (int l = 0; l < 32; ++l) {
    auto* d = static_cast<MemLane<Frag, P>*>(lanes[l]);
    for (int e = 0; e < Frag::num_elements; ++e) {
      int r, c;
      element_position<Frag>(l, e, r, c);
      d->frag->x[e] = d->row_major ? d->ptr[static_cast<size_t>(r) * d->ldm + c]
                                   : d->ptr[static_cast<size_t>(c) * d->ldm + r];
    }
  }
}

template <typename Frag, typename P>
void store_complete(void* const* lanes, unsigned, const void*) {
  check_uniform<Frag, P>(lanes, "wmma::store_matrix_sync");
  for (int l = 0; l < 32; ++l) {
    auto* d = static_cast<MemLane<Frag, P>*>(lanes[l]);
    for (int e = 0; e < Frag::num_elements; ++e) {
      int r, c;
      element_position<Frag>(l, e, r, c);
      (d->row_major ? d->ptr[static_cast<size_t>(r) * d->ldm + c] : d->ptr[static_cast<size_t>(c) * d->ldm + r]) =
          d->frag->x[e];
    }
  }
}

template <typename FD, typename FA, typename FB, typename FC>
struct MmaLane {
  FD* d;
  const FA* a;
  const FB* b;
  const FC* c;
};

template <typename FD, typename FA, typename FB, typename FC>
void mma_complete(void* const* lanes, unsigned, const void*) {
  constexpr int M = FA::rows, K = FA::cols, N = FB::cols;
  static_assert(FB::rows == K && FC::rows == M && FC::cols == N && FD::rows == M && FD::cols == N,
                "mma_sync fragment shapes disagree");
  float a[M][K], b[K][N], c[M][N];
  for (int l = 0; l < 32; ++l) {
    const auto* d = static_cast<const MmaLane<FD, FA, FB, FC>*>(lanes[l]);
    int r, col;
    for (int e = 0; e < FA::num_elements; ++e) {
      element_position<FA>(l, e, r, col);
      a[r][col] = static_cast<float>(d->a->x[e]);
    }
    for (int e = 0; e < FB::num_elements; ++e) {
      element_position<FB>(l, e, r, col);
      b[r][col] = static_cast<float>(d->b->x[e]);
    }
    for (int e = 0; e < FC::num_elements; ++e) {
      element_position<FC>(l, e, r, col);
      c[r][col] = static_cast<float>(d->c->x[e]);
    }
  }
  for (int l = 0; l < 32; ++l) {  // c is fully read above, so d may alias c
    auto* d = static_cast<MmaLane<FD, FA, FB, FC>*>(lanes[l]);
    for (int e = 0; e < FD::num_elements; ++e) {
      int r, col;
      element_position<FD>(l, e, r, col);
      float acc = c[r][col];
      for (int k = 0; k < K; ++k) acc = fmaf(a[r][k], b[k][col], acc);
      d->d->x[e] = static_cast<typename FD::element_type>(acc);
    }
  }
}

}  // namespace detail

template <typename Use, int M, int N, int K, typename T, typename Layout, typename P>
inline void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f, const P* ptr, unsigned ldm,
                             int line = __builtin_LINE()) {
  static_assert(std::is_same<Layout, row_major>::value || std::is_same<Layout, col_major>::value,
                "a matrix_a/matrix_b fragment needs a layout (an accumulator needs a layout_t argument)");
  using Frag = fragment<Use, M, N, K, T, Layout>;
  detail::MemLane<Frag, const P> lane{&f, ptr, ldm, std::is_same<Layout, row_major>::value};
  gpt2emu::warp_collective("wmma::load_matrix_sync", 0xffffffffu, line, &lane, detail::load_complete<Frag, const P>);
}

template <int M, int N, int K, typename T, typename P>
inline void load_matrix_sync(fragment<accumulator, M, N, K, T, void>& f, const P* ptr, unsigned ldm, layout_t layout,
                             int line = __builtin_LINE()) {
  using Frag = fragment<accumulator, M, N, K, T, void>;
  detail::MemLane<Frag, const P> lane{&f, ptr, ldm, layout == mem_row_major};
  gpt2emu::warp_collective("wmma::load_matrix_sync", 0xffffffffu, line, &lane, detail::load_complete<Frag, const P>);
}

template <int M, int N, int K, typename T, typename P>
inline void store_matrix_sync(P* ptr, const fragment<accumulator, M, N, K, T, void>& f, unsigned ldm, layout_t layout,
                              int line = __builtin_LINE()) {
  using Frag = const fragment<accumulator, M, N, K, T, void>;
  detail::MemLane<Frag, P> lane{&f, ptr, ldm, layout == mem_row_major};
  gpt2emu::warp_collective("wmma::store_matrix_sync", 0xffffffffu, line, &lane, detail::store_complete<Frag, P>);
}

template <int M, int N, int K, typename TD, typename TA, typename LA, typename TB, typename LB, typename TC>
inline void mma_sync(fragment<accumulator, M, N, K, TD, void>& d, const fragment<matrix_a, M, N, K, TA, LA>& a,
                     const fragment<matrix_b, M, N, K, TB, LB>& b, const fragment<accumulator, M, N, K, TC, void>& c,
                     int line = __builtin_LINE()) {
  using FD = fragment<accumulator, M, N, K, TD, void>;
  using FA = fragment<matrix_a, M, N, K, TA, LA>;
  using FB = fragment<matrix_b, M, N, K, TB, LB>;
  using FC = fragment<accumulator, M, N, K, TC, void>;
  detail::MmaLane<FD, FA, FB, FC> lane{&d, &a, &b, &c};
  gpt2emu::warp_collective("wmma::mma_sync", 0xffffffffu, line, &lane, detail::mma_complete<FD, FA, FB, FC>);
}

}  // namespace wmma
}  // namespace nvcuda
