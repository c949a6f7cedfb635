#pragma once
// The one interface shared by every iterative solver (CG, PCG, DPCG, MGPCG, DCDM, peers).
#include <functional>
#include <string>
#include <vector>

namespace dcdm {

/// Why a solve stopped. The reason lines (format_reason_line) use PETSc's KSPConvergedReason
/// names where PETSc has the same reason: CONVERGED_RTOL, CONVERGED_ATOL, DIVERGED_ITS,
/// DIVERGED_BREAKDOWN, DIVERGED_INDEFINITE_MAT, DIVERGED_INDEFINITE_PC, DIVERGED_NANORINF;
/// stagnation, which PETSc does not detect, is DIVERGED_STAGNATION.
enum class SolveReason {
  ConvergedRtol,   ///< ||b - Ax|| <= rtol ||b||
  ConvergedAtol,   ///< ||b - Ax|| <= atol
  MaxIterations,   ///< the iteration cap (DIVERGED_ITS)
  Breakdown,       ///< no usable search direction (e.g. a direction with no A-orthogonal part)
  Stagnation,      ///< no progress over a window of iterations
  NaN,             ///< a NaN or Inf appeared; the returned x is the last finite iterate
  IndefiniteMatrix,          ///< a direction with p.Ap <= 0: A is not positive definite
  IndefinitePreconditioner,  ///< r.z <= 0: the preconditioner is not positive definite
};
/// "converged-rtol", "max-iterations", "indefinite-matrix", ... (JSON reports).
const char* to_string(SolveReason r);
/// PETSc's name for the reason: "CONVERGED_RTOL", "DIVERGED_ITS", ... (see SolveReason).
const char* petsc_name(SolveReason r);
inline bool is_converged(SolveReason r) {
  return r == SolveReason::ConvergedRtol || r == SolveReason::ConvergedAtol;
}

struct IterationInfo {
  int iteration;            // 0 = initial residual
  double residual_norm;     // ||r|| (recursive, or true where recomputed)
  double relative_residual; // ||r|| / ||b||
};

struct SolveOptions {
  double rtol = 1e-6;       // relative to ||b||
  double atol = 0.0;
  int max_iterations = 1000;
  bool use_initial_guess = false;  // else x is zeroed before solving
  int true_residual_every = 0;     // recompute r = b - Ax every k iterations (0 = never)
  int stagnation_window = 50;      // iterations without a 1e-3 relative gain -> stagnation (0 = off)
  std::function<void(const IterationInfo&)> monitor;
};

struct SolveReport {
  std::string method;
  SolveReason reason = SolveReason::MaxIterations;
  std::string detail;        // human-readable context for the reason (e.g. "p.Ap = -1e-3 at it 7")
  int iterations = 0;
  double initial_residual = 0.0;  // ||b - A x0||
  double rhs_norm = 0.0;          // ||b||
  double final_residual = 0.0;    // ||b - A x|| recomputed in double at the end
  std::vector<double> residual_history;  // ||r_k||, k = 0..iterations
  double setup_seconds = 0.0;
  double solve_seconds = 0.0;

  bool converged() const { return is_converged(reason); }
  double relative_residual() const { return rhs_norm > 0 ? final_residual / rhs_norm : final_residual; }
};

// "  12 KSP Residual norm 3.456e-04" (PETSc -ksp_monitor style)
std::string format_monitor_line(const IterationInfo& info);
// "Linear solve converged due to CONVERGED_RTOL iterations 23" /
// "Linear solve did not converge due to DIVERGED_ITS iterations 1000" (PETSc -ksp_converged_reason)
std::string format_reason_line(const SolveReport& report);

}  // namespace dcdm

#include <cstdint>
#include <memory>
#include "dcdm/span.hpp"

namespace dcdm {

class LinearOperator;
struct CsrMatrix;
struct Domain;

// What a solver may look at when it is set up. `op` is always present; grid-aware methods
// (multigrid, networks) need `domain`; factorisation-based ones (IC(0)) need `matrix`.
// Vectors live on `op`'s index space. For grid systems that is the full grid (nx*ny*nz,
// x fastest) with zeros outside fluid cells, as in the reference data.
struct LinearSystemView {
  const LinearOperator* op = nullptr;
  const CsrMatrix* matrix = nullptr;
  const Domain* domain = nullptr;
  // Projects a vector onto the range of A (zero mean per singular fluid component), or
  // null when A is non-singular. Solvers apply it to b and to each direction.
  std::function<void(dcdm::span<double>)> project_range;
};

// Eigen-style: setup (timed as setup) once per matrix, then solve for any number of b.
class IterativeSolver {
 public:
  virtual ~IterativeSolver() = default;
  virtual std::string name() const = 0;
  // Throws InputError when the system lacks what the method needs (e.g. no domain).
  virtual void setup(const LinearSystemView& system) = 0;
  // x holds the initial guess when options.use_initial_guess, else it is zeroed. A b whose
  // largest magnitude lies outside [2^-400, 2^400] is solved as b * 2^-e (exact; e from its
  // largest entry), and x, the norms and the history are scaled back, so that no norm or dot
  // product underflows to 0 ("converged" with x = 0) or overflows to inf for any finite b. The
  // method itself is solve_scaled.
  SolveReport solve(dcdm::span<const double> b, dcdm::span<double> x, const SolveOptions& options);

 protected:
  virtual SolveReport solve_scaled(dcdm::span<const double> b, dcdm::span<double> x,
                                   const SolveOptions& options) = 0;
};

}  // namespace dcdm
