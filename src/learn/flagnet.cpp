// FlagNet levels, coefficients, the OpenMP application kernels and the model file (see
// dcdm/flagnet.hpp). No LibTorch here: this TU is the hot path.
//
// Storage per level: padded float arrays (one ghost layer below, two above each axis, all
// zero), so the 27-point stencils, the restriction and the prolongation are branch-free.
// A stencil is applied in two passes: the interior (all-fluid neighbourhood) stencil over
// every cell of a row (27 contiguous multiply-adds per tap, vectorised), then, for the cells
// near non-fluid cells only, the difference between their pattern's stencil and the interior
// one. Nothing is allocated per application.
#include "dcdm/flagnet.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <random>
#include <unordered_map>

#include <Eigen/Dense>
#include <fmt/format.h>

#include "dcdm/error.hpp"
#include "dcdm/grid_transfer.hpp"
#include "weight_bias_model.hpp"

namespace dcdm::learn {

namespace {

using Spec = FlagNetSpec;
constexpr std::int64_t kParallelCells = 32768;  // below this, loops stay on one thread
constexpr int kCentre = 13;
constexpr int kChunk = 256;  // row chunk of the interior stencil (a stack buffer)
constexpr int kFaceTaps[6] = {12, 14, 10, 16, 4, 22};  // x-, x+, y-, y+, z-, z+
constexpr int kA = Spec::kOperatorChannel, kMix = Spec::kMixChannel;
constexpr int kStencilChannels = Spec::kStencils * Spec::kTaps;

CellType discrete_type(float fluid, float air) {
  return air > 0.0f ? CellType::Air : fluid > 0.0f ? CellType::Fluid : CellType::Solid;
}

// Ghost (padded, logical coordinates outside the grid) is air when every face it lies beyond
// is Open.
bool ghost_is_air(const Domain& d, int i, int j, int k) {
  const Dims n = d.dims();
  bool open = true;
  if (i < 0) open &= d.face(Face::XMin) == FaceBoundary::Open;
  if (i >= n.nx) open &= d.face(Face::XMax) == FaceBoundary::Open;
  if (j < 0) open &= d.face(Face::YMin) == FaceBoundary::Open;
  if (j >= n.ny) open &= d.face(Face::YMax) == FaceBoundary::Open;
  if (k < 0) open &= d.face(Face::ZMin) == FaceBoundary::Open;
  if (k >= n.nz) open &= d.face(Face::ZMax) == FaceBoundary::Open;
  return open;
}

void init_level_flags(FlagNetLevelFlags& l, Dims d, const Domain& domain) {
  l.dims = d;
  l.px = d.nx + 3;
  l.py = d.ny + 3;
  l.pz = d.nz + 3;
  const std::int64_t n = std::int64_t(l.px) * l.py * l.pz;
  l.fluid.assign(n, 0.0f);
  l.air.assign(n, 0.0f);
  for (int k = -1; k <= d.nz + 1; ++k)
    for (int j = -1; j <= d.ny + 1; ++j)
      for (int i = -1; i <= d.nx + 1; ++i)
        if (!d.contains(i, j, k) && ghost_is_air(domain, i, j, k)) l.air[l.at(i, j, k)] = 1.0f;
}

void finish_level_flags(FlagNetLevelFlags& l) {
  const std::int64_t n = static_cast<std::int64_t>(l.fluid.size());
  l.type.assign(n, 0);
  l.mask.assign(n, 0.0f);
  for (std::int64_t p = 0; p < n; ++p) l.type[p] = static_cast<std::uint8_t>(discrete_type(l.fluid[p], l.air[p]));
  const Dims d = l.dims;
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j)
      for (int i = 0; i < d.nx; ++i) {
        const std::int64_t p = l.at(i, j, k);
        l.mask[p] = l.type[p] == static_cast<std::uint8_t>(CellType::Fluid) ? 1.0f : 0.0f;
      }
}

}  // namespace

