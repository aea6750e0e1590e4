"""The FastAPI application. ``entrepot serve`` runs it under uvicorn with several workers."""

from __future__ import annotations

import gc
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from nacl.signing import SigningKey
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match

from entrepot import __version__
from entrepot.config import Settings
from entrepot.entrypoints.api.asgi import BODY_MAX_BYTES
from entrepot.entrypoints.api.claims import KeyClaims
from entrepot.entrypoints.api.direct import CALLER, SCHEME, DirectRoutes, direct_routes
from entrepot.entrypoints.api.problems import PROBLEM, domain_error, http_error, validation_error
from entrepot.entrypoints.api.rate_limit import RateLimit, RateLimiter
from entrepot.entrypoints.api.request_metrics import RequestCounts, RequestMetrics
from entrepot.entrypoints.api.routes import BULK_OPENAPI_SCHEMAS, PAYMENT_PATH, router, scheme_of
from entrepot.entrypoints.api.routes_risk import RiskApi
from entrepot.entrypoints.api.routes_risk import router as risk_router
from entrepot.entrypoints.api.routes_trade import router as trade_router
from entrepot.entrypoints.api.schemas import Problem
from entrepot.entrypoints.api.security import SecurityMiddleware, caller_dependency
from entrepot.entrypoints.api.strict_query import StrictQuery
from entrepot.kernel.errors import DomainError
from entrepot.payments import PaymentScheme
from entrepot.payments.credentials import TokenVerifier
from entrepot.payments.notify import signing_key
from entrepot.risk.lending import Lending
from entrepot.trade import TradeNetwork


