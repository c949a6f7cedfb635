#pragma once
// The FlagNet DCDM method (solvers_flagnet.cpp), also reached through `dcdm --model FILE`
// when FILE holds a flagnet model (solvers_dcdm.cpp dispatches on the file's architecture).
#include <memory>
#include <string>

#include "dcdm/solve.hpp"
#include "solver_registry.hpp"

namespace dcdm::cli {

// `model` is a flagnet model file or "initial" (the untrained, zero-correction V-cycle).
std::unique_ptr<IterativeSolver> make_flagnet_solver(const std::string& model, const SolverParams& params);
// `model` is a relaxnet model file or "initial" (MGPCG's Gauss-Seidel cycle in float).
std::unique_ptr<IterativeSolver> make_relaxnet_solver(const std::string& model, const SolverParams& params);

}  // namespace dcdm::cli
