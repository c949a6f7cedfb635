#!/usr/bin/env bash
# Regenerates the pictures of the README (docs/img/): a volume-rendered frame and the GIF of
# smoke rising past the Stanford bunny. Usage: scripts/make-pictures.sh [BUILD_DIR]
# (make pictures). Needs ffmpeg (scripts/setup-deps.sh installs it).
#
# The run is `make movie`'s: the bunny scene at N^3 (default 128), FRAMES frames (default 120),
# a 640x640 picture every 2nd frame, assembled into an MP4 and a GIF; --resume reuses a
# finished run. Environment: N, FRAMES, STILL (the frame shown as the picture, default 80),
# OUT (the run folder, default movie-out/bunny-N).
set -euo pipefail
BUILD=${1:-build}
N=${N:-128}
FRAMES=${FRAMES:-120}
STILL=${STILL:-80}
OUT=${OUT:-movie-out/bunny-$N}
IMG=docs/img
command -v ffmpeg >/dev/null || { echo "make-pictures: ffmpeg is needed (apt-get install ffmpeg)" >&2; exit 1; }

"$BUILD/dcdm" simulate --scene bunny --n "$N" --frames "$FRAMES" --export-every 0 --render-every 2 \
  --movie --fps 15 --seed 1 --quiet --resume --out "$OUT"

mkdir -p "$IMG"
still=$(printf '%s/render/render_%04d.png' "$OUT" "$STILL")
[[ -f $still ]] || { echo "make-pictures: $still was not rendered (STILL must be even and <= FRAMES)" >&2; exit 1; }
# The picture at 480x480 (lanczos), the GIF as dcdm made it (at most 2 MB).
ffmpeg -hide_banner -loglevel error -y -i "$still" -vf scale=480:-1:flags=lanczos "$IMG/bunny-smoke.png"
cp "$OUT/render/movie.gif" "$IMG/bunny-smoke.gif"
ls -l "$IMG/bunny-smoke.png" "$IMG/bunny-smoke.gif" "$OUT/render/movie.mp4"
