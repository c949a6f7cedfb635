// Built-in scenes: every scene at any dims, determinism, boundaries, bad parameters.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "dcdm/error.hpp"
#include "dcdm/mesh.hpp"
#include "dcdm/poisson.hpp"
#include "dcdm/scenes.hpp"

using namespace dcdm;
namespace fs = std::filesystem;

namespace {
SceneSpec spec(const std::string& name, Dims d, std::uint64_t seed = 0) {
  SceneSpec s;
  s.name = name;
  s.dims = d;
  s.seed = seed;
  return s;
}
std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no InputError)";
}
}  // namespace

TEST(Scenes, EveryBuiltInSceneBuildsAtNonCubicSizes) {
  for (const auto& info : scene_catalog()) {
    if (info.name == "mesh") continue;  // needs a file, tested below
    for (Dims d : {Dims{4, 4, 4}, Dims{21, 13, 17}, Dims{12, 30, 9}}) {
      nlohmann::json meta;
      Domain dom = make_scene(spec(info.name, d, 5), &meta);
      EXPECT_EQ(dom.dims(), d);
      EXPECT_GT(dom.count(CellType::Fluid), 0) << info.name << " " << d.str();
      EXPECT_EQ(meta["cells"]["fluid"].get<std::int64_t>(), dom.count(CellType::Fluid));
      // Every default scene is a well-posed (non-singular) pressure problem: open top or air.
      const FluidComponents fc = fluid_components(dom);
      EXPECT_EQ(fc.singular_count(), 0) << info.name << " " << d.str();
      // Deterministic for a seed.
      Domain again = make_scene(spec(info.name, d, 5));
      EXPECT_EQ(again.cells.vector(), dom.cells.vector()) << info.name;
      EXPECT_EQ(again.faces, dom.faces);
      // No sealed fluid cells (they would be empty rows, indistinguishable from solid).
      PoissonStencil st(dom);
      for (std::int64_t c = 0; c < d.size(); ++c)
        if (dom.cells[c] == CellType::Fluid) { EXPECT_GT(st.diagonal()[c], 0.0); }
    }
  }
  EXPECT_EQ(scene_catalog().front().name, "bunny");  // the default scene
}

TEST(Scenes, BoxSphereAndObstaclesGeometry) {
  const Dims d{20, 20, 20};
  Domain box = make_scene(spec("box", d));
  EXPECT_EQ(box.count(CellType::Fluid), d.size());
  EXPECT_EQ(box.face(Face::ZMax), FaceBoundary::Open);
  for (Face f : {Face::XMin, Face::XMax, Face::YMin, Face::YMax, Face::ZMin}) { EXPECT_EQ(box.face(f), FaceBoundary::Wall); }
  SceneSpec closed = spec("box", d);
  closed.parameters["open_top"] = 0;
  EXPECT_EQ(fluid_components(make_scene(closed)).singular_count(), 1);

  Domain sphere = make_scene(spec("sphere", d));
  // radius 0.2 * 20 = 4 cells: volume 4/3 pi 64 = 268 cells, staircase within ~15%.
  const auto solid = sphere.count(CellType::Solid);
  EXPECT_GT(solid, 220);
  EXPECT_LT(solid, 320);
  EXPECT_EQ(sphere.cells(10, 10, 8), CellType::Solid);  // centre (10, 10, 8)
  EXPECT_EQ(sphere.cells(1, 1, 1), CellType::Fluid);

  Domain a = make_scene(spec("obstacles", d, 1)), b = make_scene(spec("obstacles", d, 2));
  EXPECT_NE(a.cells.vector(), b.cells.vector());
  EXPECT_GT(a.count(CellType::Solid), 0);
}

TEST(Scenes, PoolHasAirAboveWaterAndADrop) {
  const Dims d{24, 20, 22};
  nlohmann::json meta;
  Domain pool = make_scene(spec("pool", d, 2), &meta);
  EXPECT_GT(pool.count(CellType::Air), 0);
  EXPECT_EQ(pool.cells(3, 3, 0), CellType::Fluid);
  EXPECT_EQ(pool.cells(3, 3, d.nz - 1), CellType::Air);
  const FluidComponents fc = fluid_components(pool);
  EXPECT_EQ(fc.count(), 2);  // the pool and the drop
  EXPECT_EQ(fc.singular_count(), 0);
  SceneSpec no_drop = spec("pool", d, 2);
  no_drop.parameters["drop"] = 0;
  EXPECT_EQ(fluid_components(make_scene(no_drop)).count(), 1);
  SceneSpec pillar = spec("pool", d, 2);
  pillar.parameters["pillar"] = 1;
  EXPECT_GT(make_scene(pillar).count(CellType::Solid), 0);
}

