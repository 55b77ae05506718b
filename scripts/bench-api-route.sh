#!/usr/bin/env bash
# Benchmarks the API route (issues 12 and 25) in one run, over the same sshd (loopback), the
# same sandbox and the same Grafana-like server behind it:
#   - api:     `paragon-admin forward --via api 0:grafana`, the default path (the profile's
#              agent keeps the SSH session): SSH -> API server -> pods/portforward, each
#              connection a pair of SPDY streams in one kept WebSocket per pod
#              (SPDY/3.1+portforward.k8s.io; the listening line names the protocol taken)
#   - api-own: the same with --no-agent (the forward's own SSH session)
#   - bastion: `paragon-admin --no-agent forward PORT:127.0.0.1:POD_PORT`: SSH direct-tcpip
#   - kubectl: `kubectl port-forward svc/grafana` straight to the API server (no SSH; kubectl
#              1.31+ tunnels SPDY in a WebSocket the same way): the anchor
# Throughput: one 64 MiB download (curl), median of ROUNDS. Time to first byte of a new
# connection through an established forward: curl %{time_starttransfer} of /api/health,
# median of TTFB_RUNS. Prints the figures, the load average, and the ratios against kubectl
# (goals: first byte at most 1.5x, throughput at least 1.0x), and where the downloads' CPU
# went, per GiB: the route's own process (the forward, or kubectl), the agent, sshd, the
# sandbox, and the whole machine's busy and idle time (2 cores).
#
# Usage: scripts/bench-api-route.sh   (env: ROUNDS=5 TTFB_RUNS=40 PARAGON_BIN=path to skip the
#                                       release build)
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
TTFB_RUNS=${TTFB_RUNS:-40}
BYTES=$((64 << 20))

for cmd in curl python3 ssh-keygen kubectl ss; do
  command -v "$cmd" >/dev/null || { echo "bench-api-route: $cmd is missing" >&2; exit 1; }
done
[[ -x /usr/sbin/sshd ]] || { echo "bench-api-route: /usr/sbin/sshd is missing (apt-get install openssh-server)" >&2; exit 1; }

if [[ -z "${PARAGON_BIN:-}" ]]; then
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
  cargo build --release --quiet --bin paragon-admin
  PARAGON_BIN=$CARGO_TARGET_DIR/release/paragon-admin
fi

BENCH=bench-api-route
# shellcheck source=bench-common.sh source-path=SCRIPTDIR
source "$(dirname "$0")/bench-common.sh"
# The agent's socket in the work folder: it leaves when the folder goes (stopped on exit).
export XDG_RUNTIME_DIR=$work/run
mkdir -m 0700 "$XDG_RUNTIME_DIR"
wait_line() { # file pattern what
  for _ in $(seq 400); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "bench-api-route: $3 did not start" >&2; return 1
}

# --- the bastion: a real sshd on loopback -------------------------------------------------
start_sshd

# --- the sandbox (API server and monitoring pods) ---------------------------------------------
api_port=$(free_port)
HOME=$work "$PARAGON_BIN" --quiet sandbox --listen "127.0.0.1:$api_port" --kubeconfig-out "$work/kubeconfig" >/dev/null 2>"$work/sandbox.log" &
sandbox_pid=$!
pids+=($!)
wait_port "$api_port"
# The Grafana pod's own server: the sandbox's loopback listener that answers /api/health.
pod_port=
for port in $(ss -Hltnp | grep "pid=$sandbox_pid," | awk '{print $4}' | sed 's/.*://'); do
  [[ $port == "$api_port" ]] && continue
  if curl -s "http://127.0.0.1:$port/api/health" | grep -q '"database"'; then pod_port=$port; fi
done
[[ -n $pod_port ]] || { echo "bench-api-route: no Grafana server in the sandbox" >&2; exit 1; }

{
  bastion_profile bench
  cat <<CONFIG
[profiles.bench.kube]
kubeconfig = "$work/kubeconfig"
CONFIG
} >"$work/config.toml"

api_local=$(free_port) own_local=$(free_port) bastion_local=$(free_port)
declare -A client_pid
export PARAGON_ADMIN_CONFIG=$work/config.toml
stop_agent() {
  "$PARAGON_BIN" agent stop --all >/dev/null 2>&1 || true
  cleanup
}
trap stop_agent EXIT
"$PARAGON_BIN" forward --output json --via api "$api_local:grafana" >"$work/api.events" 2>"$work/api.log" &
pids+=($!) client_pid[api]=$!
"$PARAGON_BIN" --no-agent forward --output json --via api "$own_local:grafana" >"$work/api-own.events" 2>"$work/api-own.log" &
pids+=($!) client_pid[api-own]=$!
"$PARAGON_BIN" --no-agent forward --output json \
  "$bastion_local:127.0.0.1:$pod_port" >"$work/bastion.events" 2>"$work/bastion.log" &
pids+=($!) client_pid[bastion]=$!
kubectl --kubeconfig "$work/kubeconfig" -n paragon port-forward svc/grafana 0:4500 >"$work/kubectl.out" 2>"$work/kubectl.log" &
pids+=($!) client_pid[kubectl]=$!
wait_line "$work/api.events" '"route":"api"' "the API-route forward ($(cat "$work/api.log"))"
wait_line "$work/api-own.events" '"route":"api"' "the API-route forward with --no-agent ($(cat "$work/api-own.log"))"
wait_line "$work/bastion.events" '"listening"' "the bastion forward ($(cat "$work/bastion.log"))"
wait_line "$work/kubectl.out" 'Forwarding from 127.0.0.1:' "kubectl port-forward ($(cat "$work/kubectl.log"))"
kubectl_local=$(grep -o 'Forwarding from 127.0.0.1:[0-9]*' "$work/kubectl.out" | head -1 | sed 's/.*://')
protocol=$(grep -o '"protocol":"[a-z0-9-]*"' "$work/api.events" | head -1 | cut -d'"' -f4)

