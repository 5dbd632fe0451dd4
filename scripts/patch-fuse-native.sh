#!/bin/sh
# Applies patches/fuse-native-*.patch to node_modules/fuse-native and rebuilds it from source.
# fuse-native-caller.patch records, for every FUSE request, the caller's pid/uid/gid and exposes
# them to JavaScript (binding.fuse_native_caller); src/fs uses them to notice callers that were
# interrupted while blocked (docs/fs.md, "Interrupts"). fuse-native-noflush.patch lets the mount
# share a table of open files with nothing to do at close (binding.fuse_native_noflush), whose
# flush the FUSE thread then answers itself (src/fs/handles.ts). fuse-native-cloexec.patch marks
# the mount's /dev/fuse descriptor close-on-exec, so the processes the daemon starts do not
# inherit it (binding.fuse_native_cloexec says the build has it). fuse-native-answers.patch lets
# the mount share a table of open files whose whole answer is known (a snapshot, a recv's
# message once taken) with the binding (binding.fuse_native_answers), whose reads the FUSE
# thread then answers from there (src/fs/handles.ts). fuse-native-callerat.patch says where in a
# request's handle the caller's pid/uid/gid are (binding.fuse_native_caller_at), so JavaScript
# reads them there instead of calling the binding for each request (src/fs/mount.ts).
# fuse-native-attrs.patch keeps the attributes of control files the mount hands it
# (binding.fuse_native_attrs_put) for as long as the kernel would cache them, and answers their
# getattr on the FUSE thread (src/fs/dispatch.ts). fuse-native-pooled.patch lets reads fill a
# buffer of JavaScript's own and small writes come as a copy (binding.fuse_native_pooled_io),
# instead of an external buffer per request whose release node posts to the event loop from the
# FUSE thread (src/fs/dispatch.ts). fuse-native-direct.patch lets the FUSE thread answer the reads
# of a process's output straight from the child's pipe, which the daemon lends it while nothing
# of the stream is buffered (binding.fuse_native_direct_lend/take, src/fs/ops/direct.ts), or from
# the data connection another server pushes its process's output on, acknowledging what the
# reader took on that connection as it reads (src/node/push.ts).
# fuse-native-release.patch lets the FUSE thread answer every release itself (the kernel waits for
# none and ignores the answer) and tell JavaScript after (binding.fuse_native_release_notes,
# src/fs/mount.ts).
# fuse-native-splice.patch moves the reads answered from a lent child's pipe on to FUSE with
# splice(2), so the daemon copies none of their bytes (binding.fuse_native_direct_spliced says
# whether it is on and counts those answers; CIRCUIT_NO_FUSE_SPLICE=1 turns it off).
# Idempotent: does nothing when the built module has every function and was built from these
# patches as they are now (their checksum, kept in fuse-native/.circuit-patches). When a patch
# changed, the build starts again from fuse-native's own source, kept beside it the first time
# (fuse-native.c.orig); a tree patched before that copy was kept gets only the patches it lacks.
#
# It is the package's `postinstall` script, so `npm install`, `npm ci` and `npm install -g`
# of the packed tarball all run it; fuse-native is found where Node would load it from (nested
# under this package, or hoisted into a project that depends on circuit).
set -e
cd "$(dirname "$0")/.."
root=$(pwd)
mod=$(node -p "require('path').dirname(require.resolve('fuse-native/package.json'))" 2>/dev/null || true)

if [ -z "$mod" ] || [ ! -f "$mod/fuse-native.c" ]; then
  echo "patch-fuse-native: fuse-native is missing; run npm install first" >&2
  exit 1
fi

# Each patch with the function it adds, in the order they apply.
PATCHES="caller:fuse_native_caller noflush:fuse_native_noflush cloexec:fuse_native_cloexec answers:fuse_native_answers callerat:fuse_native_caller_at attrs:fuse_native_attrs_put pooled:fuse_native_pooled_io direct:fuse_native_direct_lend release:fuse_native_release_notes splice:fuse_native_direct_spliced"
stamp=$(for p in $PATCHES; do cat "$root/patches/fuse-native-${p%%:*}.patch"; done | cksum | cut -d' ' -f1)

built_with() {
  node -e "const m='$mod'; const b=require(require.resolve('node-gyp-build', { paths: [m] }))(m); process.exit(typeof b['$1'] === 'function' ? 0 : 1)" 2>/dev/null
}

missing=""
for p in $PATCHES; do built_with "${p#*:}" || missing="$missing ${p#*:}"; done
if [ -z "$missing" ] && [ "$(cat "$mod/.circuit-patches" 2>/dev/null)" = "$stamp" ]; then exit 0; fi

if [ -f "$mod/fuse-native.c.orig" ]; then
  cp "$mod/fuse-native.c.orig" "$mod/fuse-native.c"
elif ! grep -q fuse_native_caller "$mod/fuse-native.c"; then
  cp "$mod/fuse-native.c" "$mod/fuse-native.c.orig"
fi
for p in $PATCHES; do
  if grep -q "${p#*:}" "$mod/fuse-native.c"; then continue; fi
  echo "patch-fuse-native: applying fuse-native-${p%%:*}.patch to $mod/fuse-native.c" >&2
  (cd "$mod" && patch -p1 --forward --silent < "$root/patches/fuse-native-${p%%:*}.patch")
done

. "$root/scripts/node-gyp.sh"
gyp_rebuild "$mod"

for p in $PATCHES; do
  if ! built_with "${p#*:}"; then
    echo "patch-fuse-native: rebuilt module lacks ${p#*:}" >&2
    exit 1
  fi
done
echo "$stamp" > "$mod/.circuit-patches"
echo "patch-fuse-native: built with caller info (and its offset), the no-flush, answers and attribute tables, pooled read buffers, reads from lent pipes (spliced), releases answered on the FUSE thread and a close-on-exec mount descriptor" >&2
