// Memory bounds (common/memory.h): a request, a file or an option that needs more host memory than
// any machine has is refused before anything that large is allocated, with one line giving both
// numbers, and exit code 1. Each case runs `gpt2` as a child of its own and reads the child's peak
// resident memory (wait4), which must stay far below what the request asked for: the refusal came
// before the allocation (and before the weights were read, where the run's shape decides).
//
// The sizes are absurd on purpose (terabytes), so that no test machine can hold them.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "cli/cli_run.h"

namespace {

using gpt2::test::read_bytes;
using gpt2::test::Run;
using gpt2::test::TempDir;
using gpt2::test::TempFile;

struct MeasuredRun {
  Run run;
  long peak_rss_kib = 0;
  double seconds = 0;
};

// `gpt2 ARGS...` as a direct child (no shell), stdin /dev/null, stdout and stderr captured, with
// the child's own peak RSS from wait4.
MeasuredRun run_measured(const std::vector<std::string>& args) {
  const TempFile out, err;
  std::vector<std::string> argv_s = {GPT2_BINARY};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const int in = open("/dev/null", O_RDONLY);
    const int o = open(out.path.c_str(), O_WRONLY | O_TRUNC);
    const int e = open(err.path.c_str(), O_WRONLY | O_TRUNC);
    if (in < 0 || o < 0 || e < 0 || dup2(in, 0) < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0) _exit(127);
    execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  rusage usage{};
  REQUIRE(wait4(pid, &status, 0, &usage) == pid);
  MeasuredRun m;
  m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  m.run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  m.run.out = read_bytes(out.path);
  m.run.err = read_bytes(err.path);
  m.peak_rss_kib = usage.ru_maxrss;  // KiB on Linux
  return m;
}

// Far below any of the requests below, and below random:gpt2's fp32 weights (475 MiB): a run
// that stays under it allocated neither the request nor the weights. (ASan's own memory fits.)
constexpr long kSmallRssKib = 320 * 1024;

// Refused: exit 1, one line "error: out of host memory: WHAT needs N ... but this machine has M",
// naming `what`, with small memory.
void require_refused(const std::vector<std::string>& args, const std::string& what) {
  const MeasuredRun m = run_measured(args);
  std::string line;
  for (const std::string& a : args) line += a + " ";
  INFO("gpt2 " << line);
  INFO("stderr: " << m.run.err);
  INFO("peak RSS " << m.peak_rss_kib / 1024 << " MiB, " << m.seconds << " s");
  CHECK(m.run.exit_code == 1);
  CHECK(m.run.err.rfind("error: out of host memory: ", 0) == 0);
  CHECK(m.run.err.find(what) != std::string::npos);
  CHECK(m.run.err.find(" needs ") != std::string::npos);
  CHECK(m.run.err.find(" but this machine has ") != std::string::npos);
  CHECK(m.run.err.find('\n') == m.run.err.size() - 1);  // one line
  CHECK(m.run.out.empty());
  CHECK(m.peak_rss_kib < kSmallRssKib);
}

}  // namespace

TEST_CASE("memory: bench --batch past the machine's memory is refused before the weights are read", "[cli][memory]") {
  // 100000 KV slots of gpt2: 7 TiB. Also 100000 x 128 rows per step, past 2^31 (saturated, not wrapped).
  require_refused({"bench", "-m", "random:gpt2", "--device", "cpu", "--batch", "100000", "--reps", "1"},
                  "a run of 100000 sequences (KV cache ");
  require_refused({"bench", "-m", "random:gpt2", "--device", "cpu", "--batch", "1,2147483647", "--prompt-tokens",
                   "2", "--gen-tokens", "1", "--reps", "1"},
                  "a run of 2147483647 sequences");
}

