#!/bin/bash
# The issue-9 benchmark of the learned generators (docs/perf-flagnet.md): held-out scenes at
# 128^3 and 256^3, rtol 1e-6, one thread, beside MGPCG, hypre BoomerAMG-PCG and the hand-tuned
# float SOR control. OUT (default runs/relax) receives bench128/ and bench256/.
set -e
OUT=${OUT:-runs/relax}
M="mgpcg,hypre-amg,mgpcg:omega=1.3:band-omega=1.5:precision=float,dcdm-relax:initial,dcdm-relax:models/relaxnet.dcdm"
./build/dcdm bench --scenes plume,bunny --n 128 --methods "$M,dcdm:models/flagnet.dcdm" --rtol 1e-6 --repeat 3 \
  --threads 1 --no-plots --out $OUT/bench128
# The time ratio at 128^3 with the methods taking turns (the machine's speed drifts):
./build/dcdm bench --scenes plume,bunny --n 128 --methods mgpcg,dcdm-relax:models/relaxnet.dcdm --rtol 1e-6 \
  --repeat 9 --interleave --threads 1 --no-plots --out $OUT/bench128-il
./build/dcdm bench --scenes bunny,pool --n 256 --seed 5 --methods "$M" --rtol 1e-6 --repeat 1 --threads 1 \
  --no-plots --out $OUT/bench256
