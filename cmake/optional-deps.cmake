# Peers and optional formats. hypre and OpenVDB are installed by scripts/setup-deps.sh;
# they are found here so that a build without them still works (the feature reports itself
# as unavailable at run time).
find_library(HYPRE_LIBRARY NAMES HYPRE)
find_path(HYPRE_INCLUDE_DIR NAMES HYPRE.h PATH_SUFFIXES hypre)
find_package(MPI COMPONENTS C)
if(HYPRE_LIBRARY AND HYPRE_INCLUDE_DIR AND MPI_C_FOUND)
  target_include_directories(dcdm_core SYSTEM PUBLIC ${HYPRE_INCLUDE_DIR})
  target_link_libraries(dcdm_core PUBLIC ${HYPRE_LIBRARY} MPI::MPI_C)
  target_compile_definitions(dcdm_core PUBLIC DCDM_HAVE_HYPRE=1)
  message(STATUS "hypre: ${HYPRE_LIBRARY}")
endif()

list(APPEND CMAKE_MODULE_PATH /usr/lib/x86_64-linux-gnu/cmake/OpenVDB)
find_package(OpenVDB QUIET)
if(OpenVDB_FOUND)
  target_link_libraries(dcdm_core PUBLIC OpenVDB::openvdb)
  target_compile_definitions(dcdm_core PUBLIC DCDM_HAVE_OPENVDB=1)
  message(STATUS "OpenVDB: found")
endif()

find_package(assimp QUIET)
if(assimp_FOUND)
  target_link_libraries(dcdm_core PUBLIC assimp::assimp)
  target_compile_definitions(dcdm_core PUBLIC DCDM_HAVE_ASSIMP=1)
  message(STATUS "assimp: found")
endif()
