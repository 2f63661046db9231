#!/usr/bin/env python3
"""Python calls against C++ calls and torch.distributed.rpc, in one run.

One Python process calls echo on a C++ server (tests/helpers/call_peer) on
another daemon: sequential round trips (p50/p99), and calls/s with W in
flight, both with blocking waits and with asyncio. In the same run,
call-bench (C++ caller, same server shape) measures the same sizes on the
same kind of daemons: "py - C++" is what Python adds to a call, "x C++" the
rate against C++'s; with PyTorch, call-bench also runs torch.distributed.rpc
(TensorPipe) on the same tensors (TP columns, host and CUDA). Host tensors of
64 B, 4 KiB and 64 KiB (numpy); torch
CUDA tensors of 1 MiB and 64 MiB when torch sees a GPU.

    bench/python/call_bench.py [--runs 3] [--calls 1000] [--window 200] [--json F]

Needs the axon package importable (scripts/python-test.sh installs it into
build/venv) and a build with axond, call_peer and call-bench.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import axon
from bench_daemons import Daemons

REPO = pathlib.Path(__file__).resolve().parents[2]


class Cluster(Daemons):
    """Two daemons on loopback and a C++ echo server on the second."""

    def __init__(self, build: pathlib.Path, run_dir: pathlib.Path):
        super().__init__(build, run_dir, ["pybench-a", "pybench-b"])
        try:
            server = subprocess.Popen([str(build / "tests" / "call_peer"), self.sockets[1],
                                       "srv", "serve"], stdout=subprocess.PIPE, text=True)
            self.procs.append(server)
            if server.stdout.readline().strip() != "serving":
                raise RuntimeError("call_peer did not start serving")
        except BaseException:
            self.close()
            raise


def make_tensor(client, size: int, cuda: bool):
    if cuda:
        import torch
        return torch.full((size,), 7, dtype=torch.uint8, device="cuda")
    t = np.from_dlpack(client.allocate(size))  # shared memory: read in place
    t[:] = 7
    return t


def sequential(ep, to: str, tensor, calls: int):
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        ep.call(to, "echo", tensor).wait()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2] * 1e6, times[int(len(times) * 0.99)] * 1e6


def rate_blocking(ep, to: str, tensor, calls: int, window: int) -> float:
    start = time.perf_counter()
    done = 0
    while done < calls:
        batch = [ep.call(to, "echo", tensor) for _ in range(min(window, calls - done))]
        for c in batch:
            c.wait()
        done += len(batch)
    return calls / (time.perf_counter() - start)


def rate_asyncio(ep, to: str, tensor, calls: int, window: int) -> float:
    async def main() -> float:
        start = time.perf_counter()
        done = 0
        while done < calls:
            n = min(window, calls - done)
            await asyncio.gather(*(ep.call(to, "echo", tensor) for _ in range(n)))
            done += n
        return calls / (time.perf_counter() - start)
    return asyncio.run(main())


def cpp_rows(build: pathlib.Path, run_dir: pathlib.Path, sizes, gpu_sizes, runs: int,
             calls: int, window: int):
    """call-bench's remote rows for the same sizes and memory (C++ caller, and
    TensorPipe's torch.distributed.rpc on the same tensors), by (memory, size)."""
    out = run_dir / "call-bench.json"
    args = [str(build / "bench" / "call-bench"), "--axond", str(build / "daemon" / "axond"),
            "--placements", "remote", "--host-sizes", *map(str, sizes),
            "--gpu-sizes", *map(str, gpu_sizes), "--runs", str(runs), "--calls", str(calls),
            "--window", str(window), "--sustained-calls", "0", "--json", str(out),
            "--run-dir", str(run_dir / "cpp"),
            "--python", sys.executable]
    ran = subprocess.run(args, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True, timeout=900)
    for line in ran.stderr.splitlines():
        if "TensorPipe" in line:  # why its column is empty
            print(line, file=sys.stderr)
    tp_log = run_dir / "cpp" / "tensorpipe.log"
    if tp_log.exists() and "Error" in tp_log.read_text():
        print("call_bench.py: TensorPipe failed:\n" + tp_log.read_text()[-1500:], file=sys.stderr)
    rows = {}
    if out.exists():
        for r in json.loads(out.read_text())["rows"]:
            if r["calls_per_s"] > 0:
                rows[(r["memory"], r["size"])] = r
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=str(REPO / "build"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--window", type=int, default=200)
    ap.add_argument("--host-sizes", type=int, nargs="*", default=[64, 4096, 65536])
    ap.add_argument("--gpu-sizes", type=int, nargs="*", default=[1 << 20, 64 << 20])
    ap.add_argument("--json", help="write the rows here too")
    args = ap.parse_args()
    build = pathlib.Path(args.build)
    run_dir = pathlib.Path(tempfile.mkdtemp(prefix="axon-pybench-"))
    cuda = False
    if args.gpu_sizes and "torch" not in sys.modules:
        try:
            import torch
            cuda = torch.cuda.is_available()
        except ImportError:
            pass
    cluster = Cluster(build, run_dir)
    rows = []
    try:
        with axon.connect(cluster.sockets[0], name="pybench") as client:
            ep = client.endpoint("caller")
            to = f"{cluster.names[1]}/srv"
            deadline = time.monotonic() + 30
            while True:
                try:
                    ep.call(to, "echo", timeout=5).wait()
                    break
                except (ConnectionError, LookupError):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            plan = [("host", s) for s in args.host_sizes]
            plan += [("cuda", s) for s in args.gpu_sizes] if cuda else []
            for memory, size in plan:
                tensor = make_tensor(client, size, memory == "cuda")
                seq_calls = max(50, args.calls // (10 if size >= 1 << 20 else 1))
                rate_calls = max(50, args.calls // (10 if size >= 1 << 20 else 1))
                sequential(ep, to, tensor, 50)  # warm: pools, registrations
                p50, p99, blocking, aio = [], [], [], []
                for _ in range(args.runs):
                    a, b = sequential(ep, to, tensor, seq_calls)
                    p50.append(a)
                    p99.append(b)
                    blocking.append(rate_blocking(ep, to, tensor, rate_calls, args.window))
                    aio.append(rate_asyncio(ep, to, tensor, rate_calls, args.window))
                rows.append({"memory": memory, "size": size,
                             "round_trip_us": {"p50": statistics.median(p50),
                                               "p99": statistics.median(p99)},
                             "calls_per_s_blocking": statistics.median(blocking),
                             "calls_per_s_asyncio": statistics.median(aio)})
                print(f"call_bench.py: {memory} {size}: rt {rows[-1]['round_trip_us']['p50']:.1f} us,"
                      f" {rows[-1]['calls_per_s_asyncio']:.0f} calls/s (asyncio)", file=sys.stderr)
    finally:
        cluster.close()
    cpp = cpp_rows(build, run_dir, args.host_sizes, args.gpu_sizes if cuda else [], args.runs,
                   args.calls, args.window)
    for r in rows:
        c = cpp.get((r["memory"], r["size"]))
        r["cpp"] = ({"round_trip_us": c["round_trip_us"]["p50"], "calls_per_s": c["calls_per_s"]}
                    if c else None)
        tp = c.get("tensorpipe") if c else None
        r["tensorpipe"] = tp if tp and tp.get("calls_per_s") else None
    print(f"Python calls across two daemons to a C++ echo server; {args.calls} calls, "
          f"{args.window} in flight; medians of {args.runs} runs")
    print(f"{'mem':5} {'size':>9} | {'rt p50':>9} {'rt p99':>9} {'C++ rt':>9} {'py - C++':>9} | "
          f"{'blocking/s':>10} {'asyncio/s':>10} {'C++/s':>9} {'x C++':>6} | {'TP rt':>9} "
          f"{'TP/s':>7}")
    for r in rows:
        c = r["cpp"]
        rt = r["round_trip_us"]
        best = max(r["calls_per_s_blocking"], r["calls_per_s_asyncio"])
        print(f"{r['memory']:5} {r['size']:>9} | {rt['p50']:>7.1f}us {rt['p99']:>7.1f}us "
              + (f"{c['round_trip_us']:>7.1f}us {rt['p50'] - c['round_trip_us']:>7.1f}us | "
                 if c else f"{'-':>9} {'-':>9} | ")
              + f"{r['calls_per_s_blocking']:>10.0f} {r['calls_per_s_asyncio']:>10.0f} "
              + (f"{c['calls_per_s']:>9.0f} {best / c['calls_per_s']:>6.2f}" if c else
                 f"{'-':>9} {'-':>6}")
              + (f" | {r['tensorpipe']['round_trip_us']:>7.1f}us {r['tensorpipe']['calls_per_s']:>7.0f}"
                 if r["tensorpipe"] else f" | {'-':>9} {'-':>7}"))
    report = {"machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores",
              "python": platform.python_version(), "calls": args.calls,
              "window": args.window, "runs": args.runs, "rows": rows}
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        pathlib.Path(args.json).write_text(text)
    shutil.rmtree(run_dir, ignore_errors=True)
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