declare -A local_port=([api]=$api_local [api-own]=$own_local [bastion]=$bastion_local [kubectl]=$kubectl_local)
routes=(api api-own bastion kubectl)

# --- throughput ---------------------------------------------------------------------------
download() { curl -s -o /dev/null -w '%{speed_download}\n' "http://127.0.0.1:$1/sandbox/bytes/$BYTES"; }
for r in "${routes[@]}"; do download "${local_port[$r]}" >/dev/null; : >"$work/tp.$r"; done # warm up
# Where the CPU goes: each download's CPU time (utime + stime, in ticks of 1/100 s) of the
# route's client process (the forward, or kubectl), the agent, sshd (every sshd process on
# the machine: run this on an otherwise quiet one), the sandbox, and the whole machine's busy
# and idle time, summed per route. The machine's counters are read right before and after
# the download, with no process started in between, so the sampling is not counted.
agent_pid=$(pgrep -f -- "--profile bench" | head -1 || true)
ticks() { # PID... -> their CPU ticks, summed
  local t=0 p
  for p in "$@"; do
    [[ -r /proc/$p/stat ]] && t=$((t + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
  done
  echo "$t"
}
processes() { # route -> "client agent sshd sandbox" ticks now
  # shellcheck disable=SC2046 # one pid per word
  echo "$(ticks "${client_pid[$1]}") $(ticks "$agent_pid") $(ticks $(pgrep -x sshd)) $(ticks "$sandbox_pid")"
}
machine() { # -> busy and idle ticks now, in $busy and $idle (no process started)
  local _cpu user nice system idle_ iowait irq softirq steal _rest
  read -r _cpu user nice system idle_ iowait irq softirq steal _rest </proc/stat
  busy=$((user + nice + system + irq + softirq + steal)) idle=$((idle_ + iowait))
}
declare -A cpu
for r in "${routes[@]}"; do cpu[$r]="0 0 0 0 0 0"; done
for _ in $(seq "$ROUNDS"); do # interleaved, so that drift hits all alike
  for r in "${routes[@]}"; do
    before=$(processes "$r")
    machine
    busy0=$busy idle0=$idle
    download "${local_port[$r]}" >"$work/speed"
    machine
    after=$(processes "$r")
    awk '{printf "%.1f\n", $1 / 1048576}' "$work/speed" >>"$work/tp.$r"
    cpu[$r]=$(echo "${cpu[$r]} $before $after $((busy - busy0)) $((idle - idle0))" |
      awk '{for (i = 1; i <= 4; i++) printf "%d ", $i + $(i + 10) - $(i + 6); printf "%d %d", $5 + $15, $6 + $16}')
  done
done

# --- time to first byte -------------------------------------------------------------------
one_ttfb() { curl -s -o /dev/null -w '%{time_starttransfer}\n' "http://127.0.0.1:$1/api/health"; }
for r in "${routes[@]}"; do : >"$work/ttfb.$r"; done
for i in $(seq "$TTFB_RUNS"); do # rotating order
  for k in "${!routes[@]}"; do
    r=${routes[$(((i + k) % ${#routes[@]}))]}
    one_ttfb "${local_port[$r]}" >>"$work/ttfb.$r"
  done
done

declare -A tp ttfb
for r in "${routes[@]}"; do
  tp[$r]=$(median <"$work/tp.$r")
  ttfb[$r]=$(median <"$work/ttfb.$r" | awk '{printf "%.2f", $1 * 1000}')
  echo "$r MiB/s runs: $(tr '\n' ' ' <"$work/tp.$r")" >&2
  echo "$r first byte ms: $(awk '{printf "%.1f ", $1 * 1000}' "$work/ttfb.$r")" >&2
done
echo
echo "the API route's protocol: ${protocol:-none named}; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "one 64 MiB download, median of $ROUNDS (MiB/s, higher is better; goal api/kubectl >= 1.0)"
printf '  api %8s   api --no-agent %8s   bastion %8s   kubectl port-forward %8s   api/kubectl %s   api --no-agent/kubectl %s\n' \
  "${tp[api]}" "${tp[api-own]}" "${tp[bastion]}" "${tp[kubectl]}" "$(ratio "${tp[api]}" "${tp[kubectl]}")" "$(ratio "${tp[api-own]}" "${tp[kubectl]}")"
echo "CPU seconds per GiB downloaded (all $ROUNDS rounds; the route's own process is the forward, or kubectl)"
for r in "${routes[@]}"; do
  # shellcheck disable=SC2086 # six numbers
  set -- ${cpu[$r]}
  awk -v r="$r" -v n="$ROUNDS" -v c="$1" -v a="$2" -v s="$3" -v b="$4" -v busy="$5" -v idle="$6" 'BEGIN {
    k = 1024 / (n * 64) / 100
    printf "  %-8s its process %5.2f   agent %5.2f   sshd %5.2f   sandbox %5.2f   machine busy %5.2f, idle %5.2f\n",
      r, c * k, a * k, s * k, b * k, busy * k, idle * k }'
done
echo "time to first byte of a new connection, median of $TTFB_RUNS (ms, lower is better; goal api/kubectl <= 1.5)"
printf '  api %8s   api --no-agent %8s   bastion %8s   kubectl port-forward %8s   api/kubectl %s   api --no-agent/kubectl %s\n' \
  "${ttfb[api]}" "${ttfb[api-own]}" "${ttfb[bastion]}" "${ttfb[kubectl]}" "$(ratio "${ttfb[api]}" "${ttfb[kubectl]}")" "$(ratio "${ttfb[api-own]}" "${ttfb[kubectl]}")"
