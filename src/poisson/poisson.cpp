// The 7-point pressure operator: matrix-free stencil, CSR assembly (full grid and
// compressed), fluid components, range projection and pinning.
#include "dcdm/poisson.hpp"

#include <type_traits>

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <memory>

#include <fmt/format.h>

#include "../linalg/block_ops.hpp"
#include "dcdm/error.hpp"
#include "dcdm/solve.hpp"

namespace dcdm {
namespace {

constexpr std::uint8_t kXMin = neighbour_bit(Face::XMin), kXMax = neighbour_bit(Face::XMax);
constexpr std::uint8_t kYMin = neighbour_bit(Face::YMin), kYMax = neighbour_bit(Face::YMax);
constexpr std::uint8_t kZMin = neighbour_bit(Face::ZMin), kZMax = neighbour_bit(Face::ZMax);
constexpr std::uint8_t kNeighbourBits = 0x3f;

// Type of the neighbour of (i,j,k) across face f; beyond the grid: Air across an Open face,
// Solid across a Wall.
CellType neighbour_type(const Domain& d, int i, int j, int k, Face f) {
  static constexpr int di[6] = {-1, 1, 0, 0, 0, 0};
  static constexpr int dj[6] = {0, 0, -1, 1, 0, 0};
  static constexpr int dk[6] = {0, 0, 0, 0, -1, 1};
  const int fi = static_cast<int>(f);
  const int a = i + di[fi], b = j + dj[fi], c = k + dk[fi];
  if (!d.dims().contains(a, b, c))
    return d.face(f) == FaceBoundary::Open ? CellType::Air : CellType::Solid;
  return d.cells(a, b, c);
}

// Per-cell fluid-neighbour bits (+ kFluidBit) and diagonal (non-solid neighbour count).
void compute_masks(const Domain& d, std::vector<std::uint8_t>& mask, std::vector<std::uint8_t>& diag) {
  const Dims dims = d.dims();
  mask.resize(static_cast<std::size_t>(dims.size()));
  diag.resize(static_cast<std::size_t>(dims.size()));
  const std::int64_t sy = dims.nx, sz = std::int64_t(dims.nx) * dims.ny;
  const CellType* cells = d.cells.vector().data();
  // Every cell written; those inside the grid read their six neighbours directly, those on its
  // outer layer through neighbour_type (the face's type beyond the grid).
#pragma omp parallel for schedule(static)
  for (int k = 0; k < dims.nz; ++k)
    for (int j = 0; j < dims.ny; ++j) {
      const bool inner_row = j > 0 && j < dims.ny - 1 && k > 0 && k < dims.nz - 1;
      for (int i = 0; i < dims.nx; ++i) {
        const std::int64_t n = dims.index(i, j, k);
        std::uint8_t m = 0, count = 0;
        if (cells[n] == CellType::Fluid) {
          m = kFluidBit;
          if (inner_row && i > 0 && i < dims.nx - 1) {
            const CellType nb[6] = {cells[n - 1], cells[n + 1], cells[n - sy], cells[n + sy], cells[n - sz], cells[n + sz]};
            for (int f = 0; f < 6; ++f) {
              m |= nb[f] == CellType::Fluid ? std::uint8_t(1u << f) : std::uint8_t(0);
              count += nb[f] != CellType::Solid;
            }
          } else {
            for (int f = 0; f < 6; ++f) {
              const CellType t = neighbour_type(d, i, j, k, static_cast<Face>(f));
              if (t == CellType::Fluid) m |= std::uint8_t(1u << f);
              if (t != CellType::Solid) ++count;
            }
          }
        }
        mask[n] = m;
        diag[n] = count;
      }
    }
}

// The weighted operator (Domain::coefficients): per cell the diagonal and, per axis, the
// coupling with the neighbour below along that axis (scale * face weight where both cells are
// fluid, else 0). `lower` arrays get one extra plane of zeros so that the coupling above a cell
// (lower[axis][c + stride]) can be read for every cell without a bounds check.
void compute_weighted(const Domain& d, const std::vector<std::uint8_t>& mask, std::vector<double>& diag,
                      std::vector<double> (&lower)[3]) {
  const Dims dims = d.dims();
  const Coefficients& co = *d.coefficients;
  const std::int64_t n = dims.size(), plane = std::int64_t(dims.nx) * dims.ny;
  diag.assign(static_cast<std::size_t>(n), 0.0);
  for (auto& l : lower) l.assign(static_cast<std::size_t>(n + plane), 0.0);
  const std::uint8_t low_bit[3] = {neighbour_bit(Face::XMin), neighbour_bit(Face::YMin), neighbour_bit(Face::ZMin)};
#pragma omp parallel for schedule(static)
  for (int k = 0; k < dims.nz; ++k)
    for (int j = 0; j < dims.ny; ++j)
      for (int i = 0; i < dims.nx; ++i) {
        const std::int64_t c = dims.index(i, j, k);
        if (d.cells[c] != CellType::Fluid) continue;
        double sum = 0.0;
        for (int f = 0; f < 6; ++f)
          if (neighbour_type(d, i, j, k, static_cast<Face>(f)) != CellType::Solid)
            sum += co.weight(dims, i, j, k, static_cast<Face>(f));
        if (!co.diagonal.empty()) sum += co.diagonal[static_cast<std::size_t>(c)];
        diag[c] = co.scale * sum;
        for (int a = 0; a < 3; ++a)
          if (mask[c] & low_bit[a]) lower[a][c] = co.scale * co.weight(dims, i, j, k, static_cast<Face>(2 * a));
      }
}

// Whether fluid cell (i, j, k) of a weighted domain has a Dirichlet term: a face with positive
// weight to air (or across an Open outer face), or a positive diagonal term.
bool weighted_dirichlet(const Domain& d, int i, int j, int k) {
  const Coefficients& co = *d.coefficients;
  const Dims dims = d.dims();
  if (!co.diagonal.empty() && co.diagonal[static_cast<std::size_t>(dims.index(i, j, k))] > 0.0) return true;
  for (int f = 0; f < 6; ++f)
    if (neighbour_type(d, i, j, k, static_cast<Face>(f)) == CellType::Air && co.weight(dims, i, j, k, static_cast<Face>(f)) > 0.0)
      return true;
  return false;
}

void check_dims(const Dims& d) {
  if (d.nx <= 0 || d.ny <= 0 || d.nz <= 0)
    throw InputError(fmt::format("domain has invalid dimensions {}", d.str()));
}

// One row of the stencil. The terms are added in column order (z-1, y-1, x-1, centre, x+1,
// y+1, z+1) exactly as CsrMatrix::multiply adds a row, and a masked-out neighbour adds 0 (or
// subtracts +0), so the two agree. Selects rather than multiplications by the mask keep
// NaN/garbage outside fluid cells out of the result. Branch-free: compiles to blends.
inline double stencil_row(std::uint8_t m, std::uint8_t d, double xb, double xs, double xw,
                          double xc, double xe, double xn, double xt) {
  double s = 0.0;
  s -= (m & kZMin) ? xb : 0.0;
  s -= (m & kYMin) ? xs : 0.0;
  s -= (m & kXMin) ? xw : 0.0;
  const double centre = (m & kFluidBit) ? xc : 0.0;
  s += static_cast<double>(d) * centre;
  s -= (m & kXMax) ? xe : 0.0;
  s -= (m & kYMax) ? xn : 0.0;
  s -= (m & kZMax) ? xt : 0.0;
  return s;
}

// stencil_row over a run of cells whose neighbours' values lie in separate runs (below in z and
// y, the centre run with one value before and after, above in y and z).
void stencil_run(const std::uint8_t* __restrict m, const std::uint8_t* __restrict d, const double* __restrict xb,
                 const double* __restrict xs, const double* __restrict xc, const double* __restrict xn,
                 const double* __restrict xt, double* __restrict y, std::int64_t len) {
#pragma omp simd simdlen(8)
  for (std::int64_t i = 0; i < len; ++i) y[i] = stencil_row(m[i], d[i], xb[i], xs[i], xc[i], xc[i + 1], xc[i + 2], xn[i], xt[i]);
}

// One row of the weighted operator, in the same column order and with the same selects as
// stencil_row (the couplings w* are the matrix's off-diagonal magnitudes).
inline double weighted_row(std::uint8_t m, double diag, double wb, double ws, double ww, double we, double wn,
                           double wt, double xb, double xs, double xw, double xc, double xe, double xn, double xt) {
  double s = 0.0;
  s -= (m & kZMin) ? wb * xb : 0.0;
  s -= (m & kYMin) ? ws * xs : 0.0;
  s -= (m & kXMin) ? ww * xw : 0.0;
  const double centre = (m & kFluidBit) ? xc : 0.0;
  s += diag * centre;
  s -= (m & kXMax) ? we * xe : 0.0;
  s -= (m & kYMax) ? wn * xn : 0.0;
  s -= (m & kZMax) ? wt * xt : 0.0;
  return s;
}

}  // namespace

// ---------------------------------------------------------------- stencil

PoissonStencil::PoissonStencil(const Domain& domain) : PoissonStencil(Domain(domain)) {}

PoissonStencil::PoissonStencil(Domain&& domain) : domain_(std::move(domain)) {
  check_dims(domain_.dims());
  compute_masks(domain_, neighbour_mask_, diag_count_);
  if (domain_.weighted()) compute_weighted(domain_, neighbour_mask_, diag_, lower_);
  zero_row_.assign(static_cast<std::size_t>(domain_.dims().nx), 0.0);
}

std::vector<double> PoissonStencil::diagonal() const {
  if (domain_.weighted()) return diag_;
  return std::vector<double>(diag_count_.begin(), diag_count_.end());
}

std::int64_t PoissonStencil::bytes_per_apply() const {
  return size() * (domain_.weighted() ? 8 + 8 + 1 + 4 * 8 : 8 + 8 + 2);
}

std::int64_t PoissonStencil::size() const { return domain_.dims().size(); }

void PoissonStencil::apply(dcdm::span<const double> x, dcdm::span<double> y) const {
  const std::int64_t n = size();
  if (static_cast<std::int64_t>(x.size()) != n || static_cast<std::int64_t>(y.size()) != n)
    throw Error(fmt::format("PoissonStencil::apply: vectors of size {} and {} on a {} grid ({} cells)",
                            x.size(), y.size(), dims().str(), n));
  const int nx = dims().nx, ny = dims().ny, nz = dims().nz;
  const std::int64_t sy = nx, sz = std::int64_t(nx) * ny;
  const double* px = x.data();
  double* py = y.data();
  const std::uint8_t* pm = neighbour_mask_.data();
  const std::uint8_t* pd = diag_count_.data();
  const double* zero = zero_row_.data();

  // z-slabs: each thread takes whole planes. In an interior plane (0 < k < nz - 1) every
  // neighbour index c +- 1, c +- nx, c +- nx*ny lies inside the arrays, so the plane is one long
  // branch-free loop: neighbours beyond the grid or across a row end are read but masked out
  // (their mask bits are clear). The two end planes go row by row, with rows beyond the grid
  // read from a zero row and the two end cells of each row done separately.
  const std::int64_t plane = sz;
  auto row_path = [&](int k) {
    for (int j = 0; j < ny; ++j) {
      const std::int64_t base = std::int64_t(k) * sz + std::int64_t(j) * sy;
      const double* __restrict xc = px + base;
      const double* __restrict xs = j > 0 ? xc - sy : zero;
      const double* __restrict xn = j < ny - 1 ? xc + sy : zero;
      const double* __restrict xb = k > 0 ? xc - sz : zero;
      const double* __restrict xt = k < nz - 1 ? xc + sz : zero;
      const std::uint8_t* __restrict m = pm + base;
      const std::uint8_t* __restrict d = pd + base;
      double* __restrict yr = py + base;
      if (nx == 1) {
        yr[0] = stencil_row(m[0], d[0], xb[0], xs[0], 0.0, xc[0], 0.0, xn[0], xt[0]);
        continue;
      }
      yr[0] = stencil_row(m[0], d[0], xb[0], xs[0], 0.0, xc[0], xc[1], xn[0], xt[0]);
#pragma omp simd simdlen(8)
      for (int i = 1; i < nx - 1; ++i)
        yr[i] = stencil_row(m[i], d[i], xb[i], xs[i], xc[i - 1], xc[i], xc[i + 1], xn[i], xt[i]);
      const int e = nx - 1;
      yr[e] = stencil_row(m[e], d[e], xb[e], xs[e], xc[e - 1], xc[e], 0.0, xn[e], xt[e]);
    }
  };
  if (domain_.weighted()) {
    // Whole planes through apply_cells (its end planes go cell by cell).
#pragma omp parallel for schedule(static)
    for (int k = 0; k < nz; ++k) apply_cells(px, py, std::int64_t(k) * plane, std::int64_t(k + 1) * plane);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int k = 0; k < nz; ++k) {
    if (k == 0 || k == nz - 1) row_path(k);
    else apply_cells(px, py, std::int64_t(k) * plane, std::int64_t(k + 1) * plane);  // the branch-free run
  }
}

// Cells [lo, hi) of y = A x (apply's inner planes, apply_dot's blocks): the cells of the inner planes
// (0 < k < nz - 1) in one branch-free run, as apply's plane path; those of the two end planes
// one by one with their out-of-grid neighbours read as 0, which their clear mask bits select
// away as the row path's zero row does, so every value equals apply's bit for bit.
template <class X>
void PoissonStencil::apply_cells(const X* x, double* y, std::int64_t lo, std::int64_t hi, std::int64_t y_first) const {
  const int nx = dims().nx, ny = dims().ny, nz = dims().nz;
  const std::int64_t sy = nx, sz = std::int64_t(nx) * ny;
  const std::uint8_t* pm = neighbour_mask_.data();
  const std::uint8_t* pd = diag_count_.data();
  const std::int64_t inner_lo = std::clamp(sz, lo, hi), inner_hi = std::clamp(std::int64_t(nz - 1) * sz, inner_lo, hi);
  if (domain_.weighted()) {
    const double* dg = diag_.data();
    const double* lx = lower_[0].data();
    const double* ly = lower_[1].data();
    const double* lz = lower_[2].data();
    const auto edge = [&](std::int64_t c) {
      const std::int64_t k = c / sz, j = (c / sy) % ny, i = c % sy;
      y[c - y_first] = weighted_row(pm[c], dg[c], lz[c], ly[c], lx[c], lx[c + 1], ly[c + sy], lz[c + sz], k > 0 ? x[c - sz] : 0.0,
                          j > 0 ? x[c - sy] : 0.0, i > 0 ? x[c - 1] : 0.0, x[c], i < nx - 1 ? x[c + 1] : 0.0,
                          j < ny - 1 ? x[c + sy] : 0.0, k < nz - 1 ? x[c + sz] : 0.0);
    };
    for (std::int64_t c = lo; c < inner_lo; ++c) edge(c);
    {
      const X* __restrict xr = x;
      double* __restrict yr = y;
#pragma omp simd
      for (std::int64_t c = inner_lo; c < inner_hi; ++c)
        yr[c - y_first] = weighted_row(pm[c], dg[c], lz[c], ly[c], lx[c], lx[c + 1], ly[c + sy], lz[c + sz], xr[c - sz],
                             xr[c - sy], xr[c - 1], xr[c], xr[c + 1], xr[c + sy], xr[c + sz]);
    }
    for (std::int64_t c = inner_hi; c < hi; ++c) edge(c);
    return;
  }
  const auto edge_cell = [&](std::int64_t c) {
    const std::int64_t k = c / sz, j = (c / sy) % ny, i = c % sy;
    y[c - y_first] = stencil_row(pm[c], pd[c], k > 0 ? x[c - sz] : 0.0, j > 0 ? x[c - sy] : 0.0, i > 0 ? x[c - 1] : 0.0, x[c],
                       i < nx - 1 ? x[c + 1] : 0.0, j < ny - 1 ? x[c + sy] : 0.0, k < nz - 1 ? x[c + sz] : 0.0);
  };
  for (std::int64_t c = lo; c < inner_lo; ++c) edge_cell(c);
  {
    const X* __restrict xr = x;
    double* __restrict yr = y;
    if constexpr (std::is_same_v<X, double>) {
#pragma omp simd simdlen(8)
      for (std::int64_t c = inner_lo; c < inner_hi; ++c)
        yr[c - y_first] = stencil_row(pm[c], pd[c], xr[c - sz], xr[c - sy], xr[c - 1], xr[c], xr[c + 1], xr[c + sy], xr[c + sz]);
    } else {
      // Float x: widened chunk by chunk into five short double runs (below, centre with its
      // two neighbours in x, above; L1-resident), then the double loop on them. GCC 12 leaves
      // the stencil's selects of widened float loads scalar.
      constexpr std::int64_t kChunk = 512;
      alignas(64) double zb[kChunk], ys[kChunk], xc[kChunk + 2], yn[kChunk], zt[kChunk];
      for (std::int64_t c0 = inner_lo; c0 < inner_hi; c0 += kChunk) {
        const std::int64_t len = std::min(kChunk, inner_hi - c0);
        const auto widen = [&](double* out, std::int64_t first, std::int64_t count) {
          const X* in = xr + first;
#pragma omp simd
          for (std::int64_t i = 0; i < count; ++i) out[i] = static_cast<double>(in[i]);
        };
        widen(zb, c0 - sz, len);
        widen(ys, c0 - sy, len);
        widen(xc, c0 - 1, len + 2);
        widen(yn, c0 + sy, len);
        widen(zt, c0 + sz, len);
        stencil_run(pm + c0, pd + c0, zb, ys, xc, yn, zt, yr + (c0 - y_first), len);
      }
    }
  }
  for (std::int64_t c = inner_hi; c < hi; ++c) edge_cell(c);
}

void PoissonStencil::apply_dot(dcdm::span<const double> x, dcdm::span<double> y, dcdm::span<const double* const> with,
                               dcdm::span<double> dots) const {
  const std::int64_t n = size();
  if (static_cast<std::int64_t>(x.size()) != n || static_cast<std::int64_t>(y.size()) != n)
    throw Error(fmt::format("PoissonStencil::apply_dot: vectors of size {} and {} on a {} grid ({} cells)", x.size(),
                            y.size(), dims().str(), n));
  if (dots.size() != with.size() + 1)
    throw Error(fmt::format("PoissonStencil::apply_dot: {} sums for {} vectors (need one more)", dots.size(),
                            with.size()));
  const double* px = x.data();
  double* py = y.data();
  const int m = static_cast<int>(with.size());
  // One pass: each block's A x is computed and, while x and y are still in cache, dotted.
  detail::blocked_reduce(n, m + 1, dots.data(), [&](std::int64_t lo, std::int64_t hi, double* out) {
    apply_cells(px, py, lo, hi);
    out[0] += detail::block_dot(px + lo, py + lo, hi - lo);
    for (int j = 0; j < m; ++j) out[1 + j] += detail::block_dot(px + lo, with[j] + lo, hi - lo);
  });
}

void PoissonStencil::apply_dot_single(dcdm::span<const float> x, dcdm::span<float> y, dcdm::span<const double> r,
                                      dcdm::span<double> dots) const {
  const std::int64_t n = size();
  if (static_cast<std::int64_t>(x.size()) != n || static_cast<std::int64_t>(y.size()) != n ||
      static_cast<std::int64_t>(r.size()) != n || dots.size() != 3)
    throw Error(fmt::format("PoissonStencil::apply_dot_single: vectors of sizes {}, {} and {} and {} sums on a {} grid "
                            "({} cells; need 3 sums)", x.size(), y.size(), r.size(), dots.size(), dims().str(), n));
  const float* px = x.data();
  float* py = y.data();
  const double* pr = r.data();
  // Each block's A x in double into a block-sized buffer (L2-resident), dotted there, then
  // rounded to float: x and y cross memory in float, and x . A x is that of the exact product.
  detail::blocked_reduce(n, 3, dots.data(), [&](std::int64_t lo, std::int64_t hi, double* out) {
    alignas(64) double ax[detail::kRowBlock];
    apply_cells(px, ax, lo, hi, lo);
    detail::round_with_dots(px + lo, ax, pr + lo, py + lo, hi - lo, out);
  });
}

double PoissonStencil::residual_dot(dcdm::span<const double> x, dcdm::span<const double> b,
                                    dcdm::span<double> r) const {
  const std::int64_t n = size();
  if (static_cast<std::int64_t>(x.size()) != n || static_cast<std::int64_t>(b.size()) != n ||
      static_cast<std::int64_t>(r.size()) != n)
    throw Error(fmt::format("PoissonStencil::residual_dot: vectors of sizes {}, {} and {} on a {} grid ({} cells)",
                            x.size(), b.size(), r.size(), dims().str(), n));
  const double* px = x.data();
  const double* pb = b.data();
  double* pr = r.data();
  double rr = 0.0;
  // Each block's A x into r, then r = b - A x and its square sum while the block is in cache.
  detail::blocked_reduce(n, 1, &rr, [&](std::int64_t lo, std::int64_t hi, double* out) {
    apply_cells(px, pr, lo, hi);
    double* rb = pr + lo;
    const double* bb = pb + lo;
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (std::int64_t i = 0; i < hi - lo; ++i) {
      rb[i] = bb[i] - rb[i];
      s += rb[i] * rb[i];
    }
    out[0] += s;
  });
  return rr;
}

// ---------------------------------------------------------------- assembly

namespace {

// Shared by both layouts: `column(cell)` maps a cell to its column, `row_cells` lists the
// cells of the rows in order (all cells for the full grid, fluid cells when compressed).
template <class ColumnOf>
CsrMatrix assemble(const Domain& domain, std::int64_t rows, std::int64_t cols,
                   const std::vector<std::int64_t>* row_cells, ColumnOf column) {
  std::vector<std::uint8_t> mask, diag;
  compute_masks(domain, mask, diag);
  const Dims d = domain.dims();
  const std::int64_t sy = d.nx, sz = std::int64_t(d.nx) * d.ny;
  // Weighted: the diagonal and the couplings of the weighted operator (see compute_weighted).
  std::vector<double> wdiag, lower[3];
  const bool weighted = domain.weighted();
  if (weighted) compute_weighted(domain, mask, wdiag, lower);
  auto cell_of = [&](std::int64_t r) { return row_cells ? (*row_cells)[r] : r; };

  CsrMatrix a;
  a.rows = rows;
  a.cols = cols;
  a.row_ptr.assign(static_cast<std::size_t>(rows) + 1, 0);
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::uint8_t m = mask[cell_of(r)];
    a.row_ptr[r + 1] = a.row_ptr[r] + ((m & kFluidBit) ? 1 + std::popcount(unsigned(m & kNeighbourBits)) : 0);
  }
  a.col_idx.resize(static_cast<std::size_t>(a.row_ptr.back()));
  a.values.resize(static_cast<std::size_t>(a.row_ptr.back()));
#pragma omp parallel for schedule(static)
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t c = cell_of(r);
    const std::uint8_t m = mask[c];
    std::int64_t p = a.row_ptr[r];
    auto put = [&](std::int64_t cell, double v) {
      a.col_idx[p] = static_cast<std::int32_t>(column(cell));
      a.values[p] = v;
      ++p;
    };
    if (!(m & kFluidBit)) continue;
    if (weighted) {
      if (m & kZMin) put(c - sz, -lower[2][c]);
      if (m & kYMin) put(c - sy, -lower[1][c]);
      if (m & kXMin) put(c - 1, -lower[0][c]);
      put(c, wdiag[c]);
      if (m & kXMax) put(c + 1, -lower[0][c + 1]);
      if (m & kYMax) put(c + sy, -lower[1][c + sy]);
      if (m & kZMax) put(c + sz, -lower[2][c + sz]);
      continue;
    }
    if (m & kZMin) put(c - sz, -1.0);
    if (m & kYMin) put(c - sy, -1.0);
    if (m & kXMin) put(c - 1, -1.0);
    put(c, static_cast<double>(diag[c]));
    if (m & kXMax) put(c + 1, -1.0);
    if (m & kYMax) put(c + sy, -1.0);
    if (m & kZMax) put(c + sz, -1.0);
  }
  return a;
}

