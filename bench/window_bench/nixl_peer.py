#!/usr/bin/env python3
"""NIXL between two processes on one host: window-bench's rows, for comparison.

A target process registers memory with NIXL (UCX backend) and an initiator
process (this one) writes into it, the way window-bench's writer writes into
an owner's window:

  write 64MiB          64 MiB blocks, --window transfers in flight,
                       --iterations per run, each done when
                       check_xfer_state says so; GB/s (1e9 bytes), median
                       of --runs.
  kv 1000x16KiB+note   one transfer of 1,000 blocks of 16 KiB, block i of the
                       source to slot (7 i) mod 1000 of the target, carrying
                       one notification; blocks/s from the initiator starting
                       the transfer until the target has the notification;
                       median of --runs.
  notify 64B           a 64 B host write carrying a notification; from the
                       start of the write to the target's receipt of the
                       notification, p50 us of --latency-samples (always host
                       memory).

How "until the target has the notification" is timed. Both processes read
CLOCK_MONOTONIC (time.monotonic_ns), one clock for the whole machine on
Linux, so a time taken in the target can be subtracted from one taken here.
The initiator reads t0 just before posting the transfer; the target, polling
for notifications, reads t1 as soon as NIXL hands it the notification and
echoes the notification back with t1 in it. Each kv iteration and each notify
sample is t1 - t0: the transfer and the notification's arrival, nothing of
the way back. The initiator waits for the echo (and for its own transfer to
complete) before it starts the next one, so transfers never overlap, as in
window-bench, where each kv write waits for the owner's receipt. The echo
also gives the round trip; half its p50 is printed beside the notify row as
a check on the clock method: the one-way figure can never exceed the whole
round trip, and should lie above its half, since the way out (a write, its
completion, then a notification) does more than the echo (a notification).

NIXL's progress thread is off by default: each side's polling loop
(check_xfer_state here, get_new_notifs in the target) drives UCX, the
lowest-latency way to run it. With it off, a transfer's notification
leaves only once check_xfer_state calls here have progressed the transfer to
its end (seen with NIXL 1.5.1), so the initiator polls its transfer to
completion before it waits for the echo. --progress-thread turns the thread
on (NIXL's Python default). The target polls for notifications during every
row, as a NIXL target would, so UCX protocols that need the target's
progress still complete.

UCX error handling: NIXL's default, peer, lets UCX use only transports that
can report a peer's failure. On one host that leaves the notifications (UCX
active messages) on TCP over loopback, while the writes go by CMA (UCX 1.23,
host memory). --ucx-error-handling none lets the notifications take shared
memory (sysv/posix), at the cost of UCX no longer promising to report a
target's failure. UCX_PROTO_INFO=y shows what UCX chose; UCX's other variables
(UCX_TLS, ...) pass through to both agents too.

Memory: --memory host (numpy arrays in DRAM), cuda (torch CUDA tensors in
VRAM, target on the second entry of --gpus, initiator on the first; left out
with a message when torch cannot see a GPU), or both, comma-separated. The
kv row uses the first 16,384,000 bytes of the 64 MiB buffers, as
window-bench does; once measured, the target checks that every kv block
landed in its slot.

    bench/window_bench/nixl_peer.py [--memory host] [--runs 5]
        [--iterations 20] [--window 2] [--latency-samples 1000]
        [--gpus 0,0] [--progress-thread] [--ucx-error-handling peer|none]
        [--json F]

Needs `pip install nixl` (or nixl-cu13 / nixl-cu12, whose modules are
nixl_cu13 / nixl_cu12) and numpy; torch with CUDA for --memory cuda. Without
NIXL it prints why and exits 0 with no rows, so a caller can say "NIXL not
available". Only loopback is used: metadata goes over a multiprocessing pipe.
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import importlib
import importlib.metadata
import json
import multiprocessing as mp
import os
import sys
import time
import traceback

# NIXL's Python logger writes INFO lines to stdout, which would interleave
# with the table; the spawned target inherits this too.
os.environ.setdefault("NIXL_LOG_LEVEL", "WARN")

BLOCK = 64 << 20
KV_BLOCKS, KV_BLOCK = 1000, 16384
NOTE = 64
NOTE_BUFFER = 4096
TARGET, INITIATOR = "nixl-peer-target", "nixl-peer-initiator"
TIMEOUT_S = 60.0
WARMUP = 3
LATENCY_WARMUP = 50


def load_nixl():
    """(nixl_agent, nixl_agent_config, version); ImportError says why not.

    The `nixl` meta package picks nixl_cu13 or nixl_cu12 by the CUDA it
    finds; the backend wheels alone install only their own module, so both
    spellings are tried.
    """
    errors = []
    for name in ("nixl._api", "nixl_cu13._api", "nixl_cu12._api"):
        try:
            api = importlib.import_module(name)
        except ImportError as e:
            errors.append(f"{name}: {e}")
            continue
        # nixl._api is the backend's module under another name, so its own
        # __name__ names the wheel that holds it.
        dist = api.__name__.split(".")[0].replace("_", "-")
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        return api.nixl_agent, api.nixl_agent_config, version
    raise ImportError("; ".join(errors))


def ucx_version() -> str:
    """The UCX that NIXL loaded (the wheels bundle their own), or ''."""
    try:
        mod = sys.modules.get("nixl_cu13") or sys.modules.get("nixl_cu12")
        libs = os.path.join(os.path.dirname(mod.__file__) + ".libs", "libucp*.so*")
        ucp = ctypes.CDLL(sorted(glob.glob(libs))[0])
        ucp.ucp_get_version_string.restype = ctypes.c_char_p
        return ucp.ucp_get_version_string().decode()
    except Exception:
        return ""


def median(values):
    # The upper median, as window-bench's Median takes it.
    return sorted(values)[len(values) // 2] if values else 0.0


class Buffer:
    """Memory NIXL can register: a numpy array or a torch CUDA tensor."""

    def __init__(self, memory: str, nbytes: int, gpu: int = 0, fill: int = 0):
        self.memory, self.nbytes = memory, nbytes
        if memory == "cuda":
            import torch

            # Filled, not just allocated, so no first-touch cost lands in a
            # measured transfer.
            self.obj = torch.full((nbytes,), fill, dtype=torch.uint8, device=f"cuda:{gpu}")
            torch.cuda.synchronize(gpu)
            self.addr, self.dev, self.seg = self.obj.data_ptr(), gpu, "VRAM"
        else:
            import numpy as np

            self.obj = np.empty(nbytes, dtype=np.uint8)
            self.obj.fill(fill)
            self.addr, self.dev, self.seg = self.obj.ctypes.data, 0, "DRAM"

    def remote(self) -> dict:
        return {"addr": self.addr, "dev": self.dev, "seg": self.seg}

    def kv_pattern(self):
        """Block i of the kv source holds byte (i mod 251) + 1: a block that
        lands in the wrong slot is seen."""
        if self.memory == "cuda":
            import torch

            v = (torch.arange(KV_BLOCKS, device=self.obj.device) % 251 + 1).to(torch.uint8)
            self.obj[: KV_BLOCKS * KV_BLOCK].view(KV_BLOCKS, KV_BLOCK)[:] = v[:, None]
            torch.cuda.synchronize(self.obj.device)
        else:
            import numpy as np

            v = (np.arange(KV_BLOCKS) % 251 + 1).astype(np.uint8)
            self.obj[: KV_BLOCKS * KV_BLOCK].reshape(KV_BLOCKS, KV_BLOCK)[:] = v[:, None]

    def kv_misplaced(self) -> int:
        """Slots of a kv target not holding what kv_pattern put in its block."""
        import numpy as np

        data = self.obj[: KV_BLOCKS * KV_BLOCK]
        data = data.cpu().numpy() if self.memory == "cuda" else data
        slots = data.reshape(KV_BLOCKS, KV_BLOCK)
        bad = 0
        for i in range(KV_BLOCKS):
            slot = slots[(7 * i) % KV_BLOCKS]
            bad += int(not np.all(slot == (i % 251) + 1))
        return bad


def make_agent(name: str, progress_thread: bool, error_handling: str):
    nixl_agent, nixl_agent_config, _ = load_nixl()
    # The backend is made here rather than by the config, which cannot pass
    # it parameters.
    agent = nixl_agent(name, nixl_agent_config(enable_prog_thread=progress_thread, backends=[]))
    agent.create_backend("UCX", {"ucx_error_handling_mode": error_handling})
    return agent


def register(agent, buf: Buffer):
    return agent.register_memory([(buf.addr, buf.nbytes, buf.dev, "")], buf.seg)


# --------------------------------------------------------------------------
# The target: registers, hands over its metadata, echoes notifications.


def target_main(conn, memory: str, gpu: int, agent_opts: dict) -> None:
    try:
        if memory == "cuda":
            import torch

            # The CUDA context exists before the agent, so UCX's CUDA
            # transports see it when they start.
            torch.cuda.set_device(gpu)
        into = Buffer(memory, BLOCK, gpu)
        note = Buffer("host", NOTE_BUFFER)
        agent = make_agent(TARGET, **agent_opts)
        regs = [register(agent, into), register(agent, note)]
        conn.send(
            {
                "md": agent.get_agent_metadata(),
                "into": into.remote(),
                "note": note.remote(),
            }
        )
        peer = agent.add_remote_agent(conn.recv())
        peer = peer.decode() if isinstance(peer, bytes) else peer
        conn.send("ready")
        while True:
            cmd = conn.recv()
            if cmd == "serve":
                serve(agent, peer)
            elif cmd == "check kv":
                conn.send(into.kv_misplaced())
            elif cmd == "quit":
                break
        agent.remove_remote_agent(peer)
        for r in regs:
            agent.deregister_memory(r)
        conn.send("bye")
    except BaseException:
        conn.send(("error", traceback.format_exc()))


def serve(agent, peer: str) -> None:
    """Echo each notification with the time it arrived, until b'end'."""
    while True:
        got = agent.get_new_notifs()
        if not got:
            continue
        # Read the clock before anything else: this is the arrival.
        t1 = time.monotonic_ns()
        for msg in got.get(peer, ()):
            if msg == b"end":
                return
            agent.send_notif(peer, b"%s %d" % (msg, t1))


# --------------------------------------------------------------------------
# The initiator.


class Peer:
    """This process's side of one session with a target process."""

    def __init__(self, memory: str, gpus: tuple[int, int], agent_opts: dict):
        # Spawned, not forked: a forked child would inherit this process's
        # CUDA and UCX state.
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=target_main,
            args=(child, memory, gpus[1], agent_opts),
            daemon=True,
        )
        self.proc.start()
        child.close()
        self.agent = None
        try:
            self._connect(memory, gpus, agent_opts)
        except BaseException:
            self.abandon()
            raise

    def _connect(self, memory: str, gpus: tuple[int, int], agent_opts: dict) -> None:
        if memory == "cuda":
            import torch

            torch.cuda.set_device(gpus[0])
        self.memory = memory
        self.src = Buffer(memory, BLOCK, gpus[0], fill=1)
        self.note = Buffer("host", NOTE_BUFFER, fill=2)
        self.agent = make_agent(f"{INITIATOR}-{memory}", **agent_opts)
        self.regs = [register(self.agent, self.src), register(self.agent, self.note)]
        theirs = self.recv()
        name = self.agent.add_remote_agent(theirs["md"])
        self.peer = name.decode() if isinstance(name, bytes) else name
        self.into, self.note_into = theirs["into"], theirs["note"]
        self.conn.send(self.agent.get_agent_metadata())
        if self.recv() != "ready":
            raise RuntimeError("target: no ready")
        # Connect now, not in the first timed transfer.
        self.agent.make_connection(self.peer)
        self.seq = 0
        self.handles = []

    def recv(self):
        deadline = time.monotonic() + TIMEOUT_S
        while not self.conn.poll(0.001):
            # Without the progress thread only calls into the agent move
            # UCX, and a notification sent just before may still be queued.
            if self.agent is not None:
                self.agent.get_new_notifs()
            if not self.proc.is_alive():
                raise RuntimeError(f"target exited ({self.proc.exitcode})")
            if time.monotonic() > deadline:
                raise TimeoutError("target did not answer")
        msg = self.conn.recv()
        if isinstance(msg, tuple) and msg and msg[0] == "error":
            raise RuntimeError("target failed:\n" + msg[1])
        return msg

    def start_serving(self) -> None:
        self.conn.send("serve")

    def stop_serving(self) -> None:
        self.agent.send_notif(self.peer, b"end")

    def dlists(self, local: list, remote: list, seg: str):
        a = self.agent
        pair = (
            a.prep_xfer_dlist("NIXL_INIT_AGENT", local, seg),
            a.prep_xfer_dlist(self.peer, remote, seg),
        )
        self.handles += pair
        return pair

    def xfer(self, local_side, remote_side, count: int, note: bytes = b""):
        idx = list(range(count))
        h = self.agent.make_prepped_xfer("WRITE", local_side, idx, remote_side, idx, note)
        self.handles.append(h)
        return h

    def post(self, h, note: bytes = b"") -> None:
        if self.agent.transfer(h, note) == "ERR":
            raise RuntimeError("transfer failed to post")

    def wait(self, h) -> None:
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            state = self.agent.check_xfer_state(h)
            if state == "DONE":
                return
            if state == "ERR":
                raise RuntimeError("transfer failed")
            if time.monotonic() > deadline:
                raise TimeoutError("transfer did not complete")

    def noted(self, h) -> tuple[int, int, int]:
        """Post `h` with a fresh notification; (t0, t1 in the target, echo
        arrival here), all CLOCK_MONOTONIC ns."""
        self.seq += 1
        tag = b"%d" % self.seq
        t0 = time.monotonic_ns()
        self.post(h, tag)
        # Without the progress thread this is also what sends the
        # notification (see the header).
        self.wait(h)
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            for msg in self.agent.get_new_notifs().get(self.peer, ()):
                t2 = time.monotonic_ns()
                got, t1 = msg.split(b" ")
                if got == tag:
                    return t0, int(t1), t2
            if time.monotonic() > deadline:
                raise TimeoutError("no echo of the notification")

    # The rows.

    def write_rate(self, runs: int, iterations: int, window: int) -> float:
        seg = self.src.seg
        local, remote = self.dlists(
            [(self.src.addr, BLOCK, self.src.dev)],
            [(self.into["addr"], BLOCK, self.into["dev"])],
            seg,
        )
        # One request per slot of the window: a request is reposted only once
        # its previous transfer is done, and slot i % window is always the
        # oldest in flight.
        slots = [self.xfer(local, remote, 1) for _ in range(window)]
        for h in slots:
            self.post(h)
        for h in slots:
            self.wait(h)
        rates = []
        for _ in range(runs):
            start = time.perf_counter()
            for i in range(iterations):
                h = slots[i % window]
                if i >= window:
                    self.wait(h)
                self.post(h)
            for h in slots[: min(window, iterations)]:
                self.wait(h)
            rates.append(BLOCK * iterations / (time.perf_counter() - start) / 1e9)
        return median(rates)

    def kv_rate(self, runs: int, iterations: int) -> float:
        import numpy as np

        idx = np.arange(KV_BLOCKS, dtype=np.uint64)
        local = np.stack(
            [
                self.src.addr + idx * KV_BLOCK,
                np.full_like(idx, KV_BLOCK),
                np.full_like(idx, self.src.dev),
            ],
            axis=1,
        )
        # Scattered, as a cache's pages over its pool: block i to slot 7i mod 1000.
        remote = np.stack(
            [
                self.into["addr"] + ((7 * idx) % KV_BLOCKS) * KV_BLOCK,
                np.full_like(idx, KV_BLOCK),
                np.full_like(idx, self.into["dev"]),
            ],
            axis=1,
        )
        self.src.kv_pattern()
        local_side, remote_side = self.dlists(local, remote, self.src.seg)
        h = self.xfer(local_side, remote_side, KV_BLOCKS, b"kv")
        for _ in range(WARMUP):
            self.noted(h)
        rates = []
        for _ in range(runs):
            ns = 0
            for _ in range(iterations):
                t0, t1, _ = self.noted(h)
                ns += t1 - t0
            rates.append(KV_BLOCKS * iterations / (ns / 1e9))
        return median(rates)

    def notify_latency(self, samples: int) -> tuple[float, float]:
        """(p50 us write to the target's receipt, p50 round trip / 2)."""
        local, remote = self.dlists(
            [(self.note.addr, NOTE, 0)], [(self.note_into["addr"], NOTE, 0)], "DRAM"
        )
        h = self.xfer(local, remote, 1, b"n")
        one_way, rtt = [], []
        for i in range(LATENCY_WARMUP + samples):
            t0, t1, t2 = self.noted(h)
            if i >= LATENCY_WARMUP:
                one_way.append((t1 - t0) / 1e3)
                rtt.append((t2 - t0) / 1e3)
        return median(one_way), median(rtt) / 2

    def close(self) -> None:
        # Requests before the lists they index, all before the memory they
        # name, the memory before the peer goes.
        for h in reversed(self.handles):
            h.release()
        for r in self.regs:
            self.agent.deregister_memory(r)
        self.agent.remove_remote_agent(self.peer)
        self.conn.send("quit")
        self.recv()
        self.proc.join(10)
        # The requests hold the agent's binding; all go together.
        self.handles, self.agent = [], None

    def abandon(self) -> None:
        """After a failure: the target may be stuck in a loop; end it."""
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(10)


