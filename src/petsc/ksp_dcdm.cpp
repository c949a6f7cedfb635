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
// This file needs PETSc only (not the dcdm core), so that libdcdm_petsc.so loads into an
// unmodified PETSc program with -dll_append.
#include "dcdm/petsc.hpp"

#include <petsc/private/kspimpl.h>

#include <algorithm>
#include <cmath>

namespace {

const char* const kFallbackNames[] = {"best", "failures", "off"};
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

// x += alpha d, r -= alpha ad and ||r|| in one pass over the four vectors and one reduction
// (three passes and a reduction as VecAXPY, VecAXPY, VecNorm).
PetscErrorCode step(KSP ksp, Vec x, Vec r, Vec d, Vec ad, PetscScalar alpha, PetscReal* rnorm) {
  PetscFunctionBegin;
  PetscCall(PetscLogEventBegin(g_event_step, ksp, 0, 0, 0));
  PetscInt n = 0;
  PetscCall(VecGetLocalSize(x, &n));
  PetscScalar *xv = nullptr, *rv = nullptr;
  const PetscScalar *dv = nullptr, *adv = nullptr;
  PetscCall(VecGetArray(x, &xv));
  PetscCall(VecGetArray(r, &rv));
  PetscCall(VecGetArrayRead(d, &dv));
  PetscCall(VecGetArrayRead(ad, &adv));
  // Four partial sums: independent additions to overlap (the loop streams memory).
  PetscReal part[4] = {0, 0, 0, 0};
  PetscInt i = 0;
  for (; i + 4 <= n; i += 4)
    for (int u = 0; u < 4; ++u) {
      xv[i + u] += alpha * dv[i + u];
      rv[i + u] -= alpha * adv[i + u];
      part[u] += PetscRealPart(PetscConj(rv[i + u]) * rv[i + u]);
    }
  for (; i < n; ++i) {
    xv[i] += alpha * dv[i];
    rv[i] -= alpha * adv[i];
    part[0] += PetscRealPart(PetscConj(rv[i]) * rv[i]);
  }
  PetscCall(VecRestoreArrayRead(ad, &adv));
  PetscCall(VecRestoreArrayRead(d, &dv));
  PetscCall(VecRestoreArray(r, &rv));
  PetscCall(VecRestoreArray(x, &xv));
  PetscReal local = (part[0] + part[1]) + (part[2] + part[3]), rr = 0;
  PetscCall(MPIU_Allreduce(&local, &rr, 1, MPIU_REAL, MPIU_SUM, PetscObjectComm((PetscObject)ksp)));
  *rnorm = std::sqrt(rr);
  PetscCall(PetscLogEventEnd(g_event_step, ksp, 0, 0, 0));
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
  // Vectors, all owned here (their handles are swapped between roles as directions are kept).
  // With k > 0 and the fallback modes failures/off, the solve holds r, d and the k kept pairs
  // only (2k + 2 vectors): A d goes into the image buffer of the slot the new pair takes (see
  // make_lean_candidate). ad is made only where a separate A d buffer is needed (k = 0, best).
  PetscInt allocated = -1;  // k the vectors were made for (-1: none)
  Vec r = nullptr, d = nullptr, ad = nullptr, dj = nullptr, adj = nullptr;
  Vec* p = nullptr;   // kept directions (ring of k)
  Vec* ap = nullptr;  // their images A p
  PetscReal pap[kMaxKept] = {};
  Vec inverse_diagonal = nullptr;  // the Jacobi fallback, made on first use per set-up
  KSPDCDMStats stats{};
};

KspDcdm* data_of(KSP ksp) { return static_cast<KspDcdm*>(ksp->data); }

PetscErrorCode destroy_vectors(KspDcdm* s) {
  PetscFunctionBegin;
  PetscCall(VecDestroy(&s->r));
  PetscCall(VecDestroy(&s->d));
  PetscCall(VecDestroy(&s->ad));
  PetscCall(VecDestroy(&s->dj));
  PetscCall(VecDestroy(&s->adj));
  if (s->allocated > 0) {
    PetscCall(VecDestroyVecs(s->allocated, &s->p));
    PetscCall(VecDestroyVecs(s->allocated, &s->ap));
  }
  s->p = s->ap = nullptr;
  s->allocated = -1;
  PetscCall(VecDestroy(&s->inverse_diagonal));
  PetscFunctionReturn(0);
}

// The work vectors, made by the first solve after a set-up that changed k, not by KSPSetUp:
// KSPSetUp sets the PC up after this KSP's set-up, and a PC's set-up temporaries (the
// dcdm_mg cycle's model evaluation) then peak without the work vectors beside them.
PetscErrorCode make_vectors(KSP ksp) {
  KspDcdm* s = data_of(ksp);
  PetscFunctionBegin;
  if (s->allocated == s->k && s->r) PetscFunctionReturn(0);
  PetscCall(destroy_vectors(s));
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
  PetscCall(VecDuplicate(s->r, &s->d));
  // ad (the separate A d buffer) and the Jacobi candidate's pair (dj, Adj) are made on
  // first use: with k > 0 and -ksp_dcdm_fallback failures or off the solve never needs them.
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
  if (s->allocated != s->k) PetscCall(destroy_vectors(s));
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
    PetscScalar first[kMaxKept + 1];
    for (PetscInt j = 0; j < m; ++j) with[j] = s->ap[j];
    with[m] = d;
    PetscCall(VecMDot(d, m + 1, with, first));
    bool finite = true;
    for (PetscInt j = 0; j <= m; ++j) finite = finite && std::isfinite(PetscRealPart(first[j]));
    const PetscReal dd0 = PetscRealPart(first[m]);
    if (!finite || dd0 == 0) {  // a NaN or Inf of d shows in d.d; d = 0 has nothing to give
      *out = {finite ? Failure::Vanished : Failure::NonFinite};
      PetscCall(PetscLogEventEnd(g_event_orthogonalise, ksp, 0, 0, 0));
      PetscFunctionReturn(0);
    }
    PetscScalar minus_beta[kMaxKept];
    for (PetscInt j = 0; j < m; ++j) {
      minus_beta[j] = -first[j] / s->pap[j];
      removed += PetscRealPart(first[j] * first[j]) / s->pap[j];
    }
    PetscCall(VecMAXPY(d, m, minus_beta, s->p));
  }
  PetscScalar sums[3];
  PetscCall(mat_mult_dots(ksp, amat, d, ad, s->r, sums));
  *consumed = true;
  const PetscReal dad = PetscRealPart(sums[0]), dr = PetscRealPart(sums[1]), dd = PetscRealPart(sums[2]);
  const PetscReal dad0 = dad + removed;
  const PetscReal vtol = s->vanish_tolerance;
  if (!std::isfinite(dad) || !std::isfinite(dr) || !std::isfinite(dd)) *out = {Failure::NonFinite};
  else if (dad0 <= 0) *out = {dd == 0 ? Failure::Vanished : Failure::Curvature};
  else if (dad <= vtol * dad0) *out = {m == 0 ? Failure::Curvature : Failure::Vanished};
  else if (std::abs(dr) <= vtol * std::sqrt(dd) * rnorm) *out = {Failure::OrthogonalToResidual};
  else *out = {Failure::None, dad, dr};
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

PetscErrorCode KSPSolve_DCDM(KSP ksp) {
  KspDcdm* s = data_of(ksp);
  PetscFunctionBegin;
  Vec x = ksp->vec_sol, b = ksp->vec_rhs;
  Mat amat = nullptr, pmat = nullptr;
  PetscCall(PCGetOperators(ksp->pc, &amat, &pmat));
  MatNullSpace nullspace = nullptr;
  PetscCall(MatGetNullSpace(amat, &nullspace));
  s->stats = KSPDCDMStats{};
  PetscCall(make_vectors(ksp));

  // r = b - A x, projected onto the range of A for a singular operator (the serial solver
  // works with the compatible part of b the same way).
  if (!ksp->guess_zero) {
    PetscCall(KSP_MatMult(ksp, amat, x, s->r));
    PetscCall(VecAYPX(s->r, -1.0, b));
  } else {
    PetscCall(VecCopy(b, s->r));
  }
  if (nullspace) PetscCall(MatNullSpaceRemove(nullspace, s->r));
  PetscReal rnorm = 0;
  PetscCall(VecNorm(s->r, NORM_2, &rnorm));
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
  if (!lean && !s->ad) PetscCall(VecDuplicate(s->r, &s->ad));
  PetscInt kept = 0, oldest = 0;  // ring of kept directions: slots [0, kept), oldest next to go
  for (PetscInt it = 1; it <= ksp->max_it; ++it) {
    // The generator's direction: the PC applied to the residual.
    PetscCall(KSP_PCApply(ksp, s->r, s->d));
    // The slot the new pair takes: the next free one, else the oldest pair's.
    const PetscInt slot = kept < s->k ? kept : oldest;
    Vec ad = lean ? s->ap[slot] : s->ad;  // where A d goes
    bool consumed = false;                // the lean mat-vec overwrote the oldest pair's A p
    Candidate chosen;
    if (lean) PetscCall(make_lean_candidate(ksp, amat, nullspace, ad, kept, rnorm, &chosen, &consumed));
    else PetscCall(make_candidate(ksp, amat, nullspace, s->d, s->ad, kept, rnorm, &chosen));
    if (chosen.failure == Failure::None) {
      bool take_jacobi = false;
      if (s->fallback == KSPDCDM_FALLBACK_BEST) {
        PetscCall(PetscLogEventBegin(g_event_fallback, ksp, 0, 0, 0));
        Candidate jacobi;
        if (!s->dj) PetscCall(VecDuplicate(s->r, &s->dj));
        if (!s->adj) PetscCall(VecDuplicate(s->r, &s->adj));
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
      if (consumed && kept == s->k) PetscCall(KSP_MatMult(ksp, amat, s->p[slot], s->ap[slot]));
      PetscCall(fill_jacobi(ksp, amat, s->d));
      if (lean) PetscCall(make_lean_candidate(ksp, amat, nullspace, ad, kept, rnorm, &chosen, &consumed));
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
    PetscCall(step(ksp, x, s->r, s->d, ad, alpha, &new_norm));
    if (!std::isfinite(new_norm)) {  // overflow: undo the step, keep the last finite iterate
      PetscCall(VecAXPY(x, -alpha, s->d));
      PetscCall(VecAXPY(s->r, alpha, ad));
      ksp->reason = KSP_DIVERGED_NANORINF;
      break;
    }
    rnorm = new_norm;

    if (s->k > 0) {  // keep (d, Ad): swap the handles into the ring, the oldest become work
      if (kept < s->k) ++kept;
      else oldest = (oldest + 1) % s->k;
      std::swap(s->p[slot], s->d);
      if (!lean) std::swap(s->ap[slot], s->ad);  // the lean path's A d is in ap[slot] already
      s->pap[slot] = chosen.dad;
    }
    PetscCall(report_iteration(ksp, it, rnorm));
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
    PetscCall(PetscViewerStringSPrintf(viewer, " k=%" PetscInt_FMT " fallback %s", s->k, kFallbackNames[s->fallback]));
  if (ascii) {
    PetscCall(PetscViewerASCIIPrintf(viewer, "  kept directions k=%" PetscInt_FMT ", fallback %s\n", s->k,
                                     kFallbackNames[s->fallback]));
    const KSPDCDMStats& st = s->stats;
    PetscCall(PetscViewerASCIIPrintf(viewer,
                                     "  last solve: %" PetscInt_FMT " PC directions, %" PetscInt_FMT
                                     " Jacobi fallbacks (%" PetscInt_FMT " NaN/Inf, %" PetscInt_FMT
                                     " curvature, %" PetscInt_FMT " vanished, %" PetscInt_FMT
                                     " weaker than Jacobi)\n",
                                     st.generator_directions, st.fallback_directions, st.fallback_nan,
                                     st.fallback_curvature, st.fallback_vanished, st.fallback_weak));
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