void check_index_range(const Domain& domain, std::int64_t cols) {
  check_dims(domain.dims());
  if (cols > std::numeric_limits<std::int32_t>::max())
    throw InputError(fmt::format("grid {} has {} columns: more than 32-bit CSR indices allow",
                                 domain.dims().str(), cols));
}

}  // namespace

std::vector<double> operator_diagonal(const Domain& domain) {
  check_dims(domain.dims());
  std::vector<std::uint8_t> mask, count;
  compute_masks(domain, mask, count);
  std::vector<double> diag;
  if (domain.weighted()) {
    std::vector<double> lower[3];
    compute_weighted(domain, mask, diag, lower);
  } else {
    diag.assign(count.begin(), count.end());
  }
  return diag;
}

std::int64_t count_nonzero_off_fluid(const Domain& domain, dcdm::span<const double> b) {
  std::int64_t count = 0;
  const std::int64_t n = std::min<std::int64_t>(domain.dims().size(), static_cast<std::int64_t>(b.size()));
  for (std::int64_t c = 0; c < n; ++c) count += b[static_cast<std::size_t>(c)] != 0.0 && domain.cells[c] != CellType::Fluid;
  return count;
}

CsrMatrix assemble_full_grid(const Domain& domain) {
  const std::int64_t n = domain.dims().size();
  check_index_range(domain, n);
  return assemble(domain, n, n, nullptr, [](std::int64_t cell) { return cell; });
}

