#pragma once
// The pressure Poisson system (include/dcdm/poisson.hpp) distributed over a PETSc DMDA: one
// unknown per grid cell, a star stencil of width 1, the ranks' boxes chosen by PETSc.
//
// Rows of fluid cells are the serial operator's (diagonal = non-solid neighbours, -1 per
// fluid neighbour; cells beyond an Open outer face count as air, beyond a Wall as solid), and
// on a weighted domain (Domain::coefficients: liquid, cutcell, density) its weighted rows:
// diagonal = scale * (the weights of the faces to non-solid neighbours + the diagonal term),
// -scale * w per fluid neighbour, bit for bit the serial entries. Cells that are not fluid
// get an identity row instead of the serial all-zero row (b and x are 0 there), so that
// Jacobi, SOR and Galerkin multigrid see no zero diagonal; the fluid part of the solution is
// the serial one. Fluid cells connect across faces of positive weight (every face, unit); a
// component with no Dirichlet part (an air neighbour or Open face across a face of positive
// weight, or a positive diagonal term) makes A singular: the per-component indicator
// vectors, normalised, are the operator's MatNullSpace, found by a distributed component
// labelling, and b is projected. The dcdm_mg PC (petsc_multigrid.hpp) takes unit systems only.
//
// Every call here is collective on the communicator. Errors are dcdm::InputError (bad
// input, the same on every rank: the ranks agree before any collective call that could
// otherwise hang) or dcdm::petsc::PetscFailure (a PETSc call failed).
#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <petscdmda.h>
#include <petscksp.h>

#include "dcdm/grid.hpp"
#include "dcdm/scenes.hpp"
#include "dcdm/span.hpp"

namespace dcdm::petsc {

struct PetscFailure : std::runtime_error {
  PetscFailure(PetscErrorCode code, const std::string& what) : std::runtime_error(what), code(code) {}
  PetscErrorCode code;
};
// Throws PetscFailure with PETSc's message for a non-zero error code.
void check(PetscErrorCode code, const char* call);
#define DCDM_PETSC_CALL(call) ::dcdm::petsc::check((call), #call)

// Throws InputError with `message` on every rank when any rank's `ok` is false (the message
// of the lowest failing rank). Collective.
void agree(MPI_Comm comm, bool ok, const std::string& message);

struct Box {  // owned cells [xs, xs+xm) x ..., ghosted cells [gxs, gxs+gxm) x ...
  PetscInt xs = 0, ys = 0, zs = 0, xm = 0, ym = 0, zm = 0;
  PetscInt gxs = 0, gys = 0, gzs = 0, gxm = 0, gym = 0, gzm = 0;
  std::int64_t ghost_index(PetscInt i, PetscInt j, PetscInt k) const {
    return (i - gxs) + std::int64_t(gxm) * ((j - gys) + std::int64_t(gym) * (k - gzs));
  }
  std::int64_t owned() const { return std::int64_t(xm) * ym * zm; }
};

// The system's peak memory per cell, summed over the ranks (measured: 60 at 256^3 on two ranks,
// the ranks' start-up included); from_scene refuses grids that do not fit with it.
constexpr double kSystemBytesPerCell = 62.0;
// A weighted system's on top: the ghosted part's coefficients while the system is built (3
// face weights + the diagonal term, float64: 32) and the operator's weighted diagonal and
// face couplings (32).
constexpr double kWeightedSystemBytesPerCell = 64.0;
// A weighted scene's part while a rank builds it (make_scene_part): its cells, its coefficient
// arrays (32) and its work arrays (a level set or distances); an estimate that errs high.
constexpr double kWeightedSceneBytesPerCell = 56.0;

class PressureSystem {
 public:
  // A built-in scene: each rank builds only its ghosted box of it (make_scene_part: the same
  // cells and coefficients as that box of make_scene's whole grid, memory proportional to the
  // box); b as `dcdm solve`'s random right-hand side of that seed (random_rhs_value, drawn for
  // the rank's own fluid cells), projected for closed regions.
  static PressureSystem from_scene(MPI_Comm comm, const SceneSpec& spec, std::uint64_t rhs_seed);
  // A system folder (include/dcdm/system.hpp): each rank reads only its ghosted box of
  // flags.npy (and of the coefficient files system.json names: face_*.npy, diagonal.npy) and
  // its owned box of b.npy, with offset reads; faces from system.json. Bad, missing or
  // mis-shaped files are the serial reader's InputError naming the file, on every rank.
  static PressureSystem from_folder(MPI_Comm comm, const std::filesystem::path& dir);
  // A Domain every rank already holds (tests, small grids; weighted or not) and a full-grid b
  // (may be empty: then b = 0).
  static PressureSystem from_domain(MPI_Comm comm, const Domain& domain, const std::vector<double>& b);

  PressureSystem(PressureSystem&&) noexcept;
  PressureSystem& operator=(PressureSystem&&) noexcept;
  PressureSystem(const PressureSystem&) = delete;
  PressureSystem& operator=(const PressureSystem&) = delete;
  ~PressureSystem();

