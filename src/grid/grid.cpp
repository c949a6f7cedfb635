#include "dcdm/grid.hpp"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

#include "dcdm/error.hpp"

namespace dcdm {

std::string Dims::str() const { return fmt::format("{}x{}x{}", nx, ny, nz); }

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
  if (v.size() == 1) return {v[0], v[0], v[0]};
  if (v.size() == 3) return {v[0], v[1], v[2]};
  throw InputError(fmt::format("{}: expected N or NX,NY,NZ, got '{}'", what, text));
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
