// `gpt2 serve` end to end: the real binary on the tiny model, on a port the OS picks, spoken to
// over HTTP. Each test starts its own server and kills it at the end (ServerProcess).
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/cli_run.h"
#include "server/http_client.h"
#include "server/server_process.h"

using nlohmann::json;
using gpt2::server::HttpConnection;
using gpt2::server::HttpResponse;
using gpt2::server::SseReader;
using gpt2::test::ServerProcess;

namespace {

const char* kHost = "127.0.0.1";

// How long a test waits for the server: `seconds`, times 10 under ThreadSanitizer and 3 under
// AddressSanitizer (scripts/sanitize.sh sets GPT2_TEST_SANITIZER), where the server runs that
// much slower. Only waits are scaled, never a timeout the server is told to keep.
int patience(int seconds) {
  const char* sanitizer = std::getenv("GPT2_TEST_SANITIZER");
  const std::string name = sanitizer ? sanitizer : "";
  return seconds * (name == "thread" ? 10 : name == "address" ? 3 : 1);
}

struct Reply {
  int status = 0;
  json body;
  HttpResponse raw;
};

Reply request(int port, const std::string& method, const std::string& path, const std::string& body = "",
              const std::vector<std::string>& headers = {}) {
  Reply r;
  r.raw = gpt2::server::http_request(kHost, port, method, path, body, headers, patience(60));
  r.status = r.raw.status;
  r.body = json::parse(r.raw.body, nullptr, false);
  return r;
}

Reply post(int port, const std::string& path, const json& body, const std::vector<std::string>& headers = {}) {
  return request(port, "POST", path, body.dump(), headers);
}

Reply complete(int port, const json& body, const std::vector<std::string>& headers = {}) {
  return post(port, "/v1/completions", body, headers);
}

// A streamed completion: the text of each choice (chunks concatenated), its finish reason, the
// usage chunk, whether [DONE] came last.
struct Streamed {
  int status = 0;
  std::map<int, std::string> text;
  std::map<int, std::string> finish;
  std::map<int, json> logprobs;
  json usage;
  bool done = false;
  int chunks = 0;
  bool usage_null_on_chunks = true;
};

// Catch2's assertions are not thread-safe (TSan: a race on Catch's RunContext), and stream() runs
// on several threads at once in the concurrency test: its assertions take turns.
std::mutex g_catch_mutex;

Streamed stream(int port, json body) {
  body["stream"] = true;
  HttpConnection conn(kHost, port, patience(60));
  conn.send("POST", "/v1/completions", body.dump(), {"Connection: close"});
  Streamed s;
  const HttpResponse head = conn.read_head();
  s.status = head.status;
  if (head.status != 200) return s;
  { const std::lock_guard<std::mutex> catch_lock(g_catch_mutex); CHECK(head.header("content-type").find("text/event-stream") == 0); }
  SseReader events(conn);
  std::string data;
  while (events.next(data)) {
    { const std::lock_guard<std::mutex> catch_lock(g_catch_mutex); REQUIRE_FALSE(s.done); }  // nothing after [DONE]
    if (data == "[DONE]") {
      s.done = true;
      continue;
    }
    const json chunk = json::parse(data);
    { const std::lock_guard<std::mutex> catch_lock(g_catch_mutex); CHECK(chunk["object"] == "text_completion"); }
    ++s.chunks;
    if (chunk.contains("usage") && !chunk["usage"].is_null()) {
      { const std::lock_guard<std::mutex> catch_lock(g_catch_mutex); CHECK(chunk["choices"].empty()); }
      s.usage = chunk["usage"];
      continue;
    }
    if (body.contains("stream_options") && !chunk.contains("usage")) s.usage_null_on_chunks = false;
    { const std::lock_guard<std::mutex> catch_lock(g_catch_mutex); REQUIRE(chunk["choices"].size() == 1); }
    const json& c = chunk["choices"][0];
    const int index = c["index"].get<int>();
    s.text[index] += c["text"].get<std::string>();
    if (!c["finish_reason"].is_null()) {
      { const std::lock_guard<std::mutex> catch_lock(g_catch_mutex); CHECK(s.finish.count(index) == 0); }
      s.finish[index] = c["finish_reason"].get<std::string>();
      s.logprobs[index] = c["logprobs"];
    }
  }
  return s;
}

// A value of /metrics: the line that starts with `series` (name and labels, as printed).
double metric(int port, const std::string& series, const std::vector<std::string>& headers = {}) {
  const HttpResponse r = gpt2::server::http_request(kHost, port, "GET", "/metrics", "", headers, patience(30));
  REQUIRE(r.status == 200);
  std::istringstream in(r.body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, series.size() + 1, series + " ") == 0) return std::stod(line.substr(series.size() + 1));
  }
  FAIL("no metric " << series << " in\n" << r.body);
  return 0;
}

