#include <algorithm>
#include <cctype>

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
  }
  return "unknown";
}

std::string format_monitor_line(const IterationInfo& info) {
  return fmt::format("{:4d} KSP Residual norm {:.6e} (relative {:.3e})", info.iteration,
                     info.residual_norm, info.relative_residual);
}

std::string format_reason_line(const SolveReport& report) {
  std::string name = to_string(report.reason);
  std::replace(name.begin(), name.end(), '-', '_');
  for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (!report.converged() && report.reason != SolveReason::MaxIterations) name = "DIVERGED_" + name;
  std::string line = fmt::format("Linear solve {} due to {} iterations {}",
                                 report.converged() ? "converged" : "did not converge", name,
                                 report.iterations);
  if (!report.detail.empty()) line += fmt::format(" ({})", report.detail);
  return line;
}

}  // namespace dcdm
