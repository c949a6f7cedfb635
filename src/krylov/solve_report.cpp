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

}  // namespace dcdm
