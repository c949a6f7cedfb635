// The weighted scenes (liquid, cutcell, density): the coefficients they build against the
// formulas (ghost-fluid theta, open face fractions, 1/rho_face), the matrix's symmetry, signs
// and diagonal dominance, CG and IC(0)-PCG on them, and the CLI's export of one.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <filesystem>
#include <numbers>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "cli_test.hpp"
#include "dcdm/error.hpp"
#include "dcdm/krylov.hpp"
#include "dcdm/methods.hpp"
#include "dcdm/poisson.hpp"
#include "dcdm/scenes.hpp"

using namespace dcdm;
namespace fs = std::filesystem;

namespace {

SceneSpec spec(const std::string& name, Dims d, std::map<std::string, double> params = {}, std::uint64_t seed = 0) {
  SceneSpec s;
  s.name = name;
  s.dims = d;
  s.seed = seed;
  s.parameters = std::move(params);
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

double weight(const Domain& dom, int i, int j, int k, Face f) {
  return dom.coefficients->weight(dom.dims(), i, j, k, f);
}
double diagonal_term(const Domain& dom, int i, int j, int k) {
  const auto& dg = dom.coefficients->diagonal;
  return dg.empty() ? 0.0 : dg[static_cast<std::size_t>(dom.dims().index(i, j, k))];
}

// Symmetric, off-diagonals <= 0, each fluid row diagonally dominant (weakly; strictly where
// the row has a Dirichlet face or term), non-fluid rows empty.
void expect_m_matrix(const Domain& dom, const std::string& what) {
  const CsrMatrix a = assemble_full_grid(dom);
  EXPECT_TRUE(a.is_symmetric(0.0)) << what;
  for (std::int64_t r = 0; r < a.rows; ++r) {
    double diag = 0, off = 0;
    for (std::int64_t e = a.row_ptr[r]; e < a.row_ptr[r + 1]; ++e) {
      if (a.col_idx[e] == r) diag = a.values[e];
      else {
        EXPECT_LE(a.values[e], 0.0) << what << " row " << r;
        off += std::abs(a.values[e]);
      }
    }
    if (dom.cells[r] != CellType::Fluid) {
      EXPECT_EQ(a.row_ptr[r + 1], a.row_ptr[r]) << what << " row " << r;
      continue;
    }
    EXPECT_GT(diag, 0.0) << what << " row " << r;
    EXPECT_GE(diag, off * (1 - 1e-12)) << what << " row " << r;
  }
}

std::vector<double> random_rhs(const Domain& dom, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<double> b(static_cast<std::size_t>(dom.dims().size()), 0.0);
  for (std::int64_t c = 0; c < dom.dims().size(); ++c)
    if (dom.cells[c] == CellType::Fluid) b[c] = u(rng);
  return b;
}

struct Solved {
  std::vector<double> x;
  int iterations = 0;
};
Solved solve(const std::string& method, const Domain& dom, const std::vector<double>& b_in) {
  const PoissonStencil op(dom);
  const RangeProjector projector(dom);
  std::vector<double> b = b_in;
  projector(b);
  auto solver = make_solver(method);
  LinearSystemView view{&op, nullptr, &dom, nullptr};
  if (projector.singular()) view.project_range = projector.as_function();
  solver->setup(view);
  Solved s;
  s.x.assign(b.size(), 0.0);
  SolveOptions o;
  o.rtol = 1e-8;
  o.max_iterations = 20000;
  o.stagnation_window = 0;
  const SolveReport rep = solver->solve(b, s.x, o);
  EXPECT_TRUE(rep.converged()) << method << ": " << format_reason_line(rep);
  s.iterations = rep.iterations;
  // The true residual against the assembled matrix.
  const CsrMatrix a = assemble_full_grid(dom);
  std::vector<double> ax(b.size());
  a.multiply(s.x, ax);
  double num = 0, den = 0;
  for (std::size_t n = 0; n < b.size(); ++n) {
    num += (ax[n] - b[n]) * (ax[n] - b[n]);
    den += b[n] * b[n];
  }
  EXPECT_LT(std::sqrt(num / den), 1e-7) << method;
  return s;
}

double relative_difference(const std::vector<double>& x, const std::vector<double>& y) {
  double num = 0, den = 0;
  for (std::size_t n = 0; n < x.size(); ++n) {
    num += (x[n] - y[n]) * (x[n] - y[n]);
    den += y[n] * y[n];
  }
  return std::sqrt(num / den);
}

}  // namespace

TEST(WeightedScenes, WeightedCheckedSymmetricDominantAndDeterministic) {
  for (const char* name : {"liquid", "cutcell", "density"}) {
    for (Dims d : {Dims{4, 4, 4}, Dims{17, 12, 14}}) {
      const std::string what = fmt::format("{} {}", name, d.str());
      nlohmann::json info;
      const Domain dom = make_scene(spec(name, d, {}, 3), &info);
      // At 4 cells the blobs of density (radius 0.6 cells) may hold no cell centre: the unit operator.
      if (std::string(name) == "density" && info["density"]["heavy_cells"] == 0) {
        EXPECT_FALSE(dom.weighted()) << what;
        continue;
      }
      ASSERT_TRUE(dom.weighted()) << what;
      EXPECT_NO_THROW(dom.coefficients->check(d)) << what;
      EXPECT_EQ(dom.coefficients->scale, 1.0) << what;
      EXPECT_EQ(fluid_components(dom).singular_count(), 0) << what;
      expect_m_matrix(dom, what);
      const Domain again = make_scene(spec(name, d, {}, 3));
      EXPECT_EQ(again.cells.vector(), dom.cells.vector()) << what;
      EXPECT_EQ(again.coefficients->face_x, dom.coefficients->face_x) << what;
      EXPECT_EQ(again.coefficients->face_y, dom.coefficients->face_y) << what;
      EXPECT_EQ(again.coefficients->face_z, dom.coefficients->face_z) << what;
      EXPECT_EQ(again.coefficients->diagonal, dom.coefficients->diagonal) << what;
    }
    // dx scales the operator by 1/dx^2; a bad dx is refused.
    const Dims d{10, 10, 10};
    const Domain unit = make_scene(spec(name, d));
    const Domain half = make_scene(spec(name, d, {{"dx", 0.5}}));
    EXPECT_EQ(half.coefficients->scale, 4.0) << name;
    const auto da = operator_diagonal(unit), db = operator_diagonal(half);
    for (std::size_t c = 0; c < da.size(); ++c) ASSERT_NEAR(db[c], 4.0 * da[c], 1e-12 * db[c]) << name;
    EXPECT_NE(message_of([&] { make_scene(spec(name, d, {{"dx", 0}})); }).find("dx=0"), std::string::npos) << name;
  }
}

// The same cells, coefficients and info at any thread count.
TEST(WeightedScenes, IndependentOfTheThreadCount) {
  const Dims d{19, 23, 21};
  for (const SceneSpec& s : {spec("liquid", d, {{"column", 0.3}}), spec("cutcell", d), spec("cutcell", d, {{"samples", 5}}),
                             spec("density", d, {{"blobs", 4}}, 9)}) {
    const int saved = omp_get_max_threads();
    nlohmann::json i1, i3;
    omp_set_num_threads(1);
    const Domain a = make_scene(s, &i1);
    omp_set_num_threads(3);
    const Domain b = make_scene(s, &i3);
    omp_set_num_threads(saved);
    ASSERT_TRUE(a.weighted()) << s.name;
    EXPECT_EQ(a.cells.vector(), b.cells.vector()) << s.name;
    EXPECT_EQ(a.coefficients->face_x, b.coefficients->face_x) << s.name;
    EXPECT_EQ(a.coefficients->face_y, b.coefficients->face_y) << s.name;
    EXPECT_EQ(a.coefficients->face_z, b.coefficients->face_z) << s.name;
    EXPECT_EQ(a.coefficients->diagonal, b.coefficients->diagonal) << s.name;
    EXPECT_EQ(i1, i3) << s.name;
  }
}

TEST(WeightedScenes, LiquidFlatPoolGhostFluidTerms) {
  const Dims d{12, 10, 16};
  // Surface at z = 4.8 cells: cells k <= 4 are liquid, the surface lies 0.3 of the way from
  // the centre of k = 4 (z = 4.5) to that of k = 5 (z = 5.5).
  const Domain dom = make_scene(spec("liquid", d, {{"depth", 4.8 / 16}, {"drop", 0}}));
  ASSERT_TRUE(dom.weighted());
  const double theta = (4.8 - 4.5) / 1.0;
  for (int j = 0; j < d.ny; ++j)
    for (int i = 0; i < d.nx; ++i)
      for (int k = 0; k < d.nz; ++k) {
        EXPECT_EQ(dom.cells(i, j, k), k <= 4 ? CellType::Fluid : CellType::Air);
        EXPECT_NEAR(diagonal_term(dom, i, j, k), k == 4 ? 1.0 / theta - 1.0 : 0.0, 1e-12) << i << " " << j << " " << k;
      }
  // Face weights stay 1 (the ghost-fluid term is on the diagonal); the matrix row of an inner
  // surface cell: 6 faces of weight 1 plus the term, i.e. 5 + 1/theta.
  for (Face f : {Face::XMin, Face::XMax, Face::YMin, Face::YMax, Face::ZMin, Face::ZMax}) {
    EXPECT_EQ(weight(dom, 5, 5, 4, f), 1.0);
  }
  EXPECT_NEAR(operator_diagonal(dom)[d.index(5, 5, 4)], 5.0 + 1.0 / theta, 1e-12);
  EXPECT_NEAR(operator_diagonal(dom)[d.index(0, 0, 4)], 3.0 + 1.0 / theta, 1e-12);  // two walls

  // Clamping: the surface 0.001 above the centre of k = 4 gives theta = 0.001, clamped to
  // theta_min (default 0.01, or a given one).
  nlohmann::json info;
  const Domain thin = make_scene(spec("liquid", d, {{"depth", 4.501 / 16}, {"drop", 0}}), &info);
  EXPECT_NEAR(diagonal_term(thin, 3, 3, 4), 1.0 / 0.01 - 1.0, 1e-9);
  EXPECT_EQ(info["ghost_fluid"]["clamped_faces"].get<std::int64_t>(), std::int64_t(d.nx) * d.ny);
  EXPECT_EQ(info["ghost_fluid"]["surface_faces"].get<std::int64_t>(), std::int64_t(d.nx) * d.ny);
  const Domain loose = make_scene(spec("liquid", d, {{"depth", 4.501 / 16}, {"drop", 0}, {"theta_min", 0.5}}));
  EXPECT_NEAR(diagonal_term(loose, 3, 3, 4), 1.0, 1e-12);
  // Unclamped just above theta_min.
  const Domain above = make_scene(spec("liquid", d, {{"depth", 4.52 / 16}, {"drop", 0}}));
  EXPECT_NEAR(diagonal_term(above, 3, 3, 4), 1.0 / 0.02 - 1.0, 1e-9);
  EXPECT_NE(message_of([&] { make_scene(spec("liquid", d, {{"theta_min", 0}})); }).find("theta_min"), std::string::npos);
  EXPECT_NE(message_of([&] { make_scene(spec("liquid", d, {{"theta_min", 1.5}})); }).find("theta_min"), std::string::npos);
}

TEST(WeightedScenes, LiquidDropAndDamBreak) {
  const Dims d{20, 20, 20};
  // Pool depth 8 cells; the drop, radius 2.4 cells, centred at (10, 10, 15), in the air.
  const Domain dom = make_scene(spec("liquid", d));
  EXPECT_EQ(dom.cells(10, 10, 15), CellType::Fluid);  // centre (10, 10, 15): cell (9.5..10.5)
  EXPECT_EQ(dom.cells(10, 10, 12), CellType::Air);
  EXPECT_EQ(dom.cells(10, 10, 7), CellType::Fluid);   // pool, depth 8
  EXPECT_EQ(dom.cells(10, 10, 8), CellType::Air);
  // A drop cell next to air, theta from the sphere's distance: cell (10, 10, 16), centre
  // (10.5, 10.5, 16.5), phi = 1.658 - 2.4 < 0: liquid; the cell above, phi = 2.598 - 2.4: air.
  const double pc = std::sqrt(0.5 + 1.5 * 1.5) - 2.4, pn = std::sqrt(0.5 + 2.5 * 2.5) - 2.4;
  ASSERT_EQ(dom.cells(10, 10, 16), CellType::Fluid);
  ASSERT_EQ(dom.cells(10, 10, 17), CellType::Air);
  const double theta_up = pc / (pc - pn);
  double expected = 1.0 / theta_up - 1.0;
  // Its side neighbours, liquid or air by the same distance.
  for (auto [a, b] : {std::pair{11, 10}, std::pair{9, 10}, std::pair{10, 11}, std::pair{10, 9}}) {
    const double px = a + 0.5 - 10, py = b + 0.5 - 10;
    const double pnb = std::sqrt(px * px + py * py + 1.5 * 1.5) - 2.4;
    if (pnb >= 0) {
      EXPECT_EQ(dom.cells(a, b, 16), CellType::Air);
      expected += 1.0 / std::max(0.01, pc / (pc - pnb)) - 1.0;
    } else {
      EXPECT_EQ(dom.cells(a, b, 16), CellType::Fluid);
    }
  }
  EXPECT_NEAR(diagonal_term(dom, 10, 10, 16), expected, 1e-12);

  // Dam break: a column 0.25 nx wide, 0.75 nz high against the x- wall, no pool, no drop.
  const Domain dam = make_scene(spec("liquid", d, {{"depth", 0}, {"drop", 0}, {"column", 0.25}, {"column_height", 0.75}}));
  for (int k = 0; k < d.nz; ++k)
    for (int i = 0; i < d.nx; ++i) {
      EXPECT_EQ(dam.cells(i, 7, k), i < 5 && k < 15 ? CellType::Fluid : CellType::Air) << i << " " << k;
    }
  // Corner cell of the column (4, j, 14): x face to air at theta 0.5, z face to air at 0.5.
  EXPECT_NEAR(diagonal_term(dam, 4, 7, 14), 2.0, 1e-12);
  EXPECT_NEAR(diagonal_term(dam, 2, 7, 14), 1.0, 1e-12);
  EXPECT_NEAR(diagonal_term(dam, 4, 7, 3), 1.0, 1e-12);
  expect_m_matrix(dam, "dam break");
}

TEST(WeightedScenes, CutCellPlaneGivesExactOpenFractions) {
  const Dims d{8, 9, 16};
  // A solid floor up to z = h: faces along x and y in layer k = 3 are open above h.
  for (double h : {3.25, 3.3, 3.9}) {
    for (double samples : {0.0, 4.0}) {
      if (samples == 4.0 && h != 3.25) continue;  // 4x4 samples are exact only on quarter cells
      const std::string what = fmt::format("h {} samples {}", h, samples);
      const Domain dom =
          make_scene(spec("cutcell", d, {{"radius", 0}, {"cylinder", 0}, {"floor", h / 16}, {"samples", samples}}));
      ASSERT_TRUE(dom.weighted()) << what;
      for (int k = 0; k < d.nz; ++k)
        for (int j = 0; j < d.ny; ++j)
          for (int i = 0; i < d.nx; ++i) {
            ASSERT_EQ(dom.cells(i, j, k), k < 3 ? CellType::Solid : CellType::Fluid) << what << " " << k;
            const double side = k < 3 ? 0.0 : k == 3 ? 4.0 - h : 1.0;
            for (Face f : {Face::XMin, Face::XMax, Face::YMin, Face::YMax}) {
              ASSERT_NEAR(weight(dom, i, j, k, f), side, 1e-12) << what << " " << i << " " << j << " " << k;
            }
            ASSERT_EQ(weight(dom, i, j, k, Face::ZMin), k <= 3 ? 0.0 : 1.0) << what << " " << k;
          }
      expect_m_matrix(dom, what);
    }
  }
}

TEST(WeightedScenes, CutCellSphereFractions) {
  const Dims d{24, 24, 24};
  nlohmann::json info;
  const Domain dom = make_scene(spec("cutcell", d, {{"cylinder", 0}}), &info);
  const Domain sampled = make_scene(spec("cutcell", d, {{"cylinder", 0}, {"samples", 16}}));
  const double cx = 12, cy = 12, cz = 0.4 * 24, r = 0.2 * 24;
  auto dist = [&](double x, double y, double z) {
    return std::sqrt((x - cx) * (x - cx) + (y - cy) * (y - cy) + (z - cz) * (z - cz)) - r;
  };
  const Coefficients& co = *dom.coefficients;
  EXPECT_GT(info["cut_cells"]["cut_faces"].get<std::int64_t>(), 0);
  double max_diff = 0, open_area = 0, sampled_area = 0;
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j)
      for (int i = 0; i <= d.nx; ++i) {
        const std::size_t n = static_cast<std::size_t>(i + (d.nx + 1) * (j + d.ny * k));
        const double w = co.face_x[n], ws = sampled.coefficients->face_x[n];
        const double s = dist(i, j + 0.5, k + 0.5);  // at the face's centre
        if (s > 0.75) {
          ASSERT_EQ(w, 1.0) << i << " " << j << " " << k;  // wholly in the fluid
          ASSERT_EQ(ws, 1.0);
        }
        if (s < -0.75) {
          ASSERT_EQ(w, 0.0) << i << " " << j << " " << k;  // wholly in the solid
          ASSERT_EQ(ws, 0.0);
        }
        ASSERT_GE(w, 0.0);
        ASSERT_LE(w, 1.0);
        max_diff = std::max(max_diff, std::abs(w - ws));
        open_area += w;
        sampled_area += ws;
      }
  // The corner rule and 16x16 samples agree face by face to within 0.1; the closed area of
  // the x faces is the sum of the sphere's cross-sections pi (r^2 - (x - cx)^2) at x = 0..nx,
  // to 2% from the corners (second order) and 0.2% from the samples.
  EXPECT_LT(max_diff, 0.1);
  double exact = 0;
  for (int i = 0; i <= d.nx; ++i) exact += std::max(0.0, std::numbers::pi * (r * r - (i - cx) * (i - cx)));
  const double faces = double(d.nx + 1) * d.ny * d.nz;
  EXPECT_NEAR(faces - open_area, exact, 0.02 * exact);
  EXPECT_NEAR(faces - sampled_area, exact, 0.002 * exact);
  // Cells well inside the sphere are solid, cut cells with an open face stay fluid.
  EXPECT_EQ(dom.cells(12, 12, 9), CellType::Solid);
  std::int64_t cut_fluid = 0;
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j)
      for (int i = 0; i < d.nx; ++i)
        if (dom.cells(i, j, k) == CellType::Fluid && dist(i + 0.5, j + 0.5, k + 0.5) < 0) ++cut_fluid;
  EXPECT_GT(cut_fluid, 0);  // centres inside the solid, yet some face open
  EXPECT_NE(message_of([&] { make_scene(spec("cutcell", d, {{"samples", 2.5}})); }).find("samples"), std::string::npos);

  // min_fraction closes the slivers: no weight left in (0, 0.05); cells left with no open face
  // become solid, and the rest is still a well-posed M-matrix.
  const Domain clipped = make_scene(spec("cutcell", d, {{"min_fraction", 0.05}}));
  std::int64_t slivers = 0;
  for (const auto* a : {&co.face_x, &co.face_y, &co.face_z})
    for (double w : *a) slivers += w > 0 && w < 0.05;
  EXPECT_GT(slivers, 0);
  for (const auto* a : {&clipped.coefficients->face_x, &clipped.coefficients->face_y, &clipped.coefficients->face_z})
    for (double w : *a) ASSERT_TRUE(w == 0 || w >= 0.05) << w;
  EXPECT_GE(clipped.count(CellType::Solid), make_scene(spec("cutcell", d)).count(CellType::Solid));
  EXPECT_EQ(fluid_components(clipped).singular_count(), 0);
  expect_m_matrix(clipped, "cutcell min_fraction");
  EXPECT_NE(message_of([&] { make_scene(spec("cutcell", d, {{"min_fraction", 1}})); }).find("min_fraction"), std::string::npos);
}

