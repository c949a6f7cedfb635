// `dcdm bench`: every method on the same systems (generated scenes or exported system
// folders), each (system, method) in its own child process; median of --repeat timed runs
// (setup timed in every run); a Markdown table on stdout, JSON and residual plots in --out.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>

#include <sys/wait.h>

#include <fmt/format.h>

#include "bench_report.hpp"
#include "bench_runner.hpp"
#include "command.hpp"
#include "dcdm/error.hpp"
#include "dcdm/io.hpp"
#include "dcdm/learn.hpp"
#include "dcdm/models.hpp"
#include "dcdm/scenes.hpp"
#include "dcdm/system.hpp"
#include "solver_registry.hpp"

namespace dcdm::cli {
namespace {

namespace fs = std::filesystem;

struct BenchArgs {
  std::vector<std::string> scenes;
  std::vector<std::string> sizes{"64"};
  std::vector<std::string> systems;
  std::vector<std::string> methods;
  std::vector<double> rtols{1e-4, 1e-6};
  std::string rhs = "smooth";
  std::uint64_t seed = 0;
  std::string out = "bench-out";
  std::string baseline = "cg";
  bool plots = true;
  bool interleave = false;
  int ranks = 0;  // --ranks: mgpcg and dcdm-relax also on this many MPI ranks (0: no)
  std::string mpi_child;  // hidden: the spec file of an MPI peer's run under mpirun
  BenchSettings settings;
};

// The command line as typed, for the record (from /proc/self/cmdline).
std::string command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string out;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= raw.size(); ++i)
    if (i == raw.size() || raw[i] == '\0') {
      if (i > start) {
        std::string arg = raw.substr(start, i - start);
        if (start == 0) arg = fs::path(arg).filename().string();
        if (arg.find_first_of(" \t'\"$") != std::string::npos) arg = "'" + arg + "'";
        out += (out.empty() ? "" : " ") + arg;
      }
      start = i + 1;
    }
  return out;
}

// Reads a system folder in a forked child and returns its error message (empty when it reads).
// Not in this process: the methods run in children forked from it, and each child's peak memory
// is measured from the fork; a parent that had read the system would hand every child its
// pages (and a started OpenMP team, with which a forked child deadlocks).
std::string read_system_in_child(const std::string& dir) {
  const ChildResult child = run_in_child([&] {
    try {
      (void)load_system(dir);
      return std::string();
    } catch (const std::exception& e) {
      return std::string(e.what()).empty() ? std::string("unreadable system folder") : std::string(e.what());
    }
  });
  if (child.output.empty() && !(WIFEXITED(child.wait_status) && WEXITSTATUS(child.wait_status) == 0))
    return fmt::format("{}: reading the system folder crashed", dir);
  return child.output;
}

std::vector<BenchSystem> collect_systems(const BenchArgs& args) {
  std::vector<BenchSystem> systems;
  std::vector<Dims> sizes;
  for (const auto& s : args.sizes) {
    const Dims d = parse_dims(s, "--n");
    check_min_dims(d, "--n");
    check_system_fits_memory(d, "--n");
    sizes.push_back(d);
  }
  parse_rhs_kind(args.rhs);  // validates
  for (const auto& scene : args.scenes) {
    try {
      scene_info(scene);
    } catch (const InputError& e) {
      throw InputError(fmt::format("--scenes: {}", e.what()));
    }
    for (const Dims d : sizes)
      systems.push_back({fmt::format("{}-{}", scene, d.str()), scene, d, args.rhs, args.seed, {}});
  }
  for (const auto& dir : args.systems) {
    if (!fs::is_directory(dir)) throw InputError(fmt::format("--systems: {} is not a folder", dir));
    // Read once before any run, so that a bad folder is exit 2 naming it, not an "unavailable"
    // row.
    if (const std::string error = read_system_in_child(dir); !error.empty())
      throw InputError(fmt::format("--systems: {}", error));
    const std::string name = fs::path(dir).filename().empty() ? fs::path(dir).parent_path().filename().string()
                                                              : fs::path(dir).filename().string();
    BenchSystem s;
    s.name = name;
    s.folder = dir;
    systems.push_back(s);
  }
  if (systems.empty()) throw InputError("bench: give --scenes NAME,... (with --n) or --systems DIR...");
  return systems;
}

