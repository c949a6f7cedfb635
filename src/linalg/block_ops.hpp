#pragma once
// Tall-skinny kernels on a column-major basis V (n x k): c = V^T w and w -= V c, w += V c;
// fused multi-vector reductions.
// Reductions sum fixed row blocks in parallel and add the block sums in order, so results
// are bit-identical for any thread count (as dcdm::dot).
#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

namespace dcdm::detail {

inline constexpr std::int64_t kRowBlock = 8192;

// Fused multi-vector reductions in one pass over the rows: body(lo, hi, sums) adds m partial
// sums for rows [lo, hi); the block sums are added in block order into out[0..m).
template <class Body>
void blocked_reduce(std::int64_t n, int m, double* out, Body&& body) {
  const std::int64_t nblocks = (n + kRowBlock - 1) / kRowBlock;
  std::vector<double> partial(static_cast<std::size_t>(nblocks) * m, 0.0);
#pragma omp parallel for schedule(static) if (n >= 4 * kRowBlock)
  for (std::int64_t b = 0; b < nblocks; ++b) {
    const std::int64_t lo = b * kRowBlock, hi = std::min(n, lo + kRowBlock);
    body(lo, hi, partial.data() + b * m);
  }
  std::fill(out, out + m, 0.0);
  for (std::int64_t b = 0; b < nblocks; ++b)
    for (int j = 0; j < m; ++j) out[j] += partial[b * m + j];
}

// sum of x[i] * y[i] over i < m, vectorised (block-relative pointers: GCC 12 turned indexing
// of captured pointers over [lo, hi) into gathers).
inline double block_dot(const double* x, const double* y, std::int64_t m) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (std::int64_t i = 0; i < m; ++i) s += x[i] * y[i];
  return s;
}

// The same for mixed or single-precision operands (a float Krylov vector against a double
// residual), summed in double.
template <class X, class Y>
inline double block_dot(const X* x, const Y* y, std::int64_t m) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (std::int64_t i = 0; i < m; ++i) s += static_cast<double>(x[i]) * static_cast<double>(y[i]);
  return s;
}

// The float mat-vec's pass over a block of A x computed in double: y = A x rounded to float,
// and the block's x . A x (that of the exact product), x . r and x . x added to out[0..3).
inline void round_with_dots(const float* x, const double* ax, const double* r, float* y, std::int64_t n,
                            double* out) {
  double s_xax = 0.0, s_xr = 0.0, s_xx = 0.0;
#pragma omp simd reduction(+ : s_xax, s_xr, s_xx)
  for (std::int64_t i = 0; i < n; ++i) {
    const double xi = x[i];
    s_xax += xi * ax[i];
    s_xr += xi * r[i];
    s_xx += xi * xi;
    y[i] = static_cast<float>(ax[i]);
  }
  out[0] += s_xax;
  out[1] += s_xr;
  out[2] += s_xx;
}

// The Krylov step x += alpha d, r -= alpha A d and the new r . r in one pass (five vectors'
// traffic instead of seven), d and A d in double or float; block sums added in order, so the
// same for any thread count. With b: the first step from x = 0 and r = b, x = 0 + alpha d and
// r = b - alpha A d, the same values without reading x or a copy of b.
template <class D>
double step_and_norm(double alpha, const D* d, const D* ad, double* x, double* r, std::int64_t n,
                     const double* b = nullptr) {
  double rr = 0.0;
  const auto pass = [&](auto from_zero) {
    blocked_reduce(n, 1, &rr, [&](std::int64_t lo, std::int64_t hi, double* out) {
      const std::int64_t len = hi - lo;
      double* xb = x + lo;
      double* rb = r + lo;
      const double* r_in = from_zero ? b + lo : rb;
      const D* db = d + lo;
      const D* adb = ad + lo;
#pragma omp simd
      for (std::int64_t i = 0; i < len; ++i) {
        if constexpr (decltype(from_zero)::value) xb[i] = 0.0 + alpha * static_cast<double>(db[i]);  // 0 + (-0) is +0
        else xb[i] += alpha * static_cast<double>(db[i]);
        rb[i] = r_in[i] - alpha * static_cast<double>(adb[i]);
      }
      out[0] += block_dot(rb, rb, len);
    });
  };
  if (b) pass(std::true_type{});
  else pass(std::false_type{});
  return rr;
}

template <class T>
void basis_transpose_times(const T* v, std::int64_t n, int k, const double* w, double* c) {
  const std::int64_t nblocks = (n + kRowBlock - 1) / kRowBlock;
  std::vector<double> partial(static_cast<std::size_t>(nblocks) * k, 0.0);
#pragma omp parallel for schedule(static)
  for (std::int64_t b = 0; b < nblocks; ++b) {
    const std::int64_t lo = b * kRowBlock, hi = std::min(n, lo + kRowBlock);
    for (int j = 0; j < k; ++j) {
      const T* col = v + static_cast<std::int64_t>(j) * n + lo;
      const double* wb = w + lo;
      double s = 0.0;
#pragma omp simd reduction(+ : s)
      for (std::int64_t i = 0; i < hi - lo; ++i) s += static_cast<double>(col[i]) * wb[i];
      partial[b * k + j] = s;
    }
  }
  std::fill(c, c + k, 0.0);
  for (std::int64_t b = 0; b < nblocks; ++b)
    for (int j = 0; j < k; ++j) c[j] += partial[b * k + j];
}

// w += scale * V c
template <class T>
void basis_times_add(const T* v, std::int64_t n, int k, const double* c, double scale, double* w) {
  const std::int64_t nblocks = (n + kRowBlock - 1) / kRowBlock;
#pragma omp parallel for schedule(static)
  for (std::int64_t b = 0; b < nblocks; ++b) {
    const std::int64_t lo = b * kRowBlock, hi = std::min(n, lo + kRowBlock);
    for (int j = 0; j < k; ++j) {
      const T* col = v + static_cast<std::int64_t>(j) * n;
      const double cj = scale * c[j];
#pragma omp simd
      for (std::int64_t i = lo; i < hi; ++i) w[i] += cj * static_cast<double>(col[i]);
    }
  }
}

}  // namespace dcdm::detail
