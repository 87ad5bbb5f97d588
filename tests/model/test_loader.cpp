// The safetensors loader: every Hugging Face variant parses to the same weights, and every
// kind of malformed input is one gpt2::Error naming the file and the tensor.
//
// Fixtures: tests/data/models/<variant>/ written by tools/reference/make_fixtures.py
// (n_embd 48, n_head 4, n_layer 3, n_positions 64, vocab 500). Malformed files are made in a
// temporary directory by editing a valid one.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/log.h"
#include "model/safetensors.h"
#include "model/source.h"
#include "model/weights.h"
#include "model_test_util.h"

using namespace gpt2;
using nlohmann::json;

namespace {

const std::string kModels = std::string(GPT2_TEST_DATA) + "/models/";

// A safetensors file split into its header and data section, to edit and write back.
struct StParts {
  json header;
  std::string data;
};

StParts read_st(const std::string& path) {
  const std::string bytes = read_bytes(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[static_cast<size_t>(i)]);
  return {json::parse(bytes.substr(8, n)), bytes.substr(8 + n)};
}

void write_st(const std::string& path, const StParts& st) {
  const std::string text = st.header.dump();
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[static_cast<size_t>(i)] = static_cast<char>((text.size() >> (8 * i)) & 0xff);
  write_text(path, bytes + text + st.data);
}

// A copy of tests/data/models/<variant> in a temporary directory.
struct ModelCopy {
  TempDir dir;
  explicit ModelCopy(const std::string& variant, std::vector<std::string> files = {"config.json",
                                                                                   "model.safetensors"}) {
    for (const std::string& f : files) write_text(dir.path + "/" + f, read_bytes(kModels + variant + "/" + f));
  }
  std::string st() const { return dir.path + "/model.safetensors"; }
  std::string config() const { return dir.path + "/config.json"; }
};

// Every fp32 tensor of a model, in storage order, with its role for messages.
std::vector<std::pair<std::string, Tensor>> all_tensors(const HostModel& m) {
  const ModelWeights& w = m.weights;
  std::vector<std::pair<std::string, Tensor>> t = {{"wte", w.wte}, {"wpe", w.wpe}};
  for (size_t l = 0; l < w.h.size(); ++l) {
    const LayerWeights& b = w.h[l];
    const std::string p = "h." + std::to_string(l) + ".";
    for (auto [name, x] : {std::pair<const char*, Tensor>{"ln_1_g", b.ln_1_g}, {"ln_1_b", b.ln_1_b},
                           {"attn_qkv_w", b.attn_qkv_w}, {"attn_qkv_b", b.attn_qkv_b},
                           {"attn_proj_w", b.attn_proj_w}, {"attn_proj_b", b.attn_proj_b},
                           {"ln_2_g", b.ln_2_g}, {"ln_2_b", b.ln_2_b}, {"mlp_fc_w", b.mlp_fc_w},
                           {"mlp_fc_b", b.mlp_fc_b}, {"mlp_proj_w", b.mlp_proj_w}, {"mlp_proj_b", b.mlp_proj_b}})
      t.push_back({p + name, x});
  }
  t.push_back({"ln_f_g", w.ln_f_g});
  t.push_back({"ln_f_b", w.ln_f_b});
  t.push_back({"lm_head", w.lm_head});
  return t;
}

// Largest |a - b| / max(|a|, 2^-14) over two models' tensors (same shapes required).
double max_rel_diff(const HostModel& a, const HostModel& b) {
  auto ta = all_tensors(a), tb = all_tensors(b);
  REQUIRE(ta.size() == tb.size());
  double worst = 0;
  for (size_t i = 0; i < ta.size(); ++i) {
    INFO(ta[i].first);
    REQUIRE(ta[i].second.rows == tb[i].second.rows);
    REQUIRE(ta[i].second.cols == tb[i].second.cols);
    for (int64_t k = 0; k < ta[i].second.numel(); ++k) {
      const double x = ta[i].second.f32()[k], y = tb[i].second.f32()[k];
      worst = std::max(worst, std::abs(x - y) / std::max(std::abs(x), 6.1e-5));
    }
  }
  return worst;
}

bool same_weights(const HostModel& a, const HostModel& b) {
  auto ta = all_tensors(a), tb = all_tensors(b);
  if (ta.size() != tb.size()) return false;
  for (size_t i = 0; i < ta.size(); ++i)
    if (ta[i].second.rows != tb[i].second.rows || ta[i].second.cols != tb[i].second.cols ||
        std::memcmp(ta[i].second.data, tb[i].second.data, ta[i].second.bytes()) != 0)
      return false;
  return true;
}

// Runs load_model with the default log sink and returns what it wrote to stderr.
std::string load_capturing_stderr(const std::string& dir, HostModel* out) {
  std::ostringstream captured;
  std::streambuf* old = std::cerr.rdbuf(captured.rdbuf());
  try {
    *out = load_model(dir);
  } catch (...) {
    std::cerr.rdbuf(old);
    throw;
  }
  std::cerr.rdbuf(old);
  return captured.str();
}

}  // namespace

