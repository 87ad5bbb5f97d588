// Errors: library code throws, only main() turns them into exit codes.
//   gpt2::Error       -> "error: <message>", exit 1 (bad files, missing GPU, out of memory, ...)
//   gpt2::UsageError  -> "error: <message>", exit 2 (bad command-line options)
// Messages are one line and name the thing at fault (file, tensor, option).
#pragma once

#include <stdexcept>
#include <string>

namespace gpt2 {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct UsageError : Error {
  using Error::Error;
};

}  // namespace gpt2
