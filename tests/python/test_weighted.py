"""Weighted domains from Python: coefficients in, out and through the operator, the solvers and
system folders, against an independent SciPy assembly from the definition.

    PYTHONPATH=build/python /usr/bin/python3 -m pytest -q tests/python/test_weighted.py
"""

import inspect
import json

import numpy as np
import pytest
import scipy.io
import scipy.sparse
import scipy.sparse.linalg

import dcdm

OFFSETS = [(-1, 0, 0), (1, 0, 0), (0, -1, 0), (0, 1, 0), (0, 0, -1), (0, 0, 1)]  # (di, dj, dk)
FACE_OF_OFFSET = ["xmin", "xmax", "ymin", "ymax", "zmin", "zmax"]


def random_cells(shape, seed, solid=0.15, air=0.1):
    rng = np.random.default_rng(seed)
    r = rng.random(shape)
    return np.where(r < solid, dcdm.SOLID, np.where(r < solid + air, dcdm.AIR, dcdm.FLUID)).astype(np.uint8)


def random_coefficients(shape, seed):
    nz, ny, nx = shape
    rng = np.random.default_rng(seed)
    fx = rng.uniform(0.05, 2.0, (nz, ny, nx + 1))
    fy = rng.uniform(0.05, 2.0, (nz, ny + 1, nx))
    fz = rng.uniform(0.05, 2.0, (nz + 1, ny, nx))
    diag = np.where(rng.random(shape) < 0.3, rng.uniform(0.0, 1.0, shape), 0.0)
    return fx, fy, fz, diag


def cell_type(cells, faces, i, j, k):
    nz, ny, nx = cells.shape
    if 0 <= i < nx and 0 <= j < ny and 0 <= k < nz:
        return cells[k, j, i]
    name = "xmin" if i < 0 else "xmax" if i >= nx else "ymin" if j < 0 else "ymax" if j >= ny else \
        "zmin" if k < 0 else "zmax"
    return dcdm.AIR if faces.get(name, "wall") == "open" else dcdm.SOLID


def face_weight(fx, fy, fz, i, j, k, o):
    if o[0]:
        return fx[k, j, i if o[0] < 0 else i + 1]
    if o[1]:
        return fy[k, j if o[1] < 0 else j + 1, i]
    return fz[k if o[2] < 0 else k + 1, j, i]


def reference_matrix(cells, faces, fx, fy, fz, diag, scale):
    """The weighted operator from its definition, cell by cell (full grid, x fastest)."""
    nz, ny, nx = cells.shape
    rows, cols, vals = [], [], []
    idx = lambda i, j, k: i + nx * (j + ny * k)  # noqa: E731
    for k in range(nz):
        for j in range(ny):
            for i in range(nx):
                if cells[k, j, i] != dcdm.FLUID:
                    continue
                c = idx(i, j, k)
                d = diag[k, j, i]
                for o in OFFSETS:
                    t = cell_type(cells, faces, i + o[0], j + o[1], k + o[2])
                    if t == dcdm.SOLID:
                        continue
                    w = face_weight(fx, fy, fz, i, j, k, o)
                    d += w
                    if t == dcdm.FLUID:
                        rows.append(c)
                        cols.append(idx(i + o[0], j + o[1], k + o[2]))
                        vals.append(-scale * w)
                rows.append(c)
                cols.append(c)
                vals.append(scale * d)
    n = nx * ny * nz
    return scipy.sparse.csr_matrix((vals, (rows, cols)), shape=(n, n))


def connected_domain(shape=(6, 7, 8), seed=3, scale=1.0):
    """A weighted domain whose fluid is one component open at the top (non-singular): a solid
    block in the middle, an air layer on top, random weights and diagonal terms."""
    nz, ny, nx = shape
    cells = np.full(shape, dcdm.FLUID, dtype=np.uint8)
    cells[1:3, 2:4, 2:5] = dcdm.SOLID
    cells[-1] = dcdm.AIR
    faces = {"zmax": "open", "xmin": "open"}
    fx, fy, fz, diag = random_coefficients(shape, seed)
    domain = dcdm.Domain(cells, faces=faces, face_x=fx, face_y=fy, face_z=fz, diagonal=diag, scale=scale)
    return domain, (cells, faces, fx, fy, fz, diag, scale)


