// Built-in scenes (see include/dcdm/scenes.hpp).
#include "dcdm/scenes.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <limits>
#include <numbers>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "dcdm/error.hpp"
#include "dcdm/mesh.hpp"

namespace dcdm {

const std::vector<SceneInfo>& scene_catalog() {
  static const std::vector<SceneInfo> catalog = {
      {"bunny",
       "the Stanford bunny (data/meshes/bunny.obj) as a solid obstacle on the floor of a walled box with "
       "an open top (the default scene)",
       {{"scale", 0.6, "size of the bunny's placement box, fraction of the smallest dimension"},
        {"cx", 0.5, "centre of the placement box in x, fraction of nx"},
        {"cy", 0.5, "centre of the placement box in y, fraction of ny"},
        {"floor", 0.0, "height the bunny stands on, fraction of nz"},
        {"up", 1, "the mesh axis that points up (0 = x, 1 = y, 2 = z)"},
        {"open_top", 1, "1: the z+ face is open (Dirichlet), 0: wall"}}},
      {"box",
       "an empty box: walls on five sides, open top (the smoke-plume domain); open_top=0 closes it "
       "(pure Neumann, singular)",
       {{"open_top", 1, "1: the z+ face is open (Dirichlet), 0: wall"}}},
      {"plume",
       "the smoke plume's domain: the empty box (walls on five sides, open top), the same system as box",
       {{"open_top", 1, "1: the z+ face is open (Dirichlet), 0: wall"}}},
      {"sphere",
       "a solid sphere in a walled box with an open top",
       {{"radius", 0.2, "radius, fraction of the smallest dimension"},
        {"cx", 0.5, "centre x, fraction of nx"},
        {"cy", 0.5, "centre y, fraction of ny"},
        {"cz", 0.4, "centre z, fraction of nz"},
        {"open_top", 1, "1: the z+ face is open (Dirichlet), 0: wall"}}},
      {"obstacles",
       "several solid spheres and boxes, placed at random from the seed, in a walled box with an open top",
       {{"count", 6, "number of obstacles"},
        {"min_size", 0.08, "smallest obstacle radius / half-width, fraction of the smallest dimension"},
        {"max_size", 0.18, "largest obstacle radius / half-width, fraction of the smallest dimension"},
        {"open_top", 1, "1: the z+ face is open (Dirichlet), 0: wall"}}},
      {"pool",
       "a free-surface pool: water in a walled basin with air cells above (Dirichlet inside the domain), "
       "a wavy surface and a falling drop",
       {{"depth", 0.45, "mean water depth, fraction of nz"},
        {"amplitude", 0.05, "surface wave amplitude, fraction of nz"},
        {"waves", 1.5, "number of surface wave periods across the basin"},
        {"drop", 1, "1: a spherical drop of water in the air above the surface"},
        {"drop_radius", 0.08, "drop radius, fraction of the smallest dimension"},
        {"pillar", 0, "1: a solid pillar standing in the pool and piercing the surface"}}},
      {"liquid",
       "a liquid with a ghost-fluid free surface (weighted): a pool, a falling drop and/or a dam-break "
       "column as a level set phi (liquid where phi < 0, air above) in a walled box with an open top; each "
       "liquid-air face adds 1/theta - 1 to the liquid cell's diagonal, theta = phi_liquid / (phi_liquid - "
       "phi_air)",
       {{"depth", 0.4, "pool depth, fraction of nz (0: no pool)"},
        {"drop", 1, "1: a spherical drop of liquid in the air"},
        {"drop_radius", 0.12, "drop radius, fraction of the smallest dimension"},
        {"drop_x", 0.5, "drop centre x, fraction of nx"},
        {"drop_y", 0.5, "drop centre y, fraction of ny"},
        {"drop_z", 0.75, "drop centre z, fraction of nz"},
        {"column", 0, "width of a dam-break liquid column against the x- wall, fraction of nx (0: none)"},
        {"column_height", 0.8, "height of the dam-break column, fraction of nz"},
        {"theta_min", 0.01, "smallest theta (the ghost-fluid term is at most 1/theta_min - 1), in (0, 1]"},
        {"dx", 1, "cell size: the operator is scaled by 1/dx^2"}}},
      {"cutcell",
       "cut cells (weighted): a solid sphere, a horizontal cylinder and an optional floor slab cut the "
       "cells of a walled box with an open top; each face weighs its open (non-solid) area fraction "
       "(Batty, Bertails and Bridson 2007), a cell with no open face is solid",
       {{"radius", 0.2, "sphere radius, fraction of the smallest dimension (0: none)"},
        {"cx", 0.5, "sphere centre x, fraction of nx"},
        {"cy", 0.5, "sphere centre y, fraction of ny"},
        {"cz", 0.4, "sphere centre z, fraction of nz"},
        {"cylinder", 0.08,
         "radius of a solid cylinder along y through x = 0.2 nx, z = 0.75 nz, fraction of the smallest "
         "dimension (0: none)"},
        {"floor", 0, "height of a solid floor slab, fraction of nz (0: none)"},
        {"samples", 0,
         "0: face fractions from the solid's signed distance at the face corners (exact for planes); "
         "N in 1..64: N x N point samples per cut face"},
        {"min_fraction", 0,
         "open fractions below this are closed (weight 0), in [0, 1); 0 keeps them all (slivers of "
         "~1e-6 make A ill-conditioned)"},
        {"open_top", 1, "1: the z+ face is open (Dirichlet), 0: wall"},
        {"weights", 1, "1: open-fraction face weights; 0: the same cells with unit weights (the voxelised geometry)"},
        {"dx", 1, "cell size: the operator is scaled by 1/dx^2"}}},
      {"density",
       "variable density (weighted): spherical blobs of density `ratio`, placed at random from the seed, in "
       "an ambient fluid of density 1, in a walled box with an open top; each face weighs 1/rho_face, "
       "rho_face the arithmetic mean of the two cells' densities",
       {{"ratio", 1000, "density inside the blobs over the ambient density, in [1e-6, 1e6]"},
        {"blobs", 2, "number of blobs"},
        {"radius", 0.15, "blob radius, fraction of the smallest dimension"},
        {"open_top", 1, "1: the z+ face is open (Dirichlet), 0: wall"},
        {"dx", 1, "cell size: the operator is scaled by 1/dx^2"}}},
      {"mesh",
       "a user mesh (--mesh FILE: OBJ, PLY, STL or anything assimp reads) as a solid obstacle, placed like "
       "the bunny",
       {{"scale", 0.6, "size of the placement box, fraction of the smallest dimension"},
        {"cx", 0.5, "centre of the placement box in x, fraction of nx"},
        {"cy", 0.5, "centre of the placement box in y, fraction of ny"},
        {"floor", 0.0, "height the mesh stands on, fraction of nz"},
        {"up", 1, "the mesh axis that points up (0 = x, 1 = y, 2 = z)"},
        {"open_top", 1, "1: the z+ face is open (Dirichlet), 0: wall"}}},
  };
  return catalog;
}

const SceneInfo& scene_info(const std::string& name) {
  for (const auto& s : scene_catalog())
    if (s.name == name) return s;
  std::string names;
  for (const auto& s : scene_catalog()) names += (names.empty() ? "" : ", ") + s.name;
  throw InputError(fmt::format("--scene: unknown scene '{}' (known: {})", name, names));
}

std::string scene_catalog_text() {
  std::string out;
  for (const auto& s : scene_catalog()) {
    out += fmt::format("{}\n    {}\n", s.name, s.description);
    for (const auto& p : s.parameters)
      out += fmt::format("    --param {:<18} {}\n", fmt::format("{}={:g}", p.name, p.default_value), p.description);
  }
  return out;
}

std::map<std::string, double> parse_scene_parameters(const std::vector<std::string>& items,
                                                     const std::string& option) {
  std::map<std::string, double> out;
  for (const auto& item : items) {
    const auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == item.size())
      throw InputError(fmt::format("{}: expected NAME=VALUE, got '{}'", option, item));
    const std::string name = item.substr(0, eq), text = item.substr(eq + 1);
    double value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(value))
      throw InputError(fmt::format("{}: '{}' is not a finite number in '{}'", option, text, item));
    out[name] = value;
  }
  return out;
}

