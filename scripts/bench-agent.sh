#!/usr/bin/env bash
# The kept connection: `paragon-admin ssh -- true` and `paragon-admin kubectl version --client`
# through a warm agent, against OpenSSH cold (a new connection per command) and OpenSSH
# ControlMaster warm (a master kept with ControlPersist), same loopback sshd, same ed25519
# client key, same strict host key check. Prints each median and the ratios (ours / theirs);
# targets: at most 0.1x OpenSSH cold, at most 1.2x ControlMaster. The commands run as a user
# of this run whose login shell is /bin/sh (root's bash profile would be most of the time).
#
# Usage: scripts/bench-agent.sh [RUNS]   (default 50; needs sshd, ssh, kubectl, hyperfine)
#        BIN=target/debug/paragon-admin scripts/bench-agent.sh   (skip the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=bench-agent
runs=${1:-50}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
for cmd in /usr/sbin/sshd ssh ssh-keygen kubectl hyperfine python3; do
  command -v "$cmd" >/dev/null || { echo "$BENCH: missing: $cmd" >&2; exit 1; }
done
if [[ -z ${BIN:-} ]]; then
  cargo build --release --quiet
  BIN="$CARGO_TARGET_DIR/release/paragon-admin"
fi
# shellcheck source=bench-common.sh source-path=SCRIPTDIR
source "$(dirname "$0")/bench-common.sh"
# The remote kubectl is this machine's own (pyenv's shims would pick another).
start_sshd "SetEnv PATH=$(dirname "$(command -v kubectl)"):/usr/local/bin:/usr/bin:/bin PYENV_VERSION=system" \
  "MaxStartups 100:30:200" "MaxSessions 100" "UseDNS no"

sh_user pa-bench
bastion_profile bench "$bench_user" >"$work/config.toml"
mkdir -m 700 "$work/run"
ours="env -u SSH_AUTH_SOCK XDG_RUNTIME_DIR=$work/run PARAGON_ADMIN_CONFIG=$work/config.toml $BIN"
ssh_opts="-F none -i $work/id_ed25519 -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$work/known_hosts -p $sshd_port"
theirs="env -u SSH_AUTH_SOCK ssh $ssh_opts"
master="$work/cm"

# Warm both: our agent, and an OpenSSH master kept until we stop it.
$ours ssh -- true
# shellcheck disable=SC2086 # $ssh_opts is a list of words
env -u SSH_AUTH_SOCK ssh $ssh_opts -o ControlMaster=yes -o ControlPath="$master" -o ControlPersist=yes -fN "$bench_user@127.0.0.1"
stop_warm() {
  $ours agent stop >/dev/null 2>&1 || true
  # shellcheck disable=SC2086
  env -u SSH_AUTH_SOCK ssh $ssh_opts -o ControlPath="$master" -O exit "$bench_user@127.0.0.1" 2>/dev/null || true
  cleanup
}
trap stop_warm EXIT

measure() { hyperfine_median "$1" 3 "$runs" "${@:2}"; } # name command...

for op in "true" "kubectl version --client"; do
  agent=$(measure agent "$ours ssh -- $op")
  cold=$(measure cold "$theirs $bench_user@127.0.0.1 $op")
  warm=$(measure warm "$theirs -o ControlPath=$master $bench_user@127.0.0.1 $op")
  python3 - "$op" "$agent" "$cold" "$warm" <<'PY'
import sys
op, agent, cold, warm = sys.argv[1], *map(float, sys.argv[2:])
print(f"{op!r}: agent {agent*1000:.1f} ms, OpenSSH cold {cold*1000:.1f} ms, "
      f"ControlMaster {warm*1000:.1f} ms; agent/cold {agent/cold:.2f}x (target <= 0.1x), "
      f"agent/ControlMaster {agent/warm:.2f}x (target <= 1.2x)")
PY
done
