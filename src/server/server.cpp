// The HTTP side of `gpt2 serve` (see server.h for the threads and the flow of a request).
//
// cpp-httplib comes from Debian's libcpp-httplib-dev, a declarations-only httplib.h over a
// compiled libcpp-httplib.so. That library was built with OpenSSL, zlib and brotli; this file
// defines none of their macros and uses only Server, Request, Response and DataSink, whose
// layouts do not depend on them up to the fields read here (Request's OpenSSL-only `ssl`
// pointer comes after method, path, headers, body, remote_addr/port and local_addr/port).
// httplib's Client is never used: its layout does depend on the OpenSSL macro.
#include "server/server.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <deque>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "common/error.h"
#include "common/log.h"
#include "sampling/sampler.h"
#include "server/api_error.h"
#include "server/completion_request.h"
#include "server/completion_response.h"
#include "server/connection.h"
#include "server/engine_loop.h"
#include "server/metrics.h"

namespace gpt2::server {

using nlohmann::json;
using nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

namespace {

// How often a waiting handler looks at its client's socket and at the shutdown flag.
constexpr auto kPollInterval = std::chrono::milliseconds(50);
// Threads for cheap requests (health, metrics, tokenize, errors) beyond those that wait on choices.
constexpr int kSpareThreads = 8;

// One HTTP completion request: its choices (one scheduler request each) and what the engine
// thread has told about them.
struct Job {
  struct Event {
    int choice;
    std::string text;  // a piece of text (done false), or "" with done
    bool done;
  };

  std::mutex mutex;
  std::condition_variable cv;
  std::vector<uint64_t> ids;           // [choices] scheduler ids, 0 until submitted
  std::vector<Completion> results;     // [choices]
  std::vector<bool> finished;          // [choices]
  int remaining = 0;                   // choices not finished
  std::deque<Event> events;            // for a stream: in the order they happened
  std::string failure;                 // set when the server stops or the engine fails
  int failure_status = 0;
};

std::string bearer_of(const httplib::Request& req) {
  const std::string h = req.get_header_value("Authorization");
  const std::string prefix = "Bearer ";
  return h.compare(0, prefix.size(), prefix) == 0 ? h.substr(prefix.size()) : std::string();
}

// Compares without stopping at the first difference, so that the time taken does not tell how
// much of a guessed key was right.
bool same_secret(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// The statuses httplib answers by itself, in words.
std::string status_words(int status) {
  switch (status) {
    case 400: return "the request is malformed (HTTP request line or headers)";
    case 404: return "not found";
    case 413: return "the request body is larger than this server accepts (gpt2 serve --max-body)";
    case 414: return "the request URI is too long";
    case 416: return "the requested range is not satisfiable";
    case 500: return "internal server error";
    default: return "HTTP status " + std::to_string(status);
  }
}

void send_json(httplib::Response& res, int status, const ordered_json& body) {
  res.status = status;
  res.set_content(dump_json(body) + "\n", "application/json");
}

void send_error(httplib::Response& res, const ApiError& e) {
  if (e.status == 503) res.set_header("Retry-After", "1");
  if (e.status == 401) res.set_header("WWW-Authenticate", "Bearer");
  send_json(res, e.status, error_json(e));
}

std::string sse(const ordered_json& j) { return "data: " + dump_json(j) + "\n\n"; }

}  // namespace

struct Server::Impl {
  Impl(const ServerOptions& o, const Tokenizer& t, std::string id, int ctx)
      : options(o), tokenizer(t), model_id(std::move(id)), n_ctx(ctx), rng(std::random_device{}()) {}

  ServerOptions options;
  const Tokenizer& tokenizer;
  std::string model_id;
  int n_ctx;
  int64_t started = static_cast<int64_t>(std::time(nullptr));

  httplib::Server http;
  std::thread listener;
  std::atomic<bool> listener_done{false};
  int port = 0;