void check_min_dims(const Dims& d, const std::string& option) {
  if (d.nx < 4 || d.ny < 4 || d.nz < 4)
    throw InputError(fmt::format("{}: grid {} is too small: every dimension needs at least 4 cells", option, d.str()));
  check_grid_dims(d, option);
}

std::int64_t remove_sealed_fluid_cells(Domain& domain) {
  const Dims d = domain.dims();
  std::int64_t changed = 0;
  auto open = [&](int i, int j, int k, Face f) {
    if (!d.contains(i, j, k)) return domain.face(f) == FaceBoundary::Open;
    return domain.cells(i, j, k) != CellType::Solid;
  };
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j)
      for (int i = 0; i < d.nx; ++i) {
        if (domain.cells(i, j, k) != CellType::Fluid) continue;
        if (open(i - 1, j, k, Face::XMin) || open(i + 1, j, k, Face::XMax) || open(i, j - 1, k, Face::YMin) ||
            open(i, j + 1, k, Face::YMax) || open(i, j, k - 1, Face::ZMin) || open(i, j, k + 1, Face::ZMax))
          continue;
        domain.cells(i, j, k) = CellType::Solid;  // a solid cell cannot reopen a fluid one
        ++changed;
      }
  return changed;
}

namespace {

// Deterministic across platforms (the standard distributions are implementation-defined).
class Random {
 public:
  explicit Random(std::uint64_t seed) : rng_(seed ^ 0x9E3779B97F4A7C15ull) {}
  double uniform(double lo, double hi) { return lo + (hi - lo) * (double(rng_() >> 11) * 0x1.0p-53); }

 private:
  std::mt19937_64 rng_;
};

struct Params {
  const SceneInfo& info;
  std::map<std::string, double> values;
  double operator[](const std::string& name) const { return values.at(name); }
  double fraction(const std::string& name, double lo, double hi) const {
    const double v = values.at(name);
    if (!(v >= lo && v <= hi))
      throw InputError(fmt::format("--param {}={:g}: must lie in [{:g}, {:g}] for scene {}", name, v, lo, hi, info.name));
    return v;
  }
  bool flag(const std::string& name) const {
    const double v = values.at(name);
    if (v != 0.0 && v != 1.0) throw InputError(fmt::format("--param {}={:g}: must be 0 or 1", name, v));
    return v == 1.0;
  }
};

Params resolve_parameters(const SceneSpec& spec) {
  const SceneInfo& info = scene_info(spec.name);
  Params p{info, {}};
  for (const auto& def : info.parameters) p.values[def.name] = def.default_value;
  for (const auto& [name, value] : spec.parameters) {
    if (!p.values.count(name)) {
      std::string known;
      for (const auto& def : info.parameters) known += (known.empty() ? "" : ", ") + def.name;
      throw InputError(fmt::format("--param {}: scene {} has no such parameter (known: {})", name, spec.name, known));
    }
    p.values[name] = value;
  }
  return p;
}

// The cells a build covers: a box of the grid, stored from its first cell (x fastest). Each
// cell's and face's value is computed from the scene's global geometry at its global indices
// alone, so a region's values equal the whole grid's there; rules that look at neighbours see
// the right ones in the region's interior (one cell in from the sides the grid cuts).
struct Region {
  Dims grid;
  CellBox box;

