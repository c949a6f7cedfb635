// The smoke simulation end to end: projection accuracy, solid boundary conditions (static
// and moving), compatibility of closed boxes, determinism, checkpoint / resume.
#include <cmath>
#include <filesystem>
#include <fstream>

#include <omp.h>

#include <gtest/gtest.h>

#include "dcdm/error.hpp"
#include "dcdm/poisson.hpp"
#include "dcdm/sim.hpp"

namespace dcdm::sim {
namespace {

namespace fs = std::filesystem;

// Serial kernels: these tests run tiny grids, where OpenMP fork/join costs more than the work.
double sdot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// A plain CG written here, independent of src/krylov, applying the range projection to b and
// to the residual as the solver interface asks.
class ReferenceCg final : public IterativeSolver {
 public:
  std::string name() const override { return "reference-cg"; }
  void setup(const LinearSystemView& system) override {
    system_ = system;
    ++setups;
  }
  SolveReport solve_scaled(dcdm::span<const double> b_in, dcdm::span<double> x,
                    const SolveOptions& options) override {
    const std::size_t n = b_in.size();
    std::vector<double> b(b_in.begin(), b_in.end()), r(n), p(n), ap(n);
    if (system_.project_range) system_.project_range(b);
    if (!options.use_initial_guess) std::fill(x.begin(), x.end(), 0.0);
    system_.op->apply(x, ap);
    for (std::size_t i = 0; i < n; ++i) r[i] = b[i] - ap[i];
    if (system_.project_range) system_.project_range(r);
    SolveReport rep;
    rep.method = name();
    rep.rhs_norm = std::sqrt(sdot(b, b));
    rep.initial_residual = std::sqrt(sdot(r, r));
    p = r;
    double rr = sdot(r, r);
    int it = 0;
    while (std::sqrt(rr) > options.rtol * rep.rhs_norm && it < options.max_iterations) {
      system_.op->apply(p, ap);
      const double alpha = rr / sdot(p, ap);
      for (std::size_t i = 0; i < n; ++i) {
        x[i] += alpha * p[i];
        r[i] -= alpha * ap[i];
      }
      if (system_.project_range) system_.project_range(r);
      const double rr_new = sdot(r, r);
      for (std::size_t i = 0; i < n; ++i) p[i] = r[i] + (rr_new / rr) * p[i];
      rr = rr_new;
      ++it;
    }
    rep.iterations = it;
    system_.op->apply(x, ap);
    for (std::size_t i = 0; i < n; ++i) r[i] = b[i] - ap[i];
    rep.final_residual = std::sqrt(sdot(r, r));
    rep.reason = rep.final_residual <= options.rtol * rep.rhs_norm * 1.01 ? SolveReason::ConvergedRtol
                                                                         : SolveReason::MaxIterations;
    return rep;
  }
  int setups = 0;

 private:
  LinearSystemView system_;
};

// These tests run 16^3-24^3 grids, where OpenMP fork/join (inside the stencil and the vector
// kernels) costs more than the work, badly so when ctest runs tests side by side on two
// cores. They run on one thread; ThreadCountDoesNotChangeTheResult covers the parallel paths.
class OneThread {
 public:
  OneThread() : saved_(omp_get_max_threads()) { omp_set_num_threads(1); }
  ~OneThread() { omp_set_num_threads(saved_); }

