// Peer solvers from established libraries, registered under the names `dcdm bench` uses.
// Without hypre in the build, hypre-amg / hypre-pfmg stay listed and report
// "not available in this build" (InputError) when chosen. hypre settings other than the
// defaults come as the spec's argument: "hypre-amg:theta=0.25:agg=1", "hypre-pfmg:skip=1",
// "eigen-iccg:ordering=amd", "amgcl:coarsening=rs" (keys: include/dcdm/peers.hpp). amgcl is
// optional: without AMGCL's headers in the build it reports "not available in this build".
#include "dcdm/peers.hpp"
#include "solver_registry.hpp"

namespace dcdm::cli {
namespace {

SolverRegistration hypre_amg(
    "hypre-amg", "peer: hypre BoomerAMG-preconditioned PCG on the fluid-cell matrix (1 thread)",
    [](const std::string& arg, const SolverParams&) {
      return make_hypre_amg_pcg(parse_hypre_amg_settings(arg, "hypre-amg:" + arg));
    });

SolverRegistration hypre_pfmg(
    "hypre-pfmg", "peer: hypre PFMG-preconditioned PCG on the structured grid (1 thread)",
    [](const std::string& arg, const SolverParams&) {
      return make_hypre_pfmg_pcg(parse_hypre_pfmg_settings(arg, "hypre-pfmg:" + arg));
    });

SolverRegistration eigen_iccg(
    "eigen-iccg", "peer: Eigen ConjugateGradient with IncompleteCholesky on the fluid-cell matrix",
    [](const std::string& arg, const SolverParams&) {
      return make_eigen_iccg(parse_eigen_iccg_settings(arg, "eigen-iccg:" + arg));
    });

SolverRegistration amgcl(
    "amgcl", "peer (optional): AMGCL's CG with its AMG (smoothed aggregation, SPAI(0)) on the fluid-cell matrix",
    [](const std::string& arg, const SolverParams&) {
      return make_amgcl_cg(parse_amgcl_settings(arg, "amgcl:" + arg));
    });

}  // namespace
}  // namespace dcdm::cli