const CsrMatrix& system_matrix(const LinearSystemView& system, CsrMatrix& storage, const std::string& who) {
  if (system.matrix) return *system.matrix;
  if (!system.domain) throw InputError(fmt::format("{}: the system has neither a matrix nor a grid domain", who));
  storage = assemble_full_grid(*system.domain);
  return storage;
}

FluidIndexing fluid_indexing(const Domain& domain) {
  FluidIndexing ix;
  const std::int64_t n = domain.dims().size();
  ix.row_of_cell.assign(static_cast<std::size_t>(n), -1);
  for (std::int64_t c = 0; c < n; ++c)
    if (domain.cells[c] == CellType::Fluid) {
      ix.row_of_cell[c] = static_cast<std::int64_t>(ix.cell_of_row.size());
      ix.cell_of_row.push_back(c);
    }
  return ix;
}

CsrMatrix assemble_compressed(const Domain& domain, FluidIndexing* indexing) {
  check_dims(domain.dims());
  FluidIndexing ix = fluid_indexing(domain);
  const auto rows = static_cast<std::int64_t>(ix.cell_of_row.size());
  check_index_range(domain, rows);
  CsrMatrix a = assemble(domain, rows, rows, &ix.cell_of_row,
                         [&](std::int64_t cell) { return ix.row_of_cell[cell]; });
  if (indexing) *indexing = std::move(ix);
  return a;
}

