#!/bin/sh
# Builds native/fdtake (pidfd_getfd(2) for the daemon, src/node/fdtake.ts, and the output pump,
# src/node/pump.ts) with node-gyp, into
# native/fdtake/build/Release/fdtake.node. Part of the package's `postinstall`, after
# scripts/patch-fuse-native.sh, so `npm install`, `npm ci` and `npm install -g` of the packed
# tarball all run it; scripts/setup.sh runs it too. Nothing depends on it to work: when it
# fails (no compiler, a kernel or libc without the calls), the daemon does without the add-on
# and the CLI writes into a socket or a file itself (docs/cli.md, `stdout`). Does nothing when
# the built module is newer than its sources and loads.
set -e
cd "$(dirname "$0")/.."
root=$(pwd)
dir=$root/native/fdtake
out=$dir/build/Release/fdtake.node

loads() {
  node -e "const m = { exports: {} }; process.dlopen(m, '$out'); process.exit(typeof m.exports.takeFd === 'function' ? 0 : 1)" 2>/dev/null
}

if [ -f "$out" ] && [ "$out" -nt "$dir/fdtake.c" ] && [ "$out" -nt "$dir/pump.c" ] && [ "$out" -nt "$dir/binding.gyp" ] && loads; then exit 0; fi

. "$root/scripts/node-gyp.sh"
gyp_rebuild "$dir"
if ! loads; then
  echo "build-native: $out does not load" >&2
  exit 1
fi
echo "build-native: built native/fdtake (pidfd_getfd, output pump)" >&2
