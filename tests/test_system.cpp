// Pressure systems as files: scene systems, save/load, import with domain inference.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>

#include <omp.h>

#include "dcdm/error.hpp"
#include "dcdm/io.hpp"
#include "dcdm/poisson.hpp"
#include "dcdm/scenes.hpp"
#include "dcdm/system.hpp"
#include "temp_dir.hpp"

using namespace dcdm;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& name) { return dcdm::test::fresh_temp_dir("system_" + name); }

SceneSpec spec(const std::string& name, Dims d, std::uint64_t seed = 0) {
  SceneSpec s;
  s.name = name;
  s.dims = d;
  s.seed = seed;
  return s;
}

// Faces that some fluid cell touches are visible in the matrix; the others are not.
std::array<bool, 6> touched_faces(const Domain& dom) {
  std::array<bool, 6> t{};
  const Dims d = dom.dims();
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j)
      for (int i = 0; i < d.nx; ++i) {
        if (dom.cells(i, j, k) != CellType::Fluid) continue;
        t[0] |= i == 0;
        t[1] |= i == d.nx - 1;
        t[2] |= j == 0;
        t[3] |= j == d.ny - 1;
        t[4] |= k == 0;
        t[5] |= k == d.nz - 1;
      }
  return t;
}

}  // namespace

TEST(PoissonSystem, SceneSystemIsAssembledAndConsistent) {
  for (auto name : {"box", "sphere", "obstacles", "pool", "bunny"}) {
    PoissonSystem sys = make_scene_system(spec(name, {14, 12, 10}, 3), RhsKind::Random, 5);
    EXPECT_EQ(sys.matrix, assemble_full_grid(sys.domain)) << name;
    ASSERT_EQ(sys.rhs.size(), 14u * 12 * 10);
    for (std::size_t c = 0; c < sys.rhs.size(); ++c)
      if (sys.domain.cells[c] != CellType::Fluid) { EXPECT_EQ(sys.rhs[c], 0.0); }
    EXPECT_GT(norm2(sys.rhs), 0.0);
    EXPECT_EQ(sys.meta["dims"], nlohmann::json({14, 12, 10}));
    EXPECT_EQ(sys.meta["cells"]["fluid"].get<std::int64_t>(), sys.domain.count(CellType::Fluid));
  }
}

TEST(PoissonSystem, RhsIsDeterministicAndProjectedWhenSingular) {
  SceneSpec closed = spec("box", {8, 7, 6});
  closed.parameters["open_top"] = 0;
  PoissonSystem a = make_scene_system(closed, RhsKind::Random, 11);
  PoissonSystem b = make_scene_system(closed, RhsKind::Random, 11);
  PoissonSystem c = make_scene_system(closed, RhsKind::Random, 12);
  EXPECT_EQ(a.rhs, b.rhs);
  EXPECT_NE(a.rhs, c.rhs);
  EXPECT_EQ(a.meta["components"]["singular_count"], 1);
  EXPECT_TRUE(a.meta["rhs"]["projected"].get<bool>());
  EXPECT_NEAR(std::accumulate(a.rhs.begin(), a.rhs.end(), 0.0), 0.0, 1e-11);
  // Smooth: low frequency -> neighbouring values close; projected too.
  PoissonSystem s = make_scene_system(spec("box", {16, 16, 16}), RhsKind::Smooth, 2);
  double jump = 0, size = 0;
  for (int k = 0; k < 16; ++k)
    for (int j = 0; j < 16; ++j)
      for (int i = 0; i + 1 < 16; ++i) {
        jump = std::max(jump, std::abs(s.rhs[Dims{16, 16, 16}.index(i + 1, j, k)] - s.rhs[Dims{16, 16, 16}.index(i, j, k)]));
        size = std::max(size, std::abs(s.rhs[Dims{16, 16, 16}.index(i, j, k)]));
      }
  EXPECT_GT(size, 0.0);
  EXPECT_LT(jump, 0.5 * size);
  EXPECT_FALSE(s.meta["rhs"]["projected"].get<bool>());
}

