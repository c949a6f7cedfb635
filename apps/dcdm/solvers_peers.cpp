// Peer solvers from established libraries, registered under the names `dcdm bench` uses.
// Without hypre in the build, hypre-amg / hypre-pfmg stay listed and report
// "not available in this build" (InputError) when chosen.
#include "dcdm/peers.hpp"
#include "solver_registry.hpp"

namespace dcdm::cli {
namespace {

SolverRegistration hypre_amg(
    "hypre-amg", "peer: hypre BoomerAMG-preconditioned PCG on the fluid-cell matrix (1 thread)",
    [](const std::string&, const SolverParams&) { return make_hypre_amg_pcg(); });

SolverRegistration hypre_pfmg(
    "hypre-pfmg", "peer: hypre PFMG-preconditioned PCG on the structured grid (1 thread)",
    [](const std::string&, const SolverParams&) { return make_hypre_pfmg_pcg(); });

SolverRegistration eigen_iccg(
    "eigen-iccg", "peer: Eigen ConjugateGradient with IncompleteCholesky on the fluid-cell matrix",
    [](const std::string&, const SolverParams&) { return make_eigen_iccg(); });

}  // namespace
}  // namespace dcdm::cli
