# Peers and optional formats, all private to dcdm_core (no public header includes them;
# DCDM_PACKAGE_DEPENDENCIES lists what a static dcdm_core's consumers must find to link). hypre and OpenVDB are installed by scripts/setup-deps.sh;
# they are found here so that a build without them still works (the feature reports itself
# as unavailable at run time).
find_library(HYPRE_LIBRARY NAMES HYPRE)
find_path(HYPRE_INCLUDE_DIR NAMES HYPRE.h PATH_SUFFIXES hypre)
find_package(MPI COMPONENTS C)
if(HYPRE_LIBRARY AND HYPRE_INCLUDE_DIR AND MPI_C_FOUND)
  # By path rather than MPI::MPI_C: a static dcdm_core's consumers then need not find MPI (for
  # its C component, which a C++-only project cannot even ask for).
  target_include_directories(dcdm_core SYSTEM PRIVATE ${HYPRE_INCLUDE_DIR} ${MPI_C_INCLUDE_DIRS})
  target_link_libraries(dcdm_core PRIVATE ${HYPRE_LIBRARY} ${MPI_C_LIBRARIES})
  target_compile_definitions(dcdm_core PRIVATE DCDM_HAVE_HYPRE=1)
  message(STATUS "hypre: ${HYPRE_LIBRARY}")
endif()

list(APPEND CMAKE_MODULE_PATH /usr/lib/x86_64-linux-gnu/cmake/OpenVDB)
set(dcdm_build_shared_libs ${BUILD_SHARED_LIBS})
find_package(OpenVDB QUIET)
set(BUILD_SHARED_LIBS ${dcdm_build_shared_libs})  # FindOpenVDB sets it ON
# OpenVDB export lives in its own library, dcdm_vdb (dcdm::vdb): OpenVDB takes about 40 ms to
# load, which every program linking dcdm_core would pay at start-up. Without OpenVDB the library
# still builds and reports itself unavailable (io::vdb_available()).
if(NOT DCDM_FUZZ)
  add_library(dcdm_vdb src/io/vdb.cpp)
  dcdm_library_properties(dcdm_vdb vdb)
  target_link_libraries(dcdm_vdb PUBLIC dcdm_core PRIVATE $<BUILD_INTERFACE:dcdm_flags> fmt::fmt)
  if(OpenVDB_FOUND)
    target_link_libraries(dcdm_vdb PRIVATE OpenVDB::openvdb)
    target_compile_definitions(dcdm_vdb PRIVATE DCDM_HAVE_OPENVDB=1)
    set(DCDM_VDB_PACKAGE_DEPENDENCY "OpenVDB")
    message(STATUS "OpenVDB: found")
  endif()
endif()

find_package(assimp QUIET)
if(assimp_FOUND)
  target_link_libraries(dcdm_core PRIVATE assimp::assimp)
  target_compile_definitions(dcdm_core PRIVATE DCDM_HAVE_ASSIMP=1)
  list(APPEND DCDM_PACKAGE_DEPENDENCIES "assimp")
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
