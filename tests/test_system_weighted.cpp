// Weighted pressure systems as files: save/load of the coefficient arrays (exact round trip,
// bad files named), import of scaled and density-weighted matrices (recognised, weights
// recovered, solved to the answer of IC(0) on the original CSR), refusals, and the CLI.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>

#include "cli_test.hpp"
#include "dcdm/error.hpp"
#include "dcdm/io.hpp"
#include "dcdm/methods.hpp"
#include "dcdm/poisson.hpp"
#include "dcdm/system.hpp"
#include "temp_dir.hpp"
#include "test_domains.hpp"
#include "test_krylov_systems.hpp"

using namespace dcdm;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& name) { return dcdm::test::fresh_temp_dir("sysw_" + name); }

// Random weights in [0.05, 2] (some exactly 1), a diagonal term on a fifth of the cells.
// float32_exact: every value (and so every product with a power-of-two scale) exact in float32.
Coefficients random_coefficients(Dims d, std::uint64_t seed, double scale, bool float32_exact = false) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.05, 2.0);
  auto value = [&] {
    const double v = u(rng);
    return float32_exact ? std::round(v * 64.0) / 64.0 : v;
  };
  Coefficients c;
  const auto sizes = Coefficients::face_sizes(d);
  std::vector<double>* arrays[3] = {&c.face_x, &c.face_y, &c.face_z};
  for (int a = 0; a < 3; ++a) {
    arrays[a]->resize(static_cast<std::size_t>(sizes[a]));
    for (double& w : *arrays[a]) w = u(rng) < 0.3 ? 1.0 : value();
  }
  c.diagonal.resize(static_cast<std::size_t>(d.size()));
  for (double& v : c.diagonal) v = u(rng) < 1.6 ? 0.0 : value();
  c.scale = scale;
  return c;
}

// A random weighted domain with every singular component pinned (so that a plain CSR solve
// has one answer).
Domain weighted_domain(Dims d, std::uint64_t seed, double scale, bool float32_exact = false) {
  Domain dom = dcdm::testing::random_domain(d, seed);
  dom.set_coefficients(random_coefficients(d, seed + 100, scale, float32_exact));
  return pin_singular_components(dom);
}

std::vector<double> random_rhs(const Domain& dom, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> g;
  std::vector<double> b(static_cast<std::size_t>(dom.dims().size()), 0.0);
  for (std::int64_t c = 0; c < dom.dims().size(); ++c)
    if (dom.cells[c] == CellType::Fluid) b[c] = g(rng);
  return b;
}

PoissonSystem system_of(const Domain& dom, std::uint64_t seed) {
  PoissonSystem s;
  s.domain = dom;
  s.matrix = assemble_full_grid(dom);
  s.rhs = random_rhs(dom, seed);
  s.meta = {{"source", "test"}};
  return s;
}

nlohmann::json read_json(const fs::path& p) { return nlohmann::json::parse(io::read_file(p)); }

