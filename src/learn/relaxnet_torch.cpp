// RelaxNet through LibTorch: the autograd V-cycle (the training path, built from the
// hierarchy the OpenMP cycle exports, so the two agree by construction; checked by the tests)
// and the trainer over many dataset folders. See dcdm/relaxnet.hpp; the model file is plain
// C++ (relaxnet.cpp).
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
#include "dcdm/grid_transfer.hpp"
#include "dcdm/poisson.hpp"
#include "dcdm/relaxnet.hpp"
#include "network.hpp"
#include "step_training.hpp"

namespace dcdm::learn {

namespace {

using json = nlohmann::json;
using Spec = RelaxNetSpec;

torch::Tensor weight_tensor(const RelaxNetParameters& p) {
  return torch::from_blob(const_cast<float*>(p.weight.data()), {Spec::kOutputs, Spec::kFlagChannels, 3, 3, 3},
                          torch::kFloat)
      .clone();
}
torch::Tensor bias_tensor(const RelaxNetParameters& p) {
  return torch::from_blob(const_cast<float*>(p.bias.data()), {Spec::kOutputs}, torch::kFloat).clone();
}
void copy_to(const torch::Tensor& t, std::vector<float>& out) {
  const auto c = t.detach().to(torch::kFloat).contiguous();
  out.assign(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

struct RelaxNetModuleImpl : torch::nn::Module {
  torch::Tensor weight, bias;
  bool per_cell_interior = false;
  explicit RelaxNetModuleImpl(const RelaxNetParameters& p) : per_cell_interior(p.per_cell_interior) {
    weight = register_parameter("weight", weight_tensor(p));
    bias = register_parameter("bias", bias_tensor(p));
  }
  RelaxNetParameters parameters_copy() const {
    RelaxNetParameters p;
    copy_to(weight, p.weight);
    copy_to(bias, p.bias);
    p.per_cell_interior = per_cell_interior;
    return p;
  }
};
TORCH_MODULE(RelaxNetModule);

// The exact coarsest solve of the OpenMP cycle as an autograd function (symmetric: the
// backward applies the same map to the incoming gradient). Columns are right-hand sides.
struct CoarseSolve : torch::autograd::Function<CoarseSolve> {
  static torch::Tensor run(const MultigridPreconditioner* mg, const torch::Tensor& b) {
    const auto bd = b.detach().to(torch::kDouble).t().contiguous();  // [B, N]
    auto xd = torch::zeros_like(bd);
    const std::int64_t n = bd.size(1);
    for (std::int64_t c = 0; c < bd.size(0); ++c)
      mg->solve_coarsest({bd.data_ptr<double>() + c * n, static_cast<std::size_t>(n)},
                         {xd.data_ptr<double>() + c * n, static_cast<std::size_t>(n)});
    return xd.t().to(b.scalar_type()).contiguous();
  }
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& b, std::int64_t mg) {
    ctx->saved_data["mg"] = mg;
    return run(reinterpret_cast<const MultigridPreconditioner*>(mg), b);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grad) {
    const auto* mg = reinterpret_cast<const MultigridPreconditioner*>(ctx->saved_data["mg"].toInt());
    return {run(mg, grad[0]), torch::Tensor()};
  }
};

// One level as tensors on its padded flat layout; vectors are [padded, batch].
struct LevelTensors {
  MultigridPreconditioner::LevelData data;
  torch::Tensor fluid, diag, inv_diag, inv_w;  // [N, 1]
  torch::Tensor colour[2], band[2];            // [N, 1] 0/1 masks of fluid cells
  torch::Tensor flags;                         // [1, 2, pz, py, px] fluid / air indicators
  torch::Tensor to_coarse, from_coarse;        // sparse [Nc, N] trilinear weights and its transpose
};

struct Geometry {
  std::unique_ptr<MultigridPreconditioner> mg;  // the OpenMP cycle: hierarchy + coarsest solve
  std::vector<LevelTensors> levels;
  torch::Tensor full_to_padded;  // [cells] padded index of each full-grid cell (level 0)
  MultigridOptions options;
};

torch::Tensor column(const std::vector<double>& v) {
  return torch::from_blob(const_cast<double*>(v.data()), {static_cast<std::int64_t>(v.size()), 1}, torch::kDouble)
      .to(torch::kFloat);
}

Geometry make_geometry(const Domain& domain, std::int64_t coarsest_cells = 0) {
  Geometry g;
  g.options = RelaxNetSpec::cycle_options();
  if (coarsest_cells > 0) g.options.coarsest_cells = coarsest_cells;
  g.mg = std::make_unique<MultigridPreconditioner>(g.options);
  const PoissonStencil op(domain);
  g.mg->setup(LinearSystemView{&op, nullptr, &domain, nullptr});
  auto hierarchy = g.mg->hierarchy();
  const auto fluid_type = static_cast<std::uint8_t>(CellType::Fluid);
  const auto air_type = static_cast<std::uint8_t>(CellType::Air);
  for (auto& data : hierarchy) {
    LevelTensors l;
    const std::int64_t n = data.padded;
    const Dims d = data.dims;
    std::vector<double> fluid(n, 0.0), inv_diag(n, 0.0), colour0(n, 0.0), colour1(n, 0.0), band0(n, 0.0),
        band1(n, 0.0);
    std::vector<float> flags(2 * n, 0.0f);
    for (std::int64_t p = 0; p < n; ++p) {
      flags[p] = data.type[p] == fluid_type;
      flags[n + p] = data.type[p] == air_type;
    }
    for (int k = 0; k < d.nz; ++k)
      for (int j = 0; j < d.ny; ++j)
        for (int i = 0; i < d.nx; ++i) {
          const std::int64_t p = data.at(i, j, k);
          if (data.type[p] != fluid_type) continue;
          fluid[p] = 1.0;
          inv_diag[p] = 1.0 / data.diag[p];
          (((i + j + k) & 1) ? colour1 : colour0)[p] = 1.0;
        }
    for (const std::int64_t p : data.band[0]) band0[p] = 1.0;
    for (const std::int64_t p : data.band[1]) band1[p] = 1.0;
    l.fluid = column(fluid);
    l.diag = column(data.diag);
    l.inv_diag = column(inv_diag);
    l.colour[0] = column(colour0);
    l.colour[1] = column(colour1);
    l.band[0] = column(band0);
    l.band[1] = column(band1);
    const std::int64_t px = data.sy, py = data.sz / data.sy, pz = n / data.sz;
    l.flags = torch::from_blob(flags.data(), {1, 2, pz, py, px}, torch::kFloat).clone();
    if (!data.inv_w.empty()) l.inv_w = column(data.inv_w);
    l.data = std::move(data);
    g.levels.push_back(std::move(l));
  }
  // Transfers: Q[coarse, fine] = trilinear weight from coarse fluid cell to fine cell with a
  // non-zero normaliser (restriction b_c = Q (w r) / 8, prolongation x_f += w Q^T x_c).
  for (std::size_t li = 0; li + 1 < g.levels.size(); ++li) {
    LevelTensors& f = g.levels[li];
    const auto& c = g.levels[li + 1].data;
    std::vector<std::int64_t> rows, cols;
    std::vector<float> values;
    const Dims d = f.data.dims;
    for (int k = 0; k < d.nz; ++k)
      for (int j = 0; j < d.ny; ++j)
        for (int i = 0; i < d.nx; ++i) {
          const std::int64_t p = f.data.at(i, j, k);
          if (f.data.inv_w[p] == 0.0) continue;
          transfer::for_each_parent<double>(i, j, k, [&](double w, int ci, int cj, int ck) {
            const std::int64_t q = c.at(ci, cj, ck);
            if (c.type[q] != fluid_type) return;
            rows.push_back(q);
            cols.push_back(p);
            values.push_back(static_cast<float>(w));
          });
        }
    const auto m = static_cast<std::int64_t>(values.size());
    auto idx = torch::stack({torch::tensor(rows, torch::kLong), torch::tensor(cols, torch::kLong)});
    auto val = torch::from_blob(values.data(), {m}, torch::kFloat).clone();
    f.to_coarse = torch::sparse_coo_tensor(idx, val, {c.padded, f.data.padded}).coalesce();
    f.from_coarse = f.to_coarse.t().coalesce();
  }
  const auto& top = g.levels.front().data;
  const Dims d = top.dims;
  std::vector<std::int64_t> map;
  map.reserve(static_cast<std::size_t>(d.size()));
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j)
      for (int i = 0; i < d.nx; ++i) map.push_back(top.at(i, j, k));
  g.full_to_padded = torch::tensor(map, torch::kLong);
  return g;
}

// y[p] = x[p + o] (zero beyond the ends) for a flat [N, B] layout.
torch::Tensor shifted(const torch::Tensor& x, std::int64_t o) {
  const std::int64_t n = x.size(0);
  if (o > 0) return torch::cat({x.narrow(0, o, n - o), torch::zeros({o, x.size(1)}, x.options())});
  return torch::cat({torch::zeros({-o, x.size(1)}, x.options()), x.narrow(0, 0, n + o)});
}

torch::Tensor neighbour_sum(const LevelTensors& l, const torch::Tensor& x) {
  const std::int64_t sy = l.data.sy, sz = l.data.sz;
  return shifted(x, 1) + shifted(x, -1) + shifted(x, sy) + shifted(x, -sy) + shifted(x, sz) + shifted(x, -sz);
}

torch::Tensor level_operator(const LevelTensors& l, const torch::Tensor& x) {
  return l.fluid * (l.diag * x - static_cast<float>(l.data.s) * neighbour_sum(l, x));
}

// The per-cell factors of every smoothing level: [N, 1] interior and band.
struct Factors {
  torch::Tensor interior, band;
};
std::vector<Factors> level_factors(RelaxNetModuleImpl& m, const Geometry& g) {
  std::vector<Factors> out;
  for (std::size_t li = 0; li + 1 < g.levels.size(); ++li) {
    const LevelTensors& l = g.levels[li];
    auto z = torch::nn::functional::conv3d(l.flags, m.weight, torch::nn::functional::Conv3dFuncOptions().bias(m.bias));
    z = torch::constant_pad_nd(z, {1, 1, 1, 1, 1, 1}).reshape({2, -1}).t();  // [N, 2]
    auto band = 2.0 * torch::sigmoid(z.select(1, 1).unsqueeze(1) + Spec::base_score(1));
    // relaxnet-v2: the all-fluid interior factor (bias and every fluid tap) for every cell.
    const auto interior_score = m.per_cell_interior ? z.select(1, 0).unsqueeze(1)
                                                    : (m.bias[0] + m.weight[0][0].sum()).reshape({1, 1});
    auto interior = 2.0 * torch::sigmoid(interior_score + Spec::base_score(0));
    out.push_back({interior * l.fluid, band * l.fluid});
  }
  return out;
}

torch::Tensor relax(const LevelTensors& l, const torch::Tensor& x, const torch::Tensor& b, const torch::Tensor& weight) {
  const auto gs = l.inv_diag * (b + static_cast<float>(l.data.s) * neighbour_sum(l, x));
  return x + weight * (gs - x);
}

// The V-cycle on padded level-0 vectors [N0, B].
torch::Tensor cycle(const Geometry& g, const std::vector<Factors>& factors, const torch::Tensor& b0) {
  const MultigridOptions& o = g.options;
  std::function<torch::Tensor(std::size_t, const torch::Tensor&)> vcycle = [&](std::size_t li, const torch::Tensor& b) {
    const LevelTensors& l = g.levels[li];
    if (li + 1 == g.levels.size())
      return CoarseSolve::apply(b, reinterpret_cast<std::int64_t>(g.mg.get()));
    const Factors& w = factors[li];
    const torch::Tensor band_w[2] = {w.band * l.band[0], w.band * l.band[1]};
    const torch::Tensor interior_w[2] = {w.interior * l.colour[0], w.interior * l.colour[1]};
    auto x = torch::zeros_like(b);
    const auto sweeps = [&](const torch::Tensor* weights, int count, bool reverse) {
      for (int s = 0; s < count; ++s)
        for (int c = 0; c < 2; ++c) x = relax(l, x, b, weights[reverse ? 1 - c : c]);
    };
    sweeps(band_w, o.boundary_sweeps, false);
    sweeps(interior_w, o.pre_sweeps, false);
    sweeps(band_w, o.boundary_sweeps, false);
    const auto r = l.inv_w * (b - level_operator(l, x));
    const auto bc = 0.125 * torch::mm(l.to_coarse, r);
    x = x + l.inv_w * torch::mm(l.from_coarse, vcycle(li + 1, bc));
    sweeps(band_w, o.boundary_sweeps, true);
    sweeps(interior_w, o.pre_sweeps, true);
    sweeps(band_w, o.boundary_sweeps, true);
    return x;
  };
  return vcycle(0, b0 * g.levels.front().fluid);
}

// S unrolled DCDM iterations (k = 2, exact line search) from x = 0 on padded level-0
// right-hand sides [N0, B] of unit norm: mean over the batch of ||r_S||^(2/S) (S = 1: the
// reference scale-invariant loss).
torch::Tensor unrolled_loss(const Geometry& g, const std::vector<Factors>& factors, const torch::Tensor& b, int steps) {
  const LevelTensors& top = g.levels.front();
  struct Kept {
    torch::Tensor p, ap, pap;
  };
  std::vector<Kept> kept;
  torch::Tensor r = b;
  for (int s = 0; s < steps; ++s) {
    auto q = cycle(g, factors, r);
    auto aq = level_operator(top, q);
    std::vector<torch::Tensor> betas;
    for (const Kept& k : kept) betas.push_back((q * k.ap).sum(0, true) / k.pap);
    for (std::size_t j = 0; j < kept.size(); ++j) {
      q = q - betas[j] * kept[j].p;
      aq = aq - betas[j] * kept[j].ap;
    }
    const auto qaq = (q * aq).sum(0, true).clamp_min(1e-30);
    r = r - (q * r).sum(0, true) / qaq * aq;
    kept.push_back({q, aq, qaq});
    if (kept.size() > 2) kept.erase(kept.begin());
  }
  return r.pow(2).sum(0).pow(1.0 / steps).mean();
}

// Full-grid samples [B, cells] -> padded level-0 columns [N0, B].
torch::Tensor to_padded(const Geometry& g, const torch::Tensor& full) {
  auto out = torch::zeros({g.levels.front().data.padded, full.size(0)}, full.options());
  return out.index_copy(0, g.full_to_padded, full.t());
}

}  // namespace

std::vector<float> relaxnet_torch_forward(const RelaxNetParameters& parameters, const Domain& domain,
                                          dcdm::span<const float> x, int batch) {
  init_torch_threads();
  const Dims d = domain.dims();
  if (batch < 1 || static_cast<std::int64_t>(x.size()) != batch * d.size())
    throw Error("relaxnet_torch_forward: input size differs from batch x grid");
  torch::NoGradGuard no_grad;
  RelaxNetModule m(parameters);
  const Geometry g = make_geometry(domain);
  const auto in = torch::from_blob(const_cast<float*>(x.data()), {batch, d.size()}, torch::kFloat);
  const auto out = cycle(g, level_factors(*m, g), to_padded(g, in)).index_select(0, g.full_to_padded).t().contiguous();
  return std::vector<float>(out.data_ptr<float>(), out.data_ptr<float>() + out.numel());
}

double relaxnet_training_loss(const RelaxNetParameters& parameters, const Domain& domain, dcdm::span<const float> b,
                              int batch, int steps) {
  init_torch_threads();
  const Dims d = domain.dims();
  if (batch < 1 || static_cast<std::int64_t>(b.size()) != batch * d.size())
    throw Error("relaxnet_training_loss: size mismatch");
  torch::NoGradGuard no_grad;
  RelaxNetModule m(parameters);
  const Geometry g = make_geometry(domain);
  const auto in = torch::from_blob(const_cast<float*>(b.data()), {batch, d.size()}, torch::kFloat);
  return unrolled_loss(g, level_factors(*m, g), to_padded(g, in), steps).item<double>();
}

// ---------------------------------------------------------------------------------------
// Training

namespace {

struct TrainSet {
  std::filesystem::path dir;
  Domain domain;
  Geometry geometry;
  torch::Tensor samples;  // [n, cells]
  std::int64_t train = 0, val = 0;
  std::string recipe;
};

TrainSet load_set(const std::filesystem::path& dir, const FlagNetTrainOptions& o) {
  TrainSet s;
  s.dir = dir;
  ShardedDataset ds(dir);
  s.domain = ds.domain();
  s.geometry = make_geometry(s.domain, o.cycle_coarsest);
  if (s.geometry.levels.size() < 2)
    throw InputError(fmt::format("{}: the {} grid is solved exactly by the cycle's coarsest level (at most {} cells), "
                                 "so it trains nothing; use a larger grid (e.g. 32^3)",
                                 dir.string(), ds.dims().str(), s.geometry.options.coarsest_cells));
  DatasetSamples read = read_dataset_samples(ds, o, "relaxnet");
  s.samples = read.rows;
  s.train = read.train;
  s.val = read.val;
  s.recipe = ds.recipe_json();
  return s;
}

double validation_loss(RelaxNetModuleImpl& m, const std::vector<TrainSet>& sets, int batch, int steps) {
  torch::NoGradGuard no_grad;
  double total = 0;
  for (const auto& s : sets) {
    const auto factors = level_factors(m, s.geometry);
    double sum = 0;
    for (std::int64_t first = s.train; first < s.train + s.val; first += batch) {
      const std::int64_t count = std::min<std::int64_t>(batch, s.train + s.val - first);
      const auto b = to_padded(s.geometry, s.samples.narrow(0, first, count));
      sum += unrolled_loss(s.geometry, factors, b, steps).item<double>() * static_cast<double>(count);
    }
    total += sum / static_cast<double>(s.val);
  }
  return total / static_cast<double>(sets.size());
}

// DCDM iterations to 1e-6 with these weights, summed over one solve per dataset (its first
// validation sample as the right-hand side), with the solver's own options for this generator.
double validation_iterations(const RelaxNetParameters& parameters, const std::vector<TrainSet>& sets,
                             std::int64_t coarsest_cells) {
  auto net = std::make_shared<RelaxNet>(RelaxNet::initial());
  net->parameters() = parameters;
  DcdmOptions options;
  options.weak_fallback = false;
  double total = 0;
  for (const auto& s : sets)
    total += selection_iterations(
        s.domain, s.samples[s.train].data_ptr<float>(),
        [net, coarsest_cells](const LinearSystemView& v) -> std::unique_ptr<LinearOperator> {
          return net->make_generator(v, coarsest_cells);
        },
        options, "dcdm-relax");
  return total;
}

}  // namespace

FlagNetTrainResult train_relaxnet(const FlagNetTrainOptions& o,
                                  const std::function<void(const std::string&)>& log_fn) {
  init_torch_threads();
  if (o.threads > 0) torch::set_num_threads(o.threads);
  check_step_training_options(o, "relaxnet");
  json recipes;
  const std::vector<TrainSet> sets = load_training_sets<TrainSet>(o, "relaxnet", load_set, log_fn, recipes);
  RelaxNet net = o.init.empty() ? RelaxNet::initial() : RelaxNet::load(o.init);
  if (net.parameters().per_cell_interior) {
    // Training writes relaxnet-v2: a v1 file's weights start it with their all-fluid interior
    // factor (its per-cell interior exceptions are dropped) and their band factors.
    net.parameters().per_cell_interior = false;
    log_fn(fmt::format("relaxnet: --init {} is a {} file; training {} from its weights (interior factor "
                       "{:.4f} for every cell)",
                       o.init.string(), kRelaxNetVariantV1, kRelaxNetVariant, net.all_fluid_factors()[0]));
  }
  RelaxNetModule module(net.parameters());
  StepTrainer t;
  t.name = "relaxnet";
  t.module = module.get();
  for (const auto& s : sets) t.train_samples.push_back(s.train);
  t.batch_loss = [&](std::size_t set, const std::vector<std::int64_t>& idx) {
    const TrainSet& s = sets[set];
    const auto b = to_padded(s.geometry, s.samples.index_select(0, torch::tensor(idx, torch::kLong)));
    return unrolled_loss(s.geometry, level_factors(*module, s.geometry), b, o.loss_steps);
  };
  t.validation_loss = [&] { return validation_loss(*module, sets, o.batch, o.loss_steps); };
  t.validation_iterations = [&] { return validation_iterations(module->parameters_copy(), sets, o.cycle_coarsest); };
  t.save_model = [&](const json& summary) {
    RelaxNet best = RelaxNet::initial();
    best.parameters() = module->parameters_copy();
    best.metadata().trained_grid = sets.front().domain.dims();
    best.metadata().data_recipe_json = json{{"datasets", recipes}}.dump();
    best.metadata().training_summary_json = summary.dump();
    best.metadata().created_by = o.command;
    best.save(o.out);
  };
  t.config = {{"data", recipes}, {"batch", o.batch}, {"lr", o.lr}, {"seed", o.seed},
              {"max_samples", o.max_samples}, {"validation_fraction", o.validation_fraction},
              {"loss_steps", o.loss_steps}, {"init", o.init.string()}, {"select", o.select},
              {"variant", kRelaxNetVariant}};
  if (o.cycle_coarsest > 0) t.config["cycle_coarsest"] = o.cycle_coarsest;  // older checkpoints lack it
  t.start_description =
      o.init.empty() ? std::string("untrained (Gauss-Seidel multigrid) model") : "initial model " + o.init.string();
  t.parameter_count = net.parameters().count();
  return run_step_training(o, t, log_fn);
}

}  // namespace dcdm::learn
