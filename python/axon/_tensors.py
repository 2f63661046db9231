"""What crosses into the extension: tensor lists and CUDA streams."""

from __future__ import annotations

import sys
from typing import Any, Iterable, Optional


def cuda_stream(tensors: Iterable[Any], stream: Any) -> int:
    """The cudaStream_t whose queued work writes ``tensors``, as an int.

    An explicit ``stream`` wins: an int, or an object with ``cuda_stream``
    (torch.cuda.Stream) or ``ptr`` (CuPy). Otherwise, for torch CUDA tensors,
    torch's current stream on their device, so that work queued before the
    call is waited for without a manual synchronize. 0 is the legacy default
    stream.
    """
    if stream is not None:
        if isinstance(stream, int):
            return stream
        for attr in ("cuda_stream", "ptr"):
            if hasattr(stream, attr):
                return int(getattr(stream, attr))
        raise TypeError(f"stream must be an int or a CUDA stream object, not {type(stream).__name__}")
    torch = sys.modules.get("torch")
    if torch is None:
        return 0
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.is_cuda:
            return int(torch.cuda.current_stream(t.device).cuda_stream)
    return 0


def optional_seconds_to_ms(timeout: Optional[float]) -> int:
    if timeout is None:
        return 0
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, not {timeout}")
    return max(1, int(timeout * 1000))
