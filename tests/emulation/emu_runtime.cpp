// The emulator behind shim/gpt2emu.h: launches, fibers, barriers, warp collectives, shared
// memory, and the host runtime API subset. See gpt2emu.h for the execution model.
//
// Fibers: every CUDA thread of a block is a coroutine on its own mmap'd stack (with a
// guard page below it), all on the host worker thread that runs the block. Only the scheduler
// switches between them, so a block runs deterministically: a fiber runs until it blocks on a
// barrier or a warp collective, or ends, and the scheduler then resumes the next runnable
// fiber in the chosen order. A device fault abandons the block's fibers (their stacks hold only
// the kernel's trivial locals) and the launch returns cudaErrorLaunchFailure with the message.
#include "gpt2emu.h"

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define GPT2_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GPT2_EMU_ASAN 1
#endif
#endif
#ifdef GPT2_EMU_ASAN
#include <sanitizer/asan_interface.h>
#endif

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

// ---- execution contexts ------------------------------------------------------------------------
// x86-64: a hand-written switch that saves only what the SysV ABI makes callee-saved (rbx, rbp,
// r12-r15, the MXCSR and x87 control words): ~20 ns, where glibc's swapcontext makes a signal
// mask system call on every switch (~3 us in a VM). Elsewhere, or with GPT2_EMU_UCONTEXT
// defined, ucontext.
#if defined(__x86_64__) && !defined(GPT2_EMU_UCONTEXT)
#define GPT2_EMU_ASM_SWITCH 1
extern "C" void gpt2emu_switch_context(void** save_sp, void* load_sp);
__asm__(
    ".text\n"
    ".globl gpt2emu_switch_context\n"
    ".type gpt2emu_switch_context, @function\n"
    "gpt2emu_switch_context:\n"
    "  pushq %rbp\n"
    "  pushq %rbx\n"
    "  pushq %r12\n"
    "  pushq %r13\n"
    "  pushq %r14\n"
    "  pushq %r15\n"
    "  subq $8, %rsp\n"
    "  stmxcsr (%rsp)\n"
    "  fnstcw 4(%rsp)\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  ldmxcsr (%rsp)\n"
    "  fldcw 4(%rsp)\n"
    "  addq $8, %rsp\n"
    "  popq %r15\n"
    "  popq %r14\n"
    "  popq %r13\n"
    "  popq %r12\n"
    "  popq %rbx\n"
    "  popq %rbp\n"
    "  ret\n"
    ".size gpt2emu_switch_context, .-gpt2emu_switch_context\n");
#endif

namespace gpt2emu {
namespace {

#ifdef GPT2_EMU_ASM_SWITCH
struct Context {
  void* sp = nullptr;
};
// A fresh context whose first switch "returns" into entry() at the top of the stack.
void context_init(Context& c, char* stack, size_t size, void (*entry)()) {
  uintptr_t top = (reinterpret_cast<uintptr_t>(stack) + size) & ~uintptr_t{15};
  uint64_t* p = reinterpret_cast<uint64_t*>(top);
  *--p = 0;                                      // entry()'s return address: never used
  *--p = reinterpret_cast<uint64_t>(entry);      // popped by ret; entry starts with rsp = 8 mod 16
  for (int r = 0; r < 6; ++r) *--p = 0;          // rbp rbx r12 r13 r14 r15
  *--p = 0x1f80u | (uint64_t{0x037f} << 32);     // MXCSR, x87 control word: the defaults
  c.sp = p;
}
void context_switch(Context& from, Context& to) { gpt2emu_switch_context(&from.sp, to.sp); }
#else
struct Context {
  ucontext_t uc;
};
void context_init(Context& c, char* stack, size_t size, void (*entry)()) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = size;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
}
void context_switch(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
#endif

}  // namespace
}  // namespace gpt2emu

thread_local uint3 threadIdx{0, 0, 0};
thread_local uint3 blockIdx{0, 0, 0};
thread_local dim3 blockDim;
thread_local dim3 gridDim;

