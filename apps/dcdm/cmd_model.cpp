// `dcdm model`: create untrained model files (for tests and as training starting points) and
// show what a model file holds.
#include <filesystem>

#include <fmt/format.h>

#include "command.hpp"
#include "dcdm/error.hpp"
#include "dcdm/flagnet.hpp"
#include "dcdm/relaxnet.hpp"
#include "dcdm/learn.hpp"
#include "dcdm/models.hpp"
#include "torch_backend.hpp"

namespace dcdm::cli {
namespace {

struct ModelArgs {
  std::string arch = "paper64";
  std::uint64_t seed = 1;
  std::string out;
  std::string file;
};

ModelArgs& args() {
  static ModelArgs a;
  return a;
}

void run_init() {
  const auto& a = args();
  const std::int64_t parameters = torch_backend().write_random_network(
      a.arch, a.seed, a.out, fmt::format("dcdm model init --arch {} --seed {}", a.arch, a.seed));
  fmt::print("wrote {}: untrained {} network, {} parameters, seed {}\n", a.out, a.arch, parameters, a.seed);
}

void run_info() {
  const std::string file = learn::find_model(args().file).string();
  // The file's own architecture decides the loader (each validates the whole file); only the
  // reference network needs LibTorch.
  const std::string architecture = learn::model_file_architecture(file);
  const learn::ModelMetadata metadata =
      architecture == "flagnet"    ? learn::FlagNet::load(file).metadata()
      : architecture == "relaxnet" ? learn::RelaxNet::load(file).metadata()
                                   : torch_backend().load_network(file, "float32", 0.0)->metadata();
  fmt::print("{}: {} bytes\n{}", file, std::filesystem::file_size(file), learn::describe(metadata));
  if (architecture == "relaxnet") {
    const auto net = learn::RelaxNet::load(file);
    const auto all_fluid = net.all_fluid_factors();
    const auto range = net.factor_range();
    fmt::print("relaxation       all-fluid neighbourhood: interior {:.4f}, band {:.4f}; over all flag patterns: "
               "interior {:.4f}..{:.4f}, band {:.4f}..{:.4f}\n",
               all_fluid[0], all_fluid[1], range[0], range[1], range[2], range[3]);
  }
  fmt::print("backend          {}\n", architecture == "flagnet" || architecture == "relaxnet"
                                              ? std::string("plain C++ (no LibTorch)")
                                              : torch_backend().backend_info());
}

RegisterCommand reg(60, [](CLI::App& root) {
  auto* cmd = root.add_subcommand("model", "Create or inspect DCDM network model files");
  cmd->require_subcommand(1);
  auto& a = args();
  auto* init = cmd->add_subcommand("init", "Write a randomly initialised (untrained) model file");
  init->add_option("--arch", a.arch, "Network variant: paper64 | paper128")
      ->check(CLI::IsMember(learn::network_variants()))
      ->capture_default_str();
  init->add_option("--seed", a.seed, "Random seed of the initialisation")->capture_default_str();
  init->add_option("--out", a.out, "Model file to write (atomically)")->required();
  init->callback(run_init);
  auto* info = cmd->add_subcommand("info", "Print a model file's metadata (validates the whole file)");
  info->add_option("FILE", a.file, "Model file: a path or the name of a shipped model (relaxnet, flagnet, paper64)")->required();
  info->callback(run_info);
});

}  // namespace
}  // namespace dcdm::cli
