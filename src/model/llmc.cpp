// llm.c checkpoints (Karpathy's llm.c, train_gpt2.py write_model / train_gpt2.c
// gpt2_build_from_checkpoint): gpt2_124M.bin (fp32) and gpt2_124M_bf16.bin.
//
// Layout: a header of 256 little-endian int32: [0] magic 20240326, [1] version (3: fp32, 5:
// bf16), [2] maxT (n_ctx), [3] V (n_vocab), [4] L (n_layer), [5] NH (n_head), [6] C (n_embd),
// [7] Vp (the vocabulary padded to a multiple of 128: 50304 for GPT-2; rows V..Vp-1 of wte are
// padding, never read). Then the 16 parameter tensors, each layer-major, in this order:
//   wte [Vp, C], wpe [maxT, C], ln1w [L, C], ln1b [L, C], qkvw [L, 3C, C], qkvb [L, 3C],
//   attprojw [L, C, C], attprojb [L, C], ln2w [L, C], ln2b [L, C], fcw [L, 4C, C], fcb [L, 4C],
//   fcprojw [L, C, 4C], fcprojb [L, C], lnfw [C], lnfb [C]
// Matrices are [out, in] (nn.Linear), as HostModel stores them; the head is tied to wte. The
// file must be exactly header + parameters long: a truncated download is named as such.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "common/error.h"
#include "common/thread_pool.h"
#include "model/formats.h"
#include "model/host_model.h"
#include "model/safetensors.h"  // MappedFile

