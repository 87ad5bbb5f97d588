// Ragged steps (runtime/batch.h) on the CPU backend, the oracle the CUDA backend is compared
// with: any mix of sequences — prompt chunks beside single decode tokens, each in its own KV
// slot at its own position — gives each sequence exactly the logits it gets alone; a mixed
// step matches the double-precision reference; a slot can be rewound; every malformed step is
// a gpt2::Error before any work; and an observer sees the activations without changing them.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "common/error.h"
#include "model/gpt2.h"
#include "model/observer.h"
#include "runtime/cpu_reference.h"
#include "runtime/lockstep.h"

using namespace gpt2;
using Catch::Contains;

namespace {

std::vector<int32_t> some_tokens(int n, int vocab, int seed) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) t[static_cast<size_t>(i)] = (i * 37 + seed * 23 + 11) % vocab;
  return t;
}

// n == 0 first: memcmp of an empty vector's null data() is undefined (UBSan: null pointer argument).
bool same_bits(const float* a, const float* b, size_t n) { return n == 0 || std::memcmp(a, b, n * sizeof(float)) == 0; }

double max_abs_diff(const float* a, const float* b, size_t n) {
  double worst = 0;
  for (size_t i = 0; i < n; ++i) {
    const double d = std::fabs(static_cast<double>(a[i]) - b[i]);
    if (!(d <= worst)) worst = d;  // NaN propagates as a failure
  }
  return worst;
}

// Largest |got - want| over rows [first, first + n) of want [T, V], and the largest |want| there.
struct RefError {
  double worst = 0, biggest = 0;
};
RefError ref_error(const float* got, const std::vector<double>& want, int first, int n, int V) {
  RefError e;
  for (size_t i = 0; i < static_cast<size_t>(n) * V; ++i) {
    const double w = want[static_cast<size_t>(first) * V + i];
    e.worst = std::max(e.worst, std::fabs(got[i] - w));
    e.biggest = std::max(e.biggest, std::fabs(w));
  }
  return e;
}

// xorshift64: reproducible schedules.
struct Rng {
  uint64_t state;
  uint64_t next() {
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    return state;
  }
  int below(int n) { return static_cast<int>(next() % static_cast<uint64_t>(n)); }
};

int logit_count(int n, Logits want) { return want == Logits::all ? n : want == Logits::last ? 1 : 0; }

// One sequence of a scheduled run: its tokens, cut into chunks that run one per step once it
// has a slot, each asking for no logits, the last row's, or every row's.
struct Chunk {
  int n;
  Logits want;
};
struct Seq {
  std::vector<int32_t> tokens;
  std::vector<Chunk> chunks;
  int start = 0;                           // the first step it may get a slot at
  std::vector<std::vector<float>> logits;  // per chunk: [logit_count, V]
};

// 2 * (M + 1) sequences for M + 1 slots: the first M + 1 all start at step 0, the others wait
// for a slot to be released. Lengths 3 .. n_ctx (every fifth exactly n_ctx); a first chunk of
// any size, then mostly single decode tokens with a few more chunks (chunked prefill).
std::vector<Seq> schedule(int M, int n_ctx, int V, uint64_t seed) {
  Rng rng{seed * 0x9e3779b97f4a7c15ull + 1};
  std::vector<Seq> seqs(static_cast<size_t>(2 * (M + 1)));
  for (size_t i = 0; i < seqs.size(); ++i) {
    Seq& s = seqs[i];
    const int L = i % 5 == 4 ? n_ctx : i < 2 ? 20 + rng.below(n_ctx - 20) : 3 + rng.below(n_ctx - 2);
    s.tokens = some_tokens(L, V, static_cast<int>(seed * 100 + i));
    s.start = static_cast<int>(i) <= M ? 0 : rng.below(12);
    int left = L;
    auto add_chunk = [&](int n) {
      n = std::min(n, left);
      left -= n;
      const int pick = rng.below(4);
      const Logits want = pick == 0 && left > 0 ? Logits::none : pick == 1 ? Logits::all : Logits::last;
      s.chunks.push_back({n, want});
    };
    // Step 1 surely mixes: sequence 0 brings a chunk of 3 at position L / 2 while sequence 1
    // decodes at position 2.
    if (i == 0) add_chunk(L / 2), add_chunk(3);
    if (i == 1) add_chunk(2), add_chunk(1);
    while (left > 0) add_chunk(s.chunks.empty() ? 1 + rng.below(left) : rng.below(4) == 0 ? 2 + rng.below(5) : 1);
  }
  return seqs;
}