// ---------------------------------------------------------------- components

int FluidComponents::singular_count() const {
  return static_cast<int>(std::count(touches_dirichlet.begin(), touches_dirichlet.end(), false));
}

FluidComponents fluid_components(const Domain& domain) {
  check_dims(domain.dims());
  const Dims d = domain.dims();
  const std::int64_t n = d.size(), sy = d.nx, sz = std::int64_t(d.nx) * d.ny;
  // Per fluid cell: the neighbours it is coupled with (mask bits; a zero-weight face does not
  // couple) and whether it has a Dirichlet part (dirichlet[c], reusing the diagonal array).
  std::vector<std::uint8_t> mask, dirichlet;
  compute_masks(domain, mask, dirichlet);
  const bool weighted = domain.weighted();
  // Unit weights: a fluid cell has a Dirichlet part when it has more non-solid neighbours
  // (dirichlet[c], the diagonal count) than fluid ones (the mask): a non-solid neighbour that is
  // not fluid is air, inside or beyond an Open face; read where the sizes are summed below.
  // Weighted: zero-weight faces do not couple, and the rule is the weighted one, set here.
  if (weighted) {
#pragma omp parallel for schedule(static)
    for (int k = 0; k < d.nz; ++k)
      for (int j = 0; j < d.ny; ++j)
        for (int i = 0; i < d.nx; ++i) {
          const std::int64_t c = d.index(i, j, k);
          std::uint8_t m = mask[c];
          if (!(m & kFluidBit)) continue;
          for (int f = 0; f < 6; ++f)
            if ((m & (1u << f)) && domain.coefficients->weight(d, i, j, k, static_cast<Face>(f)) == 0.0)
              m = std::uint8_t(m & ~(1u << f));
          mask[c] = m;
          dirichlet[c] = weighted_dirichlet(domain, i, j, k);
        }
  }
  const auto touches_air = [&](std::int64_t c) -> std::uint8_t {
    return weighted ? dirichlet[c] : dirichlet[c] > std::popcount(unsigned(mask[c] & kNeighbourBits));
  };

  // Union-find over the label array, every root the lowest cell of its component (a link
  // always goes from the larger root to the smaller), so that the numbering below (roots in
  // cell order) is that of a flood fill seeded in cell order. Threads own slabs of z planes and
  // link within them; the links across slab boundaries follow serially.
  FluidComponents fc;
  fc.label = Field<std::int32_t>(d, -1);
  std::int32_t* parent = fc.label.data();
  const auto find = [parent](std::int64_t c) {
    while (parent[c] != c) {
      parent[c] = parent[parent[c]];  // path halving
      c = parent[c];
    }
    return c;
  };
  const auto unite = [&](std::int64_t a, std::int64_t b) {
    a = find(a);
    b = find(b);
    if (a < b) parent[b] = static_cast<std::int32_t>(a);
    else if (b < a) parent[a] = static_cast<std::int32_t>(b);
  };
  std::vector<int> slab_start;
#pragma omp parallel
  {
#pragma omp single
    {
      const int threads = omp_get_num_threads();
      for (int t = 0; t <= threads; ++t) slab_start.push_back(static_cast<int>(std::int64_t(d.nz) * t / threads));
    }
    const int t = omp_get_thread_num();
    const int k0 = slab_start[static_cast<std::size_t>(t)], k1 = slab_start[static_cast<std::size_t>(t) + 1];
    for (std::int64_t c = k0 * sz; c < k1 * sz; ++c)
      if (mask[c] & kFluidBit) parent[c] = static_cast<std::int32_t>(c);
    // A link that the scan has already made through a square of coupled cells is skipped:
    // with c - 1 linked to c, c - 1 coupled below (y or z) and the cell below c coupled to its
    // own x- neighbour, c and the cell below are connected already (those links were made
    // earlier in the scan: same slab, lower index). In a fluid region that leaves one link a
    // cell instead of three.
    for (std::int64_t c = k0 * sz; c < k1 * sz; ++c) {
      const std::uint8_t m = mask[c];
      const bool left = m & kXMin;
      if (left) unite(c, c - 1);
      if ((m & kYMin) && !(left && (mask[c - 1] & kYMin) && (mask[c - sy] & kXMin))) unite(c, c - sy);
      if ((m & kZMin) && c - sz >= k0 * sz && !(left && (mask[c - 1] & kZMin) && (mask[c - sz] & kXMin)))
        unite(c, c - sz);
    }
  }
  for (std::size_t t = 1; t + 1 < slab_start.size(); ++t)
    for (std::int64_t c = slab_start[t] * sz, end = c + sz; c < end && slab_start[t] < d.nz; ++c)
      if (mask[c] & neighbour_bit(Face::ZMin)) unite(c, c - sz);

  // Every cell straight to its root. Other threads shorten the paths being read at the same
  // time, to ancestors that are as good, hence the relaxed atomic accesses.
#pragma omp parallel for schedule(static)
  for (std::int64_t c = 0; c < n; ++c) {
    if (parent[c] < 0) continue;
    std::int64_t r = c;
    for (;;) {
      const std::int32_t p = std::atomic_ref<std::int32_t>(parent[r]).load(std::memory_order_relaxed);
      if (p == r) break;
      r = p;
    }
    if (r != c) std::atomic_ref<std::int32_t>(parent[c]).store(static_cast<std::int32_t>(r), std::memory_order_relaxed);
  }

  // Component ids: roots numbered in cell order (block counts, then their prefix sums). A
  // root's entry becomes -(id + 2) (below the -1 of non-fluid cells), then every other cell
  // takes its root's id, then the roots theirs.
  constexpr std::int64_t kBlock = std::int64_t(1) << 16;
  const std::int64_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<std::int64_t> first_id(static_cast<std::size_t>(blocks) + 1, 0);
#pragma omp parallel for schedule(static)
  for (std::int64_t b = 0; b < blocks; ++b) {
    std::int64_t roots = 0;
    for (std::int64_t c = b * kBlock, end = std::min(n, c + kBlock); c < end; ++c) roots += parent[c] == c;
    first_id[static_cast<std::size_t>(b) + 1] = roots;
  }
  for (std::int64_t b = 0; b < blocks; ++b) first_id[static_cast<std::size_t>(b) + 1] += first_id[static_cast<std::size_t>(b)];
  const std::int64_t count = first_id.back();
  fc.first_cell.assign(static_cast<std::size_t>(count), 0);
#pragma omp parallel for schedule(static)
  for (std::int64_t b = 0; b < blocks; ++b) {
    std::int64_t id = first_id[static_cast<std::size_t>(b)];
    for (std::int64_t c = b * kBlock, end = std::min(n, c + kBlock); c < end; ++c)
      if (parent[c] == c) {
        fc.first_cell[static_cast<std::size_t>(id)] = c;
        parent[c] = static_cast<std::int32_t>(-(id + 2));
        ++id;
      }
  }
  // One pass for both: a root's entry is decoded by its own thread while others may read it,
  // so a reader takes either form (a code below -1 or the id itself, never ambiguous).
#pragma omp parallel for schedule(static)
  for (std::int64_t c = 0; c < n; ++c) {
    const std::int32_t v = parent[c];  // only this iteration writes parent[c]
    if (v == -1) continue;
    std::int32_t id = v;
    if (v >= 0) {
      id = std::atomic_ref<std::int32_t>(parent[v]).load(std::memory_order_relaxed);
      if (id < -1) id = -id - 2;
    } else {
      id = -v - 2;
    }
    std::atomic_ref<std::int32_t>(parent[c]).store(id, std::memory_order_relaxed);
  }

  // Sizes and Dirichlet contact per component, per thread then summed.
  fc.size.assign(static_cast<std::size_t>(count), 0);
  std::vector<std::uint8_t> touches(static_cast<std::size_t>(count), 0);
#pragma omp parallel
  {
    std::vector<std::int64_t> size(static_cast<std::size_t>(count), 0);
    std::vector<std::uint8_t> dir(static_cast<std::size_t>(count), 0);
#pragma omp for schedule(static) nowait
    for (std::int64_t c = 0; c < n; ++c) {
      const std::int32_t l = parent[c];
      if (l < 0) continue;
      ++size[static_cast<std::size_t>(l)];
      dir[static_cast<std::size_t>(l)] |= touches_air(c);
    }
#pragma omp critical
    for (std::int64_t l = 0; l < count; ++l) {
      fc.size[static_cast<std::size_t>(l)] += size[static_cast<std::size_t>(l)];
      touches[static_cast<std::size_t>(l)] |= dir[static_cast<std::size_t>(l)];
    }
  }
  fc.touches_dirichlet.assign(touches.begin(), touches.end());
  return fc;
}

