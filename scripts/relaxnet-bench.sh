#!/bin/bash
# The issue-9 goal runs (docs/perf-flagnet.md, top section): the held-out seed-5 scenes (and the
# plume box, a training layout) at 128^3 and 256^3, rtol 1e-6, one thread, RelaxNet beside
# MGPCG and hypre BoomerAMG-PCG, the methods in turn (--interleave: each run in a fresh child,
# so a machine whose speed drifts slows every method alike; setup includes loading the model).
# OUT (default runs/relax) receives bench128/ and bench256/. About 15 + 20 minutes. 128^3 runs
# fifteen rounds: this machine's run-to-run spread (+-25%) is larger than the margins there.
set -e
OUT=${OUT:-runs/relax}
M=mgpcg,hypre-amg,dcdm-relax:models/relaxnet.dcdm
./build/dcdm bench --scenes plume,bunny,pool,obstacles --seed 5 --n 128 --methods "$M" --rtol 1e-6 --repeat 15 \
  --interleave --threads 1 --no-plots --out $OUT/bench128
./build/dcdm bench --scenes bunny,pool,obstacles --seed 5 --n 256 --methods "$M" --rtol 1e-6 --repeat 3 \
  --interleave --threads 1 --no-plots --out $OUT/bench256
# The controls at 128^3: MGPCG's cycle in float with hand-tuned factors, and the untrained model.
./build/dcdm bench --scenes plume,bunny --seed 5 --n 128 \
  --methods mgpcg,mgpcg:omega=1.3:band-omega=1.5:precision=float,dcdm-relax:initial,dcdm-relax:models/relaxnet.dcdm \
  --rtol 1e-6 --repeat 5 --interleave --threads 1 --no-plots --out $OUT/controls128
