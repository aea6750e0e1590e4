"""Direct dispatch of the payment path's routes (ADR 0006).

FastAPI spends more of a core on a small request than the scheme spends on the payment: it
matches the route through the included routers, solves each dependency, validates the body,
runs a plain ``def`` endpoint in the thread pool, then validates the returned model again in
the thread pool (a second thread hop) before it serialises it. For the few routes every
payment takes (``PAYMENT_PATH``), :class:`DirectRoutes` calls the same endpoint functions with
the same arguments: the path parameters, the body validated by the same pydantic model, the
caller the security middleware authenticated, the scheme. Everything else goes to FastAPI as
before, and so does any request to those routes that is not plainly well formed (a body that
is not JSON, or does not validate, a query string, a content type other than JSON, HEAD):
FastAPI answers it with its own error, so the errors clients see do not change. The routes
and their OpenAPI document stay FastAPI's.

It sits inside the security middleware (authentication, signatures and idempotency apply to
every request as before) and outside FastAPI's exception middleware: it answers the errors an
endpoint raises with the application's own handlers, and lets any other exception through to
the server-error middleware, as the router would."""

from __future__ import annotations

import inspect
import json
import re
import typing
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.params import Depends
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# A parameter's role, from its annotation: the path parameter of that name, the body, or one
# of the dependencies below (by the function each depends on).
CALLER = "caller"
SCHEME = "scheme"


@dataclass(frozen=True, slots=True)
class _Direct:
    method: str
    regex: re.Pattern[str]
    convertors: dict[str, Any]  # Starlette's, by path parameter
    endpoint: Callable[..., Any]
    is_async: bool
    params: tuple[tuple[str, str], ...]  # (argument name, role): a role is a path parameter's
    # name, "body", CALLER or SCHEME
    body: type[BaseModel] | None
    status: int
    dump: Callable[[Any], bytes]


def _role(
    route: APIRoute, name: str, hint: Any, dependencies: dict[str, Callable[..., Any]]
) -> str:
    """What an endpoint's parameter takes; ``TypeError`` for one direct dispatch cannot give."""
    for meta in typing.get_args(hint)[1:] if typing.get_origin(hint) is typing.Annotated else ():
        if isinstance(meta, Depends):
            for role, fn in dependencies.items():
                if meta.dependency is fn:
                    return role
            raise TypeError(f"{route.path}: dependency {meta.dependency!r} is not direct")
    path_params = {p.name for p in route.dependant.path_params}
    if name in path_params and hint is str:
        return name
    body = [p.name for p in route.dependant.body_params]
    if body == [name] and isinstance(hint, type) and issubclass(hint, BaseModel):
        return "body"
    raise TypeError(f"{route.path}: parameter {name}: {hint!r} is not direct")


def _direct(route: APIRoute, method: str, dependencies: dict[str, Callable[..., Any]]) -> _Direct:
    endpoint = route.endpoint
    hints = typing.get_type_hints(endpoint, include_extras=True)
    params = tuple(
        (name, _role(route, name, hints[name], dependencies))
        for name in inspect.signature(endpoint).parameters
    )
    body = next((hints[n] for n, role in params if role == "body"), None)
    if route.response_model is None:
        raise TypeError(f"{route.path}: a direct route declares its response model")
    adapter: TypeAdapter[Any] = TypeAdapter(route.response_model)
    return _Direct(
        method=method,
        regex=route.path_regex,
        convertors=route.param_convertors,
        endpoint=endpoint,
        is_async=inspect.iscoroutinefunction(endpoint),
        params=params,
        body=body,
        status=route.status_code or 200,  # FastAPI's default
        dump=lambda value: adapter.dump_json(value, by_alias=True),
    )


def direct_routes(
    routes: Sequence[object],
    paths: Sequence[tuple[str, str]],
    dependencies: dict[str, Callable[..., Any]],
) -> list[_Direct]:
    """The routes of ``paths`` ((method, path) pairs), each exactly once among ``routes``."""
    found = []
    for method, path in paths:
        match = [
            r
            for r in routes
            if isinstance(r, APIRoute) and r.path == path and method in (r.methods or ())
        ]
        if len(match) != 1:
            raise LookupError(f"{method} {path}: {len(match)} routes, not one")
        found.append(_direct(match[0], method, dependencies))
    return found


class DirectRoutes:
    """ASGI middleware: the payment path's routes called directly; the rest to FastAPI.

    ``resolve`` maps a dependency role to its value for a request (the caller from the
    scope's state, the scheme from the application)."""

    def __init__(
        self,
        app: ASGIApp,
        api: FastAPI,
        routes: list[_Direct],
        resolve: dict[str, Callable[[Scope], Any]],
    ) -> None:
        self.app = app
        self.api = api
        self.resolve = resolve
        self.by_method: dict[str, list[_Direct]] = {}
        for d in routes:
            self.by_method.setdefault(d.method, []).append(d)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("query_string"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        for d in self.by_method.get(scope["method"], ()):
            match = d.regex.match(path)
            if match is not None:
                params = {k: d.convertors[k].convert(v) for k, v in match.groupdict().items()}
                await self._dispatch(d, params, scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _dispatch(
        self, d: _Direct, path_params: dict[str, Any], scope: Scope, receive: Receive, send: Send
    ) -> None:
        body: BaseModel | None = None
        if d.body is not None:
            raw, receive = await _body(receive)
            body = _validated(d.body, raw, scope)
            if body is None:  # FastAPI answers it, with its own error
                await self.app(scope, receive, send)
                return
        kwargs: dict[str, Any] = {}
        for name, role in d.params:
            if role == "body":
                kwargs[name] = body
            elif role in self.resolve:
                kwargs[name] = self.resolve[role](scope)
            else:
                kwargs[name] = path_params[role]
        try:
            if d.is_async:
                result = await d.endpoint(**kwargs)
            else:
                result = await run_in_threadpool(d.endpoint, **kwargs)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise
            answer = handler(Request(scope, receive), exc)
            response = await answer if inspect.isawaitable(answer) else answer
        else:
            response = Response(d.dump(result), d.status, media_type="application/json")
        await response(scope, receive, send)

    def _handler(
        self, exc: Exception
    ) -> Callable[[Request, Exception], Response | Awaitable[Response]] | None:
        """The application's handler for ``exc``, looked up as Starlette does (by the
        exception's classes, most specific first)."""
        handlers = self.api.exception_handlers
        for cls in type(exc).__mro__:
            if cls in handlers and cls is not Exception:
                return handlers[cls]
        return None


async def _body(receive: Receive) -> tuple[bytes, Receive]:
    """The request's body, and a ``receive`` that hands it over again."""
    chunks = []
    first: list[Message] = []
    while True:
        message = await receive()
        first.append(message)
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    pending = list(first)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return b"".join(chunks), replay


def _validated(model: type[BaseModel], raw: bytes, scope: Scope) -> BaseModel | None:
    """The body as FastAPI would validate it (``json.loads``, then the model in Python mode),
    or None where FastAPI would answer otherwise than by calling the endpoint."""
    content_type = b""
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value
    if content_type and content_type.split(b";")[0].strip().lower() != b"application/json":
        return None
    try:
        return model.model_validate(json.loads(raw))
    except (ValueError, ValidationError):  # JSONDecodeError and UnicodeDecodeError are
        return None  # ValueErrors


__all__ = ["CALLER", "SCHEME", "DirectRoutes", "direct_routes"]
