// Fuzz target: the GGUF reader (src/model/gguf.cpp) and the GPT-2 loader on it
// (src/model/gguf_loader.cpp) on raw bytes. Opening is a gpt2::Error or a file whose every value
// reads back through its typed getter and whose every tensor lies inside the input (each byte is
// read, so ASan sees a read past the copy); then the hyper-parameters, the vocabulary (and a
// tokenizer built from it) and the whole model load, each a gpt2::Error or a result.
#include <cstring>
#include <string_view>

#include "common/error.h"
#include "common/thread_pool.h"
#include "fuzz_util.h"
#include "model/formats.h"
#include "model/gguf.h"
#include "model/host_model.h"
#include "tokenizer/tokenizer.h"

using namespace gpt2;

namespace {

void read_value(const GgufFile& f, const std::string& key, const GgufValue& v) {
  try {
    switch (v.type) {
      case GgufValueType::f32:
      case GgufValueType::f64: (void)f.get_float(key); break;
      case GgufValueType::string: (void)f.get_string(key); break;
      case GgufValueType::array:
        if (v.elem_type == GgufValueType::string) (void)f.get_string_array(key);
        break;
      case GgufValueType::boolean: break;
      default: (void)f.get_uint(key); break;  // negative values are an error
    }
  } catch (const Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ThreadPool pool(1);
  try {
    const GgufFile f("fuzz.gguf", MappedFile::from_bytes({reinterpret_cast<const char*>(data), size}));
    for (const std::string& key : f.keys()) {
      const GgufValue* v = f.value(key);
      FUZZ_EXPECT(v != nullptr, key);
      read_value(f, key, *v);
    }
    for (const GgufTensor& t : f.tensors()) {
      FUZZ_EXPECT(f.find(t.name) == &t, t.name);
      FUZZ_EXPECT(t.offset % f.alignment() == 0, t.name);
      unsigned sum = 0;
      for (size_t i = 0; i < t.nbytes; ++i) sum += t.data[i];
      (void)sum;
    }
    try {
      (void)gguf_config(f);
    } catch (const Error&) {
    }
    try {
      const TokenizerVocabulary v = gguf_vocabulary(f);
      if (!v.tokens.empty()) (void)Tokenizer::from_lists(v.tokens, v.merges, v.source);
    } catch (const Error&) {
    }
    try {
      const HostModel m = load_gguf(f, pool);
      (void)m;
    } catch (const Error&) {
    }
  } catch (const Error&) {
  }
  return 0;
}
