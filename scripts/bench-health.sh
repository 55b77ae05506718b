#!/usr/bin/env bash
# Benchmarks `paragon-admin health --local` against kubectl's one list of every pod, on the
# same sandbox in the same run: a simulated installation of PODS pods over NODES nodes
# (default 10,000 over 500). Wall time (median of ROUNDS) and peak memory (max RSS, from
# /usr/bin/time -v) of
#   paragon-admin health --local --kubeconfig K --output json   (the whole report)
#   kubectl get pods -A -o json                                  (one list)
# Prints both and the ratio paragon/kubectl (lower is better for both).
#
# Usage: scripts/bench-health.sh   (env: PODS=10000 NODES=500 ROUNDS=3
#                                     PARAGON_BIN=path to skip the release build)
set -euo pipefail
cd "$(dirname "$0")/.."

PODS=${PODS:-10000}
NODES=${NODES:-500}
ROUNDS=${ROUNDS:-3}

[[ -x /usr/bin/time ]] || { echo "bench-health: /usr/bin/time is missing (apt-get install time)" >&2; exit 1; }
command -v kubectl >/dev/null || { echo "bench-health: kubectl is missing" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

if [[ -z "${PARAGON_BIN:-}" ]]; then
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target}
  cargo build --release --quiet --bin paragon-admin
  # The target folder is shared: keep a copy of this build.
  cp "$CARGO_TARGET_DIR/release/paragon-admin" "$work/paragon-admin"
  PARAGON_BIN=$work/paragon-admin
fi
"$PARAGON_BIN" health --help >/dev/null || { echo "bench-health: $PARAGON_BIN has no health command" >&2; exit 1; }

# --- the sandbox -----------------------------------------------------------------------------
kc=$work/kubeconfig
"$PARAGON_BIN" --quiet sandbox --listen 127.0.0.1:0 --nodes "$NODES" --pods "$PODS" \
  --kubeconfig-out "$kc" >/dev/null &
pids+=($!)
for _ in $(seq 600); do [[ -s $kc ]] && break; sleep 0.1; done
[[ -s $kc ]] || { echo "bench-health: the sandbox did not start" >&2; exit 1; }

# Monitoring targets on a closed loopback port (so grafana and prometheus fail at once, and
# kibana warns): the benchmark is about the cluster checks.
closed=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
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

# Seconds from time -v's "Elapsed (wall clock) time (h:mm:ss or m:ss): M:SS.ss".
wall() { awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,p,":"); s=0; for(i=1;i<=n;i++) s=s*60+p[i]; print s}' "$1"; }
rss_kb() { awk -F': ' '/Maximum resident set size/ {print $2}' "$1"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

measure() { # name, command...
  local name=$1; shift
  : >"$work/$name.walls"; : >"$work/$name.rss"
  for r in $(seq "$ROUNDS"); do
    /usr/bin/time -v -o "$work/$name.time" "$@" >"$work/$name.out" 2>"$work/$name.err" || true
    wall "$work/$name.time" >>"$work/$name.walls"
    rss_kb "$work/$name.time" >>"$work/$name.rss"
  done
}

measure kubectl env KUBECONFIG="$kc" kubectl get pods -A -o json
pods_listed=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["items"]))' "$work/kubectl.out")
measure paragon "$PARAGON_BIN" --config "$work/config.toml" health --local --kubeconfig "$kc" --output json
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

echo "sandbox: $PODS pods on $NODES nodes; $ROUNDS rounds each (median wall, max RSS)"
echo "kubectl get pods -A -o json:        listed $pods_listed pods"
echo "paragon-admin health --local:       $summary"
printf '%-36s %10s %12s\n' "" "wall (s)" "peak RSS (MB)"
printf '%-36s %10.2f %12.1f\n' "kubectl get pods -A -o json" "$k_wall" "$(echo "$k_rss/1024" | bc -l)"
printf '%-36s %10.2f %12.1f\n' "paragon-admin health (whole report)" "$p_wall" "$(echo "$p_rss/1024" | bc -l)"
printf 'ratio paragon/kubectl: wall %.2f, peak memory %.2f\n' \
  "$(echo "$p_wall/$k_wall" | bc -l)" "$(echo "$p_rss/$k_rss" | bc -l)"
