// GPT-2 hyper-parameters: the five published sizes, and Hugging Face's config.json.
//
// config.json fields read (Hugging Face GPT2Config names, with their defaults):
//   vocab_size 50257, n_positions 1024 (older files: n_ctx), n_embd 768, n_head 12,
//   n_layer 12, layer_norm_epsilon 1e-5, n_inner null (= 4 * n_embd),
//   activation_function "gelu_new".
// Fields that would change the architecture this engine implements are checked, so a
// checkpoint that is not plain GPT-2 fails with a clear message instead of giving
// silently different numbers: n_inner must be 4 * n_embd, scale_attn_weights true,
// scale_attn_by_inverse_layer_idx false, add_cross_attention false, model_type "gpt2".
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/files.h"
#include "model/config.h"

namespace gpt2 {

namespace {

using nlohmann::json;

// Reads an optional positive integer field; absent or null keeps the default.
int read_size(const json& j, const char* key, int fallback, const std::string& path) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_number_integer())
    throw Error(path + ": \"" + key + "\" must be an integer, got " + it->dump());
  const int64_t v = it->get<int64_t>();
  if (v <= 0 || v > (int64_t{1} << 30))
    throw Error(path + ": \"" + key + "\" must be a positive integer, got " + std::to_string(v));
  return static_cast<int>(v);
}

bool read_bool(const json& j, const char* key, bool fallback, const std::string& path) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) throw Error(path + ": \"" + key + "\" must be true or false, got " + it->dump());
  return it->get<bool>();
}

}  // namespace

Config Config::preset(const std::string& name) {
  Config c;  // gpt2 (124M): the defaults
  if (name == "gpt2") {
  } else if (name == "gpt2-medium") {
    c.n_layer = 24, c.n_embd = 1024, c.n_head = 16;
  } else if (name == "gpt2-large") {
    c.n_layer = 36, c.n_embd = 1280, c.n_head = 20;
  } else if (name == "gpt2-xl") {
    c.n_layer = 48, c.n_embd = 1600, c.n_head = 25;
  } else if (name == "distilgpt2") {
    c.n_layer = 6;
  } else {
    throw Error("unknown model size '" + name +
                "' (known: gpt2, gpt2-medium, gpt2-large, gpt2-xl, distilgpt2)");
  }
  return c;
}

Config Config::from_json_file(const std::string& path) { return from_json(read_file(path), path); }

Config Config::from_json(std::string_view text, const std::string& path) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(path + ": not valid JSON (" + e.what() + ")");
  }
  if (!j.is_object()) throw Error(path + ": expected a JSON object");

  Config c;
  c.n_vocab = read_size(j, "vocab_size", c.n_vocab, path);
  // n_positions is the size of wpe; very old configs carry only n_ctx (the same number).
  c.n_ctx = read_size(j, "n_ctx", c.n_ctx, path);
  c.n_ctx = read_size(j, "n_positions", c.n_ctx, path);
  c.n_embd = read_size(j, "n_embd", c.n_embd, path);
  c.n_head = read_size(j, "n_head", c.n_head, path);
  c.n_layer = read_size(j, "n_layer", c.n_layer, path);

  if (auto it = j.find("layer_norm_epsilon"); it != j.end() && !it->is_null()) {
    if (!it->is_number()) throw Error(path + ": \"layer_norm_epsilon\" must be a number, got " + it->dump());
    const double eps = it->get<double>();
    if (!valid_layer_norm_epsilon(eps))
      throw Error(path + ": \"layer_norm_epsilon\" must be a small positive number, got " + it->dump());
    c.layer_norm_epsilon = static_cast<float>(eps);
  }

  if (auto it = j.find("activation_function"); it != j.end() && !it->is_null()) {
    // gelu_pytorch_tanh is the same tanh approximation under a newer name.
    if (!it->is_string() || (*it != "gelu_new" && *it != "gelu_pytorch_tanh"))
      throw Error(path + ": \"activation_function\" is " + it->dump() +
                  "; only GPT-2's \"gelu_new\" (tanh approximation) is supported");
  }
  if (auto it = j.find("model_type"); it != j.end() && !it->is_null()) {
    if (!it->is_string() || *it != "gpt2")
      throw Error(path + ": \"model_type\" is " + it->dump() + "; this engine runs GPT-2 (\"gpt2\") models");
  }
  // In 64 bits: n_embd may be up to 2^30 here (the weights' shapes are checked later).
  const int64_t four_embd = int64_t{4} * c.n_embd;
  const int n_inner = read_size(j, "n_inner", 0, path);  // 0: absent or null, i.e. 4 * n_embd
  if (n_inner != 0 && n_inner != four_embd)
    throw Error(path + ": \"n_inner\" is " + std::to_string(n_inner) + "; only 4 * n_embd (" +
                std::to_string(four_embd) + ") is supported");
  if (!read_bool(j, "scale_attn_weights", true, path))
    throw Error(path + ": \"scale_attn_weights\" is false; only GPT-2's 1/sqrt(head_dim) scaling is supported");
  if (read_bool(j, "scale_attn_by_inverse_layer_idx", false, path))
    throw Error(path + ": \"scale_attn_by_inverse_layer_idx\" is true; not supported");
  if (read_bool(j, "add_cross_attention", false, path))
    throw Error(path + ": \"add_cross_attention\" is true; only decoder-only GPT-2 is supported");

  if (c.n_embd % c.n_head != 0)
    throw Error(path + ": n_embd " + std::to_string(c.n_embd) + " is not divisible by n_head " +
                std::to_string(c.n_head));
  return c;
}

bool valid_layer_norm_epsilon(double eps) {
  return eps > 0.0 && eps <= 1.0 && static_cast<float>(eps) >= std::numeric_limits<float>::min();
}

}  // namespace gpt2
