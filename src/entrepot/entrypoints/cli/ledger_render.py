"""Ledger records as JSON documents and Rich tables. Ids are decimal strings in JSON (a u128
does not fit a JavaScript number); amounts are decimal strings in the ledger's currency, with
the exact minor units alongside."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from entrepot.kernel.clock import ns_to_datetime
from entrepot.kernel.money import Currency, format_amount
from entrepot.ledger import Account, AccountFlags, Transfer, TransferFlags

AMOUNT_STYLE = {"justify": "right", "no_wrap": True}


def flag_names(flags: int, kind: type[AccountFlags] | type[TransferFlags]) -> list[str]:
    return [f.name.lower() for f in kind if f.value and flags & f.value and f.name]


def iso(ts_ns: int) -> str:
    if not ts_ns:
        return ""
    moment = ns_to_datetime(ts_ns)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ns % 1_000_000_000:09d}Z"


def money_text(amount_minor: int, currency: Currency) -> str:
    return f"{format_amount(amount_minor, currency)} {currency.code}"


def id_text(value: int) -> str:
    return str(value)


def amount_json(amount_minor: int, currency: Currency) -> dict[str, Any]:
    return {"amount": format_amount(amount_minor, currency), "amount_minor": amount_minor}


def credit_normal(account: Account) -> bool:
    """Balances read as credits minus debits unless the account is asset-like (may not hold
    more credits than debits) -- the same rule as Ledger.statement."""
    return not account.flags & AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS


def balances(account: Account) -> dict[str, int]:
    """The four balances plus posted and available balance, in minor units."""
    a = account
    if credit_normal(a):
        posted = a.credits_posted - a.debits_posted
        available = posted - a.debits_pending
    else:
        posted = a.debits_posted - a.credits_posted
        available = posted - a.credits_pending
    return {
        "debits_pending": a.debits_pending,
        "debits_posted": a.debits_posted,
        "credits_pending": a.credits_pending,
        "credits_posted": a.credits_posted,
        "posted_balance": posted,
        "available_balance": available,
    }


def account_json(account: Account, currency: Currency) -> dict[str, Any]:
    a = account
    return {
        "id": id_text(a.id),
        "ledger": a.ledger,
        "currency": currency.code,
        "code": a.code,
        "flags": flag_names(a.flags, AccountFlags),
        "user_data_128": id_text(a.user_data_128),
        "user_data_64": a.user_data_64,
        "user_data_32": a.user_data_32,
        "normal_balance": "credit" if credit_normal(a) else "debit",
        "balances": {k: format_amount(v, currency) for k, v in balances(a).items()},
        "balances_minor": balances(a),
        "timestamp": a.timestamp,
        "created_at": iso(a.timestamp),
    }


def transfer_json(t: Transfer, currency: Currency | None) -> dict[str, Any]:
    amount: dict[str, Any] = (
        amount_json(t.amount, currency) if currency else {"amount": None, "amount_minor": t.amount}
    )
    return {
        "id": id_text(t.id),
        "debit_account_id": id_text(t.debit_account_id),
        "credit_account_id": id_text(t.credit_account_id),
        **amount,
        "currency": currency.code if currency else None,
        "ledger": t.ledger,
        "code": t.code,
        "flags": flag_names(t.flags, TransferFlags),
        "pending_id": id_text(t.pending_id) if t.pending_id else None,
        "timeout_s": t.timeout,
        "user_data_128": id_text(t.user_data_128),
        "user_data_64": t.user_data_64,
        "user_data_32": t.user_data_32,
        "timestamp": t.timestamp,
        "created_at": iso(t.timestamp),
    }


def key_value_table(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", no_wrap=True)
    for key, value in rows:
        table.add_row(key, value)
    return table


def balance_table(account: Account, currency: Currency) -> Table:
    b = balances(account)
    normal = "credit" if credit_normal(account) else "debit"
    rows = [
        ("account", id_text(account.id)),
        ("ledger", f"{account.ledger} ({currency.code})"),
        ("code", str(account.code)),
        ("flags", ", ".join(flag_names(account.flags, AccountFlags)) or "-"),
    ]
    rows += [(k.replace("_", " "), money_text(v, currency)) for k, v in b.items()]
    table = key_value_table(f"Balance ({normal}-normal)", rows)
    table.columns[1].justify = "right"
    return table


def transfer_table(t: Transfer, currency: Currency | None) -> Table:
    doc = transfer_json(t, currency)
    amount = money_text(t.amount, currency) if currency else f"{t.amount} (minor units)"
    rows = [
        ("id", doc["id"]),
        ("debit account", doc["debit_account_id"]),
        ("credit account", doc["credit_account_id"]),
        ("amount", amount),
        ("ledger", str(t.ledger)),
        ("code", str(t.code)),
        ("flags", ", ".join(doc["flags"]) or "-"),
    ]
    if t.pending_id:
        rows.append(("pending id", doc["pending_id"]))
    if t.timeout:
        rows.append(("timeout", f"{t.timeout} s"))
    if t.user_data_128:
        rows.append(("user_data_128", doc["user_data_128"]))
    rows.append(("created at", doc["created_at"]))
    return key_value_table("Transfer", rows)
