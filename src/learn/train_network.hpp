#pragma once
// Internal (LibTorch-visible) pieces of the trainer, shared by training.cpp only: the masked
// grid operator as tensors, the scale-invariant loss, and the trainable network adapter.
#include <torch/torch.h>

#include <array>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "dcdm/grid.hpp"
#include "dcdm/learn.hpp"

namespace dcdm::learn {

// The masked 7-point operator of a domain as tensors of shape [1, 1, nz, ny, nx]:
// y = diag * x - sum_f w_f * x(neighbour across f). Differentiable in x; batched.
class GridOperatorTensors {
 public:
  GridOperatorTensors(const Domain& domain, torch::ScalarType dtype);
  torch::Tensor apply(const torch::Tensor& x) const;  // x: [B, 1, nz, ny, nx]

 private:
  Dims dims_;
  torch::Tensor diag_;
  std::array<torch::Tensor, 6> weight_;  // indexed by Face
};

// mean over the batch of ||b - A x~||^2 with x~ = q (q.b)/(q.Aq).
torch::Tensor scale_invariant_loss(const GridOperatorTensors& a, const torch::Tensor& b,
                                   const torch::Tensor& q);

// A network the trainer can run autograd on and save as a model file.
struct TrainableNetwork {
  std::shared_ptr<torch::nn::Module> module;
  std::function<torch::Tensor(const torch::Tensor&)> forward;
  // Writes the project's model file (atomic) with `metadata` (variant and parameter count
  // are filled in).
  std::function<void(const std::filesystem::path&, ModelMetadata metadata)> save_model;
};
TrainableNetwork make_trainable_network(const std::string& arch);

}  // namespace dcdm::learn
