#pragma once
// The smoke simulator that produces the real pressure systems (rising plume, smoke past the
// bunny, a moving sphere): incompressible Euler with buoyancy on a MAC grid.
//
// Conventions (unit cell spacing, time in frames):
// - Cell (i,j,k) covers [i,i+1]x[j,j+1]x[k,k+1]; positions are in cell units.
// - MAC velocity: u(i,j,k) lives on the x-face at (i, j+.5, k+.5), i = 0..nx (nx+1 values);
//   v on y-faces (i+.5, j, k+.5), w on z-faces (i+.5, j+.5, k). z is up (gravity -z), as in
//   the mesh placement of dcdm/mesh.hpp.
// - Outer faces are walls (Neumann, normal velocity = the wall's prescribed velocity, 0 by
//   default) or open (Dirichlet p = 0: the cell beyond is air). Solid cells come from
//   static obstacles (a voxelised mesh) and moving spheres; a fluid-solid face carries the
//   solid's normal velocity.
// - Pressure system, exactly as in docs/INTEGRATION.md: A = 7-point matrix (diagonal =
//   non-solid neighbour count, -1 per fluid neighbour), b = -div u* (div summed over the six
//   faces of a fluid cell, solid faces already holding the solid's velocity), and A p = b.
//   The factor dt/rho is folded into p, so the projection is u = u* - grad p on every face
//   between two non-solid cells (p = 0 in air). Then div u = -(b - A p) = -residual: the
//   divergence left after projection is bounded by the solver's final residual.
//   With no air (a closed box) A is singular: b is projected onto the range of A (zero mean
//   per fluid component); the mean removed is reported (it is round-off unless a wall
//   injects net flow into a closed region).
//
// The simulator sees the pressure solver only through dcdm::IterativeSolver. It is
// deterministic: OpenMP loops write disjoint cells, reductions are reproducible, and the
// source noise is a counter-based hash of (seed, frame, cell), so a run is a function of
// (configuration, seed) alone and a checkpoint needs no RNG state.
#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dcdm/grid.hpp"
#include "dcdm/linalg.hpp"
#include "dcdm/solve.hpp"

namespace dcdm {
struct FluidComponents;  // dcdm/poisson.hpp
}

namespace dcdm::sim {

struct Vec3 {
  double x = 0, y = 0, z = 0;
  double& operator[](int a) { return a == 0 ? x : (a == 1 ? y : z); }
  double operator[](int a) const { return a == 0 ? x : (a == 1 ? y : z); }
  friend Vec3 operator+(Vec3 a, Vec3 b) { return {a.x + b.x, a.y + b.y, a.z + b.z}; }
  friend Vec3 operator-(Vec3 a, Vec3 b) { return {a.x - b.x, a.y - b.y, a.z - b.z}; }
  friend Vec3 operator*(double s, Vec3 a) { return {s * a.x, s * a.y, s * a.z}; }
  friend bool operator==(const Vec3& a, const Vec3& b) { return a.x == b.x && a.y == b.y && a.z == b.z; }
  friend bool operator!=(const Vec3& a, const Vec3& b) { return !(a == b); }
};

// Grid-point offsets (in cells) of the staggered quantities.
inline constexpr Vec3 kCellCentre{0.5, 0.5, 0.5};
Vec3 face_offset(int axis);  // (0,.5,.5), (.5,0,.5), (.5,.5,0)
Dims face_dims(Dims cells, int axis);  // cells + 1 along axis

// Trilinear interpolation of a field whose point (i,j,k) sits at (i,j,k) + offset; positions
// outside the sample lattice are clamped to it (constant extrapolation).
double sample(const Field<double>& f, Vec3 offset, Vec3 pos);
// The same, also returning the min and max of the 8 (or fewer) points used.
double sample_bounded(const Field<double>& f, Vec3 offset, Vec3 pos, double& lo, double& hi);

// Staggered velocity field.
struct MacVelocity {
  Dims cells;
  Field<double> u, v, w;

