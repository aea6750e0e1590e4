"""The security middleware at the ASGI level: what a client that drops mid-upload leaves."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from entrepot.entrypoints.api import asgi
from entrepot.entrypoints.api import security as security_module
from entrepot.entrypoints.api.app import create_app
from entrepot.entrypoints.api.claims import KeyClaims
from entrepot.entrypoints.api.security import SecurityMiddleware
from entrepot.payments import PaymentScheme
from entrepot.payments import store as st
from entrepot.payments.credentials import issue_credential
from entrepot.storage.group import GroupCommitFailed, MemberUnitOfWork
from entrepot.storage.migrate import downgrade, upgrade
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
    return asyncio.run(_apost(app, token, chunks, drop_after=drop_after))


def _quote_scope(token: str, key: str, extra: dict[str, str] | None = None) -> dict[str, Any]:
    """The ASGI scope of a keyed POST /v1/quotes with JSON, as uvicorn hands it over."""
    headers = {
        "authorization": f"Bearer {token}",
        "idempotency-key": key,
        "content-type": "application/json",
        "host": "t",
        **(extra or {}),
    }
    return {
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


async def _apost(
    app: Any,
    token: str,
    chunks: list[bytes],
    *,
    drop_after: int | None = None,
    key: str = "k-drop",
    extra: dict[str, str] | None = None,
) -> list[Any]:
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

    try:
        await app(_quote_scope(token, key, extra), receive, send)
    except Exception as exc:  # the server answers a dropped client with nothing
        sent.append(exc)
    return sent


def _status(sent: list[Any]) -> list[int]:
    return [m["status"] for m in sent if isinstance(m, dict) and m["type"] == "http.response.start"]


def _start(sent: list[Any]) -> dict[str, Any]:
    (start,) = [m for m in sent if isinstance(m, dict) and m["type"] == "http.response.start"]
    return start


def _body(sent: list[Any]) -> Any:
    return json.loads(b"".join(m["body"] for m in sent if m["type"] == "http.response.body"))


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


def _paused_create_quote(
    scheme: PaymentScheme, monkeypatch: pytest.MonkeyPatch
) -> tuple[threading.Event, threading.Event]:
    """The first create_quote waits (in its worker thread, before writing) until ``go`` is
    set; ``entered`` is set once it waits. Later calls run at once."""
    entered, go = threading.Event(), threading.Event()
    create = scheme.create_quote
    calls: list[int] = []

    def paused(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            entered.set()
            assert go.wait(30)
        return create(*args, **kwargs)

    monkeypatch.setattr(scheme, "create_quote", paused)
    return entered, go


def test_a_retry_while_the_first_request_runs_is_refused_and_the_first_answer_kept(
    scheme: PaymentScheme, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unclaimed, the retry created the quote and stored its 201 as the key's answer; the
    original then failed ("already exists") and its client was answered 409, while every
    later replay said 201. Claimed: the retry is told to come back, and then replays the
    original's answer."""
    entered, go = _paused_create_quote(scheme, monkeypatch)
    token = issue_credential(scheme.engine, "mtn-rw").token
    app = create_app(scheme)

    async def scenario() -> tuple[list[Any], list[Any], list[Any]]:
        first = asyncio.ensure_future(_apost(app, token, [QUOTE], key="k-race"))
        assert await asyncio.to_thread(entered.wait, 30)
        retry = await _apost(app, token, [QUOTE], key="k-race")
        go.set()
        original = await first
        later = await _apost(app, token, [QUOTE], key="k-race")
        return original, retry, later

    original, retry, later = asyncio.run(scenario())
    assert _status(retry) == [409]
    assert _body(retry)["code"] == "request_in_progress"
    assert _body(retry)["errorCode"] == "3106"  # docs/payments.md's table, as ``KeyInUse``
    assert (b"retry-after", b"1") in _start(retry)["headers"]
    assert _status(original) == [201]
    assert _status(later) == [201] and _body(later) == _body(original)
    assert (b"idempotent-replayed", b"true") in _start(later)["headers"]


