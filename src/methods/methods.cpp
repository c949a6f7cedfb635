// Every solver by name (dcdm/methods.hpp). The built-in methods are listed in one table built
// on first use (static registration objects in a static library would be dropped by the
// linker); programs add their own with register_method.
#include "dcdm/methods.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "dcdm/error.hpp"
#include "dcdm/flagnet.hpp"
#include "dcdm/krylov.hpp"
#include "dcdm/learn.hpp"
#include "dcdm/models.hpp"
#include "dcdm/peers.hpp"
#include "dcdm/relaxnet.hpp"
#include "dcdm/memory.hpp"

namespace dcdm {
namespace {

struct Entry {
  std::string help;
  MethodCreator create;
};

struct Registry {
  std::mutex mutex;
  std::map<std::string, Entry> methods;
  NetworkGeneratorLoader network;
};

// dpcg's set-up builds its deflation space with m = max(3k, 32) Lanczos steps (at most n)
// with full re-orthogonalisation: about m^2 n multiply-adds over an m x n basis, all before
// the first iteration, and without progress output. Above the default k (16, always allowed),
// kDpcgWorkLimit bounds m^2 n at 1e11 (roughly a minute of memory-bound streaming): --dpcg-k
// up to 582 at 32^3, 205 at 64^3, 72 at 128^3, any k on a 16^3 grid. A larger k ran for hours.
constexpr double kDpcgWorkLimit = 1e11;
constexpr int kDpcgDefaultK = 16;

// The largest --dpcg-k allowed on n unknowns.
int dpcg_k_limit(std::int64_t n) {
  int best = kDpcgDefaultK;
  for (int lo = 1, hi = 1 << 20; lo <= hi;) {
    const int k = lo + (hi - lo) / 2;
    const double m = static_cast<double>(std::min<std::int64_t>(std::max(3 * k, 32), n));
    if (m * m * static_cast<double>(n) <= kDpcgWorkLimit) {
      best = k;
      lo = k + 1;
    } else {
      hi = k - 1;
    }
  }
  return best;
}

// DeflatedPcgSolver behind the bound above, checked at set-up where the system's size is known.
class BoundedDeflatedPcg final : public IterativeSolver {
 public:
  explicit BoundedDeflatedPcg(int k) : k_(k), inner_(k) {}
  std::string name() const override { return inner_.name(); }
  void setup(const LinearSystemView& system) override {
    if (system.op) {
      const std::int64_t n = system.op->size();
      const int limit = dpcg_k_limit(n);
      if (k_ > limit)
        throw InputError(fmt::format(
            "--dpcg-k: {} Ritz vectors on {} unknowns need {} Lanczos steps with full re-orthogonalisation "
            "(about {:.1e} multiply-adds before the first iteration); at this size --dpcg-k may be at most {}",
            k_, n, std::min<std::int64_t>(std::max(3 * k_, 32), n),
            std::pow(static_cast<double>(std::min<std::int64_t>(std::max(3 * k_, 32), n)), 2) * double(n), limit));
    }
    inner_.setup(system);
  }

 protected:
  SolveReport solve_scaled(dcdm::span<const double> b, dcdm::span<double> x, const SolveOptions& options) override {
    return inner_.solve(b, x, options);
  }

