#!/usr/bin/env bash
# Soak: does a forward's memory stay flat over many connections? Against OpenSSH in the same run.
#   forward    N HTTP GETs of a 64 KiB file (16 parallel clients) through `paragon-admin forward`
#              and through `ssh -L`, over the same loopback sshd, key and HTTP server
#   socks      the same through `paragon-admin forward --socks` and `ssh -D`
#   agent      the same through a foreground `paragon-admin forward` that hands its connections
#              to the profile's agent (the default path), the RSS of both processes together
#   exec       EXECS commands on one session (`Bastion::exec_capture`, benches/soak_exec.rs) and
#              as many on one `ssh -M` ControlMaster, as a user created for the run (removed
#              after) whose login shell is /bin/sh, so that each command costs a fork, not a
#              login shell's start-up
#   reconnect  RECONNECTS sessions replaced one after the other in one process
# Prints RSS at start, after the warm-up and at the end, the growth per 1,000 connections after
# the warm-up, how many bodies (outputs) came back intact, and paragon-admin's figures over
# OpenSSH's. Target (issue 14): at most 1 MB of growth per 10,000 connections after the
# warm-up, and every body intact.
#
# Usage: scripts/soak-forward.sh   (env: PARTS="forward socks agent exec reconnect" to run some,
#                                    CONNECTIONS=50000 WARMUP=2000 THREADS=16 EXECS=10000
#                                    RECONNECTS=100, PARAGON_BIN=path SOAK_EXEC_BIN=path to skip
#                                    the builds, HEAPTRACK=1 to run paragon-admin under heaptrack)
#   The exec part creates a user (useradd), so it runs as root.
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS=${CONNECTIONS:-50000}
WARMUP=${WARMUP:-2000}
THREADS=${THREADS:-16}
EXECS=${EXECS:-10000}
RECONNECTS=${RECONNECTS:-100}
PARTS=${PARTS:-forward socks agent exec reconnect}
part() { [[ " $PARTS " == *" $1 "* ]]; }
for p in $PARTS; do
  case $p in forward | socks | agent | exec | reconnect) ;; *) echo "soak-forward: unknown part '$p' in PARTS (forward socks agent exec reconnect)" >&2; exit 2 ;; esac
done
if part exec && [[ $(id -u) -ne 0 ]]; then
  echo "soak-forward: the exec part creates a user for the run: run as root, or leave exec out of PARTS" >&2
  exit 2
fi

for cmd in python3 ssh ssh-keygen; do
  command -v "$cmd" >/dev/null || { echo "soak-forward: $cmd is missing (apt-get install python3 openssh-client)" >&2; exit 1; }
done
[[ -x /usr/sbin/sshd ]] || { echo "soak-forward: /usr/sbin/sshd is missing (apt-get install openssh-server)" >&2; exit 1; }

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target}
if [[ -z "${PARAGON_BIN:-}" ]]; then
  cargo build --release --quiet --bin paragon-admin
  PARAGON_BIN=$CARGO_TARGET_DIR/release/paragon-admin
fi
if [[ -z "${SOAK_EXEC_BIN:-}" ]] && { part exec || part reconnect; }; then
  cargo build --release --quiet --bench soak_exec
  SOAK_EXEC_BIN=$(find "$CARGO_TARGET_DIR/release/deps" -maxdepth 1 -type f -executable -name 'soak_exec-*' -printf '%T@ %p\n' | sort -n | tail -1 | cut -d' ' -f2)
fi

BENCH=soak-forward
# shellcheck source=bench-common.sh source-path=SCRIPTDIR
source "$(dirname "$0")/bench-common.sh"

# --- the bastion: a real sshd on loopback -------------------------------------------------
start_sshd "MaxSessions 100"
if part exec; then
  sh_user pa-soak
  bastion_profile soak "$bench_user" >"$work/config-exec.toml"
fi
bastion_profile soak >"$work/config.toml"

# --- the target: an HTTP server with a 64 KiB file ------------------------------------------
mkdir "$work/site"
head -c 65536 /dev/urandom >"$work/site/body"
http_port=$(free_port)
(cd "$work/site" && exec python3 -m http.server "$http_port" --bind 127.0.0.1 >/dev/null 2>&1) &
pids+=($!)
wait_port "$http_port"

