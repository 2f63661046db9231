"""axon: tensors and calls between processes and nodes, through the node's
axond daemon.

    import axon, numpy as np

    with axon.connect() as client:
        ep = client.endpoint("worker-0")
        server = ep.server()

        @server.method()
        def echo(request):
            return request.tensors

        with server:
            reply = ep.call("worker-0", "echo", np.arange(4.0)).wait()
            print(np.from_dlpack(reply.tensors[0]))

Tensors go in through DLPack (torch, numpy, CuPy, JAX; host or CUDA) and come
back as DLPack views, zero copy. Every call can be waited on (``.wait()``),
awaited in asyncio, or cancelled. Errors are axon.errors classes that also
derive from the matching builtin (TimeoutError, ConnectionError, ...).
"""

from __future__ import annotations

import atexit

from . import errors
from ._calls import Call, Completed, Message, Op, Receive, Reply
from ._client import Client, ConnectionEvent, Endpoint, _live_clients, connect
from ._server import Request, Server
from ._windows import Blocks, Window
from .errors import Error

__all__ = [
    "Blocks", "Call", "Client", "Completed", "ConnectionEvent", "Endpoint", "Error", "Message", "Op",
    "Receive", "Reply", "Request", "Server", "Window", "connect", "errors",
]


@atexit.register
def _close_clients() -> None:
    # Before the interpreter finalizes: servers stop calling into Python and
    # sessions end while Python objects can still be touched.
    for client in list(_live_clients):
        try:
            client.close()
        except Exception:
            pass
