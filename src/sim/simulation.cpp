// The smoke simulation: one step per frame, projection through an IterativeSolver,
// checkpoints.
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "dcdm/error.hpp"
#include "dcdm/io.hpp"
#include "dcdm/poisson.hpp"
#include "dcdm/sim.hpp"
#include "detail.hpp"
#include "../learn/weights_archive.hpp"  // learn::crc32

namespace dcdm::sim {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

// What the solver was set up with; it must stay alive while the solver may use it.
struct SmokeSimulation::PressureSystem {
  Domain domain;
  std::unique_ptr<PoissonStencil> op;
  CsrMatrix matrix;
  bool has_matrix = false;
  std::unique_ptr<RangeProjector> projector;
  LinearSystemView view;
  bool set_up = false;
};

SmokeSimulation::SmokeSimulation(SimConfig config, IterativeSolver& solver)
    : config_(std::move(config)), solver_(solver) {
  const Dims d = config_.dims;
  if (d.nx < 2 || d.ny < 2 || d.nz < 2)
    throw InputError(fmt::format("simulation: grid {} is too small", d.str()));
  if (!(config_.dt > 0.0) || !std::isfinite(config_.dt))
    throw InputError(fmt::format("simulation: time step {} must be positive", config_.dt));
  if (config_.static_solid.size() != 0 && !(config_.static_solid.dims() == d))
    throw InputError("simulation: static obstacle mask has other dimensions than the grid");
  vel_ = MacVelocity(d);
  scratch_ = MacVelocity(d);
  density_ = Field<double>(d, 0.0);
  temperature_ = Field<double>(d, config_.ambient_temperature);
  pressure_ = Field<double>(d, 0.0);
  scratch_density_ = Field<double>(d, 0.0);
  scratch_temperature_ = Field<double>(d, 0.0);
  for (auto& f : solid_velocity_) f = Field<double>(d, 0.0);
  domain_ = Domain(d, CellType::Fluid);
  update_obstacles(0.0);
}

SmokeSimulation::~SmokeSimulation() = default;

const Domain& SmokeSimulation::domain() const {
  if (!system_) throw Error("simulation: no pressure system yet (call step() first)");
  return system_->domain;
}

const FluidComponents& SmokeSimulation::components() const {
  if (!system_) throw Error("simulation: no pressure system yet (call step() first)");
  return system_->projector->components();
}

const CsrMatrix& SmokeSimulation::matrix() {
  if (!system_) throw Error("simulation: no pressure system yet (call step() first)");
  if (!system_->has_matrix) {
    system_->matrix = assemble_full_grid(system_->domain);
    system_->has_matrix = true;
  }
  return system_->matrix;
}

void SmokeSimulation::update_obstacles(double t) {
  const Dims d = config_.dims;
  const bool parallel = d.size() >= detail::kParallelCells;
  domain_.faces = config_.faces;
  const bool has_static = config_.static_solid.size() != 0;
  std::vector<Vec3> centres, velocities;
  for (const auto& s : config_.spheres) {
    centres.push_back(s.centre_at(t));
    velocities.push_back(s.velocity_at(t));
  }
#pragma omp parallel for schedule(static) if (parallel)
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j)
      for (int i = 0; i < d.nx; ++i) {
        CellType type = CellType::Fluid;
        Vec3 sv{};
        if (has_static && config_.static_solid(i, j, k)) type = CellType::Solid;
        const Vec3 x{i + 0.5, j + 0.5, k + 0.5};
        for (std::size_t s = 0; s < centres.size(); ++s) {
          const Vec3 r = x - centres[s];
          const double rad = config_.spheres[s].radius;
          if (r.x * r.x + r.y * r.y + r.z * r.z <= rad * rad) {
            type = CellType::Solid;
            sv = velocities[s];
          }
        }
        domain_.cells(i, j, k) = type;
        for (int a = 0; a < 3; ++a) solid_velocity_[a](i, j, k) = sv[a];
        if (type == CellType::Solid) {  // no smoke inside solids
          density_(i, j, k) = 0.0;
          temperature_(i, j, k) = config_.ambient_temperature;
        }
      }
}

