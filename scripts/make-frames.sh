#!/usr/bin/env bash
# Regenerates the standard evaluation frames: smoke plume and smoke past the bunny at 64^3
# and 128^3, 100 frames each, the pressure system exported every 10th frame, MGPCG to
# rtol 1e-6, seed 0. Output: frames/<scene>_<n>/frame_NNNN/{A.mtx,A.bin,b.npy,b.bin,flags.npy,
# system.json}, png/density_NNNN.png, frames.csv (per-frame solve and timing figures),
# summary.json (seconds per frame, projection share). These frames keep the matrix files
# (--frame-matrix files) so that readers of the reference format (A.bin, b.bin) can use them;
# dcdm itself needs only flags.npy, b.npy and system.json.
#
# Usage: scripts/make-frames.sh [BUILD_DIR]      (make frames)
# Environment: FRAMES_DIR (default frames), FRAMES_SIZES (default "64 128"),
#              FRAMES_SCENES (default "plume bunny"), FRAMES_SEED (default 0).
#
# Runs resume: an interrupted set continues from its last checkpoint, a finished one is
# skipped. CPU time: about 30 s per 64^3 run, 4-5 minutes per 128^3 run; disk: 360 MB per
# 64^3 run, 2.9 GB per 128^3 run
# (see docs/perf-sim.md).
#
# 256^3 (about 9 GB of memory and 23 GB of disk per run, roughly 8x the 128^3 time; not part
# of the standard set):
#   build/dcdm simulate --scene plume --n 256 --frames 100 --export-every 10 --solver mgpcg \
#       --rtol 1e-6 --seed 0 --frame-matrix files --out frames/plume_256 --resume
#   build/dcdm simulate --scene bunny --n 256 --frames 100 --export-every 10 --solver mgpcg \
#       --rtol 1e-6 --seed 0 --frame-matrix files --out frames/bunny_256 --resume
set -euo pipefail
BUILD="${1:-build}"
DCDM="$BUILD/dcdm"
OUT="${FRAMES_DIR:-frames}"
SIZES="${FRAMES_SIZES:-64 128}"
SCENES="${FRAMES_SCENES:-plume bunny}"
SEED="${FRAMES_SEED:-0}"
if [[ ! -x "$DCDM" ]]; then
  echo "make-frames: $DCDM not found (build first: make build)" >&2
  exit 2
fi
mkdir -p "$OUT"
for n in $SIZES; do
  for scene in $SCENES; do
    echo "== $scene ${n}^3 -> $OUT/${scene}_${n}"
    "$DCDM" simulate --scene "$scene" --n "$n" --frames 100 --export-every 10 --solver mgpcg \
      --rtol 1e-6 --seed "$SEED" --frame-matrix files --out "$OUT/${scene}_${n}" --resume --quiet
    cat "$OUT/${scene}_${n}/summary.json" 2>/dev/null | tr -d '\n' | sed 's/  */ /g'; echo
  done
done
echo "make-frames: done ($OUT)"