  std::unique_ptr<TokenizerText> token_text;
  std::unique_ptr<EngineLoop> engine_owner;
  std::atomic<EngineLoop*> live_engine{nullptr};  // set once attached
  std::atomic<bool> engine_failed{false};
  std::atomic<bool> stopping{false};
  Metrics metrics;

  // Choices in flight and the jobs that hold them (for shutdown and engine failure).
  std::mutex jobs_mutex;
  int outstanding = 0;
  std::set<std::shared_ptr<Job>> jobs;

  std::mutex id_mutex;
  std::mt19937_64 rng;

  int capacity() const { return options.parallel + options.queue; }

  std::string new_id() {
    std::lock_guard<std::mutex> lock(id_mutex);
    static const char* hex = "0123456789abcdef";
    std::string id = "cmpl-";
    const uint64_t a = rng(), b = rng();
    for (int i = 0; i < 16; ++i) id += hex[(a >> (4 * i)) & 15];
    for (int i = 0; i < 8; ++i) id += hex[(b >> (4 * i)) & 15];
    return id;
  }

  // ---- routes -------------------------------------------------------------------------------

  void check_auth(const httplib::Request& req) const {
    if (options.api_key.empty() || req.path == "/health") return;
    if (!same_secret(bearer_of(req), options.api_key))
      throw ApiError(401,
                     req.has_header("Authorization")
                         ? "Incorrect API key provided. Send it as 'Authorization: Bearer KEY' (gpt2 serve --api-key)."
                         : "You didn't provide an API key. Send it as 'Authorization: Bearer KEY' (gpt2 serve --api-key).",
                     "", "invalid_api_key");
  }

  EngineLoop& engine_or_throw() const {
    if (engine_failed) throw ApiError(500, "the engine has failed; see the server's log", "", "engine_failed");
    if (stopping) throw ApiError(503, "the server is shutting down", "", "shutting_down");
    EngineLoop* e = live_engine.load();
    if (e == nullptr) throw ApiError(503, "the model is loading; try again shortly", "", "model_loading");
    return *e;
  }

  // Every handler: authentication, then the handler; ApiErrors become OpenAI error bodies.
  template <typename F>
  httplib::Server::Handler guarded(F f) {
    return [this, f](const httplib::Request& req, httplib::Response& res) {
      try {
        check_auth(req);
        f(req, res);
      } catch (const ApiError& e) {
        send_error(res, e);
      }
    };
  }

