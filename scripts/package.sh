#!/usr/bin/env bash
# Builds the Debian package target/debian/paragon-admin_VERSION-1_amd64.deb with cargo-deb
# (its metadata: [package.metadata.deb] in Cargo.toml; copyright and changelog in debian/),
# then runs lintian on it: a lintian error or warning fails the build. Beside it, the VM
# bastion's package, target/debian/paragon-bastion_VERSION_all.deb
# (packaging/paragon-bastion/build.sh, lintian clean too). Prints the bastion package's path,
# then the client's as the last line of stdout.
#
#   scripts/package.sh            # cargo-deb is installed with `cargo install` when missing
#   PACKAGE_PROFILE=dev scripts/package.sh   # package the test build (scripts/test-package.sh)
#
# The release build runs under `nice -n 19`: it is long, and a developer's machine has other
# work to do. The test suite packages the dev build it already has instead: same files in the
# same places, without a second full build of every dependency.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo deb --version >/dev/null 2>&1; then
  echo "installing cargo-deb (cargo install cargo-deb --locked)" >&2
  nice -n 19 cargo install cargo-deb --locked
fi
command -v lintian >/dev/null 2>&1 || {
  echo "lintian is missing: apt-get install lintian (scripts/test.sh installs it)" >&2
  exit 1
}

target_dir="${CARGO_TARGET_DIR:-target}"
version="$(cargo metadata --format-version 1 --no-deps --locked |
  python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "paragon-admin"))')"
deb="$target_dir/debian/paragon-admin_${version}-1_amd64.deb"

# The committed completions and man pages go into the package as they are; the test suite
# proves they match the code (tests/it/docs.rs).
nice -n 19 cargo deb --locked --profile "${PACKAGE_PROFILE:-release}" --output "$deb" >&2

# Errors and warnings fail the build; info tags are shown (with their explanations) too.
lintian --fail-on error,warning --info --display-info --profile debian "$deb" >&2
bash packaging/paragon-bastion/build.sh
echo "$deb"
