// Safetensors reader: a memory-mapped file whose header is validated before any tensor is used.
//
// Format (https://huggingface.co/docs/safetensors): 8 bytes little-endian N, then N bytes of
// JSON {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
// "__metadata__": {str: str}}, then the data section; offsets are relative to its start.
// Checked on open, each failure a gpt2::Error "<file>: ..." naming the tensor: the header length
// fits the file, the header is a JSON object, every entry has a known dtype, a shape of
// non-negative integers and offsets inside the data section whose length matches the shape,
// and no two tensors overlap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace gpt2 {

// Read-only mmap of a whole file; move-only, unmapped on destruction. from_bytes holds a copy
// of bytes already in memory instead, so the readers below validate bytes that never were a
// file (tests, fuzzers) through the very code that validates files.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // throws gpt2::Error naming the file
  static MappedFile from_bytes(std::string_view bytes);
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::unique_ptr<uint8_t[]> owned_;  // from_bytes: the copy data_ points into (nothing mapped)
};

struct SafetensorsTensor {
  std::string name;
  std::string dtype;           // as in the file: "F32", "F16", "BF16", "I64", ...
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // inside the mapping; not aligned in general
  size_t nbytes = 0;
  int64_t numel() const;
};

// Bytes per element of a safetensors dtype name; 0 when the name is unknown.
size_t safetensors_dtype_size(const std::string& dtype);

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);  // maps and validates; throws gpt2::Error
  // Validates bytes already opened or held; errors name the file as `path`.
  SafetensorsFile(const std::string& path, MappedFile bytes);

  const std::string& path() const { return path_; }
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }  // in file order
  const SafetensorsTensor* find(const std::string& name) const;               // nullptr if absent
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::string path_;
  MappedFile file_;
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// "[768, 2304]"
std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace gpt2
