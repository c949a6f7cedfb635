// `dcdm bench` end to end on a tiny grid: exit status, table shape, every method converged
// to the requested tolerance (true residual), valid JSON, PNG plots written.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "dcdm/peers.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;

namespace {

struct CliRun {
  int status;
  std::string out;
};

// `dcdm ARGS`, or with tool = false the command line ARGS as it is (e.g. behind timeout).
CliRun run_cli(const std::string& args, bool tool = true) {
  const std::string cmd = (tool ? std::string(DCDM_CLI_PATH) + " " : std::string()) + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return {-1, ""};
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

bool is_png(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  char sig[8] = {};
  in.read(sig, 8);
  return in && std::string(sig, 8) == std::string("\x89PNG\r\n\x1a\n", 8);
}

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("dcdm_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  dcdm::test::remove_at_exit(d);
  return d;
}

}  // namespace

TEST(CliBench, TinyGridEndToEnd) {
  const fs::path out = fresh_dir("bench");
  const std::string methods = "cg,mgpcg,hypre-amg,hypre-pfmg,eigen-iccg";
  const CliRun r = run_cli("bench --scenes plume,bunny --n 12,10x12x14 --methods " + methods +
                        " --rtol 1e-4,1e-7 --repeat 2 --threads 1 --out " + out.string());
  ASSERT_EQ(r.status, 0) << r.out;

  // Markdown table: header, separator, one row per system x method x rtol.
  std::istringstream lines(r.out);
  std::string line;
  int header = 0, rows = 0;
  while (std::getline(lines, line)) {
    if (line.rfind("| system |", 0) == 0) ++header;
    else if (line.rfind("| plume-", 0) == 0 || line.rfind("| bunny-", 0) == 0) {
      ++rows;
      EXPECT_EQ(std::count(line.begin(), line.end(), '|'), 15) << line;
      EXPECT_NE(line.find("| converged |"), std::string::npos) << line;
      // The whole process's bytes a cell (the column before the status): more than the
      // system's own (b, x and the flags alone are 17 bytes a cell).
      const auto end = line.rfind("| converged |");
      const auto start = line.rfind('|', end - 1);
      EXPECT_GT(std::stod(line.substr(start + 1, end - start - 1)), 17.0) << line;
    }
  }
  EXPECT_EQ(header, 1);
  EXPECT_EQ(rows, 4 * 5 * 2);

  std::ifstream jf(out / "bench.json");
  ASSERT_TRUE(jf.good());
  const nlohmann::json doc = nlohmann::json::parse(jf);  // throws on invalid JSON
  ASSERT_EQ(doc["results"].size(), 40u);
  std::set<std::string> methods_seen;
  for (const auto& res : doc["results"]) {
    const std::string m = res["method"];
    methods_seen.insert(m);
    EXPECT_EQ(res["status"], "converged") << res.dump();
    EXPECT_LE(res["true_relative_residual"].get<double>(), res["rtol"].get<double>()) << m;
    EXPECT_GT(res["iterations"].get<int>(), 0) << m;
    EXPECT_GT(res["fluid_cells"].get<int>(), 0);
    EXPECT_EQ(res["setup_runs"].size(), 2u);
    EXPECT_EQ(res["cpu_runs"].size(), 2u);
    EXPECT_GT(res["cpu_seconds"].get<double>(), 0.0) << m;
    EXPECT_GE(res["history"].size(), 2u) << m;
  }
  EXPECT_EQ(methods_seen.size(), 5u);
  EXPECT_TRUE(doc["machine"].contains("cpu_model"));
  EXPECT_NE(doc["command"].get<std::string>().find("bench"), std::string::npos);

  ASSERT_EQ(doc["plots"].size(), 9u);  // 4 systems x (iterations, time) + the summary bar chart
  for (const auto& p : doc["plots"]) {
    EXPECT_TRUE(is_png(p.get<std::string>())) << p;
    EXPECT_GT(fs::file_size(p.get<std::string>()), 1000u);
  }
  EXPECT_TRUE(is_png(out / "plume-12x12x12_residual_iterations.png"));
  EXPECT_TRUE(is_png(out / "summary_time.png"));
  fs::remove_all(out);
}

// --interleave: three rounds of one run per method, pooled. Every row has three runs, its
// medians are the medians of those runs, the stderr log shows the methods in turn, and a
// failing method is still reported, not fatal.
TEST(CliBench, InterleavedRoundsArePooled) {
  const fs::path out = fresh_dir("bench_interleave");
  const CliRun r = run_cli("bench --scenes plume --n 12 --methods cg,mgpcg,hypre-amg:nosuch=1 --rtol 1e-4,1e-6 "
                           "--repeat 3 --interleave --threads 1 --no-plots --out " + out.string());
  ASSERT_EQ(r.status, 0) << r.out;
  // The log: round 1 of every method before round 2 of any.
  const auto cg2 = r.out.find("cg (round 2/3)"), mg1 = r.out.find("mgpcg (round 1/3)");
  ASSERT_NE(cg2, std::string::npos) << r.out;
  ASSERT_NE(mg1, std::string::npos) << r.out;
  EXPECT_LT(mg1, cg2);
  std::ifstream jf(out / "bench.json");
  const nlohmann::json doc = nlohmann::json::parse(jf);
  EXPECT_TRUE(doc["settings"]["interleave"].get<bool>());
  ASSERT_EQ(doc["results"].size(), 6u);
  const auto median3 = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[1];
  };
  for (const auto& res : doc["results"]) {
    const std::string m = res["method"];
    if (m.rfind("hypre-amg", 0) == 0) {
      EXPECT_NE(res["status"], "converged");
      EXPECT_FALSE(res["detail"].get<std::string>().empty());
      continue;
    }
    EXPECT_EQ(res["status"], "converged") << res.dump();
    const auto setup = res["setup_runs"].get<std::vector<double>>();
    const auto solve = res["solve_runs"].get<std::vector<double>>();
    ASSERT_EQ(setup.size(), 3u) << m;
    ASSERT_EQ(solve.size(), 3u) << m;
    EXPECT_EQ(res["cpu_runs"].size(), 3u) << m;
    EXPECT_DOUBLE_EQ(res["setup_seconds"].get<double>(), median3(setup)) << m;
    EXPECT_DOUBLE_EQ(res["solve_seconds"].get<double>(), median3(solve)) << m;
    EXPECT_DOUBLE_EQ(res["total_seconds"].get<double>(),
                     median3({setup[0] + solve[0], setup[1] + solve[1], setup[2] + solve[2]})) << m;
  }
  fs::remove_all(out);
}