struct PackedStats {
  int steps = 0;
  int max_sequences = 0;   // most sequences in one step
  int mixed_steps = 0;     // steps with a chunk at position > 0 beside a single decode token
  int reused_slots = 0;    // acquisitions of a slot that an earlier sequence had released
};

// Runs every sequence of `seqs` packed into steps over the model's slots, in the scheduler's
// way: a sequence takes the lowest free slot when it may start, brings its next chunk to every
// step (the order of the sequences in a step rotates), and releases its slot when done.
PackedStats run_packed(Gpt2& model, KvCache& kv, std::vector<Seq>& seqs) {
  PackedStats stats;
  const int V = model.config().n_vocab;
  std::vector<int> slot(seqs.size(), -1), next(seqs.size(), 0), pos(seqs.size(), 0);
  std::vector<char> done(seqs.size(), 0);
  std::set<int> ever_used;
  for (int step = 0; std::count(done.begin(), done.end(), 1) < static_cast<long>(seqs.size()); ++step) {
    REQUIRE(step < 1000);
    for (size_t i = 0; i < seqs.size(); ++i) {
      if (done[i] || slot[i] >= 0 || seqs[i].start > step || kv.free_slots() == 0) continue;
      slot[i] = kv.acquire();
      REQUIRE(slot[i] >= 0);
      REQUIRE(kv.length(slot[i]) == 0);
      stats.reused_slots += ever_used.count(slot[i]) ? 1 : 0;
      ever_used.insert(slot[i]);
    }
    std::vector<size_t> active;
    for (size_t i = 0; i < seqs.size(); ++i)
      if (slot[i] >= 0) active.push_back(i);
    if (active.empty()) continue;
    std::rotate(active.begin(), active.begin() + step % static_cast<int>(active.size()), active.end());

    Batch batch;
    bool chunk_past_zero = false, decode = false;
    for (size_t i : active) {
      const Chunk& c = seqs[i].chunks[static_cast<size_t>(next[i])];
      REQUIRE(kv.length(slot[i]) == pos[i]);
      batch.add(slot[i], pos[i], &seqs[i].tokens[static_cast<size_t>(pos[i])], c.n, c.want);
      chunk_past_zero |= c.n > 1 && pos[i] > 0;
      decode |= c.n == 1;
    }
    Outputs out;
    model.forward(batch, kv, out);
    const std::vector<float> logits = test::read_logits(model, out);
    REQUIRE(logits.size() == static_cast<size_t>(batch.n_logit_rows()) * V);
    ++stats.steps;
    stats.max_sequences = std::max(stats.max_sequences, batch.sequences());
    stats.mixed_steps += chunk_past_zero && decode ? 1 : 0;

    size_t row = 0;
    for (size_t i : active) {
      const Chunk& c = seqs[i].chunks[static_cast<size_t>(next[i])];
      const size_t n = static_cast<size_t>(logit_count(c.n, c.want)) * V;
      seqs[i].logits.emplace_back(logits.begin() + static_cast<long>(row), logits.begin() + static_cast<long>(row + n));
      row += n;
      pos[i] += c.n;
      REQUIRE(kv.length(slot[i]) == pos[i]);
      if (++next[i] == static_cast<int>(seqs[i].chunks.size())) {
        kv.release(slot[i]);
        slot[i] = -1;
        done[i] = 1;
      }
    }
  }
  return stats;
}

// The chunks of one sequence, alone in the only slot of `kv` (acquired and released again).
std::vector<std::vector<float>> run_alone(Gpt2& model, KvCache& kv, const Seq& s) {
  const int slot = kv.acquire();
  REQUIRE(slot == 0);
  std::vector<std::vector<float>> logits;
  int pos = 0;
  for (const Chunk& c : s.chunks) {
    Batch batch;
    batch.add(slot, pos, &s.tokens[static_cast<size_t>(pos)], c.n, c.want);
    Outputs out;
    model.forward(batch, kv, out);
    logits.push_back(test::read_logits(model, out));
    pos += c.n;
  }
  kv.release(slot);
  return logits;
}