namespace gpt2emu {

namespace {

// ---- settings --------------------------------------------------------------------------------

struct Settings {
  Schedule schedule = Schedule::forward;
  uint64_t seed = 1;
  int workers = 1;
  size_t stack_bytes = 128 * 1024;
};

Settings& settings() {
  static Settings s = [] {
    Settings r;
    if (const char* order = std::getenv("GPT2_EMU_ORDER")) {
      const std::string o = order;
      if (o == "reverse") r.schedule = Schedule::reverse;
      if (o.compare(0, 7, "shuffle") == 0) {
        r.schedule = Schedule::shuffle;
        if (o.size() > 8) r.seed = std::strtoull(o.c_str() + 8, nullptr, 10);
      }
    }
    const unsigned cores = std::thread::hardware_concurrency();
    r.workers = cores == 0 ? 1 : static_cast<int>(std::min(cores, 4u));
    if (const char* w = std::getenv("GPT2_EMU_WORKERS")) r.workers = std::max(1, std::atoi(w));
    if (const char* kb = std::getenv("GPT2_EMU_STACK_KB")) r.stack_bytes = std::max(16, std::atoi(kb)) * size_t{1024};
    return r;
  }();
  return s;
}

std::atomic<uint64_t> g_launches{0}, g_blocks{0}, g_threads{0}, g_switches{0};

// ---- per-worker block state --------------------------------------------------------------------

enum class FiberState { runnable, barrier, warp, done };

struct Fiber {
  Context ctx;
  FiberState state = FiberState::done;
  uint3 tid{0, 0, 0};
  const char* wait_op = "";
  int wait_line = 0;
};

struct PendingWarpOp {
  unsigned mask = 0;
  const char* op = "";
  int line = 0;
  unsigned arrived = 0;
  void* data[32] = {};
  WarpComplete complete = nullptr;
  const void* arg = nullptr;
};

struct Warp {
  std::vector<PendingWarpOp> pending;
  unsigned present = 0;  // lanes that exist (a partial last warp has fewer)
  unsigned exited = 0;
};

struct SharedVar {
  const char* key;
  size_t bytes, align;
  unsigned char* ptr;
};

constexpr size_t kStaticSmemLimit = 48 * 1024;  // per block, as nvcc enforces
constexpr size_t kDynamicRegion = 256 * 1024;
constexpr size_t kStaticRegion = 160 * 1024;    // room for the adversarial alignment padding

struct Worker {
  // stacks
  char* stacks = nullptr;
  size_t stack_slots = 0, stack_stride = 0;
  std::vector<Fiber> fibers;
  Context scheduler;
  int current = -1;
  int n_threads = 0;
  uint64_t block_linear = 0;

  // __syncthreads
  int barrier_arrived = 0;
  const char* barrier_op = "";
  int barrier_line = 0;
  int acc_any = 0, acc_all = 1, acc_count = 0;
  BarrierResult barrier_result{0, 0, 0};
  int exited = 0;
  std::vector<Warp> warps;

  // shared memory
  unsigned char* smem = nullptr;
  unsigned char* dynamic = nullptr;
  size_t dynamic_bytes = 0;
  unsigned char* static_next = nullptr;
  size_t static_natural = 0;  // bytes the declarations need without the padding
  std::vector<SharedVar> vars;

  KernelBody body{nullptr, nullptr};
  bool failed = false;
  std::string error;

  ~Worker() {
    if (stacks) munmap(stacks, stack_slots * stack_stride);
    std::free(smem);
  }