 private:
  int saved_;
};

SimConfig small_scene(const std::string& name, int n, std::uint64_t seed = 1) {
  SimConfig c = make_scene(name, Dims{n, n, n}, seed);
  c.solve.rtol = 1e-8;
  c.solve.max_iterations = 2000;
  return c;
}

TEST(SimProjection, DivergenceAfterProjectionIsWithinTheSolverTolerance) {
  OneThread one_thread;
  for (Advection scheme : {Advection::SemiLagrangian, Advection::MacCormack, Advection::Bfecc}) {
    SimConfig c = small_scene("plume", 16);
    c.advection = scheme;
    c.vorticity = 0.2;
    ReferenceCg cg;
    SmokeSimulation sim(c, cg);
    for (int f = 0; f < 4; ++f) {
      const FrameStats st = sim.step();
      ASSERT_TRUE(st.solve.converged()) << to_string(scheme);
      ASSERT_GT(st.rhs_norm, 1e-3);  // a real system, not an empty one
      ASSERT_GT(st.max_div_before, 1e-3);
      // div u = -(b - A p) cell by cell, so max |div u| <= ||b - A p||_2 <= rtol ||b||.
      EXPECT_LE(st.max_div_after, c.solve.rtol * st.rhs_norm * 1.01) << to_string(scheme);
      EXPECT_DOUBLE_EQ(max_abs_divergence(sim.velocity(), sim.domain()), st.max_div_after);
      // The exported system is the one that was solved: A p = b to the tolerance.
      PoissonStencil a(sim.domain());
      std::vector<double> ap(sim.rhs().size());
      a.apply(sim.pressure().span(), ap);
      for (std::size_t i = 0; i < ap.size(); ++i) ap[i] -= sim.rhs()[i];
      EXPECT_LE(norm2(ap), c.solve.rtol * st.rhs_norm * 1.01);
      EXPECT_GE(st.advect_seconds, 0.0);
      EXPECT_GE(st.project_seconds, st.solve_seconds);
    }
    // The plume has an open top: every frame is non-singular, and the layout never changes,
    // so the solver was set up once.
    EXPECT_EQ(cg.setups, 1);
  }
}

// Faces between fluid and a solid carry the solid's normal velocity after projection.
void expect_solid_faces_match(const SmokeSimulation& sim, const std::array<Vec3, 6>& wall,
                              Vec3 obstacle_velocity, int& checked_obstacle_faces) {
  const Domain& dom = sim.domain();
  const Dims d = dom.dims();
  for (int axis = 0; axis < 3; ++axis) {
    const Field<double>& comp = sim.velocity().component(axis);
    const Dims fd = comp.dims();
    for (int k = 0; k < fd.nz; ++k)
      for (int j = 0; j < fd.ny; ++j)
        for (int i = 0; i < fd.nx; ++i) {
          const int li = i - (axis == 0), lj = j - (axis == 1), lk = k - (axis == 2);
          const CellType tl = cell_type_at(dom, li, lj, lk), tr = cell_type_at(dom, i, j, k);
          const bool fluid_solid = (tl == CellType::Fluid && tr == CellType::Solid) ||
                                   (tl == CellType::Solid && tr == CellType::Fluid);
          if (!fluid_solid) continue;
          const bool solid_inside = tl == CellType::Solid ? d.contains(li, lj, lk) : d.contains(i, j, k);
          double expected;
          if (solid_inside) {
            expected = obstacle_velocity[axis];
            ++checked_obstacle_faces;
          } else {
            expected = wall[tl == CellType::Solid ? 2 * axis : 2 * axis + 1][axis];
          }
          ASSERT_EQ(comp(i, j, k), expected) << "axis " << axis << " face " << i << "," << j << "," << k;
        }
  }
}

TEST(SimBoundary, MovingSphereFacesCarryTheSphereVelocity) {
  OneThread one_thread;
  SimConfig c = small_scene("sphere", 24);
  ReferenceCg cg;
  SmokeSimulation sim(c, cg);
  for (int f = 0; f < 3; ++f) {
    const FrameStats st = sim.step();
    ASSERT_TRUE(st.solve.converged());
    const Vec3 v = c.spheres[0].velocity_at(sim.time());
    ASSERT_GT(std::abs(v.x), 0.1);  // it really moves
    int faces = 0;
    expect_solid_faces_match(sim, c.wall_velocity, v, faces);
    EXPECT_GT(faces, 50);
    EXPECT_LE(st.max_div_after, c.solve.rtol * st.rhs_norm * 1.01);
  }
  // The sphere moves through the grid, so the layout changes and the solver is set up again.
  EXPECT_GT(cg.setups, 1);
}

TEST(SimBoundary, StaticObstacleAndInflowWallFaces) {
  OneThread one_thread;
  SimConfig c = small_scene("plume", 16);
  c.static_solid = Field<std::uint8_t>(c.dims, 0);
  for (int k = 8; k < 11; ++k)
    for (int j = 5; j < 10; ++j)
      for (int i = 6; i < 9; ++i) c.static_solid(i, j, k) = 1;
  c.wall_velocity[static_cast<int>(Face::XMin)] = {0.3, 0.0, 0.0};  // wind blowing in at x-
  ReferenceCg cg;
  SmokeSimulation sim(c, cg);
  for (int f = 0; f < 3; ++f) {
    const FrameStats st = sim.step();
    ASSERT_TRUE(st.solve.converged());
    int faces = 0;
    expect_solid_faces_match(sim, c.wall_velocity, Vec3{}, faces);
    EXPECT_GT(faces, 50);
    EXPECT_LE(st.max_div_after, c.solve.rtol * st.rhs_norm * 1.01);
    EXPECT_EQ(st.compatibility_shift, 0.0);  // open top: nothing to make compatible
  }
}

TEST(SimBoundary, ClosedBoxGetsACompatibleRightHandSide) {
  OneThread one_thread;
  SimConfig c = small_scene("sphere", 16);
  c.faces[static_cast<int>(Face::ZMax)] = FaceBoundary::Wall;  // no air anywhere
  ReferenceCg cg;
  SmokeSimulation sim(c, cg);
  for (int f = 0; f < 4; ++f) {
    const FrameStats st = sim.step();
    const FluidComponents comps = fluid_components(sim.domain());
    ASSERT_GE(comps.singular_count(), 1);
    // A moving rigid sphere and static walls inject no net flow: b is zero-mean up to
    // round-off before the projection, and exactly after it.
    EXPECT_LE(st.compatibility_shift, 1e-12 * st.max_div_before);
    double s = 0.0;
    for (double v : sim.rhs()) s += v;
    EXPECT_LE(std::abs(s), 1e-10 * st.rhs_norm);
    ASSERT_TRUE(st.solve.converged());
    EXPECT_LE(st.max_div_after, c.solve.rtol * st.rhs_norm * 1.01 + st.compatibility_shift);
  }
  // A wall blowing into a closed box is incompatible: the mean is removed and reported.
  SimConfig bad = small_scene("plume", 16);
  bad.faces[static_cast<int>(Face::ZMax)] = FaceBoundary::Wall;
  bad.wall_velocity[static_cast<int>(Face::XMin)] = {0.5, 0.0, 0.0};
  ReferenceCg cg2;
  SmokeSimulation sim2(bad, cg2);
  const FrameStats st = sim2.step();
  EXPECT_GT(st.compatibility_shift, 1e-3);
  double s = 0.0;
  for (double v : sim2.rhs()) s += v;
  EXPECT_LE(std::abs(s), 1e-10 * st.rhs_norm);
  EXPECT_TRUE(st.solve.converged());
}

std::vector<double> state_of(const SmokeSimulation& sim) {
  std::vector<double> s;
  for (int a = 0; a < 3; ++a) {
    const auto& f = sim.velocity().component(a).vector();
    s.insert(s.end(), f.begin(), f.end());
  }
  s.insert(s.end(), sim.density().vector().begin(), sim.density().vector().end());
  s.insert(s.end(), sim.temperature().vector().begin(), sim.temperature().vector().end());
  s.insert(s.end(), sim.pressure().vector().begin(), sim.pressure().vector().end());
  s.insert(s.end(), sim.rhs().begin(), sim.rhs().end());
  return s;
}

std::vector<double> run(SimConfig c, int frames) {
  ReferenceCg cg;
  SmokeSimulation sim(std::move(c), cg);
  for (int f = 0; f < frames; ++f) sim.step();
  return state_of(sim);
}

TEST(SimDeterminism, SameSeedSameResultDifferentSeedDifferentResult) {
  OneThread one_thread;
  SimConfig c = small_scene("sphere", 16, 5);
  c.advection = Advection::MacCormack;
  c.vorticity = 0.1;
  const auto a = run(c, 4), b = run(c, 4);
  EXPECT_TRUE(a == b);  // bitwise
  SimConfig other = c;
  other.seed = 6;
  const auto d = run(other, 4);
  ASSERT_EQ(a.size(), d.size());
  double diff = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) diff = std::max(diff, std::abs(a[i] - d[i]));
  EXPECT_GT(diff, 1e-3);
}

TEST(SimDeterminism, ThreadCountDoesNotChangeTheResult) {
  // 32^3 is large enough for the loops to run in parallel.
  SimConfig c = small_scene("plume", 32, 3);
  c.advection = Advection::Bfecc;
  c.vorticity = 0.1;
  c.solve.max_iterations = 20;  // convergence is not the point; keeps the test short
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const auto one = run(c, 2);
  omp_set_num_threads(2);
  const auto two = run(c, 2);
  omp_set_num_threads(threads);
  EXPECT_TRUE(one == two);
}

TEST(SimCheckpoint, ResumeEqualsUninterruptedRun) {
  OneThread one_thread;
  const fs::path dir = fs::temp_directory_path() / ("dcdm_sim_ckpt_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path ckpt = dir / "checkpoint.bin";
  SimConfig c = small_scene("sphere", 16, 9);
  c.advection = Advection::MacCormack;
  c.warm_start = true;  // the pressure is part of the state too
  const auto whole = run(c, 6);
  {
    ReferenceCg cg;
    SmokeSimulation first(c, cg);
    for (int f = 0; f < 3; ++f) first.step();
    first.save_checkpoint(ckpt, "tag-1");
  }
  ReferenceCg cg;
  SmokeSimulation resumed(c, cg);
  resumed.load_checkpoint(ckpt, "tag-1");
  EXPECT_EQ(resumed.frame(), 3);
  for (int f = 0; f < 3; ++f) resumed.step();
  EXPECT_EQ(resumed.frame(), 6);
  EXPECT_TRUE(state_of(resumed) == whole);

  // Wrong options, wrong size, truncation and garbage are input errors.
  SmokeSimulation other(c, cg);
  EXPECT_THROW(other.load_checkpoint(ckpt, "tag-2"), InputError);
  SimConfig bigger = small_scene("sphere", 18, 9);
  SmokeSimulation big(bigger, cg);
  EXPECT_THROW(big.load_checkpoint(ckpt, "tag-1"), InputError);
  const auto size = fs::file_size(ckpt);
  fs::resize_file(ckpt, size - 100);
  try {
    other.load_checkpoint(ckpt, "tag-1");
    FAIL() << "truncated checkpoint accepted";
  } catch (const InputError& e) {
    // The checksum at the end is what a truncation loses first.
    EXPECT_NE(std::string(e.what()).find(ckpt.string() + ": checksum mismatch"), std::string::npos) << e.what();
  }
  std::ofstream(ckpt, std::ios::binary) << "not a checkpoint at all";
  EXPECT_THROW(other.load_checkpoint(ckpt, "tag-1"), InputError);
  EXPECT_THROW(other.load_checkpoint(dir / "missing.bin", "tag-1"), InputError);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace dcdm::sim
