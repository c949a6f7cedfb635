// Semi-Lagrangian advection with optional MacCormack / BFECC error compensation.
#include <algorithm>

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

// One semi-Lagrangian pass; when lo/hi are given they receive the range of the samples used.
void semi_lagrangian(const Field<double>& src, Vec3 offset, const MacVelocity& vel, double dt,
                     Field<double>& dst, Field<double>* lo, Field<double>* hi) {
  const Dims d = src.dims();
  const bool parallel = d.size() >= detail::kParallelCells;
  if (!(dst.dims() == d)) dst = Field<double>(d, 0.0);
#pragma omp parallel for schedule(static) if (parallel)
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j)
      for (int i = 0; i < d.nx; ++i) {
        const Vec3 x{i + offset.x, j + offset.y, k + offset.z};
        const Vec3 back = trace_back(vel, x, dt);
        if (lo) {
          double a, b;
          dst(i, j, k) = sample_bounded(src, offset, back, a, b);
          (*lo)(i, j, k) = a;
          (*hi)(i, j, k) = b;
        } else {
          dst(i, j, k) = sample(src, offset, back);
        }
      }
}

}  // namespace

void advect(const Field<double>& src, Vec3 offset, const MacVelocity& vel, double dt,
            Advection scheme, Field<double>& dst) {
  if (&src == &dst) throw Error("advect: source and destination must differ");
  if (scheme == Advection::SemiLagrangian) {
    semi_lagrangian(src, offset, vel, dt, dst, nullptr, nullptr);
    return;
  }
  const Dims d = src.dims();
  Field<double> forward(d), backward(d), lo(d), hi(d);
  const bool parallel = d.size() >= detail::kParallelCells;
  semi_lagrangian(src, offset, vel, dt, forward, &lo, &hi);
  semi_lagrangian(forward, offset, vel, -dt, backward, nullptr, nullptr);
  const std::int64_t n = d.size();
  if (scheme == Advection::MacCormack) {
    // phi = phi^ + (phi - phi~) / 2, clamped to the range around the back-traced point.
    if (!(dst.dims() == d)) dst = Field<double>(d);
#pragma omp parallel for schedule(static) if (parallel)
    for (std::int64_t c = 0; c < n; ++c)
      dst[c] = std::clamp(forward[c] + 0.5 * (src[c] - backward[c]), lo[c], hi[c]);
    return;
  }
  // BFECC: advect the corrected field phi + (phi - phi~) / 2 once more, then clamp.
  Field<double>& corrected = backward;
#pragma omp parallel for schedule(static) if (parallel)
  for (std::int64_t c = 0; c < n; ++c) corrected[c] = src[c] + 0.5 * (src[c] - backward[c]);
  semi_lagrangian(corrected, offset, vel, dt, dst, nullptr, nullptr);
#pragma omp parallel for schedule(static) if (parallel)
  for (std::int64_t c = 0; c < n; ++c) dst[c] = std::clamp(dst[c], lo[c], hi[c]);
}

void advect_velocity(const MacVelocity& vel, double dt, Advection scheme, MacVelocity& dst) {
  if (&vel == &dst) throw Error("advect_velocity: source and destination must differ");
  if (!(dst.cells == vel.cells)) dst = MacVelocity(vel.cells);
  for (int axis = 0; axis < 3; ++axis)
    advect(vel.component(axis), face_offset(axis), vel, dt, scheme, dst.component(axis));
}

}  // namespace dcdm::sim
