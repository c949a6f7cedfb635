#pragma once
// The Deep Conjugate Direction Method (Kaneda et al., ICML 2023; README "The method"):
// a conjugate-direction iteration whose search directions come from a direction generator
// f (a network, a preconditioner, the identity...), applied to the normalised residual:
//
//   q = f(r / ||r||);  q <- q - sum_j (q.Ap_j)/(p_j.Ap_j) p_j  over the k latest directions;
//   alpha = (q.r)/(q.Aq);  x += alpha q;  r -= alpha Aq.
//
// The generator may be nonlinear, so nothing guarantees a useful direction: a direction with
// non-positive curvature, a NaN, or one that vanishes after A-orthogonalisation (or is
// orthogonal to r) is replaced for that iteration by the Jacobi-preconditioned residual
// (counted and reported in SolveReport::detail), and so is a generator direction that reduces
// the A-norm error less than the Jacobi direction would (DcdmOptions::weak_fallback); if the
// fallback fails too the solve stops with a named reason. The returned x is always finite.
//
// Plain C++: no LibTorch here. Networks are wrapped as generators in src/learn.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "dcdm/linalg.hpp"
#include "dcdm/solve.hpp"

namespace dcdm {

struct DcdmOptions {
  int k = 2;  // directions kept for A-orthogonalisation (0 = plain line search along f(r))
  // Replace a failed generator direction by the Jacobi-preconditioned residual (else stop).
  bool fallback = true;
  // A generator direction is "vanished" when A-orthogonalisation removes all but this
  // fraction of its A-norm squared, or when |q.r| <= this * ||q|| ||r||.
  double vanish_tolerance = 1e-12;
  // Also build the Jacobi direction every iteration and take it instead of the generator's
  // when it reduces the A-norm error more ((q.r)^2 / q.Aq, both A-orthogonalised). A
  // nonlinear generator can otherwise lock up: a direction with no gain leaves r, hence the
  // next direction, unchanged, and the residual stays flat for ever. Costs one mat-vec and
  // one Jacobi application per iteration (negligible beside a network).
  bool weak_fallback = true;
  // Without the weak-direction guard, A-orthogonalise and take the step in one pass over the
  // vectors: the step length comes from the first pass's sums (q.Aq less the kept directions'
  // parts; q.r, as r is orthogonal to the kept directions), the pass computes the exact
  // values too, and a step off by more than fused_step_tolerance (relative) is corrected
  // (one more pass). false = the separate passes (for comparisons; the iterates agree to
  // rounding).
  bool fused_step = true;
  double fused_step_tolerance = 1e-3;
  // Without the weak-direction guard: A-orthogonalise the new direction q before its mat-vec
  // (q -= sum_j beta_j p_j with beta_j = q.Ap_j / p_j.Ap_j, then A q), so that A q can be
  // written into the buffer of the kept pair that retires this iteration. The iteration then
  // holds r, q and the k kept pairs: one vector less than the fused step (which needs A q
  // before the orthogonalisation), at one more pass over q. q.Aq is computed exactly; the
  // iterates agree with the other paths to rounding. false = fused_step's paths.
  bool orthogonalise_first = true;
  // On the orthogonalise-first path: the current direction, its image and the kept pairs in
  // float (x, r, the generator's output and every sum stay double); a step then moves about a
  // quarter fewer bytes. A q rounded to float lets the updated residual drift from b - A x (by
  // about 1e-8 of ||b|| with the learned cycle, measured), so convergence is confirmed on the true
  // residual b - A x, and the iteration goes on from it where the drift had hidden a residual
  // above the target. Auto: float where the target max(rtol ||b||, atol) is at least
  // kSingleVectorsMinRtol ||b||, double for tighter ones (where float cost the learned cycle an
  // iteration at 1e-8 and two or three at 1e-10). Ignored with weak_fallback (double paths only).
  enum class VectorPrecision { Double, Float, Auto };
  VectorPrecision vector_precision = VectorPrecision::Double;
  static constexpr double kSingleVectorsMinRtol = 1e-7;
};

// Builds the generator at setup() from what the solver sees (e.g. a network generator needs
// the domain, a V-cycle needs the domain or the matrix). Throws InputError when the system
// lacks what it needs.
using GeneratorFactory =
    std::function<std::unique_ptr<LinearOperator>(const LinearSystemView& system)>;

// Counts of the last solve (the same information is summarised in SolveReport::detail).
struct DcdmStats {
  int generator_directions = 0;  // iterations that used the generator's direction
  int fallback_directions = 0;   // iterations that used the Jacobi fallback
  int fallback_nan = 0;          // ... because the generator's direction had NaN/Inf
  int fallback_curvature = 0;    // ... because q.Aq <= 0
  int fallback_vanished = 0;     // ... because it vanished after A-orthogonalisation
  int fallback_weak = 0;         // ... because the Jacobi direction gained more (weak_fallback)
  int true_residual_updates = 0;
  // float vectors: times the updated residual met the target and b - A x did not
  // (the iteration then went on from b - A x)
  int residual_replacements = 0;
  bool single_precision_vectors = false;  // whether the last solve kept its directions in float
  int fused_steps = 0;             // iterations whose step was fused with the A-orthogonalisation
  int fused_corrections = 0;       // ... of which the step length needed the correcting pass
  double generator_seconds = 0.0;  // time spent inside the generator
};

class DcdmSolver final : public IterativeSolver {
 public:
  // A fixed generator (its size must match the system's at setup).
  DcdmSolver(std::shared_ptr<const LinearOperator> generator, DcdmOptions options = {},
             std::string name = "dcdm");
  // A generator built per system at setup().
  DcdmSolver(GeneratorFactory factory, DcdmOptions options = {}, std::string name = "dcdm");

  std::string name() const override { return name_; }
  void setup(const LinearSystemView& system) override;
  SolveReport solve_scaled(dcdm::span<const double> b, dcdm::span<double> x,
                    const SolveOptions& options) override;

  const DcdmOptions& options() const { return options_; }
  const DcdmStats& last_stats() const { return stats_; }

 private:
  std::shared_ptr<const LinearOperator> generator_;
  GeneratorFactory factory_;
  DcdmOptions options_;
  std::string name_;
  LinearSystemView system_;
  std::unique_ptr<LinearOperator> fallback_;  // Jacobi; null = plain residual
  double setup_seconds_ = 0.0;
  DcdmStats stats_;
};

// The identity generator (DCDM with it = steepest descent with k-term conjugation).
class IdentityOperator final : public LinearOperator {
 public:
  explicit IdentityOperator(std::int64_t n) : n_(n) {}
  std::int64_t size() const override { return n_; }
  void apply(dcdm::span<const double> x, dcdm::span<double> y) const override;

 private:
  std::int64_t n_;
};

}  // namespace dcdm