  MacVelocity() = default;
  explicit MacVelocity(Dims d);
  Field<double>& component(int axis) { return axis == 0 ? u : (axis == 1 ? v : w); }
  const Field<double>& component(int axis) const { return axis == 0 ? u : (axis == 1 ? v : w); }
  Vec3 at(Vec3 pos) const;  // interpolated velocity at a position
  Vec3 cell_centre(int i, int j, int k) const;  // average of the two faces per axis
};

// Cell types seen from the grid: outside cells are Solid beyond a Wall face, Air beyond an
// Open face.
CellType cell_type_at(const Domain& domain, int i, int j, int k);

// div(i,j,k) = sum of outward face velocities (unit spacing), at fluid cells; 0 elsewhere.
void divergence(const MacVelocity& vel, const Domain& domain, Field<double>& div);
// Largest |div| over fluid cells.
double max_abs_divergence(const MacVelocity& vel, const Domain& domain);
// u -= grad p on every face between two non-solid cells (p = 0 in air and beyond open faces);
// faces touching a solid cell are left alone.
void subtract_pressure_gradient(const Field<double>& p, const Domain& domain, MacVelocity& vel);

// ---- advection ----
enum class Advection { SemiLagrangian, MacCormack, Bfecc };
Advection parse_advection(const std::string& name);  // "semi-lagrangian" | "maccormack" | "bfecc"
const char* to_string(Advection a);

// Advects a field with grid offset `offset` by `vel` over dt: second-order (midpoint) back-
// traces, trilinear samples; MacCormack and BFECC add an error-compensation pass whose result
// is clamped to the values around the back-traced point (no new extrema).
void advect(const Field<double>& src, Vec3 offset, const MacVelocity& vel, double dt,
            Advection scheme, Field<double>& dst);
// Several fields on the same lattice advected at once: one back-trace per point serves all.
void advect_together(const std::vector<const Field<double>*>& src, Vec3 offset, const MacVelocity& vel,
                     double dt, Advection scheme, const std::vector<Field<double>*>& dst);
// Self-advection of the velocity, component by component.
void advect_velocity(const MacVelocity& vel, double dt, Advection scheme, MacVelocity& dst);

// ---- forces ----
// w += dt * (-alpha * density + beta * (T - ambient)) on z-faces next to fluid (cell averages).
void add_buoyancy(const Field<double>& density, const Field<double>& temperature, double alpha,
                  double beta, double ambient, double dt, const Domain& domain, MacVelocity& vel);
// Vorticity confinement (Fedkiw, Stam, Jensen 2001): f = eps (N x omega), N = grad|omega| /
// |grad|omega||, added on faces between two fluid cells.
void add_vorticity_confinement(double epsilon, double dt, const Domain& domain, MacVelocity& vel);

// ---- obstacles ----
// A sphere moving on centre(t) = centre + amplitude * sin(2 pi t / period + phase) per axis
// (period <= 0: static). Its velocity is the time derivative of that path.
struct MovingSphere {
  Vec3 centre;
  double radius = 1.0;
  Vec3 amplitude;
  double period = 0.0;
  Vec3 phase;
  Vec3 centre_at(double t) const;
  Vec3 velocity_at(double t) const;
};

// ---- sources ----
// A vertical cylinder (axis along z) of smoke: in its cells, density and temperature are
// raised to the source values times (1 + noise * xi) and the faces inside get `velocity`
// (times the same factor), xi uniform in [-1, 1) from (seed, frame, cell). Each frame the
// cylinder's centre is moved by a uniform jitter in [-jitter, jitter] along x and y.
struct SmokeSource {
  Vec3 centre;          // centre of the cylinder (z = middle of its height)
  double radius = 4.0;
  double height = 4.0;
  double density = 1.0;
  double temperature = 1.0;
  Vec3 velocity{0.0, 0.0, 1.0};
  double noise = 0.2;
  double jitter = 1.0;
};

// Counter-based random number in [-1, 1): a hash of (seed, frame, stream, index).
double hash_uniform(std::uint64_t seed, std::int64_t frame, std::uint64_t stream,
                    std::uint64_t index);

// ---- configuration ----
struct SimConfig {
  Dims dims{32, 32, 32};
  double dt = 1.0;  // per frame (one step per frame)
  Advection advection = Advection::SemiLagrangian;
  double buoyancy_density = 0.0;      // alpha: smoke weight
  double buoyancy_temperature = 0.0;  // beta: hot smoke rises
  double ambient_temperature = 0.0;
  double vorticity = 0.0;             // confinement epsilon (0 = off)
  double density_decay = 0.0;         // fraction lost per frame
  double temperature_decay = 0.0;     // relaxation towards ambient per frame
  std::array<FaceBoundary, 6> faces{};         // outer faces (all walls by default)
  std::array<Vec3, 6> wall_velocity{};         // prescribed velocity of wall faces (inflow)
  Field<std::uint8_t> static_solid;            // 1 = solid; empty = none
  std::vector<MovingSphere> spheres;           // solid spheres (static or moving)
  std::vector<SmokeSource> sources;
  std::uint64_t seed = 0;
  // Pressure solve.
  SolveOptions solve;                   // rtol, max_iterations...
  // Give the solver the full-grid CSR matrix too. No method needs it (those that factor one
  // assemble it in their set-up, once per cell layout, and free it): off, it costs nothing.
  bool assemble_matrix = false;
  bool warm_start = false;              // previous frame's pressure as initial guess
};

// Built-in smoke scenes, scaled to the grid (parameters are fractions of the box, speeds
// scale with the box height so that a 64^3 and a 128^3 run look alike). All have walls on
// five sides and an open top (z+), and a smoke source near the floor:
//   plume  - the source at the floor's centre, nothing else;
//   bunny  - the plume rising onto the Stanford bunny (dcdm::make_scene's "bunny" obstacle,
//            scale 0.5, lifted to 0.3 nz so the smoke flows under and around it); `mesh`
//            replaces the bunny by another mesh file;
//   sphere - the plume with a sphere moving back and forth through it along x (period 100
//            frames): a moving obstacle whose velocity enters the boundary condition.
// `bunny_solid` (1 = solid, same dims) overrides the built-in obstacle of "bunny"; `mesh`
// replaces the bunny mesh; `bunny_parameters` override the obstacle's placement (the
// parameters of dcdm::make_scene's "bunny": scale, cx, cy, floor, up; defaults scale 0.5,
// floor 0.3), so the obstacle equals `dcdm export --scene bunny --param scale=0.5 --param
// floor=0.3` plus any overrides. Throws InputError for an unknown scene, a grid below 8 cells
// a side, or an obstacle that covers the smoke source.
std::vector<std::string> scene_names();
// The bunny placement a smoke scene uses unless told otherwise (scale 0.5, floor 0.3).
std::map<std::string, double> default_bunny_placement();
SimConfig make_scene(const std::string& name, Dims dims, std::uint64_t seed,
                     const Field<std::uint8_t>* bunny_solid = nullptr,
                     const std::filesystem::path* mesh = nullptr,
                     const std::map<std::string, double>* bunny_parameters = nullptr);

// ---- per-frame statistics ----
struct FrameStats {
  int frame = 0;          // 1-based: the frame this step produced
  double time = 0.0;      // simulated time at its end
  std::int64_t fluid_cells = 0;
  double rhs_norm = 0.0;                  // ||b|| after the compatibility projection
  double compatibility_shift = 0.0;       // max |mean removed| from b (closed regions)
  double max_div_before = 0.0;            // max |div u*| over fluid cells
  double max_div_after = 0.0;             // max |div u| after projection
  SolveReport solve;                      // iterations, final residual, reason
  bool solver_reused = false;             // cell layout unchanged: setup skipped
  double advect_seconds = 0.0;
  double project_seconds = 0.0;           // domain + assembly + setup + solve + gradient
  double other_seconds = 0.0;             // obstacles, sources, forces, boundaries
  double assemble_seconds = 0.0;          // part of project: domain, stencil, CSR, projector
  double setup_seconds = 0.0;             // part of project
  double solve_seconds = 0.0;             // part of project
};

// The simulation state and one-step-per-frame driver.
class SmokeSimulation {
 public:
  // `solver` must outlive the simulation; it is set up whenever the cell layout changes.
  SmokeSimulation(SimConfig config, IterativeSolver& solver);
  ~SmokeSimulation();
  SmokeSimulation(const SmokeSimulation&) = delete;
  SmokeSimulation& operator=(const SmokeSimulation&) = delete;

