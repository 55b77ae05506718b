#!/usr/bin/env bash
# Benchmarks `paragon-admin forward` against OpenSSH's `ssh -L` over the same path in the same
# run: the same sshd (loopback), the same client key, the same target.
#   - throughput of one forwarded TCP stream (iperf3, both directions, median of ROUNDS runs)
#   - time to first byte of a new connection through an established forward
#     (curl %{time_starttransfer} against a local HTTP server, median of TTFB_RUNS)
# Prints both and the ratio paragon/OpenSSH (throughput: higher is better; TTFB: lower is), for
# paragon-admin on a session of its own (--no-agent) and through the profile's agent.
#
# Usage: scripts/bench-forward.sh   (env: SECONDS_PER_RUN=5 ROUNDS=3 TTFB_RUNS=60
#                                     PARAGON_BIN=path to skip the release build)
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
ROUNDS=${ROUNDS:-3}
TTFB_RUNS=${TTFB_RUNS:-60}

for cmd in iperf3 curl python3 ssh ssh-keygen; do
  command -v "$cmd" >/dev/null || { echo "bench-forward: $cmd is missing (apt-get install iperf3 curl openssh-client)" >&2; exit 1; }
done
[[ -x /usr/sbin/sshd ]] || { echo "bench-forward: /usr/sbin/sshd is missing (apt-get install openssh-server)" >&2; exit 1; }

if [[ -z "${PARAGON_BIN:-}" ]]; then
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target}
  cargo build --release --quiet --bin paragon-admin
  PARAGON_BIN=$CARGO_TARGET_DIR/release/paragon-admin
fi

BENCH=bench-forward
# shellcheck source=bench-common.sh source-path=SCRIPTDIR
source "$(dirname "$0")/bench-common.sh"

# --- the bastion: a real sshd on loopback -------------------------------------------------
start_sshd

# --- the targets: iperf3 and an HTTP server -----------------------------------------------
iperf_port=$(free_port)
iperf3 -s -B 127.0.0.1 -p "$iperf_port" >/dev/null 2>&1 &
pids+=($!)
mkdir "$work/site"
head -c 1024 /dev/urandom >"$work/site/small"
# One HTTP server per path, so that one path's lingering connections never slow another's.
http_server() {
  (cd "$work/site" && exec python3 -m http.server "$1" --bind 127.0.0.1 >/dev/null 2>&1) &
  pids+=($!)
}
http_port=$(free_port) http_pa_port=$(free_port) http_direct_port=$(free_port)
for p in "$http_port" "$http_pa_port" "$http_direct_port"; do http_server "$p"; done
wait_port "$iperf_port"
for p in "$http_port" "$http_pa_port" "$http_direct_port"; do wait_port "$p"; done

# --- the forwards ---------------------------------------------------------------------------
# OpenSSH as users run it (its default cipher), and OpenSSH with the cipher paragon-admin
# negotiates on a CPU with AES instructions, for a like-for-like comparison.
ssh_forward() { # local-iperf-port local-http-port [ssh options]
  ssh -N -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$work/known_hosts" \
    -o ExitOnForwardFailure=yes -i "$work/id_ed25519" -p "$sshd_port" "${@:3}" \
    -L "$1:127.0.0.1:$iperf_port" -L "$2:127.0.0.1:$http_port" root@127.0.0.1 &
  pids+=($!)
}
ssh_iperf=$(free_port) ssh_http=$(free_port)
ssh_forward "$ssh_iperf" "$ssh_http"
ssh_pid=$!
gcm_iperf=$(free_port) gcm_http=$(free_port)
ssh_forward "$gcm_iperf" "$gcm_http" -c aes256-gcm@openssh.com
gcm_pid=$!

