"""The security middleware at the ASGI level: what a client that drops mid-upload leaves."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from entrepot.entrypoints.api.app import create_app
from entrepot.entrypoints.api.security import SecurityMiddleware
from entrepot.payments import PaymentScheme
from entrepot.payments.credentials import issue_credential
from entrepot.storage.group import GroupCommitFailed, MemberUnitOfWork
from entrepot.storage.uow import UnitOfWork

QUOTE = json.dumps(
    {
        "quoteId": "q-drop",
        "payee": {"partyIdType": "MERCHANT", "partyIdentifier": "KL-TILL-42"},
        "amountType": "SEND",
        "amount": {"amount": "5000", "currency": "RWF"},
        "sourceCurrency": "RWF",
    }
).encode()


def _post(app: Any, token: str, chunks: list[bytes], *, drop_after: int | None = None) -> list[Any]:
    """POST /v1/quotes with the body in ``chunks``; the client disconnects after ``drop_after``
    chunks. Returns what the app sent (an exception raised out of the app is recorded)."""
    messages: list[dict[str, Any]] = []
    for i, chunk in enumerate(chunks):
        if i == drop_after:
            messages.append({"type": "http.disconnect"})
            break
        messages.append({"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1})
    pending = iter(messages)

    async def receive() -> dict[str, Any]:
        try:
            return next(pending)
        except StopIteration:
            return {"type": "http.disconnect"}

    sent: list[Any] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = {
        "authorization": f"Bearer {token}",
        "idempotency-key": "k-drop",
        "content-type": "application/json",
        "host": "t",
    }
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/quotes",
        "raw_path": b"/v1/quotes",
        "root_path": "",
        "query_string": b"",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 1),
        "server": ("t", 80),
    }
    try:
        asyncio.run(app(scope, receive, send))
    except Exception as exc:  # the server answers a dropped client with nothing
        sent.append(exc)
    return sent


def _status(sent: list[Any]) -> list[int]:
    return [m["status"] for m in sent if isinstance(m, dict) and m["type"] == "http.response.start"]


def test_a_dropped_upload_is_not_answered_stored_or_held_against_the_retry(
    scheme: PaymentScheme,
) -> None:
    app = create_app(scheme)
    token = issue_credential(scheme.engine, "mtn-rw").token
    half = len(QUOTE) // 2
    dropped = _post(app, token, [QUOTE[:half], QUOTE[half:]], drop_after=1)
    assert 201 not in _status(dropped) and 422 not in _status(dropped)
    with scheme.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT count(*) FROM pay_idempotency").scalar()
    assert stored == 0
    retry = _post(app, token, [QUOTE[:half], QUOTE[half:]])
    assert _status(retry) == [201]
    again = _post(app, token, [QUOTE])  # the same key and body: the first answer, replayed
    assert _status(again) == [201]
    (start,) = [m for m in again if isinstance(m, dict) and m["type"] == "http.response.start"]
    assert (b"idempotent-replayed", b"true") in start["headers"]


def test_an_idempotent_answer_is_stored_off_the_event_loop(
    scheme: PaymentScheme, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Storing the answer to an Idempotency-Key is a write: it waits for the write lock and
    its fsync, which on the event loop would stall every other request of the worker."""
    on_loop: list[bool] = []
    store = SecurityMiddleware._store

    def spy(self: SecurityMiddleware, *args: Any) -> None:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        store(self, *args)

    monkeypatch.setattr(SecurityMiddleware, "_store", spy)
    token = issue_credential(scheme.engine, "mtn-rw").token
    app = create_app(scheme)
    assert _status(_post(app, token, [QUOTE])) == [201]
    assert _status(_post(app, token, [QUOTE])) == [201]  # replayed: stored the first time
    assert on_loop == [False]


def test_an_idempotent_answer_joins_the_schemes_group_commit(
    scheme: PaymentScheme, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a transaction of its own, each stored answer took a turn of the write lock and an
    fsync of its own; it is written as a member of the scheme's group commit instead."""
    joined: list[int] = []
    unit = scheme.unit_of_work

    @contextmanager
    def spy() -> Iterator[UnitOfWork]:
        with unit() as uow:
            joined.append(1)
            assert isinstance(uow, MemberUnitOfWork)  # a member of the group, not its own
            yield uow

    monkeypatch.setattr(scheme, "unit_of_work", spy)
    token = issue_credential(scheme.engine, "mtn-rw").token
    app = create_app(scheme)
    assert _status(_post(app, token, [QUOTE])) == [201]
    assert joined == [1]
    with scheme.engine.connect() as conn:
        row = conn.exec_driver_sql(
            "SELECT caller, status_code FROM pay_idempotency WHERE key = 'k-drop'"
        ).one()
    assert tuple(row) == ("mtn-rw", 201)


def test_an_answer_whose_group_commit_failed_is_stored_on_its_own(
    scheme: PaymentScheme, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another member broke the shared transaction: the operation is durable already, so
    its answer is stored in a transaction of its own rather than lost."""

    @contextmanager
    def broken() -> Iterator[UnitOfWork]:
        raise GroupCommitFailed("another member broke the batch")
        yield  # pragma: no cover

    monkeypatch.setattr(scheme, "unit_of_work", broken)
    token = issue_credential(scheme.engine, "mtn-rw").token
    app = create_app(scheme)
    assert _status(_post(app, token, [QUOTE])) == [201]
    assert _status(_post(app, token, [QUOTE])) == [201]  # replayed
    with scheme.engine.connect() as conn:
        count = conn.exec_driver_sql("SELECT count(*) FROM pay_idempotency").scalar()
    assert count == 1
