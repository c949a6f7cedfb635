#!/bin/bash
# Interleaved timing of two dcdm builds (this tree's and another commit's, built beside it) on
# exported systems: R rounds, each solving every (system, method, build) once in its own
# process, in turn, so that a machine whose speed drifts affects both builds alike. Prints per
# (system, threads, method, build) the iterations, the final true relative residual
# ||b - A x|| / ||b|| and the min and median of setup + solve seconds over the rounds.
#
# Usage: BASE=/tmp/base/build/dcdm scripts/bandwidth-bench.sh ROUNDS THREADS SYSTEM_DIR...
#   NEW (default build/dcdm), METHODS (default "dcdm-relax mgpcg"), RTOL (default 1e-6),
#   OUT (default runs/bandwidth).
# The held-out systems of docs/perf-bandwidth.md:
#   dcdm export --scene sphere --n 128 --rhs smooth --seed 5 --param cx=0.37 --param cy=0.61 \
#     --param cz=0.45 --param radius=0.17 --out sph128        (and --n 256)
#   dcdm export --scene obstacles --n 128 --rhs smooth --seed 5 --out obs128
set -euo pipefail
rounds=$1; threads=$2; shift 2
new=${NEW:-build/dcdm}; base=${BASE:?set BASE to the other build\'s dcdm}
methods=${METHODS:-dcdm-relax mgpcg}; rtol=${RTOL:-1e-6}
out=${OUT:-runs/bandwidth}; mkdir -p "$out"
rows="$out/rows-$threads.txt"; : > "$rows"
for r in $(seq "$rounds"); do
  for sys in "$@"; do
    for m in $methods; do
      for b in new base; do
        bin=$new; [ $b = base ] && bin=$base
        OMP_NUM_THREADS=$threads "$bin" solve --system "$sys" --method "$m" --rtol "$rtol" \
          --json "$out/r.json" > "$out/log.txt" 2>&1 || true
        [ -f "$out/r.json" ] || { echo "$bin failed on $sys ($m):"; cat "$out/log.txt"; exit 1; }
        python3 -c "
import json; j = json.load(open('$out/r.json'))
print('$(basename "$sys")', $threads, '$m', '$b', j['iterations'], j['final_residual'] / j['rhs_norm'],
      j['setup_seconds'] + j['solve_seconds'], j['solve_seconds'])" >> "$rows"
        rm -f "$out/r.json"
      done
    done
  done
done
python3 - "$rows" << 'PY'
import statistics, sys, collections
runs = collections.OrderedDict()
for line in open(sys.argv[1]):
    s, t, m, b, its, rel, total, solve = line.split()
    runs.setdefault((s, t, m, b), []).append((int(its), float(rel), float(total), float(solve)))
print('| system | threads | method | build | iterations | true rel. residual | total s min | total s median | solve s median | rounds |')
print('|---|---|---|---|---|---|---|---|---|---|')
for (s, t, m, b), v in runs.items():
    tot = [x[2] for x in v]
    print(f'| {s} | {t} | {m} | {b} | {v[0][0]} | {v[0][1]:.2e} | {min(tot):.3f} | {statistics.median(tot):.3f} | '
          f'{statistics.median(x[3] for x in v):.3f} | {len(v)} |')
for (s, t, m, b), v in runs.items():
    if b != 'new' or (s, t, m, 'base') not in runs: continue
    w = runs[(s, t, m, 'base')]
    ratio = statistics.median(x[2] for x in v) / statistics.median(x[2] for x in w)
    print(f'{s} {t} threads {m}: new / base total time (medians) = {ratio:.2f}')
PY
