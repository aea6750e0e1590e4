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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.datastructures import DefaultPlaceholder
from fastapi.params import Depends
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from entrepot.entrypoints.api.asgi import read_body, replay_body

# A parameter's role, from its annotation: the path parameter of that name, the body, or one
# of the dependencies below (by the function each depends on).
CALLER = "caller"
SCHEME = "scheme"


@dataclass(frozen=True, slots=True)
class _Direct:
    method: str
    regex: re.Pattern[str]
    convertors: dict[str, Any]  # Starlette's, by path parameter
    route: APIRoute
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
        raise TypeError(f"{route.path}: parameter {name}: {meta!r} is not direct")
    path_params = {p.name for p in route.dependant.path_params}
    if name in path_params and hint is str:
        return name
    body = [p.name for p in route.dependant.body_params]
    if body == [name] and isinstance(hint, type) and issubclass(hint, BaseModel):
        return "body"
    raise TypeError(f"{route.path}: parameter {name}: {hint!r} is not direct")


#: What a direct route leaves as FastAPI's defaults: it serialises as they do.
_DEFAULT_RESPONSE = {
    "response_model_include": None,
    "response_model_exclude": None,
    "response_model_by_alias": True,
    "response_model_exclude_unset": False,
    "response_model_exclude_defaults": False,
    "response_model_exclude_none": False,
}


def _refuse_options(route: APIRoute) -> None:
    """``TypeError`` for a route option FastAPI would honour and direct dispatch would not."""
    if route.dependencies:
        raise TypeError(f"{route.path}: route dependencies are not direct")
    for option, default in _DEFAULT_RESPONSE.items():
        if getattr(route, option) != default:
            raise TypeError(f"{route.path}: {option} is not direct")
    if not isinstance(route.response_class, DefaultPlaceholder):
        raise TypeError(f"{route.path}: response_class is not direct")
    if route.response_model is None:
        raise TypeError(f"{route.path}: a direct route declares its response model")
    if getattr(route, "_embed_body_fields", False):
        raise TypeError(f"{route.path}: an embedded body is not direct")


def _direct(route: APIRoute, method: str, dependencies: dict[str, Callable[..., Any]]) -> _Direct:
    _refuse_options(route)
    endpoint = route.endpoint
    hints = typing.get_type_hints(endpoint, include_extras=True)
    signature = inspect.signature(endpoint).parameters
    for name, parameter in signature.items():
        if parameter.default is not inspect.Parameter.empty:  # Path(...), Body(...), a value
            raise TypeError(f"{route.path}: parameter {name} has a default: not direct")
    params = tuple((name, _role(route, name, hints[name], dependencies)) for name in signature)
    body = next((hints[n] for n, role in params if role == "body"), None)
    adapter: TypeAdapter[Any] = TypeAdapter(route.response_model)
    return _Direct(
        method=method,
        regex=route.path_regex,
        convertors=route.param_convertors,
        route=route,
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
        if match[0].endpoint is None:
            raise TypeError(f"{method} {path}: no endpoint")
        found.append(_direct(match[0], method, dependencies))
    return found


class DirectRoutes:
    """ASGI middleware: the payment path's routes called directly; the rest to FastAPI.

    ``resolve`` maps a dependency role to its value for a request (the caller from the
    scope's state, the scheme from the application). ``routes`` come from the router that
    ``api`` includes as it is (no prefix, no dependencies of the inclusion's own)."""

    def __init__(
        self,
        app: ASGIApp,
        api: FastAPI,
        routes: list[_Direct],
        resolve: dict[str, Callable[[Scope], Any]],
    ) -> None:
        if api.router.dependencies:
            raise TypeError("application-wide dependencies are not direct")
        self.app = app
        self.api = api
        self.resolve = resolve
        self.by_method: dict[str, list[_Direct]] = {}
        for d in routes:
            self.by_method.setdefault(d.method, []).append(d)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("query_string")
            or scope.get("root_path")  # mounted below a prefix: FastAPI strips it
            or self.api.dependency_overrides  # tests that replace a dependency
        ):
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
            raw = await read_body(receive)
            receive = replay_body(raw, receive)
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
        endpoint = d.route.endpoint
        scope["route"] = d.route  # as the router would: the request counts by its template
        try:
            if d.is_async:
                result = await endpoint(**kwargs)
            else:
                result = await run_in_threadpool(endpoint, **kwargs)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise
            # What the router would have put in the scope, for a handler that reads it.
            routed = {**scope, "path_params": path_params, "endpoint": endpoint, "route": d.route}
            request = Request(routed, receive)
            if inspect.iscoroutinefunction(handler):
                response = await handler(request, exc)
            else:
                response = await run_in_threadpool(handler, request, exc)
            if response is not None:
                await response(routed, receive, send)
            return
        await Response(d.dump(result), d.status, media_type="application/json")(
            scope, receive, send
        )

    def _handler(self, exc: Exception) -> Callable[..., Any] | None:
        """The application's handler for ``exc``, looked up as Starlette's exception
        middleware does: an HTTP exception's status code first, then the exception's classes,
        most specific first (a handler for ``Exception`` is the server-error middleware's)."""
        handlers = self.api.exception_handlers
        if isinstance(exc, HTTPException) and exc.status_code in handlers:
            return handlers[exc.status_code]
        for cls in type(exc).__mro__:
            if cls in handlers and cls is not Exception:
                return handlers[cls]
        return None


def _validated(model: type[BaseModel], raw: bytes, scope: Scope) -> BaseModel | None:
    """The body as FastAPI would validate it (``json.loads``, then the model in Python mode),
    or None where FastAPI would answer otherwise than by calling the endpoint: a content type
    missing, empty or other than JSON (the first header, as Starlette reads it), a body that
    does not parse (however: nested too deep is a ``RecursionError``) or does not validate."""
    content_type = Headers(scope=scope).get("content-type", "")
    if content_type.partition(";")[0].strip().lower() != "application/json":
        return None
    try:
        return model.model_validate(json.loads(raw))
    except Exception:  # FastAPI's answer: 400 or 422
        return None


__all__ = ["CALLER", "SCHEME", "DirectRoutes", "direct_routes"]
