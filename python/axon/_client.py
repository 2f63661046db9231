"""The node's daemon, attached: endpoints, shared memory, calls."""

from __future__ import annotations

import asyncio
import dataclasses
import operator
import os
import sys
import threading
import weakref
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Sequence, Tuple

from . import _axon, errors
from ._calls import Call, Op, Receive
from ._tensors import cuda_stream, optional_seconds_to_ms

if TYPE_CHECKING:
    from ._windows import Window

_live_clients: "weakref.WeakSet[Client]" = weakref.WeakSet()


@dataclasses.dataclass(frozen=True)
class ConnectionEvent:
    """What ``on_connection`` is told: the daemon went away
    (``connected`` false, ``error`` says why), or the client re-attached to
    it (``error`` is None, or an :class:`axon.errors.DataLoss` naming what
    could not be restored; the rest works)."""

    connected: bool
    error: Optional[errors.Error]
    attempts: int
    session_id: int


class Client:
    """A session with this node's axond.

    ``socket``: the daemon's control socket (default: $AXON_SOCKET, else
    /run/axon/axond.sock). ``name`` is what operators see in ``axonctl
    sessions``. Use it as a context manager (``with``/``async with``) or
    call :meth:`close`.

    ``reconnect`` (default on): when the daemon restarts, the client
    re-attaches in the background with its memory, endpoints, receive area
    and posted receives; what was in flight fails with
    :class:`axon.errors.Unavailable` (a ``ConnectionError``), and so does
    what is submitted until it is back: retry it. ``on_connection`` is
    called with a :class:`ConnectionEvent` (on a thread of axon's) each
    time the daemon goes away and each time the client is back.

    ``receive_slots`` x ``receive_slot_bytes``: the receive area, shared
    memory set up on the first :meth:`Endpoint.recv` or server start (a
    server's own sizes apply when it comes first). Messages no posted
    receive takes, and call requests, land in its slots; one larger than a
    slot waits for a posted receive.

    ``placement``: clients that name the same one are served by the same
    thread of the daemon (``engine.shards`` above 1), so messages between
    them take no hand-off between its threads: give both ends of a busy
    pair on one node one placement.
    """

    def __init__(self, socket: Optional[str] = None, name: Optional[str] = None,
                 timeout: float = 10.0, reconnect: bool = True,
                 on_connection: Optional[Callable[[ConnectionEvent], None]] = None,
                 receive_slots: int = 256, receive_slot_bytes: int = 128 * 1024,
                 placement: str = ""):
        if name is None:
            name = f"python-{os.getpid()}"
        self._pid = os.getpid()
        notify = None
        if on_connection is not None:
            def notify(connected: bool, code: int, message: str, attempts: int,
                       session_id: int) -> None:
                error = None if code == 0 else errors.error_class(code)(message)
                on_connection(ConnectionEvent(connected, error, attempts, session_id))
        self._state = _axon.Client.connect(socket or "", name, int(timeout * 1000),
                                           reconnect, notify, placement)
        self._area = (int(receive_slot_bytes), int(receive_slots))
        self._lock = threading.Lock()
        self._awaited: Dict[int, Any] = {}
        self._watching: Optional[asyncio.AbstractEventLoop] = None
        self._servers: "weakref.WeakSet[Any]" = weakref.WeakSet()
        _live_clients.add(self)

    # --- attributes -----------------------------------------------------
    @property
    def node(self) -> str:
        return self._state.node

    @property
    def session_id(self) -> int:
        return self._state.session_id

    @property
    def closed(self) -> bool:
        return self._state.closed

    @property
    def connected(self) -> bool:
        """Whether a daemon serves this client now (false while it
        reconnects)."""
        return self._state.connected

    def fileno(self) -> int:
        """The eventfd that turns readable when an operation asyncio awaits
        has completed (the event loop watches it; waited operations do not
        use it)."""
        return self._state.fd

    # --- endpoints and memory ---------------------------------------------
    def endpoint(self, name: str) -> "Endpoint":
        """Binds endpoint ``name`` (unique on the node) to this client."""
        self._check_fork()
        return Endpoint(self, name, self._state.bind(name))

    def allocate(self, nbytes: int, device: Any = None):
        """``nbytes`` of memory shared with the daemon, as a uint8 tensor
        (DLPack). Tensors viewing it are sent, received and exposed in place::

            buf = np.from_dlpack(client.allocate(4096)).view(np.float32)
            gpu = torch.from_dlpack(client.allocate(1 << 20, "cuda")).view(torch.bfloat16)

        ``device``: None or "cpu" for host memory (a memfd); "cuda",
        "cuda:N", N or a ``torch.device`` for GPU memory (a CUDA VMM
        allocation shared by file descriptor, which works across PID
        namespaces and containers, unlike IPC handles). "cuda" is torch's
        current device when torch is loaded, else device 0. It is freed once
        the tensor and every view of it are gone.
        """
        self._check_fork()
        ordinal = _cuda_ordinal(device)
        if ordinal is None:
            return self._state.allocate_host(nbytes)
        return self._state.allocate_cuda(nbytes, ordinal)

    def expose(self, tensor: Any, notify: Any = None, allowed: Sequence[str] = (),
               readable: bool = True, writable: bool = True) -> "Window":
        """Exposes ``tensor`` (shared memory from :meth:`allocate`, or CUDA
        memory) as a :class:`Window` others write into and read from, one
        sided, without this client posting anything per block.

        ``notify``: an endpoint of this client (or its name) where
        operations' notifications arrive as messages, once their bytes are in
        place (receive them with ``recv_into``); None: operations may not
        notify. ``allowed``: who may use it, "node" or "node/endpoint"
        (empty: whoever holds the descriptor). Hand ``window.descriptor`` to
        the initiators.
        """
        from ._windows import expose
        return expose(self, tensor, notify, allowed, readable, writable)

    def ping(self) -> None:
        """One round trip through the daemon."""
        self._state.ping()

    # --- lifetime -------------------------------------------------------
    def close(self) -> None:
        """Stops this client's servers and detaches; calls in flight end
        UNAVAILABLE. Closing twice is fine."""
        for server in list(self._servers):
            server.stop()  # in a fork() child it only lets go of the handlers
        if os.getpid() != self._pid:
            # A fork() child's copy of the parent's client: the event loop's
            # epoll set and the completion eventfd are shared with the parent,
            # and libaxon leaves the parent's session alone here.
            return
        if self._watching is not None and not self._watching.is_closed():
            try:
                self._watching.remove_reader(self._state.fd)
            except (RuntimeError, ValueError):
                pass  # another thread's loop, or already gone
        self._watching = None
        self._state.close()
        self._drain()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"node={self.node!r}"
        return f"<axon.Client {state}>"

    # --- completions ----------------------------------------------------
    def _await_on(self, loop: asyncio.AbstractEventLoop, call: Any) -> None:
        with self._lock:
            self._awaited[call.token] = call
            watching = self._watching
            if watching is loop:
                return
            # One loop watches the fd, the first that awaits; futures of
            # other loops are settled on theirs (Call._resolve). A loop that
            # stopped (asyncio.run returned) hands the fd to the next one.
            if watching is not None and watching.is_running():
                return
            if watching is not None and not watching.is_closed():
                watching.remove_reader(self._state.fd)
            self._watching = loop
            loop.add_reader(self._state.fd, self._drain)
        # What completed while no loop watched is collected now.
        loop.call_soon(self._drain)

    def _forget(self, token: int) -> None:
        with self._lock:
            self._awaited.pop(token, None)

    def _drain(self) -> None:
        tokens = self._state.drain()
        if not tokens:
            return
        with self._lock:  # once for the whole batch
            pop = self._awaited.pop
            calls = [pop(token, None) for token in tokens]
        for call in calls:
            if call is not None:
                call._resolve(forgotten=True)

    def _check_fork(self) -> None:
        if os.getpid() != self._pid:
            from .errors import FailedPrecondition
            raise FailedPrecondition(
                "this client belongs to the parent process; connect a new one after fork")


