"""``entrepot payments ...``: every payment-scheme use case from the command line.

``--as PARTICIPANT`` names the acting participant (the CLI runs with operator rights on the
local database; the HTTP API is where participants authenticate). Amounts are decimal strings
in their currency. ``--json`` prints one JSON document.
"""

from __future__ import annotations

import csv
import dataclasses
import enum
import functools
import os
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer

from entrepot.entrypoints.api.deadlines import DEFAULT_EVERY_S
from entrepot.entrypoints.cli.keyed import IdempotencyKey, run_once
from entrepot.entrypoints.cli.output import (
    EXIT_FAILURE,
    bad_input,
    emit_json,
    err,
    exit_with,
    guard,
    open_app,
    out,
)
from entrepot.kernel.clock import iso_utc, parse_time
from entrepot.kernel.errors import InvalidInput
from entrepot.kernel.money import (
    InvalidAmount,
    InvalidRate,
    format_amount,
    get_currency,
    parse_amount,
    parse_rate_text,
)
from entrepot.payments import (
    SCHEME,
    AliasType,
    ParticipantKind,
    PaymentScheme,
    TransferState,
    iso20022,
    messages,
    qr,
)
from entrepot.payments.aliases import normalise_alias
from entrepot.payments.bulk import BulkItem, bulk_transfers
from entrepot.payments.credentials import (
    issue_credential,
    list_credentials,
    revoke_credential,
)
from entrepot.payments.errors import InvalidPaymentInput
from entrepot.payments.model import Escrow
from entrepot.payments.rate_limits import (
    clear_rate_limit,
    held_limit,
    rate_limit_of,
    set_rate_limit,
)
from entrepot.payments.services import ID_PATTERN, QUOTE_TTL_S, TRANSFER_TTL_S

app = typer.Typer(
    help="The payment scheme: participants, aliases, quotes, transfers, QR, "
    "escrow, settlement, ISO 20022.",
    no_args_is_help=True,
)
As = Annotated[str, typer.Option("--as", help="Acting participant id.")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
Key = IdempotencyKey


def _plain_field(name: str, value: Any) -> Any:
    """A field's value as ``_plain`` writes it; a ledger account id (``*_account``: a
    participant's position and settlement accounts, 128 bits) as a string: read by jq or
    JavaScript, as a double, the bare number came out rounded (1.719956414129083e+38),
    another account's id. The ledger commands print ids as strings for the same reason."""
    if name.endswith("_account") and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _plain(value)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _plain_field(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)
        }
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    return value


def _show(value: Any, as_json: bool) -> None:
    if as_json:
        emit_json(_plain(value))
    else:
        # a line longer than the terminal is left for it to wrap: Rich broke a QR's payload
        # or a token shown once over lines, and what was copied had a line break inside
        out().print(_plain(value), soft_wrap=True)


def _scheme() -> Any:
    return open_app()


def _once(ctx: typer.Context, a: Any, owner: str, run: Callable[[], Any], **kw: Any) -> Any:
    """``run()``'s result as printed (``_plain``), once per ``--idempotency-key`` of
    ``owner``'s (``keyed.run_once``): a re-run's is the first's. The request is the command
    and its arguments, ``--json`` aside (it chooses how the same result is printed)."""
    params = dict(ctx.params)
    key = params.pop("idempotency_key", None)
    params.pop("as_json", None)
    request = {"command": ctx.info_name, "arguments": params}
    return run_once(a.payments, key, owner, request, lambda: _plain(run()), **kw)


WINDOW_ID_MAX = 2**63 - 1


def _window_id(text: str) -> int:
    """A settlement window id as the API takes it: digits, no sign, point or leading zero,
    1..2^63-1 (what the database holds). Read as a plain int, ``1.0``, ``+1`` and ``01``
    named window 1, and ``window-settle`` settled it."""
    if re.fullmatch(r"[1-9][0-9]*", text) is None or int(text) > WINDOW_ID_MAX:
        raise bad_input(f"window id must be a whole number 1..2^63-1 in digits, not {text!r}")
    return int(text)


def _unsigned(text: str) -> str:
    """Amount text as the API takes it (``^[0-9]+(\\.[0-9]+)?$``): a leading '+' is refused,
    as the API refuses it, not read as the amount it signs (the kernel's ``parse_amount``,
    shared with the ledger commands, takes one). A '-' is left to the checks that refuse a
    negative amount by what it is."""
    if text.startswith("+"):
        raise InvalidAmount(
            f"invalid amount {text!r}: a sign is not accepted; write plain digits like "
            f"{text[1:]!r}",
            field="amount",
        )
    return text


def _amount(text: str, currency: str) -> int:
    """A payments command's amount: decimal text in its currency, unsigned, as the API's."""
    return parse_amount(_unsigned(text), currency)


@app.command("enable-currency")
@guard
def enable_currency(
    ctx: typer.Context, currency: str, idempotency_key: Key = None, as_json: Json = False
) -> None:
    """Open the scheme's ledger accounts for a currency."""
    with _scheme() as a:

        def run() -> Any:
            a.payments.enable_currency(currency)
            return {"currencies": a.payments.scheme_currencies()}

        _show(_once(ctx, a, SCHEME, run), as_json)


@app.command("participant-add")
@guard
def participant_add(
    ctx: typer.Context,
    participant_id: str,
    name: Annotated[str, typer.Option("--name")],
    kind: Annotated[str, typer.Option("--kind", help="|".join(k.value for k in ParticipantKind))],
    country: Annotated[str, typer.Option("--country")],
    currency: Annotated[list[str], typer.Option("--currency")] = [],  # noqa: B006
    bic: Annotated[str | None, typer.Option("--bic")] = None,
    idempotency_key: Key = None,
    as_json: Json = False,
) -> None:
    with _scheme() as a:
        _show(
            _once(
                ctx,
                a,
                SCHEME,
                lambda: a.payments.register_participant(
                    participant_id, name, kind, country, currency, bic=bic
                ),
            ),
            as_json,
        )


