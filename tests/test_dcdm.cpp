// DCDM iteration with synthetic generators: exact inverse, identity, Jacobi, broken ones.
#include <gtest/gtest.h>

#include <Eigen/SparseCholesky>
#include <Eigen/SparseCore>
#include <cmath>
#include <limits>
#include <random>

#include <fmt/format.h>

#include "dcdm/dcdm.hpp"
#include "dcdm/error.hpp"
#include "dcdm/krylov.hpp"
#include "dcdm/linalg.hpp"
#include "dcdm/precond.hpp"
#include "dcdm/solve.hpp"

using namespace dcdm;

namespace {

// 7-point Laplacian on an nx*ny*nz box; faces listed in `open` (x-,x+,y-,y+,z-,z+) are
// Dirichlet (air outside), the others Neumann walls.
CsrMatrix box_laplacian(int nx, int ny, int nz, std::array<bool, 6> open) {
  std::vector<Triplet> t;
  auto id = [&](int i, int j, int k) { return std::int64_t(i) + nx * (std::int64_t(j) + ny * k); };
  for (int k = 0; k < nz; ++k)
    for (int j = 0; j < ny; ++j)
      for (int i = 0; i < nx; ++i) {
        double diag = 0;
        const int c[3] = {i, j, k}, n[3] = {nx, ny, nz};
        for (int axis = 0; axis < 3; ++axis)
          for (int s = -1; s <= 1; s += 2) {
            int nb[3] = {i, j, k};
            nb[axis] += s;
            if (nb[axis] < 0 || nb[axis] >= n[axis]) {
              if (open[2 * axis + (s > 0)]) diag += 1;
              continue;
            }
            diag += 1;
            t.push_back({id(c[0], c[1], c[2]), id(nb[0], nb[1], nb[2]), -1.0});
          }
        t.push_back({id(i, j, k), id(i, j, k), diag});
      }
  const std::int64_t size = std::int64_t(nx) * ny * nz;
  return CsrMatrix::from_triplets(size, size, std::move(t));
}

Eigen::SparseMatrix<double> to_eigen(const CsrMatrix& a) {
  std::vector<Eigen::Triplet<double>> t;
  for (std::int64_t r = 0; r < a.rows; ++r)
    for (auto p = a.row_ptr[r]; p < a.row_ptr[r + 1]; ++p) t.emplace_back(r, a.col_idx[p], a.values[p]);
  Eigen::SparseMatrix<double> m(a.rows, a.cols);
  m.setFromTriplets(t.begin(), t.end());
  return m;
}

// The exact inverse by a sparse LDLT factorisation.
class DirectSolveOperator final : public LinearOperator {
 public:
  explicit DirectSolveOperator(const CsrMatrix& a) : n_(a.rows), ldlt_(to_eigen(a)) {
    EXPECT_EQ(ldlt_.info(), Eigen::Success);
  }
  std::int64_t size() const override { return n_; }
  void apply(dcdm::span<const double> x, dcdm::span<double> y) const override {
    Eigen::Map<const Eigen::VectorXd> xv(x.data(), n_);
    Eigen::Map<Eigen::VectorXd>(y.data(), n_) = ldlt_.solve(xv);
  }

 private:
  std::int64_t n_;
  Eigen::SimplicialLDLT<Eigen::SparseMatrix<double>> ldlt_;
};

class JacobiOperator final : public LinearOperator {
 public:
  explicit JacobiOperator(const CsrMatrix& a) : d_(a.diagonal()) {}
  std::int64_t size() const override { return static_cast<std::int64_t>(d_.size()); }
  void apply(dcdm::span<const double> x, dcdm::span<double> y) const override {
    for (std::size_t i = 0; i < d_.size(); ++i) y[i] = x[i] / d_[i];
  }

 private:
  std::vector<double> d_;
};

// A generator that fails in a chosen way on chosen calls, else behaves like the identity.
class BrokenOperator final : public LinearOperator {
 public:
  enum class Mode { Zero, NaN, Huge };
  BrokenOperator(std::int64_t n, Mode mode, int every) : n_(n), mode_(mode), every_(every) {}
  std::int64_t size() const override { return n_; }
  void apply(dcdm::span<const double> x, dcdm::span<double> y) const override {
    ++calls_;
    const bool fail = every_ <= 1 || calls_ % every_ == 0;
    for (std::int64_t i = 0; i < n_; ++i) {
      if (!fail) y[i] = x[i];
      else if (mode_ == Mode::Zero) y[i] = 0.0;
      else if (mode_ == Mode::NaN) y[i] = (i % 7 == 0) ? std::numeric_limits<double>::quiet_NaN() : x[i];
      else y[i] = 1e300;
    }
  }

