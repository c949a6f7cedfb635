// Loads the LibTorch module dcdm_torch on first use (see torch_backend.hpp).
#include "torch_backend.hpp"

#include <mutex>

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

}  // namespace dcdm::cli
