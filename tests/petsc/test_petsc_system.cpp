// The pressure system on a DMDA against the serial library: right-hand side, operator,
// components and null space, and the solution of KSPDCDM against the serial CG's.
// Run under mpiexec with 1..4 ranks (ctest petsc_tests_np*): the grids are small and odd so
// that obstacles and closed regions cross rank boundaries.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>

#include "dcdm/linalg.hpp"
#include "dcdm/methods.hpp"
#include "dcdm/petsc.hpp"
#include "dcdm/poisson.hpp"
#include "dcdm/scenes.hpp"
#include "dcdm/system.hpp"
#include "petsc_test_util.hpp"
#include "../vm_flags.hpp"

namespace dcdm::petsc::test {
namespace {

// Each rank builds its part of the scene and draws b for its own cells: the cells (every
// ghosted cell of every rank) and b are the serial scene system's.
TEST(PetscSystem, SceneRhsMatchesSerial) {
  for (const char* name : {"obstacles", "bunny", "pool", "sphere"}) {
    SceneSpec spec;
    spec.name = name;
    spec.dims = {24, 19, 13};
    spec.seed = 5;
    PressureSystem sys = PressureSystem::from_scene(PETSC_COMM_WORLD, spec, 5);
    const PoissonSystem serial = make_scene_system(spec, RhsKind::Random, 5);
    EXPECT_EQ(sys.fluid, serial.domain.count(CellType::Fluid)) << name;
    EXPECT_EQ(sys.air, serial.domain.count(CellType::Air)) << name;
    EXPECT_EQ(sys.solid, serial.domain.count(CellType::Solid)) << name;
    const Box& x = sys.box();
    std::int64_t differing = 0;
    for (PetscInt k = x.gzs; k < x.gzs + x.gzm; ++k)
      for (PetscInt j = x.gys; j < x.gys + x.gym; ++j)
        for (PetscInt i = x.gxs; i < x.gxs + x.gxm; ++i)
          differing += sys.cell(i, j, k) != serial.domain.cells(int(i), int(j), int(k));
    EXPECT_EQ(differing, 0) << name;
    EXPECT_LE(max_difference(sys, sys.rhs(), serial.rhs), 1e-13 * max_abs(serial.rhs)) << name;
  }
}

// A x of both operators against the serial stencil on fluid cells (identity elsewhere), for
// all faces open and all walls.
TEST(PetscSystem, OperatorsMatchSerialStencil) {
  for (const bool open : {false, true}) {
    Domain dom = scene("obstacles", {24, 19, 13});
    for (auto& f : dom.faces) f = open ? FaceBoundary::Open : FaceBoundary::Wall;
    PressureSystem sys = PressureSystem::from_domain(PETSC_COMM_WORLD, dom, {});
    std::vector<double> x(static_cast<std::size_t>(dom.dims().size()));
    for (std::size_t c = 0; c < x.size(); ++c) x[c] = std::sin(0.37 * double(c)) + 0.1 * double(c % 7);
    const std::vector<double> ax = serial_apply(dom, x);

    Vec xv = nullptr, yv = nullptr;
    VecDuplicate(sys.rhs(), &xv);
    VecDuplicate(sys.rhs(), &yv);
    fill_owned(sys, x, xv);
    MatMult(sys.assembled(), xv, yv);
    EXPECT_LE(max_difference(sys, yv, ax), 1e-13) << "assembled, faces " << (open ? "open" : "walls");
    MatMult(sys.shell(), xv, yv);
    EXPECT_LE(max_difference(sys, yv, ax), 1e-13) << "shell, faces " << (open ? "open" : "walls");
    // The diagonal the Jacobi fallback and PCJACOBI read.
    MatGetDiagonal(sys.shell(), yv);
    std::vector<double> diag = operator_diagonal(dom);
    for (std::size_t c = 0; c < diag.size(); ++c)
      if (dom.cells[static_cast<std::int64_t>(c)] != CellType::Fluid) diag[c] = 1.0;
    EXPECT_EQ(max_difference(sys, yv, diag), 0.0);
    VecDestroy(&xv);
    VecDestroy(&yv);
  }
}

// The shell operator and the labelling exchange the face layers of the ranks' boxes
// themselves (no ghosted vector): with the ranks laid out along each axis in turn, every
// kind of face is exchanged, and A x and the components are still the serial ones.
TEST(PetscSystem, FaceExchangeAlongEveryAxis) {
  int size = 1;
  MPI_Comm_size(PETSC_COMM_WORLD, &size);
  const char* names[3] = {"-da_processors_x", "-da_processors_y", "-da_processors_z"};
  std::array<FaceBoundary, 6> walls{};
  for (int axis = 0; axis < 3; ++axis) {
    ScopedOption px(names[0], axis == 0 ? std::to_string(size) : "1");
    ScopedOption py(names[1], axis == 1 ? std::to_string(size) : "1");
    ScopedOption pz(names[2], axis == 2 ? std::to_string(size) : "1");
    Domain dom = scene("obstacles", {24, 19, 13});
    PressureSystem sys = PressureSystem::from_domain(PETSC_COMM_WORLD, dom, {});
    const Box& b = sys.box();
    const PetscInt extent[3] = {b.xm, b.ym, b.zm};
    const int dims[3] = {24, 19, 13};
    if (size > 1) {  // split along it
      EXPECT_LT(extent[axis], dims[axis]) << "axis " << axis;
    }
    std::vector<double> x(static_cast<std::size_t>(dom.dims().size()));
    for (std::size_t c = 0; c < x.size(); ++c) x[c] = std::cos(0.21 * double(c)) + 0.05 * double(c % 11);
    const std::vector<double> ax = serial_apply(dom, x);
    Vec xv = nullptr, yv = nullptr;
    VecDuplicate(sys.rhs(), &xv);
    VecDuplicate(sys.rhs(), &yv);
    fill_owned(sys, x, xv);
    MatMult(sys.shell(), xv, yv);
    EXPECT_LE(max_difference(sys, yv, ax), 1e-13) << "axis " << axis;
    VecDestroy(&xv);
    VecDestroy(&yv);
    const Domain sp = speckled({24, 19, 13}, 0.65, walls, 1);
    const PressureSystem labelled = PressureSystem::from_domain(PETSC_COMM_WORLD, sp, {});
    const FluidComponents fc = fluid_components(sp);
    EXPECT_EQ(labelled.components, fc.count()) << "axis " << axis;
    EXPECT_EQ(labelled.singular_components, fc.singular_count()) << "axis " << axis;
  }
}

// The distributed labelling against fluid_components: the same components, the same
// singular ones, each cell labelled with its component's lowest cell index; the null space
// annihilated by A. Cases: many small closed components (function null space, > 32), one
// closed box crossing every rank boundary, components touching an open face.
TEST(PetscSystem, ComponentsMatchSerial) {
  std::array<FaceBoundary, 6> walls{};
  std::array<FaceBoundary, 6> open_top{};
  open_top[5] = FaceBoundary::Open;
  const std::vector<Domain> domains = {speckled({24, 19, 13}, 0.65, walls, 1), speckled({17, 17, 17}, 0.3, open_top, 2),
                                       Domain({15, 16, 17}, CellType::Fluid)};
  for (const Domain& dom : domains) {
    PressureSystem sys = PressureSystem::from_domain(PETSC_COMM_WORLD, dom, {});
    const FluidComponents fc = fluid_components(dom);
    if (&dom == &domains[0]) {  // the null space without vectors (more than 32 singular components)
      EXPECT_GT(fc.singular_count(), 32) << fc.count() << " components";
    }
    EXPECT_EQ(sys.components, fc.count());
    EXPECT_EQ(sys.singular_components, fc.singular_count());
    // Without a singular component the labels are released after set-up (the counts above
    // still come from them).
    if (fc.singular_count() == 0) {
      EXPECT_TRUE(sys.labels().empty());
      continue;
    }
    const Box& b = sys.box();
    double wrong = 0;
    std::size_t n = 0;
    for (PetscInt k = b.zs; k < b.zs + b.zm; ++k)
      for (PetscInt j = b.ys; j < b.ys + b.ym; ++j)
        for (PetscInt i = b.xs; i < b.xs + b.xm; ++i, ++n) {
          const int id = fc.label(int(i), int(j), int(k));
          const std::int64_t expected = id < 0 ? -1 : fc.first_cell[static_cast<std::size_t>(id)];
          wrong += sys.labels()[n] != expected;
        }
    double total_wrong = 0;
    MPI_Allreduce(&wrong, &total_wrong, 1, MPI_DOUBLE, MPI_SUM, PETSC_COMM_WORLD);
    EXPECT_EQ(total_wrong, 0.0) << dom.dims().str();
    ASSERT_EQ(sys.nullspace() != nullptr, fc.singular_count() > 0);
    if (sys.nullspace()) {
      // A (N v) = 0 for any v: the projected vector lies in the range's complement of the
      // null space... i.e. A applied to (v - P v) equals A v.
      Vec v = nullptr, pv = nullptr, av = nullptr, apv = nullptr;
      VecDuplicate(sys.rhs(), &v);
      VecSetRandom(v, nullptr);
      VecDuplicate(v, &pv);
      VecDuplicate(v, &av);
      VecDuplicate(v, &apv);
      VecCopy(v, pv);
      MatNullSpaceRemove(sys.nullspace(), pv);
      MatMult(sys.assembled(), v, av);
      MatMult(sys.assembled(), pv, apv);
      VecAXPY(apv, -1.0, av);
      PetscReal diff = 0, ref = 0;
      VecNorm(apv, NORM_INFINITY, &diff);
      VecNorm(av, NORM_INFINITY, &ref);
      EXPECT_LE(diff, 1e-12 * ref);
      // The projection leaves zero mean on every singular component: the serial projector
      // then changes nothing.
      std::vector<double> full(static_cast<std::size_t>(dom.dims().size()), 0.0);
      const PetscScalar* a = nullptr;
      VecGetArrayRead(pv, &a);
      n = 0;
      std::vector<double> mine(full.size(), 0.0);
      for (PetscInt k = b.zs; k < b.zs + b.zm; ++k)
        for (PetscInt j = b.ys; j < b.ys + b.ym; ++j)
          for (PetscInt i = b.xs; i < b.xs + b.xm; ++i, ++n)
            if (dom.cells(int(i), int(j), int(k)) == CellType::Fluid)
              mine[static_cast<std::size_t>(dom.dims().index(int(i), int(j), int(k)))] = a[n];
      VecRestoreArrayRead(pv, &a);
      MPI_Allreduce(mine.data(), full.data(), static_cast<int>(full.size()), MPI_DOUBLE, MPI_SUM, PETSC_COMM_WORLD);
      const std::vector<double> before = full;
      RangeProjector{dom}(full);
      double moved = 0;
      for (std::size_t c = 0; c < full.size(); ++c) moved = std::max(moved, std::abs(full[c] - before[c]));
      EXPECT_LE(moved, 1e-12);
      VecDestroy(&v);
      VecDestroy(&pv);
      VecDestroy(&av);
      VecDestroy(&apv);
    }
  }
}

struct AgreementCase {
  std::string name;
  Domain domain;
  std::string pc;
  std::string op;  // assembled | shell
};

// KSPDCDM (k = 2) on the distributed system reaches the serial CG solution to 1e-8 relative.
TEST(PetscSystem, SolutionMatchesSerial) {
  std::array<FaceBoundary, 6> walls{};
  std::array<FaceBoundary, 6> open_sides{};
  open_sides[0] = open_sides[3] = FaceBoundary::Open;
  Domain closed_split(Dims{24, 19, 13}, CellType::Fluid);  // two closed halves, one with air
  for (int k = 0; k < 13; ++k)
    for (int j = 0; j < 19; ++j) closed_split.cells(11, j, k) = CellType::Solid;
  closed_split.cells(20, 3, 4) = CellType::Air;
  Domain obst_open = scene("obstacles", {24, 19, 13}, 7);
  obst_open.faces = open_sides;
  std::vector<AgreementCase> cases;
  cases.push_back({"obstacles 24x19x13 jacobi", scene("obstacles", {24, 19, 13}), "jacobi", "assembled"});
  cases.push_back({"obstacles 24x19x13 open sides, shell", obst_open, "jacobi", "shell"});
  cases.push_back({"obstacles 17^3 mg", scene("obstacles", {17, 17, 17}), "mg", "assembled"});
  cases.push_back({"closed box split by a wall", closed_split, "jacobi", "assembled"});
  // PCMG on a DMDA coarsens odd sizes (2^k m + 1, trilinear) or even ones (halving): not both.
  Domain closed_odd(Dims{17, 13, 9}, CellType::Fluid);
  for (int k = 0; k < 9; ++k)
    for (int j = 0; j < 13; ++j) closed_odd.cells(8, j, k) = CellType::Solid;
  closed_odd.cells(14, 3, 4) = CellType::Air;
  cases.push_back({"closed box split by a wall 17x13x9, mg", closed_odd, "mg", "assembled"});
  cases.push_back({"speckled closed 24x19x13", speckled({24, 19, 13}, 0.65, walls, 1), "jacobi", "shell"});
  for (const auto& c : cases) {
    const std::vector<double> b = serial_random_rhs(c.domain, 11);
    const std::vector<double> expected = serial_solve(c.domain, b);
    PressureSystem sys = PressureSystem::from_domain(PETSC_COMM_WORLD, c.domain, b);
    Vec x = nullptr;
    VecDuplicate(sys.rhs(), &x);
    Mat a = c.op == "shell" ? sys.shell() : sys.assembled();
    ScopedOption levels("-pc_mg_levels", c.pc == "mg" ? "3" : "");
    ScopedOption galerkin("-pc_mg_galerkin", c.pc == "mg" ? "pmat" : "");
    // The coarsest level of a singular system is singular too: solve it with SVD.
    ScopedOption coarse("-mg_coarse_pc_type", c.pc == "mg" ? "svd" : "");
    ScopedOption coarse_redundant("-mg_coarse_redundant_pc_type", c.pc == "mg" ? "svd" : "");
    const KspRun run = run_ksp(sys, a, x, [&](KSP ksp) {
      KSPSetType(ksp, KSPDCDM);
      KSPSetTolerances(ksp, 1e-12, PETSC_DEFAULT, PETSC_DEFAULT, 5000);
      PC pc = nullptr;
      KSPGetPC(ksp, &pc);
      PCSetType(pc, c.pc.c_str());
    });
    EXPECT_GT(run.reason, 0) << c.name << ": " << KSPConvergedReasons[run.reason];
    if (sys.nullspace()) MatNullSpaceRemove(sys.nullspace(), x);
    EXPECT_LE(max_difference(sys, x, expected), 1e-8 * max_abs(expected)) << c.name;
    VecDestroy(&x);
  }
}

}  // namespace
}  // namespace dcdm::petsc::test

