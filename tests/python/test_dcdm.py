"""Tests of dcdm's Python bindings against the library's own tool (`dcdm export`, `dcdm solve`)
and against SciPy.

    PYTHONPATH=build/python /usr/bin/python3 -m pytest -q tests/python

Every grid here is small (at most 32^3) so that the suite runs in well under a minute on two
cores.
"""

import inspect
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import scipy.io
import scipy.sparse
import scipy.sparse.linalg

import dcdm


# ---- helpers ----

def random_rhs(domain, seed=0):
    """A random right-hand side: standard normal on fluid cells, zero elsewhere."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal(domain.shape) * (domain.cells == dcdm.FLUID)


def rel(a, b):
    """||a - b|| / ||b||."""
    return float(np.linalg.norm(np.ravel(a) - np.ravel(b)) / np.linalg.norm(np.ravel(b)))


def rel_residual(A, x, b):
    return float(np.linalg.norm(b.ravel() - A @ x.ravel()) / np.linalg.norm(b.ravel()))


def scipy_cg(A, b, rtol, M=None, callback=None, maxiter=None):
    """scipy.sparse.linalg.cg with a relative tolerance: `tol=` up to SciPy 1.11, `rtol=` after."""
    params = inspect.signature(scipy.sparse.linalg.cg).parameters
    kw = {"rtol": rtol} if "rtol" in params else {"tol": rtol}
    return scipy.sparse.linalg.cg(A, b, atol=0.0, M=M, callback=callback, maxiter=maxiter, **kw)


def load_json(path):
    with open(path) as f:
        return json.load(f)


CLI_FACES = {"x-": "xmin", "x+": "xmax", "y-": "ymin", "y+": "ymax", "z-": "zmin", "z+": "zmax"}


# ---- the module ----

def test_module_basics(cli):
    assert cli("--version").stdout.split()[-1] == dcdm.__version__
    assert (dcdm.SOLID, dcdm.FLUID, dcdm.AIR) == (0, 1, 2)
    names = [name for name, _ in dcdm.methods()]
    for m in ("mgpcg", "dcdm-relax", "cg", "ic0", "mic0", "jacobi"):
        assert m in names
    assert all(isinstance(h, str) and h for _, h in dcdm.methods())
    assert {"box", "plume", "sphere", "obstacles", "bunny", "pool", "mesh", "liquid", "cutcell", "density"} <= set(
        dcdm.scene_names())
    assert str(dcdm.find_model("relaxnet")).endswith(".dcdm")


def test_num_threads():
    before = dcdm.get_num_threads()
    try:
        dcdm.set_num_threads(1)
        assert dcdm.get_num_threads() == 1
        dcdm.set_num_threads(2)
        assert dcdm.get_num_threads() == 2
        with pytest.raises(ValueError):
            dcdm.set_num_threads(0)
    finally:
        dcdm.set_num_threads(before)


def test_results_independent_of_thread_count(sphere24):
    domain, b = dcdm.read_system(sphere24)
    before = dcdm.get_num_threads()
    out = {}
    try:
        for n in (1, 2):
            dcdm.set_num_threads(n)
            for method in ("mgpcg", "dcdm-relax", "cg"):
                out[(n, method)] = dcdm.Solver(method, domain=domain).solve(b, rtol=1e-8)
    finally:
        dcdm.set_num_threads(before)
    for method in ("mgpcg", "dcdm-relax", "cg"):
        (x1, i1), (x2, i2) = out[(1, method)], out[(2, method)]
        assert i1.iterations == i2.iterations, method
        np.testing.assert_array_equal(x1, x2, err_msg=method)


def test_domain_from_numpy():
    nz, ny, nx = 5, 4, 3
    cells = np.full((nz, ny, nx), dcdm.FLUID, dtype=np.int32)
    cells[0, 0, 0] = dcdm.SOLID
    cells[-1] = dcdm.AIR
    d = dcdm.Domain(cells, faces={"xmin": "open"})
    assert d.shape == (nz, ny, nx)
    assert d.size == nx * ny * nz
    assert d.cells.dtype == np.uint8
    np.testing.assert_array_equal(d.cells, cells)
    assert d.faces == {"xmin": "open", "xmax": "wall", "ymin": "wall", "ymax": "wall", "zmin": "wall",
                       "zmax": "wall"}
    assert d.count(dcdm.FLUID) == nx * ny * (nz - 1) - 1
    assert d.count(dcdm.AIR) == nx * ny
    assert d.count(dcdm.SOLID) == 1
    # .cells is a copy
    c = d.cells
    c[:] = dcdm.SOLID
    assert d.count(dcdm.FLUID) == nx * ny * (nz - 1) - 1
    # the default faces are walls
    assert set(dcdm.Domain(cells).faces.values()) == {"wall"}


# ---- (a) the Python solution equals the CLI's on the same exported system ----

def test_solution_matches_cli(cli, sphere24, tmp_path):
    x_out, js = tmp_path / "x.npy", tmp_path / "report.json"
    cli("solve", "--system", sphere24, "--method", "mgpcg", "--rtol", "1e-10", "--x-out", x_out, "--json", js)
    x_cli = np.load(x_out)
    report = load_json(js)

    domain, b = dcdm.read_system(sphere24)
    assert b.shape == domain.shape == (24, 24, 24)
    np.testing.assert_array_equal(b, np.load(sphere24 / "b.npy"))
    np.testing.assert_array_equal(domain.cells, np.load(sphere24 / "flags.npy"))

    x, info = dcdm.Solver("mgpcg", domain=domain).solve(b, rtol=1e-10)
    assert x.shape == x_cli.shape == b.shape
    assert info.converged and info.reason == "CONVERGED_RTOL"
    assert info.iterations == report["iterations"]
    assert rel(x, x_cli) < 1e-8
    A = scipy.io.mmread(str(sphere24 / "A.mtx")).tocsr()
    assert rel_residual(A, x, b) < 1e-9


# ---- (b) the operator equals the exported matrix ----

def test_operator_matches_export(sphere24):
    domain, _ = dcdm.read_system(sphere24)
    N = domain.size
    op = dcdm.Operator(domain)
    assert op.shape == (N, N)
    A = op.to_scipy()
    assert isinstance(A, scipy.sparse.csr_matrix)
    A_ref = scipy.io.mmread(str(sphere24 / "A.mtx")).tocsr()
    assert A.shape == A_ref.shape == (N, N)
    A.sort_indices()
    A_ref.sort_indices()
    # the same sparsity pattern and the same values
    assert A.nnz == A_ref.nnz
    np.testing.assert_array_equal(A.indptr, A_ref.indptr)
    np.testing.assert_array_equal(A.indices, A_ref.indices)
    np.testing.assert_array_equal(A.data, A_ref.data)
    assert (A != A.T).nnz == 0

    rng = np.random.default_rng(3)
    x = rng.standard_normal(domain.shape)
    y = op @ x
    assert y.shape == domain.shape
    np.testing.assert_allclose(y.ravel(), A @ x.ravel(), rtol=1e-14, atol=1e-12)
    yf = op @ x.ravel()
    assert yf.shape == (N,)
    np.testing.assert_allclose(yf, A @ x.ravel(), rtol=1e-14, atol=1e-12)
    L = op.as_linear_operator()
    assert L.shape == (N, N)
    np.testing.assert_allclose(L.matvec(x.ravel()), A @ x.ravel(), rtol=1e-14, atol=1e-12)
    # rows and columns of non-fluid cells are zero
    not_fluid = (domain.cells != dcdm.FLUID).ravel()
    assert np.all(np.diff(A.indptr)[not_fluid] == 0)
    assert np.all(y.ravel()[not_fluid] == 0)


def test_operator_layout_x_fastest():
    """Cell (i, j, k) is flat index i + nx*(j + ny*k): A's off-diagonals sit at +-1, +-nx,
    +-nx*ny on a non-cubic all-fluid grid."""
    nz, ny, nx = 4, 5, 6
    d = dcdm.Domain(np.ones((nz, ny, nx), dtype=np.uint8))
    A = dcdm.Operator(d).to_scipy().tocoo()
    offsets = set((A.col - A.row).tolist())
    assert offsets == {0, 1, -1, nx, -nx, nx * ny, -nx * ny}
    # an interior cell has 6 neighbours, a corner cell 3 (walls everywhere)
    diag = A.diagonal().reshape(nz, ny, nx)
    assert diag[1, 1, 1] == 6 and diag[0, 0, 0] == 3
    # an open face counts as air: the corner at xmin gains one
    d2 = dcdm.Domain(np.ones((nz, ny, nx), dtype=np.uint8), faces={"xmin": "open"})
    diag2 = dcdm.Operator(d2).to_scipy().diagonal().reshape(nz, ny, nx)
    assert diag2[0, 0, 0] == 4 and diag2[0, 0, nx - 1] == 3


# ---- (c) SciPy's CG with dcdm's multigrid preconditioner ----

def test_scipy_cg_with_mgpcg_preconditioner(sphere24):
    domain, b = dcdm.read_system(sphere24)
    A = dcdm.Operator(domain).to_scipy()
    M = dcdm.Preconditioner("mgpcg", domain).as_linear_operator()
    count = [0]

    def cb(xk):
        count[0] += 1

    x, code = scipy_cg(A, b.ravel(), rtol=1e-6, M=M, callback=cb)
    assert code == 0
    assert rel_residual(A, x, b) < 2e-6
    _, info = dcdm.Solver("mgpcg", domain=domain).solve(b, rtol=1e-6)
    assert info.converged
    assert abs(count[0] - info.iterations) <= 1, (count[0], info.iterations)


def test_preconditioners_apply():
    domain = dcdm.scene("sphere", n=16)
    A = dcdm.Operator(domain).to_scipy()
    r = random_rhs(domain, 4)
    fluid = (domain.cells == dcdm.FLUID)

    z = dcdm.Preconditioner("jacobi", domain).apply(r)
    assert z.shape == r.shape
    diag = A.diagonal().reshape(domain.shape)
    np.testing.assert_allclose(z[fluid], r[fluid] / diag[fluid], rtol=1e-14)
    assert np.all(z[~fluid] == 0)

    for method in ("mgpcg", "mgpcg:omega=1.2:sweeps=2", "dcdm-relax", "ic0"):
        P = dcdm.Preconditioner(method, domain)
        z = P.apply(r)
        assert z.shape == r.shape and np.all(np.isfinite(z)), method
        zf = P.apply(r.ravel())
        assert zf.shape == (domain.size,)
        np.testing.assert_allclose(zf, z.ravel(), rtol=1e-12, atol=1e-12, err_msg=method)
        assert np.linalg.norm(z) > 0
        # a preconditioner is a rough inverse: it reduces the residual of r
        assert rel_residual(A, z, r) < 1.0, method

    # IC(0) as SciPy's M: fewer iterations than plain CG
    its = {}
    for name, M in (("none", None), ("ic0", dcdm.Preconditioner("ic0", domain).as_linear_operator())):
        n = [0]
        x, code = scipy_cg(A, r.ravel(), rtol=1e-6, M=M, callback=lambda xk: n.__setitem__(0, n[0] + 1))
        assert code == 0
        its[name] = n[0]
    assert its["ic0"] < its["none"]


# ---- the solver ----

def test_solve_info_and_callback(sphere24):
    domain, b = dcdm.read_system(sphere24)
    A = dcdm.Operator(domain).to_scipy()
    calls = []
    x, info = dcdm.Solver("mgpcg", domain=domain).solve(b, rtol=1e-8, callback=lambda i, r: calls.append((i, r)))
    assert info.converged and info.reason == "CONVERGED_RTOL"
    assert info.method.startswith("mgpcg")
    assert info.iterations > 0
    assert isinstance(info.residuals, np.ndarray)
    assert len(info.residuals) == info.iterations + 1
    assert info.residuals[0] == pytest.approx(np.linalg.norm(b), rel=1e-12)
    assert info.residuals[-1] <= 1e-8 * np.linalg.norm(b)
    assert info.relative_residual <= 1e-8
    assert info.relative_residual == pytest.approx(rel_residual(A, x, b), rel=1e-3)
    assert info.setup_seconds >= 0 and info.solve_seconds > 0
    # the callback saw every iteration, with the history's residuals
    its = [i for i, _ in calls]
    assert its == list(range(its[0], info.iterations + 1)) and its[0] in (0, 1)
    np.testing.assert_allclose([r for _, r in calls], info.residuals[its[0]:], rtol=1e-6)


def test_solve_stops_and_warm_starts(sphere24):
    domain, b = dcdm.read_system(sphere24)
    solver = dcdm.Solver("cg", domain=domain)
    x, info = solver.solve(b, rtol=1e-14, maxiter=3)
    assert not info.converged
    assert info.reason == "DIVERGED_ITS"
    assert info.iterations == 3
    # a warm start from the solution needs (almost) nothing
    x, info = dcdm.Solver("mgpcg", domain=domain).solve(b, rtol=1e-10)
    x2, info2 = dcdm.Solver("mgpcg", domain=domain).solve(b, rtol=1e-6, x0=x)
    assert info2.converged and info2.iterations <= 1
    np.testing.assert_allclose(x2, x, rtol=0, atol=1e-6 * np.abs(x).max())
    # atol
    _, info3 = solver.solve(b, rtol=0.0, atol=1e-3 * np.linalg.norm(b))
    assert info3.converged and info3.residuals[-1] <= 1e-3 * np.linalg.norm(b)


def test_input_conversion(sphere24):
    """float32, flat, Fortran-ordered and strided right-hand sides give the same solution."""
    domain, b = dcdm.read_system(sphere24)
    solver = dcdm.Solver("mgpcg", domain=domain)
    x, _ = solver.solve(b, rtol=1e-10)
    xf, _ = solver.solve(b.ravel(), rtol=1e-10)
    assert xf.shape == (domain.size,)
    np.testing.assert_array_equal(xf, x.ravel())
    xF, _ = solver.solve(np.asfortranarray(b), rtol=1e-10)
    assert xF.shape == b.shape
    np.testing.assert_array_equal(xF, x)
    big = np.zeros((24, 24, 48))
    big[:, :, ::2] = b
    xs, _ = solver.solve(big[:, :, ::2], rtol=1e-10)
    np.testing.assert_array_equal(xs, x)
    b32 = b.astype(np.float32)
    x32, info = solver.solve(b32, rtol=1e-10)
    assert x32.dtype == np.float64 and info.converged
    x_ref, _ = solver.solve(b32.astype(np.float64), rtol=1e-10)
    np.testing.assert_array_equal(x32, x_ref)


def test_method_specs_and_settings(sphere24):
    domain, b = dcdm.read_system(sphere24)
    A = dcdm.Operator(domain).to_scipy()
    x_ref, _ = dcdm.Solver("mgpcg", domain=domain).solve(b, rtol=1e-10)
    for method in ("mgpcg:omega=1.3:precision=float", "cg", "ic0", "mic0", "jacobi", "dcdm-relax",
                   "dcdm-relax:initial", "mgpcg:sweeps=2"):
        x, info = dcdm.Solver(method, domain=domain).solve(b, rtol=1e-8, maxiter=2000)
        assert info.converged, (method, info.reason)
        assert rel_residual(A, x, b) < 1e-7, method
        assert rel(x, x_ref) < 1e-5, method
    # the model by keyword is the same as the default shipped one
    _, i1 = dcdm.Solver("dcdm-relax", domain=domain).solve(b, rtol=1e-6)
    _, i2 = dcdm.Solver("dcdm-relax", domain=domain, model=dcdm.find_model("relaxnet")).solve(b, rtol=1e-6)
    assert i1.iterations == i2.iterations
    np.testing.assert_array_equal(i1.residuals, i2.residuals)


def test_matrix_based_solvers(sphere24):
    domain, b = dcdm.read_system(sphere24)
    A = dcdm.Operator(domain).to_scipy()
    for method in ("cg", "jacobi", "ic0", "mic0"):
        x_dom, i_dom = dcdm.Solver(method, domain=domain).solve(b, rtol=1e-8, maxiter=2000)
        x_mat, i_mat = dcdm.Solver(method, matrix=A).solve(b.ravel(), rtol=1e-8, maxiter=2000)
        assert i_mat.converged, (method, i_mat.reason)
        assert x_mat.shape == (domain.size,)
        assert rel_residual(A, x_mat, b) < 1e-7
        assert abs(i_mat.iterations - i_dom.iterations) <= 1, (method, i_mat.iterations, i_dom.iterations)
        assert rel(x_mat, x_dom) < 1e-5
    # a fluid-only (compressed) SPD matrix works too
    fluid = np.flatnonzero(domain.cells.ravel() == dcdm.FLUID)
    Af = A[fluid][:, fluid].tocsr()
    xf, info = dcdm.Solver("ic0", matrix=Af).solve(b.ravel()[fluid], rtol=1e-8)
    assert info.converged
    assert rel_residual(Af, xf, b.ravel()[fluid]) < 1e-7


def test_singular_closed_box():
    """No air cell: dcdm projects b onto the range (zero mean on the closed region)."""
    domain = dcdm.scene("box", n=16, open_top=0)
    assert set(domain.faces.values()) == {"wall"} and domain.count(dcdm.AIR) == 0
    fluid = domain.cells == dcdm.FLUID
    b = random_rhs(domain, 7) + 0.5 * fluid  # a non-zero mean
    A = dcdm.Operator(domain).to_scipy()
    for method in ("mgpcg", "cg", "dcdm-relax"):
        x, info = dcdm.Solver(method, domain=domain).solve(b, rtol=1e-8)
        assert info.converged, method
        bp = np.where(fluid, b - b[fluid].mean(), 0.0)
        assert rel_residual(A, x, bp) < 1e-6, method


# ---- (d) errors ----

def test_errors_solver_inputs(sphere24):
    domain, b = dcdm.read_system(sphere24)
    solver = dcdm.Solver("mgpcg", domain=domain)
    with pytest.raises(ValueError):
        solver.solve(np.zeros((3, 3, 3)))
    with pytest.raises(ValueError):
        solver.solve(np.zeros(domain.size + 1))
    with pytest.raises(ValueError):
        solver.solve(b.reshape(24, 576))
    bad = b.copy()
    bad[3, 4, 5] = np.nan
    with pytest.raises(ValueError):
        solver.solve(bad)
    bad[3, 4, 5] = np.inf
    with pytest.raises(ValueError):
        solver.solve(bad)
    with pytest.raises(TypeError):
        solver.solve(b.astype(np.complex128))
    with pytest.raises(TypeError):
        solver.solve(b.astype(object))
    with pytest.raises(ValueError):
        solver.solve(b, x0=np.zeros(7))
    with pytest.raises(ValueError):
        solver.solve(b, rtol=-1.0)
    with pytest.raises(ValueError):
        dcdm.Operator(domain) @ np.zeros((2, 2, 2))
    with pytest.raises(ValueError):
        dcdm.Preconditioner("mgpcg", domain).apply(np.zeros(5))
    # an exception raised in the callback comes back to the caller
    with pytest.raises(ZeroDivisionError):
        solver.solve(b, callback=lambda i, r: 1 / 0)
    # the solver still works afterwards
    _, info = solver.solve(b)
    assert info.converged


def test_errors_methods(sphere24, tmp_path):
    domain, _ = dcdm.read_system(sphere24)
    with pytest.raises(ValueError):
        dcdm.Solver("no-such-method", domain=domain)
    with pytest.raises(ValueError):
        dcdm.Solver("mgpcg:omega=7", domain=domain)
    with pytest.raises(ValueError):
        dcdm.Solver("mgpcg:no-such-setting=1", domain=domain)
    with pytest.raises(ValueError):
        dcdm.Preconditioner("no-such-method", domain)
    with pytest.raises(ValueError):
        dcdm.Preconditioner("mgpcg:omega=7", domain)
    # a corrupt model file
    garbage = tmp_path / "garbage.dcdm"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ValueError):
        dcdm.Solver("dcdm-relax", domain=domain, model=garbage)
    with pytest.raises(ValueError):
        dcdm.Solver("dcdm-relax:" + str(garbage), domain=domain)
    with pytest.raises(ValueError):
        dcdm.Preconditioner("dcdm-relax:" + str(garbage), domain)
    # a truncated real model
    real = open(dcdm.find_model("relaxnet"), "rb").read()
    truncated = tmp_path / "truncated.dcdm"
    truncated.write_bytes(real[: len(real) // 2])
    with pytest.raises(ValueError):
        dcdm.Solver("dcdm-relax", domain=domain, model=truncated)
    # a missing model file
    with pytest.raises(FileNotFoundError):
        dcdm.Solver("dcdm-relax", domain=domain, model=tmp_path / "missing.dcdm")
    with pytest.raises(FileNotFoundError):
        dcdm.find_model(str(tmp_path / "missing.dcdm"))
    # neither or both of domain / matrix
    with pytest.raises(ValueError):
        dcdm.Solver("cg")
    A = dcdm.Operator(domain).to_scipy()
    with pytest.raises(ValueError):
        dcdm.Solver("cg", matrix=A[:, :-1])


def test_errors_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        dcdm.read_system(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises((FileNotFoundError, ValueError)):
        dcdm.read_system(empty)
    with pytest.raises(FileNotFoundError):
        dcdm.scene("mesh", n=8, mesh=tmp_path / "missing.obj")


def test_errors_domain():
    with pytest.raises(TypeError):
        dcdm.Domain(np.ones((4, 4, 4)))  # float cells
    with pytest.raises(TypeError):
        dcdm.Domain(np.ones((4, 4, 4), dtype=np.complex64))
    seven = np.ones((4, 4, 4), dtype=np.uint8)
    seven[1, 2, 3] = 7
    with pytest.raises(ValueError):
        dcdm.Domain(seven)
    negative = np.ones((4, 4, 4), dtype=np.int64)
    negative[0, 0, 0] = -1
    with pytest.raises(ValueError):
        dcdm.Domain(negative)
    with pytest.raises(ValueError):
        dcdm.Domain(np.ones((4, 4), dtype=np.uint8))
    with pytest.raises(ValueError):
        dcdm.Domain(np.ones((0, 4, 4), dtype=np.uint8))
    with pytest.raises(ValueError):
        dcdm.Domain(np.ones((4, 4, 4), dtype=np.uint8), faces={"top": "open"})
    with pytest.raises(ValueError):
        dcdm.Domain(np.ones((4, 4, 4), dtype=np.uint8), faces={"zmax": "leaky"})
    with pytest.raises(ValueError):
        dcdm.scene("no-such-scene", n=8)
    with pytest.raises(ValueError):
        dcdm.scene("sphere", n=8, no_such_param=1.0)
    with pytest.raises(ValueError):
        dcdm.Solver("mgpcg", domain=dcdm.scene("sphere", n=8)).solve(np.zeros((8, 8, 9)))


def test_errors_wrong_argument_types():
    """Arguments of the wrong Python type are TypeError or ValueError (not pybind11's
    RuntimeError "Unable to cast Python instance to C++ type")."""
    cells = np.ones((4, 4, 4), dtype=np.uint8)
    cases = {
        "face type not a string": lambda: dcdm.Domain(cells, faces={"zmax": 1}),
        "face name not a string": lambda: dcdm.Domain(cells, faces={1: "open"}),
        "faces not a dict": lambda: dcdm.Domain(cells, faces="open"),
        "scene parameter not a number": lambda: dcdm.scene("sphere", n=8, radius="big"),
        "scene shape not integers": lambda: dcdm.scene("sphere", shape=(8, 8, "a")),
        "Operator of a non-domain": lambda: dcdm.Operator(np.ones((3, 3, 3))),
        "b is None": lambda: dcdm.Solver("cg", domain=dcdm.scene("box", n=8)).solve(None),
    }
    wrong = {}
    for name, f in cases.items():
        try:
            f()
            wrong[name] = "no error"
        except (TypeError, ValueError):
            pass
        except Exception as e:  # noqa: BLE001 (collected and reported)
            wrong[name] = f"{type(e).__name__}: {e}"
    assert not wrong, wrong

# ---- (e) reuse and threads ----

def test_solver_reuse_matches_fresh_solvers(sphere24):
    domain, _ = dcdm.read_system(sphere24)
    rhs = [random_rhs(domain, seed) for seed in range(8)]
    for method in ("mgpcg", "dcdm-relax", "ic0"):
        reused = dcdm.Solver(method, domain=domain)
        for b in rhs:
            x1, i1 = reused.solve(b, rtol=1e-8)
            x2, i2 = dcdm.Solver(method, domain=domain).solve(b, rtol=1e-8)
            assert i1.converged and i1.iterations == i2.iterations, method
            np.testing.assert_array_equal(x1, x2, err_msg=method)


def test_python_threads_match_serial(sphere24):
    domain, _ = dcdm.read_system(sphere24)
    jobs = [("mgpcg", 0), ("dcdm-relax", 1), ("ic0", 2), ("mgpcg", 3), ("cg", 4), ("dcdm-relax", 5)]
    rhs = {seed: random_rhs(domain, seed) for _, seed in jobs}
    serial = {}
    for method, seed in jobs:
        serial[(method, seed)] = dcdm.Solver(method, domain=domain).solve(rhs[seed], rtol=1e-8)[0]

    results, errors = {}, []
    barrier = threading.Barrier(len(jobs))

    def work(method, seed):
        try:
            solver = dcdm.Solver(method, domain=domain)
            barrier.wait()
            for _ in range(2):
                x, info = solver.solve(rhs[seed], rtol=1e-8)
                assert info.converged
            results[(method, seed)] = x
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=work, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert set(results) == set(serial)
    for key, x in results.items():
        np.testing.assert_allclose(x, serial[key], rtol=0, atol=1e-12 * np.abs(serial[key]).max(),
                                   err_msg=str(key))


# ---- (f) scenes equal the CLI's ----

@pytest.mark.parametrize("name", ["box", "plume", "sphere", "bunny", "pool", "obstacles"])
def test_scene_matches_cli(export, name):
    folder = export(name, 16, "--seed", "3")
    d = dcdm.scene(name, n=16, seed=3)
    flags = np.load(folder / "flags.npy")
    assert d.shape == flags.shape == (16, 16, 16)
    np.testing.assert_array_equal(d.cells, flags)
    faces = load_json(folder / "system.json")["faces"]
    assert d.faces == {CLI_FACES[k]: v for k, v in faces.items()}


def test_scene_dims_and_params_match_cli(export):
    # non-cubic grid: the CLI's --dims NX,NY,NZ is shape=(nz, ny, nx)
    folder = export("sphere", None, "--dims", "12,16,20", "--param", "radius=0.3", "--param", "cz=0.6")
    d = dcdm.scene("sphere", shape=(20, 16, 12), radius=0.3, cz=0.6)
    assert d.shape == (20, 16, 12)
    np.testing.assert_array_equal(d.cells, np.load(folder / "flags.npy"))
    folder = export("pool", 20, "--seed", "2", "--param", "drop=0", "--param", "pillar=1")
    d = dcdm.scene("pool", n=20, seed=2, drop=0, pillar=1)
    np.testing.assert_array_equal(d.cells, np.load(folder / "flags.npy"))
    folder = export("box", 12, "--param", "open_top=0")
    d = dcdm.scene("box", n=12, open_top=0)
    np.testing.assert_array_equal(d.cells, np.load(folder / "flags.npy"))
    assert d.faces["zmax"] == "wall"
    # a different seed is a different obstacles scene
    assert not np.array_equal(dcdm.scene("obstacles", n=16, seed=3).cells,
                              dcdm.scene("obstacles", n=16, seed=4).cells)


# ---- (g) write_system, then the CLI ----

def test_write_system_cli_solves(cli, tmp_path):
    nz, ny, nx = 10, 12, 14
    cells = np.full((nz, ny, nx), dcdm.FLUID, dtype=np.uint8)
    cells[2:5, 3:7, 4:9] = dcdm.SOLID      # an obstacle
    cells[-2:] = dcdm.AIR                  # air above
    domain = dcdm.Domain(cells, faces={"xmin": "open"})
    b = random_rhs(domain, 11)
    folder = tmp_path / "frame_0001"
    dcdm.write_system(folder, domain, b)
    assert (folder / "system.json").is_file()

    # the round trip
    d2, b2 = dcdm.read_system(folder)
    np.testing.assert_array_equal(d2.cells, cells)
    assert d2.faces == domain.faces
    np.testing.assert_array_equal(b2, b)
    np.testing.assert_array_equal(np.load(folder / "flags.npy"), cells)
    np.testing.assert_array_equal(np.load(folder / "b.npy"), b)
    A_file = scipy.io.mmread(str(folder / "A.mtx")).tocsr()
    assert abs(A_file - dcdm.Operator(domain).to_scipy()).max() == 0

    # the CLI reads and solves it, to the same solution
    x_out = tmp_path / "x.npy"
    proc = cli("solve", "--system", folder, "--method", "mgpcg", "--rtol", "1e-10", "--x-out", x_out)
    assert "CONVERGED" in proc.stdout
    x_cli = np.load(x_out)
    x, info = dcdm.Solver("mgpcg", domain=domain).solve(b, rtol=1e-10)
    assert info.converged
    assert rel(x, x_cli) < 1e-8
    proc = cli("solve", "--system", folder, "--method", "ic0", "--rtol", "1e-8")
    assert proc.returncode == 0


def test_write_system_rejects_bad_b(tmp_path):
    domain = dcdm.scene("box", n=8)
    with pytest.raises(ValueError):
        dcdm.write_system(tmp_path / "s", domain, np.zeros((8, 8, 7)))
    b = np.zeros(domain.shape)
    b[1, 1, 1] = np.nan
    with pytest.raises(ValueError):
        dcdm.write_system(tmp_path / "s", domain, b)


# ---- (h) the simulator ----

def test_simulation_steps():
    sim = dcdm.Simulation(scene="plume", n=16, seed=0, method="mgpcg")
    assert sim.frame == 0
    n_checked = 0
    for step in range(1, 5):
        stats = sim.step()
        assert stats["frame"] == step == sim.frame
        assert stats["iterations"] > 0 or stats["max_div_before"] == 0
        if stats["max_div_before"] > 0:
            assert stats["max_div_after"] < 1e-4 * stats["max_div_before"], stats
            n_checked += 1
    assert n_checked >= 2
    rho = sim.density
    assert isinstance(rho, np.ndarray) and rho.shape == (16, 16, 16) and rho.dtype == np.float64
    assert np.all(np.isfinite(rho)) and rho.max() > 0  # the source has put smoke in
    u, v, w = sim.velocity
    assert u.shape == (16, 16, 17) and v.shape == (16, 17, 16) and w.shape == (17, 16, 16)
    stats = sim.step()
    u, v, w = sim.velocity
    # the MAC velocity is divergence-free on fluid cells after the projection
    fluid = sim.domain.cells == dcdm.FLUID
    div = (u[:, :, 1:] - u[:, :, :-1]) + (v[:, 1:, :] - v[:, :-1, :]) + (w[1:] - w[:-1])
    assert np.abs(div[fluid]).max() <= 1.01 * stats["max_div_after"] + 1e-12


def test_simulation_arrays_across_steps():
    """An array obtained before a step is either a copy (it keeps that frame's values) or a live
    view (it shows the current values) after every later step, not one then the other."""
    sim = dcdm.Simulation(scene="plume", n=16, seed=0, method="mgpcg")
    for _ in range(4):
        sim.step()
    rho = sim.density
    u = sim.velocity[0]
    rho_kept, u_kept = rho.copy(), u.copy()
    copy_semantics = {}
    for step in range(2):
        sim.step()
        for name, before, kept, now in (("density", rho, rho_kept, sim.density),
                                        ("u", u, u_kept, sim.velocity[0])):
            assert not np.array_equal(kept, now)  # the frame changed
            if step == 0:
                copy_semantics[name] = np.array_equal(before, kept)
                assert copy_semantics[name] or np.array_equal(before, now), \
                    f"{name} obtained before step() holds neither its frame nor the current one"
            elif copy_semantics[name]:
                assert np.array_equal(before, kept), f"{name}: kept its frame after one step, not after two"
            else:
                assert np.array_equal(before, now), f"{name}: followed the simulator for one step, not for two"
    assert sim.frame == 6


# ---- (i) dcdm-relax against mgpcg ----

def test_dcdm_relax_not_more_iterations_than_mgpcg(export):
    domain, b = dcdm.read_system(export("sphere", 32))
    _, mg = dcdm.Solver("mgpcg", domain=domain).solve(b, rtol=1e-6)
    _, relax = dcdm.Solver("dcdm-relax", domain=domain).solve(b, rtol=1e-6)
    assert mg.converged and relax.converged
    assert relax.iterations <= mg.iterations, (relax.iterations, mg.iterations)


SHARED_SOLVER_SCRIPT = r"""
import sys, threading
import numpy as np
import dcdm
method = sys.argv[1]
d = dcdm.scene("sphere", n=24)
rhs = [np.random.default_rng(k).standard_normal(d.shape) * (d.cells == dcdm.FLUID) for k in range(4)]
ref = [dcdm.Solver(method, domain=d).solve(b, rtol=1e-8)[0] for b in rhs]
shared = dcdm.Solver(method, domain=d)
bad = []
def work(k):
    for _ in range(3):
        x, info = shared.solve(rhs[k], rtol=1e-8)
        if not info.converged or np.abs(x - ref[k]).max() > 1e-10 * np.abs(ref[k]).max():
            bad.append((k, info.reason, info.iterations))
threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print(bad)
sys.exit(1 if bad else 0)
"""


@pytest.mark.parametrize("method", ["mgpcg", "ic0"])
def test_one_solver_shared_by_threads(method):
    """One Solver called from several Python threads at once (the GIL is released during the
    solve) must give the serial answers (or serialize the calls), never race. Run in a child
    process so that a crash fails this test only."""
    proc = subprocess.run([sys.executable, "-c", SHARED_SOLVER_SCRIPT, method], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert proc.returncode == 0, f"rc {proc.returncode}; wrong solves (rhs, reason, iterations): " \
                                 f"{proc.stdout.strip()} {proc.stderr[-2000:]}"


def test_b_off_the_fluid_and_non_finite_x0_are_value_errors():
    """A b with values on cells that are not fluid, or a NaN in x0, is bad input."""
    domain = dcdm.scene("sphere", n=12)
    solver = dcdm.Solver("mgpcg", domain=domain)
    b = np.where(domain.cells == dcdm.FLUID, 1.0, 0.0)
    off = b.copy()
    off[domain.cells == dcdm.SOLID] = 1.0
    with pytest.raises(ValueError, match="not FLUID"):
        solver.solve(off)
    x0 = np.zeros_like(b)
    x0[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="x0"):
        solver.solve(b, x0=x0)
    x, info = solver.solve(b)  # the same solver still works
    assert info.converged


def test_model_info_reads_every_architecture_and_refuses_corrupt_files(tmp_path):
    """Model files as the CLI reads them: the shipped ones by name, a corrupt one refused."""
    relax = dcdm.model_info("relaxnet")
    assert relax["architecture"] == "relaxnet" and relax["variant"] == "relaxnet-v2"
    assert relax["parameter_count"] == 110
    assert dcdm.model_info("flagnet")["architecture"] == "flagnet"
    paper = dcdm.model_info(os.path.join(os.path.dirname(__file__), "..", "..", "models", "paper64.dcdm"))
    assert paper["variant"] == "paper64" and paper["parameter_count"] > 10000
    broken = tmp_path / "broken.dcdm"
    data = bytearray(open(relax["path"], "rb").read())
    data[-10] ^= 0xFF
    broken.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum"):
        dcdm.model_info(str(broken))
    with pytest.raises(FileNotFoundError):
        dcdm.model_info(str(tmp_path / "missing.dcdm"))


def test_reference_network_method_matches_the_cli(cli, export, tmp_path):
    """`dcdm` with the reference network (paper64) runs on LibTorch through the same module as
    the tool, and takes the tool's iterations on the same system."""
    package_dir = os.path.dirname(dcdm.__file__)
    if not os.path.exists(os.path.join(package_dir, "dcdm_torch.so")):
        pytest.skip("this build of the package has no LibTorch module (DCDM_BUILD_LEARN=OFF or pip install)")
    model = os.path.join(os.path.dirname(__file__), "..", "..", "models", "paper64.dcdm")
    folder = export("sphere", 16)
    report = tmp_path / "r.json"
    cli("solve", "--system", folder, "--method", f"dcdm:{model}", "--rtol", "1e-4", "--json", report,
        env={"OMP_NUM_THREADS": "1"})
    expected = json.loads(report.read_text())
    domain, b = dcdm.read_system(folder)
    x, info = dcdm.Solver("dcdm", domain=domain, model=model).solve(b, rtol=1e-4)
    assert info.converged and info.method == "dcdm"
    assert abs(info.iterations - expected["iterations"]) <= 1, (info.iterations, expected["iterations"])
    r = b - dcdm.Operator(domain) @ x
    assert np.linalg.norm(r) <= 1.01e-4 * np.linalg.norm(b)
    # Without the module: a ValueError that says where it looked.
    code = ("import dcdm, numpy as np\n"
            "d = dcdm.scene('box', n=8)\n"
            "try:\n"
            f"    dcdm.Solver('dcdm', domain=d, model={model!r})\n"
            "except ValueError as e:\n"
            "    print('ValueError', e)\n")
    env = dict(os.environ, DCDM_TORCH_MODULE="/nonexistent/dcdm_torch.so")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert "ValueError" in out.stdout and "/nonexistent/dcdm_torch.so" in out.stdout, out.stdout + out.stderr


def test_a_model_must_reach_a_method_that_runs_one_and_only_once():
    domain = dcdm.scene("box", n=8)
    with pytest.raises(ValueError, match="no chosen method runs a model"):
        dcdm.Solver("mgpcg", domain=domain, model="relaxnet")
    with pytest.raises(ValueError, match="give the model once"):
        dcdm.Solver("dcdm-relax:relaxnet", domain=domain, model="relaxnet")
    with pytest.raises(ValueError, match="takes no settings"):
        dcdm.Solver("cg:foo=bar", domain=domain)
    x, info = dcdm.Solver("dcdm-relax", domain=domain, model="relaxnet").solve(
        np.where(domain.cells == dcdm.FLUID, 1.0, 0.0))
    assert info.converged