TEST_CASE("every variant parses to the same weights") {
  HostModel f32 = load_model(kModels + "f32");
  CHECK(f32.config.n_embd == 48);
  CHECK(f32.config.n_head == 4);
  CHECK(f32.config.n_layer == 3);
  CHECK(f32.config.n_ctx == 64);
  CHECK(f32.config.n_vocab == 500);
  CHECK(f32.source_dtype == "fp32");
  CHECK(f32.name == kModels + "f32");
  // The source names the directory the tokenizer files would come from, and reads the config
  // alone (no weights) with the same values.
  const ModelSource src = ModelSource::parse(kModels + "f32");
  CHECK(src.kind() == ModelSource::Kind::hf_directory);
  CHECK(src.spec() == kModels + "f32");
  CHECK(src.tokenizer_dir() == kModels + "f32");
  const Config c = src.config();
  CHECK(c.n_embd == f32.config.n_embd);
  CHECK(c.n_head == f32.config.n_head);
  CHECK(c.n_layer == f32.config.n_layer);
  CHECK(c.n_ctx == f32.config.n_ctx);
  CHECK(c.n_vocab == f32.config.n_vocab);
  CHECK(c.layer_norm_epsilon == f32.config.layer_norm_epsilon);
  CHECK(same_weights(src.load(1), f32));  // any thread count converts to the same bits
  CHECK(f32.weights.lm_head.data == f32.weights.wte.data);  // no lm_head.weight: tied
  CHECK(f32.storage_floats < parameter_count(f32.config) + 16 * 60);

  SECTION("transformer. prefix, mask buffers, lm_head equal to wte") {
    HostModel m;
    {
      LogCapture log;
      m = load_model(kModels + "prefixed");
      CHECK(log.lines.empty());  // mask buffers are known, not "unknown tensors"
    }
    CHECK(same_weights(m, f32));
    CHECK(m.weights.lm_head.data == m.weights.wte.data);  // identical bytes: tied, no second copy
    CHECK(m.storage_floats == f32.storage_floats);
  }
  SECTION("sharded") {
    HostModel m = load_model(kModels + "sharded");
    CHECK(same_weights(m, f32));
  }
  SECTION("untied lm_head") {
    HostModel m = load_model(kModels + "untied");
    CHECK(m.weights.lm_head.data != m.weights.wte.data);
    CHECK(m.weights.lm_head.rows == 500);
    CHECK(m.weights.lm_head.cols == 48);
    CHECK(std::memcmp(m.weights.h[2].mlp_fc_w.data, f32.weights.h[2].mlp_fc_w.data,
                      f32.weights.h[2].mlp_fc_w.bytes()) == 0);
    CHECK(std::memcmp(m.weights.lm_head.data, m.weights.wte.data, 48 * 4) != 0);
  }
  SECTION("F16 and BF16: the f32 weights rounded to nearest") {
    HostModel f16 = load_model(kModels + "f16");
    CHECK(f16.source_dtype == "fp16");
    const double f16_err = max_rel_diff(f32, f16);
    CHECK(f16_err > 0);           // really rounded
    CHECK(f16_err <= 0.5 / 1024);  // half an ulp of a 10-bit mantissa (all values are fp16 normals)
    HostModel bf16 = load_model(kModels + "bf16");
    CHECK(bf16.source_dtype == "bf16");
    const double bf16_err = max_rel_diff(f32, bf16);
    CHECK(bf16_err > f16_err);
    CHECK(bf16_err <= 0.5 / 128);  // half an ulp of a 7-bit mantissa
  }
}

