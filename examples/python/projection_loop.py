#!/usr/bin/env python3
"""A 3-D smoke simulation in NumPy whose pressure projection is solved by dcdm.

The fluid code is ours (MAC velocities, semi-Lagrangian advection, buoyancy, divergence,
gradient update, all in NumPy); dcdm only solves A p = b, with one solver set up once and
reused every step (warm-started from the previous pressure). Units are physical, with the
conventions of docs/INTEGRATION.md (sections 2-5):

    b = -(rho dx^2 / dt) div u*          on fluid cells, 0 elsewhere
    u_face -= dt / (rho dx) (p_right - p_left)   on fluid-fluid and fluid-air faces

A 1 m box of N^3 cells with a solid sphere, walls and an open top; smoke enters through an
inflow patch in the floor (a wall face with a prescribed velocity) and rises by buoyancy.
With --closed every side is a wall and there is no inflow: the singular (all-Neumann) case,
which dcdm handles by projecting b.

Prints the largest divergence before and after each projection and exits with status 1
if a solve does not converge or leaves more than --max-ratio of the divergence.

    PYTHONPATH=build/python /usr/bin/python3 examples/python/projection_loop.py
    PYTHONPATH=build/python /usr/bin/python3 examples/python/projection_loop.py --n 48 --method dcdm-relax
    PYTHONPATH=build/python /usr/bin/python3 examples/python/projection_loop.py --closed
"""

import argparse
import sys
import time

import numpy as np
from scipy.ndimage import map_coordinates

import dcdm

SOLID, FLUID, AIR = dcdm.SOLID, dcdm.FLUID, dcdm.AIR


def make_domain(n, closed):
    """Cell types (nz, ny, nx) = (n, n, n): fluid with a solid sphere; walls, open top."""
    k, j, i = np.meshgrid(np.arange(n), np.arange(n), np.arange(n), indexing="ij")
    centre, radius = np.array([0.5, 0.5, 0.55]) * n, 0.15 * n
    inside = ((i + 0.5 - centre[0]) ** 2 + (j + 0.5 - centre[1]) ** 2 + (k + 0.5 - centre[2]) ** 2) < radius ** 2
    cells = np.where(inside, SOLID, FLUID).astype(np.uint8)
    faces = {} if closed else {"zmax": "open"}
    return dcdm.Domain(cells, faces=faces)


def padded_types(domain):
    """The cell types with one layer of ghost cells: SOLID beyond a wall, AIR beyond an open face."""
    ghost = {"wall": SOLID, "open": AIR}
    t = np.full(tuple(s + 2 for s in domain.shape), SOLID, dtype=np.uint8)
    t[1:-1, 1:-1, 1:-1] = domain.cells
    f = domain.faces
    t[1:-1, 1:-1, 0], t[1:-1, 1:-1, -1] = ghost[f["xmin"]], ghost[f["xmax"]]
    t[1:-1, 0, 1:-1], t[1:-1, -1, 1:-1] = ghost[f["ymin"]], ghost[f["ymax"]]
    t[0, 1:-1, 1:-1], t[-1, 1:-1, 1:-1] = ghost[f["zmin"]], ghost[f["zmax"]]
    return t


def face_masks(t):
    """For the u, v and w faces: (faces touching a solid or wall, faces the gradient updates)."""
    pairs = [
        (t[1:-1, 1:-1, :-1], t[1:-1, 1:-1, 1:]),  # u: (nz, ny, nx+1), cells (i-1, j, k) | (i, j, k)
        (t[1:-1, :-1, 1:-1], t[1:-1, 1:, 1:-1]),  # v: (nz, ny+1, nx)
        (t[:-1, 1:-1, 1:-1], t[1:, 1:-1, 1:-1]),  # w: (nz+1, ny, nx)
    ]
    masks = []
    for left, right in pairs:
        solid = (left == SOLID) | (right == SOLID)
        update = ~solid & ((left == FLUID) | (right == FLUID))
        masks.append((solid, update))
    return masks


def flux(u, v, w):
    """F: the net outward flux of each cell in velocity units (div u = F / dx)."""
    return (u[:, :, 1:] - u[:, :, :-1]) + (v[:, 1:, :] - v[:, :-1, :]) + (w[1:] - w[:-1])


def gradient_update(u, v, w, p, masks, scale):
    """u_face -= scale * (p_right - p_left) on the faces of section 5 (p = 0 in air and beyond
    open faces: the padding)."""
    P = np.pad(p, 1)
    grads = (P[1:-1, 1:-1, 1:] - P[1:-1, 1:-1, :-1],
             P[1:-1, 1:, 1:-1] - P[1:-1, :-1, 1:-1],
             P[1:, 1:-1, 1:-1] - P[:-1, 1:-1, 1:-1])
    for vel, g, (_, update) in zip((u, v, w), grads, masks):
        vel[update] -= scale * g[update]


# ---- semi-Lagrangian advection (cell units: position x of cell i's centre is i + 0.5) ----

def sample(field, offset, z, y, x):
    """Trilinear sample of a staggered array whose entry [k, j, i] sits at (i, j, k) + offset."""
    oz, oy, ox = offset
    return map_coordinates(field, [z - oz, y - oy, x - ox], order=1, mode="nearest")


