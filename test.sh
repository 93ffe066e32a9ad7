#!/usr/bin/env bash
# Builds xbar and runs every test: unit tests and the validation cross-checks (ngspice).
#   ./test.sh [ctest options...]     e.g. ./test.sh -L unit   or   ./test.sh -L validation
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/scripts/setup.sh"
cd "$here/build"
ctest --output-on-failure -j "$(nproc)" "$@"
