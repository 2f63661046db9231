"""Real axond processes for the tests: each its own socket, UCX port and node
name, on loopback. ``node`` is one daemon; ``nodes`` is two that know each
other. The daemon comes from $AXON_AXOND, else the repository's build."""

from __future__ import annotations

import contextlib
import ctypes
import os
import pathlib
import signal
import socket
import subprocess
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def axond_path() -> str:
    path = os.environ.get("AXON_AXOND") or str(REPO / "build" / "daemon" / "axond")
    if not os.access(path, os.X_OK):
        pytest.exit(f"no axond at {path}: build it (scripts/build.sh) or set AXON_AXOND", 2)
    return path


def die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the test process dies, so a
    crashed run leaves no daemon behind."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def until_connected(attempt, undo=None, errors=(ConnectionError, LookupError),
                    timeout: float = 30.0):
    """``attempt()``'s result once the daemons have connected: before that,
    the first operation across them fails with one of ``errors``; each
    failed try is undone with ``undo()`` and tried again within ``timeout``
    seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return attempt()
        except errors:
            if undo is not None:
                undo()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    def __init__(self, name: str, run_dir: pathlib.Path, port: int, peers: str,
                 sets: list[str] | None = None):
        self.name = name
        self.sets = sets or []
        self.socket = str(run_dir / f"{name}.sock")
        self.log = run_dir / f"{name}.log"
        self.port = port
        self.peers = peers
        self.proc = None

    def start(self) -> None:
        args = [axond_path(), "--set", f"node.name={self.name}", "--set",
                f"control.socket={self.socket}", "--set", f"peers.listen=127.0.0.1:{self.port}",
                "--set", self.peers, "--set", "log.level=warn"]
        for s in self.sets:
            args += ["--set", s]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log,
                                         preexec_fn=die_with_parent)

    def wait_listening(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"axond {self.name} exited ({self.proc.returncode}): "
                                   f"{self.log.read_text()[-2000:]}")
            with socket.socket(socket.AF_UNIX) as s:
                try:
                    s.connect(self.socket)
                    return
                except OSError:
                    pass
            time.sleep(0.02)
        raise RuntimeError(f"axond {self.name} did not listen within {timeout} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_daemons(tmp_path: pathlib.Path, count: int, prefix: str,
                  sets: list[list[str]] | None = None):
    """`sets`: per daemon, extra --set KEY=VALUE."""
    names = [f"{prefix}-{chr(ord('a') + i)}" for i in range(count)]
    ports = [free_port() for _ in names]
    peers = "peers.static=[" + ", ".join(
        f'{{name: {n}, address: "127.0.0.1:{p}"}}' for n, p in zip(names, ports)) + "]"
    daemons = [Daemon(n, tmp_path, p, peers, sets[i] if sets else None)
               for i, (n, p) in enumerate(zip(names, ports))]
    for d in daemons:
        d.start()
    try:
        for d in daemons:
            d.wait_listening()
    except Exception:
        for d in daemons:
            d.stop()
        raise
    return daemons


@contextlib.contextmanager
def serving_echo(client, endpoint: str = "svc"):
    """A started server at `endpoint` of `client` whose method "echo"
    answers with the request's tensors."""
    server = client.endpoint(endpoint).server()

    @server.method()
    def echo(request):
        return request.tensors

    with server:
        yield server


def axonctl_sessions(socket: str) -> list:
    """The daemon's sessions as `axonctl --json sessions` shows them."""
    import json
    axonctl = os.environ.get("AXON_AXONCTL") or str(REPO / "build" / "client" / "axonctl")
    out = subprocess.run([axonctl, "--socket", socket, "--json", "sessions"], check=True,
                         capture_output=True, text=True, timeout=30)
    return json.loads(out.stdout).get("sessions", [])


def session_named(socket: str, client_name: str) -> dict:
    for s in axonctl_sessions(socket):
        if s.get("client_name") == client_name:
            return s
    raise LookupError(f"no session named {client_name!r} at {socket}")


@pytest.fixture
def node(tmp_path):
    (daemon,) = start_daemons(tmp_path, 1, "py")
    yield daemon
    daemon.stop()


@pytest.fixture
def nodes(tmp_path):
    daemons = start_daemons(tmp_path, 2, "py")
    yield daemons
    for d in daemons:
        d.stop()
