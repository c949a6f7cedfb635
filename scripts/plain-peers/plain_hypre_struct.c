// A plain program calling hypre's Struct interface the way a hypre user would: PFMG-preconditioned
// PCG on the coefficients that to_coef7.py writes, each MPI rank a slab of z-planes; prints the
// iterations and the assembly, set-up and solve seconds (MPI_Wtime). The reference that
// dcdm's hypre-pfmg peer is checked against (docs/perf-solvers.md).
//
//   mpicc -O2 -I/usr/include/hypre plain_hypre_struct.c -o plain_hypre_struct -lHYPRE -lm
//   [mpirun -np R] ./plain_hypre_struct FOLDER N [skip relax symmetric two-norm]
//
// Defaults: skip 0, relax 2 (red/black GS, symmetric), non-symmetric storage (symmetric = 1 is
// what dcdm uses), two-norm 1; rtol 1e-6, RAP 0, V(1,1), the residual recomputed at the end.
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <HYPRE_struct_ls.h>
#include <HYPRE_krylov.h>
int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank, size; MPI_Comm_rank(MPI_COMM_WORLD, &rank); MPI_Comm_size(MPI_COMM_WORLD, &size);
  HYPRE_Init();
  const char* dir = argv[1]; int n = atoi(argv[2]);
  int skip = argc > 3 ? atoi(argv[3]) : 0, relax = argc > 4 ? atoi(argv[4]) : 2, sym = argc > 5 ? atoi(argv[5]) : 0;
  int twonorm = argc > 6 ? atoi(argv[6]) : 1;
  int z0 = (int)((long)n * rank / size), z1 = (int)((long)n * (rank + 1) / size) - 1;
  long plane = (long)n * n, cells = plane * (z1 - z0 + 1);
  double* coef = malloc(sizeof(double) * cells * 7); double* b = malloc(sizeof(double) * cells);
  char path[512]; snprintf(path, sizeof path, "%s/coef7.bin", dir);
  FILE* f = fopen(path, "rb"); fseek(f, plane * z0 * 7 * 8, SEEK_SET); fread(coef, 8, cells * 7, f); fclose(f);
  snprintf(path, sizeof path, "%s/b64.bin", dir);
  f = fopen(path, "rb"); fseek(f, plane * z0 * 8, SEEK_SET); fread(b, 8, cells, f); fclose(f);
  MPI_Barrier(MPI_COMM_WORLD);
  double t0 = MPI_Wtime();
  HYPRE_StructGrid grid; HYPRE_StructStencil st; HYPRE_StructMatrix A; HYPRE_StructVector vb, vx;
  int lo[3] = {0, 0, z0}, hi[3] = {n - 1, n - 1, z1};
  HYPRE_StructGridCreate(MPI_COMM_WORLD, 3, &grid); HYPRE_StructGridSetExtents(grid, lo, hi); HYPRE_StructGridAssemble(grid);
  int off[7][3] = {{0,0,0},{-1,0,0},{1,0,0},{0,-1,0},{0,1,0},{0,0,-1},{0,0,1}};
  HYPRE_StructStencilCreate(3, 7, &st); for (int s = 0; s < 7; ++s) HYPRE_StructStencilSetElement(st, s, off[s]);
  HYPRE_StructMatrixCreate(MPI_COMM_WORLD, grid, st, &A);
  if (sym) HYPRE_StructMatrixSetSymmetric(A, 1);
  HYPRE_StructMatrixInitialize(A);
  if (sym) { // entries 0,1,3,5 (centre, -x,-y,-z)
    int ent[4] = {0, 1, 3, 5}; double* v = malloc(sizeof(double) * cells * 4);
    for (long c = 0; c < cells; ++c) for (int e = 0; e < 4; ++e) v[c * 4 + e] = coef[c * 7 + ent[e]];
    HYPRE_StructMatrixSetBoxValues(A, lo, hi, 4, ent, v); free(v);
  } else { int ent[7] = {0,1,2,3,4,5,6}; HYPRE_StructMatrixSetBoxValues(A, lo, hi, 7, ent, coef); }
  HYPRE_StructMatrixAssemble(A);
  HYPRE_StructVectorCreate(MPI_COMM_WORLD, grid, &vb); HYPRE_StructVectorInitialize(vb);
  HYPRE_StructVectorSetBoxValues(vb, lo, hi, b); HYPRE_StructVectorAssemble(vb);
  double* zero = calloc(cells, 8);
  HYPRE_StructVectorCreate(MPI_COMM_WORLD, grid, &vx); HYPRE_StructVectorInitialize(vx);
  HYPRE_StructVectorSetBoxValues(vx, lo, hi, zero); HYPRE_StructVectorAssemble(vx);
  double t1 = MPI_Wtime();
  HYPRE_StructSolver pcg, pf;
  HYPRE_StructPCGCreate(MPI_COMM_WORLD, &pcg);
  HYPRE_StructPCGSetTol(pcg, 1e-6); HYPRE_StructPCGSetMaxIter(pcg, 1000); HYPRE_StructPCGSetTwoNorm(pcg, twonorm);
  HYPRE_PCGSetRecomputeResidual((HYPRE_Solver)pcg, 1);
  HYPRE_StructPCGSetLogging(pcg, 1);
  HYPRE_StructPFMGCreate(MPI_COMM_WORLD, &pf); HYPRE_StructPFMGSetMaxIter(pf, 1); HYPRE_StructPFMGSetTol(pf, 0.0);
  HYPRE_StructPFMGSetZeroGuess(pf); HYPRE_StructPFMGSetRelaxType(pf, relax); HYPRE_StructPFMGSetRAPType(pf, 0);
  HYPRE_StructPFMGSetNumPreRelax(pf, 1); HYPRE_StructPFMGSetNumPostRelax(pf, 1); HYPRE_StructPFMGSetSkipRelax(pf, skip);
  HYPRE_StructPCGSetPrecond(pcg, HYPRE_StructPFMGSolve, HYPRE_StructPFMGSetup, pf);
  HYPRE_StructPCGSetup(pcg, A, vb, vx);
  double t2 = MPI_Wtime();
  HYPRE_StructPCGSolve(pcg, A, vb, vx);
  double t3 = MPI_Wtime();
  int its; double rel; HYPRE_StructPCGGetNumIterations(pcg, &its); HYPRE_StructPCGGetFinalRelativeResidualNorm(pcg, &rel);
  if (rank == 0) printf("ranks %d skip %d relax %d sym %d: its %d rel %.3e assembly %.3f setup %.3f solve %.3f total %.3f (%.1f ms/it)\n",
                        size, skip, relax, sym, its, rel, t1 - t0, t2 - t1, t3 - t2, t3 - t0, 1e3 * (t3 - t2) / its);
  HYPRE_StructPCGDestroy(pcg); HYPRE_StructPFMGDestroy(pf);
  HYPRE_Finalize(); MPI_Finalize(); return 0;
}
