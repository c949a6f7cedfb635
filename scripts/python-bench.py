#!/usr/bin/env python3
"""The cost of dcdm's Python layer against the C++ library (the CLI), interleaved.

Usage (from the repository root, after `make build`):

    PYTHONPATH=build/python /usr/bin/python3 scripts/python-bench.py [--rounds 5] [--repeats 5] [--sizes 64,128]
        [--methods mgpcg,dcdm-relax] [--threads 2] [--cli build/dcdm]

For each size N the sphere scene's system is exported once (`dcdm export --scene sphere --n N
--rhs smooth --seed 0 --out DIR`), so that both sides solve the same b:

- C++:    `dcdm solve --system DIR --method M --rtol 1e-6 --json out.json`
          (OMP_NUM_THREADS=THREADS); its setup_seconds + solve_seconds;
- C++ library calls: `bench_library_solve DIR M RTOL 3` (bench/bench_library_solve.cpp), the
          same calls Solver() and solve() make, wall-clocked the same way in one warm process
          (REPEATS runs, the fastest after the first kept);
- Python: `dcdm.read_system(DIR)` once, then per round REPEATS runs (the fastest after the
          first kept, as on the C++ side) of `dcdm.Solver(M, domain=domain)` and
          `solver.solve(b, rtol=1e-6)` (dcdm.set_num_threads(THREADS)); the setup and solve
          seconds of `info` (the library's own clocks) and the wall time of the two calls
          (time.perf_counter around them: argument conversion, output allocation, GIL).

Rounds alternate which side runs first. Prints per-configuration medians and the ratios
python/C++ for the library's clocks and for the Python wall time.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--sizes", default="64,128")
    ap.add_argument("--methods", default="mgpcg,dcdm-relax")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5,
                    help="repeats per round in each warm process; the fastest after the first is kept")
    ap.add_argument("--rtol", type=float, default=1e-6)
    ap.add_argument("--cli", default=os.environ.get("DCDM_CLI", str(REPO / "build" / "dcdm")))
    ap.add_argument("--library-bench", default=str(REPO / "build" / "bench_library_solve"))
    args = ap.parse_args()

    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # before the module's OpenMP starts
    try:
        import dcdm
    except ImportError:
        sys.path.insert(0, str(REPO / "build" / "python"))
        import dcdm
    dcdm.set_num_threads(args.threads)

    sizes = [int(s) for s in args.sizes.split(",")]
    methods = [m.strip() for m in args.methods.split(",")]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    work = Path(tempfile.mkdtemp(prefix="dcdm-python-bench-"))
    print(f"dcdm {dcdm.__version__}, {args.threads} threads, rtol {args.rtol:g}, {args.rounds} rounds, "
          f"CLI {args.cli}, {os.cpu_count()} CPUs, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}")

    systems = {}
    for n in sizes:
        folder = work / f"sphere{n}"
        subprocess.run([args.cli, "export", "--scene", "sphere", "--n", str(n), "--rhs", "smooth", "--seed", "0",
                        "--out", str(folder)], check=True, capture_output=True)
        systems[n] = (folder, *dcdm.read_system(folder))

    rows = {(n, m): {"cpp": [], "cpp_its": [], "cpp_proc": [], "py_lib": [], "py_setup": [], "py_solve": [],
                     "py_wall": [], "py_wall_setup": [], "py_wall_solve": [], "py_its": [], "lib_wall": []} for n in sizes for m in methods}

    def run_cli(n, m):
        folder = systems[n][0]
        out = work / "report.json"
        t0 = time.perf_counter()
        proc = subprocess.run([args.cli, "solve", "--system", str(folder), "--method", m, "--rtol", str(args.rtol),
                               "--max-iterations", "10000", "--json", str(out), "--quiet"],
                              env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"dcdm solve failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
        rep = json.loads(out.read_text())
        r = rows[(n, m)]
        r["cpp"].append(rep["setup_seconds"] + rep["solve_seconds"])
        r["cpp_its"].append(rep["iterations"])
        r["cpp_proc"].append(wall)

    def run_library(n, m):
        folder = systems[n][0]
        proc = subprocess.run([args.library_bench, str(folder), m, str(args.rtol), str(args.repeats)], env=env, capture_output=True,
                              text=True)
        if proc.returncode != 0:
            raise SystemExit(f"bench_library_solve failed ({proc.returncode}): {proc.stdout}{proc.stderr}")
        runs = [json.loads(line) for line in proc.stdout.splitlines()]
        rows[(n, m)]["lib_wall"].append(min(r["construct"] + r["solve"] for r in runs[1:]))  # as run_python

    def run_python(n, m):
        # The same protocol as the C++ side: REPEATS runs, the fastest after the first kept (a warm
        # process whose OpenMP threads and heap have just been used).
        _, domain, b = systems[n]
        runs = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            solver = dcdm.Solver(m, domain=domain)
            t1 = time.perf_counter()
            x, info = solver.solve(b, rtol=args.rtol, maxiter=10000)
            t2 = time.perf_counter()
            if not info.converged:
                raise SystemExit(f"python {m} {n}: {info.reason}")
            runs.append((t0, t1, t2, info))
            del solver, x
        mid = min(runs[1:], key=lambda r: r[2] - r[0])  # the fastest warm repeat
        t0, t1, t2, info = mid
        r = rows[(n, m)]
        r["py_lib"].append(info.setup_seconds + info.solve_seconds)
        r["py_setup"].append(info.setup_seconds)
        r["py_solve"].append(info.solve_seconds)
        r["py_wall"].append(t2 - t0)
        r["py_wall_setup"].append(t1 - t0)
        r["py_wall_solve"].append(t2 - t1)
        r["py_its"].append(info.iterations)

    for rnd in range(args.rounds):
        for n in sizes:
            for m in methods:
                order = (run_cli, run_library, run_python) if rnd % 2 == 0 else (run_python, run_library, run_cli)
                for f in order:
                    f(n, m)
        print(f"round {rnd + 1}/{args.rounds} done", file=sys.stderr)

    med = statistics.median
    print()
    print(f"{'N':>4s} {'method':12s} {'its C++/py':>10s} {'C++ s':>8s} {'py lib s':>9s} {'py wall s':>9s} "
          f"{'lib py/C++':>10s} {'wall py/C++':>11s} {'Solver() ms':>11s} {'solve() ms':>10s} {'CLI process s':>13s} "
          f"{'C++ calls s':>11s} {'py/C++ calls':>12s}")
    for n in sizes:
        for m in methods:
            r = rows[(n, m)]
            cpp, lib, wall = med(r["cpp"]), med(r["py_lib"]), med(r["py_wall"])
            its = f"{med(r['cpp_its']):g}/{med(r['py_its']):g}"
            ctor = med([w - s for w, s in zip(r["py_wall_setup"], r["py_setup"])]) * 1e3
            call = med([w - s for w, s in zip(r["py_wall_solve"], r["py_solve"])]) * 1e3
            print(f"{n:4d} {m:12s} {its:>10s} {cpp:8.3f} {lib:9.3f} {wall:9.3f} {lib / cpp:10.3f} {wall / cpp:11.3f} "
                  f"{ctor:11.1f} {call:10.1f} {med(r['cpp_proc']):13.3f} {med(r['lib_wall']):11.3f} "
                  f"{wall / med(r['lib_wall']):12.3f}")
    print()
    print("Medians. C++ s: setup_seconds + solve_seconds of `dcdm solve --json`; py lib s: info.setup_seconds +")
    print("info.solve_seconds; py wall s: perf_counter around Solver(...) and solve(...); Solver() ms and solve() ms:")
    print("the wall time of each call beyond the library's clock for it (setup_seconds, solve_seconds); CLI process s:")
    print("the whole `dcdm solve` process (start-up, reading the system, set-up, solve, writing the JSON); C++ calls s:")
    print("wall time of the same library calls from C++ (bench_library_solve); py/C++ calls: py wall s / C++ calls s.")


if __name__ == "__main__":
    main()