RunLimits limits(int max_rows, int max_sequences, int max_logit_rows) {
  RunLimits l;
  l.max_rows = max_rows;
  l.max_sequences = max_sequences;
  l.max_logit_rows = max_logit_rows;
  return l;
}

}  // namespace

TEST_CASE("ragged: a sequence's logits do not depend on what it is packed with", "[cpu][ragged]") {
  const Config cfg = test::tiny_config();
  const HostModel host = test::tiny_model(cfg, 11);
  const int V = cfg.n_vocab;
  for (DType dt : {DType::f32, DType::bf16, DType::i8}) {
    Gpt2 single = test::cpu_model(host, dt, limits(cfg.n_ctx, 1, cfg.n_ctx));
    KvCache single_kv = single.make_kv_cache(1);
    for (int M : {1, 3, 8, 16}) {
      INFO("dtype " << dtype_name(dt) << ", " << M << " other sequences");
      std::vector<Seq> seqs = schedule(M, cfg.n_ctx, V, static_cast<uint64_t>(M));
      const int slots = M + 1;
      Gpt2 packed = test::cpu_model(host, dt, limits(slots * cfg.n_ctx, slots, slots * cfg.n_ctx));
      KvCache kv = packed.make_kv_cache(slots);
      const PackedStats stats = run_packed(packed, kv, seqs);
      INFO(stats.steps << " steps, up to " << stats.max_sequences << " sequences, " << stats.mixed_steps
                       << " mixed, " << stats.reused_slots << " slots reused");
      CHECK(stats.max_sequences == slots);  // really packed with M others
      CHECK(stats.mixed_steps > 0);         // prefill chunks at pos > 0 beside decode tokens
      CHECK(stats.reused_slots > 0);        // sequences start in slots others have left
      CHECK(kv.free_slots() == slots);

      for (size_t i = 0; i < seqs.size(); ++i) {
        const std::vector<std::vector<float>> alone = run_alone(single, single_kv, seqs[i]);
        REQUIRE(alone.size() == seqs[i].logits.size());
        for (size_t c = 0; c < alone.size(); ++c) {
          INFO("sequence " << i << " of " << seqs[i].tokens.size() << " tokens, chunk " << c << " of "
                           << seqs[i].chunks[c].n);
          const std::vector<float>& got = seqs[i].logits[c];
          REQUIRE(got.size() == alone[c].size());
          CHECK(max_abs_diff(got.data(), alone[c].data(), got.size()) <= 1e-5);
          REQUIRE(same_bits(got.data(), alone[c].data(), got.size()));
        }
      }
    }
  }
}

TEST_CASE("ragged: a mixed step matches the double reference of each sequence", "[cpu][ragged]") {
  const Config cfg = test::tiny_config();
  const HostModel host = test::tiny_model(cfg, 12);
  const int V = cfg.n_vocab, late = cfg.n_ctx - 1;
  const std::vector<int32_t> a = some_tokens(cfg.n_ctx, V, 1);  // slot 0: decodes at the last position
  const std::vector<int32_t> b = some_tokens(17, V, 2);         // slot 2: 9 tokens, then a chunk of 8
  const std::vector<int32_t> c = some_tokens(7, V, 3);          // slot 1: a fresh chunk of 7
  Gpt2 model = test::cpu_model(host, DType::f32, limits(64, 3, 64));
  KvCache kv = test::lockstep_cache(model, 3);

  Batch setup;
  setup.add(0, 0, a.data(), late, Logits::none);
  setup.add(2, 0, b.data(), 9, Logits::none);
  Outputs out;
  model.forward(setup, kv, out);
  CHECK(out.logits.empty());  // no logit rows asked for
  CHECK(kv.length(0) == late);
  CHECK(kv.length(1) == 0);
  CHECK(kv.length(2) == 9);

  Batch mixed;
  mixed.add(2, 9, &b[9], 8, Logits::all);      // rows 0..7: b at positions 9..16
  mixed.add(0, late, &a[static_cast<size_t>(late)], 1, Logits::last);  // row 8: a at position n_ctx - 1
  mixed.add(1, 0, c.data(), 7, Logits::all);   // rows 9..15: c at positions 0..6
  REQUIRE(mixed.max_seq_tokens == 8);
  model.forward(mixed, kv, out);
  REQUIRE(out.logits.rows == 16);
  const std::vector<float> got = test::read_logits(model, out);
  CHECK(kv.length(0) == cfg.n_ctx);
  CHECK(kv.length(1) == 7);
  CHECK(kv.length(2) == 17);

  struct Part {
    const char* name;
    const std::vector<int32_t>& tokens;
    int first_row, first_pos, n;
  };
  for (const Part& p : {Part{"b", b, 0, 9, 8}, Part{"a", a, 8, late, 1}, Part{"c", c, 9, 0, 7}}) {
    const std::vector<double> want = test::ref_forward(host, p.tokens);
    const RefError e = ref_error(&got[static_cast<size_t>(p.first_row) * V], want, p.first_pos, p.n, V);
    INFO("sequence " << p.name << ": max |logit error| " << e.worst << ", max |logit| " << e.biggest);
    CHECK(e.biggest > 1.0);
    CHECK(e.worst < 2e-5 * e.biggest);
  }
}

