// The 7-point operator: stencil vs CSR vs an independent brute-force assembly, symmetry,
// row sums, definiteness, components, null-space projection and pinning.
// GCC 12 reports -Wmaybe-uninitialized inside its own AVX-512 intrinsics when Eigen is
// vectorised with -march=native (a known false positive, GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <gtest/gtest.h>
#include <omp.h>

#include <Eigen/Dense>
#include <array>
#include <cmath>
#include <random>

#include "dcdm/error.hpp"
#include "dcdm/poisson.hpp"

#include "test_domains.hpp"

using namespace dcdm;

namespace {

using dcdm::testing::random_domain;

// Straight from the definition, cell by cell, with no shared code: the type of each of the
// six neighbours (outside = air across an open face, solid across a wall).
Eigen::MatrixXd dense_reference(const Domain& dom) {
  const Dims d = dom.dims();
  Eigen::MatrixXd a = Eigen::MatrixXd::Zero(d.size(), d.size());
  const int off[6][3] = {{-1, 0, 0}, {1, 0, 0}, {0, -1, 0}, {0, 1, 0}, {0, 0, -1}, {0, 0, 1}};
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j)
      for (int i = 0; i < d.nx; ++i) {
        if (dom.cells(i, j, k) != CellType::Fluid) continue;
        const auto r = d.index(i, j, k);
        for (int f = 0; f < 6; ++f) {
          const int a2 = i + off[f][0], b2 = j + off[f][1], c2 = k + off[f][2];
          CellType t;
          if (d.contains(a2, b2, c2)) t = dom.cells(a2, b2, c2);
          else t = dom.faces[f] == FaceBoundary::Open ? CellType::Air : CellType::Solid;
          if (t != CellType::Solid) a(r, r) += 1.0;
          if (t == CellType::Fluid) a(r, d.index(a2, b2, c2)) = -1.0;
        }
      }
  return a;
}

Eigen::MatrixXd to_dense(const CsrMatrix& m) {
  Eigen::MatrixXd a = Eigen::MatrixXd::Zero(m.rows, m.cols);
  for (std::int64_t r = 0; r < m.rows; ++r)
    for (auto k = m.row_ptr[r]; k < m.row_ptr[r + 1]; ++k) a(r, m.col_idx[k]) = m.values[k];
  return a;
}

std::vector<double> random_field(const Domain& dom, std::uint64_t seed, bool integer, bool garbage_outside) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> ui(-1000, 1000);
  std::normal_distribution<double> g;
  std::vector<double> x(static_cast<std::size_t>(dom.dims().size()));
  for (std::int64_t c = 0; c < dom.dims().size(); ++c) {
    if (dom.cells[c] != CellType::Fluid) x[c] = garbage_outside ? std::nan("") : 0.0;
    else x[c] = integer ? ui(rng) : g(rng);
  }
  return x;
}

const Dims kShapes[] = {{1, 1, 1}, {1, 5, 3}, {2, 3, 4}, {7, 5, 6}, {9, 8, 7}, {16, 3, 5}};

}  // namespace

TEST(PoissonAssembly, FullGridMatchesDefinition) {
  std::uint64_t seed = 1;
  for (Dims d : kShapes)
    for (int rep = 0; rep < 3; ++rep) {
      Domain dom = random_domain(d, seed++);
      CsrMatrix a = assemble_full_grid(dom);
      a.check_structure();
      EXPECT_EQ(to_dense(a), dense_reference(dom)) << d.str();
      // Non-fluid rows are empty; fluid rows store their diagonal.
      for (std::int64_t c = 0; c < d.size(); ++c)
        EXPECT_EQ(a.row_ptr[c + 1] > a.row_ptr[c], dom.cells[c] == CellType::Fluid);
    }
}

TEST(PoissonAssembly, CompressedIsFullGridRestrictedToFluid) {
  Domain dom = random_domain({9, 8, 7}, 42);
  FluidIndexing ix;
  CsrMatrix c = assemble_compressed(dom, &ix);
  c.check_structure();
  ASSERT_EQ(c.rows, dom.count(CellType::Fluid));
  Eigen::MatrixXd full = dense_reference(dom);
  Eigen::MatrixXd dc = to_dense(c);
  for (std::int64_t r = 0; r < c.rows; ++r) {
    EXPECT_EQ(ix.row_of_cell[ix.cell_of_row[r]], r);
    for (std::int64_t s = 0; s < c.rows; ++s) ASSERT_EQ(dc(r, s), full(ix.cell_of_row[r], ix.cell_of_row[s]));
  }
  for (std::int64_t cell = 0; cell < dom.dims().size(); ++cell)
    EXPECT_EQ(ix.row_of_cell[cell] >= 0, dom.cells[cell] == CellType::Fluid);
}

