// CG / PCG: agreement with a direct solve, breakdown and NaN detection, warm starts,
// determinism, the report and the monitor.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "dcdm/error.hpp"
#include "dcdm/krylov.hpp"
#include "dcdm/poisson.hpp"
#include "dcdm/precond.hpp"
#include "test_krylov_systems.hpp"

using namespace dcdm;
using namespace dcdm::testing;

namespace {

std::unique_ptr<IterativeSolver> make(const std::string& method) {
  if (method == "cg") return make_cg_solver();
  if (method == "jacobi")
    return std::make_unique<PcgSolver>("jacobi", std::make_unique<JacobiPreconditioner>());
  if (method == "ic0")
    return std::make_unique<PcgSolver>("ic0", std::make_unique<IncompleteCholeskyPreconditioner>(0.0));
  if (method == "mic0")
    return std::make_unique<PcgSolver>("mic0",
                                       std::make_unique<IncompleteCholeskyPreconditioner>(0.97));
  if (method == "mgpcg")
    return std::make_unique<PcgSolver>("mgpcg", std::make_unique<MultigridPreconditioner>());
  if (method == "dpcg") return std::make_unique<DeflatedPcgSolver>(8);
  throw std::runtime_error("unknown method " + method);
}

bool outside_fluid_is_zero(const Domain& d, const Vector& x) {
  for (std::int64_t i = 0; i < d.dims().size(); ++i)
    if (d.cells[i] != CellType::Fluid && x[i] != 0.0) return false;
  return true;
}

struct Case {
  std::string method;
  int domain;  // 0 obstacle cube, 1 obstacle 13x9x11, 2 mixed singular 13x9x11, 3 closed box
};

Domain case_domain(int which) {
  switch (which) {
    case 0: return obstacle_domain({12, 12, 12});
    case 1: return obstacle_domain({13, 9, 11});
    case 2: return mixed_singular_domain({13, 9, 11});
    default: return closed_box({8, 10, 6});
  }
}

class KrylovVsDirect : public ::testing::TestWithParam<Case> {};

TEST_P(KrylovVsDirect, MatchesSimplicialLDLT) {
  const Case c = GetParam();
  auto sys = make_system(case_domain(c.domain));
  Vector b = random_rhs(sys->domain, 11 + c.domain);
  const Vector ref = direct_solve(sys->domain, sys->a, b);
  auto solver = make(c.method);
  solver->setup(sys->view());
  Vector x(b.size(), 1.0);  // garbage: must be zeroed (no warm start)
  SolveOptions opt;
  opt.rtol = 1e-11;
  opt.max_iterations = 2000;
  const SolveReport rep = solver->solve(b, x, opt);
  EXPECT_TRUE(rep.converged()) << format_reason_line(rep);
  EXPECT_LE(rep.relative_residual(), 1e-11);
  EXPECT_EQ(rep.residual_history.size(), static_cast<std::size_t>(rep.iterations) + 1);
  if (sys->project) sys->project(x);
  EXPECT_LT(relative_error(x, ref), 1e-8) << c.method << " domain " << c.domain;
  EXPECT_TRUE(outside_fluid_is_zero(sys->domain, x));
  // The true residual in the report is the real one.
  Vector ax(b.size());
  sys->a.multiply(x, ax);
  double num = 0;
  for (std::size_t i = 0; i < b.size(); ++i) num += (b[i] - ax[i]) * (b[i] - ax[i]);
  EXPECT_NEAR(std::sqrt(num), rep.final_residual, 1e-12 * norm2(b) + 1e-3 * rep.final_residual);
}

std::vector<Case> all_cases() {
  std::vector<Case> out;
  for (std::string m : {"cg", "jacobi", "ic0", "mic0", "mgpcg", "dpcg"})
    for (int d = 0; d < 4; ++d) out.push_back({m, d});
  return out;
}

INSTANTIATE_TEST_SUITE_P(AllMethods, KrylovVsDirect, ::testing::ValuesIn(all_cases()),
                         [](const auto& info) {
                           return info.param.method + "_domain" + std::to_string(info.param.domain);
                         });

class KrylovEveryMethod : public ::testing::TestWithParam<std::string> {};

TEST_P(KrylovEveryMethod, WarmStartFromExactSolutionTakesZeroIterations) {
  auto sys = make_system(obstacle_domain({13, 9, 11}));
  Vector b = random_rhs(sys->domain, 3);
  Vector x = direct_solve(sys->domain, sys->a, b);
  auto solver = make(GetParam());
  solver->setup(sys->view());
  SolveOptions opt;
  opt.use_initial_guess = true;
  const SolveReport rep = solver->solve(b, x, opt);
  EXPECT_EQ(rep.iterations, 0);
  EXPECT_EQ(rep.reason, SolveReason::ConvergedRtol);
  EXPECT_EQ(x, direct_solve(sys->domain, sys->a, b));  // untouched
}

TEST_P(KrylovEveryMethod, RepeatedRunsAreBitIdentical) {
  auto sys = make_system(mixed_singular_domain({13, 9, 11}));
  Vector b = random_rhs(sys->domain, 5);
  auto solver = make(GetParam());
  solver->setup(sys->view());
  SolveOptions opt;
  opt.rtol = 1e-9;
  Vector x1(b.size()), x2(b.size());
  const auto r1 = solver->solve(b, x1, opt);
  const auto r2 = solver->solve(b, x2, opt);
  EXPECT_EQ(x1, x2);
  EXPECT_EQ(r1.residual_history, r2.residual_history);
  auto again = make(GetParam());
  again->setup(sys->view());
  Vector x3(b.size());
  again->solve(b, x3, opt);
  EXPECT_EQ(x1, x3);
}

TEST_P(KrylovEveryMethod, SingularAllNeumannConvergesAfterProjection) {
  auto sys = make_system(closed_box({9, 7, 8}));
  ASSERT_TRUE(sys->project);
  // An incompatible b (non-zero mean): the solver projects it onto range(A).
  Vector b(sys->a.rows);
  std::mt19937 rng(2);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (auto& v : b) v = u(rng);
  Vector bp = b;
  sys->project(bp);
  auto solver = make(GetParam());
  solver->setup(sys->view());
  SolveOptions opt;
  opt.rtol = 1e-10;
  Vector x(b.size());
  const auto rep = solver->solve(b, x, opt);
  EXPECT_TRUE(rep.converged()) << format_reason_line(rep);
  EXPECT_NEAR(rep.rhs_norm, norm2(bp), 1e-12 * norm2(bp));
  sys->project(x);
  EXPECT_LT(relative_error(x, direct_solve(sys->domain, sys->a, bp)), 1e-7);
}

TEST_P(KrylovEveryMethod, NanRightHandSideGivesReasonNanAndFiniteX) {
  auto sys = make_system(obstacle_domain({8, 8, 8}));
  Vector b = random_rhs(sys->domain, 9);
  b[100] = std::numeric_limits<double>::quiet_NaN();
  auto solver = make(GetParam());
  solver->setup(sys->view());
  Vector x(b.size(), 7.0);
  const auto rep = solver->solve(b, x, SolveOptions{});
  EXPECT_EQ(rep.reason, SolveReason::NaN);
  EXPECT_FALSE(rep.detail.empty());
  EXPECT_EQ(count_non_finite(x), 0);
}

INSTANTIATE_TEST_SUITE_P(AllMethods, KrylovEveryMethod,
                         ::testing::Values("cg", "jacobi", "ic0", "mic0", "mgpcg", "dpcg"));

// An SPD tridiagonal matrix shifted to be strongly indefinite.
CsrMatrix shifted_laplacian_1d(int n, double shift) {
  std::vector<Triplet> t;
  for (int i = 0; i < n; ++i) {
    t.push_back({i, i, 2.0 - shift});
    if (i > 0) t.push_back({i, i - 1, -1.0});
    if (i + 1 < n) t.push_back({i, i + 1, -1.0});
  }
  return CsrMatrix::from_triplets(n, n, t);
}

TEST(KrylovBreakdown, IndefiniteMatrixIsDetected) {
  const CsrMatrix a = shifted_laplacian_1d(200, 3.0);  // eigenvalues in (-3, 1)
  CsrOperator op(a);
  Vector b(200, 1.0), x(200);
  const auto rep = pcg_solve(op, nullptr, nullptr, b, x, SolveOptions{}, "cg");
  EXPECT_EQ(rep.reason, SolveReason::IndefiniteMatrix);
  EXPECT_NE(rep.detail.find("p.Ap"), std::string::npos) << rep.detail;
  EXPECT_EQ(count_non_finite(x), 0);
  EXPECT_NE(format_reason_line(rep).find("DIVERGED_INDEFINITE_MAT"), std::string::npos);
}

TEST(KrylovBreakdown, SlightlyIndefiniteMatrixIsDetectedLater) {
  // Only the lowest eigenvalue is negative: CG runs a few steps before p.Ap <= 0.
  const CsrMatrix a = shifted_laplacian_1d(60, 2.0 * (1 - std::cos(M_PI / 61)) + 1e-3);
  CsrOperator op(a);
  Vector b(60), x(60);
  for (int i = 0; i < 60; ++i) b[i] = std::sin(0.3 * i) + 0.1;
  SolveOptions opt;
  opt.rtol = 1e-12;
  const auto rep = pcg_solve(op, nullptr, nullptr, b, x, opt, "cg");
  EXPECT_EQ(rep.reason, SolveReason::IndefiniteMatrix) << format_reason_line(rep);
}

class NegatedIdentity final : public LinearOperator {
 public:
  explicit NegatedIdentity(std::int64_t n) : n_(n) {}
  std::int64_t size() const override { return n_; }
  void apply(dcdm::span<const double> x, dcdm::span<double> y) const override {
    for (std::int64_t i = 0; i < n_; ++i) y[i] = -x[i];
  }
  std::int64_t n_;
};

TEST(KrylovBreakdown, NonPositivePreconditionerIsDetected) {
  auto sys = make_system(obstacle_domain({8, 8, 8}));
  Vector b = random_rhs(sys->domain, 1), x(b.size());
  NegatedIdentity m(sys->a.rows);
  const auto rep = pcg_solve(*sys->op, &m, nullptr, b, x, SolveOptions{}, "pcg");
  EXPECT_EQ(rep.reason, SolveReason::IndefinitePreconditioner);
  EXPECT_NE(rep.detail.find("r.z"), std::string::npos) << rep.detail;
  EXPECT_NE(format_reason_line(rep).find("DIVERGED_INDEFINITE_PC"), std::string::npos);
}

// An operator that turns into NaN after a number of applications.
class PoisonedOperator final : public LinearOperator {
 public:
  PoisonedOperator(const CsrMatrix& a, int healthy) : a_(a), healthy_(healthy) {}
  std::int64_t size() const override { return a_.rows; }
  void apply(dcdm::span<const double> x, dcdm::span<double> y) const override {
    a_.multiply(x, y);
    if (++calls_ > healthy_) y[3] = std::numeric_limits<double>::quiet_NaN();
  }
  const CsrMatrix& a_;
  int healthy_;
  mutable int calls_ = 0;
};

TEST(KrylovNan, OperatorNanReturnsLastFiniteIterate) {
  auto sys = make_system(obstacle_domain({8, 8, 8}));
  Vector b = random_rhs(sys->domain, 1), x(b.size()), x_ref(b.size());
  PoisonedOperator poisoned(sys->a, 5);
  const auto rep = pcg_solve(poisoned, nullptr, nullptr, b, x, SolveOptions{}, "cg");
  EXPECT_EQ(rep.reason, SolveReason::NaN);
  EXPECT_EQ(count_non_finite(x), 0);
  // The last finite iterate is the one plain CG reaches after the same number of steps.
  SolveOptions opt;
  opt.max_iterations = rep.iterations - (rep.iterations > 0 && !std::isfinite(rep.residual_history.back()) ? 1 : 0);
  pcg_solve(*sys->op, nullptr, nullptr, b, x_ref, opt, "cg");
  EXPECT_EQ(x, x_ref);
}

TEST(KrylovReport, MaxIterationsAtolAndMonitor) {
  auto sys = make_system(obstacle_domain({12, 12, 12}));
  Vector b = random_rhs(sys->domain, 4), x(b.size());
  std::vector<IterationInfo> seen;
  SolveOptions opt;
  opt.max_iterations = 3;
  opt.monitor = [&](const IterationInfo& info) { seen.push_back(info); };
  auto rep = pcg_solve(*sys->op, nullptr, nullptr, b, x, opt, "cg");
  EXPECT_EQ(rep.reason, SolveReason::MaxIterations);
  EXPECT_EQ(rep.iterations, 3);
  ASSERT_EQ(seen.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(seen[i].iteration, i);
    EXPECT_EQ(seen[i].residual_norm, rep.residual_history[i]);
  }
  EXPECT_NE(format_monitor_line(seen[2]).find("2 KSP Residual norm"), std::string::npos);
  EXPECT_EQ(format_reason_line(rep), "Linear solve did not converge due to DIVERGED_ITS iterations 3" +
                                         std::string(" (") + rep.detail + ")");

  SolveOptions atol;
  atol.rtol = 0.0;
  atol.atol = 0.5 * norm2(b);
  rep = pcg_solve(*sys->op, nullptr, nullptr, b, x, atol, "cg");
  EXPECT_EQ(rep.reason, SolveReason::ConvergedAtol);
  EXPECT_LE(rep.final_residual, atol.atol);
  EXPECT_GT(rep.iterations, 0);
}

TEST(KrylovReport, TrueResidualRecomputationKeepsConvergence) {
  auto sys = make_system(obstacle_domain({12, 12, 12}));
  Vector b = random_rhs(sys->domain, 4), x1(b.size()), x2(b.size());
  SolveOptions opt;
  opt.rtol = 1e-10;
  const auto r1 = pcg_solve(*sys->op, nullptr, nullptr, b, x1, opt, "cg");
  opt.true_residual_every = 1;
  const auto r2 = pcg_solve(*sys->op, nullptr, nullptr, b, x2, opt, "cg");
  EXPECT_TRUE(r2.converged());
  EXPECT_NEAR(r1.iterations, r2.iterations, 2);
  EXPECT_LT(relative_error(x1, x2), 1e-8);
}

TEST(KrylovReport, StagnationIsDetected) {
  // A singular system with an incompatible b and no projection: the residual cannot drop
  // below the null-space component of b, so the iteration stalls there.
  auto sys = make_system(closed_box({10, 10, 10}));
  Vector b = random_rhs(sys->domain, 4), x(b.size());
  for (auto& v : b) v += 0.01;
  SolveOptions opt;
  opt.rtol = 1e-10;
  opt.max_iterations = 5000;
  opt.stagnation_window = 20;
  const auto rep = pcg_solve(*sys->op, nullptr, nullptr, b, x, opt, "cg");
  EXPECT_EQ(rep.reason, SolveReason::Stagnation) << format_reason_line(rep);
  EXPECT_LT(rep.iterations, 1000) << format_reason_line(rep);
  EXPECT_EQ(count_non_finite(x), 0);
}

TEST(KrylovReport, SizeMismatchIsInputError) {
  auto sys = make_system(obstacle_domain({4, 4, 4}));
  Vector b(10), x(10);
  EXPECT_THROW(pcg_solve(*sys->op, nullptr, nullptr, b, x, SolveOptions{}, "cg"), InputError);
}

}  // namespace

