// Config presets, config.json parsing, parameter counts and the random: models.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "common/error.h"
#include "common/thread_pool.h"
#include "model/config.h"
#include "model/source.h"
#include "model/weights.h"
#include "model_test_util.h"

using namespace gpt2;

TEST_CASE("presets have GPT-2's published sizes and parameter counts") {
  // Parameter counts as reported by Hugging Face (num_parameters(), tied head counted once).
  struct Row {
    const char* name;
    int n_layer, n_embd, n_head;
    size_t params;
  } rows[] = {
      {"gpt2", 12, 768, 12, 124439808},        {"gpt2-medium", 24, 1024, 16, 354823168},
      {"gpt2-large", 36, 1280, 20, 774030080}, {"gpt2-xl", 48, 1600, 25, 1557611200},
      {"distilgpt2", 6, 768, 12, 81912576},
  };
  for (const Row& r : rows) {
    INFO(r.name);
    const Config c = Config::preset(r.name);
    CHECK(c.n_layer == r.n_layer);
    CHECK(c.n_embd == r.n_embd);
    CHECK(c.n_head == r.n_head);
    CHECK(c.n_vocab == 50257);
    CHECK(c.n_ctx == 1024);
    CHECK(c.layer_norm_epsilon == 1e-5f);
    CHECK(parameter_count(c) == r.params);
  }
  CHECK_THROWS_AS(Config::preset("gpt3"), Error);
}

TEST_CASE("config.json: fields, defaults and rejected values") {
  TempDir dir;
  const std::string path = dir.path + "/config.json";

  write_text(path, R"({"vocab_size": 512, "n_positions": 64, "n_embd": 32, "n_head": 4, "n_layer": 2,
                       "layer_norm_epsilon": 1e-6, "activation_function": "gelu_new", "n_inner": null,
                       "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]})");
  Config c = Config::from_json_file(path);
  CHECK(c.n_vocab == 512);
  CHECK(c.n_ctx == 64);
  CHECK(c.n_embd == 32);
  CHECK(c.n_head == 4);
  CHECK(c.head_dim() == 8);
  CHECK(c.n_layer == 2);
  CHECK(c.layer_norm_epsilon == 1e-6f);

  write_text(path, R"({"n_layer": 6})");  // distilgpt2-like: everything else defaults to gpt2
  c = Config::from_json_file(path);
  CHECK(c.n_layer == 6);
  CHECK(c.n_embd == 768);
  CHECK(c.n_vocab == 50257);
  CHECK(c.n_ctx == 1024);
  CHECK(c.layer_norm_epsilon == 1e-5f);

  write_text(path, R"({"n_ctx": 128})");  // old configs name the context n_ctx
  CHECK(Config::from_json_file(path).n_ctx == 128);

  const char* bad[] = {
      R"({"n_embd": 30, "n_head": 4})",           // not divisible
      R"({"n_layer": 0})",                        // non-positive
      R"({"n_embd": "768"})",                     // wrong type
      R"({"activation_function": "relu"})",       // other activation
      R"({"n_inner": 1000})",                     // non-standard MLP width
      R"({"layer_norm_epsilon": -1})",            // nonsense epsilon
      R"({"layer_norm_epsilon": 1e-50})",         // positive, but 0 as a float (fuzz_config found it)
      R"({"model_type": "llama"})",               // other architecture
      R"({"scale_attn_by_inverse_layer_idx": true})",
      R"([1, 2])",                                // not an object
      R"({"n_layer": 12)",                        // invalid JSON
  };
  for (const char* text : bad) {
    INFO(text);
    write_text(path, text);
    CHECK_THROWS_WITH(Config::from_json_file(path), Catch::Contains(path));
  }
  CHECK_THROWS_WITH(Config::from_json_file(dir.path + "/absent.json"), Catch::Contains("absent.json"));
}

// Regression: 4 * n_embd was computed in int, which overflows (undefined behaviour) for the
// largest n_embd the reader accepts (2^30); the loader then compares shapes with the weights.
TEST_CASE("config.json: n_inner is checked against 4 * n_embd without int overflow") {
  TempDir dir;
  const std::string path = dir.path + "/config.json";
  write_text(path, R"({"n_embd": 1073741824, "n_head": 1})");
  const Config c = Config::from_json_file(path);
  CHECK(c.n_embd == 1073741824);
  write_text(path, R"({"n_embd": 1073741824, "n_head": 1, "n_inner": 1000})");
  CHECK_THROWS_WITH(Config::from_json_file(path), Catch::Contains("n_inner") && Catch::Contains("4294967296"));
  write_text(path, R"({"n_embd": 64, "n_head": 4, "n_inner": 256})");  // explicit 4 * n_embd is fine
  CHECK(Config::from_json_file(path).n_embd == 64);
}