TEST(PoissonSystem, RhsFromFileZeroesNonFluidValues) {
  const fs::path dir = temp_dir("rhsfile");
  const Dims d{6, 5, 4};
  std::vector<double> v(d.size());
  std::iota(v.begin(), v.end(), 1.0);
  io::write_npy(dir / "rhs.npy", v, {d.nz, d.ny, d.nx});
  PoissonSystem sys = make_scene_system(spec("sphere", d), RhsKind::File, 0, dir / "rhs.npy");
  std::int64_t nonfluid = 0;
  for (std::int64_t c = 0; c < d.size(); ++c) {
    if (sys.domain.cells[c] == CellType::Fluid) {
      EXPECT_EQ(sys.rhs[c], v[c]);
    } else {
      EXPECT_EQ(sys.rhs[c], 0.0);
      ++nonfluid;
    }
  }
  EXPECT_EQ(sys.meta["rhs"]["nonfluid_values_zeroed"].get<std::int64_t>(), nonfluid);
  std::vector<double> wrong(7, 1.0);
  io::write_npy(dir / "wrong.npy", wrong, {7});
  EXPECT_THROW(make_scene_system(spec("box", d), RhsKind::File, 0, dir / "wrong.npy"), InputError);
  fs::remove_all(dir);
}

TEST(PoissonSystem, SaveLoadRoundTripIsExact) {
  const fs::path dir = temp_dir("roundtrip");
  PoissonSystem sys = make_scene_system(spec("pool", {12, 10, 11}, 4), RhsKind::Smooth, 9);
  save_system(dir, sys);
  for (auto f : {"A.mtx", "A.bin", "b.npy", "b.bin", "flags.npy", "system.json"}) { EXPECT_TRUE(fs::exists(dir / f)) << f; }
  PoissonSystem back = load_system(dir);
  EXPECT_EQ(back.domain.cells.vector(), sys.domain.cells.vector());
  EXPECT_EQ(back.domain.faces, sys.domain.faces);
  EXPECT_EQ(back.matrix, sys.matrix);
  EXPECT_EQ(back.rhs, sys.rhs);
  // The Matrix Market and the reference binary hold the same matrix; flags are uint8 (nz,ny,nx).
  EXPECT_EQ(io::read_matrix(dir / "A.mtx"), sys.matrix);
  EXPECT_EQ(io::read_reference_vector(dir / "b.bin"), sys.rhs);
  const io::NpyArray flags = io::read_npy(dir / "flags.npy");
  EXPECT_EQ(flags.dtype, io::DType::UInt8);
  EXPECT_EQ(flags.shape, (std::vector<std::int64_t>{11, 10, 12}));
  // A tampered flag no longer matches A.
  std::vector<std::uint8_t> bad(flags.bytes.begin(), flags.bytes.end());
  const auto first_fluid = std::find(bad.begin(), bad.end(), 1) - bad.begin();
  bad[first_fluid] = 0;
  io::write_npy(dir / "flags.npy", bad, flags.shape);
  EXPECT_THROW(load_system(dir), InputError);
  EXPECT_THROW(load_system(dir / "missing"), InputError);
  fs::remove_all(dir);
}

TEST(PoissonSystem, ImportOfExportIsIdentity) {
  const Dims d{13, 11, 9};
  for (auto name : {"box", "sphere", "obstacles", "bunny", "pool"}) {
    const fs::path dir = temp_dir(std::string("import_") + name);
    PoissonSystem sys = make_scene_system(spec(name, d, 7), RhsKind::Random, 1);
    save_system(dir, sys);
    for (auto file : {"A.mtx", "A.bin"}) {
      PoissonSystem imp = import_system(dir / file, dir / "b.npy", d);
      EXPECT_EQ(imp.matrix, sys.matrix) << name << " " << file;
      EXPECT_EQ(imp.rhs, sys.rhs) << name;
      EXPECT_EQ(imp.domain.cells.vector(), sys.domain.cells.vector()) << name << " " << file;
      const auto touched = touched_faces(sys.domain);
      for (int f = 0; f < 6; ++f)
        if (touched[f]) { EXPECT_EQ(imp.domain.faces[f], sys.domain.faces[f]) << name << " face " << f; }
    }
    fs::remove_all(dir);
  }
}

