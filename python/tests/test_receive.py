"""Unposted receives (Endpoint.recv): a message no posted receive took,
handed over as a view of its receive-area slot, zero copy; the slot goes
back when the view dies. Real daemons, one node and two. Also
Client.allocate's devices (GPU allocations run in test_gpu.py)."""

from __future__ import annotations

import asyncio
import gc
import select
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import axon
from axon import errors
from conftest import until_connected


@pytest.fixture(params=["local", "remote"])
def pair(request):
    if request.param == "local":
        a_socket = b_socket = request.getfixturevalue("node").socket
        to = "receiver"
    else:
        nodes = request.getfixturevalue("nodes")
        a_socket, b_socket = nodes[0].socket, nodes[1].socket
        to = f"{nodes[1].name}/receiver"
    with axon.connect(a_socket, name="a") as a, \
            axon.connect(b_socket, name="b", receive_slots=4, receive_slot_bytes=4096) as b:
        tx = a.endpoint("sender")
        if request.param == "remote":
            wait_connected(tx, nodes[1].name)
        yield tx, b.endpoint("receiver"), to


def wait_connected(endpoint, node):
    """Until the daemons are connected: a send to no one there is then
    refused NOT_FOUND by the other daemon, not UNAVAILABLE."""
    def probe():
        with pytest.raises(LookupError):
            endpoint.send(f"{node}/nobody", np.zeros(1, np.uint8)).wait(10)

    until_connected(probe, errors=(ConnectionError,))


def test_a_message_arrives_as_a_view_of_its_slot(pair):
    tx, rx, to = pair
    data = np.arange(100, dtype=np.float32)
    sent = tx.send(to, data, tag=7)  # completes once it sits in a slot
    message = rx.recv(timeout=10).wait()
    sent.wait(10)
    assert message.tag == 7
    assert message.sender.endswith("/sender")
    got = np.from_dlpack(message.data)
    assert got.dtype == np.uint8 and got.nbytes == data.nbytes
    np.testing.assert_array_equal(got.view(np.float32), data)


def test_the_slot_goes_back_when_the_view_dies(pair):
    tx, rx, to = pair  # four slots
    sends = [tx.send(to, np.full(64, i, np.uint8), tag=i) for i in range(6)]
    held = [rx.recv(timeout=10).wait() for _ in range(4)]
    assert [m.tag for m in held] == [0, 1, 2, 3]
    with pytest.raises(errors.DeadlineExceeded):  # every slot is held
        rx.recv(timeout=0.3).wait()
    view = np.from_dlpack(held[0].data)  # a view keeps its slot too
    del held[0]
    gc.collect()
    with pytest.raises(errors.DeadlineExceeded):
        rx.recv(timeout=0.3).wait()
    assert int(view[0]) == 0
    del view
    gc.collect()
    fifth = rx.recv(timeout=10).wait()
    assert fifth.tag == 4 and int(np.from_dlpack(fifth.data)[0]) == 4
    del fifth
    gc.collect()
    assert rx.recv(timeout=10).wait().tag == 5
    for s in sends:
        s.wait(10)


def test_posted_receives_go_first(pair):
    tx, rx, to = pair
    into = np.from_dlpack(rx.client.allocate(8))
    posted = rx.recv_into(into, tag=1)
    tx.send(to, np.full(8, 1, np.uint8), tag=1).wait(10)
    second = tx.send(to, np.full(8, 2, np.uint8), tag=2)
    assert posted.wait(10).tag == 1
    assert rx.recv(timeout=10).wait().tag == 2
    second.wait(10)


def test_receives_are_served_in_order_and_messages_in_order(pair):
    tx, rx, to = pair
    receives = [rx.recv(timeout=10) for _ in range(3)]
    for i in range(3):
        tx.send(to, np.array([i], np.int64), tag=i).wait(10)
    assert [r.wait().tag for r in receives] == [0, 1, 2]


