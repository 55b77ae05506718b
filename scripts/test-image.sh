#!/usr/bin/env bash
# Builds the bastion image from the committed Dockerfile with podman and the offline inputs
# only (no network during the build), starts it as the Deployment runs it, and uses it as an
# operator would, through paragon-admin:
#   - the base: a trixie root holding bastion-image/packages, made with mmdebstrap from
#     Debian's archive and `podman import`ed, cached on the machine (scripts/debian-roots.sh);
#   - paragon-admin: the dev build the suite has (`--build-context paragon-admin=`);
#   - kubectl: the one the suite installs, with its checksum passed (it is not the pinned
#     version); helm: no release can be had here, so a stand-in script that prints its
#     arguments takes its place (said so in the output);
#   - bad offline inputs, a build without them and one from a base lacking the packages (the
#     VM package test's bare root) stop before any image is made, naming the file and the
#     checksum expected, or pointing to the README's "Offline build";
#   - the container: uid 10001, read-only root, no capability, no new privileges, the host-key
#     folder (a named volume) and the authorized keys mounted, host networking on loopback;
#     through it `ssh -- CMD`, `kubectl`, `helm`, a forward PermitOpen allows and one it
#     refuses, `health` against the sandbox; the host key kept across `podman restart` and a
#     new container, and served from a read-only folder as a Secret is mounted; a bad
#     authorized_keys line stopping the start (`podman logs` names file and line); ssh-audit;
#     `podman inspect` against what the README promises;
#   - certificates (issue 22): a CA from `paragon-admin access ca init` mounted as the image's
#     TrustedUserCAKeys with the principals and the KRL of `access revoke`: a grant logs in, an
#     expired and a revoked one do not; the audit's JSON lines on the container's stdout (a
#     `paragon-admin kubectl` call's exact command, key id, serial and exit status; a plain
#     key's fingerprint); a read-only grant runs `kubectl get` and is refused `kubectl delete`
#     (audited); a bad CA key line stops the start; no CA folder leaves plain keys working.
# Ends with one line: `N passed, N failed`; exits 1 when anything failed. Containers, the
# volume, the image, processes and the work folder are removed on exit, also on failure. Kept
# between runs: the base root (tarball) and the base image made from it, the costly part (about
# 100 s and 10 s). The build itself keeps no layers (`--layers=false`): it takes about 10 s
# from that base, and a layer cache would leave intermediate images behind on every change.
# Needs root, podman and runc (scripts/test.sh installs them).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=scripts/debian-roots.sh
source scripts/debian-roots.sh

# crun refuses this kernel's hybrid cgroups; runc with cgroupfs runs.
PODMAN=(podman --runtime runc --cgroup-manager=cgroupfs)
BASE_PACKAGES="$(grep -v '^#' bastion-image/packages | paste -sd, -)"
HELM_STAND_IN_VERSION=v0.0.0-stand-in
# How long the container may take to serve, and any one wait.
DEADLINE_SECS=30

for tool in podman runc mmdebstrap ssh-keygen ssh-audit python3 curl kubectl cargo; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "test-image: $tool is missing: run scripts/test.sh, which installs it" >&2
    exit 1
  }
done
[[ $EUID -eq 0 ]] || { echo "test-image: run as root (podman as root)" >&2; exit 1; }

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok    $1"; }
fail() { failed=$((failed + 1)); echo "FAIL  $1${2:+: $2}"; }

