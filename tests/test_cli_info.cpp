// `dcdm info` run as a program: figures on good files (checked against an independent
// assembly of a small 7-point system), exit status 2 and a message naming the file on bad ones.
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <limits>

#include <nlohmann/json.hpp>

#include "dcdm/io.hpp"
#include "test_io_util.hpp"

using namespace dcdm;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct CliRun {
  int status = -1;
  std::string out, err;
};

class CliInfo : public dcdm::test::IoTempDir {
 protected:
  CliRun info(const std::string& args) {
    CliRun r;
    const fs::path err = path("stderr.txt");
    const std::string cmd = std::string(DCDM_CLI_PATH) + " info " + args + " 2>" + err.string();
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return r;
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
    const int status = pclose(p);
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.err = slurp(err);
    return r;
  }
  json info_json(const fs::path& file) {
    const CliRun r = info("--json " + file.string());
    EXPECT_EQ(r.status, 0) << r.err;
    return json::parse(r.out);
  }
};

// Fluid everywhere except a solid 2x2x1 block at the bottom corner; the z+ face is open
// (air beyond it), the other faces are walls. Assembled here cell by cell.
struct SmallSystem {
  int nx = 4, ny = 3, nz = 3;
  std::int64_t fluid = 0, solid = 0, dirichlet = 0;
  CsrMatrix a;
};

SmallSystem small_system(int nx, int ny, int nz) {
  SmallSystem s;
  s.nx = nx;
  s.ny = ny;
  s.nz = nz;
  auto solid = [&](int i, int j, int k) { return i < 2 && j < 2 && k == 0; };
  auto id = [&](int i, int j, int k) { return std::int64_t(i) + nx * (std::int64_t(j) + ny * k); };
  std::vector<Triplet> t;
  for (int k = 0; k < nz; ++k)
    for (int j = 0; j < ny; ++j)
      for (int i = 0; i < nx; ++i) {
        if (solid(i, j, k)) {
          ++s.solid;
          continue;
        }
        ++s.fluid;
        double diag = 0;
        const int nb[6][3] = {{i - 1, j, k}, {i + 1, j, k}, {i, j - 1, k}, {i, j + 1, k}, {i, j, k - 1}, {i, j, k + 1}};
        for (const auto& q : nb) {
          const bool inside = q[0] >= 0 && q[1] >= 0 && q[2] >= 0 && q[0] < nx && q[1] < ny && q[2] < nz;
          if (!inside) {
            if (q[2] == nz) diag += 1;  // open z+ face: Dirichlet
            continue;
          }
          if (solid(q[0], q[1], q[2])) continue;
          diag += 1;
          t.push_back({id(i, j, k), id(q[0], q[1], q[2]), -1.0});
        }
        t.push_back({id(i, j, k), id(i, j, k), diag});
        if (k == nz - 1) ++s.dirichlet;
      }
  const std::int64_t n = std::int64_t(nx) * ny * nz;
  s.a = CsrMatrix::from_triplets(n, n, t);
  return s;
}

}  // namespace