int FlagNetSpec::levels(Dims d) {
  int levels = 1;
  while (std::max({d.nx, d.ny, d.nz}) >= kCoarsenDim) {
    d = {(d.nx + 1) / 2, (d.ny + 1) / 2, (d.nz + 1) / 2};
    ++levels;
  }
  return levels;
}

int FlagNetSpec::group(int level, int levels) {
  if (level == levels - 1) return 2;
  return level == 0 ? 0 : 1;
}

void flagnet_base_stencils(const float* fluid27, const float* air27, float* out) {
  std::fill(out, out + kStencilChannels, 0.0f);
  float diag = 0.0f;
  for (int t : kFaceTaps) {
    const CellType type = discrete_type(fluid27[t], air27[t]);
    if (type != CellType::Solid) diag += 1.0f;
    if (type == CellType::Fluid) out[kA + t] = -1.0f;
  }
  out[kA + kCentre] = diag;
  const float smoother = diag > 0.0f ? Spec::kOmega / diag : 0.0f;
  for (int s = 0; s < Spec::kStencils; ++s)
    if (Spec::stencil_channel(s) != kA) out[Spec::stencil_channel(s) + kCentre] = smoother;
}

FlagNetCoarseSolve flagnet_coarse_solve(const FlagNetLevelFlags& l) {
  FlagNetCoarseSolve out;
  const Dims d = l.dims;
  std::vector<std::int64_t> unknown(l.mask.size(), -1);
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j)
      for (int i = 0; i < d.nx; ++i)
        if (l.mask[l.at(i, j, k)] != 0.0f) {
          unknown[l.at(i, j, k)] = static_cast<std::int64_t>(out.cells.size());
          out.cells.push_back(l.at(i, j, k));
        }
  const std::int64_t m = static_cast<std::int64_t>(out.cells.size());
  if (m > 4096) throw Error(fmt::format("flagnet: coarsest level of {} fluid cells is too large", m));
  Eigen::MatrixXd a = Eigen::MatrixXd::Zero(m, m);
  const std::int64_t sy = l.px, sz = std::int64_t(l.px) * l.py;
  const std::int64_t face[6] = {-1, 1, -sy, sy, -sz, sz};
  for (std::int64_t u = 0; u < m; ++u)
    for (std::int64_t o : face) {
      const std::int64_t q = out.cells[u] + o;
      if (l.type[q] == static_cast<std::uint8_t>(CellType::Solid)) continue;
      a(u, u) += 1.0;
      if (unknown[q] >= 0) a(u, unknown[q]) = -1.0;
    }
  out.inverse.assign(static_cast<std::size_t>(m * m), 0.0f);
  if (m == 0) return out;
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(a);
  const Eigen::VectorXd& lambda = eig.eigenvalues();
  const double cut = 1e-9 * std::max(lambda.cwiseAbs().maxCoeff(), 1.0);
  Eigen::VectorXd inv = Eigen::VectorXd::Zero(m);
  for (std::int64_t e = 0; e < m; ++e)
    if (lambda[e] > cut) inv[e] = 1.0 / lambda[e];
  const Eigen::MatrixXd pinv = eig.eigenvectors() * inv.asDiagonal() * eig.eigenvectors().transpose();
  for (std::int64_t u = 0; u < m; ++u)
    for (std::int64_t v = 0; v < m; ++v) out.inverse[u * m + v] = static_cast<float>(pinv(u, v));
  return out;
}