 private:
  std::int64_t n_;
  Mode mode_;
  int every_;
  mutable int calls_ = 0;
};

Vector random_vector(std::int64_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> g;
  Vector v(n);
  for (auto& e : v) e = g(rng);
  return v;
}

struct Problem {
  CsrMatrix a;
  CsrOperator op;
  Vector b;
  LinearSystemView view() const { return {&op, &a, nullptr, {}}; }
  explicit Problem(CsrMatrix m) : a(std::move(m)), op(a), b(random_vector(a.rows, 3)) {}
};

double a_norm_error(const CsrMatrix& a, const Vector& exact, dcdm::span<const double> x) {
  Vector e(exact.size()), ae(exact.size());
  for (std::size_t i = 0; i < e.size(); ++i) e[i] = exact[i] - x[i];
  a.multiply(e, ae);
  return std::sqrt(dot(e, ae));
}

}  // namespace

TEST(Dcdm, ExactInverseGeneratorConvergesInOneIteration) {
  Problem p(box_laplacian(6, 5, 4, {true, false, false, false, false, true}));
  DcdmSolver solver(std::make_shared<DirectSolveOperator>(p.a));
  solver.setup(p.view());
  Vector x(p.b.size());
  SolveOptions opt;
  opt.rtol = 1e-10;
  const auto rep = solver.solve(p.b, x, opt);
  EXPECT_EQ(rep.reason, SolveReason::ConvergedRtol) << rep.detail;
  EXPECT_EQ(rep.iterations, 1);
  EXPECT_LE(rep.final_residual, 1e-10 * rep.rhs_norm);
  ASSERT_EQ(rep.residual_history.size(), 2u);
  EXPECT_EQ(solver.last_stats().fallback_directions, 0);
}

TEST(Dcdm, IdentityGeneratorDecreasesTheANormErrorMonotonically) {
  Problem p(box_laplacian(7, 6, 5, {false, false, true, false, false, false}));
  Vector exact(p.b.size());
  DirectSolveOperator(p.a).apply(p.b, exact);
  for (int k : {0, 2}) {
    DcdmOptions o;
    o.k = k;
    DcdmSolver solver(std::make_shared<IdentityOperator>(p.a.rows), o, "dcdm-identity");
    solver.setup(p.view());
    double previous = a_norm_error(p.a, exact, Vector(p.b.size(), 0.0));
    for (int m = 1; m <= 40; ++m) {  // the iteration is deterministic: iterate m of a longer run
      SolveOptions opt;
      opt.max_iterations = m;
      opt.rtol = 1e-14;
      Vector x(p.b.size());
      const auto rep = solver.solve(p.b, x, opt);
      ASSERT_EQ(rep.iterations, m);
      const double err = a_norm_error(p.a, exact, x);
      EXPECT_LT(err, previous) << "k=" << k << " iteration " << m;
      previous = err;
    }
  }
}

TEST(Dcdm, ConjugationAcceleratesSteepestDescent) {
  Problem p(box_laplacian(8, 8, 8, {true, true, false, false, false, false}));
  SolveOptions opt;
  opt.rtol = 1e-6;
  opt.max_iterations = 5000;
  opt.stagnation_window = 0;
  int iterations[2];
  for (int k : {0, 2}) {
    DcdmOptions o;
    o.k = k;
    DcdmSolver solver(std::make_shared<IdentityOperator>(p.a.rows), o);
    solver.setup(p.view());
    Vector x(p.b.size());
    const auto rep = solver.solve(p.b, x, opt);
    ASSERT_TRUE(rep.converged()) << format_reason_line(rep);
    EXPECT_LE(rep.final_residual, 1.01e-6 * rep.rhs_norm);
    iterations[k / 2] = rep.iterations;
  }
  EXPECT_LT(iterations[1] * 2, iterations[0]);
}

