#pragma once
// Preconditioners: each is a LinearOperator (apply r -> z ~ A^{-1} r) with its own setup from
// a LinearSystemView. All are symmetric positive (semi-)definite so that PCG stays valid, keep
// entries outside the fluid exactly zero, and are deterministic (bit-identical runs).
// apply() uses internal work buffers: one object must not be applied from two threads at once.
#include <cstdint>
#include <memory>
#include <optional>
#include "dcdm/span.hpp"
#include <string>
#include <vector>

#include "dcdm/grid.hpp"
#include "dcdm/linalg.hpp"
#include "dcdm/solve.hpp"

namespace dcdm {

class Preconditioner : public LinearOperator {
 public:
  virtual std::string name() const = 0;
  // Throws InputError when the system lacks what the method needs.
  virtual void setup(const LinearSystemView& system) = 0;
};

// z = D^{-1} r; rows with a zero diagonal (cells outside the fluid) give 0.
// Uses the CSR diagonal, else the domain's stencil diagonal.
class JacobiPreconditioner final : public Preconditioner {
 public:
  std::string name() const override { return "jacobi"; }
  void setup(const LinearSystemView& system) override;
  std::int64_t size() const override { return static_cast<std::int64_t>(inv_diag_.size()); }
  void apply(dcdm::span<const double> r, dcdm::span<double> z) const override;

 private:
  std::vector<double> inv_diag_;
};

// Incomplete Cholesky without fill in the "diagonal" form M = (E + L) E^{-1} (E + L^T),
// L = strict lower part of A (exact IC(0) for the 7-point stencil, where no fill lands inside
// the pattern), natural ordering. Modified IC(0) (Bridson, "Fluid Simulation for Computer
// Graphics", 2nd ed., sec. 5.3): e_i = a_ii - sum_k a_ik^2/e_k - tau sum_k a_ik (sum_{j>k, j!=i}
// a_kj)/e_k; tau = 0 is IC(0), tau = safety (0.97) is MIC(0). Tiny-pivot guard: e_i < sigma a_ii
// -> e_i = a_ii (sigma = 0.25).
// With a unit-coefficient domain the factor uses the 7-point stencil directly on the full grid
// (branch-free sweeps: values outside the fluid are zero); otherwise the CSR matrix (a
// weighted domain without one is assembled for the factorisation).
// The triangular solves are sequential (natural ordering keeps IC's iteration counts).
class IncompleteCholeskyPreconditioner final : public Preconditioner {
 public:
  explicit IncompleteCholeskyPreconditioner(double tau = 0.0, double sigma = 0.25);
  std::string name() const override { return tau_ > 0 ? "mic0" : "ic0"; }
  void setup(const LinearSystemView& system) override;
  std::int64_t size() const override { return n_; }
  void apply(dcdm::span<const double> r, dcdm::span<double> z) const override;
  // Number of pivots replaced by the guard in the last setup.
  std::int64_t guarded_pivots() const { return guarded_; }

