// Plain CG: the PCG loop (pcg.cpp) with no preconditioner (z = r).
#include <memory>

#include "dcdm/krylov.hpp"
#include "dcdm/precond.hpp"

namespace dcdm {

std::unique_ptr<IterativeSolver> make_cg_solver() {
  return std::make_unique<PcgSolver>("cg", nullptr);
}

}  // namespace dcdm