work="$(mktemp -d /var/tmp/paragon-test-image.XXXXXX)"
chmod 0755 "$work"
tag=$$
IMAGE="localhost/paragon-admin-test/bastion:$tag"
volume="paragon-test-image-keys-$tag"
containers=()
pids=()
bin=
ca_name="image-test-$tag"
cleanup() {
  local c p
  [[ -n $bin ]] && "$bin" --config "$work/config.toml" agent stop --all >/dev/null 2>&1
  [[ -n $bin ]] && "$bin" secrets delete "access/$ca_name/ca-passphrase" >/dev/null 2>&1
  for c in "${containers[@]}"; do "${PODMAN[@]}" rm -f -t 0 "$c" >/dev/null 2>&1; done
  "${PODMAN[@]}" volume rm -f "$volume" >/dev/null 2>&1
  "${PODMAN[@]}" rmi -f "$IMAGE" >/dev/null 2>&1
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# until_deadline CMD...: runs CMD every 0.2 s until it succeeds or DEADLINE_SECS pass.
until_deadline() {
  local end=$((SECONDS + DEADLINE_SECS))
  until "$@"; do
    ((SECONDS < end)) || return 1
    sleep 0.2
  done
}
listens() { python3 -c "import socket; socket.create_connection(('127.0.0.1',$1),0.5).close()" 2>/dev/null; }

# --- the inputs: base root, binary, tools ------------------------------------------------

# base_image FLAVOUR PACKAGES: the local image of a cached trixie root with those packages,
# made and imported when missing (older imports of the flavour removed); prints its name.
base_image() {
  local flavour="$1" packages="$2" tarball image
  tarball="$(root_tar trixie "$flavour" "$packages")"
  image="localhost/paragon-admin-test/trixie-$flavour:$(basename "$tarball" .tar | sed 's/.*-//')"
  make_root trixie "$flavour" "$packages" || return 1
  [[ -s $tarball ]] || return 1
  if ! "${PODMAN[@]}" image exists "$image"; then
    "${PODMAN[@]}" import -q "$tarball" "$image" >&2 || return 1
  fi
  "${PODMAN[@]}" images --format '{{.Repository}}:{{.Tag}}' "localhost/paragon-admin-test/trixie-$flavour" |
    grep -vxF "$image" | xargs -r "${PODMAN[@]}" rmi >/dev/null 2>&1
  echo "$image"
}

started=$SECONDS
# The image's base holds every package; a bare one (the VM package test's root: openssh-server
# only) shows what a build without network and without such a base does.
base_image bastion-base "$BASE_PACKAGES" >"$work/base" 2>"$work/base.log" &
base_maker=$!
base_image vm openssh-server >"$work/bare-base" 2>"$work/bare-base.log" &
bare_base_maker=$!
cargo build --locked --quiet --bin paragon-admin 2>"$work/cargo.log" &
builder=$!

if wait "$builder"; then
  bin="$work/paragon-admin"
  cp "${CARGO_TARGET_DIR:-target}/debug/paragon-admin" "$bin"
else
  tail -n 20 "$work/cargo.log"
  fail "cargo build --bin paragon-admin" "see the lines above"
fi
wait "$base_maker"
base="$(cat "$work/base")"
if [[ -z $base ]]; then
  tail -n 20 "$work/base.log"
  fail "trixie base with bastion-image/packages (mmdebstrap, podman import)" "see the lines above"
fi
wait "$bare_base_maker"
bare_base="$(cat "$work/bare-base")"
if [[ -z $bare_base ]]; then
  tail -n 20 "$work/bare-base.log"
  fail "bare trixie base (mmdebstrap, podman import)" "see the lines above"
fi
if [[ -z $bin || -z $base ]]; then
  echo "$passed passed, $failed failed"
  exit 1
fi
echo "      inputs ready (base $base): $((SECONDS - started)) s"

# --- certificates: a user CA, its grants, a revocation, made while the images build ------
# alice: a grant; bob: two seconds, expired by the time he tries; carol: revoked; dave:
# read-only; erin: a second grant, forwarding beside alice's (the forward audit). The CA's passphrase goes to the keyring (removed on exit).
access="$work/access"
mkdir -p "$access" "$work/no-access" "$work/bad-access" "$work/client-home"
make_grants() {
  local name who flags krl
  export HOME="$work/client-home" XDG_CONFIG_HOME="$work/client-home/.config"
  "$bin" access ca init "$ca_name" >"$access/trusted_user_ca_keys" || return 1
  echo ops >"$access/principals"
  for who in alice:8h bob:2s carol:8h dave:8h erin:8h; do
    name="${who%%:*}"
    ssh-keygen -q -t ed25519 -N '' -C "$name@paragon-test" -f "$work/$name" || return 1
    flags=()
    [[ $name == dave ]] && flags=(--read-only)
    "$bin" access grant --ca "$ca_name" --key "$work/$name.pub" --principal ops --valid-for "${who#*:}" \
      --key-id "$name@example.com" "${flags[@]}" >/dev/null || return 1
  done
  krl="$("$bin" access revoke carol@example.com)" && cp "$krl" "$access/revoked_keys" || return 1
  chmod 0644 "$access"/*
}
make_grants 2>"$work/ca.err" &
grants_maker=$!
pids+=("$grants_maker")


mkdir -p "$work/prebuilt" "$work/tools" "$work/helm/linux-amd64"
cp "$bin" "$work/prebuilt/paragon-admin"
kubectl_file="$(readlink -f "$(command -v kubectl)")"
cp "$kubectl_file" "$work/tools/kubectl"
kubectl_version="$(kubectl version --client -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])')"
kubectl_sha="$(sha256sum "$work/tools/kubectl" | cut -d ' ' -f 1)"
cat >"$work/helm/linux-amd64/helm" <<'EOF'
#!/bin/sh
# A stand-in for helm (no helm release can be had on the test machine): prints its arguments.
printf 'helm stand-in:'
printf ' [%s]' "$@"
printf '\n'
EOF
chmod 0755 "$work/helm/linux-amd64/helm"
helm_file="helm-$HELM_STAND_IN_VERSION-linux-amd64.tar.gz"
tar -czf "$work/tools/$helm_file" -C "$work/helm" linux-amd64
helm_sha="$(sha256sum "$work/tools/$helm_file" | cut -d ' ' -f 1)"
echo "      kubectl: $kubectl_file ($kubectl_version, SHA-256 $kubectl_sha)"
echo "      helm: NOT a helm release: a stand-in script that prints its arguments ($helm_file)"

# build ARGS...: the committed Dockerfile, repository root as context, no network.
build() {
  "${PODMAN[@]}" build --layers=false --format docker --network none -f bastion-image/Dockerfile \
    --build-arg DEBIAN_IMAGE="$base" "$@" .
}
offline_args=(
  --build-context paragon-admin="$work/prebuilt" --build-context tool-files="$work/tools"
  --build-arg KUBECTL_VERSION="$kubectl_version" --build-arg KUBECTL_SHA256="$kubectl_sha"
  --build-arg HELM_VERSION="$HELM_STAND_IN_VERSION" --build-arg HELM_SHA256="$helm_sha"
)

# --- paragon-read-only's parsing, run here with stand-ins that print their arguments -------
mkdir -p "$work/read-only-bin"
cp bastion-image/session "$work/read-only-bin/paragon-read-only"
for tool in kubectl helm; do
  printf '#!/bin/sh\nprintf "%%s" "%s"; printf " [%%s]" "$@"; echo\n' "$tool" >"$work/read-only-bin/$tool"
done
chmod 0755 "$work/read-only-bin"/*
# EXPECTED<TAB>COMMAND: EXPECTED is the argv the tool gets, or `refused`.
read_only_cases=$(cat <<'EOF'
kubectl [get] [pods] [-o] [jsonpath={..name}]	kubectl get pods -o 'jsonpath={..name}'
kubectl [-n] [paragon] [get] [pods]	kubectl -n paragon get pods
kubectl [--namespace=paragon] [logs] [deploy/api] [--tail] [5]	kubectl --namespace=paragon logs deploy/api --tail 5
kubectl [get] [pods] [a b] [c'd] [x y]	kubectl get pods "a b" 'c'\''d' x\ y
kubectl [top] [pods] [-A]	kubectl top pods -A
helm [list] [-A] [--filter] [a b]	helm list -A --filter 'a b'
helm [-n] [paragon] [get] [values] [api] [-o] [yaml]	helm -n paragon get values api -o yaml
refused	kubectl delete pod x
refused	kubectl --kubeconfig /tmp/k get pods
refused	kubectl get pods --as=system:admin
refused	kubectl get pods --as-group system:masters
refused	kubectl get pods --token abc
refused	kubectl get pods -s https://203.0.113.9
refused	kubectl get pods -As https://203.0.113.9
refused	kubectl get pods --server=https://203.0.113.9
refused	kubectl --context other get pods
refused	kubectl get -- pods
refused	kubectl exec api -- id
refused	kubectl get pods; id
refused	kubectl get pods $(id)
refused	kubectl get pods `id`
refused	kubectl get pods | sh
refused	kubectl get pods > /tmp/x
refused	kubectl get "$HOME"
refused	kubectl get pods &
refused	helm get values api --all
refused	helm get all api
refused	helm install api ./chart
refused	helm list --kube-token abc
refused	sh -c id
refused	
EOF
)
read_only_wrong=()
allowed=0
refusals=0
while IFS=$'\t' read -r expected command; do
  out="$(SSH_ORIGINAL_COMMAND="$command" PATH="$work/read-only-bin:$PATH" "$work/read-only-bin/paragon-read-only" 2>&1)"
  status=$?
  if [[ $expected == refused ]]; then
    if [[ $status -eq 126 && $out == "paragon-read-only: refused: "* && $out != *$'\n'* ]]; then
      refusals=$((refusals + 1))
    else
      read_only_wrong+=("'$command' not refused: status $status, '$out'")
    fi
  elif [[ $status -eq 0 && $out == "$expected" ]]; then
    allowed=$((allowed + 1))
  else
    read_only_wrong+=("'$command': status $status, '$out', wanted '$expected'")
  fi
done <<<"$read_only_cases"
if ((${#read_only_wrong[@]} == 0)); then
  pass "paragon-read-only: $allowed read commands run with their words intact, $refusals refused with one line and exit 126 (verbs, credential flags, -s, --, shell syntax)"
else
  fail "paragon-read-only's parsing" "${read_only_wrong[*]}"
fi

# --- bad offline inputs: each stops the build, and no image is made ---------------------

# refused NAME EXPECTED_TEXT BUILD_ARGS...
refused() {
  local name="$1" expected="$2" probe="localhost/paragon-admin-test/refused-$tag"
  shift 2
  if build -t "$probe" "$@" >"$work/refused.log" 2>&1; then
    "${PODMAN[@]}" rmi "$probe" >/dev/null 2>&1
    fail "$name" "the build succeeded"
  elif "${PODMAN[@]}" image exists "$probe"; then
    "${PODMAN[@]}" rmi "$probe" >/dev/null 2>&1
    fail "$name" "the build failed but left the image $probe"
  elif grep -qF -- "$expected" "$work/refused.log"; then
    pass "$name ($(grep -F -- "$expected" "$work/refused.log" | head -n 1 | sed 's/^.*tool-input: //'))"
  else
    fail "$name" "no '$expected' in: $(grep -iE 'error|tool-input' "$work/refused.log" | tail -n 3 | tr '\n' ' ')"
  fi
}
prebuilt=(--build-context paragon-admin="$work/prebuilt")
refused "no network and no tool files: stops at the first download, points to the offline build" \
  "(no network?): build offline, see bastion-image/README.md, \"Offline build\"" "${prebuilt[@]}"
refused "an unpinned kubectl without its checksum is refused" \
  "kubectl $kubectl_version (linux/amd64) is not a pinned version" \
  "${prebuilt[@]}" --build-context tool-files="$work/tools" --build-arg KUBECTL_VERSION="$kubectl_version"
refused "a kubectl whose checksum differs names the file and both checksums" \
  "offline folder: kubectl has SHA-256 $kubectl_sha, expected $helm_sha" \
  "${prebuilt[@]}" --build-context tool-files="$work/tools" \
  --build-arg KUBECTL_VERSION="$kubectl_version" --build-arg KUBECTL_SHA256="$helm_sha"
if [[ -n $bare_base ]]; then
  refused "no network and a base without the packages: stops at apt-get update, points to the offline build" \
    "apt-get update failed (no network?): build from a base that holds /etc/bastion/packages, see bastion-image/README.md, \"Offline build\"" \
    "${offline_args[@]}" --build-arg DEBIAN_IMAGE="$bare_base"
fi
mkdir -p "$work/tools-without-helm"
cp "$work/tools/kubectl" "$work/tools-without-helm/"
refused "a missing helm file names the file and the checksum expected" \
  "the offline folder has no helm-v3.19.0-linux-amd64.tar.gz: put helm v3.19.0 (linux/amd64, SHA-256 a7f81ce08007091b86d8bd696eb4d86b8d0f2e1b9f6c714be62f82f96a594496)" \
  "${prebuilt[@]}" --build-context tool-files="$work/tools-without-helm" \
  --build-arg KUBECTL_VERSION="$kubectl_version" --build-arg KUBECTL_SHA256="$kubectl_sha"

# --- the image ------------------------------------------------------------------------------

started=$SECONDS
if build -t "$IMAGE" "${offline_args[@]}" \
  --build-arg REVISION="$(git rev-parse HEAD)" \
  --build-arg CREATED="$(git log -1 --format=%cI)" >"$work/build.log" 2>&1; then
  pass "the image builds offline (--network none) from the committed Dockerfile: $((SECONDS - started)) s"
else
  tail -n 30 "$work/build.log"
  fail "the image builds offline from the committed Dockerfile" "see the lines above"
  echo "$passed passed, $failed failed"
  exit 1
fi
if grep -q 'the base image holds every package: nothing to install' "$work/build.log" &&
  grep -q "tool-input: kubectl $kubectl_version from offline folder: kubectl, SHA-256 $kubectl_sha checked" "$work/build.log"; then
  pass "no download in the build: packages from the base, kubectl and helm from the offline folder, checksums checked"
else
  fail "no download in the build" "$(grep -E 'tool-input|nothing to install|apt-get' "$work/build.log" | tr '\n' ' ')"
fi

inspect="$("${PODMAN[@]}" image inspect "$IMAGE")"
promises="$(python3 - "$inspect" "$(git rev-parse HEAD)" "$base" <<'EOF'
import json, sys
image = json.loads(sys.argv[1])[0]
config = image["Config"]
labels = config.get("Labels") or {}
wrong = []
want = {
    "org.opencontainers.image.title": "paragon-bastion",
    "org.opencontainers.image.licenses": "Apache-2.0",
    "org.opencontainers.image.revision": sys.argv[2],
    "org.opencontainers.image.base.name": sys.argv[3],
}
for key, value in want.items():
    if labels.get(key) != value:
        wrong.append(f"label {key}={labels.get(key)!r}, wanted {value!r}")
for key in ("description", "version", "created"):
    if not labels.get(f"org.opencontainers.image.{key}"):
        wrong.append(f"no label org.opencontainers.image.{key}")
if config.get("User") != "10001:10001":
    wrong.append(f"User {config.get('User')!r}")
if config.get("Entrypoint") != ["/usr/local/bin/bastion-entrypoint"]:
    wrong.append(f"Entrypoint {config.get('Entrypoint')!r}")
if list(config.get("ExposedPorts") or {}) != ["2222/tcp"]:
    wrong.append(f"ExposedPorts {config.get('ExposedPorts')!r}")
if list(config.get("Volumes") or {}) != ["/etc/bastion/host-keys"]:
    wrong.append(f"Volumes {config.get('Volumes')!r}")
print("; ".join(wrong))
EOF
)"
if [[ -z $promises ]]; then
  pass "podman inspect: OCI labels (revision $(git rev-parse --short HEAD)), user 10001:10001, entry point, port 2222, host-key volume"
else
  fail "podman inspect shows what the README promises" "$promises"
fi

# --- what the container is given ------------------------------------------------------------

ssh-keygen -q -t ed25519 -N '' -C operator@paragon-test -f "$work/id_ed25519"
mkdir -p "$work/authorized-keys" "$work/bad-keys" "$work/run" "$work/home/.kube" "$work/recordings"
cp "$work/id_ed25519.pub" "$work/authorized-keys/authorized_keys"
{ cat "$work/id_ed25519.pub"; echo "ssh-ed25519 not-base64 broken@paragon-test"; } >"$work/bad-keys/authorized_keys"
chmod 0644 "$work/authorized-keys/authorized_keys" "$work/bad-keys/authorized_keys"

# The sandbox: the cluster for kubectl and health. Its kubeconfig is given to the bastion's
# kubectl in the login's home (the Deployment's service-account kubeconfig needs a cluster).
kc="$work/sandbox.kubeconfig"
"$bin" --quiet sandbox --listen 127.0.0.1:0 --kubeconfig-out "$kc" >"$work/sandbox.out" 2>"$work/sandbox.log" &
pids+=($!)
until_deadline test -s "$kc" || { cat "$work/sandbox.log"; fail "the sandbox starts"; }
api_port="$(sed -n 's|^ *server: https://127.0.0.1:\([0-9]*\).*|\1|p' "$kc" | head -n 1)"
cp "$kc" "$work/home/.kube/config"
# The login's run folder and home: owned by the login user (podman 4.3 ignores a tmpfs mode).
chown -R 10001:10001 "$work/run" "$work/home" "$work/recordings"
chmod 0700 "$work/run" "$work/home" "$work/recordings"

# Forward targets on the host's loopback: one PermitOpen allows, one it does not.
mkdir -p "$work/www"
echo "through the bastion image" >"$work/www/index.html"
allowed_port="$(free_port)"
python3 -m http.server --bind 127.0.0.1 --directory "$work/www" "$allowed_port" >/dev/null 2>"$work/allowed.log" &
pids+=($!)
denied_port="$(free_port)"
python3 -m http.server --bind 127.0.0.1 --directory "$work/www" "$denied_port" >/dev/null 2>"$work/denied.log" &
pids+=($!)
if ! until_deadline listens "$allowed_port" || ! until_deadline listens "$denied_port"; then
  fail "the forward targets listen"
fi

ssh_port="$(free_port)"
# run_bastion NAME KEYS_DIR HOST_KEYS [podman run options...]: the container as the Deployment
# runs it; HOST_KEYS is what is mounted on /etc/bastion/host-keys (a volume, or a folder ":ro");
# $mounted_access (the certificate files, the user CA ConfigMap) on /etc/bastion/access; the sandbox's
# kubeconfig as the image's own /etc/bastion/kubeconfig (the service account's, in a pod);
# sessions recorded (BASTION_RECORD_SESSIONS=1) into $work/recordings.
# Host networking: sshd listens on the host's 127.0.0.1 only, and its forwards reach the
# host's loopback services (the sandbox, the targets) as a pod reaches the cluster's.
run_bastion() {
  local name="$1" keys="$2" host_keys="$3"
  shift 3
  containers+=("$name")
  "${PODMAN[@]}" run --name "$name" "$@" \
    --network host --read-only --cap-drop all --security-opt no-new-privileges \
    --user 10001:10001 \
    -v "${host_keys%:ro}:/etc/bastion/host-keys${host_keys#"${host_keys%:ro}"}" \
    -v "$keys:/etc/bastion/authorized-keys:ro" -v "$mounted_access:/etc/bastion/access:ro" \
    -v "$work/home/.kube/config:/etc/bastion/kubeconfig:ro" \
    -e BASTION_RECORD_SESSIONS=1 -v "$work/recordings:/var/lib/bastion/sessions" \
    -v "$work/run:/run/bastion" -v "$work/home:/home/bastion" --tmpfs /tmp \
    -e BASTION_PORT="$ssh_port" -e BASTION_LISTEN_ADDRESS=127.0.0.1 \
    -e BASTION_PERMIT_OPEN="127.0.0.1:$allowed_port 127.0.0.1:$api_port" \
    "$IMAGE"
}

cat >"$work/config.toml" <<EOF
[profiles.image]
host = "127.0.0.1"
port = $ssh_port
user = "bastion"
identity_file = "$work/id_ed25519"
known_hosts = "$work/known_hosts"
strict_host_key_checking = "accept-new"
[profiles.image.kube]
kubeconfig = "$kc"

[profiles.strict]
host = "127.0.0.1"
port = $ssh_port
user = "bastion"
identity_file = "$work/id_ed25519"
known_hosts = "$work/known_hosts"
strict_host_key_checking = "yes"
EOF
export XDG_RUNTIME_DIR="$work/xdg-run" XDG_STATE_HOME="$work/state" HOME="$work/client-home" \
  XDG_CONFIG_HOME="$work/client-home/.config"
mkdir -m 0700 "$XDG_RUNTIME_DIR"
chmod 0700 "$HOME"
pa() { "$bin" --config "$work/config.toml" "$@"; }

# --- certificates: the grants made during the build, a profile each ----------------------
mounted_access="$access"
wait "$grants_maker"
if [[ -s $access/revoked_keys && -f $work/erin-cert.pub ]]; then
  pass "paragon-admin access: a user CA, five grants (one read-only, one for 2 s), a KRL revoking carol"
else
  fail "paragon-admin access ca init, grant, revoke" "$(tail -n 3 "$work/ca.err" | tr '\n' ' ')"
fi
for name in alice bob carol dave; do
  cat >>"$work/config.toml" <<EOF

[profiles.$name]
host = "127.0.0.1"
port = $ssh_port
user = "bastion"
identity_file = "$work/$name"
known_hosts = "$work/known_hosts"
strict_host_key_checking = "accept-new"
EOF
done
{ cat "$access/trusted_user_ca_keys"; echo "ssh-ed25519 not-base64 broken-ca"; } >"$work/bad-access/trusted_user_ca_keys"
chmod 0644 "$work/bad-access/trusted_user_ca_keys"
# The audit lines: the container's stdout (podman logs holds stderr too: JSON lines only).
audit_lines() { "${PODMAN[@]}" logs "$1" 2>&1 | grep '^{'; }

# --- the container --------------------------------------------------------------------------

started=$SECONDS
if run_bastion "paragon-test-bastion-$tag" "$work/authorized-keys" "$volume" -d >/dev/null 2>"$work/run.log" &&
  until_deadline listens "$ssh_port"; then
  pass "the container serves OpenSSH on 127.0.0.1:$ssh_port: $((SECONDS - started)) s"
else
  cat "$work/run.log"
  "${PODMAN[@]}" logs "paragon-test-bastion-$tag" 2>&1 | tail -n 20
  fail "the container starts and serves OpenSSH" "see the lines above"
  echo "$passed passed, $failed failed"
  exit 1
fi
first_fingerprint="$("${PODMAN[@]}" logs "paragon-test-bastion-$tag" 2>&1 | sed -n 's/^entrypoint: host key: //p')"

out="$(pa -p image ssh -- 'id -u; touch /etc/bastion/x 2>/dev/null || echo read-only; grep CapEff /proc/self/status; exit 7' 2>"$work/ssh.err")"
status=$?
if [[ $status -eq 7 && $out == *$'10001\nread-only\nCapEff:\t0000000000000000'* ]]; then
  pass "paragon-admin ssh -- CMD: exit status 7 back; uid 10001, read-only root, no capability"
else
  fail "paragon-admin ssh -- CMD" "status $status, out '$out', err $(tail -n 3 "$work/ssh.err" | tr '\n' ' ')"
fi

out="$(pa -p image kubectl --kubeconfig /home/bastion/.kube/config get namespaces -o name 2>"$work/kubectl.err")"
status=$?
if [[ $status -eq 0 && $out == *namespace/paragon* ]]; then
  pass "paragon-admin kubectl: the image's kubectl lists the sandbox's namespaces"
else
  fail "paragon-admin kubectl" "status $status, out '$out', err $(tail -n 3 "$work/kubectl.err" | tr '\n' ' ')"
fi
out="$(pa -p image kubectl version --client -o json 2>&1)"
if [[ $out == *"\"gitVersion\": \"$kubectl_version\""* ]]; then
  pass "the image's kubectl is the offline input ($kubectl_version)"
else
  fail "the image's kubectl is the offline input" "$out"
fi

out="$(pa -p image helm list -A --filter 'a b' 2>&1)"
if [[ $out == 'helm stand-in: [list] [-A] [--filter] [a b]' ]]; then
  pass "paragon-admin helm reaches the image's helm (the STAND-IN script, not a helm release), arguments intact"
else
  fail "paragon-admin helm reaches the image's helm" "$out"
fi

# --- certificates and the audit ---------------------------------------------------------------

bastion="paragon-test-bastion-$tag"
# audit_check NAME PYTHON_CONDITION: the container's audit lines as `lines` (parsed, in order)
# and `raw` (each line as written); passes when the condition holds within the deadline.
audit_check() {
  local name="$1" condition="$2" why
  audit_ok() {
    why="$(audit_lines "$bastion" | python3 -c '
import json, sys
raw = sys.stdin.read().splitlines()
try:
    lines = [json.loads(line) for line in raw]
except ValueError as e:
    print(f"not a JSON line: {e}"); sys.exit(1)
starts = {l["session"] for l in lines if l.get("event") == "session-start"}
ends = [l for l in lines if l.get("event") == "session-end"]
starts_lines = [l for l in lines if l.get("event") == "session-start"]
ok = eval(sys.argv[1])
if not ok:
    print(f"{len(lines)} lines, the last: {raw[-3:]}"); sys.exit(1)
' "$condition" 2>&1)"
  }
  if until_deadline audit_ok; then pass "$name"; else fail "$name" "$why"; fi
}

audit_check "the audit: every line JSON; each session one start and one end line (same id)" \
  'len(lines) >= 8 and len(starts) == len(ends) and all(e["session"] in starts for e in ends)'
plain_key="$(ssh-keygen -l -f "$work/id_ed25519.pub" | awk '{print $2}')"
audit_check "the audit of a plain key: its fingerprint, source, exit status 7 of \`ssh -- CMD\`" \
  "any(e['auth'] == 'key' and e['key'] == 'ED25519 $plain_key' and e['key_id'] is None and e['source'] == '127.0.0.1' and isinstance(e['source_port'], int) and e['exit_status'] == 7 and e['pty'] is False and e['command'].endswith('exit 7') for e in ends)"

out="$(pa -p alice --no-agent kubectl get pods -o 'jsonpath={..name}' 2>"$work/alice.err")"
alice_status=$?
if [[ $alice_status -eq 0 ]]; then
  pass "a grant from paragon-admin access logs in with only the CA trusted: kubectl get pods (${out:-no pods})"
else
  fail "a grant logs in with only the CA trusted" "status $alice_status: $(tail -n 3 "$work/alice.err" | tr '\n' ' ')"
fi
audit_check "the audit of paragon-admin kubectl get pods -o 'jsonpath={..name}': the command byte for byte, key id, serial 1, exit status $alice_status, duration" \
  "any(e['command'] == \"kubectl get pods -o 'jsonpath={..name}'\" and __import__('shlex').split(e['command']) == ['kubectl', 'get', 'pods', '-o', 'jsonpath={..name}'] and e['auth'] == 'certificate' and e['key_id'] == 'alice@example.com' and e['serial'] == 1 and e['principals'] == ['ops'] and e['exit_status'] == $alice_status and e['duration_s'] >= 0 and e['forced_command'] is None for e in ends) and any(l['event'] == 'session-start' and l['key_id'] == 'alice@example.com' and l['command'].startswith('kubectl get pods') for l in lines)"

out="$(pa -p bob --no-agent ssh -- echo in </dev/null 2>&1)"
status=$?
if [[ $status -eq 255 && $out == *expired* ]]; then
  pass "an expired grant does not log in (exit 255:$(grep -o '[^:]*expired[^.]*' <<<"$out" | head -n 1))"
else
  fail "an expired grant does not log in" "status $status: $out"
fi
out="$(pa -p carol --no-agent ssh -- echo in </dev/null 2>&1)"
status=$?
# grep -c, not -q: under pipefail, a grep that stops early fails the pipeline (podman: SIGPIPE).
if [[ $status -eq 255 && $out != *in ]] && [[ $("${PODMAN[@]}" logs "$bastion" 2>&1 | grep -c 'revoked by file') -gt 0 ]]; then
  pass "a grant revoked by the KRL of paragon-admin access revoke does not log in (exit 255; sshd: revoked by file)"
else
  fail "a revoked grant does not log in" "status $status: $out; $("${PODMAN[@]}" logs "$bastion" 2>&1 | grep -i revok | tail -n 2)"
fi

out="$(pa -p dave --no-agent kubectl get namespaces -o name 2>"$work/dave.err")"
status=$?
if [[ $status -eq 0 && $out == *namespace/paragon* ]]; then
  pass "a read-only grant runs kubectl get (through paragon-read-only)"
else
  fail "a read-only grant runs kubectl get" "status $status, out '$out', err $(tail -n 3 "$work/dave.err" | tr '\n' ' ')"
fi
pa -p dave --no-agent kubectl delete namespace paragon >"$work/dave.out" 2>"$work/dave.err"
status=$?
refusal="paragon-read-only: refused: kubectl delete is not a read verb"
if [[ $status -eq 126 && $(cat "$work/dave.err") == *"$refusal"* ]]; then
  pass "a read-only grant is refused kubectl delete: exit 126, '$refusal'"
else
  fail "a read-only grant is refused kubectl delete" "status $status: $(tail -n 3 "$work/dave.err" | tr '\n' ' ')"
fi
for attempt in "kubectl -n paragon --as=system:admin get pods" "kubectl get pods; id" "helm get all release"; do
  out="$(pa -p dave --no-agent ssh -- "$attempt" </dev/null 2>&1)"
  status=$?
  if [[ $status -eq 126 && $out == "paragon-read-only: refused: "* ]]; then
    pass "read-only refuses '$attempt': $(sed 's/^paragon-read-only: refused: //; s/ (a read-only.*//' <<<"$out")"
  else
    fail "read-only refuses '$attempt'" "status $status: $out"
  fi
done
audit_check "the audit of the read-only refusal: the refused line, the session's forced command, key id and exit status 126" \
  "any(l['event'] == 'read-only-refused' and l['command'] == 'kubectl delete namespace paragon' and 'delete' in l['reason'] and any(e['session'] == l['session'] and e['forced_command'] == 'paragon-read-only' and e['key_id'] == 'dave@example.com' and e['exit_status'] == 126 for e in ends) for l in lines)"

# An interactive session with a PTY (the OpenSSH client, -tt), recorded as asciicast v2. Its
# input stays open (a background sleep) until the remote shell has exited.
exec {typed}< <(printf 'echo "recorded-%s"\nexit 3\n' "$tag"; exec sleep 60)
typist=$!
timeout 60 ssh -tt -F none -i "$work/id_ed25519" -o IdentitiesOnly=yes -o IdentityAgent=none \
  -o BatchMode=yes -o UserKnownHostsFile="$work/openssh_known_hosts" -o StrictHostKeyChecking=accept-new \
  -p "$ssh_port" bastion@127.0.0.1 <&"$typed" >"$work/pty.out" 2>&1
status=$?
exec {typed}<&-
kill "$typist" 2>/dev/null
casts=("$work"/recordings/*.cast)
why="$(python3 - "$status" "$tag" "${casts[@]}" 2>&1 <<'EOF'
import json, sys
status, tag, files = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
if status != 3:
    sys.exit(f"ssh -tt exit status {status}")
if len(files) != 1 or not files[0].endswith(".cast"):
    sys.exit(f"recordings: {files}")
lines = open(files[0], encoding="utf-8").read().splitlines()
header = json.loads(lines[0])
if header.get("version") != 2 or not isinstance(header.get("width"), int) or not isinstance(header.get("height"), int):
    sys.exit(f"header {header}")
events = [json.loads(l) for l in lines[1:]]
times = [e[0] for e in events]
if not events or any(len(e) != 3 or e[1] != "o" or not isinstance(e[2], str) for e in events) or times != sorted(times):
    sys.exit(f"events {events[:3]}")
if f"recorded-{tag}" not in "".join(e[2] for e in events):
    sys.exit("the output is not in the recording")
print(f"{len(events)} events, {header['width']}x{header['height']}")
EOF
)"
if [[ $? -eq 0 && ! -e ${casts[0]%.cast}.timing && ! -e ${casts[0]%.cast}.out ]]; then
  pass "a PTY session is recorded as an asciicast v2 file that replays: header first, every line JSON ($why)"
else
  fail "a PTY session is recorded as asciicast v2" "$why; $(tail -n 3 "$work/pty.out" | tr '\n' ' '); $(ls "$work/recordings")"
fi
cast_name="$(basename "${casts[0]}")"
audit_check "the audit of the PTY session: pty true, exit status 3, the recording's file" \
  "any(e['pty'] is True and e['command'] is None and e['exit_status'] == 3 and e.get('recording') == '/var/lib/bastion/sessions/$cast_name' and e['recording'].endswith(e['session'] + '.cast') for e in ends)"

# A forward to both targets with alice's grant: the allowed one serves, the other is refused
# by sshd. Beside it, erin's grant forwards to the sandbox's API with OpenSSH's `ssh -N -L`
# (a connection with no session at all): the two connections' forwards interleave, and each
# audit line must name its own grant. No agent: the connection ends with the command.
# The binary itself in the background (not the function), so that its pid is the one killed.
"$bin" --config "$work/config.toml" -p alice --no-agent --output json forward \
  "0:127.0.0.1:$allowed_port" "0:127.0.0.1:$denied_port" >"$work/forward.out" 2>"$work/forward.err" &
forward=$!
pids+=("$forward")
erin_port="$(free_port)"
ssh -N -F none -i "$work/erin" -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes \
  -o UserKnownHostsFile="$work/openssh_known_hosts" -o StrictHostKeyChecking=accept-new \
  -o ExitOnForwardFailure=yes -L "127.0.0.1:$erin_port:127.0.0.1:$api_port" \
  -p "$ssh_port" bastion@127.0.0.1 2>"$work/erin-forward.err" &
erin_forward=$!
pids+=("$erin_forward")
local_of() { sed -n "s/.*\"local\":\"127.0.0.1:\([0-9]*\)\",\"target\":\"127.0.0.1:$1\".*/\1/p" "$work/forward.out" 2>/dev/null; }
both_listen() { [[ -n $(local_of "$allowed_port") && -n $(local_of "$denied_port") ]]; }
if until_deadline both_listen; then
  body="$(curl -fsS --max-time 10 "http://127.0.0.1:$(local_of "$allowed_port")/")"
  if [[ $body == "through the bastion image" ]]; then
    pass "a forward PermitOpen allows (127.0.0.1:$allowed_port) serves through the container"
  else
    fail "a forward PermitOpen allows" "body '$body', stderr $(tail -n 3 "$work/forward.err" | tr '\n' ' ')"
  fi
  curl -sS --max-time 10 "http://127.0.0.1:$(local_of "$denied_port")/" >/dev/null 2>&1
  # sshd answers "open failed" (reason: administratively prohibited) and logs why.
  refusal="the bastion could not connect to 127.0.0.1:$denied_port: administratively prohibited (the bastion's PermitOpen or AllowTcpForwarding): open failed"
  denied_log() {
    grep -qF "$refusal" "$work/forward.err" &&
      "${PODMAN[@]}" logs "paragon-test-bastion-$tag" 2>&1 |
      grep -q "to connect to host 127.0.0.1 port $denied_port, but the request was denied"
  }
  if until_deadline denied_log && ! grep -q 'GET' "$work/denied.log"; then
    pass "a forward PermitOpen does not allow is refused: client '$refusal', podman logs 'but the request was denied', target never contacted"
  else
    fail "a forward PermitOpen does not allow is refused" \
      "client: $(tail -n 2 "$work/forward.err" | tr '\n' ' '); target log: $(head -c 200 "$work/denied.log")"
  fi
  # Interleaved: erin's, alice's, erin's (alice's first two are above).
  if until_deadline listens "$erin_port"; then
    curl -fsS --max-time 10 -o /dev/null "http://127.0.0.1:$(local_of "$allowed_port")/"
    listens "$erin_port"
  else
    fail "ssh -N -L with erin's grant listens" "$(tail -n 3 "$work/erin-forward.err" | tr '\n' ' ')"
  fi
else
  fail "the forward listens" "$(tail -n 5 "$work/forward.err" | tr '\n' ' ')"
fi
kill "$forward" "$erin_forward" 2>/dev/null
wait "$forward" "$erin_forward" 2>/dev/null

# The forward audit: one line per forward, from sshd's own log, with the identity of the
# connection that asked (the grant's key id and serial, the source port) and the target; one
# line per connection's end with the count. `fw`: the forward lines; `ce`: the connection ends.
fw="[l for l in lines if l['event'] == 'forward']"
ce="[l for l in lines if l['event'] == 'connection-end']"
audit_check "the audit of paragon-admin forward (alice's grant): a forward line, key id, serial 1, source, target 127.0.0.1:$allowed_port, opened" \
  "any(f['key_id'] == 'alice@example.com' and f['serial'] == 1 and f['auth'] == 'certificate' and f['user'] == 'bastion' and f['source'] == '127.0.0.1' and isinstance(f['source_port'], int) and f['target'] == '127.0.0.1' and f['target_port'] == $allowed_port and f['result'] == 'opened' and f['time'].endswith('Z') for f in $fw)"
audit_check "the audit of the forward PermitOpen refuses: key id alice, target 127.0.0.1:$denied_port, refused (not in PermitOpen)" \
  "any(f['key_id'] == 'alice@example.com' and f['target_port'] == $denied_port and f['result'] == 'refused' and f['reason'] == 'not in PermitOpen' for f in $fw)"
audit_check "the audit of ssh -N -L (erin's grant, no session): a forward line, key id, target 127.0.0.1:$api_port, opened" \
  "any(f['key_id'] == 'erin@example.com' and f['target_port'] == $api_port and f['result'] == 'opened' for f in $fw) and not any(s['key_id'] == 'erin@example.com' for s in starts_lines)"
audit_check "two concurrent connections, two grants, forwards interleaved: each forward line names its own grant and connection; each connection's end counts its forwards" \
  "(lambda fw, ce: len([f for f in fw if f['target_port'] in ($allowed_port, $denied_port)]) >= 3 and len([f for f in fw if f['target_port'] == $api_port]) >= 2 and all(f['key_id'] == ('erin@example.com' if f['target_port'] == $api_port else 'alice@example.com') for f in fw if f['target_port'] in ($allowed_port, $denied_port, $api_port)) and len({(f['key_id'], f['source_port']) for f in fw if f['target_port'] in ($allowed_port, $denied_port, $api_port)}) == 2 and all(any(e['source_port'] == f['source_port'] and e['key_id'] == f['key_id'] and e['forwards'] == sum(1 for g in fw if g['source_port'] == e['source_port'] and g['result'] == 'opened') and e['forwards_refused'] == sum(1 for g in fw if g['source_port'] == e['source_port'] and g['result'] == 'refused') for e in ce) for f in fw if f['target_port'] in ($allowed_port, $api_port)))($fw, $ce)"

pa -p image --output json health >"$work/health.json" 2>"$work/health.err"
status=$?
summary="$(python3 - "$work/health.json" <<'EOF'
import json, sys
try:
    report = json.load(open(sys.argv[1]))
except ValueError as e:
    print(f"no JSON report: {e}")
    sys.exit()
checks = report.get("checks", [])
ok = sorted({c.get("name") for c in checks if c.get("status") == "ok"})
bad = sorted({f"{c.get('name')}:{c.get('status')}:{c.get('message')}" for c in checks if c.get("status") == "fail"})
api = [c for c in checks if c.get("name") == "api" and c.get("status") == "ok"]
print(f"{report.get('summary')}; ok: {' '.join(ok)}; failed: {', '.join(bad) or 'none'}; api {'ok' if api else 'not reached'}")
EOF
)"
if [[ $status -eq 0 && $summary == *"failed: none; api ok" ]]; then
  pass "health against the sandbox through the container, exit 0 ($summary)"
else
  fail "health against the sandbox through the container" "status $status; $summary; $(tail -n 3 "$work/health.err" | tr '\n' ' ')"
fi

audit="$(ssh-audit -j -p "$ssh_port" 127.0.0.1 2>&1)"
status=$?
if [[ $status -eq 0 ]] && python3 -c 'import json,sys; r=json.loads(sys.argv[1]); sys.exit(0 if r["kex"] and r["cves"] == [] else 1)' "$audit" 2>/dev/null; then
  pass "ssh-audit against the running container: exit 0, no failure, no warning, no CVE"
else
  fail "ssh-audit against the running container" "status $status: $(head -c 600 <<<"$audit")"
fi

# `podman restart`, then a new container on the same host-key volume (a replaced pod): the
# same key each time, and the strict profile logs in without asking.
pa agent stop --all >/dev/null 2>&1
started=$SECONDS
if "${PODMAN[@]}" restart -t 1 "paragon-test-bastion-$tag" >/dev/null 2>"$work/restart.log" &&
  until_deadline listens "$ssh_port"; then
  restarted_fingerprint="$("${PODMAN[@]}" logs "paragon-test-bastion-$tag" 2>&1 | sed -n 's/^entrypoint: host key: //p' | tail -n 1)"
  starts="$("${PODMAN[@]}" logs "paragon-test-bastion-$tag" 2>&1 | grep -c '^entrypoint: starting sshd')"
  out="$(pa -p strict ssh -- echo same-key </dev/null 2>&1)"
  if [[ $starts -eq 2 && -n $first_fingerprint && $first_fingerprint == "$restarted_fingerprint" && $out == same-key ]]; then
    pass "the host key survives podman restart (strict login, no prompt): $((SECONDS - started)) s"
  else
    fail "the host key survives podman restart" "starts $starts, before '$first_fingerprint', after '$restarted_fingerprint', login: $out"
  fi
else
  cat "$work/restart.log"
  fail "podman restart"
fi
pa agent stop --all >/dev/null 2>&1
"${PODMAN[@]}" rm -f -t 0 "paragon-test-bastion-$tag" >/dev/null 2>&1
started=$SECONDS
if run_bastion "paragon-test-bastion-$tag-2" "$work/authorized-keys" "$volume" -d >/dev/null 2>"$work/run.log" &&
  until_deadline listens "$ssh_port"; then
  second_fingerprint="$("${PODMAN[@]}" logs "paragon-test-bastion-$tag-2" 2>&1 | sed -n 's/^entrypoint: host key: //p')"
  out="$(pa -p strict ssh -- echo same-key </dev/null 2>&1)"
  if [[ -n $first_fingerprint && $first_fingerprint == "$second_fingerprint" && $out == same-key ]]; then
    pass "the host key survives a new container on the volume ($first_fingerprint; strict login, no prompt): $((SECONDS - started)) s"
  else
    fail "the host key survives a restart" "before '$first_fingerprint', after '$second_fingerprint', login: $out"
  fi
else
  cat "$work/run.log"
  fail "the container starts again on the same volume"
fi
pa agent stop --all >/dev/null 2>&1
"${PODMAN[@]}" rm -f -t 0 "paragon-test-bastion-$tag-2" >/dev/null 2>&1

# The host key as Kubernetes mounts its Secret: a read-only folder, the key root's and
# readable by the pod's group (fsGroup 10001, mode 0440).
mkdir -p "$work/secret"
ssh-keygen -q -t ed25519 -N '' -C paragon-bastion -f "$work/secret/ssh_host_ed25519_key"
chown 0:10001 "$work/secret"/ssh_host_ed25519_key*
chmod 0440 "$work/secret"/ssh_host_ed25519_key*
echo "[127.0.0.1]:$ssh_port $(cut -d ' ' -f 1,2 "$work/secret/ssh_host_ed25519_key.pub")" >"$work/known_hosts"
# No user CA mounted (an empty folder): certificates are not accepted, plain keys still are.
mounted_access="$work/no-access"
if run_bastion "paragon-test-bastion-$tag-secret" "$work/authorized-keys" "$work/secret:ro" -d >/dev/null 2>"$work/run.log" &&
  until_deadline listens "$ssh_port" &&
  out="$(pa -p strict ssh -- echo secret-key </dev/null 2>&1)" && [[ $out == secret-key ]] &&
  [[ $("${PODMAN[@]}" logs "paragon-test-bastion-$tag-secret" 2>&1 | grep -c 'certificates are not accepted, only authorized keys') -gt 0 ]]; then
  pass "a read-only host key folder, as a Secret is mounted: the key served (strict login); no user CA mounted: 'certificates are not accepted, only authorized keys'"
else
  fail "a read-only host key folder, as a Secret is mounted" \
    "$(cat "$work/run.log") $("${PODMAN[@]}" logs "paragon-test-bastion-$tag-secret" 2>&1 | tail -n 3 | tr '\n' ' ') login: ${out:-}"
fi
pa agent stop --all >/dev/null 2>&1
"${PODMAN[@]}" rm -f -t 0 "paragon-test-bastion-$tag-secret" >/dev/null 2>&1

run_bastion "paragon-test-bastion-$tag-bad" "$work/bad-keys" "$volume" >/dev/null 2>&1
status=$?
logs="$("${PODMAN[@]}" logs "paragon-test-bastion-$tag-bad" 2>&1)"
want="/etc/bastion/authorized-keys/authorized_keys:2: not a public key line"
if [[ $status -eq 1 && $logs == *"$want"* ]] && ! listens "$ssh_port"; then
  pass "a bad authorized_keys line stops the start (exit 1), podman logs: '$want'"
else
  fail "a bad authorized_keys line stops the start" "status $status, logs: $(tail -n 3 <<<"$logs" | tr '\n' ' ')"
fi

mounted_access="$work/bad-access"
run_bastion "paragon-test-bastion-$tag-bad-ca" "$work/authorized-keys" "$volume" >/dev/null 2>&1
status=$?
logs="$("${PODMAN[@]}" logs "paragon-test-bastion-$tag-bad-ca" 2>&1)"
want="/etc/bastion/access/trusted_user_ca_keys:2: not a public key line"
if [[ $status -eq 1 && $logs == *"$want"* ]] && ! listens "$ssh_port"; then
  pass "a bad user CA key line stops the start (exit 1), podman logs: '$want'"
else
  fail "a bad user CA key line stops the start" "status $status, logs: $(tail -n 3 <<<"$logs" | tr '\n' ' ')"
fi

echo "$passed passed, $failed failed"
((failed == 0))
