"""Turning command-line text and CSV rows into ledger records, or a bad-input error naming the
option (or row and column) at fault. Nothing here writes."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from entrepot.entrypoints.cli.output import bad_input
from entrepot.kernel.clock import parse_time
from entrepot.kernel.ids import new_id, parse_id
from entrepot.kernel.limits import AMOUNT_MAX, U16_MAX, U32_MAX
from entrepot.kernel.money import Currency, MoneyError, get_currency, parse_amount
from entrepot.ledger import (
    AMOUNT_FULL,
    Account,
    AccountFlags,
    BatchTooLarge,
    Ledger,
    Transfer,
    TransferFlags,
    ledger_for_currency,
)
from entrepot.ledger import chain_batches as ledger_chain_batches

#: Flags a user may name, by their TigerBeetle names.
ACCOUNT_FLAG_NAMES: dict[str, int] = {
    "debits_must_not_exceed_credits": AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
    "credits_must_not_exceed_debits": AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS,
    "history": AccountFlags.HISTORY,
}
TRANSFER_FLAG_NAMES: dict[str, int] = {
    "pending": TransferFlags.PENDING,
    "post_pending_transfer": TransferFlags.POST_PENDING_TRANSFER,
    "post": TransferFlags.POST_PENDING_TRANSFER,
    "void_pending_transfer": TransferFlags.VOID_PENDING_TRANSFER,
    "void": TransferFlags.VOID_PENDING_TRANSFER,
    "balancing_debit": TransferFlags.BALANCING_DEBIT,
    "balancing_credit": TransferFlags.BALANCING_CREDIT,
}
_TRUE = frozenset({"1", "true", "yes", "y", "t", "linked"})
_FALSE = frozenset({"", "0", "false", "no", "n", "f"})
#: Rows one CSV file may hold (a file is read whole; batches are cut at chain boundaries).
CSV_ROWS_MAX = 1_000_000


ledger_number = ledger_for_currency


def parse_id_text(text: str, what: str) -> int:
    try:
        return parse_id(text)
    except ValueError as exc:
        raise bad_input(f"{what}: {exc}") from None


def id_or_new(text: str | None, what: str) -> int:
    """A new id when the option is left out; an empty or blank one (an unset shell variable)
    is refused, never silently replaced by a new id that defeats idempotency."""
    return new_id() if text is None else parse_id_text(text, what)


def parse_currency(text: str, what: str = "--currency") -> Currency:
    try:
        return get_currency(text.strip().upper())
    except MoneyError as exc:
        raise bad_input(f"{what}: {exc.detail}") from None


def parse_amount_text(text: str, currency: Currency, what: str = "--amount") -> int:
    try:
        amount = parse_amount(text.strip(), currency)
    except MoneyError as exc:
        raise bad_input(f"{what}: {exc.detail}") from None
    if amount < 0:
        raise bad_input(f"{what}: amount {text!r} is negative; swap the accounts instead")
    if amount > AMOUNT_MAX:
        raise bad_input(f"{what}: amount {text!r} is larger than the ledger allows")
    return amount


def parse_int_text(text: str, what: str, high: int, low: int = 0) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise bad_input(f"{what}: expected an integer, got {text!r}") from None
    if not low <= value <= high:
        raise bad_input(f"{what}: {value} is outside {low}..{high}")
    return value


def parse_time_text(text: str, what: str) -> int:
    try:
        return parse_time(text)
    except ValueError as exc:
        raise bad_input(f"{what}: {exc}") from None


def parse_flags(text: str | None, names: dict[str, int], what: str) -> int:
    """Flag names separated by commas, '|', ';' or spaces -> their bits."""
    flags = 0
    for raw in (text or "").replace("|", ",").replace(";", ",").replace(" ", ",").split(","):
        name = raw.strip().lower().replace("-", "_")
        if not name:
            continue
        if name not in names:
            allowed = ", ".join(sorted(names))
            raise bad_input(f"{what}: unknown flag {raw.strip()!r}; expected some of {allowed}")
        flags |= names[name]
    return flags


def parse_bool_text(text: str | None, what: str) -> bool:
    value = (text or "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise bad_input(f"{what}: expected true/false, got {text!r}")


@dataclass(frozen=True, slots=True)
class LedgerChoice:
    """The ledger a command writes to and, when known, its currency."""

    number: int
    currency: Currency | None


def choose_ledger(ledger: Ledger, currency: str | None, number: int | None) -> LedgerChoice | None:
    """From ``--currency`` and/or ``--ledger``; None when neither was given."""
    cur = parse_currency(currency) if currency is not None else None
    if number is None:
        return None if cur is None else LedgerChoice(ledger_number(cur), cur)
    if not 0 < number <= U32_MAX:
        raise bad_input(f"--ledger: {number} is outside 1..{U32_MAX}")
    defined = {d.ledger: d.currency for d in ledger.ledgers()}
    if cur is not None and number in defined and defined[number] != cur.code:
        raise bad_input(f"--ledger: ledger {number} is {defined[number]}, not {cur.code}")
    if cur is None and number in defined:
        cur = get_currency(defined[number])
    return LedgerChoice(number, cur)


def currency_of_ledger(ledger: Ledger, number: int) -> Currency:
    return get_currency(ledger.get_ledger(number).currency)


# ---------------------------------------------------------------------------------- CSV files
@dataclass(frozen=True, slots=True)
class Row:
    number: int  # 1-based line of data, the header not counted
    values: dict[str, str]

    def get(self, *names: str) -> str | None:
        for name in names:
            value = self.values.get(name)
            if value is not None and value.strip():
                return value.strip()
        return None

    def where(self, column: str) -> str:
        return f"row {self.number}, column {column!r}"


def read_csv(path: Path, required: Sequence[tuple[str, ...]]) -> list[Row]:
    """Rows with lower-case column names; each tuple in ``required`` needs one of its columns."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [(h or "").strip().lower() for h in reader.fieldnames or []]
            rows: list[Row] = []
            for index, raw in enumerate(reader, start=1):
                if index > CSV_ROWS_MAX:
                    raise bad_input(f"{path}: more than {CSV_ROWS_MAX:,} rows")
                values = {
                    (k or "").strip().lower(): (v if isinstance(v, str) else "")
                    for k, v in raw.items()
                }
                if any(v.strip() for v in values.values()):
                    rows.append(Row(index, values))
    except FileNotFoundError:
        raise bad_input(f"--file: {path} does not exist") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise bad_input(f"--file: {path} is not a UTF-8 CSV file: {exc}") from None
    for options in required:
        if not any(name in header for name in options):
            raise bad_input(f"--file: {path} has no {' or '.join(options)!s} column")
    if not rows:
        raise bad_input(f"--file: {path} has no rows")
    return rows