@app.command("participants")
@guard
def participants(as_json: Json = False) -> None:
    with _scheme() as a:
        _show(a.payments.list_participants(), as_json)


@app.command("participant")
@guard
def participant(participant_id: str, as_json: Json = False) -> None:
    with _scheme() as a:
        p = a.payments.get_participant(participant_id)
        _show({"participant": p, "endpoint": a.payments.get_endpoint(participant_id)}, as_json)


@app.command("currency-add")
@guard
def currency_add(
    ctx: typer.Context,
    participant_id: str,
    currency: str,
    idempotency_key: Key = None,
    as_json: Json = False,
) -> None:
    """Open a participant's position and settlement accounts in another currency."""
    with _scheme() as a:
        _show(
            _once(ctx, a, SCHEME, lambda: a.payments.add_currency(participant_id, currency)),
            as_json,
        )


@app.command("suspend")
@guard
def suspend(
    ctx: typer.Context,
    participant_id: str,
    reason: Annotated[
        str, typer.Option("--reason", help="Why: recorded and sent to the participant.")
    ],
    idempotency_key: Key = None,
    as_json: Json = False,
) -> None:
    """Suspend a participant: it can neither send nor receive until resumed."""
    with _scheme() as a:
        run = functools.partial(a.payments.set_active, participant_id, False, reason)
        _show(_once(ctx, a, SCHEME, run), as_json)


@app.command("resume")
@guard
def resume(
    ctx: typer.Context,
    participant_id: str,
    reason: Annotated[str | None, typer.Option("--reason", help="Recorded with it.")] = None,
    idempotency_key: Key = None,
    as_json: Json = False,
) -> None:
    """Let a suspended participant send and receive again."""
    with _scheme() as a:
        run = functools.partial(a.payments.set_active, participant_id, True, reason)
        _show(_once(ctx, a, SCHEME, run), as_json)


@app.command("status-history")
@guard
def status_history(participant_id: str, caller: As = "scheme", as_json: Json = False) -> None:
    """Whether a participant is active now, and each suspension and resumption of it, oldest
    first, with the reason (as GET /v1/participants/{id}/statusHistory answers: one read)."""
    with _scheme() as a:
        participant, changes = a.payments.status_with_history(caller, participant_id)
        _show(
            {"participant_id": participant_id, "active": participant.active, "changes": changes},
            as_json,
        )


@app.command("deposit")
@guard
def deposit(
    ctx: typer.Context,
    participant_id: str,
    amount: str,
    currency: str,
    deposit_id: str,
    idempotency_key: Key = None,
    as_json: Json = False,
) -> None:
    """Central bank money into a participant's settlement account."""
    with _scheme() as a:
        minor = _amount(amount, currency)

        def run() -> Any:
            a.payments.deposit(participant_id, currency, minor, deposit_id)
            return _liquidity(a.payments, participant_id, currency)

        _show(_once(ctx, a, SCHEME, run), as_json)


@app.command("cap")
@guard
def cap(
    ctx: typer.Context,
    participant_id: str,
    amount: str,
    currency: str,
    idempotency_key: Key = None,
    as_json: Json = False,
) -> None:
    """Set a participant's net debit cap in a currency."""
    with _scheme() as a:
        minor = _amount(amount, currency)

        def run() -> Any:
            a.payments.set_net_debit_cap(participant_id, currency, minor)
            return _liquidity(a.payments, participant_id, currency)

        _show(_once(ctx, a, SCHEME, run), as_json)


@app.command("liquidity")
@guard
def liquidity(participant_id: str, currency: str, as_json: Json = False) -> None:
    with _scheme() as a:
        _show(_liquidity(a.payments, participant_id, currency), as_json)


@app.command("metrics")
@guard
def metrics(as_json: Json = False) -> None:
    """The scheme's state in Prometheus' text format, as GET /v1/metrics answers the
    operator (for node_exporter's textfile collector: redirect it to a .prom file); --json:
    the same figures as one JSON document (minor units, ages in seconds)."""
    from entrepot.entrypoints.api.metrics import prometheus_text
    from entrepot.payments.monitoring import scheme_snapshot

    with _scheme() as a:
        snapshot = scheme_snapshot(a.payments)
    if as_json:
        figures = _plain(snapshot)
        for shown, position in zip(figures["positions"], snapshot.positions, strict=True):
            # entrepot_net_debit_cap_used_ratio of the text: None without a cap
            shown["net_debit_cap_used_ratio"] = position.cap_used
        _show(figures, True)
        return
    typer.echo(prometheus_text(snapshot).decode(), nl=False)


@app.command("fees")
@guard
def fees(
    currency: Annotated[
        str | None, typer.Option("--currency", help="Only this currency's rule (e.g. USD).")
    ] = None,
    as_json: Json = False,
) -> None:
    """The scheme's fee schedule (ENTREPOT_FEE_SCHEDULE; default 30 basis points): basis
    points of the amount sent, plus a fixed amount, within a minimum and maximum, per
    currency; as GET /v1/scheme/fees[/{currency}] answers it."""
    from entrepot.entrypoints.api import convert

    code = None if currency is None else get_currency(currency).code
    with _scheme() as a:
        schedule = a.payments.fees
        shown = convert.fee_schedule(schedule) if code is None else convert.fee_rule(schedule, code)
    _show(shown.model_dump(), as_json)


def _money(minor: int, currency: str) -> dict[str, Any]:
    """An amount as the API answers it (schemas.MoneyOut)."""
    return {"amount": format_amount(minor, currency), "currency": currency, "minor": minor}


#: The scheme's liquidity figures under the API's names (schemas.LiquidityOut).
_LIQUIDITY_NAMES = {
    "settlementBalance": "settlement_balance_minor",
    "netDebitCap": "net_debit_cap_minor",
    "positionAvailable": "position_available_minor",
    "positionReserved": "position_reserved_minor",
    "netPosition": "net_position_minor",
}


