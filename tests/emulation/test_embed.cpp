// kernels/embed.cu and kernels/gather_rows.cu emulated on a mixed batch: each row's token and
// position come from the device batch (bit-exact: one fp32 add of two table values), and the
// logit rows are gathered (bit-exact, both the float4 and the scalar path).
#include <catch2/catch.hpp>

#include <vector>

#include "emu_test_util.h"
#include "kernels/embed.cuh"
#include "kernels/gather_rows.cuh"

using namespace gpt2;
using namespace gpt2::emu_test;

TEST_CASE("emulated embed adds each row's token and position embeddings", "[emulation][embed]") {
  const int n_vocab = 61, n_ctx = 90;
  const std::vector<SeqSpec> seqs = {{2, 1, 70}, {0, 40, 1}, {1, 0, 7}, {3, 89, 1}};
  const Batch batch = make_batch(seqs, n_vocab, 21);
  const UploadedBatch ub(batch);
  for (int n_embd : {3, 256, 300})
    for (DType dtype : {DType::f32, DType::f16, DType::bf16}) {
      std::vector<float> wte = random_floats(static_cast<size_t>(n_vocab) * n_embd, 22 + n_embd);
      std::vector<float> wpe = random_floats(static_cast<size_t>(n_ctx) * n_embd, 23 + n_embd, 0.1f);
      for (float& v : wte) v = round_to(v, dtype);
      for (float& v : wpe) v = round_to(v, dtype);
      const DeviceArray<uint8_t> d_wte = encode(wte, dtype), d_wpe = encode(wpe, dtype);
      DeviceArray<float> x(static_cast<size_t>(batch.rows()) * n_embd);
      cuda::embed(x.data(), d_wte.data(), d_wpe.data(), dtype, ub.view, batch.rows(), n_embd, /*pdl=*/n_embd == 300,
                  nullptr);
      std::vector<float> want(x.size());
      for (int r = 0; r < batch.rows(); ++r)
        for (int c = 0; c < n_embd; ++c)
          want[static_cast<size_t>(r) * n_embd + c] =
              wte[static_cast<size_t>(batch.tokens[static_cast<size_t>(r)]) * n_embd + c] +
              wpe[static_cast<size_t>(batch.positions[static_cast<size_t>(r)]) * n_embd + c];
      INFO("n_embd " << n_embd << " " << dtype_name(dtype));
      CHECK(compare_bits(x.data(), want.data(), want.size()) == "");
    }
}

TEST_CASE("emulated gather_rows copies the logit rows in order", "[emulation][embed]") {
  Batch batch = make_batch({{2, 1, 70}, {0, 40, 1}, {1, 0, 7}}, 100, 3);
  batch.logit_rows = {76, 0, 69, 70, 3};  // any order, as scoring asks
  const UploadedBatch ub(batch);
  for (int cols : {768, 7}) {
    for (int offset : {0, 1}) {  // offset 1: unaligned pointers take the scalar path
      const std::vector<float> in0 = random_floats(static_cast<size_t>(batch.rows()) * cols + 1, 31);
      DeviceArray<float> in(in0), out(batch.logit_rows.size() * static_cast<size_t>(cols) + 1);
      cuda::gather_rows(out.data() + offset, in.data() + offset, ub.view, batch.n_logit_rows(), cols, false, nullptr);
      std::vector<float> want;
      for (int32_t r : batch.logit_rows)
        want.insert(want.end(), in0.begin() + offset + static_cast<ptrdiff_t>(r) * cols,
                    in0.begin() + offset + static_cast<ptrdiff_t>(r + 1) * cols);
      INFO("cols " << cols << " offset " << offset);
      CHECK(compare_bits(out.data() + offset, want.data(), want.size()) == "");
    }
  }
}
