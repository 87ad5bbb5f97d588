#!/usr/bin/env bash
# The sanitizer jobs (called by .ci/run after scripts/test.sh), CPU only, each in its own build:
#   asan  build-asan/: ASan + UBSan (-DGPT2_SANITIZE=address,undefined; any UBSan finding is fatal),
#         the whole ctest suite; only the gpt2 binary and the test programs are built.
#   tsan  build-tsan/: TSan (-DGPT2_SANITIZE=thread) over the threaded code: the thread pool
#         (ctest "common"), the scheduler ("engine") and the server ("server"; GPT2_TSAN_TESTS="..."
#         names a subset).
# Usage: scripts/sanitize.sh [asan|tsan|all]   (default all; extra arguments go to ctest)
# Suppressions, each narrow and explained: tests/sanitizers/*.supp.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
job=${1:-all}
shift || true
case "$job" in asan|tsan|all) ;; *) echo "usage: scripts/sanitize.sh [asan|tsan|all] [ctest args]" >&2; exit 2 ;; esac

# -O1 -g: readable stacks, asserts on, and a build a third faster than -O2 on two cores.
configure() {  # DIR SANITIZERS
  cmake -S . -B "$1" -DGPT2_SANITIZE="$2" -DGPT2_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" >/dev/null
}

# The gpt2 binary (the CLI and server tests run it) and the programs of the named ctest tests.
build() {  # DIR TEST...
  local dir=$1
  shift
  local targets=(gpt2)
  for t in "$@"; do
    [[ $t == html ]] || targets+=("test_$t")  # html renders gpt2's pages: gpt2 alone
  done
  cmake --build "$dir" -j"$(nproc)" --target "${targets[@]}"
}

ctest_names() {  # DIR: every test ctest knows in that build
  (cd "$1" && ctest -N | sed -n 's/^ *Test *#[0-9]*: *//p')
}

run_asan() {
  local start=$SECONDS
  configure build-asan address,undefined
  mapfile -t tests < <(ctest_names build-asan)
  build build-asan "${tests[@]}"
  echo "sanitize: asan: built in $((SECONDS - start)) s; running ${#tests[@]} tests"
  # Also inherited by the gpt2 processes the CLI tests start: a leak or a finding there is a
  # non-zero exit that the test reports.
  (cd build-asan &&
    ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$root/tests/sanitizers/ubsan.supp" \
    LSAN_OPTIONS="suppressions=$root/tests/sanitizers/lsan.supp" \
    GPT2_TEST_SANITIZER=address \
    ctest --output-on-failure -j"$(nproc)" "$@")
  echo "sanitize: asan: done in $((SECONDS - start)) s"
}

run_tsan() {
  local start=$SECONDS
  configure build-tsan thread
  # GPT2_TSAN_TESTS narrows the list.
  local tests
  read -r -a tests <<<"${GPT2_TSAN_TESTS:-common engine server}"
  build build-tsan "${tests[@]}"
  echo "sanitize: tsan: built in $((SECONDS - start)) s; running ${tests[*]}"
  (cd build-tsan &&
    TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$root/tests/sanitizers/tsan.supp" \
    GPT2_TEST_SANITIZER=thread \
    ctest --output-on-failure -R "^($(IFS='|'; echo "${tests[*]}"))\$" "$@")
  echo "sanitize: tsan: done in $((SECONDS - start)) s"
}

if [[ $job == asan || $job == all ]]; then run_asan "$@"; fi
if [[ $job == tsan || $job == all ]]; then run_tsan "$@"; fi
