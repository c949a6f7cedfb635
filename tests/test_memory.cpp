// Memory: the matrix-free path (a system without its CSR matrix) gives the same iterates as
// the assembled one, the guard's per-method estimate matches the measured peak, and a grid
// that does not fit is refused before anything large is allocated.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <iterator>

#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_test.hpp"
#include "dcdm/error.hpp"
#include "dcdm/io.hpp"
#include "dcdm/methods.hpp"
#include "dcdm/peers.hpp"
#include "dcdm/poisson.hpp"
#include "dcdm/system.hpp"
#include "../src/linalg/uninitialised.hpp"
#include "vm_flags.hpp"

namespace {

using namespace dcdm;

// The residual history of `method` on `sys`, with the system's matrix given to the solver or
// not (then the methods that factor one assemble it themselves).
std::vector<double> history(const std::string& method, const PoissonSystem& sys, bool give_matrix) {
  const PoissonStencil op(sys.domain);
  const RangeProjector projector(sys.domain);
  LinearSystemView view;
  view.op = &op;
  view.domain = &sys.domain;
  if (give_matrix) view.matrix = &sys.matrix;
  if (projector.singular()) view.project_range = projector.as_function();
  auto solver = make_solver(method);
  solver->setup(view);
  std::vector<double> x(sys.rhs.size(), 0.0);
  SolveOptions options;
  options.rtol = 1e-8;
  options.max_iterations = 300;
  const SolveReport rep = solver->solve(sys.rhs, x, options);
  EXPECT_TRUE(rep.converged()) << method << ": " << rep.detail;
  return rep.residual_history;
}

TEST(MatrixFree, SameIteratesWithAndWithoutTheAssembledMatrix) {
  for (const char* scene : {"obstacles", "pool"}) {  // pool: closed below, open above
    SceneSpec spec;
    spec.name = scene;
    spec.dims = Dims{14, 12, 10};
    spec.seed = 3;
    const PoissonSystem assembled = make_scene_system(spec, RhsKind::Random, 3);
    const PoissonSystem lean = make_scene_system(spec, RhsKind::Random, 3, {}, SystemMatrix::Skip);
    ASSERT_TRUE(assembled.has_matrix());
    ASSERT_FALSE(lean.has_matrix());
    ASSERT_EQ(assembled.rhs, lean.rhs);
    std::vector<std::string> methods = {"cg", "jacobi", "ic0", "mic0", "mgpcg", "dcdm-relax", "eigen-iccg"};
    if (hypre_available()) {
      methods.push_back("hypre-amg");
      methods.push_back("hypre-pfmg");
    }
    for (const auto& method : methods) {
      const auto with = history(method, assembled, true);
      const auto without = history(method, lean, false);
      ASSERT_EQ(with.size(), without.size()) << scene << " " << method;
      for (std::size_t k = 0; k < with.size(); ++k)
        EXPECT_EQ(with[k], without[k]) << scene << " " << method << " iteration " << k;
    }
  }
}

TEST(MatrixFree, SavedWithoutAMatrixAndLoadedWithoutReadingIt) {
  SceneSpec spec;
  spec.name = "sphere";
  spec.dims = Dims{12, 11, 10};
  const PoissonSystem lean = make_scene_system(spec, RhsKind::Smooth, 1, {}, SystemMatrix::Skip);
  const PoissonSystem assembled = make_scene_system(spec, RhsKind::Smooth, 1);
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("dcdm_matrix_free_{}", ::getpid());
  std::filesystem::remove_all(dir);
  save_system(dir, lean);  // assembles for the writing
  const PoissonSystem full = load_system(dir);  // checks A against the flags
  EXPECT_EQ(full.matrix.values, assembled.matrix.values);
  EXPECT_EQ(full.matrix.col_idx, assembled.matrix.col_idx);
  const PoissonSystem read_lean = load_system(dir, SystemMatrix::Skip);
  EXPECT_FALSE(read_lean.has_matrix());
  EXPECT_EQ(read_lean.rhs, assembled.rhs);
  EXPECT_EQ(read_lean.domain.cells.vector(), assembled.domain.cells.vector());
  // A matrix file of another size is still noticed (its header is read).
  {
    std::ofstream bin(dir / "A.bin", std::ios::binary | std::ios::trunc);
    const std::int32_t header[5] = {7, 7, 0, 7, 7};
    bin.write(reinterpret_cast<const char*>(header), sizeof header);
    const std::int32_t offsets[7] = {0, 0, 0, 0, 0, 0, 0};
    bin.write(reinterpret_cast<const char*>(offsets), sizeof offsets);
  }
  try {
    (void)load_system(dir, SystemMatrix::Skip);
    ADD_FAILURE() << "a 7 x 7 A.bin was accepted for a 1320-cell grid";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("A.bin"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}

TEST(MatrixFree, AFolderWithoutMatrixFilesReadsBackTheSameSystem) {
  SceneSpec spec;
  spec.name = "obstacles";
  spec.dims = Dims{13, 10, 9};
  const PoissonSystem sys = make_scene_system(spec, RhsKind::Random, 2, {}, SystemMatrix::Skip);
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("dcdm_no_matrix_files_{}", ::getpid());
  std::filesystem::remove_all(dir);
  save_system(dir, sys);  // with the matrix files first: they must not stay behind
  save_system(dir, sys, MatrixFiles::Omit);
  EXPECT_FALSE(std::filesystem::exists(dir / "A.mtx"));
  EXPECT_FALSE(std::filesystem::exists(dir / "A.bin"));
  EXPECT_FALSE(std::filesystem::exists(dir / "b.bin"));  // the reference format's b goes with its A
  EXPECT_EQ(system_files(sys, MatrixFiles::Omit),
            (std::vector<std::string>{"b.npy", "flags.npy", "system.json"}));
  // The parts overload (the simulator's frames) with the caller's components writes the same
  // folder: the same files and the same system.json.
  const auto parts = dir.string() + "_parts";
  const FluidComponents fc = fluid_components(sys.domain);
  save_system(parts, sys.domain, sys.rhs, sys.meta, MatrixFiles::Omit, &fc);
  for (const char* f : {"b.npy", "flags.npy", "system.json"})
    EXPECT_EQ(io::read_file(dir / f), io::read_file(std::filesystem::path(parts) / f)) << f;
  std::filesystem::remove_all(parts);
  const PoissonSystem full = load_system(dir);
  const CsrMatrix want = assemble_full_grid(sys.domain);
  EXPECT_EQ(full.matrix.values, want.values);
  EXPECT_EQ(full.matrix.col_idx, want.col_idx);
  EXPECT_EQ(full.rhs, sys.rhs);
  const PoissonSystem lean = load_system(dir, SystemMatrix::Skip);
  EXPECT_FALSE(lean.has_matrix());
  EXPECT_EQ(lean.domain.cells.vector(), sys.domain.cells.vector());
  std::filesystem::remove_all(dir);
}

class MemoryGuard : public dcdm::testing::CliTest {
 protected:
  MemoryGuard() : CliTest("memory", 2) {}
};

// Every method's estimate (the process before the system + estimate_solve_bytes) against the
// measured peak of `dcdm solve` (two iterations: every vector and level exists from the first).
TEST_F(MemoryGuard, EstimateWithinAQuarterOfTheMeasuredPeak) {
  std::vector<std::string> methods = {"cg",          "jacobi",      "ic0",        "mic0",
                                      "mgpcg",       "mgpcg:precision=float", "dcdm-relax", "dcdm-flag",
                                      "dcdm-mg",     "dcdm-jacobi", "dcdm-identity", "dpcg", "eigen-iccg"};
  if (hypre_available()) {
    methods.push_back("hypre-amg");
    methods.push_back("hypre-pfmg");
  }
  for (int n : {64, 128}) {
    for (const auto& method : methods) {
      const auto json_path = dir_ / "report.json";
      const int rc = run_cli(fmt::format("solve --scene obstacles --n {} --method {} --max-iterations 2 --quiet --json {}",
                                         n, method, json_path.string()));
      ASSERT_TRUE(rc == 0 || rc == 3) << method << " " << n << ": " << log();
      std::ifstream in(json_path);
      const auto report = nlohmann::json::parse(in);
      const double peak = report["memory"]["peak_resident_bytes"].get<double>();
      const double estimate = report["memory"]["estimate_bytes"].get<double>();
      EXPECT_GT(estimate, 0.75 * peak) << method << " at " << n << "^3: estimate " << estimate << ", peak " << peak;
      EXPECT_LT(estimate, 1.25 * peak) << method << " at " << n << "^3: estimate " << estimate << ", peak " << peak;
    }
  }
}

// 1.9e9 cells: within the grid's index range, far beyond this machine's memory for any
// method. Refused naming the option and both figures, and before anything large is built: the
// child's peak stays that of a process that has only parsed its options.
TEST_F(MemoryGuard, AGridThatDoesNotFitIsRefusedBeforeAllocating) {
  for (const char* method : {"mgpcg", "dcdm-relax", "cg"}) {
    // Run directly (fork + exec, no shell) to read this one child's peak from wait4.
    const std::string log_path = (dir_ / "refused.txt").string();
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd < 0) _exit(99);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::execl(DCDM_CLI_PATH, DCDM_CLI_PATH, "solve", "--scene", "obstacles", "--dims", "1536,1536,800", "--method",
              method, static_cast<char*>(nullptr));
      _exit(98);
    }
    int status = 0;
    rusage usage{};
    ASSERT_EQ(wait4(pid, &status, 0, &usage), pid);
    std::ifstream in(log_path);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ASSERT_TRUE(WIFEXITED(status)) << text;
    EXPECT_EQ(WEXITSTATUS(status), 2) << text;
    EXPECT_NE(text.find("--dims"), std::string::npos) << text;
    EXPECT_NE(text.find("GiB"), std::string::npos) << text;
    EXPECT_NE(text.find(method), std::string::npos) << text;
    EXPECT_LT(usage.ru_maxrss, 200 * 1024) << method << ": a refused run reached " << usage.ru_maxrss << " kB";
  }
}

// Simulator frames without matrix files solve as those with them (the same iterations and
// residual), and hold neither A.mtx nor A.bin.
TEST_F(MemoryGuard, SimulatorFramesWithoutMatrixFilesSolveTheSame) {
  for (const char* files : {"files", "none"}) {
    const auto out = dir_ / files;
    ASSERT_EQ(run_cli(fmt::format("simulate --scene plume --n 16 --frames 2 --export-every 2 --frame-matrix {} --quiet "
                                  "--out {}",
                                  files, out.string())),
              0)
        << log();
    EXPECT_EQ(std::filesystem::exists(out / "frame_0002" / "A.mtx"), std::string(files) == "files");
    ASSERT_EQ(run_cli(fmt::format("solve --system {} --method mgpcg --quiet --json {}", (out / "frame_0002").string(),
                                  (out / "solve.json").string())),
              0)
        << log();
  }
  std::ifstream a(dir_ / "files" / "solve.json"), b(dir_ / "none" / "solve.json");
  const auto ja = nlohmann::json::parse(a), jb = nlohmann::json::parse(b);
  EXPECT_EQ(ja["iterations"], jb["iterations"]);
  EXPECT_EQ(ja["relative_residual"], jb["relative_residual"]);
  EXPECT_EQ(run_cli(fmt::format("simulate --scene plume --n 16 --frames 1 --frame-matrix some --out {}",
                                (dir_ / "bad").string())),
            2);
  EXPECT_NE(log().find("--frame-matrix"), std::string::npos) << log();
}

}  // namespace

