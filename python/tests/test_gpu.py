"""CUDA tensors from PyTorch through calls: every pairing with the host, on
one node and across two, stream order without a manual synchronize, the
caching allocator's memory, and replies into CUDA tensors. Skipped without
torch and a CUDA device."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

import axon  # noqa: E402  (after torch: its CUDA runtime is the one loaded)
from conftest import serving_echo, session_named, until_connected  # noqa: E402


def connected_call(ep, to, method, *tensors, **kw):
    return until_connected(lambda: ep.call(to, method, *tensors, **kw).wait())


def connected_send(tx, to, src, rx, into, tag):
    """`src` sent into `into` posted at `rx`, once the daemons have
    connected; the posted receive, to wait on."""
    posted = []

    def attempt():
        posted.append(rx.recv_into(into, tag=tag))
        tx.send(to, src, tag=tag, timeout=5).wait(10)

    until_connected(attempt, undo=lambda: posted[-1].cancel())
    return posted[-1]


def daemons(request, place):
    """(sender's daemon, receiver's daemon): one daemon, or two."""
    if place == "local":
        node = request.getfixturevalue("node")
        return node, node
    return tuple(request.getfixturevalue("nodes"))


@pytest.fixture(params=["local", "remote"])
def pair(request):
    if request.param == "local":
        a = b = request.getfixturevalue("node")
    else:
        a, b = request.getfixturevalue("nodes")
    with axon.connect(b.socket) as server_client, axon.connect(a.socket) as client:
        server = server_client.endpoint("gpu").server()

        @server.method()
        def echo(req):
            return req.tensors

        @server.method()
        def to_host(req):
            return [torch.from_dlpack(t).cpu() for t in req.tensors]

        @server.method()
        def to_gpu(req):
            return [torch.from_dlpack(t).cuda() for t in req.tensors]

        @server.method()
        def where(req):
            return ",".join(torch.from_dlpack(t).device.type for t in req.tensors).encode()

        with server:
            to = "gpu" if a is b else f"{b.name}/gpu"
            yield client.endpoint("me"), to


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.int64,
                                   torch.uint8])
def test_gpu_to_gpu_stays_on_the_gpu(pair, dtype):
    ep, to = pair
    t = (torch.arange(1 << 16, device="cuda") % 100).to(dtype).reshape(256, 256)
    assert connected_call(ep, to, "where", t).header == b"cuda"
    reply = ep.call(to, "echo", t).wait()
    got = torch.from_dlpack(reply.tensors[0])
    assert got.is_cuda and got.dtype == dtype and got.shape == t.shape
    assert torch.equal(got, t)


def test_host_and_gpu_both_ways(pair):
    ep, to = pair
    g = torch.randn(1000, device="cuda")
    h = torch.randn(1000)
    connected_call(ep, to, "where", h)
    back = torch.from_dlpack(ep.call(to, "to_host", g).wait().tensors[0])
    assert not back.is_cuda and torch.equal(back, g.cpu())
    up = torch.from_dlpack(ep.call(to, "to_gpu", h).wait().tensors[0])
    assert up.is_cuda and torch.equal(up.cpu(), h)


def test_stream_order_without_synchronize(pair):
    ep, to = pair
    connected_call(ep, to, "where", torch.zeros(1))
    stream = torch.cuda.Stream()
    for size in (1 << 10, 1 << 24):
        with torch.cuda.stream(stream):
            t = torch.zeros(size, device="cuda")
            torch.cuda._sleep(50_000_000)  # the fill lands well after the call is made
            t.fill_(7)
            reply = ep.call(to, "echo", t).wait()  # torch's current stream: waited for
        got = torch.from_dlpack(reply.tensors[0])
        assert bool((got == 7).all()), size


def test_caching_allocator_tensors_are_registered_once(node):
    # Fifty views of one caching-allocator block: the allocation is
    # registered with the daemon once, not once per view or per call (the
    # daemon counts the session's GPU regions). Reply tensors come from
    # libaxon's pool, which may grow by a region.
    with axon.connect(node.socket) as server_client, \
            axon.connect(node.socket, name="caching-caller") as client:
        with serving_echo(server_client, "gpu"):
            ep = client.endpoint("me")
            block = torch.empty(1 << 20, dtype=torch.uint8, device="cuda")  # one allocation
            block.fill_(255)
            ep.call("gpu", "echo", block[:16]).wait()
            before = int(session_named(node.socket, "caching-caller")["gpu_regions"])
            assert before >= 1
            for i in range(50):
                piece = block[i * 1024:(i + 1) * 1024]
                piece.fill_(i)
                got = torch.from_dlpack(ep.call("gpu", "echo", piece).wait().tensors[0])
                assert bool((got == i).all())
            after = int(session_named(node.socket, "caching-caller")["gpu_regions"])
            assert after - before <= 1, (before, after)


def test_an_explicit_stream_is_waited_for(pair):
    # stream= names the stream whose queued work writes the tensor, when it
    # is not torch's current one.
    ep, to = pair
    connected_call(ep, to, "where", torch.zeros(1))
    side = torch.cuda.Stream()
    for size in (1 << 10, 1 << 24):
        with torch.cuda.stream(side):
            t = torch.zeros(size, device="cuda")
            torch.cuda._sleep(50_000_000)
            t.fill_(9)
        # Made on the default stream, which knows nothing of `side`'s work.
        reply = ep.call(to, "echo", t, stream=side).wait()
        got = torch.from_dlpack(reply.tensors[0])
        assert bool((got == 9).all()), size


def test_reply_into_cuda_tensor(pair):
    ep, to = pair
    src = torch.arange(4096, dtype=torch.float32, device="cuda")
    out = torch.zeros(4096, dtype=torch.float32, device="cuda")
    connected_call(ep, to, "where", src[:1])
    ep.call(to, "echo", src, out=[out]).wait()
    torch.cuda.synchronize()
    assert torch.equal(out, src)


def test_torch_tensors_without_dlpack_wrappers(pair):
    ep, to = pair
    connected_call(ep, to, "where", torch.zeros(1))
    t = torch.randn(3, 5, device="cuda")
    with pytest.raises(ValueError, match="not contiguous"):
        ep.call(to, "echo", t.t())
    got = torch.from_dlpack(ep.call(to, "echo", t.t().contiguous()).wait().tensors[0])
    assert torch.equal(got, t.t())


@pytest.mark.parametrize("place", ["local", "remote"])
def test_messages_of_cuda_tensors(request, place):
    a, b = daemons(request, place)
    with axon.connect(a.socket) as ca, axon.connect(b.socket) as cb:
        tx, rx = ca.endpoint("tx"), cb.endpoint("rx")
        to = "rx" if a is b else f"{b.name}/rx"
        into = torch.zeros(1 << 20, dtype=torch.float16, device="cuda")
        host_into = torch.from_dlpack(cb.allocate(1 << 21)).view(torch.float16)
        src = torch.randn(1 << 20, device="cuda").half()
        posted = connected_send(tx, to, src, rx, into, tag=3)
        posted.wait(10)
        assert torch.equal(into, src)
        posted = rx.recv_into(host_into, tag=4)  # GPU to host
        tx.send(to, src, tag=4).wait(10)
        posted.wait(10)
        assert torch.equal(host_into, src.cpu())


@pytest.mark.parametrize("place", ["local", "remote"])
def test_shared_gpu_allocations(request, place):
    """Client.allocate(n, "cuda"): VMM memory shared by fd, sent from and
    received into in place, exposed as a window; torch views it."""
    a, b = daemons(request, place)
    with axon.connect(a.socket) as ca, axon.connect(b.socket) as cb:
        tx, rx = ca.endpoint("tx"), cb.endpoint("rx")
        to = "rx" if a is b else f"{b.name}/rx"
        src = torch.from_dlpack(ca.allocate(1 << 22, "cuda")).view(torch.bfloat16)
        into = torch.from_dlpack(cb.allocate(1 << 22, "cuda:0")).view(torch.bfloat16)
        assert src.is_cuda and into.is_cuda and src.numel() == 1 << 21
        src.copy_(torch.randn(1 << 21, device="cuda").bfloat16())
        posted = connected_send(tx, to, src, rx, into, tag=1)
        posted.wait(10)
        assert torch.equal(into, src)
        # A GPU message with no posted receive lands in the host receive
        # area and comes out as a view there.
        small = torch.arange(256, device="cuda", dtype=torch.int32)
        sent = tx.send(to, small, tag=2)
        message = rx.recv(timeout=10).wait()
        sent.wait(10)
        assert torch.equal(torch.from_dlpack(message.data).view(torch.int32), small.cpu())
        # One sided into the shared allocation.
        with cb.expose(into) as window:
            ones = torch.ones(1024, device="cuda", dtype=torch.bfloat16)
            tx.write(axon.Window.from_descriptor(window.descriptor), [(ones, 2048)]).wait(10)
            torch.cuda.synchronize()
            assert torch.equal(into[1024:2048], ones)


@pytest.mark.parametrize("place", ["local", "remote"])
def test_blocks_of_a_cuda_tensor(request, place):
    """axon.Blocks over a torch CUDA tensor (the caching allocator's): 1,000
    pages scattered into a GPU window and gathered back, one notification,
    checked on the device."""
    a, b = daemons(request, place)
    with axon.connect(a.socket) as ca, axon.connect(b.socket) as cb:
        tx, kv = ca.endpoint("tx"), cb.endpoint("kv")
        pages, page = 1000, 4096
        cache = torch.from_dlpack(cb.allocate(pages * page, "cuda")).view(torch.uint8)
        cache.zero_()
        source = (torch.arange(pages * page, device="cuda") % 251).to(torch.uint8)
        slots = torch.randperm(pages)
        blocks = axon.Blocks(source, torch.arange(pages) * page, slots * page, page)
        note = torch.from_dlpack(cb.allocate(64)).view(torch.uint8)
        with cb.expose(cache, notify=kv) as window:
            seen = axon.Window.from_descriptor(window.descriptor)
            posted = kv.recv_into(note, tag=11)
            until_connected(lambda: tx.write(seen, blocks, notify=(11, b"pages")).wait(10))
            assert posted.wait(10).tag == 11
            torch.cuda.synchronize()
            landed = cache.view(pages, page)[slots.cuda()]
            assert torch.equal(landed, source.view(pages, page))
            back = torch.zeros_like(source)
            tx.read(seen, axon.Blocks(back, torch.arange(pages) * page, slots * page,
                                      page)).wait(10)
            torch.cuda.synchronize()
            assert torch.equal(back, source)
