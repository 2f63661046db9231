"""Calls with numpy tensors through real daemons: every dtype, shapes, headers,
concurrency, errors, deadlines, cancel, and both nodes."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import axon
from axon import errors
from conftest import until_connected

DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
          np.float16, np.float32, np.float64, np.complex64, np.complex128, np.bool_]


@pytest.fixture
def echo(node):
    with axon.connect(node.socket, name="server") as client:
        ep = client.endpoint("echo")
        server = ep.server(concurrency=4)

        @server.method()
        def echo(request):
            return axon.Reply(request.header, request.tensors)

        @server.method()
        def slow(request):
            time.sleep(float(request.header or b"0.5"))
            return b"slept"

        @server.method()
        def lookup(request):
            raise errors.NotFound(f"no key {request.header.decode()}")

        @server.method()
        def broken(request):
            raise ValueError("bad things")

        @server.method()
        def sender(request):
            return request.sender.encode()

        with server:
            yield client, server


@pytest.fixture
def caller(node, echo):
    with axon.connect(node.socket, name="caller") as client:
        yield client.endpoint("caller")


def arr(x):
    return np.from_dlpack(x)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_echo_every_dtype(caller, dtype):
    shapes = [(), (1,), (7,), (3, 5), (2, 3, 4), (2, 1, 3, 1, 2)]
    tensors = [(np.arange(int(np.prod(s))) % 7).astype(dtype).reshape(s) for s in shapes]
    reply = caller.call("echo", "echo", *tensors, header=b"h").wait()
    assert reply.header == b"h"
    assert len(reply.tensors) == len(tensors)
    for sent, got in zip(tensors, reply.tensors):
        got = arr(got)
        assert got.dtype == sent.dtype
        assert got.shape == sent.shape
        np.testing.assert_array_equal(got, sent)


def test_large_host_tensors_travel_apart(caller):
    big = np.random.default_rng(1).integers(0, 255, size=(3, 1 << 20), dtype=np.uint8)
    small = np.arange(10, dtype=np.float32)
    reply = caller.call("echo", "echo", big, small).wait()
    np.testing.assert_array_equal(arr(reply.tensors[0]), big)
    np.testing.assert_array_equal(arr(reply.tensors[1]), small)


def test_reply_lands_in_out_tensors(caller):
    sent = np.arange(1000, dtype=np.float64)
    out = arr(caller.client.allocate(8000)).view(np.float64)
    reply = caller.call("echo", "echo", sent, out=[out]).wait()
    np.testing.assert_array_equal(out, sent)
    assert arr(reply.tensors[0]).__array_interface__["data"][0] == out.ctypes.data


def test_out_tensors_must_be_shared_memory(caller):
    with pytest.raises(ValueError, match="registered"):
        caller.call("echo", "echo", np.zeros(4), out=[np.zeros(4)])


def test_shared_memory_is_sent_in_place(caller):
    buf = arr(caller.client.allocate(4096)).view(np.int32)
    buf[:] = np.arange(1024)
    reply = caller.call("echo", "echo", buf[:100]).wait()
    np.testing.assert_array_equal(arr(reply.tensors[0]), np.arange(100))


def test_sender_is_the_callers_address(caller):
    assert caller.call("echo", "sender").wait().header == caller.address.encode()


def test_thousands_in_flight_each_matched(caller):
    calls = [caller.call("echo", "echo", np.array([i], dtype=np.int64), header=str(i).encode())
             for i in range(2000)]
    for i, call in enumerate(calls):
        reply = call.wait()
        assert reply.header == str(i).encode()
        assert arr(reply.tensors[0])[0] == i


def test_calls_from_many_threads(caller):
    failures = []

    def run(k):
        try:
            for i in range(100):
                t = np.full(16, k * 1000 + i, dtype=np.int32)
                got = arr(caller.call("echo", "echo", t).wait().tensors[0])
                assert (got == k * 1000 + i).all()
        except Exception as e:  # reported below
            failures.append(e)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


def test_unknown_method_is_unimplemented(caller):
    with pytest.raises(errors.Unimplemented) as info:
        caller.call("echo", "nope").wait()
    assert isinstance(info.value, NotImplementedError)
    assert "nope" in str(info.value)


def test_handler_error_keeps_its_code(caller):
    with pytest.raises(LookupError, match="no key k7"):
        caller.call("echo", "lookup", header=b"k7").wait()


def test_handler_exception_is_internal_with_its_text(caller):
    with pytest.raises(errors.Internal, match="ValueError: bad things"):
        caller.call("echo", "broken").wait()


def test_deadline(caller):
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        caller.call("echo", "slow", header=b"2", timeout=0.2).wait()
    assert time.monotonic() - start < 1.5


def test_wait_timeout_leaves_the_call_running(caller):
    call = caller.call("echo", "slow", header=b"0.3")
    with pytest.raises(errors.DeadlineExceeded):
        call.wait(timeout=0.01)
    assert call.wait().header == b"slept"


def test_cancel(caller):
    call = caller.call("echo", "slow", header=b"1")
    call.cancel()
    with pytest.raises(errors.Cancelled):
        call.wait(timeout=5)


def test_no_such_endpoint(caller):
    with pytest.raises(errors.Error) as info:
        caller.call("nobody-here", "echo", timeout=2).wait()
    assert isinstance(info.value, (LookupError, ConnectionError)), info.value


def test_bad_input_is_a_value_error(caller):
    strided = np.arange(20, dtype=np.float32)[::2]
    with pytest.raises(ValueError, match="not contiguous"):
        caller.call("echo", "echo", strided)
    with pytest.raises(ValueError, match="not a tensor"):
        caller.call("echo", "echo", "a string")
    with pytest.raises(ValueError, match="method name"):
        caller.call("echo", "x" * 200)
    with pytest.raises(TypeError):
        caller.call("echo", "echo", header="not bytes")


def test_endpoint_names_are_unique_per_node(node, caller):
    with axon.connect(node.socket) as other:
        with pytest.raises(errors.AlreadyExists):
            other.endpoint("caller")


def test_closed_client(node):
    client = axon.connect(node.socket)
    ep = client.endpoint("short-lived")
    client.close()
    client.close()
    assert client.closed
    with pytest.raises(errors.FailedPrecondition):
        ep.call("echo", "echo")


def test_no_daemon_is_unavailable(tmp_path):
    with pytest.raises(ConnectionError):
        axon.connect(str(tmp_path / "none.sock"), timeout=1)


def test_across_two_nodes(nodes):
    a, b = nodes
    with axon.connect(b.socket) as server_client, axon.connect(a.socket) as client:
        server = server_client.endpoint("kv").server()

        @server.method()
        def double(request):
            return [arr(t) * 2 for t in request.tensors]

        with server:
            ep = client.endpoint("trainer")
            t = np.arange(5000, dtype=np.float32)
            reply = until_connected(lambda: ep.call(f"{b.name}/kv", "double", t, timeout=5).wait())
            np.testing.assert_array_equal(arr(reply.tensors[0]), t * 2)
            calls = [ep.call(f"{b.name}/kv", "double", np.full(3, i)) for i in range(300)]
            for i, c in enumerate(calls):
                np.testing.assert_array_equal(arr(c.wait().tensors[0]), np.full(3, 2 * i))


def test_the_stream_argument_takes_every_form():
    from axon._tensors import cuda_stream

    class TorchStream:
        cuda_stream = 1234

    class CupyStream:
        ptr = 5678

    assert cuda_stream([], 42) == 42
    assert cuda_stream([], TorchStream()) == 1234
    assert cuda_stream([], CupyStream()) == 5678
    assert cuda_stream([np.zeros(1)], None) == 0  # host tensors: nothing to wait for
    with pytest.raises(TypeError, match="stream must be"):
        cuda_stream([], "the default")
