#!/bin/sh
# Starts the bastion's sshd: host keys from a mounted folder (generated once when the folder is
# writable and has none), authorized keys from a mounted file, PermitOpen from the
# environment. Renders sshd_config into the run folder, checks it with `sshd -t`, and refuses
# to start on any error. Then sshd replaces this script, in the foreground, logging to stderr.
#
#   entrypoint.sh          validate, then exec sshd
#   entrypoint.sh check    validate only; prints the rendered config's path
#
# Environment (defaults are the image's paths; the tests point them at a temporary folder):
#   BASTION_SSHD_CONFIG      policy file to render        /etc/bastion/sshd_config
#   BASTION_HOST_KEY_DIR     host keys (a Secret)         /etc/bastion/host-keys
#   BASTION_AUTHORIZED_KEYS  authorized keys (ConfigMap)  /etc/bastion/authorized-keys/authorized_keys
#   BASTION_RUN_DIR          rendered config, pid file    /run/bastion
#   BASTION_PORT             port to listen on            2222
#   BASTION_LISTEN_ADDRESS   address to listen on         0.0.0.0
#   BASTION_USER             the one login user           bastion
#   BASTION_PERMIT_OPEN      "HOST:PORT ..." allowed forward targets (default: the config's)
#   SSHD                     the sshd binary              sshd on PATH, else /usr/sbin/sshd
# -f: no path name expansion, so that a PermitOpen '*:5432' stays what it says.
set -euf
umask 077

me=entrypoint
fail() {
	printf '%s: %s\n' "$me" "$*" >&2
	exit 1
}
note() {
	printf '%s: %s\n' "$me" "$*" >&2
}

mode=run
case "${1-}" in
'') ;;
check) mode=check ;;
*) fail "unknown argument '$1': use no argument to start sshd, or 'check' to validate only" ;;
esac

template=${BASTION_SSHD_CONFIG:-/etc/bastion/sshd_config}
host_key_dir=${BASTION_HOST_KEY_DIR:-/etc/bastion/host-keys}
authorized_keys=${BASTION_AUTHORIZED_KEYS:-/etc/bastion/authorized-keys/authorized_keys}
run_dir=${BASTION_RUN_DIR:-/run/bastion}
port=${BASTION_PORT:-2222}
listen=${BASTION_LISTEN_ADDRESS:-0.0.0.0}
user=${BASTION_USER:-bastion}
permit_open=${BASTION_PERMIT_OPEN-}
sshd=${SSHD:-}
if [ -z "$sshd" ]; then
	sshd=$(command -v sshd 2>/dev/null || true)
	[ -n "$sshd" ] || sshd=/usr/sbin/sshd
fi
[ -x "$sshd" ] || fail "no sshd at $sshd: install openssh-server or set SSHD"
for tool in ssh ssh-keygen; do
	command -v "$tool" >/dev/null 2>&1 || fail "no $tool on PATH: install openssh-client"
done

[ -r "$template" ] || fail "cannot read the sshd policy $template: set BASTION_SSHD_CONFIG"

case $port in
'' | *[!0-9]*) fail "BASTION_PORT '$port' is not a port number" ;;
esac
if [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
	fail "BASTION_PORT '$port' is not in 1-65535"
fi

# A non-root sshd can only log in the user it runs as.
uid=$(id -u)
if [ "$uid" -ne 0 ]; then
	running_as=$(id -un)
	[ "$user" = "$running_as" ] ||
		fail "sshd runs as '$running_as' and can only log in '$running_as', not BASTION_USER '$user': set BASTION_USER=$running_as"
	[ "$port" -ge 1024 ] || fail "BASTION_PORT $port needs root; an unprivileged sshd listens on 1024 or above"
else
	id -u "$user" >/dev/null 2>&1 || fail "BASTION_USER '$user' is not a user of this system"
	[ "$user" != root ] || fail "BASTION_USER must not be root"
fi

# --- PermitOpen: only explicit HOST:PORT targets, never "any" nor every port ---
valid_target() {
	case $1 in
	\[*\]:*) host=${1%]:*}; host=${host#[} ;;
	*:*:*) return 1 ;;
	*:*) host=${1%:*} ;;
	*) return 1 ;;
	esac
	target_port=${1##*:}
	case $host in
	'' | *[!A-Za-z0-9.:*_-]*) return 1 ;;
	esac
	case $target_port in
	'' | *[!0-9]*) return 1 ;;
	esac
	[ "$target_port" -ge 1 ] && [ "$target_port" -le 65535 ]
}
if [ -n "$permit_open" ]; then
	for target in $permit_open; do
		valid_target "$target" ||
			fail "BASTION_PERMIT_OPEN entry '$target' is not HOST:PORT (a port from 1 to 65535; 'any' and '*' ports are refused)"
	done
	# Normalise white space to single spaces.
	# shellcheck disable=SC2086 # word splitting is the point
	set -- $permit_open
	permit_open=$*
fi

# --- authorized keys: every line a public key, at least one ---
if [ ! -f "$authorized_keys" ] || [ ! -r "$authorized_keys" ]; then
	fail "cannot read the authorized keys $authorized_keys: mount the authorized keys file there or set BASTION_AUTHORIZED_KEYS"