 private:
  double tau_, sigma_;
  std::int64_t n_ = 0;
  std::int64_t guarded_ = 0;
  // Stencil path
  bool stencil_ = false;
  Dims dims_;
  std::vector<double> inv_e_;  // 1/e_i, 0 outside fluid
  // CSR path: strict lower part of A (row-wise) and strict upper part (row-wise).
  std::vector<std::int64_t> lower_ptr_, upper_ptr_;
  std::vector<std::int32_t> lower_col_, upper_col_;
  std::vector<double> lower_val_, upper_val_;
  mutable std::vector<double> work_;
};

// Geometric multigrid V-cycle for irregular voxel domains (McAdams, Sifakis, Teran 2010),
// used as a preconditioner. See src/precond/multigrid.cpp for the rules; in short:
// - levels: cell flags coarsened 2x per axis (odd sizes round up). A coarse cell is Air if any
//   child is Air, else Fluid if any child is Fluid, else Solid; outer faces keep their type.
// - operators: the 7-point stencil rediscretised on each level's flags, scaled by 1/4^level
//   (spacing 2^level), so R A_f P ~ A_c.
// - transfers: cell-centred trilinear prolongation P (weights 3/4, 1/4 per axis); a solid
//   coarse neighbour (or one beyond a wall) drops out and the weights are renormalised
//   (a Neumann-consistent interpolation); air neighbours keep their weight with value 0.
//   Restriction R = P^T / 8.
// - smoothing: red-black Gauss-Seidel; `boundary_sweeps` extra red-black sweeps on the band of
//   fluid cells within `band_width` cells of a non-fluid cell or wall, before and after the
//   interior sweeps. The post-smoother is the exact mirror of the pre-smoother (reverse order
//   of sweeps and colours), so the cycle is symmetric and PCG stays valid.
// - coarsest level: exact sparse Cholesky (Eigen SimplicialLDLT) of the compressed operator,
//   one node pinned per singular component and the right-hand side / correction projected
//   to zero mean on those components (the symmetric pseudo-inverse); or, with coarse_cycles,
//   that many V-cycles on the projected right-hand side down to a smaller level factorised so.
// - weighted domains (Domain::coefficients): each level carries per-face couplings and its
//   weighted diagonal; face weights and diagonal terms coarsen as `weight_coarsening` says, the
//   prolongation weighs coarse parents by their conductivity (`weighted_interpolation`) and
//   cells at coefficient jumps join the band (`interface_band_ratio`). hierarchy() refuses
//   weighted hierarchies (Error). The unit operator keeps the unit code, bit for bit.
// One smoothing level of the hierarchy as a RelaxationModel sees it: padded layout (one ghost
// layer below, two above each axis, x fastest); ghosts carry the outer face's type (a Wall face
// Solid, an Open face Air).
struct MultigridLevelView {
  Dims dims;
  int level = 0;   // 0 = the finest
  int levels = 0;  // levels in the hierarchy (the last, solved exactly, is never smoothed)
  std::int64_t sy = 0, sz = 0;
  const std::uint8_t* type = nullptr;  // padded CellType
  std::int64_t at(int i, int j, int k) const { return (i + 1) + sy * (j + 1) + sz * (k + 1); }
};

// Per-cell relaxation factors of the red-black sweeps (a learned function of the cell flags,
// see learn/relaxnet). Computed once per matrix at setup.
class RelaxationModel {
 public:
  virtual ~RelaxationModel() = default;
  // Writes the factor of the interior sweeps and of the band sweeps at the padded index of
  // every fluid cell of `level` (other entries are uninitialised and ignored). Each factor must
  // lie in (0, 2):
  // a single-colour update then lowers the A-norm error for any such factors, and the mirrored
  // cycle stays symmetric positive definite (setup throws on a factor outside).
  virtual void factors(const MultigridLevelView& level, dcdm::span<float> interior, dcdm::span<float> band) const = 0;
  // A model whose interior factor is one value for every cell returns it; the cycle then asks
  // only for the band cells' factors (band_factors) and its interior sweeps need no per-cell
  // exceptions. The default (per-cell interior factors) returns nullopt.
  virtual std::optional<float> uniform_interior() const { return std::nullopt; }
  // The band factor of each listed fluid cell (padded indices) into out[q]. The default runs
  // factors() on the whole level.
  virtual void band_factors(const MultigridLevelView& level, dcdm::span<const std::int64_t> cells,
                            dcdm::span<float> out) const;
};

// How a weighted hierarchy (Domain::coefficients) coarsens its face weights; see
// src/precond/multigrid.cpp (coarsen_weights, and the iteration counts that chose the default).
enum class WeightCoarsening : std::uint8_t {
  OpenMean,      // (default) mean over the fine faces the fine operator uses; unit weights give the unit scheme
  Average,       // mean over all four fine faces, unused ones (next to solid) counting 0
  PathHarmonic,  // OpenMean of each fine face's row of links between the coarse centres in series
};

struct MultigridOptions {
  int pre_sweeps = 2;        // red-black sweeps over all cells (post = same, mirrored)
  int boundary_sweeps = 2;   // extra band sweeps before and after the interior sweeps
  int band_width = 2;        // band = fluid cells within this Chebyshev distance of non-fluid
  std::int64_t coarsest_cells = 4096;  // stop coarsening at or below this many cells
  // coarse_cycles > 0 (unit hierarchies): the coarsest level, where it has more than
  // direct_cells cells, is solved by that many V-cycles of its own (a stationary iteration on
  // its projected right-hand side) over coarser levels down to one of at most direct_cells
  // cells, which is factorised, instead of being factorised itself. The cycle stays symmetric
  // and positive definite; each coarse cycle divides its distance from the exact-solve cycle
  // by about 10 (3 cycles: 1e-4 to 1e-3 of z), and the set-up skips the Cholesky of a
  // 4096-cell level (30-45 ms on the 2-core test machine). 0: the exact solve (weighted
  // hierarchies always).
  int coarse_cycles = 0;
  std::int64_t direct_cells = 512;
  int max_levels = 20;
  bool neumann_interpolation = true;   // renormalise weights next to solid (else zero there)
  // Successive over-relaxation: every interior / band update x += omega (x_GS - x), omega in
  // (0, 2); 1 = plain Gauss-Seidel (McAdams et al.).
  double omega = 1.0;
  double band_omega = 1.0;
  bool single_precision = false;  // levels and sweeps in float (the coarsest solve stays double)
  std::shared_ptr<const RelaxationModel> relaxation;  // per-cell factors, replacing the two above
  WeightCoarsening weight_coarsening = WeightCoarsening::OpenMean;  // weighted domains only
  // Weighted domains: the prolongation weighs each coarse parent by its conductivity (mean face
  // weight), so a fine cell next to a jump takes the value of the better-connected side.
  bool weighted_interpolation = true;
  // Weighted domains: fluid cells whose couplings differ by more than this ratio (a coefficient
  // jump) join the band of extra sweeps like cells next to a wall; 0 = off.
  double interface_band_ratio = 4.0;
  // Each smoothing level's pre-smoother, residual and restriction run as one streaming pass
  // over its z-planes, and so do the prolongation and the post-smoother (a wavefront: every
  // stage two planes behind the one before; the finest level also reads r and writes z in
  // those passes). false: one pass over the level per stage. The two give the same z bit for
  // bit; the fused passes move about a fifth of the bytes (docs/perf-bandwidth.md).
  bool fused_passes = true;
};

class MultigridPreconditioner final : public Preconditioner {
 public:
  explicit MultigridPreconditioner(MultigridOptions options = {});
  ~MultigridPreconditioner() override;
  std::string name() const override { return "mgpcg"; }
  void setup(const LinearSystemView& system) override;  // needs system.domain
  std::int64_t size() const override;
  void apply(dcdm::span<const double> r, dcdm::span<double> z) const override;
  // The cycle's result written straight to float (exactly apply's values for the float cycle).
  void apply_to_single(dcdm::span<const double> r, dcdm::span<float> z) const override;
  bool native_single_output() const override { return true; }
  int levels() const;
  Dims level_dims(int level) const;
  const MultigridOptions& options() const { return options_; }

  // The hierarchy as built by setup, for a training path that reproduces the cycle exactly
  // (learn/relaxnet): per level the padded types, operator diagonal and scale, prolongation
  // normalisers (empty on the coarsest level) and band cells by colour.
  struct LevelData {
    Dims dims;
    std::int64_t sy = 0, sz = 0, padded = 0;
    double s = 1.0;  // off-diagonal magnitude
    std::vector<std::uint8_t> type;
    std::vector<double> diag, inv_w;
    std::vector<std::int64_t> band[2];
    std::int64_t at(int i, int j, int k) const { return (i + 1) + sy * (j + 1) + sz * (k + 1); }
  };
  std::vector<LevelData> hierarchy() const;
  // The coarsest level's exact (pseudo-inverse) solve on padded arrays of that level.
  void solve_coarsest(dcdm::span<const double> b, dcdm::span<double> x) const;

  struct Impl;

 private:
  MultigridOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dcdm
