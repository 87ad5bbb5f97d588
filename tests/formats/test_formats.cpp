// The same weights in every format give the same model: safetensors, GGUF and llm.c files written
// from one another by tools/export_model.py (tests/data/formats, tools/make_format_fixtures.py)
// load to bit-identical host weights and logits; quantized GGUFs keep their own integers (Q4_0
// runs on the int4 kernels with no requantization, bit for bit as the fp32 weights quantized
// at load); K-quants and the other types dequantize as the format defines.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/log.h"
#include "formats_test_util.h"
#include <nlohmann/json.hpp>

#include "model/ggml_blocks.h"
#include "model/gguf.h"
#include "model/host_model.h"
#include "model/model_test_util.h"
#include "model/source.h"
#include "tokenizer/tokenizer.h"

using namespace gpt2;

namespace {

const std::string kData = std::string(GPT2_TEST_DATA) + "/";
const std::string kFormats = kData + "formats/";

// Every tensor of a model in table order, for comparisons.
std::vector<const Tensor*> tensors(const HostModel& m) {
  ModelWeights& w = const_cast<ModelWeights&>(m.weights);
  std::vector<const Tensor*> out;
  for (const WeightEntry& e : weight_table(m.config, w, m.tied_head())) out.push_back(e.tensor);
  return out;
}

// Value (r, c) of a host tensor as fp32 (integers times their group's scale).
float host_value(const Tensor& t, int64_t r, int64_t c) {
  if (t.dtype == DType::f32) return t.f32()[r * t.cols + c];
  const int64_t n_groups = t.cols / t.group_size;
  return static_cast<float>(static_cast<const int8_t*>(t.data)[r * t.cols + c]) *
         t.scales[r * n_groups + c / t.group_size];
}

bool same_host_weights(const HostModel& a, const HostModel& b) {
  const auto ta = tensors(a), tb = tensors(b);
  if (ta.size() != tb.size() || a.tied_head() != b.tied_head()) return false;
  for (size_t i = 0; i < ta.size(); ++i)
    if (ta[i]->rows != tb[i]->rows || ta[i]->cols != tb[i]->cols || ta[i]->dtype != DType::f32 ||
        tb[i]->dtype != DType::f32 || std::memcmp(ta[i]->data, tb[i]->data, ta[i]->bytes()) != 0)
      return false;
  return true;
}

const std::vector<int32_t> kPrompt = {64, 11, 65, 13, 66, 26, 67, 204, 299, 0, 250, 7, 123};  // < 300: every model here

std::vector<float> logits_of(const std::string& spec, DType dtype, std::vector<int32_t> prompt = kPrompt) {
  Gpt2 m = test::cpu_model(spec, dtype);
  return test::all_logits(m, prompt);
}

double spread(const std::vector<float>& v) {
  return *std::max_element(v.begin(), v.end()) - *std::min_element(v.begin(), v.end());
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(double(a[i]) - b[i]));
  return worst;
}

}  // namespace

TEST_CASE("safetensors, GGUF F32 and llm.c fp32 of the same weights: the same weights, bit-identical logits") {
  const HostModel st = load_model(kData + "models/f32");
  const HostModel gguf = load_model(kFormats + "f32.gguf");
  const HostModel llmc = load_model(kFormats + "f32.bin");
  CHECK(ModelSource::parse(kFormats + "f32.gguf").kind() == ModelSource::Kind::gguf);
  CHECK(ModelSource::parse(kFormats + "f32.bin").kind() == ModelSource::Kind::llmc);
  CHECK(gguf.source_dtype == "fp32");
  CHECK(llmc.source_dtype == "fp32");
  CHECK_FALSE(gguf.quantized_source);
  CHECK(same_host_weights(st, gguf));
  CHECK(same_host_weights(st, llmc));
  // The configs too, read without the weights.
  for (const std::string& f : {kFormats + "f32.gguf", kFormats + "f32.bin"}) {
    const Config c = ModelSource::parse(f).config();
    CHECK(c.n_vocab == 500);
    CHECK(c.n_ctx == 64);
    CHECK(c.n_embd == 48);
    CHECK(c.n_head == 4);
    CHECK(c.n_layer == 3);
    CHECK(c.layer_norm_epsilon == st.config.layer_norm_epsilon);
  }
  const std::vector<float> want = logits_of(kData + "models/f32", DType::f32);
  CHECK(test::same_bits(logits_of(kFormats + "f32.gguf", DType::f32), want));
  CHECK(test::same_bits(logits_of(kFormats + "f32.bin", DType::f32), want));
  // and through every CPU dtype: the packed weights are the same bits
  for (DType dt : {DType::bf16, DType::i8, DType::i4}) {
    INFO(dtype_name(dt));
    const std::vector<float> w = logits_of(kData + "models/f32", dt);
    CHECK(test::same_bits(logits_of(kFormats + "f32.gguf", dt), w));
    CHECK(test::same_bits(logits_of(kFormats + "f32.bin", dt), w));
  }
}