TEST_CASE("Conv1D weights are transposed to [out, in]; vectors and embeddings are copied") {
  HostModel m = load_model(kModels + "f32");
  SafetensorsFile file(kModels + "f32/model.safetensors");
  auto at = [&](const char* name, int64_t i) {
    const SafetensorsTensor* t = file.find(name);
    REQUIRE(t != nullptr);
    REQUIRE(t->dtype == "F32");
    float f;
    std::memcpy(&f, t->data + 4 * i, 4);
    return f;
  };
  const int64_t C = 48;
  const Tensor& qkv = m.weights.h[1].attn_qkv_w;  // file [C, 3C], host [3C, C]
  REQUIRE(qkv.rows == 3 * C);
  REQUIRE(qkv.cols == C);
  for (int64_t in : {0, 5, 47})
    for (int64_t out : {0, 1, 50, 143})
      CHECK(qkv.f32()[out * C + in] == at("h.1.attn.c_attn.weight", in * 3 * C + out));
  const Tensor& proj = m.weights.h[2].mlp_proj_w;  // file [4C, C], host [C, 4C]
  for (int64_t in : {0, 191})
    for (int64_t out : {0, 47}) CHECK(proj.f32()[out * 4 * C + in] == at("h.2.mlp.c_proj.weight", in * C + out));
  CHECK(m.weights.wte.f32()[7 * C + 3] == at("wte.weight", 7 * C + 3));
  CHECK(m.weights.wpe.f32()[63 * C + 47] == at("wpe.weight", 63 * C + 47));
  CHECK(m.weights.h[0].mlp_fc_b.f32()[100] == at("h.0.mlp.c_fc.bias", 100));
  CHECK(m.weights.ln_f_g.f32()[0] == at("ln_f.weight", 0));
}

