# Cross-compile for 64-bit Windows with mingw-w64 (Debian/Ubuntu: gcc-mingw-w64-x86-64).
#
#   cmake -S . -B build-win64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/mingw-w64-x86_64.cmake
#
# Another mingw-w64 installation: -DMINGW_TRIPLET=... (the prefix of its tools) and, if its
# sysroot is not /usr/<triplet>, -DCMAKE_FIND_ROOT_PATH=<sysroot>. Programs built here run on
# Linux under wine: -DCMAKE_CROSSCOMPILING_EMULATOR=wine (try_run, ctest).
# Nothing here links statically; a self-contained release build adds
# -DCMAKE_SHARED_LINKER_FLAGS=-static -DCMAKE_EXE_LINKER_FLAGS=-static (packaging/bnpack/windows_zip.py).
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

if(NOT MINGW_TRIPLET)
  set(MINGW_TRIPLET x86_64-w64-mingw32)
endif()

find_program(CMAKE_C_COMPILER NAMES ${MINGW_TRIPLET}-gcc REQUIRED)
find_program(CMAKE_CXX_COMPILER NAMES ${MINGW_TRIPLET}-g++)
find_program(CMAKE_RC_COMPILER NAMES ${MINGW_TRIPLET}-windres)

# Headers, libraries and packages of the target come from the mingw-w64 sysroot only; programs
# (code generators, pkg-config) from the build host.
if(NOT CMAKE_FIND_ROOT_PATH)
  set(CMAKE_FIND_ROOT_PATH /usr/${MINGW_TRIPLET})
endif()
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
