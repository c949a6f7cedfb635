#pragma once
// Private helpers shared by the grid-aware preconditioners: neighbour classification on a
// Domain (outer faces: Wall -> Solid, Open -> Air), the 7-point diagonal.
#include <vector>

#include "dcdm/grid.hpp"

namespace dcdm::detail {

// Offsets of the six faces in the order of dcdm::Face (XMin, XMax, YMin, YMax, ZMin, ZMax).
inline constexpr int kFaceDi[6] = {-1, 1, 0, 0, 0, 0};
inline constexpr int kFaceDj[6] = {0, 0, -1, 1, 0, 0};
inline constexpr int kFaceDk[6] = {0, 0, 0, 0, -1, 1};

// Type of the cell across face f of (i, j, k); beyond the grid a Wall face is Solid and an Open
// face Air.
inline CellType neighbour_type(const Domain& d, int i, int j, int k, int f) {
  const int a = i + kFaceDi[f], b = j + kFaceDj[f], c = k + kFaceDk[f];
  if (!d.dims().contains(a, b, c))
    return d.faces[f] == FaceBoundary::Open ? CellType::Air : CellType::Solid;
  return d.cells(a, b, c);
}

// Full-grid diagonal of the 7-point operator: number of non-solid neighbours of each fluid
// cell, 0 elsewhere.
inline std::vector<double> stencil_diagonal(const Domain& d) {
  const Dims dims = d.dims();
  std::vector<double> diag(static_cast<std::size_t>(dims.size()), 0.0);
#pragma omp parallel for schedule(static)
  for (int k = 0; k < dims.nz; ++k)
    for (int j = 0; j < dims.ny; ++j)
      for (int i = 0; i < dims.nx; ++i) {
        if (d.cells(i, j, k) != CellType::Fluid) continue;
        int count = 0;
        for (int f = 0; f < 6; ++f) count += neighbour_type(d, i, j, k, f) != CellType::Solid;
        diag[dims.index(i, j, k)] = count;
      }
  return diag;
}

}  // namespace dcdm::detail
