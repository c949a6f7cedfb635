// Unsupervised DCDM training with LibTorch (see include/dcdm/training.hpp).
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <numeric>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "dcdm/dataset.hpp"
#include "dcdm/error.hpp"
#include "dcdm/training.hpp"
#include "checkpoint_archive.hpp"
#include "network.hpp"
#include "train_network.hpp"

namespace dcdm::learn {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kCheckpointFormat = "dcdm-training-checkpoint";

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "--:--:--";
  const auto t = static_cast<long long>(s + 0.5);
  return fmt::format("{:02d}:{:02d}:{:02d}", t / 3600, (t / 60) % 60, t % 60);
}

// Deterministic permutations independent of the standard library (splitmix64 stream).
std::uint64_t mix(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
void shuffle(std::vector<std::int64_t>& v, std::uint64_t seed, std::uint64_t stream) {
  std::uint64_t state = seed * 0x2545F4914F6CDD1Dull + stream * 0x9E3779B97F4A7C15ull + 1;
  for (std::size_t i = v.size(); i > 1; --i) {
    const std::size_t j = static_cast<std::size_t>(mix(state) % i);
    std::swap(v[i - 1], v[j]);
  }
}

std::string parameter_hash(torch::nn::Module& module) {
  std::uint64_t h = 1469598103934665603ull;
  for (const auto& p : module.parameters()) {
    const auto c = p.detach().contiguous().to(torch::kCPU);
    const auto* bytes = static_cast<const unsigned char*>(c.data_ptr());
    const auto n = static_cast<std::size_t>(c.numel() * c.element_size());
    for (std::size_t i = 0; i < n; ++i) h = (h ^ bytes[i]) * 1099511628211ull;
  }
  return fmt::format("{:016x}", h);
}

std::int64_t parameter_count(torch::nn::Module& module) {
  std::int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

}  // namespace

// ---------------------------------------------------------------- network adapter

TrainableNetwork make_trainable_network(const std::string& arch) {
  PaperNet net(paper_net_spec(arch));  // InputError listing the variants for an unknown name
  TrainableNetwork t;
  t.module = net.ptr();
  t.forward = [net](const torch::Tensor& x) mutable { return net->forward(x); };
  t.save_model = [net, arch](const fs::path& path, ModelMetadata metadata) mutable {
    metadata.variant = arch;
    metadata.parameter_count = parameter_count(*net);
    save_model(path, *net, std::move(metadata));
  };
  return t;
}

std::vector<std::string> trainable_architectures() { return network_variants(); }

// ---------------------------------------------------------------- grid operator

// The masked 7-point operator as tensors: y = diag * x - sum_f w_f * x(neighbour across f),
// with w_f = 1 where the cell and its neighbour across f are both fluid. Everything outside
// fluid cells is ignored on input and zero on output, as for the full-grid CSR matrix.
GridOperatorTensors::GridOperatorTensors(const Domain& domain, torch::ScalarType dtype) {
  const Dims d = domain.dims();
  const std::int64_t n = d.size();
  std::vector<float> diag(static_cast<std::size_t>(n), 0.0f);
  std::vector<std::vector<float>> w(6, std::vector<float>(static_cast<std::size_t>(n), 0.0f));
  static const int off[6][3] = {{-1, 0, 0}, {1, 0, 0}, {0, -1, 0}, {0, 1, 0}, {0, 0, -1}, {0, 0, 1}};
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j)
      for (int i = 0; i < d.nx; ++i) {
        const std::int64_t c = d.index(i, j, k);
        if (domain.cells[c] != CellType::Fluid) continue;
        for (int f = 0; f < 6; ++f) {
          const int a = i + off[f][0], b = j + off[f][1], e = k + off[f][2];
          if (!d.contains(a, b, e)) {
            if (domain.faces[f] == FaceBoundary::Open) diag[c] += 1.0f;
            continue;
          }
          const CellType t = domain.cells(a, b, e);
          if (t == CellType::Solid) continue;
          diag[c] += 1.0f;
          if (t == CellType::Fluid) w[f][c] = 1.0f;
        }
      }
  auto to_tensor = [&](const std::vector<float>& v) {
    return torch::from_blob(const_cast<float*>(v.data()), {1, 1, d.nz, d.ny, d.nx}, torch::kFloat32)
        .clone()
        .to(dtype);
  };
  diag_ = to_tensor(diag);
  for (int f = 0; f < 6; ++f) weight_[f] = to_tensor(w[f]);
  dims_ = d;
}