namespace dcdm::petsc::test {
namespace {

// PETSc's allocations go through use_huge_page_allocator (test_petsc_main.cpp): a large
// vector's array starts on a 2 MiB boundary and asks for huge pages, on every rank, and
// PetscRealloc keeps the contents and PETSc's alignment.
TEST(PetscSystem, PetscAllocationsAskForHugePagesAndReallocKeepsContents) {
  const char* off = std::getenv("DCDM_HUGE_PAGES");
  const bool advised = dcdm::test::huge_pages_offered() && !(off && std::string(off) == "0");
  Vec v = nullptr;
  constexpr PetscInt kLocal = PetscInt(3) << 20;  // 24 MiB of doubles a rank
  ASSERT_EQ(VecCreateMPI(PETSC_COMM_WORLD, kLocal, PETSC_DETERMINE, &v), 0);
  ASSERT_EQ(VecSet(v, 1.0), 0);
  const PetscScalar* a = nullptr;
  ASSERT_EQ(VecGetArrayRead(v, &a), 0);
  constexpr std::uintptr_t kHuge = std::uintptr_t(2) << 20;
  // The array starts on a huge page and its first byte is advised (where advice is on).
  const auto begin = reinterpret_cast<std::uintptr_t>(a);
  const bool hg = begin % kHuge == 0 && dcdm::test::vm_flags_at(begin).find(" hg ") != std::string::npos;
  ASSERT_EQ(VecRestoreArrayRead(v, &a), 0);
  ASSERT_EQ(VecDestroy(&v), 0);
  // Every rank's verdict, reduced (1 where this rank's differs from the expected one).
  EXPECT_EQ(allreduce_max(hg == advised ? 0.0 : 1.0), 0.0) << "huge-page advice " << hg << ", expected " << advised;

  PetscInt* p = nullptr;
  ASSERT_EQ(PetscMalloc1(1000, &p), 0);
  for (PetscInt i = 0; i < 1000; ++i) p[i] = 3 * i + 1;
  ASSERT_EQ(PetscRealloc(sizeof(PetscInt) * 5000000, &p), 0);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % PETSC_MEMALIGN, 0u);
  double wrong = 0;
  for (PetscInt i = 0; i < 1000; ++i) wrong += p[i] != 3 * i + 1;
  p[4999999] = 7;
  ASSERT_EQ(PetscRealloc(sizeof(PetscInt) * 10, &p), 0);
  for (PetscInt i = 0; i < 10; ++i) wrong += p[i] != 3 * i + 1;
  ASSERT_EQ(PetscFree(p), 0);
  EXPECT_EQ(allreduce_max(wrong), 0.0);
}

}  // namespace
}  // namespace dcdm::petsc::test
