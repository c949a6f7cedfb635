// `dcdm solve`: one linear solve with any registered method on a built-in scene, an exported
// system folder, or a matrix + right-hand-side pair. Prints the system, PETSc-style monitor
// lines (--monitor), the converged-reason line and a summary.
// Exit status: 0 converged, 3 did not converge (max-iterations, breakdown, stagnation, nan),
// 2 bad input.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <optional>

#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "command.hpp"
#include "dcdm/error.hpp"
#include "dcdm/io.hpp"
#include "dcdm/memory.hpp"
#include "dcdm/methods.hpp"
#include "dcdm/models.hpp"
#include "dcdm/peers.hpp"
#include "dcdm/poisson.hpp"
#include "dcdm/scenes.hpp"
#include "dcdm/system.hpp"
#include "solver_registry.hpp"

namespace dcdm::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct SolveArgs {
  std::string scene;
  int n = 64;
  std::string dims;
  std::uint64_t seed = 0;
  std::vector<std::string> params_kv;
  std::string system_dir;
  std::string matrix;
  std::string rhs;  // scene: random | smooth | FILE; matrix: FILE (default: b = A * ones)
  std::string method = "cg";
  double rtol = 1e-6;
  double atol = 0.0;
  int max_iterations = 10000;
  int true_residual_every = 0;
  int stagnation_window = 50;
  std::string x0;
  bool monitor = false;
  std::string json_out;
  std::string x_out;
  bool quiet = false;
  std::string backend = "serial";
  SolverParams params;
};

// What the solver is given, plus what the report says about it.
struct LoadedSystem {
  std::string source;
  std::optional<Domain> domain;
  CsrMatrix matrix;
  std::vector<double> rhs;
  std::shared_ptr<const RangeProjector> projector;  // the scene's components, when labelled
  nlohmann::json build_seconds;                      // a scene's: scene, rhs, components
  std::vector<std::string> notes;
};

