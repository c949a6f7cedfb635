#include <torch/torch.h>
#include <ATen/Config.h>

#include <fmt/format.h>

#include "dcdm/learn.hpp"
#include "network.hpp"

namespace dcdm::learn {

std::string backend_info() {
  init_torch_threads();
  return fmt::format("LibTorch {}, oneDNN {}, {} threads", TORCH_VERSION,
                     at::hasMKLDNN() ? "available" : "unavailable", at::get_num_threads());
}

}  // namespace dcdm::learn