void run_bench(BenchArgs& args) {
  if (!args.mpi_child.empty()) {
    run_mpi_child(args.mpi_child);
    return;
  }
  if (args.methods.empty()) {
    args.methods = {"cg", "ic0", "mgpcg", "hypre-amg", "hypre-pfmg", "eigen-iccg"};
    if (!args.settings.params.model.empty()) args.methods.insert(args.methods.begin(), "dcdm");
  }
  // --ranks N: the methods with a distributed version (mgpcg, dcdm-relax) also on N MPI ranks.
  if (args.ranks > 0) {
    std::vector<std::string> more;
    for (const auto& m : args.methods) {
      const std::string family = m.substr(0, m.find(':'));
      if ((family == "mgpcg" || family == "dcdm-relax") && m.find('@') == std::string::npos)
        more.push_back(fmt::format("{}@{}", m, args.ranks));
    }
    if (more.empty()) throw InputError("--ranks: none of --methods has a distributed version (mgpcg, dcdm-relax)");
    args.methods.insert(args.methods.end(), more.begin(), more.end());
  }
  // METHOD@N runs METHOD on N MPI ranks: the checks below see METHOD.
  std::vector<std::string> bases;
  for (const auto& m : args.methods) {
    std::string base = m;
    (void)distributed_ranks(m, &base);
    bases.push_back(base);
  }
  check_model_option(bases, args.settings.params);
  // Model files are checked here (found, readable, a known architecture): a bad one is exit 2
  // naming it, not an "unavailable" row.
  for (const auto& m : bases) {
    if (!method_runs_model(m)) continue;
    const auto colon = m.find(':');
    const std::string name = colon != std::string::npos ? m.substr(colon + 1) : args.settings.params.model;
    if (name.empty() || name == "initial") continue;
    (void)learn::model_file_architecture(learn::find_model(name));
  }
  for (double r : args.rtols)
    if (!(r > 0.0 && r < 1.0)) throw InputError(fmt::format("--rtol: {} is not in (0, 1)", r));
  args.settings.rtols = args.rtols;
  // Every method name must be a registered one (an unknown name is a typo, not a result).
  const auto known = solver_methods();
  const auto& petsc = petsc_solver_names();
  for (const auto& m : bases) {
    const std::string name = m.substr(0, m.find(':'));
    if (std::find(petsc.begin(), petsc.end(), m) != petsc.end()) continue;  // PETSc's, through dcdm-mpi
    if (std::none_of(known.begin(), known.end(), [&](const auto& k) { return k.first == name; })) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k.first;
      throw InputError(fmt::format("--methods: unknown method '{}' (known: {})", name, list));
    }
  }
  const std::vector<BenchSystem> systems = collect_systems(args);
  const fs::path out(args.out);
  fs::create_directories(out);
  std::string terminal;
  const bool can_plot = args.plots && gnuplot_available(&terminal);
  if (args.plots && !can_plot) fmt::print(stderr, "bench: warning: gnuplot with a PNG terminal not found; no plots\n");

  std::vector<BenchRow> rows;
  const auto run_one = [](const BenchSystem& sys, const std::string& method, const BenchSettings& settings,
                          const std::string& label) {
    fmt::print(stderr, "bench: {} {}{} ...", sys.name, method, label);
    std::fflush(stderr);
    auto got = run_isolated(sys, method, settings);
    std::string summary;
    for (const auto& r : got)
      summary += fmt::format(" [rtol {:.0e}: {} its {:.3f} s {}]", r.rtol, r.iterations, r.total_seconds, r.status);
    fmt::print(stderr, "{}\n", summary);
    return got;
  };
  for (const auto& sys : systems) {
    if (!args.interleave) {
      for (const auto& method : args.methods) {
        const auto got = run_one(sys, method, args.settings, "");
        rows.insert(rows.end(), got.begin(), got.end());
      }
      continue;
    }
    // Rounds of one run per method, the methods in turn; then each method's runs pooled.
    BenchSettings one = args.settings;
    one.repeat = 1;
    std::vector<std::vector<BenchRow>> rounds(args.methods.size());  // per method: rows of every round
    for (int round = 0; round < args.settings.repeat; ++round)
      for (std::size_t m = 0; m < args.methods.size(); ++m) {
        const auto got = run_one(sys, args.methods[m], one,
                                 fmt::format(" (round {}/{})", round + 1, args.settings.repeat));
        rounds[m].insert(rounds[m].end(), got.begin(), got.end());
      }
    for (std::size_t m = 0; m < args.methods.size(); ++m)
      for (const double rtol : args.rtols) {
        std::vector<BenchRow> same;
        for (const auto& r : rounds[m])
          if (r.rtol == rtol) same.push_back(r);
        if (!same.empty()) rows.push_back(pool_rounds(same));
      }
  }
  // Table order: system, tolerance, method (as given).
  std::map<std::string, std::size_t> sys_order, method_order;
  for (std::size_t i = 0; i < systems.size(); ++i) sys_order[systems[i].name] = i;
  for (std::size_t i = 0; i < args.methods.size(); ++i) method_order[args.methods[i]] = i;
  std::stable_sort(rows.begin(), rows.end(), [&](const BenchRow& a, const BenchRow& b) {
    if (a.system != b.system) return sys_order[a.system] < sys_order[b.system];
    if (a.rtol != b.rtol) return a.rtol > b.rtol;
    return method_order[a.method] < method_order[b.method];
  });

  // Plots: per system, the runs at the tightest tolerance (the longest histories).
  nlohmann::json plots = nlohmann::json::array();
  if (can_plot) {
    const double tightest = *std::min_element(args.rtols.begin(), args.rtols.end());
    for (const auto& sys : systems) {
      std::vector<BenchRow> mine;
      for (const auto& r : rows)
        if (r.system == sys.name && r.rtol == tightest && !r.history.empty()) mine.push_back(r);
      if (mine.empty()) continue;
      const auto files = plot_system(mine, out / (sys.name + "_residual"),
                                     fmt::format("{}: residual history, rtol {:.0e}", sys.name, tightest));
      for (const auto& f : files) plots.push_back(f.string());
    }
    std::vector<BenchRow> tight;
    for (const auto& r : rows)
      if (r.rtol == tightest) tight.push_back(r);
    const auto summary = plot_summary(tight, out / "summary_time.png",
                                      fmt::format("set-up + solve time per system and method, rtol {:.0e}", tightest));
    if (!summary.empty()) plots.push_back(summary.string());
  }

  const nlohmann::json facts = machine_facts();  // after the children: touches LibTorch
  const std::string table = markdown_table(rows, args.baseline);
  const std::string command = command_line();
  nlohmann::json doc;
  doc["command"] = command;
  doc["machine"] = facts;
  doc["settings"] = {{"rtol", args.rtols},
                     {"repeat", args.settings.repeat},
                     {"interleave", args.interleave},
                     {"max_iterations", args.settings.max_iterations},
                     {"threads", args.settings.threads},
                     {"mpi_peer_ranks", mpi_peer_ranks(args.settings)},
                     {"stagnation_window", args.settings.stagnation_window},
                     {"rhs", args.rhs},
                     {"seed", args.seed},
                     {"baseline", args.baseline},
                     {"methods", args.methods},
                     {"stopping_rule", "||b - Ax||_2 <= rtol ||b||_2, x0 = 0, true residual recomputed in double"}};
  doc["results"] = nlohmann::json::array();
  for (const auto& r : rows) doc["results"].push_back(to_json(r));
  doc["plots"] = plots;
  io::write_file_atomic(out / "bench.json", doc.dump(1) + "\n");
  io::write_file_atomic(out / "table.md", table);
  io::write_file_atomic(out / "machine.md", machine_facts_markdown(facts));

  fmt::print("{}\n", table);
  fmt::print("Times are medians of {} runs (setup timed in each run{}); peak MB is the resident high-water\n"
             "increase of the child process that ran the method. JSON: {}\n",
             args.settings.repeat,
             args.interleave ? "; interleaved: the methods ran in turn, one run each per round" : "",
             (out / "bench.json").string());
  const std::string notes = peer_notes(rows);
  if (!notes.empty()) fmt::print("{}", notes);
  for (const auto& p : plots) fmt::print("plot: {}\n", p.get<std::string>());
}