// Polls `done` every 20 ms for at most `seconds` (times patience(1)).
template <typename F>
bool eventually(F done, double seconds = 20) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds * patience(1));
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

// A request that must succeed after an error: the server keeps serving.
void expect_good_request(int port, const std::vector<std::string>& headers = {}) {
  const Reply r = complete(port, {{"prompt", "Hello"}, {"max_tokens", 3}, {"temperature", 0}}, headers);
  REQUIRE(r.status == 200);
  CHECK(r.body["choices"][0]["text"].is_string());
}

void expect_error(const Reply& r, int status, const std::string& param = "") {
  INFO(r.raw.body);
  CHECK(r.status == status);
  REQUIRE(r.body.is_object());
  REQUIRE(r.body.contains("error"));
  const json& e = r.body["error"];
  CHECK(e["message"].is_string());
  CHECK(e["type"].is_string());
  CHECK(e.contains("param"));
  CHECK(e.contains("code"));
  if (!param.empty()) CHECK(e["param"] == param);
}

}  // namespace

TEST_CASE("serve: a greedy completion is what gpt2 generate --greedy writes") {
  ServerProcess server({});
  const std::string prompt = "Hello, my name is";
  const gpt2::test::Run gen = gpt2::test::run_gpt2(
      {"generate", "-m", gpt2::test::tiny_model(), "--device", "cpu", "--greedy", "-n", "24", "--json", "-p", prompt});
  REQUIRE(gen.exit_code == 0);
  const json expected = json::parse(gen.out);
  const Reply r = complete(server.port(), {{"model", "tiny-gpt2"}, {"prompt", prompt}, {"max_tokens", 24}, {"temperature", 0}});
  REQUIRE(r.status == 200);
  const json& body = r.body;
  CHECK(body["object"] == "text_completion");
  CHECK(body["id"].get<std::string>().compare(0, 5, "cmpl-") == 0);
  CHECK(body["created"].is_number_integer());
  CHECK(body["model"] == "tiny-gpt2");
  REQUIRE(body["choices"].size() == 1);
  const json& choice = body["choices"][0];
  CHECK(choice["index"] == 0);
  CHECK(choice["logprobs"].is_null());
  CHECK(choice["text"] == expected["samples"][0]["text"]);
  const std::string gen_reason = expected["samples"][0]["finish_reason"];
  CHECK(choice["finish_reason"] == (gen_reason == "length" ? "length" : "stop"));
  const size_t n_tokens = expected["samples"][0]["tokens"].size();
  CHECK(body["usage"]["prompt_tokens"] == expected["prompt_tokens"].size());
  CHECK(body["usage"]["completion_tokens"] == n_tokens);
  CHECK(body["usage"]["total_tokens"] == expected["prompt_tokens"].size() + n_tokens);
  // The keys in OpenAI's order.
  CHECK(r.raw.body.find(R"({"id":)") == 0);
  CHECK(r.raw.body.find(R"("choices":[{"text":)") != std::string::npos);

  SECTION("and a seeded sample is what gpt2 generate --seed writes") {
    const gpt2::test::Run sampled = gpt2::test::run_gpt2(
        {"generate", "-m", gpt2::test::tiny_model(), "--device", "cpu", "--seed", "7", "--temperature", "0.8",
         "--top-k", "40", "--top-p", "1", "--min-p", "0", "-n", "20", "--num-samples", "2", "--json", "-p", prompt});
    REQUIRE(sampled.exit_code == 0);
    const json want = json::parse(sampled.out);
    const Reply got = complete(server.port(), {{"prompt", prompt}, {"max_tokens", 20}, {"temperature", 0.8}, {"top_k", 40},
                                               {"seed", 7}, {"n", 2}});
    REQUIRE(got.status == 200);
    REQUIRE(got.body["choices"].size() == 2);
    for (int k = 0; k < 2; ++k) CHECK(got.body["choices"][k]["text"] == want["samples"][k]["text"]);
  }
  CHECK(server.stop() == 0);
}

