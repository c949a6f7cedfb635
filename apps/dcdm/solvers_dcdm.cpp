// DCDM methods: the network ("dcdm", needs a model file) and controls with classical
// direction generators (V-cycle, Jacobi, identity) in the same conjugate-direction iteration.
#include <cstdlib>
#include <memory>

#include <fmt/format.h>

#include "dcdm/dcdm.hpp"
#include "dcdm/error.hpp"
#include "dcdm/learn.hpp"
#include "dcdm/models.hpp"
#include "dcdm/precond.hpp"
#include "solver_registry.hpp"
#include "solvers_flagnet.hpp"
#include "torch_backend.hpp"

namespace dcdm::cli {
namespace {

// A generator factory from a preconditioner type: set up on the system at solver setup.
template <class Precond>
GeneratorFactory preconditioner_generator() {
  return [](const LinearSystemView& view) -> std::unique_ptr<LinearOperator> {
    auto p = std::make_unique<Precond>();
    p->setup(view);
    return p;
  };
}

SolverRegistration dcdm("dcdm",
                        "DCDM with the model file's network (--model FILE or dcdm:FILE; a flagnet file runs dcdm-flag, a relaxnet file dcdm-relax; --dcdm-k; "
                        "--network-precision)",
                        [](const std::string& arg, const SolverParams& p) -> std::unique_ptr<IterativeSolver> {
                          const std::string name = arg.empty() ? p.model : arg;
                          if (name.empty())
                            throw InputError("--model: the dcdm method needs a model file (--model FILE or "
                                             "--method dcdm:FILE; `dcdm model init` makes an untrained one)");
                          const std::string path = learn::find_model(name).string();
                          const std::string architecture = learn::model_file_architecture(path);
                          if (architecture == "flagnet") return make_flagnet_solver(path, p);
                          if (architecture == "relaxnet") return make_relaxnet_solver(path, p);
                          // The reference network runs on LibTorch, in the module loaded here.
                          std::shared_ptr<const NetworkModel> net =
                              torch_backend().load_network(path, p.network_precision, p.network_input_scale);
                          GeneratorFactory factory =
                              [net](const LinearSystemView& view) -> std::unique_ptr<LinearOperator> {
                            if (!view.domain)
                              throw InputError("dcdm: the network needs a voxel domain (use --scene or "
                                               "--system, not a bare --matrix)");
                            return net->make_generator(*view.domain);
                          };
                          // The report names a bfloat16 run (--network-precision auto decides per CPU).
                          const bool bf16 = net->bfloat16();
                          return std::make_unique<DcdmSolver>(std::move(factory), dcdm_options(p),
                                                              bf16 ? "dcdm[bf16]" : "dcdm");
                        });

SolverRegistration dcdm_mg("dcdm-mg",
                           "DCDM iteration with a multigrid V-cycle as direction generator (control; the mgpcg "
                           "settings, dcdm-mg:omega=W:...)",
                           [](const std::string& arg, const SolverParams& p) -> std::unique_ptr<IterativeSolver> {
                             const MultigridOptions o = parse_multigrid_settings(arg, "dcdm-mg:" + arg);
                             GeneratorFactory factory = [o](const LinearSystemView& view) -> std::unique_ptr<LinearOperator> {
                               auto mg = std::make_unique<MultigridPreconditioner>(o);
                               mg->setup(view);
                               return mg;
                             };
                             return std::make_unique<DcdmSolver>(std::move(factory), dcdm_options(p), "dcdm-mg");
                           });

SolverRegistration dcdm_jacobi("dcdm-jacobi", "DCDM iteration with Jacobi as direction generator (control)",
                               [](const std::string&, const SolverParams& p) -> std::unique_ptr<IterativeSolver> {
                                 return std::make_unique<DcdmSolver>(preconditioner_generator<JacobiPreconditioner>(),
                                                                     dcdm_options(p), "dcdm-jacobi");
                               });

SolverRegistration dcdm_identity(
    "dcdm-identity", "DCDM iteration with the identity generator (steepest descent + k-term conjugation)",
    [](const std::string&, const SolverParams& p) -> std::unique_ptr<IterativeSolver> {
      GeneratorFactory factory = [](const LinearSystemView& view) -> std::unique_ptr<LinearOperator> {
        return std::make_unique<IdentityOperator>(view.op->size());
      };
      return std::make_unique<DcdmSolver>(std::move(factory), dcdm_options(p), "dcdm-identity");
    });

}  // namespace
}  // namespace dcdm::cli
