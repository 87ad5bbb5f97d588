#!/usr/bin/env bash
# Fuzzing campaign: builds the libFuzzer targets of tests/fuzz (clang, ASan + UBSan, into
# build-fuzz/, CPU only) if needed, then runs each target for SECONDS (default 60) on a copy of
# its seed corpus kept in build-fuzz/fuzz/<target>/corpus (it grows from run to run), one
# after another. Prints per target the executions, libFuzzer's coverage (cov: edges, ft:
# features), exec/s, and every crash, leak, timeout or out-of-memory input it wrote; exits
# non-zero on any finding.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     e.g. scripts/fuzz.sh 20 (CI), scripts/fuzz.sh 600 fuzz_gguf
#   FUZZ_RUNS=N        stop a target after N executions (or SECONDS, whichever comes first)
#   FUZZ_PARALLEL=2    run two targets at a time (the most a 2-core machine should take)
#   FUZZ_FLAGS="..."   more libFuzzer flags, e.g. -entropic=0 (the plain schedule: about twice the
#                      executions/s of the default entropic one on fuzz_safetensors here)
#   FUZZ_JOBS=2        build parallelism (default 2)
#   FUZZ_BIN=DIR       run the target binaries in DIR (e.g. a copy, so that a rebuild cannot
#                      replace them under a long campaign) and build nothing
# A finding is reproduced with `build-fuzz/tests/fuzz/<target> <file>`; a fix gets a regression
# test in the ctest suite, and the input goes into tests/fuzz/corpus/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
build=build-fuzz
parallel=${FUZZ_PARALLEL:-1}

all_targets=(fuzz_safetensors fuzz_safetensors_roundtrip fuzz_config fuzz_tokenizer_files fuzz_tokenizer
             fuzz_gguf fuzz_llmc fuzz_completion_request fuzz_cli)
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then targets=("${all_targets[@]}"); fi

if ! command -v clang++ >/dev/null 2>&1; then
  echo "error: scripts/fuzz.sh needs clang++ (libFuzzer): apt-get install clang" >&2
  exit 2
fi
bin=${FUZZ_BIN:-$build/tests/fuzz}
if [[ -z ${FUZZ_BIN:-} ]]; then
  if [[ ! -f $build/CMakeCache.txt ]]; then
    CC=clang CXX=clang++ nice -n 19 cmake -S . -B $build -DGPT2_FUZZ=ON -DGPT2_CUDA=OFF \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  fi
  nice -n 19 cmake --build $build --target fuzz -j "${FUZZ_JOBS:-2}" >/dev/null
fi

# One target: prints one line "<target> <executions> <cov> <ft> <exec/s> <seconds> <findings...>".
run_target() {
  local t=$1 dir=$build/fuzz/$1
  mkdir -p "$dir/corpus" "$dir/artifacts"
  cp -n tests/fuzz/corpus/"$t"/* "$dir/corpus/" 2>/dev/null || true
  local args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048
              -print_final_stats=1 -artifact_prefix="$dir/artifacts/")
  [[ -n ${FUZZ_RUNS:-} ]] && args+=(-runs="$FUZZ_RUNS")
  # shellcheck disable=SC2206  # FUZZ_FLAGS is a list of flags, split on spaces
  [[ -n ${FUZZ_FLAGS:-} ]] && args+=($FUZZ_FLAGS)
  [[ -f tests/fuzz/dict/$t.dict ]] && args+=(-dict=tests/fuzz/dict/$t.dict)
  local start=$SECONDS rc=0
  nice -n 19 "$bin/$t" "${args[@]}" "$dir/corpus" >"$dir/log" 2>&1 || rc=$?
  local took=$((SECONDS - start))
  local last execs cov ft rate
  last=$(grep -E '^#[0-9]+' "$dir/log" | tail -1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
  [[ -z $execs ]] && execs=$(sed -E 's/^#([0-9]+).*/\1/' <<<"$last")
  cov=$(grep -oE 'cov: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || echo "?")
  ft=$(grep -oE 'ft: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || echo "?")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" | tail -1)
  local findings
  findings=$(find "$dir/artifacts" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
             -o -name 'oom-*' \) -newer "$dir/log.start" 2>/dev/null | tr '\n' ' ')
  if [[ $rc -ne 0 && -z $findings ]]; then findings="(exit $rc, see $dir/log)"; fi
  echo "$t ${execs:-?} $cov $ft ${rate:-?} $took $findings"
}

results=$(mktemp)
trap 'rm -f "$results"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "$build/fuzz/$t"
  touch "$build/fuzz/$t/log.start"
done
running=0
for t in "${targets[@]}"; do
  run_target "$t" >>"$results" &
  running=$((running + 1))
  if [[ $running -ge $parallel ]]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait

printf '%-28s %12s %7s %7s %8s %6s  %s\n' target executions cov ft exec/s secs findings
status=0
for t in "${targets[@]}"; do
  read -r name execs cov ft rate took findings < <(grep "^$t " "$results")
  printf '%-28s %12s %7s %7s %8s %6s  %s\n' "$name" "$execs" "$cov" "$ft" "$rate" "$took" "${findings:-none}"
  if [[ -n $findings ]]; then status=1; fi
done
exit $status