TEST_CASE("GGUF F16 and BF16 equal the safetensors F16 and BF16 models; llm.c bf16 equals BF16") {
  CHECK(same_host_weights(load_model(kData + "models/f16"), load_model(kFormats + "f16.gguf")));
  CHECK(same_host_weights(load_model(kData + "models/bf16"), load_model(kFormats + "bf16.gguf")));
  CHECK(same_host_weights(load_model(kData + "models/bf16"), load_model(kFormats + "bf16.bin")));
  CHECK(load_model(kFormats + "f16.gguf").source_dtype == "fp16");
  CHECK(load_model(kFormats + "bf16.bin").source_dtype == "bf16");
  CHECK(test::same_bits(logits_of(kFormats + "f16.gguf", DType::f32), logits_of(kData + "models/f16", DType::f32)));
  const std::vector<float> bf16 = logits_of(kData + "models/bf16", DType::f32);
  CHECK(test::same_bits(logits_of(kFormats + "bf16.gguf", DType::f32), bf16));
  CHECK(test::same_bits(logits_of(kFormats + "bf16.bin", DType::f32), bf16));
}

TEST_CASE("Q4_0 GGUF: kept as int4 integers, run with no requantization, bit-identical to fp32 quantized at load") {
  const HostModel q = load_model(kFormats + "w64-q4_0.gguf");
  CHECK(q.source_dtype == "q4_0");
  CHECK(q.quantized_source);
  const Tensor& w = q.weights.h[1].mlp_fc_w;  // blk.1.ffn_up.weight [64, 256] in GGUF order
  CHECK(w.dtype == DType::i4);
  CHECK(w.group_size == 32);
  CHECK(w.rows == 256);
  CHECK(w.cols == 64);
  CHECK(q.weights.wte.dtype == DType::i4);   // the head (tied) in Q4_0 too in this file
  CHECK(q.weights.wpe.dtype == DType::f32);  // a table: fp32
  // The integers are the file's nibbles minus 8 and the scales its fp16 d, decoded by hand from
  // the bytes of the first block of row 5.
  {
    const GgufFile f(kFormats + "w64-q4_0.gguf");
    const GgufTensor* t = f.find("blk.1.ffn_up.weight");
    REQUIRE(t != nullptr);
    CHECK(t->type == GgmlType::q4_0);
    const uint8_t* blk = t->data + 5 * (64 / 32) * 18;  // row 5: 2 blocks of 18 bytes per row
    uint16_t d;
    std::memcpy(&d, blk, 2);
    CHECK(w.scales[5 * 2 + 0] == f16_to_f32(d));
    const int8_t* qrow = static_cast<const int8_t*>(w.data) + 5 * 64;
    int wrong = 0;
    for (int j = 0; j < 16; ++j) {
      wrong += qrow[j] != (blk[2 + j] & 0x0F) - 8;
      wrong += qrow[j + 16] != (blk[2 + j] >> 4) - 8;
    }
    CHECK(wrong == 0);
  }
  // -v describes what was done.
  bool said = false;
  for (const std::string& n : q.notes) said = said || (n.find("Q4_0") != std::string::npos && n.find("int4") != std::string::npos);
  CHECK(said);

  // The fp32 safetensors model packed as int4 at load (ggml's Q4_0 quantizer) and the Q4_0 file
  // packed as it is give the same logits, bit for bit: the same integers and scales.
  const std::vector<float> from_fp32 = logits_of(kFormats + "w64", DType::i4);
  CHECK(test::same_bits(logits_of(kFormats + "w64-q4_0.gguf", DType::i4), from_fp32));
  Gpt2 autom = test::cpu_model(kFormats + "w64-q4_0.gguf", DType::f32, /*auto_dtype=*/true);
  CHECK(test::same_bits(test::all_logits(autom, kPrompt), from_fp32));  // auto: the file's int4
  // Dequantized (--dtype fp32): close to the fp32 model, as 4-bit weights are.
  const std::vector<float> fp32 = logits_of(kFormats + "w64", DType::f32);
  const double err = max_abs_diff(logits_of(kFormats + "w64-q4_0.gguf", DType::f32), fp32);
  CHECK(err > 0);
  CHECK(err < 0.25 * spread(fp32));
}

