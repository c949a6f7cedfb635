// AMGCL peer (optional): AMGCL's own CG preconditioned by its algebraic multigrid, on the
// compressed matrix, with the builtin (OpenMP) backend. AMGCL is header-only and not packaged
// by Debian; a user points the build at its headers (`make AMGCL=/path/to/amgcl`, or CMake
// -DDCDM_AMGCL_DIR=...); without them this file only answers "not available in this build".
#include "dcdm/peers.hpp"

#include <chrono>
#include <cmath>
#include <type_traits>
#include <fmt/format.h>

#include "dcdm/error.hpp"

#ifdef DCDM_HAVE_AMGCL
#include <amgcl/adapter/crs_tuple.hpp>
#include <amgcl/amg.hpp>
#include <amgcl/backend/builtin.hpp>
#include <amgcl/coarsening/ruge_stuben.hpp>
#include <amgcl/coarsening/smoothed_aggregation.hpp>
#include <amgcl/relaxation/gauss_seidel.hpp>
#include <amgcl/relaxation/ilu0.hpp>
#include <amgcl/relaxation/spai0.hpp>
#include <amgcl/solver/cg.hpp>
#endif

namespace dcdm {

AmgclSettings parse_amgcl_settings(const std::string& text, const std::string& who) {
  AmgclSettings s;
  const PeerSetting keys[] = {{"coarsening", &s.coarsening, 0, 0, "sa|rs"},
                              {"relax", &s.relaxation, 0, 0, "spai0|gs|ilu0"},
                              {"strong", &s.strong_threshold, 0.0, 1.0},  // 0: AMGCL's default
                              {"coarse", &s.coarse_enough, 1, 100000},
                              {"precision", &s.precision, 0, 0, "double|float"}};
  parse_peer_settings(text, who, keys);
  return s;
}

std::string to_string(const AmgclSettings& s) {
  return fmt::format("coarsening={}:relax={}:strong={}:coarse={}:precision={}", s.coarsening, s.relaxation,
                     s.strong_threshold, s.coarse_enough, s.precision);
}

bool amgcl_available() {
#ifdef DCDM_HAVE_AMGCL
  return true;
#else
  return false;
#endif
}

std::string amgcl_version() {
#ifdef DCDM_HAVE_AMGCL
  return "AMGCL (headers: " DCDM_AMGCL_INCLUDE_DIR ")";
#else
  return "AMGCL: not available in this build";
#endif
}

#ifndef DCDM_HAVE_AMGCL

std::unique_ptr<IterativeSolver> make_amgcl_cg(const AmgclSettings&) {
  throw InputError(
      "amgcl: not available in this build (AMGCL is optional: build with `make AMGCL=/path/to/amgcl`, "
      "the folder that holds amgcl/amg.hpp)");
}

#else

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

using Backend = amgcl::backend::builtin<double>;

// AMGCL's CG takes its inner product as a type; this one also records the norms CG takes of
// its residual (inner products of a vector with itself: ||b|| first, then ||r_k|| for k =
// 0, 1, ...), which is how the residual history reaches the report.
struct RecordingInnerProduct {
  std::vector<double>* norms = nullptr;
  template <class Vec1, class Vec2>
  double operator()(const Vec1& x, const Vec2& y) const {
    const double v = amgcl::backend::inner_product(x, y);
    if (norms && static_cast<const void*>(&x) == static_cast<const void*>(&y))
      norms->push_back(std::sqrt(std::abs(v)));
    return v;
  }
};

// What one AMGCL configuration needs, type-erased behind the settings' names.
// The hierarchy is built once in the constructor and serves every later solve (AMGCL's
// tutorial: "the same solver may be used multiple times with different RHS vectors").
class AmgclRunner {
 public:
  virtual ~AmgclRunner() = default;
  // Returns AMGCL's iteration count; x holds the initial guess on entry.
  virtual int solve(const std::vector<double>& b, std::vector<double>& x, double rtol, double atol,
                    int max_iterations, std::vector<double>& norms) = 0;
};

// PrecondBackend: builtin<double>, or builtin<float> for AMGCL's mixed precision (a single
// precision hierarchy under the double CG, which then multiplies by the caller's double
// matrix: `a` must outlive the runner).
template <class PrecondBackend, template <class> class Coarsening, template <class> class Relaxation>
class AmgclCg final : public AmgclRunner {
 public:
  using Precond = amgcl::amg<PrecondBackend, Coarsening, Relaxation>;
  using Cg = amgcl::solver::cg<Backend, RecordingInnerProduct>;
  static constexpr bool kMixed = !std::is_same_v<PrecondBackend, Backend>;

  AmgclCg(const CsrMatrix& a, const AmgclSettings& s) : a_(a) {
    typename Precond::params prm;
    prm.coarse_enough = static_cast<unsigned>(s.coarse_enough);
    if (s.strong_threshold > 0.0) set_strong_threshold(prm.coarsening, s.strong_threshold);
    const auto n = static_cast<std::ptrdiff_t>(a.rows);
    // The matrix's own arrays through AMGCL's CRS tuple adapter (no copy of them: AMGCL builds
    // its finest level from them).
    precond_ = std::make_unique<Precond>(std::tie(n, a.row_ptr, a.col_idx, a.values), prm);
    cg_ = std::make_unique<Cg>(static_cast<std::size_t>(n), typename Cg::params(),
                               typename Backend::params(), RecordingInnerProduct{&norms_});
  }