TEST(Dcdm, JacobiGeneratorConvergesToTheDirectSolution) {
  Problem p(box_laplacian(9, 7, 6, {false, false, false, false, true, false}));
  DcdmSolver solver(std::make_shared<JacobiOperator>(p.a), DcdmOptions{}, "dcdm-jacobi");
  solver.setup(p.view());
  Vector x(p.b.size()), exact(p.b.size());
  DirectSolveOperator(p.a).apply(p.b, exact);
  SolveOptions opt;
  opt.rtol = 1e-9;
  opt.true_residual_every = 1;
  int monitored = 0;
  opt.monitor = [&](const IterationInfo& info) { EXPECT_EQ(info.iteration, monitored++); };
  const auto rep = solver.solve(p.b, x, opt);
  ASSERT_EQ(rep.reason, SolveReason::ConvergedRtol) << format_reason_line(rep);
  EXPECT_EQ(monitored, rep.iterations + 1);
  EXPECT_EQ(static_cast<int>(rep.residual_history.size()), rep.iterations + 1);
  EXPECT_EQ(solver.last_stats().true_residual_updates, rep.iterations);
  double max_err = 0, max_x = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    max_err = std::max(max_err, std::abs(x[i] - exact[i]));
    max_x = std::max(max_x, std::abs(exact[i]));
  }
  EXPECT_LT(max_err, 1e-6 * max_x);
}

// With a fixed symmetric positive definite generator M, the conjugate-direction iteration
// with k >= 1 is PCG with M in exact arithmetic (the short recurrence): the two independent
// implementations must produce the same residual history. 24x22x20 cells span several row
// blocks of the fused reductions.
TEST(Dcdm, SpdLinearGeneratorReproducesPcg) {
  Problem p(box_laplacian(24, 22, 20, {false, false, false, true, false, false}));
  ASSERT_GT(p.a.rows, 8192);
  SolveOptions opt;
  opt.rtol = 1e-8;
  PcgSolver pcg("jacobi", std::make_unique<JacobiPreconditioner>());
  pcg.setup(p.view());
  Vector x_pcg(p.b.size());
  const auto ref = pcg.solve(p.b, x_pcg, opt);
  ASSERT_TRUE(ref.converged()) << format_reason_line(ref);
  for (int k : {1, 3}) {
    DcdmOptions o;
    o.k = k;
    o.weak_fallback = false;
    DcdmSolver solver(std::make_shared<JacobiOperator>(p.a), o, "dcdm-jacobi");
    solver.setup(p.view());
    Vector x(p.b.size());
    const auto rep = solver.solve(p.b, x, opt);
    ASSERT_TRUE(rep.converged()) << format_reason_line(rep);
    EXPECT_NEAR(rep.iterations, ref.iterations, 1) << "k = " << k;
    // Agreement to rounding over the iterations where it has not yet accumulated.
    const std::size_t compare = std::min<std::size_t>(30, ref.residual_history.size());
    ASSERT_GE(rep.residual_history.size(), compare);
    for (std::size_t i = 0; i < compare; ++i)
      EXPECT_NEAR(rep.residual_history[i] / ref.residual_history[i], 1.0, 1e-7) << "k = " << k << ", iteration " << i;
    double max_diff = 0, max_x = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      max_diff = std::max(max_diff, std::abs(x[i] - x_pcg[i]));
      max_x = std::max(max_x, std::abs(x_pcg[i]));
    }
    EXPECT_LT(max_diff, 1e-6 * max_x) << "k = " << k;
    EXPECT_EQ(solver.last_stats().fallback_directions, 0);
  }
}

// A non-symmetric linear generator: Jacobi plus a one-sided neighbour term. DCDM with k = 2
// loses conjugacy with it, so the kept directions' coefficients are far from zero.
class SkewedJacobiOperator final : public LinearOperator {
 public:
  explicit SkewedJacobiOperator(const CsrMatrix& a) : d_(a.diagonal()) {}
  std::int64_t size() const override { return static_cast<std::int64_t>(d_.size()); }
  void apply(dcdm::span<const double> x, dcdm::span<double> y) const override {
    for (std::size_t i = 0; i < d_.size(); ++i) y[i] = (x[i] + (i > 0 ? 0.05 * x[i - 1] : 0.0)) / d_[i];
  }