TEST_CASE("Q8_0 and Q5_0 GGUFs run on the int8 kernels as they are; Q4_1 and Q5_1 dequantize exactly") {
  const std::vector<float> fp32 = logits_of(kFormats + "w64", DType::f32);
  for (const char* t : {"q8_0", "q5_0", "q4_1", "q5_1"}) {
    INFO(t);
    const std::string path = kFormats + "w64-" + t + ".gguf";
    const HostModel m = load_model(path);
    CHECK(m.source_dtype == t);
    CHECK(m.quantized_source);
    const bool integer = std::string(t) == "q8_0" || std::string(t) == "q5_0";
    CHECK(m.weights.h[0].attn_qkv_w.dtype == (integer ? DType::i8 : DType::f32));
    // Host values equal the file's blocks decoded by ggml_dequantize (unit-tested by hand).
    const GgufTensor* src = nullptr;
    GgufFile f(path);
    src = f.find("blk.0.attn_qkv.weight");
    REQUIRE(src != nullptr);
    std::vector<float> want(static_cast<size_t>(src->numel()));
    ggml_dequantize(src->type, src->data, want.data(), src->numel());
    const Tensor& w = m.weights.h[0].attn_qkv_w;
    int64_t wrong = 0;
    for (int64_t r = 0; r < w.rows; ++r)
      for (int64_t c = 0; c < w.cols; ++c) {
        const float v = host_value(w, r, c);
        wrong += std::memcmp(&v, &want[static_cast<size_t>(r * w.cols + c)], 4) != 0;
      }
    CHECK(wrong == 0);
    // Logits near the fp32 model's, against their spread (this small random model has logits
    // over ~40 units, and amplifies weight errors): 8-bit within 3 % of it, 4/5-bit within 25 %.
    const double err = max_abs_diff(logits_of(path, DType::f32), fp32);
    CHECK(err > 0);
    CHECK(err < (std::string(t) == "q8_0" ? 0.03 : 0.25) * spread(fp32));
    // The integer kernels on the file's own integers agree with the dequantized fp32 run up to
    // the activations' 16-bit rounding.
    if (integer) CHECK(max_abs_diff(logits_of(path, DType::i8), logits_of(path, DType::f32)) < 2e-3);
  }
}

TEST_CASE("int4 decode through the KV cache equals prefill, bit for bit; int4 is close to fp32") {
  Gpt2 m = test::cpu_model(kFormats + "w64-q4_0.gguf", DType::i4);
  CHECK(test::same_bits(test::decoded_logits(m, kPrompt), test::all_logits(m, kPrompt)));
  Gpt2 m8 = test::cpu_model(kFormats + "w64-q8_0.gguf", DType::i8);
  CHECK(test::same_bits(test::decoded_logits(m8, kPrompt), test::all_logits(m8, kPrompt)));
}

