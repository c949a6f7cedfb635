#pragma once
// KSPDCDM: the Deep Conjugate Direction Method as a PETSc Krylov method (-ksp_type dcdm).
// The direction generator is the KSP's PC (any PETSc PC: jacobi, mg, gamg, hypre...).
//
// Options (prefix as the KSP's):
//   -ksp_dcdm_k K               directions kept for A-orthogonalisation (default 2, 0..64);
//                               k = 1 with a symmetric positive definite PC is PCG
//   -ksp_dcdm_fallback MODE     best | failures | off (default failures): when the Jacobi
//                               direction replaces the PC's, as the serial solver's
//                               --dcdm-fallback (include/dcdm/dcdm.hpp)
//   -ksp_dcdm_vanish_tol T      a direction "vanishes" below this (default 1e-12)
//   -ksp_dcdm_vectors V         auto | double | float (default auto): the direction d, A d and
//                               the kept pairs in float on the lean path (k > 0, fallback
//                               failures or off), as the serial --dcdm-vectors; x, r and every
//                               sum stay double, and convergence is confirmed on b - A x. auto:
//                               float where the target max(rtol ||r0||, atol) is at least
//                               KSPDCDM_SINGLE_VECTORS_MIN_RTOL ||r0||. Float needs an operator
//                               offering DCDMMatMultDotsSingle_C (the pressure system's shell
//                               does); with any other the solve keeps double vectors
// The convergence test, monitors and -ksp_converged_reason are KSP's own; the norm is
// ||b - Ax|| (KSP_NORM_UNPRECONDITIONED). Breakdowns are reported as KSP_DIVERGED_NANORINF,
// KSP_DIVERGED_INDEFINITE_MAT (d.Ad <= 0), KSP_DIVERGED_INDEFINITE_PC (the PC's direction is
// orthogonal to the residual) or KSP_DIVERGED_BREAKDOWN (nothing left after
// A-orthogonalisation).
//
// Registration: DCDMKSPRegister() in a program linked with libdcdm_petsc.so, or
// -dll_append /path/libdcdm_petsc.so in any PETSc program (PETSc then calls
// PetscDLLibraryRegister_dcdm_petsc). This header needs PETSc only.
#include <petscksp.h>

#define KSPDCDM "dcdm"

typedef enum { KSPDCDM_FALLBACK_BEST = 0, KSPDCDM_FALLBACK_FAILURES = 1, KSPDCDM_FALLBACK_OFF = 2 } KSPDCDMFallback;
typedef enum { KSPDCDM_VECTORS_AUTO = 0, KSPDCDM_VECTORS_DOUBLE = 1, KSPDCDM_VECTORS_FLOAT = 2 } KSPDCDMVectors;
// The serial DcdmOptions::kSingleVectorsMinRtol: auto takes float vectors down to this target.
#define KSPDCDM_SINGLE_VECTORS_MIN_RTOL 1e-7

// What KSPDCDM's float vectors ask of the operator and the PC, as composed functions (each
// array holds this rank's n owned entries, in the Vec layout; "local" sums are this rank's,
// the KSP reduces them with MPI):
//   "DCDMMatMultDotsSingle_C" on the operator: y = A x computed in double from the float x and
//     rounded to float once, local = {x.(A x) before the rounding, x.r, x.x}, summed in double.
typedef PetscErrorCode (*DCDMMatMultDotsSingle)(Mat a, const float x[], float y[], Vec r, PetscScalar local[3]);
//   "DCDMPCApplySingle_C" on the PC: z = PC(r) written in float, the PC's double output rounded
//     (bit for bit). z holds `capacity` floats (>= n); the PC may use them all as workspace
//     before it writes its output. Optional: without it the KSP applies the PC into a double
//     Vec and rounds the A-orthogonalised direction.
typedef PetscErrorCode (*DCDMPCApplySingle)(PC pc, Vec r, PetscInt capacity, float z[]);
//   "DCDMPCSingleWorkspace_C" on the PC: the capacity (floats) at which z can lend the PC all
//     the workspace it would use, or 0 when none.
typedef PetscErrorCode (*DCDMPCSingleWorkspace)(PC pc, PetscInt* floats);

// Counts of the last solve (as the serial DcdmStats).
typedef struct {
  PetscInt generator_directions;  // iterations that used the PC's direction
  PetscInt fallback_directions;   // iterations that used the Jacobi direction
  PetscInt fallback_nan;          // ... because the PC's direction had NaN/Inf
  PetscInt fallback_curvature;    // ... because d.Ad <= 0
  PetscInt fallback_vanished;     // ... because it vanished (or was orthogonal to r)
  PetscInt fallback_weak;         // ... because the Jacobi direction gained more (best)
  PetscBool single_precision_vectors;  // whether the solve kept its directions in float
  // float vectors: times the updated residual met the convergence test and b - A x did not
  // (the iteration then went on from b - A x)
  PetscInt residual_replacements;
} KSPDCDMStats;

#ifdef __cplusplus
extern "C" {
#endif
PetscErrorCode DCDMKSPRegister(void);
PetscErrorCode KSPCreate_DCDM(KSP ksp);
PetscErrorCode KSPDCDMSetK(KSP ksp, PetscInt k);
PetscErrorCode KSPDCDMSetFallback(KSP ksp, KSPDCDMFallback fallback);
PetscErrorCode KSPDCDMSetVectors(KSP ksp, KSPDCDMVectors vectors);
PetscErrorCode KSPDCDMGetStats(KSP ksp, KSPDCDMStats* stats);
PetscErrorCode PetscDLLibraryRegister_dcdm_petsc(void);
#ifdef __cplusplus
}
#endif
