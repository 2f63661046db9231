"""Serving calls: methods registered by decorator, sync or async."""

from __future__ import annotations

import asyncio
import inspect
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, List, Optional

from . import _axon
from ._calls import Reply
from .errors import Error, Internal

if TYPE_CHECKING:
    from ._client import Endpoint


@dataclass
class Request:
    """What a handler gets. ``tensors`` are DLPack views of where the
    request's tensors landed (host or GPU, as the caller sent them), zero
    copy; a handler may keep them, which keeps their memory."""

    method: str
    sender: str  # "node/endpoint"
    header: bytes
    tensors: List[Any]


def _reply_tuple(result: Any):
    """A handler's return as (header, [tensors]): None, bytes (a header),
    a Reply, one tensor, or a list or tuple of tensors."""
    if result is None:
        return (b"", [])
    if isinstance(result, Reply):
        return (bytes(result.header), list(result.tensors))
    if isinstance(result, (bytes, bytearray, memoryview)):
        return (bytes(result), [])
    if isinstance(result, (list, tuple)):
        return (b"", list(result))
    if hasattr(result, "__dlpack__"):
        return (b"", [result])
    raise TypeError(
        f"a handler returns None, bytes, a tensor, a list of tensors or axon.Reply; "
        f"not {type(result).__name__}")


def _code_of(error: BaseException) -> int:
    return error.code if isinstance(error, Error) else Internal.code


def _text_of(error: BaseException) -> str:
    if isinstance(error, Error):
        return str(error)
    return f"{type(error).__name__}: {error}"


class Server:
    """Serves calls to one endpoint::

        server = ep.server(concurrency=16)

        @server.method()
        def echo(request):
            return request.tensors

        @server.method("slow")
        async def slow(request):
            await asyncio.sleep(0.1)
            return b"done"

        with server:          # start() ... stop()
            ...

    Plain functions run on the server's threads (``concurrency`` of them, so
    one slow handler does not hold up the rest). ``async def`` handlers run
    on an event loop: the one running when the server starts, else one the
    server runs on a thread of its own. Raise an axon.errors class to answer
    with its code; any other exception answers INTERNAL with its text.
    """

    def __init__(self, endpoint: "Endpoint", concurrency: int = 8, slots: int = 256,
                 slot_bytes: int = 128 * 1024):
        self.endpoint = endpoint
        self._server = _axon.Server(endpoint.client._state, endpoint.name, concurrency,
                                    slot_bytes, slots)
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._loop_thread: Optional[threading.Thread] = None
        self._has_async = False
        self._started = False
        self._stopped = False
        endpoint.client._servers.add(self)

    def method(self, name: Optional[str] = None) -> Callable:
        """Registers the decorated function as method ``name`` (default: its
        own name). Register before start()."""
        def register(fn: Callable) -> Callable:
            self.add_method(name or fn.__name__, fn)
            return fn
        return register

    def add_method(self, name: str, fn: Callable) -> None:
        if self._started:
            raise RuntimeError("register methods before the server starts")
        if inspect.iscoroutinefunction(fn):
            self._has_async = True
            self._server.handle_async(name, self._async_handler(fn))
        else:
            self._server.handle(name, self._sync_handler(fn))

    @staticmethod
    def _sync_handler(fn: Callable) -> Callable:
        def run(request_tuple):
            return _reply_tuple(fn(Request(*request_tuple)))
        return run

    def _async_handler(self, fn: Callable) -> Callable:
        def run(request_tuple, responder) -> None:
            loop = self._loop
            coroutine = fn(Request(*request_tuple))
            future = asyncio.run_coroutine_threadsafe(coroutine, loop)

            def answer(done) -> None:
                try:
                    responder.send(_reply_tuple(done.result()))
                except BaseException as e:  # the handler's, or a bad return
                    responder.fail(_code_of(e), _text_of(e))
            future.add_done_callback(answer)
        return run

    def start(self) -> "Server":
        if self._started:
            return self
        self.endpoint.client._check_fork()
        if _axon.receiving(self.endpoint.client._state, self.endpoint.name):
            from .errors import FailedPrecondition
            raise FailedPrecondition(
                f"endpoint {self.endpoint.name!r} receives with recv(): serve on another")
        if self._has_async:
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:
                self._loop = asyncio.new_event_loop()
                self._loop_thread = threading.Thread(
                    target=self._loop.run_forever, name=f"axon-server-{self.endpoint.name}",
                    daemon=True)
                self._loop_thread.start()
        self._server.start()
        self._started = True
        self.endpoint._serving = True
        return self

    def stop(self) -> None:
        """Stops taking requests and waits for running handlers (requests
        not yet started are answered UNAVAILABLE). Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._server.stop()
        self.endpoint._serving = False
        if os.getpid() != self.endpoint.client._pid:
            return  # a fork() child: the loop thread is the parent's
        if self._loop_thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop_thread.join()
            self._loop.close()
            self._loop_thread = None

    def stats(self) -> List[dict]:
        """Per method: calls, errors, in_flight, dropped_replies, p50_us, p99_us."""
        return self._server.stats()

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    async def __aenter__(self) -> "Server":
        return self.start()

    async def __aexit__(self, *exc) -> None:
        # Handlers may be awaiting this loop: stop from a thread, so the loop
        # keeps running them while stop() waits.
        await asyncio.get_running_loop().run_in_executor(None, self.stop)