fi
# ssh-keygen lists the valid keys of a file and skips the rest silently: one call when every
# line is good, a line-by-line pass only to name the first bad line.
keys=$(grep -cEv '^[[:space:]]*(#|$)' "$authorized_keys" || true)
valid=$(ssh-keygen -l -f "$authorized_keys" 2>/dev/null | grep -c . || true)
if [ "$valid" -ne "$keys" ]; then
	line_no=0
	while IFS= read -r line || [ -n "$line" ]; do
		line_no=$((line_no + 1))
		if printf '%s\n' "$line" | grep -qEv '^[[:space:]]*(#|$)'; then
			printf '%s\n' "$line" | ssh-keygen -l -f - >/dev/null 2>&1 ||
				fail "$authorized_keys:$line_no: not a public key line (expected [options] TYPE BASE64 [comment])"
		fi
	done <"$authorized_keys"
	fail "$authorized_keys: $keys key lines but ssh-keygen reads $valid"
fi
[ "$keys" -gt 0 ] || fail "$authorized_keys holds no key: nobody could log in"

# --- host key: from the mounted folder; generated once if absent and the folder is writable ---
host_key=$host_key_dir/ssh_host_ed25519_key
if [ ! -e "$host_key" ]; then
	[ -d "$host_key_dir" ] || fail "no host key folder $host_key_dir: mount the host key Secret there or set BASTION_HOST_KEY_DIR"
	[ -w "$host_key_dir" ] ||
		fail "no host key $host_key and $host_key_dir is read-only: create the host key Secret once (see README.md)"
	fresh=$host_key_dir/.ssh_host_ed25519_key.$$
	rm -f "$fresh" "$fresh.pub"
	ssh-keygen -q -t ed25519 -N '' -C bastion-host-key -f "$fresh" >/dev/null ||
		fail "could not generate a host key in $host_key_dir"
	mv -f "$fresh.pub" "$host_key.pub"
	mv -f "$fresh" "$host_key"
	note "generated a new host key in $host_key_dir (kept for later starts)"
fi
[ -r "$host_key" ] || fail "cannot read the host key $host_key as $(id -un)"
fingerprint=$(ssh-keygen -l -f "$host_key" 2>/dev/null) ||
	fail "$host_key is not a usable private key"
note "host key: $fingerprint"

# --- render the config: deployment values, and the key exchanges this sshd knows ---
mkdir -p "$run_dir" || fail "cannot create the run folder $run_dir"
[ -w "$run_dir" ] || fail "the run folder $run_dir is not writable"
known_kex=$(ssh -Q kex 2>/dev/null | tr '\n' ' ') ||
	fail "cannot list the key exchanges of this OpenSSH (ssh -Q kex)"
rendered=$run_dir/sshd_config
partial=$run_dir/.sshd_config.$$
awk -v host_key="$host_key" -v port="$port" -v listen="$listen" \
	-v pid="$run_dir/sshd.pid" -v keys="$authorized_keys" -v user="$user" \
	-v permit_open="$permit_open" -v known_kex=" $known_kex " '
	function set(name, value) { print name " " value; seen[name] = 1 }
	{
		word = tolower($1)
		if (word == "match") in_match = 1
		if (in_match) { print; next }
		if (word == "hostkey") { if (!seen["HostKey"]) set("HostKey", host_key); next }
		if (word == "port") { set("Port", port); next }
		if (word == "listenaddress") { if (!seen["ListenAddress"]) set("ListenAddress", listen); next }
		if (word == "pidfile") { set("PidFile", pid); next }
		if (word == "authorizedkeysfile") { set("AuthorizedKeysFile", keys); next }
		if (word == "allowusers") { set("AllowUsers", user); next }
		if (word == "permitopen" && permit_open != "") { set("PermitOpen", permit_open); next }
		if (word == "kexalgorithms") {
			n = split($2, names, ",")
			kept = ""
			for (i = 1; i <= n; i++)
				if (index(known_kex, " " names[i] " ")) kept = kept (kept == "" ? "" : ",") names[i]
				else dropped = dropped " " names[i]
			if (kept == "") { print "no key exchange of the policy is known to this OpenSSH:" dropped > "/dev/stderr"; failed = 1; exit 1 }
			set("KexAlgorithms", kept)
			next
		}
		print
	}
	END {
		if (failed) exit 1
		if (dropped != "") print "entrypoint: this OpenSSH lacks key exchanges" dropped ", offering the others" > "/dev/stderr"
		if (!seen["HostKey"] || !seen["Port"] || !seen["PidFile"] || !seen["AuthorizedKeysFile"] || !seen["AllowUsers"] || (permit_open != "" && !seen["PermitOpen"])) {
			print "entrypoint: the sshd policy lacks one of HostKey, Port, PidFile, AuthorizedKeysFile, AllowUsers, PermitOpen" > "/dev/stderr"
			exit 1
		}
	}' "$template" >"$partial" || {
	rm -f "$partial"
	fail "cannot render $template into $rendered"
}
mv -f "$partial" "$rendered"

if ! problems=$("$sshd" -t -f "$rendered" 2>&1); then
	fail "sshd refused the configuration $rendered (rendered from $template): $(printf '%s' "$problems" | tr '\n' ' ')"
fi

if [ "$mode" = check ]; then
	printf '%s\n' "$rendered"
	exit 0
fi

note "$keys authorized key(s) in $authorized_keys:"
ssh-keygen -l -f "$authorized_keys" >&2 || true
note "starting sshd as $(id -un) on $listen:$port"
exec "$sshd" -D -e -f "$rendered"
