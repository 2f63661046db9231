"""asyncio: awaiting calls, async handlers, task cancellation, async with."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

import axon
from axon import errors
from conftest import serving_echo


def arr(x):
    return np.from_dlpack(x)


def test_await_many_calls_with_async_handlers(node):
    async def main():
        async with axon.connect(node.socket) as client:
            server = client.endpoint("svc").server(concurrency=4)

            @server.method()
            async def echo(request):
                await asyncio.sleep(0.001)
                return axon.Reply(request.header, request.tensors)

            @server.method()
            def plain(request):
                return b"sync"

            async with server:
                ep = client.endpoint("me")
                calls = [ep.call("svc", "echo", np.full(8, i, dtype=np.int16),
                                 header=str(i).encode()) for i in range(500)]
                replies = await asyncio.gather(*calls)
                for i, reply in enumerate(replies):
                    assert reply.header == str(i).encode()
                    assert (arr(reply.tensors[0]) == i).all()
                assert (await ep.call("svc", "plain")).header == b"sync"
                stats = {s["method"]: s for s in server.stats()}
                assert stats["echo"]["calls"] == 500

    asyncio.run(main())


def test_async_handler_errors_keep_their_code(node):
    async def main():
        async with axon.connect(node.socket) as client:
            server = client.endpoint("svc").server()

            @server.method()
            async def deny(request):
                raise errors.PermissionDenied("not you")

            @server.method()
            async def crash(request):
                raise KeyError("k")

            @server.method()
            async def wrong(request):
                return 42

            async with server:
                ep = client.endpoint("me")
                with pytest.raises(PermissionError, match="not you"):
                    await ep.call("svc", "deny")
                with pytest.raises(errors.Internal, match="KeyError"):
                    await ep.call("svc", "crash")
                with pytest.raises(errors.Internal, match="TypeError"):
                    await ep.call("svc", "wrong")

    asyncio.run(main())


def test_cancelling_the_task_cancels_the_call(node):
    async def main():
        async with axon.connect(node.socket) as client:
            server = client.endpoint("svc").server()
            started = asyncio.Event()
            loop = asyncio.get_running_loop()

            @server.method()
            def slow(request):
                loop.call_soon_threadsafe(started.set)
                time.sleep(0.5)
                return b"late"

            async with server:
                ep = client.endpoint("me")
                call = ep.call("svc", "slow", timeout=10)
                task = asyncio.ensure_future(call)
                await started.wait()
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                with pytest.raises(errors.Cancelled):
                    call.wait(timeout=5)

    asyncio.run(main())


def test_deadline_in_asyncio(node):
    async def main():
        async with axon.connect(node.socket) as client:
            server = client.endpoint("svc").server()

            @server.method()
            async def never(request):
                await asyncio.sleep(5)

            async with server:
                start = time.monotonic()
                with pytest.raises(TimeoutError):
                    await client.endpoint("me").call("svc", "never", timeout=0.2)
                assert time.monotonic() - start < 2

    asyncio.run(main())


def test_completion_fd_is_drained(node):
    async def main():
        async with axon.connect(node.socket) as client:
            server = client.endpoint("svc").server()

            @server.method()
            def echo(request):
                return request.tensors

            async with server:
                ep = client.endpoint("me")
                for _ in range(20):
                    await ep.call("svc", "echo", np.zeros(4))
                await asyncio.sleep(0.05)
                import os
                import select
                # Everything was collected: the eventfd is not readable.
                readable, _, _ = select.select([client.fileno()], [], [], 0)
                assert not readable
                os.set_blocking(client.fileno(), False)

    asyncio.run(main())


def test_waited_operations_queue_nothing_for_the_loop(node):
    # Only what asyncio awaits reaches the completion queue: a program that
    # only waits, with no loop to drain it, must not grow it.
    with axon.connect(node.socket) as client:
        with serving_echo(client):
            ep = client.endpoint("me")

            async def one():
                return await ep.call("svc", "echo", np.ones(4))

            # An awaited call first (its token may still be queued when its
            # loop has gone: taken here), then only waits.
            assert arr(asyncio.run(one()).tensors[0]).tolist() == [1, 1, 1, 1]
            client._state.drain()
            for _ in range(200):
                ep.call("svc", "echo", np.zeros(4)).wait()
            with pytest.raises(errors.Error):  # a failure is waited for too
                ep.send("nobody-here", np.zeros(4, dtype=np.uint8), timeout=0.2).wait(5)
            assert client._state.drain() == []


def test_one_client_across_event_loops(node):
    with axon.connect(node.socket) as client:
        with serving_echo(client):
            ep = client.endpoint("me")

            async def some_calls(k):
                replies = await asyncio.gather(
                    *(ep.call("svc", "echo", np.full(2, k)) for _ in range(20)))
                return [int(arr(r.tensors[0])[0]) for r in replies]

            for k in range(3):  # a new loop each time, as asyncio.run makes
                assert asyncio.run(some_calls(k)) == [k] * 20
