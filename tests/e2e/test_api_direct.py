"""Direct dispatch of the payment path's routes (ADR 0006): which requests it serves itself and
which it leaves to FastAPI, and that clients cannot tell the two apart."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Annotated, Any

import pytest
from fastapi import Body as FastApiBody
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import PlainTextResponse, Response
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import BaseModel

from entrepot.entrypoints.api.app import create_app
from entrepot.entrypoints.api.direct import CALLER, SCHEME, DirectRoutes, direct_routes
from entrepot.entrypoints.api.routes import PAYMENT_PATH, scheme_of
from entrepot.entrypoints.api.routes import router as v1_router
from entrepot.entrypoints.api.security import caller_dependency
from entrepot.payments import PaymentScheme
from entrepot.payments.credentials import issue_credential

DEPENDENCIES: dict[str, Callable[..., Any]] = {CALLER: caller_dependency, SCHEME: scheme_of}


def _quote(quote_id: str) -> dict[str, Any]:
    return {
        "quoteId": quote_id,
        "payee": {"partyIdType": "MERCHANT", "partyIdentifier": "KL-TILL-42"},
        "amountType": "RECEIVE",
        "amount": {"amount": "12.50", "currency": "MYR"},
        "sourceCurrency": "RWF",
    }


class _Inner:
    """Stands for FastAPI behind the direct routes: records what reaches it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, bytes]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.calls.append((scope["method"], scope["path"], body))
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"inner"})


def _call(
    app: Any,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    query: bytes = b"",
    content_type: bytes | None = b"application/json",
    caller: str = "mtn-rw",
    root_path: str = "",
) -> tuple[int, bytes]:
    """One request at the ASGI level, already authenticated as ``caller``."""
    headers = [(b"host", b"t")]
    if content_type is not None:
        headers.append((b"content-type", content_type))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": root_path,
        "query_string": query,
        "headers": headers,
        "server": ("t", 80),
        "client": ("c", 1),
        "state": {"caller": caller},
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


@pytest.fixture
def direct(scheme: PaymentScheme) -> tuple[DirectRoutes, _Inner]:
    api = create_app(scheme)
    inner = _Inner()
    routes = direct_routes(v1_router.routes, PAYMENT_PATH, DEPENDENCIES)
    resolve = {CALLER: lambda scope: scope["state"]["caller"], SCHEME: lambda _: scheme}
    return DirectRoutes(inner, api=api, routes=routes, resolve=resolve), inner


def test_the_payment_path_is_served_directly(
    direct: tuple[DirectRoutes, _Inner], scheme: PaymentScheme
) -> None:
    app, inner = direct
    status, body = _call(app, "GET", "/v1/parties/MERCHANT/KL-TILL-42")
    assert status == 200 and json.loads(body)["fspId"] == "maybank"
    status, body = _call(app, "POST", "/v1/quotes", json.dumps(_quote("q1")).encode())
    assert status == 201 and json.loads(body)["quoteId"] == "q1"
    payload = json.dumps({"transferId": "t1", "quoteId": "q1"}).encode()
    status, body = _call(app, "POST", "/v1/transfers", payload)
    assert status == 201 and json.loads(body)["state"] == "RESERVED"
    status, body = _call(app, "POST", "/v1/transfers/t1/commit", caller="maybank")
    assert status == 200 and json.loads(body)["state"] == "COMMITTED"
    assert inner.calls == []  # FastAPI saw none of them
    assert scheme.get_transfer("maybank", "t1").state.value == "COMMITTED"


def test_a_json_content_type_with_parameters_is_served_directly(
    direct: tuple[DirectRoutes, _Inner],
) -> None:
    app, inner = direct
    raw = json.dumps(_quote("q2")).encode()
    assert (
        _call(app, "POST", "/v1/quotes", raw, content_type=b"Application/JSON; charset=utf-8")[0]
        == 201
    )
    assert _call(app, "POST", "/v1/quotes", raw)[0] == 201  # a resend: the quote again
    other = json.dumps({**_quote("q2"), "amountType": "SEND"}).encode()
    assert _call(app, "POST", "/v1/quotes", other)[0] == 409  # the scheme's: same id, other body
    assert inner.calls == []


def test_the_scheme_errors_are_the_applications_problems(
    direct: tuple[DirectRoutes, _Inner],
) -> None:
    app, inner = direct
    status, body = _call(app, "GET", "/v1/parties/MERCHANT/NO-SUCH-TILL")
    problem = json.loads(body)
    assert status == 404 and problem["code"] == "party_not_found"
    _call(app, "POST", "/v1/quotes", json.dumps(_quote("q3")).encode())
    payload = json.dumps({"transferId": "t3", "quoteId": "q3"}).encode()
    status, body = _call(app, "POST", "/v1/transfers", payload, caller="maybank")
    assert status == 403 and json.loads(body)["code"] == "forbidden"
    assert inner.calls == []


