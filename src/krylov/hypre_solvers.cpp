// hypre peers: BoomerAMG-PCG through the IJ/ParCSR interface and PFMG-PCG through the Struct
// interface. Both use hypre's own PCG, told to stop on the unpreconditioned residual two-norm
// relative to ||b|| and to recompute the true residual before accepting convergence.
#include "dcdm/peers.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <iterator>
#include <limits>
#include <mutex>
#include <utility>

#include <fmt/format.h>

#include "dcdm/error.hpp"
#include "dcdm/poisson.hpp"
#include "dcdm/grid.hpp"

#ifdef DCDM_HAVE_HYPRE
// C bindings only: OpenMPI's C++ bindings would need libmpi_cxx on the link line.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#include <HYPRE.h>
#include <HYPRE_krylov.h>
#include <HYPRE_parcsr_ls.h>
#include <HYPRE_struct_ls.h>
#include <HYPRE_utilities.h>
#include <krylov.h>  // hypre_PCGData: the per-iteration residual norms kept when logging
#endif

namespace dcdm {

bool hypre_available() {
#ifdef DCDM_HAVE_HYPRE
  return true;
#else
  return false;
#endif
}

std::string hypre_version() {
#ifdef DCDM_HAVE_HYPRE
#ifdef HYPRE_USING_OPENMP
  const char* threads = "OpenMP";
#else
  const char* threads = "no OpenMP: 1 thread";  // per rank
#endif
  return fmt::format("hypre {} (MPI, {} per rank)", HYPRE_RELEASE_VERSION, threads);
#else
  return "hypre: not available in this build";
#endif
}

// ------------------------------------------------- settings from a method spec ----

HypreAmgSettings parse_hypre_amg_settings(const std::string& text, const std::string& who) {
  HypreAmgSettings s;
  const PeerSetting keys[] = {{"theta", &s.strong_threshold, 0.0, 1.0},
                             {"coarsen", &s.coarsen_type, 0, 22},
                             {"interp", &s.interp_type, 0, 18},
                             {"pmax", &s.p_max_elements, 0, 100},
                             {"agg", &s.agg_num_levels, 0, 25},
                             {"agg-interp", &s.agg_interp_type, 1, 7},
                             {"agg-pmax", &s.agg_p_max_elements, 0, 100},
                             {"relax", &s.relax_type, 0, 18},
                             {"sweeps", &s.num_sweeps, 1, 100}};
  parse_peer_settings(text, who, keys);
  constexpr int symmetric[] = {3, 6, 8, 13, 16, 18};
  if (std::find(std::begin(symmetric), std::end(symmetric), s.relax_type) == std::end(symmetric))
    throw InputError(fmt::format(
        "{}: relax={} is not one of 3 (GS forward/backward), 6, 8 (symmetric GS), 13 (l1-GS "
        "forward/backward), 16 (Chebyshev), 18 (l1-Jacobi): PCG needs a symmetric V-cycle",
        who, s.relax_type));
  return s;
}

HyprePfmgSettings parse_hypre_pfmg_settings(const std::string& text, const std::string& who) {
  HyprePfmgSettings s;
  const PeerSetting keys[] = {{"relax", &s.relax_type, 0, 2},
                             {"pre", &s.num_pre_relax, 0, 100},
                             {"post", &s.num_post_relax, 0, 100},
                             {"rap", &s.rap_type, 0, 1},
                             {"skip", &s.skip_relax, 0, 1}};
  parse_peer_settings(text, who, keys);
  if (s.num_pre_relax != s.num_post_relax)
    throw InputError(fmt::format("{}: pre={} and post={} differ: PCG needs a symmetric V-cycle", who,
                                 s.num_pre_relax, s.num_post_relax));
  return s;
}

std::string to_string(const HypreAmgSettings& s) {
  return fmt::format("theta={}:coarsen={}:interp={}:pmax={}:agg={}:agg-interp={}:agg-pmax={}:relax={}:sweeps={}",
                     s.strong_threshold, s.coarsen_type, s.interp_type, s.p_max_elements, s.agg_num_levels,
                     s.agg_interp_type, s.agg_p_max_elements, s.relax_type, s.num_sweeps);
}

std::string to_string(const HyprePfmgSettings& s) {
  return fmt::format("relax={}:pre={}:post={}:rap={}:skip={}", s.relax_type, s.num_pre_relax,
                     s.num_post_relax, s.rap_type, s.skip_relax);
}

#ifndef DCDM_HAVE_HYPRE

void finalize_peer_libraries() {}
double initialize_peer_libraries() { return 0.0; }
int peer_mpi_rank() { return 0; }
int peer_mpi_size() { return 1; }
void peer_mpi_barrier() {}
double peer_mpi_max(double value) { return value; }
double peer_mpi_sum(double value) { return value; }

std::unique_ptr<IterativeSolver> make_hypre_amg_pcg(const HypreAmgSettings&) {
  throw InputError("hypre-amg: not available in this build (hypre/MPI not found by CMake)");
}
std::unique_ptr<IterativeSolver> make_hypre_pfmg_pcg(const HyprePfmgSettings&) {
  throw InputError("hypre-pfmg: not available in this build (hypre/MPI not found by CMake)");
}

#else

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void finalize_mpi() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) {
    HYPRE_Finalize();
    MPI_Finalize();
  }
}

