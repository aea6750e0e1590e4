"""What the API's middlewares and routes share at the ASGI level: reading a request's body
once and handing it on, and where a short read runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive

from entrepot.storage.engine import is_sqlite

P = ParamSpec("P")
T = TypeVar("T")


async def read_body(receive: Receive) -> bytes:
    """The whole request body. A client that leaves half-way raises ``ClientDisconnect``: the
    app never sees a truncated body as if it were the request (and nothing is stored under its
    Idempotency-Key, so the client's retry with the whole body goes through)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body already read, then the real channel."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def run_read(engine: Engine, read: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a read of one or two indexed queries: on an embedded database (SQLite), on the
    event loop (it takes less time than handing it to a worker thread and back, about 0.2 ms
    of the loop's time per request); over a network (PostgreSQL), in the thread pool, so
    that a slow server cannot stall every other request of the worker."""
    if is_sqlite(engine):
        return read(*args, **kwargs)
    return await run_in_threadpool(read, *args, **kwargs)


__all__ = ["read_body", "replay_body", "run_read"]