std::vector<FlagNetLevelFlags> flagnet_level_flags(const Domain& domain) {
  const int count = Spec::levels(domain.dims());
  std::vector<FlagNetLevelFlags> levels(count);
  {
    FlagNetLevelFlags& l = levels[0];
    const Dims d = domain.dims();
    init_level_flags(l, d, domain);
    for (int k = 0; k < d.nz; ++k)
      for (int j = 0; j < d.ny; ++j)
        for (int i = 0; i < d.nx; ++i) {
          const CellType t = domain.cells(i, j, k);
          l.fluid[l.at(i, j, k)] = t == CellType::Fluid ? 1.0f : 0.0f;
          l.air[l.at(i, j, k)] = t == CellType::Air ? 1.0f : 0.0f;
        }
    finish_level_flags(l);
  }
  for (int li = 1; li < count; ++li) {
    const FlagNetLevelFlags& f = levels[li - 1];
    FlagNetLevelFlags& c = levels[li];
    const Dims fd = f.dims;
    const Dims cd{(fd.nx + 1) / 2, (fd.ny + 1) / 2, (fd.nz + 1) / 2};
    init_level_flags(c, cd, domain);
    for (int k = 0; k < cd.nz; ++k)
      for (int j = 0; j < cd.ny; ++j)
        for (int i = 0; i < cd.nx; ++i) {
          float fluid = 0.0f, air = 0.0f;
          int children = 0;
          for (int dk = 0; dk < 2; ++dk)
            for (int dj = 0; dj < 2; ++dj)
              for (int di = 0; di < 2; ++di) {
                const int a = 2 * i + di, b = 2 * j + dj, e = 2 * k + dk;
                if (!fd.contains(a, b, e)) continue;
                fluid += f.fluid[f.at(a, b, e)];
                air += f.air[f.at(a, b, e)];
                ++children;
              }
          c.fluid[c.at(i, j, k)] = fluid / static_cast<float>(children);
          c.air[c.at(i, j, k)] = air / static_cast<float>(children);
        }
    finish_level_flags(c);
  }
  // Mixing base: 1 / P(non-solid indicator of the coarse level), on fluid cells.
  for (int li = 0; li + 1 < count; ++li) {
    FlagNetLevelFlags& f = levels[li];
    const FlagNetLevelFlags& c = levels[li + 1];
    std::vector<float> non_solid(c.type.size(), 0.0f);
    for (int k = 0; k < c.dims.nz; ++k)
      for (int j = 0; j < c.dims.ny; ++j)
        for (int i = 0; i < c.dims.nx; ++i) {
          const std::int64_t p = c.at(i, j, k);
          non_solid[p] = c.type[p] != static_cast<std::uint8_t>(CellType::Solid) ? 1.0f : 0.0f;
        }
    f.mix_base.assign(f.fluid.size(), 0.0f);
    for (int k = 0; k < f.dims.nz; ++k)
      for (int j = 0; j < f.dims.ny; ++j)
        for (int i = 0; i < f.dims.nx; ++i) {
          const std::int64_t p = f.at(i, j, k);
          if (f.mask[p] == 0.0f) continue;
          float w = 0.0f;
          transfer::for_each_parent<float>(i, j, k, [&](float wt, int ci, int cj, int ck) {
            w += wt * non_solid[c.at(ci, cj, ck)];
          });
          f.mix_base[p] = w > 0.0f ? 1.0f / w : 0.0f;
        }
  }
  return levels;
}

// ---------------------------------------------------------------------------------------
// The generator

namespace {

struct Level {
  Dims dims;
  int px = 0, py = 0, pz = 0;
  std::int64_t sy = 0, sz = 0;
  int group = 0;
  bool coarsest = false;
  std::int64_t fluid_cells = 0;
  std::array<std::int64_t, Spec::kTaps> offset{};
  std::array<float, Spec::kChannels> interior{};  // coefficients of the all-fluid pattern
  std::vector<float> mask, mix;                   // padded
  std::vector<std::int64_t> special_cell;         // padded indices (fluid, non-interior)
  std::vector<std::int32_t> special_pattern;
  std::vector<float> delta;                       // patterns x 81: pattern - interior stencils
  std::int64_t patterns = 0;
  FlagNetCoarseSolve coarse;                      // coarsest level only
  mutable std::vector<float> b, x, r;             // padded work vectors