 private:
  std::vector<double> d_;
};

// The fused orthogonalise-and-step pass against the separate passes: the same iterations and
// residuals to rounding, with a symmetric and a non-symmetric generator, and the solution
// agrees with the direct solve.
TEST(Dcdm, FusedStepMatchesTheSeparatePasses) {
  Problem p(box_laplacian(24, 22, 20, {false, false, false, true, false, false}));
  const Eigen::SimplicialLDLT<Eigen::SparseMatrix<double>> ldlt(to_eigen(p.a));
  Vector exact(p.b.size());
  Eigen::Map<Eigen::VectorXd>(exact.data(), p.a.rows) = ldlt.solve(Eigen::Map<const Eigen::VectorXd>(p.b.data(), p.a.rows));
  SolveOptions opt;
  opt.rtol = 1e-10;
  opt.max_iterations = 3000;
  for (const bool skewed : {false, true}) {
    std::shared_ptr<const LinearOperator> gen;
    if (skewed) gen = std::make_shared<SkewedJacobiOperator>(p.a);
    else gen = std::make_shared<JacobiOperator>(p.a);
    SolveReport reports[2];
    Vector xs[2];
    for (const bool fused : {false, true}) {
      DcdmOptions o;
      o.k = 2;
      o.weak_fallback = false;
      o.orthogonalise_first = false;  // the fused and the separate passes
      o.fused_step = fused;
      DcdmSolver solver(gen, o, "dcdm");
      solver.setup(p.view());
      Vector x(p.b.size());
      reports[fused] = solver.solve(p.b, x, opt);
      ASSERT_TRUE(reports[fused].converged()) << format_reason_line(reports[fused]);
      const auto& st = solver.last_stats();
      // Most steps after the first (not those where most of q.Aq cancels: separate passes).
      if (fused) EXPECT_GE(st.fused_steps, (reports[fused].iterations - 1) / 2) << "skewed " << skewed;
      else EXPECT_EQ(st.fused_steps, 0);
      EXPECT_EQ(st.fused_corrections, 0);  // the first pass's step length was within 1e-3
      EXPECT_EQ(st.fallback_directions, 0);
      EXPECT_LT(a_norm_error(p.a, exact, x), 1e-8 * a_norm_error(p.a, exact, Vector(x.size(), 0.0)));
      xs[fused] = std::move(x);
    }
    EXPECT_NEAR(reports[1].iterations, reports[0].iterations, 1) << "skewed " << skewed;
    const std::size_t compare = std::min<std::size_t>(25, reports[0].residual_history.size());
    for (std::size_t i = 0; i < compare; ++i)
      EXPECT_NEAR(reports[1].residual_history[i] / reports[0].residual_history[i], 1.0, 1e-6)
          << "skewed " << skewed << ", iteration " << i;
    // With a zero tolerance every fused step whose length differs at all from the exact one
    // takes the correcting pass; the iterates still follow the separate passes'.
    DcdmOptions o;
    o.k = 2;
    o.weak_fallback = false;
    o.orthogonalise_first = false;
    o.fused_step_tolerance = 0.0;
    DcdmSolver solver(gen, o, "dcdm");
    solver.setup(p.view());
    Vector x(p.b.size());
    const SolveReport corrected = solver.solve(p.b, x, opt);
    ASSERT_TRUE(corrected.converged()) << format_reason_line(corrected);
    EXPECT_GT(solver.last_stats().fused_corrections, solver.last_stats().fused_steps / 2) << "skewed " << skewed;
    EXPECT_NEAR(corrected.iterations, reports[0].iterations, 1) << "skewed " << skewed;
    for (std::size_t i = 0; i < compare; ++i)
      EXPECT_NEAR(corrected.residual_history[i] / reports[0].residual_history[i], 1.0, 1e-6)
          << "skewed " << skewed << ", iteration " << i;
    EXPECT_LT(a_norm_error(p.a, exact, x), 1e-8 * a_norm_error(p.a, exact, Vector(x.size(), 0.0)));
    // Orthogonalising before the mat-vec (the default without the weak guard, one vector
    // fewer): the same iterates as the separate passes, to rounding, for k = 1, 2 and 3.
    for (int k : {1, 2, 3}) {
      DcdmOptions lean;
      lean.k = k;
      lean.weak_fallback = false;
      DcdmOptions separate = lean;
      separate.orthogonalise_first = false;
      separate.fused_step = false;
      SolveReport out[2];
      Vector xk[2];
      int index = 0;
      for (const DcdmOptions& options : {separate, lean}) {
        DcdmSolver s(gen, options, "dcdm");
        s.setup(p.view());
        xk[index].assign(p.b.size(), 0.0);
        out[index] = s.solve(p.b, xk[index], opt);
        ASSERT_TRUE(out[index].converged()) << format_reason_line(out[index]);
        EXPECT_EQ(s.last_stats().fallback_directions, 0);
        ++index;
      }
      EXPECT_NEAR(out[1].iterations, out[0].iterations, 1) << "skewed " << skewed << " k " << k;
      const std::size_t upto = std::min<std::size_t>(25, std::min(out[0].residual_history.size(), out[1].residual_history.size()));
      for (std::size_t i = 0; i < upto; ++i)
        EXPECT_NEAR(out[1].residual_history[i] / out[0].residual_history[i], 1.0, 1e-6)
            << "skewed " << skewed << " k " << k << ", iteration " << i;
      EXPECT_LT(a_norm_error(p.a, exact, xk[1]), 1e-8 * a_norm_error(p.a, exact, Vector(xk[1].size(), 0.0)));
    }
  }
}

