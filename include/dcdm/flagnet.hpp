#pragma once
// FlagNet: a flag-conditioned, linear-in-residual, multilevel direction generator (after Lan
// et al., "A Neural-preconditioned Poisson Solver for Mixed Dirichlet and Neumann Boundary
// Conditions", ICML 2024), built to cost about one multigrid V-cycle per application. Plain
// C++: no LibTorch here; loading and saving model files need none either
// (src/learn/flagnet.cpp), training does (src/learn/flagnet_torch.cpp, dcdm_learn).
//
// Levels. Level 0 is the domain; level l+1 halves every axis (ceil; children beyond the grid
// ignored) while the largest axis of level l is at least 8. Each level carries two flag
// channels per cell, the fluid and the air fraction of its fine cells (averages of the
// children's), and beyond the grid the outer face's type: air (0, 1) where every face the
// ghost lies beyond is Open, else solid (0, 0). Discrete type of a cell (as in MGPCG): Air if
// its air fraction > 0, else Fluid if its fluid fraction > 0, else Solid; mask = Fluid.
//
// Coefficients. Every level l uses parameter group g(l): 0 for the finest level, 2 for the
// coarsest, 1 for all levels in between (so the model applies to any grid size). At a fluid
// cell, the 136 coefficient channels are
//     c = base(flags in the 3x3x3 neighbourhood) + W_g * flags(3x3x3) + b_g
// (a Conv3d from 2 flag channels to 136): five 27-point stencils (taps ordered dz, dy, dx, x
// fastest, like a Conv3d kernel) -- pre-smoothers S1, S2, the operator A, post-smoothers T1,
// T2 -- and the mixing correction (channel 135). The fixed base is a damped-Jacobi V-cycle:
// A = the 7-point stencil on the level's discrete types (diagonal = number of non-solid face
// neighbours, -1 per fluid face neighbour), every smoother = omega / diagonal at the centre
// (0 where the diagonal is 0), mixing correction 0. So the zero-parameter model is a working
// multigrid and training learns corrections. The coefficients depend only on the flags:
// computed once per domain, with one shared stencil for cells whose neighbourhood is all
// fluid and a table of distinct patterns for the cells near non-fluid cells.
//
// Application z = V(0, r) (every product masked to the level's fluid cells, zero ghosts):
//   V(l, b), l not the coarsest:  x = S1 b;  x += S2 (b - A x);  b' = 4 R m (b - A x);
//                                 x += m P V(l+1, b');  x += T1 (b - A x);  x += T2 (b - A x)
//   V(L-1, b):                    x = C b;  x += T1 (b - A x);  x += T2 (b - A x)
// C = the pseudo-inverse of the coarsest level's base operator (at most 7^3 cells; exact,
// computed at setup), R = cell-centred trilinear restriction (weights (1,3,3,1)/8 per axis,
// applied after the same per-cell m as the prolongation: R m = (m P)^T / 8, as in MGPCG), P =
// trilinear prolongation (3/4, 1/4 per axis), m = m_base (1 + c_135) with m_base =
// 1 / P(non-solid indicator of the coarse level) (0 where that is 0): the Neumann-consistent
// renormalisation of MGPCG. The factor 4 maps the unit-spacing coarse stencil to the fine
// scale. The map is linear in r (not symmetric in general; DCDM does not need symmetry).
// Float32 throughout.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include "dcdm/span.hpp"
#include <string>
#include <vector>

#include "dcdm/grid.hpp"
#include "dcdm/learn.hpp"
#include "dcdm/linalg.hpp"