void SmokeSimulation::apply_solid_velocities(MacVelocity& vel) const {
  const Dims d = config_.dims;
  const bool parallel = d.size() >= detail::kParallelCells;
  for (int axis = 0; axis < 3; ++axis) {
    Field<double>& comp = vel.component(axis);
    const Dims fd = comp.dims();
    const Face low_face = static_cast<Face>(2 * axis), high_face = static_cast<Face>(2 * axis + 1);
#pragma omp parallel for schedule(static) if (parallel)
    for (int k = 0; k < fd.nz; ++k)
      for (int j = 0; j < fd.ny; ++j)
        for (int i = 0; i < fd.nx; ++i) {
          const int li = i - (axis == 0), lj = j - (axis == 1), lk = k - (axis == 2);
          const bool left_in = d.contains(li, lj, lk), right_in = d.contains(i, j, k);
          const CellType tl = cell_type_at(domain_, li, lj, lk);
          const CellType tr = cell_type_at(domain_, i, j, k);
          if (tl != CellType::Solid && tr != CellType::Solid) continue;
          auto solid_normal_velocity = [&](bool inside, int a, int b, int c, Face outer) {
            return inside ? solid_velocity_[axis](a, b, c)
                          : config_.wall_velocity[static_cast<int>(outer)][axis];
          };
          double value;
          if (tl == CellType::Solid && tr == CellType::Solid)
            value = 0.5 * (solid_normal_velocity(left_in, li, lj, lk, low_face) +
                           solid_normal_velocity(right_in, i, j, k, high_face));
          else if (tl == CellType::Solid)
            value = solid_normal_velocity(left_in, li, lj, lk, low_face);
          else
            value = solid_normal_velocity(right_in, i, j, k, high_face);
          comp(i, j, k) = value;
        }
  }
}

void SmokeSimulation::rebuild_pressure_system() {
  auto sys = std::make_unique<PressureSystem>();
  sys->domain = domain_;
  sys->op = std::make_unique<PoissonStencil>(sys->domain);
  if (config_.assemble_matrix) {
    sys->matrix = assemble_full_grid(sys->domain);
    sys->has_matrix = true;
  }
  sys->projector = std::make_unique<RangeProjector>(sys->domain);
  sys->view.op = sys->op.get();
  sys->view.matrix = sys->has_matrix ? &sys->matrix : nullptr;
  sys->view.domain = &sys->domain;
  if (sys->projector->singular()) sys->view.project_range = sys->projector->as_function();
  system_ = std::move(sys);
}

void SmokeSimulation::project(MacVelocity& vel, FrameStats& st) {
  const auto t0 = Clock::now();
  const bool same_layout = system_ && system_->domain.faces == domain_.faces &&
                           system_->domain.cells.vector() == domain_.cells.vector();
  if (!same_layout) rebuild_pressure_system();
  st.solver_reused = same_layout && system_->set_up;
  st.assemble_seconds = seconds_since(t0);
  const Domain& dom = system_->domain;
  st.fluid_cells = dom.count(CellType::Fluid);

  // b = -div u*.
  Field<double> div;
  divergence(vel, dom, div);
  st.max_div_before = norm_inf(div.span());
  rhs_.resize(div.vector().size());
  for (std::size_t c = 0; c < rhs_.size(); ++c) rhs_[c] = -div[c];
  if (system_->projector->singular()) {
    std::vector<double> before = rhs_;
    (*system_->projector)(rhs_);
    double shift = 0.0;
    for (std::size_t c = 0; c < rhs_.size(); ++c) shift = std::max(shift, std::abs(before[c] - rhs_[c]));
    st.compatibility_shift = shift;
  }
  st.rhs_norm = norm2(rhs_);

  const auto t1 = Clock::now();
  if (!system_->set_up) {
    solver_.setup(system_->view);
    system_->set_up = true;
  }
  st.setup_seconds = seconds_since(t1);
  SolveOptions options = config_.solve;
  options.use_initial_guess = config_.warm_start;
  if (!config_.warm_start) pressure_.fill(0.0);
  const auto t2 = Clock::now();
  st.solve = solver_.solve(rhs_, pressure_.span(), options);
  st.solve_seconds = seconds_since(t2);
  if (st.solve.reason == SolveReason::NaN || count_non_finite(pressure_.span()) > 0)
    throw Error(fmt::format("frame {}: pressure solve failed ({}{}{})", st.frame,
                            to_string(st.solve.reason), st.solve.detail.empty() ? "" : ": ",
                            st.solve.detail));
  subtract_pressure_gradient(pressure_, dom, vel);
  st.max_div_after = max_abs_divergence(vel, dom);
  st.project_seconds = seconds_since(t0);
}

