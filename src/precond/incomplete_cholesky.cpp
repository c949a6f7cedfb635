// IC(0) and modified IC(0) in the diagonal form M = (E + L) E^{-1} (E + L^T).
//
// Why this form: for the 7-point stencil no fill of the IC(0) elimination lands inside the
// pattern, so the off-diagonals of the factor are exactly A's and only the pivots e_i need
// computing. MIC(0) adds tau times the dropped fill of each row back onto its pivot (row sums
// preserved for tau = 1), which is what makes it so much better on Poisson problems.
//
// The triangular solves are inherently sequential in the natural ordering. A red-black or
// multicolour reordering would parallelise them but is known to cost IC/MIC many iterations
// (the ordering matters for MIC's low-frequency behaviour), so we keep the natural order and
// make the sweeps cheap instead: on grid systems they are branch-free stencil sweeps (values
// outside the fluid are zero, so the neighbours can be read unconditionally).
#include <chrono>
#include <cmath>

#include <fmt/format.h>

#include "dcdm/error.hpp"
#include "dcdm/precond.hpp"
#include "dcdm/poisson.hpp"

namespace dcdm {

IncompleteCholeskyPreconditioner::IncompleteCholeskyPreconditioner(double tau, double sigma)
    : tau_(tau), sigma_(sigma) {
  if (!(tau >= 0.0 && tau <= 1.0))
    throw InputError(fmt::format("--mic-safety: {} is outside [0, 1]", tau));
  if (!(sigma >= 0.0 && sigma < 1.0))
    throw InputError(fmt::format("IC(0) pivot guard {} is outside [0, 1)", sigma));
}

void IncompleteCholeskyPreconditioner::setup(const LinearSystemView& system) {
  guarded_ = 0;
  lower_ptr_.clear();
  lower_col_.clear();
  lower_val_.clear();
  upper_ptr_.clear();
  upper_col_.clear();
  upper_val_.clear();
  if (system.domain && !system.domain->weighted()) {
    // Stencil path: a_ik = -1 between fluid neighbours, a_ii = non-solid neighbour count.
    const Domain& d = *system.domain;
    stencil_ = true;
    dims_ = d.dims();
    n_ = dims_.size();
    if (system.op && system.op->size() != n_)
      throw InputError(fmt::format("{}: domain has {} cells, the operator {} rows", name(), n_,
                                   system.op->size()));
    const std::vector<double> diag = operator_diagonal(d);
    inv_e_.assign(static_cast<std::size_t>(n_), 0.0);
    const std::int64_t sx = 1, sy = dims_.nx, sz = std::int64_t(dims_.nx) * dims_.ny;
    auto fluid = [&](int i, int j, int k) {
      return dims_.contains(i, j, k) && d.cells(i, j, k) == CellType::Fluid;
    };
    // Number of fluid "upper" neighbours (+x, +y, +z) of cell (i, j, k).
    auto upper_count = [&](int i, int j, int k) {
      return int(fluid(i + 1, j, k)) + int(fluid(i, j + 1, k)) + int(fluid(i, j, k + 1));
    };
    for (int k = 0; k < dims_.nz; ++k)
      for (int j = 0; j < dims_.ny; ++j)
        for (int i = 0; i < dims_.nx; ++i) {
          const std::int64_t c = dims_.index(i, j, k);
          if (d.cells[c] != CellType::Fluid) continue;
          const double aii = diag[c];
          double e = aii;
          // Lower neighbour k: a_ik^2 / e_k + tau * a_ik (s_k - a_ki) / e_k with a = -1 and
          // s_k = -(upper fluid neighbours of k): = (1 + tau * (upper_k - 1)) / e_k.
          auto eliminate = [&](bool is_fluid, std::int64_t nb, int ni, int nj, int nk) {
            if (!is_fluid) return;
            const double inv = inv_e_[nb];
            e -= (1.0 + tau_ * (upper_count(ni, nj, nk) - 1)) * inv;
          };
          eliminate(fluid(i - 1, j, k), c - sx, i - 1, j, k);
          eliminate(fluid(i, j - 1, k), c - sy, i, j - 1, k);
          eliminate(fluid(i, j, k - 1), c - sz, i, j, k - 1);
          if (!(e >= sigma_ * aii)) {  // also catches NaN
            e = aii;
            ++guarded_;
          }
          inv_e_[c] = aii > 0.0 ? 1.0 / e : 0.0;
        }
    // inv_e_ holds 1/e here; the sweeps below use it directly.
    work_.assign(static_cast<std::size_t>(n_), 0.0);
    return;
  }
  // A weighted domain without a matrix is factored from its assembly (the factor keeps only
  // its own arrays).
  CsrMatrix assembled;
  const CsrMatrix& a = system_matrix(system, assembled, name());
  if (a.rows != a.cols) throw InputError(fmt::format("{}: matrix is not square", name()));
  stencil_ = false;
  n_ = a.rows;
  lower_ptr_.assign(static_cast<std::size_t>(n_) + 1, 0);
  upper_ptr_.assign(static_cast<std::size_t>(n_) + 1, 0);
  std::vector<double> diag(static_cast<std::size_t>(n_), 0.0), upper_sum(diag.size(), 0.0);
  for (std::int64_t i = 0; i < n_; ++i) {
    for (std::int64_t p = a.row_ptr[i]; p < a.row_ptr[i + 1]; ++p) {
      const std::int64_t j = a.col_idx[p];
      const double v = a.values[p];
      if (v == 0.0) continue;
      if (j < i) {
        lower_col_.push_back(static_cast<std::int32_t>(j));
        lower_val_.push_back(v);
      } else if (j > i) {
        upper_col_.push_back(static_cast<std::int32_t>(j));
        upper_val_.push_back(v);
        upper_sum[i] += v;
      } else {
        diag[i] = v;
      }
    }
    lower_ptr_[i + 1] = static_cast<std::int64_t>(lower_val_.size());
    upper_ptr_[i + 1] = static_cast<std::int64_t>(upper_val_.size());
  }
  inv_e_.assign(static_cast<std::size_t>(n_), 0.0);
  for (std::int64_t i = 0; i < n_; ++i) {
    const double aii = diag[i];
    if (!std::isfinite(aii) || aii < 0.0)
      throw InputError(fmt::format("{}: the diagonal of row {} (counting from 0) is {}: the matrix is not SPD", name(), i,
                                   aii));
    if (aii == 0.0) {
      if (lower_ptr_[i + 1] != lower_ptr_[i] || upper_ptr_[i + 1] != upper_ptr_[i])
        throw InputError(fmt::format("{}: row {} has a zero diagonal but off-diagonal entries: "
                                     "the matrix is not SPD", name(), i));
      continue;  // empty row (cell outside the fluid): z = 0 there
    }
    double e = aii;
    for (std::int64_t p = lower_ptr_[i]; p < lower_ptr_[i + 1]; ++p) {
      const std::int64_t k = lower_col_[p];
      const double aik = lower_val_[p];
      e -= (aik * aik + tau_ * aik * (upper_sum[k] - aik)) * inv_e_[k];
    }
    if (!(e >= sigma_ * aii)) {
      e = aii;
      ++guarded_;
    }
    inv_e_[i] = 1.0 / e;
  }
  work_.assign(static_cast<std::size_t>(n_), 0.0);
}

void IncompleteCholeskyPreconditioner::apply(dcdm::span<const double> r, dcdm::span<double> z) const {
  double* u = work_.data();
  const double* ie = inv_e_.data();
  const double* pr = r.data();
  double* pz = z.data();
  if (stencil_) {
    const int nx = dims_.nx, ny = dims_.ny, nz = dims_.nz;
    const std::int64_t sy = nx, sz = std::int64_t(nx) * ny;
    // Forward: (E + L) u = r  ->  u_i = (r_i + sum of lower fluid neighbours u_k) / e_i.
    for (int k = 0; k < nz; ++k)
      for (int j = 0; j < ny; ++j) {
        const std::int64_t row = sy * j + sz * k;
        double prev = 0.0;  // u of the x-neighbour; the row starts at a wall
        for (int i = 0; i < nx; ++i) {
          const std::int64_t c = row + i;
          double t = pr[c];
          if (j > 0) t += u[c - sy];
          if (k > 0) t += u[c - sz];
          prev = (t + prev) * ie[c];
          u[c] = prev;
        }
      }
    // Backward: (E + L^T) z = E u  ->  z_i = u_i + (sum of upper fluid neighbours z_j) / e_i.
    for (int k = nz - 1; k >= 0; --k)
      for (int j = ny - 1; j >= 0; --j) {
        const std::int64_t row = sy * j + sz * k;
        double next = 0.0;
        for (int i = nx - 1; i >= 0; --i) {
          const std::int64_t c = row + i;
          double t = 0.0;
          if (j + 1 < ny) t += pz[c + sy];
          if (k + 1 < nz) t += pz[c + sz];
          next = u[c] + (t + next) * ie[c];
          pz[c] = next;
        }
      }
    return;
  }
  for (std::int64_t i = 0; i < n_; ++i) {
    double t = pr[i];
    for (std::int64_t p = lower_ptr_[i]; p < lower_ptr_[i + 1]; ++p) t -= lower_val_[p] * u[lower_col_[p]];
    u[i] = t * ie[i];
  }
  for (std::int64_t i = n_ - 1; i >= 0; --i) {
    double t = 0.0;
    for (std::int64_t p = upper_ptr_[i]; p < upper_ptr_[i + 1]; ++p) t += upper_val_[p] * pz[upper_col_[p]];
    pz[i] = u[i] - t * ie[i];
  }
}

}  // namespace dcdm
