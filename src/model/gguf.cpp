// GGUF reader (see gguf.h). Every check happens in the constructor, before the caller can touch
// a value or a tensor, so a corrupt, truncated or hostile file is one gpt2::Error and never a
// read outside the mapping or an allocation sized by an unchecked count.
#include "model/gguf.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "common/error.h"

namespace gpt2 {

const char* gguf_value_type_name(GgufValueType type) {
  switch (type) {
    case GgufValueType::u8: return "uint8";
    case GgufValueType::i8: return "int8";
    case GgufValueType::u16: return "uint16";
    case GgufValueType::i16: return "int16";
    case GgufValueType::u32: return "uint32";
    case GgufValueType::i32: return "int32";
    case GgufValueType::f32: return "float32";
    case GgufValueType::boolean: return "bool";
    case GgufValueType::string: return "string";
    case GgufValueType::array: return "array";
    case GgufValueType::u64: return "uint64";
    case GgufValueType::i64: return "int64";
    case GgufValueType::f64: return "float64";
  }
  return "?";
}

int64_t GgufTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;  // checked on open: no overflow
  return n;
}

std::string GgufTensor::shape() const { return shape_string(ne); }

namespace {

constexpr uint64_t kMaxKeyBytes = 65535;          // the format's limit for keys
constexpr uint64_t kMaxStringBytes = uint64_t{1} << 30;  // far above any real value
constexpr uint32_t kMaxDims = 4;                  // GGML_MAX_DIMS

// Bytes of one element of a scalar value type; 0 for string and array.
size_t scalar_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::u8:
    case GgufValueType::i8:
    case GgufValueType::boolean: return 1;
    case GgufValueType::u16:
    case GgufValueType::i16: return 2;
    case GgufValueType::u32:
    case GgufValueType::i32:
    case GgufValueType::f32: return 4;
    case GgufValueType::u64:
    case GgufValueType::i64:
    case GgufValueType::f64: return 8;
    case GgufValueType::string:
    case GgufValueType::array: return 0;
  }
  return 0;
}

bool known_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufValueType::f64); }

// A bounds-checked little-endian cursor over the mapping.
class Cursor {
 public:
  Cursor(const std::string& path, const uint8_t* data, size_t size) : path_(path), data_(data), size_(size) {}
  size_t pos() const { return pos_; }
  size_t left() const { return size_ - pos_; }
  const uint8_t* here() const { return data_ + pos_; }

