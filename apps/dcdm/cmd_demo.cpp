// `dcdm demo`: the main job on the built-in default scene. A smoke plume rises onto the
// Stanford bunny (64^3 by default); the pressure system of the last frame is exported and
// solved with DCDM (the shipped models, when there are) beside CG, IC(0) and MGPCG. Each
// method runs in its own process (the `dcdm bench` machinery); a Markdown table is printed
// and residual-vs-iteration / residual-vs-time plots, labelled density slices and a
// volume-rendered pictures of every second frame, assembled into a movie (MP4 and GIF, where
// ffmpeg is installed), are written.
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>

#include "bench_report.hpp"
#include "bench_runner.hpp"
#include "command.hpp"
#include "dcdm/error.hpp"
#include "dcdm/models.hpp"
#include "dcdm/io.hpp"
#include "dcdm/scenes.hpp"
#include "dcdm/system.hpp"
#include "solver_registry.hpp"

namespace dcdm::cli {
namespace {

namespace fs = std::filesystem;

struct DemoArgs {
  int n = 64;
  int frames = 40;
  std::string out = "demo-out";
  // Shipped models by name (dcdm/models.hpp finds them); an empty name skips that method.
  std::string model = "paper64";
  std::string flagnet_model = "flagnet";
  std::string relaxnet_model = "relaxnet";
  double rtol = 1e-6;
  std::uint64_t seed = 1;
};

// The simulation runs in a child `dcdm simulate` process: the solvers below are measured in
// forked children, and a parent that has started OpenMP threads cannot fork safely.
fs::path export_bunny_frame(const DemoArgs& a) {
  const Dims dims{a.n, a.n, a.n};
  check_min_dims(dims, "--n");
  check_system_fits_memory(dims, "--n");
  const fs::path self = fs::read_symlink("/proc/self/exe");
  const fs::path sim_dir = fs::path(a.out) / fmt::format("sim-bunny-{}", a.n);
  fmt::print("Simulating smoke past the bunny at {}: {} frames, MGPCG pressure solves -> {}\n",
             dims.str(), a.frames, sim_dir.string());
  std::fflush(stdout);
  // --resume makes a rerun with the same options reuse the finished simulation.
  const std::string command = fmt::format(
      "'{}' simulate --scene bunny --n {} --frames {} --export-every {} --seed {} --solver mgpcg "
      "--rtol 1e-6 --render-every 2 --movie --fps 10 --quiet --resume --out '{}'",
      self.string(), a.n, a.frames, a.frames, a.seed, sim_dir.string());
  const int status = std::system(command.c_str());
  if (status != 0) throw Error(fmt::format("demo: the simulation failed (status {}): {}", status, command));
  const fs::path frame = sim_dir / fmt::format("frame_{:04d}", a.frames);
  if (!fs::exists(frame / "system.json")) throw Error(fmt::format("demo: {} was not exported", frame.string()));
  fmt::print("Exported the pressure system of frame {} to {}\n\n", a.frames, frame.string());
  return frame;
}

void run_demo(const DemoArgs& a) {
  if (a.frames < 1 || a.frames > 10000) throw InputError("--frames: must be in [1, 10000]");
  const fs::path system_dir = export_bunny_frame(a);

  BenchSettings settings;
  settings.rtols = {a.rtol};
  settings.repeat = 1;
  std::vector<std::string> methods;
  // A named model that cannot be found is an error (find_model says where it looked), never a
  // silent skip; an empty name leaves the method out.
  if (!a.model.empty()) {
    methods.push_back("dcdm:" + learn::find_model(a.model).string());
  } else {
    fmt::print("Note: --model is empty: the DCDM iteration runs here with a multigrid V-cycle as its\n"
               "      direction generator (dcdm-mg, a control).\n\n");
    methods.push_back("dcdm-mg");
  }
  // The learned multilevel generator (linear, about one V-cycle per application) beside it.
  if (!a.flagnet_model.empty()) methods.push_back("dcdm-flag:" + learn::find_model(a.flagnet_model).string());
  // The learned relaxation multigrid (MGPCG's cycle in float with learned over-relaxation).
  if (!a.relaxnet_model.empty()) methods.push_back("dcdm-relax:" + learn::find_model(a.relaxnet_model).string());
  for (const char* m : {"cg", "ic0", "mgpcg"}) methods.emplace_back(m);

  BenchSystem system;
  system.name = fmt::format("bunny-{}-frame{}", a.n, a.frames);
  system.folder = system_dir;
  std::vector<BenchRow> rows;
  for (const auto& method : methods) {
    fmt::print("Solving with {} ...\n", method);
    auto got = run_isolated(system, method, settings);
    rows.insert(rows.end(), got.begin(), got.end());
  }
  fmt::print("\n{}\n", markdown_table(rows, "cg"));
  std::string terminal;
  if (gnuplot_available(&terminal)) {
    const auto files = plot_system(rows, fs::path(a.out) / "residuals",
                                   fmt::format("bunny smoke frame {}^3: residual history", a.n));
    for (const auto& f : files) fmt::print("Residual plot: {}\n", f.string());
  } else {
    fmt::print("gnuplot with a PNG terminal not found: no residual plot\n");
  }
  fmt::print("Density slices: {}\n", (system_dir.parent_path() / "png").string());
  const fs::path picture = system_dir.parent_path() / "render" / fmt::format("render_{:04d}.png", a.frames);
  if (fs::exists(picture)) fmt::print("Rendered picture: {}\n", picture.string());
  const fs::path movie = system_dir.parent_path() / "render" / "movie.mp4";
  if (fs::exists(movie))
    fmt::print("Movie (every 2nd frame): {} and movie.gif  (a 128^3 run: make movie)\n", movie.string());
  for (const auto& r : rows)
    if (!r.converged()) throw Error(fmt::format("demo: {} did not converge ({})", r.method, r.reason));
}

RegisterCommand reg(100, [](CLI::App& root) {
  auto args = std::make_shared<DemoArgs>();
  auto* cmd = root.add_subcommand(
      "demo", "The main job: a smoke-past-bunny frame solved with DCDM beside CG, IC(0) and MGPCG");
  cmd->add_option("--n", args->n, "Grid size (cube)")->check(CLI::Range(8, 512))->capture_default_str();
  cmd->add_option("--frames", args->frames, "Frames to simulate before the exported frame")
      ->check(CLI::Range(1, 10000))->capture_default_str();
  cmd->add_option("--model", args->model, "DCDM reference-network model (a path or a shipped model's name); empty = the dcdm-mg control")->capture_default_str();
  cmd->add_option("--flagnet-model", args->flagnet_model,
                  "Flag-conditioned multilevel model also run (dcdm-flag); empty = none")
      ->capture_default_str();
  cmd->add_option("--relaxnet-model", args->relaxnet_model,
                  "Learned relaxation multigrid model also run (dcdm-relax); empty = none")
      ->capture_default_str();
  cmd->add_option("--rtol", args->rtol, "Relative tolerance")->check(CLI::Range(1e-14, 0.5))->capture_default_str();
  cmd->add_option("--seed", args->seed, "Simulation seed")->capture_default_str();
  cmd->add_option("--out", args->out, "Output folder")->capture_default_str();
  cmd->callback([args] { run_demo(*args); });
});

}  // namespace
}  // namespace dcdm::cli
