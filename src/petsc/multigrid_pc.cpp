// The serial multigrid V-cycle (src/precond/multigrid.cpp) on a grid split across MPI ranks;
// see include/dcdm/petsc_multigrid.hpp. The rules (coarsening, the thin-gap rule, the band,
// the learned factors, the transfers, the sweep order) are the serial cycle's; every kernel
// below evaluates each cell with the serial kernel's floating-point expression, so a cell
// gets the same value on any number of ranks.
//
// Layout: each level keeps its owned box plus a frame of two ghost cells on every side
// (indexed by global coordinates through Level::at). Ghosts beyond the grid carry the outer
// face's type (Air for an Open face, Solid for a Wall; a ghost beyond two faces is Air only if
// both are Open, as the serial init_level) and hold 0 in every vector; ghosts inside the grid
// are copies of the neighbours' cells, refreshed by Halo::exchange, or (a sweep's first colour,
// the residual on levels split at even cells) computed here from the same values as their
// owner computes them.
//
// What needs which ghosts: a 7-point single-colour step and the residual one layer (a sweep's
// first colour, run on the first ghost layer too, two); the band (Chebyshev distance 2) and
// the learned factors (3x3x3) the types two layers deep; the restriction of coarse cell I
// reads fine cells 2I-1 .. 2I+2 (one layer below the owned box, two above, one where the box
// ends at an even cell); the prolongation of fine cell i reads coarse cells i/2 - 1 .. i/2 + 1
// (two layers below, one above).
#include "dcdm/petsc_multigrid.hpp"

#include <petsc/private/pcimpl.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <type_traits>

#include <omp.h>

#include <fmt/format.h>

#include "dcdm/error.hpp"
#include "dcdm/grid_transfer.hpp"
#include "dcdm/methods.hpp"
#include "dcdm/models.hpp"
#include "dcdm/relaxnet.hpp"
#include "../linalg/uninitialised.hpp"

namespace dcdm::petsc {

namespace {

constexpr int kFrame = 2;                    // ghost cells on each side of a level's box
constexpr std::int64_t kParallelCells = 32768;  // below this, loops stay on one thread

// -log_view events (registered with the PC type): the sweeps' and transfers' arithmetic, the
// ghost exchanges, and the gathered coarse levels (gather, the serial cycle on rank 0, scatter).
PetscLogEvent g_event_smooth = 0, g_event_transfer = 0, g_event_halo = 0, g_event_gathered = 0;

// Times a scope as one PETSc event.
class LogScope {
 public:
  explicit LogScope(PetscLogEvent e) : e_(e) { PetscLogEventBegin(e_, 0, 0, 0, 0); }
  ~LogScope() { PetscLogEventEnd(e_, 0, 0, 0, 0); }
  LogScope(const LogScope&) = delete;
  LogScope& operator=(const LogScope&) = delete;

 private:
  PetscLogEvent e_;
};

// How the sweeps update a cell: the Gauss-Seidel value, over-relaxed by one factor, or by a
// factor of its own (a relaxation model's).
enum class Relax { Plain, Scalar, PerCell };

const auto kFluid = static_cast<std::uint8_t>(CellType::Fluid);
const auto kSolid = static_cast<std::uint8_t>(CellType::Solid);
const auto kAir = static_cast<std::uint8_t>(CellType::Air);

template <class T>
MPI_Datatype mpi_type() {
  if constexpr (std::is_same_v<T, float>) return MPI_FLOAT;
  else if constexpr (std::is_same_v<T, double>) return MPI_DOUBLE;
  else return MPI_UNSIGNED_CHAR;
}

// One level's split: per axis the ranks' boundaries (procs + 1 entries) and this rank's box.
struct Split {
  Dims dims;
  std::vector<PetscInt> starts[3];
  int lo[3] = {0, 0, 0}, hi[3] = {0, 0, 0};  // owned [lo, hi) per axis, global coordinates
  int extent(int a) const { return hi[a] - lo[a]; }
  std::int64_t owned() const { return std::int64_t(extent(0)) * extent(1) * extent(2); }
  // The thinnest box of any rank along any axis.
  int thinnest() const {
    int t = dims.nx;
    for (int a = 0; a < 3; ++a)
      for (std::size_t q = 0; q + 1 < starts[a].size(); ++q)
        t = std::min<int>(t, static_cast<int>(starts[a][q + 1] - starts[a][q]));
    return t;
  }
};

// The next level's split: coarse cell I belongs to the rank owning fine cell 2I.
Split coarser(const Split& f, const int coord[3]) {
  Split c;
  c.dims = {(f.dims.nx + 1) / 2, (f.dims.ny + 1) / 2, (f.dims.nz + 1) / 2};
  for (int a = 0; a < 3; ++a) {
    c.starts[a].resize(f.starts[a].size());
    for (std::size_t q = 0; q < f.starts[a].size(); ++q) c.starts[a][q] = (f.starts[a][q] + 1) / 2;
    c.lo[a] = static_cast<int>(c.starts[a][coord[a]]);
    c.hi[a] = static_cast<int>(c.starts[a][coord[a] + 1]);
  }
  return c;
}

template <class Real>
struct Level {
  Split split;
  int ext[3] = {0, 0, 0};  // local array extents (box + frames)
  std::int64_t sy = 0, sz = 0;
  double s = 1.0;
  // The level's arrays, all in the cycle's arena (end to end in huge pages, see detail::Arena);
  // every one is written whole (assign) before it is read.
  detail::ArenaVector<std::uint8_t> type;
  detail::ArenaVector<Real> inv_diag, x, b, r, inv_w;
  detail::ArenaVector<std::int64_t> band[2];  // local indices of owned band cells by colour
  detail::ArenaVector<Real> band_omega[2];
  // The same for the owned band cells and those of the first ghost layer (the first step of a
  // sweep updates both, see Cycle::sweep).
  detail::ArenaVector<std::int64_t> band_wide[2];
  detail::ArenaVector<Real> band_wide_omega[2];
  // Where each local plane's cells start in band[c] and band_wide[c] (ext[2] + 1 entries; the
  // lists are in local-index order): the fused sweeps run them plane by plane.
  std::vector<std::int64_t> band_planes[2], band_wide_planes[2];
  detail::ArenaVector<Real> omega;  // per-cell interior factors (a per-cell model), else empty
  std::int64_t fluid_cells = 0;       // on this rank
  // Every rank boundary of the level (along every axis) lies at an even cell: the restriction
  // then reads the fine level no further than one ghost layer (see Cycle::residual_to_coarse).
  bool split_evenly = false;
  // The finest level's residual lives in the PC's output vector while a cycle runs (see
  // Cycle::apply): r is then empty and this points there.
  Real* r_borrowed = nullptr;
  Real* residual() { return r_borrowed ? r_borrowed : r.data(); }

  explicit Level(detail::Arena* arena) {
    detail::use_arena(arena, type, inv_diag, x, b, r, inv_w, omega);
    for (int c = 0; c < 2; ++c) detail::use_arena(arena, band[c], band_omega[c], band_wide[c], band_wide_omega[c]);
  }

  std::int64_t size() const { return std::int64_t(ext[0]) * ext[1] * ext[2]; }
  std::int64_t at(int i, int j, int k) const {
    return (i - split.lo[0] + kFrame) + sy * (j - split.lo[1] + kFrame) + sz * (k - split.lo[2] + kFrame);
  }
  bool parallel() const { return split.owned() >= kParallelCells; }
  template <class Visit>
  void for_owned(Visit&& visit) const {
    for (int k = split.lo[2]; k < split.hi[2]; ++k)
      for (int j = split.lo[1]; j < split.hi[1]; ++j)
        for (int i = split.lo[0]; i < split.hi[0]; ++i) visit(i, j, k, at(i, j, k));
  }
};

// The owned box widened by `depth` ghost layers, within the grid, along axis a: [lo, hi).
template <class Real>
std::pair<int, int> widened(const Level<Real>& l, int a, int depth) {
  const int size[3] = {l.split.dims.nx, l.split.dims.ny, l.split.dims.nz};
  return {std::max(l.split.lo[a] - depth, 0), std::min(l.split.hi[a] + depth, size[a])};
}

// Ghost exchange of a level's arrays with the six face neighbours, in three phases (x, then y
// including the x ghosts, then z including both), so edges and corners arrive too.
class Halo {
 public:
  Halo() = default;
  Halo(MPI_Comm comm, const int procs[3], const int coord[3], const Split& split, const int ext[3])
      : comm_(comm), split_(split) {
    for (int a = 0; a < 3; ++a) ext_[a] = ext[a];
    for (int a = 0; a < 3; ++a)
      for (int side = 0; side < 2; ++side) {
        int c[3] = {coord[0], coord[1], coord[2]};
        c[a] += side ? 1 : -1;
        neighbour_[a][side] =
            c[a] < 0 || c[a] >= procs[a] ? MPI_PROC_NULL : c[0] + procs[0] * (c[1] + procs[1] * c[2]);
      }
  }

  // Refreshes `width` (1 or 2) ghost layers of data (a local array of the level).
  template <class T>
  void exchange(T* data, int width) const {
    const LogScope scope(g_event_halo);
    for (int a = 0; a < 3; ++a) exchange_axis(data, width, a);
  }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  Split split_;
  int ext_[3] = {0, 0, 0};
  int neighbour_[3][2] = {{MPI_PROC_NULL, MPI_PROC_NULL}, {MPI_PROC_NULL, MPI_PROC_NULL}, {MPI_PROC_NULL, MPI_PROC_NULL}};
  mutable std::vector<unsigned char> buffers_[4];

  // Local index ranges [from, to) per axis of a slab: along `axis` layers [l0, l1) (local),
  // along earlier axes the box and its ghosts, along later axes the box; visit(first local
  // index, length) for each run of the slab along x.
  template <class Visit>
  void for_slab(int axis, int width, int l0, int l1, Visit&& visit) const {
    int from[3], to[3];
    for (int a = 0; a < 3; ++a) {
      if (a == axis) {
        from[a] = l0;
        to[a] = l1;
      } else if (a < axis) {
        from[a] = kFrame - width;
        to[a] = kFrame + split_.extent(a) + width;
      } else {
        from[a] = kFrame;
        to[a] = kFrame + split_.extent(a);
      }
    }
    const std::int64_t sy = ext_[0], sz = std::int64_t(ext_[0]) * ext_[1];
    for (int k = from[2]; k < to[2]; ++k)
      for (int j = from[1]; j < to[1]; ++j) visit(sy * j + sz * k + from[0], to[0] - from[0]);
  }

