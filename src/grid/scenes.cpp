// Built-in scenes (see include/dcdm/scenes.hpp).
#include "dcdm/scenes.hpp"

#include <algorithm>
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

// Box with walls, top open or not.
Domain walled_box(const Dims& d, bool open_top) {
  Domain dom(d, CellType::Fluid);
  if (open_top) dom.set_face(Face::ZMax, FaceBoundary::Open);
  return dom;
}

// Calls f(i, j, k, x, y, z) for every cell, with the cell-centre coordinates in cell units.
template <class F>
void for_each_cell(const Dims& d, F f) {
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j)
      for (int i = 0; i < d.nx; ++i) f(i, j, k, i + 0.5, j + 0.5, k + 0.5);
}

void solid_sphere(Domain& dom, double cx, double cy, double cz, double r) {
  for_each_cell(dom.dims(), [&](int i, int j, int k, double x, double y, double z) {
    if ((x - cx) * (x - cx) + (y - cy) * (y - cy) + (z - cz) * (z - cz) < r * r) dom.cells(i, j, k) = CellType::Solid;
  });
}

void solid_box(Domain& dom, std::array<double, 3> lo, std::array<double, 3> hi) {
  for_each_cell(dom.dims(), [&](int i, int j, int k, double x, double y, double z) {
    if (x > lo[0] && x < hi[0] && y > lo[1] && y < hi[1] && z > lo[2] && z < hi[2])
      dom.cells(i, j, k) = CellType::Solid;
  });
}

Domain mesh_scene(const SceneSpec& spec, const Params& p, const TriangleMesh& mesh, nlohmann::json& info) {
  const Dims d = spec.dims;
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
  Field<std::uint8_t> inside = voxelise_mesh(mesh, d, pl, &report);
  Domain dom = walled_box(d, p.flag("open_top"));
  for (std::int64_t c = 0; c < d.size(); ++c)
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

Domain pool_scene(const SceneSpec& spec, const Params& p, Random& rng) {
  const Dims d = spec.dims;
  const double L = std::min({d.nx, d.ny, d.nz});
  const double depth = p.fraction("depth", 0.0, 1.0) * d.nz;
  const double amplitude = p.fraction("amplitude", 0.0, 0.5) * d.nz;
  const double waves = p["waves"];
  const double max_waves = 0.5 * std::max(d.nx, d.ny);  // two cells a period at least
  if (!(waves >= 0 && waves <= max_waves))
    throw InputError(fmt::format("--param waves={:g}: must lie in [0, {:g}] at this grid size", waves, max_waves));
  const double phase = rng.uniform(0, 2 * std::numbers::pi);
  const double angle = rng.uniform(0.15, 0.6);  // wave direction, off the axes
  Domain dom(d, CellType::Air);
  dom.set_face(Face::ZMax, FaceBoundary::Open);
  for_each_cell(d, [&](int i, int j, int k, double x, double y, double z) {
    const double s = (x / d.nx) * std::cos(angle) + (y / d.ny) * std::sin(angle);
    const double surface = depth + amplitude * std::sin(2 * std::numbers::pi * waves * s + phase);
    if (z < surface) dom.cells(i, j, k) = CellType::Fluid;
  });
  if (p.flag("drop")) {
    const double r = p.fraction("drop_radius", 0.0, 0.5) * L;
    const double cx = rng.uniform(0.3, 0.7) * d.nx, cy = rng.uniform(0.3, 0.7) * d.ny;
    const double cz = std::min(d.nz - r - 1.0, depth + amplitude + 2.0 * r + 1.0);
    for_each_cell(d, [&](int i, int j, int k, double x, double y, double z) {
      if ((x - cx) * (x - cx) + (y - cy) * (y - cy) + (z - cz) * (z - cz) < r * r) dom.cells(i, j, k) = CellType::Fluid;
    });
  }
  if (p.flag("pillar")) {
    const double half = 0.08 * L;
    const double cx = 0.3 * d.nx, cy = 0.6 * d.ny;
    solid_box(dom, {cx - half, cy - half, -1.0}, {cx + half, cy + half, std::min<double>(d.nz, depth + amplitude + 0.15 * d.nz)});
  }
  return dom;
}

}  // namespace

