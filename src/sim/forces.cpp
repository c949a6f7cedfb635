// Body forces: buoyancy and vorticity confinement.
#include <algorithm>
#include <cmath>

#include "dcdm/sim.hpp"
#include "detail.hpp"

namespace dcdm::sim {

void add_buoyancy(const Field<double>& density, const Field<double>& temperature, double alpha,
                  double beta, double ambient, double dt, const Domain& domain, MacVelocity& vel) {
  const Dims d = domain.dims();
  const bool parallel = d.size() >= detail::kParallelCells;
  if (alpha == 0.0 && beta == 0.0) return;
  auto force = [&](int i, int j, int k) {
    return -alpha * density(i, j, k) + beta * (temperature(i, j, k) - ambient);
  };
#pragma omp parallel for schedule(static) if (parallel)
  for (int k = 0; k <= d.nz; ++k)
    for (int j = 0; j < d.ny; ++j)
      for (int i = 0; i < d.nx; ++i) {
        // z-face between cells (i,j,k-1) and (i,j,k); faces touching solids are reset later.
        const bool below = k > 0 && domain.cells(i, j, k - 1) == CellType::Fluid;
        const bool above = k < d.nz && domain.cells(i, j, k) == CellType::Fluid;
        if (!below && !above) continue;
        double f;
        if (below && above) f = 0.5 * (force(i, j, k - 1) + force(i, j, k));
        else f = below ? force(i, j, k - 1) : force(i, j, k);
        vel.w(i, j, k) += dt * f;
      }
}

void add_vorticity_confinement(double epsilon, double dt, const Domain& domain, MacVelocity& vel) {
  if (epsilon == 0.0) return;
  const Dims d = domain.dims();
  const bool parallel = d.size() >= detail::kParallelCells;
  auto fluid = [&](int i, int j, int k) { return domain.cells(i, j, k) == CellType::Fluid; };
  // Cell-centred velocity.
  std::array<Field<double>, 3> uc{Field<double>(d), Field<double>(d), Field<double>(d)};
#pragma omp parallel for schedule(static) if (parallel)
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j)
      for (int i = 0; i < d.nx; ++i) {
        const Vec3 c = vel.cell_centre(i, j, k);
        for (int a = 0; a < 3; ++a) uc[a](i, j, k) = c[a];
      }
  // Central differences, one-sided at the grid edges.
  auto ddx = [&](const Field<double>& f, int axis, int i, int j, int k) {
    int lo[3] = {i, j, k}, hi[3] = {i, j, k};
    const int n = axis == 0 ? d.nx : (axis == 1 ? d.ny : d.nz);
    lo[axis] = std::max(lo[axis] - 1, 0);
    hi[axis] = std::min(hi[axis] + 1, n - 1);
    const int span = hi[axis] - lo[axis];
    if (span == 0) return 0.0;
    return (f(hi[0], hi[1], hi[2]) - f(lo[0], lo[1], lo[2])) / span;
  };
  std::array<Field<double>, 3> omega{Field<double>(d, 0.0), Field<double>(d, 0.0),
                                     Field<double>(d, 0.0)};
  Field<double> magnitude(d, 0.0);
#pragma omp parallel for schedule(static) if (parallel)
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j)
      for (int i = 0; i < d.nx; ++i) {
        if (!fluid(i, j, k)) continue;
        const double wx = ddx(uc[2], 1, i, j, k) - ddx(uc[1], 2, i, j, k);
        const double wy = ddx(uc[0], 2, i, j, k) - ddx(uc[2], 0, i, j, k);
        const double wz = ddx(uc[1], 0, i, j, k) - ddx(uc[0], 1, i, j, k);
        omega[0](i, j, k) = wx;
        omega[1](i, j, k) = wy;
        omega[2](i, j, k) = wz;
        magnitude(i, j, k) = std::sqrt(wx * wx + wy * wy + wz * wz);
      }
  // f = eps (N x omega), stored back into uc (no longer needed).
  std::array<Field<double>, 3>& force = uc;
#pragma omp parallel for schedule(static) if (parallel)
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j)
      for (int i = 0; i < d.nx; ++i) {
        double f[3] = {0.0, 0.0, 0.0};
        if (fluid(i, j, k)) {
          double g[3] = {ddx(magnitude, 0, i, j, k), ddx(magnitude, 1, i, j, k),
                         ddx(magnitude, 2, i, j, k)};
          const double len = std::sqrt(g[0] * g[0] + g[1] * g[1] + g[2] * g[2]);
          if (len > 1e-12) {
            for (double& x : g) x /= len;
            const double w[3] = {omega[0](i, j, k), omega[1](i, j, k), omega[2](i, j, k)};
            f[0] = epsilon * (g[1] * w[2] - g[2] * w[1]);
            f[1] = epsilon * (g[2] * w[0] - g[0] * w[2]);
            f[2] = epsilon * (g[0] * w[1] - g[1] * w[0]);
          }
        }
        for (int a = 0; a < 3; ++a) force[a](i, j, k) = f[a];
      }
  // Faces between two fluid cells get the average of their cells' forces.
  for (int axis = 0; axis < 3; ++axis) {
    Field<double>& comp = vel.component(axis);
    const Field<double>& fa = force[axis];
#pragma omp parallel for schedule(static) if (parallel)
    for (int k = 0; k < d.nz; ++k)
      for (int j = 0; j < d.ny; ++j)
        for (int i = 0; i < d.nx; ++i) {
          const int li = i - (axis == 0), lj = j - (axis == 1), lk = k - (axis == 2);
          if (li < 0 || lj < 0 || lk < 0) continue;
          if (!fluid(li, lj, lk) || !fluid(i, j, k)) continue;
          comp(i, j, k) += dt * 0.5 * (fa(li, lj, lk) + fa(i, j, k));
        }
  }
}

}  // namespace dcdm::sim
