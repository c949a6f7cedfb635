// Geometric multigrid preconditioner: symmetry and positivity of the V-cycle, level
// structure on odd non-cubic grids, iteration counts flat in N, convergence rate.
#include <gtest/gtest.h>

#include <cstdio>

#include "dcdm/error.hpp"
#include "dcdm/krylov.hpp"
#include "dcdm/precond.hpp"
#include "test_krylov_systems.hpp"

using namespace dcdm;
using namespace dcdm::testing;

namespace {

Vector random_fluid_vector(const Domain& d, unsigned seed) {
  Vector v = random_rhs(d, seed);
  return v;
}

// A domain with everything at once: solid sphere, air pocket, open top, a sealed chamber.
Domain everything_domain(Dims n) {
  Domain d = obstacle_domain(n);
  // Seal a small chamber in a corner with solid walls: a singular component.
  for (int k = 0; k < 4; ++k)
    for (int j = 0; j < 4; ++j)
      for (int i = 0; i < 4; ++i)
        if (i == 3 || j == 3 || k == 3) d.cells(i, j, k) = CellType::Solid;
  return d;
}

class MultigridSymmetry : public ::testing::TestWithParam<int> {};

Domain symmetry_domain(int which) {
  switch (which) {
    case 0: return obstacle_domain({13, 9, 11});
    case 1: return mixed_singular_domain({13, 9, 11});
    case 2: return everything_domain({21, 17, 19});
    default: return closed_box({24, 24, 24});
  }
}

TEST_P(MultigridSymmetry, VCycleIsSymmetricAndPositive) {
  auto sys = make_system(symmetry_domain(GetParam()));
  MultigridOptions opts;
  opts.coarsest_cells = 64;  // force several levels even on small grids
  MultigridPreconditioner mg(opts);
  mg.setup(sys->view());
  EXPECT_GE(mg.levels(), 2);
  for (unsigned seed = 1; seed <= 4; ++seed) {
    Vector u = random_fluid_vector(sys->domain, seed), v = random_fluid_vector(sys->domain, seed + 100);
    Vector mu(u.size()), mv(v.size());
    mg.apply(u, mu);
    mg.apply(v, mv);
    const double a = dot(u, mv), b = dot(v, mu);
    EXPECT_NEAR(a, b, 1e-12 * norm2(u) * norm2(mv)) << "seed " << seed;
    EXPECT_GT(dot(u, mu), 0.0);
    for (std::int64_t i = 0; i < sys->domain.dims().size(); ++i) {
      if (sys->domain.cells[i] != CellType::Fluid) {
        ASSERT_EQ(mu[i], 0.0);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Domains, MultigridSymmetry, ::testing::Values(0, 1, 2, 3));

TEST(Multigrid, LevelsCoarsenOddNonCubicGrids) {
  auto sys = make_system(obstacle_domain({13, 9, 11}));
  MultigridOptions opts;
  opts.coarsest_cells = 8;
  MultigridPreconditioner mg(opts);
  mg.setup(sys->view());
  ASSERT_GE(mg.levels(), 3);
  EXPECT_EQ(mg.level_dims(0), (Dims{13, 9, 11}));
  EXPECT_EQ(mg.level_dims(1), (Dims{7, 5, 6}));
  EXPECT_EQ(mg.level_dims(2), (Dims{4, 3, 3}));
}

TEST(Multigrid, NeedsADomain) {
  auto sys = make_system(obstacle_domain({8, 8, 8}));
  MultigridPreconditioner mg;
  EXPECT_THROW(mg.setup(sys->view(/*with_domain=*/false)), InputError);
}

int mgpcg_iterations(const Domain& d, const MultigridOptions& opts, double rtol, double* rate = nullptr) {
  auto sys = make_system(d);
  PcgSolver solver("mgpcg", std::make_unique<MultigridPreconditioner>(opts));
  solver.setup(sys->view());
  Vector b = random_rhs(sys->domain, 17), x(b.size());
  SolveOptions o;
  o.rtol = rtol;
  o.max_iterations = 200;
  const auto rep = solver.solve(b, x, o);
  EXPECT_TRUE(rep.converged()) << format_reason_line(rep);
  if (rate) *rate = std::log10(rep.residual_history.front() / rep.residual_history.back()) / rep.iterations;
  return rep.iterations;
}

// Real behaviour, not timing: iteration counts of MGPCG hardly grow with the resolution.
TEST(Multigrid, IterationsStayFlatAsTheGridIsRefined) {
  MultigridOptions opts;
  opts.coarsest_cells = 64;  // the same depth of hierarchy below each size
  int its[3];
  double rates[3];
  const int sizes[3] = {16, 32, 64};
  for (int s = 0; s < 3; ++s) {
    its[s] = mgpcg_iterations(everything_domain({sizes[s], sizes[s], sizes[s]}), opts, 1e-6, &rates[s]);
    std::printf("  mgpcg %d^3: %d iterations to 1e-6, %.2f digits per iteration\n", sizes[s], its[s], rates[s]);
  }
  EXPECT_LE(its[2], 1.5 * its[0] + 1);
  EXPECT_LE(its[2], 16);        // about one digit every two iterations (or better)
  EXPECT_GE(rates[2], 0.4);
}

TEST(Multigrid, EveryOptionVariantIsAValidPreconditioner) {
  auto sys = make_system(everything_domain({19, 14, 17}));
  Vector b = random_rhs(sys->domain, 3);
  const Vector ref = direct_solve(sys->domain, sys->a, b);
  for (int variant = 0; variant < 4; ++variant) {
    MultigridOptions o;
    o.coarsest_cells = 100;
    if (variant == 1) o.neumann_interpolation = false;
    if (variant == 2) o.boundary_sweeps = 0;
    if (variant == 3) {
      o.pre_sweeps = 1;
      o.band_width = 1;
    }
    PcgSolver solver("mgpcg", std::make_unique<MultigridPreconditioner>(o));
    solver.setup(sys->view());
    Vector x(b.size());
    SolveOptions so;
    so.rtol = 1e-11;
    const auto rep = solver.solve(b, x, so);
    EXPECT_TRUE(rep.converged()) << "variant " << variant << ": " << format_reason_line(rep);
    sys->project(x);
    EXPECT_LT(relative_error(x, ref), 1e-8) << "variant " << variant;
  }
}

}  // namespace
