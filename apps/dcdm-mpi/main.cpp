// dcdm-mpi: one pressure system solved with PETSc across MPI ranks (docs/DISTRIBUTED.md).
//
//   mpirun -np N dcdm-mpi solve --scene obstacles --n 64 [--json out.json]
//          -ksp_type dcdm -pc_type mg -pc_mg_levels 4 -pc_mg_galerkin pmat ...
//
// Options starting with "--" are this program's; everything else goes to PETSc (options
// files with -options_file, -help, -ksp_monitor, -log_view...). Exit status: 0 converged,
// 3 not converged, 2 bad input (one message, from the lowest rank that found it, and every
// rank exits 2), 1 anything else.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "dcdm/error.hpp"
#include "dcdm/memory.hpp"
#include "dcdm/petsc.hpp"
#include "dcdm/petsc_multigrid.hpp"
#include "dcdm/petsc_pcmg.hpp"
#include "dcdm/petsc_system.hpp"
#include "dcdm/scenes.hpp"

namespace {

namespace fs = std::filesystem;
using dcdm::InputError;
using nlohmann::json;

constexpr const char* kUsage =
    "usage: dcdm-mpi solve (--scene NAME [--n N | --dims NX,NY,NZ] [--seed S] [--param NAME=VALUE]... | --system DIR)\n"
    "                      [--method M] [--rtol R] [--max-iterations N] [--operator assembled|shell]\n"
    "                      [--dcdm-vectors auto|double|float]\n"
    "                      [--json FILE] [PETSc options]\n"
    "  --scene NAME      built-in scene (box, sphere, obstacles, bunny, pool, plume, ...; the\n"
    "                    weighted liquid, cutcell and density need a PETSc PC: jacobi, gamg,\n"
    "                    hypre, mg with -pc_mg_galerkin; not --method)\n"
    "  --n N             grid N^3 (default 64); --dims NX,NY,NZ for other shapes\n"
    "  --seed S          seed of the scene and of its random right-hand side (as dcdm solve)\n"
    "  --param K=V       scene parameter (repeatable)\n"
    "  --system DIR      a system folder (dcdm export): each rank reads its own part\n"
    "  --operator KIND   assembled (MPIAIJ) or shell (matrix-free; PCs that need matrix\n"
    "                    entries other than the diagonal need assembled); default shell with\n"
    "                    --method mgpcg|dcdm-relax, assembled otherwise\n"
    "  --method M        mgpcg[:SETTINGS]: CG with the multigrid V-cycle split across the ranks\n"
    "                    (-ksp_type cg -pc_type dcdm_mg -pc_dcdm_mg_settings SETTINGS, the\n"
    "                    settings of dcdm solve --method mgpcg:SETTINGS);\n"
    "                    dcdm-relax[:MODEL]: DCDM (k = 1) with the learned V-cycle (-ksp_type dcdm\n"
    "                    -ksp_dcdm_k 1 -pc_type dcdm_mg -pc_dcdm_mg_model MODEL, default relaxnet);\n"
    "                    both unit-coefficient systems only (exit 2 on a weighted one);\n"
    "                    petsc (default): the KSP and PC the PETSc options choose\n"
    "  --rtol R          relative tolerance on ||b - Ax|| (default 1e-6; as -ksp_rtol)\n"
    "  --max-iterations N  iteration limit (as -ksp_max_it)\n"
    "  --dcdm-vectors V  KSPDCDM's direction and kept pairs in float or double (as dcdm solve\n"
    "                    --dcdm-vectors; -ksp_dcdm_vectors): auto (default) is float for targets\n"
    "                    of at least 1e-7 of ||b||\n"
    "  --json FILE       write the report (dcdm solve --json's fields)\n"
    "PETSc options given on the command line override what --method sets. Defaults given to\n"
    "PETSc before its options are read: -ksp_type dcdm -ksp_rtol 1e-6, and for CG the\n"
    "unpreconditioned norm ||b - Ax|| (as dcdm solve).\n";

struct Args {
  std::string scene;
  std::string n = "64";
  std::string dims;
  std::uint64_t seed = 0;
  std::vector<std::string> params;
  std::string system;
  std::string op;  // assembled | shell; default: shell for --method, assembled otherwise
  std::string json_out;
  std::string method = "petsc";
  std::string dcdm_vectors;  // empty: KSPDCDM's default (auto)
  double rtol = 1e-6;
  long long max_iterations = -1;
  bool help = false;
  std::vector<std::string> petsc;  // passed through
};

std::uint64_t parse_u64(const std::string& text, const std::string& option) {
  try {
    std::size_t used = 0;
    if (!text.empty() && text[0] != '-') {
      const unsigned long long v = std::stoull(text, &used);
      if (used == text.size()) return v;
    }
  } catch (const std::exception&) {
  }
  throw InputError(fmt::format("{}: expected a non-negative integer, got '{}'", option, text));
}

// Parses this program's options (the same on every rank: argv is the same everywhere).
Args parse(int argc, char** argv) {
  Args a;
  int i = 1;
  if (argc < 2) throw InputError("missing the command (solve)");
  const std::string command = argv[1];
  if (command == "--help" || command == "-h") {
    a.help = true;
    return a;
  }
  if (command != "solve") throw InputError(fmt::format("unknown command '{}' (expected solve)", command));
  for (i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) {  // PETSc's (single dash), with its value if any
      a.petsc.push_back(arg);
      continue;
    }
    if (arg == "--help") {
      a.help = true;
      continue;
    }
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw InputError(fmt::format("{}: missing value", arg));
      return argv[++i];
    };
    if (arg == "--scene") a.scene = value();
    else if (arg == "--n") a.n = value();
    else if (arg == "--dims") a.dims = value();
    else if (arg == "--seed") a.seed = parse_u64(value(), arg);
    else if (arg == "--param") a.params.push_back(value());
    else if (arg == "--system") a.system = value();
    else if (arg == "--json") a.json_out = value();
    else if (arg == "--method") a.method = value();
    else if (arg == "--dcdm-vectors") {
      a.dcdm_vectors = value();
      if (a.dcdm_vectors != "auto" && a.dcdm_vectors != "double" && a.dcdm_vectors != "float")
        throw InputError(fmt::format("--dcdm-vectors: auto, double or float (got '{}')", a.dcdm_vectors));
    }
    else if (arg == "--rtol") {
      const std::string v = value();
      try {
        std::size_t used = 0;
        a.rtol = std::stod(v, &used);
        if (used != v.size() || !(a.rtol >= 0.0 && a.rtol < 1.0)) throw std::invalid_argument(v);
      } catch (const std::exception&) {
        throw InputError(fmt::format("--rtol: expected a number in [0, 1), got '{}'", v));
      }
    } else if (arg == "--max-iterations" || arg == "--max-iters") {
      a.max_iterations = static_cast<long long>(parse_u64(value(), arg));
    }
    else if (arg == "--operator") {
      a.op = value();
      if (a.op != "assembled" && a.op != "shell")
        throw InputError(fmt::format("--operator: expected assembled or shell, got '{}'", a.op));
    } else {
      throw InputError(fmt::format("unknown option '{}' (see dcdm-mpi --help)", arg));
    }
  }
  if (a.help) return a;
  if (a.scene.empty() == a.system.empty()) throw InputError("give one of --scene NAME or --system DIR");
  const std::string family = a.method.substr(0, a.method.find(':'));
  if (family != "mgpcg" && family != "dcdm-relax" && a.method != "petsc")
    throw InputError(fmt::format("--method: expected mgpcg[:SETTINGS], dcdm-relax[:MODEL] or petsc, got '{}'", a.method));
  // The dcdm_mg cycle reads the cell flags, not the matrix: matrix-free unless asked.
  if (a.op.empty()) a.op = a.method == "petsc" ? "assembled" : "shell";
  return a;
}