torch::Tensor GridOperatorTensors::apply(const torch::Tensor& x) const {
  const auto nz = dims_.nz, ny = dims_.ny, nx = dims_.nx;
  const auto xp = torch::constant_pad_nd(x, {1, 1, 1, 1, 1, 1}, 0);
  auto inner = [&](int z0, int y0, int x0) {
    return xp.slice(2, z0, z0 + nz).slice(3, y0, y0 + ny).slice(4, x0, x0 + nx);
  };
  auto y = diag_ * x;
  y = y - weight_[0] * inner(1, 1, 0);  // x-1
  y = y - weight_[1] * inner(1, 1, 2);  // x+1
  y = y - weight_[2] * inner(1, 0, 1);  // y-1
  y = y - weight_[3] * inner(1, 2, 1);  // y+1
  y = y - weight_[4] * inner(0, 1, 1);  // z-1
  y = y - weight_[5] * inner(2, 1, 1);  // z+1
  return y;
}

torch::Tensor scale_invariant_loss(const GridOperatorTensors& a, const torch::Tensor& b,
                                   const torch::Tensor& q) {
  const auto aq = a.apply(q);
  const std::vector<std::int64_t> cells{1, 2, 3, 4};
  const auto qb = (q * b).sum(cells);
  // q.Aq = 0 only where q vanishes on the fluid (then q.b = 0 too and x~ = 0).
  const auto qaq = (q * aq).sum(cells).clamp_min(1e-30);
  const auto alpha = (qb / qaq).view({-1, 1, 1, 1, 1});
  const auto r = b - alpha * aq;
  return r.pow(2).sum(cells).mean();
}

std::vector<double> torch_grid_apply(const Domain& domain, dcdm::span<const double> x, int batch) {
  const Dims d = domain.dims();
  if (batch < 1 || static_cast<std::int64_t>(x.size()) != batch * d.size())
    throw Error("torch_grid_apply: size mismatch");
  GridOperatorTensors a(domain, torch::kFloat64);
  auto xt = torch::from_blob(const_cast<double*>(x.data()), {batch, 1, d.nz, d.ny, d.nx}, torch::kFloat64);
  const auto y = a.apply(xt).contiguous();
  const auto* p = y.data_ptr<double>();
  return {p, p + y.numel()};
}

double torch_grid_loss(const Domain& domain, dcdm::span<const double> b, dcdm::span<const double> q,
                       int batch) {
  const Dims d = domain.dims();
  if (batch < 1 || static_cast<std::int64_t>(b.size()) != batch * d.size() || q.size() != b.size())
    throw Error("torch_grid_loss: size mismatch");
  GridOperatorTensors a(domain, torch::kFloat64);
  auto bt = torch::from_blob(const_cast<double*>(b.data()), {batch, 1, d.nz, d.ny, d.nx}, torch::kFloat64);
  auto qt = torch::from_blob(const_cast<double*>(q.data()), {batch, 1, d.nz, d.ny, d.nx}, torch::kFloat64);
  return scale_invariant_loss(a, bt, qt).item<double>();
}

// ---------------------------------------------------------------- training

