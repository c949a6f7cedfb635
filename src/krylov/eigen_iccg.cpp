// Eigen's ConjugateGradient with its IncompleteCholesky preconditioner, on the compressed
// matrix, plus the helpers every peer shares (active-row compression, true residual,
// "key=value:..." settings).
// GCC 12 reports a false -Wmaybe-uninitialized inside its own AVX-512 intrinsics when Eigen's
// vectorised kernels are inlined with -march=native; it is not about this code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <Eigen/IterativeLinearSolvers>
#include <Eigen/SparseCore>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>

#include <fmt/format.h>

#include "dcdm/error.hpp"
#include "dcdm/peers.hpp"

namespace dcdm {

std::string eigen_version() {
  return fmt::format("Eigen {}.{}.{}", EIGEN_WORLD_VERSION, EIGEN_MAJOR_VERSION, EIGEN_MINOR_VERSION);
}

CompressedSystem compress_active_rows(const CsrMatrix& a, const std::string& who) {
  if (a.rows != a.cols)
    throw InputError(fmt::format("{}: matrix is {}x{}, not square", who, a.rows, a.cols));
  CompressedSystem out;
  out.row_of.assign(static_cast<std::size_t>(a.rows), -1);
  for (std::int64_t r = 0; r < a.rows; ++r) {
    double diag = 0.0;
    bool off = false;
    for (std::int64_t k = a.row_ptr[r]; k < a.row_ptr[r + 1]; ++k) {
      if (!std::isfinite(a.values[k]))
        throw InputError(fmt::format("{}: matrix entry ({}, {}) is not finite", who, r, a.col_idx[k]));
      if (a.col_idx[k] == r) diag = a.values[k];
      else if (a.values[k] != 0.0) off = true;
    }
    if (diag > 0.0) {
      out.row_of[r] = static_cast<std::int64_t>(out.full_index.size());
      out.full_index.push_back(r);
    } else if (diag < 0.0 || off) {
      throw InputError(fmt::format(
          "{}: row {} has diagonal {} and off-diagonal entries: matrix is not SPD", who, r, diag));
    }
  }
  const auto n = static_cast<std::int64_t>(out.full_index.size());
  CsrMatrix& c = out.matrix;
  c.rows = c.cols = n;
  c.row_ptr.assign(static_cast<std::size_t>(n) + 1, 0);
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t r = out.full_index[i];
    for (std::int64_t k = a.row_ptr[r]; k < a.row_ptr[r + 1]; ++k) {
      const std::int64_t col = out.row_of[a.col_idx[k]];
      if (a.values[k] == 0.0) continue;
      if (col < 0)
        throw InputError(fmt::format("{}: row {} couples to inactive row {}: matrix is not symmetric",
                                     who, r, a.col_idx[k]));
      c.col_idx.push_back(static_cast<std::int32_t>(col));
      c.values.push_back(a.values[k]);
    }
    c.row_ptr[i + 1] = static_cast<std::int64_t>(c.values.size());
  }
  return out;
}