// The exception message of f(), or "" if it threw none (an exception not an InputError fails).
template <class F>
std::string input_error(F&& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Largest difference relative to the row's largest magnitude (same structure).
double max_row_relative_difference(const CsrMatrix& a, const CsrMatrix& b) {
  EXPECT_EQ(a.rows, b.rows);
  double worst = 0.0;
  for (std::int64_t r = 0; r < a.rows; ++r) {
    double big = 0.0;
    for (auto p = a.row_ptr[r]; p < a.row_ptr[r + 1]; ++p) big = std::max(big, std::abs(a.values[p]));
    for (auto p = a.row_ptr[r]; p < a.row_ptr[r + 1]; ++p) {
      double other = 0.0;
      for (auto q = b.row_ptr[r]; q < b.row_ptr[r + 1]; ++q)
        if (b.col_idx[q] == a.col_idx[p]) other = b.values[q];
      worst = std::max(worst, std::abs(a.values[p] - other) / big);
    }
    for (auto q = b.row_ptr[r]; q < b.row_ptr[r + 1]; ++q) {
      bool found = false;
      for (auto p = a.row_ptr[r]; p < a.row_ptr[r + 1]; ++p) found |= a.col_idx[p] == b.col_idx[q];
      if (!found && b.values[q] != 0.0) worst = std::max(worst, 1.0);
    }
  }
  return worst;
}

// IC(0) (make_solver) on a plain CSR matrix, no grid: the reference answer.
std::vector<double> solve_csr(const CsrMatrix& a, const std::vector<double>& b) {
  auto solver = make_solver("ic0");
  CsrOperator op(a);
  LinearSystemView view;
  view.op = &op;
  view.matrix = &a;
  solver->setup(view);
  std::vector<double> x(b.size(), 0.0);
  SolveOptions opt;
  opt.rtol = 1e-11;
  opt.max_iterations = 5000;
  const SolveReport rep = solver->solve(b, x, opt);
  EXPECT_TRUE(rep.converged()) << rep.detail;
  return x;
}

// `method` on an imported system's domain (the stencil, as `dcdm solve --system` runs it).
std::vector<double> solve_domain(const std::string& method, const Domain& dom, const std::vector<double>& b) {
  auto solver = make_solver(method);
  PoissonStencil op(dom);
  RangeProjector proj(dom);
  EXPECT_FALSE(proj.singular());
  LinearSystemView view;
  view.op = &op;
  view.domain = &dom;
  solver->setup(view);
  std::vector<double> x(b.size(), 0.0);
  SolveOptions opt;
  opt.rtol = 1e-11;
  opt.max_iterations = 5000;
  const SolveReport rep = solver->solve(b, x, opt);
  EXPECT_TRUE(rep.converged()) << method << " " << rep.detail;
  return x;
}

double relative_difference(const std::vector<double>& x, const std::vector<double>& y) {
  double num = 0.0, den = 0.0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    num += (x[i] - y[i]) * (x[i] - y[i]);
    den += y[i] * y[i];
  }
  return std::sqrt(num / den);
}

void expect_same_coefficients(const Coefficients& a, const Coefficients& b) {
  EXPECT_EQ(a.scale, b.scale);
  EXPECT_EQ(a.face_x, b.face_x);
  EXPECT_EQ(a.face_y, b.face_y);
  EXPECT_EQ(a.face_z, b.face_z);
  EXPECT_EQ(a.diagonal, b.diagonal);
}

}  // namespace

// ---------------------------------------------------------------- save / load

TEST(WeightedSystem, SaveLoadRoundTripIsExact) {
  const Dims d{9, 7, 6};
  const fs::path dir = temp_dir("roundtrip");
  const Domain dom = weighted_domain(d, 3, 1.0 / (0.1 * 0.1));
  ASSERT_TRUE(dom.weighted());
  const PoissonSystem sys = system_of(dom, 4);
  save_system(dir, sys);
  for (auto f : {"A.mtx", "b.npy", "b.bin", "flags.npy", "face_x.npy", "face_y.npy", "face_z.npy", "diagonal.npy"})
    EXPECT_TRUE(fs::exists(dir / f)) << f;
  // Random weights times 1/0.01 are not float32 values: no reference binary.
  EXPECT_FALSE(fs::exists(dir / "A.bin"));
  const nlohmann::json meta = read_json(dir / "system.json");
  EXPECT_EQ(meta["coefficients"]["scale"].get<double>(), dom.coefficients->scale);
  EXPECT_EQ(meta["coefficients"]["face_x"], "face_x.npy");
  EXPECT_EQ(meta["coefficients"]["diagonal"], "diagonal.npy");
  EXPECT_FALSE(meta["files"].contains("matrix_reference"));
  EXPECT_EQ(system_files(sys).size(), 9u);
  // Shapes and dtype of the arrays as documented.
  EXPECT_EQ(io::read_npy(dir / "face_x.npy").shape, (std::vector<std::int64_t>{6, 7, 10}));
  EXPECT_EQ(io::read_npy(dir / "face_y.npy").shape, (std::vector<std::int64_t>{6, 8, 9}));
  EXPECT_EQ(io::read_npy(dir / "face_z.npy").shape, (std::vector<std::int64_t>{7, 7, 9}));
  EXPECT_EQ(io::read_npy(dir / "diagonal.npy").shape, (std::vector<std::int64_t>{6, 7, 9}));
  EXPECT_EQ(io::read_npy(dir / "face_x.npy").dtype, io::DType::Float64);

  const PoissonSystem back = load_system(dir);
  ASSERT_TRUE(back.domain.weighted());
  expect_same_coefficients(*back.domain.coefficients, *dom.coefficients);
  EXPECT_EQ(back.domain.cells.vector(), dom.cells.vector());
  EXPECT_EQ(back.domain.faces, dom.faces);
  EXPECT_EQ(back.matrix, sys.matrix);
  EXPECT_EQ(back.rhs, sys.rhs);
  // A.mtx holds the weighted values exactly.
  EXPECT_EQ(io::read_matrix(dir / "A.mtx"), sys.matrix);
  fs::remove_all(dir);
}