  const Dims& size() const { return box.size; }
  bool whole() const { return box.lo == std::array<int, 3>{0, 0, 0} && box.size == grid; }
  // Whether side f (Face order) lies inside the grid rather than on its boundary.
  bool cut_side(int f) const {
    const int axis = f / 2, n[3] = {grid.nx, grid.ny, grid.nz}, s[3] = {box.size.nx, box.size.ny, box.size.nz};
    return f % 2 == 0 ? box.lo[axis] > 0 : box.lo[axis] + s[axis] < n[axis];
  }
};

// `box` grown by `margin` cells on every side, clipped to the grid.
CellBox grown(const CellBox& box, int margin, const Dims& grid) {
  const int n[3] = {grid.nx, grid.ny, grid.nz}, s[3] = {box.size.nx, box.size.ny, box.size.nz};
  CellBox out;
  int size[3];
  for (int a = 0; a < 3; ++a) {
    out.lo[a] = std::max(0, box.lo[a] - margin);
    size[a] = std::min(n[a], box.lo[a] + s[a] + margin) - out.lo[a];
  }
  out.size = Dims{size[0], size[1], size[2]};
  return out;
}

bool in_box(const CellBox& b, int i, int j, int k) {
  return i >= b.lo[0] && j >= b.lo[1] && k >= b.lo[2] && i < b.lo[0] + b.size.nx && j < b.lo[1] + b.size.ny &&
         k < b.lo[2] + b.size.nz;
}

// Whether face (i, j, k) of the MAC array along `axis` (global indices) is one of the box's
// own faces (crop's layout: both sides of the box along the axis included).
bool box_has_face(const CellBox& b, int axis, int i, int j, int k) {
  const int g[3] = {i, j, k}, s[3] = {b.size.nx, b.size.ny, b.size.nz};
  for (int a = 0; a < 3; ++a)
    if (g[a] < b.lo[a] || g[a] >= b.lo[a] + s[a] + (a == axis)) return false;
  return true;
}

// Inclusive index ranges along x, y and z, for searches over cells or face nodes.
struct IndexBox {
  std::array<int, 3> lo, hi;
};

// The indices i (cell or node i spans [i, i+1] along the axis) within `pad` of the coordinates
// [from, to] along each axis, clipped to [0, top].
IndexBox index_box(std::array<double, 3> from, std::array<double, 3> to, int pad, std::array<int, 3> top) {
  IndexBox b;
  for (int a = 0; a < 3; ++a) {
    // Clamped before the conversion so that no coordinate overflows an int.
    const double lo = std::clamp(std::floor(from[a]), -1.0, double(top[a]) + 1);
    const double hi = std::clamp(std::floor(to[a]), -1.0, double(top[a]) + 1);
    b.lo[a] = std::max(0, static_cast<int>(lo) - pad);
    b.hi[a] = std::min(top[a], static_cast<int>(hi) + pad);
  }
  return b;
}

// Whether f(i, j, k) holds for some index of the boxes, visited in order, stopping at the first.
template <class F>
bool any_index(const std::vector<IndexBox>& boxes, F f) {
  for (const auto& b : boxes)
    for (int k = b.lo[2]; k <= b.hi[2]; ++k)
      for (int j = b.lo[1]; j <= b.hi[1]; ++j)
        for (int i = b.lo[0]; i <= b.hi[0]; ++i)
          if (f(i, j, k)) return true;
  return false;
}

// The region's domain filled with `fill`, walls on every side of the grid but an open top
// when `open_top`.
Domain region_domain(const Region& r, CellType fill, bool open_top) {
  Domain dom(r.size(), fill);
  if (open_top) dom.set_face(Face::ZMax, FaceBoundary::Open);
  return dom;
}

// Attaches co (the region's coefficients, in its own layout) as the whole grid's
// Domain::set_coefficients would: checked, every fluid row non-zero, and dropped when the
// whole scene's coefficients are unit. That last test is global: a region whose own values
// are unit asks whole_is_weighted() (a search of the rest of the grid for a weight that is not
// 1). The row check of a region's cells on the sides the grid cuts runs with those sides open,
// so that a cell whose only flow goes out of the region is not refused for want of it (those
// cells are cropped away; the part's cells see their real neighbours).
template <class F>
void attach_coefficients(Domain& dom, const Region& region, Coefficients co, F whole_is_weighted) {
  if (region.whole()) {
    dom.set_coefficients(std::move(co));
    return;
  }
  if (co.unit()) {
    // Unit weights leave no fluid row empty that has a non-solid neighbour: nothing to check
    // beyond the values.
    co.check(dom.dims());
    if (whole_is_weighted()) dom.coefficients = std::make_shared<const Coefficients>(std::move(co));
    return;
  }
  const auto faces = dom.faces;
  for (int f = 0; f < 6; ++f)
    if (region.cut_side(f)) dom.faces[f] = FaceBoundary::Open;
  dom.set_coefficients(std::move(co));
  dom.faces = faces;
}

// Calls f(n, x, y, z) for every cell of the region: its index in the region and its centre in
// the grid's cell units.
template <class F>
void for_each_cell(const Region& r, F f) {
  const auto [x0, y0, z0] = r.box.lo;
  const Dims& s = r.size();
  for (int k = 0; k < s.nz; ++k)
    for (int j = 0; j < s.ny; ++j)
      for (int i = 0; i < s.nx; ++i) f(s.index(i, j, k), x0 + i + 0.5, y0 + j + 0.5, z0 + k + 0.5);
}

void solid_sphere(Domain& dom, const Region& r, double cx, double cy, double cz, double rad) {
  for_each_cell(r, [&](std::int64_t n, double x, double y, double z) {
    if ((x - cx) * (x - cx) + (y - cy) * (y - cy) + (z - cz) * (z - cz) < rad * rad) dom.cells[n] = CellType::Solid;
  });
}

void solid_box(Domain& dom, const Region& r, std::array<double, 3> lo, std::array<double, 3> hi) {
  for_each_cell(r, [&](std::int64_t n, double x, double y, double z) {
    if (x > lo[0] && x < hi[0] && y > lo[1] && y < hi[1] && z > lo[2] && z < hi[2]) dom.cells[n] = CellType::Solid;
  });
}

Domain obstacles_scene(const Region& region, const Params& p, Random& rng, nlohmann::json& info) {
  const Dims d = region.grid;
  const double L = std::min({d.nx, d.ny, d.nz});
  Domain dom = region_domain(region, CellType::Fluid, p.flag("open_top"));
  const double count = p["count"];
  if (!(count >= 0 && count <= 1000 && count == std::floor(count)))
    throw InputError(fmt::format("--param count={:g}: must be a whole number in [0, 1000]", count));
  const double smin = p.fraction("min_size", 0.0, 0.5) * L, smax = p.fraction("max_size", 0.0, 0.5) * L;
  if (smin > smax) throw InputError("--param min_size must not exceed max_size");
  // Every obstacle is drawn (in one order, whatever the region) before any is rasterised.
  struct Obstacle {
    bool sphere;
    std::array<double, 3> lo, hi;  // the box, or the sphere's centre in lo and radius in hi[0]
  };
  std::vector<Obstacle> obstacles;
  nlohmann::json shapes = nlohmann::json::array();
  for (int o = 0; o < static_cast<int>(count); ++o) {
    const double s = rng.uniform(smin, smax);
    // Keep the top fifth free so that the open face stays reachable from most of the fluid.
    const double cx = rng.uniform(0.1, 0.9) * d.nx, cy = rng.uniform(0.1, 0.9) * d.ny;
    const double cz = rng.uniform(0.1, 0.75) * d.nz;
    if (rng.uniform(0, 1) < 0.5) {
      obstacles.push_back({true, {cx, cy, cz}, {s, 0, 0}});
      shapes.push_back({{"shape", "sphere"}, {"centre", {cx, cy, cz}}, {"radius", s}});
    } else {
      const double hx = s * rng.uniform(0.5, 1.2), hy = s * rng.uniform(0.5, 1.2), hz = s * rng.uniform(0.5, 1.2);
      obstacles.push_back({false, {cx - hx, cy - hy, cz - hz}, {cx + hx, cy + hy, cz + hz}});
      shapes.push_back({{"shape", "box"}, {"min", {cx - hx, cy - hy, cz - hz}}, {"max", {cx + hx, cy + hy, cz + hz}}});
    }
  }
  for (const auto& o : obstacles) {
    if (o.sphere) solid_sphere(dom, region, o.lo[0], o.lo[1], o.lo[2], o.hi[0]);
    else solid_box(dom, region, o.lo, o.hi);
  }
  info["obstacles"] = shapes;
  return dom;
}

Domain mesh_scene(const Region& region, const Params& p, const TriangleMesh& mesh, nlohmann::json& info) {
  const Dims d = region.grid;
  const double L = std::min({d.nx, d.ny, d.nz});
  const double size = p.fraction("scale", 0.01, 1.0) * L;
  const double cx = p.fraction("cx", 0.0, 1.0) * d.nx, cy = p.fraction("cy", 0.0, 1.0) * d.ny;
  const double floor = p.fraction("floor", 0.0, 1.0) * d.nz;
  const double up = p["up"];
  if (up != 0 && up != 1 && up != 2) throw InputError(fmt::format("--param up={:g}: must be 0, 1 or 2", up));
  MeshPlacement pl;
  pl.box_min = {cx - size / 2, cy - size / 2, floor};
  pl.box_max = {cx + size / 2, cy + size / 2, floor + size};
  pl.up_axis = static_cast<int>(up);
  pl.rest_on_floor = true;
  VoxelisationReport report;
  Field<std::uint8_t> inside = voxelise_mesh_part(mesh, d, region.box, pl, &report);
  Domain dom = region_domain(region, CellType::Fluid, p.flag("open_top"));
  const std::int64_t cells = region.size().size();
#pragma omp parallel for schedule(static)
  for (std::int64_t c = 0; c < cells; ++c)
    if (inside[c]) dom.cells[c] = CellType::Solid;
  const auto& t = report.topology;
  info["mesh"] = {{"vertices", t.vertices},
                  {"triangles", t.triangles},
                  {"boundary_edges", t.boundary_edges},
                  {"non_manifold_edges", t.non_manifold_edges},
                  {"degenerate_triangles", t.degenerate_triangles},
                  {"watertight", t.watertight()},
                  {"voxelisation", report.method},
                  {"inside_cells", report.inside_cells},
                  {"abstaining_rays", report.abstaining_rays},
                  {"disagreeing_cells", report.disagreeing_cells},
                  {"placement_min", pl.box_min},
                  {"placement_max", pl.box_max}};
  if (!t.watertight())
    info["warnings"].push_back(fmt::format(
        "mesh is not watertight ({} open boundary edges, {} non-manifold edges): inside decided by a "
        "majority vote of rays along x, y and z ({} rays through holes abstained, {} cells with split votes)",
        t.boundary_edges, t.non_manifold_edges, report.abstaining_rays, report.disagreeing_cells));
  return dom;
}

Domain pool_scene(const Region& region, const Params& p, Random& rng) {
  const Dims d = region.grid;
  const double L = std::min({d.nx, d.ny, d.nz});
  const double depth = p.fraction("depth", 0.0, 1.0) * d.nz;
  const double amplitude = p.fraction("amplitude", 0.0, 0.5) * d.nz;
  const double waves = p["waves"];
  const double max_waves = 0.5 * std::max(d.nx, d.ny);  // two cells a period at least
  if (!(waves >= 0 && waves <= max_waves))
    throw InputError(fmt::format("--param waves={:g}: must lie in [0, {:g}] at this grid size", waves, max_waves));
  const double phase = rng.uniform(0, 2 * std::numbers::pi);
  const double angle = rng.uniform(0.15, 0.6);  // wave direction, off the axes
  Domain dom = region_domain(region, CellType::Air, true);
  for_each_cell(region, [&](std::int64_t n, double x, double y, double z) {
    const double s = (x / d.nx) * std::cos(angle) + (y / d.ny) * std::sin(angle);
    const double surface = depth + amplitude * std::sin(2 * std::numbers::pi * waves * s + phase);
    if (z < surface) dom.cells[n] = CellType::Fluid;
  });
  if (p.flag("drop")) {
    const double r = p.fraction("drop_radius", 0.0, 0.5) * L;
    const double cx = rng.uniform(0.3, 0.7) * d.nx, cy = rng.uniform(0.3, 0.7) * d.ny;
    const double cz = std::min(d.nz - r - 1.0, depth + amplitude + 2.0 * r + 1.0);
    for_each_cell(region, [&](std::int64_t n, double x, double y, double z) {
      if ((x - cx) * (x - cx) + (y - cy) * (y - cy) + (z - cz) * (z - cz) < r * r) dom.cells[n] = CellType::Fluid;
    });
  }
  if (p.flag("pillar")) {
    const double half = 0.08 * L;
    const double cx = 0.3 * d.nx, cy = 0.6 * d.ny;
    solid_box(dom, region, {cx - half, cy - half, -1.0},
              {cx + half, cy + half, std::min<double>(d.nz, depth + amplitude + 0.15 * d.nz)});
  }
  return dom;
}

// ---- Weighted scenes: liquid (ghost fluid), cutcell (Batty et al. 2007), density ----------------
// Geometry is in cell units: cell (i, j, k) spans [i, i+1] x [j, j+1] x [k, k+1], its centre
// is (i + 0.5, j + 0.5, k + 0.5). Every loop over cells or faces computes each value from the
// geometry alone (no accumulation across cells), so the result does not depend on the thread
// count.

// Positive finite cell size -> the operator's scale 1/dx^2.
double scale_from_dx(const Params& p) {
  const double dx = p["dx"];
  if (!(dx >= 1e-6 && dx <= 1e6))
    throw InputError(fmt::format("--param dx={:g}: must lie in [1e-6, 1e6] for scene {}", dx, p.info.name));
  return 1.0 / (dx * dx);
}

double sphere_sdf(double x, double y, double z, const std::array<double, 4>& s) {
  return std::sqrt((x - s[0]) * (x - s[0]) + (y - s[1]) * (y - s[1]) + (z - s[2]) * (z - s[2])) - s[3];
}

// Signed distance to the quarter-plane region {u < a, v < b} (a 2-D box unbounded below).
double corner_sdf(double u, double v, double a, double b) {
  const double qu = u - a, qv = v - b;
  const double ou = std::max(qu, 0.0), ov = std::max(qv, 0.0);
  return std::sqrt(ou * ou + ov * ov) + std::min(std::max(qu, qv), 0.0);
}

// Extents of the MAC face array along `axis`: (nx+1, ny, nz), (nx, ny+1, nz) or (nx, ny, nz+1).
std::array<int, 3> face_extents(const Dims& d, int axis) {
  return {d.nx + (axis == 0), d.ny + (axis == 1), d.nz + (axis == 2)};
}

// The liquid's level set: the min of the pool (z - depth), the drop and the dam-break column.
struct LiquidLevelSet {
  bool pool = false, drop = false, column = false;
  double depth = 0;
  std::array<double, 4> sphere{};
  double column_width = 0, column_height = 0;
  double operator()(double x, double y, double z) const {
    double phi = std::numeric_limits<double>::infinity();
    if (pool) phi = z - depth;
    if (drop) phi = std::min(phi, sphere_sdf(x, y, z, sphere));
    if (column) phi = std::min(phi, corner_sdf(x, z, column_width, column_height));
    return phi;
  }
};

LiquidLevelSet liquid_level_set_of(const Dims& d, const Params& p) {
  const double L = std::min({d.nx, d.ny, d.nz});
  LiquidLevelSet ls;
  ls.depth = p.fraction("depth", 0.0, 1.0) * d.nz;
  ls.pool = ls.depth > 0;
  ls.drop = p.flag("drop");
  ls.sphere = {p.fraction("drop_x", 0, 1) * d.nx, p.fraction("drop_y", 0, 1) * d.ny,
               p.fraction("drop_z", 0, 1) * d.nz, p.fraction("drop_radius", 0, 1) * L};
  ls.column_width = p.fraction("column", 0.0, 1.0) * d.nx;
  ls.column_height = p.fraction("column_height", 0.0, 1.0) * d.nz;
  ls.column = ls.column_width > 0 && ls.column_height > 0;
  return ls;
}

// Ghost fluid (Gibou et al. 2002, Enright et al. 2003): p = 0 on the surface phi = 0, which
// crosses the segment between the liquid cell's centre and the air cell's centre at the
// fraction theta = phi_c / (phi_c - phi_n) from the liquid side; the face then couples with
// weight w / theta = w + w (1/theta - 1), the second part on the diagonal. Face weights are
// 1 here. Beyond the open top the level set is evaluated at the ghost cell's centre; where
// it is liquid there (phi_n < 0), the boundary value sits at that centre (theta = 1).
struct GhostFluid {
  const LiquidLevelSet& ls;
  const Dims& grid;
  std::array<FaceBoundary, 6> faces;
  double theta_min;