  void ensure_stacks(int n) {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    const size_t stride = (settings().stack_bytes + page - 1) / page * page + page;  // + guard page
    if (stacks && stack_slots >= static_cast<size_t>(n) && stack_stride == stride) return;
    if (stacks) munmap(stacks, stack_slots * stack_stride);
    stack_slots = static_cast<size_t>(n);
    stack_stride = stride;
    void* p = mmap(nullptr, stack_slots * stack_stride, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED) {
      std::fprintf(stderr, "gpt2emu: cannot map %zu fiber stacks\n", stack_slots);
      std::abort();
    }
    stacks = static_cast<char*>(p);
    for (size_t i = 0; i < stack_slots; ++i) mprotect(stacks + i * stack_stride, page, PROT_NONE);
  }
};

thread_local Worker* tls_worker = nullptr;

Worker& worker() {
  thread_local Worker w;
  return w;
}

std::string thread_name(uint3 t) {
  return "(" + std::to_string(t.x) + "," + std::to_string(t.y) + "," + std::to_string(t.z) + ")";
}

Worker& in_kernel(const char* what) {
  Worker* w = tls_worker;
  if (!w || w->current < 0) {
    std::fprintf(stderr, "gpt2emu: %s called outside a kernel\n", what);
    std::abort();
  }
  return *w;
}

void yield(Worker& w) {
  Fiber& f = w.fibers[static_cast<size_t>(w.current)];
  g_switches.fetch_add(1, std::memory_order_relaxed);
  context_switch(f.ctx, w.scheduler);
}

void fault(Worker& w, const std::string& message) {
  if (!w.failed) {
    w.failed = true;
    w.error = "block " + thread_name(blockIdx) + " thread " + thread_name(threadIdx) + ": " + message;
  }
  yield(w);  // never resumed
  std::abort();
}

int linear_thread(const Worker& w) { return w.current; }

void on_exit(Worker& w) {
  Fiber& f = w.fibers[static_cast<size_t>(w.current)];
  f.state = FiberState::done;
  ++w.exited;
  const int lane = linear_thread(w) % 32;
  Warp& warp = w.warps[static_cast<size_t>(linear_thread(w) / 32)];
  warp.exited |= 1u << lane;
  for (const PendingWarpOp& p : warp.pending)
    if (p.mask & (1u << lane))
      fault(w, "exits while other lanes of its warp wait for it in " + std::string(p.op) + " (line " +
                   std::to_string(p.line) + ")");
  if (w.barrier_arrived > 0)
    fault(w, "exits while " + std::to_string(w.barrier_arrived) + " threads wait at " + w.barrier_op + " (line " +
                 std::to_string(w.barrier_line) + ")");
}

void fiber_entry() {
  Worker& w = *tls_worker;
  w.body.call(w.body.self);
  on_exit(w);
  yield(w);  // the scheduler never resumes a finished fiber
  std::abort();
}

std::string describe_waits(const Worker& w) {
  std::string s;
  int shown = 0, waiting = 0;
  for (const Fiber& f : w.fibers) {
    if (f.state == FiberState::done || f.state == FiberState::runnable) continue;
    ++waiting;
    if (shown++ < 4)
      s += std::string(shown > 1 ? "; " : "") + "thread " + thread_name(f.tid) + " in " + f.wait_op + " (line " +
           std::to_string(f.wait_line) + ")";
  }
  return std::to_string(waiting) + " threads wait forever: " + s + (waiting > shown ? "; ..." : "");
}

// Runs one block on the current worker thread; returns false (w.error set) on a fault.
bool run_block(Worker& w, dim3 grid, dim3 block, uint64_t linear, size_t smem_bytes) {
  const int n = static_cast<int>(block.x * block.y * block.z);
  w.n_threads = n;
  w.block_linear = linear;
  blockIdx = uint3{static_cast<unsigned>(linear % grid.x), static_cast<unsigned>(linear / grid.x % grid.y),
                   static_cast<unsigned>(linear / (static_cast<uint64_t>(grid.x) * grid.y))};
  blockDim = block;
  gridDim = grid;
  w.barrier_arrived = 0;
  w.acc_any = 0;
  w.acc_all = 1;
  w.acc_count = 0;
  w.exited = 0;
  w.failed = false;
  w.error.clear();
  w.warps.assign(static_cast<size_t>((n + 31) / 32), Warp{});
  for (int i = 0; i < n; ++i) w.warps[static_cast<size_t>(i / 32)].present |= 1u << (i % 32);

  // Shared memory: the dynamic area at an address that is 16 (CUDA's guarantee) but not 32
  // bytes aligned, 0xff-filled; static variables are placed and filled when first declared.
  if (!w.smem) {
    w.smem = static_cast<unsigned char*>(std::aligned_alloc(4096, kDynamicRegion + kStaticRegion));
    if (!w.smem) std::abort();
  }
  w.dynamic = w.smem + 16;
  w.dynamic_bytes = smem_bytes;
  std::memset(w.dynamic, 0xff, smem_bytes);
  w.static_next = w.smem + kDynamicRegion;
  w.static_natural = 0;
  w.vars.clear();

  w.ensure_stacks(n);
  w.fibers.resize(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    Fiber& f = w.fibers[static_cast<size_t>(i)];
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    char* stack = w.stacks + static_cast<size_t>(i) * w.stack_stride + page;
#ifdef GPT2_EMU_ASAN
    // A fiber never unwinds (it ends by switching away, or is abandoned on a fault), so the
    // redzones of its last frames are still poisoned when the stack is reused.
    __asan_unpoison_memory_region(stack, w.stack_stride - page);
#endif
    context_init(f.ctx, stack, w.stack_stride - page, fiber_entry);
    f.state = FiberState::runnable;
    f.tid = uint3{static_cast<unsigned>(i % block.x), static_cast<unsigned>(i / block.x % block.y),
                  static_cast<unsigned>(i / (block.x * block.y))};
  }

  std::vector<int> order(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  const Settings& s = settings();
  if (s.schedule == Schedule::reverse) std::reverse(order.begin(), order.end());
  std::mt19937_64 rng(s.seed * 0x9e3779b97f4a7c15ull + linear);

  int done = 0;
  while (done < n) {
    if (s.schedule == Schedule::shuffle) std::shuffle(order.begin(), order.end(), rng);
    bool ran = false;
    for (int i : order) {
      Fiber& f = w.fibers[static_cast<size_t>(i)];
      if (f.state != FiberState::runnable) continue;
      w.current = i;
      threadIdx = f.tid;
      g_switches.fetch_add(1, std::memory_order_relaxed);
      context_switch(w.scheduler, f.ctx);
      w.current = -1;
      ran = true;
      if (w.failed) return false;
      if (f.state == FiberState::done) ++done;
    }
    if (!ran && done < n) {
      w.failed = true;
      w.error = "block " + thread_name(blockIdx) + ": deadlock: " + describe_waits(w);
      return false;
    }
  }
  return true;
}

// ---- worker pool -------------------------------------------------------------------------------

class Pool {
 public:
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (std::thread& t : threads_) t.join();
  }

  // Runs job(worker index) on `n` threads (the caller is worker 0) and waits for all.
  void run(int n, const std::function<void(int)>& job) {
    while (static_cast<int>(threads_.size()) < n - 1) {
      const int index = static_cast<int>(threads_.size()) + 1;
      threads_.emplace_back([this, index] { helper(index); });
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &job;
      wanted_ = n - 1;
      finished_ = 0;
      ++generation_;
    }
    wake_.notify_all();
    job(0);
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return finished_ == wanted_; });
    job_ = nullptr;
  }

