// The pressure system on a DMDA (include/dcdm/petsc_system.hpp).
#include "dcdm/petsc_system.hpp"

#include <petsc/private/dmdaimpl.h>
#include <petsc/private/matimpl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <numbers>
#include <optional>
#include <random>
#include <type_traits>

#include <malloc.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "dcdm/error.hpp"
#include "dcdm/io.hpp"
#include "dcdm/system.hpp"
#include "../linalg/block_ops.hpp"
#include "../linalg/uninitialised.hpp"

namespace dcdm::petsc {
namespace {

constexpr std::uint8_t kFluidBit = 1u << 6;
// Singular components up to this many get explicit indicator vectors in the MatNullSpace;
// beyond it (each vector is a full distributed vector) the null space removes per-component
// means through a function over the labels instead.
constexpr int kMaxNullSpaceVectors = 32;

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct Neighbour {
  int di, dj, dk;
};
constexpr Neighbour kNeighbours[6] = {{-1, 0, 0}, {1, 0, 0}, {0, -1, 0}, {0, 1, 0}, {0, 0, -1}, {0, 0, 1}};

}  // namespace

void check(PetscErrorCode code, const char* call) {
  if (code == 0) return;
  const char* text = nullptr;
  char* specific = nullptr;
  PetscErrorMessage(code, &text, &specific);
  std::string what = specific && *specific ? specific : (text ? text : "PETSc error");
  throw PetscFailure(code, fmt::format("{} ({})", what, call));
}

void agree(MPI_Comm comm, bool ok, const std::string& message) {
  int size = 1, rank = 0;
  MPI_Comm_size(comm, &size);
  MPI_Comm_rank(comm, &rank);
  int mine = ok ? size : rank, first = size;
  MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm);
  if (first == size) return;
  int length = rank == first ? static_cast<int>(message.size()) : 0;
  MPI_Bcast(&length, 1, MPI_INT, first, comm);
  std::string text = rank == first ? message : std::string(static_cast<std::size_t>(length), ' ');
  MPI_Bcast(text.data(), length, MPI_CHAR, first, comm);
  throw InputError(text);
}

// ---------------------------------------------------------------- ghost faces

// The ghost values a star stencil of width 1 reads: the layer of each neighbour rank's box
// next to a face of this rank's owned box, one buffer per face (face order x-, x+, y-, y+, z-,
// z+; a face's values x fastest over its two axes: (j, k) for x faces, (i, k) for y, (i, j)
// for z). The shell operator and the component labelling exchange these instead of a
// ghosted copy of the whole vector through the DMDA's scatter, whose set-up (index arrays of
// 12 bytes a ghosted cell, made on its first use) and local vector (8 bytes) cost more than
// the vector itself.
class FaceHalo {
 public:
  FaceHalo(DM da, const Box& box) : box_(box) {
    MPI_Comm comm = PetscObjectComm((PetscObject)da);
    // A communicator of its own: these messages never meet PETSc's or the other halos'.
    MPI_Comm_dup(comm, &comm_);
    int rank = 0;
    MPI_Comm_rank(comm_, &rank);
    PetscInt procs[3] = {1, 1, 1};
    DCDM_PETSC_CALL(DMDAGetInfo(da, nullptr, nullptr, nullptr, nullptr, &procs[0], &procs[1], &procs[2], nullptr,
                                nullptr, nullptr, nullptr, nullptr, nullptr));
    const PetscInt* ranges[3] = {nullptr, nullptr, nullptr};
    DCDM_PETSC_CALL(DMDAGetOwnershipRanges(da, &ranges[0], &ranges[1], &ranges[2]));
    const PetscInt lo[3] = {box.xs, box.ys, box.zs};
    int coord[3] = {0, 0, 0};
    for (int a = 0; a < 3; ++a) {
      PetscInt start = 0;
      while (coord[a] < procs[a] && start < lo[a]) start += ranges[a][coord[a]++];
    }
    // DMDA numbers its ranks x fastest (as the dcdm_mg halo also relies on).
    const auto rank_at = [&](int cx, int cy, int cz) { return cx + static_cast<int>(procs[0]) * (cy + static_cast<int>(procs[1]) * cz); };
    if (rank_at(coord[0], coord[1], coord[2]) != rank) throw Error("PressureSystem: the DMDA's rank layout is not x-fastest");
    for (int f = 0; f < 6; ++f) {
      int c[3] = {coord[0], coord[1], coord[2]};
      c[f / 2] += f % 2 ? 1 : -1;
      if (c[f / 2] < 0 || c[f / 2] >= procs[f / 2]) continue;
      neighbour_[f] = rank_at(c[0], c[1], c[2]);
    }
  }
  ~FaceHalo() {
    if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
  }
  FaceHalo(const FaceHalo&) = delete;
  FaceHalo& operator=(const FaceHalo&) = delete;

  std::size_t face_size(int f) const {
    const std::size_t xm = static_cast<std::size_t>(box_.xm), ym = static_cast<std::size_t>(box_.ym),
                      zm = static_cast<std::size_t>(box_.zm);
    return f < 2 ? ym * zm : f < 4 ? xm * zm : xm * ym;
  }
  // The values beyond face f of the last exchange of T values (null where no rank lies beyond
  // it: the grid's outer faces).
  template <class T>
  const T* face(int f) const {
    return neighbour_[f] >= 0 ? buffers<T>().recv[f].data() : nullptr;
  }

  // Sends the owned layers (owned: the owned box, x fastest) and receives the neighbours'.
  // T: double, or float for KSPDCDM's float direction (its faces travel as floats: the
  // neighbours' values are floats). Collective on the DMDA's communicator.
  template <class T>
  void exchange(const T* owned) {
    static_assert(std::is_same_v<T, double> || std::is_same_v<T, float>);
    const MPI_Datatype type = std::is_same_v<T, double> ? MPI_DOUBLE : MPI_FLOAT;
    Buffers<T>& buf = buffers<T>();
    const std::int64_t xm = box_.xm, ym = box_.ym, zm = box_.zm;
    MPI_Request requests[12];
    int count = 0;
    for (int f = 0; f < 6; ++f)
      if (neighbour_[f] >= 0) {
        buf.send[f].resize(face_size(f));
        buf.recv[f].resize(face_size(f));
        MPI_Irecv(buf.recv[f].data(), static_cast<int>(buf.recv[f].size()), type, neighbour_[f], f ^ 1, comm_,
                  &requests[count++]);
      }
    for (int f = 0; f < 6; ++f) {
      if (neighbour_[f] < 0) continue;
      T* out = buf.send[f].data();
      if (f < 2) {
        const std::int64_t li = f == 0 ? 0 : xm - 1;
        for (std::int64_t lk = 0; lk < zm; ++lk)
          for (std::int64_t lj = 0; lj < ym; ++lj) out[lj + ym * lk] = owned[li + xm * (lj + ym * lk)];
      } else if (f < 4) {
        const std::int64_t lj = f == 2 ? 0 : ym - 1;
        for (std::int64_t lk = 0; lk < zm; ++lk)
          std::copy_n(owned + xm * (lj + ym * lk), xm, out + xm * lk);
      } else {
        const std::int64_t lk = f == 4 ? 0 : zm - 1;
        std::copy_n(owned + xm * ym * lk, xm * ym, out);
      }
      // Tagged with the sender's face: the receiver takes it on the opposite one (f ^ 1).
      MPI_Isend(out, static_cast<int>(buf.send[f].size()), type, neighbour_[f], f, comm_, &requests[count++]);
    }
    MPI_Waitall(count, requests, MPI_STATUSES_IGNORE);
  }

 private:
  // One face layer each way per precision (made on the first exchange of that precision).
  template <class T>
  struct Buffers {
    std::vector<T> send[6], recv[6];
  };
  template <class T>
  Buffers<T>& buffers() {
    if constexpr (std::is_same_v<T, double>) return double_;
    else return single_;
  }
  template <class T>
  const Buffers<T>& buffers() const {
    if constexpr (std::is_same_v<T, double>) return double_;
    else return single_;
  }
  Box box_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  int neighbour_[6] = {-1, -1, -1, -1, -1, -1};
  Buffers<double> double_;
  Buffers<float> single_;
};

// ---------------------------------------------------------------- shell operator

struct PressureSystem::ShellContext {
  DM da = nullptr;
  Box box;
  std::vector<std::uint8_t> mask;  // per owned cell: kFluidBit | bit f when neighbour f is fluid
  std::vector<std::uint8_t> diag;  // per owned cell: the diagonal (non-solid neighbours)
  // Weighted systems only (empty for the unit operator): per owned cell the weighted
  // diagonal, and per axis the coupling scale * w across each face of the owned box (the
  // faces on its sides included, in the MAC layout of an (xm, ym, zm) grid: a cell's low face
  // and, one stride on, its high face), 0 where the two cells are not both fluid.
  std::vector<double> weighted_diag;
  std::vector<double> coupling[3];
  std::unique_ptr<FaceHalo> halo;  // the neighbours' layers of x next to the owned box
  std::vector<double> zeros;       // a row of zeros, read where a row beyond the grid would be
  std::vector<double> row;         // a row of A x in double before its rounding (the float mat-vec)
  std::vector<double> widened;     // the five rows a float row reads, widened (the float mat-vec)
};

