#!/bin/sh
# Installs DuckDB (from PyPI) into the tools venv, for the test that reads the index segments
# with DuckDB (tests/it/index_duckdb.rs). Idempotent; shares the venv with scripts/s3-server.sh.
#
#   scripts/install-duckdb.sh            # venv in ${SCRUBD_TOOLS_DIR:-target/tools}/venv
set -eu
cd "$(dirname "$0")/.."
tools="${SCRUBD_TOOLS_DIR:-target/tools}"
venv="$tools/venv"
version="${DUCKDB_VERSION:-1.5.6}"
if [ ! -x "$venv/bin/python" ]; then
    mkdir -p "$tools"
    python3 -m venv "$venv"
fi
if "$venv/bin/python" -c 'import duckdb' 2>/dev/null; then
    echo "duckdb $("$venv/bin/python" -c 'import duckdb; print(duckdb.__version__)') in $venv"
    exit 0
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check "duckdb==$version"
echo "duckdb $("$venv/bin/python" -c 'import duckdb; print(duckdb.__version__)') installed in $venv"