 private:
  void helper(int index) {
    uint64_t seen = 0;
    for (;;) {
      const std::function<void(int)>* job = nullptr;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        if (index > wanted_) continue;
        job = job_;
      }
      (*job)(index);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        ++finished_;
      }
      done_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> threads_;
  const std::function<void(int)>* job_ = nullptr;
  uint64_t generation_ = 0;
  int wanted_ = 0, finished_ = 0;
  bool stop_ = false;
};

Pool& pool() {
  static Pool p;
  return p;
}

// ---- errors and attributes ---------------------------------------------------------------------

thread_local cudaError_t t_last_error = cudaSuccess;
thread_local std::string t_last_message;

std::mutex& attr_mutex() {
  static std::mutex m;
  return m;
}
std::map<const void*, int>& attrs() {
  static std::map<const void*, int> m;
  return m;
}

cudaError_t fail_launch(cudaError_t err, const std::string& message) {
  t_last_message = message;
  return err;
}

}  // namespace

// ---- the interface of gpt2emu.h --------------------------------------------------------------

void set_schedule(Schedule schedule, uint64_t seed) {
  settings().schedule = schedule;
  settings().seed = seed;
}
Schedule schedule() { return settings().schedule; }
void set_workers(int workers) { settings().workers = std::max(1, workers); }