bastion_profile bench >"$work/config.toml"
# The agent's socket lives in $work: it leaves when the run's folder is removed.
export XDG_RUNTIME_DIR=$work/run
mkdir -m 0700 "$XDG_RUNTIME_DIR"
paragon_forward() { # name local-iperf-port local-http-port http-target-port [global flags]
  PARAGON_ADMIN_CONFIG="$work/config.toml" "$PARAGON_BIN" "${@:5}" forward --output json \
    "$2:127.0.0.1:$iperf_port" "$3:127.0.0.1:$4" >"$work/$1.events" 2>"$work/$1.log" &
  pids+=($!)
}
wait_listening() { # name local-http-port
  for _ in $(seq 200); do grep -q "\"local\":\"127.0.0.1:$2\"" "$work/$1.events" && break; sleep 0.05; done
  grep -q "\"local\":\"127.0.0.1:$2\"" "$work/$1.events" || { echo "bench-forward: paragon-admin ($1) did not start: $(cat "$work/$1.log")" >&2; exit 1; }
}
# paragon-admin on a session of its own (--no-agent), and through the profile's agent (the
# default): there each accepted connection is handed to the agent, which copies it itself.
pa_iperf=$(free_port) pa_http=$(free_port)
paragon_forward pa "$pa_iperf" "$pa_http" "$http_pa_port" --no-agent
pa_pid=$!
http_agent_port=$(free_port)
http_server "$http_agent_port"
wait_port "$http_agent_port"
ag_iperf=$(free_port) ag_http=$(free_port)
paragon_forward ag "$ag_iperf" "$ag_http" "$http_agent_port"
ag_forward_pid=$!
wait_port "$ssh_iperf"
wait_port "$gcm_iperf"
wait_listening pa "$pa_http"
wait_listening ag "$ag_http"
# The agent's process moves the bytes on that path: its CPU is counted with the forward's.
ag_pid=$(PARAGON_ADMIN_CONFIG="$work/config.toml" "$PARAGON_BIN" agent status --output json |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["pid"])')

# --- throughput -----------------------------------------------------------------------------
# Gbit/s is what users see, but it swings with whatever else runs on the machine; the
# client's CPU seconds per GiB moved (from /proc) stays steady, and says the same when idle.
cpu_of() { # pid... -> CPU seconds of them all
  local p total=0
  for p in "$@"; do total=$(awk -v t="$total" '{print t + ($14 + $15) / 100}' "/proc/$p/stat"); done
  echo "$total"
}
measure() { # "client-pid..." port [iperf3 args] -> "Gbit/s cpu-s/GiB"
  local before after
  # shellcheck disable=SC2086 # one or more pids
  before=$(cpu_of $1)
  iperf3 -c 127.0.0.1 -p "$2" -t "$SECONDS_PER_RUN" -J "${@:3}" >"$work/iperf.json"
  # shellcheck disable=SC2086
  after=$(cpu_of $1)
  python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))["end"]["sum_received"]
print("%.3f %.3f" % (r["bits_per_second"] / 1e9, (float(sys.argv[3]) - float(sys.argv[2])) / (r["bytes"] / 2**30)))' \
    "$work/iperf.json" "$before" "$after"
  sleep 0.3 # the iperf3 server takes one test at a time
}
declare -A tp cpu
for dir in up down; do
  args=()
  [[ $dir == down ]] && args=(-R)
  for who in ssh gcm pa ag; do : >"$work/$who.$dir"; done
  for _ in $(seq "$ROUNDS"); do # interleaved, so that drift hits all alike
    measure "$ssh_pid" "$ssh_iperf" "${args[@]}" >>"$work/ssh.$dir"
    measure "$gcm_pid" "$gcm_iperf" "${args[@]}" >>"$work/gcm.$dir"
    measure "$pa_pid" "$pa_iperf" "${args[@]}" >>"$work/pa.$dir"
    measure "$ag_forward_pid $ag_pid" "$ag_iperf" "${args[@]}" >>"$work/ag.$dir"
  done
  for who in ssh gcm pa ag; do
    tp[$who.$dir]=$(cut -d' ' -f1 "$work/$who.$dir" | median)
    cpu[$who.$dir]=$(cut -d' ' -f2 "$work/$who.$dir" | median)
    echo "$dir $who runs (Gbit/s cpu-s/GiB): $(tr '\n' ';' <"$work/$who.$dir")" >&2
  done
done

