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
//               compressed matrix (Eigen's IncompleteCholesky is Lin-More's IC keeping the
//               largest entries, as many per column as A has; natural ordering by default).
//
// Every peer stops on ||b - A x||_2 <= max(rtol ||b||_2, atol) (hypre PCG is switched to the
// unpreconditioned two-norm and re-checks the recomputed residual before accepting), and every
// report carries the final residual recomputed by us in double on the caller's operator.
// hypre is used through MPI (MPI_Init_thread on first use, or initialize_peer_libraries();
// finalised at exit): a process started alone is an MPI singleton, one rank. Under mpirun with
// more than one rank the hypre peers run distributed: every rank holds the same system (it
// builds or reads it), hypre-pfmg gives each rank a slab of whole z-planes of the grid and
// hypre-amg a contiguous block of the active rows, and the solution is gathered so that every
// rank returns the same x and report. The Debian build of hypre 2.26 has no OpenMP, so each
// rank runs on one thread: to use T cores, run T ranks (`mpirun -np T dcdm solve ...`).
#include <cstdint>
#include <memory>
#include "dcdm/span.hpp"
#include <string>
#include <variant>
#include <vector>

#include "dcdm/linalg.hpp"
#include "dcdm/solve.hpp"

namespace dcdm {

// BoomerAMG settings (hypre's names and codes). The defaults are hypre's recipe for 3-D
// diffusion (HMIS, ext+i interpolation truncated to 4 entries, one level of aggressive
// coarsening, l1-Gauss-Seidel) with the strong threshold that measured best on the pressure
// systems: 0.25 beat hypre's 3-D advice of 0.5 (fewer iterations and a smaller hierarchy at
// 64^3 and 128^3), and aggressive coarsening halved setup time and memory at 128^3 for 1-3 more
// iterations (docs/perf-solvers.md, "hypre settings").
struct HypreAmgSettings {
  double strong_threshold = 0.25;
  int coarsen_type = 10;          // 10 HMIS, 8 PMIS, 6 Falgout, ...
  int interp_type = 6;            // 6 extended+i
  int p_max_elements = 4;         // interpolation entries per row (0: no truncation)
  int agg_num_levels = 1;         // levels of aggressive coarsening, from the finest
  int agg_interp_type = 4;        // interpolation on aggressive levels (4 multipass)
  int agg_p_max_elements = 0;     // its entries per row (0: no truncation)
  // Smoother: 13 = l1-Gauss-Seidel forward on the way down, backward on the way up (hypre's
  // default pair 13/14); 3 = hybrid Gauss-Seidel forward/backward (3/4); 6 hybrid symmetric
  // GS; 8 l1-scaled hybrid symmetric GS; 18 l1-Jacobi; 16 Chebyshev. Only these: every one
  // gives a symmetric V-cycle, which PCG needs.
  int relax_type = 13;
  int num_sweeps = 1;             // smoothing sweeps per level, down and up
};

// PFMG settings (hypre's codes): red/black Gauss-Seidel V(1,1) with Galerkin coarse operators.
// The matrix is handed to hypre in symmetric storage (HYPRE_StructMatrixSetSymmetric: the
// centre and the -x, -y, -z couplings of each cell), which halves what hypre copies and stores
// and the Galerkin products it forms in set-up; an unsymmetric matrix is refused.
struct HyprePfmgSettings {
  int relax_type = 2;  // 0 Jacobi, 1 weighted Jacobi, 2 red/black GS (symmetric); 3 (RB both ways) is refused: not symmetric
  int num_pre_relax = 1;
  int num_post_relax = 1;  // must equal num_pre_relax (a symmetric cycle for PCG)
  int rap_type = 0;    // 0 Galerkin, 1 non-Galerkin 7-point
  int skip_relax = 0;  // 1: skip relaxation on some levels (for isotropic problems)
};

// Settings from a method spec's argument, "key=value:key=value" (e.g. the "theta=0.25:agg=1"
// of "hypre-amg:theta=0.25:agg=1"); an empty text gives the defaults. Keys:
//   hypre-amg:  theta coarsen interp pmax agg agg-interp agg-pmax relax sweeps
//   hypre-pfmg: relax pre post rap skip
// Throws InputError naming `who` and the key for an unknown key, a malformed or out-of-range
// value, or a smoother that would make the preconditioner unsymmetric.
HypreAmgSettings parse_hypre_amg_settings(const std::string& text, const std::string& who = "hypre-amg");
HyprePfmgSettings parse_hypre_pfmg_settings(const std::string& text, const std::string& who = "hypre-pfmg");
// The settings as the same "key=value:..." text (every key), for reports.
std::string to_string(const HypreAmgSettings& s);
std::string to_string(const HyprePfmgSettings& s);

// Finalises MPI now if a hypre peer initialised it (normally done at exit). For processes
// that leave through _exit (e.g. a forked benchmark child), where atexit handlers don't run.
void finalize_peer_libraries();

// Starts MPI and hypre now, as the first hypre peer would (a no-op without hypre or when they
// already run), and returns the wall seconds it took. Starting MPI is a once-per-process cost
// (an MPI singleton forks its runtime daemon: about 0.1-2 s), not part of any solver's
// set-up: a benchmark calls this before it starts timing and reports the figure apart.
double initialize_peer_libraries();
// This process's rank in MPI_COMM_WORLD and the number of ranks: 0 and 1 when MPI has not
// been started (initialize_peer_libraries, or a hypre peer's construction, starts it) or
// the build has no MPI.
int peer_mpi_rank();
int peer_mpi_size();
// MPI_Barrier on MPI_COMM_WORLD when MPI runs with more than one rank; otherwise nothing.
void peer_mpi_barrier();
// The largest of `value` over the ranks, and their sum (the value itself on one rank).
double peer_mpi_max(double value);
double peer_mpi_sum(double value);

// True when this build links hypre (DCDM_HAVE_HYPRE).
bool hypre_available();
// "hypre 2.26.0 (MPI, no OpenMP: 1 thread per rank)" or "hypre: not available in this build".
std::string hypre_version();
// "Eigen 3.4.0"
std::string eigen_version();

// Throw InputError("... not available in this build") from the factory when hypre is absent.
std::unique_ptr<IterativeSolver> make_hypre_amg_pcg(const HypreAmgSettings& settings = {});
std::unique_ptr<IterativeSolver> make_hypre_pfmg_pcg(const HyprePfmgSettings& settings = {});
// Eigen's IncompleteCholesky settings. Eigen keeps, per column of L, as many entries as the
// column of A has (the largest ones, fill included), scales A symmetrically, and shifts the
// diagonal (initial shift, doubled on breakdown, at most 10 restarts of the factorisation).
// Ordering: "natural" (the grid's own x-fastest order; the default: measured best on 3-D grids,
// see docs/BENCHMARKS.md) or "amd" (Eigen's default, a fill-reducing minimum-degree order,
// which makes an incomplete factorisation of a grid Laplacian a much weaker preconditioner).
struct EigenIccgSettings {
  std::string ordering = "natural";  // natural | amd
  double initial_shift = 1e-3;       // Eigen's default
};
// Keys: ordering shift ("eigen-iccg:ordering=amd:shift=1e-2").
EigenIccgSettings parse_eigen_iccg_settings(const std::string& text, const std::string& who = "eigen-iccg");
std::string to_string(const EigenIccgSettings& s);

std::unique_ptr<IterativeSolver> make_eigen_iccg(const EigenIccgSettings& settings = {});

// AMGCL (optional, header-only, not packaged by Debian: see README "Optional peers"): AMGCL's
// CG preconditioned by its AMG with the builtin OpenMP backend, on the compressed matrix.
// Defaults: smoothed aggregation with SPAI(0) smoothing, AMGCL's own recipe for Poisson
// problems.
struct AmgclSettings {
  std::string coarsening = "sa";   // sa (smoothed aggregation) | rs (Ruge-Stuben)
  std::string relaxation = "spai0";  // spai0 | gs (Gauss-Seidel) | ilu0
  double strong_threshold = 0.0;   // eps_strong; 0: AMGCL's default (0.08 smoothed aggregation, 0.25 Ruge-Stuben)
  int coarse_enough = 3000;        // AMGCL's default: a level this small is the coarsest
  // "double", or "float": AMGCL's mixed precision (its Poisson tutorial): the hierarchy in
  // single precision under the double-precision CG, about 20% less memory at 128^3.
  std::string precision = "double";
};
// Keys: coarsening relax strong coarse precision ("amgcl:coarsening=rs:relax=gs",
// "amgcl:precision=float").
AmgclSettings parse_amgcl_settings(const std::string& text, const std::string& who = "amgcl");
std::string to_string(const AmgclSettings& s);
// True when this build was pointed at AMGCL's headers (DCDM_HAVE_AMGCL).
bool amgcl_available();
// "AMGCL (headers: /path)" or "AMGCL: not available in this build".
std::string amgcl_version();
// Throws InputError("... not available in this build") when AMGCL is absent.
std::unique_ptr<IterativeSolver> make_amgcl_cg(const AmgclSettings& settings = {});

// ---- helpers shared by the peers (also useful to tests and the benchmark) ----

// One key of a peer's "key=value:key=value" settings text: a number in [min, max] (integer for
// an int target) or, for a string target, one of the '|'-separated words in `choices`.
struct PeerSetting {
  const char* key;
  std::variant<int*, double*, std::string*> target;
  double min = 0, max = 0;
  const char* choices = "";
};
// Parses `text` into the targets; InputError naming `who` and the key on an unknown key or a
// malformed / out-of-range value. An empty text changes nothing.
void parse_peer_settings(const std::string& text, const std::string& who, dcdm::span<const PeerSetting> keys);

// The active rows of a square matrix (non-zero diagonal) and the matrix restricted to them.
// Throws InputError for a row that has off-diagonal entries but no positive diagonal, or for
// a non-finite entry.
struct CompressedSystem {
  CsrMatrix matrix;                        // active x active
  std::vector<std::int64_t> row_of;        // full index -> compressed row or -1
  std::vector<std::int64_t> full_index;    // compressed row -> full index
  std::vector<std::int64_t> pinned;        // compressed rows pinned by pin_singular_components