TEST(PoissonSystem, ImportResolvesAmbiguousCellsConsistently) {
  // A pillar piercing the free surface: water cells next to it at the surface have one air
  // neighbour that could be either the cell above or the pillar. The import may guess, but the
  // operator must come back exactly.
  const Dims d{16, 16, 14};
  SceneSpec s = spec("pool", d, 3);
  s.parameters["pillar"] = 1;
  PoissonSystem sys = make_scene_system(s, RhsKind::Random, 1);
  const fs::path dir = temp_dir("ambiguous");
  save_system(dir, sys);
  PoissonSystem imp = import_system(dir / "A.bin", dir / "b.npy", d);
  EXPECT_EQ(imp.matrix, sys.matrix);
  for (std::int64_t c = 0; c < d.size(); ++c)
    EXPECT_EQ(imp.domain.cells[c] == CellType::Fluid, sys.domain.cells[c] == CellType::Fluid);
  fs::remove_all(dir);
}

TEST(PoissonSystem, ImportInfersCubeAndRejectsOtherMatrices) {
  const fs::path dir = temp_dir("bad_import");
  PoissonSystem cube = make_scene_system(spec("box", {6, 6, 6}), RhsKind::Random, 1);
  save_system(dir / "cube", cube);
  EXPECT_EQ(import_system(dir / "cube" / "A.mtx").matrix, cube.matrix);
  // 13x11x9 is not a cube: dims are required.
  PoissonSystem box = make_scene_system(spec("box", {13, 11, 9}), RhsKind::Random, 1);
  save_system(dir / "box", box);
  try {
    import_system(dir / "box" / "A.mtx");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("--dims"), std::string::npos);
  }
  // Wrong dims for the row count.
  EXPECT_THROW(import_system(dir / "box" / "A.mtx", {}, Dims{11, 13, 8}), InputError);
  // A symmetric positive definite matrix that is not a grid Poisson matrix.
  std::vector<Triplet> t;
  for (int r = 0; r < 64; ++r) {
    t.push_back({r, r, 4.0});
    if (r + 1 < 64) {
      t.push_back({r, r + 1, -0.5});
      t.push_back({r + 1, r, -0.5});
    }
  }
  io::write_matrix_market(dir / "spd.mtx", CsrMatrix::from_triplets(64, 64, t));
  try {
    import_system(dir / "spd.mtx");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("not a 7-point grid Poisson matrix"), std::string::npos) << e.what();
  }
  // A Poisson matrix with one diagonal larger than its cell's neighbours explain: no unit
  // domain has it, but it is a weighted one (a diagonal term of 1 on that cell), which
  // re-assembles to the same matrix.
  CsrMatrix a = cube.matrix;
  const std::int64_t centre = Dims{6, 6, 6}.index(3, 3, 3);
  for (auto p = a.row_ptr[centre]; p < a.row_ptr[centre + 1]; ++p)
    if (a.col_idx[p] == centre) a.values[p] = 7.0;
  io::write_matrix_market(dir / "extra_diag.mtx", a, false);
  {
    const PoissonSystem extra = import_system(dir / "extra_diag.mtx");
    ASSERT_TRUE(extra.domain.weighted());
    EXPECT_EQ(extra.domain.coefficients->diagonal.at(centre), 1.0);
    const CsrMatrix back = assemble_full_grid(extra.domain);
    EXPECT_EQ(back.values, a.values);
  }
  // An interior diagonal of 5 with 6 fluid neighbours cannot be made of air: rejected.
  a = cube.matrix;
  for (auto p = a.row_ptr[centre]; p < a.row_ptr[centre + 1]; ++p)
    if (a.col_idx[p] == centre) a.values[p] = 5.0;
  io::write_matrix_market(dir / "bad_diag2.mtx", a, false);
  EXPECT_THROW(import_system(dir / "bad_diag2.mtx"), InputError);
  // Non-symmetric coupling: drop one -1.
  a = cube.matrix;
  for (auto p = a.row_ptr[centre]; p < a.row_ptr[centre + 1]; ++p)
    if (a.col_idx[p] == centre + 1) a.values[p] = 0.0;
  io::write_matrix_market(dir / "asym.mtx", a, false);
  EXPECT_THROW(import_system(dir / "asym.mtx"), InputError);
  // rhs of the wrong length.
  std::vector<double> b(10, 1.0);
  io::write_npy(dir / "b10.npy", b, {10});
  EXPECT_THROW(import_system(dir / "cube" / "A.mtx", dir / "b10.npy"), InputError);
  fs::remove_all(dir);
}