def row_ledger(row: Row, ledger: Ledger, defined: dict[int, str]) -> LedgerChoice | None:
    currency = row.get("currency")
    cur = parse_currency(currency, row.where("currency")) if currency else None
    number_text = row.get("ledger")
    if number_text is None:
        return None if cur is None else LedgerChoice(ledger_number(cur), cur)
    number = parse_int_text(number_text, row.where("ledger"), U32_MAX, 1)
    if cur is not None and defined.get(number, cur.code) != cur.code:
        raise bad_input(f"{row.where('ledger')}: ledger {number} is {defined[number]}, not {cur}")
    if cur is None and number in defined:
        cur = get_currency(defined[number])
    return LedgerChoice(number, cur)


def accounts_from_rows(rows: Sequence[Row], ledger: Ledger) -> tuple[list[Account], dict[int, str]]:
    """Accounts, plus the ledgers to define before they are created (number -> currency):
    those of the rows with a currency column, each the row's own ledger number, as
    ``create-account --ledger N --currency C`` defines N (the currency's number only when
    the row gives none). One number given two currencies in the file is bad input."""
    defined = {d.ledger: d.currency for d in ledger.ledgers()}
    names = {**ACCOUNT_FLAG_NAMES, "linked": int(AccountFlags.LINKED)}
    accounts: list[Account] = []
    to_define: dict[int, str] = {}
    for row in rows:
        choice = row_ledger(row, ledger, defined)
        if choice is None:
            raise bad_input(f"row {row.number}: give a currency or a ledger")
        if row.get("currency") and choice.currency is not None:
            code = to_define.setdefault(choice.number, choice.currency.code)
            if code != choice.currency.code:
                raise bad_input(
                    f"{row.where('currency')}: ledger {choice.number} is {code} in an "
                    f"earlier row, not {choice.currency.code}"
                )
        flags = parse_flags(row.get("flags"), names, row.where("flags"))
        if parse_bool_text(row.get("linked"), row.where("linked")):
            flags |= AccountFlags.LINKED
        code_text = row.get("code")
        if code_text is None:
            raise bad_input(f"{row.where('code')}: a code is required")
        accounts.append(
            Account(
                id=id_or_new(row.get("id"), row.where("id")),
                ledger=choice.number,
                code=parse_int_text(code_text, row.where("code"), U16_MAX),
                flags=int(flags),
                user_data_128=_user_data_128(row),
                user_data_64=_user_data(row, "user_data_64", (1 << 63) - 1),
                user_data_32=_user_data(row, "user_data_32", U32_MAX),
            )
        )
    return accounts, to_define