  void need(uint64_t n, const std::string& what) const {
    if (n > left())
      throw Error(path_ + ": " + what + " runs past the end of the file (at byte " + std::to_string(pos_) + " of " +
                  std::to_string(size_) + "; truncated or not a GGUF file)");
  }
  void skip(uint64_t n, const std::string& what) {
    need(n, what);
    pos_ += static_cast<size_t>(n);
  }
  uint32_t u32(const std::string& what) {
    need(4, what);
    uint32_t v;
    std::memcpy(&v, here(), 4);
    pos_ += 4;
    return v;
  }
  uint64_t u64(const std::string& what) {
    need(8, what);
    uint64_t v;
    std::memcpy(&v, here(), 8);
    pos_ += 8;
    return v;
  }
  std::string string(const std::string& what, uint64_t limit) {
    const uint64_t n = u64(what + " length");
    if (n > limit)
      throw Error(path_ + ": " + what + " length " + std::to_string(n) + " exceeds " + std::to_string(limit) +
                  " bytes (corrupt file)");
    need(n, what);
    std::string s(reinterpret_cast<const char*>(here()), static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return s;
  }

 private:
  const std::string& path_;
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// Skips (and so validates) one value of type `t` at the cursor; `where` names the key.
void skip_value(Cursor& c, GgufValueType t, const std::string& where, const std::string& path, GgufValue* out) {
  out->type = t;
  out->elem_type = t;
  out->count = 1;
  out->data = c.here();
  if (t == GgufValueType::string) {
    c.string(where + ": string", kMaxStringBytes);
    return;
  }
  if (t != GgufValueType::array) {
    c.skip(scalar_size(t), where + ": value");
    return;
  }
  const uint32_t et = c.u32(where + ": array element type");
  if (!known_type(et)) throw Error(path + ": " + where + ": unknown array element type " + std::to_string(et));
  const auto elem = static_cast<GgufValueType>(et);
  if (elem == GgufValueType::array) throw Error(path + ": " + where + ": arrays of arrays are not supported");
  const uint64_t n = c.u64(where + ": array length");
  out->elem_type = elem;
  out->count = n;
  out->data = c.here();
  if (elem == GgufValueType::string) {
    // Each string takes at least its 8-byte length: a count that cannot fit is refused before the walk.
    if (n > c.left() / 8)
      throw Error(path + ": " + where + ": array of " + std::to_string(n) + " strings cannot fit in the " +
                  std::to_string(c.left()) + " bytes left (corrupt file)");
    for (uint64_t i = 0; i < n; ++i) c.string(where + ": string " + std::to_string(i), kMaxStringBytes);
    return;
  }
  const size_t es = scalar_size(elem);
  if (n > c.left() / es)
    throw Error(path + ": " + where + ": array of " + std::to_string(n) + " " + gguf_value_type_name(elem) +
                " values runs past the end of the file (corrupt file)");
  c.skip(n * es, where + ": array");
}

std::string read_string_at(const uint8_t* p) {
  uint64_t n;
  std::memcpy(&n, p, 8);
  return std::string(reinterpret_cast<const char*>(p + 8), static_cast<size_t>(n));
}

}  // namespace

GgufFile::GgufFile(const std::string& path) : GgufFile(path, MappedFile(path)) {}

GgufFile::GgufFile(const std::string& path, MappedFile bytes) : path_(path), file_(std::move(bytes)) {
  Cursor c(path_, file_.data(), file_.size());
  if (file_.size() < 24)
    throw Error(path_ + ": file is " + std::to_string(file_.size()) +
                " bytes, too short for a GGUF header (truncated download?)");
  if (std::memcmp(file_.data(), "GGUF", 4) != 0) throw Error(path_ + ": not a GGUF file (no \"GGUF\" magic)");
  c.skip(4, "magic");
  version_ = c.u32("version");
  if (version_ == 1)
    throw Error(path_ + ": GGUF version 1 (2023) is not supported; convert the model again with a current llama.cpp");
  if (version_ == 0x02000000u || version_ == 0x03000000u)
    throw Error(path_ + ": a big-endian GGUF file; only little-endian files are supported");
  if (version_ != 2 && version_ != 3)
    throw Error(path_ + ": GGUF version " + std::to_string(version_) + " is not supported (versions 2 and 3 are)");
  const uint64_t n_tensors = c.u64("tensor count");
  const uint64_t n_kv = c.u64("metadata count");
  // The smallest key-value pair is 13 bytes (empty key, type, one byte); the smallest tensor
  // info 32 (empty name, n_dims, one dimension, type, offset).
  if (n_kv > c.left() / 13)
    throw Error(path_ + ": metadata count " + std::to_string(n_kv) + " cannot fit in a file of " +
                std::to_string(file_.size()) + " bytes (corrupt file)");
  if (n_tensors > c.left() / 32)
    throw Error(path_ + ": tensor count " + std::to_string(n_tensors) + " cannot fit in a file of " +
                std::to_string(file_.size()) + " bytes (corrupt file)");

  for (uint64_t i = 0; i < n_kv; ++i) {
    const std::string what = "metadata entry " + std::to_string(i);
    std::string key = c.string(what + " key", kMaxKeyBytes);
    const std::string where = "key '" + key + "'";
    const uint32_t t = c.u32(where + ": value type");
    if (!known_type(t)) throw Error(path_ + ": " + where + ": unknown value type " + std::to_string(t));
    GgufValue v{};
    skip_value(c, static_cast<GgufValueType>(t), where, path_, &v);
    if (!values_.emplace(key, v).second) throw Error(path_ + ": " + where + " appears twice");
    keys_.push_back(std::move(key));
  }

  if (const GgufValue* a = value("general.alignment")) {
    if (a->type != GgufValueType::u32)
      throw Error(path_ + ": key 'general.alignment' is " + gguf_value_type_name(a->type) + ", not uint32");
    std::memcpy(&alignment_, a->data, 4);
    if (alignment_ == 0 || (alignment_ & (alignment_ - 1)) != 0)
      throw Error(path_ + ": key 'general.alignment' is " + std::to_string(alignment_) + ", not a power of two");
  }

  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensor t;
    t.name = c.string("tensor info " + std::to_string(i) + " name", kMaxKeyBytes);
    const std::string where = path_ + ": tensor '" + t.name + "'";
    const uint32_t n_dims = c.u32("tensor '" + t.name + "' dimension count");
    if (n_dims < 1 || n_dims > kMaxDims)
      throw Error(where + ": " + std::to_string(n_dims) + " dimensions (1 to 4 are allowed)");
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t ne = c.u64("tensor '" + t.name + "' dimensions");
      t.ne.push_back(static_cast<int64_t>(ne));
      // Zero first: the overflow test below divides by it.
      if (ne == 0) throw Error(where + ": dimension " + std::to_string(d) + " is 0");
      if (ne > static_cast<uint64_t>(INT64_MAX) || numel > static_cast<uint64_t>(INT64_MAX) / ne)
        throw Error(where + ": dimensions " + shape_string(t.ne) + " overflow (corrupt file)");
      numel *= ne;
    }
    const uint32_t type = c.u32("tensor '" + t.name + "' type");
    t.info = ggml_type_info(type);
    if (!t.info) throw Error(where + ": unknown tensor type id " + std::to_string(type));
    if (!t.info->supported)
      throw Error(where + " has type " + t.info->name +
                  ", which this engine does not read (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, "
                  "Q4_K, Q5_K, Q6_K)");
    t.type = static_cast<GgmlType>(type);
    if (t.ne[0] % t.info->block_size != 0)
      throw Error(where + ": " + t.info->name + " rows of " + std::to_string(t.ne[0]) +
                  " values are not a whole number of " + std::to_string(t.info->block_size) + "-value blocks");
    const uint64_t blocks = numel / static_cast<uint64_t>(t.info->block_size);
    if (blocks > static_cast<uint64_t>(SIZE_MAX) / t.info->block_bytes)
      throw Error(where + ": " + shape_string(t.ne) + " " + t.info->name + " is too large (corrupt file)");
    t.nbytes = static_cast<size_t>(blocks * t.info->block_bytes);
    t.offset = c.u64("tensor '" + t.name + "' offset");
    if (t.offset % alignment_ != 0)
      throw Error(where + ": offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
                  std::to_string(alignment_));
    if (!tensor_index_.emplace(t.name, tensors_.size()).second) throw Error(where + " appears twice");
    tensors_.push_back(std::move(t));
  }

  // The data section starts at the next multiple of the alignment.
  const uint64_t header_end = c.pos();
  const uint64_t data_start = (header_end + alignment_ - 1) / alignment_ * alignment_;
  data_start_ = data_start;
  const uint64_t data_size = data_start <= file_.size() ? file_.size() - data_start : 0;
  for (GgufTensor& t : tensors_) {
    if (t.offset > data_size || t.nbytes > data_size - t.offset)
      throw Error(path_ + ": tensor '" + t.name + "' (" + t.info->name + " " + t.shape() + ", " +
                  std::to_string(t.nbytes) + " bytes at offset " + std::to_string(t.offset) +
                  ") runs past the end of the data section (" + std::to_string(data_size) +
                  " bytes; file truncated or corrupt)");
    t.data = file_.data() + data_start + t.offset;
  }
  std::vector<const GgufTensor*> order;
  for (const GgufTensor& t : tensors_) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const GgufTensor* a, const GgufTensor* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < order.size(); ++i)
    if (order[i]->offset < order[i - 1]->offset + order[i - 1]->nbytes)
      throw Error(path_ + ": tensor '" + order[i]->name + "' overlaps tensor '" + order[i - 1]->name +
                  "' in the data section (corrupt file)");
}