  // Advances one frame: obstacles -> advection -> sources -> forces -> boundary velocities
  // -> projection. Throws dcdm::Error if the solver returns NaN.
  FrameStats step();

  int frame() const { return frame_; }  // frames completed
  double time() const { return frame_ * config_.dt; }
  const SimConfig& config() const { return config_; }
  const MacVelocity& velocity() const { return vel_; }
  MacVelocity& velocity() { return vel_; }
  const Field<double>& density() const { return density_; }
  Field<double>& density() { return density_; }
  const Field<double>& temperature() const { return temperature_; }
  const Field<double>& pressure() const { return pressure_; }

  // The pressure system of the last step (valid after step()): the domain (cell types and
  // outer faces), b (full grid, zero outside fluid), and the full-grid CSR matrix (assembled
  // on demand if the config did not ask for it).
  const Domain& domain() const;
  const std::vector<double>& rhs() const { return rhs_; }
  // The fluid components of the current domain (counts, sizes, Dirichlet contact; per-cell
  // labels only when some are closed), as the pressure solve's projection found them.
  const FluidComponents& components() const;
  const CsrMatrix& matrix();

  // Cell types for the current time (static solids + spheres at time t) and the velocity
  // of the solid in each solid cell.
  void update_obstacles(double t);
  // Sets every face touching a solid cell (or a wall) to the solid's normal velocity.
  void apply_solid_velocities(MacVelocity& vel) const;
  // Projects `vel` (whose solid faces already hold solid velocities) and fills the stats'
  // projection fields. Exposed for tests.
  void project(MacVelocity& vel, FrameStats& stats);