  std::int64_t at(int i, int j, int k) const { return (i + 1) + sy * (j + 1) + sz * (k + 1); }
  bool parallel() const { return dims.size() >= kParallelCells; }
  std::int64_t bytes() const {
    return static_cast<std::int64_t>((mask.size() + mix.size() + delta.size() + b.size() + x.size() + r.size()) *
                                         sizeof(float) +
                                     (special_cell.size() + coarse.cells.size()) * sizeof(std::int64_t) +
                                     coarse.inverse.size() * sizeof(float) +
                                     special_pattern.size() * sizeof(std::int32_t));
  }
};

using PatternKey = std::array<float, 2 * Spec::kTaps>;
struct PatternHash {
  std::size_t operator()(const PatternKey& key) const {
    std::uint64_t h = 1469598103934665603ull;
    const auto* bytes = reinterpret_cast<const unsigned char*>(key.data());
    for (std::size_t n = 0; n < sizeof(PatternKey); ++n) {
      h ^= bytes[n];
      h *= 1099511628211ull;
    }
    return static_cast<std::size_t>(h);
  }
};

// All coefficients of one flag pattern (fluid taps then air taps) in group g.
void pattern_coefficients(const FlagNetParameters& p, int g, const PatternKey& key, float* out) {
  flagnet_base_stencils(key.data(), key.data() + Spec::kTaps, out);
  out[kMix] = 0.0f;
  const float* w = p.weight.data() + std::int64_t(g) * Spec::kWeightsPerGroup;
  const float* bias = p.bias.data() + std::int64_t(g) * Spec::kChannels;
  for (int c = 0; c < Spec::kChannels; ++c) {
    float s = bias[c];
    const float* wc = w + std::int64_t(c) * Spec::kFlagChannels * Spec::kTaps;
    for (int t = 0; t < 2 * Spec::kTaps; ++t) s += wc[t] * key[t];
    out[c] += s;
  }
}

enum class Mode { Assign, Residual, Accumulate };  // out = Kin | out = b - Kin | out += Kin

}  // namespace

struct FlagNetGenerator::Impl {
  std::vector<Level> levels;
  std::int64_t n = 0;
  Dims dims;

  void stencil(const Level& l, int first, const float* in, float* out, Mode mode) const;
  void restrict_to(const Level& f, Level& c) const;
  void prolongate_add(const Level& c, Level& f) const;
  void vcycle(int li) const;
};

FlagNetGenerator::FlagNetGenerator(const Domain& domain, const FlagNetParameters& parameters)
    : impl_(std::make_unique<Impl>()) {
  if (parameters.weight.size() != std::size_t(Spec::kGroups * Spec::kWeightsPerGroup) ||
      parameters.bias.size() != std::size_t(Spec::kGroups * Spec::kChannels))
    throw InputError("flagnet: parameter arrays have the wrong size");
  impl_->dims = domain.dims();
  impl_->n = domain.dims().size();
  const auto flags = flagnet_level_flags(domain);
  const int count = static_cast<int>(flags.size());
  impl_->levels.resize(count);
  PatternKey interior_key;
  std::fill(interior_key.begin(), interior_key.begin() + Spec::kTaps, 1.0f);
  std::fill(interior_key.begin() + Spec::kTaps, interior_key.end(), 0.0f);
  for (int li = 0; li < count; ++li) {
    const FlagNetLevelFlags& fl = flags[li];
    Level& l = impl_->levels[li];
    l.dims = fl.dims;
    l.px = fl.px;
    l.py = fl.py;
    l.pz = fl.pz;
    l.sy = l.px;
    l.sz = std::int64_t(l.px) * l.py;
    l.group = Spec::group(li, count);
    l.coarsest = li + 1 == count;
    for (int t = 0; t < Spec::kTaps; ++t)
      l.offset[t] = (t % 3 - 1) + l.sy * ((t / 3) % 3 - 1) + l.sz * (t / 9 - 1);
    pattern_coefficients(parameters, l.group, interior_key, l.interior.data());
    l.mask = fl.mask;
    const std::int64_t np = static_cast<std::int64_t>(fl.mask.size());
    l.b.assign(np, 0.0f);
    l.x.assign(np, 0.0f);
    l.r.assign(np, 0.0f);
    if (!l.coarsest) l.mix.assign(np, 0.0f);
    std::unordered_map<PatternKey, std::int32_t, PatternHash> ids;
    std::array<float, Spec::kChannels> coef{};
    const Dims d = l.dims;
    for (int k = 0; k < d.nz; ++k)
      for (int j = 0; j < d.ny; ++j)
        for (int i = 0; i < d.nx; ++i) {
          const std::int64_t p = l.at(i, j, k);
          if (fl.mask[p] == 0.0f) continue;
          ++l.fluid_cells;
          PatternKey key;
          bool interior = true;
          for (int t = 0; t < Spec::kTaps; ++t) {
            key[t] = fl.fluid[p + l.offset[t]];
            key[Spec::kTaps + t] = fl.air[p + l.offset[t]];
            interior &= key[t] == 1.0f;
          }
          float mix_correction = l.interior[kMix];
          if (!interior) {
            auto [it, inserted] = ids.try_emplace(key, static_cast<std::int32_t>(ids.size()));
            if (inserted) {
              pattern_coefficients(parameters, l.group, key, coef.data());
              for (int c = 0; c < kStencilChannels; ++c) l.delta.push_back(coef[c] - l.interior[c]);
              l.delta.push_back(coef[kMix]);  // mixing correction itself (slot 81)
            }
            l.special_cell.push_back(p);
            l.special_pattern.push_back(it->second);
            mix_correction = l.delta[std::int64_t(it->second) * Spec::kChannels + kMix];
          }
          if (!l.coarsest) l.mix[p] = fl.mix_base[p] * (1.0f + mix_correction);
        }
    l.patterns = static_cast<std::int64_t>(ids.size());
    if (l.coarsest) l.coarse = flagnet_coarse_solve(fl);
  }
}