// This test binary loads SuperLU_dist (through hypre), whose constructor keeps every freed
// block resident; after restore_allocator_defaults a freed 256 MB temporary leaves the
// resident set again.
TEST(Allocator, FreedLargeBlocksLeaveTheResidentSet) {
  dcdm::restore_allocator_defaults();
  const std::int64_t before = dcdm::resident_bytes();
  {
    std::vector<double> big(32u << 20, 1.0);  // 256 MB, touched
    EXPECT_GT(dcdm::resident_bytes(), before + (200 << 20));
  }
  EXPECT_LT(dcdm::resident_bytes(), before + (32 << 20));
}

// A large grid array starts on a 2 MiB boundary and asks for transparent huge pages (the
// mapping's "hg" flag) on the whole 2 MiB pages inside it, so that first touch takes a fault
// per 2 MiB; a small array is not advised.
TEST(Allocator, LargeGridArraysAskForHugePages) {
  using dcdm::test::vm_flags_at;
  if (!dcdm::test::huge_pages_offered()) GTEST_SKIP() << "transparent huge pages are off here";
  if (const char* v = std::getenv("DCDM_HUGE_PAGES"); v && std::string(v) == "0") GTEST_SKIP() << "DCDM_HUGE_PAGES=0";
  constexpr std::uintptr_t kHuge = std::uintptr_t(2) << 20;
  const auto hg = [&](std::uintptr_t a) { return vm_flags_at(a).find(" hg ") != std::string::npos; };
  // First, before the larger blocks below advise parts of the address space that glibc may reuse.
  dcdm::detail::UninitialisedVector<float> small(std::size_t(1) << 18);  // 1 MiB
  EXPECT_FALSE(hg(reinterpret_cast<std::uintptr_t>(small.data())));
  {
    // 33 MiB: 16 whole huge pages from its first byte, then a 1 MiB tail.
    dcdm::detail::UninitialisedVector<float> big((std::size_t(33) << 20) / sizeof(float));
    const auto begin = reinterpret_cast<std::uintptr_t>(big.data());
    EXPECT_EQ(begin % kHuge, 0u);
    EXPECT_TRUE(hg(begin)) << vm_flags_at(begin);
    EXPECT_TRUE(hg(begin + 16 * kHuge - 1)) << vm_flags_at(begin + 16 * kHuge - 1);
    EXPECT_FALSE(hg(begin - 1));
  }
  {
    // 3 MiB: its first 2 MiB in a huge page.
    dcdm::detail::UninitialisedVector<std::uint8_t> mid(std::size_t(3) << 20);
    const auto begin = reinterpret_cast<std::uintptr_t>(mid.data());
    EXPECT_EQ(begin % kHuge, 0u);
    EXPECT_TRUE(hg(begin)) << vm_flags_at(begin);
    EXPECT_TRUE(hg(begin + kHuge - 1));
  }
  // A vector growing element by element keeps its values across the blocks.
  dcdm::detail::UninitialisedVector<std::int64_t> grown;
  for (std::int64_t q = 0; q < (std::int64_t(1) << 20); ++q) grown.push_back(3 * q);
  for (std::int64_t q = 0; q < (std::int64_t(1) << 20); q += 4099) ASSERT_EQ(grown[static_cast<std::size_t>(q)], 3 * q);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(grown.data()) % kHuge, 0u);  // 8 MiB capacity by now
}