 private:
  int k_;
  DeflatedPcgSolver inner_;
};

// A generator factory from a preconditioner type: set up on the system at solver setup.
template <class Precond>
GeneratorFactory preconditioner_generator() {
  return [](const LinearSystemView& view) -> std::unique_ptr<LinearOperator> {
    auto p = std::make_unique<Precond>();
    p->setup(view);
    return p;
  };
}

// The generator needs the cell flags: a bare matrix has none.
void require_domain(const LinearSystemView& view, const char* method) {
  if (!view.domain)
    throw InputError(fmt::format("{}: the generator needs a voxel domain (a scene, a system folder or a Domain), "
                                 "not a bare matrix",
                                 method));
}

std::unique_ptr<IterativeSolver> make_relaxnet_solver(const std::string& model, const MethodParams& params) {
  // The shipped model by default: the fastest learned method needs no file of the user's.
  auto net = std::make_shared<learn::RelaxNet>(model == "initial" ? learn::RelaxNet::initial()
                                                                  : learn::RelaxNet::load(learn::find_model(model)));
  GeneratorFactory factory = [net](const LinearSystemView& view) -> std::unique_ptr<LinearOperator> {
    require_domain(view, "dcdm-relax");
    return net->make_generator(view);
  };
  // The generator is symmetric positive definite for any weights (factors in (0, 2)), so the
  // guard that compares every direction with Jacobi's is not needed; the breakdown fallbacks
  // (NaN, curvature, vanishing direction) stay as dcdm_fallback sets them.
  DcdmOptions options = dcdm_options(params);
  options.weak_fallback = false;
  // For the same reason one kept direction is CG's: more change no iterate (measured: the same
  // iterations and residuals on every scene at 128^3) and cost 16 bytes a cell each.
  if (params.dcdm_k < 0) options.k = 1;
  // Its float cycle rounds every direction to float anyway.
  if (params.dcdm_vectors == "auto") options.vector_precision = DcdmOptions::VectorPrecision::Auto;
  return std::make_unique<DcdmSolver>(std::move(factory), options, "dcdm-relax");
}

std::unique_ptr<IterativeSolver> make_flagnet_solver(const std::string& model, const MethodParams& params) {
  auto net = std::make_shared<learn::FlagNet>(model == "initial" ? learn::FlagNet::initial()
                                                                 : learn::FlagNet::load(learn::find_model(model)));
  GeneratorFactory factory = [net](const LinearSystemView& view) -> std::unique_ptr<LinearOperator> {
    require_domain(view, "dcdm-flag");
    return net->make_generator(*view.domain);
  };
  DcdmOptions options;
  options.k = params.dcdm_k >= 0 ? params.dcdm_k : DcdmOptions{}.k;
  return std::make_unique<DcdmSolver>(std::move(factory), options, "dcdm-flag");
}

void add_builtin_methods(Registry& r) {
  // takes_settings false: "NAME:anything" is an error naming the setting (it would be ignored).
  const auto add = [&r](const char* name, const char* help, MethodCreator create, bool takes_settings = true) {
    if (!takes_settings)
      create = [name, inner = std::move(create)](const std::string& arg, const MethodParams& p) {
        if (!arg.empty())
          throw InputError(fmt::format("--method: '{}' takes no settings (got '{}:{}')", name, name, arg));
        return inner(arg, p);
      };
    r.methods[name] = {help, std::move(create)};
  };
  // Classical: CG, PCG with Jacobi / IC(0) / MIC(0) / geometric multigrid, deflated PCG.
  add("cg", "conjugate gradients, no preconditioner", [](const std::string&, const MethodParams&) {
    return make_cg_solver();
  }, false);
  add("jacobi", "PCG with the Jacobi (diagonal) preconditioner",
      [](const std::string&, const MethodParams&) -> std::unique_ptr<IterativeSolver> {
        return std::make_unique<PcgSolver>("jacobi", std::make_unique<JacobiPreconditioner>());
      }, false);
  add("ic0", "PCG with incomplete Cholesky IC(0), natural ordering",
      [](const std::string&, const MethodParams&) -> std::unique_ptr<IterativeSolver> {
        return std::make_unique<PcgSolver>("ic0", std::make_unique<IncompleteCholeskyPreconditioner>(0.0));
      }, false);
  add("mic0", "PCG with modified incomplete Cholesky MIC(0) (--mic-safety, default 0.97)",
      [](const std::string&, const MethodParams& p) -> std::unique_ptr<IterativeSolver> {
        return std::make_unique<PcgSolver>("mic0", std::make_unique<IncompleteCholeskyPreconditioner>(p.mic_safety));
      }, false);
  add("dpcg", "deflated PCG: Jacobi + --dpcg-k Ritz vectors from Lanczos started at b",
      [](const std::string&, const MethodParams& p) -> std::unique_ptr<IterativeSolver> {
        return std::make_unique<BoundedDeflatedPcg>(p.deflation_vectors);
      }, false);
  add("mgpcg",
      "CG preconditioned by a geometric multigrid V-cycle (McAdams et al. 2010); settings "
      "mgpcg:omega=W:band-omega=W:sweeps=N:band-sweeps=N:band-width=N:coarsest=CELLS:precision=double|float "
      "(weighted systems: coarsening=open-mean|average|path-harmonic:weighted-interpolation=0|1:interface-band=R)",
      [](const std::string& arg, const MethodParams&) -> std::unique_ptr<IterativeSolver> {
        return std::make_unique<PcgSolver>(
            "mgpcg", std::make_unique<MultigridPreconditioner>(parse_multigrid_settings(arg, "mgpcg:" + arg)));
      });
  // The DCDM iteration with learned generators, and with classical ones as controls.
  add("dcdm-relax",
      "DCDM with the learned relaxation multigrid (the shipped relaxnet model; dcdm-relax:FILE or --model FILE for "
      "another; dcdm-relax:initial = MGPCG's Gauss-Seidel cycle in float; --dcdm-k)",
      [](const std::string& arg, const MethodParams& p) {
        return make_relaxnet_solver(!arg.empty() ? arg : !p.model.empty() ? p.model : "relaxnet", p);
      });
  add("dcdm-flag",
      "DCDM with the flag-conditioned multilevel linear network (the shipped flagnet model; dcdm-flag:FILE or "
      "--model FILE for another; dcdm-flag:initial = untrained V-cycle; --dcdm-k)",
      [](const std::string& arg, const MethodParams& p) {
        return make_flagnet_solver(!arg.empty() ? arg : !p.model.empty() ? p.model : "flagnet", p);
      });
  add("dcdm",
      "DCDM with the model file's generator (--model FILE or dcdm:FILE; a flagnet file runs dcdm-flag, a relaxnet "
      "file dcdm-relax, a reference network needs LibTorch; --dcdm-k; --network-precision)",
      [&r](const std::string& arg, const MethodParams& p) -> std::unique_ptr<IterativeSolver> {
        const std::string name = arg.empty() ? p.model : arg;
        if (name.empty())
          throw InputError("--model: the dcdm method needs a model file (--model FILE or --method dcdm:FILE; "
                           "`dcdm model init` makes an untrained one)");
        const std::string path = learn::find_model(name).string();
        const std::string architecture = learn::model_file_architecture(path);
        if (architecture == learn::kFlagNetArchitecture) return make_flagnet_solver(path, p);
        if (architecture == learn::kRelaxNetArchitecture) return make_relaxnet_solver(path, p);
        NetworkGeneratorLoader loader;
        {
          std::lock_guard lock(r.mutex);
          loader = r.network;
        }
        if (!loader)
          throw InputError(fmt::format("{}: a '{}' network runs on LibTorch, which this program does not provide "
                                       "(the dcdm tool and dcdm::learn do)",
                                       path, architecture));
        auto [factory, report_name] = loader(path, p);
        return std::make_unique<DcdmSolver>(std::move(factory), dcdm_options(p), report_name);
      });
  add("dcdm-mg",
      "DCDM iteration with a multigrid V-cycle as direction generator (control; the mgpcg settings, "
      "dcdm-mg:omega=W:...)",
      [](const std::string& arg, const MethodParams& p) -> std::unique_ptr<IterativeSolver> {
        const MultigridOptions o = parse_multigrid_settings(arg, "dcdm-mg:" + arg);
        GeneratorFactory factory = [o](const LinearSystemView& view) -> std::unique_ptr<LinearOperator> {
          auto mg = std::make_unique<MultigridPreconditioner>(o);
          mg->setup(view);
          return mg;
        };
        return std::make_unique<DcdmSolver>(std::move(factory), dcdm_options(p), "dcdm-mg");
      });
  add("dcdm-jacobi", "DCDM iteration with Jacobi as direction generator (control)",
      [](const std::string&, const MethodParams& p) -> std::unique_ptr<IterativeSolver> {
        return std::make_unique<DcdmSolver>(preconditioner_generator<JacobiPreconditioner>(), dcdm_options(p),
                                            "dcdm-jacobi");
      }, false);
  add("dcdm-identity", "DCDM iteration with the identity generator (steepest descent + k-term conjugation)",
      [](const std::string&, const MethodParams& p) -> std::unique_ptr<IterativeSolver> {
        GeneratorFactory factory = [](const LinearSystemView& view) -> std::unique_ptr<LinearOperator> {
          return std::make_unique<IdentityOperator>(view.op->size());
        };
        return std::make_unique<DcdmSolver>(std::move(factory), dcdm_options(p), "dcdm-identity");
      }, false);
  // Peers from established libraries. Without hypre (or AMGCL's headers) in the build they stay
  // listed and report "not available in this build" (InputError) when chosen.
  add("hypre-amg", "peer: hypre BoomerAMG-preconditioned PCG on the fluid-cell matrix (1 thread a rank; mpirun -np N for N ranks)",
      [](const std::string& arg, const MethodParams&) {
        return make_hypre_amg_pcg(parse_hypre_amg_settings(arg, "hypre-amg:" + arg));
      });
  add("hypre-pfmg", "peer: hypre PFMG-preconditioned PCG on the structured grid (1 thread a rank; mpirun -np N for N ranks)",
      [](const std::string& arg, const MethodParams&) {
        return make_hypre_pfmg_pcg(parse_hypre_pfmg_settings(arg, "hypre-pfmg:" + arg));
      });
  add("eigen-iccg", "peer: Eigen ConjugateGradient with IncompleteCholesky on the fluid-cell matrix",
      [](const std::string& arg, const MethodParams&) {
        return make_eigen_iccg(parse_eigen_iccg_settings(arg, "eigen-iccg:" + arg));
      });
  add("amgcl",
      "peer (optional): AMGCL's CG with its AMG (smoothed aggregation, SPAI(0)) on the fluid-cell matrix; amgcl:precision=float: its mixed precision",
      [](const std::string& arg, const MethodParams&) { return make_amgcl_cg(parse_amgcl_settings(arg, "amgcl:" + arg)); });
}

Registry& registry() {
  static Registry r;
  static std::once_flag once;
  std::call_once(once, [] { add_builtin_methods(r); });
  return r;
}

}  // namespace

std::unique_ptr<IterativeSolver> make_solver(const std::string& spec, const MethodParams& params) {
  const auto colon = spec.find(':');
  const std::string name = spec.substr(0, colon);
  const std::string arg = colon == std::string::npos ? "" : spec.substr(colon + 1);
  Registry& r = registry();
  MethodCreator create;
  {
    std::lock_guard lock(r.mutex);
    const auto it = r.methods.find(name);
    if (it == r.methods.end()) {
      std::string known;
      for (const auto& [n, e] : r.methods) known += (known.empty() ? "" : ", ") + n;
      throw InputError(fmt::format("--method: unknown method '{}' (known: {})", name, known));
    }
    create = it->second.create;
  }
  return create(arg, params);
}

std::int64_t estimate_solve_bytes(const std::string& spec, const Dims& dims, const MethodParams& params,
                                  bool singular) {
  const auto colon = spec.find(':');
  const std::string name = spec.substr(0, colon);
  const std::string arg = colon == std::string::npos ? "" : spec.substr(colon + 1);
  (void)make_solver(spec, params);  // an unknown method or setting: the same InputError
  const double cells = static_cast<double>(dims.size());
  // Multigrid levels are padded by 3 cells a side and the coarser ones add 1/7.
  const double padded = double(dims.nx + 3) * (dims.ny + 3) * (dims.nz + 3) * 8.0 / 7.0;
  // A level: the cell type (1 byte) and four arrays (the inverse diagonal, x, b, the
  // prolongation normaliser) in the hierarchy's precision, a fifth (the residual) for the
  // stage-by-stage cycle (fused=false), and a margin for the band lists.
  const auto hierarchy = [&](const MultigridOptions& o) {
    return padded * (1.0 + (o.fused_passes ? 4.0 : 5.0) * (o.single_precision ? 4.0 : 8.0) + 2.0);
  };
  const auto kept = [&](int default_k) { return params.dcdm_k >= 0 ? params.dcdm_k : default_k; };
  constexpr double kVector = 8.0;
  // PCG: r, z, p, A p, and the Jacobi inverse diagonal of dcdm's fallback where it is built.
  double method = 0.0;
  if (name == "cg") {
    method = 4 * kVector * cells;
  } else if (name == "jacobi") {
    method = 5 * kVector * cells;
  } else if (name == "ic0" || name == "mic0") {
    method = 6.5 * kVector * cells;  // PCG's vectors and the stencil factor (its pivots, a work vector)
  } else if (name == "dpcg") {
    // Jacobi PCG, the k deflation vectors and their images, the Lanczos basis of
    // max(3k, 32) steps and its re-orthogonalisation work space (half as much again).
    const double k = params.deflation_vectors, steps = std::max(3.0 * k, 32.0);
    method = (5 + 2 * k + 1.5 * steps) * kVector * cells;
  } else if (name == "mgpcg" || name == "dcdm-mg") {
    const MultigridOptions o = parse_multigrid_settings(arg, name + ":" + arg);
    method = hierarchy(o);
    // dcdm-mg: DCDM's r, q, Aq, k kept pairs, the weak-direction guard's pair and its Jacobi.
    method += name == "mgpcg" ? 4.5 * kVector * cells : (3 + 2 * kept(2) + 2 + 1) * kVector * cells;
  } else if (name == "dcdm-relax") {
    // r, the new direction and the kept pairs: A q goes into the retiring pair's buffer
    // (DcdmOptions::orthogonalise_first; the first iteration holds r, q and A q).
    // With float vectors (--dcdm-vectors float or auto, which is float at the usual tolerances):
    // r in double, the direction (the cycle writes it in float), its image and the kept pairs in
    // float; a singular system also keeps the cycle's output in double, to project it.
    const int k = kept(1);
    method = hierarchy(learn::RelaxNetSpec::cycle_options()) + (params.dcdm_vectors == "double" ? std::max(3, 1 + 2 * k + 1) * kVector
                                                                  : (singular ? 2 : 1) * kVector + std::max(2, 1 + 2 * k) * 4.0) *
                                   cells;
  } else if (name == "dcdm-jacobi" || name == "dcdm-identity") {
    method = (3 + 2 * kept(2) + 2 + 1 + 1) * kVector * cells;
  } else if (name == "dcdm-flag") {
    // The vectors as dcdm-jacobi's plus the network input, and the flagnet's levels.
    method = (3 + 2 * kept(2) + 2 + 1 + 1) * kVector * cells + 5.0 * padded * 4.0;
  } else if (name == "dcdm") {
    method = (3 + 2 * kept(2) + 2 + 1 + 1) * kVector * cells + 64.0 * cells;  // network activations
  } else if (name == "eigen-iccg") {
    method = 410.0 * cells;  // measured: the full-grid assembly, the fluid matrix and its factor
  } else if (name == "hypre-amg") {
    method = 480.0 * cells;  // measured: our compressed matrix, hypre's copy and the AMG hierarchy
  } else if (name == "hypre-pfmg") {
    // Measured: the structured matrix in symmetric storage (4 doubles a cell, straight from a
    // unit grid's stencil) and PFMG's levels; a singular system (pinned) goes through the
    // assembled full-grid matrix first (so does a weighted one, which this cannot tell: up to
    // 350 bytes a cell there too).
    method = (singular ? 350.0 : 180.0) * cells;
  } else {
    method = 480.0 * cells;  // another library peer: as hypre's AMG
  }
  const double system = (19.0 + (singular ? 4.0 : 0.0)) * cells;
  return static_cast<std::int64_t>(system + method);
}

void check_solve_fits_memory(const std::string& spec, const Dims& dims, const MethodParams& params,
                             const std::string& option) {
  const std::int64_t need = resident_bytes() + estimate_solve_bytes(spec, dims, params);
  const std::int64_t have = physical_memory_bytes();
  if (have > 0 && need > have)
    throw InputError(fmt::format("{}: {} on a {} grid needs about {:.1f} GiB ({:.0f} bytes a cell), more than the "
                                 "{:.1f} GiB of memory this process may use",
                                 option, spec, dims.str(), need / 1073741824.0, double(need) / double(dims.size()),
                                 have / 1073741824.0));
}

bool method_runs_model(const std::string& spec) {
  const std::string name = spec.substr(0, spec.find(':'));
  return name == "dcdm" || name == "dcdm-relax" || name == "dcdm-flag";
}

void check_model_option(const std::vector<std::string>& specs, const MethodParams& params) {
  if (params.model.empty()) return;
  if (std::none_of(specs.begin(), specs.end(), [](const std::string& s) { return method_runs_model(s); }))
    throw InputError(fmt::format("--model: no chosen method runs a model (dcdm, dcdm-relax and dcdm-flag do; chosen: {})",
                                 fmt::join(specs, ", ")));
  if (specs.size() == 1 && specs[0].find(':') != std::string::npos)
    throw InputError(fmt::format("--model: give the model once, as --model {} or in --method {}", params.model,
                                 specs[0]));
}

std::vector<std::pair<std::string, std::string>> solver_methods() {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [n, e] : r.methods) out.emplace_back(n, e.help);
  return out;
}