def _user_data_128(row: Row) -> int:
    text = row.get("user_data_128")
    return 0 if text is None else parse_id_text(text, row.where("user_data_128"))


def _user_data(row: Row, column: str, high: int) -> int:
    text = row.get(column)
    return 0 if text is None else parse_int_text(text, row.where(column), high)


def transfers_from_rows(rows: Sequence[Row], ledger: Ledger) -> list[Transfer]:
    """Parse every row before anything is written; amounts need each row's currency, which
    comes from its currency/ledger column, else its pending transfer, else its accounts."""
    defined = {d.ledger: d.currency for d in ledger.ledgers()}
    account_ids: set[int] = set()
    pending_ids: set[int] = set()
    for row in rows:
        for column in ("debit_account_id", "from", "credit_account_id", "to"):
            if (text := row.get(column)) is not None:
                account_ids.add(parse_id_text(text, row.where(column)))
        if (text := row.get("pending_id")) is not None:
            pending_ids.add(parse_id_text(text, row.where("pending_id")))
    account_ledgers = {a.id: a.ledger for a in ledger.lookup_accounts(sorted(account_ids))}
    transfer_ledgers = {t.id: t.ledger for t in ledger.lookup_transfers(sorted(pending_ids))}
    out: list[Transfer] = []
    for row in rows:
        t = _transfer_from_row(row, ledger, defined, account_ledgers, transfer_ledgers)
        out.append(t)
        if t.ledger:
            transfer_ledgers.setdefault(t.id, t.ledger)
    return out


def _transfer_from_row(
    row: Row,
    ledger: Ledger,
    defined: dict[int, str],
    account_ledgers: dict[int, int],
    transfer_ledgers: dict[int, int],
) -> Transfer:
    names = {**TRANSFER_FLAG_NAMES, "linked": int(TransferFlags.LINKED)}
    flags = parse_flags(row.get("flags"), names, row.where("flags"))
    if parse_bool_text(row.get("linked"), row.where("linked")):
        flags |= TransferFlags.LINKED
    dr = _optional_id(row, "debit_account_id", "from")
    cr = _optional_id(row, "credit_account_id", "to")
    pending_id = _optional_id(row, "pending_id")
    resolve = flags & (TransferFlags.POST_PENDING_TRANSFER | TransferFlags.VOID_PENDING_TRANSFER)
    choice = row_ledger(row, ledger, defined)
    number = choice.number if choice else 0
    if not number:
        number = (
            transfer_ledgers.get(pending_id, 0) if resolve else account_ledgers.get(dr, 0)
        ) or account_ledgers.get(cr, 0)
    currency = choice.currency if choice and choice.currency else None
    if currency is None and number in defined:
        currency = get_currency(defined[number])
    amount = _row_amount(row, int(flags), currency)
    code_text = row.get("code")
    return Transfer(
        id=id_or_new(row.get("id"), row.where("id")),
        debit_account_id=dr,
        credit_account_id=cr,
        amount=amount,
        pending_id=pending_id,
        user_data_128=_user_data_128(row),
        user_data_64=_user_data(row, "user_data_64", (1 << 63) - 1),
        user_data_32=_user_data(row, "user_data_32", U32_MAX),
        timeout=_user_data(row, "timeout", U32_MAX),
        ledger=0 if resolve and not choice else number,
        code=0 if code_text is None else parse_int_text(code_text, row.where("code"), U16_MAX),
        flags=int(flags),
    )


def _optional_id(row: Row, *columns: str) -> int:
    for column in columns:
        if (text := row.get(column)) is not None:
            return parse_id_text(text, row.where(column))
    return 0


def _row_amount(row: Row, flags: int, currency: Currency | None) -> int:
    text = row.get("amount")
    if text is None:
        if flags & (TransferFlags.POST_PENDING_TRANSFER | TransferFlags.BALANCING_DEBIT):
            return AMOUNT_FULL
        if flags & TransferFlags.BALANCING_CREDIT:
            return AMOUNT_FULL
        if flags & TransferFlags.VOID_PENDING_TRANSFER:
            return 0
        raise bad_input(f"{row.where('amount')}: an amount is required")
    if currency is None:
        raise bad_input(
            f"{row.where('amount')}: cannot tell the currency of {text!r} (no such accounts or "
            "pending transfer); add a currency or ledger column"
        )
    return parse_amount_text(text, currency, row.where("amount"))


def chain_batches(flags: Sequence[int]) -> list[tuple[int, int]]:
    """The ledger's request-sized slices of a file's events; a chain too long is bad input."""
    try:
        return ledger_chain_batches(flags)
    except BatchTooLarge as e:
        raise bad_input(str(e)) from e