TEST_CASE("K-quants (Q4_K, Q5_K, Q6_K) in a model: Q6_K kept as int8 groups of 16, the others dequantized") {
  // A one-layer GPT-2 256 wide (K-quant rows need 256 values), its matrices random blocks.
  const int C = 256, V = 40, T = 8;
  std::mt19937 rng(3);
  auto blocks = [&](GgmlType type, uint64_t rows, uint64_t cols) {
    const GgmlTypeInfo* info = ggml_type_info(static_cast<uint32_t>(type));
    std::string b(static_cast<size_t>(rows * cols / info->block_size * info->block_bytes), '\0');
    for (char& x : b) x = static_cast<char>(rng());
    for (size_t at = 0; at < b.size(); at += info->block_bytes) {  // finite, small scales
      const uint16_t d = static_cast<uint16_t>(0x1C00 + rng() % 0x0800);
      if (type == GgmlType::q6_k) {
        std::memcpy(&b[at + 208], &d, 2);
      } else {
        std::memcpy(&b[at], &d, 2);
        std::memcpy(&b[at + 2], &d, 2);
      }
    }
    return b;
  };
  auto vec = [&](size_t n, float base) { return test::f32_bytes(std::vector<float>(n, base)); };
  test::GgufBuilder g;
  g.gpt2_keys(1, C, 4, T);
  g.add_tensor("token_embd.weight", {C, V}, 14, blocks(GgmlType::q6_k, V, C));
  g.add_tensor("position_embd.weight", {C, T}, 0, vec(static_cast<size_t>(C * T), 0.01f));
  g.add_tensor("blk.0.attn_norm.weight", {C}, 0, vec(C, 1.0f));
  g.add_tensor("blk.0.attn_norm.bias", {C}, 0, vec(C, 0.0f));
  g.add_tensor("blk.0.attn_qkv.weight", {C, 3 * C}, 12, blocks(GgmlType::q4_k, 3 * C, C));
  g.add_tensor("blk.0.attn_qkv.bias", {3 * C}, 0, vec(3 * C, 0.0f));
  g.add_tensor("blk.0.attn_output.weight", {C, C}, 13, blocks(GgmlType::q5_k, C, C));
  g.add_tensor("blk.0.attn_output.bias", {C}, 0, vec(C, 0.0f));
  g.add_tensor("blk.0.ffn_norm.weight", {C}, 0, vec(C, 1.0f));
  g.add_tensor("blk.0.ffn_norm.bias", {C}, 0, vec(C, 0.0f));
  g.add_tensor("blk.0.ffn_up.weight", {C, 4 * C}, 14, blocks(GgmlType::q6_k, 4 * C, C));
  g.add_tensor("blk.0.ffn_up.bias", {4 * C}, 0, vec(4 * C, 0.0f));
  g.add_tensor("blk.0.ffn_down.weight", {4 * C, C}, 12, blocks(GgmlType::q4_k, C, 4 * C));
  g.add_tensor("blk.0.ffn_down.bias", {C}, 0, vec(C, 0.0f));
  g.add_tensor("output_norm.weight", {C}, 0, vec(C, 1.0f));
  g.add_tensor("output_norm.bias", {C}, 0, vec(C, 0.0f));
  TempDir dir;
  const std::string path = dir.path + "/k.gguf";
  write_text(path, g.bytes());

  const HostModel m = load_model(path);
  CHECK(m.quantized_source);
  CHECK(m.tied_head());
  CHECK(m.weights.wte.dtype == DType::i8);
  CHECK(m.weights.wte.group_size == 16);
  CHECK(m.weights.h[0].mlp_fc_w.dtype == DType::i8);
  CHECK(m.weights.h[0].attn_qkv_w.dtype == DType::f32);
  CHECK(m.weights.h[0].attn_proj_w.dtype == DType::f32);
  const GgufFile f(path);
  for (const auto& [name, t] : {std::pair<const char*, const Tensor*>{"token_embd.weight", &m.weights.wte},
                                {"blk.0.attn_qkv.weight", &m.weights.h[0].attn_qkv_w},
                                {"blk.0.attn_output.weight", &m.weights.h[0].attn_proj_w},
                                {"blk.0.ffn_down.weight", &m.weights.h[0].mlp_proj_w}}) {
    INFO(name);
    const GgufTensor* src = f.find(name);
    std::vector<float> want(static_cast<size_t>(src->numel()));
    ggml_dequantize(src->type, src->data, want.data(), src->numel());
    int64_t wrong = 0;
    for (int64_t r = 0; r < t->rows; ++r)
      for (int64_t c = 0; c < t->cols; ++c) {
        const float v = host_value(*t, r, c);
        wrong += std::memcmp(&v, &want[static_cast<size_t>(r * t->cols + c)], 4) != 0;
      }
    CHECK(wrong == 0);
  }
  // It runs, on every CPU dtype, and auto keeps the CPU on integer kernels.
  for (DType dt : {DType::f32, DType::i8, DType::i4}) {
    Gpt2 model = test::cpu_model(path, dt);
    const std::vector<float> l = test::all_logits(model, {1, 2, 3});
    bool finite = true;
    for (float x : l) finite = finite && std::isfinite(x);
    CHECK(finite);
  }
}

