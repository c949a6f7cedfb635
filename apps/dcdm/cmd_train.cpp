// `dcdm train`: unsupervised DCDM training on a Ritz-vector dataset (see include/dcdm/training.hpp).
#include <algorithm>
#include <cstdio>

#include <unistd.h>

#include <fmt/format.h>

#include "command.hpp"
#include "dcdm/error.hpp"
#include "dcdm/flagnet.hpp"
#include "dcdm/relaxnet.hpp"
#include "dcdm/training.hpp"
#include "torch_backend.hpp"

namespace dcdm::cli {
namespace {

struct TrainArgs {
  learn::TrainOptions options;
  std::string data, out, checkpoint;
  std::string progress = "auto";
  bool no_plot = false;
  int flagnet_steps = 2000;        // --steps (flagnet)
  int flagnet_validate_every = 100;
  int loss_steps = 1;               // flagnet
  std::string init;                 // flagnet
  std::string select = "loss";      // flagnet
  std::int64_t cycle_coarsest = 0;  // relaxnet
};

// --arch flagnet: many dataset folders (comma-separated --data), step-based (dcdm/flagnet.hpp).
void run_train_flagnet(const TrainArgs& args, const std::string& command) {
  const auto& t = args.options;
  learn::FlagNetTrainOptions o;
  for (std::size_t start = 0; start <= args.data.size();) {
    const std::size_t comma = std::min(args.data.find(',', start), args.data.size());
    if (comma > start) o.data.emplace_back(args.data.substr(start, comma - start));
    start = comma + 1;
  }
  o.steps = args.flagnet_steps;
  o.validate_every = args.flagnet_validate_every;
  o.loss_steps = args.loss_steps;
  o.init = args.init;
  o.select = args.select;
  o.cycle_coarsest = args.cycle_coarsest;
  o.batch = t.batch;
  o.lr = t.lr;
  o.validation_fraction = t.validation_fraction;
  o.max_samples = t.max_samples;
  o.seed = t.seed;
  o.time_limit_s = t.time_limit_s;
  o.threads = t.threads;
  o.resume = t.resume;
  o.out = args.out;
  o.checkpoint = args.checkpoint;
  o.command = command;
  const auto print = [](const std::string& s) {
    fmt::print("{}\n", s);
    std::fflush(stdout);
  };
  const auto r = t.arch == "relaxnet" ? torch_backend().train_relaxnet(o, print) : torch_backend().train_flagnet(o, print);
  fmt::print("train: {} {} steps ({}), validation loss {:.6e} untrained -> best {:.6e} at step {}{} -> {}\n",
             t.arch, r.steps, r.stop_reason, r.initial_val_loss, r.best_val_loss, r.best_step,
             o.select == "iterations"
                 ? fmt::format(" (kept by iterations: {:.2f} -> {:.2f})", r.initial_val_iterations, r.best_val_iterations)
                 : "",
             o.out.string());
}

void run_train(TrainArgs& args, const std::string& command) {
  if (args.options.arch == "flagnet" || args.options.arch == "relaxnet") return run_train_flagnet(args, command);
  if (args.loss_steps != 1 || !args.init.empty() || args.select != "loss" || args.cycle_coarsest != 0)
    throw InputError("--loss-steps, --init, --select and --cycle-coarsest: only with --arch flagnet or relaxnet");
  auto& o = args.options;
  o.data = args.data;
  o.out = args.out;
  o.checkpoint = args.checkpoint;
  o.plot = !args.no_plot;
  o.command = command;
  if (args.progress == "auto") o.progress_bar = ::isatty(2) != 0;
  else o.progress_bar = args.progress == "bar";
  const auto result = torch_backend().train(
      o, [](const std::string& s) { fmt::print("{}\n", s); std::fflush(stdout); },
      [](const std::string& s) { fmt::print(stderr, "{}", s); std::fflush(stderr); });
  if (result.history.empty()) return;
  const auto& last = result.history.back();
  fmt::print("train: {} epochs ({}), final train loss {:.6e}, validation loss {:.6e}; best validation "
             "{:.6e} at epoch {} -> {}\n",
             last.epoch, result.finished ? result.stop_reason : std::string("paused: ") + result.stop_reason,
             last.train_loss, last.val_loss, result.best_val_loss, result.best_epoch, o.out.string());
}

RegisterCommand reg(41, [](CLI::App& root) {
  auto args = std::make_shared<TrainArgs>();
  auto* cmd = root.add_subcommand(
      "train",
      "Train a DCDM network without labels on a Ritz-vector dataset (scale-invariant loss ||b - A x~||^2; "
      "Adam; checkpoint every epoch; --resume)");
  auto& o = args->options;
  cmd->add_option("--data", args->data, "Dataset folder (dcdm dataset); flagnet: DIR1,DIR2,... (one matrix each)")
      ->required();
  cmd->add_option("--arch", o.arch, "Network: paper64 | paper128 | flagnet | relaxnet (flagnet and relaxnet take the step-based options)")->capture_default_str();
  cmd->add_option("--steps", args->flagnet_steps, "flagnet: total optimiser steps (a resumed run continues up to this)")
      ->check(CLI::Range(1, 100000000))->capture_default_str();
  cmd->add_option("--validate-every", args->flagnet_validate_every,
                  "flagnet: steps between validations and checkpoints")
      ->check(CLI::Range(1, 100000000))->capture_default_str();
  cmd->add_option("--loss-steps", args->loss_steps,
                  "flagnet: loss = residual after this many unrolled DCDM iterations (1 = the reference "
                  "one-step loss)")
      ->check(CLI::Range(1, 16))->capture_default_str();
  cmd->add_option("--init", args->init, "flagnet: start from this flagnet model's weights (fine-tuning)");
  cmd->add_option("--select", args->select,
                  "flagnet: the weights OUT keeps: loss (best validation loss) | iterations (fewest DCDM "
                  "iterations to 1e-6 on the validation matrices)")
      ->check(CLI::IsMember({"loss", "iterations"}))->capture_default_str();
  cmd->add_option("--cycle-coarsest", args->cycle_coarsest,
                  "relaxnet: train and select through a cycle coarsened to at most this many cells (default: "
                  "the deployed cycle's 4096), so that small training grids have as many levels as large ones in use")
      ->check(CLI::Range(std::int64_t(8), std::int64_t(1) << 40));
  cmd->add_option("--epochs", o.epochs, "Total epochs (a resumed run continues up to this)")
      ->check(CLI::Range(1, 1000000))->capture_default_str();
  cmd->add_option("--batch", o.batch, "Batch size")->check(CLI::Range(1, 4096))->capture_default_str();
  cmd->add_option("--lr", o.lr, "Adam learning rate")->capture_default_str();
  cmd->add_option("--out", args->out, "Model file (the weights with the best validation loss)")->required();
  cmd->add_option("--checkpoint", args->checkpoint, "Checkpoint file (default: OUT.ckpt)");
  cmd->add_flag("--resume", o.resume, "Continue from the checkpoint (same options required)");
  cmd->add_option("--val-fraction", o.validation_fraction, "Validation share of the samples")
      ->capture_default_str();
  cmd->add_option("--patience", o.patience, "Early stopping: epochs without a better validation loss (0 = off)")
      ->check(CLI::Range(0, 1000000))->capture_default_str();
  cmd->add_option("--seed", o.seed, "Seed of the initial weights, the split and the shuffling")
      ->capture_default_str();
  cmd->add_option("--max-samples", o.max_samples, "Use only the first N samples (0 = all)")
      ->check(CLI::Range(std::int64_t(0), std::int64_t(1) << 40));
  cmd->add_option("--time-limit", o.time_limit_s,
                  "Stop after the epoch that passes this many seconds (resume later with --resume)")
      ->check(CLI::Range(0.0, 1e9));
  cmd->add_option("--threads", o.threads, "LibTorch threads (0 = all cores)")->check(CLI::Range(0, 1024));
  cmd->add_option("--progress", args->progress, "auto | bar | lines")
      ->check(CLI::IsMember({"auto", "bar", "lines"}))->capture_default_str();
  cmd->add_flag("--no-plot", args->no_plot, "Do not render OUT.loss.png with gnuplot");
  cmd->callback([args, cmd] {
    std::string command = "dcdm train";
    for (const auto& r : cmd->get_options())
      if (r->count() > 0 && !r->get_name().empty() && r->get_name() != "--help") {
        command += " " + r->get_name();
        if (r->get_expected_min() > 0)
          for (const auto& v : r->results()) command += " " + v;
      }
    run_train(*args, command);
  });
});

}  // namespace
}  // namespace dcdm::cli
