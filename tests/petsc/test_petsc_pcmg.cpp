// PCMG at any grid size: the cell-centred interpolations of dcdm/petsc_pcmg.hpp against the
// DMDA's own (identical hierarchies where both exist) and the serial solution (where only ours
// does). Run under mpiexec with 1..4 ranks (ctest petsc_tests_np*).
#include <gtest/gtest.h>

#include "dcdm/error.hpp"
#include "dcdm/linalg.hpp"
#include "dcdm/petsc.hpp"
#include "dcdm/petsc_pcmg.hpp"
#include "dcdm/poisson.hpp"
#include "dcdm/scenes.hpp"
#include "petsc_test_util.hpp"

namespace dcdm::petsc::test {
namespace {

struct MgRun {
  KSPConvergedReason reason = KSP_CONVERGED_ITERATING;
  PetscInt iterations = 0;
  std::vector<PetscReal> history;
  bool ours = false;
};

// KSPCG (or KSPDCDM) + PCMG with `levels` levels, Galerkin coarse operators and an SVD
// coarsest solve (singular systems), to rtol 1e-10.
MgRun run_mg(PressureSystem& sys, Vec x, int levels, CellInterpolation when, const char* ksp_type) {
  ScopedOption l("-pc_mg_levels", std::to_string(levels));
  ScopedOption g("-pc_mg_galerkin", "pmat");
  ScopedOption coarse("-mg_coarse_pc_type", "svd");
  ScopedOption coarse_redundant("-mg_coarse_redundant_pc_type", "svd");
  MgRun out;
  KSP ksp = system_ksp(sys, sys.assembled(), PCMG);
  KSPSetType(ksp, ksp_type);
  KSPSetNormType(ksp, KSP_NORM_UNPRECONDITIONED);
  KSPSetTolerances(ksp, 1e-10, PETSC_DEFAULT, PETSC_DEFAULT, 500);
  KSPSetFromOptions(ksp);
  PC pc = nullptr;
  KSPGetPC(ksp, &pc);
  out.ours = use_cell_interpolation(pc, sys, when);
  out.history.resize(600);
  KSPSetResidualHistory(ksp, out.history.data(), static_cast<PetscInt>(out.history.size()), PETSC_TRUE);
  VecSet(x, 0.0);
  KSPSolve(ksp, sys.rhs(), x);
  KSPGetConvergedReason(ksp, &out.reason);
  KSPGetIterationNumber(ksp, &out.iterations);
  PetscInt n = 0;
  KSPGetResidualHistory(ksp, nullptr, &n);
  out.history.resize(static_cast<std::size_t>(n));
  KSPDestroy(&ksp);
  return out;
}

TEST(PetscPcmg, TheDmdaCoarsensOnlyHalvingOrVertexSizes) {
  EXPECT_TRUE(dmda_coarsens({128, 128, 128}, 5));
  EXPECT_TRUE(dmda_coarsens({129, 65, 33}, 4));
  EXPECT_TRUE(dmda_coarsens({40, 24, 32}, 4));
  EXPECT_FALSE(dmda_coarsens({40, 24, 32}, 5));   // 40 / 16 is not whole
  EXPECT_FALSE(dmda_coarsens({40, 29, 33}, 2));   // even and odd sizes
  EXPECT_FALSE(dmda_coarsens({37, 29, 33}, 4));   // 37 -> 19 -> 10, then no vertex size
  EXPECT_TRUE(dmda_coarsens({37, 29, 33}, 3));
}

// Where the DMDA coarsens (halving), our hierarchy is the same one: the same iterations and
// residual history (to rounding) as PETSc's own.
TEST(PetscPcmg, SameHierarchyAsTheDmdaWhereItCoarsens) {
  const Domain dom = scene("obstacles", {32, 16, 24}, 4);
  const std::vector<double> b = random_on_fluid(dom, 3);
  PressureSystem sys = PressureSystem::from_domain(PETSC_COMM_WORLD, dom, b);
  Vec x = nullptr;
  VecDuplicate(sys.rhs(), &x);
  const MgRun dmda = run_mg(sys, x, 3, CellInterpolation::WhereNeeded, KSPCG);
  const MgRun ours = run_mg(sys, x, 3, CellInterpolation::Always, KSPCG);
  VecDestroy(&x);
  EXPECT_FALSE(dmda.ours);
  EXPECT_TRUE(ours.ours);
  ASSERT_GT(dmda.reason, 0);
  ASSERT_GT(ours.reason, 0);
  EXPECT_EQ(ours.iterations, dmda.iterations);
  ASSERT_EQ(ours.history.size(), dmda.history.size());
  for (std::size_t i = 0; i < ours.history.size(); ++i)
    EXPECT_NEAR(ours.history[i], dmda.history[i], 1e-9 * dmda.history[0]) << "iteration " << i;
}

// Sizes the DMDA cannot coarsen (mixed even and odd; odd but not 2^k m + 1), open and closed
// faces, a closed region split across ranks (singular): PCMG converges with KSPCG and KSPDCDM
// to the serial solution.
TEST(PetscPcmg, AnyGridSizeConvergesToTheSerialSolution) {
  struct Case {
    std::string name;
    Domain domain;
    int levels;
  };
  std::vector<Case> cases;
  cases.push_back({"obstacles 40x29x33", scene("obstacles", {40, 29, 33}, 2), 4});
  cases.push_back({"obstacles 37x29x33", scene("obstacles", {37, 29, 33}, 5), 4});
  std::array<FaceBoundary, 6> walls{};
  Domain closed(Dims{26, 19, 15}, CellType::Fluid);
  for (int k = 0; k < 15; ++k)
    for (int j = 0; j < 19; ++j) closed.cells(13, j, k) = CellType::Solid;
  closed.cells(20, 3, 4) = CellType::Air;  // one side has air, the other is closed (singular)
  cases.push_back({"closed box split by a wall 26x19x15", closed, 3});
  cases.push_back({"speckled 21x18x17, closed pockets", speckled({21, 18, 17}, 0.3, walls, 2), 3});
  for (const Case& c : cases) {
    const std::vector<double> b = serial_random_rhs(c.domain, 9);
    const std::vector<double> expected = serial_solve(c.domain, b);
    PressureSystem sys = PressureSystem::from_domain(PETSC_COMM_WORLD, c.domain, b);
    Vec x = nullptr;
    VecDuplicate(sys.rhs(), &x);
    for (const char* type : {KSPCG, KSPDCDM}) {
      const MgRun run = run_mg(sys, x, c.levels, CellInterpolation::WhereNeeded, type);
      EXPECT_TRUE(run.ours) << c.name;
      ASSERT_GT(run.reason, 0) << c.name << " " << type << ": " << KSPConvergedReasons[run.reason];
      EXPECT_LT(run.iterations, 60) << c.name << " " << type;
      if (sys.nullspace()) MatNullSpaceRemove(sys.nullspace(), x);
      EXPECT_LE(max_difference(sys, x, expected), 1e-8 * max_abs(expected)) << c.name << " " << type;
    }
    VecDestroy(&x);
  }
}

// Too many levels for the ranks' partition: a clear error on every rank, not PETSc's.
TEST(PetscPcmg, TooManyLevelsForThePartitionIsAnInputError) {
  int size = 1;
  MPI_Comm_size(PETSC_COMM_WORLD, &size);
  const Domain dom = scene("obstacles", {21, 19, 17}, 1);
  PressureSystem sys = PressureSystem::from_domain(PETSC_COMM_WORLD, dom, random_on_fluid(dom, 1));
  ScopedOption l("-pc_mg_levels", "7");
  KSP ksp = system_ksp(sys, sys.assembled(), PCMG);
  KSPSetFromOptions(ksp);
  PC pc = nullptr;
  KSPGetPC(ksp, &pc);
  if (size == 1) {
    // One rank: 21x19x17 -> ... -> 1x1x1 fits.
    EXPECT_TRUE(use_cell_interpolation(pc, sys));
  } else {
    try {
      use_cell_interpolation(pc, sys);
      ADD_FAILURE() << "7 levels on " << size << " ranks were accepted";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("-pc_mg_levels 7"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("fewer levels"), std::string::npos) << e.what();
    }
  }
  KSPDestroy(&ksp);
}

}  // namespace
}  // namespace dcdm::petsc::test
