#pragma once
// The solver methods of every subcommand that solves (solve, simulate, bench, eval): the
// library's methods by name (dcdm/methods.hpp), their options, and the reference network's
// generator through the LibTorch module (solvers_dcdm.cpp).
#include <CLI/CLI.hpp>

#include "dcdm/methods.hpp"

namespace dcdm::cli {

using SolverParams = MethodParams;

// Adds --model, --dcdm-k, --dcdm-fallback, --network-*, --dpcg-k, --mic-safety to a subcommand.
void add_solver_params(CLI::App* cmd, SolverParams& params);

}  // namespace dcdm::cli
