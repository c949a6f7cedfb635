"""Builds the extension module dcdm._dcdm with the repository's CMake project (pyproject.toml).

The version is the CMake project's, so the package, the library and `dcdm --version` agree.
Only the core library and the module are built (no LibTorch, tool, tests or benchmarks).
CMAKE_BUILD_PARALLEL_LEVEL sets the build jobs (default: all cores)."""
import os
import re
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


def cmake_version():
    text = (ROOT / "CMakeLists.txt").read_text()
    match = re.search(r"project\(dcdm VERSION ([0-9.]+)", text)
    if not match:
        raise RuntimeError("CMakeLists.txt: no project(dcdm VERSION ...)")
    return match.group(1)


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        package_dir = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        build_dir = Path(self.build_temp).resolve() / "cmake"
        build_dir.mkdir(parents=True, exist_ok=True)
        configure = [
            "cmake", "-S", str(ROOT), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
            "-DDCDM_BUILD_PYTHON=ON", "-DDCDM_BUILD_LEARN=OFF", "-DDCDM_BUILD_APPS=OFF", "-DDCDM_BUILD_TESTS=OFF",
            "-DDCDM_BUILD_BENCH=OFF", "-DDCDM_BUILD_EXAMPLES=OFF", "-DDCDM_INSTALL=OFF",
            f"-DPython_EXECUTABLE={sys.executable}", f"-DDCDM_PYTHON_PACKAGE_DIR={package_dir}",
        ]
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 1))
        subprocess.run(configure, check=True)
        subprocess.run(["cmake", "--build", str(build_dir), "--target", "dcdm_python", "-j", jobs], check=True)


setup(
    version=cmake_version(),
    packages=["dcdm"],
    package_dir={"": "python"},
    ext_modules=[CMakeExtension("dcdm._dcdm")],
    cmdclass={"build_ext": CMakeBuild},
    options={"build": {"build_base": "build-python"}},
    zip_safe=False,
)