TEST_CASE("safetensors: malformed files are one-line errors naming the file and tensor") {
  ModelCopy copy("f32");
  const StParts good = read_st(copy.st());
  auto expect_error = [&](const std::vector<std::string>& parts) {
    try {
      load_model(copy.dir.path);
      FAIL("load_model accepted a malformed model");
    } catch (const Error& e) {
      const std::string msg = e.what();
      INFO(msg);
      CHECK(msg.find('\n') == std::string::npos);
      for (const std::string& p : parts) CHECK(msg.find(p) != std::string::npos);
    }
  };

  SECTION("empty file") {
    write_text(copy.st(), "");
    expect_error({copy.st(), "too short"});
  }
  SECTION("truncated data section") {
    const std::string bytes = read_bytes(copy.st());
    write_text(copy.st(), bytes.substr(0, bytes.size() - 100));  // ln_f.bias (192 bytes) is written last
    expect_error({copy.st(), "tensor 'ln_f.bias'", "past the end"});
  }
  SECTION("header length past the end of the file") {
    std::string bytes = read_bytes(copy.st());
    bytes[0] = 0, bytes[1] = 0, bytes[2] = 0x10, bytes[3] = 0;  // 1 MiB of header in a 441 KiB file
    write_text(copy.st(), bytes);
    expect_error({copy.st(), "header length"});
  }
  SECTION("header length beyond the format's limit") {
    std::string bytes = read_bytes(copy.st());
    bytes[0] = 0, bytes[1] = 0x0e, bytes[2] = 0x27, bytes[3] = 0x07;  // 120,000,000 little-endian
    bytes[4] = bytes[5] = bytes[6] = bytes[7] = 0;
    write_text(copy.st(), bytes);
    expect_error({copy.st(), "header length 120000000", "100 MB"});
  }
  SECTION("header is not JSON") {
    std::string bytes = read_bytes(copy.st());
    bytes[8] = 'x';  // the opening brace
    write_text(copy.st(), bytes);
    expect_error({copy.st(), "not valid JSON"});
  }
  SECTION("header is not an object") {
    StParts st = good;
    st.header = json::array({1, 2});
    write_st(copy.st(), st);
    expect_error({copy.st(), "not a JSON object"});
  }
  SECTION("offsets out of range") {
    StParts st = good;
    st.header["h.1.ln_2.bias"]["data_offsets"] = {st.data.size() - 8, st.data.size() + 184};
    write_st(copy.st(), st);
    expect_error({copy.st(), "tensor 'h.1.ln_2.bias'", "past the end"});
  }
  SECTION("offsets that do not match the shape") {
    StParts st = good;
    st.header["h.0.ln_1.bias"]["data_offsets"][1] = st.header["h.0.ln_1.bias"]["data_offsets"][1].get<int64_t>() - 4;
    write_st(copy.st(), st);
    expect_error({copy.st(), "tensor 'h.0.ln_1.bias'", "needs 192"});
  }
  SECTION("begin after end, negative offsets") {
    StParts st = good;
    st.header["wpe.weight"]["data_offsets"] = {100, 50};
    write_st(copy.st(), st);
    expect_error({copy.st(), "tensor 'wpe.weight'", "begin <= end"});
    st.header["wpe.weight"]["data_offsets"] = {-4, 50};
    write_st(copy.st(), st);
    expect_error({copy.st(), "tensor 'wpe.weight'"});
  }
  SECTION("overlapping tensors") {
    StParts st = good;
    const int64_t begin = st.header["h.0.ln_1.weight"]["data_offsets"][0].get<int64_t>() + 4;
    st.header["h.0.ln_2.weight"]["data_offsets"] = {begin, begin + 192};
    write_st(copy.st(), st);
    expect_error({copy.st(), "overlaps", "'h.0.ln_2.weight'", "'h.0.ln_1.weight'"});
  }
  SECTION("unknown dtype") {
    StParts st = good;
    st.header["h.2.ln_1.weight"]["dtype"] = "F33";
    write_st(copy.st(), st);
    expect_error({copy.st(), "tensor 'h.2.ln_1.weight'", "unknown dtype \"F33\""});
  }
  SECTION("known dtype that weights cannot have") {
    StParts st = good;
    st.header["h.2.ln_1.weight"]["dtype"] = "I32";  // same size as F32, so the offsets stay valid
    write_st(copy.st(), st);
    expect_error({copy.st(), "tensor 'h.2.ln_1.weight'", "dtype I32"});
  }
  SECTION("bad shape entry") {
    StParts st = good;
    st.header["ln_f.weight"]["shape"] = {-48};
    write_st(copy.st(), st);
    expect_error({copy.st(), "tensor 'ln_f.weight'", "shape"});
  }
  SECTION("missing tensor") {
    StParts st = good;
    st.header.erase("h.2.mlp.c_fc.bias");
    write_st(copy.st(), st);
    expect_error({copy.st(), "tensor 'h.2.mlp.c_fc.bias'", "missing"});
  }
  SECTION("wrong shape (same number of elements)") {
    StParts st = good;
    st.header["h.1.attn.c_attn.weight"]["shape"] = {144, 48};  // [3C, C]: nn.Linear layout, not Conv1D
    write_st(copy.st(), st);
    expect_error({copy.st(), "tensor 'h.1.attn.c_attn.weight'", "[144, 48]", "[48, 144]"});
  }
  SECTION("the same tensor with and without transformer.") {
    StParts st = good;
    st.header["transformer.wpe.weight"] = st.header["wpe.weight"];
    st.header["transformer.wpe.weight"]["data_offsets"] = {st.data.size(), st.data.size() + 64 * 48 * 4};
    st.data += std::string(64 * 48 * 4, '\0');
    write_st(copy.st(), st);
    expect_error({copy.st(), "'transformer.wpe.weight'", "'wpe.weight'"});
  }
  SECTION("lm_head of the wrong shape") {
    StParts st = good;
    st.header["lm_head.weight"] = {{"dtype", "F32"}, {"shape", {499, 48}},
                                   {"data_offsets", {st.data.size(), st.data.size() + 499 * 48 * 4}}};
    st.data += std::string(499 * 48 * 4, '\0');
    write_st(copy.st(), st);
    expect_error({copy.st(), "tensor 'lm_head.weight'", "[499, 48]"});
  }
}

