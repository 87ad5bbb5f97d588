#!/usr/bin/env bash
# The CUDA check, in one command, for a machine with an NVIDIA GPU (written for the lent H200:
# 16 cores, no network). Budget: under 8 minutes.
#
#   1. builds gpt2 and test_cuda with CUDA in build-gpu (all cores, sm_90 only);
#   2. runs the CUDA tests (every kernel and the whole model against the CPU backend);
#   3. runs compute-sanitizer memcheck and racecheck on the tiny-model test ([sanitize]);
#   4. benchmarks random:gpt2 and random:gpt2-xl, batch 1 and 8, bf16 and fp16, the 1024-token
#      prefill of gpt2, and gpt2 decode without PDL and without CUDA graphs (what each buys);
#   5. prints a short table.
#
# Logs go to $OUT when set (else build-gpu/gpu-check). Exit status: non-zero when the build or
# a test fails. Environment: GPU_CHECK_SKIP_TESTS=1 skips steps 2-3 (benchmarks only).
#
# The GPU machine has CMake, nvcc and g++ but no network and maybe not this project's
# header-only dependencies (CLI11, nlohmann-json, Catch2 v2). On a machine that has them (the
# development machine, after scripts/setup.sh), `scripts/gpu-check.sh --bundle-deps` copies
# them into build-gpu-deps/ (git-ignored, ~2 MB); carry that folder to the GPU machine, where
# this script finds it and points CMake at it.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DEPS=$ROOT/build-gpu-deps

if [[ "${1:-}" == "--bundle-deps" ]]; then
  set -e
  rm -rf "$DEPS"
  mkdir -p "$DEPS/include" "$DEPS/share/cmake" "$DEPS/lib/cmake"
  cp -r /usr/include/CLI /usr/include/nlohmann /usr/include/catch2 "$DEPS/include/"
  cp -r /usr/share/cmake/CLI11 /usr/share/cmake/nlohmann_json "$DEPS/share/cmake/"
  cp -r /usr/lib/cmake/Catch2 "$DEPS/lib/cmake/"
  cp /usr/lib/libCatch2WithMain.a "$DEPS/lib/"  # Catch2's CMake config checks that it exists
  du -sh "$DEPS"
  exit 0
fi
LOG=${OUT:-$ROOT/build-gpu/gpu-check}
mkdir -p "$LOG"
JOBS=$(nproc)
START=$(date +%s)
status=0

stamp() { echo "[$(( $(date +%s) - START ))s] $*"; }
phase() {  # phase NAME TIMEOUT_S CMD...: runs CMD with a time limit, log in $LOG/NAME.log
  local name=$1 limit=$2
  shift 2
  local t0=$(date +%s)
  timeout --signal=INT --kill-after=10 "$limit" "$@" >"$LOG/$name.log" 2>&1
  local rc=$?
  stamp "$name: exit $rc in $(( $(date +%s) - t0 ))s (log: $LOG/$name.log)"
  return $rc
}

{
  echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (+ local changes)')"
  echo "date:   $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem,driver_version --format=csv 2>&1
  nvcc --version 2>&1 | tail -1
} | tee "$LOG/machine.txt"

# ---- 1. build ----------------------------------------------------------------------------------
PREFIX_ARGS=()
[[ -d "$DEPS" ]] && PREFIX_ARGS=(-DCMAKE_PREFIX_PATH="$DEPS")
phase configure 120 cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DGPT2_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DGPT2_NATIVE=ON "${PREFIX_ARGS[@]}" || {
  tail -30 "$LOG/configure.log"
  echo "HINT: a missing CLI11/nlohmann_json/Catch2 package: run scripts/gpu-check.sh --bundle-deps where they are installed and carry build-gpu-deps"
  exit 1
}
phase build 240 cmake --build build-gpu -j"$JOBS" --target gpt2 test_cuda || {
  grep -m20 -B2 -A8 "error" "$LOG/build.log" || tail -20 "$LOG/build.log"
  exit 1
}

# ---- ceilings (METHOD.md): HBM copy bandwidth and bf16 tensor-core rate, through PyTorch ----------
CEILINGS_PY='
import torch
start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
def timed(fn, reps):
    for _ in range(3): fn()
    torch.cuda.synchronize(); start.record()
    for _ in range(reps): fn()
    end.record(); torch.cuda.synchronize()
    return start.elapsed_time(end) / reps  # ms
x = torch.randint(0, 255, (1 << 30,), dtype=torch.uint8, device="cuda"); y = torch.empty_like(x)
ms = timed(lambda: y.copy_(x), 20)
print(f"ceiling: device-to-device copy {2 * x.numel() / ms / 1e9:.2f} TB/s (read + write, 1 GiB)")
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16); b = torch.randn_like(a)
ms = timed(lambda: a @ b, 10)
print(f"ceiling: bf16 matmul 8192^3 {2 * 8192 ** 3 / ms / 1e9:.0f} TFLOP/s (random data)")
'
if command -v python3 >/dev/null 2>&1 && python3 -c "import torch" >/dev/null 2>&1; then
  phase ceilings 60 python3 -c "$CEILINGS_PY" && cat "$LOG/ceilings.log"
else
  stamp "ceilings: python3 with torch not found, skipped"
fi

