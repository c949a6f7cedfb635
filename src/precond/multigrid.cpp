// Geometric multigrid V-cycle for irregular voxel domains, after McAdams, Sifakis and Teran,
// "A parallel multigrid Poisson solver for fluids simulation on large grids" (SCA 2010),
// used as a CG preconditioner (MGPCG).
//
// Rules (see also precond.hpp):
// - Coarsening 2x per axis, ceil for odd sizes (children beyond the grid are ignored).
//   A coarse cell is Air if any child is Air (Dirichlet wins, so the coarse problem never
//   loses a Dirichlet condition and stays non-singular where the fine one is), else Fluid if
//   any child is Fluid, else Solid. Outer faces keep their Wall/Open type on every level. A
//   coarse fluid cell with no non-solid neighbour (possible in thin gaps) becomes Solid.
// - Each level's operator is the 7-point stencil rediscretised on its flags with spacing
//   2^l: off-diagonals -1/4^l, diagonal (non-solid neighbours)/4^l.
// - Prolongation: cell-centred trilinear (1/4, 3/4 per axis) from the 8 nearest coarse cells.
//   Solid coarse cells (and cells beyond a wall) carry no value: their weight is dropped and
//   the others renormalised, a Neumann-consistent interpolation; air cells keep their weight
//   with value 0 (Dirichlet). Fine cells outside the fluid get nothing. Restriction is
//   R = P^T / 8 exactly (the same weights and normalisers), which makes the cycle symmetric.
// - Smoother: red-black Gauss-Seidel. Before and after the interior sweeps, extra sweeps on the
//   band of fluid cells near non-fluid cells/walls, where the coarse grid represents the
//   geometry worst. The post-smoother runs the pre-smoother's steps in reverse order (each
//   single-colour update is self-adjoint), so the V-cycle is a symmetric operator.
// - Coarsest level (<= MultigridOptions::coarsest_cells cells): sparse Cholesky (Eigen
//   SimplicialLDLT) of the fluid-cell matrix with one node pinned per singular component;
//   right-hand side and result are projected to zero mean on those components, i.e. the
//   symmetric pseudo-inverse. So singular (all-Neumann) problems keep consistent coarse
//   problems. With MultigridOptions::coarse_cycles (unit hierarchies) that level is solved
//   instead by that many V-cycles of its own on its projected right-hand side, x_{i+1} = x_i +
//   V(b - A x_i), over coarser levels down to one of at most direct_cells cells, which is
//   factorised as above (inner_solve): the sum of (I - V A)^i V is symmetric like V, so the
//   cycle stays a symmetric preconditioner, and the set-up skips the largest factorisation.
//
// Weighted domains (Domain::coefficients; the unit operator never gets here and runs the code
// above unchanged, bit for bit: every kernel branches once per call, not per cell):
// - Level 0 is A itself: per cell the weighted diagonal and the couplings with the neighbours
//   below (Level::wx, wy, wz = scale * face weight, 0 unless both cells are fluid). A fluid cell
//   whose weighted diagonal is 0 (an all-zero row of A) becomes Solid, on every level.
// - Coarse coefficients, relative to the level scale s/4^l (LevelWeights, double, only while
//   building): a coarse face from its (up to) four fine faces (MultigridOptions::
//   weight_coarsening, see coarsen_weights); the diagonal term (ghost-fluid free surfaces)
//   (sum of the fluid children's terms)/16 in absolute value, a boundary-face quantity like
//   the face weights. With unit weights OpenMean (the default) and PathHarmonic give exactly
//   the unit scheme.
// - Prolongation (weighted_interpolation): trilinear with each coarse parent weighed by its
//   conductivity kappa (the mean weight of its faces to non-solid neighbours), P = W^{-1} T K
//   with W renormalising; R = P^T / 8 = K T^T W^{-1} / 8, so the cycle stays symmetric. Next to
//   a density jump a fine cell takes the value of the better-connected side, as operator-
//   dependent interpolation does in 1-D (flux continuity).
// - Smoothing band (interface_band_ratio): fluid cells whose couplings differ by more than the
//   ratio join the band of extra sweeps, like cells next to walls.
// - Coarsest level: LDLT of the weighted matrix (in double); components connect only through
//   faces of positive weight and are Dirichlet through a positive-weight face to air or a
//   positive diagonal term (as fluid_components counts them on A).
// Measured (PCG iterations to rtol 1e-6, random b; tests/test_precond_weighted.cpp,
// DISABLED_IterationTable; scale 128^2; unit = the same cells without coefficients; "kappa P" =
// weighted_interpolation, "band" = interface_band_ratio 4; >50: stopped by the stagnation test):
// MGPCG                   unit | trilinear P:      | kappa P:                     | kappa P + band:
//                              | open-mean average | open-mean average path-harm. | open-mean average path-harm.
//   64^3  pool, ghost fluid  5 |   5    5          |   5    5    5               |   5    5    5
//         cut-cell sphere    6 |   6    6          |   6    6    6               |   6    6    6
//         density 1e3        6 |  19   19          |  12   12   11               |   7    7    7
//         density 1e6        6 | >50  >50          |  14   14   13               |   8    8    7
//         density 1e3 closed 5 |  19   19          |  11   11   10               |   7    7    6
//         bubbles 1e-6       6 | >50  >50          |  14   14   32               |   8    8   16
//   128^3 pool               6 |   6    6          |   6    6    6               |   6    6    6
//         cut-cell sphere    7 |   7    7          |   7    7    7               |   7    7    7
//         density 1e3        7 |  19   19          |  14   14   12               |   8    8    8
//         density 1e6        7 | >50  >50          |  17   17   15               |  10   10    9
//         density 1e3 closed 6 |  19   19          |  13   13   11               |   7    7    7
//         bubbles 1e-6       7 | >50  >50          |  16   16   45               |   9    9   20
// dcdm-relax at 128^3, same columns: pool 5 | all 5; cut cells 6 | all 6; density 1e3 6 | 15 15 |
// 11 11 10 | 6 6 6; 1e6 6 | >50 >50 | 14 14 11 | 7 7 7; closed 5 | 15 15 | 11 11 9 | 5 5 5;
// bubbles 6 | >50 >50 | 15 15 37 | 8 8 10.
// Path-harmonic wins by one iteration on heavy inclusions but loses badly on light ones
// (bubbles), where it also needed a sharper interpolation (kappa^4: 10 on the scene "density
// ratio=1e-6" at 64^3, against 8 with open-mean and kappa); open-mean and average tie (the
// cut-cell fractions next to solid hardly matter), and open-mean reproduces the unit scheme for
// unit weights. Defaults: OpenMean, weighted_interpolation, interface_band_ratio 4: at most
// 1.43x the unit count above (density 1e6 at 128^3), dcdm-relax at most 1.33x.
//
// Storage: every level keeps padded arrays (one ghost layer below, two above each axis), so
// all stencil, transfer and smoothing loops are branch-free: ghosts and non-fluid entries are
// zero, and 1/diagonal is zero outside the fluid. Nothing is allocated per cycle.
//
// Order of work (not of mathematics): the cycle above is a sequence of single-colour updates,
// a residual, transfers. By default (MultigridOptions::fused_passes) each level runs them as two
// streaming passes over its z-planes, pre-smoother + residual + restriction and prolongation +
// post-smoother (run_pass: a wavefront, each stage two planes behind the one before, threads
// on slabs of planes); every cell is updated from the same neighbour values as in the
// stage-by-stage order, so both give the same z bit for bit (tests: MultigridFusedPasses). A
// reimplementation (e.g. distributed) may use either order.
#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <exception>
#include <limits>
#include <memory>
#include <thread>
#include <type_traits>
#include <utility>

#include <omp.h>

#include <Eigen/Sparse>
#include <Eigen/SparseCholesky>
#include <fmt/format.h>

#include "dcdm/error.hpp"
#include "dcdm/grid_transfer.hpp"
#include "dcdm/precond.hpp"
#include "../linalg/uninitialised.hpp"

namespace dcdm {

namespace {

constexpr std::int64_t kParallelCells = 32768;  // below this, loops stay on one thread

// The grid-sized arrays of a level are first written by a parallel loop (fill_parallel or the
// loop that computes them), so their page faults are shared by the threads (at 128^3 about 45
// MB a hierarchy; see uninitialised.hpp).
// A level's lasting arrays are in its cycle's arena (end to end in huge pages, so that small
// levels and the arrays' ends share huge pages instead of taking 4 KiB faults each; see
// Level(Arena*)); arrays made with a default allocator (temporaries, the plane buffers that a
// new thread count lays out again) are blocks of their own, as UninitialisedAllocator's.
template <class T>
using GridArray = std::vector<T, detail::ArenaAllocator<T>>;

// v = n copies of value, written by the threads in contiguous halves (first touch; see
// UninitialisedAllocator).
template <class T>
void fill_parallel(GridArray<T>& v, std::int64_t n, T value, bool parallel) {
  v.resize(static_cast<std::size_t>(n));
  T* data = v.data();
#pragma omp parallel for simd schedule(static) if (parallel)
  for (std::int64_t p = 0; p < n; ++p) data[p] = value;
}

template <class Real>
struct Level {
  Dims dims;
  int px = 0, py = 0, pz = 0;
  std::int64_t sy = 0, sz = 0;
  double s = 1.0;  // off-diagonal magnitude (1/4^level)
  std::array<FaceBoundary, 6> faces{};
  GridArray<std::uint8_t> type;        // padded CellType; ghosts carry the face's type
  GridArray<Real> inv_diag;            // padded, 0 outside fluid
  // Padded, 0 outside fluid; weighted levels only. A unit level's diagonal is s times a
  // neighbour count (s a power of 2, the count 1..6), which 1 / inv_diag gives back exactly in
  // float and double (unit_diagonal): not storing it saves 4-8 bytes a cell.
  GridArray<Real> diag;
  GridArray<Real> x, b;                // padded work vectors
  // The residual (b - A x) / W, padded: kept whole only for the stage-by-stage cycle and for
  // a weighted-interpolation level, whose r also holds K x_c (coarse_values). The fused passes
  // need each residual plane only until its coarse planes are restricted, a few planes later,
  // so there it lives in ResidualPlanes' few buffers per thread (cache-resident: at 128^3 the
  // full array would be 8.8 MB more to page in, and 17.6 MB more a cycle to write back).
  GridArray<Real> r;
  // Where the residual's padded plane k (-1 .. nz + 1) starts: r_plane[k + 1], into r or into
  // the plane buffers (the ghost planes: a zero plane); set by finish_band or the fused pass.
  std::vector<Real*> r_plane;
  GridArray<Real> r_buffers;  // the fused passes' plane buffers, zero outside the fluid rows
  int r_buffer_threads = 0;   // the thread count r_buffers are laid out for (0: none yet)
  GridArray<Real> inv_w;               // padded, prolongation normaliser to this level from the next
  GridArray<std::int64_t> band[2];     // padded indices of band cells by colour
  // Relaxation factors from a RelaxationModel (per_cell false = the scalar options): the
  // interior sweeps use one common factor (the value at most cells, those deep in the fluid)
  // and, per colour, a list of the cells whose factor differs; the band sweeps read band_omega
  // (one factor per entry of band[colour], read in the sweep's order).
  bool per_cell = false;
  Real common_omega = Real(1);
  std::vector<std::int64_t> special[2];
  std::vector<Real> special_omega[2];
  std::vector<Real> special_value;
  GridArray<Real> band_omega[2];
  std::int64_t fluid_cells = 0;
  // Weighted hierarchies (Domain::coefficients): diag / inv_diag hold the weighted diagonal and
  // wx, wy, wz the coupling of each cell with its neighbour below along x, y, z (the level's
  // scale times that face's weight; 0 unless both cells are fluid), padded like the rest. The
  // unit path (weighted false) reads the scalar s instead and leaves these empty.
  bool weighted = false;
  GridArray<Real> wx, wy, wz;
  // Weighted, with MultigridOptions::weighted_interpolation: the conductivity of each cell as a
  // parent in the prolongation to the level above (the mean weight of its faces to non-solid
  // neighbours on fluid cells, 1 elsewhere); empty otherwise.
  GridArray<Real> kappa;

  std::int64_t padded_size() const { return std::int64_t(px) * py * pz; }
  std::int64_t at(int i, int j, int k) const { return (i + 1) + sy * (j + 1) + sz * (k + 1); }
  bool parallel() const { return dims.size() >= kParallelCells; }

