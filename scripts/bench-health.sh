#!/usr/bin/env bash
# Benchmarks `paragon-admin health --local` against kubectl's one list of every pod, on the
# same sandbox in the same run: a simulated installation of PODS pods over NODES nodes
# (default 10,000 over 500). Wall time (median of ROUNDS) and peak memory (max RSS, from
# /usr/bin/time -v) of
#   paragon-admin health --local --kubeconfig K --output json   (the whole report)
#   kubectl get pods -A -o json                                  (one list)
# Prints both and the ratio paragon/kubectl (lower is better for both). Then the same report
# through a real OpenSSH sshd on loopback (every connection a direct-tcpip channel), to show
# what the tunnel costs: each run with a connection of its own (--no-agent), and through the
# profile's warm agent (the SSH handshake paid once, before the rounds).
#
# Usage: scripts/bench-health.sh   (env: PODS=10000 NODES=500 ROUNDS=3
#                                     PARAGON_BIN=path to skip the release build)
set -euo pipefail
cd "$(dirname "$0")/.."

PODS=${PODS:-10000}
NODES=${NODES:-500}
ROUNDS=${ROUNDS:-3}

[[ -x /usr/sbin/sshd ]] || { echo "bench-health: /usr/sbin/sshd is missing (apt-get install openssh-server)" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "bench-health: /usr/bin/time is missing (apt-get install time)" >&2; exit 1; }
command -v kubectl >/dev/null || { echo "bench-health: kubectl is missing" >&2; exit 1; }

BENCH=bench-health
# shellcheck source=bench-common.sh source-path=SCRIPTDIR
source "$(dirname "$0")/bench-common.sh"
# The warm-agent row's agent keeps its socket, lock and log in the work folder; it is stopped
# before the folder goes.
export XDG_RUNTIME_DIR=$work/run
mkdir -m 0700 "$XDG_RUNTIME_DIR"
stop_agent() {
  if [[ -n ${PARAGON_BIN:-} && -f $work/config.toml ]]; then
    "$PARAGON_BIN" --config "$work/config.toml" -p ssh agent stop >/dev/null 2>&1 || true
  fi
  cleanup
}
trap stop_agent EXIT

if [[ -z "${PARAGON_BIN:-}" ]]; then
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
  cargo build --release --quiet --bin paragon-admin
  # The target folder is shared: keep a copy of this build.
  cp "$CARGO_TARGET_DIR/release/paragon-admin" "$work/paragon-admin"
  PARAGON_BIN=$work/paragon-admin
fi
"$PARAGON_BIN" health --help >/dev/null || { echo "bench-health: $PARAGON_BIN has no health command" >&2; exit 1; }

# --- the sandbox -----------------------------------------------------------------------------
kc=$work/kubeconfig
start_sandbox "$kc" "$PODS" "$NODES"

# Monitoring targets on a closed loopback port (so grafana and prometheus fail at once, and
# kibana warns): the benchmark is about the cluster checks.
closed=$(free_port)
cat >"$work/config.toml" <<EOF2
[profiles.bench]
host = "bastion.invalid"
[profiles.bench.services.grafana]
target = "127.0.0.1:$closed"
[profiles.bench.services.prometheus]
target = "127.0.0.1:$closed"
[profiles.bench.services.kibana]
target = "127.0.0.1:$closed"
EOF2

# --- a bastion: a real sshd on loopback ----------------------------------------------------
start_sshd
bastion_profile ssh >>"$work/config.toml"
cat >>"$work/config.toml" <<EOF2
[profiles.ssh.kube]
kubeconfig = "$kc"
[profiles.ssh.services.grafana]
target = "127.0.0.1:$closed"
[profiles.ssh.services.prometheus]
target = "127.0.0.1:$closed"
[profiles.ssh.services.kibana]
target = "127.0.0.1:$closed"
EOF2

# Seconds from time -v's "Elapsed (wall clock) time (h:mm:ss or m:ss): M:SS.ss".
wall() { awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,p,":"); s=0; for(i=1;i<=n;i++) s=s*60+p[i]; print s}' "$1"; }
rss_kb() { awk -F': ' '/Maximum resident set size/ {print $2}' "$1"; }

