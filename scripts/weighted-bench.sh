#!/usr/bin/env bash
# Variable-coefficient systems against the same geometry with unit weights, in one
# interleaved `dcdm bench` run: the liquid (ghost-fluid free surface), the cut-cell solids, the
# density ratios 1e3 and 1e6, each beside its unit-weight twin (same cells).
#
# Usage: scripts/weighted-bench.sh [N=128] [OUT=bench-weighted] [THREADS=2] [REPEAT=3]
# Needs build/dcdm (make build). The table goes to OUT/table.md, the JSON to OUT/bench.json.
set -euo pipefail
N=${1:-128}
OUT=${2:-bench-weighted}
THREADS=${3:-2}
REPEAT=${4:-3}
DCDM=${DCDM:-build/dcdm}
SYS="$OUT/systems"
mkdir -p "$SYS"

export_scene() {  # name scene params...
  local name=$1 scene=$2
  shift 2
  local args=()
  for p in "$@"; do args+=(--param "$p"); done
  if [ ! -f "$SYS/$name/system.json" ]; then
    "$DCDM" export --scene "$scene" --n "$N" --rhs random --seed 1 "${args[@]}" --out "$SYS/$name" >/dev/null
  fi
}

export_scene liquid liquid
export_scene liquid-unit liquid theta_min=1
export_scene cutcell cutcell
export_scene cutcell-unit cutcell weights=0
export_scene density-1e3 density ratio=1000
export_scene density-1e6 density ratio=1000000
export_scene density-unit density ratio=1

"$DCDM" bench --systems "$SYS"/liquid-unit "$SYS"/liquid "$SYS"/cutcell-unit "$SYS"/cutcell \
  "$SYS"/density-unit "$SYS"/density-1e3 "$SYS"/density-1e6 \
  --methods mgpcg,dcdm-relax,mgpcg:omega=1.3:band-omega=1.5:precision=float,hypre-pfmg \
  --rtol 1e-6 --threads "$THREADS" --repeat "$REPEAT" --interleave --no-plots --out "$OUT"