  Level() = default;
  // The arrays made once per hierarchy in the arena; r and r_buffers (made again when the
  // thread count changes) are not.
  explicit Level(detail::Arena* arena) {
    detail::use_arena(arena, type, inv_diag, diag, x, b, inv_w, wx, wy, wz, kappa);
    for (int c = 0; c < 2; ++c) detail::use_arena(arena, band[c], band_omega[c]);
  }
};

// Address space for a hierarchy's arena: the padded finest level's type byte and up to 10
// arrays of Real a cell, twice over for the coarser levels, plus 64 MiB (reserved, not
// resident; what does not fit gets blocks of its own).
template <class Real>
std::size_t arena_bytes(const Dims& d) {
  const std::size_t cells = static_cast<std::size_t>(d.nx + 8) * static_cast<std::size_t>(d.ny + 8) * static_cast<std::size_t>(d.nz + 8);
  return 2 * cells * (1 + 10 * sizeof(Real)) + (std::size_t(64) << 20);
}

// The fused passes' slabs: thread i of `threads` takes planes [slab_start(i), slab_start(i + 1)).
inline int slab_start(int nz, int i, int threads) { return static_cast<int>(std::int64_t(nz) * i / threads); }

// The residual planes of a level's fused pre-smoothing pass (run_pass), for `threads` slabs.
// The residual stage writes each plane once, in the slab's order, and the restriction reads
// fine planes 2k - 1 .. 2k + 2 for coarse plane k as soon as they are written, so inside a
// slab at most kRing consecutive planes are live at once (the three newest and the one being
// written); planes that feed a coarse plane across two slabs (the kEdge planes at each end of
// a slab) are restricted after the pass and keep buffers of their own. Every buffer is zero
// but for the interior cells of the fluid rows, which the residual stage writes whole each
// time (ghost rows and columns are never written), so the restriction reads exactly the
// values of the full array.
template <class Real>
void layout_residual_planes(Level<Real>& l, int threads) {
  if (l.r_buffer_threads == threads) return;
  constexpr int kEdge = 3, kRing = 4, kPerSlab = 2 * kEdge + kRing;
  const int nz = l.dims.nz;
  l.r_buffers.assign(static_cast<std::size_t>((1 + std::int64_t(threads) * kPerSlab) * l.sz), Real(0));
  Real* zero_plane = l.r_buffers.data();
  l.r_plane.assign(static_cast<std::size_t>(l.pz), zero_plane);
  for (int i = 0; i < threads; ++i) {
    const int lo = slab_start(nz, i, threads), hi = slab_start(nz, i + 1, threads);
    Real* slab = l.r_buffers.data() + (1 + std::int64_t(i) * kPerSlab) * l.sz;
    for (int k = lo; k < hi; ++k) {
      const int slot = k < lo + kEdge ? k - lo : k >= hi - kEdge ? kEdge + k - (hi - kEdge) : 2 * kEdge + k % kRing;
      l.r_plane[static_cast<std::size_t>(k) + 1] = slab + slot * l.sz;
    }
  }
  l.r_buffer_threads = threads;
}

// The diagonal of a unit level's cell from its inverse (0 outside the fluid); exact, see
// Level::diag.
template <class Real>
inline Real unit_diagonal(Real inv) {
  return inv != Real(0) ? Real(1) / inv : Real(0);
}

template <class Real>
Real level_diagonal(const Level<Real>& l, std::int64_t p) {
  return l.weighted ? l.diag[p] : unit_diagonal(l.inv_diag[p]);
}

template <class Real>
void init_level(Level<Real>& l, Dims d, const std::array<FaceBoundary, 6>& faces, double s) {
  l.dims = d;
  l.px = d.nx + 3;
  l.py = d.ny + 3;
  l.pz = d.nz + 3;
  l.sy = l.px;
  l.sz = std::int64_t(l.px) * l.py;
  l.s = s;
  l.faces = faces;
  const std::int64_t n = l.padded_size();
  // Ghosts: the type beyond the face; corners/edges take the first matching face (they are
  // never read by the 7-point stencil; the prolongation weights treat them as below).
  fill_parallel(l.type, n, static_cast<std::uint8_t>(CellType::Solid), l.parallel());
  // Only ghosts are visited: a row inside the grid in y and z has them at i = -1, nx, nx + 1.
  for (int k = -1; k <= d.nz + 1; ++k)
    for (int j = -1; j <= d.ny + 1; ++j) {
      const bool interior_row = j >= 0 && j < d.ny && k >= 0 && k < d.nz;
      const int count = interior_row ? 3 : d.nx + 3;
      for (int g = 0; g < count; ++g) {
        const int i = interior_row ? (g == 0 ? -1 : d.nx + g - 1) : g - 1;
        int face = -1;
        if (i < 0) face = 0;
        else if (i >= d.nx) face = 1;
        else if (j < 0) face = 2;
        else if (j >= d.ny) face = 3;
        else if (k < 0) face = 4;
        else face = 5;
        // A ghost beyond two faces at once is air only if both faces are open.
        bool open = faces[face] == FaceBoundary::Open;
        if (i < 0 && faces[0] != FaceBoundary::Open) open = false;
        if (i >= d.nx && faces[1] != FaceBoundary::Open) open = false;
        if (j < 0 && faces[2] != FaceBoundary::Open) open = false;
        if (j >= d.ny && faces[3] != FaceBoundary::Open) open = false;
        if (k < 0 && faces[4] != FaceBoundary::Open) open = false;
        if (k >= d.nz && faces[5] != FaceBoundary::Open) open = false;
        l.type[l.at(i, j, k)] = static_cast<std::uint8_t>(open ? CellType::Air : CellType::Solid);
      }
    }
}

// The coefficients of one level of a weighted hierarchy, in double, padded like the level and
// kept only while the hierarchy is built: face[a][p] is the weight of the face between cell p
// and its neighbour below along axis a (outer faces at the ghosts above included), term[p] the
// diagonal term of fluid cell p; the level's operator is l.s times these (l.s = the domain's
// scale / 4^level): A(p, p) = s (sum of the weights of the faces to non-solid neighbours +
// term[p]), A(p, q) = -s * weight for a fluid neighbour q.
struct LevelWeights {
  std::vector<double> face[3];
  std::vector<double> term;
};

template <class Real>
LevelWeights domain_weights(const Level<Real>& l, const Domain& domain) {
  const Coefficients& co = *domain.coefficients;
  const Dims d = l.dims;
  LevelWeights w;
  const std::int64_t n = l.padded_size();
  const std::vector<double>* arrays[3] = {&co.face_x, &co.face_y, &co.face_z};
  for (int a = 0; a < 3; ++a) {
    w.face[a].assign(n, 0.0);
    const int ex = d.nx + (a == 0), ey = d.ny + (a == 1), ez = d.nz + (a == 2);
    const std::vector<double>& src = *arrays[a];
#pragma omp parallel for schedule(static) if (l.parallel())
    for (int k = 0; k < ez; ++k)
      for (int j = 0; j < ey; ++j)
        for (int i = 0; i < ex; ++i)
          w.face[a][l.at(i, j, k)] =
              src.empty() ? 1.0 : src[static_cast<std::size_t>(i + std::int64_t(ex) * (j + std::int64_t(ey) * k))];
  }
  w.term.assign(n, 0.0);
  if (!co.diagonal.empty()) {
#pragma omp parallel for schedule(static) if (l.parallel())
    for (int k = 0; k < d.nz; ++k)
      for (int j = 0; j < d.ny; ++j)
        for (int i = 0; i < d.nx; ++i)
          if (l.type[l.at(i, j, k)] == static_cast<std::uint8_t>(CellType::Fluid))
            w.term[l.at(i, j, k)] = co.diagonal[static_cast<std::size_t>(d.index(i, j, k))];
  }
  return w;
}

// The coarse level's weights from the fine level's (coarse types set, before finish_types).
// A coarse face is made of the (up to) four fine faces between the two cells' children; a fine
// face is open when neither side is solid and not both are air (the faces the fine operator
// uses). Coarse weight (relative to the coarse scale s/4):
// - Average: the mean of the four, open ones with their weight, the others 0;
// - OpenMean: the mean of the open ones (of all four if none is open), so a unit-weight
//   domain coarsens to exactly the unit scheme;
// - PathHarmonic: as OpenMean, but each open fine face stands for its row of fine links
//   between the two coarse centres in series (harmonic: 2 / (1/2w_before + 1/w + 1/2w_after)),
//   so a jump inside a coarse cell (density) is seen by the face; unit weights give 1 too.
// Diagonal term: (sum of the fluid children's terms) / 16 in absolute value, i.e. their sum / 4
// relative to the coarse scale (the term is a boundary-face quantity, like a face weight).
template <class Real>
LevelWeights coarsen_weights(const Level<Real>& f, const LevelWeights& wf, const Level<Real>& c,
                             WeightCoarsening mode) {
  const Dims fd = f.dims, cd = c.dims;
  const std::int64_t n = c.padded_size();
  const auto solid = static_cast<std::uint8_t>(CellType::Solid), air = static_cast<std::uint8_t>(CellType::Air);
  const auto fluid = static_cast<std::uint8_t>(CellType::Fluid);
  const int fdim[3] = {fd.nx, fd.ny, fd.nz};
  const std::int64_t fstride[3] = {1, f.sy, f.sz};
  LevelWeights w;
  for (int a = 0; a < 3; ++a) {
    w.face[a].assign(n, 0.0);
    const int ex = cd.nx + (a == 0), ey = cd.ny + (a == 1), ez = cd.nz + (a == 2);
    const double* src = wf.face[a].data();
    double* dst = w.face[a].data();
#pragma omp parallel for schedule(static) if (c.parallel())
    for (int k = 0; k < ez; ++k)
      for (int j = 0; j < ey; ++j)
        for (int i = 0; i < ex; ++i) {
          const int ci[3] = {i, j, k};
          int base[3], count[3];
          for (int e = 0; e < 3; ++e) {
            base[e] = e == a ? std::min(2 * ci[e], fdim[e]) : 2 * ci[e];
            count[e] = e == a ? 1 : std::min(2, fdim[e] - 2 * ci[e]);
          }
          // Path: an interior coarse face whose fine faces one cell either side lie inside the grid.
          const bool path = mode == WeightCoarsening::PathHarmonic && base[a] >= 1 && base[a] + 1 < fdim[a];
          const std::int64_t st = fstride[a];
          const auto open_face = [&](std::int64_t p) {
            const std::uint8_t t0 = f.type[p - st], t1 = f.type[p];
            return t0 != solid && t1 != solid && !(t0 == air && t1 == air);
          };
          double all = 0.0, open = 0.0, raw = 0.0;
          int faces = 0, open_faces = 0;
          for (int dk = 0; dk < count[2]; ++dk)
            for (int dj = 0; dj < count[1]; ++dj)
              for (int di = 0; di < count[0]; ++di) {
                const std::int64_t p = f.at(base[0] + di, base[1] + dj, base[2] + dk);
                const bool is_open = open_face(p);
                double v = src[p];
                if (path && is_open) {
                  // The row of fine links from one coarse centre to the other in series: half
                  // the link inside each coarse cell, the whole one across the coarse face
                  // (a half link that is not open takes the middle face's weight).
                  const double wa = open_face(p - st) ? src[p - st] : v, wb = open_face(p + st) ? src[p + st] : v;
                  v = wa > 0.0 && v > 0.0 && wb > 0.0 ? 2.0 / (0.5 / wa + 1.0 / v + 0.5 / wb) : 0.0;
                }
                ++faces;
                raw += src[p];
                if (is_open) {
                  ++open_faces;
                  open += v;
                  all += v;
                }
              }
          double v = 0.0;
          if (faces > 0) {
            if (mode == WeightCoarsening::Average) v = all / faces;
            else v = open_faces > 0 ? open / open_faces : raw / faces;
          }
          dst[c.at(i, j, k)] = v;
        }
  }
  w.term.assign(n, 0.0);
#pragma omp parallel for schedule(static) if (c.parallel())
  for (int k = 0; k < cd.nz; ++k)
    for (int j = 0; j < cd.ny; ++j)
      for (int i = 0; i < cd.nx; ++i) {
        const std::int64_t pc = c.at(i, j, k);
        if (c.type[pc] != fluid) continue;
        const int cnx = std::min(2, fd.nx - 2 * i), cny = std::min(2, fd.ny - 2 * j), cnz = std::min(2, fd.nz - 2 * k);
        double sum = 0.0;
        for (int dk = 0; dk < cnz; ++dk)
          for (int dj = 0; dj < cny; ++dj)
            for (int di = 0; di < cnx; ++di) {
              const std::int64_t p = f.at(2 * i + di, 2 * j + dj, 2 * k + dk);
              if (f.type[p] == fluid) sum += wf.term[p];
            }
        w.term[pc] = 0.25 * sum;
      }
  return w;
}

// Diagonal, 1/diagonal and couplings of a weighted level whose interior types are set (then
// finish_band). A fluid cell whose weighted diagonal is 0 (every face to a non-solid
// neighbour of weight 0 and no diagonal term: an all-zero row) becomes Solid; its neighbours'
// rows do not change (the faces between them weigh 0).
template <class Real>
void finish_weighted_level(Level<Real>& l, const LevelWeights& w, bool with_kappa) {
  const Dims d = l.dims;
  const std::int64_t n = l.padded_size();
  const auto fluid = static_cast<std::uint8_t>(CellType::Fluid), solid = static_cast<std::uint8_t>(CellType::Solid);
  const std::int64_t sy = l.sy, sz = l.sz;
  l.weighted = true;
  fill_parallel(l.diag, n, Real(0), l.parallel());
  fill_parallel(l.inv_diag, n, Real(0), l.parallel());
  std::vector<double> diag(n, 0.0);
  const double* fx = w.face[0].data();
  const double* fy = w.face[1].data();
  const double* fz = w.face[2].data();
  const std::uint8_t* t = l.type.data();
#pragma omp parallel for schedule(static) if (l.parallel())
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j)
      for (int i = 0; i < d.nx; ++i) {
        const std::int64_t p = l.at(i, j, k);
        if (t[p] != fluid) continue;
        double sum = 0.0;
        if (t[p - 1] != solid) sum += fx[p];
        if (t[p + 1] != solid) sum += fx[p + 1];
        if (t[p - sy] != solid) sum += fy[p];
        if (t[p + sy] != solid) sum += fy[p + sy];
        if (t[p - sz] != solid) sum += fz[p];
        if (t[p + sz] != solid) sum += fz[p + sz];
        sum += w.term[p];
        diag[p] = l.s * sum;
      }
  std::int64_t fluid_cells = 0;
#pragma omp parallel for schedule(static) reduction(+ : fluid_cells) if (l.parallel())
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j)
      for (int i = 0; i < d.nx; ++i) {
        const std::int64_t p = l.at(i, j, k);
        if (l.type[p] != fluid) continue;
        if (!(diag[p] > 0.0)) {
          l.type[p] = solid;
          continue;
        }
        l.diag[p] = static_cast<Real>(diag[p]);
        l.inv_diag[p] = static_cast<Real>(1.0 / diag[p]);
        ++fluid_cells;
      }
  l.fluid_cells = fluid_cells;
  if (with_kappa) {
    fill_parallel(l.kappa, n, Real(1), l.parallel());
#pragma omp parallel for schedule(static) if (l.parallel())
    for (int k = 0; k < d.nz; ++k)
      for (int j = 0; j < d.ny; ++j)
        for (int i = 0; i < d.nx; ++i) {
          const std::int64_t p = l.at(i, j, k);
          if (t[p] != fluid) continue;
          double sum = 0.0;
          int count = 0;
          const double face[6] = {fx[p], fx[p + 1], fy[p], fy[p + sy], fz[p], fz[p + sz]};
          const std::int64_t off[6] = {-1, 1, -sy, sy, -sz, sz};
          for (int e = 0; e < 6; ++e)
            if (t[p + off[e]] != solid) {
              sum += face[e];
              ++count;
            }
          if (sum > 0.0) l.kappa[p] = static_cast<Real>(sum / count);
        }
  }
  GridArray<Real>* coupling[3] = {&l.wx, &l.wy, &l.wz};
  const std::int64_t stride[3] = {1, sy, sz};
  for (int a = 0; a < 3; ++a) {
    GridArray<Real>& c = *coupling[a];
    fill_parallel(c, n, Real(0), l.parallel());
    const double* f = w.face[a].data();
    const std::int64_t st = stride[a];
#pragma omp parallel for schedule(static) if (l.parallel())
    for (int k = 0; k < d.nz; ++k)
      for (int j = 0; j < d.ny; ++j)
        for (int i = 0; i < d.nx; ++i) {
          const std::int64_t p = l.at(i, j, k);
          if (t[p] == fluid && t[p - st] == fluid) c[p] = static_cast<Real>(l.s * f[p]);
        }
  }
}

