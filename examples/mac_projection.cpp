// Pressure projection of a fluid code's MAC velocity field with dcdm (core library only, no
// LibTorch). The guide to what each step means is docs/INTEGRATION.md.
//
//   ./build/example_mac_projection [N] [open|closed]      defaults: 32 open
//
// A box of side 1 m (N^3 cells, dx = 1/N) holds a solid sphere; its top is open to air
// (`open`) or every side is a wall (`closed`: the singular case). The velocity field has
// divergence; one projection with MGPCG removes it. Prints the largest divergence before and
// after and exits 0 when the result is divergence-free to 1e-5 of the start, 1 otherwise.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "dcdm/error.hpp"
#include "dcdm/grid.hpp"
#include "dcdm/krylov.hpp"
#include "dcdm/poisson.hpp"
#include "dcdm/precond.hpp"

namespace {

// The fluid code's staggered (MAC) velocity: u on x-faces, (nx+1) x ny x nz values, u(i,j,k)
// on the face between cells (i-1,j,k) and (i,j,k); likewise v on y-faces, w on z-faces.
struct MacVelocity {
  dcdm::Field<double> u, v, w;
  explicit MacVelocity(dcdm::Dims d)
      : u({d.nx + 1, d.ny, d.nz}), v({d.nx, d.ny + 1, d.nz}), w({d.nx, d.ny, d.nz + 1}) {}
  dcdm::Field<double>& axis(int a) { return a == 0 ? u : (a == 1 ? v : w); }
};

// Cell type, also for the cells just outside the grid: solid beyond a wall, air beyond an
// open face (this is how dcdm's operator sees them).
dcdm::CellType type_at(const dcdm::Domain& domain, int i, int j, int k) {
  const dcdm::Dims& d = domain.dims();
  if (d.contains(i, j, k)) return domain.cells(i, j, k);
  const dcdm::Face f = i < 0 ? dcdm::Face::XMin : i >= d.nx ? dcdm::Face::XMax
                     : j < 0 ? dcdm::Face::YMin : j >= d.ny ? dcdm::Face::YMax
                     : k < 0 ? dcdm::Face::ZMin : dcdm::Face::ZMax;
  return domain.face(f) == dcdm::FaceBoundary::Open ? dcdm::CellType::Air : dcdm::CellType::Solid;
}

// Calls f(axis, i, j, k, left type, right type) for every face; the face (i,j,k) of `axis`
// separates the cell (i,j,k) - e_axis ("left") from (i,j,k) ("right").
template <class F>
void for_each_face(const dcdm::Domain& domain, MacVelocity& vel, F f) {
  for (int a = 0; a < 3; ++a) {
    const dcdm::Dims fd = vel.axis(a).dims();
    for (int k = 0; k < fd.nz; ++k)
      for (int j = 0; j < fd.ny; ++j)
        for (int i = 0; i < fd.nx; ++i)
          f(a, i, j, k, type_at(domain, i - (a == 0), j - (a == 1), k - (a == 2)), type_at(domain, i, j, k));
  }
}

// Physical divergence (1/s) of every fluid cell, 0 elsewhere; one value per cell, x fastest.
std::vector<double> divergence(const dcdm::Domain& domain, const MacVelocity& vel, double dx) {
  const dcdm::Dims d = domain.dims();
  std::vector<double> div(static_cast<std::size_t>(d.size()), 0.0);
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j)
      for (int i = 0; i < d.nx; ++i)
        if (domain.cells(i, j, k) == dcdm::CellType::Fluid)
          div[d.index(i, j, k)] = (vel.u(i + 1, j, k) - vel.u(i, j, k) + vel.v(i, j + 1, k) - vel.v(i, j, k) +
                                   vel.w(i, j, k + 1) - vel.w(i, j, k)) / dx;
  return div;
}

double max_abs(const std::vector<double>& v) {
  double m = 0.0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

}  // namespace