TEST_CASE("serve: echo with logprobs gives the prompt's log-probabilities as gpt2 score --json does") {
  ServerProcess server({});
  const std::string text = "The quick brown fox jumps over the lazy dog. It was not amused.";
  const gpt2::test::Run score =
      gpt2::test::run_gpt2({"score", "-m", gpt2::test::tiny_model(), "--device", "cpu", "--json", "-p", text});
  REQUIRE(score.exit_code == 0);
  const json want = json::parse(score.out);
  const Reply r = complete(server.port(), {{"prompt", text}, {"max_tokens", 0}, {"echo", true}, {"logprobs", 3}});
  REQUIRE(r.status == 200);
  const json& choice = r.body["choices"][0];
  CHECK(choice["text"] == text);
  CHECK(choice["finish_reason"] == "length");
  const json& lp = choice["logprobs"];
  REQUIRE(lp["tokens"].size() == want["tokens"].size());
  REQUIRE(lp["token_logprobs"].size() == want["tokens"].size());
  CHECK(lp["token_logprobs"][0].is_null());
  CHECK(lp["top_logprobs"][0].is_null());
  CHECK(lp["text_offset"][0] == 0);
  double max_diff = 0;
  for (size_t i = 0; i < want["tokens"].size(); ++i) {
    CHECK(lp["tokens"][i] == want["tokens"][i]["text"]);
    if (i == 0) {
      CHECK(want["tokens"][i]["logprob"].is_null());
      continue;
    }
    const double a = lp["token_logprobs"][i].get<double>(), b = want["tokens"][i]["logprob"].get<double>();
    max_diff = std::max(max_diff, std::abs(a - b));
    CHECK(lp["top_logprobs"][i].size() == 3);
  }
  CHECK(max_diff <= 1e-5);
  CHECK(r.body["usage"]["completion_tokens"] == 0);
  CHECK(r.body["usage"]["prompt_tokens"] == want["n_tokens"]);

  SECTION("with new tokens too: the prompt's entries, then the completion's") {
    const Reply more = complete(server.port(), {{"prompt", text}, {"max_tokens", 4}, {"echo", true}, {"logprobs", 0},
                                                {"temperature", 0}, {"ignore_eos", true}});
    REQUIRE(more.status == 200);
    const json& c = more.body["choices"][0];
    CHECK(c["logprobs"]["tokens"].size() == want["tokens"].size() + 4);
    CHECK(c["text"].get<std::string>().compare(0, text.size(), text) == 0);
    const double first_new = c["logprobs"]["token_logprobs"][want["tokens"].size()].get<double>();
    CHECK(first_new <= 0);
    CHECK(c["logprobs"]["text_offset"][want["tokens"].size()] == text.size());
  }
}

