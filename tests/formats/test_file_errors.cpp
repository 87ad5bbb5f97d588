// Malformed GGUF and llm.c files are one-line errors naming the file (and the key or tensor),
// never a crash, a hang, a huge allocation or a read past the end: crafted files for each check,
// regression files for the published llama.cpp GGUF loader bugs, and a deterministic mini-fuzz
// of both readers (run under -fsanitize=address,undefined too: see tests/formats/README.md).
#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/log.h"
#include "formats_test_util.h"
#include "model/gguf.h"
#include "model/model_test_util.h"
#include "model/source.h"

using namespace gpt2;

namespace {

const std::string kFormats = std::string(GPT2_TEST_DATA) + "/formats/";

// Loads `bytes` written to a temporary file; returns the error message ("" when it loaded).
std::string load_error(const std::string& bytes, const std::string& name = "m.gguf") {
  TempDir dir;
  const std::string path = dir.path + "/" + name;
  write_text(path, bytes);
  try {
    LogCapture ignored;
    HostModel m = load_model(path);
    return "";
  } catch (const Error& e) {
    const std::string msg = e.what();
    if (msg.find('\n') != std::string::npos) return "MULTI-LINE: " + msg;
    if (msg.find(path) == std::string::npos) return "NO FILE NAME: " + msg;
    return msg;
  }
}

// A minimal valid GGUF GPT-2 (one layer, n_embd 32, vocab 8, 4 positions), to break one field at a
// time; epsilon_f64 > 0 writes layer_norm_epsilon as a FLOAT64 of that value.
test::GgufBuilder tiny_gguf(double epsilon_f64 = 0) {
  const uint64_t C = 32, V = 8, T = 4;
  test::GgufBuilder g;
  g.gpt2_keys(1, static_cast<int>(C), 2, static_cast<int>(T), epsilon_f64 == 0);
  if (epsilon_f64 > 0) g.add_f64("gpt2.attention.layer_norm_epsilon", epsilon_f64);
  auto f32 = [](uint64_t n) { return test::f32_bytes(std::vector<float>(n, 0.125f)); };
  g.add_tensor("token_embd.weight", {C, V}, 0, f32(C * V));
  g.add_tensor("position_embd.weight", {C, T}, 0, f32(C * T));
  for (const char* v : {"attn_norm.weight", "attn_norm.bias"}) g.add_tensor(std::string("blk.0.") + v, {C}, 0, f32(C));
  g.add_tensor("blk.0.attn_qkv.weight", {C, 3 * C}, 0, f32(3 * C * C));
  g.add_tensor("blk.0.attn_qkv.bias", {3 * C}, 0, f32(3 * C));
  g.add_tensor("blk.0.attn_output.weight", {C, C}, 0, f32(C * C));
  g.add_tensor("blk.0.attn_output.bias", {C}, 0, f32(C));
  for (const char* v : {"ffn_norm.weight", "ffn_norm.bias"}) g.add_tensor(std::string("blk.0.") + v, {C}, 0, f32(C));
  g.add_tensor("blk.0.ffn_up.weight", {C, 4 * C}, 0, f32(4 * C * C));
  g.add_tensor("blk.0.ffn_up.bias", {4 * C}, 0, f32(4 * C));
  g.add_tensor("blk.0.ffn_down.weight", {4 * C, C}, 0, f32(4 * C * C));
  g.add_tensor("blk.0.ffn_down.bias", {C}, 0, f32(C));
  g.add_tensor("output_norm.weight", {C}, 0, f32(C));
  g.add_tensor("output_norm.bias", {C}, 0, f32(C));
  return g;
}

test::GgufBuilder::Info& tensor(test::GgufBuilder& g, const std::string& name) {
  for (auto& t : g.tensors)
    if (t.name == name) return t;
  throw std::runtime_error("no tensor " + name);
}

}  // namespace

TEST_CASE("the crafted base file loads") { CHECK(load_error(tiny_gguf().bytes()).empty()); }

