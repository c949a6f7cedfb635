// `dcdm solve` end to end: exit statuses (0 converged, 3 not converged, 2 bad input), the
// JSON report, --x-out / --x0 round trips, matrix + rhs input against a direct solve.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "cli_test.hpp"
#include <nlohmann/json.hpp>

#include "dcdm/io.hpp"
#include "dcdm/system.hpp"
#include "test_krylov_systems.hpp"

using namespace dcdm;
using namespace dcdm::testing;

namespace {

namespace fs = std::filesystem;

class CliSolve : public dcdm::testing::CliTest {
 protected:
  CliSolve() : CliTest("cli_solve", 1) {}
  int cli(const std::string& args) { return run_cli("solve " + args); }
  nlohmann::json json(const fs::path& p) const {
    std::ifstream in(p);
    return nlohmann::json::parse(in);
  }
};

TEST_F(CliSolve, SceneSolveWritesReportAndSolution) {
  const fs::path out = dir_ / "r.json", x = dir_ / "x.npy";
  ASSERT_EQ(cli(fmt::format("--scene box --dims 13,9,11 --method mgpcg --rtol 1e-8 --monitor --json {} --x-out {}",
                            out.string(), x.string())),
            0)
      << log();
  const std::string text = log();
  EXPECT_NE(text.find("KSP Residual norm"), std::string::npos) << text;
  EXPECT_NE(text.find("Linear solve converged due to CONVERGED_RTOL"), std::string::npos) << text;
  const auto j = json(out);
  EXPECT_EQ(j["reason"], "converged-rtol");
  EXPECT_TRUE(j["converged"].get<bool>());
  EXPECT_LE(j["relative_residual"].get<double>(), 1e-8);
  EXPECT_EQ(j["residual_history"].size(), j["iterations"].get<std::size_t>() + 1);
  EXPECT_EQ(j["system"]["dims"], nlohmann::json({13, 9, 11}));
  const io::NpyArray a = io::read_npy(x);
  EXPECT_EQ(a.shape, (std::vector<std::int64_t>{11, 9, 13}));
}

TEST_F(CliSolve, NotConvergedExitsThreeAndBadInputTwo) {
  EXPECT_EQ(cli("--scene box --n 12 --method cg --max-iterations 2"), 3) << log();
  EXPECT_NE(log().find("DIVERGED_ITS"), std::string::npos) << log();
  EXPECT_EQ(cli("--scene box --n 12 --method nosuchmethod"), 2) << log();
  EXPECT_NE(log().find("unknown method"), std::string::npos) << log();
  EXPECT_EQ(cli("--n 12 --method cg"), 2) << log();                          // no system given
  EXPECT_EQ(cli("--scene box --n 12 --rtol 5"), 2) << log();                   // absurd tolerance
  EXPECT_EQ(cli("--scene box --n 12 --method mgpcg:omega=2"), 2) << log();     // not a contraction
  EXPECT_NE(log().find("omega=2"), std::string::npos) << log();
  EXPECT_EQ(cli("--scene box --n 12 --method mgpcg:precision=half"), 2) << log();
  EXPECT_EQ(cli("--scene box --n 12 --method dcdm-mg:sweeps=x"), 2) << log();
  EXPECT_EQ(cli(fmt::format("--matrix {}", (dir_ / "missing.mtx").string())), 2) << log();
}

TEST_F(CliSolve, MatrixAndRhsMatchADirectSolveForEveryMethod) {
  const Domain d = mixed_singular_domain({9, 7, 8});
  const CsrMatrix a = assemble_reference(d);
  const Vector b = random_rhs(d, 5);
  const Vector ref = direct_solve(d, a, b);
  io::write_matrix_market(dir_ / "A.mtx", a);
  io::write_npy(dir_ / "b.npy", b, {static_cast<std::int64_t>(b.size())});
  for (std::string m : {"cg", "jacobi", "ic0", "mic0", "dpcg", "mgpcg", "mgpcg:omega=1.4:band-omega=1.6:precision=float",
                        "dcdm-mg:omega=1.3:precision=float"}) {
    const fs::path x = dir_ / ("x_" + std::to_string(std::hash<std::string>{}(m)) + ".npy");
    ASSERT_EQ(cli(fmt::format("--matrix {} --rhs {} --dims 9,7,8 --method {} --rtol 1e-10 --x-out {}",
                              (dir_ / "A.mtx").string(), (dir_ / "b.npy").string(), m, x.string())),
              0)
        << m << "\n" << log();
    Vector sol = io::read_npy_vector(x);
    if (auto p = projector(d)) p(sol);
    EXPECT_LT(relative_error(sol, ref), 1e-7) << m;
  }
  // Warm start from the exact solution: no iteration.
  const fs::path x0 = dir_ / "x0.npy", report = dir_ / "warm.json";
  io::write_npy(x0, ref, {static_cast<std::int64_t>(ref.size())});
  ASSERT_EQ(cli(fmt::format("--matrix {} --rhs {} --method mic0 --x0 {} --json {}", (dir_ / "A.mtx").string(),
                            (dir_ / "b.npy").string(), x0.string(), report.string())),
            0)
      << log();
  EXPECT_EQ(json(report)["iterations"], 0);
  // A right-hand side with a NaN is bad input.
  Vector bad = b;
  bad[3] = std::nan("");
  io::write_npy(dir_ / "bad.npy", bad, {static_cast<std::int64_t>(bad.size())});
  EXPECT_EQ(cli(fmt::format("--matrix {} --rhs {}", (dir_ / "A.mtx").string(), (dir_ / "bad.npy").string())), 2)
      << log();
  // Wrong size of x0.
  io::write_npy(dir_ / "short.npy", Vector(5, 0.0), {5});
  EXPECT_EQ(cli(fmt::format("--matrix {} --rhs {} --x0 {}", (dir_ / "A.mtx").string(), (dir_ / "b.npy").string(),
                            (dir_ / "short.npy").string())),
            2)
      << log();
}

TEST_F(CliSolve, IndefiniteMatrixBreaksDownWithExitThree) {
  std::vector<Triplet> t;
  for (int i = 0; i < 50; ++i) {
    t.push_back({i, i, -1.0});
    if (i > 0) t.push_back({i, i - 1, -1.0});
    if (i + 1 < 50) t.push_back({i, i + 1, -1.0});
  }
  io::write_matrix_market(dir_ / "A.mtx", CsrMatrix::from_triplets(50, 50, t));
  EXPECT_EQ(cli(fmt::format("--matrix {} --method cg", (dir_ / "A.mtx").string())), 3) << log();
  EXPECT_NE(log().find("DIVERGED_INDEFINITE_MAT"), std::string::npos) << log();
}

// --rhs with --system replaces the folder's b (it was silently ignored): linearity checks the
// answer; a NaN, a wrong size or values on non-fluid cells are exit 2 naming the file.
TEST_F(CliSolve, SystemFolderWithAnotherRightHandSide) {
  const fs::path sys = dir_ / "sys";
  ASSERT_EQ(run_cli(fmt::format("export --scene sphere --n 12 --out {}", sys.string())), 0) << log();
  const PoissonSystem folder = load_system(sys);
  std::vector<double> twice = folder.rhs;
  for (double& v : twice) v *= 2.0;
  io::write_npy(dir_ / "b2.npy", twice, {static_cast<std::int64_t>(twice.size())});
  const fs::path x1 = dir_ / "x1.npy", x2 = dir_ / "x2.npy";
  ASSERT_EQ(cli(fmt::format("--system {} --method mgpcg --rtol 1e-12 --x-out {}", sys.string(), x1.string())), 0) << log();
  ASSERT_EQ(cli(fmt::format("--system {} --rhs {} --method mgpcg --rtol 1e-12 --x-out {}", sys.string(),
                            (dir_ / "b2.npy").string(), x2.string())),
            0)
      << log();
  const auto a = io::read_vector(x1), b = io::read_vector(x2);
  ASSERT_EQ(a.size(), b.size());
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(b[i] - 2.0 * a[i]));
    scale = std::max(scale, std::abs(a[i]));
  }
  EXPECT_GT(scale, 0.0);
  EXPECT_LE(diff, 1e-8 * scale);

  std::vector<double> bad = twice;
  bad[bad.size() / 2] = std::nan("");
  io::write_npy(dir_ / "nan.npy", bad, {static_cast<std::int64_t>(bad.size())});
  EXPECT_EQ(cli(fmt::format("--system {} --rhs {} --method cg", sys.string(), (dir_ / "nan.npy").string())), 2) << log();
  EXPECT_NE(log().find("nan.npy"), std::string::npos) << log();
  io::write_npy(dir_ / "short.npy", std::vector<double>(10, 1.0), {10});
  EXPECT_EQ(cli(fmt::format("--system {} --rhs {} --method cg", sys.string(), (dir_ / "short.npy").string())), 2) << log();
  EXPECT_NE(log().find("short.npy"), std::string::npos) << log();
  std::vector<double> off = twice;
  for (std::size_t c = 0; c < off.size(); ++c)
    if (folder.domain.cells[static_cast<std::int64_t>(c)] != CellType::Fluid) off[c] = 1.0;
  io::write_npy(dir_ / "off.npy", off, {static_cast<std::int64_t>(off.size())});
  EXPECT_EQ(cli(fmt::format("--system {} --rhs {} --method cg", sys.string(), (dir_ / "off.npy").string())), 2) << log();
  EXPECT_NE(log().find("not fluid"), std::string::npos) << log();
  EXPECT_EQ(cli(fmt::format("--system {} --rhs smooth --method cg", sys.string())), 2) << log();
}

}  // namespace