class Endpoint:
    """An endpoint this client bound: it makes calls, and serves them
    through :meth:`server`."""

    def __init__(self, client: Client, name: str, address: str):
        self.client = client
        self.name = name
        self.address = address  # "node/name"
        self._serving = False  # a started server takes its messages

    def call(self, to: str, method: str, *tensors: Any, header: bytes = b"",
             timeout: Optional[float] = 10.0, out: Sequence[Any] = (),
             stream: Any = None) -> Call:
        """Calls ``method`` at endpoint ``to`` ("endpoint" on this node or
        "node/endpoint") with ``tensors`` (anything with ``__dlpack__``:
        torch, numpy, CuPy, JAX; host or CUDA). Returns at once; wait on,
        await or cancel the :class:`Call`.

        ``out``: tensors the reply's tensors land in, in order, written in
        place. ``timeout``: seconds for the whole call (None: no deadline).
        ``stream``: the CUDA stream whose queued work writes the tensors
        (default: torch's current stream, for torch CUDA tensors).
        """
        self.client._check_fork()
        if not isinstance(header, (bytes, bytearray, memoryview)):
            raise TypeError(f"header must be bytes, not {type(header).__name__}")
        handle = _axon.call_async(
            self.client._state, self.name, to, method, bytes(header), list(tensors), list(out),
            optional_seconds_to_ms(timeout), cuda_stream(tensors, stream))
        return Call(self.client, handle)

    def send(self, to: str, *tensors: Any, tag: int = 0, timeout: Optional[float] = None,
             stream: Any = None) -> Op:
        """Sends ``tensors`` to endpoint ``to`` as one message, back to back,
        with ``tag``. Completes once the bytes sit in the receiver's tensor:
        it waits for the receiver to post one (back-pressure, never a drop).
        Messages from one endpoint to another arrive in order."""
        self.client._check_fork()
        handle = _axon.send_async(self.client._state, self.name, to, _tag(tag), list(tensors),
                                  optional_seconds_to_ms(timeout), cuda_stream(tensors, stream))
        return Op(self.client, handle)

    def recv_into(self, tensor: Any, tag: int = 0, timeout: Optional[float] = None,
                  sender: Optional[str] = None, stream: Any = None) -> Op:
        """Posts ``tensor`` for the next message with ``tag`` to this endpoint
        (from ``sender`` only, "endpoint" or "node/endpoint", when given):
        the daemon writes the message into it. The tensor must be shared
        memory (:meth:`Client.allocate`) or CUDA memory."""
        self.client._check_fork()
        handle = _axon.recv_into_async(self.client._state, self.name, _tag(tag), tensor,
                                       optional_seconds_to_ms(timeout), sender or "",
                                       cuda_stream([tensor], stream))
        return Op(self.client, handle)

    def recv(self, timeout: Optional[float] = None) -> Receive:
        """The next message to this endpoint that no posted receive
        (:meth:`recv_into`) took, any tag, any sender: a :class:`Receive`
        whose outcome is a :class:`Message` viewing the bytes where they
        landed, zero copy. Receives are served in the order they were
        made, messages from one sender in the order sent. ``timeout``:
        seconds (None: none). An endpoint that serves calls cannot also
        receive this way."""
        self.client._check_fork()
        if self._serving:
            from .errors import FailedPrecondition
            raise FailedPrecondition(
                f"endpoint {self.name!r} serves calls: its messages go to the server")
        slot_bytes, slots = self.client._area
        handle = _axon.receive_async(self.client._state, self.name, slot_bytes, slots,
                                     optional_seconds_to_ms(timeout))
        return Receive(self.client, handle, timeout)

    def write(self, window: "Window", blocks: Any, notify: Optional[Tuple[int, bytes]] = None,
              timeout: Optional[float] = None, stream: Any = None) -> Op:
        """Copies ``blocks`` into ``window`` (one sided): a tensor (to offset
        0), a list of ``(tensor, window_offset)`` pairs, each tensor's bytes
        whole (views of a larger tensor are blocks of it), or an
        :class:`axon.Blocks` (byte ranges of one tensor, many blocks at the
        cost of one). With
        ``notify=(tag, bytes)`` (at most 4 KiB), the window's notify endpoint
        receives that message once every byte is in place. Completes when
        the bytes are in place; ``result().length`` is the bytes moved.
        ``stream``: as for :meth:`send`."""
        from ._windows import transfer
        return transfer(True, self, window, blocks, notify, timeout, stream)

    def read(self, window: "Window", blocks: Any, notify: Optional[Tuple[int, bytes]] = None,
             timeout: Optional[float] = None, stream: Any = None) -> Op:
        """Copies bytes of ``window`` into ``blocks`` (tensors in shared
        memory or CUDA memory, written in place), the pairs or
        :class:`axon.Blocks` as for :meth:`write`: each block is filled from
        its window offset."""
        from ._windows import transfer
        return transfer(False, self, window, blocks, notify, timeout, stream)

    def server(self, concurrency: int = 8, slots: int = 256,
               slot_bytes: int = 128 * 1024) -> "Server":
        """A server for calls to this endpoint; register methods, then start it."""
        self.client._check_fork()
        from ._server import Server
        return Server(self, concurrency=concurrency, slots=slots, slot_bytes=slot_bytes)

    def close(self) -> None:
        """Unbinds the endpoint; its waiting receives end
        FailedPrecondition, and the messages no one received yet go."""
        try:
            self.client._state.unbind(self.name)  # first: nothing lands after
        finally:
            _axon.stop_receiving(self.client._state, self.name)

    def __repr__(self) -> str:
        return f"<axon.Endpoint {self.address!r}>"


