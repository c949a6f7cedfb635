#pragma once
// The CLI's LibTorch-backed functions: the reference network (dcdm/learn.hpp) and training
// (dcdm/training.hpp, the trainers of dcdm/flagnet.hpp and dcdm/relaxnet.hpp). They live in the
// module dcdm_torch (apps/dcdm/torch/), which the tool loads with dlopen the first time a
// command needs one, so that `dcdm --version`, the classical solvers and the relaxnet/flagnet
// generators start without loading LibTorch (modules.hpp). The module is built from the same
// sources and compiler as the tool, so the interface is a C++ class; the module's one exported
// symbol checks that both sides agree on kTorchBackendInterface.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "dcdm/flagnet.hpp"
#include "dcdm/learn.hpp"
#include "dcdm/linalg.hpp"
#include "dcdm/methods.hpp"
#include "dcdm/training.hpp"

namespace dcdm::cli {

// Bumped whenever TorchBackend or the types it passes change.
inline constexpr int kTorchBackendInterface = 1;

// A loaded reference network with its inference options.
class NetworkModel {
 public:
  virtual ~NetworkModel() = default;
  virtual const learn::ModelMetadata& metadata() const = 0;
  virtual bool bfloat16() const = 0;
  // The DCDM direction generator for `domain` (which must outlive it).
  virtual std::unique_ptr<LinearOperator> make_generator(const Domain& domain) const = 0;
};

class TorchBackend {
 public:
  virtual ~TorchBackend() = default;
  // "LibTorch 1.13.1, oneDNN available, 2 threads"
  virtual std::string backend_info() const = 0;
  // `precision`: the --network-precision text; InputError naming the file or option.
  virtual std::shared_ptr<NetworkModel> load_network(const std::filesystem::path& path, const std::string& precision,
                                                     double input_scale) const = 0;
  // Writes an untrained network; returns its parameter count.
  virtual std::int64_t write_random_network(const std::string& variant, std::uint64_t seed,
                                            const std::filesystem::path& out, const std::string& created_by) const = 0;
  virtual learn::TrainResult train(const learn::TrainOptions& options,
                                   const std::function<void(const std::string&)>& log,
                                   const std::function<void(const std::string&)>& progress) const = 0;
  virtual learn::FlagNetTrainResult train_flagnet(const learn::FlagNetTrainOptions& options,
                                                  const std::function<void(const std::string&)>& log) const = 0;
  virtual learn::FlagNetTrainResult train_relaxnet(const learn::FlagNetTrainOptions& options,
                                                   const std::function<void(const std::string&)>& log) const = 0;
};

// The module, loaded on first use (modules.hpp: $DCDM_TORCH_MODULE, next to the tool, in
// <prefix>/lib/dcdm); InputError saying where it looked when none loads (a build with
// DCDM_BUILD_LEARN=OFF has none).
const TorchBackend& torch_backend();
// Null until some command has loaded the module (reports say "not loaded" rather than load it).
const TorchBackend* torch_backend_if_loaded();

// The method "dcdm" with a reference-network file through `backend` (set_network_generator's
// loader, for the tool and the Python package alike): the generator factory and the report name
// ("dcdm", or "dcdm[bf16]" for a bfloat16 run).
std::pair<GeneratorFactory, std::string> network_generator(const TorchBackend& backend, const std::string& path,
                                                            const MethodParams& params);

}  // namespace dcdm::cli

// The module's entry point: its TorchBackend when `interface_version` matches, else null.
extern "C" const void* dcdm_torch_backend(int interface_version);