TEST(WeightedScenes, DensityFaceWeights) {
  const Dims d{16, 14, 12};
  for (double ratio : {1000.0, 1e6, 1e-3}) {
    nlohmann::json info;
    const Domain dom = make_scene(spec("density", d, {{"ratio", ratio}, {"blobs", 1}, {"radius", 0.3}}, 7), &info);
    ASSERT_TRUE(dom.weighted());
    EXPECT_EQ(dom.count(CellType::Fluid), d.size());
    const auto& blob = info["density"]["blobs"].at(0);
    const double cx = blob["centre"][0], cy = blob["centre"][1], cz = blob["centre"][2], r = blob["radius"];
    auto heavy = [&](int i, int j, int k) {
      const double x = i + 0.5 - cx, y = j + 0.5 - cy, z = k + 0.5 - cz;
      return x * x + y * y + z * z < r * r;
    };
    std::int64_t inside = 0, interface = 0;
    for (int k = 0; k < d.nz; ++k)
      for (int j = 0; j < d.ny; ++j)
        for (int i = 0; i < d.nx; ++i) {
          inside += heavy(i, j, k);
          const int o[3][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}};
          const Face up[3] = {Face::XMax, Face::YMax, Face::ZMax};
          for (int a = 0; a < 3; ++a) {
            const int ni = i + o[a][0], nj = j + o[a][1], nk = k + o[a][2];
            if (!d.contains(ni, nj, nk)) continue;
            const bool h0 = heavy(i, j, k), h1 = heavy(ni, nj, nk);
            const double expected = h0 && h1 ? 1.0 / ratio : !h0 && !h1 ? 1.0 : 2.0 / (1.0 + ratio);
            interface += h0 != h1;
            ASSERT_NEAR(weight(dom, i, j, k, up[a]), expected, 1e-15 * std::max(1.0, 1.0 / ratio));
          }
        }
    EXPECT_GT(inside, 0);
    EXPECT_GT(interface, 0);
    EXPECT_EQ(info["density"]["heavy_cells"].get<std::int64_t>(), inside);
    expect_m_matrix(dom, fmt::format("density ratio {}", ratio));
  }
  EXPECT_FALSE(make_scene(spec("density", d, {{"ratio", 1}})).weighted());  // the unit operator
  EXPECT_NE(message_of([&] { make_scene(spec("density", d, {{"ratio", 1e7}})); }).find("ratio"), std::string::npos);
  EXPECT_NE(message_of([&] { make_scene(spec("density", d, {{"ratio", 0}})); }).find("ratio"), std::string::npos);
}

