"""Unknown query parameters are refused, as unknown body fields are (the bodies' models forbid
extra fields): FastAPI ignores a parameter a route does not declare, so a typo such as
``GET /v1/notifications?pendng=true`` answered every notice, pending or not, as if the filter
had been applied. A request whose query string names a parameter its route does not take is
422 ``invalid_input`` naming it and what the route takes.

Plain ASGI middleware in front of FastAPI (inside the security middleware and the payment
path's direct dispatch, which hands FastAPI every request with a query string): a request
without a query string, every payment's, passes untouched."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qsl

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from entrepot.entrypoints.api.problems import problem


def _query_names(dependant: Dependant) -> frozenset[str] | None:
    """The query parameters a route takes (its dependencies' too); None where one is a model
    of several parameters (not checked: FastAPI spreads it)."""
    names: set[str] = set()
    pending = [dependant]
    while pending:
        current = pending.pop()
        for field in current.query_params:
            annotation = field.field_info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                return None
            names.add(field.alias)
        pending.extend(current.dependencies)
    return frozenset(names)


class StrictQuery:
    """``routes``: the application's routes, each with its whole path (the routers' own
    lists: FastAPI keeps an included router whole, not as its routes)."""

    def __init__(self, app: ASGIApp, routes: Sequence[object]) -> None:
        self.app = app
        #: each route with the query parameters it takes (None: not checked)
        self.routes = [(r, _query_names(r.dependant)) for r in routes if isinstance(r, APIRoute)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query: bytes = scope.get("query_string", b"") if scope["type"] == "http" else b""
        if query:
            unknown = self._unknown(scope, query)
            if unknown is not None:
                await unknown(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _unknown(self, scope: Scope, query: bytes) -> ASGIApp | None:
        for route, allowed in self.routes:
            match, _ = route.matches(scope)
            if match is not Match.FULL:
                continue
            if allowed is None:
                return None
            given = {k for k, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True)}
            unknown = sorted(given - allowed)
            if not unknown:
                return None
            takes = ", ".join(sorted(allowed)) or "none"
            return problem(
                422,
                "invalid_input",
                f"unknown query parameter {', '.join(map(repr, unknown))}: this route takes "
                f"{takes}",
                field=unknown[0],
                mojaloop="3100",
            )
        return None  # no route: FastAPI answers it (404, 405)


__all__ = ["StrictQuery"]
