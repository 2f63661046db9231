#!/usr/bin/env python3
"""Round trips of the same tensors between two processes, through axon and the
alternatives, in one run: torch.distributed.rpc on the TensorPipe backend,
plain gRPC with the bytes in a protobuf field (grpc_echo_bench), and axon
across two daemons (axon-bench, round trip = 2 x its one-way p50).

Sizes: 64 B, 1 MiB, 64 MiB; CPU tensors, and CUDA tensors when a GPU is
present. axon's CUDA round trips come from gpu-bench, across two daemons
("cuda": by CUDA IPC handle, the default between daemons on one host, where
UCX takes CUDA memory; "cuda-bounce": the direct path, device bounce buffers
moved by UCX; "cuda-staged": staged through pinned host memory) and through
one daemon ("cuda-1d": the two processes on one node, as TensorPipe's are,
copied device to device). Set CUDA_MPS_PIPE_DIRECTORY to an MPS daemon's to
measure everything with MPS (docs/PERFORMANCE.md, "GPU tensors").

  python3 bench/compare/compare.py --bin .bundle/bin [--json out.json] [--tensors cuda]

Needs PyTorch. Prints a table and JSON.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

SIZES = [64, 1 << 20, 64 << 20]


def iterations(size):
    return 2000 if size < (1 << 20) else 200 if size < (16 << 20) else 20


def tensorpipe_worker(rank, port, device, out_path):
    import torch
    import torch.distributed.rpc as rpc

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    options = rpc.TensorPipeRpcBackendOptions(num_worker_threads=8, rpc_timeout=120)
    if device == "cuda":
        options.set_device_map("w1" if rank == 0 else "w0", {0: 0})
    rpc.init_rpc(f"w{rank}", rank=rank, world_size=2, rpc_backend_options=options)
    if rank == 0:
        results = []
        for size in SIZES:
            t = torch.full((size,), 7, dtype=torch.uint8, device=device)
            n = iterations(size)
            times = []
            for i in range(n + n // 10):
                start = time.perf_counter()
                back = rpc.rpc_sync("w1", torch.clone, args=(t,))
                if device == "cuda":
                    torch.cuda.synchronize()
                took = (time.perf_counter() - start) * 1e6
                if back.numel() != size:
                    raise RuntimeError("short reply")
                if i >= n // 10:
                    times.append(took)
            results.append({"size": size, "iterations": n,
                            "round_trip_us": {"p50": statistics.median(times), "min": min(times)}})
        with open(out_path, "w") as f:
            json.dump(results, f)
    rpc.shutdown()


def run_tensorpipe(device):
    import torch.multiprocessing as mp
    out = tempfile.mktemp(suffix=".json")
    port = 29500 + os.getpid() % 1000
    mp.spawn(tensorpipe_worker, args=(port, device, out), nprocs=2, join=True)
    with open(out) as f:
        return json.load(f)


def run_grpc(binary):
    out = tempfile.mktemp(suffix=".json")
    subprocess.run([binary, "--sizes", ",".join(map(str, SIZES)), "--json", out],
                   check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
        return json.load(f)["rows"]


def run_axon(bench, axond, perftest, libdir):
    out = tempfile.mktemp(suffix=".json")
    subprocess.run([bench, "--placements", "remote", "--sizes", ",".join(map(str, SIZES)),
                    "--runs", "3", "--axond", axond, "--perftest", perftest, "--ucx-libdir", libdir,
                    "--run-dir", tempfile.mkdtemp(), "--json", out],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(out) as f:
        rows = json.load(f)["rows"]
    return [{"size": r["size"], "round_trip_us": {"p50": 2 * r["latency_us"]["p50"],
                                                   "min": 2 * r["latency_us"]["min"]}}
            for r in rows if r["pairs"] == 1]


def run_axon_cuda(gpu_bench, axond, perftest, libdir):
    out = tempfile.mktemp(suffix=".json")
    subprocess.run([gpu_bench, "--quick", "--runs", "1", "--iterations", "3", "--axond", axond,
                    "--perftest", perftest, "--ucx-libdir", libdir,
                    "--run-dir", tempfile.mkdtemp(), "--json", out],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(out) as f:
        trips = json.load(f)["round_trips"]
    pick = lambda where: [{"size": t["size"], "round_trip_us": t["round_trip_us"]}
                          for t in trips if t["where"] == where]
    # Without direct rows (UCX without CUDA), "cuda" and "cuda-bounce" stay empty.
    return pick("handle"), pick("direct"), pick("remote"), pick("local")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default=".bundle/bin", help="folder with axon-bench, axond, "
                        "grpc_echo_bench and ucx_perftest")
    parser.add_argument("--ucx-libdir", default=".bundle/lib")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--tensors", default="cpu,cuda",
                        help="which tensors to compare: cpu, cuda or both (default cpu,cuda)")
    args = parser.parse_args()
    b = args.bin
    kinds = args.tensors.split(",")
    import torch
    cuda_kinds = ("cuda", "cuda-bounce", "cuda-staged", "cuda-1d")
    results = {"cpu": {}, **{kind: {} for kind in cuda_kinds}}
    began = time.monotonic()

    def step(what, run):
        print(f"compare: {what} ...", file=sys.stderr, flush=True)
        value = run()
        print(f"compare: {what} done at {time.monotonic() - began:.0f} s", file=sys.stderr,
              flush=True)
        return value

    if "cpu" in kinds:
        results["cpu"]["axon"] = step("axon, CPU tensors", lambda: run_axon(
            f"{b}/axon-bench", f"{b}/axond", f"{b}/ucx_perftest", args.ucx_libdir))
        results["cpu"]["grpc"] = step("gRPC", lambda: run_grpc(f"{b}/grpc_echo_bench"))
        results["cpu"]["tensorpipe"] = step("TensorPipe, CPU tensors",
                                            lambda: run_tensorpipe("cpu"))
    if "cuda" in kinds and torch.cuda.is_available():
        results["cuda"]["tensorpipe"] = step("TensorPipe, CUDA tensors",
                                             lambda: run_tensorpipe("cuda"))
        for kind in cuda_kinds[1:]:
            results[kind]["tensorpipe"] = results["cuda"]["tensorpipe"]
        if os.path.exists(f"{b}/gpu-bench"):
            axon = step("axon, CUDA tensors", lambda: run_axon_cuda(
                f"{b}/gpu-bench", f"{b}/axond", f"{b}/ucx_perftest", args.ucx_libdir))
            for kind, rows in zip(cuda_kinds, axon):
                results[kind]["axon"] = rows
    sys.stdout.flush()
    print(f"{'tensor':11} {'size':>10} {'axon rt':>12} {'tensorpipe rt':>14} {'grpc rt':>12} "
          f"{'tp/axon':>8} {'grpc/axon':>9}")
    for device in ("cpu",) + cuda_kinds:
        by = {name: {r["size"]: r["round_trip_us"]["p50"] for r in rows}
              for name, rows in results[device].items()}
        for size in SIZES:
            axon = by.get("axon", {}).get(size)
            tp = by.get("tensorpipe", {}).get(size)
            grpc = by.get("grpc", {}).get(size)
            fmt = lambda v: f"{v:.1f}us" if v else "-"
            ratio = lambda v: f"{v / axon:.2f}" if v and axon else "-"
            print(f"{device:11} {size:>10} {fmt(axon):>12} {fmt(tp):>14} {fmt(grpc):>12} "
                  f"{ratio(tp):>8} {ratio(grpc):>9}")
    print("rt: round trip p50 (request and reply each carry the tensor); tp/axon > 1: axon faster")
    text = json.dumps(results, indent=2)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