// The band lists of a level (fluid cells where near is set, by colour, in row order; nullptr:
// no band). Each thread counts the cells of its planes, then writes them at the offsets of the
// running sums: the lists of a serial scan.
template <class Real>
void build_band(Level<Real>& l, const std::uint8_t* near) {
  const Dims d = l.dims;
  const auto fluid = static_cast<std::uint8_t>(CellType::Fluid);
  const std::uint8_t* t = l.type.data();
  // Per plane the cells of each colour, then their running sums (plane k's offsets).
  std::vector<std::array<std::int64_t, 2>> offset(static_cast<std::size_t>(d.nz) + 1, {0, 0});
  if (near) {
#pragma omp parallel for schedule(static) if (l.parallel())
    for (int k = 0; k < d.nz; ++k) {
      std::array<std::int64_t, 2> c{0, 0};
      for (int j = 0; j < d.ny; ++j) {
        const std::int64_t row = l.at(0, j, k);
        for (int i = 0; i < d.nx; ++i) c[(i + j + k) & 1] += t[row + i] == fluid && near[row + i];
      }
      offset[static_cast<std::size_t>(k) + 1] = c;
    }
  }
  for (std::size_t k = 0; k < static_cast<std::size_t>(d.nz); ++k)
    for (int c = 0; c < 2; ++c) offset[k + 1][c] += offset[k][c];
  l.band[0].resize(static_cast<std::size_t>(offset.back()[0]));
  l.band[1].resize(static_cast<std::size_t>(offset.back()[1]));
  if (!near) return;
  std::int64_t* lists[2] = {l.band[0].data(), l.band[1].data()};
#pragma omp parallel for schedule(static) if (l.parallel())
  for (int k = 0; k < d.nz; ++k) {
    std::int64_t q[2] = {offset[static_cast<std::size_t>(k)][0], offset[static_cast<std::size_t>(k)][1]};
    for (int j = 0; j < d.ny; ++j) {
      const std::int64_t row = l.at(0, j, k);
      for (int i = 0; i < d.nx; ++i)
        if (t[row + i] == fluid && near[row + i]) {
          const int colour = (i + j + k) & 1;
          lists[colour][q[colour]++] = row + i;
        }
    }
  }
}

// The final types, the diagonal and 1/diagonal of a unit level whose interior types are set:
// fluid cells with no non-solid neighbour become Solid (a weighted level: finish_weighted_level
// has done this). The next level's types follow from these alone.
template <class Real>
void finish_types(Level<Real>& l) {
  const Dims d = l.dims;
  const std::int64_t n = l.padded_size();
  const auto fluid = static_cast<std::uint8_t>(CellType::Fluid), solid = static_cast<std::uint8_t>(CellType::Solid);
  const std::int64_t off[6] = {-1, 1, -l.sy, l.sy, -l.sz, l.sz};
  if (!l.weighted) {
    l.diag.clear();
    l.diag.shrink_to_fit();
    fill_parallel(l.inv_diag, n, Real(0), l.parallel());
    // Isolated fluid cells (every neighbour solid) become solid. One pass suffices and the
    // cells can be visited in any order: an isolated cell's neighbours are all solid, so turning
    // it solid changes no other fluid cell's neighbour count.
    std::int64_t fluid_cells = 0;
#pragma omp parallel for schedule(static) reduction(+ : fluid_cells) if (l.parallel())
    for (int k = 0; k < d.nz; ++k)
      for (int j = 0; j < d.ny; ++j)
        for (int i = 0; i < d.nx; ++i) {
          const std::int64_t p = l.at(i, j, k);
          if (l.type[p] != fluid) continue;
          int c = 0;
          for (const auto o : off) c += l.type[p + o] != solid;
          if (c == 0) {
            l.type[p] = solid;
            continue;
          }
          const double diag = l.s * c;
          l.inv_diag[p] = static_cast<Real>(1.0 / diag);
          ++fluid_cells;
        }
    l.fluid_cells = fluid_cells;
  }
}

// The work vectors and the smoothing band of a level whose types are final (finish_types).
// A full residual array (residual_array) for the stage-by-stage cycle or a level whose r
// holds K x_c; the fused passes lay out their plane buffers at their first run.
template <class Real>
void finish_band(Level<Real>& l, int band_width, double interface_ratio, bool residual_array) {
  const Dims d = l.dims;
  const std::int64_t n = l.padded_size();
  const auto fluid = static_cast<std::uint8_t>(CellType::Fluid);
  fill_parallel(l.x, n, Real(0), l.parallel());
  l.b.resize(static_cast<std::size_t>(n));  // sized only: the band's scratch below, then zeroed
  l.r_plane.clear();
  l.r_buffers.clear();
  l.r_buffer_threads = 0;
  if (residual_array) {
    fill_parallel(l.r, n, Real(0), l.parallel());
    for (std::int64_t k = 0; k < l.pz; ++k) l.r_plane.push_back(l.r.data() + k * l.sz);
  } else {
    l.r.clear();
  }
  // Band: fluid cells within Chebyshev distance band_width of a non-fluid cell or of the
  // grid's boundary; a separable max filter (dilation) of the non-fluid indicator over the
  // flat padded array. Ghosts are non-fluid (Solid/Air), so walls count as boundaries. A shift
  // that leaves a cell's row (slice) lands on ghosts or beyond them only for a cell that a
  // nearer ghost already marks, so the flat shifts need no per-axis bounds.
  // The dilation's two byte arrays live in b's storage (unused until the first cycle, at least
  // 2 bytes a cell; zeroed below): arrays of their own would take fresh pages each.
  static_assert(sizeof(Real) >= 2, "the band's scratch bytes live in b");
  std::uint8_t* near = reinterpret_cast<std::uint8_t*>(l.b.data());
  std::uint8_t* tmp = near + n;
  {
    const std::uint8_t* t = l.type.data();
    std::uint8_t* out = near;
#pragma omp parallel for simd schedule(static) if (l.parallel())
    for (std::int64_t p = 0; p < n; ++p) out[p] = t[p] != fluid;
  }
  // Weighted levels (interface_ratio > 0): a coefficient jump counts as a boundary too, i.e. a
  // fluid cell whose largest and smallest positive couplings with fluid neighbours differ by
  // more than interface_ratio.
  if (l.weighted && interface_ratio > 0.0) {
    const Real* wx = l.wx.data();
    const Real* wy = l.wy.data();
    const Real* wz = l.wz.data();
    const std::int64_t sy = l.sy, sz = l.sz;
#pragma omp parallel for schedule(static) if (l.parallel())
    for (int k = 0; k < d.nz; ++k)
      for (int j = 0; j < d.ny; ++j)
        for (int i = 0; i < d.nx; ++i) {
          const std::int64_t p = l.at(i, j, k);
          if (l.type[p] != fluid) continue;
          const Real c[6] = {wx[p], wx[p + 1], wy[p], wy[p + sy], wz[p], wz[p + sz]};
          Real lo = std::numeric_limits<Real>::max(), hi = Real(0);
          for (const Real v : c)
            if (v > Real(0)) {
              lo = std::min(lo, v);
              hi = std::max(hi, v);
            }
          if (hi > Real(0) && static_cast<double>(hi) > interface_ratio * static_cast<double>(lo)) near[p] = 1;
        }
  }
  const std::int64_t strides[3] = {1, l.sy, l.sz};
  for (int axis = 0; axis < 3; ++axis) {
    const std::int64_t st = strides[axis];
    const std::uint8_t* in = near;
    std::uint8_t* out = tmp;
    // Beyond the array counts as non-fluid: the first and last reach entries test bounds, the
    // rest (all but a few ghost layers) take one branch-free, vectorised pass per distance.
    const std::int64_t reach = std::min<std::int64_t>(band_width * st, n);
    const auto dilate_checked = [&](std::int64_t p) {
      std::uint8_t v = in[p];
      for (int w = 1; w <= band_width; ++w) {
        const std::int64_t lo = p - w * st, hi = p + w * st;
        v |= (lo >= 0 ? in[lo] : std::uint8_t(1)) | (hi < n ? in[hi] : std::uint8_t(1));
      }
      out[p] = v;
    };
    for (std::int64_t p = 0; p < reach; ++p) dilate_checked(p);
    for (std::int64_t p = std::max(reach, n - reach); p < n; ++p) dilate_checked(p);
    const std::int64_t end = n - reach;
    for (int w = 1; w <= band_width; ++w) {
      const std::int64_t o = w * st;
      // Private copies of the pointers: byte stores may alias shared ones, which keeps the
      // loop from vectorising. The first distance also copies in (no separate serial copy).
      if (w == 1) {
#pragma omp parallel for simd schedule(static) firstprivate(in, out, o) if (l.parallel())
        for (std::int64_t p = reach; p < end; ++p) out[p] = in[p] | in[p - o] | in[p + o];
      } else {
#pragma omp parallel for simd schedule(static) firstprivate(in, out, o) if (l.parallel())
        for (std::int64_t p = reach; p < end; ++p) out[p] |= in[p - o] | in[p + o];
      }
    }
    if (band_width == 0 && reach < end) std::copy(in + reach, in + end, out + reach);
    std::swap(near, tmp);
  }
  build_band(l, band_width > 0 ? near : nullptr);
  fill_parallel(l.b, n, Real(0), l.parallel());
}

// The V-cycle in one precision (levels, sweeps and transfers in Real; the coarsest solve is a
// double factorisation in both).
class CycleBase {
 public:
  virtual ~CycleBase() = default;
  virtual void apply(dcdm::span<const double> r, dcdm::span<double> z) = 0;
  virtual void apply_single(dcdm::span<const double> r, dcdm::span<float> z) = 0;
  virtual int levels() const = 0;
  virtual Dims level_dims(int level) const = 0;
  virtual std::vector<MultigridPreconditioner::LevelData> hierarchy() const = 0;
  virtual void solve_coarsest(dcdm::span<const double> b, dcdm::span<double> x) = 0;
};

// One stage of a fused pass (Cycle::run_pass): what it does to one z-plane of a level.
enum class StageKind : std::uint8_t { Load, Zero, Prolong, Interior, Band, Residual, Store };
struct Stage {
  StageKind kind;
  int colour;  // Interior, Band
};

