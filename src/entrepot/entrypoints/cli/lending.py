"""``entrepot risk lending ...``: merchant credit from the command line.

``--as PARTY`` names the acting party: a lender's participant id (``bank-rw``) or a merchant id
(the CLI runs with operator rights on the local database; each party still sees only its own
offers, loans and contests). Amounts on the command line are decimal text in their currency
(``1500.00``); in files and ``--json`` output they are integers of minor units. Decisions are
appended to ``$ENTREPOT_HOME/decisions/decisions.jsonl`` (``entrepot risk explain --id``).

Files:
- a policy (``policy-set --file``): a JSON object with the fields of ``CreditPolicy``
  (``lender_id`` defaults to ``--as``; rates as decimal text like ``"0.05"``);
- a merchant history (``offer --history``): a JSON object with the fields of
  ``MerchantHistory``; ``as_of_ns`` may be left out (now) or given as ``as_of`` (ISO 8601).
  Without it the history is built from the merchant's trade, as over HTTP.

Lending keeps no merchant registry, so the CLI vouches as the API does (``lending_standing``):
only a bank or wallet sets a policy; a merchant gets an offer, and the money of one, only if it
is on the platform and active, and only from its own bank.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from entrepot.bootstrap import App
from entrepot.entrypoints.cli.output import bad_input, emit_json, guard, open_app, out
from entrepot.entrypoints.lending_standing import (
    active_merchant,
    check_lender_kind,
    check_merchants_bank,
)
from entrepot.kernel.clock import ns_to_datetime, parse_time
from entrepot.kernel.money import format_amount, parse_amount
from entrepot.risk.decisions import JsonlSink
from entrepot.risk.lending import (
    Contest,
    CreditPolicy,
    InvalidHistory,
    Lending,
    Loan,
    MerchantHistory,
    NotYours,
    Offer,
    OfferState,
    ScorerMissing,
)
from entrepot.risk.lending.model import POLICY_VERSION_MAX

app = typer.Typer(
    help="Merchant credit: lenders' policies, offers, loans, repayment, delinquency, contests.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
As = Annotated[str, typer.Option("--as", help="Acting party: a lender or a merchant id.")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


@contextmanager
def _lending() -> Iterator[Lending]:
    with _platform() as (_, lending):
        yield lending


@contextmanager
def _platform() -> Iterator[tuple[App, Lending]]:
    """The app (its trade network and payment scheme vouch for merchants and lenders) and
    lending over the same database and decision log."""
    with open_app() as a:
        sink = JsonlSink(a.settings.home / "decisions")
        yield a, Lending(a.engine, a.ledger, a.clock, sink=sink)


def plain(value: Any) -> Any:
    """Dataclasses, enums and decimals as JSON-ready values (amounts stay minor units)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out_ = {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, Loan):
            out_["outstanding_minor"] = value.outstanding_minor
        return out_
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    return value


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise bad_input(f"cannot read {what} file {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise bad_input(f"{what} file {path} is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise bad_input(f"{what} file {path} must hold one JSON object")
    return raw


def _when(ts_ns: int | None) -> str:
    return "" if ts_ns is None else ns_to_datetime(ts_ns).strftime("%Y-%m-%d %H:%M:%SZ")


def _money(amount_minor: int, currency: str) -> str:
    return f"{format_amount(amount_minor, currency)} {currency}"


def _show_offer(offer: Offer, as_json: bool) -> None:
    if as_json:
        emit_json(plain(offer))
        return
    cur = offer.currency
    console = out()
    console.print(
        f"{offer.outcome.value} {offer.offer_id} ({offer.state.value}) by "
        f"{offer.lender_id} for {offer.merchant_id}"
    )
    if offer.principal_minor:
        console.print(
            f"principal {_money(offer.principal_minor, cur)}, fee "
            f"{_money(offer.fee_minor, cur)}, term {offer.terms.term_days} days, "
            f"expires {_when(offer.expires_at_ns)}"
        )
    console.print(f"decided by {offer.model_version}; decision log id {offer.log_id or '-'}")
    table = Table("rule", "reason", "value", "threshold", title="reasons")
    for r in offer.reasons:
        table.add_row(r.rule, r.text, r.value, r.threshold)
    console.print(table)


def _loans_table(loans: list[Loan]) -> Table:
    table = Table(
        "loan", "lender", "merchant", "state", "principal", "fee", "repaid", "outstanding", "due"
    )
    for ln in loans:
        cur = ln.currency
        table.add_row(
            ln.loan_id,
            ln.lender_id,
            ln.merchant_id,
            ln.state.value,
            _money(ln.principal_minor, cur),
            _money(ln.fee_minor, cur),
            _money(ln.repaid_minor, cur),
            _money(ln.outstanding_minor, cur),
            _when(ln.due_at_ns),
        )
    return table


def _contests_table(contests: list[Contest]) -> Table:
    table = Table(
        "decision",
        "merchant",
        "lender",
        "status",
        "contested",
        "statement",
        "reviewer",
        "review reason",
        "new offer",
    )
    for c in contests:
        table.add_row(
            c.offer_id,
            c.merchant_id,
            c.lender_id,
            c.status.value,
            _when(c.contested_at_ns),
            c.statement,
            c.reviewer_id or "",
            c.review_reason or "",
            c.new_offer_id or "",
        )
    return table


# --------------------------------------------------------------------------- policies
@app.command("policy-set")
@guard
def policy_set(
    caller: As,
    file: Annotated[Path, typer.Option("--file", help="JSON policy (fields of CreditPolicy)")],
    as_json: Json = False,
) -> None:
    """Set the acting lender's credit policy for a currency (a new version if it changed)."""
    raw = _read_json(file, "policy")
    raw.setdefault("lender_id", caller)
    policy = CreditPolicy.from_dict(raw)
    with _platform() as (a, lending):
        check_lender_kind(a.payments, caller)
        if policy.max_pd is not None and lending.scorer is None:
            # as over HTTP: stored, every offer of the lender was refused until it set another
            raise ScorerMissing(
                "max_pd needs a credit model and none is configured", field="max_pd"
            )
        stored = lending.set_policy(caller, policy)
    _show_policy(stored, as_json)


@app.command("policy-show")
@guard
def policy_show(
    lender: str,
    currency: str,
    version: Annotated[int | None, typer.Option("--version", min=1, max=POLICY_VERSION_MAX)] = None,
    as_json: Json = False,
) -> None:
    """A lender's current credit policy for a currency (or the version asked for)."""
    with _lending() as lending:
        _show_policy(lending.get_policy(lender, currency, version), as_json)


def _show_policy(policy: CreditPolicy, as_json: bool) -> None:
    if as_json:
        emit_json(policy.to_dict())
        return
    table = Table("field", "value", title=f"{policy.model_version} set {_when(policy.set_at_ns)}")
    for key, value in policy.rules_dict().items():
        shown = _money(value, policy.currency) if key.endswith("_minor") else str(value)
        table.add_row(key, shown)
    out().print(table)


# --------------------------------------------------------------------------- offers
def _history(path: Path, now_ns: int) -> MerchantHistory:
    raw = _read_json(path, "history")
    if "as_of" in raw:
        try:
            raw["as_of_ns"] = parse_time(str(raw.pop("as_of")))
        except ValueError as exc:
            raise bad_input(f"history file {path}: as_of: {exc}") from None
    raw.setdefault("as_of_ns", now_ns)
    return MerchantHistory.from_dict(raw)


@app.command("offer")
@guard
def offer(
    caller: As,
    offer_id: str,
    lender: Annotated[str, typer.Option("--lender", help="the merchant's own bank (participant)")],
    history: Annotated[
        Path | None,
        typer.Option("--history", help="JSON merchant history (default: built from its trade)"),
    ] = None,
    as_json: Json = False,
) -> None:
    """A merchant asks its own bank for credit: an offer or a decline, with reasons. The
    merchant (--as) must be on the platform and active, the lender its settlement bank, as over
    HTTP; its history is built from its trade over the complete months the bank's policy names
    (history_months) unless --history gives one (the operator's figures, for this merchant and
    its payout currency, of at most those months)."""
    with _platform() as (a, lending):
        given = None if history is None else _history(history, lending.clock.now_ns())
        if given is None:  # as over HTTP: a retry is answered the first decision
            replay = lending.asked_before(caller, offer_id, lender)
            if replay is not None:
                _show_offer(replay, as_json)
                return
        if given is not None and given.merchant_id != caller:
            raise NotYours(
                f"the history is of merchant {given.merchant_id}, not of {caller}: "
                "only the merchant asks for credit"
            )
        merchant = active_merchant(a.trade, caller)
        check_merchants_bank(merchant, lender)
        window = None
        if given is None:
            window = lending.get_policy(lender, merchant.settlement_currency).history_months
            found = a.trade.merchant_history(f"merchant:{caller}", caller, window)
        elif given.currency != merchant.settlement_currency:
            raise InvalidHistory(
                f"the history is in {given.currency}; merchant {caller} is paid out in "
                f"{merchant.settlement_currency}",
                field="currency",
            )
        else:
            found = given
        decided = lending.offer(caller, offer_id, lender, found, window=window)
    _show_offer(decided, as_json)


@app.command("show")
@guard
def show(caller: As, offer_id: str, as_json: Json = False) -> None:
    """An offer or decline with its reasons (the full data with --json)."""
    with _lending() as lending:
        _show_offer(lending.get_offer(caller, offer_id), as_json)


@app.command("offers")
@guard
def offers(
    caller: As,
    state: Annotated[str | None, typer.Option("--state")] = None,
    as_json: Json = False,
) -> None:
    """The acting party's offers and declines."""
    with _lending() as lending:
        found = lending.list_offers(caller, state=state)
    if as_json:
        emit_json(plain(found))
        return
    table = Table("offer", "outcome", "state", "lender", "merchant", "principal", "fee", "expires")
    for o in found:
        table.add_row(
            o.offer_id,
            o.outcome.value,
            o.state.value,
            o.lender_id,
            o.merchant_id,
            _money(o.principal_minor, o.currency),
            _money(o.fee_minor, o.currency),
            _when(o.expires_at_ns),
        )
    out().print(table)


@app.command("accept")
@guard
def accept(
    caller: As,
    offer_id: str,
    amount: Annotated[str | None, typer.Option("--amount", help="take less than offered")] = None,
    as_json: Json = False,
) -> None:
    """The merchant accepts an offer; the loan is disbursed through the ledger."""
    with _platform() as (a, lending):
        found = lending.get_offer(caller, offer_id)
        amount_minor = None if amount is None else parse_amount(amount, found.currency)
        if caller == found.merchant_id and found.state is not OfferState.ACCEPTED:
            active_merchant(a.trade, caller)  # a retry of an accepted offer reads its loan
        loan = lending.accept(caller, offer_id, amount_minor)
    _show_loans([loan], as_json, single=True)


# --------------------------------------------------------------------------- loans
def _show_loans(loans: list[Loan], as_json: bool, *, single: bool = False) -> None:
    if as_json:
        emit_json(plain(loans[0]) if single else plain(loans))
        return
    out().print(_loans_table(loans))


@app.command("loans")
@guard
def loans(
    caller: As,
    state: Annotated[str | None, typer.Option("--state")] = None,
    as_json: Json = False,
) -> None:
    """The acting party's loans, what each owes read from the ledger."""
    with _lending() as lending:
        found = lending.list_loans(caller, state=state)
    _show_loans(found, as_json)


@app.command("loan")
@guard
def loan(caller: As, loan_id: str, as_json: Json = False) -> None:
    """One loan with its state changes and repayments."""
    with _lending() as lending:
        found = lending.get_loan(caller, loan_id)
        events = lending.loan_events(caller, loan_id)
        paid = lending.repayments(caller, loan_id)
    if as_json:
        emit_json({**plain(found), "events": plain(events), "repayments": plain(paid)})
        return
    console = out()
    console.print(_loans_table([found]))
    table = Table("#", "when", "from", "to", "by", "reason", title="state changes")
    for e in events:
        table.add_row(
            str(e.seq),
            _when(e.at_ns),
            e.from_state.value if e.from_state else "",
            e.to_state.value,
            e.actor,
            e.reason,
        )
    console.print(table)
    table = Table("reference", "when", "source", "amount", title="repayments")
    for p in paid:
        table.add_row(p.reference, _when(p.at_ns), p.source, _money(p.amount_minor, found.currency))
    console.print(table)


@app.command("repay")
@guard
def repay(
    caller: As,
    loan_id: str,
    amount: str,
    reference: Annotated[str, typer.Option("--reference", help="idempotency key")],
    as_json: Json = False,
) -> None:
    """Record a repayment made outside payouts (at most what the loan owes)."""
    with _lending() as lending:
        currency = lending.get_loan(caller, loan_id).currency
        repaid = lending.repay(caller, loan_id, parse_amount(amount, currency), reference)
    _show_loans([repaid], as_json, single=True)


@app.command("withhold")
@guard
def withhold(
    merchant: str,
    currency: str,
    payout: str,
    reference: Annotated[str, typer.Option("--reference", help="the payout's id")],
    as_json: Json = False,
) -> None:
    """How much of a payout to the merchant is withheld for its loans (trade does this at each
    escrow release; here for operators and tests)."""
    with _lending() as lending:
        lending.withhold(merchant, currency, parse_amount(payout, currency), reference)
        detail = lending.get_withholding(merchant, reference)
    if as_json:
        emit_json(detail)
        return
    out().print(
        f"withheld {_money(detail['withheld_minor'], currency)} of "
        f"{_money(detail['payout_minor'], currency)}"
    )


@app.command("process-deadlines")
@guard
def process_deadlines(as_json: Json = False) -> None:
    """Expire offers, move loans to late, defaulted or back to current by the clock, and
    append credit decisions still waiting for the decision log."""
    with _lending() as lending:
        counts = {**lending.process_deadlines(), **lending.log_pending_decisions()}
    if as_json:
        emit_json(counts)
        return
    out().print(", ".join(f"{k}: {v}" for k, v in counts.items()))


@app.command("book")
@guard
def book(caller: As, currency: str, as_json: Json = False) -> None:
    """The acting lender's loan book in a currency, reconciled with the ledger."""
    with _lending() as lending:
        figures = lending.loan_book(caller, currency)
    if as_json:
        emit_json(figures)
        return
    table = Table("figure", "value", title=f"loan book of {caller} in {currency}")
    for key, value in figures.items():
        shown = _money(value, currency) if key.endswith("_minor") else str(value)
        table.add_row(key, shown)
    out().print(table)


# --------------------------------------------------------------------------- contests
@app.command("contest")
@guard
def contest(
    caller: As,
    offer_id: str,
    statement: Annotated[str, typer.Option("--statement", help="why the decision is wrong")],
    as_json: Json = False,
) -> None:
    """The merchant contests an offer or decline (once); a person at the lender reviews it."""
    with _lending() as lending:
        filed = lending.contest(caller, offer_id, statement)
    _show_contests([filed], as_json, single=True)


@app.command("contests")
@guard
def contests(
    caller: As,
    status: Annotated[str | None, typer.Option("--status", help="open|upheld|overturned")] = None,
    as_json: Json = False,
) -> None:
    """The acting lender's review queue, or a merchant's own contests."""
    with _lending() as lending:
        found = lending.list_contests(caller, status=status)
    _show_contests(found, as_json)


@app.command("review")
@guard
def review(
    caller: As,
    offer_id: str,
    reviewer: Annotated[str, typer.Option("--reviewer", help="the person who decides")],
    outcome: Annotated[str, typer.Option("--outcome", help="upheld|overturned")],
    reason: Annotated[str, typer.Option("--reason")],
    amount: Annotated[
        str | None, typer.Option("--amount", help="new principal when overturned")
    ] = None,
    as_json: Json = False,
) -> None:
    """A person at the lender records the outcome of a contest, with the reason."""
    with _lending() as lending:
        new_minor = None
        if amount is not None:
            new_minor = parse_amount(amount, lending.get_offer(caller, offer_id).currency)
        done = lending.review(
            caller, offer_id, reviewer, outcome, reason, new_principal_minor=new_minor
        )
    _show_contests([done], as_json, single=True)


def _show_contests(found: list[Contest], as_json: bool, *, single: bool = False) -> None:
    if as_json:
        emit_json(plain(found[0]) if single else plain(found))
        return
    out().print(_contests_table(found))
