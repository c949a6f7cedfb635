// Options as a hostile user gives them: every number option of every subcommand refuses NaN
// and infinities (exit 2, naming the option), methods that take no settings refuse them, and
// --model must reach a method that runs a model, once.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "cli_test.hpp"
#include "dcdm/io.hpp"
#include "dcdm/system.hpp"

namespace {

class CliOptions : public dcdm::testing::CliTest {
 protected:
  CliOptions() : CliTest("options", 1) {}

  std::vector<std::string> subcommands() {
    EXPECT_EQ(run_cli("--help"), 0) << log();
    const std::string text = log();
    std::vector<std::string> names;
    const auto at = text.find("Subcommands:");
    const std::regex line(R"(\n  ([a-z]+)\s)");
    for (std::sregex_iterator it(text.begin() + static_cast<std::ptrdiff_t>(at), text.end(), line), end; it != end; ++it)
      names.push_back((*it)[1]);
    return names;
  }
};

TEST_F(CliOptions, EveryNumberOptionRefusesNanAndInfinity) {
  int checked = 0;
  for (const std::string& sub : subcommands()) {
    ASSERT_EQ(run_cli(sub + " --help"), 0) << sub << ": " << log();
    const std::string help = log();
    // "  --rtol FLOAT ..." (CLI11 prints the type after the option name).
    const std::regex option(R"(\n\s+(?:-\w,)?(--[a-z0-9-]+) FLOAT)");
    std::vector<std::string> options;
    for (std::sregex_iterator it(help.begin(), help.end(), option), end; it != end; ++it) options.push_back((*it)[1]);
    for (const std::string& opt : options) {
      for (const char* bad : {"nan", "inf", "-inf", "1e999"}) {
        const int rc = run_cli(fmt::format("{} {} {}", sub, opt, bad));
        EXPECT_EQ(rc, 2) << "dcdm " << sub << " " << opt << " " << bad << ": " << log();
        EXPECT_NE(log().find(opt), std::string::npos) << "dcdm " << sub << " " << opt << " " << bad << ": " << log();
        // An option's own range check may answer first for the infinities; NaN passes every
        // range comparison, so only the finiteness check can stop it.
        if (std::string(bad) == "nan") {
          EXPECT_NE(log().find("not a finite number"), std::string::npos) << sub << " " << opt << ": " << log();
        }
      }
      ++checked;
    }
  }
  // solve, simulate, bench, train, eval ... have many; the help parser must have found them.
  EXPECT_GE(checked, 10);
}

TEST_F(CliOptions, MethodSettingsAndModelsAreNotIgnored) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"solve --scene box --n 8 --method cg:foo=bar", "'cg' takes no settings (got 'cg:foo=bar')"},
      {"solve --scene box --n 8 --method ic0:x", "'ic0' takes no settings"},
      {"solve --scene box --n 8 --method mgpcg --model relaxnet", "no chosen method runs a model"},
      {"solve --scene box --n 8 --method dcdm-relax:relaxnet --model relaxnet", "give the model once"},
      {"bench --scenes box --n 8 --methods cg,mgpcg --model relaxnet --out " + (dir_ / "b").string(),
       "no chosen method runs a model"},
      {"dataset --scene box --n 8 --ritz 10 --samples 2 --theta -1 --out " + (dir_ / "d1").string(), "--theta"},
      {"dataset --scene box --n 8 --ritz 10 --samples 2 --theta 6 --out " + (dir_ / "d2").string(), "exceeds m/2"},
      {"dataset --scene box --n 8 --ritz 10 --samples 2 --shard-size 0 --out " + (dir_ / "d3").string(),
       "--shard-size"},
  };
  for (const auto& [args, message] : cases) {
    EXPECT_EQ(run_cli(args), 2) << args << ": " << log();
    EXPECT_NE(log().find(message), std::string::npos) << args << ": " << log();
  }
  // The same model given once runs.
  EXPECT_EQ(run_cli("solve --scene box --n 8 --method dcdm-relax --model relaxnet --quiet"), 0) << log();
}

