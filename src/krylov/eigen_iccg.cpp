// Eigen's ConjugateGradient with its IncompleteCholesky preconditioner, on the compressed
// matrix.
// GCC 12 reports a false -Wmaybe-uninitialized inside its own AVX-512 intrinsics when Eigen's
// vectorised kernels are inlined with -march=native; it is not about this code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <Eigen/IterativeLinearSolvers>
#include <Eigen/SparseCore>

#include <algorithm>
#include <chrono>
#include <cmath>

#include <fmt/format.h>

#include "dcdm/error.hpp"
#include "dcdm/peers.hpp"

namespace dcdm {

std::string eigen_version() {
  return fmt::format("Eigen {}.{}.{}", EIGEN_WORLD_VERSION, EIGEN_MAJOR_VERSION, EIGEN_MINOR_VERSION);
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
    compressed_ = compress_peer_system(system, "eigen-iccg");
    system_ = system;
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

  SolveReport solve_scaled(dcdm::span<const double> b, dcdm::span<double> x,
                    const SolveOptions& options) override {
    if (!system_.op) throw Error("eigen-iccg: solve() before setup()");
    const auto t0 = Clock::now();
    SolveReport report;
    start_peer_report(report, name(), setup_seconds_, system_, b, x, options);
    const auto n = static_cast<Eigen::Index>(compressed_.full_index.size());
    if (peer_settled_without_solving(report, system_, b, x, n == 0)) {
      report.solve_seconds = seconds_since(t0);
      return report;
    }
    Eigen::VectorXd cb(n), cx(n);
    const double cb_norm = compressed_.gather_rhs(system_, b, {cb.data(), static_cast<std::size_t>(n)});
    compressed_.gather(x, {cx.data(), static_cast<std::size_t>(n)});
    const double target = std::max(options.rtol * report.rhs_norm, options.atol);
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
    compressed_.scatter_solution(system_, {cx.data(), static_cast<std::size_t>(n)}, x);
    report.iterations = iterations;
    // Eigen exposes only the final residual: the history is its first and last entries.
    report.residual_history = {report.initial_residual};
    finish_peer_report(report, system_, b, x, options, "Eigen ConjugateGradient", SolveReason::Stagnation);
    report.solve_seconds = seconds_since(t0);
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
