#!/usr/bin/env bash
# Prepares what the MinGW-w64 cross build links against, in one prefix (default build/mingw-deps):
#   include/boost, include/cereal  - the host's header-only Boost and cereal (Debian packages)
#   include/sodium*, lib/libsodium.a - libsodium built for x86_64-w64-mingw32 from Debian's source
# Debian has no MinGW libsodium package: the source is Debian's own (its pool, checked against the
# .dsc's SHA-256) and the build takes about a minute, once; later runs find it done.
set -euo pipefail
prefix=$(realpath -m "${1:-build/mingw-deps}")
version=1.0.18
sha256=d59323c6b712a1519a5daf710b68f5e7fde57040845ffec53850911f10a5d4f4
mkdir -p "$prefix/include" "$prefix/lib" "$prefix/src"
ln -sfn /usr/include/boost "$prefix/include/boost"
ln -sfn /usr/include/cereal "$prefix/include/cereal"
if [ -f "$prefix/lib/libsodium.a" ]; then exit 0; fi
cd "$prefix/src"
tarball=libsodium_$version.orig.tar.gz
[ -f "$tarball" ] || curl -fsS -o "$tarball" "http://deb.debian.org/debian/pool/main/libs/libsodium/$tarball"
echo "$sha256  $tarball" | sha256sum -c --quiet
rm -rf "libsodium-$version" && tar xzf "$tarball"
cd "libsodium-$version"
echo "mingw-deps: building libsodium $version for x86_64-w64-mingw32"
./autogen.sh -s >/dev/null 2>&1
./configure --host=x86_64-w64-mingw32 --prefix="$prefix" --disable-shared --enable-static \
  CC=x86_64-w64-mingw32-gcc-posix >/dev/null
make -j"$(nproc)" >/dev/null 2>&1
make install >/dev/null
