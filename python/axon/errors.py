"""axon's exceptions: one class per status code, each also a builtin.

Every failure axon reports is an :class:`Error` whose ``code`` is the status
code (as in gRPC and absl) and whose message is the daemon's reason. Each
class also derives from the builtin that means the same thing, so code that
knows nothing of axon still catches it::

    try:
        reply = ep.call("node-b/kv", "get", key).wait(timeout=1.0)
    except TimeoutError:          # axon.errors.DeadlineExceeded
        ...
    except ConnectionError:       # axon.errors.Unavailable: the server went away
        ...

A call handler may raise one of these to answer the caller with its code.
"""

from __future__ import annotations


class Error(Exception):
    """Any axon failure; ``code`` is its status code."""

    code = 2  # UNKNOWN


class Cancelled(Error):
    code = 1


class Unknown(Error):
    code = 2


class InvalidArgument(Error, ValueError):
    code = 3


class DeadlineExceeded(Error, TimeoutError):
    code = 4


class NotFound(Error, LookupError):
    code = 5


class AlreadyExists(Error, FileExistsError):
    code = 6


class PermissionDenied(Error, PermissionError):
    code = 7


class ResourceExhausted(Error, RuntimeError):
    code = 8


class FailedPrecondition(Error, RuntimeError):
    code = 9


class Aborted(Error, RuntimeError):
    code = 10


class OutOfRange(Error, IndexError):
    code = 11


class Unimplemented(Error, NotImplementedError):
    code = 12


class Internal(Error, RuntimeError):
    code = 13


class Unavailable(Error, ConnectionError):
    code = 14


class DataLoss(Error, RuntimeError):
    code = 15


class Unauthenticated(Error, PermissionError):
    code = 16


_BY_CODE = {
    cls.code: cls
    for cls in (
        Cancelled, Unknown, InvalidArgument, DeadlineExceeded, NotFound, AlreadyExists,
        PermissionDenied, ResourceExhausted, FailedPrecondition, Aborted, OutOfRange,
        Unimplemented, Internal, Unavailable, DataLoss, Unauthenticated,
    )
}


def error_class(code: int) -> type[Error]:
    """The class for status code ``code`` (Unknown for one axon does not use)."""
    return _BY_CODE.get(code, Unknown)


__all__ = ["Error", "error_class"] + [cls.__name__ for cls in _BY_CODE.values()]