// ---------------------------------------------------------------- range projection

RangeProjector::RangeProjector(const Domain& domain)
    : components_(std::make_shared<FluidComponents>(fluid_components(domain))), cells_(domain.dims().size()) {
  slot_of_component_.assign(static_cast<std::size_t>(components_->count()), -1);
  for (int c = 0; c < components_->count(); ++c)
    if (!components_->touches_dirichlet[c]) {
      slot_of_component_[c] = static_cast<std::int32_t>(singular_ids_.size());
      singular_ids_.push_back(c);
    }
  if (singular_ids_.empty()) components_->label = Field<std::int32_t>();
}

std::vector<double> RangeProjector::project(dcdm::span<double> v) const {
  const std::int64_t n = cells_;
  if (static_cast<std::int64_t>(v.size()) != n)
    throw Error(fmt::format("RangeProjector: vector of size {} on a grid of {} cells", v.size(), n));
  const auto slots = static_cast<std::int64_t>(singular_ids_.size());
  if (slots == 0) return {};
  const std::int32_t* label = components_->label.data();
  const std::int32_t* slot_of = slot_of_component_.data();
  auto slot = [&](std::int64_t c) { return label[c] < 0 ? -1 : slot_of[label[c]]; };

  // Fixed blocks (independent of the thread count), block sums added in block order.
  constexpr std::int64_t kBlock = 1 << 15;
  const std::int64_t blocks = (n + kBlock - 1) / kBlock;
  const bool parallel = slots <= 64;
  std::vector<double> partial(static_cast<std::size_t>(parallel ? blocks * slots : slots), 0.0);
  if (parallel) {
#pragma omp parallel for schedule(static)
    for (std::int64_t b = 0; b < blocks; ++b) {
      double* acc = partial.data() + b * slots;
      const std::int64_t end = std::min(n, (b + 1) * kBlock);
      for (std::int64_t c = b * kBlock; c < end; ++c) {
        const int s = slot(c);
        if (s >= 0) acc[s] += v[c];
      }
    }
  } else {
    for (std::int64_t c = 0; c < n; ++c) {
      const int s = slot(c);
      if (s >= 0) partial[s] += v[c];
    }
  }
  std::vector<double> mean(static_cast<std::size_t>(slots), 0.0);
  const std::int64_t rows_of_partials = parallel ? blocks : 1;
  for (std::int64_t b = 0; b < rows_of_partials; ++b)
    for (std::int64_t s = 0; s < slots; ++s) mean[s] += partial[b * slots + s];
  for (std::int64_t s = 0; s < slots; ++s) mean[s] /= static_cast<double>(components_->size[singular_ids_[s]]);
#pragma omp parallel for schedule(static)
  for (std::int64_t c = 0; c < n; ++c) {
    const int s = slot(c);
    if (s >= 0) v[c] -= mean[s];
  }
  return mean;
}

std::function<void(dcdm::span<double>)> RangeProjector::as_function() const {
  // A copy that shares the labels: the function may outlive this projector.
  auto self = std::make_shared<RangeProjector>(*this);
  return [self](dcdm::span<double> v) { self->project(v); };
}

Domain pin_singular_components(const Domain& domain, std::vector<std::int64_t>* pinned) {
  const FluidComponents fc = fluid_components(domain);
  Domain out = domain;
  if (pinned) pinned->clear();
  for (int c = 0; c < fc.count(); ++c)
    if (!fc.touches_dirichlet[c]) {
      out.cells[fc.first_cell[c]] = CellType::Air;
      if (pinned) pinned->push_back(fc.first_cell[c]);
    }
  return out;
}

}  // namespace dcdm
