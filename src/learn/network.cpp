// The reference DCDM network: module definition, oneDNN inference plan, the direction
// generator and DirectionNetwork. See network.hpp for the architecture.
#include "network.hpp"

#include <ATen/ATen.h>
#include <cpuid.h>
#include <omp.h>

#include <algorithm>
#include <mutex>
#include <chrono>
#include <fmt/format.h>

#include "dcdm/error.hpp"

namespace dcdm::learn {
namespace {

torch::nn::Conv3d make_conv(int cin, int cout, int kernel) {
  return torch::nn::Conv3d(torch::nn::Conv3dOptions(cin, cout, kernel).padding(kernel / 2));
}

Dims even_dims(Dims d) { return {d.nx + (d.nx & 1), d.ny + (d.ny & 1), d.nz + (d.nz & 1)}; }

void check_dims(Dims d, const char* what) {
  if (d.nx < 1 || d.ny < 1 || d.nz < 1)
    throw InputError(fmt::format("{}: grid {} is empty", what, d.str()));
}

// Copies `src` (dims d, x fastest) into the padded dense tensor buffer (dims p), with an
// optional per-cell keep mask; cells outside d stay as they are (zero).
template <class Src, class Keep>
void scatter_padded(const Src* src, double scale, Dims d, Dims p, float* dst, Keep&& keep) {
#pragma omp parallel for schedule(static)
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j) {
      const std::int64_t s = d.index(0, j, k), t = p.index(0, j, k);
      for (int i = 0; i < d.nx; ++i) dst[t + i] = keep(s + i) ? static_cast<float>(scale * src[s + i]) : 0.0f;
    }
}

template <class Dst, class Keep>
void gather_padded(const float* src, Dims d, Dims p, Dst* dst, Keep&& keep) {
#pragma omp parallel for schedule(static)
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j) {
      const std::int64_t s = d.index(0, j, k), t = p.index(0, j, k);
      for (int i = 0; i < d.nx; ++i) dst[s + i] = keep(s + i) ? static_cast<Dst>(src[t + i]) : Dst(0);
    }
}

// The generator: residual field -> direction field on one domain.
class NetworkGenerator final : public LinearOperator {
 public:
  NetworkGenerator(std::shared_ptr<const DirectionNetwork::Impl> impl, const Domain& domain)
      : impl_(std::move(impl)), dims_(domain.dims()), padded_(even_dims(dims_)) {
    check_dims(dims_, "network generator");
    fluid_.resize(static_cast<std::size_t>(dims_.size()));
    for (std::int64_t c = 0; c < dims_.size(); ++c)
      fluid_[c] = domain.cells[c] == CellType::Fluid ? 1 : 0;
    input_ = torch::zeros({1, 1, padded_.nz, padded_.ny, padded_.nx}, torch::kFloat);
    const Dims trained = impl_->metadata.trained_grid;
    if (impl_->options.input_scale > 0) scale_ = impl_->options.input_scale;
    else if (trained.size() > 0) scale_ = std::sqrt(static_cast<double>(dims_.size()) / static_cast<double>(trained.size()));
  }
  std::int64_t size() const override { return dims_.size(); }
  bool is_linear() const override { return false; }  // ReLU network: wants the unit-norm residual
  void apply(dcdm::span<const double> x, dcdm::span<double> y) const override {
    const std::uint8_t* fluid = fluid_.data();
    scatter_padded(x.data(), scale_, dims_, padded_, input_.data_ptr<float>(),
                   [fluid](std::int64_t c) { return fluid[c] != 0; });
    const torch::Tensor out = impl_->infer(input_).contiguous();
    gather_padded(out.data_ptr<float>(), dims_, padded_, y.data(),
                  [fluid](std::int64_t c) { return fluid[c] != 0; });
  }

 private:
  std::shared_ptr<const DirectionNetwork::Impl> impl_;
  Dims dims_, padded_;
  std::vector<std::uint8_t> fluid_;
  double scale_ = 1.0;  // InferenceOptions::input_scale, resolved for this grid
  torch::Tensor input_;  // reused; cells outside fluid and the padding stay zero
};

}  // namespace

// ---------------------------------------------------------------- architecture


