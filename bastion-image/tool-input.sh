#!/bin/sh
# Puts one of the image's tools (kubectl or helm) into $DEST, from the offline folder when it
# holds files (the Dockerfile's `tool-files` build context), else downloaded from the release
# site; either way the released file's SHA-256 is checked before anything runs it. The
# expected checksum is the one passed, else the pinned one in tools.sha256 for a pinned version;
# an unpinned version without a checksum is refused: never unchecked.
#
#   tool-input.sh NAME VERSION ARCH [SHA256]      NAME: kubectl or helm
#
# Environment (defaults are the Dockerfile's paths; the tests point them elsewhere):
#   TOOL_FILES   the offline folder    /tool-files
#   PINNED       the pinned checksums  /tool-input/tools.sha256
#   DEST         where the tool goes   /usr/local/bin
set -eu

fail() {
	printf 'tool-input: %s\n' "$*" >&2
	exit 1
}
case $# in
3 | 4) ;;
*) fail "usage: tool-input.sh NAME VERSION ARCH [SHA256]" ;;
esac
name=$1
version=$2
arch=$3
sha=${4-}
files=${TOOL_FILES:-/tool-files}
pinned=${PINNED:-/tool-input/tools.sha256}
dest=${DEST:-/usr/local/bin}
offline_doc='see bastion-image/README.md, "Offline build"'

case $name in
kubectl)
	file=kubectl
	url=https://dl.k8s.io/release/$version/bin/linux/$arch/kubectl
	arg=KUBECTL_SHA256
	;;
helm)
	file=helm-$version-linux-$arch.tar.gz
	url=https://get.helm.sh/$file
	arg=HELM_SHA256
	;;
*) fail "unknown tool '$name': kubectl or helm" ;;
esac

if [ -z "$sha" ]; then
	sha=$(awk -v n="$name" -v v="$version" -v a="$arch" '$1 == n && $2 == v && $3 == a { print $4 }' "$pinned") ||
		fail "cannot read the pinned checksums $pinned"
	[ -n "$sha" ] ||
		fail "$name $version (linux/$arch) is not a pinned version (tools.sha256): pass its SHA-256 with --build-arg $arg=..."
fi
case $sha in
*[!0-9a-f]* | '') fail "$arg '$sha' is not a SHA-256 (64 hexadecimal digits)" ;;
esac
[ ${#sha} -eq 64 ] || fail "$arg '$sha' is not a SHA-256 (64 hexadecimal digits)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -n "$(ls -A "$files" 2>/dev/null)" ]; then
	[ -f "$files/$file" ] ||
		fail "the offline folder has no $file: put $name $version (linux/$arch, SHA-256 $sha) there, named $file"
	cp "$files/$file" "$work/$file"
	source="offline folder: $file"
else
	if ! command -v curl >/dev/null 2>&1; then
		{ apt-get update -qq && apt-get install -y -qq --no-install-recommends ca-certificates curl >/dev/null; } ||
			fail "cannot install curl to download $name (no network?): build offline, $offline_doc"
	fi
	curl -fsSL --proto '=https' -o "$work/$file" "$url" ||
		fail "cannot download $url (no network?): build offline, $offline_doc"
	source=$url
fi

got=$(sha256sum "$work/$file" | cut -d ' ' -f 1)
[ "$got" = "$sha" ] ||
	fail "$source has SHA-256 $got, expected $sha ($name $version linux/$arch)"

case $name in
kubectl) install -m 0755 "$work/$file" "$dest/kubectl" ;;
helm)
	tar -xzf "$work/$file" -C "$work" "linux-$arch/helm" ||
		fail "$source holds no linux-$arch/helm"
	install -m 0755 "$work/linux-$arch/helm" "$dest/helm"
	;;
esac
printf 'tool-input: %s %s from %s, SHA-256 %s checked\n' "$name" "$version" "$source" "$sha"
