// Using dcdm as a library: one pressure system on a voxel grid, solved with MGPCG and with the
// learned generator inside DCDM, the two solutions compared.
//
//   ./build/example_pressure_solve [models/relaxnet.dcdm] [N]
//
// Exit status 0 when both solves converge and agree (the test suite runs it), 1 otherwise.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "dcdm/dcdm.hpp"
#include "dcdm/error.hpp"
#include "dcdm/grid.hpp"
#include "dcdm/krylov.hpp"
#include "dcdm/poisson.hpp"
#include "dcdm/precond.hpp"
#include "dcdm/relaxnet.hpp"

int main(int argc, char** argv) try {
  using namespace dcdm;
  const std::string model = argc > 1 ? argv[1] : "models/relaxnet.dcdm";
  const int n = argc > 2 ? std::atoi(argv[2]) : 64;
  if (n < 8 || n > 1024) throw InputError("N: a grid size in [8, 1024]");

  // 1. The domain: cell flags on an nx x ny x nz grid (Fluid, Solid, Air) and the type of each
  //    outer face. Here a box of fluid, open at the top (air above: a Dirichlet condition),
  //    walls elsewhere, with a solid sphere inside.
  Domain domain(Dims{n, n, n}, CellType::Fluid);
  domain.set_face(Face::ZMax, FaceBoundary::Open);
  const double c = n / 2.0, radius = n / 5.0;
  for (int k = 0; k < n; ++k)
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < n; ++i) {
        const double x = i + 0.5 - c, y = j + 0.5 - c, z = k + 0.5 - n / 3.0;
        if (x * x + y * y + z * z < radius * radius) domain.cells(i, j, k) = CellType::Solid;
      }

  // 2. The operator (matrix-free 7-point stencil) and the system a solver sees. A domain with no
  //    air and only walls is singular; the range projector makes the solvers handle it.
  const PoissonStencil A(domain);
  const RangeProjector projector(domain);
  LinearSystemView system{&A, nullptr, &domain, nullptr};
  if (projector.singular()) system.project_range = projector.as_function();

  // 3. A right-hand side (in a simulator: the divergence of the intermediate velocity), one
  //    entry per cell, x fastest; zero outside the fluid.
  std::vector<double> b(static_cast<std::size_t>(domain.dims().size()), 0.0);
  std::mt19937_64 rng(1);
  std::normal_distribution<double> normal;
  for (std::int64_t p = 0; p < domain.dims().size(); ++p)
    if (domain.cells[p] == CellType::Fluid) b[static_cast<std::size_t>(p)] = normal(rng);

  SolveOptions options;
  options.rtol = 1e-6;

  // 4a. MGPCG: CG preconditioned by the geometric multigrid V-cycle. setup once per matrix,
  //     solve for any number of right-hand sides.
  PcgSolver mgpcg("mgpcg", std::make_unique<MultigridPreconditioner>());
  mgpcg.setup(system);
  std::vector<double> x_mgpcg(b.size(), 0.0);
  const SolveReport r1 = mgpcg.solve(b, x_mgpcg, options);

  // 4b. DCDM with the learned relaxation multigrid (relaxnet model file) as its direction
  //     generator. The generator is set up per matrix through the factory.
  const learn::RelaxNet net = learn::RelaxNet::load(model);
  DcdmOptions dcdm_options;  // k = 2 kept directions
  dcdm_options.weak_fallback = false;  // the relaxnet cycle is SPD for any weights
  DcdmSolver dcdm(
      [&net](const LinearSystemView& view) -> std::unique_ptr<LinearOperator> { return net.make_generator(view); },
      dcdm_options, "dcdm-relax");
  dcdm.setup(system);
  std::vector<double> x_dcdm(b.size(), 0.0);
  const SolveReport r2 = dcdm.solve(b, x_dcdm, options);

  for (const SolveReport* r : {&r1, &r2})
    std::printf("%-10s %s: %d iterations, relative residual %.2e, setup %.3f s, solve %.3f s\n", r->method.c_str(),
                to_string(r->reason), r->iterations, r->relative_residual(), r->setup_seconds, r->solve_seconds);

  // 5. The two solutions agree to the tolerance (on a singular system, up to a constant per
  //    closed region: project both first).
  if (projector.singular()) {
    projector(x_mgpcg);
    projector(x_dcdm);
  }
  double diff = 0.0, scale = 0.0;
  for (std::size_t p = 0; p < b.size(); ++p) {
    diff = std::max(diff, std::fabs(x_mgpcg[p] - x_dcdm[p]));
    scale = std::max(scale, std::fabs(x_mgpcg[p]));
  }
  std::printf("max |x_mgpcg - x_dcdm| / max |x_mgpcg| = %.2e\n", diff / scale);
  return r1.converged() && r2.converged() && diff <= 1e-4 * scale ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "example_pressure_solve: %s\n", e.what());
  return 1;
}
