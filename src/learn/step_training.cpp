// The shared step-based trainer (see step_training.hpp).
#include "step_training.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

#include <fmt/format.h>

#include "dcdm/dataset.hpp"
#include "dcdm/error.hpp"
#include "dcdm/linalg.hpp"
#include "dcdm/poisson.hpp"
#include "checkpoint_archive.hpp"

namespace dcdm::learn {

namespace {

using json = nlohmann::json;

constexpr int kSelectionMaxIterations = 300;

double fractional_iterations(const std::vector<double>& history, double target, int limit) {
  for (std::size_t k = 1; k < history.size(); ++k)
    if (history[k] <= target) {
      const double hi = std::log(history[k - 1]), lo = std::log(std::max(history[k], 1e-300));
      const double t = hi > lo ? (hi - std::log(target)) / (hi - lo) : 1.0;
      return static_cast<double>(k - 1) + std::clamp(t, 0.0, 1.0);
    }
  return history.size() == 1 && history[0] <= target ? 0.0 : static_cast<double>(limit);
}

}  // namespace

DatasetSamples read_dataset_samples(const ShardedDataset& ds, const FlagNetTrainOptions& o, const std::string& name) {
  const std::int64_t cells = ds.dims().size();
  const std::int64_t n = o.max_samples > 0 ? std::min(o.max_samples, ds.size()) : ds.size();
  if (n < 2) throw InputError(fmt::format("{}: {} training needs at least 2 samples", ds.dir().string(), name));
  DatasetSamples out;
  out.rows = torch::empty({n, cells}, torch::kFloat);
  for (std::int64_t i = 0; i < n; ++i)
    ds.read(i, {out.rows.data_ptr<float>() + i * cells, static_cast<std::size_t>(cells)});
  // Singular domains: the samples are projected onto the range (zero mean on each all-Neumann
  // component) and renormalised, as the solver projects b. A null-space part could not be
  // reduced, and the line search would chase it (q.r dominated by it while q.Aq is not).
  const RangeProjector projector(ds.domain());
  if (projector.singular()) {
    std::vector<double> v(static_cast<std::size_t>(cells));
    for (std::int64_t i = 0; i < n; ++i) {
      float* row = out.rows.data_ptr<float>() + i * cells;
      std::copy(row, row + cells, v.begin());
      projector(v);
      const double norm = std::sqrt(dot(v, v));
      for (std::int64_t c = 0; c < cells; ++c) row[c] = norm > 0 ? static_cast<float>(v[c] / norm) : 0.0f;
    }
  }
  out.val = std::clamp<std::int64_t>(static_cast<std::int64_t>(std::ceil(o.validation_fraction * n)), 1, n - 1);
  out.train = n - out.val;
  return out;
}

void check_step_training_options(const FlagNetTrainOptions& o, const std::string& name) {
  if (o.data.empty()) throw InputError(fmt::format("--data: {} training needs at least one dataset folder", name));
  if (o.out.empty()) throw InputError(fmt::format("--out: {} training needs an output model file", name));
  if (o.batch < 1 || o.steps < 1 || o.validate_every < 1 || !(o.lr > 0))
    throw InputError(fmt::format("{} training: --batch, --steps, --validate-every and --lr must be positive", name));
  if (o.select != "loss" && o.select != "iterations")
    throw InputError(fmt::format("--select: '{}' is not loss or iterations", o.select));
  if (o.loss_steps < 1 || o.loss_steps > 16)
    throw InputError(fmt::format("--loss-steps: must be in 1..16 (got {})", o.loss_steps));
  if (o.cycle_coarsest < 0 || (o.cycle_coarsest > 0 && name != "relaxnet"))
    throw InputError(fmt::format("--cycle-coarsest: only relaxnet trains through a multigrid cycle (got {} for {})",
                                 o.cycle_coarsest, name));
}

double selection_iterations(const Domain& domain, const float* sample, GeneratorFactory factory,
                            const DcdmOptions& options, const std::string& name) {
  const PoissonStencil op(domain);
  const RangeProjector projector(domain);
  LinearSystemView view{&op, nullptr, &domain, nullptr};
  if (projector.singular()) view.project_range = projector.as_function();
  DcdmSolver solver(std::move(factory), options, name);
  solver.setup(view);
  const auto n = static_cast<std::size_t>(domain.dims().size());
  std::vector<double> b(sample, sample + n), x(n, 0.0);
  if (projector.singular()) projector(b);
  SolveOptions so;
  so.rtol = 1e-6;
  so.max_iterations = kSelectionMaxIterations;
  const SolveReport report = solver.solve(b, x, so);
  return report.converged() ? fractional_iterations(report.residual_history, so.rtol * report.rhs_norm,
                                                    report.iterations)
                            : kSelectionMaxIterations;
}

FlagNetTrainResult run_step_training(const FlagNetTrainOptions& o, StepTrainer& t,
                                     const std::function<void(const std::string&)>& log_fn) {
  const auto log = [&](const std::string& s) {
    if (log_fn) log_fn(s);
  };
  const auto t0 = std::chrono::steady_clock::now();
  const auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  const bool by_iterations = o.select == "iterations";
  const std::string format = "dcdm-" + t.name + "-checkpoint";
  const std::filesystem::path checkpoint =
      o.checkpoint.empty() ? std::filesystem::path(o.out.string() + ".ckpt") : o.checkpoint;
  torch::optim::Adam adam(t.module->parameters(), torch::optim::AdamOptions(o.lr));
  FlagNetTrainResult result;
  int step = 0;
  if (o.resume) {
    CheckpointArchive c = read_checkpoint_archive(checkpoint, t.name);
    const json& state = c.state;
    check_checkpoint_format(c, checkpoint, format, t.name + " training");
    try {
      std::string difference = first_config_difference(state.at("config"), t.config);
      if (difference.empty() && state.at("config") != t.config) difference = "settings this build does not use";
      if (!difference.empty())
        throw InputError(fmt::format("{}: holds a different training run (the checkpoint was made with {}); resume "
                                     "with the same --data/--batch/--lr/--seed/--max-samples/--loss-steps/--init/"
                                     "--select or start a new --out",
                                     checkpoint.string(), difference.substr(0, 300)));
      load_checkpoint_weights(c, checkpoint, *t.module, adam);
      step = state.at("step").get<int>();
      result.initial_val_loss = state.at("initial_val_loss").get<double>();
      result.best_val_loss = state.at("best_val_loss").get<double>();
      result.best_step = state.at("best_step").get<int>();
      result.initial_val_iterations = state.value("initial_val_iterations", 0.0);
      result.best_val_iterations = state.value("best_val_iterations", 0.0);
    } catch (const json::exception& e) {
      throw InputError(fmt::format("{}: malformed checkpoint state ({})", checkpoint.string(), e.what()));
    }
    log(fmt::format("{}: resumed at step {} (best validation loss {:.6e} at step {})", t.name, step,
                    result.best_val_loss, result.best_step));
  } else {
    result.initial_val_loss = result.best_val_loss = t.validation_loss();
    if (by_iterations) result.initial_val_iterations = result.best_val_iterations = t.validation_iterations();
    log(fmt::format("{}: {} parameters; validation loss ({}-step) of the {} {:.6e}{}", t.name, t.parameter_count,
                    o.loss_steps, t.start_description, result.initial_val_loss,
                    by_iterations ? fmt::format(", iterations {:.2f}", result.initial_val_iterations) : ""));
  }
  const auto save_best = [&] {
    json summary{{"steps", step}, {"batch", o.batch}, {"lr", o.lr}, {"loss_steps", o.loss_steps},
                 {"init", o.init.string()}, {"initial_val_loss", result.initial_val_loss},
                 {"best_val_loss", result.best_val_loss}, {"best_step", result.best_step},
                 {"select", o.select}, {"initial_val_iterations", result.initial_val_iterations},
                 {"best_val_iterations", result.best_val_iterations}, {"seconds_this_run", seconds()}};
    if (o.cycle_coarsest > 0) summary["cycle_coarsest"] = o.cycle_coarsest;
    t.save_model(summary);
  };
  if (!o.resume) save_best();
  std::mt19937_64 rng(o.seed * 1000003ull + static_cast<std::uint64_t>(step));
  double window_loss = 0;
  int window = 0;
  result.stop_reason = "steps";
  const std::size_t sets = t.train_samples.size();
  while (step < o.steps) {
    const std::size_t set = static_cast<std::size_t>(step) % sets;
    const std::int64_t available = t.train_samples[set];
    std::vector<std::int64_t> idx(static_cast<std::size_t>(std::min<std::int64_t>(o.batch, available)));
    std::uniform_int_distribution<std::int64_t> pick(0, available - 1);
    for (auto& i : idx) i = pick(rng);
    adam.zero_grad();
    const auto loss = t.batch_loss(set, idx);
    loss.backward();
    adam.step();
    window_loss += loss.item<double>();
    ++window;
    ++step;
    if (step % o.validate_every == 0 || step == o.steps) {
      const double val = t.validation_loss();
      result.last_train_loss = window_loss / window;
      const double iterations = by_iterations ? t.validation_iterations() : 0;
      const bool better = by_iterations ? iterations < result.best_val_iterations ||
                                              (iterations == result.best_val_iterations && val < result.best_val_loss)
                                        : val < result.best_val_loss;
      if (better) {
        result.best_val_loss = val;
        result.best_val_iterations = iterations;
        result.best_step = step;
        save_best();
      }
      log(fmt::format("[{:8.1f} s] step {:6d}  train loss {:.6e}  validation loss {:.6e}{}{}", seconds(), step,
                      result.last_train_loss, val, by_iterations ? fmt::format("  iterations {:.2f}", iterations) : "",
                      better ? "  (best, saved)" : ""));
      window_loss = 0;
      window = 0;
      write_checkpoint_archive(checkpoint, *t.module, adam,
                               {{"format", format}, {"version", kCheckpointArchiveVersion}, {"config", t.config},
                                {"step", step}, {"initial_val_loss", result.initial_val_loss},
                                {"best_val_loss", result.best_val_loss}, {"best_step", result.best_step},
                                {"initial_val_iterations", result.initial_val_iterations},
                                {"best_val_iterations", result.best_val_iterations}});
      if (o.time_limit_s > 0 && seconds() > o.time_limit_s && step < o.steps) {
        result.stop_reason = "time-limit";
        break;
      }
    }
  }
  result.steps = step;
  result.seconds = seconds();
  return result;
}

}  // namespace dcdm::learn