// An arena lays its arrays end to end (aligned) in one reservation advised for huge pages, keeps
// their values, and gives a request beyond the reservation a block of its own, which it frees.
TEST(Allocator, ArenaKeepsArraysEndToEndAndFallsBackBeyondIt) {
  using dcdm::detail::Arena;
  using dcdm::detail::ArenaAllocator;
  using dcdm::detail::ArenaVector;
  Arena arena(std::size_t(8) << 20);
  ArenaVector<float> a{ArenaAllocator<float>(&arena)};
  a.assign(1000, 1.5f);
  ArenaVector<std::int64_t> b{ArenaAllocator<std::int64_t>(&arena)};
  b.assign(300000, 7);  // 2.4 MB
  ASSERT_TRUE(arena.owns(a.data()));
  ASSERT_TRUE(arena.owns(b.data()));
  const auto pa = reinterpret_cast<std::uintptr_t>(a.data()), pb = reinterpret_cast<std::uintptr_t>(b.data());
  EXPECT_EQ(pb % 64, 0u);
  EXPECT_GE(pb, pa + 1000 * sizeof(float));
  EXPECT_LT(pb, pa + 1000 * sizeof(float) + 64);
  EXPECT_EQ(arena.used(), pb - pa + 300000 * sizeof(std::int64_t));
  {
    ArenaVector<double> c{ArenaAllocator<double>(&arena)};
    c.assign(std::size_t(1) << 21, 2.0);  // 16 MiB: more than is left
    EXPECT_FALSE(arena.owns(c.data()));
    EXPECT_EQ(c[123456], 2.0);
  }
  for (std::size_t q = 0; q < a.size(); q += 97) ASSERT_EQ(a[q], 1.5f);
  for (std::size_t q = 0; q < b.size(); q += 977) ASSERT_EQ(b[q], 7);
  const char* off = std::getenv("DCDM_HUGE_PAGES");
  if (dcdm::test::huge_pages_offered() && !(off && std::string(off) == "0")) {
    EXPECT_EQ(pa % (std::uintptr_t(2) << 20), 0u);  // the first array starts the reservation
    EXPECT_NE(dcdm::test::vm_flags_at(pa).find(" hg "), std::string::npos) << dcdm::test::vm_flags_at(pa);
  }
}