template <class Real>
class Cycle final : public CycleBase {
 public:
  Cycle(const Domain& domain, const MultigridOptions& options);
  void apply(dcdm::span<const double> r, dcdm::span<double> z) override;
  void apply_single(dcdm::span<const double> r, dcdm::span<float> z) override;
  int levels() const override { return static_cast<int>(levels_.size()); }
  Dims level_dims(int level) const override { return levels_.at(level).dims; }
  std::vector<MultigridPreconditioner::LevelData> hierarchy() const override {
    if (!levels_.empty() && levels_.front().weighted)
      throw Error("multigrid: hierarchy() describes unit-coefficient hierarchies only (this one is weighted: "
                  "its levels carry per-face couplings that LevelData has no room for)");
    std::vector<MultigridPreconditioner::LevelData> out;
    for (const Level<Real>& l : levels_) {
      MultigridPreconditioner::LevelData d;
      d.dims = l.dims;
      d.sy = l.sy;
      d.sz = l.sz;
      d.padded = l.padded_size();
      d.s = l.s;
      d.type.assign(l.type.begin(), l.type.end());
      d.diag.resize(static_cast<std::size_t>(l.padded_size()));
      for (std::int64_t p = 0; p < l.padded_size(); ++p) d.diag[static_cast<std::size_t>(p)] = level_diagonal(l, p);
      d.inv_w.assign(l.inv_w.begin(), l.inv_w.end());
      d.band[0].assign(l.band[0].begin(), l.band[0].end());
      d.band[1].assign(l.band[1].begin(), l.band[1].end());
      out.push_back(std::move(d));
    }
    return out;
  }
  void solve_coarsest(dcdm::span<const double> b, dcdm::span<double> x) override {
    Level<Real>& l = levels_.back();
    if (static_cast<std::int64_t>(b.size()) != l.padded_size() || static_cast<std::int64_t>(x.size()) != l.padded_size())
      throw Error("multigrid: solve_coarsest needs padded arrays of the coarsest level");
    std::transform(b.begin(), b.end(), l.b.begin(), [](double v) { return static_cast<Real>(v); });
    coarse_solve(l);
    std::transform(l.x.begin(), l.x.end(), x.begin(), [](Real v) { return static_cast<double>(v); });
  }

 private:
  detail::Arena arena_;  // the levels' arrays (declared before them: it outlives them)
  std::vector<Level<Real>> levels_;
  MultigridOptions opt;
  // Coarsest solve
  std::vector<std::int64_t> coarse_cells;  // padded indices of the unknowns
  std::vector<int> coarse_component;       // per unknown: singular component id or -1
  std::vector<std::int64_t> singular_sizes;
  std::vector<std::int64_t> pinned;        // one unknown per singular component, fixed at 0
  Eigen::SimplicialLDLT<Eigen::SparseMatrix<double>> ldlt;
  Eigen::VectorXd coarse_rhs, coarse_sol;
  std::vector<double> mean;
  // The iterated coarse solve (MultigridOptions::coarse_cycles): the level it solves (-1:
  // none), its fluid cells (padded indices) with their singular components, the projected
  // right-hand side and the sum of the cycles' corrections on those cells.
  int inner_level_ = -1;
  bool inner_running_ = false;  // inside the iteration: vcycle(inner_level_) runs one cycle
  std::vector<std::int64_t> inner_cells_;
  std::vector<int> inner_component_;
  std::vector<std::int64_t> inner_singular_sizes_;
  std::vector<Real> inner_rhs_, inner_sum_;
  std::vector<double> inner_mean_;

  void build(const Domain& domain);
  void build_inner_solve();
  void inner_solve(int li);
  void load_rhs(const double* r);
  template <class Out>
  void store_solution(Out* z) const;
  void build_coarsest(const LevelWeights* weights);
  void build_normalisers(bool tasks);
  void build_relaxation();
  void smooth_colour(Level<Real>& l, int colour);
  void smooth_band(Level<Real>& l, int colour);
  void smooth(Level<Real>& l, int first);
  void residual_to_coarse(Level<Real>& f, Level<Real>& c);
  const Real* coarse_values(Level<Real>& c);
  void prolongate(Level<Real>& c, Level<Real>& f);
  void coarse_solve(Level<Real>& l);
  void vcycle(int level);
  // Fused passes (MultigridOptions::fused_passes)
  std::vector<Stage> pre_stages_, post_stages_;
  const double* load_ = nullptr;  // apply's r and z, read and written by the finest level's passes
  double* store_ = nullptr;
  float* store_single_ = nullptr;  // apply_single's z instead of store_
  const Real* prolong_from_ = nullptr;  // the coarse values of the next Prolong stage
  struct alignas(64) Progress {
    std::atomic<std::int64_t> step{0};
  };
  std::unique_ptr<Progress[]> progress_;  // per thread: the last step it finished (run_pass)
  int progress_size_ = 0;
  std::int64_t pass_serial_ = 0;
  void build_stages();
  template <class Out>
  void apply_to(dcdm::span<const double> r, Out* z);  // apply / apply_single: z in double or float
  template <bool Weighted>
  void smooth_colour_rows(Level<Real>& l, int colour, int k, int j0, int j1);
  template <bool Weighted>
  void smooth_band_rows(Level<Real>& l, int colour, int k, int j0, int j1);
  template <bool Weighted>
  void run_stage(Level<Real>& l, Level<Real>* c, const Stage& st, int k, int j0, int j1);
  template <bool Weighted>
  void run_pass(Level<Real>& l, Level<Real>* restrict_to, Level<Real>* prolong_from, const Stage* stages, int count);
};

// Whether the coarsest level is solved by MultigridOptions::coarse_cycles V-cycles (unit
// hierarchies with coarse_cycles > 0 whose direct level is smaller than the coarsest).
bool iterated_coarse_solve(const MultigridOptions& o, bool weighted) {
  return o.coarse_cycles > 0 && !weighted && o.direct_cells < o.coarsest_cells;
}

template <class Real>
Cycle<Real>::Cycle(const Domain& domain, const MultigridOptions& options)
    : arena_(arena_bytes<Real>(domain.dims())), opt(options) {
  build(domain);
}

template <class Real>
void Cycle<Real>::build(const Domain& domain) {
  auto& levels = levels_;
  levels.clear();
  // Level 0 from the domain.
  levels.emplace_back(&arena_);
  // Weighted: the coefficients of the last level built (in double, only while building).
  const bool weighted = domain.weighted();
  LevelWeights weights;
  {
    Level<Real>& l = levels.back();
    init_level(l, domain.dims(), domain.faces, weighted ? domain.coefficients->scale : 1.0);
    const Dims d = domain.dims();
#pragma omp parallel for schedule(static) if (l.parallel())
    for (int k = 0; k < d.nz; ++k)
      for (int j = 0; j < d.ny; ++j)
        for (int i = 0; i < d.nx; ++i)
          l.type[l.at(i, j, k)] = static_cast<std::uint8_t>(domain.cells(i, j, k));
    // A sealed fluid cell (all neighbours solid) has an all-zero row in A; finish_types makes
    // it solid here, so z = 0 there. Every other fluid row is exactly A's. (Weighted: a fluid
    // cell with an all-zero row, i.e. a zero weighted diagonal.)
    if (weighted) {
      weights = domain_weights(l, domain);
      finish_weighted_level(l, weights, false);
    }
    finish_types(l);
  }
  // With an iterated coarse solve the levels go on down to direct_cells (see build_inner_solve).
  const std::int64_t last_cells = iterated_coarse_solve(opt, weighted) ? opt.direct_cells : opt.coarsest_cells;
  while (static_cast<int>(levels.size()) < opt.max_levels) {
    const Level<Real>& f = levels.back();
    const Dims fd = f.dims;
    if (fd.size() <= last_cells || std::min({fd.nx, fd.ny, fd.nz}) < 4) break;
    const Dims cd{(fd.nx + 1) / 2, (fd.ny + 1) / 2, (fd.nz + 1) / 2};
    Level<Real> c(&arena_);
    init_level(c, cd, f.faces, f.s * 0.25);
    const auto air_type = static_cast<std::uint8_t>(CellType::Air);
    const auto fluid_type = static_cast<std::uint8_t>(CellType::Fluid);
#pragma omp parallel for schedule(static) if (c.parallel())
    for (int k = 0; k < cd.nz; ++k)
      for (int j = 0; j < cd.ny; ++j) {
        // Children per axis: two, one at the far end of an odd size (the other is a ghost).
        const int cny = std::min(2, fd.ny - 2 * j), cnz = std::min(2, fd.nz - 2 * k);
        for (int i = 0; i < cd.nx; ++i) {
          const int cnx = std::min(2, fd.nx - 2 * i);
          const std::int64_t first = f.at(2 * i, 2 * j, 2 * k);
          bool air = false, fluid = false;
          for (int dk = 0; dk < cnz; ++dk)
            for (int dj = 0; dj < cny; ++dj)
              for (int di = 0; di < cnx; ++di) {
                const std::uint8_t t = f.type[first + di + dj * f.sy + dk * f.sz];
                air |= t == air_type;
                fluid |= t == fluid_type;
              }
          c.type[c.at(i, j, k)] = static_cast<std::uint8_t>(air ? CellType::Air
                                                           : fluid ? CellType::Fluid
                                                                   : CellType::Solid);
        }
      }
    LevelWeights coarse_weights;
    if (weighted) {
      coarse_weights = coarsen_weights(f, weights, c, opt.weight_coarsening);
      finish_weighted_level(c, coarse_weights, opt.weighted_interpolation);
    }
    finish_types(c);
    if (c.fluid_cells == 0) break;
    levels.push_back(std::move(c));
    if (weighted) weights = std::move(coarse_weights);
  }
  // The levels' work vectors and smoothing bands (the rest of each level once its types are
  // final; the relaxation factors need the bands).
  const auto finish_bands = [&] {
    for (Level<Real>& l : levels_)
      finish_band(l, opt.band_width, opt.interface_band_ratio, !opt.fused_passes || !l.kappa.empty());
  };
  // The coarsest level's factorisation (serial, and at 128^3 half of the set-up) needs only
  // that level's types, final now; the bands, the normalisers and the relaxation factors need
  // nothing of it. So on two threads or more it is a task of a team of two while the calling
  // thread finishes the levels and computes the relaxation factors (their loops on that thread
  // alone: a nested region gets one thread while nesting is off, the default) and then the
  // normalisers as tasks, which the other thread joins once it has factorised. With nesting
  // on, the steps run in turn (inner teams would oversubscribe the cores).
  const LevelWeights* coarsest_weights = weighted ? &weights : nullptr;
  const bool overlap = levels_.size() > 1 && levels_.front().parallel() && omp_get_max_threads() > 1 &&
                       !omp_in_parallel() && omp_get_max_active_levels() <= 1;
  if (overlap) {
    std::exception_ptr failure[2];
#pragma omp parallel num_threads(2)
    {
#pragma omp master
      {
#pragma omp task shared(failure)
        {
          try {
            build_coarsest(coarsest_weights);
          } catch (...) {
            failure[1] = std::current_exception();
          }
        }
        try {
          finish_bands();
          build_relaxation();
          build_normalisers(true);
        } catch (...) {
          failure[0] = std::current_exception();
        }
      }
    }  // the region's end waits for the tasks
    for (const std::exception_ptr& f : failure)
      if (f) std::rethrow_exception(f);
  } else {
    finish_bands();
    build_normalisers(false);
    build_relaxation();
    build_coarsest(coarsest_weights);
  }
  build_stages();
  build_inner_solve();
}

template <class Real>
void Cycle<Real>::build_normalisers(bool tasks) {
  // Prolongation normalisers on every level but the coarsest: 1 / the trilinear weight of the
  // parents that carry a value (with Neumann interpolation, the non-solid ones), i.e. the
  // prolongation of their indicator. The weights are multiples of 1/64, so the sum is exact in
  // any order. The loops go over padded planes (each written whole: the first touch of
  // inv_w), as a parallel loop or, inside build's overlap, as tasks that either thread takes.
  const auto for_planes = [tasks](int planes, bool parallel, const auto& body) {
    if (tasks) {
#pragma omp taskloop grainsize(4)
      for (int k = 0; k < planes; ++k) body(k);
    } else {
#pragma omp parallel for schedule(static) if (parallel)
      for (int k = 0; k < planes; ++k) body(k);
    }
  };
  GridArray<double> carries;
  for (std::size_t li = 0; li + 1 < levels_.size(); ++li) {
    Level<Real>& f = levels_[li];
    const Level<Real>& c = levels_[li + 1];
    carries.resize(static_cast<std::size_t>(c.padded_size()));
    double* carry = carries.data();
    const std::uint8_t* ct = c.type.data();
    const Real* kappa = c.kappa.empty() ? nullptr : c.kappa.data();
    const bool neumann = opt.neumann_interpolation;
    for_planes(c.pz, c.parallel(), [&](int kp) {
      for (std::int64_t p = kp * c.sz; p < (kp + 1) * c.sz; ++p) {
        const double v = !neumann || ct[p] != static_cast<std::uint8_t>(CellType::Solid) ? 1.0 : 0.0;
        carry[p] = kappa ? v * static_cast<double>(kappa[p]) : v;
      }
    });
    f.inv_w.resize(static_cast<std::size_t>(f.padded_size()));
    const Dims d = f.dims;
    const double* m = carries.data();
    Real* inv_w = f.inv_w.data();
    const std::uint8_t* ft = f.type.data();
    for_planes(f.pz, f.parallel(), [&](int kp) {
      std::fill_n(inv_w + kp * f.sz, f.sz, Real(0));
      const int k = kp - 1;
      if (k < 0 || k >= d.nz) return;
      // The prolongation's vectorised sums (prolongation_pairs: prolongate_at's, in its order).
      constexpr int kChunk = 128;  // coarse cells
      alignas(64) double even[kChunk], odd[kChunk], w[2 * kChunk];
      for (int j = 0; j < d.ny; ++j) {
        const transfer::ProlongationRows rows = transfer::prolongation_rows(c, j, k);
        const std::int64_t row = f.at(0, j, k);
        for (int m0 = 0; 2 * m0 < d.nx; m0 += kChunk) {
          const int cells = std::min(2 * kChunk, d.nx - 2 * m0);  // fine cells of the chunk
          transfer::prolongation_pairs(m, rows, m0, (cells + 1) / 2, even, odd);
          for (int i = 0; i < cells; ++i) w[i] = (i & 1) ? odd[i >> 1] : even[i >> 1];
          const std::uint8_t* ts = ft + row + 2 * m0;
          Real* out = inv_w + row + 2 * m0;
#pragma omp simd
          for (int i = 0; i < cells; ++i) {
            const double inverse = 1.0 / (w[i] > 0.0 ? w[i] : 1.0);
            out[i] = ts[i] == static_cast<std::uint8_t>(CellType::Fluid) && w[i] > 0.0 ? static_cast<Real>(inverse) : Real(0);
          }
        }
      }
    });
  }
}