void parse_peer_settings(const std::string& text, const std::string& who, std::span<const PeerSetting> keys) {
  std::string known;
  for (const auto& k : keys) {
    if (!known.empty()) known += ' ';
    known += k.key;
  }
  for (std::size_t start = 0; !text.empty() && start <= text.size();) {
    const std::size_t end = std::min(text.find(':', start), text.size());
    const std::string item = text.substr(start, end - start);
    start = end + 1;
    const std::size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == item.size())
      throw InputError(fmt::format("{}: setting '{}' is not key=value (keys: {})", who, item, known));
    const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    const auto k = std::find_if(keys.begin(), keys.end(), [&](const PeerSetting& s) { return key == s.key; });
    if (k == keys.end()) throw InputError(fmt::format("{}: unknown setting '{}' (keys: {})", who, key, known));
    if (auto* word = std::get_if<std::string*>(&k->target)) {
      const std::string choices = k->choices;
      bool ok = false;
      for (std::size_t b = 0; b <= choices.size();) {
        const std::size_t e = std::min(choices.find('|', b), choices.size());
        ok = ok || choices.compare(b, e - b, value) == 0;
        b = e + 1;
      }
      if (!ok) throw InputError(fmt::format("{}: {}={} is not one of {}", who, key, value, choices));
      **word = value;
      continue;
    }
    const bool integer = std::holds_alternative<int*>(k->target);
    double v = 0.0;
    std::from_chars_result r{};
    if (integer) {
      int i = 0;
      r = std::from_chars(value.data(), value.data() + value.size(), i);
      v = i;
    } else {
      r = std::from_chars(value.data(), value.data() + value.size(), v);
    }
    if (r.ec != std::errc() || r.ptr != value.data() + value.size() || !(v >= k->min && v <= k->max))
      throw InputError(fmt::format("{}: {}={} is not {} in [{}, {}]", who, key, value,
                                   integer ? "an integer" : "a number", k->min, k->max));
    if (integer) *std::get<int*>(k->target) = static_cast<int>(v);
    else *std::get<double*>(k->target) = v;
  }
}

EigenIccgSettings parse_eigen_iccg_settings(const std::string& text, const std::string& who) {
  EigenIccgSettings s;
  const PeerSetting keys[] = {{"ordering", &s.ordering, 0, 0, "natural|amd"},
                              {"shift", &s.initial_shift, 1e-12, 1e3}};
  parse_peer_settings(text, who, keys);
  return s;
}

std::string to_string(const EigenIccgSettings& s) {
  return fmt::format("ordering={}:shift={}", s.ordering, s.initial_shift);
}

double true_residual_norm(const LinearOperator& op, std::span<const double> b,
                          std::span<const double> x) {
  Vector ax(b.size());
  op.apply(x, ax);
  Vector r(b.begin(), b.end());
  axpy(-1.0, ax, r);
  return norm2(r);
}

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

template <class Ordering>
class EigenIccg final : public IterativeSolver {
 public:
  explicit EigenIccg(const EigenIccgSettings& s) : settings_(s) {}
  std::string name() const override { return "eigen-iccg"; }

  void setup(const LinearSystemView& system) override {
    const auto t0 = Clock::now();
    if (!system.op) throw InputError("eigen-iccg: the system has no operator");
    if (!system.matrix) throw InputError("eigen-iccg: needs an assembled matrix (none given)");
    if (system.matrix->rows != system.op->size())
      throw InputError(fmt::format("eigen-iccg: matrix has {} rows but the operator {}",
                                   system.matrix->rows, system.op->size()));
    system_ = system;
    compressed_ = compress_active_rows(*system.matrix, "eigen-iccg");
    const CsrMatrix& c = compressed_.matrix;
    const auto n = static_cast<Eigen::Index>(c.rows);
    matrix_.resize(n, n);
    matrix_.resizeNonZeros(static_cast<Eigen::Index>(c.nnz()));
    for (Eigen::Index i = 0; i <= n; ++i) matrix_.outerIndexPtr()[i] = static_cast<int>(c.row_ptr[i]);
    std::copy(c.col_idx.begin(), c.col_idx.end(), matrix_.innerIndexPtr());
    std::copy(c.values.begin(), c.values.end(), matrix_.valuePtr());
    cg_.preconditioner().setInitialShift(settings_.initial_shift);
    cg_.compute(matrix_);
    if (cg_.preconditioner().info() != Eigen::Success)
      throw InputError("eigen-iccg: incomplete Cholesky factorisation failed (matrix not SPD?)");
    setup_seconds_ = seconds_since(t0);
  }

