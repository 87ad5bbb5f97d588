// Error paths and options of the CUDA backend: clear gpt2::Error messages, never a crash.
#include <catch2/catch.hpp>

#include <string>

#include "common/error.h"
#include "cuda_test_util.h"
#include "runtime/cuda/cuda_backend.h"
#include "runtime/device.h"

using namespace gpt2;
using Catch::Matchers::Contains;

TEST_CASE("int8 weights are refused on CUDA with a usage error", "[cuda][errors]") {
  CHECK_THROWS_AS(test::cuda_backend(DType::i8), UsageError);
  CHECK_THROWS_WITH(test::cuda_backend(DType::i8), Contains("int8") && Contains("--device cpu"));
}

TEST_CASE("running out of device memory names the amount asked and free", "[cuda][errors]") {
  auto be = test::cuda_backend(DType::bf16);
  // 200,000 sequences of 1024 positions, 1 layer of 12 heads of 64, K and V in bf16:
  // 2 * 200000 * 1024 * 12 * 64 * 2 bytes = 585.9 GiB, more than any GPU has; refused before cudaMalloc.
  CHECK_THROWS_WITH(be->alloc_kv(1, 200000, 1024, 12, 64),
                    Contains("out of device memory") && Contains("needs 585.9 GiB") && Contains("GiB free of"));
}

TEST_CASE("the CUDA backend refuses a KV cache its attention kernels cannot serve", "[cuda][errors]") {
  auto be = test::cuda_backend(DType::bf16);
  CHECK_THROWS_WITH(be->alloc_kv(1, 1, 64, 16, 48), Contains("head_dim 64") && Contains("--device cpu"));
}

TEST_CASE("the CUDA backend describes itself and reports device memory", "[cuda][errors]") {
  Config config = Config::preset("gpt2");
  config.n_layer = 1;
  const HostModel host = test::random_host(config, 4);
  auto be = test::cuda_backend(DType::bf16);
  test::upload_weights(*be, host);
  CHECK(be->name() == "cuda");
  CHECK(be->weight_dtype() == DType::bf16);
  CHECK_THAT(be->describe(), Contains("bf16"));
  // At least the bf16 weights: wte + wpe + one layer, 2 bytes each.
  CHECK(be->peak_device_bytes() >= static_cast<int64_t>(2 * (50257 + 1024 + 12 * 768) * 768));
}

TEST_CASE("BackendOptions turn CUDA graphs and PDL off, and force the SIMT attention", "[cuda][errors]") {
  BackendOptions o = test::cuda_options(DType::bf16);
  o.cuda_graphs = false;
  o.cuda_pdl = false;
  o.cuda_attention = CudaAttention::simt;
  const std::string d = make_backend(o)->describe();
  CHECK_THAT(d, Contains("no graphs") && Contains("no PDL") && Contains("SIMT attention"));
  o.cuda_graphs = true;
  o.cuda_pdl = true;
  o.cuda_attention = CudaAttention::auto_select;
  const std::string on = make_backend(o)->describe();
  CHECK(on.find("no graphs") == std::string::npos);
  CHECK(on.find("no PDL") == std::string::npos);
}

TEST_CASE("--device auto picks CUDA when it can run the request, else the CPU", "[cuda][errors]") {
  BackendOptions options;  // device auto, dtype auto (bf16 on CUDA)
  const Workload gpt2{64, 768};
  CHECK(make_backend(options, gpt2)->name() == "cuda");
  CHECK(make_backend(options)->name() == "cuda");
  const Workload odd_heads{48, 768};  // 16 heads of 48: the CUDA attention kernels need 64
  REQUIRE(!cuda_unsupported_shape(odd_heads).empty());
  CHECK(make_backend(options, odd_heads)->name() == "cpu");
  const Workload wide{64, 4096};  // LayerNorm rows past the kernel's 2048 columns
  REQUIRE(!cuda_unsupported_shape(wide).empty());
  CHECK(make_backend(options, wide)->name() == "cpu");
  options.auto_dtype = false;
  options.weight_dtype = DType::i8;  // CPU only
  CHECK(make_backend(options, gpt2)->name() == "cpu");
  options.weight_dtype = DType::f16;
  CHECK(make_backend(options, gpt2)->name() == "cuda");
}
