// Geometric multigrid preconditioner: symmetry and positivity of the V-cycle, level
// structure on odd non-cubic grids, iteration counts flat in N, convergence rate.
#include <gtest/gtest.h>

#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "dcdm/error.hpp"
#include "dcdm/krylov.hpp"
#include "dcdm/methods.hpp"
#include "dcdm/precond.hpp"
#include "test_domains.hpp"
#include "test_krylov_systems.hpp"

using namespace dcdm;
using namespace dcdm::testing;

namespace {

Vector random_fluid_vector(const Domain& d, unsigned seed) {
  Vector v = random_rhs(d, seed);
  return v;
}

// A domain with everything at once: solid sphere, air pocket, open top, a sealed chamber.
Domain everything_domain(Dims n) {
  Domain d = obstacle_domain(n);
  // Seal a small chamber in a corner with solid walls: a singular component.
  for (int k = 0; k < 4; ++k)
    for (int j = 0; j < 4; ++j)
      for (int i = 0; i < 4; ++i)
        if (i == 3 || j == 3 || k == 3) d.cells(i, j, k) = CellType::Solid;
  return d;
}

int mgpcg_iterations(const Domain& d, const MultigridOptions& opts, double rtol, double* rate = nullptr);

class MultigridSymmetry : public ::testing::TestWithParam<int> {};

Domain symmetry_domain(int which) {
  switch (which) {
    case 0: return obstacle_domain({13, 9, 11});
    case 1: return mixed_singular_domain({13, 9, 11});
    case 2: return everything_domain({21, 17, 19});
    default: return closed_box({24, 24, 24});
  }
}

TEST_P(MultigridSymmetry, VCycleIsSymmetricAndPositive) {
  auto sys = make_system(symmetry_domain(GetParam()));
  MultigridOptions opts;
  opts.coarsest_cells = 64;  // force several levels even on small grids
  MultigridPreconditioner mg(opts);
  mg.setup(sys->view());
  EXPECT_GE(mg.levels(), 2);
  for (unsigned seed = 1; seed <= 4; ++seed) {
    Vector u = random_fluid_vector(sys->domain, seed), v = random_fluid_vector(sys->domain, seed + 100);
    Vector mu(u.size()), mv(v.size());
    mg.apply(u, mu);
    mg.apply(v, mv);
    const double a = dot(u, mv), b = dot(v, mu);
    EXPECT_NEAR(a, b, 1e-12 * norm2(u) * norm2(mv)) << "seed " << seed;
    EXPECT_GT(dot(u, mu), 0.0);
    for (std::int64_t i = 0; i < sys->domain.dims().size(); ++i) {
      if (sys->domain.cells[i] != CellType::Fluid) {
        ASSERT_EQ(mu[i], 0.0);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Domains, MultigridSymmetry, ::testing::Values(0, 1, 2, 3));

// Random per-cell factors in (0, 2), a different pattern on every level and for the band.
class RandomRelaxation final : public RelaxationModel {
 public:
  explicit RandomRelaxation(unsigned seed) : seed_(seed) {}
  void factors(const MultigridLevelView& level, dcdm::span<float> interior, dcdm::span<float> band) const override {
    std::mt19937 rng(seed_ + 17u * static_cast<unsigned>(level.level));
    std::uniform_real_distribution<float> u(0.05f, 1.95f);
    for (std::size_t p = 0; p < interior.size(); ++p) {
      interior[p] = u(rng);
      band[p] = u(rng);
    }
    ++calls;
  }
  mutable int calls = 0;

 private:
  unsigned seed_;
};

class OutOfRangeRelaxation final : public RelaxationModel {
 public:
  void factors(const MultigridLevelView&, dcdm::span<float> interior, dcdm::span<float> band) const override {
    std::fill(interior.begin(), interior.end(), 1.0f);
    std::fill(band.begin(), band.end(), 2.0f);
  }
};

// Over-relaxation (global or per cell) and single precision keep the cycle a symmetric
// positive definite operator: the learned relaxation model relies on it (DCDM = PCG then).
TEST_P(MultigridSymmetry, RelaxedAndSinglePrecisionCyclesStaySymmetricAndPositive) {
  auto sys = make_system(symmetry_domain(GetParam()));
  for (int variant = 0; variant < 3; ++variant) {
    MultigridOptions opts;
    opts.coarsest_cells = 64;
    auto relaxation = std::make_shared<RandomRelaxation>(3u + static_cast<unsigned>(GetParam()));
    if (variant == 0) {
      opts.omega = 1.7;
      opts.band_omega = 0.4;
    } else {
      opts.relaxation = relaxation;
    }
    opts.single_precision = variant == 2;
    MultigridPreconditioner mg(opts);
    mg.setup(sys->view());
    if (variant > 0) {
      EXPECT_EQ(relaxation->calls, mg.levels() - 1);
    }
    const double tol = opts.single_precision ? 2e-6 : 1e-12;
    for (unsigned seed = 1; seed <= 3; ++seed) {
      Vector u = random_fluid_vector(sys->domain, seed), v = random_fluid_vector(sys->domain, seed + 100);
      Vector mu(u.size()), mv(v.size());
      mg.apply(u, mu);
      mg.apply(v, mv);
      EXPECT_NEAR(dot(u, mv), dot(v, mu), tol * norm2(u) * norm2(mv)) << "variant " << variant << " seed " << seed;
      EXPECT_GT(dot(u, mu), 0.0) << "variant " << variant;
    }
  }
}

TEST(Multigrid, RelaxationFactorsOutsideTheOpenIntervalAreRefused) {
  auto sys = make_system(obstacle_domain({12, 12, 12}));
  MultigridOptions opts;
  opts.coarsest_cells = 64;
  opts.relaxation = std::make_shared<OutOfRangeRelaxation>();
  MultigridPreconditioner mg(opts);
  EXPECT_THROW(mg.setup(sys->view()), Error);
  MultigridOptions bad;
  bad.omega = 2.0;
  EXPECT_THROW(MultigridPreconditioner{bad}, InputError);
  bad.omega = 1.0;
  bad.band_omega = 0.0;
  EXPECT_THROW(MultigridPreconditioner{bad}, InputError);
}

// The single-precision cycle is the double one rounded: same hierarchy, results within float
// accuracy, and PCG reaches the same tolerance in (about) the same iterations.
TEST(Multigrid, SinglePrecisionCycleMatchesDouble) {
  auto sys = make_system(everything_domain({21, 17, 19}));
  MultigridOptions opts;
  opts.coarsest_cells = 64;
  MultigridPreconditioner mg_double(opts);
  opts.single_precision = true;
  MultigridPreconditioner mg_float(opts);
  mg_double.setup(sys->view());
  mg_float.setup(sys->view());
  ASSERT_EQ(mg_double.levels(), mg_float.levels());
  const Vector b = random_fluid_vector(sys->domain, 5);
  Vector zd(b.size()), zf(b.size());
  mg_double.apply(b, zd);
  mg_float.apply(b, zf);
  EXPECT_LT(relative_error(zf, zd), 1e-5);
  MultigridOptions f;
  f.single_precision = true;
  const int its_double = mgpcg_iterations(sys->domain, MultigridOptions{}, 1e-8);
  const int its_float = mgpcg_iterations(sys->domain, f, 1e-8);
  EXPECT_LE(std::abs(its_double - its_float), 1);
}

// apply_to_single writes the cycle's result in float: exactly apply's values for the float
// cycle, apply's rounded once for the double one, with fused passes and without, on 1 and 3
// threads; sizes are checked.
TEST(Multigrid, SingleOutputIsTheCyclesResultInFloat) {
  auto sys = make_system(everything_domain({21, 17, 19}));
  const Vector b = random_fluid_vector(sys->domain, 7);
  for (const bool single : {true, false})
    for (const bool fused : {true, false}) {
      MultigridOptions opts;
      opts.coarsest_cells = 64;
      opts.single_precision = single;
      opts.fused_passes = fused;
      MultigridPreconditioner mg(opts);
      mg.setup(sys->view());
      EXPECT_TRUE(mg.native_single_output());
      Vector z(b.size());
      mg.apply(b, z);
      for (const int threads : {1, 3}) {
        const int saved = omp_get_max_threads();
        omp_set_num_threads(threads);
        std::vector<float> zf(b.size(), -1.0f);
        mg.apply_to_single(b, zf);
        omp_set_num_threads(saved);
        std::size_t differ = 0;
        for (std::size_t i = 0; i < z.size(); ++i) differ += zf[i] != static_cast<float>(z[i]);
        EXPECT_EQ(differ, 0u) << "single " << single << " fused " << fused << " threads " << threads;
      }
      std::vector<float> short_z(b.size() - 1);
      EXPECT_THROW(mg.apply_to_single(b, short_z), Error);
    }
}

TEST(Multigrid, LevelsCoarsenOddNonCubicGrids) {
  auto sys = make_system(obstacle_domain({13, 9, 11}));
  MultigridOptions opts;
  opts.coarsest_cells = 8;
  MultigridPreconditioner mg(opts);
  mg.setup(sys->view());
  ASSERT_GE(mg.levels(), 3);
  EXPECT_EQ(mg.level_dims(0), (Dims{13, 9, 11}));
  EXPECT_EQ(mg.level_dims(1), (Dims{7, 5, 6}));
  EXPECT_EQ(mg.level_dims(2), (Dims{4, 3, 3}));
}

TEST(Multigrid, NeedsADomain) {
  auto sys = make_system(obstacle_domain({8, 8, 8}));
  MultigridPreconditioner mg;
  EXPECT_THROW(mg.setup(sys->view(/*with_domain=*/false)), InputError);
}

int mgpcg_iterations(const Domain& d, const MultigridOptions& opts, double rtol, double* rate) {
  auto sys = make_system(d);
  PcgSolver solver("mgpcg", std::make_unique<MultigridPreconditioner>(opts));
  solver.setup(sys->view());
  Vector b = random_rhs(sys->domain, 17), x(b.size());
  SolveOptions o;
  o.rtol = rtol;
  o.max_iterations = 200;
  const auto rep = solver.solve(b, x, o);
  EXPECT_TRUE(rep.converged()) << format_reason_line(rep);
  if (rate) *rate = std::log10(rep.residual_history.front() / rep.residual_history.back()) / rep.iterations;
  return rep.iterations;
}

// Real behaviour, not timing: iteration counts of MGPCG hardly grow with the resolution.
TEST(Multigrid, IterationsStayFlatAsTheGridIsRefined) {
  MultigridOptions opts;
  opts.coarsest_cells = 64;  // the same depth of hierarchy below each size
  int its[3];
  double rates[3];
  const int sizes[3] = {16, 32, 64};
  for (int s = 0; s < 3; ++s) {
    its[s] = mgpcg_iterations(everything_domain({sizes[s], sizes[s], sizes[s]}), opts, 1e-6, &rates[s]);
    std::printf("  mgpcg %d^3: %d iterations to 1e-6, %.2f digits per iteration\n", sizes[s], its[s], rates[s]);
  }
  EXPECT_LE(its[2], 1.5 * its[0] + 1);
  EXPECT_LE(its[2], 16);        // about one digit every two iterations (or better)
  EXPECT_GE(rates[2], 0.4);
}

TEST(Multigrid, EveryOptionVariantIsAValidPreconditioner) {
  auto sys = make_system(everything_domain({19, 14, 17}));
  Vector b = random_rhs(sys->domain, 3);
  const Vector ref = direct_solve(sys->domain, sys->a, b);
  for (int variant = 0; variant < 4; ++variant) {
    MultigridOptions o;
    o.coarsest_cells = 100;
    if (variant == 1) o.neumann_interpolation = false;
    if (variant == 2) o.boundary_sweeps = 0;
    if (variant == 3) {
      o.pre_sweeps = 1;
      o.band_width = 1;
    }
    PcgSolver solver("mgpcg", std::make_unique<MultigridPreconditioner>(o));
    solver.setup(sys->view());
    Vector x(b.size());
    SolveOptions so;
    so.rtol = 1e-11;
    const auto rep = solver.solve(b, x, so);
    EXPECT_TRUE(rep.converged()) << "variant " << variant << ": " << format_reason_line(rep);
    sys->project(x);
    EXPECT_LT(relative_error(x, ref), 1e-8) << "variant " << variant;
  }
}

// The iterated coarse solve (coarse_cycles): the coarsest level of at most coarsest_cells cells
// solved by that many cycles over coarser levels down to direct_cells. As the cycles grow, the
// preconditioner tends to the one that factorises the coarsest level (error shrinking each
// cycle); with few it is still symmetric and positive, also on singular levels (a closed
// region, closed boxes with many components) and where the coarsest level is the grid itself.
TEST(Multigrid, IteratedCoarseSolveTendsToTheExactOneAndStaysSymmetric) {
  for (const Domain& dom : {everything_domain({29, 25, 27}), closed_box({20, 20, 20}),
                            random_domain({26, 22, 24}, 5, 0.25, 0.0), obstacle_domain({14, 12, 13})}) {
    for (const bool single : {false, true}) {
      auto sys = make_system(dom);
      MultigridOptions exact;
      exact.coarsest_cells = 1500;
      exact.single_precision = single;
      if (single) exact.omega = 1.3;
      MultigridPreconditioner reference(exact);
      reference.setup(sys->view());
      const Vector u = random_fluid_vector(sys->domain, 21), v = random_fluid_vector(sys->domain, 22);
      Vector zu_exact(u.size());
      reference.apply(u, zu_exact);
      double previous = 0;
      for (const int cycles : {1, 2, 4, 8, 16}) {
        MultigridOptions o = exact;
        o.coarse_cycles = cycles;
        o.direct_cells = 100;
        MultigridPreconditioner mg(o);
        mg.setup(sys->view());
        EXPECT_GT(mg.levels(), reference.levels()) << dom.dims().str();
        EXPECT_LE(mg.level_dims(mg.levels() - 1).size(), 100) << dom.dims().str();
        Vector zu(u.size()), zv(v.size());
        mg.apply(u, zu);
        mg.apply(v, zv);
        const double tol = single ? 1e-5 : 1e-12;
        EXPECT_NEAR(dot(u, zv), dot(v, zu), tol * norm2(u) * norm2(zv)) << dom.dims().str() << ", " << cycles;
        EXPECT_GT(dot(u, zu), 0.0);
        for (std::int64_t c = 0; c < sys->domain.dims().size(); ++c) {
          if (sys->domain.cells[c] != CellType::Fluid) {
            ASSERT_EQ(zu[c], 0.0);
          }
        }
        Vector diff = zu;
        axpy(-1.0, zu_exact, diff);
        const double error = norm2(diff) / norm2(zu_exact);
        std::printf("  %s %s, %2d coarse cycles: %.2e from the exact coarse solve\n", dom.dims().str().c_str(),
                    single ? "float" : "double", cycles, error);
        // Each cycle divides the difference by about 10 (measured 7-140), down to the float
        // cycle's rounding (about 2e-7 of z) after 8.
        if (cycles > 1 && (!single || cycles <= 4)) {
          EXPECT_LT(error, 0.3 * previous) << dom.dims().str() << ", " << cycles;
        }
        if (cycles == 16) {
          EXPECT_LT(error, single ? 1e-6 : 1e-12) << dom.dims().str();
        }
        previous = error;
      }
    }
  }
}

// Where the grid itself is the iterated coarsest level, the fused passes load r and store z
// around the cycles: the same z as the straightforward passes, in double and in float output.
TEST(Multigrid, IteratedCoarseSolveOnTheFinestLevelMatchesTheStraightforwardPasses) {
  auto sys = make_system(everything_domain({15, 13, 14}));
  const Vector u = random_fluid_vector(sys->domain, 4);
  for (const bool single : {false, true}) {
    Vector z[2];
    std::vector<float> zf[2];
    for (const bool fused : {false, true}) {
      MultigridOptions o;
      o.coarse_cycles = 3;
      o.single_precision = single;
      o.fused_passes = fused;
      MultigridPreconditioner mg(o);
      mg.setup(sys->view());
      ASSERT_GE(mg.levels(), 2);
      ASSERT_LE(mg.level_dims(0).size(), o.coarsest_cells);
      z[fused].assign(u.size(), 0.0);
      mg.apply(u, z[fused]);
      zf[fused].assign(u.size(), 0.0f);
      mg.apply_to_single(u, zf[fused]);
    }
    EXPECT_EQ(z[0], z[1]) << (single ? "float" : "double");
    EXPECT_EQ(zf[0], zf[1]) << (single ? "float" : "double");
    EXPECT_GT(norm2(z[1]), 0.0);
  }
}

// coarse_cycles leaves a weighted hierarchy's exact solve as it is, and bad values are errors.
TEST(Multigrid, IteratedCoarseSolveSettings) {
  const MultigridOptions o = parse_multigrid_settings("coarse-cycles=3:direct=200:coarsest=2000", "mgpcg");
  EXPECT_EQ(o.coarse_cycles, 3);
  EXPECT_EQ(o.direct_cells, 200);
  EXPECT_EQ(o.coarsest_cells, 2000);
  EXPECT_THROW(parse_multigrid_settings("coarse-cycles=-1", "mgpcg"), InputError);
  EXPECT_THROW(parse_multigrid_settings("direct=0", "mgpcg"), InputError);
  MultigridOptions bad;
  bad.coarse_cycles = -2;
  EXPECT_THROW(MultigridPreconditioner{bad}, InputError);
}

}  // namespace

namespace {

// A uniform interior factor (the fast interior kernel with no per-cell exceptions, as the
// shipped relaxnet takes) and random band factors.
class UniformInteriorRelaxation final : public RelaxationModel {
 public:
  void factors(const MultigridLevelView& level, dcdm::span<float> interior, dcdm::span<float> band) const override {
    RandomRelaxation(9).factors(level, interior, band);
    std::fill(interior.begin(), interior.end(), 1.4f);
  }
  std::optional<float> uniform_interior() const override { return 1.4f; }
};

// Random positive face weights in [0.05, 20] and a diagonal term on a tenth of the fluid cells.
Domain weighted_domain(Domain d, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  Coefficients c;
  c.scale = 0.5;
  const auto sizes = Coefficients::face_sizes(d.dims());
  std::vector<double>* arrays[3] = {&c.face_x, &c.face_y, &c.face_z};
  for (int a = 0; a < 3; ++a) {
    arrays[a]->resize(static_cast<std::size_t>(sizes[a]));
    for (double& w : *arrays[a]) w = std::pow(20.0, 2.0 * u(rng) - 1.0);
  }
  c.diagonal.assign(static_cast<std::size_t>(d.dims().size()), 0.0);
  for (std::int64_t p = 0; p < d.dims().size(); ++p)
    if (d.cells[p] == CellType::Fluid && u(rng) < 0.1) c.diagonal[static_cast<std::size_t>(p)] = u(rng);
  d.set_coefficients(std::move(c));
  return d;
}

// The domains of the fused-pass comparison: odd, non-cubic sizes below and above the parallel
// threshold (32768 cells), every outer face type, air, solid and sealed chambers, weights.
Domain fused_domain(int which) {
  switch (which) {
    case 0: return obstacle_domain({13, 9, 11});
    case 1: return everything_domain({21, 17, 19});
    case 2: return mixed_singular_domain({16, 15, 17});
    case 3: {
      Domain d = obstacle_domain({37, 41, 35});  // 53k cells: the threaded passes
      for (const Face f : {Face::XMin, Face::YMax, Face::ZMin}) d.set_face(f, FaceBoundary::Open);
      return d;
    }
    case 4: {
      Domain d = random_domain({33, 31, 35}, 7, 0.2, 0.04);
      for (int f = 0; f < 6; ++f) d.set_face(static_cast<Face>(f), f % 2 ? FaceBoundary::Open : FaceBoundary::Wall);
      return d;
    }
    case 5: return weighted_domain(obstacle_domain({19, 23, 21}), 3);
    default: return weighted_domain(random_domain({41, 35, 37}, 11, 0.15, 0.05), 4);
  }
}

}  // namespace

// The fused passes (a wavefront over z-planes) evaluate every cell from the same values as the
// straightforward one-pass-per-stage cycle: z equal bit for bit, for every option that changes
// the stages (precision, factors global or per cell, sweep counts, band width), on 1, 2 and 3
// threads (three slabs: two of them start side by side).
TEST(MultigridFusedPasses, MatchTheStraightforwardPassesBitForBit) {
  const int threads = omp_get_max_threads();
  for (int which = 0; which < 7; ++which) {
    auto sys = make_system(fused_domain(which));
    for (int variant = 0; variant < 7; ++variant) {
      MultigridOptions o;
      o.coarsest_cells = 64;
      o.single_precision = variant % 2 == 1;
      if (variant == 2) {
        o.omega = 1.3;
        o.band_omega = 1.6;
      }
      if (variant == 3) o.relaxation = std::make_shared<RandomRelaxation>(5);
      if (variant == 4) o.relaxation = std::make_shared<UniformInteriorRelaxation>();
      if (variant == 5) {
        o.pre_sweeps = 3;
        o.boundary_sweeps = 1;
        o.band_width = 1;
      }
      if (variant == 6) {
        o.pre_sweeps = 1;
        o.boundary_sweeps = 0;
      }
      for (const int t : {1, 2, 3}) {
        omp_set_num_threads(t);
        MultigridOptions straight = o;
        straight.fused_passes = false;
        MultigridPreconditioner fused(o), reference(straight);
        fused.setup(sys->view());
        reference.setup(sys->view());
        ASSERT_GE(fused.levels(), 2);
        for (unsigned seed = 1; seed <= 2; ++seed) {
          const Vector r = random_fluid_vector(sys->domain, seed);
          Vector z(r.size(), 7.0), z_ref(r.size(), -7.0);
          fused.apply(r, z);
          reference.apply(r, z_ref);
          ASSERT_EQ(std::memcmp(z.data(), z_ref.data(), z.size() * sizeof(double)), 0)
              << "domain " << which << " variant " << variant << " threads " << t << " seed " << seed;
        }
      }
    }
  }
  omp_set_num_threads(threads);
}

// The fused passes change no iterate: MGPCG (double cycle) and PCG with the float cycle and
// per-cell factors take the same iterations to the same x, bit for bit, on 2 threads (the
// grid is above the parallel threshold).
TEST(MultigridFusedPasses, SolverIteratesAreUnchanged) {
  const int threads = omp_get_max_threads();
  omp_set_num_threads(2);
  auto sys = make_system(fused_domain(3));
  for (int variant = 0; variant < 2; ++variant) {
    MultigridOptions o;
    if (variant == 1) {
      o.single_precision = true;
      o.relaxation = std::make_shared<RandomRelaxation>(8);
    }
    MultigridOptions straight = o;
    straight.fused_passes = false;
    PcgSolver fused("mgpcg", std::make_unique<MultigridPreconditioner>(o));
    PcgSolver reference("mgpcg", std::make_unique<MultigridPreconditioner>(straight));
    fused.setup(sys->view());
    reference.setup(sys->view());
    const Vector b = random_fluid_vector(sys->domain, 3);
    Vector x(b.size()), x_ref(b.size());
    SolveOptions so;
    so.rtol = 1e-10;
    so.max_iterations = 100;
    const SolveReport rep = fused.solve(b, x, so), rep_ref = reference.solve(b, x_ref, so);
    EXPECT_TRUE(rep.converged()) << "variant " << variant;
    EXPECT_EQ(rep.iterations, rep_ref.iterations) << "variant " << variant;
    EXPECT_EQ(rep.residual_history, rep_ref.residual_history) << "variant " << variant;
    EXPECT_EQ(std::memcmp(x.data(), x_ref.data(), x.size() * sizeof(double)), 0) << "variant " << variant;
  }
  omp_set_num_threads(threads);
}

// The fused passes keep the residual in plane buffers laid out for their team of threads; a
// cycle applied inside a parallel region gets a team of one where it asks for more (nesting
// off), and under a thread limit of 2 (ctest's ...UnderAThreadLimit runs this so) a team of
// two where it asks for three; it lays the buffers out again for the team it gets, and for the
// full team at the next call: z stays the straightforward passes' bit for bit throughout. The
// grid is above the parallel threshold, the slabs of 2 and 3 threads have edges inside the
// coarse planes.
TEST(MultigridFusedPasses, TeamsSmallerThanAskedForGiveTheSameResult) {
  const int threads = omp_get_max_threads();
  auto sys = make_system(fused_domain(3));
  for (const bool single : {false, true}) {
    MultigridOptions o;
    o.coarsest_cells = 64;
    o.single_precision = single;
    MultigridOptions straight = o;
    straight.fused_passes = false;
    for (const int t : {2, 3}) {
      omp_set_num_threads(t);
      MultigridPreconditioner fused(o), reference(straight);
      fused.setup(sys->view());
      reference.setup(sys->view());
      const Vector r = random_fluid_vector(sys->domain, 4);
      Vector z_ref(r.size());
      reference.apply(r, z_ref);
      for (int round = 0; round < 2; ++round) {
        Vector z_outside(r.size(), 7.0), z_inside(r.size(), -7.0);
        fused.apply(r, z_outside);
        int team = 0;
#pragma omp parallel num_threads(2)
        {
#pragma omp single
          {
            team = omp_get_num_threads();
            fused.apply(r, z_inside);
          }
        }
        ASSERT_EQ(team, 2);
        EXPECT_EQ(std::memcmp(z_outside.data(), z_ref.data(), r.size() * sizeof(double)), 0)
            << "single " << single << " threads " << t << " round " << round;
        EXPECT_EQ(std::memcmp(z_inside.data(), z_ref.data(), r.size() * sizeof(double)), 0)
            << "single " << single << " threads " << t << " round " << round;
      }
    }
  }
  omp_set_num_threads(threads);
}

namespace {

// The unit hierarchy's rules (precond.hpp, src/precond/multigrid.cpp) written out cell by cell,
// one level from the one before, as an independent reference for setup's parallel build.
struct ReferenceLevel {
  Dims dims;
  std::int64_t sy = 0, sz = 0;
  double s = 1.0;
  std::vector<std::uint8_t> type;  // padded like LevelData
  std::int64_t at(int i, int j, int k) const { return (i + 1) + sy * (j + 1) + sz * (k + 1); }
};

constexpr auto kFluid = static_cast<std::uint8_t>(CellType::Fluid);
constexpr auto kSolid = static_cast<std::uint8_t>(CellType::Solid);
constexpr auto kAir = static_cast<std::uint8_t>(CellType::Air);

// A level from its interior types (before isolated cells turn solid): ghosts air only beyond
// open faces (all of them, at edges and corners), then fluid cells without a non-solid
// neighbour solid.
ReferenceLevel reference_level(Dims d, double s, const std::array<FaceBoundary, 6>& faces,
                               const std::function<std::uint8_t(int, int, int)>& interior) {
  ReferenceLevel l;
  l.dims = d;
  l.s = s;
  l.sy = d.nx + 3;
  l.sz = l.sy * (d.ny + 3);
  l.type.assign(static_cast<std::size_t>(l.sz * (d.nz + 3)), kSolid);
  for (int k = -1; k <= d.nz + 1; ++k)
    for (int j = -1; j <= d.ny + 1; ++j)
      for (int i = -1; i <= d.nx + 1; ++i) {
        const bool beyond[6] = {i < 0, i >= d.nx, j < 0, j >= d.ny, k < 0, k >= d.nz};
        bool ghost = false, open = true;
        for (int f = 0; f < 6; ++f)
          if (beyond[f]) {
            ghost = true;
            open = open && faces[f] == FaceBoundary::Open;
          }
        l.type[l.at(i, j, k)] = ghost ? (open ? kAir : kSolid) : interior(i, j, k);
      }
  std::vector<std::uint8_t> before = l.type;
  const std::int64_t off[6] = {-1, 1, -l.sy, l.sy, -l.sz, l.sz};
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j)
      for (int i = 0; i < d.nx; ++i) {
        const std::int64_t p = l.at(i, j, k);
        if (before[p] != kFluid) continue;
        int open = 0;
        for (const auto o : off) open += before[p + o] != kSolid;
        if (open == 0) l.type[p] = kSolid;
      }
  return l;
}

// What hierarchy() reports for the levels of a unit-coefficient domain, computed the slow way
// (Real: the cycle's precision, which rounds the diagonal's inverse and the normalisers).
template <class Real>
void expect_reference_hierarchy(const Domain& domain, const MultigridOptions& o,
                                const std::vector<MultigridPreconditioner::LevelData>& got, const std::string& what) {
  std::vector<ReferenceLevel> ref;
  ref.push_back(reference_level(domain.dims(), 1.0, domain.faces,
                                [&](int i, int j, int k) { return static_cast<std::uint8_t>(domain.cells(i, j, k)); }));
  while (static_cast<int>(ref.size()) < o.max_levels) {
    const ReferenceLevel& f = ref.back();
    const Dims fd = f.dims;
    if (fd.size() <= o.coarsest_cells || std::min({fd.nx, fd.ny, fd.nz}) < 4) break;
    const Dims cd{(fd.nx + 1) / 2, (fd.ny + 1) / 2, (fd.nz + 1) / 2};
    ReferenceLevel c = reference_level(cd, f.s / 4, domain.faces, [&](int i, int j, int k) {
      bool air = false, fluid = false;
      for (int dk = 0; dk < 2; ++dk)
        for (int dj = 0; dj < 2; ++dj)
          for (int di = 0; di < 2; ++di) {
            const int fi = 2 * i + di, fj = 2 * j + dj, fk = 2 * k + dk;
            if (fi >= fd.nx || fj >= fd.ny || fk >= fd.nz) continue;
            air |= f.type[f.at(fi, fj, fk)] == kAir;
            fluid |= f.type[f.at(fi, fj, fk)] == kFluid;
          }
      return air ? kAir : fluid ? kFluid : kSolid;
    });
    if (std::count(c.type.begin(), c.type.end(), kFluid) == 0) break;
    ref.push_back(std::move(c));
  }
  ASSERT_EQ(got.size(), ref.size()) << what;
  for (std::size_t li = 0; li < ref.size(); ++li) {
    const ReferenceLevel& l = ref[li];
    const MultigridPreconditioner::LevelData& g = got[li];
    const std::string at = what + " level " + std::to_string(li);
    ASSERT_EQ(g.dims, l.dims) << at;
    ASSERT_EQ(g.sy, l.sy) << at;
    ASSERT_EQ(g.sz, l.sz) << at;
    EXPECT_EQ(g.s, l.s) << at;
    ASSERT_EQ(g.type, l.type) << at;
    const Dims d = l.dims;
    std::vector<double> diag(l.type.size(), 0.0);
    std::vector<std::int64_t> band[2];
    const std::int64_t off[6] = {-1, 1, -l.sy, l.sy, -l.sz, l.sz};
    for (int k = 0; k < d.nz; ++k)
      for (int j = 0; j < d.ny; ++j)
        for (int i = 0; i < d.nx; ++i) {
          const std::int64_t p = l.at(i, j, k);
          if (l.type[p] != kFluid) continue;
          int open = 0;
          for (const auto o6 : off) open += l.type[p + o6] != kSolid;
          diag[p] = l.s * open;
          // Band: a non-fluid cell (ghosts included; beyond the padding counts as non-fluid)
          // within Chebyshev distance band_width.
          bool near = false;
          const int w = o.band_width;
          for (int dk = -w; dk <= w && !near; ++dk)
            for (int dj = -w; dj <= w && !near; ++dj)
              for (int di = -w; di <= w && !near; ++di) {
                const int a = i + di, b = j + dj, c = k + dk;
                if (a < -1 || b < -1 || c < -1 || a > d.nx + 1 || b > d.ny + 1 || c > d.nz + 1) near = true;
                else near = l.type[l.at(a, b, c)] != kFluid;
              }
          if (near && w > 0) band[(i + j + k) & 1].push_back(p);
        }
    EXPECT_EQ(g.diag, diag) << at;
    EXPECT_EQ(g.band[0], band[0]) << at;
    EXPECT_EQ(g.band[1], band[1]) << at;
    if (li + 1 == ref.size()) {
      EXPECT_TRUE(g.inv_w.empty()) << at;
      continue;
    }
    // Normalisers: 1 / the trilinear weight (3/4 the nearer coarse cell, 1/4 the other, per
    // axis) of the non-solid coarse parents.
    const ReferenceLevel& c = ref[li + 1];
    std::vector<double> inv_w(l.type.size(), 0.0);
    const auto parents = [](int i, int out[2], double weight[2]) {
      const int m = i / 2;
      out[0] = m;
      out[1] = i % 2 == 0 ? m - 1 : m + 1;
      weight[0] = 0.75;
      weight[1] = 0.25;
    };
    for (int k = 0; k < d.nz; ++k)
      for (int j = 0; j < d.ny; ++j)
        for (int i = 0; i < d.nx; ++i) {
          const std::int64_t p = l.at(i, j, k);
          if (l.type[p] != kFluid) continue;
          int pi[2], pj[2], pk[2];
          double wi[2], wj[2], wk[2];
          parents(i, pi, wi);
          parents(j, pj, wj);
          parents(k, pk, wk);
          double sum = 0.0;
          for (int e = 0; e < 2; ++e)
            for (int b = 0; b < 2; ++b)
              for (int a = 0; a < 2; ++a)
                if (c.type[c.at(pi[a], pj[b], pk[e])] != kSolid) sum += wi[a] * wj[b] * wk[e];
          inv_w[p] = sum > 0.0 ? static_cast<double>(static_cast<Real>(1.0 / sum)) : 0.0;
        }
    EXPECT_EQ(g.inv_w, inv_w) << at;
  }
}

// The domains of the set-up comparison: those of the fused passes plus two above the parallel
// threshold on their first coarse level too (every face open; every face a wall: singular).
Domain setup_domain(int which) {
  if (which < 7) return fused_domain(which);
  Domain d = random_domain({67, 71, 69}, 3 + static_cast<unsigned>(which), 0.15, which == 7 ? 0.05 : 0.0);
  for (int f = 0; f < 6; ++f) d.faces[f] = which == 7 ? FaceBoundary::Open : FaceBoundary::Wall;
  return d;
}

}  // namespace

// Setup builds the hierarchy with parallel loops (first touch, band lists from per-plane
// counts) and factorises the coarsest level beside the normalisers and relaxation factors. The
// hierarchy is the same on 1, 2 and 3 threads and equals the rules evaluated cell by cell; with
// per-cell or uniform-interior factors (and on weighted domains, whose hierarchy() refuses) the
// cycle's output is the same bit for bit on 1, 2 and 3 threads.
TEST(MultigridSetup, HierarchyIsThreadIndependentAndFollowsTheRules) {
  const int threads = omp_get_max_threads();
  for (int which = 0; which < 9; ++which) {
    auto sys = make_system(setup_domain(which));
    const bool weighted = sys->domain.weighted();
    for (int variant = 0; variant < 4; ++variant) {
      MultigridOptions o;
      if (which < 7) o.coarsest_cells = 64;
      o.single_precision = variant % 2 == 1;
      if (variant == 1) o.relaxation = std::make_shared<UniformInteriorRelaxation>();
      if (variant == 2) o.relaxation = std::make_shared<RandomRelaxation>(6);
      if (variant == 3) o.band_width = 1;
      const std::string what = "domain " + std::to_string(which) + " variant " + std::to_string(variant);
      std::vector<MultigridPreconditioner::LevelData> first;
      Vector z_first;
      const Vector r = random_fluid_vector(sys->domain, 4);
      for (const int t : {1, 2, 3}) {
        omp_set_num_threads(t);
        MultigridPreconditioner mg(o);
        mg.setup(sys->view());
        Vector z(r.size(), 3.0);
        mg.apply(r, z);
        if (t == 1) {
          z_first = z;
        } else {
          ASSERT_EQ(std::memcmp(z.data(), z_first.data(), z.size() * sizeof(double)), 0) << what << " threads " << t;
        }
        if (weighted) continue;
        const std::vector<MultigridPreconditioner::LevelData> h = mg.hierarchy();
        if (t == 1) {
          first = h;
          if (o.single_precision) expect_reference_hierarchy<float>(sys->domain, o, h, what);
          else expect_reference_hierarchy<double>(sys->domain, o, h, what);
          continue;
        }
        ASSERT_EQ(h.size(), first.size()) << what;
        for (std::size_t li = 0; li < h.size(); ++li) {
          EXPECT_EQ(h[li].type, first[li].type) << what << " threads " << t << " level " << li;
          EXPECT_EQ(h[li].diag, first[li].diag) << what << " threads " << t << " level " << li;
          EXPECT_EQ(h[li].inv_w, first[li].inv_w) << what << " threads " << t << " level " << li;
          EXPECT_EQ(h[li].band[0], first[li].band[0]) << what << " threads " << t << " level " << li;
          EXPECT_EQ(h[li].band[1], first[li].band[1]) << what << " threads " << t << " level " << li;
        }
      }
    }
  }
  omp_set_num_threads(threads);
}

// A refused relaxation factor is reported from the overlapped set-up too (a grid above the
// parallel threshold, 2 threads: the factors are computed beside the coarsest factorisation),
// and the preconditioner can be set up again afterwards.
TEST(MultigridSetup, ErrorsInTheOverlappedStepsReachTheCaller) {
  const int threads = omp_get_max_threads();
  omp_set_num_threads(2);
  auto sys = make_system(obstacle_domain({40, 36, 34}));
  MultigridOptions o;
  o.relaxation = std::make_shared<OutOfRangeRelaxation>();
  MultigridPreconditioner mg(o);
  EXPECT_THROW(mg.setup(sys->view()), Error);
  o.relaxation = std::make_shared<UniformInteriorRelaxation>();
  MultigridPreconditioner good(o);
  EXPECT_NO_THROW(good.setup(sys->view()));
  EXPECT_GE(good.levels(), 2);
  omp_set_num_threads(threads);
}
