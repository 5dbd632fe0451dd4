#!/bin/sh
# Applies patches/fuse-native-caller.patch to node_modules/fuse-native and rebuilds it from
# source. The patch records, for every FUSE request, the caller's pid/uid/gid and exposes them
# to JavaScript (binding.fuse_native_caller); src/fs uses them to notice callers that were
# interrupted while blocked (docs/fs.md, "Interrupts"). Idempotent: does nothing when the
# built module already has the function.
set -e
cd "$(dirname "$0")/.."
root=$(pwd)
mod=node_modules/fuse-native
patchfile=$root/patches/fuse-native-caller.patch

if [ ! -f "$mod/fuse-native.c" ]; then
  echo "patch-fuse-native: $mod is missing; run npm install first" >&2
  exit 1
fi

has_caller() {
  node -e "process.exit(typeof require('node-gyp-build')('$root/$mod').fuse_native_caller === 'function' ? 0 : 1)" 2>/dev/null
}

if has_caller; then exit 0; fi

if grep -q fuse_native_caller "$mod/fuse-native.c"; then
  echo "patch-fuse-native: source already patched, rebuilding" >&2
else
  echo "patch-fuse-native: patching $mod/fuse-native.c" >&2
  (cd "$mod" && patch -p1 --forward --silent < "$patchfile")
fi

# node-gyp: npm's bundled copy works offline against Node's local headers (npm's nodedir).
gyp=""
npm_root=$(npm prefix -g 2>/dev/null || true)
if [ -n "$npm_root" ] && [ -f "$npm_root/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js" ]; then
  gyp="node $npm_root/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js"
elif command -v node-gyp >/dev/null 2>&1; then
  gyp=node-gyp
else
  gyp="npx --no-install node-gyp"
fi
nodedir=$(npm config get nodedir 2>/dev/null || true)
if [ -n "$nodedir" ] && [ "$nodedir" != "undefined" ] && [ "$nodedir" != "null" ]; then
  set -- --nodedir="$nodedir"
else
  set --
fi
(cd "$mod" && $gyp rebuild --loglevel=error "$@" >/dev/null)

if has_caller; then
  echo "patch-fuse-native: built with caller info" >&2
else
  echo "patch-fuse-native: rebuilt module lacks fuse_native_caller" >&2
  exit 1
fi
