// The real server for the tests: `gpt2 serve --port 0` started as a child process on the tiny
// model, its port read from its "listening on http://127.0.0.1:PORT" line, killed when the
// object goes (SIGTERM, then SIGKILL after a grace period). Every wait is bounded.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "server/http_client.h"

extern char** environ;

namespace gpt2::test {

inline std::string tiny_model() { return std::string(GPT2_TEST_DATA) + "/models/tiny-gpt2"; }

class ServerProcess {
 public:
  // gpt2 serve -m MODEL --device cpu --threads 1 --port 0 ARGS...; waits for /health 200 unless
  // wait_ready is false (then only for the listening line).
  explicit ServerProcess(const std::vector<std::string>& args, const std::string& model = tiny_model(),
                         bool wait_ready = true) {
    char name[] = "/tmp/gpt2_test_serve_XXXXXX";
    const int fd = mkstemp(name);
    REQUIRE(fd >= 0);
    ::close(fd);
    log_path_ = name;
    std::vector<std::string> argv = {GPT2_BINARY, "serve", "-m", model, "--device", "cpu", "--threads", "1", "--port", "0"};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> cargv;
    for (std::string& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, log_path_.c_str(), O_WRONLY | O_TRUNC, 0);
    const int rc = posix_spawn(&pid_, cargv[0], &actions, nullptr, cargv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    REQUIRE(rc == 0);
    // The port, from the first line the server prints.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    const std::string marker = "listening on http://127.0.0.1:";
    while (port_ == 0) {
      const std::string text = log();
      const size_t at = text.find(marker);
      if (at != std::string::npos && text.find('\n', at) != std::string::npos) {
        port_ = std::stoi(text.substr(at + marker.size()));
        break;
      }
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        FAIL("gpt2 serve exited before listening: " << text);
      }
      if (std::chrono::steady_clock::now() > deadline) FAIL("gpt2 serve did not say where it listens: " << text);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (wait_ready) wait_healthy();
  }

  ~ServerProcess() {
    stop();
    std::remove(log_path_.c_str());
  }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string log() const {
    std::ifstream in(log_path_, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  void wait_healthy() const {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    for (;;) {
      try {
        if (server::http_request("127.0.0.1", port_, "GET", "/health").status == 200) return;
      } catch (const std::exception&) {
      }
      if (std::chrono::steady_clock::now() > deadline) FAIL("gpt2 serve never became healthy: " << log());
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  // Sends `sig` and waits up to grace_s for the exit; SIGKILL after that. The exit code, or -1
  // when it did not exit by itself (killed, or a signal ended it).
  int stop(int sig = SIGTERM, double grace_s = 20) {
    if (pid_ <= 0) return exit_code_;
    kill(pid_, sig);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(grace_s);
    int status = 0;
    for (;;) {
      const pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) break;
      if (std::chrono::steady_clock::now() > deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        pid_ = -1;
        exit_code_ = -1;
        return exit_code_;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    pid_ = -1;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return exit_code_;
  }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  int exit_code_ = -1;
  std::string log_path_;
};

}  // namespace gpt2::test