// MPI once per process (a singleton when started alone, the launcher's world under mpirun),
// allowed as root, finalised at exit.
void ensure_mpi() {
  static std::once_flag once;
  std::call_once(once, [] {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized) return;
    // OpenMPI refuses to run as root under mpirun without these; harmless otherwise.
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
    setenv("OMPI_MCA_btl_base_warn_component_unused", "0", 0);
    int provided = 0;
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
      throw Error("hypre: MPI_Init_thread failed");
    HYPRE_Init();
    std::atexit(finalize_mpi);
  });
}

int world_rank() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) return 0;
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

int world_size() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) return 1;
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

// This rank's share [first, last) of `count` items split into `size` contiguous blocks.
std::pair<std::int64_t, std::int64_t> block_of(std::int64_t count, int rank, int size) {
  return {count * rank / size, count * (rank + 1) / size};
}

// Every rank's block [first, last) of `full` (blocks as block_of(count / unit) in units of
// `unit` values) gathered into `full` on every rank.
void allgather_blocks(std::vector<double>& full, std::int64_t units, std::int64_t unit) {
  const int size = world_size();
  if (size == 1) return;
  std::vector<int> counts(static_cast<std::size_t>(size)), displs(static_cast<std::size_t>(size));
  for (int r = 0; r < size; ++r) {
    const auto [first, last] = block_of(units, r, size);
    if ((last - first) * unit > std::int64_t(std::numeric_limits<int>::max()))
      throw Error("hypre: a rank's block is too large for MPI_Allgatherv");
    counts[static_cast<std::size_t>(r)] = static_cast<int>((last - first) * unit);
    displs[static_cast<std::size_t>(r)] = static_cast<int>(first * unit);  // checked below
    if (first * unit > std::int64_t(std::numeric_limits<int>::max()))
      throw Error("hypre: the gathered vector is too large for MPI_Allgatherv");
  }
  MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, full.data(), counts.data(), displs.data(), MPI_DOUBLE,
                 MPI_COMM_WORLD);
}

std::vector<double>& last_norms() {
  thread_local std::vector<double> v;
  return v;
}

void check(HYPRE_Int code, const char* what) {
  // HYPRE_ERROR_CONV is a result (not converged), reported through SolveReason instead.
  if (code != 0 && code != HYPRE_ERROR_CONV) {
    HYPRE_ClearAllErrors();
    throw Error(fmt::format("hypre: {} failed (error code {})", what, code));
  }
}

// hypre sizes its per-iteration log (norms, rel_norms) by max_iter at setup time, but the
// iteration limit comes with each solve: lend it buffers of the right size for the solve,
// copy the norms into `norms_out`, and give the originals back before hypre frees them.
template <class SolveFn>
HYPRE_Int run_with_log_buffers(void* pcg_data, int max_iterations, SolveFn&& solve) {
  auto* pcg = static_cast<hypre_PCGData*>(pcg_data);
  thread_local std::vector<HYPRE_Real> norms, rel_norms;
  norms.assign(static_cast<std::size_t>(max_iterations) + 1, 0.0);
  rel_norms.assign(norms.size(), 0.0);
  HYPRE_Real* saved_norms = pcg->norms;
  HYPRE_Real* saved_rel = pcg->rel_norms;
  pcg->norms = norms.data();
  pcg->rel_norms = rel_norms.data();
  const HYPRE_Int code = solve();
  pcg->norms = saved_norms;
  pcg->rel_norms = saved_rel;
  HYPRE_ClearAllErrors();  // the error flag is global and sticky
  last_norms().assign(norms.begin(), norms.begin() + std::min<std::size_t>(
                                         norms.size(), static_cast<std::size_t>(pcg->num_iterations) + 1));
  return code;
}

// Shared tail of both hypre solvers: iteration count and hypre's history, then the common
// closing. hypre's norms[k] are ||r_k||_2 (two-norm mode) of the gathered system; with a
// compatible right-hand side these equal the caller's residual norms.
void finish_report(SolveReport& report, void* pcg_data, HYPRE_Int hypre_code,
                   const LinearSystemView& system, dcdm::span<const double> b,
                   dcdm::span<const double> x, const SolveOptions& options) {
  auto* pcg = static_cast<hypre_PCGData*>(pcg_data);
  report.iterations = pcg->num_iterations;
  report.residual_history = last_norms();
  finish_peer_report(report, system, b, x, options, "hypre PCG", SolveReason::Breakdown);
  if (report.reason == SolveReason::Breakdown)
    report.detail = fmt::format("hypre PCG stopped (code {}) at true relative residual {:.3e}",
                                hypre_code, report.relative_residual());
}

// Common PCG parameters; `solver` is a hypre PCG object of either interface.
void configure_pcg(HYPRE_Solver solver, const SolveOptions& options) {
  check(HYPRE_PCGSetTol(solver, options.rtol), "PCGSetTol");
  check(HYPRE_PCGSetAbsoluteTol(solver, options.atol), "PCGSetAbsoluteTol");
  check(HYPRE_PCGSetMaxIter(solver, options.max_iterations), "PCGSetMaxIter");
  check(HYPRE_PCGSetTwoNorm(solver, 1), "PCGSetTwoNorm");  // ||r||_2 / ||b||_2, unpreconditioned
  check(HYPRE_PCGSetRelChange(solver, 0), "PCGSetRelChange");
  check(HYPRE_PCGSetRecomputeResidual(solver, 1), "PCGSetRecomputeResidual");
  check(HYPRE_PCGSetLogging(solver, 1), "PCGSetLogging");
  check(HYPRE_PCGSetPrintLevel(solver, 0), "PCGSetPrintLevel");
}