RegisterCommand reg(60, [](CLI::App& root) {
  auto args = std::make_shared<BenchArgs>();
  auto* cmd = root.add_subcommand("bench", "Benchmark every method (ours and library peers) on the same systems");
  cmd->add_option("--scenes", args->scenes, "Built-in scenes (plume = the open-top box of the smoke plume, bunny, ...)")
      ->delimiter(',');
  cmd->add_option("--n", args->sizes, "Grid sizes for --scenes (N or NX,NY,NZ; comma-separated cubes)")
      ->delimiter(',')->capture_default_str();
  cmd->add_option("--systems", args->systems, "Exported system folders (dcdm export / dcdm simulate)");
  cmd->add_option("--methods", args->methods,
                  "Methods, comma-separated (default: cg,ic0,mgpcg,hypre-amg,hypre-pfmg,eigen-iccg; "
                  "preceded by the network method (dcdm) if --model is given; dcdm:MODEL names a model; peer settings as "
                  "METHOD:key=value:..., e.g. hypre-amg:theta=0.5:agg=0, hypre-pfmg:skip=1, "
                  "eigen-iccg:ordering=amd; METHOD@N: mgpcg or dcdm-relax split across N MPI ranks; petsc-gamg, "
                  "petsc-boomeramg, petsc-pfmg, petsc-mg: PETSc's solvers through dcdm-mpi, on as many ranks as --threads)")
      ->delimiter(',');
  cmd->add_option("--rtol", args->rtols, "Relative tolerances, comma-separated")->delimiter(',')->capture_default_str();
  cmd->add_option("--rhs", args->rhs, "Right-hand side for --scenes: random | smooth")->capture_default_str();
  cmd->add_option("--seed", args->seed, "Scene and right-hand-side seed")->capture_default_str();
  cmd->add_option("--repeat", args->settings.repeat, "Timed runs per method; the median is reported")
      ->check(CLI::Range(1, 1000))->capture_default_str();
  cmd->add_flag("--interleave", args->interleave,
               "Run the methods in turn, one run each per round (--repeat rounds, each run in its own child), "
               "so that a machine whose speed drifts affects every method alike; medians over the rounds");
  cmd->add_option("--max-iterations", args->settings.max_iterations, "Iteration cap per solve")
      ->check(CLI::Range(1, 10000000))->capture_default_str();
  cmd->add_option("--stagnation-window", args->settings.stagnation_window,
                  "Stop a method after this many iterations without a 1e-3 relative gain (0: off)")
      ->check(CLI::Range(0, 10000000))->capture_default_str();
  cmd->add_option("--threads", args->settings.threads,
                  "OpenMP threads (0: all cores); the MPI peers (hypre, no OpenMP) run on as many MPI ranks, "
                  "mpirun -np T, one thread each")
      ->check(CLI::Range(0, 4096))->capture_default_str();
  cmd->add_option("--ranks", args->ranks,
                  "Also run mgpcg and dcdm-relax (those of --methods) on N MPI ranks of one thread (dcdm-mpi: the "
                  "grid split across the ranks); METHOD@N in --methods does the same for one method")
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--timeout", args->settings.timeout_seconds, "Seconds allowed per (system, method); 0: none")
      ->check(CLI::Range(0.0, 1e7))->capture_default_str();
  cmd->add_option("--baseline", args->baseline, "Method the speed-up column compares with")->capture_default_str();
  cmd->add_option("--out", args->out, "Folder for bench.json, table.md and the plots")->capture_default_str();
  cmd->add_flag("!--no-plots", args->plots, "Skip the residual plots");
  cmd->add_option("--mpi-child", args->mpi_child, "internal: an MPI peer's run under mpirun")->group("");
  add_solver_params(cmd, args->settings.params);
  cmd->callback([args] { run_bench(*args); });
});

}  // namespace
}  // namespace dcdm::cli