  MPI_Comm comm() const { return comm_; }
  DM dm() const { return da_; }
  const Dims& dims() const { return dims_; }
  const Box& box() const { return box_; }
  // Whether the operator is weighted (the domain or folder had coefficients).
  bool weighted() const { return weighted_; }
  // The operator assembled (MPIAIJ, MatSetValuesStencil) and as a MATSHELL (the neighbour
  // ranks' layers next to the owned box exchanged into one buffer per face); both carry the
  // null space (null when A is not singular).
  Mat assembled();
  Mat shell();
  // Frees the DMDA's global-to-local scatter (the index graph DMSetUp makes, 8 bytes a cell):
  // the shell operator, the component labelling and the dcdm_mg PC exchange their faces
  // themselves and never use it. DMGlobalToLocal on dm() fails afterwards (a PETSc error), so
  // only a program that knows nothing will call it does this (dcdm-mpi, with dcdm_mg).
  void release_ghost_scatter();
  MatNullSpace nullspace() const { return nullspace_; }
  Vec rhs() const { return b_; }  // projected onto the range of A
  // Cell type of a cell of the ghosted box (global indices), or beyond the grid by face.
  CellType cell(PetscInt i, PetscInt j, PetscInt k) const;

  // Global counts (reduced over the ranks).
  std::int64_t fluid = 0, air = 0, solid = 0;
  int components = 0, singular_components = 0;
  // Per owned cell (x fastest over the owned box): its component label (the lowest global
  // cell index of the component; -1 outside fluid). Kept only when A is singular (empty
  // otherwise: 8 bytes a cell that no solve needs).
  const std::vector<std::int64_t>& labels() const { return labels_; }

  struct ShellContext;  // the MATSHELL's state (src/petsc/pressure_system.cpp)

 private:
  PressureSystem() = default;
  void create_dm(MPI_Comm comm, const Dims& dims);
  CellBox ghost_box() const;
  // Keeps a part of the grid: the ghosted box's cells and coefficients (crop's layout).
  void take_part(Domain&& part);
  // While the system is built (the part's coefficients are held): weight of face f of a cell
  // of the owned box, the cell's diagonal term, whether it connects with its neighbour across
  // face f, whether it has a Dirichlet part (the serial rules, unit or weighted).
  double face_weight(PetscInt i, PetscInt j, PetscInt k, int f) const;
  double diagonal_term(PetscInt i, PetscInt j, PetscInt k) const;
  bool coupled(PetscInt i, PetscInt j, PetscInt k, int f) const;
  bool dirichlet(PetscInt i, PetscInt j, PetscInt k) const;
  void make_weighted_rows();
  void finish(dcdm::span<const double> owned_b);  // masks, components, null space, b
  void label_components(dcdm::span<std::int64_t> labels) const;
  void make_nullspace(const std::map<std::int64_t, int>& singular_slot, const std::vector<double>& inverse_size);
  void destroy();

  MPI_Comm comm_ = MPI_COMM_NULL;
  DM da_ = nullptr;
  Dims dims_;
  std::array<FaceBoundary, 6> faces_{};
  Box box_;
  std::vector<std::uint8_t> ghost_cells_;  // CellType of every ghosted-box cell
  // A weighted system's coefficients of the ghosted box (crop's layout), until finish() has
  // made the operator's rows from them; null for the unit operator.
  std::shared_ptr<const Coefficients> part_coefficients_;
  bool weighted_ = false;
  std::vector<std::int64_t> labels_;
  Mat assembled_ = nullptr, shell_ = nullptr;
  MatNullSpace nullspace_ = nullptr;
  Vec b_ = nullptr;
  ShellContext* shell_context_ = nullptr;
};

// What a solve reports, in `dcdm solve --json`'s fields (apps/dcdm/cmd_solve.cpp).
struct SolveSummary {
  std::string method;
  KSPConvergedReason reason = KSP_CONVERGED_ITERATING;
  PetscInt iterations = 0;
  double rhs_norm = 0, initial_residual = 0, final_residual = 0;
  std::vector<double> residual_history;
  double setup_seconds = 0, solve_seconds = 0;
  bool converged() const { return reason > 0; }
  double relative_residual() const { return rhs_norm > 0 ? final_residual / rhs_norm : final_residual; }
};
// dcdm's reason names for PETSc's: "converged-rtol", "max-iterations", "breakdown", ...
const char* reason_name(KSPConvergedReason reason);

// Solves A x = b with the KSP (options already set), timing KSPSetUp and KSPSolve apart, and
// recomputes ||b - A x|| at the end, after KSPReset(ksp) has released the KSP's and the PC's
// work vectors (the check then adds no memory; the KSP keeps its types and options).
SolveSummary solve(KSP ksp, Mat a, Vec b, Vec x);

// Makes PETSc's allocations (vectors, matrices, the DMDA's arrays) start each block of 2 MiB or
// more on a 2 MiB boundary and ask the kernel for transparent huge pages on it, as dcdm's own
// grid arrays do (one page fault per 2 MiB at first touch; DCDM_HUGE_PAGES=0 turns both off). Call it
// before PetscInitialize (dcdm-mpi does); `-malloc_debug` and the like replace it.
void use_huge_page_allocator();

}  // namespace dcdm::petsc
