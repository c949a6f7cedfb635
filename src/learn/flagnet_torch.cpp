// FlagNet through LibTorch: the dense autograd forward (the training path, checked against
// the OpenMP kernels of flagnet.cpp by the tests) and the trainer over many dataset folders
// (one matrix each). See dcdm/flagnet.hpp; the model file is plain C++ (flagnet.cpp).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <sstream>

#include <fmt/format.h>

#include "dcdm/dataset.hpp"
#include "dcdm/dcdm.hpp"
#include "dcdm/error.hpp"
#include "dcdm/flagnet.hpp"
#include "dcdm/poisson.hpp"
#include "network.hpp"
#include "step_training.hpp"
#include "train_network.hpp"

namespace dcdm::learn {

namespace {

using json = nlohmann::json;
using Spec = FlagNetSpec;
namespace F = torch::nn::functional;

torch::Tensor weight_tensor(const FlagNetParameters& p) {
  return torch::from_blob(const_cast<float*>(p.weight.data()),
                          {Spec::kGroups, Spec::kChannels, Spec::kFlagChannels, 3, 3, 3}, torch::kFloat)
      .clone();
}
torch::Tensor bias_tensor(const FlagNetParameters& p) {
  return torch::from_blob(const_cast<float*>(p.bias.data()), {Spec::kGroups, Spec::kChannels}, torch::kFloat)
      .clone();
}
void copy_to(const torch::Tensor& t, std::vector<float>& out) {
  const auto c = t.detach().to(torch::kFloat).contiguous();
  out.assign(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

// The trainable parameters.
struct FlagNetModuleImpl : torch::nn::Module {
  torch::Tensor weight, bias;
  explicit FlagNetModuleImpl(const FlagNetParameters& p) {
    weight = register_parameter("weight", weight_tensor(p));
    bias = register_parameter("bias", bias_tensor(p));
  }
  FlagNetParameters parameters_copy() const {
    FlagNetParameters p;
    copy_to(weight, p.weight);
    copy_to(bias, p.bias);
    return p;
  }
};
TORCH_MODULE(FlagNetModule);

// Per-domain constant tensors of every level (from flagnet_level_flags, the same code the
// kernels use).
struct LevelTensors {
  torch::Tensor features;  // [1, 2, nz+2, ny+2, nx+2] (one ghost layer)
  torch::Tensor base;      // [1, kStencils * 27, nz, ny, nx]
  torch::Tensor mask;      // [1, 1, nz, ny, nx]
  torch::Tensor mix_base;  // [1, 1, nz, ny, nx] (undefined on the coarsest level)
  torch::Tensor coarse_cells, coarse_inverse;  // coarsest level: flat cell indices [m], C [m, m]
  int group = 0;
};

struct Geometry {
  std::vector<LevelTensors> levels;
  torch::Tensor restrict_kernel, prolong_kernel;  // [1, 1, 4, 4, 4]
};

Geometry make_geometry(const Domain& domain) {
  const auto flags = flagnet_level_flags(domain);
  const int count = static_cast<int>(flags.size());
  for (const auto& l : flags) {
    const Dims d = l.dims;
    if (&l != &flags.back() && (d.nx % 2 || d.ny % 2 || d.nz % 2))
      throw InputError(fmt::format("flagnet training: grid {} needs every axis divisible by {} (level of {})",
                                   domain.dims().str(), 1 << (count - 1), d.str()));
  }
  Geometry g;
  for (int li = 0; li < count; ++li) {
    const FlagNetLevelFlags& l = flags[li];
    const Dims d = l.dims;
    LevelTensors t;
    t.group = Spec::group(li, count);
    auto feat = torch::zeros({1, 2, d.nz + 2, d.ny + 2, d.nx + 2}, torch::kFloat);
    constexpr int kBase = Spec::kStencils * Spec::kTaps;
    auto base = torch::zeros({1, kBase, d.nz, d.ny, d.nx}, torch::kFloat);
    auto mask = torch::zeros({1, 1, d.nz, d.ny, d.nx}, torch::kFloat);
    auto mix = torch::zeros({1, 1, d.nz, d.ny, d.nx}, torch::kFloat);
    auto fa = feat.accessor<float, 5>();
    auto ba = base.accessor<float, 5>();
    auto ma = mask.accessor<float, 5>();
    auto xa = mix.accessor<float, 5>();
    for (int k = -1; k <= d.nz; ++k)
      for (int j = -1; j <= d.ny; ++j)
        for (int i = -1; i <= d.nx; ++i) {
          fa[0][0][k + 1][j + 1][i + 1] = l.fluid[l.at(i, j, k)];
          fa[0][1][k + 1][j + 1][i + 1] = l.air[l.at(i, j, k)];
        }
    float fluid27[27], air27[27], out[kBase];
    for (int k = 0; k < d.nz; ++k)
      for (int j = 0; j < d.ny; ++j)
        for (int i = 0; i < d.nx; ++i) {
          const std::int64_t p = l.at(i, j, k);
          ma[0][0][k][j][i] = l.mask[p];
          if (l.mask[p] == 0.0f) continue;
          if (!l.mix_base.empty()) xa[0][0][k][j][i] = l.mix_base[p];
          for (int t = 0; t < 27; ++t) {
            const std::int64_t q = l.at(i + t % 3 - 1, j + (t / 3) % 3 - 1, k + t / 9 - 1);
            fluid27[t] = l.fluid[q];
            air27[t] = l.air[q];
          }
          flagnet_base_stencils(fluid27, air27, out);
          for (int c = 0; c < kBase; ++c) ba[0][c][k][j][i] = out[c];
        }
    t.features = feat;
    t.base = base;
    t.mask = mask;
    if (li + 1 < count) {
      t.mix_base = mix;
    } else {
      const FlagNetCoarseSolve cs = flagnet_coarse_solve(l);
      const auto m = static_cast<std::int64_t>(cs.cells.size());
      std::vector<std::int64_t> flat;
      for (std::int64_t p : cs.cells) {
        const std::int64_t i = p % l.px - 1, j = (p / l.px) % l.py - 1, k = p / (std::int64_t(l.px) * l.py) - 1;
        flat.push_back(i + d.nx * (j + std::int64_t(d.ny) * k));
      }
      t.coarse_cells = torch::tensor(flat, torch::kLong);
      t.coarse_inverse = torch::from_blob(const_cast<float*>(cs.inverse.data()), {m, m}, torch::kFloat).clone();
    }
    g.levels.push_back(std::move(t));
  }
  const auto w4 = torch::tensor({0.25f, 0.75f, 0.75f, 0.25f});
  const auto k3 = (w4.view({4, 1, 1}) * w4.view({1, 4, 1}) * w4.view({1, 1, 4})).view({1, 1, 4, 4, 4});
  g.prolong_kernel = k3;
  g.restrict_kernel = k3 * 0.125f;
  return g;
}

// x: [B, 1, nz, ny, nx]; coef channels first..first+26; returns mask * K x.
torch::Tensor apply_stencil(const torch::Tensor& coef, int first, const torch::Tensor& mask, const torch::Tensor& x) {
  const auto xp = F::pad(x, F::PadFuncOptions({1, 1, 1, 1, 1, 1}));
  const auto nz = x.size(2), ny = x.size(3), nx = x.size(4);
  torch::Tensor out;
  for (int t = 0; t < 27; ++t) {
    const int dx = t % 3, dy = (t / 3) % 3, dz = t / 9;
    const auto shifted = xp.slice(2, dz, dz + nz).slice(3, dy, dy + ny).slice(4, dx, dx + nx);
    const auto term = coef.narrow(1, first + t, 1) * shifted;
    out = t == 0 ? term : out + term;
  }
  return out * mask;
}

torch::Tensor forward(FlagNetModuleImpl& m, const Geometry& g, const torch::Tensor& b0) {
  const int count = static_cast<int>(g.levels.size());
  std::vector<torch::Tensor> coef(count);
  for (int li = 0; li < count; ++li) {
    const auto& l = g.levels[li];
    const auto w = m.weight[l.group];
    const auto learned = F::conv3d(l.features, w, F::Conv3dFuncOptions().bias(m.bias[l.group]));
    coef[li] = torch::cat({l.base, torch::zeros_like(l.mask)}, 1) + learned;
  }
  constexpr int kA = Spec::kOperatorChannel;
  std::function<torch::Tensor(int, const torch::Tensor&)> vcycle = [&](int li, const torch::Tensor& b) {
    const auto& l = g.levels[li];
    const auto& c = coef[li];
    torch::Tensor x;
    if (li + 1 == count) {
      const auto flat = b.flatten(1);  // [B, cells]
      const auto values = flat.index_select(1, l.coarse_cells).matmul(l.coarse_inverse.t());
      x = torch::zeros_like(flat).index_copy(1, l.coarse_cells, values).view_as(b);
    } else {
      x = apply_stencil(c, Spec::stencil_channel(0), l.mask, b);
      for (int s = 1; s < Spec::kPreSmoothers; ++s)
        x = x + apply_stencil(c, Spec::stencil_channel(s), l.mask, b - apply_stencil(c, kA, l.mask, x));
      const auto mix = l.mix_base * (1.0f + c.narrow(1, Spec::kMixChannel, 1));
      const auto r = b - apply_stencil(c, kA, l.mask, x);
      const auto bc = 4.0f * F::conv3d(mix * r, g.restrict_kernel, F::Conv3dFuncOptions().stride(2).padding(1)) *
                      g.levels[li + 1].mask;
      const auto xc = vcycle(li + 1, bc);
      const auto up =
          F::conv_transpose3d(xc, g.prolong_kernel, F::ConvTranspose3dFuncOptions().stride(2).padding(1));
      x = x + l.mask * mix * up;
    }
    for (int s = 0; s < Spec::kPostSmoothers; ++s)
      x = x + apply_stencil(c, Spec::stencil_channel(Spec::kPreSmoothers + 1 + s), l.mask,
                            b - apply_stencil(c, kA, l.mask, x));
    return x;
  };
  return vcycle(0, b0 * g.levels[0].mask);
}

}  // namespace

std::vector<float> flagnet_torch_forward(const FlagNetParameters& parameters, const Domain& domain,
                                         dcdm::span<const float> x, int batch) {
  init_torch_threads();
  const Dims d = domain.dims();
  if (static_cast<std::int64_t>(x.size()) != batch * d.size())
    throw Error("flagnet_torch_forward: input size differs from batch x grid");
  torch::NoGradGuard no_grad;
  FlagNetModule m(parameters);
  const Geometry g = make_geometry(domain);
  const auto in = torch::from_blob(const_cast<float*>(x.data()), {batch, 1, d.nz, d.ny, d.nx}, torch::kFloat);
  const auto out = forward(*m, g, in).contiguous();
  return std::vector<float>(out.data_ptr<float>(), out.data_ptr<float>() + out.numel());
}

// The training loss of `steps` DCDM iterations (x0 = 0, the k = 2 A-orthogonalisation of the
// solver, exact line search), per sample: ||r_steps||^(2 / steps) for a unit-norm b, averaged
// over the batch. One step is the reference scale-invariant loss; more steps score the
// directions on the residuals the iteration actually leaves (what the generator does badly),
// which the one-step loss on Ritz samples stops tracking once the coarse modes are handled.
torch::Tensor unrolled_dcdm_loss(FlagNetModuleImpl& m, const Geometry& g, const GridOperatorTensors& a,
                                 const torch::Tensor& b, int steps) {
  if (steps <= 1) return scale_invariant_loss(a, b, forward(m, g, b));
  const std::vector<std::int64_t> cells{1, 2, 3, 4};
  const auto per_sample = [&](const torch::Tensor& u, const torch::Tensor& v) {
    return (u * v).sum(cells).view({-1, 1, 1, 1, 1});
  };
  constexpr std::size_t kKeptDirections = 2;  // the DCDM solver's default k
  struct Kept {
    torch::Tensor p, ap, pap;
  };
  std::vector<Kept> kept;
  torch::Tensor r = b;
  for (int s = 0; s < steps; ++s) {
    // The generator is linear: its input needs no normalisation.
    auto q = forward(m, g, r);
    auto aq = a.apply(q);
    std::vector<torch::Tensor> betas;
    for (const Kept& k : kept) betas.push_back(per_sample(q, k.ap) / k.pap);
    for (std::size_t j = 0; j < kept.size(); ++j) {
      q = q - betas[j] * kept[j].p;
      aq = aq - betas[j] * kept[j].ap;
    }
    const auto qaq = per_sample(q, aq).clamp_min(1e-30);
    const auto alpha = per_sample(q, r) / qaq;
    r = r - alpha * aq;
    kept.push_back({q, aq, qaq});
    if (kept.size() > kKeptDirections) kept.erase(kept.begin());
  }
  return r.pow(2).sum(cells).pow(1.0 / steps).mean();
}

double flagnet_training_loss(const FlagNetParameters& parameters, const Domain& domain,
                             dcdm::span<const float> b, int batch, int steps) {
  init_torch_threads();
  torch::NoGradGuard no_grad;
  const Dims d = domain.dims();
  if (batch < 1 || static_cast<std::int64_t>(b.size()) != batch * d.size())
    throw Error("flagnet_training_loss: size mismatch");
  FlagNetModule m(parameters);
  const Geometry g = make_geometry(domain);
  const GridOperatorTensors a(domain, torch::kFloat);
  const auto bt = torch::from_blob(const_cast<float*>(b.data()), {batch, 1, d.nz, d.ny, d.nx}, torch::kFloat);
  return unrolled_dcdm_loss(*m, g, a, bt, steps).item<double>();
}

// ---------------------------------------------------------------------------------------
// Training

namespace {

struct TrainSet {
  std::filesystem::path dir;
  Domain domain;
  Geometry geometry;
  std::unique_ptr<GridOperatorTensors> op;
  torch::Tensor samples;  // [n, 1, nz, ny, nx]
  std::int64_t train = 0, val = 0;
  std::string recipe;
};

TrainSet load_set(const std::filesystem::path& dir, const FlagNetTrainOptions& o) {
  TrainSet s;
  s.dir = dir;
  ShardedDataset ds(dir);
  s.domain = ds.domain();
  s.geometry = make_geometry(s.domain);
  s.op = std::make_unique<GridOperatorTensors>(s.domain, torch::kFloat);
  const Dims d = ds.dims();
  DatasetSamples read = read_dataset_samples(ds, o, "flagnet");
  s.samples = read.rows.view({read.rows.size(0), 1, d.nz, d.ny, d.nx});
  s.train = read.train;
  s.val = read.val;
  s.recipe = ds.recipe_json();
  return s;
}

double validation_loss(FlagNetModuleImpl& m, const std::vector<TrainSet>& sets, int batch, int steps) {
  torch::NoGradGuard no_grad;
  double total = 0;
  for (const auto& s : sets) {
    double sum = 0;
    for (std::int64_t first = s.train; first < s.train + s.val; first += batch) {
      const std::int64_t count = std::min<std::int64_t>(batch, s.train + s.val - first);
      const auto b = s.samples.narrow(0, first, count);
      sum += unrolled_dcdm_loss(m, s.geometry, *s.op, b, steps).item<double>() * static_cast<double>(count);
    }
    total += sum / static_cast<double>(s.val);
  }
  return total / static_cast<double>(sets.size());
}

// DCDM iterations to 1e-6 with these weights, summed over one solve per dataset (its first
// validation sample as the right-hand side).
double validation_iterations(const FlagNetParameters& parameters, const std::vector<TrainSet>& sets) {
  double total = 0;
  for (const auto& s : sets)
    total += selection_iterations(
        s.domain, s.samples[s.train].data_ptr<float>(),
        [&s, &parameters](const LinearSystemView&) -> std::unique_ptr<LinearOperator> {
          return std::make_unique<FlagNetGenerator>(s.domain, parameters);
        },
        DcdmOptions{}, "dcdm-flag");
  return total;
}

}  // namespace

FlagNetTrainResult train_flagnet(const FlagNetTrainOptions& o,
                                 const std::function<void(const std::string&)>& log_fn) {
  init_torch_threads();
  if (o.threads > 0) torch::set_num_threads(o.threads);
  check_step_training_options(o, "flagnet");
  json recipes;
  const std::vector<TrainSet> sets = load_training_sets<TrainSet>(o, "flagnet", load_set, log_fn, recipes);
  const FlagNet net = o.init.empty() ? FlagNet::initial() : FlagNet::load(o.init);
  FlagNetModule module(net.parameters());
  StepTrainer t;
  t.name = "flagnet";
  t.module = module.get();
  for (const auto& s : sets) t.train_samples.push_back(s.train);
  t.batch_loss = [&](std::size_t set, const std::vector<std::int64_t>& idx) {
    const TrainSet& s = sets[set];
    return unrolled_dcdm_loss(*module, s.geometry, *s.op, s.samples.index_select(0, torch::tensor(idx, torch::kLong)),
                              o.loss_steps);
  };
  t.validation_loss = [&] { return validation_loss(*module, sets, o.batch, o.loss_steps); };
  t.validation_iterations = [&] { return validation_iterations(module->parameters_copy(), sets); };
  t.save_model = [&](const json& summary) {
    FlagNet best = FlagNet::initial();
    best.parameters() = module->parameters_copy();
    best.metadata().trained_grid = sets.front().domain.dims();
    best.metadata().data_recipe_json = json{{"datasets", recipes}}.dump();
    best.metadata().training_summary_json = summary.dump();
    best.metadata().created_by = o.command;
    best.save(o.out);
  };
  t.config = {{"data", recipes}, {"batch", o.batch}, {"lr", o.lr}, {"seed", o.seed},
              {"max_samples", o.max_samples}, {"validation_fraction", o.validation_fraction}};
  // Older checkpoints have none of these keys: the defaults leave the config unchanged.
  if (o.loss_steps != 1) t.config["loss_steps"] = o.loss_steps;
  if (!o.init.empty()) t.config["init"] = o.init.string();
  if (o.select == "iterations") t.config["select"] = o.select;
  t.start_description = o.init.empty() ? std::string("untrained (V-cycle) model") : "initial model " + o.init.string();
  t.parameter_count = net.parameters().count();
  return run_step_training(o, t, log_fn);
}

}  // namespace dcdm::learn