def test_timeout_cancel_and_close(pair):
    tx, rx, to = pair
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        rx.recv(timeout=0.2).wait()
    assert time.monotonic() - started < 5
    waiting = rx.recv()
    waiting.cancel()
    with pytest.raises(errors.Cancelled):
        waiting.wait(5)
    left = rx.recv()
    rx.close()
    with pytest.raises(errors.FailedPrecondition):
        left.wait(5)


def test_a_message_after_a_cancel_goes_to_the_next_receive(pair):
    tx, rx, to = pair
    first = rx.recv()
    first.cancel()
    tx.send(to, np.full(4, 3, np.uint8), tag=3).wait(10)  # kept in its slot
    assert rx.recv(timeout=10).wait().tag == 3


def test_asyncio(pair):
    tx, rx, to = pair

    async def main():
        waiting = asyncio.ensure_future(rx.recv())
        await asyncio.sleep(0.05)
        tx.send(to, np.full(16, 5, np.uint8), tag=11)
        message = await asyncio.wait_for(waiting, 10)
        with pytest.raises(TimeoutError):
            await rx.recv(timeout=0.1)
        # Cancelling the task withdraws the receive: the next message goes
        # to the next receive.
        task = asyncio.ensure_future(rx.recv())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        tx.send(to, np.full(16, 6, np.uint8), tag=12)
        return message, await rx.recv(timeout=10)

    message, next_one = asyncio.run(main())
    assert message.tag == 11 and int(np.from_dlpack(message.data)[0]) == 5
    assert next_one.tag == 12


def test_a_view_sent_on_is_read_in_place(pair):
    tx, rx, to = pair
    tx.send(to, np.arange(32, dtype=np.uint8), tag=1)
    message = rx.recv(timeout=10).wait()
    back = tx.client.endpoint("back")
    into = np.from_dlpack(tx.client.allocate(32))
    posted = back.recv_into(into)
    rx.send(f"{tx.client.node}/back", message.data).wait(10)
    posted.wait(10)
    np.testing.assert_array_equal(into, np.arange(32, dtype=np.uint8))


def test_a_view_outlives_its_client(node):
    with axon.connect(node.socket, name="a") as a:
        tx = a.endpoint("sender")
        with axon.connect(node.socket, name="b") as b:
            rx = b.endpoint("receiver")
            tx.send("receiver", np.full(8, 4, np.uint8))
            data = rx.recv(timeout=10).wait().data
        assert b.closed
        assert int(np.from_dlpack(data)[7]) == 4


def test_a_closed_client_ends_its_receives(node):
    b = axon.connect(node.socket, name="b")
    waiting = b.endpoint("receiver").recv()
    closer = threading.Timer(0.1, b.close)
    closer.start()
    with pytest.raises(errors.Unavailable):
        waiting.wait(10)
    closer.join()


def test_an_endpoint_serves_or_receives(node):
    with axon.connect(node.socket) as c:
        served = c.endpoint("served")
        server = served.server()

        @server.method()
        def echo(request):
            return request.header, list(request.tensors)

        with server:
            with pytest.raises(errors.FailedPrecondition):
                served.recv()
        received = c.endpoint("received")
        received.recv(timeout=0.01)
        with pytest.raises(errors.FailedPrecondition):
            received.server().start()


def test_allocate_devices(node):
    with axon.connect(node.socket) as c:
        host = np.from_dlpack(c.allocate(64, device="cpu"))
        assert host.nbytes == 64
        for bad in ("tpu", "cuda:x", -1, True):
            with pytest.raises(ValueError):
                c.allocate(64, device=bad)
        if not _has_gpu():
            with pytest.raises(errors.FailedPrecondition, match="CUDA"):
                c.allocate(64, device="cuda")


def _has_gpu() -> bool:
    import os
    return os.path.exists("/dev/nvidia0")