def cuda_ok(gpus: tuple[int, int]) -> str:
    """'' when torch sees the GPUs of --gpus, else why not."""
    try:
        import torch
    except ImportError as e:
        return f"torch not importable ({e})"
    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    if max(gpus) >= torch.cuda.device_count():
        return f"--gpus {gpus} but {torch.cuda.device_count()} device(s)"
    return ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--memory", default="host", help="host, cuda, or host,cuda (rows 1 and 2)")
    ap.add_argument("--runs", type=int, default=5, help="runs per figure (the median is reported)")
    ap.add_argument("--iterations", type=int, default=20, help="transfers per run")
    ap.add_argument("--window", type=int, default=2, help="64 MiB writes in flight")
    ap.add_argument("--latency-samples", type=int, default=1000, help="samples of the notify row")
    ap.add_argument("--gpus", default="0,0", help="initiator,target CUDA devices (--memory cuda)")
    ap.add_argument("--progress-thread", action="store_true", help="run NIXL's progress thread")
    ap.add_argument(
        "--ucx-error-handling",
        default="peer",
        choices=("peer", "none"),
        help="the UCX backend's ucx_error_handling_mode (NIXL's default: peer)",
    )
    ap.add_argument("--json", help="also write the results as JSON here")
    o = ap.parse_args()
    memories = [m.strip() for m in o.memory.split(",") if m.strip()]
    if not memories or any(m not in ("host", "cuda") for m in memories):
        ap.error("--memory takes host, cuda or host,cuda")
    if o.window < 1 or o.runs < 1 or o.iterations < 1 or o.latency_samples < 1:
        ap.error("--window, --runs, --iterations and --latency-samples must be >= 1")
    try:
        gpus = tuple(int(g) for g in o.gpus.split(","))
    except ValueError:
        ap.error("--gpus takes one CUDA device, or two: initiator,target")
    if len(gpus) == 1:
        gpus = (gpus[0], gpus[0])
    if len(gpus) != 2:
        ap.error("--gpus takes one CUDA device, or two: initiator,target")

    result = {"rows": [], "nixl_version": None}

    def write_json():
        if o.json:
            with open(o.json, "w") as f:
                json.dump(result, f, indent=1)
                f.write("\n")

    try:
        _, _, version = load_nixl()
    except ImportError as e:
        print(f"nixl_peer: NIXL not available: {e}")
        write_json()
        return 0
    result.update(
        nixl_version=version,
        runs=o.runs,
        iterations=o.iterations,
        window=o.window,
        latency_samples=o.latency_samples,
        progress_thread=o.progress_thread,
        ucx_error_handling=o.ucx_error_handling,
    )

    if "cuda" in memories:
        why = cuda_ok(gpus)
        if why:
            print(f"nixl_peer: {why}; cuda rows left out")
            memories.remove("cuda")
    # The notify row is host memory whatever --memory says; it runs in the
    # first session.
    if not memories:
        memories = ["host"]
        rows_of = {"host": ("notify",)}
    else:
        rows_of = {m: ("write", "kv") for m in memories}
        rows_of[memories[0]] += ("notify",)

    agent_opts = {"progress_thread": o.progress_thread, "error_handling": o.ucx_error_handling}
    rtt_half = None
    try:
        for memory in memories:
            peer = Peer(memory, gpus, agent_opts)
            try:
                peer.start_serving()
                if "write" in rows_of[memory]:
                    gbs = peer.write_rate(o.runs, o.iterations, o.window)
                    result["rows"].append(
                        {"what": "write 64MiB", "memory": memory, "unit": "GB/s", "nixl": gbs}
                    )
                if "kv" in rows_of[memory]:
                    rate = peer.kv_rate(o.runs, o.iterations)
                    result["rows"].append(
                        {
                            "what": "kv 1000x16KiB+note",
                            "memory": memory,
                            "unit": "blocks/s",
                            "nixl": rate,
                        }
                    )
                if "notify" in rows_of[memory]:
                    p50, rtt_half = peer.notify_latency(o.latency_samples)
                    result["rows"].append(
                        {"what": "notify 64B", "memory": "host", "unit": "us p50", "nixl": p50}
                    )
                peer.stop_serving()
                if "kv" in rows_of[memory]:
                    peer.conn.send("check kv")
                    bad = peer.recv()
                    if bad:
                        raise RuntimeError(
                            f"{memory} kv: {bad} of {KV_BLOCKS} blocks not in their slots"
                        )
            except BaseException:
                peer.abandon()
                raise
            peer.close()
    except Exception as e:
        print(f"nixl_peer: {e}", file=sys.stderr)
        result["error"] = str(e)
        write_json()
        return 1

    ucx = result["ucx_version"] = ucx_version()
    print(f"{'what':<20} {'mem':<5} | {'nixl':>12}  unit")
    for r in result["rows"]:
        print(f"{r['what']:<20} {r['memory']:<5} | {r['nixl']:>12.2f}  {r['unit']}")
    notes = [
        f"NIXL {version}" + (f", UCX {ucx}" if ucx else ""),
        f"progress thread {'on' if o.progress_thread else 'off'}",
        f"UCX error handling {o.ucx_error_handling}",
        f"medians of {o.runs} runs of {o.iterations}",
        f"{o.window} 64 MiB writes in flight",
    ]
    if rtt_half is not None:
        result["notify_rtt_half_us"] = rtt_half
        notes.append(f"notify round trip / 2 p50 {rtt_half:.2f} us")
    print("; ".join(notes))
    write_json()
    return 0


if __name__ == "__main__":
    sys.exit(main())
