// `dcdm eval`: iterations to a relative tolerance for a trained DCDM model beside CG and
// IC(0)-PCG on held-out systems (smoke frames simulated here, exported system folders, or
// built-in scenes with a synthetic right-hand side).
#include <chrono>
#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>

#include <fmt/format.h>

#include "command.hpp"
#include "dcdm/error.hpp"
#include "dcdm/poisson.hpp"
#include "dcdm/scenes.hpp"
#include "dcdm/sim.hpp"
#include "dcdm/system.hpp"
#include "solver_registry.hpp"

namespace dcdm::cli {
namespace {

struct EvalArgs {
  std::string model;
  std::vector<std::string> systems;
  std::vector<std::string> sim_scenes;
  std::vector<std::string> scenes;
  std::vector<std::string> sizes{"64"};
  std::vector<int> frames{20};
  std::string rhs = "smooth";
  std::uint64_t seed = 0;
  std::vector<std::string> methods;
  double rtol = 1e-4;
  int max_iterations = 10000;
  std::string sim_method = "mgpcg";
  SolverParams params;
};

struct EvalSystem {
  std::string name;
  Dims dims;
  Domain domain;
  std::vector<double> rhs;
};

// Frames of the smoke simulator (the solver only advances the simulation; rtol 1e-6).
std::vector<EvalSystem> simulate_frames(const std::string& scene, Dims dims, const std::vector<int>& frames,
                                        std::uint64_t seed, const std::string& method,
                                        const SolverParams& params) {
  // The smoke scenes place their own obstacle (the bunny lifted above the smoke source).
  sim::SimConfig config = sim::make_scene(scene, dims, seed);
  config.solve.rtol = 1e-6;
  auto solver = make_solver(method, params);
  sim::SmokeSimulation simulation(config, *solver);
  std::vector<EvalSystem> out;
  const int last = *std::max_element(frames.begin(), frames.end());
  for (int f = 1; f <= last; ++f) {
    simulation.step();
    if (std::find(frames.begin(), frames.end(), f) == frames.end()) continue;
    out.push_back({fmt::format("{} {} frame {}", scene, dims.str(), f), dims, simulation.domain(), simulation.rhs()});
  }
  return out;
}

struct Outcome {
  int iterations = 0;
  bool converged = false;
  std::string reason;
  double seconds = 0;
};

Outcome run_one(const std::string& method, const EvalSystem& s, const EvalArgs& args) {
  const PoissonStencil op(s.domain);
  const CsrMatrix matrix = assemble_full_grid(s.domain);
  const RangeProjector projector(s.domain);
  LinearSystemView view;
  view.op = &op;
  view.matrix = &matrix;
  view.domain = &s.domain;
  if (projector.singular()) view.project_range = projector.as_function();
  auto solver = make_solver(method, args.params);
  solver->setup(view);
  std::vector<double> b = s.rhs, x(b.size(), 0.0);
  if (projector.singular()) projector(b);
  SolveOptions options;
  options.rtol = args.rtol;
  options.max_iterations = args.max_iterations;
  const SolveReport r = solver->solve(b, x, options);
  return {r.iterations, r.converged(), to_string(r.reason), r.setup_seconds + r.solve_seconds};
}

void run_eval(const EvalArgs& args) {
  std::vector<std::string> methods = args.methods;
  if (methods.empty()) {
    if (args.model.empty()) throw InputError("--model: a model file is required (or give --methods)");
    methods = {"dcdm:" + args.model, "cg", "ic0"};
  }
  std::vector<Dims> sizes;
  for (const auto& s : args.sizes) sizes.push_back(parse_dims(s, "--n"));
  std::vector<EvalSystem> systems;
  for (const auto& dir : args.systems) {
    PoissonSystem sys = load_system(dir);
    if (sys.rhs.empty()) throw InputError(fmt::format("{}: the system has no right-hand side", dir));
    systems.push_back({dir, sys.domain.dims(), sys.domain, sys.rhs});
  }
  for (const auto& scene : args.sim_scenes)
    for (const Dims d : sizes) {
      fmt::print("simulating {} at {} up to frame {} ...\n", scene, d.str(),
                 *std::max_element(args.frames.begin(), args.frames.end()));
      std::fflush(stdout);
      for (auto& s : simulate_frames(scene, d, args.frames, args.seed, args.sim_method, args.params))
        systems.push_back(std::move(s));
    }
  for (const auto& scene : args.scenes)
    for (const Dims d : sizes) {
      SceneSpec spec;
      spec.name = scene;
      spec.dims = d;
      spec.seed = args.seed;
      PoissonSystem sys = make_scene_system(spec, parse_rhs_kind(args.rhs), args.seed);
      systems.push_back({fmt::format("{} {} rhs {}", scene, d.str(), args.rhs), d, sys.domain, sys.rhs});
    }
  if (systems.empty()) throw InputError("eval: give --sim SCENE..., --systems DIR... or --scenes NAME...");

  std::string header = fmt::format("{:<30} {:>9}", "system", "fluid");
  const auto short_name = [](const std::string& m) { return m.substr(0, m.find(':')); };
  for (const auto& m : methods) header += fmt::format(" {:>10}", short_name(m));
  // Iteration ratios of the first method to the second and third, named by the methods.
  for (std::size_t k = 1; k < methods.size() && k < 3; ++k)
    header += fmt::format(" {:>{}}", short_name(methods[0]) + "/" + short_name(methods[k]),
                          std::max<std::size_t>(9, short_name(methods[0]).size() + short_name(methods[k]).size() + 1));
  fmt::print("rtol {:g}, at most {} iterations; iterations (* = not converged)\n{}\n", args.rtol,
             args.max_iterations, header);
  std::map<std::string, std::map<std::int64_t, std::vector<int>>> by_size;  // method -> cells -> its
  std::vector<double> worst_ratio(methods.size(), 0.0);
  for (const auto& s : systems) {
    std::string line = fmt::format("{:<30} {:>9}", s.name.substr(0, 30), s.domain.count(CellType::Fluid));
    std::vector<Outcome> res;
    for (const auto& m : methods) {
      res.push_back(run_one(m, s, args));
      line += fmt::format(" {:>9}{}", res.back().iterations, res.back().converged ? " " : "*");
      by_size[m][s.dims.size()].push_back(res.back().iterations);
    }
    for (std::size_t k = 1; k < methods.size() && k < 3; ++k) {
      const double ratio = double(res[0].iterations) / std::max(1, res[k].iterations);
      worst_ratio[k] = std::max(worst_ratio[k], ratio);
      const std::size_t width =
          std::max<std::size_t>(9, short_name(methods[0]).size() + short_name(methods[k]).size() + 1);
      line += fmt::format(" {:>{}.3f}", ratio, width);
    }
    fmt::print("{}\n", line);
    for (std::size_t k = 0; k < res.size(); ++k)
      if (!res[k].converged) fmt::print("  {}: {} after {} iterations\n", methods[k], res[k].reason, res[k].iterations);
    std::fflush(stdout);
  }
  for (std::size_t k = 1; k < methods.size() && k < 3; ++k)
    fmt::print("worst {} / {} iteration ratio: {:.3f}\n", methods[0], methods[k], worst_ratio[k]);
  for (const auto& [m, per] : by_size) {
    if (per.size() < 2) continue;
    std::string line = fmt::format("mean iterations of {} by grid:", m);
    double first = 0, last = 0;
    for (const auto& [cells, its] : per) {
      double mean = 0;
      for (int i : its) mean += double(i) / its.size();
      if (first == 0) first = mean;
      last = mean;
      line += fmt::format(" {} cells {:.1f};", cells, mean);
    }
    fmt::print("{} growth {:.2f}x\n", line, last / std::max(first, 1.0));
  }
}

RegisterCommand reg(42, [](CLI::App& root) {
  auto args = std::make_shared<EvalArgs>();
  auto* cmd = root.add_subcommand(
      "eval", "Iterations to rtol for a DCDM model beside CG and IC(0)-PCG on held-out systems");
  cmd->add_option("--sim", args->sim_scenes, "Smoke scenes to simulate (plume, bunny, sphere); frames from --frames")
      ->delimiter(',');
  cmd->add_option("--frames", args->frames, "Frames of --sim to evaluate (comma-separated)")->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--sim-method", args->sim_method, "Solver that advances the simulation")->capture_default_str();
  cmd->add_option("--systems", args->systems, "System folders (dcdm export; comma-separated)")->delimiter(',');
  cmd->add_option("--scenes", args->scenes, "Built-in scenes with a synthetic right-hand side (--rhs)")
      ->delimiter(',');
  cmd->add_option("--rhs", args->rhs, "random | smooth (with --scenes)")->capture_default_str();
  cmd->add_option("--n", args->sizes, "Grid sizes for --sim / --scenes (comma-separated)")->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--seed", args->seed, "Scene seed")->capture_default_str();
  cmd->add_option("--methods", args->methods,
                  "Methods to compare (default: dcdm:MODEL,cg,ic0); ratios are first / second and first / third")
      ->delimiter(',');
  cmd->add_option("--rtol", args->rtol, "Relative tolerance")->check(CLI::Range(1e-14, 1.0))->capture_default_str();
  cmd->add_option("--max-iterations", args->max_iterations, "Iteration cap per solve")
      ->check(CLI::Range(1, 10000000))->capture_default_str();
  add_solver_params(cmd, args->params);
  cmd->callback([args] {
    args->model = args->params.model;
    for (int f : args->frames)
      if (f < 1) throw InputError("--frames: frames are numbered from 1");
    run_eval(*args);
  });
});

}  // namespace
}  // namespace dcdm::cli