@pytest.mark.parametrize(
    ("method", "path", "body", "query", "content_type"),
    [
        ("POST", "/v1/quotes", b"{not json", b"", b"application/json"),
        ("POST", "/v1/quotes", b'{"quoteId": "x"}', b"", b"application/json"),
        ("POST", "/v1/quotes", b"", b"", b"application/json"),
        ("POST", "/v1/quotes", json.dumps(_quote("q4")).encode(), b"", b"text/plain"),
        ("POST", "/v1/quotes", json.dumps(_quote("q4")).encode(), b"", None),  # FastAPI: 422
        ("POST", "/v1/quotes", json.dumps(_quote("q4")).encode(), b"", b""),
        ("POST", "/v1/quotes", b"[" * 100_000 + b"]" * 100_000, b"", b"application/json"),
        ("POST", "/v1/quotes", json.dumps(_quote("q4")).encode(), b"x=1", b"application/json"),
        ("HEAD", "/v1/parties/MERCHANT/KL-TILL-42", b"", b"", None),
        ("GET", "/v1/transfers/t1", b"", b"", None),  # not on the payment path
        ("PUT", "/v1/quotes", b"{}", b"", b"application/json"),
        ("POST", "/v1/transfers/t1/commit/x", b"", b"", None),
    ],
)
def test_anything_not_plainly_well_formed_goes_to_fastapi_whole(
    direct: tuple[DirectRoutes, _Inner],
    method: str,
    path: str,
    body: bytes,
    query: bytes,
    content_type: bytes | None,
) -> None:
    app, inner = direct
    assert _call(app, method, path, body, query=query, content_type=content_type) == (
        299,
        b"inner",
    )
    assert inner.calls == [(method, path, body)]  # with the body it was sent


def test_a_mounted_app_or_overridden_dependencies_go_to_fastapi(
    direct: tuple[DirectRoutes, _Inner],
) -> None:
    app, inner = direct
    # Mounted at /v1: this path is /parties/... to the app's routes (a 404 from FastAPI).
    assert _call(app, "GET", "/v1/parties/MERCHANT/KL-TILL-42", root_path="/v1")[0] == 299
    app.api.dependency_overrides[caller_dependency] = lambda: "maybank"
    assert _call(app, "GET", "/v1/parties/MERCHANT/KL-TILL-42")[0] == 299
    assert len(inner.calls) == 2


def _without_direct_routes(app: FastAPI) -> FastAPI:
    """The same app, every request through FastAPI."""
    app.user_middleware = [m for m in app.user_middleware if m.cls is not DirectRoutes]
    return app


JSON = [("content-type", "application/json")]


def test_clients_cannot_tell_direct_from_fastapi(scheme: PaymentScheme) -> None:
    """The same requests, through the app and through the app without direct routes: the same
    statuses, headers and bodies (the ids told apart by their prefix)."""
    tokens = {p: issue_credential(scheme.engine, p).token for p in ("mtn-rw", "maybank")}

    def run(client: TestClient, tag: str) -> list[tuple[int, list[tuple[str, str]], str]]:
        quote = _quote(f"{tag}-q")
        raw = json.dumps(_quote(f"{tag}-raw")).encode()
        transfer = {"transferId": f"{tag}-t", "quoteId": f"{tag}-q"}
        steps: list[tuple[str, str, str, Any, list[tuple[str, str]]]] = [
            ("GET", "/v1/parties/MERCHANT/KL-TILL-42", "mtn-rw", None, []),
            ("GET", "/v1/parties/MERCHANT/NOPE", "mtn-rw", None, []),
            ("GET", "/v1/parties/NOT-A-TYPE/x", "mtn-rw", None, []),
            ("GET", "/v1/parties/MERCHANT/KL-TILL-42/", "mtn-rw", None, []),
            ("POST", "/v1/quotes", "mtn-rw", raw, []),  # no content type: FastAPI says 422
            ("POST", "/v1/quotes", "mtn-rw", raw, [("content-type", "")]),
            ("POST", "/v1/quotes", "mtn-rw", raw,
             [("content-type", "text/plain"), ("content-type", "application/json")]),
            ("POST", "/v1/quotes", "mtn-rw", b"[" * 100_000 + b"]" * 100_000, JSON),  # 422, 3100
            ("POST", "/v1/quotes", "mtn-rw", quote, JSON),
            ("POST", "/v1/quotes", "mtn-rw", quote, JSON),  # resent: the quote again, 201
            ("POST", "/v1/quotes", "mtn-rw",
             {**quote, "amount": {"amount": "13", "currency": "MYR"}}, JSON),  # 409, 3106
            ("POST", "/v1/quotes", "mtn-rw", {**quote, "amountType": "LOAN"}, JSON),
            ("POST", "/v1/quotes", "mtn-rw", b"[1, 2", JSON),
            ("POST", "/v1/transfers", "maybank", transfer, JSON),
            ("POST", "/v1/transfers", "mtn-rw", transfer, JSON),
            ("POST", "/v1/transfers", "mtn-rw", transfer, JSON),  # resent: 201
            ("POST", "/v1/transfers", "mtn-rw", {**transfer, "note": "x"}, JSON),  # 409, 3106
            ("POST", f"/v1/transfers/{tag}-t/commit", "mtn-rw", None, []),
            ("POST", f"/v1/transfers/{tag}-t/commit", "maybank", None, []),
            ("POST", f"/v1/transfers/{tag}-t/commit", "maybank", None, []),  # again: 409
            ("POST", "/v1/qr/pay", "mtn-rw", {"payload": "000201", "transferId": f"{tag}-x",
                                              "quoteId": f"{tag}-y", "sourceCurrency": "RWF"},
             JSON),
        ]  # fmt: skip
        out = []
        for method, path, who, body, headers in steps:
            content = json.dumps(body).encode() if isinstance(body, dict) else body
            r = client.request(
                method,
                path,
                headers=[("authorization", f"Bearer {tokens[who]}"), *headers],
                content=content,
            )
            out.append((r.status_code, list(r.headers.items()), r.text.replace(tag, "TAG")))
        return out

    app = create_app(scheme)
    with TestClient(app, raise_server_exceptions=False) as client:
        direct = run(client, "zzdirect")
    with TestClient(_without_direct_routes(create_app(scheme)), raise_server_exceptions=False) as c:
        plain = run(c, "zzplain")
    for d, p in zip(direct, plain, strict=True):
        assert d[0] == p[0] and d[2] == p[2]
        # the same headers; a body's length differs with its ids' prefix
        assert [h for h in d[1] if h[0] != "content-length"] == [
            h for h in p[1] if h[0] != "content-length"
        ]
    assert [s for s, _, _ in direct] == [200, 404, 422, 200, 422, 422, 422, 422, 201, 201, 409,
                                         422, 422, 403, 201, 201, 409, 403, 200, 409,
                                         422]  # fmt: skip