// Per-cell factors from the relaxation model on every smoothing level (all but the coarsest).
}  // namespace

void RelaxationModel::band_factors(const MultigridLevelView& level, dcdm::span<const std::int64_t> cells,
                                   dcdm::span<float> out) const {
  const std::size_t padded = static_cast<std::size_t>(level.sz * (level.dims.nz + 3));
  std::vector<float> interior(padded), band(padded);
  factors(level, interior, band);
  for (std::size_t q = 0; q < cells.size(); ++q) out[q] = band[static_cast<std::size_t>(cells[q])];
}

namespace {

template <class Real>
void Cycle<Real>::build_relaxation() {
  if (!opt.relaxation) return;
  const int count = levels();
  const auto check_factor = [](float w, const Level<Real>& l, std::int64_t p, int li) {
    if (w > 0.0f && w < 2.0f) return;
    const std::int64_t k = p / l.sz - 1, j = (p % l.sz) / l.sy - 1, i = p % l.sy - 1;
    throw Error(fmt::format("multigrid: relaxation factor {} at cell ({}, {}, {}) of level {} is outside (0, 2)", w,
                            i, j, k, li));
  };
  if (const auto uniform = opt.relaxation->uniform_interior()) {
    // One interior factor: the interior sweeps take the fast kernel with no exceptions, and
    // only the band cells need their factors.
    if (!(*uniform > 0.0f && *uniform < 2.0f))
      throw Error(fmt::format("multigrid: uniform interior relaxation factor {} is outside (0, 2)", *uniform));
    std::vector<float> factors;
    for (int li = 0; li + 1 < count; ++li) {
      Level<Real>& l = levels_[li];
      const MultigridLevelView view{l.dims, li, count, l.sy, l.sz, l.type.data()};
      l.per_cell = true;
      l.common_omega = static_cast<Real>(*uniform);
      for (int c = 0; c < 2; ++c) {
        l.special[c].clear();
        l.special_omega[c].clear();
        factors.resize(l.band[c].size());
        opt.relaxation->band_factors(view, l.band[c], factors);
        for (std::size_t q = 0; q < factors.size(); ++q) check_factor(factors[q], l, l.band[c][q], li);
        l.band_omega[c].assign(factors.begin(), factors.end());
      }
      l.special_value.clear();
    }
    return;
  }
  // The model writes the fluid cells of two padded float buffers, the only entries read. A
  // float cycle lends each level's work vectors x and b (already paged in; zeroed again after),
  // a double one gets one uninitialised pair for every level (the finest is the largest).
  constexpr bool lend_work_vectors = std::is_same_v<Real, float>;
  std::unique_ptr<float[]> interior_buffer, band_buffer;
  if (!lend_work_vectors) {
    const std::int64_t largest = levels_.front().padded_size();
    interior_buffer.reset(new float[largest]);
    band_buffer.reset(new float[largest]);
  }
  for (int li = 0; li + 1 < count; ++li) {
    Level<Real>& l = levels_[li];
    const std::int64_t n = l.padded_size();
    float* interior_data = interior_buffer.get();
    float* band_data = band_buffer.get();
    if constexpr (lend_work_vectors) {
      interior_data = l.x.data();
      band_data = l.b.data();
    }
    const dcdm::span<float> interior(interior_data, static_cast<std::size_t>(n));
    const dcdm::span<float> band(band_data, static_cast<std::size_t>(n));
    MultigridLevelView view{l.dims, li, count, l.sy, l.sz, l.type.data()};
    opt.relaxation->factors(view, interior, band);
    const Dims d = l.dims;
    // The common interior factor: that of the first cell whose 3x3x3 neighbourhood is all fluid
    // (any fluid cell if none is).
    const auto common_reference = [&]() -> std::int64_t {
      std::int64_t first_fluid = -1;
      for (int k = 0; k < d.nz; ++k)
        for (int j = 0; j < d.ny; ++j)
          for (int i = 0; i < d.nx; ++i) {
            const std::int64_t p = l.at(i, j, k);
            if (l.type[p] != static_cast<std::uint8_t>(CellType::Fluid)) continue;
            if (first_fluid < 0) first_fluid = p;
            int fluid_neighbours = 0;
            for (int dz = -1; dz <= 1; ++dz)
              for (int dy = -1; dy <= 1; ++dy)
                for (int dx = -1; dx <= 1; ++dx)
                  fluid_neighbours += l.type[p + dx + dy * l.sy + dz * l.sz] == static_cast<std::uint8_t>(CellType::Fluid);
            if (fluid_neighbours == 27) return p;
          }
      return first_fluid;
    };
    const std::int64_t reference = common_reference();
    l.per_cell = true;
    l.common_omega = static_cast<Real>(reference >= 0 ? interior[reference] : 1.0f);
    for (int c = 0; c < 2; ++c) {
      l.special[c].clear();
      l.special_omega[c].clear();
    }
    for (int k = 0; k < d.nz; ++k)
      for (int j = 0; j < d.ny; ++j)
        for (int i = 0; i < d.nx; ++i) {
          const std::int64_t p = l.at(i, j, k);
          if (l.type[p] != static_cast<std::uint8_t>(CellType::Fluid)) continue;
          for (const float w : {interior[p], band[p]}) check_factor(w, l, p, li);
          const Real w = static_cast<Real>(interior[p]);
          if (w != l.common_omega) {
            l.special[(i + j + k) & 1].push_back(p);
            l.special_omega[(i + j + k) & 1].push_back(w);
          }
        }
    for (int c = 0; c < 2; ++c) {
      l.band_omega[c].clear();
      for (const std::int64_t p : l.band[c]) l.band_omega[c].push_back(static_cast<Real>(band[p]));
    }
    l.special_value.assign(std::max(l.special[0].size(), l.special[1].size()), Real(0));
    if constexpr (lend_work_vectors) {
      fill_parallel(l.x, n, Real(0), l.parallel());
      fill_parallel(l.b, n, Real(0), l.parallel());
    }
  }
}

// A level's fluid cells in grid order (padded indices into `cells`) and each padded cell's
// number among them (-1 elsewhere): the unknowns of a coarse solve.
template <class Real>
std::vector<std::int64_t> number_fluid_cells(const Level<Real>& l, std::vector<std::int64_t>& cells) {
  const Dims d = l.dims;
  std::vector<std::int64_t> unknown(static_cast<std::size_t>(l.padded_size()), -1);
  cells.clear();
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j)
      for (int i = 0; i < d.nx; ++i) {
        const std::int64_t p = l.at(i, j, k);
        if (l.type[p] == static_cast<std::uint8_t>(CellType::Fluid)) {
          unknown[p] = static_cast<std::int64_t>(cells.size());
          cells.push_back(p);
        }
      }
  return unknown;
}

// The singular components of a level's fluid cells (cells[u], unknown[p] = u or -1): per unknown
// its component's number among those that touch no air, or -1; their sizes into `sizes`.
// Components are 6-connected (weighted: through faces of positive weight) and touch air
// through a face (weighted: a face of positive weight, or a positive diagonal term).
template <class Real>
std::vector<int> singular_components(const Level<Real>& l, const std::vector<std::int64_t>& cells,
                                     const std::vector<std::int64_t>& unknown, const LevelWeights* weights,
                                     std::vector<std::int64_t>& sizes) {
  const std::int64_t m = static_cast<std::int64_t>(cells.size());
  const std::int64_t off[6] = {-1, 1, -l.sy, l.sy, -l.sz, l.sz};
  std::vector<int> comp(static_cast<std::size_t>(m), -1);
  std::vector<bool> dirichlet;
  std::vector<std::int64_t> all_sizes;
  for (std::int64_t u0 = 0; u0 < m; ++u0) {
    if (comp[u0] >= 0) continue;
    const int id = static_cast<int>(all_sizes.size());
    all_sizes.push_back(0);
    dirichlet.push_back(false);
    std::vector<std::int64_t> stack{u0};
    comp[u0] = id;
    while (!stack.empty()) {
      const std::int64_t u = stack.back();
      stack.pop_back();
      ++all_sizes[id];
      const std::int64_t p = cells[u];
      if (weights && weights->term[p] > 0.0) dirichlet[id] = true;
      for (int f = 0; f < 6; ++f) {
        const std::int64_t q = p + off[f];
        if (weights && !(weights->face[f / 2][(f & 1) ? q : p] > 0.0)) continue;
        if (l.type[q] == static_cast<std::uint8_t>(CellType::Air)) dirichlet[id] = true;
        const std::int64_t v = unknown[q];
        if (v >= 0 && comp[v] < 0) {
          comp[v] = id;
          stack.push_back(v);
        }
      }
    }
  }
  std::vector<int> singular_id(all_sizes.size(), -1);
  sizes.clear();
  for (std::size_t c = 0; c < all_sizes.size(); ++c)
    if (!dirichlet[c]) {
      singular_id[c] = static_cast<int>(sizes.size());
      sizes.push_back(all_sizes[c]);
    }
  for (int& c : comp) c = singular_id[static_cast<std::size_t>(c)];
  return comp;
}

// Subtracts from values[u] the mean over its singular component (component[u] >= 0; mean is
// scratch of one entry a component): the projection onto the range of a singular level.
template <class Values>
void subtract_component_means(const std::vector<int>& component, const std::vector<std::int64_t>& sizes,
                              std::vector<double>& mean, Values& values) {
  if (sizes.empty()) return;
  const std::int64_t m = static_cast<std::int64_t>(component.size());
  std::fill(mean.begin(), mean.end(), 0.0);
  for (std::int64_t u = 0; u < m; ++u)
    if (component[u] >= 0) mean[component[u]] += static_cast<double>(values[u]);
  for (std::size_t c = 0; c < mean.size(); ++c) mean[c] /= static_cast<double>(sizes[c]);
  for (std::int64_t u = 0; u < m; ++u)
    if (component[u] >= 0) values[u] -= static_cast<std::decay_t<decltype(values[u])>>(mean[component[u]]);
}

template <class Real>
void Cycle<Real>::build_coarsest(const LevelWeights* weights) {
  const Level<Real>& l = levels_.back();
  const std::vector<std::int64_t> unknown = number_fluid_cells(l, coarse_cells);
  const std::int64_t m = static_cast<std::int64_t>(coarse_cells.size());
  const std::int64_t off[6] = {-1, 1, -l.sy, l.sy, -l.sz, l.sz};
  // Weighted: the weight of face f (0..5, the order of off) of cell p, relative to l.s.
  const auto face_weight = [&](std::int64_t p, int f) {
    return weights->face[f / 2][(f & 1) ? p + off[f] : p];
  };
  coarse_component = singular_components(l, coarse_cells, unknown, weights, singular_sizes);
  // Pin the first unknown of each singular component.
  this->pinned.clear();
  std::vector<bool> pinned(m, false), pinned_done(singular_sizes.size(), false);
  for (std::int64_t u = 0; u < m; ++u) {
    const int sc = coarse_component[u];
    if (sc >= 0 && !pinned_done[sc]) {
      pinned_done[sc] = true;
      pinned[u] = true;
      this->pinned.push_back(u);
    }
  }
  // The level's operator in double (its entries, small integers times 4^-level, are exact in
  // float too).
  std::vector<Eigen::Triplet<double>> t;
  t.reserve(m * 7);
  for (std::int64_t u = 0; u < m; ++u) {
    const std::int64_t p = coarse_cells[u];
    if (weights) {
      // The weighted row in double (finish_weighted_level's sums, before the rounding to Real).
      double sum = 0.0;
      for (int f = 0; f < 6; ++f)
        if (l.type[p + off[f]] != static_cast<std::uint8_t>(CellType::Solid)) sum += face_weight(p, f);
      sum += weights->term[p];
      t.emplace_back(u, u, l.s * sum);
      if (pinned[u]) continue;
      for (int f = 0; f < 6; ++f) {
        const std::int64_t v = unknown[p + off[f]];
        const double w = face_weight(p, f);
        if (v >= 0 && !pinned[v] && w > 0.0) t.emplace_back(u, v, -l.s * w);
      }
      continue;
    }
    const double diag = static_cast<double>(level_diagonal(l, p));
    if (pinned[u]) {
      t.emplace_back(u, u, diag);
      continue;
    }
    t.emplace_back(u, u, diag);
    for (auto o : off) {
      const std::int64_t v = unknown[p + o];
      if (v >= 0 && !pinned[v]) t.emplace_back(u, v, -l.s);
    }
  }
  Eigen::SparseMatrix<double> a(m, m);
  a.setFromTriplets(t.begin(), t.end());
  ldlt.compute(a);
  if (ldlt.info() != Eigen::Success) throw Error("multigrid: coarsest-level factorisation failed");
  coarse_rhs.resize(m);
  coarse_sol.resize(m);
  mean.assign(singular_sizes.size(), 0.0);
}

