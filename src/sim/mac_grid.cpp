// MAC grid: staggered sampling, divergence and the pressure-gradient update.
#include <algorithm>
#include <cmath>

#include "dcdm/error.hpp"
#include "dcdm/sim.hpp"
#include "detail.hpp"

namespace dcdm::sim {

Vec3 face_offset(int axis) {
  Vec3 o{0.5, 0.5, 0.5};
  o[axis] = 0.0;
  return o;
}

Dims face_dims(Dims cells, int axis) {
  if (axis == 0) ++cells.nx;
  if (axis == 1) ++cells.ny;
  if (axis == 2) ++cells.nz;
  return cells;
}

namespace {

// Lattice coordinate g along one axis of n points: base index and weight of base+1.
inline void locate(double g, int n, int& i0, double& t) {
  if (n <= 1) {
    i0 = 0;
    t = 0.0;
    return;
  }
  g = std::clamp(g, 0.0, double(n - 1));
  i0 = std::min(int(g), n - 2);
  t = g - i0;
}

}  // namespace

double sample(const Field<double>& f, Vec3 offset, Vec3 pos) {
  const Dims& d = f.dims();
  int i, j, k;
  double tx, ty, tz;
  locate(pos.x - offset.x, d.nx, i, tx);
  locate(pos.y - offset.y, d.ny, j, ty);
  locate(pos.z - offset.z, d.nz, k, tz);
  const int di = d.nx > 1 ? 1 : 0;
  const std::int64_t dj = d.ny > 1 ? d.nx : 0;
  const std::int64_t dk = d.nz > 1 ? std::int64_t(d.nx) * d.ny : 0;
  const double* p = f.data() + d.index(i, j, k);
  const double c00 = p[0] + tx * (p[di] - p[0]);
  const double c10 = p[dj] + tx * (p[dj + di] - p[dj]);
  const double c01 = p[dk] + tx * (p[dk + di] - p[dk]);
  const double c11 = p[dk + dj] + tx * (p[dk + dj + di] - p[dk + dj]);
  const double c0 = c00 + ty * (c10 - c00);
  const double c1 = c01 + ty * (c11 - c01);
  return c0 + tz * (c1 - c0);
}

double sample_bounded(const Field<double>& f, Vec3 offset, Vec3 pos, double& lo, double& hi) {
  const Dims& d = f.dims();
  int i, j, k;
  double tx, ty, tz;
  locate(pos.x - offset.x, d.nx, i, tx);
  locate(pos.y - offset.y, d.ny, j, ty);
  locate(pos.z - offset.z, d.nz, k, tz);
  const int di = d.nx > 1 ? 1 : 0;
  const std::int64_t dj = d.ny > 1 ? d.nx : 0;
  const std::int64_t dk = d.nz > 1 ? std::int64_t(d.nx) * d.ny : 0;
  const double* p = f.data() + d.index(i, j, k);
  const double v[8] = {p[0],       p[di],           p[dj],      p[dj + di],
                       p[dk],      p[dk + di],      p[dk + dj], p[dk + dj + di]};
  lo = *std::min_element(v, v + 8);
  hi = *std::max_element(v, v + 8);
  const double c00 = v[0] + tx * (v[1] - v[0]);
  const double c10 = v[2] + tx * (v[3] - v[2]);
  const double c01 = v[4] + tx * (v[5] - v[4]);
  const double c11 = v[6] + tx * (v[7] - v[6]);
  const double c0 = c00 + ty * (c10 - c00);
  const double c1 = c01 + ty * (c11 - c01);
  return c0 + tz * (c1 - c0);
}

MacVelocity::MacVelocity(Dims d)
    : cells(d), u(face_dims(d, 0), 0.0), v(face_dims(d, 1), 0.0), w(face_dims(d, 2), 0.0) {}

Vec3 MacVelocity::at(Vec3 pos) const {
  return {sample(u, face_offset(0), pos), sample(v, face_offset(1), pos),
          sample(w, face_offset(2), pos)};
}

Vec3 MacVelocity::cell_centre(int i, int j, int k) const {
  return {0.5 * (u(i, j, k) + u(i + 1, j, k)), 0.5 * (v(i, j, k) + v(i, j + 1, k)),
          0.5 * (w(i, j, k) + w(i, j, k + 1))};
}

CellType cell_type_at(const Domain& domain, int i, int j, int k) {
  const Dims& d = domain.dims();
  if (d.contains(i, j, k)) return domain.cells(i, j, k);
  Face f;
  if (i < 0) f = Face::XMin;
  else if (i >= d.nx) f = Face::XMax;
  else if (j < 0) f = Face::YMin;
  else if (j >= d.ny) f = Face::YMax;
  else if (k < 0) f = Face::ZMin;
  else f = Face::ZMax;
  return domain.face(f) == FaceBoundary::Open ? CellType::Air : CellType::Solid;
}

void divergence(const MacVelocity& vel, const Domain& domain, Field<double>& div) {
  const Dims d = domain.dims();
  const bool parallel = d.size() >= detail::kParallelCells;
  if (!(vel.cells == d)) throw Error("divergence: velocity and domain sizes differ");
  if (!(div.dims() == d)) div = Field<double>(d, 0.0);
#pragma omp parallel for schedule(static) if (parallel)
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j)
      for (int i = 0; i < d.nx; ++i) {
        double s = 0.0;
        if (domain.cells(i, j, k) == CellType::Fluid)
          s = (vel.u(i + 1, j, k) - vel.u(i, j, k)) + (vel.v(i, j + 1, k) - vel.v(i, j, k)) +
              (vel.w(i, j, k + 1) - vel.w(i, j, k));
        div(i, j, k) = s;
      }
}

double max_abs_divergence(const MacVelocity& vel, const Domain& domain) {
  Field<double> div;
  divergence(vel, domain, div);
  return norm_inf(div.span());
}

void subtract_pressure_gradient(const Field<double>& p, const Domain& domain, MacVelocity& vel) {
  const Dims d = domain.dims();
  const bool parallel = d.size() >= detail::kParallelCells;
  auto pressure_of = [&](int i, int j, int k, CellType t) {
    return t == CellType::Fluid ? p(i, j, k) : 0.0;  // air: Dirichlet p = 0
  };
  for (int axis = 0; axis < 3; ++axis) {
    Field<double>& comp = vel.component(axis);
    const Dims fd = comp.dims();
#pragma omp parallel for schedule(static) if (parallel)
    for (int k = 0; k < fd.nz; ++k)
      for (int j = 0; j < fd.ny; ++j)
        for (int i = 0; i < fd.nx; ++i) {
          // The face at index (i,j,k) separates cell (i,j,k) - e_axis ("left") and (i,j,k).
          const int li = i - (axis == 0), lj = j - (axis == 1), lk = k - (axis == 2);
          const CellType tl = cell_type_at(domain, li, lj, lk);
          const CellType tr = cell_type_at(domain, i, j, k);
          if (tl == CellType::Solid || tr == CellType::Solid) continue;
          if (tl != CellType::Fluid && tr != CellType::Fluid) continue;  // air-air
          const double pl = d.contains(li, lj, lk) ? pressure_of(li, lj, lk, tl) : 0.0;
          const double pr = d.contains(i, j, k) ? pressure_of(i, j, k, tr) : 0.0;
          comp(i, j, k) -= pr - pl;
        }
  }
}

}  // namespace dcdm::sim