soak() { # label "pid..." local-port [--socks HOST:PORT]
  # shellcheck disable=SC2086 # one or more pids
  python3 scripts/soak-forward.py --port "$3" --pid $2 --file "$work/site/body" --path body \
    --connections "$CONNECTIONS" --warmup "$WARMUP" --threads "$THREADS" "${@:4}" >"$work/$1.json"
}
# --- paragon-admin forward (tunnel and SOCKS in one process) and OpenSSH's -L and -D ----------
pa_port=$(free_port) pa_socks=$(free_port)
runner=()
[[ -n "${HEAPTRACK:-}" ]] && runner=(heaptrack -o "$work/heaptrack")
# Its own session (--no-agent): through the agent the connections' memory would be the
# agent's, not this process's.
PARAGON_ADMIN_CONFIG="$work/config.toml" "${runner[@]}" "$PARAGON_BIN" --no-agent forward --output json \
  --socks "$pa_socks" "$pa_port:127.0.0.1:$http_port" >"$work/events" 2>"$work/paragon.log" &
pa_runner=$!
pids+=($!)
for _ in $(seq 400); do grep -q "\"local\":\"127.0.0.1:$pa_port\"" "$work/events" 2>/dev/null && break; sleep 0.05; done
grep -q "\"local\":\"127.0.0.1:$pa_port\"" "$work/events" || { echo "soak-forward: paragon-admin did not start: $(cat "$work/paragon.log")" >&2; exit 1; }
pa_pid=$(pgrep -n -f -- "forward --output json --socks $pa_socks")

ssh_port=$(free_port) ssh_socks=$(free_port)
ssh -N -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$work/known_hosts" \
  -o ExitOnForwardFailure=yes -i "$work/id_ed25519" -p "$sshd_port" \
  -L "$ssh_port:127.0.0.1:$http_port" -D "127.0.0.1:$ssh_socks" root@127.0.0.1 &
ssh_pid=$!
pids+=($!)
wait_port "$ssh_port"
wait_port "$ssh_socks"

echo "soak: $CONNECTIONS connections of 64 KiB each ($THREADS in parallel), RSS read after $WARMUP and at the end" >&2
if part forward; then
  soak pa_forward "$pa_pid" "$pa_port"
  soak ssh_forward "$ssh_pid" "$ssh_port"
fi
if part socks; then
  soak pa_socks "$pa_pid" "$pa_socks" --socks "127.0.0.1:$http_port"
  soak ssh_socks "$ssh_pid" "$ssh_socks" --socks "127.0.0.1:$http_port"
fi
if part agent; then
  # The agent's socket lives in $work: it leaves when the run's folder is removed.
  export XDG_RUNTIME_DIR=$work/run
  mkdir -m 0700 "$XDG_RUNTIME_DIR"
  ag_port=$(free_port)
  PARAGON_ADMIN_CONFIG="$work/config.toml" "$PARAGON_BIN" forward --output json \
    "$ag_port:127.0.0.1:$http_port" >"$work/ag-events" 2>"$work/ag.log" &
  ag_forward=$!
  pids+=($!)
  for _ in $(seq 400); do grep -q "\"local\":\"127.0.0.1:$ag_port\"" "$work/ag-events" 2>/dev/null && break; sleep 0.05; done
  grep -q "\"local\":\"127.0.0.1:$ag_port\"" "$work/ag-events" || { echo "soak-forward: paragon-admin (agent) did not start: $(cat "$work/ag.log")" >&2; exit 1; }
  ag_pid=$(PARAGON_ADMIN_CONFIG="$work/config.toml" "$PARAGON_BIN" agent status --output json |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["pid"])')
  soak pa_agent "$ag_forward $ag_pid" "$ag_port"
  part forward || soak ssh_forward "$ssh_pid" "$ssh_port"
fi