class Body(BaseModel):
    x: int


async def _other() -> str:
    return "other"


def _query_param(x: str, limit: int = Query(1)) -> Body:
    return Body(x=limit)


def _other_dependency(x: str, who: Annotated[str, Depends(_other)]) -> Body:
    return Body(x=1)


def _two_bodies(a: Body, b: Body) -> Body:
    return a


def _constrained_path(x: Annotated[str, Path(min_length=5)]) -> Body:
    return Body(x=1)


def _constrained_by_default(x: str = Path(min_length=5)) -> Body:
    return Body(x=1)


def _embedded(x: str, body: Annotated[Body, FastApiBody(embed=True)]) -> Body:
    return body


def _fine(x: str, body: Body) -> Body:
    return body


@pytest.mark.parametrize(
    ("endpoint", "options"),
    [
        (_query_param, {}),
        (_other_dependency, {}),
        (_two_bodies, {}),
        (_constrained_path, {}),
        (_constrained_by_default, {}),
        (_embedded, {}),
        (_fine, {"dependencies": [Depends(_other)]}),
        (_fine, {"response_model_exclude_none": True}),
        (_fine, {"response_model_by_alias": False}),
        (_fine, {"response_class": PlainTextResponse}),
    ],
)
def test_a_route_direct_dispatch_cannot_call_as_fastapi_would_is_refused(
    endpoint: Callable[..., Any], options: dict[str, Any]
) -> None:
    route = APIRoute("/v1/t/{x}", endpoint, methods=["POST"], response_model=Body, **options)
    with pytest.raises(TypeError, match="not direct"):
        direct_routes([route], [("POST", "/v1/t/{x}")], DEPENDENCIES)


def test_a_route_that_is_not_there_is_refused() -> None:
    assert direct_routes(
        [APIRoute("/v1/t/{x}", _fine, methods=["POST"], response_model=Body)],
        [("POST", "/v1/t/{x}")],
        DEPENDENCIES,
    )
    with pytest.raises(LookupError, match="0 routes"):
        direct_routes(v1_router.routes, [("PATCH", "/v1/quotes")], DEPENDENCIES)


def _teapot(x: str) -> Body:
    raise HTTPException(418, "short and stout")


def test_exception_handlers_are_looked_up_as_starlette_does() -> None:
    """A handler for an HTTP exception's status code first; the handler sees the routed
    request (its path parameters)."""
    app = FastAPI()
    app.add_api_route("/v1/t/{x}", _teapot, methods=["GET"], response_model=Body)

    async def by_status(request: Request, exc: Exception) -> Response:
        return PlainTextResponse(f"teapot {request.path_params['x']}", status_code=418)

    app.add_exception_handler(418, by_status)
    routes = direct_routes(app.router.routes, [("GET", "/v1/t/{x}")], DEPENDENCIES)
    inner = _Inner()
    direct = DirectRoutes(inner, api=app, routes=routes, resolve={})
    assert _call(direct, "GET", "/v1/t/pot") == (418, b"teapot pot")
    assert inner.calls == []
    assert TestClient(app).get("/v1/t/pot").text == "teapot pot"  # FastAPI's, the same
