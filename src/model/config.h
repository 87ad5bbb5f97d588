// GPT-2 hyper-parameters, named as in Hugging Face's config.json.
#pragma once

#include <string>
#include <string_view>

namespace gpt2 {

struct Config {
  int n_vocab = 50257;   // config.json "vocab_size"
  int n_ctx = 1024;      // "n_positions" (learned positions)
  int n_embd = 768;
  int n_head = 12;
  int n_layer = 12;
  float layer_norm_epsilon = 1e-5f;

  int head_dim() const { return n_embd / n_head; }

  // Reads config.json; missing optional fields keep GPT-2 defaults. Throws gpt2::Error
  // naming the file for unreadable JSON, wrong types, or inconsistent values
  // (n_embd not divisible by n_head, non-positive sizes, activation other than gelu_new).
  static Config from_json_file(const std::string& path);
  // The same for config.json's text already read; errors name it as `path`.
  static Config from_json(std::string_view text, const std::string& path);

  // "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "distilgpt2"; throws for other names.
  static Config preset(const std::string& name);
};

// Whether `eps` can be layer_norm_epsilon: in (0, 1], and still a positive normal float (at least
// 1.2e-38) once stored as the float the kernels add to the variance (1e-50 would become 0, and a
// constant row would then divide by zero). config.json and GGUF files are both checked with it.
bool valid_layer_norm_epsilon(double eps);

}  // namespace gpt2
