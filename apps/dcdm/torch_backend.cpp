// Loads the LibTorch module dcdm_torch on first use (see torch_backend.hpp).
#include "torch_backend.hpp"

#include <mutex>

#include "dcdm/error.hpp"

#include "modules.hpp"

namespace dcdm::cli {
namespace {
const TorchBackend* g_backend = nullptr;
}  // namespace

const TorchBackend& torch_backend() {
  static std::once_flag once;  // a failed load throws and is tried again by the next call
  std::call_once(once, [] {
    g_backend = static_cast<const TorchBackend*>(load_module(
        "dcdm_torch.so", "DCDM_TORCH_MODULE", "dcdm_torch_backend", kTorchBackendInterface,
        "this command (the reference network or training, on LibTorch; a build with DCDM_BUILD_LEARN=OFF has no "
        "such module)"));
  });
  return *g_backend;
}

const TorchBackend* torch_backend_if_loaded() { return g_backend; }

std::pair<GeneratorFactory, std::string> network_generator(const TorchBackend& backend, const std::string& path,
                                                            const MethodParams& params) {
  std::shared_ptr<const NetworkModel> net =
      backend.load_network(path, params.network_precision, params.network_input_scale);
  GeneratorFactory factory = [net](const LinearSystemView& view) -> std::unique_ptr<LinearOperator> {
    if (!view.domain)
      throw InputError("dcdm: the network needs a voxel domain (a scene, a system folder or a Domain), not a bare "
                       "matrix");
    return net->make_generator(*view.domain);
  };
  return {std::move(factory), net->bfloat16() ? "dcdm[bf16]" : "dcdm"};
}

}  // namespace dcdm::cli