TEST(PoissonSystem, ImportZeroesRhsOnEmptyRowsAndProjects) {
  const fs::path dir = temp_dir("import_rhs");
  SceneSpec closed = spec("sphere", {8, 8, 8});
  closed.parameters["open_top"] = 0;
  PoissonSystem sys = make_scene_system(closed, RhsKind::Random, 1);
  save_system(dir, sys);
  std::vector<double> b(sys.rhs.size(), 1.0);  // non-zero everywhere, mean 1 on fluid
  io::write_npy(dir / "ones.npy", b, {8, 8, 8});
  PoissonSystem imp = import_system(dir / "A.bin", dir / "ones.npy");
  EXPECT_EQ(imp.meta["rhs"]["nonfluid_values_zeroed"].get<std::int64_t>(), sys.domain.count(CellType::Solid));
  EXPECT_TRUE(imp.meta["rhs"]["projected"].get<bool>());
  EXPECT_NEAR(imp.meta["rhs"]["projection"][0]["mean_removed"].get<double>(), 1.0, 1e-14);
  EXPECT_NEAR(norm_inf(imp.rhs), 0.0, 1e-14);
  fs::remove_all(dir);
}

TEST(PoissonSystem, MemoryGuardRefusesWithTheFigure) {
  EXPECT_GT(physical_memory_bytes(), 0);
  EXPECT_NO_THROW(check_system_fits_memory(Dims{64, 64, 64}));
  try {
    check_system_fits_memory(Dims{4000, 4000, 4000});
    FAIL();
  } catch (const InputError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("--n/--dims"), std::string::npos) << m;
    EXPECT_NE(m.find("GiB"), std::string::npos) << m;
  }
  EXPECT_THROW(make_scene_system(spec("box", {3, 8, 8})), InputError);
}

// ---------------------------------------------------------------- CLI

