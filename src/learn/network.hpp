#pragma once
// Internal, LibTorch-visible definitions of the DCDM network, for inference (network.cpp)
// and for training code in src/learn (autograd on PaperNet, then wrap it in a
// DirectionNetwork to save it as a model file).
//
// Architecture (README "The method"): all convolutions 3x3x3, 16 filters, "same" zero
// padding, ReLU unless stated; "+" is a skip connection added after the ReLU.
//   c0 = conv(input)                              (linear)
//   a = down0(c0); b = down1(a);
//   repeat (pairs - 1): a = down(b) + a; b = down(a)      pairs: 2 (paper64), 3 (paper128)
//   P = avgpool2(b); repeat coarse_blocks: Q = conv(P); P = conv(Q) + P   (3 | 5)
//   U = upsample2(P) + b; repeat up_blocks: V = conv(U); U = conv(V) + U  (2 | 3)
//   out = 1x1x1 conv 16 -> 1                      (linear)
// Input and output are [batch, 1, nz, ny, nx] with even spatial sizes.
#include <torch/torch.h>

#include <mutex>
#include <string>
#include <vector>

#include "dcdm/learn.hpp"
#include "weight_bias_model.hpp"

namespace dcdm::learn {

struct PaperNetSpec {
  std::string variant;
  int down_pairs = 2;
  int coarse_blocks = 3;
  int up_blocks = 2;
  int channels = 16;
};
// Throws InputError for an unknown variant (the message lists the known ones).
PaperNetSpec paper_net_spec(const std::string& variant);

class PaperNetImpl : public torch::nn::Module {
 public:
  explicit PaperNetImpl(const PaperNetSpec& spec);
  // Autograd-friendly reference forward (training and the onednn = false path).
  torch::Tensor forward(torch::Tensor x);

  const PaperNetSpec& spec() const { return spec_; }
  torch::nn::Conv3d c0{nullptr}, out{nullptr};
  std::vector<torch::nn::Conv3d> down, coarse, up;  // registered as down0.., coarse0.., up0..

 private:
  PaperNetSpec spec_;
};
TORCH_MODULE(PaperNet);

// Fast inference: every layer through oneDNN on blocked (opaque) tensors, weights
// reordered once. Built from the module's current parameters; rebuild after changing them.
class OnednnPlan {
 public:
  OnednnPlan(const PaperNetImpl& net, NetworkPrecision precision);
  // x: dense float [1, 1, nz, ny, nx], even sizes. Returns dense float [1, 1, nz, ny, nx].
  torch::Tensor forward(const torch::Tensor& x) const;

 private:
  struct Conv {
    torch::Tensor weight, bias;  // weight: oneDNN blocked, bias: dense
    std::vector<int64_t> padding;
  };
  Conv prepare(const torch::nn::Conv3d& conv) const;
  torch::Tensor conv(const torch::Tensor& x, const Conv& c, bool relu) const;

  NetworkPrecision precision_;
  PaperNetSpec spec_;
  Conv c0_, out_;
  std::vector<Conv> down_, coarse_, up_;
};

struct DirectionNetwork::Impl {
  PaperNet net;
  ModelMetadata metadata;
  InferenceOptions options;
  // Lazily built oneDNN plan; invalidate_plan() after changing parameters (training).
  mutable std::mutex plan_mutex;
  mutable std::shared_ptr<const OnednnPlan> plan;
  void invalidate_plan() {
    std::lock_guard lock(plan_mutex);
    plan.reset();
  }
  std::shared_ptr<const OnednnPlan> onednn_plan() const;
  // Full inference on an even-sized dense float tensor [1, 1, nz, ny, nx].
  torch::Tensor infer(const torch::Tensor& x) const;

  explicit Impl(PaperNet n) : net(std::move(n)) {}
};

// Model file I/O (network_file.cpp). load_model validates and throws InputError naming `path`.
void save_model(const std::filesystem::path& path, PaperNetImpl& net, ModelMetadata metadata);
std::shared_ptr<DirectionNetwork::Impl> load_model(const std::filesystem::path& path);

// The small multilevel generators' model files (FlagNet, RelaxNet) are plain C++:
// save_weight_bias_model / load_weight_bias_model in weight_bias_model.hpp (model_file.cpp).

// Call before the first LibTorch operation of the process (training code too): LibTorch's
// lazy thread initialisation would otherwise lower the process-wide OpenMP thread count to
// its own default (1 on a 2-core machine). Idempotent.
void init_torch_threads();

// Sets LibTorch's intra-op threads for one inference on `cells` grid cells (threads 0 = auto:
// the OpenMP maximum, 1 for small grids) and restores the OpenMP setting afterwards.
class ScopedTorchThreads {
 public:
  ScopedTorchThreads(int threads, std::int64_t cells);
  ~ScopedTorchThreads();
  ScopedTorchThreads(const ScopedTorchThreads&) = delete;
  ScopedTorchThreads& operator=(const ScopedTorchThreads&) = delete;

 private:
  int previous_ = 1;
};

}  // namespace dcdm::learn
