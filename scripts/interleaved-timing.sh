#!/bin/bash
# Interleaved timing (machines shared with other work drift over minutes, so the methods run
# in turn): R rounds, each running every method once (1 thread), min and median of
# setup+solve seconds per method. Usage: scripts/interleaved-timing.sh SCENE N SEED ROUNDS METHOD...
scene=$1; n=$2; seed=$3; rounds=$4; shift 4
out=${OUT:-runs/interleaved}/$scene$n; mkdir -p $out; rm -f $out/*.txt
for r in $(seq $rounds); do
  for m in "$@"; do
    f=$out/$(echo $m | tr ':/=' '___').txt
    OMP_NUM_THREADS=1 ./build/dcdm solve --scene $scene --n $n --seed $seed --method $m --rtol 1e-6 --rhs smooth --json $out/r.json > /dev/null 2>&1
    python3 -c "import json;j=json.load(open('$out/r.json'));print(j['iterations'], j['setup_seconds']+j['solve_seconds'])" >> $f
  done
done
for m in "$@"; do
  f=$out/$(echo $m | tr ':/=' '___').txt
  python3 -c "
import statistics
rows=[l.split() for l in open('$f')]
t=sorted(float(r[1]) for r in rows)
print('%-55s its %s  min %.3f  median %.3f  (%d runs)'%('$m',rows[0][0],t[0],statistics.median(t),len(t)))"
done