def _liquidity(scheme: PaymentScheme, participant_id: str, currency: str) -> dict[str, Any]:
    """A participant's liquidity in one currency, in the shape GET /v1/.../liquidity answers
    (a code that is no currency is unknown_currency, bad input, before the participant's)."""
    get_currency(currency)
    figures = scheme.liquidity(participant_id, currency)
    return {
        "participantId": participant_id,
        "currency": currency,
        **{name: _money(figures[key], currency) for name, key in _LIQUIDITY_NAMES.items()},
    }


@app.command("credentials")
@guard
def credentials(
    ctx: typer.Context,
    participant_id: str,
    public_key: Annotated[str | None, typer.Option("--public-key")] = None,
    idempotency_key: Key = None,
    as_json: Json = False,
) -> None:
    """Issue API credentials (the secret is shown once; only its hash is stored)."""
    with _scheme() as a:

        def run() -> Any:
            issued = issue_credential(a.engine, participant_id, public_key_b64=public_key)
            return {
                "participant": participant_id,
                "key_id": issued.key_id,
                "secret": issued.secret,
                "token": issued.token,
            }

        _show(_once(ctx, a, SCHEME, run, not_replayable=_issued), as_json)


def _issued(shown: dict[str, Any]) -> str:
    """What a re-run of a keyed credentials run is told (kept instead of its secret, as the
    API's 409 ``not_replayable``): the credential issued, to revoke if its secret was lost."""
    return (
        f"not_replayable: this --idempotency-key issued credential {shown['key_id']}, whose "
        "secret is shown once and kept nowhere: it cannot be shown again, nor is another "
        f"issued under this key. Revoke {shown['key_id']} if its secret was lost, and issue "
        "another with a new key"
    )


@app.command("credentials-list")
@guard
def credentials_list(participant_id: str, as_json: Json = False) -> None:
    """A participant's credentials, revoked ones too (never their secrets)."""
    with _scheme() as a:
        a.payments.get_participant(participant_id)  # an unknown one is an error, not []
        _show([dataclasses.asdict(c) for c in list_credentials(a.engine, participant_id)], as_json)


@app.command("credentials-revoke")
@guard
def credentials_revoke(
    ctx: typer.Context, key_id: str, idempotency_key: Key = None, as_json: Json = False
) -> None:
    """Revoke a credential (a lost secret, a rotated key): refused from the next request on."""
    with _scheme() as a:
        _show(
            _once(ctx, a, SCHEME, lambda: dataclasses.asdict(revoke_credential(a.engine, key_id))),
            as_json,
        )


@app.command("rate-limit")
@guard
def rate_limit(
    participant_id: str,
    per_second: Annotated[
        float | None,
        typer.Option(
            "--per-second",
            help="give the participant its own limit: requests a second, across the workers",
        ),
    ] = None,
    burst: Annotated[
        int | None,
        typer.Option("--burst", help="requests at once within the rate (default: a second's)"),
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="back on the scheme's limit (ENTREPOT_RATE_LIMIT)")
    ] = False,
    as_json: Json = False,
) -> None:
    """The request rate limit a participant is held to; with --per-second, its own instead of
    the scheme's (every server's workers apply it within a second), --clear to
    drop it."""
    if clear and (per_second is not None or burst is not None):
        raise InvalidInput(
            "--clear drops the participant's own limit: give no --per-second or --burst with it",
            field="clear",
        )
    if burst is not None and per_second is None:
        raise InvalidInput("--burst is part of a limit: give --per-second too", field="burst")
    with _scheme() as a:
        if clear:
            clear_rate_limit(a.engine, participant_id)
            own = None
        elif per_second is not None:
            own = set_rate_limit(
                a.engine, participant_id, per_second, burst, actor=SCHEME, clock=a.payments.clock
            )
        else:
            own = rate_limit_of(a.engine, participant_id)
        rate = a.settings.rate_limit_per_s
        held = held_limit(own, (rate, a.settings.rate_burst) if rate is not None else None)
        shown: dict[str, Any] = {
            "participant_id": participant_id,
            "source": held.source,
            "requests_per_second": held.per_s,
            "burst": held.burst,
        }
        if own is not None:
            shown |= {"set_by": own.set_by, "set_at": iso_utc(own.set_at)}
        _show(shown, as_json)


@app.command("alias-add")
@guard
def alias_add(
    ctx: typer.Context,
    caller: As,
    alias_type: str,
    alias: str,
    name: Annotated[str, typer.Option("--name")],
    currency: Annotated[str, typer.Option("--currency")],
    idempotency_key: Key = None,
    as_json: Json = False,
) -> None:
    with _scheme() as a:
        run = functools.partial(
            a.payments.register_alias, caller, alias_type, alias, name, currency
        )
        _show(_once(ctx, a, caller, run), as_json)


@app.command("alias-remove")
@guard
def alias_remove(
    ctx: typer.Context,
    caller: As,
    alias_type: str,
    alias: str,
    idempotency_key: Key = None,
    as_json: Json = False,
) -> None:
    kind, value = normalise_alias(alias_type, alias)
    with _scheme() as a:

        def run() -> Any:
            a.payments.remove_alias(caller, kind, value)
            return {"removed": {"alias_type": kind.value, "alias": value}}

        _show(_once(ctx, a, caller, run), as_json)


@app.command("lookup")
@guard
def lookup(alias_type: str, alias: str, as_json: Json = False) -> None:
    """Who holds an alias, and whether its participant is active. A suspended participant's
    alias is shown, with a note that it receives nothing (a payer's lookup is refused)."""
    with _scheme() as a:
        party, participant = a.payments.lookup_party_and_participant(alias_type, alias)
    if not participant.active:
        err().print(
            f"note: participant {participant.id!r} is suspended: {party.alias_type.value} "
            f"{party.alias} receives no payment until it is resumed (a payer's lookup is "
            "refused participant_suspended)",
            soft_wrap=True,
        )
    _show({**_plain(party), "participant_active": participant.active}, as_json)


