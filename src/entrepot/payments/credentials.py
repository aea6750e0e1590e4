"""API credentials: issued per participant, stored hashed, optionally bound to an Ed25519 key.

Other contexts issue credentials for their own principals (trade's ``merchant:m-1``,
``buyer:b-7``, ``arbitrator:arb-kigali-1``) by passing ``principal_check``, which replaces the
participant check inside the issuing transaction.

Secrets are 256-bit random tokens, not human passwords, so a salted SHA-256 is enough and keeps
verification cheap on the hot path (a slow KDF would cap the API at a few hundred requests/s).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from entrepot.kernel.clock import Clock, SystemClock
from entrepot.payments import store as st
from entrepot.payments.errors import (
    CredentialNotFound,
    InvalidPaymentInput,
    ParticipantNotFound,
    shown_id,
)
from entrepot.payments.keyed import CREDENTIAL, mark_keyed
from entrepot.storage.driver import Fast
from entrepot.storage.engine import is_sqlite, read_connection


@dataclass(frozen=True, slots=True)
class IssuedCredential:
    key_id: str
    secret: str  # shown once; only its hash is stored
    participant_id: str

    @property
    def token(self) -> str:
        return f"{self.key_id}.{self.secret}"


@dataclass(frozen=True, slots=True)
class VerifiedCaller:
    participant_id: str
    key_id: str
    public_key: bytes | None


def _hash(salt: str, secret: str) -> str:
    return hashlib.sha256(f"{salt}:{secret}".encode()).hexdigest()


def issue_credential(
    engine: Engine,
    participant_id: str,
    *,
    public_key_b64: str | None = None,
    clock: Clock | None = None,
    principal_check: Callable[[Connection], None] | None = None,
) -> IssuedCredential:
    """Issue a credential for ``participant_id``, a payment participant; or, with
    ``principal_check``, for another context's principal: the check runs in the issuing
    transaction and raises (that context's error) unless the principal exists."""
    public_key = None
    if public_key_b64 is not None:
        try:
            raw = base64.b64decode(public_key_b64, validate=True)
        except ValueError:
            raise InvalidPaymentInput("publicKey is not base64", field="publicKey") from None
        if len(raw) != 32:
            raise InvalidPaymentInput("publicKey must be a 32-byte Ed25519 key", field="publicKey")
        public_key = public_key_b64
    key_id = "k" + secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_hex(8)
    now = (clock or SystemClock()).now_ns()
    with engine.begin() as conn:
        if principal_check is not None:
            principal_check(conn)
        elif st.load_participant(conn, participant_id) is None:
            raise ParticipantNotFound(f"participant {shown_id(participant_id)!r} does not exist")
        conn.execute(
            sa.insert(st.credentials).values(
                key_id=key_id,
                participant_id=participant_id,
                secret_hash=_hash(salt, secret),
                salt=salt,
                public_key=public_key,
                revoked=False,
                created_at=now,
            )
        )
        # A keyed request's key, with the credential: a retry after an answer lost (the
        # worker killed before the key's answer was stored) is told that this credential was
        # issued, and is not issued a second one (ADR 0012). Its key id only: the secret is
        # shown once and stored nowhere, its marker included.
        mark_keyed(conn, now, result=f"{CREDENTIAL}:{key_id}")
    return IssuedCredential(key_id, secret, participant_id)


@dataclass(frozen=True, slots=True)
class CredentialInfo:
    """A credential as its holder and the operator see it: never its secret or hash."""

    key_id: str
    participant_id: str
    public_key: str | None  # base64 Ed25519 key requests must be signed with, if bound
    revoked: bool
    created_at_ns: int


def _info(row: sa.Row[tuple[object, ...]]) -> CredentialInfo:
    return CredentialInfo(
        row.key_id, row.participant_id, row.public_key, bool(row.revoked), row.created_at
    )


def list_credentials(engine: Engine, participant_id: str) -> list[CredentialInfo]:
    """The credentials issued to ``participant_id`` (a principal of any context), oldest
    first, revoked ones included."""
    with read_connection(engine) as conn:
        rows = conn.execute(
            sa.select(st.credentials)
            .where(st.credentials.c.participant_id == participant_id)
            .order_by(st.credentials.c.created_at, st.credentials.c.key_id)
        ).all()
    return [_info(r) for r in rows]


def revoke_credential(
    engine: Engine, key_id: str, *, participant_id: str | None = None
) -> CredentialInfo:
    """Revoke ``key_id`` (refused from the next request on, in every worker:
    ``verify_token``). ``participant_id``: the holder it must belong to (the API's path), else
    CredentialNotFound, as for an unknown key. Revoking twice is not an error."""
    with engine.begin() as conn:
        row = conn.execute(
            sa.select(st.credentials).where(st.credentials.c.key_id == key_id)
        ).first()
        if row is None or (participant_id is not None and row.participant_id != participant_id):
            raise CredentialNotFound(
                f"credential {key_id!r} does not exist"
                + (f" for {participant_id}" if participant_id is not None else "")
            )
        conn.execute(
            sa.update(st.credentials).where(st.credentials.c.key_id == key_id).values(revoked=True)
        )
    return replace(_info(row), revoked=True)


_CREDENTIAL = Fast(
    "SELECT participant_id, secret_hash, salt, public_key, revoked FROM pay_credentials"
    " WHERE key_id = ?",
    ("participant_id", "secret_hash", "salt", "public_key", "revoked"),
)


class TokenVerifier:
    """``verify_token`` for one API worker, through a connection of its own, outside any
    transaction: one SELECT, which sees one snapshot, read to its end (so no read stays
    open). A pooled connection's checkout, BEGIN and end around the same query cost about
    50 µs a request on SQLite (5 µs this way), and on PostgreSQL three round trips instead of
    one: four requests a payment.

    SQLite: the API calls it from its event loop only (``run_read``), one request at a time;
    the connection is a pooled one, already in autocommit (the engine's ``connect`` hook).
    PostgreSQL: from the thread pool, so requests take turns on a lock (a round trip each);
    the connection is taken out of the pool (it is switched to autocommit) and opened again
    once if the server dropped it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sqlite = is_sqlite(engine)
        self._driver: Any = None  # opened on first use, held for the worker's life
        self._lock = threading.Lock()

    def __call__(self, token: str) -> VerifiedCaller | None:
        if self._sqlite:
            return verify_token(self.engine, token, reader=self._read_sqlite)
        return verify_token(self.engine, token, reader=self._read_postgres)

    def close(self) -> None:
        """Let the connection go (at the worker's shutdown: on SQLite the pool can then close
        it, and the last connection to close checkpoints the WAL)."""
        with self._lock:
            driver, self._driver = self._driver, None
        if driver is not None:
            with contextlib.suppress(Exception):
                driver.close()

    def _read_sqlite(self, key_id: str) -> Any:
        if self._driver is None:
            self._driver = self.engine.raw_connection()
        rows = self._driver.driver_connection.execute(_CREDENTIAL.sql["sqlite"], (key_id,))
        found = rows.fetchall()  # to the end: the statement is reset, its snapshot let go
        return _CREDENTIAL.row._make(found[0]) if found else None

    def _read_postgres(self, key_id: str) -> Any:
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._driver is None:
                        fairy = self.engine.raw_connection()
                        driver: Any = fairy.driver_connection
                        fairy.detach()  # autocommit from here on: never back into the pool
                        driver.autocommit = True
                        self._driver = driver
                    cursor = self._driver.execute(_CREDENTIAL.sql["postgresql"], (key_id,))
                    found = cursor.fetchall()
                    return _CREDENTIAL.row._make(found[0]) if found else None
                except Exception:  # the server dropped it, say: a new one, once
                    driver, self._driver = self._driver, None
                    if driver is not None:
                        with contextlib.suppress(Exception):
                            driver.close()
                    if attempt == 2:
                        raise
        raise AssertionError("not reached: the second attempt returns or raises")


def verify_token(
    engine: Engine, token: str, *, reader: Callable[[str], Any] | None = None
) -> VerifiedCaller | None:
    """``key_id.secret`` -> the caller, or None if unknown, revoked or wrong.

    Read on every request, not kept: a revoked credential is refused by every worker from the
    next request on (a cache of verified tokens kept one working for up to 30 s per worker).
    The read is one primary-key lookup on the driver's cursor, about 40 µs on SQLite, most
    of it the read transaction's begin and end (a version row checked instead, to keep a
    cache, cost the same read); the hash is a microsecond."""
    key_id, _, secret = token.partition(".")
    if not key_id or not secret or len(token) > 200:
        return None
    if reader is not None:
        row = reader(key_id)
    else:
        with read_connection(engine) as conn:
            row = _CREDENTIAL.first(conn, (key_id,))
    if row is None or row.revoked:
        return None
    if not hmac.compare_digest(row.secret_hash, _hash(row.salt, secret)):
        return None
    public_key = base64.b64decode(row.public_key) if row.public_key else None
    return VerifiedCaller(row.participant_id, key_id, public_key)


_RECORD_NONCE = Fast(
    "INSERT INTO pay_request_nonces (key_id, nonce, expires_at) VALUES (?, ?, ?)"
    " ON CONFLICT (key_id, nonce) DO NOTHING"
)
_PURGE_NONCES = Fast("DELETE FROM pay_request_nonces WHERE expires_at < ?")


def record_nonce(conn: Connection, key_id: str, nonce: str, expires_at: int) -> bool:
    """Record a signed request's nonce under ``key_id``, whose nonces it must be new among (the
    API's: the signing key, ``security.nonce_scope``), kept until ``expires_at`` (unix
    seconds; after it the request's timestamp is refused anyway). False if it was recorded
    already: the request is a replay. Commits with ``conn``'s transaction."""
    return _RECORD_NONCE.execute(conn, (key_id, nonce, expires_at)) == 1


def purge_nonces(conn: Connection, now: int) -> int:
    """Drop the nonces whose requests are too old to be accepted: the number dropped."""
    return _PURGE_NONCES.execute(conn, (now,))
