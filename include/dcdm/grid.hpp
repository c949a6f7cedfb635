#pragma once
// Voxel grids: dimensions, cell types, contiguous fields (x fastest), and the domain
// (cells + six outer faces) that the pressure operator is built from.
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dcdm/span.hpp"

namespace dcdm {

struct Dims {
  int nx = 0, ny = 0, nz = 0;

  std::int64_t size() const { return std::int64_t(nx) * ny * nz; }
  std::int64_t index(int i, int j, int k) const {
    return i + std::int64_t(nx) * (j + std::int64_t(ny) * k);
  }
  bool contains(int i, int j, int k) const {
    return i >= 0 && j >= 0 && k >= 0 && i < nx && j < ny && k < nz;
  }
  bool is_cube() const { return nx == ny && ny == nz; }
  std::string str() const;  // "64x64x64"
  friend bool operator==(const Dims& a, const Dims& b) { return a.nx == b.nx && a.ny == b.ny && a.nz == b.nz; }
  friend bool operator!=(const Dims& a, const Dims& b) { return !(a == b); }
};

// The most cells a grid may have: matrix column indices are 32-bit.
inline constexpr std::int64_t kMaxGridCells = 2147483647;
// Every size check of a grid goes through here: each axis positive and nx*ny*nz at most
// kMaxGridCells, computed without overflow (a product that wraps around 64 bits must not pass
// a later size check). Throws InputError naming `what`.
void check_grid_dims(const Dims& d, const std::string& what);

// Parses "N" (cube) or "NX,NY,NZ" / "NXxNYxNZ" and checks it (check_grid_dims). Throws
// InputError naming `what`.
Dims parse_dims(const std::string& text, const std::string& what = "dimensions");

// Numeric values are stored in flag files (uint8), keep them stable.
enum class CellType : std::uint8_t { Solid = 0, Fluid = 1, Air = 2 };
const char* to_string(CellType t);

template <class T>
class Field {
 public:
  Field() = default;
  explicit Field(Dims d, T value = T{}) : dims_(d), data_(static_cast<std::size_t>(d.size()), value) {}

  const Dims& dims() const { return dims_; }
  std::int64_t size() const { return dims_.size(); }
  T& operator()(int i, int j, int k) { return data_[dims_.index(i, j, k)]; }
  const T& operator()(int i, int j, int k) const { return data_[dims_.index(i, j, k)]; }
  T& operator[](std::int64_t n) { return data_[n]; }
  const T& operator[](std::int64_t n) const { return data_[n]; }
  T* data() { return data_.data(); }
  const T* data() const { return data_.data(); }
  dcdm::span<T> span() { return data_; }
  dcdm::span<const T> span() const { return data_; }
  std::vector<T>& vector() { return data_; }
  const std::vector<T>& vector() const { return data_; }
  void fill(T v) { std::fill(data_.begin(), data_.end(), v); }

 private:
  Dims dims_;
  std::vector<T> data_;
};

enum class Face : int { XMin = 0, XMax, YMin, YMax, ZMin, ZMax };
enum class FaceBoundary : std::uint8_t { Wall = 0, Open = 1 };  // Neumann / Dirichlet (air)
const char* to_string(Face f);

// Variable coefficients of the pressure operator: liquids (ghost-fluid free surfaces), cut
// cells, variable density, grid spacing. Row of a fluid cell c:
//   A(c, c) = scale * (sum of w_f over the faces f of c whose neighbour is not solid + diagonal[c])
//   A(c, n) = -scale * w_f for the neighbour n across face f when n is fluid.
// Face weights use the staggered (MAC) layout of face velocities: face_x holds (nx+1)*ny*nz
// values, entry i + (nx+1)*(j + ny*k) is the face between cells (i-1, j, k) and (i, j, k) (i = 0
// and i = nx are the outer faces); face_y ((ny+1) faces along y: i + nx*(j + (ny+1)*k)) and
// face_z (i + nx*(j + ny*k), k = 0..nz) likewise. An empty array means all ones. Weights must
// be finite and >= 0; a weight on a face next to a solid cell (or a wall) is not used.
// diagonal: one value per cell (nx*ny*nz, x fastest), >= 0, added on fluid cells: e.g. the
// ghost-fluid term w_f (1/theta - 1) of a free-surface face at fractional distance theta.
// Empty means zeros. scale: a positive global factor (1/dx^2, dt/(rho dx^2)).
struct Coefficients {
  std::vector<double> face_x, face_y, face_z, diagonal;
  double scale = 1.0;

  // Sizes of the face arrays of a grid: {(nx+1)*ny*nz, nx*(ny+1)*nz, nx*ny*(nz+1)}.
  static std::array<std::int64_t, 3> face_sizes(const Dims& d);
  // Every face weight 1 (or empty), no diagonal term (or all zero) and scale 1: the unit
  // operator.
  bool unit() const;
  // Sizes, finiteness and signs (InputError naming the array and the cell or face (i, j, k)).
  void check(const Dims& d) const;
  // Weight of face f of cell (i, j, k) (1 when the array is empty); the cell may be at the
  // grid's edge (then the face is an outer face).
  double weight(const Dims& d, int i, int j, int k, Face f) const;
};

// A pressure domain: per-cell types plus the behaviour of the six outer faces. Cells outside
// the grid behave as Solid across a Wall face and as Air across an Open face. Coefficients are
// optional (null: the unit operator, the fast path); copies of a domain share them.
struct Domain {
  Field<CellType> cells;
  std::array<FaceBoundary, 6> faces{};  // all walls by default
  std::shared_ptr<const Coefficients> coefficients;

  Domain() = default;
  explicit Domain(Dims d, CellType fill = CellType::Fluid) : cells(d, fill) {}
  const Dims& dims() const { return cells.dims(); }
  FaceBoundary face(Face f) const { return faces[static_cast<int>(f)]; }
  void set_face(Face f, FaceBoundary b) { faces[static_cast<int>(f)] = b; }
  std::int64_t count(CellType t) const;
  // Checks c against the grid (Coefficients::check) and keeps it, or drops it when it is the
  // unit operator (so the unit case always takes the unit code). Also checks that every fluid
  // cell keeps a non-zero row (InputError naming the cell otherwise).
  void set_coefficients(Coefficients c);
  bool weighted() const { return coefficients != nullptr; }
};

// A box of cells of a grid: lo is its first cell (global indices), size its extent.
struct CellBox {
  std::array<int, 3> lo{0, 0, 0};
  Dims size;
  std::int64_t cells() const { return size.size(); }
  // Whether the box lies inside grid d and is not empty.
  bool inside(const Dims& d) const;
};

// The part of `whole` inside `box` (InputError when the box is empty or not inside the grid):
// cells, the six outer faces, and for a weighted domain its coefficients in the part's own
// layout (face arrays of (sx+1)*sy*sz, ... values: the faces on the box's sides included;
// the diagonal term of each cell; the scale). The part of a weighted domain stays weighted
// even where its own coefficients happen to be unit. What a scene or system built for a box
// must equal, cell for cell and weight for weight.
Domain crop(const Domain& whole, const CellBox& box);

}  // namespace dcdm