// Sets a PETSc option unless the command line gave it (the user's word wins).
void default_option(const char* name, const std::string& value) {
  PetscBool given = PETSC_FALSE;
  DCDM_PETSC_CALL(PetscOptionsHasName(nullptr, nullptr, name, &given));
  if (!given) DCDM_PETSC_CALL(PetscOptionsSetValue(nullptr, name, value.empty() ? nullptr : value.c_str()));
}

// --method: the KSP and PC options of mgpcg and dcdm-relax on the distributed V-cycle.
void method_options(const Args& a) {
  const std::size_t colon = a.method.find(':');
  const std::string family = a.method.substr(0, colon);
  const std::string arg = colon == std::string::npos ? std::string() : a.method.substr(colon + 1);
  if (family == "mgpcg") {
    default_option("-ksp_type", "cg");
    default_option("-pc_type", PCDCDMMG);
    if (!arg.empty()) default_option("-pc_dcdm_mg_settings", arg);
  } else if (family == "dcdm-relax") {
    default_option("-ksp_type", "dcdm");
    default_option("-ksp_dcdm_k", "1");
    default_option("-pc_type", PCDCDMMG);
    default_option("-pc_dcdm_mg_model", arg.empty() ? "relaxnet" : arg);
  }
  if (!a.dcdm_vectors.empty()) default_option("-ksp_dcdm_vectors", a.dcdm_vectors);
}

