# shellcheck shell=bash
# Sourced by scripts/test-package.sh and scripts/test-image.sh, never run: clean Debian roots
# made with mmdebstrap (minbase plus a list of packages) from Debian's archive, cached as
# tarballs under $ROOTS (default /var/cache/paragon-admin-test/roots) between runs on the same
# machine. A root is named by suite, flavour and a key of what goes into it, so a change of the
# package list makes a new root instead of reusing a wrong one. Needs root.

ROOTS="${ROOTS:-/var/cache/paragon-admin-test/roots}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"

# root_tar SUITE FLAVOUR PACKAGES: the cached tarball's path (made or not).
root_tar() {
  local key
  key="$(printf '%s\n' minbase "$3" "$MIRROR" | sha256sum | cut -c1-12)"
  echo "$ROOTS/$1-$2-$key.tar"
}

# make_root SUITE FLAVOUR PACKAGES: makes the root's tarball when it is not cached (PACKAGES:
# comma-separated, as mmdebstrap's --include takes them). One maker per suite and flavour at
# a time on this machine; a second run waits, then finds it made.
make_root() {
  local suite="$1" flavour="$2" packages="$3" cached
  cached="$(root_tar "$suite" "$flavour" "$packages")"
  mkdir -p "$ROOTS"
  (
    flock 9
    if [[ ! -s "$cached" ]]; then
      echo "making the $suite $flavour root (cached in $cached)" >&2
      rm -f "$ROOTS/$suite-$flavour"-*.tar "$ROOTS/$suite-$flavour"-*.tar.partial
      nice -n 19 mmdebstrap --quiet --format=tar --variant=minbase --include="$packages" \
        "$suite" "$cached.partial" "$MIRROR" >&2 &&
        mv "$cached.partial" "$cached"
    fi
  ) 9>"$ROOTS/$suite-$flavour.lock"
}