  void install_routes() {
    static const std::vector<std::string> known = {"/health",  "/metrics",    "/v1/models",
                                                   "/v1/completions", "/tokenize", "/detokenize"};
    http.Get("/health", guarded([this](const httplib::Request&, httplib::Response& res) { health(res); }));
    http.Get("/metrics", guarded([this](const httplib::Request&, httplib::Response& res) {
      Gauges g;
      g.slots_total = options.parallel;
      g.model_loaded = live_engine.load() != nullptr;
      if (EngineLoop* e = live_engine.load()) {
        g.queue_length = e->waiting();
        g.slots_busy = e->running();
      }
      res.set_content(metrics.prometheus(g), "text/plain; version=0.0.4");
    }));
    http.Get("/v1/models", guarded([this](const httplib::Request&, httplib::Response& res) {
      ordered_json list;
      list["object"] = "list";
      list["data"] = ordered_json::array({model_json()});
      send_json(res, 200, list);
    }));
    http.Get(R"(/v1/models/(.+))", guarded([this](const httplib::Request& req, httplib::Response& res) {
      if (req.matches[1] != model_id)
        throw ApiError(404, "The model '" + std::string(req.matches[1]) + "' does not exist", "model", "model_not_found");
      send_json(res, 200, model_json());
    }));
    http.Post("/v1/completions", guarded([this](const httplib::Request& req, httplib::Response& res) { completions(req, res); }));
    http.Post("/tokenize", guarded([this](const httplib::Request& req, httplib::Response& res) { tokenize(req, res); }));
    http.Post("/detokenize", guarded([this](const httplib::Request& req, httplib::Response& res) { detokenize(req, res); }));

    // Anything else: 405 for a known path with the wrong method, 404 for an unknown path.
    auto fallback = guarded([](const httplib::Request& req, httplib::Response& res) {
      const std::string& p = req.path;
      const bool is_model = p.compare(0, 11, "/v1/models/") == 0;
      for (const std::string& k : known) {
        if (p == k || is_model) {
          const bool post = k == "/v1/completions" || k == "/tokenize" || k == "/detokenize";
          res.set_header("Allow", post && !is_model ? "POST" : "GET, HEAD");
          throw ApiError(405, "Method " + req.method + " is not allowed on " + p + " (use " +
                                  (post && !is_model ? "POST" : "GET") + ")",
                         "", "method_not_allowed");
        }
      }
      throw ApiError(404, "Unknown request URL: " + req.method + " " + p + ". Endpoints: POST /v1/completions, GET "
                          "/v1/models, POST /tokenize, POST /detokenize, GET /health, GET /metrics",
                     "", "unknown_url");
    });
    http.Get(".*", fallback);
    http.Post(".*", fallback);
    http.Put(".*", fallback);
    http.Patch(".*", fallback);
    http.Delete(".*", fallback);
    http.Options(".*", fallback);

    // Errors httplib answers itself (413, 400 for a malformed request line, ...) get an
    // OpenAI-style body too; ours already have one.
    http.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& res) {
      if (!res.body.empty() || res.content_provider_) return httplib::Server::HandlerResponse::Unhandled;
      send_json(res, res.status, error_json(status_words(res.status), ApiError::default_type(res.status), "", ""));
      return httplib::Server::HandlerResponse::Handled;
    }));
    http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string message = "internal error";
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        message = e.what();
      } catch (...) {
      }
      send_json(res, 500, error_json(message, "server_error", "", ""));
    });
    http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      metrics.http_response(res.status);
      if (options.verbose) log_note(req.method + " " + req.path + " " + std::to_string(res.status));
    });
  }

  ordered_json model_json() const {
    ordered_json m;
    m["id"] = model_id;
    m["object"] = "model";
    m["created"] = started;
    m["owned_by"] = "gpt2";
    return m;
  }

  void health(httplib::Response& res) const {
    ordered_json body;
    if (engine_failed) {
      body["status"] = "error";
      send_json(res, 500, body);
    } else if (stopping) {
      body["status"] = "shutting down";
      send_json(res, 503, body);
    } else if (live_engine.load() == nullptr) {
      body["status"] = "loading model";
      send_json(res, 503, body);
    } else {
      body["status"] = "ok";
      send_json(res, 200, body);
    }
  }

  // POST /tokenize {"content": str, "with_pieces": bool} -> {"tokens": [id] | [{"id", "piece"}]}
  void tokenize(const httplib::Request& req, httplib::Response& res) const {
    const json j = parse_json_object(req.body);
    bool with_pieces = false;
    const json* content = nullptr;
    for (const auto& [key, v] : j.items()) {
      if (key == "content") content = &v;
      else if (key == "with_pieces") {
        if (!v.is_boolean()) throw ApiError(400, "'with_pieces' must be a boolean", key);
        with_pieces = v.get<bool>();
      } else if (key != "add_special") {
        throw ApiError(400, "Unrecognized request argument supplied: " + key, key);
      }
    }
    if (content == nullptr || !content->is_string()) throw ApiError(400, "'content' must be a string", "content");
    const std::vector<int32_t> ids = tokenizer.encode(content->get_ref<const std::string&>(), Special::allow);
    ordered_json tokens = ordered_json::array();
    for (int32_t id : ids) {
      if (!with_pieces) {
        tokens.push_back(id);
        continue;
      }
      ordered_json t;
      t["id"] = id;
      t["piece"] = token_string(tokenizer, id);
      tokens.push_back(std::move(t));
    }
    ordered_json out;
    out["tokens"] = std::move(tokens);
    send_json(res, 200, out);
  }

  // POST /detokenize {"tokens": [id]} -> {"content": str}
  void detokenize(const httplib::Request& req, httplib::Response& res) const {
    const json j = parse_json_object(req.body);
    for (const auto& [key, v] : j.items())
      if (key != "tokens") throw ApiError(400, "Unrecognized request argument supplied: " + key, key);
    if (!j.contains("tokens") || !j["tokens"].is_array()) throw ApiError(400, "'tokens' must be an array of token ids", "tokens");
    std::vector<int32_t> ids;
    for (const json& t : j["tokens"]) {
      const bool ok = t.is_number_integer() && (t.is_number_unsigned() ? t.get<uint64_t>() < static_cast<uint64_t>(tokenizer.n_vocab())
                                                                        : t.get<int64_t>() >= 0 && t.get<int64_t>() < tokenizer.n_vocab());
      if (!ok) throw ApiError(400, "'tokens' holds " + t.dump() + ", not a token id in [0, " + std::to_string(tokenizer.n_vocab()) + ")", "tokens");
      ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
    }
    ordered_json out;
    out["content"] = to_valid_utf8(tokenizer.decode(ids));
    send_json(res, 200, out);
  }

  // ---- completions ----------------------------------------------------------------------------

  // Admits a job of `k` choices if there is room; false when slots and queue are full.
  bool reserve(const std::shared_ptr<Job>& job, int k) {
    std::lock_guard<std::mutex> lock(jobs_mutex);
    if (outstanding + k > capacity()) return false;
    outstanding += k;
    jobs.insert(job);
    return true;
  }

  // A choice has ended (engine thread), or was never submitted (handler).
  void release_room() {
    std::lock_guard<std::mutex> lock(jobs_mutex);
    --outstanding;
  }
  // Every choice of the job has ended.
  void forget(const std::shared_ptr<Job>& job) {
    std::lock_guard<std::mutex> lock(jobs_mutex);
    jobs.erase(job);
  }

  void cancel_job(EngineLoop& engine, Job& job) {
    std::vector<uint64_t> ids;
    {
      std::lock_guard<std::mutex> lock(job.mutex);
      for (size_t i = 0; i < job.ids.size(); ++i)
        if (job.ids[i] != 0 && !job.finished[i]) ids.push_back(job.ids[i]);
    }
    for (uint64_t id : ids) engine.cancel(id);
  }

  // Fails every job still in flight (shutdown, engine failure): their handlers stop waiting.
  void fail_all(const std::string& message, int status, bool cancel) {
    std::vector<std::shared_ptr<Job>> all;
    {
      std::lock_guard<std::mutex> lock(jobs_mutex);
      all.assign(jobs.begin(), jobs.end());
    }
    EngineLoop* engine = live_engine.load();
    for (const auto& job : all) {
      if (cancel && engine != nullptr) cancel_job(*engine, *job);
      std::lock_guard<std::mutex> lock(job->mutex);
      job->failure = message;
      job->failure_status = status;
      job->cv.notify_all();
    }
  }

  void completions(const httplib::Request& req, httplib::Response& res) {
    EngineLoop& engine = engine_or_throw();
    CompletionLimits limits;
    limits.n_ctx = n_ctx;
    limits.n_vocab = tokenizer.n_vocab();
    limits.max_choices = capacity();
    const CompletionRequest r = parse_completion_request(req.body, limits, tokenizer);

    const int n_choices = r.choices();
    auto job = std::make_shared<Job>();
    job->ids.assign(static_cast<size_t>(n_choices), 0);
    job->results.resize(static_cast<size_t>(n_choices));
    job->finished.assign(static_cast<size_t>(n_choices), false);
    job->remaining = n_choices;

    const std::string id = new_id();
    const int64_t created = static_cast<int64_t>(std::time(nullptr));
    const uint64_t seed = r.seed ? *r.seed : random_seed();
    int64_t prompt_tokens = 0;
    std::vector<std::string> prompt_texts;
    for (const auto& p : r.prompts) {
      prompt_tokens += static_cast<int64_t>(p.size());
      prompt_texts.push_back(to_valid_utf8(tokenizer.decode(p)));
    }
    if (r.stream && r.echo) {
      for (int c = 0; c < n_choices; ++c) job->events.push_back({c, prompt_texts[static_cast<size_t>(c / r.n)], false});
    }

    if (!reserve(job, n_choices)) {
      metrics.rejected();
      throw ApiError(503, "The server is busy: all " + std::to_string(options.parallel) + " slots and " +
                              std::to_string(options.queue) + " queue places are taken. Retry shortly.",
                     "", "server_busy");
    }
    metrics.completion_accepted(prompt_tokens);

    // One scheduler request per choice: prompt p, sample k of the request's seed.
    int submitted = 0;
    try {
      for (int c = 0; c < n_choices; ++c) {
        Request sr;
        sr.prompt = r.prompts[static_cast<size_t>(c / r.n)];
        GenerationParams& p = sr.params;
        p.n_predict = r.max_tokens;
        p.stop = r.stop;
        p.ignore_eos = r.ignore_eos;
        p.sampler = r.sampler;
        p.seed = seed;
        p.sample_index = c % r.n;
        p.logprobs = r.logprobs;
        p.prompt_logprobs = r.max_tokens == 0 || (r.echo && r.logprobs >= 0);
        if (r.stream) {
          sr.on_text = [job, c](const std::string& text) {
            std::lock_guard<std::mutex> lock(job->mutex);
            job->events.push_back({c, text, false});
            job->cv.notify_all();
          };
        }
        sr.on_done = [this, job, c](const Completion& done) {
          metrics.choice_done(done);
          // The room is given back before the client hears of the end, so that a client that
          // sends its next request at once finds it free.
          release_room();
          bool last = false;
          {
            std::lock_guard<std::mutex> lock(job->mutex);
            job->results[static_cast<size_t>(c)] = done;
            job->finished[static_cast<size_t>(c)] = true;
            last = --job->remaining == 0;
            job->events.push_back({c, "", true});
            job->cv.notify_all();
          }
          if (last) forget(job);
        };
        const uint64_t sid = engine.submit(std::move(sr));
        ++submitted;
        std::lock_guard<std::mutex> lock(job->mutex);
        job->ids[static_cast<size_t>(c)] = sid;
      }
    } catch (const Error& e) {
      // Room was reserved, so a full queue is not expected; any refusal undoes the whole job.
      cancel_job(engine, *job);
      bool last = false;
      {
        std::lock_guard<std::mutex> lock(job->mutex);
        job->remaining -= n_choices - submitted;
        last = job->remaining == 0;
      }
      for (int c = submitted; c < n_choices; ++c) release_room();
      if (last) forget(job);
      if (dynamic_cast<const QueueFull*>(&e) != nullptr) {
        metrics.rejected();
        throw ApiError(503, e.what(), "", "server_busy");
      }
      if (dynamic_cast<const UsageError*>(&e) != nullptr) throw ApiError(400, e.what());
      throw ApiError(500, e.what(), "", "engine_error");
    }

    // The client's socket, to notice when it goes away while the engine works.
    const int fd = find_connection_socket(req.remote_addr, req.remote_port, req.local_port);

    auto choice_output = [&r, &prompt_texts, this](int c, const Completion& done) {
      ChoiceOutput out;
      out.index = c;
      const std::string& prompt_text = prompt_texts[static_cast<size_t>(c / r.n)];
      out.text = (r.echo ? prompt_text : std::string()) + to_valid_utf8(done.text);
      out.finish_reason = done.finish_reason;
      if (r.logprobs >= 0) {
        static const std::vector<TokenLogprob> none;
        out.logprobs = logprobs_json(tokenizer, r.echo ? done.prompt_logprobs : none, done.token_logprobs,
                                     utf8_chars(prompt_text));
      }
      return out;
    };

    if (!r.stream) {
      std::unique_lock<std::mutex> lock(job->mutex);
      while (job->remaining > 0 && job->failure.empty()) {
        job->cv.wait_for(lock, kPollInterval);
        if (job->remaining > 0 && peer_closed(fd)) {
          lock.unlock();
          cancel_job(engine, *job);
          res.status = 499;  // the client closed the connection: nobody reads this
          return;
        }
      }
      if (!job->failure.empty()) {
        const ApiError e(job->failure_status, job->failure);
        lock.unlock();
        cancel_job(engine, *job);
        throw e;
      }
      std::vector<ChoiceOutput> choices;
      int64_t completion_tokens = 0;
      for (int c = 0; c < n_choices; ++c) {
        const Completion& done = job->results[static_cast<size_t>(c)];
        completion_tokens += static_cast<int64_t>(done.tokens.size());
        choices.push_back(choice_output(c, done));
      }
      send_json(res, 200, completion_json(id, created, model_id, choices, prompt_tokens, completion_tokens));
      return;
    }

    // Streaming: Server-Sent Events as the text comes, one chunk per piece (whole UTF-8
    // characters: the scheduler's on_text is UTF-8-safe), each choice's end with its finish
    // reason (and its logprobs, with logprobs), the usage with include_usage, then [DONE].
    struct StreamState {
      int64_t completion_tokens = 0;
      bool finished = false;
    };
    auto state = std::make_shared<StreamState>();
    const bool include_usage = r.include_usage;
    auto choice_done = std::make_shared<std::function<ordered_json(int, const Completion&)>>(
        [r, prompt_texts, this](int c, const Completion& done) {
          ordered_json logprobs = nullptr;
          if (r.logprobs >= 0) {
            static const std::vector<TokenLogprob> none;
            const std::string& prompt_text = prompt_texts[static_cast<size_t>(c / r.n)];
            logprobs = logprobs_json(tokenizer, r.echo ? done.prompt_logprobs : none, done.token_logprobs,
                                     utf8_chars(prompt_text));
          }
          return logprobs;
        });
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, job, state, fd, id, created, include_usage, prompt_tokens, choice_done](size_t, httplib::DataSink& sink) {
          std::deque<Job::Event> events;
          int remaining = 0;
          std::string failure;
          {
            std::unique_lock<std::mutex> lock(job->mutex);
            if (job->events.empty() && job->remaining > 0 && job->failure.empty()) job->cv.wait_for(lock, kPollInterval);
            events.swap(job->events);
            remaining = job->remaining;
            failure = job->failure;
          }
          if (!failure.empty()) return false;  // shutting down: the stream ends unfinished
          if (events.empty() && remaining > 0) return !peer_closed(fd);
          std::string out;
          for (const Job::Event& ev : events) {
            if (!ev.done) {
              if (!ev.text.empty())
                out += sse(chunk_json(id, created, model_id, ev.choice, ev.text, nullptr, nullptr, include_usage));
              continue;
            }
            Completion done;
            {
              std::lock_guard<std::mutex> lock(job->mutex);
              done = job->results[static_cast<size_t>(ev.choice)];
            }
            if (done.finish_reason == FinishReason::cancelled) return false;
            state->completion_tokens += static_cast<int64_t>(done.tokens.size());
            out += sse(chunk_json(id, created, model_id, ev.choice, "", openai_finish_reason(done.finish_reason),
                                  (*choice_done)(ev.choice, done), include_usage));
          }
          const bool last = remaining == 0;
          if (last) {
            if (include_usage) out += sse(usage_chunk_json(id, created, model_id, prompt_tokens, state->completion_tokens));
            out += "data: [DONE]\n\n";
          }
          if (!out.empty() && !sink.write(out.data(), out.size())) return false;
          if (last) {
            state->finished = true;
            sink.done();
          }
          return true;
        },
        [this, job, state](bool success) {
          // The stream ended: written to the end, or cut (the client went away or stalled past
          // --timeout, or the server is stopping): then its choices are cancelled.
          if (!success || !state->finished) {
            if (EngineLoop* e = live_engine.load()) cancel_job(*e, *job);
          }
        });
  }
};

