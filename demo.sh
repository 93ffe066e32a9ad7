#!/usr/bin/env bash
# The main job: install what is missing, build, simulate a tile from a card, write the trace
# out/<card>.h5 and the picture out/<card>.png, print the summary.
#   ./demo.sh [CARD.yaml] [xbar simulate options...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/scripts/setup.sh"
# The card as a path from the repository (resolved from where the script was called).
card="$(realpath --relative-to="$here" "${1:-$here/cards/rram-1t1r-256.yaml}")"
shift || true
name="$(basename "${card%.*}")"
cd "$here"
mkdir -p out
build/tools/xbar simulate "$card" -o "out/$name.h5" "$@"
/usr/bin/python3 tools/plot_trace.py "out/$name.h5" -o "out/$name.png"
echo "  picture    out/$name.png"
