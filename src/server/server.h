// `gpt2 serve`: an OpenAI-compatible completion server over one model, continuously batched.
//
//   HTTP threads (cpp-httplib's pool)            engine thread (EngineLoop)
//   ---------------------------------            --------------------------
//   parse + validate (completion_request.h)
//   reserve room (slots + queue), else 503
//   submit one scheduler Request per choice  ->  Scheduler::step() in a loop: every running
//   wait on the request's Job (condition         sequence shares each decode step; on_text /
//   variable), polling the client's socket  <-   on_done fill the Job and wake its handler
//   respond (JSON, or SSE chunks as they come)
//
// A request of P prompts × n choices is P·n scheduler requests in one Job; the server holds at
// most --parallel + --queue choices at once and answers 503 (Retry-After) beyond that. A client
// that goes away (its socket closes, or a stream write fails or times out) has its choices
// cancelled, which frees their slots at the next step. The server listens before the model is
// loaded: /health answers 503 until attach(), then 200.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "engine/scheduler.h"
#include "engine/step_model.h"
#include "tokenizer/tokenizer.h"

namespace gpt2::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;        // 0: any free port (bind() tells which)
  int parallel = 4;       // KV slots: sequences decoded together
  int queue = 64;         // choices waiting for a slot at most
  std::string api_key;    // "": no authentication
  int timeout_s = 60;     // socket read/write timeout (a stalled client lets go of its thread)
  size_t max_body = 1 << 20;  // request body bytes at most (413 past it)
  bool verbose = false;       // one line per request on stderr
};

class Server {
 public:
  // model_id: the name /v1/models lists and responses carry; n_ctx: the model's context (from
  // its config, known before the weights are loaded).
  Server(const ServerOptions& options, const Tokenizer& tokenizer, std::string model_id, int n_ctx);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the listening socket; returns the port. Throws gpt2::Error when it cannot.
  int bind();
  // Serves on a thread of its own from now on (/health: 503 until attach).
  void start();
  // The model is loaded: starts the engine thread on it. `model` must outlive the Server.
  void attach(StepModel& model, const SchedulerOptions& scheduler);
  // Stops accepting connections, cancels every running and queued request (a waiting client
  // gets 503, a stream ends), and lets wait() return. Thread-safe; idempotent.
  void shutdown();
  // Until shutdown() has stopped the listener and every handler has returned; then stops the
  // engine thread.
  void wait();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gpt2::server