Stats stats() {
  Stats s;
  s.launches = g_launches.load();
  s.blocks = g_blocks.load();
  s.threads = g_threads.load();
  s.switches = g_switches.load();
  return s;
}

DeviceProps& device_props() {
  static DeviceProps d;
  return d;
}

int max_dynamic_smem(const void* kernel) {
  std::lock_guard<std::mutex> lock(attr_mutex());
  auto it = attrs().find(kernel);
  return it == attrs().end() ? 48 * 1024 : it->second;
}

cudaError_t set_max_dynamic_smem(const void* kernel, int bytes) {
  if (bytes < 0 || bytes > device_props().smem_per_block_optin)
    return fail_launch(cudaErrorInvalidValue, "invalid argument (dynamic shared memory above the opt-in limit)");
  std::lock_guard<std::mutex> lock(attr_mutex());
  attrs()[kernel] = bytes;
  return cudaSuccess;
}

void set_last_error(cudaError_t err) {
  if (err != cudaSuccess) t_last_error = err;
}

[[noreturn]] void device_fault(const char* message) {
  Worker& w = in_kernel("device_fault");
  fault(w, message);
  std::abort();
}

int lane_id() { return linear_thread(in_kernel("lane_id")) % 32; }

unsigned warp_lanes_present() {
  Worker& w = in_kernel("warp_lanes_present");
  return w.warps[static_cast<size_t>(linear_thread(w) / 32)].present;
}

BarrierResult block_barrier(const char* op, int line, int predicate) {
  Worker& w = in_kernel(op);
  if (w.exited > 0) {
    for (const Fiber& f : w.fibers)
      if (f.state == FiberState::done)
        fault(w, std::string(op) + " (line " + std::to_string(line) + ") reached after thread " + thread_name(f.tid) +
                     " exited (barriers need every thread of the block)");
  }
  if (w.barrier_arrived == 0) {
    w.barrier_op = op;
    w.barrier_line = line;
  } else if (w.barrier_line != line || std::strcmp(w.barrier_op, op) != 0) {
    fault(w, std::string(op) + " at line " + std::to_string(line) + " while other threads wait at " + w.barrier_op +
                 " at line " + std::to_string(w.barrier_line) + " (barrier in divergent code)");
  }
  w.acc_any |= predicate != 0;
  w.acc_all &= predicate != 0;
  w.acc_count += predicate != 0;
  if (++w.barrier_arrived == w.n_threads) {
    w.barrier_result = BarrierResult{w.acc_any, w.acc_all, w.acc_count};
    w.barrier_arrived = 0;
    w.acc_any = 0;
    w.acc_all = 1;
    w.acc_count = 0;
    for (Fiber& f : w.fibers)
      if (f.state == FiberState::barrier) f.state = FiberState::runnable;
    return w.barrier_result;
  }
  Fiber& f = w.fibers[static_cast<size_t>(w.current)];
  f.state = FiberState::barrier;
  f.wait_op = op;
  f.wait_line = line;
  yield(w);
  return w.barrier_result;
}

