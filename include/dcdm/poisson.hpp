#pragma once
// The 7-point pressure operator on a voxel domain (see shared/method/DCDM.md):
// row of a fluid cell: diagonal = number of non-solid neighbours (fluid + air, where cells
// beyond an Open outer face count as air and beyond a Wall face as solid), -1 per fluid
// neighbour. Non-fluid cells have all-zero rows and columns (full-grid layout).
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "dcdm/grid.hpp"
#include "dcdm/linalg.hpp"

namespace dcdm {

// Matrix-free operator on full-grid vectors; output is zero outside fluid cells.
class PoissonStencil final : public LinearOperator {
 public:
  explicit PoissonStencil(const Domain& domain);
  std::int64_t size() const override;
  void apply(std::span<const double> x, std::span<double> y) const override;
  const Domain& domain() const { return *domain_; }
  // Per-cell diagonal (0 outside fluid).
  std::span<const double> diagonal() const { return diag_; }

 private:
  const Domain* domain_;
  std::vector<double> diag_;
  std::vector<std::uint8_t> neighbour_mask_;  // bit f set: neighbour across face f is fluid
};

// Full-grid CSR: nx*ny*nz rows, all-zero rows for non-fluid cells (reference layout).
CsrMatrix assemble_full_grid(const Domain& domain);

// Compressed CSR over fluid cells only. row_of_cell[cell] = row or -1; cell_of_row[row] = cell.
struct FluidIndexing {
  std::vector<std::int64_t> row_of_cell;
  std::vector<std::int64_t> cell_of_row;
};
CsrMatrix assemble_compressed(const Domain& domain, FluidIndexing* indexing = nullptr);

// Connected components of fluid cells (6-connectivity).
struct FluidComponents {
  Field<std::int32_t> label;             // -1 outside fluid, else component id
  std::vector<std::int64_t> size;        // cells per component
  std::vector<bool> touches_dirichlet;   // has an air neighbour or an Open outer face
  int count() const { return static_cast<int>(size.size()); }
  int singular_count() const;
};
FluidComponents fluid_components(const Domain& domain);

// Projection onto the range of A: subtracts the per-component mean over each singular
// component (one with no Dirichlet contact). No-op when there is none.
class RangeProjector {
 public:
  explicit RangeProjector(const Domain& domain);
  bool singular() const { return !singular_ids_.empty(); }
  void operator()(std::span<double> v) const;
  std::function<void(std::span<double>)> as_function() const;

 private:
  FluidComponents components_;
  std::vector<int> singular_ids_;
};

}  // namespace dcdm