// ---------------------------------------------------------------- BoomerAMG-PCG (IJ) ----

class HypreAmgPcg final : public IterativeSolver {
 public:
  explicit HypreAmgPcg(const HypreAmgSettings& s) : settings_(s) { ensure_mpi(); }
  ~HypreAmgPcg() override { release(); }
  std::string name() const override { return "hypre-amg"; }

  void setup(const LinearSystemView& system) override {
    const auto t0 = Clock::now();
    compressed_ = compress_peer_system(system, "hypre-amg");
    release();
    system_ = system;
    const CsrMatrix& c = compressed_.matrix;
    const auto n = static_cast<HYPRE_Int>(c.rows);
    if (n == 0) {
      setup_seconds_ = seconds_since(t0);
      return;
    }
    // This rank's rows [first_, last_) (all of them on one rank).
    const auto [first, last] = block_of(n, world_rank(), world_size());
    first_ = static_cast<HYPRE_Int>(first);
    last_ = static_cast<HYPRE_Int>(last);
    const HYPRE_Int local = last_ - first_;
    check(HYPRE_IJMatrixCreate(MPI_COMM_WORLD, first_, last_ - 1, first_, last_ - 1, &ij_a_), "IJMatrixCreate");
    check(HYPRE_IJMatrixSetObjectType(ij_a_, HYPRE_PARCSR), "IJMatrixSetObjectType");
    std::vector<HYPRE_Int> sizes(static_cast<std::size_t>(local)), rows(static_cast<std::size_t>(local));
    for (HYPRE_Int i = 0; i < local; ++i) {
      sizes[i] = static_cast<HYPRE_Int>(c.row_ptr[first_ + i + 1] - c.row_ptr[first_ + i]);
      rows[i] = first_ + i;
    }
    check(HYPRE_IJMatrixSetRowSizes(ij_a_, sizes.data()), "IJMatrixSetRowSizes");
    check(HYPRE_IJMatrixInitialize(ij_a_), "IJMatrixInitialize");
    const auto e0 = c.row_ptr[first_], e1 = c.row_ptr[last_];
    std::vector<HYPRE_Int> cols(c.col_idx.begin() + e0, c.col_idx.begin() + e1);
    std::vector<HYPRE_Real> vals(c.values.begin() + e0, c.values.begin() + e1);
    if (local > 0)
      check(HYPRE_IJMatrixSetValues(ij_a_, local, sizes.data(), rows.data(), cols.data(), vals.data()),
            "IJMatrixSetValues");
    check(HYPRE_IJMatrixAssemble(ij_a_), "IJMatrixAssemble");
    check(HYPRE_IJMatrixGetObject(ij_a_, reinterpret_cast<void**>(&par_a_)), "IJMatrixGetObject");
    for (HYPRE_IJVector* v : {&ij_b_, &ij_x_}) {
      check(HYPRE_IJVectorCreate(MPI_COMM_WORLD, first_, last_ - 1, v), "IJVectorCreate");
      check(HYPRE_IJVectorSetObjectType(*v, HYPRE_PARCSR), "IJVectorSetObjectType");
      check(HYPRE_IJVectorInitialize(*v), "IJVectorInitialize");
      check(HYPRE_IJVectorAssemble(*v), "IJVectorAssemble");
    }
    check(HYPRE_IJVectorGetObject(ij_b_, reinterpret_cast<void**>(&par_b_)), "IJVectorGetObject");
    check(HYPRE_IJVectorGetObject(ij_x_, reinterpret_cast<void**>(&par_x_)), "IJVectorGetObject");

    check(HYPRE_BoomerAMGCreate(&amg_), "BoomerAMGCreate");
    check(HYPRE_BoomerAMGSetMaxIter(amg_, 1), "BoomerAMGSetMaxIter");  // one V-cycle
    check(HYPRE_BoomerAMGSetTol(amg_, 0.0), "BoomerAMGSetTol");
    check(HYPRE_BoomerAMGSetPrintLevel(amg_, 0), "BoomerAMGSetPrintLevel");
    check(HYPRE_BoomerAMGSetStrongThreshold(amg_, settings_.strong_threshold), "SetStrongThreshold");
    check(HYPRE_BoomerAMGSetCoarsenType(amg_, settings_.coarsen_type), "SetCoarsenType");
    check(HYPRE_BoomerAMGSetInterpType(amg_, settings_.interp_type), "SetInterpType");
    check(HYPRE_BoomerAMGSetPMaxElmts(amg_, settings_.p_max_elements), "SetPMaxElmts");
    check(HYPRE_BoomerAMGSetAggNumLevels(amg_, settings_.agg_num_levels), "SetAggNumLevels");
    check(HYPRE_BoomerAMGSetAggInterpType(amg_, settings_.agg_interp_type), "SetAggInterpType");
    check(HYPRE_BoomerAMGSetAggPMaxElmts(amg_, settings_.agg_p_max_elements), "SetAggPMaxElmts");
    // Symmetric smoothing so that the V-cycle is an SPD preconditioner for CG: the forward
    // sweeps of 13 (l1-GS) and 3 (hybrid GS) are paired with their backward twins going up.
    const int down = settings_.relax_type;
    const int up = down == 13 ? 14 : down == 3 ? 4 : down;
    check(HYPRE_BoomerAMGSetCycleRelaxType(amg_, down, 1), "SetCycleRelaxType(down)");
    check(HYPRE_BoomerAMGSetCycleRelaxType(amg_, up, 2), "SetCycleRelaxType(up)");
    check(HYPRE_BoomerAMGSetCycleRelaxType(amg_, 9, 3), "SetCycleRelaxType(coarsest)");
    check(HYPRE_BoomerAMGSetCycleNumSweeps(amg_, settings_.num_sweeps, 1), "SetCycleNumSweeps(down)");
    check(HYPRE_BoomerAMGSetCycleNumSweeps(amg_, settings_.num_sweeps, 2), "SetCycleNumSweeps(up)");

    check(HYPRE_ParCSRPCGCreate(MPI_COMM_WORLD, &pcg_), "ParCSRPCGCreate");
    check(HYPRE_ParCSRPCGSetPrecond(pcg_, HYPRE_BoomerAMGSolve, HYPRE_BoomerAMGSetup, amg_),
          "ParCSRPCGSetPrecond");
    configure_pcg(pcg_, SolveOptions{});
    // The AMG hierarchy is built here; the vectors only give sizes.
    check(HYPRE_ParCSRPCGSetup(pcg_, par_a_, par_b_, par_x_), "ParCSRPCGSetup");
    setup_seconds_ = seconds_since(t0);
  }