void SmokeSimulation::apply_sources(int frame) {
  const Dims d = config_.dims;
  const bool parallel = d.size() >= detail::kParallelCells;
  const std::uint64_t seed = config_.seed;
  for (std::size_t s = 0; s < config_.sources.size(); ++s) {
    const SmokeSource& src = config_.sources[s];
    // Per-frame jitter of the nozzle position (stream 2s; index 0/1 = x/y).
    Vec3 c = src.centre;
    c.x += src.jitter * hash_uniform(seed, frame, 2 * s, 0);
    c.y += src.jitter * hash_uniform(seed, frame, 2 * s, 1);
    const int k0 = std::max(0, int(std::floor(c.z - 0.5 * src.height)));
    const int k1 = std::min(d.nz - 1, int(std::ceil(c.z + 0.5 * src.height)));
    const std::uint64_t stream = 2 * s + 1;
#pragma omp parallel for schedule(static) if (parallel)
    for (int k = k0; k <= k1; ++k)
      for (int j = 0; j < d.ny; ++j)
        for (int i = 0; i < d.nx; ++i) {
          if (std::abs(k + 0.5 - c.z) > 0.5 * src.height) continue;
          const double dx = i + 0.5 - c.x, dy = j + 0.5 - c.y;
          if (dx * dx + dy * dy > src.radius * src.radius) continue;
          if (domain_.cells(i, j, k) != CellType::Fluid) continue;
          const double factor =
              1.0 + src.noise * hash_uniform(seed, frame, stream, std::uint64_t(d.index(i, j, k)));
          density_(i, j, k) = std::max(density_(i, j, k), src.density * factor);
          temperature_(i, j, k) = std::max(temperature_(i, j, k), src.temperature * factor);
          // The cell's faces on its high side (low-side faces belong to neighbours, except
          // at the cylinder's edge, which keeps the write set disjoint per cell).
          vel_.u(i + 1, j, k) = src.velocity.x * factor;
          vel_.v(i, j + 1, k) = src.velocity.y * factor;
          vel_.w(i, j, k + 1) = src.velocity.z * factor;
        }
  }
}

FrameStats SmokeSimulation::step() {
  FrameStats st;
  const int frame = frame_ + 1;
  st.frame = frame;
  st.time = frame * config_.dt;
  const double dt = config_.dt;
  const auto t_start = Clock::now();

  // Advection by u^n (MAC velocity, then the scalars).
  const auto ta = Clock::now();
  advect_velocity(vel_, dt, config_.advection, scratch_);
  advect_together({&density_, &temperature_}, kCellCentre, vel_, dt, config_.advection,
                  {&scratch_density_, &scratch_temperature_});
  std::swap(density_, scratch_density_);
  std::swap(temperature_, scratch_temperature_);
  std::swap(vel_, scratch_);
  st.advect_seconds = seconds_since(ta);

  // Obstacles at the new time, decay, sources, forces, solid velocities.
  update_obstacles(st.time);
  const std::int64_t n = density_.size();
  const bool parallel = n >= detail::kParallelCells;
  if (config_.density_decay > 0.0 || config_.temperature_decay > 0.0) {
    const double keep_rho = 1.0 - config_.density_decay, keep_t = 1.0 - config_.temperature_decay;
    const double amb = config_.ambient_temperature;
#pragma omp parallel for schedule(static) if (parallel)
    for (std::int64_t c = 0; c < n; ++c) {
      density_[c] *= keep_rho;
      temperature_[c] = amb + keep_t * (temperature_[c] - amb);
    }
  }
  apply_sources(frame);
  add_buoyancy(density_, temperature_, config_.buoyancy_density, config_.buoyancy_temperature,
               config_.ambient_temperature, dt, domain_, vel_);
  add_vorticity_confinement(config_.vorticity, dt, domain_, vel_);
  apply_solid_velocities(vel_);

  project(vel_, st);
  frame_ = frame;
  st.other_seconds = std::max(0.0, seconds_since(t_start) - st.advect_seconds - st.project_seconds);
  return st;
}