// Float direction vectors on the orthogonalise-first path, against the same solver with double
// ones: the same iterations (+-1) and residuals to float rounding while they are far above it,
// for k = 1, 2, 3 with a symmetric and a non-symmetric generator (k >= 2 keeps several float
// pairs). Below the float drift (rtol 1e-11) the updated residual's early "convergence" is
// caught on b - A x and the solve goes on to the target. Auto picks float by the tolerance.
TEST(Dcdm, FloatVectorsFollowTheDoubleIterates) {
  Problem p(box_laplacian(24, 22, 20, {false, false, false, true, false, false}));
  ASSERT_GT(p.a.rows, 8192);  // several row blocks
  const Eigen::SimplicialLDLT<Eigen::SparseMatrix<double>> ldlt(to_eigen(p.a));
  Vector exact(p.b.size());
  Eigen::Map<Eigen::VectorXd>(exact.data(), p.a.rows) = ldlt.solve(Eigen::Map<const Eigen::VectorXd>(p.b.data(), p.a.rows));
  const double initial_error = a_norm_error(p.a, exact, Vector(exact.size(), 0.0));
  using Precision = DcdmOptions::VectorPrecision;
  const auto run = [&](std::shared_ptr<const LinearOperator> gen, DcdmOptions o, double rtol, DcdmStats* stats,
                       Vector* x_out = nullptr) {
    DcdmSolver solver(std::move(gen), o, "dcdm");
    solver.setup(p.view());
    Vector x(p.b.size());
    SolveOptions opt;
    opt.rtol = rtol;
    opt.max_iterations = 3000;
    const SolveReport rep = solver.solve(p.b, x, opt);
    *stats = solver.last_stats();
    if (x_out) *x_out = std::move(x);
    return rep;
  };
  for (const bool skewed : {false, true}) {
    std::shared_ptr<const LinearOperator> gen;
    if (skewed) gen = std::make_shared<SkewedJacobiOperator>(p.a);
    else gen = std::make_shared<JacobiOperator>(p.a);
    for (const int k : {1, 2, 3}) {
      DcdmOptions o;
      o.k = k;
      o.weak_fallback = false;
      DcdmOptions f = o;
      f.vector_precision = Precision::Float;
      DcdmStats sd, sf;
      Vector xf;
      const SolveReport rd = run(gen, o, 1e-6, &sd), rf = run(gen, f, 1e-6, &sf, &xf);
      const std::string what = fmt::format("skewed {} k {}", skewed, k);
      ASSERT_TRUE(rd.converged() && rf.converged()) << what << format_reason_line(rf);
      EXPECT_FALSE(sd.single_precision_vectors);
      EXPECT_TRUE(sf.single_precision_vectors);
      EXPECT_NEAR(rf.iterations, rd.iterations, 1) << what;
      for (std::size_t i = 0; i < std::min<std::size_t>(20, rd.residual_history.size()); ++i)
        EXPECT_NEAR(rf.residual_history[i] / rd.residual_history[i], 1.0, 1e-4) << what << ", iteration " << i;
      EXPECT_LE(rf.final_residual, 1e-6 * rf.rhs_norm) << what;  // b - A x, not the updated residual
      EXPECT_LT(a_norm_error(p.a, exact, xf), 1e-4 * initial_error) << what;
      // Far below the float drift: the true residual decides, and reaches the target.
      DcdmStats tight;
      const SolveReport rt = run(gen, f, 1e-11, &tight, &xf);
      ASSERT_TRUE(rt.converged()) << what << format_reason_line(rt);
      EXPECT_LE(rt.final_residual, 1e-11 * rt.rhs_norm) << what;
      EXPECT_GE(tight.residual_replacements, 1) << what;
      EXPECT_LT(a_norm_error(p.a, exact, xf), 1e-8 * initial_error) << what;
      EXPECT_EQ(sd.residual_replacements, 0);
    }
  }
  // Auto: float at 1e-6, double below kSingleVectorsMinRtol; the weak-direction guard keeps double.
  const auto jacobi = std::make_shared<JacobiOperator>(p.a);
  DcdmOptions a;
  a.weak_fallback = false;
  a.vector_precision = Precision::Auto;
  DcdmStats st;
  run(jacobi, a, 1e-6, &st);
  EXPECT_TRUE(st.single_precision_vectors);
  run(jacobi, a, 1e-8, &st);
  EXPECT_FALSE(st.single_precision_vectors);
  a.weak_fallback = true;
  a.vector_precision = Precision::Float;
  run(jacobi, a, 1e-6, &st);
  EXPECT_FALSE(st.single_precision_vectors);
}

