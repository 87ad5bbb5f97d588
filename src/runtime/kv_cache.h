// KvCache: the keys and values of every layer for a fixed number of slots, and the small owner
// that hands slots out. A slot holds one sequence: up to n_ctx positions of every layer.
//
// Layout (one layer): k, v [n_slots, n_head, n_ctx, head_dim] each, in the backend's cache
// dtype (CPU: fp32; CUDA: the weight dtype), head-major so that the keys one head attends over
// are one contiguous stream. Memory comes from Backend::alloc_kv; the cache owns it (`storage`,
// the backend's RAII buffer, freed with the last copy of the cache; the backend must outlive it).
//
// Why fixed slots rather than paged blocks (vLLM's PagedAttention): GPT-2's context is 1024
// positions, so a whole slot of gpt2 (124M) is 72 MiB in fp32 (36 MiB in bf16) and 16 slots fit
// in 1.2 GiB; a contiguous slot keeps the attention inner loop a straight stream with no block
// table, and the measurement in README "Design notes" shows what paging would cost and save.
//
// length(slot) is how many positions of the slot hold keys and values: Gpt2::forward sets it
// to the end of each sequence's new tokens, and refuses a step that would leave a gap (a
// sequence may rewind to rewrite its tail, never skip ahead). Not thread-safe: one scheduler
// thread owns the cache.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "runtime/tensor.h"

namespace gpt2 {

struct KvLayer {
  Tensor k, v;  // [n_slots * n_head * n_ctx, head_dim] each (rows = n_slots * n_head * n_ctx)
  int n_slots = 0, n_head = 0, n_ctx = 0, head_dim = 0;
};

// The layers of one allocation at `base` holding, layer by layer, k then v, each
// [n_slots, n_head, n_ctx, head_dim] in `dtype` and starting `tensor_bytes` after the previous
// one (at least the tensor's size; more to keep an alignment). A backend's alloc_kv lays its
// memory out with this.
inline std::vector<KvLayer> kv_layer_views(void* base, size_t tensor_bytes, DType dtype, int n_layer, int n_slots,
                                           int n_ctx, int n_head, int head_dim) {
  std::vector<KvLayer> layers(static_cast<size_t>(n_layer));
  char* at = static_cast<char*>(base);
  for (KvLayer& layer : layers) {
    for (Tensor* t : {&layer.k, &layer.v}) {
      t->data = at;
      t->dtype = dtype;
      t->rows = static_cast<int64_t>(n_slots) * n_head * n_ctx;
      t->cols = head_dim;
      at += tensor_bytes;
    }
    layer.n_slots = n_slots;
    layer.n_head = n_head;
    layer.n_ctx = n_ctx;
    layer.head_dim = head_dim;
  }
  return layers;
}

class KvCache {
 public:
  KvCache() = default;
  KvCache(std::vector<KvLayer> layers, int n_slots, int n_ctx, std::shared_ptr<void> storage = nullptr)
      : layers_(std::move(layers)), n_slots_(n_slots), n_ctx_(n_ctx), length_(static_cast<size_t>(n_slots), 0),
        used_(static_cast<size_t>(n_slots), 0), storage_(std::move(storage)) {}

  int n_layer() const { return static_cast<int>(layers_.size()); }
  int n_slots() const { return n_slots_; }
  int n_ctx() const { return n_ctx_; }
  const KvLayer& layer(int l) const { return layers_.at(static_cast<size_t>(l)); }

  // A free slot, empty (length 0), or -1 when every slot is taken. The lowest free one, so a
  // run with the same arrivals uses the same slots.
  int acquire() {
    for (int s = 0; s < n_slots_; ++s) {
      if (!used_[static_cast<size_t>(s)]) {
        used_[static_cast<size_t>(s)] = 1;
        length_[static_cast<size_t>(s)] = 0;
        return s;
      }
    }
    return -1;
  }
  // Frees a slot for the next sequence (its contents are forgotten). Releasing a free or unknown
  // slot is a bug of the caller: gpt2::Error.
  void release(int slot) {
    if (!in_use(slot)) throw Error("internal: KV slot " + std::to_string(slot) + " released but not in use");
    used_[static_cast<size_t>(slot)] = 0;
    length_[static_cast<size_t>(slot)] = 0;
  }
  int free_slots() const {
    int n = 0;
    for (char u : used_) n += u ? 0 : 1;
    return n;
  }
  bool in_use(int slot) const { return slot >= 0 && slot < n_slots_ && used_[static_cast<size_t>(slot)]; }

  int length(int slot) const { return length_.at(static_cast<size_t>(slot)); }
  void set_length(int slot, int n) { length_.at(static_cast<size_t>(slot)) = n; }
  // Forgets a slot's contents but keeps it allocated (the next step starts at position 0).
  void clear(int slot) { set_length(slot, 0); }

 private:
  std::vector<KvLayer> layers_;
  int n_slots_ = 0;
  int n_ctx_ = 0;
  std::vector<int> length_;
  std::vector<char> used_;
  std::shared_ptr<void> storage_;  // the memory of every layer's k and v
};

}  // namespace gpt2
