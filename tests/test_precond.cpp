// Jacobi, IC(0), MIC(0): agreement of the stencil and CSR implementations, the defining
// properties of the factorisations (IC(0) reproduces A on its pattern; MIC(0) with tau = 1
// preserves row sums), symmetry, and iteration counts ordered as theory says.
#include <gtest/gtest.h>

#include <cmath>

#include "dcdm/error.hpp"
#include "dcdm/krylov.hpp"
#include "dcdm/precond.hpp"
#include "test_krylov_systems.hpp"

using namespace dcdm;
using namespace dcdm::testing;

namespace {

TEST(Jacobi, DividesByTheDiagonalAndZeroesEmptyRows) {
  auto sys = make_system(obstacle_domain({7, 6, 5}));
  JacobiPreconditioner j;
  j.setup(sys->view());
  Vector r = random_rhs(sys->domain, 1), z(r.size());
  j.apply(r, z);
  const auto d = sys->a.diagonal();
  for (std::size_t i = 0; i < r.size(); ++i) EXPECT_DOUBLE_EQ(z[i], d[i] > 0 ? r[i] / d[i] : 0.0);
  // The domain-only path gives the same diagonal.
  JacobiPreconditioner j2;
  j2.setup(sys->view(true, false));
  Vector z2(r.size());
  j2.apply(r, z2);
  EXPECT_EQ(z, z2);
}

TEST(Jacobi, NegativeDiagonalIsInputError) {
  auto a = CsrMatrix::from_triplets(2, 2, {{0, 0, 1.0}, {1, 1, -1.0}});
  CsrOperator op(a);
  LinearSystemView v;
  v.op = &op;
  v.matrix = &a;
  JacobiPreconditioner j;
  EXPECT_THROW(j.setup(v), InputError);
}

class IncompleteCholesky : public ::testing::TestWithParam<double> {};

TEST_P(IncompleteCholesky, StencilAndCsrPathsAgree) {
  for (Domain d : {obstacle_domain({13, 9, 11}), mixed_singular_domain({13, 9, 11})}) {
    auto sys = make_system(d);
    IncompleteCholeskyPreconditioner stencil(GetParam()), csr(GetParam());
    stencil.setup(sys->view(true, false));
    csr.setup(sys->view(false, true));
    Vector r = random_rhs(sys->domain, 4), z1(r.size()), z2(r.size());
    stencil.apply(r, z1);
    csr.apply(r, z2);
    EXPECT_LT(relative_error(z1, z2), 1e-13);
    EXPECT_EQ(stencil.guarded_pivots(), csr.guarded_pivots());
    for (std::int64_t i = 0; i < d.dims().size(); ++i) {
      if (d.cells[i] != CellType::Fluid) {
        EXPECT_EQ(z1[i], 0.0);
      }
    }
  }
}

TEST_P(IncompleteCholesky, IsSymmetricAndPositive) {
  auto sys = make_system(obstacle_domain({10, 9, 8}));
  IncompleteCholeskyPreconditioner m(GetParam());
  m.setup(sys->view());
  Vector u = random_rhs(sys->domain, 1), v = random_rhs(sys->domain, 2), mu(u.size()), mv(u.size());
  m.apply(u, mu);
  m.apply(v, mv);
  EXPECT_NEAR(dot(u, mv), dot(v, mu), 1e-12 * norm2(u) * norm2(mv));
  EXPECT_GT(dot(u, mu), 0.0);
}

INSTANTIATE_TEST_SUITE_P(Tau, IncompleteCholesky, ::testing::Values(0.0, 0.5, 0.97, 1.0));

// Dense square matrix, row-major, with a plain Gauss-Jordan inverse (partial pivoting).
struct Dense {
  int n;
  std::vector<double> v;
  double& operator()(int r, int c) { return v[r * n + c]; }
  double operator()(int r, int c) const { return v[r * n + c]; }
};
Dense inverse(Dense a) {
  const int n = a.n;
  Dense inv{n, std::vector<double>(n * n, 0.0)};
  for (int i = 0; i < n; ++i) inv(i, i) = 1.0;
  for (int c = 0; c < n; ++c) {
    int piv = c;
    for (int r = c + 1; r < n; ++r)
      if (std::abs(a(r, c)) > std::abs(a(piv, c))) piv = r;
    for (int k = 0; k < n; ++k) {
      std::swap(a(c, k), a(piv, k));
      std::swap(inv(c, k), inv(piv, k));
    }
    const double d = a(c, c);
    for (int k = 0; k < n; ++k) {
      a(c, k) /= d;
      inv(c, k) /= d;
    }
    for (int r = 0; r < n; ++r) {
      if (r == c) continue;
      const double f = a(r, c);
      if (f == 0.0) continue;
      for (int k = 0; k < n; ++k) {
        a(r, k) -= f * a(c, k);
        inv(r, k) -= f * inv(c, k);
      }
    }
  }
  return inv;
}

// M as a dense matrix over the fluid cells, from M^{-1} applied to unit vectors.
Dense dense_m(const Preconditioner& p, const std::vector<std::int64_t>& cells, std::int64_t n) {
  const int m = static_cast<int>(cells.size());
  Dense minv{m, std::vector<double>(m * m)};
  Vector e(n, 0.0), z(n);
  for (int c = 0; c < m; ++c) {
    e[cells[c]] = 1.0;
    p.apply(e, z);
    e[cells[c]] = 0.0;
    for (int r = 0; r < m; ++r) minv(r, c) = z[cells[r]];
  }
  return inverse(minv);
}

TEST(IncompleteCholeskyDefinition, Ic0ReproducesAOnItsPatternAndMic1PreservesRowSums) {
  Domain d = obstacle_domain({5, 4, 6});
  d.cells(2, 1, 1) = CellType::Solid;
  auto sys = make_system(d);
  std::vector<std::int64_t> cells;
  for (std::int64_t i = 0; i < sys->a.rows; ++i)
    if (d.cells[i] == CellType::Fluid) cells.push_back(i);
  std::vector<std::int64_t> pos(sys->a.rows, -1);
  for (std::size_t c = 0; c < cells.size(); ++c) pos[cells[c]] = static_cast<std::int64_t>(c);

  IncompleteCholeskyPreconditioner ic0(0.0, 0.0);
  ic0.setup(sys->view());
  const Dense m0 = dense_m(ic0, cells, sys->a.rows);
  for (std::int64_t i : cells)
    for (std::int64_t p = sys->a.row_ptr[i]; p < sys->a.row_ptr[i + 1]; ++p)
      EXPECT_NEAR(m0(pos[i], pos[sys->a.col_idx[p]]), sys->a.values[p], 1e-9);

  IncompleteCholeskyPreconditioner mic1(1.0, 0.0);
  mic1.setup(sys->view());
  EXPECT_EQ(mic1.guarded_pivots(), 0);
  const Dense m1 = dense_m(mic1, cells, sys->a.rows);
  for (int r = 0; r < m1.n; ++r) {
    double row_a = 0.0, row_m = 0.0;
    for (std::int64_t p = sys->a.row_ptr[cells[r]]; p < sys->a.row_ptr[cells[r] + 1]; ++p)
      row_a += sys->a.values[p];
    for (int c = 0; c < m1.n; ++c) {
      row_m += m1(r, c);
      EXPECT_NEAR(m1(r, c), m1(c, r), 1e-9);
    }
    EXPECT_NEAR(row_m, row_a, 1e-9);
  }
}

TEST(IncompleteCholeskyDefinition, NonSpdDiagonalIsInputError) {
  auto a = CsrMatrix::from_triplets(2, 2, {{0, 0, 1.0}, {1, 1, -2.0}});
  CsrOperator op(a);
  LinearSystemView v;
  v.op = &op;
  v.matrix = &a;
  IncompleteCholeskyPreconditioner ic;
  EXPECT_THROW(ic.setup(v), InputError);
  EXPECT_THROW(IncompleteCholeskyPreconditioner(1.5), InputError);
}

// Real behaviour on a Poisson problem: MIC(0) < IC(0) < Jacobi <= CG in iterations, and
// deflation helps Jacobi-PCG.
TEST(PreconditionerQuality, IterationCountsAreOrderedAsTheoryPredicts) {
  auto sys = make_system(obstacle_domain({24, 24, 24}));
  Vector b = random_rhs(sys->domain, 8);
  auto iterations = [&](std::unique_ptr<IterativeSolver> s) {
    s->setup(sys->view());
    Vector x(b.size());
    SolveOptions o;
    o.rtol = 1e-8;
    const auto rep = s->solve(b, x, o);
    EXPECT_TRUE(rep.converged()) << format_reason_line(rep);
    return rep.iterations;
  };
  const int cg = iterations(make_cg_solver());
  const int jac = iterations(std::make_unique<PcgSolver>("jacobi", std::make_unique<JacobiPreconditioner>()));
  const int ic = iterations(std::make_unique<PcgSolver>("ic0", std::make_unique<IncompleteCholeskyPreconditioner>(0.0)));
  const int mic = iterations(std::make_unique<PcgSolver>("mic0", std::make_unique<IncompleteCholeskyPreconditioner>(0.97)));
  const int mg = iterations(std::make_unique<PcgSolver>("mgpcg", std::make_unique<MultigridPreconditioner>()));
  const int dpcg = iterations(std::make_unique<DeflatedPcgSolver>(16));
  EXPECT_LE(jac, cg);
  EXPECT_LT(ic, jac);
  EXPECT_LT(mic, ic);
  EXPECT_LT(mg, mic);
  EXPECT_LT(dpcg, jac);
}

}  // namespace
