/* A plain PETSc program (it links PETSc only) that can use KSPDCDM without being rebuilt:
 *
 *   mpirun -np 2 ./example_petsc_ksp_dcdm -dll_append /path/to/libdcdm_petsc.so \
 *          -ksp_type dcdm -pc_type jacobi -ksp_converged_reason
 *
 * It solves the 7-point Laplacian with Dirichlet walls on a 20 x 17 x 15 DMDA for b = 1 with
 * whatever -ksp_type / -pc_type the options give, checks the true residual and prints the
 * method used. Exit 1 when the solve did not converge or the residual check fails. */
#include <petscdmda.h>
#include <petscksp.h>

static PetscErrorCode assemble(DM da, Mat a)
{
  PetscInt    xs, ys, zs, xm, ym, zm, mx, my, mz, i, j, k;
  MatStencil  row, col[7];
  PetscScalar v[7];

  PetscFunctionBeginUser;
  PetscCall(DMDAGetInfo(da, NULL, &mx, &my, &mz, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL));
  PetscCall(DMDAGetCorners(da, &xs, &ys, &zs, &xm, &ym, &zm));
  for (k = zs; k < zs + zm; k++)
    for (j = ys; j < ys + ym; j++)
      for (i = xs; i < xs + xm; i++) {
        PetscInt n = 0;
        row.i = i; row.j = j; row.k = k; row.c = 0;
        /* Neighbours beyond the grid are Dirichlet (p = 0): they only add to the diagonal. */
        if (k > 0)      { col[n] = row; col[n].k = k - 1; v[n++] = -1.0; }
        if (j > 0)      { col[n] = row; col[n].j = j - 1; v[n++] = -1.0; }
        if (i > 0)      { col[n] = row; col[n].i = i - 1; v[n++] = -1.0; }
        col[n] = row; v[n++] = 6.0;
        if (i < mx - 1) { col[n] = row; col[n].i = i + 1; v[n++] = -1.0; }
        if (j < my - 1) { col[n] = row; col[n].j = j + 1; v[n++] = -1.0; }
        if (k < mz - 1) { col[n] = row; col[n].k = k + 1; v[n++] = -1.0; }
        PetscCall(MatSetValuesStencil(a, 1, &row, n, col, v, INSERT_VALUES));
      }
  PetscCall(MatAssemblyBegin(a, MAT_FINAL_ASSEMBLY));
  PetscCall(MatAssemblyEnd(a, MAT_FINAL_ASSEMBLY));
  PetscFunctionReturn(0);
}

int main(int argc, char **argv)
{
  DM                 da;
  Mat                a;
  Vec                x, b, r;
  KSP                ksp;
  KSPType            type;
  KSPConvergedReason reason;
  PetscInt           its;
  PetscReal          rtol, bnorm, rnorm;

  PetscCall(PetscInitialize(&argc, &argv, NULL, NULL));
  PetscCall(DMDACreate3d(PETSC_COMM_WORLD, DM_BOUNDARY_NONE, DM_BOUNDARY_NONE, DM_BOUNDARY_NONE, DMDA_STENCIL_STAR,
                         20, 17, 15, PETSC_DECIDE, PETSC_DECIDE, PETSC_DECIDE, 1, 1, NULL, NULL, NULL, &da));
  PetscCall(DMSetFromOptions(da));
  PetscCall(DMSetUp(da));
  PetscCall(DMCreateMatrix(da, &a));
  PetscCall(assemble(da, a));
  PetscCall(DMCreateGlobalVector(da, &b));
  PetscCall(VecDuplicate(b, &x));
  PetscCall(VecDuplicate(b, &r));
  PetscCall(VecSet(b, 1.0));

  PetscCall(KSPCreate(PETSC_COMM_WORLD, &ksp));
  PetscCall(KSPSetOperators(ksp, a, a));
  PetscCall(KSPSetTolerances(ksp, 1e-8, PETSC_DEFAULT, PETSC_DEFAULT, 1000));
  PetscCall(KSPSetFromOptions(ksp)); /* -ksp_type dcdm works once -dll_append has loaded it */
  PetscCall(KSPSolve(ksp, b, x));

  PetscCall(KSPGetType(ksp, &type));
  PetscCall(KSPGetConvergedReason(ksp, &reason));
  PetscCall(KSPGetIterationNumber(ksp, &its));
  PetscCall(KSPGetTolerances(ksp, &rtol, NULL, NULL, NULL));
  PetscCall(MatMult(a, x, r));
  PetscCall(VecAYPX(r, -1.0, b));
  PetscCall(VecNorm(r, NORM_2, &rnorm));
  PetscCall(VecNorm(b, NORM_2, &bnorm));
  PetscCall(PetscPrintf(PETSC_COMM_WORLD, "KSP %s: %s in %" PetscInt_FMT " iterations, ||b - Ax|| / ||b|| = %.3e\n", type,
                        KSPConvergedReasons[reason], its, (double)(rnorm / bnorm)));
  /* A converged solve must have the residual it claims (the preconditioned norm of some
     methods may differ from ||b - Ax|| by the conditioning of the PC, hence the margin). */
  if (reason <= 0 || rnorm > 1e3 * rtol * bnorm) {
    PetscCall(PetscPrintf(PETSC_COMM_WORLD, "FAILED\n"));
    PetscCall(KSPDestroy(&ksp));
    PetscCall(VecDestroy(&x));
    PetscCall(VecDestroy(&b));
    PetscCall(VecDestroy(&r));
    PetscCall(MatDestroy(&a));
    PetscCall(DMDestroy(&da));
    PetscCall(PetscFinalize());
    return 1;
  }
  PetscCall(KSPDestroy(&ksp));
  PetscCall(VecDestroy(&x));
  PetscCall(VecDestroy(&b));
  PetscCall(VecDestroy(&r));
  PetscCall(MatDestroy(&a));
  PetscCall(DMDestroy(&da));
  PetscCall(PetscFinalize());
  return 0;
}
