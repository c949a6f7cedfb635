#pragma once
// The 7-point pressure operator on a voxel domain (docs/INTEGRATION.md):
// row of a fluid cell: diagonal = number of non-solid neighbours (fluid + air, where cells
// beyond an Open outer face count as air and beyond a Wall face as solid), -1 per fluid
// neighbour. Non-fluid cells have all-zero rows and columns (full-grid layout). A domain with
// Coefficients weighs each face and adds the diagonal term (see grid.hpp); components then
// connect only across faces of positive weight.
//
// Entries of a row are ordered by column: z-1, y-1, x-1, centre, x+1, y+1, z+1. The stencil
// sums in that same order, so it reproduces the CSR product (bit-identical wherever the
// compiler contracts a*b+c the same way in both, and always on integer-valued fields).
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include "dcdm/span.hpp"
#include <vector>

#include "dcdm/grid.hpp"
#include "dcdm/linalg.hpp"

namespace dcdm {

struct LinearSystemView;

// Bits of PoissonStencil::neighbour_mask(): bit f (f = Face value) set when the neighbour
// across face f is a fluid cell; kFluidBit set when the cell itself is fluid.
constexpr std::uint8_t neighbour_bit(Face f) { return std::uint8_t(1u << static_cast<int>(f)); }
inline constexpr std::uint8_t kFluidBit = 1u << 6;

// Matrix-free operator on full-grid vectors; output is zero outside fluid cells (whatever x
// holds there, NaN included). Built from any Domain, so a coarse multigrid level can reuse it
// from a coarsened domain. Keeps its own copy of the domain.
class PoissonStencil final : public LinearOperator {
 public:
  explicit PoissonStencil(const Domain& domain);
  // Takes the domain over (no copy of its cells).
  explicit PoissonStencil(Domain&& domain);
  std::int64_t size() const override;
  void apply(dcdm::span<const double> x, dcdm::span<double> y) const override;
  void apply_dot(dcdm::span<const double> x, dcdm::span<double> y, dcdm::span<const double* const> with,
                 dcdm::span<double> dots) const override;
  void apply_dot_single(dcdm::span<const float> x, dcdm::span<float> y, dcdm::span<const double> r,
                        dcdm::span<double> dots) const override;
  double residual_dot(dcdm::span<const double> x, dcdm::span<const double> b, dcdm::span<double> r) const override;
  const Domain& domain() const { return domain_; }
  const Dims& dims() const { return domain_.dims(); }
  // Per-cell diagonal (0 outside fluid). Computed for the unit operator (whose hot loop reads
  // the small integer count: a stored double diagonal would cost 8 bytes a cell).
  std::vector<double> diagonal() const;
  // Per-cell neighbour bits (see neighbour_bit / kFluidBit) and diagonal as a small integer
  // (what the unit operator's hot loop reads: 2 bytes a cell; the count is meaningless on a
  // weighted domain, whose diagonal() is the weighted one).
  dcdm::span<const std::uint8_t> neighbour_mask() const { return neighbour_mask_; }
  dcdm::span<const std::uint8_t> diagonal_count() const { return diag_count_; }
  // Bytes one apply() must move at least: x read, y written, mask + diagonal read (and, on a
  // weighted domain, the diagonal and three couplings in double).
  std::int64_t bytes_per_apply() const;

 private:
  Domain domain_;
  std::vector<double> diag_;                  // weighted only (the unit one is diag_count_)
  std::vector<std::uint8_t> neighbour_mask_;  // bit f set: neighbour across face f is fluid
  std::vector<std::uint8_t> diag_count_;      // diagonal as an integer 0..6 (unit operator)
  std::vector<double> lower_[3];              // weighted: coupling with the cell below per axis
  std::vector<double> zero_row_;              // stands in for rows beyond the grid

  // Rows [lo, hi) of A x into y[row - y_first] (y_first = lo: a block-sized buffer).
  template <class X>
  void apply_cells(const X* x, double* y, std::int64_t lo, std::int64_t hi, std::int64_t y_first = 0) const;
};

// The operator's diagonal on the full grid (0 outside fluid), weighted or not, without
// building the operator.
std::vector<double> operator_diagonal(const Domain& domain);

// Non-zero entries of a full-grid right-hand side on cells that are not fluid: they have no
// equation (an all-zero row), so a b with any is bad input, not something to solve.
std::int64_t count_nonzero_off_fluid(const Domain& domain, dcdm::span<const double> b);

// The assembled matrix of a system: *system.matrix when the caller gave one, else the
// full-grid assembly of system.domain, built into `storage` (the methods that need a CSR
// matrix build it only then, and free it when their set-up no longer needs it). InputError
// naming `who` when the system has neither.
const CsrMatrix& system_matrix(const LinearSystemView& system, CsrMatrix& storage, const std::string& who);

// Full-grid CSR: nx*ny*nz rows, all-zero rows for non-fluid cells (reference layout).
// Throws InputError when nx*ny*nz does not fit 32-bit column indices.
CsrMatrix assemble_full_grid(const Domain& domain);

// Compressed CSR over fluid cells only. row_of_cell[cell] = row or -1; cell_of_row[row] = cell.
struct FluidIndexing {
  std::vector<std::int64_t> row_of_cell;
  std::vector<std::int64_t> cell_of_row;
};
CsrMatrix assemble_compressed(const Domain& domain, FluidIndexing* indexing = nullptr);
FluidIndexing fluid_indexing(const Domain& domain);

// Connected components of fluid cells (6-connectivity). Ids follow the lowest cell index of
// each component, so they are deterministic.
struct FluidComponents {
  Field<std::int32_t> label;             // -1 outside fluid, else component id
  std::vector<std::int64_t> size;        // cells per component
  std::vector<bool> touches_dirichlet;   // has an air neighbour or an Open outer face
  std::vector<std::int64_t> first_cell;  // lowest cell index in each component
  int count() const { return static_cast<int>(size.size()); }
  int singular_count() const;
};
FluidComponents fluid_components(const Domain& domain);

// Projection onto the range of A: subtracts the per-component mean over each singular
// component (one with no Dirichlet contact). No-op when there is none. Sums are taken in a
// fixed block order, so the result does not depend on the thread count.
class RangeProjector {
 public:
  explicit RangeProjector(const Domain& domain);
  bool singular() const { return !singular_ids_.empty(); }
  void operator()(dcdm::span<double> v) const { project(v); }
  // Projects v and returns the mean removed from each singular component (in the order of
  // singular_components()), for reporting.
  std::vector<double> project(dcdm::span<double> v) const;
  // Shares the projector's arrays (no copy of the per-cell labels).
  std::function<void(dcdm::span<double>)> as_function() const;
  // Component counts and sizes; the per-cell labels only on a singular domain (a regular
  // one has nothing to project, and 4 bytes a cell are not kept for it).
  const FluidComponents& components() const { return *components_; }
  dcdm::span<const int> singular_components() const { return singular_ids_; }

 private:
  std::shared_ptr<FluidComponents> components_;
  std::vector<int> singular_ids_;
  std::vector<std::int32_t> slot_of_component_;  // -1 for non-singular components
  std::int64_t cells_ = 0;
};

// The alternative to projection: pin one cell of every singular component to p = 0 by
// turning it into an Air cell (its lowest-index cell). For a consistent right-hand side
// (zero sum over the component) the pinned system has the solution of the singular one that
// vanishes at the pinned cell; the pinned cell's equation is implied by the others.
// `pinned` receives the pinned cell indices.
Domain pin_singular_components(const Domain& domain, std::vector<std::int64_t>* pinned = nullptr);

}  // namespace dcdm
