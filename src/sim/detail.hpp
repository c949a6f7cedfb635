#pragma once
// Internals shared by src/sim (not a public header).
#include <cstdint>

namespace dcdm::sim::detail {

// Loops over fewer cells than this run on one thread: on small grids (tests, 16^3) the cost
// of waking and joining OpenMP threads exceeds the work, badly so on a loaded machine.
// Results do not depend on it (no reductions in these loops).
inline constexpr std::int64_t kParallelCells = std::int64_t(1) << 15;

}  // namespace dcdm::sim::detail
