# Cross-building mp for Windows (x86_64) on Debian with MinGW-w64 (package g++-mingw-w64-x86-64-posix:
# the posix thread model, which std::thread and std::mutex need); tests run under Wine.
#   scripts/mingw-deps.sh build/mingw-deps     # libsodium for the target; Boost and cereal headers
#   cmake -B build/mingw -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-mingw-w64.cmake \
#         -DMP_MINGW_DEPS=$PWD/build/mingw-deps
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(MP_MINGW_TRIPLE x86_64-w64-mingw32)
set(CMAKE_C_COMPILER ${MP_MINGW_TRIPLE}-gcc-posix)
set(CMAKE_CXX_COMPILER ${MP_MINGW_TRIPLE}-g++-posix)
set(CMAKE_RC_COMPILER ${MP_MINGW_TRIPLE}-windres)
set(CMAKE_FIND_ROOT_PATH /usr/${MP_MINGW_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# Programs link the C++ runtime and winpthreads statically: Wine then needs no MinGW DLLs.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")
# CTest and gtest_discover_tests run the test programs through Wine.
find_program(MP_WINE NAMES wine64 wine PATHS /usr/lib/wine NO_CMAKE_FIND_ROOT_PATH)
if(MP_WINE)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${MP_WINE})
endif()