dcdm::Dims scene_dims(const Args& a) {
  if (!a.dims.empty()) return dcdm::parse_dims(a.dims, "--dims");
  const auto n = parse_u64(a.n, "--n");
  if (n < 4 || n > 2048) throw InputError(fmt::format("--n: must be in [4, 2048], got {}", n));
  const int v = static_cast<int>(n);
  return {v, v, v};
}

void write_atomically(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    out << text;
    if (!out) throw InputError(fmt::format("--json: cannot write {}", path.string()));
  }
  fs::rename(tmp, path);
}

int run(const Args& a, MPI_Comm comm, int rank, int size) {
  using namespace dcdm::petsc;
  DCDM_PETSC_CALL(DCDMKSPRegister());
  register_multigrid_pc();
  method_options(a);
  // --json's folder is checked before any work (a report that cannot be written is bad input).
  if (!a.json_out.empty()) {
    const fs::path parent = fs::path(a.json_out).parent_path();
    agree(comm, parent.empty() || fs::is_directory(parent),
          fmt::format("--json: folder {} does not exist", parent.string()));
  }
  // --method's solve, the system included: bytes a cell over all ranks with the matrix-free
  // operator, 100 for dcdm-relax and 135 for mgpcg (measured at 256^3 on two ranks: 74 for
  // dcdm-relax with float vectors, 86 with --dcdm-vectors double, 123 for mgpcg; 67 for
  // dcdm-relax at 512^3), 90 more with the assembled one. Refused before anything is built
  // when this machine's ranks would not fit.
  if (a.method != "petsc" && a.scene.size()) {
    const dcdm::Dims d = scene_dims(a);
    MPI_Comm node = MPI_COMM_NULL;
    MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    int node_ranks = 1;
    MPI_Comm_size(node, &node_ranks);
    MPI_Comm_free(&node);
    const double shell_per_cell = a.method.rfind("dcdm-relax", 0) == 0 ? 100.0 : 135.0;
    const double per_cell = a.op == "shell" ? shell_per_cell : shell_per_cell + 90.0;
    const double need = static_cast<double>(d.size()) * per_cell * node_ranks / size;
    const double have = static_cast<double>(dcdm::physical_memory_bytes());
    agree(comm, have <= 0 || need <= have,
          fmt::format("--method {}: a {} grid on {} rank(s) of this machine needs about {:.1f} GiB ({:.0f} bytes a "
                      "cell with the {} operator), more than its {:.1f} GiB",
                      a.method, d.str(), node_ranks, need / 1073741824.0, per_cell, a.op, have / 1073741824.0));
  }
  json system_info;
  PressureSystem sys = [&] {
    if (!a.system.empty()) {
      system_info["source"] = fmt::format("system {}", a.system);
      return PressureSystem::from_folder(comm, a.system);
    }
    dcdm::SceneSpec spec;
    spec.name = a.scene;
    spec.dims = scene_dims(a);
    spec.seed = a.seed;
    spec.parameters = dcdm::parse_scene_parameters(a.params);
    system_info["source"] = fmt::format("scene {} {} (rhs random, seed {})", a.scene, spec.dims.str(), a.seed);
    return PressureSystem::from_scene(comm, spec, a.seed);
  }();
  // Memory after the system is built (the scene or the folder's part, the component labels).
  const auto system_resident = static_cast<long long>(dcdm::resident_bytes());
  const auto system_peak = static_cast<long long>(dcdm::peak_resident_bytes());
  const dcdm::Dims d = sys.dims();
  system_info["dims"] = {d.nx, d.ny, d.nz};
  system_info["rows"] = d.size();
  system_info["fluid"] = sys.fluid;
  system_info["air"] = sys.air;
  system_info["solid"] = sys.solid;
  system_info["components"] = sys.components;
  system_info["singular_components"] = sys.singular_components;
  system_info["weighted"] = sys.weighted();
  system_info["ranks"] = size;
  system_info["operator"] = a.op;

  // The grid for a dcdm_mg PC (it reads the cell types through the DM).
  attach_geometry(sys);
  Mat op = a.op == "shell" ? sys.shell() : sys.assembled();
  KSP ksp = nullptr;
  DCDM_PETSC_CALL(KSPCreate(comm, &ksp));
  // The DM gives PCMG its grid hierarchy; the operators are ours, not computed from the DM.
  DCDM_PETSC_CALL(KSPSetDM(ksp, sys.dm()));
  DCDM_PETSC_CALL(KSPSetDMActive(ksp, PETSC_FALSE));
  DCDM_PETSC_CALL(KSPSetOperators(ksp, op, op));
  DCDM_PETSC_CALL(KSPSetType(ksp, KSPDCDM));
  DCDM_PETSC_CALL(KSPSetTolerances(ksp, a.rtol, PETSC_DEFAULT, PETSC_DEFAULT,
                                   a.max_iterations >= 0 ? static_cast<PetscInt>(a.max_iterations) : PETSC_DEFAULT));
  DCDM_PETSC_CALL(KSPSetFromOptions(ksp));
  PetscBool is_cg = PETSC_FALSE, norm_given = PETSC_FALSE;
  DCDM_PETSC_CALL(PetscObjectTypeCompare((PetscObject)ksp, KSPCG, &is_cg));
  DCDM_PETSC_CALL(PetscOptionsHasName(nullptr, nullptr, "-ksp_norm_type", &norm_given));
  if (is_cg && !norm_given) DCDM_PETSC_CALL(KSPSetNormType(ksp, KSP_NORM_UNPRECONDITIONED));
  {
    // -pc_type mg on a grid whose sizes the DMDA cannot coarsen: cell-centred levels instead.
    PC pc = nullptr;
    DCDM_PETSC_CALL(KSPGetPC(ksp, &pc));
    if (use_cell_interpolation(pc, sys)) system_info["pcmg_interpolation"] = "cell-centred (ceil(n/2) per level)";
    default_to_galerkin(pc);
    // Nothing of a dcdm_mg solve scatters ghosts through the DMDA (the operator and the cycle
    // exchange faces themselves): its scatter's 8 bytes a cell go before the set-up.
    PetscBool is_dcdm_mg = PETSC_FALSE;
    DCDM_PETSC_CALL(PetscObjectTypeCompare((PetscObject)pc, PCDCDMMG, &is_dcdm_mg));
    if (is_dcdm_mg) sys.release_ghost_scatter();
  }

  Vec x = nullptr;
  DCDM_PETSC_CALL(VecDuplicate(sys.rhs(), &x));
  DCDM_PETSC_CALL(VecSet(x, 0.0));
  const SolveSummary s = solve(ksp, op, sys.rhs(), x);
  // Peak resident memory of every rank (the whole process: system, operator, solver).
  const auto peak = static_cast<long long>(dcdm::peak_resident_bytes());
  std::vector<long long> peaks(static_cast<std::size_t>(size), 0);
  MPI_Gather(&peak, 1, MPI_LONG_LONG, peaks.data(), 1, MPI_LONG_LONG, 0, comm);
  long long system_sums[2] = {0, 0};
  const long long system_mine[2] = {system_resident, system_peak};
  MPI_Reduce(system_mine, system_sums, 2, MPI_LONG_LONG, MPI_SUM, 0, comm);
  json cycle_info;
  {
    PC pc = nullptr;
    DCDM_PETSC_CALL(KSPGetPC(ksp, &pc));
    if (const DistributedMultigrid* mg = multigrid_of(pc)) {
      cycle_info["levels"] = mg->levels();
      cycle_info["distributed_levels"] = mg->distributed_levels();
      cycle_info["precision"] = mg->options().cycle.single_precision ? "float" : "double";
      json dims = json::array();
      for (int li = 0; li < mg->levels(); ++li) {
        const dcdm::Dims ld = mg->level_dims(li);
        dims.push_back({ld.nx, ld.ny, ld.nz});
      }
      cycle_info["level_dims"] = dims;
    }
  }
  if (rank == 0) {
    std::printf("%s on %s, %d rank%s: %s in %d iterations, relative residual %.3e, setup %.3f s, solve %.3f s\n",
                s.method.c_str(), system_info["source"].get<std::string>().c_str(), size, size == 1 ? "" : "s",
                KSPConvergedReasons[s.reason], static_cast<int>(s.iterations), s.relative_residual(),
                s.setup_seconds, s.solve_seconds);
    std::fflush(stdout);
  }
  if (!a.json_out.empty() && rank == 0) {
    long long peak_sum = 0;
    for (long long p : peaks) peak_sum += p;
    json out = {{"method", a.method == "petsc" ? s.method : a.method},
                {"petsc_method", s.method},
                {"converged", s.converged()},
                {"reason", reason_name(s.reason)},
                {"petsc_reason", KSPConvergedReasons[s.reason]},
                {"iterations", s.iterations},
                {"rhs_norm", s.rhs_norm},
                {"initial_residual", s.initial_residual},
                {"final_residual", s.final_residual},
                {"relative_residual", s.relative_residual()},
                {"residual_history", s.residual_history},
                {"setup_seconds", s.setup_seconds},
                {"solve_seconds", s.solve_seconds},
                {"system", system_info},
                {"memory",
                 {{"peak_resident_bytes", peak_sum},
                  {"peak_resident_bytes_per_rank", peaks},
                  {"bytes_per_cell", static_cast<double>(peak_sum) / static_cast<double>(d.size())},
                  {"system_resident_bytes", system_sums[0]},
                  {"system_peak_bytes", system_sums[1]}}}};
    if (!cycle_info.is_null()) out["dcdm_mg"] = cycle_info;
    PetscBool is_dcdm = PETSC_FALSE;
    DCDM_PETSC_CALL(PetscObjectTypeCompare((PetscObject)ksp, KSPDCDM, &is_dcdm));
    if (is_dcdm) {
      KSPDCDMStats st{};
      DCDM_PETSC_CALL(KSPDCDMGetStats(ksp, &st));
      out["dcdm"] = {{"pc_directions", st.generator_directions},
                     {"fallback_directions", st.fallback_directions},
                     {"fallback_nan", st.fallback_nan},
                     {"fallback_curvature", st.fallback_curvature},
                     {"fallback_vanished", st.fallback_vanished},
                     {"fallback_weak", st.fallback_weak},
                     {"single_precision_vectors", st.single_precision_vectors == PETSC_TRUE},
                     {"residual_replacements", st.residual_replacements}};
    }
    write_atomically(a.json_out, out.dump(2) + "\n");
  }
  DCDM_PETSC_CALL(VecDestroy(&x));
  DCDM_PETSC_CALL(KSPDestroy(&ksp));
  return s.converged() ? 0 : 3;
}

}  // namespace