PaperNetSpec paper_net_spec(const std::string& variant) {
  if (variant == "paper64") return {"paper64", 2, 3, 2, 16};
  if (variant == "paper128") return {"paper128", 3, 5, 3, 16};
  throw InputError(fmt::format("unknown network variant '{}' (known: paper64, paper128)", variant));
}

PaperNetImpl::PaperNetImpl(const PaperNetSpec& spec) : spec_(spec) {
  const int c = spec.channels;
  c0 = register_module("c0", make_conv(1, c, 3));
  for (int i = 0; i < 2 * spec.down_pairs; ++i)
    down.push_back(register_module(fmt::format("down{}", i), make_conv(c, c, 3)));
  for (int i = 0; i < 2 * spec.coarse_blocks; ++i)
    coarse.push_back(register_module(fmt::format("coarse{}", i), make_conv(c, c, 3)));
  for (int i = 0; i < 2 * spec.up_blocks; ++i)
    up.push_back(register_module(fmt::format("up{}", i), make_conv(c, c, 3)));
  out = register_module("out", make_conv(c, 1, 1));
}

torch::Tensor PaperNetImpl::forward(torch::Tensor x) {
  using torch::relu;
  const auto c = c0(x);
  auto a = relu(down[0](c));
  auto b = relu(down[1](a));
  for (int p = 1; p < spec_.down_pairs; ++p) {
    a = relu(down[2 * p](b)) + a;
    b = relu(down[2 * p + 1](a));
  }
  auto coarse_p = torch::avg_pool3d(b, 2);
  for (int i = 0; i < spec_.coarse_blocks; ++i) {
    const auto q = relu(coarse[2 * i](coarse_p));
    coarse_p = relu(coarse[2 * i + 1](q)) + coarse_p;
  }
  auto u = at::upsample_nearest3d(coarse_p, b.sizes().slice(2)) + b;
  for (int i = 0; i < spec_.up_blocks; ++i) {
    const auto v = relu(up[2 * i](u));
    u = relu(up[2 * i + 1](v)) + u;
  }
  return out(u);
}

// ---------------------------------------------------------------- oneDNN plan

OnednnPlan::OnednnPlan(const PaperNetImpl& net, NetworkPrecision precision)
    : precision_(precision), spec_(net.spec()) {
  c0_ = prepare(net.c0);
  out_ = prepare(net.out);
  for (const auto& c : net.down) down_.push_back(prepare(c));
  for (const auto& c : net.coarse) coarse_.push_back(prepare(c));
  for (const auto& c : net.up) up_.push_back(prepare(c));
}

OnednnPlan::Conv OnednnPlan::prepare(const torch::nn::Conv3d& conv) const {
  Conv c;
  const auto k = conv->weight.size(2);
  c.padding = {k / 2, k / 2, k / 2};
  torch::Tensor w = conv->weight.detach().contiguous();
  torch::Tensor b = conv->bias.detach().contiguous();
  if (precision_ == NetworkPrecision::BFloat16) {
    w = w.to(torch::kBFloat16);
    b = b.to(torch::kBFloat16);
  }
  c.weight = at::mkldnn_reorder_conv3d_weight(w.to_mkldnn(), c.padding, {1, 1, 1}, {1, 1, 1}, 1);
  c.bias = b;
  return c;
}

torch::Tensor OnednnPlan::conv(const torch::Tensor& x, const Conv& c, bool relu) const {
  auto y = at::mkldnn_convolution(x, c.weight, c.bias, c.padding, {1, 1, 1}, {1, 1, 1}, 1);
  if (relu) at::relu_(y);
  return y;
}

