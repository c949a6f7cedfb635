#pragma once
// Krylov methods behind the IterativeSolver interface: one preconditioned-CG loop (CG is PCG
// with the identity), deflated PCG, and Lanczos with full re-orthogonalisation.
//
// Conventions shared by every method here:
// - b is copied and, for singular systems (LinearSystemView::project_range set), projected
//   onto range(A); every preconditioned residual is projected too, so iterates stay in the
//   range and the answer is the minimum-norm-like representative up to the null space.
// - Entries outside the fluid (all-zero rows of a full-grid system) stay exactly zero as long
//   as the operator and the preconditioner keep them zero, which all of ours do.
// - Breakdown detection: p.Ap <= 0 (Breakdown), r.z <= 0 with r != 0 (Breakdown: the
//   preconditioner is not SPD), a non-finite scalar (NaN; x is the last finite iterate),
//   no 1e-3 relative gain on the best residual over max(stagnation_window, 2 * iteration of
//   that best) iterations (Stagnation). The window grows with the run because CG residual
//   norms plateau legitimately on hard Poisson problems (seen on bunny and plume 64^3 with
//   CG, Jacobi and deflated PCG: 60+ iterations without gain, then steady convergence).
// - When the recursive residual meets the tolerance, the true residual b - Ax is recomputed;
//   if it does not meet the tolerance the iteration restarts from it (at most a few times).
//   SolveReport::final_residual is always the true ||b - Ax|| recomputed in double.
#include <functional>
#include <memory>
#include "dcdm/span.hpp"
#include <string>
#include <vector>

#include "dcdm/linalg.hpp"
#include "dcdm/solve.hpp"

namespace dcdm {

class Preconditioner;

// A deflation subspace for PCG: columns W (n x k, column-major), A W, and the Cholesky
// factor of E = W^T A W. Built by make_deflation; columns with a non-positive pivot
// (numerically dependent) are dropped.
struct DeflationSpace {
  std::int64_t n = 0;
  int k = 0;
  std::vector<double> w;   // n*k, column j at w[j*n]
  std::vector<double> aw;  // n*k
  std::vector<double> e_chol;  // k*k lower Cholesky factor of W^T A W (row-major)

  // y = W E^{-1} W^T v  (the coarse correction that makes the residual orthogonal to W).
  void correction(dcdm::span<const double> v, dcdm::span<double> y) const;
  // y -= W E^{-1} (AW)^T v
  void subtract_a_projection(dcdm::span<const double> v, dcdm::span<double> y) const;
};
DeflationSpace make_deflation(const LinearOperator& a, std::vector<double> w, int k);

// The PCG loop. `m` null = identity (plain CG). `project` null when A is non-singular.
// `deflation` null = no deflation. `method` names the report.
SolveReport pcg_solve(const LinearOperator& a, const LinearOperator* m,
                      const std::function<void(dcdm::span<double>)>& project,
                      dcdm::span<const double> b, dcdm::span<double> x, const SolveOptions& options,
                      const std::string& method, const DeflationSpace* deflation = nullptr);

// CG / PCG with a preconditioner that is set up from the system (Eigen style: setup once).
class PcgSolver final : public IterativeSolver {
 public:
  // `preconditioner` null = plain CG.
  PcgSolver(std::string name, std::unique_ptr<Preconditioner> preconditioner);
  ~PcgSolver() override;
  std::string name() const override { return name_; }
  void setup(const LinearSystemView& system) override;
  SolveReport solve_scaled(dcdm::span<const double> b, dcdm::span<double> x,
                    const SolveOptions& options) override;
  const Preconditioner* preconditioner() const { return preconditioner_.get(); }

 private:
  std::string name_;
  std::unique_ptr<Preconditioner> preconditioner_;
  LinearSystemView system_;
  double setup_seconds_ = 0.0;
};

std::unique_ptr<IterativeSolver> make_cg_solver();

// ---- Lanczos with full re-orthogonalisation ----
struct LanczosOptions {
  // Applied to the start vector and to every new Lanczos vector (range projection for
  // singular systems), or null.
  std::function<void(dcdm::span<double>)> project;
  // beta_j <= breakdown_tol * ||T|| ends the run early (an invariant subspace was found).
  double breakdown_tol = 1e-12;
  // Store the Lanczos basis in float (halves the memory; orthogonality then ~1e-7, enough
  // for training data, not for deflation).
  bool basis_in_float = false;
  // Progress callback (step, beta) every step, or null.
  std::function<void(int, double)> progress;
};

// The basis V (n x m) is kept because full re-orthogonalisation needs it anyway:
// memory m * n * 8 bytes (4 with basis_in_float); at 64^3, m = 2000 that is 4.2 GB (2.1).
struct LanczosResult {
  std::int64_t n = 0;
  int steps = 0;                       // m actually taken (<= requested on breakdown)
  std::vector<double> alpha, beta;     // T's diagonal (steps) and off-diagonal (steps - 1)
  double next_beta = 0.0;              // the off-diagonal that would follow (residual bound)
  std::vector<double> ritz_values;     // ascending, `steps` of them
  std::vector<double> tridiagonal_eigenvectors;  // steps x steps, column i at [i*steps]
  std::vector<double> basis;           // n x steps column-major (double), or empty
  std::vector<float> basis_float;      // used instead when basis_in_float

  // Ritz vector i (0 = smallest Ritz value) = V y_i, written into `out` (n).
  void ritz_vector(int i, dcdm::span<double> out) const;
  // Ritz vectors for the given indices, column-major n x indices.size() (one dense product).
  std::vector<double> ritz_vectors(dcdm::span<const int> indices) const;
  // ||A v_i - theta_i v_i|| estimated cheaply as |beta_m * y_i[m-1]| (exact in exact arithmetic).
  double residual_estimate(int i) const;
};

// m steps of Lanczos on symmetric A starting from `start` (normalised internally).
// Throws InputError if start is zero / non-finite or m < 1. The tridiagonal eigenproblem
// is solved with Eigen's SelfAdjointEigenSolver::computeFromTridiagonal.
LanczosResult lanczos(const LinearOperator& a, dcdm::span<const double> start, int m,
                      const LanczosOptions& options = {});

// Deflated PCG with Jacobi, deflating `k` Ritz vectors (lowest Ritz values) from
// `lanczos_steps` Lanczos steps started at b (as in the reference comparisons). Lanczos runs
// in solve() because it depends on b; its time is reported as setup_seconds.
class DeflatedPcgSolver final : public IterativeSolver {
 public:
  explicit DeflatedPcgSolver(int k, int lanczos_steps = 0);  // 0 -> max(4k, 32)
  ~DeflatedPcgSolver() override;
  std::string name() const override { return "dpcg"; }
  void setup(const LinearSystemView& system) override;
  SolveReport solve_scaled(dcdm::span<const double> b, dcdm::span<double> x,
                    const SolveOptions& options) override;

 private:
  int k_;
  int lanczos_steps_;
  std::unique_ptr<Preconditioner> jacobi_;
  LinearSystemView system_;
  double setup_seconds_ = 0.0;
};

}  // namespace dcdm