namespace {

struct RunState {
  int epoch = 0;  // epochs completed
  int best_epoch = 0;
  double best_val = std::numeric_limits<double>::infinity();
  int since_best = 0;
  bool finished = false;
  std::string stop_reason;
  std::vector<EpochRecord> history;
};

json state_json(const RunState& s, const json& config) {
  json h = json::array();
  for (const auto& e : s.history)
    h.push_back({e.epoch, e.train_loss, e.val_loss, e.seconds, e.samples_per_s});
  return json{{"format", kCheckpointFormat},
              {"version", kCheckpointArchiveVersion},
              {"config", config},
              {"epoch", s.epoch},
              {"best_epoch", s.best_epoch},
              {"best_val", std::isfinite(s.best_val) ? json(s.best_val) : json(nullptr)},
              {"since_best", s.since_best},
              {"finished", s.finished},
              {"stop_reason", s.stop_reason},
              {"history", h}};
}

RunState state_from_json(const json& j) {
  RunState s;
  s.epoch = j.at("epoch").get<int>();
  s.best_epoch = j.at("best_epoch").get<int>();
  s.best_val = j.at("best_val").is_null() ? std::numeric_limits<double>::infinity()
                                          : j.at("best_val").get<double>();
  s.since_best = j.at("since_best").get<int>();
  s.finished = j.at("finished").get<bool>();
  s.stop_reason = j.at("stop_reason").get<std::string>();
  for (const auto& e : j.at("history"))
    s.history.push_back({e.at(0).get<int>(), e.at(1).get<double>(), e.at(2).get<double>(),
                         e.at(3).get<double>(), e.at(4).get<double>()});
  return s;
}

void save_checkpoint(const fs::path& path, torch::nn::Module& module, torch::optim::Optimizer& opt,
                     const RunState& state, const json& config) {
  write_checkpoint_archive(path, module, opt, state_json(state, config));
}

RunState load_checkpoint(const fs::path& path, torch::nn::Module& module, torch::optim::Optimizer& opt,
                         const json& config) {
  CheckpointArchive c = read_checkpoint_archive(path, "training", " (--checkpoint / --resume)");
  const json& j = c.state;
  check_checkpoint_format(c, path, kCheckpointFormat, "training");
  try {
    const std::string difference = first_config_difference(j.at("config"), config);
    if (!difference.empty())
      throw InputError(fmt::format("{}: holds a different training run (the checkpoint was made with {}); "
                                   "resume with the same options or start a new --out",
                                   path.string(), difference));
    RunState state = state_from_json(j);
    load_checkpoint_weights(c, path, module, opt);
    return state;
  } catch (const json::exception& e) {
    throw InputError(fmt::format("{}: malformed checkpoint state ({})", path.string(), e.what()));
  }
}

std::string history_csv(const std::vector<EpochRecord>& h) {
  std::string s = "epoch,train_loss,val_loss,seconds,samples_per_s\n";
  for (const auto& e : h)
    s += fmt::format("{},{:.9g},{:.9g},{:.3f},{:.4g}\n", e.epoch, e.train_loss, e.val_loss, e.seconds,
                     e.samples_per_s);
  return s;
}

void write_history_csv(const fs::path& path, const std::vector<EpochRecord>& h) { write_atomic(path, history_csv(h)); }

// Whether `path` holds exactly the rows of `h` (a run stopped between renaming its
// checkpoint and its loss file left one row short).
bool history_csv_current(const fs::path& path, const std::vector<EpochRecord>& h) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return false;
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str() == history_csv(h);
}

// gnuplot renders the PNG; the CSV is the record, so a missing gnuplot only costs the plot.
std::string write_history_png(const fs::path& csv, const fs::path& png, const std::string& title) {
  const fs::path script = png.string() + ".gp";
  const fs::path tmp = png.string() + ".tmp.png";
  {
    std::ofstream gp(script);
    gp << "set terminal pngcairo size 800,500\n"
       << "set output '" << tmp.string() << "'\n"
       << "set datafile separator ','\n"
       << "set key autotitle columnhead\n"
       << "set logscale y\nset grid\n"
       << "set xlabel 'epoch'\nset ylabel 'loss ||b - A x~||^2' noenhanced\n"
       << "set title '" << title << "' noenhanced\n"
       << "plot '" << csv.string() << "' using 1:2 with linespoints title 'train', "
       << "'' using 1:3 with linespoints title 'validation'\n";
  }
  const std::string cmd = fmt::format("gnuplot '{}' >/dev/null 2>&1", script.string());
  const int rc = std::system(cmd.c_str());
  std::error_code ec;
  fs::remove(script, ec);
  if (rc != 0 || !fs::exists(tmp)) {
    fs::remove(tmp, ec);
    return "gnuplot failed or is missing; loss plot not written";
  }
  fs::rename(tmp, png, ec);
  return ec ? "could not move the loss plot into place" : "";
}

torch::Tensor load_batch(const ShardedDataset& data, dcdm::span<const std::int64_t> indices) {
  const Dims d = data.dims();
  const auto b = static_cast<std::int64_t>(indices.size());
  auto t = torch::empty({b, 1, d.nz, d.ny, d.nx}, torch::kFloat32);
  float* p = t.data_ptr<float>();
  for (std::int64_t i = 0; i < b; ++i)
    data.read(indices[static_cast<std::size_t>(i)], dcdm::span<float>(p + i * d.size(), static_cast<std::size_t>(d.size())));
  return t;
}

}  // namespace

