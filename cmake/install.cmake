# Install rules: headers, libraries with exported targets (dcdm::core, dcdm::learn), the CMake
# package (dcdmConfig.cmake + version file), a pkg-config file, the tool, its LibTorch module
# and the shipped models.
set(DCDM_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/dcdm)
install(DIRECTORY include/dcdm DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev)
install(FILES ${PROJECT_BINARY_DIR}/include/dcdm/version.hpp DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/dcdm COMPONENT dev)

set(DCDM_INSTALLED_TARGETS dcdm_core dcdm_vdb)
if(TARGET dcdm_learn)
  list(APPEND DCDM_INSTALLED_TARGETS dcdm_learn)
endif()
install(TARGETS ${DCDM_INSTALLED_TARGETS} EXPORT dcdmTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime NAMELINK_COMPONENT dev
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT dcdmTargets NAMESPACE dcdm:: DESTINATION ${DCDM_CMAKE_DIR} COMPONENT dev)

set(DCDM_CONFIG_HAS_LEARN OFF)
if(TARGET dcdm_learn)
  set(DCDM_CONFIG_HAS_LEARN ON)
endif()
set(DCDM_CONFIG_SHARED ${BUILD_SHARED_LIBS})
configure_package_config_file(cmake/dcdmConfig.cmake.in ${PROJECT_BINARY_DIR}/dcdmConfig.cmake
                              INSTALL_DESTINATION ${DCDM_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/dcdmConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)  # 0.x: minor versions may break
install(FILES ${PROJECT_BINARY_DIR}/dcdmConfig.cmake ${PROJECT_BINARY_DIR}/dcdmConfigVersion.cmake
        DESTINATION ${DCDM_CMAKE_DIR} COMPONENT dev)

# pkg-config: the core library. A static core lists its private dependencies' libraries.
set(DCDM_PC_PRIVATE_LIBS "-lfmt -lspdlog -lstb ${OpenMP_CXX_FLAGS}")
if(HYPRE_LIBRARY AND MPI_C_FOUND)
  string(APPEND DCDM_PC_PRIVATE_LIBS " ${HYPRE_LIBRARY} -lmpi")
endif()
if(assimp_FOUND)
  string(APPEND DCDM_PC_PRIVATE_LIBS " -lassimp")
endif()
# A static library is useless without them, so they go into Libs (Libs.private otherwise).
set(DCDM_PC_LIBS "")
if(NOT BUILD_SHARED_LIBS)
  set(DCDM_PC_LIBS "${DCDM_PC_PRIVATE_LIBS}")
  set(DCDM_PC_PRIVATE_LIBS "")
endif()
file(RELATIVE_PATH DCDM_PC_PREFIX_FROM_PCDIR ${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
configure_file(cmake/dcdm.pc.in ${PROJECT_BINARY_DIR}/dcdm.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/dcdm.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)

if(TARGET dcdm)
  install(TARGETS dcdm RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)
  foreach(module dcdm_torch dcdm_vdb_module)
    if(TARGET ${module})
      install(TARGETS ${module} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/dcdm COMPONENT runtime)
    endif()
  endforeach()
endif()
install(FILES models/relaxnet.dcdm models/flagnet.dcdm models/paper64.dcdm
              models/README.md models/README-relaxnet.md models/README-flagnet.md
        DESTINATION ${CMAKE_INSTALL_DATADIR}/dcdm/models COMPONENT runtime)
install(FILES LICENSE README.md CHANGELOG.md CITATION.cff DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT runtime)
install(FILES data/meshes/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR} RENAME README-meshes.md COMPONENT runtime)