Server::Server(const ServerOptions& options, const Tokenizer& tokenizer, std::string model_id, int n_ctx)
    : impl_(std::make_unique<Impl>(options, tokenizer, std::move(model_id), n_ctx)) {
  if (options.parallel < 1) throw UsageError("--parallel must be 1 or more (got " + std::to_string(options.parallel) + ")");
  if (options.queue < 0) throw UsageError("--queue must be 0 or more (got " + std::to_string(options.queue) + ")");
  if (options.timeout_s < 1) throw UsageError("--timeout must be 1 second or more (got " + std::to_string(options.timeout_s) + ")");
  if (options.port < 0 || options.port > 65535)
    throw UsageError("--port must be from 0 to 65535 (got " + std::to_string(options.port) + ")");
  Impl& s = *impl_;
  const int threads = s.capacity() + kSpareThreads;
  s.http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  s.http.set_read_timeout(options.timeout_s, 0);
  s.http.set_write_timeout(options.timeout_s, 0);
  // An idle keep-alive connection holds a pool thread (httplib polls it) and delays shutdown by
  // up to this long.
  s.http.set_keep_alive_timeout(std::min(options.timeout_s, 2));
  s.http.set_keep_alive_max_count(1000);
  s.http.set_payload_max_length(options.max_body);
  s.install_routes();
}

