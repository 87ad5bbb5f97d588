// `gpt2 serve`: an OpenAI-compatible completion server (src/server/) over one model.
//
// The order of events: options checked, config and tokenizer read, the port bound and
// "listening on http://HOST:PORT" printed on stderr (GET /health answers 503 "loading model"),
// the weights loaded, the engine started (/health 200), then requests are served until SIGINT
// or SIGTERM: the server stops accepting, cancels what is queued or running, and exits 0.
#include "cli/commands.h"

#ifndef GPT2_SERVER
#include "common/error.h"

// Built with -DGPT2_SERVER=OFF (no cpp-httplib on the build machine, e.g. the lent GPU machine):
// `gpt2 serve` still parses, and says why it cannot run.
void gpt2::cli::add_serve_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("serve", "an OpenAI-compatible completion server (absent from this build)");
  cmd->allow_extras();
  cmd->callback([] {
    throw gpt2::Error("this gpt2 was built without the server (-DGPT2_SERVER=OFF): install libcpp-httplib-dev and rebuild");
  });
}
#else
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <iostream>
#include <memory>
#include <string>
#include <thread>

#include "cli/common.h"
#include "common/error.h"
#include "common/memory.h"
#include "engine/scheduler.h"
#include "engine/step_model.h"
#include "server/server.h"

namespace gpt2::cli {
namespace {

// What one token of an admitted choice holds on the host: its id, the prompt's copy, its time, its
// text (a few bytes; 16 allowed) and the response being built. An estimate for the startup check.
constexpr size_t kChoiceBytesPerToken = 2 * sizeof(int32_t) + sizeof(double) + 16 + 32;

struct ServeArgs {
  ModelOptions model;
  server::ServerOptions server;
  int prefill_chunk = 256;
};

// The name /v1/models lists: a directory's last component, or random:NAME as given.
std::string model_id(const ModelSource& source) {
  std::string s = source.spec();
  if (source.kind() != ModelSource::Kind::hf_directory) return s;
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  const size_t slash = s.find_last_of('/');
  return slash == std::string::npos ? s : s.substr(slash + 1);
}

std::string url_host(const std::string& host) { return host.find(':') != std::string::npos ? "[" + host + "]" : host; }

// SIGINT and SIGTERM are blocked in every thread and taken by one thread with sigwait(), which
// asks the server to shut down; it ends with the command (SIGUSR1 from the command itself).
class SignalWatcher {
 public:
  explicit SignalWatcher(server::Server& srv) {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    sigaddset(&set_, SIGUSR1);
    thread_ = std::thread([this, &srv] {
      int sig = 0;
      while (sigwait(&set_, &sig) == 0) {
        if (sig == SIGUSR1) return;
        std::cerr << "gpt2 serve: " << (sig == SIGINT ? "SIGINT" : "SIGTERM") << ": shutting down" << std::endl;
        srv.shutdown();
        return;
      }
    });
  }
  ~SignalWatcher() {
    pthread_kill(thread_.native_handle(), SIGUSR1);
    thread_.join();
  }
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

