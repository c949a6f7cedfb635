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

# AMGCL: an optional peer, header-only and not packaged by Debian, so never required. A user
# points the build at it (DCDM_AMGCL_DIR = the folder holding amgcl/amg.hpp, `make AMGCL=...`)
# or installs it where CMake finds its package config. It also needs Boost's headers.
set(DCDM_AMGCL_DIR "" CACHE PATH "Folder holding amgcl/amg.hpp (optional AMGCL peer)")
find_package(amgcl CONFIG QUIET)
if(DCDM_AMGCL_DIR OR amgcl_FOUND)
  # NO_CACHE: a changed DCDM_AMGCL_DIR is searched again.
  find_path(AMGCL_INCLUDE_DIR NAMES amgcl/amg.hpp HINTS ${DCDM_AMGCL_DIR} NO_DEFAULT_PATH NO_CACHE)
  if(NOT AMGCL_INCLUDE_DIR AND amgcl_FOUND)
    get_target_property(AMGCL_INCLUDE_DIR amgcl::amgcl INTERFACE_INCLUDE_DIRECTORIES)
  endif()
  find_path(DCDM_BOOST_INCLUDE_DIR NAMES boost/property_tree/ptree.hpp)
  if(AMGCL_INCLUDE_DIR AND DCDM_BOOST_INCLUDE_DIR)
    # Only the peer's translation unit sees AMGCL (its templates are slow to compile).
    set(amgcl_dirs ${AMGCL_INCLUDE_DIR})
    if(NOT DCDM_BOOST_INCLUDE_DIR IN_LIST CMAKE_CXX_IMPLICIT_INCLUDE_DIRECTORIES)
      list(APPEND amgcl_dirs ${DCDM_BOOST_INCLUDE_DIR})  # -I/usr/include would break libstdc++'s #include_next
    endif()
    set_property(SOURCE ${PROJECT_SOURCE_DIR}/src/krylov/amgcl_solver.cpp APPEND PROPERTY
                 INCLUDE_DIRECTORIES ${amgcl_dirs})
    set_property(SOURCE ${PROJECT_SOURCE_DIR}/src/krylov/amgcl_solver.cpp APPEND PROPERTY
                 COMPILE_DEFINITIONS DCDM_HAVE_AMGCL=1 DCDM_AMGCL_INCLUDE_DIR="${AMGCL_INCLUDE_DIR}")
    # AMGCL's headers trip -Wpedantic/-Wextra warnings that are not ours.
    set_property(SOURCE ${PROJECT_SOURCE_DIR}/src/krylov/amgcl_solver.cpp APPEND PROPERTY
                 COMPILE_OPTIONS -Wno-pedantic -Wno-sign-compare -Wno-unused-local-typedefs)
    message(STATUS "AMGCL: ${AMGCL_INCLUDE_DIR}")
  else()
    message(WARNING "AMGCL requested (DCDM_AMGCL_DIR='${DCDM_AMGCL_DIR}') but amgcl/amg.hpp or Boost headers not found: the amgcl peer stays unavailable")
  endif()
endif()
