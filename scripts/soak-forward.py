#!/usr/bin/env python3
"""Load for scripts/soak-forward.sh: N HTTP GETs through a forward, from T parallel clients, or
(with --ssh-control) N commands on one OpenSSH ControlMaster session.

Each connection fetches one body (plain TCP, or through a SOCKS5 proxy with --socks) and
compares it byte for byte with the file served; each command (`ssh -S CONTROL DEST echo I`)
must print its own number. The RSS of --pid (summed over several: a forward and the agent
that copies its connections) is read from /proc after the warm-up and at the end. Prints one line of JSON:
{"connections", "intact", "failed", "rss_start_kib", "rss_warm_kib", "rss_end_kib", "seconds"}.
"""

import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time


def rss_kib(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            line = next((line for line in f if line.startswith("VmRSS:")), None)
        if line is None:
            raise RuntimeError(f"no VmRSS for pid {pid}")
        total += int(line.split()[1])
    return total


def socks_connect(sock, host, port):
    """SOCKS5, no authentication, CONNECT by domain name (as curl --socks5-hostname)."""
    sock.sendall(b"\x05\x01\x00")
    if recv_exact(sock, 2) != b"\x05\x00":
        raise RuntimeError("socks: no acceptable method")
    name = host.encode()
    sock.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + struct.pack(">H", port))
    head = recv_exact(sock, 4)
    if head[1] != 0:
        raise RuntimeError(f"socks: reply {head[1]}")
    kind = head[3]
    rest = {1: 4, 4: 16}.get(kind)
    if rest is None:
        rest = recv_exact(sock, 1)[0]
    recv_exact(sock, rest + 2)


def recv_exact(sock, n):
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise RuntimeError("connection closed early")
        out += chunk
    return bytes(out)


def fetch(args, expected):
    with socket.create_connection(("127.0.0.1", args.port), timeout=30) as s:
        if args.socks:
            host, port = args.socks.rsplit(":", 1)
            socks_connect(s, host, int(port))
        s.sendall(f"GET /{args.path} HTTP/1.0\r\nHost: soak\r\n\r\n".encode())
        data = bytearray()
        while True:
            chunk = s.recv(262144)
            if not chunk:
                break
            data += chunk
    head, sep, body = bytes(data).partition(b"\r\n\r\n")
    return sep and head.startswith(b"HTTP/1.0 200") and body == expected


def exec_over_master(args, i):
    """One command on the ControlMaster's session: a new session channel on the one connection."""
    out = subprocess.run(
        ["ssh", "-S", args.ssh_control, "-o", "BatchMode=yes", args.ssh_dest, f"echo {i}"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
    )
    return out.returncode == 0 and out.stdout == f"{i}\n".encode()


def open_fds(pids):
    return sum(len(os.listdir(f"/proc/{pid}/fd")) for pid in pids)


def settle(pids, fds, deadline=10.0):
    """Waits until the processes hold no more descriptors than before the run, so that RSS is
    read after every connection of the round has closed (a poll with a deadline)."""
    end = time.monotonic() + deadline
    while open_fds(pids) > fds and time.monotonic() < end:
        time.sleep(0.05)


def run(args, expected, count):
    counts = {"intact": 0, "failed": 0}
    lock = threading.Lock()
    left = [count]

    def worker():
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
                i = left[0]
            try:
                if args.ssh_control:
                    ok = exec_over_master(args, i)
                else:
                    ok = fetch(args, expected)
            except (OSError, RuntimeError, subprocess.SubprocessError):
                ok = False
            with lock:
                counts["intact" if ok else "failed"] += 1

    threads = [threading.Thread(target=worker) for _ in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return counts


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, help="the forward's local port")
    p.add_argument(
        "--pid", type=int, nargs="+", required=True, help="the processes whose RSS is read"
    )
    p.add_argument("--file", help="the served file, to compare bodies with")
    p.add_argument("--path", help="its URL path")
    p.add_argument("--ssh-control", help="run commands on this ControlMaster socket instead")
    p.add_argument("--ssh-dest", help="USER@HOST of the ControlMaster's session")
    p.add_argument("--socks", help="HOST:PORT to ask a SOCKS5 proxy for")
    p.add_argument("--connections", type=int, default=50000)
    p.add_argument("--warmup", type=int, default=2000)
    p.add_argument("--threads", type=int, default=16)
    args = p.parse_args()
    if args.ssh_control:
        if not args.ssh_dest:
            p.error("--ssh-control needs --ssh-dest")
        expected = None
    else:
        if args.port is None or not args.file or not args.path:
            p.error("--port, --file and --path are needed (or --ssh-control)")
        with open(args.file, "rb") as f:
            expected = f.read()
    started = time.monotonic()
    rss_start = rss_kib(args.pid)
    fds = open_fds(args.pid)
    warm = run(args, expected, args.warmup)
    settle(args.pid, fds)
    rss_warm = rss_kib(args.pid)
    main_run = run(args, expected, args.connections - args.warmup)
    settle(args.pid, fds)
    rss_end = rss_kib(args.pid)
    json.dump(
        {
            "connections": args.connections,
            "intact": warm["intact"] + main_run["intact"],
            "failed": warm["failed"] + main_run["failed"],
            "rss_start_kib": rss_start,
            "rss_warm_kib": rss_warm,
            "rss_end_kib": rss_end,
            "seconds": round(time.monotonic() - started, 1),
        },
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()
