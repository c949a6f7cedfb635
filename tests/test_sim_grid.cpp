// The simulator's building blocks: staggered sampling, divergence / gradient, advection
// schemes, forces, obstacles' motion, noise, slice rendering.
#include <cmath>
#include <numbers>

#include <gtest/gtest.h>

#include "dcdm/sim.hpp"

namespace dcdm::sim {
namespace {

Domain box_with_obstacle(Dims d) {
  Domain dom(d, CellType::Fluid);
  dom.set_face(Face::YMax, FaceBoundary::Open);
  dom.set_face(Face::XMin, FaceBoundary::Open);
  for (int k = 2; k < 4; ++k)
    for (int j = 2; j < 5; ++j)
      for (int i = 3; i < 5; ++i) dom.cells(i, j, k) = CellType::Solid;
  return dom;
}

// Reference 7-point operator written from the definition (independent of src/poisson):
// (A p)_c = sum over non-solid neighbours n of (p_c - p_n), p = 0 in air.
double reference_apply(const Domain& dom, const Field<double>& p, int i, int j, int k) {
  if (dom.cells(i, j, k) != CellType::Fluid) return 0.0;
  const int off[6][3] = {{-1, 0, 0}, {1, 0, 0}, {0, -1, 0}, {0, 1, 0}, {0, 0, -1}, {0, 0, 1}};
  double s = 0.0;
  for (const auto& o : off) {
    const int a = i + o[0], b = j + o[1], c = k + o[2];
    const CellType t = cell_type_at(dom, a, b, c);
    if (t == CellType::Solid) continue;
    s += p(i, j, k) - (t == CellType::Fluid ? p(a, b, c) : 0.0);
  }
  return s;
}

TEST(SimGrid, SampleIsExactForLinearFunctions) {
  const Dims d{7, 5, 6};
  for (int axis = -1; axis < 3; ++axis) {
    const Vec3 off = axis < 0 ? kCellCentre : face_offset(axis);
    const Dims fd = axis < 0 ? d : face_dims(d, axis);
    Field<double> f(fd);
    auto lin = [](Vec3 x) { return 0.3 + 1.5 * x.x - 2.0 * x.y + 0.25 * x.z; };
    for (int k = 0; k < fd.nz; ++k)
      for (int j = 0; j < fd.ny; ++j)
        for (int i = 0; i < fd.nx; ++i) f(i, j, k) = lin({i + off.x, j + off.y, k + off.z});
    for (int s = 0; s < 50; ++s) {
      const Vec3 x{0.5 + 5.9 * (0.5 + 0.5 * hash_uniform(1, s, 0, 0)),
                   0.5 + 3.9 * (0.5 + 0.5 * hash_uniform(1, s, 0, 1)),
                   0.5 + 4.9 * (0.5 + 0.5 * hash_uniform(1, s, 0, 2))};
      EXPECT_NEAR(sample(f, off, x), lin(x), 1e-12);
      double lo, hi;
      EXPECT_NEAR(sample_bounded(f, off, x, lo, hi), lin(x), 1e-12);
      EXPECT_LE(lo, lin(x) + 1e-12);
      EXPECT_GE(hi, lin(x) - 1e-12);
    }
    // Outside the lattice the nearest lattice value is used.
    EXPECT_NEAR(sample(f, off, {-3.0, off.y, off.z}), f(0, 0, 0), 1e-12);
  }
}

TEST(SimGrid, DivergenceOfLinearFieldIsConstant) {
  const Dims d{6, 5, 4};
  MacVelocity vel(d);
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j)
      for (int i = 0; i <= d.nx; ++i) vel.u(i, j, k) = 2.0 * i;
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j <= d.ny; ++j)
      for (int i = 0; i < d.nx; ++i) vel.v(i, j, k) = -0.5 * j;
  Domain dom = box_with_obstacle(d);
  Field<double> div;
  divergence(vel, dom, div);
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j)
      for (int i = 0; i < d.nx; ++i)
        EXPECT_DOUBLE_EQ(div(i, j, k), dom.cells(i, j, k) == CellType::Fluid ? 1.5 : 0.0);
}

