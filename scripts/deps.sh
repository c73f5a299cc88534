#!/usr/bin/env bash
# Installs the Debian packages the build needs (apt-get when root; otherwise prints the command).
# Sourced by run-examples and run-tests.
mp_packages=(cmake ninja-build pkg-config g++ clang libclang-rt-14-dev python3
             libboost1.81-dev libsodium-dev libcereal-dev googletest libgtest-dev libbenchmark-dev)

# The Windows stage: the MinGW-w64 cross compiler, Wine to run what it builds, and what building
# libsodium from Debian's source needs (scripts/mingw-deps.sh).
mp_windows_packages=(g++-mingw-w64-x86-64-posix wine64 autoconf automake libtool curl)

# mp_ensure_packages [PACKAGE...]: the given packages, or the build's own.
mp_ensure_packages() {
  local missing=() wanted=("$@")
  [ ${#wanted[@]} -eq 0 ] && wanted=("${mp_packages[@]}")
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ]; then
    echo "mp: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "mp: missing Debian packages. Run:"
    echo "  sudo apt-get install -y ${missing[*]}"
    exit 1
  fi
}