// CG and IC(0)-PCG reach the same solution on every weighted scene (density at ratios 1e3 and
// 1e6, the liquid with a clamped surface).
TEST(WeightedScenes, CgAndIc0AgreeOnEveryScene) {
  const Dims d{16, 16, 16};
  const std::vector<SceneSpec> specs = {
      spec("liquid", d), spec("liquid", d, {{"depth", 4.501 / 16}}),        spec("cutcell", d),
      spec("cutcell", d, {{"samples", 8}}), spec("density", d),  spec("density", d, {{"ratio", 1e6}}),
  };
  for (const SceneSpec& s : specs) {
    const Domain dom = make_scene(s);
    ASSERT_TRUE(dom.weighted()) << s.name;
    const std::vector<double> b = random_rhs(dom, 11);
    const Solved cg = solve("cg", dom, b);
    const Solved ic = solve("ic0", dom, b);
    EXPECT_LT(relative_difference(ic.x, cg.x), 1e-5) << s.name;
    EXPECT_LT(ic.iterations, cg.iterations) << s.name;
  }
}

namespace {
class WeightedScenesCli : public dcdm::testing::CliTest {
 protected:
  WeightedScenesCli() : CliTest("scenes_weighted", 2) {}
};
}  // namespace

TEST_F(WeightedScenesCli, ExportAndSolve) {
  for (const char* name : {"liquid", "cutcell", "density"}) {
    const fs::path out = dir_ / name;
    ASSERT_EQ(run_cli(fmt::format("export --scene {} --n 16 --out {}", name, out.string())), 0) << name << ": " << log();
    EXPECT_TRUE(fs::exists(out / "system.json")) << name;
    EXPECT_EQ(run_cli(fmt::format("solve --scene {} --n 12 --method ic0 --rtol 1e-8", name)), 0) << name << ": " << log();
  }
}