FlagNetGenerator::~FlagNetGenerator() = default;

std::int64_t FlagNetGenerator::size() const { return impl_->n; }

std::vector<FlagNetGenerator::LevelInfo> FlagNetGenerator::level_info() const {
  std::vector<LevelInfo> out;
  for (const Level& l : impl_->levels)
    out.push_back({l.dims, l.fluid_cells, static_cast<std::int64_t>(l.special_cell.size()), l.patterns});
  return out;
}

std::int64_t FlagNetGenerator::memory_bytes() const {
  std::int64_t bytes = 0;
  for (const Level& l : impl_->levels) bytes += l.bytes();
  return bytes;
}

// out = mask * K in (or b - mask * K in, or out += mask * K in), K = channels first..first+26.
void FlagNetGenerator::Impl::stencil(const Level& l, int first, const float* in, float* out, Mode mode) const {
  const Dims d = l.dims;
  const float* mask = l.mask.data();
  const float* b = l.b.data();
  const float* c = l.interior.data() + first;
  const auto& off = l.offset;
#pragma omp parallel for schedule(static) collapse(2) if (l.parallel())
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j) {
      const std::int64_t row0 = l.at(0, j, k);
      for (int i0 = 0; i0 < d.nx; i0 += kChunk) {
        const int len = std::min(kChunk, d.nx - i0);
        const std::int64_t row = row0 + i0;
        float a[kChunk] = {};
        for (int t = 0; t < Spec::kTaps; ++t) {
          const float w = c[t];
          if (w == 0.0f) continue;
          const float* src = in + row + off[t];
#pragma omp simd
          for (int i = 0; i < len; ++i) a[i] += w * src[i];
        }
        const float* m = mask + row;
        float* o = out + row;
        if (mode == Mode::Assign) {
#pragma omp simd
          for (int i = 0; i < len; ++i) o[i] = m[i] * a[i];
        } else if (mode == Mode::Residual) {
          const float* bb = b + row;
#pragma omp simd
          for (int i = 0; i < len; ++i) o[i] = bb[i] - m[i] * a[i];
        } else {
#pragma omp simd
          for (int i = 0; i < len; ++i) o[i] += m[i] * a[i];
        }
      }
    }
  // Cells near non-fluid cells: add their pattern's difference to the interior stencil.
  const std::int64_t m = static_cast<std::int64_t>(l.special_cell.size());
  const std::int64_t* cells = l.special_cell.data();
  const std::int32_t* pat = l.special_pattern.data();
  const float* delta = l.delta.data();
  const float sign = mode == Mode::Residual ? -1.0f : 1.0f;
