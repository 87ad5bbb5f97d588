// Safetensors reader (see safetensors.h). Every check happens in the constructor, before the
// caller can touch a tensor, so a corrupt or truncated file is one gpt2::Error and never a
// read outside the mapping.
#include "model/safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "common/error.h"

namespace gpt2 {

// ---- MappedFile ----------------------------------------------------------------

MappedFile::MappedFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open '" + path + "': " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw Error("cannot stat '" + path + "': " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error("'" + path + "' is not a regular file");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {  // mmap of length 0 is an error; an empty file is reported by the caller
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      throw Error("cannot map '" + path + "': " + std::strerror(err));
    }
    data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);  // the mapping keeps the file alive
}

MappedFile MappedFile::from_bytes(std::string_view bytes) {
  MappedFile f;
  f.size_ = bytes.size();
  if (f.size_ > 0) {  // an exact-size copy: a read past the end is a read past the allocation
    f.owned_.reset(new uint8_t[f.size_]);
    std::memcpy(f.owned_.get(), bytes.data(), f.size_);
    f.data_ = f.owned_.get();
  }
  return f;
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      owned_(std::move(other.owned_)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    if (data_ && !owned_) ::munmap(const_cast<uint8_t*>(data_), size_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    owned_ = std::move(other.owned_);
  }
  return *this;
}

MappedFile::~MappedFile() {
  if (data_ && !owned_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

// ---- SafetensorsFile -------------------------------------------------------------

int64_t SafetensorsTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

size_t safetensors_dtype_size(const std::string& dtype) {
  static const std::pair<const char*, size_t> kSizes[] = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"I16", 2}, {"U16", 2},
      {"F16", 2},  {"BF16", 2}, {"I32", 4}, {"U32", 4},     {"F32", 4},     {"I64", 8}, {"U64", 8},
      {"F64", 8}};
  for (const auto& [name, size] : kSizes)
    if (dtype == name) return size;
  return 0;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

namespace {

using nlohmann::json;

// A JSON number that is a non-negative integer small enough for every later product.
bool as_count(const json& v, uint64_t limit, uint64_t* out) {
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
  } else if (v.is_number_integer()) {
    if (v.get<int64_t>() < 0) return false;
    *out = static_cast<uint64_t>(v.get<int64_t>());
  } else {
    return false;
  }
  return *out <= limit;
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path) : SafetensorsFile(path, MappedFile(path)) {}

SafetensorsFile::SafetensorsFile(const std::string& path, MappedFile bytes) : path_(path), file_(std::move(bytes)) {
  const size_t size = file_.size();
  if (size < 8)
    throw Error(path + ": file is " + std::to_string(size) +
                " bytes, too short for a safetensors header (truncated download?)");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | file_.data()[i];  // little-endian
  // The format caps the header at 100 MB; a larger length is corruption, not a model to parse.
  if (header_len > 100'000'000)
    throw Error(path + ": header length " + std::to_string(header_len) +
                " exceeds the safetensors limit of 100 MB (corrupt or not a safetensors file)");
  if (header_len > size - 8)
    throw Error(path + ": header length " + std::to_string(header_len) + " runs past the end of the file (" +
                std::to_string(size) + " bytes; truncated or not a safetensors file)");
  const char* header_begin = reinterpret_cast<const char*>(file_.data() + 8);
  json header;
  try {
    header = json::parse(header_begin, header_begin + header_len);
  } catch (const json::exception& e) {
    throw Error(path + ": header is not valid JSON (" + e.what() + ")");
  }
  if (!header.is_object()) throw Error(path + ": header is not a JSON object");

  const uint8_t* data_section = file_.data() + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;
  constexpr uint64_t kMaxDim = uint64_t{1} << 40;

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& entry = it.value();
    const std::string where = path + ": tensor '" + name + "'";
    if (name == "__metadata__") {
      if (!entry.is_object()) throw Error(path + ": \"__metadata__\" is not a JSON object");
      for (auto m = entry.begin(); m != entry.end(); ++m)
        if (m.value().is_string()) metadata_[m.key()] = m.value().get<std::string>();
      continue;
    }
    if (!entry.is_object()) throw Error(where + ": header entry is not a JSON object");
    auto dtype = entry.find("dtype");
    auto shape = entry.find("shape");
    auto offsets = entry.find("data_offsets");
    if (dtype == entry.end() || !dtype->is_string()) throw Error(where + ": missing or non-string \"dtype\"");
    if (shape == entry.end() || !shape->is_array()) throw Error(where + ": missing or non-array \"shape\"");
    if (offsets == entry.end() || !offsets->is_array() || offsets->size() != 2)
      throw Error(where + ": \"data_offsets\" must be [begin, end]");

    SafetensorsTensor t;
    t.name = name;
    t.dtype = dtype->get<std::string>();
    const size_t elem = safetensors_dtype_size(t.dtype);
    if (elem == 0) throw Error(where + ": unknown dtype \"" + t.dtype + "\"");

    uint64_t numel = 1;
    for (const json& d : *shape) {
      uint64_t dim = 0;
      if (!as_count(d, kMaxDim, &dim)) throw Error(where + ": shape " + shape->dump() + " is not a list of sizes");
      t.shape.push_back(static_cast<int64_t>(dim));
      if (dim != 0 && numel > (kMaxDim << 8) / dim) throw Error(where + ": shape " + shape->dump() + " is too large");
      numel *= dim;
    }
    uint64_t begin = 0, end = 0;
    if (!as_count((*offsets)[0], UINT64_MAX, &begin) || !as_count((*offsets)[1], UINT64_MAX, &end) || begin > end)
      throw Error(where + ": \"data_offsets\" " + offsets->dump() + " are not [begin, end] with begin <= end");
    if (end > data_size)
      throw Error(where + ": data_offsets " + offsets->dump() + " run past the end of the data section (" +
                  std::to_string(data_size) + " bytes; file truncated or corrupt)");
    if (end - begin != numel * elem)
      throw Error(where + ": data_offsets " + offsets->dump() + " hold " + std::to_string(end - begin) +
                  " bytes but " + t.dtype + " " + shape_string(t.shape) + " needs " + std::to_string(numel * elem));
    t.data = data_section + begin;
    t.nbytes = static_cast<size_t>(end - begin);
    index_[name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }

  // No two tensors may share bytes: sort by start and compare each with its predecessor.
  std::vector<const SafetensorsTensor*> order;
  for (const SafetensorsTensor& t : tensors_)
    if (t.nbytes > 0) order.push_back(&t);
  std::sort(order.begin(), order.end(),
            [](const SafetensorsTensor* a, const SafetensorsTensor* b) { return a->data < b->data; });
  for (size_t i = 1; i < order.size(); ++i) {
    if (order[i]->data < order[i - 1]->data + order[i - 1]->nbytes)
      throw Error(path + ": tensor '" + order[i]->name + "' overlaps tensor '" + order[i - 1]->name +
                  "' in the data section (corrupt file)");
  }
}

const SafetensorsTensor* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace gpt2
