// Classical solvers: CG, PCG with Jacobi / IC(0) / MIC(0) / geometric multigrid, deflated PCG.
#include "dcdm/krylov.hpp"
#include "dcdm/peers.hpp"
#include "dcdm/precond.hpp"
#include "solver_registry.hpp"

namespace dcdm::cli {

MultigridOptions parse_multigrid_settings(const std::string& text, const std::string& who) {
  MultigridOptions o;
  std::string precision = "double";
  double coarsest = static_cast<double>(o.coarsest_cells);
  // omega just below 2 is still a contraction; the bound keeps the cycle positive definite.
  const PeerSetting keys[] = {{"omega", &o.omega, 0.01, 1.99},
                              {"band-omega", &o.band_omega, 0.01, 1.99},
                              {"sweeps", &o.pre_sweeps, 0, 16},
                              {"band-sweeps", &o.boundary_sweeps, 0, 16},
                              {"band-width", &o.band_width, 0, 8},
                              {"coarsest", &coarsest, 1, 1e7},
                              {"precision", &precision, 0, 0, "double|float"}};
  parse_peer_settings(text, who, keys);
  o.single_precision = precision == "float";
  o.coarsest_cells = static_cast<std::int64_t>(coarsest);
  return o;
}

namespace {

SolverRegistration cg("cg", "conjugate gradients, no preconditioner",
                      [](const std::string&, const SolverParams&) { return make_cg_solver(); });

SolverRegistration jacobi("jacobi", "PCG with the Jacobi (diagonal) preconditioner",
                          [](const std::string&, const SolverParams&) -> std::unique_ptr<IterativeSolver> {
                            return std::make_unique<PcgSolver>("jacobi", std::make_unique<JacobiPreconditioner>());
                          });

SolverRegistration ic0("ic0", "PCG with incomplete Cholesky IC(0), natural ordering",
                       [](const std::string&, const SolverParams&) -> std::unique_ptr<IterativeSolver> {
                         return std::make_unique<PcgSolver>(
                             "ic0", std::make_unique<IncompleteCholeskyPreconditioner>(0.0));
                       });

SolverRegistration mic0("mic0", "PCG with modified incomplete Cholesky MIC(0) (--mic-safety, default 0.97)",
                        [](const std::string&, const SolverParams& p) -> std::unique_ptr<IterativeSolver> {
                          return std::make_unique<PcgSolver>(
                              "mic0", std::make_unique<IncompleteCholeskyPreconditioner>(p.mic_safety));
                        });

SolverRegistration dpcg("dpcg", "deflated PCG: Jacobi + --dpcg-k Ritz vectors from Lanczos started at b",
                        [](const std::string&, const SolverParams& p) -> std::unique_ptr<IterativeSolver> {
                          return std::make_unique<DeflatedPcgSolver>(p.deflation_vectors);
                        });

SolverRegistration mgpcg("mgpcg",
                         "CG preconditioned by a geometric multigrid V-cycle (McAdams et al. 2010); settings "
                         "mgpcg:omega=W:band-omega=W:sweeps=N:band-sweeps=N:band-width=N:coarsest=CELLS:precision=double|float",
                         [](const std::string& arg, const SolverParams&) -> std::unique_ptr<IterativeSolver> {
                           return std::make_unique<PcgSolver>(
                               "mgpcg", std::make_unique<MultigridPreconditioner>(
                                            parse_multigrid_settings(arg, "mgpcg:" + arg)));
                         });

}  // namespace
}  // namespace dcdm::cli