namespace dcdm::learn {

inline constexpr const char* kFlagNetArchitecture = "flagnet";
inline constexpr const char* kFlagNetVariant = "flagnet-v1";

struct FlagNetSpec {
  static constexpr int kGroups = 3;        // finest, intermediate, coarsest level
  static constexpr int kFlagChannels = 2;  // fluid fraction, air fraction
  static constexpr int kTaps = 27;
  static constexpr int kPreSmoothers = 2;
  static constexpr int kPostSmoothers = 2;
  static constexpr int kStencils = kPreSmoothers + 1 + kPostSmoothers;  // S1, S2, A, T1, T2
  static constexpr int kChannels = kStencils * kTaps + 1;  // + mixing correction
  static constexpr int kCoarsenDim = 8;  // a level whose axes are all smaller is the coarsest
  static constexpr float kOmega = 6.0f / 7.0f;
  // First channel of stencil s (0..kStencils-1) and of the operator / mixing correction.
  static constexpr int stencil_channel(int s) { return s * kTaps; }
  static constexpr int kOperatorChannel = kPreSmoothers * kTaps;
  static constexpr int kMixChannel = kStencils * kTaps;
  static constexpr int kWeightsPerGroup = kChannels * kFlagChannels * kTaps;
  // Number of levels for a grid.
  static int levels(Dims dims);
  // Parameter group of level l out of `levels`.
  static int group(int level, int levels);
};

// weight[((g * kChannels + c) * kFlagChannels + f) * kTaps + t], bias[g * kChannels + c].
struct FlagNetParameters {
  std::vector<float> weight = std::vector<float>(FlagNetSpec::kGroups * FlagNetSpec::kWeightsPerGroup, 0.0f);
  std::vector<float> bias = std::vector<float>(FlagNetSpec::kGroups * FlagNetSpec::kChannels, 0.0f);
  std::int64_t count() const { return static_cast<std::int64_t>(weight.size() + bias.size()); }
};

// The base coefficients (kStencils x 27 stencil channels) of a cell from the flag fractions
// of its 3x3x3 neighbourhood (tap order as above).
void flagnet_base_stencils(const float* fluid27, const float* air27, float* out);

// Flags of every level on padded grids (one ghost layer below, two above each axis;
// index (i+1) + px (j+1) + px py (k+1)). Shared by the kernels and the LibTorch forward.
struct FlagNetLevelFlags {
  Dims dims;
  int px = 0, py = 0, pz = 0;
  std::vector<float> fluid, air;   // padded fractions, ghosts = face type
  std::vector<std::uint8_t> type;  // padded discrete CellType
  std::vector<float> mask;         // padded, 1 on Fluid cells, 0 elsewhere (ghosts 0)
  std::vector<float> mix_base;     // padded m_base (empty on the coarsest level)
  std::int64_t at(int i, int j, int k) const {
    return (i + 1) + std::int64_t(px) * ((j + 1) + std::int64_t(py) * (k + 1));
  }
};
std::vector<FlagNetLevelFlags> flagnet_level_flags(const Domain& domain);

// The coarse solve C of a level: the pseudo-inverse of its base operator over its fluid cells
// (eigenvalues below 1e-9 of the largest dropped: one per singular component), row-major
// cells x cells, and the padded index of each cell.
struct FlagNetCoarseSolve {
  std::vector<std::int64_t> cells;
  std::vector<float> inverse;
};
FlagNetCoarseSolve flagnet_coarse_solve(const FlagNetLevelFlags& level);

// A direction generator for one domain (coefficients cached at construction).
class FlagNetGenerator final : public LinearOperator {
 public:
  FlagNetGenerator(const Domain& domain, const FlagNetParameters& parameters);
  ~FlagNetGenerator() override;
  std::int64_t size() const override;
  void apply(dcdm::span<const double> x, dcdm::span<double> y) const override;
  // The same map in float (no masking of the input beyond the fluid mask).
  void apply(dcdm::span<const float> x, dcdm::span<float> y) const;

  struct LevelInfo {
    Dims dims;
    std::int64_t fluid_cells = 0;
    std::int64_t special_cells = 0;  // fluid cells with their own (non-interior) stencils
    std::int64_t patterns = 0;       // distinct flag patterns among them
  };
  std::vector<LevelInfo> level_info() const;
  std::int64_t memory_bytes() const;  // coefficient tables, masks and work buffers

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A FlagNet model: parameters + the metadata of the model file.
class FlagNet {
 public:
  // Zero corrections: the damped-Jacobi V-cycle of the base coefficients.
  static FlagNet initial();
  // Corrections ~ N(0, scale^2) (seeded), for tests.
  static FlagNet random(std::uint64_t seed, double scale);
  // Model file (see learn.hpp) with architecture "flagnet": InputError naming the file on
  // anything else (a paper-CNN file included).
  static FlagNet load(const std::filesystem::path& path);
  void save(const std::filesystem::path& path) const;  // atomic

