"""Authentication, request signatures and idempotency, applied to every /v1 request.

- ``Authorization: Bearer <key_id>.<secret>``: credentials issued per participant, stored
  hashed. The caller's participant id scopes every query.
- ``X-Signature``: when the credential is bound to an Ed25519 public key, the request must be
  signed: base64 of the signature over ``METHOD\\nPATH\\n`` + body (Mojaloop/Beckn style).
- ``Idempotency-Key`` on POST/PUT/DELETE: same caller, key and body -> the first response,
  replayed; same key with a different body -> 409 (Mojaloop 3106). The operations themselves
  are idempotent by their client-chosen ids too, so a crash between the effect and the record
  cannot cause a second effect.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Awaitable, Callable

import sqlalchemy as sa
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from sqlalchemy import Engine
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from entrepot.entrypoints.api.problems import problem
from entrepot.payments import store as st
from entrepot.payments.credentials import VerifiedCaller, verify_token
from entrepot.storage.engine import read_connection

PUBLIC_PATHS = ("/docs", "/openapi.json", "/redoc", "/health")
CACHE_S = 30.0
IDEMPOTENCY_KEY_LEN_MAX = 128
WRITE_METHODS = ("POST", "PUT", "DELETE")


class SecurityMiddleware(BaseHTTPMiddleware):
    def __init__(self, app: ASGIApp, engine: Engine) -> None:
        super().__init__(app)
        self.engine = engine
        self._cache: dict[str, tuple[float, VerifiedCaller]] = {}

    def _caller(self, token: str) -> VerifiedCaller | None:
        hit = self._cache.get(token)
        now = time.monotonic()
        if hit is not None and now - hit[0] < CACHE_S:
            return hit[1]
        caller = verify_token(self.engine, token)
        if caller is not None:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[token] = (now, caller)
        return caller

    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path = request.url.path
        if path in PUBLIC_PATHS or not path.startswith("/v1"):
            return await call_next(request)
        auth = request.headers.get("authorization", "")
        scheme_, _, token = auth.partition(" ")
        caller = self._caller(token.strip()) if scheme_.lower() == "bearer" else None
        if caller is None:
            return problem(
                401, "unauthenticated", "missing or invalid API credentials", mojaloop="3105"
            )
        body = await request.body()
        if caller.public_key is not None:
            failure = check_signature(caller.public_key, request, body)
            if failure:
                return problem(401, "bad_signature", failure, mojaloop="3105")
        request.state.caller = caller.participant_id
        key = request.headers.get("idempotency-key")
        if request.method not in WRITE_METHODS or not key:
            return await call_next(request)
        if len(key) > IDEMPOTENCY_KEY_LEN_MAX:
            return problem(
                400,
                "invalid_input",
                "Idempotency-Key is too long",
                field="Idempotency-Key",
                mojaloop="3100",
            )
        digest = hashlib.sha256(
            request.method.encode() + b" " + path.encode() + b"\n" + body
        ).hexdigest()
        stored = self._stored(caller.participant_id, key)
        if stored is not None:
            request_hash, status, text = stored
            if request_hash != digest:
                return problem(
                    409,
                    "duplicate_with_different_body",
                    "this Idempotency-Key was used with a different request",
                    field="Idempotency-Key",
                    mojaloop="3106",
                )
            return Response(
                text,
                status_code=status,
                media_type=_media(text),
                headers={"Idempotent-Replayed": "true"},
            )
        response = await call_next(request)
        chunks = [chunk async for chunk in response.body_iterator]  # type: ignore[attr-defined]
        content = b"".join(c if isinstance(c, bytes) else c.encode() for c in chunks)
        if response.status_code < 500:
            self._store(caller.participant_id, key, digest, response.status_code, content)
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        return Response(content, status_code=response.status_code, headers=headers)

    def _stored(self, caller: str, key: str) -> tuple[str, int, str] | None:
        with read_connection(self.engine) as conn:
            row = conn.execute(
                sa.select(st.idempotency).where(
                    st.idempotency.c.caller == caller, st.idempotency.c.key == key
                )
            ).first()
        return None if row is None else (row.request_hash, row.status_code, row.response)

    def _store(self, caller: str, key: str, digest: str, status: int, content: bytes) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    sa.insert(st.idempotency).values(
                        caller=caller,
                        key=key,
                        request_hash=digest,
                        status_code=status,
                        response=content.decode(),
                        created_at=time.time_ns(),
                    )
                )
        except sa.exc.IntegrityError:
            pass  # a concurrent retry stored it first; its response stands


def _media(text: str) -> str:
    try:
        body = json.loads(text)
    except ValueError:
        return "text/plain"
    return (
        "application/problem+json"
        if isinstance(body, dict) and "code" in body
        else "application/json"
    )


def check_signature(public_key: bytes, request: Request, body: bytes) -> str | None:
    header = request.headers.get("x-signature")
    if not header:
        return "this credential requires an X-Signature header"
    try:
        signature = base64.b64decode(header, validate=True)
    except ValueError:
        return "X-Signature is not base64"
    message = f"{request.method}\n{request.url.path}\n".encode() + body
    try:
        VerifyKey(public_key).verify(message, signature)
    except (BadSignatureError, ValueError):
        return "X-Signature does not verify against the credential's public key"
    return None


def caller_of(request: Request) -> str:
    caller = getattr(request.state, "caller", None)
    assert isinstance(caller, str), "SecurityMiddleware sets the caller"
    return caller