TEST_CASE("GGUF regression files for the published llama.cpp loader bugs") {
  SECTION("CVE-2024-21802: dimensions whose product overflows") {
    test::GgufBuilder g = tiny_gguf();
    tensor(g, "blk.0.ffn_up.weight").ne = {uint64_t{1} << 32, uint64_t{1} << 32, 4};
    const std::string e = load_error(g.bytes());
    INFO(e);
    CHECK(e.find("tensor 'blk.0.ffn_up.weight'") != std::string::npos);
    CHECK(e.find("overflow") != std::string::npos);
    tensor(g, "blk.0.ffn_up.weight").ne = {UINT64_MAX, 1};  // one dimension past int64
    CHECK(load_error(g.bytes()).find("overflow") != std::string::npos);
  }
  SECTION("CVE-2024-23605: a metadata count that cannot fit (n_kv overflow)") {
    test::GgufBuilder g = tiny_gguf();
    for (int64_t n : {int64_t{1} << 62, INT64_MAX, int64_t{0x0AAAAAAAAAAAAAAB}}) {  // * sizeof: wraps
      g.n_kv_override = n;
      const std::string e = load_error(g.bytes());
      INFO(e);
      CHECK(e.find("metadata count") != std::string::npos);
    }
    g.n_kv_override = -1;
    g.n_tensors_override = int64_t{1} << 61;
    CHECK(load_error(g.bytes()).find("tensor count") != std::string::npos);
  }
  SECTION("CVE-2025-53630: tensor sizes that accumulate past the file (and past 2^64)") {
    test::GgufBuilder g = tiny_gguf();
    // Each alone near 2^63 bytes: their sum (llama.cpp's ctx->size) wraps around.
    tensor(g, "blk.0.ffn_up.weight").ne = {uint64_t{1} << 30, uint64_t{1} << 31};
    tensor(g, "blk.0.ffn_up.weight").data.clear();
    tensor(g, "blk.0.ffn_down.weight").ne = {uint64_t{1} << 30, uint64_t{1} << 31};
    tensor(g, "blk.0.ffn_down.weight").data.clear();
    std::string e = load_error(g.bytes());
    INFO(e);
    CHECK(e.find("runs past the end of the data section") != std::string::npos);
    tensor(g, "blk.0.ffn_up.weight").ne = {uint64_t{1} << 31, uint64_t{1} << 31};  // 2^64 bytes of F32
    e = load_error(g.bytes());
    CHECK((e.find("too large") != std::string::npos || e.find("overflow") != std::string::npos));
  }
  SECTION("a zero dimension (a division by zero, SIGFPE, in llama.cpp's overflow check)") {
    test::GgufBuilder g = tiny_gguf();
    tensor(g, "blk.0.attn_qkv.weight").ne = {0, 96};
    std::string e = load_error(g.bytes());
    INFO(e);
    CHECK(e.find("tensor 'blk.0.attn_qkv.weight'") != std::string::npos);
    CHECK(e.find("dimension 0 is 0") != std::string::npos);
    tensor(g, "blk.0.attn_qkv.weight").ne = {32, 0};
    CHECK(load_error(g.bytes()).find("dimension 1 is 0") != std::string::npos);
  }
}

