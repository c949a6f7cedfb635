# `pip install .` of the Python package into a new virtual environment, offline, then an import
# and a solve from outside the source tree (so the installed package, not python/, is used).
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)
run(${PYTHON} -m venv --system-site-packages ${WORK_DIR}/venv)
run(${CMAKE_COMMAND} -E env CMAKE_BUILD_PARALLEL_LEVEL=2
    ${WORK_DIR}/venv/bin/python -m pip install --no-build-isolation --no-index --no-deps ${DCDM_SOURCE_DIR})
run(${WORK_DIR}/venv/bin/python -c [=[
import dcdm, numpy as np
assert dcdm.__file__.startswith(__import__("sys").prefix), dcdm.__file__
domain = dcdm.scene("sphere", n=24)
b = np.where(domain.cells == dcdm.FLUID, 1.0, 0.0)
x, info = dcdm.Solver("dcdm-relax", domain).solve(b, rtol=1e-8)
r = b - dcdm.Operator(domain) @ x
assert info.converged and np.linalg.norm(r) <= 1e-7 * np.linalg.norm(b), info
print("pip-installed dcdm", dcdm.__version__, info)
]=])
message(STATUS "${last_output}")