TrainResult train(const TrainOptions& o, const std::function<void(const std::string&)>& log_fn,
                  const std::function<void(const std::string&)>& bar_fn) {
  auto log = [&](const std::string& s) {
    if (log_fn) log_fn(s);
  };
  if (o.epochs < 1) throw InputError("--epochs: need at least 1");
  if (o.batch < 1 || o.batch > 4096) throw InputError("--batch: must be in [1, 4096]");
  if (!(o.lr > 0) || !std::isfinite(o.lr) || o.lr > 1) throw InputError("--lr: must be in (0, 1]");
  if (!(o.validation_fraction > 0 && o.validation_fraction < 1))
    throw InputError("--val-fraction: must be in (0, 1)");
  if (o.patience < 0) throw InputError("--patience: must be >= 0");
  if (o.out.empty()) throw InputError("--out: a model file path is required");
  if (o.threads > 0) torch::set_num_threads(o.threads);

  ShardedDataset data(o.data);
  const std::int64_t total = o.max_samples > 0 ? std::min(o.max_samples, data.size()) : data.size();
  const auto n_val = std::max<std::int64_t>(1, static_cast<std::int64_t>(std::llround(total * o.validation_fraction)));
  if (total - n_val < 1)
    throw InputError(fmt::format("{}: {} samples leave none for training after the validation split",
                                 o.data.string(), total));
  std::vector<std::int64_t> order(static_cast<std::size_t>(total));
  std::iota(order.begin(), order.end(), 0);
  shuffle(order, o.seed, 0xC0FFEE);
  const std::vector<std::int64_t> val(order.begin(), order.begin() + n_val);
  std::vector<std::int64_t> train_idx(order.begin() + n_val, order.end());
  std::sort(train_idx.begin(), train_idx.end());

  const fs::path ckpt = o.checkpoint.empty() ? fs::path(o.out.string() + ".ckpt") : o.checkpoint;
  const fs::path csv = o.out.string() + ".loss.csv", png = o.out.string() + ".loss.png";
  const json config{{"arch", o.arch},
                    {"batch", o.batch},
                    {"lr", o.lr},
                    {"seed", o.seed},
                    {"samples", total},
                    {"validation_fraction", o.validation_fraction},
                    {"data", data.fingerprint()},
                    {"grid", data.dims().str()}};

  torch::manual_seed(o.seed);
  TrainableNetwork net = make_trainable_network(o.arch);
  torch::optim::Adam opt(net.module->parameters(), torch::optim::AdamOptions(o.lr));
  RunState st;
  if (o.resume) {
    st = load_checkpoint(ckpt, *net.module, opt, config);
    log(fmt::format("resumed from {} after epoch {} (best validation loss {:.6g} at epoch {})",
                    ckpt.string(), st.epoch, st.best_val, st.best_epoch));
    // The checkpoint is renamed into place before the loss file: a run stopped between the
    // two left the loss file without its last rows. The checkpoint's history completes it.
    if (!st.history.empty() && !history_csv_current(csv, st.history)) {
      write_history_csv(csv, st.history);
      if (o.plot) write_history_png(csv, png, fmt::format("{} on {}", o.arch, data.dims().str()));
      log(fmt::format("{}: rewritten from the checkpoint's history ({} epochs)", csv.string(), st.history.size()));
    }
  } else if (fs::exists(ckpt)) {
    throw InputError(fmt::format("{}: a checkpoint exists; pass --resume to continue it, or remove it",
                                 ckpt.string()));
  }
  if (st.finished && o.epochs <= st.epoch) {
    log(fmt::format("training already finished ({}); nothing to do", st.stop_reason));
  }

  const GridOperatorTensors a(data.domain(), torch::kFloat32);
  TrainResult result;
  result.train_samples = static_cast<std::int64_t>(train_idx.size());
  result.val_samples = n_val;
  result.parameters = parameter_count(*net.module);
  log(backend_info());
  log(fmt::format("training {} ({} parameters) on {}: {} train / {} validation samples of {}, batch {}, "
                  "lr {}, epochs {}",
                  o.arch, result.parameters, o.data.string(), train_idx.size(), n_val, data.dims().str(),
                  o.batch, o.lr, o.epochs));

  const auto run_start = Clock::now();
  std::int64_t run_samples = 0;  // training + validation samples processed by this call
  const std::int64_t per_epoch = static_cast<std::int64_t>(train_idx.size()) + n_val;
  const bool early_stopped_before = st.finished && st.stop_reason == "early-stopping";
  if (st.epoch < o.epochs && !early_stopped_before) {  // more epochs asked for than last time
    st.finished = false;
    st.stop_reason.clear();
  }
  while (st.epoch < o.epochs && !early_stopped_before) {
    const int epoch = st.epoch + 1;
    const auto t0 = Clock::now();
    std::vector<std::int64_t> perm = train_idx;
    shuffle(perm, o.seed, static_cast<std::uint64_t>(epoch));
    net.module->train();
    double loss_sum = 0;
    std::int64_t batches = 0, done = 0;
    for (std::size_t s = 0; s < perm.size(); s += static_cast<std::size_t>(o.batch)) {
      const std::size_t e = std::min(perm.size(), s + static_cast<std::size_t>(o.batch));
      const auto b = load_batch(data, dcdm::span<const std::int64_t>(perm.data() + s, e - s));
      opt.zero_grad();
      const auto loss = scale_invariant_loss(a, b, net.forward(b));
      const double lv = loss.item<double>();
      if (!std::isfinite(lv))
        throw Error(fmt::format("epoch {}: the loss became {} (lower --lr?); the last checkpoint "
                                "({}) holds epoch {}",
                                epoch, lv, ckpt.string(), st.epoch));
      loss.backward();
      opt.step();
      loss_sum += lv;
      ++batches;
      done += static_cast<std::int64_t>(e - s);
      run_samples += static_cast<std::int64_t>(e - s);
      const std::int64_t tenth = std::max<std::int64_t>(1, static_cast<std::int64_t>(perm.size()) / 10);
      const bool tenth_crossed = (done - static_cast<std::int64_t>(e - s)) / tenth != done / tenth;
      if (!o.progress_bar && tenth_crossed && done < static_cast<std::int64_t>(perm.size())) {
        // Logs are not redrawn, so a line per tenth of an epoch shows a long run is alive.
        const double rate = run_samples / std::max(seconds_since(run_start), 1e-9);
        const std::int64_t left = (o.epochs - epoch) * per_epoch + (per_epoch - done);
        log(fmt::format("epoch {}/{}: {}/{} samples, {:.2f} samples/s, loss {:.4e}, ETA {}", epoch, o.epochs,
                        done, perm.size(), rate, loss_sum / batches,
                        format_duration(left / std::max(rate, 1e-9))));
      }
      if (o.progress_bar && bar_fn) {
        const double el = seconds_since(run_start);
        const double rate = run_samples / std::max(el, 1e-9);
        const std::int64_t left = (o.epochs - epoch) * per_epoch + (per_epoch - done);
        const int width = 24;
        const int fill = static_cast<int>(width * done / std::max<std::int64_t>(1, perm.size()));
        bar_fn(fmt::format("epoch {}/{} [{}{}] {}/{} {:.2f} samples/s loss {:.4e} ETA {}\r", epoch,
                           o.epochs, std::string(static_cast<std::size_t>(fill), '#'),
                           std::string(static_cast<std::size_t>(width - fill), '.'), done, perm.size(),
                           rate, loss_sum / batches, format_duration(left / std::max(rate, 1e-9))));
      }
    }
    const double train_seconds = seconds_since(t0);
    // Validation with the weights after the epoch.
    net.module->eval();
    double val_sum = 0;
    {
      torch::NoGradGuard no_grad;
      for (std::size_t s = 0; s < val.size(); s += static_cast<std::size_t>(o.batch)) {
        const std::size_t e = std::min(val.size(), s + static_cast<std::size_t>(o.batch));
        const auto b = load_batch(data, dcdm::span<const std::int64_t>(val.data() + s, e - s));
        val_sum += scale_invariant_loss(a, b, net.forward(b)).item<double>() * static_cast<double>(e - s);
        run_samples += static_cast<std::int64_t>(e - s);
      }
    }
    EpochRecord rec;
    rec.epoch = epoch;
    rec.train_loss = loss_sum / std::max<std::int64_t>(1, batches);
    rec.val_loss = val_sum / static_cast<double>(val.size());
    rec.seconds = seconds_since(t0);
    rec.samples_per_s = static_cast<double>(perm.size()) / std::max(train_seconds, 1e-9);
    st.history.push_back(rec);
    st.epoch = epoch;
    const bool improved = rec.val_loss < st.best_val;
    if (improved) {
      st.best_val = rec.val_loss;
      st.best_epoch = epoch;
      st.since_best = 0;
      ModelMetadata meta;
      meta.trained_grid = data.dims();
      meta.data_recipe_json = data.recipe_json();
      meta.training_summary_json =
          json{{"epoch", epoch}, {"train_loss", rec.train_loss}, {"val_loss", rec.val_loss},
               {"batch", o.batch}, {"lr", o.lr}, {"seed", o.seed},
               {"train_samples", train_idx.size()}, {"val_samples", n_val},
               {"data_fingerprint", data.fingerprint()},
               {"seconds", std::accumulate(st.history.begin(), st.history.end(), 0.0,
                                           [](double s0, const EpochRecord& r0) { return s0 + r0.seconds; })}}
              .dump();
      meta.created_by = o.command.empty() ? std::string("dcdm train") : o.command;
      net.save_model(o.out, std::move(meta));
    } else {
      ++st.since_best;
    }
    if (epoch >= o.epochs) {
      st.finished = true;
      st.stop_reason = "epochs";
    } else if (o.patience > 0 && st.since_best >= o.patience) {
      st.finished = true;
      st.stop_reason = "early-stopping";
    }
    save_checkpoint(ckpt, *net.module, opt, st, config);
    write_history_csv(csv, st.history);
    if (o.plot) {
      const std::string note = write_history_png(csv, png, fmt::format("{} on {}", o.arch, data.dims().str()));
      if (!note.empty() && epoch == 1) log(note);
    }
    const double el = seconds_since(run_start);
    const double rate = run_samples / std::max(el, 1e-9);
    const std::int64_t left = st.finished ? 0 : (o.epochs - epoch) * per_epoch;
    if (o.progress_bar && bar_fn) bar_fn(std::string(100, ' ') + "\r");
    log(fmt::format("epoch {}/{}: train loss {:.6e}  validation loss {:.6e}{}  {:.2f} samples/s  "
                    "{:.1f} s  ETA {}",
                    epoch, o.epochs, rec.train_loss, rec.val_loss, improved ? " *" : "  ",
                    rec.samples_per_s, rec.seconds, format_duration(left / std::max(rate, 1e-9))));
    if (st.stop_reason == "early-stopping") {
      log(fmt::format("early stopping: no better validation loss for {} epochs (best {:.6e} at epoch {})",
                      o.patience, st.best_val, st.best_epoch));
      break;
    }
    if (o.time_limit_s > 0 && seconds_since(run_start) >= o.time_limit_s && !st.finished) {
      st.stop_reason = "time-limit";
      log(fmt::format("time limit reached after epoch {}; continue with --resume", epoch));
      break;
    }
  }
  result.history = st.history;
  result.best_epoch = st.best_epoch;
  result.best_val_loss = st.best_val;
  result.finished = st.finished;
  result.stop_reason = st.stop_reason;
  result.parameter_hash = parameter_hash(*net.module);
  return result;
}