TEST_CASE("GGUF: every malformed header is named") {
  auto expect = [](const std::string& bytes, std::vector<std::string> parts) {
    const std::string e = load_error(bytes);
    INFO(e);
    CHECK_FALSE(e.empty());
    CHECK(e.find("MULTI-LINE") == std::string::npos);
    CHECK(e.find("NO FILE NAME") == std::string::npos);
    for (const std::string& p : parts) CHECK(e.find(p) != std::string::npos);
  };
  test::GgufBuilder g = tiny_gguf();
  const std::string good = g.bytes();
  SECTION("magic, version, size") {
    std::string b = good;
    b[0] = 'X';
    CHECK(load_error(b).find("neither GGUF nor") != std::string::npos);  // not recognized as GGUF at all
    test::GgufBuilder v = g;
    v.version = 1;
    expect(v.bytes(), {"version 1"});
    v.version = 0x03000000;
    expect(v.bytes(), {"big-endian"});
    v.version = 7;
    expect(v.bytes(), {"version 7"});
    expect(good.substr(0, 20), {"too short"});
  }
  SECTION("string and array lengths") {
    test::GgufBuilder s;
    s.key("general.architecture", 8);
    test::GgufBuilder::put_u64(s.kv, uint64_t{1} << 40);  // a 1 TB string
    expect(s.bytes(), {"exceeds"});
    test::GgufBuilder s2;
    s2.key("general.architecture", 8);
    test::GgufBuilder::put_u64(s2.kv, 1000);  // runs past the end
    s2.kv += "gpt2";
    expect(s2.bytes(), {"runs past the end"});
    test::GgufBuilder a;
    a.key("tokenizer.ggml.tokens", 9);
    test::GgufBuilder::put_u32(a.kv, 8);
    test::GgufBuilder::put_u64(a.kv, uint64_t{1} << 60);
    expect(a.bytes(), {"key 'tokenizer.ggml.tokens'", "cannot fit"});
    test::GgufBuilder a2;
    a2.key("x", 9);
    test::GgufBuilder::put_u32(a2.kv, 5);
    test::GgufBuilder::put_u64(a2.kv, uint64_t{1} << 62);  // * 4 bytes wraps
    expect(a2.bytes(), {"key 'x'", "past the end"});
    test::GgufBuilder n;
    n.key("x", 9);
    test::GgufBuilder::put_u32(n.kv, 9);
    test::GgufBuilder::put_u64(n.kv, 1);
    expect(n.bytes(), {"key 'x'", "arrays of arrays"});
    test::GgufBuilder u;
    u.key("x", 13);
    expect(u.bytes(), {"key 'x'", "unknown value type 13"});
  }
  SECTION("duplicate keys and tensors, alignment") {
    test::GgufBuilder d = g;
    d.add_u32("gpt2.block_count", 1);
    expect(d.bytes(), {"key 'gpt2.block_count'", "twice"});
    test::GgufBuilder t = g;
    t.tensors.push_back(t.tensors[2]);
    expect(t.bytes(), {"tensor 'blk.0.attn_norm.weight'", "twice"});
    test::GgufBuilder al = g;
    al.add_u32("general.alignment", 24);
    expect(al.bytes(), {"general.alignment", "power of two"});
    test::GgufBuilder mis = g;
    tensor(mis, "output_norm.bias").offset = 4;
    expect(mis.bytes(), {"tensor 'output_norm.bias'", "not a multiple of the alignment"});
  }
  SECTION("tensor types, shapes and bytes") {
    test::GgufBuilder t = g;
    tensor(t, "blk.0.ffn_up.weight").type = 16;
    expect(t.bytes(), {"tensor 'blk.0.ffn_up.weight'", "IQ2_XXS", "does not read"});
    tensor(t, "blk.0.ffn_up.weight").type = 99;
    expect(t.bytes(), {"tensor 'blk.0.ffn_up.weight'", "unknown tensor type id 99"});
    test::GgufBuilder b = g;
    tensor(b, "blk.0.ffn_up.weight").type = 12;  // Q4_K: rows of 32 are not whole 256-value blocks
    expect(b.bytes(), {"tensor 'blk.0.ffn_up.weight'", "Q4_K", "256-value blocks"});
    test::GgufBuilder dims = g;
    tensor(dims, "output_norm.bias").ne = {1, 1, 1, 1, 32};
    expect(dims.bytes(), {"tensor 'output_norm.bias'", "5 dimensions"});
    test::GgufBuilder shape = g;
    tensor(shape, "blk.0.attn_qkv.weight").ne = {96, 32};  // [3C, C]: transposed
    expect(shape.bytes(), {"tensor 'blk.0.attn_qkv.weight'", "[96, 32]", "[32, 96]"});
    test::GgufBuilder over = g;
    tensor(over, "output_norm.bias").offset = 0;  // inside token_embd.weight
    expect(over.bytes(), {"overlaps", "'token_embd.weight'"});
    expect(good.substr(0, good.size() - 64), {"tensor 'output_norm.bias'", "past the end of the data section"});
  }
  SECTION("metadata that is not GPT-2's") {
    test::GgufBuilder a;
    a.add_str("general.architecture", "llama");
    expect(a.bytes(), {"architecture 'llama'", "GPT-2"});
    test::GgufBuilder missing;
    missing.add_str("general.architecture", "gpt2");
    expect(missing.bytes(), {"key 'gpt2.block_count' is missing"});
    test::GgufBuilder ff = tiny_gguf();
    ff.kv.clear(), ff.n_kv = 0;
    ff.gpt2_keys(1, 32, 2, 4);
    ff.add_str("x", "y");
    CHECK(load_error(ff.bytes()).empty());
    test::GgufBuilder layers = tiny_gguf();
    layers.add_tensor("blk.1.attn_norm.weight", {32}, 0, test::f32_bytes(std::vector<float>(32)));
    expect(layers.bytes(), {"tensor 'blk.1.attn_norm.weight'", "layer 1", "block_count"});
    test::GgufBuilder lost = tiny_gguf();
    lost.tensors.erase(lost.tensors.begin() + 5);
    expect(lost.bytes(), {"is missing"});
    // A FLOAT64 epsilon is read as it is written; one that is positive but 0 as a float (the hole
    // fuzz_config found in config.json) is refused, one that a float holds is taken.
    expect(tiny_gguf(1e-50).bytes(), {"layer_norm_epsilon", "small positive"});
    CHECK(load_error(tiny_gguf(1e-6).bytes()).empty());
  }
  // Found while writing tests/fuzz/fuzz_gguf (corpus/fuzz_gguf/block-count-2e24): a block_count of millions
  // over one block's tensors built the per-layer tables (gigabytes, minutes) before any tensor
  // was found missing. Now the first missing tensor is named at once.
  SECTION("a block_count far beyond the tensors in the file") {
    for (uint32_t n_layer : {2u, 1u << 24, 1u << 30}) {
      test::GgufBuilder deep = tiny_gguf();
      deep.kv.clear(), deep.n_kv = 0;
      deep.gpt2_keys(static_cast<int>(n_layer), 32, 2, 4);
      expect(deep.bytes(), {"tensor 'blk.1.attn_norm.weight' is missing", "block_count is " + std::to_string(n_layer)});
    }
  }
}

