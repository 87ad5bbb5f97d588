#include "common/files.h"

#include <cerrno>
#include <cstring>
#include <exception>
#include <fstream>
#include <iterator>

#include <sys/stat.h>

#include "common/error.h"
#include "common/memory.h"

namespace gpt2 {

std::string read_file(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) throw Error("cannot read '" + path + "': " + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) throw Error("cannot read '" + path + "': it is a directory");
  if (S_ISREG(st.st_mode)) check_host_memory(static_cast<size_t>(st.st_size), "'" + path + "'");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read '" + path + "': " + std::strerror(errno));
  std::string bytes;
  try {
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  } catch (const std::exception&) {  // libstdc++ may throw from inside the stream buffer
    in.setstate(std::ios::badbit);
  }
  if (in.bad()) throw Error("error while reading '" + path + "'");
  return bytes;
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace gpt2
