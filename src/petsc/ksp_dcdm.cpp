// KSPDCDM: the DCDM iteration (src/krylov/dcdm.cpp, include/dcdm/dcdm.hpp) written against
// PETSc's Vec/Mat/PC, so that any PETSc program can use it as -ksp_type dcdm. The direction
// generator is the KSP's PC:
//
//   d = PC(r);  d <- d - sum_j (d.Ap_j)/(p_j.Ap_j) p_j  over the k latest directions;
//   alpha = (d.r)/(d.Ad);  x += alpha d;  r -= alpha Ad.
//
// With k = 1 and a symmetric positive definite PC this is preconditioned CG (the same
// iterates in exact arithmetic); a larger k helps a PC that is not a fixed symmetric
// operator (a few cycles of an inner Krylov solve, a nonlinear or non-symmetric smoother).
// The safeguards mirror the serial solver's: a direction with non-finite values, d.Ad <= 0,
// or one that vanishes after A-orthogonalisation (or is orthogonal to r) is replaced by the
// Jacobi-preconditioned residual; with -ksp_dcdm_fallback best the Jacobi direction is also
// taken whenever it reduces the A-norm error more; with off the solve stops with a
// KSPConvergedReason naming the failure.
//
// Memory: as the serial solver's orthogonalise_first, d is A-orthogonalised against the kept
// directions before its mat-vec, and A d goes into the image buffer of the pair it replaces:
// r, d and the k kept pairs, 2k + 2 vectors (4 for k = 1) besides x and b. The best mode
// compares two candidates against the kept images and holds a separate A d and the Jacobi
// pair on top (2k + 5).
//
// Passes over memory as the serial solver's: the mat-vec computes d.Ad, d.r and d.d in its own
// pass where the operator offers that (DCDMMatMultDots_C, below), and x, r and ||r|| are
// updated in one pass; each stage sums its dot products in one reduction.
//
// Float vectors (-ksp_dcdm_vectors, the serial vector_precision): on the lean path d, A d and
// the kept pairs are float arrays owned here (PetscMalloc'd, this rank's part), x and r stay
// double Vecs and every sum is double: 20 bytes a cell for r, d, p, Ap instead of 32 (k = 1),
// and a step moves a quarter fewer bytes. The operator computes A d in double from the float d
// and rounds it once (DCDMMatMultDotsSingle_C, include/dcdm/petsc.hpp); the PC writes its
// output in float where it offers DCDMPCApplySingle_C (the dcdm_mg cycle), else into a double
// Vec that the A-orthogonalisation rounds. A d's rounding lets the updated residual drift from
// b - A x, so a solve that meets the convergence test on the updated residual confirms it on
// b - A x and goes on from that where it does not (counted as a residual replacement).
//
// This file needs PETSc only (not the dcdm core), so that libdcdm_petsc.so loads into an
// unmodified PETSc program with -dll_append.
#include "dcdm/petsc.hpp"

#include <petsc/private/kspimpl.h>

#include <algorithm>
#include <cmath>

