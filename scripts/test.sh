#!/usr/bin/env bash
# Builds (if needed) and runs the test suite. Needs no GPU and no Python.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -f build/CMakeCache.txt ]]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
fi
cmake --build build -j"$(nproc)"
cd build
status=0
ctest --output-on-failure "$@" || status=$?
if ((status != 0)); then
  # CI keeps only the tail of a run's output: the first failures and the facts of the machine
  # go last, so that a failure seen only on another machine can be told from that tail.
  echo "test.sh: FAILED (ctest exit $status). First failures (Testing/Temporary/LastTest.log):"
  awk '/: FAILED:$/ { n = 6 } n > 0 { print "  " $0; n-- }' Testing/Temporary/LastTest.log | head -n 48 || true
  echo "test.sh: the machine: $(uname -m), $(nproc) CPUs of $(getconf _NPROCESSORS_ONLN)," \
       "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "  flags: $(grep -m1 -o -w -E 'avx2|fma' /proc/cpuinfo | tr '\n' ' ')$(grep -m1 -o -w -E 'avx512(f|bw|vl|dq)' /proc/cpuinfo | tr '\n' ' ')" \
       "| $(grep -m1 MemTotal /proc/meminfo)| cgroup memory.max $(cat /sys/fs/cgroup/memory.max 2>/dev/null || echo -)," \
       "pids.max $(cat /sys/fs/cgroup/pids.max 2>/dev/null || echo -)"
  echo "  ulimit -v $(ulimit -v) -u $(ulimit -u) -n $(ulimit -n) -s $(ulimit -s) | uid $(id -u) | LANG=${LANG:-} | TMPDIR=${TMPDIR:-}"
  echo "  disk: $(df -h /tmp . | awk 'NR > 1 { printf "%s %s free; ", $6, $4 }')"
fi
exit "$status"
