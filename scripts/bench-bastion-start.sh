#!/usr/bin/env bash
# What the bastion's entrypoint adds to sshd's own start: render the policy, check every
# authorized key, check the config. Anchor: `sshd -t` of the same rendered config, which any
# OpenSSH start pays. Prints milliseconds per run and the ratio, for 1 and 100 keys.
# Runs as root (the entrypoint then checks BASTION_USER exists; `nobody` does).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-20}
sshd=$(command -v sshd || echo /usr/sbin/sshd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/host-keys" "$work/run"

ms_per_run() { # command...
  local start end
  start=$(date +%s%N)
  for ((i = 0; i < runs; i++)); do "$@" >/dev/null 2>&1; done
  end=$(date +%s%N)
  echo $(((end - start) / runs / 1000000))
}

for keys in 1 100; do
  : >"$work/authorized_keys"
  for ((k = 0; k < keys; k++)); do
    ssh-keygen -q -t ed25519 -N '' -C "user$k" -f "$work/k" <<<y >/dev/null
    cat "$work/k.pub" >>"$work/authorized_keys"
  done
  export BASTION_SSHD_CONFIG=$PWD/bastion-image/sshd_config BASTION_HOST_KEY_DIR=$work/host-keys \
    BASTION_AUTHORIZED_KEYS=$work/authorized_keys BASTION_RUN_DIR=$work/run BASTION_USER=nobody \
    BASTION_SESSION=$PWD/bastion-image/session \
    SSHD=$sshd
  sh bastion-image/entrypoint.sh check >/dev/null 2>&1
  entry=$(ms_per_run sh bastion-image/entrypoint.sh check)
  anchor=$(ms_per_run "$sshd" -t -f "$work/run/sshd_config")
  printf 'keys=%-4s entrypoint check: %4d ms   sshd -t (anchor): %4d ms   ratio %s\n' \
    "$keys" "$entry" "$anchor" "$(awk -v a="$entry" -v b="$anchor" 'BEGIN { printf "%.1f", (b ? a / b : 0) }')"
done
