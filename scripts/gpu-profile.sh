#!/usr/bin/env bash
# Where a CUDA step's time goes, kernel by kernel, on the lent GPU machine (Nsight Compute reads
# each kernel's duration in one pass: gpu__time_duration.sum, clocks left alone). Builds gpt2 in
# build-gpu as scripts/gpu-check.sh does (carry build-gpu-deps), then profiles a short bench of
# random:gpt2 and random:gpt2-xl (bf16, batch 1: 16-token prompt, 8 and 4 decoded tokens) and a
# 1024-token gpt2 prefill, printing one line per kernel name: launches, total and mean time.
# Logs and the CSVs go to $OUT when it is set. Usage: scripts/gpu-profile.sh [LAUNCHES]
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
LOG=$ROOT/build-gpu/gpu-profile
mkdir -p "$LOG"
LAUNCHES=${1:-1500}
PREFIX_ARGS=()
[[ -d "$ROOT/build-gpu-deps" ]] && PREFIX_ARGS=(-DCMAKE_PREFIX_PATH="$ROOT/build-gpu-deps")
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DGPT2_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DGPT2_NATIVE=ON -DGPT2_SERVER=OFF "${PREFIX_ARGS[@]}" >"$LOG/configure.log" 2>&1 || { tail -20 "$LOG/configure.log"; exit 1; }
cmake --build build-gpu -j"$(nproc)" --target gpt2 >"$LOG/build.log" 2>&1 || { grep -m10 -A5 error "$LOG/build.log"; exit 1; }
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
profile() {  # profile NAME GPT2-BENCH-ARGS...
  local name=$1
  shift
  timeout 60 "$NCU" --clock-control none --metrics gpu__time_duration.sum --launch-count "$LAUNCHES" --csv \
    --log-file "$LOG/$name.csv" build-gpu/gpt2 bench --device cuda --dtype bf16 --reps 1 "$@" >"$LOG/$name.out" 2>&1
  echo "== $name (rc $?): kernel, grid, block, launches, total us, mean us"
  python3 - "$LOG/$name.csv" <<'PY'
import csv, sys, collections
rows = list(csv.reader(l for l in open(sys.argv[1]) if l.startswith('"')))  # ncu's ==PROF== lines dropped
if not rows: print("no rows"); sys.exit()
h = rows[0]; k, v, g, b = (h.index(x) for x in ("Kernel Name", "Metric Value", "Grid Size", "Block Size"))
tot, n = collections.Counter(), collections.Counter()
for r in rows[1:]:
    name = r[k].split("(")[0].replace("void ", "").replace("gpt2::<unnamed>::", "")[:60] + f" g{r[g]} b{r[b]}"
    tot[name] += float(r[v].replace(",", "")) / 1000.0  # ns -> us
    n[name] += 1
for name, t in tot.most_common(40): print(f"{name:90s} {n[name]:5d} {t:10.1f} {t / n[name]:8.2f}")
print(f"{'all':90s} {sum(n.values()):5d} {sum(tot.values()):10.1f}")
PY
}
profile gpt2_decode -m random:gpt2 --batch 1 --prompt-tokens 16 --gen-tokens 8
profile gpt2xl_decode -m random:gpt2-xl --batch 1 --prompt-tokens 16 --gen-tokens 4
profile gpt2_prefill1024 -m random:gpt2 --batch 1 --prompt-tokens 1024 --gen-tokens 0
if [[ -n "${OUT:-}" ]]; then tar -czf "$OUT/gpu-profile.tar.gz" -C "$LOG/.." gpu-profile; fi