// div(-grad p) must be the pressure matrix applied to p: that is what makes A p = -div u*
// give a divergence-free velocity.
TEST(SimGrid, DivergenceOfGradientIsThePressureOperator) {
  const Dims d{8, 7, 6};
  Domain dom = box_with_obstacle(d);
  Field<double> p(d);
  for (std::int64_t c = 0; c < p.size(); ++c) p[c] = hash_uniform(3, 0, 0, c);
  MacVelocity vel(d);
  subtract_pressure_gradient(p, dom, vel);
  Field<double> div;
  divergence(vel, dom, div);
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j)
      for (int i = 0; i < d.nx; ++i) EXPECT_NEAR(div(i, j, k), reference_apply(dom, p, i, j, k), 1e-12);
  // Faces touching a solid (walls, the obstacle) keep their velocity.
  EXPECT_EQ(vel.u(0 + 4, 3, 3), 0.0);  // between two obstacle cells... and obstacle/fluid
  EXPECT_EQ(vel.u(3, 3, 3), 0.0);      // fluid (2,3,3) | solid (3,3,3)
  EXPECT_EQ(vel.u(d.nx, 1, 1), 0.0);   // x+ wall
  EXPECT_NE(vel.u(0, 1, 1), 0.0);      // x- open: air beyond
  EXPECT_NE(vel.v(1, d.ny, 1), 0.0);   // y+ open
}

Field<double> gaussian_blob(Dims d, Vec3 centre, double sigma) {
  Field<double> f(d);
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j)
      for (int i = 0; i < d.nx; ++i) {
        const Vec3 r = Vec3{i + 0.5, j + 0.5, k + 0.5} - centre;
        f(i, j, k) = std::exp(-(r.x * r.x + r.y * r.y + r.z * r.z) / (2 * sigma * sigma));
      }
  return f;
}

MacVelocity uniform_velocity(Dims d, Vec3 u) {
  MacVelocity vel(d);
  for (int a = 0; a < 3; ++a) vel.component(a).fill(u[a]);
  return vel;
}

TEST(SimGrid, AdvectionByIntegerShiftIsExact) {
  const Dims d{16, 8, 8};
  const Field<double> f = gaussian_blob(d, {5, 4, 4}, 1.5);
  const MacVelocity vel = uniform_velocity(d, {1.0, 0.0, 0.0});
  for (Advection scheme : {Advection::SemiLagrangian, Advection::MacCormack, Advection::Bfecc}) {
    Field<double> g;
    advect(f, kCellCentre, vel, 3.0, scheme, g);
    for (int k = 0; k < d.nz; ++k)
      for (int j = 0; j < d.ny; ++j)
        for (int i = 3; i < d.nx - 3; ++i)  // the last 3 cells trace back out of the grid
          ASSERT_NEAR(g(i, j, k), f(i - 3, j, k), 1e-12) << to_string(scheme);
  }
}

TEST(SimGrid, ErrorCompensationBeatsSemiLagrangianAndKeepsBounds) {
  const Dims d{28, 10, 10};
  const Vec3 start{8, 5, 5};
  const Field<double> f0 = gaussian_blob(d, start, 2.0);
  const MacVelocity vel = uniform_velocity(d, {0.4, 0.0, 0.0});
  const int steps = 20;
  const Field<double> exact = gaussian_blob(d, start + Vec3{0.4 * steps, 0, 0}, 2.0);
  double err[3];
  for (Advection scheme : {Advection::SemiLagrangian, Advection::MacCormack, Advection::Bfecc}) {
    Field<double> f = f0, g;
    for (int s = 0; s < steps; ++s) {
      advect(f, kCellCentre, vel, 1.0, scheme, g);
      std::swap(f, g);
    }
    double e = 0, lo = 1e9, hi = -1e9;
    for (std::int64_t c = 0; c < f.size(); ++c) {
      e = std::max(e, std::abs(f[c] - exact[c]));
      lo = std::min(lo, f[c]);
      hi = std::max(hi, f[c]);
    }
    EXPECT_GE(lo, 0.0) << to_string(scheme);
    EXPECT_LE(hi, 1.0) << to_string(scheme);
    err[static_cast<int>(scheme)] = e;
  }
  // Clamping keeps the peak from being second-order accurate, so the gain is moderate.
  EXPECT_LT(err[1], 0.7 * err[0]) << "maccormack " << err[1] << " vs sl " << err[0];
  EXPECT_LT(err[2], 0.7 * err[0]) << "bfecc " << err[2] << " vs sl " << err[0];
}

