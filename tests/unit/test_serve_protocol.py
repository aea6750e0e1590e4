"""``entrepot serve``'s HTTP protocol (``serve.BoundedHeadProtocol``), in process: a request's
head is bounded in time, as in size (tests/e2e/test_serve.py: the size, through a real server)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from entrepot.entrypoints.api import serve


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


class _Transport(asyncio.Transport):
    """What the protocol wrote, and whether it closed the connection."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False
        self.closed_by_protocol = False  # before the connection was lost (the test's end)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 5000)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        pass


def _lost(protocol: Any, transport: _Transport) -> _Transport:
    """The connection lost (which closes it), what the protocol had done read before:
    whether it closed the connection itself."""
    transport.closed_by_protocol = transport.closed
    protocol.connection_lost(None)
    return transport


def _connect(loop: asyncio.AbstractEventLoop) -> tuple[Any, _Transport]:
    config = uvicorn.Config(_ok, http=serve.HTTP_PROTOCOL, log_level="warning")
    config.load()
    protocol = config.http_protocol_class(  # type: ignore[call-arg]
        config=config, server_state=ServerState(), app_state={}, _loop=loop
    )
    transport = _Transport()
    protocol.connection_made(transport)
    return protocol, transport


@pytest.mark.parametrize(
    "sent",
    [b"", b"GET /v1/transfers HTTP/1.1\r\nHost: test\r\nX-Slow: a"],
    ids=["nothing", "a head without its end"],
)
def test_a_head_not_sent_in_time_ends_its_connection(
    monkeypatch: pytest.MonkeyPatch, sent: bytes
) -> None:
    """A connection that sent nothing, or a head without its end, was held for ever: anyone
    could open connections by the thousand, a byte a minute each, until the workers had no
    file descriptor left for the participants' requests (found by a review). Past
    ``HEAD_S_MAX`` from the connection (or from the head's first byte, on a kept-alive one),
    it is answered 408 and closed."""
    monkeypatch.setattr(serve, "HEAD_S_MAX", 0.05)

    async def run() -> _Transport:
        protocol, transport = _connect(asyncio.get_running_loop())
        if sent:
            protocol.data_received(sent)
        for _ in range(100):  # until the deadline has acted (no time asserted)
            if transport.closed:
                break
            await asyncio.sleep(0.02)
        return _lost(protocol, transport)

    transport = asyncio.run(run())
    assert transport.closed_by_protocol
    assert transport.written.startswith(b"HTTP/1.1 408 "), transport.written[:200]
    assert b"connection: close" in transport.written


def test_a_head_sent_in_time_is_served_and_its_deadline_ends_with_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A whole head (the request is then the app's: its body has no such deadline) is served;
    the deadline is not left to close the connection after it, nor while it is kept alive
    for the next request (uvicorn's keep-alive timeout closes it, as before)."""
    monkeypatch.setattr(serve, "HEAD_S_MAX", 0.05)

    async def run() -> _Transport:
        protocol, transport = _connect(asyncio.get_running_loop())
        protocol.data_received(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
        for _ in range(10):  # past the deadline
            await asyncio.sleep(0.02)
        return _lost(protocol, transport)

    transport = asyncio.run(run())
    assert transport.written.startswith(b"HTTP/1.1 200 "), transport.written[:200]
    assert b"408" not in transport.written and not transport.closed_by_protocol


def test_a_kept_alive_connections_next_head_has_its_deadline_from_its_first_byte(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One timer a connection (set again as heads begin and end, not a request): the next
    request's head, begun long after the first was served and never ended, is still refused
    ``HEAD_S_MAX`` after its own first byte."""
    monkeypatch.setattr(serve, "HEAD_S_MAX", 0.05)

    async def run() -> _Transport:
        protocol, transport = _connect(asyncio.get_running_loop())
        protocol.data_received(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
        for _ in range(6):  # idle, kept alive, past a deadline or two
            await asyncio.sleep(0.02)
        assert not transport.closed
        protocol.data_received(b"GET /health HTTP/1.1\r\nHost: te")  # and no more
        for _ in range(100):
            if transport.closed:
                break
            await asyncio.sleep(0.02)
        return _lost(protocol, transport)

    transport = asyncio.run(run())
    assert transport.written.startswith(b"HTTP/1.1 200 "), transport.written[:200]
    assert b"HTTP/1.1 408 " in transport.written and transport.closed_by_protocol


def test_a_head_past_the_limit_is_refused_whichever_reads_bring_it() -> None:
    """Counted from the connection's first byte: a head that came whole in one read (TCP
    joins what a client sends) went uncounted, and past the limit in it was served."""

    async def run(reads: list[bytes]) -> _Transport:
        protocol, transport = _connect(asyncio.get_running_loop())
        for data in reads:
            protocol.data_received(data)
        return _lost(protocol, transport)

    head = b"GET /v1/transfers HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * serve.HEAD_BYTES_MAX
    for reads in ([head], [head[:100], head[100:]], [head[:-1], head[-1:]]):
        transport = asyncio.run(run(reads))
        assert transport.written.startswith(b"HTTP/1.1 431 "), transport.written[:200]
        assert transport.closed_by_protocol


def test_a_body_still_coming_after_its_answer_ends_its_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A request answered before its body was read (a 401: its credential is checked first)
    kept its connection while the rest of its body came, however slowly: each byte put off
    the keep-alive timeout, and a body of any declared length a byte at a time held the
    connection for ever, anonymously (found by a review). ``DRAIN_S_MAX`` after the answer,
    a body still coming ends its connection."""
    monkeypatch.setattr(serve, "DRAIN_S_MAX", 0.05)

    async def run() -> _Transport:
        protocol, transport = _connect(asyncio.get_running_loop())
        protocol.data_received(
            b"POST /v1/transfers HTTP/1.1\r\nHost: test\r\nContent-Length: 100000\r\n\r\nabc"
        )
        for _ in range(100):  # until the deadline has acted (no time asserted)
            if transport.closed:
                break
            await asyncio.sleep(0.02)
            if not transport.closed:
                protocol.data_received(b"x")  # a byte now and then
        return _lost(protocol, transport)

    transport = asyncio.run(run())
    assert transport.written.startswith(b"HTTP/1.1 200 "), transport.written[:200]
    assert transport.closed_by_protocol


def test_a_body_read_whole_leaves_its_connection_kept_alive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The deadline is for a body still coming after the answer: a whole one leaves the
    connection to uvicorn's keep-alive, as before."""
    monkeypatch.setattr(serve, "DRAIN_S_MAX", 0.05)

    async def run() -> _Transport:
        protocol, transport = _connect(asyncio.get_running_loop())
        protocol.data_received(
            b"POST /v1/transfers HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\n\r\nabc"
        )
        for _ in range(10):  # past the deadline
            await asyncio.sleep(0.02)
        return _lost(protocol, transport)

    transport = asyncio.run(run())
    assert transport.written.startswith(b"HTTP/1.1 200 "), transport.written[:200]
    assert not transport.closed_by_protocol