@app.command("fx-rate")
@guard
def fx_rate(
    ctx: typer.Context,
    caller: As,
    source: str,
    target: str,
    rate: str,
    spread_bps: Annotated[int, typer.Option("--spread-bps")] = 0,
    valid_s: Annotated[int, typer.Option("--valid-s")] = 3600,
    idempotency_key: Key = None,
    as_json: Json = False,
) -> None:
    try:
        value = parse_rate_text(rate)
    except InvalidRate as exc:
        raise bad_input(str(exc)) from None
    with _scheme() as a:

        def run() -> Any:
            fx = a.payments.post_fx_rate(caller, source, target, value, spread_bps, valid_s)
            # the rate less the spread: what the payer gets (the API's effectiveRate)
            return {**_plain(fx), "effective_rate": format(fx.effective_rate, "f")}

        shown = _once(ctx, a, caller, run)
    _show(shown, as_json)


@app.command("quote")
@guard
def quote(
    ctx: typer.Context,
    caller: As,
    quote_id: str,
    alias_type: str,
    alias: str,
    amount: str,
    amount_currency: str,
    source_currency: str,
    amount_type: Annotated[str, typer.Option("--type")] = "SEND",
    payer: Annotated[
        str | None,
        typer.Option("--payer", help="the payer party, TYPE:ALIAS (fraud screening uses it)"),
    ] = None,
    expiry: Annotated[
        int, typer.Option("--expiry", help="Seconds the quote stands (1..86400).")
    ] = QUOTE_TTL_S,
    idempotency_key: Key = None,
    as_json: Json = False,
) -> None:
    payer_alias_type, payer_alias = _payer(payer)
    get_currency(source_currency)  # a code that is none: unknown_currency, as the API's 422
    with _scheme() as a:
        minor = _amount(amount, amount_currency)
        run = functools.partial(
            a.payments.create_quote,
            caller,
            quote_id,
            alias_type,
            alias,
            minor,
            amount_type,
            source_currency,
            ttl_s=expiry,
            payer_alias_type=payer_alias_type,
            payer_alias=payer_alias,
            amount_currency=amount_currency,
        )
        _show(_once(ctx, a, caller, run), as_json)


def _payer(payer: str | None) -> tuple[str | None, str | None]:
    """--payer TYPE:ALIAS as the scheme takes it (an alias without a type is its to refuse)."""
    if payer is None:
        return None, None
    alias_type, _, alias = payer.partition(":")
    return alias_type or None, alias or None


@app.command("prepare")
@guard
def prepare(
    ctx: typer.Context,
    caller: As,
    transfer_id: str,
    quote_id: str,
    expiry: Annotated[
        int,
        typer.Option("--expiry", help="Seconds the payee has to commit or reject (1..86400)."),
    ] = TRANSFER_TTL_S,
    note: Annotated[
        str | None, typer.Option("--note", help="A note for the payee (200 characters at most).")
    ] = None,
    idempotency_key: Key = None,
    as_json: Json = False,
) -> None:
    with _scheme() as a:
        run = functools.partial(
            a.payments.prepare_transfer, caller, transfer_id, quote_id, ttl_s=expiry, note=note
        )
        _show(_once(ctx, a, caller, run), as_json)


@app.command("commit")
@guard
def commit(
    ctx: typer.Context,
    caller: As,
    transfer_id: str,
    idempotency_key: Key = None,
    as_json: Json = False,
) -> None:
    with _scheme() as a:
        run = functools.partial(a.payments.commit_transfer, caller, transfer_id)
        _show(_once(ctx, a, caller, run), as_json)


@app.command("reject")
@guard
def reject(
    ctx: typer.Context,
    caller: As,
    transfer_id: str,
    reason: str = "rejected by payee",
    idempotency_key: Key = None,
    as_json: Json = False,
) -> None:
    with _scheme() as a:
        run = functools.partial(a.payments.reject_transfer, caller, transfer_id, reason)
        _show(_once(ctx, a, caller, run), as_json)


@app.command("transfer")
@guard
def transfer(caller: As, transfer_id: str, as_json: Json = False) -> None:
    with _scheme() as a:
        _show(a.payments.get_transfer(caller, transfer_id), as_json)


@app.command("transfers")
@guard
def transfers(
    caller: As,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 100,
    after: Annotated[
        str | None, typer.Option("--after", help="A transfer id: the next page.")
    ] = None,
    as_json: Json = False,
) -> None:
    """The participant's transfers (as payer or payee), in the order they were written,
    ``limit`` at a time: ``next`` is
    the ``--after`` of the next page (null on the last), as GET /v1/transfers answers."""
    if after is not None and not 1 <= len(after) <= 64:
        raise bad_input(f"--after must be a transfer id, 1-64 characters, not {after!r}")
    with _scheme() as a:
        a.payments.get_participant(caller)  # an unknown one is an error, not an empty list
        page = a.payments.list_transfers(caller, limit, after)
    _show({"transfers": page, "next": page[-1].id if len(page) == limit else None}, as_json)


@app.command("review")
@guard
def review(
    ctx: typer.Context,
    transfer_id: str,
    approve: Annotated[bool, typer.Option("--approve/--reject", help="Release or abort it.")],
    reason: Annotated[str, typer.Option("--reason", help="Why, for the record.")],
    reviewer_id: Annotated[
        str | None,
        typer.Option(
            "--reviewer-id",
            help="Who decided (a staff id): the verdict the decision log keeps names them.",
        ),
    ] = None,
    idempotency_key: Key = None,
    as_json: Json = False,
) -> None:
    """The scheme's reviewer decides a transfer screening put on HOLD: released to the payee
    (--approve) or aborted (--reject), with the reason recorded."""
    with _scheme() as a:
        run = functools.partial(
            a.payments.review_hold, SCHEME, transfer_id, approve, reason, reviewer_id=reviewer_id
        )
        _show(_once(ctx, a, SCHEME, run), as_json)


@app.command("quote-show")
@guard
def quote_show(caller: As, quote_id: str, as_json: Json = False) -> None:
    with _scheme() as a:
        _show(a.payments.get_quote(caller, quote_id), as_json)


