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


#: A body over this many bytes is large (a bulk of some thousands of transfers; a payment's
#: is under 1 KiB): a worker holds at most LARGE_BODIES_IN_FLIGHT_MAX such requests at once
LARGE_BODY_BYTES = 1024 * 1024
#: 8 bodies of at most BODY_MAX_BYTES (16 MiB): 128 MiB of bodies a worker, several times
#: that once parsed; a bank's bulks are sent one after another
LARGE_BODIES_IN_FLIGHT_MAX = 8


class ServerBusy(Exception):
    """The worker holds as many requests with large bodies as it takes at once."""


class LargeBodies:
    """How many requests with large bodies one worker holds now (its event loop's: no lock),
    bounded by ``LARGE_BODIES_IN_FLIGHT_MAX``. Each such body, up to BODY_MAX_BYTES, is held
    and parsed for its request's life: a burst of bulks at once, one participant's or many's,
    had the worker killed for memory with every request it held."""

    def __init__(self) -> None:
        self.held = 0

    def take(self) -> bool:
        if self.held >= LARGE_BODIES_IN_FLIGHT_MAX:
            return False
        self.held += 1
        return True

    def give_back(self) -> None:
        self.held -= 1


async def read_body(
    receive: Receive, limit: int | None = None, headers: Headers | None = None
) -> bytes:
    """The whole request body. A client that leaves half-way raises ``ClientDisconnect``: the
    app never sees a truncated body as if it were the request (and nothing is stored under its
    Idempotency-Key, so the client's retry with the whole body goes through). A body past
    ``limit`` bytes raises ``BodyTooLarge`` as soon as it is, before the rest is read; one
    that comes in several parts, as soon as its ``Content-Length`` (in ``headers``) says it
    will be (a body in one part, every small request's, is not made to look it up)."""
    body, _ = await read_body_held(receive, limit, headers, None)
    return body


async def read_body_held(
    receive: Receive,
    limit: int | None,
    headers: Headers | None,
    large: LargeBodies | None,
) -> tuple[bytes, bool]:
    """``read_body``, and whether the body took one of ``large``'s places (to be given back
    when its request is done): a body in several parts whose ``Content-Length`` is over
    LARGE_BODY_BYTES, or that has none (chunked), takes one as its first part comes, or
    raises ``ServerBusy`` there, before the rest is read. A body in one part (every small
    request's) is not looked at."""
    chunks: list[bytes] = []
    size = 0
    held = False
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            chunk = message.get("body", b"")
            more = message.get("more_body", False)
            size += len(chunk)
            if more and not chunks and headers is not None:  # the first of several parts
                declared = _declared(headers)
                if limit is not None and declared > limit:
                    raise BodyTooLarge(limit)
                if large is not None and (declared == 0 or declared > LARGE_BODY_BYTES):
                    if not large.take():
                        raise ServerBusy()
                    held = True
            if limit is not None and size > limit:
                raise BodyTooLarge(limit)
            chunks.append(chunk)
            if not more:
                break
    except BaseException:
        if held:
            assert large is not None
            large.give_back()
        raise
    return b"".join(chunks), held


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


__all__ = [
    "BODY_MAX_BYTES",
    "LARGE_BODIES_IN_FLIGHT_MAX",
    "LARGE_BODY_BYTES",
    "BodyTooLarge",
    "LargeBodies",
    "ServerBusy",
    "read_body",
    "read_body_held",
    "replay_body",
    "run_read",
]
