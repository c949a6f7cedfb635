# PETSc integration (docs/DISTRIBUTED.md), built only when pkg-config finds PETSc:
# - dcdm_petsc: libdcdm_petsc.so, the KSPDCDM Krylov method. Always a shared library (PETSc
#   loads it with -dll_append) that needs PETSc only, not the dcdm core.
# - dcdm_petsc_system: the pressure system on a DMDA (src/petsc/pressure_system.cpp), on top of
#   dcdm_core and dcdm_petsc.
# - dcdm-mpi: the command-line program; its tests and the -dll_append example run under mpiexec.
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(PETSC QUIET IMPORTED_TARGET PETSc)
endif()
find_package(MPI QUIET COMPONENTS C CXX)
set(dcdm_petsc_default OFF)
# Under add_subdirectory only when asked (-DDCDM_BUILD_PETSC=ON), as the other optional parts.
if(PETSC_FOUND AND MPI_C_FOUND AND MPI_CXX_FOUND AND NOT DCDM_FUZZ AND PROJECT_IS_TOP_LEVEL)
  set(dcdm_petsc_default ON)
endif()
option(DCDM_BUILD_PETSC "Build the PETSc integration (KSPDCDM, dcdm-mpi); default ON when PETSc is found (top level)" ${dcdm_petsc_default})
if(NOT DCDM_BUILD_PETSC)
  return()
endif()
if(NOT PETSC_FOUND OR NOT MPI_C_FOUND)
  message(FATAL_ERROR "DCDM_BUILD_PETSC=ON needs PETSc (pkg-config PETSc; Debian: petsc-dev) and MPI")
endif()
message(STATUS "PETSc: ${PETSC_VERSION} (KSPDCDM, dcdm-mpi)")

add_library(dcdm_petsc SHARED src/petsc/ksp_dcdm.cpp)
set_target_properties(dcdm_petsc PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}
                      CXX_VISIBILITY_PRESET default)
target_include_directories(dcdm_petsc PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>)
target_link_libraries(dcdm_petsc PUBLIC PkgConfig::PETSC MPI::MPI_C PRIVATE $<BUILD_INTERFACE:dcdm_flags>)
add_library(dcdm::petsc ALIAS dcdm_petsc)

add_library(dcdm_petsc_system STATIC src/petsc/pressure_system.cpp src/petsc/multigrid_pc.cpp
            src/petsc/cell_interpolation.cpp)
set_target_properties(dcdm_petsc_system PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_link_libraries(dcdm_petsc_system PUBLIC dcdm_petsc dcdm_core MPI::MPI_CXX
  PRIVATE $<BUILD_INTERFACE:dcdm_flags> OpenMP::OpenMP_CXX fmt::fmt nlohmann_json::nlohmann_json)

if(DCDM_BUILD_APPS)
  add_executable(dcdm-mpi apps/dcdm-mpi/main.cpp)
  target_link_libraries(dcdm-mpi PRIVATE dcdm_petsc_system dcdm_petsc dcdm_core $<BUILD_INTERFACE:dcdm_flags>
    fmt::fmt nlohmann_json::nlohmann_json)
endif()

if(DCDM_INSTALL)
  # The module goes where PETSc programs can -dll_append it; dcdm-mpi finds it by RPATH.
  install(TARGETS dcdm_petsc LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime)
  if(TARGET dcdm-mpi)
    set_target_properties(dcdm-mpi PROPERTIES INSTALL_RPATH "$ORIGIN/${DCDM_LIB_FROM_BIN}")
    install(TARGETS dcdm-mpi RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)
  endif()
endif()

if(DCDM_BUILD_TESTS OR DCDM_BUILD_EXAMPLES)
  enable_testing()
  # Open MPI refuses to run as root without these (CI containers run as root).
  set(DCDM_MPI_TEST_ENV OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
      OMPI_MCA_rmaps_base_oversubscribe=1)
  set(DCDM_MPIEXEC ${MPIEXEC_EXECUTABLE} --oversubscribe)
endif()

if(DCDM_BUILD_TESTS)
  add_executable(dcdm_petsc_tests tests/petsc/test_petsc_main.cpp tests/petsc/test_petsc_ksp.cpp
                 tests/petsc/test_petsc_system.cpp tests/petsc/test_petsc_multigrid.cpp
                 tests/petsc/test_petsc_weighted.cpp tests/petsc/test_petsc_pcmg.cpp)
  target_link_libraries(dcdm_petsc_tests PRIVATE dcdm_petsc_system dcdm_petsc dcdm_core
    $<BUILD_INTERFACE:dcdm_flags> GTest::gtest fmt::fmt)
  foreach(np 1 2 3 4)
    add_test(NAME petsc_tests_np${np}
             COMMAND ${DCDM_MPIEXEC} -n ${np} $<TARGET_FILE:dcdm_petsc_tests>)
    set_tests_properties(petsc_tests_np${np} PROPERTIES ENVIRONMENT "${DCDM_MPI_TEST_ENV}" TIMEOUT 300
                         LABELS "petsc;mpi" PROCESSORS 2)
  endforeach()
  if(TARGET dcdm-mpi)
    # Command-line behaviour: exit codes, the JSON report, one error message for all ranks.
    add_test(NAME petsc_cli
             COMMAND ${CMAKE_COMMAND} -DMPIEXEC=${MPIEXEC_EXECUTABLE} -DDCDM_MPI=$<TARGET_FILE:dcdm-mpi> -DDCDM=$<TARGET_FILE:dcdm>
                     -DWORK_DIR=${PROJECT_BINARY_DIR}/petsc-cli-test -DPYTHON=/usr/bin/python3
                     -P ${PROJECT_SOURCE_DIR}/tests/petsc/cli_test.cmake)
    set_tests_properties(petsc_cli PROPERTIES ENVIRONMENT "${DCDM_MPI_TEST_ENV}" TIMEOUT 300
                         LABELS "petsc;mpi" PROCESSORS 2)
  endif()
endif()

if(DCDM_BUILD_EXAMPLES)
  # A plain PETSc program (no dcdm code linked) that gets -ksp_type dcdm from -dll_append.
  add_executable(example_petsc_ksp_dcdm examples/petsc_ksp_dcdm.c)
  target_link_libraries(example_petsc_ksp_dcdm PRIVATE PkgConfig::PETSC MPI::MPI_C)
  add_dependencies(example_petsc_ksp_dcdm dcdm_petsc)
  if(DCDM_SANITIZE)  # it loads the sanitized libdcdm_petsc.so: the runtime must come first
    target_link_options(example_petsc_ksp_dcdm PRIVATE -fsanitize=address,undefined)
  endif()
  foreach(np 1 3)
    add_test(NAME example_petsc_ksp_dcdm_np${np}
             COMMAND ${DCDM_MPIEXEC} -n ${np} $<TARGET_FILE:example_petsc_ksp_dcdm>
                     -dll_append $<TARGET_FILE:dcdm_petsc> -ksp_type dcdm -pc_type jacobi -ksp_converged_reason)
    # The method really was KSPDCDM, loaded from the library (an unknown -ksp_type is an error).
    set_tests_properties(example_petsc_ksp_dcdm_np${np} PROPERTIES ENVIRONMENT "${DCDM_MPI_TEST_ENV}" TIMEOUT 120
                         PASS_REGULAR_EXPRESSION "KSP dcdm: CONVERGED_RTOL"
                         LABELS "petsc;mpi" PROCESSORS 2)
  endforeach()
endif()
