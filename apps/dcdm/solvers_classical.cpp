// Classical solvers: CG, PCG with Jacobi / IC(0) / MIC(0) / geometric multigrid, deflated PCG.
#include "dcdm/krylov.hpp"
#include "dcdm/precond.hpp"
#include "solver_registry.hpp"

namespace dcdm::cli {
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

SolverRegistration mgpcg("mgpcg", "CG preconditioned by a geometric multigrid V-cycle (McAdams et al. 2010)",
                         [](const std::string&, const SolverParams&) -> std::unique_ptr<IterativeSolver> {
                           return std::make_unique<PcgSolver>("mgpcg", std::make_unique<MultigridPreconditioner>());
                         });

}  // namespace
}  // namespace dcdm::cli
