#!/usr/bin/env bash
# THE test command: starts the S3-compatible test servers (SeaweedFS and Garage on loopback, see
# scripts/s3-server.sh and scripts/garage-server.sh), points the tests at them and runs
# `cargo test --all-targets` with any extra arguments passed through (e.g.
# `scripts/test.sh --test store_conformance`). The servers are stopped on exit.
# Exits with cargo's status. Tests that need S3 fail (never skip) without it.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

# With SCRUBD_TEST_S3_ENDPOINT (and the keys) already set, the suite runs against that store
# instead (another S3-compatible server); otherwise against a SeaweedFS started here.
# DuckDB (from PyPI) reads the index segments in tests/index_duckdb.rs.
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

# Garage, the second engine (tests/garage_e2e.rs and the conformance suite): built from crates.io
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