  int solve(const std::vector<double>& b, std::vector<double>& x, double rtol, double atol,
            int max_iterations, std::vector<double>& norms) override {
    cg_->prm.tol = rtol;
    cg_->prm.abstol = atol;
    cg_->prm.maxiter = static_cast<std::size_t>(max_iterations);
    norms_.clear();
    std::size_t iterations = 0;
    double error = 0.0;
    if constexpr (kMixed) {
      const auto n = static_cast<std::ptrdiff_t>(a_.rows);
      std::tie(iterations, error) = (*cg_)(std::tie(n, a_.row_ptr, a_.col_idx, a_.values), *precond_, b, x);
    } else {
      std::tie(iterations, error) = (*cg_)(*precond_, b, x);
    }
    // norms_ = ||b||, ||r_0||, ||r_1||, ...: drop ||b||.
    norms.assign(norms_.size() > 1 ? norms_.begin() + 1 : norms_.end(), norms_.end());
    return static_cast<int>(iterations);
  }

 private:
  template <class P>
  static void set_strong_threshold(P& p, double theta) {
    if constexpr (requires { p.aggr.eps_strong; }) p.aggr.eps_strong = static_cast<float>(theta);
    else if constexpr (requires { p.eps_strong; }) p.eps_strong = static_cast<float>(theta);
  }
  const CsrMatrix& a_;
  std::vector<double> norms_;
  std::unique_ptr<Precond> precond_;
  std::unique_ptr<Cg> cg_;
};

template <class PrecondBackend, template <class> class Coarsening>
std::unique_ptr<AmgclRunner> make_runner_with(const std::string& relax, const CsrMatrix& a,
                                              const AmgclSettings& s) {
  if (relax == "gs")
    return std::make_unique<AmgclCg<PrecondBackend, Coarsening, amgcl::relaxation::gauss_seidel>>(a, s);
  if (relax == "ilu0") return std::make_unique<AmgclCg<PrecondBackend, Coarsening, amgcl::relaxation::ilu0>>(a, s);
  return std::make_unique<AmgclCg<PrecondBackend, Coarsening, amgcl::relaxation::spai0>>(a, s);
}

template <class PrecondBackend>
std::unique_ptr<AmgclRunner> make_runner_in(const CsrMatrix& a, const AmgclSettings& s) {
  if (s.coarsening == "rs")
    return make_runner_with<PrecondBackend, amgcl::coarsening::ruge_stuben>(s.relaxation, a, s);
  return make_runner_with<PrecondBackend, amgcl::coarsening::smoothed_aggregation>(s.relaxation, a, s);
}

std::unique_ptr<AmgclRunner> make_runner(const CsrMatrix& a, const AmgclSettings& s) {
  if (s.precision == "float") return make_runner_in<amgcl::backend::builtin<float>>(a, s);
  return make_runner_in<Backend>(a, s);
}

class AmgclPeer final : public IterativeSolver {
 public:
  explicit AmgclPeer(const AmgclSettings& s) : settings_(s) {}
  std::string name() const override { return "amgcl"; }

  void setup(const LinearSystemView& system) override {
    const auto t0 = Clock::now();
    compressed_ = compress_peer_system(system, "amgcl");
    system_ = system;
    runner_.reset();
    if (compressed_.matrix.rows > 0) {
      try {
        runner_ = make_runner(compressed_.matrix, settings_);
      } catch (const std::exception& e) {
        throw InputError(fmt::format("amgcl: setup failed: {}", e.what()));
      }
    }
    setup_seconds_ = seconds_since(t0);
  }

  SolveReport solve_scaled(dcdm::span<const double> b, dcdm::span<double> x,
                    const SolveOptions& options) override {
    if (!system_.op) throw Error("amgcl: solve() before setup()");
    const auto t0 = Clock::now();
    SolveReport report;
    start_peer_report(report, name(), setup_seconds_, system_, b, x, options);
    const auto n = compressed_.full_index.size();
    if (peer_settled_without_solving(report, system_, b, x, n == 0 || !runner_)) {
      report.solve_seconds = seconds_since(t0);
      return report;
    }
    std::vector<double> cb(n), cx(n);
    const double gathered = compressed_.gather_rhs(system_, b, cb);
    compressed_.gather(x, cx);
    std::vector<double> norms;
    try {
      report.iterations = runner_->solve(cb, cx, gathered_rtol(options.rtol, report.rhs_norm, gathered),
                                         options.atol, options.max_iterations, norms);
    } catch (const std::exception& e) {
      report.reason = SolveReason::Breakdown;
      report.detail = fmt::format("AMGCL threw: {}", e.what());
      report.final_residual = report.initial_residual;
      report.residual_history = {report.initial_residual};
      report.solve_seconds = seconds_since(t0);
      return report;
    }
    compressed_.scatter_solution(system_, cx, x);
    // AMGCL's CG takes ||r|| once before the loop and once per iteration.
    if (norms.size() == static_cast<std::size_t>(report.iterations) + 1) report.residual_history = norms;
    else report.residual_history = {report.initial_residual};
    finish_peer_report(report, system_, b, x, options, "AMGCL CG", SolveReason::Breakdown);
    report.solve_seconds = seconds_since(t0);
    return report;
  }

 private:
  AmgclSettings settings_;
  LinearSystemView system_;
  CompressedSystem compressed_;
  std::unique_ptr<AmgclRunner> runner_;
  double setup_seconds_ = 0.0;
};

}  // namespace

std::unique_ptr<IterativeSolver> make_amgcl_cg(const AmgclSettings& settings) {
  return std::make_unique<AmgclPeer>(settings);
}

#endif

}  // namespace dcdm