namespace {

// Where the couplings across the six faces of owned cell (i, j, k) are in the shell context's
// face arrays (MAC layout of the owned box), in face order x-, x+, y-, y+, z-, z+.
std::array<std::int64_t, 6> face_slots(const Box& b, PetscInt i, PetscInt j, PetscInt k) {
  const std::int64_t xm = b.xm, ym = b.ym, li = i - b.xs, lj = j - b.ys, lk = k - b.zs;
  const std::int64_t x_face = li + (xm + 1) * (lj + ym * lk), y_face = li + xm * (lj + (ym + 1) * lk),
                     z_face = li + xm * (lj + ym * lk);
  return {x_face, x_face + 1, y_face, y_face + xm, z_face, z_face + xm * ym};
}

// The x values a row (j, k) of the owned box reads (local indices lj, lk): its own row and
// the rows beyond it in y and z, each contiguous in i (owned, or a ghost face's row; null
// beyond the grid, where no mask bit points), and the values beyond its two x ends.
// T: x's type (double, or float for the float mat-vec: every value read is widened exactly).
template <class T>
struct StencilRows {
  const T *centre, *ylo, *yhi, *zlo, *zhi;
  T xlo, xhi;
  StencilRows() = default;  // every member set by the maker (widened)
  StencilRows(const T* x, const Box& b, const FaceHalo& halo, std::int64_t lj, std::int64_t lk) {
    const std::int64_t xm = b.xm, ym = b.ym, zm = b.zm;
    centre = x + xm * (lj + ym * lk);
    const auto face_row = [&](int f, std::int64_t offset) -> const T* {
      return halo.face<T>(f) ? halo.face<T>(f) + offset : nullptr;
    };
    ylo = lj > 0 ? centre - xm : face_row(2, xm * lk);
    yhi = lj < ym - 1 ? centre + xm : face_row(3, xm * lk);
    zlo = lk > 0 ? centre - xm * ym : face_row(4, xm * lj);
    zhi = lk < zm - 1 ? centre + xm * ym : face_row(5, xm * lj);
    xlo = halo.face<T>(0) ? halo.face<T>(0)[lj + ym * lk] : T(0);
    xhi = halo.face<T>(1) ? halo.face<T>(1)[lj + ym * lk] : T(0);
  }
  PetscScalar left(std::int64_t li) const { return li > 0 ? centre[li - 1] : xlo; }
  PetscScalar right(std::int64_t li, std::int64_t xm) const { return li < xm - 1 ? centre[li + 1] : xhi; }
};

// The weighted rows (serial weighted_row, src/poisson/poisson.cpp) of row (lj, lk) of the owned
// box into yr: the same column order, the couplings read from the contiguous face arrays.
// Every (j, k) row of the box finds its data from its own indices, so the rows are
// independent (a parallel loop over k needs nothing else).
void weighted_row(const PressureSystem::ShellContext& c, const StencilRows<PetscScalar>& r, std::int64_t lj,
                  std::int64_t lk, PetscScalar* yr) {
  const Box& b = c.box;
  const std::int64_t xm = b.xm, ym = b.ym;
  const std::int64_t row = xm * (lj + ym * lk);
  const std::uint8_t* mask = c.mask.data() + row;
  const double* diag = c.weighted_diag.data() + row;
  const double* cx = c.coupling[0].data() + (xm + 1) * (lj + ym * lk);   // low x face; high at +1
  const double* cy = c.coupling[1].data() + xm * (lj + (ym + 1) * lk);   // low y face; high at +xm
  const double* cz = c.coupling[2].data() + row;                          // low z face; high at +xm*ym
  for (std::int64_t li = 0; li < xm; ++li) {
    const std::uint8_t m = mask[li];
    if (!(m & kFluidBit)) {
      yr[li] = r.centre[li];  // identity row
      continue;
    }
    PetscScalar v = 0;
    if (m & (1u << 4)) v -= cz[li] * r.zlo[li];
    if (m & (1u << 2)) v -= cy[li] * r.ylo[li];
    if (m & (1u << 0)) v -= cx[li] * r.left(li);
    v += static_cast<PetscScalar>(diag[li]) * r.centre[li];
    if (m & (1u << 1)) v -= cx[li + 1] * r.right(li, xm);
    if (m & (1u << 3)) v -= cy[li + xm] * r.yhi[li];
    if (m & (1u << 5)) v -= cz[li + xm * ym] * r.zhi[li];
    yr[li] = v;
  }
}

// sum_i a[i] b[i] over a row (vectorised: the partial sums in the simd lanes' order). Not
// inlined: inlined into the mat-vec's per-row callback, the loop was left scalar (1.7x the
// fused mat-vec's time).
[[gnu::noinline]] PetscScalar row_dot(const PetscScalar* a, const PetscScalar* b, std::int64_t n) {
  return detail::block_dot(a, b, n);
}

// The unit rows (serial stencil) of row (lj, lk) of the owned box into yr. Summed in the serial
// stencil's order: z-1, y-1, x-1, centre, x+1, y+1, z+1; a neighbour that is not fluid adds
// nothing (subtracting 0 leaves v as skipping it would, bit for bit), so the cells between the
// row's two ends take a branch-free loop the compiler vectorises. Rows beyond the grid (null in
// StencilRows, never read through a mask bit) read `zeros` there instead.
void unit_row(const PressureSystem::ShellContext& c, const StencilRows<PetscScalar>& r, std::int64_t row,
              const PetscScalar* zeros, PetscScalar* yr) {
  const std::int64_t xm = c.box.xm;
  const std::uint8_t* mask = c.mask.data() + row;
  const std::uint8_t* diag = c.diag.data() + row;
  const auto one = [&](std::int64_t li) {
    const std::uint8_t m = mask[li];
    if (!(m & kFluidBit)) {
      yr[li] = r.centre[li];  // identity row
      return;
    }
    PetscScalar v = 0;
    if (m & (1u << 4)) v -= r.zlo[li];
    if (m & (1u << 2)) v -= r.ylo[li];
    if (m & (1u << 0)) v -= r.left(li);
    v += static_cast<PetscScalar>(diag[li]) * r.centre[li];
    if (m & (1u << 1)) v -= r.right(li, xm);
    if (m & (1u << 3)) v -= r.yhi[li];
    if (m & (1u << 5)) v -= r.zhi[li];
    yr[li] = v;
  };
  one(0);
  if (xm > 2) {
    const PetscScalar* ce = r.centre;
    const PetscScalar* zl = r.zlo ? r.zlo : zeros;
    const PetscScalar* yl = r.ylo ? r.ylo : zeros;
    const PetscScalar* yh = r.yhi ? r.yhi : zeros;
    const PetscScalar* zh = r.zhi ? r.zhi : zeros;
    // A neighbour's value where the mask has its bit, else 0, each loaded as it is used (this
    // form takes 8% less time than loading all seven first: 15.4 -> 14.2 ms at 192^3, one rank).
    const auto take = [](std::uint8_t m, unsigned bit, PetscScalar a) { return (m & bit) ? a : PetscScalar(0); };
    for (std::int64_t li = 1; li < xm - 1; ++li) {
      const std::uint8_t m = mask[li];
      PetscScalar v = PetscScalar(0) - take(m, 1u << 4, zl[li]);
      v -= take(m, 1u << 2, yl[li]);
      v -= take(m, 1u << 0, ce[li - 1]);
      const PetscScalar centre = ce[li];
      v += static_cast<PetscScalar>(diag[li]) * centre;
      v -= take(m, 1u << 1, ce[li + 1]);
      v -= take(m, 1u << 3, yh[li]);
      v -= take(m, 1u << 5, zh[li]);
      yr[li] = (m & kFluidBit) ? v : centre;
    }
  }
  if (xm > 1) one(xm - 1);
}

// The rows a float row of x reads, widened (exactly) into `scratch` (five rows of xm): the
// double kernels then run on them, the same expression on the same values, vectorised (the
// unit row's loop mixing float loads with double arithmetic was not).
StencilRows<PetscScalar> widened(const StencilRows<float>& r, std::int64_t xm, std::vector<PetscScalar>& scratch) {
  scratch.resize(static_cast<std::size_t>(5 * xm));
  int slot = 0;
  const auto widen = [&](const float* row) -> const PetscScalar* {
    if (!row) return nullptr;
    PetscScalar* out = scratch.data() + xm * slot++;
    for (std::int64_t i = 0; i < xm; ++i) out[i] = row[i];
    return out;
  };
  StencilRows<PetscScalar> w;
  w.centre = widen(r.centre);
  w.ylo = widen(r.ylo);
  w.yhi = widen(r.yhi);
  w.zlo = widen(r.zlo);
  w.zhi = widen(r.zhi);
  w.xlo = r.xlo;
  w.xhi = r.xhi;
  return w;
}

// A x on the owned box (the halo exchanged), a row at a time: row_out(row offset) is where
// the row goes (in double), and row_done(row offset, length) is called once it is written.
// T: x's type (double; float for the float mat-vec, each value widened exactly).
template <class T, class RowOut, class RowDone>
void apply_rows(PressureSystem::ShellContext& c, const T* xv, RowOut&& row_out, RowDone&& row_done) {
  c.halo->exchange(xv);
  const Box& b = c.box;
  const std::int64_t xm = b.xm, ym = b.ym, zm = b.zm;
  c.zeros.resize(static_cast<std::size_t>(xm), 0.0);
  for (std::int64_t lk = 0; lk < zm; ++lk)
    for (std::int64_t lj = 0; lj < ym; ++lj) {
      const std::int64_t row = xm * (lj + ym * lk);
      const auto emit = [&](const StencilRows<PetscScalar>& rows) {
        if (c.weighted_diag.empty()) unit_row(c, rows, row, c.zeros.data(), row_out(row));
        else weighted_row(c, rows, lj, lk, row_out(row));
      };
      if constexpr (std::is_same_v<T, PetscScalar>) emit(StencilRows<PetscScalar>(xv, b, *c.halo, lj, lk));
      else emit(widened(StencilRows<T>(xv, b, *c.halo, lj, lk), xm, c.widened));
      row_done(row, xm);
    }
}

PetscErrorCode shell_mult(Mat a, Vec x, Vec y) {
  void* raw = nullptr;
  PetscFunctionBegin;
  PetscCall(MatShellGetContext(a, &raw));
  auto* c = static_cast<PressureSystem::ShellContext*>(raw);
  const PetscScalar* xv = nullptr;
  PetscScalar* yv = nullptr;
  PetscCall(VecGetArrayRead(x, &xv));
  PetscCall(VecGetArray(y, &yv));
  apply_rows(*c, xv, [&](std::int64_t row) { return yv + row; }, [](std::int64_t, std::int64_t) {});
  PetscCall(VecRestoreArrayRead(x, &xv));
  PetscCall(VecRestoreArray(y, &yv));
  PetscFunctionReturn(0);
}

// KSPDCDM's fused mat-vec (the composed function "DCDMMatMultDots_C", src/petsc/ksp_dcdm.cpp):
// y = A x and, while each row is in cache, this rank's parts of x.y and x.with[j] (local[0]
// and local[1 + j]; the caller sums them over the ranks with its other reductions).
PetscErrorCode shell_mult_dots(Mat a, Vec x, Vec y, PetscInt nwith, const Vec with[], PetscScalar local[]) {
  void* raw = nullptr;
  PetscFunctionBegin;
  PetscCheck(nwith >= 0 && nwith <= 4, PetscObjectComm((PetscObject)a), PETSC_ERR_ARG_OUTOFRANGE,
             "DCDMMatMultDots: at most 4 vectors to dot with (got %" PetscInt_FMT ")", nwith);
  PetscCall(MatShellGetContext(a, &raw));
  auto* c = static_cast<PressureSystem::ShellContext*>(raw);
  PetscCall(PetscLogEventBegin(MAT_Mult, a, x, y, 0));
  const PetscScalar* xv = nullptr;
  PetscScalar* yv = nullptr;
  const PetscScalar* wv[4] = {nullptr, nullptr, nullptr, nullptr};
  PetscCall(VecGetArrayRead(x, &xv));
  PetscCall(VecGetArray(y, &yv));
  for (PetscInt j = 0; j < nwith; ++j) PetscCall(VecGetArrayRead(with[j], &wv[j]));
  PetscScalar sums[5] = {0, 0, 0, 0, 0};
  apply_rows(*c, xv, [&](std::int64_t row) { return yv + row; }, [&](std::int64_t row, std::int64_t len) {
    const PetscScalar* xr = xv + row;
    sums[0] += row_dot(xr, yv + row, len);
    for (PetscInt j = 0; j < nwith; ++j) sums[1 + j] += row_dot(xr, wv[j] + row, len);
  });
  for (PetscInt j = 0; j <= nwith; ++j) local[j] = sums[j];
  for (PetscInt j = 0; j < nwith; ++j) PetscCall(VecRestoreArrayRead(with[j], &wv[j]));
  PetscCall(VecRestoreArrayRead(x, &xv));
  PetscCall(VecRestoreArray(y, &yv));
  PetscCall(PetscLogEventEnd(MAT_Mult, a, x, y, 0));
  PetscFunctionReturn(0);
}

// One row of the float mat-vec: y = ax rounded to float, and x.ax, x.r, x.x added to sums[0..3)
// (vectorised; not inlined, as row_dot).
[[gnu::noinline]] void row_dots_single(const float* x, const PetscScalar* ax, const PetscScalar* r, float* y,
                                       std::int64_t n, PetscScalar sums[3]) {
  detail::round_with_dots(x, ax, r, y, n, sums);
}

// KSPDCDM's float mat-vec (the composed function "DCDMMatMultDotsSingle_C", include/dcdm/
// petsc.hpp): each row of A x in double from the float x (the double mat-vec's expression on
// the widened values), dotted there, then rounded to float: x and y cross memory as floats,
// and x.Ax is that of the exact product.
PetscErrorCode shell_mult_dots_single(Mat a, const float x[], float y[], Vec r, PetscScalar local[3]) {
  void* raw = nullptr;
  PetscFunctionBegin;
  PetscCall(MatShellGetContext(a, &raw));
  auto* c = static_cast<PressureSystem::ShellContext*>(raw);
  PetscCall(PetscLogEventBegin(MAT_Mult, a, r, 0, 0));
  const PetscScalar* rv = nullptr;
  PetscCall(VecGetArrayRead(r, &rv));
  c->row.resize(static_cast<std::size_t>(c->box.xm));
  double* ax = c->row.data();
  std::fill_n(local, 3, PetscScalar(0));
  apply_rows(*c, x, [&](std::int64_t) { return ax; }, [&](std::int64_t row, std::int64_t len) {
    row_dots_single(x + row, ax, rv + row, y + row, len, local);
  });
  PetscCall(VecRestoreArrayRead(r, &rv));
  PetscCall(PetscLogEventEnd(MAT_Mult, a, r, 0, 0));
  PetscFunctionReturn(0);
}

PetscErrorCode shell_diagonal(Mat a, Vec d) {
  void* raw = nullptr;
  PetscFunctionBegin;
  PetscCall(MatShellGetContext(a, &raw));
  auto* c = static_cast<PressureSystem::ShellContext*>(raw);
  PetscScalar* v = nullptr;
  PetscCall(VecGetArray(d, &v));
  const bool weighted = !c->weighted_diag.empty();
  for (std::size_t n = 0; n < c->mask.size(); ++n)
    v[n] = !(c->mask[n] & kFluidBit) ? 1.0 : weighted ? c->weighted_diag[n] : c->diag[n];
  PetscCall(VecRestoreArray(d, &v));
  PetscFunctionReturn(0);
}

// The null space of many singular components, without a vector per component: subtracts the
// mean of v over each (the projection the indicator vectors would make).
struct MeanRemover {
  MPI_Comm comm;
  std::vector<std::int32_t> slot;  // per owned cell: singular component slot or -1
  std::vector<double> inverse_size;
};

PetscErrorCode remove_means(MatNullSpace, Vec v, void* ctx) {
  PetscFunctionBegin;
  auto* r = static_cast<MeanRemover*>(ctx);
  PetscScalar* a = nullptr;
  PetscCall(VecGetArray(v, &a));
  std::vector<double> sums(r->inverse_size.size(), 0.0), total(sums.size(), 0.0);
  for (std::size_t n = 0; n < r->slot.size(); ++n)
    if (r->slot[n] >= 0) sums[static_cast<std::size_t>(r->slot[n])] += a[n];
  PetscCallMPI(MPI_Allreduce(sums.data(), total.data(), static_cast<int>(sums.size()), MPI_DOUBLE, MPI_SUM, r->comm));
  for (std::size_t s = 0; s < total.size(); ++s) total[s] *= r->inverse_size[s];
  for (std::size_t n = 0; n < r->slot.size(); ++n)
    if (r->slot[n] >= 0) a[n] -= total[static_cast<std::size_t>(r->slot[n])];
  PetscCall(VecRestoreArray(v, &a));
  PetscFunctionReturn(0);
}

PetscErrorCode destroy_mean_remover(void* ctx) {
  PetscFunctionBegin;
  delete static_cast<MeanRemover*>(ctx);
  PetscFunctionReturn(0);
}

// ---------------------------------------------------------------- .npy slabs

struct NpyHeader {
  std::string descr;
  std::vector<std::int64_t> shape;
  std::int64_t data_offset = 0;
  bool fortran = false;
};

NpyHeader read_npy_header(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("{}: cannot open", path.string()));
  char magic[8] = {};
  in.read(magic, 8);
  if (!in || std::memcmp(magic, "\x93NUMPY", 6) != 0)
    throw InputError(fmt::format("{}: not a .npy file", path.string()));
  std::uint32_t header_len = 0;
  int prefix = 0;
  if (magic[6] == 1) {
    unsigned char b[2];
    in.read(reinterpret_cast<char*>(b), 2);
    header_len = b[0] | (b[1] << 8);
    prefix = 10;
  } else {
    unsigned char b[4];
    in.read(reinterpret_cast<char*>(b), 4);
    header_len = b[0] | (b[1] << 8) | (b[2] << 16) | (std::uint32_t(b[3]) << 24);
    prefix = 12;
  }
  if (!in || header_len > (1u << 20)) throw InputError(fmt::format("{}: truncated .npy header", path.string()));
  std::string h(header_len, ' ');
  in.read(h.data(), header_len);
  if (!in) throw InputError(fmt::format("{}: truncated .npy header", path.string()));
  NpyHeader out;
  out.data_offset = prefix + header_len;
  const auto value_of = [&](const std::string& key) {
    const auto at = h.find("'" + key + "'");
    if (at == std::string::npos) throw InputError(fmt::format("{}: .npy header has no '{}'", path.string(), key));
    return h.substr(h.find(':', at) + 1);
  };
  std::string d = value_of("descr");
  const auto q1 = d.find('\''), q2 = d.find('\'', q1 + 1);
  out.descr = d.substr(q1 + 1, q2 - q1 - 1);
  out.fortran = value_of("fortran_order").find("True") < value_of("fortran_order").find(',');
  std::string s = value_of("shape");
  s = s.substr(s.find('(') + 1, s.find(')') - s.find('(') - 1);
  std::size_t pos = 0;
  while (pos < s.size()) {
    const auto comma = s.find(',', pos);
    const std::string item = s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    if (item.find_first_of("0123456789") != std::string::npos) out.shape.push_back(std::stoll(item));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

// Reads rows [x0, x0+nx) of every (j, k) in the box from a C-order (nz, ny, nx) array.
template <class T>
void read_box(const std::filesystem::path& path, const NpyHeader& h, const Dims& d, PetscInt x0, PetscInt y0,
              PetscInt z0, PetscInt nx, PetscInt ny, PetscInt nz, std::vector<T>& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("{}: cannot open", path.string()));
  out.resize(static_cast<std::size_t>(nx) * ny * nz);
  std::size_t n = 0;
  for (PetscInt k = z0; k < z0 + nz; ++k)
    for (PetscInt j = y0; j < y0 + ny; ++j, n += static_cast<std::size_t>(nx)) {
      in.seekg(h.data_offset + static_cast<std::int64_t>(sizeof(T)) * d.index(static_cast<int>(x0), static_cast<int>(j),
                                                                             static_cast<int>(k)));
      in.read(reinterpret_cast<char*>(out.data() + n), static_cast<std::streamsize>(sizeof(T) * nx));
      if (!in) throw InputError(fmt::format("{}: truncated (ends before cell ({}, {}, {}))", path.string(), x0, j, k));
    }
}

constexpr const char* kCoefficientNames[4] = {"face_x", "face_y", "face_z", "diagonal"};

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string t = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) t += fmt::format("{}{}", i ? ", " : "", shape[i]);
  return t + (shape.size() == 1 ? ",)" : ")");
}