Domain make_scene(const SceneSpec& spec, nlohmann::json* info_out) {
  const Params p = resolve_parameters(spec);
  const Dims d = spec.dims;
  check_min_dims(d);
  if (spec.mesh && spec.name != "mesh" && spec.name != "bunny")
    throw InputError(fmt::format("--mesh is only used by the scenes mesh and bunny, not by {}", spec.name));
  nlohmann::json info;
  info["name"] = spec.name;
  info["seed"] = spec.seed;
  info["parameters"] = p.values;
  info["warnings"] = nlohmann::json::array();
  Random rng(spec.seed);
  const double L = std::min({d.nx, d.ny, d.nz});
  Domain dom;
  if (spec.name == "box" || spec.name == "plume") {
    dom = walled_box(d, p.flag("open_top"));
  } else if (spec.name == "sphere") {
    dom = walled_box(d, p.flag("open_top"));
    solid_sphere(dom, p.fraction("cx", 0, 1) * d.nx, p.fraction("cy", 0, 1) * d.ny, p.fraction("cz", 0, 1) * d.nz,
                 p.fraction("radius", 0, 1) * L);
  } else if (spec.name == "obstacles") {
    dom = walled_box(d, p.flag("open_top"));
    const double count = p["count"];
    if (!(count >= 0 && count <= 1000 && count == std::floor(count)))
      throw InputError(fmt::format("--param count={:g}: must be a whole number in [0, 1000]", count));
    const double smin = p.fraction("min_size", 0.0, 0.5) * L, smax = p.fraction("max_size", 0.0, 0.5) * L;
    if (smin > smax) throw InputError("--param min_size must not exceed max_size");
    nlohmann::json shapes = nlohmann::json::array();
    for (int o = 0; o < static_cast<int>(count); ++o) {
      const double s = rng.uniform(smin, smax);
      // Keep the top fifth free so that the open face stays reachable from most of the fluid.
      const double cx = rng.uniform(0.1, 0.9) * d.nx, cy = rng.uniform(0.1, 0.9) * d.ny;
      const double cz = rng.uniform(0.1, 0.75) * d.nz;
      if (rng.uniform(0, 1) < 0.5) {
        solid_sphere(dom, cx, cy, cz, s);
        shapes.push_back({{"shape", "sphere"}, {"centre", {cx, cy, cz}}, {"radius", s}});
      } else {
        const double hx = s * rng.uniform(0.5, 1.2), hy = s * rng.uniform(0.5, 1.2), hz = s * rng.uniform(0.5, 1.2);
        solid_box(dom, {cx - hx, cy - hy, cz - hz}, {cx + hx, cy + hy, cz + hz});
        shapes.push_back({{"shape", "box"}, {"min", {cx - hx, cy - hy, cz - hz}}, {"max", {cx + hx, cy + hy, cz + hz}}});
      }
    }
    info["obstacles"] = shapes;
  } else if (spec.name == "bunny") {
    if (spec.mesh) {
      info["mesh_file"] = spec.mesh->string();
      dom = mesh_scene(spec, p, load_mesh(*spec.mesh), info);
    } else {
      info["mesh_file"] = "data/meshes/bunny.obj (compiled in)";
      dom = mesh_scene(spec, p, bunny_mesh(), info);
    }
  } else if (spec.name == "pool") {
    dom = pool_scene(spec, p, rng);
  } else if (spec.name == "mesh") {
    if (!spec.mesh) throw InputError("--scene mesh needs --mesh FILE (an OBJ, PLY or STL file)");
    info["mesh_file"] = spec.mesh->string();
    dom = mesh_scene(spec, p, load_mesh(*spec.mesh), info);
  }
  const std::int64_t sealed = remove_sealed_fluid_cells(dom);
  info["sealed_fluid_cells_removed"] = sealed;
  const std::int64_t fluid = dom.count(CellType::Fluid);
  if (fluid == 0)
    throw InputError(fmt::format("scene {} at {} has no fluid cells (check --param values and --dims)", spec.name,
                                 d.str()));
  info["cells"] = {{"fluid", fluid}, {"air", dom.count(CellType::Air)}, {"solid", dom.count(CellType::Solid)}};
  if (info_out) *info_out = std::move(info);
  return dom;
}

}  // namespace dcdm