TEST_CASE("ragged: a rewound slot overwrites its tail and continues anew", "[cpu][ragged]") {
  const Config cfg = test::tiny_config();
  const HostModel host = test::tiny_model(cfg, 13);
  const int V = cfg.n_vocab;
  const std::vector<int32_t> t = some_tokens(20, V, 4), u = some_tokens(8, V, 5), other = some_tokens(6, V, 6);
  // The continuation: t's first 12 tokens, then u.
  std::vector<int32_t> rewound(t.begin(), t.begin() + 12);
  rewound.insert(rewound.end(), u.begin(), u.end());
  REQUIRE(rewound.size() == 20);

  Gpt2 model = test::cpu_model(host, DType::f32, limits(cfg.n_ctx, 2, cfg.n_ctx));
  KvCache kv = test::lockstep_cache(model, 2);
  Outputs out;
  Batch first;
  first.add(0, 0, t.data(), 20, Logits::last);
  first.add(1, 0, other.data(), 5, Logits::last);
  model.forward(first, kv, out);

  // Back to position 12 of slot 0 with 5 tokens of u, beside slot 1's next decode token.
  Batch rewind;
  rewind.add(0, 12, u.data(), 5, Logits::all);
  rewind.add(1, 5, &other[5], 1, Logits::last);
  model.forward(rewind, kv, out);
  CHECK(kv.length(0) == 17);  // the tail 17..19 of t is forgotten
  CHECK(kv.length(1) == 6);
  std::vector<float> got = test::read_logits(model, out);
  REQUIRE(got.size() == static_cast<size_t>(6 * V));
  const std::vector<float> other_next(got.end() - V, got.end());
  got.resize(static_cast<size_t>(5 * V));
  // Then decode u's last 3 tokens at positions 17..19, over the stale keys of t.
  for (int i = 5; i < 8; ++i) {
    Batch decode;
    decode.add(0, 12 + i, &u[static_cast<size_t>(i)], 1, Logits::last);
    model.forward(decode, kv, out);
    const std::vector<float> row = test::read_logits(model, out);
    got.insert(got.end(), row.begin(), row.end());
  }
  CHECK(kv.length(0) == 20);

  // The same as the continuation run from scratch, bit for bit, and as the reference.
  Gpt2 fresh = test::cpu_model(host, DType::f32, test::lockstep_limits(1, cfg.n_ctx, Logits::all));
  KvCache fresh_kv = test::lockstep_cache(fresh, 1);
  const std::vector<float> want = test::lockstep(fresh, fresh_kv, rewound, 1, Logits::all);
  REQUIRE(got.size() == static_cast<size_t>(8 * V));
  CHECK(same_bits(got.data(), &want[static_cast<size_t>(12 * V)], got.size()));
  const RefError e = ref_error(got.data(), test::ref_forward(host, rewound), 12, 8, V);
  INFO("max |logit error| " << e.worst << ", max |logit| " << e.biggest);
  CHECK(e.worst < 2e-5 * e.biggest);
  // ... and the one that had the old tail differs (the rewind really changed something).
  test::lockstep_reset(fresh_kv);
  const std::vector<float> old = test::lockstep(fresh, fresh_kv, t, 1, Logits::all);
  CHECK(max_abs_diff(got.data(), &old[static_cast<size_t>(12 * V)], got.size()) > 0.01);

  // Slot 1, stepped beside the rewind, is untouched by it.
  test::lockstep_reset(fresh_kv);
  const std::vector<float> other_alone = test::lockstep(fresh, fresh_kv, other, 1, Logits::all);
  CHECK(same_bits(other_next.data(), &other_alone[static_cast<size_t>(5 * V)], static_cast<size_t>(V)));

  // Rewinding to position 0 starts a new sequence in the slot.
  const std::vector<int32_t> again = some_tokens(10, V, 7);
  Batch restart;
  restart.add(0, 0, again.data(), 10, Logits::all);
  model.forward(restart, kv, out);
  CHECK(kv.length(0) == 10);
  const std::vector<float> restarted = test::read_logits(model, out);
  test::lockstep_reset(fresh_kv);
  const std::vector<float> again_alone = test::lockstep(fresh, fresh_kv, again, 1, Logits::all);
  REQUIRE(restarted.size() == again_alone.size());
  CHECK(same_bits(restarted.data(), again_alone.data(), restarted.size()));
}

