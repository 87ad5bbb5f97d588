// GGUF reader: a memory-mapped file whose header is validated before any value or tensor is used.
//
// Format (ggml docs/gguf.md; versions 2 and 3, little-endian): "GGUF", u32 version, u64
// n_tensors, u64 n_kv; n_kv pairs (string key, u32 value type, value); n_tensors tensor infos
// (string name, u32 n_dims, u64 ne[n_dims] (ne[0] the contiguous dimension), u32 ggml type,
// u64 offset); padding to general.alignment (default 32); the data section, each tensor at its
// offset (a multiple of the alignment). A string is u64 length + bytes; an array is u32 element
// type + u64 count + the elements.
//
// Checked on open, each failure a gpt2::Error "<file>: ..." naming the key or tensor at fault,
// before anything is allocated from a count read in the file:
//   the magic, the version (1 and big-endian files are refused by name);
//   n_kv and n_tensors against the bytes left (a count that cannot fit is refused before any
//     allocation: CVE-2024-23605's n_kv overflow), every string and array length likewise;
//   value types known, nested arrays refused, keys and tensor names unique;
//   general.alignment a u32 power of two;
//   every tensor: 1 to 4 dimensions, none zero (a zero dimension made llama.cpp divide by zero),
//     their product and its byte size without overflow (CVE-2024-21802), a known and supported
//     type (the error names it), ne[0] a whole number of blocks, the offset aligned, the bytes
//     inside the data section, no two tensors overlapping (so sizes never accumulate past the
//     file: CVE-2025-53630).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "model/ggml_blocks.h"
#include "model/safetensors.h"  // MappedFile

namespace gpt2 {

enum class GgufValueType : uint32_t {
  u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7, string = 8, array = 9,
  u64 = 10, i64 = 11, f64 = 12,
};
const char* gguf_value_type_name(GgufValueType type);

// One metadata value, pointing into the mapping (validated, so every read stays inside it).
struct GgufValue {
  GgufValueType type;
  GgufValueType elem_type;  // arrays: the element type
  uint64_t count = 1;       // arrays: the number of elements
  const uint8_t* data;      // the value (strings: the u64 length first; arrays: the first element)
};

struct GgufTensor {
  std::string name;
  std::vector<int64_t> ne;  // ne[0] is the contiguous dimension
  GgmlType type;
  const GgmlTypeInfo* info;
  uint64_t offset = 0;      // in the data section
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
  int64_t numel() const;
  std::string shape() const;  // "[768, 2304]" in GGUF's order (ne[0] first)
};

class GgufFile {
 public:
  explicit GgufFile(const std::string& path);  // maps and validates; throws gpt2::Error
  // Validates bytes already opened or held; errors name the file as `path`.
  GgufFile(const std::string& path, MappedFile bytes);

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_start() const { return data_start_; }  // where the data section begins in the file
  const std::vector<GgufTensor>& tensors() const { return tensors_; }  // in file order
  const GgufTensor* find(const std::string& name) const;               // nullptr if absent
  const GgufValue* value(const std::string& key) const;                // nullptr if absent
  const std::vector<std::string>& keys() const { return keys_; }        // in file order

  // Typed reads of a present key; a value of another type is a gpt2::Error naming the key.
  // An unsigned or signed integer of any width (negative values refused).
  uint64_t get_uint(const std::string& key) const;
  double get_float(const std::string& key) const;  // f32 or f64
  std::string get_string(const std::string& key) const;
  std::vector<std::string> get_string_array(const std::string& key) const;

 private:
  std::string path_;
  MappedFile file_;
  uint32_t version_ = 0;
  uint32_t alignment_ = 32;
  uint64_t data_start_ = 0;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t> tensor_index_;
  std::map<std::string, GgufValue> values_;
  std::vector<std::string> keys_;
};

}  // namespace gpt2
