#!/bin/sh
# Installs what circuit needs from Debian and npm, when it is missing. Called by `npm start` and
# `npm test`. As root it installs with apt-get; otherwise it prints what to install and stops.
set -e
cd "$(dirname "$0")/.."

# command-to-package pairs: a package is needed when its command is missing.
need=""
check() { command -v "$1" >/dev/null 2>&1 || need="$need $2"; }
check fusermount fuse
check dig dnsutils
check ip iproute2
check iptables iptables
check dockerd docker.io
check busybox busybox-static
check tcpdump tcpdump
check strace strace
check bash bash
check make make
check g++ g++
check python3 python3
check systemd-analyze systemd
[ -e /usr/lib/x86_64-linux-gnu/libfuse.so.2 ] || [ -e /lib/x86_64-linux-gnu/libfuse.so.2 ] || need="$need libfuse2"

if [ -n "$need" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian packages:$need" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || true
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $need >&2
  else
    echo "setup: please install these Debian packages first:$need" >&2
    exit 1
  fi
fi

if [ ! -d node_modules ] || [ package.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages" >&2
  npm install --no-audit --no-fund >&2
fi
# The patched fuse-native (caller pid/uid per op, for interrupts and the log).
if [ -x scripts/patch-fuse-native.sh ]; then sh scripts/patch-fuse-native.sh >&2; fi
# native/fdtake (pidfd_getfd, for the server to write into a CLI's socket or file: docs/cli.md).
if [ -x scripts/build-native.sh ]; then sh scripts/build-native.sh >&2; fi

# `circuit` on PATH, the standard way for a checkout: `npm link` puts a symlink to this folder's
# bin/circuit in npm's global bin (/usr/local/bin on Debian). Done when no circuit is on PATH;
# one from another checkout or install is left alone (run `npm link` here to switch).
here=$(pwd)/bin/circuit
found=$(command -v circuit 2>/dev/null || true)
if [ -z "$found" ]; then
  if npm link --no-audit --no-fund >/dev/null 2>&1 && command -v circuit >/dev/null 2>&1; then
    echo "setup: linked $(command -v circuit) to this checkout (npm link)" >&2
  else
    echo "setup: could not put circuit on PATH with npm link; run it as $here or see README.md" >&2
  fi
elif [ "$(readlink -f "$found")" != "$(readlink -f "$here")" ]; then
  echo "setup: circuit on PATH is $found (not this checkout's; npm link here to switch)" >&2
fi
