# Install the library, headers, tools and a CMake package so that another project can do
#   find_package(reid REQUIRED)
#   target_link_libraries(my_experiment PRIVATE reid::reid)
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(REID_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/reid)

set(reid_installed_targets reid reid_core)
if(TARGET reid_cuda)
  list(APPEND reid_installed_targets reid_cuda)
endif()
install(TARGETS ${reid_installed_targets} EXPORT reidTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/reid DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.h")
install(FILES ${PROJECT_BINARY_DIR}/include/reid/core/version.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/reid/core)
install(EXPORT reidTargets NAMESPACE reid:: DESTINATION ${REID_CMAKE_DIR})

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/reidConfig.cmake.in
  ${PROJECT_BINARY_DIR}/reidConfig.cmake INSTALL_DESTINATION ${REID_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/reidConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/reidConfig.cmake ${PROJECT_BINARY_DIR}/reidConfigVersion.cmake
  DESTINATION ${REID_CMAKE_DIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/configs DESTINATION ${CMAKE_INSTALL_DATADIR}/reid)