# ---- 2-3. tests --------------------------------------------------------------------------------
if [[ "${GPU_CHECK_SKIP_TESTS:-0}" != 1 ]]; then
  phase test_cuda 180 build-gpu/test_cuda --durations yes || status=1
  tail -5 "$LOG/test_cuda.log"
  # The backend falls back to eager decode steps when graph capture fails (a note on stderr):
  # the tests then pass without having exercised graph replay. Say so loudly.
  grep -m1 "graph capture of the decode step failed" "$LOG/test_cuda.log" &&
    stamp "WARNING: decode CUDA graphs fell back to eager execution (line above); graph replay untested"
  SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  sanitize() {  # sanitize TOOL TIMEOUT_S: a refused device (gVisor machines) is "unavailable", not a failure
    if (( $(date +%s) - START > 300 )); then
      stamp "$1: skipped (time budget; run: compute-sanitizer --tool $1 build-gpu/test_cuda '[sanitize]')"
      return
    fi
    phase "$1" "$2" "$SAN" --tool "$1" --error-exitcode 3 build-gpu/test_cuda "[sanitize]"
    local rc=$?
    if (( rc != 0 )); then
      if (( rc == 124 || rc == 137 )); then
        # Out of time (racecheck instruments every shared-memory access): no verdict, not a
        # failure; the log shows how far it got and any hazard reported before the limit.
        stamp "$1: timed out (no verdict); rerun alone: compute-sanitizer --tool $1 build-gpu/test_cuda '[sanitize]'"
        grep -m5 -E "^========= +(Error|Invalid|Program hit)" "$LOG/$1.log" && status=1
      elif grep -q -E "Device not supported|error 999|Unable to find injection" "$LOG/$1.log"; then
        stamp "$1: compute-sanitizer cannot attach to this machine's GPU (see log): unavailable, not a failure"
      else
        status=1
      fi
    fi
    tail -3 "$LOG/$1.log"
  }
  if [[ -x "$SAN" ]]; then
    sanitize memcheck 90
    sanitize racecheck 120
  else
    stamp "compute-sanitizer not found: skipped"
  fi
fi

# ---- 4. benchmarks (most important first; the optional ones are skipped past 7 minutes) --------
over_budget() { (( $(date +%s) - START > 420 )); }
bench() {  # bench NAME MODEL DTYPE BATCHES PROMPT GEN REPS [VAR=VALUE...]
  local name=$1 model=$2 dtype=$3 batches=$4 prompt=$5 gen=$6 reps=$7
  shift 7
  phase "bench_$name" 90 env "$@" build-gpu/gpt2 bench -m "$model" --device cuda --dtype "$dtype" \
    --batch "$batches" --prompt-tokens "$prompt" --gen-tokens "$gen" --reps "$reps" --json || status=1
}
optional_bench() {
  if over_budget; then stamp "bench_$1: skipped (time budget)"; else bench "$@"; fi
}
bench gpt2_bf16 random:gpt2 bf16 1,8 128 128 5
bench gpt2-xl_bf16 random:gpt2-xl bf16 1,8 128 128 3
bench gpt2_prefill1024_bf16 random:gpt2 bf16 1 1024 0 10
optional_bench gpt2_fp16 random:gpt2 fp16 1,8 128 128 5
optional_bench gpt2-xl_fp16 random:gpt2-xl fp16 1,8 128 128 3
# What the decode step's launch machinery buys (gpt2 bf16, batch 1): PDL off, then graphs off.
optional_bench gpt2_bf16_nopdl random:gpt2 bf16 1 128 128 5 GPT2_CUDA_PDL=0
optional_bench gpt2_bf16_nographs random:gpt2 bf16 1 128 128 5 GPT2_CUDA_GRAPHS=0

# ---- 5. summary --------------------------------------------------------------------------------
summary() {
  if command -v python3 >/dev/null 2>&1; then
    python3 - "$LOG" <<'PY'
import json, pathlib, sys
log = pathlib.Path(sys.argv[1])
print("| case | batch | prompt | prefill tok/s | decode tok/s | ttft ms | peak device MiB |")
print("|---|---|---|---|---|---|---|")
for f in sorted(log.glob("bench_*.log")):
    text = f.read_text()
    start = text.find("{")
    try:
        j = json.loads(text[start:])
    except Exception:
        lines = [l for l in text.splitlines() if l.strip()]
        why = lines[-1][:100] if lines else "no output"
        print(f"| {f.stem[6:]} | failed ({f.name}): {why} | | | | | |")
        continue
    dev = j.get("peak_device_bytes") or -1
    for r in j.get("results", []):
        def med(k, digits=0):
            s = r.get(k)
            return f"{s['median']:.{digits}f}" if s else "-"
        print(f"| {f.stem[6:]} | {r.get('batch')} | {r.get('prompt_tokens')} | {med('prefill_tokens_per_s')} | "
              f"{med('decode_tokens_per_s')} | {med('ttft_ms', 2)} | {dev / 2**20:.0f} |")
PY
  else
    for f in "$LOG"/bench_*.log; do echo "== $(basename "$f")"; cat "$f"; done
  fi
}
{ [[ -f "$LOG/ceilings.log" ]] && grep "^ceiling" "$LOG/ceilings.log"; summary; } | tee "$LOG/summary.md"
stamp "done (status $status); targets: gpt2 bf16 B=1 decode >= 5000 tok/s, gpt2-xl bf16 B=1 >= 900 tok/s, gpt2 1024-token prefill < 1 ms (>= 1.02M tok/s)"
exit $status