LoadedSystem load(const SolveArgs& a) {
  const int sources = int(!a.scene.empty()) + int(!a.system_dir.empty()) + int(!a.matrix.empty());
  if (sources != 1)
    throw InputError("give exactly one of --scene, --system DIR, --matrix FILE");
  LoadedSystem s;
  if (!a.scene.empty()) {
    SceneSpec spec;
    spec.name = a.scene;
    spec.dims = a.dims.empty() ? Dims{a.n, a.n, a.n} : parse_dims(a.dims, "--dims");
    spec.seed = a.seed;
    spec.parameters = parse_scene_parameters(a.params_kv, "--param");
    // Before anything large is built: what this method holds on this grid.
    check_solve_fits_memory(a.method, spec.dims, a.params, a.dims.empty() ? "--n" : "--dims");
    const std::string rhs = a.rhs.empty() ? "random" : a.rhs;
    const RhsKind kind = parse_rhs_kind(rhs);
    // No matrix: the methods read the stencil, and those that factor a matrix assemble it.
    PoissonSystem sys = make_scene_system(spec, kind, a.seed, kind == RhsKind::File ? fs::path(rhs) : fs::path(),
                                          SystemMatrix::Skip);
    s.source = fmt::format("scene {} {} (rhs {}, seed {})", a.scene, spec.dims.str(), rhs, a.seed);
    s.domain = std::move(sys.domain);
    s.matrix = std::move(sys.matrix);
    s.rhs = std::move(sys.rhs);
    s.projector = std::move(sys.projector);
    s.build_seconds = {{"scene", sys.build_seconds.scene},
                       {"rhs", sys.build_seconds.rhs},
                       {"components", sys.build_seconds.components}};
    return s;
  }
  if (!a.system_dir.empty()) {
    PoissonSystem sys = load_system(a.system_dir, SystemMatrix::Skip);
    if (!a.rhs.empty()) {
      // Another right-hand side for the folder's system: a vector file with one value per cell,
      // finite, and zero on the cells that are not fluid (those have no equation).
      if (parse_rhs_kind(a.rhs) != RhsKind::File)
        throw InputError(fmt::format("--rhs {}: with --system, --rhs names a vector file (.npy, .mtx, .bin)", a.rhs));
      sys.rhs = io::read_vector(a.rhs);
      const std::int64_t cells = sys.domain.dims().size();
      if (static_cast<std::int64_t>(sys.rhs.size()) != cells)
        throw InputError(fmt::format("{}: {} values, the system {} has {} cells", a.rhs, sys.rhs.size(),
                                     sys.domain.dims().str(), cells));
      if (const auto bad = count_non_finite(sys.rhs); bad > 0)
        throw InputError(fmt::format("{}: {} NaN or Inf values", a.rhs, bad));
      if (const auto off_fluid = count_nonzero_off_fluid(sys.domain, sys.rhs); off_fluid > 0)
        throw InputError(fmt::format("{}: {} non-zero values on cells that are not fluid (b must be 0 there)", a.rhs,
                                     off_fluid));
    }
    if (sys.rhs.empty()) throw InputError(fmt::format("{}: the system has no right-hand side", a.system_dir));
    check_solve_fits_memory(a.method, sys.domain.dims(), a.params, "--system " + a.system_dir);
    s.source = fmt::format("system {} {}{}", a.system_dir, sys.domain.dims().str(),
                           a.rhs.empty() ? std::string() : fmt::format(" (rhs {})", a.rhs));
    s.domain = std::move(sys.domain);
    s.matrix = std::move(sys.matrix);
    s.rhs = std::move(sys.rhs);
    return s;
  }
  s.matrix = io::read_matrix(a.matrix);
  if (s.matrix.rows != s.matrix.cols)
    throw InputError(fmt::format("{}: matrix is {}x{}, not square", a.matrix, s.matrix.rows, s.matrix.cols));
  if (!s.matrix.is_symmetric(1e-12 * (1.0 + norm_inf(s.matrix.values))))
    throw InputError(fmt::format("{}: matrix is not symmetric (CG-type methods need SPD)", a.matrix));
  if (!a.rhs.empty()) {
    s.rhs = io::read_vector(a.rhs);
    io::check_system_sizes(s.matrix, s.rhs, a.matrix, a.rhs);
    // A row of A with no non-zero entry has no equation: a non-zero b there cannot be solved
    // for (the iteration would only stagnate).
    std::int64_t on_empty = 0, first = -1;
    for (std::int64_t r = 0; r < s.matrix.rows; ++r) {
      bool empty = true;
      for (auto p = s.matrix.row_ptr[r]; p < s.matrix.row_ptr[r + 1] && empty; ++p) empty = s.matrix.values[p] == 0.0;
      if (empty && s.rhs[static_cast<std::size_t>(r)] != 0.0) {
        if (first < 0) first = r;
        ++on_empty;
      }
    }
    if (on_empty > 0)
      throw InputError(fmt::format("{}: {} non-zero values on rows that are empty in {} (the first: row {}, counting "
                                   "from 0); b must be 0 there",
                                   a.rhs, on_empty, a.matrix, first));
  } else {
    std::vector<double> ones(static_cast<std::size_t>(s.matrix.rows), 1.0);
    s.rhs.resize(ones.size());
    s.matrix.multiply(ones, s.rhs);
    s.notes.push_back("no --rhs: b = A * ones");
  }
  s.source = fmt::format("matrix {} ({} rows, {} non-zeros)", a.matrix, s.matrix.rows, s.matrix.nnz());
  // A grid-shaped 7-point matrix gets its domain back (grid-aware methods need it).
  std::optional<Dims> dims;
  if (!a.dims.empty()) {
    dims = parse_dims(a.dims, "--dims");
    if (dims->size() != s.matrix.rows)
      throw InputError(fmt::format("--dims {} makes {} cells but {} has {} rows", dims->str(), dims->size(),
                                   a.matrix, s.matrix.rows));
  } else {
    const auto m = static_cast<int>(std::llround(std::cbrt(static_cast<double>(s.matrix.rows))));
    if (std::int64_t(m) * m * m == s.matrix.rows) dims = Dims{m, m, m};
  }
  if (dims) {
    try {
      s.domain = infer_domain(s.matrix, *dims, a.matrix, &s.notes);
    } catch (const InputError& e) {
      s.notes.push_back(fmt::format("not a 7-point grid matrix on {} ({}): grid-aware methods unavailable",
                                    dims->str(), e.what()));
    }
  } else {
    s.notes.push_back("not a cube: give --dims for grid-aware methods");
  }
  return s;
}

json report_json(const SolveReport& r) {
  return {{"method", r.method},
          {"converged", r.converged()},
          {"reason", to_string(r.reason)},
          {"detail", r.detail},
          {"iterations", r.iterations},
          {"rhs_norm", r.rhs_norm},
          {"initial_residual", r.initial_residual},
          {"final_residual", r.final_residual},
          {"relative_residual", r.relative_residual()},
          {"residual_history", r.residual_history},
          {"setup_seconds", r.setup_seconds},
          {"solve_seconds", r.solve_seconds}};
}

