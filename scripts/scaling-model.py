#!/usr/bin/env python3
"""Weak-scaling prediction of the distributed learned multigrid (dcdm-mpi --method dcdm-relax).

A MODEL, not a measurement: per DCDM iteration, each rank does the work of its own cells
(measured on this machine, one thread) plus the communication counted from the code
(src/petsc/multigrid_pc.cpp, src/petsc/ksp_dcdm.cpp), priced with an assumed cluster network.
Prints the tables of docs/DISTRIBUTED.md ("Scaling model").

  scripts/scaling-model.py [--cell-ns 29] [--latency-us 3] [--bandwidth-gbs 2] [--allreduce-us 2]

Counted per smoothed level l of local edge m (cubic boxes, an interior rank, 6 neighbours):
  ghost exchanges of two layers: one per red-black sweep (2 band, 2 interior, 2 band sweeps
  before the coarse correction, the first needing none as x starts at 0; 6 after) and one of
  the residual: 12; of one layer: b before the sweeps, x before the residual, x after the
  post-smoother for the finer level's prolongation: 3. Where the rank boundaries lie at even
  cells (m even), each rank computes the residual on its first ghost layer itself: x before
  the residual is exchanged two layers deep and the residual's exchange goes, 12 of two layers
  and 2 of one. Each exchange is 6 messages of (layers * m^2) values of 4 bytes (float cycle). The gathered level: a gather and a scatter of its cells
  onto rank 0, and the serial cycle there (priced per cell like the fine levels).
Per Krylov iteration (KSPDCDM, k = 1): the operator's ghost exchange (6 messages of m^2
doubles) and 4 global reductions (d.Ap and p.Ap, d.Ad and d.r, ||r||: measured 13 VecMDot and
9 VecNorm in 7 iterations, about 3 an iteration, rounded up).
"""
import argparse
import math

GATHER_CELLS = 32768  # -pc_dcdm_mg_gather_cells default
COARSEST_CELLS = 4096  # the serial cycle's coarsest level


def levels(n, p_edge):
    """Local edges of the smoothed levels and the gathered level's global cell count, for a
    global grid (n * p_edge)^3 split into p_edge^3 cubes of edge n (the coarsening rules of
    DistributedMultigrid)."""
    edges = []
    m = n
    while True:
        global_cells = (m * p_edge) ** 3
        coarse = (m + 1) // 2
        if global_cells <= COARSEST_CELLS or m * p_edge < 4 or global_cells <= GATHER_CELLS or coarse < 2:
            return edges, global_cells
        edges.append(m)
        m = coarse


def iteration_seconds(n, ranks, a):
    p_edge = round(ranks ** (1 / 3))
    alpha = a.latency_us * 1e-6
    beta = 1.0 / (a.bandwidth_gbs * 1e9)
    compute = n ** 3 * a.cell_ns * 1e-9
    smoothed, gathered = levels(n, p_edge)
    halo = 0.0
    messages = 0
    volume = 0
    if ranks > 1:
        for m in smoothed:
            # (layers, count); an even edge: the residual on the first ghost layer (split_evenly)
            exchanges = [(1, 2), (2, 12)] if m % 2 == 0 else [(1, 3), (2, 12)]
            for layers, count in exchanges:
                halo += count * 6 * (alpha + layers * m * m * 4 * beta)
                messages += count * 6
                volume += count * 6 * layers * m * m * 4
        # The operator's exchange (doubles) and the reductions.
        halo += 6 * (alpha + n * n * 8 * beta)
        messages += 6
        volume += 6 * n * n * 8
    reductions = 4 * a.allreduce_us * 1e-6 * math.log2(ranks) if ranks > 1 else 0.0
    # Gathered level: its cells to rank 0 and back (a tree: log2(P) latencies, the root's link
    # carries all of it), and the serial cycle on them.
    gather = 0.0
    if ranks > 1:
        gather = 2 * (alpha * math.log2(ranks) + gathered * 4 * beta)
    coarse = gathered * a.cell_ns * 1e-9
    return {
        "compute": compute,
        "halo": halo,
        "reductions": reductions,
        "gather": gather + coarse,
        "total": compute + halo + reductions + gather + coarse,
        "messages": messages,
        "volume": volume,
        "levels": len(smoothed),
        "gathered": gathered,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cell-ns", type=float, default=29.0,
                    help="one DCDM iteration's work per cell and rank, ns (V-cycle + operator + vector operations)")
    ap.add_argument("--latency-us", type=float, default=3.0, help="point-to-point message latency, microseconds")
    ap.add_argument("--bandwidth-gbs", type=float, default=2.0, help="a rank's share of the network, GB/s")
    ap.add_argument("--allreduce-us", type=float, default=2.0, help="allreduce cost per tree level, microseconds")
    a = ap.parse_args()
    print(f"Assumptions: {a.cell_ns} ns a cell an iteration (measured here, 1 thread), latency {a.latency_us} us, "
          f"{a.bandwidth_gbs} GB/s a rank, allreduce {a.allreduce_us} us x log2(P).\n")
    print("Per rank and iteration, interior rank (6 neighbours):\n")
    print("| cells a rank | smoothed levels | messages | bytes sent | halo share at 8 ranks |")
    print("|---|---|---|---|---|")
    for n in (64, 128, 256):
        r = iteration_seconds(n, 8, a)
        print(f"| {n}^3 | {r['levels']} | {r['messages']} | {r['volume'] / 1e6:.2f} MB | "
              f"{r['halo'] / r['total']:.0%} |")
    print("\nPredicted weak-scaling efficiency (time an iteration on 1 rank / on P ranks, same cells a rank):\n")
    header = "| cells a rank | " + " | ".join(f"P = {p}" for p in (8, 64, 512, 4096)) + " |"
    print(header)
    print("|---" * 5 + "|")
    for n in (64, 128, 256):
        one = iteration_seconds(n, 1, a)["total"]
        cells = []
        for p in (8, 64, 512, 4096):
            r = iteration_seconds(n, p, a)
            cells.append(f"{one / r['total']:.2f}")
        print(f"| {n}^3 | " + " | ".join(cells) + " |")
    gathered = sorted({iteration_seconds(n, p, a)["gathered"] for n in (64, 128, 256) for p in (8, 64, 512, 4096)})
    print(f"\n(The gathered coarse level holds {', '.join(map(str, gathered))} cells in every case: the global "
          "size rule and the thin-box rule meet there.)")
    print("\nWhere the time goes at 4096 ranks (share of an iteration):\n")
    print("| cells a rank | compute | halo | reductions | gathered levels |")
    print("|---|---|---|---|---|")
    for n in (64, 128, 256):
        r = iteration_seconds(n, 4096, a)
        t = r["total"]
        print(f"| {n}^3 | {r['compute'] / t:.0%} | {r['halo'] / t:.0%} | {r['reductions'] / t:.1%} | "
              f"{r['gather'] / t:.1%} |")


if __name__ == "__main__":
    main()
