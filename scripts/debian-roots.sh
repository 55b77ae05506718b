# shellcheck shell=bash
# Sourced by scripts/test-package.sh, test-bastion-package.sh and test-image.sh, never run:
# clean Debian roots made with mmdebstrap (minbase plus a list of packages) from Debian's
# archive, cached as tarballs under $ROOTS (default /var/cache/paragon-admin-test/roots) between runs on the same
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

# --- using a root: a fresh copy per run, chroot, mounts undone -----------------------------

# The mounts made by enter_root, undone (last first) by leave_root.
root_mounts=()

# enter_root TARBALL DIR: unpacks a fresh copy of a cached root into DIR (then $root) with
# /proc, /dev and /dev/pts mounted, so that no run sees another's leftovers.
enter_root() {
  local m
  root="$2"
  mkdir -p "$root"
  tar -x -p -f "$1" -C "$root"
  for m in proc dev dev/pts; do
    mkdir -p "$root/$m"
    if [[ $m == proc ]]; then mount -t proc proc "$root/proc"; else mount --bind "/$m" "$root/$m"; fi
    root_mounts+=("$root/$m")
  done
}

# unmount_root: unmounts what enter_root mounted (lazily when still busy); $root stays.
unmount_root() {
  local i
  for ((i = ${#root_mounts[@]} - 1; i >= 0; i--)); do
    umount "${root_mounts[i]}" 2>/dev/null || umount -l "${root_mounts[i]}"
  done
  root_mounts=()
}

# leave_root: unmounts what enter_root mounted, then removes $root.
leave_root() {
  unmount_root
  [[ -n ${root:-} && -d $root ]] && rm -rf --one-file-system "$root"
  root=
}

# remove_work DIR NAME: removes a script's work folder, never through a mount still there (it
# would reach the host's /dev).
remove_work() {
  if findmnt -rno TARGET | grep -q "^$1"; then
    echo "$2: mounts left under $1, not removed" >&2
  else
    rm -rf --one-file-system "$1"
  fi
}

# in_root CMD...: runs a command in $root with a clean environment, as a login would have it.
in_root() {
  chroot "$root" /usr/bin/env -i HOME=/root TERM=xterm LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
}

# root_files: every path in $root except the ones that change by themselves (apt's and dpkg's
# own records, logs, caches such as man-db's index, temporary files).
root_files() {
  (cd "$root" && find . -xdev \
    \( -path ./proc -o -path ./dev -o -path ./tmp -o -path ./var/tmp -o -path ./var/log \
    -o -path ./var/cache -o -path ./var/lib/dpkg -o -path ./var/lib/apt -o -path ./run \) -prune \
    -o -print | sort)
}
