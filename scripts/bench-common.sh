# shellcheck shell=bash
# Sourced by the benchmark scripts, never run: a work folder and the processes started, both
# gone on exit; free loopback ports; a median; and the bastion, a real sshd on loopback with a
# fresh host key and client key. The sourcing script sets BENCH (its name, for messages) first.

work=$(mktemp -d)
pids=()
bench_user=
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -n $bench_user ]]; then userdel "$bench_user" 2>/dev/null || true; fi
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
  echo "$BENCH: nothing listens on $1" >&2; return 1
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# ratio A B: A/B with two decimals (0 when B is 0).
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}'; }

# hyperfine_median NAME WARMUP RUNS COMMAND...: hyperfine's median in seconds of the first
# command (its JSON kept as $work/NAME.json).
hyperfine_median() {
  local name=$1 warmup=$2 runs=$3
  shift 3
  hyperfine --style none --warmup "$warmup" --runs "$runs" --export-json "$work/$name.json" "$@" >/dev/null
  python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['results'][0]['median'])" "$work/$name.json"
}

# start_sshd [CONFIG_LINE...]: a loopback sshd on a free port ($sshd_port) that accepts
# $work/id_ed25519 and forwards TCP, with any extra sshd_config lines; its host key goes into
# $work/known_hosts. A port taken in between is retried on another.
# shellcheck disable=SC2120 # the extra lines are optional
start_sshd() {
  mkdir -p /run/sshd
  ssh-keygen -q -t ed25519 -N '' -f "$work/host_key"
  ssh-keygen -q -t ed25519 -N '' -f "$work/id_ed25519"
  cp "$work/id_ed25519.pub" "$work/authorized_keys"
  local pid
  for _ in $(seq 20); do
    sshd_port=$(free_port)
    {
      printf '%s\n' "Port $sshd_port" "ListenAddress 127.0.0.1" "HostKey $work/host_key" \
        "AuthorizedKeysFile $work/authorized_keys" "UsePAM no" "StrictModes no" "PidFile none" \
        "PermitRootLogin prohibit-password" "PasswordAuthentication no" \
        "AllowTcpForwarding yes" "LogLevel ERROR"
      printf '%s\n' "$@"
    } >"$work/sshd_config"
    /usr/sbin/sshd -D -e -f "$work/sshd_config" 2>"$work/sshd.log" &
    pid=$!
    if wait_port "$sshd_port" 2>/dev/null; then
      pids+=("$pid")
      echo "[127.0.0.1]:$sshd_port $(cut -d' ' -f1,2 "$work/host_key.pub")" >"$work/known_hosts"
      return 0
    fi
    kill "$pid" 2>/dev/null || true
  done
  echo "$BENCH: sshd did not start: $(cat "$work/sshd.log")" >&2
  exit 1
}

# bastion_profile NAME [USER]: the profile that reaches start_sshd's sshd with its client key
# and a strict host key check, as TOML on stdout (default user root).
bastion_profile() {
  cat <<TOML
[profiles.$1]
host = "127.0.0.1"
port = $sshd_port
user = "${2:-root}"
identity_file = "$work/id_ed25519"
known_hosts = "$work/known_hosts"
strict_host_key_checking = "yes"
TOML
}

# sh_user PREFIX: a user for this run ($bench_user, removed on exit) whose login shell is
# /bin/sh. root's login shell may start slowly (bash sources a profile for sshd's commands):
# commands as this user measure the session, not the shell. sshd reads the keys as that user,
# so start_sshd comes first. Needs root (useradd).
sh_user() {
  bench_user=$1-$$
  mkdir "$work/$1-home"
  # "*", not useradd's locked "!": sshd without PAM refuses a locked account even for a key.
  useradd --no-create-home --home-dir "$work/$1-home" --shell /bin/sh --password '*' "$bench_user"
  chown "$bench_user" "$work/$1-home"
  chmod 755 "$work"
  chmod 644 "$work/authorized_keys"
}

# start_sandbox KUBECONFIG PODS NODES: `$PARAGON_BIN sandbox` of PODS pods over NODES nodes on
# a free loopback port, its kubeconfig written to KUBECONFIG once it listens.
start_sandbox() {
  "$PARAGON_BIN" --quiet sandbox --listen 127.0.0.1:0 --nodes "$3" --pods "$2" \
    --kubeconfig-out "$1" >/dev/null &
  pids+=($!)
  for _ in $(seq 600); do [[ -s $1 ]] && return 0; sleep 0.1; done
  echo "$BENCH: the sandbox did not start" >&2
  exit 1
}