int main(int argc, char** argv) try {
  using namespace dcdm;
  const int n = argc > 1 ? std::atoi(argv[1]) : 32;
  const std::string boundary = argc > 2 ? argv[2] : "open";
  if (n < 8 || n > 512) throw InputError("N: a grid size in [8, 512]");
  if (boundary != "open" && boundary != "closed") throw InputError("second argument: open or closed");
  const double dx = 1.0 / n, dt = 0.01, rho = 1000.0;  // m, s, kg/m^3

  // 1. The domain: fluid everywhere except a solid sphere; walls, and air above an open top.
  Domain domain(Dims{n, n, n}, CellType::Fluid);
  if (boundary == "open") domain.set_face(Face::ZMax, FaceBoundary::Open);
  for (int k = 0; k < n; ++k)
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < n; ++i) {
        const double x = (i + 0.5) * dx - 0.5, y = (j + 0.5) * dx - 0.5, z = (k + 0.5) * dx - 0.4;
        if (x * x + y * y + z * z < 0.2 * 0.2) domain.cells(i, j, k) = CellType::Solid;
      }

  // 2. A velocity field (m/s) with divergence, sampled at the face centres. Faces that touch a
  //    solid cell or a wall carry the solid's normal velocity (0 here: nothing moves) before
  //    the divergence is taken, and the projection leaves them as they are.
  const double pi = std::acos(-1.0);
  MacVelocity vel(domain.dims());
  for_each_face(domain, vel, [&](int a, int i, int j, int k, CellType left, CellType right) {
    const double x = (i + (a == 0 ? 0.0 : 0.5)) * dx, y = (j + (a == 1 ? 0.0 : 0.5)) * dx,
                 z = (k + (a == 2 ? 0.0 : 0.5)) * dx;
    const double value = a == 0 ? std::sin(pi * x) * std::cos(2 * pi * z)
                       : a == 1 ? 0.5 * std::sin(2 * pi * x) * std::sin(pi * y)
                                : 1.0 + 0.3 * std::cos(pi * y) * z;
    vel.axis(a)(i, j, k) = (left == CellType::Solid || right == CellType::Solid) ? 0.0 : value;
  });
  const std::vector<double> div_before = divergence(domain, vel, dx);

  // 3. The system A p = b: A is dcdm's unit-spacing 7-point operator, so b = -(rho dx^2 / dt)
  //    div u* makes p the physical pressure (Pa). With no air the system is singular: b is
  //    projected to zero mean on each closed fluid region (only round-off is removed when the
  //    boundary velocities conserve volume) and p is defined up to a constant per region.
  const PoissonStencil A(domain);
  const RangeProjector projector(domain);
  std::vector<double> b(div_before.size());
  for (std::size_t c = 0; c < b.size(); ++c) b[c] = -(rho * dx * dx / dt) * div_before[c];
  LinearSystemView system{&A, nullptr, &domain, nullptr};
  if (projector.singular()) {
    projector(b);
    system.project_range = projector.as_function();
  }
  std::printf("domain %s, %lld fluid cells, %d closed region(s)\n", domain.dims().str().c_str(),
              static_cast<long long>(domain.count(CellType::Fluid)), projector.components().singular_count());

  // 4. Solve with MGPCG (set up once per cell layout; solve every time step).
  PcgSolver mgpcg("mgpcg", std::make_unique<MultigridPreconditioner>());
  mgpcg.setup(system);
  SolveOptions options;
  options.rtol = 1e-8;
  std::vector<double> p(b.size(), 0.0);
  const SolveReport report = mgpcg.solve(b, p, options);
  std::printf("%s: %s (relative residual %.2e)\n", report.method.c_str(), format_reason_line(report).c_str(),
              report.relative_residual());

  // 5. u = u* - (dt / rho) grad p on every face between two non-solid cells of which at least
  //    one is fluid; p = 0 in air cells and beyond open faces. Solid and wall faces keep
  //    their velocity.
  const Dims d = domain.dims();
  auto pressure = [&](int i, int j, int k, CellType t) {
    return t == CellType::Fluid ? p[d.index(i, j, k)] : 0.0;
  };
  for_each_face(domain, vel, [&](int a, int i, int j, int k, CellType left, CellType right) {
    if (left == CellType::Solid || right == CellType::Solid) return;
    if (left != CellType::Fluid && right != CellType::Fluid) return;
    const double p_left = pressure(i - (a == 0), j - (a == 1), k - (a == 2), left);
    const double p_right = pressure(i, j, k, right);
    vel.axis(a)(i, j, k) -= dt / rho * (p_right - p_left) / dx;
  });

  const double before = max_abs(div_before), after = max_abs(divergence(domain, vel, dx));
  std::printf("max |div u| before %.3e 1/s, after %.3e 1/s (ratio %.1e)\n", before, after, after / before);
  const bool ok = report.converged() && after <= 1e-5 * before;
  std::printf("%s\n", ok ? "divergence-free" : "NOT divergence-free");
  return ok ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "example_mac_projection: %s\n", e.what());
  return 1;
}