namespace {

const char* const kFallbackNames[] = {"best", "failures", "off"};
const char* const kVectorsNames[] = {"auto", "double", "float"};
constexpr PetscInt kMaxKept = 64;

PetscLogEvent g_event_orthogonalise = 0;
PetscLogEvent g_event_fallback = 0;
PetscLogEvent g_event_step = 0;

// A mat-vec that also returns this rank's parts of dot products of its input, which an operator
// may offer as the composed function "DCDMMatMultDots_C" (the pressure system's shell does):
// y = A x, local[0] = x.y, local[1 + j] = x.with[j] (sums over the owned entries, not reduced).
using MatMultDots = PetscErrorCode (*)(Mat, Vec, Vec, PetscInt, const Vec[], PetscScalar[]);

// Sums n values over the ranks of obj's communicator.
PetscErrorCode sum_over_ranks(PetscObject obj, PetscScalar* local, PetscScalar* global, PetscInt n) {
  PetscFunctionBegin;
  PetscCall(MPIU_Allreduce(local, global, static_cast<PetscMPIInt>(n), MPIU_SCALAR, MPIU_SUM, PetscObjectComm(obj)));
  PetscFunctionReturn(0);
}

// ad = A d with sums = {d.Ad, d.r, d.d}: in the operator's own pass over d where the operator
// offers the fused mat-vec, else MatMult and one VecMDot. One reduction either way.
PetscErrorCode mat_mult_dots(KSP ksp, Mat amat, Vec d, Vec ad, Vec r, PetscScalar sums[3]) {
  PetscFunctionBegin;
  MatMultDots fused = nullptr;
  if (!ksp->transpose_solve) PetscCall(PetscObjectQueryFunction((PetscObject)amat, "DCDMMatMultDots_C", &fused));
  if (fused) {
    const Vec with[2] = {r, d};
    PetscScalar local[3];
    PetscCall(fused(amat, d, ad, 2, with, local));
    PetscCall(sum_over_ranks((PetscObject)ksp, local, sums, 3));
  } else {
    PetscCall(KSP_MatMult(ksp, amat, d, ad));
    Vec with3[3] = {ad, r, d};
    PetscCall(VecMDot(d, 3, with3, sums));
  }
  PetscFunctionReturn(0);
}

// x += alpha d, r -= alpha ad and ||r|| in one pass over the four arrays and one reduction
// (three passes and a reduction as VecAXPY, VecAXPY, VecNorm). D: double, or float for the
// float vectors (widened exactly; x and r stay double).
template <class D>
PetscErrorCode step_arrays(KSP ksp, Vec x, Vec r, const D* dv, const D* adv, PetscScalar alpha, PetscReal* rnorm) {
  PetscFunctionBegin;
  PetscCall(PetscLogEventBegin(g_event_step, ksp, 0, 0, 0));
  PetscInt n = 0;
  PetscCall(VecGetLocalSize(x, &n));
  PetscScalar *xv = nullptr, *rv = nullptr;
  PetscCall(VecGetArray(x, &xv));
  PetscCall(VecGetArray(r, &rv));
  // Four partial sums: independent additions to overlap (the loop streams memory).
  PetscReal part[4] = {0, 0, 0, 0};
  PetscInt i = 0;
  for (; i + 4 <= n; i += 4)
    for (int u = 0; u < 4; ++u) {
      xv[i + u] += alpha * static_cast<PetscScalar>(dv[i + u]);
      rv[i + u] -= alpha * static_cast<PetscScalar>(adv[i + u]);
      part[u] += PetscRealPart(PetscConj(rv[i + u]) * rv[i + u]);
    }
  for (; i < n; ++i) {
    xv[i] += alpha * static_cast<PetscScalar>(dv[i]);
    rv[i] -= alpha * static_cast<PetscScalar>(adv[i]);
    part[0] += PetscRealPart(PetscConj(rv[i]) * rv[i]);
  }
  PetscCall(VecRestoreArray(r, &rv));
  PetscCall(VecRestoreArray(x, &xv));
  PetscReal local = (part[0] + part[1]) + (part[2] + part[3]), rr = 0;
  PetscCall(MPIU_Allreduce(&local, &rr, 1, MPIU_REAL, MPIU_SUM, PetscObjectComm((PetscObject)ksp)));
  *rnorm = std::sqrt(rr);
  PetscCall(PetscLogEventEnd(g_event_step, ksp, 0, 0, 0));
  PetscFunctionReturn(0);
}

PetscErrorCode step(KSP ksp, Vec x, Vec r, Vec d, Vec ad, PetscScalar alpha, PetscReal* rnorm) {
  PetscFunctionBegin;
  const PetscScalar *dv = nullptr, *adv = nullptr;
  PetscCall(VecGetArrayRead(d, &dv));
  PetscCall(VecGetArrayRead(ad, &adv));
  PetscCall(step_arrays(ksp, x, r, dv, adv, alpha, rnorm));
  PetscCall(VecRestoreArrayRead(ad, &adv));
  PetscCall(VecRestoreArrayRead(d, &dv));
  PetscFunctionReturn(0);
}

// v += alpha w for a float w (undoing a float step).
PetscErrorCode add_single(Vec v, PetscScalar alpha, const float* w) {
  PetscFunctionBegin;
  PetscInt n = 0;
  PetscScalar* a = nullptr;
  PetscCall(VecGetLocalSize(v, &n));
  PetscCall(VecGetArray(v, &a));
  for (PetscInt i = 0; i < n; ++i) a[i] += alpha * static_cast<PetscScalar>(w[i]);
  PetscCall(VecRestoreArray(v, &a));
  PetscFunctionReturn(0);
}

enum class Failure { None, NonFinite, Curvature, Vanished, OrthogonalToResidual };

struct Candidate {
  Failure failure = Failure::None;
  PetscReal dad = 0, dr = 0;
};

struct KspDcdm {
  PetscInt k = 2;
  KSPDCDMFallback fallback = KSPDCDM_FALLBACK_FAILURES;
  PetscReal vanish_tolerance = 1e-12;
  KSPDCDMVectors vectors = KSPDCDM_VECTORS_AUTO;
  // Vectors, all owned here (their handles are swapped between roles as directions are kept).
  // With k > 0 and the fallback modes failures/off, the solve holds r, d and the k kept pairs
  // only (2k + 2 vectors): A d goes into the image buffer of the slot the new pair takes (see
  // make_lean_candidate). ad is made only where a separate A d buffer is needed (k = 0, best).
  PetscInt allocated = -1;  // k the vectors were made for (-1: none)
  Vec r = nullptr, d = nullptr, ad = nullptr, dj = nullptr, adj = nullptr;
  Vec* p = nullptr;   // kept directions (ring of k)
  Vec* ap = nullptr;  // their images A p
  PetscReal pap[kMaxKept] = {};
  // The float vectors instead of d, p, Ap (the double d is made only where the PC writes double
  // or the Jacobi fallback needs it): d and each kept p hold single_capacity floats (the PC may
  // use d's as workspace, and d and the p swap roles), each A p this rank's n.
  PetscInt single_kept = -1;  // k the float arrays were made for (-1: none)
  PetscInt single_capacity = 0;
  float* df = nullptr;
  float* pf[kMaxKept] = {};
  float* apf[kMaxKept] = {};
  Vec inverse_diagonal = nullptr;  // the Jacobi fallback, made on first use per set-up
  KSPDCDMStats stats{};
};

KspDcdm* data_of(KSP ksp) { return static_cast<KspDcdm*>(ksp->data); }

PetscErrorCode destroy_double_ring(KspDcdm* s) {
  PetscFunctionBegin;
  PetscCall(VecDestroy(&s->d));
  if (s->allocated > 0) {
    PetscCall(VecDestroyVecs(s->allocated, &s->p));
    PetscCall(VecDestroyVecs(s->allocated, &s->ap));
  }
  s->p = s->ap = nullptr;
  s->allocated = -1;
  PetscFunctionReturn(0);
}

PetscErrorCode destroy_single_ring(KspDcdm* s) {
  PetscFunctionBegin;
  PetscCall(PetscFree(s->df));
  for (PetscInt j = 0; j < kMaxKept; ++j) {
    PetscCall(PetscFree(s->pf[j]));
    PetscCall(PetscFree(s->apf[j]));
  }
  s->single_kept = -1;
  s->single_capacity = 0;
  PetscFunctionReturn(0);
}

PetscErrorCode destroy_vectors(KspDcdm* s) {
  PetscFunctionBegin;
  PetscCall(VecDestroy(&s->r));
  PetscCall(VecDestroy(&s->ad));
  PetscCall(VecDestroy(&s->dj));
  PetscCall(VecDestroy(&s->adj));
  PetscCall(destroy_double_ring(s));
  PetscCall(destroy_single_ring(s));
  PetscCall(VecDestroy(&s->inverse_diagonal));
  PetscFunctionReturn(0);
}

// A vector of r's layout in *v unless there is one.
PetscErrorCode ensure_vector(KspDcdm* s, Vec* v) {
  PetscFunctionBegin;
  if (!*v) PetscCall(VecDuplicate(s->r, v));
  PetscFunctionReturn(0);
}

// The work vectors, made by the first solve after a set-up that changed k, not by KSPSetUp:
// KSPSetUp sets the PC up after this KSP's set-up, and a PC's set-up temporaries (the
// dcdm_mg cycle's model evaluation) then peak without the work vectors beside them. r here;
// the direction and the kept pairs by make_ring once the solve knows their precision.
PetscErrorCode make_residual_vector(KSP ksp) {
  KspDcdm* s = data_of(ksp);
  PetscFunctionBegin;
  if (s->r) PetscFunctionReturn(0);
  // The vectors are the solution's kind (its type and layout), else the operator's through a
  // vector of its own made and destroyed here: KSPCreateVecs would take the layout from the
  // DM's pool of global vectors, where that vector stays for as long as the DM (a full-size
  // vector that no solve uses).
  if (ksp->vec_sol) {
    PetscCall(VecDuplicate(ksp->vec_sol, &s->r));
  } else {
    Mat amat = nullptr;
    PetscCall(PCGetOperators(ksp->pc, &amat, nullptr));
    Vec layout = nullptr;
    PetscCall(MatCreateVecs(amat, &layout, nullptr));
    PetscCall(VecDuplicate(layout, &s->r));
    PetscCall(VecDestroy(&layout));
  }
  PetscFunctionReturn(0);
}

// d and the k kept pairs, double Vecs or (single) float arrays of `capacity` floats for d and
// the p (this rank's n for the A p); the other precision's go, so that a solve holds one set.
// ad (the separate A d buffer) and the Jacobi candidate's pair (dj, Adj) are made on first
// use: with k > 0 and -ksp_dcdm_fallback failures or off the solve never needs them.
PetscErrorCode make_ring(KSP ksp, bool single, PetscInt capacity) {
  KspDcdm* s = data_of(ksp);
  PetscFunctionBegin;
  if (single) {
    PetscCall(destroy_double_ring(s));
    if (s->single_kept == s->k && s->single_capacity == capacity) PetscFunctionReturn(0);
    PetscCall(destroy_single_ring(s));
    PetscInt n = 0;
    PetscCall(VecGetLocalSize(s->r, &n));
    PetscCall(PetscMalloc1(capacity, &s->df));
    for (PetscInt j = 0; j < s->k; ++j) {
      PetscCall(PetscMalloc1(capacity, &s->pf[j]));
      PetscCall(PetscMalloc1(n, &s->apf[j]));
    }
    s->single_kept = s->k;
    s->single_capacity = capacity;
    PetscFunctionReturn(0);
  }
  PetscCall(destroy_single_ring(s));
  if (s->allocated == s->k && s->d) PetscFunctionReturn(0);
  PetscCall(destroy_double_ring(s));
  PetscCall(VecDuplicate(s->r, &s->d));
  if (s->k > 0) {
    PetscCall(VecDuplicateVecs(s->r, s->k, &s->p));
    PetscCall(VecDuplicateVecs(s->r, s->k, &s->ap));
  }
  s->allocated = s->k;
  PetscFunctionReturn(0);
}

PetscErrorCode KSPSetUp_DCDM(KSP ksp) {
  KspDcdm* s = data_of(ksp);
  PetscFunctionBegin;
  // The operator may have changed: the Jacobi fallback is rebuilt on first use.
  PetscCall(VecDestroy(&s->inverse_diagonal));
  // Vectors of another k (or another operator's size after KSPReset) go now.
  if (s->allocated != s->k && s->single_kept != s->k) PetscCall(destroy_vectors(s));
  PetscFunctionReturn(0);
}

// The Jacobi direction's inverse diagonal: 1/A_ii where A_ii > 0, else 1 (the plain residual
// on rows without a positive diagonal, as the serial fallback does without a matrix).
PetscErrorCode make_inverse_diagonal(KSP ksp, Mat amat) {
  KspDcdm* s = data_of(ksp);
  PetscFunctionBegin;
  if (s->inverse_diagonal) PetscFunctionReturn(0);
  PetscCall(VecDuplicate(s->r, &s->inverse_diagonal));
  PetscCall(MatGetDiagonal(amat, s->inverse_diagonal));
  PetscInt n = 0;
  PetscScalar* v = nullptr;
  PetscCall(VecGetLocalSize(s->inverse_diagonal, &n));
  PetscCall(VecGetArray(s->inverse_diagonal, &v));
  for (PetscInt i = 0; i < n; ++i) {
    const PetscReal a = PetscRealPart(v[i]);
    v[i] = (a > 0 && std::isfinite(a)) ? 1.0 / a : 1.0;
  }
  PetscCall(VecRestoreArray(s->inverse_diagonal, &v));
  PetscFunctionReturn(0);
}

// Fills ad = A d for the direction in d (already filled), projects out the operator's null
// space, A-orthogonalises against the m kept directions and judges the result, as the
// serial solver does (prepare_in + orthogonalise + judge). Two reductions: {d.Ad, d.Ap_j},
// then {d.Ad, d.r, d.d} of the orthogonalised d.
PetscErrorCode make_candidate(KSP ksp, Mat amat, MatNullSpace nullspace, Vec d, Vec ad, PetscInt m,
                              PetscReal rnorm, Candidate* out) {
  KspDcdm* s = data_of(ksp);
  PetscFunctionBegin;
  PetscCall(PetscLogEventBegin(g_event_orthogonalise, ksp, 0, 0, 0));
  if (nullspace) PetscCall(MatNullSpaceRemove(nullspace, d));
  PetscCall(KSP_MatMult(ksp, amat, d, ad));
  PetscReal dad0 = 0;
  PetscScalar first[kMaxKept + 2];
  if (m > 0) {
    Vec with[kMaxKept + 2];
    with[0] = ad;
    with[1] = d;
    for (PetscInt j = 0; j < m; ++j) with[j + 2] = s->ap[j];
    PetscCall(VecMDot(d, m + 2, with, first));
    dad0 = PetscRealPart(first[0]);
    const PetscReal dd0 = PetscRealPart(first[1]);
    if (!std::isfinite(dad0) || !std::isfinite(dd0) || dad0 <= 0) {
      *out = {!std::isfinite(dad0) || !std::isfinite(dd0) ? Failure::NonFinite
              : dd0 == 0                                   ? Failure::Vanished
                                                           : Failure::Curvature};
      PetscCall(PetscLogEventEnd(g_event_orthogonalise, ksp, 0, 0, 0));
      PetscFunctionReturn(0);
    }
    PetscScalar minus_beta[kMaxKept];
    for (PetscInt j = 0; j < m; ++j) minus_beta[j] = -first[j + 2] / s->pap[j];
    PetscCall(VecMAXPY(d, m, minus_beta, s->p));
    PetscCall(VecMAXPY(ad, m, minus_beta, s->ap));
  }
  Vec with3[3] = {ad, s->r, d};
  PetscScalar sums[3];
  PetscCall(VecMDot(d, 3, with3, sums));
  const PetscReal dad = PetscRealPart(sums[0]), dr = PetscRealPart(sums[1]), dd = PetscRealPart(sums[2]);
  if (m == 0) dad0 = dad;
  const PetscReal vtol = s->vanish_tolerance;
  if (!std::isfinite(dad) || !std::isfinite(dr) || !std::isfinite(dd)) *out = {Failure::NonFinite};
  else if (m == 0 && dad <= 0) *out = {dd == 0 ? Failure::Vanished : Failure::Curvature};
  else if (dad <= vtol * dad0) *out = {m == 0 ? Failure::Curvature : Failure::Vanished};
  else if (std::abs(dr) <= vtol * std::sqrt(dd) * rnorm) *out = {Failure::OrthogonalToResidual};
  else *out = {Failure::None, dad, dr};
  PetscCall(PetscLogEventEnd(g_event_orthogonalise, ksp, 0, 0, 0));
  PetscFunctionReturn(0);
}

// The lean form of make_candidate, the serial solver's orthogonalise_first: the direction in
// s->d is A-orthogonalised against the m kept directions before its mat-vec, so that A d can
// go into `ad`, the image buffer of the slot the new pair takes, even when that is the oldest
// kept pair's (whose A p the orthogonalisation has used by then). Two reductions: {d.Ap_j,
// d.d} before the mat-vec (skipped when m = 0), {d.Ad, d.r, d.d} after it. *consumed tells
// whether the mat-vec wrote into ad. The un-orthogonalised d.Ad the checks compare with is
// d.Ad + sum_j (d.Ap_j)^2 / p_j.Ap_j (the kept directions are mutually A-orthogonal).
//
// The lean paths' coefficients from the reduced sums first = {d.Ap_j (j < m), d.d}:
// minus_beta_j = -d.Ap_j / p_j.Ap_j and the A-norm^2 they remove; a failure where d has a NaN
// or Inf (it shows in d.d) or is 0 (nothing to give).
Failure lean_coefficients(const KspDcdm* s, const PetscScalar* first, PetscInt m, PetscScalar* minus_beta,
                          PetscReal* removed) {
  bool finite = true;
  for (PetscInt j = 0; j <= m; ++j) finite = finite && std::isfinite(PetscRealPart(first[j]));
  if (!finite) return Failure::NonFinite;
  if (PetscRealPart(first[m]) == 0) return Failure::Vanished;
  *removed = 0;
  for (PetscInt j = 0; j < m; ++j) {
    minus_beta[j] = -first[j] / s->pap[j];
    *removed += PetscRealPart(first[j] * first[j]) / s->pap[j];
  }
  return Failure::None;
}

// The lean paths' verdict on the A-orthogonalised d from sums = {d.Ad, d.r, d.d} (reduced).
Candidate judge_lean(const KspDcdm* s, const PetscScalar sums[3], PetscReal removed, PetscInt m, PetscReal rnorm) {
  const PetscReal dad = PetscRealPart(sums[0]), dr = PetscRealPart(sums[1]), dd = PetscRealPart(sums[2]);
  const PetscReal dad0 = dad + removed;
  const PetscReal vtol = s->vanish_tolerance;
  if (!std::isfinite(dad) || !std::isfinite(dr) || !std::isfinite(dd)) return {Failure::NonFinite};
  if (dad0 <= 0) return {dd == 0 ? Failure::Vanished : Failure::Curvature};
  if (dad <= vtol * dad0) return {m == 0 ? Failure::Curvature : Failure::Vanished};
  if (std::abs(dr) <= vtol * std::sqrt(dd) * rnorm) return {Failure::OrthogonalToResidual};
  return {Failure::None, dad, dr};
}

PetscErrorCode make_lean_candidate(KSP ksp, Mat amat, MatNullSpace nullspace, Vec ad, PetscInt m, PetscReal rnorm,
                                   Candidate* out, bool* consumed) {
  KspDcdm* s = data_of(ksp);
  Vec d = s->d;
  PetscFunctionBegin;
  *consumed = false;
  PetscCall(PetscLogEventBegin(g_event_orthogonalise, ksp, 0, 0, 0));
  if (nullspace) PetscCall(MatNullSpaceRemove(nullspace, d));
  PetscReal removed = 0;  // the A-norm^2 taken out of d
  if (m > 0) {
    Vec with[kMaxKept + 1];
    PetscScalar first[kMaxKept + 1], minus_beta[kMaxKept];
    for (PetscInt j = 0; j < m; ++j) with[j] = s->ap[j];
    with[m] = d;
    PetscCall(VecMDot(d, m + 1, with, first));
    if (const Failure f = lean_coefficients(s, first, m, minus_beta, &removed); f != Failure::None) {
      *out = {f};
      PetscCall(PetscLogEventEnd(g_event_orthogonalise, ksp, 0, 0, 0));
      PetscFunctionReturn(0);
    }
    PetscCall(VecMAXPY(d, m, minus_beta, s->p));
  }
  PetscScalar sums[3];
  PetscCall(mat_mult_dots(ksp, amat, d, ad, s->r, sums));
  *consumed = true;
  *out = judge_lean(s, sums, removed, m, rnorm);
  PetscCall(PetscLogEventEnd(g_event_orthogonalise, ksp, 0, 0, 0));
  PetscFunctionReturn(0);
}

// sum_i a[i] b[i] over this rank's n entries, in double (float arrays widened exactly). Four
// partial sums, as step_arrays (this file builds without OpenMP's simd reductions).
template <class A, class B>
PetscReal local_dot(const A* a, const B* b, PetscInt n) {
  PetscReal part[4] = {0, 0, 0, 0};
  PetscInt i = 0;
  for (; i + 4 <= n; i += 4)
    for (int u = 0; u < 4; ++u) part[u] += static_cast<PetscReal>(a[i + u]) * static_cast<PetscReal>(b[i + u]);
  for (; i < n; ++i) part[0] += static_cast<PetscReal>(a[i]) * static_cast<PetscReal>(b[i]);
  return (part[0] + part[1]) + (part[2] + part[3]);
}

// out = z + sum_j minus_beta_j p_j over n entries, the terms added in order j in double and
// rounded to float once (as the serial lean_direction_single); z may be out itself. In blocks
// of a few KB, each term a loop the compiler vectorises.
template <class Z>
void orthogonalise_single(const Z* z, PetscInt m, const PetscScalar* minus_beta, float* const* p, float* out,
                          PetscInt n) {
  constexpr PetscInt kBlock = 512;
  alignas(64) PetscScalar acc[kBlock];
  for (PetscInt lo = 0; lo < n; lo += kBlock) {
    const PetscInt len = std::min(kBlock, n - lo);
    for (PetscInt i = 0; i < len; ++i) acc[i] = static_cast<PetscScalar>(z[lo + i]);
    for (PetscInt j = 0; j < m; ++j) {
      const PetscScalar b = minus_beta[j];
      const float* pj = p[j] + lo;
      for (PetscInt i = 0; i < len; ++i) acc[i] += b * static_cast<PetscScalar>(pj[i]);
    }
    float* o = out + lo;
    for (PetscInt i = 0; i < len; ++i) o[i] = static_cast<float>(acc[i]);
  }
}

// make_lean_candidate with the float vectors: the direction is the PC's float output in s->df
// (source null) or a double Vec (the PC's double output or the Jacobi direction, its null
// space removed here); it is A-orthogonalised into s->df (rounded once), and A d goes into
// s->apf[slot] through the operator's float mat-vec. The same two reductions.
PetscErrorCode make_lean_candidate_single(KSP ksp, Mat amat, DCDMMatMultDotsSingle mult, MatNullSpace nullspace,
                                          Vec source, PetscInt slot, PetscInt m, PetscReal rnorm, Candidate* out,
                                          bool* consumed) {
  KspDcdm* s = data_of(ksp);
  PetscFunctionBegin;
  *consumed = false;
  PetscCall(PetscLogEventBegin(g_event_orthogonalise, ksp, 0, 0, 0));
  PetscInt n = 0;
  PetscCall(VecGetLocalSize(s->r, &n));
  const PetscScalar* zd = nullptr;
  if (source) {
    if (nullspace) PetscCall(MatNullSpaceRemove(nullspace, source));
    PetscCall(VecGetArrayRead(source, &zd));
  }
  // The coefficients and the orthogonalised d from z, whichever its precision.
  const auto orthogonalise = [&](const auto* z) -> PetscErrorCode {
    PetscFunctionBegin;
    PetscReal removed = 0;
    if (m > 0) {
      PetscScalar local[kMaxKept + 1], first[kMaxKept + 1], minus_beta[kMaxKept];
      for (PetscInt j = 0; j < m; ++j) local[j] = local_dot(z, s->apf[j], n);
      local[m] = local_dot(z, z, n);
      PetscCall(sum_over_ranks((PetscObject)ksp, local, first, m + 1));
      if (const Failure f = lean_coefficients(s, first, m, minus_beta, &removed); f != Failure::None) {
        *out = {f};
        PetscFunctionReturn(0);
      }
      orthogonalise_single(z, m, minus_beta, s->pf, s->df, n);
    } else if (source) {
      orthogonalise_single(z, 0, nullptr, s->pf, s->df, n);
    }
    PetscScalar local[3], sums[3];
    PetscCall(mult(amat, s->df, s->apf[slot], s->r, local));
    PetscCall(sum_over_ranks((PetscObject)ksp, local, sums, 3));
    *consumed = true;
    *out = judge_lean(s, sums, removed, m, rnorm);
    PetscFunctionReturn(0);
  };
  if (zd) PetscCall(orthogonalise(zd));
  else PetscCall(orthogonalise(static_cast<const float*>(s->df)));
  if (source) PetscCall(VecRestoreArrayRead(source, &zd));
  PetscCall(PetscLogEventEnd(g_event_orthogonalise, ksp, 0, 0, 0));
  PetscFunctionReturn(0);
}

// The reason a solve stops with when a direction fails and nothing replaces it.
KSPConvergedReason reason_of(Failure f) {
  switch (f) {
    case Failure::NonFinite: return KSP_DIVERGED_NANORINF;
    case Failure::Curvature: return KSP_DIVERGED_INDEFINITE_MAT;  // d.Ad <= 0 for a d != 0
    case Failure::OrthogonalToResidual: return KSP_DIVERGED_INDEFINITE_PC;  // r.PC(r) = 0
    case Failure::Vanished:
    case Failure::None: break;
  }
  return KSP_DIVERGED_BREAKDOWN;
}

PetscErrorCode fill_jacobi(KSP ksp, Mat amat, Vec out) {
  KspDcdm* s = data_of(ksp);
  PetscFunctionBegin;
  PetscCall(make_inverse_diagonal(ksp, amat));
  PetscCall(VecPointwiseMult(out, s->inverse_diagonal, s->r));
  PetscFunctionReturn(0);
}

PetscErrorCode report_iteration(KSP ksp, PetscInt it, PetscReal rnorm) {
  PetscFunctionBegin;
  PetscCall(PetscObjectSAWsTakeAccess((PetscObject)ksp));
  ksp->its = it;
  ksp->rnorm = rnorm;
  PetscCall(PetscObjectSAWsGrantAccess((PetscObject)ksp));
  PetscCall(KSPLogResidualHistory(ksp, rnorm));
  PetscCall(KSPMonitor(ksp, it, rnorm));
  PetscCall((*ksp->converged)(ksp, it, rnorm, &ksp->reason, ksp->cnvP));
  PetscFunctionReturn(0);
}

// Whether this solve keeps its directions in float: asked for (float, or auto with a target of
// at least KSPDCDM_SINGLE_VECTORS_MIN_RTOL of the initial residual: the serial rule, with the
// KSP's default test max(rtol ||r0||, atol)), on the lean path, with an operator that offers
// the float mat-vec (*mult, else double vectors).
PetscErrorCode choose_single(KSP ksp, Mat amat, bool lean, PetscReal rnorm0, DCDMMatMultDotsSingle* mult) {
  KspDcdm* s = data_of(ksp);
  PetscFunctionBegin;
  *mult = nullptr;
  const PetscReal target = std::max(ksp->rtol * rnorm0, ksp->abstol);
  const bool wanted = s->vectors == KSPDCDM_VECTORS_FLOAT ||
                      (s->vectors == KSPDCDM_VECTORS_AUTO && target >= KSPDCDM_SINGLE_VECTORS_MIN_RTOL * rnorm0);
  if (wanted && lean && !ksp->transpose_solve)
    PetscCall(PetscObjectQueryFunction((PetscObject)amat, "DCDMMatMultDotsSingle_C", mult));
  PetscFunctionReturn(0);
}

// r = b - A x (projected onto the range of A for a singular operator) and its norm.
PetscErrorCode true_residual(KSP ksp, Mat amat, MatNullSpace nullspace, Vec x, Vec b, PetscReal* rnorm) {
  KspDcdm* s = data_of(ksp);
  PetscFunctionBegin;
  PetscCall(KSP_MatMult(ksp, amat, x, s->r));
  PetscCall(VecAYPX(s->r, -1.0, b));
  if (nullspace) PetscCall(MatNullSpaceRemove(nullspace, s->r));
  PetscCall(VecNorm(s->r, NORM_2, rnorm));
  PetscFunctionReturn(0);
}

PetscErrorCode KSPSolve_DCDM(KSP ksp) {
  KspDcdm* s = data_of(ksp);
  PetscFunctionBegin;
  Vec x = ksp->vec_sol, b = ksp->vec_rhs;
  Mat amat = nullptr, pmat = nullptr;
  PetscCall(PCGetOperators(ksp->pc, &amat, &pmat));
  MatNullSpace nullspace = nullptr, pc_nullspace = nullptr;
  PetscCall(MatGetNullSpace(amat, &nullspace));
  PetscCall(MatGetNullSpace(pmat, &pc_nullspace));
  s->stats = KSPDCDMStats{};
  PetscCall(make_residual_vector(ksp));

  // r = b - A x, projected onto the range of A for a singular operator (the serial solver
  // works with the compatible part of b the same way).
  PetscReal rnorm = 0;
  if (!ksp->guess_zero) {
    PetscCall(true_residual(ksp, amat, nullspace, x, b, &rnorm));
  } else {
    PetscCall(VecCopy(b, s->r));
    if (nullspace) PetscCall(MatNullSpaceRemove(nullspace, s->r));
    PetscCall(VecNorm(s->r, NORM_2, &rnorm));
  }
  ksp->reason = KSP_CONVERGED_ITERATING;
  if (!std::isfinite(rnorm)) {
    ksp->reason = KSP_DIVERGED_NANORINF;
    PetscFunctionReturn(0);
  }
  PetscCall(report_iteration(ksp, 0, rnorm));
  if (ksp->reason) PetscFunctionReturn(0);

  // The lean path (make_lean_candidate) unless the best mode compares two candidates against
  // the kept directions' images, or no direction is kept (then A d has no slot to go to).
  const bool lean = s->k > 0 && s->fallback != KSPDCDM_FALLBACK_BEST;
  DCDMMatMultDotsSingle mult_single = nullptr;
  PetscCall(choose_single(ksp, amat, lean, rnorm, &mult_single));
  const bool single = mult_single != nullptr;
  s->stats.single_precision_vectors = single ? PETSC_TRUE : PETSC_FALSE;
  // The PC writes the float direction itself where it can and nothing is projected out of it
  // (the null space is removed from a double direction, as the serial float_generator rule).
  DCDMPCApplySingle pc_single = nullptr;
  PetscInt capacity = 0;
  if (single) {
    PetscCall(VecGetLocalSize(s->r, &capacity));
    if (!nullspace && !pc_nullspace) PetscCall(PetscObjectQueryFunction((PetscObject)ksp->pc, "DCDMPCApplySingle_C", &pc_single));
    DCDMPCSingleWorkspace workspace = nullptr;
    if (pc_single) PetscCall(PetscObjectQueryFunction((PetscObject)ksp->pc, "DCDMPCSingleWorkspace_C", &workspace));
    PetscInt wanted = 0;
    if (workspace) PetscCall(workspace(ksp->pc, &wanted));
    capacity = std::max(capacity, wanted);
  }
  PetscCall(make_ring(ksp, single, capacity));
  if (single && !pc_single) PetscCall(ensure_vector(s, &s->d));
  if (!lean) PetscCall(ensure_vector(s, &s->ad));
  PetscInt kept = 0, oldest = 0;  // ring of kept directions: slots [0, kept), oldest next to go
  for (PetscInt it = 1; it <= ksp->max_it; ++it) {
    // The generator's direction: the PC applied to the residual.
    if (pc_single) PetscCall(pc_single(ksp->pc, s->r, s->single_capacity, s->df));
    else PetscCall(KSP_PCApply(ksp, s->r, s->d));
    // The slot the new pair takes: the next free one, else the oldest pair's.
    const PetscInt slot = kept < s->k ? kept : oldest;
    Vec ad = lean && !single ? s->ap[slot] : s->ad;  // where A d goes (the float path: apf[slot])
    bool consumed = false;                           // the lean mat-vec overwrote the oldest pair's A p
    Candidate chosen;
    if (single)
      PetscCall(make_lean_candidate_single(ksp, amat, mult_single, nullspace, pc_single ? nullptr : s->d, slot, kept,
                                           rnorm, &chosen, &consumed));
    else if (lean) PetscCall(make_lean_candidate(ksp, amat, nullspace, ad, kept, rnorm, &chosen, &consumed));
    else PetscCall(make_candidate(ksp, amat, nullspace, s->d, s->ad, kept, rnorm, &chosen));
    if (chosen.failure == Failure::None) {
      bool take_jacobi = false;
      if (s->fallback == KSPDCDM_FALLBACK_BEST) {
        PetscCall(PetscLogEventBegin(g_event_fallback, ksp, 0, 0, 0));
        Candidate jacobi;
        PetscCall(ensure_vector(s, &s->dj));
        PetscCall(ensure_vector(s, &s->adj));
        PetscCall(fill_jacobi(ksp, amat, s->dj));
        PetscCall(make_candidate(ksp, amat, nullspace, s->dj, s->adj, kept, rnorm, &jacobi));
        // The A-norm error reduction of an exact line search is (d.r)^2 / d.Ad.
        take_jacobi = jacobi.failure == Failure::None &&
                      jacobi.dr * jacobi.dr / jacobi.dad > chosen.dr * chosen.dr / chosen.dad;
        if (take_jacobi) {
          std::swap(s->d, s->dj);
          std::swap(s->ad, s->adj);
          chosen = jacobi;
          ++s->stats.fallback_weak;
          ++s->stats.fallback_directions;
        }
        PetscCall(PetscLogEventEnd(g_event_fallback, ksp, 0, 0, 0));
      }
      if (!take_jacobi) ++s->stats.generator_directions;
    } else {
      const Failure failure = chosen.failure;
      if (s->fallback == KSPDCDM_FALLBACK_OFF) {
        ksp->reason = reason_of(failure);
        break;
      }
      if (failure == Failure::NonFinite) ++s->stats.fallback_nan;
      else if (failure == Failure::Curvature) ++s->stats.fallback_curvature;
      else ++s->stats.fallback_vanished;
      ++s->stats.fallback_directions;
      PetscCall(PetscLogEventBegin(g_event_fallback, ksp, 0, 0, 0));
      // The Jacobi direction is A-orthogonalised against all kept directions, as the PC's was:
      // where the failed direction's A d took the oldest pair's image buffer, that pair's A p
      // is made again (one more mat-vec, on this rare path only).
      if (consumed && kept == s->k) {
        if (single) {
          PetscScalar unused[3];
          PetscCall(mult_single(amat, s->pf[slot], s->apf[slot], s->r, unused));
        } else {
          PetscCall(KSP_MatMult(ksp, amat, s->p[slot], s->ap[slot]));
        }
      }
      PetscCall(ensure_vector(s, &s->d));
      PetscCall(fill_jacobi(ksp, amat, s->d));
      if (single)
        PetscCall(make_lean_candidate_single(ksp, amat, mult_single, nullspace, s->d, slot, kept, rnorm, &chosen,
                                             &consumed));
      else if (lean) PetscCall(make_lean_candidate(ksp, amat, nullspace, ad, kept, rnorm, &chosen, &consumed));
      else PetscCall(make_candidate(ksp, amat, nullspace, s->d, s->ad, kept, rnorm, &chosen));
      PetscCall(PetscLogEventEnd(g_event_fallback, ksp, 0, 0, 0));
      if (chosen.failure != Failure::None) {
        ksp->reason = reason_of(chosen.failure);
        break;
      }
    }

    const PetscReal alpha = chosen.dr / chosen.dad;
    if (!std::isfinite(alpha)) {
      ksp->reason = KSP_DIVERGED_NANORINF;
      break;
    }
    if (!lean) ad = s->ad;  // the best mode may have swapped the Jacobi pair in
    PetscReal new_norm = 0;
    if (single) PetscCall(step_arrays(ksp, x, s->r, s->df, s->apf[slot], alpha, &new_norm));
    else PetscCall(step(ksp, x, s->r, s->d, ad, alpha, &new_norm));
    if (!std::isfinite(new_norm)) {  // overflow: undo the step, keep the last finite iterate
      if (single) {
        PetscCall(add_single(x, -alpha, s->df));
        PetscCall(add_single(s->r, alpha, s->apf[slot]));
      } else {
        PetscCall(VecAXPY(x, -alpha, s->d));
        PetscCall(VecAXPY(s->r, alpha, ad));
      }
      ksp->reason = KSP_DIVERGED_NANORINF;
      break;
    }
    rnorm = new_norm;
    // A d rounded to float is not exactly in the range of a singular A: the updated residual
    // would gather null-space parts that no direction removes (it stalled near 2e-8 of ||b|| on
    // closed speckled regions), so it is projected again after each float step.
    if (single && nullspace) {
      PetscCall(MatNullSpaceRemove(nullspace, s->r));
      PetscCall(VecNorm(s->r, NORM_2, &rnorm));
    }

    if (s->k > 0) {  // keep (d, Ad): swap the handles into the ring, the oldest become work
      if (kept < s->k) ++kept;
      else oldest = (oldest + 1) % s->k;
      if (single) std::swap(s->pf[slot], s->df);  // A d is in apf[slot] already
      else std::swap(s->p[slot], s->d);
      if (!lean) std::swap(s->ap[slot], s->ad);  // the lean path's A d is in ap[slot] already
      s->pap[slot] = chosen.dad;
    }
    // The updated residual carries A d's rounding to float: where it passes the convergence
    // test, the test is taken again on b - A x, from which the iteration goes on if it fails.
    bool confirming = false;
    if (single) {
      KSPConvergedReason tentative = KSP_CONVERGED_ITERATING;
      PetscCall((*ksp->converged)(ksp, it, rnorm, &tentative, ksp->cnvP));
      confirming = tentative > 0;
      if (confirming) PetscCall(true_residual(ksp, amat, nullspace, x, b, &rnorm));
    }
    PetscCall(report_iteration(ksp, it, rnorm));
    if (confirming && ksp->reason <= 0) ++s->stats.residual_replacements;
    if (ksp->reason) break;
  }
  if (!ksp->reason) ksp->reason = KSP_DIVERGED_ITS;
  PetscFunctionReturn(0);
}

PetscErrorCode KSPReset_DCDM(KSP ksp) {
  PetscFunctionBegin;
  PetscCall(destroy_vectors(data_of(ksp)));
  PetscFunctionReturn(0);
}

PetscErrorCode KSPDCDMSetK_DCDM(KSP ksp, PetscInt k) {
  KspDcdm* s = data_of(ksp);
  PetscFunctionBegin;
  PetscCheck(k >= 0 && k <= kMaxKept, PetscObjectComm((PetscObject)ksp), PETSC_ERR_ARG_OUTOFRANGE,
             "-ksp_dcdm_k: must be in [0, %d] (got %" PetscInt_FMT ")", static_cast<int>(kMaxKept), k);
  if (k != s->k) {
    PetscCall(destroy_vectors(s));
    s->k = k;
    ksp->setupstage = KSP_SETUP_NEW;  // the kept-direction vectors are remade by the next solve
  }
  PetscFunctionReturn(0);
}

PetscErrorCode KSPDCDMSetFallback_DCDM(KSP ksp, KSPDCDMFallback f) {
  PetscFunctionBegin;
  PetscCheck(f >= KSPDCDM_FALLBACK_BEST && f <= KSPDCDM_FALLBACK_OFF, PetscObjectComm((PetscObject)ksp),
             PETSC_ERR_ARG_OUTOFRANGE, "-ksp_dcdm_fallback: unknown value %d", static_cast<int>(f));
  data_of(ksp)->fallback = f;
  PetscFunctionReturn(0);
}

PetscErrorCode KSPDCDMSetVectors_DCDM(KSP ksp, KSPDCDMVectors v) {
  PetscFunctionBegin;
  PetscCheck(v >= KSPDCDM_VECTORS_AUTO && v <= KSPDCDM_VECTORS_FLOAT, PetscObjectComm((PetscObject)ksp),
             PETSC_ERR_ARG_OUTOFRANGE, "-ksp_dcdm_vectors: unknown value %d", static_cast<int>(v));
  data_of(ksp)->vectors = v;
  PetscFunctionReturn(0);
}

PetscErrorCode KSPDCDMGetStats_DCDM(KSP ksp, KSPDCDMStats* stats) {
  PetscFunctionBegin;
  *stats = data_of(ksp)->stats;
  PetscFunctionReturn(0);
}

PetscErrorCode KSPDestroy_DCDM(KSP ksp) {
  PetscFunctionBegin;
  PetscCall(KSPReset_DCDM(ksp));
  delete data_of(ksp);
  ksp->data = nullptr;
  PetscCall(PetscObjectComposeFunction((PetscObject)ksp, "KSPDCDMSetK_C", nullptr));
  PetscCall(PetscObjectComposeFunction((PetscObject)ksp, "KSPDCDMSetFallback_C", nullptr));
  PetscCall(PetscObjectComposeFunction((PetscObject)ksp, "KSPDCDMSetVectors_C", nullptr));
  PetscCall(PetscObjectComposeFunction((PetscObject)ksp, "KSPDCDMGetStats_C", nullptr));
  PetscFunctionReturn(0);
}

PetscErrorCode KSPSetFromOptions_DCDM(KSP ksp, PetscOptionItems* PetscOptionsObject) {
  KspDcdm* s = data_of(ksp);
  PetscFunctionBegin;
  PetscOptionsHeadBegin(PetscOptionsObject, "KSP DCDM options");
  PetscInt k = s->k;
  PetscBool set = PETSC_FALSE;
  PetscCall(PetscOptionsRangeInt("-ksp_dcdm_k", "Directions kept for A-orthogonalisation", "KSPDCDMSetK",
                                 s->k, &k, &set, 0, kMaxKept));
  if (set) PetscCall(KSPDCDMSetK_DCDM(ksp, k));
  PetscInt which = static_cast<PetscInt>(s->fallback);
  PetscCall(PetscOptionsEList("-ksp_dcdm_fallback",
                              "When to take the Jacobi direction instead of the PC's: best (also when it "
                              "gains more), failures (NaN, curvature, vanishing only), off (stop)",
                              "KSPDCDMSetFallback", kFallbackNames, 3, kFallbackNames[which], &which, &set));
  if (set) s->fallback = static_cast<KSPDCDMFallback>(which);
  which = static_cast<PetscInt>(s->vectors);
  PetscCall(PetscOptionsEList("-ksp_dcdm_vectors",
                              "Precision of the direction, its image and the kept pairs on the lean path: auto "
                              "(float for targets of at least 1e-7 of the initial residual), double, float",
                              "KSPDCDMSetVectors", kVectorsNames, 3, kVectorsNames[which], &which, &set));
  if (set) s->vectors = static_cast<KSPDCDMVectors>(which);
  PetscCall(PetscOptionsReal("-ksp_dcdm_vanish_tol",
                             "A direction vanishes when A-orthogonalisation leaves this fraction of d.Ad, "
                             "or when |d.r| <= tol ||d|| ||r||",
                             "", s->vanish_tolerance, &s->vanish_tolerance, nullptr));
  PetscOptionsHeadEnd();
  PetscFunctionReturn(0);
}

PetscErrorCode KSPView_DCDM(KSP ksp, PetscViewer viewer) {
  KspDcdm* s = data_of(ksp);
  PetscBool ascii = PETSC_FALSE, string = PETSC_FALSE;
  PetscFunctionBegin;
  PetscCall(PetscObjectTypeCompare((PetscObject)viewer, PETSCVIEWERASCII, &ascii));
  PetscCall(PetscObjectTypeCompare((PetscObject)viewer, PETSCVIEWERSTRING, &string));
  if (string)
    PetscCall(PetscViewerStringSPrintf(viewer, " k=%" PetscInt_FMT " fallback %s vectors %s", s->k,
                                       kFallbackNames[s->fallback], kVectorsNames[s->vectors]));
  if (ascii) {
    PetscCall(PetscViewerASCIIPrintf(viewer, "  kept directions k=%" PetscInt_FMT ", fallback %s, vectors %s\n", s->k,
                                     kFallbackNames[s->fallback], kVectorsNames[s->vectors]));
    const KSPDCDMStats& st = s->stats;
    PetscCall(PetscViewerASCIIPrintf(viewer,
                                     "  last solve: %" PetscInt_FMT " PC directions, %" PetscInt_FMT
                                     " Jacobi fallbacks (%" PetscInt_FMT " NaN/Inf, %" PetscInt_FMT
                                     " curvature, %" PetscInt_FMT " vanished, %" PetscInt_FMT
                                     " weaker than Jacobi)\n",
                                     st.generator_directions, st.fallback_directions, st.fallback_nan,
                                     st.fallback_curvature, st.fallback_vanished, st.fallback_weak));
    PetscCall(PetscViewerASCIIPrintf(viewer, "  last solve's directions in %s, %" PetscInt_FMT " residual replacements\n",
                                     st.single_precision_vectors ? "float" : "double", st.residual_replacements));
  }
  PetscFunctionReturn(0);
}

}  // namespace

