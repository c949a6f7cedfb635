// `dcdm simulate` end to end: exported frames read back by `dcdm import` / load_system and
// match the library's simulation bit for bit; resume equals an uninterrupted run; VDB output.
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cli_test.hpp"

#include "dcdm/error.hpp"
#include "dcdm/io.hpp"
#include "dcdm/krylov.hpp"
#include "dcdm/precond.hpp"
#include "dcdm/sim.hpp"
#include "dcdm/system.hpp"
#include "dcdm/vdb.hpp"

namespace dcdm::sim {
namespace {

namespace fs = std::filesystem;

class SimCli : public dcdm::testing::CliTest {
 protected:
  SimCli() : CliTest("sim_cli", 2) {}
  int cli(const std::string& args) { return run_cli(args); }
  static std::string bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  static std::vector<std::string> csv_lines(const fs::path& p) {
    std::ifstream in(p);
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    return lines;
  }

};

TEST_F(SimCli, ExportedFrameReadsBackThroughImportAndMatchesTheLibrary) {
  const fs::path out = dir_ / "run";
  ASSERT_EQ(cli(fmt::format("simulate --scene sphere --n 32 --frames 4 --export-every 2 --solver mgpcg "
                            "--rtol 1e-6 --seed 3 --frame-matrix files --out {}",
                            out.string())),
            0)
      << log();
  for (const char* f : {"A.mtx", "A.bin", "b.bin", "b.npy", "flags.npy", "system.json"})
    EXPECT_TRUE(fs::exists(out / "frame_0004" / f)) << f;
  EXPECT_TRUE(fs::exists(out / "frame_0002" / "b.npy"));
  EXPECT_FALSE(fs::exists(out / "frame_0003"));
  EXPECT_TRUE(fs::exists(out / "png" / "density_0004.png"));
  EXPECT_TRUE(fs::exists(out / "summary.json"));
  EXPECT_TRUE(fs::exists(out / "checkpoint.bin"));
  const auto rows = csv_lines(out / "frames.csv");
  ASSERT_EQ(rows.size(), 5u);  // header + 4 frames
  EXPECT_NE(log().find("max|div u|"), std::string::npos) << log();

  // `dcdm import` infers the domain from the exported matrix and writes the same system.
  const fs::path imported = dir_ / "imported";
  ASSERT_EQ(cli(fmt::format("import {} --rhs {} --out {}", (out / "frame_0004" / "A.bin").string(),
                            (out / "frame_0004" / "b.npy").string(), imported.string())),
            0)
      << log();
  const PoissonSystem exported = load_system(out / "frame_0004");
  const PoissonSystem back = load_system(imported);
  EXPECT_TRUE(back.domain.cells.vector() == exported.domain.cells.vector());
  EXPECT_TRUE(back.domain.faces == exported.domain.faces);
  EXPECT_TRUE(back.matrix == exported.matrix);
  EXPECT_TRUE(back.rhs == exported.rhs);

  // The library run with the same solver (the registry's mgpcg is PCG + the default V-cycle)
  // gives bit-identical systems: the CLI adds nothing to the physics.
  SimConfig c = make_scene("sphere", Dims{32, 32, 32}, 3);
  c.solve.rtol = 1e-6;
  c.solve.max_iterations = 1000;
  PcgSolver mgpcg("mgpcg", std::make_unique<MultigridPreconditioner>());
  SmokeSimulation sim(c, mgpcg);
  for (int f = 0; f < 4; ++f) sim.step();
  EXPECT_TRUE(exported.rhs == sim.rhs());
  EXPECT_TRUE(exported.domain.cells.vector() == sim.domain().cells.vector());
  // The moving sphere is in the exported flags, and the system is not trivial.
  EXPECT_GT(exported.domain.count(CellType::Solid), 100);
  EXPECT_GT(norm2(exported.rhs), 1e-3);
}

TEST_F(SimCli, ResumeEqualsAnUninterruptedRun) {
  const std::string common = "simulate --scene sphere --n 16 --export-every 2 --solver mgpcg --seed 4 "
                             "--advection maccormack --quiet --no-png";
  const fs::path whole = dir_ / "whole", parts = dir_ / "parts";
  ASSERT_EQ(cli(fmt::format("{} --frames 6 --out {}", common, whole.string())), 0) << log();
  ASSERT_EQ(cli(fmt::format("{} --frames 4 --out {}", common, parts.string())), 0) << log();
  ASSERT_EQ(cli(fmt::format("{} --frames 6 --out {} --resume", common, parts.string())), 0) << log();
  EXPECT_EQ(bytes(whole / "frame_0006" / "b.npy"), bytes(parts / "frame_0006" / "b.npy"));
  EXPECT_EQ(bytes(whole / "frame_0006" / "flags.npy"), bytes(parts / "frame_0006" / "flags.npy"));
  // Frames are lean by default: the flags define A, and no matrix file is written.
  for (const char* f : {"A.mtx", "A.bin", "b.bin"}) EXPECT_FALSE(fs::exists(parts / "frame_0006" / f)) << f;
  EXPECT_EQ(bytes(whole / "checkpoint.bin"), bytes(parts / "checkpoint.bin"));
  const auto rows = csv_lines(parts / "frames.csv");
  ASSERT_EQ(rows.size(), 7u);
  for (int f = 1; f <= 6; ++f) EXPECT_EQ(rows[f].substr(0, rows[f].find(',')), std::to_string(f));

  // Resuming with other physics is refused (exit 2, naming the folder and the setting).
  EXPECT_EQ(cli(fmt::format("{} --frames 8 --out {} --resume --vorticity 0.3", common, parts.string())), 2);
  EXPECT_NE(log().find(parts.string() + ": holds a different run"), std::string::npos) << log();
  EXPECT_NE(log().find("vorticity"), std::string::npos) << log();
  // Options the solver does not use do not block a resume (MGPCG ignores the DCDM settings).
  EXPECT_EQ(cli(fmt::format("{} --frames 7 --out {} --resume --dcdm-k 5", common, parts.string())), 0) << log();

  // A checkpoint written by an older version (format version 1: no checksum): its tag lists
  // every solver option (also those MGPCG ignores) and lacks the options added since. It
  // resumes; one whose tag differs in what MGPCG uses (rtol) does not.
  const auto with_tag = [&](const fs::path& from, const fs::path& to, const std::function<void(nlohmann::json&)>& edit) {
    std::string b = bytes(from);
    constexpr std::size_t kVersionAt = 8, kTagSizeAt = 36, kTagAt = 40;  // magic, version, dims, frame, seed
    std::uint32_t version = 0;
    std::memcpy(&version, b.data() + kVersionAt, 4);
    EXPECT_EQ(version, 2u);
    version = 1;
    std::memcpy(b.data() + kVersionAt, &version, 4);
    b.resize(b.size() - 4);  // version 2's trailing CRC-32
    std::uint32_t size = 0;
    std::memcpy(&size, b.data() + kTagSizeAt, 4);
    auto tag = nlohmann::json::parse(b.substr(kTagAt, size));
    edit(tag);
    const std::string text = tag.dump();
    const auto new_size = static_cast<std::uint32_t>(text.size());
    b = b.substr(0, kTagSizeAt) + std::string(reinterpret_cast<const char*>(&new_size), 4) + text +
        b.substr(kTagAt + size);
    fs::create_directories(to);
    std::ofstream(to / "checkpoint.bin", std::ios::binary) << b;
    fs::copy_file(from.parent_path() / "frames.csv", to / "frames.csv", fs::copy_options::overwrite_existing);
  };
  const auto old_style = [](nlohmann::json& t) {
    EXPECT_FALSE(t.contains("dcdm_k")) << t.dump();
    t["model"] = "";
    t["dcdm_k"] = 2;
    t["dpcg_k"] = 16;
    t["mic_safety"] = 0.97;
  };
  const fs::path old_ok = dir_ / "old-ok", old_bad = dir_ / "old-bad";
  with_tag(whole / "checkpoint.bin", old_ok, old_style);
  EXPECT_EQ(cli(fmt::format("{} --frames 8 --out {} --resume", common, old_ok.string())), 0) << log();
  EXPECT_TRUE(fs::exists(old_ok / "frame_0008"));
  EXPECT_FALSE(fs::exists(old_ok / "frame_0002"));  // resumed at frame 6, not started again
  with_tag(whole / "checkpoint.bin", old_bad, [&](nlohmann::json& t) {
    old_style(t);
    t["rtol"] = 1e-3;
  });
  EXPECT_EQ(cli(fmt::format("{} --frames 8 --out {} --resume", common, old_bad.string())), 2) << log();
  // A different seed gives a different frame.
  const fs::path other = dir_ / "other";
  ASSERT_EQ(cli(fmt::format("simulate --scene sphere --n 16 --export-every 2 --solver mgpcg --seed 5 "
                            "--advection maccormack --quiet --no-png --frames 2 --out {}",
                            other.string())),
            0);
  EXPECT_NE(bytes(whole / "frame_0002" / "b.npy"), bytes(other / "frame_0002" / "b.npy"));
}

// A damaged checkpoint (one byte changed in the density field) is refused naming the file,
// before any frame is simulated from it.
TEST_F(SimCli, DamagedCheckpointIsRefusedNamingTheFile) {
  const auto out = dir_ / "run";
  const std::string common = "simulate --n 8 --export-every 2 --quiet --no-png --out " + out.string();
  ASSERT_EQ(cli(common + " --frames 2"), 0) << log();
  const fs::path ckpt = out / "checkpoint.bin";
  std::string b = bytes(ckpt);
  ASSERT_GT(b.size(), 2000u);
  const std::size_t at = b.size() - 1500;  // in the last fields (temperature, pressure)
  b[at] = static_cast<char>(b[at] ^ 0x10);
  std::ofstream(ckpt, std::ios::binary | std::ios::trunc) << b;
  EXPECT_EQ(cli(common + " --frames 4 --resume"), 2) << log();
  EXPECT_NE(log().find(ckpt.string() + ": checksum mismatch"), std::string::npos) << log();
  EXPECT_FALSE(fs::exists(out / "frame_0004"));
  // A truncated one too (the checksum no longer where it was).
  b.resize(b.size() / 2);
  std::ofstream(ckpt, std::ios::binary | std::ios::trunc) << b;
  EXPECT_EQ(cli(common + " --frames 4 --resume"), 2) << log();
  EXPECT_NE(log().find(ckpt.string()), std::string::npos) << log();
}

// --resume into a folder that holds another run (another seed, scene or grid) is refused naming
// the folder and the setting, with or without its checkpoint (run.json records the options),
// instead of mixing the two runs' frames.
TEST_F(SimCli, ResumeRefusesAFolderOfAnotherRun) {
  const auto out = dir_ / "run";
  ASSERT_EQ(cli("simulate --n 8 --frames 2 --export-every 2 --quiet --no-png --seed 1 --out " + out.string()), 0)
      << log();
  const std::string before = bytes(out / "frame_0002" / "b.npy");
  for (const char* other : {"--n 8 --seed 2", "--n 8 --seed 1 --scene sphere", "--n 12 --seed 1"}) {
    EXPECT_EQ(cli("simulate --frames 4 --export-every 2 --quiet --no-png --resume --out " + out.string() + " " + other),
              2)
        << other << ": " << log();
    EXPECT_NE(log().find(out.string() + ": holds a different run"), std::string::npos) << other << ": " << log();
  }
  EXPECT_NE(log().find("dims"), std::string::npos) << log();
  fs::remove(out / "checkpoint.bin");
  EXPECT_EQ(cli("simulate --n 8 --frames 4 --export-every 2 --quiet --no-png --resume --seed 2 --out " + out.string()),
            2)
      << log();
  EXPECT_NE(log().find("run.json: seed = 1, this command has 2"), std::string::npos) << log();
  EXPECT_EQ(bytes(out / "frame_0002" / "b.npy"), before);
  EXPECT_FALSE(fs::exists(out / "frame_0004"));
}

// A run killed after its last checkpoint but before summary.json: --resume has no frame left
// to simulate and finishes the run by writing the summary from frames.csv.
TEST_F(SimCli, ResumeAfterTheLastCheckpointWritesTheMissingSummary) {
  const auto out = dir_ / "run";
  ASSERT_EQ(cli(fmt::format("simulate --n 8 --frames 4 --export-every 2 --quiet --out {}", out.string())), 0) << log();
  std::ifstream original(out / "summary.json");
  const nlohmann::json full = nlohmann::json::parse(original);
  std::filesystem::remove(out / "summary.json");
  ASSERT_EQ(cli(fmt::format("simulate --n 8 --frames 4 --export-every 2 --resume --out {}", out.string())), 0) << log();
  std::ifstream recovered_file(out / "summary.json");
  ASSERT_TRUE(recovered_file.good()) << log();
  const nlohmann::json recovered = nlohmann::json::parse(recovered_file);
  EXPECT_EQ(recovered["frames_simulated"], 4);
  EXPECT_EQ(recovered["last_frame"], 4);
  EXPECT_EQ(recovered["recovered_from"], "frames.csv");
  EXPECT_DOUBLE_EQ(recovered["mean_iterations"].get<double>(), full["mean_iterations"].get<double>());
  EXPECT_EQ(recovered["unconverged_frames"], full["unconverged_frames"]);
}

TEST_F(SimCli, BadOptionsAreInputErrors) {
  EXPECT_EQ(cli("simulate --scene teapot --n 16 --out " + (dir_ / "x").string()), 2);
  EXPECT_EQ(cli("simulate --scene plume --n 4 --out " + (dir_ / "x").string()), 2);
  EXPECT_EQ(cli("simulate --scene plume --dims 16,16 --out " + (dir_ / "x").string()), 2);
  EXPECT_EQ(cli("simulate --scene plume --n 16 --solver nosuch --out " + (dir_ / "x").string()), 2);
  EXPECT_NE(log().find("nosuch"), std::string::npos) << log();
  EXPECT_EQ(cli("simulate --scene plume --n 16 --advection upwind --out " + (dir_ / "x").string()), 2);
  EXPECT_EQ(cli("simulate --scene plume --n 16 --mesh /nonexistent.obj --out " + (dir_ / "x").string()), 2);
}

TEST_F(SimCli, DensityVolumeAsOpenVdb) {
  if (!io::vdb_available()) GTEST_SKIP() << "built without OpenVDB";
  // Library round trip: the values come back exactly.
  const Dims d{9, 7, 5};
  Field<float> f(d, 0.0f);
  for (std::int64_t c = 0; c < f.size(); c += 3) f[c] = 0.25f + float(c) / 7.0f;
  io::write_vdb_density(dir_ / "f.vdb", f, "density");
  const Field<float> g = io::read_vdb_density(dir_ / "f.vdb", d, "density");
  EXPECT_TRUE(f.vector() == g.vector());
  EXPECT_THROW(io::read_vdb_density(dir_ / "f.vdb", d, "temperature"), InputError);
  EXPECT_THROW(io::read_vdb_density(dir_ / "f.vdb", Dims{4, 4, 4}, "density"), InputError);
  std::ofstream(dir_ / "bad.vdb") << "not a vdb";
  EXPECT_THROW(io::read_vdb_density(dir_ / "bad.vdb", d, "density"), InputError);

  // The CLI writes one per exported frame, holding the smoke.
  const fs::path out = dir_ / "run";
  ASSERT_EQ(cli(fmt::format("simulate --scene plume --n 16 --frames 2 --export-every 2 --solver mgpcg --vdb "
                            "--quiet --out {}",
                            out.string())),
            0)
      << log();
  const Field<float> rho = io::read_vdb_density(out / "vdb" / "density_0002.vdb", Dims{16, 16, 16});
  float mx = 0;
  for (float v : rho.vector()) mx = std::max(mx, v);
  EXPECT_GT(mx, 0.5f);
}

// A .vdb renders as the density it holds: this tool's files come back whole (their grid's
// dims) and give the picture of the frame's density.npy; another program's file is the box of
// its active voxels (tiles filled); a missing grid lists the file's grids.
TEST_F(SimCli, RenderOpenVdbDensity) {
  if (!io::vdb_available()) GTEST_SKIP() << "built without OpenVDB";
  const fs::path out = dir_ / "run";
  ASSERT_EQ(cli(fmt::format("simulate --scene plume --n 16 --frames 4 --export-every 4 --solver mgpcg --vdb "
                            "--quiet --out {}",
                            out.string())),
            0)
      << log();
  const Field<float> whole = io::read_vdb_density_box(out / "vdb" / "density_0004.vdb");
  EXPECT_EQ(whole.dims(), (Dims{16, 16, 16}));
  const fs::path a = dir_ / "from_vdb.png", b = dir_ / "from_npy.png";
  ASSERT_EQ(cli(fmt::format("render {} --out {} --size 48 --no-label", (out / "vdb" / "density_0004.vdb").string(),
                            a.string())),
            0)
      << log();
  ASSERT_EQ(cli(fmt::format("render {} --out {} --size 48 --no-label",
                            (out / "frame_0004" / "density.npy").string(), b.string())),
            0)
      << log();
  // The .vdb keeps values at 0 inactive, the same image either way.
  const auto bytes = [](const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  EXPECT_EQ(bytes(a), bytes(b));
  EXPECT_EQ(cli(fmt::format("render {} --grid smoke --out {}", (out / "vdb" / "density_0004.vdb").string(),
                            a.string())),
            2);
  EXPECT_NE(log().find("density"), std::string::npos) << log();  // the grids the file has
#ifdef DCDM_FOREIGN_VDB_PATH
  const fs::path foreign = dir_ / "foreign.vdb";
  ASSERT_EQ(std::system(fmt::format("{} {}", DCDM_FOREIGN_VDB_PATH, foreign.string()).c_str()), 0);
  const Field<float> f = io::read_vdb_density_box(foreign);
  EXPECT_EQ(f.dims(), (Dims{19, 17, 11}));  // x -3..15, y -1..15, z 5..15
  EXPECT_EQ(f(0, 3, 0), 0.5f);              // (-3, 2, 5)
  EXPECT_EQ(f(7, 0, 1), 0.75f);             // (4, -1, 6)
  EXPECT_EQ(f(11, 9, 3), 0.25f);            // (8, 8, 8): the tile
  EXPECT_EQ(f(18, 16, 10), 0.25f);          // (15, 15, 15): the tile's far corner
  EXPECT_EQ(f(0, 0, 0), 0.0f);
  EXPECT_EQ(io::read_vdb_density_box(foreign, "").dims(), f.dims());  // the first float grid
  EXPECT_EQ(io::read_vdb_density_box(foreign, "temperature").dims(), (Dims{1, 1, 1}));
  EXPECT_THROW(io::read_vdb_density_box(foreign, "density", 100), InputError);  // too many cells
  EXPECT_EQ(cli(fmt::format("render {} --out {} --size 32", foreign.string(), (dir_ / "foreign.png").string())), 0)
      << log();
  EXPECT_TRUE(fs::exists(dir_ / "foreign.png"));
#endif
}

// One bunny everywhere: the simulator's obstacle is the export scene's bunny at the placement
// the simulator documents (scale 0.5, floor 0.3), and --param moves both the same way.
TEST_F(SimCli, BunnyPlacementMatchesTheExportedScene) {
  for (const std::string& extra : {std::string(), std::string(" --param cx=0.4")}) {
    const fs::path run = dir_ / ("run" + std::to_string(extra.size()));
    const fs::path scene = dir_ / ("scene" + std::to_string(extra.size()));
    ASSERT_EQ(cli(fmt::format("simulate --scene bunny --n 32 --frames 1 --export-every 1 --out {}{}", run.string(),
                              extra)),
              0)
        << log();
    ASSERT_EQ(cli(fmt::format("export --scene bunny --n 32 --param scale=0.5 --param floor=0.3{} --out {}", extra,
                              scene.string())),
              0)
        << log();
    const PoissonSystem simulated = load_system(run / "frame_0001");
    const PoissonSystem exported = load_system(scene);
    EXPECT_GT(exported.domain.count(CellType::Solid), 100) << extra;
    EXPECT_EQ(simulated.domain.cells.vector(), exported.domain.cells.vector()) << extra;
    EXPECT_EQ(simulated.domain.faces, exported.domain.faces) << extra;
  }
  EXPECT_EQ(cli(fmt::format("simulate --scene plume --n 16 --frames 1 --param scale=0.4 --out {}", (dir_ / "p").string())), 2)
      << log();
}

}  // namespace
}  // namespace dcdm::sim
