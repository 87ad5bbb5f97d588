// Fuzz target: the safetensors reader (src/model/safetensors.cpp) on raw bytes. Every input is
// either a gpt2::Error or a file whose every tensor lies inside the input (each byte is read, so
// ASan sees a read past the copy), with the size its dtype and shape imply, no two overlapping.
#include <algorithm>
#include <cstring>
#include <string_view>

#include "common/error.h"
#include "fuzz_util.h"
#include "model/safetensors.h"

using namespace gpt2;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const SafetensorsFile file("fuzz.safetensors", MappedFile::from_bytes({reinterpret_cast<const char*>(data), size}));
    std::vector<std::pair<const uint8_t*, size_t>> spans;
    for (const SafetensorsTensor& t : file.tensors()) {
      FUZZ_EXPECT(file.find(t.name) == &t, t.name);
      const size_t elem = safetensors_dtype_size(t.dtype);
      FUZZ_EXPECT(elem > 0, t.dtype);
      FUZZ_EXPECT(t.nbytes == static_cast<size_t>(t.numel()) * elem, t.name);
      unsigned sum = 0;
      for (size_t i = 0; i < t.nbytes; ++i) sum += t.data[i];
      (void)sum;
      if (t.nbytes > 0) spans.emplace_back(t.data, t.nbytes);
    }
    std::sort(spans.begin(), spans.end());
    for (size_t i = 1; i < spans.size(); ++i) FUZZ_EXPECT(spans[i - 1].first + spans[i - 1].second <= spans[i].first);
    for (const auto& [key, value] : file.metadata()) (void)key.size(), (void)value.size();
  } catch (const Error&) {
  }
  return 0;
}
