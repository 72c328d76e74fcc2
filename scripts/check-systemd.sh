#!/usr/bin/env bash
# Checks systemd/scrubd.service (or the unit file given as $SCRUBD_UNIT, for tests):
#   1. `systemd-analyze verify` reports nothing about the unit (warnings count as failures);
#   2. `systemd-analyze security --offline=yes` rates its exposure 2.0 or below ("OK" or better).
# Prints the exposure score. Exits non-zero on any failure.
#
# verify needs ExecStart's binary to exist, so it runs on a temporary copy of the unit whose
# ExecStart points at a built binary: $SCRUBD_BIN, else target/{release,debug}/scrubd (under
# $CARGO_TARGET_DIR if set), else one built here with `cargo build --bin scrubd`.
# If systemd-analyze is missing, Debian's `systemd` package is installed (needs root or sudo).
#
# Tested with systemd 252: there, --threshold= takes an integer in tenths (20 means 2.0), and
# --offline=yes analyses the file without a running systemd.
set -euo pipefail

MAX_EXPOSURE=2.0
THRESHOLD_TENTHS=20

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
unit=${SCRUBD_UNIT:-$repo/systemd/scrubd.service}
installed_exec=/usr/local/bin/scrubd

die() { echo "check-systemd: $*" >&2; exit 1; }

[[ -f $unit ]] || die "no unit file at $unit"

if ! command -v systemd-analyze >/dev/null; then
    echo "check-systemd: systemd-analyze not found, installing Debian's systemd package" >&2
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends systemd
fi
echo "check-systemd: $(systemd-analyze --version | head -n1)"

find_binary() {
    if [[ -n ${SCRUBD_BIN:-} ]]; then
        [[ -x $SCRUBD_BIN ]] || die "SCRUBD_BIN=$SCRUBD_BIN is not an executable"
        echo "$SCRUBD_BIN"
        return
    fi
    local target=${CARGO_TARGET_DIR:-$repo/target}
    for profile in release debug; do
        if [[ -x $target/$profile/scrubd ]]; then
            echo "$target/$profile/scrubd"
            return
        fi
    done
    echo "check-systemd: no built scrubd binary, building one" >&2
    (cd "$repo" && cargo build --quiet --bin scrubd) >&2
    [[ -x $target/debug/scrubd ]] || die "cargo build did not produce $target/debug/scrubd"
    echo "$target/debug/scrubd"
}
binary=$(find_binary)

grep -q "^ExecStart=$installed_exec " "$unit" || die "ExecStart= of $unit does not start $installed_exec"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Same file name: systemd derives the unit name from it.
sed "s#^ExecStart=$installed_exec #ExecStart=$binary #" "$unit" >"$work/scrubd.service"

# 1. verify. It exits 0 on warnings such as unknown keys, so its output is checked too; lines
# about other units on this machine are not our concern.
status=0
verify_out=$(systemd-analyze verify --no-pager "$work/scrubd.service" 2>&1) || status=$?
ours=$(grep -F scrubd <<<"$verify_out" || true)
if [[ $status -ne 0 || -n $ours ]]; then
    echo "$verify_out" >&2
    die "systemd-analyze verify failed (exit $status)"
fi
echo "check-systemd: verify ok"

# 2. security.
status=0
security_out=$(systemd-analyze security --no-pager --offline=yes --threshold=$THRESHOLD_TENTHS \
    "$work/scrubd.service" 2>&1) || status=$?
overall=$(grep -F "Overall exposure level for scrubd.service" <<<"$security_out" || true)
score=$(sed -n 's/.*Overall exposure level for scrubd\.service: \([0-9][0-9]*\.[0-9]\).*/\1/p' <<<"$overall")
[[ -n $score ]] || { echo "$security_out" >&2; die "no exposure score in the output of systemd-analyze security"; }
echo "check-systemd: exposure ${overall#*: } (must be <= $MAX_EXPOSURE)"
# Checked twice: by --threshold (exit status) and by the printed score, in case either changes.
if [[ $status -ne 0 ]] || awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s > m) }'; then
    grep -F "✗" <<<"$security_out" >&2 || true
    die "exposure $score is above $MAX_EXPOSURE (systemd-analyze exit $status)"
fi
echo "check-systemd: ok"
