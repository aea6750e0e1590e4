"""``entrepot ledger``: every ledger use case, one command each.

Writes print the ledger's result code: exit 0 for ``ok``/``exists``, 1 for any other result.
Amounts are decimal text in the ledger's currency (``--amount 12.50`` on a EUR ledger is 1250
cents); more fractional digits than the currency has is bad input (exit 2), never rounded.
"""

from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.table import Table

from entrepot.entrypoints.cli.ledger_input import (
    ACCOUNT_FLAG_NAMES,
    accounts_from_rows,
    chain_batches,
    choose_ledger,
    currency_of_ledger,
    id_or_new,
    ledger_number,
    parse_amount_text,
    parse_currency,
    parse_flags,
    parse_id_text,
    parse_time_text,
    read_csv,
    transfers_from_rows,
)
from entrepot.entrypoints.cli.ledger_render import (
    AMOUNT_STYLE,
    account_json,
    amount_json,
    balance_table,
    iso,
    money_text,
    transfer_json,
    transfer_table,
)
from entrepot.entrypoints.cli.output import (
    EXIT_FAILURE,
    bad_input,
    emit_json,
    error_line,
    guard,
    open_app,
    out,
)
from entrepot.entrypoints.cli.results import (
    is_success,
    report_account_results,
    report_one,
    report_transfer_results,
    submit_in_batches,
)
from entrepot.kernel.limits import QUERY_LIMIT_MAX, U16_MAX, U32_MAX, USER_DATA_64_MAX
from entrepot.kernel.money import Currency, format_amount, get_currency
from entrepot.ledger import (
    AMOUNT_FULL,
    TIME_MAX,
    Account,
    CreateTransferResult,
    Ledger,
    Transfer,
    TransferFlags,
)