@app.command("quote-accept")
@guard
def quote_accept(
    ctx: typer.Context,
    caller: As,
    quote_id: str,
    idempotency_key: Key = None,
    as_json: Json = False,
) -> None:
    """Accept a quote: its FX provider's liquidity is reserved until it expires."""
    with _scheme() as a:
        run = functools.partial(a.payments.accept_quote, caller, quote_id)
        _show(_once(ctx, a, caller, run), as_json)


@app.command("bulk")
@guard
def bulk(
    ctx: typer.Context,
    caller: As,
    bulk_id: str,
    currency: str,
    file: Annotated[
        Path,
        typer.Option(
            "--file", help="CSV: transfer_id,type,alias,amount (a header line of these is skipped)"
        ),
    ],
    idempotency_key: Key = None,
    as_json: Json = False,
) -> None:
    """Pay many payees in one currency at once (as POST /v1/transfers/bulk): bad input anywhere
    refuses the whole file, naming its line (exit 2, nothing paid); a payment that fails alone
    is rejected alone, the others paid, and the command exits 1, naming the first on stderr.
    With --idempotency-key the request is the file's payments, not its name."""
    items, lines = _bulk_items(file, currency)
    with _scheme() as a:

        def run() -> Any:
            try:
                results = bulk_transfers(a.payments, caller, bulk_id, currency, items)
            except InvalidInput as exc:
                raise _bulk_line_error(exc, file, items, lines) from None
            committed = sum(1 for r in results if r.state is TransferState.COMMITTED)
            return {
                "bulkId": bulk_id,
                "committed": committed,
                "rejected": len(results) - committed,
                "results": [
                    {"transferId": r.transfer_id, "state": r.state.value, "reason": r.reason}
                    for r in results
                ],
            }

        shown = _once(ctx, a, caller, run, extra={"items": _plain(items)})
    _show(shown, as_json)
    rejected = [r for r in shown["results"] if r["state"] != TransferState.COMMITTED.value]
    if rejected:  # as the ledger's batch commands: anything refused exits 1, named on stderr
        first = rejected[0]
        exit_with(
            f"{len(rejected)} of {len(shown['results'])} transfers rejected "
            f"(first: {first['transferId']}: {first['reason']})",
            EXIT_FAILURE,
        )


_BULK_COLUMNS = ("transfer_id", "type", "alias", "amount")


def _bulk_items(file: Path, currency: str) -> tuple[list[BulkItem], list[int]]:
    """The bulk's items and the line each starts on; a bad line is refused by its number."""
    get_currency(currency)
    items: list[BulkItem] = []
    lines: list[int] = []
    try:
        with file.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            line = 1
            for row in reader:
                start, line = line, reader.line_num + 1
                fields = [field.strip() for field in row]
                if not any(fields) or (
                    not items and [f.lower() for f in fields] == list(_BULK_COLUMNS)
                ):
                    continue
                where = f"{file}: line {start} ({fields[0]})"
                if len(fields) != len(_BULK_COLUMNS):
                    raise bad_input(
                        f"{where}: expected {len(_BULK_COLUMNS)} fields "
                        f"({','.join(_BULK_COLUMNS)}), got {len(fields)}"
                    )
                tid, kind, alias, amount = fields
                try:
                    minor = _amount(amount, currency)
                except InvalidInput as exc:
                    raise bad_input(f"{where}: {exc.code}: {exc.detail}") from None
                items.append(BulkItem(tid, kind, alias, minor))
                lines.append(start)
    except FileNotFoundError:
        raise bad_input(f"--file: {file} does not exist") from None
    except IsADirectoryError:
        raise bad_input(f"--file: {file} is a directory, not a CSV file") from None
    except PermissionError:
        raise bad_input(f"--file: {file} may not be read (permission denied)") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise bad_input(f"--file: {file} is not a UTF-8 CSV file: {exc}") from None
    return items, lines


def _bulk_line_error(
    exc: InvalidInput, file: Path, items: list[BulkItem], lines: list[int]
) -> Exception:
    """The scheme's refusal of item n (``transfers[n] (transferId ...): ...``) by its line."""
    found = re.match(r"transfers\.(\d+)", exc.field or "")
    if found is None or int(found.group(1)) >= len(items):
        return exc
    n = int(found.group(1))
    detail = exc.detail.partition("): ")[2] or exc.detail
    return bad_input(f"{file}: line {lines[n]} ({items[n].transfer_id}): {exc.code}: {detail}")


@app.command("deadlines")
@guard
def deadlines(as_json: Json = False) -> None:
    """Expire quotes and transfers, act on escrow deadlines, append reviewers' verdicts the
    decision log did not take when they were given, and delete Idempotency-Key answers past
    their retention period (as ``entrepot serve``'s deadline pass)."""
    with _scheme() as a:
        _show(
            {
                **a.payments.process_deadlines(),
                **a.payments.log_pending_verdicts(),
                **a.payments.purge_idempotency(),
            },
            as_json,
        )


@app.command("qr-encode")
@guard
def qr_encode(
    till_id: str,
    merchant_name: str,
    city: str,
    country: str,
    currency: str,
    amount: Annotated[str | None, typer.Option("--amount")] = None,
    mcc: Annotated[str, typer.Option("--mcc")] = "5999",
    reference: Annotated[
        str | None,
        typer.Option("--reference", help="A reference label (an invoice, an order) for the payer."),
    ] = None,
    png: Annotated[Path | None, typer.Option("--png")] = None,
    svg: Annotated[Path | None, typer.Option("--svg")] = None,
    as_json: Json = False,
) -> None:
    """A merchant's EMVCo QR payload; --png/--svg also render it."""
    _, till = normalise_alias(AliasType.MERCHANT, till_id)  # one that can be registered
    with _scheme() as a:  # the participant the till is at, named on the QR (if registered)
        acquirer = a.payments.till_participant(till, currency)
    payload = qr.build_merchant_qr(
        acquirer=acquirer,
        merchant_alias=till,
        mcc=mcc,
        currency=currency,
        country=country,
        merchant_name=merchant_name,
        city=city,
        amount_minor=None if amount is None else _amount(amount, currency),
        reference_label=reference,
    )
    text = qr.encode(payload)
    if png:
        qr.render_png(text, str(png))
    if svg:
        qr.render_svg(text, str(svg))
    _show({"payload": text, "crc": text[-4:]}, as_json)


