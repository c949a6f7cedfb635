#pragma once
// Cell-centred trilinear transfers of a 2:1 grid hierarchy, as inline kernels on padded
// layouts (one ghost layer, x fastest), shared by every multilevel operator: the MGPCG V-cycle
// (double, unweighted) and the FlagNet generator (float, weighted by a per-cell factor).
// Keeping them in one place keeps the two hierarchies' transfers identical; being templates
// on the value accessor, the weighting costs nothing where it is absent.
//
// Fine cell i lies in coarse cell i/2 and interpolates from it (weight 3/4) and from its
// neighbour towards i (1/4), per axis. The restriction is the transpose: coarse cell i
// gathers fine cells 2i-1 .. 2i+2 with weights (1, 3, 3, 1)/4 per axis; dividing that sum by
// 8 gives R = P^T / 8 (full weighting).
#include <cstdint>

namespace dcdm::transfer {

constexpr int near_coarse(int i) { return i >> 1; }
constexpr int far_coarse(int i) { return (i & 1) ? (i >> 1) + 1 : (i >> 1) - 1; }

// Calls visit(weight, ci, cj, ck) for the eight coarse cells fine cell (i, j, k)
// interpolates from (some of them ghosts at the grid's edge).
template <class T, class Visit>
inline void for_each_parent(int i, int j, int k, Visit&& visit) {
  const int ci[2] = {near_coarse(i), far_coarse(i)};
  const int cj[2] = {near_coarse(j), far_coarse(j)};
  const int ck[2] = {near_coarse(k), far_coarse(k)};
  constexpr T w[2] = {T(0.75), T(0.25)};
  for (int e = 0; e < 2; ++e)
    for (int b = 0; b < 2; ++b)
      for (int a = 0; a < 2; ++a) visit(w[e] * w[b] * w[a], ci[a], cj[b], ck[e]);
}

// Offsets (padded coarse layout, at x = 0) of the four coarse rows that fine row (j, k)
// interpolates from: r<b><e> for the near (0) / far (1) row in y (b) and z (e).
struct ProlongationRows {
  std::int64_t r00, r01, r10, r11;
};

template <class CoarseLayout>
inline ProlongationRows prolongation_rows(const CoarseLayout& c, int j, int k) {
  const int cj0 = near_coarse(j), cj1 = far_coarse(j);
  const int ck0 = near_coarse(k), ck1 = far_coarse(k);
  return {c.at(0, cj0, ck0), c.at(0, cj1, ck0), c.at(0, cj0, ck1), c.at(0, cj1, ck1)};
}

// The trilinear interpolation of the padded coarse values xc at fine cell i of that row.
template <class T>
inline T prolongate_at(const T* xc, const ProlongationRows& rows, int i) {
  const int ci0 = near_coarse(i), ci1 = far_coarse(i);
  auto line = [&](std::int64_t r) { return T(0.75) * xc[r + ci0] + T(0.25) * xc[r + ci1]; };
  return T(0.75) * (T(0.75) * line(rows.r00) + T(0.25) * line(rows.r01)) +
         T(0.25) * (T(0.75) * line(rows.r10) + T(0.25) * line(rows.r11));
}

// Sum over the 4x4x4 fine block of one coarse cell of w_e w_b w_a * value(offset), where
// base is the padded fine offset of the block's first cell (2i-1, 2j-1, 2k-1) and sy, sz
// the fine strides. value(offset) reads the (possibly weighted) fine field; ghosts must read 0.
template <class T, class Value>
inline T restriction_sum(std::int64_t base, std::int64_t sy, std::int64_t sz, Value&& value) {
  constexpr T w[4] = {T(0.25), T(0.75), T(0.75), T(0.25)};
  T sum = T(0);
  for (int e = 0; e < 4; ++e)
    for (int b = 0; b < 4; ++b) {
      const std::int64_t at = base + e * sz + b * sy;
      const T line = w[0] * value(at) + w[1] * value(at + 1) + w[2] * value(at + 2) + w[3] * value(at + 3);
      sum += w[e] * w[b] * line;
    }
  return sum;
}

// prolongate_at for the fine cells 2m and 2m + 1 of the coarse cells m = m0 .. m0 + n - 1 of a
// row at once (the same sums in the same order, vectorised: no gathers): even[t] is fine cell
// 2 (m0 + t)'s value (coarse parents m, m - 1 along x), odd[t] fine cell 2 (m0 + t) + 1's (m, m + 1).
template <class T>
inline void prolongation_pairs(const T* xc, const ProlongationRows& rows, int m0, int n, T* even, T* odd) {
  const T *r00 = xc + rows.r00 + m0, *r01 = xc + rows.r01 + m0, *r10 = xc + rows.r10 + m0, *r11 = xc + rows.r11 + m0;
  const auto interpolate = [&](int near, int far) {
    auto line = [&](const T* r) { return T(0.75) * r[near] + T(0.25) * r[far]; };
    return T(0.75) * (T(0.75) * line(r00) + T(0.25) * line(r01)) + T(0.25) * (T(0.75) * line(r10) + T(0.25) * line(r11));
  };
#pragma omp simd
  for (int t = 0; t < n; ++t) {
    even[t] = interpolate(t, t - 1);
    odd[t] = interpolate(t, t + 1);
  }
}

// restriction_sum for m coarse cells of one row at once, vectorised over them, with the same
// sums in the same order: line(e, b) points at the fine cell (2 i0 - 1, 2 j - 1 + b,
// 2 k - 1 + e) of the row's first coarse cell i0; sum[i] receives cell i0 + i's sum.
template <class T, class Line>
inline void restriction_sums(int m, T* sum, Line&& line) {
  constexpr T w[4] = {T(0.25), T(0.75), T(0.75), T(0.25)};
  for (int i = 0; i < m; ++i) sum[i] = T(0);
  for (int e = 0; e < 4; ++e)
    for (int b = 0; b < 4; ++b) {
      const T* l = line(e, b);
      const T web = w[e] * w[b];
#pragma omp simd
      for (int i = 0; i < m; ++i) {
        const T* at = l + 2 * i;
        sum[i] += web * (w[0] * at[0] + w[1] * at[1] + w[2] * at[2] + w[3] * at[3]);
      }
    }
}

}  // namespace dcdm::transfer
