#!/usr/bin/env bash
# Proves the Debian package on clean Debian roots, as an operator would use it: builds it with
# scripts/package.sh (lintian clean), runs build.rs in a copy without .git (a tarball: no
# revision, no error), then in a fresh bookworm and trixie root (mmdebstrap, minbase plus man-db
# and bash-completion) installs the .deb with apt and checks `--version`, `paragon-admin demo`,
# `man -w`, a real <TAB> in an interactive bash (tmux), and that `dpkg -r` removes every file.
# Ends with one line: `N passed, N failed`; exits 1 when anything failed.
#
# Roots are made once per machine and cached as tarballs under $ROOTS (default
# /var/cache/paragon-admin-test/roots), keyed by suite and by what goes into them; every run
# unpacks a fresh copy, so no run sees another's leftovers. Needs root (chroot, mount).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
repo="$PWD"
# shellcheck source=scripts/debian-roots.sh
source scripts/debian-roots.sh

SUITES=(bookworm trixie)
# What a root holds beyond minbase: man for `man -w`, bash-completion for the <TAB>.
ROOT_PACKAGES="man-db,bash-completion"
# How long one interactive step may take before it counts as failed.
DEADLINE_SECS=30

for tool in mmdebstrap tmux lintian chroot mount git python3; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "test-package: $tool is missing: run scripts/test.sh, which installs it" >&2
    exit 1
  }
done
[[ $EUID -eq 0 ]] || { echo "test-package: run as root (chroot and mount)" >&2; exit 1; }

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok    $1"; }
fail() { failed=$((failed + 1)); echo "FAIL  $1${2:+: $2}"; }

work="$(mktemp -d /var/tmp/paragon-test-package.XXXXXX)"
tmux_socket="paragon-test-package-$$"
declare -A root_maker=()
cleanup() {
  tmux -L "$tmux_socket" kill-server 2>/dev/null
  # A root being made is finished (and cached) before the work folder goes; on Ctrl-C
  # mmdebstrap got the signal too and stops at once.
  local pid
  for pid in "${root_maker[@]}"; do wait "$pid" 2>/dev/null; done
  leave_root
  remove_work "$work" test-package
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the roots ---------------------------------------------------------------------------

# The roots are made (when not cached) while the package builds: mmdebstrap waits mostly on
# the network and dpkg, the build on the CPU.
for suite in "${SUITES[@]}"; do
  make_root "$suite" package "$ROOT_PACKAGES" >"$work/$suite-mmdebstrap.log" 2>&1 &
  root_maker[$suite]=$!
done

# --- the package -------------------------------------------------------------------------

version="$(cargo metadata --format-version 1 --no-deps --locked |
  python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "paragon-admin"))')"
rev="$(git rev-parse --short HEAD)"

if deb="$(PACKAGE_PROFILE="${PACKAGE_PROFILE:-dev}" bash scripts/package.sh 2>"$work/package.log" | tail -n 1)" && [[ -f "$deb" ]]; then
  pass "package builds and is lintian clean ($deb)"
else
  tail -n 40 "$work/package.log"
  fail "package builds and is lintian clean" "see the lines above"
  echo "$passed passed, $failed failed"
  exit 1
fi

expected_paths=(
  ./usr/bin/paragon-admin
  ./usr/share/man/man1/paragon-admin.1.gz
  ./usr/share/man/man1/paragon-admin-forward.1.gz
  ./usr/share/bash-completion/completions/paragon-admin
  ./usr/share/zsh/vendor-completions/_paragon-admin
  ./usr/share/fish/vendor_completions.d/paragon-admin.fish
  ./usr/share/doc/paragon-admin/copyright
  ./usr/share/doc/paragon-admin/changelog.Debian.gz
)
contents="$(dpkg-deb --contents "$deb" | awk '{print $6}')"
missing=()
for p in "${expected_paths[@]}"; do
  grep -qxF "$p" <<<"$contents" || missing+=("$p")