#pragma omp parallel for schedule(static) if (m >= kParallelCells / 4)
  for (std::int64_t q = 0; q < m; ++q) {
    const std::int64_t p = cells[q];
    const float* dc = delta + std::int64_t(pat[q]) * Spec::kChannels + first;
    float s = 0.0f;
    for (int t = 0; t < Spec::kTaps; ++t) s += dc[t] * in[p + off[t]];
    out[p] += sign * s;
  }
}

// c.b = 4 * mask_c * R (m f.r)
void FlagNetGenerator::Impl::restrict_to(const Level& f, Level& c) const {
  const Dims cd = c.dims;
  const float* r = f.r.data();
  const float* mix = f.mix.data();  // the prolongation's normaliser: R = (m P)^T / 8
  float* bc = c.b.data();
  const float* mc = c.mask.data();
  const std::int64_t fsy = f.sy, fsz = f.sz;
#pragma omp parallel for schedule(static) collapse(2) if (c.parallel())
  for (int k = 0; k < cd.nz; ++k)
    for (int j = 0; j < cd.ny; ++j)
      for (int i = 0; i < cd.nx; ++i) {
        const std::int64_t pc = c.at(i, j, k);
        if (mc[pc] == 0.0f) {
          bc[pc] = 0.0f;
          continue;
        }
        const float sum = transfer::restriction_sum<float>(f.at(2 * i - 1, 2 * j - 1, 2 * k - 1), fsy, fsz,
                                                           [r, mix](std::int64_t at) { return mix[at] * r[at]; });
        bc[pc] = 0.5f * sum;  // 4 * (1/8) * sum
      }
}

// f.x += mask * mix * P c.x   (mix is 0 outside the fluid)
void FlagNetGenerator::Impl::prolongate_add(const Level& c, Level& f) const {
  const Dims d = f.dims;
  const float* xc = c.x.data();
  float* xf = f.x.data();
  const float* mix = f.mix.data();
#pragma omp parallel for schedule(static) collapse(2) if (f.parallel())
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j) {
      const transfer::ProlongationRows rows = transfer::prolongation_rows(c, j, k);
      const std::int64_t row = f.at(0, j, k);
      for (int i = 0; i < d.nx; ++i) xf[row + i] += mix[row + i] * transfer::prolongate_at(xc, rows, i);
    }
}

void FlagNetGenerator::Impl::vcycle(int li) const {
  Level& l = const_cast<Level&>(levels[li]);
  if (l.coarsest) {
    // x = C b (dense, at most 7^3 cells).
    const std::int64_t m = static_cast<std::int64_t>(l.coarse.cells.size());
    std::fill(l.x.begin(), l.x.end(), 0.0f);
    for (std::int64_t u = 0; u < m; ++u) {
      const float* row = l.coarse.inverse.data() + u * m;
      float s = 0.0f;
      for (std::int64_t v = 0; v < m; ++v) s += row[v] * l.b[l.coarse.cells[v]];
      l.x[l.coarse.cells[u]] = s;
    }
  } else {
    Level& c = const_cast<Level&>(levels[li + 1]);
    stencil(l, Spec::stencil_channel(0), l.b.data(), l.x.data(), Mode::Assign);
    for (int s = 1; s < Spec::kPreSmoothers; ++s) {
      stencil(l, kA, l.x.data(), l.r.data(), Mode::Residual);
      stencil(l, Spec::stencil_channel(s), l.r.data(), l.x.data(), Mode::Accumulate);
    }
    stencil(l, kA, l.x.data(), l.r.data(), Mode::Residual);
    restrict_to(l, c);
    vcycle(li + 1);
    prolongate_add(c, l);
  }
  for (int s = 0; s < Spec::kPostSmoothers; ++s) {
    stencil(l, kA, l.x.data(), l.r.data(), Mode::Residual);
    stencil(l, Spec::stencil_channel(Spec::kPreSmoothers + 1 + s), l.r.data(), l.x.data(), Mode::Accumulate);
  }
}

