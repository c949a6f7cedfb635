#pragma once
// Voxel grids: dimensions, cell types, contiguous fields (x fastest), and the domain
// (cells + six outer faces) that the pressure operator is built from.
#include <array>
#include <cstdint>
#include "dcdm/span.hpp"
#include <string>
#include <vector>

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

// A pressure domain: per-cell types plus the behaviour of the six outer faces. Cells outside
// the grid behave as Solid across a Wall face and as Air across an Open face.
struct Domain {
  Field<CellType> cells;
  std::array<FaceBoundary, 6> faces{};  // all walls by default

  Domain() = default;
  explicit Domain(Dims d, CellType fill = CellType::Fluid) : cells(d, fill) {}
  const Dims& dims() const { return cells.dims(); }
  FaceBoundary face(Face f) const { return faces[static_cast<int>(f)]; }
  void set_face(Face f, FaceBoundary b) { faces[static_cast<int>(f)] = b; }
  std::int64_t count(CellType t) const;
};

}  // namespace dcdm
