#!/usr/bin/env python3
"""The Python layer's cost in instructions, not seconds: a count that the machine's load and
drift cannot move.

Usage (from the repository root, after `make build`; needs valgrind):

    PYTHONPATH=build/python /usr/bin/python3 scripts/python-instructions.py [--sizes 64,128] [--methods mgpcg]

The build must be portable (`-DDCDM_NATIVE=OFF`): valgrind 3.19 does not decode AVX-512.
Under valgrind the Python process of `dcdm-relax` fails with std::bad_alloc (valgrind's own
heap limits; the same calls run natively), so the default method is mgpcg.

For each size N the sphere scene's system is exported once (as scripts/python-bench.py does).
Then, under `valgrind --tool=callgrind` with one OpenMP thread (no spinning threads, so the
counts are exact and repeatable):

- C++:    `bench_library_solve DIR M 1e-6 R` (bench/bench_library_solve.cpp: the calls that
          `dcdm.Solver()` and `solve()` make) for R = 1 and R = 3;
- Python: the same R construct-and-solve calls through `dcdm.Solver(M, domain=...)` and
          `solver.solve(b, rtol=1e-6)` after `dcdm.read_system(DIR)`.

The difference between R = 3 and R = 1 is two calls' worth of instructions with every
once-per-process cost (start-up, imports, reading the folder) cancelled; Python's over C++'s is
what the Python layer adds per call (argument checks, array views, the GIL, the info object).
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PY_CALLS = """
import sys, dcdm
dcdm.set_num_threads(1)
domain, b = dcdm.read_system(sys.argv[1])
for _ in range(int(sys.argv[3])):
    solver = dcdm.Solver(sys.argv[2], domain=domain)
    x, info = solver.solve(b, rtol=1e-6)
    assert info.converged
"""


def callgrind_total(cmd, env, workdir):
    out = Path(workdir) / "callgrind.out"
    if out.exists():
        out.unlink()
    run = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *cmd], env=env,
                         capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"failed ({run.returncode}): {' '.join(cmd)}\n{run.stderr[-2000:]}")
    for line in out.read_text().splitlines():
        if line.startswith("totals:") or line.startswith("summary:"):
            return int(line.split()[1])
    sys.exit(f"no totals in {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="64,128")
    ap.add_argument("--methods", default="mgpcg")
    ap.add_argument("--cli", default=str(REPO / "build" / "dcdm"))
    ap.add_argument("--library-bench", default=str(REPO / "build" / "bench_library_solve"))
    a = ap.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="passive")
    print("| size | method | C++ instructions per call | Python per call | Python / C++ |")
    print("|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "calls.py"
        script.write_text(PY_CALLS)
        for n in [int(s) for s in a.sizes.split(",")]:
            system = Path(tmp) / f"sphere{n}"
            subprocess.run([a.cli, "export", "--scene", "sphere", "--n", str(n), "--rhs", "smooth", "--seed", "0",
                            "--out", str(system)], check=True, capture_output=True)
            for method in a.methods.split(","):
                per = {}
                for side in ("cpp", "py"):
                    totals = {}
                    for r in (1, 3):
                        cmd = ([a.library_bench, str(system), method, "1e-6", str(r)] if side == "cpp" else
                               [sys.executable, str(script), str(system), method, str(r)])
                        totals[r] = callgrind_total(cmd, env, tmp)
                    per[side] = (totals[3] - totals[1]) / 2
                print(f"| {n}^3 | {method} | {per['cpp']:.4g} | {per['py']:.4g} | {per['py'] / per['cpp']:.4f} |",
                      flush=True)


if __name__ == "__main__":
    main()
