#!/usr/bin/env bash
# Builds the paragon-bastion Debian package (architecture all: shell, the image's policy and
# entrypoint) into $OUT (default $CARGO_TARGET_DIR/debian, else target/debian) with dpkg-deb,
# then runs lintian on it: an error or warning fails the build. Prints the .deb's path as the
# last line of stdout. scripts/package.sh runs it beside the client's package.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${OUT:-${CARGO_TARGET_DIR:-$repo/target}/debian}"

for tool in dpkg-deb lintian gzip; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "paragon-bastion build: $tool is missing (scripts/test.sh installs it)" >&2
    exit 1
  }
done

version="$(sed -n '1s/^paragon-bastion (\([^)]*\)).*/\1/p' "$here/changelog")"
[[ -n $version ]] || { echo "paragon-bastion build: no version in $here/changelog" >&2; exit 1; }
maintainer="$(sed -n 's/^maintainer = "\(.*\)"$/\1/p' "$repo/Cargo.toml" | head -n 1)"

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
root="$stage/root"
doc="$root/usr/share/doc/paragon-bastion"
install -d -m 0755 "$root/DEBIAN" "$doc" "$root/usr/share/lintian/overrides" \
  "$root/usr/share/man/man8" "$root/usr/share/paragon-bastion" "$root/usr/sbin" \
  "$root/usr/libexec/paragon-bastion" "$root/etc/paragon-bastion" "$root/lib/systemd/system"
# One policy, one entrypoint: the image's files as they are.
install -m 0644 "$repo/bastion-image/sshd_config" "$root/usr/share/paragon-bastion/sshd_config"
install -m 0755 "$repo/bastion-image/entrypoint.sh" "$root/usr/libexec/paragon-bastion/entrypoint"
# The session wrapper (audit lines to syslog) and, the same file, the read-only command.
install -m 0755 "$repo/bastion-image/session" "$root/usr/libexec/paragon-bastion/session"
install -m 0755 "$repo/bastion-image/session" "$root/usr/libexec/paragon-bastion/paragon-read-only"
install -m 0755 "$here/paragon-bastion" "$root/usr/sbin/paragon-bastion"
# The forward audit's reader (the session file, --journal) as a service.
install -m 0644 "$here/paragon-bastion-audit.service" "$root/lib/systemd/system/"
install -m 0644 "$here/permit-open" "$root/etc/paragon-bastion/permit-open"
install -m 0644 "$repo/debian/copyright" "$doc/copyright"
gzip -9n <"$here/changelog" >"$doc/changelog.Debian.gz"
gzip -9n <"$here/paragon-bastion.8" >"$root/usr/share/man/man8/paragon-bastion.8.gz"
install -m 0644 "$here/lintian-overrides" "$root/usr/share/lintian/overrides/paragon-bastion"
install -m 0755 "$here/postinst" "$here/prerm" "$here/postrm" "$root/DEBIAN/"
echo /etc/paragon-bastion/permit-open >"$root/DEBIAN/conffiles"
chmod 0644 "$root/DEBIAN/conffiles"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
  xargs -0 md5sum >DEBIAN/md5sums)
chmod 0644 "$root/DEBIAN/md5sums"
cat >"$root/DEBIAN/control" <<CONTROL
Package: paragon-bastion
Version: $version
Architecture: all
Maintainer: $maintainer
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f 1)
Depends: openssh-server (>= 1:9.2), openssh-client, passwd
Section: admin
Priority: optional
Description: paragon bastion image's sshd policy for a VM bastion
 The sshd policy of the paragon bastion image (public keys only, local TCP
 forwards to Paragon's service ports only, post-quantum key exchange) as a
 drop-in under /etc/ssh/sshd_config.d/ for the members of group
 paragon-bastion, leaving the distribution's sshd_config alone; the kubeconfig
 path for kubectl and helm in their sessions; OpenSSH certificates from a user
 CA with principals and a revocation list; every session audited as JSON lines
 in syslog; and "paragon-bastion check", which runs the image entrypoint's
 checks on the keys and the policy.
CONTROL

mkdir -p "$out"
deb="$out/paragon-bastion_${version}_all.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >&2
lintian --fail-on error,warning --info --display-info --profile debian "$deb" >&2
echo "$deb"