  struct Count {
    std::int64_t surface_faces = 0, clamped = 0;
    double smallest = 1.0;
  };
  bool liquid(int i, int j, int k) const { return ls(i + 0.5, j + 0.5, k + 0.5) < 0; }
  // The diagonal term of cell (i, j, k), a liquid cell (global indices); its surface faces
  // counted into `count`.
  double term(int i, int j, int k, Count& count) const {
    static constexpr int di[6] = {-1, 1, 0, 0, 0, 0}, dj[6] = {0, 0, -1, 1, 0, 0}, dk[6] = {0, 0, 0, 0, -1, 1};
    const double phi_c = ls(i + 0.5, j + 0.5, k + 0.5);
    double term = 0.0;
    for (int f = 0; f < 6; ++f) {
      const int a = i + di[f], b = j + dj[f], e = k + dk[f];
      const bool air = grid.contains(a, b, e) ? !liquid(a, b, e) : faces[f] == FaceBoundary::Open;
      if (!air) continue;
      const double phi_n = ls(a + 0.5, b + 0.5, e + 0.5);
      double theta = phi_n >= 0 ? phi_c / (phi_c - phi_n) : 1.0;
      ++count.surface_faces;
      if (theta < theta_min) {
        theta = theta_min;
        ++count.clamped;
      }
      theta = std::min(theta, 1.0);
      count.smallest = std::min(count.smallest, theta);
      term += 1.0 / theta - 1.0;  // times the face weight, 1
    }
    return term;
  }
  // Whether some liquid cell of the grid has a non-zero term. Such a cell has a neighbour of
  // the other sign (or the open top above it), so one of the level set's parts changes sign
  // between the two: the search visits the top layer and the cells near each part's surface
  // (the pool's plane, the drop's bounding box, the column's two sides), not the whole grid.
  bool any_term() const {
    if (theta_min >= 1.0) return false;  // every theta is clamped to 1
    const std::array<int, 3> top{grid.nx - 1, grid.ny - 1, grid.nz - 1};
    const double inf = std::numeric_limits<double>::infinity();
    std::vector<IndexBox> boxes;
    boxes.push_back(index_box({0, 0, double(grid.nz)}, {inf, inf, double(grid.nz)}, 1, top));
    if (ls.pool) boxes.push_back(index_box({0, 0, ls.depth}, {inf, inf, ls.depth}, 2, top));
    if (ls.column) {
      boxes.push_back(index_box({ls.column_width, 0, 0}, {ls.column_width, inf, ls.column_height}, 2, top));
      boxes.push_back(index_box({0, 0, ls.column_height}, {ls.column_width, inf, ls.column_height}, 2, top));
    }
    if (ls.drop) {
      const auto& s = ls.sphere;
      boxes.push_back(index_box({s[0] - s[3], s[1] - s[3], s[2] - s[3]}, {s[0] + s[3], s[1] + s[3], s[2] + s[3]}, 2, top));
    }
    Count unused;
    return any_index(boxes, [&](int i, int j, int k) { return liquid(i, j, k) && term(i, j, k, unused) > 0.0; });
  }
};

Domain liquid_scene(const Region& region, const Params& p, const CellBox& part, nlohmann::json& info) {
  const Dims d = region.grid;
  const LiquidLevelSet ls = liquid_level_set_of(d, p);
  const double theta_min = p["theta_min"];
  if (!(theta_min > 0 && theta_min <= 1))
    throw InputError(fmt::format("--param theta_min={:g}: must lie in (0, 1] for scene liquid", theta_min));
  const double scale = scale_from_dx(p);

  Domain dom = region_domain(region, CellType::Air, true);
  const GhostFluid ghost{ls, d, dom.faces, theta_min};
  const Dims s = region.size();
  const auto [x0, y0, z0] = region.box.lo;
  Coefficients c;
  c.scale = scale;
  c.diagonal.assign(static_cast<std::size_t>(s.size()), 0.0);
  std::int64_t surface_faces = 0, clamped = 0;
  double smallest = 1.0;
#pragma omp parallel for schedule(static) reduction(+ : surface_faces, clamped) reduction(min : smallest)
  for (int k = 0; k < s.nz; ++k)
    for (int j = 0; j < s.ny; ++j)
      for (int i = 0; i < s.nx; ++i) {
        const int gi = x0 + i, gj = y0 + j, gk = z0 + k;
        if (!ghost.liquid(gi, gj, gk)) continue;
        const std::int64_t n = s.index(i, j, k);
        dom.cells[n] = CellType::Fluid;
        GhostFluid::Count count;
        c.diagonal[static_cast<std::size_t>(n)] = ghost.term(gi, gj, gk, count);
        if (!in_box(part, gi, gj, gk)) continue;  // counted by the part it belongs to
        surface_faces += count.surface_faces;
        clamped += count.clamped;
        smallest = std::min(smallest, count.smallest);
      }
  attach_coefficients(dom, region, std::move(c), [&] { return ghost.any_term(); });
  info["ghost_fluid"] = {{"surface_faces", surface_faces},
                         {"clamped_faces", clamped},
                         {"theta_min", theta_min},
                         {"smallest_theta", smallest},
                         {"scale", scale}};
  return dom;
}

// Fraction of the segment [0, 1] where the linear interpolant of (a, b) is negative.
double fraction_negative(double a, double b) {
  if (a < 0 && b < 0) return 1.0;
  if (a < 0) return a / (a - b);
  if (b < 0) return b / (b - a);
  return 0.0;
}

// Fraction of a unit square where phi < 0, from its values at the corners in cyclic order:
// exact when phi is linear (a plane), second-order otherwise (marching squares; the saddle
// case is decided by the centre value, the mean of the corners).
double square_fraction_negative(double p0, double p1, double p2, double p3) {
  std::array<double, 4> q{p0, p1, p2, p3};
  const int n = (p0 < 0) + (p1 < 0) + (p2 < 0) + (p3 < 0);
  auto rotate = [&] { std::rotate(q.begin(), q.begin() + 1, q.end()); };
  switch (n) {
    case 0: return 0.0;
    case 4: return 1.0;
    case 1: {  // one negative corner: a triangle
      while (!(q[0] < 0)) rotate();
      return 0.5 * fraction_negative(q[0], q[3]) * fraction_negative(q[0], q[1]);
    }
    case 3: {  // one non-negative corner: the square less a triangle
      while (q[0] < 0) rotate();
      return 1.0 - 0.5 * (1.0 - fraction_negative(q[0], q[3])) * (1.0 - fraction_negative(q[0], q[1]));
    }
    default: {  // two
      while (!(q[0] < 0 && (q[1] < 0 || q[2] < 0))) rotate();
      if (q[1] < 0) return 0.5 * (fraction_negative(q[0], q[3]) + fraction_negative(q[1], q[2]));  // a trapezoid
      // Diagonally opposite negative corners q[0], q[2].
      if (0.25 * (q[0] + q[1] + q[2] + q[3]) < 0)  // connected through the centre: less two triangles
        return 1.0 - 0.5 * (1.0 - fraction_negative(q[1], q[0])) * (1.0 - fraction_negative(q[1], q[2])) -
               0.5 * (1.0 - fraction_negative(q[3], q[0])) * (1.0 - fraction_negative(q[3], q[2]));
      return 0.5 * fraction_negative(q[0], q[1]) * fraction_negative(q[0], q[3]) +
             0.5 * fraction_negative(q[2], q[1]) * fraction_negative(q[2], q[3]);
    }
  }
}

struct CutCellSolid {
  bool sphere_on = false, cylinder_on = false, floor_on = false;
  std::array<double, 4> sphere{};
  double cyl_x = 0, cyl_z = 0, cyl_r = 0, floor = 0;
  // Signed distance to the solid (negative inside): the min of the shapes' distances.
  double operator()(double x, double y, double z) const {
    double s = std::numeric_limits<double>::infinity();
    if (sphere_on) s = sphere_sdf(x, y, z, sphere);
    if (cylinder_on) s = std::min(s, std::sqrt((x - cyl_x) * (x - cyl_x) + (z - cyl_z) * (z - cyl_z)) - cyl_r);
    if (floor_on) s = std::min(s, z - floor);
    return s;
  }
};

// The face weights of the cutcell scene: open area fractions of the faces, from the solid's
// signed distance at the face's corners (`node(i, j, k)`, the solid at grid node (i, j, k))
// or from point samples.
struct CutCellFaces {
  const CutCellSolid& solid;
  int samples;
  double min_fraction;