TEST(PoissonAssembly, SymmetricWithDirichletRowSums) {
  for (std::uint64_t seed = 10; seed < 16; ++seed) {
    Domain dom = random_domain({8, 7, 6}, seed);
    CsrMatrix a = assemble_full_grid(dom);
    EXPECT_TRUE(a.is_symmetric(0.0));
    EXPECT_TRUE(assemble_compressed(dom).is_symmetric(0.0));
    // Row sum = number of Dirichlet (air) neighbours, counted here from the cells directly.
    const Dims d = dom.dims();
    for (int k = 0; k < d.nz; ++k)
      for (int j = 0; j < d.ny; ++j)
        for (int i = 0; i < d.nx; ++i) {
          const auto r = d.index(i, j, k);
          double sum = 0;
          for (auto p = a.row_ptr[r]; p < a.row_ptr[r + 1]; ++p) sum += a.values[p];
          int air = 0;
          if (dom.cells[r] == CellType::Fluid) {
            auto is_air = [&](int a2, int b2, int c2, Face f) {
              if (!d.contains(a2, b2, c2)) return dom.face(f) == FaceBoundary::Open;
              return dom.cells(a2, b2, c2) == CellType::Air;
            };
            air = is_air(i - 1, j, k, Face::XMin) + is_air(i + 1, j, k, Face::XMax) +
                  is_air(i, j - 1, k, Face::YMin) + is_air(i, j + 1, k, Face::YMax) +
                  is_air(i, j, k - 1, Face::ZMin) + is_air(i, j, k + 1, Face::ZMax);
          }
          EXPECT_EQ(sum, air);
        }
  }
  // A closed box: every row sums to zero (pure Neumann).
  Domain closed(Dims{5, 4, 3});
  CsrMatrix a = assemble_full_grid(closed);
  std::vector<double> ones(60, 1.0), y(60);
  a.multiply(ones, y);
  for (double v : y) EXPECT_EQ(v, 0.0);
}

TEST(PoissonStencil, AgreesWithCsrOnRandomFields) {
  std::uint64_t seed = 100;
  for (Dims d : kShapes)
    for (int rep = 0; rep < 2; ++rep) {
      Domain dom = random_domain(d, seed++, 0.15, 0.1);
      PoissonStencil st(dom);
      CsrMatrix a = assemble_full_grid(dom);
      ASSERT_EQ(st.size(), d.size());
      std::vector<double> ys(d.size()), ya(d.size());
      // Integer-valued fields: all arithmetic is exact, so the two must be bit-identical.
      auto xi = random_field(dom, seed, true, false);
      st.apply(xi, ys);
      a.multiply(xi, ya);
      EXPECT_EQ(ys, ya) << d.str();
      // Real fields, NaN outside fluid: the stencil must ignore non-fluid cells like the
      // CSR (whose columns there are empty) and agree to rounding.
      auto xr = random_field(dom, seed + 7, false, true);
      st.apply(xr, ys);
      a.multiply(xr, ya);
      for (std::int64_t c = 0; c < d.size(); ++c) {
        ASSERT_TRUE(std::isfinite(ys[c])) << c;
        EXPECT_NEAR(ys[c], ya[c], 1e-14 * (1 + std::abs(ya[c])));
        if (dom.cells[c] != CellType::Fluid) {
          EXPECT_EQ(ys[c], 0.0);
        }
      }
      // Diagonal accessor = CSR diagonal.
      auto diag = a.diagonal();
      EXPECT_TRUE(std::equal(diag.begin(), diag.end(), st.diagonal().begin()));
    }
}

TEST(PoissonStencil, SameResultForAnyThreadCount) {
  Domain dom = random_domain({33, 17, 12}, 5);
  PoissonStencil st(dom);
  auto x = random_field(dom, 6, false, false);
  std::vector<double> y1(x.size()), y2(x.size());
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  st.apply(x, y1);
  omp_set_num_threads(3);
  st.apply(x, y2);
  omp_set_num_threads(saved);
  EXPECT_EQ(y1, y2);
}