// The process's resident set and its high-water mark after each phase of a solve (the JSON
// report's "memory"): what the system, the operator, the method's set-up and its solve add,
// and how long each took.
// "seconds": the wall time from the start to the end of the phase.
struct MemoryTrace {
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  nlohmann::json phases = nlohmann::json::array();
  void mark(const char* phase) {
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    phases.push_back({{"phase", phase},
                      {"seconds", seconds},
                      {"resident_bytes", resident_bytes()},
                      {"peak_bytes", peak_resident_bytes()}});
  }
};

int run_solve(const SolveArgs& a) {
  // Make the solver first: an unknown method or bad parameter fails before any work.
  check_model_option({a.method}, a.params);
  auto solver = make_solver(a.method, a.params);
  // Under mpirun a hypre method runs distributed (its construction started MPI): every rank
  // solves, rank 0 alone prints and writes files.
  const bool root = peer_mpi_rank() == 0;
  const int ranks = peer_mpi_size();
  MemoryTrace memory;
  memory.mark("start");
  LoadedSystem s = load(a);
  memory.mark("system");

  const std::int64_t n = s.domain ? s.domain->dims().size() : s.matrix.rows;
  if (const auto bad = count_non_finite(s.rhs); bad > 0)
    throw InputError(fmt::format("right-hand side has {} non-finite entries", bad));
  if (const auto bad = count_non_finite(s.matrix.values); bad > 0)
    throw InputError(fmt::format("matrix has {} non-finite entries", bad));

  std::unique_ptr<LinearOperator> op;
  std::optional<RangeProjector> projector;
  LinearSystemView view;
  json system_info = {{"source", s.source}, {"rows", n}};
  if (s.matrix.rows > 0) system_info["nnz"] = s.matrix.nnz();
  if (!s.build_seconds.is_null()) system_info["build_seconds"] = s.build_seconds;
  const Domain* domain = nullptr;  // the stencil's (moved in: one copy of the cells, not two)
  if (s.domain) {
    auto stencil = std::make_unique<PoissonStencil>(std::move(*s.domain));
    s.domain.reset();
    domain = &stencil->domain();
    op = std::move(stencil);
    // The scene's components (labelled once, to project b) or, for a folder, labelled here.
    if (s.projector) projector.emplace(*s.projector);
    else projector.emplace(*domain);
    if (projector->singular()) view.project_range = projector->as_function();
    view.domain = domain;
    const Dims d = domain->dims();
    system_info["dims"] = {d.nx, d.ny, d.nz};
    system_info["fluid"] = domain->count(CellType::Fluid);
    system_info["air"] = domain->count(CellType::Air);
    system_info["solid"] = domain->count(CellType::Solid);
    const FluidComponents& comps = projector->components();  // counts (no second flood fill)
    system_info["components"] = comps.count();
    system_info["singular_components"] = comps.singular_count();
  } else {
    op = std::make_unique<CsrOperator>(s.matrix);
  }
  memory.mark("operator");
  view.op = op.get();
  // A matrix only when one was read (--matrix); a grid system is matrix-free.
  view.matrix = s.matrix.rows > 0 ? &s.matrix : nullptr;

  std::vector<double> x(static_cast<std::size_t>(n), 0.0);
  SolveOptions options;
  options.rtol = a.rtol;
  options.atol = a.atol;
  options.max_iterations = a.max_iterations;
  options.true_residual_every = a.true_residual_every;
  options.stagnation_window = a.stagnation_window;
  if (!a.x0.empty()) {
    x = io::read_vector(a.x0);
    if (static_cast<std::int64_t>(x.size()) != n)
      throw InputError(fmt::format("{}: {} values, the system has {} unknowns", a.x0, x.size(), n));
    options.use_initial_guess = true;
  }
  if (a.monitor && root)
    options.monitor = [](const IterationInfo& info) {
      fmt::print("{}\n", format_monitor_line(info));
      std::fflush(stdout);
    };

  if (!a.quiet && root) {
    fmt::print("system: {}\n", s.source);
    if (domain)
      fmt::print("  {} fluid, {} air, {} solid cells; {} fluid components ({} singular: b projected)\n",
                 system_info["fluid"].get<std::int64_t>(), system_info["air"].get<std::int64_t>(),
                 system_info["solid"].get<std::int64_t>(), system_info["components"].get<int>(),
                 system_info["singular_components"].get<int>());
    for (const auto& note : s.notes) fmt::print("  note: {}\n", note);
    fmt::print("method: {}{}\n", a.method, ranks > 1 ? fmt::format(" ({} MPI ranks)", ranks) : "");
    std::fflush(stdout);
  }
  // A method that refuses the matrix (a negative diagonal, an indefinite pivot) names the file
  // it came from.
  const std::string origin = !a.matrix.empty() ? a.matrix : a.system_dir;
  try {
    solver->setup(view);
  } catch (const InputError& e) {
    if (origin.empty()) throw;
    throw InputError(fmt::format("{}: {}", origin, e.what()));
  }
  memory.mark("setup");
  const SolveReport rep = solver->solve(s.rhs, x, options);
  memory.mark("solve");
  const std::int64_t peak = peak_resident_bytes();
  if (!root) return rep.converged() ? 0 : 3;
  fmt::print("{}\n", format_reason_line(rep));
  fmt::print("iterations {}  relative residual {:.3e}  setup {:.3f} s  solve {:.3f} s  peak memory {:.0f} MB ({:.1f} "
             "bytes a cell)\n",
             rep.iterations, rep.relative_residual(), rep.setup_seconds, rep.solve_seconds, peak / 1e6,
             double(peak) / double(n));
  std::fflush(stdout);

  if (!a.x_out.empty()) {
    if (domain) {
      const Dims d = domain->dims();
      io::write_npy(a.x_out, x, {d.nz, d.ny, d.nx});
    } else {
      io::write_npy(a.x_out, x, {n});
    }
  }
  if (!a.json_out.empty()) {
    json out = report_json(rep);
    out["system"] = system_info;
    out["memory"] = {{"peak_resident_bytes", peak},
                     {"bytes_per_cell", double(peak) / double(n)},
                     {"phases", memory.phases}};
    if (domain)  // the guard's figure: the process before the system, plus the solve's estimate
      out["memory"]["estimate_bytes"] =
          memory.phases[0]["resident_bytes"].get<std::int64_t>() +
          estimate_solve_bytes(a.method, domain->dims(), a.params, system_info["singular_components"].get<int>() > 0);
    out["options"] = {{"rtol", a.rtol},
                      {"atol", a.atol},
                      {"max_iterations", a.max_iterations},
                      {"true_residual_every", a.true_residual_every},
                      {"warm_start", !a.x0.empty()},
                      {"method_spec", a.method}};
    io::write_file_atomic(a.json_out, out.dump(2) + "\n");
  }
  return rep.converged() ? 0 : 3;
}

