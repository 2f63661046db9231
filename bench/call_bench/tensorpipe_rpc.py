#!/usr/bin/env python3
"""torch.distributed.rpc (TensorPipe backend) doing what call-bench asks of
axon: an echo of one uint8 tensor, sequential round trips (p50) and calls
per second with many in flight, two processes on this host.

  tensorpipe_rpc.py --tensors cpu:64,cpu:4096,cuda:1048576 --out OUT

Writes one line per tensor to OUT: memory size rt_p50_us calls_per_s
(medians of --runs runs). Needs PyTorch; exits 3 without it.
"""
import argparse
import os
import statistics
import sys
import time


def echo(t):
    return t


def worker(rank, port, specs, args, out_path):
    import torch
    import torch.distributed.rpc as rpc

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    options = rpc.TensorPipeRpcBackendOptions(num_worker_threads=16, rpc_timeout=120)
    if any(memory == "cuda" for memory, _ in specs):
        options.set_device_map("w1" if rank == 0 else "w0", {0: 0})
    rpc.init_rpc(f"w{rank}", rank=rank, world_size=2, rpc_backend_options=options)
    if rank == 0:
        lines = []
        for memory, size in specs:
            t = torch.full((size,), 7, dtype=torch.uint8, device=memory)
            n = 2000 if size <= 65536 else 200 if size <= (4 << 20) else 20
            if args.quick:
                n = max(n // 10, 5)
            calls = args.calls if size <= (4 << 20) else max(args.calls // 20, 20)
            window = args.window if size <= (4 << 20) else min(args.window, 8)
            rts, rates = [], []
            for _ in range(args.runs):
                times = []
                for i in range(n + max(n // 10, 2)):
                    start = time.perf_counter()
                    back = rpc.rpc_sync("w1", echo, args=(t,))
                    if memory == "cuda":
                        torch.cuda.synchronize()
                    if i >= max(n // 10, 2):
                        times.append((time.perf_counter() - start) * 1e6)
                    if back.numel() != size:
                        raise RuntimeError("short reply")
                rts.append(statistics.median(times))
                start = time.perf_counter()
                done = 0
                while done < calls:
                    batch = [rpc.rpc_async("w1", echo, args=(t,))
                             for _ in range(min(window, calls - done))]
                    for f in batch:
                        f.wait()
                    done += len(batch)
                if memory == "cuda":
                    torch.cuda.synchronize()
                rates.append(calls / (time.perf_counter() - start))
            lines.append(f"{memory} {size} {statistics.median(rts):.2f} "
                         f"{statistics.median(rates):.0f}")
            print(lines[-1], flush=True)
        with open(out_path, "w") as f:
            f.write("\n".join(lines) + "\n")
    rpc.shutdown()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tensors", required=True)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    try:
        import torch
        import torch.multiprocessing as mp
    except ImportError:
        print("tensorpipe_rpc: PyTorch is not installed", file=sys.stderr)
        return 3
    specs = []
    for item in args.tensors.split(","):
        memory, size = item.split(":")
        if memory == "cuda" and not torch.cuda.is_available():
            continue
        specs.append((memory, int(size)))
    port = 29500 + os.getpid() % 1000
    mp.spawn(worker, args=(port, specs, args, args.out), nprocs=2, join=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
