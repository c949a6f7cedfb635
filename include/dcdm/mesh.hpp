#pragma once
// Triangle meshes as obstacles: loading (assimp: OBJ, PLY, STL, ...), topology checks and a
// robust voxelisation.
//
// Voxelisation: parity ray casting along x, y and z through every cell centre, with a
// majority vote per cell. A ray's crossings are found by testing the ray against each
// triangle's projection with a consistent tie-breaking (top-left) rule, so a ray through a
// shared edge or vertex of a closed mesh counts exactly one crossing. A ray with an odd
// number of crossings (it went through a hole of a mesh that is not watertight) abstains;
// a ray that passes through two holes can still be wrong, which the vote over three
// directions outvotes. For a watertight mesh all three directions agree.
#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "dcdm/grid.hpp"

namespace dcdm {

struct TriangleMesh {
  std::vector<std::array<double, 3>> vertices;
  std::vector<std::array<std::int32_t, 3>> triangles;
  std::array<double, 3> min_corner() const;
  std::array<double, 3> max_corner() const;
};

// Loads every mesh of the file (node transforms applied), triangulated, and welds vertices
// at identical positions (STL stores each triangle's corners separately). Throws InputError
// naming the file when it cannot be read or holds no triangles.
TriangleMesh load_mesh(const std::filesystem::path& path);

struct MeshTopology {
  std::int64_t vertices = 0, triangles = 0, edges = 0;
  std::int64_t boundary_edges = 0;      // used by one triangle: holes
  std::int64_t non_manifold_edges = 0;  // used by three or more triangles
  std::int64_t degenerate_triangles = 0;
  bool watertight() const { return boundary_edges == 0 && non_manifold_edges == 0; }
};
MeshTopology analyse_topology(const TriangleMesh& mesh);

// Where the mesh goes, in grid cell units (cell (i,j,k) spans [i, i+1] x ...). The mesh is
// scaled uniformly to fit the box and centred in it; `up_axis` (0 = x, 1 = y, 2 = z) of the
// mesh is mapped to grid z; when `rest_on_floor` the mesh sits on the box's lower z face.
struct MeshPlacement {
  std::array<double, 3> box_min{}, box_max{};
  int up_axis = 2;
  bool rest_on_floor = true;
};

struct VoxelisationReport {
  MeshTopology topology;
  std::int64_t inside_cells = 0;
  std::int64_t abstaining_rays = 0;    // rays with an odd crossing count (through holes)
  std::int64_t disagreeing_cells = 0;  // cells where the three directions did not agree
  std::string method;
};

// Marks the cells whose centres lie inside the placed mesh (1 = inside).
Field<std::uint8_t> voxelise_mesh(const TriangleMesh& mesh, const Dims& dims, const MeshPlacement& placement,
                                  VoxelisationReport* report = nullptr);
// The cells of `box` (a box of the grid `dims`; InputError when it is not inside) of
// voxelise_mesh(mesh, dims, placement), equal cell for cell: only the rays through the box's
// columns are cast, each with its crossings along the whole line. Memory and time scale with
// the box and the mesh. The report's counts (inside cells, abstaining rays, disagreeing cells)
// are those of the box's cells and rays.
Field<std::uint8_t> voxelise_mesh_part(const TriangleMesh& mesh, const Dims& dims, const CellBox& box,
                                       const MeshPlacement& placement, VoxelisationReport* report = nullptr);

// The mesh after placement (vertices in grid cell units), for inspection and tests.
TriangleMesh place_mesh(const TriangleMesh& mesh, const MeshPlacement& placement);

// The Stanford bunny of data/meshes/bunny.obj, compiled into the library (y up) so that the
// default scene needs no data files at run time. A test checks it against the OBJ file.
const TriangleMesh& bunny_mesh();

// A closed, consistently oriented box / icosphere, for tests and simple obstacles.
TriangleMesh make_box_mesh(std::array<double, 3> lo, std::array<double, 3> hi);
TriangleMesh make_sphere_mesh(std::array<double, 3> centre, double radius, int subdivisions);

}  // namespace dcdm