// --backend petsc: the same solve on the grid split across MPI ranks, by dcdm-mpi (the PETSc
// program installed beside this one), which this process becomes (exec): under
// `mpirun -np N dcdm solve --backend petsc ...` every rank does, so the ranks are dcdm-mpi's.
// Only the options dcdm-mpi shares are accepted; any other is an error naming it.
[[noreturn]] void exec_petsc_backend(const SolveArgs& a, const CLI::App& cmd) {
  static const char* const kShared[] = {"--scene", "--n", "--dims", "--seed", "--param", "--system", "--method",
                                        "--rtol", "--max-iterations", "--json", "--backend", "--dcdm-vectors"};
  for (const CLI::Option* o : cmd.get_options()) {
    if (o->count() == 0 || o->get_name() == "--help") continue;
    const std::string name = o->get_name();
    if (std::find(std::begin(kShared), std::end(kShared), name) == std::end(kShared))
      throw InputError(fmt::format("--backend petsc: {} is not available there (it takes --scene, --n, --dims, --seed, "
                                   "--param, --system, --method, --rtol, --max-iterations, --json, --dcdm-vectors)",
                                   name));
  }
  const std::string family = a.method.substr(0, a.method.find(':'));
  if (family != "mgpcg" && family != "dcdm-relax")
    throw InputError(fmt::format("--backend petsc: --method must be mgpcg[:SETTINGS] or dcdm-relax[:MODEL], got '{}'",
                                 a.method));
  const fs::path program = executable_dir() / "dcdm-mpi";
  if (executable_dir().empty() || !fs::exists(program))
    throw InputError(fmt::format("--backend petsc: {} not found (this dcdm was built without PETSc)", program.string()));
  std::vector<std::string> args = {program.string(), "solve", "--method", a.method,
                                   "--rtol", fmt::format("{}", a.rtol), "--max-iterations",
                                   std::to_string(a.max_iterations)};
  if (!a.system_dir.empty()) {
    args.insert(args.end(), {"--system", a.system_dir});
  } else {
    args.insert(args.end(), {"--scene", a.scene, "--seed", std::to_string(a.seed)});
    if (!a.dims.empty()) args.insert(args.end(), {"--dims", a.dims});
    else args.insert(args.end(), {"--n", std::to_string(a.n)});
    for (const std::string& kv : a.params_kv) args.insert(args.end(), {"--param", kv});
  }
  if (!a.json_out.empty()) args.insert(args.end(), {"--json", a.json_out});
  if (cmd.get_option("--dcdm-vectors")->count() > 0) args.insert(args.end(), {"--dcdm-vectors", a.params.dcdm_vectors});
  std::vector<char*> argv;
  for (std::string& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  std::fflush(stdout);
  execv(program.c_str(), argv.data());
  throw Error(fmt::format("--backend petsc: cannot run {}: {}", program.string(), std::strerror(errno)));
}

RegisterCommand reg(30, [](CLI::App& root) {
  auto args = std::make_shared<SolveArgs>();
  auto* cmd = root.add_subcommand(
      "solve", "Solve one pressure system with a registered method (exit 0 converged, 3 not converged)");
  std::string scenes;
  for (const auto& info : scene_catalog()) scenes += (scenes.empty() ? "" : ", ") + info.name;
  cmd->add_option("--scene", args->scene, "Built-in scene: " + scenes);
  cmd->add_option("--n", args->n, "Scene grid size N (N^3 cells)")->check(CLI::Range(4, 2048))->capture_default_str();
  cmd->add_option("--dims", args->dims, "Grid NX,NY,NZ (scene: overrides --n; matrix: its grid)");
  cmd->add_option("--seed", args->seed, "Seed of the scene and of a random right-hand side")->capture_default_str();
  cmd->add_option("--param", args->params_kv, "Scene parameter name=value (repeatable)");
  cmd->add_option("--system", args->system_dir, "System folder written by `dcdm export` / `dcdm simulate`");
  cmd->add_option("--matrix", args->matrix, "Matrix file (.mtx Matrix Market or reference .bin)");
  cmd->add_option("--rhs", args->rhs,
                  "Right-hand side: with --matrix a file (.npy/.mtx/.bin; default b = A*1); with --scene "
                  "random | smooth | FILE (default random); with --system a FILE replacing the folder's b");
  std::string methods_help = "Method:";
  for (const auto& [name, help] : solver_methods()) methods_help += fmt::format("\n  {:<12} {}", name, help);
  cmd->add_option("--method", args->method, methods_help)->capture_default_str();
  cmd->add_option("--rtol", args->rtol, "Stop when ||b - Ax|| <= rtol ||b||")->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--atol", args->atol, "... or when ||b - Ax|| <= atol")->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--max-iterations,--max-iters", args->max_iterations, "Iteration limit")->check(CLI::Range(0, 100000000))
      ->capture_default_str();
  cmd->add_option("--true-residual-every", args->true_residual_every,
                  "Recompute r = b - Ax every K iterations (0: only to confirm convergence)")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd->add_option("--stagnation-window", args->stagnation_window,
                  "Stop after this many iterations without a 1e-3 relative gain (0: never)")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd->add_option("--x0", args->x0, "Initial guess (warm start), a vector file");
  cmd->add_flag("--monitor", args->monitor, "Print the residual norm every iteration (PETSc -ksp_monitor style)");
  cmd->add_option("--json", args->json_out, "Write the full report (history, reason, timings, system) as JSON");
  cmd->add_option("--x-out", args->x_out, "Write the solution as .npy (shape nz,ny,nx for grid systems)");
  cmd->add_flag("--quiet", args->quiet, "Only the reason line and the summary");
  cmd->add_option("--backend", args->backend,
                  "serial (this process) or petsc: the grid split across the MPI ranks of `mpirun -np N dcdm solve "
                  "--backend petsc` (mgpcg and dcdm-relax; runs dcdm-mpi, see docs/DISTRIBUTED.md)")
      ->check(CLI::IsMember({"serial", "petsc"}))
      ->capture_default_str();
  add_solver_params(cmd, args->params);
  cmd->callback([args, cmd] {
    if (args->backend == "petsc") exec_petsc_backend(*args, *cmd);
    const int status = run_solve(*args);
    if (status != 0) {
      std::fflush(stdout);
      std::exit(status);
    }
  });
});

}  // namespace
}  // namespace dcdm::cli
