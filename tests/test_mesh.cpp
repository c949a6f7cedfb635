// Meshes: loading through assimp, topology, voxelisation exactness and robustness.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "dcdm/error.hpp"
#include "dcdm/mesh.hpp"

using namespace dcdm;
namespace fs = std::filesystem;

namespace {
// Identity placement: the box equals the mesh's bounding box, so coordinates are unchanged.
MeshPlacement identity_placement(const TriangleMesh& m) {
  MeshPlacement p;
  p.box_min = m.min_corner();
  p.box_max = m.max_corner();
  p.up_axis = 2;
  p.rest_on_floor = false;
  return p;
}
fs::path temp_dir() {
  const fs::path p = fs::temp_directory_path() / fmt::format("dcdm_test_mesh_{}", ::getpid());
  fs::create_directories(p);
  return p;
}
}  // namespace

TEST(Mesh, BuiltInBunnyEqualsTheShippedObjFile) {
  const TriangleMesh file = load_mesh(fs::path(DCDM_SOURCE_DIR) / "data/meshes/bunny.obj");
  const TriangleMesh& built_in = bunny_mesh();
  ASSERT_EQ(file.vertices.size(), built_in.vertices.size());
  ASSERT_EQ(file.triangles.size(), built_in.triangles.size());
  EXPECT_EQ(built_in.triangles.size(), 3674u);
  // assimp reads single precision and renumbers vertices: compare corner positions of each
  // triangle (face and corner order are kept), equal to float rounding.
  for (std::size_t t = 0; t < file.triangles.size(); ++t)
    for (int c = 0; c < 3; ++c)
      for (int a = 0; a < 3; ++a) {
        const double x = file.vertices[file.triangles[t][c]][a], y = built_in.vertices[built_in.triangles[t][c]][a];
        ASSERT_NEAR(x, y, 1e-6 * (1 + std::abs(y))) << "triangle " << t;
      }
}

TEST(Mesh, TopologyCountsHoles) {
  TriangleMesh box = make_box_mesh({0, 0, 0}, {1, 1, 1});
  MeshTopology t = analyse_topology(box);
  EXPECT_EQ(t.vertices, 8);
  EXPECT_EQ(t.triangles, 12);
  EXPECT_EQ(t.edges, 18);
  EXPECT_TRUE(t.watertight());
  box.triangles.pop_back();
  t = analyse_topology(box);
  EXPECT_EQ(t.boundary_edges, 3);
  EXPECT_FALSE(t.watertight());
  TriangleMesh sphere = make_sphere_mesh({0, 0, 0}, 1, 3);
  EXPECT_TRUE(analyse_topology(sphere).watertight());
  EXPECT_EQ(analyse_topology(sphere).triangles, 1280);
}

TEST(Mesh, AxisAlignedBoxVoxelisesExactly) {
  // Corners on cell faces: cells 2..5 along each axis are inside, nothing else.
  const TriangleMesh box = make_box_mesh({2, 2, 2}, {6, 6, 6});
  VoxelisationReport r;
  Field<std::uint8_t> in = voxelise_mesh(box, Dims{10, 9, 8}, identity_placement(box), &r);
  for (int k = 0; k < 8; ++k)
    for (int j = 0; j < 9; ++j)
      for (int i = 0; i < 10; ++i) {
        const bool expect = i >= 2 && i <= 5 && j >= 2 && j <= 5 && k >= 2 && k <= 5;
        EXPECT_EQ(in(i, j, k), expect ? 1 : 0) << i << "," << j << "," << k;
      }
  EXPECT_EQ(r.inside_cells, 64);
  EXPECT_EQ(r.abstaining_rays, 0);
  EXPECT_EQ(r.disagreeing_cells, 0);
}

TEST(Mesh, RaysThroughEdgesAndVerticesCountOneCrossing) {
  // Corners exactly on cell centres: many rays graze edges and vertices. The tie-breaking rule
  // must still give every ray an even number of crossings, and cells clearly inside/outside
  // must be classified right.
  const TriangleMesh box = make_box_mesh({2.5, 2.5, 2.5}, {6.5, 6.5, 6.5});
  VoxelisationReport r;
  Field<std::uint8_t> in = voxelise_mesh(box, Dims{10, 10, 10}, identity_placement(box), &r);
  EXPECT_EQ(r.abstaining_rays, 0);
  for (int k = 0; k < 10; ++k)
    for (int j = 0; j < 10; ++j)
      for (int i = 0; i < 10; ++i) {
        const bool strictly_in = i >= 3 && i <= 5 && j >= 3 && j <= 5 && k >= 3 && k <= 5;
        const bool strictly_out = i < 2 || i > 6 || j < 2 || j > 6 || k < 2 || k > 6;
        if (strictly_in) { EXPECT_EQ(in(i, j, k), 1); }
        if (strictly_out) { EXPECT_EQ(in(i, j, k), 0); }
      }
  // Same with an octahedron-like fan: a sphere whose vertices sit on cell centres.
  const TriangleMesh s = make_sphere_mesh({8.5, 8.5, 8.5}, 5.0, 0);  // icosahedron
  VoxelisationReport rs;
  voxelise_mesh(s, Dims{18, 18, 18}, identity_placement(s), &rs);
  EXPECT_EQ(rs.abstaining_rays, 0);
}