TEST_CASE("a GGUF's tokenizer: GPT-2's is recognized, another is used as given") {
  // GPT-2's vocabulary as lists, the way the converter writes them (from the built-in files).
  const std::string data = std::string(GPT2_TEST_DATA) + "/../../src/tokenizer/data/";
  const nlohmann::json enc = nlohmann::json::parse(read_bytes(data + "encoder.json"));
  std::vector<std::string> tokens(enc.size());
  for (auto it = enc.begin(); it != enc.end(); ++it) tokens[it.value().get<size_t>()] = it.key();
  std::vector<std::string> merges;
  {
    const std::string bpe = read_bytes(data + "vocab.bpe");
    size_t pos = bpe.find('\n') + 1;  // #version line
    while (pos < bpe.size()) {
      const size_t eol = bpe.find('\n', pos);
      const std::string line = bpe.substr(pos, eol == std::string::npos ? std::string::npos : eol - pos);
      if (!line.empty()) merges.push_back(line);
      if (eol == std::string::npos) break;
      pos = eol + 1;
    }
  }
  const Tokenizer gpt2 = Tokenizer::from_lists(tokens, merges, "test");
  CHECK(gpt2.same_as(Tokenizer::builtin()));
  CHECK(gpt2.encode("Hello world") == std::vector<int32_t>{15496, 995});
  std::vector<std::string> other = merges;
  std::swap(other[10], other[11]);
  const Tokenizer changed = Tokenizer::from_lists(tokens, other, "test");
  CHECK_FALSE(changed.same_as(Tokenizer::builtin()));
  CHECK_THROWS_WITH(Tokenizer::from_lists(tokens, {"a"}, "the file"), Catch::Contains("the file") && Catch::Contains("merge 0"));

  // Through ModelSource: a GGUF with the lists gives them back; one without gives none.
  test::GgufBuilder g;
  g.gpt2_keys(1, 16, 2, 8);
  g.add_str("tokenizer.ggml.model", "gpt2");
  g.add_strs("tokenizer.ggml.tokens", tokens);
  g.add_strs("tokenizer.ggml.merges", merges);
  g.add_tensor("token_embd.weight", {16, 50257}, 0, std::string(16 * 50257 * 4, '\0'));
  TempDir dir;
  write_text(dir.path + "/t.gguf", g.bytes());
  const TokenizerVocabulary v = ModelSource::parse(dir.path + "/t.gguf").tokenizer_vocabulary();
  CHECK(v.tokens == tokens);
  CHECK(v.merges == merges);
  CHECK(v.source.find(dir.path + "/t.gguf") != std::string::npos);
  CHECK(ModelSource::parse(kFormats + "f32.gguf").tokenizer_vocabulary().tokens.empty());
}

TEST_CASE("a PyTorch pickle is refused with one line that says to use model.safetensors") {
  TempDir dir;
  const std::vector<std::pair<std::string, std::string>> files = {
      {"pytorch_model.bin", std::string("\x80\x02}q\x00.", 6)},  // a protocol-2 pickle
      {"model.pt", std::string("PK\x03\x04rest of a zip", 18)},   // torch.save's zip
      {"weights.ckpt", "anything"},
  };
  for (const auto& [name, bytes] : files) {
    INFO(name);
    write_text(dir.path + "/" + name, bytes);
    try {
      ModelSource::parse(dir.path + "/" + name);
      FAIL("a pickle was accepted");
    } catch (const Error& e) {
      const std::string msg = e.what();
      CHECK(msg.find('\n') == std::string::npos);
      CHECK(msg.find(dir.path + "/" + name) != std::string::npos);
      CHECK(msg.find("pickle") != std::string::npos);
      CHECK(msg.find("run code") != std::string::npos);
      CHECK(msg.find("model.safetensors") != std::string::npos);
    }
  }
  // A directory that has only pytorch_model.bin says the same.
  write_text(dir.path + "/config.json", read_bytes(kData + "models/f32/config.json"));
  CHECK_THROWS_WITH(load_model(dir.path), Catch::Contains("pytorch_model.bin") && Catch::Contains("run code") &&
                                              Catch::Contains("model.safetensors"));
}
