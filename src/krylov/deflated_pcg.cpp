// Deflated PCG (Saad, Yeung, Erhel, Guyomarc'h 2000): PCG whose directions are kept
// A-orthogonal to a subspace W of approximate low eigenvectors, so the error components that
// make CG slow are removed once, up front. W = Ritz vectors of the lowest Ritz values from
// Lanczos started at b, as in the reference comparisons; preconditioner: Jacobi.
#include <chrono>
#include <cmath>

#include <fmt/format.h>

#include "../linalg/block_ops.hpp"
#include "dcdm/error.hpp"
#include "dcdm/krylov.hpp"
#include "dcdm/precond.hpp"

namespace dcdm {
namespace {

// Solves L L^T y = c in place (L lower, row-major k x k).
void cholesky_solve(const std::vector<double>& l, int k, std::vector<double>& c) {
  for (int i = 0; i < k; ++i) {
    double s = c[i];
    for (int j = 0; j < i; ++j) s -= l[i * k + j] * c[j];
    c[i] = s / l[i * k + i];
  }
  for (int i = k - 1; i >= 0; --i) {
    double s = c[i];
    for (int j = i + 1; j < k; ++j) s -= l[j * k + i] * c[j];
    c[i] = s / l[i * k + i];
  }
}

}  // namespace

void DeflationSpace::correction(dcdm::span<const double> v, dcdm::span<double> y) const {
  std::vector<double> c(static_cast<std::size_t>(k));
  detail::basis_transpose_times(w.data(), n, k, v.data(), c.data());
  cholesky_solve(e_chol, k, c);
  fill(y, 0.0);
  detail::basis_times_add(w.data(), n, k, c.data(), 1.0, y.data());
}

void DeflationSpace::subtract_a_projection(dcdm::span<const double> v, dcdm::span<double> y) const {
  std::vector<double> c(static_cast<std::size_t>(k));
  detail::basis_transpose_times(aw.data(), n, k, v.data(), c.data());
  cholesky_solve(e_chol, k, c);
  detail::basis_times_add(w.data(), n, k, c.data(), -1.0, y.data());
}

DeflationSpace make_deflation(const LinearOperator& a, std::vector<double> w, int k) {
  const std::int64_t n = a.size();
  if (k < 0 || static_cast<std::int64_t>(w.size()) != n * k)
    throw InputError(fmt::format("deflation: {} values do not make {} vectors of size {}",
                                 w.size(), k, n));
  std::vector<double> aw(w.size());
  for (int j = 0; j < k; ++j)
    a.apply(dcdm::span<const double>(w.data() + j * n, n), dcdm::span<double>(aw.data() + j * n, n));
  std::vector<double> e(static_cast<std::size_t>(k) * k);
  for (int j = 0; j < k; ++j)
    detail::basis_transpose_times(w.data(), n, k, aw.data() + j * n, e.data() + j * k);
  // Cholesky with column dropping: a column whose pivot is tiny relative to its diagonal is
  // (numerically) in the span of the previous ones, or in the null space of A.
  std::vector<int> keep;
  std::vector<double> l;  // row-major over kept columns, grown as we go
  for (int j = 0; j < k; ++j) {
    const double ejj = 0.5 * (e[j * k + j] + e[j * k + j]);
    if (!(ejj > 0.0) || !std::isfinite(ejj)) continue;
    const int m = static_cast<int>(keep.size());
    std::vector<double> row(m + 1, 0.0);
    for (int q = 0; q < m; ++q) {
      double s = 0.5 * (e[j * k + keep[q]] + e[keep[q] * k + j]);
      for (int t = 0; t < q; ++t) s -= row[t] * l[q * (m) + t];
      row[q] = s / l[q * m + q];
    }
    double d = ejj;
    for (int q = 0; q < m; ++q) d -= row[q] * row[q];
    if (!(d > 1e-10 * ejj)) continue;
    row[m] = std::sqrt(d);
    // Grow l from m x m to (m+1) x (m+1).
    std::vector<double> grown(static_cast<std::size_t>(m + 1) * (m + 1), 0.0);
    for (int q = 0; q < m; ++q)
      for (int t = 0; t <= q; ++t) grown[q * (m + 1) + t] = l[q * m + t];
    for (int t = 0; t <= m; ++t) grown[m * (m + 1) + t] = row[t];
    l = std::move(grown);
    keep.push_back(j);
  }
  DeflationSpace d;
  d.n = n;
  d.k = static_cast<int>(keep.size());
  d.w.resize(static_cast<std::size_t>(n) * d.k);
  d.aw.resize(d.w.size());
  for (int q = 0; q < d.k; ++q) {
    std::copy_n(w.begin() + keep[q] * n, n, d.w.begin() + q * n);
    std::copy_n(aw.begin() + keep[q] * n, n, d.aw.begin() + q * n);
  }
  d.e_chol = std::move(l);
  return d;
}

DeflatedPcgSolver::DeflatedPcgSolver(int k, int lanczos_steps)
    : k_(k), lanczos_steps_(lanczos_steps > 0 ? lanczos_steps : std::max(3 * k, 32)) {
  if (k < 1) throw InputError(fmt::format("--dpcg-k: {} must be >= 1", k));
  if (lanczos_steps_ < k)
    throw InputError(fmt::format("dpcg: {} Lanczos steps cannot give {} Ritz vectors",
                                 lanczos_steps_, k));
}
DeflatedPcgSolver::~DeflatedPcgSolver() = default;

void DeflatedPcgSolver::setup(const LinearSystemView& system) {
  if (!system.op) throw InputError("dpcg: the system has no operator");
  const auto t0 = std::chrono::steady_clock::now();
  system_ = system;
  jacobi_ = std::make_unique<JacobiPreconditioner>();
  jacobi_->setup(system);
  setup_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

SolveReport DeflatedPcgSolver::solve_scaled(dcdm::span<const double> b, dcdm::span<double> x,
                                     const SolveOptions& options) {
  if (!system_.op) throw Error("dpcg: solve() called before setup()");
  const LinearOperator& a = *system_.op;
  const std::int64_t n = a.size();
  if (static_cast<std::int64_t>(b.size()) != n || static_cast<std::int64_t>(x.size()) != n)
    throw InputError(fmt::format("dpcg: right-hand side has {} entries and x {}, the operator {}",
                                 b.size(), x.size(), n));
  const auto t0 = std::chrono::steady_clock::now();
  // Nothing to deflate when b is unusable or already solved: the PCG loop reports it.
  Vector bp(b.begin(), b.end());
  bool need_space = count_non_finite(bp) == 0;
  if (need_space) {
    if (system_.project_range) system_.project_range(bp);
    const double bnorm = norm2(bp);
    const double tol = std::max(options.rtol * bnorm, options.atol);
    Vector r(n, 0.0);
    if (options.use_initial_guess && count_non_finite(x) == 0) {
      a.apply(x, r);
      xpay(bp, -1.0, r);
    } else {
      r = bp;
    }
    need_space = bnorm > 0.0 && norm2(r) > tol;
  }
  DeflationSpace space;
  if (need_space) {
    LanczosOptions lo;
    lo.project = system_.project_range;
    const LanczosResult lr = lanczos(a, bp, std::min<std::int64_t>(lanczos_steps_, n), lo);
    const double top = lr.ritz_values.empty() ? 0.0 : std::abs(lr.ritz_values.back());
    std::vector<int> chosen;
    for (int i = 0; i < lr.steps && static_cast<int>(chosen.size()) < k_; ++i)
      if (lr.ritz_values[i] > 1e-8 * top) chosen.push_back(i);  // skip the null space
    space = make_deflation(a, lr.ritz_vectors(chosen), static_cast<int>(chosen.size()));
  }
  const double space_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  SolveReport rep = pcg_solve(a, jacobi_.get(), system_.project_range, b, x, options, "dpcg",
                              need_space ? &space : nullptr);
  rep.setup_seconds = setup_seconds_ + space_seconds;
  return rep;
}

}  // namespace dcdm
