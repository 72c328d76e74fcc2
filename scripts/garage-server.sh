#!/usr/bin/env bash
# Starts or stops Garage, the second S3-compatible engine (stricter than SeaweedFS about request
# signing), as a one-node cluster on loopback, for tests/it/garage_e2e.rs and the conformance suite.
#
#   scripts/garage-server.sh start   build if needed (scripts/install-garage.sh), start, set up
#   scripts/garage-server.sh stop    stop the server started by `start`
#   scripts/garage-server.sh env     print the `export SCRUBD_TEST_GARAGE_*=...` lines
#
# One node: `replication_factor = 1`, sqlite metadata, S3 on 127.0.0.1:3900, RPC on 3901, admin
# API on 3903 (fixed ports: one instance per machine). A fresh data directory and a fresh key
# (allowed to create buckets) on each start. State lives under ${SCRUBD_TOOLS_DIR:-target/tools}/garage.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools=${SCRUBD_TOOLS_DIR:-$repo/target/tools}
mkdir -p "$tools"
tools=$(cd "$tools" && pwd)
state=$tools/garage
pid_file=$state/garage.pid
log_file=$state/garage.log
env_file=$state/env
config=$state/garage.toml
s3_port=3900
rpc_port=3901
admin_port=3903
start_timeout=${SCRUBD_S3_START_TIMEOUT:-60}
server_name=garage-server
# shellcheck source=scripts/server-common.sh
source "$repo/scripts/server-common.sh"

hex() {
    # $1 random bytes as lowercase hex.
    od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'
}

garage() {
    "$bin" -c "$config" "$@"
}

start() {
    if running && [[ -f $env_file ]]; then
        echo "garage-server: already running (pid $(cat "$pid_file"))" >&2
        return
    fi
    running && stop
    bin=$("$repo/scripts/install-garage.sh")
    for p in $s3_port $rpc_port $admin_port; do
        port_open "$p" && die "port $p is already in use by another process (is another garage running?)"
    done
    rm -rf "$state"
    mkdir -p "$state/meta" "$state/data"
    cat >"$config" <<TOML
metadata_dir = "$state/meta"
data_dir = "$state/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$(hex 32)"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3_port"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin_port"
admin_token = "$(hex 32)"
TOML
    chmod 600 "$config"
    setsid "$bin" -c "$config" server </dev/null >"$log_file" 2>&1 &
    echo $! >"$pid_file"
    local waited=0
    until port_open $s3_port && garage status >/dev/null 2>&1; do
        if ! running; then
            echo "garage-server: garage exited during start; last lines of $log_file:" >&2
            tail -n 30 "$log_file" >&2 || true
            rm -f "$pid_file"
            exit 1
        fi
        if ((waited >= start_timeout * 10)); then
            echo "garage-server: garage did not answer within ${start_timeout}s; last lines of $log_file:" >&2
            tail -n 30 "$log_file" >&2 || true
            stop
            exit 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    local node key_id secret
    node=$(garage node id -q 2>/dev/null | cut -d@ -f1)
    [[ -n $node ]] || die "cannot read the node id (garage node id)"
    garage layout assign -z dc1 -c 1G "$node" >/dev/null
    garage layout apply --version 1 >/dev/null
    key_id=GK$(hex 12)
    secret=$(hex 32)
    garage key import --yes -n scrubd-test "$key_id" "$secret" >/dev/null
    garage key allow --create-bucket scrubd-test >/dev/null
    cat >"$env_file" <<ENV
export SCRUBD_TEST_GARAGE_ENDPOINT=http://127.0.0.1:$s3_port
export SCRUBD_TEST_GARAGE_REGION=garage
export SCRUBD_TEST_GARAGE_ACCESS_KEY=$key_id
export SCRUBD_TEST_GARAGE_SECRET_KEY=$secret
ENV
    chmod 600 "$env_file"
    echo "garage-server: Garage S3 on http://127.0.0.1:$s3_port (pid $(cat "$pid_file"), log $log_file)" >&2
}

stop() {
    stop_server "$pid_file"
}

case ${1:-} in
start) start ;;
stop) stop ;;
env)
    [[ -f $env_file ]] || die "not started: run scripts/garage-server.sh start"
    cat "$env_file"
    ;;
*) die "usage: $0 start|stop|env" ;;
esac
