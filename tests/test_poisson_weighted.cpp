// The weighted operator (Domain coefficients): stencil and CSR against an independent
// triplet assembly from the definition, the unit case left on the unit code, components with
// zero-weight faces, bad coefficients, and the matrix-based preconditioners on it.
#include <gtest/gtest.h>
#include <omp.h>
#include <fmt/format.h>

#include <Eigen/Dense>
#include <cmath>
#include <random>

#include "dcdm/error.hpp"
#include "dcdm/krylov.hpp"
#include "dcdm/poisson.hpp"
#include "dcdm/precond.hpp"

#include "test_domains.hpp"
#include "test_krylov_systems.hpp"

using namespace dcdm;

namespace {

using dcdm::testing::random_domain;
using dcdm::testing::type_at;

// Random weights in [0.01, 2] (some exactly 1), a random diagonal term on a third of the cells.
Coefficients random_coefficients(Dims d, std::uint64_t seed, double scale = 1.0) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.01, 2.0);
  Coefficients c;
  const auto sizes = Coefficients::face_sizes(d);
  std::vector<double>* arrays[3] = {&c.face_x, &c.face_y, &c.face_z};
  for (int a = 0; a < 3; ++a) {
    arrays[a]->resize(static_cast<std::size_t>(sizes[a]));
    for (double& w : *arrays[a]) w = u(rng) < 0.3 ? 1.0 : u(rng);
  }
  c.diagonal.resize(static_cast<std::size_t>(d.size()));
  for (double& v : c.diagonal) v = u(rng) < 0.7 ? 0.0 : u(rng);
  c.scale = scale;
  return c;
}

// The weight of the face between cell (i, j, k) and its neighbour at offset o, read from the
// MAC arrays with this test's own index arithmetic.
double face_weight(const Coefficients& c, Dims d, int i, int j, int k, const int o[3]) {
  if (o[0] != 0) {
    const int fi = o[0] < 0 ? i : i + 1;
    return c.face_x[fi + (d.nx + 1) * (j + d.ny * k)];
  }
  if (o[1] != 0) {
    const int fj = o[1] < 0 ? j : j + 1;
    return c.face_y[i + d.nx * (fj + (d.ny + 1) * k)];
  }
  const int fk = o[2] < 0 ? k : k + 1;
  return c.face_z[i + d.nx * (j + d.ny * fk)];
}

CsrMatrix assemble_weighted_reference(const Domain& d, const Coefficients& c) {
  const Dims n = d.dims();
  std::vector<Triplet> t;
  const int off[6][3] = {{-1, 0, 0}, {1, 0, 0}, {0, -1, 0}, {0, 1, 0}, {0, 0, -1}, {0, 0, 1}};
  for (int k = 0; k < n.nz; ++k)
    for (int j = 0; j < n.ny; ++j)
      for (int i = 0; i < n.nx; ++i) {
        if (d.cells(i, j, k) != CellType::Fluid) continue;
        const auto row = n.index(i, j, k);
        double diag = c.diagonal.empty() ? 0.0 : c.diagonal[row];
        for (auto& o : off) {
          const CellType nb = type_at(d, i + o[0], j + o[1], k + o[2]);
          if (nb == CellType::Solid) continue;
          const double w = face_weight(c, n, i, j, k, o);
          diag += w;
          if (nb == CellType::Fluid && w != 0.0)
            t.push_back({row, n.index(i + o[0], j + o[1], k + o[2]), -c.scale * w});
        }
        t.push_back({row, row, c.scale * diag});
      }
  return CsrMatrix::from_triplets(n.size(), n.size(), std::move(t));
}

Domain weighted_domain(Dims d, std::uint64_t seed, double scale = 1.0) {
  Domain dom = random_domain(d, seed);
  dom.set_coefficients(random_coefficients(d, seed + 100, scale));
  return dom;
}

std::vector<double> random_vector(std::int64_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> g;
  std::vector<double> v(static_cast<std::size_t>(n));
  for (double& x : v) x = g(rng);
  return v;
}