void warp_collective(const char* op, unsigned mask, int line, void* lane_data, WarpComplete complete,
                     const void* shared_arg) {
  Worker& w = in_kernel(op);
  const int t = linear_thread(w);
  const int lane = t % 32;
  Warp& warp = w.warps[static_cast<size_t>(t / 32)];
  const auto hex = [](unsigned m) {
    char text[16];
    std::snprintf(text, sizeof text, "0x%08x", m);
    return std::string(text);
  };
  if (!(mask & (1u << lane)))
    fault(w, std::string(op) + " with mask " + hex(mask) + " that does not name the calling lane");
  if (mask & ~warp.present)
    fault(w, std::string(op) + " with mask " + hex(mask) + " naming lanes that do not exist (a partial warp)");
  if (mask & warp.exited) fault(w, std::string(op) + " with mask " + hex(mask) + " naming lanes that have exited");

  size_t index = warp.pending.size();
  for (size_t i = 0; i < warp.pending.size(); ++i) {
    const PendingWarpOp& p = warp.pending[i];
    if (p.mask == mask) {
      if (p.line != line || std::strcmp(p.op, op) != 0)
        fault(w, std::string(op) + " (line " + std::to_string(line) + ") while the other lanes of mask " + hex(mask) +
                     " wait in " + p.op + " (line " + std::to_string(p.line) + ")");
      index = i;
    } else if (p.mask & mask) {
      fault(w, std::string(op) + " with mask " + hex(mask) + " overlapping the pending " + p.op + " with mask " +
                   hex(p.mask));
    }
  }
  if (index == warp.pending.size()) {
    PendingWarpOp p;
    p.mask = mask;
    p.op = op;
    p.line = line;
    p.complete = complete;
    p.arg = shared_arg;
    warp.pending.push_back(p);
  }
  PendingWarpOp& p = warp.pending[index];
  p.data[lane] = lane_data;
  p.arrived |= 1u << lane;
  if (p.arrived == mask) {
    const PendingWarpOp done = p;
    warp.pending.erase(warp.pending.begin() + static_cast<std::ptrdiff_t>(index));
    done.complete(done.data, mask, done.arg);
    const int base = t - lane;
    for (int l = 0; l < 32; ++l)
      if (l != lane && (mask & (1u << l))) w.fibers[static_cast<size_t>(base + l)].state = FiberState::runnable;
    return;
  }
  Fiber& f = w.fibers[static_cast<size_t>(w.current)];
  f.state = FiberState::warp;
  f.wait_op = op;
  f.wait_line = line;
  yield(w);
}

void shuffle_complete(void* const* lanes, unsigned mask, const void* kind_ptr) {
  const ShuffleKind kind = *static_cast<const ShuffleKind*>(kind_ptr);
  for (int l = 0; l < 32; ++l) {
    if (!(mask & (1u << l))) continue;
    ShuffleLane* d = static_cast<ShuffleLane*>(lanes[l]);
    const int base = l & ~(d->width - 1);
    int src = l;
    switch (kind) {
      case ShuffleKind::idx: src = base + (d->param & (d->width - 1)); break;
      case ShuffleKind::up: src = l - d->param < base ? l : l - d->param; break;
      case ShuffleKind::down: src = l + d->param >= base + d->width ? l : l + d->param; break;
      case ShuffleKind::bfly: {
        const int x = l ^ d->param;
        src = x < base || x >= base + d->width ? l : x;
        break;
      }
    }
    // A source lane outside the mask gives an undefined value on the GPU: all ones here.
    d->result = (src >= 0 && src < 32 && (mask & (1u << src))) ? static_cast<const ShuffleLane*>(lanes[src])->value
                                                               : ~uint64_t{0};
  }
}