TEST_CASE("mask buffers are skipped by exact name, never by substring") {
  // In the prefixed variant h.N.attn.bias (a mask buffer) sits beside h.N.attn.c_attn.bias (a weight).
  ModelCopy copy("prefixed");
  StParts st = read_st(copy.st());
  REQUIRE(st.header.contains("transformer.h.1.attn.bias"));
  REQUIRE(st.header.contains("transformer.h.1.attn.masked_bias"));
  st.header.erase("transformer.h.1.attn.c_attn.bias");
  write_st(copy.st(), st);
  CHECK_THROWS_WITH(load_model(copy.dir.path), Catch::Contains("'h.1.attn.c_attn.bias' is missing"));
}

TEST_CASE("unknown tensors: one warning line through the log (stderr by default), the model still loads") {
  ModelCopy copy("f32");
  StParts st = read_st(copy.st());
  for (const char* name : {"h.0.attn.rotary_emb", "score.weight"}) {
    st.header[name] = {{"dtype", "F32"}, {"shape", {4}}, {"data_offsets", {st.data.size(), st.data.size() + 16}}};
    st.data += std::string(16, '\0');
  }
  write_st(copy.st(), st);
  HostModel m;
  std::string line;
  {
    LogCapture log;
    m = load_model(copy.dir.path);
    REQUIRE(log.lines.size() == 1);
    CHECK(log.lines[0].first == LogLevel::warning);
    line = log.lines[0].second;
  }
  INFO(line);
  CHECK(line.find(copy.st()) != std::string::npos);
  CHECK(line.find("2 unknown tensors") != std::string::npos);
  CHECK(line.find("'h.0.attn.rotary_emb'") != std::string::npos);
  CHECK(line.find("'score.weight'") != std::string::npos);
  CHECK(line.find('\n') == std::string::npos);
  CHECK(m.config.n_layer == 3);

  // The default sink writes it to stderr as one line.
  const std::string err = load_capturing_stderr(copy.dir.path, &m);
  CHECK(err == "warning: " + line + "\n");
  CHECK(m.config.n_layer == 3);
}

