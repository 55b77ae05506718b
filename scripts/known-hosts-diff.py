#!/usr/bin/env python3
"""Differential test of host-key decisions: paragon-admin against OpenSSH's own `ssh`.

Generates known_hosts files (hashed and plain names, case variants, markers, signature type
names, certificates, odd white space, bracketed ports, wildcards, negations, over-long
patterns, revoked keys), then for each file and each policy (`yes`, `accept-new`) connects
both clients to the same real sshd (started here, on 127.0.0.1) with a copy of the file, and
compares what they decided (connected / unknown / changed / revoked) and the file each left.
Prints every difference with the file that shows it; exits 1 if there is any.

    scripts/known-hosts-diff.py [--paragon target/debug/paragon-admin] [--count 112] [--seed N]

Needs OpenSSH (ssh, sshd, ssh-keygen) and Python 3; nothing else. Traffic stays on loopback.
"""

import argparse
import collections
import concurrent.futures
import base64
import hashlib
import hmac
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

SSHD = "/usr/sbin/sshd"
# Names the client may be given; all reach 127.0.0.1 (the fixture listens there only).
CONNECT_NAMES = ["127.0.0.1", "localhost", "LocalHost", "LOCALHOST"]


def keygen(path, key_type, extra=()):
    subprocess.run(
        ["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", "diff", "-f", path, *extra],
        check=True,
        stdin=subprocess.DEVNULL,
    )


def read_pub(path):
    t, b = open(path).read().split()[:2]
    return t, b


class Sshd:
    """A real sshd on 127.0.0.1 with an ed25519 host key, killed on exit."""

    def __init__(self, root):
        self.root = root
        keygen(os.path.join(root, "host_ed25519_key"), "ed25519")
        self.client_key = os.path.join(root, "id_ed25519")
        keygen(self.client_key, "ed25519")
        shutil.copy(self.client_key + ".pub", os.path.join(root, "authorized_keys"))
        self.proc = None
        for _ in range(20):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
            if self._spawn():
                return
        raise SystemExit("sshd did not start")

    def _spawn(self):
        cfg = os.path.join(self.root, "sshd_config")
        with open(cfg, "w") as f:
            f.write(
                f"Port {self.port}\nListenAddress 127.0.0.1\nUsePAM no\nStrictModes no\n"
                f"PidFile none\nAuthorizedKeysFile {self.root}/authorized_keys\n"
                "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
                "KbdInteractiveAuthentication no\nUseDNS no\nMaxStartups 100:30:200\n"
                f"HostKey {self.root}/host_ed25519_key\n"
            )
        os.makedirs("/run/sshd", exist_ok=True)
        self.proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", cfg],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if "Server listening on" in line:
                # Keep draining sshd's log so it never blocks on a full pipe.
                subprocess.Popen(["cat"], stdin=self.proc.stderr, stdout=subprocess.DEVNULL)
                return True
            if not line and self.proc.poll() is not None:
                break
        self.stop()
        return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def hashed(name):
    salt = os.urandom(20)
    mac = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return "|1|%s|%s" % (base64.b64encode(salt).decode(), base64.b64encode(mac).decode())


class Generator:
    """Random known_hosts files over a fixed set of keys and names."""

    def __init__(self, rnd, keys, port):
        self.rnd = rnd
        self.keys = keys  # name -> (type, blob)
        self.port = port

    def pattern(self, host):
        r, p = self.rnd, self.port
        name = r.choice(
            [host, host, host.lower(), host.upper(), "127.0.0.1", "localhost", "other.example"]
        )
        return r.choice(
            [
                name,
                f"[{name}]:{p}",
                f"[{name}]:{p}",
                f"[{name}]:{p + 1}",
                "*",
                "127.0.0.*",
                "local*",
                "LOCAL*",
                f"[127.0.0.1]:*",
                f"[*]:{p}",
                "?ocalhost",
                "!" + name,
                "!" + f"[{name}]:{p}",
                "x" * r.choice([1022, 1023]),
                "",
            ]
        )

    def hosts(self, host):
        r = self.rnd
        if r.random() < 0.25:
            name = r.choice([host.lower(), host.lower(), host, "127.0.0.1", "localhost"])
            return hashed(r.choice([name, f"[{name}]:{self.port}", f"[{name}]:{self.port}"]))
        return ",".join(self.pattern(host) for _ in range(r.choice([1, 1, 2, 3])))

    def key(self):
        r = self.rnd
        which = r.choice(["server", "server", "server", "ed", "rsa", "ecdsa", "cert"])
        t, b = self.keys[which]
        if which == "rsa":
            t = r.choice(["ssh-rsa", "rsa-sha2-256", "rsa-sha2-512", "ssh-ed25519"])
        elif which == "cert" and r.random() < 0.3:
            t = "ssh-ed25519"  # a certificate blob under a plain name: a broken line
        elif r.random() < 0.05:
            t = t + "-cert-v01@openssh.com"  # a plain blob under a certificate name
        return t, b

    def sep(self):
        r = self.rnd
        return r.choice(
            [" ", " ", " ", " ", " ", "\t", "  ", " \t", "\x0b", "\x0c", "\u00a0", "\r"]
        )

    def line(self, host):
        r = self.rnd
        marker = r.choices(
            ["", "@revoked ", "@cert-authority ", "@revoked\t", "@bogus "],
            weights=[70, 12, 8, 3, 2],
        )[0]
        t, b = self.key()
        text = marker + self.hosts(host) + self.sep() + t + self.sep() + b
        if r.random() < 0.2:
            text += " comment"
        if r.random() < 0.1:
            text = r.choice([" ", "\t"]) + text
        if r.random() < 0.1:
            text += "\r"
        return text

    def file(self, host):
        r = self.rnd
        lines = [self.line(host) for _ in range(r.choice([1, 1, 2, 3, 4]))]
        if r.random() < 0.2:
            lines.insert(0, "# a comment")
        return ("\n".join(lines) + "\n").encode()


