"""A lean HTTP/1.1 load client for the benchmarks: keep-alive connections, each request
written as one buffer, each response parsed by httptools (uvicorn's own parser).

The payments bench runs its clients on the same two cores as the server it measures. httpx
spent about as much CPU per payment as the server did (11-15 ms for four calls), so the bench
measured the client as much as the scheme. This client costs a small fraction of that; a load
generator on other machines (k6, wrk) would cost the server nothing at all.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

import httptools


class HTTPStatusError(RuntimeError):
    def __init__(self, method: str, path: str, status: int, body: bytes) -> None:
        super().__init__(f"{method} {path} -> {status}: {body[:500]!r}")
        self.status = status
        self.body = body


class Response:
    __slots__ = ("content", "status")

    def __init__(self, status: int, content: bytes) -> None:
        self.status = status
        self.content = content

    def json(self) -> Any:
        return json.loads(self.content)


class _Unanswered(ConnectionError):
    """The connection was closed before any of the response arrived."""


class _Connection:
    """One keep-alive connection; one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self._body: list[bytes] = []
        self._done = False
        self._keep_alive = False
        self._parser: httptools.HttpResponseParser | None = None

    # httptools callbacks
    def on_headers_complete(self) -> None:
        # asked here: once the message is complete the parser no longer says
        assert self._parser is not None
        self._keep_alive = self._parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._done = True

    async def roundtrip(self, request: bytes) -> Response:
        self._body, self._done, self._keep_alive = [], False, False
        parser = self._parser = httptools.HttpResponseParser(self)
        received = False
        try:
            self.writer.write(request)
            await self.writer.drain()
            while not self._done:
                data = await self.reader.read(262_144)
                if not data:
                    raise ConnectionError("the server closed the connection")
                received = True
                parser.feed_data(data)
        except ConnectionError as exc:
            if not received:  # nothing came back: the server had closed the idle connection
                raise _Unanswered(str(exc)) from exc
            raise
        if not self._keep_alive:
            self.close()
        return Response(parser.get_status_code(), b"".join(self._body))

    @property
    def closed(self) -> bool:
        """Closed by either side (a server closes an idle keep-alive connection)."""
        return self.writer.is_closing() or self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()


class LoadClient:
    """Up to ``connections`` keep-alive connections to ``base`` (http://host:port), shared by
    the coroutines that call :meth:`request`; a connection is opened when none is free."""

    def __init__(self, base: str, connections: int = 32, timeout_s: float = 60.0) -> None:
        url = urlsplit(base)
        if url.scheme != "http" or url.hostname is None:
            raise ValueError(f"the load client speaks plain http to a host: {base!r}")
        self.host, self.port = url.hostname, url.port or 80
        self._host_header = f"Host: {url.netloc}\r\n".encode()
        self._free: list[_Connection] = []
        self._slots = asyncio.Semaphore(connections)
        self.timeout_s = timeout_s

    async def __aenter__(self) -> LoadClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        for conn in self._free:
            conn.close()
        self._free.clear()

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        json_body: Any = None,
        content: bytes | None = None,
    ) -> Response:
        """The response; a status of 400 or more raises :class:`HTTPStatusError`."""
        if json_body is not None:
            content = json.dumps(json_body, separators=(",", ":")).encode()
        head = [f"{method} {path} HTTP/1.1\r\n".encode(), self._host_header]
        for name, value in (headers or {}).items():
            head.append(f"{name}: {value}\r\n".encode())
        if content is not None:
            if json_body is not None:
                head.append(b"Content-Type: application/json\r\n")
            head.append(f"Content-Length: {len(content)}\r\n".encode())
        elif method in ("POST", "PUT"):
            head.append(b"Content-Length: 0\r\n")
        head.append(b"\r\n")
        raw = b"".join(head) + (content or b"")
        async with self._slots:
            conn = self._free.pop() if self._free else None
            while conn is not None and conn.closed:
                conn = self._free.pop() if self._free else None
            reused = conn is not None
            try:
                if conn is None:
                    conn = await self._open()
                try:
                    response = await asyncio.wait_for(conn.roundtrip(raw), self.timeout_s)
                except _Unanswered:
                    if not reused:
                        raise
                    # a kept-alive connection the server had closed (its idle timeout): no
                    # answer came at all, so send the request again on a new connection
                    conn.close()
                    conn = await self._open()
                    response = await asyncio.wait_for(conn.roundtrip(raw), self.timeout_s)
            except BaseException:
                if conn is not None:
                    conn.close()
                raise
            if not conn.closed:
                self._free.append(conn)
        if response.status >= 400:
            raise HTTPStatusError(method, path, response.status, response.content)
        return response

    async def _open(self) -> _Connection:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), self.timeout_s
        )
        return _Connection(reader, writer)

    async def get(self, path: str, **kwargs: Any) -> Response:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> Response:
        return await self.request("POST", path, **kwargs)


__all__ = ["HTTPStatusError", "LoadClient", "Response"]
