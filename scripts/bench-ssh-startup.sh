#!/usr/bin/env bash
# Startup cost of one remote command: `paragon-admin ssh -- true` against OpenSSH's own
# `ssh ... true`, same loopback sshd, same ed25519 client key, same host key check
# (known_hosts, strict). Prints both medians and the ratio (ours / OpenSSH's).
#
# Then bulk transfers: 200 MB of remote stdout into /dev/null, and 200 MB of local stdin
# into a remote `cat >/dev/null`, to show the window and packet sizes hold up.
#
# Usage: scripts/bench-ssh-startup.sh [RUNS]   (default 30; needs sshd, ssh-keygen, hyperfine)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-30}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}

for cmd in /usr/sbin/sshd ssh ssh-keygen hyperfine; do
  command -v "$cmd" >/dev/null || { echo "missing: $cmd" >&2; exit 1; }
done

cargo build --release --quiet
bin="$CARGO_TARGET_DIR/release/paragon-admin"

dir=$(mktemp -d)
sshd_pid=
cleanup() {
  if [[ -n $sshd_pid ]]; then kill "$sshd_pid" 2>/dev/null || true; wait "$sshd_pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT

mkdir -p /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$dir/id_ed25519"
cp "$dir/id_ed25519.pub" "$dir/authorized_keys"

# A port that is free now; sshd binds it itself, so retry when it was taken meanwhile.
for _ in 1 2 3 4 5 6 7 8 9 10; do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat >"$dir/sshd_config" <<CFG
Port $port
ListenAddress 127.0.0.1
HostKey $dir/host_key
AuthorizedKeysFile $dir/authorized_keys
UsePAM no
StrictModes no
PidFile none
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PrintMotd no
PrintLastLog no
UseDNS no
MaxStartups 100:30:200
CFG
  /usr/sbin/sshd -D -e -f "$dir/sshd_config" 2>"$dir/sshd.log" &
  sshd_pid=$!
  for _ in $(seq 50); do
    grep -q "Server listening" "$dir/sshd.log" && break
    kill -0 "$sshd_pid" 2>/dev/null || break
    sleep 0.05
  done
  grep -q "Server listening" "$dir/sshd.log" && break
  wait "$sshd_pid" 2>/dev/null || true
  sshd_pid=
done
[[ -n $sshd_pid ]] || { echo "sshd did not start" >&2; cat "$dir/sshd.log" >&2; exit 1; }

echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$dir/host_key.pub")" >"$dir/known_hosts"
cat >"$dir/config.toml" <<TOML
[profiles.bench]
host = "127.0.0.1"
port = $port
user = "root"
identity_file = "$dir/id_ed25519"
known_hosts = "$dir/known_hosts"
strict_host_key_checking = "yes"
TOML

ours="env -u SSH_AUTH_SOCK PARAGON_ADMIN_CONFIG=$dir/config.toml $bin --no-agent ssh -- true"
theirs="env -u SSH_AUTH_SOCK ssh -F none -i $dir/id_ed25519 -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$dir/known_hosts -p $port root@127.0.0.1 true"
ours_bulk_prefix="env -u SSH_AUTH_SOCK PARAGON_ADMIN_CONFIG=$dir/config.toml $bin --no-agent ssh --"
theirs_bulk_prefix="${theirs% true}"
# Both must work before they are timed.
$ours
$theirs

hyperfine --warmup 3 --runs "$runs" --export-json "$dir/bench.json" -N \
  -n paragon-admin "$ours" -n openssh "$theirs" >&2

bulk="head -c 200000000 /dev/zero"
hyperfine --warmup 1 --runs 5 --export-json "$dir/bulk.json" \
  -n paragon-admin "$ours_bulk_prefix $bulk >/dev/null" \
  -n openssh "$theirs_bulk_prefix '$bulk' >/dev/null" >&2

head -c 200000000 /dev/zero >"$dir/upload"
hyperfine --warmup 1 --runs 5 --export-json "$dir/upload.json" \
  -n paragon-admin "$ours_bulk_prefix 'cat >/dev/null' <$dir/upload" \
  -n openssh "$theirs_bulk_prefix 'cat >/dev/null' <$dir/upload" >&2

python3 - "$dir/bench.json" "$dir/bulk.json" "$dir/upload.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
ours, theirs = r["paragon-admin"]["median"], r["openssh"]["median"]
print(f"startup: paragon-admin ssh -- true   median {ours*1000:.1f} ms")
print(f"startup: OpenSSH ssh ... true        median {theirs*1000:.1f} ms")
print(f"startup ratio (paragon-admin / OpenSSH): {ours/theirs:.2f}")
b = {x["command"]: x for x in json.load(open(sys.argv[2]))["results"]}
ours, theirs = b["paragon-admin"]["median"], b["openssh"]["median"]
print(f"bulk 200 MB: paragon-admin median {ours:.2f} s ({200/ours:.0f} MB/s)")
print(f"bulk 200 MB: OpenSSH       median {theirs:.2f} s ({200/theirs:.0f} MB/s)")
print(f"bulk ratio (paragon-admin / OpenSSH time): {ours/theirs:.2f}")
u = {x["command"]: x for x in json.load(open(sys.argv[3]))["results"]}
ours, theirs = u["paragon-admin"]["median"], u["openssh"]["median"]
print(f"upload 200 MB: paragon-admin median {ours:.2f} s ({200/ours:.0f} MB/s)")
print(f"upload 200 MB: OpenSSH       median {theirs:.2f} s ({200/theirs:.0f} MB/s)")
print(f"upload ratio (paragon-admin / OpenSSH time): {ours/theirs:.2f}")
PY
