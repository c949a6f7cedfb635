#include "dcdm/grid.hpp"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

#include "dcdm/error.hpp"

namespace dcdm {

std::string Dims::str() const { return fmt::format("{}x{}x{}", nx, ny, nz); }

void check_grid_dims(const Dims& d, const std::string& what) {
  if (d.nx <= 0 || d.ny <= 0 || d.nz <= 0)
    throw InputError(fmt::format("{}: grid {}x{}x{} has an axis that is not positive", what, d.nx, d.ny, d.nz));
  // Each factor is below 2^31, so every partial product below is exact in 64 bits.
  const std::int64_t plane = std::int64_t(d.nx) * d.ny;
  if (plane > kMaxGridCells || plane * d.nz > kMaxGridCells)
    throw InputError(fmt::format("{}: grid {}x{}x{} has more than the {} cells that 32-bit matrix indices allow", what,
                                 d.nx, d.ny, d.nz, kMaxGridCells));
}

Dims parse_dims(const std::string& text, const std::string& what) {
  std::vector<int> v;
  const char* p = text.data();
  const char* end = p + text.size();
  while (p < end) {
    int value = 0;
    auto [next, ec] = std::from_chars(p, end, value);
    if (ec != std::errc() || value <= 0)
      throw InputError(fmt::format("{}: '{}' is not a positive integer or NX,NY,NZ", what, text));
    v.push_back(value);
    p = next;
    if (p < end) {
      if (*p != ',' && *p != 'x' && *p != 'X')
        throw InputError(fmt::format("{}: unexpected '{}' in '{}'", what, *p, text));
      ++p;
      if (p == end) throw InputError(fmt::format("{}: trailing separator in '{}'", what, text));
    }
  }
  Dims d;
  if (v.size() == 1) d = {v[0], v[0], v[0]};
  else if (v.size() == 3) d = {v[0], v[1], v[2]};
  else throw InputError(fmt::format("{}: expected N or NX,NY,NZ, got '{}'", what, text));
  check_grid_dims(d, what);
  return d;
}

const char* to_string(CellType t) {
  switch (t) {
    case CellType::Solid: return "solid";
    case CellType::Fluid: return "fluid";
    case CellType::Air: return "air";
  }
  return "invalid";
}

const char* to_string(Face f) {
  static const char* names[] = {"x-", "x+", "y-", "y+", "z-", "z+"};
  return names[static_cast<int>(f)];
}

std::int64_t Domain::count(CellType t) const {
  return std::count(cells.vector().begin(), cells.vector().end(), t);
}

}  // namespace dcdm
