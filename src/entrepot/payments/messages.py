"""One internal model, served as ISO 20022: pacs.008 for a transfer, pacs.002 for its status,
camt.053 for a participant's position account."""

from __future__ import annotations

import base64
import hashlib
import unicodedata
import uuid
from dataclasses import replace
from datetime import date

from entrepot.kernel.clock import ns_to_datetime
from entrepot.kernel.limits import QUERY_LIMIT_MAX
from entrepot.ledger import Transfer
from entrepot.payments import iso20022 as iso
from entrepot.payments.errors import InvalidPaymentInput, PartyNotFound, QuoteNotFound
from entrepot.payments.model import Participant, Party, PaymentTransfer, TransferState, uetr
from entrepot.payments.services import SCHEME, SCHEME_COUNTRY, Code, PaymentScheme

#: A payment's legs (fee, principal, FX legs) carry its UETR from prepare to the posting that
#: commits them (``user_data_128``); a bulk's summed postings carry their bulk's tag there,
#: and are no commit of a pending leg.
_PAYMENT_LEG_CODES = frozenset({Code.PAYMENT, Code.FEE, Code.FX_LEG})

_STATUS = {
    TransferState.COMMITTED: ("ACSC", None, None),
    TransferState.RESERVED: ("ACSP", None, None),
    TransferState.RECEIVED: ("PDNG", None, None),
    TransferState.HOLD: ("PDNG", None, "held for review"),
    TransferState.ABORTED: ("RJCT", "AB05", None),  # AB05: timeout (it expired)
}
#: ExternalStatusReason1Code of a transfer aborted otherwise than by its expiry (the payee's
#: participant rejected it, a participant was suspended): MS03, reason not specified by the
#: agent's code, the reason itself in AddtlInf. AB05 ("timeout") said every such transfer
#: had expired.
_REFUSED = "MS03"
EXPIRED = "expired"  # the reason the scheme records for a transfer that expired

#: Alias types that identify an organisation (a merchant's till, a business registration):
#: pacs.008 names such a party under ``Id/OrgId``, a person under ``Id/PrvtId``.
_ORGANISATION_ALIASES = frozenset({"MERCHANT", "BUSINESS"})
#: ISO 20022 ids (MsgId, EndToEndId, a statement's Id) are Max35Text; an account's Max34Text.
ID_LEN = 35
ACCOUNT_ID_LEN = 34
#: Base32 characters of SHA-256 in an id too long to keep whole: 100 bits.
_DIGEST_CHARS = 20
#: Ledger rows read at a time for a statement: the most one ledger query returns.
STATEMENT_PAGE_ROWS = QUERY_LIMIT_MAX
#: Most entries one camt.053 page holds. A statement was built whole in memory, about 6.5 kB
#: an entry at its peak (some 330 MB, 37 MB of XML and 2.5 s for 50,000 entries, measured):
#: a few asked for at once could exhaust a worker, and the payments it serves with it (found
#: by a review). A period is now served as pages (``GrpHdr/MsgPgntn``), each of this many of
#: the period's ledger rows, read from the ledger alone: a page holds at most this many
#: entries (a reservation's pending row makes none: a page of payments, reserved then
#: committed, holds about half), under 1 MB of XML: a page of a 50,000-entry period grew
#: the process by 13 MB, the whole statement by 256 MB (``bench/statement.py --camt053``).
STATEMENT_PAGE_ENTRIES = 1_000
#: Most ledger rows a statement's period holds: a longer period is refused, to be asked for
#: in parts (from/to), rather than served in part, its rows counted to one past this bound
#: at most (the whole period's timestamps were read to be refused, each page read them
#: all to find where it starts; a review).
STATEMENT_ROWS_MAX = 200_000


def fit_id(text: str, length_max: int = ID_LEN) -> str:
    """``text`` itself when it fits ``length_max`` characters; else its first characters, a
    '.', and 20 base32 characters (100 bits) of the SHA-256 of the whole of it.

    Cutting ``text`` short instead gave one id to texts that differ only past the cut: a UUID
    transfer's RESERVED and COMMITTED status reports, order numbers that count up at the end;
    ISO 20022 ids must be unique per message. The same text always gives the same id, so one
    transfer's messages can name each other. The ids and states these texts are made of have
    no '.' (ids are letters, digits, '-' and '_'), so a digested id is never a text kept whole;
    two long texts share one only by a SHA-256 collision in 100 bits.
    """
    if len(text) <= length_max:
        return text
    return f"{text[: length_max - _DIGEST_CHARS - 1]}.{_digest(text.encode())}"


