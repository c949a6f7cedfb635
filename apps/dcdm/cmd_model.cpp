// `dcdm model`: create untrained model files (for tests and as training starting points) and
// show what a model file holds.
#include <filesystem>

#include <fmt/format.h>

#include "command.hpp"
#include "dcdm/error.hpp"
#include "dcdm/flagnet.hpp"
#include "dcdm/relaxnet.hpp"
#include "dcdm/learn.hpp"

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
  auto net = learn::DirectionNetwork::random(a.arch, a.seed);
  net.metadata().created_by = fmt::format("dcdm model init --arch {} --seed {}", a.arch, a.seed);
  net.save(a.out);
  fmt::print("wrote {}: untrained {} network, {} parameters, seed {}\n", a.out, a.arch, net.parameter_count(),
             a.seed);
}

void run_info() {
  const auto& a = args();
  // The file's own architecture decides the loader (each validates the whole file).
  const std::string architecture = learn::model_file_architecture(a.file);
  const learn::ModelMetadata metadata = architecture == "flagnet"    ? learn::FlagNet::load(a.file).metadata()
                                        : architecture == "relaxnet" ? learn::RelaxNet::load(a.file).metadata()
                                                                     : learn::DirectionNetwork::load(a.file).metadata();
  fmt::print("{}: {} bytes\n{}", a.file, std::filesystem::file_size(a.file), learn::describe(metadata));
  if (architecture == "relaxnet") {
    const auto net = learn::RelaxNet::load(a.file);
    const auto all_fluid = net.all_fluid_factors();
    const auto range = net.factor_range();
    fmt::print("relaxation       all-fluid neighbourhood: interior {:.4f}, band {:.4f}; over all flag patterns: "
               "interior {:.4f}..{:.4f}, band {:.4f}..{:.4f}\n",
               all_fluid[0], all_fluid[1], range[0], range[1], range[2], range[3]);
  }
  fmt::print("backend          {}\n", learn::backend_info());
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
  info->add_option("FILE", a.file, "Model file")->required();
  info->callback(run_info);
});

}  // namespace
}  // namespace dcdm::cli
