#pragma once
// Built-in pressure domains, parameterised and deterministic for a seed, at any nx x ny x nz:
// box, sphere, obstacles, bunny, pool, mesh (a user mesh file as the obstacle), and three
// weighted scenes whose Domain carries Coefficients (grid.hpp): liquid (a ghost-fluid free
// surface: diagonal terms 1/theta - 1 from a level set), cutcell (face weights = open area
// fractions of faces cut by a solid, Batty et al. 2007) and density (face weights 1/rho_face
// for blobs of another density). Each of these takes a cell size dx (scale 1/dx^2); `info`
// reports what the weights came out as (ghost_fluid, cut_cells, density).
// Lengths are given as fractions: of the smallest grid dimension for sizes, of each axis for
// positions. z is up; the top (z+) face is open unless a scene says otherwise.
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "dcdm/grid.hpp"

namespace dcdm {

struct SceneSpec {
  std::string name = "bunny";
  Dims dims{64, 64, 64};
  std::uint64_t seed = 0;
  std::optional<std::filesystem::path> mesh;  // the obstacle of "mesh"; replaces the bunny of "bunny"
  std::map<std::string, double> parameters;   // scene-specific, see scene_catalog()
};

struct SceneParameter {
  std::string name;
  double default_value;
  std::string description;
};
struct SceneInfo {
  std::string name;
  std::string description;
  std::vector<SceneParameter> parameters;
};

// Every built-in scene with its parameters (the default scene, "bunny", is listed first).
const std::vector<SceneInfo>& scene_catalog();
const SceneInfo& scene_info(const std::string& name);  // throws InputError for an unknown name
// Human-readable list for `--list-scenes`.
std::string scene_catalog_text();

// Builds the domain. Throws InputError for an unknown scene or parameter, a dimension below
// 4, a grid larger than 32-bit indices allow, a mesh that does not load, or a result with no
// fluid cell. Fluid cells left with no non-solid neighbour (sealed in by solid) become solid.
// `info` (optional) receives what was built: parameters used, cell counts, the mesh report.
Domain make_scene(const SceneSpec& spec, nlohmann::json* info = nullptr);
// The part of make_scene(spec) inside `box` (a box of spec.dims): equal cell for cell, face
// for face and weight for weight to crop(make_scene(spec), box) (grid.hpp), with memory and
// time proportional to the box (plus the mesh for bunny and mesh, whose every triangle is
// tested against the rays through the box's columns). For a distributed build: each rank asks
// for its (ghosted) box.
// - Random draws (obstacles, density blobs, pool waves) are made for the whole scene, in the
//   same order, before the box's cells are set.
// - Rules that look at neighbours (sealed fluid cells become solid, a cut cell with no open
//   face is solid, Domain::set_coefficients's check that no fluid row is zero) are applied
//   on the box and a margin of one cell, so the box's edge cells get the whole grid's answer.
// - Whether the part carries coefficients is global, as crop's is: a part of a weighted scene
//   is weighted even where its own weights are unit, and a part of a scene whose weights are
//   unit everywhere is not. A part whose own weights are unit finds out by searching the rest
//   of the grid near the scene's shapes only (liquid: its top layer and the cells next to each
//   part of the level set's surface; cutcell: the faces near each solid shape; density: near
//   each blob), which stops at the first weight that is not 1 (at a shape's centre unless the
//   shape is smaller than a few cells).
// - The "no fluid cells" check is the whole scene's: a part with no fluid cell is not an error
//   (the caller checks the total over its parts). Other InputErrors are make_scene's (and one
//   for a box that is empty or not inside the grid); a zero fluid row outside the box (which
//   no built-in scene makes) is not seen.
// `info` (optional): make_scene's description where it is global (name, parameters, seed,
// obstacles, blobs, mesh topology and placement, scale) with every count that of the part:
// cells, sealed cells removed, surface/cut/closed/interface faces and heavy cells of the box's
// cells and faces (crop's layout), smallest theta or open fraction among them; the mesh
// report's counts (inside cells, abstaining rays, disagreeing cells) are those of the cells
// and rays the part voxelised (the box and its margin of one cell, clipped to the grid).
// info["part"] = {lo, dims} of the box.
Domain make_scene_part(const SceneSpec& spec, const CellBox& box, nlohmann::json* info = nullptr);
// The liquid scene's level set at the cell centres (liquid where phi < 0, in cells), with the
// scene's parameters as make_scene reads them (--param depth=..., drop=1, ...), for rendering
// its surface. InputError for another scene.
Field<float> liquid_level_set(const SceneSpec& spec);

// "name=value" strings (e.g. from repeated --param) to a parameter map. InputError on syntax.
std::map<std::string, double> parse_scene_parameters(const std::vector<std::string>& items,
                                                     const std::string& option = "--param");

// Refuses dimensions below 4 cells (InputError naming `option`).
void check_min_dims(const Dims& dims, const std::string& option = "--n/--dims");

// Fluid cells whose six neighbours are all solid have an all-zero row; they become solid.
// Returns how many were changed.
std::int64_t remove_sealed_fluid_cells(Domain& domain);

}  // namespace dcdm
