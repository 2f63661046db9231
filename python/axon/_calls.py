"""Calls and messages in flight: wait on them, await them, or cancel them."""

from __future__ import annotations

import asyncio
import threading
import time
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


def _settle(future: "asyncio.Future", outcome: Any, failed: bool) -> None:
    if future.done():  # cancelled meanwhile
        return
    if failed:
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


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
        self._arm(loop, future)
        # From here its token reaches the loop when it ends; if it has ended
        # already, the token may not come, so resolve it now.
        if self._handle.watch():
            self._resolve()
        future.add_done_callback(self._on_future_done)
        return (yield from future.__await__())

    def _arm(self, loop: asyncio.AbstractEventLoop, future: "asyncio.Future") -> None:
        """What an awaited operation sets up on the loop beside the future."""

    def _on_future_done(self, future: "asyncio.Future") -> None:
        if future.cancelled():
            self.cancel()

    def _resolve(self, forgotten: bool = False) -> None:
        """Completes the futures awaiting it; on each one's loop.
        ``forgotten``: the client has let go of it already (a drain)."""
        # Awaited after a drain already took its token: the client must not
        # keep it (and what its outcome holds) until it closes.
        if not forgotten:
            self._client._forget(self.token)
        with self._lock:
            futures, self._futures = self._futures, []
        if not futures:
            return
        try:
            outcome: Any = self.result()
            failed = False
        except Exception as e:  # the call's error, for every awaiting task
            outcome, failed = e, True
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for loop, future in futures:
            if running is loop:
                _settle(future, outcome, failed)
            elif not loop.is_closed():
                loop.call_soon_threadsafe(_settle, future, outcome, failed)

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


@dataclass
class Message:
    """A message from :meth:`Endpoint.recv`: its sender ("node/endpoint"),
    its tag, and ``data``, a uint8 DLPack view of its bytes where they landed
    (a slot of the client's receive area), zero copy: pass it to
    ``numpy.from_dlpack`` or ``torch.from_dlpack`` and ``.view()`` it as the
    dtype you sent. The slot goes back to the daemon once ``data``, every
    view made from it, and the :class:`Receive` holding it are gone; until
    then, later messages use other slots (and senders wait when none is
    free)."""

    sender: str
    tag: int
    data: Any


class Receive(_Pending):
    """A receive in flight, from :meth:`Endpoint.recv`: wait on it, await it,
    or cancel it; its outcome is a :class:`Message`. With a ``timeout`` it
    ends :class:`axon.errors.DeadlineExceeded` (a ``TimeoutError``) when no
    message came in time."""

    def __init__(self, client: "Client", handle: Any, timeout: Optional[float]):
        super().__init__(client, handle)
        self._deadline = None if timeout is None else time.monotonic() + float(timeout)
        self._taken = threading.Lock()
        self._message: Optional[Message] = None

    def _left(self) -> Optional[float]:
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - time.monotonic())

    def done(self) -> bool:
        if not self._handle.done() and self._left() == 0.0:
            self._handle.expire()
        return self._handle.done()

    def wait(self, timeout: Optional[float] = None) -> Message:
        left = self._left()
        if left is not None and (timeout is None or timeout >= left):
            if not self._handle.wait(left):
                # Ends it, unless a message reached it meanwhile: set either way.
                self._handle.expire()
            return self.result()
        return super().wait(timeout)

    def _arm(self, loop: asyncio.AbstractEventLoop, future: "asyncio.Future") -> None:
        left = self._left()
        if left is None:
            return
        timer = loop.call_later(left, self._handle.expire)
        future.add_done_callback(lambda _: timer.cancel())

    def result(self) -> Message:
        """The message of a receive that has ended, or its error."""
        with self._taken:
            if self._message is None:
                sender, tag, data = self._handle.take()
                self._message = Message(sender, tag, data)
            return self._message
