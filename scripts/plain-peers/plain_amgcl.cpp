// A plain program calling AMGCL the way its Poisson tutorial does: CG preconditioned by smoothed
// aggregation with SPAI(0), on the rows of the coefficients that to_coef7.py writes that are not
// identity rows; prints iterations, set-up and solve seconds and the peak resident set. The
// reference that dcdm's amgcl peer is checked against (docs/perf-solvers.md).
//
//   g++ -O3 -march=native -fopenmp -std=c++17 -DNDEBUG -I/path/to/amgcl plain_amgcl.cpp -o plain_amgcl
//   OMP_NUM_THREADS=1 ./plain_amgcl FOLDER N VARIANT
//
// VARIANT 0: double; 1: mixed precision (the hierarchy in float); 2, 3: the same with
// non-smoothed aggregation. rtol 1e-6.
#include <sys/resource.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <omp.h>
#include <amgcl/adapter/crs_tuple.hpp>
#include <amgcl/amg.hpp>
#include <amgcl/backend/builtin.hpp>
#include <amgcl/coarsening/smoothed_aggregation.hpp>
#include <amgcl/coarsening/aggregation.hpp>
#include <amgcl/relaxation/spai0.hpp>
#include <amgcl/make_solver.hpp>
#include <amgcl/solver/cg.hpp>
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
double peak_mb() { rusage u; getrusage(RUSAGE_SELF, &u); return u.ru_maxrss / 1024.0; }
template <class P, template <class> class C>
void run(const char* label, std::ptrdiff_t n, std::vector<int>& ptr, std::vector<int>& col, std::vector<double>& val,
         std::vector<double>& b) {
  using S = amgcl::make_solver<amgcl::amg<P, C, amgcl::relaxation::spai0>, amgcl::solver::cg<amgcl::backend::builtin<double>>>;
  typename S::params prm;
  prm.solver.tol = 1e-6;
  double m0 = peak_mb();
  auto t0 = Clock::now();
  S solve(std::tie(n, ptr, col, val), prm);
  double ts = since(t0);
  std::vector<double> x(n, 0.0);
  t0 = Clock::now();
  auto [it, err] = solve(std::tie(n, ptr, col, val), b, x);
  double tv = since(t0);
  printf("%s threads %d: its %zu err %.2e setup %.3f solve %.3f (%.1f ms/it) peak %.0f MB (before setup %.0f)\n", label,
         omp_get_max_threads(), it, err, ts, tv, 1e3 * tv / it, peak_mb(), m0);
}
int main(int argc, char** argv) {
  const char* dir = argv[1]; int n3 = atoi(argv[2]); int variant = atoi(argv[3]);
  long N = (long)n3 * n3 * n3;
  std::vector<double> coef(N * 7), bf(N);
  char path[512];
  snprintf(path, sizeof path, "%s/coef7.bin", dir); FILE* f = fopen(path, "rb"); fread(coef.data(), 8, N * 7, f); fclose(f);
  snprintf(path, sizeof path, "%s/b64.bin", dir); f = fopen(path, "rb"); fread(bf.data(), 8, N, f); fclose(f);
  // fluid rows: diagonal > 0 and any coupling or coef row (identity rows dropped)
  std::vector<long> row_of(N, -1); long n = 0;
  for (long c = 0; c < N; ++c) { bool act = false; for (int s = 1; s < 7; ++s) act |= coef[c * 7 + s] != 0; if (act || (coef[c*7] > 0 && bf[c] != 0)) row_of[c] = n++; }
  const long off[7] = {0, -1, 1, -(long)n3, n3, -(long)n3 * n3, (long)n3 * n3};
  std::vector<int> ptr{0}, col; std::vector<double> val, b;
  for (long c = 0; c < N; ++c) { if (row_of[c] < 0) continue;
    // column order: ascending
    int order[7] = {5, 3, 1, 0, 2, 4, 6};
    for (int s : order) { double v = coef[c * 7 + s]; if (v == 0) continue; col.push_back((int)row_of[c + off[s]]); val.push_back(v); }
    ptr.push_back((int)col.size()); b.push_back(bf[c]); }
  coef.clear(); coef.shrink_to_fit(); bf.clear(); bf.shrink_to_fit();
  std::ptrdiff_t nn = n;
  printf("rows %ld nnz %zu\n", n, col.size());
  if (variant == 0) run<amgcl::backend::builtin<double>, amgcl::coarsening::smoothed_aggregation>("SA spai0 double", nn, ptr, col, val, b);
  if (variant == 1) run<amgcl::backend::builtin<float>, amgcl::coarsening::smoothed_aggregation>("SA spai0 float-precond", nn, ptr, col, val, b);
  if (variant == 2) run<amgcl::backend::builtin<double>, amgcl::coarsening::aggregation>("aggregation spai0 double", nn, ptr, col, val, b);
  if (variant == 3) run<amgcl::backend::builtin<float>, amgcl::coarsening::aggregation>("aggregation spai0 float-precond", nn, ptr, col, val, b);
}