TEST(Dcdm, BrokenGeneratorsFallBackAndReportIt) {
  Problem p(box_laplacian(6, 6, 6, {true, false, false, false, false, false}));
  using Mode = BrokenOperator::Mode;
  // With and without the weak-direction guard (without it the direction is A-orthogonalised
  // before its mat-vec, or, with orthogonalise_first off, the fused step path runs; the
  // failures hit them from the second iteration on: every second call fails, also when the
  // retiring pair's buffer has taken the failed direction's image).
  // Path 3: orthogonalise-first with float vectors (a huge direction overflows float there).
  for (const int path : {0, 1, 2, 3})
  for (Mode mode : {Mode::Zero, Mode::NaN, Mode::Huge}) {
    const bool guard = path == 0;
    DcdmOptions o;
    o.weak_fallback = guard;
    o.orthogonalise_first = path == 1 || path == 3;
    if (path == 3) o.vector_precision = DcdmOptions::VectorPrecision::Float;
    DcdmSolver solver(std::make_shared<BrokenOperator>(p.a.rows, mode, guard ? 3 : 2), o);
    solver.setup(p.view());
    Vector x(p.b.size());
    SolveOptions opt;
    opt.rtol = 1e-8;
    const auto rep = solver.solve(p.b, x, opt);
    EXPECT_EQ(rep.reason, SolveReason::ConvergedRtol) << format_reason_line(rep);
    EXPECT_EQ(solver.last_stats().single_precision_vectors, path == 3);
    EXPECT_LE(rep.final_residual, opt.rtol * rep.rhs_norm);
    EXPECT_EQ(count_non_finite(x), 0);
    if (mode != Mode::Huge || path == 3) {  // a constant vector is a valid (if poor) direction
      EXPECT_GT(solver.last_stats().fallback_directions, 0);
      EXPECT_NE(rep.detail.find("Jacobi fallback"), std::string::npos) << rep.detail;
    }
  }
}