def create_app(
    scheme: PaymentScheme,
    trade: TradeNetwork | None = None,
    *,
    lending: Lending | None = None,
    decisions_dir: Path | None = None,
    sanctions_dir: Path | None = None,
    callback_key: SigningKey | None = None,
    claims_path: Path | None = None,
    otel: bool = False,
    rate_limiter: RateLimiter | None = None,
) -> FastAPI:
    """The API over the scheme, the trade network and the risk engine. ``lending`` defaults to
    the trade network's; ``decisions_dir`` holds the decision log (screenings are logged there,
    decisions read back; default: lending's log, else memory); ``sanctions_dir`` the OFAC
    lists screened against (default: the shared reference data; none there: 503);
    ``claims_path`` the lock file through which the host's workers claim the Idempotency-Keys
    they are answering (default: none, claims hold within the process); ``otel`` turns on
    FastAPI's native OpenTelemetry (spans, metrics and logs to the process's global providers;
    off, nothing checks for them per request); ``rate_limiter`` counts each participant's
    requests (default: in this process, no scheme-wide limit: only participants given their
    own limit are limited)."""
    app = FastAPI(
        title="Entrepot",
        version=__version__,
        description="Open platform for cross-border digital trade: the payment scheme's and the "
        "trade network's API. Authenticate with `Authorization: Bearer <keyId>.<secret>`; "
        "send `Idempotency-Key` on writes; errors are application/problem+json.",
        docs_url="/docs",
        telemetry=None if otel else {"tracing": False, "metrics": False, "logs": False},
    )
    app.state.scheme = scheme
    app.state.callback_key = callback_key  # the scheme's key signing notifications
    app.state.trade = trade or TradeNetwork(scheme.engine, scheme, scheme.clock)
    app.state.risk = RiskApi.compose(scheme, app.state.trade, lending, decisions_dir, sanctions_dir)
    # Innermost: a query parameter no route takes is refused (strict_query.py); the direct
    # dispatch below hands FastAPI, through it, every request with a query string.
    app.add_middleware(
        StrictQuery, routes=[*router.routes, *trade_router.routes, *risk_router.routes]
    )
    # Added next, so inside the security middleware (ADR 0006). Not with telemetry on: FastAPI
    # names a request's span and its route when its router picks the route, which the direct
    # path skips, so the payment calls were bare GET/POST spans, none told from another (found
    # by a review); an operator tracing them pays FastAPI's cost on them.
    if not otel:
        app.add_middleware(
            DirectRoutes,
            api=app,
            routes=direct_routes(
                router.routes, PAYMENT_PATH, {CALLER: caller_dependency, SCHEME: scheme_of}
            ),
            resolve={
                CALLER: lambda scope: scope["state"]["caller"],
                SCHEME: lambda _: app.state.scheme,
            },
        )
    # Participants' request rates: the scheme's limit and each participant's own, counted in
    # this process's memory unless the server's workers share a table (rate_limiter_of).
    rate_limiter = rate_limiter or RateLimiter(None, None)
    app.state.rate_limiter = rate_limiter
    app.state.request_counts = request_counts = RequestCounts()
    verifier = TokenVerifier(scheme.engine)
    app.router.on_shutdown.append(verifier.close)
    app.add_middleware(
        SecurityMiddleware,
        verifier=verifier,
        engine=scheme.engine,
        write_unit=scheme.unit_of_work,
        claims=KeyClaims(claims_path),
        write_with_next=scheme.write_with_next,
        clock=scheme.clock,
        rate_limiter=rate_limiter,
        rate_limited=request_counts.count_rate_limited,
    )
    app.router.on_shutdown.append(rate_limiter.close)
    # Outermost of the app's own: every request counted, those refused above included.
    app.add_middleware(RequestMetrics, counts=request_counts)
    app.add_exception_handler(DomainError, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.include_router(router)
    app.include_router(trade_router)
    app.include_router(risk_router)

    _document_raw_bodies(app)

    @app.get("/health", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _document_raw_bodies(app: FastAPI) -> None:
    """Routes that parse their own body (the bulk) name its schema in ``openapi_extra``; the
    schema itself joins the document's components here."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = generate()
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            top = dict(BULK_OPENAPI_SCHEMAS)
            schemas.update(top.pop("$defs", {}))
            schemas[top["title"]] = top
            _document_security(spec)
            _document_refusals(spec, app.router.routes)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


#: How a caller authenticates (``security.py``), for the OpenAPI document: the middleware
#: checks it, so no route declares it as a dependency of its own.
SECURITY_SCHEMES: dict[str, Any] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "<keyId>.<secret>",
        "description": "A credential issued to a participant (`entrepot payments credentials`"
        " or `POST /v1/participants/{id}/credentials`): every /v1 request carries it, and the"
        " caller's participant scopes what it sees and does.",
    },
    "signature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Signature",
        "description": "Required when the credential is bound to an Ed25519 public key:"
        " base64 of the signature over `entrepot-request-v1`, `X-Entrepot-Date` (unix"
        " seconds, within 300 s), `X-Entrepot-Nonce` (16-64 of `[A-Za-z0-9_-]`, once per"
        " signing key), the method, the path and query as sent, the Idempotency-Key (or an"
        " empty line) and the SHA-256 of the body in lowercase hex, joined by newlines"
        " (docs/payments.md).",
    },
}


def _document_security(spec: dict[str, Any]) -> None:
    """Every /v1 operation needs a credential, and a signature where the credential is bound
    to a key."""
    spec.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    for path, operations in spec.get("paths", {}).items():
        if path.startswith("/v1/"):
            for operation in operations.values():
                operation["security"] = [{"bearer": [], "signature": []}, {"bearer": []}]


def _document_refusals(spec: dict[str, Any], routes: Sequence[BaseRoute]) -> None:
    """The problems no route raises, where they can occur: 413 on every /v1 operation (the
    security middleware reads every /v1 request's body, whatever its method, and refuses one
    past ``BODY_MAX_BYTES``), 429 on every /v1 operation (a participant over its rate, where
    a limit is set: rate_limit.py), 503 on every /v1 operation (large bodies in flight past
    ``LARGE_BODIES_IN_FLIGHT_MAX``), 405 on an operation one of whose path parameters, given a ``/``
    (``%2F``), makes the path another route's that does not take the method (``GET
    /v1/participants/x%2Fsuspend``: the router finds only ``POST .../{id}/suspend``)."""
    too_large = _problem_answer(
        f"payload_too_large: the request body is longer than {BODY_MAX_BYTES} bytes"
    )
    over_rate = _problem_answer(
        "rate_limited: the participant is over its request rate (the scheme's, "
        "ENTREPOT_RATE_LIMIT, or its own: GET /v1/participants/{id}/rateLimit); nothing was done"
    )
    over_rate["headers"] = {
        "Retry-After": {
            "description": "Whole seconds until the participant's next request is admitted",
            "schema": {"type": "integer", "minimum": 1},
        }
    }
    busy = _problem_answer(
        "server_busy: the worker holds as many requests with large bodies (over 1 MiB) as it "
        "takes at once; nothing was done"
    )
    busy["headers"] = {
        "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
    }
    wrong_method = _problem_answer("method_not_allowed: the path is another route's")
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            if path.startswith("/v1/"):
                responses.setdefault("413", too_large)
                responses.setdefault("429", over_rate)
                responses.setdefault("503", busy)
            if _method_refused(path, method.upper(), spec["paths"], routes):
                responses.setdefault("405", wrong_method)


def _problem_answer(description: str) -> dict[str, Any]:
    return {
        "description": f"An error: application/problem+json ({description})",
        "content": {PROBLEM: {"schema": Problem.model_json_schema()}},
    }


#: A path template's parameter: its name and convertor (``{window_id:int}``)
_PARAM = re.compile(r"^\{([^}:]+)(?::([^}]+))?\}$")


def _method_refused(
    path: str, method: str, paths: Iterable[str], routes: Sequence[BaseRoute]
) -> bool:
    """Whether a request to ``path``'s operation can be routed to another of ``paths`` that
    no route takes ``method`` on (the router answers it 405): a path parameter matches the
    decoded path, where ``%2F`` is a ``/``, so it may span several of another path's
    segments."""
    template = path.strip("/").split("/")
    for other in paths:
        if other == path:
            continue
        for segments in _spanning(template, other.strip("/").split("/")):
            scope = {"type": "http", "path": "/" + "/".join(segments), "method": method}
            matches = [r.matches({**scope, "root_path": ""})[0] for r in routes]
            if Match.PARTIAL in matches and Match.FULL not in matches:
                return True
    return False


def _spanning(template: list[str], other: list[str], open_: bool = False) -> Iterator[list[str]]:
    """The paths, segment by segment, that ``template`` gives and ``other`` matches: each
    parameter of ``other`` one segment, each of ``template`` (a plain ``str`` one) one or
    more; ``open_``: ``template[0]`` is a parameter holding a segment already. A parameter
    both sides is ``1`` (an ``int`` parameter's value too)."""
    if open_:  # the parameter ends here, or holds the next segment too
        yield from _spanning(template[1:], other)
        if other:
            for rest in _spanning(template, other[1:], open_=True):
                yield [_value(other[0]), *rest]
        return
    if not template or not other:
        if not template and not other:
            yield []
        return
    head = _PARAM.match(template[0])
    if head is None:  # a literal
        if template[0] == other[0] or _PARAM.match(other[0]):
            for rest in _spanning(template[1:], other[1:]):
                yield [template[0], *rest]
        return
    spans = head.group(2) in (None, "str")  # a number or the like holds no "/"
    for rest in _spanning(template if spans else template[1:], other[1:], open_=spans):
        yield [_value(other[0]), *rest]


def _value(segment: str) -> str:
    return "1" if _PARAM.match(segment) else segment


def callback_key_path(home: Path) -> Path:
    return home / "keys" / "scheme-callbacks.ed25519"


def idempotency_claims_path(home: Path) -> Path:
    """The lock file the workers of ``entrepot serve`` (one home) claim keys through."""
    home.mkdir(parents=True, exist_ok=True)
    return home / "idempotency-claims.lock"


def rate_limits_path(home: Path) -> Path:
    """The table through which the workers of ``entrepot serve`` (one home) count each
    participant's requests (rate_limit.py)."""
    home.mkdir(parents=True, exist_ok=True)
    return home / "rate-limits.table"


def rate_limiter_of(settings: Settings) -> RateLimiter:
    """The participants' rate limits, counted in the home's table: the scheme's the settings
    name (none: only participants given their own by the operator are limited)."""
    rate = settings.rate_limit_per_s
    default = RateLimit(rate, settings.rate_burst) if rate is not None else None
    return RateLimiter(default, rate_limits_path(settings.home))


def create_app_from_env() -> FastAPI:
    """Factory for uvicorn workers: settings from ENTREPOT_* variables."""
    from entrepot.bootstrap import bootstrap

    a = bootstrap()
    app = create_app(
        a.payments,
        a.trade,
        lending=a.lending,
        decisions_dir=a.settings.home / "decisions",
        sanctions_dir=a.settings.sanctions_dir,
        callback_key=signing_key(callback_key_path(a.settings.home)),
        claims_path=idempotency_claims_path(a.settings.home),
        otel=a.settings.otel,
        rate_limiter=rate_limiter_of(a.settings),
    )
    # Screening lists and models load now, not in the first payments' requests (a second or
    # more, which those payments would wait for), and before the freeze below (the sanctions
    # index is many objects that every full collection would otherwise walk).
    load = getattr(a.payments.screening, "load", None)
    if load is not None:
        load()
    # What start-up built (the app, its models and indexes) lives as long as the worker: move
    # it out of the collector's way, so that a request's collections walk only its own
    # objects, not every object of the process. Collect first: cycles already unreachable
    # (start-up's migration run leaves some) would otherwise be frozen and never freed.
    gc.collect()
    gc.freeze()
    # At shutdown, after the middleware's own connection is back (added first, runs first):
    # every connection closed, so the last one checkpoints SQLite's WAL (the workers left
    # a WAL of tens of MB behind them, which the next process had to read through).
    app.router.on_shutdown.append(a.close)
    return app