#: Max140Text: a name in pacs.008 (an agent's, a debtor's, a creditor's)
NAME_LEN = 140
_ZWJ = "\u200d"


def fit_name(text: str, length_max: int = NAME_LEN) -> str:
    """A name as ISO 20022 holds it (Max140Text): itself where it fits; else cut before the
    character cluster the limit falls in. A directory name holds up to 200 characters, and
    cut at 140 code points it could keep a letter and lose its accent written after it
    (``e`` + U+0301), or end on a zero-width joiner, half an emoji sequence or half a flag:
    a name its holder never wrote. Trailing spaces left by the cut go too."""
    if len(text) <= length_max:
        return text
    cut = length_max
    while cut > 0 and _continues(text, cut):
        cut -= 1
    return text[:cut].rstrip() or text[:length_max]


def _continues(text: str, i: int) -> bool:
    """Whether ``text[i]`` belongs to the character cluster begun before it: a combining mark,
    a joiner or the character after one, a variation selector, an emoji modifier or tag, the
    second of a pair of regional indicators (a flag)."""
    ch, before = text[i], text[i - 1]
    code = ord(ch)
    if ch == _ZWJ or before == _ZWJ or unicodedata.category(ch) in ("Mn", "Mc", "Me"):
        return True
    if 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF:  # variation selectors
        return True
    if 0x1F3FB <= code <= 0x1F3FF or 0xE0020 <= code <= 0xE007F:  # skin tones, tags
        return True
    if _regional(ch) and _regional(before):
        run = 0  # regional indicators pair up from the first of a run
        while i - run - 1 >= 0 and _regional(text[i - run - 1]):
            run += 1
        return run % 2 == 1
    return False


