# Compile settings for the library sources. Mirrors
# bindings_py/bitnet/_ffi_build.py: C11, BITNET_BUILD, the same include
# directories, -lm and threads. Never -march=native: SIMD kernels select
# themselves at run time through function-level target attributes.

# How the library's own sources are compiled (an OBJECT library, or each
# library target directly on Windows where dllexport differs).
function(bitnet_compile_settings target)
  target_include_directories(${target} PRIVATE
    ${PROJECT_SOURCE_DIR}/bindings_c/include
    ${PROJECT_SOURCE_DIR}/core_c
    ${PROJECT_SOURCE_DIR}/bindings_c/src)
  target_compile_definitions(${target} PRIVATE BITNET_BUILD)
  if(UNIX AND NOT APPLE)
    # mmap, clock_gettime, pthreads under -std=c11 (not gnu11).
    target_compile_definitions(${target} PRIVATE _POSIX_C_SOURCE=200809L)
  endif()
  set_target_properties(${target} PROPERTIES
    C_STANDARD 11
    C_STANDARD_REQUIRED ON
    C_EXTENSIONS OFF
    C_VISIBILITY_PRESET hidden
    POSITION_INDEPENDENT_CODE ON)
  if(MSVC)
    target_compile_options(${target} PRIVATE /W3)
    if(BITNET_WERROR)
      target_compile_options(${target} PRIVATE /WX)
    endif()
  else()
    # The kernels spell out every fused multiply-add they want; no compiler
    # may fuse on its own (clang's default would), or variants stop agreeing.
    target_compile_options(${target} PRIVATE -Wall -Wextra -ffp-contract=off)
    if(BITNET_WERROR)
      target_compile_options(${target} PRIVATE -Werror)
    endif()
  endif()
endfunction()

# What a library target gives its users: the public include directory, and
# (for the static library, through $<LINK_ONLY:...>) pthreads and libm.
function(bitnet_usage_requirements target)
  target_include_directories(${target} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/bindings_c/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_link_libraries(${target} PRIVATE Threads::Threads)
  if(UNIX)
    target_link_libraries(${target} PRIVATE m)
  endif()
endfunction()
