// serve_load: a bounded load test for `gpt2 serve` on loopback (README "Serving").
//
//   serve_load --port P --concurrency 1,8,32 --duration 30 --max-tokens 64
//       For each concurrency C: C clients, each streaming completions one after another for
//       --duration seconds (then it finishes the one in flight). Prints, per C: requests,
//       generated tokens, aggregate tokens/s, time to first token (request sent -> first text
//       chunk) and inter-token latency (between consecutive text chunks) at p50 and p99.
//   serve_load --port P --soak 10000 --concurrency 16
//       N requests of mixed shapes (streamed or not, n 1-2, 1-32 tokens, stop strings, echo),
//       each checked (status 200, a well-formed body, [DONE] at a stream's end, usage equal to
//       what arrived); the server's RSS (/metrics process_resident_memory_bytes) sampled every
//       N/20 requests; at the end the server's own counters must account for every request.
//       Exit status 1 on any error or lost request.
//
// Every request has a timeout (--timeout, 120 s) and the whole run a deadline (--max-seconds),
// so the tool always stops by itself. It talks only to --host (default 127.0.0.1).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/http_client.h"

using nlohmann::json;
using gpt2::server::HttpConnection;
using gpt2::server::HttpResponse;
using gpt2::server::SseReader;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::vector<int> concurrency = {1, 8, 32};
  double duration = 30;
  int max_tokens = 64;
  std::string prompt = "The history of the city begins";
  int soak = 0;
  double timeout = 120;
  double max_seconds = 3600;
  std::string api_key;
  bool json_out = false;
};

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5));
  return v[i];
}

// A client's connection, reopened when the server closed it.
class Client {
 public:
  Client(const Args& args) : args_(args) {}
  HttpConnection& conn() {
    if (!conn_ || !conn_->reusable() || conn_->fd() < 0) {
      conn_.reset();
      conn_ = std::make_unique<HttpConnection>(args_.host, args_.port, args_.timeout);
    }
    return *conn_;
  }
  std::vector<std::string> headers() const {
    std::vector<std::string> h;
    if (!args_.api_key.empty()) h.push_back("Authorization: Bearer " + args_.api_key);
    return h;
  }
  void drop() { conn_.reset(); }

 private:
  const Args& args_;
  std::unique_ptr<HttpConnection> conn_;
};

// One streamed completion: its timings and tokens (from the usage chunk).
struct StreamResult {
  bool ok = false;
  std::string error;
  double ttft = 0;
  std::vector<double> gaps;  // between consecutive text chunks
  int64_t tokens = 0;
  std::string text;
  json usage;
  std::map<int, std::string> texts;
  std::map<int, std::string> finish;
};

StreamResult stream_once(Client& client, json body) {
  StreamResult r;
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  try {
    HttpConnection& conn = client.conn();
    const auto sent = Clock::now();
    conn.send("POST", "/v1/completions", body.dump(), client.headers());
    const HttpResponse head = conn.read_head();
    if (head.status != 200) {
      std::string piece, rest;
      while (conn.read_body_piece(piece)) rest += piece;
      r.error = "status " + std::to_string(head.status) + ": " + rest;
      return r;
    }
    SseReader events(conn);
    std::string data;
    bool done = false;
    auto last = sent;
    bool first = true;
    while (events.next(data)) {
      if (done) {
        r.error = "data after [DONE]";
        return r;
      }
      if (data == "[DONE]") {
        done = true;
        continue;
      }
      const json chunk = json::parse(data);
      if (!chunk["usage"].is_null()) {
        r.usage = chunk["usage"];
        continue;
      }
      const json& c = chunk["choices"].at(0);
      const std::string text = c["text"].get<std::string>();
      const int index = c["index"].get<int>();
      r.texts[index] += text;
      if (!c["finish_reason"].is_null()) r.finish[index] = c["finish_reason"].get<std::string>();
      if (text.empty()) continue;
      const auto now = Clock::now();
      if (first) r.ttft = std::chrono::duration<double>(now - sent).count();
      else r.gaps.push_back(std::chrono::duration<double>(now - last).count());
      first = false;
      last = now;
    }
    if (!done) {
      r.error = "the stream ended without [DONE]";
      client.drop();
      return r;
    }
    if (r.usage.is_null()) {
      r.error = "no usage chunk";
      return r;
    }
    r.tokens = r.usage["completion_tokens"].get<int64_t>();
    r.ok = true;
  } catch (const std::exception& e) {
    r.error = e.what();
    client.drop();
  }
  return r;
}

json get_json_body(Client& client, const std::string& method, const std::string& path, const std::string& body,
                   int& status, std::string& raw) {
  HttpConnection& conn = client.conn();
  conn.send(method, path, body, client.headers());
  const HttpResponse r = conn.read_response();
  status = r.status;
  raw = r.body;
  return json::parse(r.body, nullptr, false);
}

std::string metrics_text(const Args& args) {
  std::vector<std::string> h;
  if (!args.api_key.empty()) h.push_back("Authorization: Bearer " + args.api_key);
  return gpt2::server::http_request(args.host, args.port, "GET", "/metrics", "", h, args.timeout).body;
}

