# The Python package dcdm (python/): the extension module dcdm._dcdm (pybind11, over the core
# library) and the pure-Python layer, assembled in the build tree as build/python/dcdm so that
# `PYTHONPATH=build/python python3 -c "import dcdm"` works after `make build`; `pip install .`
# (pyproject.toml, setup.py) builds the same module with this CMake project.
#
# The interpreter: Debian's /usr/bin/python3 (the one python3-numpy / python3-scipy serve)
# unless Python_EXECUTABLE says otherwise; python3 on PATH may be another one.
if(NOT DEFINED Python_EXECUTABLE AND EXISTS /usr/bin/python3)
  set(Python_EXECUTABLE /usr/bin/python3)
endif()
set(PYBIND11_FINDPYTHON ON)
find_package(Python COMPONENTS Interpreter Development.Module REQUIRED)
find_package(pybind11 CONFIG REQUIRED)
# The package loads the LibTorch module like the tool does (apps/dcdm/modules.cpp,
# torch_backend.cpp).
pybind11_add_module(dcdm_python MODULE NO_EXTRAS python/src/module.cpp apps/dcdm/modules.cpp
                    apps/dcdm/torch_backend.cpp)  # no LTO: it only slows the link
target_include_directories(dcdm_python PRIVATE ${PROJECT_SOURCE_DIR}/apps/dcdm)
target_compile_definitions(dcdm_python PRIVATE DCDM_MODULE_DIR_FROM_BIN="${DCDM_LIBEXEC_FROM_BIN}")
target_link_libraries(dcdm_python PRIVATE ${CMAKE_DL_LIBS})
set(DCDM_PYTHON_PACKAGE_DIR ${PROJECT_BINARY_DIR}/python/dcdm CACHE PATH "Where the build assembles the dcdm package")
set_target_properties(dcdm_python PROPERTIES OUTPUT_NAME _dcdm LIBRARY_OUTPUT_DIRECTORY ${DCDM_PYTHON_PACKAGE_DIR})
target_link_libraries(dcdm_python PRIVATE dcdm_core $<BUILD_INTERFACE:dcdm_flags> fmt::fmt OpenMP::OpenMP_CXX)
file(GLOB DCDM_PYTHON_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/python/dcdm/*.py)
add_custom_command(TARGET dcdm_python POST_BUILD
                   COMMAND ${CMAKE_COMMAND} -E copy_if_different ${DCDM_PYTHON_SOURCES} ${DCDM_PYTHON_PACKAGE_DIR}
                   COMMAND ${CMAKE_COMMAND} -E make_directory ${DCDM_PYTHON_PACKAGE_DIR}/models
                   COMMAND ${CMAKE_COMMAND} -E copy_if_different ${PROJECT_SOURCE_DIR}/models/relaxnet.dcdm
                           ${PROJECT_SOURCE_DIR}/models/flagnet.dcdm ${DCDM_PYTHON_PACKAGE_DIR}/models
                   COMMENT "Assembling the dcdm Python package in ${DCDM_PYTHON_PACKAGE_DIR}")
if(TARGET dcdm_torch)
  add_dependencies(dcdm_python dcdm_torch)
  add_custom_command(TARGET dcdm_python POST_BUILD
                     COMMAND ${CMAKE_COMMAND} -E copy_if_different $<TARGET_FILE:dcdm_torch> ${DCDM_PYTHON_PACKAGE_DIR})
endif()

if(DCDM_BUILD_TESTS)
  add_test(NAME python_tests COMMAND ${Python_EXECUTABLE} -m pytest -q -p no:cacheprovider ${PROJECT_SOURCE_DIR}/tests/python)
  set_tests_properties(python_tests PROPERTIES TIMEOUT 900
    ENVIRONMENT "PYTHONPATH=${PROJECT_BINARY_DIR}/python;DCDM_CLI=$<TARGET_FILE:dcdm>;PYTHONDONTWRITEBYTECODE=1")
endif()

# `pip install .` into a fresh virtual environment (Debian's NumPy/SciPy through
# --system-site-packages, no package index), then a solve with the installed package.
if(DCDM_BUILD_TESTS)
  add_test(NAME package_pip_install
           COMMAND ${CMAKE_COMMAND} -DDCDM_SOURCE_DIR=${PROJECT_SOURCE_DIR} -DPYTHON=${Python_EXECUTABLE}
                   -DWORK_DIR=${PROJECT_BINARY_DIR}/package-tests/pip -P ${PROJECT_SOURCE_DIR}/tests/package/pip.cmake)
  set_tests_properties(package_pip_install PROPERTIES TIMEOUT 1500 LABELS package)
endif()