def _regional(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def _digest(data: bytes) -> str:
    """20 base32 characters (lower case: no '.') of the SHA-256 of ``data``: 100 bits."""
    digest = hashlib.sha256(data).digest()
    return base64.b32encode(digest).decode("ascii")[:_DIGEST_CHARS].lower()


#: The MsgId a message is rendered with while its content is digested for its real one
_UNNAMED = "unnamed"


def message_id(kind: str, subject: str, content: bytes) -> str:
    """A message's ``GrpHdr/MsgId``: its kind, what it is of (a transfer's id) and a digest of
    its content (the message rendered under ``_UNNAMED``), fitted by :func:`fit_id`.

    MsgId identifies one message. It was the kind and the transfer's id alone, so a
    transfer's pacs.008 kept its id when its content changed (IntrBkSttlmDt once its window
    settled; the creditor once its alias moved): two messages under one id, the second taken
    by a receiver's duplicate check for a resend of the first. Now the id changes exactly
    when the content does, and the same content asked for again is the same message with the
    same id. ``subject`` and the digest's fixed length make the text unambiguous: two
    messages share an id only by a SHA-256 collision in 100 bits."""
    return fit_id(f"{kind}-{subject}-{_digest(content)}")


def _agent(p: Participant) -> iso.Agent:
    """The participant as an agent: its id in ``Othr/Id`` (Max35Text; a longer id, up to 64
    characters, is digested by :func:`fit_id`, the same way in every message)."""
    return iso.Agent(participant_id=fit_id(p.id), bic=p.bic, name=fit_name(p.name))


def payee_party(scheme: PaymentScheme, t: PaymentTransfer) -> Party | None:
    """The party a transfer paid, which pacs.008 names as the creditor: its quote's payee
    alias, or a bulk item's own (kept on its row: a bulk item has no quote; before, its
    pacs.008 named the payee's bank as the creditor, not the customer paid). None where there
    is none to find (an alias gone since, or registered since by another participant for
    another party; a bulk row written before migration 0011): the payee participant then
    stands in. The alias is looked up as it is now: one that another participant holds now
    names someone this transfer never paid (and put that participant's customer, name and
    country, in another participant's pacs.008 beside the creditor agent that was paid), and
    so does one registered again since, by the payee participant itself, for a new customer."""
    try:
        quote = scheme.get_quote(t.payer_participant, t.quote_id)
        kind, alias = quote.payee_alias_type.value, quote.payee_alias
    except QuoteNotFound:
        if t.payee_alias is None:
            return None
        kind, _, alias = t.payee_alias.partition(":")
    return _held_by(scheme, kind, alias, t)


def _entry_uetr(posting: Transfer) -> str | None:
    """The UETR of the payment whose leg ``posting`` commits, as its pacs.008 carries it."""
    if not (posting.pending_id and posting.user_data_128 and posting.code in _PAYMENT_LEG_CODES):
        return None  # legs posted before they carried it, too
    return str(uuid.UUID(int=posting.user_data_128))


def _held_by(
    scheme: PaymentScheme, kind: str, alias: str, t: PaymentTransfer, *, payer: bool = False
) -> Party | None:
    """The directory's party for the alias, if the transfer's payee (or ``payer``)
    participant holds it now under the registration it had when the transfer was prepared.
    An alias removed and registered again since (a number given to a new customer) is
    another registration, for another party than the one that paid or was paid: pacs.008
    named the new customer."""
    try:
        party = scheme.lookup_party(kind, alias)
    except PartyNotFound:
        return None
    participant = t.payer_participant if payer else t.payee_participant
    if party.participant_id != participant:
        return None
    registered = party.registered_at_ns
    return party if registered is None or registered <= t.created_at_ns else None


def settlement_date(scheme: PaymentScheme, t: PaymentTransfer) -> date | None:
    """The day a committed transfer settled between its agents: the (UTC) day its settlement
    window was settled. None before then: the scheme settles net, by window, on a day the
    operator decides, so no day is known in advance (pacs.008 gave the day the transfer was
    prepared, which is neither)."""
    settled_at = _settled_at_ns(scheme, t)
    return None if settled_at is None else ns_to_datetime(settled_at).date()


def _settled_at_ns(scheme: PaymentScheme, t: PaymentTransfer) -> int | None:
    """When a committed transfer's settlement window was settled; None before."""
    if t.state is not TransferState.COMMITTED or t.window_id is None:
        return None
    return scheme.get_window(t.window_id).settled_at_ns


def payer_party(scheme: PaymentScheme, t: PaymentTransfer) -> Party | None:
    """The party that paid, which pacs.008 names as the debtor: the quote's payer alias (as
    Mojaloop's quote names the payer), when the directory holds it for the payer
    participant under the registration it had when the transfer was prepared. None otherwise
    (no payer named, an alias the directory does not hold, holds for another participant, or
    was registered again since: someone else's customer): the payer participant then stands
    in, as the payee participant does for the creditor."""
    if t.payer_alias is None:
        return None
    kind, _, alias = t.payer_alias.partition(":")
    return _held_by(scheme, kind, alias, t, payer=True)


def _customer(party: Party) -> iso.Party:
    """A directory party as pacs.008's debtor or creditor. Its alias is its ``Othr/Id``
    (Max35Text) where it fits; a longer one (a BUSINESS id holds up to 40 characters) is left
    out, the party still named: cut short it would name another party, and refused it made the
    transfer's pacs.008 a 422 for ever."""
    fits = len(party.alias) <= ID_LEN
    return iso.Party(
        name=fit_name(party.display_name),
        alias_type=party.alias_type.value if fits else None,
        alias=party.alias if fits else None,
        iban=party.alias if party.alias_type.value == "IBAN" else None,
        country=party.country,
        organisation=party.alias_type.value in _ORGANISATION_ALIASES,
    )


def _stand_in(p: Participant) -> iso.Party:
    """The participant itself as the debtor or creditor, where no party of its is named: a
    bank or wallet, an organisation (``Id/OrgId``; it was written as a party without an id,
    which pacs.008 reads as a person), resident in its country (``CtryOfRes``) but the
    scheme operator's (``ZZ``, no country). The same for either role: a payer participant
    standing in had its country and a payee participant none, though the directory gives a
    named party its participant's country in either role."""
    return iso.Party(
        name=fit_name(p.name),
        alias_type=None,
        alias=None,
        iban=None,
        country=p.country if p.country != SCHEME_COUNTRY else None,
        organisation=True,
    )


def credit_transfer(
    scheme: PaymentScheme, t: PaymentTransfer, payee: Party | None
) -> iso.CreditTransfer:
    """The transfer as pacs.008 carries it, ``payee`` its creditor (``payee_party``, as
    served), under a MsgId of its content (:func:`message_id`)."""
    ct = _credit_transfer(scheme, t, payee)
    return replace(ct, message_id=message_id("pacs008", t.id, iso.pacs008(ct)))


def _credit_transfer(
    scheme: PaymentScheme, t: PaymentTransfer, payee: Party | None
) -> iso.CreditTransfer:
    payer = scheme.get_participant(t.payer_participant)
    payee_p = scheme.get_participant(t.payee_participant)
    created = ns_to_datetime(t.created_at_ns)
    cross = t.source_currency != t.target_currency
    instructed = cross or t.fee_minor > 0
    payer_p = payer_party(scheme, t)
    return iso.CreditTransfer(
        message_id=_UNNAMED,
        transfer_id=uetr(t.id),
        end_to_end_id=fit_id(t.id),
        created_at=created,
        settlement_date=settlement_date(scheme, t),
        amount_minor=t.target_amount_minor,
        currency=t.target_currency,
        debtor=_customer(payer_p) if payer_p else _stand_in(payer),
        debtor_agent=_agent(payer),
        creditor=_customer(payee) if payee else _stand_in(payee_p),
        creditor_agent=_agent(payee_p),
        remittance=t.note,
        # the principal before conversion; stated in one currency too where a fee is charged
        # (ISO 20022: charges need an instructed amount)
        instructed_amount_minor=t.source_amount_minor - t.fee_minor if instructed else None,
        instructed_currency=t.source_currency if instructed else None,
        fx_rate=iso.fit_exchange_rate(t.fx_rate) if cross and t.fx_rate is not None else None,
        charge_bearer=CHARGE_BEARER,
        charges=_charges(scheme, t),
        intermediary_agent=_fx_agent(scheme, t),
    )


def _fx_agent(scheme: PaymentScheme, t: PaymentTransfer) -> iso.Agent | None:
    """The FX provider of a cross-currency transfer as pacs.008's first intermediary agent
    (``IntrmyAgt1``), identified as the other agents are (its BIC, if it has one, and its
    participant id): the payer's participant pays it the principal in the source currency
    (``InstdAmt``) and it pays the payee's participant the target amount (``IntrBkSttlmAmt``)
    at the quoted rate (``XchgRate``), as its two legs on the ledger do; BIS Nexus names the
    FX provider's side of the chain as intermediary agents alike. None for a payment in one
    currency, which goes from the debtor agent to the creditor agent directly. pacs.008 named
    no FX provider at all: a receiving agent saw a conversion with no one who made it."""
    if t.fx_provider is None:
        return None
    return _agent(scheme.get_participant(t.fx_provider))


#: Who bears the scheme's fee (``ChrgBr``): the payer, always. A SEND amount is what the
#: payer pays, fee included (the fee comes out of it before the principal goes to the payee);
#: a RECEIVE amount is what the payee gets (the fee is added on top of the principal). Either
#: way the payer's participant pays the principal and the fee, and the payee is credited the
#: principal whole (``IntrBkSttlmAmt``; ``InstdAmt``, the principal before conversion, where
#: the currencies differ): ISO 20022's ``DEBT``, the charges borne by the debtor. ``SLEV``
#: ("as the scheme's rules say") with no ``ChrgsInf`` left the fee out of the message.
CHARGE_BEARER = "DEBT"


def _charges(scheme: PaymentScheme, t: PaymentTransfer) -> tuple[iso.Charge, ...]:
    """The scheme's fee as pacs.008's ``ChrgsInf``: its amount, in the payer's (source)
    currency it is taken in, and the hub (the scheme operator's participant, whose position
    it is credited to) as the agent that takes it. None for a payment without a fee."""
    if not t.fee_minor:
        return ()
    hub = _agent(scheme.get_participant(SCHEME))
    return (iso.Charge(amount_minor=t.fee_minor, currency=t.source_currency, agent=hub),)


def status_report(scheme: PaymentScheme, t: PaymentTransfer) -> iso.TransferStatus:
    """The transfer's status as pacs.002 reports it (``t`` as the caller sees it), on the
    pacs.008 served for it now (``OrgnlMsgId``: the settled one once its window settled).

    Its CreDtTm is when the transfer reached the state reported (an expiry: when it expired,
    however late that was recorded), or the settlement that changed the pacs.008 it names,
    not the clock's reading at each request: one report asked
    for twice was two messages under one MsgId. Its MsgId is of its content, as pacs.008's."""
    original = credit_transfer(scheme, t, payee_party(scheme, t))
    status, code, text = _STATUS[t.state]
    if t.state is TransferState.ABORTED and t.reason != EXPIRED:
        code = _REFUSED
    why = t.reason or text
    if t.state is TransferState.ABORTED and t.reason == EXPIRED:
        # It reached that state when it expired: read before the deadline pass (the scheme's
        # view of it, its row unchanged since it was prepared) or after (the row stamped at
        # the pass, or at a late decision), the same report, dated then.
        reported_at = t.expires_at_ns
    else:
        reported_at = max(t.updated_at_ns, _settled_at_ns(scheme, t) or 0)
    report = iso.TransferStatus(
        message_id=_UNNAMED,
        original_message_id=original.message_id,
        original_transfer_id=uetr(t.id),
        original_end_to_end_id=fit_id(t.id),
        status=status,
        reason_code=code,
        # whole: pacs.002 splits it across AddtlInf lines (a reason holds up to 200
        # characters; cutting it to one line's 105 lost the rest)
        reason_text=why[: iso.REASON_TEXT_LEN_MAX] if why else None,
        created_at=ns_to_datetime(reported_at),
    )
    subject = f"{t.id}-{t.state.value}"
    return replace(report, message_id=message_id("pacs002", subject, iso.pacs002(report)))


#: What a ledger posting books, by its code, as a statement entry's kind (its bank
#: transaction code, ``iso.ENTRY_KINDS``): a payment's principal and FX legs, a bulk's summed
#: payments, escrow moves and the settlement of nets between settlement accounts are credit
#: transfers; a fee a charge; the rest (a cap granted or withdrawn, a deposit, a position reset
#: at settlement, an FX reservation) other movements. Every entry was a credit transfer.
_ENTRY_KIND = {
    Code.PAYMENT: "transfer",
    Code.FX_LEG: "transfer",
    Code.ESCROW_HOLD: "transfer",
    Code.ESCROW_RELEASE: "transfer",
    Code.ESCROW_REFUND: "transfer",
    Code.SETTLEMENT_TRANSFER: "transfer",
    Code.FEE: "charge",
}

#: The participant's accounts a statement is served for: ``position`` (its multilateral
#: position: the net debit cap granted plus what it received less what it sent, since the
#: last settlement) and ``settlement`` (its central bank money: deposits, and the nets paid in
#: and out at each settlement).
STATEMENT_ACCOUNTS = ("position", "settlement")


def account_statement(
    scheme: PaymentScheme,
    participant_id: str,
    currency: str,
    since_ns: int,
    until_ns: int,
    account: str = "position",
    page: int = 1,
) -> iso.Statement:
    """Page ``page`` (from 1) of the participant's ``account`` (``STATEMENT_ACCOUNTS``)
    statement in ``currency`` over the half-open period ``[since_ns, until_ns)``. The
    period's ledger rows are counted, and each page is ``STATEMENT_PAGE_ENTRIES`` of them,
    found by their places among them (``_page_period``), its transfers read from the ledger
    by themselves
    (page by page of ``STATEMENT_PAGE_ROWS``, each from where the last stopped): the whole
    statement was built in memory, some 330 MB at its limit. Page k opens with the balance
    page k-1 closed with; the first states the period's opening balance, the last its
    closing one. A page past the last, or a period of more than ``STATEMENT_ROWS_MAX`` rows,
    is refused (InvalidPaymentInput), never served in part.

    The period is half-open and both its ends are cut to the microsecond (a camt.053 time's
    precision): ``FrToDt`` states it exactly, an entry stamped at ``ToDtTm`` belongs to the
    next period, and a client asking for the next statement ``from`` this one's ``ToDtTm``
    gets every entry once. Both ends were inclusive, and ``ToDtTm`` the end cut to its
    microsecond: the entries of that last microsecond (a payment's legs are stamped
    nanoseconds apart) were in both statements. The period ends at ``until_ns``, or where the
    ledger's history is final if that is earlier (:meth:`Ledger.fence`).
    """
    if account not in STATEMENT_ACCOUNTS:
        raise InvalidPaymentInput(
            f"account must be one of {', '.join(STATEMENT_ACCOUNTS)}, not {account!r}",
            field="account",
        )
    if isinstance(page, bool) or not isinstance(page, int):
        raise InvalidPaymentInput(f"page must be a whole number, not {page!r}", field="page")
    p = scheme.get_participant(participant_id)
    pc = p.check_currency(currency)
    account_id = pc.position_account if account == "position" else pc.settlement_account
    since_ns = _microsecond(since_ns)
    end_ns = max(since_ns, _microsecond(until_ns))
    if end_ns > since_ns:
        # End no later than where the ledger's history is final (every transfer stamped at or
        # before ``final`` is committed, every later one stamped after it): a payment stamped
        # inside the period but still committing was left out, and the same period read again
        # later held it, under the same Stmt/Id. A period the committed history already
        # reaches past is read without a turn of the write lock. Cut to the microsecond, so
        # that ToDtTm says where it ended: what was stamped in the microsecond of ``final``
        # is in the next statement.
        final = scheme.ledger.fence(end_ns - 1)
        end_ns = max(since_ns, min(end_ns, _microsecond(final + 1)))
    where = (
        f"the {currency} statement of {participant_id} from {ns_to_datetime(since_ns).isoformat()}"
    )
    page_since, page_end, pages = _page_period(scheme, account_id, since_ns, end_ns, page, where)
    opening, closing, entries = _statement_entries(
        scheme, account_id, currency, page_since, page_end
    )
    now = scheme.clock.now_ns()
    # MsgId was the participant and ``now``: two statements made at one moment (the position
    # and the settlement account, two currencies, two periods) shared it. A period's entries
    # and balances are final (the fence, above) and the ledger is append-only, so the
    # period, the moment and the owner name the content (and the page, where there are
    # several): digested, as in the other messages (rendering the statement a second time
    # to digest it would cost up to a second).
    content = f"{currency}|{account}|{since_ns}|{end_ns}|{now}|{p.name}|{p.bic}"
    if pages > 1:
        content += f"|page {page} of {pages}"
    return iso.Statement(
        message_id=message_id("camt053", participant_id, content.encode()),
        statement_id=fit_id(f"{participant_id}-{currency}-{account}-{since_ns}-{end_ns}"),
        created_at=ns_to_datetime(now),
        account_id=fit_id(f"{participant_id}-{currency}-{account}", ACCOUNT_ID_LEN),
        account_iban=None,
        owner=_agent(p),
        currency=currency,
        from_dt=ns_to_datetime(since_ns),
        to_dt=ns_to_datetime(end_ns),
        opening_balance_minor=opening,
        closing_balance_minor=closing,
        entries=entries,
        page=iso.StatementPage(
            number=page,
            last=page == pages,
            opened_at=None if page == 1 else ns_to_datetime(page_since),
            closed_at=None if page == pages else ns_to_datetime(page_end),
        ),
    )


def _page_period(
    scheme: PaymentScheme, account_id: int, since_ns: int, end_ns: int, page: int, where: str
) -> tuple[int, int, int]:
    """(start, end, pages): where page ``page`` of the account's statement over ``[since_ns,
    end_ns)`` starts and ends (half-open), and how many pages it has. Page k is the period's
    ledger rows ``[(k-1)N, kN)``, N ``STATEMENT_PAGE_ENTRIES``: it starts at its first row
    (the period's start on the first page) and ends at the next page's first row (the
    period's end on the last). The rows are counted (one past ``STATEMENT_ROWS_MAX`` at
    most) and those two found by their places among the period's timestamps
    (``Ledger.locate_account_transfers``): each page read all of them, and a period over the
    limit was read whole to be refused (a review)."""
    first = (page - 1) * STATEMENT_PAGE_ENTRIES if page >= 1 else 0
    rows = 0
    at: list[int | None] = [None, None]
    if end_ns > since_ns:
        # one past the limit at most: a period over it is refused without being read whole
        rows, at = scheme.ledger.locate_account_transfers(
            account_id,
            since_ns=since_ns,
            until_ns=end_ns - 1,
            positions=(first, first + STATEMENT_PAGE_ENTRIES),
            limit=STATEMENT_ROWS_MAX + 1,
        )
    if rows > STATEMENT_ROWS_MAX:
        raise InvalidPaymentInput(
            f"{where} has more than {STATEMENT_ROWS_MAX} ledger rows; ask for a shorter "
            f"period (from/to) and page through it",
            field="from",
        )
    pages = max(1, -(-rows // STATEMENT_PAGE_ENTRIES))
    if not 1 <= page <= pages:
        raise InvalidPaymentInput(
            f"no page {page}: {where} to {ns_to_datetime(end_ns).isoformat()} has {pages} "
            f"page{'s' if pages > 1 else ''} (1 to {pages})",
            field="page",
        )
    start = since_ns if page == 1 else at[0]
    end = end_ns if page == pages else at[1]
    assert start is not None and end is not None  # the rows counted hold both
    return start, end, pages


def _statement_entries(
    scheme: PaymentScheme, account_id: int, currency: str, since_ns: int, end_ns: int
) -> tuple[int, int, list[iso.StatementEntry]]:
    """(opening balance, closing balance, entries) of the account over ``[since_ns,
    end_ns)``, read ``STATEMENT_PAGE_ROWS`` ledger rows at a time, each read from where the
    last stopped: serving the first read alone gave a closing balance and an end date for
    the whole period with entries missing."""
    # read [since, end - 1] (the ledger's ranges are inclusive; a period's ends are whole
    # microseconds, so an empty one is since == end) and keep what is before ``end``
    st = scheme.ledger.statement(
        account_id,
        since_ns=since_ns,
        until_ns=max(since_ns, end_ns - 1),
        limit=STATEMENT_PAGE_ROWS,
    )
    opening = closing = st.opening_balance_minor
    entries: list[iso.StatementEntry] = []
    while True:
        lines = [line for line in st.lines if line.transfer.timestamp < end_ns]
        if lines:
            closing = lines[-1].balance_minor
        entries.extend(
            iso.StatementEntry(
                entry_ref=f"{line.transfer.timestamp}",
                booked_at=ns_to_datetime(line.transfer.timestamp),
                amount_minor=line.credit_minor or line.debit_minor,
                currency=currency,
                credit=bool(line.credit_minor),
                # The ledger posting's own reference; the payment's UETR where the posting
                # commits a payment's leg (a cap, a settlement, a bulk's sum name none).
                servicer_ref=f"{line.transfer.id:032x}",
                transfer_id=_entry_uetr(line.transfer),
                kind=_ENTRY_KIND.get(line.transfer.code, "other"),
            )
            for line in lines
            if line.credit_minor or line.debit_minor
        )
        if st.next_since_ns is None or st.next_since_ns >= end_ns:
            return opening, closing, entries
        st = scheme.ledger.statement(
            account_id,
            since_ns=st.next_since_ns,
            until_ns=end_ns - 1,
            limit=STATEMENT_PAGE_ROWS,
        )


#: Nanoseconds in a microsecond, the precision of a time in camt.053 (``ISODateTime`` as
#: Python's datetime holds it)
_NS_PER_US = 1_000


def _microsecond(ts_ns: int) -> int:
    """``ts_ns`` cut to its microsecond (as ``ns_to_datetime`` cuts it)."""
    return ts_ns - ts_ns % _NS_PER_US