// apply_dot's one pass (A x computed block by block and dotted while in cache) against
// apply() and the base class's apply-then-reduce: the same A x and the same sums, bit for
// bit, on shapes whose blocks straddle planes, with only end planes, and of several blocks.
TEST(PoissonStencil, ApplyDotEqualsApplyThenDots) {
  std::uint64_t seed = 300;
  const Dims shapes[] = {{1, 1, 1}, {7, 5, 1}, {9, 8, 2}, {33, 17, 12}, {130, 70, 3}, {64, 65, 9}};
  for (Dims d : shapes) {
    const Domain dom = random_domain(d, seed++, 0.15, 0.1);
    const PoissonStencil st(dom);
    const dcdm::testing::ApplyOnly plain(st);  // the default versions over the stencil's apply
    const auto x = random_field(dom, seed++, false, false);
    const auto w1 = random_field(dom, seed++, false, false);
    const auto w2 = random_field(dom, seed++, false, false);
    const std::vector<const double*> with{w1.data(), x.data(), w2.data()};
    std::vector<double> y_fused(x.size(), -7.0), y_plain(x.size()), y_apply(x.size());
    std::vector<double> dots_fused(4), dots_plain(4);
    st.apply_dot(x, y_fused, with, dots_fused);
    plain.apply_dot(x, y_plain, with, dots_plain);
    st.apply(x, y_apply);
    EXPECT_EQ(y_fused, y_apply) << d.str();
    EXPECT_EQ(y_plain, y_apply) << d.str();
    EXPECT_EQ(dots_fused, dots_plain) << d.str();
    const double xy = dot(x, y_apply), xw1 = dot(x, w1), xx = dot(x, x);
    EXPECT_NEAR(dots_fused[0], xy, 1e-12 * (1 + std::abs(xy))) << d.str();
    EXPECT_NEAR(dots_fused[1], xw1, 1e-12 * (1 + std::abs(xw1))) << d.str();
    EXPECT_NEAR(dots_fused[2], xx, 1e-12 * xx) << d.str();
    // Any thread count gives the same values.
    const int saved = omp_get_max_threads();
    omp_set_num_threads(3);
    std::vector<double> y3(x.size()), dots3(4);
    st.apply_dot(x, y3, with, dots3);
    omp_set_num_threads(saved);
    EXPECT_EQ(y3, y_apply) << d.str();
    EXPECT_EQ(dots3, dots_fused) << d.str();
  }
  const PoissonStencil st(Domain(Dims{4, 4, 4}));
  std::vector<double> x(64), y(64), dots(1);
  const std::vector<const double*> one{x.data()};
  EXPECT_THROW(st.apply_dot(x, y, one, dots), Error);  // two sums needed
}

TEST(PoissonStencil, RejectsWrongSizes) {
  PoissonStencil st(Domain(Dims{4, 4, 4}));
  std::vector<double> x(63), y(64);
  EXPECT_THROW(st.apply(x, y), Error);
}

TEST(PoissonAssembly, PositiveDefiniteWhenEveryComponentTouchesAir) {
  int checked = 0;
  for (std::uint64_t seed = 200; seed < 230; ++seed) {
    Domain dom = random_domain({6, 5, 4}, seed, 0.25, 0.05);
    const FluidComponents fc = fluid_components(dom);
    CsrMatrix c = assemble_compressed(dom);
    if (c.rows == 0) continue;
    Eigen::MatrixXd a = to_dense(c);
    Eigen::LLT<Eigen::MatrixXd> llt(a);
    const double min_eig = Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>(a).eigenvalues().minCoeff();
    if (fc.singular_count() == 0) {
      EXPECT_EQ(llt.info(), Eigen::Success) << seed;
      EXPECT_GT(min_eig, 1e-10);
      ++checked;
    } else {
      // One zero eigenvalue per singular component, no negative ones.
      Eigen::VectorXd ev = Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>(a).eigenvalues();
      int zeros = 0;
      for (int r = 0; r < ev.size(); ++r) {
        EXPECT_GT(ev[r], -1e-10);
        zeros += std::abs(ev[r]) < 1e-10;
      }
      EXPECT_EQ(zeros, fc.singular_count()) << seed;
    }
  }
  EXPECT_GT(checked, 3);
}

