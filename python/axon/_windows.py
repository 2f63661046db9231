"""One-sided transfers: windows others write into and read from."""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING, Any, List, Optional, Sequence, Tuple, Union

from . import _axon
from ._calls import Op
from ._tensors import cuda_stream, optional_seconds_to_ms

if TYPE_CHECKING:
    from ._client import Client, Endpoint

class Blocks:
    """Many byte ranges of one tensor as the blocks of one write or read,
    without a tensor view per block: block ``i`` is ``lengths[i]`` bytes at
    byte ``offsets[i]`` of ``tensor`` (contiguous, host shared memory or
    CUDA), to or from byte ``window_offsets[i]`` of the window. ``lengths``
    may be one int for every block. Offsets and lengths are sequences of
    ints: lists, ranges, numpy arrays. A paged KV cache's blocks are
    ``Blocks(cache, src_pages * page_bytes, dst_pages * page_bytes,
    page_bytes)``."""

    __slots__ = ("tensor", "offsets", "window_offsets", "lengths")

    def __init__(self, tensor: Any, offsets: Any, window_offsets: Any, lengths: Any):
        self.tensor = tensor
        self.offsets = _uint64s(offsets, "offsets")
        self.window_offsets = _uint64s(window_offsets, "window_offsets")
        if isinstance(lengths, int):
            self.lengths = _uint64s([lengths], "lengths") * len(self)
        else:
            self.lengths = _uint64s(lengths, "lengths")
        if not len(self.window_offsets) == len(self.lengths) == len(self.offsets):
            raise ValueError(f"{len(self)} offsets, {len(self.window_offsets) // 8} window "
                             f"offsets and {len(self.lengths) // 8} lengths: one of each per block")

    def __len__(self) -> int:
        return len(self.offsets) // 8

    def __repr__(self) -> str:
        return f"<axon.Blocks {len(self)} of {type(self.tensor).__name__}>"


def _uint64s(values: Any, what: str) -> bytes:
    """`values` packed as native uint64s, numpy arrays without a loop."""
    if hasattr(values, "astype") and hasattr(values, "tobytes"):  # numpy, without importing it
        if (values < 0).any():
            raise ValueError(f"{what} are not negative")
        return values.astype("=u8").tobytes()
    try:
        return array("Q", values).tobytes()
    except OverflowError:
        raise ValueError(f"{what} are not negative and below 2**64") from None
    except TypeError:
        raise TypeError(f"{what} are ints, not {values!r:.60}") from None


# What a write or read takes: a tensor alone (at window offset 0), whole
# tensors at window offsets, or Blocks.
BlocksLike = Union[Any, Sequence[Tuple[Any, int]], Blocks]


class Window:
    """Memory one client exposed for others to write into and read from,
    named by its descriptor: opaque bytes (about 60) to hand to initiators
    by any means (a call, a message, etcd). Whoever holds them may use the
    window, within its access list.

    The owner gets one from :meth:`Client.expose` and revokes it with
    :meth:`unexpose` (or by leaving a ``with`` block); an initiator makes
    one with :meth:`from_descriptor` and passes it to
    :meth:`Endpoint.write` and :meth:`Endpoint.read`.
    """

    def __init__(self, descriptor: bytes, _owner: Optional["Client"] = None,
                 _tensor: Any = None):
        self.descriptor = bytes(descriptor)
        (self.node, self.id, self.length, self.readable,
         self.writable) = _axon.window_info(self.descriptor)
        self._owner = _owner
        self._tensor = _tensor  # the exposed memory stays alive while exposed

    @classmethod
    def from_descriptor(cls, descriptor: bytes) -> "Window":
        """The initiator's side: a window from its descriptor's bytes.
        Raises ValueError for bytes that are not a descriptor."""
        return cls(descriptor)

    def unexpose(self) -> None:
        """Revokes the window; returns once no operation writes into or
        reads from its memory, which may then be reused. Owner only;
        unexposing twice is fine."""
        if self._owner is None:
            from .errors import FailedPrecondition
            raise FailedPrecondition("only the client that exposed a window unexposes it")
        if self._tensor is None:
            return
        self._owner._check_fork()
        _axon.unexpose(self._owner._state, self.descriptor)
        self._tensor = None

    def __enter__(self) -> "Window":
        return self

    def __exit__(self, *exc) -> None:
        if self._owner is not None:
            self.unexpose()

    def __repr__(self) -> str:
        access = ("r" if self.readable else "") + ("w" if self.writable else "")
        return f"<axon.Window {self.node}/{self.id} {self.length} B {access}>"


def expose(client: "Client", tensor: Any, notify: Any, allowed: Sequence[str],
           readable: bool, writable: bool) -> Window:
    client._check_fork()
    endpoint = getattr(notify, "name", notify) or ""
    descriptor = _axon.expose(client._state, tensor, endpoint, list(allowed), readable, writable)
    return Window(descriptor, _owner=client, _tensor=tensor)


def transfer(write: bool, endpoint: "Endpoint", window: Window, blocks: BlocksLike,
             notify: Optional[Tuple[int, bytes]], timeout: Optional[float],
             stream: Any) -> Op:
    endpoint.client._check_fork()
    if not isinstance(window, Window):
        raise TypeError(f"window must be an axon.Window, not {type(window).__name__}")
    pairs: Union[List[Tuple[Any, int]], Blocks]
    if isinstance(blocks, Blocks):
        pairs = blocks
        tensors = [blocks.tensor]
    else:
        if isinstance(blocks, (list, tuple)):
            pairs = [_block(b) for b in blocks]
        else:
            pairs = [(blocks, 0)]
        tensors = [t for t, _ in pairs]
    tag: Optional[int] = None
    note = b""
    if notify is not None:
        tag, note = notify
        if not isinstance(note, (bytes, bytearray, memoryview)):
            raise TypeError(f"notification bytes must be bytes, not {type(note).__name__}")
        note = bytes(note)
    call = _axon.write_async if write else _axon.read_async
    handle = call(endpoint.client._state, endpoint.name, window.descriptor, pairs, tag, note,
                  optional_seconds_to_ms(timeout), cuda_stream(tensors, stream))
    return Op(endpoint.client, handle)


def _block(block: Any) -> Tuple[Any, int]:
    if isinstance(block, tuple) and len(block) == 2 and isinstance(block[1], int):
        if block[1] < 0:
            raise ValueError(f"a window offset is not negative, not {block[1]}")
        return block
    raise TypeError("a block is a (tensor, window_offset) pair")
