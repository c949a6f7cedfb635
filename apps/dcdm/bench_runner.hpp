#pragma once
// `dcdm bench` measurement: each (system, method) pair runs in its own forked child process,
// which builds the system itself, sets up and solves it R times per tolerance, and sends its
// measurements back as JSON. A child isolates crashes and gives an honest peak-memory figure
// (the resident high-water mark, reset after the system is built); the parent never touches
// OpenMP or MPI, so every child starts with clean runtimes.
//
// MPI peers (the hypre methods: Debian's hypre has no OpenMP) get as many MPI ranks as the
// other methods get threads: with T > 1 threads their child is `mpirun -np T dcdm bench
// --mpi-child SPEC` (every rank builds the system, hypre splits it), rank 0 sends the
// measurements. Starting MPI (a once-per-process cost) is timed apart from set-up.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "dcdm/grid.hpp"
#include "solver_registry.hpp"

namespace dcdm::cli {

// One system of the benchmark: a generated scene or an exported system folder.
struct BenchSystem {
  std::string name;          // "bunny-64x64x64" / folder name
  std::string scene;         // scene name (empty for a folder)
  Dims dims;                 // scene dimensions
  std::string rhs = "smooth";
  std::uint64_t seed = 0;
  std::filesystem::path folder;  // exported system (empty for a scene)
};

struct BenchSettings {
  std::vector<double> rtols{1e-4, 1e-6};
  int repeat = 3;
  int max_iterations = 10000;
  int threads = 0;            // 0: OpenMP default (all cores)
  int stagnation_window = 0;  // SolveOptions::stagnation_window (0: off, run to rtol or the cap)
  double timeout_seconds = 1800;  // per (system, method) child
  SolverParams params;
};

// Measurements of one method on one system at one tolerance.
struct BenchRow {
  std::string system, method, status = "error", reason, detail;
  Dims dims;
  std::int64_t cells = 0, fluid_cells = 0;
  double rtol = 0;
  int iterations = 0;
  double setup_seconds = 0, solve_seconds = 0, total_seconds = 0;  // medians over repeats
  std::vector<double> setup_runs, solve_runs;
  double cpu_seconds = 0;             // median process CPU seconds of setup + solve (all threads)
  std::vector<double> cpu_runs;
  double setup_cpu_seconds = 0;       // median process CPU seconds of the setup alone
  double true_relative_residual = 0;  // ||b - Ax|| / ||b|| recomputed in double
  double peak_mb = 0;                 // resident high-water increase of the child
  double process_bytes_per_cell = 0;  // the child's whole peak resident set / cells
  int threads = 0;
  int ranks = 1;                      // MPI ranks the method ran on (threads is per rank)
  double startup_seconds = -1;        // once-per-process library start-up (MPI), not in setup; -1: none
  std::vector<double> history;        // relative residual per entry (last run)
  std::vector<int> history_iterations;  // iteration of each entry (0..n, or {0, n} when the
                                        // library exposes only the final residual)
  std::vector<double> history_seconds;  // wall seconds since setup began, per history entry
  bool history_times_interpolated = false;
  bool converged() const { return status == "converged"; }
};

// What a child process sent back on its standard output (or pipe), whether the timeout ran out
// (it was then killed) and its wait status.
struct ChildResult {
  std::string output;
  bool timed_out = false;
  int wait_status = 0;
};
// A program run as a child in its own process group (killed whole when `timeout_seconds`, 0:
// none, runs out) with `environment` added, its standard output read back.
ChildResult spawn_and_read(const std::vector<std::string>& argv,
                           const std::vector<std::pair<std::string, std::string>>& environment,
                           double timeout_seconds);
// What mpirun's children get: Open MPI allowed as root, one OpenMP thread a rank.
extern const std::vector<std::pair<std::string, std::string>> kMpiEnvironment;
// Runs `work` in a forked child and returns the string it returned (sent back through a pipe),
// whether `timeout_seconds` (0: none) ran out (the child is then killed) and its wait status.
// The parent starts no OpenMP threads and keeps no memory of the work: each child starts from
// the same state.
ChildResult run_in_child(const std::function<std::string()>& work, double timeout_seconds = 0);

// Runs `method` on `system` for every tolerance in a forked child. Never throws for a
// failing method: the rows carry status "error" / "unavailable" / "crashed" / "timeout".
std::vector<BenchRow> run_isolated(const BenchSystem& system, const std::string& method,
                                   const BenchSettings& settings);

// METHOD@N (a method's distributed version on N MPI ranks): N and METHOD into *base; 0 for a
// plain method. InputError for a malformed N.
int distributed_ranks(const std::string& method, std::string* base);
// PETSc's own solvers as bench methods (petsc-gamg, petsc-boomeramg, petsc-pfmg, petsc-mg, run by dcdm-mpi
// on MPI ranks): their names, and the PETSc options of one on a grid (nullopt: not one of them).
const std::vector<std::string>& petsc_solver_names();
std::optional<std::vector<std::string>> petsc_solver_options(const std::string& name, Dims dims);

// True for the methods that run on MPI ranks rather than threads (hypre-amg, hypre-pfmg).
bool is_mpi_peer(const std::string& method);
// The ranks an MPI peer gets: the threads the other methods get (--threads, or OMP_NUM_THREADS,
// or the logical cores when 0), 1 when mpirun is not on the PATH.
int mpi_peer_ranks(const BenchSettings& settings);

// The body of `dcdm bench --mpi-child SPEC` (under mpirun): measures the method of the SPEC
// file on every rank; rank 0 prints one line "DCDM-BENCH-RESULT <json>". Returns the exit code.
int run_mpi_child(const std::string& spec_file);

// One row from the rows of the same (system, method, tolerance) measured in rounds of one run
// each (--interleave: the methods run in turn, so a machine whose speed drifts over minutes
// slows them alike): the runs are pooled and the medians taken over them, the peak memory is
// the largest, and iterations, history and status are the last round's unless a round failed
// (then that round's row, which says why).
BenchRow pool_rounds(const std::vector<BenchRow>& rounds);

nlohmann::json to_json(const BenchRow& row);

}  // namespace dcdm::cli