@app.command("qr-decode")
@guard
def qr_decode(payload: str, as_json: Json = False) -> None:
    _show(qr.shown(qr.decode(payload)), as_json)


@app.command("qr-pay")
@guard
def qr_pay(
    ctx: typer.Context,
    caller: As,
    payload: Annotated[str, typer.Argument(help="The merchant's QR payload (its text).")],
    quote_id: str,
    transfer_id: str,
    source_currency: Annotated[str, typer.Argument(help="The currency the payer pays in.")],
    amount: Annotated[
        str | None,
        typer.Option(
            "--amount",
            help="In the QR's currency: needed for a static QR; a dynamic one's must match. "
            "A convenience fee the QR states is added.",
        ),
    ] = None,
    tip: Annotated[
        str | None,
        typer.Option("--tip", help="In the QR's currency, where the QR asks for a tip."),
    ] = None,
    payer: Annotated[
        str | None,
        typer.Option("--payer", help="the payer party, TYPE:ALIAS (fraud screening uses it)"),
    ] = None,
    bill_number: Annotated[
        str | None,
        typer.Option("--bill-number", help="What the payer entered, where the QR asks (***)."),
    ] = None,
    reference_label: Annotated[
        str | None,
        typer.Option("--reference-label", help="What the payer entered, where the QR asks."),
    ] = None,
    terminal_label: Annotated[
        str | None,
        typer.Option("--terminal-label", help="What the payer entered, where the QR asks."),
    ] = None,
    idempotency_key: Key = None,
    as_json: Json = False,
) -> None:
    """Pay a merchant's QR in one call, as POST /v1/qr/pay: decode it, look up its till id,
    quote in the payer's currency and prepare; a refused payment leaves no quote behind."""
    payer_alias_type, payer_alias = _payer(payer)
    entered = {
        "bill_number": bill_number,
        "reference_label": reference_label,
        "terminal_label": terminal_label,
    }
    prompted = {k: v for k, v in entered.items() if v is not None}
    amount = None if amount is None else _unsigned(amount)
    tip = None if tip is None else _unsigned(tip)
    with _scheme() as a:

        def run() -> Any:
            scheme: PaymentScheme = a.payments
            party, q, t = scheme.pay_qr_payload(
                caller,
                quote_id,
                transfer_id,
                payload,
                source_currency,
                amount=amount,
                payer_alias_type=payer_alias_type,
                payer_alias=payer_alias,
                tip=tip,
                prompted=prompted,
            )
            return {"party": party, "quote": q, "transfer": t}

        _show(_once(ctx, a, caller, run), as_json)


@app.command("escrow-create")
@guard
def escrow_create(
    ctx: typer.Context,
    caller: As,
    escrow_id: str,
    payee: str,
    amount: str,
    currency: str,
    purpose: str,
    deadline_s: int,
    on_deadline: Annotated[str, typer.Option("--on-deadline")] = "refund",
    controller: Annotated[str | None, typer.Option("--controller")] = None,
    idempotency_key: Key = None,
    as_json: Json = False,
) -> None:
    if controller is not None and not ID_PATTERN.fullmatch(controller):
        # malformed: bad input, as the API's 422, not controller_not_allowed (a participant's)
        raise InvalidPaymentInput(
            f"controller {controller!r} must be a participant id, 1-64 letters, digits, '-' or '_'",
            field="controller",
        )
    with _scheme() as a:
        minor = _amount(amount, currency)

        def run() -> Any:
            return _escrow(
                a.payments.create_escrow(
                    caller,
                    escrow_id,
                    payee,
                    currency,
                    minor,
                    purpose,
                    deadline_s,
                    on_deadline,
                    controller,
                )
            )

        _show(_once(ctx, a, caller, run), as_json)


def _escrow(e: Escrow) -> dict[str, Any]:
    """An escrow with what it still holds (the API's ``held``), in minor units as the rest."""
    return {**_plain(e), "held_minor": e.held_minor}


@app.command("escrow-release")
@guard
def escrow_release(
    ctx: typer.Context,
    caller: As,
    escrow_id: str,
    amount: str,
    currency: str,
    idempotency_key: Key = None,
    as_json: Json = False,
) -> None:
    with _scheme() as a:
        minor = _amount(amount, currency)

        def run() -> Any:
            return _escrow(a.payments.release_escrow(caller, escrow_id, minor, currency=currency))

        _show(_once(ctx, a, caller, run), as_json)


@app.command("escrow-refund")
@guard
def escrow_refund(
    ctx: typer.Context,
    caller: As,
    escrow_id: str,
    amount: str,
    currency: str,
    idempotency_key: Key = None,
    as_json: Json = False,
) -> None:
    with _scheme() as a:
        minor = _amount(amount, currency)

        def run() -> Any:
            return _escrow(a.payments.refund_escrow(caller, escrow_id, minor, currency=currency))

        _show(_once(ctx, a, caller, run), as_json)


@app.command("escrow-split")
@guard
def escrow_split(
    ctx: typer.Context,
    caller: As,
    escrow_id: str,
    release: str,
    refund: str,
    currency: str,
    idempotency_key: Key = None,
    as_json: Json = False,
) -> None:
    """Release part to the payee and refund part to the payer in one decision."""
    with _scheme() as a:
        rel, ref = _amount(release, currency), _amount(refund, currency)

        def run() -> Any:
            return _escrow(a.payments.split_escrow(caller, escrow_id, rel, ref, currency=currency))

        _show(_once(ctx, a, caller, run), as_json)


@app.command("escrow")
@guard
def escrow(caller: As, escrow_id: str, as_json: Json = False) -> None:
    """An escrow (its payer, payee, controller or the operator): what it holds, and every
    decision on it."""
    with _scheme() as a:
        held, events = a.payments.escrow_history(caller, escrow_id)
        _show({"escrow": _escrow(held), "events": events}, as_json)