TEST_CASE("ragged: malformed steps and slot misuse are gpt2::Error, and leave the model usable", "[cpu][ragged]") {
  const Config cfg = test::tiny_config();
  const HostModel host = test::tiny_model(cfg, 14);
  const int V = cfg.n_vocab;
  const std::vector<int32_t> toks = some_tokens(cfg.n_ctx + 8, V, 8);  // token p is for position p
  Gpt2 model = test::cpu_model(host, DType::f32, limits(16, 3, 4));
  KvCache kv = model.make_kv_cache(4);
  REQUIRE(kv.acquire() == 0);
  REQUIRE(kv.acquire() == 1);
  REQUIRE(kv.acquire() == 2);  // slot 3 stays free
  Outputs out;

  auto run = [&](std::initializer_list<std::tuple<int, int, int, Logits>> seqs, const int32_t* ids = nullptr) {
    Batch batch;
    for (auto [slot, pos, n, want] : seqs) batch.add(slot, pos, ids ? ids : &toks[std::max(pos, 0)], n, want);
    model.forward(batch, kv, out);
  };
  // Slot 0 holds 5 positions, slot 2 fills up to 35 in three steps of at most 16 rows.
  run({{0, 0, 5, Logits::last}});
  run({{2, 0, 16, Logits::none}});
  run({{2, 16, 16, Logits::none}});
  run({{2, 32, 3, Logits::last}});
  REQUIRE(kv.length(2) == 35);
  const std::vector<int> lengths = {kv.length(0), kv.length(1), kv.length(2), kv.length(3)};
  REQUIRE(lengths == std::vector<int>{5, 0, 35, 0});
  auto unchanged = [&] { return std::vector<int>{kv.length(0), kv.length(1), kv.length(2), kv.length(3)} == lengths; };

  SECTION("limits of the run") {
    CHECK_THROWS_WITH(run({{1, 0, 17, Logits::last}}), Contains("17 tokens exceeds this run's limit of 16"));
    CHECK_THROWS_WITH(run({{0, 5, 1, Logits::last}, {1, 0, 1, Logits::last}, {2, 35, 1, Logits::last},
                           {3, 0, 1, Logits::last}}),
                      Contains("4 sequences exceeds this run's limit of 3"));
    CHECK_THROWS_WITH(run({{1, 0, 5, Logits::all}}), Contains("5 rows of logits") && Contains("room for 4"));
    CHECK_NOTHROW(run({{1, 0, 4, Logits::all}}));  // exactly the limits: 4 rows of logits
    kv.clear(1);
  }
  SECTION("slots") {
    CHECK_THROWS_WITH(run({{1, 0, 2, Logits::last}, {1, 2, 1, Logits::last}}), Contains("KV slot 1 twice"));
    CHECK_THROWS_WITH(run({{3, 0, 1, Logits::last}}), Contains("KV slot 3 is not allocated"));
    CHECK_THROWS_WITH(run({{4, 0, 1, Logits::last}}), Contains("KV slot 4 is not allocated"));
    CHECK_THROWS_WITH(run({{-1, 0, 1, Logits::last}}), Contains("KV slot -1 is not allocated"));
  }
  SECTION("positions") {
    CHECK_THROWS_WITH(run({{0, 6, 1, Logits::last}}), Contains("position 6") && Contains("holds 5 positions"));
    CHECK_THROWS_WITH(run({{1, 1, 1, Logits::last}}), Contains("position 1") && Contains("holds 0 positions"));
    CHECK_THROWS_WITH(run({{0, -1, 1, Logits::last}}), Contains("position -1"));
    CHECK_THROWS_WITH(run({{2, 35, 6, Logits::last}}), Contains("context full: 35 + 6 tokens exceed the model's 40"));
    CHECK_THROWS_AS(run({{0, 5, 1, Logits::last}, {2, 35, 6, Logits::last}}), Error);  // one bad sequence of two
    CHECK(unchanged());
    CHECK_NOTHROW(run({{2, 35, 5, Logits::last}}));  // exactly to n_ctx
    CHECK(kv.length(2) == cfg.n_ctx);
    CHECK_THROWS_WITH(run({{2, 40, 1, Logits::last}}), Contains("context full: 40 + 1"));
    CHECK(kv.length(2) == cfg.n_ctx);
    kv.set_length(2, 35);
  }
  SECTION("token ids") {
    for (int32_t bad : {-1, V}) {
      const int32_t ids[2] = {0, bad};
      CHECK_THROWS_WITH(run({{1, 0, 2, Logits::last}}, ids),
                        "token id " + std::to_string(bad) + " is outside the model's vocabulary of " +
                            std::to_string(V));
    }
    CHECK(unchanged());
    const int32_t last[2] = {0, V - 1};
    CHECK_NOTHROW(run({{1, 0, 2, Logits::last}}, last));
    kv.clear(1);
  }
  SECTION("empty steps and sequences") {
    Batch empty;
    CHECK_THROWS_AS(model.forward(empty, kv, out), Error);
    CHECK_THROWS_AS(run({{1, 0, 0, Logits::last}}), Error);
  }
  SECTION("a KV cache of another model") {
    Config other_cfg = cfg;
    other_cfg.n_layer = 1;
    Gpt2 other = test::cpu_model(test::tiny_model(other_cfg, 15), DType::f32, limits(16, 3, 4));
    KvCache other_kv = other.make_kv_cache(4);
    REQUIRE(other_kv.acquire() == 0);
    Batch batch;
    batch.add(0, 0, toks.data(), 1, Logits::last);
    CHECK_THROWS_WITH(model.forward(batch, other_kv, out), Contains("not made for this model"));
  }
  SECTION("the slot allocator") {
    CHECK(kv.free_slots() == 1);
    CHECK(kv.acquire() == 3);
    CHECK(kv.free_slots() == 0);
    CHECK(kv.acquire() == -1);  // every slot taken
    run({{3, 0, 4, Logits::last}});
    CHECK(kv.length(3) == 4);
    kv.release(3);
    CHECK(kv.length(3) == 0);
    CHECK_THROWS_WITH(kv.release(3), Contains("KV slot 3 released but not in use"));
    CHECK_THROWS_AS(kv.release(4), Error);
    CHECK_THROWS_AS(kv.release(-1), Error);
    CHECK_THROWS_WITH(run({{3, 0, 1, Logits::last}}), Contains("KV slot 3 is not allocated"));  // released
    CHECK(kv.acquire() == 3);
    CHECK(kv.length(3) == 0);  // a slot comes back empty
    kv.release(3);
  }
  SECTION("limits and caches that cannot work") {
    CHECK_THROWS_AS(test::cpu_model(host, DType::f32, limits(0, 1, 1)), Error);
    CHECK_THROWS_AS(test::cpu_model(host, DType::f32, limits(1, 0, 1)), Error);
    CHECK_THROWS_AS(test::cpu_model(host, DType::f32, limits(1, 1, 0)), Error);
  }

  // Whatever was refused, nothing was done: the lengths are as they were, and the next step's
  // logits are those of a model that never saw the bad steps.
  CHECK(unchanged());
  Batch next;
  next.add(0, 5, &toks[5], 1, Logits::last);
  next.add(2, 35, &toks[35], 1, Logits::last);
  model.forward(next, kv, out);
  const std::vector<float> got = test::read_logits(model, out);
  Gpt2 clean = test::cpu_model(host, DType::f32, test::lockstep_limits(1, cfg.n_ctx, Logits::last));
  KvCache clean_kv = test::lockstep_cache(clean, 1);
  const std::vector<float> want0 = test::lockstep(clean, clean_kv, toks.data(), 1, 6, Logits::last);
  test::lockstep_reset(clean_kv);
  const std::vector<float> want2 = test::lockstep(clean, clean_kv, toks.data(), 1, 36, Logits::last);
  REQUIRE(got.size() == static_cast<size_t>(2 * V));
  CHECK(same_bits(got.data(), want0.data(), static_cast<size_t>(V)));
  CHECK(same_bits(got.data() + V, want2.data(), static_cast<size_t>(V)));
}

