// The reference network for the method "dcdm" (dcdm/methods.hpp): its generator runs on
// LibTorch, in the module the tool loads when such a model is used (torch_backend.hpp).
#include <memory>

#include <fmt/format.h>

#include "dcdm/error.hpp"
#include "dcdm/methods.hpp"
#include "torch_backend.hpp"

namespace dcdm::cli {
namespace {

const bool registered = [] {
  set_network_generator([](const std::string& path, const MethodParams& p) -> std::pair<GeneratorFactory, std::string> {
    std::shared_ptr<const NetworkModel> net =
        torch_backend().load_network(path, p.network_precision, p.network_input_scale);
    GeneratorFactory factory = [net](const LinearSystemView& view) -> std::unique_ptr<LinearOperator> {
      if (!view.domain)
        throw InputError("dcdm: the network needs a voxel domain (use --scene or --system, not a bare --matrix)");
      return net->make_generator(*view.domain);
    };
    // The report names a bfloat16 run (--network-precision auto decides per CPU).
    return {std::move(factory), net->bfloat16() ? "dcdm[bf16]" : "dcdm"};
  });
  return true;
}();

}  // namespace
}  // namespace dcdm::cli