app = typer.Typer(help="Double-entry accounts and transfers.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
CurrencyOption = Annotated[
    str | None, typer.Option("--currency", help="ISO 4217 code; its ledger is its numeric code.")
]
LedgerOption = Annotated[int | None, typer.Option("--ledger", help="Ledger number.")]
IdOption = Annotated[
    str | None, typer.Option("--id", help="Id (decimal, 0x-hex, 32 hex or UUID); default: new.")
]
CodeOption = Annotated[int, typer.Option("--code", help="Code (1..65535): what kind of thing.")]
UserData128 = Annotated[str | None, typer.Option("--user-data-128", help="An id to link to.")]
UserData64 = Annotated[int, typer.Option("--user-data-64")]
UserData32 = Annotated[int, typer.Option("--user-data-32")]
AccountArg = Annotated[str, typer.Argument(help="Account id.", show_default=False)]


def _check_code(code: int) -> int:
    if not 1 <= code <= U16_MAX:  # the ledger refuses 0 too (code_must_not_be_zero)
        raise bad_input(f"--code: {code} is outside 1..{U16_MAX}")
    return code


def _check_user_data(u64: int, u32: int) -> None:
    if not 0 <= u64 <= USER_DATA_64_MAX:
        raise bad_input(f"--user-data-64: {u64} is outside 0..{USER_DATA_64_MAX}")
    if not 0 <= u32 <= U32_MAX:
        raise bad_input(f"--user-data-32: {u32} is outside 0..{U32_MAX}")


def _user_data_128(text: str | None) -> int:
    return 0 if text is None else parse_id_text(text, "--user-data-128")


# ---------------------------------------------------------------------------------- ledgers
@app.command("define")
@guard
def define(
    currency: Annotated[str, typer.Option("--currency", help="ISO 4217 code, e.g. EUR.")],
    ledger: LedgerOption = None,
    name: Annotated[str, typer.Option("--name", help="Default: the currency's name.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Define a ledger (one currency each). Idempotent."""
    cur = parse_currency(currency)
    number = ledger_number(cur) if ledger is None else ledger
    with open_app() as entrepot:
        definition = entrepot.ledger.define_ledger(number, cur.code, name)
    doc = {"ledger": definition.ledger, "currency": definition.currency, "name": definition.name}
    if as_json:
        emit_json(doc)
    else:
        out().print(f"ledger {definition.ledger}: {definition.currency} ({definition.name})")


@app.command("ledgers")
@guard
def ledgers(as_json: JsonOption = False) -> None:
    """List the defined ledgers."""
    with open_app() as entrepot:
        defined = entrepot.ledger.ledgers()
    docs = [{"ledger": d.ledger, "currency": d.currency, "name": d.name} for d in defined]
    if as_json:
        emit_json(docs)
        return
    table = Table(title="Ledgers", title_justify="left")
    for column in ("ledger", "currency", "exponent", "name"):
        table.add_column(column)
    for d in defined:
        table.add_row(str(d.ledger), d.currency, str(get_currency(d.currency).exponent), d.name)
    out().print(table if defined else "no ledgers defined")


# ---------------------------------------------------------------------------------- accounts
@app.command("create-account")
@guard
def create_account(
    code: CodeOption,
    currency: CurrencyOption = None,
    ledger: LedgerOption = None,
    account_id: IdOption = None,
    flags: Annotated[
        str | None,
        typer.Option("--flags", help=f"Comma-separated: {', '.join(ACCOUNT_FLAG_NAMES)}."),
    ] = None,
    user_data_128: UserData128 = None,
    user_data_64: UserData64 = 0,
    user_data_32: UserData32 = 0,
    as_json: JsonOption = False,
) -> None:
    """Create one account; defines the currency's ledger first when --currency is given."""
    if currency is None and ledger is None:
        raise bad_input("give --currency or --ledger")
    _check_user_data(user_data_64, user_data_32)
    account = Account(
        id=id_or_new(account_id, "--id"),
        ledger=0,
        code=_check_code(code),
        flags=parse_flags(flags, ACCOUNT_FLAG_NAMES, "--flags"),
        user_data_128=_user_data_128(user_data_128),
        user_data_64=user_data_64,
        user_data_32=user_data_32,
    )
    with open_app() as entrepot:
        choice = choose_ledger(entrepot.ledger, currency, ledger)
        assert choice is not None
        if choice.currency is not None and currency is not None:
            entrepot.ledger.define_ledger(choice.number, choice.currency.code)
        account = account._replace(ledger=choice.number)
        result = entrepot.ledger.create_accounts([account])[0]
        stored = entrepot.ledger.lookup_accounts([account.id])
    doc: dict[str, Any] = {"result": str(result), "id": str(account.id), "ledger": choice.number}
    if stored and choice.currency is not None:
        doc["account"] = account_json(stored[0], choice.currency)
    where = f"ledger {choice.number}" + (f" ({choice.currency})" if choice.currency else "")
    report_one(doc, as_json, f"account {account.id} on {where}, code {code}")


@app.command("create-accounts")
@guard
def create_accounts(
    file: Annotated[
        Path, typer.Option("--file", help="CSV: id,ledger|currency,code,flags[,linked,...]")
    ],
    as_json: JsonOption = False,
) -> None:
    """Create accounts from a CSV file, in batches; one result per row."""
    rows = read_csv(file, [("code",), ("ledger", "currency")])
    with open_app() as entrepot:
        accounts, to_define = accounts_from_rows(rows, entrepot.ledger)
        chain_batches([a.flags for a in accounts])  # a file it refuses defines nothing
        for number, code in sorted(to_define.items()):
            entrepot.ledger.define_ledger(number, code)
        results = submit_in_batches(accounts, entrepot.ledger.create_accounts)
    report_account_results(rows, accounts, results, as_json)


# ---------------------------------------------------------------------------------- transfers
@app.command("transfer")
@guard
def transfer(
    debit: Annotated[str, typer.Option("--from", help="Debit account id.")],
    credit: Annotated[str, typer.Option("--to", help="Credit account id.")],
    code: CodeOption,
    amount: Annotated[
        str | None, typer.Option("--amount", help="Decimal, e.g. 12.50; optional when balancing.")
    ] = None,
    currency: CurrencyOption = None,
    ledger: LedgerOption = None,
    transfer_id: IdOption = None,
    pending: Annotated[
        bool, typer.Option("--pending", help="Reserve; post or void later.")
    ] = False,
    timeout: Annotated[
        int | None, typer.Option("--timeout", help="Seconds before a pending transfer expires.")
    ] = None,
    balancing_debit: Annotated[bool, typer.Option("--balancing-debit")] = False,
    balancing_credit: Annotated[bool, typer.Option("--balancing-credit")] = False,
    user_data_128: UserData128 = None,
    user_data_64: UserData64 = 0,
    user_data_32: UserData32 = 0,
    as_json: JsonOption = False,
) -> None:
    """Move --amount from the debit account to the credit account (pending with --pending)."""
    flags = (
        (TransferFlags.PENDING if pending else 0)
        | (TransferFlags.BALANCING_DEBIT if balancing_debit else 0)
        | (TransferFlags.BALANCING_CREDIT if balancing_credit else 0)
    )
    if timeout is not None and not pending:
        raise bad_input("--timeout applies only to a --pending transfer")
    if timeout is not None and not 0 <= timeout <= U32_MAX:
        raise bad_input(f"--timeout: {timeout} is outside 0..{U32_MAX} seconds")
    if amount is None and not (balancing_debit or balancing_credit):
        raise bad_input("--amount is required (it may be left out only when balancing)")
    _check_user_data(user_data_64, user_data_32)
    draft = Transfer(
        id=id_or_new(transfer_id, "--id"),
        debit_account_id=parse_id_text(debit, "--from"),
        credit_account_id=parse_id_text(credit, "--to"),
        pending_id=0,
        user_data_128=_user_data_128(user_data_128),
        user_data_64=user_data_64,
        user_data_32=user_data_32,
        timeout=timeout or 0,
        code=_check_code(code),
        flags=int(flags),
    )
    with open_app() as entrepot:
        number, cur = _transfer_ledger(entrepot.ledger, draft, currency, ledger)
        if number is None:
            _not_submitted(draft, CreateTransferResult.DEBIT_ACCOUNT_NOT_FOUND, as_json)
        assert cur is not None
        minor = AMOUNT_FULL if amount is None else parse_amount_text(amount, cur)
        t = draft._replace(amount=minor, ledger=number)
        _submit_transfer(entrepot.ledger, t, cur, as_json)


def _transfer_ledger(
    ledger: Ledger, t: Transfer, currency: str | None, number: int | None
) -> tuple[int | None, Currency | None]:
    """The transfer's ledger and currency: from the options, else from its accounts."""
    choice = choose_ledger(ledger, currency, number)
    if choice is not None:
        if choice.currency is None:
            raise bad_input(f"--ledger: ledger {choice.number} is not defined")
        return choice.number, choice.currency
    found = {a.id: a for a in ledger.lookup_accounts([t.debit_account_id, t.credit_account_id])}
    account = found.get(t.debit_account_id) or found.get(t.credit_account_id)
    if account is None:
        return None, None
    return account.ledger, currency_of_ledger(ledger, account.ledger)


def _not_submitted(t: Transfer, result: CreateTransferResult, as_json: bool) -> NoReturn:
    """A result the ledger would give, told without a write: the amount's currency is unknown
    because neither account (or no pending transfer) exists."""
    doc = {"result": str(result), "id": str(t.id), "submitted": False}
    report_one(doc, as_json, f"transfer {t.id} (not submitted)")
    raise AssertionError("report_one exits on a failure result")


def _submit_transfer(ledger: Ledger, t: Transfer, cur: Currency | None, as_json: bool) -> None:
    result = ledger.create_transfers([t])[0]
    stored = ledger.lookup_transfers([t.id]) if is_success(result) else []
    doc: dict[str, Any] = {"result": str(result), "id": str(t.id)}
    what = f"transfer {t.id}"
    if stored:
        cur = cur or currency_of_ledger(ledger, stored[0].ledger)
        doc["transfer"] = transfer_json(stored[0], cur)
        what = _describe(stored[0], cur)
    report_one(doc, as_json, what)


def _describe(t: Transfer, cur: Currency) -> str:
    amount = money_text(t.amount, cur)
    route = f"from {t.debit_account_id} to {t.credit_account_id}"
    if t.flags & TransferFlags.POST_PENDING_TRANSFER:
        return f"transfer {t.id} posts pending {t.pending_id}: {amount} {route}"
    if t.flags & TransferFlags.VOID_PENDING_TRANSFER:
        return f"transfer {t.id} voids pending {t.pending_id}: {amount} released"
    if t.flags & TransferFlags.PENDING:
        expiry = f", expires after {t.timeout} s" if t.timeout else ""
        return f"pending transfer {t.id}: {amount} {route}{expiry}"
    return f"transfer {t.id}: {amount} {route}"


@app.command("transfers")
@guard
def transfers(
    file: Annotated[
        Path,
        typer.Option(
            "--file",
            help="CSV: id,debit_account_id,credit_account_id,amount,currency|ledger,code,"
            "flags,pending_id,timeout,linked",
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Create transfers from a CSV file, in batches; one result per row. Rows with a true
    `linked` column chain to the next row: all succeed or none."""
    rows = read_csv(file, [("debit_account_id", "from", "pending_id")])
    with open_app() as entrepot:
        batch = transfers_from_rows(rows, entrepot.ledger)
        results = submit_in_batches(batch, entrepot.ledger.create_transfers)
    report_transfer_results(rows, batch, results, as_json)


def _resolve(
    pending_text: str, amount: str | None, id_text: str | None, *, post: bool, as_json: bool
) -> None:
    pending_id = parse_id_text(pending_text, "PENDING_ID")
    t = Transfer(
        id=id_or_new(id_text, "--id"),
        pending_id=pending_id,
        amount=AMOUNT_FULL if post else 0,
        flags=int(
            TransferFlags.POST_PENDING_TRANSFER if post else TransferFlags.VOID_PENDING_TRANSFER
        ),
    )
    with open_app() as entrepot:
        found = entrepot.ledger.lookup_transfers([pending_id])
        cur = currency_of_ledger(entrepot.ledger, found[0].ledger) if found else None
        if amount is not None:
            if cur is None:
                _not_submitted(t, CreateTransferResult.PENDING_TRANSFER_NOT_FOUND, as_json)
            t = t._replace(amount=parse_amount_text(amount, cur))
        _submit_transfer(entrepot.ledger, t, cur, as_json)


@app.command("post")
@guard
def post(
    pending_id: Annotated[str, typer.Argument(help="The pending transfer's id.")],
    amount: Annotated[
        str | None, typer.Option("--amount", help="Post part of it; default: all.")
    ] = None,
    transfer_id: IdOption = None,
    as_json: JsonOption = False,
) -> None:
    """Post (complete) a pending transfer, in full or in part."""
    _resolve(pending_id, amount, transfer_id, post=True, as_json=as_json)


@app.command("void")
@guard
def void(
    pending_id: Annotated[str, typer.Argument(help="The pending transfer's id.")],
    transfer_id: IdOption = None,
    as_json: JsonOption = False,
) -> None:
    """Void (cancel) a pending transfer."""
    _resolve(pending_id, None, transfer_id, post=False, as_json=as_json)


@app.command("expire")
@guard
def expire(as_json: JsonOption = False) -> None:
    """Void every pending transfer whose timeout has passed."""
    with open_app() as entrepot:
        count = entrepot.ledger.expire_pending()
    if as_json:
        emit_json({"expired": count})
    else:
        out().print(f"{count} pending transfer(s) expired")


# ---------------------------------------------------------------------------------- reads
@app.command("balance")
@guard
def balance(account_id: AccountArg, as_json: JsonOption = False) -> None:
    """An account's four balances, its posted and its available balance."""
    with open_app() as entrepot:
        account = entrepot.ledger.get_account(parse_id_text(account_id, "ACCOUNT_ID"))
        cur = currency_of_ledger(entrepot.ledger, account.ledger)
    if as_json:
        emit_json(account_json(account, cur))
    else:
        out().print(balance_table(account, cur))


@app.command("lookup-transfer")
@guard
def lookup_transfer(
    transfer_id: Annotated[str, typer.Argument(help="Transfer id.")], as_json: JsonOption = False
) -> None:
    """Show one transfer."""
    with open_app() as entrepot:
        t = entrepot.ledger.get_transfer(parse_id_text(transfer_id, "TRANSFER_ID"))
        cur = currency_of_ledger(entrepot.ledger, t.ledger)
    if as_json:
        emit_json(transfer_json(t, cur))
    else:
        out().print(transfer_table(t, cur))


SinceOption = Annotated[
    str | None, typer.Option("--since", help="ISO 8601 time (UTC if no zone) or ns timestamp.")
]
UntilOption = Annotated[str | None, typer.Option("--until", help="Inclusive; like --since.")]
LimitOption = Annotated[int, typer.Option("--limit", help=f"Rows, 1..{QUERY_LIMIT_MAX}.")]


def _time_range(since: str | None, until: str | None, limit: int) -> tuple[int, int]:
    since_ns = 0 if since is None else parse_time_text(since, "--since")
    until_ns = TIME_MAX if until is None else parse_time_text(until, "--until")
    if since_ns > until_ns:
        raise bad_input(f"--since {since} is after --until {until}")
    if not 0 < limit <= QUERY_LIMIT_MAX:
        raise bad_input(f"--limit: {limit} is outside 1..{QUERY_LIMIT_MAX}")
    return since_ns, until_ns


@app.command("statement")
@guard
def statement(
    account_id: AccountArg,
    since: SinceOption = None,
    until: UntilOption = None,
    limit: LimitOption = QUERY_LIMIT_MAX,
    as_json: JsonOption = False,
) -> None:
    """Posted movements with opening, running and closing balance."""
    since_ns, until_ns = _time_range(since, until, limit)
    account_number = parse_id_text(account_id, "ACCOUNT_ID")
    with open_app() as entrepot:
        st = entrepot.ledger.statement(
            account_number, since_ns=since_ns, until_ns=until_ns, limit=limit
        )
        cur = currency_of_ledger(entrepot.ledger, st.account.ledger)
    fmt = format_amount
    if as_json:
        emit_json(
            {
                "account_id": str(account_number),
                "currency": cur.code,
                "normal_balance": "credit" if st.credit_normal else "debit",
                "since": iso(st.since_ns) or None,
                "until": iso(st.until_ns) if st.until_ns != TIME_MAX else None,
                "opening_balance": fmt(st.opening_balance_minor, cur),
                "closing_balance": fmt(st.closing_balance_minor, cur),
                "lines": [
                    {
                        "time": iso(line.transfer.timestamp),
                        "transfer_id": str(line.transfer.id),
                        "debit": fmt(line.debit_minor, cur),
                        "credit": fmt(line.credit_minor, cur),
                        "balance": fmt(line.balance_minor, cur),
                        "code": line.transfer.code,
                    }
                    for line in st.lines
                ],
                "truncated": st.truncated,
            }
        )
        return
    normal = "credit" if st.credit_normal else "debit"
    table = Table(
        title=f"Statement of {account_number} ({cur.code}, {normal}-normal)",
        title_justify="left",
        caption=f"closing balance {fmt(st.closing_balance_minor, cur)} {cur.code}"
        + ("  (truncated: raise --limit or narrow --until)" if st.truncated else ""),
        caption_justify="left",
    )
    table.add_column("date", no_wrap=True)
    table.add_column("transfer id", no_wrap=True)
    for column in ("debit", "credit", "balance"):
        table.add_column(column, **AMOUNT_STYLE)  # type: ignore[arg-type]
    table.add_row("", "opening balance", "", "", fmt(st.opening_balance_minor, cur))
    for line in st.lines:
        table.add_row(
            iso(line.transfer.timestamp)[:19].replace("T", " "),
            str(line.transfer.id),
            fmt(line.debit_minor, cur) if line.debit_minor else "",
            fmt(line.credit_minor, cur) if line.credit_minor else "",
            fmt(line.balance_minor, cur),
        )
    out().print(table)


@app.command("history")
@guard
def history(
    account_id: AccountArg,
    since: SinceOption = None,
    until: UntilOption = None,
    limit: LimitOption = QUERY_LIMIT_MAX,
    as_json: JsonOption = False,
) -> None:
    """The account's four balances after each change (accounts created with `history`)."""
    since_ns, until_ns = _time_range(since, until, limit)
    account_number = parse_id_text(account_id, "ACCOUNT_ID")
    with open_app() as entrepot:
        rows = entrepot.ledger.get_account_balances(
            account_number, since_ns=since_ns, until_ns=until_ns, limit=limit
        )
        cur = currency_of_ledger(
            entrepot.ledger, entrepot.ledger.get_account(account_number).ledger
        )
    names = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")
    if as_json:
        emit_json(
            {
                "account_id": str(account_number),
                "currency": cur.code,
                "balances": [
                    {"time": iso(r.transfer_timestamp), "timestamp": r.transfer_timestamp}
                    | {n: format_amount(getattr(r, n), cur) for n in names}
                    for r in rows
                ],
            }
        )
        return
    table = Table(title=f"History of {account_number} ({cur.code})", title_justify="left")
    table.add_column("time", no_wrap=True)
    for n in names:
        table.add_column(n.replace("_", " "), **AMOUNT_STYLE)  # type: ignore[arg-type]
    for r in rows:
        table.add_row(
            iso(r.transfer_timestamp)[:26].replace("T", " "),
            *(format_amount(getattr(r, n), cur) for n in names),
        )
    out().print(table)


@app.command("check")
@guard
def check(as_json: JsonOption = False) -> None:
    """Check the invariants on the stored rows; exit 1 if any is violated."""
    with open_app() as entrepot:
        report = entrepot.ledger.check_invariants()
        currencies = {d.ledger: get_currency(d.currency) for d in entrepot.ledger.ledgers()}
    if as_json:
        emit_json(
            {
                "ok": report.ok,
                "violations": report.violations,
                "ledgers": {
                    str(n): {"currency": currencies[n].code if n in currencies else None}
                    | {k: _fmt_total(v, k, currencies.get(n)) for k, v in totals.items()}
                    for n, totals in report.ledgers.items()
                },
            }
        )
    else:
        out().print(_check_table(report.ledgers, currencies))
        for violation in report.violations:
            error_line(f"invariant violated: {violation}")
        out().print("invariants OK" if report.ok else "invariants VIOLATED")
    if not report.ok:
        raise typer.Exit(EXIT_FAILURE)


def _fmt_total(value: int, key: str, cur: Currency | None) -> Any:
    return value if key == "accounts" or cur is None else amount_json(value, cur)["amount"]


def _check_table(ledgers: dict[int, dict[str, int]], currencies: dict[int, Currency]) -> Table:
    table = Table(title="Ledger totals", title_justify="left")
    table.add_column("ledger")
    table.add_column("accounts", justify="right")
    for column in ("debits posted", "credits posted", "debits pending", "credits pending"):
        table.add_column(column, **AMOUNT_STYLE)  # type: ignore[arg-type]
    keys = ("debits_posted", "credits_posted", "debits_pending", "credits_pending")
    for number, totals in sorted(ledgers.items()):
        cur = currencies.get(number)
        amounts = [format_amount(totals[k], cur) if cur else str(totals[k]) for k in keys]
        table.add_row(f"{number} {cur.code if cur else '?'}", str(totals["accounts"]), *amounts)
    return table


__all__ = ["app", "ledger_number"]
