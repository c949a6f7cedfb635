// A consumer of dcdm's public API, built at C++17 by the package tests (tests/package/run.cmake)
// against an installed dcdm (find_package, pkg-config) and through add_subdirectory. It links
// the core library only: MGPCG and DCDM with the shipped relaxnet model, no LibTorch.
// Exit status 0 when both solve a small system to the tolerance and agree.
#if __cplusplus >= 202002L
#error "the package tests build this file as C++17"
#endif
#include <cmath>
#include <cstdio>
#include <vector>

#include "dcdm/dcdm.hpp"
#include "dcdm/krylov.hpp"
#include "dcdm/models.hpp"
#include "dcdm/poisson.hpp"
#include "dcdm/precond.hpp"
#include "dcdm/relaxnet.hpp"
#include "dcdm/version.hpp"

int main() try {
  using namespace dcdm;
  const int n = 40;  // deep enough for a multilevel hierarchy
  Domain domain(Dims{n, n, n}, CellType::Fluid);
  domain.set_face(Face::ZMax, FaceBoundary::Open);
  domain.cells(n / 2, n / 2, n / 2) = CellType::Solid;
  const PoissonStencil A(domain);
  const LinearSystemView system{&A, nullptr, &domain, nullptr};
  std::vector<double> b(static_cast<std::size_t>(domain.dims().size()), 0.0);
  for (std::size_t p = 0; p < b.size(); ++p)
    if (domain.cells[static_cast<std::int64_t>(p)] == CellType::Fluid) b[p] = std::sin(0.37 * double(p));
  SolveOptions options;
  options.rtol = 1e-8;

  PcgSolver mgpcg("mgpcg", std::make_unique<MultigridPreconditioner>());
  mgpcg.setup(system);
  std::vector<double> x1(b.size(), 0.0);
  const SolveReport r1 = mgpcg.solve(b, x1, options);

  const learn::RelaxNet net = learn::RelaxNet::load(learn::find_model("relaxnet"));
  DcdmSolver dcdm([&net](const LinearSystemView& view) -> std::unique_ptr<LinearOperator> {
    return net.make_generator(view);
  });
  dcdm.setup(system);
  std::vector<double> x2(b.size(), 0.0);
  const SolveReport r2 = dcdm.solve(b, x2, options);

  double diff = 0, norm = 0;
  for (std::size_t p = 0; p < b.size(); ++p) {
    diff = std::max(diff, std::abs(x1[p] - x2[p]));
    norm = std::max(norm, std::abs(x1[p]));
  }
  std::printf("dcdm %s: mgpcg %d iterations, dcdm-relax %d iterations, max difference %.2e of %.2e\n", kVersion,
              r1.iterations, r2.iterations, diff, norm);
  const bool ok = r1.converged() && r2.converged() && diff <= 1e-5 * norm;
  return ok ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "consumer: %s\n", e.what());
  return 1;
}