// acc plus the weighted couplings of cell p times its neighbours' values, added in the order
// x-, x+, y-, y+, z-, z+: the one weighted row that the sweeps, the band updates and the residual
// share (the coupling above a cell is the lower coupling of the cell above it).
template <class Real>
inline Real add_couplings(Real acc, const Real* wx, const Real* wy, const Real* wz, const Real* x, std::int64_t p,
                          std::int64_t sy, std::int64_t sz) {
  return acc + wx[p] * x[p - 1] + wx[p + 1] * x[p + 1] + wy[p] * x[p - sy] + wy[p + sy] * x[p + sy] +
         wz[p] * x[p - sz] + wz[p + sz] * x[p + sz];
}

// ---- Row kernels: one row (j, k) of a level, or one listed cell. The straightforward passes
// (MultigridOptions::fused_passes false) loop them over the grid one pass after another; the
// fused passes (run_pass) stream them over z-planes in a wavefront. Both evaluate every cell
// with the same expression from the same values, so the two give the same results bit for bit.

// The Gauss-Seidel value of cell p (unit or weighted row).
template <bool Weighted, class Real>
inline Real gs_value(const Level<Real>& l, std::int64_t p) {
  const Real* x = l.x.data();
  const std::int64_t sy = l.sy, sz = l.sz;
  if constexpr (Weighted) {
    return l.inv_diag[p] * add_couplings(l.b[p], l.wx.data(), l.wy.data(), l.wz.data(), x, p, sy, sz);
  } else {
    const Real s = static_cast<Real>(l.s);
    return l.inv_diag[p] * (l.b[p] + s * (x[p - 1] + x[p + 1] + x[p - sy] + x[p + sy] + x[p - sz] + x[p + sz]));
  }
}

// One colour of rows [j0, j1) of plane k: x[p] = relax(p, x[p], GS value). Vectorised over
// chunks of a row: every cell's value is computed into a buffer (a loop that only reads x), then
// the colour's cells take theirs (a loop with no neighbour reads; GCC vectorises neither half
// when the two are one loop). A cell of the colour reads only cells of the other one, which
// the half-sweep does not change, so this gives the values of the cell-by-cell loop; the row
// costs twice the arithmetic of its colour's cells in a sixteenth of the instructions
// (AVX-512, float).
template <bool Weighted, class Real, class Relax>
inline void sweep_rows(Level<Real>& l, int colour, int k, int j0, int j1, Relax relax) {
  constexpr int kChunk = 256;
  alignas(64) Real next[kChunk];
  const Dims d = l.dims;
  Real* x = l.x.data();
  const Real* b = l.b.data();
  const Real* id = l.inv_diag.data();
  const Real s = static_cast<Real>(l.s);
  const std::int64_t sy = l.sy, sz = l.sz;
  const Real* wx = Weighted ? l.wx.data() : nullptr;
  const Real* wy = Weighted ? l.wy.data() : nullptr;
  const Real* wz = Weighted ? l.wz.data() : nullptr;
  for (int j = j0; j < j1; ++j) {
    const std::int64_t row = l.at(0, j, k);
    const int first = (colour + j + k) & 1;
    for (int i0 = 0; i0 < d.nx; i0 += kChunk) {
      const int m = std::min(kChunk, d.nx - i0);
      const std::int64_t start = row + i0;
#pragma omp simd
      for (int i = 0; i < m; ++i) {
        const std::int64_t p = start + i;
        if constexpr (Weighted)
          next[i] = relax(p, x[p], id[p] * add_couplings(b[p], wx, wy, wz, x, p, sy, sz));
        else
          next[i] = relax(p, x[p], id[p] * (b[p] + s * (x[p - 1] + x[p + 1] + x[p - sy] + x[p + sy] + x[p - sz] + x[p + sz])));
      }
      Real* xs = x + start;
      const int keep = (first + i0) & 1;
#pragma omp simd
      for (int i = 0; i < m; ++i) xs[i] = (i & 1) == keep ? next[i] : xs[i];
    }
  }
}

// r = (b - A x) / W on rows [j0, j1) of plane k (iw = 0 outside the fluid).
template <bool Weighted, class Real>
inline void residual_rows(Level<Real>& f, int k, int j0, int j1) {
  const Dims d = f.dims;
  const Real* x = f.x.data();
  const Real* b = f.b.data();
  const Real* iw = f.inv_w.data();
  const std::int64_t sy = f.sy, sz = f.sz;
  for (int j = j0; j < j1; ++j) {
    const std::int64_t row = f.at(0, j, k);
    Real* r = f.r_plane[static_cast<std::size_t>(k) + 1] + (row - (k + 1) * sz);  // the row in plane k's buffer
    if constexpr (Weighted) {
      const Real* dg = f.diag.data();
      const Real* wx = f.wx.data();
      const Real* wy = f.wy.data();
      const Real* wz = f.wz.data();
#pragma omp simd
      for (int i = 0; i < d.nx; ++i) {
        const std::int64_t p = row + i;
        const Real ax = dg[p] * x[p] - add_couplings(Real(0), wx, wy, wz, x, p, sy, sz);
        r[i] = iw[p] * (b[p] - ax);
      }
    } else {
      const Real* id = f.inv_diag.data();  // a unit level's diagonal comes from its inverse
      const Real s = static_cast<Real>(f.s);
#pragma omp simd
      for (int i = 0; i < d.nx; ++i) {
        const std::int64_t p = row + i;
        const Real ax =
            unit_diagonal(id[p]) * x[p] - s * (x[p - 1] + x[p + 1] + x[p - sy] + x[p + sy] + x[p - sz] + x[p + sz]);
        r[i] = iw[p] * (b[p] - ax);
      }
    }
  }
}

// b_c = mask_c * (1/8) sum of trilinear weights * r_f on coarse rows [j0, j1) of coarse plane k
// (transfer::restriction_sum's sums in its order, vectorised over the coarse cells of a row).
template <class Real>
inline void restrict_rows(const Level<Real>& f, Level<Real>& c, int k, int j0, int j1) {
  constexpr int kChunk = 128;
  alignas(64) Real sum[kChunk];
  const Dims cd = c.dims;
  Real* bc = c.b.data();
  const std::uint8_t* ct = c.type.data();
  const Real* kappa = c.kappa.empty() ? nullptr : c.kappa.data();
  const auto fluid = static_cast<std::uint8_t>(CellType::Fluid);
  for (int j = j0; j < j1; ++j)
    for (int i0 = 0; i0 < cd.nx; i0 += kChunk) {
      const int m = std::min(kChunk, cd.nx - i0);
      // Fine cells 2i-1 .. 2i+2 per axis (ghosts included, zero there).
      transfer::restriction_sums<Real>(m, sum, [&](int e, int b) {
        const int fk = 2 * k - 1 + e;  // the residual's plane fk, from its buffer
        return f.r_plane[static_cast<std::size_t>(fk) + 1] + (f.at(2 * i0 - 1, 2 * j - 1 + b, fk) - (fk + 1) * f.sz);
      });
      const std::int64_t row = c.at(i0, j, k);
#pragma omp simd
      for (int i = 0; i < m; ++i) {
        const std::int64_t pc = row + i;
        const Real v = kappa ? kappa[pc] * (Real(0.125) * sum[i]) : Real(0.125) * sum[i];
        bc[pc] = ct[pc] == fluid ? v : Real(0);
      }
    }
}

// x_f += W^{-1} sum of trilinear weights * xc on fine rows [j0, j1) of plane k (xc: the coarse
// values, zero outside the coarse fluid; K x_c with weighted interpolation). transfer::
// prolongate_at's sums, vectorised: the even fine cells 2m (coarse parents m, m - 1 along x)
// and the odd ones 2m + 1 (m, m + 1) each into a buffer, then merged.
template <class Real>
inline void prolongate_rows(const Real* xc, const Level<Real>& c, Level<Real>& f, int k, int j0, int j1) {
  constexpr int kChunk = 128;  // coarse cells
  alignas(64) Real even[kChunk], odd[kChunk];
  const Dims d = f.dims;
  Real* xf = f.x.data();
  const Real* iw = f.inv_w.data();
  for (int j = j0; j < j1; ++j) {
    const transfer::ProlongationRows rows = transfer::prolongation_rows(c, j, k);
    const std::int64_t row = f.at(0, j, k);
    for (int m0 = 0; 2 * m0 < d.nx; m0 += kChunk) {
      const int cells = std::min(2 * kChunk, d.nx - 2 * m0);  // fine cells of the chunk
      const int m = (cells + 1) / 2;
      transfer::prolongation_pairs(xc, rows, m0, m, even, odd);
      Real* xs = xf + row + 2 * m0;
      const Real* ws = iw + row + 2 * m0;
      for (int i = 0; i < cells; ++i) {
        const Real v = (i & 1) ? odd[i >> 1] : even[i >> 1];
        xs[i] = ws[i] != Real(0) ? xs[i] + ws[i] * v : xs[i];
      }
    }
  }
}

// b = r on one row, zero outside the fluid (1/diagonal 0): the finest level's right-hand side.
// Converted first, then selected: a conversion under the condition keeps GCC from vectorising.
template <class Real>
inline void load_row(Real* b, const Real* inv_diag, const double* r, int n) {
  constexpr int kChunk = 256;
  alignas(64) Real v[kChunk];
  for (int i0 = 0; i0 < n; i0 += kChunk) {
    const int m = std::min(kChunk, n - i0);
#pragma omp simd
    for (int i = 0; i < m; ++i) v[i] = static_cast<Real>(r[i0 + i]);
#pragma omp simd
    for (int i = 0; i < m; ++i) b[i0 + i] = inv_diag[i0 + i] != Real(0) ? v[i] : Real(0);
  }
}

// The entries [q0, q1) of a sorted list of padded indices that lie in rows [j0, j1) of plane k.
template <class Real, class List>
inline std::pair<std::int64_t, std::int64_t> listed_rows(const Level<Real>& l, const List& cells, int k, int j0, int j1) {
  const auto lo = std::lower_bound(cells.begin(), cells.end(), l.at(-1, j0, k));
  const auto hi = std::lower_bound(lo, cells.end(), l.at(-1, j1, k));
  return {lo - cells.begin(), hi - cells.begin()};
}

// Gauss-Seidel (factor 1) keeps the plain update; other factors over- or under-relax it. Each
// single-colour update changes only unknowns that do not couple with each other, so any factors
// in (0, 2) lower the A-norm error and the update stays self-adjoint in the A inner product.
// Cells of one colour couple with no other cell of that colour, in their plane or the next, so
// the planes can be updated in any order and on any thread: the straightforward passes run
// each plane's rows with the kernels of the fused passes (the same code, the same rounding).
template <class Real>
void Cycle<Real>::smooth_colour(Level<Real>& l, int colour) {
  const int nz = l.dims.nz, ny = l.dims.ny;
  if (l.weighted) {
#pragma omp parallel for schedule(static) if (l.parallel())
    for (int k = 0; k < nz; ++k) smooth_colour_rows<true>(l, colour, k, 0, ny);
  } else {
#pragma omp parallel for schedule(static) if (l.parallel())
    for (int k = 0; k < nz; ++k) smooth_colour_rows<false>(l, colour, k, 0, ny);
  }
}

template <class Real>
void Cycle<Real>::smooth_band(Level<Real>& l, int colour) {
  const int nz = l.dims.nz, ny = l.dims.ny;
  const bool parallel = static_cast<std::int64_t>(l.band[colour].size()) >= kParallelCells / 4;
  if (l.weighted) {
#pragma omp parallel for schedule(static) if (parallel)
    for (int k = 0; k < nz; ++k) smooth_band_rows<true>(l, colour, k, 0, ny);
  } else {
#pragma omp parallel for schedule(static) if (parallel)
    for (int k = 0; k < nz; ++k) smooth_band_rows<false>(l, colour, k, 0, ny);
  }
}