TEST_CASE("memory: bench --mixed with huge --parallel or --requests is refused up front", "[cli][memory]") {
  require_refused({"bench", "-m", "random:gpt2", "--device", "cpu", "--mixed", "--requests", "2", "--parallel",
                   "1000000"},
                  "a run of 1000000 sequences");
  require_refused({"bench", "-m", "random:gpt2", "--device", "cpu", "--mixed", "--requests", "2000000000"},
                  "2000000000 requests (--requests)");
}

TEST_CASE("memory: generate with more sequences than memory holds is refused up front", "[cli][memory]") {
  require_refused({"generate", "-m", "random:gpt2", "--device", "cpu", "-p", "hi", "-n", "4", "--num-samples",
                   "1000000", "--parallel", "1000000"},
                  "a run of 1000000 sequences");
  require_refused({"generate", "-m", "random:gpt2", "--device", "cpu", "-p", "hi", "-n", "4", "--num-samples",
                   "2000000000"},
                  "2000000000 sequences (prompts x --num-samples)");
}

TEST_CASE("memory: serve with huge --parallel or --queue is refused before it listens", "[cli][memory]") {
  require_refused({"serve", "-m", "random:gpt2", "--device", "cpu", "--port", "0", "--parallel", "1000000"},
                  "a run of 1000000 sequences");
  require_refused({"serve", "-m", "random:gpt2", "--device", "cpu", "--port", "0", "--queue", "2000000000"},
                  "room for 2000000004 choices (--parallel + --queue)");
}

TEST_CASE("memory: a model file whose header claims huge tensors is refused before they are allocated",
          "[cli][memory]") {
  // An llm.c bf16 checkpoint (version 5) of 4 layers of 2^17 channels: 1.6 TiB of bf16 on disk, a
  // sparse file that takes no space; its fp32 weights would be 3 TiB.
  const int32_t V = 50257, Vp = 50304, T = 64, L = 4, NH = 2048, C = 1 << 17;
  const uint64_t CC = uint64_t{C} * C, LC = uint64_t{L} * C, LCC = uint64_t{L} * CC;
  const uint64_t params = uint64_t{Vp} * C + uint64_t{T} * C + 12 * LCC + 13 * LC + 2 * uint64_t{C};
  const TempFile file;
  {
    std::vector<int32_t> header(256, 0);
    const int32_t fields[8] = {20240326, 5, T, V, L, NH, C, Vp};
    std::memcpy(header.data(), fields, sizeof fields);
    std::ofstream(file.path, std::ios::binary).write(reinterpret_cast<const char*>(header.data()), 1024);
  }
  REQUIRE(truncate(file.path.c_str(), static_cast<off_t>(1024 + params * 2)) == 0);
  require_refused({"score", "-m", file.path, "--device", "cpu", "-p", "hello"}, "the model's weights (");
}

TEST_CASE("memory: a text file larger than the machine's memory is refused before it is read", "[cli][memory]") {
  const TempFile file("x");
  REQUIRE(truncate(file.path.c_str(), static_cast<off_t>(uint64_t{8} << 40)) == 0);  // 8 TiB, sparse
  require_refused({"tokenize", "-f", file.path, "--count"}, "'" + file.path + "'");
  require_refused({"score", "-m", "random:gpt2", "--device", "cpu", "-f", file.path}, "'" + file.path + "'");
}

TEST_CASE("memory: generate -n past the context needs no more memory: it stops at the context's end", "[cli][memory]") {
  // The KV cache holds the context whatever -n says; -n 2^31-1 is a limit, not a size.
  const std::string tiny = std::string(GPT2_TEST_DATA) + "/models/tiny-gpt2";
  const MeasuredRun m = run_measured({"generate", "-m", tiny, "--device", "cpu", "--threads", "1", "-p", "hi",
                                      "-n", "2147483647", "--greedy", "--json"});
  INFO("stderr: " << m.run.err);
  CHECK(m.run.exit_code == 0);
  CHECK(m.run.err.find("end of the model's context") != std::string::npos);
  CHECK(m.peak_rss_kib < kSmallRssKib);
}
