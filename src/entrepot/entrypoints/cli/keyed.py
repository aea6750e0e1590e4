"""``--idempotency-key``: a state-changing ``payments`` command run once per key, as the API's
``Idempotency-Key`` runs a request once (``entrypoints/api/security.py``, ADR 0011).

The same mechanism, not a second one: the key's row in ``pay_idempotency`` under its owner
(the acting participant, ``--as``; the operator, ``scheme``, for the operator's commands, as
the API's caller is), the scheme's writes marking it in their own transaction through
``KEYED_REQUEST`` (``payments/keyed.py``: a marker claims the key, another run's marker
refuses the operation, ``KeyInUse``), and the answer filling in the marker. What the command
printed is the answer (its JSON document, or the refusal's line and exit code), so a re-run
with the key and the same arguments prints it again and does nothing. A request is the
command's name and its arguments (``--json`` aside: it only chooses how the answer is
printed); an API request is another request, so a key used by one is refused by the other
(the API's 409 ``duplicate_with_different_body``, the CLI's exit 2).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Annotated, Any

import typer

from entrepot.entrypoints.cli.output import EXIT_BAD_INPUT, EXIT_FAILURE, CliError, bad_input
from entrepot.kernel.errors import ConfigurationError, DomainError, InvalidInput
from entrepot.payments import PaymentScheme
from entrepot.payments import store as st
from entrepot.payments.keyed import ANSWER_LOST, KEY_LEN_MAX, KEYED_REQUEST, KeyedRequest
from entrepot.storage.engine import read_connection


def _checked(key: str | None) -> str | None:
    """The option's value, checked as it is parsed: a malformed key is a usage error (exit
    2) before the command opens anything."""
    if key is not None:
        try:
            check_key(key)
        except CliError as exc:
            raise typer.BadParameter(exc.message) from None
    return key


IdempotencyKey = Annotated[
    str | None,
    typer.Option(
        "--idempotency-key",
        callback=_checked,
        help="Run once per key: a re-run with the key and the same arguments prints the "
        "first run's result and changes nothing; with other arguments it is refused (exit "
        "2). Keys are the acting participant's (--as; the operator's, scheme, for the "
        "operator's commands), shared with its API Idempotency-Keys. Up to 128 printable "
        "ASCII characters.",
    ),
]


#: ``status_code`` of a command's answer: its result, or its refusal (``response`` holds the
#: line and exit code). Any but ``ANSWER_LOST`` (0) is an answer: the API reads no other.
_DONE = 200
_REFUSED = 400


def check_key(key: str) -> None:
    """Refuse a key the API would refuse (400 there), before anything is opened."""
    if not key:
        raise bad_input("a key must not be empty")
    if not (key.isascii() and key.isprintable()):
        raise bad_input("a key must be printable ASCII (space to ~)")
    if len(key) > KEY_LEN_MAX:
        raise bad_input(f"a key is at most {KEY_LEN_MAX} characters, not {len(key)}")


def _digest(request: dict[str, Any]) -> str:
    """The command and its arguments, in a form no API request's digest (a method, a path)
    takes: ``cli payments`` and the request as sorted JSON."""
    text = json.dumps(request, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(f"cli payments\n{text}".encode()).hexdigest()


def run_once(
    scheme: PaymentScheme,
    key: str | None,
    owner: str,
    request: dict[str, Any],
    run: Callable[[], Any],
    *,
    extra: dict[str, Any] | None = None,
    not_replayable: Callable[[Any], str] | None = None,
) -> Any:
    """``run()``'s result (a plain document) once per ``owner``'s ``key``: a re-run's is the
    first's, read back; without a key, ``run()``. ``request``: the command and its arguments
    (``{"command": ..., "arguments": {...}}``); ``extra``: what a file an argument names
    holds (its payments, not its name). ``not_replayable``: the refusal kept as the answer
    instead of a result that holds a secret (shown once, kept nowhere), naming what was made
    (as the API's 409)."""
    if key is None:
        return run()
    check_key(key)
    if extra is not None:
        request = {**request, "contents": extra}
    digest = _digest(request)
    with read_connection(scheme.engine) as conn:
        row = st.IDEMPOTENT_ANSWER.first(conn, (owner, key))
    if row is not None:
        return _replayed(owner, key, digest, row)
    keyed = KeyedRequest(owner, key, digest, fresh=True)
    token = KEYED_REQUEST.set(keyed)
    try:
        result = run()
    except (CliError, DomainError) as exc:
        KEYED_REQUEST.reset(token)
        if not keyed.progress.refused:  # another run's key (``KeyInUse``): not this answer
            _store(scheme, keyed, _REFUSED, _refusal(exc))
        raise
    except BaseException:
        KEYED_REQUEST.reset(token)
        raise
    KEYED_REQUEST.reset(token)
    if not_replayable is None:
        _store(scheme, keyed, _DONE, result)
    else:
        _store(scheme, keyed, _REFUSED, {"error": not_replayable(result), "exitCode": EXIT_FAILURE})
    return result


def _replayed(owner: str, key: str, digest: str, row: Any) -> Any:
    request_hash, status, text = row[0], int(row[1]), row[2]
    if request_hash != digest:
        raise bad_input(
            f"--idempotency-key {key!r} of {owner!r} was used with a different request "
            "(another command, other arguments, or an API request): nothing was done"
        )
    if status == ANSWER_LOST:
        # Done (its marker was written with it) and the process stopped before the answer
        # was: run again, a partial release would be paid twice, a commit refused.
        done = f" ({text})" if text else ""
        raise CliError(
            f"--idempotency-key {key!r}: the command was done{done} but its result was not "
            "recorded (the run stopped first): it is not run again; read what it acted on "
            "(escrow, transfer, window...) to see it",
            EXIT_FAILURE,
        )
    answer = json.loads(text)
    if status == _REFUSED:
        raise CliError(answer["error"], int(answer["exitCode"]))
    return answer["result"]


def _refusal(exc: CliError | DomainError) -> dict[str, Any]:
    """A refusal as ``output.guard`` prints it: its line and exit code."""
    if isinstance(exc, CliError):
        return {"error": exc.message, "exitCode": exc.exit_code}
    bad = isinstance(exc, InvalidInput | ConfigurationError)
    code = EXIT_BAD_INPUT if bad else EXIT_FAILURE
    return {"error": f"{exc.code}: {exc.detail}", "exitCode": code}


def _store(scheme: PaymentScheme, keyed: KeyedRequest, status: int, answer: Any) -> None:
    """The answer, filling in the marker the run wrote (its token), or where the key has no
    row (a run whose writes mark nothing, or none: a refusal)."""
    text = json.dumps(
        {"result": answer} if status == _DONE else answer, separators=(",", ":"), default=str
    )
    values: tuple[Any, ...] = (
        keyed.caller,
        keyed.key,
        keyed.digest,
        status,
        text,
        scheme.clock.now_ns(),
        None,
    )
    if keyed.progress.marked:
        store = st.STORE_OWN_IDEMPOTENT_ANSWER
        values = (*values, keyed.progress.token)
    else:
        store = st.STORE_NEW_IDEMPOTENT_ANSWER
    with scheme.unit_of_work() as uow:
        store.execute(uow.connection, values)


__all__ = ["KEY_LEN_MAX", "IdempotencyKey", "check_key", "run_once"]