TEST(WeightedOperator, StencilAndAssemblyMatchTheDefinition) {
  for (const Dims d : {Dims{7, 5, 6}, Dims{1, 4, 3}, Dims{9, 1, 8}, Dims{12, 11, 10}}) {
    for (std::uint64_t seed : {1u, 2u}) {
      const Domain dom = weighted_domain(d, seed, seed == 1 ? 1.0 : 1.0 / (0.1 * 0.1));
      ASSERT_TRUE(dom.weighted());
      const CsrMatrix ref = assemble_weighted_reference(dom, *dom.coefficients);
      const CsrMatrix a = assemble_full_grid(dom);
      ASSERT_EQ(a.row_ptr, ref.row_ptr) << d.str();
      ASSERT_EQ(a.col_idx, ref.col_idx) << d.str();
      for (std::size_t e = 0; e < a.values.size(); ++e)
        ASSERT_NEAR(a.values[e], ref.values[e], 1e-12 * std::abs(ref.values[e])) << d.str() << " entry " << e;
      const PoissonStencil op(dom);
      std::vector<double> x = random_vector(d.size(), seed), y(x.size()), yr(x.size());
      // Values outside the fluid are ignored (NaN included).
      for (std::int64_t c = 0; c < d.size(); ++c)
        if (dom.cells[c] != CellType::Fluid) x[c] = std::nan("");
      op.apply(x, y);
      std::vector<double> xc = x;
      for (std::int64_t c = 0; c < d.size(); ++c)
        if (dom.cells[c] != CellType::Fluid) xc[c] = 0.0;
      ref.multiply(xc, yr);
      for (std::int64_t c = 0; c < d.size(); ++c) ASSERT_NEAR(y[c], yr[c], 1e-10 * (1 + std::abs(yr[c]))) << c;
      const std::vector<double> diag = operator_diagonal(dom);
      const std::vector<double> ref_diag = ref.diagonal();
      for (std::int64_t c = 0; c < d.size(); ++c) ASSERT_NEAR(diag[c], ref_diag[c], 1e-12 * (1 + ref_diag[c]));
      // apply_dot computes the same product.
      std::vector<double> y2(x.size());
      std::vector<double> dots(1);
      op.apply_dot(xc, y2, {}, dots);
      for (std::int64_t c = 0; c < d.size(); ++c) ASSERT_NEAR(y2[c], yr[c], 1e-10 * (1 + std::abs(yr[c])));
    }
  }
}