// Inside a DeferredSync the atomic writers rename without syncing each file (sync_filesystem
// later makes them durable): the files are whole and read back; the scope nests and ends.
TEST(Allocator, DeferredSyncWritesWholeFiles) {
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("dcdm_deferred_sync_{}", ::getpid());
  std::filesystem::create_directories(dir);
  EXPECT_FALSE(io::sync_deferred());
  std::vector<double> v(100000);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = 0.5 * double(i);
  {
    const io::DeferredSync outer;
    {
      const io::DeferredSync inner;
      EXPECT_TRUE(io::sync_deferred());
      io::write_npy(dir / "v.npy", v, {});
    }
    EXPECT_TRUE(io::sync_deferred());
    io::write_file_atomic(dir / "t.txt", "text\n");
  }
  EXPECT_FALSE(io::sync_deferred());
  io::sync_filesystem(dir);
  EXPECT_EQ(io::read_npy(dir / "v.npy").to_double(), v);
  EXPECT_EQ(io::read_file(dir / "t.txt"), "text\n");
  EXPECT_THROW(io::sync_filesystem(dir / "missing"), InputError);
  std::filesystem::remove_all(dir);
}

// Large files go past the page cache (O_DIRECT where the filesystem allows it) through an
// aligned buffer: sizes that are not whole blocks come back exactly, through AtomicFile and
// through write_npy; small files and a wrong expected size still write whole files.
TEST(Allocator, DirectWritesKeepEveryByte) {
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("dcdm_direct_{}", ::getpid());
  std::filesystem::create_directories(dir);
  std::string bytes(9 * 1048576 + 12345, '\0');
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>((i * 131 + 7) % 251);
  {
    io::AtomicFile f(dir / "raw.bin", bytes.size());
    f.write(bytes.data(), 1000);                 // several writes, across the staging buffer
    f.write(bytes.data() + 1000, 5 * 1048576);
    f.write(bytes.data() + 1000 + 5 * 1048576, bytes.size() - 1000 - 5 * 1048576);
    f.commit();
  }
  EXPECT_EQ(io::read_file(dir / "raw.bin"), bytes);
  std::vector<double> v(1234567);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = 0.25 * double(i) - 3.0;
  io::write_npy(dir / "v.npy", v, {});
  EXPECT_EQ(io::read_npy(dir / "v.npy").to_double(), v);
  {
    io::AtomicFile small(dir / "small.txt", 3);
    EXPECT_FALSE(small.direct());
    small.write("abc");
    small.commit();
  }
  EXPECT_EQ(io::read_file(dir / "small.txt"), "abc");
  {
    io::AtomicFile wrong(dir / "wrong.bin", 64u << 20);  // expects more than it gets
    wrong.write("only this");
    wrong.commit();
  }
  EXPECT_EQ(io::read_file(dir / "wrong.bin"), "only this");
  {
    io::AtomicFile abandoned(dir / "abandoned.bin", 16u << 20);
    abandoned.write(bytes.data(), 4096);
  }  // no commit: nothing stays
  EXPECT_FALSE(std::filesystem::exists(dir / "abandoned.bin"));
  std::size_t left = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) left += e.path().string().find(".tmp.") != std::string::npos;
  EXPECT_EQ(left, 0u);
  std::filesystem::remove_all(dir);
}