extern "C" PetscErrorCode KSPCreate_DCDM(KSP ksp) {
  PetscFunctionBegin;
  ksp->data = new KspDcdm();
  // The serial solver's convergence test is on ||b - Ax||; the PC side does not matter (the
  // PC only makes directions).
  PetscCall(KSPSetSupportedNorm(ksp, KSP_NORM_UNPRECONDITIONED, PC_LEFT, 3));
  PetscCall(KSPSetSupportedNorm(ksp, KSP_NORM_UNPRECONDITIONED, PC_RIGHT, 2));
  ksp->ops->setup = KSPSetUp_DCDM;
  ksp->ops->solve = KSPSolve_DCDM;
  ksp->ops->destroy = KSPDestroy_DCDM;
  ksp->ops->reset = KSPReset_DCDM;
  ksp->ops->view = KSPView_DCDM;
  ksp->ops->setfromoptions = KSPSetFromOptions_DCDM;
  ksp->ops->buildsolution = KSPBuildSolutionDefault;
  ksp->ops->buildresidual = KSPBuildResidualDefault;
  PetscCall(PetscObjectComposeFunction((PetscObject)ksp, "KSPDCDMSetK_C", KSPDCDMSetK_DCDM));
  PetscCall(PetscObjectComposeFunction((PetscObject)ksp, "KSPDCDMSetFallback_C", KSPDCDMSetFallback_DCDM));
  PetscCall(PetscObjectComposeFunction((PetscObject)ksp, "KSPDCDMSetVectors_C", KSPDCDMSetVectors_DCDM));
  PetscCall(PetscObjectComposeFunction((PetscObject)ksp, "KSPDCDMGetStats_C", KSPDCDMGetStats_DCDM));
  PetscFunctionReturn(0);
}

