// One multigrid V-cycle (the MGPCG preconditioner) and the IC(0) triangular solves on a 7-point
// domain with an obstacle and an open top, beside a STREAM triad in the same binary, so the
// V-cycle's throughput reads as a fraction of the machine's memory bandwidth; the float,
// over-relaxed cycle beside it; and the cost of one PCG and one DCDM (k = 2) iteration besides
// the preconditioner (seconds_per_iteration), the overhead a learned generator inside DCDM pays.
//
//   ./build/bench_vcycle                                   64^3 and 128^3
//   ./build/bench_vcycle --benchmark_filter=128
//
// Counters: cells_per_second (fine cells per second); bytes_per_second = the traffic model of
// docs/perf-bandwidth.md over the measured time: bytes per padded fine cell and level, times
// 8/7 for the coarser levels, plus the finest level's r read and z write; the straightforward
// passes (fused 0) move per level 16 a red-black half-sweep (x read and written, b, 1/diagonal)
// times 2 * 2 * sweeps, 20 for the residual, 4.5 restriction, 12.5 prolongation, 4 zeroing;
// the fused passes 20 per pass (pre: x written, b, 1/diagonal, normaliser read, r written;
// post: x read and written, b, 1/diagonal, normaliser); band sweeps not counted. Real = 4 (float)
// or 8 (double) bytes in place of the 4 above.
//
//   ./build/bench_vcycle --benchmark_filter='VCycle.*/128'   fused 1 against straightforward 0
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <vector>

#include "dcdm/dcdm.hpp"
#include "dcdm/grid.hpp"
#include "dcdm/krylov.hpp"
#include "dcdm/linalg.hpp"
#include "dcdm/poisson.hpp"
#include "dcdm/precond.hpp"
#include "dcdm/relaxnet.hpp"

namespace {

using namespace dcdm;

Domain obstacle_domain(int n) {
  Domain d(Dims{n, n, n}, CellType::Fluid);
  d.set_face(Face::ZMax, FaceBoundary::Open);
  const double c = n / 2.0, r = n / 4.0;
  for (int k = 0; k < n; ++k)
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < n; ++i) {
        const double x = i + 0.5 - c, y = j + 0.5 - c, z = k + 0.5 - n / 3.0;
        if (x * x + y * y + z * z < r * r) d.cells(i, j, k) = CellType::Solid;
      }
  return d;
}

Vector random_fluid(const Domain& d) {
  std::mt19937_64 rng(1);
  std::normal_distribution<double> g;
  Vector v(static_cast<std::size_t>(d.dims().size()), 0.0);
  for (std::int64_t i = 0; i < d.dims().size(); ++i)
    if (d.cells[i] == CellType::Fluid) v[i] = g(rng);
  return v;
}

void BM_StreamTriad(benchmark::State& state) {
  const std::int64_t n = state.range(0) * state.range(0) * state.range(0);
  Vector a(n, 0.0), b(n, 1.0), c(n, 2.0);
  double* pa = a.data();
  const double* pb = b.data();
  const double* pc = c.data();
  for (auto _ : state) {
#pragma omp parallel for simd schedule(static)
    for (std::int64_t i = 0; i < n; ++i) pa[i] = pb[i] + 0.5 * pc[i];
    benchmark::DoNotOptimize(pa);
  }
  state.counters["bytes_per_second"] = benchmark::Counter(
      24.0 * n, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1024);
}

// The system a solver or preconditioner sees for a domain and its stencil.
LinearSystemView domain_view(const PoissonStencil& op, const Domain& d) {
  LinearSystemView view;
  view.op = &op;
  view.domain = &d;
  return view;
}

// Times precond.apply on a random fluid residual of the n^3 obstacle domain (set up first).
template <class Preconditioner>
void time_apply(benchmark::State& state, Preconditioner& precond, const Domain& d) {
  const PoissonStencil op(d);
  precond.setup(domain_view(op, d));
  const Vector r = random_fluid(d);
  Vector z(r.size());
  for (auto _ : state) {
    precond.apply(r, z);
    benchmark::DoNotOptimize(z.data());
  }
  state.counters["cells_per_second"] = benchmark::Counter(static_cast<double>(d.dims().size()),
                                                          benchmark::Counter::kIsIterationInvariantRate);
}

// bytes_per_second of a cycle with options o (see the header comment).
void count_cycle_bytes(benchmark::State& state, const MultigridPreconditioner& mg, const Domain& d) {
  const MultigridOptions& o = mg.options();
  const Dims n = d.dims();
  const double padded = double(n.nx + 3) * (n.ny + 3) * (n.nz + 3);
  const double real = o.single_precision ? 1.0 : 2.0;  // in units of 4 bytes
  const double per_level =
      o.fused_passes ? 40.0 * real : (16.0 * 4 * o.pre_sweeps + 20 + 4.5 + 12.5 + 4) * real;
  const double finest = o.fused_passes ? 16.0 : 16.0 + 12.0;  // r read, z written (+ b, x copies)
  state.counters["bytes_per_second"] =
      benchmark::Counter(padded * (per_level * 8.0 / 7.0 + finest), benchmark::Counter::kIsIterationInvariantRate,
                         benchmark::Counter::kIs1024);
  state.counters["levels"] = mg.levels();
}

