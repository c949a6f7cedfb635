// The built-in smoke scenes (plume, bunny, sphere), scaled to the grid.
#include <algorithm>
#include <numbers>

#include <fmt/format.h>

#include "dcdm/error.hpp"
#include "dcdm/sim.hpp"

namespace dcdm::sim {

std::vector<std::string> scene_names() { return {"plume", "bunny", "sphere"}; }

SimConfig make_scene(const std::string& name, Dims dims, std::uint64_t seed,
                     const Field<std::uint8_t>* bunny_solid) {
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
  c.buoyancy_temperature = 0.02 * s;
  c.buoyancy_density = 0.004 * s;
  c.ambient_temperature = 0.0;
  c.temperature_decay = 0.01;
  c.vorticity = 0.0;
  c.faces[static_cast<int>(Face::ZMax)] = FaceBoundary::Open;  // smoke leaves at the top

  SmokeSource src;
  src.radius = std::max(2.0, 0.09 * n);
  src.height = std::max(2.0, 0.05 * dims.nz);
  src.centre = {0.5 * dims.nx, 0.5 * dims.ny, 0.05 * dims.nz + 0.5 * src.height};
  src.density = 1.0;
  src.temperature = 1.0;
  src.velocity = {0.0, 0.0, 0.6 * s};
  src.noise = 0.25;
  src.jitter = 0.02 * n;
  c.sources.push_back(src);

  if (name == "bunny") {
    if (!bunny_solid || !(bunny_solid->dims() == dims))
      throw InputError("--scene bunny: the voxelised bunny is missing or has other dimensions");
    c.static_solid = *bunny_solid;
  } else if (name == "sphere") {
    MovingSphere sphere;
    sphere.radius = std::max(2.0, 0.12 * n);
    sphere.centre = {0.5 * dims.nx, 0.5 * dims.ny, 0.55 * dims.nz};
    sphere.amplitude = {0.25 * dims.nx, 0.0, 0.0};
    sphere.period = 100.0;  // frames
    sphere.phase = {0.0, 0.0, 0.0};
    c.spheres.push_back(sphere);
  }
  return c;
}

}  // namespace dcdm::sim
