#pragma once
/// @file
/// Every solver by name: the methods of the CLI (`--method`), the Python module and any program
/// that lets its users pick a solver with a string. A method spec is "NAME" or "NAME:ARG", e.g.
/// "mgpcg", "mgpcg:omega=1.3:precision=float", "dcdm-relax" (the shipped relaxnet model),
/// "dcdm-relax:my.dcdm", "hypre-amg:theta=0.5"; ARG overrides the method's main argument.
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dcdm/dcdm.hpp"
#include "dcdm/grid.hpp"
#include "dcdm/precond.hpp"
#include "dcdm/solve.hpp"

namespace dcdm {

/// Method settings that are not part of a spec's ARG (the CLI's options of the same names).
struct MethodParams {
  std::string model;                          ///< --model: dcdm, dcdm-relax, dcdm-flag (path or shipped name)
  /// --dcdm-k: kept directions; -1 = the method's own default: 1 for dcdm-relax (its cycle is
  /// symmetric positive definite, so more kept directions change no iterate and cost two
  /// vectors each), 2 for the other DCDM methods.
  int dcdm_k = -1;
  std::string dcdm_fallback = "best";         ///< --dcdm-fallback: best | failures | off
  /// --dcdm-vectors: precision of DCDM's direction vectors (DcdmOptions::vector_precision):
  /// double | float | auto (for dcdm-relax, whose float V-cycle already rounds every direction to
  /// float: float where rtol >= 1e-7, else double; double for the other DCDM methods)
  std::string dcdm_vectors = "auto";
  double network_input_scale = 0.0;           ///< --network-input-scale (0 = auto)
  std::string network_precision = "float32";  ///< --network-precision: float32 | bf16 | auto
  int deflation_vectors = 16;                 ///< --dpcg-k
  double mic_safety = 0.97;                   ///< --mic-safety
};

/// Makes the solver of `spec` (not yet set up). Throws InputError naming the method and listing
/// the known ones when `spec` names none, or naming the bad setting.
std::unique_ptr<IterativeSolver> make_solver(const std::string& spec, const MethodParams& params = {});

/// Bytes a solve with `spec` holds at its peak on a grid of `dims`, beyond what the process
/// held before (its code and libraries): the system as the solvers see it (flags, stencil,
/// b and x: 19 bytes a cell; with `singular`, 4 more for the component labels) and the method's
/// own vectors (8 bytes a cell each), multigrid hierarchy (its padded levels, float or double),
/// factors and matrices. From the data structures; where a library's inner storage is not ours
/// to count (the peers, dpcg's Lanczos work space), from peaks measured at 128^3. The tests hold
/// every method's estimate to within 25% of the measured peak at 64^3 and 128^3. InputError as
/// make_solver for an unknown method.
std::int64_t estimate_solve_bytes(const std::string& spec, const Dims& dims, const MethodParams& params = {},
                                  bool singular = false);
/// InputError naming `option`, the method and both figures when the process's resident set now
/// plus estimate_solve_bytes exceeds the machine's memory (physical_memory_bytes): checked before
/// the system is built, so that nothing large is allocated for a solve that cannot run.
void check_solve_fits_memory(const std::string& spec, const Dims& dims, const MethodParams& params,
                             const std::string& option);

/// The known methods: name and one line of help, sorted by name.
std::vector<std::pair<std::string, std::string>> solver_methods();
// Whether a method spec runs a model file (dcdm, dcdm-relax, dcdm-flag).
bool method_runs_model(const std::string& spec);
// For a command's --model: InputError when none of the chosen methods runs a model, or when
// the single chosen method names its model in the spec too (two models at once).
void check_model_option(const std::vector<std::string>& specs, const MethodParams& params);

/// The DCDM iteration's settings (k, fallback) for every DCDM-based method.
DcdmOptions dcdm_options(const MethodParams& params);

/// "omega=W:band-omega=W:sweeps=N:band-sweeps=N:band-width=N:coarsest=CELLS:precision=double|float"
/// (the mgpcg and dcdm-mg settings); InputError naming `who` on a bad one.
MultigridOptions parse_multigrid_settings(const std::string& text, const std::string& who);

/// A method made by a program on top of the library. The method "dcdm" runs the generator a
/// model file holds: relaxnet and flagnet files run in the core; the reference network needs
/// LibTorch, which a program provides with set_network_generator().
using MethodCreator = std::function<std::unique_ptr<IterativeSolver>(const std::string& arg, const MethodParams&)>;
void register_method(const std::string& name, const std::string& help, MethodCreator create);

/// How "dcdm" turns a reference-network model file (path) into a generator factory and a
/// report name; without one, such a file is an InputError saying that LibTorch is needed.
using NetworkGeneratorLoader =
    std::function<std::pair<GeneratorFactory, std::string>(const std::string& path, const MethodParams&)>;
void set_network_generator(NetworkGeneratorLoader loader);

}  // namespace dcdm
