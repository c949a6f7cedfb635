// DCDM with the FlagNet generator (dcdm/flagnet.hpp): "dcdm-flag:MODEL" (or --model MODEL),
// "dcdm-flag:initial" for the untrained V-cycle of the base coefficients.
#include "solvers_flagnet.hpp"

#include <fmt/format.h>

#include "dcdm/dcdm.hpp"
#include "dcdm/error.hpp"
#include "dcdm/flagnet.hpp"
#include "dcdm/models.hpp"
#include "dcdm/relaxnet.hpp"

namespace dcdm::cli {

std::unique_ptr<IterativeSolver> make_flagnet_solver(const std::string& model, const SolverParams& params) {
  if (model.empty())
    throw InputError("--model: the dcdm-flag method needs a flagnet model file (--model FILE or "
                     "--method dcdm-flag:FILE; dcdm-flag:initial runs the untrained V-cycle)");
  auto net = std::make_shared<learn::FlagNet>(model == "initial" ? learn::FlagNet::initial()
                                                                 : learn::FlagNet::load(learn::find_model(model)));
  GeneratorFactory factory = [net](const LinearSystemView& view) -> std::unique_ptr<LinearOperator> {
    if (!view.domain)
      throw InputError("dcdm-flag: the flagnet generator needs a voxel domain (use --scene or --system, not a "
                       "bare --matrix)");
    return net->make_generator(*view.domain);
  };
  DcdmOptions options;
  options.k = params.dcdm_k;
  return std::make_unique<DcdmSolver>(std::move(factory), options, "dcdm-flag");
}

std::unique_ptr<IterativeSolver> make_relaxnet_solver(const std::string& model, const SolverParams& params) {
  if (model.empty())
    throw InputError("--model: the dcdm-relax method needs a relaxnet model file (--model FILE or "
                     "--method dcdm-relax:FILE; dcdm-relax:initial runs the untrained Gauss-Seidel cycle)");
  auto net = std::make_shared<learn::RelaxNet>(model == "initial" ? learn::RelaxNet::initial()
                                                                  : learn::RelaxNet::load(learn::find_model(model)));
  GeneratorFactory factory = [net](const LinearSystemView& view) -> std::unique_ptr<LinearOperator> {
    if (!view.domain)
      throw InputError("dcdm-relax: the relaxnet generator needs a voxel domain (use --scene or --system, not a "
                       "bare --matrix)");
    return net->make_generator(view);
  };
  // The generator is symmetric positive definite for any weights (factors in (0, 2)), so the
  // network guard that compares every direction with Jacobi's is not needed; the breakdown
  // fallbacks (NaN, curvature, vanishing direction) stay as --dcdm-fallback sets them.
  DcdmOptions options = dcdm_options(params);
  options.weak_fallback = false;
  return std::make_unique<DcdmSolver>(std::move(factory), options, "dcdm-relax");
}

namespace {

SolverRegistration dcdm_relax(
    "dcdm-relax",
    "DCDM with the learned relaxation multigrid (dcdm-relax:FILE or --model FILE; dcdm-relax:initial = "
    "MGPCG's Gauss-Seidel cycle in float; --dcdm-k)",
    [](const std::string& arg, const SolverParams& p) { return make_relaxnet_solver(arg.empty() ? p.model : arg, p); });

SolverRegistration dcdm_flag(
    "dcdm-flag",
    "DCDM with the flag-conditioned multilevel linear network (dcdm-flag:FILE or --model FILE; "
    "dcdm-flag:initial = untrained V-cycle; --dcdm-k)",
    [](const std::string& arg, const SolverParams& p) { return make_flagnet_solver(arg.empty() ? p.model : arg, p); });

}  // namespace
}  // namespace dcdm::cli
