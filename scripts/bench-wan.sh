#!/usr/bin/env bash
# A far bastion: a userspace proxy (scripts/delay-proxy.py; this kernel has no netem) holds
# every chunk DELAY_MS each way in front of a real OpenSSH sshd on loopback, and in the same
# run, same key, same strict host key check, reports:
#   - cold `ssh -- true`: `paragon-admin --no-agent ssh -- true` (its own connection) against
#     OpenSSH `ssh HOST true`; goal at most 0.7x
#   - warm `ssh -- true`: through the profile's agent (the default path) against OpenSSH
#     ControlMaster
#   - `health` on a sandbox of PODS pods over NODES nodes, through the warm agent, against
#     kubectl's one list `kubectl get pods -A -o json` through `ssh -L`; goal at most 1.0 s
# Each figure is the median of RUNS (hyperfine); the load average is printed with them.
#
# Usage: scripts/bench-wan.sh   (env: DELAY_MS=25 RUNS=10 PODS=10000 NODES=500
#                                  BIN=path to skip the release build; needs root, sshd, ssh,
#                                  kubectl, hyperfine, python3)
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=bench-wan
DELAY_MS=${DELAY_MS:-25}
RUNS=${RUNS:-10}
PODS=${PODS:-10000}
NODES=${NODES:-500}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
for cmd in /usr/sbin/sshd ssh ssh-keygen kubectl hyperfine python3; do
  command -v "$cmd" >/dev/null || { echo "$BENCH: missing: $cmd" >&2; exit 1; }
done
if [[ -z ${BIN:-} ]]; then
  cargo build --release --quiet --bin paragon-admin
  BIN="$CARGO_TARGET_DIR/release/paragon-admin"
fi
# shellcheck source=bench-common.sh source-path=SCRIPTDIR
source "$(dirname "$0")/bench-common.sh"
start_sshd "MaxStartups 100:30:200" "MaxSessions 100" "UseDNS no"
sh_user pa-wan

# --- the far bastion: the delay proxy in front of sshd ---------------------------------------
python3 "$(dirname "$0")/delay-proxy.py" 0 127.0.0.1 "$sshd_port" "$DELAY_MS" >"$work/proxy.out" &
pids+=($!)
for _ in $(seq 100); do grep -q listening "$work/proxy.out" 2>/dev/null && break; sleep 0.05; done
far_port=$(awk '/listening/ {print $2}' "$work/proxy.out")
[[ -n $far_port ]] || { echo "$BENCH: the delay proxy did not start" >&2; exit 1; }
echo "[127.0.0.1]:$far_port $(cut -d' ' -f1,2 "$work/host_key.pub")" >>"$work/known_hosts"

# --- the sandbox: the API server the bastion reaches -------------------------------------------
kc=$work/kubeconfig
"$BIN" --quiet sandbox --listen 127.0.0.1:0 --nodes "$NODES" --pods "$PODS" --kubeconfig-out "$kc" >/dev/null &
pids+=($!)
for _ in $(seq 600); do [[ -s $kc ]] && break; sleep 0.1; done
[[ -s $kc ]] || { echo "$BENCH: the sandbox did not start" >&2; exit 1; }
api_port=$(grep -o 'server: https://127.0.0.1:[0-9]*' "$kc" | sed 's/.*://')
closed=$(free_port)
{
  sshd_port=$far_port bastion_profile wan "$bench_user"
  cat <<TOML
[profiles.wan.kube]
kubeconfig = "$kc"
[profiles.wan.services.grafana]
target = "127.0.0.1:$closed"
[profiles.wan.services.prometheus]
target = "127.0.0.1:$closed"
[profiles.wan.services.kibana]
target = "127.0.0.1:$closed"
TOML
} >"$work/config.toml"

mkdir -m 700 "$work/run"
ours="env -u SSH_AUTH_SOCK XDG_RUNTIME_DIR=$work/run PARAGON_ADMIN_CONFIG=$work/config.toml $BIN"
ssh_opts="-F none -i $work/id_ed25519 -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$work/known_hosts -p $far_port"
theirs="env -u SSH_AUTH_SOCK ssh $ssh_opts"
master="$work/cm"
stop_warm() {
  $ours agent stop >/dev/null 2>&1 || true
  # shellcheck disable=SC2086
  env -u SSH_AUTH_SOCK ssh $ssh_opts -o ControlPath="$master" -O exit "$bench_user@127.0.0.1" 2>/dev/null || true
  cleanup
}
trap stop_warm EXIT

measure() { hyperfine_median "$1" 1 "$RUNS" "${@:2}"; } # name command...
ms() { awk -v s="$1" 'BEGIN {printf "%.0f", s * 1000}'; }

# --- cold: a new connection each -----------------------------------------------------------
cold_ours=$(measure cold-ours "$ours --no-agent ssh -- true")
cold_theirs=$(measure cold-theirs "$theirs $bench_user@127.0.0.1 true")

# --- warm: our agent, OpenSSH's master -----------------------------------------------------
$ours ssh -- true
# shellcheck disable=SC2086
env -u SSH_AUTH_SOCK ssh $ssh_opts -o ControlMaster=yes -o ControlPath="$master" -o ControlPersist=yes -fN "$bench_user@127.0.0.1"
warm_ours=$(measure warm-ours "$ours ssh -- true")
warm_theirs=$(measure warm-theirs "$theirs -o ControlPath=$master $bench_user@127.0.0.1 true")

# --- health on PODS pods against kubectl's one list through ssh -L ---------------------------
tunnel_port=$(free_port)
# shellcheck disable=SC2086
env -u SSH_AUTH_SOCK ssh $ssh_opts -o ExitOnForwardFailure=yes -fN -o ControlPath="$master" \
  -L "$tunnel_port:127.0.0.1:$api_port" "$bench_user@127.0.0.1"
sed "s#server: https://127.0.0.1:$api_port#server: https://127.0.0.1:$tunnel_port#" "$kc" >"$work/kubeconfig.tunnel"
wait_port "$tunnel_port"
$ours --output json health -p wan >"$work/health.json" 2>"$work/health.err" || true
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert any(c["name"]=="pods" and c["status"]=="ok" for c in d["checks"]), d' "$work/health.json" \
  || { echo "$BENCH: health through the far bastion failed: $(cat "$work/health.err")" >&2; exit 1; }
health_ours=$(measure health-ours --ignore-failure "$ours --output json health -p wan")
health_theirs=$(measure health-theirs "kubectl --kubeconfig $work/kubeconfig.tunnel get pods -A -o json")

echo
echo "far bastion: $DELAY_MS ms each way (a ${DELAY_MS}+${DELAY_MS} ms round trip), median of $RUNS; load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '  cold ssh -- true:   paragon-admin --no-agent %6s ms   OpenSSH %6s ms   ratio %s (goal <= 0.7)\n' \
  "$(ms "$cold_ours")" "$(ms "$cold_theirs")" "$(ratio "$cold_ours" "$cold_theirs")"
printf '  warm ssh -- true:   paragon-admin (agent)    %6s ms   ControlMaster %6s ms   ratio %s\n' \
  "$(ms "$warm_ours")" "$(ms "$warm_theirs")" "$(ratio "$warm_ours" "$warm_theirs")"
printf '  %s pods:        paragon-admin health (agent) %6s ms   kubectl get pods -A -o json via ssh -L %6s ms   ratio %s (goal: health <= 1000 ms)\n' \
  "$PODS" "$(ms "$health_ours")" "$(ms "$health_theirs")" "$(ratio "$health_ours" "$health_theirs")"