namespace {

// Reads every residual and every layer's qkv to the host; at the last residual, applies ln_f
// and the LM head with the model's own weights and ops (the logit lens) into its own buffers.
class Recorder : public StepObserver {
 public:
  Recorder(Gpt2& model, int max_rows)
      : model_(model), ln_(model.backend().alloc(max_rows, model.config().n_embd)),
        lens_(model.backend().alloc(max_rows, model.config().n_vocab)) {}

  std::map<int, std::vector<float>> residual, qkv;  // by layer: [N, C], [N, 3C]
  std::vector<float> lens;                           // [N, V]: the LM head on ln_f of every row
  void clear() {
    residual.clear();
    qkv.clear();
    lens.clear();
  }

  bool wants_residual() const override { return true; }
  void on_residual(int layer, Tensor x, Backend& be) override {
    REQUIRE(residual.count(layer) == 0);
    residual[layer] = read(x, be);
    if (layer != model_.config().n_layer) return;
    const ModelWeights& w = model_.weights();
    Tensor h = ln_.first_rows(x.rows), logits = lens_.first_rows(x.rows);
    be.layernorm(h, x, w.ln_f_g, w.ln_f_b, model_.config().layer_norm_epsilon);
    be.linear(logits, h, w.lm_head, Tensor{}, Epilogue::none);
    lens = read(logits, be);
  }
  bool wants_qkv(int) const override { return true; }
  void on_qkv(int layer, Tensor t, Backend& be) override {
    REQUIRE(qkv.count(layer) == 0);
    qkv[layer] = read(t, be);
  }