 private:
  sigset_t set_;
  std::thread thread_;
};

void run(ServeArgs& args) {
  const BackendOptions backend = backend_options(args.model);  // --device, --dtype, --threads checked before anything is read
  if (args.server.parallel < 1) throw UsageError("--parallel must be 1 or more (got " + std::to_string(args.server.parallel) + ")");
  if (args.server.queue < 0) throw UsageError("--queue must be 0 or more (got " + std::to_string(args.server.queue) + ")");
  if (args.prefill_chunk < 1) throw UsageError("--prefill-chunk must be 1 or more");
  args.server.verbose = args.model.verbose;
  const ModelSource source = ModelSource::parse(args.model.model);
  const Config config = source.config();
  const Tokenizer tokenizer = load_tokenizer(source);

  // The shape of every step: a decode row per slot plus one prefill chunk, with the logits of
  // every row of that chunk (echo with logprobs scores the prompt's tokens).
  const int slots = args.server.parallel;
  const int chunk = std::min(args.prefill_chunk, config.n_ctx);
  RunLimits limits;
  limits.max_sequences = slots;
  limits.max_rows = step_size(int64_t{slots} + chunk);
  limits.max_logit_rows = limits.max_rows;
  // Before anything is bound or loaded: the slots' KV cache and activations, and the room that
  // every choice the server admits at once (--parallel + --queue) may fill with up to n_ctx
  // tokens (ids, times, text; logprobs add to it), against the machine's memory.
  check_run_memory(backend, config, limits);
  const size_t choices = static_cast<size_t>(args.server.parallel) + static_cast<size_t>(args.server.queue);
  const HostMemory choice_room(mul_sizes({choices, static_cast<size_t>(config.n_ctx), kChoiceBytesPerToken}),
                               "room for " + std::to_string(choices) + " choices (--parallel + --queue)");

  // Signals go to the watcher only: blocked here, before any thread starts, so every thread
  // inherits the mask. A client that closes its socket must not kill the server (SIGPIPE).
  sigset_t blocked;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGINT);
  sigaddset(&blocked, SIGTERM);
  sigaddset(&blocked, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &blocked, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  // Declared before the server: the engine thread steps the model until the server is gone.
  LoadedModel loaded;
  std::unique_ptr<Gpt2StepModel> step_model;
  server::Server srv(args.server, tokenizer, model_id(source), config.n_ctx);
  const int port = srv.bind();
  srv.start();
  std::cerr << "listening on http://" << url_host(args.server.host) << ":" << port << std::endl;
  SignalWatcher signals(srv);

  loaded = load(args.model, source, limits);
  step_model = std::make_unique<Gpt2StepModel>(*loaded.model, slots);
  SchedulerOptions so;
  so.prefill_chunk = chunk;
  so.eot = tokenizer.eot();
  so.n_vocab = tokenizer.n_vocab();
  srv.attach(*step_model, so);
  std::cerr << "model " << loaded.model->name() << " loaded on " << loaded.model->backend().describe() << " in "
            << loaded.load_seconds << " s; " << slots << " slot" << (slots == 1 ? "" : "s") << ", queue "
            << args.server.queue << std::endl;
  srv.wait();
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto args = std::make_shared<ServeArgs>();
  CLI::App* cmd = app.add_subcommand("serve", "an OpenAI-compatible completion server (POST /v1/completions) with continuous batching");
  add_model_options(cmd, args->model);
  server::ServerOptions& s = args->server;
  cmd->add_option("--host", s.host, "address to listen on (loopback unless told otherwise)")->capture_default_str();
  cmd->add_option("--port", s.port, "TCP port (0: any free port, printed on stderr)")->capture_default_str();
  cmd->add_option("--parallel", s.parallel, "KV slots: sequences decoded together")->capture_default_str();
  cmd->add_option("--queue", s.queue, "choices waiting for a slot at most (past slots + queue: 503)")->capture_default_str();
  cmd->add_option("--api-key", s.api_key, "require 'Authorization: Bearer KEY' (all but /health)");
  cmd->add_option("--timeout", s.timeout_s, "seconds a client may stall reading or writing before it is dropped")
      ->capture_default_str();
  cmd->add_option("--max-body", s.max_body, "request body bytes at most (413 past it)")->capture_default_str();
  cmd->add_option("--prefill-chunk", args->prefill_chunk, "prompt tokens per sequence per step")->capture_default_str();
  cmd->footer(
      "Endpoints: POST /v1/completions (OpenAI's legacy completions: prompt, max_tokens, temperature, top_p,\n"
      "top_k, min_p, n, stop, seed, stream, stream_options, logprobs, echo, presence/frequency/repetition\n"
      "penalties, ignore_eos), GET /v1/models, POST /tokenize {\"content\"}, POST /detokenize {\"tokens\"},\n"
      "GET /health (503 while loading), GET /metrics (Prometheus). SIGINT/SIGTERM: stop and exit 0.");
  cmd->callback([args] { run(*args); });
}

}  // namespace gpt2::cli

#endif  // GPT2_SERVER
