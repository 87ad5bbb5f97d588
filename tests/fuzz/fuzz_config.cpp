// Fuzz target: config.json (Config::from_json, src/model/config.cpp) and a sharded checkpoint's
// model.safetensors.index.json (parse_safetensors_index, src/model/loader.cpp), both on every
// input. Each is a gpt2::Error or a result that keeps the promises the loader relies on:
// positive sizes with n_embd divisible by n_head; shard names that are plain file names.
#include <string_view>

#include "common/error.h"
#include "fuzz_util.h"
#include "model/config.h"
#include "model/formats.h"

using namespace gpt2;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const Config c = Config::from_json(text, "config.json");
    FUZZ_EXPECT(c.n_vocab > 0 && c.n_ctx > 0 && c.n_embd > 0 && c.n_head > 0 && c.n_layer > 0);
    FUZZ_EXPECT(c.n_embd % c.n_head == 0);
    FUZZ_EXPECT(c.layer_norm_epsilon > 0.0f && c.layer_norm_epsilon <= 1.0f);
  } catch (const Error&) {
  }
  try {
    const auto weight_map = parse_safetensors_index(text, "model.safetensors.index.json");
    FUZZ_EXPECT(!weight_map.empty());
    for (const auto& [name, shard] : weight_map)
      FUZZ_EXPECT(!shard.empty() && shard.find('/') == std::string::npos && shard != "." && shard != "..", shard);
  } catch (const Error&) {
  }
  return 0;
}
