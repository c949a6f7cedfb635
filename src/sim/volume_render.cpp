// Volume renderer of the smoke density: front-to-back ray marching with Beer-Lambert
// absorption and single scattering of one directional light. The light's transmittance is
// precomputed once per frame as a volume (a sweep of slices towards the light, each cell
// reading the slice before it), so a sample costs one trilinear look-up. Obstacles are the
// 0.5 level set of a smoothed occupancy of the Solid cells, Lambert-shaded with the normal from
// its gradient; empty bricks of the grid are skipped without changing where samples fall.
#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "dcdm/error.hpp"
#include "dcdm/render.hpp"

namespace dcdm::render {
namespace {

struct Vec3 {
  double x = 0, y = 0, z = 0;
};
Vec3 operator+(Vec3 a, Vec3 b) { return {a.x + b.x, a.y + b.y, a.z + b.z}; }
Vec3 operator-(Vec3 a, Vec3 b) { return {a.x - b.x, a.y - b.y, a.z - b.z}; }
Vec3 operator*(double s, Vec3 a) { return {s * a.x, s * a.y, s * a.z}; }
double dot(Vec3 a, Vec3 b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
Vec3 cross(Vec3 a, Vec3 b) { return {a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x}; }
Vec3 normalize(Vec3 a) {
  const double l = std::sqrt(dot(a, a));
  return l > 0 ? (1.0 / l) * a : a;
}

double srgb_to_linear(std::uint8_t v) { return std::pow(v / 255.0, 2.2); }

// One voxel of the padded working grid: density, light transmittance, smoothed occupancy,
// the liquid's level set (kFar without a liquid).
struct Voxel {
  float rho, tl, occ, phi;
};

constexpr float kFar = 1e6f;

constexpr int kBrick = 8;

// The working grid, padded by one cell on every side (edge values repeated), so that a trilinear
// look-up at any point of the box reads inside the array without clamping.
class Volume {
 public:
  Volume(const Field<float>& density, const Field<CellType>* cells, bool solids, const Field<float>* liquid)
      : d_(density.dims()), has_liquid_(liquid != nullptr) {
    px_ = d_.nx + 2, py_ = d_.ny + 2, pz_ = d_.nz + 2;
    v_.assign(std::size_t(px_) * py_ * pz_, Voxel{0.f, 1.f, 0.f, kFar});
    has_solids_ = false;
    std::vector<float> solid;
    if (cells && solids) {
      solid.assign(std::size_t(d_.size()), 0.f);
      bool any = false;
      const CellType* cell = cells->data();
#pragma omp parallel for schedule(static) reduction(|| : any)
      for (std::int64_t c = 0; c < d_.size(); ++c)
        if (cell[c] == CellType::Solid) solid[c] = 1.f, any = true;
      has_solids_ = any;
    }
    // Smoothed occupancy: one separable [1 2 1]/4 pass, so that the 0.5 level set follows
    // the voxels without their steps (more passes would erode thin parts such as ears).
    if (has_solids_) smooth(solid);
#pragma omp parallel for schedule(static)
    for (int k = -1; k <= d_.nz; ++k)
      for (int j = -1; j <= d_.ny; ++j)
        for (int i = -1; i <= d_.nx; ++i) {
          const int ci = std::clamp(i, 0, d_.nx - 1), cj = std::clamp(j, 0, d_.ny - 1), ck = std::clamp(k, 0, d_.nz - 1);
          const std::int64_t c = d_.index(ci, cj, ck);
          Voxel& v = at(i, j, k);
          v.rho = density[c];
          v.occ = has_solids_ ? solid[c] : 0.f;
          v.phi = liquid ? (*liquid)[c] : kFar;
        }
    build_bricks();
  }

  const Dims& dims() const { return d_; }
  bool has_solids() const { return has_solids_; }
  bool has_liquid() const { return has_liquid_; }
  Voxel& at(int i, int j, int k) { return v_[(std::size_t(k + 1) * py_ + (j + 1)) * px_ + (i + 1)]; }
  const Voxel& at(int i, int j, int k) const { return v_[(std::size_t(k + 1) * py_ + (j + 1)) * px_ + (i + 1)]; }

  // Trilinear look-up at world point (x, y, z) inside the box.
  Voxel sample(double x, double y, double z) const {
    // Padded index space: cell centre of cell i is at i + 0.5 in world, i + 1 in padded space.
    const double ux = std::clamp(x + 0.5, 0.0, px_ - 1.001), uy = std::clamp(y + 0.5, 0.0, py_ - 1.001),
                 uz = std::clamp(z + 0.5, 0.0, pz_ - 1.001);
    const int i = int(ux), j = int(uy), k = int(uz);
    const float fx = float(ux - i), fy = float(uy - j), fz = float(uz - k);
    const std::size_t sx = 1, sy = px_, sz = std::size_t(px_) * py_;
    const Voxel* p = &v_[(std::size_t(k) * py_ + j) * px_ + i];
    auto lerp = [](const Voxel& a, const Voxel& b, float t) {
      return Voxel{a.rho + (b.rho - a.rho) * t, a.tl + (b.tl - a.tl) * t, a.occ + (b.occ - a.occ) * t,
                   a.phi + (b.phi - a.phi) * t};
    };
    const Voxel x00 = lerp(p[0], p[sx], fx), x10 = lerp(p[sy], p[sy + sx], fx);
    const Voxel x01 = lerp(p[sz], p[sz + sx], fx), x11 = lerp(p[sz + sy], p[sz + sy + sx], fx);
    return lerp(lerp(x00, x10, fy), lerp(x01, x11, fy), fz);
  }

  // Whether the brick holding world point (x, y, z) has neither density nor solid within
  // reach of a trilinear look-up; then `exit` receives the brick's box.
  bool brick_empty(double x, double y, double z) const {
    const int bi = std::clamp(int(x) / kBrick, 0, bx_ - 1), bj = std::clamp(int(y) / kBrick, 0, by_ - 1),
              bk = std::clamp(int(z) / kBrick, 0, bz_ - 1);
    return !bricks_[(std::size_t(bk) * by_ + bj) * bx_ + bi];
  }

  // The light's transmittance at every cell centre: a sweep along the axis that the light
  // direction follows most, from the slice nearest the light; each cell reads the previous
  // slice, bilinearly, one slice towards the light. Solid cells are opaque.
  void compute_light(Vec3 to_light, double ext_per_cell) {
    const double l[3] = {to_light.x, to_light.y, to_light.z};
    int a = 0;
    for (int q = 1; q < 3; ++q)
      if (std::abs(l[q]) > std::abs(l[a])) a = q;
    const int n[3] = {d_.nx, d_.ny, d_.nz};
    const int b = (a + 1) % 3, c = (a + 2) % 3;
    const int dir = l[a] > 0 ? 1 : -1;            // slices towards the light: s + dir
    const double len = 1.0 / std::abs(l[a]);      // path length between slices
    const double ob = l[b] * len, oc = l[c] * len;  // lateral offset of the upstream point
    auto cell = [&](int sa, int sb, int sc) -> Voxel& {
      int idx[3];
      idx[a] = sa, idx[b] = sb, idx[c] = sc;
      return at(idx[0], idx[1], idx[2]);
    };
    const int first = dir > 0 ? n[a] - 1 : 0;
    for (int step = 0; step < n[a]; ++step) {
      const int s = first - dir * step;
      const int up = s + dir;
      const bool up_inside = up >= 0 && up < n[a];
#pragma omp parallel for schedule(static)
      for (int sc = 0; sc < n[c]; ++sc)
        for (int sb = 0; sb < n[b]; ++sb) {
          Voxel& v = cell(s, sb, sc);
          if (v.occ >= 0.5f || v.phi < 0.f) {  // obstacles and the liquid cast shadows
            v.tl = 0.f;
            continue;
          }
          float t_up = 1.f, rho_up = 0.f;
          double path = 0.5 * len;  // to the box's face on the light's side
          if (up_inside) {
            path = len;
            const double qb = sb + ob, qc = sc + oc;
            if (qb > -0.5 && qb < n[b] - 0.5 && qc > -0.5 && qc < n[c] - 0.5) {
              const double cb = std::clamp(qb, 0.0, n[b] - 1.0), cc = std::clamp(qc, 0.0, n[c] - 1.0);
              const int ib = std::min(int(cb), n[b] - 1), ic = std::min(int(cc), n[c] - 1);
              const int jb = std::min(ib + 1, n[b] - 1), jc = std::min(ic + 1, n[c] - 1);
              const float fb = float(cb - ib), fc = float(cc - ic);
              const Voxel &v00 = cell(up, ib, ic), &v10 = cell(up, jb, ic), &v01 = cell(up, ib, jc),
                          &v11 = cell(up, jb, jc);
              t_up = (v00.tl * (1 - fb) + v10.tl * fb) * (1 - fc) + (v01.tl * (1 - fb) + v11.tl * fb) * fc;
              rho_up = (v00.rho * (1 - fb) + v10.rho * fb) * (1 - fc) + (v01.rho * (1 - fb) + v11.rho * fb) * fc;
            } else {
              path = 0.5 * len;  // the light enters through a side face: about half a step away
            }
          }
          v.tl = t_up * std::exp(-float(ext_per_cell * path) * 0.5f * (v.rho + rho_up));
        }
    }
    // The padding repeats the edge cells.
#pragma omp parallel for schedule(static)
    for (int k = -1; k <= d_.nz; ++k)
      for (int j = -1; j <= d_.ny; ++j) {
        const bool inner_row = k >= 0 && j >= 0 && k < d_.nz && j < d_.ny;
        for (int i = -1; i <= d_.nx; i += inner_row ? d_.nx + 1 : 1)
          at(i, j, k).tl = at(std::clamp(i, 0, d_.nx - 1), std::clamp(j, 0, d_.ny - 1), std::clamp(k, 0, d_.nz - 1)).tl;
      }
  }

 private:
  void smooth(std::vector<float>& f) const {
    std::vector<float> tmp(f.size());
    const std::int64_t stride[3] = {1, d_.nx, std::int64_t(d_.nx) * d_.ny};
    const int n[3] = {d_.nx, d_.ny, d_.nz};
    for (int axis = 0; axis < 3; ++axis) {
#pragma omp parallel for schedule(static)
      for (int k = 0; k < d_.nz; ++k)
        for (int j = 0; j < d_.ny; ++j)
          for (int i = 0; i < d_.nx; ++i) {
            const int idx[3] = {i, j, k};
            const std::int64_t c = d_.index(i, j, k);
            const float lo = idx[axis] > 0 ? f[c - stride[axis]] : f[c];
            const float hi = idx[axis] < n[axis] - 1 ? f[c + stride[axis]] : f[c];
            tmp[c] = 0.25f * lo + 0.5f * f[c] + 0.25f * hi;
          }
      f.swap(tmp);
    }
  }

  void build_bricks() {
    bx_ = (d_.nx + kBrick - 1) / kBrick, by_ = (d_.ny + kBrick - 1) / kBrick, bz_ = (d_.nz + kBrick - 1) / kBrick;
    bricks_.assign(std::size_t(bx_) * by_ * bz_, 0);
#pragma omp parallel for schedule(static)
    for (int bk = 0; bk < bz_; ++bk)
      for (int bj = 0; bj < by_; ++bj)
        for (int bi = 0; bi < bx_; ++bi) {
          bool any = false;
          // Cells a trilinear look-up inside the brick can read: one more on every side.
          for (int k = bk * kBrick - 1; k <= std::min((bk + 1) * kBrick, d_.nz) && !any; ++k)
            for (int j = bj * kBrick - 1; j <= std::min((bj + 1) * kBrick, d_.ny) && !any; ++j)
              for (int i = bi * kBrick - 1; i <= std::min((bi + 1) * kBrick, d_.nx); ++i) {
                const Voxel& v = at(i, j, k);
                if (v.rho > 0.f || v.occ > 0.f || v.phi < 2.f) {
                  any = true;
                  break;
                }
              }
          bricks_[(std::size_t(bk) * by_ + bj) * bx_ + bi] = any ? 1 : 0;
        }
  }

  Dims d_;
  int px_ = 0, py_ = 0, pz_ = 0;
  std::vector<Voxel> v_;
  bool has_solids_ = false;
  bool has_liquid_ = false;
  int bx_ = 0, by_ = 0, bz_ = 0;
  std::vector<std::uint8_t> bricks_;
};

// Ray-box intersection: [t0, t1] inside the box (t0 > t1: a miss).
void intersect_box(Vec3 o, Vec3 d, Vec3 hi, double& t0, double& t1) {
  t0 = 0.0, t1 = std::numeric_limits<double>::infinity();
  const double ov[3] = {o.x, o.y, o.z}, dv[3] = {d.x, d.y, d.z}, hv[3] = {hi.x, hi.y, hi.z};
  for (int a = 0; a < 3; ++a) {
    if (std::abs(dv[a]) < 1e-15) {
      if (ov[a] < 0 || ov[a] > hv[a]) {
        t0 = 1, t1 = 0;
        return;
      }
      continue;
    }
    double ta = (0.0 - ov[a]) / dv[a], tb = (hv[a] - ov[a]) / dv[a];
    if (ta > tb) std::swap(ta, tb);
    t0 = std::max(t0, ta), t1 = std::min(t1, tb);
  }
}

// Parameter where the ray leaves the brick holding point p.
double brick_exit(Vec3 p, Vec3 d, double t) {
  const double pv[3] = {p.x, p.y, p.z}, dv[3] = {d.x, d.y, d.z};
  double best = std::numeric_limits<double>::infinity();
  for (int a = 0; a < 3; ++a) {
    if (std::abs(dv[a]) < 1e-15) continue;
    const double lo = std::floor(pv[a] / kBrick) * kBrick;
    const double edge = dv[a] > 0 ? lo + kBrick : lo;
    best = std::min(best, (edge - pv[a]) / dv[a]);
  }
  return t + std::max(best, 0.0);
}

}  // namespace

void check_inputs(const Field<float>& density, const Field<CellType>* cells, const VolumeRenderOptions& o,
                  const std::string& name, const Field<float>* liquid) {
  const Dims d = density.dims();
  if (d.nx < 1 || d.ny < 1 || d.nz < 1) throw InputError(fmt::format("{}: an empty density grid ({})", name, d.str()));
  if (cells && cells->dims() != d)
    throw InputError(fmt::format("{}: density is {} but the cell types are {}", name, d.str(), cells->dims().str()));
  if (liquid && liquid->dims() != d)
    throw InputError(fmt::format("{}: density is {} but the liquid level set is {}", name, d.str(), liquid->dims().str()));
  if (liquid)
    for (std::int64_t c = 0; c < d.size(); ++c)
      if (!std::isfinite((*liquid)[c])) {
        const int i = int(c % d.nx), j = int((c / d.nx) % d.ny), k = int(c / (std::int64_t(d.nx) * d.ny));
        throw InputError(fmt::format("{}: liquid level set {} at cell ({}, {}, {}) (must be finite)", name,
                                     (*liquid)[c], i, j, k));
      }
  for (std::int64_t c = 0; c < d.size(); ++c) {
    const float v = density[c];
    if (!std::isfinite(v) || v < 0.f) {
      const int i = int(c % d.nx), j = int((c / d.nx) % d.ny), k = int(c / (std::int64_t(d.nx) * d.ny));
      throw InputError(fmt::format("{}: density {} at cell ({}, {}, {}) (must be finite and >= 0)", name, v, i, j, k));
    }
  }
  if (o.width < 1 || o.width > 16384 || o.height < 1 || o.height > 16384)
    throw InputError(fmt::format("render: image size {}x{} (each side 1..16384)", o.width, o.height));
  if (!(o.step > 0.01 && o.step <= 4.0)) throw InputError(fmt::format("render: step {} (must be in (0.01, 4] cells)", o.step));
  if (!(o.fov_deg > 1.0 && o.fov_deg < 170.0))
    throw InputError(fmt::format("render: field of view {} degrees (must be in (1, 170))", o.fov_deg));
  if (!(std::isfinite(o.extinction) && o.extinction >= 0))
    throw InputError(fmt::format("render: extinction {} (must be finite and >= 0)", o.extinction));
  if (!(o.albedo >= 0 && o.albedo <= 1)) throw InputError(fmt::format("render: albedo {} (must be in [0, 1])", o.albedo));
  if (!(std::abs(o.anisotropy) < 1)) throw InputError(fmt::format("render: anisotropy {} (must be in (-1, 1))", o.anisotropy));
  if (!(std::isfinite(o.distance) && o.distance >= 0))
    throw InputError(fmt::format("render: camera distance {} (must be >= 0)", o.distance));
  const auto& l = o.light_direction;
  if (!(std::isfinite(l[0]) && std::isfinite(l[1]) && std::isfinite(l[2])) || l[0] * l[0] + l[1] * l[1] + l[2] * l[2] < 1e-12)
    throw InputError("render: the light direction must be a finite, non-zero vector");
}

std::vector<std::uint8_t> Image::to_rgb8() const {
  std::vector<std::uint8_t> out(rgb.size());
  for (std::size_t n = 0; n < rgb.size(); ++n) {
    const double v = std::clamp(double(rgb[n]), 0.0, 1.0);
    out[n] = static_cast<std::uint8_t>(std::lround(255.0 * std::pow(v, 1.0 / 2.2)));
  }
  return out;
}

Image render_volume(const Field<double>& density, const Field<CellType>* cells, const VolumeRenderOptions& o,
                    const std::string& name, const Field<float>* liquid) {
  Field<float> f(density.dims());
  for (std::int64_t c = 0; c < density.size(); ++c) {
    const double v = density[c];
    // NaN and negative values stay so for the check; others fit a float.
    f[c] = std::isfinite(v) ? static_cast<float>(std::min(v, 1e30)) : static_cast<float>(v);
  }
  return render_volume(f, cells, o, name, liquid);
}

Image render_volume(const Field<float>& density, const Field<CellType>* cells, const VolumeRenderOptions& o,
                    const std::string& name, const Field<float>* liquid) {
  check_inputs(density, cells, o, name, liquid);
  const Dims d = density.dims();
  const double longest = std::max({d.nx, d.ny, d.nz});
  const double ext_cell = o.extinction / longest;
  const Vec3 to_light = normalize({o.light_direction[0], o.light_direction[1], o.light_direction[2]});

  Volume vol(density, cells, o.solids, liquid);
  if (o.lighting) vol.compute_light(to_light, ext_cell);

  // Camera.
  const Vec3 box{double(d.nx), double(d.ny), double(d.nz)};
  const Vec3 centre = 0.5 * box;
  const double az = o.azimuth_deg * M_PI / 180.0, el = o.elevation_deg * M_PI / 180.0;
  const Vec3 back{std::sin(az) * std::cos(el), -std::cos(az) * std::cos(el), std::sin(el)};  // centre -> eye
  const double half = 0.5 * o.fov_deg * M_PI / 180.0;
  const Vec3 forward = -1.0 * back;
  Vec3 right = cross(forward, Vec3{0, 0, 1});
  if (dot(right, right) < 1e-12) right = Vec3{1, 0, 0};  // looking straight up or down
  right = normalize(right);
  const Vec3 up = normalize(cross(right, forward));
  const double tan_half = std::tan(half);
  const double side = std::min(o.width, o.height);
  const double sx = tan_half * o.width / side, sy = tan_half * o.height / side;
  double dist = o.distance;
  if (!(dist > 0)) {
    // The nearest camera that has all eight corners of the box in view, with a margin.
    const double margin = 0.92;
    for (int c = 0; c < 8; ++c) {
      const Vec3 corner{(c & 1 ? 0.5 : -0.5) * box.x, (c & 2 ? 0.5 : -0.5) * box.y, (c & 4 ? 0.5 : -0.5) * box.z};
      const double z = dot(corner, back);
      dist = std::max({dist, z + std::abs(dot(corner, right)) / (margin * sx),
                       z + std::abs(dot(corner, up)) / (margin * sy)});
    }
  }
  const Vec3 eye = centre + dist * back;

  const double bg_top[3] = {srgb_to_linear(o.background_top[0]), srgb_to_linear(o.background_top[1]),
                            srgb_to_linear(o.background_top[2])};
  const double bg_bottom[3] = {srgb_to_linear(o.background_bottom[0]), srgb_to_linear(o.background_bottom[1]),
                               srgb_to_linear(o.background_bottom[2])};
  const double g = o.anisotropy;
  const double h = o.step;
  const double tile = std::max(2.0, std::round(longest / 8.0));

  Image img;
  img.width = o.width, img.height = o.height;
  img.rgb.assign(std::size_t(o.width) * o.height * 3, 0.f);
  img.transmittance.assign(std::size_t(o.width) * o.height, 1.f);

  // Light arriving at point p (direct, shadowed by the volume, plus the sky).
  auto lambert = [&](Vec3 n, float tl, const double albedo[3], double out[3]) {
    const double direct = o.lighting ? std::max(0.0, dot(n, to_light)) * tl : 0.0;
    const double sky = 0.6 + 0.4 * n.z;  // more sky from above
    for (int q = 0; q < 3; ++q) out[q] = albedo[q] * (o.light_colour[q] * direct + o.ambient_colour[q] * 2.0 * sky);
  };

  // One ray through image point (x, y) (pixel units, pixel centres at +0.5): its colour and
  // the volume's transmittance; returns what the ray ends on (0 background, 1 and 3 the light
  // and dark floor tiles, 2 solid, 4 liquid).
  auto trace = [&](double fx, double fy, double out[3], double& T) -> int {
    const double vy = (1.0 - 2.0 * fy / o.height) * sy;
    const double wy = o.height > 1 ? std::clamp((fy - 0.5) / (o.height - 1), 0.0, 1.0) : 0.0;
    double bg[3];
    for (int q = 0; q < 3; ++q) bg[q] = bg_top[q] + (bg_bottom[q] - bg_top[q]) * wy;
    if (o.background_top == o.background_bottom)
      for (int q = 0; q < 3; ++q) bg[q] = bg_top[q];
    int kind = 0;
    {
      const double vx = (2.0 * fx / o.width - 1.0) * sx;
      const Vec3 dir = normalize(forward + vx * right + vy * up);
      double t0, t1;
      intersect_box(eye, dir, box, t0, t1);
      double col[3] = {0, 0, 0};
      T = 1.0;
      double behind[3] = {bg[0], bg[1], bg[2]};
      if (t0 < t1) {
        const double cos_theta = dot(to_light, dir);
        const double phase = (1 - g * g) / std::pow(1 + g * g - 2 * g * cos_theta, 1.5);  // x 4 pi: isotropic = 1
        double source[3];
        for (int q = 0; q < 3; ++q) source[q] = o.albedo * o.light_colour[q] * phase;
        const double amb_source[3] = {o.albedo * o.ambient_colour[0], o.albedo * o.ambient_colour[1],
                                      o.albedo * o.ambient_colour[2]};
        bool hit_solid = false;
        Vec3 prev = eye + t0 * dir;
        long m = 0;
        const long m_end = long(std::ceil((t1 - t0) / h));
        while (m < m_end) {
          const double t = t0 + (m + 0.5) * h;
          const Vec3 p = eye + t * dir;
          if (vol.brick_empty(p.x, p.y, p.z)) {
            const double te = brick_exit(p, dir, t);
            const long next = long(std::ceil((te - t0) / h - 0.5));
            m = std::max(m + 1, next);
            prev = p;
            continue;
          }
          const Voxel s = vol.sample(p.x, p.y, p.z);
          if (s.occ >= 0.5f) {
            // Refine the crossing of the 0.5 level set between the previous sample and this one.
            Vec3 a = prev, b = p;
            for (int it = 0; it < 8; ++it) {
              const Vec3 mid = 0.5 * (a + b);
              if (vol.sample(mid.x, mid.y, mid.z).occ >= 0.5f) b = mid;
              else a = mid;
            }
            const Vec3 hp = b;
            const double e = 1.5;  // wide differences: smooth normals
            auto occ = [&](Vec3 q) {
              q.x = std::clamp(q.x, 0.0, box.x), q.y = std::clamp(q.y, 0.0, box.y), q.z = std::clamp(q.z, 0.0, box.z);
              return double(vol.sample(q.x, q.y, q.z).occ);
            };
            Vec3 grad{occ(hp + Vec3{e, 0, 0}) - occ(hp - Vec3{e, 0, 0}), occ(hp + Vec3{0, e, 0}) - occ(hp - Vec3{0, e, 0}),
                      occ(hp + Vec3{0, 0, e}) - occ(hp - Vec3{0, 0, e})};
            Vec3 n = normalize(-1.0 * grad);
            if (dot(n, n) < 0.5) n = -1.0 * dir;
            if (dot(n, dir) > 0) n = -1.0 * n;
            // Light at the surface: read the transmittance a cell and a half outside it.
            Vec3 q = hp + 1.5 * n;
            q.x = std::clamp(q.x, 0.0, box.x), q.y = std::clamp(q.y, 0.0, box.y), q.z = std::clamp(q.z, 0.0, box.z);
            const float tl = o.lighting ? vol.sample(q.x, q.y, q.z).tl : 1.f;
            const double alb[3] = {o.solid_colour[0], o.solid_colour[1], o.solid_colour[2]};
            lambert(n, tl, alb, behind);
            hit_solid = true;
            kind = 2;
            break;
          }
          if (s.phi <= 0.f) {
            // The liquid's surface: refine phi's zero crossing, normal = grad phi.
            Vec3 a = prev, b = p;
            for (int it = 0; it < 10; ++it) {
              const Vec3 mid = 0.5 * (a + b);
              if (vol.sample(mid.x, mid.y, mid.z).phi <= 0.f) b = mid;
              else a = mid;
            }
            const Vec3 hp = b;
            const double e = 0.75;
            auto phi = [&](Vec3 q) {
              q.x = std::clamp(q.x, 0.0, box.x), q.y = std::clamp(q.y, 0.0, box.y), q.z = std::clamp(q.z, 0.0, box.z);
              return double(vol.sample(q.x, q.y, q.z).phi);
            };
            Vec3 n = normalize(Vec3{phi(hp + Vec3{e, 0, 0}) - phi(hp - Vec3{e, 0, 0}),
                                    phi(hp + Vec3{0, e, 0}) - phi(hp - Vec3{0, e, 0}),
                                    phi(hp + Vec3{0, 0, e}) - phi(hp - Vec3{0, 0, e})});
            if (dot(n, n) < 0.5) n = -1.0 * dir;
            if (dot(n, dir) > 0) n = -1.0 * n;
            Vec3 q = hp + 1.5 * n;
            q.x = std::clamp(q.x, 0.0, box.x), q.y = std::clamp(q.y, 0.0, box.y), q.z = std::clamp(q.z, 0.0, box.z);
            const float tl = o.lighting ? vol.sample(q.x, q.y, q.z).tl : 1.f;
            double diffuse[3];
            lambert(n, tl, o.liquid_colour.data(), diffuse);
            // Water: a Schlick-Fresnel mirror of the sky above the diffuse body colour, and the
            // light's highlight (Blinn-Phong).
            const double cos_v = std::clamp(-dot(n, dir), 0.0, 1.0);
            const double fresnel = 0.02 + 0.98 * std::pow(1.0 - cos_v, 5.0);
            const Vec3 half_vec = normalize(to_light - 1.0 * dir);
            const double highlight =
                o.lighting ? o.liquid_specular * std::pow(std::max(0.0, dot(n, half_vec)), 80.0) * tl : 0.0;
            for (int c = 0; c < 3; ++c)
              behind[c] = (1.0 - fresnel) * diffuse[c] + fresnel * bg_top[c] * 1.5 + highlight * o.light_colour[c];
            hit_solid = true;
            kind = 4;
            break;
          }
          if (s.rho > 0.f) {
            const double seg = std::min(h, t1 - (t0 + m * h));
            const double alpha = 1.0 - std::exp(-ext_cell * s.rho * seg);
            if (o.lighting) {
              const double w = T * alpha;
              for (int q = 0; q < 3; ++q) col[q] += w * (source[q] * s.tl + amb_source[q]);
            }
            T *= 1.0 - alpha;
            if (T < 1e-4) break;
          }
          prev = p;
          ++m;
        }
        if (!hit_solid && o.floor && T >= 1e-4) {
          // The ray leaves through the bottom face: the floor, with the shadows of the light.
          const Vec3 e = eye + t1 * dir;
          if (e.z < 1e-6 * box.z + 1e-9 && dir.z < 0) {
            const bool dark = (int(std::floor(e.x / tile)) + int(std::floor(e.y / tile))) % 2 != 0;
            const double a = dark ? 0.22 : 0.30;
            const double alb[3] = {a, a, a * 1.02};
            const float tl = o.lighting ? vol.sample(e.x, e.y, 0.5).tl : 1.f;
            lambert(Vec3{0, 0, 1}, tl, alb, behind);
            kind = dark ? 3 : 1;  // the tiles' edges count as outlines too
          }
        }
      }
      for (int q = 0; q < 3; ++q) out[q] = col[q] + T * behind[q];
    }
    return kind;
  };

  // One ray per pixel, then four more on the pixels where a surface's outline passes (the
  // kind of what the ray ends on differs from a neighbour's): anti-aliased edges of obstacles
  // and floor at little cost, the soft smoke needs none.
  std::vector<std::uint8_t> kinds(std::size_t(o.width) * o.height, 0);
#pragma omp parallel for schedule(dynamic, 4)
  for (int py = 0; py < o.height; ++py)
    for (int px = 0; px < o.width; ++px) {
      const std::size_t pix = std::size_t(py) * o.width + px;
      double c[3], T;
      kinds[pix] = std::uint8_t(trace(px + 0.5, py + 0.5, c, T));
      for (int q = 0; q < 3; ++q) img.rgb[pix * 3 + q] = float(c[q]);
      img.transmittance[pix] = float(T);
    }
#pragma omp parallel for schedule(dynamic, 4)
  for (int py = 0; py < o.height; ++py)
    for (int px = 0; px < o.width; ++px) {
      const std::size_t pix = std::size_t(py) * o.width + px;
      const std::uint8_t k = kinds[pix];
      const bool edge = (px > 0 && kinds[pix - 1] != k) || (px + 1 < o.width && kinds[pix + 1] != k) ||
                        (py > 0 && kinds[pix - o.width] != k) || (py + 1 < o.height && kinds[pix + o.width] != k);
      if (!edge) continue;
      double sum[3] = {0, 0, 0}, sum_t = 0;
      for (const auto& [dx, dy] : {std::pair{0.25, 0.25}, {0.75, 0.25}, {0.25, 0.75}, {0.75, 0.75}}) {
        double c[3], T;
        trace(px + dx, py + dy, c, T);
        for (int q = 0; q < 3; ++q) sum[q] += 0.25 * c[q];
        sum_t += 0.25 * T;
      }
      for (int q = 0; q < 3; ++q) img.rgb[pix * 3 + q] = float(sum[q]);
      img.transmittance[pix] = float(sum_t);
    }
  return img;
}

}  // namespace dcdm::render
