#pragma once
// RelaxNet: a learned relaxation multigrid generator. The MGPCG V-cycle (dcdm/precond.hpp:
// red-black Gauss-Seidel with extra boundary-band sweeps, Neumann-renormalised trilinear
// transfers, exact coarsest solve) run in float32, whose interior and band updates are
// over-relaxed by learned factors:
//
//   factor_c(cell) = 2 sigmoid(base_c + bias_c + sum_{f, t} W[c][f][t] flag_f(cell + offset_t))
//
// c = 0 interior sweeps, 1 band sweeps; f = 0 fluid, 1 air indicator of the level's discrete
// cell types in the 3x3x3 neighbourhood (taps dz, dy, dx, x fastest, like a Conv3d kernel;
// beyond the grid the outer face's type). One parameter set serves every smoothing level, so a
// file applies to any grid size. The fixed base is plain Gauss-Seidel (factor 1: the
// zero-parameter model is MGPCG's cycle in float), so everything beyond MGPCG, the global
// over-relaxation included, is learned. Every factor lies in (0, 2), so each single-colour
// update lowers the A-norm error and the mirrored cycle is a symmetric positive
// definite operator for any parameters: DCDM with it is PCG (no conjugacy lost at k = 2), and a
// trained file cannot make it diverge. Factors are computed once per matrix (setup).
//
// Variants. relaxnet-v2 (what training writes): the interior factor is that of an all-fluid
// neighbourhood for every cell, one learned value, so the interior sweeps run the plain
// kernel with no per-cell exceptions; the flags shape the band factors (the band holds every
// cell whose neighbourhood is not all fluid). relaxnet-v1 files (flag-dependent interior
// factors too, whose exceptions cost every sweep a pass over the cells near walls) still load
// and run as trained.
//
// Plain C++ here, the model file included (load / save need no LibTorch: src/learn/relaxnet.cpp);
// the LibTorch forward and the trainer are in src/learn/relaxnet_torch.cpp (dcdm_learn).
#include <array>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include "dcdm/span.hpp"
#include <vector>

#include "dcdm/flagnet.hpp"
#include "dcdm/learn.hpp"
#include "dcdm/precond.hpp"

namespace dcdm::learn {

inline constexpr const char* kRelaxNetArchitecture = "relaxnet";
inline constexpr const char* kRelaxNetVariant = "relaxnet-v2";
inline constexpr const char* kRelaxNetVariantV1 = "relaxnet-v1";  // still loads

struct RelaxNetSpec {
  static constexpr int kOutputs = 2;       // interior, band factor
  static constexpr int kFlagChannels = 2;  // fluid, air
  static constexpr int kTaps = 27;
  static constexpr double kBaseInterior = 1.0;
  static constexpr double kBaseBand = 1.0;
  static constexpr int kWeights = kOutputs * kFlagChannels * kTaps;
  // The cycle it runs: MGPCG's default sweeps and hierarchy, single precision.
  static MultigridOptions cycle_options();
  // The score of output c (0 interior, 1 band) before bias and taps: the logit of its base
  // factor, so that factor = 2 sigmoid(base_score + bias + taps).
  static double base_score(int output);
};

// weight[(c * kFlagChannels + f) * kTaps + t], bias[c].
// per_cell_interior: the relaxnet-v1 reading (interior factors per cell); false for v2.
struct RelaxNetParameters {
  std::vector<float> weight = std::vector<float>(RelaxNetSpec::kWeights, 0.0f);
  std::vector<float> bias = std::vector<float>(RelaxNetSpec::kOutputs, 0.0f);
  bool per_cell_interior = false;
  std::int64_t count() const { return static_cast<std::int64_t>(weight.size() + bias.size()); }
};

// The per-cell factors of a parameter set (a RelaxationModel for MultigridOptions).
class RelaxNetFactors final : public RelaxationModel {
 public:
  explicit RelaxNetFactors(RelaxNetParameters parameters) : parameters_(std::move(parameters)) {}
  void factors(const MultigridLevelView& level, dcdm::span<float> interior, dcdm::span<float> band) const override;
  // relaxnet-v2: the all-fluid interior factor; v1: per cell (nullopt).
  std::optional<float> uniform_interior() const override;
  void band_factors(const MultigridLevelView& level, dcdm::span<const std::int64_t> cells,
                    dcdm::span<float> out) const override;

 private:
  RelaxNetParameters parameters_;
};

class RelaxNet {
 public:
  static RelaxNet initial();  // zero parameters: MGPCG's Gauss-Seidel cycle in float
  static RelaxNet random(std::uint64_t seed, double scale);  // for tests
  // Model file with architecture "relaxnet": InputError naming the file on anything else.
  static RelaxNet load(const std::filesystem::path& path);
  void save(const std::filesystem::path& path) const;  // atomic

  const RelaxNetParameters& parameters() const { return parameters_; }
  RelaxNetParameters& parameters() { return parameters_; }
  const ModelMetadata& metadata() const { return metadata_; }
  ModelMetadata& metadata() { return metadata_; }

  // The factors of a cell whose 3x3x3 neighbourhood is all fluid (interior, band), and their
  // range over every flag pattern of a neighbourhood (min/max of each output), for `model info`.
  std::array<double, 2> all_fluid_factors() const;
  std::array<double, 4> factor_range() const;

  // The cycle's options with this model's factors, as deployed: the coarsest level solved by
  // three V-cycles over two more levels (MultigridOptions::coarse_cycles), which takes the
  // exact solve's iterations without its factorisation.
  MultigridOptions cycle_options() const;
  // The same cycle as trained: the coarsest level solved exactly (the LibTorch cycle's).
  MultigridOptions trained_cycle_options() const;
  // A direction generator (the set-up V-cycle) for one domain: the deployed cycle, or with
  // coarsest_cells > 0 the trained one with that coarsest level (training on deep
  // hierarchies; RelaxNetSpec::cycle_options().coarsest_cells gives the trained cycle itself).
  std::unique_ptr<MultigridPreconditioner> make_generator(const LinearSystemView& system,
                                                          std::int64_t coarsest_cells = 0) const;

 private:
  RelaxNetParameters parameters_;
  ModelMetadata metadata_;
};

// ---- LibTorch reference forward and training: in dcdm::learn (link dcdm::learn), not the core ----

// The LibTorch forward (the training path) on `batch` full-grid vectors, for the agreement test.
std::vector<float> relaxnet_torch_forward(const RelaxNetParameters& parameters, const Domain& domain,
                                          dcdm::span<const float> x, int batch);

// The training loss (FlagNetTrainOptions::loss_steps) of `batch` unit-norm full-grid
// right-hand sides, through LibTorch. For the agreement test with the DCDM solver.
double relaxnet_training_loss(const RelaxNetParameters& parameters, const Domain& domain, dcdm::span<const float> b,
                              int batch, int steps);

// Training: the options and result of FlagNet's trainer (dcdm/flagnet.hpp) mean the same here.
FlagNetTrainResult train_relaxnet(const FlagNetTrainOptions& options,
                                  const std::function<void(const std::string&)>& log = {});

}  // namespace dcdm::learn