DcdmOptions dcdm_options(const MethodParams& params) {
  DcdmOptions o;
  if (params.dcdm_k >= 0) o.k = params.dcdm_k;
  o.fallback = params.dcdm_fallback != "off";
  o.weak_fallback = params.dcdm_fallback == "best";
  if (params.dcdm_vectors != "auto" && params.dcdm_vectors != "double" && params.dcdm_vectors != "float")
    throw InputError(fmt::format("--dcdm-vectors: auto, double or float (got '{}')", params.dcdm_vectors));
  o.vector_precision = params.dcdm_vectors == "float" ? DcdmOptions::VectorPrecision::Float
                                                      : DcdmOptions::VectorPrecision::Double;
  return o;
}

MultigridOptions parse_multigrid_settings(const std::string& text, const std::string& who) {
  MultigridOptions o;
  std::string precision = "double", coarsening = "open-mean";
  double coarsest = static_cast<double>(o.coarsest_cells), direct = static_cast<double>(o.direct_cells);
  int weighted_interpolation = o.weighted_interpolation ? 1 : 0;
  // omega just below 2 is still a contraction; the bound keeps the cycle positive definite.
  const PeerSetting keys[] = {{"omega", &o.omega, 0.01, 1.99},
                              {"band-omega", &o.band_omega, 0.01, 1.99},
                              {"sweeps", &o.pre_sweeps, 0, 16},
                              {"band-sweeps", &o.boundary_sweeps, 0, 16},
                              {"band-width", &o.band_width, 0, 8},
                              {"coarsest", &coarsest, 1, 1e7},
                              {"coarse-cycles", &o.coarse_cycles, 0, 16},
                              {"direct", &direct, 1, 1e7},
                              {"precision", &precision, 0, 0, "double|float"},
                              // Weighted domains only (see MultigridOptions).
                              {"coarsening", &coarsening, 0, 0, "open-mean|average|path-harmonic"},
                              {"weighted-interpolation", &weighted_interpolation, 0, 1},
                              {"interface-band", &o.interface_band_ratio, 0, 1e12}};
  parse_peer_settings(text, who, keys);
  o.single_precision = precision == "float";
  o.weight_coarsening = coarsening == "average"         ? WeightCoarsening::Average
                        : coarsening == "path-harmonic" ? WeightCoarsening::PathHarmonic
                                                        : WeightCoarsening::OpenMean;
  o.weighted_interpolation = weighted_interpolation != 0;
  o.coarsest_cells = static_cast<std::int64_t>(coarsest);
  o.direct_cells = static_cast<std::int64_t>(direct);
  return o;
}

void register_method(const std::string& name, const std::string& help, MethodCreator create) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  r.methods[name] = {help, std::move(create)};
}

void set_network_generator(NetworkGeneratorLoader loader) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  r.network = std::move(loader);
}

}  // namespace dcdm