def decide_openssh(sshd, host, kh, policy):
    p = subprocess.run(
        [
            "ssh", "-F", "none", "-o", "BatchMode=yes",
            "-o", f"StrictHostKeyChecking={policy}",
            "-o", f"UserKnownHostsFile={kh}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "ConnectTimeout=10",
            "-i", sshd.client_key, "-p", str(sshd.port), f"root@{host}", "true",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    e = p.stderr
    if p.returncode == 0:
        return "connected", e
    # The final verdict first: on a port other than 22 OpenSSH also looks the bare host up
    # and may print that lookup's revocation warning before deciding the host is unknown.
    if "host key is known for" in e:
        return "unknown", e
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in e:
        return "changed", e
    if "REVOKED HOST KEY" in e:
        return "revoked", e
    return "other", e


def decide_paragon(paragon, home, sshd, host, kh, policy):
    config = os.path.join(home, "config.toml")
    with open(config, "w") as f:
        f.write(
            f'[profiles.diff]\nhost = "{host}"\nport = {sshd.port}\nuser = "root"\n'
            f'identity_file = "{sshd.client_key}"\nknown_hosts = "{kh}"\n'
            f'strict_host_key_checking = "{policy}"\nhash_known_hosts = false\n'
            "connect_timeout = 10\n"
        )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "XDG_CONFIG_HOME": os.path.join(home, ".config"),
        "USER": "root",
        "NO_COLOR": "1",
        "PARAGON_ADMIN_CONFIG": config,
    }
    p = subprocess.run(
        # A fresh connection per file, as `ssh` makes one: the decision, not the kept agent.
        [paragon, "--no-agent", "ssh", "--", "true"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
    )
    e = p.stderr
    if p.returncode == 0:
        return "connected", e
    if "@revoked" in e:
        return "revoked", e
    if "CHANGED" in e:
        return "changed", e
    if "is not in" in e:
        return "unknown", e
    return "other", e


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paragon", default="target/debug/paragon-admin")
    ap.add_argument("--count", type=int, default=112)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--keep", help="write every generated file into this folder")
    ap.add_argument("--jobs", type=int, default=4, help="files compared at once")
    a = ap.parse_args()
    for tool in ["ssh", "ssh-keygen", SSHD]:
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (openssh-client, openssh-server)")
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    rnd = random.Random(seed)
    root = tempfile.mkdtemp(prefix="known-hosts-diff-")
    sshd = None
    try:
        sshd = Sshd(root)
        keys = {"server": read_pub(os.path.join(root, "host_ed25519_key.pub"))}
        for name, t in [("ed", "ed25519"), ("rsa", "rsa"), ("ecdsa", "ecdsa")]:
            keygen(os.path.join(root, name), t)
            keys[name] = read_pub(os.path.join(root, name + ".pub"))
        ca = os.path.join(root, "ca")
        keygen(ca, "ed25519")
        subprocess.run(
            ["ssh-keygen", "-q", "-s", ca, "-h", "-I", "diff", "-n", "127.0.0.1,localhost",
             os.path.join(root, "ed.pub")],
            check=True,
        )
        keys["cert"] = read_pub(os.path.join(root, "ed-cert.pub"))
        gen = Generator(rnd, keys, sshd.port)
        hosts = [rnd.choice(CONNECT_NAMES) for _ in range(a.count)]
        cases = [(i, gen.file(h), h) for i, h in enumerate(hosts)]
        if a.keep:
            os.makedirs(a.keep, exist_ok=True)
            for i, text, _ in cases:
                with open(os.path.join(a.keep, f"{i:04}.known_hosts"), "wb") as f:
                    f.write(text)

        def compare(case):
            i, text, host = case
            work = os.path.join(root, f"case{i}")
            home = os.path.join(work, "home")
            os.makedirs(home)
            out = []
            for policy in ["yes", "accept-new"]:
                ours = os.path.join(work, "ours")
                theirs = os.path.join(work, "theirs")
                for p in (ours, theirs):
                    with open(p, "wb") as f:
                        f.write(text)
                o, oe = decide_paragon(a.paragon, home, sshd, host, ours, policy)
                t, te = decide_openssh(sshd, host, theirs, policy)
                o_file, t_file = open(ours, "rb").read(), open(theirs, "rb").read()
                out.append((i, text, host, policy, o, oe, t, te, o_file, t_file))
            return out

        differences = 0
        outcomes = collections.Counter()
        with concurrent.futures.ThreadPoolExecutor(max_workers=a.jobs) as pool:
            for results in pool.map(compare, cases):
                for i, text, host, policy, o, oe, t, te, o_file, t_file in results:
                    outcomes[f"{policy}: {t}"] += 1
                    if o == t and o != "other" and o_file == t_file:
                        continue
                    differences += 1
                    print(f"--- file {i} ({policy}, host {host}): paragon-admin {o}, OpenSSH {t}")
                    print(f"    file: {text!r}")
                    if o_file != t_file:
                        print(f"    paragon-admin left: {o_file!r}")
                        print(f"    OpenSSH left:       {t_file!r}")
                    print("    paragon-admin: " + oe.strip().replace("\n", "\n      "))
                    print("    OpenSSH: " + te.strip().replace("\n", "\n      "))
        print("OpenSSH decided: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
        print(
            f"{a.count} files x 2 policies (seed {seed}): "
            f"{differences} difference{'s' if differences != 1 else ''}"
        )
        return 1 if differences else 0
    finally:
        if sshd:
            sshd.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
