"""One-sided transfers from Python: windows exposed over shared memory,
writes and reads of numpy tensors with notifications, on one daemon and
across two, the owner's checks and revocation, through real daemons."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import axon
from axon import errors
from conftest import start_daemons, until_connected


def shared(client, n, dtype=np.uint8):
    nbytes = n * np.dtype(dtype).itemsize
    return np.from_dlpack(client.allocate(nbytes)).view(dtype)[:n]


@pytest.fixture(params=["local", "remote"])
def sides(request, tmp_path):
    """(initiator endpoint "w", owner client with endpoint "kv", owner node)."""
    daemons = start_daemons(tmp_path, 1 if request.param == "local" else 2, "win")
    try:
        owner_node = daemons[-1]
        with axon.connect(daemons[0].socket) as writer, \
                axon.connect(owner_node.socket) as owner:
            yield writer.endpoint("w"), owner, owner.endpoint("kv"), owner_node.name
    finally:
        for d in daemons:
            d.stop()


def retry_until_connected(op_factory):
    """The first operation across daemons waits for them to connect."""
    return until_connected(lambda: op_factory().wait(10))


def test_blocks_land_before_the_notification_and_read_back(sides):
    w, owner, kv, owner_name = sides
    memory = shared(owner, 1 << 20)
    memory[:] = 0
    window = owner.expose(memory, notify=kv)
    assert (window.node, window.length, window.readable, window.writable) == (
        owner_name, 1 << 20, True, True)
    seen = axon.Window.from_descriptor(window.descriptor)  # as the initiator gets it
    note = shared(owner, 64)
    posted = kv.recv_into(note, tag=7)
    source = (np.arange(64 * 1024, dtype=np.uint32) * 2654435761).astype(np.uint32)
    blocks = [(source[i * 1024:(i + 1) * 1024], (63 - i) * 4096) for i in range(64)]
    done = retry_until_connected(lambda: w.write(seen, blocks, notify=(7, b"layer 3")))
    assert done.length == source.nbytes
    arrived = posted.wait(10)
    assert (arrived.tag, bytes(note[:arrived.length])) == (7, b"layer 3")
    landed = memory.view(np.uint32)
    for i in range(64):
        np.testing.assert_array_equal(landed[(63 - i) * 1024:(64 - i) * 1024],
                                      source[i * 1024:(i + 1) * 1024])
    back = shared(w.client, 64 * 1024, np.uint32)
    read = w.read(seen, [(back[i * 1024:(i + 1) * 1024], (63 - i) * 4096) for i in range(64)])
    assert read.wait(10).length == source.nbytes
    np.testing.assert_array_equal(back, source)
    window.unexpose()
    window.unexpose()  # twice is fine


def test_blocks_of_one_tensor_move_as_one_operation(sides):
    """axon.Blocks: 1,000 byte ranges of one tensor, scattered into the
    window with one notification, then gathered back, with numpy, list and
    single-length forms."""
    w, owner, kv, _ = sides
    n, size = 1000, 256
    memory = shared(owner, n * size)
    memory[:] = 0
    window = owner.expose(memory, notify=kv)
    source = shared(w.client, n * size)
    source[:] = (np.arange(n * size) * 7 % 251).astype(np.uint8)
    order = np.arange(n)[::-1].copy()  # block i goes to slot n - 1 - i
    blocks = axon.Blocks(source, np.arange(n) * size, order * size, size)
    assert len(blocks) == n
    note = shared(owner, 64)
    posted = kv.recv_into(note, tag=9)
    done = retry_until_connected(lambda: w.write(window, blocks, notify=(9, b"kv")))
    assert done.length == n * size
    assert posted.wait(10).tag == 9
    landed = memory.reshape(n, size)
    np.testing.assert_array_equal(landed[order], source.reshape(n, size))
    back = shared(w.client, n * size)
    back[:] = 0
    lengths = [size] * n
    w.read(window, axon.Blocks(back, list(range(0, n * size, size)), list(order * size),
                               lengths)).wait(10)
    np.testing.assert_array_equal(back, source)
    with pytest.raises(ValueError, match="past the tensor"):
        w.write(window, axon.Blocks(source, [n * size - 8], [0], 16))
    with pytest.raises(ValueError, match="one of each"):
        axon.Blocks(source, [0, 8], [0], 8)
    with pytest.raises(ValueError, match="not negative"):
        axon.Blocks(source, [-8], [0], 8)
    with pytest.raises(ValueError, match="not negative"):
        axon.Blocks(source, np.array([-8]), [0], 8)
    with pytest.raises(IndexError):  # OutOfRange: the owner checks the window's bounds
        w.write(window, axon.Blocks(source, [0], [n * size - 8], 16)).wait(10)
    window.unexpose()


def test_the_owners_checks_raise_their_exceptions(sides):
    w, owner, kv, _ = sides
    memory = shared(owner, 4096)
    window = owner.expose(memory, notify=kv, writable=False)
    data = np.ones(64, np.uint8)
    retry_until_connected(lambda: w.read(window, [(shared(w.client, 64), 0)]))
    with pytest.raises(errors.PermissionDenied):  # a PermissionError
        w.write(window, [(data, 0)]).wait(10)
    with pytest.raises(IndexError):  # OutOfRange
        w.read(window, [(shared(w.client, 64), 4090)]).wait(10)
    forged = bytearray(window.descriptor)
    forged[20] ^= 0xFF  # a byte of the capability
    with pytest.raises(errors.Unauthenticated):
        w.read(axon.Window.from_descriptor(bytes(forged)), [(shared(w.client, 64), 0)]).wait(10)
    with pytest.raises(ValueError):  # a read lands in place: not in plain numpy
        w.read(window, [(np.zeros(64, np.uint8), 0)])
    with pytest.raises(ValueError):
        axon.Window.from_descriptor(b"not a window")
    with pytest.raises(TypeError):
        w.write(window, [data])  # not a (tensor, offset) pair
    window.unexpose()
    with pytest.raises(errors.FailedPrecondition):  # revoked
        w.read(window, [(shared(w.client, 64), 0)]).wait(10)


def test_a_window_in_a_with_block_is_revoked_after_it(sides):
    w, owner, _, _ = sides
    memory = shared(owner, 4096)
    with owner.expose(memory) as window:
        retry_until_connected(lambda: w.write(window, np.full(16, 3, np.uint8)))
        assert list(memory[:16]) == [3] * 16
    with pytest.raises(errors.FailedPrecondition):
        w.write(window, np.full(16, 4, np.uint8)).wait(10)
    assert list(memory[:16]) == [3] * 16


def test_asyncio_awaits_an_operation(sides):
    w, owner, kv, _ = sides
    memory = shared(owner, 1 << 16)
    window = owner.expose(memory, notify=kv)
    retry_until_connected(lambda: w.write(window, np.zeros(8, np.uint8)))

    async def main():
        note = shared(owner, 16)
        posted = kv.recv_into(note, tag=1)
        done = await w.write(window, [(np.full(1000, 9, np.uint8), 500)], notify=(1, b"hi"))
        arrived = await posted
        return done.length, arrived.length

    assert asyncio.run(main()) == (1000, 2)
    assert (memory[500:1500] == 9).all()
