# The dcdm command-line tool. It links the core only: the commands and methods that need
# LibTorch (the reference network, training) or OpenVDB (--vdb) reach them through the modules
# dcdm_torch.so and dcdm_vdb.so, which the tool loads with dlopen on first use
# (apps/dcdm/modules.hpp), so that every other command starts in milliseconds instead of
# loading LibTorch's few hundred shared libraries (0.6 s) or OpenVDB (40 ms).
file(GLOB DCDM_APP_SOURCES CONFIGURE_DEPENDS apps/dcdm/*.cpp)
add_executable(dcdm ${DCDM_APP_SOURCES})
target_link_libraries(dcdm PRIVATE dcdm_core $<BUILD_INTERFACE:dcdm_flags> CLI11::CLI11 OpenMP::OpenMP_CXX
  fmt::fmt spdlog::spdlog ${CMAKE_DL_LIBS})
target_compile_definitions(dcdm PRIVATE DCDM_MODULE_DIR_FROM_BIN="${DCDM_LIBEXEC_FROM_BIN}")
if(DCDM_INSTALL)
  # The installed tool finds the shared libraries it was linked with (BUILD_SHARED_LIBS).
  set_target_properties(dcdm PROPERTIES INSTALL_RPATH "$ORIGIN/${DCDM_LIB_FROM_BIN}")
endif()

# The OpenVDB module (apps/dcdm/vdb_backend.hpp).
add_library(dcdm_vdb_module MODULE apps/dcdm/vdb/module.cpp)
set_target_properties(dcdm_vdb_module PROPERTIES OUTPUT_NAME dcdm_vdb PREFIX "" LIBRARY_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}
                      CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
target_include_directories(dcdm_vdb_module PRIVATE ${PROJECT_SOURCE_DIR}/apps/dcdm)
target_link_libraries(dcdm_vdb_module PRIVATE dcdm_vdb dcdm_core $<BUILD_INTERFACE:dcdm_flags>)
add_dependencies(dcdm dcdm_vdb_module)

if(DCDM_BUILD_LEARN)
  file(GLOB DCDM_TORCH_MODULE_SOURCES CONFIGURE_DEPENDS apps/dcdm/torch/*.cpp)
  add_library(dcdm_torch MODULE ${DCDM_TORCH_MODULE_SOURCES})
  # Next to the tool in the build tree, where the tool looks first.
  set_target_properties(dcdm_torch PROPERTIES PREFIX "" LIBRARY_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}
                        CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
  target_include_directories(dcdm_torch PRIVATE ${PROJECT_SOURCE_DIR}/apps/dcdm)
  target_link_libraries(dcdm_torch PRIVATE dcdm_learn dcdm_core $<BUILD_INTERFACE:dcdm_flags> fmt::fmt)
  add_dependencies(dcdm dcdm_torch)
endif()

# Model files next to the tool in the build tree (build/models/), as the installed tool finds
# them in <prefix>/share/dcdm/models.
file(GLOB DCDM_SHIPPED_MODELS ${PROJECT_SOURCE_DIR}/models/*.dcdm)
foreach(model ${DCDM_SHIPPED_MODELS})
  get_filename_component(model_name ${model} NAME)
  configure_file(${model} ${PROJECT_BINARY_DIR}/models/${model_name} COPYONLY)
endforeach()
