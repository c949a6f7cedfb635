// The reference network for the method "dcdm" (dcdm/methods.hpp): its generator runs on
// LibTorch, in the module the tool loads when such a model is used (torch_backend.hpp).
#include "dcdm/methods.hpp"
#include "torch_backend.hpp"

namespace dcdm::cli {
namespace {

const bool registered = [] {
  set_network_generator([](const std::string& path, const MethodParams& p) {
    return network_generator(torch_backend(), path, p);
  });
  return true;
}();

}  // namespace
}  // namespace dcdm::cli
