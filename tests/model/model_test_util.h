// Helpers shared by the model tests: temporary directories, file edits, tensor statistics.
#pragma once

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include <unistd.h>

#include "runtime/tensor.h"

namespace gpt2 {

// A fresh directory under $TMPDIR (or /tmp), removed with its files on destruction.
struct TempDir {
  std::string path;
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/gpt2-test-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path = tmpl;
  }
  ~TempDir() {
    const std::string cmd = "rm -rf '" + path + "'";
    if (std::system(cmd.c_str()) != 0) {
    }
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

struct Stats {
  double mean = 0, stddev = 0, max_abs = 0;
};

inline Stats stats(const Tensor& t) {
  Stats s;
  double sum = 0, sum2 = 0;
  const float* p = t.f32();
  for (int64_t i = 0; i < t.numel(); ++i) {
    sum += p[i];
    sum2 += static_cast<double>(p[i]) * p[i];
    s.max_abs = std::max(s.max_abs, static_cast<double>(std::abs(p[i])));
  }
  s.mean = sum / static_cast<double>(t.numel());
  s.stddev = std::sqrt(std::max(0.0, sum2 / static_cast<double>(t.numel()) - s.mean * s.mean));
  return s;
}

}  // namespace gpt2