def test_a_claim_is_only_for_its_key_and_caller(
    scheme: PaymentScheme, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, go = _paused_create_quote(scheme, monkeypatch)
    token = issue_credential(scheme.engine, "mtn-rw").token
    other = issue_credential(scheme.engine, "icbc").token
    app = create_app(scheme)
    other_quote = QUOTE.replace(b"q-drop", b"q-other")

    async def scenario() -> tuple[list[Any], list[Any], list[Any]]:
        first = asyncio.ensure_future(_apost(app, token, [QUOTE], key="k-1"))
        assert await asyncio.to_thread(entered.wait, 30)
        another_key = await _apost(app, token, [other_quote], key="k-2")
        another_caller = await _apost(app, other, [other_quote], key="k-1")
        go.set()
        return await first, another_key, another_caller

    first, another_key, another_caller = asyncio.run(scenario())
    assert _status(first) == [201] and _status(another_key) == [201]
    # icbc's request ran (and was refused on its own merits: icbc holds no RWF)
    assert _body(another_caller).get("code") not in (None, "request_in_progress")


def test_a_worker_holds_a_bounded_number_of_large_bodies_at_once(
    scheme: PaymentScheme, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bodies of up to 16 MiB, each held and parsed for its request's life: a participant's
    burst of bulks (or many participants') at once and the worker was killed for memory, with
    every request it held. Past ``LARGE_BODIES_IN_FLIGHT_MAX`` large bodies (in several
    parts, and by their Content-Length over ``LARGE_BODY_BYTES``, or chunked without one), a
    request is refused 503 as its first part comes and changes nothing; small ones (every
    payment's) are not held back; a large one is served again once one in flight is done."""
    monkeypatch.setattr(asgi, "LARGE_BODY_BYTES", 64)
    monkeypatch.setattr(asgi, "LARGE_BODIES_IN_FLIGHT_MAX", 1)
    entered, go = _paused_create_quote(scheme, monkeypatch)
    token = issue_credential(scheme.engine, "mtn-rw").token
    app = create_app(scheme)
    other = QUOTE.replace(b"q-drop", b"q-other")
    sized = {"content-length": str(len(QUOTE))}  # over the 64 bytes set above
    parts = [QUOTE[:40], QUOTE[40:]]
    other_parts = [other[:40], other[40:]]

    async def scenario() -> tuple[list[Any], ...]:
        first = asyncio.ensure_future(_apost(app, token, parts, key="k-1", extra=sized))
        assert await asyncio.to_thread(entered.wait, 30)
        busy = await _apost(app, token, other_parts, key="k-2", extra=sized)
        chunked = await _apost(
            app, token, other_parts, key="k-3", extra={"transfer-encoding": "chunked"}
        )
        # under the size, in parts or not: not held back
        medium = await _apost(app, token, [b"{", b"}"], key="k-4", extra={"content-length": "2"})
        small = await _apost(app, token, [b"{}"], key="k-5")
        go.set()
        return await first, busy, chunked, medium, small

    first, busy, chunked, medium, small = asyncio.run(scenario())
    for refused in (busy, chunked):
        assert _status(refused) == [503]
        assert _body(refused)["code"] == "server_busy" and _body(refused)["errorCode"] == "2003"
        assert (b"retry-after", b"1") in _start(refused)["headers"]
    assert _status(medium) == [422] and _status(small) == [422]  # served, on their merits
    assert _status(first) == [201]
    with scheme.engine.connect() as conn:
        quotes = conn.execute(sa.text("SELECT id FROM pay_quotes")).scalars().all()
    assert quotes == ["q-drop"]  # the refused ones changed nothing
    again = asyncio.run(_apost(app, token, other_parts, key="k-2", extra=sized))
    assert _status(again) == [201]  # its key was free, and the first's place given back


def test_a_large_body_dropped_half_way_gives_its_place_back(
    scheme: PaymentScheme, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(asgi, "LARGE_BODY_BYTES", 64)
    monkeypatch.setattr(asgi, "LARGE_BODIES_IN_FLIGHT_MAX", 1)
    token = issue_credential(scheme.engine, "mtn-rw").token
    app = create_app(scheme)
    sized = {"content-length": str(len(QUOTE))}
    parts = [QUOTE[:40], QUOTE[40:80], QUOTE[80:]]
    asyncio.run(_apost(app, token, parts, key="k-1", extra=sized, drop_after=2))
    done = asyncio.run(_apost(app, token, parts, key="k-1", extra=sized))
    assert _status(done) == [201]  # not 503: the dropped upload held no place


def test_a_request_that_fails_lets_its_key_go(
    scheme: PaymentScheme, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(scheme, "create_quote", broken)
    token = issue_credential(scheme.engine, "mtn-rw").token
    app = create_app(scheme)
    failed = _post(app, token, [QUOTE])
    assert 201 not in _status(failed)
    monkeypatch.undo()
    assert _status(_post(app, token, [QUOTE])) == [201]  # not "in progress" for ever


def test_workers_claim_keys_through_a_lock_file(tmp_path: Path) -> None:
    """Two claim sets on one file stand for two workers: each sees the other's claims."""
    (tmp_path / "c.lock").touch(mode=0o644)  # as an earlier version left it
    one, two = KeyClaims(tmp_path / "c.lock"), KeyClaims(tmp_path / "c.lock")
    try:
        assert one.claim("mtn-rw", "k")
        assert not one.claim("mtn-rw", "k")  # this worker's own second request
        assert not two.claim("mtn-rw", "k")  # the other worker's
        assert two.claim("mtn-rw", "k2") and two.claim("equity-ke", "k")
        one.release("mtn-rw", "k")
        assert two.claim("mtn-rw", "k")
        assert not one.claim("mtn-rw", "k")
        # the workers' alone: another user's read lock on a byte would stall its key
        assert stat.S_IMODE((tmp_path / "c.lock").stat().st_mode) == 0o600
    finally:
        one.close()
        two.close()


def test_a_killed_workers_claims_are_let_go(tmp_path: Path) -> None:
    path = tmp_path / "c.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from entrepot.entrypoints.api.claims import KeyClaims\n"
            f"assert KeyClaims(Path({str(path)!r})).claim('mtn-rw', 'k')\n"
            "print('held', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
    )
    claims = KeyClaims(path)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        assert not claims.claim("mtn-rw", "k")
        holder.kill()
        holder.wait(30)
        assert claims.claim("mtn-rw", "k")
    finally:
        holder.kill()
        claims.close()


def test_claims_without_a_usable_lock_file_hold_within_the_process(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    claims = KeyClaims(tmp_path / "no-such-dir" / "c.lock")
    with caplog.at_level(logging.WARNING):
        assert claims.claim("mtn-rw", "k")
        assert not claims.claim("mtn-rw", "k")
        claims.release("mtn-rw", "k")
        assert claims.claim("mtn-rw", "k")
    assert sum("within this process only" in r.message for r in caplog.records) == 1


def app_from_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str
) -> tuple[Any, dict[str, Any]]:
    """An app as ``entrepot serve``'s workers build theirs, from the environment (a database
    and a home in ``tmp_path``, screening off, and ``env``), and its security middleware's
    arguments."""
    import gc

    from entrepot.entrypoints.api.app import create_app_from_env

    monkeypatch.setenv("ENTREPOT_DATABASE_URL", f"sqlite:///{tmp_path}/api.db")
    monkeypatch.setenv("ENTREPOT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ENTREPOT_SCREENING", "off")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        app = create_app_from_env()
    finally:
        gc.unfreeze()
    (security,) = [m for m in app.user_middleware if m.cls is SecurityMiddleware]
    return app, security.kwargs


def test_the_workers_of_one_home_claim_through_its_lock_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``entrepot serve``'s workers build their app from the environment: one home, one lock
    file, so a retry reaching another worker meets the first request's claim."""
    app, security = app_from_env(tmp_path, monkeypatch)
    claims = security["claims"]
    other_worker = KeyClaims(tmp_path / "home" / "idempotency-claims.lock")
    try:
        assert claims.claim("mtn-rw", "k")
        assert not other_worker.claim("mtn-rw", "k")
    finally:
        claims.close()
        other_worker.close()
        app.state.scheme.engine.dispose()


def _answering(status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> Any:
    """An ASGI app that answers every request so, and counts the requests it answered."""
    calls: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        calls.append(1)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    app.calls = calls  # type: ignore[attr-defined]
    return app


def _headers(sent: list[Any]) -> dict[bytes, bytes]:
    return dict(_start(sent)["headers"])


def test_a_replay_carries_the_first_answers_headers(scheme: PaymentScheme) -> None:
    """A tracking event's 201 has a ``code`` field: replayed, it was said to be a problem."""
    body = b'{"orderId": "o-1", "code": "EXD"}'
    first_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"location", b"/v1/orders/o-1/tracking/1"),
    ]
    app = _answering(201, body, first_headers)
    guarded = SecurityMiddleware(app, engine=scheme.engine)
    token = issue_credential(scheme.engine, "mtn-rw").token
    first = asyncio.run(_apost(guarded, token, [QUOTE], key="k-h"))
    again = asyncio.run(_apost(guarded, token, [QUOTE], key="k-h"))
    assert app.calls == [1]  # replayed, not run again
    assert _status(again) == [201] and _body(again) == _body(first)
    replayed = _headers(again)
    assert replayed[b"content-type"] == b"application/json"
    assert replayed[b"location"] == b"/v1/orders/o-1/tracking/1"
    assert replayed[b"content-length"] == str(len(body)).encode()
    assert replayed[b"idempotent-replayed"] == b"true"
    assert [k for k, _ in _start(again)["headers"]].count(b"content-type") == 1


def test_an_answer_that_is_not_text_is_not_kept(scheme: PaymentScheme) -> None:
    """A QR code's PNG under an Idempotency-Key was a 500 (the answer did not decode as text)
    after the image had been made; it is answered, not kept, and made again on a retry."""
    png = b"\x89PNG\r\n\x1a\n\x00\xff"
    app = _answering(200, png, [(b"content-type", b"image/png")])
    guarded = SecurityMiddleware(app, engine=scheme.engine)
    token = issue_credential(scheme.engine, "mtn-rw").token
    first = asyncio.run(_apost(guarded, token, [QUOTE], key="k-png"))
    again = asyncio.run(_apost(guarded, token, [QUOTE], key="k-png"))
    for sent in (first, again):
        assert _status(sent) == [200]
        assert b"".join(m["body"] for m in sent if m["type"] == "http.response.body") == png
    assert app.calls == [1, 1]
    with scheme.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM pay_idempotency").scalar() == 0


@pytest.mark.parametrize(
    ("status", "body", "media"),
    [
        (201, '{"orderId": "o-1", "code": "EXD"}', b"application/json"),
        (409, '{"code": "invalid_state", "detail": "x"}', b"application/problem+json"),
        (204, "", b"text/plain"),
    ],
)
def test_an_answer_stored_without_headers_is_replayed_with_its_media_inferred(
    scheme: PaymentScheme, status: int, body: str, media: bytes
) -> None:
    """Answers stored before migration 0010 have no headers: errors are problems, the rest
    JSON (not: any body with a ``code`` field is a problem)."""
    token = issue_credential(scheme.engine, "mtn-rw").token
    app = create_app(scheme)
    digest = hashlib.sha256(b"POST /v1/quotes\n" + QUOTE).hexdigest()
    with scheme.engine.begin() as conn:
        conn.execute(
            sa.insert(st.idempotency).values(
                caller="mtn-rw",
                key="k-old",
                request_hash=digest,
                status_code=status,
                response=body,
                created_at=0,
                headers=None,
            )
        )
    again = asyncio.run(_apost(app, token, [QUOTE], key="k-old"))
    assert _status(again) == [status]
    assert _headers(again)[b"content-type"].split(b";")[0] == media


def test_migration_0010_goes_down_and_up(scheme: PaymentScheme) -> None:
    token = issue_credential(scheme.engine, "mtn-rw").token
    app = create_app(scheme)
    assert _status(_post(app, token, [QUOTE])) == [201]
    downgrade(scheme.engine, "0009_participants_version")
    columns = {c["name"] for c in sa.inspect(scheme.engine).get_columns("pay_idempotency")}
    assert "headers" not in columns
    upgrade(scheme.engine)
    again = _post(create_app(scheme), token, [QUOTE])  # kept through both, replayed
    assert _status(again) == [201]
    assert _headers(again)[b"content-type"] == b"application/json"


def test_a_retry_while_the_answer_is_being_stored_is_refused(
    scheme: PaymentScheme, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim lasts until the answer is committed: a retry between the operation's end
    and the answer's commit would run the operation again."""
    storing, go = threading.Event(), threading.Event()
    store = SecurityMiddleware._store

    def paused(self: SecurityMiddleware, *args: Any) -> None:
        storing.set()
        assert go.wait(30)
        store(self, *args)

    monkeypatch.setattr(SecurityMiddleware, "_store", paused)
    token = issue_credential(scheme.engine, "mtn-rw").token
    app = create_app(scheme)

    async def scenario() -> tuple[list[Any], list[Any]]:
        first = asyncio.ensure_future(_apost(app, token, [QUOTE], key="k-store"))
        assert await asyncio.to_thread(storing.wait, 30)
        retry = await _apost(app, token, [QUOTE], key="k-store")
        go.set()
        return await first, retry

    first, retry = asyncio.run(scenario())
    assert _status(first) == [201]
    assert _status(retry) == [409] and _body(retry)["code"] == "request_in_progress"
    assert _body(retry)["errorCode"] == "3106"


def test_a_forked_child_holds_none_of_its_parents_claims(tmp_path: Path) -> None:
    shared, in_process = KeyClaims(tmp_path / "c.lock"), KeyClaims(None)
    assert shared.claim("mtn-rw", "k") and in_process.claim("mtn-rw", "k")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: another worker, as far as the lock file is concerned
        try:
            seen = (in_process.claim("mtn-rw", "k"), shared.claim("mtn-rw", "k"))
            os.write(write, repr(seen).encode())
        finally:
            os._exit(0)
    os.close(write)
    try:
        seen = os.read(read, 100).decode()
        os.waitpid(pid, 0)
    finally:
        os.close(read)
    # not the parent's request in the child; the parent's lock, held as another worker's
    assert seen == "(True, False)"
    other = KeyClaims(tmp_path / "c.lock")
    try:
        assert not other.claim("mtn-rw", "k")  # the child's exit did not end the parent's
        shared.release("mtn-rw", "k")
        assert other.claim("mtn-rw", "k")
    finally:
        other.close()
        shared.close()


def test_an_answer_goes_with_the_next_group_commit_when_one_is_coming(
    scheme: PaymentScheme, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a member of its own (a turn of the write lock, a savepoint): queued into the batch
    a member has open, durable with its COMMIT, and only then is it answered."""
    (security,) = [m for m in create_app(scheme).user_middleware if m.cls is SecurityMiddleware]
    assert security.kwargs["write_with_next"] == scheme.write_with_next  # what the API uses
    alone: list[Any] = []
    monkeypatch.setattr(SecurityMiddleware, "_store", lambda self, values: alone.append(values))
    guarded = SecurityMiddleware(
        _answering(201, b"{}", []), engine=scheme.engine, write_with_next=scheme.write_with_next
    )
    values = ("mtn-rw", "k-next", "0" * 64, 201, "{}", 0, "[]")
    holding, go = threading.Event(), threading.Event()

    def member() -> None:
        with scheme.unit_of_work():
            holding.set()
            assert go.wait(30)

    async def scenario() -> tuple[bool, bool]:
        queued = asyncio.ensure_future(guarded._stored_with_next(values))
        await asyncio.sleep(0.1)
        early = queued.done()
        go.set()
        return early, await queued

    group = scheme._group
    assert group is not None
    before = group.commits
    thread = threading.Thread(target=member)
    thread.start()
    try:
        assert holding.wait(30)
        early, stored = asyncio.run(scenario())
    finally:
        go.set()
        thread.join(30)
    assert not early and stored and alone == []
    assert group.commits == before + 1  # the member's COMMIT, the answer in it
    with scheme.engine.connect() as conn:
        row = conn.exec_driver_sql(
            "SELECT status_code FROM pay_idempotency WHERE key = 'k-next'"
        ).one()
    assert row[0] == 201
    # nothing open now: written on its own
    assert not asyncio.run(guarded._stored_with_next((*values[:1], "k-2", *values[2:])))


def test_an_answer_never_told_of_is_written_on_its_own(
    scheme: PaymentScheme, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A backstop: should a queued answer never be told of, its request does not hang (its
    key claimed for ever)."""
    monkeypatch.setattr(security_module, "ANSWER_WITH_NEXT_S", 0.1)
    guarded = SecurityMiddleware(
        _answering(201, b"{}", []), engine=scheme.engine, write_with_next=lambda w, d: True
    )
    values = ("mtn-rw", "k-lost", "0" * 64, 201, "{}", 0, "[]")
    with caplog.at_level(logging.ERROR):
        assert not asyncio.run(guarded._stored_with_next(values))
    assert any("was not told" in r.message for r in caplog.records)


def _counting_post(
    app: Any, token: str, chunks: list[bytes], extra: dict[str, str]
) -> tuple[list[Any], list[int]]:
    """POST /v1/quotes, the body in ``chunks``; what was sent and how many chunks were read."""
    read = [0]

    async def receive() -> dict[str, Any]:
        read[0] += 1
        i = read[0] - 1
        if i >= len(chunks):
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": chunks[i], "more_body": i < len(chunks) - 1}

    sent: list[Any] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(_quote_scope(token, "k-big", extra), receive, send))
    return sent, read


def _quotes_and_answers(scheme: PaymentScheme) -> tuple[int, int]:
    with scheme.engine.connect() as conn:
        quotes = conn.exec_driver_sql("SELECT count(*) FROM pay_quotes").scalar()
        answers = conn.exec_driver_sql("SELECT count(*) FROM pay_idempotency").scalar()
    return int(quotes or 0), int(answers or 0)


def test_a_body_past_the_limit_is_refused_before_the_rest_is_read(
    scheme: PaymentScheme, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(security_module, "BODY_MAX_BYTES", 100)
    app = create_app(scheme)
    token = issue_credential(scheme.engine, "mtn-rw").token
    before = _quotes_and_answers(scheme)
    pieces = [QUOTE[i : i + 60] for i in range(0, len(QUOTE), 60)]
    assert len(pieces) >= 4
    sent, read = _counting_post(app, token, pieces, {})
    start = _start(sent)
    assert start["status"] == 413
    assert (b"connection", b"close") in start["headers"]
    problem = _body(sent)
    assert problem["code"] == "payload_too_large" and "100 bytes" in problem["detail"]
    assert read == [2]  # the chunk that passed the limit was the last one read
    assert _quotes_and_answers(scheme) == before
    # declared too long: refused at its first part, before the rest is read
    sent, read = _counting_post(app, token, pieces, {"content-length": "101"})
    assert _start(sent)["status"] == 413 and read == [1]
    # at the limit, it is read and answered as usual (here: the quote is made)
    monkeypatch.setattr(security_module, "BODY_MAX_BYTES", len(QUOTE))
    sent, _ = _counting_post(app, token, pieces, {"content-length": str(len(QUOTE))})
    assert _start(sent)["status"] == 201
    assert _quotes_and_answers(scheme) == (before[0] + 1, before[1] + 1)


def test_the_largest_bulk_a_caller_may_send_fits_under_the_body_limit() -> None:
    from entrepot.entrypoints.api.asgi import BODY_MAX_BYTES
    from entrepot.payments.bulk import BULK_ITEMS_MAX

    longest = "\u00e9" * 64  # escaped by json.dumps: six bytes a character
    item = {
        "transferId": "t" * 64,
        "payee": {"partyIdType": "BUSINESS", "partyIdentifier": longest},
        "amount": {"amount": "9" * 32, "currency": "RWF"},
    }
    body = {"bulkId": "b" * 64, "transfers": [item] * BULK_ITEMS_MAX}
    size = len(json.dumps(body, indent=4).encode())
    assert size < BODY_MAX_BYTES / 2, size