  template <class T>
  void exchange_axis(T* data, int width, int axis) const {
    if (neighbour_[axis][0] == MPI_PROC_NULL && neighbour_[axis][1] == MPI_PROC_NULL) return;  // an unsplit axis
    const int box = split_.extent(axis);
    // Send the first `width` owned layers down and the last up; receive into the ghosts.
    const int send_lo[2] = {kFrame, kFrame + box - width};
    const int recv_lo[2] = {kFrame - width, kFrame + box};
    // A slab's cells (for_slab's ranges): `width` layers along the axis, the box and its
    // ghosts along earlier axes, the box along later ones.
    std::size_t count = static_cast<std::size_t>(width);
    for (int a = 0; a < 3; ++a)
      if (a != axis) count *= static_cast<std::size_t>(split_.extent(a) + (a < axis ? 2 * width : 0));
    for (auto& b : buffers_) b.resize(count * sizeof(T));
    MPI_Request requests[4];
    int nreq = 0;
    for (int side = 0; side < 2; ++side) {
      if (neighbour_[axis][side] == MPI_PROC_NULL) continue;
      MPI_Irecv(buffers_[2 + side].data(), static_cast<int>(count), mpi_type<T>(), neighbour_[axis][side],
                100 + 2 * axis + (1 - side), comm_, &requests[nreq++]);
    }
    for (int side = 0; side < 2; ++side) {
      if (neighbour_[axis][side] == MPI_PROC_NULL) continue;
      T* out = reinterpret_cast<T*>(buffers_[side].data());
      std::size_t n = 0;
      for_slab(axis, width, send_lo[side], send_lo[side] + width, [&](std::int64_t p, int len) {
        std::copy_n(data + p, len, out + n);
        n += static_cast<std::size_t>(len);
      });
      MPI_Isend(out, static_cast<int>(count), mpi_type<T>(), neighbour_[axis][side], 100 + 2 * axis + side, comm_,
                &requests[nreq++]);
    }
    MPI_Waitall(nreq, requests, MPI_STATUSES_IGNORE);
    for (int side = 0; side < 2; ++side) {
      if (neighbour_[axis][side] == MPI_PROC_NULL) continue;
      const T* in = reinterpret_cast<const T*>(buffers_[2 + side].data());
      std::size_t n = 0;
      for_slab(axis, width, recv_lo[side], recv_lo[side] + width, [&](std::int64_t p, int len) {
        std::copy_n(in + n, len, data + p);
        n += static_cast<std::size_t>(len);
      });
    }
  }
};

std::int64_t sum_over(MPI_Comm comm, std::int64_t v) {
  std::int64_t out = 0;
  MPI_Allreduce(&v, &out, 1, MPI_INT64_T, MPI_SUM, comm);
  return out;
}

// Address space for a rank's levels: at most 8 arrays of Real and 1 byte a cell of the top
// level with its frame, and the band lists (at most a cell each, index and factor), twice over
// for the coarser levels and their relatively wider frames, plus 64 MiB. Reserved, not
// resident; what does not fit gets blocks of its own.
template <class Real>
std::size_t arena_bytes(const GridGeometry& grid) {
  std::size_t cells = 1;
  for (int a = 0; a < 3; ++a) {
    const std::int64_t lo = grid.starts[a][static_cast<std::size_t>(grid.coord[a])];
    const std::int64_t hi = grid.starts[a][static_cast<std::size_t>(grid.coord[a]) + 1];
    cells *= static_cast<std::size_t>(hi - lo + 2 * kFrame);
  }
  const std::size_t per_cell = 1 + 8 * sizeof(Real) + 2 * (sizeof(std::int64_t) + sizeof(Real));
  return 2 * cells * per_cell + (std::size_t(64) << 20);
}

class CycleBase {
 public:
  virtual ~CycleBase() = default;
  virtual void apply(const PetscScalar* r, PetscScalar* z) = 0;
  virtual void apply_single(const PetscScalar* r, float* z, std::size_t capacity) = 0;
  virtual std::size_t single_workspace() const = 0;
  virtual int levels() const = 0;
  virtual int distributed_levels() const = 0;
  virtual Dims level_dims(int level) const = 0;
};

template <class Real>
class Cycle final : public CycleBase {
 public:
  Cycle(const GridGeometry& grid, const DistributedMultigridOptions& options);
  void apply(const PetscScalar* r, PetscScalar* z) override {
    apply_to(r, z, static_cast<std::size_t>(levels_.front().split.owned()) * sizeof(PetscScalar));
  }
  void apply_single(const PetscScalar* r, float* z, std::size_t capacity) override {
    apply_to(r, z, capacity * sizeof(float));
  }
  // The floats a float output needs to lend the finest level's residual its storage: the
  // float cycle's framed top level (a few per cent more than the owned cells); 0 where the
  // cycle keeps no such residual, or is double (its residual would take twice the floats).
  std::size_t single_workspace() const override {
    if (!borrow_top_residual_ || sizeof(Real) != sizeof(float)) return 0;
    return static_cast<std::size_t>(levels_.front().size());
  }
  int levels() const override { return distributed_levels() + gathered_levels_; }
  int distributed_levels() const override { return static_cast<int>(levels_.size()) - 1; }
  Dims level_dims(int level) const override {
    if (level < distributed_levels()) return levels_.at(static_cast<std::size_t>(level)).split.dims;
    if (level >= levels()) throw Error(fmt::format("dcdm_mg: no level {}", level));
    return gathered_level_dims_.at(static_cast<std::size_t>(level - distributed_levels()));
  }

 private:
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  int procs_[3], coord_[3];
  std::array<FaceBoundary, 6> faces_;
  MultigridOptions opt_;
  // Holds every level's arrays (declared before the levels: it outlives them).
  detail::Arena arena_;
  // Set-up scratch (the transfers' weights, the learned factors' cell lists): one block that
  // every level reuses, freed when the set-up ends (a fresh block for each would take fresh
  // pages each time).
  detail::UninitialisedVector<std::byte> scratch_;
  template <class T>
  T* scratch(std::size_t count) {
    if (scratch_.size() < count * sizeof(T)) {
      scratch_ = {};
      scratch_.resize(count * sizeof(T));
    }
    return reinterpret_cast<T*>(scratch_.data());
  }
  // The most scratch the set-up takes (made once, at least 2 MiB so that it is in huge pages).
  std::size_t scratch_bytes() const {
    std::size_t bytes = detail::kHugePageBytes;
    for (std::size_t li = 0; li < levels_.size(); ++li) {
      const Level<Real>& l = levels_[li];
      if (li > 0) bytes = std::max(bytes, static_cast<std::size_t>(l.size()) * sizeof(Real));  // a finer level's weights
      for (int c = 0; c < 2; ++c)
        bytes = std::max(bytes, (l.band[c].size() + l.band[c].size() / 2 + 1) * sizeof(std::int64_t));
      if (interior_ == Relax::PerCell) bytes = std::max(bytes, 2 * static_cast<std::size_t>(l.size()) * sizeof(float));
    }
    return bytes;
  }
  // levels_[0 .. L-1] are smoothed here; levels_[L] (the last) is the gathered level, of which
  // this rank keeps its box (b and x) and rank 0 runs the serial cycle.
  std::vector<Level<Real>> levels_;
  std::vector<Halo> halos_;
  Relax interior_ = Relax::Plain, band_ = Relax::Plain;
  Real interior_omega_ = Real(1), band_omega_ = Real(1);
  // The gathered part (rank 0): the serial cycle on the gathered level, its scale relative to
  // it (the serial cycle's top level has off-diagonals 1, ours s = 4^-L: exact powers of two),
  // and every rank's box of that level for the gather and scatter.
  std::unique_ptr<MultigridPreconditioner> serial_;
  double gathered_scale_ = 1.0;
  std::vector<int> gather_counts_, gather_offsets_;
  std::vector<Split> gather_boxes_;
  std::vector<Real> gather_send_, gather_all_;
  std::vector<double> serial_r_, serial_z_;
  int gathered_levels_ = 0;  // the serial cycle's levels (the gathered level is its first)
  bool borrow_top_residual_ = false;  // the finest level's r is the output vector's storage
  bool fused_passes_ = true;          // DistributedMultigridOptions::fused_passes
  // A smoother's sweeps in order, band (1) or interior (0): pre_smooth's, which post_smooth
  // runs with the other first colour.
  std::vector<std::uint8_t> smoother_;
  std::vector<Dims> gathered_level_dims_;

  void init_level(Level<Real>& l, const Split& split, double s);
  void finish_level(int li);
  void coarsen_types(const Level<Real>& f, Level<Real>& c);
  void prolongation_weights(Level<Real>& f, const Level<Real>& c);
  void relaxation_factors(int li, int count);
  void set_up_gather(const std::array<FaceBoundary, 6>& faces, int gathered_index);