namespace gpt2 {

namespace {

constexpr size_t kHeaderBytes = 256 * 4;

struct LlmcHeader {
  int32_t version, max_t, vocab, n_layer, n_head, n_embd, padded_vocab;
  size_t elem;  // bytes per parameter
};

LlmcHeader read_header(const std::string& path, const MappedFile& file) {
  if (file.size() < kHeaderBytes)
    throw Error(path + ": file is " + std::to_string(file.size()) +
                " bytes, too short for an llm.c header of 1024 (truncated download?)");
  int32_t h[8];
  std::memcpy(h, file.data(), sizeof h);
  if (h[0] != kLlmcMagic) throw Error(path + ": not an llm.c checkpoint (magic " + std::to_string(h[0]) + ", not 20240326)");
  LlmcHeader r{h[1], h[2], h[3], h[4], h[5], h[6], h[7], 0};
  if (r.version == 3) r.elem = 4;
  else if (r.version == 5) r.elem = 2;
  else
    throw Error(path + ": llm.c checkpoint version " + std::to_string(r.version) +
                " is not supported (3: fp32, 5: bf16; re-export it with a current llm.c)");
  auto check = [&](int32_t v, const char* what) {
    if (v < 1 || v > (1 << 24))
      throw Error(path + ": llm.c header " + what + " is " + std::to_string(v) + ", not a size this engine can run");
  };
  check(r.max_t, "maxT");
  check(r.vocab, "vocab_size");
  check(r.n_layer, "num_layers");
  check(r.n_head, "num_heads");
  check(r.n_embd, "channels");
  check(r.padded_vocab, "padded_vocab_size");
  if (r.padded_vocab < r.vocab)
    throw Error(path + ": llm.c header padded_vocab_size " + std::to_string(r.padded_vocab) + " is below vocab_size " +
                std::to_string(r.vocab));
  if (r.n_embd % r.n_head != 0)
    throw Error(path + ": llm.c header channels " + std::to_string(r.n_embd) + " is not divisible by num_heads " +
                std::to_string(r.n_head));
  return r;
}

Config config_of(const LlmcHeader& h) {
  Config c;
  c.n_vocab = h.vocab;
  c.n_ctx = h.max_t;
  c.n_embd = h.n_embd;
  c.n_head = h.n_head;
  c.n_layer = h.n_layer;
  return c;
}

// Element counts of the 16 tensors, in file order (llm.c fill_in_parameter_sizes). Sizes are at
// most 2^24 each, so every product fits comfortably in 64 bits (L * 4C * C < 2^74 would not:
// the checked multiply refuses those).
bool mul(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_mul_overflow(a, b, out); }

std::vector<uint64_t> tensor_sizes(const std::string& path, const LlmcHeader& h) {
  const uint64_t Vp = static_cast<uint64_t>(h.padded_vocab), T = static_cast<uint64_t>(h.max_t),
                 L = static_cast<uint64_t>(h.n_layer), C = static_cast<uint64_t>(h.n_embd);
  uint64_t CC = 0, LC = 0, LCC = 0, VpC = 0, TC = 0;
  if (!mul(C, C, &CC) || !mul(L, C, &LC) || !mul(L, CC, &LCC) || !mul(Vp, C, &VpC) || !mul(T, C, &TC) ||
      LCC > (UINT64_MAX >> 4))
    throw Error(path + ": llm.c header sizes overflow (corrupt file)");
  return {VpC, TC, LC, LC, 3 * LCC, 3 * LC, LCC, LC, LC, LC, 4 * LCC, 4 * LC, 4 * LCC, LC, C, C};
}

}  // namespace

Config llmc_config(const std::string& path) { return llmc_config(path, MappedFile(path)); }
Config llmc_config(const std::string& path, const MappedFile& file) { return config_of(read_header(path, file)); }

HostModel load_llmc(const std::string& path, ThreadPool& pool) { return load_llmc(path, MappedFile(path), pool); }

HostModel load_llmc(const std::string& path, const MappedFile& file, ThreadPool& pool) {
  const LlmcHeader h = read_header(path, file);
  const Config config = config_of(h);
  const std::vector<uint64_t> sizes = tensor_sizes(path, h);
  uint64_t total = 0;
  for (uint64_t n : sizes) {
    if (n > UINT64_MAX / 8 - total) throw Error(path + ": llm.c header sizes overflow (corrupt file)");
    total += n;
  }
  const uint64_t want = kHeaderBytes + total * h.elem;
  if (file.size() != want)
    throw Error(path + ": llm.c checkpoint of " + std::to_string(h.n_layer) + " layers, channels " +
                std::to_string(h.n_embd) + ", padded vocabulary " + std::to_string(h.padded_vocab) + " (" +
                (h.elem == 4 ? "fp32" : "bf16") + ") is " + std::to_string(want) + " bytes, but the file has " +
                std::to_string(file.size()) + (file.size() < want ? " (truncated download?)" : " (trailing bytes: corrupt file)"));

  // Start of each of the 16 tensors, in elements from the first parameter.
  std::vector<uint64_t> start(sizes.size() + 1, 0);
  for (size_t i = 0; i < sizes.size(); ++i) start[i + 1] = start[i] + sizes[i];
  const uint8_t* base = file.data() + kHeaderBytes;

  HostModel model = allocate_host_model(config, /*tied_head=*/true);
  // (destination, element offset in the file, element count): the weight table's order is not
  // llm.c's, so each destination is mapped explicitly; per-layer tensors at layer * size / L.
  struct Piece {
    Tensor* dst;
    uint64_t at;
  };
  std::vector<Piece> pieces;
  pieces.push_back({&model.weights.wte, start[0]});  // the first V of Vp rows
  pieces.push_back({&model.weights.wpe, start[1]});
  for (int64_t l = 0; l < config.n_layer; ++l) {
    LayerWeights& b = model.weights.h[static_cast<size_t>(l)];
    const uint64_t L = static_cast<uint64_t>(config.n_layer), u = static_cast<uint64_t>(l);
    Tensor* dsts[12] = {&b.ln_1_g, &b.ln_1_b, &b.attn_qkv_w, &b.attn_qkv_b, &b.attn_proj_w, &b.attn_proj_b,
                        &b.ln_2_g, &b.ln_2_b, &b.mlp_fc_w,   &b.mlp_fc_b,   &b.mlp_proj_w, &b.mlp_proj_b};
    for (size_t k = 0; k < 12; ++k) pieces.push_back({dsts[k], start[2 + k] + u * (sizes[2 + k] / L)});
  }
  pieces.push_back({&model.weights.ln_f_g, start[14]});
  pieces.push_back({&model.weights.ln_f_b, start[15]});

  pool.parallel_for(static_cast<int64_t>(pieces.size()), 1, [&](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end; ++i) {
      const Piece& p = pieces[static_cast<size_t>(i)];
      const uint8_t* src = base + p.at * h.elem;
      const int64_t n = p.dst->numel();
      float* d = p.dst->f32();
      if (h.elem == 4) {
        std::memcpy(d, src, static_cast<size_t>(n) * 4);
      } else {
        for (int64_t k = 0; k < n; ++k) {
          uint16_t v;
          std::memcpy(&v, src + 2 * k, 2);
          d[k] = bf16_to_f32(v);
        }
      }
    }
  });
  model.source_dtype = h.elem == 4 ? "fp32" : "bf16";
  model.notes.push_back(path + ": llm.c checkpoint version " + std::to_string(h.version) + " (" + model.source_dtype +
                        "), " + std::to_string(config.n_layer) + " layers, n_embd " + std::to_string(config.n_embd) +
                        ", vocabulary " + std::to_string(h.vocab) + " of " + std::to_string(h.padded_vocab) +
                        " padded rows" + (h.elem == 2 ? "; bf16 converted to fp32 (exact)" : ""));
  return model;
}

}  // namespace gpt2
