#include <algorithm>
#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "dcdm/solve.hpp"

namespace dcdm {

const char* to_string(SolveReason r) {
  switch (r) {
    case SolveReason::ConvergedRtol: return "converged-rtol";
    case SolveReason::ConvergedAtol: return "converged-atol";
    case SolveReason::MaxIterations: return "max-iterations";
    case SolveReason::Breakdown: return "breakdown";
    case SolveReason::Stagnation: return "stagnation";
    case SolveReason::NaN: return "nan";
    case SolveReason::IndefiniteMatrix: return "indefinite-matrix";
    case SolveReason::IndefinitePreconditioner: return "indefinite-preconditioner";
  }
  return "unknown";
}

const char* petsc_name(SolveReason r) {
  switch (r) {
    case SolveReason::ConvergedRtol: return "CONVERGED_RTOL";
    case SolveReason::ConvergedAtol: return "CONVERGED_ATOL";
    case SolveReason::MaxIterations: return "DIVERGED_ITS";
    case SolveReason::Breakdown: return "DIVERGED_BREAKDOWN";
    case SolveReason::Stagnation: return "DIVERGED_STAGNATION";  // not a PETSc reason
    case SolveReason::NaN: return "DIVERGED_NANORINF";
    case SolveReason::IndefiniteMatrix: return "DIVERGED_INDEFINITE_MAT";
    case SolveReason::IndefinitePreconditioner: return "DIVERGED_INDEFINITE_PC";
  }
  return "UNKNOWN";
}

std::string format_monitor_line(const IterationInfo& info) {
  return fmt::format("{:4d} KSP Residual norm {:.6e} (relative {:.3e})", info.iteration,
                     info.residual_norm, info.relative_residual);
}

std::string format_reason_line(const SolveReport& report) {
  const char* name = petsc_name(report.reason);
  std::string line = fmt::format("Linear solve {} due to {} iterations {}",
                                 report.converged() ? "converged" : "did not converge", name,
                                 report.iterations);
  if (!report.detail.empty()) line += fmt::format(" ({})", report.detail);
  return line;
}

SolveReport IterativeSolver::solve(dcdm::span<const double> b, dcdm::span<double> x, const SolveOptions& options) {
  double largest = 0.0;
  const double* pb = b.data();
  const std::int64_t n = static_cast<std::int64_t>(b.size());
  // NaN: not scaled (the method reports it); a NaN never wins the comparison.
#pragma omp parallel for simd reduction(max : largest) schedule(static) if (n >= 65536)
  for (std::int64_t i = 0; i < n; ++i) largest = std::abs(pb[i]) > largest ? std::abs(pb[i]) : largest;
  int e = 0;
  if (largest > 0.0 && std::isfinite(largest)) std::frexp(largest, &e);  // largest = m 2^e, m in [0.5, 1)
  if (e >= -400 && e <= 400) return solve_scaled(b, x, options);
  // b * 2^-e has its largest magnitude in [0.5, 1): every power of two is exact unless a tiny
  // entry of a huge b falls below the smallest double, where it is 0 to b's precision anyway.
  std::vector<double> scaled(b.size());
  for (std::size_t i = 0; i < b.size(); ++i) scaled[i] = std::ldexp(b[i], -e);
  SolveOptions o = options;
  o.atol = std::ldexp(options.atol, -e);
  if (options.use_initial_guess)
    for (double& v : x) v = std::ldexp(v, -e);
  if (options.monitor)
    o.monitor = [&options, e](const IterationInfo& info) {
      IterationInfo back = info;
      back.residual_norm = std::ldexp(info.residual_norm, e);
      options.monitor(back);
    };
  SolveReport report = solve_scaled(scaled, x, o);
  for (double& v : x) v = std::ldexp(v, e);
  report.rhs_norm = std::ldexp(report.rhs_norm, e);
  report.initial_residual = std::ldexp(report.initial_residual, e);
  report.final_residual = std::ldexp(report.final_residual, e);
  for (double& r : report.residual_history) r = std::ldexp(r, e);
  return report;
}

}  // namespace dcdm