TEST(SimGrid, AdvectionPreservesConstantsAndMovesVelocity) {
  const Dims d{10, 9, 8};
  MacVelocity vel(d);
  // A swirl: u = -(y - c), v = x - c.
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j)
      for (int i = 0; i <= d.nx; ++i) vel.u(i, j, k) = -0.3 * (j + 0.5 - 4.5);
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j <= d.ny; ++j)
      for (int i = 0; i < d.nx; ++i) vel.v(i, j, k) = 0.3 * (i + 0.5 - 5.0);
  for (Advection scheme : {Advection::SemiLagrangian, Advection::MacCormack, Advection::Bfecc}) {
    Field<double> c(d, 0.7), out;
    advect(c, kCellCentre, vel, 1.0, scheme, out);
    for (std::int64_t n = 0; n < out.size(); ++n) ASSERT_NEAR(out[n], 0.7, 1e-14);
  }
  // A uniform velocity advects itself unchanged.
  const MacVelocity uni = uniform_velocity(d, {0.3, -0.2, 0.1});
  MacVelocity out;
  advect_velocity(uni, 1.0, Advection::MacCormack, out);
  for (int a = 0; a < 3; ++a)
    for (std::int64_t n = 0; n < out.component(a).size(); ++n)
      ASSERT_NEAR(out.component(a)[n], uni.component(a)[n], 1e-14);
}

TEST(SimGrid, AdvectingFieldsTogetherEqualsOneByOne) {
  const Dims d{12, 10, 9};
  const Field<double> a = gaussian_blob(d, {4, 5, 4}, 2.0), b = gaussian_blob(d, {7, 4, 5}, 1.0);
  MacVelocity vel(d);
  for (int axis = 0; axis < 3; ++axis)
    for (std::int64_t n = 0; n < vel.component(axis).size(); ++n)
      vel.component(axis)[n] = 0.8 * hash_uniform(11, axis, 0, n);
  for (Advection scheme : {Advection::SemiLagrangian, Advection::MacCormack, Advection::Bfecc}) {
    Field<double> a1, b1, a2, b2;
    advect(a, kCellCentre, vel, 1.0, scheme, a1);
    advect(b, kCellCentre, vel, 1.0, scheme, b1);
    advect_together({&a, &b}, kCellCentre, vel, 1.0, scheme, {&a2, &b2});
    EXPECT_TRUE(a1.vector() == a2.vector()) << to_string(scheme);
    EXPECT_TRUE(b1.vector() == b2.vector()) << to_string(scheme);
  }
}

TEST(SimGrid, BuoyancyLiftsHotSmokeAndSinksDenseSmoke) {
  const Dims d{4, 4, 6};
  Domain dom(d);
  Field<double> rho(d, 0.0), temp(d, 0.0);
  temp(1, 1, 2) = 1.0;
  rho(2, 2, 3) = 1.0;
  MacVelocity vel(d);
  add_buoyancy(rho, temp, 0.5, 2.0, 0.0, 0.5, dom, vel);
  EXPECT_DOUBLE_EQ(vel.w(1, 1, 2), 0.5 * 2.0 * 0.5);   // face below the hot cell
  EXPECT_DOUBLE_EQ(vel.w(1, 1, 3), 0.5 * 2.0 * 0.5);   // face above
  EXPECT_DOUBLE_EQ(vel.w(2, 2, 3), -0.5 * 0.5 * 0.5);  // dense smoke sinks
  EXPECT_DOUBLE_EQ(vel.w(0, 0, 1), 0.0);
  for (std::int64_t n = 0; n < vel.u.size(); ++n) EXPECT_EQ(vel.u[n], 0.0);
  for (std::int64_t n = 0; n < vel.v.size(); ++n) EXPECT_EQ(vel.v[n], 0.0);
}

