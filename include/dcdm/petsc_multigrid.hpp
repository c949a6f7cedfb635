#pragma once
// The multigrid V-cycle of MGPCG and dcdm-relax (include/dcdm/precond.hpp) on a grid split
// across MPI ranks, as the PETSc preconditioner type "dcdm_mg".
//
// Every level is split like the fine grid: a coarse cell belongs to the rank that owns its
// first child (2i, 2j, 2k), so coarsening, the band, the learned factors and the transfers of
// a rank need only a ghost frame of two cells from its neighbours. The red-black sweeps
// exchange ghost layers so that every update reads the values the serial sweep reads, and
// each cell is computed with the serial kernel's expression: the cycle is the serial one, cell
// for cell (to the last bits where the serial kernels' vector loops fuse other multiply-adds). Once a level is small (at most gather_cells
// cells, a rank's box thinner than 2 cells on the next level, or the serial rule's coarsest
// level), it and every coarser level are gathered onto rank 0 and run there by the serial
// cycle (which solves the coarsest level exactly, singular components included). No rank
// holds a finer level than that whole.
//
// PETSc options of a "dcdm_mg" PC (prefix as the PC's):
//   -pc_dcdm_mg_model NAME|FILE      a relaxnet model: its float cycle with learned factors
//                                    (dcdm-relax); none = the mgpcg settings below
//   -pc_dcdm_mg_settings S           mgpcg settings, as `dcdm solve --method mgpcg:S`
//                                    (omega=W:band-omega=W:sweeps=N:...:precision=double|float)
//   -pc_dcdm_mg_gather_cells N       gather levels of at most N cells onto rank 0 (default 32768)
// The PC finds the grid through its DM: attach_geometry(system) on the PressureSystem first.
// The cycle is the unit operator's: a weighted system (PressureSystem::weighted()) is refused
// with an InputError on every rank (PETSc's algebraic multigrid takes those: gamg, hypre).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <petscksp.h>

#include "dcdm/petsc_system.hpp"
#include "dcdm/precond.hpp"

#define PCDCDMMG "dcdm_mg"

namespace dcdm::petsc {

// What the cycle needs of a distributed grid: the global dims and outer faces, the process
// grid and every rank's ownership ranges per axis, and this rank's owned cell types.
struct GridGeometry {
  MPI_Comm comm = MPI_COMM_NULL;
  Dims dims;
  std::array<FaceBoundary, 6> faces{};
  int procs[3] = {1, 1, 1};                // ranks per axis (x fastest in the rank number)
  std::vector<PetscInt> starts[3];         // per axis: procs + 1 boundaries, starts[a][0] = 0
  int coord[3] = {0, 0, 0};                // this rank's position in the process grid
  std::vector<std::uint8_t> owned_types;   // CellType of the owned box, x fastest
  bool weighted = false;                   // the system's operator is weighted (refused)
  static GridGeometry of(const PressureSystem& system);
};

struct DistributedMultigridOptions {
  MultigridOptions cycle;
  std::int64_t gather_cells = 32768;
  // Each red-black sweep as one pass over the z-planes of a level (the first colour on plane
  // k + 1, then the second on plane k) instead of a pass per colour; where the ranks split z
  // only and a rank runs one thread, a whole smoother as one pass (a wavefront of its sweeps
  // over the planes whose inputs need no exchange, then the planes near the rank boundaries
  // sweep by sweep); and, on levels whose rank boundaries all lie at even cells, the residual
  // (computed on the first ghost layer too, no exchange of it) and the restriction in one
  // pass: the same values cell for cell, less memory traffic. false: a pass per single-colour
  // step, the residual's ghosts exchanged (the reference the tests compare the fused passes
  // with).
  bool fused_passes = true;
};

class DistributedMultigrid {
 public:
  DistributedMultigrid(const GridGeometry& grid, DistributedMultigridOptions options);  // collective
  ~DistributedMultigrid();
  DistributedMultigrid(const DistributedMultigrid&) = delete;
  DistributedMultigrid& operator=(const DistributedMultigrid&) = delete;
  // z = cycle(r) on the grid's DMDA layout (the owned box, x fastest). Collective.
  void apply(Vec r, Vec z) const;
  // The same z rounded to float (the float cycle's own values), into z's this rank's owned
  // cells. With capacity >= single_workspace() floats at z the finest level's residual lives
  // there while the cycle runs; with less the cycle makes an array of its own for it (once).
  void apply_single(Vec r, float* z, std::size_t capacity) const;
  std::size_t single_workspace() const;
  int levels() const;               // all levels, the gathered ones included
  int distributed_levels() const;   // levels split across the ranks (the rest are on rank 0)
  Dims level_dims(int level) const;
  const DistributedMultigridOptions& options() const { return options_; }

  struct Impl;

 private:
  DistributedMultigridOptions options_;
  std::unique_ptr<Impl> impl_;
};

// Composes the grid geometry of `system` on its DM, where a dcdm_mg PC finds it (the PC's DM
// must be the system's: KSPSetDM(ksp, system.dm())). Collective.
void attach_geometry(const PressureSystem& system);
// Registers the PC type "dcdm_mg" (once per process).
void register_multigrid_pc();
// The cycle of a set-up dcdm_mg PC (null before set-up or for another type).
const DistributedMultigrid* multigrid_of(PC pc);

}  // namespace dcdm::petsc