def _cuda_ordinal(device: Any) -> Optional[int]:
    """The CUDA device ``device`` names, or None for host memory."""
    if device is None:
        return None
    if isinstance(device, bool):
        raise ValueError(f"not a device: {device!r}")
    try:
        ordinal = operator.index(device)  # int, numpy integers
    except TypeError:
        ordinal = None
    if ordinal is not None:
        if ordinal < 0:
            raise ValueError(f"a CUDA device is numbered from 0, not {ordinal}")
        return ordinal
    kind, index = getattr(device, "type", None), getattr(device, "index", None)
    if kind is None:
        text = str(device)
        kind, colon, number = text.partition(":")
        index = int(number) if number.isdigit() else None
        if colon and index is None:
            raise ValueError(f"not a device: {device!r} (\"cpu\", \"cuda\" or \"cuda:N\")")
    if kind == "cpu":
        return None
    if kind != "cuda":
        raise ValueError(f"not a device axon allocates on: {device!r} (\"cpu\" or \"cuda[:N]\")")
    if index is not None:
        return int(index)
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        return int(torch.cuda.current_device())
    return 0


def _tag(tag: int) -> int:
    # The top bits are axon's own (calls, directed replies).
    if not isinstance(tag, int) or not 0 <= tag < 1 << 60:
        raise ValueError(f"a tag is an int in [0, 2**60), not {tag!r}")
    return tag


def connect(socket: Optional[str] = None, name: Optional[str] = None,
            timeout: float = 10.0, reconnect: bool = True,
            on_connection: Optional[Callable[[ConnectionEvent], None]] = None,
            receive_slots: int = 256, receive_slot_bytes: int = 128 * 1024,
            placement: str = "") -> Client:
    """Attaches to this node's axond; see :class:`Client`."""
    return Client(socket=socket, name=name, timeout=timeout, reconnect=reconnect,
                  on_connection=on_connection, receive_slots=receive_slots,
                  receive_slot_bytes=receive_slot_bytes, placement=placement)
