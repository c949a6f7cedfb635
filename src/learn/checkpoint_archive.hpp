#pragma once
// The archive every training checkpoint is (the reference networks' epoch trainer and the
// step-based trainer): the module's and the optimizer's archives beside a JSON state string,
// written atomically. Each trainer keeps its own state fields and checks.
#include <torch/torch.h>

#include <filesystem>
#include <sstream>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "dcdm/dataset.hpp"
#include "dcdm/error.hpp"

namespace dcdm::learn {

inline void write_checkpoint_archive(const std::filesystem::path& path, torch::nn::Module& module,
                                     torch::optim::Optimizer& optimizer, const nlohmann::json& state) {
  torch::serialize::OutputArchive archive, model_archive, optimizer_archive;
  module.save(model_archive);
  optimizer.save(optimizer_archive);
  archive.write("model", model_archive);
  archive.write("optimizer", optimizer_archive);
  archive.write("state", c10::IValue(state.dump()));
  std::ostringstream bytes;
  archive.save_to(bytes);
  const std::string text = bytes.str();
  write_atomic(path, {text.data(), text.size()});
}

struct CheckpointArchive {
  torch::serialize::InputArchive archive;
  nlohmann::json state;
};

// The state of the checkpoint at `path`; InputError naming the file when there is none or it
// is not a readable `what` checkpoint.
inline CheckpointArchive read_checkpoint_archive(const std::filesystem::path& path, const std::string& what,
                                                 const std::string& missing_hint = "") {
  if (!std::filesystem::exists(path))
    throw InputError(fmt::format("{}: no checkpoint to resume from{}", path.string(), missing_hint));
  CheckpointArchive c;
  try {
    c.archive.load_from(path.string());
    c10::IValue v;
    c.archive.read("state", v);
    c.state = nlohmann::json::parse(v.toStringRef());
  } catch (const std::exception& e) {
    throw InputError(fmt::format("{}: not a readable {} checkpoint ({})", path.string(), what,
                                 std::string(e.what()).substr(0, 200)));
  }
  return c;
}

// Loads the checkpoint's weights and optimizer state (InputError when they do not fit).
inline void load_checkpoint_weights(CheckpointArchive& c, const std::filesystem::path& path, torch::nn::Module& module,
                                    torch::optim::Optimizer& optimizer) {
  try {
    torch::serialize::InputArchive model_archive, optimizer_archive;
    c.archive.read("model", model_archive);
    c.archive.read("optimizer", optimizer_archive);
    module.load(model_archive);
    optimizer.load(optimizer_archive);
  } catch (const std::exception& e) {
    throw InputError(fmt::format("{}: checkpoint weights do not fit this architecture ({})", path.string(),
                                 std::string(e.what()).substr(0, 200)));
  }
}

}  // namespace dcdm::learn