// This rank's part of coefficient array `a` of a grid d: the faces (a < 3) or cells (the
// diagonal) of the ghosted box, in the box's own layout (as crop(domain, box) lays them out),
// read with offset reads. float64 or float32; dtype, shape and values checked as the serial
// reader checks them (InputError naming the file, and the face or cell of a bad value).
std::vector<double> read_coefficient_part(const std::filesystem::path& path, int a, const Dims& d, const CellBox& box) {
  const io::NpyHeader h = io::read_npy_header(path);  // a truncated file fails here, naming it
  const std::vector<std::int64_t> shape{std::int64_t(d.nz) + (a == 2), std::int64_t(d.ny) + (a == 1),
                                        std::int64_t(d.nx) + (a == 0)};
  if (h.dtype != io::DType::Float32 && h.dtype != io::DType::Float64)
    throw InputError(fmt::format("{}: dtype {}, expected float64 or float32", path.string(), io::to_string(h.dtype)));
  if (h.shape != shape)
    throw InputError(fmt::format("{}: shape {}, expected {} for {} on a {} grid", path.string(), shape_text(h.shape),
                                 shape_text(shape), kCoefficientNames[a], d.str()));
  const std::int64_t ex = box.size.nx + (a == 0), ey = box.size.ny + (a == 1), ez = box.size.nz + (a == 2);
  const std::int64_t ax = shape[2], ay = shape[1];
  const std::size_t item = io::item_size(h.dtype);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(fmt::format("{}: cannot open", path.string()));
  std::vector<double> out(static_cast<std::size_t>(ex * ey * ez));
  std::vector<char> row(item * static_cast<std::size_t>(ex));
  std::size_t n = 0;
  for (std::int64_t k = 0; k < ez; ++k)
    for (std::int64_t j = 0; j < ey; ++j) {
      const std::int64_t gj = box.lo[1] + j, gk = box.lo[2] + k;
      in.seekg(static_cast<std::streamoff>(h.data_offset + item * static_cast<std::uint64_t>(box.lo[0] + ax * (gj + ay * gk))));
      in.read(row.data(), static_cast<std::streamsize>(row.size()));
      if (!in) throw InputError(fmt::format("{}: truncated (ends before row ({}, {}))", path.string(), gj, gk));
      for (std::int64_t i = 0; i < ex; ++i, ++n) {
        double v = 0;
        if (h.dtype == io::DType::Float32) {
          float f = 0;
          std::memcpy(&f, row.data() + 4 * i, 4);
          v = f;
        } else {
          std::memcpy(&v, row.data() + 8 * i, 8);
        }
        if (!(std::isfinite(v) && v >= 0.0)) {
          const std::int64_t gi = box.lo[0] + i;
          if (a == 3)
            throw InputError(fmt::format("{}: coefficients: diagonal at cell ({}, {}, {}) is {} (must be finite and >= 0)",
                                         path.string(), gi, gj, gk, v));
          throw InputError(fmt::format("{}: coefficients: {} at face ({}, {}, {}) is {} (weights must be finite and >= 0)",
                                       path.string(), kCoefficientNames[a], gi, gj, gk, v));
        }
        out[n] = v;
      }
    }
  return out;
}

}  // namespace