TEST(FluidComponents, FindsPocketsAndDirichletContact) {
  // Three fluid pockets separated by solid slabs in x: the first touches the open x- face,
  // the second is closed (singular), the third touches an air cell.
  Domain dom(Dims{11, 4, 4}, CellType::Fluid);
  dom.set_face(Face::XMin, FaceBoundary::Open);
  for (int k = 0; k < 4; ++k)
    for (int j = 0; j < 4; ++j) {
      dom.cells(3, j, k) = CellType::Solid;
      dom.cells(7, j, k) = CellType::Solid;
    }
  dom.cells(10, 3, 3) = CellType::Air;
  FluidComponents fc = fluid_components(dom);
  ASSERT_EQ(fc.count(), 3);
  EXPECT_EQ(fc.size, (std::vector<std::int64_t>{48, 48, 47}));
  EXPECT_EQ(fc.touches_dirichlet, (std::vector<bool>{true, false, true}));
  EXPECT_EQ(fc.singular_count(), 1);
  EXPECT_EQ(fc.label(0, 0, 0), 0);
  EXPECT_EQ(fc.label(5, 2, 1), 1);
  EXPECT_EQ(fc.label(9, 3, 3), 2);
  EXPECT_EQ(fc.label(3, 0, 0), -1);
  EXPECT_EQ(fc.label(10, 3, 3), -1);
  // Diagonal contact does not connect (6-connectivity).
  Domain diag(Dims{2, 2, 1}, CellType::Solid);
  diag.cells(0, 0, 0) = CellType::Fluid;
  diag.cells(1, 1, 0) = CellType::Fluid;
  EXPECT_EQ(fluid_components(diag).count(), 2);
}

// An independent labelling: breadth-first search from each unlabelled fluid cell in cell
// order, 6-connectivity, Dirichlet contact = a non-solid neighbour that is not fluid (air, or
// beyond an Open face).
FluidComponents breadth_first_components(const Domain& dom) {
  const Dims d = dom.dims();
  FluidComponents fc;
  fc.label = Field<std::int32_t>(d, -1);
  for (int k0 = 0; k0 < d.nz; ++k0)
    for (int j0 = 0; j0 < d.ny; ++j0)
      for (int i0 = 0; i0 < d.nx; ++i0) {
        if (dom.cells(i0, j0, k0) != CellType::Fluid || fc.label(i0, j0, k0) >= 0) continue;
        const auto id = static_cast<std::int32_t>(fc.size.size());
        std::vector<std::array<int, 3>> queue{{i0, j0, k0}};
        fc.label(i0, j0, k0) = id;
        bool dirichlet = false;
        for (std::size_t q = 0; q < queue.size(); ++q) {
          const auto [i, j, k] = queue[q];
          const int step[6][3] = {{-1, 0, 0}, {1, 0, 0}, {0, -1, 0}, {0, 1, 0}, {0, 0, -1}, {0, 0, 1}};
          for (int f = 0; f < 6; ++f) {
            const int a = i + step[f][0], b = j + step[f][1], c = k + step[f][2];
            const bool inside = a >= 0 && b >= 0 && c >= 0 && a < d.nx && b < d.ny && c < d.nz;
            if (!inside) {
              dirichlet = dirichlet || dom.faces[f] == FaceBoundary::Open;
              continue;
            }
            if (dom.cells(a, b, c) == CellType::Air) dirichlet = true;
            if (dom.cells(a, b, c) == CellType::Fluid && fc.label(a, b, c) < 0) {
              fc.label(a, b, c) = id;
              queue.push_back({a, b, c});
            }
          }
        }
        fc.size.push_back(static_cast<std::int64_t>(queue.size()));
        fc.touches_dirichlet.push_back(dirichlet);
        fc.first_cell.push_back(d.index(i0, j0, k0));
      }
  return fc;
}

TEST(FluidComponents, AgreesWithABreadthFirstSearchForAnyThreadCount) {
  std::mt19937 rng(11);
  const Dims shapes[] = {{17, 9, 13}, {5, 6, 1}, {1, 1, 7}, {23, 4, 31}, {8, 8, 3}};
  for (const Dims& d : shapes)
    for (double solid : {0.2, 0.45, 0.6}) {  // near the percolation threshold: many components
      Domain dom(d, CellType::Fluid);
      std::uniform_real_distribution<double> u(0.0, 1.0);
      for (std::int64_t c = 0; c < d.size(); ++c) {
        const double x = u(rng);
        dom.cells[c] = x < solid ? CellType::Solid : x < solid + 0.02 ? CellType::Air : CellType::Fluid;
      }
      dom.set_face(Face::ZMax, u(rng) < 0.5 ? FaceBoundary::Open : FaceBoundary::Wall);
      const FluidComponents want = breadth_first_components(dom);
      for (int threads : {1, 2, 3, 5}) {
        omp_set_num_threads(threads);
        const FluidComponents got = fluid_components(dom);
        EXPECT_EQ(got.label.vector(), want.label.vector()) << d.str() << " solid " << solid << " threads " << threads;
        EXPECT_EQ(got.size, want.size);
        EXPECT_EQ(got.touches_dirichlet, want.touches_dirichlet);
        EXPECT_EQ(got.first_cell, want.first_cell);
      }
      omp_set_num_threads(omp_get_num_procs());
    }
}

