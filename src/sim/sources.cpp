// Smoke sources, moving obstacles and the counter-based noise they use.
#include <cmath>
#include <numbers>

#include "dcdm/sim.hpp"

namespace dcdm::sim {
namespace {

inline std::uint64_t splitmix64(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

double hash_uniform(std::uint64_t seed, std::int64_t frame, std::uint64_t stream,
                    std::uint64_t index) {
  std::uint64_t h = splitmix64(seed);
  h = splitmix64(h ^ static_cast<std::uint64_t>(frame));
  h = splitmix64(h ^ stream);
  h = splitmix64(h ^ index);
  return double(h >> 11) * 0x1.0p-52 - 1.0;  // 53 random bits -> [-1, 1)
}

Vec3 MovingSphere::centre_at(double t) const {
  if (period <= 0.0) return centre;
  const double w = 2.0 * std::numbers::pi / period;
  return {centre.x + amplitude.x * std::sin(w * t + phase.x),
          centre.y + amplitude.y * std::sin(w * t + phase.y),
          centre.z + amplitude.z * std::sin(w * t + phase.z)};
}

Vec3 MovingSphere::velocity_at(double t) const {
  if (period <= 0.0) return {};
  const double w = 2.0 * std::numbers::pi / period;
  return {amplitude.x * w * std::cos(w * t + phase.x), amplitude.y * w * std::cos(w * t + phase.y),
          amplitude.z * w * std::cos(w * t + phase.z)};
}

}  // namespace dcdm::sim