  // Weight of the face at (i, j, k) along `axis` (global indices): the unit square spanned
  // from that node by the two other axes.
  template <class Node>
  double weight(int axis, int i, int j, int k, const Node& node) const {
    double f = open_fraction(axis, i, j, k, node);
    if (f < min_fraction) f = 0.0;
    return f;
  }
  template <class Node>
  double open_fraction(int axis, int i, int j, int k, const Node& node) const {
    const int u = (axis + 1) % 3, v = (axis + 2) % 3;
    const int ns = samples;
    if (ns == 0) {
      int a[3] = {i, j, k}, b[3] = {i, j, k}, c[3] = {i, j, k};
      a[u] += 1;
      b[u] += 1;
      b[v] += 1;
      c[v] += 1;
      return 1.0 - square_fraction_negative(node(i, j, k), node(a[0], a[1], a[2]), node(b[0], b[1], b[2]),
                                            node(c[0], c[1], c[2]));
    }
    double centre[3] = {double(i), double(j), double(k)};
    centre[u] += 0.5;
    centre[v] += 0.5;
    const double s = solid(centre[0], centre[1], centre[2]);
    if (std::abs(s) > 0.7072) return s > 0 ? 1.0 : 0.0;  // the face lies within sqrt(1/2) of its centre
    int open = 0;
    for (int b = 0; b < ns; ++b)
      for (int a = 0; a < ns; ++a) {
        double x[3] = {double(i), double(j), double(k)};
        x[u] += (a + 0.5) / ns;
        x[v] += (b + 0.5) / ns;
        open += solid(x[0], x[1], x[2]) >= 0;
      }
    return double(open) / (double(ns) * ns);
  }
  // Whether some face of the grid has a weight other than 1. Such a face has a point inside
  // one of the solid's shapes, so the search visits the faces near each shape (its centre
  // first, where a shape of any size has closed faces), not the whole grid.
  bool any_cut(const Dims& d) const {
    const std::array<int, 3> top{d.nx, d.ny, d.nz};  // node indices
    const double inf = std::numeric_limits<double>::infinity();
    std::vector<IndexBox> boxes;
    if (solid.floor_on) boxes.push_back(index_box({0, 0, 0}, {inf, inf, solid.floor}, 2, top));
    if (solid.sphere_on) {
      const auto& s = solid.sphere;
      boxes.push_back(index_box({s[0], s[1], s[2]}, {s[0], s[1], s[2]}, 1, top));
      boxes.push_back(index_box({s[0] - s[3], s[1] - s[3], s[2] - s[3]}, {s[0] + s[3], s[1] + s[3], s[2] + s[3]}, 2, top));
    }
    if (solid.cylinder_on) {
      boxes.push_back(index_box({solid.cyl_x, 0, solid.cyl_z}, {solid.cyl_x, 0, solid.cyl_z}, 1, top));
      boxes.push_back(index_box({solid.cyl_x - solid.cyl_r, 0, solid.cyl_z - solid.cyl_r},
                                {solid.cyl_x + solid.cyl_r, inf, solid.cyl_z + solid.cyl_r}, 2, top));
    }
    const auto node = [&](int i, int j, int k) { return solid(i, j, k); };
    return any_index(boxes, [&](int i, int j, int k) {
      for (int axis = 0; axis < 3; ++axis) {
        const auto e = face_extents(d, axis);
        if (i < e[0] && j < e[1] && k < e[2] && weight(axis, i, j, k, node) != 1.0) return true;
      }
      return false;
    });
  }
};

Domain cutcell_scene(const Region& region, const Params& p, const CellBox& part, nlohmann::json& info) {
  const Dims d = region.grid;
  const double L = std::min({d.nx, d.ny, d.nz});
  CutCellSolid solid;
  solid.sphere = {p.fraction("cx", 0, 1) * d.nx, p.fraction("cy", 0, 1) * d.ny, p.fraction("cz", 0, 1) * d.nz,
                  p.fraction("radius", 0, 1) * L};
  solid.sphere_on = solid.sphere[3] > 0;
  solid.cyl_r = p.fraction("cylinder", 0, 0.5) * L;
  solid.cyl_x = 0.2 * d.nx;
  solid.cyl_z = 0.75 * d.nz;
  solid.cylinder_on = solid.cyl_r > 0;
  solid.floor = p.fraction("floor", 0, 1) * d.nz;
  solid.floor_on = solid.floor > 0;
  const double samples = p["samples"];
  if (!(samples >= 0 && samples <= 64 && samples == std::floor(samples)))
    throw InputError(fmt::format("--param samples={:g}: must be a whole number in [0, 64]", samples));
  const int ns = static_cast<int>(samples);
  const double min_fraction = p["min_fraction"];
  if (!(min_fraction >= 0 && min_fraction < 1))
    throw InputError(fmt::format("--param min_fraction={:g}: must lie in [0, 1) for scene cutcell", min_fraction));
  const double scale = scale_from_dx(p);
  const CutCellFaces faces{solid, ns, min_fraction};
  const Dims s = region.size();
  const auto [x0, y0, z0] = region.box.lo;

  // The solid's signed distance at the region's grid nodes (the corners of its faces).
  const std::int64_t sx = s.nx + 1, sy = std::int64_t(s.ny + 1) * sx;
  std::vector<double> nodes;
  if (ns == 0) {
    nodes.resize(static_cast<std::size_t>(sy * (s.nz + 1)));
#pragma omp parallel for schedule(static)
    for (int k = 0; k <= s.nz; ++k)
      for (int j = 0; j <= s.ny; ++j)
        for (int i = 0; i <= s.nx; ++i)
          nodes[static_cast<std::size_t>(i + sx * j + sy * k)] = solid(x0 + i, y0 + j, z0 + k);
  }
  const auto node = [&](int i, int j, int k) {
    return nodes[static_cast<std::size_t>((i - x0) + sx * (j - y0) + sy * (k - z0))];
  };

  Coefficients co;
  co.scale = scale;
  std::vector<double>* arrays[3] = {&co.face_x, &co.face_y, &co.face_z};
  const auto sizes = Coefficients::face_sizes(s);
  std::int64_t cut = 0, closed = 0;
  double smallest = 1.0;
  for (int axis = 0; axis < 3; ++axis) {
    std::vector<double>& w = *arrays[axis];
    w.resize(static_cast<std::size_t>(sizes[axis]));
    const auto e = face_extents(s, axis);
#pragma omp parallel for schedule(static) reduction(+ : cut, closed) reduction(min : smallest)
    for (int k = 0; k < e[2]; ++k)
      for (int j = 0; j < e[1]; ++j)
        for (int i = 0; i < e[0]; ++i) {
          const int gi = x0 + i, gj = y0 + j, gk = z0 + k;
          const double f = faces.weight(axis, gi, gj, gk, node);
          w[static_cast<std::size_t>(i + std::int64_t(e[0]) * (j + std::int64_t(e[1]) * k))] = f;
          if (!box_has_face(part, axis, gi, gj, gk)) continue;  // counted by the part it belongs to
          if (f == 0.0) ++closed;
          else if (f < 1.0) {
            ++cut;
            smallest = std::min(smallest, f);
          }
        }
  }
  // A cell is solid when none of its faces that could carry flow (inner faces and open outer
  // faces; a wall carries none) has an open part. A fluid cell then has a face of positive
  // weight to a neighbour that is fluid too (the face is shared) or across an open face, so no
  // row is empty.
  Domain dom = region_domain(region, CellType::Fluid, p.flag("open_top"));
  const int nx = d.nx, ny = d.ny, nz = d.nz;
  std::int64_t solid_cells = 0;
#pragma omp parallel for schedule(static) reduction(+ : solid_cells)
  for (int k = 0; k < s.nz; ++k)
    for (int j = 0; j < s.ny; ++j)
      for (int i = 0; i < s.nx; ++i) {
        const int gi = x0 + i, gj = y0 + j, gk = z0 + k;
        bool open = false;
        for (int f = 0; f < 6 && !open; ++f) {
          const int axis = f / 2, up = f % 2;
          const int a = gi + (axis == 0) * up, b = gj + (axis == 1) * up, c = gk + (axis == 2) * up;
          const bool outer = (axis == 0 && (a == 0 || a == nx)) || (axis == 1 && (b == 0 || b == ny)) ||
                             (axis == 2 && (c == 0 || c == nz));
          if (outer && dom.faces[f] == FaceBoundary::Wall) continue;
          const auto e = face_extents(s, axis);
          open = (*arrays[axis])[static_cast<std::size_t>((a - x0) + std::int64_t(e[0]) * ((b - y0) + std::int64_t(e[1]) * (c - z0)))] > 0;
        }
        if (!open) {
          dom.cells[s.index(i, j, k)] = CellType::Solid;
          solid_cells += in_box(part, gi, gj, gk);
        }
      }
  // weights=0: the same cells with every face weight 1, the voxelised geometry that the cut
  // cells refine (for comparisons).
  const bool weighted = p.flag("weights");
  if (!weighted) co.face_x.clear(), co.face_y.clear(), co.face_z.clear();
  attach_coefficients(dom, region, std::move(co), [&] { return weighted && faces.any_cut(d); });
  info["cut_cells"] = {{"method", ns == 0 ? "corners" : fmt::format("{}x{} samples", ns, ns)},
                       {"weights", weighted},
                       {"min_fraction", min_fraction},
                       {"solid_cells", solid_cells},
                       {"cut_faces", cut},
                       {"closed_faces", closed},
                       {"smallest_open_fraction", cut ? smallest : 1.0},
                       {"scale", scale}};
  return dom;
}

Domain density_scene(const Region& region, const Params& p, Random& rng, const CellBox& part, nlohmann::json& info) {
  const Dims d = region.grid;
  const double L = std::min({d.nx, d.ny, d.nz});
  const double ratio = p["ratio"];
  if (!(ratio >= 1e-6 && ratio <= 1e6))
    throw InputError(fmt::format("--param ratio={:g}: must lie in [1e-6, 1e6] for scene density", ratio));
  const double count = p["blobs"];
  if (!(count >= 0 && count <= 1000 && count == std::floor(count)))
    throw InputError(fmt::format("--param blobs={:g}: must be a whole number in [0, 1000]", count));
  const double r = p.fraction("radius", 0.0, 0.5) * L;
  const double scale = scale_from_dx(p);
  std::vector<std::array<double, 4>> blobs;
  nlohmann::json shapes = nlohmann::json::array();
  for (int b = 0; b < static_cast<int>(count); ++b) {
    const double cx = rng.uniform(0.2, 0.8) * d.nx, cy = rng.uniform(0.2, 0.8) * d.ny;
    const double cz = rng.uniform(0.2, 0.7) * d.nz;
    blobs.push_back({cx, cy, cz, r});
    shapes.push_back({{"centre", {cx, cy, cz}}, {"radius", r}});
  }
  const auto in_blob = [&](int i, int j, int k) {
    for (const auto& s : blobs)
      if (sphere_sdf(i + 0.5, j + 0.5, k + 0.5, s) < 0) return true;
    return false;
  };
  // 1 where the cell's centre is inside a blob (density `ratio`), 0 in the ambient fluid: on
  // the region and one cell around it (the far cells of its faces), clipped to the grid.
  const CellBox halo = grown(region.box, 1, d);
  const Dims h = halo.size;
  std::vector<std::uint8_t> heavy(static_cast<std::size_t>(h.size()), 0);
  std::int64_t heavy_cells = 0;
#pragma omp parallel for schedule(static) reduction(+ : heavy_cells)
  for (int k = 0; k < h.nz; ++k)
    for (int j = 0; j < h.ny; ++j)
      for (int i = 0; i < h.nx; ++i) {
        const int gi = halo.lo[0] + i, gj = halo.lo[1] + j, gk = halo.lo[2] + k;
        if (!in_blob(gi, gj, gk)) continue;
        heavy[static_cast<std::size_t>(h.index(i, j, k))] = 1;
        heavy_cells += in_box(part, gi, gj, gk);
      }
  // Face weight 1/rho_face with rho_face = (rho_a + rho_b) / 2, the arithmetic mean of the two
  // cells' densities, as most variable-density and two-phase codes do (Bridson's book; the
  // density is a conserved, volume-averaged quantity, and the face's control volume is half in
  // each cell). In terms of the coefficient beta = 1/rho this is the harmonic mean of the two
  // cells' betas, the flux-continuous average for a density jump between them, so a face next
  // to a heavy cell stays heavy: weight 2/(1 + ratio), not ~1/2 as the harmonic mean of rho
  // (the arithmetic mean of beta) would make it, which would let the light fluid leak
  // through the heavy blob's skin. Beyond the open top is ambient fluid (density 1).
  const auto rho = [&](int i, int j, int k) {
    if (!d.contains(i, j, k)) return 1.0;
    return heavy[static_cast<std::size_t>(h.index(i - halo.lo[0], j - halo.lo[1], k - halo.lo[2]))] ? ratio : 1.0;
  };
  Coefficients co;
  co.scale = scale;
  std::vector<double>* arrays[3] = {&co.face_x, &co.face_y, &co.face_z};
  const Dims s = region.size();
  const auto [x0, y0, z0] = region.box.lo;
  const auto sizes = Coefficients::face_sizes(s);
  std::int64_t interface_faces = 0;
  for (int axis = 0; axis < 3; ++axis) {
    std::vector<double>& w = *arrays[axis];
    w.resize(static_cast<std::size_t>(sizes[axis]));
    const auto e = face_extents(s, axis);
#pragma omp parallel for schedule(static) reduction(+ : interface_faces)
    for (int k = 0; k < e[2]; ++k)
      for (int j = 0; j < e[1]; ++j)
        for (int i = 0; i < e[0]; ++i) {
          const int gi = x0 + i, gj = y0 + j, gk = z0 + k;
          const double ra = rho(gi - (axis == 0), gj - (axis == 1), gk - (axis == 2)), rb = rho(gi, gj, gk);
          w[static_cast<std::size_t>(i + std::int64_t(e[0]) * (j + std::int64_t(e[1]) * k))] = 2.0 / (ra + rb);
          interface_faces += ra != rb && box_has_face(part, axis, gi, gj, gk);
        }
  }
  // Whether some face of the grid weighs other than 1: only a face next to a heavy cell can,
  // so the search visits the blobs' bounding boxes (each blob's centre first).
  const auto any_heavy_face = [&] {
    const std::array<int, 3> top{d.nx, d.ny, d.nz};  // face indices reach n along their axis
    std::vector<IndexBox> boxes;
    for (const auto& b : blobs) boxes.push_back(index_box({b[0], b[1], b[2]}, {b[0], b[1], b[2]}, 1, top));
    for (const auto& b : blobs)
      boxes.push_back(index_box({b[0] - b[3], b[1] - b[3], b[2] - b[3]}, {b[0] + b[3], b[1] + b[3], b[2] + b[3]}, 2, top));
    const auto rho_at = [&](int i, int j, int k) { return d.contains(i, j, k) && in_blob(i, j, k) ? ratio : 1.0; };
    return any_index(boxes, [&](int i, int j, int k) {
      for (int axis = 0; axis < 3; ++axis) {
        const auto e = face_extents(d, axis);
        if (i < e[0] && j < e[1] && k < e[2] &&
            2.0 / (rho_at(i - (axis == 0), j - (axis == 1), k - (axis == 2)) + rho_at(i, j, k)) != 1.0)
          return true;
      }
      return false;
    });
  };
  Domain dom = region_domain(region, CellType::Fluid, p.flag("open_top"));
  attach_coefficients(dom, region, std::move(co), any_heavy_face);
  info["density"] = {{"ratio", ratio},
                     {"blobs", shapes},
                     {"heavy_cells", heavy_cells},
                     {"interface_faces", interface_faces},
                     {"face_density", "arithmetic mean"},
                     {"scale", scale}};
  return dom;
}

}  // namespace