TEST_CASE("serve: a stream concatenates to the non-streamed text") {
  ServerProcess server({"--parallel", "4"});
  const std::vector<json> requests = {
      {{"prompt", "Once upon a time"}, {"max_tokens", 40}, {"temperature", 0}},
      {{"prompt", "Once upon a time"}, {"max_tokens", 30}, {"seed", 3}, {"temperature", 1.0}, {"ignore_eos", true}},
      {{"prompt", {"A", "B b"}}, {"max_tokens", 30}, {"seed", 11}, {"n", 2}, {"top_k", 50}},
      {{"prompt", "Echo me"}, {"max_tokens", 10}, {"echo", true}, {"temperature", 0}},
      {{"prompt", "Stop here"}, {"max_tokens", 100}, {"seed", 5}, {"stop", {"e", "a"}}},
      {{"prompt", {15496, 11, 616}}, {"max_tokens", 80}, {"seed", 9}, {"ignore_eos", true}, {"logprobs", 1}},
      {{"prompt", "\xe4\xbd\xa0\xe5\xa5\xbd"}, {"max_tokens", 60}, {"seed", 1}, {"ignore_eos", true},
       {"stream_options", {{"include_usage", true}}}},
  };
  for (const json& req : requests) {
    INFO(req.dump());
    json plain = req;
    plain.erase("stream_options");
    const Reply whole = complete(server.port(), plain);
    REQUIRE(whole.status == 200);
    const Streamed s = stream(server.port(), req);
    REQUIRE(s.status == 200);
    CHECK(s.done);
    const json& choices = whole.body["choices"];
    REQUIRE(s.text.size() == choices.size());
    for (const json& c : choices) {
      const int index = c["index"].get<int>();
      CHECK(s.text.at(index) == c["text"].get<std::string>());
      CHECK(s.finish.at(index) == c["finish_reason"].get<std::string>());
      if (req.contains("logprobs")) CHECK(s.logprobs.at(index) == c["logprobs"]);
    }
    if (req.contains("stream_options")) {
      CHECK(s.usage == whole.body["usage"]);
      CHECK(s.usage_null_on_chunks);
    } else {
      CHECK(s.usage.is_null());
    }
  }
}

