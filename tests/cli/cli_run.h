// Running the built `gpt2` binary (GPT2_BINARY) the way a user does, through the shell, for the
// CLI tests: stdout, stderr and the exit code captured, stdin from /dev/null or from given bytes.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

namespace gpt2::test {

struct Run {
  int exit_code = -1;  // -1 when the process did not exit normally
  std::string out;     // stdout, bytes as written
  std::string err;     // stderr
};

// The whole file as bytes ("" when it cannot be read).
inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// `s` as one word for /bin/sh, whatever bytes it holds: single-quoted, each ' written '\''.
inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// A file under /tmp holding `bytes`, removed when the object goes.
struct TempFile {
  std::string path;
  explicit TempFile(const std::string& bytes = "") {
    char name[] = "/tmp/gpt2_test_cli_XXXXXX";
    const int fd = mkstemp(name);
    REQUIRE(fd >= 0);
    close(fd);
    path = name;
    std::ofstream(path, std::ios::binary) << bytes;
  }
  ~TempFile() { std::remove(path.c_str()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
};

// Runs `gpt2 ARGS...`, each argument passed as one word exactly, with stdin from `stdin_bytes`
// (from /dev/null when there are none); captures stdout, stderr and the exit code.
inline Run run_gpt2(const std::vector<std::string>& args,
                    const std::optional<std::string>& stdin_bytes = std::nullopt) {
  const TempFile err;
  std::optional<TempFile> in;
  if (stdin_bytes) in.emplace(*stdin_bytes);
  std::string cmd = shell_quote(GPT2_BINARY);
  for (const std::string& a : args) cmd += " " + shell_quote(a);
  cmd += " <" + shell_quote(in ? in->path : "/dev/null") + " 2>" + shell_quote(err.path);
  Run run;
  FILE* pipe = popen(cmd.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) run.out.append(buf, n);
  const int status = pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  run.err = read_bytes(err.path);
  return run;
}

// Runs `gpt2 ARGS...` with stdout sent to `stdout_target` (a shell redirection target such as
// "/dev/full", or "&-" for a closed stdout); stdin from /dev/null. `out` stays empty.
inline Run run_gpt2_stdout_to(const std::vector<std::string>& args, const std::string& stdout_target) {
  const TempFile err;
  std::string cmd = shell_quote(GPT2_BINARY);
  for (const std::string& a : args) cmd += " " + shell_quote(a);
  cmd += " </dev/null 2>" + shell_quote(err.path) + " >" +
         (stdout_target.rfind('&', 0) == 0 ? stdout_target : shell_quote(stdout_target));
  Run run;
  const int status = std::system(cmd.c_str());
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  run.err = read_bytes(err.path);
  return run;
}

// A directory under /tmp, removed with its files (not subdirectories) when the object goes.
struct TempDir {
  std::string path;
  TempDir() {
    char name[] = "/tmp/gpt2_test_cli_dir_XXXXXX";
    REQUIRE(mkdtemp(name) != nullptr);
    path = name;
  }
  ~TempDir() {
    if (std::system(("rm -rf " + shell_quote(path)).c_str()) != 0) {
      // best effort: a leftover directory under /tmp is harmless
    }
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  void write(const std::string& name, const std::string& bytes) const {
    std::ofstream(path + "/" + name, std::ios::binary) << bytes;
  }
};

}  // namespace gpt2::test