// ---------------------------------------------------------------- throughput

ThroughputResult measure_training_throughput(const std::string& arch, Dims dims, int batch, int steps,
                                             int threads) {
  if (threads > 0) torch::set_num_threads(threads);
  Domain domain(dims, CellType::Fluid);
  domain.set_face(Face::YMax, FaceBoundary::Open);
  const GridOperatorTensors a(domain, torch::kFloat32);
  torch::manual_seed(1);
  TrainableNetwork net = make_trainable_network(arch);
  torch::optim::Adam opt(net.module->parameters(), torch::optim::AdamOptions(1e-4));
  auto b = torch::randn({batch, 1, dims.nz, dims.ny, dims.nx});
  b = b / b.pow(2).sum({1, 2, 3, 4}, true).sqrt();
  auto step = [&] {
    opt.zero_grad();
    auto loss = scale_invariant_loss(a, b, net.forward(b));
    loss.backward();
    opt.step();
  };
  step();  // warm-up (oneDNN primitive creation)
  auto t0 = Clock::now();
  for (int s = 0; s < steps; ++s) step();
  ThroughputResult r;
  r.samples_per_s = double(steps) * batch / seconds_since(t0);
  {
    torch::NoGradGuard no_grad;
    net.forward(b);
    t0 = Clock::now();
    for (int s = 0; s < steps; ++s) net.forward(b);
    r.forward_samples_per_s = double(steps) * batch / seconds_since(t0);
  }
  r.parameters = parameter_count(*net.module);
  return r;
}

}  // namespace dcdm::learn
