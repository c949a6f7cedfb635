#include "dcdm/grid.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

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

// ---------------------------------------------------------------- coefficients

std::array<std::int64_t, 3> Coefficients::face_sizes(const Dims& d) {
  return {std::int64_t(d.nx + 1) * d.ny * d.nz, std::int64_t(d.nx) * (d.ny + 1) * d.nz,
          std::int64_t(d.nx) * d.ny * (d.nz + 1)};
}

bool Coefficients::unit() const {
  const auto ones = [](const std::vector<double>& v) {
    return std::all_of(v.begin(), v.end(), [](double w) { return w == 1.0; });
  };
  return scale == 1.0 && ones(face_x) && ones(face_y) && ones(face_z) &&
         std::all_of(diagonal.begin(), diagonal.end(), [](double v) { return v == 0.0; });
}

namespace {

// Index of the face on the low side of cell (i, j, k) along `axis` in that axis's MAC array.
std::int64_t face_index(const Dims& d, int axis, int i, int j, int k) {
  switch (axis) {
    case 0: return i + std::int64_t(d.nx + 1) * (j + std::int64_t(d.ny) * k);
    case 1: return i + std::int64_t(d.nx) * (j + std::int64_t(d.ny + 1) * k);
    default: return i + std::int64_t(d.nx) * (j + std::int64_t(d.ny) * k);
  }
}

}  // namespace

double Coefficients::weight(const Dims& d, int i, int j, int k, Face f) const {
  const int fi = static_cast<int>(f), axis = fi / 2;
  const std::vector<double>& a = axis == 0 ? face_x : axis == 1 ? face_y : face_z;
  if (a.empty()) return 1.0;
  // The high face of a cell is the low face of the next cell along the axis.
  const int up = fi % 2;
  return a[static_cast<std::size_t>(face_index(d, axis, i + (axis == 0) * up, j + (axis == 1) * up, k + (axis == 2) * up))];
}

void Coefficients::check(const Dims& d) const {
  const auto sizes = face_sizes(d);
  const char* names[3] = {"face_x", "face_y", "face_z"};
  const std::vector<double>* arrays[3] = {&face_x, &face_y, &face_z};
  if (!(std::isfinite(scale) && scale > 0.0))
    throw InputError(fmt::format("coefficients: scale {} must be a positive finite number", scale));
  for (int axis = 0; axis < 3; ++axis) {
    const std::vector<double>& a = *arrays[axis];
    if (a.empty()) continue;
    const int ex = d.nx + (axis == 0), ey = d.ny + (axis == 1), ez = d.nz + (axis == 2);
    if (static_cast<std::int64_t>(a.size()) != sizes[axis])
      throw InputError(fmt::format("coefficients: {} has {} values, a {} grid needs {} ({}x{}x{} faces)", names[axis],
                                   a.size(), d.str(), sizes[axis], ex, ey, ez));
    for (std::size_t n = 0; n < a.size(); ++n)
      if (!(std::isfinite(a[n]) && a[n] >= 0.0)) {
        const std::int64_t i = std::int64_t(n) % ex, j = (std::int64_t(n) / ex) % ey, k = std::int64_t(n) / (std::int64_t(ex) * ey);
        throw InputError(fmt::format("coefficients: {} at face ({}, {}, {}) is {} (weights must be finite and >= 0)",
                                     names[axis], i, j, k, a[n]));
      }
  }
  if (!diagonal.empty()) {
    if (static_cast<std::int64_t>(diagonal.size()) != d.size())
      throw InputError(fmt::format("coefficients: diagonal has {} values, a {} grid has {} cells", diagonal.size(),
                                   d.str(), d.size()));
    for (std::size_t n = 0; n < diagonal.size(); ++n)
      if (!(std::isfinite(diagonal[n]) && diagonal[n] >= 0.0)) {
        const std::int64_t c = static_cast<std::int64_t>(n);
        throw InputError(fmt::format("coefficients: diagonal at cell ({}, {}, {}) is {} (must be finite and >= 0)",
                                     c % d.nx, (c / d.nx) % d.ny, c / (std::int64_t(d.nx) * d.ny), diagonal[n]));
      }
  }
}