  // Checkpoint: the full state (frame, velocities, density, temperature, pressure) plus
  // `tag` (the caller's description of the options, checked on load), ending in a CRC-32 of
  // the file. Atomic write.
  void save_checkpoint(const std::filesystem::path& path, const std::string& tag) const;
  // Throws InputError (naming the file and byte offset) when the file is malformed, fails its
  // checksum (version 1 files, which have none, are read) or was written for other dimensions
  // or another tag. `tag_matches(stored)` decides whether a stored
  // tag is compatible (default: equal to `tag`, which the error message shows).
  void load_checkpoint(const std::filesystem::path& path, const std::string& tag,
                       const std::function<bool(const std::string&)>& tag_matches = {});

 private:
  void apply_sources(int frame);
  void rebuild_pressure_system();

  SimConfig config_;
  IterativeSolver& solver_;
  int frame_ = 0;
  MacVelocity vel_, scratch_;
  Field<double> density_, temperature_, pressure_, scratch_density_, scratch_temperature_;
  Domain domain_;                          // current cell layout
  std::array<Field<double>, 3> solid_velocity_;  // per solid cell
  struct PressureSystem;
  std::unique_ptr<PressureSystem> system_;  // domain/op/matrix/projector the solver was set up with
  std::vector<double> rhs_;
};

// ---- rendering ----
// Mid-plane density slices side by side: front (y = ny/2, x right, z up) and side
// (x = nx/2, y right, z up), `scale` x `scale` pixels per cell, density clamped to [0, 1]
// mapped to grey, solid cells blue. RGB, row-major, top row first. Writes width/height.
std::vector<std::uint8_t> render_density_slices(const Field<double>& density, const Domain& domain,
                                                int scale, int& width, int& height);

}  // namespace dcdm::sim
