"""Messages of tensors: sends, receives posted into tensors, order, tags,
senders, deadlines, cancel and asyncio, through real daemons."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import axon
from axon import errors


@pytest.fixture
def pair(node):
    with axon.connect(node.socket, name="a") as a, axon.connect(node.socket, name="b") as b:
        yield a.endpoint("sender"), b.endpoint("receiver")


def shared(client, shape, dtype):
    n = int(np.prod(shape)) * np.dtype(dtype).itemsize
    return np.from_dlpack(client.allocate(max(n, 1))).view(dtype)[: int(np.prod(shape))].reshape(
        shape)


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float64, np.complex64])
def test_send_lands_in_the_posted_tensor(pair, dtype):
    tx, rx = pair
    into = shared(rx.client, (64, 3), dtype)
    posted = rx.recv_into(into, tag=5)
    data = (np.arange(192) % 11).astype(dtype).reshape(64, 3)
    sent = tx.send("receiver", data, tag=5)
    assert sent.wait(10).length == data.nbytes
    done = posted.wait(10)
    assert (done.length, done.tag) == (data.nbytes, 5)
    np.testing.assert_array_equal(into, data)


def test_several_tensors_arrive_back_to_back(pair):
    tx, rx = pair
    into = shared(rx.client, (40,), np.uint8)
    posted = rx.recv_into(into)
    a, b = np.full(16, 1, np.uint8), np.full(24, 2, np.uint8)
    tx.send("receiver", a, b).wait(10)
    assert posted.wait(10).length == 40
    np.testing.assert_array_equal(into, np.concatenate([a, b]))


def test_order_and_tags(pair):
    tx, rx = pair
    slots = [shared(rx.client, (1,), np.int64) for _ in range(50)]
    posted = [rx.recv_into(s, tag=9) for s in slots]
    sends = [tx.send("receiver", np.array([i]), tag=9) for i in range(50)]
    for op in sends + posted:
        op.wait(10)
    assert [int(s[0]) for s in slots] == list(range(50))


def test_sender_filter(node, pair):
    tx, rx = pair
    with axon.connect(node.socket) as other_client:
        other = other_client.endpoint("other")
        into = shared(rx.client, (1,), np.int64)
        posted = rx.recv_into(into, sender="sender")
        other_send = other.send("receiver", np.array([7]), timeout=0.5)
        with pytest.raises(TimeoutError):
            other_send.wait(5)  # no receive takes it: the filter names another sender
        tx.send("receiver", np.array([3])).wait(10)
        posted.wait(10)
        assert int(into[0]) == 3


def test_too_small_a_receive(pair):
    tx, rx = pair
    posted = rx.recv_into(shared(rx.client, (4,), np.uint8))
    with pytest.raises(errors.ResourceExhausted):
        tx.send("receiver", np.zeros(100, np.uint8)).wait(10)
    with pytest.raises(errors.ResourceExhausted):
        posted.wait(10)


def test_deadline_and_cancel(pair):
    tx, rx = pair
    with pytest.raises(TimeoutError):
        tx.send("receiver", np.zeros(4), timeout=0.2).wait(5)  # nobody posts a receive
    posted = rx.recv_into(shared(rx.client, (4,), np.uint8))
    posted.cancel()
    with pytest.raises(errors.Cancelled):
        posted.wait(5)


def test_receive_into_plain_numpy_is_refused(pair):
    _, rx = pair
    with pytest.raises(ValueError, match="registered memory"):
        rx.recv_into(np.zeros(4))


def test_bad_tags_and_endpoints(pair):
    tx, _ = pair
    with pytest.raises(ValueError):
        tx.send("receiver", np.zeros(1), tag=-1)
    with pytest.raises(ValueError):
        tx.send("receiver", np.zeros(1), tag=1 << 62)
    with pytest.raises(LookupError):
        tx.send("nobody", np.zeros(1)).wait(10)


def test_asyncio(pair):
    tx, rx = pair

    async def main():
        into = shared(rx.client, (8,), np.float32)
        posted = rx.recv_into(into, tag=1)
        sent = await tx.send("receiver", np.arange(8, dtype=np.float32), tag=1)
        got = await posted
        assert sent.length == got.length == 32
        np.testing.assert_array_equal(into, np.arange(8, dtype=np.float32))

    asyncio.run(main())


def test_clients_naming_one_placement_share_a_daemon_thread(tmp_path):
    """With engine.shards 2, session id % 2 is the thread that serves it: a
    placement's clients share one, a second placement gets the other, and a
    placed pair's messages arrive."""
    from conftest import start_daemons

    (daemon,) = start_daemons(tmp_path, 1, "placed", sets=[["engine.shards=2"]])
    try:
        with axon.connect(daemon.socket, name="a", placement="pair-x") as a, \
                axon.connect(daemon.socket, name="b", placement="pair-x") as b, \
                axon.connect(daemon.socket, name="c", placement="pair-y") as c:
            assert a.session_id % 2 == b.session_id % 2
            assert c.session_id % 2 != a.session_id % 2
            tx, rx = a.endpoint("tx"), b.endpoint("rx")
            into = shared(b, (16,), np.uint8)
            posted = rx.recv_into(into, tag=5)
            tx.send("rx", np.arange(16, dtype=np.uint8), tag=5).wait(10)
            posted.wait(10)
            assert into.tolist() == list(range(16))
        with pytest.raises(ValueError, match="placement"):
            axon.connect(daemon.socket, placement="bad\tname")
    finally:
        daemon.stop()
