#!/usr/bin/env bash
# Benchmarks `paragon-admin forward` against OpenSSH's `ssh -L` over the same path in the same
# run: the same sshd (loopback), the same client key, the same target.
#   - throughput of one forwarded TCP stream (iperf3, both directions, median of ROUNDS runs)
#   - time to first byte of a new connection through an established forward
#     (curl %{time_starttransfer} against a local HTTP server, median of TTFB_RUNS)
# Prints both and the ratio paragon/OpenSSH (throughput: higher is better; TTFB: lower is).
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

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() { # port
  for _ in $(seq 200); do
    python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2).close()" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench-forward: nothing listens on $1" >&2; return 1
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# --- the bastion: a real sshd on loopback -------------------------------------------------
mkdir -p /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$work/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$work/id_ed25519"
cp "$work/id_ed25519.pub" "$work/authorized_keys"
started=
for _ in $(seq 20); do
  sshd_port=$(free_port)
  cat >"$work/sshd_config" <<EOF
Port $sshd_port
ListenAddress 127.0.0.1
HostKey $work/host_key
AuthorizedKeysFile $work/authorized_keys
UsePAM no
StrictModes no
PidFile none
PermitRootLogin prohibit-password
PasswordAuthentication no
AllowTcpForwarding yes
LogLevel ERROR
EOF
  /usr/sbin/sshd -D -e -f "$work/sshd_config" 2>"$work/sshd.log" &
  pid=$!
  if wait_port "$sshd_port" 2>/dev/null; then pids+=("$pid"); started=1; break; fi
  kill "$pid" 2>/dev/null || true
done
[[ -n $started ]] || { echo "bench-forward: sshd did not start: $(cat "$work/sshd.log")" >&2; exit 1; }
echo "[127.0.0.1]:$sshd_port $(cut -d' ' -f1,2 "$work/host_key.pub")" >"$work/known_hosts"

# --- the targets: iperf3 and an HTTP server -----------------------------------------------
iperf_port=$(free_port)
iperf3 -s -B 127.0.0.1 -p "$iperf_port" >/dev/null 2>&1 &
pids+=($!)
mkdir "$work/site"
head -c 1024 /dev/urandom >"$work/site/small"
http_port=$(free_port)
(cd "$work/site" && exec python3 -m http.server "$http_port" --bind 127.0.0.1 >/dev/null 2>&1) &
pids+=($!)
wait_port "$iperf_port"
wait_port "$http_port"

# --- the two forwards ---------------------------------------------------------------------
ssh_iperf=$(free_port)
ssh_http=$(free_port)
ssh -N -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$work/known_hosts" \
  -o ExitOnForwardFailure=yes -i "$work/id_ed25519" -p "$sshd_port" \
  -L "$ssh_iperf:127.0.0.1:$iperf_port" -L "$ssh_http:127.0.0.1:$http_port" root@127.0.0.1 &
pids+=($!)

cat >"$work/config.toml" <<EOF
[profiles.bench]
host = "127.0.0.1"
port = $sshd_port
user = "root"
identity_file = "$work/id_ed25519"
known_hosts = "$work/known_hosts"
strict_host_key_checking = "yes"
EOF
pa_iperf=$(free_port)
pa_http=$(free_port)
PARAGON_ADMIN_CONFIG="$work/config.toml" "$PARAGON_BIN" forward --output json \
  "$pa_iperf:127.0.0.1:$iperf_port" "$pa_http:127.0.0.1:$http_port" >"$work/events" 2>"$work/paragon.log" &
pids+=($!)
wait_port "$ssh_iperf"
wait_port "$ssh_http"
for _ in $(seq 200); do grep -q "\"local\":\"127.0.0.1:$pa_http\"" "$work/events" && break; sleep 0.05; done
grep -q "\"local\":\"127.0.0.1:$pa_http\"" "$work/events" || { echo "bench-forward: paragon-admin did not start: $(cat "$work/paragon.log")" >&2; exit 1; }

# --- throughput -----------------------------------------------------------------------------
gbits() { # port [extra iperf3 args] -> Gbit/s received
  iperf3 -c 127.0.0.1 -p "$1" -t "$SECONDS_PER_RUN" -J "${@:2}" |
    python3 -c 'import json,sys; print("%.3f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))'
}
declare -A tp
for dir in up down; do
  args=()
  [[ $dir == down ]] && args=(-R)
  ssh_runs=() pa_runs=()
  for _ in $(seq "$ROUNDS"); do # alternate, so that drift hits both alike
    ssh_runs+=("$(gbits "$ssh_iperf" "${args[@]}")")
    pa_runs+=("$(gbits "$pa_iperf" "${args[@]}")")
  done
  tp[ssh_$dir]=$(printf '%s\n' "${ssh_runs[@]}" | median)
  tp[pa_$dir]=$(printf '%s\n' "${pa_runs[@]}" | median)
  echo "throughput $dir runs (Gbit/s): openssh ${ssh_runs[*]} | paragon ${pa_runs[*]}" >&2
done

# --- time to first byte -------------------------------------------------------------------
ttfb() { # port -> median ms
  for _ in $(seq "$TTFB_RUNS"); do
    curl -s -o /dev/null -w '%{time_starttransfer}\n' "http://127.0.0.1:$1/small"
  done | median | awk '{printf "%.2f", $1*1000}'
}
ttfb "$ssh_http" >/dev/null # warm both paths
ttfb "$pa_http" >/dev/null
ssh_ttfb=$(ttfb "$ssh_http")
pa_ttfb=$(ttfb "$pa_http")
direct_ttfb=$(ttfb "$http_port")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}'; }
echo
echo "one TCP stream through the forward, median of $ROUNDS x ${SECONDS_PER_RUN}s (Gbit/s; ratio = paragon/openssh, >= 1.0 is as fast)"
printf '  %-26s openssh %7s   paragon %7s   ratio %s\n' "upload (client -> target)" "${tp[ssh_up]}" "${tp[pa_up]}" "$(ratio "${tp[pa_up]}" "${tp[ssh_up]}")"
printf '  %-26s openssh %7s   paragon %7s   ratio %s\n' "download (target -> client)" "${tp[ssh_down]}" "${tp[pa_down]}" "$(ratio "${tp[pa_down]}" "${tp[ssh_down]}")"
echo "time to first byte of a new connection, median of $TTFB_RUNS (ms; ratio = paragon/openssh, <= 1.0 is as fast)"
printf '  %-26s openssh %7s   paragon %7s   ratio %s   (direct, no tunnel: %s)\n' "1 KiB HTTP GET" "$ssh_ttfb" "$pa_ttfb" "$(ratio "$pa_ttfb" "$ssh_ttfb")" "$direct_ttfb"