// apply_dot_single (float Krylov vectors): A x computed in double from a float x and rounded once
// equals the rounded double product bit for bit on unit and weighted domains of odd shapes
// (end planes, row-block edges); its dots equal the double sums of the same values; the default
// LinearOperator version (through apply) agrees; any thread count gives the same bits.
TEST(StencilSinglePrecision, IsTheRoundedDoubleProductWithItsDots) {
  std::uint64_t seed = 900;
  const Dims shapes[] = {{1, 1, 1}, {7, 5, 1}, {9, 8, 2}, {33, 17, 12}, {130, 70, 3}, {64, 65, 9}};
  for (const bool weighted : {false, true})
    for (const Dims d : shapes) {
      const Domain dom = weighted ? weighted_domain(d, seed++) : random_domain(d, seed++);
      const PoissonStencil st(dom);
      const dcdm::testing::ApplyOnly plain(st);  // the default versions over the stencil's apply
      const std::int64_t n = d.size();
      const auto x_wide = random_vector(n, seed++);
      const std::vector<float> x(x_wide.begin(), x_wide.end());
      const std::vector<double> xd(x.begin(), x.end());  // x exactly, in double
      const auto r = random_vector(n, seed++);
      std::vector<double> ax(static_cast<std::size_t>(n));
      st.apply(xd, ax);
      std::vector<float> y(static_cast<std::size_t>(n), -7.0f), y_plain(static_cast<std::size_t>(n));
      std::vector<double> dots(3), dots_plain(3);
      st.apply_dot_single(x, y, r, dots);
      plain.apply_dot_single(x, y_plain, r, dots_plain);
      std::int64_t differ = 0;
      for (std::int64_t c = 0; c < n; ++c) differ += y[c] != static_cast<float>(ax[c]);
      const std::string what = fmt::format("{} {}", weighted ? "weighted" : "unit", d.str());
      EXPECT_EQ(differ, 0) << what;
      EXPECT_EQ(y_plain, y) << what;
      const double xax = dot(xd, ax), xr = dot(xd, r), xx = dot(xd, xd);
      EXPECT_NEAR(dots[0], xax, 1e-12 * (1 + std::abs(xax))) << what;
      EXPECT_NEAR(dots[1], xr, 1e-12 * (1 + std::abs(xr))) << what;
      EXPECT_NEAR(dots[2], xx, 1e-12 * xx) << what;
      for (int j = 0; j < 3; ++j) EXPECT_NEAR(dots_plain[j], dots[j], 1e-12 * (1 + std::abs(dots[j]))) << what;
      const int saved = omp_get_max_threads();
      omp_set_num_threads(3);
      std::vector<float> y3(static_cast<std::size_t>(n));
      std::vector<double> dots3(3);
      st.apply_dot_single(x, y3, r, dots3);
      omp_set_num_threads(saved);
      EXPECT_EQ(y3, y) << what;
      EXPECT_EQ(dots3, dots) << what;
    }
  const PoissonStencil st(Domain(Dims{4, 4, 4}));
  std::vector<float> x(64), y(64);
  std::vector<double> r(64), two(2);
  EXPECT_THROW(st.apply_dot_single(x, y, r, two), Error);
  std::vector<float> short_y(63);
  std::vector<double> three(3);
  EXPECT_THROW(st.apply_dot_single(x, short_y, r, three), Error);
}

// residual_dot (a solver's true residual in one pass): r = b - A x equals apply then subtract bit
// for bit on unit and weighted domains of odd shapes, r . r equals the dot of that r, and the
// default LinearOperator version agrees; wrong sizes are an Error.
TEST(StencilResidual, OnePassEqualsApplyThenSubtract) {
  std::uint64_t seed = 950;
  for (const bool weighted : {false, true})
    for (const Dims d : {Dims{1, 1, 1}, Dims{7, 5, 2}, Dims{33, 17, 12}, Dims{130, 70, 3}, Dims{64, 65, 9}}) {
      const Domain dom = weighted ? weighted_domain(d, seed++) : random_domain(d, seed++);
      const PoissonStencil st(dom);
      const dcdm::testing::ApplyOnly plain(st);  // the default versions over the stencil's apply
      const std::int64_t n = d.size();
      const auto x = random_vector(n, seed++), b = random_vector(n, seed++);
      std::vector<double> expected(static_cast<std::size_t>(n)), r(static_cast<std::size_t>(n), -3.0),
          r_plain(static_cast<std::size_t>(n));
      st.apply(x, expected);
      for (std::int64_t c = 0; c < n; ++c) expected[c] = b[c] - expected[c];
      const double rr = st.residual_dot(x, b, r), rr_plain = plain.residual_dot(x, b, r_plain);
      const std::string what = fmt::format("{} {}", weighted ? "weighted" : "unit", d.str());
      EXPECT_EQ(r, expected) << what;
      EXPECT_EQ(r_plain, expected) << what;
      const double ee = dot(expected, expected);
      EXPECT_NEAR(rr, ee, 1e-12 * ee) << what;
      EXPECT_NEAR(rr_plain, ee, 1e-12 * ee) << what;
    }
  const PoissonStencil st(Domain(Dims{4, 4, 4}));
  std::vector<double> x(64), b(63), r(64);
  EXPECT_THROW(st.residual_dot(x, b, r), Error);
}

