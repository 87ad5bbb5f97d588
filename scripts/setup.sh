#!/usr/bin/env bash
# Installs the build dependencies (Debian/Ubuntu, apt) and builds gpt2 into build/.
# Idempotent; works as root or with sudo. Extra arguments go to cmake's configure step,
# e.g. scripts/setup.sh -DGPT2_CUDA=OFF
set -euo pipefail
cd "$(dirname "$0")/.."

# Google Benchmark (libbenchmark-dev) is optional, for tools/bench_*.
# libcpp-httplib-dev: the HTTP server of `gpt2 serve` (a header and a compiled library).
packages=(build-essential cmake libcli11-dev nlohmann-json3-dev catch2 libcpp-httplib-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build build -j"$(nproc)"
echo "setup: built build/gpt2"
