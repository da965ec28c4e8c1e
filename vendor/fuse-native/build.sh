#!/usr/bin/env bash
# Builds build/Release/fuse.node (where index.js's node-gyp-build looks) from fuse-native.c
# with gcc against Node's headers (/usr/include/node, Debian's nodejs) and the libfuse 2
# headers that the fuse-shared-library npm package ships; it loads the system's
# libfuse.so.2 (Debian's libfuse2). Rebuilds only when the source is newer. Offline.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$here/build/Release/fuse.node
[ -f "$out" ] && [ "$out" -nt "$here/fuse-native.c" ] && exit 0
modules=$(cd "$here/../.." && pwd)/node_modules
fuse=$modules/fuse-shared-library-linux/libfuse
mkdir -p "$(dirname "$out")"
gcc -shared -fPIC -O2 -g -Wall -Werror -D_FILE_OFFSET_BITS=64 -DNAPI_VERSION=3 \
  -I/usr/include/node -I"$modules/napi-macros" -I"$fuse/include" \
  -o "$out.tmp" "$here/fuse-native.c" -L"$fuse/lib" -l:libfuse.so -lpthread
mv "$out.tmp" "$out"
echo "fuse-native: built $out" >&2