TEST(WeightedOperator, UnitCoefficientsStayOnTheUnitOperator) {
  const Dims d{10, 9, 8};
  Domain plain = random_domain(d, 5);
  Domain ones = plain;
  Coefficients c;
  const auto sizes = Coefficients::face_sizes(d);
  c.face_x.assign(sizes[0], 1.0);
  c.face_y.assign(sizes[1], 1.0);
  c.diagonal.assign(d.size(), 0.0);
  ones.set_coefficients(c);
  EXPECT_FALSE(ones.weighted());
  const std::vector<double> x = random_vector(d.size(), 3);
  std::vector<double> y1(x.size()), y2(x.size());
  PoissonStencil(plain).apply(x, y1);
  PoissonStencil(ones).apply(x, y2);
  EXPECT_EQ(y1, y2);
  // One weight off 1 makes it weighted, and the product then differs only in that row pair.
  c.face_x[3] = 0.5;
  ones.set_coefficients(c);
  EXPECT_TRUE(ones.weighted());
}

TEST(WeightedOperator, IsSymmetricPositiveSemidefinite) {
  const Domain dom = weighted_domain({8, 7, 6}, 11);
  const CsrMatrix a = assemble_full_grid(dom);
  const Dims d = dom.dims();
  Eigen::MatrixXd m = Eigen::MatrixXd::Zero(d.size(), d.size());
  for (std::int64_t r = 0; r < a.rows; ++r)
    for (std::int64_t p = a.row_ptr[r]; p < a.row_ptr[r + 1]; ++p) m(r, a.col_idx[p]) = a.values[p];
  EXPECT_LT((m - m.transpose()).cwiseAbs().maxCoeff(), 1e-14);
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(m);
  EXPECT_GT(eig.eigenvalues().minCoeff(), -1e-10);
}

TEST(WeightedOperator, ZeroWeightFacesSplitComponents) {
  // A closed box cut in two by zero-weight faces: two singular components, each projected on
  // its own.
  const Dims d{6, 4, 4};
  Domain dom(d, CellType::Fluid);
  Coefficients c;
  c.face_x.assign(Coefficients::face_sizes(d)[0], 1.0);
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j) c.face_x[3 + (d.nx + 1) * (j + d.ny * k)] = 0.0;
  dom.set_coefficients(c);
  const FluidComponents fc = fluid_components(dom);
  ASSERT_EQ(fc.count(), 2);
  EXPECT_EQ(fc.singular_count(), 2);
  EXPECT_EQ(fc.size[0], 48);
  // A diagonal term on one cell of the right half makes that half non-singular.
  c.diagonal.assign(d.size(), 0.0);
  c.diagonal[d.index(5, 0, 0)] = 0.25;
  dom.set_coefficients(c);
  const FluidComponents fc2 = fluid_components(dom);
  EXPECT_EQ(fc2.singular_count(), 1);
  EXPECT_TRUE(fc2.touches_dirichlet[fc2.label[d.index(5, 3, 3)]]);
  // A zero weight to air is no Dirichlet contact.
  Domain open(d, CellType::Fluid);
  open.set_face(Face::ZMax, FaceBoundary::Open);
  Coefficients z;
  z.face_z.assign(Coefficients::face_sizes(d)[2], 1.0);
  for (int j = 0; j < d.ny; ++j)
    for (int i = 0; i < d.nx; ++i) z.face_z[i + d.nx * (j + d.ny * d.nz)] = 0.0;
  open.set_coefficients(z);
  EXPECT_EQ(fluid_components(open).singular_count(), 1);
}