torch::Tensor OnednnPlan::forward(const torch::Tensor& x) const {
  const bool bf16 = precision_ == NetworkPrecision::BFloat16;
  const auto in = bf16 ? x.to(torch::kBFloat16).to_mkldnn() : x.to_mkldnn();
  torch::Tensor b;
  {
    const auto c = conv(in, c0_, false);
    auto a = conv(c, down_[0], true);
    b = conv(a, down_[1], true);
    for (int p = 1; p < spec_.down_pairs; ++p) {
      a = conv(b, down_[2 * p], true).add_(a);
      b = conv(a, down_[2 * p + 1], true);
    }
  }
  auto coarse_p = at::avg_pool3d(b, {2, 2, 2}, {2, 2, 2});
  for (int i = 0; i < spec_.coarse_blocks; ++i) {
    const auto q = conv(coarse_p, coarse_[2 * i], true);
    coarse_p = conv(q, coarse_[2 * i + 1], true).add_(coarse_p);
  }
  // No oneDNN nearest upsampling in LibTorch 1.13: a plain round trip on the coarse level.
  auto up_dense = at::upsample_nearest3d(coarse_p.to_dense(torch::kFloat), x.sizes().slice(2));
  auto u = (bf16 ? up_dense.to(torch::kBFloat16).to_mkldnn() : up_dense.to_mkldnn()).add_(b);
  coarse_p.reset();
  up_dense.reset();
  b.reset();
  for (int i = 0; i < spec_.up_blocks; ++i) {
    const auto v = conv(u, up_[2 * i], true);
    u = conv(v, up_[2 * i + 1], true).add_(u);
  }
  return conv(u, out_, false).to_dense(torch::kFloat);
}

// ---------------------------------------------------------------- DirectionNetwork

void init_torch_threads() {
  // LibTorch's first parallel call on a thread sets the OpenMP thread count to its own default
  // (here: 1 on a 2-core machine), silently making every later OpenMP loop in the process
  // serial. Pinning its setting to the OpenMP maximum first makes that initialisation a no-op.
  static std::once_flag once;
  std::call_once(once, [] { at::set_num_threads(std::max(1, omp_get_max_threads())); });
}

ScopedTorchThreads::ScopedTorchThreads(int threads, std::int64_t cells) {
  init_torch_threads();
  previous_ = omp_get_max_threads();
  // Below ~24^3 cells a layer is too short to amortise a parallel region (and with other
  // processes on the cores a lost barrier costs a time slice): one thread is faster.
  const int want = std::max(1, threads > 0 ? threads : (cells < 24 * 24 * 24 ? 1 : previous_));
  if (want != previous_) at::set_num_threads(want);
}

ScopedTorchThreads::~ScopedTorchThreads() {
  // LibTorch's intra-op pool is the OpenMP runtime: give the rest of the program its setting back.
  if (omp_get_max_threads() != previous_) at::set_num_threads(previous_);
}

std::shared_ptr<const OnednnPlan> DirectionNetwork::Impl::onednn_plan() const {
  std::lock_guard lock(plan_mutex);
  if (!plan) {
    c10::InferenceMode guard;
    plan = std::make_shared<const OnednnPlan>(*net, options.precision);
  }
  return plan;
}

torch::Tensor DirectionNetwork::Impl::infer(const torch::Tensor& x) const {
  ScopedTorchThreads threads(options.threads, x.numel());
  if (options.onednn) {
    const auto p = onednn_plan();
    c10::InferenceMode guard;
    return p->forward(x);
  }
  c10::InferenceMode guard;
  auto& module = const_cast<PaperNetImpl&>(*net);  // forward() is not const in LibTorch
  if (options.precision == NetworkPrecision::BFloat16)
    throw InputError("bfloat16 inference needs the oneDNN path");
  return module.forward(x);
}