TEST(WeightedSystem, OnlyNonDefaultArraysAreWrittenAndExactFloat32KeepsTheReferenceBinary) {
  const Dims d{6, 5, 4};
  const fs::path dir = temp_dir("partial");
  Domain dom = dcdm::testing::random_domain(d, 8);
  Coefficients c = random_coefficients(d, 9, 4.0, /*float32_exact=*/true);
  c.face_y.assign(c.face_y.size(), 1.0);  // default: no file
  c.face_z.clear();                        // default: no file
  c.diagonal.clear();
  dom.set_coefficients(c);
  ASSERT_TRUE(dom.weighted());
  const PoissonSystem sys = system_of(dom, 1);
  save_system(dir, sys);
  EXPECT_TRUE(fs::exists(dir / "face_x.npy"));
  for (auto f : {"face_y.npy", "face_z.npy", "diagonal.npy"}) EXPECT_FALSE(fs::exists(dir / f)) << f;
  EXPECT_TRUE(fs::exists(dir / "A.bin"));  // every value exact in float32
  const nlohmann::json meta = read_json(dir / "system.json");
  EXPECT_EQ(meta["coefficients"].size(), 2u) << meta["coefficients"].dump();
  EXPECT_EQ(meta["files"]["matrix_reference"], "A.bin");
  const PoissonSystem back = load_system(dir);
  ASSERT_TRUE(back.domain.weighted());
  EXPECT_EQ(back.domain.coefficients->face_x, c.face_x);
  EXPECT_TRUE(back.domain.coefficients->face_y.empty());
  EXPECT_EQ(back.domain.coefficients->scale, 4.0);
  EXPECT_EQ(back.matrix, sys.matrix);
  EXPECT_EQ(io::read_reference_matrix(dir / "A.bin"), sys.matrix);

  // A unit system saved over it: the coefficient files go, system.json has no coefficients.
  Domain plain = dom;
  plain.coefficients.reset();
  save_system(dir, system_of(plain, 1));
  EXPECT_FALSE(fs::exists(dir / "face_x.npy"));
  EXPECT_FALSE(read_json(dir / "system.json").contains("coefficients"));
  EXPECT_FALSE(load_system(dir).domain.weighted());
  // And a weighted one (not float32-exact) over the unit one: the stale A.bin goes.
  save_system(dir, system_of(weighted_domain(d, 2, 1.0), 1));
  EXPECT_FALSE(fs::exists(dir / "A.bin"));
  EXPECT_TRUE(load_system(dir).domain.weighted());
  fs::remove_all(dir);
}

TEST(WeightedSystem, Float32CoefficientFilesAreAccepted) {
  const Dims d{5, 6, 7};
  const fs::path dir = temp_dir("float32");
  const Domain dom = weighted_domain(d, 5, 1.0, /*float32_exact=*/true);
  save_system(dir, system_of(dom, 2));
  const std::vector<double>& fx = dom.coefficients->face_x;
  io::write_npy(dir / "face_x.npy", std::vector<float>(fx.begin(), fx.end()), {d.nz, d.ny, d.nx + 1});
  ASSERT_EQ(io::read_npy(dir / "face_x.npy").dtype, io::DType::Float32);
  const PoissonSystem back = load_system(dir);
  expect_same_coefficients(*back.domain.coefficients, *dom.coefficients);
  fs::remove_all(dir);
}

