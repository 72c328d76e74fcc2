#!/usr/bin/env bash
# THE test command: starts the S3-compatible test servers (SeaweedFS and Garage on loopback, see
# scripts/s3-server.sh and scripts/garage-server.sh), points the tests at them and runs
# `cargo test --all-targets` with any extra arguments passed through (e.g.
# `scripts/test.sh --test it store_conformance`). The servers are stopped on exit.
# Exits with cargo's status. Tests that need S3 fail (never skip) without it.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

# The test build (one integration-test binary, line tables only; see Cargo.toml) needs about 2 GiB
# in the target directory, and building Garage once about 3 GiB more. Short of that, linkers die
# with obscure errors (SIGBUS), so say it plainly first.
target_dir=${CARGO_TARGET_DIR:-$repo/target}
mkdir -p "$target_dir"
free_mib=$(df -Pm "$target_dir" | awk 'NR == 2 { print $4 }')
if ((free_mib < 3072)); then
    echo "test.sh: only ${free_mib} MiB free in $target_dir; the test build needs about 2 GiB" \
        "(5 GiB while Garage is built the first time)" >&2
fi

# With SCRUBD_TEST_S3_ENDPOINT (and the keys) already set, the suite runs against that store
# instead (another S3-compatible server); otherwise against a SeaweedFS started here.
# DuckDB (from PyPI) reads the index segments in tests/it/index_duckdb.rs.
scripts/install-duckdb.sh

started=()
cleanup() {
    for s in "${started[@]}"; do
        "scripts/$s-server.sh" stop
    done
}
trap cleanup EXIT
if [[ -z ${SCRUBD_TEST_S3_ENDPOINT:-} ]]; then
    scripts/s3-server.sh start
    started+=(s3)
    eval "$(scripts/s3-server.sh env)"
fi
export SCRUBD_TEST_S3_ENDPOINT SCRUBD_TEST_S3_REGION SCRUBD_TEST_S3_ACCESS_KEY SCRUBD_TEST_S3_SECRET_KEY \
    SCRUBD_TEST_S3_RO_ACCESS_KEY SCRUBD_TEST_S3_RO_SECRET_KEY

# Garage, the second engine (tests/it/garage_e2e.rs and the conformance suite): built from crates.io
# once per machine (about ten minutes, cached in ~/.cache/scrubd-tools), started like SeaweedFS.
if [[ -z ${SCRUBD_TEST_GARAGE_ENDPOINT:-} ]]; then
    scripts/garage-server.sh start
    started+=(garage)
    eval "$(scripts/garage-server.sh env)"
fi
export SCRUBD_TEST_GARAGE_ENDPOINT SCRUBD_TEST_GARAGE_REGION SCRUBD_TEST_GARAGE_ACCESS_KEY \
    SCRUBD_TEST_GARAGE_SECRET_KEY

# `--all-targets` unless the arguments pick targets themselves (cargo would otherwise run the union).
targets=(--all-targets)
for arg in "$@"; do
    case $arg in
    --lib | --bins | --bin | --bin=* | --tests | --test | --test=* | --benches | --bench | --bench=* | \
        --examples | --example | --example=* | --doc | --all-targets) targets=() ;;
    --) break ;;
    esac
done

status=0
cargo test --no-fail-fast "${targets[@]}" "$@" || status=$?
exit "$status"