DirectionNetwork::DirectionNetwork(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {
  if (!impl_) throw Error("DirectionNetwork: null implementation");
  impl_->metadata.parameter_count = parameter_count();
  impl_->metadata.variant = impl_->net->spec().variant;
}
DirectionNetwork::DirectionNetwork(DirectionNetwork&&) noexcept = default;
DirectionNetwork& DirectionNetwork::operator=(DirectionNetwork&&) noexcept = default;
DirectionNetwork::~DirectionNetwork() = default;

DirectionNetwork DirectionNetwork::random(const std::string& variant, std::uint64_t seed) {
  init_torch_threads();
  const auto spec = paper_net_spec(variant);
  torch::manual_seed(seed);
  auto impl = std::make_shared<Impl>(PaperNet(spec));
  impl->metadata.created_by = fmt::format("random initialisation, seed {}", seed);
  return DirectionNetwork(std::move(impl));
}

DirectionNetwork DirectionNetwork::load(const std::filesystem::path& path) {
  return DirectionNetwork(load_model(path));
}

void DirectionNetwork::save(const std::filesystem::path& path) const {
  save_model(path, *impl_->net, impl_->metadata);
}

const ModelMetadata& DirectionNetwork::metadata() const { return impl_->metadata; }
ModelMetadata& DirectionNetwork::metadata() { return impl_->metadata; }

std::int64_t DirectionNetwork::parameter_count() const {
  std::int64_t n = 0;
  for (const auto& p : impl_->net->parameters()) n += p.numel();
  return n;
}

double DirectionNetwork::forward_flops(Dims dims) const {
  const auto& s = impl_->net->spec();
  const Dims p = even_dims(dims);
  const double fine = static_cast<double>(p.size()), coarse = fine / 8.0;
  const double c = s.channels, conv = 2.0 * 27.0 * c * c;
  return fine * (2.0 * 27.0 * c + 2.0 * c) +
         conv * (fine * 2 * (s.down_pairs + s.up_blocks) + coarse * 2 * s.coarse_blocks);
}

void DirectionNetwork::set_inference_options(const InferenceOptions& options) {
  if (options.precision == NetworkPrecision::BFloat16 && !options.onednn)
    throw InputError("bfloat16 inference needs the oneDNN path");
  impl_->options = options;
  impl_->invalidate_plan();
}
const InferenceOptions& DirectionNetwork::inference_options() const { return impl_->options; }

Field<float> DirectionNetwork::forward(const Field<float>& input) const {
  const Dims d = input.dims();
  check_dims(d, "network input");
  const Dims p = even_dims(d);
  auto x = torch::zeros({1, 1, p.nz, p.ny, p.nx}, torch::kFloat);
  const auto all = [](std::int64_t) { return true; };
  scatter_padded(input.data(), 1.0, d, p, x.data_ptr<float>(), all);
  const auto y = impl_->infer(x).contiguous();
  Field<float> out(d);
  gather_padded(y.data_ptr<float>(), d, p, out.data(), all);
  return out;
}

std::unique_ptr<LinearOperator> DirectionNetwork::make_generator(const Domain& domain) const {
  return std::make_unique<NetworkGenerator>(impl_, domain);
}

// ---------------------------------------------------------------- misc

double isolated_conv_seconds(Dims dims, NetworkPrecision precision, int repetitions) {
  check_dims(dims, "isolated convolution");
  ScopedTorchThreads threads(0, dims.size());
  c10::InferenceMode guard;
  const bool bf16 = precision == NetworkPrecision::BFloat16;
  torch::manual_seed(0);
  auto x = torch::randn({1, 16, dims.nz, dims.ny, dims.nx});
  auto w = torch::randn({16, 16, 3, 3, 3}) * 0.05;
  auto b = torch::randn({16});
  if (bf16) {
    x = x.to(torch::kBFloat16);
    w = w.to(torch::kBFloat16);
    b = b.to(torch::kBFloat16);
  }
  const std::vector<int64_t> pad{1, 1, 1}, one{1, 1, 1};
  const auto xm = x.to_mkldnn();
  const auto wm = at::mkldnn_reorder_conv3d_weight(w.to_mkldnn(), pad, one, one, 1);
  const auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < repetitions; ++r) {
    auto y = at::mkldnn_convolution(xm, wm, b, pad, one, one, 1);
    (void)y;
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

const char* to_string(NetworkPrecision p) {
  return p == NetworkPrecision::BFloat16 ? "bfloat16" : "float32";
}

NetworkPrecision parse_network_precision(const std::string& text, const std::string& what) {
  if (text == "float32" || text == "fp32" || text == "f32") return NetworkPrecision::Float32;
  if (text == "bfloat16" || text == "bf16") return NetworkPrecision::BFloat16;
  if (text == "auto") return cpu_has_native_bf16() ? NetworkPrecision::BFloat16 : NetworkPrecision::Float32;
  throw InputError(fmt::format("{}: unknown precision '{}' (float32, bfloat16 or auto)", what, text));
}

bool cpu_has_native_bf16() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool amx_bf16 = (d >> 22) & 1u;
  unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
  const bool avx512_bf16 = a >= 1 && __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1) && ((a1 >> 5) & 1u);
  return amx_bf16 || avx512_bf16;
}

}  // namespace dcdm::learn
