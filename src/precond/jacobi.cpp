// Jacobi (diagonal) preconditioner.
#include <cmath>

#include <fmt/format.h>

#include "dcdm/error.hpp"
#include "dcdm/precond.hpp"
#include "dcdm/poisson.hpp"

namespace dcdm {

void JacobiPreconditioner::setup(const LinearSystemView& system) {
  std::vector<double> diag;
  if (system.matrix) {
    diag = system.matrix->diagonal();
  } else if (system.domain) {
    diag = operator_diagonal(*system.domain);
  } else {
    throw InputError("jacobi: the system has neither a matrix nor a grid domain");
  }
  if (system.op && system.op->size() != static_cast<std::int64_t>(diag.size()))
    throw InputError(fmt::format("jacobi: diagonal has {} entries, the operator {}", diag.size(),
                                 system.op->size()));
  inv_diag_.resize(diag.size());
  for (std::size_t i = 0; i < diag.size(); ++i) {
    if (diag[i] < 0.0 || !std::isfinite(diag[i]))
      throw InputError(fmt::format("jacobi: the diagonal of row {} (counting from 0) is {} (must be >= 0 and finite)", i,
                                   diag[i]));
    inv_diag_[i] = diag[i] > 0.0 ? 1.0 / diag[i] : 0.0;
  }
}

void JacobiPreconditioner::apply(dcdm::span<const double> r, dcdm::span<double> z) const {
  const std::int64_t n = size();
  const double* d = inv_diag_.data();
  const double* pr = r.data();
  double* pz = z.data();
#pragma omp parallel for simd schedule(static)
  for (std::int64_t i = 0; i < n; ++i) pz[i] = d[i] * pr[i];
}

}  // namespace dcdm
