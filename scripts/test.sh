#!/usr/bin/env bash
# Builds (if needed) and runs the test suite. Needs no GPU and no Python.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -f build/CMakeCache.txt ]]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
fi
cmake --build build -j"$(nproc)"
cd build
ctest --output-on-failure "$@"
