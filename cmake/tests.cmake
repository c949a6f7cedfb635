# The test suite: one GoogleTest binary (unit, CLI and agreement tests) and the package tests,
# which build small consumer projects against dcdm the two ways a user would.
file(GLOB DCDM_TEST_SOURCES CONFIGURE_DEPENDS tests/*.cpp)
add_executable(dcdm_tests ${DCDM_TEST_SOURCES})
target_link_libraries(dcdm_tests PRIVATE dcdm_core dcdm_learn dcdm_vdb $<BUILD_INTERFACE:dcdm_flags> GTest::gtest GTest::gtest_main
  OpenMP::OpenMP_CXX fmt::fmt spdlog::spdlog Eigen3::Eigen)
target_include_directories(dcdm_tests SYSTEM PRIVATE ${STB_INCLUDE_DIR})
target_compile_definitions(dcdm_tests PRIVATE
  DCDM_SOURCE_DIR="${PROJECT_SOURCE_DIR}" DCDM_CLI_PATH="$<TARGET_FILE:dcdm>")
add_dependencies(dcdm_tests dcdm)
# A .vdb as another program writes it (no dcdm metadata), for the import tests; only the helper
# links OpenVDB, so the test binary does not load it.
if(OpenVDB_FOUND AND TARGET dcdm_vdb)
  add_executable(foreign_vdb tests/tools/foreign_vdb.cpp)
  target_link_libraries(foreign_vdb PRIVATE OpenVDB::openvdb)
  target_compile_definitions(dcdm_tests PRIVATE DCDM_FOREIGN_VDB_PATH="$<TARGET_FILE:foreign_vdb>")
  add_dependencies(dcdm_tests foreign_vdb)
endif()
include(GoogleTest)
gtest_discover_tests(dcdm_tests DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 600)
# A team of threads smaller than the cycle asks for (a thread limit of 2 under 3 requested
# threads): the fused passes lay their residual planes out again for the team they get.
add_test(NAME MultigridFusedPasses.TeamsSmallerThanAskedForUnderAThreadLimit
         COMMAND dcdm_tests --gtest_filter=MultigridFusedPasses.TeamsSmallerThanAskedForGiveTheSameResult)
set_tests_properties(MultigridFusedPasses.TeamsSmallerThanAskedForUnderAThreadLimit
                     PROPERTIES ENVIRONMENT OMP_THREAD_LIMIT=2 TIMEOUT 600)

# Package tests (tests/package/): install into a temporary prefix and build a consumer with
# find_package(dcdm) and pkg-config; build a consumer that add_subdirectory()s the source tree
# at C++17. Each configures and builds a separate CMake project.
set(DCDM_PACKAGE_TEST_DIR ${PROJECT_BINARY_DIR}/package-tests)
add_test(NAME package_find_package
         COMMAND ${CMAKE_COMMAND} -DDCDM_SOURCE_DIR=${PROJECT_SOURCE_DIR} -DDCDM_BINARY_DIR=${PROJECT_BINARY_DIR}
                 -DWORK_DIR=${DCDM_PACKAGE_TEST_DIR}/find_package -DMODE=find_package
                 -DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER} -P ${PROJECT_SOURCE_DIR}/tests/package/run.cmake)
add_test(NAME package_add_subdirectory
         COMMAND ${CMAKE_COMMAND} -DDCDM_SOURCE_DIR=${PROJECT_SOURCE_DIR} -DDCDM_BINARY_DIR=${PROJECT_BINARY_DIR}
                 -DWORK_DIR=${DCDM_PACKAGE_TEST_DIR}/add_subdirectory -DMODE=add_subdirectory
                 -DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER} -P ${PROJECT_SOURCE_DIR}/tests/package/run.cmake)
set_tests_properties(package_find_package package_add_subdirectory PROPERTIES TIMEOUT 1500 LABELS package)

# Hostile input against every subcommand of the built CLI (scripts/hostile-suite.py): truncated
# and lying files, NaN values, FIFOs, unwritable outputs, absurd options, damaged checkpoints;
# each must be exit 2 naming the culprit within 20 s and a 6 GiB address space. 16^3 grids,
# about 10 s on 2 cores.
find_program(DCDM_PYTHON3 NAMES python3)
if(DCDM_PYTHON3 AND TARGET dcdm_learn)
  add_test(NAME hostile_suite COMMAND ${DCDM_PYTHON3} ${PROJECT_SOURCE_DIR}/scripts/hostile-suite.py
                                      --dcdm $<TARGET_FILE:dcdm> --jobs 2)
  set_tests_properties(hostile_suite PROPERTIES TIMEOUT 300 LABELS hostile)
endif()