def fluid_rhs(domain, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(domain.shape) * (domain.cells == dcdm.FLUID)


def spsolve_fluid(A, b, cells):
    fluid = np.flatnonzero(cells.ravel() == dcdm.FLUID)
    x = np.zeros(A.shape[0])
    x[fluid] = scipy.sparse.linalg.spsolve(A[fluid][:, fluid].tocsc(), b.ravel()[fluid])
    return x


# ---- construction and read-back ----

@pytest.mark.parametrize("scale", [1.0, 1.0 / 0.1 ** 2])
@pytest.mark.parametrize("with_diagonal", [False, True])
def test_to_scipy_matches_an_independent_assembly(scale, with_diagonal):
    shape = (4, 5, 6)
    cells = random_cells(shape, 1)
    faces = {"xmin": "open", "zmax": "open"}
    fx, fy, fz, diag = random_coefficients(shape, 2)
    if not with_diagonal:
        diag = np.zeros(shape)
    domain = dcdm.Domain(cells, faces=faces, face_x=fx, face_y=fy, face_z=fz,
                         diagonal=diag if with_diagonal else None, scale=scale)
    assert domain.weighted
    assert domain.scale == scale
    ref = reference_matrix(cells, faces, fx, fy, fz, diag, scale)
    op = dcdm.Operator(domain)
    A = op.to_scipy()
    assert abs(A - ref).max() <= 1e-12 * abs(ref).max()
    x = np.random.default_rng(5).standard_normal(shape) * (cells == dcdm.FLUID)
    assert np.allclose(op @ x, (ref @ x.ravel()).reshape(shape), rtol=1e-12, atol=1e-12 * scale)
    lin = op.as_linear_operator()
    assert np.allclose(lin.matvec(x.ravel()), ref @ x.ravel(), rtol=1e-12, atol=1e-12 * scale)


def test_properties_read_the_coefficients_back():
    domain, (cells, faces, fx, fy, fz, diag, scale) = connected_domain(scale=4.0)
    assert np.array_equal(domain.face_x, fx)
    assert np.array_equal(domain.face_y, fy)
    assert np.array_equal(domain.face_z, fz)
    assert np.array_equal(domain.diagonal, diag)
    assert domain.face_x.dtype == np.float64 and domain.face_x.shape == fx.shape
    assert domain.scale == 4.0
    assert "weighted" in repr(domain)
    # Unweighted: the defaults.
    plain = dcdm.Domain(cells, faces=faces)
    assert not plain.weighted
    assert plain.scale == 1.0
    assert np.all(plain.face_x == 1.0) and plain.face_x.shape == fx.shape
    assert np.all(plain.face_z == 1.0) and plain.face_z.shape == fz.shape
    assert np.all(plain.diagonal == 0.0) and plain.diagonal.shape == cells.shape
    # The unit operator given explicitly stays the unit one.
    ones = dcdm.Domain(cells, faces=faces, face_x=np.ones(fx.shape), diagonal=np.zeros(cells.shape), scale=1.0)
    assert not ones.weighted
    # with_coefficients: a weighted copy; the original is unchanged.
    w = plain.with_coefficients(face_y=fy, scale=2.0)
    assert w.weighted and not plain.weighted
    assert np.array_equal(w.face_y, fy) and np.all(w.face_x == 1.0) and w.scale == 2.0
    assert np.array_equal(w.cells, plain.cells) and w.faces == plain.faces
    assert not w.with_coefficients().weighted


def test_float32_arrays_are_accepted():
    domain, (cells, faces, fx, fy, fz, diag, scale) = connected_domain()
    f32 = [a.astype(np.float32) for a in (fx, fy, fz, diag)]
    d32 = dcdm.Domain(cells, faces=faces, face_x=f32[0], face_y=f32[1], face_z=f32[2], diagonal=f32[3])
    assert np.array_equal(d32.face_x, f32[0].astype(np.float64))
    assert np.array_equal(d32.diagonal, f32[3].astype(np.float64))
    ref = reference_matrix(cells, faces, *[a.astype(np.float64) for a in f32], 1.0)
    assert abs(dcdm.Operator(d32).to_scipy() - ref).max() <= 1e-12 * abs(ref).max()
    # Non-contiguous views are fine too.
    big = np.ones((cells.shape[0], cells.shape[1], 2 * (cells.shape[2] + 1)))
    view = big[:, :, ::2]
    assert dcdm.Domain(cells, faces=faces, face_x=view * 2.0).weighted


def test_bad_coefficients_are_refused_with_the_argument_named():
    cells = np.ones((3, 4, 5), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"face_x: shape \(3, 4, 5\), expected \(nz, ny, nx\+1\) = \(3, 4, 6\)"):
        dcdm.Domain(cells, face_x=np.ones((3, 4, 5)))
    with pytest.raises(ValueError, match=r"face_y: .*\(nz, ny\+1, nx\) = \(3, 5, 5\)"):
        dcdm.Domain(cells, face_y=np.ones((3, 4, 5)))
    with pytest.raises(ValueError, match=r"face_z: .*\(nz\+1, ny, nx\) = \(4, 4, 5\)"):
        dcdm.Domain(cells, face_z=np.ones(80))
    with pytest.raises(ValueError, match=r"diagonal: .*\(nz, ny, nx\) = \(3, 4, 5\)"):
        dcdm.Domain(cells, diagonal=np.ones((5, 4, 3)))
    with pytest.raises(TypeError, match="face_x: dtype int64"):
        dcdm.Domain(cells, face_x=np.ones((3, 4, 6), dtype=np.int64))
    with pytest.raises(TypeError, match="face_x: dtype float16"):
        dcdm.Domain(cells, face_x=np.ones((3, 4, 6), dtype=np.float16))
    with pytest.raises(TypeError, match="diagonal"):
        dcdm.Domain(cells, diagonal=[[0.0]])
    nan = np.ones((3, 4, 6))
    nan[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match=r"face_x at face \(3, 2, 1\) is nan"):
        dcdm.Domain(cells, face_x=nan)
    with pytest.raises(ValueError, match=r"diagonal at cell \(0, 0, 0\) is -1"):
        dcdm.Domain(cells, diagonal=-np.ones((3, 4, 5)))
    with pytest.raises(ValueError, match="scale"):
        dcdm.Domain(cells, scale=0.0)
    with pytest.raises(ValueError, match="scale"):
        dcdm.Domain(cells, scale=float("inf"))
    # A fluid cell with weight 0 on every face and no diagonal term has no equation.
    with pytest.raises(ValueError, match=r"fluid cell \(0, 0, 0\)"):
        dcdm.Domain(np.ones((1, 1, 1), dtype=np.uint8), faces={"xmin": "open"}, face_x=np.zeros((1, 1, 2)))
    # Coefficients are keyword-only.
    with pytest.raises(TypeError):
        dcdm.Domain(cells, None, np.ones((3, 4, 6)))


# ---- solvers ----

@pytest.mark.parametrize("method", ["ic0", "cg", "jacobi"])
@pytest.mark.parametrize("scale", [1.0, 400.0])
def test_solver_matches_spsolve_on_the_fluid_rows(method, scale):
    domain, (cells, faces, fx, fy, fz, diag, _) = connected_domain(scale=scale)
    ref = reference_matrix(cells, faces, fx, fy, fz, diag, scale)
    b = fluid_rhs(domain, 1)
    want = spsolve_fluid(ref, b, cells).reshape(cells.shape)
    x, info = dcdm.Solver(method, domain).solve(b, rtol=1e-12, maxiter=5000)
    assert info.converged, info
    assert np.linalg.norm(x - want) <= 1e-9 * np.linalg.norm(want)
    # The CSR route (Solver(matrix=...)) agrees.
    x2, info2 = dcdm.Solver(method, matrix=dcdm.Operator(domain).to_scipy()).solve(b.ravel(), rtol=1e-12, maxiter=5000)
    assert info2.converged
    assert np.linalg.norm(x2 - want.ravel()) <= 1e-9 * np.linalg.norm(want)


def test_preconditioner_on_a_weighted_domain_serves_scipy_cg():
    domain, (cells, faces, fx, fy, fz, diag, scale) = connected_domain()
    A = dcdm.Operator(domain).to_scipy()
    b = fluid_rhs(domain, 2).ravel()
    want = spsolve_fluid(A, b, cells)
    M = dcdm.Preconditioner("ic0", domain).as_linear_operator()
    fluid = cells.ravel() == dcdm.FLUID
    # SciPy's cg on the fluid rows, preconditioned by IC(0) of the weighted domain.
    Af = A[fluid][:, fluid]
    Mf = scipy.sparse.linalg.LinearOperator(Af.shape, matvec=lambda r: M.matvec(_scatter(r, fluid))[fluid])
    params = inspect.signature(scipy.sparse.linalg.cg).parameters
    rtol = {"rtol": 1e-12} if "rtol" in params else {"tol": 1e-12}  # tol= up to SciPy 1.11
    xf, status = scipy.sparse.linalg.cg(Af, b[fluid], M=Mf, atol=0.0, maxiter=500, **rtol)
    assert status == 0
    assert np.linalg.norm(xf - want[fluid]) <= 1e-8 * np.linalg.norm(want)


def _scatter(values, mask):
    out = np.zeros(mask.shape)
    out[mask] = values
    return out


@pytest.mark.parametrize("method", ["mgpcg", "dcdm-relax"])
def test_multigrid_methods_either_solve_or_refuse_clearly(method):
    domain, (cells, faces, fx, fy, fz, diag, scale) = connected_domain(shape=(8, 8, 8))
    b = fluid_rhs(domain, 3)
    try:
        solver = dcdm.Solver(method, domain)
    except (ValueError, RuntimeError) as e:  # until the multigrid takes weighted domains
        assert any(word in str(e).lower() for word in ("weight", "coefficient")), str(e)
        return
    x, info = solver.solve(b, rtol=1e-10, maxiter=500)
    A = dcdm.Operator(domain).to_scipy()
    want = spsolve_fluid(A, b, cells)
    assert info.converged, info
    assert np.linalg.norm(x.ravel() - want) <= 1e-7 * np.linalg.norm(want)


# ---- system folders ----

def test_write_system_read_system_round_trip(tmp_path):
    domain, (cells, faces, fx, fy, fz, diag, scale) = connected_domain(scale=1.0 / 0.05 ** 2)
    b = fluid_rhs(domain, 4)
    folder = tmp_path / "sys"
    dcdm.write_system(folder, domain, b)
    for name in ("face_x.npy", "face_y.npy", "face_z.npy", "diagonal.npy", "A.mtx", "flags.npy"):
        assert (folder / name).is_file(), name
    meta = json.loads((folder / "system.json").read_text())
    assert meta["coefficients"]["face_x"] == "face_x.npy"
    assert meta["coefficients"]["scale"] == domain.scale
    assert np.array_equal(np.load(folder / "face_y.npy"), fy)
    assert np.load(folder / "face_z.npy").shape == fz.shape
    back, b2 = dcdm.read_system(folder)
    assert back.weighted
    assert back.scale == domain.scale
    for name in ("face_x", "face_y", "face_z", "diagonal"):
        assert np.array_equal(getattr(back, name), getattr(domain, name)), name
    assert np.array_equal(back.cells, domain.cells) and back.faces == domain.faces
    assert np.array_equal(b2, b)
    assert (dcdm.Operator(back).to_scipy() != dcdm.Operator(domain).to_scipy()).nnz == 0
    # A.mtx holds the weighted values exactly.
    mtx = scipy.io.mmread(str(folder / "A.mtx")).tocsr()
    assert abs(mtx - dcdm.Operator(domain).to_scipy()).max() == 0.0
    # Only the arrays that are not all default are written.
    only_x = dcdm.Domain(cells, faces=faces, face_x=fx)
    dcdm.write_system(tmp_path / "x", only_x, b)
    assert (tmp_path / "x" / "face_x.npy").is_file()
    assert not (tmp_path / "x" / "face_y.npy").exists()
    assert not (tmp_path / "x" / "diagonal.npy").exists()
    back, _ = dcdm.read_system(tmp_path / "x")
    assert np.array_equal(back.face_x, fx) and np.all(back.face_y == 1.0)


def test_read_system_names_a_bad_coefficient_file(tmp_path):
    domain, (cells, faces, fx, fy, fz, diag, scale) = connected_domain()
    folder = tmp_path / "sys"
    dcdm.write_system(folder, domain, fluid_rhs(domain))
    np.save(folder / "face_z.npy", np.ones((3, 3, 3)))
    with pytest.raises(ValueError, match="face_z.npy"):
        dcdm.read_system(folder)
    (folder / "face_z.npy").unlink()
    with pytest.raises(FileNotFoundError, match="face_z.npy"):
        dcdm.read_system(folder)


def test_the_cli_solves_a_weighted_folder_written_from_python(tmp_path, cli):
    domain, _ = connected_domain()
    dcdm.write_system(tmp_path / "sys", domain, fluid_rhs(domain))
    r = cli("solve", "--system", str(tmp_path / "sys"), "--method", "ic0", "--rtol", "1e-8")
    assert r.returncode == 0, r.stdout + r.stderr


def test_dcdm_import_of_a_scipy_weighted_matrix_reads_back_in_python(tmp_path, cli):
    # A density-weighted matrix made by SciPy alone, then `dcdm import`: the recovered domain's
    # operator is the matrix, and it solves to spsolve's answer.
    domain, (cells, faces, fx, fy, fz, diag, scale) = connected_domain(scale=2.5)
    ref = reference_matrix(cells, faces, fx, fy, fz, diag, scale)
    scipy.io.mmwrite(str(tmp_path / "A.mtx"), ref, symmetry="symmetric")
    b = fluid_rhs(domain, 6)
    np.save(tmp_path / "b.npy", b)
    nz, ny, nx = cells.shape
    r = cli("import", tmp_path / "A.mtx", "--rhs", tmp_path / "b.npy", "--dims", f"{nx},{ny},{nz}",
            "--out", tmp_path / "sys")
    assert "general weights" in r.stdout, r.stdout
    back, b2 = dcdm.read_system(tmp_path / "sys")
    assert back.weighted
    assert np.array_equal(back.cells == dcdm.FLUID, cells == dcdm.FLUID)
    A = dcdm.Operator(back).to_scipy()
    assert abs(A - ref).max() <= 4e-12 * abs(ref).max()
    x, info = dcdm.Solver("ic0", back).solve(b2, rtol=1e-12, maxiter=5000)
    assert info.converged
    want = spsolve_fluid(ref, b, cells).reshape(cells.shape)
    assert np.linalg.norm(x - want) <= 1e-9 * np.linalg.norm(want)
    # A matrix with a positive coupling is refused, exit 2, naming the file and the row.
    bad = ref.tolil()
    i = int(np.flatnonzero(cells.ravel() == dcdm.FLUID)[0])
    j = int(max(c for c in bad.rows[i] if c != i))  # a fluid neighbour
    bad[i, j] = bad[j, i] = 0.5
    scipy.io.mmwrite(str(tmp_path / "bad.mtx"), bad.tocsr(), symmetry="symmetric")
    r = cli("import", tmp_path / "bad.mtx", "--dims", f"{nx},{ny},{nz}", "--out", tmp_path / "x", check=False)
    assert r.returncode == 2
    assert "bad.mtx" in r.stderr and "positive" in r.stderr and "row" in r.stderr, r.stderr