@app.command("window-close")
@guard
def window_close(ctx: typer.Context, idempotency_key: Key = None, as_json: Json = False) -> None:
    with _scheme() as a:

        def run() -> Any:
            w = a.payments.close_window(SCHEME)
            return {"window": w, "report": w.report()}

        _show(_once(ctx, a, SCHEME, run), as_json)


@app.command("window-settle")
@guard
def window_settle(
    ctx: typer.Context, window_id: str, idempotency_key: Key = None, as_json: Json = False
) -> None:
    number = _window_id(window_id)
    with _scheme() as a:

        def run() -> Any:
            w = a.payments.settle_window(SCHEME, number)
            return {"window": w, "report": w.report()}

        _show(_once(ctx, a, SCHEME, run), as_json)


@app.command("windows")
@guard
def windows(
    after: Annotated[
        int, typer.Option("--after", help="the windows after this id (0: from the first)")
    ] = 0,
    limit: Annotated[int, typer.Option("--limit", help="at most this many (1 to 1000)")] = 100,
    as_json: Json = False,
) -> None:
    """The settlement windows, oldest first, a page at a time (as GET /v1/settlementWindows),
    each with its report (gross, net, liquidity saved per currency), as the API lists them."""
    with _scheme() as a:
        listed = a.payments.list_windows(after, limit)
        _show([{**_plain(w), "report": w.report()} for w in listed], as_json)


@app.command("window")
@guard
def window(window_id: str, as_json: Json = False) -> None:
    """One settlement window: its positions and report."""
    number = _window_id(window_id)
    with _scheme() as a:
        w = a.payments.get_window(number)
        _show({"window": w, "report": w.report()}, as_json)


@app.command("iso20022")
@guard
def iso(
    message: Annotated[str, typer.Argument(help="pacs008|pacs002|camt053")],
    target: Annotated[str, typer.Argument(help="transfer id, or PARTICIPANT:CURRENCY")],
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="camt053: the period's start, included (default: all); the previous "
            "statement's ToDtTm chains them.",
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="camt053: the period's end, excluded: [since, to) (default: now, or where "
            "the ledger's history is final, if earlier).",
        ),
    ] = None,
    account: Annotated[
        str | None,
        typer.Option("--account", help="camt053: position (the default) or settlement."),
    ] = None,
    page: Annotated[
        str | None,
        typer.Option(
            "--page",
            help="camt053: which page (default 1): a period is served as pages of at most "
            f"{messages.STATEMENT_PAGE_ENTRIES} entries; LastPgInd marks the last.",
        ),
    ] = None,
) -> None:
    """Print an ISO 20022 message (XML) for a transfer or a participant's account."""
    if message in ("pacs008", "pacs002"):
        # a statement's options on a transfer's message were read, or not, and dropped
        options = (("--since", since), ("--to", until), ("--account", account), ("--page", page))
        given = [name for name, v in options if v is not None]
        if given:
            raise bad_input(
                f"{', '.join(given)}: camt053's options; {message} is one transfer's message"
            )
    if message == "camt053":
        participant, _, currency = target.partition(":")
        if not participant or not currency:
            raise bad_input(f"camt053: expected PARTICIPANT:CURRENCY, got {target!r}")
        get_currency(currency)  # a code that is none: unknown_currency, as the API's 422
    since_ns = 0 if since is None else _time(since, "--since")
    until_ns = None if until is None else _time(until, "--to")
    if until_ns is not None and since_ns > until_ns:
        raise bad_input("--since is after --to")
    with _scheme() as a:
        scheme: PaymentScheme = a.payments
        if message == "camt053":
            end_ns = scheme.clock.now_ns() if until_ns is None else until_ns
            if since_ns > end_ns:  # without --to, a --since in the future is refused alike
                raise bad_input("--since is after now (the default --to)")
            st = messages.account_statement(
                scheme,
                participant,
                currency,
                since_ns,
                end_ns,
                "position" if account is None else account,
                _page(page),
            )
            xml = iso20022.camt053(st)
        elif message in ("pacs008", "pacs002"):
            t = scheme.get_transfer(SCHEME, target)
            if message == "pacs002":
                xml = iso20022.pacs002(messages.status_report(scheme, t))
            else:
                xml = iso20022.pacs008(
                    messages.credit_transfer(scheme, t, messages.payee_party(scheme, t))
                )
        else:
            raise ValueError(f"unknown message {message!r}: use pacs008, pacs002 or camt053")
    # the bytes as made (the API's body, byte for byte: its MsgId is their digest): the
    # encoding their declaration names (UTF-8), whatever stdout's is; no second newline
    typer.echo(xml, nl=not xml.endswith(b"\n"))


def _page(text: str | None) -> int:
    """camt053's ``--page``: 1 to ``PAGE_NUMBER_MAX`` in ASCII digits (1 where not given)."""
    if text is None:
        return 1
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= iso20022.PAGE_NUMBER_MAX:
        raise bad_input(
            f"--page: a whole number from 1 to {iso20022.PAGE_NUMBER_MAX}, got {text!r}"
        )
    return int(text)


def _time(text: str, option: str) -> int:
    try:
        return parse_time(text)
    except ValueError as exc:
        raise bad_input(f"{option}: {exc}") from None