Field<float> liquid_level_set(const SceneSpec& spec) {
  if (spec.name != "liquid")
    throw InputError(fmt::format("scene {} has no liquid level set (the liquid scene has)", spec.name));
  const Params p = resolve_parameters(spec);
  check_min_dims(spec.dims);
  const Dims d = spec.dims;
  const LiquidLevelSet ls = liquid_level_set_of(d, p);
  Field<float> phi(d, 0.0f);
#pragma omp parallel for schedule(static)
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j)
      for (int i = 0; i < d.nx; ++i) {
        // Far from every liquid part (a pool of depth 0 and no drop or column: +inf) a large
        // positive value, so that the field stays finite.
        const double v = ls(i + 0.5, j + 0.5, k + 0.5);
        phi(i, j, k) = static_cast<float>(std::min(v, 1e6));
      }
  return phi;
}

namespace {

// The checks that make_scene and make_scene_part share, before any scene is built.
Params checked_parameters(const SceneSpec& spec) {
  Params p = resolve_parameters(spec);
  check_min_dims(spec.dims);
  if (spec.mesh && spec.name != "mesh" && spec.name != "bunny")
    throw InputError(fmt::format("--mesh is only used by the scenes mesh and bunny, not by {}", spec.name));
  return p;
}

// The scene on the cells of `region` (every value as the whole grid's build has it there; the
// cells of the region's edge on the sides the grid cuts not yet final); counts in `info`
// are those of `part`'s cells and faces.
Domain build_scene(const SceneSpec& spec, const Params& p, const Region& region, const CellBox& part,
                   nlohmann::json& info) {
  const Dims d = spec.dims;
  info["name"] = spec.name;
  info["seed"] = spec.seed;
  info["parameters"] = p.values;
  info["warnings"] = nlohmann::json::array();
  Random rng(spec.seed);
  const double L = std::min({d.nx, d.ny, d.nz});
  Domain dom;
  if (spec.name == "box" || spec.name == "plume") {
    dom = region_domain(region, CellType::Fluid, p.flag("open_top"));
  } else if (spec.name == "sphere") {
    dom = region_domain(region, CellType::Fluid, p.flag("open_top"));
    solid_sphere(dom, region, p.fraction("cx", 0, 1) * d.nx, p.fraction("cy", 0, 1) * d.ny,
                 p.fraction("cz", 0, 1) * d.nz, p.fraction("radius", 0, 1) * L);
  } else if (spec.name == "obstacles") {
    dom = obstacles_scene(region, p, rng, info);
  } else if (spec.name == "bunny") {
    if (spec.mesh) {
      info["mesh_file"] = spec.mesh->string();
      dom = mesh_scene(region, p, load_mesh(*spec.mesh), info);
    } else {
      info["mesh_file"] = "data/meshes/bunny.obj (compiled in)";
      dom = mesh_scene(region, p, bunny_mesh(), info);
    }
  } else if (spec.name == "pool") {
    dom = pool_scene(region, p, rng);
  } else if (spec.name == "liquid") {
    dom = liquid_scene(region, p, part, info);
  } else if (spec.name == "cutcell") {
    dom = cutcell_scene(region, p, part, info);
  } else if (spec.name == "density") {
    dom = density_scene(region, p, rng, part, info);
  } else if (spec.name == "mesh") {
    if (!spec.mesh) throw InputError("--scene mesh needs --mesh FILE (an OBJ, PLY or STL file)");
    info["mesh_file"] = spec.mesh->string();
    dom = mesh_scene(region, p, load_mesh(*spec.mesh), info);
  }
  return dom;
}

// Cells of type t in box b of the domain.
std::int64_t count_cells(const Domain& dom, const CellBox& b, CellType t) {
  std::int64_t n = 0;
  for (int k = 0; k < b.size.nz; ++k)
    for (int j = 0; j < b.size.ny; ++j) {
      const CellType* row = &dom.cells(b.lo[0], b.lo[1] + j, b.lo[2] + k);
      n += std::count(row, row + b.size.nx, t);
    }
  return n;
}

nlohmann::json cell_counts(const Domain& dom) {
  return {{"fluid", dom.count(CellType::Fluid)}, {"air", dom.count(CellType::Air)}, {"solid", dom.count(CellType::Solid)}};
}

}  // namespace