TEST(Mesh, SphereMatchesTheAnalyticSphere) {
  const double R = 9.3;
  const std::array<double, 3> c{12.2, 11.7, 12.9};
  const TriangleMesh s = make_sphere_mesh(c, R, 4);  // 5120 triangles, inscribed
  VoxelisationReport r;
  Field<std::uint8_t> in = voxelise_mesh(s, Dims{25, 25, 26}, identity_placement(s), &r);
  EXPECT_EQ(r.abstaining_rays, 0);
  EXPECT_EQ(r.disagreeing_cells, 0);
  // Chord error of the inscribed polyhedron: well under 0.1 cell at this subdivision.
  for (int k = 0; k < 26; ++k)
    for (int j = 0; j < 25; ++j)
      for (int i = 0; i < 25; ++i) {
        const double d = std::hypot(i + 0.5 - c[0], j + 0.5 - c[1], k + 0.5 - c[2]);
        if (d < R - 0.1) { EXPECT_EQ(in(i, j, k), 1) << d; }
        if (d > R) { EXPECT_EQ(in(i, j, k), 0) << d; }
      }
}

TEST(Mesh, HolesAreReportedAndOutvoted) {
  const std::array<double, 3> c{10.1, 9.8, 10.3};
  TriangleMesh closed = make_sphere_mesh(c, 7.2, 3);
  Field<std::uint8_t> ref = voxelise_mesh(closed, Dims{20, 20, 20}, identity_placement(closed));
  TriangleMesh holey = closed;
  // Remove scattered triangles: several holes.
  for (std::size_t t = 0; t < 12; ++t) holey.triangles.erase(holey.triangles.begin() + static_cast<long>(t * 97 % holey.triangles.size()));
  VoxelisationReport r;
  Field<std::uint8_t> in = voxelise_mesh(holey, Dims{20, 20, 20}, identity_placement(closed), &r);
  EXPECT_FALSE(r.topology.watertight());
  EXPECT_GT(r.topology.boundary_edges, 0);
  EXPECT_GT(r.abstaining_rays, 0);
  std::int64_t differ = 0, inside = 0;
  for (std::int64_t n = 0; n < in.size(); ++n) {
    differ += in[n] != ref[n];
    inside += ref[n];
  }
  EXPECT_LE(differ, inside / 100) << differ << " of " << inside;
}

TEST(Mesh, PlacementScalesUniformlyAndRotatesUpToZ) {
  const TriangleMesh box = make_box_mesh({0, 0, 0}, {1, 2, 4});  // tall in mesh z
  MeshPlacement p;
  p.box_min = {0, 0, 0};
  p.box_max = {10, 10, 10};
  p.up_axis = 1;  // mesh y is up: a cyclic rotation (x, y, z) -> (z, x, y)
  const TriangleMesh placed = place_mesh(box, p);
  const auto lo = placed.min_corner(), hi = placed.max_corner();
  EXPECT_NEAR(hi[0] - lo[0], 10.0, 1e-12);  // mesh z (4) -> grid x, the longest: scale 2.5
  EXPECT_NEAR(hi[1] - lo[1], 2.5, 1e-12);   // mesh x (1)
  EXPECT_NEAR(hi[2] - lo[2], 5.0, 1e-12);   // mesh y (2) -> up
  EXPECT_NEAR(lo[2], 0.0, 1e-12);           // rests on the floor
  EXPECT_NEAR(0.5 * (lo[1] + hi[1]), 5.0, 1e-12);
}

TEST(Mesh, LoaderReadsObjPlyStlAndRejectsBadFiles) {
  const fs::path dir = temp_dir();
  const TriangleMesh box = make_box_mesh({0, 0, 0}, {1, 1, 1});
  {
    std::ofstream ply(dir / "box.ply");
    ply << "ply\nformat ascii 1.0\nelement vertex 8\nproperty float x\nproperty float y\nproperty float z\n"
        << "element face 12\nproperty list uchar int vertex_indices\nend_header\n";
    for (const auto& v : box.vertices) ply << v[0] << " " << v[1] << " " << v[2] << "\n";
    for (const auto& t : box.triangles) ply << "3 " << t[0] << " " << t[1] << " " << t[2] << "\n";
    std::ofstream obj(dir / "quads.obj");  // quads: triangulated on load
    for (const auto& v : box.vertices) obj << "v " << v[0] << " " << v[1] << " " << v[2] << "\n";
    obj << "f 1 5 7 3\nf 2 4 8 6\nf 1 2 6 5\nf 3 7 8 4\nf 1 3 4 2\nf 5 6 8 7\n";
    std::ofstream pts(dir / "points.obj");
    pts << "v 0 0 0\nv 1 0 0\nv 0 1 0\n";
    std::ofstream junk(dir / "junk.stl");
    junk << "solid x\n facet normal 0 0 1\n  outer loop\n   vertex 0 0\n";
    // Headers that lie about their counts: refused from the file's length, before the loader
    // allocates for them (10^9 vertices, 2^28 - 1 triangles).
    std::ofstream liar(dir / "liar.ply");
    liar << "ply\nformat binary_little_endian 1.0\nelement vertex 1000000000\nproperty float x\nproperty float y\n"
         << "property float z\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n0123456789";
    std::ofstream stl(dir / "liar.stl", std::ios::binary);
    const std::string header(80, 'x');
    const std::uint32_t triangles = 268435455;
    stl.write(header.data(), 80);
    stl.write(reinterpret_cast<const char*>(&triangles), 4);
  }
  for (auto name : {"box.ply", "quads.obj"}) {
    const TriangleMesh m = load_mesh(dir / name);
    const MeshTopology t = analyse_topology(m);
    EXPECT_EQ(t.vertices, 8) << name;
    EXPECT_EQ(t.triangles, 12) << name;
    EXPECT_TRUE(t.watertight()) << name;
  }
  for (auto name : {"points.obj", "junk.stl", "missing.obj", "liar.ply", "liar.stl"}) {
    try {
      load_mesh(dir / name);
      ADD_FAILURE() << name;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  }
  fs::remove_all(dir);
}
