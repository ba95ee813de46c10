# CMake toolchain for cross-building vaefast for AArch64 Linux with Debian's
# cross compiler (gcc-aarch64-linux-gnu). Used by .ci/aarch64; the Python
# headers and the module suffix of the target are passed on the command line
# (-DPython_INCLUDE_DIR, -DPython_SOABI), the host Python runs Cython.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)

# Libraries and headers (libgomp, libc) come from the cross toolchain only.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