  const FlagNetParameters& parameters() const { return parameters_; }
  FlagNetParameters& parameters() { return parameters_; }
  const ModelMetadata& metadata() const { return metadata_; }
  ModelMetadata& metadata() { return metadata_; }

  std::unique_ptr<FlagNetGenerator> make_generator(const Domain& domain) const;

 private:
  FlagNetParameters parameters_;
  ModelMetadata metadata_;
};

// ---- LibTorch reference forward and training: in dcdm::learn (link dcdm::learn), not the core ----
// The dense LibTorch forward (the training path) on `batch` vectors of the domain's size
// (float32). Needs every axis divisible by 2^(levels-1). For the agreement test.
std::vector<float> flagnet_torch_forward(const FlagNetParameters& parameters, const Domain& domain,
                                         dcdm::span<const float> x, int batch);
// The training loss (FlagNetTrainOptions::loss_steps) of `batch` unit-norm right-hand sides,
// in float32 through LibTorch. For the agreement test with the DCDM solver.
double flagnet_training_loss(const FlagNetParameters& parameters, const Domain& domain,
                             dcdm::span<const float> b, int batch, int steps);

struct FlagNetTrainOptions {
  std::vector<std::filesystem::path> data;  // dataset folders (dcdm dataset), one matrix each
  int steps = 2000;              // total optimiser steps (a resumed run continues up to this)
  int batch = 8;                 // samples per step, all from one dataset
  double lr = 1e-3;
  double validation_fraction = 0.1;
  int validate_every = 100;      // steps between validations / checkpoints
  std::int64_t max_samples = 0;  // per dataset (0 = all)
  std::uint64_t seed = 0;
  // Loss: 1 = the reference one-step scale-invariant loss; S > 1 = the residual after S
  // unrolled DCDM iterations (k = 2), ||r_S||^(2/S) per unit-norm sample.
  int loss_steps = 1;
  std::filesystem::path init;    // start from this flagnet model's weights (empty = untrained)
  // Which weights the output file keeps: "loss" = the best validation loss; "iterations" = the
  // fewest DCDM iterations (k = 2, rtol 1e-6, the OpenMP kernels; the crossing of 1e-6
  // interpolated in log residual between iterations) summed over one solve per dataset, with
  // the first validation sample as the right-hand side (ties: lower loss). The
  // loss is a proxy: held-out iteration counts rose while it fell (models/README-flagnet.md).
  std::string select = "loss";
  // relaxnet: train (and select) through a cycle coarsened down to at most this many cells
  // instead of the deployed cycle's MultigridOptions::coarsest_cells (0). A 32^3 grid then has
  // as many levels as a 128^3 one in use: the factors see deep hierarchies at small-grid cost.
  std::int64_t cycle_coarsest = 0;
  double time_limit_s = 0;       // stop (resumably) at the next validation after this
  int threads = 0;
  bool resume = false;
  std::filesystem::path out;         // best-validation model
  std::filesystem::path checkpoint;  // default out + ".ckpt"
  std::string command;
};
struct FlagNetTrainResult {
  int steps = 0;
  double initial_val_loss = 0, best_val_loss = 0, last_train_loss = 0;
  int best_step = 0;
  // With select = "iterations": summed over the datasets, interpolated between iterations.
  double initial_val_iterations = 0, best_val_iterations = 0;
  std::string stop_reason;
  double seconds = 0;
};
FlagNetTrainResult train_flagnet(const FlagNetTrainOptions& options,
                                 const std::function<void(const std::string&)>& log = {});

}  // namespace dcdm::learn
