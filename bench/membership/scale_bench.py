#!/usr/bin/env python3
"""What a peer costs a daemon, and what a join costs etcd, for the projection
to large clusters (docs/DAEMON.md, "Membership at scale").

For each cluster size N (--nodes), on loopback with a real etcd:
  - N daemons find each other through etcd; daemon 0 holds no connection;
  - daemon 0 pings every other one: the first ping opens the connection
    (set-up: dial, handshake, data endpoints) and the second is a plain
    round trip, the baseline of the same run;
  - daemon 0's RSS and open descriptors, before and after those N-1
    connections: per peer;
  - one more daemon joins: the bytes etcd sends its watchers over the join,
    less what it sends over as long a quiet time (lease keepalives): per
    watcher.
Prints a table and JSON (--json). Usage:
  bench/membership/scale_bench.py [--nodes 4,8,16] [--runs 3] [--axond PATH]
      [--axonctl PATH] [--etcd PATH] [--json FILE]
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_ports(count):
    """Ports below the ephemeral range (UCX's TCP connections take those)."""
    ports = []
    base = 15000 + (os.getpid() % 400) * 40
    for port in range(base, base + 2000):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == count:
            return ports
    raise RuntimeError("no free ports")


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


class Etcd:
    def __init__(self, binary, root, client_port, peer_port):
        self.url = f"http://127.0.0.1:{client_port}"
        peer = f"http://127.0.0.1:{peer_port}"
        self.log = open(os.path.join(root, "etcd.log"), "w")
        self.proc = subprocess.Popen(
            [binary, "--name", "bench", "--data-dir", os.path.join(root, "etcd-data"),
             "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"bench={peer}", "--log-level", "warn"],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(self.healthy, 30, "etcd")

    def healthy(self):
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                return b'"health":"true"' in r.read()
        except OSError:
            return False

    def sent_bytes(self):
        """Bytes etcd's gRPC server has sent its clients (etcd's own metric)."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as r:
            text = r.read().decode()
        m = re.search(r"^etcd_network_client_grpc_sent_bytes_total (\S+)$", text, re.M)
        return float(m.group(1))

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class Daemon:
    def __init__(self, args, root, name, port, etcd_port):
        self.name = name
        self.socket = os.path.join(root, f"{name}.sock")
        self.log = open(os.path.join(root, f"{name}.log"), "w")
        sets = [f"node.name={name}", f"control.socket={self.socket}",
                f"peers.listen=127.0.0.1:{port}", "peers.discovery=etcd",
                f"etcd.endpoints=[\"127.0.0.1:{etcd_port}\"]", "etcd.prefix=/bench/",
                "etcd.lease_ttl_ms=10000"]
        argv = [args.axond]
        for s in sets:
            argv += ["--set", s]
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)
        self.axonctl = args.axonctl
        wait_for(lambda: os.path.exists(self.socket), 30, f"{name}'s socket")

    def ctl(self, *argv):
        return subprocess.run([self.axonctl, "--socket", self.socket, *argv],
                              capture_output=True, text=True, timeout=60)

    def members(self):
        out = self.ctl("--json", "nodes")
        return len(json.loads(out.stdout).get("nodes", [])) if out.returncode == 0 else -1

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            return int(re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M).group(1))

    def fds(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def ping_us(daemon, node):
    """One ping's round trip as axonctl reports it, in microseconds."""
    out = daemon.ctl("--json", "ping", node, "--count", "1")
    if out.returncode != 0:
        raise RuntimeError(f"ping {node}: {out.stderr.strip()}")
    return float(json.loads(out.stdout)["median_us"])


def measure(args, n):
    root = tempfile.mkdtemp(prefix="axon-scale-")
    ports = free_ports(n + 3)
    etcd = Etcd(args.etcd, root, ports[-2], ports[-1])
    daemons = []
    try:
        for i in range(n):
            daemons.append(Daemon(args, root, f"s{i:03d}", ports[i], ports[-2]))
        wait_for(lambda: all(d.members() == n - 1 for d in daemons), 120, "every member")
        time.sleep(0.5)
        rss0, fds0 = daemons[0].rss_kib(), daemons[0].fds()
        setup, rtt = [], []
        for d in daemons[1:]:
            t0 = time.monotonic()
            ping_us(daemons[0], d.name)  # opens the connection
            setup.append((time.monotonic() - t0) * 1e6)
            t0 = time.monotonic()
            ping_us(daemons[0], d.name)  # the same command, connected
            rtt.append((time.monotonic() - t0) * 1e6)
        time.sleep(0.5)
        rss1, fds1 = daemons[0].rss_kib(), daemons[0].fds()
        # etcd's traffic to its clients over a quiet second, then over a join.
        quiet_s = 2.0
        b0 = etcd.sent_bytes()
        time.sleep(quiet_s)
        b1 = etcd.sent_bytes()
        t0 = time.monotonic()
        daemons.append(Daemon(args, root, f"s{n:03d}", ports[n], ports[-2]))
        wait_for(lambda: all(d.members() == n for d in daemons[:n]), 60, "the join")
        join_s = time.monotonic() - t0
        b2 = etcd.sent_bytes()
        background = (b1 - b0) / quiet_s * join_s
        join_bytes = max(0.0, (b2 - b1) - background)
        return {
            "nodes": n,
            "rss_kib_per_peer": (rss1 - rss0) / (n - 1),
            "fds_per_peer": (fds1 - fds0) / (n - 1),
            "rss_kib_idle": rss0,
            "fds_idle": fds0,
            "first_use_us_p50": statistics.median(setup),
            "connected_us_p50": statistics.median(rtt),
            "first_use_ratio": statistics.median(setup) / statistics.median(rtt),
            "setup_us_p50": statistics.median(s - r for s, r in zip(setup, rtt)),
            "join_bytes_per_watcher": join_bytes / n,
            "keepalive_bytes_per_s": (b1 - b0) / quiet_s,
        }
    finally:
        for d in daemons:
            d.stop()
        etcd.stop()
        shutil.rmtree(root, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", default="4,8,16")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--axond", default=os.path.join(REPO, "build", "daemon", "axond"))
    parser.add_argument("--axonctl", default=os.path.join(REPO, "build", "client", "axonctl"))
    parser.add_argument("--etcd", default=shutil.which("etcd") or "/usr/bin/etcd")
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = []
    for n in [int(x) for x in args.nodes.split(",")]:
        runs = [measure(args, n) for _ in range(args.runs)]
        row = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        row["runs"] = args.runs
        rows.append(row)
    header = ("nodes", "RSS/peer KiB", "fds/peer", "first use us", "connected us", "ratio",
              "set-up us", "join B/watcher", "keepalive B/s")
    print("%5s %13s %9s %13s %13s %6s %10s %15s %14s" % header)
    for r in rows:
        print("%5d %13.1f %9.1f %13.0f %13.0f %6.1f %10.0f %15.0f %14.0f" % (
            r["nodes"], r["rss_kib_per_peer"], r["fds_per_peer"], r["first_use_us_p50"],
            r["connected_us_p50"], r["first_use_ratio"], r["setup_us_p50"],
            r["join_bytes_per_watcher"], r["keepalive_bytes_per_s"]))
    print("(medians of %d runs; first use: a ping that opens the connection, against the "
          "same ping once connected, both through axonctl)" % args.runs)
    result = {"benchmark": "membership_scale", "rows": rows}
    print(json.dumps(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
