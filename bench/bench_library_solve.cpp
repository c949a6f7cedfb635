// The C++ side of scripts/python-bench.py: what a C++ program pays for the calls that
// dcdm.Solver(method, domain) and solver.solve(b) make, timed the same way (wall clock around
// the calls, in one warm process). Usage:
//   bench_library_solve SYSTEM_DIR METHOD RTOL REPEATS
// Prints one JSON line per repeat: {"construct": s, "setup": s, "solve": s, "iterations": n},
// where construct is the wall time of what Solver() does (stencil, closed-region projector,
// make_solver, setup) and solve the wall time of solve() (including the output vector).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "dcdm/error.hpp"
#include "dcdm/methods.hpp"
#include "dcdm/poisson.hpp"
#include "dcdm/system.hpp"

int main(int argc, char** argv) try {
  using namespace dcdm;
  using clock = std::chrono::steady_clock;
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s SYSTEM_DIR METHOD RTOL REPEATS\n", argv[0]);
    return 2;
  }
  const PoissonSystem system = load_system(argv[1]);
  const std::string method = argv[2];
  const double rtol = std::atof(argv[3]);
  const int repeats = std::atoi(argv[4]);
  const auto seconds = [](clock::time_point a, clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = clock::now();
    const Domain domain = system.domain;  // the Solver's own copy, as in Python
    const PoissonStencil op(domain);
    const RangeProjector projector(domain);
    LinearSystemView view{&op, nullptr, &domain, nullptr};
    if (projector.singular()) view.project_range = projector.as_function();
    auto solver = make_solver(method);
    solver->setup(view);
    const auto t1 = clock::now();
    std::vector<double> x(system.rhs.size(), 0.0);
    SolveOptions options;
    options.rtol = rtol;
    options.max_iterations = 10000;
    const SolveReport report = solver->solve(system.rhs, x, options);
    const auto t2 = clock::now();
    std::printf("{\"construct\": %.6f, \"setup\": %.6f, \"solve\": %.6f, \"library_solve\": %.6f, \"iterations\": %d}\n",
                seconds(t0, t1), report.setup_seconds, seconds(t1, t2), report.solve_seconds, report.iterations);
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_library_solve: %s\n", e.what());
  return 2;
}