double metric(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line.compare(0, series.size() + 1, series + " ") == 0) return std::stod(line.substr(series.size() + 1));
  return -1;
}

// ---- throughput and latency ---------------------------------------------------------------------

int run_levels(const Args& args, const Clock::time_point deadline) {
  json report = json::array();
  for (int c : args.concurrency) {
    std::mutex mutex;
    std::vector<double> ttft, itl;
    int64_t tokens = 0, requests = 0, errors = 0;
    std::string first_error;
    const auto start = Clock::now();
    const auto stop_at = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(args.duration));
    std::vector<std::thread> threads;
    for (int t = 0; t < c; ++t) {
      threads.emplace_back([&, t] {
        Client client(args);
        for (int i = 0; Clock::now() < stop_at && Clock::now() < deadline; ++i) {
          // Different prompts per client so that nothing is shared by accident; greedy decoding.
          json body = {{"prompt", args.prompt + " " + std::to_string(t) + "." + std::to_string(i)},
                       {"max_tokens", args.max_tokens},
                       {"temperature", 0},
                       {"ignore_eos", true}};
          StreamResult r = stream_once(client, body);
          std::lock_guard<std::mutex> lock(mutex);
          ++requests;
          if (!r.ok) {
            ++errors;
            if (first_error.empty()) first_error = r.error;
            continue;
          }
          tokens += r.tokens;
          ttft.push_back(r.ttft);
          itl.insert(itl.end(), r.gaps.begin(), r.gaps.end());
        }
      });
    }
    for (std::thread& t : threads) t.join();
    const double wall = seconds_since(start);
    json level = {{"concurrency", c},
                  {"requests", requests},
                  {"errors", errors},
                  {"generated_tokens", tokens},
                  {"seconds", wall},
                  {"tokens_per_second", static_cast<double>(tokens) / wall},
                  {"ttft_p50_ms", percentile(ttft, 50) * 1e3},
                  {"ttft_p99_ms", percentile(ttft, 99) * 1e3},
                  {"itl_p50_ms", percentile(itl, 50) * 1e3},
                  {"itl_p99_ms", percentile(itl, 99) * 1e3}};
    if (!first_error.empty()) level["first_error"] = first_error;
    report.push_back(level);
    if (!args.json_out) {
      std::printf("concurrency %3d: %5lld requests, %7lld tokens in %6.1f s = %7.1f tokens/s | TTFT p50 %7.1f ms p99 %7.1f ms"
                  " | ITL p50 %6.1f ms p99 %6.1f ms | errors %lld\n",
                  c, static_cast<long long>(requests), static_cast<long long>(tokens), wall,
                  static_cast<double>(tokens) / wall, percentile(ttft, 50) * 1e3, percentile(ttft, 99) * 1e3,
                  percentile(itl, 50) * 1e3, percentile(itl, 99) * 1e3, static_cast<long long>(errors));
      if (!first_error.empty()) std::printf("  first error: %s\n", first_error.c_str());
      std::fflush(stdout);
    }
  }
  if (report.size() >= 2 && !args.json_out) {
    const double base = report[0]["tokens_per_second"].get<double>();
    for (size_t i = 1; i < report.size(); ++i)
      std::printf("aggregate tokens/s at concurrency %d: %.2fx concurrency %d\n", report[i]["concurrency"].get<int>(),
                  report[i]["tokens_per_second"].get<double>() / base, report[0]["concurrency"].get<int>());
  }
  if (args.json_out) std::cout << report.dump(2) << "\n";
  for (const json& l : report)
    if (l["errors"].get<int64_t>() > 0) return 1;
  return 0;
}

// ---- soak -------------------------------------------------------------------------------------