// An exported folder through --systems, with every method on two threads: the bench reads the
// folder in the parent before forking the runs, which must not leave the parent with a
// started OpenMP team (a child forked from one deadlocks in its first parallel region).
TEST(CliBench, SystemFoldersRunOnSeveralThreads) {
  const fs::path out = fresh_dir("bench_systems");
  ASSERT_EQ(run_cli("export --scene sphere --n 24 --out " + (out / "sys").string()).status, 0);
  const CliRun r = run_cli("timeout 300 env OMP_NUM_THREADS=2 " + std::string(DCDM_CLI_PATH) + " bench --systems " +
                           (out / "sys").string() + " --methods cg,mgpcg,dcdm-relax --rtol 1e-6 --threads 2 --repeat 1 --no-plots --out " +
                           (out / "b").string(), false);
  ASSERT_EQ(r.status, 0) << r.out;
  std::ifstream jf(out / "b" / "bench.json");
  const nlohmann::json doc = nlohmann::json::parse(jf);
  ASSERT_EQ(doc["results"].size(), 3u);
  for (const auto& res : doc["results"]) EXPECT_EQ(res["status"], "converged") << res.dump();
  fs::remove_all(out);
}

TEST(CliBench, BadOptionsAreInputErrors) {
  const fs::path out = fresh_dir("bench_bad");
  EXPECT_EQ(run_cli("bench --scenes plume --n 8 --methods nosuch --out " + out.string()).status, 2);
  EXPECT_EQ(run_cli("bench --scenes nosuchscene --n 8 --methods cg --out " + out.string()).status, 2);
  EXPECT_EQ(run_cli("bench --scenes plume --n 8 --rtol 2 --methods cg --out " + out.string()).status, 2);
  EXPECT_EQ(run_cli("bench --methods cg --out " + out.string()).status, 2);
  EXPECT_EQ(run_cli("bench --systems /nonexistent/folder --methods cg --out " + out.string()).status, 2);
  fs::remove_all(out);
}

