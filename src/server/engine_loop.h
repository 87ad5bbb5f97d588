// The engine thread: one thread runs Scheduler::step() in a loop while there is work, and
// sleeps on a condition variable when there is none; submit() and cancel() from the HTTP
// threads wake it. The requests' callbacks (on_text, on_done) run on this thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "engine/scheduler.h"

namespace gpt2::server {

class EngineLoop {
 public:
  // on_failure runs (on the engine thread) when a step throws: the loop ends there, and the
  // requests it held never get their on_done; the caller fails them itself.
  EngineLoop(StepModel& model, const TokenText& text, const SchedulerOptions& options,
             std::function<void(const std::string& message)> on_failure);
  ~EngineLoop();  // stop()
  EngineLoop(const EngineLoop&) = delete;
  EngineLoop& operator=(const EngineLoop&) = delete;

  // As Scheduler::submit (QueueFull, gpt2::Error); throws gpt2::Error once the loop has failed.
  uint64_t submit(Request request);
  void cancel(uint64_t id);

  int waiting() const { return scheduler_.waiting(); }
  int running() const { return scheduler_.running(); }

  // Ends the loop once every request has ended (cancel first what should not be waited for)
  // and joins the thread. Idempotent.
  void stop();

 private:
  void run();
  void wake();

  Scheduler scheduler_;
  std::function<void(const std::string&)> on_failure_;
  std::mutex mutex_;
  std::condition_variable cv_;
  uint64_t wakeups_ = 0;  // bumped by every submit/cancel: a step that found nothing to do sleeps
                          // only if none came since it started
  bool stopping_ = false;
  bool failed_ = false;
  std::string failure_;
  std::thread thread_;
};

}  // namespace gpt2::server