// ---------------------------------------------------------------- construction

void PressureSystem::create_dm(MPI_Comm comm, const Dims& dims) {
  comm_ = comm;
  dims_ = dims;
  DCDM_PETSC_CALL(DMDACreate3d(comm, DM_BOUNDARY_NONE, DM_BOUNDARY_NONE, DM_BOUNDARY_NONE, DMDA_STENCIL_STAR,
                               dims.nx, dims.ny, dims.nz, PETSC_DECIDE, PETSC_DECIDE, PETSC_DECIDE, 1, 1,
                               nullptr, nullptr, nullptr, &da_));
  DCDM_PETSC_CALL(DMSetFromOptions(da_));
  DCDM_PETSC_CALL(DMSetUp(da_));
  // Geometric multigrid on the DMDA (-pc_type mg): cell-centred grids of even sizes coarsen
  // by halving with piecewise-constant interpolation; odd sizes (2^k + 1) with trilinear.
  const bool even = dims.nx % 2 == 0 && dims.ny % 2 == 0 && dims.nz % 2 == 0;
  DCDM_PETSC_CALL(DMDASetInterpolationType(da_, even ? DMDA_Q0 : DMDA_Q1));
  Box& b = box_;
  DCDM_PETSC_CALL(DMDAGetCorners(da_, &b.xs, &b.ys, &b.zs, &b.xm, &b.ym, &b.zm));
  DCDM_PETSC_CALL(DMDAGetGhostCorners(da_, &b.gxs, &b.gys, &b.gzs, &b.gxm, &b.gym, &b.gzm));
}

CellType PressureSystem::cell(PetscInt i, PetscInt j, PetscInt k) const {
  if (i < 0) return faces_[0] == FaceBoundary::Open ? CellType::Air : CellType::Solid;
  if (i >= dims_.nx) return faces_[1] == FaceBoundary::Open ? CellType::Air : CellType::Solid;
  if (j < 0) return faces_[2] == FaceBoundary::Open ? CellType::Air : CellType::Solid;
  if (j >= dims_.ny) return faces_[3] == FaceBoundary::Open ? CellType::Air : CellType::Solid;
  if (k < 0) return faces_[4] == FaceBoundary::Open ? CellType::Air : CellType::Solid;
  if (k >= dims_.nz) return faces_[5] == FaceBoundary::Open ? CellType::Air : CellType::Solid;
  return static_cast<CellType>(ghost_cells_[static_cast<std::size_t>(box_.ghost_index(i, j, k))]);
}

CellBox PressureSystem::ghost_box() const {
  const Box& x = box_;
  return CellBox{{static_cast<int>(x.gxs), static_cast<int>(x.gys), static_cast<int>(x.gzs)},
                 Dims{static_cast<int>(x.gxm), static_cast<int>(x.gym), static_cast<int>(x.gzm)}};
}

void PressureSystem::release_ghost_scatter() {
  auto* da = static_cast<DM_DA*>(da_->data);
  DCDM_PETSC_CALL(VecScatterDestroy(&da->gtol));
}

void PressureSystem::take_part(Domain&& part) {
  ghost_cells_.resize(static_cast<std::size_t>(part.dims().size()));
  std::transform(part.cells.vector().begin(), part.cells.vector().end(), ghost_cells_.begin(),
                 [](CellType t) { return static_cast<std::uint8_t>(t); });
  part_coefficients_ = std::move(part.coefficients);
  weighted_ = part_coefficients_ != nullptr;
}

double PressureSystem::face_weight(PetscInt i, PetscInt j, PetscInt k, int f) const {
  const Box& x = box_;
  return part_coefficients_->weight(ghost_box().size, static_cast<int>(i - x.gxs), static_cast<int>(j - x.gys),
                                    static_cast<int>(k - x.gzs), static_cast<Face>(f));
}

double PressureSystem::diagonal_term(PetscInt i, PetscInt j, PetscInt k) const {
  const std::vector<double>& d = part_coefficients_->diagonal;
  return d.empty() ? 0.0 : d[static_cast<std::size_t>(box_.ghost_index(i, j, k))];
}