TEST(CliBench, FailingMethodIsReportedNotFatal) {
  // A method whose setting its library refuses: that row says why, the others still run. (A
  // model file that does not exist is bad input, exit 2, before anything runs.)
  const fs::path out = fresh_dir("bench_fail");
  const CliRun missing = run_cli("bench --scenes plume --n 8 --methods cg,dcdm:/nonexistent.model --rtol 1e-4 "
                                 "--repeat 1 --no-plots --out " + out.string());
  EXPECT_EQ(missing.status, 2) << missing.out;
  EXPECT_NE(missing.out.find("/nonexistent.model"), std::string::npos) << missing.out;
  const CliRun r = run_cli("bench --scenes plume --n 8 --methods cg,hypre-amg:nosuch=1 --rtol 1e-4 --repeat 1 "
                        "--no-plots --out " + out.string());
  ASSERT_EQ(r.status, 0) << r.out;
  std::ifstream jf(out / "bench.json");
  const nlohmann::json doc = nlohmann::json::parse(jf);
  ASSERT_EQ(doc["results"].size(), 2u);
  EXPECT_EQ(doc["results"][0]["status"], "converged");
  EXPECT_NE(doc["results"][1]["status"], "converged");
  EXPECT_FALSE(doc["results"][1]["detail"].get<std::string>().empty());
  fs::remove_all(out);
}

TEST(CliBench, PeerSettingsFromTheMethodSpec) {
  // Settings after the method name reach the peer (each row named by its spec); a bad setting
  // is that row's error, named in its detail, and the other rows still run.
  const fs::path out = fresh_dir("bench_settings");
  const CliRun r = run_cli("bench --scenes bunny --n 10 --methods eigen-iccg:ordering=amd,"
                           "hypre-amg:theta=0.5:agg=0:relax=8,hypre-pfmg:relax=1:skip=1,hypre-amg:nosuch=1,"
                           "amgcl:relax=gs:coarse=100 "
                           "--rtol 1e-6 --repeat 1 --threads 1 --no-plots --out " + out.string());
  ASSERT_EQ(r.status, 0) << r.out;
  std::ifstream jf(out / "bench.json");
  const nlohmann::json doc = nlohmann::json::parse(jf);
  ASSERT_EQ(doc["results"].size(), 5u);
  for (const auto& res : doc["results"]) {
    const std::string m = res["method"];
    if (m == "hypre-amg:nosuch=1") {
      EXPECT_EQ(res["status"], "unavailable") << res.dump();
      EXPECT_NE(res["detail"].get<std::string>().find("nosuch"), std::string::npos) << res.dump();
    } else if (m.rfind("hypre", 0) == 0 && !dcdm::hypre_available()) {
      EXPECT_EQ(res["status"], "unavailable") << res.dump();
    } else if (m.rfind("amgcl", 0) == 0 && !dcdm::amgcl_available()) {
      // The optional peer without its headers: a named row, never a failed run.
      EXPECT_EQ(res["status"], "unavailable") << res.dump();
      EXPECT_NE(res["detail"].get<std::string>().find("not available in this build"), std::string::npos)
          << res.dump();
    } else {
      EXPECT_EQ(res["status"], "converged") << res.dump();
      EXPECT_LE(res["true_relative_residual"].get<double>(), 1e-6) << m;
    }
  }
  EXPECT_EQ(doc["machine"]["peer_settings"]["eigen-iccg"], dcdm::to_string(dcdm::EigenIccgSettings{}));
  fs::remove_all(out);
}

// The MPI peers get as many MPI ranks as the other methods get threads (mpirun -np T): the
// table and the JSON say so, PFMG's iterations are those of one rank (its cycle does not
// depend on the split), and MPI's start-up is reported apart from set-up.
TEST(CliBench, MpiPeersRunOnAsManyRanksAsThreads) {
  if (!dcdm::hypre_available()) GTEST_SKIP() << "hypre not in this build";
  if (std::system("command -v mpirun > /dev/null 2>&1") != 0) GTEST_SKIP() << "mpirun not found";
  std::map<int, nlohmann::json> docs;
  for (const int threads : {1, 2}) {
    const fs::path out = fresh_dir("bench_mpi_" + std::to_string(threads));
    const CliRun r = run_cli("bench --scenes sphere --n 16 --methods cg,hypre-pfmg,hypre-amg --rtol 1e-8 --repeat 1 "
                             "--no-plots --threads " + std::to_string(threads) + " --out " + out.string());
    ASSERT_EQ(r.status, 0) << r.out;
    if (threads == 2) {
      EXPECT_NE(r.out.find("| hypre-pfmg (2 MPI ranks) |"), std::string::npos) << r.out;
      EXPECT_NE(r.out.find("| hypre-amg (2 MPI ranks) |"), std::string::npos) << r.out;
      EXPECT_NE(r.out.find("| cg |"), std::string::npos) << r.out;
      EXPECT_NE(r.out.find("hypre-pfmg on 2"), std::string::npos) << r.out;
    }
    EXPECT_NE(r.out.find("not in setup s"), std::string::npos) << r.out;
    std::ifstream jf(out / "bench.json");
    docs[threads] = nlohmann::json::parse(jf);
    fs::remove_all(out);
  }
  EXPECT_EQ(docs[2]["settings"]["mpi_peer_ranks"], 2);
  std::map<std::string, int> pfmg_iterations;
  for (const auto& [threads, doc] : docs) {
    ASSERT_EQ(doc["results"].size(), 3u);
    for (const auto& res : doc["results"]) {
      const std::string m = res["method"];
      EXPECT_EQ(res["status"], "converged") << res.dump();
      EXPECT_LE(res["true_relative_residual"].get<double>(), 1e-8) << m;
      if (m == "cg") {
        EXPECT_EQ(res["ranks"], 1);
        EXPECT_TRUE(res["startup_seconds"].is_null());
        continue;
      }
      EXPECT_EQ(res["ranks"], threads) << m;
      EXPECT_EQ(res["threads"], 1) << m;
      EXPECT_GE(res["startup_seconds"].get<double>(), 0.0) << m;
      if (m == "hypre-pfmg") pfmg_iterations[std::to_string(threads)] = res["iterations"].get<int>();
    }
  }
  EXPECT_EQ(pfmg_iterations["1"], pfmg_iterations["2"]);
  EXPECT_GT(pfmg_iterations["1"], 0);
}

