"""The one signed form of Entrepot's HTTP messages, both ways: a participant's request to the
API (``entrypoints/api/security.py`` verifies it) and the scheme's callback to a participant
(``notify.py`` signs it).

Ed25519 over lines of a version tag, a timestamp (unix seconds), a nonce, the method, the
target, the Idempotency-Key ("" without one) and the SHA-256 of the body (hex). For a request
the target is its path and query as sent and the nonce the caller's; for a callback the
target is the whole URL it is POSTed to (scheme, host, port, path, query: a receiver checks
that it was meant for it) and the nonce its event id (``X-Entrepot-Event-Id``: a receiver
drops a notice whose id it has seen, and a resent one cannot carry another)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time

from nacl.signing import SigningKey

VERSION = "entrepot-request-v1"


def signed_message(
    date: str, nonce: str, method: str, target: str, idempotency_key: str, body: bytes
) -> bytes:
    """What a request's ``X-Signature`` signs: lines of the scheme's version tag, the
    timestamp, the nonce, the method, the target, the Idempotency-Key ("" without one) and
    the SHA-256 of the body (hex). No field may hold a line break (the timestamp is digits,
    the nonce base64url, and HTTP allows none in the target or a header), so the lines are
    read back one way only."""
    return _lines(VERSION, (date, nonce, method, target, idempotency_key), body)


def _lines(tag: str, fields: tuple[str, ...], body: bytes) -> bytes:
    """``tag``, each field and the body's SHA-256 (hex), one a line: what a signature signs.
    No field may hold a line break, so the lines are read back one way only."""
    if any("\n" in field or "\r" in field for field in fields):
        raise ValueError("a signed field holds a line break")
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join((tag, *fields, digest)).encode()


def sign_request(
    key: SigningKey,
    method: str,
    target: str,
    body: bytes = b"",
    *,
    idempotency_key: str | None = None,
    now: float | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The headers that sign a request with ``key``: ``X-Entrepot-Date``,
    ``X-Entrepot-Nonce`` and ``X-Signature`` (the Idempotency-Key, if any, is sent as well,
    as signed). ``target`` is the path and query as sent (``"/v1/transfers?limit=5"``).
    Sign each request, and each retry, afresh: a nonce is accepted once."""
    date = str(int(time.time() if now is None else now))
    nonce = nonce or secrets.token_urlsafe(16)
    message = signed_message(date, nonce, method.upper(), target, idempotency_key or "", body)
    headers = {
        "X-Entrepot-Date": date,
        "X-Entrepot-Nonce": nonce,
        "X-Signature": base64.b64encode(key.sign(message).signature).decode(),
    }
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    return headers


#: What a callback's ``X-Signature`` signs begins with this tag, not the request's: a signed
#: callback can never be taken for a signed request, nor one for the other
CALLBACK_VERSION = "entrepot-callback-v1"


def callback_message(
    date: str, event_id: str, url: str, destination: str, event: str, body: bytes
) -> bytes:
    """What a callback's ``X-Signature`` signs: lines of :data:`CALLBACK_VERSION`, the
    timestamp (``X-Entrepot-Date``), the event id (``X-Entrepot-Event-Id``), the whole URL it
    was POSTed to, the participant it is for (``FSPIOP-Destination``), the event
    (``X-Entrepot-Event``) and the SHA-256 of the body (hex). The destination and the event
    are signed so that a receiver can tell a notice is for itself: any participant may point
    its endpoint at another's URL, and headers not signed could be rewritten."""
    return _lines(CALLBACK_VERSION, (date, event_id, url, destination, event), body)


def sign_callback(
    key: SigningKey, url: str, event_id: str, body: bytes, *, destination: str, event: str
) -> dict[str, str]:
    """The headers that sign a callback POSTed to ``url`` for participant ``destination``:
    ``X-Entrepot-Date``, ``X-Entrepot-Event-Id`` and ``X-Signature`` (over
    :func:`callback_message`). Each attempt is signed afresh."""
    date = str(int(time.time()))
    message = callback_message(date, event_id, url, destination, event, body)
    return {
        "X-Entrepot-Date": date,
        "X-Entrepot-Event-Id": event_id,
        "X-Signature": base64.b64encode(key.sign(message).signature).decode(),
    }


__all__ = [
    "CALLBACK_VERSION",
    "VERSION",
    "callback_message",
    "sign_callback",
    "sign_request",
    "signed_message",
]
