// The module dcdm_torch: the CLI's LibTorch-backed functions (torch_backend.hpp), loaded by
// the tool with dlopen when a command needs them.
#include <memory>

#include <fmt/format.h>

#include "dcdm/flagnet.hpp"
#include "dcdm/learn.hpp"
#include "dcdm/relaxnet.hpp"
#include "dcdm/training.hpp"
#include "torch_backend.hpp"

namespace dcdm::cli {
namespace {

class LoadedNetwork final : public NetworkModel {
 public:
  explicit LoadedNetwork(learn::DirectionNetwork net) : net_(std::move(net)) {}
  const learn::ModelMetadata& metadata() const override { return net_.metadata(); }
  bool bfloat16() const override { return net_.inference_options().precision == learn::NetworkPrecision::BFloat16; }
  std::unique_ptr<LinearOperator> make_generator(const Domain& domain) const override {
    return net_.make_generator(domain);
  }
  learn::DirectionNetwork& net() { return net_; }

 private:
  learn::DirectionNetwork net_;
};

class Backend final : public TorchBackend {
 public:
  std::string backend_info() const override { return learn::backend_info(); }

  std::shared_ptr<NetworkModel> load_network(const std::filesystem::path& path, const std::string& precision,
                                             double input_scale) const override {
    auto loaded = std::make_shared<LoadedNetwork>(learn::DirectionNetwork::load(path));
    learn::InferenceOptions o = loaded->net().inference_options();
    o.precision = learn::parse_network_precision(precision, "--network-precision");
    o.input_scale = input_scale;
    loaded->net().set_inference_options(o);
    return loaded;
  }

  std::int64_t write_random_network(const std::string& variant, std::uint64_t seed, const std::filesystem::path& out,
                                    const std::string& created_by) const override {
    auto net = learn::DirectionNetwork::random(variant, seed);
    net.metadata().created_by = created_by;
    net.save(out);
    return net.parameter_count();
  }

  learn::TrainResult train(const learn::TrainOptions& options, const std::function<void(const std::string&)>& log,
                           const std::function<void(const std::string&)>& progress) const override {
    return learn::train(options, log, progress);
  }

  learn::FlagNetTrainResult train_flagnet(const learn::FlagNetTrainOptions& options,
                                          const std::function<void(const std::string&)>& log) const override {
    return learn::train_flagnet(options, log);
  }

  learn::FlagNetTrainResult train_relaxnet(const learn::FlagNetTrainOptions& options,
                                           const std::function<void(const std::string&)>& log) const override {
    return learn::train_relaxnet(options, log);
  }
};

}  // namespace
}  // namespace dcdm::cli

extern "C" __attribute__((visibility("default"))) const void* dcdm_torch_backend(int interface_version) {
  static const dcdm::cli::Backend backend;
  return interface_version == dcdm::cli::kTorchBackendInterface ? static_cast<const dcdm::cli::TorchBackend*>(&backend) : nullptr;
}
