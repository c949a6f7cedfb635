#!/usr/bin/env bash
# The distributed V-cycle against the serial tool and PETSc's own solvers (docs/DISTRIBUTED.md,
# "The multigrid V-cycle on many ranks"): on SCENE at N^3 with seed SEED (5 is held out from
# the relaxnet training), rtol 1e-6, ROUNDS interleaved rounds, each running every
# configuration once as a fresh process:
#   - the serial tool, mgpcg and dcdm-relax on RANKS OpenMP threads;
#   - dcdm-mpi --method mgpcg / dcdm-relax on RANKS MPI ranks of one thread (matrix-free);
#   - PETSc's solvers on RANKS ranks, as their documentation sets them up for a 3-D Poisson
#     problem: CG + GAMG (its defaults: smoothed aggregation, one smoothing step; a drop
#     threshold of 0.05 made its set-up 40 times slower here),
#     CG + BoomerAMG (HMIS coarsening, ext+i interpolation, strong threshold 0.5, P_max 4,
#     one level of aggressive coarsening), CG + PCMG on the DMDA (Galerkin, as many levels as
#     halvings to 8^3).
# Prints iterations, min and median total (set-up + solve) seconds, and the peak resident
# memory summed over the ranks.
#   examples/petsc_mg_bench.sh [N=128] [ROUNDS=3] [SCENE=obstacles] [SEED=5] [RANKS=2] [BUILD=build]
set -euo pipefail
N=${1:-128}
ROUNDS=${2:-3}
SCENE=${3:-obstacles}
SEED=${4:-5}
RANKS=${5:-2}
BUILD=${6:-build}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
levels=$(/usr/bin/python3 -c "import math; print(max(2, int(math.log2($N / 8)) + 1))")
out=$(mktemp -d)
scene=(--scene "$SCENE" --n "$N" --seed "$SEED")
declare -A petsc=(
  [gamg]="-ksp_type cg -pc_type gamg -pc_gamg_agg_nsmooths 1"
  [boomeramg]="-ksp_type cg -pc_type hypre -pc_hypre_type boomeramg -pc_hypre_boomeramg_coarsen_type HMIS -pc_hypre_boomeramg_interp_type ext+i -pc_hypre_boomeramg_strong_threshold 0.5 -pc_hypre_boomeramg_P_max 4 -pc_hypre_boomeramg_agg_nl 1"
  [pcmg]="-ksp_type cg -pc_type mg -pc_mg_levels $levels -pc_mg_galerkin pmat"
)
names=(serial-mgpcg serial-dcdm-relax mpi-mgpcg mpi-dcdm-relax gamg boomeramg pcmg)
run() {  # name round
  local name=$1 r=$2 json="$out/$1-$2.json"
  case $name in
    serial-*) OMP_NUM_THREADS=$RANKS "$BUILD/dcdm" solve "${scene[@]}" --method "${name#serial-}" --json "$json" >/dev/null ;;
    mpi-*) OMP_NUM_THREADS=1 mpiexec --oversubscribe -n "$RANKS" "$BUILD/dcdm-mpi" solve "${scene[@]}" \
             --method "${name#mpi-}" --operator shell --json "$json" >/dev/null ;;
    *) OMP_NUM_THREADS=1 mpiexec --oversubscribe -n "$RANKS" "$BUILD/dcdm-mpi" solve "${scene[@]}" \
         --json "$json" ${petsc[$name]} >/dev/null ;;
  esac
}
echo "$SCENE ${N}^3 seed $SEED, rtol 1e-6, $ROUNDS interleaved rounds; $RANKS ranks x 1 thread / $RANKS threads;" \
     "$(nproc) cores; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$ROUNDS"); do
  for name in "${names[@]}"; do run "$name" "$r"; done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 - "$out" "${names[@]}" <<'PY'
import json, statistics, sys
out, names = sys.argv[1], sys.argv[2:]
import glob
rows = {}
print("| configuration | iterations | total s min | total s median | relative residual | peak memory MB (all ranks) |")
print("|---|---|---|---|---|---|")
for n in names:
    rs = [json.load(open(f)) for f in sorted(glob.glob(f"{out}/{n}-*.json"))]
    t = [r["setup_seconds"] + r["solve_seconds"] for r in rs]
    its = "/".join(str(i) for i in sorted({r["iterations"] for r in rs}))
    mem = max(r["memory"]["peak_resident_bytes"] for r in rs) / 2**20
    rows[n] = (min(t), statistics.median(t))
    print(f"| {n} | {its} | {min(t):.3f} | {statistics.median(t):.3f} | "
          f"{max(r['relative_residual'] for r in rs):.1e} | {mem:.0f} |")
s = {n: rows[n][1] for n in rows}
print()
for m in ("mgpcg", "dcdm-relax"):
    print(f"{m}: time on ranks / on threads (medians) {s['mpi-' + m] / s['serial-' + m]:.2f}")
best = min(("gamg", "boomeramg", "pcmg"), key=lambda n: s[n])
print(f"best PETSc solver: {best} ({s[best]:.3f} s); dcdm-relax on ranks / it: {s['mpi-dcdm-relax'] / s[best]:.2f}")
PY