TEST(WeightedSystem, BadCoefficientFilesAreNamed) {
  const Dims d{6, 5, 4};
  const fs::path dir = temp_dir("bad");
  const Domain dom = weighted_domain(d, 6, 2.0);
  save_system(dir, system_of(dom, 3));
  const fs::path fx = dir / "face_x.npy", keep = dir / "face_x.keep";
  fs::copy_file(fx, keep);
  auto restore = [&] { fs::copy_file(keep, fx, fs::copy_options::overwrite_existing); };

  // Missing.
  fs::remove(fx);
  std::string m = input_error([&] { load_system(dir); });
  EXPECT_TRUE(contains(m, "face_x.npy")) << m;
  EXPECT_TRUE(contains(m, "no such file")) << m;
  // Wrong shape: the cells' shape instead of the faces'.
  io::write_npy(fx, std::vector<double>(static_cast<std::size_t>(d.size()), 1.0), {d.nz, d.ny, d.nx});
  m = input_error([&] { load_system(dir); });
  EXPECT_TRUE(contains(m, "face_x.npy")) << m;
  EXPECT_TRUE(contains(m, "(4, 5, 7)")) << m;
  // Wrong dtype.
  io::write_npy(fx, std::vector<std::int32_t>(static_cast<std::size_t>(4 * 5 * 7), 1), {d.nz, d.ny, d.nx + 1});
  m = input_error([&] { load_system(dir); });
  EXPECT_TRUE(contains(m, "face_x.npy")) << m;
  EXPECT_TRUE(contains(m, "int32")) << m;
  // NaN.
  std::vector<double> w = dom.coefficients->face_x;
  w[7] = std::numeric_limits<double>::quiet_NaN();
  io::write_npy(fx, w, {d.nz, d.ny, d.nx + 1});
  m = input_error([&] { load_system(dir); });
  EXPECT_TRUE(contains(m, "face_x.npy")) << m;
  // Negative weight: the library's message, with the file.
  w = dom.coefficients->face_x;
  w[7] = -0.5;
  io::write_npy(fx, w, {d.nz, d.ny, d.nx + 1});
  m = input_error([&] { load_system(dir); });
  EXPECT_TRUE(contains(m, "face_x.npy")) << m;
  EXPECT_TRUE(contains(m, ">= 0")) << m;
  // Valid weights that are not the matrix's: A.mtx is named.
  w = dom.coefficients->face_x;
  for (double& v : w) v *= 1.5;
  io::write_npy(fx, w, {d.nz, d.ny, d.nx + 1});
  m = input_error([&] { load_system(dir); });
  EXPECT_TRUE(contains(m, "A.mtx")) << m;
  EXPECT_TRUE(contains(m, "coefficients")) << m;
  restore();
  EXPECT_NO_THROW(load_system(dir));
  // A bad scale or an unknown key in system.json.
  nlohmann::json meta = read_json(dir / "system.json");
  const nlohmann::json good = meta;
  meta["coefficients"]["scale"] = -1.0;
  io::write_file_atomic(dir / "system.json", meta.dump());
  m = input_error([&] { load_system(dir); });
  EXPECT_TRUE(contains(m, "system.json")) << m;
  EXPECT_TRUE(contains(m, "scale")) << m;
  meta = good;
  meta["coefficients"]["face_w"] = "face_w.npy";
  io::write_file_atomic(dir / "system.json", meta.dump());
  m = input_error([&] { load_system(dir); });
  EXPECT_TRUE(contains(m, "face_w")) << m;
  io::write_file_atomic(dir / "system.json", good.dump());
  EXPECT_NO_THROW(load_system(dir));
  fs::remove_all(dir);
}

TEST(WeightedSystem, MemoryEstimateCountsCoefficients) {
  const Dims d{64, 64, 64};
  EXPECT_GT(estimate_system_bytes(d, true), estimate_system_bytes(d, false) + d.size() * 64);
  EXPECT_EQ(estimate_system_bytes(d), estimate_system_bytes(d, false));
}

// ---------------------------------------------------------------- import

