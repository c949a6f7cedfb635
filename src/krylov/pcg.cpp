// The one preconditioned conjugate-gradient loop used by CG, PCG (Jacobi, IC(0), MIC(0),
// multigrid) and deflated PCG.
#include <chrono>
#include <cmath>
#include <limits>
#include <optional>

#include <fmt/format.h>

#include "dcdm/error.hpp"
#include "dcdm/krylov.hpp"
#include "dcdm/precond.hpp"
#include "../linalg/block_ops.hpp"
#include "../linalg/uninitialised.hpp"

namespace dcdm {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Restarts from the true residual allowed when the recursive residual claims convergence
// but the true one does not (the recursive residual drifts by rounding).
constexpr int kMaxResidualReplacements = 3;

}  // namespace

SolveReport pcg_solve(const LinearOperator& a, const LinearOperator* m,
                      const std::function<void(dcdm::span<double>)>& project,
                      dcdm::span<const double> b_in, dcdm::span<double> x,
                      const SolveOptions& options, const std::string& method,
                      const DeflationSpace* deflation) {
  const auto t0 = Clock::now();
  const std::int64_t n = a.size();
  if (static_cast<std::int64_t>(b_in.size()) != n || static_cast<std::int64_t>(x.size()) != n)
    throw InputError(fmt::format("{}: right-hand side has {} entries and x {}, the operator {}",
                                 method, b_in.size(), x.size(), n));
  if (m && m->size() != n)
    throw InputError(fmt::format("{}: preconditioner size {} differs from the operator's {}",
                                 method, m->size(), n));
  if (options.max_iterations < 0) throw InputError("max iterations must be >= 0");

  SolveReport rep;
  rep.method = method;
  auto finish = [&](SolveReason reason, std::string detail) {
    rep.reason = reason;
    rep.detail = std::move(detail);
    rep.solve_seconds = seconds_since(t0);
    return rep;
  };

  // b: checked, and projected onto range(A) in a copy only where the system is singular (a
  // copy is 8 bytes a cell that a regular system does not need).
  // A finite norm means finite entries: the count (one more pass) only where it is not, or
  // before a projection would spread a NaN.
  const double norm_in = project ? 0.0 : norm2(b_in);
  if (!std::isfinite(norm_in) || project)
    if (const auto bad = count_non_finite(b_in); bad > 0) {
      fill(x, 0.0);
      return finish(SolveReason::NaN, fmt::format("right-hand side has {} non-finite entries", bad));
    }
  Vector b_projected;
  dcdm::span<const double> b = b_in;
  if (project) {
    b_projected.assign(b_in.begin(), b_in.end());
    project(b_projected);
    b = b_projected;
  }
  if (!options.use_initial_guess) {
    fill(x, 0.0);
  } else if (const auto bad = count_non_finite(x); bad > 0) {
    fill(x, 0.0);
    return finish(SolveReason::NaN, fmt::format("initial guess has {} non-finite entries", bad));
  }
  rep.rhs_norm = project ? norm2(b) : norm_in;
  const double tol = std::max(options.rtol * rep.rhs_norm, options.atol);

  // Each is first written whole by a parallel loop (b's copy or the true residual, the
  // preconditioner, z's copy, the mat-vec), so none is zeroed first.
  using Work = detail::UninitialisedVector<double>;
  Work r(static_cast<std::size_t>(n)), z(static_cast<std::size_t>(n)), p(static_cast<std::size_t>(n)),
      ap(static_cast<std::size_t>(n));
  Vector coeff;
  // r = b - A x, returning its norm (one pass where the operator fuses them).
  auto true_residual = [&]() { return std::sqrt(a.residual_dot(x, b, r)); };
  auto converged_reason = [&](double rnorm) {
    return rnorm <= options.rtol * rep.rhs_norm ? SolveReason::ConvergedRtol
                                                : SolveReason::ConvergedAtol;
  };
  auto precondition = [&]() {
    if (m)
      m->apply(r, z);
    else
      copy(r, z);
    if (project) project(z);
  };
  // Direction from z: p = z + beta p, minus its A-projection on the deflation space.
  auto deflate_direction = [&]() {
    if (deflation) deflation->subtract_a_projection(z, p);
  };

  // From x = 0 the residual is b itself (A 0 = 0 exactly): no mat-vec.
  double rnorm = rep.rhs_norm;
  if (options.use_initial_guess) rnorm = true_residual();
  else copy(b, r);
  if (deflation && std::isfinite(rnorm) && rnorm > tol) {
    // x += W E^{-1} W^T r: the new residual is orthogonal to W.
    Vector corr(n);
    deflation->correction(r, corr);
    axpy(1.0, corr, x);
    rnorm = true_residual();
  }
  rep.initial_residual = rnorm;
  rep.residual_history.push_back(rnorm);
  auto monitor = [&](int it, double res) {
    if (options.monitor)
      options.monitor(IterationInfo{it, res, rep.rhs_norm > 0 ? res / rep.rhs_norm : res});
  };
  monitor(0, rnorm);
  auto final_true = [&]() { rep.final_residual = true_residual(); };
  if (!std::isfinite(rnorm)) {
    fill(x, 0.0);
    final_true();
    return finish(SolveReason::NaN, "initial residual is not finite (operator produced NaN/Inf)");
  }
  if (rnorm <= tol) {
    rep.final_residual = rnorm;
    return finish(converged_reason(rnorm), "");
  }

  // Stagnation: no 1e-3 relative gain on the best residual for `window` iterations.
  double best = rnorm;
  int best_it = 0;
  int replacements = 0;

  precondition();
  double rz = dot(r, z);
  auto check_rz = [&](double value, int it) -> std::optional<SolveReport> {
    if (!std::isfinite(value)) {
      final_true();
      return finish(SolveReason::NaN, fmt::format("r.z = {} at iteration {}", value, it));
    }
    if (value <= 0.0) {
      final_true();
      return finish(SolveReason::IndefinitePreconditioner,
                    fmt::format("r.z = {:.3e} <= 0 at iteration {}: preconditioner not positive "
                                "definite", value, it));
    }
    return std::nullopt;
  };
  if (auto bad = check_rz(rz, 0)) return *bad;
  copy(z, p);
  deflate_direction();

  double pap_dot[1];
  for (int it = 1; it <= options.max_iterations; ++it) {
    a.apply_dot(p, ap, {}, pap_dot);  // A p and p . A p in one pass where the operator streams
    const double pap = pap_dot[0];
    if (!std::isfinite(pap)) {
      final_true();
      return finish(SolveReason::NaN, fmt::format("p.Ap = {} at iteration {}", pap, it));
    }
    if (pap <= 0.0) {
      final_true();
      return finish(SolveReason::IndefiniteMatrix,
                    fmt::format("p.Ap = {:.3e} <= 0 at iteration {}: matrix not positive definite "
                                "on the Krylov space", pap, it));
    }
    const double alpha = rz / pap;
    if (options.true_residual_every > 0 && it % options.true_residual_every == 0) {
      axpy(alpha, p, x);
      rnorm = true_residual();
    } else {
      rnorm = std::sqrt(detail::step_and_norm(alpha, p.data(), ap.data(), x.data(), r.data(), n));
    }
    rep.iterations = it;
    if (!std::isfinite(rnorm)) {
      axpy(-alpha, p, x);  // p and alpha were finite: undo the step
      rep.residual_history.push_back(rnorm);
      final_true();
      return finish(SolveReason::NaN, fmt::format("residual norm {} at iteration {}", rnorm, it));
    }
    rep.residual_history.push_back(rnorm);
    monitor(it, rnorm);

    if (rnorm <= tol) {
      // Confirm with the true residual; restart from it if the recursion drifted.
      const double true_norm = true_residual();
      if (true_norm <= tol || replacements >= kMaxResidualReplacements) {
        rep.final_residual = true_norm;
        rep.residual_history.back() = true_norm;
        if (true_norm <= tol) return finish(converged_reason(true_norm), "");
        return finish(SolveReason::Stagnation,
                      fmt::format("recursive residual converged but the true residual {:.3e} "
                                  "stays above the tolerance {:.3e}", true_norm, tol));
      }
      ++replacements;
      rnorm = true_norm;
      rep.residual_history.back() = rnorm;
      precondition();
      rz = dot(r, z);
      if (auto bad = check_rz(rz, it)) return *bad;
      copy(z, p);
      deflate_direction();
      continue;
    }
    if (rnorm < best * (1.0 - 1e-3)) {
      best = rnorm;
      best_it = it;
    } else if (options.stagnation_window > 0 &&
               it - best_it >= std::max(options.stagnation_window, 2 * best_it)) {
      // CG residual norms plateau legitimately (the A-norm error keeps falling), for up to
      // about as long as it took to get there: the window is at least 2 * best_it.
      final_true();
      return finish(SolveReason::Stagnation,
                    fmt::format("no 1e-3 relative gain over {} iterations (best {:.3e} at "
                                "iteration {})", options.stagnation_window, best, best_it));
    }

    precondition();
    const double rz_new = dot(r, z);
    if (auto bad = check_rz(rz_new, it)) return *bad;
    const double beta = rz_new / rz;
    rz = rz_new;
    xpay(z, beta, p);  // p = z + beta p
    deflate_direction();
  }
  final_true();
  if (rep.final_residual <= tol) return finish(converged_reason(rep.final_residual), "");
  return finish(SolveReason::MaxIterations,
                fmt::format("relative residual {:.3e} after {} iterations",
                            rep.relative_residual(), rep.iterations));
}

PcgSolver::PcgSolver(std::string name, std::unique_ptr<Preconditioner> preconditioner)
    : name_(std::move(name)), preconditioner_(std::move(preconditioner)) {}
PcgSolver::~PcgSolver() = default;

void PcgSolver::setup(const LinearSystemView& system) {
  if (!system.op) throw InputError(name_ + ": the system has no operator");
  const auto t0 = Clock::now();
  system_ = system;
  if (preconditioner_) preconditioner_->setup(system);
  setup_seconds_ = seconds_since(t0);
}

SolveReport PcgSolver::solve_scaled(dcdm::span<const double> b, dcdm::span<double> x,
                             const SolveOptions& options) {
  if (!system_.op) throw Error(name_ + ": solve() called before setup()");
  SolveReport rep = pcg_solve(*system_.op, preconditioner_.get(), system_.project_range, b, x,
                              options, name_);
  rep.setup_seconds = setup_seconds_;
  return rep;
}

}  // namespace dcdm