int run_soak(const Args& args, const Clock::time_point deadline) {
  const int c = args.concurrency.empty() ? 16 : args.concurrency[0];
  const std::string before = metrics_text(args);
  const double accepted_before = metric(before, "gpt2_completion_requests_total");
  std::atomic<int> next{0};
  std::atomic<int64_t> ok{0}, errors{0}, tokens{0};
  std::mutex mutex;
  std::string first_error;
  std::vector<std::pair<int, double>> rss;  // (requests done, MiB)
  rss.emplace_back(0, metric(before, "process_resident_memory_bytes") / (1 << 20));
  const int sample_every = std::max(1, args.soak / 20);
  const auto start = Clock::now();
  auto fail = [&](const std::string& why) {
    ++errors;
    std::lock_guard<std::mutex> lock(mutex);
    if (first_error.empty()) first_error = why;
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < c; ++t) {
    threads.emplace_back([&, t] {
      Client client(args);
      std::mt19937 rng(static_cast<unsigned>(1234 + t));
      for (;;) {
        const int i = next++;
        if (i >= args.soak || Clock::now() > deadline) break;
        const int max_tokens = 1 + static_cast<int>(rng() % 32);
        const int n = rng() % 5 == 0 ? 2 : 1;
        json body = {{"prompt", "Soak " + std::to_string(i) + (i % 3 == 0 ? " with a longer prompt that goes on" : "")},
                     {"max_tokens", max_tokens},
                     {"n", n},
                     {"seed", i}};
        if (i % 7 == 0) body["stop"] = {"e"};
        if (i % 11 == 0) body["echo"] = true;
        if (i % 13 == 0) body["logprobs"] = 2;
        const bool streamed = i % 2 == 0;
        int64_t got_tokens = 0;
        if (streamed) {
          const StreamResult r = stream_once(client, body);
          if (!r.ok) {
            fail("request " + std::to_string(i) + ": " + r.error);
            continue;
          }
          if (static_cast<int>(r.finish.size()) != n) {
            fail("request " + std::to_string(i) + ": " + std::to_string(r.finish.size()) + " choices finished of " + std::to_string(n));
            continue;
          }
          got_tokens = r.tokens;
        } else {
          try {
            int status = 0;
            std::string raw;
            const json j = get_json_body(client, "POST", "/v1/completions", body.dump(), status, raw);
            if (status != 200 || !j.is_object() || j["choices"].size() != static_cast<size_t>(n) ||
                j["object"] != "text_completion") {
              fail("request " + std::to_string(i) + ": status " + std::to_string(status) + ": " + raw.substr(0, 300));
              continue;
            }
            for (const json& ch : j["choices"])
              if (!ch["text"].is_string() || !ch["finish_reason"].is_string()) throw std::runtime_error("malformed choice");
            got_tokens = j["usage"]["completion_tokens"].get<int64_t>();
            if (got_tokens > static_cast<int64_t>(n) * max_tokens) throw std::runtime_error("more tokens than asked for");
          } catch (const std::exception& e) {
            client.drop();
            fail("request " + std::to_string(i) + ": " + e.what());
            continue;
          }
        }
        tokens += got_tokens;
        const int64_t done = ++ok;
        if (done % sample_every == 0) {
          try {
            const double mib = metric(metrics_text(args), "process_resident_memory_bytes") / (1 << 20);
            std::lock_guard<std::mutex> lock(mutex);
            rss.emplace_back(static_cast<int>(done), mib);
          } catch (const std::exception&) {
          }
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const double wall = seconds_since(start);
  const std::string after = metrics_text(args);
  const double accepted = metric(after, "gpt2_completion_requests_total") - accepted_before;
  const double busy = metric(after, "gpt2_slots_busy"), queued = metric(after, "gpt2_queue_length");
  std::sort(rss.begin(), rss.end());
  rss.emplace_back(static_cast<int>(ok.load()), metric(after, "process_resident_memory_bytes") / (1 << 20));
  const int64_t lost = static_cast<int64_t>(args.soak) - ok - errors;
  std::printf("soak: %d requests at concurrency %d in %.1f s (%.1f requests/s): %lld ok, %lld errors, %lld not run; "
              "%lld tokens\n",
              args.soak, c, wall, static_cast<double>(ok + errors) / wall, static_cast<long long>(ok.load()),
              static_cast<long long>(errors.load()), static_cast<long long>(lost), static_cast<long long>(tokens.load()));
  std::printf("server: %.0f requests accepted during the run, slots busy %.0f, queue %.0f\n", accepted, busy, queued);
  std::printf("server RSS (MiB) by requests done:");
  for (const auto& [n, mib] : rss) std::printf(" %d:%.1f", n, mib);
  std::printf("\n");
  if (!first_error.empty()) std::printf("first error: %s\n", first_error.c_str());
  const bool all_accounted = errors == 0 && lost == 0 && static_cast<int64_t>(accepted) == args.soak && busy == 0 && queued == 0;
  std::printf("%s\n", all_accounted ? "soak: OK (no error, no lost request)" : "soak: FAILED");
  return all_accounted ? 0 : 1;
}

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(std::stoi(item));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "error: " << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--host") args.host = value();
    else if (a == "--port") args.port = std::stoi(value());
    else if (a == "--concurrency") args.concurrency = parse_list(value());
    else if (a == "--duration") args.duration = std::stod(value());
    else if (a == "--max-tokens") args.max_tokens = std::stoi(value());
    else if (a == "--prompt") args.prompt = value();
    else if (a == "--soak") args.soak = std::stoi(value());
    else if (a == "--timeout") args.timeout = std::stod(value());
    else if (a == "--max-seconds") args.max_seconds = std::stod(value());
    else if (a == "--api-key") args.api_key = value();
    else if (a == "--json") args.json_out = true;
    else {
      std::cerr << "usage: serve_load --port P [--host H] [--concurrency 1,8,32] [--duration S] [--max-tokens N] "
                   "[--prompt TEXT] [--soak N] [--timeout S] [--max-seconds S] [--api-key KEY] [--json]\n";
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  try {
    const Clock::time_point deadline =
        Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(args.max_seconds));
    return args.soak > 0 ? run_soak(args, deadline) : run_levels(args, deadline);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