done
man_in_repo=$(find man -name '*.1' | wc -l)
man_in_deb=$(grep -c '^\./usr/share/man/man1/.*\.1\.gz$' <<<"$contents")
if ((${#missing[@]} == 0)) && ((man_in_repo == man_in_deb)); then
  pass "package holds the binary, $man_in_deb gzipped man pages, 3 completions, copyright, changelog"
else
  fail "package contents" "missing: ${missing[*]:-none}; man pages $man_in_deb of $man_in_repo"
fi

depends="$(dpkg-deb --field "$deb" Depends)"
if [[ "$depends" == *libc6* ]]; then
  pass "dependencies computed from the binary (Depends: $depends)"
else
  fail "dependencies computed from the binary" "Depends: '$depends'"
fi

# --- a build outside git ----------------------------------------------------------------

# build.rs is the only part of a build that differs between a checkout and a tarball, so it
# is compiled (it uses std alone) and run as cargo runs it: in a copy of the tree without
# .git, itself inside an unrelated git repository (as a vendored copy would be), whose
# revision it must not report. (A whole second build would cost minutes: a target folder
# cannot be shared between two copies of one package, cargo would take one for the other.)
vendor="$work/vendor"
tarball="$vendor/paragon-admin-$version"
mkdir -p "$tarball"
git ls-files -z --cached --others --exclude-standard |
  xargs -0 tar -c --no-recursion -f - | tar -x -C "$tarball"
git -C "$vendor" init -q && git -C "$vendor" add -A &&
  git -C "$vendor" -c user.name=test -c user.email=test@localhost commit -q -m vendored
mkdir -p "$work/build-script-out"
build_script() {
  env -i PATH="$PATH" CARGO_PKG_VERSION="$version" CARGO_MANIFEST_DIR="$1" \
    OUT_DIR="$work/build-script-out" "$work/build-script"
}
if rustc --edition 2024 -O -o "$work/build-script" build.rs 2>"$work/build-script.log" &&
  outside="$(build_script "$tarball")" && inside="$(build_script "$repo")"; then
  if grep -qxF "cargo::rustc-env=PARAGON_ADMIN_LONG_VERSION=$version" <<<"$outside" &&
    ! grep -q 'rerun-if-changed=.*git' <<<"$outside" &&
    grep -qxF "cargo::rustc-env=PARAGON_ADMIN_LONG_VERSION=$version (git $rev)" <<<"$inside"; then
    pass "build.rs: the bare version outside git, the revision in the checkout"
  else
    fail "build.rs: the bare version outside git" "outside: $(tr '\n' ' ' <<<"$outside"); inside: $(tr '\n' ' ' <<<"$inside")"
  fi
else
  cat "$work/build-script.log"
  fail "build.rs runs outside git without an error"
fi

# Polls the tmux pane until it shows a line matching the regex, or the deadline passes.
wait_for_pane() {
  local regex="$1" end=$((SECONDS + DEADLINE_SECS))
  while ((SECONDS < end)); do
    tmux -L "$tmux_socket" capture-pane -p -t check | grep -qE "$regex" && return 0
    sleep 0.2
  done
  return 1
}

for suite in "${SUITES[@]}"; do
  started=$SECONDS
  cached="$(root_tar "$suite" package "$ROOT_PACKAGES")"
  if ! wait "${root_maker[$suite]}" || [[ ! -f "$cached" || ! -s "$cached" ]]; then
    tail -n 20 "$work/$suite-mmdebstrap.log"
    fail "$suite: make a root with mmdebstrap" "see the lines above"
    continue
  fi
  enter_root "$cached" "$work/$suite"
  cp "$deb" "$root/tmp/"
  deb_in_root="/tmp/$(basename "$deb")"

  before="$(root_files)"
  # shellcheck disable=SC2016 # ${Status} is dpkg-query's field, not the shell's
  if in_root apt-get install -y -q --no-install-recommends "$deb_in_root" >"$work/$suite-apt.log" 2>&1 &&
    in_root dpkg-query -W -f='${Status}' paragon-admin | grep -q 'install ok installed'; then
    pass "$suite: apt installs the package, dependencies resolved"
  else
    tail -n 20 "$work/$suite-apt.log"
    fail "$suite: apt installs the package" "see the lines above"
  fi

  got="$(in_root paragon-admin --version 2>&1)"
  if [[ "$got" == "paragon-admin $version (git $rev)" ]]; then
    pass "$suite: --version names the git revision ($got)"
  else
    fail "$suite: --version names the git revision" "got '$got', wanted 'paragon-admin $version (git $rev)'"
  fi

  if in_root paragon-admin demo >"$work/$suite-demo.log" 2>&1 &&
    grep -q '200 OK' "$work/$suite-demo.log" && grep -q '^demo over' "$work/$suite-demo.log"; then
    pass "$suite: paragon-admin demo passes"
  else
    tail -n 20 "$work/$suite-demo.log"
    fail "$suite: paragon-admin demo passes" "see the lines above"
  fi

  page="$(in_root man -w paragon-admin 2>&1)"
  if [[ "$page" == /usr/share/man/man1/paragon-admin.1.gz ]] &&
    in_root man -w paragon-admin-forward >/dev/null 2>&1; then
    pass "$suite: man -w finds the pages ($page)"
  else
    fail "$suite: man -w finds the page" "got '$page'"
  fi

  # A real <TAB>: an interactive login bash on a terminal (tmux), whose bash-completion loads
  # /usr/share/bash-completion/completions/paragon-admin on demand; that script asks
  # /usr/bin/paragon-admin for the candidates. No history file: it would be a leftover below.
  tmux -L "$tmux_socket" new-session -d -s check -x 200 -y 50 \
    chroot "$root" /usr/bin/env -i HOME=/root TERM=xterm LANG=C.UTF-8 HISTFILE= \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /bin/bash --login -i
  # The sum is the shell's to expand: the typed line never matches, only its output does.
  # shellcheck disable=SC2016
  tmux -L "$tmux_socket" send-keys -t check 'echo shell-ready-$((6*7))' Enter
  if wait_for_pane '^shell-ready-42$'; then
    tmux -L "$tmux_socket" send-keys -t check 'paragon-admin fo' Tab
    if wait_for_pane 'paragon-admin forward ?$'; then
      pass "$suite: bash completes 'paragon-admin fo<TAB>' to 'forward'"
    else
      fail "$suite: bash completes 'paragon-admin fo<TAB>'" \
        "screen: $(tmux -L "$tmux_socket" capture-pane -p -t check | grep -v '^$' | tail -n 3 | tr '\n' '|')"
    fi
  else
    fail "$suite: an interactive bash starts in the root" \
      "screen: $(tmux -L "$tmux_socket" capture-pane -p -t check | grep -v '^$' | tail -n 3 | tr '\n' '|')"
  fi
  tmux -L "$tmux_socket" kill-server 2>/dev/null

  installed="$(in_root dpkg-query -L paragon-admin)"
  if in_root dpkg -r paragon-admin >"$work/$suite-remove.log" 2>&1; then
    left=()
    while IFS= read -r p; do
      [[ -n "$p" && ! -d "$root$p" && -e "$root$p" ]] && left+=("$p")
    done <<<"$installed"
    after="$(root_files)"
    if ((${#left[@]} == 0)) && [[ "$before" == "$after" ]]; then
      pass "$suite: dpkg -r removes every file it installed ($(wc -l <<<"$installed") paths)"
    else
      fail "$suite: dpkg -r removes every file" \
        "left: ${left[*]:-none}; tree diff: $(diff <(echo "$before") <(echo "$after") | grep '^[<>]' | head -n 5 | tr '\n' ' ')"
    fi
  else
    tail -n 20 "$work/$suite-remove.log"
    fail "$suite: dpkg -r paragon-admin" "see the lines above"
  fi

  leave_root
  echo "      $suite: $((SECONDS - started)) s"
done

echo "$passed passed, $failed failed"
((failed == 0))
