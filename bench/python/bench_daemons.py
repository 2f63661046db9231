"""axond processes for the Python benchmarks: loopback ports, sockets in a
run directory, peers listed statically."""

from __future__ import annotations

import pathlib
import socket
import subprocess
import time
from typing import List


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_socket(path: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        with socket.socket(socket.AF_UNIX) as s:
            try:
                s.connect(path)
                return
            except OSError:
                time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {path}")


class Daemons:
    """`names` axond processes, each told of the others; `procs` may gain
    helpers, which close() stops too (last first)."""

    def __init__(self, build: pathlib.Path, run_dir: pathlib.Path, names: List[str]):
        self.procs: List[subprocess.Popen] = []
        self.names = names
        ports = [free_port() for _ in names]
        peers = "peers.static=[" + ", ".join(
            f'{{name: {n}, address: "127.0.0.1:{p}"}}' for n, p in zip(names, ports)) + "]"
        self.sockets = [str(run_dir / f"{n}.sock") for n in names]
        try:
            for name, port, sock in zip(names, ports, self.sockets):
                with open(run_dir / f"{name}.log", "wb") as log:  # the child keeps its own
                    proc = subprocess.Popen(
                        [str(build / "daemon" / "axond"), "--set", f"node.name={name}", "--set",
                         f"control.socket={sock}", "--set", f"peers.listen=127.0.0.1:{port}",
                         "--set", peers, "--set", "log.level=warn"],
                        stdout=subprocess.DEVNULL, stderr=log)
                self.procs.append(proc)
                wait_socket(sock, proc)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for p in reversed(self.procs):
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
