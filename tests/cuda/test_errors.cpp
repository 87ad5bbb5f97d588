// Error paths of the CUDA backend: clear gpt2::Error messages, never a crash.
#include <catch2/catch.hpp>

#include <string>

#include "common/error.h"
#include "cuda_test_util.h"

using namespace gpt2;
using Catch::Matchers::Contains;

TEST_CASE("int8 weights are refused on CUDA with a usage error", "[cuda][errors]") {
  CHECK_THROWS_AS(test::cuda_backend(DType::i8), UsageError);
  CHECK_THROWS_WITH(test::cuda_backend(DType::i8), Contains("int8") && Contains("--device cpu"));
}

TEST_CASE("running out of device memory names the amount asked and free", "[cuda][errors]") {
  Config config = Config::preset("gpt2");
  config.n_layer = 1;
  const HostModel host = random_model(config, 3);
  auto be = test::cuda_backend(DType::bf16);
  // 200,000 sequences of 1024 positions: a KV cache of ~630 GB, more than any GPU has.
  CHECK_THROWS_WITH(be->load(config, host.weights, 200000),
                    Contains("out of memory") && Contains("asked for") && Contains("free of"));
}

TEST_CASE("the CUDA backend describes itself and reports device memory", "[cuda][errors]") {
  Config config = Config::preset("gpt2");
  config.n_layer = 1;
  const HostModel host = random_model(config, 4);
  auto be = test::cuda_backend(DType::bf16);
  be->load(config, host.weights, 1);
  CHECK(be->name() == "cuda");
  CHECK(be->weight_dtype() == DType::bf16);
  CHECK_THAT(be->describe(), Contains("bf16"));
  // At least the bf16 weights: wte + wpe + one layer, 2 bytes each.
  CHECK(be->peak_device_bytes() >= static_cast<int64_t>(2 * (50257 + 1024 + 12 * 768) * 768));
}
