# Package tests, run by ctest as `cmake -P`: MODE=find_package installs the build tree
# (DCDM_BINARY_DIR) into a temporary prefix and builds tests/package/consumer against it with
# find_package(dcdm) and with pkg-config; MODE=add_subdirectory builds tests/package/subdir.
# Each consumer is C++17 and runs a small solve with the shipped relaxnet model.
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)

# The consumer's executable must not need LibTorch.
function(check_no_torch exe)
  execute_process(COMMAND readelf -d ${exe} OUTPUT_VARIABLE dynamic)
  if(dynamic MATCHES "torch|c10")
    message(FATAL_ERROR "${exe} links LibTorch:\n${dynamic}")
  endif()
endfunction()

if(MODE STREQUAL "find_package")
  set(prefix ${WORK_DIR}/prefix)
  run(${CMAKE_COMMAND} --install ${DCDM_BINARY_DIR} --prefix ${prefix})
  foreach(f include/dcdm/span.hpp include/dcdm/version.hpp lib/cmake/dcdm/dcdmConfig.cmake
            lib/cmake/dcdm/dcdmConfigVersion.cmake lib/pkgconfig/dcdm.pc share/dcdm/models/relaxnet.dcdm bin/dcdm)
    if(NOT EXISTS ${prefix}/${f})
      message(FATAL_ERROR "the installation lacks ${f}")
    endif()
  endforeach()
  # The installed tool finds its models and says its version without the build tree.
  run(${prefix}/bin/dcdm --version)
  if(NOT last_output MATCHES "dcdm [0-9]+\\.[0-9]+\\.[0-9]+")
    message(FATAL_ERROR "dcdm --version: ${last_output}")
  endif()
  run(${prefix}/bin/dcdm model info relaxnet)
  if(NOT last_output MATCHES "share/dcdm/models/relaxnet.dcdm")
    message(FATAL_ERROR "the installed tool did not find its installed model: ${last_output}")
  endif()
  # A version the package does not satisfy is refused.
  execute_process(COMMAND ${CMAKE_COMMAND} -S ${DCDM_SOURCE_DIR}/tests/package/consumer -B ${WORK_DIR}/too-new
                          -DCMAKE_PREFIX_PATH=${prefix} -DDCDM_REQUIRED_VERSION=99
                  RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
  if(rc EQUAL 0)
    message(FATAL_ERROR "find_package(dcdm 99) was satisfied by the installed version")
  endif()
  run(${CMAKE_COMMAND} -S ${DCDM_SOURCE_DIR}/tests/package/consumer -B ${WORK_DIR}/consumer
      -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER} -DCMAKE_BUILD_TYPE=Release)
  run(${CMAKE_COMMAND} --build ${WORK_DIR}/consumer)
  check_no_torch(${WORK_DIR}/consumer/consumer)
  run(${CMAKE_COMMAND} -E env DCDM_MODEL_PATH=${prefix}/share/dcdm/models ${WORK_DIR}/consumer/consumer)
  message(STATUS "find_package consumer: ${last_output}")
  # pkg-config
  run(${CMAKE_COMMAND} -E env PKG_CONFIG_PATH=${prefix}/lib/pkgconfig pkg-config --cflags --libs dcdm)
  string(STRIP "${last_output}" pc_flags)
  separate_arguments(pc_flags UNIX_COMMAND "${pc_flags}")
  run(${CMAKE_CXX_COMPILER} -std=c++17 -O1 ${DCDM_SOURCE_DIR}/tests/package/consumer/main.cpp ${pc_flags}
      -o ${WORK_DIR}/pc-consumer)
  check_no_torch(${WORK_DIR}/pc-consumer)
  run(${CMAKE_COMMAND} -E env DCDM_MODEL_PATH=${prefix}/share/dcdm/models ${WORK_DIR}/pc-consumer)
  message(STATUS "pkg-config consumer: ${last_output}")
elseif(MODE STREQUAL "add_subdirectory")
  # Shared libraries here (the find_package test covers static ones): the soname carries the
  # version.
  run(${CMAKE_COMMAND} -S ${DCDM_SOURCE_DIR}/tests/package/subdir -B ${WORK_DIR}/build
      -DDCDM_SOURCE_DIR=${DCDM_SOURCE_DIR} -DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER} -DCMAKE_BUILD_TYPE=Release
      -DBUILD_SHARED_LIBS=ON)
  run(${CMAKE_COMMAND} --build ${WORK_DIR}/build --target consumer -j 2)
  check_no_torch(${WORK_DIR}/build/consumer)
  execute_process(COMMAND readelf -d ${WORK_DIR}/build/consumer OUTPUT_VARIABLE dynamic)
  if(NOT dynamic MATCHES "libdcdm_core\\.so\\.[0-9]+\\.[0-9]+")
    message(FATAL_ERROR "the consumer does not link libdcdm_core.so.MAJOR.MINOR:\n${dynamic}")
  endif()
  run(${CMAKE_COMMAND} -E env DCDM_MODEL_PATH=${DCDM_SOURCE_DIR}/models ${WORK_DIR}/build/consumer)
  message(STATUS "add_subdirectory consumer: ${last_output}")
else()
  message(FATAL_ERROR "MODE must be find_package or add_subdirectory")
endif()
