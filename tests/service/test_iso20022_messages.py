"""The ISO 20022 messages the scheme serves for its own transfers and accounts
(``payments.messages``): ids unique per message within Max35Text, statements complete."""

from __future__ import annotations

import itertools
import threading
import uuid
from decimal import Decimal
from typing import Any

import pytest
from lxml import etree

from entrepot.kernel.clock import NS_PER_S, FakeClock, datetime_to_ns, ns_to_datetime, parse_time
from entrepot.ledger import AccountFlags, Transfer
from entrepot.payments import PaymentScheme, iso20022, messages
from entrepot.payments.errors import InvalidPaymentInput
from entrepot.payments.model import Party, PaymentTransfer
from entrepot.storage.uow import UnitOfWork
from tests.iso20022_official import conforms

NS_PER_US = 1_000


def _pay(scheme: PaymentScheme, transfer_id: str, *, commit: bool = True) -> PaymentTransfer:
    """mtn-rw pays the Kedai Kopi till 10.00 MYR; maybank commits unless told not to."""
    quote_id = f"q-{uuid.uuid5(uuid.NAMESPACE_URL, transfer_id)}"
    scheme.create_quote("mtn-rw", quote_id, "MERCHANT", "KL-TILL-42", 1000, "RECEIVE", "RWF")
    t = scheme.prepare_transfer("mtn-rw", transfer_id, quote_id)
    return scheme.commit_transfer("maybank", transfer_id) if commit else t


def _pacs008(
    scheme: PaymentScheme, t: PaymentTransfer, payee: Party | None = None
) -> iso20022.CreditTransfer:
    ct = messages.credit_transfer(scheme, t, payee)
    conforms(iso20022.pacs008(ct), iso20022.PACS008_SUBSET_XSD)
    return ct


def _pacs002(scheme: PaymentScheme, t: PaymentTransfer) -> iso20022.TransferStatus:
    status = messages.status_report(scheme, t)
    conforms(iso20022.pacs002(status), iso20022.PACS002_SUBSET_XSD)
    return status


def _statement(scheme: PaymentScheme, clock: FakeClock) -> iso20022.Statement:
    """mtn-rw's RWF statement from the start until now, a second past the last posting (the
    fake clock stands still; the ledger stamps a batch's transfers past it)."""
    clock.advance(1)
    return messages.account_statement(scheme, "mtn-rw", "RWF", 0, clock.now_ns())


def test_fit_id_keeps_what_fits_and_digests_the_rest() -> None:
    assert messages.fit_id("x" * 35) == "x" * 35
    long_a, long_b = "x" * 35 + "a", "x" * 35 + "b"
    for text in (long_a, long_b):
        fitted = messages.fit_id(text)
        assert len(fitted) == 35 and fitted.startswith("x" * 14 + ".")
        assert messages.fit_id(text) == fitted  # deterministic
    assert messages.fit_id(long_a) != messages.fit_id(long_b)
    assert len(messages.fit_id("y" * 64, messages.ACCOUNT_ID_LEN)) == 34


def test_a_uuid_transfers_status_reports_have_distinct_message_ids(
    scheme: PaymentScheme,
) -> None:
    """A UUID transfer id (Mojaloop's usual form) is 36 characters: cut to 35, the
    ``pacs002-{id}-{state}`` MsgId lost its state, and the ACSP and ACSC reports of one transfer
    shared a MsgId."""
    transfer_id = str(uuid.uuid4())
    reserved = _pay(scheme, transfer_id, commit=False)
    accepted = _pacs002(scheme, reserved)
    committed = scheme.commit_transfer("maybank", transfer_id)
    settled = _pacs002(scheme, committed)
    ct = _pacs008(scheme, committed, messages.payee_party(scheme, committed))  # as served

    assert (accepted.status, settled.status) == ("ACSP", "ACSC")
    assert accepted.message_id != settled.message_id
    assert _pacs002(scheme, committed).message_id == settled.message_id  # deterministic
    for status in (accepted, settled):
        assert status.original_message_id == ct.message_id
        assert status.original_end_to_end_id == ct.end_to_end_id
        assert status.original_transfer_id == ct.transfer_id == transfer_id
    ids = [ct.message_id, ct.end_to_end_id, accepted.message_id, settled.message_id]
    assert all(len(i) <= 35 for i in ids), ids


def test_long_transfer_ids_that_differ_only_at_the_end_keep_distinct_ids(
    scheme: PaymentScheme,
) -> None:
    """Cut to 35 characters, two order numbers counting up at the end had one pacs.008 MsgId
    and one EndToEndId."""
    first = _pay(scheme, "merchant-kigali-order-2026-000000001")
    second = _pay(scheme, "merchant-kigali-order-2026-000000002")
    ct1, ct2 = (_pacs008(scheme, t, messages.payee_party(scheme, t)) for t in (first, second))
    st1, st2 = _pacs002(scheme, first), _pacs002(scheme, second)

    assert ct1.message_id != ct2.message_id
    assert ct1.end_to_end_id != ct2.end_to_end_id
    assert st1.message_id != st2.message_id
    assert (st1.original_message_id, st2.original_message_id) == (ct1.message_id, ct2.message_id)
    ids = [ct1.message_id, ct1.end_to_end_id, ct2.message_id, ct2.end_to_end_id]
    ids += [st1.message_id, st2.message_id]
    assert all(len(i) <= 35 for i in ids), ids
    # the same transfer, the same ids
    assert _pacs008(scheme, first, messages.payee_party(scheme, first)) == ct1


def test_a_transfer_id_that_fits_is_the_end_to_end_id_as_is(scheme: PaymentScheme) -> None:
    t = _pay(scheme, "t-" + "7" * 33)
    ct = _pacs008(scheme, t)
    assert ct.end_to_end_id == t.id
    assert ct.message_id != _pacs008(scheme, _pay(scheme, "t-" + "7" * 32 + "8")).message_id


def test_a_transfer_whose_note_is_longer_than_one_ustrd_has_a_pacs008(
    scheme: PaymentScheme,
) -> None:
    """A note may hold 200 characters; Ustrd holds 140: pacs.008 of a transfer with a longer
    note was refused (422 iso20022_invalid_field) for ever. It carries the note whole."""
    note = "Invoice 2026-0042 & <order> " + "x" * 172
    assert len(note) == 200
    scheme.create_quote("mtn-rw", "q-note", "MERCHANT", "KL-TILL-42", 1000, "RECEIVE", "RWF")
    t = scheme.prepare_transfer("mtn-rw", "t-note", "q-note", note=note)
    ct = _pacs008(scheme, t)
    assert ct.remittance == note
    assert iso20022.parse_pacs008(iso20022.pacs008(ct)).remittance == note