TEST(WeightedSystem, ImportOfAScaledUnitMatrixGivesTheUnitFlagsAndTheScale) {
  const Dims d{12, 10, 9};
  const fs::path dir = temp_dir("scaled");
  SceneSpec spec;
  spec.name = "pool";
  spec.dims = d;
  spec.seed = 2;
  const PoissonSystem unit = make_scene_system(spec, RhsKind::Random, 1);
  ASSERT_FALSE(unit.domain.weighted());
  save_system(dir / "unit", unit);
  const PoissonSystem unit_import = import_system(dir / "unit" / "A.mtx", {}, d);
  ASSERT_FALSE(unit_import.domain.weighted());
  for (const double dx : {1.0 / 32.0, 0.1, 0.037}) {
    SCOPED_TRACE(dx);
    const double s = 1.0 / (dx * dx);
    CsrMatrix a = unit.matrix;
    for (double& v : a.values) v = v / (dx * dx);  // as a tool computes it, value by value
    io::write_matrix_market(dir / "scaled.mtx", a, true);
    const PoissonSystem imp = import_system(dir / "scaled.mtx", dir / "unit" / "b.npy", d);
    ASSERT_TRUE(imp.domain.weighted());
    const Coefficients& co = *imp.domain.coefficients;
    EXPECT_NEAR(co.scale, s, 1e-12 * s);
    EXPECT_TRUE(co.face_x.empty() && co.face_y.empty() && co.face_z.empty() && co.diagonal.empty());
    // The unit inference's flags and faces (air and open faces included).
    EXPECT_EQ(imp.domain.cells.vector(), unit_import.domain.cells.vector());
    EXPECT_EQ(imp.domain.faces, unit_import.domain.faces);
    EXPECT_GT(imp.domain.count(CellType::Air), 0);
    EXPECT_LE(max_row_relative_difference(imp.matrix, a), 4e-12);
    EXPECT_TRUE(contains(imp.meta["import"]["notes"].dump(), "scaled")) << imp.meta["import"]["notes"].dump();
    // Solved on the imported domain as on the original CSR.
    const std::vector<double> want = solve_csr(a, imp.rhs);
    for (const char* method : {"ic0", "cg"}) {
      EXPECT_LT(relative_difference(solve_domain(method, imp.domain, imp.rhs), want), 1e-8) << method;
    }
    // And the folder round-trips.
    save_system(dir / "out", imp);
    const PoissonSystem back = load_system(dir / "out");
    EXPECT_EQ(back.matrix, imp.matrix);
    EXPECT_EQ(back.domain.coefficients->scale, co.scale);
  }
  fs::remove_all(dir);
}

TEST(WeightedSystem, ImportOfADensityWeightedMatrixRecoversTheWeights) {
  const fs::path dir = temp_dir("density");
  for (const Dims d : {Dims{8, 7, 6}, Dims{5, 9, 1}}) {
    for (const double scale : {1.0, 1.0 / (0.05 * 0.05)}) {
      SCOPED_TRACE(d.str() + " scale " + std::to_string(scale));
      const Domain dom = weighted_domain(d, 11, scale);
      ASSERT_TRUE(dom.weighted());
      const CsrMatrix a = assemble_full_grid(dom);
      io::write_matrix_market(dir / "w.mtx", a, true);
      const PoissonSystem imp = import_system(dir / "w.mtx", {}, d);
      ASSERT_TRUE(imp.domain.weighted());
      const Coefficients& co = *imp.domain.coefficients;
      EXPECT_EQ(co.scale, 1.0);
      // Fluid cells as before, every other cell solid, walls all round.
      for (std::int64_t c = 0; c < d.size(); ++c)
        EXPECT_EQ(imp.domain.cells[c], dom.cells[c] == CellType::Fluid ? CellType::Fluid : CellType::Solid) << c;
      for (int f = 0; f < 6; ++f) EXPECT_EQ(imp.domain.faces[f], FaceBoundary::Wall);
      // Face weights between fluid cells: scale * w exactly; the diagonal term: the original
      // one plus the weights to air cells and through open faces, times scale.
      const Coefficients& orig = *dom.coefficients;
      const int off[6][3] = {{-1, 0, 0}, {1, 0, 0}, {0, -1, 0}, {0, 1, 0}, {0, 0, -1}, {0, 0, 1}};
      for (int k = 0; k < d.nz; ++k)
        for (int j = 0; j < d.ny; ++j)
          for (int i = 0; i < d.nx; ++i) {
            const std::int64_t c = d.index(i, j, k);
            if (dom.cells[c] != CellType::Fluid) continue;
            double dirichlet = orig.diagonal.empty() ? 0.0 : orig.diagonal[c];
            for (int f = 0; f < 6; ++f) {
              const CellType t = dcdm::testing::type_at(dom, i + off[f][0], j + off[f][1], k + off[f][2]);
              const double w = orig.weight(d, i, j, k, static_cast<Face>(f));
              if (t == CellType::Fluid) {
                EXPECT_EQ(co.weight(d, i, j, k, static_cast<Face>(f)), scale * w) << c << " face " << f;
              } else if (t == CellType::Air) {
                dirichlet += w;
              }
            }
            const double got = co.diagonal.empty() ? 0.0 : co.diagonal[c];
            EXPECT_NEAR(got, scale * dirichlet, 1e-12 * a.diagonal()[c]) << c;
          }
      EXPECT_LE(max_row_relative_difference(imp.matrix, a), 4e-12);
      // Solved on the imported domain as IC(0) solves the original CSR.
      const std::vector<double> b = random_rhs(dom, 7);
      const std::vector<double> want = solve_csr(a, b);
      for (const char* method : {"ic0", "cg", "jacobi"}) {
        EXPECT_LT(relative_difference(solve_domain(method, imp.domain, b), want), 1e-8) << method;
      }
    }
  }
  fs::remove_all(dir);
}

