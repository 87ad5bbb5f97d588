// Fuzz target: a structured round trip through the safetensors reader. The input describes
// tensors (names with quotes, backslashes, control and non-ASCII characters; every dtype the
// reader knows; 0 to 4 dimensions, zeros included; data bytes), metadata, the header's padding
// and the order and gaps of the data section; they are written as a safetensors file as the
// format specifies, read back with SafetensorsFile, and must come back exactly: the same names,
// dtypes, shapes, bytes and metadata, and no error.
#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "fuzz_util.h"
#include "model/safetensors.h"

using namespace gpt2;
using gpt2::fuzz::Input;

namespace {

const char* const kDtypes[] = {"BOOL", "U8",  "I8",  "F8_E4M3", "F8_E5M2", "I16", "U16", "F16",
                               "BF16", "I32", "U32", "F32", "I64",     "U64",     "F64"};

// A name from the input: ASCII bytes as they are (quotes, backslashes and control characters
// included, which JSON must escape), other bytes one of a few multi-byte UTF-8 characters.
std::string name_from(Input& in) {
  static const char* const kWide[] = {"\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "\xE4\xB8\xAD"};
  const size_t n = in.byte() % 12;
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t b = in.byte();
    if (b < 0x80) s += static_cast<char>(b);
    else s += kWide[b % 4];
  }
  return s;
}

struct Spec {
  std::string name, dtype;
  std::vector<int64_t> shape;
  std::string data;
  uint64_t begin = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  Input in(bytes, size);
  std::vector<Spec> specs;
  std::set<std::string> names;
  const size_t n_tensors = in.byte() % 9;
  for (size_t i = 0; i < n_tensors; ++i) {
    Spec s;
    s.name = name_from(in);
    s.dtype = kDtypes[in.byte() % (sizeof kDtypes / sizeof kDtypes[0])];
    const size_t rank = in.byte() % 5;
    int64_t numel = 1;
    for (size_t d = 0; d < rank; ++d) {
      s.shape.push_back(in.byte() % 8);
      numel *= s.shape.back();
    }
    const size_t nbytes = static_cast<size_t>(numel) * safetensors_dtype_size(s.dtype);
    s.data = in.bytes(nbytes);
    s.data.resize(nbytes, '\x5a');  // past the input: a fixed byte
    if (s.name == "__metadata__" || !names.insert(s.name).second) continue;  // JSON keys are unique
    specs.push_back(std::move(s));
  }
  std::map<std::string, std::string> metadata;
  const size_t n_meta = in.byte() % 3;
  for (size_t i = 0; i < n_meta; ++i) {
    const std::string key = name_from(in);
    metadata[key] = name_from(in);
  }

  // The data section: tensors in an order and with gaps from the input.
  std::vector<size_t> order(specs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[in.byte() % i]);
  std::string data;
  for (size_t i : order) {
    data.append(in.byte() % 4, '\0');
    specs[i].begin = data.size();
    data += specs[i].data;
  }

  nlohmann::json header = nlohmann::json::object();
  for (const Spec& s : specs)
    header[s.name] = {{"dtype", s.dtype}, {"shape", s.shape}, {"data_offsets", {s.begin, s.begin + s.data.size()}}};
  if (!metadata.empty() || in.byte() % 2) header["__metadata__"] = metadata;
  std::string text = header.dump();
  text.append(in.byte() % 8, ' ');  // writers pad the header with spaces (to 8 bytes, often)
  std::string file(8, '\0');
  for (int k = 0; k < 8; ++k) file[k] = static_cast<char>((uint64_t{text.size()} >> (8 * k)) & 0xFF);
  file += text;
  file += data;

  try {
    const SafetensorsFile st("roundtrip.safetensors", MappedFile::from_bytes(file));
    FUZZ_EXPECT(st.tensors().size() == specs.size());
    for (const Spec& s : specs) {
      const SafetensorsTensor* t = st.find(s.name);
      FUZZ_EXPECT(t != nullptr, s.name);
      FUZZ_EXPECT(t->dtype == s.dtype, s.name);
      FUZZ_EXPECT(t->shape == s.shape, s.name);
      FUZZ_EXPECT(t->nbytes == s.data.size(), s.name);
      FUZZ_EXPECT(std::memcmp(t->data, s.data.data(), t->nbytes) == 0, s.name);
    }
    FUZZ_EXPECT(st.metadata() == metadata);
  } catch (const Error& e) {
    fuzz::fail("a valid safetensors file was refused", e.what());
  }
  return 0;
}
