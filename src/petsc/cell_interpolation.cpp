// Cell-centred interpolations for PCMG on grids the DMDA cannot coarsen (dcdm/petsc_pcmg.hpp).
#include "dcdm/petsc_pcmg.hpp"

#include <array>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "dcdm/error.hpp"

namespace dcdm::petsc {

bool dmda_coarsens(const Dims& dims, int levels) {
  const bool even = dims.nx % 2 == 0 && dims.ny % 2 == 0 && dims.nz % 2 == 0;
  const std::int64_t step = std::int64_t(1) << (levels - 1);
  for (const int n : {dims.nx, dims.ny, dims.nz}) {
    const std::int64_t m = even ? n : n - 1;  // cells, or the intervals between vertices
    if (m % step != 0) return false;
  }
  return true;
}

namespace {

// One level of the hierarchy: its DMDA and the interpolation from it to the next finer level.
struct CoarseLevel {
  DM da = nullptr;
  Mat interpolation = nullptr;
};

// Ownership ranges of the coarse axis: coarse cell I belongs to the rank owning fine cell 2I,
// so a rank's fine range [s, e) owns the coarse range [ceil(s/2), ceil(e/2)).
std::vector<PetscInt> coarse_ranges(const PetscInt* fine, PetscInt ranks) {
  std::vector<PetscInt> out(static_cast<std::size_t>(ranks));
  PetscInt start = 0;
  for (PetscInt r = 0; r < ranks; ++r) {
    const PetscInt end = start + fine[r];
    out[static_cast<std::size_t>(r)] = (end + 1) / 2 - (start + 1) / 2;
    start = end;
  }
  return out;
}

// P: one 1 per fine row, in the column of the coarse cell above it (piecewise constant).
Mat piecewise_constant(DM fine, DM coarse) {
  PetscInt xs, ys, zs, xm, ym, zm, cgxs, cgys, cgzs, cgxm, cgym, cgzm, gxs, gys, gzs, gxm, gym, gzm;
  DCDM_PETSC_CALL(DMDAGetCorners(fine, &xs, &ys, &zs, &xm, &ym, &zm));
  DCDM_PETSC_CALL(DMDAGetGhostCorners(fine, &gxs, &gys, &gzs, &gxm, &gym, &gzm));
  DCDM_PETSC_CALL(DMDAGetGhostCorners(coarse, &cgxs, &cgys, &cgzs, &cgxm, &cgym, &cgzm));
  PetscInt cxs, cys, czs, cxm, cym, czm;
  DCDM_PETSC_CALL(DMDAGetCorners(coarse, &cxs, &cys, &czs, &cxm, &cym, &czm));
  ISLocalToGlobalMapping rows = nullptr, cols = nullptr;
  DCDM_PETSC_CALL(DMGetLocalToGlobalMapping(fine, &rows));
  DCDM_PETSC_CALL(DMGetLocalToGlobalMapping(coarse, &cols));
  MPI_Comm comm = PetscObjectComm(reinterpret_cast<PetscObject>(fine));
  Mat p = nullptr;
  DCDM_PETSC_CALL(MatCreate(comm, &p));
  DCDM_PETSC_CALL(MatSetSizes(p, xm * ym * zm, cxm * cym * czm, PETSC_DETERMINE, PETSC_DETERMINE));
  DCDM_PETSC_CALL(MatSetType(p, MATAIJ));
  DCDM_PETSC_CALL(MatSeqAIJSetPreallocation(p, 1, nullptr));
  DCDM_PETSC_CALL(MatMPIAIJSetPreallocation(p, 1, nullptr, 1, nullptr));
  DCDM_PETSC_CALL(MatSetLocalToGlobalMapping(p, rows, cols));
  const PetscScalar one = 1.0;
  for (PetscInt k = zs; k < zs + zm; ++k)
    for (PetscInt j = ys; j < ys + ym; ++j)
      for (PetscInt i = xs; i < xs + xm; ++i) {
        // The coarse cell is the rank's own or in its first ghost layer (coarse_ranges).
        const PetscInt row = (i - gxs) + gxm * ((j - gys) + gym * (k - gzs));
        const PetscInt col = (i / 2 - cgxs) + cgxm * ((j / 2 - cgys) + cgym * (k / 2 - cgzs));
        DCDM_PETSC_CALL(MatSetValuesLocal(p, 1, &row, 1, &col, &one, INSERT_VALUES));
      }
  DCDM_PETSC_CALL(MatAssemblyBegin(p, MAT_FINAL_ASSEMBLY));
  DCDM_PETSC_CALL(MatAssemblyEnd(p, MAT_FINAL_ASSEMBLY));
  return p;
}

}  // namespace

bool use_cell_interpolation(PC pc, const PressureSystem& system, CellInterpolation when) {
  PetscBool is_mg = PETSC_FALSE;
  DCDM_PETSC_CALL(PetscObjectTypeCompare(reinterpret_cast<PetscObject>(pc), PCMG, &is_mg));
  if (!is_mg) return false;
  PetscInt levels = 0;
  DCDM_PETSC_CALL(PCMGGetLevels(pc, &levels));
  if (levels <= 1) return false;
  if (when == CellInterpolation::WhereNeeded && dmda_coarsens(system.dims(), static_cast<int>(levels))) return false;

  PetscInt ranks[3] = {0, 0, 0};
  DCDM_PETSC_CALL(DMDAGetInfo(system.dm(), nullptr, nullptr, nullptr, nullptr, &ranks[0], &ranks[1], &ranks[2],
                              nullptr, nullptr, nullptr, nullptr, nullptr, nullptr));
  // Build every level first (all ranks reach the same verdict on its sizes: no collective
  // call is left half done when one is too coarse).
  std::vector<CoarseLevel> coarse;
  DM fine = system.dm();
  Dims d = system.dims();
  try {
    for (PetscInt l = levels - 1; l > 0; --l) {
      const Dims c{(d.nx + 1) / 2, (d.ny + 1) / 2, (d.nz + 1) / 2};
      const PetscInt* fine_ranges[3] = {nullptr, nullptr, nullptr};
      DCDM_PETSC_CALL(DMDAGetOwnershipRanges(fine, &fine_ranges[0], &fine_ranges[1], &fine_ranges[2]));
      std::array<std::vector<PetscInt>, 3> ranges;
      const int sizes[3] = {c.nx, c.ny, c.nz};
      for (int a = 0; a < 3; ++a) {
        ranges[a] = coarse_ranges(fine_ranges[a], ranks[a]);
        for (const PetscInt r : ranges[a])
          if (r < 1)
            throw InputError(fmt::format(
                "-pc_mg_levels {}: level {} ({}) has {} cells along {} for {} ranks along it; use fewer levels",
                levels, l - 1, c.str(), sizes[a], "xyz"[a], ranks[a]));
      }
      CoarseLevel level;
      // A box stencil: the coarse cell above a fine one may be a ghost across an edge or a
      // corner, which a star stencil's local numbering leaves out.
      DCDM_PETSC_CALL(DMDACreate3d(system.comm(), DM_BOUNDARY_NONE, DM_BOUNDARY_NONE, DM_BOUNDARY_NONE,
                                   DMDA_STENCIL_BOX, c.nx, c.ny, c.nz, ranks[0], ranks[1], ranks[2], 1, 1,
                                   ranges[0].data(), ranges[1].data(), ranges[2].data(), &level.da));
      DCDM_PETSC_CALL(DMSetUp(level.da));
      level.interpolation = piecewise_constant(fine, level.da);
      coarse.push_back(level);
      fine = level.da;
      d = c;
    }
  } catch (...) {
    for (CoarseLevel& level : coarse) {
      MatDestroy(&level.interpolation);
      DMDestroy(&level.da);
    }
    throw;
  }
  for (std::size_t n = 0; n < coarse.size(); ++n) {
    DCDM_PETSC_CALL(PCMGSetInterpolation(pc, levels - 1 - static_cast<PetscInt>(n), coarse[n].interpolation));
    DCDM_PETSC_CALL(MatDestroy(&coarse[n].interpolation));
    DCDM_PETSC_CALL(DMDestroy(&coarse[n].da));
  }
  default_to_galerkin(pc);
  return true;
}

void default_to_galerkin(PC pc) {
  PetscBool is_mg = PETSC_FALSE, given = PETSC_FALSE;
  DCDM_PETSC_CALL(PetscObjectTypeCompare(reinterpret_cast<PetscObject>(pc), PCMG, &is_mg));
  if (!is_mg) return;
  const char* prefix = nullptr;
  DCDM_PETSC_CALL(PCGetOptionsPrefix(pc, &prefix));
  DCDM_PETSC_CALL(PetscOptionsHasName(nullptr, prefix, "-pc_mg_galerkin", &given));
  if (!given) DCDM_PETSC_CALL(PCMGSetGalerkin(pc, PC_MG_GALERKIN_BOTH));
}

}  // namespace dcdm::petsc
