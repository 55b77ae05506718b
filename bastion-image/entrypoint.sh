#!/bin/sh
# Starts the bastion's sshd: host keys from a mounted folder (generated once when the folder is
# writable and has none), authorized keys and the certificate files (user CA keys, principals,
# revocation list) from mounted files, PermitOpen from the environment. Renders sshd_config
# into the run folder, checks it with `sshd -t`, and refuses to start on any error. Then the
# audit reader (`bastion-session --sshd`) replaces this script and starts sshd in the
# foreground as its child, logging to stderr through it: it copies sshd's lines to stderr and
# the audit's JSON lines (the sessions', from a FIFO in the run folder, and its own for each
# forward and each connection's end) to stdout.
#
#   entrypoint.sh          validate, then run sshd under the audit reader
#   entrypoint.sh check    validate only; prints the rendered config's path
#
# Environment (defaults are the image's paths; the tests point them at a temporary folder):
#   BASTION_SSHD_CONFIG      policy file to render        /etc/bastion/sshd_config
#   BASTION_HOST_KEY_DIR     host keys (a Secret)         /etc/bastion/host-keys
#   BASTION_AUTHORIZED_KEYS  authorized keys (ConfigMap)  /etc/bastion/authorized-keys/authorized_keys
#   BASTION_TRUSTED_USER_CA_KEYS  user CA keys (ConfigMap) /etc/bastion/access/trusted_user_ca_keys
#   BASTION_AUTHORIZED_PRINCIPALS principals (ConfigMap)   /etc/bastion/access/principals
#   BASTION_REVOKED_KEYS     the KRL (ConfigMap)          /etc/bastion/access/revoked_keys
#   BASTION_RUN_DIR          rendered config, pid file, audit FIFO  /run/bastion
#   BASTION_SESSION          the session wrapper (ForceCommand)     /usr/local/bin/bastion-session
#   BASTION_RECORD_SESSIONS  1: record PTY sessions as asciicast v2 files   (off)
#   BASTION_RECORD_DIR       where the recordings go (a volume)   /var/lib/bastion/sessions
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
ca_keys=${BASTION_TRUSTED_USER_CA_KEYS:-/etc/bastion/access/trusted_user_ca_keys}
principals=${BASTION_AUTHORIZED_PRINCIPALS:-/etc/bastion/access/principals}
krl=${BASTION_REVOKED_KEYS:-/etc/bastion/access/revoked_keys}
run_dir=${BASTION_RUN_DIR:-/run/bastion}
session=${BASTION_SESSION:-/usr/local/bin/bastion-session}
record=${BASTION_RECORD_SESSIONS:-0}
record_dir=${BASTION_RECORD_DIR:-/var/lib/bastion/sessions}
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
[ -x "$session" ] || fail "no session wrapper at $session (it writes the audit lines): set BASTION_SESSION"
case $session in
*[!A-Za-z0-9/._-]*) fail "BASTION_SESSION '$session': only letters, digits and / . _ - (sshd's ForceCommand runs it through a shell)" ;;
esac

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

# --- public key files: every line a public key ---
# key_lines FILE: the number of key lines of FILE, each checked; stops naming the first bad
# line. ssh-keygen lists the valid keys of a file and skips the rest silently: one call when
# every line is good, a line-by-line pass only to name the first bad line.
key_lines() {
	keys=$(grep -cEv '^[[:space:]]*(#|$)' "$1" || true)
	valid=$(ssh-keygen -l -f "$1" 2>/dev/null | grep -c . || true)
	if [ "$valid" -ne "$keys" ]; then
		line_no=0
		while IFS= read -r line || [ -n "$line" ]; do
			line_no=$((line_no + 1))
			if printf '%s\n' "$line" | grep -qEv '^[[:space:]]*(#|$)'; then
				printf '%s\n' "$line" | ssh-keygen -l -f - >/dev/null 2>&1 ||
					fail "$1:$line_no: not a public key line (expected [options] TYPE BASE64 [comment])"
			fi
		done <"$1"
		fail "$1: $keys key lines but ssh-keygen reads $valid"
	fi
	printf '%s\n' "$keys"
}
readable() { [ -f "$1" ] && [ -r "$1" ]; }

# --- certificates: the user CA keys, then the principals and the KRL that go with them ---
# An absent CA file (or one without a key) leaves certificates out; the others are then unused.
cas=0
if [ -e "$ca_keys" ]; then
	readable "$ca_keys" || fail "cannot read the user CA keys $ca_keys as $(id -un)"
	cas=$(key_lines "$ca_keys") || exit 1
fi
if [ "$cas" -eq 0 ]; then
	note "no user CA key in $ca_keys: certificates are not accepted, only authorized keys"
	ca_keys='' principals='' krl=''
