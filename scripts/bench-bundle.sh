#!/usr/bin/env bash
# Benchmarks `paragon-admin bundle` on a simulated installation of PODS pods over NODES nodes
# (default 10,000 over 500, with planted secrets in every log) through a real OpenSSH sshd on
# loopback, the default path first: the profile's warm agent. Prints the wall time and peak
# memory (max RSS, from /usr/bin/time -v) of each run, the bundle's size and file count, what
# the redactor hid, and each collector's outcome and time from the manifest.
#
# Usage: scripts/bench-bundle.sh   (env: PODS=10000 NODES=500 TIMEOUT=600
#                                     PARAGON_BIN=path to skip the release build)
set -euo pipefail
cd "$(dirname "$0")/.."

PODS=${PODS:-10000}
NODES=${NODES:-500}
TIMEOUT=${TIMEOUT:-600}

[[ -x /usr/sbin/sshd ]] || { echo "bench-bundle: /usr/sbin/sshd is missing (apt-get install openssh-server)" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "bench-bundle: /usr/bin/time is missing (apt-get install time)" >&2; exit 1; }

BENCH=bench-bundle
# shellcheck source=bench-common.sh source-path=SCRIPTDIR
source "$(dirname "$0")/bench-common.sh"
# The agent's socket in the work folder: it leaves when the folder goes (on exit).
export XDG_RUNTIME_DIR=$work/run
mkdir -m 0700 "$XDG_RUNTIME_DIR"

if [[ -z "${PARAGON_BIN:-}" ]]; then
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
  cargo build --release --quiet --bin paragon-admin
  cp "$CARGO_TARGET_DIR/release/paragon-admin" "$work/paragon-admin"
  PARAGON_BIN=$work/paragon-admin
fi
"$PARAGON_BIN" bundle --help >/dev/null || { echo "bench-bundle: $PARAGON_BIN has no bundle command" >&2; exit 1; }

kc=$work/kubeconfig
"$PARAGON_BIN" --quiet sandbox --listen 127.0.0.1:0 --nodes "$NODES" --pods "$PODS" \
  --fault log-secrets --kubeconfig-out "$kc" >/dev/null &
pids+=($!)
for _ in $(seq 600); do [[ -s $kc ]] && break; sleep 0.1; done
[[ -s $kc ]] || { echo "bench-bundle: the sandbox did not start" >&2; exit 1; }

start_sshd
{
  bastion_profile ssh
  cat <<EOF2
[profiles.ssh.kube]
kubeconfig = "$kc"
EOF2
} >"$work/config.toml"

wall() { awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,p,":"); s=0; for(i=1;i<=n;i++) s=s*60+p[i]; print s}' "$1"; }
rss_mb() { awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2/1024}' "$1"; }

run() { # name, extra flags...
  local name=$1; shift
  /usr/bin/time -v -o "$work/$name.time" "$PARAGON_BIN" --config "$work/config.toml" -p ssh "$@" \
    --output json bundle --file "$work/$name.tar.gz" --timeout "$TIMEOUT" \
    >"$work/$name.out" 2>"$work/$name.err" || true
  [[ -s $work/$name.tar.gz ]] || { echo "bench-bundle: no bundle ($name): $(cat "$work/$name.err")" >&2; exit 1; }
}

# The default path: the agent, warmed by one command first (its SSH handshake paid once).
"$PARAGON_BIN" --config "$work/config.toml" -p ssh ssh -- true >/dev/null 2>&1 || true
run agent
run own --no-agent

echo "sandbox: $PODS pods on $NODES nodes, planted secrets in every log; bundle through sshd"
printf '%-34s %10s %14s %12s\n' "" "wall (s)" "peak RSS (MB)" "bundle (MB)"
for name in agent own; do
  label=$([[ $name == agent ]] && echo "bundle (warm agent, the default)" || echo "bundle --no-agent")
  size=$(python3 -c "import os,sys; print(f'{os.path.getsize(sys.argv[1])/1048576:.1f}')" "$work/$name.tar.gz")
  printf '%-34s %10.2f %14s %12s\n' "$label" "$(wall "$work/$name.time")" "$(rss_mb "$work/$name.time")" "$size"
done
python3 - "$work/agent.out" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
files = d["files"]
hidden = {}
for f in files:
    for rule, n in f.get("redactions", {}).items():
        hidden[rule] = hidden.get(rule, 0) + n
logs = sum(1 for f in files if f["path"].startswith("logs/"))
print(f"files: {len(files)} ({logs} logs); hidden: " + ", ".join(f"{k} {v}" for k, v in sorted(hidden.items())))
for c in d["manifest"]["collectors"]:
    print(f"  {c['name']:<18} {c['outcome']:<9} {c['elapsed_ms']/1000:7.2f} s  {'; '.join(c.get('errors', []))[:80]}")
PY