// The serial rules (fluid_components, src/poisson/poisson.cpp): a fluid cell connects with a
// fluid neighbour across a face of positive weight; it has a Dirichlet part through an air
// neighbour (or an Open outer face) across a face of positive weight, or a positive diagonal
// term. Unit: every face weighs 1.
bool PressureSystem::coupled(PetscInt i, PetscInt j, PetscInt k, int f) const {
  const auto& nb = kNeighbours[f];
  if (cell(i + nb.di, j + nb.dj, k + nb.dk) != CellType::Fluid) return false;
  return !weighted_ || face_weight(i, j, k, f) > 0.0;
}

bool PressureSystem::dirichlet(PetscInt i, PetscInt j, PetscInt k) const {
  if (weighted_ && diagonal_term(i, j, k) > 0.0) return true;
  for (int f = 0; f < 6; ++f) {
    const auto& nb = kNeighbours[f];
    if (cell(i + nb.di, j + nb.dj, k + nb.dk) == CellType::Air && (!weighted_ || face_weight(i, j, k, f) > 0.0))
      return true;
  }
  return false;
}

PressureSystem PressureSystem::from_domain(MPI_Comm comm, const Domain& domain, const std::vector<double>& b) {
  agree(comm, b.empty() || static_cast<std::int64_t>(b.size()) == domain.dims().size(),
        fmt::format("right-hand side has {} values, the grid {} has {} cells", b.size(), domain.dims().str(),
                    domain.dims().size()));
  PressureSystem s;
  s.faces_ = domain.faces;
  s.create_dm(comm, domain.dims());
  const Box& x = s.box_;
  // The rank's ghosted box of the grid (a weighted domain's coefficients in the box's layout).
  s.take_part(crop(domain, s.ghost_box()));
  detail::UninitialisedVector<double> owned(static_cast<std::size_t>(x.owned()), 0.0);  // huge pages
  if (!b.empty()) {
    std::size_t n = 0;
    for (PetscInt k = x.zs; k < x.zs + x.zm; ++k)
      for (PetscInt j = x.ys; j < x.ys + x.ym; ++j)
        for (PetscInt i = x.xs; i < x.xs + x.xm; ++i)
          owned[n++] = b[static_cast<std::size_t>(domain.dims().index(static_cast<int>(i), static_cast<int>(j), static_cast<int>(k)))];
  }
  s.finish(owned);
  return s;
}

PressureSystem PressureSystem::from_scene(MPI_Comm comm, const SceneSpec& spec, std::uint64_t rhs_seed) {
  check_min_dims(spec.dims);
  check_grid_dims(spec.dims, "--n/--dims");
  // Each rank builds only its ghosted box of the scene (make_scene_part): refuse a grid whose
  // parts (about 3 bytes a cell with the scene's temporaries; a weighted scene's coefficients
  // and work arrays more) plus the system (about 60 bytes a cell at its peak, measured at
  // 256^3 on two ranks: the DMDA's maps, flags, b, the labelling's work) do not fit on the
  // ranks of this machine; what a solver needs on top is its own (dcdm-mpi checks its
  // methods').
  MPI_Comm node = MPI_COMM_NULL;
  MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  int node_ranks = 1, ranks = 1;
  MPI_Comm_size(node, &node_ranks);
  MPI_Comm_size(comm, &ranks);
  MPI_Comm_free(&node);
  const double cells = static_cast<double>(spec.dims.size());
  const bool weighted = spec.name == "liquid" || spec.name == "cutcell" || spec.name == "density";
  const double scene_bytes = weighted ? kWeightedSceneBytesPerCell : 3.0;
  const double system_bytes = kSystemBytesPerCell + (weighted ? kWeightedSystemBytesPerCell : 0.0);
  const double need = node_ranks * (scene_bytes + system_bytes) * cells / ranks;
  const double have = static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGE_SIZE));
  agree(comm, have <= 0 || need <= have,
        fmt::format("--n/--dims: a {} scene on {} rank(s) of this machine needs about {:.1f} GiB, more than its "
                    "{:.1f} GiB",
                    spec.dims.str(), node_ranks, need / 1073741824.0, have / 1073741824.0));
  PressureSystem s;
  s.create_dm(comm, spec.dims);
  // The rank's ghosted box of the scene, equal to that box of make_scene's whole grid; a bad
  // scene or parameter fails the same way on every rank (agreed before anything collective).
  Domain part;
  std::string error;
  try {
    part = make_scene_part(spec, s.ghost_box());
  } catch (const InputError& e) {
    error = e.what();
  }
  agree(comm, error.empty(), error);
  s.faces_ = part.faces;
  s.take_part(std::move(part));
  // The right-hand side: `dcdm solve`'s random values of that seed, drawn for the owned fluid
  // cells only (random_rhs_value is per cell); finish() projects it for closed regions.
  const Box& x = s.box_;
  detail::UninitialisedVector<double> owned(static_cast<std::size_t>(x.owned()), 0.0);  // huge pages
  std::size_t n = 0;
  for (PetscInt k = x.zs; k < x.zs + x.zm; ++k)
    for (PetscInt j = x.ys; j < x.ys + x.ym; ++j)
      for (PetscInt i = x.xs; i < x.xs + x.xm; ++i, ++n)
        if (s.cell(i, j, k) == CellType::Fluid)
          owned[n] = random_rhs_value(rhs_seed, spec.dims.index(static_cast<int>(i), static_cast<int>(j),
                                                                static_cast<int>(k)));
  s.finish(owned);
  return s;
}

PressureSystem PressureSystem::from_folder(MPI_Comm comm, const std::filesystem::path& dir) {
  // system.json is small: every rank reads it. Failures agree before anything collective.
  nlohmann::json meta;
  std::string error;
  const auto json_path = dir / "system.json";
  try {
    std::ifstream in(json_path);
    if (!in) throw InputError(fmt::format("{}: cannot open (not a system folder?)", json_path.string()));
    meta = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    error = fmt::format("{}: {}", json_path.string(), e.what());
  } catch (const InputError& e) {
    error = e.what();
  }
  agree(comm, error.empty(), error);
  Dims dims;
  std::array<FaceBoundary, 6> faces{};
  std::optional<CoefficientFiles> coefficients;
  try {
    if (meta.contains("coefficients") && !meta["coefficients"].is_null())
      coefficients = coefficient_files(dir, json_path, meta["coefficients"]);
    dims = dims_from_json(meta.at("dims"), json_path.string() + " dims");
    for (int f = 0; f < 6; ++f) {
      const std::string v = meta.at("faces").at(to_string(static_cast<Face>(f))).get<std::string>();
      if (v != "open" && v != "wall")
        throw InputError(fmt::format("{}: face {} is '{}' (open or wall)", json_path.string(), to_string(static_cast<Face>(f)), v));
      faces[static_cast<std::size_t>(f)] = v == "open" ? FaceBoundary::Open : FaceBoundary::Wall;
    }
  } catch (const nlohmann::json::exception& e) {
    error = fmt::format("{}: {}", json_path.string(), e.what());
  } catch (const InputError& e) {
    error = e.what();
  }
  agree(comm, error.empty(), error);

  PressureSystem s;
  s.faces_ = faces;
  s.create_dm(comm, dims);
  const Box& x = s.box_;
  std::vector<double> owned;
  try {
    const auto flags_path = dir / "flags.npy", b_path = dir / "b.npy";
    const NpyHeader hf = read_npy_header(flags_path), hb = read_npy_header(b_path);
    const std::vector<std::int64_t> shape{dims.nz, dims.ny, dims.nx};
    if (hf.shape != shape || hf.fortran || (hf.descr != "|u1" && hf.descr != "<u1"))
      throw InputError(fmt::format("{}: expected uint8 of shape ({}, {}, {}) in C order", flags_path.string(),
                                   dims.nz, dims.ny, dims.nx));
    if (hb.shape != shape || hb.fortran || hb.descr != "<f8")
      throw InputError(fmt::format("{}: expected float64 of shape ({}, {}, {}) in C order", b_path.string(),
                                   dims.nz, dims.ny, dims.nx));
    read_box(flags_path, hf, dims, x.gxs, x.gys, x.gzs, x.gxm, x.gym, x.gzm, s.ghost_cells_);
    for (std::size_t n = 0; n < s.ghost_cells_.size(); ++n)
      if (s.ghost_cells_[n] > 2)
        throw InputError(fmt::format("{}: flag value {} (0 solid, 1 fluid, 2 air)", flags_path.string(),
                                     int(s.ghost_cells_[n])));
    read_box(b_path, hb, dims, x.xs, x.ys, x.zs, x.xm, x.ym, x.zm, owned);
    std::int64_t bad = 0;
    for (double v : owned) bad += !std::isfinite(v);
    if (bad > 0) throw InputError(fmt::format("{}: {} non-finite value(s)", b_path.string(), bad));
    if (coefficients) {
      // The ghosted box's part of each array (absent files: weights 1, no diagonal term).
      auto part = std::make_shared<Coefficients>();
      part->scale = coefficients->scale;
      for (int a = 0; a < 4; ++a)
        if (const auto& path = coefficients->paths[static_cast<std::size_t>(a)]; !path.empty())
          (a == 0 ? part->face_x : a == 1 ? part->face_y : a == 2 ? part->face_z : part->diagonal) =
              read_coefficient_part(path, a, dims, s.ghost_box());
      s.part_coefficients_ = std::move(part);
      s.weighted_ = true;
      // Domain::set_coefficients' check, on the owned cells: a fluid cell whose faces to
      // non-solid neighbours all weigh 0 and has no diagonal term would have a zero row.
      for (PetscInt k = x.zs; k < x.zs + x.zm; ++k)
        for (PetscInt j = x.ys; j < x.ys + x.ym; ++j)
          for (PetscInt i = x.xs; i < x.xs + x.xm; ++i) {
            if (s.cell(i, j, k) != CellType::Fluid || s.diagonal_term(i, j, k) > 0.0) continue;
            bool open_face = false, row = false;
            for (int f = 0; f < 6 && !row; ++f) {
              const auto& nb = kNeighbours[f];
              if (s.cell(i + nb.di, j + nb.dj, k + nb.dk) == CellType::Solid) continue;
              open_face = true;
              row = s.face_weight(i, j, k, f) > 0.0;
            }
            if (open_face && !row)
              throw InputError(fmt::format(
                  "{} (coefficients {}): coefficients: fluid cell ({}, {}, {}) has weight 0 on every face to a non-solid "
                  "neighbour and no diagonal term, so its row of A is zero (make it solid, or give a face a positive "
                  "weight)",
                  json_path.string(), coefficients->names.empty() ? "scale only" : coefficients->names, i, j, k));
          }
    }
  } catch (const InputError& e) {
    error = e.what();
  }
  agree(comm, error.empty(), error);
  s.finish(owned);
  return s;
}