// One colour of the interior sweep on rows [j0, j1) of plane k. With per-cell factors, the
// cells whose factor differs from the common one are computed first from the same neighbour
// values (cells of one colour do not couple), every cell is swept with the common factor (the
// fast kernel), then theirs are put back.
template <class Real>
template <bool Weighted>
void Cycle<Real>::smooth_colour_rows(Level<Real>& l, int colour, int k, int j0, int j1) {
  if (l.per_cell) {
    const auto& cells = l.special[colour];
    const std::pair<std::int64_t, std::int64_t> range = listed_rows(l, cells, k, j0, j1);
    const std::int64_t q0 = range.first, q1 = range.second;
    const Real* w = l.special_omega[colour].data();
    Real* x = l.x.data();
    Real* saved = l.special_value.data();
    const auto visit = [x, w, saved](std::int64_t q, std::int64_t p, Real gs) { saved[q] = x[p] + w[q] * (gs - x[p]); };
    for (std::int64_t q = q0; q < q1; ++q) visit(q, cells[q], gs_value<Weighted>(l, cells[q]));
    const Real common = l.common_omega;
    sweep_rows<Weighted>(l, colour, k, j0, j1, [common](std::int64_t, Real x, Real gs) { return x + common * (gs - x); });
    for (std::int64_t q = q0; q < q1; ++q) x[cells[q]] = saved[q];
  } else if (opt.omega == 1.0) {
    sweep_rows<Weighted>(l, colour, k, j0, j1, [](std::int64_t, Real, Real gs) { return gs; });
  } else {
    const Real w = static_cast<Real>(opt.omega);
    sweep_rows<Weighted>(l, colour, k, j0, j1, [w](std::int64_t, Real x, Real gs) { return x + w * (gs - x); });
  }
}

// smooth_band restricted to the band cells in rows [j0, j1) of plane k.
template <class Real>
template <bool Weighted>
void Cycle<Real>::smooth_band_rows(Level<Real>& l, int colour, int k, int j0, int j1) {
  const auto& cells = l.band[colour];
  // Not a structured binding: the lambda below captures q0 and q1 (C++20 compilers differ).
  const std::pair<std::int64_t, std::int64_t> range = listed_rows(l, cells, k, j0, j1);
  const std::int64_t q0 = range.first, q1 = range.second;
  Real* x = l.x.data();
  const std::int64_t* c = cells.data();
  const auto sweep = [&](auto relax) {
    const auto visit = [x, relax](std::int64_t q, std::int64_t p, Real gs) { x[p] = relax(q, x[p], gs); };
    for (std::int64_t q = q0; q < q1; ++q) visit(q, c[q], gs_value<Weighted>(l, c[q]));
  };
  if (l.per_cell) {
    const Real* w = l.band_omega[colour].data();
    sweep([w](std::int64_t q, Real x, Real gs) { return x + w[q] * (gs - x); });
  } else if (opt.band_omega == 1.0) {
    sweep([](std::int64_t, Real, Real gs) { return gs; });
  } else {
    const Real w = static_cast<Real>(opt.band_omega);
    sweep([w](std::int64_t, Real x, Real gs) { return x + w * (gs - x); });
  }
}

// The smoother's single-colour steps (band, interior, band sweeps), each pair colour `first`
// then the other: the pre-smoother starts with colour 0, and the post-smoother, its adjoint
// (the same steps in reverse order), with colour 1.
template <class Real>
void Cycle<Real>::smooth(Level<Real>& l, int first) {
  const auto band_sweeps = [&] {
    for (int s = 0; s < opt.boundary_sweeps; ++s) {
      smooth_band(l, first);
      smooth_band(l, 1 - first);
    }
  };
  band_sweeps();
  for (int s = 0; s < opt.pre_sweeps; ++s) {
    smooth_colour(l, first);
    smooth_colour(l, 1 - first);
  }
  band_sweeps();
}

// r = (b - A x) / W on fluid cells, then b_c = mask_c * (1/8) sum of trilinear weights * r.
template <class Real>
void Cycle<Real>::residual_to_coarse(Level<Real>& f, Level<Real>& c) {
  const Dims d = f.dims;
  if (f.weighted) {
#pragma omp parallel for schedule(static) if (f.parallel())
    for (int k = 0; k < d.nz; ++k) residual_rows<true>(f, k, 0, d.ny);
  } else {
#pragma omp parallel for schedule(static) if (f.parallel())
    for (int k = 0; k < d.nz; ++k) residual_rows<false>(f, k, 0, d.ny);
  }
  const Dims cd = c.dims;
#pragma omp parallel for schedule(static) if (c.parallel())
  for (int k = 0; k < cd.nz; ++k) restrict_rows(f, c, k, 0, cd.ny);
}

// Weighted interpolation: P = W^{-1} T K (K = the parents' conductivities); the coarse residual
// vector is free now and holds K x_c. Returns the coarse values to interpolate.
template <class Real>
const Real* Cycle<Real>::coarse_values(Level<Real>& c) {
  const Real* xc = c.x.data();
  if (c.kappa.empty()) return xc;
  const std::int64_t n = c.padded_size();
  const Real* kc = c.kappa.data();
  Real* y = c.r.data();
#pragma omp parallel for simd schedule(static) if (c.parallel())
  for (std::int64_t p = 0; p < n; ++p) y[p] = kc[p] * xc[p];
  return y;
}

// x_f += W^{-1} sum of trilinear weights * x_c  (x_c is zero outside the coarse fluid).
template <class Real>
void Cycle<Real>::prolongate(Level<Real>& c, Level<Real>& f) {
  const Dims d = f.dims;
  const Real* xc = coarse_values(c);
#pragma omp parallel for schedule(static) if (f.parallel())
  for (int k = 0; k < d.nz; ++k) prolongate_rows(xc, c, f, k, 0, d.ny);
}

// ---- Fused passes (MultigridOptions::fused_passes). A pass is a list of stages, each a
// plane-by-plane operation on the level (load/zero, prolongation, one colour of the interior or
// band sweeps, residual; restriction to the next level follows the residual). A wavefront:
// step t runs stage s on plane t - 2s. A stage at plane p reads planes p-1..p+1 of the previous
// stage's output, which the steps before finished, and writes only plane p, which no other
// stage of the step reads (they are two planes apart). The whole pass streams the level's
// arrays once through a window of 2 * stages planes (about 6 MB at 128^3 in float: the
// last-level cache), where the straightforward passes stream them once per stage.
// Threads: each takes a slab of whole planes, even threads sweeping theirs upward, odd ones
// downward, so that two neighbouring slabs touch only where both start (three threads or
// more) or both end; with slab lengths within one of each other the stage at an edge plane
// then runs after the neighbour's previous stage at the plane across, and before its next one,
// provided a thread waits, before a stage on an edge plane at step t, until the neighbour
// across the edge has finished step t - 1 (per-thread progress marks, no barriers). Steps away
// from the edges wait for nothing, so a thread that the system deschedules for a while stalls
// the other only where their planes meet (a split of every plane's rows needs a barrier per
// step: measured 20x slower on a loaded machine). Coarse planes are restricted as soon as the residual covers their fine planes
// 2k-1..2k+2 within a slab, the few across two slabs after the last step.
template <class Real>
template <bool Weighted>
void Cycle<Real>::run_stage(Level<Real>& l, Level<Real>* c, const Stage& st, int k, int j0, int j1) {
  const Dims d = l.dims;
  switch (st.kind) {
    case StageKind::Load: {  // x = 0, b = r (zero outside the fluid: rows of A vanish there)
      Real* x = l.x.data();
      Real* b = l.b.data();
      const Real* id = l.inv_diag.data();
      for (int j = j0; j < j1; ++j) {
        const std::int64_t row = l.at(0, j, k);
        const double* src = load_ + d.index(0, j, k);
        std::fill_n(x + row, d.nx, Real(0));
        load_row(b + row, id + row, src, d.nx);
      }
      break;
    }
    case StageKind::Zero:
      for (int j = j0; j < j1; ++j) std::fill_n(l.x.data() + l.at(0, j, k), d.nx, Real(0));
      break;
    case StageKind::Prolong:
      prolongate_rows(prolong_from_, *c, l, k, j0, j1);
      break;
    case StageKind::Interior:
      smooth_colour_rows<Weighted>(l, st.colour, k, j0, j1);
      break;
    case StageKind::Band:
      smooth_band_rows<Weighted>(l, st.colour, k, j0, j1);
      break;
    case StageKind::Residual:
      residual_rows<Weighted>(l, k, j0, j1);
      break;
    case StageKind::Store:
      for (int j = j0; j < j1; ++j) {
        const Real* x = l.x.data() + l.at(0, j, k);
        if (store_single_) {
          float* dst = store_single_ + d.index(0, j, k);
#pragma omp simd
          for (int i = 0; i < d.nx; ++i) dst[i] = static_cast<float>(x[i]);
        } else {
          double* dst = store_ + d.index(0, j, k);
#pragma omp simd
          for (int i = 0; i < d.nx; ++i) dst[i] = static_cast<double>(x[i]);
        }
      }
      break;
  }
}

template <class Real>
template <bool Weighted>
void Cycle<Real>::run_pass(Level<Real>& l, Level<Real>* restrict_to, Level<Real>* prolong_from, const Stage* stages,
                           int count) {
  const int nz = l.dims.nz, ny = l.dims.ny;
  Level<Real>* c = restrict_to ? restrict_to : prolong_from;
  const int wanted = l.parallel() ? std::max(1, std::min(omp_get_max_threads(), nz / 4)) : 1;
  if (wanted > progress_size_) {  // once per thread count: no allocation per cycle
    progress_ = std::make_unique<Progress[]>(static_cast<std::size_t>(wanted));
    progress_size_ = wanted;
  }
  // Progress marks of this pass: serial * 2^24 + the last finished step (earlier passes' marks
  // are smaller, so nothing needs resetting).
  const std::int64_t serial = ++pass_serial_ << 24;
  Progress* progress = progress_.get();
  if (restrict_to) layout_residual_planes(l, wanted);
#pragma omp parallel num_threads(wanted) if (wanted > 1)
  {
    const int threads = omp_get_num_threads(), id = omp_get_thread_num();
    const int lo = slab_start(nz, id, threads), hi = slab_start(nz, id + 1, threads), len = hi - lo;
    if (restrict_to && l.r_buffer_threads != threads) {  // a team smaller than asked for
#pragma omp barrier
#pragma omp master
      layout_residual_planes(l, threads);
#pragma omp barrier
    }
    const bool up = id % 2 == 0;
    const int steps = (nz + threads - 1) / threads + 2 * (count - 1);  // the longest slab's
    // Restriction: the coarse planes whose fine planes 2k-1..2k+2 (within the grid) lie in this
    // slab follow the residual; the others wait for every slab.
    const int cnz = restrict_to ? restrict_to->dims.nz : 0;
    const auto fine_lo = [&](int kc) { return std::max(2 * kc - 1, 0); };
    const auto fine_hi = [&](int kc) { return std::min(2 * kc + 2, nz - 1); };
    int own_lo = 0, own_hi = 0;  // [own_lo, own_hi): the coarse planes inside the slab
    if (restrict_to) {
      own_lo = cnz;
      for (int kc = 0; kc < cnz; ++kc)
        if (fine_lo(kc) >= lo && fine_hi(kc) < hi) {
          own_lo = std::min(own_lo, kc);
          own_hi = kc + 1;
        }
      if (own_lo >= own_hi) own_lo = own_hi = 0;
    }
    int next_up = own_lo, next_down = own_hi - 1;
    // Before a stage (after the first) runs on an edge plane at step t, the neighbour across that
    // edge must have finished step t - 1: its previous stage at its edge plane is then done, and
    // its next one waits in turn for this thread to finish step t (slab lengths within one).
    const auto wait_for = [&](int neighbour, int t) {
      const std::int64_t target = serial + t - 1;
      for (int spins = 0; progress[neighbour].step.load(std::memory_order_acquire) < target; ++spins)
        if (spins > 256) std::this_thread::yield();
    };
    for (int t = 0; t < steps; ++t) {
      for (int s = 0; s < count; ++s) {
        const int local = t - 2 * s;
        if (local < 0) break;
        if (local >= len) continue;
        const int k = up ? lo + local : hi - 1 - local;
        if (s > 0 && k == lo && id > 0) wait_for(id - 1, t);
        if (s > 0 && k == hi - 1 && id + 1 < threads) wait_for(id + 1, t);
        run_stage<Weighted>(l, c, stages[s], k, 0, ny);
      }
      if (threads > 1) progress[id].step.store(serial + t, std::memory_order_release);
      if (restrict_to) {
        const int done = t - 2 * (count - 1);  // the residual covers this many slab planes, less one
        if (up) {
          while (next_up < own_hi && fine_hi(next_up) <= lo + done) restrict_rows(l, *restrict_to, next_up++, 0, restrict_to->dims.ny);
        } else {
          while (next_down >= own_lo && fine_lo(next_down) >= hi - 1 - done)
            restrict_rows(l, *restrict_to, next_down--, 0, restrict_to->dims.ny);
        }
      }
    }
    if (restrict_to) {
#pragma omp barrier
      for (int kc = static_cast<int>(std::int64_t(cnz) * id / threads); kc < std::int64_t(cnz) * (id + 1) / threads; ++kc) {
        bool inside = false;
        for (int i = 0; i < threads && !inside; ++i)
          inside = fine_lo(kc) >= slab_start(nz, i, threads) && fine_hi(kc) < slab_start(nz, i + 1, threads);
        if (!inside) restrict_rows(l, *restrict_to, kc, 0, restrict_to->dims.ny);
      }
    }
  }
}