TEST(SimGrid, VorticityConfinementSpinsUpAVortexAndLeavesRigidRotationAlone) {
  const Dims d{16, 16, 6};
  Domain dom(d);
  auto swirl = [&](double (*profile)(double)) {
    MacVelocity vel(d);
    // Counter-clockwise about the z axis through (8, 8): velocity = profile(r) * (-y, x).
    for (int k = 0; k < d.nz; ++k)
      for (int j = 0; j < d.ny; ++j)
        for (int i = 0; i <= d.nx; ++i) {
          const double x = i - 8.0, y = j + 0.5 - 8.0;
          vel.u(i, j, k) = -y * profile(std::hypot(x, y));
        }
    for (int k = 0; k < d.nz; ++k)
      for (int j = 0; j <= d.ny; ++j)
        for (int i = 0; i < d.nx; ++i) {
          const double x = i + 0.5 - 8.0, y = j - 8.0;
          vel.v(i, j, k) = x * profile(std::hypot(x, y));
        }
    return vel;
  };
  MacVelocity rigid = swirl([](double) { return 0.1; });
  const MacVelocity rigid0 = rigid;
  add_vorticity_confinement(0.5, 1.0, dom, rigid);
  for (int a = 0; a < 3; ++a)
    for (std::int64_t n = 0; n < rigid.component(a).size(); ++n)
      ASSERT_NEAR(rigid.component(a)[n], rigid0.component(a)[n], 1e-12);

  MacVelocity vortex = swirl([](double r) { return 0.2 * std::exp(-r * r / 8.0); });
  const MacVelocity vortex0 = vortex;
  add_vorticity_confinement(0.5, 1.0, dom, vortex);
  // In the core (r < 2.5, where omega > 0 and |omega| peaks at the axis) the added velocity
  // turns the same way as the vortex: positive circulation gain.
  double gain = 0.0;
  for (int k = 1; k < d.nz - 1; ++k)
    for (int j = 2; j < 14; ++j)
      for (int i = 2; i < 14; ++i) {
        if (std::hypot(i + 0.5 - 8.0, j + 0.5 - 8.0) > 2.5) continue;
        const double du = vortex.u(i, j, k) - vortex0.u(i, j, k);
        const double dv = vortex.v(i, j, k) - vortex0.v(i, j, k);
        gain += -(j + 0.5 - 8.0) * du + (i + 0.5 - 8.0) * dv;
      }
  EXPECT_GT(gain, 0.0);
}

TEST(SimGrid, SphereVelocityIsTheDerivativeOfItsPath) {
  MovingSphere s;
  s.centre = {10, 12, 14};
  s.amplitude = {4, 1, 0};
  s.period = 50;
  s.phase = {0.3, 1.0, 0.0};
  for (double t : {0.0, 7.5, 31.0}) {
    const double h = 1e-5;
    const Vec3 fd = (1.0 / (2 * h)) * (s.centre_at(t + h) - s.centre_at(t - h));
    const Vec3 v = s.velocity_at(t);
    for (int a = 0; a < 3; ++a) EXPECT_NEAR(v[a], fd[a], 1e-7);
  }
  s.period = 0;
  EXPECT_EQ(s.centre_at(5.0), s.centre);
  EXPECT_EQ(s.velocity_at(5.0), Vec3{});
}

TEST(SimGrid, HashNoiseIsDeterministicAndUniform) {
  EXPECT_EQ(hash_uniform(7, 3, 1, 99), hash_uniform(7, 3, 1, 99));
  EXPECT_NE(hash_uniform(7, 3, 1, 99), hash_uniform(8, 3, 1, 99));
  EXPECT_NE(hash_uniform(7, 3, 1, 99), hash_uniform(7, 4, 1, 99));
  double mean = 0, lo = 1, hi = -1;
  const int n = 100000;
  for (int i = 0; i < n; ++i) {
    const double x = hash_uniform(1, 0, 0, i);
    mean += x / n;
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  EXPECT_NEAR(mean, 0.0, 0.01);
  EXPECT_GE(lo, -1.0);
  EXPECT_LT(hi, 1.0);
  EXPECT_LT(lo, -0.999);
  EXPECT_GT(hi, 0.999);
}

TEST(SimGrid, RenderShowsDensityAndSolids) {
  const Dims d{6, 4, 5};
  Domain dom(d);
  Field<double> rho(d, 0.0);
  rho(1, 2, 4) = 1.0;  // top row of the front slice (y = 2)
  dom.cells(3, 2, 0) = CellType::Solid;
  int w = 0, h = 0;
  const auto rgb = render_density_slices(rho, dom, 2, w, h);
  ASSERT_EQ(w, (6 + 2 + 4) * 2);
  ASSERT_EQ(h, 5 * 2);
  ASSERT_EQ(rgb.size(), std::size_t(w * h * 3));
  auto px = [&](int x, int y, int c) { return rgb[(std::size_t(y) * w + x) * 3 + c]; };
  EXPECT_EQ(px(2, 0, 0), 255);          // cell (1, 2, 4) -> pixel column 2, top row
  EXPECT_EQ(px(0, 0, 0), 0);
  EXPECT_GT(px(6, 9, 2), px(6, 9, 0));  // solid (3, 2, 0): bottom row, blue
}

}  // namespace
}  // namespace dcdm::sim