const GgufTensor* GgufFile::find(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufValue* GgufFile::value(const std::string& key) const {
  auto it = values_.find(key);
  return it == values_.end() ? nullptr : &it->second;
}

namespace {
const GgufValue& require(const GgufFile& f, const std::string& key) {
  const GgufValue* v = f.value(key);
  if (!v) throw Error(f.path() + ": key '" + key + "' is missing");
  return *v;
}
}  // namespace

uint64_t GgufFile::get_uint(const std::string& key) const {
  const GgufValue& v = require(*this, key);
  auto bad = [&](const std::string& why) { return Error(path_ + ": key '" + key + "' " + why); };
  switch (v.type) {
    case GgufValueType::u8: return v.data[0];
    case GgufValueType::u16: { uint16_t x; std::memcpy(&x, v.data, 2); return x; }
    case GgufValueType::u32: { uint32_t x; std::memcpy(&x, v.data, 4); return x; }
    case GgufValueType::u64: { uint64_t x; std::memcpy(&x, v.data, 8); return x; }
    case GgufValueType::i8:
    case GgufValueType::i16:
    case GgufValueType::i32:
    case GgufValueType::i64: {
      int64_t x = 0;
      if (v.type == GgufValueType::i8) x = static_cast<int8_t>(v.data[0]);
      else if (v.type == GgufValueType::i16) { int16_t y; std::memcpy(&y, v.data, 2); x = y; }
      else if (v.type == GgufValueType::i32) { int32_t y; std::memcpy(&y, v.data, 4); x = y; }
      else std::memcpy(&x, v.data, 8);
      if (x < 0) throw bad("is " + std::to_string(x) + ", not a count");
      return static_cast<uint64_t>(x);
    }
    default: throw bad("is a " + std::string(gguf_value_type_name(v.type)) + ", not an integer");
  }
}

double GgufFile::get_float(const std::string& key) const {
  const GgufValue& v = require(*this, key);
  if (v.type == GgufValueType::f32) {
    float x;
    std::memcpy(&x, v.data, 4);
    return x;
  }
  if (v.type == GgufValueType::f64) {
    double x;
    std::memcpy(&x, v.data, 8);
    return x;
  }
  throw Error(path_ + ": key '" + key + "' is a " + gguf_value_type_name(v.type) + ", not a number");
}

std::string GgufFile::get_string(const std::string& key) const {
  const GgufValue& v = require(*this, key);
  if (v.type != GgufValueType::string)
    throw Error(path_ + ": key '" + key + "' is a " + gguf_value_type_name(v.type) + ", not a string");
  return read_string_at(v.data);
}

std::vector<std::string> GgufFile::get_string_array(const std::string& key) const {
  const GgufValue& v = require(*this, key);
  if (v.type != GgufValueType::array || v.elem_type != GgufValueType::string)
    throw Error(path_ + ": key '" + key + "' is not an array of strings");
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(v.count));  // validated: the strings are in the file
  const uint8_t* p = v.data;
  for (uint64_t i = 0; i < v.count; ++i) {
    out.push_back(read_string_at(p));
    p += 8 + out.back().size();
  }
  return out;
}

}  // namespace gpt2