TEST_F(CliInfo, MatrixFiguresOnACubeGrid) {
  const SmallSystem s = small_system(3, 3, 3);
  io::write_matrix_market(path("A.mtx"), s.a);
  io::write_reference_matrix(path("A.bin"), s.a);
  // One run for both files (each CLI start costs about half a second of LibTorch loading).
  const CliRun both = info("--json " + path("A.mtx").string() + " " + path("A.bin").string());
  ASSERT_EQ(both.status, 0) << both.err;
  const json all = json::parse(both.out);
  ASSERT_EQ(all.size(), 2u);
  for (const json& j : all) {
    SCOPED_TRACE(j["file"].get<std::string>());
    EXPECT_EQ(j["kind"], "matrix");
    EXPECT_EQ(j["rows"], 27);
    EXPECT_EQ(j["cols"], 27);
    EXPECT_EQ(j["nnz"], s.a.nnz());
    EXPECT_EQ(j["symmetric"], true);
    EXPECT_EQ(j["zero_rows"], s.solid);
    EXPECT_EQ(j["nonzero_rows"], s.fluid);
    EXPECT_EQ(j["grid"]["dims"], json({3, 3, 3}));
    EXPECT_EQ(j["grid"]["source"], "cube");
    EXPECT_EQ(j["cells"]["fluid"], s.fluid);
    EXPECT_EQ(j["cells"]["non_fluid"], s.solid);
    EXPECT_EQ(j["cells"]["fluid_with_dirichlet_faces"], s.dirichlet);
    EXPECT_EQ(j["non_neighbour_entries"], 0);
    // Corner cell next to the solid block at the bottom: 2 fluid neighbours; top-centre: 6.
    const std::vector<double> d = s.a.diagonal();
    double lo = 1e300, hi = -1e300;
    for (double v : d)
      if (v != 0) lo = std::min(lo, v), hi = std::max(hi, v);
    EXPECT_EQ(j["diagonal"]["min"], lo);
    EXPECT_EQ(j["diagonal"]["max"], hi);
  }
  const CliRun text = info(path("A.mtx").string());
  EXPECT_EQ(text.status, 0) << text.err;
  EXPECT_NE(text.out.find("Matrix Market coordinate real symmetric"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("3x3x3 (rows = N^3)"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find(std::to_string(s.dirichlet) + " fluid with Dirichlet faces"), std::string::npos) << text.out;
}

TEST_F(CliInfo, GridFromSystemJsonAndStrayEntries) {
  const SmallSystem s = small_system(4, 3, 2);
  io::write_matrix_market(path("A.mtx"), s.a);
  // 24 rows: not a cube, so no grid without the sidecar.
  EXPECT_FALSE(info_json(path("A.mtx")).contains("grid"));
  io::write_file_atomic(path("system.json"), R"({"dims": [4, 3, 2]})");
  json j = info_json(path("A.mtx"));
  EXPECT_EQ(j["grid"]["dims"], json({4, 3, 2}));
  EXPECT_EQ(j["grid"]["source"], "system.json");
  EXPECT_EQ(j["cells"]["fluid"], s.fluid);
  EXPECT_EQ(j["cells"]["fluid_with_dirichlet_faces"], s.dirichlet);
  // An entry coupling cells 3 and 4 (x wraps to the next row: not neighbours) is reported.
  CsrMatrix b = s.a;
  std::vector<Triplet> t;
  for (std::int64_t r = 0; r < b.rows; ++r)
    for (std::int64_t k = b.row_ptr[r]; k < b.row_ptr[r + 1]; ++k) t.push_back({r, b.col_idx[k], b.values[k]});
  t.push_back({3, 4, -0.5});
  t.push_back({4, 3, -0.5});
  io::write_matrix_market(path("A.mtx"), CsrMatrix::from_triplets(b.rows, b.cols, t), false);
  j = info_json(path("A.mtx"));
  EXPECT_EQ(j["non_neighbour_entries"], 2);
  EXPECT_EQ(j["symmetric"], true);
  // A sidecar that disagrees with the file is bad input.
  io::write_file_atomic(path("system.json"), R"({"dims": [5, 5, 5]})");
  const CliRun r = info(path("A.mtx").string());
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("system.json"), std::string::npos) << r.err;
}

TEST_F(CliInfo, VectorFiguresCountNonFinite) {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  std::vector<double> v(27, 0.0);
  v[0] = 3;
  v[1] = -4;
  v[5] = nan;
  v[6] = -inf;
  io::write_npy(path("b.npy"), v, {3, 3, 3});
  io::write_reference_vector(path("b.bin"), {1.0, 2.0, 2.0});
  const CliRun both = info("--json " + path("b.npy").string() + " " + path("b.bin").string());
  ASSERT_EQ(both.status, 0) << both.err;
  const json all = json::parse(both.out);
  ASSERT_EQ(all.size(), 2u);
  json j = all[0];
  EXPECT_EQ(j["kind"], "vector");
  EXPECT_EQ(j["length"], 27);
  EXPECT_EQ(j["shape"], json({3, 3, 3}));
  EXPECT_EQ(j["dtype"], "float64");
  EXPECT_EQ(j["nan"], 1);
  EXPECT_EQ(j["inf"], 1);
  EXPECT_EQ(j["min"], -4.0);
  EXPECT_EQ(j["max"], 3.0);
  EXPECT_EQ(j["norm2"], 5.0);
  EXPECT_EQ(j["nonzeros"], 2);
  EXPECT_EQ(j["grid"]["dims"], json({3, 3, 3}));
  j = all[1];
  EXPECT_EQ(j["length"], 3);
  EXPECT_EQ(j["norm2"], 3.0);
  EXPECT_EQ(j["nan"], 0);
  EXPECT_FALSE(j.contains("grid"));
}

TEST_F(CliInfo, BadFilesExitWithStatus2AndNameTheFile) {
  write("trunc.mtx", "%%MatrixMarket matrix coordinate real general\n3 3 3\n1 1 1.000000000000\n2 2 2.00000000000\n");
  CliRun r = info(path("trunc.mtx").string());
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find(path("trunc.mtx").string() + ":4:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("file ends after 2 of the 3 entries"), std::string::npos) << r.err;

  write("bad.npy", std::string("\x93NUMPY\x01\x00\x10\x00{'descr': '<f8'", 25));
  r = info(path("bad.npy").string());
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find(path("bad.npy").string() + ": byte 8"), std::string::npos) << r.err;

  std::string m;
  for (std::int32_t h : {2, 2, 3, 2, 2}) dcdm::test::put(m, h);
  write("matrixA_1.bin", m + "short");
  r = info(path("matrixA_1.bin").string());
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("matches neither"), std::string::npos) << r.err;

  r = info(path("missing.mtx").string());
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("missing.mtx"), std::string::npos) << r.err;

  write("x.csv", "1,2\n");
  r = info(path("x.csv").string());
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("unknown file type"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}