 private:
  static std::vector<float> read(Tensor t, Backend& be) {
    std::vector<float> host(static_cast<size_t>(t.numel()));
    be.read(host.data(), t);
    return host;
  }
  Gpt2& model_;
  Tensor ln_, lens_;
};

}  // namespace

TEST_CASE("ragged: an observer sees the residuals and qkv without changing the logits", "[cpu][ragged]") {
  const Config cfg = test::tiny_config();
  const HostModel host = test::tiny_model(cfg, 16);
  const int V = cfg.n_vocab, C = cfg.n_embd, L = cfg.n_layer, H = cfg.n_head, hd = cfg.head_dim();
  const std::vector<int32_t> a = some_tokens(7, V, 9), b = some_tokens(9, V, 10), c = some_tokens(3, V, 11);
  for (DType dt : {DType::f32, DType::bf16, DType::i8}) {
    INFO("dtype " << dtype_name(dt));
    Gpt2 plain = test::cpu_model(host, dt, limits(32, 3, 32));
    Gpt2 seen = test::cpu_model(host, dt, limits(32, 3, 32));
    KvCache plain_kv = test::lockstep_cache(plain, 3), seen_kv = test::lockstep_cache(seen, 3);
    Recorder rec(seen, 32);

    // Step 1: a's first 6 tokens. Step 2: a's 7th token at position 6 beside b's 9 and c's 3.
    std::vector<Batch> steps(2);
    steps[0].add(0, 0, a.data(), 6, Logits::last);
    steps[1].add(1, 0, b.data(), 9, Logits::all);
    steps[1].add(0, 6, &a[6], 1, Logits::last);
    steps[1].add(2, 0, c.data(), 3, Logits::last);
    for (size_t s = 0; s < steps.size(); ++s) {
      INFO("step " << s);
      const Batch& batch = steps[s];
      const int N = batch.rows();
      Outputs out_plain, out_seen;
      out_seen.observer = &rec;
      rec.clear();
      plain.forward(batch, plain_kv, out_plain);
      const std::vector<float> want = test::read_logits(plain, out_plain);
      seen.forward(batch, seen_kv, out_seen);
      const std::vector<float> got = test::read_logits(seen, out_seen);
      REQUIRE(got.size() == want.size());
      CHECK(same_bits(got.data(), want.data(), got.size()));  // observing changes nothing

      REQUIRE(rec.residual.size() == static_cast<size_t>(L + 1));  // layers 0 .. n_layer
      REQUIRE(rec.qkv.size() == static_cast<size_t>(L));
      // The logit lens at the last layer is the model's logits, bit for bit.
      REQUIRE(rec.lens.size() == static_cast<size_t>(N) * V);
      for (int r = 0; r < batch.n_logit_rows(); ++r) {
        INFO("logit row " << r << " = batch row " << batch.logit_rows[r]);
        CHECK(same_bits(&rec.lens[static_cast<size_t>(batch.logit_rows[r]) * V], &got[static_cast<size_t>(r) * V],
                        static_cast<size_t>(V)));
      }
      // The k and v of every row are in its slot at its position, as observed in qkv.
      for (int l = 0; l < L; ++l) {
        const KvLayer& layer = seen_kv.layer(l);
        std::vector<float> k(static_cast<size_t>(layer.k.numel())), v(k.size());
        seen.backend().read(k.data(), layer.k);
        seen.backend().read(v.data(), layer.v);
        const std::vector<float>& q = rec.qkv[l];
        for (int n = 0; n < N; ++n)
          for (int h = 0; h < H; ++h) {
            const size_t at = ((static_cast<size_t>(batch.row_slots[n]) * H + h) * cfg.n_ctx + batch.positions[n]) * hd;
            const float* row = &q[static_cast<size_t>(n) * 3 * C];
            INFO("layer " << l << " row " << n << " head " << h);
            REQUIRE(same_bits(&k[at], row + C + h * hd, static_cast<size_t>(hd)));
            REQUIRE(same_bits(&v[at], row + 2 * C + h * hd, static_cast<size_t>(hd)));
          }
      }
      if (dt != DType::f32) continue;
      // Layer 0 is the embedding: wte[token] + wpe[position], exactly.
      for (int n = 0; n < N; ++n)
        for (int e = 0; e < C; ++e) {
          const float want_x = host.weights.wte.f32()[batch.tokens[n] * C + e] + host.weights.wpe.f32()[batch.positions[n] * C + e];
          REQUIRE(rec.residual[0][static_cast<size_t>(n) * C + e] == want_x);
        }
      // Each layer's qkv is c_attn (bias included) of ln_1 of the residual entering it.
      for (int l = 0; l < L; ++l) {
        const LayerWeights& w = host.weights.h[l];
        const std::vector<double> x(rec.residual[l].begin(), rec.residual[l].end());
        const std::vector<double> h = test::ref_layernorm(x, N, C, w.ln_1_g.f32(), w.ln_1_b.f32(), cfg.layer_norm_epsilon);
        const std::vector<double> ref = test::ref_linear(h, N, C, w.attn_qkv_w.f32(), 3 * C, w.attn_qkv_b.f32(), false);
        double worst = 0, biggest = 0;
        for (size_t i = 0; i < ref.size(); ++i) {
          worst = std::max(worst, std::fabs(rec.qkv[l][i] - ref[i]));
          biggest = std::max(biggest, std::fabs(ref[i]));
        }
        INFO("layer " << l << " qkv: max error " << worst << ", max |qkv| " << biggest);
        CHECK(biggest > 1.0);
        CHECK(worst < 2e-5 * biggest);
      }
    }
  }
}