TEST(RangeProjector, ZeroMeanOnSingularComponentsOnly) {
  Domain dom(Dims{11, 4, 4}, CellType::Fluid);
  dom.set_face(Face::XMin, FaceBoundary::Open);
  for (int k = 0; k < 4; ++k)
    for (int j = 0; j < 4; ++j) dom.cells(5, j, k) = CellType::Solid;
  RangeProjector proj(dom);
  ASSERT_TRUE(proj.singular());
  ASSERT_EQ(proj.singular_components().size(), 1u);
  std::vector<double> v(dom.dims().size());
  std::mt19937_64 rng(3);
  std::normal_distribution<double> g(2.0, 1.0);
  for (std::int64_t c = 0; c < dom.dims().size(); ++c) v[c] = dom.cells[c] == CellType::Fluid ? g(rng) : 0.0;
  const auto before = v;
  double mean_right = 0;
  for (int k = 0; k < 4; ++k)
    for (int j = 0; j < 4; ++j)
      for (int i = 6; i < 11; ++i) mean_right += before[dom.dims().index(i, j, k)];
  mean_right /= 80;
  auto removed = proj.project(v);
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_NEAR(removed[0], mean_right, 1e-13);
  double after_sum = 0;
  for (int k = 0; k < 4; ++k)
    for (int j = 0; j < 4; ++j) {
      for (int i = 0; i < 5; ++i) EXPECT_EQ(v[dom.dims().index(i, j, k)], before[dom.dims().index(i, j, k)]);
      EXPECT_EQ(v[dom.dims().index(5, j, k)], 0.0);
      for (int i = 6; i < 11; ++i) after_sum += v[dom.dims().index(i, j, k)];
    }
  EXPECT_NEAR(after_sum, 0.0, 1e-12);
  // The range of A: A x has zero sum over each singular component.
  PoissonStencil st(dom);
  std::vector<double> ax(v.size());
  st.apply(before, ax);
  auto ax2 = ax;
  auto removed2 = proj.project(ax2);
  EXPECT_NEAR(removed2[0], 0.0, 1e-13);
  // Non-singular domain: no-op.
  Domain open(Dims{4, 4, 4});
  open.set_face(Face::ZMax, FaceBoundary::Open);
  RangeProjector none(open);
  EXPECT_FALSE(none.singular());
  std::vector<double> w(64, 1.0);
  none(w);
  EXPECT_EQ(w, std::vector<double>(64, 1.0));
}

TEST(RangeProjector, SameResultForAnyThreadCount) {
  Domain dom(Dims{40, 40, 40});  // one closed box, > 1 block of sums
  RangeProjector proj(dom);
  std::vector<double> v(dom.dims().size());
  std::mt19937_64 rng(9);
  std::normal_distribution<double> g(1.0, 1.0);
  for (auto& x : v) x = g(rng);
  auto v1 = v, v2 = v;
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  proj(v1);
  omp_set_num_threads(3);
  auto f = proj.as_function();
  f(v2);
  omp_set_num_threads(saved);
  EXPECT_EQ(v1, v2);
}

TEST(Pinning, PinnedSolutionSolvesTheSingularSystem) {
  Domain dom(Dims{5, 4, 3});  // closed box: singular
  std::vector<std::int64_t> pinned;
  Domain p = pin_singular_components(dom, &pinned);
  ASSERT_EQ(pinned.size(), 1u);
  EXPECT_EQ(pinned[0], 0);
  EXPECT_EQ(fluid_components(p).singular_count(), 0);
  // Consistent b (zero sum), solve the pinned system densely, check the singular one.
  const auto n = dom.dims().size();
  std::vector<double> b(n);
  std::mt19937_64 rng(1);
  std::normal_distribution<double> g;
  for (auto& v : b) v = g(rng);
  RangeProjector{dom}(b);
  FluidIndexing ix;
  Eigen::MatrixXd ap = to_dense(assemble_compressed(p, &ix));
  Eigen::VectorXd bp(ap.rows());
  for (std::int64_t r = 0; r < ap.rows(); ++r) bp[r] = b[ix.cell_of_row[r]];
  Eigen::VectorXd xp = ap.llt().solve(bp);
  std::vector<double> x(n, 0.0), ax(n);
  for (std::int64_t r = 0; r < ap.rows(); ++r) x[ix.cell_of_row[r]] = xp[r];
  PoissonStencil(dom).apply(x, ax);
  for (std::int64_t c = 0; c < n; ++c) EXPECT_NEAR(ax[c], b[c], 1e-10);
}