TEST(WeightedOperator, BadCoefficientsNameTheArrayAndCell) {
  const Dims d{4, 3, 2};
  Domain dom(d, CellType::Fluid);
  const auto sizes = Coefficients::face_sizes(d);
  auto message = [&](const Coefficients& c) {
    try {
      dom.set_coefficients(c);
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  Coefficients c;
  c.face_y.assign(sizes[1], 1.0);
  c.face_y[1 + d.nx * (2 + (d.ny + 1) * 1)] = -0.5;
  EXPECT_NE(message(c).find("face_y at face (1, 2, 1) is -0.5"), std::string::npos) << message(c);
  c.face_y[1 + d.nx * (2 + (d.ny + 1) * 1)] = std::nan("");
  EXPECT_NE(message(c).find("face_y at face (1, 2, 1) is nan"), std::string::npos) << message(c);
  c.face_y.assign(sizes[1] - 1, 1.0);
  EXPECT_NE(message(c).find("face_y has 31 values, a 4x3x2 grid needs 32"), std::string::npos) << message(c);
  Coefficients g;
  g.diagonal.assign(d.size(), 0.0);
  g.diagonal[d.index(3, 1, 0)] = -1;
  EXPECT_NE(message(g).find("diagonal at cell (3, 1, 0) is -1"), std::string::npos) << message(g);
  Coefficients s;
  s.scale = 0.0;
  EXPECT_NE(message(s).find("scale 0"), std::string::npos) << message(s);
  // Every face of cell (0, 0, 0) closed: its row would be zero.
  Coefficients z;
  z.face_x.assign(sizes[0], 1.0);
  z.face_y.assign(sizes[1], 1.0);
  z.face_z.assign(sizes[2], 1.0);
  z.face_x[1] = 0.0;
  z.face_y[d.nx] = 0.0;
  z.face_z[d.nx * d.ny] = 0.0;
  EXPECT_NE(message(z).find("fluid cell (0, 0, 0) has weight 0 on every face"), std::string::npos) << message(z);
  // Made solid, the same weights are fine.
  dom.cells(0, 0, 0) = CellType::Solid;
  EXPECT_EQ(message(z), "no error");
}

// CG, Jacobi-PCG and IC(0)-PCG on a weighted domain (no matrix given: IC assembles one)
// reach the independent direct solution.
TEST(WeightedOperator, MatrixPreconditionersSolveIt) {
  const Dims d{14, 12, 10};
  Domain dom = random_domain(d, 21, 0.15, 0.05);
  dom.faces.fill(FaceBoundary::Wall);
  dom.set_face(Face::ZMax, FaceBoundary::Open);
  // Density-like weights spanning three orders of magnitude, scaled by 1/dx^2.
  Coefficients c = random_coefficients(d, 22, 1.0 / (0.05 * 0.05));
  for (auto* a : {&c.face_x, &c.face_y, &c.face_z})
    for (double& w : *a) w = std::pow(10.0, 3.0 * (w / 2.0 - 0.5));
  dom.set_coefficients(c);
  const PoissonStencil op(dom);
  const RangeProjector projector(dom);
  std::vector<double> b = random_vector(d.size(), 23);
  for (std::int64_t n = 0; n < d.size(); ++n)
    if (dom.cells[n] != CellType::Fluid) b[n] = 0.0;
  projector(b);
  // Reference: dense solve on the fluid cells of non-singular components.
  const CsrMatrix a = assemble_weighted_reference(dom, *dom.coefficients);
  for (const char* name : {"cg", "jacobi", "ic0"}) {
    std::unique_ptr<IterativeSolver> solver;
    if (std::string(name) == "cg") solver = make_cg_solver();
    else if (std::string(name) == "jacobi") solver = std::make_unique<PcgSolver>(name, std::make_unique<JacobiPreconditioner>());
    else solver = std::make_unique<PcgSolver>(name, std::make_unique<IncompleteCholeskyPreconditioner>(0.0));
    LinearSystemView view{&op, nullptr, &dom, nullptr};
    if (projector.singular()) view.project_range = projector.as_function();
    solver->setup(view);
    std::vector<double> x(b.size(), 0.0);
    SolveOptions o;
    o.rtol = 1e-10;
    o.max_iterations = 5000;
    const SolveReport rep = solver->solve(b, x, o);
    ASSERT_TRUE(rep.converged()) << name << ": " << format_reason_line(rep);
    std::vector<double> ax(b.size());
    a.multiply(x, ax);
    double num = 0, den = 0;
    for (std::int64_t n = 0; n < d.size(); ++n) {
      num += (ax[n] - b[n]) * (ax[n] - b[n]);
      den += b[n] * b[n];
    }
    EXPECT_LT(std::sqrt(num / den), 1e-9) << name;
  }
}

}  // namespace
