// The built-in smoke scenes (plume, bunny, sphere), scaled to the grid.
#include <algorithm>
#include <cmath>
#include <numbers>

#include <fmt/format.h>

#include "dcdm/error.hpp"
#include "dcdm/scenes.hpp"
#include "dcdm/sim.hpp"

namespace dcdm::sim {

std::vector<std::string> scene_names() { return {"plume", "bunny", "sphere"}; }

std::map<std::string, double> default_bunny_placement() { return {{"scale", 0.5}, {"floor", 0.3}}; }

SimConfig make_scene(const std::string& name, Dims dims, std::uint64_t seed,
                     const Field<std::uint8_t>* bunny_solid, const std::filesystem::path* mesh,
                     const std::map<std::string, double>* bunny_parameters) {
  if (name != "plume" && name != "bunny" && name != "sphere")
    throw InputError(fmt::format("--scene: unknown scene '{}' (known: plume, bunny, sphere)", name));
  if (std::min({dims.nx, dims.ny, dims.nz}) < 8)
    throw InputError(fmt::format("--n/--dims: {} is too small for a smoke scene (at least 8 cells a side)",
                                 dims.str()));
  SimConfig c;
  c.dims = dims;
  c.seed = seed;
  c.dt = 1.0;
  // Speeds in cells per frame scale with the box so that runs at different resolutions look
  // alike (the same number of frames fills the box).
  const double n = std::min({dims.nx, dims.ny, dims.nz});
  const double s = dims.nz / 64.0;
  c.buoyancy_temperature = 0.05 * s;
  c.buoyancy_density = 0.004 * s;
  c.ambient_temperature = 0.0;
  c.temperature_decay = 0.005;
  c.vorticity = 0.0;
  c.faces[static_cast<int>(Face::ZMax)] = FaceBoundary::Open;  // smoke leaves at the top

  SmokeSource src;
  src.radius = std::max(2.0, 0.09 * n);
  src.height = std::max(2.0, 0.05 * dims.nz);
  src.centre = {0.5 * dims.nx, 0.5 * dims.ny, 0.05 * dims.nz + 0.5 * src.height};
  src.density = 1.0;
  src.temperature = 1.0;
  src.velocity = {0.0, 0.0, 1.0 * s};
  src.noise = 0.25;
  src.jitter = 0.02 * n;
  c.sources.push_back(src);

  if (mesh && name != "bunny")
    throw InputError(fmt::format("--mesh is only used by the bunny scene, not by {}", name));
  if (bunny_parameters && !bunny_parameters->empty() && name != "bunny")
    throw InputError(fmt::format("--param places the bunny scene's obstacle; the {} scene has none", name));
  if (name == "bunny" && bunny_solid) {
    if (!(bunny_solid->dims() == dims))
      throw InputError(fmt::format("--scene bunny: the obstacle mask is {}, the grid {}",
                                   bunny_solid->dims().str(), dims.str()));
    c.static_solid = *bunny_solid;
  } else if (name == "bunny") {
    SceneSpec spec;
    spec.name = "bunny";
    spec.dims = dims;
    spec.seed = 0;  // the obstacle is the same for every seed
    if (mesh) spec.mesh = *mesh;
    spec.parameters = default_bunny_placement();
    if (bunny_parameters)
      for (const auto& [key, value] : *bunny_parameters) spec.parameters[key] = value;
    const Domain obstacle = ::dcdm::make_scene(spec);
    c.static_solid = Field<std::uint8_t>(dims, 0);
    for (std::int64_t i = 0; i < dims.size(); ++i)
      c.static_solid[i] = obstacle.cells[i] == CellType::Solid ? 1 : 0;
  } else if (name == "sphere") {
    MovingSphere sphere;
    sphere.radius = std::max(2.0, 0.12 * n);
    sphere.centre = {0.5 * dims.nx, 0.5 * dims.ny, 0.55 * dims.nz};
    sphere.amplitude = {0.25 * dims.nx, 0.0, 0.0};
    sphere.period = 100.0;  // frames
    sphere.phase = {0.0, 0.0, 0.0};
    c.spheres.push_back(sphere);
  }
  // An obstacle over the nozzle would silently produce frames without smoke.
  if (c.static_solid.size() != 0) {
    std::int64_t in_source = 0, blocked = 0;
    for (int k = 0; k < dims.nz; ++k)
      for (int j = 0; j < dims.ny; ++j)
        for (int i = 0; i < dims.nx; ++i) {
          const double dx = i + 0.5 - src.centre.x, dy = j + 0.5 - src.centre.y;
          if (std::abs(k + 0.5 - src.centre.z) > 0.5 * src.height ||
              dx * dx + dy * dy > src.radius * src.radius)
            continue;
          ++in_source;
          blocked += c.static_solid(i, j, k) ? 1 : 0;
        }
    if (2 * blocked > in_source)
      throw InputError(fmt::format(
          "--scene {}: the obstacle covers {} of the {} cells of the smoke source near the floor; "
          "lift it (the built-in bunny stands at 0.3 nz)",
          name, blocked, in_source));
  }
  return c;
}

}  // namespace dcdm::sim
