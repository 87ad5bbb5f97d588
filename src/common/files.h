#pragma once

#include <string>

namespace gpt2 {

// The whole file as bytes. Throws gpt2::Error naming the file when it cannot be read.
std::string read_file(const std::string& path);

bool file_exists(const std::string& path);

}  // namespace gpt2
