#!/bin/sh
# Installs Garage (https://garagehq.deuxfleurs.fr), the second S3-compatible engine that
# tests/it/garage_e2e.rs runs against, with `cargo install` from crates.io. Building it takes about
# ten minutes, so the binary is cached outside the clone, in
# ${SCRUBD_GARAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scrubd-tools/garage-VERSION}; later runs
# (and later clones on the same machine) reuse it. Prints the path of the binary on stdout.
set -eu
version="${GARAGE_VERSION:-2.5.0}"
root="${SCRUBD_GARAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scrubd-tools/garage-$version}"
bin="$root/bin/garage"
if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
    echo "$bin"
    exit 0
fi
mkdir -p "$root"
echo "building garage $version into $root (about ten minutes, once per machine)" >&2
# A target dir of its own, removed afterwards: the build is large and never reused.
build="$root/build"
CARGO_TARGET_DIR="$build" cargo install garage --version "$version" --locked --root "$root" >&2
rm -rf "$build"
"$bin" --version >&2
echo "$bin"
