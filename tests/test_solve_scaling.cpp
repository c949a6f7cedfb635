// Right-hand sides of any finite magnitude: b * 1e-300 or b * 1e170 solves as b does (same
// iterations, x scaled by the same factor, norms in b's units), for every method; no
// "converged, relative residual 0" with x = 0 and no "-nan".
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "dcdm/methods.hpp"
#include "dcdm/poisson.hpp"
#include "dcdm/solve.hpp"

#include "test_domains.hpp"

using namespace dcdm;

namespace {

TEST(SolveScaling, TinyAndHugeRightHandSidesSolveLikeTheUnitOne) {
  Domain domain = dcdm::testing::random_domain({20, 18, 16}, 7, 0.15, 0.05);
  domain.faces.fill(FaceBoundary::Wall);
  domain.set_face(Face::ZMax, FaceBoundary::Open);
  const PoissonStencil op(domain);
  const CsrMatrix a = assemble_full_grid(domain);
  const RangeProjector projector(domain);
  LinearSystemView view{&op, &a, &domain, nullptr};
  if (projector.singular()) view.project_range = projector.as_function();
  std::mt19937_64 rng(3);
  std::normal_distribution<double> g;
  std::vector<double> b(static_cast<std::size_t>(domain.dims().size()), 0.0);
  for (std::int64_t c = 0; c < domain.dims().size(); ++c)
    if (domain.cells[c] == CellType::Fluid) b[c] = g(rng);
  projector(b);
  for (const char* method : {"cg", "jacobi", "ic0", "mgpcg", "dcdm-relax", "dpcg"}) {
    auto solver = make_solver(method);
    solver->setup(view);
    SolveOptions o;
    o.rtol = 1e-8;
    std::vector<double> x(b.size());
    const SolveReport base = solver->solve(b, x, o);
    ASSERT_TRUE(base.converged()) << method;
    for (const double s : {1e-300, 1e-250, 1e170, 1e300}) {
      std::vector<double> bs(b.size()), xs(b.size());
      for (std::size_t i = 0; i < b.size(); ++i) bs[i] = b[i] * s;
      std::vector<double> monitored;
      SolveOptions os = o;
      os.monitor = [&](const IterationInfo& info) { monitored.push_back(info.residual_norm); };
      const SolveReport r = solver->solve(bs, xs, os);
      EXPECT_TRUE(r.converged()) << method << " s=" << s << ": " << format_reason_line(r);
      EXPECT_EQ(r.iterations, base.iterations) << method << " s=" << s;
      EXPECT_NEAR(r.relative_residual(), base.relative_residual(), 1e-6 * base.relative_residual() + 1e-14)
          << method << " s=" << s;
      EXPECT_NEAR(r.rhs_norm / s, base.rhs_norm, 1e-9 * base.rhs_norm) << method << " s=" << s;
      ASSERT_FALSE(monitored.empty());
      EXPECT_NEAR(monitored.front() / s, base.residual_history.front(), 1e-9 * base.residual_history.front())
          << method << " s=" << s;
      double worst = 0, scale = 0;
      for (std::size_t i = 0; i < b.size(); ++i) {
        worst = std::max(worst, std::abs(xs[i] / s - x[i]));
        scale = std::max(scale, std::abs(x[i]));
      }
      EXPECT_LE(worst, 1e-10 * scale) << method << " s=" << s;
    }
  }
}

}  // namespace