# --- many exec channels on one session; sessions replaced -------------------------------------
exec_warmup=$((EXECS / 10))
if part exec; then
  echo "soak: $EXECS commands on one session ($THREADS in parallel), as $bench_user" >&2
  PARAGON_ADMIN_CONFIG="$work/config-exec.toml" "$SOAK_EXEC_BIN" --execs "$EXECS" --warmup "$exec_warmup" \
    --threads "$THREADS" --reconnects 0 >"$work/pa_exec.json"
  ssh -M -S "$work/control" -N -o BatchMode=yes -o StrictHostKeyChecking=yes \
    -o UserKnownHostsFile="$work/known_hosts" -i "$work/id_ed25519" -p "$sshd_port" "$bench_user@127.0.0.1" &
  master_pid=$!
  pids+=($!)
  for _ in $(seq 200); do ssh -S "$work/control" -O check x 2>/dev/null && break; sleep 0.05; done
  python3 scripts/soak-forward.py --pid "$master_pid" --ssh-control "$work/control" \
    --ssh-dest "$bench_user@127.0.0.1" --connections "$EXECS" --warmup "$exec_warmup" \
    --threads "$THREADS" >"$work/ssh_exec.json"
fi
if part reconnect; then
  echo "soak: $RECONNECTS sessions replaced" >&2
  PARAGON_ADMIN_CONFIG="$work/config.toml" "$SOAK_EXEC_BIN" --execs 0 --reconnects "$RECONNECTS" \
    >"$work/pa_reconnect.json"
fi

echo
status=0
python3 - "$work" "$WARMUP" "$exec_warmup" <<'PY' || status=$?
import json, os, sys
work, warmup, exec_warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
print("RSS in MB; growth = (end - after warm-up) per 1,000 connections after the warm-up, in KB")
print(f"  {'':30} {'start':>7} {'warm':>7} {'end':>7} {'growth/1k':>10} {'intact':>13}")
def line(label, r, warm):
    after = r["connections"] - warm
    growth = (r["rss_end_kib"] - r["rss_warm_kib"]) / (after / 1000) if after else 0.0
    intact = f"{r['intact']}/{r['connections']}"
    print(f"  {label:30} {r['rss_start_kib']/1024:7.1f} {r['rss_warm_kib']/1024:7.1f} "
          f"{r['rss_end_kib']/1024:7.1f} {growth:10.1f} {intact:>13}")
    return growth, r["intact"] == r["connections"]
def load(key):
    path = f"{work}/{key}.json"
    return json.loads(open(path).read().splitlines()[0]) if os.path.exists(path) else None
verdicts, ratios = [], []
for pa, ssh, label, ssh_label, warm in [
        ("pa_forward", "ssh_forward", "paragon-admin forward", "ssh -L", warmup),
        ("pa_socks", "ssh_socks", "paragon-admin forward --socks", "ssh -D", warmup),
        ("pa_agent", "ssh_forward", "forward through the agent", "ssh -L", warmup),
        ("pa_exec", "ssh_exec", "exec_capture, one session", "ssh -S (ControlMaster)", exec_warmup),
        ("pa_reconnect", None, "sessions replaced", None, None)]:
    r = load(pa)
    if r is None:
        continue
    growth, intact = line(label, r, r.get("warmup", warm))
    verdicts.append((label, growth, intact))
    o = load(ssh) if ssh else None
    if o is not None:
        o_growth, _ = line(ssh_label, o, warm)
        ratios.append((label, ssh_label, r["rss_end_kib"] / o["rss_end_kib"], growth, o_growth))
for label, ssh_label, end_ratio, growth, o_growth in ratios:
    # A growth ratio means something only when OpenSSH grew at all.
    g = f"{growth / o_growth:.1f}x" if o_growth > 1 else f"{growth:.1f} vs {o_growth:.1f} KB/1k"
    print(f"  {label} / {ssh_label}: RSS at the end {end_ratio:.2f}x, growth {g}")
# The target: 1 MB per 10,000 connections = 100 KB per 1,000.
ok = True
for label, growth, intact in verdicts:
    verdict = "ok" if growth <= 100 and intact else "OVER TARGET" if intact else "BODIES LOST"
    ok = ok and verdict == "ok"
    print(f"  {label}: {verdict} (target: <= 100 KB per 1,000 after warm-up, every body intact)")
sys.exit(0 if ok else 1)
PY
if [[ -n "${HEAPTRACK:-}" ]]; then
  kill -INT "$pa_pid"
  wait "$pa_runner" || true # heaptrack writes its data after the process ends
  cp "$work"/heaptrack.* "${HEAPTRACK_OUT:-/tmp}/"
  echo "heaptrack data copied to ${HEAPTRACK_OUT:-/tmp}" >&2
fi
exit "$status"