TEST(WeightedSystem, ImportOfASingularWeightedMatrixKeepsItSingular) {
  // A closed box with variable density: rows sum to zero up to rounding, so no diagonal term
  // must appear (it would make the component look regular and b unprojected).
  const Dims d{6, 6, 6};
  Domain dom(d, CellType::Fluid);
  dom.set_coefficients(random_coefficients(d, 21, 1.0 / 3.0));
  Coefficients c = *dom.coefficients;
  c.diagonal.clear();
  dom.set_coefficients(c);
  ASSERT_TRUE(RangeProjector(dom).singular());
  const fs::path dir = temp_dir("singular");
  io::write_matrix_market(dir / "closed.mtx", assemble_full_grid(dom), true);
  const PoissonSystem imp = import_system(dir / "closed.mtx");
  ASSERT_TRUE(imp.domain.weighted());
  EXPECT_TRUE(RangeProjector(imp.domain).singular());
  EXPECT_TRUE(imp.domain.coefficients->diagonal.empty() ||
              std::all_of(imp.domain.coefficients->diagonal.begin(), imp.domain.coefficients->diagonal.end(),
                          [](double v) { return v == 0.0; }));
  fs::remove_all(dir);
}

TEST(WeightedSystem, ImportAcceptsAnExtraDiagonalTermTheUnitRuleCannotExplain) {
  // A unit matrix with one interior diagonal raised from 6 to 7: a diagonal term of 1 there.
  const Dims d{6, 6, 6};
  const fs::path dir = temp_dir("extra");
  CsrMatrix a = assemble_full_grid(Domain(d, CellType::Fluid));
  const std::int64_t centre = d.index(3, 3, 3);
  for (auto p = a.row_ptr[centre]; p < a.row_ptr[centre + 1]; ++p)
    if (a.col_idx[p] == centre) a.values[p] = 7.0;
  io::write_matrix_market(dir / "a.mtx", a, true);
  const PoissonSystem imp = import_system(dir / "a.mtx");
  ASSERT_TRUE(imp.domain.weighted());
  EXPECT_EQ(imp.domain.coefficients->diagonal[centre], 1.0);
  EXPECT_EQ(imp.matrix, a);
  fs::remove_all(dir);
}

TEST(WeightedSystem, ImportRefusesMatricesThatAreNotGridOperators) {
  const Dims d{6, 6, 6};
  const fs::path dir = temp_dir("refuse");
  const Domain dom = weighted_domain(d, 4, 1.0);
  const CsrMatrix good = assemble_full_grid(dom);
  std::int64_t row = -1;  // a fluid cell with a fluid neighbour above in x
  for (std::int64_t c = 0; c + 1 < d.size() && row < 0; ++c)
    if (dom.cells[c] == CellType::Fluid && dom.cells[c + 1] == CellType::Fluid && (c % d.nx) + 1 < d.nx) row = c;
  ASSERT_GE(row, 0);
  auto with = [&](std::int64_t r, std::int64_t col, double v) {
    CsrMatrix a = good;
    for (auto p = a.row_ptr[r]; p < a.row_ptr[r + 1]; ++p)
      if (a.col_idx[p] == col) a.values[p] = v;
    return a;
  };
  auto value = [&](std::int64_t r, std::int64_t col) {
    for (auto p = good.row_ptr[r]; p < good.row_ptr[r + 1]; ++p)
      if (good.col_idx[p] == col) return good.values[p];
    return 0.0;
  };
  CsrMatrix positive = with(row, row + 1, 0.25);  // symmetric, but a positive coupling
  for (auto p = positive.row_ptr[row + 1]; p < positive.row_ptr[row + 2]; ++p)
    if (positive.col_idx[p] == row) positive.values[p] = 0.25;
  double off_sum = 0.0;
  for (auto p = good.row_ptr[row]; p < good.row_ptr[row + 1]; ++p)
    if (good.col_idx[p] != row) off_sum -= good.values[p];
  struct Case {
    const char* name;
    CsrMatrix a;
    const char* why;
  };
  const Case cases[] = {
      {"asymmetric.mtx", with(row, row + 1, value(row, row + 1) * 0.5), "not symmetric"},
      {"positive.mtx", positive, "positive"},
      {"weak.mtx", with(row, row, 0.5 * off_sum), "diagonally dominant"},
  };
  for (const auto& c : cases) {
    io::write_matrix_market(dir / c.name, c.a, false);
    const std::string m = input_error([&] { import_system(dir / c.name); });
    EXPECT_TRUE(contains(m, c.name)) << m;
    EXPECT_TRUE(contains(m, "not a 7-point grid Poisson matrix")) << m;
    EXPECT_TRUE(contains(m, c.why)) << m;
    EXPECT_TRUE(contains(m, "row ")) << m;
  }
  fs::remove_all(dir);
}