  SolveReport solve(std::span<const double> b, std::span<double> x,
                    const SolveOptions& options) override {
    if (!system_.op) throw Error("eigen-iccg: solve() before setup()");
    const auto t0 = Clock::now();
    SolveReport report;
    report.method = name();
    report.setup_seconds = setup_seconds_;
    if (!options.use_initial_guess) fill(x, 0.0);
    Vector rhs(b.begin(), b.end());
    if (system_.project_range) system_.project_range(rhs);
    report.rhs_norm = norm2(b);
    report.initial_residual = true_residual_norm(*system_.op, b, x);
    report.residual_history.push_back(report.initial_residual);
    if (count_non_finite(b) > 0) {
      report.reason = SolveReason::NaN;
      report.detail = "right-hand side has NaN/Inf";
      report.final_residual = report.initial_residual;
      return report;
    }

    const auto n = static_cast<Eigen::Index>(compressed_.full_index.size());
    Eigen::VectorXd cb(n), cx(n);
    for (Eigen::Index i = 0; i < n; ++i) {
      cb[i] = rhs[compressed_.full_index[i]];
      cx[i] = x[compressed_.full_index[i]];
    }
    const double target = std::max(options.rtol * report.rhs_norm, options.atol);
    const double cb_norm = cb.norm();
    int iterations = 0;
    // Eigen stops on its recursively updated residual; re-check the true residual and resume
    // from the current iterate (at most a few times) if rounding left it above the target.
    for (int attempt = 0; attempt < 4 && cb_norm > 0.0; ++attempt) {
      const double residual = (cb - matrix_.selfadjointView<Eigen::Lower>() * cx).norm();
      if (residual <= target || iterations >= options.max_iterations) break;
      cg_.setTolerance(target / cb_norm);  // Eigen: ||r|| <= tol * ||b||
      cg_.setMaxIterations(options.max_iterations - iterations);
      cx = cg_.solveWithGuess(cb, cx);
      iterations += static_cast<int>(cg_.iterations());
      if (cg_.info() == Eigen::NoConvergence) break;
    }
    for (Eigen::Index i = 0; i < n; ++i) x[compressed_.full_index[i]] = cx[i];
    report.iterations = iterations;
    report.final_residual = true_residual_norm(*system_.op, b, x);
    report.solve_seconds = seconds_since(t0);
    if (report.iterations > 0) report.residual_history.push_back(report.final_residual);
    if (!std::isfinite(report.final_residual)) {
      report.reason = SolveReason::NaN;
      report.detail = "Eigen ConjugateGradient produced NaN/Inf";
    } else if (report.final_residual <= options.atol && options.atol > 0.0) {
      report.reason = SolveReason::ConvergedAtol;
    } else if (report.final_residual <= options.rtol * report.rhs_norm) {
      report.reason = SolveReason::ConvergedRtol;
    } else if (iterations >= options.max_iterations) {
      report.reason = SolveReason::MaxIterations;
    } else {
      report.reason = SolveReason::Stagnation;
      report.detail = fmt::format("Eigen stopped at true relative residual {:.3e}",
                                  report.relative_residual());
    }
    // History: Eigen exposes only the final residual (entries 0 and the last iteration).
    if (options.monitor)
      for (std::size_t k = 0; k < report.residual_history.size(); ++k)
        options.monitor({k == 0 ? 0 : report.iterations, report.residual_history[k],
                         report.rhs_norm > 0 ? report.residual_history[k] / report.rhs_norm : 0.0});
    return report;
  }

 private:
  using Matrix = Eigen::SparseMatrix<double, Eigen::RowMajor, int>;
  EigenIccgSettings settings_;
  LinearSystemView system_;
  CompressedSystem compressed_;
  Matrix matrix_;
  Eigen::ConjugateGradient<Matrix, Eigen::Lower | Eigen::Upper,
                           Eigen::IncompleteCholesky<double, Eigen::Lower, Ordering>>
      cg_;
  double setup_seconds_ = 0.0;
};

}  // namespace

std::unique_ptr<IterativeSolver> make_eigen_iccg(const EigenIccgSettings& settings) {
  if (settings.ordering == "amd") return std::make_unique<EigenIccg<Eigen::AMDOrdering<int>>>(settings);
  if (settings.ordering == "natural") return std::make_unique<EigenIccg<Eigen::NaturalOrdering<int>>>(settings);
  throw InputError(fmt::format("eigen-iccg: ordering '{}' is not natural or amd", settings.ordering));
}

}  // namespace dcdm