  SolveReport solve_scaled(dcdm::span<const double> b, dcdm::span<double> x,
                    const SolveOptions& options) override {
    if (!system_.op) throw Error("hypre-amg: solve() before setup()");
    const auto t0 = Clock::now();
    SolveReport report;
    start_peer_report(report, name(), setup_seconds_, system_, b, x, options);
    const auto n = static_cast<HYPRE_Int>(compressed_.full_index.size());
    if (peer_settled_without_solving(report, system_, b, x, n == 0)) {
      report.solve_seconds = seconds_since(t0);
      return report;
    }
    // Every rank holds the whole system: each hands hypre its rows [first_, last_).
    const HYPRE_Int local = last_ - first_;
    std::vector<HYPRE_Int> idx(static_cast<std::size_t>(local));
    std::vector<double> vb(static_cast<std::size_t>(n)), vx(static_cast<std::size_t>(n));
    for (HYPRE_Int i = 0; i < local; ++i) idx[i] = first_ + i;
    const double bh = compressed_.gather_rhs(system_, b, vb);
    compressed_.gather(x, vx);
    check(HYPRE_IJVectorSetValues(ij_b_, local, idx.data(), vb.data() + first_), "IJVectorSetValues(b)");
    check(HYPRE_IJVectorSetValues(ij_x_, local, idx.data(), vx.data() + first_), "IJVectorSetValues(x)");
    SolveOptions hopt = options;
    hopt.rtol = gathered_rtol(options.rtol, report.rhs_norm, bh);
    configure_pcg(pcg_, hopt);
    const HYPRE_Int code = run_with_log_buffers(pcg_, options.max_iterations, [&] {
      return HYPRE_ParCSRPCGSolve(pcg_, par_a_, par_b_, par_x_);
    });
    check(code, "ParCSRPCGSolve");
    check(HYPRE_IJVectorGetValues(ij_x_, local, idx.data(), vx.data() + first_), "IJVectorGetValues(x)");
    allgather_blocks(vx, n, 1);
    compressed_.scatter_solution(system_, vx, x);
    finish_report(report, pcg_, code, system_, b, x, options);
    report.solve_seconds = seconds_since(t0);
    return report;
  }

 private:
  void release() {
    if (pcg_) HYPRE_ParCSRPCGDestroy(pcg_);
    if (amg_) HYPRE_BoomerAMGDestroy(amg_);
    if (ij_a_) HYPRE_IJMatrixDestroy(ij_a_);
    if (ij_b_) HYPRE_IJVectorDestroy(ij_b_);
    if (ij_x_) HYPRE_IJVectorDestroy(ij_x_);
    pcg_ = amg_ = nullptr;
    ij_a_ = nullptr;
    ij_b_ = ij_x_ = nullptr;
    par_a_ = nullptr;
    par_b_ = par_x_ = nullptr;
  }

  HypreAmgSettings settings_;
  LinearSystemView system_;
  CompressedSystem compressed_;
  HYPRE_IJMatrix ij_a_ = nullptr;
  HYPRE_IJVector ij_b_ = nullptr, ij_x_ = nullptr;
  HYPRE_ParCSRMatrix par_a_ = nullptr;
  HYPRE_ParVector par_b_ = nullptr, par_x_ = nullptr;
  HYPRE_Solver amg_ = nullptr, pcg_ = nullptr;
  HYPRE_Int first_ = 0, last_ = 0;  // this rank's rows of the compressed system
  double setup_seconds_ = 0.0;
};

// ------------------------------------------------------------- PFMG-PCG (Struct) ----