TEST_CASE("config.json missing or inconsistent with the weights") {
  ModelCopy copy("f32");
  auto config_with = [&](const std::string& key, int value) {
    json j = json::parse(read_bytes(kModels + "f32/config.json"));
    j[key] = value;
    write_text(copy.config(), j.dump());
  };
  auto message = [&] {
    try {
      load_model(copy.dir.path);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };

  SECTION("config.json missing") {
    std::remove(copy.config().c_str());
    CHECK_THAT(message(), Catch::Contains("config.json") && Catch::Contains(copy.dir.path));
  }
  SECTION("n_layer smaller than the checkpoint") {
    config_with("n_layer", 2);
    CHECK_THAT(message(), Catch::Contains(copy.st()) && Catch::Contains("'h.2.") && Catch::Contains("n_layer 2"));
  }
  SECTION("n_layer larger than the checkpoint") {
    config_with("n_layer", 4);
    CHECK_THAT(message(), Catch::Contains(copy.st()) && Catch::Contains("tensor 'h.3.ln_1.weight' is missing") &&
                              Catch::Contains("n_layer 4"));
  }
  SECTION("n_layer far larger than the checkpoint: the same error, at once") {
    // Regression: per-layer tables for 10^8 layers were built before the first missing tensor
    // was noticed (a minute and 20 GB, or "out of host memory" for larger counts).
    config_with("n_layer", 100000000);
    CHECK_THAT(message(), Catch::Contains(copy.st()) && Catch::Contains("tensor 'h.3.ln_1.weight' is missing") &&
                              Catch::Contains("n_layer 100000000"));
    config_with("n_layer", 1 << 30);
    CHECK_THAT(message(), Catch::Contains("tensor 'h.3.ln_1.weight' is missing"));
  }
  SECTION("n_layer far larger, with one empty tensor of the last layer it claims: the same error, at once") {
    // Regression (the case fuzz_gguf found for GGUF; tests/fuzz): the last layer's check alone
    // passed, and the per-layer tables for 10^8 layers were built before a tensor was missing.
    config_with("n_layer", 100000000);
    StParts st = read_st(copy.st());
    st.header["h.99999999.attn.bias"] = {{"dtype", "F32"}, {"shape", {0}}, {"data_offsets", {0, 0}}};
    write_st(copy.st(), st);
    CHECK_THAT(message(), Catch::Contains(copy.st()) && Catch::Contains("tensor 'h.3.ln_1.weight' is missing") &&
                              Catch::Contains("n_layer 100000000"));
  }
  SECTION("n_embd differs") {
    config_with("n_embd", 64);
    CHECK_THAT(message(), Catch::Contains(copy.st()) && Catch::Contains("tensor 'wte.weight'") &&
                              Catch::Contains("[500, 48]") && Catch::Contains("[500, 64]"));
  }
  SECTION("vocab_size differs") {
    config_with("vocab_size", 50257);
    CHECK_THAT(message(), Catch::Contains("tensor 'wte.weight'") && Catch::Contains("n_vocab 50257"));
  }
  SECTION("n_positions differs") {
    config_with("n_positions", 1024);
    CHECK_THAT(message(), Catch::Contains("tensor 'wpe.weight'") && Catch::Contains("[1024, 48]"));
  }
  SECTION("n_head does not divide n_embd") {
    config_with("n_head", 5);
    CHECK_THAT(message(), Catch::Contains(copy.config()) && Catch::Contains("n_head 5"));
  }
}

TEST_CASE("model directories: what is missing is named") {
  TempDir dir;
  CHECK_THROWS_WITH(load_model(dir.path + "/nope"), Catch::Contains(dir.path + "/nope") && Catch::Contains("not found"));
  write_text(dir.path + "/config.json", read_bytes(kModels + "f32/config.json"));
  CHECK_THROWS_WITH(load_model(dir.path), Catch::Contains("no model.safetensors"));
  write_text(dir.path + "/pytorch_model.bin", "x");
  CHECK_THROWS_WITH(load_model(dir.path), Catch::Contains("pytorch_model.bin"));
  CHECK_THROWS_WITH(load_model(dir.path + "/config.json"), Catch::Contains("is a file"));
}

TEST_CASE("sharded checkpoints: index problems are named") {
  const std::vector<std::string> files = {"config.json", "model.safetensors.index.json",
                                          "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
  ModelCopy copy("sharded", files);
  const std::string index = copy.dir.path + "/model.safetensors.index.json";
  json j = json::parse(read_bytes(index));
  REQUIRE(j["weight_map"]["wte.weight"] == "model-00001-of-00002.safetensors");

  SECTION("a shard is missing") {
    std::remove((copy.dir.path + "/model-00002-of-00002.safetensors").c_str());
    CHECK_THROWS_WITH(load_model(copy.dir.path), Catch::Contains(index) && Catch::Contains("model-00002-of-00002"));
  }
  SECTION("the index puts a tensor in the wrong shard") {
    j["weight_map"]["wte.weight"] = "model-00002-of-00002.safetensors";
    write_text(index, j.dump());
    CHECK_THROWS_WITH(load_model(copy.dir.path), Catch::Contains("'wte.weight'"));
  }
  SECTION("a shard name with a path") {
    j["weight_map"]["wte.weight"] = "../model-00001-of-00002.safetensors";
    write_text(index, j.dump());
    CHECK_THROWS_WITH(load_model(copy.dir.path), Catch::Contains(index) && Catch::Contains("'wte.weight'"));
  }
  SECTION("index without weight_map") {
    write_text(index, "{\"metadata\": {}}");
    CHECK_THROWS_WITH(load_model(copy.dir.path), Catch::Contains(index) && Catch::Contains("weight_map"));
  }
  SECTION("a corrupt shard is named") {
    const std::string shard = copy.dir.path + "/model-00002-of-00002.safetensors";
    const std::string bytes = read_bytes(shard);
    write_text(shard, bytes.substr(0, bytes.size() / 2));
    CHECK_THROWS_WITH(load_model(copy.dir.path), Catch::Contains(shard) && Catch::Contains("past the end"));
  }
}

TEST_CASE("large tensors are converted in several pieces, every element in its place") {
  // n_embd 1040 makes c_fc's [4160, 1040] and wte's [4100, 1040] larger than one conversion job
  // (4M values), split at a row that is not a multiple of the 32-row transpose tile.
  const int64_t C = 1040, V = 4100, P = 4;
  TempDir dir;
  write_text(dir.path + "/config.json", "{\"vocab_size\": 4100, \"n_positions\": 4, \"n_embd\": 1040, \"n_head\": 8, "
                                        "\"n_layer\": 1}");
  // Value of element i of tensor number k: small integers / 64, exact in F16.
  auto value = [](int64_t k, int64_t i) { return static_cast<float>((i * 31 + k * 7) % 255 - 127) / 64.0f; };
  const std::vector<std::pair<std::string, std::vector<int64_t>>> tensors = {
      {"wte.weight", {V, C}},
      {"wpe.weight", {P, C}},
      {"h.0.ln_1.weight", {C}},
      {"h.0.ln_1.bias", {C}},
      {"h.0.attn.c_attn.weight", {C, 3 * C}},
      {"h.0.attn.c_attn.bias", {3 * C}},
      {"h.0.attn.c_proj.weight", {C, C}},
      {"h.0.attn.c_proj.bias", {C}},
      {"h.0.ln_2.weight", {C}},
      {"h.0.ln_2.bias", {C}},
      {"h.0.mlp.c_fc.weight", {C, 4 * C}},
      {"h.0.mlp.c_fc.bias", {4 * C}},
      {"h.0.mlp.c_proj.weight", {4 * C, C}},
      {"h.0.mlp.c_proj.bias", {C}},
      {"ln_f.weight", {C}},
      {"ln_f.bias", {C}},
  };
  StParts st;
  st.header = json::object();
  for (size_t k = 0; k < tensors.size(); ++k) {
    int64_t n = 1;
    for (int64_t d : tensors[k].second) n *= d;
    st.header[tensors[k].first] = {{"dtype", "F16"}, {"shape", tensors[k].second},
                                   {"data_offsets", {st.data.size(), st.data.size() + 2 * n}}};
    std::string bytes(static_cast<size_t>(2 * n), '\0');
    for (int64_t i = 0; i < n; ++i) {
      const uint16_t h = f32_to_f16(value(static_cast<int64_t>(k), i));
      std::memcpy(&bytes[static_cast<size_t>(2 * i)], &h, 2);
    }
    st.data += bytes;
  }
  write_st(dir.path + "/model.safetensors", st);

  HostModel m = load_model(dir.path);
  CHECK(m.source_dtype == "fp16");
  // Host tensor for each file tensor, with whether it is a transposed Conv1D weight.
  const LayerWeights& b = m.weights.h[0];
  const std::vector<std::pair<Tensor, bool>> host = {
      {m.weights.wte, false}, {m.weights.wpe, false}, {b.ln_1_g, false},     {b.ln_1_b, false},
      {b.attn_qkv_w, true},   {b.attn_qkv_b, false},  {b.attn_proj_w, true}, {b.attn_proj_b, false},
      {b.ln_2_g, false},      {b.ln_2_b, false},      {b.mlp_fc_w, true},    {b.mlp_fc_b, false},
      {b.mlp_proj_w, true},   {b.mlp_proj_b, false},  {m.weights.ln_f_g, false}, {m.weights.ln_f_b, false},
  };
  for (size_t k = 0; k < tensors.size(); ++k) {
    INFO(tensors[k].first);
    const Tensor& t = host[k].first;
    int64_t wrong = 0;
    if (host[k].second) {  // file [in, out] -> host [out, in]
      const int64_t in = t.cols, out = t.rows;
      for (int64_t i = 0; i < in; ++i)
        for (int64_t o = 0; o < out; ++o) wrong += t.f32()[o * in + i] != value(static_cast<int64_t>(k), i * out + o);
    } else {
      for (int64_t i = 0; i < t.numel(); ++i) wrong += t.f32()[i] != value(static_cast<int64_t>(k), i);
    }
    CHECK(wrong == 0);
  }
}

TEST_CASE("corrupted headers and truncations never crash: each load succeeds or throws gpt2::Error") {
  // A deterministic mini-fuzz: 300 single-byte edits of the header (digits, quotes, brackets
  // and random bytes) and 50 truncations, each loaded from scratch. Run under
  // -fsanitize=address,undefined this also shows that no load reads outside the mapping.
  ModelCopy copy("prefixed");
  const std::string good = read_bytes(copy.st());
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(good[static_cast<size_t>(i)]);
  uint64_t state = 12345;
  auto next = [&] {  // xorshift64: reproducible edits
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    return state;
  };
  const char replacements[] = "0123456789\"[]{},:-e. \x00\xff";
  int loaded = 0, rejected = 0;
  for (int trial = 0; trial < 350; ++trial) {
    std::string bytes = good;
    if (trial < 300) {
      const size_t at = 8 + next() % header_len;
      bytes[at] = (trial % 3 == 0) ? static_cast<char>(next() & 0xff)
                                   : replacements[next() % (sizeof(replacements) - 1)];
    } else {
      bytes.resize(next() % bytes.size());
    }
    write_text(copy.st(), bytes);
    LogCapture ignored;  // some edits rename a tensor: the unknown-tensor warning goes here
    try {
      HostModel m = load_model(copy.dir.path);
      ++loaded;
    } catch (const Error& e) {
      ++rejected;
      const std::string msg = e.what();
      if (msg.find('\n') != std::string::npos || msg.find(copy.st()) == std::string::npos)
        FAIL("trial " << trial << ": unhelpful message: " << msg);
    } catch (...) {
      FAIL("trial " << trial << ": load_model threw something other than gpt2::Error");
    }
  }
  CHECK(loaded + rejected == 350);
  CHECK(rejected > 200);  // most edits break the header; a few (a digit inside the metadata) do not
}