// PCG's fused passes (A p with p . Ap; x, r and r . r in one pass) follow the textbook
// recurrence, one kernel per vector operation: the same iterations, the iterates to rounding
// (the fused reductions sum other blocks), on the stencil (whose apply_dot streams x and A x
// once) and on a CSR operator (the default apply_dot).
TEST(KrylovReport, PcgFusedPassesFollowTheTextbookRecurrence) {
  auto sys = make_system(obstacle_domain({41, 37, 39}));  // 59k cells: several reduction blocks
  const PoissonStencil stencil(sys->domain);
  JacobiPreconditioner jacobi;
  jacobi.setup(sys->view());
  const Vector b = random_rhs(sys->domain, 9);
  const double rtol = 1e-8;
  // The textbook loop.
  Vector x_ref(b.size(), 0.0), r(b), z(b.size()), p(b.size()), ap(b.size());
  jacobi.apply(r, z);
  copy(z, p);
  double rz = dot(r, z);
  int its_ref = 0;
  std::vector<double> history{norm2(r)};
  while (history.back() > rtol * norm2(b) && its_ref < 500) {
    stencil.apply(p, ap);
    const double alpha = rz / dot(p, ap);
    axpy(alpha, p, x_ref);
    axpy(-alpha, ap, r);
    history.push_back(norm2(r));
    ++its_ref;
    jacobi.apply(r, z);
    const double rz_new = dot(r, z);
    xpay(z, rz_new / rz, p);
    rz = rz_new;
  }
  for (const LinearOperator* op : {static_cast<const LinearOperator*>(&stencil), static_cast<const LinearOperator*>(sys->op.get())}) {
    Vector x(b.size(), 0.0);
    SolveOptions so;
    so.rtol = rtol;
    so.max_iterations = 500;
    const SolveReport rep = pcg_solve(*op, &jacobi, nullptr, b, x, so, "jacobi");
    ASSERT_TRUE(rep.converged()) << format_reason_line(rep);
    EXPECT_EQ(rep.iterations, its_ref);
    EXPECT_LT(relative_error(x, x_ref), 1e-9);
    for (int it = 1; it < its_ref; ++it)
      EXPECT_NEAR(rep.residual_history[static_cast<std::size_t>(it)], history[static_cast<std::size_t>(it)],
                  1e-7 * history[static_cast<std::size_t>(it)]);
  }
}