// Symmetric storage (HYPRE_StructMatrixSetSymmetric): the centre and the lower couplings.
// Entry order: centre, -x, -y, -z.
constexpr int kStencil[4][3] = {{0, 0, 0}, {-1, 0, 0}, {0, -1, 0}, {0, 0, -1}};

class HyprePfmgPcg final : public IterativeSolver {
 public:
  explicit HyprePfmgPcg(const HyprePfmgSettings& s) : settings_(s) { ensure_mpi(); }
  ~HyprePfmgPcg() override { release(); }
  std::string name() const override { return "hypre-pfmg"; }

  void setup(const LinearSystemView& system) override {
    const auto t0 = Clock::now();
    if (!system.op) throw InputError("hypre-pfmg: the system has no operator");
    // A unit grid operator gives its stencil directly; any other system (a matrix, weighted
    // coefficients, a singular system, whose pinning works on the matrix) is assembled.
    const auto* stencil = dynamic_cast<const PoissonStencil*>(system.op);
    std::vector<double> values;  // 4 per cell, from cell values_first_cell on
    std::int64_t values_first_cell = 0;
    if (!system.matrix && stencil && !stencil->domain().weighted() && !system.project_range) {
      dims_ = grid_dims(system, stencil->size());
      const Dims sd = stencil->dims();
      if (sd.nx != dims_.nx || sd.ny != dims_.ny || sd.nz != dims_.nz)
        throw InputError(fmt::format("hypre-pfmg: the operator's grid {} is not the system's grid {}", sd.str(),
                                     dims_.str()));
      release();
      system_ = system;
      set_slab();
      values_from_stencil(*stencil, values);
      values_first_cell = std::int64_t(z0_) * dims_.nx * dims_.ny;
    } else {
      CsrMatrix assembled;  // a grid system without a matrix: assembled for the set-up only
      const CsrMatrix& a = system_matrix(system, assembled, "hypre-pfmg");
      if (a.rows != system.op->size() || a.rows != a.cols)
        throw InputError(fmt::format("hypre-pfmg: matrix is {}x{} but the operator has size {}",
                                     a.rows, a.cols, system.op->size()));
      dims_ = grid_dims(system, a.rows);
      release();
      system_ = system;
      set_slab();
      values_from_matrix(a, values);
      if (system.project_range) pin_singular_cells(a, values);
    }
    const std::int64_t sz = std::int64_t(dims_.nx) * dims_.ny;

    HYPRE_Int lower[3] = {0, 0, z0_};
    HYPRE_Int upper[3] = {dims_.nx - 1, dims_.ny - 1, z1_};
    const bool owns = z1_ >= z0_;
    check(HYPRE_StructGridCreate(MPI_COMM_WORLD, 3, &grid_), "StructGridCreate");
    if (owns) check(HYPRE_StructGridSetExtents(grid_, lower, upper), "StructGridSetExtents");
    check(HYPRE_StructGridAssemble(grid_), "StructGridAssemble");
    check(HYPRE_StructStencilCreate(3, 4, &stencil_), "StructStencilCreate");
    for (int s = 0; s < 4; ++s) {
      HYPRE_Int offset[3] = {kStencil[s][0], kStencil[s][1], kStencil[s][2]};
      check(HYPRE_StructStencilSetElement(stencil_, s, offset), "StructStencilSetElement");
    }
    check(HYPRE_StructMatrixCreate(MPI_COMM_WORLD, grid_, stencil_, &matrix_), "StructMatrixCreate");
    check(HYPRE_StructMatrixSetSymmetric(matrix_, 1), "StructMatrixSetSymmetric");
    check(HYPRE_StructMatrixInitialize(matrix_), "StructMatrixInitialize");
    HYPRE_Int entries[4] = {0, 1, 2, 3};
    if (owns)
      check(HYPRE_StructMatrixSetBoxValues(matrix_, lower, upper, 4, entries,
                                           values.data() + static_cast<std::size_t>((z0_ * sz - values_first_cell) * 4)),
            "StructMatrixSetBoxValues");
    check(HYPRE_StructMatrixAssemble(matrix_), "StructMatrixAssemble");
    for (HYPRE_StructVector* v : {&vb_, &vx_}) {
      check(HYPRE_StructVectorCreate(MPI_COMM_WORLD, grid_, v), "StructVectorCreate");
      check(HYPRE_StructVectorInitialize(*v), "StructVectorInitialize");
      check(HYPRE_StructVectorAssemble(*v), "StructVectorAssemble");
    }

    check(HYPRE_StructPFMGCreate(MPI_COMM_WORLD, &pfmg_), "StructPFMGCreate");
    check(HYPRE_StructPFMGSetMaxIter(pfmg_, 1), "PFMGSetMaxIter");  // one V-cycle
    check(HYPRE_StructPFMGSetTol(pfmg_, 0.0), "PFMGSetTol");
    check(HYPRE_StructPFMGSetZeroGuess(pfmg_), "PFMGSetZeroGuess");
    check(HYPRE_StructPFMGSetRelaxType(pfmg_, settings_.relax_type), "PFMGSetRelaxType");
    check(HYPRE_StructPFMGSetRAPType(pfmg_, settings_.rap_type), "PFMGSetRAPType");
    check(HYPRE_StructPFMGSetNumPreRelax(pfmg_, settings_.num_pre_relax), "PFMGSetNumPreRelax");
    check(HYPRE_StructPFMGSetNumPostRelax(pfmg_, settings_.num_post_relax), "PFMGSetNumPostRelax");
    check(HYPRE_StructPFMGSetSkipRelax(pfmg_, settings_.skip_relax), "PFMGSetSkipRelax");
    check(HYPRE_StructPFMGSetPrintLevel(pfmg_, 0), "PFMGSetPrintLevel");
    check(HYPRE_StructPFMGSetLogging(pfmg_, 0), "PFMGSetLogging");

    check(HYPRE_StructPCGCreate(MPI_COMM_WORLD, &pcg_), "StructPCGCreate");
    check(HYPRE_StructPCGSetPrecond(pcg_, HYPRE_StructPFMGSolve, HYPRE_StructPFMGSetup, pfmg_),
          "StructPCGSetPrecond");
    configure_pcg(reinterpret_cast<HYPRE_Solver>(pcg_), SolveOptions{});
    check(HYPRE_StructPCGSetup(pcg_, matrix_, vb_, vx_), "StructPCGSetup");
    setup_seconds_ = seconds_since(t0);
  }

