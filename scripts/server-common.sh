# Shared by scripts/s3-server.sh and scripts/garage-server.sh (sourced, not run). They set
# `server_name` and `pid_file` first.

die() {
    echo "$server_name: $*" >&2
    exit 1
}

running() {
    [[ -f $pid_file ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

# port_open PORT: something listens on 127.0.0.1:PORT (bash's /dev/tcp: no curl or nc needed on a
# fresh machine).
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# stop_server PID_FILE: ends the server started with `setsid` (its whole process group), waiting up
# to 5 s before SIGKILL, and removes the pid file.
stop_server() {
    local pid_file=$1 pid
    [[ -f $pid_file ]] || return 0
    pid=$(cat "$pid_file")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    rm -f "$pid_file"
}
