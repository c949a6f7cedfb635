#pragma once
// Random voxel domains for tests: every cell type and face type appears, so every flag
// pattern a stencil or network can meet is exercised.
#include <cstdint>
#include <random>

#include "dcdm/grid.hpp"
#include "dcdm/linalg.hpp"

namespace dcdm::testing {

// Another operator's apply and nothing else: the LinearOperator defaults (apply_dot,
// apply_dot_single, residual_dot, ...) over it, to compare with the operator's own versions.
struct ApplyOnly final : LinearOperator {
  const LinearOperator& inner;
  explicit ApplyOnly(const LinearOperator& op) : inner(op) {}
  std::int64_t size() const override { return inner.size(); }
  void apply(dcdm::span<const double> x, dcdm::span<double> y) const override { inner.apply(x, y); }
};

// Each cell is solid with probability `solid`, air with probability `air`, fluid otherwise;
// each domain face is a wall or open with equal probability.
inline Domain random_domain(Dims d, std::uint64_t seed, double solid = 0.2, double air = 0.1) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  Domain dom(d);
  for (std::int64_t c = 0; c < d.size(); ++c) {
    const double r = u(rng);
    dom.cells[c] = r < solid ? CellType::Solid : r < solid + air ? CellType::Air : CellType::Fluid;
  }
  for (int f = 0; f < 6; ++f) dom.faces[f] = u(rng) < 0.5 ? FaceBoundary::Wall : FaceBoundary::Open;
  return dom;
}

}  // namespace dcdm::testing