int main(int argc, char** argv) {
  // Freed temporaries (the whole scene each rank builds, the component labelling's work
  // arrays) must leave the resident set: see restore_allocator_defaults.
  dcdm::restore_allocator_defaults();
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const auto fail = [&](const std::string& message, int status) {
    if (rank == 0) std::fprintf(stderr, "dcdm-mpi: error: %s\n", message.c_str());
    return status;
  };

  Args args;
  try {
    args = parse(argc, argv);
  } catch (const InputError& e) {
    const int status = fail(e.what(), 2);
    MPI_Finalize();
    return status;
  }
  if (args.help) {
    if (rank == 0) std::fputs(kUsage, stdout);
    MPI_Finalize();
    return 0;
  }

  std::vector<std::string> petsc_args{argv[0]};
  petsc_args.insert(petsc_args.end(), args.petsc.begin(), args.petsc.end());
  std::vector<char*> pargv;
  for (auto& s : petsc_args) pargv.push_back(s.data());
  pargv.push_back(nullptr);
  int pargc = static_cast<int>(petsc_args.size());
  char** pargv_ptr = pargv.data();
  // PETSc's vectors and the DMDA's arrays in huge pages, as the cycle's levels (first touch
  // one fault per 2 MiB; DCDM_HUGE_PAGES=0 turns it off).
  dcdm::petsc::use_huge_page_allocator();
  if (PetscInitialize(&pargc, &pargv_ptr, nullptr, nullptr) != 0) {
    MPI_Finalize();
    return 1;
  }
  // PETSc errors come back as codes (turned into exceptions naming PETSc's message) instead
  // of a traceback from every rank.
  PetscPushErrorHandler(PetscReturnErrorHandler, nullptr);
  int status = 0;
  try {
    status = run(args, PETSC_COMM_WORLD, rank, size);
  } catch (const InputError& e) {
    status = fail(e.what(), 2);
  } catch (const dcdm::petsc::PetscFailure& e) {
    status = fail(fmt::format("PETSc: {}", e.what()), 2);
  } catch (const std::exception& e) {
    status = fail(e.what(), 1);
  }
  PetscPopErrorHandler();
  PetscFinalize();
  MPI_Finalize();
  return status;
}
