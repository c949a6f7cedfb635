// RelaxNet's factors, generator and model file (no LibTorch). See dcdm/relaxnet.hpp.
#include "dcdm/relaxnet.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <random>
#include <vector>

#include "dcdm/error.hpp"
#include "weight_bias_model.hpp"

namespace dcdm::learn {
namespace {

using Spec = RelaxNetSpec;

// Factor of a score: 2 sigmoid(z), in (0, 2).
double factor_of(double z) { return 2.0 / (1.0 + std::exp(-z)); }

// The factors of a cell whose whole 3x3x3 neighbourhood is fluid (interior, band).
std::array<double, Spec::kOutputs> all_fluid_factors_of(const RelaxNetParameters& p) {
  std::array<double, Spec::kOutputs> out{};
  for (int c = 0; c < Spec::kOutputs; ++c) {
    double z = Spec::base_score(c) + p.bias[c];
    for (int t = 0; t < Spec::kTaps; ++t) z += p.weight[(c * Spec::kFlagChannels) * Spec::kTaps + t];
    out[c] = factor_of(z);
  }
  return out;
}

// Padded-index offsets of the 27 taps (dz, dy, dx; x fastest) on a level.
std::array<std::int64_t, Spec::kTaps> tap_offsets(const MultigridLevelView& level) {
  std::array<std::int64_t, Spec::kTaps> offset{};
  for (int t = 0; t < Spec::kTaps; ++t)
    offset[t] = (t % 3 - 1) + level.sy * ((t / 3) % 3 - 1) + level.sz * (t / 9 - 1);
  return offset;
}

// Output c's taps as a table by neighbour type (Solid 0, Fluid 1, Air 2; 0 for a solid
// neighbour, which adds nothing), so that a cell's sum takes no branches.
struct TapWeights {
  double start = 0.0;  // the base logit and the bias
  std::array<std::array<double, 4>, Spec::kTaps> by_type{};
};

TapWeights tap_weights(const RelaxNetParameters& p, int c) {
  static_assert(static_cast<int>(CellType::Solid) == 0 && static_cast<int>(CellType::Fluid) == 1 &&
                static_cast<int>(CellType::Air) == 2);
  TapWeights tw;
  const float* w = p.weight.data() + c * Spec::kFlagChannels * Spec::kTaps;
  tw.start = Spec::base_score(c) + p.bias[c];
  for (int t = 0; t < Spec::kTaps; ++t) tw.by_type[t] = {0.0, static_cast<double>(w[t]), static_cast<double>(w[Spec::kTaps + t]), 0.0};
  return tw;
}

// An output's factor at padded cell p: the base logit and bias, then the fluid / air taps in
// order (the order all_fluid_factors_of sums in, so an all-fluid neighbourhood gives its value;
// a solid neighbour's + 0 leaves the sum as it was).
float cell_factor(const TapWeights& tw, const std::uint8_t* type, std::int64_t cell,
                  const std::array<std::int64_t, Spec::kTaps>& offset) {
  double z = tw.start;
  for (int t = 0; t < Spec::kTaps; ++t) z += tw.by_type[t][type[cell + offset[t]] & 3];
  return static_cast<float>(factor_of(z));
}

}  // namespace

double RelaxNetSpec::base_score(int output) {
  const double w = output == 0 ? kBaseInterior : kBaseBand;
  return std::log(w / (2.0 - w));
}

MultigridOptions RelaxNetSpec::cycle_options() {
  MultigridOptions o;
  o.single_precision = true;
  o.omega = kBaseInterior;
  o.band_omega = kBaseBand;
  return o;
}

void RelaxNetFactors::factors(const MultigridLevelView& level, dcdm::span<float> interior,
                              dcdm::span<float> band) const {
  const auto offset = tap_offsets(level);
  const TapWeights taps[2] = {tap_weights(parameters_, 0), tap_weights(parameters_, 1)};
  const auto fluid = static_cast<std::uint8_t>(CellType::Fluid);
  // Cells whose whole neighbourhood is fluid (most of a large grid) share one pair of factors.
  const auto all_fluid = all_fluid_factors_of(parameters_);
  // relaxnet-v2: every cell takes the all-fluid interior factor; only the band's depends on
  // the flags.
  const bool per_cell_interior = parameters_.per_cell_interior;
  const auto interior_all_fluid = static_cast<float>(all_fluid[0]);
  // Whether a cell's whole 3x3x3 neighbourhood is fluid: per row, the AND over the nine
  // neighbouring rows (y, z) of "is fluid", then three consecutive entries of it (9 byte reads
  // a cell instead of 27, and no grid-sized scratch to page in).
  const std::uint8_t* type = level.type;
  const Dims d = level.dims;
  const std::int64_t row_length = level.sy;  // padded row: x = -1 .. nx + 1
#pragma omp parallel
  {
    std::vector<std::uint8_t> all_fluid_rows(static_cast<std::size_t>(row_length));
#pragma omp for schedule(static)
    for (int k = 0; k < d.nz; ++k)
      for (int j = 0; j < d.ny; ++j) {
        const std::int64_t row0 = level.at(-1, j, k);
        std::uint8_t* m = all_fluid_rows.data();
        for (std::int64_t x = 0; x < row_length; ++x) m[x] = 1;
        for (int dz = -1; dz <= 1; ++dz)
          for (int dy = -1; dy <= 1; ++dy) {
            const std::uint8_t* t = type + row0 + dy * level.sy + dz * level.sz;
            for (std::int64_t x = 0; x < row_length; ++x) m[x] &= static_cast<std::uint8_t>(t[x] == fluid);
          }
        for (int i = 0; i < d.nx; ++i) {
          const std::int64_t p = row0 + 1 + i;
          if (type[p] != fluid) continue;
          if (m[i] & m[i + 1] & m[i + 2]) {
            interior[p] = static_cast<float>(all_fluid[0]);
            band[p] = static_cast<float>(all_fluid[1]);
            continue;
          }
          interior[p] = per_cell_interior ? cell_factor(taps[0], type, p, offset) : interior_all_fluid;
          band[p] = cell_factor(taps[1], type, p, offset);
        }
      }
  }
}

std::optional<float> RelaxNetFactors::uniform_interior() const {
  if (parameters_.per_cell_interior) return std::nullopt;
  return static_cast<float>(all_fluid_factors_of(parameters_)[0]);
}

// The same sums as factors(), so the same floats.
void RelaxNetFactors::band_factors(const MultigridLevelView& level, dcdm::span<const std::int64_t> cells,
                                   dcdm::span<float> out) const {
  const auto offset = tap_offsets(level);
  const TapWeights taps = tap_weights(parameters_, 1);
  const auto n = static_cast<std::int64_t>(cells.size());
#pragma omp parallel for schedule(static) if (n >= 32768)
  for (std::int64_t q = 0; q < n; ++q)
    out[static_cast<std::size_t>(q)] = cell_factor(taps, level.type, cells[static_cast<std::size_t>(q)], offset);
}

RelaxNet RelaxNet::initial() {
  RelaxNet net;
  net.metadata_.architecture = kRelaxNetArchitecture;
  net.metadata_.variant = kRelaxNetVariant;
  net.metadata_.parameter_count = net.parameters_.count();
  return net;
}

RelaxNet RelaxNet::random(std::uint64_t seed, double scale) {
  RelaxNet net = initial();
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> n(0.0f, static_cast<float>(scale));
  for (auto& v : net.parameters_.weight) v = n(rng);
  for (auto& v : net.parameters_.bias) v = n(rng);
  return net;
}

// The model file (weight_bias_model.hpp): plain C++, like the rest of this file.
void RelaxNet::save(const std::filesystem::path& path) const {
  save_weight_bias_model(path, metadata_, kRelaxNetArchitecture,
                         parameters_.per_cell_interior ? kRelaxNetVariantV1 : kRelaxNetVariant,
                         {Spec::kOutputs, Spec::kFlagChannels, 3, 3, 3}, parameters_.weight, {Spec::kOutputs},
                         parameters_.bias);
}

RelaxNet RelaxNet::load(const std::filesystem::path& path) {
  RelaxNet net = initial();
  auto file = load_weight_bias_model(path, kRelaxNetArchitecture, {kRelaxNetVariant, kRelaxNetVariantV1},
                                     net.parameters_.count(), {Spec::kOutputs, Spec::kFlagChannels, 3, 3, 3},
                                     {Spec::kOutputs});
  net.metadata_ = file.metadata;
  net.parameters_.per_cell_interior = file.metadata.variant == kRelaxNetVariantV1;
  net.parameters_.weight = std::move(file.weight);
  net.parameters_.bias = std::move(file.bias);
  return net;
}

std::array<double, 2> RelaxNet::all_fluid_factors() const { return all_fluid_factors_of(parameters_); }

// Each tap is fluid, air or solid independently, so the extremes of the affine score are the
// sums of the per-tap extremes (a bound over every pattern, attained by some neighbourhood).
std::array<double, 4> RelaxNet::factor_range() const {
  std::array<double, 4> out{};
  for (int c = 0; c < Spec::kOutputs; ++c) {
    double lo = Spec::base_score(c) + parameters_.bias[c], hi = lo;
    for (int t = 0; t < Spec::kTaps; ++t) {
      const double fluid = parameters_.weight[(c * Spec::kFlagChannels) * Spec::kTaps + t];
      const double air = parameters_.weight[(c * Spec::kFlagChannels + 1) * Spec::kTaps + t];
      lo += std::min({0.0, fluid, air});
      hi += std::max({0.0, fluid, air});
    }
    out[2 * c] = factor_of(lo);
    out[2 * c + 1] = factor_of(hi);
  }
  if (!parameters_.per_cell_interior) out[0] = out[1] = all_fluid_factors_of(parameters_)[0];
  return out;
}

MultigridOptions RelaxNet::trained_cycle_options() const {
  MultigridOptions o = RelaxNetSpec::cycle_options();
  o.relaxation = std::make_shared<RelaxNetFactors>(parameters_);
  return o;
}

MultigridOptions RelaxNet::cycle_options() const {
  MultigridOptions o = trained_cycle_options();
  // Three cycles over two more levels instead of the factorisation of the coarsest level: the
  // same iterations, a shorter set-up (docs/perf-bandwidth.md, "Coarsest solve").
  o.coarse_cycles = 3;
  return o;
}

std::unique_ptr<MultigridPreconditioner> RelaxNet::make_generator(const LinearSystemView& system,
                                                                  std::int64_t coarsest_cells) const {
  MultigridOptions o = coarsest_cells > 0 ? trained_cycle_options() : cycle_options();
  if (coarsest_cells > 0) o.coarsest_cells = coarsest_cells;
  auto mg = std::make_unique<MultigridPreconditioner>(o);
  mg->setup(system);
  return mg;
}

}  // namespace dcdm::learn