// Labels every owned fluid cell with the lowest global cell index of its component: each
// rank unites its owned cells with their fluid neighbours (the ghost layer carrying the
// neighbours' current labels), takes the smallest label of each local set, and the ranks
// exchange ghost layers until no label changes anywhere (as many rounds as a component
// crosses rank boundaries, plus one).
void PressureSystem::label_components(dcdm::span<std::int64_t> labels) const {
  const Box& x = box_;
  const std::size_t ng = ghost_cells_.size();
  FaceHalo halo(da_, x);
  std::fill(labels.begin(), labels.end(), -1);
  std::size_t n = 0;
  for (PetscInt k = x.zs; k < x.zs + x.zm; ++k)
    for (PetscInt j = x.ys; j < x.ys + x.ym; ++j)
      for (PetscInt i = x.xs; i < x.xs + x.xm; ++i, ++n)
        if (cell(i, j, k) == CellType::Fluid)
          labels[n] = dims_.index(static_cast<int>(i), static_cast<int>(j), static_cast<int>(k));

  // The scratch arrays (8 bytes a ghosted cell each) in huge pages: with a fresh 4 KiB page a
  // fault, they were most of building a system on some virtual machines.
  detail::UninitialisedVector<std::int64_t> parent(ng);
  const auto find = [&](std::int64_t a) {
    while (parent[static_cast<std::size_t>(a)] != a) {
      parent[static_cast<std::size_t>(a)] = parent[static_cast<std::size_t>(parent[static_cast<std::size_t>(a)])];
      a = parent[static_cast<std::size_t>(a)];
    }
    return a;
  };
  const auto unite = [&](std::int64_t a, std::int64_t b) {
    a = find(a);
    b = find(b);
    if (a != b) parent[static_cast<std::size_t>(std::max(a, b))] = std::min(a, b);
  };
  // Local union-find is done once: the local sets do not change, only their labels.
  for (std::size_t g = 0; g < ng; ++g) parent[g] = static_cast<std::int64_t>(g);
  for (PetscInt k = x.zs; k < x.zs + x.zm; ++k)
    for (PetscInt j = x.ys; j < x.ys + x.ym; ++j)
      for (PetscInt i = x.xs; i < x.xs + x.xm; ++i) {
        if (cell(i, j, k) != CellType::Fluid) continue;
        for (int f = 0; f < 6; ++f) {
          const auto& nb = kNeighbours[f];
          const PetscInt a = i + nb.di, b = j + nb.dj, c = k + nb.dk;
          if (a < 0 || b < 0 || c < 0 || a >= dims_.nx || b >= dims_.ny || c >= dims_.nz) continue;
          if (coupled(i, j, k, f)) unite(x.ghost_index(i, j, k), x.ghost_index(a, b, c));
        }
      }
  detail::UninitialisedVector<std::int64_t> set_min(ng);
  detail::UninitialisedVector<double> owned_labels(labels.size());
  for (int round = 0;; ++round) {
    // The labels as doubles (exact: cell indices < 2^53), the neighbours' face layers beside.
    for (std::size_t m = 0; m < labels.size(); ++m) owned_labels[m] = static_cast<double>(labels[m]);
    halo.exchange(owned_labels.data());
    const auto label_at = [&](PetscInt i, PetscInt j, PetscInt k) -> std::int64_t {
      const std::int64_t li = i - x.xs, lj = j - x.ys, lk = k - x.zs;
      const bool in_x = li >= 0 && li < x.xm, in_y = lj >= 0 && lj < x.ym, in_z = lk >= 0 && lk < x.zm;
      double v = -1.0;  // edges and corners of the ghosted box: never in a set
      if (in_x && in_y && in_z) v = owned_labels[static_cast<std::size_t>(li + x.xm * (lj + x.ym * lk))];
      else if (!in_x && in_y && in_z) v = halo.face<double>(li < 0 ? 0 : 1)[lj + x.ym * lk];
      else if (in_x && !in_y && in_z) v = halo.face<double>(lj < 0 ? 2 : 3)[li + x.xm * lk];
      else if (in_x && in_y && !in_z) v = halo.face<double>(lk < 0 ? 4 : 5)[li + x.xm * lj];
      return static_cast<std::int64_t>(v);
    };
    std::fill(set_min.begin(), set_min.end(), std::numeric_limits<std::int64_t>::max());
    // Members of the sets: owned fluid cells and the fluid face-neighbours united with them
    // (edge and corner cells of the ghosted box never join a set).
    std::size_t g = 0;
    for (PetscInt k = x.gzs; k < x.gzs + x.gzm; ++k)
      for (PetscInt j = x.gys; j < x.gys + x.gym; ++j)
        for (PetscInt i = x.gxs; i < x.gxs + x.gxm; ++i, ++g) {
          if (ghost_cells_[g] != static_cast<std::uint8_t>(CellType::Fluid)) continue;
          const std::int64_t root = find(static_cast<std::int64_t>(g));
          const std::int64_t label = label_at(i, j, k);
          if (label >= 0) set_min[static_cast<std::size_t>(root)] = std::min(set_min[static_cast<std::size_t>(root)], label);
        }
    int changed = 0;
    n = 0;
    for (PetscInt k = x.zs; k < x.zs + x.zm; ++k)
      for (PetscInt j = x.ys; j < x.ys + x.ym; ++j)
        for (PetscInt i = x.xs; i < x.xs + x.xm; ++i, ++n) {
          if (labels[n] < 0) continue;
          const std::int64_t m = set_min[static_cast<std::size_t>(find(x.ghost_index(i, j, k)))];
          if (m < labels[n]) {
            labels[n] = m;
            changed = 1;
          }
        }
    int any = 0;
    MPI_Allreduce(&changed, &any, 1, MPI_INT, MPI_LOR, comm_);
    if (!any) break;
  }
}

