"""Calls and messages in flight: wait on them, await them, or cancel them."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, List, Optional

from . import _axon
from .errors import DeadlineExceeded

if TYPE_CHECKING:
    from ._client import Client


@dataclass
class Reply:
    """A call's answer: the header bytes and the tensors.

    Each tensor is a DLPack-capable view of where the reply landed (your
    ``out=`` tensors, or memory axon keeps until the view is gone): pass it
    to ``torch.from_dlpack`` or ``numpy.from_dlpack``, zero copy.
    """

    header: bytes = b""
    tensors: List[Any] = field(default_factory=list)


@dataclass
class Completed:
    """A message operation that completed: the bytes it moved, and the tag
    (for a receive: the message's)."""

    length: int
    tag: int


class _Pending:
    """What Call and Op share: waiting, awaiting, cancelling."""

    def __init__(self, client: "Client", handle: Any):
        self._client = client
        self._handle = handle
        self._lock = threading.Lock()
        self._futures: list = []  # (loop, future) awaiting it

    def done(self) -> bool:
        return self._handle.done()

    def wait(self, timeout: Optional[float] = None):
        """The outcome, waiting up to ``timeout`` seconds (None: the
        operation's own deadline bounds it). Raises its error, or
        DeadlineExceeded if ``timeout`` passes first (it goes on)."""
        if not self._handle.wait(-1.0 if timeout is None else float(timeout)):
            raise DeadlineExceeded(f"not done within {timeout} s (it goes on)")
        return self.result()

    def result(self):
        raise NotImplementedError

    def cancel(self) -> None:
        """Ends it CANCELLED unless it ended first."""
        self._handle.cancel()

    def __await__(self):
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:
            self._futures.append((loop, future))
        self._client._await_on(loop, self)
        if self._handle.done():
            self._resolve()
        future.add_done_callback(self._on_future_done)
        return (yield from future.__await__())

    def _on_future_done(self, future: "asyncio.Future") -> None:
        if future.cancelled():
            self.cancel()

    def _resolve(self) -> None:
        """Completes the futures awaiting it; on each one's loop."""
        with self._lock:
            futures, self._futures = self._futures, []
        if not futures:
            return
        try:
            outcome: Any = self.result()
            failed = False
        except Exception as e:  # the call's error, for every awaiting task
            outcome, failed = e, True
        for loop, future in futures:
            def settle(future=future):
                if future.done():
                    return
                if failed:
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                settle()
            elif not loop.is_closed():
                loop.call_soon_threadsafe(settle)

    @property
    def token(self) -> int:
        return self._handle.token


class Call(_Pending):
    """A call in flight, from :meth:`Endpoint.call`.

    ``call.wait(timeout)`` blocks for the :class:`Reply`; ``await call`` waits
    in asyncio (cancelling the awaiting task cancels the call);
    ``call.cancel()`` ends it CANCELLED unless it ended first.
    """

    def result(self) -> Reply:
        """The reply of a call that has ended, or its error."""
        header, tensors = self._handle.reply()
        return Reply(header, tensors)


class Op(_Pending):
    """A send or a posted receive in flight, from :meth:`Endpoint.send` or
    :meth:`Endpoint.recv_into`: wait on it, await it, or cancel it, like a
    :class:`Call`; its outcome is a :class:`Completed`."""

    def result(self) -> Completed:
        length, tag = self._handle.result()
        return Completed(length, tag)