def test_a_statement_longer_than_one_ledger_page_has_every_entry(
    scheme: PaymentScheme, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ledger answers at most a page of rows and says so (``truncated``); the statement
    once stopped there with the closing balance of what it had. Here pages are 5 rows and
    the first ones hold only reservations (pending rows, no entry), which must not stop it."""
    monkeypatch.setattr(messages, "STATEMENT_PAGE_ROWS", 5)
    ids = [f"t-page-{n}" for n in range(7)]
    for transfer_id in ids:
        _pay(scheme, transfer_id, commit=False)
    for transfer_id in ids:
        scheme.commit_transfer("maybank", transfer_id)
    account_id = scheme.get_participant("mtn-rw").check_currency("RWF").position_account
    whole = scheme.ledger.statement(account_id)
    assert not whole.truncated and len(whole.lines) > 10
    account = scheme.ledger.get_account(account_id)
    sign = -1 if account.flags & AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS else 1
    balance = sign * (account.credits_posted - account.debits_posted)

    st = _statement(scheme, clock)

    assert len(st.entries) == len(whole.lines)
    assert [e.entry_ref for e in st.entries] == [f"{ln.transfer.timestamp}" for ln in whole.lines]
    assert st.opening_balance_minor == 0
    assert st.closing_balance_minor == balance == whole.closing_balance_minor
    xml = iso20022.camt053(st)
    conforms(xml, iso20022.CAMT053_SUBSET_XSD)
    assert xml.count(b"<Ntry>") == len(whole.lines)


def test_a_statement_holds_entries_the_ledger_stamped_past_this_servers_clock(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    """The ledger stamps a transfer at the later of its clock and the last stamp + 1 ns (a
    batch's transfers run past the clock; another server's clock may be ahead; this one's
    may have been stepped back). The statement's period ended at this server's clock, before
    those entries, and the whole statement was refused (422 iso20022_invalid_field) until the
    clock caught up. Its period now ends where the ledger's history is final (never past
    ``to``), cut to the microsecond: every entry before then is in it, and what was stamped
    in that last microsecond is in the next statement, from its ToDtTm."""
    _pay(scheme, "t-ahead")
    clock.advance(-0.5)  # the clock reading the statement is half a second behind the stamp
    account_id = scheme.get_participant("mtn-rw").check_currency("RWF").position_account
    whole = [f"{line.transfer.timestamp}" for line in scheme.ledger.statement(account_id).lines]
    last = int(whole[-1])
    assert last > clock.now_ns()

    st = messages.account_statement(scheme, "mtn-rw", "RWF", 0, clock.now_ns() + NS_PER_S)

    assert ns_to_datetime(clock.now_ns()) < st.to_dt <= ns_to_datetime(last + NS_PER_US)
    assert all(e.booked_at < st.to_dt for e in st.entries)
    conforms(iso20022.camt053(st), iso20022.CAMT053_SUBSET_XSD)
    clock.advance(1)  # the clock catches up: the rest is in the next statement, once
    rest = messages.account_statement(
        scheme, "mtn-rw", "RWF", datetime_to_ns(st.to_dt), clock.now_ns() + NS_PER_S
    )
    assert [e.entry_ref for e in (*st.entries, *rest.entries)] == whole
    assert rest.opening_balance_minor == st.closing_balance_minor
    # a period that starts after now (a 'from' ahead of this clock) is empty, not refused
    # ("from_dt is after to_dt")
    ahead = clock.now_ns() + NS_PER_S
    empty = messages.account_statement(scheme, "mtn-rw", "RWF", ahead, ahead + NS_PER_S)
    assert (empty.entries, empty.from_dt, empty.to_dt) == ((), *[ns_to_datetime(ahead)] * 2)
    # nothing booked after now: the period ends now, as before
    clock.advance(5)
    assert messages.account_statement(
        scheme, "mtn-rw", "RWF", 0, clock.now_ns() + NS_PER_S
    ).to_dt == ns_to_datetime(clock.now_ns())


def test_statements_chained_from_the_last_ones_end_hold_each_entry_once(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    """A client asks for the next statement ``from`` the last one's ToDtTm. Both ends of a
    period were inclusive and ToDtTm was the end cut to its microsecond, so the entries
    stamped in that microsecond (a payment's fee and principal are stamped nanoseconds apart)
    came in both statements. The period is half-open, ``[from, to)``, its ends on microsecond
    boundaries: cut anywhere, two chained statements hold the whole history once."""
    _pay(scheme, "t-chain-1")
    _pay(scheme, "t-chain-2")
    clock.advance(1)
    end = clock.now_ns()
    whole = messages.account_statement(scheme, "mtn-rw", "RWF", 0, end)
    refs = [e.entry_ref for e in whole.entries]
    assert len({int(ref) // 1_000 for ref in refs}) < len(refs)  # some share a microsecond
    for cut in sorted({int(ref) + shift for ref in refs for shift in (0, 1)}):
        first = messages.account_statement(scheme, "mtn-rw", "RWF", 0, cut)
        xml = iso20022.camt053(first)
        to_text = xml.split(b"<ToDtTm>")[1].split(b"</ToDtTm>")[0].decode()
        second = messages.account_statement(scheme, "mtn-rw", "RWF", parse_time(to_text), end)

        chained = [e.entry_ref for e in (*first.entries, *second.entries)]
        assert chained == refs, cut
        assert second.opening_balance_minor == first.closing_balance_minor
        assert second.closing_balance_minor == whole.closing_balance_minor
        assert all(int(e.entry_ref) < cut for e in first.entries)
        conforms(xml, iso20022.CAMT053_SUBSET_XSD)


def test_a_statement_read_while_a_payment_commits_is_final_for_its_period(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    """The ledger stamps a write before it commits (a group commit's batch in flight): a
    statement read meanwhile left out a payment stamped inside its period, and the same
    period asked again later had one entry more, under the same Stmt/Id. A statement now
    reads up to where the ledger's history is final (``Ledger.fence``), after the writes in
    flight."""
    _pay(scheme, "t-before")
    clock.advance(1)
    until = clock.now_ns() + NS_PER_S
    stamped, release = threading.Event(), threading.Event()

    def in_flight() -> None:
        with UnitOfWork(scheme.engine) as uow:
            with scheme.joined(uow):
                _pay(scheme, "t-in-flight")  # stamped, not committed
            stamped.set()
            release.wait(30)
            uow.commit()

    first: list[iso20022.Statement] = []
    writer = threading.Thread(target=in_flight)
    writer.start()
    assert stamped.wait(30)
    reader = threading.Thread(
        target=lambda: first.append(messages.account_statement(scheme, "mtn-rw", "RWF", 0, until))
    )
    reader.start()
    reader.join(0.5)  # (with the fence it waits for the writer; without, it is done)
    release.set()
    writer.join(30)
    reader.join(30)
    again = messages.account_statement(scheme, "mtn-rw", "RWF", 0, until)
    assert len(first[0].entries) == len(again.entries)
    assert (first[0].statement_id, first[0].entries) == (again.statement_id, again.entries)
    assert first[0].closing_balance_minor == again.closing_balance_minor


def test_a_statement_of_a_period_long_past_does_not_wait_for_the_writes_in_flight(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    """A period the committed history already reaches past is final: its statement is read
    while a payment holds the write lock, without a turn of it."""
    _pay(scheme, "t-early")
    until = clock.now_ns()
    clock.advance(1)
    _pay(scheme, "t-later")  # committed, stamped after the period
    stamped, release = threading.Event(), threading.Event()

    def in_flight() -> None:
        with UnitOfWork(scheme.engine) as uow:
            with scheme.joined(uow):
                _pay(scheme, "t-in-flight")
            stamped.set()
            release.wait(30)
            uow.commit()

    writer = threading.Thread(target=in_flight)
    writer.start()
    try:
        assert stamped.wait(30)
        read: list[iso20022.Statement] = []
        reader = threading.Thread(
            target=lambda: read.append(
                messages.account_statement(scheme, "mtn-rw", "RWF", 0, until)
            )
        )
        reader.start()
        reader.join(10)
        assert read, "the statement of a past period waited for the write lock"
    finally:
        release.set()
        writer.join(30)
    assert read[0].entries == messages.account_statement(scheme, "mtn-rw", "RWF", 0, until).entries


def test_statements_of_two_periods_have_two_ids_and_one_period_one(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    """camt.053's Stmt/Id identifies one statement: it was made of the period's start alone,
    so a statement to noon and one to midnight, from the same start, had one id."""
    _pay(scheme, "t-periods")
    clock.advance(60)
    now = clock.now_ns()
    early = messages.account_statement(scheme, "mtn-rw", "RWF", 0, now - 30 * NS_PER_S)
    late = messages.account_statement(scheme, "mtn-rw", "RWF", 0, now)
    assert early.statement_id != late.statement_id
    again = messages.account_statement(scheme, "mtn-rw", "RWF", 0, now - 30 * NS_PER_S)
    assert again.statement_id == early.statement_id  # one period, one statement


def test_a_statement_over_its_row_limit_is_refused_not_cut_short(
    scheme: PaymentScheme, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(messages, "STATEMENT_PAGE_ROWS", 2)
    monkeypatch.setattr(messages, "STATEMENT_ROWS_MAX", 3)
    for n in range(3):
        _pay(scheme, f"t-limit-{n}")
    with pytest.raises(InvalidPaymentInput, match="more than 3 ledger rows; ask for a shorter"):
        _statement(scheme, clock)


def test_a_statement_over_its_row_limit_is_refused_before_its_rows_are_read(
    scheme: PaymentScheme, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The period's timestamps were read whole before the limit was checked, so a period of
    a million rows was read (8 bytes a row stored, some 40 in Python) only to be refused
    (found by a review). The ledger now counts one row past the limit at most. Counted by
    the timestamps the ledger's store reads into Python (here none: the unmerged rows are
    counted by the database), not by time."""
    monkeypatch.setattr(messages, "STATEMENT_ROWS_MAX", 3)
    for n in range(6):
        _pay(scheme, f"t-over-{n}")
    account_id = scheme.get_participant("mtn-rw").check_currency("RWF").position_account
    assert len(scheme.ledger.get_account_timestamps(account_id)) > 2 * (3 + 1)
    store = scheme.ledger.store
    read: list[int] = []
    real = store.account_stamps

    def counted(*args: Any, **kwargs: Any) -> Any:
        found = real(*args, **kwargs)
        read.append(len(found))
        return found

    monkeypatch.setattr(store, "account_stamps", counted)
    with pytest.raises(InvalidPaymentInput, match="more than 3 ledger rows") as caught:
        _statement(scheme, clock)
    assert caught.value.field == "from"
    assert sum(read) <= 3 + 1, read


def _balances(xml: bytes) -> list[tuple[str, str]]:
    """(type code, signed amount) of each ``Bal`` of a camt.053, in order."""
    ns = {"c": iso20022.NS_CAMT053}
    root = etree.fromstring(xml)
    return [
        (
            b.findtext("c:Tp/c:CdOrPrtry/c:Cd", namespaces=ns),
            ("-" if b.findtext("c:CdtDbtInd", namespaces=ns) == "DBIT" else "")
            + b.findtext("c:Amt", namespaces=ns),
        )
        for b in root.iterfind(".//c:Stmt/c:Bal", namespaces=ns)
    ]


def _pagination(xml: bytes) -> tuple[str, str]:
    """(PgNb, LastPgInd) of a camt.053's ``GrpHdr/MsgPgntn``."""
    ns = {"c": iso20022.NS_CAMT053}
    found = etree.fromstring(xml).find("c:BkToCstmrStmt/c:GrpHdr/c:MsgPgntn", namespaces=ns)
    return found.findtext("c:PgNb", namespaces=ns), found.findtext("c:LastPgInd", namespaces=ns)


def test_a_long_statement_is_served_in_pages_that_add_up_to_the_whole(
    scheme: PaymentScheme, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A statement was built whole in memory, up to some 330 MB for 50,000 entries (found by
    a review): a few at once could take a worker down. A long period is now served as pages
    (camt.053's ``GrpHdr/MsgPgntn``) of at most ``STATEMENT_PAGE_ENTRIES`` entries, each read
    from the ledger alone: page k opens where page k-1 closed (ITBD between pages, OPBD on
    the first, CLBD on the last), every page validates, and their entries are the whole's."""
    for n in range(5):
        _pay(scheme, f"t-paged-{n}")
    clock.advance(1)
    end = clock.now_ns()
    whole = messages.account_statement(scheme, "mtn-rw", "RWF", 0, end)
    assert whole.page == iso20022.StatementPage(number=1, last=True)
    whole_xml = iso20022.camt053(whole)
    assert _pagination(whole_xml) == ("1", "true")
    assert [code for code, _ in _balances(whole_xml)] == ["OPBD", "CLBD"]
    account_id = scheme.get_participant("mtn-rw").check_currency("RWF").position_account
    rows = len(scheme.ledger.get_account_transfers(account_id))
    assert rows > len(whole.entries) > 6

    monkeypatch.setattr(messages, "STATEMENT_PAGE_ENTRIES", 3)
    pages = []
    while not pages or not pages[-1].page.last:
        pages.append(
            messages.account_statement(scheme, "mtn-rw", "RWF", 0, end, page=len(pages) + 1)
        )
    assert len(pages) == -(-rows // 3)
    assert [p.page.number for p in pages] == list(range(1, len(pages) + 1))
    assert [e for p in pages for e in p.entries] == list(whole.entries)
    assert all(len(p.entries) <= 3 for p in pages)
    assert pages[0].opening_balance_minor == whole.opening_balance_minor
    assert pages[-1].closing_balance_minor == whole.closing_balance_minor
    for page in pages:
        signed = sum(e.signed_minor for e in page.entries)
        assert page.closing_balance_minor == page.opening_balance_minor + signed
        assert (page.statement_id, page.from_dt, page.to_dt) == (
            whole.statement_id,
            whole.from_dt,
            whole.to_dt,
        )
    for before, after in itertools.pairwise(pages):
        assert after.opening_balance_minor == before.closing_balance_minor
    assert len({p.message_id for p in pages}) == len(pages)
    for number, page in enumerate(pages, 1):
        xml = iso20022.camt053(page)
        conforms(xml, iso20022.CAMT053_SUBSET_XSD)
        last = "true" if number == len(pages) else "false"
        assert _pagination(xml) == (str(number), last)
        codes = [code for code, _ in _balances(xml)]
        assert codes == [
            "OPBD" if number == 1 else "ITBD",
            "CLBD" if number == len(pages) else "ITBD",
        ]
    # the same page asked for again is the same message
    again = messages.account_statement(scheme, "mtn-rw", "RWF", 0, end, page=2)
    assert iso20022.camt053(again) == iso20022.camt053(pages[1])
    for wrong in (0, len(pages) + 1):
        with pytest.raises(InvalidPaymentInput, match=f"has {len(pages)} pages") as caught:
            messages.account_statement(scheme, "mtn-rw", "RWF", 0, end, page=wrong)
        assert caught.value.field == "page"


def test_a_statement_page_reads_only_its_own_rows(
    scheme: PaymentScheme, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page's entries are read from the ledger a page at a time: the transfers read for
    page 2 are its own rows, not the period's then sliced (the period's rows are counted,
    the page's found by their places)."""
    for n in range(4):
        _pay(scheme, f"t-own-{n}")
    clock.advance(1)
    end = clock.now_ns()
    account_id = scheme.get_participant("mtn-rw").check_currency("RWF").position_account
    period = scheme.ledger.get_account_timestamps(account_id)
    monkeypatch.setattr(messages, "STATEMENT_PAGE_ENTRIES", 3)
    store = scheme.ledger.store
    read: list[list[int]] = []
    real = store.account_transfers

    def recorded(*args: Any, **kwargs: Any) -> list[Transfer]:
        found = real(*args, **kwargs)
        read.append([t.timestamp for t in found])
        return found

    monkeypatch.setattr(store, "account_transfers", recorded)
    page = messages.account_statement(scheme, "mtn-rw", "RWF", 0, end, page=2)
    assert read == [period[3:6]]
    assert page.entries and {int(e.entry_ref) for e in page.entries} <= set(period[3:6])


def test_a_position_statement_page_opens_from_the_accounts_history_not_its_transfers(
    scheme: PaymentScheme, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page's opening balance was summed from up to half its account's history, each
    page again (reading every page of a long statement cost some 3.3x the whole, a review).
    A position account keeps its balances after each change (the ledger's history flag):
    a page opens from the last of them before its first row, no transfer summed."""
    for n in range(4):
        _pay(scheme, f"t-hist-{n}")
    clock.advance(1)
    end = clock.now_ns()
    whole = messages.account_statement(scheme, "mtn-rw", "RWF", 0, end)
    account_id = scheme.get_participant("mtn-rw").check_currency("RWF").position_account
    assert scheme.ledger.get_account(account_id).flags & AccountFlags.HISTORY
    monkeypatch.setattr(messages, "STATEMENT_PAGE_ENTRIES", 3)
    store = type(scheme.ledger.store)
    summed: list[tuple[int, int]] = []
    real = store._range_sums

    def recorded(self: Any, conn: Any, account: int, since: int, until: int) -> Any:
        summed.append((since, until))
        return real(self, conn, account, since, until)

    monkeypatch.setattr(store, "_range_sums", recorded)
    pages = [messages.account_statement(scheme, "mtn-rw", "RWF", 0, end, page=k) for k in (1, 2, 3)]
    assert summed == []
    entries = [e for p in pages for e in p.entries]
    assert entries == list(whole.entries[: len(entries)])
    for before, after in itertools.pairwise(pages):
        assert after.opening_balance_minor == before.closing_balance_minor
    assert pages[1].opening_balance_minor != whole.opening_balance_minor


def test_a_rejection_is_not_reported_as_a_timeout_and_an_expiry_is(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    """pacs.002 gave every aborted transfer AB05 ("timeout"), a payee's rejection too."""
    rejected = _pay(scheme, "t-rejected", commit=False)
    rejected = scheme.reject_transfer("maybank", rejected.id, "account closed")
    status = _pacs002(scheme, rejected)
    assert (status.status, status.reason_code, status.reason_text) == (
        "RJCT",
        "MS03",
        "account closed",
    )
    expired = _pay(scheme, "t-expired", commit=False)
    clock.advance(3600)
    scheme.process_deadlines()
    status = _pacs002(scheme, scheme.get_transfer("mtn-rw", expired.id))
    assert (status.status, status.reason_code) == ("RJCT", "AB05")


def test_a_rejection_reason_longer_than_one_addtlinf_line_is_reported_whole(
    scheme: PaymentScheme,
) -> None:
    """A payee's reason holds up to 200 characters and pacs.002 carries up to 1,050 across
    AddtlInf lines of 105, but the status report cut the reason to its first 105: the rest
    of why the payee refused was lost to the payer's pacs.002."""
    reason = "account closed by court order 2026/17; beneficiary deceased; " + "r" * 139
    assert len(reason) == 200
    rejected = _pay(scheme, "t-long-reason", commit=False)
    rejected = scheme.reject_transfer("maybank", rejected.id, reason)
    status = _pacs002(scheme, rejected)
    assert status.reason_text == reason
    assert iso20022.parse_pacs002(iso20022.pacs002(status)).reason_text == reason


def test_a_participant_id_longer_than_an_iso_id_is_digested_not_refused(
    scheme: PaymentScheme,
) -> None:
    long_id = "mobile-money-operator-of-the-republic-of-rwanda"  # 47 characters
    scheme.register_participant(long_id, "Long Named MMO", "wallet", "RW", ["RWF"])
    scheme.deposit(long_id, "RWF", 1_000_000, "dep-long")
    scheme.set_net_debit_cap(long_id, "RWF", 1_000_000)
    scheme.create_quote(long_id, "q-long", "MERCHANT", "KL-TILL-42", 1000, "RECEIVE", "RWF")
    t = scheme.prepare_transfer(long_id, "t-long", "q-long")
    ct = _pacs008(scheme, t)
    assert ct.debtor_agent.participant_id == messages.fit_id(long_id)
    assert len(ct.debtor_agent.participant_id) == 35


def test_the_settlement_account_has_a_statement_of_its_own(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    """camt.053 served the position account only (the cap plus the window's flows); the
    settlement account, the participant's central bank money, is what it reconciles with its
    own books: deposits in, settled nets out."""
    from entrepot.payments import SCHEME

    _pay(scheme, "t-settle")
    w = scheme.close_window()
    scheme.settle_window(SCHEME, w.id)
    clock.advance(1)
    st = messages.account_statement(scheme, "mtn-rw", "RWF", 0, clock.now_ns(), "settlement")
    conforms(iso20022.camt053(st), iso20022.CAMT053_SUBSET_XSD)
    balance = scheme.liquidity("mtn-rw", "RWF")["settlement_balance_minor"]
    assert st.closing_balance_minor == balance
    assert [(e.credit, e.amount_minor) for e in st.entries] == [
        (True, 50_000_000),  # the deposit
        (False, 50_000_000 - balance),  # the net paid at settlement
    ]
    assert st.account_id == "mtn-rw-RWF-settlement"
    with pytest.raises(InvalidPaymentInput, match="account must be one of"):
        messages.account_statement(scheme, "mtn-rw", "RWF", 0, clock.now_ns(), "cap")


def test_a_statement_entry_names_no_uetr_but_its_payments(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    """A camt.053 entry's ``Refs/UETR`` is the end-to-end reference of the payment booked,
    the one its pacs.008 and pacs.002 carry: a back office matches the two on it. Entries
    carried a UUID derived from the ledger posting's id instead (the commit of a leg, the cap
    granted), which is no payment's UETR and matched nothing. The posting is named by the
    account servicer's reference (``AcctSvcrRef``), unique and the same in every statement."""
    t = _pay(scheme, str(uuid.uuid4()))
    ct = _pacs008(scheme, t)
    clock.advance(1)
    statements = [
        messages.account_statement(scheme, participant, currency, 0, clock.now_ns())
        for participant, currency in (("maybank", "MYR"), ("mtn-rw", "RWF"), ("fxco", "MYR"))
    ]
    for st in statements:
        assert {e.transfer_id for e in st.entries} <= {None, ct.transfer_id}
        refs = [e.servicer_ref for e in st.entries]
        assert None not in refs and len(set(refs)) == len(refs)
        conforms(iso20022.camt053(st), iso20022.CAMT053_SUBSET_XSD)
    again = messages.account_statement(scheme, "maybank", "MYR", 0, clock.now_ns())
    assert [e.servicer_ref for e in again.entries] == [
        e.servicer_ref for e in statements[0].entries
    ]


def test_a_payments_entries_carry_its_uetr_and_other_entries_none(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    """A back office matches a statement line to its payment by the UETR (CBPR+ asks for it
    in the entry's references); entries had none, so a bank reconciled by amount and time.
    Each leg of a payment carries it from prepare to its commit's posting: the payer's debit
    and fee, the FX provider's two legs, the payee's credit. Caps, deposits and a bulk's
    summed postings name no single payment, and carry none."""
    t = _pay(scheme, "t-not-a-uuid")  # a UETR derived from a transfer id that is no UUID
    ct = _pacs008(scheme, t)
    clock.advance(1)
    booked = {
        (participant, currency): [
            (e.credit, e.transfer_id)
            for e in messages.account_statement(
                scheme, participant, currency, 0, clock.now_ns()
            ).entries
        ]
        for participant, currency in (("maybank", "MYR"), ("mtn-rw", "RWF"), ("fxco", "MYR"))
    }
    assert (True, ct.transfer_id) in booked["maybank", "MYR"]  # the payee's credit
    assert [e for e in booked["mtn-rw", "RWF"] if e[1] is not None] == [
        (False, ct.transfer_id),  # the payment's principal
        (False, ct.transfer_id),  # and its fee
    ]
    assert (False, ct.transfer_id) in booked["fxco", "MYR"]  # paid out in MYR
    for entries in booked.values():  # the cap granted and deposits: no payment's
        assert {uetr for _, uetr in entries} <= {None, ct.transfer_id}
        assert any(uetr is None for _, uetr in entries)


def _codes(xml: bytes) -> list[tuple[str, str, str, str]]:
    """Each entry's direction and bank transaction code (domain, family, sub-family)."""
    root = etree.fromstring(xml)
    ns = {"c": iso20022.NS_CAMT053}
    return [
        (
            entry.findtext("c:CdtDbtInd", namespaces=ns),
            entry.findtext("c:BkTxCd/c:Domn/c:Cd", namespaces=ns),
            entry.findtext("c:BkTxCd/c:Domn/c:Fmly/c:Cd", namespaces=ns),
            entry.findtext("c:BkTxCd/c:Domn/c:Fmly/c:SubFmlyCd", namespaces=ns),
        )
        for entry in root.iterfind(".//c:Ntry", namespaces=ns)
    ]


def test_a_statement_entry_has_the_bank_transaction_code_of_what_it_books(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    """Every entry was booked as a credit transfer (PMNT/RCDT or ICDT/OTHR): the payer's fee,
    the net debit cap granted, a deposit. A payment's legs are credit transfers, its fee a
    charge (the generic sub-family CHRG), and a movement that is no payment (a cap, a
    deposit) a miscellaneous credit or debit operation (MCOP / MDOP)."""
    from entrepot.payments import SCHEME

    _pay(scheme, "t-codes")
    clock.advance(1)

    def codes(participant: str, currency: str, account: str = "position") -> set[tuple[str, ...]]:
        st = messages.account_statement(scheme, participant, currency, 0, clock.now_ns(), account)
        xml = iso20022.camt053(st)
        conforms(xml, iso20022.CAMT053_SUBSET_XSD)
        return set(_codes(xml))

    assert codes("mtn-rw", "RWF") == {
        ("CRDT", "PMNT", "MCOP", "OTHR"),  # the net debit cap granted
        ("DBIT", "PMNT", "ICDT", "OTHR"),  # the payment's principal, to the FX provider
        ("DBIT", "PMNT", "ICDT", "CHRG"),  # its fee
    }
    assert codes("maybank", "MYR") == {
        ("CRDT", "PMNT", "MCOP", "OTHR"),
        ("CRDT", "PMNT", "RCDT", "OTHR"),  # the payee's credit
    }
    assert ("CRDT", "PMNT", "RCDT", "CHRG") in codes(SCHEME, "RWF")  # the fee, received
    assert codes("mtn-rw", "RWF", "settlement") == {("CRDT", "PMNT", "MCOP", "OTHR")}  # deposit


def test_the_interbank_settlement_date_is_the_day_the_window_settled(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    """IntrBkSttlmDt is the day the money moves between the agents' settlement accounts. The
    scheme nets: a committed transfer settles when its window is settled, a day the operator
    decides, not the day the transfer was prepared, which pacs.008 gave. It is left out (it
    is optional, ``[0..1]``) until the transfer's window has settled: no day is known before."""
    from entrepot.payments import SCHEME

    reserved = _pay(scheme, "t-settle-day", commit=False)
    assert _pacs008(scheme, reserved).settlement_date is None
    committed = scheme.commit_transfer("maybank", reserved.id)
    assert _pacs008(scheme, committed).settlement_date is None
    xml = iso20022.pacs008(_pacs008(scheme, committed))
    assert b"IntrBkSttlmDt" not in xml
    assert iso20022.parse_pacs008(xml).settlement_date is None

    clock.advance(2 * 86_400)  # the window is closed and settled two days later
    window = scheme.close_window()
    scheme.settle_window(SCHEME, window.id)
    settled_on = ns_to_datetime(scheme.get_window(window.id).settled_at_ns or 0).date()
    assert settled_on != ns_to_datetime(committed.created_at_ns).date()
    ct = _pacs008(scheme, scheme.get_transfer("mtn-rw", committed.id))
    assert ct.settlement_date == settled_on
    assert iso20022.parse_pacs008(iso20022.pacs008(ct)).settlement_date == settled_on


def _prepare_named_payer(scheme: PaymentScheme, transfer_id: str) -> PaymentTransfer:
    """mtn-rw's customer +250788123456 (Aline Uwase) pays the Kedai Kopi till 10.00 MYR, the
    quote naming the payer party; prepared, not committed."""
    quote_id = f"q-{transfer_id}"
    scheme.create_quote(
        "mtn-rw",
        quote_id,
        "MERCHANT",
        "KL-TILL-42",
        1000,
        "RECEIVE",
        "RWF",
        payer_alias_type="MSISDN",
        payer_alias="+250788123456",
    )
    return scheme.prepare_transfer("mtn-rw", transfer_id, quote_id)


def test_the_debtor_is_the_payer_party_the_quote_named(scheme: PaymentScheme) -> None:
    """pacs.008's Dbtr is the party that owes the creditor: the payer's customer, whose name
    a receiving bank screens and keeps as the originator. When the quote names the payer
    party by an alias the payer's participant holds, the debtor is that party, as the
    creditor is the payee's; the payer participant stood in as its own customer."""
    t = _prepare_named_payer(scheme, "t-payer")
    ct = _pacs008(scheme, t)
    assert (ct.debtor.name, ct.debtor.alias_type, ct.debtor.alias, ct.debtor.country) == (
        "Aline Uwase",
        "MSISDN",
        "+250788123456",
        "RW",
    )
    assert ct.debtor_agent.participant_id == "mtn-rw"
    # no payer party named: the payer participant stands in, as before
    unnamed = _pacs008(scheme, _pay(scheme, "t-no-payer", commit=False))
    assert (unnamed.debtor.name, unnamed.debtor.alias) == ("MTN MoMo Rwanda", None)


def test_a_party_whose_alias_is_longer_than_an_iso_id_still_has_a_pacs008(
    scheme: PaymentScheme,
) -> None:
    """A BUSINESS id holds up to 40 characters; a party's ``Othr/Id`` is Max35Text. A payee
    (or payer) with a longer one made its transfers' pacs.008 a 422 for ever. The party is
    still named, its id left out rather than cut (a cut id would name someone else)."""
    business = "REG-2026-KIGALI-TRADING-COMPANY-LTD-0042"
    assert len(business) == 40
    scheme.register_alias("maybank", "BUSINESS", business, "Kigali Trading Co", "MYR")
    scheme.create_quote("mtn-rw", "q-business", "BUSINESS", business, 1000, "RECEIVE", "RWF")
    t = scheme.prepare_transfer("mtn-rw", "t-business", "q-business")
    ct = _pacs008(scheme, t, messages.payee_party(scheme, t))
    assert (ct.creditor.name, ct.creditor.alias) == ("Kigali Trading Co", None)
    # still an organisation, also once read back (written without its id, it read back as
    # a person: pacs.008 tells them apart only by Id/OrgId)
    assert ct.creditor.organisation is True
    assert iso20022.parse_pacs008(iso20022.pacs008(ct)) == ct


def test_a_participant_standing_in_for_the_party_is_an_organisation(
    scheme: PaymentScheme,
) -> None:
    """Where no party is named, the payer (or payee) participant stands in as the debtor (or
    creditor): a bank or wallet, an organisation, which pacs.008 wrote as a party without an
    id, read as a person."""
    t = _pay(scheme, "t-stand-in", commit=False)  # no payer party named
    ct = _pacs008(scheme, t, None)  # nor a payee party

    assert (ct.debtor.name, ct.debtor.alias, ct.debtor.organisation) == (
        "MTN MoMo Rwanda",
        None,
        True,
    )
    assert (ct.creditor.name, ct.creditor.alias, ct.creditor.organisation) == (
        "Maybank",
        None,
        True,
    )
    parsed = iso20022.parse_pacs008(iso20022.pacs008(ct))
    assert (parsed.debtor.organisation, parsed.creditor.organisation) == (True, True)
    assert parsed == ct


def test_a_participant_standing_in_has_its_country_as_debtor_and_as_creditor(
    scheme: PaymentScheme,
) -> None:
    """A payer participant standing in for an unnamed debtor was given its country
    (``CtryOfRes``) and a payee participant standing in for an unnamed creditor none, though
    each is a participant of one country, and a named party has its country in either role.
    Both have it now, and read it back."""
    t = _pay(scheme, "t-stand-in-country", commit=False)  # no payer party named
    ct = _pacs008(scheme, t, None)  # nor a payee party

    assert (ct.debtor.name, ct.debtor.country) == ("MTN MoMo Rwanda", "RW")
    assert (ct.creditor.name, ct.creditor.country) == ("Maybank", "MY")
    xml = iso20022.pacs008(ct)
    assert b"<CtryOfRes>MY</CtryOfRes>" in xml.split(b"<Cdtr>")[1]
    assert iso20022.parse_pacs008(xml) == ct
    # the creditor named by the quote's alias has its participant's country too
    named = _pacs008(scheme, t, messages.payee_party(scheme, t))
    assert (named.creditor.name, named.creditor.country) == ("Kedai Kopi KL", "MY")


def test_a_merchant_or_business_party_is_identified_as_an_organisation(
    scheme: PaymentScheme,
) -> None:
    """A till or business id identifies an organisation (``Id/OrgId/Othr``); pacs.008 put
    every alias under ``PrvtId``, telling the receiving bank the merchant was a private
    person. A person's alias (an MSISDN) stays under ``PrvtId``."""
    t = _prepare_named_payer(scheme, "t-org")
    ct = _pacs008(scheme, t, messages.payee_party(scheme, t))
    xml = iso20022.pacs008(ct)
    assert b"<OrgId>" in xml.split(b"<Cdtr>")[1]
    assert b"<PrvtId>" in xml.split(b"<Dbtr>")[1].split(b"</Dbtr>")[0]
    assert (ct.creditor.organisation, ct.debtor.organisation) == (True, False)
    assert iso20022.parse_pacs008(xml) == ct


def _served_pacs008(scheme: PaymentScheme, t: PaymentTransfer) -> bytes:
    """The transfer's pacs.008 as the API and the CLI serve it (its payee party looked up)."""
    xml = iso20022.pacs008(messages.credit_transfer(scheme, t, messages.payee_party(scheme, t)))
    conforms(xml, iso20022.PACS008_SUBSET_XSD)
    return xml


def _msg_id(xml: bytes) -> str:
    return xml.split(b"<MsgId>")[1].split(b"</MsgId>")[0].decode()


def test_a_pacs008_whose_content_changed_has_a_new_message_id_and_the_same_one_else(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    """GrpHdr/MsgId identifies one message. A transfer's pacs.008 gains IntrBkSttlmDt when
    its window settles, and it kept its MsgId: two different messages under one id, which a
    receiving agent's duplicate check drops as a resend. The same content served again is
    the same message, byte for byte, whenever it is asked for."""
    from entrepot.payments import SCHEME

    committed = _pay(scheme, str(uuid.uuid4()))
    other = _served_pacs008(scheme, _pay(scheme, str(uuid.uuid4())))
    before = _served_pacs008(scheme, committed)
    clock.advance(3600)
    assert _served_pacs008(scheme, committed) == before  # the same content, the same bytes
    scheme.settle_window(SCHEME, scheme.close_window().id)
    settled = scheme.get_transfer("mtn-rw", committed.id)
    after = _served_pacs008(scheme, settled)

    assert b"<IntrBkSttlmDt>" in after and b"<IntrBkSttlmDt>" not in before
    assert _msg_id(after) != _msg_id(before)
    assert len(_msg_id(after)) <= 35 and len(_msg_id(before)) <= 35
    clock.advance(3600)
    assert _served_pacs008(scheme, settled) == after
    # another transfer's message never shares its id
    assert _msg_id(other) not in (_msg_id(before), _msg_id(after))


def test_a_pacs002_names_the_pacs008_served_now_and_is_the_same_message_when_asked_again(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    """pacs.002's OrgnlMsgId is the id of the pacs.008 it reports on: once the transfer's
    window settles, that is the settled pacs.008's, so the ACSC report is another message
    and has another id. Its CreDtTm was the clock's reading at each request, so one report
    asked twice was two messages under one MsgId; it is now when the transfer reached the
    state reported."""
    from entrepot.payments import SCHEME

    committed = _pay(scheme, "t-status-settles")
    report = iso20022.pacs002(_pacs002(scheme, committed))
    clock.advance(60)
    assert iso20022.pacs002(_pacs002(scheme, committed)) == report
    assert _msg_id(_served_pacs008(scheme, committed)) in report.decode()

    scheme.settle_window(SCHEME, scheme.close_window().id)
    settled = scheme.get_transfer("mtn-rw", committed.id)
    later = _pacs002(scheme, settled)
    assert later.original_message_id == _msg_id(_served_pacs008(scheme, settled))
    assert later.message_id != _msg_id(report)
    assert settled.window_id is not None
    settled_at = scheme.get_window(settled.window_id).settled_at_ns
    assert settled_at is not None and settled_at > settled.updated_at_ns
    assert later.created_at == ns_to_datetime(settled_at)  # it names the settled pacs.008


def test_two_statements_made_at_one_moment_have_two_message_ids(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    """camt.053's MsgId was the participant and the clock's reading: the position and the
    settlement statements (or two currencies, or two periods) made at the same moment shared
    it. One statement made again at the same moment is the same message."""
    _pay(scheme, "t-two-statements")
    clock.advance(1)
    now = clock.now_ns()
    position = messages.account_statement(scheme, "mtn-rw", "RWF", 0, now)
    settlement = messages.account_statement(scheme, "mtn-rw", "RWF", 0, now, "settlement")
    shorter = messages.account_statement(scheme, "mtn-rw", "RWF", 0, now - NS_PER_S)
    ids = {position.message_id, settlement.message_id, shorter.message_id}
    assert len(ids) == 3 and all(len(i) <= 35 for i in ids)
    again = messages.account_statement(scheme, "mtn-rw", "RWF", 0, now)
    assert iso20022.camt053(again) == iso20022.camt053(position)
    clock.advance(1)  # made later: its CreDtTm is another, so is its MsgId
    assert messages.account_statement(scheme, "mtn-rw", "RWF", 0, now).message_id not in ids


def test_an_expiry_is_reported_from_when_the_transfer_expired_however_it_is_recorded(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    """pacs.002's CreDtTm is when the transfer reached the state it reports. An expired
    transfer is reported RJCT (AB05) as soon as its expiry passes, before the deadline pass
    records it: its CreDtTm was then the moment it was prepared (its row's last change), a
    rejection dated while it was still reserved; once the pass recorded the expiry it was the
    pass's moment, so one report of one expiry was two messages with two ids. It is when the
    transfer expired, the same message before and after the pass, for payer and payee."""
    reserved = _pay(scheme, "t-expires", commit=False)
    clock.advance(3600)
    for caller in ("mtn-rw", "maybank"):
        seen = scheme.get_transfer(caller, reserved.id)  # expired, not recorded yet
        assert (seen.state.value, seen.reason) == ("ABORTED", "expired")
        before = _pacs002(scheme, seen)
        assert before.created_at == ns_to_datetime(reserved.expires_at_ns)
    before = iso20022.pacs002(_pacs002(scheme, scheme.get_transfer("mtn-rw", reserved.id)))
    clock.advance(60)
    scheme.process_deadlines()
    recorded = scheme.get_transfer("mtn-rw", reserved.id)
    assert recorded.updated_at_ns > reserved.expires_at_ns  # the pass's moment
    assert iso20022.pacs002(_pacs002(scheme, recorded)) == before


@pytest.mark.parametrize("amount_type", ["SEND", "RECEIVE"])
def test_a_pacs008_carries_the_scheme_fee_the_payer_bears(
    scheme: PaymentScheme, amount_type: str
) -> None:
    """pacs.008 left the scheme's fee out (ChrgBr SLEV, no ChrgsInf): a receiving agent saw
    the principal alone and not what the payer paid. The payer pays the fee whether its
    amount includes it (SEND) or it is added on top (RECEIVE), and the payee is credited the
    principal whole: ChrgBr DEBT, the fee a ChrgsInf in the payer's currency, taken by the
    hub (the scheme operator's participant), read back as written."""
    from entrepot.payments import SCHEME

    amount = 100_000 if amount_type == "SEND" else 1000
    quote_id = f"q-fee-{amount_type}"
    scheme.create_quote("mtn-rw", quote_id, "MERCHANT", "KL-TILL-42", amount, amount_type, "RWF")
    t = scheme.prepare_transfer("mtn-rw", f"t-fee-{amount_type}", quote_id)
    assert t.fee_minor > 0
    ct = _pacs008(scheme, t, messages.payee_party(scheme, t))

    assert ct.charge_bearer == "DEBT"
    hub = scheme.get_participant(SCHEME)
    assert [
        (c.amount_minor, c.currency, c.agent.participant_id, c.agent.name) for c in ct.charges
    ] == [(t.fee_minor, "RWF", SCHEME, hub.name)]
    # what the payer pays: the principal instructed plus the fee; the payee gets the rest whole
    assert ct.instructed_amount_minor is not None
    assert ct.instructed_amount_minor + ct.charges[0].amount_minor == t.source_amount_minor
    assert (ct.amount_minor, ct.currency) == (t.target_amount_minor, "MYR")
    xml = iso20022.pacs008(ct)
    assert b"<ChrgBr>DEBT</ChrgBr>" in xml and b"<ChrgsInf>\n" in xml
    assert iso20022.parse_pacs008(xml) == ct


@pytest.mark.parametrize("amount_type", ["SEND", "RECEIVE"])
def test_a_cross_currency_pacs008_names_the_fx_provider_as_intermediary_agent(
    scheme: PaymentScheme, amount_type: str
) -> None:
    """A cross-currency payment runs through its FX provider: the payer's participant pays it
    the principal in RWF (leg 1), it pays the payee's participant the MYR (leg 2). pacs.008
    named no FX provider at all. It is ``IntrmyAgt1``, identified as the other agents are (its
    BIC and participant id), and the amounts say what its two legs move: ``InstdAmt`` what it
    is paid, ``IntrBkSttlmAmt`` what it pays, ``XchgRate`` the rate between them."""
    scheme.register_participant(
        "fx-bic", "FX Bank", "fx_provider", "SG", ["RWF", "MYR"], bic="FXBKSGSGXXX"
    )
    scheme.deposit("fx-bic", "MYR", 5_000_000, "dep-fx-bic")
    scheme.set_net_debit_cap("fx-bic", "MYR", 2_000_000)
    scheme.post_fx_rate("fx-bic", "RWF", "MYR", Decimal("0.0033"), 100, 3600)  # the best rate
    amount = 100_000 if amount_type == "SEND" else 1000
    quote_id = f"q-fx-{amount_type}"
    scheme.create_quote("mtn-rw", quote_id, "MERCHANT", "KL-TILL-42", amount, amount_type, "RWF")
    t = scheme.prepare_transfer("mtn-rw", f"t-fx-{amount_type}", quote_id)
    assert (t.fx_provider, t.fx_rate) == ("fx-bic", Decimal("0.003267"))
    t = scheme.commit_transfer("maybank", t.id)
    ct = _pacs008(scheme, t, messages.payee_party(scheme, t))

    assert ct.intermediary_agent == iso20022.Agent(
        participant_id="fx-bic", bic="FXBKSGSGXXX", name="FX Bank"
    )
    principal = t.source_amount_minor - t.fee_minor
    assert (ct.instructed_amount_minor, ct.instructed_currency) == (principal, "RWF")
    assert (ct.amount_minor, ct.currency, ct.fx_rate) == (t.target_amount_minor, "MYR", t.fx_rate)
    # what the FX provider was paid and paid, as its legs on the ledger moved them
    fx_rwf = scheme.get_participant("fx-bic").currencies["RWF"].position_account
    fx_myr = scheme.get_participant("fx-bic").currencies["MYR"].position_account
    rwf = scheme.ledger.statement(fx_rwf).lines
    myr = scheme.ledger.statement(fx_myr).lines
    assert [line.credit_minor for line in rwf if line.transfer.pending_id] == [principal]
    assert [line.debit_minor for line in myr if line.transfer.pending_id] == [ct.amount_minor]
    # the rate between them: SEND converts the principal down, RECEIVE's principal is the
    # fewest RWF that buy the amount (1 RWF is 100 sen's 0.3267)
    exact = Decimal(principal) * ct.fx_rate * 100
    if amount_type == "SEND":
        assert ct.amount_minor == int(exact)
    else:
        assert exact - ct.fx_rate * 100 < ct.amount_minor <= exact
    xml = iso20022.pacs008(ct)
    assert b"<IntrmyAgt1>" in xml
    assert iso20022.parse_pacs008(xml) == ct


def test_a_payment_in_one_currency_has_no_intermediary_agent(scheme: PaymentScheme) -> None:
    """A payment in one currency goes from the payer's participant to the payee's directly
    (one leg): no intermediary agent, no rate; its instructed amount is the principal in that
    currency, which its fee's ``ChrgsInf`` needs (found by a review: ISO 20022's
    ChargesInformationAndInstructedAmountRule; it had none)."""
    scheme.register_participant("bk-rw", "Bank of Kigali", "bank", "RW", ["RWF"])
    scheme.register_alias("bk-rw", "MSISDN", "+250722000111", "Eric Habimana", "RWF")
    scheme.create_quote("mtn-rw", "q-rwf", "MSISDN", "+250722000111", 10_000, "SEND", "RWF")
    t = scheme.prepare_transfer("mtn-rw", "t-rwf", "q-rwf")
    assert t.fx_provider is None
    ct = _pacs008(scheme, t, messages.payee_party(scheme, t))

    assert ct.intermediary_agent is None and ct.fx_rate is None
    assert t.fee_minor > 0 and ct.charges[0].amount_minor == t.fee_minor
    principal = t.source_amount_minor - t.fee_minor
    assert (ct.instructed_amount_minor, ct.instructed_currency) == (principal, "RWF")
    assert (ct.amount_minor, ct.currency) == (t.target_amount_minor, "RWF") == (principal, "RWF")
    xml = iso20022.pacs008(ct)
    assert b"IntrmyAgt1" not in xml and b"XchgRate" not in xml and b"<InstdAmt" in xml


def test_pacs008_does_not_name_a_party_an_alias_was_registered_for_since(
    scheme: PaymentScheme, clock: FakeClock
) -> None:
    """An alias its participant removed and registered again after the payment (a number
    given to a new customer) is another registration, for another party. pacs.008 named
    whoever the participant holds the alias for now: the new customer as the debtor who paid
    (or the creditor who was paid), a payment neither made nor received. Only the
    registration in force when the transfer was prepared is named; otherwise the
    participant stands in, as for an alias removed."""
    t = _prepare_named_payer(scheme, "t-re-registered")
    before = _pacs008(scheme, t, messages.payee_party(scheme, t))
    assert (before.debtor.name, before.creditor.name) == ("Aline Uwase", "Kedai Kopi KL")

    clock.advance(60)
    scheme.remove_alias("mtn-rw", "MSISDN", "+250788123456")
    scheme.register_alias("mtn-rw", "MSISDN", "+250788123456", "Jean Mugisha", "RWF")
    scheme.remove_alias("maybank", "MERCHANT", "KL-TILL-42")
    scheme.register_alias("maybank", "MERCHANT", "KL-TILL-42", "Another Kopi", "MYR")
    after = _pacs008(scheme, t, messages.payee_party(scheme, t))

    assert (after.debtor.name, after.debtor.alias) == ("MTN MoMo Rwanda", None)
    assert (after.creditor.name, after.creditor.alias) == ("Maybank", None)
    # a transfer prepared since pays (and names) the new registrations
    later = _prepare_named_payer(scheme, "t-after-re-registration")
    named = _pacs008(scheme, later, messages.payee_party(scheme, later))
    assert (named.debtor.name, named.creditor.name) == ("Jean Mugisha", "Another Kopi")


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("a" * 139 + "e\u0301" + "x" * 50, "a" * 139),  # an accent written after its letter
        ("a" * 139 + "\U0001f469\u200d\U0001f4bb" + "x", "a" * 139),  # an emoji sequence
        ("a" * 139 + "\U0001f1f7\U0001f1fc" + "x", "a" * 139),  # a flag (two indicators)
        (
            "a" * 137 + "\U0001f1f7\U0001f1fc\U0001f1f2\U0001f1fe" + "x",
            "a" * 137 + "\U0001f1f7\U0001f1fc",
        ),
        ("a" * 139 + "\u2764\ufe0f" + "x", "a" * 139),  # a variation selector
        ("a" * 131 + "         " + "bcdef", "a" * 131),  # the cut's trailing spaces
        ("Kigali " * 30, ("Kigali " * 20).rstrip()),
        ("\u00e9" * 200, "\u00e9" * 140),  # composed: each its own character
        ("a" * 140, "a" * 140),
    ],
)
def test_a_long_name_is_cut_before_the_character_its_limit_falls_in(name: str, kept: str) -> None:
    assert messages.fit_name(name) == kept


def test_a_payees_long_name_is_cut_whole_in_its_pacs008(scheme: PaymentScheme) -> None:
    """A directory name holds 200 characters, pacs.008's Max140Text 140: cut at 140 code
    points, 'Café' written with a combining accent lost its accent."""
    name = "Kedai " * 22 + "Kop Cafe\u0301 Kopi"  # the accent is the 141st character
    assert len(name) > 140 and name[140] == "\u0301"
    scheme.register_alias("maybank", "MSISDN", "+60123456789", name, "MYR")
    scheme.create_quote("mtn-rw", "q-long", "MSISDN", "+60123456789", 1000, "RECEIVE", "RWF")
    t = scheme.prepare_transfer("mtn-rw", "t-long", "q-long")
    ct = _pacs008(scheme, t, messages.payee_party(scheme, t))
    assert ct.creditor.name == "Kedai " * 22 + "Kop Caf"  # schema-valid (_pacs008 checks)
    assert iso20022.parse_pacs008(iso20022.pacs008(ct)) == ct