  SolveReport solve_scaled(dcdm::span<const double> b, dcdm::span<double> x,
                    const SolveOptions& options) override {
    if (!system_.op) throw Error("hypre-pfmg: solve() before setup()");
    const auto t0 = Clock::now();
    SolveReport report;
    start_peer_report(report, name(), setup_seconds_, system_, b, x, options);
    if (peer_settled_without_solving(report, system_, b, x, false)) {
      report.solve_seconds = seconds_since(t0);
      return report;
    }
    Vector rhs(b.begin(), b.end());
    if (system_.project_range) system_.project_range(rhs);
    Vector guess(x.begin(), x.end());
    double bh = 0.0;
    for (std::size_t r = 0; r < rhs.size(); ++r) {
      if (!active_[r] || active_[r] == kPinned) rhs[r] = guess[r] = 0.0;  // identity rows: solution stays exactly 0
      bh += rhs[r] * rhs[r];
    }
    bh = std::sqrt(bh);
    // Every rank holds the whole system: each hands hypre its slab of z-planes.
    const std::int64_t plane = std::int64_t(dims_.nx) * dims_.ny;
    const std::size_t offset = static_cast<std::size_t>(z0_ * plane);
    HYPRE_Int lower[3] = {0, 0, z0_};
    HYPRE_Int upper[3] = {dims_.nx - 1, dims_.ny - 1, z1_};
    const bool owns = z1_ >= z0_;
    if (owns) {
      check(HYPRE_StructVectorSetBoxValues(vb_, lower, upper, rhs.data() + offset), "StructVectorSetBoxValues(b)");
      check(HYPRE_StructVectorSetBoxValues(vx_, lower, upper, guess.data() + offset), "StructVectorSetBoxValues(x)");
    }
    check(HYPRE_StructVectorAssemble(vb_), "StructVectorAssemble(b)");
    check(HYPRE_StructVectorAssemble(vx_), "StructVectorAssemble(x)");
    SolveOptions hopt = options;
    hopt.rtol = gathered_rtol(options.rtol, report.rhs_norm, bh);
    configure_pcg(reinterpret_cast<HYPRE_Solver>(pcg_), hopt);
    const HYPRE_Int code = run_with_log_buffers(pcg_, options.max_iterations, [&] {
      return HYPRE_StructPCGSolve(pcg_, matrix_, vb_, vx_);
    });
    check(code, "StructPCGSolve");
    if (owns)
      check(HYPRE_StructVectorGetBoxValues(vx_, lower, upper, guess.data() + offset), "StructVectorGetBoxValues");
    allgather_blocks(guess, dims_.nz, plane);
    for (std::size_t r = 0; r < guess.size(); ++r) x[r] = active_[r] ? guess[r] : 0.0;
    // The pinned solution differs from the minimum-norm one by a constant per component.
    if (system_.project_range) system_.project_range(x);
    finish_report(report, pcg_, code, system_, b, x, options);
    report.solve_seconds = seconds_since(t0);
    return report;
  }

 private:
  static constexpr std::uint8_t kPinned = 2;

  // Symmetric storage from the unit operator's own arrays: diagonal = its neighbour count,
  // -1 to each fluid neighbour below; a cell that is not fluid (or has no neighbour to couple
  // with) is an identity row. The same entries as the assembled matrix.
  // This rank's slab of whole z-planes [z0_, z1_] (the whole grid on one rank).
  void set_slab() {
    const auto [first, last] = block_of(dims_.nz, world_rank(), world_size());
    z0_ = static_cast<int>(first);
    z1_ = static_cast<int>(last) - 1;
  }