TEST_CASE("GGUF mini-fuzz: corrupted headers and truncations never crash") {
  // 400 single-byte edits in the header (the bytes before the data section: counts, lengths,
  // types, dimensions, offsets) and 60 truncations of a real fixture, each loaded from scratch.
  const std::string good = read_bytes(kFormats + "f32.gguf");
  const size_t data_start = static_cast<size_t>(GgufFile(kFormats + "f32.gguf").data_start());
  REQUIRE(data_start > 1000);
  uint64_t state = 4242;
  auto next = [&] {
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    return state;
  };
  int loaded = 0, rejected = 0;
  for (int trial = 0; trial < 460; ++trial) {
    std::string bytes = good;
    if (trial < 400) {
      const size_t at = next() % data_start;
      const uint64_t r = next();
      bytes[at] = (trial % 4 == 0) ? static_cast<char>(r & 0xff) : static_cast<char>(bytes[at] ^ (1 << (r % 8)));
    } else {
      bytes.resize(next() % bytes.size());
    }
    const std::string e = load_error(bytes);
    if (e.empty()) {
      ++loaded;
    } else {
      ++rejected;
      if (e.find("MULTI-LINE") != std::string::npos || e.find("NO FILE NAME") != std::string::npos)
        FAIL("trial " << trial << ": " << e);
    }
  }
  CHECK(loaded + rejected == 460);
  CHECK(rejected > 200);
}

TEST_CASE("llm.c: malformed checkpoints are named") {
  const std::string good = read_bytes(kFormats + "f32.bin");
  auto with_int = [&](int index, int32_t value) {
    std::string b = good;
    std::memcpy(&b[static_cast<size_t>(index) * 4], &value, 4);
    return b;
  };
  auto expect = [](const std::string& bytes, std::vector<std::string> parts) {
    const std::string e = load_error(bytes, "m.bin");
    INFO(e);
    CHECK_FALSE(e.empty());
    CHECK(e.find("MULTI-LINE") == std::string::npos);
    CHECK(e.find("NO FILE NAME") == std::string::npos);
    for (const std::string& p : parts) CHECK(e.find(p) != std::string::npos);
  };
  CHECK(load_error(good, "m.bin").empty());
  expect(with_int(1, 4), {"version 4"});
  expect(with_int(1, 1), {"version 1"});
  expect(good.substr(0, good.size() - 4), {"truncated"});
  expect(good + "x", {"trailing bytes"});
  expect(good.substr(0, 1000), {"too short"});
  expect(with_int(4, 0), {"num_layers is 0"});
  expect(with_int(6, 47), {"channels 47", "num_heads"});
  expect(with_int(7, 100), {"padded_vocab_size 100", "below vocab_size"});
  expect(with_int(4, 1 << 24), {"bytes, but the file has"});  // 2^24 layers: sizes do not overflow, the file is short
  expect(with_int(2, -5), {"maxT is -5"});
}

TEST_CASE("llm.c mini-fuzz: random header values and truncations never crash") {
  const std::string good = read_bytes(kFormats + "bf16.bin");
  uint64_t state = 99;
  auto next = [&] {
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    return state;
  };
  int rejected = 0;
  for (int trial = 0; trial < 200; ++trial) {
    std::string bytes = good;
    if (trial < 160) {
      const int index = 1 + static_cast<int>(next() % 8);
      const uint64_t r = next();
      const int32_t v = trial % 2 ? static_cast<int32_t>(r) : static_cast<int32_t>(r % 2048) - 16;
      std::memcpy(&bytes[static_cast<size_t>(index) * 4], &v, 4);
    } else {
      bytes.resize(next() % bytes.size());
    }
    const std::string e = load_error(bytes, "m.bin");
    if (!e.empty()) ++rejected;
    if (e.find("MULTI-LINE") != std::string::npos || e.find("NO FILE NAME") != std::string::npos)
      FAIL("trial " << trial << ": " << e);
  }
  CHECK(rejected > 150);
}