@guard
def serve(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            "--port",
            min=0,
            max=65535,
            help="TCP port, 0..65535 (0: one the kernel picks).",
        ),
    ] = 8000,  # unchecked, --workers 1's 70000 listened on 4464 (modulo 65536), silently
    workers: Annotated[int, typer.Option("--workers", min=1)] = 2,
    scheduling: Annotated[
        str,
        typer.Option(
            "--scheduling",
            help="Linux scheduling policy of the workers: batch (no wake-up preemption) or normal.",
        ),
    ] = "batch",
    deadlines_every: Annotated[
        float,
        typer.Option(
            "--deadlines-every",
            min=0,
            help="Seconds between passes over passed deadlines (quotes, transfers, escrows, "
            "trade orders, loans); 0: none (run the deadlines commands on a schedule instead).",
        ),
    ] = DEFAULT_EVERY_S,
) -> None:
    """Run the HTTP API (OpenAPI at /docs) under uvicorn with several workers, each with a
    listening socket of its own (connections spread over them), and act on deadlines as they
    pass."""
    from entrepot.entrypoints.api.deadlines import DeadlineRunner
    from entrepot.entrypoints.api.serve import SCHEDULING
    from entrepot.entrypoints.api.serve import serve as run_server

    if scheduling not in SCHEDULING:
        raise typer.BadParameter(
            f"{scheduling!r}: expected one of {', '.join(SCHEDULING)}", param_hint="--scheduling"
        )
    try:
        runner = DeadlineRunner(open_app, deadlines_every) if deadlines_every else None
    except ValueError as e:  # inf: refused, not a server whose deadlines never act
        raise typer.BadParameter(str(e), param_hint="--deadlines-every") from None
    frozen = _freeze_fee_schedule()
    try:
        with open_app():  # applies migrations once, before the workers start
            pass
        if runner is not None:
            runner.start()
        try:
            run_server(host=host, port=port, workers=workers, scheduling=scheduling)
        finally:
            if runner is not None:
                runner.stop()
            _last_out()
    finally:
        if frozen is not None:
            frozen.unlink(missing_ok=True)


def _last_out() -> None:
    """Once the workers (and the deadline runner) are gone: SQLite's WAL folded into the
    database and removed (:func:`entrepot.storage.engine.checkpoint_wal`)."""
    from entrepot.config import load_settings
    from entrepot.storage.engine import checkpoint_wal

    checkpoint_wal(load_settings().database_url)


def _freeze_fee_schedule() -> Path | None:
    """The fee schedule as the server starts, checked and copied, and ENTREPOT_FEE_SCHEDULE
    pointed at the copy for every worker (and one respawned later): one schedule for the
    server's life, whatever is done to the file meanwhile (docs/payments.md, Fee schedule)."""
    from entrepot.config import load_settings
    from entrepot.payments.fees import snapshot_fee_schedule

    settings = load_settings()
    if settings.fee_schedule is None:
        return None
    frozen = snapshot_fee_schedule(settings.fee_schedule, settings.home)
    os.environ["ENTREPOT_FEE_SCHEDULE"] = str(frozen)
    return frozen


@app.command("endpoint")
@guard
def endpoint(
    ctx: typer.Context, caller: As, url: str, idempotency_key: Key = None, as_json: Json = False
) -> None:
    """Set where the participant's notifications are POSTed (transfer reserved, committed...)."""
    with _scheme() as a:

        def run() -> Any:
            return {"participant": caller, "url": a.payments.set_endpoint(caller, url)}

        _show(_once(ctx, a, caller, run), as_json)


@app.command("scheme-public-key")
@guard
def scheme_public_key(as_json: Json = False) -> None:
    """The Ed25519 public key that signs the scheme's callbacks (their X-Signature), as
    GET /v1/scheme/public-key answers: participants check notifications with it. Made on
    first use, as `entrepot serve` and `deliver` do."""
    from entrepot.config import load_settings
    from entrepot.entrypoints.api.app import callback_key_path
    from entrepot.payments.notify import public_key_b64, signing_key

    key = signing_key(callback_key_path(load_settings().home))
    _show({"algorithm": "Ed25519", "publicKey": public_key_b64(key)}, as_json)


@app.command("notifications")
@guard
def notifications(
    caller: As,
    pending: Annotated[bool, typer.Option("--pending", help="Only undelivered ones.")] = False,
    after: Annotated[
        int, typer.Option("--after", help="A notification id: the next page starts after it.")
    ] = 0,
    limit: Annotated[int, typer.Option("--limit", help="At most this many (1..1000).")] = 100,
    as_json: Json = False,
) -> None:
    """The participant's notifications, oldest first, with their delivery state."""
    if not 0 <= after <= 2**63 - 1:
        raise bad_input(f"--after must be a notification id, 0..2^63-1, not {after}")
    if not 1 <= limit <= 1000:
        raise bad_input(f"--limit must be 1..1000, not {limit}")
    with _scheme() as a:
        a.payments.get_participant(caller)  # an unknown one is an error, not an empty list
        _show(
            a.payments.notifications(caller, pending_only=pending, after=after, limit=limit),
            as_json,
        )


#: The longest wait between delivery rounds: a day (an infinite one never delivers again)
DELIVER_INTERVAL_MAX_S = 86_400


@app.command("deliver")
@guard
def deliver(
    loop: Annotated[bool, typer.Option("--loop", help="Keep delivering until stopped.")] = False,
    interval_s: Annotated[
        float,
        typer.Option(
            "--interval",
            help=f"Seconds between rounds with nothing to deliver (0.1..{DELIVER_INTERVAL_MAX_S}).",
        ),
    ] = 1.0,
    as_json: Json = False,
) -> None:
    """Deliver due notifications to participants' endpoints (retrying failures with backoff).
    Run it with --loop beside `entrepot serve`."""
    from entrepot.entrypoints.api.app import callback_key_path
    from entrepot.payments.notify import CallbackAddresses, Dispatcher, http_post, signing_key

    if not 0.1 <= interval_s <= DELIVER_INTERVAL_MAX_S:  # nan and inf too: a sleep they end
        raise typer.BadParameter(
            f"{interval_s} is not 0.1..{DELIVER_INTERVAL_MAX_S} seconds", param_hint="--interval"
        )
    with _scheme() as a:
        key = signing_key(callback_key_path(a.settings.home))
        addresses = CallbackAddresses.parse(a.settings.callback_networks)
        dispatcher = Dispatcher(
            a.engine,
            a.clock,
            send=functools.partial(http_post, addresses=addresses),
            key=key,
            hosts=set(a.settings.callback_hosts),
        )
        if loop:
            dispatcher.run(interval_s)
            return
        _show(dispatcher.deliver_due(), as_json)