# --- time to first byte -------------------------------------------------------------------
one_ttfb() { curl -s -o /dev/null -w '%{time_starttransfer}\n' "http://127.0.0.1:$1/small"; }
for _ in $(seq 5); do one_ttfb "$ssh_http"; one_ttfb "$pa_http"; one_ttfb "$ag_http"; one_ttfb "$http_direct_port"; done >/dev/null # warm up
: >"$work/ttfb_ssh"; : >"$work/ttfb_pa"; : >"$work/ttfb_ag"; : >"$work/ttfb_direct"
for i in $(seq "$TTFB_RUNS"); do # interleaved, in rotating order, so that load from elsewhere hits all alike
  order=(ssh pa ag direct)
  for k in 0 1 2 3; do
    case ${order[$(((i + k) % 4))]} in
      ssh) one_ttfb "$ssh_http" >>"$work/ttfb_ssh" ;;
      pa) one_ttfb "$pa_http" >>"$work/ttfb_pa" ;;
      ag) one_ttfb "$ag_http" >>"$work/ttfb_ag" ;;
      direct) one_ttfb "$http_direct_port" >>"$work/ttfb_direct" ;;
    esac
  done
done
ms() { median <"$1" | awk '{printf "%.2f", $1*1000}'; }
ssh_ttfb=$(ms "$work/ttfb_ssh")
pa_ttfb=$(ms "$work/ttfb_pa")
ag_ttfb=$(ms "$work/ttfb_ag")
direct_ttfb=$(ms "$work/ttfb_direct")

# paragon-admin offers AES-256-GCM first when the CPU has AES and carry-less multiply.
if grep -qw aes /proc/cpuinfo && grep -qw pclmulqdq /proc/cpuinfo; then
  pa_cipher=aes256-gcm@openssh.com
else
  pa_cipher=chacha20-poly1305@openssh.com
fi
echo
echo "one TCP stream through the forward, median of $ROUNDS x ${SECONDS_PER_RUN}s (paragon-admin negotiated ${pa_cipher:-?};"
echo "OpenSSH's default is chacha20-poly1305)"
echo "  Gbit/s, higher is better; ratio = paragon / openssh as users run it (>= 1.0: as fast)"
for dir in up down; do
  label=$([[ $dir == up ]] && echo "upload (client -> target)" || echo "download (target -> client)")
  printf '    %-28s openssh %6s   openssh -c aes256-gcm %6s   paragon %6s   ratio %s (same cipher: %s)\n' "$label" \
    "${tp[ssh.$dir]}" "${tp[gcm.$dir]}" "${tp[pa.$dir]}" \
    "$(ratio "${tp[pa.$dir]}" "${tp[ssh.$dir]}")" "$(ratio "${tp[pa.$dir]}" "${tp[gcm.$dir]}")"
  printf '    %-28s paragon through the agent %6s   ratio to openssh %s (to paragon --no-agent: %s)\n' "" \
    "${tp[ag.$dir]}" "$(ratio "${tp[ag.$dir]}" "${tp[ssh.$dir]}")" "$(ratio "${tp[ag.$dir]}" "${tp[pa.$dir]}")"
done
echo "  client CPU seconds per GiB moved, lower is better (steady when the machine is busy)"
for dir in up down; do
  label=$([[ $dir == up ]] && echo "upload" || echo "download")
  printf '    %-28s openssh %6s   openssh -c aes256-gcm %6s   paragon %6s   through the agent (both processes) %6s\n' "$label" \
    "${cpu[ssh.$dir]}" "${cpu[gcm.$dir]}" "${cpu[pa.$dir]}" "${cpu[ag.$dir]}"
done
echo "time to first byte of a new connection, median of $TTFB_RUNS (ms; ratio = paragon / openssh, <= 1.0: as fast)"
printf '    %-28s openssh %6s   paragon %6s   ratio %s   (direct, no tunnel: %s)\n' "1 KiB HTTP GET" \
  "$ssh_ttfb" "$pa_ttfb" "$(ratio "$pa_ttfb" "$ssh_ttfb")" "$direct_ttfb"
printf '    %-28s paragon through the agent %6s   ratio to openssh %s\n' "" \
  "$ag_ttfb" "$(ratio "$ag_ttfb" "$ssh_ttfb")"