TEST_CASE("serve: 16 concurrent requests give what the same requests give one at a time") {
  ServerProcess server({"--parallel", "4", "--queue", "16"});
  std::vector<json> requests;
  for (int i = 0; i < 16; ++i) {
    json r = {{"prompt", "Request number " + std::to_string(i) + " says"},
              {"max_tokens", 8 + 5 * (i % 7)},
              {"seed", 100 + i},
              {"temperature", i % 4 == 0 ? 0.0 : 0.9},
              {"top_p", 0.95}};
    if (i % 3 == 0) r["ignore_eos"] = true;
    if (i % 5 == 0) r["n"] = 2;
    if (i % 2 == 1) r["stream"] = true;
    requests.push_back(r);
  }
  // The texts of a request's choices, streamed or not.
  auto run = [&](const json& r) {
    std::map<int, std::string> texts;
    if (r.value("stream", false)) {
      const Streamed s = stream(server.port(), r);
      if (s.status == 200 && s.done) texts = s.text;
    } else {
      const Reply rep = complete(server.port(), r);
      if (rep.status == 200)
        for (const json& c : rep.body["choices"]) texts[c["index"].get<int>()] = c["text"].get<std::string>();
    }
    return texts;
  };
  std::vector<std::map<int, std::string>> alone;
  for (const json& r : requests) alone.push_back(run(r));
  std::vector<std::map<int, std::string>> together(requests.size());
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (size_t i = 0; i < requests.size(); ++i) {
    threads.emplace_back([&, i] {
      try {
        together[i] = run(requests[i]);
      } catch (const std::exception&) {
        ++failures;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  CHECK(failures == 0);
  for (size_t i = 0; i < requests.size(); ++i) {
    INFO("request " << i << ": " << requests[i].dump());
    CHECK_FALSE(alone[i].empty());
    CHECK(together[i] == alone[i]);
  }
  // The gauges follow the engine's step, a moment after the last response.
  CHECK(eventually([&] { return metric(server.port(), "gpt2_slots_busy") == 0 && metric(server.port(), "gpt2_queue_length") == 0; }));
  CHECK(server.stop() == 0);
}

TEST_CASE("serve: every error is OpenAI's error object, and the server keeps serving") {
  ServerProcess server({"--api-key", "sekrit", "--max-body", "4096", "--timeout", "2"});
  const int port = server.port();
  const std::vector<std::string> auth = {"Authorization: Bearer sekrit"};

  // 401: no key, a wrong key; /health needs none.
  expect_error(complete(port, {{"prompt", "x"}}), 401);
  expect_good_request(port, auth);
  expect_error(complete(port, {{"prompt", "x"}}, {"Authorization: Bearer wrong"}), 401);
  expect_good_request(port, auth);
  CHECK(request(port, "GET", "/health").status == 200);
  expect_error(request(port, "GET", "/metrics"), 401);
  expect_good_request(port, auth);

  // 400: malformed JSON, a wrong type, out of range (naming the parameter), beyond the context.
  expect_error(request(port, "POST", "/v1/completions", "{\"prompt\": ", auth), 400);
  expect_good_request(port, auth);
  expect_error(request(port, "POST", "/v1/completions", "[1, 2]", auth), 400);
  expect_good_request(port, auth);
  expect_error(complete(port, {{"prompt", "x"}, {"max_tokens", "ten"}}, auth), 400, "max_tokens");
  expect_good_request(port, auth);
  expect_error(complete(port, {{"prompt", "x"}, {"temperature", 5}}, auth), 400, "temperature");
  expect_good_request(port, auth);
  expect_error(complete(port, {{"prompt", "x"}, {"logprobs", 50}}, auth), 400, "logprobs");
  expect_good_request(port, auth);
  expect_error(complete(port, {{"prompt", {1, 2, 60000}}}, auth), 400, "prompt");
  expect_good_request(port, auth);
  expect_error(complete(port, {{"prompt", "x"}, {"bogus", 1}}, auth), 400, "bogus");
  expect_good_request(port, auth);
  const Reply too_long = complete(port, {{"prompt", std::vector<int>(200, 11)}, {"max_tokens", 100}}, auth);
  expect_error(too_long, 400, "prompt");
  CHECK(too_long.body["error"]["code"] == "context_length_exceeded");
  expect_good_request(port, auth);
  expect_error(post(port, "/tokenize", {{"content", 5}}, auth), 400, "content");
  expect_good_request(port, auth);
  expect_error(post(port, "/detokenize", {{"tokens", {-5}}}, auth), 400, "tokens");
  expect_good_request(port, auth);

  // 404 and 405.
  expect_error(request(port, "GET", "/v1/nothing", "", auth), 404);
  expect_good_request(port, auth);
  expect_error(request(port, "POST", "/v1/chat/completions", "{}", auth), 404);
  expect_good_request(port, auth);
  const Reply wrong_method = request(port, "GET", "/v1/completions", "", auth);
  expect_error(wrong_method, 405);
  CHECK(wrong_method.raw.header("allow") == "POST");
  expect_good_request(port, auth);
  expect_error(request(port, "DELETE", "/v1/models", "", auth), 405);
  expect_good_request(port, auth);

  // 413: a body over --max-body.
  const std::string big = json{{"prompt", std::string(8000, 'a')}}.dump();
  expect_error(request(port, "POST", "/v1/completions", big, auth), 413);
  expect_good_request(port, auth);

  // 400 from a request that is not HTTP.
  {
    HttpConnection conn(kHost, port, patience(10));
    conn.send_raw("this is not HTTP\r\n\r\n");
    const HttpResponse r = conn.read_response();
    CHECK(r.status == 400);
    CHECK(json::parse(r.body, nullptr, false).contains("error"));
  }
  expect_good_request(port, auth);

  // A client that stalls in the middle of its request is let go after --timeout.
  {
    HttpConnection conn(kHost, port, patience(15));
    conn.send_raw("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"prompt\"");
    const auto start = std::chrono::steady_clock::now();
    bool closed = false;
    try {
      const HttpResponse r = conn.read_response();
      closed = r.status >= 400;
    } catch (const std::exception&) {
      closed = true;  // the server closed the connection without an answer
    }
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    CHECK(closed);
    CHECK(waited < 12);
  }
  expect_good_request(port, auth);
  CHECK(metric(port, "gpt2_http_requests_total{code=\"401\"}", auth) >= 3);
  CHECK(server.stop() == 0);
}

TEST_CASE("serve: 503 with Retry-After while the slots and the queue are full") {
  ServerProcess server({"--parallel", "1", "--queue", "1"});
  const int port = server.port();
  // More choices than the server can ever hold is the client's error.
  expect_error(complete(port, {{"prompt", "x"}, {"n", 3}}), 400, "n");
  // Fill slot and queue with a slow request (a long prompt scored with 20 alternatives per
  // token, twice), then ask for more while it runs. Retried a few times in case the machine
  // finishes it before the second request arrives.
  const json slow = {{"prompt", std::vector<int>(250, 464)}, {"max_tokens", 1}, {"echo", true}, {"logprobs", 20}, {"n", 2}};
  bool saw_503 = false;
  for (int attempt = 0; attempt < 5 && !saw_503; ++attempt) {
    // Catch2 assertions are not thread-safe (TSan: a race on Catch's RunContext): the filler
    // thread only records its status, checked after the join.
    int filler_status = 0;
    std::thread filler([&] { filler_status = complete(port, slow).status; });
    const bool full = eventually([&] { return metric(port, "gpt2_slots_busy") == 1 && metric(port, "gpt2_queue_length") == 1; }, 10);
    if (full) {
      const Reply r = complete(port, {{"prompt", "x"}, {"max_tokens", 2}});
      if (r.status == 503) {
        saw_503 = true;
        expect_error(r, 503);
        CHECK(r.raw.header("retry-after") == "1");
        CHECK(r.body["error"]["code"] == "server_busy");
      }
    }
    filler.join();
    CHECK(filler_status == 200);
  }
  CHECK(saw_503);
  CHECK(metric(port, "gpt2_requests_rejected_total") >= 1);
  expect_good_request(port);
}

TEST_CASE("serve: a client that disconnects has its sequences cancelled and its slot freed") {
  ServerProcess server({"--parallel", "2", "--queue", "64"});
  const int port = server.port();
  // 64 choices of 250 tokens through 2 slots: seconds of work, nearly all of it left when the
  // client goes away after the first chunk.
  const json long_request = {{"prompt", "Go"}, {"max_tokens", 250}, {"n", 64}, {"ignore_eos", true}, {"seed", 1}};
  const int total_tokens = 64 * 250;

  SECTION("mid-stream") {
    {
      json body = long_request;
      body["stream"] = true;
      HttpConnection conn(kHost, port, patience(30));
      conn.send("POST", "/v1/completions", body.dump());
      REQUIRE(conn.read_head().status == 200);
      SseReader events(conn);
      std::string data;
      REQUIRE(events.next(data));
      CHECK(json::parse(data)["choices"][0]["text"].is_string());
    }  // the connection closes here
  }
  SECTION("while waiting for a whole response") {
    HttpConnection conn(kHost, port, patience(30));
    conn.send("POST", "/v1/completions", long_request.dump());
    REQUIRE(eventually([&] { return metric(port, "gpt2_slots_busy") == 2; }, 20));
    conn.close();
  }
  CHECK(eventually([&] { return metric(port, "gpt2_slots_busy") == 0 && metric(port, "gpt2_queue_length") == 0; }, 30));
  CHECK(metric(port, "gpt2_completions_total{finish_reason=\"cancelled\"}") >= 32);
  CHECK(metric(port, "gpt2_generated_tokens_total") < total_tokens / 2);
  expect_good_request(port);
  CHECK(server.stop() == 0);
}

TEST_CASE("serve: models, tokenize, detokenize, health and metrics") {
  ServerProcess server({});
  const int port = server.port();
  const Reply models = request(port, "GET", "/v1/models");
  REQUIRE(models.status == 200);
  CHECK(models.body["object"] == "list");
  CHECK(models.body["data"][0]["id"] == "tiny-gpt2");
  CHECK(models.body["data"][0]["object"] == "model");
  CHECK(request(port, "GET", "/v1/models/tiny-gpt2").body["id"] == "tiny-gpt2");
  expect_error(request(port, "GET", "/v1/models/gpt-4"), 404, "model");
  const Reply tok = post(port, "/tokenize", {{"content", "Hello world"}});
  REQUIRE(tok.status == 200);
  CHECK(tok.body["tokens"] == json({15496, 995}));
  const Reply pieces = post(port, "/tokenize", {{"content", "Hello world"}, {"with_pieces", true}});
  CHECK(pieces.body["tokens"][1] == json({{"id", 995}, {"piece", " world"}}));
  const Reply detok = post(port, "/detokenize", {{"tokens", {15496, 995}}});
  REQUIRE(detok.status == 200);
  CHECK(detok.body["content"] == "Hello world");
  const Reply health = request(port, "GET", "/health");
  CHECK(health.status == 200);
  CHECK(health.body["status"] == "ok");
  expect_good_request(port);
  CHECK(metric(port, "gpt2_completion_requests_total") == 1);
  CHECK(metric(port, "gpt2_slots_total") == 4);
  CHECK(metric(port, "gpt2_model_loaded") == 1);
  CHECK(metric(port, "gpt2_time_to_first_token_seconds_count") == 1);
  CHECK(metric(port, "gpt2_inter_token_latency_seconds_count") == 2);
  CHECK(metric(port, "process_resident_memory_bytes") > 0);
}

TEST_CASE("serve: /health is 503 while the model loads, then 200; SIGINT mid-stream exits 0") {
  // random:distilgpt2 takes a moment to build, long enough to see the server listen first.
  ServerProcess server({"--parallel", "1"}, "random:distilgpt2", /*wait_ready=*/false);
  const Reply first = request(server.port(), "GET", "/health");
  if (first.status == 503) {
    CHECK(first.body["status"] == "loading model");
    expect_error(complete(server.port(), {{"prompt", "x"}}), 503);
  } else {
    WARN("the model loaded before the first /health: " << first.raw.body);
  }
  server.wait_healthy();
  // A stream that is still running when SIGINT comes: the server cancels it and exits 0.
  HttpConnection conn(kHost, server.port(), patience(30));
  conn.send("POST", "/v1/completions",
            json{{"prompt", "x"}, {"max_tokens", 500}, {"ignore_eos", true}, {"stream", true}}.dump());
  REQUIRE(conn.read_head().status == 200);
  SseReader events(conn);
  std::string data;
  REQUIRE(events.next(data));
  const auto start = std::chrono::steady_clock::now();
  CHECK(server.stop(SIGINT, patience(30)) == 0);
  CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < 15);
}

// The most a TCP socket's send buffer grows to: Linux autotunes it up to tcp_wmem's third field
// (4 MiB by default; machines differ).
namespace {
int64_t max_send_buffer() {
  std::ifstream f("/proc/sys/net/ipv4/tcp_wmem");
  int64_t low = 0, initial = 0, most = 0;
  if (f >> low >> initial >> most && most > 0) return most;
  return int64_t{4} << 20;
}
}  // namespace

TEST_CASE("serve: a client that stops reading a stream is dropped after --timeout, freeing its slots") {
  // Events that nobody reads, into a 4 KiB receive window: once the socket buffers are full, the
  // server's write waits --timeout and gives up, cancelling the rest. The events must be well
  // past what the server's send buffer can take (autotuned, up to max_send_buffer()): about 190
  // bytes per token, 250 tokens per choice, so 3x that buffer in choices of 128 per prompt.
  const int64_t choices = std::clamp<int64_t>(3 * max_send_buffer() / (190 * 250) + 1, 64, 1024);
  const int64_t n = std::min<int64_t>(choices, 128), n_prompts = (choices + n - 1) / n;
  ServerProcess server({"--parallel", "2", "--queue", std::to_string(n * n_prompts), "--timeout", "1"});
  const int port = server.port();
  HttpConnection conn(kHost, port, patience(30), 4096);
  conn.send("POST", "/v1/completions",
            json{{"prompt", std::vector<std::string>(static_cast<size_t>(n_prompts), "Go")},
                 {"max_tokens", 250},
                 {"n", n},
                 {"ignore_eos", true},
                 {"temperature", 0},
                 {"stream", true}}
                .dump());
  CHECK(eventually([&] { return metric(port, "gpt2_completions_total{finish_reason=\"cancelled\"}") >= 1; }, 120));
  CHECK(eventually([&] { return metric(port, "gpt2_slots_busy") == 0 && metric(port, "gpt2_queue_length") == 0; }, 30));
  CHECK(metric(port, "gpt2_generated_tokens_total") < static_cast<double>(n * n_prompts * 250));
  expect_good_request(port);  // while the stalled client still holds its connection
  CHECK(server.stop() == 0);
}
