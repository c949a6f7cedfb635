// `dcdm dataset`: Ritz-vector training data for DCDM (see include/dcdm/dataset.hpp).
#include <chrono>
#include <cstdio>

#include <fmt/format.h>

#include "command.hpp"
#include "dcdm/dataset.hpp"
#include "dcdm/error.hpp"
#include "dcdm/io.hpp"
#include "dcdm/poisson.hpp"
#include "dcdm/scenes.hpp"
#include "dcdm/system.hpp"

namespace dcdm::cli {
namespace {

struct DatasetArgs {
  std::string system;
  std::string scene;
  std::string dims;
  std::uint64_t scene_seed = 0;
  std::vector<std::string> params;
  std::string out;
  int ritz = 0;
  std::int64_t samples = 0;
  int theta = -1;
  std::uint64_t seed = 0;
  std::int64_t shard_size = 0;
  bool quiet = false;
};

void run_dataset(const DatasetArgs& args) {
  Domain domain;
  std::string source;
  if (!args.system.empty()) {
    const PoissonSystem sys = load_system(args.system);
    domain = sys.domain;
    source = fmt::format("system {}", args.system);
  } else {
    SceneSpec spec;
    spec.name = args.scene;
    spec.dims = parse_dims(args.dims, "--n");
    spec.seed = args.scene_seed;
    spec.parameters = parse_scene_parameters(args.params);
    check_min_dims(spec.dims, "--n");
    domain = make_scene(spec);
    source = fmt::format("scene {} n={} seed={}", args.scene, spec.dims.str(), args.scene_seed);
    for (const auto& p : args.params) source += " " + p;
  }
  const Dims d = domain.dims();
  if (domain.count(CellType::Fluid) == 0) throw InputError("dataset: the domain has no fluid cell");
  if (args.ritz < 1 || args.ritz > 100000) throw InputError("--ritz: must be in [1, 100000]");
  if (args.theta > args.ritz / 2)
    throw InputError(fmt::format("--theta: {} exceeds m/2 = {} (the boosted coefficients m/2 + theta would be more "
                                 "than the m Ritz values)",
                                 args.theta, args.ritz / 2));
  if (args.ritz > domain.count(CellType::Fluid))
    throw InputError(fmt::format("--ritz: {} exceeds the {} fluid cells (the Krylov space is at most that large)",
                                 args.ritz, domain.count(CellType::Fluid)));
  // Memory: Lanczos basis (float) + Ritz basis (float) + a shard.
  const double gib = (8.0 * args.ritz * d.size()) / (1024.0 * 1024.0 * 1024.0);
  const std::int64_t shard = args.shard_size > 0
                                 ? args.shard_size
                                 : std::max<std::int64_t>(1, (256ll << 20) / (4 * d.size()));
  const std::int64_t phys = physical_memory_bytes();
  if (phys > 0 && gib * 1024.0 * 1024.0 * 1024.0 > 0.8 * double(phys))
    throw InputError(fmt::format("--ritz: {} Lanczos steps on {} need about {:.1f} GiB (8 m N bytes); "
                                 "this machine has {:.1f} GiB",
                                 args.ritz, d.str(), gib, phys / (1024.0 * 1024.0 * 1024.0)));
  const PoissonStencil a(domain);
  const RangeProjector projector(domain);
  learn::DatasetSpec spec;
  spec.recipe.lanczos_steps = args.ritz;
  spec.recipe.theta = args.theta >= 0 ? args.theta : args.ritz / 20;
  spec.recipe.seed = args.seed;
  spec.samples = args.samples;
  spec.shard_size = shard;
  spec.source = source;
  learn::DatasetProgress progress;
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  if (!args.quiet) {
    progress.log = [&](const std::string& s) { fmt::print("[{:7.1f} s] {}\n", elapsed(), s); std::fflush(stdout); };
    progress.lanczos = [&, last = -1.0](int step, int steps) mutable {
      if (elapsed() - last >= 10.0 || step == steps) {
        last = elapsed();
        fmt::print("[{:7.1f} s] Lanczos step {}/{}\n", elapsed(), step, steps);
        std::fflush(stdout);
      }
    };
    fmt::print("dataset: {} ({} fluid cells), m = {} Ritz steps (~{:.2f} GiB), {} samples (theta {}, seed {}) "
               "in shards of {} -> {}\n",
               source, domain.count(CellType::Fluid), args.ritz, gib, args.samples, spec.recipe.theta,
               args.seed, shard, args.out);
  }
  io::remove_stale_temporaries(args.out, 0);  // fragments of a killed earlier run
  const int written = learn::write_dataset(args.out, domain, a,
                                           projector.singular() ? projector.as_function()
                                                                : std::function<void(dcdm::span<double>)>{},
                                           spec, progress);
  fmt::print("dataset: {} shards written, {} samples in {} ({:.1f} s)\n", written, args.samples, args.out,
             elapsed());
}

RegisterCommand reg(40, [](CLI::App& root) {
  auto args = std::make_shared<DatasetArgs>();
  auto* cmd = root.add_subcommand(
      "dataset",
      "Ritz-vector training data for DCDM: Lanczos on one matrix, weighted random combinations "
      "of its Ritz vectors (shards + manifest; resumable)");
  auto* sys = cmd->add_option("--system", args->system, "System folder (dcdm export) whose A is used");
  auto* scene = cmd->add_option("--scene", args->scene, "Built-in scene whose A is used (dcdm export --list-scenes lists them)");
  cmd->add_option("--n", args->dims, "Grid: N or NX,NY,NZ (with --scene)")->default_val("64");
  cmd->add_option("--scene-seed", args->scene_seed, "Scene seed (with --scene)")->capture_default_str();
  cmd->add_option("--param", args->params, "Scene parameter name=value (repeatable)");
  sys->excludes(scene);
  cmd->add_option("--ritz", args->ritz, "Lanczos steps m (memory: about 8 m N bytes)")->required();
  cmd->add_option("--samples", args->samples, "Number of samples")->required()->check(CLI::Range(1, 100000000));
  cmd->add_option("--theta", args->theta,
                  "Boost the lowest m/2 + theta Ritz coefficients by 9 (default m/20; the reference used "
                  "500 with m = 10000)")
      ->check(CLI::Range(0, 100000));
  cmd->add_option("--seed", args->seed, "Seed of the Lanczos start vector and of every sample")->capture_default_str();
  cmd->add_option("--shard-size", args->shard_size, "Samples per shard (default: 256 MiB shards)")
      ->check(CLI::Range(std::int64_t(1), std::int64_t(1) << 40));
  cmd->add_option("--out", args->out, "Output folder (created; an existing one with the same recipe resumes)")
      ->required();
  cmd->add_flag("--quiet", args->quiet, "Only the final line");
  cmd->callback([args, sys, scene] {
    if (sys->count() == 0 && scene->count() == 0) throw InputError("dataset: give --system DIR or --scene NAME");
    run_dataset(*args);
  });
});

}  // namespace
}  // namespace dcdm::cli