Server::~Server() {
  shutdown();
  wait();
}

int Server::bind() {
  Impl& s = *impl_;
  if (s.options.port == 0) {
    s.port = s.http.bind_to_any_port(s.options.host);
    if (s.port <= 0) throw Error("cannot listen on " + s.options.host + " (any port): is the address one of this machine's?");
  } else {
    if (!s.http.bind_to_port(s.options.host, s.options.port))
      throw Error("cannot listen on " + s.options.host + ":" + std::to_string(s.options.port) +
                  ": the port is in use or the address is not this machine's (try --port 0 for any free port)");
    s.port = s.options.port;
  }
  return s.port;
}

void Server::start() {
  Impl& s = *impl_;
  s.listener = std::thread([&s] {
    s.http.listen_after_bind();
    s.listener_done = true;
  });
}

void Server::attach(StepModel& model, const SchedulerOptions& scheduler) {
  Impl& s = *impl_;
  if (s.stopping) return;
  s.token_text = std::make_unique<TokenizerText>(s.tokenizer);
  SchedulerOptions so = scheduler;
  // The server bounds the choices in flight at parallel + queue itself; the scheduler's
  // queue must hold them all even while slots are being handed over.
  so.max_queue = s.capacity();
  s.engine_owner = std::make_unique<EngineLoop>(model, *s.token_text, so, [&s](const std::string& message) {
    log_warning("the engine stopped: " + message);
    s.engine_failed = true;
    s.fail_all("the engine failed: " + message, 500, false);
  });
  s.live_engine = s.engine_owner.get();
}

void Server::shutdown() {
  Impl& s = *impl_;
  if (s.stopping.exchange(true)) return;
  // httplib's stop() does nothing until the listener runs: a shutdown right after start()
  // waits (briefly) for it.
  if (s.listener.joinable()) {
    const auto deadline = Clock::now() + std::chrono::seconds(5);
    while (!s.http.is_running() && !s.listener_done && Clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  s.http.stop();
  s.fail_all("the server is shutting down", 503, true);
}

void Server::wait() {
  Impl& s = *impl_;
  if (s.listener.joinable()) s.listener.join();
  if (s.engine_owner) {
    // Every handler has returned; what they left running was cancelled by shutdown().
    s.fail_all("the server is shutting down", 503, true);
    s.engine_owner->stop();
  }
}

}  // namespace gpt2::server