// state.range(1): 1 = fused passes (the default), 0 = one pass per stage.
void BM_VCycle(benchmark::State& state) {
  const Domain d = obstacle_domain(static_cast<int>(state.range(0)));
  MultigridOptions o;
  o.fused_passes = state.range(1) != 0;
  MultigridPreconditioner mg(o);
  time_apply(state, mg, d);
  count_cycle_bytes(state, mg, d);
}

void BM_IncompleteCholeskySolve(benchmark::State& state) {
  const Domain d = obstacle_domain(static_cast<int>(state.range(0)));
  IncompleteCholeskyPreconditioner mic(0.97);
  time_apply(state, mic, d);
}

// The float cycle with over-relaxed sweeps (what RelaxNet and the tuned MGPCG settings run).
void BM_VCycleFloat(benchmark::State& state) {
  const Domain d = obstacle_domain(static_cast<int>(state.range(0)));
  MultigridOptions o;
  o.single_precision = true;
  o.omega = 1.3;
  o.band_omega = 1.5;
  o.fused_passes = state.range(1) != 0;
  MultigridPreconditioner mg(o);
  time_apply(state, mg, d);
  count_cycle_bytes(state, mg, d);
}

// RelaxNet's cycle: the float cycle with per-cell factors (a random parameter set, so that
// the factors near walls and obstacles differ from the interior's as a trained one's do).
void BM_VCycleRelaxNet(benchmark::State& state) {
  const Domain d = obstacle_domain(static_cast<int>(state.range(0)));
  const learn::RelaxNet net = learn::RelaxNet::random(1, 0.3);
  MultigridOptions o = net.cycle_options();
  o.fused_passes = state.range(1) != 0;
  MultigridPreconditioner mg(o);
  time_apply(state, mg, d);
  count_cycle_bytes(state, mg, d);
}

// Setup of the float cycle without and with RelaxNet's per-cell factors (state.range(1)).
void BM_SetupFloatCycle(benchmark::State& state) {
  const Domain d = obstacle_domain(static_cast<int>(state.range(0)));
  const PoissonStencil op(d);
  const LinearSystemView view = domain_view(op, d);
  MultigridOptions o;
  o.single_precision = true;
  if (state.range(1) != 0) o = learn::RelaxNet::random(1, 0.3).cycle_options();
  for (auto _ : state) {
    MultigridPreconditioner mg(o);
    mg.setup(view);
    benchmark::DoNotOptimize(&mg);
  }
}

// What one Krylov iteration costs besides the preconditioner / generator: PCG (CG here) and
// DCDM with k = 2 kept directions, both with the identity (one copy) as preconditioner /
// generator, 20 iterations per solve; time per iteration. Their difference is the price of
// DCDM's A-orthogonalisation against two directions over PCG's recurrence.
void time_iterations(benchmark::State& state, IterativeSolver& solver, const Domain& d) {
  const PoissonStencil op(d);
  solver.setup(domain_view(op, d));
  const Vector b = random_fluid(d);
  Vector x(b.size());
  SolveOptions so;
  so.rtol = 1e-300;
  so.max_iterations = 20;
  so.stagnation_window = 0;
  for (auto _ : state) {
    const SolveReport rep = solver.solve(b, x, so);
    if (rep.iterations != so.max_iterations) state.SkipWithError("the solve stopped early");
    benchmark::DoNotOptimize(x.data());
  }
  state.counters["seconds_per_iteration"] =
      benchmark::Counter(so.max_iterations, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

void BM_IterationCg(benchmark::State& state) {
  const Domain d = obstacle_domain(static_cast<int>(state.range(0)));
  PcgSolver cg("cg", nullptr);
  time_iterations(state, cg, d);
}

// state.range(1): 2 = orthogonalise before the mat-vec (the default, one vector fewer), 1 = the
// fused orthogonalise-and-step pass, 0 = separate passes.
void BM_IterationDcdmK2(benchmark::State& state) {
  const Domain d = obstacle_domain(static_cast<int>(state.range(0)));
  DcdmOptions o;
  o.k = 2;
  o.weak_fallback = false;
  o.orthogonalise_first = state.range(1) == 2;
  o.fused_step = state.range(1) == 1;
  DcdmSolver dcdm(std::make_shared<IdentityOperator>(d.dims().size()), o, "dcdm-identity");
  time_iterations(state, dcdm, d);
}

BENCHMARK(BM_StreamTriad)->Arg(64)->Arg(128)->Arg(256)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_VCycle)->ArgsProduct({{64, 128}, {1, 0}})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_VCycleFloat)->ArgsProduct({{64, 128}, {1, 0}})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_VCycleRelaxNet)->ArgsProduct({{64, 128, 256}, {1, 0}})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SetupFloatCycle)->Args({128, 0})->Args({128, 1})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_IterationCg)->Arg(128)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_IterationDcdmK2)->Args({128, 2})->Args({128, 1})->Args({128, 0})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_IncompleteCholeskySolve)->Arg(64)->Arg(128)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
