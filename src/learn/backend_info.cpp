#include <torch/torch.h>
#include <ATen/Config.h>

#include <fmt/format.h>

#include "dcdm/learn.hpp"

namespace dcdm::learn {

std::string backend_info() {
  return fmt::format("LibTorch {}, oneDNN {}, {} threads", TORCH_VERSION,
                     at::hasMKLDNN() ? "available" : "unavailable", at::get_num_threads());
}

}  // namespace dcdm::learn
