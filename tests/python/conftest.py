"""Shared fixtures of dcdm's Python tests.

Run from the repository root with Debian's interpreter (numpy, scipy, pytest):

    PYTHONPATH=build/python /usr/bin/python3 -m pytest -q tests/python

The command-line tool is taken from $DCDM_CLI (default build/dcdm); tests that compare with
it are skipped when it is missing. Without PYTHONPATH the package is looked up in
build/python as well.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# OpenMP threads sleep between parallel regions instead of spinning (the CTest suite does the
# same); it matters on a 2-core machine with Python threads and CLI subprocesses around.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:
    import dcdm  # noqa: F401
except ImportError:
    sys.path.insert(0, str(REPO / "build" / "python"))
    import dcdm  # noqa: F401


def cli_path():
    return Path(os.environ.get("DCDM_CLI", str(REPO / "build" / "dcdm")))


@pytest.fixture(scope="session")
def cli():
    """A function running `dcdm ARGS...`; it returns the CompletedProcess (text output)."""
    exe = cli_path()
    if not (exe.is_file() and os.access(exe, os.X_OK)):
        pytest.skip(f"the dcdm command-line tool is not at {exe} (set DCDM_CLI)")

    def run(*args, check=True, env=None):
        full_env = dict(os.environ)
        full_env.update(env or {})
        proc = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, env=full_env,
                              timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"dcdm {' '.join(map(str, args))} exited {proc.returncode}\n"
                                 f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc

    return run


@pytest.fixture(scope="session")
def export(cli, tmp_path_factory):
    """export(scene, n, *extra_args) -> folder written by `dcdm export` (cached per arguments;
    n=None leaves --n out, for --dims)."""
    cache = {}

    def run(scene, n, *extra):
        key = (scene, n, *extra)
        if key not in cache:
            folder = tmp_path_factory.mktemp(f"export_{scene}_{n}")
            size = [] if n is None else ["--n", n]
            cli("export", "--scene", scene, *size, *extra, "--out", folder)
            cache[key] = folder
        return cache[key]

    return run


@pytest.fixture(scope="session")
def sphere24(export):
    """The sphere scene at 24^3 with the CLI's random right-hand side (open top)."""
    return export("sphere", 24)