measure() { # name, command...
  local name=$1; shift
  : >"$work/$name.walls"; : >"$work/$name.rss"
  for _ in $(seq "$ROUNDS"); do
    /usr/bin/time -v -o "$work/$name.time" "$@" >"$work/$name.out" 2>"$work/$name.err" || true
    wall "$work/$name.time" >>"$work/$name.walls"
    rss_kb "$work/$name.time" >>"$work/$name.rss"
  done
}

measure kubectl env KUBECONFIG="$kc" kubectl get pods -A -o json
pods_listed=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["items"]))' "$work/kubectl.out")
measure paragon "$PARAGON_BIN" --config "$work/config.toml" -p bench health --local --kubeconfig "$kc" --output json
measure tunnel "$PARAGON_BIN" --config "$work/config.toml" -p ssh --no-agent health --output json
"$PARAGON_BIN" --config "$work/config.toml" -p ssh health --output json >/dev/null 2>&1 || true
measure agent "$PARAGON_BIN" --config "$work/config.toml" -p ssh health --output json
summary=$(python3 - "$work/paragon.out" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
s = d["summary"]
pods = next(c["message"] for c in d["checks"] if c["name"] == "pods")
failed = sorted({c["name"] for c in d["checks"] if c["status"] == "fail"})
print(f"{s['fail']} failed ({', '.join(failed) or 'none'}), {s['warn']} warnings, {s['ok']} ok; pods check: {pods}")
PY
)

k_wall=$(median <"$work/kubectl.walls"); p_wall=$(median <"$work/paragon.walls")
k_rss=$(sort -g "$work/kubectl.rss" | tail -1); p_rss=$(sort -g "$work/paragon.rss" | tail -1)
t_wall=$(median <"$work/tunnel.walls"); t_rss=$(sort -g "$work/tunnel.rss" | tail -1)
a_wall=$(median <"$work/agent.walls"); a_rss=$(sort -g "$work/agent.rss" | tail -1)
for run in tunnel agent; do
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["checks"][0]["name"] and any(c["name"]=="pods" and c["status"]=="ok" for c in d["checks"]), "the report through sshd has no pods result"' "$work/$run.out" \
    || { echo "bench-health: the report through sshd ($run) failed: $(cat "$work/$run.err")" >&2; exit 1; }
done

echo "sandbox: $PODS pods on $NODES nodes; $ROUNDS rounds each (median wall, max RSS)"
echo "kubectl get pods -A -o json:        listed $pods_listed pods"
echo "paragon-admin health --local:       $summary"
printf '%-36s %10s %12s\n' "" "wall (s)" "peak RSS (MB)"
printf '%-36s %10.2f %12.1f\n' "kubectl get pods -A -o json" "$k_wall" "$(echo "$k_rss/1024" | bc -l)"
printf '%-36s %10.2f %12.1f\n' "paragon-admin health (whole report)" "$p_wall" "$(echo "$p_rss/1024" | bc -l)"
printf '%-36s %10.2f %12.1f\n' "paragon-admin health through sshd" "$t_wall" "$(echo "$t_rss/1024" | bc -l)"
printf '%-36s %10.2f %12.1f\n' "  the same through the warm agent" "$a_wall" "$(echo "$a_rss/1024" | bc -l)"
printf 'ratio paragon/kubectl: wall %.2f, peak memory %.2f\n' \
  "$(echo "$p_wall/$k_wall" | bc -l)" "$(echo "$p_rss/$k_rss" | bc -l)"
printf 'ratio through sshd/kubectl (direct): wall %.2f, peak memory %.2f\n' \
  "$(echo "$t_wall/$k_wall" | bc -l)" "$(echo "$t_rss/$k_rss" | bc -l)"
printf 'ratio warm agent/own connection: wall %.2f\n' "$(echo "$a_wall/$t_wall" | bc -l)"