  // Only this rank's slab of z-planes is stored (values[0] is the slab's first cell); which
  // cells are active, for the whole grid.
  void values_from_stencil(const PoissonStencil& stencil, std::vector<double>& values) {
    const std::int64_t cells = dims_.size(), plane = std::int64_t(dims_.nx) * dims_.ny;
    const std::int64_t first = z0_ * plane, last = (z1_ + 1) * plane;
    values.assign(static_cast<std::size_t>(std::max<std::int64_t>(0, last - first)) * 4, 0.0);
    active_.assign(static_cast<std::size_t>(cells), 0);
    const std::uint8_t* mask = stencil.neighbour_mask().data();
    const std::uint8_t* count = stencil.diagonal_count().data();
    constexpr std::uint8_t below[4] = {0, neighbour_bit(Face::XMin), neighbour_bit(Face::YMin),
                                       neighbour_bit(Face::ZMin)};
    for (std::int64_t c = 0; c < cells; ++c)
      active_[static_cast<std::size_t>(c)] = (mask[c] & kFluidBit) && count[c] > 0;
    for (std::int64_t c = first; c < last; ++c) {
      double* row = &values[static_cast<std::size_t>(c - first) * 4];
      const std::uint8_t m = mask[c];
      if (active_[static_cast<std::size_t>(c)]) {
        row[0] = static_cast<double>(count[c]);
        for (int s = 1; s <= 3; ++s)
          if (m & below[s]) row[s] = -1.0;
      } else {
        row[0] = 1.0;  // identity row, zero coupling
      }
    }
  }

  // Symmetric storage from a full-grid matrix, checked to be a symmetric 7-point stencil.
  void values_from_matrix(const CsrMatrix& a, std::vector<double>& values) {
    // Per-cell coefficients from the full-grid matrix: the very same system, checked to be a
    // symmetric 7-point stencil. Rows without a positive diagonal become identity rows.
    const std::int64_t cells = dims_.size();
    const std::int64_t sy = dims_.nx, sz = std::int64_t(dims_.nx) * dims_.ny;
    values.assign(static_cast<std::size_t>(cells) * 4, 0.0);
    active_.assign(static_cast<std::size_t>(cells), 0);
    // Which stencil entry column c is for row r at (i, j, k): 0 centre, 1..3 the -x, -y, -z
    // couplings (stored), -1..-3 the +x, +y, +z ones (checked against the neighbour's stored
    // coupling back), 4 none (not a 7-point neighbour).
    const auto entry_of = [&](std::int64_t r, std::int64_t c, int i, int j, int k) {
      const std::int64_t d = c - r;
      if (d == 0) return 0;
      if (d == -1 && i > 0) return 1;
      if (d == 1 && i < dims_.nx - 1) return -1;
      if (d == -sy && j > 0) return 2;
      if (d == sy && j < dims_.ny - 1) return -2;
      if (d == -sz && k > 0) return 3;
      if (d == sz && k < dims_.nz - 1) return -3;
      return 4;
    };
    std::int64_t bad_row = -1, bad_col = -1;
    int bad_kind = 0;  // 1 not finite, 2 not a neighbour, 3 couplings without a diagonal
    for (int k = 0; k < dims_.nz && bad_kind == 0; ++k)
      for (int j = 0; j < dims_.ny && bad_kind == 0; ++j)
        for (int i = 0; i < dims_.nx; ++i) {
          const std::int64_t r = dims_.index(i, j, k);
          double* row = &values[static_cast<std::size_t>(r) * 4];
          bool coupled = false;
          for (std::int64_t e = a.row_ptr[r]; e < a.row_ptr[r + 1]; ++e) {
            const double v = a.values[e];
            if (v == 0.0) continue;
            const std::int64_t c = a.col_idx[e];
            const int s = entry_of(r, c, i, j, k);
            if (!std::isfinite(v) || s == 4) {
              bad_row = r, bad_col = c, bad_kind = std::isfinite(v) ? 2 : 1;
              break;
            }
            if (s >= 0) row[s] = v;
            coupled = coupled || s != 0;
          }
          if (bad_kind) break;
          if (row[0] > 0.0) {
            active_[r] = 1;
          } else if (coupled) {
            bad_row = r, bad_kind = 3;
            break;
          } else {
            row[0] = 1.0;  // identity row, zero coupling
          }
        }
    if (bad_kind == 1)
      throw InputError(fmt::format("hypre-pfmg: matrix entry ({}, {}) is not finite", bad_row, bad_col));
    if (bad_kind == 2)
      throw InputError(fmt::format("hypre-pfmg: matrix entry ({}, {}) is not a 7-point neighbour on a {} grid",
                                   bad_row, bad_col, dims_.str()));
    if (bad_kind == 3)
      throw InputError(fmt::format("hypre-pfmg: row {} has couplings but no positive diagonal", bad_row));
    // The upper couplings must equal the stored lower ones of the neighbours (hypre's
    // symmetric storage has no others); an identity row has none, so an active row coupled to
    // an inactive one is refused here too.
    for (int k = 0; k < dims_.nz; ++k)
      for (int j = 0; j < dims_.ny; ++j)
        for (int i = 0; i < dims_.nx; ++i) {
          const std::int64_t r = dims_.index(i, j, k);
          double upper[4] = {0, 0, 0, 0};
          for (std::int64_t e = a.row_ptr[r]; e < a.row_ptr[r + 1]; ++e) {
            const int s = entry_of(r, a.col_idx[e], i, j, k);
            if (s < 0) upper[-s] = a.values[e];
          }
          const std::int64_t step[4] = {0, 1, sy, sz};
          const bool inside[4] = {false, i < dims_.nx - 1, j < dims_.ny - 1, k < dims_.nz - 1};
          for (int s = 1; s <= 3; ++s) {
            if (!inside[s]) continue;
            const std::int64_t nb = r + step[s];
            const double back = values[static_cast<std::size_t>(nb) * 4 + s];
            if (std::abs(upper[s] - back) > 1e-12 * std::max(std::abs(upper[s]), std::abs(back)))
              throw InputError(fmt::format(
                  "hypre-pfmg: the matrix is not symmetric: entry ({}, {}) is {} but ({}, {}) is {}{}", r, nb,
                  upper[s], nb, r, back,
                  active_[r] != active_[nb] ? " (a row couples to an inactive row)" : ""));
          }
        }

  }

