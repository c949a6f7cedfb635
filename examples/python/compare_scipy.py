#!/usr/bin/env python3
"""dcdm's solvers beside SciPy's conjugate gradients on one pressure system.

dcdm: mgpcg, dcdm-relax, ic0 and cg (set up once on the domain, then solved). SciPy:
scipy.sparse.linalg.cg without a preconditioner and with an incomplete LU factorisation
(scipy.sparse.linalg.spilu) as M, both on the fluid-only submatrix (ILU only while the system
has at most --ilu-max unknowns). Every run stops at ||b - A x|| <= rtol ||b||; the table shows
iterations, set-up and solve seconds and the true relative residual ||b - A x|| / ||b||
recomputed here; the plot shows the residual history of every run.

    PYTHONPATH=build/python /usr/bin/python3 examples/python/compare_scipy.py
    PYTHONPATH=build/python /usr/bin/python3 examples/python/compare_scipy.py --scene bunny --n 64 --out bunny.png

The scene should have air or an open face (the default scenes have an open top): dcdm
projects singular systems, SciPy does not.
"""

import argparse
import inspect
import time

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

import dcdm


def scipy_cg(A, b, rtol, M=None, callback=None, maxiter=None):
    """scipy.sparse.linalg.cg with a relative tolerance (`tol=` up to SciPy 1.11, `rtol=` after)."""
    params = inspect.signature(scipy.sparse.linalg.cg).parameters
    kw = {"rtol": rtol} if "rtol" in params else {"tol": rtol}
    return scipy.sparse.linalg.cg(A, b, atol=0.0, M=M, callback=callback, maxiter=maxiter, **kw)


def run_dcdm(method, domain, b, A, rtol, maxiter):
    t0 = time.perf_counter()
    solver = dcdm.Solver(method, domain=domain)
    setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    x, info = solver.solve(b, rtol=rtol, maxiter=maxiter)
    solve = time.perf_counter() - t0
    true_rel = np.linalg.norm(b.ravel() - A @ x.ravel()) / np.linalg.norm(b)
    return dict(name=f"dcdm {method}", iterations=info.iterations, setup=setup, solve=solve, rel=true_rel,
                history=np.asarray(info.residuals) / np.linalg.norm(b), converged=info.converged)


def run_scipy(name, Af, bf, rtol, maxiter, make_M):
    t0 = time.perf_counter()
    M = make_M() if make_M else None
    setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    count = [0]
    x, code = scipy_cg(Af, bf, rtol, M=M, maxiter=maxiter, callback=lambda xk: count.__setitem__(0, count[0] + 1))
    solve = time.perf_counter() - t0
    # the residual history: a second run that records ||b - A x_k|| (not timed)
    bnorm = np.linalg.norm(bf)
    history = [1.0]
    scipy_cg(Af, bf, rtol, M=M, maxiter=maxiter,
             callback=lambda xk: history.append(np.linalg.norm(bf - Af @ xk) / bnorm))
    return dict(name=name, iterations=count[0], setup=setup, solve=solve, rel=np.linalg.norm(bf - Af @ x) / bnorm,
                history=np.array(history), converged=code == 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scene", default="sphere", help="dcdm scene (default sphere; see dcdm.scene_names())")
    ap.add_argument("--n", type=int, default=48, help="grid cells per side (default 48)")
    ap.add_argument("--seed", type=int, default=0, help="scene and right-hand-side seed")
    ap.add_argument("--rtol", type=float, default=1e-6, help="relative tolerance (default 1e-6)")
    ap.add_argument("--maxiter", type=int, default=5000)
    ap.add_argument("--methods", default="mgpcg,dcdm-relax,ic0,cg", help="dcdm methods, comma-separated")
    ap.add_argument("--ilu-max", type=int, default=300_000,
                    help="largest system (unknowns) for SciPy's ILU (default 300000; its set-up grows fast)")
    ap.add_argument("--ilu-drop-tol", type=float, default=1e-2, help="spilu drop_tol (default 1e-2)")
    ap.add_argument("--ilu-fill", type=float, default=10.0, help="spilu fill_factor (default 10)")
    ap.add_argument("--out", default="compare_scipy.png", help="plot file (default compare_scipy.png)")
    args = ap.parse_args()

    domain = dcdm.scene(args.scene, n=args.n, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    fluid = domain.cells == dcdm.FLUID
    b = rng.standard_normal(domain.shape) * fluid
    A = dcdm.Operator(domain).to_scipy()
    rows = np.flatnonzero(fluid.ravel())
    Af = A[rows][:, rows].tocsr()     # the fluid-only (compressed) system, SPD with an open face
    bf = b.ravel()[rows]
    print(f"scene {args.scene} {args.n}^3: {len(rows)} fluid cells, {Af.nnz} non-zeros in the fluid-only matrix; "
          f"{dcdm.get_num_threads()} threads; rtol {args.rtol:g}")

    results = []
    for method in args.methods.split(","):
        results.append(run_dcdm(method.strip(), domain, b, A, args.rtol, args.maxiter))
    results.append(run_scipy("scipy cg", Af, bf, args.rtol, args.maxiter, None))
    if len(rows) <= args.ilu_max:
        def make_ilu():
            # Threshold dropping only (SuperLU's default rule also drops by area, which leaves a
            # factor too unsymmetric for CG to converge), a symmetric ordering, no pivoting.
            ilu = scipy.sparse.linalg.spilu(Af.tocsc(), drop_tol=args.ilu_drop_tol, fill_factor=args.ilu_fill,
                                            permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                                            options=dict(ILU_DropRule="BASIC", Equil=False))
            return scipy.sparse.linalg.LinearOperator(Af.shape, matvec=ilu.solve, dtype=np.float64)
        results.append(run_scipy(f"scipy cg + spilu({args.ilu_drop_tol:g})", Af, bf, args.rtol, args.maxiter,
                                 make_ilu))
    else:
        print(f"(scipy spilu skipped: {len(rows)} unknowns > --ilu-max {args.ilu_max})")

    print(f"\n{'method':28s} {'iterations':>10s} {'setup s':>9s} {'solve s':>9s} {'total s':>9s} {'rel. residual':>14s}")
    for r in results:
        flag = "" if r["converged"] else "  (not converged)"
        print(f"{r['name']:28s} {r['iterations']:10d} {r['setup']:9.3f} {r['solve']:9.3f} "
              f"{r['setup'] + r['solve']:9.3f} {r['rel']:14.3e}{flag}")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in results:
        ax.semilogy(np.arange(len(r["history"])), r["history"], marker="." if len(r["history"]) < 60 else None,
                    linestyle="--" if r["name"].startswith("scipy") else "-",
                    label=f"{r['name']} ({r['iterations']} it.)")
    ax.axhline(args.rtol, color="gray", linestyle=":", linewidth=1)
    ax.set_xlabel("iteration")
    ax.set_ylabel(r"relative residual $\|b - Ax_k\| / \|b\|$")
    ax.set_title(f"{args.scene} {args.n}$^3$ ({len(rows)} fluid cells)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
