// The 7-point pressure stencil (PoissonStencil::apply, the hot loop of every solver) on the
// bunny scene, against a STREAM triad measured in the same binary.
//
//   ./build/bench_stencil                                     64^3 and 128^3
//   ./build/bench_stencil --benchmark_filter=/128 --benchmark_repetitions=5
//
// Counters:
// - bytes_per_second: the bytes an apply must move at least, per second: x read (8 B/cell),
//   y written (8 B/cell), neighbour mask and diagonal read (1 + 1 B/cell). Neighbour values
//   are re-read from cache, not memory, and are not counted; neither is write-allocate
//   traffic (STREAM does not count it either).
// - ratio_to_triad: that bandwidth over a STREAM triad (a = b + s c, 24 B/element) on arrays
//   of the same length (N^3 doubles), timed just before in the same process with the same
//   OpenMP threads. Target: >= 0.7.
// - BM_StencilVsTriadInterleaved: the two kernels alternately on the same 128^3 bunny-sized
//   arrays; ratio_best compares the fastest run of each (robust on a shared machine),
//   ratio_mean the means.
// - BM_StreamTriad and BM_CsrMultiply (the assembled full-grid CSR of the same scene, bytes:
//   8 B value + 4 B column per entry, 8 B row offset, x and y) are shown for reference.
#include <benchmark/benchmark.h>

#include <chrono>
#include <random>
#include <vector>

#include <fmt/format.h>

#include "dcdm/poisson.hpp"
#include "dcdm/scenes.hpp"

namespace {

using namespace dcdm;

Domain bunny(int n) {
  SceneSpec spec;
  spec.name = "bunny";
  spec.dims = Dims{n, n, n};
  return make_scene(spec);
}

std::vector<double> random_field(const Domain& dom, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<double> x(static_cast<std::size_t>(dom.dims().size()), 0.0);
  for (std::size_t c = 0; c < x.size(); ++c)
    if (dom.cells[c] == CellType::Fluid) x[c] = u(rng);
  return x;
}

// Arrays touched first by the threads that use them (static schedule, as the kernels).
std::vector<double> first_touched(std::int64_t n, double value) {
  std::vector<double> v(static_cast<std::size_t>(n));
  double* p = v.data();
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < n; ++i) p[i] = value + 1e-9 * static_cast<double>(i % 1000);
  return v;
}

void triad(double* a, const double* b, const double* c, double s, std::int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (std::int64_t i = 0; i < n; ++i) a[i] = b[i] + s * c[i];
}

// Mean triad bandwidth (bytes/s) over `reps` runs after a warm-up.
double measure_triad(std::int64_t n, int reps) {
  auto a = first_touched(n, 0.0), b = first_touched(n, 1.0), c = first_touched(n, 2.0);
  for (int r = 0; r < 3; ++r) triad(a.data(), b.data(), c.data(), 1.0001, n);
  const auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r) {
    triad(a.data(), b.data(), c.data(), 1.0001, n);
    benchmark::DoNotOptimize(a.data());
    benchmark::ClobberMemory();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return 24.0 * static_cast<double>(n) * reps / seconds;
}

void BM_StencilApply(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const Domain dom = bunny(n);
  const PoissonStencil stencil(dom);
  const std::vector<double> x0 = random_field(dom, 1);
  std::vector<double> x = first_touched(stencil.size(), 0.0), y = first_touched(stencil.size(), 0.0);
  std::copy(x0.begin(), x0.end(), x.begin());
  const double triad_bw = measure_triad(stencil.size(), 30);
  const double bytes = static_cast<double>(stencil.bytes_per_apply());
  for (int r = 0; r < 3; ++r) stencil.apply(x, y);  // warm-up
  std::int64_t applies = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    stencil.apply(x, y);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
    ++applies;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  state.counters["bytes_per_second"] =
      benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1024);
  state.counters["cells_per_second"] =
      benchmark::Counter(static_cast<double>(stencil.size()), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["triad_bytes_per_second"] = benchmark::Counter(triad_bw, benchmark::Counter::kDefaults,
                                                                benchmark::Counter::kIs1024);
  state.counters["ratio_to_triad"] = bytes * static_cast<double>(applies) / seconds / triad_bw;
  state.SetLabel(fmt::format("bunny {}^3, {} fluid cells", n, dom.count(CellType::Fluid)));
}

