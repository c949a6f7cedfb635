#!/bin/bash
# Usage: scripts/native-vs-portable.sh SCENE N ROUNDS METHOD...   (from the repository root)
# Needs build/ (the default, portable build) and build-native/, configured with
#   cmake -S . -B build-native -DCMAKE_BUILD_TYPE=Release -DDCDM_NATIVE=ON -DDCDM_BUILD_LEARN=OFF \
#         -DDCDM_BUILD_TESTS=OFF -DDCDM_BUILD_BENCH=OFF -DDCDM_BUILD_EXAMPLES=OFF && cmake --build build-native
# Interleaved: the portable build (build/dcdm) and a -march=native build (build-native/dcdm),
# same scene/method, R rounds, setup+solve seconds (2 threads).
scene=$1; n=$2; rounds=$3; shift 3
for m in "$@"; do
  for b in build build-native; do rm -f /tmp/nvp_${b}_$(echo $m | tr ':/=' '___').txt; done
done
for r in $(seq $rounds); do
  for m in "$@"; do
    for b in build build-native; do
      f=/tmp/nvp_${b}_$(echo $m | tr ':/=' '___').txt
      OMP_NUM_THREADS=2 ./$b/dcdm solve --scene $scene --n $n --seed 5 --method $m --rtol 1e-6 --rhs smooth --json /tmp/nvp.json > /dev/null 2>&1
      python3 -c "import json;j=json.load(open('/tmp/nvp.json'));print(j['iterations'], j['setup_seconds'], j['solve_seconds'])" >> $f
    done
  done
done
for m in "$@"; do
  python3 - "$m" <<'PY'
import statistics,sys
m=sys.argv[1]; k=m.replace(':','_').replace('/','_').replace('=','_')
res={}
for b in ['build','build-native']:
    rows=[l.split() for l in open(f'/tmp/nvp_{b}_{k}.txt')]
    res[b]=(rows[0][0], statistics.median(float(r[1]) for r in rows), statistics.median(float(r[2]) for r in rows), statistics.median(float(r[1])+float(r[2]) for r in rows))
p,nat=res['build'],res['build-native']
print(f"{m:45s} portable its {p[0]} setup {p[1]:.3f} solve {p[2]:.3f} total {p[3]:.3f} | native its {nat[0]} setup {nat[1]:.3f} solve {nat[2]:.3f} total {nat[3]:.3f} | portable/native {p[3]/nat[3]:.2f}")
PY
done