// --ranks N: mgpcg and dcdm-relax also run split across N MPI ranks (dcdm-mpi), in the same
// table, on the same system (a scene written as a folder first): the iterations of the
// threaded runs and their residual; PETSc's solvers run on as many ranks as threads; METHOD@N
// names one method; bad N and methods without a distributed version are refused or reported.
TEST(CliBench, DistributedMethodsShareTheTable) {
  const fs::path mpi = fs::path(DCDM_CLI_PATH).parent_path() / "dcdm-mpi";
  if (!fs::exists(mpi)) GTEST_SKIP() << "dcdm-mpi not built (PETSc)";
  if (std::system("command -v mpirun > /dev/null 2>&1") != 0) GTEST_SKIP() << "mpirun not found";
  const fs::path out = fresh_dir("bench_ranks");
  const CliRun r = run_cli("bench --scenes obstacles --n 20 --methods mgpcg,dcdm-relax,cg,petsc-mg,petsc-boomeramg "
                           "--ranks 2 --rtol 1e-8 --repeat 1 --no-plots --threads 2 --out " + out.string());
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("| mgpcg (2 MPI ranks) |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| dcdm-relax (2 MPI ranks) |"), std::string::npos) << r.out;
  std::ifstream jf(out / "bench.json");
  const nlohmann::json doc = nlohmann::json::parse(jf);
  std::map<std::string, nlohmann::json> by_method;
  for (const auto& res : doc["results"]) by_method[res["method"].get<std::string>()] = res;
  ASSERT_EQ(by_method.size(), 7u) << doc.dump();  // cg has no distributed version
  for (const std::string m : {"petsc-mg", "petsc-boomeramg"}) {  // PETSc's, on as many ranks as threads
    EXPECT_EQ(by_method[m]["status"], "converged") << by_method[m].dump();
    EXPECT_EQ(by_method[m]["ranks"], 2) << m;
    EXPECT_LE(by_method[m]["true_relative_residual"].get<double>(), 1e-8) << m;
  }
  for (const std::string m : {"mgpcg", "dcdm-relax"}) {
    const auto& threaded = by_method[m];
    const auto& split = by_method[m + "@2"];
    EXPECT_EQ(split["status"], "converged") << split.dump();
    EXPECT_EQ(split["ranks"], 2) << m;
    EXPECT_NEAR(split["iterations"].get<int>(), threaded["iterations"].get<int>(), 1) << m;
    EXPECT_LE(split["true_relative_residual"].get<double>(), 1e-8) << m;
    EXPECT_EQ(split["cells"], threaded["cells"]) << m;
  }
  fs::remove_all(out);
  EXPECT_EQ(run_cli("bench --scenes box --n 8 --methods mgpcg@x --out " + out.string()).status, 2);
  EXPECT_EQ(run_cli("bench --scenes box --n 8 --methods cg --ranks 2 --out " + out.string()).status, 2);
  const CliRun no = run_cli("bench --scenes box --n 8 --methods ic0@2 --repeat 1 --no-plots --out " + out.string());
  EXPECT_EQ(no.status, 0) << no.out;
  EXPECT_NE(no.out.find("no distributed version"), std::string::npos) << no.out;
  fs::remove_all(out);
}