extern "C" PetscErrorCode KSPDCDMSetK(KSP ksp, PetscInt k) {
  PetscFunctionBegin;
  PetscValidHeaderSpecific(ksp, KSP_CLASSID, 1);
  PetscTryMethod(ksp, "KSPDCDMSetK_C", (KSP, PetscInt), (ksp, k));
  PetscFunctionReturn(0);
}

extern "C" PetscErrorCode KSPDCDMSetFallback(KSP ksp, KSPDCDMFallback f) {
  PetscFunctionBegin;
  PetscValidHeaderSpecific(ksp, KSP_CLASSID, 1);
  PetscTryMethod(ksp, "KSPDCDMSetFallback_C", (KSP, KSPDCDMFallback), (ksp, f));
  PetscFunctionReturn(0);
}

extern "C" PetscErrorCode KSPDCDMSetVectors(KSP ksp, KSPDCDMVectors vectors) {
  PetscFunctionBegin;
  PetscValidHeaderSpecific(ksp, KSP_CLASSID, 1);
  PetscTryMethod(ksp, "KSPDCDMSetVectors_C", (KSP, KSPDCDMVectors), (ksp, vectors));
  PetscFunctionReturn(0);
}

extern "C" PetscErrorCode KSPDCDMGetStats(KSP ksp, KSPDCDMStats* stats) {
  PetscFunctionBegin;
  PetscValidHeaderSpecific(ksp, KSP_CLASSID, 1);
  PetscUseMethod(ksp, "KSPDCDMGetStats_C", (KSP, KSPDCDMStats*), (ksp, stats));
  PetscFunctionReturn(0);
}

