# Included by CMake right after llama.cpp's project() call
# (-DCMAKE_PROJECT_llama.cpp_INCLUDE=<this file>, see crossval/install_llama_cpp.py).
#
# llama-cpp-python's CMakeLists forces LLAMA_BUILD_COMMON=ON (a CACHE FORCE, so -D cannot
# turn it off), which compiles and installs llama.cpp's `common` library (argument
# parsing, chat templates, JSON, cpp-httplib: ~30 heavy C++ files) that the
# Python bindings never load. Forcing it off here, before llama.cpp's option() reads it,
# leaves libllama + ggml: everything llama_cpp.Llama uses.
set(LLAMA_BUILD_COMMON OFF CACHE BOOL "crossval: the Python bindings do not use llama-common" FORCE)
