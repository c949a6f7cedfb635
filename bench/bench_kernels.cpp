// Vector and sparse-matrix kernels against a STREAM triad in the same binary, so that every
// figure can be read as a fraction of the machine's memory bandwidth measured in the same run.
//
//   ./build/bench_kernels                                  all kernels, 2^16 .. 2^24 doubles
//   ./build/bench_kernels --benchmark_filter=1048576       one size
//
// Counters: bytes_per_second = bytes the kernel must move (reads + writes of 8-byte doubles,
// plus 8-byte row pointers and 4-byte column indices for CSR) per second; FLOPs = useful
// floating-point operations per second. The CSR matrix is the 7-point pressure matrix of a
// full fluid box (no solid cells), the shape every solver spends its time in.
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>
#include <vector>

#include "dcdm/linalg.hpp"

namespace {

using namespace dcdm;

Vector random_vector(std::int64_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  Vector v(static_cast<std::size_t>(n));
  for (auto& x : v) x = u(rng);
  return v;
}

void set_counters(benchmark::State& state, double bytes_per_iter, double flops_per_iter) {
  state.counters["bytes_per_second"] =
      benchmark::Counter(bytes_per_iter, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1024);
  state.counters["FLOPs"] = benchmark::Counter(flops_per_iter, benchmark::Counter::kIsIterationInvariantRate);
}

// STREAM triad a = b + s c: the bandwidth reference (3 arrays of n doubles, 2 reads + 1 write).
void BM_StreamTriad(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  Vector a(n, 0.0), b = random_vector(n, 1), c = random_vector(n, 2);
  const double s = 1.0001;
  double* pa = a.data();
  const double* pb = b.data();
  const double* pc = c.data();
  for (auto _ : state) {
#pragma omp parallel for simd schedule(static)
    for (std::int64_t i = 0; i < n; ++i) pa[i] = pb[i] + s * pc[i];
    benchmark::DoNotOptimize(pa);
    benchmark::ClobberMemory();
  }
  set_counters(state, 3.0 * 8 * n, 2.0 * n);
}

void BM_Dot(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  const Vector a = random_vector(n, 3), b = random_vector(n, 4);
  for (auto _ : state) benchmark::DoNotOptimize(dot(a, b));
  set_counters(state, 2.0 * 8 * n, 2.0 * n);
}

void BM_Axpy(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  const Vector x = random_vector(n, 5);
  Vector y = random_vector(n, 6);
  for (auto _ : state) {
    axpy(1e-9, x, y);
    benchmark::ClobberMemory();
  }
  set_counters(state, 3.0 * 8 * n, 2.0 * n);
}

// 7-point matrix of an all-fluid box with walls (the pressure operator's common case).
CsrMatrix box_matrix(int n) {
  std::vector<Triplet> t;
  const auto idx = [n](int i, int j, int k) { return i + std::int64_t(n) * (j + std::int64_t(n) * k); };
  for (int k = 0; k < n; ++k)
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < n; ++i) {
        const int nb[6][3] = {{i - 1, j, k}, {i + 1, j, k}, {i, j - 1, k}, {i, j + 1, k}, {i, j, k - 1}, {i, j, k + 1}};
        double diag = 0;
        for (const auto& c : nb) {
          if (c[0] < 0 || c[1] < 0 || c[2] < 0 || c[0] >= n || c[1] >= n || c[2] >= n) continue;
          diag += 1;
          t.push_back({idx(i, j, k), idx(c[0], c[1], c[2]), -1.0});
        }
        t.push_back({idx(i, j, k), idx(i, j, k), diag + (k == n - 1 ? 1.0 : 0.0)});  // open top
      }
  const std::int64_t rows = std::int64_t(n) * n * n;
  return CsrMatrix::from_triplets(rows, rows, std::move(t));
}

void BM_CsrMatVec(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const CsrMatrix a = box_matrix(n);
  const Vector x = random_vector(a.rows, 7);
  Vector y(a.rows);
  for (auto _ : state) {
    a.multiply(x, y);
    benchmark::ClobberMemory();
  }
  // values (8) + column index (4) per non-zero, row pointer (8) per row, x read once and y
  // written once (the minimum traffic when x stays in cache between neighbouring rows).
  const double bytes = 12.0 * a.nnz() + 8.0 * (a.rows + 1) + 16.0 * a.rows;
  set_counters(state, bytes, 2.0 * a.nnz());
  state.counters["rows"] = static_cast<double>(a.rows);
}

}  // namespace

BENCHMARK(BM_StreamTriad)->RangeMultiplier(16)->Range(1 << 16, 1 << 24)->UseRealTime();
BENCHMARK(BM_Dot)->RangeMultiplier(16)->Range(1 << 16, 1 << 24)->UseRealTime();
BENCHMARK(BM_Axpy)->RangeMultiplier(16)->Range(1 << 16, 1 << 24)->UseRealTime();
BENCHMARK(BM_CsrMatVec)->Arg(32)->Arg(64)->Arg(128)->UseRealTime();

BENCHMARK_MAIN();
