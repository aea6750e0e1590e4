"""ISO 20022 messages for the payment scheme: pacs.008, pacs.002 and camt.053.

The payment services map their transfers, statuses and account histories onto the frozen
dataclasses below; this module turns them into XML and back. It owns no state and posts nothing.

Messages and versions (each the version Mojaloop's ISO 20022 mode and CBPR+ anchor on):

- :func:`pacs008` - FIToFICustomerCreditTransfer, ``pacs.008.001.08``; one transaction.
- :func:`pacs002` - FIToFIPaymentStatusReport, ``pacs.002.001.10``; one transaction status.
- :func:`camt053` - BankToCustomerStatement, ``camt.053.001.08``; one account statement.
- :func:`parse_pacs008` and :func:`parse_pacs002` read the first two back, so round trips hold:
  ``parse_pacs008(pacs008(ct)) == ct``.

Invariants (checked when a dataclass is built, so every value that exists can be sent):

- Text fits its ISO type: identifiers <= 35 characters (account ids <= 34), names <= 140, no
  control characters. Too long is an error, never a silent truncation. A credit transfer's
  remittance text may be longer (a transfer's note holds up to 200 characters): it is written
  as consecutive ``Ustrd`` lines of at most 140 characters each (``Ustrd`` repeats), and read
  back by joining them, as a status reason is across ``AddtlInf``.
- Amounts are ``int`` minor units, written with the currency's ISO 4217 exponent as exact
  decimal text ("12.50" EUR, "1250" RWF, "1.250" BHD), never through ``float``; at most 18
  digits (the schema's ``totalDigits``).
- A transfer id is the UETR: a canonical lower-case UUID version 4, as the schema's
  ``UUIDv4Identifier`` pattern demands. ``InstrId`` and ``TxId`` carry the same UUID as 32 hex
  digits, because a hyphenated UUID (36 characters) does not fit ``Max35Text``.
- ``XchgRate`` is units of the settlement currency per unit of the instructed currency (the
  payments model's "target per source"); it must fit the schema's ``BaseOneRate`` (at most 11
  digits, 10 after the point): :func:`fit_exchange_rate` rounds one to fit, with a stated mode.
  The agent that converts (the scheme's FX provider) is ``IntrmyAgt1``, between the debtor
  agent (which pays it ``InstdAmt``) and the creditor agent (which it pays ``IntrBkSttlmAmt``).
- Times are timezone-aware and written in UTC with an explicit offset ("+00:00").
- A statement's closing balance equals its opening balance plus booked credits minus booked
  debits; every entry lies within the statement period, which is half-open
  (``FrDtTm <= booked < ToDtTm``), and is in the account's currency.

Parsing accepts bytes only, at most :data:`MESSAGE_BYTES_MAX`, refuses a DOCTYPE (no entity
expansion, no network), checks the namespace, and raises :class:`MalformedMessage` (an
``InvalidInput``) naming the element at fault. An error quotes at most
:data:`QUOTE_LEN_MAX` characters of a value it refuses ('...' and the value's length after
them): received input may run to a MiB, and was quoted whole.

The official XSDs are not shipped. ``schemas/`` holds subsets authored from the official
sequences for the elements this module emits; :func:`validate` checks a message against any XSD.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from lxml import etree

from entrepot.kernel.errors import ConfigurationError, InvalidInput
from entrepot.kernel.money import (
    MoneyError,
    check_rate,
    check_rounding,
    format_amount,
    get_currency,
    parse_amount,
)

__all__ = [
    "AMOUNT_DIGITS_MAX",
    "CAMT053_SUBSET_XSD",
    "CHARGES_MAX",
    "CHARGE_BEARERS",
    "ENTRY_KINDS",
    "MESSAGE_BYTES_MAX",
    "NS_CAMT053",
    "NS_PACS002",
    "NS_PACS008",
    "PACS002_SUBSET_XSD",
    "PACS008_SUBSET_XSD",
    "QUOTE_LEN_MAX",
    "RATE_FRACTION_DIGITS_MAX",
    "RATE_TOTAL_DIGITS_MAX",
    "REASON_TEXT_LEN_MAX",
    "REMITTANCE_LEN_MAX",
    "SCHEMA_DIR",
    "TRANSFER_STATUSES",
    "Agent",
    "Charge",
    "CreditTransfer",
    "InvalidMessageField",
    "Iso20022Error",
    "MalformedMessage",
    "Party",
    "SchemaViolation",
    "Statement",
    "StatementEntry",
    "StatementPage",
    "TransferStatus",
    "camt053",
    "fit_exchange_rate",
    "pacs002",
    "pacs008",
    "parse_pacs002",
    "parse_pacs008",
    "validate",
]

NS_PACS008 = "urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"
NS_PACS002 = "urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10"
NS_CAMT053 = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"
_PACS008_NAME = "pacs.008.001.08"
_PACS008_FAMILY = "pacs.008."  # any version's name starts so

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
PACS008_SUBSET_XSD = SCHEMA_DIR / "pacs.008.001.08.subset.xsd"
PACS002_SUBSET_XSD = SCHEMA_DIR / "pacs.002.001.10.subset.xsd"
CAMT053_SUBSET_XSD = SCHEMA_DIR / "camt.053.001.08.subset.xsd"

#: Largest message parse_* accepts; one transaction is a few kilobytes.
MESSAGE_BYTES_MAX = 1_048_576
#: The most characters of a value an error quotes; longer, its first ones, '...' and its
#: length. A refused value came from the input, which may run to MESSAGE_BYTES_MAX: quoted
#: whole, a MiB went into the problem+json answer and every log line recording it.
QUOTE_LEN_MAX = 64
#: The most characters of another library's explanation an error repeats (lxml's and
#: libxml2's messages quote the names and values they fault).
_EXPLANATION_LEN_MAX = 200
#: The most characters of any error's detail (a backstop: the quotes above bound them first)
_DETAIL_LEN_MAX = 1_000
#: ``ActiveCurrencyAndAmount`` and ``DecimalNumber`` allow 18 digits in all.
AMOUNT_DIGITS_MAX = 18
#: ``BaseOneRate``: totalDigits 11, fractionDigits 10.
RATE_TOTAL_DIGITS_MAX = 11
RATE_FRACTION_DIGITS_MAX = 10
#: ``AddtlInf`` is Max105Text, repeatable; a reason text is split into at most 10 of them.
_ADDTL_INF_LEN = 105
REASON_TEXT_LEN_MAX = 10 * _ADDTL_INF_LEN
#: ``Ustrd`` is Max140Text, repeatable; a credit transfer's remittance text is split into at
#: most 10 of them (a transfer's note, up to 200 characters, did not fit one: its pacs.008
#: could not be built at all).
_USTRD_LEN = 140
REMITTANCE_LEN_MAX = 10 * _USTRD_LEN
#: The most charges (``ChrgsInf``, repeatable without bound in the schema) a credit transfer
#: carries and a reader takes: each agent of a chain states its own (the scheme's messages
#: carry one, its fee). Counted before any is read: read by position, 200 charges took 4.6 s
#: and the 9,000 a 1 MiB message holds, hours.
CHARGES_MAX = 10

_ID_LEN = 35  # Max35Text
_ACCOUNT_ID_LEN = 34  # Max34Text
_NAME_LEN = 140  # Max140Text
_AMOUNT_LIMIT = 10**AMOUNT_DIGITS_MAX

TRANSFER_STATUSES = frozenset({"ACSC", "ACSP", "RJCT", "PDNG"})
CHARGE_BEARERS = frozenset({"DEBT", "CRED", "SHAR", "SLEV"})
_ENTRY_STATUS_BOOKED = "BOOK"
#: What a statement entry books -> its bank transaction code (``BkTxCd/Domn``: the ISO
#: external code sets ExternalBankTransactionDomain1Code, ...Family1Code, ...SubFamily1Code),
#: credit first, then debit. All in the Payments domain (PMNT):
#:
#: - ``transfer``: a credit transfer received (RCDT) or issued (ICDT), sub-family OTHR;
#: - ``charge``: a charge on a credit transfer (the scheme's fee), the generic sub-family
#:   CHRG ("charges") of the same families;
#: - ``other``: a movement that is no payment (a net debit cap granted or withdrawn, a
#:   deposit, a position reset at settlement): Miscellaneous Credit / Debit Operations (MCOP /
#:   MDOP), sub-family OTHR. They were booked as credit transfers.
ENTRY_KINDS: dict[str, tuple[tuple[str, str, str], tuple[str, str, str]]] = {
    "transfer": (("PMNT", "RCDT", "OTHR"), ("PMNT", "ICDT", "OTHR")),
    "charge": (("PMNT", "RCDT", "CHRG"), ("PMNT", "ICDT", "CHRG")),
    "other": (("PMNT", "MCOP", "OTHR"), ("PMNT", "MDOP", "OTHR")),
}

_BIC_RE = re.compile(r"[A-Z]{6}[A-Z2-9][A-NP-Z0-9]([A-Z0-9]{3})?")
_IBAN_RE = re.compile(r"[A-Z]{2}[0-9]{2}[A-Za-z0-9]{1,30}")
_COUNTRY_RE = re.compile(r"[A-Z]{2}")
_UETR_RE = re.compile(r"[a-f0-9]{8}-[a-f0-9]{4}-4[a-f0-9]{3}-[89ab][a-f0-9]{3}-[a-f0-9]{12}")
_REASON_RE = re.compile(r"[A-Z0-9]{4}")
_PURPOSE_CODE_RE = re.compile(r"[A-Z0-9]{4}")
_ILLEGAL_CHAR_RE = re.compile("[\x00-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
#: XML Schema's dateTime with a timezone: Z, or an offset from -14:00 to +14:00 whose minutes
#: are 00-59 (any two digits were taken, and read as Python reads them: +00:60 as an hour)
_DATETIME_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
    r"(Z|[+-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
)
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DECIMAL_RE = re.compile(r"[0-9]{1,30}(\.[0-9]{1,30})?")
_NUMERIC_TEXT_RE = re.compile(r"[0-9]{1,15}")  # Max15NumericText
_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


_Built = TypeVar("_Built")


class Iso20022Error(InvalidInput, ValueError):
    """Base of this module's errors: bad input, so a ValueError and a problem+json 4xx.

    Its detail is at most ``_DETAIL_LEN_MAX`` characters, whatever it quotes."""

    code = "iso20022_error"

    def __init__(self, detail: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(_cut(detail, _DETAIL_LEN_MAX), field=field, code=code)


class InvalidMessageField(Iso20022Error):
    """A value cannot be expressed in the message (too long, wrong pattern, inconsistent)."""

    code = "iso20022_invalid_field"


class MalformedMessage(Iso20022Error):
    """Received XML is not a well-formed message of the expected type and version."""

    code = "iso20022_malformed_message"


class SchemaViolation(Iso20022Error):
    """A message does not conform to the XSD it was validated against."""

    code = "iso20022_schema_violation"


# --- input model ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Agent:
    """A scheme participant acting as a financial institution (``FinInstnId``)."""

    participant_id: str
    bic: str | None
    name: str

    def __post_init__(self) -> None:
        _check_text(self.participant_id, "participant_id", _ID_LEN)
        _check_optional(_check_bic, self.bic, "bic")
        _check_text(self.name, "name", _NAME_LEN)


@dataclass(frozen=True, slots=True, kw_only=True)
class Party:
    """A debtor or creditor; its alias (MSISDN, till id, ...) goes in ``Id/PrvtId/Othr``, or
    in ``Id/OrgId/Othr`` for an ``organisation`` (a merchant, a business, a bank). An
    organisation without an alias still has its (empty) ``Id/OrgId``, so that it reads back
    as one."""

    name: str
    alias_type: str | None
    alias: str | None
    iban: str | None
    country: str | None
    organisation: bool = False

    def __post_init__(self) -> None:
        _check_text(self.name, "name", _NAME_LEN)
        if self.alias_type is not None and self.alias is None:
            raise InvalidMessageField("alias_type is set but alias is not", field="alias")
        _check_optional(_check_text, self.alias, "alias", _ID_LEN)
        _check_optional(_check_text, self.alias_type, "alias_type", _ID_LEN)
        _check_optional(_check_iban, self.iban, "iban")
        _check_optional(_check_country, self.country, "country")


@dataclass(frozen=True, slots=True, kw_only=True)
class Charge:
    """A charge on a credit transfer (``ChrgsInf``): its amount, in the currency it is taken
    in, and the agent that takes it (in the scheme, the hub: its fee)."""

    amount_minor: int
    currency: str
    agent: Agent

    def __post_init__(self) -> None:
        _check_amount(self.amount_minor, "amount_minor", positive=False)
        _check_currency(self.currency, "currency")
        _check_instance(self.agent, Agent, "agent")


@dataclass(frozen=True, slots=True, kw_only=True)
class CreditTransfer:
    """One customer credit transfer between two participants (pacs.008).

    ``instructed_amount_minor``/``instructed_currency`` are what the debtor instructed, before
    conversion or charges; ``fx_rate`` is required exactly when that currency differs from the
    settlement ``currency``, as settlement-currency units per instructed-currency unit.
    ``settlement_date`` is the interbank settlement date (``IntrBkSttlmDt``, optional in the
    message), None where none is known yet.

    ``charges`` are the transfer's charges (``ChrgsInf``, in order; any sequence, stored as a
    tuple) and ``charge_bearer`` who bears them (``ChrgBr``): ``DEBT`` where the debtor pays
    them besides the amount settled, so the creditor is credited ``amount_minor`` whole; at
    most :data:`CHARGES_MAX` of them.

    ``intermediary_agent`` is the agent between the debtor's and the creditor's
    (``IntrmyAgt1``), None where the debtor agent pays the creditor agent directly. In the
    scheme it is the FX provider of a cross-currency payment, as BIS Nexus names the FX
    provider's side of the chain: the debtor agent pays it ``instructed_amount_minor`` in
    ``instructed_currency``, and it pays the creditor agent ``amount_minor`` in ``currency``,
    at ``fx_rate``.
    """

    message_id: str
    transfer_id: str
    end_to_end_id: str
    created_at: datetime
    settlement_date: date | None
    amount_minor: int
    currency: str
    debtor: Party
    debtor_agent: Agent
    creditor: Party
    creditor_agent: Agent
    charge_bearer: str = "SLEV"
    remittance: str | None = None
    purpose: str | None = None
    instructed_amount_minor: int | None = None
    instructed_currency: str | None = None
    fx_rate: Decimal | None = None
    charges: Sequence[Charge] = ()
    intermediary_agent: Agent | None = None

    def __post_init__(self) -> None:
        _check_text(self.message_id, "message_id", _ID_LEN)
        _check_uetr(self.transfer_id, "transfer_id")
        _check_text(self.end_to_end_id, "end_to_end_id", _ID_LEN)
        _check_aware(self.created_at, "created_at")
        _check_optional(_check_date, self.settlement_date, "settlement_date")
        _check_amount(self.amount_minor, "amount_minor", positive=True)
        _check_currency(self.currency, "currency")
        _check_instance(self.debtor, Party, "debtor")
        _check_instance(self.debtor_agent, Agent, "debtor_agent")
        _check_instance(self.creditor, Party, "creditor")
        _check_instance(self.creditor_agent, Agent, "creditor_agent")
        if self.charge_bearer not in CHARGE_BEARERS:
            raise InvalidMessageField(
                f"charge_bearer must be one of {sorted(CHARGE_BEARERS)}, "
                f"got {_quote(self.charge_bearer)}",
                field="charge_bearer",
            )
        _check_optional(_check_text, self.remittance, "remittance", REMITTANCE_LEN_MAX)
        _check_optional(_check_text, self.purpose, "purpose", _ID_LEN)
        self._check_instructed()
        if isinstance(self.charges, str) or not isinstance(self.charges, Sequence):
            raise InvalidMessageField("charges must be a sequence of Charge", field="charges")
        object.__setattr__(self, "charges", tuple(self.charges))
        if len(self.charges) > CHARGES_MAX:
            raise InvalidMessageField(
                f"{len(self.charges)} charges; a credit transfer carries at most {CHARGES_MAX}",
                field="charges",
            )
        for index, charge in enumerate(self.charges):
            _check_instance(charge, Charge, f"charges[{index}]")
        if self.charges and self.instructed_amount_minor is None:
            # ISO 20022's ChargesInformationAndInstructedAmountRule (the schema cannot say it):
            # a receiving agent that checks the rules refuses the message
            raise InvalidMessageField(
                "charges need an instructed amount (InstdAmt): ISO 20022's "
                "ChargesInformationAndInstructedAmountRule",
                field="instructed_amount_minor",
            )
        if self.intermediary_agent is not None:
            _check_instance(self.intermediary_agent, Agent, "intermediary_agent")

    def _check_instructed(self) -> None:
        if (self.instructed_amount_minor is None) != (self.instructed_currency is None):
            raise InvalidMessageField(
                "instructed_amount_minor and instructed_currency go together",
                field="instructed_amount_minor",
            )
        if self.instructed_amount_minor is None or self.instructed_currency is None:
            if self.fx_rate is not None:
                raise InvalidMessageField(
                    "fx_rate needs an instructed amount in another currency", field="fx_rate"
                )
            return
        _check_amount(self.instructed_amount_minor, "instructed_amount_minor", positive=True)
        _check_currency(self.instructed_currency, "instructed_currency")
        cross_currency = self.instructed_currency != self.currency
        if cross_currency and self.fx_rate is None:
            raise InvalidMessageField(
                f"fx_rate is required: {self.instructed_currency} is instructed and "
                f"{self.currency} settled",
                field="fx_rate",
            )
        if not cross_currency and self.fx_rate is not None:
            raise InvalidMessageField(
                "fx_rate is only for an instructed amount in another currency", field="fx_rate"
            )
        if self.fx_rate is not None:
            _check_base_one_rate(self.fx_rate, "fx_rate")


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferStatus:
    """The status of one transfer (pacs.002). A rejection carries an ISO reason code."""

    message_id: str
    original_message_id: str
    original_transfer_id: str
    original_end_to_end_id: str
    status: str
    reason_code: str | None = None
    reason_text: str | None = None
    created_at: datetime

    def __post_init__(self) -> None:
        _check_text(self.message_id, "message_id", _ID_LEN)
        _check_text(self.original_message_id, "original_message_id", _ID_LEN)
        _check_uetr(self.original_transfer_id, "original_transfer_id")
        _check_text(self.original_end_to_end_id, "original_end_to_end_id", _ID_LEN)
        if self.status not in TRANSFER_STATUSES:
            raise InvalidMessageField(
                f"status must be one of {sorted(TRANSFER_STATUSES)}, got {_quote(self.status)}",
                field="status",
            )
        if self.reason_code is not None and (
            not isinstance(self.reason_code, str) or _REASON_RE.fullmatch(self.reason_code) is None
        ):
            raise InvalidMessageField(
                f"reason_code must be an ISO external status reason code of 4 upper-case "
                f"letters or digits like 'AM04', got {_quote(self.reason_code)}",
                field="reason_code",
            )
        if self.status == "RJCT" and self.reason_code is None:
            raise InvalidMessageField("a rejection (RJCT) needs a reason_code", field="reason_code")
        _check_optional(_check_text, self.reason_text, "reason_text", REASON_TEXT_LEN_MAX)
        _check_aware(self.created_at, "created_at")


@dataclass(frozen=True, slots=True, kw_only=True)
class StatementEntry:
    """One booked entry on a statement; ``credit`` is its direction (CRDT or DBIT).

    ``transfer_id`` is the UETR of the payment booked, the one its pacs.008 carries, and
    only that; ``servicer_ref`` is the account servicer's own reference of the posting
    (``AcctSvcrRef``); ``kind`` what it books (:data:`ENTRY_KINDS`: its ``BkTxCd``).
    """

    entry_ref: str
    booked_at: datetime
    amount_minor: int
    currency: str
    credit: bool
    status: str = _ENTRY_STATUS_BOOKED
    counterparty: str | None = None
    transfer_id: str | None = None
    remittance: str | None = None
    servicer_ref: str | None = None
    kind: str = "transfer"

    def __post_init__(self) -> None:
        _check_text(self.entry_ref, "entry_ref", _ID_LEN)
        _check_aware(self.booked_at, "booked_at")
        _check_amount(self.amount_minor, "amount_minor", positive=False)
        _check_currency(self.currency, "currency")
        if not isinstance(self.credit, bool):
            raise InvalidMessageField(
                f"credit must be a bool, got {_quote(self.credit)}", field="credit"
            )
        if self.status != _ENTRY_STATUS_BOOKED:
            raise InvalidMessageField(
                f"a statement (camt.053) reports booked entries only: status must be 'BOOK', "
                f"got {_quote(self.status)}",
                field="status",
            )
        _check_optional(_check_text, self.counterparty, "counterparty", _NAME_LEN)
        _check_optional(_check_uetr, self.transfer_id, "transfer_id")
        _check_optional(_check_text, self.remittance, "remittance", _NAME_LEN)
        _check_optional(_check_text, self.servicer_ref, "servicer_ref", _ID_LEN)
        if self.kind not in ENTRY_KINDS:
            raise InvalidMessageField(
                f"kind must be one of {sorted(ENTRY_KINDS)}, got {_quote(self.kind)}",
                field="kind",
            )

    @property
    def signed_minor(self) -> int:
        return self.amount_minor if self.credit else -self.amount_minor


#: Most pages one camt.053 is split into: ``PgNb`` is Max5NumericText
PAGE_NUMBER_MAX = 99_999


@dataclass(frozen=True, slots=True, kw_only=True)
class StatementPage:
    """Which page of a statement a camt.053 message is (``GrpHdr/MsgPgntn``): ``number``
    from 1, ``last`` for the last page (``LastPgInd``). A page after the first opens with an
    interim booked balance (ITBD) at ``opened_at``, where the page before it closed; a page
    before the last closes with one at ``closed_at``, where the next opens. The first opens
    with the statement's opening balance (OPBD) at its ``from_dt``, the last closes with its
    closing balance (CLBD) at its ``to_dt``."""

    number: int
    last: bool
    opened_at: datetime | None = None
    closed_at: datetime | None = None

    def __post_init__(self) -> None:
        if isinstance(self.number, bool) or not isinstance(self.number, int):
            raise InvalidMessageField("page number must be an int", field="page")
        if not 1 <= self.number <= PAGE_NUMBER_MAX:
            raise InvalidMessageField(
                f"page number must be 1 to {PAGE_NUMBER_MAX}, got {self.number}", field="page"
            )
        if not isinstance(self.last, bool):
            raise InvalidMessageField("last must be a bool", field="last")
        if (self.number > 1) != (self.opened_at is not None):
            raise InvalidMessageField(
                "opened_at is where a page after the first opens, and only that", field="opened_at"
            )
        if self.last != (self.closed_at is None):
            raise InvalidMessageField(
                "closed_at is where a page before the last closes, and only that",
                field="closed_at",
            )
        if self.opened_at is not None:
            _check_aware(self.opened_at, "opened_at")
        if self.closed_at is not None:
            _check_aware(self.closed_at, "closed_at")


@dataclass(frozen=True, slots=True, kw_only=True)
class Statement:
    """An account statement over the half-open period ``[from_dt, to_dt)`` (camt.053's
    ``FrToDt``): an entry booked at ``to_dt`` belongs to the next period, so statements
    chained end to start hold each entry once. Balances are signed; the closing one is the
    balance at ``to_dt``, before anything booked then.

    ``entries`` may be given as any sequence; it is stored as a tuple. ``page``: which page
    of the statement this message is (:class:`StatementPage`), its entries and balances that
    page's; None writes no ``MsgPgntn``.
    """

    message_id: str
    statement_id: str
    created_at: datetime
    account_id: str
    account_iban: str | None
    owner: Agent
    currency: str
    from_dt: datetime
    to_dt: datetime
    opening_balance_minor: int
    closing_balance_minor: int
    entries: Sequence[StatementEntry]
    page: StatementPage | None = None

    def __post_init__(self) -> None:
        if self.page is not None:
            _check_instance(self.page, StatementPage, "page")
        _check_text(self.message_id, "message_id", _ID_LEN)
        _check_text(self.statement_id, "statement_id", _ID_LEN)
        _check_aware(self.created_at, "created_at")
        _check_text(self.account_id, "account_id", _ACCOUNT_ID_LEN)
        _check_optional(_check_iban, self.account_iban, "account_iban")
        _check_instance(self.owner, Agent, "owner")
        _check_currency(self.currency, "currency")
        _check_aware(self.from_dt, "from_dt")
        _check_aware(self.to_dt, "to_dt")
        if self.from_dt > self.to_dt:
            raise InvalidMessageField(
                f"from_dt {self.from_dt.isoformat()} is after to_dt {self.to_dt.isoformat()}",
                field="from_dt",
            )
        _check_balance(self.opening_balance_minor, "opening_balance_minor")
        _check_balance(self.closing_balance_minor, "closing_balance_minor")
        if isinstance(self.entries, str) or not isinstance(self.entries, Sequence):
            raise InvalidMessageField(
                "entries must be a sequence of StatementEntry", field="entries"
            )
        object.__setattr__(self, "entries", tuple(self.entries))
        self._check_entries()

    def _check_entries(self) -> None:
        refs: set[str] = set()
        for index, entry in enumerate(self.entries):
            where = f"entries[{index}]"
            _check_instance(entry, StatementEntry, where)
            if entry.entry_ref in refs:
                raise InvalidMessageField(
                    f"{where}: entry_ref {_quote(entry.entry_ref)} appears twice", field=where
                )
            refs.add(entry.entry_ref)
            if entry.currency != self.currency:
                raise InvalidMessageField(
                    f"{where} is in {entry.currency}, the account in {self.currency}", field=where
                )
            if not self.from_dt <= entry.booked_at < self.to_dt:
                raise InvalidMessageField(
                    f"{where} booked at {entry.booked_at.isoformat()}, outside the statement "
                    f"period [{self.from_dt.isoformat()}, {self.to_dt.isoformat()})",
                    field=where,
                )
        gross = sum(entry.amount_minor for entry in self.entries)
        if gross >= _AMOUNT_LIMIT:
            raise InvalidMessageField(
                f"entries sum to {gross}, more than the {AMOUNT_DIGITS_MAX} digits of TxsSummry",
                field="entries",
            )
        net = sum(entry.signed_minor for entry in self.entries)
        if self.opening_balance_minor + net != self.closing_balance_minor:
            raise InvalidMessageField(
                f"closing balance {self.closing_balance_minor} != opening balance "
                f"{self.opening_balance_minor} + net entries {net}",
                field="closing_balance_minor",
            )


def fit_exchange_rate(rate: Decimal, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """``rate`` rounded once, with ``rounding``, to the most digits ``BaseOneRate`` allows."""
    check_rate(rate)
    check_rounding(rounding)
    whole_digits = max(rate.adjusted() + 1, 1)
    if whole_digits > RATE_TOTAL_DIGITS_MAX:  # refused before quantize could not hold it
        raise InvalidMessageField(
            f"rate {rate} has more than the {RATE_TOTAL_DIGITS_MAX} digits before the point "
            "that XchgRate allows",
            field="fx_rate",
        )
    places = max(0, min(RATE_FRACTION_DIGITS_MAX, RATE_TOTAL_DIGITS_MAX - whole_digits))
    with localcontext() as ctx:  # the quantized rate's digits, whatever the caller's context
        ctx.prec = RATE_TOTAL_DIGITS_MAX + RATE_FRACTION_DIGITS_MAX + 2
        fitted = rate.quantize(Decimal(1).scaleb(-places), rounding=rounding)
    if fitted.adjusted() + 1 > RATE_TOTAL_DIGITS_MAX:  # also catches 99999999999.6 rounding up
        raise InvalidMessageField(
            f"rate {rate} has more than the {RATE_TOTAL_DIGITS_MAX} digits before the point "
            "that XchgRate allows",
            field="fx_rate",
        )
    if fitted == 0:
        raise InvalidMessageField(f"rate {rate} rounds to zero at {places} places", field="fx_rate")
    return fitted


# --- quoting in errors ----------------------------------------------------------------------


def _quote(value: object) -> str:
    """``value`` as an error quotes it: its repr when short; else its first
    :data:`QUOTE_LEN_MAX` characters (digits of an int), '...' and how long it is."""
    if isinstance(value, str) and len(value) > QUOTE_LEN_MAX:
        return f"{value[:QUOTE_LEN_MAX]!r}... ({len(value)} characters)"
    if isinstance(value, int) and not isinstance(value, bool):
        digits = str(value)  # an amount parsed from at most 4,000 characters
        if len(digits) > QUOTE_LEN_MAX:
            return f"{digits[:QUOTE_LEN_MAX]}... ({len(digits)} digits)"
        return digits
    return _cut(repr(value), QUOTE_LEN_MAX)


def _requote(detail: str, *values: str) -> str:
    """Another module's ``detail`` with each of ``values`` it quoted whole (``{value!r}``)
    quoted as :func:`_quote` does."""
    for value in values:
        if len(value) > QUOTE_LEN_MAX:
            detail = detail.replace(repr(value), _quote(value))
    return detail


def _cut(text: str, length_max: int = _EXPLANATION_LEN_MAX) -> str:
    """``text`` itself, or its first ``length_max`` characters and '...'."""
    return text if len(text) <= length_max else f"{text[:length_max]}..."


_LONG_WORD_RE = re.compile(rf"\S{{{QUOTE_LEN_MAX + 1},}}")


def _explanation(text: str) -> str:
    """Another library's message (lxml's, libxml2's) as an error repeats it: each word of it
    longer than :data:`QUOTE_LEN_MAX` (a name or value it quotes from the input) cut to that
    and '...', the whole to ``_EXPLANATION_LEN_MAX`` characters: what it says stays readable
    (``Opening and ending tag mismatch: x line 1 and AAAA...``, its line and column)."""
    shortened = _LONG_WORD_RE.sub(lambda found: f"{found.group()[:QUOTE_LEN_MAX]}...", text)
    return _cut(shortened, _EXPLANATION_LEN_MAX)


# --- field checks --------------------------------------------------------------------------


def _check_optional(check: Callable[..., None], value: object, field: str, *args: int) -> None:
    if value is not None:
        check(value, field, *args)


def _check_text(value: object, field: str, length_max: int) -> None:
    if not isinstance(value, str):
        raise InvalidMessageField(f"{field} must be a str, got {type(value).__name__}", field=field)
    if not value:
        raise InvalidMessageField(f"{field} must not be empty", field=field)
    if len(value) > length_max:
        raise InvalidMessageField(
            f"{field} is {len(value)} characters; ISO 20022 allows at most {length_max} here",
            field=field,
        )
    illegal = _ILLEGAL_CHAR_RE.search(value)
    if illegal is not None:
        raise InvalidMessageField(
            f"{field} contains the control character {illegal.group()!r} at {illegal.start()}",
            field=field,
        )


def _check_pattern(value: object, field: str, pattern: re.Pattern[str], example: str) -> None:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise InvalidMessageField(
            f"{field} {_quote(value)} does not match {pattern.pattern} (e.g. {example!r})",
            field=field,
        )


def _check_bic(value: object, field: str) -> None:
    _check_pattern(value, field, _BIC_RE, "DEUTDEFFXXX")


def _check_country(value: object, field: str) -> None:
    _check_pattern(value, field, _COUNTRY_RE, "RW")


def _check_iban(value: object, field: str) -> None:
    _check_pattern(value, field, _IBAN_RE, "DE89370400440532013000")
    assert isinstance(value, str)
    rearranged = value[4:] + value[:4]
    if int("".join(str(int(char, 36)) for char in rearranged)) % 97 != 1:
        raise InvalidMessageField(
            f"{field} {_quote(value)} fails the IBAN check digits", field=field
        )


def _check_uetr(value: object, field: str) -> None:
    if not isinstance(value, str) or _UETR_RE.fullmatch(value) is None:
        raise InvalidMessageField(
            f"{field} {_quote(value)} is not a UETR: a lower-case UUID version 4 such as "
            f"'{uuid.UUID(int=0x3F2C1A9E8B4D4C7E9F102A3B4C5D6E7F)}'",
            field=field,
        )


def _check_aware(value: object, field: str) -> None:
    if not isinstance(value, datetime):
        raise InvalidMessageField(f"{field} must be a datetime", field=field)
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidMessageField(f"{field} must be timezone-aware (UTC)", field=field)


def _check_date(value: object, field: str) -> None:
    if not isinstance(value, date) or isinstance(value, datetime):
        raise InvalidMessageField(f"{field} must be a date, not a datetime", field=field)


def _check_int(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidMessageField(
            f"{field} must be an int in minor units, got {type(value).__name__}", field=field
        )
    return value


def _check_amount(value: object, field: str, *, positive: bool) -> None:
    amount = _check_int(value, field)
    if amount < (1 if positive else 0):
        raise InvalidMessageField(
            f"{field} must be {'> 0' if positive else '>= 0'}, got {amount}", field=field
        )
    if amount >= _AMOUNT_LIMIT:
        raise InvalidMessageField(
            f"{field} {_quote(amount)} has more than the {AMOUNT_DIGITS_MAX} digits ISO 20022 "
            "allows",
            field=field,
        )


def _check_balance(value: object, field: str) -> None:
    if abs(_check_int(value, field)) >= _AMOUNT_LIMIT:
        raise InvalidMessageField(
            f"{field} has more than the {AMOUNT_DIGITS_MAX} digits ISO 20022 allows", field=field
        )


def _check_currency(value: object, field: str) -> None:
    if not isinstance(value, str):
        raise InvalidMessageField(f"{field} must be a str currency code", field=field)
    try:
        get_currency(value)
    except MoneyError as exc:
        raise InvalidMessageField(f"{field}: {_requote(exc.detail, value)}", field=field) from exc


def _check_instance(value: object, kind: type, field: str) -> None:
    if not isinstance(value, kind):
        raise InvalidMessageField(
            f"{field} must be a {kind.__name__}, got {type(value).__name__}", field=field
        )


def _check_base_one_rate(rate: Decimal, field: str) -> None:
    try:
        check_rate(rate)
    except MoneyError as exc:
        raise InvalidMessageField(f"{field}: {exc.detail}", field=field) from exc
    if fit_exchange_rate(rate) != rate:
        raise InvalidMessageField(
            f"{field} {rate} does not fit XchgRate (at most {RATE_TOTAL_DIGITS_MAX} digits, "
            f"{RATE_FRACTION_DIGITS_MAX} after the point); round it with fit_exchange_rate",
            field=field,
        )


# --- writing -------------------------------------------------------------------------------


def _document(namespace: str, message_tag: str) -> tuple[Any, Any]:
    root = etree.Element(f"{{{namespace}}}Document", nsmap={None: namespace})
    return root, _sub(root, message_tag)


def _sub(parent: Any, tag: str) -> Any:
    namespace = parent.tag[1:].split("}", 1)[0]
    return etree.SubElement(parent, f"{{{namespace}}}{tag}")


def _leaf(parent: Any, tag: str, text: str) -> Any:
    element = _sub(parent, tag)
    element.text = text
    return element


def _serialize(root: Any) -> bytes:
    body: bytes = etree.tostring(root, encoding="UTF-8", pretty_print=True)
    return _XML_DECLARATION + body


def _datetime_text(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _amount(parent: Any, tag: str, amount_minor: int, currency: str) -> None:
    element = _leaf(parent, tag, format_amount(amount_minor, currency))
    element.set("Ccy", currency)


def _rate_text(rate: Decimal) -> str:
    return format(rate.normalize(), "f")


def _uuid_hex(transfer_id: str) -> str:
    return uuid.UUID(transfer_id).hex


def _write_agent(parent: Any, tag: str, agent: Agent) -> None:
    institution = _sub(_sub(parent, tag), "FinInstnId")
    if agent.bic is not None:
        _leaf(institution, "BICFI", agent.bic)
    _leaf(institution, "Nm", agent.name)
    _leaf(_sub(institution, "Othr"), "Id", agent.participant_id)


def _write_party(parent: Any, tag: str, party: Party) -> None:
    element = _sub(parent, tag)
    _leaf(element, "Nm", party.name)
    # pacs.008 tells an organisation from a person only by Id/OrgId vs Id/PrvtId, so an
    # organisation has its Id/OrgId even with no identifier to put in it (every child of
    # OrgId is optional): written without, it read back as a person. A person without one
    # has no Id, which reads back as a person.
    if party.alias is not None or party.organisation:
        kind = "OrgId" if party.organisation else "PrvtId"
        identification = _sub(_sub(element, "Id"), kind)
        if party.alias is not None:
            other = _sub(identification, "Othr")
            _leaf(other, "Id", party.alias)
            if party.alias_type is not None:
                _leaf(_sub(other, "SchmeNm"), "Prtry", party.alias_type)
    if party.country is not None:
        _leaf(element, "CtryOfRes", party.country)


def _write_account(parent: Any, tag: str, iban: str | None, other_id: str | None) -> Any:
    account = _sub(parent, tag)
    identification = _sub(account, "Id")
    if iban is not None:
        _leaf(identification, "IBAN", iban)
    else:
        assert other_id is not None
        _leaf(_sub(identification, "Othr"), "Id", other_id)
    return account


def pacs008(ct: CreditTransfer) -> bytes:
    """The credit transfer as a pacs.008.001.08 message (UTF-8 bytes with a declaration)."""
    if not isinstance(ct, CreditTransfer):
        raise TypeError(f"pacs008 takes a CreditTransfer, got {type(ct).__name__}")
    root, message = _document(NS_PACS008, "FIToFICstmrCdtTrf")
    header = _sub(message, "GrpHdr")
    _leaf(header, "MsgId", ct.message_id)
    _leaf(header, "CreDtTm", _datetime_text(ct.created_at))
    _leaf(header, "NbOfTxs", "1")
    _leaf(_sub(header, "SttlmInf"), "SttlmMtd", "CLRG")
    tx = _sub(message, "CdtTrfTxInf")
    payment_id = _sub(tx, "PmtId")
    _leaf(payment_id, "InstrId", _uuid_hex(ct.transfer_id))
    _leaf(payment_id, "EndToEndId", ct.end_to_end_id)
    _leaf(payment_id, "TxId", _uuid_hex(ct.transfer_id))
    _leaf(payment_id, "UETR", ct.transfer_id)
    _amount(tx, "IntrBkSttlmAmt", ct.amount_minor, ct.currency)
    if ct.settlement_date is not None:
        _leaf(tx, "IntrBkSttlmDt", ct.settlement_date.isoformat())
    if ct.instructed_amount_minor is not None and ct.instructed_currency is not None:
        _amount(tx, "InstdAmt", ct.instructed_amount_minor, ct.instructed_currency)
    if ct.fx_rate is not None:
        _leaf(tx, "XchgRate", _rate_text(ct.fx_rate))
    _leaf(tx, "ChrgBr", ct.charge_bearer)
    for charge in ct.charges:
        charges = _sub(tx, "ChrgsInf")
        _amount(charges, "Amt", charge.amount_minor, charge.currency)
        _write_agent(charges, "Agt", charge.agent)
    if ct.intermediary_agent is not None:
        _write_agent(tx, "IntrmyAgt1", ct.intermediary_agent)
    _write_party(tx, "Dbtr", ct.debtor)
    if ct.debtor.iban is not None:
        _write_account(tx, "DbtrAcct", ct.debtor.iban, None)
    _write_agent(tx, "DbtrAgt", ct.debtor_agent)
    _write_agent(tx, "CdtrAgt", ct.creditor_agent)
    _write_party(tx, "Cdtr", ct.creditor)
    if ct.creditor.iban is not None:
        _write_account(tx, "CdtrAcct", ct.creditor.iban, None)
    if ct.purpose is not None:
        code = _PURPOSE_CODE_RE.fullmatch(ct.purpose) is not None
        _leaf(_sub(tx, "Purp"), "Cd" if code else "Prtry", ct.purpose)
    if ct.remittance is not None:
        remittance = _sub(tx, "RmtInf")
        for start in range(0, len(ct.remittance), _USTRD_LEN):
            _leaf(remittance, "Ustrd", ct.remittance[start : start + _USTRD_LEN])
    return _serialize(root)


def pacs002(status: TransferStatus) -> bytes:
    """The transfer status as a pacs.002.001.10 message (UTF-8 bytes with a declaration)."""
    if not isinstance(status, TransferStatus):
        raise TypeError(f"pacs002 takes a TransferStatus, got {type(status).__name__}")
    root, message = _document(NS_PACS002, "FIToFIPmtStsRpt")
    header = _sub(message, "GrpHdr")
    _leaf(header, "MsgId", status.message_id)
    _leaf(header, "CreDtTm", _datetime_text(status.created_at))
    tx = _sub(message, "TxInfAndSts")
    original = _sub(tx, "OrgnlGrpInf")
    _leaf(original, "OrgnlMsgId", status.original_message_id)
    _leaf(original, "OrgnlMsgNmId", _PACS008_NAME)
    _leaf(tx, "OrgnlInstrId", _uuid_hex(status.original_transfer_id))
    _leaf(tx, "OrgnlEndToEndId", status.original_end_to_end_id)
    _leaf(tx, "OrgnlTxId", _uuid_hex(status.original_transfer_id))
    _leaf(tx, "OrgnlUETR", status.original_transfer_id)
    _leaf(tx, "TxSts", status.status)
    if status.reason_code is not None or status.reason_text is not None:
        reason_info = _sub(tx, "StsRsnInf")
        if status.reason_code is not None:
            _leaf(_sub(reason_info, "Rsn"), "Cd", status.reason_code)
        text = status.reason_text or ""
        for start in range(0, len(text), _ADDTL_INF_LEN):
            _leaf(reason_info, "AddtlInf", text[start : start + _ADDTL_INF_LEN])
    return _serialize(root)


def _write_balance(parent: Any, code: str, balance_minor: int, currency: str, at: datetime) -> None:
    balance = _sub(parent, "Bal")
    _leaf(_sub(_sub(balance, "Tp"), "CdOrPrtry"), "Cd", code)
    _amount(balance, "Amt", abs(balance_minor), currency)
    _leaf(balance, "CdtDbtInd", "DBIT" if balance_minor < 0 else "CRDT")
    _leaf(_sub(balance, "Dt"), "DtTm", _datetime_text(at))


def _write_summary(parent: Any, statement: Statement) -> None:
    credits = [entry.amount_minor for entry in statement.entries if entry.credit]
    debits = [entry.amount_minor for entry in statement.entries if not entry.credit]
    net = sum(credits) - sum(debits)
    currency = statement.currency
    summary = _sub(parent, "TxsSummry")
    total = _sub(summary, "TtlNtries")
    _leaf(total, "NbOfNtries", str(len(statement.entries)))
    _leaf(total, "Sum", format_amount(sum(credits) + sum(debits), currency))
    net_entry = _sub(total, "TtlNetNtry")
    _leaf(net_entry, "Amt", format_amount(abs(net), currency))
    _leaf(net_entry, "CdtDbtInd", "DBIT" if net < 0 else "CRDT")
    for tag, amounts in (("TtlCdtNtries", credits), ("TtlDbtNtries", debits)):
        totals = _sub(summary, tag)
        _leaf(totals, "NbOfNtries", str(len(amounts)))
        _leaf(totals, "Sum", format_amount(sum(amounts), currency))


def _write_entry(parent: Any, entry: StatementEntry) -> None:
    direction = "CRDT" if entry.credit else "DBIT"
    element = _sub(parent, "Ntry")
    _leaf(element, "NtryRef", entry.entry_ref)
    _amount(element, "Amt", entry.amount_minor, entry.currency)
    _leaf(element, "CdtDbtInd", direction)
    _leaf(_sub(element, "Sts"), "Cd", entry.status)
    _leaf(_sub(element, "BookgDt"), "DtTm", _datetime_text(entry.booked_at))
    if entry.servicer_ref is not None:
        _leaf(element, "AcctSvcrRef", entry.servicer_ref)
    credited, debited = ENTRY_KINDS[entry.kind]
    domain_code, family_code, sub_family_code = credited if entry.credit else debited
    domain = _sub(_sub(element, "BkTxCd"), "Domn")
    _leaf(domain, "Cd", domain_code)
    family = _sub(domain, "Fmly")
    _leaf(family, "Cd", family_code)
    _leaf(family, "SubFmlyCd", sub_family_code)
    if entry.transfer_id is None and entry.counterparty is None and entry.remittance is None:
        return
    details = _sub(_sub(element, "NtryDtls"), "TxDtls")
    if entry.transfer_id is not None:
        _leaf(_sub(details, "Refs"), "UETR", entry.transfer_id)
    _amount(details, "Amt", entry.amount_minor, entry.currency)
    _leaf(details, "CdtDbtInd", direction)
    if entry.counterparty is not None:
        # The counterparty of a credit paid it (the debtor); of a debit, was paid (the creditor).
        role = _sub(_sub(details, "RltdPties"), "Dbtr" if entry.credit else "Cdtr")
        _leaf(_sub(role, "Pty"), "Nm", entry.counterparty)
    if entry.remittance is not None:
        _leaf(_sub(details, "RmtInf"), "Ustrd", entry.remittance)


def camt053(statement: Statement) -> bytes:
    """The statement as a camt.053.001.08 message (UTF-8 bytes with a declaration)."""
    if not isinstance(statement, Statement):
        raise TypeError(f"camt053 takes a Statement, got {type(statement).__name__}")
    root, message = _document(NS_CAMT053, "BkToCstmrStmt")
    header = _sub(message, "GrpHdr")
    _leaf(header, "MsgId", statement.message_id)
    _leaf(header, "CreDtTm", _datetime_text(statement.created_at))
    page = statement.page
    if page is not None:
        pagination = _sub(header, "MsgPgntn")
        _leaf(pagination, "PgNb", str(page.number))
        _leaf(pagination, "LastPgInd", "true" if page.last else "false")
    stmt = _sub(message, "Stmt")
    _leaf(stmt, "Id", statement.statement_id)
    _leaf(stmt, "CreDtTm", _datetime_text(statement.created_at))
    period = _sub(stmt, "FrToDt")
    _leaf(period, "FrDtTm", _datetime_text(statement.from_dt))
    _leaf(period, "ToDtTm", _datetime_text(statement.to_dt))
    account = _write_account(stmt, "Acct", statement.account_iban, statement.account_id)
    _leaf(account, "Ccy", statement.currency)
    owner = _sub(account, "Ownr")
    _leaf(owner, "Nm", statement.owner.name)
    organisation = _sub(_sub(owner, "Id"), "OrgId")
    if statement.owner.bic is not None:
        _leaf(organisation, "AnyBIC", statement.owner.bic)
    _leaf(_sub(organisation, "Othr"), "Id", statement.owner.participant_id)
    currency = statement.currency
    opening = ("OPBD", statement.from_dt)
    closing = ("CLBD", statement.to_dt)
    if page is not None and page.opened_at is not None:  # a page after the first
        opening = ("ITBD", page.opened_at)
    if page is not None and page.closed_at is not None:  # a page before the last
        closing = ("ITBD", page.closed_at)
    _write_balance(stmt, opening[0], statement.opening_balance_minor, currency, opening[1])
    _write_balance(stmt, closing[0], statement.closing_balance_minor, currency, closing[1])
    _write_summary(stmt, statement)
    for entry in statement.entries:
        _write_entry(stmt, entry)
    return _serialize(root)


# --- reading -------------------------------------------------------------------------------


def _parse_xml(data: object, what: str, size_max: int | None = MESSAGE_BYTES_MAX) -> Any:
    """``data`` parsed safely (no DTD, entities or network); ``size_max``: the most bytes
    taken (None: any, for a message of the scheme's own making)."""
    if not isinstance(data, bytes):
        raise TypeError(f"{what}: expected the message as bytes, got {type(data).__name__}")
    if size_max is not None and len(data) > size_max:
        raise MalformedMessage(f"{what}: {len(data)} bytes, more than the {size_max} accepted")
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise MalformedMessage(f"{what}: not well-formed XML: {_explanation(str(exc))}") from exc
    if root.getroottree().docinfo.doctype:
        raise MalformedMessage(f"{what}: a DOCTYPE is not allowed in ISO 20022 messages")
    return root


@dataclass(frozen=True, slots=True)
class _Reader:
    """Finds elements of one message by '/'-separated local names, failing with the path."""

    namespace: str
    what: str

    def fail(self, detail: str, path: str | None = None) -> MalformedMessage:
        return MalformedMessage(f"{self.what}: {detail}", field=path)

    def find(self, element: Any, path: str) -> Any:
        """The one element at ``path``, None if there is none. Each step of it is one element
        at most: a second one is refused, named by the path to it (the first was used,
        silently, where the schema allows one). Only the whole path was checked, so a
        repeated element above a value went unseen: two ``Cdtr``, one holding the name and
        the other an ``Id/OrgId``, were read as one organisation."""
        steps = path.split("/")
        found = element
        for depth, step in enumerate(steps, 1):
            matches = found.findall(f"iso:{step}", namespaces={"iso": self.namespace})
            if len(matches) > 1:
                at = "/".join(steps[:depth])
                raise self.fail(f"{at} appears {len(matches)} times, at most once", at)
            if not matches:
                return None
            found = matches[0]
        return found

    def lines(self, block: Any, path: str, length_max: int) -> list[str]:
        """The texts of a repeating line (``RmtInf/Ustrd``, ``StsRsnInf/AddtlInf``: ``path``,
        the children of ``block`` named its last step; none where ``block`` is None), each 1
        to ``length_max`` characters as its type (``Max140Text``) says, and named by its
        position where there are several. A line of any length was taken and joined."""
        if block is None:
            return []
        tag = path.rsplit("/", 1)[-1]
        found = block.findall(f"iso:{tag}", namespaces={"iso": self.namespace})
        texts = []
        for position, line in enumerate(found, 1):
            at = path if len(found) == 1 else f"{path}[{position}]"
            if len(line):
                raise self.fail(f"{at} holds markup inside its value", at)
            if not line.text:
                raise self.fail(f"{at} is empty", at)
            if len(line.text) > length_max:
                raise self.fail(
                    f"{at} is {len(line.text)} characters; Max{length_max}Text allows at most "
                    f"{length_max}",
                    at,
                )
            texts.append(str(line.text))
        return texts

    def choice(self, element: Any, path: str, options: tuple[str, str]) -> None:
        """Refuses the element at ``path`` holding both ``options``, the branches of a choice
        in the schema: one was read as if the other were not there (a party with both
        ``OrgId`` and ``PrvtId`` was an organisation, its alias under ``PrvtId`` lost)."""
        found = self.find(element, path)
        if found is not None and all(self.count(found, option) for option in options):
            raise self.fail(
                f"{path} holds both {options[0]} and {options[1]}; the schema allows one "
                "of them (a choice)",
                path,
            )

    def count(self, element: Any, tag: str) -> int:
        return len(element.findall(f"iso:{tag}", namespaces={"iso": self.namespace}))

    def opt_text(self, element: Any, path: str) -> str | None:
        found = self.find(element, path)
        if found is None:
            return None
        if len(found):  # a comment, instruction or element inside: .text is only its start
            raise self.fail(f"{path} holds markup inside its value", path)
        if not found.text:
            raise self.fail(f"{path} is empty", path)
        return str(found.text)

    def text(self, element: Any, path: str) -> str:
        found = self.opt_text(element, path)
        if found is None:
            raise self.fail(f"{path} is missing", path)
        return found

    def message(self, data: object, message_tag: str) -> Any:
        root = _parse_xml(data, self.what)
        expected = f"{{{self.namespace}}}Document"
        if root.tag != expected:
            raise self.fail(f"root element is {_quote(root.tag)}, expected {expected}")
        body = self.find(root, message_tag)
        # its elements: a comment or processing instruction beside the message is none
        # (counted, a valid message with one was refused as not holding exactly one)
        elements = sum(1 for child in root if isinstance(child.tag, str))
        if body is None or elements != 1:
            raise self.fail(f"Document must hold exactly one {message_tag}", message_tag)
        return body

    def read_datetime(self, element: Any, path: str) -> datetime:
        text = self.text(element, path)
        if _DATETIME_RE.fullmatch(text) is None:
            raise self.fail(
                f"{path} {_quote(text)} is not an ISO date-time with a timezone (Z or an "
                "offset from -14:00 to +14:00)",
                path,
            )
        try:
            return datetime.fromisoformat(text).astimezone(UTC)
        except (ValueError, OverflowError) as exc:  # 9999-12-31T23:59:59-01:00 overflows
            raise self.fail(
                f"{path} {_quote(text)} is not a valid date-time: {_explanation(str(exc))}", path
            ) from exc

    def read_date(self, element: Any, path: str) -> date | None:
        text = self.opt_text(element, path)
        if text is None:
            return None
        try:
            if _DATE_RE.fullmatch(text) is None:
                raise ValueError("expected YYYY-MM-DD")
            return date.fromisoformat(text)
        except ValueError as exc:
            raise self.fail(
                f"{path} {_quote(text)} is not an ISO date: {_explanation(str(exc))}", path
            ) from exc

    def read_amount(self, element: Any, path: str) -> tuple[int, str]:
        found = self.find(element, path)
        if found is None:
            raise self.fail(f"{path} is missing", path)
        currency = found.get("Ccy")
        if len(found):  # "1<!-- -->250.00": validated as 1250.00, its .text "1"
            raise self.fail(f"{path} holds markup inside its value", path)
        if currency is None:  # was read as "None": "malformed currency code 'None'"
            raise self.fail(f"{path} has no Ccy attribute (its currency)", path)
        text = str(found.text or "")
        try:
            return parse_amount(text, currency), str(currency)
        except MoneyError as exc:  # its detail quotes the amount or the currency whole
            raise self.fail(f"{path}: {_requote(exc.detail, text, str(currency))}", path) from exc

    def build(self, make: Callable[..., _Built], paths: Mapping[str, str], **values: Any) -> _Built:
        """``make(**values)``, a model object read from the message; a value it refuses is
        reported at its element's path (``paths``: the model's field -> the path it was read
        from), as the reader's own errors are. It was reported at the model's field name
        (``alias``, ``bic``), which did not say which party or agent it was."""
        try:
            return make(**values)
        except InvalidMessageField as exc:
            path = paths.get(exc.field or "", exc.field)
            raise self.fail(f"{path}: {exc.detail}", path) from exc

    def read_rate(self, element: Any, path: str) -> Decimal | None:
        text = self.opt_text(element, path)
        if text is None:
            return None
        if _DECIMAL_RE.fullmatch(text) is None:
            raise self.fail(f"{path} {_quote(text)} is not a plain decimal number", path)
        return Decimal(text)


def _read_agent(reader: _Reader, tx: Any, tag: str) -> Agent:
    paths = {
        "participant_id": f"{tag}/FinInstnId/Othr/Id",
        "bic": f"{tag}/FinInstnId/BICFI",
        "name": f"{tag}/FinInstnId/Nm",
    }
    return reader.build(
        Agent,
        paths,
        participant_id=reader.text(tx, paths["participant_id"]),
        bic=reader.opt_text(tx, paths["bic"]),
        name=reader.text(tx, paths["name"]),
    )


def _read_charges(reader: _Reader, tx: Any) -> list[Charge]:
    """Each ``ChrgsInf``, read by its path from the transaction, so that an error names it as
    every other does (``ChrgsInf/Amt``; ``ChrgsInf[2]/Amt``, XPath's position, where there are
    several): read from the ``ChrgsInf`` element itself, a bad amount was reported at ``Amt``."""
    count = reader.count(tx, "ChrgsInf")
    if count > CHARGES_MAX:  # before any is read: each is found by its position, below
        raise reader.fail(
            f"ChrgsInf appears {count} times; at most {CHARGES_MAX} charges are read", "ChrgsInf"
        )
    charges = []
    for position in range(1, count + 1):
        at = "ChrgsInf" if count == 1 else f"ChrgsInf[{position}]"
        amount_minor, currency = reader.read_amount(tx, f"{at}/Amt")
        charges.append(
            reader.build(
                Charge,
                {"amount_minor": f"{at}/Amt", "currency": f"{at}/Amt", "agent": f"{at}/Agt"},
                amount_minor=amount_minor,
                currency=currency,
                agent=_read_agent(reader, tx, f"{at}/Agt"),
            )
        )
    return charges


def _read_party(reader: _Reader, tx: Any, tag: str, account_tag: str) -> Party:
    reader.choice(tx, f"{tag}/Id", ("OrgId", "PrvtId"))
    reader.choice(tx, f"{account_tag}/Id", ("IBAN", "Othr"))
    organisation = reader.find(tx, f"{tag}/Id/OrgId") is not None
    other = f"{tag}/Id/{'OrgId' if organisation else 'PrvtId'}/Othr"
    paths = {
        "name": f"{tag}/Nm",
        "alias_type": f"{other}/SchmeNm/Prtry",
        "alias": f"{other}/Id",
        "iban": f"{account_tag}/Id/IBAN",
        "country": f"{tag}/CtryOfRes",
    }
    return reader.build(
        Party,
        paths,
        name=reader.text(tx, paths["name"]),
        alias_type=reader.opt_text(tx, paths["alias_type"]),
        alias=reader.opt_text(tx, paths["alias"]),
        iban=reader.opt_text(tx, paths["iban"]),
        country=reader.opt_text(tx, paths["country"]),
        organisation=organisation,
    )


#: Where each field of a credit transfer is read from in pacs.008 (from its CdtTrfTxInf, or
#: the message's GrpHdr), for :meth:`_Reader.build`
_PACS008_PATHS = {
    "message_id": "GrpHdr/MsgId",
    "created_at": "GrpHdr/CreDtTm",
    "transfer_id": "PmtId/UETR",
    "end_to_end_id": "PmtId/EndToEndId",
    "settlement_date": "IntrBkSttlmDt",
    "amount_minor": "IntrBkSttlmAmt",
    "currency": "IntrBkSttlmAmt",
    "instructed_amount_minor": "InstdAmt",
    "instructed_currency": "InstdAmt",
    "fx_rate": "XchgRate",
    "charge_bearer": "ChrgBr",
    "remittance": "RmtInf/Ustrd",
    "purpose": "Purp",
    "intermediary_agent": "IntrmyAgt1",
}
#: ... and each field of a transfer status in pacs.002 (from its TxInfAndSts, or GrpHdr)
_PACS002_PATHS = {
    "message_id": "GrpHdr/MsgId",
    "created_at": "GrpHdr/CreDtTm",
    "original_message_id": "OrgnlGrpInf/OrgnlMsgId",
    "original_transfer_id": "OrgnlUETR",
    "original_end_to_end_id": "OrgnlEndToEndId",
    "status": "TxSts",
    "reason_code": "StsRsnInf/Rsn/Cd",
    "reason_text": "StsRsnInf/AddtlInf",
}


def parse_pacs008(data: bytes) -> CreditTransfer:
    """The credit transfer in a single-transaction pacs.008.001.08 message."""
    reader = _Reader(NS_PACS008, "pacs.008")
    message = reader.message(data, "FIToFICstmrCdtTrf")
    transactions = reader.count(message, "CdtTrfTxInf")
    declared = reader.text(message, "GrpHdr/NbOfTxs")
    if _NUMERIC_TEXT_RE.fullmatch(declared) is None:
        raise reader.fail(
            f"GrpHdr/NbOfTxs {_quote(declared)} is not a number of 1 to 15 digits "
            "(Max15NumericText)",
            "GrpHdr/NbOfTxs",
        )
    if transactions != 1 or int(declared) != 1:  # "01" is one (it was refused as none)
        raise reader.fail(
            f"carries {transactions} transactions (NbOfTxs {_quote(declared)}); "
            "only single-transaction messages are supported",
            "GrpHdr/NbOfTxs",
        )
    tx = reader.find(message, "CdtTrfTxInf")
    amount_minor, currency = reader.read_amount(tx, "IntrBkSttlmAmt")
    instructed: tuple[int | None, str | None] = (None, None)
    if reader.find(tx, "InstdAmt") is not None:
        instructed = reader.read_amount(tx, "InstdAmt")
    reader.choice(tx, "Purp", ("Cd", "Prtry"))
    purpose = reader.opt_text(tx, "Purp/Cd") or reader.opt_text(tx, "Purp/Prtry")
    # RmtInf once: two were joined into one remittance
    remittance = reader.lines(reader.find(tx, "RmtInf"), "RmtInf/Ustrd", _USTRD_LEN)
    return reader.build(
        CreditTransfer,
        _PACS008_PATHS,
        message_id=reader.text(message, "GrpHdr/MsgId"),
        transfer_id=reader.text(tx, "PmtId/UETR"),
        end_to_end_id=reader.text(tx, "PmtId/EndToEndId"),
        created_at=reader.read_datetime(message, "GrpHdr/CreDtTm"),
        settlement_date=reader.read_date(tx, "IntrBkSttlmDt"),
        amount_minor=amount_minor,
        currency=currency,
        debtor=_read_party(reader, tx, "Dbtr", "DbtrAcct"),
        debtor_agent=_read_agent(reader, tx, "DbtrAgt"),
        creditor=_read_party(reader, tx, "Cdtr", "CdtrAcct"),
        creditor_agent=_read_agent(reader, tx, "CdtrAgt"),
        charge_bearer=reader.text(tx, "ChrgBr"),
        remittance="".join(remittance) or None,
        purpose=purpose,
        instructed_amount_minor=instructed[0],
        instructed_currency=instructed[1],
        fx_rate=reader.read_rate(tx, "XchgRate"),
        charges=_read_charges(reader, tx),
        intermediary_agent=(
            _read_agent(reader, tx, "IntrmyAgt1")
            if reader.find(tx, "IntrmyAgt1") is not None
            else None
        ),
    )


def _check_original_message(reader: _Reader, message: Any, tx: Any) -> None:
    """Refuses a status of another message than a credit transfer (pacs.008, any version),
    by the name the report gives it (``OrgnlMsgNmId``), where it gives one: a rejected
    cancellation request (camt.056) or return (pacs.004) of the same UETR was read as the
    transfer's rejection."""
    named = ((tx, "OrgnlGrpInf/OrgnlMsgNmId"), (message, "OrgnlGrpInfAndSts/OrgnlMsgNmId"))
    for element, path in named:
        name = reader.opt_text(element, path)
        if name is not None and not name.startswith(_PACS008_FAMILY):
            raise reader.fail(
                f"{path}: the status reports on {_quote(name)}; only a credit transfer's "
                "(pacs.008) is read",
                path,
            )


def parse_pacs002(data: bytes) -> TransferStatus:
    """The status of the single transaction reported in a pacs.002.001.10 message."""
    reader = _Reader(NS_PACS002, "pacs.002")
    message = reader.message(data, "FIToFIPmtStsRpt")
    if reader.count(message, "TxInfAndSts") != 1:
        raise reader.fail(
            "must report exactly one transaction (TxInfAndSts); group statuses are not supported",
            "TxInfAndSts",
        )
    tx = reader.find(message, "TxInfAndSts")
    original_message_id = reader.opt_text(tx, "OrgnlGrpInf/OrgnlMsgId") or reader.text(
        message, "OrgnlGrpInfAndSts/OrgnlMsgId"
    )
    _check_original_message(reader, message, tx)
    reasons = reader.count(tx, "StsRsnInf")
    if reasons > 1:  # the schema lets it repeat: a second one's text was joined to the first's
        raise reader.fail(
            f"StsRsnInf appears {reasons} times; one status reason is read", "StsRsnInf"
        )
    reason_texts = reader.lines(reader.find(tx, "StsRsnInf"), "StsRsnInf/AddtlInf", _ADDTL_INF_LEN)
    return reader.build(
        TransferStatus,
        _PACS002_PATHS,
        message_id=reader.text(message, "GrpHdr/MsgId"),
        original_message_id=original_message_id,
        original_transfer_id=reader.text(tx, "OrgnlUETR"),
        original_end_to_end_id=reader.text(tx, "OrgnlEndToEndId"),
        status=reader.text(tx, "TxSts"),
        reason_code=reader.opt_text(tx, "StsRsnInf/Rsn/Cd"),
        reason_text="".join(reason_texts) or None,
        created_at=reader.read_datetime(message, "GrpHdr/CreDtTm"),
    )


# --- schema validation ---------------------------------------------------------------------


@lru_cache(maxsize=16)
def _schema(path: str) -> Any:
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    try:
        return etree.XMLSchema(etree.parse(path, parser))
    except OSError as exc:
        raise ConfigurationError(f"cannot read XSD {path}: {exc}", field="schema_path") from exc
    except (etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
        raise ConfigurationError(f"{path} is not a usable XSD: {exc}", field="schema_path") from exc


def validate(xml_bytes: bytes, schema_path: str | Path, *, size_max: int | None = None) -> None:
    """Raises SchemaViolation unless ``xml_bytes`` conforms to the XSD at ``schema_path``.
    Any size by default: a statement of the scheme's own (a page of up to 1,000 entries; a
    whole statement was up to 50,000, tens of MB) was refused as malformed past
    :data:`MESSAGE_BYTES_MAX`, the bound on messages received; ``size_max`` bounds one from
    outside."""
    path = Path(schema_path).resolve()
    schema = _schema(str(path))
    document = _parse_xml(xml_bytes, path.name, size_max)
    if not schema.validate(document):
        errors = [f"line {error.line}: {_explanation(error.message)}" for error in schema.error_log]
        raise SchemaViolation(
            f"message does not conform to {path.name}: " + "; ".join(errors[:5]),
            field="xml",
        )
