#include "dcdm/dcdm.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <type_traits>

#include <fmt/format.h>

#include "dcdm/error.hpp"
#include "dcdm/linalg.hpp"
#include "dcdm/precond.hpp"
#include "../linalg/block_ops.hpp"
#include "../linalg/uninitialised.hpp"

namespace dcdm {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Float Krylov vectors: each is first written by a parallel loop (the generator, the
// orthogonalisation, the mat-vec), so they are left uninitialised where they are made.
using FloatVector = detail::UninitialisedVector<float>;

// One kept search direction p and its image A p (with p.Ap cached).
struct Direction {
  Vector p, ap;
  FloatVector pf, apf;  // p and A p instead, with float vectors (DcdmOptions::vector_precision)
  double pap = 0.0;
};

enum class Failure { None, NonFinite, Curvature, Vanished };

// A candidate direction after A-orthogonalisation: q.Aq and q.r (valid when failure is None).
struct Candidate {
  Failure failure = Failure::None;
  double dad = 0.0, dr = 0.0;
};

}  // namespace

void IdentityOperator::apply(dcdm::span<const double> x, dcdm::span<double> y) const {
  copy(x, y);
}

DcdmSolver::DcdmSolver(std::shared_ptr<const LinearOperator> generator, DcdmOptions options,
                       std::string name)
    : generator_(std::move(generator)), options_(options), name_(std::move(name)) {
  if (!generator_) throw Error("DcdmSolver: null generator");
  if (options_.k < 0) throw InputError(fmt::format("--dcdm-k: must be >= 0 (got {})", options_.k));
}

DcdmSolver::DcdmSolver(GeneratorFactory factory, DcdmOptions options, std::string name)
    : factory_(std::move(factory)), options_(options), name_(std::move(name)) {
  if (!factory_) throw Error("DcdmSolver: null generator factory");
  if (options_.k < 0) throw InputError(fmt::format("--dcdm-k: must be >= 0 (got {})", options_.k));
}

void DcdmSolver::setup(const LinearSystemView& system) {
  const auto t0 = Clock::now();
  if (!system.op) throw Error("DcdmSolver::setup: no operator");
  system_ = system;
  if (factory_) generator_ = std::shared_ptr<const LinearOperator>(factory_(system));
  if (!generator_) throw Error("DcdmSolver::setup: the generator factory returned null");
  const std::int64_t n = system.op->size();
  if (generator_->size() != n)
    throw InputError(fmt::format("{}: direction generator has size {} but the system has {}",
                                 name_, generator_->size(), n));
  // The Jacobi fallback is built on first use (a generator that never fails never pays for it).
  fallback_.reset();
  setup_seconds_ = seconds_since(t0);
}

SolveReport DcdmSolver::solve_scaled(dcdm::span<const double> b_in, dcdm::span<double> x,
                              const SolveOptions& opt) {
  if (!generator_) throw Error(fmt::format("{}: solve() before setup()", name_));
  const auto t0 = Clock::now();
  const LinearOperator& a = *system_.op;
  const std::int64_t n = a.size();
  if (static_cast<std::int64_t>(b_in.size()) != n || static_cast<std::int64_t>(x.size()) != n)
    throw InputError(fmt::format("{}: right-hand side / solution sizes {} / {} differ from the "
                                 "system size {}", name_, b_in.size(), x.size(), n));
  // A finite norm means finite entries: the count (one more pass) only where it is not, or
  // before a projection would spread a NaN.
  const double norm_in = system_.project_range ? 0.0 : norm2(b_in);
  if (!std::isfinite(norm_in) || system_.project_range)
    if (const auto bad = count_non_finite(b_in); bad > 0)
      throw InputError(fmt::format("right-hand side: {} non-finite value(s)", bad));
  if (opt.use_initial_guess) {
    if (const auto bad = count_non_finite(x); bad > 0)
      throw InputError(fmt::format("initial guess: {} non-finite value(s)", bad));
  }

  stats_ = DcdmStats{};
  SolveReport rep;
  rep.method = name_;
  rep.setup_seconds = setup_seconds_;

  // Work with the compatible part of b (singular systems: zero mean per singular region).
  // A copy only where b is projected: at 128^3 every n-vector is 17 MB, and how much of the
  // working set stays in cache shows in every sweep of the generator.
  const auto project = [&](dcdm::span<double> v) {
    if (system_.project_range) system_.project_range(v);
  };
  Vector b_projected;
  dcdm::span<const double> b = b_in;
  if (system_.project_range) {
    b_projected.assign(b_in.begin(), b_in.end());
    project(b_projected);
    b = b_projected;
  }
  rep.rhs_norm = system_.project_range ? norm2(b) : norm_in;
  const double target = std::max(opt.rtol * rep.rhs_norm, opt.atol);

  const bool linear_generator = generator_->is_linear();
  // The lean path (orthogonalise_first) allocates A q's buffer only while no kept pair retires.
  const bool lean = options_.orthogonalise_first && !options_.weak_fallback;
  // Single: q takes the generator's output in double, qf the A-orthogonalised direction in float.
  using Precision = DcdmOptions::VectorPrecision;
  const bool single = lean && (options_.vector_precision == Precision::Float ||
                               (options_.vector_precision == Precision::Auto &&
                                target >= DcdmOptions::kSingleVectorsMinRtol * rep.rhs_norm));
  stats_.single_precision_vectors = single;
  // The generator writes its float output straight into the direction's buffer (no double copy
  // of it) where it has one and nothing needs projecting.
  const bool float_generator = single && generator_->native_single_output() && !system_.project_range;
  // q: the generator's double output (with a float generator output only a fallback's, made then).
  // r is first written by b's copy or the true residual's mat-vec, on all threads.
  detail::UninitialisedVector<double> r(static_cast<std::size_t>(n));
  Vector q(float_generator ? 0 : n), aq(lean ? 0 : n), input(linear_generator ? 0 : n);
  FloatVector qf(single ? static_cast<std::size_t>(n) : 0), aqf;
  Vector q_jacobi, aq_jacobi;  // the weak-direction guard's candidate
  if (options_.weak_fallback) {
    q_jacobi.resize(static_cast<std::size_t>(n));
    aq_jacobi.resize(static_cast<std::size_t>(n));
  }
  bool residual_is_true = false;  // r is b - A x as computed, not updated
  // r = b - A x and its norm (one pass where the operator fuses them and nothing is projected).
  const auto true_residual = [&]() -> double {
    residual_is_true = true;
    if (!system_.project_range) return std::sqrt(a.residual_dot(x, b, r));
    a.apply(x, r);
    xpay(b, -1.0, r);
    project(r);
    return norm2(r);
  };
  // x += alpha qf
  const auto add_single = [&](double alpha, const FloatVector& v, dcdm::span<double> out) {
    const float* pv = v.data();
    double* po = out.data();
#pragma omp parallel for simd schedule(static) if (n >= 4 * detail::kRowBlock)
    for (std::int64_t i = 0; i < n; ++i) po[i] += alpha * static_cast<double>(pv[i]);
  };
  double rnorm = rep.rhs_norm;
  // From x = 0 the residual is b itself (A 0 = 0 exactly): no mat-vec. The float lean path
  // reads b in place of r until its first step writes x = alpha q and r = b - alpha A q in one
  // pass (the copy of b and the zeroing of x are two passes over 16 bytes a cell fewer); every
  // other path, and every exit before that step, makes x = 0 and r = b first (start_from_zero).
  bool from_zero = !opt.use_initial_guess;
  const auto start_from_zero = [&] {
    if (!from_zero) return;
    fill(x, 0.0);
    copy(b, r);
    from_zero = false;
  };
  // The residual as it stands: b until the lazy first step, r after it.
  const auto residual = [&]() -> dcdm::span<const double> {
    return from_zero ? b : dcdm::span<const double>(r);
  };
  if (opt.use_initial_guess) rnorm = true_residual();
  else residual_is_true = true;
  if (!single) start_from_zero();
  rep.initial_residual = rnorm;

  const auto record = [&](int it) {
    rep.residual_history.push_back(rnorm);
    if (opt.monitor)
      opt.monitor({it, rnorm, rep.rhs_norm > 0 ? rnorm / rep.rhs_norm : rnorm});
  };
  record(0);

  std::deque<Direction> kept;  // most recent last
  const double vtol = options_.vanish_tolerance;
  std::vector<double> sums, beta, dots;
  std::vector<const double*> kept_p, kept_ap, with_vectors;
  std::vector<const float*> kept_pf, kept_apf;
  // The kept directions' p and A p as pointers, in the kept order.
  const auto gather_kept = [&] {
    kept_p.clear();
    kept_ap.clear();
    kept_pf.clear();
    kept_apf.clear();
    for (const Direction& k : kept) {
      kept_p.push_back(k.p.data());
      kept_ap.push_back(k.ap.data());
      kept_pf.push_back(k.pf.data());
      kept_apf.push_back(k.apf.data());
    }
  };
  // On rows [lo, lo + len): d -= sum_j beta_j p_j and ad -= sum_j beta_j Ap_j over the m kept
  // directions (db, adb point at row lo).
  const auto remove_kept = [&](double* db, double* adb, std::int64_t lo, std::int64_t len, int m) {
    for (int jj = 0; jj < m; ++jj) {
      const double bj = beta[static_cast<std::size_t>(jj)];
      const double* p = kept_p[static_cast<std::size_t>(jj)] + lo;
      const double* ap = kept_ap[static_cast<std::size_t>(jj)] + lo;
#pragma omp simd
      for (std::int64_t i = 0; i < len; ++i) {
        db[i] -= bj * p[i];
        adb[i] -= bj * ap[i];
      }
    }
  };

  // Fills d and ad = A d with a direction built from `fill_q` and takes the first pass over
  // them: d.Ad and d.Ap_j for the kept directions (a non-finite entry of d or A d makes d.Ad
  // non-finite), and d.r and d.d when there is no kept direction or `with_dr` asks for them.
  struct Prepared {
    Failure failure = Failure::None;
    int m = 0;
    double dad0 = 0.0, dr0 = 0.0, dd0 = 0.0;
  };
  const auto prepare_in = [&](Vector& d, Vector& ad, auto&& fill_q, bool with_dr) -> Prepared {
    fill_q(d);
    project(d);
    const int m = static_cast<int>(kept.size());
    gather_kept();
    // A d with, in the same pass, d.Ad, d.Ap_j and (when asked) d.r and d.d: sums[0] = d.Ad,
    // sums[1] = d.r, sums[2] = d.d, sums[3 + j] = d.Ap_j.
    const bool dots_with_r = m == 0 || with_dr;
    with_vectors.assign(kept_ap.begin(), kept_ap.end());
    if (dots_with_r) {
      with_vectors.push_back(r.data());
      with_vectors.push_back(d.data());
    }
    dots.resize(with_vectors.size() + 1);
    a.apply_dot(d, ad, with_vectors, dots);
    sums.assign(static_cast<std::size_t>(m) + 3, 0.0);
    sums[0] = dots[0];
    for (int j = 0; j < m; ++j) sums[3 + static_cast<std::size_t>(j)] = dots[1 + static_cast<std::size_t>(j)];
    if (dots_with_r) {
      sums[1] = dots[static_cast<std::size_t>(m) + 1];
      sums[2] = dots[static_cast<std::size_t>(m) + 2];
    }
    Prepared pr{Failure::None, m, sums[0], sums[1], sums[2]};
    if (!std::isfinite(pr.dad0)) pr.failure = Failure::NonFinite;
    else if (pr.dad0 <= 0.0) pr.failure = Failure::Curvature;
    if (pr.failure == Failure::None && m > 0) {
      beta.resize(static_cast<std::size_t>(m));
      std::size_t j = 0;
      for (const Direction& k : kept) {
        beta[j] = sums[3 + j] / k.pap;
        ++j;
      }
    }
    return pr;
  };
  // The candidate's checks on its A-orthogonalised d.Ad, d.r, d.d.
  const auto judge = [&](const Prepared& pr, double dad, double dr, double dd) -> Candidate {
    if (!std::isfinite(dad) || !std::isfinite(dr)) return {Failure::NonFinite};
    if (dad <= vtol * pr.dad0) return {pr.m == 0 ? Failure::Curvature : Failure::Vanished};
    if (std::abs(dr) <= vtol * std::sqrt(dd) * rnorm) return {Failure::Vanished};
    return {Failure::None, dad, dr};
  };
  // A-orthogonalises the prepared d against the kept directions (classical Gram-Schmidt: they
  // are mutually A-orthogonal, so it equals the modified form in exact arithmetic and needs
  // two passes over the vectors instead of 2k+1).
  const auto orthogonalise = [&](Vector& d, Vector& ad, const Prepared& pr) -> Candidate {
    if (pr.failure != Failure::None) return {pr.failure};
    const int m = pr.m;
    if (m == 0) return judge(pr, pr.dad0, pr.dr0, pr.dd0);
    double* dv = d.data();
    double* adv = ad.data();
    const double* rv = r.data();
    // Pass 2: d -= sum_j beta_j p_j, Ad -= sum_j beta_j Ap_j, then d.Ad, d.r, d.d.
    double out3[3];
    detail::blocked_reduce(n, 3, out3, [&](std::int64_t lo, std::int64_t hi, double* out) {
      const std::int64_t len = hi - lo;
      double* db = dv + lo;
      double* adb = adv + lo;
      remove_kept(db, adb, lo, len, m);
      out[0] += detail::block_dot(db, adb, len);
      out[1] += detail::block_dot(db, rv + lo, len);
      out[2] += detail::block_dot(db, db, len);
    });
    return judge(pr, out3[0], out3[1], out3[2]);
  };
  const auto make_direction_in = [&](Vector& d, Vector& ad, auto&& fill_q) -> Candidate {
    return orthogonalise(d, ad, prepare_in(d, ad, fill_q, false));
  };
  const auto make_direction = [&](auto&& fill_q) { return make_direction_in(q, aq, fill_q); };
  const auto fill_jacobi = [&](Vector& out) {
    // Jacobi from the matrix or the domain's stencil; the plain residual without either.
    if (!fallback_ && (system_.matrix || system_.domain)) {
      auto jacobi = std::make_unique<JacobiPreconditioner>();
      jacobi->setup(system_);
      fallback_ = std::move(jacobi);
    }
    if (fallback_) fallback_->apply(r, out);
    else copy(r, out);
  };
  // The lean path: q from fill_q, A-orthogonalised against the kept directions before its
  // mat-vec, A q into the retiring pair's image buffer when the kept set is full (aq_now then
  // points there and oldest_consumed is set), else into aq.
  Vector* aq_now = &aq;
  bool oldest_consumed = false;
  // The lean paths' coefficients beta_j = q.Ap_j / p_j.Ap_j from one pass over q (zv, double
  // or float) and the kept images (double or float), with q.q, whose NaN or Inf shows a
  // non-finite q: false then. removed = the A-norm^2 taken out of q, sum_j (q.Ap_j)^2 / p_j.Ap_j.
  const auto kept_coefficients = [&](const auto* zv, const auto& images, int m, double& removed) -> bool {
    sums.assign(static_cast<std::size_t>(m) + 1, 0.0);
    detail::blocked_reduce(n, m + 1, sums.data(), [&](std::int64_t lo, std::int64_t hi, double* out) {
      const std::int64_t len = hi - lo;
      for (int j = 0; j < m; ++j) out[j] += detail::block_dot(zv + lo, images[static_cast<std::size_t>(j)] + lo, len);
      out[m] += detail::block_dot(zv + lo, zv + lo, len);
    });
    for (const double v : sums)
      if (!std::isfinite(v)) return false;
    beta.resize(static_cast<std::size_t>(m));
    std::size_t j = 0;
    for (const Direction& k : kept) {
      beta[j] = sums[j] / k.pap;
      removed += beta[j] * sums[j];
      ++j;
    }
    return true;
  };
  // The lean paths' candidate from A q's dots (q.Aq, q.r, q.q after the orthogonalisation).
  const auto lean_candidate = [&](int m, double removed) -> Candidate {
    const double dad = dots[0], dr = dots[1], dd = dots[2];
    Prepared pr{Failure::None, m, dad + removed, dr, dd};
    if (!std::isfinite(dad) || !std::isfinite(dr)) return {Failure::NonFinite};
    if (pr.dad0 <= 0.0) return {Failure::Curvature};
    return judge(pr, dad, dr, dd);
  };
  const auto lean_direction = [&](auto&& fill_q) -> Candidate {
    fill_q(q);
    project(q);
    const int m = static_cast<int>(kept.size());
    double removed = 0.0;
    if (m > 0) {
      gather_kept();
      if (!kept_coefficients(static_cast<const double*>(q.data()), kept_ap, m, removed)) return {Failure::NonFinite};
      // q -= sum_j beta_j p_j, the terms subtracted in order j (as one loop over j per entry),
      // in row blocks with a vectorised loop per kept direction.
      double* qw = q.data();
      const std::int64_t nblocks = (n + detail::kRowBlock - 1) / detail::kRowBlock;
#pragma omp parallel for schedule(static)
      for (std::int64_t blk = 0; blk < nblocks; ++blk) {
        const std::int64_t lo = blk * detail::kRowBlock, len = std::min(n, lo + detail::kRowBlock) - lo;
        double* qb = qw + lo;
        for (int jj = 0; jj < m; ++jj) {
          const double bj = beta[static_cast<std::size_t>(jj)];
          const double* pb = kept_p[static_cast<std::size_t>(jj)] + lo;
#pragma omp simd
          for (std::int64_t i = 0; i < len; ++i) qb[i] -= bj * pb[i];
        }
      }
    }
    if (m > 0 && m == options_.k) {
      aq_now = &kept.front().ap;
      oldest_consumed = true;
    } else {
      if (aq.empty()) aq.resize(static_cast<std::size_t>(n));
      aq_now = &aq;
    }
    with_vectors.assign({r.data(), q.data()});
    dots.resize(3);
    a.apply_dot(q, *aq_now, with_vectors, dots);
    return lean_candidate(m, removed);
  };
  // The lean path with single-precision vectors: the same steps, the generator's output q in
  // double, the A-orthogonalised direction qf and A qf (into aqf_now) in float.
  FloatVector* aqf_now = &aqf;
  // fill_q writes the generator's output: into q (double; projected here on a singular
  // system) or, for a generator whose output is float anyway, straight into qf, which is then
  // A-orthogonalised in place.
  const auto lean_direction_single = [&](auto&& fill_q) -> Candidate {
    constexpr bool float_input = std::is_invocable_v<decltype(fill_q)&, FloatVector&>;
    if constexpr (float_input) {
      fill_q(qf);
    } else {
      fill_q(q);
      project(q);
    }
    const auto* zv = [&] {
      if constexpr (float_input) return static_cast<const float*>(qf.data());
      else return static_cast<const double*>(q.data());
    }();
    const int m = static_cast<int>(kept.size());
    double removed = 0.0;
    if (m > 0) {
      gather_kept();
      if (!kept_coefficients(zv, kept_apf, m, removed)) return {Failure::NonFinite};
    }
    // qf = q - sum_j beta_j p_j, the terms subtracted in order j in double, rounded once.
    float* qw = qf.data();
    const std::int64_t nblocks = (n + detail::kRowBlock - 1) / detail::kRowBlock;
    if (!(float_input && m == 0)) {
#pragma omp parallel for schedule(static) if (nblocks >= 4)
      for (std::int64_t blk = 0; blk < nblocks; ++blk) {
        const std::int64_t lo = blk * detail::kRowBlock, len = std::min(n, lo + detail::kRowBlock) - lo;
        const auto* zb = zv + lo;
        float* qb = qw + lo;
        if (m == 0) {
#pragma omp simd
          for (std::int64_t i = 0; i < len; ++i) qb[i] = static_cast<float>(zb[i]);
        } else if (m == 1) {
          const double b0 = beta[0];
          const float* pb = kept_pf[0] + lo;
#pragma omp simd
          for (std::int64_t i = 0; i < len; ++i)
            qb[i] = static_cast<float>(static_cast<double>(zb[i]) - b0 * static_cast<double>(pb[i]));
        } else {
          alignas(64) double acc[detail::kRowBlock];
          for (std::int64_t i = 0; i < len; ++i) acc[i] = static_cast<double>(zb[i]);
          for (int jj = 0; jj < m; ++jj) {
            const double bj = beta[static_cast<std::size_t>(jj)];
            const float* pb = kept_pf[static_cast<std::size_t>(jj)] + lo;
#pragma omp simd
            for (std::int64_t i = 0; i < len; ++i) acc[i] -= bj * static_cast<double>(pb[i]);
          }
#pragma omp simd
          for (std::int64_t i = 0; i < len; ++i) qb[i] = static_cast<float>(acc[i]);
        }
      }
    }
    if (m > 0 && m == options_.k) {
      aqf_now = &kept.front().apf;
      oldest_consumed = true;
    } else {
      if (aqf.empty()) aqf.resize(static_cast<std::size_t>(n));
      aqf_now = &aqf;
    }
    dots.resize(3);
    a.apply_dot_single(qf, *aqf_now, residual(), dots);
    return lean_candidate(m, removed);
  };
  // Before a fallback direction on the lean path: a retiring pair whose image buffer took the
  // failed direction's A q leaves the kept set (its buffer becomes aq).
  const auto release_consumed = [&] {
    if (!oldest_consumed) return;
    if (single) std::swap(aqf, kept.front().apf);
    else std::swap(aq, kept.front().ap);
    kept.pop_front();
    oldest_consumed = false;
    aq_now = &aq;
    aqf_now = &aqf;
  };
  // A-norm error reduction of the exact line search along an A-orthogonalised direction.
  const auto gain = [](const Candidate& c) { return c.dr * c.dr / c.dad; };

  std::string stop_detail;
  int it = 0;
  int history_start = 0;  // the first residual_history entry the stagnation test compares
  for (;;) {
    if (!std::isfinite(rnorm)) {  // cannot happen with the guards below; kept as a backstop
      rep.reason = SolveReason::NaN;
      stop_detail = fmt::format("residual norm is not finite at iteration {}", it);
      break;
    }
    if (single && rnorm <= target && !residual_is_true) {
      // The updated residual carries A q's rounding to float: confirm on b - A x.
      rnorm = true_residual();
      if (rnorm > target) {
        // The history keeps the true value, and the stagnation test looks only at the values
        // from here on (the updated ones before it may have drifted below the true residual).
        ++stats_.residual_replacements;
        rep.residual_history.back() = rnorm;
        history_start = it;
      }
    }
    if (rnorm <= target) {
      rep.reason = (opt.rtol * rep.rhs_norm >= opt.atol) ? SolveReason::ConvergedRtol
                                                         : SolveReason::ConvergedAtol;
      break;
    }
    if (it >= opt.max_iterations) {
      rep.reason = SolveReason::MaxIterations;
      break;
    }
    if (opt.stagnation_window > 0 && it >= history_start + opt.stagnation_window) {
      const auto& h = rep.residual_history;
      const double before = *std::min_element(h.begin() + history_start, h.end() - opt.stagnation_window);
      const double recent = *std::min_element(h.end() - opt.stagnation_window, h.end());
      if (recent > (1.0 - 1e-3) * before) {
        rep.reason = SolveReason::Stagnation;
        stop_detail = fmt::format("residual gained less than 0.1% over the last {} iterations",
                                  opt.stagnation_window);
        break;
      }
    }
    ++it;
    residual_is_true = false;  // this iteration updates r (unless it recomputes it)

    const bool recompute = opt.true_residual_every > 0 && it % opt.true_residual_every == 0;
    if (recompute) start_from_zero();
    // Generator direction from the residual (normalised for a network).
    if (!linear_generator) scaled_copy(1.0 / rnorm, residual(), input);
    const dcdm::span<const double> generator_input = linear_generator ? residual() : dcdm::span<const double>(input);
    const auto fill_generator = [&](Vector& out) { generator_->apply(generator_input, out); };
    const auto tg = Clock::now();
    Candidate chosen;
    bool stepped = false;  // the fused pass has taken the step
    double alpha = 0.0, new_norm = 0.0;
    aq_now = &aq;
    aqf_now = &aqf;
    oldest_consumed = false;
    if (single && float_generator) {
      chosen = lean_direction_single(
          [&](FloatVector& out) { generator_->apply_to_single(generator_input, out); });
      stats_.generator_seconds += seconds_since(tg);
    } else if (single) {
      chosen = lean_direction_single(fill_generator);
      stats_.generator_seconds += seconds_since(tg);
    } else if (lean) {
      chosen = lean_direction(fill_generator);
      stats_.generator_seconds += seconds_since(tg);
    } else if (options_.fused_step && !options_.weak_fallback && !recompute && !kept.empty()) {
      const Prepared pr = prepare_in(q, aq, fill_generator, true);
      stats_.generator_seconds += seconds_since(tg);
      // q.Aq after A-orthogonalisation is q.Aq - sum_j beta_j q.Ap_j (the kept directions are
      // mutually A-orthogonal); q.r is unchanged by it, as r is orthogonal to the kept
      // directions. Where most of q.Aq cancels, the separate passes compute it directly.
      double dad = pr.dad0;
      if (pr.failure == Failure::None)
        for (int j = 0; j < pr.m; ++j) dad -= beta[static_cast<std::size_t>(j)] * sums[3 + static_cast<std::size_t>(j)];
      if (pr.failure != Failure::None) {
        chosen = {pr.failure};
      } else if (!(std::isfinite(dad) && dad >= 0.5 * pr.dad0 &&
                   std::abs(pr.dr0) > vtol * std::sqrt(pr.dd0) * rnorm)) {
        chosen = orthogonalise(q, aq, pr);
      } else {
        alpha = pr.dr0 / dad;
        const int m = pr.m;
        double* qv = q.data();
        double* aqv = aq.data();
        double* xv = x.data();
        double* rv = r.data();
        // q -= sum_j beta_j p_j, Aq -= sum_j beta_j Ap_j, then the exact q.Aq, q.r, q.q (r
        // before the step), x += alpha q, r -= alpha Aq and ||r||^2, in one pass.
        double out4[4];
        detail::blocked_reduce(n, 4, out4, [&](std::int64_t lo, std::int64_t hi, double* out) {
          const std::int64_t len = hi - lo;
          double* qb = qv + lo;
          double* aqb = aqv + lo;
          double* xb = xv + lo;
          double* rb = rv + lo;
          remove_kept(qb, aqb, lo, len, m);
          double s_qaq = 0, s_qr = 0, s_qq = 0, s_rr = 0;
#pragma omp simd reduction(+ : s_qaq, s_qr, s_qq, s_rr)
          for (std::int64_t i = 0; i < len; ++i) {
            s_qaq += qb[i] * aqb[i];
            s_qr += qb[i] * rb[i];
            s_qq += qb[i] * qb[i];
            xb[i] += alpha * qb[i];
            rb[i] -= alpha * aqb[i];
            s_rr += rb[i] * rb[i];
          }
          out[0] += s_qaq;
          out[1] += s_qr;
          out[2] += s_qq;
          out[3] += s_rr;
        });
        chosen = judge(pr, out4[0], out4[1], out4[2]);
        if (chosen.failure != Failure::None) {
          // Rare (a direction that the exact values reject): undo the step, then the usual
          // failure handling below replaces the direction.
          axpy(-alpha, q, x);
          axpy(alpha, aq, r);
        } else {
          double rr = out4[3];
          const double exact = chosen.dr / chosen.dad;
          if (std::abs(exact - alpha) > options_.fused_step_tolerance * std::abs(exact)) {
            const double delta = exact - alpha;
            axpy(delta, q, x);
            axpy(-delta, aq, r);
            rr = dot(r, r);
            alpha = exact;
            ++stats_.fused_corrections;
          }
          new_norm = std::sqrt(rr);
          stepped = true;
          ++stats_.fused_steps;
        }
      }
    } else {
      chosen = make_direction(fill_generator);
      stats_.generator_seconds += seconds_since(tg);
    }
    const Failure failure = chosen.failure;
    Candidate jacobi;
    if (failure == Failure::None && options_.weak_fallback &&
        (jacobi = make_direction_in(q_jacobi, aq_jacobi, fill_jacobi)).failure == Failure::None &&
        gain(jacobi) > gain(chosen)) {
      std::swap(q, q_jacobi);
      std::swap(aq, aq_jacobi);
      chosen = jacobi;
      ++stats_.fallback_weak;
      ++stats_.fallback_directions;
    } else if (failure == Failure::None) {
      ++stats_.generator_directions;
    } else {
      const char* why = failure == Failure::NonFinite ? "non-finite values"
                        : failure == Failure::Curvature ? "non-positive curvature q.Aq"
                                                        : "a vanishing A-orthogonal part";
      if (!options_.fallback) {
        rep.reason = failure == Failure::NonFinite ? SolveReason::NaN : SolveReason::Breakdown;
        stop_detail = fmt::format("generator direction has {} at iteration {}", why, it);
        --it;
        break;
      }
      if (failure == Failure::NonFinite) ++stats_.fallback_nan;
      if (failure == Failure::Curvature) ++stats_.fallback_curvature;
      if (failure == Failure::Vanished) ++stats_.fallback_vanished;
      ++stats_.fallback_directions;
      start_from_zero();  // the Jacobi direction reads r
      if (single) {
        release_consumed();
        if (q.empty()) q.resize(static_cast<std::size_t>(n));
        chosen = lean_direction_single(fill_jacobi);
      } else if (lean) {
        release_consumed();
        chosen = lean_direction(fill_jacobi);
      } else {
        chosen = make_direction(fill_jacobi);
      }
      if (chosen.failure != Failure::None) {
        rep.reason = chosen.failure == Failure::NonFinite ? SolveReason::NaN : SolveReason::Breakdown;
        stop_detail = fmt::format("generator direction has {} and the Jacobi fallback failed "
                                  "too at iteration {}", why, it);
        --it;
        break;
      }
    }

    const double qaq = chosen.dad;
    if (!stepped) {
      alpha = chosen.dr / qaq;
      if (!std::isfinite(alpha)) {
        rep.reason = SolveReason::NaN;
        stop_detail = fmt::format("step length is not finite at iteration {}", it);
        --it;
        break;
      }
      if (recompute) {
        if (single) add_single(alpha, qf, x);
        else axpy(alpha, q, x);
        new_norm = true_residual();
        ++stats_.true_residual_updates;
      } else if (single && from_zero) {  // x = alpha q, r = b - alpha Aq and ||r||^2 in one pass
        new_norm = std::sqrt(detail::step_and_norm(alpha, qf.data(), aqf_now->data(), x.data(), r.data(), n, b.data()));
        from_zero = false;
      } else if (single) {  // x += alpha q, r -= alpha Aq and ||r||^2 in one pass
        new_norm = std::sqrt(detail::step_and_norm(alpha, qf.data(), aqf_now->data(), x.data(), r.data(), n));
      } else {
        new_norm = std::sqrt(detail::step_and_norm(alpha, q.data(), aq_now->data(), x.data(), r.data(), n));
      }
      if (single && system_.project_range && std::isfinite(new_norm)) {
        // A q rounded to float is not exactly in A's range: its part along the null space
        // (about 1e-8 of it a step) would build up in r, where no direction removes it, and
        // stall the iteration there at tight tolerances. Projected away each step.
        project(r);
        new_norm = norm2(r);
      }
    }
    if (!std::isfinite(new_norm)) {  // overflow: undo the step, keep the last finite iterate
      if (single) add_single(-alpha, qf, x);
      else axpy(-alpha, q, x);
      rnorm = true_residual();
      rep.reason = SolveReason::NaN;
      stop_detail = fmt::format("residual overflowed at iteration {}", it);
      --it;
      break;
    }
    rnorm = new_norm;
    record(it);

    // The lean paths keep (q, A q): A q already lies in the retiring pair's image buffer when
    // the set was full, and the retiring p becomes the next q; otherwise A q's buffer is handed
    // over and re-made only when needed. The pair's double or float members.
    const auto keep_lean = [&](auto p_member, auto ap_member, auto& qv, auto& aqv) {
      using V = std::decay_t<decltype(qv)>;
      Direction d;
      V next_q;
      if (oldest_consumed) {
        d.*ap_member = std::move(kept.front().*ap_member);
        next_q = std::move(kept.front().*p_member);
        kept.pop_front();
      } else {
        d.*ap_member = std::move(aqv);
        aqv = V();
      }
      d.*p_member = std::move(qv);
      d.pap = qaq;
      kept.push_back(std::move(d));
      qv = next_q.empty() ? V(static_cast<std::size_t>(n)) : std::move(next_q);
    };
    if (single && options_.k > 0) {
      keep_lean(&Direction::pf, &Direction::apf, qf, aqf);
    } else if (lean && options_.k > 0) {
      keep_lean(&Direction::p, &Direction::ap, q, aq);
    } else if (options_.k > 0) {  // keep (q, Aq) by moving the buffers; q and Aq get the oldest ones
      Direction d;
      if (static_cast<int>(kept.size()) == options_.k) {
        d = std::move(kept.front());
        kept.pop_front();
      }
      std::swap(d.p, q);
      std::swap(d.ap, aq);
      d.pap = qaq;
      kept.push_back(std::move(d));
      q.resize(static_cast<std::size_t>(n));
      aq.resize(static_cast<std::size_t>(n));
    }
  }

  start_from_zero();  // a stop before the first step
  rep.iterations = it;
  rep.final_residual = residual_is_true ? norm2(r) : true_residual();
  std::string detail = stop_detail;
  if (stats_.fallback_directions > 0) {
    if (!detail.empty()) detail += "; ";
    detail += fmt::format("Jacobi fallback in {} of {} iterations ({} NaN, {} curvature, "
                          "{} vanished, {} weaker than Jacobi)",
                          stats_.fallback_directions, it, stats_.fallback_nan,
                          stats_.fallback_curvature, stats_.fallback_vanished, stats_.fallback_weak);
  }
  rep.detail = detail;
  rep.solve_seconds = seconds_since(t0);
  return rep;
}

}  // namespace dcdm