namespace {
int run_cli(const std::string& args, std::string* output = nullptr) {
  const std::string log = (fs::temp_directory_path() / fmt::format("dcdm_cli_{}.log", ::getpid())).string();
  const int status = std::system((std::string(DCDM_CLI_PATH) + " " + args + " > " + log + " 2>&1").c_str());
  if (output) {
    std::ifstream in(log);
    output->assign(std::istreambuf_iterator<char>(in), {});
  }
  fs::remove(log);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
}  // namespace

TEST(PoissonSystemCli, ExportImportRoundTrip) {
  const fs::path dir = temp_dir("cli");
  std::string out;
  ASSERT_EQ(run_cli(fmt::format("export --scene obstacles --dims 12,10,9 --seed 3 --rhs smooth --out {}", (dir / "x").string()), &out), 0) << out;
  EXPECT_NE(out.find("12x10x9"), std::string::npos) << out;
  ASSERT_EQ(run_cli(fmt::format("import {} --rhs {} --dims 12,10,9 --out {}", (dir / "x" / "A.bin").string(),
                                (dir / "x" / "b.npy").string(), (dir / "y").string()), &out), 0) << out;
  PoissonSystem x = load_system(dir / "x"), y = load_system(dir / "y");
  EXPECT_EQ(x.matrix, y.matrix);
  EXPECT_EQ(x.rhs, y.rhs);
  EXPECT_EQ(x.domain.cells.vector(), y.domain.cells.vector());
  EXPECT_EQ(run_cli("export --list-scenes", &out), 0);
  for (auto name : {"box", "sphere", "obstacles", "bunny", "pool", "mesh"}) { EXPECT_NE(out.find(name), std::string::npos); }
  fs::remove_all(dir);
}

TEST(PoissonSystemCli, BadInputExitsWithStatus2) {
  const fs::path dir = temp_dir("cli_bad");
  std::string out;
  EXPECT_EQ(run_cli(fmt::format("export --scene box --n 3 --out {}", (dir / "a").string()), &out), 2);
  EXPECT_NE(out.find("--n/--dims"), std::string::npos) << out;
  EXPECT_EQ(run_cli(fmt::format("export --scene mesh --mesh {} --n 8 --out {}", (dir / "none.obj").string(),
                                (dir / "a").string()), &out), 2);
  EXPECT_NE(out.find("none.obj"), std::string::npos) << out;
  EXPECT_EQ(run_cli(fmt::format("export --scene box --n 5000 --out {}", (dir / "a").string()), &out), 2);
  EXPECT_NE(out.find("GiB"), std::string::npos) << out;
  fs::remove_all(dir);
}

// The random right-hand side is drawn cell by cell (random_rhs_value): the scene system's b is
// those values on fluid cells and 0 elsewhere, on any number of threads; the values are
// standard normal and another seed gives other values.
TEST(RandomRhs, CellByCellOnAnyThreadsAndStandardNormal) {
  SceneSpec spec;
  spec.name = "obstacles";
  spec.dims = {37, 21, 18};  // an odd cell count: the last pair has one cell
  spec.seed = 2;
  std::vector<std::vector<double>> runs;
  for (const int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    runs.push_back(make_scene_system(spec, RhsKind::Random, 7, {}, SystemMatrix::Skip).rhs);
  }
  omp_set_num_threads(omp_get_num_procs());
  const PoissonSystem sys = make_scene_system(spec, RhsKind::Random, 7, {}, SystemMatrix::Skip);
  ASSERT_FALSE(sys.projector->singular());  // b is not projected: the raw values
  for (std::size_t c = 0; c < runs[0].size(); ++c) {
    const bool fluid = sys.domain.cells[static_cast<std::int64_t>(c)] == CellType::Fluid;
    ASSERT_EQ(runs[0][c], fluid ? random_rhs_value(7, static_cast<std::int64_t>(c)) : 0.0) << c;
    ASSERT_EQ(runs[1][c], runs[0][c]) << c;
    ASSERT_EQ(runs[2][c], runs[0][c]) << c;
  }
  const int n = 200000;
  double sum = 0, squares = 0, cross = 0, within_one = 0;
  for (int c = 0; c < n; ++c) {
    const double v = random_rhs_value(11, c), w = random_rhs_value(12, c);
    sum += v;
    squares += v * v;
    cross += v * w;
    within_one += std::abs(v) < 1.0;
  }
  EXPECT_NEAR(sum / n, 0.0, 0.01);
  EXPECT_NEAR(squares / n, 1.0, 0.015);
  EXPECT_NEAR(cross / n, 0.0, 0.01);               // seeds 11 and 12 uncorrelated
  EXPECT_NEAR(within_one / n, 0.6827, 0.005);      // the normal's mass within one sigma
  // Neighbouring cells (the two halves of a pair) are uncorrelated too.
  double pair_cross = 0;
  for (int m = 0; m < n / 2; ++m) pair_cross += random_rhs_value(11, 2 * m) * random_rhs_value(11, 2 * m + 1);
  EXPECT_NEAR(pair_cross / (n / 2), 0.0, 0.015);
}
