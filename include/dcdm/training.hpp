#pragma once
// Unsupervised DCDM training (README "The method"): for a unit training
// vector b and q = f(b),
//   x~ = q (q.b) / (q.Aq),   loss(b) = ||b - A x~||^2   (averaged over the batch),
// with A the masked 7-point grid operator applied as a differentiable LibTorch operation
// (shifted slices times per-cell neighbour masks). Adam, a seeded 90/10 train/validation
// split, a checkpoint with the optimiser state after every epoch (atomic), --resume that
// continues bit-identically, early stopping on the validation loss, the loss history as CSV
// and a gnuplot PNG. Plain C++: no LibTorch header is visible from here.
#include <cstdint>
#include <filesystem>
#include <functional>
#include "dcdm/span.hpp"
#include <string>
#include <vector>

#include "dcdm/grid.hpp"

namespace dcdm::learn {

namespace fs = std::filesystem;

struct TrainOptions {
  fs::path data;                 // dataset folder (dcdm dataset)
  std::string arch = "paper64";  // network architecture
  int epochs = 50;               // total epochs (a resumed run continues up to this)
  int batch = 10;
  double lr = 1e-4;
  fs::path out;                  // model file: the weights with the best validation loss
  fs::path checkpoint;           // default: out + ".ckpt"
  bool resume = false;
  double validation_fraction = 0.1;
  int patience = 10;             // epochs without a better validation loss -> stop (0 = off)
  std::uint64_t seed = 0;        // initial weights, split, shuffling
  std::int64_t max_samples = 0;  // use only the first N samples of the dataset (0 = all)
  double time_limit_s = 0;       // stop (resumably) after the epoch that passes this (0 = none)
  int threads = 0;               // LibTorch intra-op threads (0 = default)
  bool progress_bar = false;     // redraw one status line per batch (a TTY) vs a line per tenth of an epoch
  bool plot = true;              // write the PNG through gnuplot (skipped with a note if absent)
  std::string command;           // the command line, recorded in the model's metadata
};

struct EpochRecord {
  int epoch = 0;                 // 1-based
  double train_loss = 0;         // mean over the epoch's batches (running weights)
  double val_loss = 0;           // mean over the validation set after the epoch
  double seconds = 0;            // wall time of the epoch (training + validation)
  double samples_per_s = 0;      // training samples per second
};

struct TrainResult {
  std::vector<EpochRecord> history;  // every epoch so far, resumed ones included
  int best_epoch = 0;
  double best_val_loss = 0;
  bool finished = false;             // reached the epoch count or stopped early
  std::string stop_reason;           // "epochs", "early-stopping", "time-limit"
  std::string parameter_hash;        // hash of the final weights' bytes (resume checks)
  std::int64_t train_samples = 0, val_samples = 0;
  std::int64_t parameters = 0;
};

// Runs (or resumes) training. Status lines go to `log` (stdout-like); the progress bar (when
// enabled) to `bar` (stderr-like, lines end in '\r'). Writes out, the checkpoint,
// out + ".loss.csv" and out + ".loss.png".
TrainResult train(const TrainOptions& options,
                  const std::function<void(const std::string&)>& log = {},
                  const std::function<void(const std::string&)>& bar = {});

// ---- the grid operator and loss through LibTorch (exposed for tests) ----
// y = A x for `batch` full-grid vectors x (batch x N, float64 throughout).
std::vector<double> torch_grid_apply(const Domain& domain, dcdm::span<const double> x, int batch);
// The batch-mean scale-invariant loss of q for b (batch x N each), in float64.
double torch_grid_loss(const Domain& domain, dcdm::span<const double> b, dcdm::span<const double> q,
                       int batch);

// ---- throughput (bench, docs/perf-training.md) ----
struct ThroughputResult {
  double samples_per_s = 0;      // forward + loss + backward + Adam step
  double forward_samples_per_s = 0;
  std::int64_t parameters = 0;
};
// Times `steps` training steps (after one warm-up) of `arch` on random unit vectors over an
// all-fluid box with open top (dims), batch `batch`.
ThroughputResult measure_training_throughput(const std::string& arch, Dims dims, int batch,
                                             int steps, int threads = 0);

// Architectures the trainer can build ("paper64", "paper128", ...).
std::vector<std::string> trainable_architectures();

}  // namespace dcdm::learn