TEST(Scenes, BunnyIsAnObstacleOnTheFloor) {
  const Dims d{32, 32, 32};
  nlohmann::json meta;
  Domain dom = make_scene(spec("bunny", d), &meta);
  const auto solid = dom.count(CellType::Solid);
  // The bunny fills roughly a third of its 19^3 placement box.
  EXPECT_GT(solid, 1000);
  EXPECT_LT(solid, 4000);
  bool on_floor = false;
  for (int j = 0; j < d.ny; ++j)
    for (int i = 0; i < d.nx; ++i) on_floor |= dom.cells(i, j, 0) == CellType::Solid;
  EXPECT_TRUE(on_floor);
  EXPECT_EQ(meta["mesh"]["triangles"].get<int>(), 3674);
  EXPECT_TRUE(meta["mesh"].contains("boundary_edges"));
  EXPECT_EQ(meta["mesh"]["disagreeing_cells"].get<int>(), 0);
}

TEST(Scenes, UserMeshFromFile) {
  const fs::path dir = fs::temp_directory_path() / fmt::format("dcdm_test_scenes_{}", ::getpid());
  fs::create_directories(dir);
  // An ASCII STL cube (each triangle's corners stored separately: the loader welds them).
  const TriangleMesh cube = make_box_mesh({0, 0, 0}, {1, 1, 1});
  {
    std::ofstream out(dir / "cube.stl");
    out << "solid cube\n";
    for (const auto& t : cube.triangles) {
      out << " facet normal 0 0 0\n  outer loop\n";
      for (int v : t) out << fmt::format("   vertex {} {} {}\n", cube.vertices[v][0], cube.vertices[v][1], cube.vertices[v][2]);
      out << "  endloop\n endfacet\n";
    }
    out << "endsolid cube\n";
  }
  SceneSpec s = spec("mesh", {20, 20, 20});
  s.mesh = dir / "cube.stl";
  s.parameters["scale"] = 0.5;  // a 10-cell cube on the floor, centred
  s.parameters["up"] = 2;
  nlohmann::json meta;
  Domain dom = make_scene(s, &meta);
  EXPECT_EQ(dom.count(CellType::Solid), 1000);
  EXPECT_TRUE(meta["mesh"]["watertight"].get<bool>());
  EXPECT_EQ(meta["mesh"]["vertices"].get<int>(), 8);
  // The same cube replaces the bunny of the bunny scene.
  SceneSpec b = spec("bunny", {20, 20, 20});
  b.mesh = dir / "cube.stl";
  b.parameters["scale"] = 0.5;
  EXPECT_EQ(make_scene(b).count(CellType::Solid), 1000);
  // A file that is not a mesh.
  {
    std::ofstream out(dir / "junk.obj");
    out << "this is not a mesh\n\x01\x02\n";
  }
  s.mesh = dir / "junk.obj";
  EXPECT_NE(message_of([&] { make_scene(s); }).find("junk.obj"), std::string::npos);
  s.mesh = dir / "missing.ply";
  EXPECT_NE(message_of([&] { make_scene(s); }).find("missing.ply"), std::string::npos);
  fs::remove_all(dir);
}

TEST(Scenes, BadInputIsRefusedWithTheOptionNamed) {
  EXPECT_NE(message_of([] { make_scene(spec("box", {3, 8, 8})); }).find("--n/--dims"), std::string::npos);
  EXPECT_NE(message_of([] { make_scene(spec("teapot", {8, 8, 8})); }).find("teapot"), std::string::npos);
  SceneSpec p = spec("sphere", {8, 8, 8});
  p.parameters["radus"] = 0.3;
  EXPECT_NE(message_of([&] { make_scene(p); }).find("radus"), std::string::npos);
  p.parameters = {{"radius", -1}};
  EXPECT_NE(message_of([&] { make_scene(p); }).find("radius"), std::string::npos);
  p.parameters = {{"radius", 1.0}};  // fills the whole box
  EXPECT_NE(message_of([&] { make_scene(p); }).find("no fluid"), std::string::npos);
  SceneSpec m = spec("mesh", {8, 8, 8});
  EXPECT_NE(message_of([&] { make_scene(m); }).find("--mesh"), std::string::npos);
  SceneSpec wrong_mesh = spec("box", {8, 8, 8});
  wrong_mesh.mesh = "x.obj";
  EXPECT_THROW(make_scene(wrong_mesh), InputError);
  EXPECT_EQ(parse_scene_parameters({"a=1", "b=-2.5"}), (std::map<std::string, double>{{"a", 1}, {"b", -2.5}}));
  for (auto bad : {"a", "=1", "a=", "a=x", "a=1x", "a=nan"}) { EXPECT_THROW(parse_scene_parameters({bad}), InputError) << bad; }
}

TEST(Scenes, SealedFluidCellsBecomeSolid) {
  Domain dom(Dims{5, 5, 5}, CellType::Solid);
  dom.cells(2, 2, 2) = CellType::Fluid;  // sealed
  dom.cells(0, 0, 0) = CellType::Fluid;
  dom.cells(1, 0, 0) = CellType::Fluid;  // a pair: not sealed (each sees the other)
  EXPECT_EQ(remove_sealed_fluid_cells(dom), 1);
  EXPECT_EQ(dom.cells(2, 2, 2), CellType::Solid);
  EXPECT_EQ(dom.count(CellType::Fluid), 2);
}
