// Fuzz target: the llm.c checkpoint reader (src/model/llmc.cpp) on raw bytes: the header's
// hyper-parameters and the whole load, each a gpt2::Error or a model (whose sizes the file's
// length then matched exactly).
#include <string_view>

#include "common/error.h"
#include "common/thread_pool.h"
#include "fuzz_util.h"
#include "model/formats.h"
#include "model/host_model.h"
#include "model/safetensors.h"  // MappedFile

using namespace gpt2;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ThreadPool pool(1);
  const MappedFile file = MappedFile::from_bytes({reinterpret_cast<const char*>(data), size});
  try {
    const Config c = llmc_config("fuzz.bin", file);
    FUZZ_EXPECT(c.n_embd % c.n_head == 0);
  } catch (const Error&) {
  }
  try {
    const HostModel m = load_llmc("fuzz.bin", file, pool);
    (void)m;
  } catch (const Error&) {
  }
  return 0;
}