// ---- checkpoints ----
namespace {

constexpr char kMagic[8] = {'D', 'C', 'D', 'M', 'S', 'I', 'M', '1'};
// Version 2 ends in the CRC-32 of every byte before it, so that a damaged file is refused
// instead of resuming a different state; version 1 (no checksum) is still read.
constexpr std::uint32_t kVersion = 2;
constexpr std::size_t kChecksumBytes = 4;

template <class T>
void put(std::string& out, const T& v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

void put_field(std::string& out, const Field<double>& f) {
  put(out, std::uint64_t(f.size()));
  out.append(reinterpret_cast<const char*>(f.data()), std::size_t(f.size()) * sizeof(double));
}

struct Reader {
  const std::string& bytes;
  const std::filesystem::path& path;
  std::size_t pos = 0;

  void need(std::size_t n, const char* what) {
    if (bytes.size() - pos < n)
      throw InputError(fmt::format("{}: truncated checkpoint at byte {} (reading {})",
                                   path.string(), pos, what));
  }
  template <class T>
  T get(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, bytes.data() + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }
  void field(Field<double>& f, const char* what) {
    const std::size_t at = pos;
    const auto count = get<std::uint64_t>(what);
    if (count != std::uint64_t(f.size()))
      throw InputError(fmt::format("{}: byte {}: {} has {} values, expected {}", path.string(), at,
                                   what, count, f.size()));
    need(count * sizeof(double), what);
    std::memcpy(f.data(), bytes.data() + pos, count * sizeof(double));
    for (std::int64_t c = 0; c < f.size(); ++c)
      if (!std::isfinite(f[c]))
        throw InputError(fmt::format("{}: byte {}: {} holds a non-finite value", path.string(),
                                     pos + c * sizeof(double), what));
    pos += count * sizeof(double);
  }
};

}  // namespace

void SmokeSimulation::save_checkpoint(const std::filesystem::path& path, const std::string& tag) const {
  std::string out;
  out.append(kMagic, sizeof kMagic);
  put(out, kVersion);
  put(out, std::int32_t(config_.dims.nx));
  put(out, std::int32_t(config_.dims.ny));
  put(out, std::int32_t(config_.dims.nz));
  put(out, std::int32_t(frame_));
  put(out, std::uint64_t(config_.seed));
  put(out, std::uint32_t(tag.size()));
  out += tag;
  put_field(out, vel_.u);
  put_field(out, vel_.v);
  put_field(out, vel_.w);
  put_field(out, density_);
  put_field(out, temperature_);
  put_field(out, pressure_);
  put(out, learn::crc32(out));
  io::write_file_atomic(path, out);
}

void SmokeSimulation::load_checkpoint(const std::filesystem::path& path, const std::string& tag,
                                      const std::function<bool(const std::string&)>& tag_matches) {
  io::require_regular_file(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("{}: cannot open checkpoint", path.string()));
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string bytes = ss.str();
  Reader r{bytes, path};
  r.need(sizeof kMagic, "magic");
  if (std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0)
    throw InputError(fmt::format("{}: byte 0: not a dcdm simulation checkpoint", path.string()));
  r.pos = sizeof kMagic;
  const auto version = r.get<std::uint32_t>("version");
  if (version != 1 && version != kVersion)
    throw InputError(fmt::format("{}: byte 8: unsupported checkpoint version {}", path.string(), version));
  if (version >= 2) {
    // The whole file is checked before any field is believed.
    r.need(kChecksumBytes, "checksum");
    const std::size_t body = bytes.size() - kChecksumBytes;
    std::uint32_t stored = 0;
    std::memcpy(&stored, bytes.data() + body, kChecksumBytes);
    const std::uint32_t computed = learn::crc32(std::string_view(bytes).substr(0, body));
    if (stored != computed)
      throw InputError(fmt::format("{}: checksum mismatch (stored {:08x}, computed {:08x}): the file is damaged; "
                                   "delete it to start the run again",
                                   path.string(), stored, computed));
    bytes.resize(body);
  }
  Dims d;
  d.nx = r.get<std::int32_t>("nx");
  d.ny = r.get<std::int32_t>("ny");
  d.nz = r.get<std::int32_t>("nz");
  if (!(d == config_.dims))
    throw InputError(fmt::format("{}: checkpoint is for a {} grid, this run is {}", path.string(),
                                 d.str(), config_.dims.str()));
  const auto frame = r.get<std::int32_t>("frame");
  if (frame < 0) throw InputError(fmt::format("{}: byte 24: negative frame {}", path.string(), frame));
  const auto seed = r.get<std::uint64_t>("seed");
  if (seed != config_.seed)
    throw InputError(fmt::format("{}: checkpoint was made with seed {}, this run has seed {}",
                                 path.string(), seed, config_.seed));
  const auto tag_size = r.get<std::uint32_t>("tag size");
  r.need(tag_size, "tag");
  const std::string stored_tag = bytes.substr(r.pos, tag_size);
  r.pos += tag_size;
  if (tag_matches ? !tag_matches(stored_tag) : stored_tag != tag)
    throw InputError(fmt::format("{}: checkpoint was made with other options ({}), this run: {}",
                                 path.string(), stored_tag, tag));
  MacVelocity vel(d);
  Field<double> rho(d), temp(d), p(d);
  r.field(vel.u, "u");
  r.field(vel.v, "v");
  r.field(vel.w, "w");
  r.field(rho, "density");
  r.field(temp, "temperature");
  r.field(p, "pressure");
  if (r.pos != bytes.size())
    throw InputError(fmt::format("{}: byte {}: unexpected trailing data", path.string(), r.pos));
  vel_ = std::move(vel);
  density_ = std::move(rho);
  temperature_ = std::move(temp);
  pressure_ = std::move(p);
  frame_ = frame;
  system_.reset();
  update_obstacles(time());
}

}  // namespace dcdm::sim
