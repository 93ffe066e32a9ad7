#!/usr/bin/env bash
# Installs the Debian packages xbar needs (when missing) and builds it with CMake.
# Used by ./demo.sh and ./test.sh; safe to run again (it only does what is missing).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
packages=(build-essential cmake ninja-build pkg-config
  libeigen3-dev libsuitesparse-dev libboost-dev libhdf5-dev libtbb-dev
  libyaml-cpp-dev libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev
  libfmt-dev libopenblas-dev zlib1g-dev dataset-fashion-mnist
  ngspice python3-matplotlib python3-h5py python3-numpy)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "xbar setup: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
build="${XBAR_BUILD_DIR:-$here/build}"
if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build" -j "$(nproc)"