else
	if [ -e "$principals" ]; then
		readable "$principals" || fail "cannot read the principals $principals as $(id -un)"
		line_no=0
		names=0
		while IFS= read -r line || [ -n "$line" ]; do
			line_no=$((line_no + 1))
			case $line in
			'' | '#'*) continue ;;
			esac
			printf '%s\n' "$line" | grep -qE '^[A-Za-z0-9._@+-]+$' ||
				fail "$principals:$line_no: not a principal name (one name per line: letters, digits, . _ @ + -)"
			names=$((names + 1))
		done <"$principals"
		[ "$names" -gt 0 ] || fail "$principals names no principal: no certificate could log in"
		note "$cas user CA key(s) in $ca_keys; principals: $(grep -Ev '^(#|$)' "$principals" | paste -sd ' ' -)"
	else
		note "$cas user CA key(s) in $ca_keys; no $principals: a certificate must name the user '$user'"
		principals=
	fi
	if [ -e "$krl" ]; then
		readable "$krl" || fail "cannot read the revocation list $krl as $(id -un)"
		# ssh-keygen -Q: 0 not revoked, 1 revoked, 255 not a KRL. Asked about a key of our own.
		probe_dir=$(mktemp -d)
		ssh-keygen -q -t ed25519 -N '' -f "$probe_dir/k" >/dev/null 2>&1
		krl_status=0
		problem=$(ssh-keygen -Q -f "$krl" "$probe_dir/k.pub" 2>&1 >/dev/null) || krl_status=$?
		rm -rf "$probe_dir"
		[ "$krl_status" -le 1 ] ||
			fail "$krl is not an OpenSSH key revocation list (paragon-admin access revoke writes one): $problem"
		note "revocation list: $krl"
	else
		note "no revocation list $krl: no certificate or key is revoked"
		krl=
	fi
fi

# --- authorized keys: every line a public key; at least one unless a user CA is trusted ---
keys=0
if [ -e "$authorized_keys" ] || [ "$cas" -eq 0 ]; then
	readable "$authorized_keys" ||
		fail "cannot read the authorized keys $authorized_keys: mount the authorized keys file there or set BASTION_AUTHORIZED_KEYS"
	keys=$(key_lines "$authorized_keys") || exit 1
fi
[ "$keys" -gt 0 ] || [ "$cas" -gt 0 ] || fail "$authorized_keys holds no key and no user CA is trusted: nobody could log in"

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
case $run_dir in
*"'"*) fail "BASTION_RUN_DIR '$run_dir' holds a quote: sshd's ForceCommand could not name the audit FIFO in it" ;;
esac
session_args="--audit-fifo '$run_dir/audit.fifo'"
case $record in
0 | '') ;;
1)
	case $record_dir in
	*"'"*) fail "BASTION_RECORD_DIR '$record_dir' holds a quote: sshd's ForceCommand could not name it" ;;
	esac
	if [ ! -d "$record_dir" ] || [ ! -w "$record_dir" ]; then
		fail "BASTION_RECORD_SESSIONS=1 but $record_dir is not a folder $(id -un) can write: mount a volume there or set BASTION_RECORD_DIR"
	fi
	session_args="$session_args --record '$record_dir'"
	note "recording sessions with a PTY as asciicast v2 files in $record_dir"
	;;
*) fail "BASTION_RECORD_SESSIONS '$record' is neither 0 nor 1" ;;
esac
mkdir -p "$run_dir" || fail "cannot create the run folder $run_dir"
[ -w "$run_dir" ] || fail "the run folder $run_dir is not writable"
known_kex=$(ssh -Q kex 2>/dev/null | tr '\n' ' ') ||
	fail "cannot list the key exchanges of this OpenSSH (ssh -Q kex)"
rendered=$run_dir/sshd_config
partial=$run_dir/.sshd_config.$$
awk -v host_key="$host_key" -v port="$port" -v listen="$listen" \
	-v pid="$run_dir/sshd.pid" -v keys="$authorized_keys" -v user="$user" \
	-v permit_open="$permit_open" -v known_kex=" $known_kex " \
	-v ca_keys="$ca_keys" -v principals="$principals" -v krl="$krl" -v session="$session $session_args" '
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
		if (word == "trustedusercakeys") { if (ca_keys != "") set("TrustedUserCAKeys", ca_keys); next }
		if (word == "authorizedprincipalsfile") { if (principals != "") set("AuthorizedPrincipalsFile", principals); next }
		if (word == "revokedkeys") { if (krl != "") set("RevokedKeys", krl); next }
		if (word == "forcecommand") { set("ForceCommand", session); next }
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
		if (!seen["HostKey"] || !seen["Port"] || !seen["PidFile"] || !seen["AuthorizedKeysFile"] || !seen["AllowUsers"] || !seen["ForceCommand"] || (permit_open != "" && !seen["PermitOpen"])) {
			print "entrypoint: the sshd policy lacks one of HostKey, Port, PidFile, AuthorizedKeysFile, AllowUsers, ForceCommand, PermitOpen" > "/dev/stderr"
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

if [ "$keys" -gt 0 ]; then
	note "$keys authorized key(s) in $authorized_keys:"
	ssh-keygen -l -f "$authorized_keys" >&2 || true
fi
# The audit: each session's wrapper writes its JSON lines (each under PIPE_BUF, so atomic)
# into this FIFO. This process becomes the log reader (`bastion-session --sshd`), sshd's
# parent: it copies the FIFO's lines to stdout, the container's log, and turns sshd's own log
# lines (each with the pid the kernel says wrote it) into the forward and connection-end
# lines, since a forward runs no session. As the container's first process, nothing inside
# the container can kill it.
audit=$run_dir/audit.fifo
rm -f "$audit"
mkfifo -m 0600 "$audit" || fail "cannot create the audit FIFO $audit"
note "audit: one JSON line per session start and end, per forward and per connection end on stdout (from $audit and sshd's log)"
note "starting sshd as $(id -un) on $listen:$port"
exec "$session" --sshd --audit-fifo "$audit" -- "$sshd" -D -e -f "$rendered"