void Domain::set_coefficients(Coefficients c) {
  const Dims d = dims();
  c.check(d);
  if (c.unit()) {
    coefficients.reset();
    return;
  }
  // A fluid cell whose every open face has weight 0 and no diagonal term would have an
  // all-zero row: no equation, which the weights made by mistake (the geometry says fluid).
  static constexpr int di[6] = {-1, 1, 0, 0, 0, 0}, dj[6] = {0, 0, -1, 1, 0, 0}, dk[6] = {0, 0, 0, 0, -1, 1};
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j)
      for (int i = 0; i < d.nx; ++i) {
        const std::int64_t n = d.index(i, j, k);
        if (cells[n] != CellType::Fluid) continue;
        if (!c.diagonal.empty() && c.diagonal[static_cast<std::size_t>(n)] > 0.0) continue;
        bool open_face = false, row = false;
        for (int f = 0; f < 6 && !row; ++f) {
          const int a = i + di[f], b = j + dj[f], e = k + dk[f];
          const bool solid = d.contains(a, b, e) ? cells(a, b, e) == CellType::Solid : faces[f] == FaceBoundary::Wall;
          if (solid) continue;
          open_face = true;
          row = c.weight(d, i, j, k, static_cast<Face>(f)) > 0.0;
        }
        if (open_face && !row)
          throw InputError(fmt::format("coefficients: fluid cell ({}, {}, {}) has weight 0 on every face to a "
                                       "non-solid neighbour and no diagonal term, so its row of A is zero (make it "
                                       "solid, or give a face a positive weight)",
                                       i, j, k));
      }
  coefficients = std::make_shared<const Coefficients>(std::move(c));
}

// ---------------------------------------------------------------- parts of a domain

bool CellBox::inside(const Dims& d) const {
  const int n[3] = {d.nx, d.ny, d.nz}, m[3] = {size.nx, size.ny, size.nz};
  for (int a = 0; a < 3; ++a)
    if (lo[a] < 0 || m[a] <= 0 || lo[a] > n[a] - m[a]) return false;
  return true;
}

Domain crop(const Domain& whole, const CellBox& box) {
  const Dims d = whole.dims(), s = box.size;
  if (!box.inside(d))
    throw InputError(fmt::format("crop: box {} at ({}, {}, {}) is not inside the {} grid", s.str(), box.lo[0],
                                 box.lo[1], box.lo[2], d.str()));
  Domain part(s);
  part.faces = whole.faces;
  const auto [x0, y0, z0] = box.lo;
  for (int k = 0; k < s.nz; ++k)
    for (int j = 0; j < s.ny; ++j) {
      const CellType* row = &whole.cells(x0, y0 + j, z0 + k);
      std::copy(row, row + s.nx, &part.cells(0, j, k));
    }
  if (!whole.weighted()) return part;
  const Coefficients& c = *whole.coefficients;
  Coefficients p;
  p.scale = c.scale;
  // Face array of `axis`: the part's faces are those of the whole grid from the box's low
  // side to its high side inclusive along that axis.
  for (int axis = 0; axis < 3; ++axis) {
    const std::vector<double>& a = axis == 0 ? c.face_x : axis == 1 ? c.face_y : c.face_z;
    std::vector<double>& out = axis == 0 ? p.face_x : axis == 1 ? p.face_y : p.face_z;
    if (a.empty()) continue;
    const int ex = s.nx + (axis == 0), ey = s.ny + (axis == 1), ez = s.nz + (axis == 2);
    out.resize(static_cast<std::size_t>(std::int64_t(ex) * ey * ez));
    for (int k = 0; k < ez; ++k)
      for (int j = 0; j < ey; ++j) {
        const std::int64_t from = face_index(d, axis, x0, y0 + j, z0 + k);
        std::copy(a.begin() + from, a.begin() + from + ex, out.begin() + std::int64_t(ex) * (j + std::int64_t(ey) * k));
      }
  }
  if (!c.diagonal.empty()) {
    p.diagonal.resize(static_cast<std::size_t>(s.size()));
    for (int k = 0; k < s.nz; ++k)
      for (int j = 0; j < s.ny; ++j) {
        const std::int64_t from = d.index(x0, y0 + j, z0 + k);
        std::copy(c.diagonal.begin() + from, c.diagonal.begin() + from + s.nx, p.diagonal.begin() + s.index(0, j, k));
      }
  }
  part.coefficients = std::make_shared<const Coefficients>(std::move(p));
  return part;
}

}  // namespace dcdm
