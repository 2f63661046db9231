"""A client outlives restarts of its daemon: it re-attaches on its own, says
so through ``on_connection``, keeps its endpoints, shared memory and posted
receives, and what was in flight fails with a ConnectionError."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import axon
from axon import errors


def wait_until(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def restart(daemon) -> None:
    daemon.stop()  # SIGTERM, as systemctl restart does
    daemon.start()
    daemon.wait_listening()


def test_clients_live_through_three_restarts(node):
    events: list[axon.ConnectionEvent] = []
    lock = threading.Lock()

    def record(event: axon.ConnectionEvent) -> None:
        with lock:
            events.append(event)

    def back() -> int:
        with lock:
            return sum(1 for e in events if e.connected)

    with axon.connect(node.socket, name="server") as server_client, \
            axon.connect(node.socket, name="client", on_connection=record) as client:
        server = server_client.endpoint("srv").server()

        @server.method()
        def echo(request):
            return axon.Reply(request.header, request.tensors)

        server.start()
        me = client.endpoint("me")
        into = np.from_dlpack(client.allocate(64))
        kept = me.recv_into(into, tag=7)  # posted before the restarts, taken after them
        for round_ in range(1, 4):
            restart(node)
            assert wait_until(lambda: back() == round_), events
            assert client.connected
            # Within a few seconds calls work again (the server's client
            # re-attaches on its own too), and from then on every one does.
            assert wait_until(lambda: _call_ok(me), timeout=20)
            for i in range(10):
                reply = me.call("srv", "echo", np.arange(i + 1), header=b"hi").wait(10)
                assert reply.header == b"hi"
                assert np.array_equal(np.from_dlpack(reply.tensors[0]), np.arange(i + 1))
        with lock:
            gone = [e for e in events if not e.connected]
            assert len(gone) == 3
            assert all(isinstance(e.error, errors.Unavailable) for e in gone)
            assert all(e.error is None for e in events if e.connected)
        other = server_client.endpoint("other")
        other.send("me", np.full(64, 9, np.uint8), tag=7).wait(10)
        assert kept.wait(10).length == 64
        assert np.all(into == 9)
        server.stop()


def _call_ok(endpoint) -> bool:
    try:
        endpoint.call("srv", "echo", np.arange(3), timeout=2).wait(5)
        return True
    except (ConnectionError, LookupError, TimeoutError):
        return False


def test_without_reconnect_the_client_stays_gone(node):
    events = []
    with axon.connect(node.socket, reconnect=False, on_connection=events.append) as client:
        client.endpoint("me")
        restart(node)
        with pytest.raises(errors.Unavailable):
            client.ping()
        time.sleep(0.5)  # a reconnector would be back by now
        assert not client.connected
        with pytest.raises(ConnectionError):
            client.ping()
        assert events == []