Domain make_scene(const SceneSpec& spec, nlohmann::json* info_out) {
  const Params p = checked_parameters(spec);
  const Dims d = spec.dims;
  const CellBox all{{0, 0, 0}, d};
  nlohmann::json info;
  Domain dom = build_scene(spec, p, Region{d, all}, all, info);
  const std::int64_t sealed = remove_sealed_fluid_cells(dom);
  info["sealed_fluid_cells_removed"] = sealed;
  const std::int64_t fluid = dom.count(CellType::Fluid);
  if (fluid == 0)
    throw InputError(fmt::format("scene {} at {} has no fluid cells (check --param values and --dims)", spec.name,
                                 d.str()));
  info["cells"] = cell_counts(dom);
  if (info_out) *info_out = std::move(info);
  return dom;
}

Domain make_scene_part(const SceneSpec& spec, const CellBox& box, nlohmann::json* info_out) {
  const Params p = checked_parameters(spec);
  const Dims d = spec.dims;
  if (!box.inside(d))
    throw InputError(fmt::format("scene part: box {} at ({}, {}, {}) is not inside the {} grid", box.size.str(),
                                 box.lo[0], box.lo[1], box.lo[2], d.str()));
  // Removing sealed fluid cells and checking rows look at the six neighbours: the part's edge
  // cells see theirs in a margin of one cell.
  const Region region{d, grown(box, 1, d)};
  nlohmann::json info;
  Domain dom = build_scene(spec, p, region, box, info);
  const CellBox inner{{box.lo[0] - region.box.lo[0], box.lo[1] - region.box.lo[1], box.lo[2] - region.box.lo[2]},
                      box.size};
  const std::int64_t fluid_before = count_cells(dom, inner, CellType::Fluid);
  remove_sealed_fluid_cells(dom);
  Domain part = region.box.size == box.size ? std::move(dom) : crop(dom, inner);
  info["sealed_fluid_cells_removed"] = fluid_before - part.count(CellType::Fluid);
  info["cells"] = cell_counts(part);
  info["part"] = {{"lo", box.lo}, {"dims", {box.size.nx, box.size.ny, box.size.nz}}};
  if (info_out) *info_out = std::move(info);
  return part;
}

}  // namespace dcdm

