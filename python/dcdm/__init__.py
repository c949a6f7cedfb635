"""dcdm: pressure Poisson solvers for fluid simulation on voxel grids.

The Deep Conjugate Direction Method with learned generators (``dcdm-relax``, ``dcdm-flag``)
beside MGPCG, IC(0), CG and library peers, on the 7-point pressure operator of a voxel domain.

Arrays follow NumPy's C order with x fastest: a grid of nx x ny x nz cells is an array of
shape ``(nz, ny, nx)``, and cell (i, j, k) is flat index ``i + nx * (j + ny * k)``. Vectors may
also be flat, of length ``nx * ny * nz`` (the full grid; entries outside fluid cells are 0).

Variable coefficients (liquids, cut cells, variable density, grid spacing) are keyword
arguments of ``Domain``: MAC face weights ``face_x`` (nz, ny, nx+1), ``face_y`` (nz, ny+1, nx),
``face_z`` (nz+1, ny, nx), a per-cell ``diagonal`` term (nz, ny, nx) and a global ``scale``;
``domain.with_coefficients(...)`` gives a weighted copy of a scene. Row of fluid cell c:
A[c, c] = scale * (sum of the weights of its faces to non-solid neighbours + diagonal[c]),
A[c, n] = -scale * w for a fluid neighbour n across a face of weight w.

    import numpy as np, dcdm
    domain = dcdm.scene("bunny", n=64)               # or dcdm.Domain(cells, faces={"zmax": "open"})
    A = dcdm.Operator(domain)                        # A @ x, A.to_scipy(), A.as_linear_operator()
    b = np.random.default_rng(1).standard_normal(domain.shape) * (domain.cells == dcdm.FLUID)
    solver = dcdm.Solver("dcdm-relax", domain)       # set up once; any CLI --method spec
    x, info = solver.solve(b, rtol=1e-6)
    print(info.iterations, info.reason, info.residuals[-1])
"""

import os as _os

import numpy as _np

from ._dcdm import (  # noqa: F401
    AIR,
    FLUID,
    SOLID,
    Domain,
    SolveInfo,
    __version__,
    find_model,
    get_num_threads,
    model_info,
    scene,
    scene_names,
    set_num_threads,
)
from . import _dcdm

# The shipped models (dcdm/models; DCDM_MODEL_PATH still comes first) and, where the build has
# LibTorch, the module that runs the reference network travel with the package.
_dcdm._set_package_dir(_os.path.dirname(_os.path.abspath(__file__)))

__all__ = [
    "AIR", "FLUID", "SOLID", "Domain", "Operator", "Preconditioner", "Simulation", "SolveInfo", "Solver",
    "find_model", "get_num_threads", "methods", "model_info", "read_system", "scene", "scene_names", "set_num_threads",
    "write_system", "__version__",
]


def methods():
    """The solver methods by name, as the CLI's ``--method``: a list of (name, help)."""
    return list(_dcdm.methods())


class Operator:
    """The 7-point pressure operator A of a domain (full-grid layout, N = nx * ny * nz), weighted
    when the domain has coefficients (``domain.weighted``)."""

    def __init__(self, domain):
        self._op = _dcdm._Operator(domain)
        self.domain = domain
        n = self._op.size
        self.shape = (n, n)
        self.dtype = _np.dtype(_np.float64)

    def matvec(self, x):
        """A x for x of the grid's shape (nz, ny, nx) or flat (N,); the result has x's shape."""
        return self._op.apply(x)

    def __matmul__(self, x):
        return self._op.apply(x)

    def to_scipy(self):
        """A as a ``scipy.sparse.csr_matrix`` (the matrix ``dcdm export`` writes)."""
        import scipy.sparse
        data, indices, indptr = self._op.csr_arrays()
        return scipy.sparse.csr_matrix((data, indices, indptr), shape=self.shape)

    def as_linear_operator(self):
        """A as a ``scipy.sparse.linalg.LinearOperator`` (matrix-free)."""
        import scipy.sparse.linalg
        return scipy.sparse.linalg.LinearOperator(self.shape, matvec=self._op.apply, rmatvec=self._op.apply,
                                                  dtype=_np.float64)