void PressureSystem::finish(dcdm::span<const double> owned_b) {
  const Box& x = box_;
  // Counts.
  std::int64_t local[3] = {0, 0, 0}, total[3] = {0, 0, 0};
  for (PetscInt k = x.zs; k < x.zs + x.zm; ++k)
    for (PetscInt j = x.ys; j < x.ys + x.ym; ++j)
      for (PetscInt i = x.xs; i < x.xs + x.xm; ++i) ++local[static_cast<int>(cell(i, j, k))];
  MPI_Allreduce(local, total, 3, MPI_INT64_T, MPI_SUM, comm_);
  solid = total[0];
  fluid = total[1];
  air = total[2];
  // A grid with no fluid cell has no equation to solve (make_scene refuses it too).
  agree(comm_, fluid > 0, "the system has no fluid cell");

  // The labels in huge pages while the system is built (8 bytes a cell); labels_ keeps a copy
  // only where A is singular (the null space needs it).
  detail::UninitialisedVector<std::int64_t> labels(static_cast<std::size_t>(x.owned()));
  label_components(labels);
  // Per component: does it touch air or an open face (Dirichlet), and its size. Every rank
  // contributes (label, touches, count) for the components it holds; all ranks merge them.
  std::map<std::int64_t, std::pair<int, std::int64_t>> mine;
  std::size_t n = 0;
  for (PetscInt k = x.zs; k < x.zs + x.zm; ++k)
    for (PetscInt j = x.ys; j < x.ys + x.ym; ++j)
      for (PetscInt i = x.xs; i < x.xs + x.xm; ++i, ++n) {
        if (labels[n] < 0) continue;
        auto& e = mine[labels[n]];
        ++e.second;
        if (dirichlet(i, j, k)) e.first = 1;
      }
  std::vector<std::int64_t> packed;
  for (const auto& [label, e] : mine) packed.insert(packed.end(), {label, e.first, e.second});
  int size = 1;
  MPI_Comm_size(comm_, &size);
  int count = static_cast<int>(packed.size());
  std::vector<int> counts(static_cast<std::size_t>(size)), offsets(static_cast<std::size_t>(size), 0);
  MPI_Allgather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, comm_);
  for (int r = 1; r < size; ++r) offsets[static_cast<std::size_t>(r)] = offsets[static_cast<std::size_t>(r) - 1] + counts[static_cast<std::size_t>(r) - 1];
  std::vector<std::int64_t> all(static_cast<std::size_t>(offsets.back() + counts.back()));
  MPI_Allgatherv(packed.data(), count, MPI_INT64_T, all.data(), counts.data(), offsets.data(), MPI_INT64_T, comm_);
  std::map<std::int64_t, std::pair<int, std::int64_t>> merged;
  for (std::size_t a = 0; a + 3 <= all.size(); a += 3) {
    auto& e = merged[all[a]];
    e.first |= static_cast<int>(all[a + 1]);
    e.second += all[a + 2];
  }
  components = static_cast<int>(merged.size());
  std::map<std::int64_t, int> singular_slot;  // in label order = the serial component order
  std::vector<double> inverse_size;
  for (const auto& [label, e] : merged)
    if (!e.first) {
      singular_slot[label] = static_cast<int>(inverse_size.size());
      inverse_size.push_back(1.0 / static_cast<double>(e.second));
    }
  singular_components = static_cast<int>(singular_slot.size());

  // The shell operator's per-cell masks.
  shell_context_ = new ShellContext();
  shell_context_->da = da_;
  shell_context_->box = x;
  shell_context_->mask.resize(static_cast<std::size_t>(x.owned()));
  shell_context_->diag.resize(static_cast<std::size_t>(x.owned()));
  n = 0;
  for (PetscInt k = x.zs; k < x.zs + x.zm; ++k)
    for (PetscInt j = x.ys; j < x.ys + x.ym; ++j)
      for (PetscInt i = x.xs; i < x.xs + x.xm; ++i, ++n) {
        if (cell(i, j, k) != CellType::Fluid) continue;
        std::uint8_t m = kFluidBit, d = 0;
        for (int f = 0; f < 6; ++f) {
          const auto& nb = kNeighbours[f];
          const CellType t = cell(i + nb.di, j + nb.dj, k + nb.dk);
          if (t != CellType::Solid) ++d;
          if (t == CellType::Fluid) m |= std::uint8_t(1u << f);
        }
        shell_context_->mask[n] = m;
        shell_context_->diag[n] = d;
      }
  if (weighted_) make_weighted_rows();
  shell_context_->halo = std::make_unique<FaceHalo>(da_, x);

  // b (zero off fluid: those rows are identities with x = 0).
  DCDM_PETSC_CALL(DMCreateGlobalVector(da_, &b_));
  PetscScalar* bv = nullptr;
  DCDM_PETSC_CALL(VecGetArray(b_, &bv));
  for (std::size_t m = 0; m < labels.size(); ++m) bv[m] = (labels[m] >= 0 && !owned_b.empty()) ? owned_b[m] : 0.0;
  DCDM_PETSC_CALL(VecRestoreArray(b_, &bv));
  labels_.clear();
  if (singular_components > 0) labels_.assign(labels.begin(), labels.end());
  labels = {};
  make_nullspace(singular_slot, inverse_size);
  if (nullspace_) DCDM_PETSC_CALL(MatNullSpaceRemove(nullspace_, b_));
  // The operators read the shell context's weighted rows from here on.
  part_coefficients_.reset();
}

// The weighted rows of the owned cells as the serial compute_weighted makes them (the same
// sums in the same order, so the entries are the serial ones bit for bit): diagonal = scale *
// (the weights of the faces to non-solid neighbours, in face order, + the diagonal term);
// coupling = scale * w across a face between two fluid cells, 0 across any other.
void PressureSystem::make_weighted_rows() {
  const Box& x = box_;
  const Coefficients& co = *part_coefficients_;
  ShellContext& c = *shell_context_;
  const std::int64_t xm = x.xm, ym = x.ym, zm = x.zm;
  // A fluid cell writes the couplings of its faces to fluid neighbours (a face between two
  // owned fluid cells twice, with the same value); every other face keeps 0.
  c.weighted_diag.assign(static_cast<std::size_t>(x.owned()), 0.0);
  c.coupling[0].assign(static_cast<std::size_t>((xm + 1) * ym * zm), 0.0);
  c.coupling[1].assign(static_cast<std::size_t>(xm * (ym + 1) * zm), 0.0);
  c.coupling[2].assign(static_cast<std::size_t>(xm * ym * (zm + 1)), 0.0);
  std::size_t n = 0;
  for (PetscInt k = x.zs; k < x.zs + x.zm; ++k)
    for (PetscInt j = x.ys; j < x.ys + x.ym; ++j)
      for (PetscInt i = x.xs; i < x.xs + x.xm; ++i, ++n) {
        if (cell(i, j, k) != CellType::Fluid) continue;
        double sum = 0.0;
        for (int f = 0; f < 6; ++f) {
          const auto& nb = kNeighbours[f];
          if (cell(i + nb.di, j + nb.dj, k + nb.dk) != CellType::Solid) sum += face_weight(i, j, k, f);
        }
        if (!co.diagonal.empty()) sum += diagonal_term(i, j, k);
        c.weighted_diag[n] = co.scale * sum;
        const std::array<std::int64_t, 6> face = face_slots(x, i, j, k);
        for (int f = 0; f < 6; ++f) {
          const auto& nb = kNeighbours[f];
          if (cell(i + nb.di, j + nb.dj, k + nb.dk) == CellType::Fluid)
            c.coupling[f / 2][static_cast<std::size_t>(face[f])] = co.scale * face_weight(i, j, k, f);
        }
      }
}

void PressureSystem::make_nullspace(const std::map<std::int64_t, int>& singular_slot,
                                    const std::vector<double>& inverse_size) {
  // The null space: normalised indicator vectors of the singular components.
  if (singular_components == 0) return;
  if (singular_components <= kMaxNullSpaceVectors) {
    std::vector<Vec> vecs(static_cast<std::size_t>(singular_components));
    for (auto& v : vecs) {
      DCDM_PETSC_CALL(VecDuplicate(b_, &v));
      DCDM_PETSC_CALL(VecSet(v, 0.0));
    }
    std::vector<PetscScalar*> arrays(vecs.size());
    for (std::size_t s = 0; s < vecs.size(); ++s) DCDM_PETSC_CALL(VecGetArray(vecs[s], &arrays[s]));
    for (std::size_t m = 0; m < labels_.size(); ++m) {
      if (labels_[m] < 0) continue;
      const auto it = singular_slot.find(labels_[m]);
      if (it != singular_slot.end())
        arrays[static_cast<std::size_t>(it->second)][m] = std::sqrt(inverse_size[static_cast<std::size_t>(it->second)]);
    }
    for (std::size_t s = 0; s < vecs.size(); ++s) DCDM_PETSC_CALL(VecRestoreArray(vecs[s], &arrays[s]));
    DCDM_PETSC_CALL(MatNullSpaceCreate(comm_, PETSC_FALSE, singular_components, vecs.data(), &nullspace_));
    for (auto& v : vecs) DCDM_PETSC_CALL(VecDestroy(&v));
  } else {
    auto* remover = new MeanRemover{comm_, std::vector<std::int32_t>(labels_.size(), -1), inverse_size};
    for (std::size_t m = 0; m < labels_.size(); ++m) {
      if (labels_[m] < 0) continue;
      const auto it = singular_slot.find(labels_[m]);
      if (it != singular_slot.end()) remover->slot[m] = it->second;
    }
    DCDM_PETSC_CALL(MatNullSpaceCreate(comm_, PETSC_FALSE, 0, nullptr, &nullspace_));
    DCDM_PETSC_CALL(MatNullSpaceSetFunction(nullspace_, remove_means, remover));
    // The null space owns the remover: a container object destroys it with the null space.
    PetscContainer holder = nullptr;
    DCDM_PETSC_CALL(PetscContainerCreate(comm_, &holder));
    DCDM_PETSC_CALL(PetscContainerSetPointer(holder, remover));
    DCDM_PETSC_CALL(PetscContainerSetUserDestroy(holder, destroy_mean_remover));
    DCDM_PETSC_CALL(PetscObjectCompose((PetscObject)nullspace_, "dcdm_mean_remover", (PetscObject)holder));
    DCDM_PETSC_CALL(PetscContainerDestroy(&holder));
  }
}

