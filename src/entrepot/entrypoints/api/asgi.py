"""What the API's middlewares and routes share at the ASGI level: reading a request's body
once and handing it on, and where a short read runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive

from entrepot.storage.engine import is_sqlite

P = ParamSpec("P")
T = TypeVar("T")


#: The largest request body the API reads: a bulk of 8,000 transfers with every field at its
#: longest, escaped and indented, is under half of it (the bench's bulk of 8,000 is 1.2 MB).
BODY_MAX_BYTES = 16 * 1024 * 1024


class BodyTooLarge(Exception):
    """A request body longer than ``limit`` bytes: not read any further."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is longer than {limit} bytes")
        self.limit = limit


async def read_body(
    receive: Receive, limit: int | None = None, headers: Headers | None = None
) -> bytes:
    """The whole request body. A client that leaves half-way raises ``ClientDisconnect``: the
    app never sees a truncated body as if it were the request (and nothing is stored under its
    Idempotency-Key, so the client's retry with the whole body goes through). A body past
    ``limit`` bytes raises ``BodyTooLarge`` as soon as it is, before the rest is read; one
    that comes in several parts, as soon as its ``Content-Length`` (in ``headers``) says it
    will be (a body in one part, every small request's, is not made to look it up)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        more = message.get("more_body", False)
        size += len(chunk)
        if limit is not None and (
            size > limit
            or (more and not chunks and headers is not None and _declared(headers) > limit)
        ):
            raise BodyTooLarge(limit)
        chunks.append(chunk)
        if not more:
            break
    return b"".join(chunks)


def _declared(headers: Headers) -> int:
    declared = headers.get("content-length", "")
    return int(declared) if declared.isdigit() else 0


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


__all__ = ["BODY_MAX_BYTES", "BodyTooLarge", "read_body", "replay_body", "run_read"]
