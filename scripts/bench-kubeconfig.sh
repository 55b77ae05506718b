#!/usr/bin/env bash
# Benchmarks local kubectl through the kubeconfig that heals itself (issue 13) against kubectl
# through OpenSSH's `ssh -L` (the anchor), in one run, over the same sshd (loopback, same key)
# to the same sandbox API server:
#   - ssh -L:  `ssh -N -L PORT:127.0.0.1:API` kept open; kubectl with the sandbox's own
#              kubeconfig pointed at PORT (its token inline): nothing runs per command
#   - healing: `paragon-admin kubeconfig --write`; kubectl runs `kube-credential` before each
#              command (the agent already holds the API forward: the usual case)
#   - healed:  the same, with the agent stopped before each command (after a reboot, a sleep:
#              the plugin starts the agent and the forward)
#   - bastion's: the healing kubeconfig of a profile without [kube] kubeconfig: the plugin
#              fetches the bastion's own (its kubectl prints the sandbox's) through the agent,
#              the agent runs one command on the bastion a minute and reuses its answer
# Each is `kubectl get pods -A` measured by hyperfine (median of RUNS, after a warm-up); prints
# the medians and the ratios to ssh -L.
#
# Usage: scripts/bench-kubeconfig.sh   (env: RUNS=20 PODS=2000 PARAGON_BIN=path to skip the
#                                        release build)
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-20}
PODS=${PODS:-2000}

for cmd in hyperfine kubectl python3 ssh ssh-keygen; do
  command -v "$cmd" >/dev/null || { echo "bench-kubeconfig: $cmd is missing" >&2; exit 1; }
done
[[ -x /usr/sbin/sshd ]] || { echo "bench-kubeconfig: /usr/sbin/sshd is missing (apt-get install openssh-server)" >&2; exit 1; }

if [[ -z "${PARAGON_BIN:-}" ]]; then
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target}
  cargo build --release --quiet --bin paragon-admin
  PARAGON_BIN=$CARGO_TARGET_DIR/release/paragon-admin
fi
PARAGON_BIN=$(realpath "$PARAGON_BIN")

BENCH=bench-kubeconfig
# shellcheck source=bench-common.sh source-path=SCRIPTDIR
source "$(dirname "$0")/bench-common.sh"

# The agent, its state and kubectl's cache live in the work folder; the agent is stopped
# before the work folder goes.
export HOME=$work XDG_RUNTIME_DIR=$work/run XDG_STATE_HOME=$work/state
mkdir -m 0700 "$XDG_RUNTIME_DIR"
export PARAGON_ADMIN_CONFIG=$work/config.toml
# shellcheck disable=SC2317 # run by the EXIT trap
stop_agents_then_cleanup() {
  "$PARAGON_BIN" agent stop --all >/dev/null 2>&1 || true
  cleanup
}
trap stop_agents_then_cleanup EXIT

# The bastion's own kubectl prints the sandbox's kubeconfig: a wrapper first on the sessions'
# PATH (written before the sandbox starts, with the path its kubeconfig will have).
mkdir "$work/bin"
printf '#!/bin/sh\nexec %s --kubeconfig %s "$@"\n' "$(command -v kubectl)" \
  "$work/sandbox.kubeconfig" >"$work/bin/kubectl"
chmod 755 "$work/bin/kubectl"
start_sshd "SetEnv PATH=$work/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

api_port=$(free_port)
"$PARAGON_BIN" --quiet sandbox --listen "127.0.0.1:$api_port" --pods "$PODS" \
  --kubeconfig-out "$work/sandbox.kubeconfig" >/dev/null 2>"$work/sandbox.log" &
pids+=($!)
wait_port "$api_port"
# It writes its kubeconfig once it listens.
for _ in $(seq 200); do [[ -s $work/sandbox.kubeconfig ]] && break; sleep 0.05; done
[[ -s $work/sandbox.kubeconfig ]] || { echo "bench-kubeconfig: the sandbox wrote no kubeconfig: $(cat "$work/sandbox.log")" >&2; exit 1; }

{
  echo 'default_profile = "bench"'
  bastion_profile bench
  cat <<CONFIG
[profiles.bench.kube]
kubeconfig = "$work/sandbox.kubeconfig"
CONFIG
  bastion_profile own
} >"$work/config.toml"

# --- the anchor: ssh -L, and the sandbox's kubeconfig pointed at its port -------------------
ssh_local=$(free_port)
ssh -N -o BatchMode=yes -o ExitOnForwardFailure=yes -o UserKnownHostsFile="$work/known_hosts" \
  -i "$work/id_ed25519" -p "$sshd_port" -L "$ssh_local:127.0.0.1:$api_port" root@127.0.0.1 \
  2>"$work/ssh.log" &
pids+=($!)
wait_port "$ssh_local"
sed "s#https://127.0.0.1:$api_port#https://127.0.0.1:$ssh_local#" "$work/sandbox.kubeconfig" >"$work/ssh-l.kubeconfig"
chmod 600 "$work/ssh-l.kubeconfig"

# --- the kubeconfig that heals itself -----------------------------------------------------
"$PARAGON_BIN" kubeconfig --write "$work/healing.kubeconfig" 2>"$work/write.log" ||
  { echo "bench-kubeconfig: kubeconfig --write failed: $(cat "$work/write.log")" >&2; exit 1; }
"$PARAGON_BIN" -p own kubeconfig --write "$work/own.kubeconfig" 2>"$work/write-own.log" ||
  { echo "bench-kubeconfig: kubeconfig --write (the bastion's own) failed: $(cat "$work/write-own.log")" >&2; exit 1; }

get_pods() { echo "kubectl --kubeconfig $1 get pods -A --request-timeout 60s"; }
for k in ssh-l healing own; do
  # Both must list the same pods before anything is timed (names: the ages go on ticking).
  eval "$(get_pods "$work/$k.kubeconfig") -o name" >"$work/$k.pods" ||
    { echo "bench-kubeconfig: kubectl through $k failed" >&2; exit 1; }
done
for k in healing own; do
  cmp -s "$work/ssh-l.pods" "$work/$k.pods" ||
    { echo "bench-kubeconfig: ssh -L and $k list different pods" >&2; exit 1; }
done

hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$work/warm.json" \
  -n ssh-l "$(get_pods "$work/ssh-l.kubeconfig")" \
  -n healing "$(get_pods "$work/healing.kubeconfig")" \
  -n own "$(get_pods "$work/own.kubeconfig")" >&2
hyperfine -N --runs "$RUNS" --export-json "$work/healed.json" \
  --prepare "$PARAGON_BIN agent stop" \
  -n healed "$(get_pods "$work/healing.kubeconfig")" >&2

python3 - "$work/warm.json" "$work/healed.json" "$PODS" "$RUNS" <<'PY'
import json, sys
runs = {}
for f in sys.argv[1:3]:
    for r in json.load(open(f))["results"]:
        runs[r["command"]] = r["median"] * 1000
pods, n = sys.argv[3], sys.argv[4]
anchor = runs["ssh-l"]
print()
print(f"kubectl get pods -A ({pods} pods), median of {n} (ms, lower is better)")
for name, what in [("ssh-l", "ssh -L (anchor)"), ("healing", "healing kubeconfig, agent up"),
                   ("healed", "healing kubeconfig, agent stopped before each"),
                   ("own", "the bastion's own kubeconfig, agent up")]:
    print(f"  {what:<46} {runs[name]:8.1f}   x{runs[name] / anchor:.2f}")
PY
