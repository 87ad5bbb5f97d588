#include "server/engine_loop.h"

#include <exception>
#include <new>

namespace gpt2::server {

EngineLoop::EngineLoop(StepModel& model, const TokenText& text, const SchedulerOptions& options,
                       std::function<void(const std::string&)> on_failure)
    : scheduler_(model, text, options), on_failure_(std::move(on_failure)) {
  thread_ = std::thread([this] { run(); });
}

EngineLoop::~EngineLoop() { stop(); }

uint64_t EngineLoop::submit(Request request) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (failed_) throw Error("the engine has stopped after an error: " + failure_);
  }
  const uint64_t id = scheduler_.submit(std::move(request));
  wake();
  return id;
}

void EngineLoop::cancel(uint64_t id) {
  scheduler_.cancel(id);
  wake();
}

void EngineLoop::wake() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++wakeups_;
  }
  cv_.notify_one();
}

void EngineLoop::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void EngineLoop::run() {
  for (;;) {
    uint64_t seen = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_ && scheduler_.idle()) return;
      seen = wakeups_;
    }
    bool worked = false;
    try {
      worked = scheduler_.step();
    } catch (const std::bad_alloc&) {
      std::lock_guard<std::mutex> lock(mutex_);
      failed_ = true;
      failure_ = "out of host memory";
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lock(mutex_);
      failed_ = true;
      failure_ = e.what();
    }
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (failed_) {
        const std::string message = failure_;
        lock.unlock();
        if (on_failure_) on_failure_(message);
        return;
      }
      if (!worked) cv_.wait(lock, [&] { return wakeups_ != seen || stopping_; });
    }
  }
}

}  // namespace gpt2::server