// Outputs that cannot be written and inputs the bench cannot use are exit 2 naming the path,
// not "internal error" or an "unavailable" row with exit 0.
TEST_F(CliOptions, UnusableOutputsAndBenchInputsAreExitTwo) {
  const std::string file = (dir_ / "a_file").string();
  { std::ofstream(file) << "x"; }
  const std::string blocked = file + "/sub";
  for (const std::string& args :
       {"simulate --n 8 --frames 1 --out " + blocked, "bench --scenes box --n 8 --methods cg --no-plots --out " + blocked,
        "export --scene box --n 8 --out " + blocked}) {
    EXPECT_EQ(run_cli(args), 2) << args << ": " << log();
    EXPECT_NE(log().find(blocked), std::string::npos) << args << ": " << log();
    EXPECT_EQ(log().find("internal error"), std::string::npos) << args << ": " << log();
  }
  // A folder that is not a system, and a model file that is not a model.
  const std::string empty = (dir_ / "empty").string();
  std::filesystem::create_directories(empty);
  EXPECT_EQ(run_cli("bench --systems " + empty + " --methods cg --no-plots --out " + (dir_ / "b1").string()), 2) << log();
  EXPECT_NE(log().find("--systems"), std::string::npos) << log();
  EXPECT_NE(log().find("empty"), std::string::npos) << log();
  EXPECT_EQ(run_cli("bench --scenes box --n 8 --methods cg,dcdm-relax:" + file + " --no-plots --out " +
                    (dir_ / "b2").string()),
            2)
      << log();
  EXPECT_NE(log().find(file), std::string::npos) << log();
}

// A right-hand side with values on rows of A that are empty (cells outside the fluid) has no
// solution: exit 2 naming the vector file, not a stagnating solve.
TEST_F(CliOptions, RightHandSideOnEmptyRowsIsExitTwo) {
  const auto sys = dir_ / "sphere";
  ASSERT_EQ(run_cli("export --scene sphere --n 10 --out " + sys.string()), 0) << log();
  dcdm::PoissonSystem s = dcdm::load_system(sys);
  std::int64_t outside = -1;
  for (std::int64_t c = 0; c < s.domain.dims().size() && outside < 0; ++c)
    if (s.domain.cells[c] != dcdm::CellType::Fluid) outside = c;
  ASSERT_GE(outside, 0);
  s.rhs[static_cast<std::size_t>(outside)] = 1.0;
  const auto bad = dir_ / "bad_b.npy";
  dcdm::io::write_npy(bad, s.rhs, {10, 10, 10});
  EXPECT_EQ(run_cli("solve --matrix " + (sys / "A.mtx").string() + " --rhs " + bad.string() + " --method cg"), 2)
      << log();
  EXPECT_NE(log().find("bad_b.npy: 1 non-zero values on rows that are empty"), std::string::npos) << log();
  EXPECT_NE(log().find(fmt::format("row {}", outside)), std::string::npos) << log();
  EXPECT_EQ(run_cli("solve --matrix " + (sys / "A.mtx").string() + " --rhs " + (sys / "b.npy").string() +
                    " --method cg --quiet"),
            0)
      << log();
}

// A method that refuses a matrix names the file and the row (counted from 0).
TEST_F(CliOptions, RefusedMatrixNamesTheFileAndRow) {
  const auto file = dir_ / "indefinite.mtx";
  {
    std::ofstream m(file);
    m << "%%MatrixMarket matrix coordinate real symmetric\n3 3 4\n1 1 2\n2 1 -1\n2 2 -3\n3 3 2\n";
  }
  for (const char* method : {"ic0", "jacobi"}) {
    EXPECT_EQ(run_cli(fmt::format("solve --matrix {} --method {}", file.string(), method)), 2) << log();
    EXPECT_NE(log().find(file.string() + ": " + method + ": the diagonal of row 1 (counting from 0) is -3"),
              std::string::npos)
        << log();
  }
}

}  // namespace

// dpcg's set-up (3k Lanczos steps with full re-orthogonalisation, about (3k)^2 N work) ran
// for hours at a large --dpcg-k: beyond the bound for the grid it is exit 2 naming the option
// and the largest k allowed; within it the method runs.
TEST_F(CliOptions, DpcgKBeyondWhatTheGridAllowsInReasonableTimeIsExitTwo) {
  EXPECT_EQ(run_cli("solve --scene box --n 64 --method dpcg --dpcg-k 300 --quiet"), 2) << log();
  EXPECT_NE(log().find("--dpcg-k: 300 Ritz vectors on 262144 unknowns"), std::string::npos) << log();
  EXPECT_NE(log().find("--dpcg-k may be at most 205"), std::string::npos) << log();
  EXPECT_EQ(run_cli("solve --scene box --n 16 --method dpcg --dpcg-k 100 --quiet"), 0) << log();
}