Mat PressureSystem::assembled() {
  if (assembled_) return assembled_;
  DCDM_PETSC_CALL(DMCreateMatrix(da_, &assembled_));
  DCDM_PETSC_CALL(MatSetOption(assembled_, MAT_NEW_NONZERO_ALLOCATION_ERR, PETSC_TRUE));
  const Box& x = box_;
  std::size_t n = 0;
  for (PetscInt k = x.zs; k < x.zs + x.zm; ++k)
    for (PetscInt j = x.ys; j < x.ys + x.ym; ++j)
      for (PetscInt i = x.xs; i < x.xs + x.xm; ++i, ++n) {
        MatStencil row{};
        row.i = i;
        row.j = j;
        row.k = k;
        MatStencil cols[7];
        PetscScalar vals[7];
        int nc = 0;
        const std::uint8_t m = shell_context_->mask[n];
        if (!(m & kFluidBit)) {
          cols[0] = row;
          vals[0] = 1.0;
          nc = 1;
        } else {
          const std::array<std::int64_t, 6> face = weighted_ ? face_slots(x, i, j, k) : std::array<std::int64_t, 6>{};
          for (int f = 0; f < 6; ++f) {
            if (!(m & (1u << f))) continue;
            cols[nc] = row;
            cols[nc].i += kNeighbours[f].di;
            cols[nc].j += kNeighbours[f].dj;
            cols[nc].k += kNeighbours[f].dk;
            vals[nc++] = weighted_ ? -shell_context_->coupling[f / 2][static_cast<std::size_t>(face[f])] : -1.0;
          }
          cols[nc] = row;
          vals[nc++] = weighted_ ? shell_context_->weighted_diag[n] : shell_context_->diag[n];
        }
        DCDM_PETSC_CALL(MatSetValuesStencil(assembled_, 1, &row, nc, cols, vals, INSERT_VALUES));
      }
  DCDM_PETSC_CALL(MatAssemblyBegin(assembled_, MAT_FINAL_ASSEMBLY));
  DCDM_PETSC_CALL(MatAssemblyEnd(assembled_, MAT_FINAL_ASSEMBLY));
  DCDM_PETSC_CALL(MatSetOption(assembled_, MAT_SYMMETRIC, PETSC_TRUE));
  if (nullspace_) {
    DCDM_PETSC_CALL(MatSetNullSpace(assembled_, nullspace_));
    DCDM_PETSC_CALL(MatSetTransposeNullSpace(assembled_, nullspace_));
  }
  return assembled_;
}

Mat PressureSystem::shell() {
  if (shell_) return shell_;
  PetscInt local = 0, global = 0;
  DCDM_PETSC_CALL(VecGetLocalSize(b_, &local));
  DCDM_PETSC_CALL(VecGetSize(b_, &global));
  DCDM_PETSC_CALL(MatCreateShell(comm_, local, local, global, global, shell_context_, &shell_));
  DCDM_PETSC_CALL(MatShellSetOperation(shell_, MATOP_MULT, (void (*)(void))shell_mult));
  DCDM_PETSC_CALL(MatShellSetOperation(shell_, MATOP_MULT_TRANSPOSE, (void (*)(void))shell_mult));
  DCDM_PETSC_CALL(MatShellSetOperation(shell_, MATOP_GET_DIAGONAL, (void (*)(void))shell_diagonal));
  DCDM_PETSC_CALL(PetscObjectComposeFunction((PetscObject)shell_, "DCDMMatMultDots_C", shell_mult_dots));
  DCDM_PETSC_CALL(PetscObjectComposeFunction((PetscObject)shell_, "DCDMMatMultDotsSingle_C", shell_mult_dots_single));
  DCDM_PETSC_CALL(MatSetDM(shell_, da_));
  DCDM_PETSC_CALL(MatSetOption(shell_, MAT_SYMMETRIC, PETSC_TRUE));
  if (nullspace_) {
    DCDM_PETSC_CALL(MatSetNullSpace(shell_, nullspace_));
    DCDM_PETSC_CALL(MatSetTransposeNullSpace(shell_, nullspace_));
  }
  return shell_;
}

void PressureSystem::destroy() {
  MatDestroy(&assembled_);
  MatDestroy(&shell_);
  MatNullSpaceDestroy(&nullspace_);
  VecDestroy(&b_);
  if (shell_context_) {
    delete shell_context_;
    shell_context_ = nullptr;
  }
  DMDestroy(&da_);
}

PressureSystem::~PressureSystem() { destroy(); }

PressureSystem::PressureSystem(PressureSystem&& o) noexcept { *this = std::move(o); }

PressureSystem& PressureSystem::operator=(PressureSystem&& o) noexcept {
  if (this == &o) return *this;
  destroy();
  fluid = o.fluid;
  air = o.air;
  solid = o.solid;
  components = o.components;
  singular_components = o.singular_components;
  comm_ = o.comm_;
  da_ = std::exchange(o.da_, nullptr);
  dims_ = o.dims_;
  faces_ = o.faces_;
  box_ = o.box_;
  ghost_cells_ = std::move(o.ghost_cells_);
  part_coefficients_ = std::move(o.part_coefficients_);
  weighted_ = o.weighted_;
  labels_ = std::move(o.labels_);
  assembled_ = std::exchange(o.assembled_, nullptr);
  shell_ = std::exchange(o.shell_, nullptr);
  nullspace_ = std::exchange(o.nullspace_, nullptr);
  b_ = std::exchange(o.b_, nullptr);
  shell_context_ = std::exchange(o.shell_context_, nullptr);
  return *this;
}

// ---------------------------------------------------------------- solving

const char* reason_name(KSPConvergedReason reason) {
  switch (reason) {
    case KSP_CONVERGED_RTOL_NORMAL:
    case KSP_CONVERGED_RTOL: return "converged-rtol";
    case KSP_CONVERGED_ATOL_NORMAL:
    case KSP_CONVERGED_ATOL: return "converged-atol";
    case KSP_CONVERGED_ITS: return "converged-its";
    case KSP_DIVERGED_ITS: return "max-iterations";
    case KSP_DIVERGED_BREAKDOWN:
    case KSP_DIVERGED_BREAKDOWN_BICG: return "breakdown";
    case KSP_DIVERGED_NANORINF: return "nan";
    case KSP_DIVERGED_INDEFINITE_MAT: return "indefinite-matrix";
    case KSP_DIVERGED_INDEFINITE_PC: return "indefinite-preconditioner";
    case KSP_DIVERGED_DTOL: return "diverged-dtol";
    case KSP_DIVERGED_PC_FAILED: return "pc-failed";
    default: break;
  }
  return reason > 0 ? "converged" : "diverged";
}

SolveSummary solve(KSP ksp, Mat a, Vec b, Vec x) {
  SolveSummary s;
  KSPType kt = nullptr;
  PC pc = nullptr;
  PCType pt = nullptr;
  DCDM_PETSC_CALL(KSPGetPC(ksp, &pc));
  const auto t0 = Clock::now();
  DCDM_PETSC_CALL(KSPSetUp(ksp));
  s.setup_seconds = seconds_since(t0);
  DCDM_PETSC_CALL(KSPGetType(ksp, &kt));
  DCDM_PETSC_CALL(PCGetType(pc, &pt));
  s.method = fmt::format("petsc-{}+{}", kt ? kt : "?", pt ? pt : "none");
  DCDM_PETSC_CALL(VecNorm(b, NORM_2, &s.rhs_norm));
  DCDM_PETSC_CALL(KSPSetResidualHistory(ksp, nullptr, PETSC_DECIDE, PETSC_TRUE));
  const auto t1 = Clock::now();
  DCDM_PETSC_CALL(KSPSolve(ksp, b, x));
  s.solve_seconds = seconds_since(t1);
  DCDM_PETSC_CALL(KSPGetConvergedReason(ksp, &s.reason));
  DCDM_PETSC_CALL(KSPGetIterationNumber(ksp, &s.iterations));
  const PetscReal* hist = nullptr;
  PetscInt nh = 0;
  DCDM_PETSC_CALL(KSPGetResidualHistory(ksp, &hist, &nh));
  s.residual_history.assign(hist, hist + nh);
  s.initial_residual = nh > 0 ? hist[0] : s.rhs_norm;
  // The KSP's work vectors go before the check's vector comes, so that the check adds nothing
  // to the solve's peak memory (a later KSPSolve sets the KSP up again).
  DCDM_PETSC_CALL(KSPReset(ksp));
  Vec r = nullptr;
  DCDM_PETSC_CALL(VecDuplicate(b, &r));
  DCDM_PETSC_CALL(MatMult(a, x, r));
  DCDM_PETSC_CALL(VecAYPX(r, -1.0, b));
  DCDM_PETSC_CALL(VecNorm(r, NORM_2, &s.final_residual));
  DCDM_PETSC_CALL(VecDestroy(&r));
  return s;
}

// ---------------------------------------------------------------- PETSc's allocator

namespace {

// PETSc's own alignment (PetscMallocAlign's) or a cache line, whichever is larger.
constexpr std::size_t kPetscAlign = PETSC_MEMALIGN > 64 ? PETSC_MEMALIGN : 64;

PetscErrorCode huge_page_malloc(std::size_t bytes, PetscBool clear, int, const char[], const char[], void** result) {
  *result = nullptr;
  if (bytes == 0) return 0;  // PETSc's convention: no block, a null pointer
  void* p = detail::allocate_large_aligned(bytes, kPetscAlign);  // huge pages asked for before the first touch
  if (!p) return PETSC_ERR_MEM;
  if (clear) std::memset(p, 0, bytes);
  *result = p;
  return 0;
}

PetscErrorCode huge_page_free(void* p, int, const char[], const char[]) {
  std::free(p);
  return 0;
}

// realloc keeps no alignment: a fresh aligned block, the old contents copied.
PetscErrorCode huge_page_realloc(std::size_t bytes, int line, const char function[], const char file[], void** result) {
  void* old = *result;
  if (bytes == 0) {
    std::free(old);
    *result = nullptr;
    return 0;
  }
  void* p = nullptr;
  if (const PetscErrorCode e = huge_page_malloc(bytes, PETSC_FALSE, line, function, file, &p)) return e;
  if (old) {
    std::memcpy(p, old, std::min(bytes, malloc_usable_size(old)));
    std::free(old);
  }
  *result = p;
  return 0;
}

}  // namespace

void use_huge_page_allocator() {
  check(PetscMallocSet(huge_page_malloc, huge_page_free, huge_page_realloc), "PetscMallocSet");
}

}  // namespace dcdm::petsc