TEST(Dcdm, WithoutFallbackAFailedDirectionStopsWithANamedReasonAndFiniteX) {
  Problem p(box_laplacian(5, 5, 5, {true, false, false, false, false, false}));
  DcdmOptions o;
  o.fallback = false;
  {
    DcdmSolver solver(std::make_shared<BrokenOperator>(p.a.rows, BrokenOperator::Mode::NaN, 3), o);
    solver.setup(p.view());
    Vector x(p.b.size());
    const auto rep = solver.solve(p.b, x, SolveOptions{});
    EXPECT_EQ(rep.reason, SolveReason::NaN);
    EXPECT_EQ(rep.iterations, 2);
    EXPECT_EQ(count_non_finite(x), 0);
    EXPECT_NEAR(rep.final_residual, rep.residual_history.back(), 1e-9 * rep.rhs_norm);
    EXPECT_NE(format_reason_line(rep).find("DIVERGED_NANORINF"), std::string::npos);
  }
  {
    DcdmSolver solver(std::make_shared<BrokenOperator>(p.a.rows, BrokenOperator::Mode::Zero, 1), o);
    solver.setup(p.view());
    Vector x(p.b.size());
    const auto rep = solver.solve(p.b, x, SolveOptions{});
    EXPECT_EQ(rep.reason, SolveReason::Breakdown);
    EXPECT_EQ(rep.iterations, 0);
    EXPECT_NE(rep.detail.find("curvature"), std::string::npos) << rep.detail;
  }
}

TEST(Dcdm, NetworkGetsTheUnitResidualALinearMapTheResidualItself) {
  // Records the norm of every input; behaves like the Jacobi preconditioner.
  class Recorder final : public LinearOperator {
   public:
    Recorder(const CsrMatrix& a, bool linear) : d_(a.diagonal()), linear_(linear) {}
    std::int64_t size() const override { return static_cast<std::int64_t>(d_.size()); }
    bool is_linear() const override { return linear_; }
    void apply(dcdm::span<const double> x, dcdm::span<double> y) const override {
      norms.push_back(norm2(x));
      for (std::size_t i = 0; i < d_.size(); ++i) y[i] = x[i] / d_[i];
    }
    mutable std::vector<double> norms;

   private:
    std::vector<double> d_;
    bool linear_;
  };
  Problem p(box_laplacian(8, 7, 6, {true, false, false, false, false, false}));
  for (const bool linear : {false, true}) {
    SCOPED_TRACE(linear ? "linear" : "network");
    auto gen = std::make_shared<Recorder>(p.a, linear);
    DcdmSolver solver(gen);
    solver.setup(p.view());
    Vector x(p.b.size());
    SolveOptions opt;
    opt.rtol = 1e-8;
    const auto rep = solver.solve(p.b, x, opt);
    ASSERT_TRUE(rep.converged()) << format_reason_line(rep);
    ASSERT_EQ(gen->norms.size(), static_cast<std::size_t>(rep.iterations));
    for (std::size_t k = 0; k < gen->norms.size(); ++k)
      EXPECT_NEAR(gen->norms[k], linear ? rep.residual_history[k] : 1.0, 1e-12 * (linear ? rep.residual_history[k] : 1.0)) << k;
  }
}

TEST(Dcdm, StagnationIsDetected) {
  // A valid but nearly useless generator: one coordinate direction per call (a single
  // Gauss-Seidel-like cell update on 8000 unknowns gains far less than 0.1% per step).
  class CoordinateOperator final : public LinearOperator {
   public:
    explicit CoordinateOperator(std::int64_t n) : n_(n) {}
    std::int64_t size() const override { return n_; }
    void apply(dcdm::span<const double>, dcdm::span<double> y) const override {
      std::fill(y.begin(), y.end(), 0.0);
      y[(next_++ * 7919) % n_] = 1.0;
    }

   private:
    std::int64_t n_;
    mutable std::int64_t next_ = 0;
  };
  Problem p(box_laplacian(20, 20, 20, {true, false, false, false, false, false}));
  {
    DcdmOptions o;
    o.weak_fallback = false;  // the guard below would rescue it
    DcdmSolver solver(std::make_shared<CoordinateOperator>(p.a.rows), o);
    solver.setup(p.view());
    Vector x(p.b.size());
    SolveOptions opt;
    opt.rtol = 1e-12;
    opt.max_iterations = 100000;
    opt.stagnation_window = 5;
    const auto rep = solver.solve(p.b, x, opt);
    EXPECT_EQ(rep.reason, SolveReason::Stagnation) << format_reason_line(rep);
    EXPECT_EQ(rep.iterations, 5);
    EXPECT_EQ(count_non_finite(x), 0);
    EXPECT_LT(rep.final_residual, rep.initial_residual);
  }
  {
    // With the weak-direction guard (the default) every iteration whose generator direction
    // gains less than the Jacobi direction takes the Jacobi one: the solve converges, at
    // about Jacobi-PCG's pace, and says how often the generator lost.
    DcdmSolver solver(std::make_shared<CoordinateOperator>(p.a.rows));
    solver.setup(p.view());
    Vector x(p.b.size());
    SolveOptions opt;
    opt.rtol = 1e-8;
    opt.max_iterations = 2000;
    const auto rep = solver.solve(p.b, x, opt);
    ASSERT_TRUE(rep.converged()) << format_reason_line(rep);
    Vector ax(x.size());
    p.a.multiply(x, ax);
    double rr = 0;
    for (std::size_t i = 0; i < ax.size(); ++i) rr += (p.b[i] - ax[i]) * (p.b[i] - ax[i]);
    EXPECT_LE(std::sqrt(rr), 1.01e-8 * norm2(p.b));
    EXPECT_GT(solver.last_stats().fallback_weak, 0);
    EXPECT_EQ(solver.last_stats().fallback_weak, solver.last_stats().fallback_directions);
    EXPECT_NE(rep.detail.find("weaker than Jacobi"), std::string::npos) << rep.detail;
  }
}

