#!/usr/bin/env python3
"""Moving tensors between two Python processes: axon's Python API against
NIXL's Python agent, in one run.

A target process exposes a 64 MiB tensor as a window (Client.expose, its
notifications to an endpoint it reads with Endpoint.recv); this process
writes into it with Endpoint.write, the way NIXL's initiator writes into a
target's registered memory in bench/window_bench/nixl_peer.py, which runs
after axon's rows with the same counts. Both processes use one axond, as
two NIXL agents share one host. The rows are nixl_peer.py's:

  write 64MiB          64 MiB writes, --window in flight, --iterations per
                       run; GB/s (1e9 bytes), median of --runs.
  kv 1000x16KiB+note   one write of 1,000 blocks of 16 KiB (block i of the
                       source to slot (7 i) mod 1000, one axon.Blocks built
                       once, as NIXL preps its lists once), carrying one
                       notification; blocks/s from the start of the write
                       until the target has the notification; median of
                       --runs. The target checks every block's slot after.
  notify 64B           a 64 B host write carrying a notification: from its
                       start to the target's receipt, p50 us of
                       --latency-samples.

"Until the target has the notification": both processes read
CLOCK_MONOTONIC (time.monotonic_ns), one clock for the machine; the target
reads t1 when Endpoint.recv hands it the notification and sends t1 back in a
message, which the initiator waits for before the next transfer, as
nixl_peer.py does. Memory: host (Client.allocate, shared memory) and, when
torch sees a GPU, cuda (a torch CUDA tensor from the caching allocator on
the initiator, Client.allocate(..., "cuda") on the target; the notify row
is host memory either way).

    bench/python/transfer_bench.py [--runs 5] [--iterations 20] [--window 2]
        [--latency-samples 1000] [--nixl PYTHON] [--json F]

--nixl: a Python command with NIXL (nixl-cu13 from PyPI) for the NIXL
column, e.g. "/opt/nixl-venv/bin/python"; without it the column is empty.
Needs the axon package importable (scripts/python-test.sh installs it into
build/venv) and a build with axond. Prints a table, then JSON; ratio > 1:
axon ahead (NIXL's time over axon's for the latency row).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import pathlib
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[2]
BLOCK = 64 << 20
KV_BLOCKS, KV_BLOCK = 1000, 16384
NOTE = 64
WARMUP = 3
LATENCY_WARMUP = 50
STOP_TAG = 1 << 40
TARGET, INITIATOR = "tb-target", "tb-init"


def target_main(conn, socket: str, memory: str) -> None:
    """The target: exposes a window, answers each notification with the
    time it arrived, checks the kv row's slots when asked."""
    import axon
    torch = None
    if memory == "cuda":
        import torch
    with axon.connect(socket, name=TARGET) as client:
        ep = client.endpoint(TARGET)
        buffer = client.allocate(BLOCK, "cuda" if memory == "cuda" else None)
        window = client.expose(buffer, notify=ep)
        view = torch.from_dlpack(buffer) if torch else np.from_dlpack(buffer)
        conn.send(window.descriptor)
        while True:
            command = conn.recv()
            if command == "serve":
                while True:
                    message = ep.recv().wait()
                    arrived = time.monotonic_ns()
                    tag = message.tag
                    del message  # its slot goes back
                    if tag == STOP_TAG:
                        break
                    ep.send(INITIATOR, np.array([arrived], np.int64), tag=tag).wait(30)
                conn.send("stopped")
            elif command == "check kv":
                got = view[: KV_BLOCKS * KV_BLOCK].reshape(KV_BLOCKS, KV_BLOCK)[:, 0]
                got = got.cpu().numpy() if torch else got
                want = np.array([(i * 7) % 251 for i in range(KV_BLOCKS)], np.uint8)
                slots = [(7 * i) % KV_BLOCKS for i in range(KV_BLOCKS)]
                conn.send(int(sum(got[s] != want[i] for i, s in enumerate(slots))))
            elif command == "close":
                window.unexpose()
                conn.send("closed")
                return


class Target:
    def __init__(self, socket: str, memory: str):
        context = mp.get_context("spawn")
        self.conn, child = context.Pipe()
        self.proc = context.Process(target=target_main, args=(child, socket, memory))
        self.proc.start()
        self.descriptor = self.recv()

    def recv(self, timeout: float = 120):
        if not self.conn.poll(timeout):
            raise RuntimeError("the target process did not answer")
        return self.conn.recv()

    def close(self) -> None:
        try:
            self.conn.send("close")
            self.recv(30)
        finally:
            self.proc.join(30)
            if self.proc.is_alive():
                self.proc.kill()


