#!/usr/bin/env bash
# Benchmarks stdin through `paragon-admin ssh -- 'cat >/dev/null'` against OpenSSH's `ssh` with
# the same sshd (loopback), client key, host key check and cipher (aes256-gcm@openssh.com, what
# paragon-admin negotiates on a CPU with AES instructions): SIZE bytes from a file on stdin, as
# `psql < dump.sql` sends them. paragon-admin runs through the profile's agent (the default,
# warmed first) and on a session of its own (--no-agent), which includes its connect, so
# OpenSSH's cold run is its anchor and OpenSSH through a warm ControlMaster the agent's.
# Rounds are interleaved so that load from elsewhere hits all alike; prints the median wall
# time of each and the ratios (paragon / OpenSSH, <= 1.0: as fast). The command runs as a user
# of this run whose login shell is /bin/sh (root's bash profile would be part of the time).
#
# Usage: scripts/bench-stdin.sh   (as root; env: ROUNDS=7 SIZE=200000000
#                                  PARAGON_BIN=path to skip the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=bench-stdin
ROUNDS=${ROUNDS:-7}
SIZE=${SIZE:-200000000}

for cmd in /usr/sbin/sshd ssh ssh-keygen python3; do
  command -v "$cmd" >/dev/null || { echo "$BENCH: missing: $cmd (apt-get install openssh-client openssh-server)" >&2; exit 1; }
done
if [[ -z "${PARAGON_BIN:-}" ]]; then
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
  cargo build --release --quiet --bin paragon-admin
  PARAGON_BIN=$CARGO_TARGET_DIR/release/paragon-admin
fi

# shellcheck source=bench-common.sh source-path=SCRIPTDIR
source "$(dirname "$0")/bench-common.sh"
start_sshd "UseDNS no"
sh_user pa-stdin
bastion_profile bench "$bench_user" >"$work/config.toml"
mkdir -m 700 "$work/run"
head -c "$SIZE" /dev/urandom >"$work/input"

cipher=aes256-gcm@openssh.com
ours=(env -u SSH_AUTH_SOCK "XDG_RUNTIME_DIR=$work/run" "PARAGON_ADMIN_CONFIG=$work/config.toml" "$PARAGON_BIN")
theirs=(env -u SSH_AUTH_SOCK ssh -F none -i "$work/id_ed25519" -o IdentitiesOnly=yes -o BatchMode=yes
  -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$work/known_hosts" -p "$sshd_port" -c "$cipher")
master=$work/master.sock
# Warm both: the agent, and an OpenSSH master kept until the end.
"${ours[@]}" ssh -- true
"${theirs[@]}" -o ControlMaster=yes -o "ControlPath=$master" -o ControlPersist=yes -fN "$bench_user@127.0.0.1"
stop_warm() {
  "${ours[@]}" agent stop >/dev/null 2>&1 || true
  "${theirs[@]}" -o "ControlPath=$master" -O exit "$bench_user@127.0.0.1" 2>/dev/null || true
  cleanup
}
trap stop_warm EXIT

one() { # name command... : appends the wall time of one run with $work/input on stdin
  local name=$1 start end
  shift
  start=$(date +%s.%N)
  "$@" <"$work/input" || { echo "$BENCH: $name failed" >&2; exit 1; }
  end=$(date +%s.%N)
  awk -v s="$start" -v e="$end" 'BEGIN {printf "%.3f\n", e - s}' >>"$work/t.$name"
}
names=(agent cm direct cold)
for n in "${names[@]}"; do : >"$work/t.$n"; done
for i in $(seq "$ROUNDS"); do
  for k in 0 1 2 3; do # rotating order
    case ${names[$(((i + k) % 4))]} in
      agent) one agent "${ours[@]}" ssh -- 'cat >/dev/null' ;;
      cm) one cm "${theirs[@]}" -o "ControlPath=$master" "$bench_user@127.0.0.1" 'cat >/dev/null' ;;
      direct) one direct "${ours[@]}" --no-agent ssh -- 'cat >/dev/null' ;;
      cold) one cold "${theirs[@]}" "$bench_user@127.0.0.1" 'cat >/dev/null' ;;
    esac
  done
done
for n in "${names[@]}"; do echo "$n runs (s): $(tr '\n' ' ' <"$work/t.$n")" >&2; done
med() { median <"$work/t.$1"; }
agent=$(med agent) cm=$(med cm) direct=$(med direct) cold=$(med cold)
echo
echo "$SIZE bytes on stdin to \`cat >/dev/null\`, median of $ROUNDS (s, lower is better; cipher $cipher; load: $(cut -d' ' -f1-3 /proc/loadavg))"
printf '    %-34s %6s   OpenSSH ControlMaster %6s   ratio %s (to OpenSSH cold: %s)\n' "paragon-admin through the agent" \
  "$agent" "$cm" "$(ratio "$agent" "$cm")" "$(ratio "$agent" "$cold")"
printf '    %-34s %6s   OpenSSH cold          %6s   ratio %s\n' "paragon-admin --no-agent" "$direct" "$cold" "$(ratio "$direct" "$cold")"
