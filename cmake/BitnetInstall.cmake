# Install rules: libraries, bitnet.h, bitnet.pc and the CMake package
# (bitnetConfig.cmake, bitnetConfigVersion.cmake, bitnetTargets.cmake under
# ${CMAKE_INSTALL_LIBDIR}/cmake/bitnet, exporting bitnet::bitnet and
# bitnet::bitnet_static).

install(TARGETS ${_bitnet_targets}
  EXPORT bitnetTargets
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES "${BITNET_PUBLIC_HEADER}" DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

set(BITNET_CMAKE_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/bitnet")
install(EXPORT bitnetTargets
  NAMESPACE bitnet::
  FILE bitnetTargets.cmake
  DESTINATION ${BITNET_CMAKE_DIR})

configure_package_config_file(
  "${CMAKE_CURRENT_LIST_DIR}/bitnetConfig.cmake.in"
  "${CMAKE_CURRENT_BINARY_DIR}/bitnetConfig.cmake"
  INSTALL_DESTINATION ${BITNET_CMAKE_DIR})
# 0.x: minor versions may break the API, so only the same MAJOR.MINOR is
# compatible until 1.0; from 1.0 on, the same MAJOR.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(_bitnet_compat SameMinorVersion)
else()
  set(_bitnet_compat SameMajorVersion)
endif()
write_basic_package_version_file(
  "${CMAKE_CURRENT_BINARY_DIR}/bitnetConfigVersion.cmake"
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY ${_bitnet_compat})
install(FILES
  "${CMAKE_CURRENT_BINARY_DIR}/bitnetConfig.cmake"
  "${CMAKE_CURRENT_BINARY_DIR}/bitnetConfigVersion.cmake"
  DESTINATION ${BITNET_CMAKE_DIR})

# bitnet.pc is written at install time so that `cmake --install --prefix P`
# gives a prefix of P. libdir/includedir are ${prefix}-relative when
# CMAKE_INSTALL_LIBDIR is relative (lib, lib64, lib/x86_64-linux-gnu) and
# taken as they are when absolute.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(BITNET_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
else()
  set(BITNET_PC_LIBDIR "\${exec_prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(BITNET_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(BITNET_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
# -pthread even where libc holds pthreads (glibc >= 2.34): harmless there,
# needed on older systems and other libcs.
if(WIN32 AND NOT MINGW)
  set(BITNET_PC_LIBS_PRIVATE "")
else()
  set(BITNET_PC_LIBS_PRIVATE "-lm -pthread")
endif()
# Two passes: everything but the prefix now, the prefix at install time.
set(BITNET_PC_PREFIX "@BITNET_PC_PREFIX@")
configure_file("${CMAKE_CURRENT_LIST_DIR}/bitnet.pc.in" "${CMAKE_CURRENT_BINARY_DIR}/bitnet.pc.in.1" @ONLY)
install(CODE "
  set(BITNET_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  configure_file(\"${CMAKE_CURRENT_BINARY_DIR}/bitnet.pc.in.1\" \"${CMAKE_CURRENT_BINARY_DIR}/bitnet.pc\" @ONLY)
")
install(FILES "${CMAKE_CURRENT_BINARY_DIR}/bitnet.pc" DESTINATION "${CMAKE_INSTALL_LIBDIR}/pkgconfig")

# bitnet-cli, its man page, and the default model it finds at
# <bindir>/../share/bitnet/ (see CMakeLists.txt).
if(BITNET_BUILD_CLI)
  install(TARGETS bitnet-cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  install(FILES "${PROJECT_SOURCE_DIR}/bindings_c/cli/bitnet-cli.1" DESTINATION "${CMAKE_INSTALL_MANDIR}/man1")
endif()
if(BITNET_INSTALL_DEFAULT_MODEL)
  set(_bitnet_default_model "${PROJECT_SOURCE_DIR}/bindings_py/bitnet/models/${BITNET_DEFAULT_MODEL_FILE}")
  if(EXISTS "${_bitnet_default_model}")
    install(FILES "${_bitnet_default_model}" DESTINATION "${CMAKE_INSTALL_DATADIR}/bitnet")
  else()
    message(WARNING "BITNET_INSTALL_DEFAULT_MODEL: ${_bitnet_default_model} is missing; not installed")
  endif()
endif()
