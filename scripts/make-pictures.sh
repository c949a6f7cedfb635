#!/usr/bin/env bash
# Regenerates the pictures of the README (docs/img/): a volume-rendered frame and the GIF of
# smoke rising past the Stanford bunny, and a density-slice figure.
# Usage: scripts/make-pictures.sh [BUILD_DIR]
# (make pictures). Needs ffmpeg (scripts/setup-deps.sh installs it).
#
# The run is `make movie`'s: the bunny scene at N^3 (default 128), FRAMES frames (default 120),
# a 640x640 picture every 2nd frame, assembled into an MP4 and a GIF; --resume reuses a
# finished run. Environment: N, FRAMES, STILL (the frame shown as the picture, default 80),
# OUT (the run folder, default demo-out/movie-bunny-N).
set -euo pipefail
BUILD=${1:-build}
N=${N:-128}
FRAMES=${FRAMES:-120}
STILL=${STILL:-80}
OUT=${OUT:-demo-out/movie-bunny-$N}
IMG=docs/img
command -v ffmpeg >/dev/null || { echo "make-pictures: ffmpeg is needed (apt-get install ffmpeg)" >&2; exit 1; }

"$BUILD/dcdm" simulate --scene bunny --n "$N" --frames "$FRAMES" --export-every 0 --render-every 2 \
  --movie --fps 15 --seed 1 --quiet --resume --out "$OUT"

mkdir -p "$IMG"
still=$(printf '%s/render/render_%04d.png' "$OUT" "$STILL")
[[ -f $still ]] || { echo "make-pictures: $still was not rendered (STILL must be even and <= FRAMES)" >&2; exit 1; }
# The picture at 480x480 (lanczos), the MP4 as dcdm made it, and a GIF smaller than dcdm's
# (360 pixels, 12 frames per second, 96 colours) to keep the repository light.
ffmpeg -hide_banner -loglevel error -y -i "$still" -vf scale=480:-1:flags=lanczos "$IMG/bunny-smoke.png"
cp "$OUT/render/movie.mp4" "$IMG/bunny-smoke.mp4"
ffmpeg -hide_banner -loglevel error -y -framerate 15 -pattern_type glob -i "$OUT/render/render_*.png" \
  -filter_complex "fps=12,scale=360:-1:flags=lanczos,split[a][b];[a]palettegen=max_colors=96:stats_mode=diff[p];[b][p]paletteuse=dither=bayer:bayer_scale=4:diff_mode=rectangle" \
  -loop 0 "$IMG/bunny-smoke.gif"

# The slice figure of a 64^3 run's frame 80.
"$BUILD/dcdm" simulate --scene bunny --n 64 --frames 80 --export-every 80 --seed 1 --quiet --resume --out "$OUT-64"
cp "$OUT-64/png/density_0080.png" "$IMG/bunny-slices.png"
# The liquid scene's surface (a pool and a drop), rendered from its level set.
"$BUILD/dcdm" render --scene liquid --n 96 --param drop=1 --param depth=0.35 --size 360 --out "$IMG/liquid-drop.png"
ls -l "$IMG"/bunny-smoke.* "$IMG"/bunny-slices.png "$IMG"/liquid-drop.png