void vote_complete(void* const* lanes, unsigned mask, const void* kind_ptr) {
  const VoteKind kind = *static_cast<const VoteKind*>(kind_ptr);
  unsigned ballot = 0;
  bool all_equal = true;
  uint64_t first = 0;
  bool have_first = false;
  uint32_t r_add = 0, r_min = ~0u, r_max = 0, r_and = ~0u, r_or = 0, r_xor = 0;
  for (int l = 0; l < 32; ++l) {
    if (!(mask & (1u << l))) continue;
    const uint64_t v = static_cast<const VoteLane*>(lanes[l])->value;
    if (v) ballot |= 1u << l;
    if (!have_first) {
      first = v;
      have_first = true;
    } else if (v != first) {
      all_equal = false;
    }
    const uint32_t u = static_cast<uint32_t>(v);
    r_add += u;
    r_min = std::min(r_min, u);
    r_max = std::max(r_max, u);
    r_and &= u;
    r_or |= u;
    r_xor ^= u;
  }
  for (int l = 0; l < 32; ++l) {
    if (!(mask & (1u << l))) continue;
    VoteLane* d = static_cast<VoteLane*>(lanes[l]);
    switch (kind) {
      case VoteKind::ballot: d->result = ballot; break;
      case VoteKind::any: d->result = ballot != 0; break;
      case VoteKind::all: d->result = ballot == mask; break;
      case VoteKind::match_any: {
        unsigned m = 0;
        for (int o = 0; o < 32; ++o)
          if ((mask & (1u << o)) && static_cast<const VoteLane*>(lanes[o])->value == d->value) m |= 1u << o;
        d->result = m;
        break;
      }
      case VoteKind::match_all: d->result = all_equal ? mask : 0u; break;
      case VoteKind::reduce_add: d->result = r_add; break;
      case VoteKind::reduce_min: d->result = r_min; break;
      case VoteKind::reduce_max: d->result = r_max; break;
      case VoteKind::reduce_and: d->result = r_and; break;
      case VoteKind::reduce_or: d->result = r_or; break;
      case VoteKind::reduce_xor: d->result = r_xor; break;
    }
  }
}

unsigned vote(const char* op, VoteKind kind, unsigned mask, uint64_t value, int line) {
  static const VoteKind kinds[] = {VoteKind::ballot,     VoteKind::any,        VoteKind::all,
                                   VoteKind::match_any,  VoteKind::match_all,  VoteKind::reduce_add,
                                   VoteKind::reduce_min, VoteKind::reduce_max, VoteKind::reduce_and,
                                   VoteKind::reduce_or,  VoteKind::reduce_xor};
  VoteLane lane{value, 0};
  warp_collective(op, mask, line, &lane, vote_complete, &kinds[static_cast<int>(kind)]);
  return lane.result;
}

void* shared_variable_bytes(const char* key, size_t bytes, size_t align) {
  Worker& w = in_kernel("__shared__");
  for (const SharedVar& v : w.vars) {
    if (std::strcmp(v.key, key) != 0) continue;
    if (v.bytes != bytes || v.align != align) fault(w, std::string("__shared__ ") + key + " declared with two sizes");
    return v.ptr;
  }
  // Aligned to `align` and not to 2 * align.
  const uintptr_t at = reinterpret_cast<uintptr_t>(w.static_next);
  const uintptr_t placed = (at + 2 * align - 1) / (2 * align) * (2 * align) + align;
  w.static_natural = (w.static_natural + align - 1) / align * align + bytes;
  if (w.static_natural > kStaticSmemLimit)
    fault(w, "static shared memory of the block exceeds 48 KiB (" + std::to_string(w.static_natural) + " bytes)");
  if (w.static_natural + w.dynamic_bytes > static_cast<size_t>(device_props().smem_per_block_optin))
    fault(w, "static + dynamic shared memory exceeds the per-block limit");
  unsigned char* p = reinterpret_cast<unsigned char*>(placed);
  if (p + bytes > w.smem + kDynamicRegion + kStaticRegion) fault(w, "emulator static shared region exhausted");
  std::memset(p, 0xff, bytes);
  w.static_next = p + bytes;
  w.vars.push_back(SharedVar{key, bytes, align, p});
  return p;
}

void* dynamic_shared_bytes() { return in_kernel("extern __shared__").dynamic; }

