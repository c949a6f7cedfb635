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

// Counts of the last solve (as the serial DcdmStats).
typedef struct {
  PetscInt generator_directions;  // iterations that used the PC's direction
  PetscInt fallback_directions;   // iterations that used the Jacobi direction
  PetscInt fallback_nan;          // ... because the PC's direction had NaN/Inf
  PetscInt fallback_curvature;    // ... because d.Ad <= 0
  PetscInt fallback_vanished;     // ... because it vanished (or was orthogonal to r)
  PetscInt fallback_weak;         // ... because the Jacobi direction gained more (best)
} KSPDCDMStats;

#ifdef __cplusplus
extern "C" {
#endif
PetscErrorCode DCDMKSPRegister(void);
PetscErrorCode KSPCreate_DCDM(KSP ksp);
PetscErrorCode KSPDCDMSetK(KSP ksp, PetscInt k);
PetscErrorCode KSPDCDMSetFallback(KSP ksp, KSPDCDMFallback fallback);
PetscErrorCode KSPDCDMGetStats(KSP ksp, KSPDCDMStats* stats);
PetscErrorCode PetscDLLibraryRegister_dcdm_petsc(void);
#ifdef __cplusplus
}
#endif