TEST_CASE("random:gpt2 has the real shapes, realistic scales, and is seeded") {
  // Speed is measured by gpt2 bench, not here (timed tests are flaky on shared machines).
  const ModelSource src = ModelSource::parse("random:gpt2");
  CHECK(src.kind() == ModelSource::Kind::random);
  CHECK(src.tokenizer_dir().empty());  // the built-in GPT-2 vocabulary
  CHECK(src.config().n_layer == 12);   // the preset, without generating weights
  CHECK(src.config().n_embd == 768);
  HostModel m = src.load();
  CHECK(m.name == "random:gpt2");
  CHECK(m.source_dtype == "fp32");
  CHECK(m.config.n_layer == 12);
  REQUIRE(m.weights.h.size() == 12);
  CHECK(m.weights.wte.rows == 50257);
  CHECK(m.weights.wte.cols == 768);
  CHECK(m.weights.wpe.rows == 1024);
  CHECK(m.weights.lm_head.data == m.weights.wte.data);  // tied
  const LayerWeights& l0 = m.weights.h[0];
  CHECK((l0.attn_qkv_w.rows == 3 * 768 && l0.attn_qkv_w.cols == 768));
  CHECK((l0.mlp_fc_w.rows == 4 * 768 && l0.mlp_fc_w.cols == 768));
  CHECK((l0.mlp_proj_w.rows == 768 && l0.mlp_proj_w.cols == 4 * 768));
  CHECK((l0.attn_qkv_b.rows == 1 && l0.attn_qkv_b.cols == 3 * 768));
  CHECK(m.storage_floats >= parameter_count(m.config));
  CHECK(m.storage_floats < parameter_count(m.config) + 16 * 200);  // one allocation, alignment padding only

  // Every tensor starts on a 64-byte boundary.
  CHECK(reinterpret_cast<uintptr_t>(l0.mlp_fc_w.data) % 64 == 0);
  CHECK(reinterpret_cast<uintptr_t>(m.weights.ln_f_b.data) % 64 == 0);

  const Stats wte = stats(m.weights.wte);
  CHECK(std::abs(wte.mean) < 1e-3);
  CHECK(wte.stddev == Approx(0.02).epsilon(0.02));
  const Stats proj = stats(l0.mlp_proj_w);
  CHECK(proj.stddev == Approx(0.02 / std::sqrt(24.0)).epsilon(0.02));
  const Stats gain = stats(l0.ln_1_g);
  CHECK(gain.mean == Approx(1.0).epsilon(0.01));
  const Stats bias = stats(l0.attn_qkv_b);
  CHECK(std::abs(bias.mean) < 2e-3);
  CHECK(bias.stddev == Approx(0.01).epsilon(0.1));
  CHECK(wte.max_abs < 0.02 * 8);  // Irwin-Hall tails are bounded: no outliers

  // Different tensors do not repeat each other's streams.
  CHECK(std::memcmp(m.weights.h[0].attn_qkv_w.data, m.weights.h[1].attn_qkv_w.data, 4096) != 0);
}

TEST_CASE("random models are seeded: same seed, same values; another seed, other values") {
  Config c;
  c.n_vocab = 1000, c.n_ctx = 32, c.n_embd = 64, c.n_head = 4, c.n_layer = 2;
  ThreadPool one(1), three(3);
  // The same values whatever the thread count: chunks are seeded by position, not by thread.
  HostModel a = random_model(c, 7, one), b = random_model(c, 7, three), other = random_model(c, 8, three);
  CHECK(a.storage_floats == b.storage_floats);
  CHECK(std::memcmp(a.storage.get(), b.storage.get(), a.storage_floats * sizeof(float)) == 0);
  CHECK(std::memcmp(a.weights.wte.data, b.weights.wte.data, a.weights.wte.bytes()) == 0);
  CHECK(std::memcmp(a.weights.h[1].mlp_proj_w.data, b.weights.h[1].mlp_proj_w.data, a.weights.h[1].mlp_proj_w.bytes()) == 0);
  CHECK(std::memcmp(a.weights.wte.data, other.weights.wte.data, a.weights.wte.bytes()) != 0);
  CHECK(std::memcmp(a.weights.h[1].mlp_proj_w.data, other.weights.h[1].mlp_proj_w.data,
                    a.weights.h[1].mlp_proj_w.bytes()) != 0);
  CHECK(a.weights.lm_head.data == a.weights.wte.data);
}

TEST_CASE("random: names every size and rejects others") {
  HostModel d = load_model("random:distilgpt2");
  CHECK(d.config.n_layer == 6);
  CHECK_THROWS_WITH(load_model("random:gpt3"), Catch::Contains("random:gpt3"));
  // Refused when parsed, before anything is loaded, with the names that exist.
  CHECK_THROWS_WITH(ModelSource::parse("random:gpt3"),
                    Catch::Contains("random:gpt3") && Catch::Contains("random:gpt2-medium"));
}