U_OFF, V_OFF, W_OFF, C_OFF = (0.5, 0.5, 0.0), (0.5, 0.0, 0.5), (0.0, 0.5, 0.5), (0.5, 0.5, 0.5)


def velocity_at(u, v, w, z, y, x):
    return sample(u, U_OFF, z, y, x), sample(v, V_OFF, z, y, x), sample(w, W_OFF, z, y, x)


def advect(field, offset, u, v, w, dt_cells):
    """Backtrace the positions of `field`'s samples through the velocity and interpolate."""
    oz, oy, ox = offset
    k, j, i = np.meshgrid(*(np.arange(s, dtype=np.float64) for s in field.shape), indexing="ij")
    z, y, x = k + oz, j + oy, i + ox
    vx, vy, vz = velocity_at(u, v, w, z, y, x)
    # midpoint (RK2) backtrace
    zm, ym, xm = z - 0.5 * dt_cells * vz, y - 0.5 * dt_cells * vy, x - 0.5 * dt_cells * vx
    vx, vy, vz = velocity_at(u, v, w, zm, ym, xm)
    return sample(field, offset, z - dt_cells * vz, y - dt_cells * vy, x - dt_cells * vx)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=32, help="grid cells per side (default 32)")
    ap.add_argument("--steps", type=int, default=12, help="time steps (default 12)")
    ap.add_argument("--method", default="mgpcg", help="dcdm method spec (default mgpcg)")
    ap.add_argument("--rtol", type=float, default=1e-8, help="solver tolerance relative to ||b|| (default 1e-8)")
    ap.add_argument("--dt", type=float, default=0.02, help="time step in s (default 0.02)")
    ap.add_argument("--closed", action="store_true", help="every side a wall, no inflow (singular systems)")
    ap.add_argument("--max-ratio", type=float, default=1e-5,
                    help="fail when max|div| after > this times max|div| before (default 1e-5)")
    args = ap.parse_args()

    n, dt = args.n, args.dt
    dx = 1.0 / n            # m
    rho = 1.2               # kg/m^3 (air)
    buoyancy = 4.0          # m/s^2 per unit smoke density
    inflow = 1.0            # m/s through the floor patch (open case)

    domain = make_domain(n, args.closed)
    fluid = domain.cells == FLUID
    masks = face_masks(padded_types(domain))
    print(f"domain {n}x{n}x{n}, {domain.count(FLUID)} fluid cells, "
          f"{'closed (singular)' if args.closed else 'open top'}, dx {dx:.4g} m, dt {dt} s, method {args.method}")

    t0 = time.perf_counter()
    solver = dcdm.Solver(args.method, domain=domain)  # set up once: the layout never changes
    print(f"solver set up in {time.perf_counter() - t0:.3f} s")

    u = np.zeros((n, n, n + 1))
    v = np.zeros((n, n + 1, n))
    w = np.zeros((n + 1, n, n))
    smoke = np.zeros((n, n, n))
    p = np.zeros((n, n, n))
    k, j, i = np.meshgrid(np.arange(n), np.arange(n), np.arange(n), indexing="ij")
    source = (k < max(2, n // 16)) & ((i + 0.5 - n / 2) ** 2 + (j + 0.5 - n / 2) ** 2 < (0.12 * n) ** 2)
    floor_patch = source[0]  # the floor faces under the source: w[0] there is the inflow wall's velocity

    failed = False
    for step in range(1, args.steps + 1):
        # advection (cell units per second = velocity / dx)
        dt_cells = dt / dx
        smoke = advect(smoke, C_OFF, u, v, w, dt_cells)
        u, v, w = (advect(u, U_OFF, u, v, w, dt_cells), advect(v, V_OFF, u, v, w, dt_cells),
                   advect(w, W_OFF, u, v, w, dt_cells))
        # sources and forces
        smoke[source] = 1.0
        w[1:-1] += dt * buoyancy * 0.5 * (smoke[:-1] + smoke[1:])
        # faces that touch a solid or a wall hold the solid's normal velocity (section 4)
        for vel, (solid, _) in zip((u, v, w), masks):
            vel[solid] = 0.0
        if not args.closed:
            w[0][floor_patch] = inflow

        F = flux(u, v, w)
        div_before = np.abs(F[fluid]).max() / dx  # 1/s
        b = np.where(fluid, -(rho * dx / dt) * F, 0.0)  # = -(rho dx^2 / dt) div u*

        p, info = solver.solve(b, rtol=args.rtol, x0=p)
        gradient_update(u, v, w, p, masks, dt / (rho * dx))

        div_after = np.abs(flux(u, v, w)[fluid]).max() / dx
        ratio = div_after / div_before if div_before > 0 else 0.0
        ok = info.converged and ratio <= args.max_ratio
        failed |= not ok
        print(f"step {step:3d}: {info.iterations:3d} iterations ({info.reason}, {info.solve_seconds * 1e3:7.1f} ms), "
              f"max |div u| before {div_before:.3e} 1/s, after {div_after:.3e} 1/s (ratio {ratio:.1e}), "
              f"max p {np.abs(p).max():.3e} Pa, smoke {smoke[fluid].sum() * dx ** 3:.4f} m^3"
              + ("" if ok else "  <-- FAILED"))

    if failed:
        print("projection FAILED", file=sys.stderr)
        return 1
    print("divergence-free after every projection")
    return 0


if __name__ == "__main__":
    sys.exit(main())