// ---------------------------------------------------------------- CLI

class WeightedSystemCli : public dcdm::testing::CliTest {
 protected:
  WeightedSystemCli() : CliTest("sysw", 1) {}
};

TEST_F(WeightedSystemCli, ImportScaledMatrixThenSolveWithIc0) {
  ASSERT_EQ(run_cli(fmt::format("export --scene pool --dims 10,9,8 --seed 1 --out {}", (dir_ / "unit").string())), 0)
      << log();
  CsrMatrix a = io::read_matrix(dir_ / "unit" / "A.mtx");
  for (double& v : a.values) v *= 100.0;
  io::write_matrix_market(dir_ / "scaled.mtx", a, true);
  ASSERT_EQ(run_cli(fmt::format("import {} --rhs {} --dims 10,9,8 --out {}", (dir_ / "scaled.mtx").string(),
                                (dir_ / "unit" / "b.npy").string(), (dir_ / "sys").string())),
            0)
      << log();
  EXPECT_TRUE(contains(log(), "scale 100")) << log();
  const nlohmann::json meta = read_json(dir_ / "sys" / "system.json");
  EXPECT_EQ(meta["coefficients"]["scale"].get<double>(), 100.0);
  ASSERT_EQ(run_cli(fmt::format("solve --system {} --method ic0 --rtol 1e-8", (dir_ / "sys").string())), 0) << log();
  // A density-weighted matrix too.
  const Domain dom = weighted_domain({10, 9, 8}, 3, 1.0);
  io::write_matrix_market(dir_ / "w.mtx", assemble_full_grid(dom), true);
  ASSERT_EQ(run_cli(fmt::format("import {} --dims 10,9,8 --out {}", (dir_ / "w.mtx").string(), (dir_ / "w").string())), 0)
      << log();
  EXPECT_TRUE(fs::exists(dir_ / "w" / "face_x.npy"));
  EXPECT_TRUE(fs::exists(dir_ / "w" / "diagonal.npy"));
}

TEST_F(WeightedSystemCli, BadMatrixOrCoefficientFileExitsWith2) {
  CsrMatrix a = assemble_full_grid(Domain({4, 4, 4}, CellType::Fluid));
  for (auto p = a.row_ptr[5]; p < a.row_ptr[6]; ++p)
    if (a.col_idx[p] == 6) a.values[p] = 0.5;  // positive, and asymmetric
  io::write_matrix_market(dir_ / "bad.mtx", a, false);
  EXPECT_EQ(run_cli(fmt::format("import {} --out {}", (dir_ / "bad.mtx").string(), (dir_ / "x").string())), 2) << log();
  EXPECT_TRUE(contains(log(), "bad.mtx")) << log();
  EXPECT_TRUE(contains(log(), "not a 7-point grid Poisson matrix")) << log();
  // A weighted folder with a coefficient file gone.
  const Domain dom = weighted_domain({5, 5, 5}, 9, 1.0);
  save_system(dir_ / "w", system_of(dom, 1));
  fs::remove(dir_ / "w" / "face_y.npy");
  EXPECT_EQ(run_cli(fmt::format("solve --system {} --method ic0", (dir_ / "w").string())), 2) << log();
  EXPECT_TRUE(contains(log(), "face_y.npy")) << log();
}
