// Lanczos with full re-orthogonalisation (classical Gram-Schmidt applied twice, "CGS2",
// against all previous Lanczos vectors each step), and the Ritz pairs of the tridiagonal
// matrix via Eigen's tridiagonal QR (SelfAdjointEigenSolver::computeFromTridiagonal).
// Shared by deflated PCG and by training-data generation.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include <Eigen/Eigenvalues>
#include <fmt/format.h>

#include "../linalg/block_ops.hpp"
#include "dcdm/error.hpp"
#include "dcdm/krylov.hpp"

namespace dcdm {
namespace {

template <class T>
void run_lanczos(const LinearOperator& a, dcdm::span<const double> start, int m,
                 const LanczosOptions& options, std::vector<T>& basis, LanczosResult& res) {
  const std::int64_t n = a.size();
  basis.assign(static_cast<std::size_t>(n) * m, T(0));
  Vector v(start.begin(), start.end()), w(n);
  if (options.project) options.project(v);
  const double norm0 = norm2(v);
  if (!(norm0 > 0.0) || !std::isfinite(norm0))
    throw InputError("lanczos: the start vector is zero (after projection) or not finite");
  scale(1.0 / norm0, v);
  std::vector<double> c(static_cast<std::size_t>(m));
  double tnorm = 0.0;  // running estimate of ||T||
  auto store = [&](int j, const Vector& src) {
    T* col = basis.data() + static_cast<std::int64_t>(j) * n;
#pragma omp parallel for simd schedule(static)
    for (std::int64_t i = 0; i < n; ++i) col[i] = static_cast<T>(src[i]);
  };
  store(0, v);
  for (int j = 0; j < m; ++j) {
    // v holds the j-th Lanczos vector (exactly as stored when T = double).
    a.apply(v, w);
    if (options.project) options.project(w);
    const double alpha = dot(v, w);
    if (!std::isfinite(alpha)) throw Error(fmt::format("lanczos: non-finite alpha at step {}", j));
    res.alpha.push_back(alpha);
    // Full re-orthogonalisation against v_0..v_j (this also removes alpha v_j and
    // beta v_{j-1}), twice for numerical orthogonality.
    for (int pass = 0; pass < 2; ++pass) {
      detail::basis_transpose_times(basis.data(), n, j + 1, w.data(), c.data());
      detail::basis_times_add(basis.data(), n, j + 1, c.data(), -1.0, w.data());
    }
    const double beta = norm2(w);
    tnorm = std::max(tnorm, std::abs(alpha) + beta + (res.beta.empty() ? 0.0 : res.beta.back()));
    res.steps = j + 1;
    if (options.progress) options.progress(j + 1, beta);
    if (j + 1 == m || beta <= options.breakdown_tol * tnorm) {
      res.next_beta = beta;
      break;
    }
    res.beta.push_back(beta);
    for (std::int64_t i = 0; i < n; ++i) v[i] = w[i] / beta;
    store(j + 1, v);
    if constexpr (!std::is_same_v<T, double>) {
      // Keep v equal to what is stored so that V stays the basis we orthogonalise against.
      const T* col = basis.data() + static_cast<std::int64_t>(j + 1) * n;
      for (std::int64_t i = 0; i < n; ++i) v[i] = col[i];
    }
  }
  basis.resize(static_cast<std::size_t>(n) * res.steps);
}

}  // namespace

LanczosResult lanczos(const LinearOperator& a, dcdm::span<const double> start, int m,
                      const LanczosOptions& options) {
  const std::int64_t n = a.size();
  if (static_cast<std::int64_t>(start.size()) != n)
    throw InputError(fmt::format("lanczos: start vector has {} entries, the operator {}",
                                 start.size(), n));
  if (m < 1 || m > n)
    throw InputError(fmt::format("lanczos: {} steps requested for an operator of size {}", m, n));
  LanczosResult res;
  res.n = n;
  if (options.basis_in_float)
    run_lanczos<float>(a, start, m, options, res.basis_float, res);
  else
    run_lanczos<double>(a, start, m, options, res.basis, res);

  const int s = res.steps;
  Eigen::VectorXd diag = Eigen::Map<const Eigen::VectorXd>(res.alpha.data(), s);
  Eigen::VectorXd sub(std::max(s - 1, 0));
  for (int i = 0; i + 1 < s; ++i) sub[i] = res.beta[i];
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es;
  es.computeFromTridiagonal(diag, sub, Eigen::ComputeEigenvectors);
  if (es.info() != Eigen::Success) throw Error("lanczos: tridiagonal eigensolver did not converge");
  res.ritz_values.assign(es.eigenvalues().data(), es.eigenvalues().data() + s);
  res.tridiagonal_eigenvectors.assign(es.eigenvectors().data(),
                                      es.eigenvectors().data() + std::int64_t(s) * s);
  return res;
}

void LanczosResult::ritz_vector(int i, dcdm::span<double> out) const {
  const int idx[1] = {i};
  const std::vector<double> v = ritz_vectors(idx);
  std::copy(v.begin(), v.end(), out.begin());
}

std::vector<double> LanczosResult::ritz_vectors(dcdm::span<const int> indices) const {
  const int k = static_cast<int>(indices.size());
  std::vector<double> out(static_cast<std::size_t>(n) * k, 0.0);
  if (k == 0 || steps == 0) return out;
  Eigen::MatrixXd y(steps, k);
  for (int q = 0; q < k; ++q) {
    const int i = indices[q];
    if (i < 0 || i >= steps) throw Error(fmt::format("lanczos: Ritz index {} out of range", i));
    y.col(q) = Eigen::Map<const Eigen::VectorXd>(
        tridiagonal_eigenvectors.data() + std::int64_t(i) * steps, steps);
  }
  // out = V Y, one dense product per block of rows (blocks in parallel; each entry is
  // computed by one thread in a fixed order, so the result does not depend on the threads).
  using Stride = Eigen::OuterStride<>;
  constexpr std::int64_t kRows = 512;
  const std::int64_t nblocks = (n + kRows - 1) / kRows;
#pragma omp parallel for schedule(static)
  for (std::int64_t b = 0; b < nblocks; ++b) {
    const std::int64_t lo = b * kRows, len = std::min(kRows, n - lo);
    Eigen::Map<Eigen::MatrixXd, 0, Stride> o(out.data() + lo, len, k, Stride(n));
    if (basis_float.empty()) {
      Eigen::Map<const Eigen::MatrixXd, 0, Stride> v(basis.data() + lo, len, steps, Stride(n));
      o.noalias() = v * y;
    } else {
      Eigen::Map<const Eigen::MatrixXf, 0, Stride> v(basis_float.data() + lo, len, steps,
                                                     Stride(n));
      const Eigen::MatrixXd vd = v.cast<double>();
      o.noalias() = vd * y;
    }
  }
  return out;
}

double LanczosResult::residual_estimate(int i) const {
  return std::abs(next_beta * tridiagonal_eigenvectors[std::int64_t(i) * steps + steps - 1]);
}

}  // namespace dcdm
