#pragma once
// The step-based trainer shared by the multi-matrix generators (FlagNet, RelaxNet): Adam on
// batches drawn from one dataset folder at a time (round robin), a validation every K steps,
// the output file keeping the weights with the best validation loss or the fewest DCDM
// iterations, and an atomic checkpoint (weights + Adam state + step) that `--resume` continues
// and that refuses other data or options. Internal to src/learn (LibTorch-visible).
#include <torch/torch.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

#include "dcdm/dataset.hpp"
#include "dcdm/dcdm.hpp"
#include "dcdm/flagnet.hpp"

namespace dcdm::learn {

struct StepTrainer {
  std::string name;  // "flagnet" | "relaxnet": log prefix and checkpoint format
  torch::nn::Module* module = nullptr;
  std::vector<std::int64_t> train_samples;  // per dataset: samples [0, n) train, the rest validate
  // The loss of these training samples of dataset `set` (autograd on).
  std::function<torch::Tensor(std::size_t set, const std::vector<std::int64_t>& samples)> batch_loss;
  std::function<double()> validation_loss;
  std::function<double()> validation_iterations;  // with the current weights (see below)
  // Writes the output model file from the current weights with this training summary.
  std::function<void(const nlohmann::json& summary)> save_model;
  nlohmann::json config;           // data and options the checkpoint is tied to
  std::string start_description;   // e.g. "untrained (V-cycle) model"
  std::int64_t parameter_count = 0;
};

// The samples of one dataset folder as the rows of a float tensor [n, cells] (the first
// options.max_samples, 0 = all) and the split: the last ceil(validation_fraction n) rows (at
// least one, and at least one left to train) validate. InputError naming the folder below 2.
// On a singular domain every row is projected onto the range and renormalised.
struct DatasetSamples {
  torch::Tensor rows;
  std::int64_t train = 0, val = 0;
};
DatasetSamples read_dataset_samples(const ShardedDataset& dataset, const FlagNetTrainOptions& options,
                                    const std::string& name);

// Loads every dataset folder of options.data with load(dir, options) (a trainer's set type
// with domain, train, val, geometry.levels and recipe), logs one line per set and collects the
// data recipes for the model file and the checkpoint.
template <class Set, class Load>
std::vector<Set> load_training_sets(const FlagNetTrainOptions& options, const std::string& name, Load&& load,
                                    const std::function<void(const std::string&)>& log, nlohmann::json& recipes) {
  std::vector<Set> sets;
  recipes = nlohmann::json::array();
  for (const auto& dir : options.data) {
    sets.push_back(load(dir, options));
    const Set& s = sets.back();
    recipes.push_back({{"dir", dir.string()}, {"recipe", nlohmann::json::parse(s.recipe)}});
    if (log)
      log(fmt::format("{}: {} ({}: {} train + {} validation samples, {} levels)", name, dir.string(),
                      s.domain.dims().str(), s.train, s.val, s.geometry.levels.size()));
  }
  return sets;
}

// Checks the options every step-based trainer shares (InputError naming the option).
void check_step_training_options(const FlagNetTrainOptions& options, const std::string& name);

FlagNetTrainResult run_step_training(const FlagNetTrainOptions& options, StepTrainer& trainer,
                                     const std::function<void(const std::string&)>& log);

// DCDM iterations to rtol 1e-6 on one matrix (b = the sample, projected on singular domains)
// with the generator the factory makes, fractional: the 1e-6 crossing interpolated in log
// residual between iterations (integer counts at 32^3, about 7 a matrix, are too coarse to rank
// weights that differ a little); an unconverged solve counts as the iteration limit.
double selection_iterations(const Domain& domain, const float* sample, GeneratorFactory factory,
                            const DcdmOptions& options, const std::string& name);

}  // namespace dcdm::learn
