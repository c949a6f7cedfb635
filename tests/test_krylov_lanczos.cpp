// Lanczos with full re-orthogonalisation: exact spectra, orthonormal Ritz vectors with the
// residuals the tridiagonal predicts, early stop on invariant subspaces, float basis, range
// projection on singular systems; deflation built from it.
#include <gtest/gtest.h>

#include <cmath>

#include "dcdm/error.hpp"
#include "dcdm/krylov.hpp"
#include "test_krylov_systems.hpp"

using namespace dcdm;
using namespace dcdm::testing;

namespace {

class DiagonalOperator final : public LinearOperator {
 public:
  explicit DiagonalOperator(Vector d) : d_(std::move(d)) {}
  std::int64_t size() const override { return static_cast<std::int64_t>(d_.size()); }
  void apply(dcdm::span<const double> x, dcdm::span<double> y) const override {
    for (std::size_t i = 0; i < d_.size(); ++i) y[i] = d_[i] * x[i];
  }
  Vector d_;
};

TEST(Lanczos, FullRunRecoversTheWholeSpectrum) {
  Vector d(40);
  for (int i = 0; i < 40; ++i) d[i] = 1.0 + i * i * 0.1;
  DiagonalOperator a(d);
  Vector start(40, 1.0);
  const LanczosResult r = lanczos(a, start, 40);
  ASSERT_EQ(r.steps, 40);
  for (int i = 0; i < 40; ++i) EXPECT_NEAR(r.ritz_values[i], d[i], 1e-9 * d.back());
}

TEST(Lanczos, StopsOnAnInvariantSubspace) {
  Vector d{1, 2, 3, 4, 5, 6, 7, 8};
  DiagonalOperator a(d);
  Vector start{1, 0, 0, 1, 0, 0, 1, 0};  // three eigenvectors
  const LanczosResult r = lanczos(a, start, 8);
  EXPECT_EQ(r.steps, 3);
  EXPECT_NEAR(r.ritz_values[0], 1.0, 1e-12);
  EXPECT_NEAR(r.ritz_values[1], 4.0, 1e-12);
  EXPECT_NEAR(r.ritz_values[2], 7.0, 1e-12);
}

TEST(Lanczos, RitzVectorsAreOrthonormalWithPredictedResiduals) {
  auto sys = make_system(obstacle_domain({12, 11, 10}));
  Vector start = random_rhs(sys->domain, 3);
  for (bool in_float : {false, true}) {
    LanczosOptions o;
    o.basis_in_float = in_float;
    const LanczosResult r = lanczos(*sys->op, start, 60, o);
    ASSERT_EQ(r.steps, 60);
    std::vector<int> idx{0, 1, 2, 57, 58, 59};
    const Vector v = r.ritz_vectors(idx);
    const std::int64_t n = sys->a.rows;
    for (std::size_t p = 0; p < idx.size(); ++p) {
      dcdm::span<const double> vp(v.data() + p * n, n);
      for (std::size_t q = 0; q <= p; ++q) {
        dcdm::span<const double> vq(v.data() + q * n, n);
        EXPECT_NEAR(dot(vp, vq), p == q ? 1.0 : 0.0, in_float ? 1e-5 : 1e-10);
      }
      Vector av(n);
      sys->a.multiply(vp, av);
      axpy(-r.ritz_values[idx[p]], vp, av);
      EXPECT_NEAR(norm2(av), r.residual_estimate(idx[p]), (in_float ? 1e-4 : 1e-8) * r.ritz_values.back());
      // Entries outside the fluid stay zero.
      for (std::int64_t i = 0; i < n; ++i) {
        if (sys->domain.cells[i] != CellType::Fluid) {
          ASSERT_EQ(vp[i], 0.0);
        }
      }
    }
    // The largest Ritz value of the 7-point operator is below 12 (Gershgorin) and converged.
    EXPECT_LT(r.ritz_values.back(), 12.0);
    EXPECT_LT(r.residual_estimate(59), 1e-3);
  }
}

TEST(Lanczos, ProjectionKeepsTheNullSpaceOut) {
  auto sys = make_system(closed_box({6, 5, 4}));
  Vector start(sys->a.rows, 1.0);
  start[0] = 3.0;  // not in the null space only
  LanczosOptions o;
  o.project = sys->project;
  const LanczosResult r = lanczos(*sys->op, start, 30, o);
  EXPECT_GT(r.ritz_values.front(), 1e-3);  // the constant mode was projected out
  Vector null_start(sys->a.rows, 1.0);
  EXPECT_THROW(lanczos(*sys->op, null_start, 5, o), InputError);
}

TEST(Lanczos, BadArgumentsAreInputErrors) {
  DiagonalOperator a(Vector{1, 2, 3});
  EXPECT_THROW(lanczos(a, Vector{1, 1}, 2), InputError);
  EXPECT_THROW(lanczos(a, Vector{1, 1, 1}, 0), InputError);
  EXPECT_THROW(lanczos(a, Vector{0, 0, 0}, 2), InputError);
}

TEST(Deflation, ResidualIsOrthogonalToTheSpaceAfterTheInitialCorrection) {
  auto sys = make_system(obstacle_domain({10, 10, 10}));
  Vector b = random_rhs(sys->domain, 2);
  const LanczosResult r = lanczos(*sys->op, b, 30);
  std::vector<int> idx{0, 1, 2, 3, 4, 5};
  const DeflationSpace space = make_deflation(*sys->op, r.ritz_vectors(idx), 6);
  ASSERT_EQ(space.k, 6);
  Vector x(b.size()), ax(b.size());
  space.correction(b, x);
  sys->a.multiply(x, ax);
  for (std::size_t i = 0; i < b.size(); ++i) ax[i] = b[i] - ax[i];
  for (int j = 0; j < 6; ++j)
    EXPECT_NEAR(dot(dcdm::span<const double>(space.w.data() + j * b.size(), b.size()), ax), 0.0,
                1e-10 * norm2(b));
  // A dependent column is dropped.
  Vector w = r.ritz_vectors(std::vector<int>{0, 1});
  w.insert(w.end(), w.begin(), w.begin() + static_cast<std::ptrdiff_t>(b.size()));
  EXPECT_EQ(make_deflation(*sys->op, w, 3).k, 2);
}

}  // namespace
