// RelaxNet (learned relaxation multigrid): the LibTorch training path against the OpenMP
// cycle, symmetry and convergence for any weights, the model file, training and the CLI.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "cli_test.hpp"
#include "dcdm/dataset.hpp"
#include "dcdm/dcdm.hpp"
#include "dcdm/error.hpp"
#include "dcdm/flagnet.hpp"
#include "dcdm/krylov.hpp"
#include "dcdm/methods.hpp"
#include "dcdm/models.hpp"
#include "dcdm/poisson.hpp"
#include "dcdm/relaxnet.hpp"
#include "dcdm/scenes.hpp"
#include "temp_dir.hpp"
#include "test_domains.hpp"

using namespace dcdm;
using namespace dcdm::learn;
namespace fs = std::filesystem;

namespace {

struct Problem {
  Domain domain;
  std::unique_ptr<PoissonStencil> op;
  std::unique_ptr<RangeProjector> projector;
  LinearSystemView view() const {
    LinearSystemView v{op.get(), nullptr, &domain, nullptr};
    if (projector->singular()) v.project_range = projector->as_function();
    return v;
  }
};

Problem make_problem(Domain d) {
  Problem p;
  p.domain = std::move(d);
  p.op = std::make_unique<PoissonStencil>(p.domain);
  p.projector = std::make_unique<RangeProjector>(p.domain);
  return p;
}

Domain scene(const char* name, Dims dims, std::uint64_t seed) {
  SceneSpec s;
  s.name = name;
  s.dims = dims;
  s.seed = seed;
  return make_scene(s);
}

std::vector<double> random_fluid(const Domain& d, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> g;
  std::vector<double> v(static_cast<std::size_t>(d.dims().size()), 0.0);
  for (std::int64_t c = 0; c < d.dims().size(); ++c)
    if (d.cells[c] == CellType::Fluid) v[c] = g(rng);
  return v;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

fs::path temp_dir(const std::string& name) { return dcdm::test::fresh_temp_dir("relaxnet_" + name); }

// make_generator's argument for the trained cycle (the exact coarsest solve of the LibTorch
// cycle), which the agreement tests compare with the training path.
const std::int64_t kTrained = RelaxNetSpec::cycle_options().coarsest_cells;

// DCDM with a model's cycle as generator, as the CLI's dcdm-relax builds it (the cycle is SPD for
// any weights, so without the weak-direction guard), set up on `view`: the trained cycle, or
// the deployed one.
std::unique_ptr<DcdmSolver> relaxnet_dcdm(const RelaxNet& net, const LinearSystemView& view, bool deployed = false) {
  DcdmOptions o;
  o.weak_fallback = false;
  auto solver = std::make_unique<DcdmSolver>(
      [&net, deployed](const LinearSystemView& v) -> std::unique_ptr<LinearOperator> {
        return net.make_generator(v, deployed ? 0 : kTrained);
      },
      o, "dcdm-relax");
  solver->setup(view);
  return solver;
}

}  // namespace

// The training path (LibTorch autograd cycle built from the exported hierarchy) computes the
// same map as the OpenMP cycle the solver runs, on non-cubic grids with air, walls, obstacles
// and a sealed region, for random weights (factors far from the base).
TEST(RelaxNetKernels, LibTorchForwardAgreesWithTheOpenMpCycle) {
  const Domain domains[] = {scene("pool", {40, 34, 36}, 2), dcdm::testing::random_domain({37, 33, 35}, 4, 0.15, 0.07),
                            scene("obstacles", {24, 24, 24}, 1)};
  for (const Domain& dom : domains)
   for (const bool per_cell_interior : {false, true}) {  // relaxnet-v2, relaxnet-v1
    const Problem p = make_problem(dom);
    RelaxNet net = RelaxNet::random(7, 0.8);
    net.parameters().per_cell_interior = per_cell_interior;
    const auto gen = net.make_generator(p.view(), kTrained);
    EXPECT_GE(gen->levels(), 2);
    const int batch = 2;
    const auto n = static_cast<std::size_t>(dom.dims().size());
    std::vector<float> x(batch * n);
    for (int b = 0; b < batch; ++b) {
      const auto v = random_fluid(dom, 11 + b);
      std::copy(v.begin(), v.end(), x.begin() + static_cast<std::ptrdiff_t>(b * n));
    }
    const auto ref = relaxnet_torch_forward(net.parameters(), dom, x, batch);
    for (int b = 0; b < batch; ++b) {
      std::vector<double> in(x.begin() + static_cast<std::ptrdiff_t>(b * n), x.begin() + static_cast<std::ptrdiff_t>((b + 1) * n));
      std::vector<double> out(n);
      gen->apply(in, out);
      double worst = 0, scale = 0;
      for (std::size_t i = 0; i < n; ++i) {
        worst = std::max(worst, std::fabs(out[i] - double(ref[b * n + i])));
        scale = std::max(scale, std::fabs(out[i]));
      }
      ASSERT_GT(scale, 0.0);
      EXPECT_LE(worst, 2e-5 * scale) << dom.dims().str() << " sample " << b << " v1 " << per_cell_interior;
    }
  }
}

// relaxnet-v2's cycle asks for the band cells' factors only (uniform_interior, band_factors);
// the generic path through factors() on whole levels must build the same cycle, bit for bit.
TEST(RelaxNetKernels, VersionTwoBandOnlySetupEqualsTheGenericPath) {
  struct Generic final : RelaxationModel {  // factors() only: the per-cell path of the setup
    RelaxNetFactors inner;
    explicit Generic(const RelaxNetParameters& p) : inner(p) {}
    void factors(const MultigridLevelView& level, dcdm::span<float> interior, dcdm::span<float> band) const override {
      inner.factors(level, interior, band);
    }
  };
  for (const Domain& dom : {scene("pool", {40, 34, 36}, 2), scene("obstacles", {33, 30, 31}, 4)}) {
    const Problem p = make_problem(dom);
    const RelaxNet net = RelaxNet::random(12, 0.8);
    ASSERT_FALSE(net.parameters().per_cell_interior);
    MultigridOptions generic = net.cycle_options();
    generic.relaxation = std::make_shared<Generic>(net.parameters());
    MultigridPreconditioner a(net.cycle_options()), b(generic);
    a.setup(p.view());
    b.setup(p.view());
    const auto u = random_fluid(dom, 5);
    std::vector<double> ya(u.size()), yb(u.size());
    a.apply(u, ya);
    b.apply(u, yb);
    EXPECT_EQ(ya, yb) << dom.dims().str();
  }
}

// relaxnet-v2 (what training writes): one interior factor, the all-fluid one, for every cell,
// and per-cell band factors; a v1 reading of the same weights varies the interior factor
// near walls and air. Both lie in (0, 2).
TEST(RelaxNetKernels, VersionTwoHasOneInteriorFactor) {
  const Domain dom = scene("pool", {20, 18, 22}, 3);
  const PoissonStencil op(dom);
  MultigridPreconditioner mg(RelaxNet::initial().cycle_options());
  mg.setup(LinearSystemView{&op, nullptr, &dom, nullptr});
  const auto level = mg.hierarchy().front();
  MultigridLevelView view{level.dims, 0, 2, level.sy, level.sz, level.type.data()};
  RelaxNet net = RelaxNet::random(9, 0.8);
  const auto inside = net.all_fluid_factors();
  for (const bool per_cell_interior : {false, true}) {
    net.parameters().per_cell_interior = per_cell_interior;
    std::vector<float> interior(level.type.size(), 0.0f), band(level.type.size(), 0.0f);
    RelaxNetFactors(net.parameters()).factors(view, interior, band);
    std::set<float> interior_values, band_values;
    for (std::size_t p = 0; p < level.type.size(); ++p) {
      if (level.type[p] != static_cast<std::uint8_t>(CellType::Fluid)) continue;
      ASSERT_TRUE(interior[p] > 0.0f && interior[p] < 2.0f && band[p] > 0.0f && band[p] < 2.0f);
      interior_values.insert(interior[p]);
      band_values.insert(band[p]);
    }
    EXPECT_GT(band_values.size(), 5u);
    if (per_cell_interior) {
      EXPECT_GT(interior_values.size(), 5u);
    } else {
      ASSERT_EQ(interior_values.size(), 1u);
      EXPECT_NEAR(*interior_values.begin(), inside[0], 1e-6);
      const auto range = net.factor_range();
      EXPECT_EQ(range[0], range[1]);
      EXPECT_NEAR(range[0], inside[0], 1e-12);
    }
  }
}

// Sanity checks as for the reference network. On a grid the hierarchy solves exactly (one
// level: at most 4096 cells) any weights give the exact (pseudo-)inverse up to float rounding,
// so DCDM converges in one iteration; the zero-parameter model is MGPCG's cycle in float (the
// learned part is the identity); random weights give finite directions on walls, air and
// obstacles.
TEST(RelaxNetKernels, ExactInverseOnOneLevelAndTheInitialModelIsMgpcgsFloatCycle) {
  const auto max_abs = [](const std::vector<double>& v) {
    double m = 0;
    for (const double e : v) m = std::max(m, std::fabs(e));
    return m;
  };
  for (const char* name : {"pool", "sphere"}) {
    const Problem p = make_problem(scene(name, {16, 12, 14}, 2));
    const RelaxNet net = RelaxNet::random(5, 0.7);
    const auto gen = net.make_generator(p.view(), kTrained);
    ASSERT_EQ(gen->levels(), 1) << name;
    std::vector<double> x_true = random_fluid(p.domain, 3);
    if (p.projector->singular()) (*p.projector)(x_true);
    std::vector<double> b(x_true.size()), z(x_true.size());
    p.op->apply(x_true, b);
    gen->apply(b, z);
    if (p.projector->singular()) (*p.projector)(z);
    double err = 0;
    for (std::size_t c = 0; c < z.size(); ++c) err = std::max(err, std::fabs(z[c] - x_true[c]));
    EXPECT_LE(err, 1e-5 * max_abs(x_true)) << name;
    const auto dcdm = relaxnet_dcdm(net, p.view());
    SolveOptions so;
    so.rtol = 1e-6;
    std::vector<double> x(b.size());
    const auto rep = dcdm->solve(b, x, so);
    ASSERT_TRUE(rep.converged()) << name << ": " << rep.detail;
    EXPECT_EQ(rep.iterations, 1) << name;
  }
  for (const char* name : {"obstacles", "pool"}) {
    const Problem p = make_problem(scene(name, {40, 36, 44}, 4));
    MultigridOptions float_cycle;
    float_cycle.single_precision = true;
    MultigridPreconditioner mgpcg_float(float_cycle);
    mgpcg_float.setup(p.view());
    const auto initial = RelaxNet::initial().make_generator(p.view(), kTrained);
    ASSERT_GT(initial->levels(), 1) << name;
    ASSERT_EQ(initial->levels(), mgpcg_float.levels()) << name;
    const std::vector<double> u = random_fluid(p.domain, 8);
    std::vector<double> zi(u.size()), zm(u.size());
    initial->apply(u, zi);
    mgpcg_float.apply(u, zm);
    double diff = 0;
    for (std::size_t c = 0; c < u.size(); ++c) diff = std::max(diff, std::fabs(zi[c] - zm[c]));
    EXPECT_LE(diff, 1e-5 * max_abs(zm)) << name;  // x + 1 (gs - x) against gs, in float
    const auto random = RelaxNet::random(7, 1.5).make_generator(p.view());
    std::vector<double> zr(u.size());
    random->apply(u, zr);
    for (std::size_t c = 0; c < u.size(); ++c) {
      ASSERT_TRUE(std::isfinite(zr[c])) << name << " cell " << c;
      if (p.domain.cells[static_cast<std::int64_t>(c)] != CellType::Fluid) {
        ASSERT_EQ(zr[c], 0.0) << name << " cell " << c;
      }
    }
    EXPECT_GT(dot(u, zr), 0.0) << name;
  }
}

// Any weights give a symmetric positive definite generator, so DCDM needs no fallback and
// reaches the independent CG solution; the zero-weight model is MGPCG's cycle in float and takes no more
// iterations than MGPCG here.
TEST(RelaxNetDcdm, AnyWeightsGiveASymmetricGeneratorThatConverges) {
  for (const char* name : {"obstacles", "pool", "sphere"}) {
    const Problem p = make_problem(scene(name, {32, 32, 32}, 3));
    std::vector<double> b = random_fluid(p.domain, 9);
    if (p.projector->singular()) (*p.projector)(b);
    SolveOptions opt;
    opt.rtol = 1e-9;
    opt.max_iterations = 3000;
    auto cg = make_cg_solver();
    cg->setup(p.view());
    std::vector<double> xref(b.size());
    ASSERT_TRUE(cg->solve(b, xref, opt).converged());
    for (const double scale : {0.0, 0.7}) {
      const RelaxNet net = scale == 0 ? RelaxNet::initial() : RelaxNet::random(3, scale);
      const auto gen = net.make_generator(p.view(), kTrained);
      const auto u = random_fluid(p.domain, 21), v = random_fluid(p.domain, 22);
      std::vector<double> gu(u.size()), gv(v.size());
      gen->apply(u, gu);
      gen->apply(v, gv);
      EXPECT_NEAR(dot(u, gv), dot(v, gu), 1e-5 * std::sqrt(dot(u, u) * dot(gv, gv))) << name;
      EXPECT_GT(dot(u, gu), 0.0) << name;
      const auto dcdm = relaxnet_dcdm(net, p.view());
      SolveOptions so;
      so.rtol = 1e-6;
      std::vector<double> x(b.size());
      const auto rep = dcdm->solve(b, x, so);
      ASSERT_TRUE(rep.converged()) << name << ": " << rep.detail;
      EXPECT_EQ(dcdm->last_stats().fallback_directions, 0) << name;
      EXPECT_LT(rep.iterations, scale == 0 ? 20 : 80) << name << " scale " << scale;
      if (p.projector->singular()) (*p.projector)(x);
      double err = 0, ref = 0;
      for (std::size_t c = 0; c < x.size(); ++c) {
        err = std::max(err, std::fabs(x[c] - xref[c]));
        ref = std::max(ref, std::fabs(xref[c]));
      }
      EXPECT_LE(err, 1e-4 * ref) << name;
      if (scale == 0) {
        PcgSolver mgpcg("mgpcg", std::make_unique<MultigridPreconditioner>());
        mgpcg.setup(p.view());
        std::vector<double> xm(b.size());
        const auto mrep = mgpcg.solve(b, xm, so);
        EXPECT_LE(rep.iterations, mrep.iterations) << name;
      }
    }
  }
}

// dcdm-relax with float direction vectors (--dcdm-vectors; auto is float at rtol 1e-6): on
// held-out scenes (seed 5, not used in training), a singular closed box included, the same
// iterations as with double vectors, the true residual b - A x at the tolerance, and the same
// solution to the tolerance's accuracy.
TEST(RelaxNetDcdm, FloatVectorsKeepIterationsAndTheTrueResidual) {
  Domain closed = dcdm::testing::random_domain({29, 26, 23}, 5, 0.05, 0.0);
  closed.faces.fill(FaceBoundary::Wall);
  std::vector<std::pair<std::string, Domain>> cases;
  for (const char* name : {"obstacles", "bunny", "sphere"}) cases.emplace_back(name, scene(name, {40, 37, 35}, 5));
  cases.emplace_back("closed", std::move(closed));
  for (auto& [name, domain] : cases) {
    const Problem p = make_problem(std::move(domain));
    std::vector<double> b = random_fluid(p.domain, 17);
    if (p.projector->singular()) (*p.projector)(b);
    SolveOptions opt;
    opt.rtol = 1e-6;
    SolveReport reports[3];
    std::vector<double> xs[3];
    const char* precisions[3] = {"double", "float", "auto"};
    for (int v = 0; v < 3; ++v) {
      MethodParams params;
      params.dcdm_vectors = precisions[v];
      auto solver = make_solver("dcdm-relax", params);
      solver->setup(p.view());
      xs[v].assign(b.size(), 0.0);
      reports[v] = solver->solve(b, xs[v], opt);
      ASSERT_TRUE(reports[v].converged()) << name << " " << precisions[v] << ": " << reports[v].detail;
      const auto* dcdm = dynamic_cast<const DcdmSolver*>(solver.get());
      ASSERT_NE(dcdm, nullptr);
      EXPECT_EQ(dcdm->last_stats().single_precision_vectors, v > 0) << name << " " << precisions[v];
      // The reported final residual is b - A x, recomputed here independently.
      std::vector<double> ax(b.size());
      p.op->apply(xs[v], ax);
      double rr = 0;
      for (std::size_t c = 0; c < b.size(); ++c) rr += (b[c] - ax[c]) * (b[c] - ax[c]);
      EXPECT_LE(std::sqrt(rr), 1e-6 * std::sqrt(dot(b, b))) << name << " " << precisions[v];
    }
    EXPECT_EQ(reports[1].iterations, reports[0].iterations) << name;
    EXPECT_EQ(reports[2].iterations, reports[0].iterations) << name;
    // The cycle writes its float result straight into the direction's buffer; through a
    // generator that only offers double output the float path gives the same iterates.
    {
      struct DoubleOnly final : LinearOperator {
        std::unique_ptr<LinearOperator> inner;
        std::int64_t size() const override { return inner->size(); }
        void apply(dcdm::span<const double> x, dcdm::span<double> y) const override { inner->apply(x, y); }
      };
      const RelaxNet net = RelaxNet::load(find_model("relaxnet"));
      DcdmOptions o;
      o.weak_fallback = false;
      o.k = 1;
      o.vector_precision = DcdmOptions::VectorPrecision::Float;
      DcdmSolver wrapped(
          [&net](const LinearSystemView& v) -> std::unique_ptr<LinearOperator> {
            auto g = std::make_unique<DoubleOnly>();
            g->inner = net.make_generator(v);
            return g;
          },
          o, "dcdm-relax");
      wrapped.setup(p.view());
      std::vector<double> xw(b.size(), 0.0);
      const SolveReport rw = wrapped.solve(b, xw, opt);
      EXPECT_EQ(rw.residual_history, reports[1].residual_history) << name;
      EXPECT_EQ(xw, xs[1]) << name;
    }
    if (p.projector->singular()) {
      (*p.projector)(xs[0]);
      (*p.projector)(xs[1]);
    }
    double diff = 0, ref = 0;
    for (std::size_t c = 0; c < b.size(); ++c) {
      diff = std::max(diff, std::fabs(xs[1][c] - xs[0][c]));
      ref = std::max(ref, std::fabs(xs[0][c]));
    }
    EXPECT_LE(diff, 1e-4 * ref) << name;
  }
}

// Float direction vectors on singular systems at tight tolerances: A q rounded to float is not
// exactly in A's range, and its part along the null space (about 1e-8 of it a step) would build
// up in the updated residual where no direction removes it (a closed speckled box stalled at
// 2e-8 of ||b||); each step projects the residual. The true residual reaches 1e-11.
TEST(RelaxNetDcdm, FloatVectorsReachTightTolerancesOnSingularSystems) {
  for (const double solid : {0.05, 0.2}) {
    Domain closed = dcdm::testing::random_domain({33, 30, 28}, 7, solid, 0.0);
    closed.faces.fill(FaceBoundary::Wall);
    const Problem p = make_problem(std::move(closed));
    ASSERT_TRUE(p.projector->singular());
    std::vector<double> b = random_fluid(p.domain, 23);
    (*p.projector)(b);
    SolveOptions opt;
    opt.rtol = 1e-11;
    opt.max_iterations = 200;
    MethodParams params;
    params.dcdm_vectors = "float";
    auto solver = make_solver("dcdm-relax", params);
    solver->setup(p.view());
    std::vector<double> x(b.size(), 0.0);
    const SolveReport rep = solver->solve(b, x, opt);
    ASSERT_TRUE(rep.converged()) << "solid " << solid << ": " << rep.detail;
    EXPECT_LE(rep.iterations, 30) << "solid " << solid;
    std::vector<double> ax(b.size());
    p.op->apply(x, ax);
    double rr = 0;
    for (std::size_t c = 0; c < b.size(); ++c) rr += (b[c] - ax[c]) * (b[c] - ax[c]);
    EXPECT_LE(std::sqrt(rr), 1e-11 * std::sqrt(dot(b, b))) << "solid " << solid;
  }
}

// The deployed cycle (the coarsest level solved by three cycles over coarser levels, not
// factorised) against the trained one (exact) with the shipped model: a symmetric positive
// generator close to the trained cycle, with which DCDM takes the trained cycle's iterations,
// on grids whose coarsest level is open, has air, or is closed and in many components
// (singular).
TEST(RelaxNetDcdm, DeployedCycleTakesTheTrainedCyclesIterations) {
  const RelaxNet net = RelaxNet::load(find_model("relaxnet"));
  for (const Domain& dom : {scene("obstacles", {56, 48, 52}, 6), scene("bunny", {48, 48, 48}, 2),
                            dcdm::testing::random_domain({40, 36, 38}, 3, 0.2, 0.0)}) {
    const Problem p = make_problem(dom);
    const auto trained = net.make_generator(p.view(), kTrained);
    const auto deployed = net.make_generator(p.view());
    EXPECT_GT(deployed->levels(), trained->levels()) << dom.dims().str();
    const auto u = random_fluid(dom, 31), v = random_fluid(dom, 32);
    std::vector<double> zu(u.size()), zv(v.size()), zt(u.size());
    deployed->apply(u, zu);
    deployed->apply(v, zv);
    trained->apply(u, zt);
    EXPECT_NEAR(dot(u, zv), dot(v, zu), 1e-5 * std::sqrt(dot(u, u) * dot(zv, zv))) << dom.dims().str();
    EXPECT_GT(dot(u, zu), 0.0) << dom.dims().str();
    double diff = 0;
    for (std::size_t c = 0; c < u.size(); ++c) diff += (zu[c] - zt[c]) * (zu[c] - zt[c]);
    EXPECT_LT(std::sqrt(diff / dot(zt, zt)), 1e-2) << dom.dims().str();
    std::vector<double> b = random_fluid(dom, 5);
    if (p.projector->singular()) (*p.projector)(b);
    SolveOptions so;
    so.rtol = 1e-6;
    std::vector<double> x(b.size()), xt(b.size());
    const auto rep = relaxnet_dcdm(net, p.view(), true)->solve(b, x, so);
    const auto rep_trained = relaxnet_dcdm(net, p.view())->solve(b, xt, so);
    ASSERT_TRUE(rep.converged()) << rep.detail;
    EXPECT_EQ(rep.iterations, rep_trained.iterations) << dom.dims().str();
  }
}

// The unrolled loss of the training path equals what the DCDM solver does with the same
// generator: (||r_S|| / ||b||)^(2/S) after S iterations.
TEST(RelaxNetTraining, UnrolledLossMatchesTheDcdmSolver) {
  const Problem p = make_problem(scene("pool", {32, 32, 32}, 1));
  const RelaxNet net = RelaxNet::random(4, 0.5);
  std::vector<double> b = random_fluid(p.domain, 5);
  if (p.projector->singular()) (*p.projector)(b);
  const double nb = std::sqrt(dot(b, b));
  std::vector<float> bf(b.size());
  for (std::size_t i = 0; i < b.size(); ++i) bf[i] = static_cast<float>(b[i] / nb);
  for (const int steps : {1, 3}) {
    const double loss = relaxnet_training_loss(net.parameters(), p.domain, bf, 1, steps);
    const auto dcdm = relaxnet_dcdm(net, p.view());
    SolveOptions so;
    so.rtol = 1e-30;
    so.max_iterations = steps;
    std::vector<double> x(b.size());
    const auto rep = dcdm->solve(b, x, so);
    ASSERT_EQ(rep.iterations, steps) << rep.detail;
    const double expected = std::pow(rep.residual_history[steps] / rep.residual_history[0], 2.0 / steps);
    EXPECT_LT(expected, 1.0);
    EXPECT_NEAR(loss, expected, 2e-3 * expected) << steps << " steps";
  }
}

TEST(RelaxNetModel, RoundTripAndWrongFiles) {
  const fs::path dir = temp_dir("model");
  RelaxNet net = RelaxNet::random(5, 0.3);
  net.metadata().created_by = "test";
  net.save(dir / "r.dcdm");
  EXPECT_EQ(model_file_architecture(dir / "r.dcdm"), "relaxnet");
  const RelaxNet back = RelaxNet::load(dir / "r.dcdm");
  EXPECT_EQ(back.parameters().weight, net.parameters().weight);
  EXPECT_EQ(back.parameters().bias, net.parameters().bias);
  EXPECT_EQ(back.metadata().created_by, "test");
  EXPECT_EQ(back.metadata().variant, kRelaxNetVariant);
  EXPECT_FALSE(back.parameters().per_cell_interior);
  {  // a relaxnet-v1 file (per-cell interior factors) keeps its reading
    RelaxNet v1 = net;
    v1.parameters().per_cell_interior = true;
    v1.save(dir / "v1.dcdm");
    const RelaxNet v1_back = RelaxNet::load(dir / "v1.dcdm");
    EXPECT_EQ(v1_back.metadata().variant, kRelaxNetVariantV1);
    EXPECT_TRUE(v1_back.parameters().per_cell_interior);
    EXPECT_EQ(v1_back.parameters().weight, net.parameters().weight);
  }
  // Bit-identical directions from the reloaded file.
  const Problem p = make_problem(scene("obstacles", {24, 20, 22}, 2));
  const auto u = random_fluid(p.domain, 3);
  std::vector<double> y1(u.size()), y2(u.size());
  net.make_generator(p.view())->apply(u, y1);
  back.make_generator(p.view())->apply(u, y2);
  EXPECT_EQ(y1, y2);
  // The summary of `model info`: the untrained model is plain Gauss-Seidel everywhere; a
  // trained one's all-fluid factors are what the cycle uses deep inside the fluid.
  EXPECT_EQ(RelaxNet::initial().all_fluid_factors(), (std::array<double, 2>{1.0, 1.0}));
  {
    const auto range = net.factor_range();
    const auto inside = net.all_fluid_factors();
    EXPECT_TRUE(range[0] <= inside[0] && inside[0] <= range[1]);
    EXPECT_TRUE(range[2] <= inside[1] && inside[1] <= range[3]);
    const Problem box = make_problem(scene("box", {20, 20, 20}, 0));
    MultigridLevelView view{box.domain.dims(), 0, 2, 23, 23 * 23, nullptr};
    std::vector<std::uint8_t> types(static_cast<std::size_t>(23 * 23 * 23), static_cast<std::uint8_t>(CellType::Fluid));
    view.type = types.data();
    std::vector<float> interior(types.size()), band(types.size());
    RelaxNetFactors(net.parameters()).factors(view, interior, band);
    EXPECT_NEAR(interior[view.at(10, 10, 10)], inside[0], 1e-6);
    EXPECT_NEAR(band[view.at(10, 10, 10)], inside[1], 1e-6);
  }
  // Other architectures are refused both ways, naming the file.
  FlagNet::initial().save(dir / "f.dcdm");
  try {
    RelaxNet::load(dir / "f.dcdm");
    FAIL() << "flagnet file loaded as relaxnet";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("f.dcdm"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("relaxnet"), std::string::npos) << e.what();
  }
  EXPECT_THROW(FlagNet::load(dir / "r.dcdm"), InputError);
  std::string bytes;
  {
    std::ifstream in(dir / "r.dcdm", std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  {
    std::ofstream out(dir / "t.dcdm", std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size() - 10));
  }
  EXPECT_THROW(RelaxNet::load(dir / "t.dcdm"), InputError);
  EXPECT_THROW(RelaxNet::load(dir / "missing.dcdm"), InputError);
  fs::remove_all(dir);
}

TEST(RelaxNetTraining, ShortRunLowersTheLossPausesAndResumes) {
  const fs::path dir = temp_dir("train");
  std::vector<fs::path> data;
  for (int i = 0; i < 2; ++i) {
    // 24^3: one smoothing level above the exact coarsest (at most 4096 cells).
    const Domain dom = scene(i == 0 ? "obstacles" : "pool", {24, 24, 24}, static_cast<std::uint64_t>(i + 1));
    const PoissonStencil a(dom);
    const RangeProjector project(dom);
    DatasetSpec spec;
    spec.recipe = {40, 4, 9.0, 1};
    spec.samples = 24;
    spec.shard_size = 24;
    spec.source = i == 0 ? "obstacles" : "pool";
    data.push_back(dir / spec.source);
    write_dataset(data.back(), dom, a, project.singular() ? project.as_function() : nullptr, spec);
  }
  FlagNetTrainOptions o;
  o.data = data;
  o.steps = 8;
  o.batch = 4;
  o.lr = 2e-2;
  o.validate_every = 4;
  o.out = dir / "m.dcdm";
  o.seed = 1;
  o.select = "iterations";
  o.time_limit_s = 1e-9;  // stops after the first validation
  auto r = train_relaxnet(o);
  EXPECT_EQ(r.steps, 4);
  EXPECT_EQ(r.stop_reason, "time-limit");
  EXPECT_GT(r.initial_val_iterations, 0.0);
  o.time_limit_s = 0;
  o.resume = true;
  r = train_relaxnet(o);
  EXPECT_EQ(r.steps, 8);
  EXPECT_LE(r.best_val_iterations, r.initial_val_iterations);
  const RelaxNet kept = RelaxNet::load(o.out);
  EXPECT_EQ(kept.metadata().trained_grid, (Dims{24, 24, 24}));
  EXPECT_EQ(kept.metadata().variant, kRelaxNetVariant);
  {  // from a relaxnet-v1 file: training continues its weights as relaxnet-v2 and says so
    RelaxNet v1 = kept;
    v1.parameters().per_cell_interior = true;
    v1.save(dir / "v1.dcdm");
    FlagNetTrainOptions f = o;
    f.resume = false;
    f.init = dir / "v1.dcdm";
    f.out = dir / "from_v1.dcdm";
    f.steps = 1;
    f.validate_every = 1;
    std::string logged;
    train_relaxnet(f, [&](const std::string& line) { logged += line + "\n"; });
    EXPECT_NE(logged.find("relaxnet-v1 file"), std::string::npos) << logged;
    EXPECT_EQ(RelaxNet::load(f.out).metadata().variant, kRelaxNetVariant);
  }
  // Selection by loss on the same data: the one-step loss falls in a few steps.
  FlagNetTrainOptions l = o;
  l.resume = false;
  l.select = "loss";
  l.out = dir / "l.dcdm";
  r = train_relaxnet(l);
  EXPECT_LT(r.best_val_loss, r.initial_val_loss);
  // Resuming with other options is refused.
  o.lr = 1e-3;
  EXPECT_THROW(train_relaxnet(o), InputError);
  // A grid the cycle solves exactly (no smoothing level) has nothing to train.
  {
    const Domain small = scene("obstacles", {12, 12, 12}, 1);
    const PoissonStencil a(small);
    DatasetSpec spec;
    spec.recipe = {20, 4, 5.0, 1};
    spec.samples = 8;
    spec.shard_size = 8;
    spec.source = "small";
    write_dataset(dir / "small", small, a, nullptr, spec);
    FlagNetTrainOptions t = l;
    t.data = {dir / "small"};
    t.out = dir / "s.dcdm";
    try {
      train_relaxnet(t);
      FAIL() << "trained on a grid without smoothing levels";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("small"), std::string::npos) << e.what();
    }
    // Trained through a deeper cycle (coarsened to at most 64 cells: 12^3, 6^3, 3^3) it has
    // smoothing levels, and its checkpoint refuses a resume through another cycle.
    t.cycle_coarsest = 64;
    t.steps = 2;
    t.validate_every = 1;
    r = train_relaxnet(t);
    EXPECT_EQ(r.steps, 2);
    EXPECT_LT(r.best_val_loss, r.initial_val_loss);
    EXPECT_NE(RelaxNet::load(t.out).metadata().training_summary_json.find("\"cycle_coarsest\":64"), std::string::npos);
    t.resume = true;
    t.steps = 3;
    t.cycle_coarsest = 512;
    EXPECT_THROW(train_relaxnet(t), InputError);
    // FlagNet has no such cycle.
    FlagNetTrainOptions f = l;
    f.cycle_coarsest = 64;
    EXPECT_THROW(train_flagnet(f), InputError);
  }
  fs::remove_all(dir);
}

namespace {
class RelaxNetCli : public dcdm::testing::CliTest {
 protected:
  RelaxNetCli() : CliTest("relaxnet", 1) {}
};
}  // namespace

TEST_F(RelaxNetCli, SolveWithInitialAndModelFileDispatch) {
  EXPECT_EQ(run_cli("solve --scene obstacles --n 24 --method dcdm-relax:initial"), 0) << log();
  EXPECT_NE(log().find("converged"), std::string::npos) << log();
  RelaxNet::random(2, 0.2).save(dir_ / "r.dcdm");
  EXPECT_EQ(run_cli(fmt::format("solve --scene pool --n 24 --method dcdm --model {}", (dir_ / "r.dcdm").string())), 0)
      << log();
  EXPECT_NE(log().find("converged"), std::string::npos) << log();
  EXPECT_EQ(run_cli(fmt::format("model info {}", (dir_ / "r.dcdm").string())), 0) << log();
  EXPECT_NE(log().find("relaxnet"), std::string::npos) << log();
  EXPECT_NE(log().find("all-fluid neighbourhood"), std::string::npos) << log();
  FlagNet::initial().save(dir_ / "f.dcdm");
  EXPECT_EQ(run_cli(fmt::format("solve --scene pool --n 16 --method dcdm-relax:{}", (dir_ / "f.dcdm").string())), 2)
      << log();
  EXPECT_NE(log().find("f.dcdm"), std::string::npos) << log();
}