  void step_colour(Level<Real>& l, int colour, int depth);
  void step_band(Level<Real>& l, int colour, int depth);
  template <class First, class Second>
  void fused_pair(const Level<Real>& l, bool parallel, First&& first, Second&& second);
  void sweep(int li, bool band, int first, bool exchange);
  void pre_smooth(int li);
  void post_smooth(int li);
  bool wavefront(const Level<Real>& l) const;
  // plane(k): called once per owned plane k, before the smoother's first step reads it (pre)
  // or once its values are final (post); the finest level's load of b and store of z.
  using PlaneHook = std::function<void(int)>;
  void smooth_wavefront(int li, int first, bool exchange_first, const PlaneHook& plane = {});
  // The finest level's r -> b and x -> z, a plane at a time, inside its smoothers' passes
  // where those are one pass each (wavefront): set by apply_to for one cycle, else empty.
  PlaneHook load_plane_, store_plane_;
  void widen_band(int li);
  void residual_to_coarse(int li);
  void prolongate(int li);
  void gathered_solve();
  void vcycle(int li);
  // z = cycle(r) written as Out (double, or float: the double output rounded, which for the
  // float cycle is its own value); z_bytes of storage at z, which the finest level's residual
  // borrows while the cycle runs where they hold it.
  template <class Out>
  void apply_to(const PetscScalar* r, Out* z, std::size_t z_bytes);
};

template <class Real>
void Cycle<Real>::init_level(Level<Real>& l, const Split& split, double s) {
  l.split = split;
  for (int a = 0; a < 3; ++a) l.ext[a] = split.extent(a) + 2 * kFrame;
  l.sy = l.ext[0];
  l.sz = std::int64_t(l.ext[0]) * l.ext[1];
  l.s = s;
  const std::int64_t n = l.size();
  l.type.assign(static_cast<std::size_t>(n), kSolid);
  const int size[3] = {split.dims.nx, split.dims.ny, split.dims.nz};
  // Ghosts beyond the grid: the outer face's type (init_level's rule in the serial cycle).
  const auto ghost = [&](int i, int j, int k) {
    const int c[3] = {i, j, k};
    bool outside = false, open = true;
    for (int a = 0; a < 3; ++a) {
      if (c[a] < 0) {
        outside = true;
        open = open && faces_[2 * a] == FaceBoundary::Open;
      } else if (c[a] >= size[a]) {
        outside = true;
        open = open && faces_[2 * a + 1] == FaceBoundary::Open;
      }
    }
    if (outside) l.type[static_cast<std::size_t>(l.at(i, j, k))] = open ? kAir : kSolid;
  };
  const int x0 = split.lo[0] - kFrame, x1 = split.hi[0] + kFrame;
  for (int k = split.lo[2] - kFrame; k < split.hi[2] + kFrame; ++k)
    for (int j = split.lo[1] - kFrame; j < split.hi[1] + kFrame; ++j) {
      if (j >= 0 && j < size[1] && k >= 0 && k < size[2]) {  // only the columns beyond the grid
        for (int i = x0; i < std::min(0, x1); ++i) ghost(i, j, k);
        for (int i = std::max(size[0], x0); i < x1; ++i) ghost(i, j, k);
      } else {
        for (int i = x0; i < x1; ++i) ghost(i, j, k);
      }
    }
  // r comes at the end of the set-up, where the finest level's may live in the PC's output
  // instead; x (zero) and b lend their storage to the set-up's scratch arrays meanwhile (b is
  // only sized here: finish_level writes its scratch there, then zeroes it).
  l.x.assign(static_cast<std::size_t>(n), Real(0));
  l.b.resize(static_cast<std::size_t>(n));
  l.split_evenly = true;
  for (int a = 0; a < 3; ++a)
    for (std::size_t q = 1; q + 1 < split.starts[a].size(); ++q) l.split_evenly = l.split_evenly && split.starts[a][q] % 2 == 0;
}

// The serial finish_level on the owned box (owned types set, ghosts not yet): the thin-gap
// rule, 1/diagonal and the band. Leaves the types' ghosts two layers deep current.
template <class Real>
void Cycle<Real>::finish_level(int li) {
  Level<Real>& l = levels_[static_cast<std::size_t>(li)];
  const Halo& halo = halos_[static_cast<std::size_t>(li)];
  halo.exchange(l.type.data(), kFrame);
  const std::int64_t off[6] = {-1, 1, -l.sy, l.sy, -l.sz, l.sz};
  // Isolated fluid cells become solid; the outcome of a cell does not depend on its
  // neighbours' outcomes (see the serial finish_level), so the owned cells decide alone.
  l.inv_diag.assign(static_cast<std::size_t>(l.size()), Real(0));
  std::int64_t fluid = 0;
  l.for_owned([&](int, int, int, std::int64_t p) {
    if (l.type[p] != kFluid) return;
    int c = 0;
    for (const auto o : off) c += l.type[p + o] != kSolid;
    if (c == 0) {
      l.type[p] = kSolid;
      return;
    }
    const double diag = l.s * c;
    l.inv_diag[p] = static_cast<Real>(1.0 / diag);
    ++fluid;
  });
  l.fluid_cells = fluid;
  halo.exchange(l.type.data(), kFrame);
  // 1/diagonal on the first ghost layer too (the sweeps update it redundantly): the neighbours'
  // types two layers deep are current now, and the thin-gap rule changed no fluid cell's count.
  {
    const Dims d = l.split.dims;
    for (int k = std::max(l.split.lo[2] - 1, 0); k < std::min(l.split.hi[2] + 1, d.nz); ++k)
      for (int j = std::max(l.split.lo[1] - 1, 0); j < std::min(l.split.hi[1] + 1, d.ny); ++j)
        for (int i = std::max(l.split.lo[0] - 1, 0); i < std::min(l.split.hi[0] + 1, d.nx); ++i) {
          const bool owned = i >= l.split.lo[0] && i < l.split.hi[0] && j >= l.split.lo[1] && j < l.split.hi[1] &&
                             k >= l.split.lo[2] && k < l.split.hi[2];
          const std::int64_t p = l.at(i, j, k);
          if (owned || l.type[p] != kFluid) continue;
          int c = 0;
          for (const auto o : off) c += l.type[p + o] != kSolid;
          if (c > 0) l.inv_diag[p] = static_cast<Real>(1.0 / (l.s * c));
        }
  }
  // Band: owned fluid cells within Chebyshev distance band_width (at most the frame) of a
  // non-fluid cell; ghosts beyond the grid are non-fluid, so walls count.
  const int w = std::min(opt_.band_width, kFrame);
  if (opt_.band_width > kFrame)
    throw InputError(fmt::format("dcdm_mg: band width {} is more than the {} ghost layers the distributed cycle keeps",
                                 opt_.band_width, kFrame));
  // Two byte arrays over the level, in b's storage (unused until the first cycle, at least 2
  // bytes a cell; zeroed below): fresh pages cost a fault each, which on some virtual machines
  // is most of the set-up.
  static_assert(sizeof(Real) >= 2, "the band's scratch bytes live in b");
  const std::size_t cells = l.type.size();
  std::uint8_t* near = reinterpret_cast<std::uint8_t*>(l.b.data());
  std::uint8_t* tmp = near + cells;
  for (std::size_t p = 0; p < cells; ++p) near[p] = l.type[p] != kFluid;
  // Dilated by w along each axis in turn (beyond the local array counts as near), a row at a
  // time: along x cell by cell at the row's ends and over whole rows between; along y and z
  // whole rows OR-ed together (vectorised).
  const std::int64_t strides[3] = {1, l.sy, l.sz};
  const int nx = l.ext[0];
  for (int axis = 0; axis < 3; ++axis) {
    const std::int64_t st = strides[axis];
    for (int k = 0; k < l.ext[2]; ++k)
      for (int j = 0; j < l.ext[1]; ++j) {
        const std::int64_t row = l.sy * j + l.sz * k;
        const std::uint8_t* in = near + row;
        std::uint8_t* out = tmp + row;
        if (axis == 0) {
          const auto at_end = [&](int i) {
            std::uint8_t v = in[i];
            for (int d = 1; d <= w; ++d) {
              v |= i - d >= 0 ? in[i - d] : std::uint8_t(1);
              v |= i + d < nx ? in[i + d] : std::uint8_t(1);
            }
            out[i] = v;
          };
          const int inner0 = std::min(w, nx), inner1 = std::max(inner0, nx - w);
          for (int i = 0; i < inner0; ++i) at_end(i);
          for (int i = inner0; i < inner1; ++i) {
            std::uint8_t v = in[i];
            for (int d = 1; d <= w; ++d) v |= in[i - d] | in[i + d];
            out[i] = v;
          }
          for (int i = inner1; i < nx; ++i) at_end(i);
        } else {
          const int c = axis == 1 ? j : k;
          std::copy_n(in, nx, out);
          for (int d = 1; d <= w; ++d)
            for (const int side : {-1, 1}) {
              const int to = c + side * d;
              if (to < 0 || to >= l.ext[axis]) {
                std::fill_n(out, nx, std::uint8_t(1));
                continue;
              }
              const std::uint8_t* o = in + side * d * st;
              for (int i = 0; i < nx; ++i) out[i] |= o[i];
            }
        }
      }
    std::swap(near, tmp);
  }
  // Counted first, so that each list is one block of its final size (a list growing in the arena
  // would leave each smaller block behind, unused).
  const auto each_band_cell = [&](auto&& visit) {
    if (opt_.band_width > 0)
      l.for_owned([&](int i, int j, int k, std::int64_t p) {
        if (l.type[p] == kFluid && near[static_cast<std::size_t>(p)]) visit((i + j + k) & 1, p);
      });
  };
  std::size_t counts[2] = {0, 0};
  each_band_cell([&](int c, std::int64_t) { ++counts[c]; });
  for (int c = 0; c < 2; ++c) {
    l.band[c].clear();
    l.band[c].reserve(counts[c]);
  }
  each_band_cell([&](int c, std::int64_t p) { l.band[c].push_back(p); });
  std::fill(l.b.begin(), l.b.end(), Real(0));
}

// Coarse types of the owned coarse box from the fine types (children beyond the grid are
// ignored; a child just above the fine box is a ghost).
template <class Real>
void Cycle<Real>::coarsen_types(const Level<Real>& f, Level<Real>& c) {
  const Dims fd = f.split.dims;
  c.for_owned([&](int i, int j, int k, std::int64_t pc) {
    const int cnx = std::min(2, fd.nx - 2 * i), cny = std::min(2, fd.ny - 2 * j), cnz = std::min(2, fd.nz - 2 * k);
    bool air = false, fluid = false;
    for (int dk = 0; dk < cnz; ++dk)
      for (int dj = 0; dj < cny; ++dj)
        for (int di = 0; di < cnx; ++di) {
          const std::uint8_t t = f.type[static_cast<std::size_t>(f.at(2 * i + di, 2 * j + dj, 2 * k + dk))];
          air |= t == kAir;
          fluid |= t == kFluid;
        }
    c.type[static_cast<std::size_t>(pc)] = air ? kAir : fluid ? kFluid : kSolid;
  });
}

// 1 / (the trilinear weight of the coarse parents that carry a value) on the fine fluid cells
// (the serial normaliser; multiples of 1/64, exact in any order).
template <class Real>
void Cycle<Real>::prolongation_weights(Level<Real>& f, const Level<Real>& c) {
  // The weights are sums of products of 0, 1, 3/4 and 1/4 (multiples of 1/64), exact in
  // Real: interpolated as the prolongation interpolates, by runs of coarse parents.
  Real* carries = scratch<Real>(c.type.size());
  for (std::size_t p = 0; p < c.type.size(); ++p)
    carries[p] = !opt_.neumann_interpolation || c.type[p] != kSolid ? Real(1) : Real(0);
  f.inv_w.assign(static_cast<std::size_t>(f.size()), Real(0));
  constexpr int kChunk = 128;  // coarse cells
  alignas(64) Real even[kChunk], odd[kChunk];
  // The owned cells and the first ghost layer (the residual on that layer, see
  // residual_to_coarse): the coarse types are current two layers deep.
  const auto [lo, hi] = widened(f, 0, 1);
  const auto [y0, y1] = widened(f, 1, 1);
  const auto [z0, z1] = widened(f, 2, 1);
  for (int k = z0; k < z1; ++k)
    for (int j = y0; j < y1; ++j) {
      const transfer::ProlongationRows rows = transfer::prolongation_rows(c, j, k);
      const std::int64_t row = f.at(0, j, k);
      for (int m0 = lo >> 1; 2 * m0 < hi; m0 += kChunk) {
        const int n = std::min(kChunk, ((hi + 1) >> 1) - m0);
        transfer::prolongation_pairs(carries, rows, m0, n, even, odd);
        for (int i = std::max(lo, 2 * m0); i < std::min(hi, 2 * (m0 + n)); ++i) {
          const std::int64_t p = row + i;
          if (f.type[static_cast<std::size_t>(p)] != kFluid) continue;
          const double w = (i & 1) ? odd[(i >> 1) - m0] : even[(i >> 1) - m0];
          f.inv_w[static_cast<std::size_t>(p)] = w > 0.0 ? static_cast<Real>(1.0 / w) : Real(0);
        }
      }
    }
}

// The learned factors of a smoothing level: the model sees the owned box through a view whose
// padding is the frame's inner layers (it reads the 3x3x3 neighbourhood of each cell).
template <class Real>
void Cycle<Real>::relaxation_factors(int li, int count) {
  Level<Real>& l = levels_[static_cast<std::size_t>(li)];
  const RelaxationModel& model = *opt_.relaxation;
  const std::int64_t base = (kFrame - 1) * (1 + l.sy + l.sz);  // local index of the view's (-1,-1,-1)
  MultigridLevelView view{{l.split.extent(0), l.split.extent(1), l.split.extent(2)}, li, count, l.sy, l.sz,
                          l.type.data() + base};
  const auto check = [&](float w, std::int64_t p) {
    if (w > 0.0f && w < 2.0f) return;
    throw InputError(fmt::format("dcdm_mg: relaxation factor {} at local cell {} of level {} is outside (0, 2)", w, p, li));
  };
  const std::size_t n = static_cast<std::size_t>(l.size() - base);
  for (int c = 0; c < 2; ++c) {
    const std::size_t m = l.band[c].size();
    // The cells relative to the view, then the factors, in the set-up's scratch.
    std::int64_t* cells = scratch<std::int64_t>(m + m / 2 + 1);
    float* out = reinterpret_cast<float*>(cells + m);
    for (std::size_t q = 0; q < m; ++q) cells[q] = l.band[c][q] - base;
    std::fill_n(out, m, 0.0f);
    if (m > 0) model.band_factors(view, dcdm::span<const std::int64_t>(cells, m), dcdm::span<float>(out, m));
    l.band_omega[c].resize(m);
    for (std::size_t q = 0; q < m; ++q) {
      check(out[q], l.band[c][q]);
      l.band_omega[c][q] = static_cast<Real>(out[q]);
    }
  }
  if (interior_ == Relax::PerCell) {
    float* factors = scratch<float>(2 * n);
    const dcdm::span<float> interior(factors, n), band(factors + n, n);
    std::fill_n(factors, 2 * n, 0.0f);
    model.factors(view, interior, band);
    l.omega.assign(static_cast<std::size_t>(l.size()), Real(0));
    l.for_owned([&](int, int, int, std::int64_t p) {
      if (l.type[p] != kFluid) return;
      check(interior[static_cast<std::size_t>(p - base)], p);
      l.omega[static_cast<std::size_t>(p)] = static_cast<Real>(interior[static_cast<std::size_t>(p - base)]);
    });
  }
}

template <class Real>
Cycle<Real>::Cycle(const GridGeometry& grid, const DistributedMultigridOptions& options)
    : comm_(grid.comm),
      faces_(grid.faces),
      opt_(options.cycle),
      arena_(arena_bytes<Real>(grid)),
      fused_passes_(options.fused_passes) {
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  smoother_.assign(static_cast<std::size_t>(opt_.boundary_sweeps), 1);
  smoother_.insert(smoother_.end(), static_cast<std::size_t>(opt_.pre_sweeps), 0);
  smoother_.insert(smoother_.end(), static_cast<std::size_t>(opt_.boundary_sweeps), 1);
  for (int a = 0; a < 3; ++a) {
    procs_[a] = grid.procs[a];
    coord_[a] = grid.coord[a];
  }
  if (opt_.relaxation) {
    if (const auto uniform = opt_.relaxation->uniform_interior()) {
      if (!(*uniform > 0.0f && *uniform < 2.0f))
        throw InputError(fmt::format("dcdm_mg: uniform interior relaxation factor {} is outside (0, 2)", *uniform));
      interior_ = Relax::Scalar;
      interior_omega_ = static_cast<Real>(*uniform);
    } else {
      interior_ = Relax::PerCell;
    }
    band_ = Relax::PerCell;
  } else {
    interior_ = opt_.omega == 1.0 ? Relax::Plain : Relax::Scalar;
    interior_omega_ = static_cast<Real>(opt_.omega);
    band_ = opt_.band_omega == 1.0 ? Relax::Plain : Relax::Scalar;
    band_omega_ = static_cast<Real>(opt_.band_omega);
  }

  Split top;
  top.dims = grid.dims;
  for (int a = 0; a < 3; ++a) {
    top.starts[a] = grid.starts[a];
    top.lo[a] = static_cast<int>(top.starts[a][coord_[a]]);
    top.hi[a] = static_cast<int>(top.starts[a][coord_[a] + 1]);
  }
  levels_.emplace_back(&arena_);
  // The finest level's types are needed only while the levels are built (the cycle reads the
  // coarser levels' types, and the finest level's diagonal): a block of their own, freed at the
  // end of the set-up (1 byte a cell).
  levels_.back().type = detail::ArenaVector<std::uint8_t>();
  init_level(levels_.back(), top, 1.0);
  {
    Level<Real>& l = levels_.back();
    std::size_t n = 0;
    l.for_owned([&](int, int, int, std::int64_t p) { l.type[static_cast<std::size_t>(p)] = grid.owned_types[n++]; });
  }
  halos_.emplace_back(comm_, procs_, coord_, top, levels_.back().ext);
  finish_level(0);

  // Coarsen while the serial cycle would and the next level can stay split; the last level
  // built is the gathered one.
  while (true) {
    const Level<Real>& f = levels_.back();
    const Dims fd = f.split.dims;
    const int index = static_cast<int>(levels_.size()) - 1;
    if (index + 1 >= opt_.max_levels) break;                                       // serial: level limit
    if (fd.size() <= opt_.coarsest_cells || std::min({fd.nx, fd.ny, fd.nz}) < 4) break;  // serial: coarsest
    if (fd.size() <= options.gather_cells) break;                                  // small: gather
    const Split cs = coarser(f.split, coord_);
    if (cs.thinnest() < kFrame) break;                                             // too thin to split
    Level<Real> c(&arena_);
    init_level(c, cs, f.s * 0.25);
    coarsen_types(f, c);
    levels_.push_back(std::move(c));
    halos_.emplace_back(comm_, procs_, coord_, cs, levels_.back().ext);
    finish_level(index + 1);
    if (sum_over(comm_, levels_.back().fluid_cells) == 0) {  // serial: no fluid, f is the coarsest
      levels_.pop_back();
      halos_.pop_back();
      break;
    }
  }
  scratch<std::byte>(scratch_bytes());
  for (std::size_t li = 0; li + 1 < levels_.size(); ++li) prolongation_weights(levels_[li], levels_[li + 1]);
  const int gathered = static_cast<int>(levels_.size()) - 1;
  // A factor outside (0, 2) is found by the rank that owns the cell: the ranks agree on the
  // outcome before the next collective call, so all of them report it and none waits.
  std::string failure;
  if (opt_.relaxation) {
    try {
      for (int li = 0; li < gathered; ++li) relaxation_factors(li, gathered + 1);
    } catch (const std::exception& e) {
      failure = e.what();
    }
  }
  agree(comm_, failure.empty(), failure);
  for (int li = 0; li < gathered; ++li) widen_band(li);
  set_up_gather(faces_, gathered);
  // The finest level's residual is needed only between its computation and the restriction,
  // while the PC's output z (a double per owned cell) is not yet written: where the level's
  // array with its frame fits in z (the float cycle on boxes of more than about 15^3 cells), it
  // lives there instead of in an array of its own (4 bytes a cell of the float cycle).
  if (levels_.size() > 1) {
    const Level<Real>& t = levels_.front();
    borrow_top_residual_ =
        static_cast<std::size_t>(t.size()) * sizeof(Real) <= static_cast<std::size_t>(t.split.owned()) * sizeof(PetscScalar);
  }
  scratch_ = {};
  levels_.front().type = detail::ArenaVector<std::uint8_t>();
  for (std::size_t li = borrow_top_residual_ ? 1 : 0; li < levels_.size(); ++li)
    levels_[li].r.assign(static_cast<std::size_t>(levels_[li].size()), Real(0));
}

// Rank 0 gets the gathered level's types and sets up the serial cycle on them; every rank
// keeps the boxes of all ranks for the gather and scatter of b and x.
template <class Real>
void Cycle<Real>::set_up_gather(const std::array<FaceBoundary, 6>& faces, int gathered_index) {
  const Level<Real>& l = levels_.back();
  gathered_scale_ = l.s;
  gather_boxes_.assign(static_cast<std::size_t>(size_), Split{});
  gather_counts_.assign(static_cast<std::size_t>(size_), 0);
  gather_offsets_.assign(static_cast<std::size_t>(size_), 0);
  int offset = 0;
  for (int q = 0; q < size_; ++q) {
    const int c[3] = {q % procs_[0], (q / procs_[0]) % procs_[1], q / (procs_[0] * procs_[1])};
    Split& s = gather_boxes_[static_cast<std::size_t>(q)];
    s.dims = l.split.dims;
    for (int a = 0; a < 3; ++a) {
      s.lo[a] = static_cast<int>(l.split.starts[a][c[a]]);
      s.hi[a] = static_cast<int>(l.split.starts[a][c[a] + 1]);
    }
    gather_counts_[static_cast<std::size_t>(q)] = static_cast<int>(s.owned());
    gather_offsets_[static_cast<std::size_t>(q)] = offset;
    offset += static_cast<int>(s.owned());
  }
  const Dims d = l.split.dims;
  std::vector<std::uint8_t> types_send;
  l.for_owned([&](int, int, int, std::int64_t p) { types_send.push_back(l.type[static_cast<std::size_t>(p)]); });
  std::vector<std::uint8_t> all(rank_ == 0 ? static_cast<std::size_t>(d.size()) : 0);
  MPI_Gatherv(types_send.data(), static_cast<int>(types_send.size()), MPI_UNSIGNED_CHAR, all.data(),
              gather_counts_.data(), gather_offsets_.data(), MPI_UNSIGNED_CHAR, 0, comm_);
  gather_send_.resize(types_send.size());
  std::string failure;
  if (rank_ == 0) {
    gather_all_.resize(static_cast<std::size_t>(d.size()));
    serial_r_.assign(static_cast<std::size_t>(d.size()), 0.0);
    serial_z_.assign(static_cast<std::size_t>(d.size()), 0.0);
    Domain domain(d, CellType::Solid);
    domain.faces = faces;
    for (int q = 0; q < size_; ++q) {
      const Split& s = gather_boxes_[static_cast<std::size_t>(q)];
      std::size_t n = static_cast<std::size_t>(gather_offsets_[static_cast<std::size_t>(q)]);
      for (int k = s.lo[2]; k < s.hi[2]; ++k)
        for (int j = s.lo[1]; j < s.hi[1]; ++j)
          for (int i = s.lo[0]; i < s.hi[0]; ++i) domain.cells(i, j, k) = static_cast<CellType>(all[n++]);
    }
    try {
      MultigridOptions o = opt_;
      o.max_levels = std::max(1, opt_.max_levels - gathered_index);
      serial_ = std::make_unique<MultigridPreconditioner>(o);
      LinearSystemView view;
      view.domain = &domain;
      serial_->setup(view);
      gathered_levels_ = serial_->levels();
      for (int li = 0; li < gathered_levels_; ++li) gathered_level_dims_.push_back(serial_->level_dims(li));
    } catch (const std::exception& e) {
      failure = e.what();
    }
  }
  agree(comm_, failure.empty(), failure);
  MPI_Bcast(&gathered_levels_, 1, MPI_INT, 0, comm_);
  gathered_level_dims_.resize(static_cast<std::size_t>(gathered_levels_));
  MPI_Bcast(gathered_level_dims_.data(), 3 * gathered_levels_, MPI_INT, 0, comm_);
}

// One colour of plane k over the owned rows and columns widened by `depth`: x[p] = update(p,
// x[p], GS value), the serial sweep's expression. Vectorised over chunks of a row as the serial
// sweep_rows: every cell's value into a buffer (a loop that only reads x), then the colour's
// cells take theirs. A cell of the colour reads only cells of the other one, which this step
// does not change: the values of the cell-by-cell loop.
template <class Real, class Update>
void colour_plane(Level<Real>& l, int colour, int depth, int k, Update update) {
  constexpr int kChunk = 256;
  alignas(64) Real next[kChunk];
  Real* x = l.x.data();
  const Real* b = l.b.data();
  const Real* id = l.inv_diag.data();
  const Real s = static_cast<Real>(l.s);
  const std::int64_t sy = l.sy, sz = l.sz;
  const auto [x0, x1] = widened(l, 0, depth);
  const auto [y0, y1] = widened(l, 1, depth);
  for (int j = y0; j < y1; ++j) {
    const std::int64_t row = l.at(0, j, k);
    for (int c0 = x0; c0 < x1; c0 += kChunk) {
      const int m = std::min(kChunk, x1 - c0);
      const std::int64_t start = row + c0;
#pragma omp simd
      for (int e = 0; e < m; ++e) {
        const std::int64_t p = start + e;
        next[e] = update(p, x[p], id[p] * (b[p] + s * (x[p - 1] + x[p + 1] + x[p - sy] + x[p + sy] + x[p - sz] + x[p + sz])));
      }
      Real* xs = x + start;
      const int keep = (colour + j + k + c0) & 1;  // global x = c0 + e has the colour's parity
#pragma omp simd
      for (int e = 0; e < m; ++e) xs[e] = (e & 1) == keep ? next[e] : xs[e];
    }
  }
}

// One colour of the band cells of plane k: the owned ones, or (wide) those of the first
// ghost layer too. update(q, x, GS value) gets the cell's position q in its list.
template <class Real, class Update>
void band_plane(Level<Real>& l, int colour, bool wide, int k, Update update) {
  const auto& cells = wide ? l.band_wide[colour] : l.band[colour];
  const std::vector<std::int64_t>& planes = wide ? l.band_wide_planes[colour] : l.band_planes[colour];
  const int local = k - l.split.lo[2] + kFrame;
  Real* x = l.x.data();
  const Real* b = l.b.data();
  const Real* id = l.inv_diag.data();
  const Real s = static_cast<Real>(l.s);
  const std::int64_t sy = l.sy, sz = l.sz;
  const std::int64_t* c = cells.data();
  for (std::int64_t q = planes[local], q1 = planes[local + 1]; q < q1; ++q) {
    const std::int64_t p = c[q];
    x[p] = update(q, x[p], id[p] * (b[p] + s * (x[p - 1] + x[p + 1] + x[p - sy] + x[p + sy] + x[p - sz] + x[p + sz])));
  }
}

// Calls sweep(update) with the update rule of `mode`: the plain Gauss-Seidel value, a scalar
// over-relaxation, or a factor per entry (indexed as the sweep passes it: a cell's local index
// for the interior sweeps, the list position for the band's).
template <class Real, class Sweep>
void with_update(Relax mode, Real omega, const Real* per_entry, Sweep&& sweep) {
  if (mode == Relax::PerCell) {
    sweep([per_entry](std::int64_t e, Real x, Real gs) { return x + per_entry[e] * (gs - x); });
  } else if (mode == Relax::Scalar) {
    sweep([omega](std::int64_t, Real x, Real gs) { return x + omega * (gs - x); });
  } else {
    sweep([](std::int64_t, Real, Real gs) { return gs; });
  }
}

// The band sweeps' update rules for a smoother whose first colour is `first`: the first step
// of each sweep runs the wide list of that colour, the second the owned list of the other
// (with_update's rules; one rule for both where there are no per-entry factors).
template <class Real, class Visit>
void with_band_updates(Relax mode, Real omega, const Real* first, const Real* second, Visit&& visit) {
  with_update(mode, omega, first, [&](auto update_first) {
    if (mode == Relax::PerCell)
      visit(update_first, [second](std::int64_t e, Real x, Real gs) { return x + second[e] * (gs - x); });
    else
      visit(update_first, update_first);
  });
}

// One single-colour step on the owned cells and `depth` (0 or 1) ghost layers, the serial
// kernel's update per cell (a ghost cell gets exactly the value its owner computes: the same
// inputs, exchanged, and the same expression). A pass over the level (the stage-by-stage
// order, DistributedMultigridOptions::fused_passes false).
template <class Real>
void Cycle<Real>::step_colour(Level<Real>& l, int colour, int depth) {
  const LogScope scope(g_event_smooth);
  const auto [z0, z1] = widened(l, 2, depth);
  with_update(interior_, interior_omega_, l.omega.data(), [&](auto update) {
#pragma omp parallel for schedule(static) if (l.parallel())
    for (int k = z0; k < z1; ++k) colour_plane(l, colour, depth, k, update);
  });
}

template <class Real>
void Cycle<Real>::step_band(Level<Real>& l, int colour, int depth) {
  const LogScope scope(g_event_smooth);
  const bool wide = depth > 0;
  const auto [z0, z1] = widened(l, 2, depth);
  const bool parallel =
      static_cast<std::int64_t>((wide ? l.band_wide[colour] : l.band[colour]).size()) >= kParallelCells / 4;
  with_update(band_, band_omega_, (wide ? l.band_wide_omega[colour] : l.band_omega[colour]).data(), [&](auto update) {
#pragma omp parallel for schedule(static) if (parallel)
    for (int k = z0; k < z1; ++k) band_plane(l, colour, wide, k, update);
  });
}

// Both steps of a red-black sweep in one pass over the z-planes: first(k) on the planes of the
// owned box widened by one layer, second(k) on the owned planes once first has done planes
// k - 1 .. k + 1. second(k) reads only first's cells of those planes, and the cells it writes
// are read only by first on them, which is over by then: the values of the step-by-step order.
// Threads take slabs of planes; second on a slab's two edge planes waits for a barrier (the
// neighbour slab's first step reads or writes next to them).
template <class Real>
template <class First, class Second>
void Cycle<Real>::fused_pair(const Level<Real>& l, bool parallel, First&& first, Second&& second) {
  const LogScope scope(g_event_smooth);
  const auto [k0, k1] = widened(l, 2, 1);
  const int lo = l.split.lo[2], hi = l.split.hi[2];
  const int planes = k1 - k0;
  const int wanted = parallel ? std::max(1, std::min(omp_get_max_threads(), planes / 4)) : 1;
  const auto owned = [&](int k) { return k >= lo && k < hi; };
#pragma omp parallel num_threads(wanted) if (wanted > 1)
  {
    const int threads = omp_get_num_threads(), id = omp_get_thread_num();
    const int a = k0 + static_cast<int>(std::int64_t(planes) * id / threads);
    const int b = k0 + static_cast<int>(std::int64_t(planes) * (id + 1) / threads);
    for (int k = a; k < b; ++k) {
      first(k);
      if (k - 1 > a && owned(k - 1)) second(k - 1);
    }
    if (threads > 1) {
#pragma omp barrier
    }
    if (b > a && owned(a)) second(a);
    if (b - 1 > a && owned(b - 1)) second(b - 1);
  }
}

// One red-black sweep (colour `first`, then the other) with one ghost exchange: after the
// exchange of two layers, the first step updates the owned cells and the first ghost layer
// (whose neighbours, two layers deep, are current), the second the owned cells (whose
// neighbours in the first layer the first step has just updated). Half the exchanges of one
// per step, the same values.
template <class Real>
void Cycle<Real>::sweep(int li, bool band, int first, bool exchange) {
  Level<Real>& l = levels_[static_cast<std::size_t>(li)];
  if (exchange) halos_[static_cast<std::size_t>(li)].exchange(l.x.data(), kFrame);
  const int second = 1 - first;
  if (!fused_passes_) {
    if (band) {
      step_band(l, first, 1);
      step_band(l, second, 0);
    } else {
      step_colour(l, first, 1);
      step_colour(l, second, 0);
    }
    return;
  }
  if (band) {
    const bool parallel = static_cast<std::int64_t>(l.band_wide[first].size()) >= kParallelCells / 4;
    with_band_updates(band_, band_omega_, l.band_wide_omega[first].data(), l.band_omega[second].data(),
                      [&](auto update_first, auto update_second) {
                        fused_pair(l, parallel, [&](int k) { band_plane(l, first, true, k, update_first); },
                                   [&](int k) { band_plane(l, second, false, k, update_second); });
                      });
  } else {
    with_update(interior_, interior_omega_, l.omega.data(), [&](auto update) {
      fused_pair(l, l.parallel(), [&](int k) { colour_plane(l, first, 1, k, update); },
                 [&](int k) { colour_plane(l, second, 0, k, update); });
    });
  }
}

// x is zero everywhere on entry (no exchange before the first sweep); b's first ghost layer is
// current.
template <class Real>
void Cycle<Real>::pre_smooth(int li) {
  if (wavefront(levels_[static_cast<std::size_t>(li)]))
    return smooth_wavefront(li, 0, false, li == 0 ? load_plane_ : PlaneHook{});
  bool exchange = false;
  for (int s = 0; s < opt_.boundary_sweeps; ++s, exchange = true) sweep(li, true, 0, exchange);
  for (int s = 0; s < opt_.pre_sweeps; ++s, exchange = true) sweep(li, false, 0, exchange);
  for (int s = 0; s < opt_.boundary_sweeps; ++s, exchange = true) sweep(li, true, 0, exchange);
}

// The adjoint of pre_smooth: the same single-colour steps in reverse order.
template <class Real>
void Cycle<Real>::post_smooth(int li) {
  if (wavefront(levels_[static_cast<std::size_t>(li)]))
    return smooth_wavefront(li, 1, true, li == 0 ? store_plane_ : PlaneHook{});
  for (int s = 0; s < opt_.boundary_sweeps; ++s) sweep(li, true, 1, true);
  for (int s = 0; s < opt_.pre_sweeps; ++s) sweep(li, false, 1, true);
  for (int s = 0; s < opt_.boundary_sweeps; ++s) sweep(li, true, 1, true);
}

// The wavefront smoother applies where the ranks split the level along z only (so every step
// covers whole rows and planes), on one thread (threads share a sweep's planes instead), with
// fused passes on.
template <class Real>
bool Cycle<Real>::wavefront(const Level<Real>& l) const {
  return fused_passes_ && procs_[0] == 1 && procs_[1] == 1 && !(l.parallel() && omp_get_max_threads() > 1);
}

// A whole smoother (the sweeps of pre_smooth, or of post_smooth: first = 1) in one pass over
// the planes, then the planes near the rank boundaries, with the step-by-step values.
//
// Step t (sweep t / 2, colour first for even t, the other for odd) covers, as in `sweep`, the
// planes F_t: the owned box widened by one layer for a first colour, the owned box for a
// second; each sweep but the first starts with a ghost exchange. Without those exchanges,
// step t's inputs (step t - 1's values one plane either side) are current only on the planes
// M_t, which shrink by one plane a step at each side that has a neighbour (M_0 = F_0,
// M_1 = F_1, M_t = [lo - 1 + t, hi + 1 - t) there). The pass runs step t on plane m - t of
// M_t for m = first plane .. last + steps: when step t reaches plane k, step t - 1 has done
// k + 1, and has not yet passed k + 2 (whose reads of step t's colour on k + 1 it needs
// before step t writes there). Then, sweep by sweep, one ghost exchange and both its steps
// on the planes of F_t outside M_t: they read step t - 1's values there, which the pass
// left (M_{t+1} keeps a plane away from them), and the neighbours' through the exchange,
// as the exchange before each sweep delivers them (the owned planes sent hold the values of
// the sweep before: the pass's later steps wrote only colours the receiver does not read
// there). The same updates from the same values as sweep by sweep, one pass over the level
// instead of one per sweep; the same exchanges.
//
// `plane` (the finest level's load or store): with the pre-smoother (first = 0), called for
// each owned plane but the two at the rank's z ends (the caller loads those before the ghost
// exchange of b) before step 0 reaches it, the first read of its b; with the post-smoother,
// for each owned plane once its values are final: in the pass after its last step where that
// is in the pass (no later step writes there), the rest after the boundary planes.
template <class Real>
void Cycle<Real>::smooth_wavefront(int li, int first, bool exchange_first, const PlaneHook& plane) {
  Level<Real>& l = levels_[static_cast<std::size_t>(li)];
  const Halo& halo = halos_[static_cast<std::size_t>(li)];
  const int sweeps = static_cast<int>(smoother_.size());
  const int lo = l.split.lo[2], hi = l.split.hi[2];
  const bool load = plane && first == 0, store = plane && first == 1;
  const auto loads = [&](int k) { return k > lo && k < hi - 1; };
  if (sweeps == 0) {
    for (int k = lo; k < hi; ++k)
      if (store || loads(k)) plane(k);
    return;
  }
  if (exchange_first) halo.exchange(l.x.data(), kFrame);
  const int second = 1 - first, steps = 2 * sweeps;
  const bool below = lo > 0, above = hi < l.split.dims.nz;
  const auto full = [&](int t) { return widened(l, 2, (t & 1) ? 0 : 1); };
  const auto current = [&](int t) {
    const auto [f0, f1] = full(t);
    return std::pair<int, int>{below ? lo - 1 + t : f0, above ? hi + 1 - t : f1};
  };
  with_update(interior_, interior_omega_, l.omega.data(), [&](auto interior) {
    with_band_updates(band_, band_omega_, l.band_wide_omega[first].data(), l.band_omega[second].data(),
                      [&](auto band_first, auto band_second) {
      const auto step = [&](int t, int k) {
        const bool band = smoother_[static_cast<std::size_t>(t >> 1)] != 0;
        if ((t & 1) == 0) {
          if (band) band_plane(l, first, true, k, band_first);
          else colour_plane(l, first, 1, k, interior);
        } else {
          if (band) band_plane(l, second, false, k, band_second);
          else colour_plane(l, second, 0, k, interior);
        }
      };
      const auto [last0, last1] = current(steps - 1);
      const auto final_in_pass = [&](int k) { return k >= last0 && k < last1 && k >= lo && k < hi; };
      {
        const LogScope scope(g_event_smooth);
        const auto [m0, m1] = full(0);
        for (int m = m0; m < m1 + steps - 1; ++m) {
          if (load && loads(m)) plane(m);
          for (int t = 0; t < steps; ++t) {
            const int k = m - t;
            const auto [a, b] = current(t);
            if (k >= a && k < b) step(t, k);
          }
          if (store && final_in_pass(m - steps + 1)) plane(m - steps + 1);
        }
      }
      for (int s = 1; s < sweeps; ++s) {
        halo.exchange(l.x.data(), kFrame);
        const LogScope scope(g_event_smooth);
        for (int t = 2 * s; t < 2 * s + 2; ++t) {
          const auto [f0, f1] = full(t);
          const auto [a, b] = current(t);
          if (a >= b) {
            for (int k = f0; k < f1; ++k) step(t, k);
          } else {
            for (int k = f0; k < a; ++k) step(t, k);
            for (int k = b; k < f1; ++k) step(t, k);
          }
        }
      }
      if (store)
        for (int k = lo; k < hi; ++k)
          if (!final_in_pass(k)) plane(k);
    });
  });
}

// The band cells of the first ghost layer and their factors, from their owners (set-up), and
// the per-cell interior factors there.
template <class Real>
void Cycle<Real>::widen_band(int li) {
  Level<Real>& l = levels_[static_cast<std::size_t>(li)];
  const Halo& halo = halos_[static_cast<std::size_t>(li)];
  // The band cells marked by their factor (in (0, 2)), or by 1 where the band has none, in x's
  // storage (zero until the first cycle; zeroed again below): one exchange, no fresh pages.
  Real* mark = l.x.data();
  for (int c = 0; c < 2; ++c)
    for (std::size_t q = 0; q < l.band[c].size(); ++q)
      mark[l.band[c][q]] = band_ == Relax::PerCell ? l.band_omega[c][q] : Real(1);
  halo.exchange(mark, 1);
  if (interior_ == Relax::PerCell) halo.exchange(l.omega.data(), 1);
  const Dims d = l.split.dims;
  const auto each_marked_cell = [&](auto&& visit) {
    for (int k = std::max(l.split.lo[2] - 1, 0); k < std::min(l.split.hi[2] + 1, d.nz); ++k)
      for (int j = std::max(l.split.lo[1] - 1, 0); j < std::min(l.split.hi[1] + 1, d.ny); ++j)
        for (int i = std::max(l.split.lo[0] - 1, 0); i < std::min(l.split.hi[0] + 1, d.nx); ++i) {
          const std::int64_t p = l.at(i, j, k);
          if (mark[p] != Real(0)) visit((i + j + k) & 1, p);
        }
  };
  std::size_t counts[2] = {0, 0};  // counted first, as the band in finish_level
  each_marked_cell([&](int c, std::int64_t) { ++counts[c]; });
  for (int c = 0; c < 2; ++c) {
    l.band_wide[c].clear();
    l.band_wide_omega[c].clear();
    l.band_wide[c].reserve(counts[c]);
    l.band_wide_omega[c].reserve(counts[c]);
  }
  each_marked_cell([&](int c, std::int64_t p) {
    l.band_wide[c].push_back(p);
    l.band_wide_omega[c].push_back(band_ == Relax::PerCell ? mark[p] : Real(0));
  });
  std::fill(l.x.begin(), l.x.end(), Real(0));
  // Each list's start per local plane (the lists are in local-index order).
  const auto plane_starts = [&](const auto& cells, std::vector<std::int64_t>& starts) {
    starts.assign(static_cast<std::size_t>(l.ext[2]) + 1, 0);
    for (int k = 0; k <= l.ext[2]; ++k)
      starts[static_cast<std::size_t>(k)] = std::lower_bound(cells.begin(), cells.end(), l.sz * k) - cells.begin();
  };
  for (int c = 0; c < 2; ++c) {
    plane_starts(l.band[c], l.band_planes[c]);
    plane_starts(l.band_wide[c], l.band_wide_planes[c]);
  }
}

// r = (b - A x) / W on fine plane k, over the owned rows and columns widened by `depth`
// (x's ghosts `depth + 1` deep current).
template <class Real>
void residual_plane(Level<Real>& f, int depth, int k) {
  const Real* x = f.x.data();
  const Real* b = f.b.data();
  const Real* id = f.inv_diag.data();
  const Real* iw = f.inv_w.data();
  Real* r = f.residual();
  const Real s = static_cast<Real>(f.s);
  const std::int64_t sy = f.sy, sz = f.sz;
  const auto [x0, x1] = widened(f, 0, depth);
  const auto [y0, y1] = widened(f, 1, depth);
  for (int j = y0; j < y1; ++j) {
    const std::int64_t row = f.at(0, j, k);
    for (int i = x0; i < x1; ++i) {
      const std::int64_t p = row + i;
      const Real inv = id[p];
      const Real diag = inv != Real(0) ? Real(1) / inv : Real(0);
      const Real ax = diag * x[p] - s * (x[p - 1] + x[p + 1] + x[p - sy] + x[p + sy] + x[p - sz] + x[p + sz]);
      r[p] = iw[p] * (b[p] - ax);
    }
  }
}

// b_c = (1/8) * the restriction sum on the owned coarse fluid cells of coarse plane k: the
// serial restriction's sums, vectorised over chunks of a coarse row (restriction_sums).
template <class Real>
void restriction_plane(const Level<Real>& f, Level<Real>& c, int k) {
  constexpr int kChunk = 128;
  alignas(64) Real sum[kChunk];
  const Real* r = f.r_borrowed ? f.r_borrowed : f.r.data();
  Real* bc = c.b.data();
  const std::uint8_t* ct = c.type.data();
  const int i_lo = c.split.lo[0], i_hi = c.split.hi[0];
  for (int j = c.split.lo[1]; j < c.split.hi[1]; ++j)
    for (int i0 = i_lo; i0 < i_hi; i0 += kChunk) {
      const int m = std::min(kChunk, i_hi - i0);
      transfer::restriction_sums<Real>(m, sum, [&](int e, int b) { return r + f.at(2 * i0 - 1, 2 * j - 1 + b, 2 * k - 1 + e); });
      const std::int64_t row = c.at(i0, j, k);
#pragma omp simd
      for (int i = 0; i < m; ++i) bc[row + i] = ct[row + i] == kFluid ? Real(0.125) * sum[i] : Real(0);
    }
}

// r = (b - A x) / W, then b_c = (1/8) * the restriction sum on the owned coarse fluid cells,
// which reads r on the fine cells 2I-1 .. 2I+2 of each coarse cell I. Where every rank
// boundary of the level lies at an even cell (split_evenly), those are the owned fine cells
// and one ghost layer: x's ghosts are current two deep, each rank computes r on that layer
// itself (the same expression from the same values as its owner), and one pass over the
// planes restricts each coarse plane as soon as its fine planes are done, with no exchange
// of r. Otherwise r is computed on the owned cells and its ghosts exchanged two deep (coarse
// cells at an odd boundary read the second layer). x's ghosts: exchanged here.
template <class Real>
void Cycle<Real>::residual_to_coarse(int li) {
  Level<Real>& f = levels_[static_cast<std::size_t>(li)];
  Level<Real>& c = levels_[static_cast<std::size_t>(li) + 1];
  const Halo& halo = halos_[static_cast<std::size_t>(li)];
  const bool fused = fused_passes_ && f.split_evenly;
  const int depth = fused ? 1 : 0;
  halo.exchange(f.x.data(), depth + 1);
  const LogScope scope(g_event_transfer);
  const auto [k0, k1] = widened(f, 2, depth);
  if (fused && !(f.parallel() && omp_get_max_threads() > 1)) {
    int next = c.split.lo[2];  // the next coarse plane to restrict
    for (int k = k0; k < k1; ++k) {
      residual_plane(f, depth, k);
      // Coarse plane kc reads fine planes up to 2 kc + 2 (r is 0 beyond the grid, and no
      // further than the first ghost layer where the level is split evenly).
      while (next < c.split.hi[2] && std::min(2 * next + 2, k1 - 1) <= k) restriction_plane(f, c, next++);
    }
    return;
  }
#pragma omp parallel for schedule(static) if (f.parallel())
  for (int k = k0; k < k1; ++k) residual_plane(f, depth, k);
  if (!fused) halo.exchange(f.residual(), kFrame);
#pragma omp parallel for schedule(static) if (c.parallel())
  for (int k = c.split.lo[2]; k < c.split.hi[2]; ++k) restriction_plane(f, c, k);
}

// x_f += W^{-1} * trilinear(x_c) on the owned fine cells (x_c's ghosts are current).
template <class Real>
void Cycle<Real>::prolongate(int li) {
  Level<Real>& f = levels_[static_cast<std::size_t>(li)];
  const Level<Real>& c = levels_[static_cast<std::size_t>(li) + 1];
  const Real* xc = c.x.data();
  Real* xf = f.x.data();
  const Real* iw = f.inv_w.data();
  PetscLogEventBegin(g_event_transfer, 0, 0, 0, 0);
  // The serial cycle's values, vectorised as its prolongate_rows: the fine cells of a run of
  // coarse parents, even and odd into buffers (transfer::prolongation_pairs), then merged.
  constexpr int kChunk = 128;  // coarse cells
  const int lo = f.split.lo[0], hi = f.split.hi[0];
#pragma omp parallel for schedule(static) if (f.parallel())
  for (int k = f.split.lo[2]; k < f.split.hi[2]; ++k) {
    alignas(64) Real even[kChunk], odd[kChunk];
    for (int j = f.split.lo[1]; j < f.split.hi[1]; ++j) {
      const transfer::ProlongationRows rows = transfer::prolongation_rows(c, j, k);
      const std::int64_t row = f.at(0, j, k);
      for (int m0 = lo >> 1; 2 * m0 < hi; m0 += kChunk) {
        const int n = std::min(kChunk, ((hi + 1) >> 1) - m0);
        transfer::prolongation_pairs(xc, rows, m0, n, even, odd);
        const int i0 = std::max(lo, 2 * m0), i1 = std::min(hi, 2 * (m0 + n));
        for (int i = i0; i < i1; ++i) {
          const std::int64_t p = row + i;
          const Real v = (i & 1) ? odd[(i >> 1) - m0] : even[(i >> 1) - m0];
          xf[p] = iw[p] != Real(0) ? xf[p] + iw[p] * v : xf[p];
        }
      }
    }
  }
  PetscLogEventEnd(g_event_transfer, 0, 0, 0, 0);
}

// The gathered level: b to rank 0, the serial cycle there, x back to every rank's box. The
// serial cycle's top level has off-diagonals 1 where ours has s = 4^-L, so its answer is ours
// divided by s; s is a power of two, so scaling by it is exact.
template <class Real>
void Cycle<Real>::gathered_solve() {
  const LogScope scope(g_event_gathered);
  Level<Real>& l = levels_.back();
  std::size_t n = 0;
  l.for_owned([&](int, int, int, std::int64_t p) { gather_send_[n++] = l.b[static_cast<std::size_t>(p)]; });
  MPI_Gatherv(gather_send_.data(), static_cast<int>(n), mpi_type<Real>(), gather_all_.data(), gather_counts_.data(),
              gather_offsets_.data(), mpi_type<Real>(), 0, comm_);
  if (rank_ == 0) {
    // Every rank's box, in the order of the gathered values: visit(full-grid index, position).
    const Dims d = l.split.dims;
    const auto each_gathered_cell = [&](auto&& visit) {
      for (int q = 0; q < size_; ++q) {
        const Split& s = gather_boxes_[static_cast<std::size_t>(q)];
        std::size_t m = static_cast<std::size_t>(gather_offsets_[static_cast<std::size_t>(q)]);
        for (int k = s.lo[2]; k < s.hi[2]; ++k)
          for (int j = s.lo[1]; j < s.hi[1]; ++j)
            for (int i = s.lo[0]; i < s.hi[0]; ++i) visit(static_cast<std::size_t>(d.index(i, j, k)), m++);
      }
    };
    each_gathered_cell([&](std::size_t c, std::size_t m) { serial_r_[c] = static_cast<double>(gather_all_[m]); });
    serial_->apply(serial_r_, serial_z_);
    const double scale = 1.0 / gathered_scale_;
    each_gathered_cell([&](std::size_t c, std::size_t m) { gather_all_[m] = static_cast<Real>(serial_z_[c] * scale); });
  }
  MPI_Scatterv(gather_all_.data(), gather_counts_.data(), gather_offsets_.data(), mpi_type<Real>(),
               gather_send_.data(), static_cast<int>(n), mpi_type<Real>(), 0, comm_);
  std::fill(l.x.begin(), l.x.end(), Real(0));
  n = 0;
  l.for_owned([&](int, int, int, std::int64_t p) { l.x[static_cast<std::size_t>(p)] = gather_send_[n++]; });
}

template <class Real>
void Cycle<Real>::vcycle(int li) {
  const Halo& halo = halos_[static_cast<std::size_t>(li)];
  if (li + 1 == static_cast<int>(levels_.size())) {
    gathered_solve();
    halo.exchange(levels_.back().x.data(), 1);  // the prolongation reads one ghost layer
    return;
  }
  Level<Real>& l = levels_[static_cast<std::size_t>(li)];
  std::fill(l.x.begin(), l.x.end(), Real(0));
  // The finest level's b, loaded in its pre-smoothing pass: the planes its neighbours need
  // first (see smooth_wavefront).
  if (li == 0 && load_plane_) {
    load_plane_(l.split.lo[2]);
    if (l.split.hi[2] - 1 > l.split.lo[2]) load_plane_(l.split.hi[2] - 1);
  }
  halo.exchange(l.b.data(), 1);  // the sweeps' first steps update the first ghost layer
  pre_smooth(li);
  residual_to_coarse(li);
  vcycle(li + 1);
  prolongate(li);
  post_smooth(li);
  if (li > 0) halo.exchange(l.x.data(), 1);  // the finer level's prolongation reads it
}

template <class Real>
template <class Out>
void Cycle<Real>::apply_to(const PetscScalar* r, Out* z, std::size_t z_bytes) {
  Level<Real>& top = levels_.front();
  // b = r on the fluid cells, z = x afterwards, a row at a time (converted, then selected:
  // a conversion under the condition keeps the loop from vectorising). Where the finest
  // level's smoothers are one pass each, inside those passes a plane at a time (the data
  // streams through once instead of three times).
  const int row_cells = top.split.extent(0);
  const std::size_t plane_cells = static_cast<std::size_t>(row_cells) * static_cast<std::size_t>(top.split.extent(1));
  const auto for_plane_rows = [&](int k, auto&& visit) {
    std::size_t n = static_cast<std::size_t>(k - top.split.lo[2]) * plane_cells;
    for (int j = top.split.lo[1]; j < top.split.hi[1]; ++j, n += static_cast<std::size_t>(row_cells))
      visit(top.at(top.split.lo[0], j, k), n);
  };
  const auto load = [&](int k) {
    for_plane_rows(k, [&](std::int64_t row, std::size_t n) {
      Real* b = top.b.data() + row;
      const Real* id = top.inv_diag.data() + row;
      const PetscScalar* in = r + n;
#pragma omp simd
      for (int i = 0; i < row_cells; ++i) {
        const Real v = static_cast<Real>(in[i]);
        b[i] = id[i] != Real(0) ? v : Real(0);
      }
    });
  };
  const auto store = [&](int k) {
    for_plane_rows(k, [&](std::int64_t row, std::size_t n) {
      const Real* x = top.x.data() + row;
      Out* out = z + n;
#pragma omp simd
      for (int i = 0; i < row_cells; ++i) out[i] = static_cast<Out>(x[i]);
    });
  };
  const bool in_passes = levels_.size() > 1 && wavefront(top);
  // The hooks refer to this call's locals: cleared however the call ends.
  struct ClearHooks {
    Cycle* cycle;
    ~ClearHooks() {
      cycle->load_plane_ = {};
      cycle->store_plane_ = {};
    }
  } clear_hooks{this};
  if (in_passes) {
    load_plane_ = load;
    store_plane_ = store;
  } else {
    for (int k = top.split.lo[2]; k < top.split.hi[2]; ++k) load(k);
  }
  if (levels_.size() == 1) {
    gathered_solve();
  } else {
    const bool borrow = borrow_top_residual_ && top.r.empty() &&
                        static_cast<std::size_t>(top.size()) * sizeof(Real) <= z_bytes;
    // An output too small to lend its storage (a float output without the workspace): the
    // level's own array, made once and kept (zeroed as at set-up).
    if (borrow_top_residual_ && !borrow && top.r.empty()) top.r.assign(static_cast<std::size_t>(top.size()), Real(0));
    if (borrow) {
      // The frame zeroed, as the level's own array would hold where neither the residual nor
      // the halo writes (beyond the grid); the residual writes every owned cell. The storage
      // is z's, overwritten below.
      top.r_borrowed = reinterpret_cast<Real*>(z);
      Real* rb = top.r_borrowed;
      const int ex = top.ext[0], ey = top.ext[1], ez = top.ext[2];
      for (int k = 0; k < ez; ++k) {
        Real* plane = rb + top.sz * k;
        if (k < kFrame || k >= ez - kFrame) {
          std::fill_n(plane, top.sz, Real(0));
          continue;
        }
        std::fill_n(plane, top.sy * kFrame, Real(0));
        std::fill_n(plane + top.sy * (ey - kFrame), top.sy * kFrame, Real(0));
        for (int j = kFrame; j < ey - kFrame; ++j) {
          std::fill_n(plane + top.sy * j, kFrame, Real(0));
          std::fill_n(plane + top.sy * j + ex - kFrame, kFrame, Real(0));
        }
      }
    }
    vcycle(0);
    top.r_borrowed = nullptr;
  }
  if (!in_passes)
    for (int k = top.split.lo[2]; k < top.split.hi[2]; ++k) store(k);
}

}  // namespace

GridGeometry GridGeometry::of(const PressureSystem& system) {
  GridGeometry g;
  g.comm = system.comm();
  g.dims = system.dims();
  g.weighted = system.weighted();
  // The outer faces as the system's cells beyond them.
  g.faces[0] = system.cell(-1, 0, 0) == CellType::Air ? FaceBoundary::Open : FaceBoundary::Wall;
  g.faces[1] = system.cell(g.dims.nx, 0, 0) == CellType::Air ? FaceBoundary::Open : FaceBoundary::Wall;
  g.faces[2] = system.cell(0, -1, 0) == CellType::Air ? FaceBoundary::Open : FaceBoundary::Wall;
  g.faces[3] = system.cell(0, g.dims.ny, 0) == CellType::Air ? FaceBoundary::Open : FaceBoundary::Wall;
  g.faces[4] = system.cell(0, 0, -1) == CellType::Air ? FaceBoundary::Open : FaceBoundary::Wall;
  g.faces[5] = system.cell(0, 0, g.dims.nz) == CellType::Air ? FaceBoundary::Open : FaceBoundary::Wall;
  PetscInt m = 0, n = 0, p = 0;
  DCDM_PETSC_CALL(DMDAGetInfo(system.dm(), nullptr, nullptr, nullptr, nullptr, &m, &n, &p, nullptr, nullptr, nullptr,
                              nullptr, nullptr, nullptr));
  const PetscInt* ranges[3] = {nullptr, nullptr, nullptr};
  DCDM_PETSC_CALL(DMDAGetOwnershipRanges(system.dm(), &ranges[0], &ranges[1], &ranges[2]));
  const PetscInt procs[3] = {m, n, p};
  const Box& box = system.box();
  const PetscInt lo[3] = {box.xs, box.ys, box.zs};
  for (int a = 0; a < 3; ++a) {
    g.procs[a] = static_cast<int>(procs[a]);
    g.starts[a].assign(static_cast<std::size_t>(procs[a]) + 1, 0);
    for (PetscInt q = 0; q < procs[a]; ++q) g.starts[a][static_cast<std::size_t>(q) + 1] = g.starts[a][static_cast<std::size_t>(q)] + ranges[a][q];
    g.coord[a] = static_cast<int>(std::find(g.starts[a].begin(), g.starts[a].end(), lo[a]) - g.starts[a].begin());
  }
  int rank = 0;
  MPI_Comm_rank(g.comm, &rank);
  // DMDA numbers its ranks x fastest; the halo exchange relies on it.
  if (g.coord[0] + g.procs[0] * (g.coord[1] + g.procs[1] * g.coord[2]) != rank)
    throw Error("dcdm_mg: the DMDA's rank layout is not x-fastest");
  g.owned_types.reserve(static_cast<std::size_t>(box.owned()));
  for (PetscInt k = box.zs; k < box.zs + box.zm; ++k)
    for (PetscInt j = box.ys; j < box.ys + box.ym; ++j)
      for (PetscInt i = box.xs; i < box.xs + box.xm; ++i) g.owned_types.push_back(static_cast<std::uint8_t>(system.cell(i, j, k)));
  return g;
}

struct DistributedMultigrid::Impl {
  std::unique_ptr<CycleBase> cycle;
};

DistributedMultigrid::DistributedMultigrid(const GridGeometry& grid, DistributedMultigridOptions options)
    : options_(std::move(options)), impl_(std::make_unique<Impl>()) {
  // The cycle coarsens and smooths the unit operator from the cell types alone: it would
  // precondition some other system. Every rank holds the same flag, so all throw.
  if (grid.weighted)
    throw InputError("dcdm_mg (--method mgpcg|dcdm-relax) takes unit-coefficient systems only, not weighted ones "
                     "(liquid, cutcell, density, folders with coefficients): use -pc_type gamg or hypre");
  const MultigridOptions& o = options_.cycle;
  if (o.pre_sweeps < 0 || o.boundary_sweeps < 0 || o.band_width < 0 || o.coarsest_cells < 1 || o.max_levels < 1 ||
      o.coarse_cycles < 0 || o.direct_cells < 1)
    throw InputError("dcdm_mg: sweeps, band width, coarse cycles and level limits must be non-negative");
  if (options_.gather_cells < 0) throw InputError("dcdm_mg: gather_cells must be non-negative");
  if (options_.cycle.single_precision)
    impl_->cycle = std::make_unique<Cycle<float>>(grid, options_);
  else
    impl_->cycle = std::make_unique<Cycle<double>>(grid, options_);
}

DistributedMultigrid::~DistributedMultigrid() = default;

void DistributedMultigrid::apply(Vec r, Vec z) const {
  const PetscScalar* in = nullptr;
  PetscScalar* out = nullptr;
  DCDM_PETSC_CALL(VecGetArrayRead(r, &in));
  DCDM_PETSC_CALL(VecGetArray(z, &out));
  impl_->cycle->apply(in, out);
  DCDM_PETSC_CALL(VecRestoreArray(z, &out));
  DCDM_PETSC_CALL(VecRestoreArrayRead(r, &in));
}

void DistributedMultigrid::apply_single(Vec r, float* z, std::size_t capacity) const {
  const PetscScalar* in = nullptr;
  DCDM_PETSC_CALL(VecGetArrayRead(r, &in));
  impl_->cycle->apply_single(in, z, capacity);
  DCDM_PETSC_CALL(VecRestoreArrayRead(r, &in));
}

std::size_t DistributedMultigrid::single_workspace() const { return impl_->cycle->single_workspace(); }

int DistributedMultigrid::levels() const { return impl_->cycle->levels(); }
int DistributedMultigrid::distributed_levels() const { return impl_->cycle->distributed_levels(); }
Dims DistributedMultigrid::level_dims(int level) const { return impl_->cycle->level_dims(level); }

// ---- the PC type ----

namespace {

constexpr const char* kGeometryKey = "dcdm_grid_geometry";

struct PcDcdmMg {
  std::unique_ptr<DistributedMultigrid> cycle;
  char model[PETSC_MAX_PATH_LEN] = "";
  char settings[1024] = "";
  PetscInt gather_cells = 32768;
};

PcDcdmMg* pc_data(PC pc) { return static_cast<PcDcdmMg*>(pc->data); }

PetscErrorCode destroy_geometry(void* ctx) {
  delete static_cast<GridGeometry*>(ctx);
  return 0;
}

// Runs body, turning a C++ exception into a PETSc error carrying its message.
template <class Body>
PetscErrorCode guarded(PC pc, Body&& body) {
  try {
    body();
  } catch (const PetscFailure& e) {
    return e.code;
  } catch (const std::exception& e) {
    SETERRQ(PetscObjectComm((PetscObject)pc), PETSC_ERR_USER_INPUT, "%s", e.what());
  }
  return 0;
}

PetscErrorCode pc_setup(PC pc) {
  PetscFunctionBegin;
  PetscCall(guarded(pc, [&] {
    PcDcdmMg* data = pc_data(pc);
    DM dm = nullptr;
    DCDM_PETSC_CALL(PCGetDM(pc, &dm));
    PetscContainer container = nullptr;
    if (dm) DCDM_PETSC_CALL(PetscObjectQuery((PetscObject)dm, kGeometryKey, (PetscObject*)&container));
    if (!container)
      throw InputError("dcdm_mg: the PC has no pressure-system grid (give the KSP the system's DM and call "
                       "dcdm::petsc::attach_geometry first)");
    void* ctx = nullptr;
    DCDM_PETSC_CALL(PetscContainerGetPointer(container, &ctx));
    const GridGeometry& grid = *static_cast<const GridGeometry*>(ctx);
    DistributedMultigridOptions options;
    if (data->model[0]) {
      if (data->settings[0])
        throw InputError("dcdm_mg: -pc_dcdm_mg_model and -pc_dcdm_mg_settings exclude each other (a model sets the cycle)");
      const std::string name = data->model;
      const learn::RelaxNet net = name == "initial" ? learn::RelaxNet::initial() : learn::RelaxNet::load(learn::find_model(name));
      options.cycle = net.cycle_options();
    } else {
      options.cycle = parse_multigrid_settings(data->settings, fmt::format("-pc_dcdm_mg_settings {}", data->settings));
    }
    options.gather_cells = data->gather_cells;
    data->cycle.reset();
    data->cycle = std::make_unique<DistributedMultigrid>(grid, std::move(options));
  }));
  PetscFunctionReturn(0);
}

PetscErrorCode pc_apply(PC pc, Vec r, Vec z) {
  PetscFunctionBegin;
  PetscCall(guarded(pc, [&] { pc_data(pc)->cycle->apply(r, z); }));
  PetscFunctionReturn(0);
}

// KSPDCDM's float direction (the composed functions "DCDMPCApplySingle_C" and
// "DCDMPCSingleWorkspace_C", include/dcdm/petsc.hpp): the cycle writes its output in float
// directly, and with `capacity` floats at z its finest residual lives there meanwhile.
PetscErrorCode pc_apply_single(PC pc, Vec r, PetscInt capacity, float z[]) {
  PetscFunctionBegin;
  PetscCall(PetscLogEventBegin(PC_Apply, pc, r, 0, 0));
  PetscCall(guarded(pc, [&] {
    if (!pc_data(pc)->cycle) throw Error("dcdm_mg: the PC is applied before its set-up");
    pc_data(pc)->cycle->apply_single(r, z, static_cast<std::size_t>(capacity));
  }));
  PetscCall(PetscLogEventEnd(PC_Apply, pc, r, 0, 0));
  PetscFunctionReturn(0);
}

PetscErrorCode pc_single_workspace(PC pc, PetscInt* floats) {
  PetscFunctionBegin;
  *floats = pc_data(pc)->cycle ? static_cast<PetscInt>(pc_data(pc)->cycle->single_workspace()) : 0;
  PetscFunctionReturn(0);
}

PetscErrorCode pc_destroy(PC pc) {
  PetscFunctionBegin;
  delete pc_data(pc);
  pc->data = nullptr;
  PetscCall(PetscObjectComposeFunction((PetscObject)pc, "DCDMPCApplySingle_C", nullptr));
  PetscCall(PetscObjectComposeFunction((PetscObject)pc, "DCDMPCSingleWorkspace_C", nullptr));
  PetscFunctionReturn(0);
}

PetscErrorCode pc_set_from_options(PC pc, PetscOptionItems* PetscOptionsObject) {
  PcDcdmMg* data = pc_data(pc);
  PetscFunctionBegin;
  PetscOptionsHeadBegin(PetscOptionsObject, "dcdm_mg options");
  PetscCall(PetscOptionsString("-pc_dcdm_mg_model", "relaxnet model (name or file): the learned float cycle",
                               "PCDCDMMG", data->model, data->model, sizeof(data->model), nullptr));
  PetscCall(PetscOptionsString("-pc_dcdm_mg_settings", "mgpcg settings (omega=W:band-omega=W:...:precision=float)",
                               "PCDCDMMG", data->settings, data->settings, sizeof(data->settings), nullptr));
  PetscCall(PetscOptionsInt("-pc_dcdm_mg_gather_cells", "gather levels of at most this many cells onto rank 0",
                            "PCDCDMMG", data->gather_cells, &data->gather_cells, nullptr));
  PetscOptionsHeadEnd();
  PetscFunctionReturn(0);
}

PetscErrorCode pc_view(PC pc, PetscViewer viewer) {
  PcDcdmMg* data = pc_data(pc);
  PetscBool ascii = PETSC_FALSE;
  PetscFunctionBegin;
  PetscCall(PetscObjectTypeCompare((PetscObject)viewer, PETSCVIEWERASCII, &ascii));
  if (!ascii) PetscFunctionReturn(0);
  PetscCall(PetscViewerASCIIPrintf(viewer, "  dcdm multigrid V-cycle: %s\n",
                                   data->model[0] ? data->model : data->settings[0] ? data->settings : "mgpcg defaults"));
  if (data->cycle) {
    const DistributedMultigrid& c = *data->cycle;
    PetscCall(PetscViewerASCIIPrintf(viewer, "  levels %d (%d split across the ranks, the rest on rank 0), %s\n",
                                     c.levels(), c.distributed_levels(),
                                     c.options().cycle.single_precision ? "float" : "double"));
    for (int li = 0; li < c.levels(); ++li) {
      const Dims d = c.level_dims(li);
      PetscCall(PetscViewerASCIIPrintf(viewer, "    level %d: %d x %d x %d%s\n", li, d.nx, d.ny, d.nz,
                                       li < c.distributed_levels() ? "" : " (rank 0)"));
    }
  }
  PetscFunctionReturn(0);
}

PetscErrorCode pc_create(PC pc) {
  PetscFunctionBegin;
  pc->data = new PcDcdmMg();
  pc->ops->setup = pc_setup;
  pc->ops->apply = pc_apply;
  pc->ops->destroy = pc_destroy;
  pc->ops->setfromoptions = pc_set_from_options;
  pc->ops->view = pc_view;
  PetscCall(PetscObjectComposeFunction((PetscObject)pc, "DCDMPCApplySingle_C", pc_apply_single));
  PetscCall(PetscObjectComposeFunction((PetscObject)pc, "DCDMPCSingleWorkspace_C", pc_single_workspace));
  PetscFunctionReturn(0);
}

}  // namespace

void attach_geometry(const PressureSystem& system) {
  auto* geometry = new GridGeometry(GridGeometry::of(system));
  PetscContainer container = nullptr;
  DCDM_PETSC_CALL(PetscContainerCreate(system.comm(), &container));
  DCDM_PETSC_CALL(PetscContainerSetPointer(container, geometry));
  DCDM_PETSC_CALL(PetscContainerSetUserDestroy(container, destroy_geometry));
  DCDM_PETSC_CALL(PetscObjectCompose((PetscObject)system.dm(), kGeometryKey, (PetscObject)container));
  DCDM_PETSC_CALL(PetscContainerDestroy(&container));
}

void register_multigrid_pc() {
  static bool registered = false;
  if (registered) return;
  DCDM_PETSC_CALL(PCRegister(PCDCDMMG, pc_create));
  PetscClassId id = 0;
  DCDM_PETSC_CALL(PetscClassIdRegister("dcdm multigrid", &id));
  DCDM_PETSC_CALL(PetscLogEventRegister("DCDMMGSmooth", id, &g_event_smooth));
  DCDM_PETSC_CALL(PetscLogEventRegister("DCDMMGTransfer", id, &g_event_transfer));
  DCDM_PETSC_CALL(PetscLogEventRegister("DCDMMGHalo", id, &g_event_halo));
  DCDM_PETSC_CALL(PetscLogEventRegister("DCDMMGGathered", id, &g_event_gathered));
  registered = true;
}

const DistributedMultigrid* multigrid_of(PC pc) {
  PetscBool same = PETSC_FALSE;
  DCDM_PETSC_CALL(PetscObjectTypeCompare((PetscObject)pc, PCDCDMMG, &same));
  return same && pc->data ? pc_data(pc)->cycle.get() : nullptr;
}

}  // namespace dcdm::petsc