namespace {
bool g_registered = false;
// PetscFinalize forgets the registration (KSPList): a later PetscInitialize registers again.
PetscErrorCode forget_registration(void) {
  g_registered = false;
  return 0;
}
}  // namespace

extern "C" PetscErrorCode DCDMKSPRegister(void) {
  PetscFunctionBegin;
  if (g_registered) PetscFunctionReturn(0);
  g_registered = true;
  PetscCall(PetscRegisterFinalize(forget_registration));
  PetscCall(KSPInitializePackage());
  PetscCall(KSPRegister(KSPDCDM, KSPCreate_DCDM));
  PetscCall(PetscLogEventRegister("KSPDCDMOrthog", KSP_CLASSID, &g_event_orthogonalise));
  PetscCall(PetscLogEventRegister("KSPDCDMFallback", KSP_CLASSID, &g_event_fallback));
  PetscCall(PetscLogEventRegister("KSPDCDMStep", KSP_CLASSID, &g_event_step));
  PetscFunctionReturn(0);
}

// Called by PETSc when the library is opened with -dll_append / -dll_prepend (PETSc derives
// the name from the file name libdcdm_petsc.so).
extern "C" PetscErrorCode PetscDLLibraryRegister_dcdm_petsc(void) {
  PetscFunctionBegin;
  PetscCall(DCDMKSPRegister());
  PetscFunctionReturn(0);
}
