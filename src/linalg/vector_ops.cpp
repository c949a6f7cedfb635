#include <algorithm>
#include <cmath>

#include "dcdm/linalg.hpp"

#include <fmt/format.h>

#include "block_ops.hpp"
#include "dcdm/error.hpp"

namespace dcdm {
namespace {

// Block size for reproducible reductions; the block sums are combined in index order.
constexpr std::int64_t kBlock = 4096;
// Below this size a parallel region costs more than it saves (and on a loaded machine far
// more): small vectors stay on the calling thread. Results do not depend on it.
constexpr std::int64_t kParallelMin = 32768;

template <class BlockFn>
double blocked_sum(std::int64_t n, BlockFn&& block_fn) {
  const std::int64_t nblocks = (n + kBlock - 1) / kBlock;
  if (nblocks <= 1) return n > 0 ? block_fn(0, n) : 0.0;
  std::vector<double> partial(static_cast<std::size_t>(nblocks));
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (std::int64_t b = 0; b < nblocks; ++b)
    partial[b] = block_fn(b * kBlock, std::min(n, (b + 1) * kBlock));
  double s = 0.0;
  for (double p : partial) s += p;
  return s;
}

}  // namespace

double dot(dcdm::span<const double> a, dcdm::span<const double> b) {
  const double* pa = a.data();
  const double* pb = b.data();
  return blocked_sum(static_cast<std::int64_t>(a.size()), [=](std::int64_t lo, std::int64_t hi) {
    // Block-relative pointers: indexing the captured pointers with lo..hi made GCC 12 emit
    // gathers of scalar loads (5 GB/s in cache instead of 24).
    const double* x = pa + lo;
    const double* y = pb + lo;
    const std::int64_t m = hi - lo;
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (std::int64_t i = 0; i < m; ++i) s += x[i] * y[i];
    return s;
  });
}

double norm2(dcdm::span<const double> a) { return std::sqrt(dot(a, a)); }

double sum(dcdm::span<const double> a) {
  const double* pa = a.data();
  return blocked_sum(static_cast<std::int64_t>(a.size()), [=](std::int64_t lo, std::int64_t hi) {
    const double* x = pa + lo;
    const std::int64_t m = hi - lo;
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (std::int64_t i = 0; i < m; ++i) s += x[i];
    return s;
  });
}

double norm_inf(dcdm::span<const double> a) {
  const std::int64_t n = static_cast<std::int64_t>(a.size());
  double m = 0.0;
#pragma omp parallel for reduction(max : m) schedule(static) if (n >= kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) m = std::max(m, std::abs(a[i]));
  return m;
}

std::int64_t count_non_finite(dcdm::span<const double> a) {
  const std::int64_t n = static_cast<std::int64_t>(a.size());
  std::int64_t c = 0;
#pragma omp parallel for reduction(+ : c) schedule(static) if (n >= kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) c += std::isfinite(a[i]) ? 0 : 1;
  return c;
}

void axpy(double alpha, dcdm::span<const double> x, dcdm::span<double> y) {
  const std::int64_t n = static_cast<std::int64_t>(x.size());
  const double* px = x.data();
  double* py = y.data();
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) py[i] += alpha * px[i];
}

void xpay(dcdm::span<const double> x, double beta, dcdm::span<double> y) {
  const std::int64_t n = static_cast<std::int64_t>(x.size());
  const double* px = x.data();
  double* py = y.data();
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) py[i] = px[i] + beta * py[i];
}

void scale(double alpha, dcdm::span<double> x) {
  const std::int64_t n = static_cast<std::int64_t>(x.size());
  double* px = x.data();
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) px[i] *= alpha;
}

void copy(dcdm::span<const double> x, dcdm::span<double> y) {
  const std::int64_t n = static_cast<std::int64_t>(x.size());
  const double* px = x.data();
  double* py = y.data();
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) py[i] = px[i];
}

void scaled_copy(double alpha, dcdm::span<const double> x, dcdm::span<double> y) {
  const std::int64_t n = static_cast<std::int64_t>(x.size());
  const double* px = x.data();
  double* py = y.data();
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) py[i] = alpha * px[i];
}

void fill(dcdm::span<double> x, double value) {
  const std::int64_t n = static_cast<std::int64_t>(x.size());
  double* px = x.data();
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) px[i] = value;
}

void LinearOperator::apply_dot(dcdm::span<const double> x, dcdm::span<double> y, dcdm::span<const double* const> with,
                               dcdm::span<double> dots) const {
  apply(x, y);
  if (dots.size() != with.size() + 1)
    throw Error(fmt::format("apply_dot: {} sums for {} vectors (need one more)", dots.size(), with.size()));
  const double* px = x.data();
  const double* py = y.data();
  const int m = static_cast<int>(with.size());
  detail::blocked_reduce(size(), m + 1, dots.data(), [&](std::int64_t lo, std::int64_t hi, double* out) {
    out[0] += detail::block_dot(px + lo, py + lo, hi - lo);
    for (int j = 0; j < m; ++j) out[1 + j] += detail::block_dot(px + lo, with[j] + lo, hi - lo);
  });
}

void LinearOperator::apply_dot_single(dcdm::span<const float> x, dcdm::span<float> y, dcdm::span<const double> r,
                                      dcdm::span<double> dots) const {
  const std::int64_t n = size();
  if (static_cast<std::int64_t>(x.size()) != n || static_cast<std::int64_t>(y.size()) != n ||
      static_cast<std::int64_t>(r.size()) != n || dots.size() != 3)
    throw Error(fmt::format("apply_dot_single: vectors of sizes {}, {}, {} and {} sums for an operator of size {} "
                            "(need 3 sums)", x.size(), y.size(), r.size(), dots.size(), n));
  Vector xd(x.begin(), x.end()), yd(static_cast<std::size_t>(n));
  apply(xd, yd);
  const double* px = xd.data();
  const double* py = yd.data();
  const double* pr = r.data();
  float* out_y = y.data();
  detail::blocked_reduce(n, 3, dots.data(), [&](std::int64_t lo, std::int64_t hi, double* out) {
    out[0] += detail::block_dot(px + lo, py + lo, hi - lo);
    out[1] += detail::block_dot(px + lo, pr + lo, hi - lo);
    out[2] += detail::block_dot(px + lo, px + lo, hi - lo);
    for (std::int64_t i = lo; i < hi; ++i) out_y[i] = static_cast<float>(py[i]);
  });
}

void LinearOperator::apply_to_single(dcdm::span<const double> x, dcdm::span<float> y) const {
  const std::int64_t n = size();
  if (static_cast<std::int64_t>(x.size()) != n || static_cast<std::int64_t>(y.size()) != n)
    throw Error(fmt::format("apply_to_single: vectors of sizes {} and {} for an operator of size {}", x.size(),
                            y.size(), n));
  Vector yd(static_cast<std::size_t>(n));
  apply(x, yd);
  const double* py = yd.data();
  float* out = y.data();
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(py[i]);
}

double LinearOperator::residual_dot(dcdm::span<const double> x, dcdm::span<const double> b,
                                    dcdm::span<double> r) const {
  apply(x, r);
  xpay(b, -1.0, r);  // r = b - A x
  return dot(r, r);
}

}  // namespace dcdm
