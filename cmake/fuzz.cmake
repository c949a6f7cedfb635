# libFuzzer targets, one per parser (fuzz/fuzz_*.cpp). They need clang; configure a separate
# build with CXX=clang++ -DDCDM_FUZZ=ON (make fuzz does that; scripts/run-fuzzers.sh runs them).
#
# In a fuzz build every project target (dcdm_core included) is instrumented with
# -fsanitize=fuzzer-no-link,address,undefined, and CMakeLists.txt skips LibTorch, the tests,
# the benchmarks, the examples and the dcdm executable. The fuzzers link `dcdm_fuzz_parsers`, just the
# parser sources and what they use, so that `make fuzz` compiles a handful of files rather
# than the whole core under sanitizers.
if(DCDM_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "DCDM_FUZZ needs clang++ (CXX=clang++)")
  endif()
  set(DCDM_FUZZ_SANITIZERS -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  target_compile_options(dcdm_flags INTERFACE -fsanitize=fuzzer-no-link ${DCDM_FUZZ_SANITIZERS})
  target_link_options(dcdm_flags INTERFACE -fsanitize=address,undefined)

  add_library(dcdm_fuzz_parsers STATIC
    src/io/csr_build.cpp src/io/dispatch.cpp src/io/file.cpp src/io/matrix_market.cpp
    src/io/npy.cpp src/io/reference.cpp
    src/linalg/csr.cpp src/linalg/vector_ops.cpp src/grid/grid.cpp)
  target_link_libraries(dcdm_fuzz_parsers PUBLIC dcdm_flags OpenMP::OpenMP_CXX Eigen3::Eigen
    nlohmann_json::nlohmann_json fmt::fmt ${STB_LIBRARY})
  target_include_directories(dcdm_fuzz_parsers PUBLIC ${PROJECT_SOURCE_DIR}/include ${PROJECT_BINARY_DIR}/include)
  target_include_directories(dcdm_fuzz_parsers SYSTEM PUBLIC ${STB_INCLUDE_DIR})
  target_compile_options(dcdm_fuzz_parsers PRIVATE -Wno-pass-failed)  # omp simd under ASan

  add_custom_target(fuzz_all)
  file(GLOB DCDM_FUZZ_SOURCES CONFIGURE_DEPENDS fuzz/fuzz_*.cpp)
  foreach(src ${DCDM_FUZZ_SOURCES})
    get_filename_component(name ${src} NAME_WE)
    add_executable(${name} ${src})
    target_compile_options(${name} PRIVATE -fsanitize=fuzzer ${DCDM_FUZZ_SANITIZERS})
    target_link_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_libraries(${name} PRIVATE dcdm_fuzz_parsers)
    add_dependencies(fuzz_all ${name})
  endforeach()
endif()