void FlagNetGenerator::apply(dcdm::span<const double> x, dcdm::span<double> y) const {
  if (static_cast<std::int64_t>(x.size()) != impl_->n || static_cast<std::int64_t>(y.size()) != impl_->n)
    throw Error(fmt::format("flagnet: vector of {} entries for a generator of {}", x.size(), impl_->n));
  const Level& top = impl_->levels.front();
  const Dims d = top.dims;
  float* b = const_cast<Level&>(top).b.data();
#pragma omp parallel for schedule(static) collapse(2) if (top.parallel())
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j) {
      const std::int64_t row = top.at(0, j, k), src = d.index(0, j, k);
      for (int i = 0; i < d.nx; ++i) b[row + i] = top.mask[row + i] != 0.0f ? static_cast<float>(x[src + i]) : 0.0f;
    }
  impl_->vcycle(0);
#pragma omp parallel for schedule(static) collapse(2) if (top.parallel())
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j) {
      const std::int64_t row = top.at(0, j, k), dst = d.index(0, j, k);
      for (int i = 0; i < d.nx; ++i) y[dst + i] = top.x[row + i];
    }
}

void FlagNetGenerator::apply(dcdm::span<const float> x, dcdm::span<float> y) const {
  if (static_cast<std::int64_t>(x.size()) != impl_->n || static_cast<std::int64_t>(y.size()) != impl_->n)
    throw Error(fmt::format("flagnet: vector of {} entries for a generator of {}", x.size(), impl_->n));
  const Level& top = impl_->levels.front();
  const Dims d = top.dims;
  float* b = const_cast<Level&>(top).b.data();
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j)
      for (int i = 0; i < d.nx; ++i) b[top.at(i, j, k)] = top.mask[top.at(i, j, k)] != 0.0f ? x[d.index(i, j, k)] : 0.0f;
  impl_->vcycle(0);
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j)
      for (int i = 0; i < d.nx; ++i) y[d.index(i, j, k)] = top.x[top.at(i, j, k)];
}

// ---------------------------------------------------------------------------------------

FlagNet FlagNet::initial() {
  FlagNet net;
  net.metadata_.architecture = kFlagNetArchitecture;
  net.metadata_.variant = kFlagNetVariant;
  net.metadata_.parameter_count = net.parameters_.count();
  return net;
}

FlagNet FlagNet::random(std::uint64_t seed, double scale) {
  FlagNet net = initial();
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, static_cast<float>(scale));
  for (auto& w : net.parameters_.weight) w = normal(rng);
  for (auto& b : net.parameters_.bias) b = normal(rng);
  return net;
}

// The model file (weight_bias_model.hpp).
void FlagNet::save(const std::filesystem::path& path) const {
  save_weight_bias_model(path, metadata_, kFlagNetArchitecture, kFlagNetVariant,
                         {Spec::kGroups, Spec::kChannels, Spec::kFlagChannels, 3, 3, 3}, parameters_.weight,
                         {Spec::kGroups, Spec::kChannels}, parameters_.bias);
}

FlagNet FlagNet::load(const std::filesystem::path& path) {
  FlagNet net = initial();
  auto file = load_weight_bias_model(path, kFlagNetArchitecture, {kFlagNetVariant}, net.parameters_.count(),
                                     {Spec::kGroups, Spec::kChannels, Spec::kFlagChannels, 3, 3, 3},
                                     {Spec::kGroups, Spec::kChannels});
  net.metadata_ = file.metadata;
  net.parameters_.weight = std::move(file.weight);
  net.parameters_.bias = std::move(file.bias);
  return net;
}

std::unique_ptr<FlagNetGenerator> FlagNet::make_generator(const Domain& domain) const {
  return std::make_unique<FlagNetGenerator>(domain, parameters_);
}

}  // namespace dcdm::learn