  // PFMG's coarsest solve breaks down (NaN) on a singular matrix: the shared pinning (see
  // pin_singular_components in peers.hpp) chooses the rows, here they become identity rows.
  void pin_singular_cells(const CsrMatrix& a, std::vector<double>& values) {
    CompressedSystem c = compress_active_rows(a, "hypre-pfmg");
    pin_singular_components(c);
    const std::int64_t step[4] = {0, 1, dims_.nx, std::int64_t(dims_.nx) * dims_.ny};
    for (const std::int64_t p : c.pinned) {
      const std::int64_t pin = c.full_index[p];
      const int i = static_cast<int>(pin % dims_.nx), j = static_cast<int>((pin / dims_.nx) % dims_.ny),
                k = static_cast<int>(pin / (std::int64_t(dims_.nx) * dims_.ny));
      const bool below[4] = {false, i > 0, j > 0, k > 0};
      const bool above[4] = {false, i < dims_.nx - 1, j < dims_.ny - 1, k < dims_.nz - 1};
      for (int s = 1; s <= 3; ++s) {
        // Its own lower couplings, and the upper neighbours' couplings back to it.
        if (below[s]) values[static_cast<std::size_t>(pin) * 4 + s] = 0.0;
        if (above[s]) values[static_cast<std::size_t>(pin + step[s]) * 4 + s] = 0.0;
      }
      active_[pin] = kPinned;
    }
  }

  // The grid of a full-grid system: the domain's when given, else a cube of the matrix size.
  static Dims grid_dims(const LinearSystemView& system, std::int64_t rows) {
    if (system.domain) {
      const Dims d = system.domain->dims();
      if (d.size() != rows)
        throw InputError(fmt::format("hypre-pfmg: matrix has {} rows but the grid {} has {} cells",
                                     rows, d.str(), d.size()));
      return d;
    }
    const auto n = static_cast<int>(std::llround(std::cbrt(static_cast<double>(rows))));
    if (std::int64_t(n) * n * n != rows)
      throw InputError(fmt::format(
          "hypre-pfmg: needs a grid system (no domain given and {} rows is not a cube)", rows));
    return Dims{n, n, n};
  }

  void release() {
    if (pcg_) HYPRE_StructPCGDestroy(pcg_);
    if (pfmg_) HYPRE_StructPFMGDestroy(pfmg_);
    if (vb_) HYPRE_StructVectorDestroy(vb_);
    if (vx_) HYPRE_StructVectorDestroy(vx_);
    if (matrix_) HYPRE_StructMatrixDestroy(matrix_);
    if (stencil_) HYPRE_StructStencilDestroy(stencil_);
    if (grid_) HYPRE_StructGridDestroy(grid_);
    pcg_ = pfmg_ = nullptr;
    vb_ = vx_ = nullptr;
    matrix_ = nullptr;
    stencil_ = nullptr;
    grid_ = nullptr;
  }

  HyprePfmgSettings settings_;
  LinearSystemView system_;
  Dims dims_;
  std::vector<std::uint8_t> active_;
  int z0_ = 0, z1_ = -1;  // this rank's z-planes [z0_, z1_] (empty when z1_ < z0_)
  HYPRE_StructGrid grid_ = nullptr;
  HYPRE_StructStencil stencil_ = nullptr;
  HYPRE_StructMatrix matrix_ = nullptr;
  HYPRE_StructVector vb_ = nullptr, vx_ = nullptr;
  HYPRE_StructSolver pfmg_ = nullptr, pcg_ = nullptr;
  double setup_seconds_ = 0.0;
};

}  // namespace

void finalize_peer_libraries() {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) finalize_mpi();
}

double initialize_peer_libraries() {
  const auto t0 = Clock::now();
  ensure_mpi();
  return seconds_since(t0);
}

int peer_mpi_rank() { return world_rank(); }
int peer_mpi_size() { return world_size(); }

void peer_mpi_barrier() {
  if (world_size() > 1) MPI_Barrier(MPI_COMM_WORLD);
}

namespace {
double allreduce(double value, MPI_Op op) {
  if (world_size() == 1) return value;
  double out = value;
  MPI_Allreduce(&value, &out, 1, MPI_DOUBLE, op, MPI_COMM_WORLD);
  return out;
}
}  // namespace

double peer_mpi_max(double value) { return allreduce(value, MPI_MAX); }
double peer_mpi_sum(double value) { return allreduce(value, MPI_SUM); }

std::unique_ptr<IterativeSolver> make_hypre_amg_pcg(const HypreAmgSettings& settings) {
  return std::make_unique<HypreAmgPcg>(settings);
}
std::unique_ptr<IterativeSolver> make_hypre_pfmg_pcg(const HyprePfmgSettings& settings) {
  return std::make_unique<HyprePfmgPcg>(settings);
}

#endif  // DCDM_HAVE_HYPRE

}  // namespace dcdm
