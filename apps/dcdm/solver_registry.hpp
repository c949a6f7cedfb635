#pragma once
// Named solver methods for every subcommand that solves (solve, simulate, bench, eval).
// Each family registers itself from its own file (solvers_classical.cpp, solvers_dcdm.cpp,
// solvers_peers.cpp), so adding a method touches only that file.
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "dcdm/dcdm.hpp"
#include "dcdm/precond.hpp"
#include "dcdm/solve.hpp"

namespace dcdm::cli {

// Method-specific settings shared by all subcommands. A method spec is "NAME" or
// "NAME:ARG" (e.g. "dcdm:models/paper64.dcdm"): ARG overrides the method's main argument.
struct SolverParams {
  std::string model;           // --model (dcdm)
  int dcdm_k = 2;              // --dcdm-k
  std::string dcdm_fallback = "best";  // --dcdm-fallback: best | failures | off
  double network_input_scale = 0.0;    // --network-input-scale (0 = auto)
  std::string network_precision = "float32";  // --network-precision: float32 | bf16 | auto
  int deflation_vectors = 16;  // --dpcg-k
  double mic_safety = 0.97;    // --mic-safety
};

using SolverCreator =
    std::function<std::unique_ptr<IterativeSolver>(const std::string& arg, const SolverParams&)>;

struct SolverRegistration {
  SolverRegistration(std::string name, std::string help, SolverCreator create);
};

// Throws InputError listing the known methods when `spec` names none of them.
std::unique_ptr<IterativeSolver> make_solver(const std::string& spec, const SolverParams& params);
std::vector<std::pair<std::string, std::string>> solver_methods();  // name, help
// The DCDM iteration's settings (--dcdm-k, --dcdm-fallback) for every DCDM-based method.
DcdmOptions dcdm_options(const SolverParams& params);

// "omega=W:band-omega=W:sweeps=N:band-sweeps=N:band-width=N:coarsest=CELLS:precision=double|float"
// (the mgpcg and dcdm-mg method settings); InputError naming `who` on a bad one.
MultigridOptions parse_multigrid_settings(const std::string& text, const std::string& who);

// Adds --model, --dcdm-k, --dpcg-k, --mic-safety to a subcommand.
void add_solver_params(CLI::App* cmd, SolverParams& params);

}  // namespace dcdm::cli