TEST(Dcdm, ZeroRightHandSideAndBadInput) {
  Problem p(box_laplacian(4, 4, 4, {true, true, true, true, true, true}));
  DcdmSolver solver(std::make_shared<IdentityOperator>(p.a.rows));
  solver.setup(p.view());
  Vector b(p.b.size(), 0.0), x(p.b.size(), 5.0);
  auto rep = solver.solve(b, x, SolveOptions{});
  EXPECT_TRUE(rep.converged());
  EXPECT_EQ(rep.iterations, 0);
  for (double v : x) EXPECT_EQ(v, 0.0);
  b[3] = std::numeric_limits<double>::infinity();
  EXPECT_THROW(solver.solve(b, x, SolveOptions{}), InputError);
  DcdmSolver wrong(std::make_shared<IdentityOperator>(p.a.rows + 1));
  EXPECT_THROW(wrong.setup(p.view()), InputError);
  // The float lean path reads b in place of r until its first step: a stop before any step
  // still returns x = 0 and the true residual ||b||, and a one-step solve x = alpha q.
  DcdmOptions o;
  o.weak_fallback = false;
  o.vector_precision = DcdmOptions::VectorPrecision::Float;
  DcdmSolver lean(std::make_shared<IdentityOperator>(p.a.rows), o);
  lean.setup(p.view());
  b.assign(b.size(), 0.0);
  x.assign(x.size(), 5.0);
  rep = lean.solve(b, x, SolveOptions{});
  EXPECT_TRUE(rep.converged());
  EXPECT_EQ(rep.iterations, 0);
  EXPECT_EQ(rep.final_residual, 0.0);
  for (double v : x) EXPECT_EQ(v, 0.0);
  SolveOptions capped;
  capped.max_iterations = 0;
  x.assign(x.size(), 5.0);
  rep = lean.solve(p.b, x, capped);
  EXPECT_EQ(rep.iterations, 0);
  EXPECT_DOUBLE_EQ(rep.final_residual, norm2(p.b));
  for (double v : x) EXPECT_EQ(v, 0.0);
  capped.max_iterations = 1;
  x.assign(x.size(), 5.0);
  rep = lean.solve(p.b, x, capped);
  EXPECT_EQ(rep.iterations, 1);
  // The identity generator's direction is b rounded to float: x = alpha q, alpha = q.b / q.Aq.
  Vector q(p.b.size()), aq(p.b.size()), ax(p.b.size()), res(p.b.size());
  for (std::size_t i = 0; i < q.size(); ++i) q[i] = static_cast<double>(static_cast<float>(p.b[i]));
  p.a.multiply(q, aq);
  const double alpha = dot(q, p.b) / dot(q, aq);
  for (std::size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(x[i], alpha * q[i], 1e-12 * std::abs(alpha * q[i])) << i;
  p.a.multiply(x, ax);
  for (std::size_t i = 0; i < res.size(); ++i) res[i] = p.b[i] - ax[i];
  EXPECT_NEAR(rep.final_residual, norm2(res), 1e-10 * norm2(p.b));
}
