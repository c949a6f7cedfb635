#pragma once
// Peer solvers from established libraries behind the same IterativeSolver interface, so that
// `dcdm bench` compares them with ours on exactly the same systems and the same stopping rule.
//
//   hypre-amg   hypre BoomerAMG-preconditioned PCG (IJ/ParCSR interface) on the compressed
//               matrix: one unknown per active row (rows with a non-zero diagonal; for a grid
//               system: the fluid cells that touch a non-solid neighbour).
//   hypre-pfmg  hypre PFMG-preconditioned PCG (Struct interface) on the whole grid: per-cell
//               7-point coefficients copied from the full-grid matrix, inactive cells become
//               identity rows with no coupling and a zero right-hand side, so the fluid block
//               is the very same system and the extra rows stay exactly zero.
//   eigen-iccg  Eigen::ConjugateGradient<SparseMatrix, Lower|Upper, IncompleteCholesky> on the
//               compressed matrix (Eigen's IncompleteCholesky is Lin-More's IC with limited
//               fill and AMD ordering, not IC(0)).
//
// Every peer stops on ||b - A x||_2 <= max(rtol ||b||_2, atol) (hypre PCG is switched to the
// unpreconditioned two-norm and re-checks the recomputed residual before accepting), and every
// report carries the final residual recomputed by us in double on the caller's operator.
// hypre is used through MPI as a singleton process (MPI_Init_thread on first use, finalised
// at exit); the Debian build of hypre 2.26 has no OpenMP, so it runs on one thread.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dcdm/linalg.hpp"
#include "dcdm/solve.hpp"

namespace dcdm {

// BoomerAMG settings (hypre's names). Defaults: HMIS coarsening, extended+i interpolation
// with at most 4 entries per row, strong threshold 0.5 (hypre's advice for 3-D Laplacians),
// symmetric l1-Gauss-Seidel smoothing (13 down / 14 up), one V(1,1)-cycle per PCG iteration.
struct HypreAmgSettings {
  double strong_threshold = 0.5;
  int coarsen_type = 10;   // HMIS
  int interp_type = 6;     // extended+i
  int p_max_elements = 4;
  int agg_num_levels = 0;  // aggressive coarsening levels
};

// PFMG settings: Galerkin coarse operators, symmetric red/black Gauss-Seidel V(1,1).
struct HyprePfmgSettings {
  int relax_type = 2;  // 0 Jacobi, 1 weighted Jacobi, 2 red/black GS (symmetric)
  int num_pre_relax = 1;
  int num_post_relax = 1;
  int rap_type = 0;    // 0 Galerkin, 1 non-Galerkin 5/7-point
  int skip_relax = 0;
};

// Finalises MPI now if a hypre peer initialised it (normally done at exit). For processes
// that leave through _exit (e.g. a forked benchmark child), where atexit handlers don't run.
void finalize_peer_libraries();

// True when this build links hypre (DCDM_HAVE_HYPRE).
bool hypre_available();
// "hypre 2.26.0 (MPI singleton, no OpenMP: 1 thread)" or "hypre: not available in this build".
std::string hypre_version();
// "Eigen 3.4.0"
std::string eigen_version();

// Throw InputError("... not available in this build") from the factory when hypre is absent.
std::unique_ptr<IterativeSolver> make_hypre_amg_pcg(const HypreAmgSettings& settings = {});
std::unique_ptr<IterativeSolver> make_hypre_pfmg_pcg(const HyprePfmgSettings& settings = {});
std::unique_ptr<IterativeSolver> make_eigen_iccg();

// ---- helpers shared by the peers (also useful to tests and the benchmark) ----

// The active rows of a square matrix (non-zero diagonal) and the matrix restricted to them.
// Throws InputError for a row that has off-diagonal entries but no positive diagonal, or for
// a non-finite entry.
struct CompressedSystem {
  CsrMatrix matrix;                        // active x active
  std::vector<std::int64_t> row_of;        // full index -> compressed row or -1
  std::vector<std::int64_t> full_index;    // compressed row -> full index
};
CompressedSystem compress_active_rows(const CsrMatrix& a, const std::string& who);

// ||b - A x||_2 in double, through the operator.
double true_residual_norm(const LinearOperator& op, std::span<const double> b,
                          std::span<const double> x);

}  // namespace dcdm
