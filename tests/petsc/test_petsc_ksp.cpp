// KSPDCDM as a PETSc Krylov method: k = 1 is PCG (iteration counts of KSPCG +-1), the
// Jacobi fallback replaces failed PC directions (and reproduces the Jacobi-generated
// iteration when every PC direction fails), breakdowns stop with named reasons, bad
// options are errors.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include <fmt/format.h>

#include "dcdm/petsc.hpp"
#include "dcdm/scenes.hpp"
#include "petsc_test_util.hpp"

namespace dcdm::petsc::test {
namespace {

PressureSystem obstacles_system(Dims d) {
  SceneSpec spec;
  spec.name = "obstacles";
  spec.dims = d;
  spec.seed = 4;
  return PressureSystem::from_scene(PETSC_COMM_WORLD, spec, 4);
}

void set_pc(KSP ksp, const char* type) {
  PC pc = nullptr;
  KSPGetPC(ksp, &pc);
  PCSetType(pc, type);
}

TEST(PetscKsp, K1MatchesCGIterations) {
  struct Case {
    Dims dims;
    const char* pc;
  };
  for (const Case& c : {Case{{24, 19, 13}, PCJACOBI}, Case{{17, 17, 17}, PCMG}, Case{{17, 17, 17}, PCNONE}}) {
    PressureSystem sys = obstacles_system(c.dims);
    Vec x = nullptr;
    VecDuplicate(sys.rhs(), &x);
    const bool mg = std::string(c.pc) == PCMG;
    ScopedOption levels("-pc_mg_levels", mg ? "3" : "");
    ScopedOption galerkin("-pc_mg_galerkin", mg ? "pmat" : "");
    const auto common = [&](KSP ksp) {
      KSPSetTolerances(ksp, 1e-10, PETSC_DEFAULT, PETSC_DEFAULT, 2000);
      set_pc(ksp, c.pc);
    };
    const KspRun cg = run_ksp(sys, sys.assembled(), x, [&](KSP ksp) {
      KSPSetType(ksp, KSPCG);
      KSPSetNormType(ksp, KSP_NORM_UNPRECONDITIONED);  // ||b - Ax||, as KSPDCDM
      common(ksp);
    });
    const KspRun dcdm = run_ksp(sys, sys.assembled(), x, [&](KSP ksp) {
      KSPSetType(ksp, KSPDCDM);
      KSPDCDMSetK(ksp, 1);
      common(ksp);
    });
    EXPECT_GT(cg.reason, 0) << c.pc;
    EXPECT_GT(dcdm.reason, 0) << c.pc;
    EXPECT_GE(cg.iterations, 5) << c.pc;  // a solve with something to compare
    EXPECT_LE(std::abs(dcdm.iterations - cg.iterations), 1)
        << c.pc << ": KSPDCDM k=1 " << dcdm.iterations << " vs KSPCG " << cg.iterations;
    EXPECT_EQ(dcdm.stats.fallback_directions, 0) << c.pc;
    EXPECT_EQ(dcdm.stats.generator_directions, dcdm.iterations) << c.pc;
    // The same iterates to rounding: the residual norms of the first iterations agree.
    ASSERT_GE(dcdm.history.size(), 6u);
    ASSERT_GE(cg.history.size(), 6u);
    for (std::size_t i = 0; i < 6; ++i)
      EXPECT_NEAR(dcdm.history[i], cg.history[i], 1e-6 * cg.history[i]) << c.pc << " iteration " << i;
    VecDestroy(&x);
  }
}

// The pressure system's shell offers KSPDCDM a mat-vec that returns its dot products
// (DCDMMatMultDots_C): y bit for bit MatMult's, the dots those of VecDot to rounding, with the
// ranks laid out by PETSc and along each axis. KSPDCDM with the shell (the fused mat-vec and
// step) and with the assembled operator (MatMult, VecMDot) takes the same iterations.
TEST(PetscKsp, FusedMatMultDotsAndStepsMatchSeparateCalls) {
  using MatMultDots = PetscErrorCode (*)(Mat, Vec, Vec, PetscInt, const Vec[], PetscScalar[]);
  for (int layout = -1; layout < 3; ++layout) {  // -1: PETSc's choice
    const RankLayout ranks_along(layout);
    PressureSystem sys = obstacles_system({23, 19, 14});
    Mat shell = sys.shell();
    MatMultDots fused = nullptr;
    PetscObjectQueryFunction((PetscObject)shell, "DCDMMatMultDots_C", &fused);
    ASSERT_NE(fused, nullptr);
    Vec x = nullptr, y = nullptr, y_fused = nullptr, w = nullptr;
    VecDuplicate(sys.rhs(), &x);
    VecDuplicate(sys.rhs(), &y);
    VecDuplicate(sys.rhs(), &y_fused);
    VecDuplicate(sys.rhs(), &w);
    PetscInt lo = 0, hi = 0;
    VecGetOwnershipRange(x, &lo, &hi);
    for (PetscInt i = lo; i < hi; ++i) {
      VecSetValue(x, i, std::cos(0.37 * double(i)) + 0.1, INSERT_VALUES);
      VecSetValue(w, i, std::sin(0.11 * double(i)), INSERT_VALUES);
    }
    VecAssemblyBegin(x);
    VecAssemblyEnd(x);
    VecAssemblyBegin(w);
    VecAssemblyEnd(w);
    MatMult(shell, x, y);
    const Vec with[2] = {w, x};
    PetscScalar local[3], dots[3];
    fused(shell, x, y_fused, 2, with, local);
    MPI_Allreduce(local, dots, 3, MPI_DOUBLE, MPI_SUM, PETSC_COMM_WORLD);
    PetscBool same = PETSC_FALSE;
    VecEqual(y, y_fused, &same);
    EXPECT_TRUE(same) << "layout " << layout;
    PetscScalar xy = 0, xw = 0, xx = 0;
    VecDot(y, x, &xy);
    VecDot(w, x, &xw);
    VecDot(x, x, &xx);
    EXPECT_NEAR(dots[0], xy, 1e-12 * std::abs(xx)) << "layout " << layout;
    EXPECT_NEAR(dots[1], xw, 1e-12 * std::abs(xx)) << "layout " << layout;
    EXPECT_NEAR(dots[2], xx, 1e-12 * std::abs(xx)) << "layout " << layout;

    VecSet(x, 0.0);
    const auto dcdm = [&](Mat a) {
      return run_ksp(sys, a, x, [&](KSP ksp) {
        KSPSetType(ksp, KSPDCDM);
        KSPDCDMSetK(ksp, 2);
        KSPSetTolerances(ksp, 1e-10, PETSC_DEFAULT, PETSC_DEFAULT, 2000);
        set_pc(ksp, PCJACOBI);
      });
    };
    const KspRun with_shell = dcdm(shell), with_matrix = dcdm(sys.assembled());
    EXPECT_GT(with_shell.reason, 0) << "layout " << layout;
    EXPECT_GE(with_matrix.iterations, 20) << "layout " << layout;
    EXPECT_LE(std::abs(with_shell.iterations - with_matrix.iterations), 1) << "layout " << layout;
    for (std::size_t i = 0; i < 10 && i < with_shell.history.size() && i < with_matrix.history.size(); ++i)
      EXPECT_NEAR(with_shell.history[i], with_matrix.history[i], 1e-9 * with_matrix.history[0]) << "iteration " << i;
    for (Vec* v : {&x, &y, &y_fused, &w}) VecDestroy(v);
  }
}

// The operator's float mat-vec (KSPDCDM's float vectors): A x from a float x is the double
// product of the widened x rounded to float, bit for bit, and its dots equal the double ones
// to rounding, on the unit and the weighted operator, with the ranks laid out along each axis.
TEST(PetscKsp, FloatMatVecIsTheDoubleProductRounded) {
  for (int layout = -1; layout < 3; ++layout) {  // -1: PETSc's choice
    const RankLayout ranks_along(layout);
    for (const char* scene_name : {"obstacles", "liquid"}) {
      SceneSpec spec;
      spec.name = scene_name;
      spec.dims = {23, 19, 14};
      spec.seed = 4;
      PressureSystem sys = PressureSystem::from_scene(PETSC_COMM_WORLD, spec, 4);
      const std::string what = fmt::format("{}, layout {}", scene_name, layout);
      Mat shell = sys.shell();
      DCDMMatMultDotsSingle mult = nullptr;
      PetscObjectQueryFunction((PetscObject)shell, "DCDMMatMultDotsSingle_C", &mult);
      ASSERT_NE(mult, nullptr);
      Vec xd = nullptr, yd = nullptr, r = nullptr;
      VecDuplicate(sys.rhs(), &xd);
      VecDuplicate(sys.rhs(), &yd);
      VecDuplicate(sys.rhs(), &r);
      PetscInt lo = 0, hi = 0;
      VecGetOwnershipRange(xd, &lo, &hi);
      const PetscInt n = hi - lo;
      std::vector<float> x(static_cast<std::size_t>(n)), y(static_cast<std::size_t>(n));
      for (PetscInt i = lo; i < hi; ++i) {
        x[static_cast<std::size_t>(i - lo)] = static_cast<float>(std::cos(0.37 * double(i)) + 0.1);
        VecSetValue(xd, i, x[static_cast<std::size_t>(i - lo)], INSERT_VALUES);  // widened exactly
        VecSetValue(r, i, std::sin(0.11 * double(i)), INSERT_VALUES);
      }
      for (Vec v : {xd, r}) {
        VecAssemblyBegin(v);
        VecAssemblyEnd(v);
      }
      MatMult(shell, xd, yd);
      PetscScalar local[3], dots[3];
      ASSERT_EQ(mult(shell, x.data(), y.data(), r, local), 0);
      MPI_Allreduce(local, dots, 3, MPI_DOUBLE, MPI_SUM, PETSC_COMM_WORLD);
      const PetscScalar* yv = nullptr;
      VecGetArrayRead(yd, &yv);
      std::int64_t differ = 0;
      for (PetscInt i = 0; i < n; ++i) differ += y[static_cast<std::size_t>(i)] != static_cast<float>(yv[i]);
      VecRestoreArrayRead(yd, &yv);
      std::int64_t all_differ = 0;
      MPI_Allreduce(&differ, &all_differ, 1, MPI_INT64_T, MPI_SUM, PETSC_COMM_WORLD);
      EXPECT_EQ(all_differ, 0) << what;
      PetscScalar xax = 0, xr = 0, xx = 0;
      VecDot(yd, xd, &xax);
      VecDot(r, xd, &xr);
      VecDot(xd, xd, &xx);
      EXPECT_GT(xax, 0.0) << what;
      EXPECT_NEAR(dots[0], xax, 1e-12 * xx) << what;
      EXPECT_NEAR(dots[1], xr, 1e-12 * xx) << what;
      EXPECT_NEAR(dots[2], xx, 1e-12 * xx) << what;
      for (Vec* v : {&xd, &yd, &r}) VecDestroy(v);
    }
  }
}

// -ksp_dcdm_vectors auto: float at rtol 1e-6, double at 1e-8 (the serial rule); float only on
// the lean path and with an operator offering the float mat-vec (double vectors otherwise, the
// same solve). Float with a PC that writes double (Jacobi) converges on b - A x even at a
// target below the float drift, going on from b - A x where the updated residual misled.
TEST(PetscKsp, FloatVectorsWhereChosenAndPossible) {
  PressureSystem sys = obstacles_system({21, 18, 15});
  Vec x = nullptr, r = nullptr;
  VecDuplicate(sys.rhs(), &x);
  VecDuplicate(sys.rhs(), &r);
  PetscReal bnorm = 0;
  VecNorm(sys.rhs(), NORM_2, &bnorm);
  const auto run = [&](Mat a, const char* vectors, double rtol, PetscInt k, KSPDCDMFallback fallback) {
    ScopedOption v("-ksp_dcdm_vectors", vectors);
    const KspRun out = run_ksp(sys, a, x, [&](KSP ksp) {
      KSPSetType(ksp, KSPDCDM);
      KSPDCDMSetK(ksp, k);
      KSPDCDMSetFallback(ksp, fallback);
      KSPSetTolerances(ksp, rtol, 0.0, PETSC_DEFAULT, 3000);
      set_pc(ksp, PCJACOBI);
    });
    EXPECT_GT(out.reason, 0) << vectors << " rtol " << rtol << ": " << KSPConvergedReasons[out.reason];
    MatMult(sys.assembled(), x, r);
    VecAYPX(r, -1.0, sys.rhs());
    PetscReal rnorm = 0;
    VecNorm(r, NORM_2, &rnorm);
    EXPECT_LE(rnorm, rtol * bnorm) << vectors << " rtol " << rtol;
    return out;
  };
  Mat shell = sys.shell();
  EXPECT_TRUE(run(shell, "auto", 1e-6, 1, KSPDCDM_FALLBACK_FAILURES).stats.single_precision_vectors);
  EXPECT_FALSE(run(shell, "auto", 1e-8, 1, KSPDCDM_FALLBACK_FAILURES).stats.single_precision_vectors);
  const KspRun dbl = run(shell, "double", 1e-6, 2, KSPDCDM_FALLBACK_FAILURES);
  const KspRun flt = run(shell, "float", 1e-6, 2, KSPDCDM_FALLBACK_FAILURES);
  EXPECT_TRUE(flt.stats.single_precision_vectors);
  EXPECT_LE(std::abs(int(flt.iterations) - int(dbl.iterations)), 1) << flt.iterations << " vs " << dbl.iterations;
  // Not offered: an assembled matrix, the best mode (not lean), k = 0 (no kept pair).
  EXPECT_FALSE(run(sys.assembled(), "float", 1e-6, 1, KSPDCDM_FALLBACK_FAILURES).stats.single_precision_vectors);
  EXPECT_FALSE(run(shell, "float", 1e-6, 1, KSPDCDM_FALLBACK_BEST).stats.single_precision_vectors);
  EXPECT_FALSE(run(shell, "float", 1e-3, 0, KSPDCDM_FALLBACK_FAILURES).stats.single_precision_vectors);
  const KspRun tight = run(shell, "float", 1e-11, 2, KSPDCDM_FALLBACK_FAILURES);
  EXPECT_TRUE(tight.stats.single_precision_vectors);
  EXPECT_GE(tight.stats.residual_replacements, 1);
  EXPECT_EQ(dbl.stats.residual_replacements, 0);
  VecDestroy(&x);
  VecDestroy(&r);
}

// A PC whose every direction is NaN, or zero.
PetscErrorCode nan_pc(PC, Vec, Vec y) {
  PetscFunctionBeginUser;
  PetscCall(VecSet(y, std::numeric_limits<double>::quiet_NaN()));
  PetscFunctionReturn(0);
}
PetscErrorCode zero_pc(PC, Vec, Vec y) {
  PetscFunctionBeginUser;
  PetscCall(VecSet(y, 0.0));
  PetscFunctionReturn(0);
}

void set_shell_pc(KSP ksp, PetscErrorCode (*apply)(PC, Vec, Vec)) {
  PC pc = nullptr;
  KSPGetPC(ksp, &pc);
  PCSetType(pc, PCSHELL);
  PCShellSetApply(pc, apply);
}

TEST(PetscKsp, FallbackReplacesFailedDirections) {
  PressureSystem sys = obstacles_system({24, 19, 13});
  Vec x = nullptr;
  VecDuplicate(sys.rhs(), &x);
  const auto with = [&](auto pc, KSPDCDMFallback f) {
    return run_ksp(sys, sys.assembled(), x, [&](KSP ksp) {
      KSPSetType(ksp, KSPDCDM);
      KSPDCDMSetFallback(ksp, f);
      KSPSetTolerances(ksp, 1e-8, PETSC_DEFAULT, PETSC_DEFAULT, 2000);
      pc(ksp);
    });
  };
  const KspRun jacobi = with([](KSP ksp) { set_pc(ksp, PCJACOBI); }, KSPDCDM_FALLBACK_FAILURES);
  ASSERT_GT(jacobi.reason, 0);
  for (auto* apply : {nan_pc, zero_pc}) {
    const bool nan = apply == nan_pc;
    // Every PC direction fails and the Jacobi direction replaces it: the PCJACOBI iteration.
    const KspRun failures = with([&](KSP ksp) { set_shell_pc(ksp, apply); }, KSPDCDM_FALLBACK_FAILURES);
    EXPECT_GT(failures.reason, 0) << (nan ? "NaN" : "zero");
    EXPECT_EQ(failures.iterations, jacobi.iterations) << (nan ? "NaN" : "zero");
    EXPECT_EQ(failures.stats.fallback_directions, failures.iterations);
    EXPECT_EQ(nan ? failures.stats.fallback_nan : failures.stats.fallback_vanished, failures.iterations);
    // Without the fallback the first direction stops the solve with a named reason.
    const KspRun off = with([&](KSP ksp) { set_shell_pc(ksp, apply); }, KSPDCDM_FALLBACK_OFF);
    EXPECT_EQ(off.reason, nan ? KSP_DIVERGED_NANORINF : KSP_DIVERGED_BREAKDOWN) << KSPConvergedReasons[off.reason];
    EXPECT_EQ(off.iterations, 0);
  }
  // best: a PC of plain residuals (PCNONE) loses to Jacobi on some iterations and is replaced.
  const KspRun best = with([](KSP ksp) { set_pc(ksp, PCNONE); }, KSPDCDM_FALLBACK_BEST);
  EXPECT_GT(best.reason, 0);
  EXPECT_GT(best.stats.fallback_weak, 0);
  EXPECT_EQ(best.stats.fallback_weak + best.stats.generator_directions, best.iterations);
  VecDestroy(&x);
}

// A PC that gives the Jacobi direction on odd applications and repeats its last one on even
// applications: with k = 1 the repeat is the kept direction itself, which vanishes after
// A-orthogonalisation, and only once its mat-vec has overwritten the kept pair's image buffer.
struct ReplayPc {
  Vec inverse_diagonal = nullptr, last = nullptr;
  int applications = 0;
};
PetscErrorCode replay_pc(PC pc, Vec r, Vec y) {
  PetscFunctionBeginUser;
  void* raw = nullptr;
  PetscCall(PCShellGetContext(pc, &raw));
  auto* c = static_cast<ReplayPc*>(raw);
  if (c->applications++ % 2 == 0) PetscCall(VecPointwiseMult(c->last, c->inverse_diagonal, r));
  PetscCall(VecCopy(c->last, y));
  PetscFunctionReturn(0);
}

// The Jacobi fallback after such a direction is A-orthogonalised against the kept direction
// with its true image (made again by one more mat-vec): every iteration takes a Jacobi-PCG
// direction, so the solve is the PCJACOBI one, residual for residual.
TEST(PetscKsp, FallbackAfterConsumedImageIsJacobiPcg) {
  PressureSystem sys = obstacles_system({24, 19, 13});
  Mat a = sys.assembled();
  Vec x = nullptr;
  VecDuplicate(sys.rhs(), &x);
  ReplayPc ctx;
  VecDuplicate(sys.rhs(), &ctx.inverse_diagonal);
  VecDuplicate(sys.rhs(), &ctx.last);
  MatGetDiagonal(a, ctx.inverse_diagonal);
  VecReciprocal(ctx.inverse_diagonal);
  const auto common = [&](KSP ksp) {
    KSPSetType(ksp, KSPDCDM);
    KSPDCDMSetK(ksp, 1);
    KSPDCDMSetFallback(ksp, KSPDCDM_FALLBACK_FAILURES);
    KSPSetTolerances(ksp, 1e-8, PETSC_DEFAULT, PETSC_DEFAULT, 2000);
  };
  const KspRun jacobi = run_ksp(sys, a, x, [&](KSP ksp) {
    common(ksp);
    set_pc(ksp, PCJACOBI);
  });
  const KspRun replay = run_ksp(sys, a, x, [&](KSP ksp) {
    common(ksp);
    PC pc = nullptr;
    KSPGetPC(ksp, &pc);
    PCSetType(pc, PCSHELL);
    PCShellSetContext(pc, &ctx);
    PCShellSetApply(pc, replay_pc);
  });
  ASSERT_GT(jacobi.reason, 0);
  EXPECT_GT(replay.reason, 0);
  EXPECT_GE(jacobi.iterations, 10);
  EXPECT_EQ(replay.iterations, jacobi.iterations);
  // Every even application vanished and was replaced (the stats count the other failures too).
  EXPECT_EQ(replay.stats.fallback_vanished, replay.iterations / 2);
  EXPECT_EQ(replay.stats.fallback_directions, replay.iterations / 2);
  ASSERT_EQ(replay.history.size(), jacobi.history.size());
  for (std::size_t i = 0; i < jacobi.history.size(); ++i)
    EXPECT_NEAR(replay.history[i], jacobi.history[i], 1e-6 * jacobi.history[i]) << "iteration " << i;
  VecDestroy(&ctx.inverse_diagonal);
  VecDestroy(&ctx.last);
  VecDestroy(&x);
}

// An indefinite operator: d.Ad < 0 for the PC's direction and for the Jacobi one.
TEST(PetscKsp, IndefiniteMatrixIsNamed) {
  Mat a = nullptr;
  const PetscInt n = 40;
  MatCreateAIJ(PETSC_COMM_WORLD, PETSC_DECIDE, PETSC_DECIDE, n, n, 1, nullptr, 0, nullptr, &a);
  PetscInt lo = 0, hi = 0;
  MatGetOwnershipRange(a, &lo, &hi);
  for (PetscInt i = lo; i < hi; ++i) MatSetValue(a, i, i, -1.0 - double(i), INSERT_VALUES);
  MatAssemblyBegin(a, MAT_FINAL_ASSEMBLY);
  MatAssemblyEnd(a, MAT_FINAL_ASSEMBLY);
  Vec b = nullptr, x = nullptr;
  MatCreateVecs(a, &x, &b);
  VecSet(b, 1.0);
  for (const KSPDCDMFallback f : {KSPDCDM_FALLBACK_FAILURES, KSPDCDM_FALLBACK_OFF}) {
    KSP ksp = nullptr;
    KSPCreate(PETSC_COMM_WORLD, &ksp);
    KSPSetOperators(ksp, a, a);
    KSPSetType(ksp, KSPDCDM);
    KSPDCDMSetFallback(ksp, f);
    set_pc(ksp, PCNONE);
    KSPSolve(ksp, b, x);
    KSPConvergedReason reason;
    KSPGetConvergedReason(ksp, &reason);
    EXPECT_EQ(reason, KSP_DIVERGED_INDEFINITE_MAT) << KSPConvergedReasons[reason];
    KSPDestroy(&ksp);
  }
  VecDestroy(&b);
  VecDestroy(&x);
  MatDestroy(&a);
}

// Bad option values are errors (PETSc's, naming the option), on every rank.
TEST(PetscKsp, BadOptionsAreErrors) {
  PetscPushErrorHandler(PetscReturnErrorHandler, nullptr);
  for (const auto& [name, value] : std::vector<std::pair<std::string, std::string>>{
           {"-ksp_dcdm_k", "65"}, {"-ksp_dcdm_k", "-1"}, {"-ksp_dcdm_fallback", "sometimes"},
           {"-ksp_dcdm_vectors", "half"}}) {
    ScopedOption opt(name, value);
    KSP ksp = nullptr;
    KSPCreate(PETSC_COMM_WORLD, &ksp);
    KSPSetType(ksp, KSPDCDM);
    const PetscErrorCode code = KSPSetFromOptions(ksp);
    EXPECT_NE(code, 0) << name << " " << value;
    KSPDestroy(&ksp);
  }
  PetscPopErrorHandler();
  // Good values are taken (KSPView shows them).
  ScopedOption opt("-ksp_dcdm_k", "5");
  ScopedOption fb("-ksp_dcdm_fallback", "off");
  ScopedOption vectors("-ksp_dcdm_vectors", "float");
  KSP ksp = nullptr;
  KSPCreate(PETSC_COMM_WORLD, &ksp);
  KSPSetType(ksp, KSPDCDM);
  EXPECT_EQ(KSPSetFromOptions(ksp), 0);
  set_pc(ksp, PCJACOBI);  // KSPView views the PC too, which needs a type
  char text[512] = {};
  PetscViewer viewer = nullptr;
  PetscViewerStringOpen(PETSC_COMM_SELF, text, sizeof text, &viewer);
  KSPView(ksp, viewer);
  PetscViewerDestroy(&viewer);
  const std::string shown = text;
  EXPECT_NE(shown.find("k=5 fallback off vectors float"), std::string::npos) << shown;
  KSPDestroy(&ksp);
}

}  // namespace
}  // namespace dcdm::petsc::test
