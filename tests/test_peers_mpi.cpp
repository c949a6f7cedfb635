// The hypre peers under mpirun: `mpirun -np N dcdm solve --method hypre-...` splits the grid
// (PFMG: z-slabs) or the rows (BoomerAMG: row blocks) over N ranks. PFMG's red/black cycle does
// not depend on the split, so 1, 2 and 3 ranks take the same iterations to the same solution
// (to rounding in the inner products); BoomerAMG's coarsening and hybrid smoother do depend on
// it, so there the solutions agree to the tolerance. Ranks are oversubscribed (3 on 2 cores).
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "dcdm/io.hpp"
#include "dcdm/peers.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;

namespace {

struct Run {
  int status = -1;
  std::string out;
};

// The variables an earlier test's in-process MPI start (a hypre solve in this binary) left in
// this process's environment: a child mpirun that inherits them takes itself for a rank of
// that run and fails, so they are unset for it.
std::string without_inherited_mpi() {
  std::string out;
  for (char** e = environ; *e; ++e) {
    const std::string v(*e);
    const std::string name = v.substr(0, v.find('='));
    for (const char* prefix : {"OMPI_", "PMIX_", "OPAL_", "PRTE_"})
      if (name.rfind(prefix, 0) == 0 && name != "OMPI_ALLOW_RUN_AS_ROOT" && name != "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM")
        out += " " + name;
  }
  return out.empty() ? std::string() : "unset" + out + "; ";
}

Run shell(const std::string& cmd) {
  FILE* p = popen((without_inherited_mpi() + cmd + " 2>&1").c_str(), "r");
  if (!p) return {};
  Run r;
  char buf[4096];
  std::size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

bool have_mpirun() { return shell("command -v mpirun").status == 0; }

struct Solved {
  int iterations = -1;
  double relative_residual = 0;
  std::vector<double> x;
  std::string out;
};

// `mpirun -np ranks dcdm solve ARGS --json .. --x-out ..` (as root too, oversubscribed).
Solved solve_on(int ranks, const std::string& args, const fs::path& dir) {
  const fs::path json = dir / fmt::format("r{}.json", ranks);
  const fs::path x = dir / fmt::format("r{}.npy", ranks);
  const std::string cmd = fmt::format(
      "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 timeout 300 "
      "mpirun -np {} --oversubscribe {} solve {} --json {} --x-out {}",
      ranks, DCDM_CLI_PATH, args, json.string(), x.string());
  const Run r = shell(cmd);
  Solved s;
  s.out = r.out;
  EXPECT_EQ(r.status, 0) << cmd << "\n" << r.out;
  if (r.status != 0) return s;
  std::ifstream in(json);
  const auto j = nlohmann::json::parse(in);
  s.iterations = j["iterations"].get<int>();
  s.relative_residual = j["relative_residual"].get<double>();
  s.x = dcdm::io::read_vector(x);
  return s;
}

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double a : v) m = std::max(m, std::abs(a));
  return m;
}

double max_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

int count_lines_starting(const std::string& text, const std::string& prefix) {
  int n = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t end = text.find('\n', pos);
    if (text.compare(pos, prefix.size(), prefix) == 0) ++n;
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  return n;
}

}  // namespace

// An off-centre sphere (the unit operator: PFMG reads its stencil) and a closed box (singular:
// the matrix path with a pinned cell), each on 1, 2 and 3 ranks.
TEST(PeersMpi, PfmgTakesTheSameIterationsToTheSameSolutionOnOneTwoThreeRanks) {
  if (!dcdm::hypre_available()) GTEST_SKIP() << "hypre not in this build";
  if (!have_mpirun()) GTEST_SKIP() << "mpirun not found (scripts/setup-deps.sh installs openmpi-bin)";
  const fs::path dir = dcdm::test::fresh_temp_dir("peers_mpi_pfmg");
  for (const std::string scene : {"--scene sphere --n 20 --dims 20,18,22 --param cx=0.37 --param cy=0.58",
                                  "--scene box --n 16 --param open_top=0"}) {
    const std::string args = scene + " --method hypre-pfmg --rtol 1e-10";
    const Solved one = solve_on(1, args, dir);
    ASSERT_GT(one.iterations, 0) << one.out;
    EXPECT_LE(one.relative_residual, 1e-10);
    const double scale = max_abs(one.x);
    ASSERT_GT(scale, 0.0);
    for (int ranks : {2, 3}) {
      const Solved many = solve_on(ranks, args, dir);
      ASSERT_EQ(many.x.size(), one.x.size()) << many.out;
      EXPECT_EQ(many.iterations, one.iterations) << scene << ", " << ranks << " ranks";
      EXPECT_LE(max_diff(many.x, one.x), 1e-8 * scale) << scene << ", " << ranks << " ranks";
      EXPECT_LE(many.relative_residual, 1e-10);
      // Rank 0 alone reports.
      EXPECT_EQ(count_lines_starting(many.out, "iterations "), 1) << many.out;
      EXPECT_NE(many.out.find(fmt::format("({} MPI ranks)", ranks)), std::string::npos) << many.out;
    }
  }
  fs::remove_all(dir);
}

TEST(PeersMpi, BoomerAmgOnTwoAndThreeRanksSolvesTheSameSystem) {
  if (!dcdm::hypre_available()) GTEST_SKIP() << "hypre not in this build";
  if (!have_mpirun()) GTEST_SKIP() << "mpirun not found (scripts/setup-deps.sh installs openmpi-bin)";
  const fs::path dir = dcdm::test::fresh_temp_dir("peers_mpi_amg");
  const std::string args = "--scene sphere --n 20 --param cx=0.37 --method hypre-amg --rtol 1e-10";
  const Solved one = solve_on(1, args, dir);
  ASSERT_GT(one.iterations, 0) << one.out;
  const double scale = max_abs(one.x);
  for (int ranks : {2, 3}) {
    const Solved many = solve_on(ranks, args, dir);
    ASSERT_EQ(many.x.size(), one.x.size()) << many.out;
    EXPECT_LE(many.relative_residual, 1e-10);
    // Both solve A x = b to 1e-10: the solutions agree to about cond(A) * 1e-10.
    EXPECT_LE(max_diff(many.x, one.x), 1e-6 * scale) << ranks << " ranks";
    EXPECT_EQ(count_lines_starting(many.out, "iterations "), 1) << many.out;
  }
  fs::remove_all(dir);
}
