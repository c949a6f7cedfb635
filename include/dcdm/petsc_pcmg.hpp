#pragma once
// PETSc's geometric multigrid (-pc_type mg) on the pressure system's DMDA at any grid size.
//
// PCMG builds its levels by coarsening the KSP's DMDA, which works only while every size keeps
// halving exactly (cell-style, sizes 2^(L-1) m) or keeps the vertex rule n -> (n+1)/2 (sizes
// 2^(L-1) m + 1). A cell-centred grid of any other size (e.g. 40x29x33) gets from here the
// hierarchy the cell-style DMDA makes for even sizes, extended to odd ones: each level
// n -> ceil(n/2) per axis, fine cell i under coarse cell floor(i/2), piecewise-constant
// interpolation (PETSc's DMDA_Q0; R = P^T in PCMG), a coarse cell owned by the rank that owns
// fine cell 2I, so that each rank's interpolation rows reach at most one ghost layer.
#include <petscksp.h>

#include "dcdm/petsc_system.hpp"

namespace dcdm::petsc {

// Whether the DMDA of `dims` coarsens by itself to `levels` levels (the interpolation type the
// system sets: cell-style when every size is even, vertex-style otherwise).
bool dmda_coarsens(const Dims& dims, int levels);

enum class CellInterpolation { WhereNeeded, Always };

// For a PCMG `pc` (after KSPSetFromOptions, before KSPSetUp) whose levels the DMDA cannot
// make (or any PCMG, with CellInterpolation::Always): sets the cell-centred interpolations described above on every level and, unless
// -pc_mg_galerkin was given, Galerkin coarse operators (the operators do not come from the
// DM). Returns whether it did; a PC of another type, one level, or a grid the DMDA coarsens
// is left alone. InputError (on every rank) when a level gets fewer cells along an axis than
// the ranks along it ("use fewer -pc_mg_levels"). Collective.
bool use_cell_interpolation(PC pc, const PressureSystem& system,
                            CellInterpolation when = CellInterpolation::WhereNeeded);

// The pressure system's operators never come from its DM: a PCMG `pc` without
// -pc_mg_galerkin gets Galerkin coarse operators (PC_MG_GALERKIN_BOTH) instead of PETSc's
// error about a DM that cannot compute them. Other PC types are left alone.
void default_to_galerkin(PC pc);

}  // namespace dcdm::petsc