// The stages of the pre-smoother (then the residual) and of the prolongation and post-smoother,
// in the order of smooth(l, 0) / smooth(l, 1).
template <class Real>
void Cycle<Real>::build_stages() {
  pre_stages_.clear();
  post_stages_.clear();
  const auto add = [](std::vector<Stage>& v, StageKind kind, int sweeps, int first) {
    for (int s = 0; s < sweeps; ++s) {
      v.push_back({kind, first});
      v.push_back({kind, 1 - first});
    }
  };
  pre_stages_.push_back({StageKind::Zero, 0});  // the finest level's first stage: Load
  add(pre_stages_, StageKind::Band, opt.boundary_sweeps, 0);
  add(pre_stages_, StageKind::Interior, opt.pre_sweeps, 0);
  add(pre_stages_, StageKind::Band, opt.boundary_sweeps, 0);
  pre_stages_.push_back({StageKind::Residual, 0});
  post_stages_.push_back({StageKind::Prolong, 0});
  add(post_stages_, StageKind::Band, opt.boundary_sweeps, 1);
  add(post_stages_, StageKind::Interior, opt.pre_sweeps, 1);
  add(post_stages_, StageKind::Band, opt.boundary_sweeps, 1);
  post_stages_.push_back({StageKind::Store, 0});  // the finest level only
}

// The iterated coarse solve's level: the first of at most coarsest_cells cells that has
// levels below it (a hierarchy cut short by max_levels or thin dimensions may have none).
template <class Real>
void Cycle<Real>::build_inner_solve() {
  inner_level_ = -1;
  if (!iterated_coarse_solve(opt, levels_.front().weighted)) return;
  for (int li = 0; li + 1 < levels(); ++li)
    if (levels_[li].dims.size() <= opt.coarsest_cells) {
      inner_level_ = li;
      break;
    }
  if (inner_level_ < 0) return;
  const Level<Real>& l = levels_[inner_level_];
  const std::vector<std::int64_t> unknown = number_fluid_cells(l, inner_cells_);
  inner_component_ = singular_components(l, inner_cells_, unknown, nullptr, inner_singular_sizes_);
  inner_rhs_.assign(inner_cells_.size(), Real(0));
  inner_sum_.assign(inner_cells_.size(), Real(0));
  inner_mean_.assign(inner_singular_sizes_.size(), 0.0);
}

// The coarsest level solved by coarse_cycles V-cycles: b projected onto the range (as the
// direct solve projects it), x_0 = 0, x_{i+1} = x_i + V(b - A x_i), the result projected.
// With V symmetric, the sum over i of (I - V A)^i V is symmetric too: the cycle above stays a
// symmetric preconditioner. The level's fluid cells only (the rest of x stays 0, as V leaves
// it). On the finest level (a grid no larger than coarsest_cells) the fused passes' load and
// store of r and z happen here.
template <class Real>
void Cycle<Real>::inner_solve(int li) {
  Level<Real>& l = levels_[li];
  const std::int64_t m = static_cast<std::int64_t>(inner_cells_.size());
  const bool fused_top = li == 0 && opt.fused_passes;
  if (fused_top) load_rhs(load_);
  for (std::int64_t u = 0; u < m; ++u) inner_rhs_[u] = l.b[inner_cells_[u]];
  subtract_component_means(inner_component_, inner_singular_sizes_, inner_mean_, inner_rhs_);
  std::fill(inner_sum_.begin(), inner_sum_.end(), Real(0));
  const Real s = static_cast<Real>(l.s);
  const std::int64_t sy = l.sy, sz = l.sz;
  inner_running_ = true;
  for (int cycle = 0; cycle < opt.coarse_cycles; ++cycle) {
    // b = rhs - A x_i on the fluid cells (x_i, the sum so far, in x: zero elsewhere).
    if (cycle == 0) {
      std::fill(l.x.begin(), l.x.end(), Real(0));
      for (std::int64_t u = 0; u < m; ++u) l.b[inner_cells_[u]] = inner_rhs_[u];
    } else {
      const Real* x = l.x.data();
      for (std::int64_t u = 0; u < m; ++u) l.x[inner_cells_[u]] = inner_sum_[u];
      for (std::int64_t u = 0; u < m; ++u) {
        const std::int64_t p = inner_cells_[u];
        const Real ax = unit_diagonal(l.inv_diag[p]) * x[p] - s * (x[p - 1] + x[p + 1] + x[p - sy] + x[p + sy] + x[p - sz] + x[p + sz]);
        l.b[p] = inner_rhs_[u] - ax;
      }
    }
    vcycle(li);
    for (std::int64_t u = 0; u < m; ++u) inner_sum_[u] += l.x[inner_cells_[u]];
  }
  inner_running_ = false;
  subtract_component_means(inner_component_, inner_singular_sizes_, inner_mean_, inner_sum_);
  std::fill(l.x.begin(), l.x.end(), Real(0));
  for (std::int64_t u = 0; u < m; ++u) l.x[inner_cells_[u]] = inner_sum_[u];
  if (fused_top) {
    if (store_) store_solution(store_);
    else store_solution(store_single_);
  }
}

// The finest level's b = r on the fluid cells (zero elsewhere: rows of A vanish there).
template <class Real>
void Cycle<Real>::load_rhs(const double* r) {
  Level<Real>& top = levels_.front();
  const Dims d = top.dims;
  Real* b = top.b.data();
  const Real* id = top.inv_diag.data();
#pragma omp parallel for schedule(static) if (top.parallel())
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j) {
      const std::int64_t row = top.at(0, j, k);
      const std::int64_t src = d.index(0, j, k);
      for (int i = 0; i < d.nx; ++i) b[row + i] = id[row + i] != Real(0) ? static_cast<Real>(r[src + i]) : Real(0);
    }
}

// z = the finest level's x, unpadded.
template <class Real>
template <class Out>
void Cycle<Real>::store_solution(Out* z) const {
  const Level<Real>& top = levels_.front();
  const Dims d = top.dims;
  const Real* x = top.x.data();
#pragma omp parallel for schedule(static) if (top.parallel())
  for (int k = 0; k < d.nz; ++k)
    for (int j = 0; j < d.ny; ++j) {
      const std::int64_t row = top.at(0, j, k);
      const std::int64_t dst = d.index(0, j, k);
      for (int i = 0; i < d.nx; ++i) z[dst + i] = static_cast<Out>(x[row + i]);
    }
}

template <class Real>
void Cycle<Real>::coarse_solve(Level<Real>& l) {
  const std::int64_t m = static_cast<std::int64_t>(coarse_cells.size());
  for (std::int64_t u = 0; u < m; ++u) coarse_rhs[u] = static_cast<double>(l.b[coarse_cells[u]]);
  // Project onto the range (zero mean on each singular component): P G P is symmetric.
  auto project = [&](Eigen::VectorXd& v) { subtract_component_means(coarse_component, singular_sizes, mean, v); };
  project(coarse_rhs);
  // Pinned unknowns are fixed at 0 (their column is dropped from the matrix): with a zero
  // right-hand side there, G = [A_reduced^{-1}, 0; 0, 0] is a generalised inverse of A.
  for (std::int64_t u : pinned) coarse_rhs[u] = 0.0;
  coarse_sol = ldlt.solve(coarse_rhs);
  project(coarse_sol);
  std::fill(l.x.begin(), l.x.end(), Real(0));
  for (std::int64_t u = 0; u < m; ++u) l.x[coarse_cells[u]] = static_cast<Real>(coarse_sol[u]);
}

template <class Real>
void Cycle<Real>::vcycle(int li) {
  Level<Real>& l = levels_[li];
  if (li + 1 == levels()) {
    coarse_solve(l);
    return;
  }
  if (li == inner_level_ && !inner_running_) {
    inner_solve(li);
    return;
  }
  Level<Real>& c = levels_[li + 1];
  if (opt.fused_passes) {
    // The finest level loads r and stores z in its first and last stage (inner_solve does
    // that where the finest level is the iterated coarse one).
    const bool finest = li == 0 && inner_level_ != 0;
    pre_stages_.front().kind = finest ? StageKind::Load : StageKind::Zero;
    const int pre = static_cast<int>(pre_stages_.size());
    const int post = static_cast<int>(post_stages_.size()) - (finest ? 0 : 1);
    if (l.weighted) run_pass<true>(l, &c, nullptr, pre_stages_.data(), pre);
    else run_pass<false>(l, &c, nullptr, pre_stages_.data(), pre);
    vcycle(li + 1);
    prolong_from_ = coarse_values(c);
    if (l.weighted) run_pass<true>(l, nullptr, &c, post_stages_.data(), post);
    else run_pass<false>(l, nullptr, &c, post_stages_.data(), post);
    return;
  }
  std::fill(l.x.begin(), l.x.end(), Real(0));
  smooth(l, 0);
  residual_to_coarse(l, c);
  vcycle(li + 1);
  prolongate(c, l);
  smooth(l, 1);
}

template <class Real>
void Cycle<Real>::apply(dcdm::span<const double> r, dcdm::span<double> z) {
  apply_to(r, z.data());
}

template <class Real>
void Cycle<Real>::apply_single(dcdm::span<const double> r, dcdm::span<float> z) {
  apply_to(r, z.data());
}

template <class Real>
template <class Out>
void Cycle<Real>::apply_to(dcdm::span<const double> r, Out* z) {
  if (opt.fused_passes && levels() > 1) {
    load_ = r.data();
    if constexpr (std::is_same_v<Out, float>) {
      store_ = nullptr;
      store_single_ = z;
    } else {
      store_ = z;
      store_single_ = nullptr;
    }
    vcycle(0);
    return;
  }
  load_rhs(r.data());
  vcycle(0);
  store_solution(z);
}

}  // namespace

struct MultigridPreconditioner::Impl {
  std::unique_ptr<CycleBase> cycle;
  std::int64_t n = 0;
};

MultigridPreconditioner::MultigridPreconditioner(MultigridOptions options)
    : options_(std::move(options)), impl_(std::make_unique<Impl>()) {
  const MultigridOptions& o = options_;
  if (o.pre_sweeps < 0 || o.boundary_sweeps < 0 || o.band_width < 0 || o.coarsest_cells < 1 || o.max_levels < 1 ||
      o.coarse_cycles < 0 || o.direct_cells < 1)
    throw InputError("multigrid: sweeps, band width, coarse cycles and level limits must be non-negative");
  if (!(o.omega > 0.0 && o.omega < 2.0) || !(o.band_omega > 0.0 && o.band_omega < 2.0))
    throw InputError(fmt::format("multigrid: relaxation factors must lie in (0, 2) (omega {}, band omega {})",
                                 o.omega, o.band_omega));
}
MultigridPreconditioner::~MultigridPreconditioner() = default;

void MultigridPreconditioner::setup(const LinearSystemView& system) {
  if (!system.domain)
    throw InputError("mgpcg: needs a grid domain (a scene, a system folder, or a 7-point grid matrix "
                     "with --dims)");
  if (system.op && system.op->size() != system.domain->dims().size())
    throw InputError(fmt::format("mgpcg: domain has {} cells, the operator {} rows",
                                 system.domain->dims().size(), system.op->size()));
  impl_->n = system.domain->dims().size();
  if (options_.single_precision)
    impl_->cycle = std::make_unique<Cycle<float>>(*system.domain, options_);
  else
    impl_->cycle = std::make_unique<Cycle<double>>(*system.domain, options_);
}

std::int64_t MultigridPreconditioner::size() const { return impl_->n; }
int MultigridPreconditioner::levels() const { return impl_->cycle ? impl_->cycle->levels() : 0; }
Dims MultigridPreconditioner::level_dims(int level) const {
  if (!impl_->cycle) throw Error("multigrid: level_dims before setup");
  return impl_->cycle->level_dims(level);
}

std::vector<MultigridPreconditioner::LevelData> MultigridPreconditioner::hierarchy() const {
  if (!impl_->cycle) throw Error("multigrid: hierarchy before setup");
  return impl_->cycle->hierarchy();
}

void MultigridPreconditioner::solve_coarsest(dcdm::span<const double> b, dcdm::span<double> x) const {
  if (!impl_->cycle) throw Error("multigrid: solve_coarsest before setup");
  impl_->cycle->solve_coarsest(b, x);
}

void MultigridPreconditioner::apply(dcdm::span<const double> r, dcdm::span<double> z) const {
  if (!impl_->cycle) throw Error("multigrid: apply before setup");
  impl_->cycle->apply(r, z);
}

void MultigridPreconditioner::apply_to_single(dcdm::span<const double> r, dcdm::span<float> z) const {
  if (!impl_->cycle) throw Error("multigrid: apply before setup");
  if (static_cast<std::int64_t>(r.size()) != impl_->n || static_cast<std::int64_t>(z.size()) != impl_->n)
    throw Error(fmt::format("multigrid: vectors of sizes {} and {} for a grid of {} cells", r.size(), z.size(), impl_->n));
  impl_->cycle->apply_single(r, z);
}

}  // namespace dcdm
