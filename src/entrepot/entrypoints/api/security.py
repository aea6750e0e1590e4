"""Authentication, request signatures and idempotency, applied to every /v1 request.

- ``Authorization: Bearer <key_id>.<secret>``: credentials issued per participant, stored
  hashed. The caller's participant id scopes every query.
- ``X-Signature``: when the credential is bound to an Ed25519 public key, the request must be
  signed (``payments/signing.py``: ``signed_message``, ``sign_request``): base64 of the
  signature over its timestamp (``X-Entrepot-Date``, unix seconds, within
  ``SIGNATURE_WINDOW_S`` of the server's clock), its nonce (``X-Entrepot-Nonce``), method,
  target (path and query as sent), Idempotency-Key and body. A nonce is accepted once per
  signing key, whichever credential bound to it carries the request (:func:`nonce_scope`;
  recorded in ``pay_request_nonces`` while its timestamp is fresh, through the
  scheme's group commit: every worker and every server on the database refuses a replay); so a
  captured signed request cannot be sent again, nor its query, key or body changed.
- ``Idempotency-Key`` on POST/PUT/PATCH/DELETE: same caller, key and body -> the first response,
  replayed; same key with a different body -> 409 (Mojaloop 3106); same key while the first
  request with it is still being answered -> 409 ``request_in_progress`` with Retry-After
  (``claims``). The operations themselves are idempotent by their client-chosen ids too, so a
  crash between the effect and the record cannot cause a second effect. Only an outcome is
  kept (2xx, 4xx: :func:`_is_outcome`), and never an answer marked ``Cache-Control:
  no-store`` (an issued credential's secret): the key keeps a 409 ``not_replayable`` naming
  its ``keyId`` instead (:func:`_not_replayable`), so that a retry is told, not given a second
  credential; so is the retry of an issue whose answer was lost (:func:`_issued_answer_lost`,
  ADR 0012).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote, unquote_to_bytes

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from sqlalchemy import Connection, Engine
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import URL, Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from entrepot.entrypoints.api import asgi
from entrepot.entrypoints.api import convert as cv
from entrepot.entrypoints.api.asgi import (
    BODY_MAX_BYTES,
    BodyTooLarge,
    LargeBodies,
    ServerBusy,
    read_body_held,
    replay_body,
    run_read,
)
from entrepot.entrypoints.api.claims import KeyClaims
from entrepot.entrypoints.api.problems import problem
from entrepot.entrypoints.api.rate_limit import RateLimit, RateLimiter, retry_after_s
from entrepot.kernel.clock import Clock, SystemClock
from entrepot.payments import store as st
from entrepot.payments.credentials import (
    TokenVerifier,
    VerifiedCaller,
    purge_nonces,
    record_nonce,
)
from entrepot.payments.errors import PartyNotFound
from entrepot.payments.keyed import (
    ANSWER_LOST,
    CREDENTIAL,
    FX_RATE,
    KEY_LEN_MAX,
    KEYED_REQUEST,
    PARTY,
    PARTY_REMOVED,
    SETTLEMENT_WINDOW,
    TRADE_BUYER,
    TRADE_DISPUTE,
    TRADE_HUB,
    TRADE_ITEM,
    TRADE_MERCHANT,
    TRADE_QUOTE,
    TRADE_TRACKING,
    KeyedRequest,
)
from entrepot.payments.model import FxRate, Party
from entrepot.payments.rate_limits import own_limit
from entrepot.payments.signing import signed_message
from entrepot.storage.driver import Fast
from entrepot.storage.engine import read_connection
from entrepot.storage.group import GroupCommitFailed
from entrepot.storage.uow import UnitOfWork

log = logging.getLogger(__name__)

# A control character, in a decoded path or a query's decoded bytes
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_CONTROL_BYTES = re.compile(b"[\x00-\x1f\x7f]")
PUBLIC_PATHS = ("/docs", "/openapi.json", "/redoc", "/health")
IDEMPOTENCY_KEY_LEN_MAX = KEY_LEN_MAX  # payments/keyed.py: the CLI's too
#: How the answer being stored is written: filling in the key's marker (the request's own,
#: or the one found done), or only where the key has no row (``_answered``'s ``fills``).
_ANSWER_STORE: ContextVar[Fast] = ContextVar(
    "entrepot_answer_store", default=st.STORE_IDEMPOTENT_ANSWER
)
#: a PATCH too (a trade item's price): without it a key reused with another body was applied,
#: and a late retry undid a newer change
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
#: How far a signed request's ``X-Entrepot-Date`` may be from the server's clock, either way
SIGNATURE_WINDOW_S = 300
#: A signed request's nonce: 16 to 64 of these (a random 128-bit value, base64url or hex)
NONCE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
NONCE_LEN = (16, 64)
#: How often a worker drops the nonces whose timestamps are too old to be accepted
NONCE_PURGE_S = 60.0
#: How long an answer queued for the next group commit is waited for before it is written on
#: its own instead (a batch is bounded to 20 ms of work; this covers queuing for the lock)
ANSWER_WITH_NEXT_S = 30.0


def _too_large(limit: int) -> Response:
    response = problem(
        413,
        "payload_too_large",
        f"the request body is longer than {limit} bytes, the most this API reads",
        mojaloop="3104",  # Mojaloop's "Too large payload"
    )
    response.headers["connection"] = "close"  # the rest of the body is not read
    return response


def _busy() -> Response:
    response = problem(
        503,
        "server_busy",
        f"this server holds {asgi.LARGE_BODIES_IN_FLIGHT_MAX} requests with bodies over "
        f"{asgi.LARGE_BODY_BYTES} bytes already: nothing was done; retry after 1 s",
        mojaloop="2003",  # Mojaloop's "Service currently unavailable"
    )
    response.headers["Retry-After"] = "1"
    response.headers["connection"] = "close"  # its body is not read
    return response


def _rate_limited(limit: RateLimit, wait: float) -> Response:
    seconds = retry_after_s(wait)
    response = problem(
        429,
        "rate_limited",
        f"this participant is over its request rate ({limit.describe()}): nothing was done; "
        f"retry after {seconds} s",
    )
    response.headers["Retry-After"] = str(seconds)
    return response


class SecurityMiddleware:
    """Plain ASGI middleware (Starlette's ``BaseHTTPMiddleware`` runs every request through an
    extra task group and memory streams). It reads the body once and replays it to the app."""

    def __init__(
        self,
        app: ASGIApp,
        engine: Engine,
        write_unit: Callable[[], AbstractContextManager[UnitOfWork]] | None = None,
        claims: KeyClaims | None = None,
        write_with_next: WriteWithNext | None = None,
        verifier: TokenVerifier | None = None,
        clock: Clock | None = None,
        rate_limiter: RateLimiter | None = None,
        rate_limited: Callable[[str], None] | None = None,
    ) -> None:
        self.app = app
        self.engine = engine
        #: the scheme's clock: when a key's answer was written, which its retention counts
        #: from (``PaymentScheme.purge_idempotency``), as its marker's time does
        self.clock: Clock = clock or SystemClock()
        #: the Idempotency-Keys being answered now (default: within this process only)
        self.claims = claims or KeyClaims(None)
        #: an answer joins the next group commit without a turn of its own, when one is
        #: sure to come (``PaymentScheme.write_with_next``); else it is written as above
        self.write_with_next = write_with_next
        #: where an Idempotency-Key's answer is written: the payment scheme's group commit
        #: (``PaymentScheme.unit_of_work``), else a transaction of its own
        self.write_unit = write_unit or self._own_unit
        self._purged_at = 0.0  # when this worker last dropped stale nonces (monotonic)
        #: checks a request's credential (the app closes it at shutdown)
        self._verify = verifier or TokenVerifier(engine)
        #: each participant's request rate, across the home's workers (none: not limited)
        self.rate_limiter = rate_limiter
        #: told the caller of each request refused for its rate (the operator's metrics)
        self.rate_limited = rate_limited
        #: the requests with large bodies this worker holds now, bounded (asgi.LargeBodies)
        self.large_bodies = LargeBodies()

    async def _caller(self, headers: Headers) -> VerifiedCaller | None:
        """The credential's holder, read for every request (``verify_token``): a revoked
        credential is refused from the next request on, in every worker."""
        scheme_, _, token = headers.get("authorization", "").partition(" ")
        if scheme_.lower() != "bearer":
            return None
        return await run_read(self.engine, self._verify, token.strip())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        if path in PUBLIC_PATHS or not (path == "/v1" or path.startswith("/v1/")):
            await self.app(scope, receive, send)
            return
        query: bytes = scope.get("query_string", b"")
        if _CONTROL.search(path) or (query and _CONTROL_BYTES.search(unquote_to_bytes(query))):
            # no id holds one, and PostgreSQL's text refuses a NUL: a lookup of "a%00b" was a
            # 500 there (a 404 on SQLite)
            response = problem(
                400, "invalid_input", "the path or query holds a control character", mojaloop="3100"
            )
            await response(scope, receive, send)
            return
        headers = Headers(scope=scope)
        caller = await self._caller(headers)
        if caller is None:
            given = "authorization" in headers
            await unauthenticated(
                "unauthenticated", "missing or invalid API credentials", invalid=given
            )(scope, receive, send)
            return
        limiter = self.rate_limiter
        if limiter is not None:
            who = caller.participant_id
            known, limit = limiter.own_known(who)
            if not known:  # about once a second a participant: a primary-key read
                limit = limiter.remember(
                    who, await run_read(self.engine, own_limit, self.engine, who)
                )
            limit = limit or limiter.default
            if limit is not None:
                wait = limiter.admit(who, limit)
                if wait is not None:  # before its body is read: a refused request costs little
                    if self.rate_limited is not None:
                        self.rate_limited(who)
                    await _rate_limited(limit, wait)(scope, receive, send)
                    return
        key = headers.get("idempotency-key")
        if key and not (key.isascii() and key.isprintable()):
            # a key is an ASCII string (the IETF draft's sf-string): other bytes reach here
            # decoded as Latin-1, so one a client signed as UTF-8 never verified
            await problem(
                400,
                "invalid_input",
                "Idempotency-Key must be printable ASCII (space to ~)",
                field="Idempotency-Key",
                mojaloop="3100",
            )(scope, receive, send)
            return
        try:
            body, held = await read_body_held(receive, BODY_MAX_BYTES, headers, self.large_bodies)
        except BodyTooLarge as exc:
            await _too_large(exc.limit)(scope, receive, send)
            return
        except ServerBusy:
            await _busy()(scope, receive, send)
            return
        try:  # the signature checked, then served (a keyed write through its key's answer)
            method: str = scope["method"]
            if caller.public_key is not None:
                failure = check_signature(
                    caller.public_key, method, request_target(scope), headers, body, time.time()
                )
                if failure is None and not await run_in_threadpool(
                    self._first_use,
                    nonce_scope(caller.public_key),
                    headers["x-entrepot-nonce"],
                    headers,
                ):
                    failure = (
                        "this X-Entrepot-Nonce was used already: a signed request is accepted "
                        "once (sign each request, each retry too, with a new nonce)"
                    )
                if failure:
                    await unauthenticated("bad_signature", failure, invalid=True)(
                        scope, receive, send
                    )
                    return
            state = scope.setdefault("state", {})
            state["caller"] = caller.participant_id
            state["credential"] = caller.key_id  # which of its credentials: a review names it
            replay = replay_body(body, receive)
            if method not in WRITE_METHODS or not key:
                await self.app(scope, replay, send)
                return
            if len(key) > IDEMPOTENCY_KEY_LEN_MAX:
                await problem(
                    400,
                    "invalid_input",
                    "Idempotency-Key is too long",
                    field="Idempotency-Key",
                    mojaloop="3100",
                )(scope, receive, send)
                return
            who = caller.participant_id
            if not self.claims.claim(who, key):
                await _in_progress()(scope, receive, send)
                return
            try:
                digest = _digest(method, path, scope.get("query_string", b""), body)
                stored = await self._answered(scope, replay, who, key, digest)
            finally:
                self.claims.release(who, key)  # the answer is stored (or will never be)
            start, content = stored
            await send(start)
            await send({"type": "http.response.body", "body": content, "more_body": False})
        finally:
            if held:  # the large body is let go with its request
                self.large_bodies.give_back()

    async def _answered(
        self, scope: Scope, receive: Receive, caller: str, key: str, digest: str
    ) -> tuple[Message, bytes]:
        """With the key claimed: the stored answer (replayed, or refused for another body),
        else the app's answer, stored before it is returned (the claim is let go after, so
        that a retry meanwhile is told to come back, not run again). A request cancelled
        while the app runs stores nothing: its retry runs, and the operation's own id
        answers it."""
        answer = await run_read(self.engine, self._idempotent_answer, caller, key, digest)
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def hold(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        if isinstance(answer, Response):
            await answer(scope, receive, hold)
            return start, b"".join(chunks)
        done = answer if isinstance(answer, _DoneAnswerLost) else None
        # Whether a marker of the key is this request's to fill in with its answer: the one
        # found done, or one this request's operation wrote. A marker that appears otherwise
        # is another server's request's (other homes do not share claims), waiting for its
        # own answer: this answer (a refusal read before that operation, say) is then
        # stored only where the key has no row.
        fills = done is not None
        own: int | None = None  # the token of the markers this request's operation wrote
        issued = None if done is None else _credential_of(done)
        resource = None if done is None or issued else _resource_of(route_path(scope), done)
        if issued is not None:
            # A credential was issued and its answer, the only copy of its secret, lost: run
            # again it issued a second one. Told which, to revoke it; stored as the key's.
            await _issued_answer_lost(issued)(scope, receive, hold)
        elif done is not None and done.result.startswith(f"{PARTY_REMOVED}:"):
            # An alias removed and its answer lost: run again, the removal removed the alias
            # registered since (a number given to a new customer; found by a review), or
            # was 404. Answered as it was: done, no content.
            await Response(status_code=204)(scope, receive, hold)
            start["headers"] = [*start.get("headers", []), _REPLAYED]
        elif done is not None and (posted := _fx_rate_of(caller, done)) is not None:
            # An FX rate posted and its answer lost: run again, it was posted over the
            # provider's newer rate, its validity running again (found by a review).
            # Answered with the rate as it was posted.
            await JSONResponse(cv.fx_rate(posted).model_dump(), status_code=201)(
                scope, receive, hold
            )
            start["headers"] = [*start.get("headers", []), _REPLAYED]
        elif done is not None and (registered := _party_of(done)) is not None:
            # An alias registered and its answer lost: answered with the party, if it is
            # still the caller's. Read as the directory holds it (its GET), an alias removed
            # since and registered by another participant answered 201 with the other's
            # party, its customer's name, as if the caller had registered it (found by a
            # review). Gone from the caller: 404, not the key's answer (below).
            party = await run_read(self.engine, _own_party, self.engine, caller, *registered)
            if party is None:
                kind, alias = registered
                await problem(
                    404,
                    "party_not_found",
                    f"{kind} {alias}, registered by this request, is no longer registered by "
                    "you: it was removed since",
                    mojaloop=PartyNotFound.mojaloop_code,
                )(scope, receive, hold)
            else:
                await JSONResponse(cv.party(party).model_dump(), status_code=201)(
                    scope, receive, hold
                )
                start["headers"] = [*start.get("headers", []), _REPLAYED]
        elif resource is not None:
            # The operation was done and its answer lost (its worker was killed before it was
            # stored): running it again would be refused (a second commit) or done twice (a
            # partial release). Answered with what it acted on, as it is now.
            path, created = resource
            await self.app(_get(scope, path), _no_body, hold)
            if start:  # not run now: as a replay says
                start["headers"] = [*start.get("headers", []), _REPLAYED]
                if created is not None and start.get("status") == 200:
                    start["status"] = created  # a create's, as its first answer was
        else:
            # Held until it is stored: a retry that arrives after the client saw it must
            # find it. The scheme's writes record the key with them (payments/keyed.py).
            keyed = KeyedRequest(caller, key, digest, fresh=done is None)
            token = KEYED_REQUEST.set(keyed)
            try:
                await self.app(scope, receive, hold)
            finally:
                KEYED_REQUEST.reset(token)
            if keyed.progress.marked:
                own = keyed.progress.token
            if keyed.progress.refused:
                # Another server's request with this key wrote first (``KeyInUse``): this
                # one did nothing, and its refusal is not the key's answer (that request's
                # is): told to retry, as a claim held in this home tells it.
                start.clear()
                chunks.clear()
                await _in_progress()(scope, receive, hold)
                return start, b"".join(chunks)
        content = b"".join(chunks)
        status = int(start.get("status", 500))
        raw_headers: list[tuple[bytes, bytes]] = start.get("headers", [])
        if done is not None and issued is None and 400 <= status < 500:
            # Run again over an operation done whose answer was lost, and refused this time
            # (done already), or answered by what it acted on, gone since (an alias removed:
            # 404; found by a review): not the key's answer, which the marker keeps waiting
            # for, nor said to be a replay of it.
            start["headers"] = [h for h in start.get("headers", []) if h != _REPLAYED]
            return start, content
        if _is_outcome(status):
            kept = (status, content, raw_headers)
            if _no_store(raw_headers):  # a secret, shown once: kept is a stand-in that says so
                kept = _not_replayable(status, content)
            values = _answer(caller, key, digest, *kept, now_ns=self.clock.now_ns())
            if fills:  # the marker found done, whoever wrote it
                store = st.STORE_IDEMPOTENT_ANSWER
            elif own is not None:  # the marker this request wrote, if it is still there
                store = st.STORE_OWN_IDEMPOTENT_ANSWER
                values = None if values is None else (*values, own)
            else:
                store = st.STORE_NEW_IDEMPOTENT_ANSWER
            storing = _ANSWER_STORE.set(store)
            try:
                rows = None if values is None else await self._stored_with_next(values)
                if values is not None and rows is None:
                    # A write: it queues for the write lock and waits for its fsync, which on
                    # the event loop would stall every other request of this worker meanwhile.
                    rows = await run_in_threadpool(self._store, values)
            finally:
                _ANSWER_STORE.reset(storing)
            if store is st.STORE_NEW_IDEMPOTENT_ANSWER and rows == 0:
                # The key has a row this request did not write: another server's request
                # with the key (other homes share no claims) did the operation while this
                # one waited for the write lock, and this one, finding it done, was refused
                # ("already COMMITTED"), without writing (so no ``KeyInUse``). That refusal
                # is not the key's answer, found by a review: the key's one answer is the
                # other request's, replayed, or, still to come, a retry is asked for.
                start.clear()
                chunks.clear()
                again = await run_read(self.engine, self._idempotent_answer, caller, key, digest)
                reply = again if isinstance(again, Response) else _in_progress()
                await reply(scope, receive, hold)
                return start, b"".join(chunks)
        return start, content

    async def _stored_with_next(self, values: tuple[Any, ...]) -> int | None:
        """The answer, written into the scheme's next group commit (queued there, not a
        member taking a turn: a keyed write cost two turns of the write lock, the
        operation's and its answer's) and durable: the rows it wrote (0: the key's row was
        there and is kept); None if it was not (no commit was sure to follow, or the batch
        failed): then it is written on its own."""
        if self.write_with_next is None:
            return None
        loop = asyncio.get_running_loop()
        durable: asyncio.Future[BaseException | None] = loop.create_future()

        def on_done(error: BaseException | None) -> None:  # on the committing thread
            loop.call_soon_threadsafe(_settle, durable, error)

        store = _ANSWER_STORE.get()  # here: ``write`` runs on the committing thread
        written: list[int] = []

        def write(conn: Connection) -> None:
            written.append(store.execute(conn, values))

        if not self.write_with_next(write, on_done):
            return None
        try:  # a backstop: every path tells, but a request must not hang for ever on one
            error = await asyncio.wait_for(durable, ANSWER_WITH_NEXT_S)
        except TimeoutError:
            log.error("an Idempotency-Key answer queued for a group commit was not told")
            return None  # written on its own (a second copy would be ignored: same key)
        if error is not None or not written:
            return None
        return written[-1]

    def _idempotent_answer(
        self, caller: str, key: str, digest: str
    ) -> Response | _DoneAnswerLost | None:
        """The stored answer to a repeated Idempotency-Key, a problem, None (first use), or
        ``_DoneAnswerLost``: the operation was done, its answer never stored."""
        stored = self._stored(caller, key)
        if stored is None:
            return None
        request_hash, status, text, headers = stored
        if request_hash != digest:
            return problem(
                409,
                "duplicate_with_different_body",
                "this Idempotency-Key was used with a different request",
                field="Idempotency-Key",
                mojaloop="3106",
            )
        if status == ANSWER_LOST:
            return _DoneAnswerLost(text)
        if headers is None:  # stored before its headers were (migration 0010)
            return Response(
                text,
                status_code=status,
                media_type=_media(text, status),
                headers={"Idempotent-Replayed": "true"},
            )
        response = Response(text, status_code=status)  # content-length only: the rest is
        response.raw_headers.extend(  # what the first answer said
            (name.encode("latin-1"), value.encode("latin-1")) for name, value in headers
        )
        response.raw_headers.append(_REPLAYED)
        return response

    def _stored(self, caller: str, key: str) -> tuple[str, int, str, list[list[str]] | None] | None:
        with read_connection(self.engine) as conn:
            row = st.IDEMPOTENT_ANSWER.first(conn, (caller, key))
        if row is None:
            return None
        return row[0], int(row[1]), row[2], None if row[3] is None else json.loads(row[3])

    def _store(self, values: tuple[Any, ...]) -> int:
        """Record the answer (see :func:`_answer`) as a member of the scheme's group commit:
        as its own transaction, each answer took a turn of the write lock and an fsync of
        its own (clients sending a key on every write got a third of the payments per
        second). A concurrent retry that recorded its own first keeps it. The rows
        written (0: the key's row was kept)."""
        store = _ANSWER_STORE.get()
        try:
            with self.write_unit() as uow:
                rows = store.execute(uow.connection, values)
        except GroupCommitFailed:
            # Another member broke the shared transaction: the operation itself is durable
            # already, so its answer is stored on its own rather than lost (a 500 would make
            # the client's retry run the operation again and keep that as the key's answer:
            # a commit's retry meets "already COMMITTED").
            with self._own_unit() as uow:
                rows = store.execute(uow.connection, values)
        return rows

    def _first_use(self, scope: str, nonce: str, headers: Headers) -> bool:
        """Record a verified request's nonce (a write: in the scheme's group commit, off the
        event loop); False if it was recorded already, by any worker: a replay. Once a
        minute a worker also drops the nonces too old to matter."""
        expires_at = int(headers["x-entrepot-date"]) + SIGNATURE_WINDOW_S
        now = time.monotonic()
        purge = now - self._purged_at > NONCE_PURGE_S
        if purge:
            self._purged_at = now

        def write(conn: Connection) -> bool:
            if purge:
                # a window past their expiry: a server whose clock runs ahead (by up to the
                # window) dropped nonces another, on time, would still accept again
                purge_nonces(conn, int(time.time()) - SIGNATURE_WINDOW_S)
            return record_nonce(conn, scope, nonce, expires_at)

        try:
            with self.write_unit() as uow:
                first = write(uow.connection)
        except GroupCommitFailed:  # another member broke the batch: nothing of it was kept
            with self._own_unit() as uow:
                first = write(uow.connection)
        return first

    @contextmanager
    def _own_unit(self) -> Iterator[UnitOfWork]:
        with UnitOfWork(self.engine) as uow:
            yield uow
            uow.commit()


def _answer(
    caller: str,
    key: str,
    digest: str,
    status: int,
    content: bytes,
    raw_headers: list[tuple[bytes, bytes]],
    *,
    now_ns: int,
) -> tuple[Any, ...] | None:
    """The row recording an answer at ``now_ns``, with its headers (not its length: the
    replay's body sets it); None for an answer that is not text (a QR code's PNG: a
    rendering, the same again on a retry), which is not kept."""
    try:
        text = content.decode()
    except UnicodeDecodeError:
        return None
    headers = [
        [name.decode("latin-1"), value.decode("latin-1")]
        for name, value in raw_headers
        if name.lower() not in (b"content-length", _REPLAYED[0])
    ]
    return caller, key, digest, status, text, now_ns, json.dumps(headers)


@dataclass(frozen=True, slots=True)
class _DoneAnswerLost:
    """What :meth:`SecurityMiddleware._idempotent_answer` says of a key whose operation was
    done (its marker was written with it) and whose answer was never stored: ``result`` is
    what the marker names the operation acted on ("settlementWindow:12"), or ""."""

    result: str


_REPLAYED = (b"idempotent-replayed", b"true")

#: The actions whose answer, lost, is the resource they acted on as it is now (their success
#: status is 200, as a read's). Any other keyed request whose answer was lost is run again:
#: a create is answered by its id (ADR 0009); the rest are idempotent by their nature
#: (suspend, a cap, an endpoint); an alias's removal is answered 204 and its registration
#: with the party while it is the caller's (their markers name the alias).
_ANSWERED_BY_RESOURCE = (
    (re.compile(r"^/v1/transfers/([^/]+)/(?:commit|reject|review)$"), "/v1/transfers/{}"),
    (re.compile(r"^/v1/escrows/([^/]+)/(?:release|refund|split)$"), "/v1/escrows/{}"),
    (re.compile(r"^/v1/settlementWindows/([^/]+)/settle$"), "/v1/settlementWindows/{}"),
    (
        re.compile(r"^/v1/trade/orders/([^/]+)/(?:confirm|cancel|return|return/answer)$"),
        "/v1/trade/orders/{}",
    ),
    (
        re.compile(
            r"^/v1/trade/disputes/([^/]+)/(?:evidence|offer|accept|escalate|ruling|appeal)$"
        ),
        "/v1/trade/disputes/{}",
    ),
)


#: The resource of each kind of result a marker names (``payments/keyed.py``), and the
#: status its retry is answered with (None: the GET's): the actions whose request does not
#: name what they act on (a close acts on the window open then), and the trade creates, which
#: were refused "already exists" when run again (a tracking event: "cannot follow" itself).
_RESULT_RESOURCES: dict[str, tuple[str, int | None]] = {
    SETTLEMENT_WINDOW: ("/v1/settlementWindows/{}", None),
    TRADE_HUB: ("/v1/trade/hubs/{}", 201),
    TRADE_MERCHANT: ("/v1/trade/merchants/{}", 201),
    TRADE_BUYER: ("/v1/trade/buyers/{}", 201),
    TRADE_ITEM: ("/v1/trade/items/{}", 201),
    TRADE_QUOTE: ("/v1/trade/quotes/{}", 201),
    TRADE_DISPUTE: ("/v1/trade/disputes/{}", 201),
    TRADE_TRACKING: ("/v1/trade/orders/{}/tracking/{}", 201),
}


def _resource_of(path: str, done: _DoneAnswerLost) -> tuple[str, int | None] | None:
    """The path whose GET answers the retry of a done operation whose answer was lost, with
    the status to answer it with (None: the GET's), or None if it is run again."""
    for pattern, resource in _ANSWERED_BY_RESOURCE:
        found = pattern.match(path)
        if found:
            return resource.format(found.group(1)), None
    kind, _, ident = done.result.partition(":")
    if kind in _RESULT_RESOURCES and ident:
        template, status = _RESULT_RESOURCES[kind]
        return template.format(*ident.split("/", 1)), status
    return None


def _get(scope: Scope, path: str) -> Scope:
    """``scope`` as a GET of ``path`` (below the same root path), without a body."""
    full = scope.get("root_path", "") + path
    return {
        **scope,
        "method": "GET",
        "path": full,
        "raw_path": quote(full).encode("latin-1"),
        "query_string": b"",
        "headers": [
            (name, value)
            for name, value in scope["headers"]
            if name.lower() not in (b"content-length", b"content-type", b"transfer-encoding")
        ],
    }


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def _is_outcome(status: int) -> bool:
    """Whether an answer is the operation's outcome, kept as the key's answer: a success or
    the client's error (2xx, 4xx). Not kept: a server error (5xx: the operation may not have
    run, and it is idempotent by its id, so the retry runs it again and is answered by what
    happened) and a redirect (3xx: ``POST /v1/quotes/`` is sent on to ``/v1/quotes``, and
    kept it made the key's answer a redirect and the redirected request, same key, 409), nor
    an informational answer."""
    return 200 <= status < 300 or 400 <= status < 500


def _no_store(raw_headers: list[tuple[bytes, bytes]]) -> bool:
    """``Cache-Control: no-store``: the answer carries a secret (an issued credential's) and
    must not be kept anywhere, this middleware's table included."""
    return any(
        name.lower() == b"cache-control" and b"no-store" in value.lower()
        for name, value in raw_headers
    )


def _not_replayable(status: int, content: bytes) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """What a key whose answer carried a secret is answered on a retry: 409 ``not_replayable``,
    naming the status and, where the answer had one, the ``keyId`` the first request got (not
    its secret), so that the operator can revoke that credential if its secret was lost. A
    retry is never given a second credential without being told."""
    key_id = None
    try:
        first = json.loads(content)
        if isinstance(first, dict) and isinstance(first.get("keyId"), str):
            key_id = first["keyId"]
    except ValueError:
        pass
    issued = f" (credential {key_id})" if key_id else ""
    response = problem(
        409,
        "not_replayable",
        f"this Idempotency-Key was answered {status}{issued} with a secret that is shown "
        "once and not kept: it cannot be replayed. Revoke that credential if its secret was "
        "lost, and issue another with a new key",
        field="Idempotency-Key",
    )
    response.headers["Cache-Control"] = "no-store"
    return response.status_code, bytes(response.body), list(response.raw_headers)


def _fx_rate_of(caller: str, done: _DoneAnswerLost) -> FxRate | None:
    """The FX rate a done operation posted (its marker names it), or None."""
    kind, _, posted = done.result.partition(":")
    if kind != FX_RATE:
        return None
    source, target, rate, spread, valid_until = posted.split("/")
    return FxRate(caller, source, target, Decimal(rate), int(spread), int(valid_until))


def _party_of(done: _DoneAnswerLost) -> tuple[str, str] | None:
    """The alias a done operation registered (its marker names it: type, alias), or None."""
    kind, _, registered = done.result.partition(":")
    if kind != PARTY or "/" not in registered:
        return None
    alias_type, _, alias = registered.partition("/")
    return alias_type, alias


def _own_party(engine: Engine, caller: str, alias_type: str, alias: str) -> Party | None:
    """The directory's party for the alias if it is the caller's, else None."""
    with read_connection(engine) as conn:
        party = st.find_alias(conn, alias_type, alias)
    return party if party is not None and party.participant_id == caller else None


def _credential_of(done: _DoneAnswerLost) -> str | None:
    """The key id of the credential a done operation issued (its marker names it), or None."""
    kind, _, key_id = done.result.partition(":")
    return key_id if kind == CREDENTIAL and key_id else None


def _issued_answer_lost(key_id: str) -> Response:
    """The answer to a retry of a credential's issue whose first answer was lost: 409
    ``not_replayable`` naming the credential issued. Its secret was stored nowhere (only its
    hash), so it cannot be given; another credential is not issued under the same key (two
    live secrets for one request). The operator revokes the one named and issues another
    with a new key (ADR 0012). No secret in it: stored as the key's answer, as it is."""
    response = problem(
        409,
        "not_replayable",
        f"this Idempotency-Key issued credential {key_id}, whose answer was never stored "
        "(its worker stopped before it was sent): its secret is shown once and kept nowhere, "
        "so it cannot be replayed, nor is another issued under this key. Revoke "
        f"{key_id} and issue another with a new key",
        field="Idempotency-Key",
    )
    response.raw_headers.append(_REPLAYED)
    return response


def _settle(future: asyncio.Future[BaseException | None], error: BaseException | None) -> None:
    if not future.done():  # its request may have been cancelled meanwhile
        future.set_result(error)


#: ``PaymentScheme.write_with_next``: (write, on_done) -> queued
WriteWithNext = Callable[
    [Callable[[Connection], Any], Callable[[BaseException | None], None]], bool
]


def _in_progress() -> Response:
    response = problem(
        409,
        "request_in_progress",
        "a request with this Idempotency-Key is still being answered: retry after it, to "
        "be answered as it was",
        field="Idempotency-Key",
        mojaloop="3106",  # as ``KeyInUse``, its other server's form (docs/payments.md)
    )
    response.headers["Retry-After"] = "1"
    return response


def _digest(method: str, path: str, query: bytes, body: bytes) -> str:
    """The request an Idempotency-Key was first used with: its method, path, query string
    (``?dryRun=true`` is another request) and body. A request without a query hashes as it
    did before the query was included, so answers stored then still replay. A path with a
    trailing slash is the same request as without: the app redirects it there (307), and
    the answer kept is the one the redirected request got, so a retry of the slashed request
    is replayed that answer, not refused as another request."""
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    # The path is decoded: a "%3F" in it is a "?" here, and "/a%3Fx=1" (no query) hashed as
    # "/a?x=1" (found by a review). Escaped back, as the client could not have sent them
    # raw; a path with neither "%" nor "?" (every route's) hashes as it did.
    path = path.replace("%", "%25").replace("?", "%3F")
    target = path.encode() + (b"?" + query if query else b"")
    return hashlib.sha256(method.encode() + b" " + target + b"\n" + body).hexdigest()


def _media(text: str, status: int) -> str:
    """The media type of an answer stored without its headers: the API answers JSON, and
    every error as a problem."""
    try:
        json.loads(text)
    except ValueError:
        return "text/plain"
    return "application/problem+json" if status >= 400 else "application/json"


def request_target(scope: Scope) -> str:
    """The request target as the client sent it: the path, percent-encoded as on the wire,
    and ``?`` and the query string if there is one (httpx: ``request.url.raw_path``)."""
    raw_path: bytes | None = scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else quote(URL(scope=scope).path)
    query: bytes = scope.get("query_string", b"")
    return path + ("?" + query.decode("latin-1") if query else "")


def nonce_scope(public_key: bytes) -> str:
    """Whose nonces a signed request's nonce must be new among: its signing key's (``pk:`` and
    the key in base64), not its credential's. The signature does not cover the credential, so
    a request captured with one credential was accepted again with another bound to the same
    key (a participant's per-worker credentials, a secret rotated and the key kept)."""
    return "pk:" + base64.b64encode(public_key).decode()


def check_signature(
    public_key: bytes, method: str, target: str, headers: Headers, body: bytes, now: float
) -> str | None:
    """Why a request's signature is refused, or None if it verifies and is fresh (its nonce
    is checked after, by the caller: a write)."""
    header = headers.get("x-signature")
    if not header:
        return "this credential requires an X-Signature header"
    date = headers.get("x-entrepot-date", "")
    if not (date.isascii() and date.isdigit() and len(date) <= 12):
        return "a signed request needs X-Entrepot-Date, its time in unix seconds"
    nonce = headers.get("x-entrepot-nonce", "")
    if not (NONCE_LEN[0] <= len(nonce) <= NONCE_LEN[1] and set(nonce) <= NONCE_CHARS):
        return "a signed request needs X-Entrepot-Nonce, 16 to 64 characters of [A-Za-z0-9_-]"
    try:
        signature = base64.b64decode(header, validate=True)
    except ValueError:
        return "X-Signature is not base64"
    key = headers.get("idempotency-key", "")
    try:
        message = signed_message(date, nonce, method, target, key, body)
        VerifyKey(public_key).verify(message, signature)
    except (BadSignatureError, ValueError):
        # what was verified, so that a client can compare it with what it signed (most often
        # a path it signed as written, not percent-encoded as its HTTP library sent it)
        return (
            "X-Signature does not verify against the credential's public key (signed: "
            "date, nonce, method, path and query, Idempotency-Key, body's SHA-256); the "
            f"server verified {method} {target}, "
            + (f"Idempotency-Key {key!r}" if key else "no Idempotency-Key")
            + f", body SHA-256 {hashlib.sha256(body).hexdigest()}: sign the path and query "
            "exactly as sent, percent-encoded"
        )
    if abs(now - int(date)) > SIGNATURE_WINDOW_S:
        return (
            f"X-Entrepot-Date is more than {SIGNATURE_WINDOW_S} s from the server's clock "
            f"({int(now)}): sign the request again, now"
        )
    return None


#: ``WWW-Authenticate`` of a 401 (RFC 9110 11.6.1, RFC 6750 3: bearer credentials)
CHALLENGE = 'Bearer realm="entrepot"'


def unauthenticated(code: str, detail: str, *, invalid: bool) -> Response:
    """A 401 problem with its challenge; ``invalid``: credentials were given, and refused."""
    response = problem(401, code, detail, mojaloop="3105")
    response.headers["WWW-Authenticate"] = (
        CHALLENGE + ', error="invalid_token"' if invalid else CHALLENGE
    )
    return response


def route_path(scope: Scope) -> str:
    """The path the application routes, below the root path it is served at (uvicorn's
    ``--root-path``, a ``Mount``): ``/api/v1/transfers`` is ``/v1/transfers`` at ``/api``."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return path[len(root) :] or "/"
    return path


def caller_of(request: Request) -> str:
    """The participant :class:`SecurityMiddleware` authenticated. A route reached without
    it (a path the middleware did not take for the API's) is refused, never served as no one."""
    caller = getattr(request.state, "caller", None)
    if not isinstance(caller, str):
        raise HTTPException(
            401, "missing or invalid API credentials", headers={"WWW-Authenticate": CHALLENGE}
        )
    return caller


async def caller_dependency(request: Request) -> str:
    """``caller_of`` as a FastAPI dependency. ``async`` because it does no I/O: FastAPI runs a
    plain ``def`` dependency in its thread pool, one thread hop per dependency per request."""
    return caller_of(request)
