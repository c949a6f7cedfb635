#!/usr/bin/env bash
# The table of docs/DISTRIBUTED.md: KSPDCDM and KSPCG with PCMG (Galerkin), GAMG and hypre
# BoomerAMG on R ranks, beside the serial tool's mgpcg and dcdm-relax on R threads, on the
# obstacles scene at N^3, rtol 1e-6. Each configuration runs REPEAT times; the fastest set-up and
# solve are reported (the machine is shared). Waits until no compiler or test run is running before each
# measurement.
#   examples/petsc_bench.sh [N=128] [RANKS=2] [REPEAT=2] [BUILD=build]
set -euo pipefail
N=${1:-128}
RANKS=${2:-2}
REPEAT=${3:-2}
BUILD=${4:-build}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
levels=$(/usr/bin/python3 -c "import math; print(max(2, int(math.log2($N / 8)) + 1))")
out=$(mktemp -d)
wait_quiet() {  # no compiler and no other test run (ctest, the test binaries)
  while pgrep -f "cc1plus|cmake --build|ctest|dcdm_tests|dcdm_petsc_tests" >/dev/null; do sleep 5; done
}
best() {  # label, json files...: iterations, min setup, min solve
  local label=$1; shift
  /usr/bin/python3 - "$label" "$@" <<'PY'
import json, sys
rs = [json.load(open(f)) for f in sys.argv[2:]]
its = sorted({r["iterations"] for r in rs})
print(f"| {sys.argv[1]} | {'/'.join(map(str, its))} | {min(r['setup_seconds'] for r in rs):.2f} | "
      f"{min(r['solve_seconds'] for r in rs):.2f} | {min(r['setup_seconds'] + r['solve_seconds'] for r in rs):.2f} | "
      f"{max(r['relative_residual'] for r in rs):.1e} |")
PY
}
echo "obstacles ${N}^3, rtol 1e-6; $RANKS MPI ranks (1 thread each) / $RANKS OpenMP threads; $(nproc) cores; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| method | iterations | setup s | solve s | total s | relative residual |"
echo "|---|---|---|---|---|---|"
declare -A pcs=(
  [mg]="-pc_type mg -pc_mg_levels $levels -pc_mg_galerkin pmat"
  [gamg]="-pc_type gamg"
  [hypre]="-pc_type hypre -pc_hypre_type boomeramg"
)
# Repeats outermost, so that a disturbance of the shared machine hits every method alike.
for r in $(seq "$REPEAT"); do
  for pc in mg gamg hypre; do
    for ksp in dcdm cg; do
      wait_quiet
      OMP_NUM_THREADS=1 mpiexec --oversubscribe -n "$RANKS" "$BUILD/dcdm-mpi" solve --scene obstacles --n "$N" \
        --json "$out/$ksp-$pc-$r.json" -ksp_type "$ksp" ${pcs[$pc]} >/dev/null
    done
  done
  for method in mgpcg dcdm-relax; do
    wait_quiet
    OMP_NUM_THREADS=$RANKS "$BUILD/dcdm" solve --scene obstacles --n "$N" --method "$method" \
      --json "$out/serial-$method-$r.json" >/dev/null
  done
done
for pc in mg gamg hypre; do
  for ksp in dcdm cg; do
    best "dcdm-mpi -ksp_type $ksp ${pcs[$pc]}" "$out/$ksp-$pc-"*.json
  done
done
for method in mgpcg dcdm-relax; do
  best "dcdm solve --method $method (OMP_NUM_THREADS=$RANKS)" "$out/serial-$method-"*.json
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$out"