  // out[i] = full[full_index[i]], 0 at pinned rows.
  void gather(dcdm::span<const double> full, dcdm::span<double> out) const;
  // full[full_index[i]] = in[i]; other entries untouched.
  void scatter(dcdm::span<const double> in, dcdm::span<double> full) const;
  // The right-hand side a library gets: b projected onto the range when `system` is singular,
  // gathered into `out`; returns ||out||_2 (for gathered_rtol).
  double gather_rhs(const LinearSystemView& system, dcdm::span<const double> b, dcdm::span<double> out) const;
  // The library's answer scattered into x and, for a singular system, projected: the pinned
  // rows leave it a constant per region off the minimum-norm answer.
  void scatter_solution(const LinearSystemView& system, dcdm::span<const double> in, dcdm::span<double> x) const;
};
CompressedSystem compress_active_rows(const CsrMatrix& a, const std::string& who);

// AMG coarse solves and PFMG break down (NaN, or a preconditioner that is no longer SPD) on
// a singular matrix, so a peer given a singular system pins one row per all-Neumann component
// (connected rows none of which has a positive row sum): its couplings, both ways, become
// zero, so the value there is 0. For a consistent right-hand side (zero sum over the
// component) the pinned system has the singular one's solution that vanishes at the pinned
// row (its equation is implied by the others); the peer then projects the result. As in
// MGPCG's coarse solve. Fills c.pinned (the smallest row of each such component).
void pin_singular_components(CompressedSystem& c);

// What every compressed-matrix peer does first in setup: checks that the system has an
// operator and an assembled matrix of the operator's size (InputError naming `who`), then
// compresses it and, for a singular system, pins its all-Neumann components.
CompressedSystem compress_peer_system(const LinearSystemView& system, const std::string& who);

// ||b - A x||_2 in double, through the operator.
double true_residual_norm(const LinearOperator& op, dcdm::span<const double> b,
                          dcdm::span<const double> x);

// The opening of a peer's solve: method, setup seconds, x zeroed unless it is the initial
// guess, ||b|| and ||b - A x0||.
void start_peer_report(SolveReport& report, const std::string& method, double setup_seconds,
                       const LinearSystemView& system, dcdm::span<const double> b,
                       dcdm::span<double> x, const SolveOptions& options);
// A right-hand side that needs no library solve: NaN/Inf (reason nan, x untouched), or zero /
// an empty system (x = 0, converged). Fills the report and returns true in those cases.
bool peer_settled_without_solving(SolveReport& report, const LinearSystemView& system,
                                  dcdm::span<const double> b, dcdm::span<double> x, bool empty_system);
// A library measures ||r|| / ||b_gathered||, b as handed to it (gathered onto the active rows,
// projected when singular): the rtol that keeps the caller's ||r|| / ||b||.
double gathered_rtol(double rtol, double rhs_norm, double gathered_rhs_norm);
// The closing: the final residual recomputed in double through the caller's operator (it
// also replaces the library's last history entry), the reason judged from it by our
// stopping rule (`early_stop` when the library stopped short of the target and the limit;
// `library` names it in the detail), and the history replayed to options.monitor.
void finish_peer_report(SolveReport& report, const LinearSystemView& system, dcdm::span<const double> b,
                        dcdm::span<const double> x, const SolveOptions& options,
                        const std::string& library, SolveReason early_stop);

}  // namespace dcdm