_ECHO_TARGET = """
import sys, time
import numpy as np
import axon
with axon.connect(sys.argv[1], name="echo-target") as c:
    ep = c.endpoint("echo-target")
    memory = c.allocate(1 << 24)
    window = c.expose(memory, notify=ep)
    sys.stdout.buffer.write(window.descriptor.hex().encode() + b"\\n")
    sys.stdout.flush()
    while True:
        message = ep.recv().wait()
        tag = message.tag
        del message
        ep.send("initiator", np.array([time.monotonic_ns()]), tag=tag).wait(30)
"""


_KV_INITIATOR = """
import sys
import numpy as np
import axon
with axon.connect(sys.argv[1]) as c:
    ep = c.endpoint("initiator")
    window = axon.Window.from_descriptor(bytes.fromhex(sys.argv[2]))
    source = np.from_dlpack(c.allocate(1 << 24))
    blocks = [(source[i * 16384:(i + 1) * 16384], ((7 * i) % 1000) * 16384)
              for i in range(1000)]
    for i in range(150):
        echo = ep.recv(timeout=20)
        ep.write(window, blocks, notify=(i, b"kv")).wait(20)
        assert echo.wait().tag == i
print("done")
"""


def test_views_released_while_operations_complete(node):
    """A slot released from Python (holding the GIL) while libaxon's thread
    lets go of a finished write's tensors (which takes the GIL): neither
    may wait for the other. A write's completion and the echo of its
    notification from another process, taken in one round of callbacks,
    deadlocked this within a few dozen rounds. Both sides are processes of
    their own, so that a deadlock fails the test instead of hanging it."""
    target = subprocess.Popen([sys.executable, "-c", _ECHO_TARGET, node.socket],
                              stdout=subprocess.PIPE)
    try:
        ready, _, _ = select.select([target.stdout], [], [], 60)
        assert ready, "the target did not expose its window within 60 s"
        descriptor = target.stdout.readline().decode().strip()
        initiator = subprocess.run(
            [sys.executable, "-c", _KV_INITIATOR, node.socket, descriptor],
            capture_output=True, text=True, timeout=120)
        assert initiator.returncode == 0, initiator.stderr[-2000:]
        assert initiator.stdout.strip() == "done"
    except subprocess.TimeoutExpired:
        pytest.fail("the initiator hung: 150 rounds of writes and echoes did not end in 120 s")
    finally:
        target.kill()
        target.wait()


def test_a_dropped_or_expired_receive_takes_no_message(pair):
    tx, rx, to = pair
    rx.recv(timeout=0.05)  # dropped unwaited
    late = rx.recv(timeout=0.05)  # kept, never waited on before its deadline
    gc.collect()
    time.sleep(0.2)
    tx.send(to, np.full(4, 1, np.uint8), tag=1).wait(10)
    assert rx.recv(timeout=10).wait().tag == 1
    with pytest.raises(errors.DeadlineExceeded):
        late.wait()
    with pytest.raises(errors.DeadlineExceeded):  # the same error every time
        late.result()


def test_a_message_nobody_took_goes_to_the_next_receive(pair):
    tx, rx, to = pair
    got = rx.recv(timeout=10)
    tx.send(to, np.full(4, 2, np.uint8), tag=2).wait(10)
    deadline = time.monotonic() + 10
    while not got.done() and time.monotonic() < deadline:
        time.sleep(0.01)
    del got  # done, never read
    gc.collect()
    assert rx.recv(timeout=10).wait().tag == 2


def test_receives_awaited_after_they_ended_are_not_kept(pair):
    tx, rx, to = pair
    receives = [rx.recv(timeout=10) for _ in range(3)]
    for i in range(3):
        tx.send(to, np.full(4, i, np.uint8), tag=i).wait(10)

    async def main():
        tags = []
        for r in receives:
            await asyncio.sleep(0.01)  # the fd is drained meanwhile
            tags.append((await r).tag)
        return tags

    assert asyncio.run(main()) == [0, 1, 2]
    assert not rx.client._awaited