class Solver:
    """A solver set up once, reused for any number of right-hand sides.

    ``method`` is any CLI ``--method`` spec ("mgpcg", "mgpcg:omega=1.3:precision=float",
    "dcdm-relax" (the shipped relaxnet model), "dcdm-relax:FILE", "ic0", "cg", "hypre-amg", ...;
    ``dcdm.methods()`` lists them; "dcdm" with a reference-network model runs on LibTorch, loaded
    on first use where the build has it). Give a ``domain`` (a voxel domain: every method) or a
    SciPy sparse ``matrix`` (the matrix-based methods: cg, jacobi, ic0, mic0, dpcg, the peers).
    ``solve`` releases the GIL; solves of one Solver from several threads run one after another,
    solves of different Solvers in parallel.
    """

    def __init__(self, method="mgpcg", domain=None, matrix=None, model=None, dcdm_k=None, dcdm_fallback="best",
                 dcdm_vectors="auto", mic_safety=0.97, deflation_vectors=16, network_precision="float32", network_input_scale=0.0,
                 threads=None):
        if (domain is None) == (matrix is None):
            raise ValueError("Solver: give exactly one of domain= or matrix=")
        if threads is not None:
            set_num_threads(threads)
        params = _dcdm._MethodParams()
        if model is not None:
            params.model = str(model)
        if dcdm_k is not None:
            params.dcdm_k = int(dcdm_k)
        params.dcdm_fallback = str(dcdm_fallback)
        params.dcdm_vectors = str(dcdm_vectors)
        params.mic_safety = float(mic_safety)
        params.deflation_vectors = int(deflation_vectors)
        params.network_precision = str(network_precision)
        params.network_input_scale = float(network_input_scale)
        if matrix is not None:
            import scipy.sparse
            if not scipy.sparse.issparse(matrix):
                raise TypeError("matrix: expected a scipy.sparse matrix")
            csr = scipy.sparse.csr_matrix(matrix)
            csr.sort_indices()
            csr.sum_duplicates()
            self._solver = _dcdm._Solver(method, params, None, csr.data, csr.indices, csr.indptr,
                                         csr.shape[0], csr.shape[1])
        else:
            if not isinstance(domain, Domain):
                raise TypeError("domain: expected a dcdm.Domain")
            self._solver = _dcdm._Solver(method, params, domain, None, None, None, 0, 0)
        self.method = method
        self.domain = domain

    def solve(self, b, rtol=1e-6, atol=0.0, x0=None, maxiter=1000, callback=None):
        """Solves A x = b; returns ``(x, info)``. ``x`` has b's shape. ``callback(iteration,
        residual_norm)`` is called every iteration (iteration 0 is the initial residual)."""
        return self._solver.solve(b, float(rtol), float(atol), x0, int(maxiter), callback)


class Preconditioner:
    """A preconditioner / DCDM direction generator as an operator r -> z, set up on a domain:
    "mgpcg[:settings]" (the V-cycle), "dcdm-relax[:MODEL]" (the learned cycle), "jacobi",
    "ic0", "mic0". ``as_linear_operator()`` gives SciPy's ``M=``. Applications of one object from
    several threads run one after another (it keeps work buffers)."""

    def __init__(self, method, domain):
        self._op = _dcdm._Preconditioner(method, domain)
        n = self._op.size
        self.shape = (n, n)
        self.method = method

    def apply(self, r):
        return self._op.apply(r)

    def as_linear_operator(self):
        import scipy.sparse.linalg
        return scipy.sparse.linalg.LinearOperator(self.shape, matvec=self._op.apply, rmatvec=self._op.apply,
                                                  dtype=_np.float64)


class Simulation:
    """The smoke simulator of ``dcdm simulate``, stepped from Python. ``density``, ``pressure``
    and ``velocity`` (u, v, w on the MAC faces: shapes (nz, ny, nx+1), (nz, ny+1, nx),
    (nz+1, ny, nx)) are copies of the current frame's fields (the simulator swaps its buffers
    every step, so a view would not stay one frame's values)."""

    def __init__(self, scene="plume", n=32, shape=None, seed=0, method="mgpcg", rtol=1e-6):
        self._sim = _dcdm._Simulation(scene, shape, int(n), int(seed), method, float(rtol))

    def step(self):
        """Advances one frame; returns its statistics (iterations, max divergence before and
        after the projection, seconds)."""
        return self._sim.step()

    @property
    def frame(self):
        return self._sim.frame

    @property
    def density(self):
        return self._sim.density

    @property
    def pressure(self):
        return self._sim.pressure

    @property
    def velocity(self):
        return self._sim.velocity

    @property
    def domain(self):
        return self._sim.domain


def read_system(folder):
    """A system folder written by ``dcdm export`` / ``dcdm simulate`` / ``dcdm import`` /
    ``write_system``: ``(domain, b)``; a weighted system's domain has its coefficients (read from
    face_x.npy, ... as system.json lists them)."""
    return _dcdm._read_system(str(folder))


def write_system(folder, domain, b):
    """Writes a system folder that the CLI reads (``dcdm solve --system FOLDER``), with the
    domain's coefficients (face_x.npy, face_y.npy, face_z.npy, diagonal.npy: those not all
    default) when it is weighted."""
    _dcdm._write_system(str(folder), domain, b)
