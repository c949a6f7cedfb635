// Semi-Lagrangian advection with optional MacCormack / BFECC error compensation.
#include <algorithm>
#include <vector>

#include <fmt/format.h>

#include "dcdm/error.hpp"
#include "dcdm/sim.hpp"
#include "detail.hpp"

namespace dcdm::sim {

Advection parse_advection(const std::string& name) {
  if (name == "semi-lagrangian" || name == "sl") return Advection::SemiLagrangian;
  if (name == "maccormack") return Advection::MacCormack;
  if (name == "bfecc") return Advection::Bfecc;
  throw InputError(fmt::format(
      "--advection: unknown scheme '{}' (known: semi-lagrangian, maccormack, bfecc)", name));
}

const char* to_string(Advection a) {
  switch (a) {
    case Advection::SemiLagrangian: return "semi-lagrangian";
    case Advection::MacCormack: return "maccormack";
    case Advection::Bfecc: return "bfecc";
  }
  return "unknown";
}

namespace {

// Midpoint back-trace from x over dt.
inline Vec3 trace_back(const MacVelocity& vel, Vec3 x, double dt) {
  const Vec3 mid = x - (0.5 * dt) * vel.at(x);
  return x - dt * vel.at(mid);
}

// One semi-Lagrangian pass over fields sharing a lattice (one back-trace per point serves
// all of them); when lo/hi are given they receive the range of the samples used.
void semi_lagrangian(const std::vector<const Field<double>*>& src, Vec3 offset, const MacVelocity& vel,
                     double dt, const std::vector<Field<double>*>& dst,
                     const std::vector<Field<double>*>* lo, const std::vector<Field<double>*>* hi) {
  const Dims d = src[0]->dims();
  const std::size_t m = src.size();
  const bool parallel = d.size() >= detail::kParallelCells;
  for (std::size_t f = 0; f < m; ++f)
    if (!(dst[f]->dims() == d)) *dst[f] = Field<double>(d, 0.0);
#pragma omp parallel for schedule(static) if (parallel)
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j)
      for (int i = 0; i < d.nx; ++i) {
        const Vec3 x{i + offset.x, j + offset.y, k + offset.z};
        const Vec3 back = trace_back(vel, x, dt);
        for (std::size_t f = 0; f < m; ++f) {
          if (lo) {
            double a, b;
            (*dst[f])(i, j, k) = sample_bounded(*src[f], offset, back, a, b);
            (*(*lo)[f])(i, j, k) = a;
            (*(*hi)[f])(i, j, k) = b;
          } else {
            (*dst[f])(i, j, k) = sample(*src[f], offset, back);
          }
        }
      }
}

}  // namespace

void advect_together(const std::vector<const Field<double>*>& src, Vec3 offset, const MacVelocity& vel,
                     double dt, Advection scheme, const std::vector<Field<double>*>& dst) {
  if (src.empty() || src.size() != dst.size()) throw Error("advect_together: mismatched field lists");
  const Dims d = src[0]->dims();
  for (std::size_t f = 0; f < src.size(); ++f) {
    if (!(src[f]->dims() == d)) throw Error("advect_together: fields on different lattices");
    for (const auto* s : src)
      if (s == dst[f]) throw Error("advect_together: source and destination must differ");
  }
  if (scheme == Advection::SemiLagrangian) {
    semi_lagrangian(src, offset, vel, dt, dst, nullptr, nullptr);
    return;
  }
  const std::size_t m = src.size();
  std::vector<Field<double>> store(4 * m, Field<double>(d));
  std::vector<Field<double>*> forward(m), backward(m), lo(m), hi(m);
  std::vector<const Field<double>*> forward_c(m), corrected_c(m);
  for (std::size_t f = 0; f < m; ++f) {
    forward[f] = &store[4 * f];
    backward[f] = &store[4 * f + 1];
    lo[f] = &store[4 * f + 2];
    hi[f] = &store[4 * f + 3];
    forward_c[f] = forward[f];
    corrected_c[f] = backward[f];
  }
  const bool parallel = d.size() >= detail::kParallelCells;
  const std::int64_t n = d.size();
  semi_lagrangian(src, offset, vel, dt, forward, &lo, &hi);
  semi_lagrangian(forward_c, offset, vel, -dt, backward, nullptr, nullptr);
  if (scheme == Advection::MacCormack) {
    // phi = phi^ + (phi - phi~) / 2, clamped to the range around the back-traced point.
    for (std::size_t f = 0; f < m; ++f) {
      const Field<double>& s = *src[f];
      const Field<double>&fw = *forward[f], &bw = *backward[f], &l = *lo[f], &h = *hi[f];
      Field<double>& out = *dst[f];
      if (!(out.dims() == d)) out = Field<double>(d);
#pragma omp parallel for schedule(static) if (parallel)
      for (std::int64_t c = 0; c < n; ++c) out[c] = std::clamp(fw[c] + 0.5 * (s[c] - bw[c]), l[c], h[c]);
    }
    return;
  }
  // BFECC: advect the corrected field phi + (phi - phi~) / 2 once more, then clamp.
  for (std::size_t f = 0; f < m; ++f) {
    const Field<double>& s = *src[f];
    Field<double>& bw = *backward[f];
#pragma omp parallel for schedule(static) if (parallel)
    for (std::int64_t c = 0; c < n; ++c) bw[c] = s[c] + 0.5 * (s[c] - bw[c]);
  }
  semi_lagrangian(corrected_c, offset, vel, dt, dst, nullptr, nullptr);
  for (std::size_t f = 0; f < m; ++f) {
    Field<double>& out = *dst[f];
    const Field<double>&l = *lo[f], &h = *hi[f];
#pragma omp parallel for schedule(static) if (parallel)
    for (std::int64_t c = 0; c < n; ++c) out[c] = std::clamp(out[c], l[c], h[c]);
  }
}

void advect(const Field<double>& src, Vec3 offset, const MacVelocity& vel, double dt,
            Advection scheme, Field<double>& dst) {
  advect_together({&src}, offset, vel, dt, scheme, {&dst});
}

void advect_velocity(const MacVelocity& vel, double dt, Advection scheme, MacVelocity& dst) {
  if (&vel == &dst) throw Error("advect_velocity: source and destination must differ");
  if (!(dst.cells == vel.cells)) dst = MacVelocity(vel.cells);
  for (int axis = 0; axis < 3; ++axis)
    advect(vel.component(axis), face_offset(axis), vel, dt, scheme, dst.component(axis));
}

}  // namespace dcdm::sim