// Stencil and triad alternately, each timed on its own: under a shared or loaded machine the
// fastest run of each (least disturbed) gives the fairest ratio, and alternating exposes both
// to the same conditions. Counters: ratio_best (fastest vs fastest), ratio_mean.
void BM_StencilVsTriadInterleaved(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const Domain dom = bunny(n);
  const PoissonStencil stencil(dom);
  const std::int64_t cells = stencil.size();
  std::vector<double> x = first_touched(cells, 0.0), y = first_touched(cells, 0.0);
  const std::vector<double> x0 = random_field(dom, 1);
  std::copy(x0.begin(), x0.end(), x.begin());
  auto a = first_touched(cells, 0.0), b = first_touched(cells, 1.0), c = first_touched(cells, 2.0);
  using clock = std::chrono::steady_clock;
  double best_stencil = 1e30, best_triad = 1e30, sum_stencil = 0, sum_triad = 0;
  std::int64_t runs = 0;
  for (int r = 0; r < 3; ++r) {
    stencil.apply(x, y);
    triad(a.data(), b.data(), c.data(), 1.0001, cells);
  }
  for (auto _ : state) {
    const auto t0 = clock::now();
    stencil.apply(x, y);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
    const auto t1 = clock::now();
    triad(a.data(), b.data(), c.data(), 1.0001, cells);
    benchmark::DoNotOptimize(a.data());
    benchmark::ClobberMemory();
    const auto t2 = clock::now();
    const double ts = std::chrono::duration<double>(t1 - t0).count(), tt = std::chrono::duration<double>(t2 - t1).count();
    best_stencil = std::min(best_stencil, ts);
    best_triad = std::min(best_triad, tt);
    sum_stencil += ts;
    sum_triad += tt;
    ++runs;
  }
  const double stencil_bytes = static_cast<double>(stencil.bytes_per_apply()), triad_bytes = 24.0 * static_cast<double>(cells);
  state.counters["stencil_best_bytes_per_second"] =
      benchmark::Counter(stencil_bytes / best_stencil, benchmark::Counter::kDefaults, benchmark::Counter::kIs1024);
  state.counters["triad_best_bytes_per_second"] =
      benchmark::Counter(triad_bytes / best_triad, benchmark::Counter::kDefaults, benchmark::Counter::kIs1024);
  state.counters["ratio_best"] = (stencil_bytes / best_stencil) / (triad_bytes / best_triad);
  state.counters["ratio_mean"] = (stencil_bytes * runs / sum_stencil) / (triad_bytes * runs / sum_triad);
  state.SetLabel(fmt::format("bunny {}^3", n));
}

void BM_StreamTriad(benchmark::State& state) {
  const std::int64_t n = state.range(0) * state.range(0) * state.range(0);
  auto a = first_touched(n, 0.0), b = first_touched(n, 1.0), c = first_touched(n, 2.0);
  for (auto _ : state) {
    triad(a.data(), b.data(), c.data(), 1.0001, n);
    benchmark::DoNotOptimize(a.data());
    benchmark::ClobberMemory();
  }
  state.counters["bytes_per_second"] = benchmark::Counter(24.0 * static_cast<double>(n),
                                                          benchmark::Counter::kIsIterationInvariantRate,
                                                          benchmark::Counter::kIs1024);
  state.SetLabel(fmt::format("{}^3 doubles per array", state.range(0)));
}

void BM_CsrMultiply(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const Domain dom = bunny(n);
  const CsrMatrix a = assemble_full_grid(dom);
  const std::vector<double> x = random_field(dom, 1);
  std::vector<double> y = first_touched(a.rows, 0.0);
  const double bytes = 12.0 * static_cast<double>(a.nnz()) + 8.0 * static_cast<double>(a.rows + 1) +
                       16.0 * static_cast<double>(a.rows);
  for (auto _ : state) {
    a.multiply(x, y);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.counters["bytes_per_second"] =
      benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1024);
  state.counters["cells_per_second"] =
      benchmark::Counter(static_cast<double>(a.rows), benchmark::Counter::kIsIterationInvariantRate);
}

BENCHMARK(BM_StencilApply)->Arg(64)->Arg(128)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_StencilVsTriadInterleaved)->Arg(128)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_StreamTriad)->Arg(64)->Arg(128)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_CsrMultiply)->Arg(64)->Arg(128)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