cudaError_t run_grid(const void* kernel, const char* name, dim3 grid, dim3 block, size_t smem, KernelBody body) {
  static std::mutex one_launch_at_a_time;
  std::lock_guard<std::mutex> guard(one_launch_at_a_time);
  const uint64_t threads = static_cast<uint64_t>(block.x) * block.y * block.z;
  if (threads == 0 || threads > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
      grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535)
    return fail_launch(cudaErrorInvalidConfiguration,
                       std::string("invalid configuration argument (") + name + ": grid " + std::to_string(grid.x) +
                           "x" + std::to_string(grid.y) + "x" + std::to_string(grid.z) + ", block " +
                           std::to_string(block.x) + "x" + std::to_string(block.y) + "x" + std::to_string(block.z) +
                           ")");
  const int limit = max_dynamic_smem(kernel);
  if (smem > static_cast<size_t>(limit) || smem > kDynamicRegion - 16)
    return fail_launch(cudaErrorInvalidValue, std::string("invalid argument (") + name + ": " + std::to_string(smem) +
                                                  " bytes of dynamic shared memory, the kernel's limit is " +
                                                  std::to_string(limit) + ")");
  const uint64_t n_blocks = static_cast<uint64_t>(grid.x) * grid.y * grid.z;
  g_launches.fetch_add(1);
  g_blocks.fetch_add(n_blocks);
  g_threads.fetch_add(n_blocks * threads);

  std::atomic<uint64_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex error_mutex;
  uint64_t error_block = ~uint64_t{0};
  std::string error;
  const int n_workers = static_cast<int>(std::min<uint64_t>(static_cast<uint64_t>(settings().workers), n_blocks));
  pool().run(n_workers, [&](int) {
    Worker& w = worker();
    tls_worker = &w;
    w.body = body;
    for (;;) {
      const uint64_t b = next.fetch_add(1);
      if (b >= n_blocks || failed.load()) break;
      if (!run_block(w, grid, block, b, smem)) {
        failed.store(true);
        std::lock_guard<std::mutex> lock(error_mutex);
        if (b < error_block) {
          error_block = b;
          error = w.error;
        }
      }
    }
    tls_worker = nullptr;
  });
  if (failed.load()) return fail_launch(cudaErrorLaunchFailure, std::string("emulated device fault in ") + name + ": " + error);
  return cudaSuccess;
}

}  // namespace gpt2emu

// ---- runtime API ----------------------------------------------------------------------------------

unsigned __activemask() {
  gpt2emu::Worker& w = gpt2emu::in_kernel("__activemask");
  const gpt2emu::Warp& warp = w.warps[static_cast<size_t>(w.current / 32)];
  return warp.present & ~warp.exited;
}

const char* cudaGetErrorName(cudaError_t err) {
  switch (err) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDeviceFunction: return "cudaErrorInvalidDeviceFunction";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
  }
  return "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError_t err) {
  if (err == cudaSuccess) return "no error";
  // The emulator's message for the last failure of this host thread (it names the kernel,
  // block, thread and line).
  if (!gpt2emu::t_last_message.empty()) return gpt2emu::t_last_message.c_str();
  return cudaGetErrorName(err);
}

cudaError_t cudaGetLastError() {
  const cudaError_t err = gpt2emu::t_last_error;
  gpt2emu::t_last_error = cudaSuccess;
  return err;
}
cudaError_t cudaPeekAtLastError() { return gpt2emu::t_last_error; }

cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : cudaErrorInvalidValue; }
cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (device != 0) return cudaErrorInvalidValue;
  const gpt2emu::DeviceProps& d = gpt2emu::device_props();
  switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock: *value = 1024; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = 48 * 1024; break;
    case cudaDevAttrWarpSize: *value = 32; break;
    case cudaDevAttrMultiProcessorCount: *value = d.sm_count; break;
    case cudaDevAttrComputeCapabilityMajor: *value = d.cc_major; break;
    case cudaDevAttrComputeCapabilityMinor: *value = d.cc_minor; break;
    case cudaDevAttrMaxSharedMemoryPerMultiprocessor: *value = d.smem_per_sm; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = d.smem_per_block_optin; break;
    default: return cudaErrorInvalidValue;
  }
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }

cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  *ptr = std::aligned_alloc(256, (bytes + 255) / 256 * 256 + 256);
  return *ptr ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaFree(void* ptr) {
  std::free(ptr);
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
  return cudaMemcpy(dst, src, bytes, kind);
}
cudaError_t cudaMemset(void* dst, int value, size_t bytes) {
  std::memset(dst, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t) { return cudaMemset(dst, value, bytes); }