class Initiator:
    """Writes into the target's window; times against its echoes."""

    def __init__(self, client, target: Target, memory: str):
        import axon
        self.ep = client.endpoint(INITIATOR)
        self.window = axon.Window.from_descriptor(target.descriptor)
        self.target = target
        if memory == "cuda":
            import torch
            self.source = torch.empty(BLOCK, dtype=torch.uint8, device="cuda")
        else:
            self.source = np.from_dlpack(client.allocate(BLOCK))
        kv = np.array([(i * 7) % 251 for i in range(KV_BLOCKS)], np.uint8).repeat(KV_BLOCK)
        if memory == "cuda":
            self.source[: kv.size].copy_(__import__("torch").from_numpy(kv))
            __import__("torch").cuda.synchronize()
        else:
            self.source[: kv.size] = kv
        # Built once and posted again each time, as nixl_peer.py preps its
        # descriptor lists once.
        self.kv_blocks = axon.Blocks(self.source, [i * KV_BLOCK for i in range(KV_BLOCKS)],
                                     [((7 * i) % KV_BLOCKS) * KV_BLOCK for i in range(KV_BLOCKS)],
                                     KV_BLOCK)
        self.note = np.from_dlpack(client.allocate(NOTE))
        self.note_at = BLOCK - NOTE  # past the kv slots, which the target checks
        self.tag = 0

    def serve(self) -> None:
        self.target.conn.send("serve")

    def stop(self) -> None:
        self.ep.write(self.window, [(self.note, self.note_at)], notify=(STOP_TAG, b"stop")).wait(30)
        if self.target.recv(30) != "stopped":
            raise RuntimeError("the target did not stop")

    def write_rate(self, runs: int, iterations: int, window: int) -> float:
        rates = []
        for run in range(runs + 1):  # the first warms registrations and pools
            start = time.perf_counter()
            in_flight = []
            for _ in range(iterations):
                if len(in_flight) == window:
                    in_flight.pop(0).wait(60)
                in_flight.append(self.ep.write(self.window, [(self.source, 0)]))
            for op in in_flight:
                op.wait(60)
            if run:
                rates.append(iterations * BLOCK / (time.perf_counter() - start) / 1e9)
        return statistics.median(rates)

    def one_way(self, blocks, payload: bytes) -> float:
        """Seconds from the write's start to the target's receipt of its
        notification."""
        self.tag += 1
        echo = self.ep.recv(timeout=60)
        start = time.monotonic_ns()
        self.ep.write(self.window, blocks, notify=(self.tag, payload)).wait(60)
        message = echo.wait()
        if message.tag != self.tag:
            raise RuntimeError(f"echo of tag {message.tag}, expected {self.tag}")
        arrived = int(np.from_dlpack(message.data).view(np.int64)[0])
        return (arrived - start) / 1e9

    def kv_rate(self, runs: int, iterations: int) -> float:
        for _ in range(WARMUP):
            self.one_way(self.kv_blocks, b"kv")
        per_run = []
        for _ in range(runs):
            times = [self.one_way(self.kv_blocks, b"kv") for _ in range(iterations)]
            per_run.append(KV_BLOCKS / statistics.median(times))
        return statistics.median(per_run)

    def notify_latency(self, samples: int) -> float:
        for _ in range(LATENCY_WARMUP):
            self.one_way([(self.note, self.note_at)], b"n")
        times = sorted(self.one_way([(self.note, self.note_at)], b"n") for _ in range(samples))
        return times[len(times) // 2] * 1e6


def axon_rows(socket: str, memories, o) -> list:
    import axon
    rows = []
    with axon.connect(socket, name="transfer-bench") as client:
        for memory in memories:
            target = Target(socket, memory)
            try:
                initiator = Initiator(client, target, memory)
                initiator.serve()
                rows.append({"what": "write 64MiB", "memory": memory, "unit": "GB/s",
                             "axon": initiator.write_rate(o.runs, o.iterations, o.window)})
                rows.append({"what": "kv 1000x16KiB+note", "memory": memory,
                             "unit": "blocks/s", "axon": initiator.kv_rate(o.runs, o.iterations)})
                if memory == memories[0]:
                    rows.append({"what": "notify 64B", "memory": "host", "unit": "us p50",
                                 "axon": initiator.notify_latency(o.latency_samples)})
                initiator.stop()
                target.conn.send("check kv")
                bad = target.recv(120)
                if bad:
                    raise RuntimeError(f"{memory} kv: {bad} of {KV_BLOCKS} blocks not in place")
                initiator.ep.close()
            finally:
                target.close()
    return rows


def nixl_rows(o, memories, run_dir: pathlib.Path):
    """nixl_peer.py's rows with the same counts, or (None, why)."""
    out = run_dir / "nixl.json"
    script = REPO / "bench" / "window_bench" / "nixl_peer.py"
    command = (f"{o.nixl} {shlex.quote(str(script))} --memory {','.join(memories)} "
               f"--runs {o.runs} --iterations {o.iterations} --window {o.window} "
               f"--latency-samples {o.latency_samples} --json {shlex.quote(str(out))}")
    log = run_dir / "nixl.log"
    with open(log, "w") as f:
        subprocess.run(command, shell=True, stdout=f, stderr=subprocess.STDOUT, timeout=1800)
    if not out.exists():
        return None, f"nixl_peer.py wrote nothing ({log.read_text()[-500:]})"
    result = json.loads(out.read_text())
    if not result.get("rows"):
        return None, result.get("error") or log.read_text()[-500:]
    return result, None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=str(REPO / "build"))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--window", type=int, default=2, help="64 MiB writes in flight")
    ap.add_argument("--latency-samples", type=int, default=1000)
    ap.add_argument("--memory", default="host,cuda",
                    help="host, cuda or host,cuda (cuda left out without a GPU)")
    ap.add_argument("--nixl", help="a Python command with NIXL: runs nixl_peer.py")
    ap.add_argument("--json", help="write the results here too")
    o = ap.parse_args()
    if min(o.runs, o.iterations, o.window, o.latency_samples) < 1:
        ap.error("--runs, --iterations, --window and --latency-samples must be >= 1")
    memories = [m for m in o.memory.split(",") if m]
    if not memories or any(m not in ("host", "cuda") for m in memories):
        ap.error("--memory takes host, cuda or host,cuda")
    if "cuda" in memories:
        try:
            import torch
            gpu = torch.cuda.is_available()
        except ImportError:
            gpu = False
        if not gpu:
            print("transfer_bench.py: no torch with a GPU: cuda rows left out", file=sys.stderr)
            memories.remove("cuda")
    if not memories:
        memories = ["host"]

    sys.path.insert(0, str(pathlib.Path(__file__).parent))
    from bench_daemons import Daemons
    run_dir = pathlib.Path(tempfile.mkdtemp(prefix="axon-transfer-bench-"))
    daemons = Daemons(pathlib.Path(o.build), run_dir, ["transfer-bench"])
    try:
        rows = axon_rows(daemons.sockets[0], memories, o)
    finally:
        daemons.close()
    nixl, why = (None, "no --nixl given") if not o.nixl else nixl_rows(o, memories, run_dir)
    for r in rows:
        r["nixl"] = 0.0
        for n in (nixl or {}).get("rows", []):
            if n["what"] == r["what"] and n["memory"] == r["memory"]:
                r["nixl"] = n["nixl"]
        lower_is_better = r["unit"].startswith("us")
        r["vs_nixl"] = (0.0 if not r["nixl"] or not r["axon"] else
                        r["nixl"] / r["axon"] if lower_is_better else r["axon"] / r["nixl"])

    print(f"{'what':<20} {'mem':<5} | {'axon':>12} {'nixl':>12} {'/nixl':>6}  unit")
    for r in rows:
        nixl_text = f"{r['nixl']:>12.2f}" if r["nixl"] else f"{'-':>12}"
        ratio = f"{r['vs_nixl']:>6.2f}" if r["vs_nixl"] else f"{'-':>6}"
        print(f"{r['what']:<20} {r['memory']:<5} | {r['axon']:>12.2f} {nixl_text} {ratio}  "
              f"{r['unit']}")
    notes = [f"two Python processes on one axond; medians of {o.runs} runs of {o.iterations}",
             f"{o.window} 64 MiB writes in flight", "/nixl > 1: axon ahead"]
    if nixl:
        notes.append(f"NIXL {nixl.get('nixl_version')}, UCX {nixl.get('ucx_version')}")
    else:
        notes.append(f"no NIXL column: {why}")
    print("; ".join(notes))
    report = {"machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores",
              "python": platform.python_version(), "runs": o.runs, "iterations": o.iterations,
              "window": o.window, "latency_samples": o.latency_samples, "rows": rows,
              "nixl": nixl, "nixl_missing": why}
    text = json.dumps(report, indent=1)
    print(text)
    if o.json:
        pathlib.Path(o.json).write_text(text + "\n")
    shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
