"""The benchmarks' load client against a real uvicorn server: bodies both ways, errors raised
with what the server said, keep-alive connections reused and never shared by two requests."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from entrepot.sim.http_load import HTTPStatusError, LoadClient

Scope = dict[str, Any]


async def echo(scope: Scope, receive: Any, send: Any) -> None:
    """Answers with the method, path, body and the client's port; 418 for /teapot."""
    assert scope["type"] == "http"
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await asyncio.sleep(0.01)  # long enough for concurrent requests to overlap
    answer = json.dumps(
        {
            "method": scope["method"],
            "path": scope["path"],
            "body": body.decode(),
            "port": scope["client"][1],
            "type": dict(scope["headers"]).get(b"content-type", b"").decode(),
        }
    ).encode()
    status = 418 if scope["path"] == "/teapot" else 200
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": answer})


@pytest.fixture
def server() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(
        echo, host="127.0.0.1", port=port, log_level="warning", timeout_keep_alive=1
    )
    srv = uvicorn.Server(config)
    loop = asyncio.new_event_loop()
    import threading

    thread = threading.Thread(target=loop.run_until_complete, args=(srv.serve(),), daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        threading.Event().wait(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


def test_requests_and_errors(server: str) -> None:
    async def run() -> None:
        async with LoadClient(server, 2) as client:
            r = await client.post("/a", json_body={"x": "é" * 3})
            got = r.json()
            assert (got["method"], got["path"], got["type"]) == ("POST", "/a", "application/json")
            assert json.loads(got["body"]) == {"x": "ééé"}
            big = b"y" * 300_000  # several reads of the response
            r = await client.post("/b", content=big, headers={"Content-Type": "text/plain"})
            assert r.json()["body"] == big.decode()
            assert (await client.get("/c")).json()["body"] == ""
            with pytest.raises(HTTPStatusError) as err:
                await client.post("/teapot")
            assert err.value.status == 418 and b"teapot" in err.value.body

    asyncio.run(run())


def test_connections_are_reused_and_never_shared(server: str) -> None:
    async def run() -> set[int]:
        async with LoadClient(server, 3) as client:
            ports: set[int] = set()
            for _ in range(4):  # 12 concurrent requests through 3 connections, four times
                answers = await asyncio.gather(*(client.get(f"/{n}") for n in range(12)))
                assert [a.json()["path"] for a in answers] == [f"/{n}" for n in range(12)]
                ports.update(a.json()["port"] for a in answers)
            return ports

    assert len(asyncio.run(run())) == 3


def test_only_plain_http_urls() -> None:
    with pytest.raises(ValueError, match="plain http"):
        LoadClient("https://example.org")


def test_a_connection_the_server_closed_while_idle_is_replaced(server: str) -> None:
    """uvicorn closes idle keep-alive connections (after 5 s by default): the next request
    goes out on a new connection instead of failing."""

    async def run() -> tuple[int, int]:
        async with LoadClient(server, 1) as client:
            first = (await client.get("/a")).json()["port"]
            await asyncio.sleep(1.5)  # past the server's keep-alive timeout (1 s here)
            second = (await client.get("/b")).json()["port"]
            return first, second

    first, second = asyncio.run(run())
    assert first != second
