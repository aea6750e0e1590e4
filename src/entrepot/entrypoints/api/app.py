"""The FastAPI application. ``entrepot serve`` runs it under uvicorn with several workers."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from nacl.signing import SigningKey
from starlette.exceptions import HTTPException as StarletteHTTPException

from entrepot import __version__
from entrepot.entrypoints.api.claims import KeyClaims
from entrepot.entrypoints.api.direct import CALLER, SCHEME, DirectRoutes, direct_routes
from entrepot.entrypoints.api.problems import domain_error, http_error, validation_error
from entrepot.entrypoints.api.request_metrics import RequestCounts, RequestMetrics
from entrepot.entrypoints.api.routes import BULK_OPENAPI_SCHEMAS, PAYMENT_PATH, router, scheme_of
from entrepot.entrypoints.api.routes_risk import RiskApi
from entrepot.entrypoints.api.routes_risk import router as risk_router
from entrepot.entrypoints.api.routes_trade import router as trade_router
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
) -> FastAPI:
    """The API over the scheme, the trade network and the risk engine. ``lending`` defaults to
    the trade network's; ``decisions_dir`` holds the decision log (screenings are logged there,
    decisions read back; default: lending's log, else memory); ``sanctions_dir`` the OFAC
    lists screened against (default: the shared reference data; none there: 503);
    ``claims_path`` the lock file through which the host's workers claim the Idempotency-Keys
    they are answering (default: none, claims hold within the process); ``otel`` turns on
    FastAPI's native OpenTelemetry (spans, metrics and logs to the process's global providers;
    off, nothing checks for them per request)."""
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
    # Added next, so inside the security middleware (ADR 0006).
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
    verifier = TokenVerifier(scheme.engine)
    app.router.on_shutdown.append(verifier.close)
    app.add_middleware(
        SecurityMiddleware,
        verifier=verifier,
        engine=scheme.engine,
        write_unit=scheme.unit_of_work,
        claims=KeyClaims(claims_path),
        write_with_next=scheme.write_with_next,
    )
    # Outermost of the app's own: every request counted, those refused above included.
    app.state.request_counts = RequestCounts()
    app.add_middleware(RequestMetrics, counts=app.state.request_counts)
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


def callback_key_path(home: Path) -> Path:
    return home / "keys" / "scheme-callbacks.ed25519"


def idempotency_claims_path(home: Path) -> Path:
    """The lock file the workers of ``entrepot serve`` (one home) claim keys through."""
    home.mkdir(parents=True, exist_ok=True)
    return home / "idempotency-claims.lock"


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
