"""The trade network's use cases: hubs, merchants, catalogue, landed-cost quotes, checkout
into escrow, fulfilment and tracking, release and payout, cancellation, returns and the
deadlines that act by themselves. Disputes are in ``disputes.py`` (the same service).

Every use case runs in one unit of work that holds the ledger's write lock; the payment
scheme's use cases (escrow, quotes, transfers) join it, so an order and its escrow commit
together or not at all. A merchant payout runs in its own unit of work after the release that
owes it, idempotently by its transfer id, and is retried until it is paid.
"""

from __future__ import annotations

import itertools
import json
import logging
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum
from types import MappingProxyType
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from entrepot.kernel.clock import NS_PER_S, Clock, SystemClock, ns_to_datetime
from entrepot.kernel.countries import is_country
from entrepot.kernel.errors import Conflict, DomainError
from entrepot.kernel.money import Money, allocate, convert, get_currency
from entrepot.payments import PaymentScheme
from entrepot.payments import store as pay_store
from entrepot.payments.errors import ParticipantSuspended, PaymentError, TransferBlocked
from entrepot.payments.keyed import (
    TRADE_BUYER,
    TRADE_HUB,
    TRADE_ITEM,
    TRADE_MERCHANT,
    TRADE_QUOTE,
    TRADE_TRACKING,
    mark_keyed,
)
from entrepot.payments.model import (
    REVIEW_REJECTED,
    REVIEW_RELEASED,
    SCHEME_AMOUNT_MAX,
    AliasType,
    AmountType,
    DeadlineAction,
    TransferState,
    less_spread,
)
from entrepot.payments.model import Party as DirectoryParty
from entrepot.payments.services import SCHEME, source_for_target
from entrepot.storage.engine import read_connection
from entrepot.storage.uow import UnitOfWork
from entrepot.trade import store as st
from entrepot.trade.customs import (
    ROUNDING,
    CustomsError,
    Declaration,
    DeclarationLine,
    LandedCost,
    Party,
    Shipment,
    Tariffs,
    UnitMismatch,
    check_hs_code,
    declare,
    default_tariffs,
    landed_cost,
)
from entrepot.trade.disputes import DisputeDesk
from entrepot.trade.errors import (
    AlreadyExists,
    BuyerNotFound,
    CurrencyNotHeld,
    CustomsUnitMissing,
    Forbidden,
    HubNotFound,
    IdConflict,
    InvalidTradeInput,
    InvalidTransition,
    ItemNotFound,
    MerchantNotActive,
    MerchantNotFound,
    OrderNotFound,
    OutOfStock,
    PaymentFailed,
    QuoteExpired,
    QuoteNotFound,
    TradeError,
    WalletConsentMissing,
    WarehouseNotFound,
    WindowClosed,
)
from entrepot.trade.model import (
    DAY_NS,
    TERMINAL_ORDER_STATES,
    Buyer,
    CustomsFx,
    FreightCard,
    Hub,
    HubKind,
    Item,
    Merchant,
    MerchantState,
    Order,
    OrderState,
    QuoteLine,
    Role,
    StockLevel,
    TrackingEvent,
    TradeQuote,
    WalletConsent,
    Warehouse,
    check_customs_measure,
    check_id,
    check_non_negative,
    check_note,
    check_positive,
    check_state_filter,
    check_text,
    check_tracking_code,
    check_tracking_step,
    derive_order_state,
    fulfilment_status,
    half_up,
    merchant_share,
    parse_principal,
    principal,
)

#: who decides the escrows an order makes (the scheme's ``managed_by``): trade's use cases alone
TRADE_MANAGER = "trade"
log = logging.getLogger(__name__)
QUOTE_TTL_S = 900
PAYOUT_TTL_S = 86_400  # a payout held by screening waits a day for the reviewer
LINES_MAX = 50
QUANTITY_MAX = 10_000
ESCROW_BACKSTOP_DAYS = 366  # the scheme's own escrow deadline: its longest, far past trade's
RETURN_RESPONSE_DAYS = 3
INCOTERM = "FCA"  # line values are the goods alone; freight and insurance are stated apart
ORIGIN_CODES = frozenset({"EMA", "EMB", "EXA", "EXB", "EXC", "EXD", "EMC"})
_T = TypeVar("_T")


def _check_freight(card: FreightCard) -> None:
    """What the API's FreightCardIn admits: rates 0..10^15 minor units, insurance 0..10000
    bps (a negative rate would pay the buyer for freight; a huge one overflows the quote)."""
    for what, value in (
        ("domesticBaseMinor", card.domestic_base_minor),
        ("domesticPerKgMinor", card.domestic_per_kg_minor),
        ("internationalBaseMinor", card.international_base_minor),
        ("internationalPerKgMinor", card.international_per_kg_minor),
    ):
        check_non_negative(value, f"freight {what}")
    if type(card.insurance_bps) is not int or not 0 <= card.insurance_bps <= 10_000:
        raise InvalidTradeInput("insurance must be 0..10000 bps", field="insuranceBps")


class Keep(Enum):
    """An update leaves the field as it is (``None`` clears it)."""

    KEEP = "keep"


#: China Standard Time, where China's CBEC annual limit counts its calendar year (no daylight
#: saving since 1991)
CHINA_TIME = timezone(timedelta(hours=8), "CST")


KEEP = Keep.KEEP


class OnboardingScreening(Protocol):
    """Screens a business at onboarding: ``(outcome, why)`` with outcome clear, review or
    match (``entrepot.risk.sanctions`` plugs in here)."""

    def __call__(self, name: str, country: str) -> tuple[str, str]: ...


class RepaymentWithholder(Protocol):
    """Lending: how much of a merchant payout goes to repay its loan (0 without one)."""

    def withhold(
        self,
        merchant_id: str,
        currency: str,
        payout_minor: int,
        reference: str,
        *,
        uow: Any,
        lender_id: str | None = None,
    ) -> int: ...


def check_operator_active(
    conn: Connection, operator: str, then: str = "", *, field: str | None = None
) -> None:
    """Refuse ``participant_suspended`` while the scheme has the participant ``operator``
    suspended (``then``: what the message adds; ``field``: the request's field that named
    it): a hub operator acting for its hub, a wallet deciding its consent for a buyer or
    the wallet a buyer is registered to pay from. A participant the scheme does not know is
    left to the caller's own checks."""
    found = pay_store.load_participant(conn, operator)
    if found is not None and not found.active:
        raise ParticipantSuspended(f"participant {operator!r} is suspended{then}", field=field)


class TradeNetwork(DisputeDesk):
    def __init__(
        self,
        engine: Engine,
        scheme: PaymentScheme,
        clock: Clock | None = None,
        *,
        tariffs: Tariffs | None = None,
        onboarding_screening: OnboardingScreening | None = None,
        lending: RepaymentWithholder | None = None,
    ) -> None:
        self.engine = engine
        self.scheme = scheme
        self.clock: Clock = clock or SystemClock()
        self.tariffs = tariffs or default_tariffs()
        self.onboarding_screening = onboarding_screening
        self.lending = lending

    # ------------------------------------------------------------------ plumbing
    @contextmanager
    def _write(self, result: str = "") -> Iterator[UnitOfWork]:
        """A trade write, the scheme's joining it. The keyed API request it serves is marked
        done in it (``payments/keyed.py``; ``result``: what a create made): the retry of one
        whose answer was lost is answered from what it did, not run again and refused."""
        with UnitOfWork(self.engine) as uow:
            # the escrows an order makes are trade's alone to decide (managed_by)
            with self.scheme.joined(uow, manager=TRADE_MANAGER):
                yield uow
            mark_keyed(uow.connection, self._now(), result)
            uow.commit()

    def _now(self) -> int:
        return self.clock.now_ns()

    def _today(self) -> date:
        return ns_to_datetime(self._now()).date()

    def _one(self, conn: Connection, table: sa.Table, key: str, value: str) -> Any:
        return conn.execute(sa.select(table).where(table.c[key] == value)).first()

    def _hub(self, conn: Connection, hub_id: str) -> Hub:
        row = self._one(conn, st.hubs, "id", hub_id)
        if row is None:
            raise HubNotFound(f"hub {hub_id!r} does not exist", field="hub")
        return st.hub_from_row(row)

    def _hub_of_caller(self, conn: Connection, caller: str) -> Hub:
        row = self._one(conn, st.hubs, "participant_id", caller)
        if row is None:
            raise Forbidden(f"{caller} is not a hub operator")
        return st.hub_from_row(row)

    def _acting_hub(self, conn: Connection, caller: str) -> Hub:
        """The hub ``caller`` operates, to act for: refused ``participant_suspended`` while
        the scheme has its operator suspended. A suspended hub operator kept onboarding
        merchants, adding warehouses, registering buyers and reviewing merchants (found by a
        review): suspension stops what a participant does, not its payments alone. Its reads,
        revocations and what protects the buyers of orders already paid (tracking, cancelling,
        disputes) stay."""
        hub = self._hub_of_caller(conn, caller)
        check_operator_active(
            conn, caller, f": it acts for hub {hub.id} again once the scheme resumes it"
        )
        return hub

    def _merchant(self, conn: Connection, merchant_id: str) -> Merchant:
        row = self._one(conn, st.merchants, "id", merchant_id)
        if row is None:
            raise MerchantNotFound(f"merchant {merchant_id!r} does not exist", field="merchant")
        return st.merchant_from_row(row)

    def _buyer(self, conn: Connection, buyer_id: str) -> Buyer:
        row = self._one(conn, st.buyers, "id", buyer_id)
        if row is None:
            raise BuyerNotFound(f"buyer {buyer_id!r} does not exist", field="buyer")
        return st.buyer_from_row(row)

    def _as(self, caller: str, role: Role) -> str:
        got, actor = parse_principal(caller)
        if got is not role:
            raise Forbidden(f"only a {role.value} may do this, not {caller}")
        return actor

    def _order(self, conn: Connection, order_id: str) -> Order:
        row = self._one(conn, st.orders, "id", order_id)
        if row is None:
            raise OrderNotFound(f"order {order_id!r} does not exist", field="order")
        return st.order_from_row(row)

    def _event(
        self, conn: Connection, order_id: str, kind: str, actor: str, **detail: object
    ) -> None:
        conn.execute(
            sa.insert(st.order_events).values(
                order_id=order_id,
                seq=st.next_seq(conn, st.order_events, "order_id", order_id),
                kind=kind,
                actor=actor,
                at=self._now(),
                detail=st.dumps(detail),
            )
        )

    def _event_once(
        self, conn: Connection, order_id: str, kind: str, actor: str, **detail: object
    ) -> None:
        """:meth:`_event`, unless the order's log already ends with this very event (a
        failure the deadline pass meets again at every pass)."""
        if not st.last_event_is(
            conn, st.order_events, "order_id", order_id, kind, st.dumps(detail)
        ):
            self._event(conn, order_id, kind, actor, **detail)

    def _set_state(self, conn: Connection, order: Order, **values: object) -> Order:
        kinds = [
            r[0]
            for r in conn.execute(
                sa.select(st.order_events.c.kind)
                .where(st.order_events.c.order_id == order.id)
                .order_by(st.order_events.c.seq)
            ).all()
        ]
        state = derive_order_state(kinds)
        conn.execute(
            sa.update(st.orders)
            .where(st.orders.c.id == order.id)
            .values(state=state.value, **values)
        )
        return st.order_from_row(self._one(conn, st.orders, "id", order.id))

    # ------------------------------------------------------------------ hubs
    def create_hub(
        self,
        caller: str,
        hub_id: str,
        name: str,
        kind: HubKind | str,
        country: str,
        currency: str,
        participant_id: str,
        *,
        arbitrators: Sequence[str],
        customs_authority: str,
        partners: Sequence[str] = (),
        dftz: bool = False,
        commission_bps: int = 500,
        handling_days: int = 5,
        delivery_days: int = 30,
        dispute_days: int = 7,
        freight: FreightCard,
    ) -> Hub:
        """The scheme operator adds a hub; its operator, customs authority and partners are
        payment participants already; the panel has at least two arbitrators (one appeal)."""
        if caller != SCHEME:
            raise Forbidden("only the scheme operator adds hubs")
        try:
            hub_kind = HubKind(kind)
        except ValueError:
            raise InvalidTradeInput("kind must be export, import or ehub", field="kind") from None
        panel = tuple(check_id(a, "arbitrator") for a in arbitrators)
        if len(set(panel)) < 2:
            raise InvalidTradeInput("a hub needs at least two arbitrators", field="arbitrators")
        for what, days, top in (
            ("handlingDays", handling_days, 60),
            ("deliveryDays", delivery_days, 120),
            ("disputeDays", dispute_days, 60),
        ):
            if type(days) is not int or not 0 < days <= top:
                raise InvalidTradeInput(f"{what} must be 1..{top}", field=what)
        if delivery_days <= handling_days:
            # both run from payment: a parcel handed over in time was past its delivery
            # deadline, and the deadline pass refunded the buyer while it was on its way
            raise InvalidTradeInput(
                f"deliveryDays ({delivery_days}) must come after its hand-over deadline "
                f"(handlingDays {handling_days}): both run from payment",
                field="deliveryDays",
            )
        if type(commission_bps) is not int or not 0 <= commission_bps < 5_000:
            raise InvalidTradeInput("commission must be 0..4999 bps", field="commissionBps")
        if not is_country(country):
            raise InvalidTradeInput(
                f"country {country!r} is not an assigned ISO 3166-1 alpha-2 code", field="country"
            )
        _check_freight(freight)
        hub = Hub(
            check_id(hub_id, "hub"),
            check_text(name, "name"),
            hub_kind,
            country,
            get_currency(currency).code,
            participant_id,
            panel,
            customs_authority,
            tuple(partners),
            bool(dftz),
            commission_bps,
            handling_days,
            delivery_days,
            dispute_days,
            freight,
        )
        for pid in (participant_id, customs_authority, *partners):
            self.scheme.get_participant(pid)  # raises ParticipantNotFound
        with self._write(f"{TRADE_HUB}:{hub.id}") as uow:
            conn = uow.connection
            row = self._one(conn, st.hubs, "id", hub.id)
            if row is not None:  # a resend (ADR 0009), or another request with a taken id
                found = st.hub_from_row(row)
                return _resent(found, found == hub, "hub", hub.id, "hubId")
            if self._one(conn, st.hubs, "participant_id", participant_id) is not None:
                raise AlreadyExists(f"{participant_id} already operates a hub")
            conn.execute(sa.insert(st.hubs).values(**st.hub_values(hub, self._now())))
        return hub

    def add_warehouse(self, caller: str, warehouse_id: str, name: str) -> Warehouse:
        with self._write() as uow:
            conn = uow.connection
            hub = self._hub_of_caller(conn, caller)
            check_id(warehouse_id, "warehouse")
            w = Warehouse(warehouse_id, hub.id, check_text(name, "name"))
            row = self._one(conn, st.warehouses, "id", warehouse_id)
            if row is not None:
                found = st.warehouse_from_row(row)
                return _resent(found, found == w, "warehouse", w.id, "warehouseId")
            self._acting_hub(conn, caller)
            conn.execute(sa.insert(st.warehouses).values(id=w.id, hub_id=w.hub_id, name=w.name))
        return w

    def get_hub(self, hub_id: str) -> Hub:
        with read_connection(self.engine) as conn:
            return self._hub(conn, hub_id)

    def list_hubs(self) -> list[Hub]:
        with read_connection(self.engine) as conn:
            rows = conn.execute(sa.select(st.hubs).order_by(st.hubs.c.id)).all()
        return [st.hub_from_row(r) for r in rows]

    def list_warehouses(self, hub_id: str) -> list[Warehouse]:
        with read_connection(self.engine) as conn:
            rows = conn.execute(
                sa.select(st.warehouses)
                .where(st.warehouses.c.hub_id == hub_id)
                .order_by(st.warehouses.c.id)
            ).all()
        return [st.warehouse_from_row(r) for r in rows]

    # ------------------------------------------------------------------ merchants, buyers
    def onboard_merchant(
        self,
        caller: str,
        merchant_id: str,
        legal_name: str,
        registration_number: str,
        settlement_alias_type: AliasType | str,
        settlement_alias: str,
        *,
        currencies: Sequence[str] = (),
    ) -> Merchant:
        """The eHub onboards a business of its country whose settlement alias is at one of
        its partner banks or wallets; onboarding screening may ask a person to review it."""
        with read_connection(self.engine) as conn:
            hub = self._hub_of_caller(conn, caller)
        check_id(merchant_id, "merchant")
        name = check_text(legal_name, "legalName")
        reg = check_text(registration_number, "registrationNumber", 64)
        party = self.scheme.lookup_party(settlement_alias_type, settlement_alias)
        if party.participant_id not in hub.partners:
            raise InvalidTradeInput(
                f"settlement alias is at {party.participant_id}, not a partner of {hub.id} "
                f"({', '.join(hub.partners) or 'none'})",
                field="settlementAlias",
            )
        wanted = tuple(dict.fromkeys([party.currency, *(c.upper() for c in currencies)]))

        def resent(row: Any) -> Merchant:
            found = st.merchant_from_row(row)
            same = (found.hub_id, found.legal_name, found.registration_number) == (
                hub.id,
                name,
                reg,
            ) and (found.settlement_alias_type, found.settlement_alias, found.currencies) == (
                party.alias_type.value,
                party.alias,
                wanted,
            )
            return _resent(found, same, "merchant", merchant_id, "merchantId")

        with read_connection(self.engine) as conn:  # a resend is answered, not screened again
            row = self._one(conn, st.merchants, "id", merchant_id)
        if row is not None:
            return resent(row)
        with read_connection(self.engine) as conn:  # before screening logs a decision for it
            self._acting_hub(conn, caller)

        def bank_suspended() -> ParticipantSuspended:
            return ParticipantSuspended(
                f"settlement alias is at {party.participant_id}, which is suspended: it "
                "receives no payout until it is resumed",
                field="settlementAlias",
            )

        bank = self.scheme.get_participant(party.participant_id)
        if not bank.active:  # it receives no payout until resumed (a resend is answered)
            raise bank_suspended()
        held = bank.currencies
        missing = [c for c in wanted if c not in held]
        if missing:
            raise CurrencyNotHeld(
                f"{party.participant_id} holds no {', '.join(missing)} for this merchant",
                field="currencies",
            )
        outcome, why = ("clear", "no screening configured")
        if self.onboarding_screening is not None:
            outcome, why = self.onboarding_screening(name, hub.country)
        state = {"clear": MerchantState.ACTIVE, "review": MerchantState.REVIEW}.get(
            outcome, MerchantState.SUSPENDED
        )
        m = Merchant(
            merchant_id,
            hub.id,
            name,
            reg,
            hub.country,
            wanted,
            party.alias_type.value,
            party.alias,
            party.participant_id,
            state,
            f"{outcome}: {why}"[:400],
            self._now(),
        )
        with self._write(f"{TRADE_MERCHANT}:{merchant_id}") as uow:
            conn = uow.connection
            row = self._one(conn, st.merchants, "id", merchant_id)
            if row is not None:  # made since the look above
                return resent(row)
            self._acting_hub(conn, caller)  # suspended since the look above
            now_bank = pay_store.load_participant(conn, party.participant_id)
            if now_bank is not None and not now_bank.active:  # while screening ran, say
                raise bank_suspended()
            clash = conn.execute(
                sa.select(st.merchants.c.id).where(
                    st.merchants.c.country == m.country,
                    st.merchants.c.registration_number == reg,
                )
            ).first()
            if clash is not None:
                raise AlreadyExists(f"{m.country} registration {reg} is merchant {clash[0]}")
            conn.execute(sa.insert(st.merchants).values(**_merchant_values(m)))
        return m

    def review_merchant(
        self, caller: str, merchant_id: str, approve: bool, reason: str
    ) -> Merchant:
        """A person at the merchant's hub clears (or suspends) it after screening review: the
        hub's compliance decision, which a suspended hub takes no more (``_acting_hub``; a
        merchant of a suspended hub sells nothing meanwhile: no escrow is held for the hub)."""
        reason = check_text(reason, "reason")
        with self._write() as uow:
            conn = uow.connection
            hub = self._acting_hub(conn, caller)
            m = self._merchant(conn, merchant_id)
            if m.hub_id != hub.id:
                raise Forbidden(f"merchant {merchant_id} is not onboarded at {hub.id}")
            state = MerchantState.ACTIVE if approve else MerchantState.SUSPENDED
            note = f"{m.screening} | reviewed by {caller}: {reason}"[-400:]
            conn.execute(
                sa.update(st.merchants)
                .where(st.merchants.c.id == m.id)
                .values(state=state.value, screening=note)
            )
        return replace(m, state=state, screening=note)

    def get_merchant(self, caller: str, merchant_id: str) -> Merchant:
        """The merchant, to itself or its hub. Why screening held it (the watch-list entry
        its name resembles) and the reviewer's note are the hub's: the merchant sees its state,
        not what it was suspected of (no tipping off, as a held transfer's payee)."""
        with read_connection(self.engine) as conn:
            m = self._merchant(conn, merchant_id)
            role, actor = parse_principal(caller)
            if role is Role.MERCHANT and actor == m.id:
                return replace(m, screening=None)
            if role is Role.HUB and self._hub_of_caller(conn, caller).id == m.hub_id:
                return m
        raise Forbidden(f"merchant {merchant_id} is not yours to see")

    def register_buyer(
        self,
        caller: str,
        buyer_id: str,
        name: str,
        wallet_alias_type: AliasType | str,
        wallet_alias: str,
    ) -> Buyer:
        """A hub's buyer app registers a buyer of its country paying from a wallet there (a
        partner of the hub's the scheme has not suspended)."""
        with read_connection(self.engine) as conn:
            self._hub_of_caller(conn, caller)
        check_id(buyer_id, "buyer")
        display = check_text(name, "name")
        party = self.scheme.lookup_party(wallet_alias_type, wallet_alias)
        with self._write(f"{TRADE_BUYER}:{buyer_id}") as uow:
            conn = uow.connection
            hub = self._hub_of_caller(conn, caller)
            row = self._one(conn, st.buyers, "id", buyer_id)
            if row is not None:
                found = st.buyer_from_row(row)
                # the currency too: the alias registered again in another is another buyer
                # (it was answered as made, in the old currency its quotes then priced in)
                same = (
                    found.hub_id,
                    found.name,
                    found.wallet_alias_type,
                    found.wallet_alias,
                    found.currency,
                ) == (hub.id, display, party.alias_type.value, party.alias, party.currency)
                return _resent(found, same, "buyer", buyer_id, "buyerId")
            self._acting_hub(conn, caller)
            if party.participant_id not in hub.partners:
                raise InvalidTradeInput(
                    f"wallet alias is at {party.participant_id}, not a partner of {hub.id}",
                    field="walletAlias",
                )
            # as onboarding refuses a settlement alias at a suspended bank: a buyer was
            # registered at a suspended wallet, which pays for no order until it is resumed
            check_operator_active(
                conn,
                party.participant_id,
                ": the wallet alias is at it, which pays for no order until it is resumed",
                field="walletAlias",
            )
            b = Buyer(
                buyer_id,
                display,
                hub.country,
                hub.id,
                party.currency,
                party.alias_type.value,
                party.alias,
                party.participant_id,
                self._now(),
            )
            conn.execute(
                sa.insert(st.buyers).values(
                    id=b.id,
                    name=b.name,
                    country=b.country,
                    hub_id=b.hub_id,
                    currency=b.currency,
                    wallet_alias_type=b.wallet_alias_type,
                    wallet_alias=b.wallet_alias,
                    wallet_participant=b.wallet_participant,
                    created_at=b.created_at_ns,
                )
            )
        return b

    def get_buyer(self, caller: str, buyer_id: str) -> Buyer:
        """The buyer itself, its hub's operator, and the wallet it pays from (which decides
        its consent) see it."""
        with read_connection(self.engine) as conn:
            b = self._buyer(conn, buyer_id)
            role, actor = parse_principal(caller)
            if role is Role.BUYER and actor == b.id:
                return b
            if role is Role.HUB and caller == b.wallet_participant:
                return b
            # a participant that operates no hub may still be a wallet: not yours, not "no hub"
            hub = self._one(conn, st.hubs, "participant_id", caller) if role is Role.HUB else None
            if hub is not None and hub.id == b.hub_id:
                return b
        raise Forbidden(f"buyer {buyer_id} is not yours to see")

    def list_buyers(
        self,
        caller: str,
        wallet_consent: WalletConsent | str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> list[Buyer]:
        """A payment participant's buyers, in id order, ``limit`` at a time from the first
        id after ``after``: those registered through the hub it operates and those paying
        from its wallet (the ones whose consent it decides)."""
        role, _ = parse_principal(caller)
        if role is not Role.HUB:
            raise Forbidden("only a hub operator or a wallet lists buyers")
        state = None if wallet_consent is None else _wallet_consent(wallet_consent)
        with read_connection(self.engine) as conn:
            hub = self._one(conn, st.hubs, "participant_id", caller)
            mine = st.buyers.c.wallet_participant == caller
            if hub is not None:
                mine = sa.or_(mine, st.buyers.c.hub_id == hub.id)
            q = sa.select(st.buyers).where(mine)
            if state is not None:
                q = q.where(st.buyers.c.wallet_consent == state.value)
            if after is not None:
                q = q.where(st.buyers.c.id > after)
            rows = conn.execute(q.order_by(st.buyers.c.id).limit(max(1, min(limit, 1000))))
            return [st.buyer_from_row(r) for r in rows]

    def grant_wallet_consent(self, caller: str, buyer_id: str) -> Buyer:
        """The wallet the buyer pays from lets the buyer's orders take money from it (for its
        customer behind the alias). Granting a consent already granted changes nothing; a
        wallet the scheme suspended grants none (``participant_suspended``)."""
        return self._set_wallet_consent(caller, buyer_id, WalletConsent.GRANTED)

    def revoke_wallet_consent(self, caller: str, buyer_id: str) -> Buyer:
        """The wallet withdraws its consent: checkout refuses from now on; the buyer's open
        orders run their course (their escrows are already held, refunds go back to it)."""
        return self._set_wallet_consent(caller, buyer_id, WalletConsent.REVOKED)

    def _set_wallet_consent(self, caller: str, buyer_id: str, state: WalletConsent) -> Buyer:
        with self._write() as uow:
            conn = uow.connection
            b = self._buyer(conn, buyer_id)
            if caller != b.wallet_participant:
                # not naming the wallet: which one a buyer pays from is not the caller's
                raise Forbidden(f"only the wallet buyer {buyer_id} pays from decides its consent")
            # A consent is given for the alias as the wallet holds it now: for the customer
            # behind that registration (a later one, a new customer's, needs its own).
            alias_at = b.wallet_consent_alias_at_ns
            if state is WalletConsent.GRANTED:
                party = self._alias_party(b)
                if party is None:
                    raise Forbidden(
                        f"{caller} no longer holds {b.wallet_alias_type} {b.wallet_alias}: "
                        f"it cannot consent for buyer {buyer_id}"
                    )
                # The buyer's quotes price in the currency its alias was paid in when it
                # was registered, and its escrows take that from the wallet: a consent for
                # the alias registered again in another currency paid the buyer's orders in
                # the old one for a customer paid in the new.
                _check_alias_currency(b, party)
                alias_at = party.registered_at_ns
            if b.wallet_consent is state and alias_at == b.wallet_consent_alias_at_ns:
                return b
            if state is WalletConsent.GRANTED:
                # A wallet the scheme suspended consented to pay for a buyer's orders (found
                # by a review): suspension stops what a participant does. A consent already
                # in effect is answered above (a lost answer); revoking, which stops
                # payments, stays open to it, as revoking credentials does to a hub.
                check_operator_active(
                    conn, caller, f": it consents for buyer {buyer_id} once the scheme resumes it"
                )
            now = self._now()
            conn.execute(
                sa.update(st.buyers)
                .where(st.buyers.c.id == buyer_id)
                .values(
                    wallet_consent=state.value,
                    wallet_consent_at=now,
                    wallet_consent_alias_at=alias_at,
                )
            )
            return replace(
                b,
                wallet_consent=state,
                wallet_consent_at_ns=now,
                wallet_consent_alias_at_ns=alias_at,
            )

    def _alias_party(self, b: Buyer) -> DirectoryParty | None:
        """The buyer's alias as the directory holds it now at the buyer's wallet; None when
        that wallet no longer holds it."""
        try:
            party = self.scheme.lookup_party(b.wallet_alias_type, b.wallet_alias)
        except PaymentError:
            return None
        if party.participant_id != b.wallet_participant:
            return None
        return party

    def _alias_registration(self, b: Buyer) -> int | None:
        """When the buyer's wallet registered the buyer's alias, as the directory holds it
        now; None when that wallet no longer holds it."""
        party = self._alias_party(b)
        return None if party is None else party.registered_at_ns

    # ------------------------------------------------------------------ catalogue
    def add_item(
        self,
        caller: str,
        sku: str,
        title: str,
        hs_code: str,
        origin: str,
        *,
        weight_g: int,
        dimensions_mm: tuple[int, int, int],
        price_minor: int,
        currency: str,
        customs_unit: str | None = None,
        customs_quantity_per_piece: Decimal | int | str | None = None,
    ) -> Item:
        """A merchant lists an item: HS 2022 code checked, price in a currency it holds, and
        optionally its customs unit with the quantity of it in one piece (0.75 l a bottle),
        what a duty per litre, per pair... is charged on. Listing does not check the item
        against every destination's tariff (a merchant may never sell to most): a quote to
        one whose duty needs a unit the item does not declare is refused, naming both."""
        merchant_id = self._as(caller, Role.MERCHANT)
        check_id(sku, "sku")
        hs = check_hs_code(hs_code)
        # two ASCII capitals: "A1" and "ÉS" passed isupper() and every quote abroad then
        # failed on the customs line's country check
        if not is_country(origin):
            raise InvalidTradeInput(
                f"origin {origin!r} is not an assigned ISO 3166-1 alpha-2 code", field="origin"
            )
        check_positive(weight_g, "weightG", 1_000_000)
        if len(dimensions_mm) != 3:
            raise InvalidTradeInput("dimensions are length, width, height", field="dimensionsMm")
        length, width, height = (check_positive(d, "dimensionsMm", 10_000) for d in dimensions_mm)
        check_positive(price_minor, "priceMinor")
        customs = check_customs_measure(customs_unit, customs_quantity_per_piece)
        cur = get_currency(currency).code
        item = Item(
            sku,
            merchant_id,
            check_text(title, "title"),
            hs,
            origin,
            weight_g,
            length,
            width,
            height,
            price_minor,
            cur,
            True,
            customs,
        )
        with self._write(f"{TRADE_ITEM}:{sku}") as uow:
            conn = uow.connection
            row = self._one(conn, st.items, "sku", sku)
            if row is not None:
                # compared as the item is now: one changed since (PATCH) is another request
                found = st.item_from_row(row)
                same = found == replace(item, active=found.active)
                return _resent(found, same, "item", sku, "sku")
            m = self._merchant(conn, merchant_id)
            if cur not in m.currencies:
                raise CurrencyNotHeld(
                    f"merchant {m.id} holds {', '.join(m.currencies)}, not {cur}",
                    field="currency",
                )
            if cur != m.settlement_currency:
                raise CurrencyNotHeld(_not_payout_currency(m, cur), field="currency")
            conn.execute(sa.insert(st.items).values(**_item_values(item, self._now())))
        return item

    def update_item(
        self,
        caller: str,
        sku: str,
        *,
        price_minor: int | None = None,
        active: bool | None = None,
        customs_unit: str | Keep | None = KEEP,
        customs_quantity_per_piece: Decimal | int | str | Keep | None = KEEP,
    ) -> Item:
        """The merchant changes its item's price, takes it off sale or back, or sets its
        customs unit and per-piece quantity (both; both ``None`` clears them). Orders already
        quoted keep the customs measure they were quoted with."""
        merchant_id = self._as(caller, Role.MERCHANT)
        if price_minor is not None:
            check_positive(price_minor, "priceMinor")
        keep_customs = customs_unit is KEEP and customs_quantity_per_piece is KEEP
        # One cleared without the other is refused like one set without it: a left-out key
        # read as None made {"customsUnit": null} clear both.
        if customs_unit is KEEP and customs_quantity_per_piece is None:
            raise InvalidTradeInput(
                "a customs quantity per piece is cleared with its unit (customsUnit null)",
                field="customsUnit",
            )
        if customs_quantity_per_piece is KEEP and customs_unit is None:
            raise InvalidTradeInput(
                "a customs unit is cleared with its quantity per piece "
                "(customsQuantityPerPiece null)",
                field="customsQuantityPerPiece",
            )
        customs = None
        if not keep_customs:
            customs = check_customs_measure(
                None if customs_unit is KEEP else customs_unit,
                None if customs_quantity_per_piece is KEEP else customs_quantity_per_piece,
            )
        with self._write() as uow:
            conn = uow.connection
            item = self._item(conn, sku)
            if item.merchant_id != merchant_id:
                raise Forbidden(f"item {sku} is not yours")
            item = replace(
                item,
                price_minor=item.price_minor if price_minor is None else price_minor,
                active=item.active if active is None else bool(active),
                customs=item.customs if keep_customs else customs,
            )
            conn.execute(
                sa.update(st.items)
                .where(st.items.c.sku == sku)
                .values(
                    price=item.price_minor,
                    active=item.active,
                    **st.customs_values(item.customs),
                )
            )
        return item

    def _item(self, conn: Connection, sku: str) -> Item:
        row = self._one(conn, st.items, "sku", sku)
        if row is None:
            raise ItemNotFound(f"item {sku!r} does not exist", field="sku")
        return st.item_from_row(row)

    def set_stock(self, caller: str, sku: str, warehouse_id: str, on_hand: int) -> StockLevel:
        """Set what a warehouse of the merchant's hub holds; never below what is reserved."""
        merchant_id = self._as(caller, Role.MERCHANT)
        check_non_negative(on_hand, "onHand", 10**9)
        with self._write() as uow:
            conn = uow.connection
            item = self._item(conn, sku)
            m = self._merchant(conn, merchant_id)
            if item.merchant_id != m.id:
                raise Forbidden(f"item {sku} is not yours")
            w = self._one(conn, st.warehouses, "id", warehouse_id)
            if w is None:
                raise WarehouseNotFound(f"warehouse {warehouse_id!r} does not exist")
            if w.hub_id != m.hub_id:
                raise InvalidTradeInput(
                    f"warehouse {warehouse_id} is at {w.hub_id}, not your hub {m.hub_id}",
                    field="warehouse",
                )
            key = (st.stock.c.sku == sku) & (st.stock.c.warehouse_id == warehouse_id)
            row = conn.execute(sa.select(st.stock).where(key)).first()
            reserved = row.reserved if row else 0
            if on_hand < reserved:
                raise InvalidTradeInput(
                    f"{reserved} are reserved by open orders; on hand cannot be {on_hand}",
                    field="onHand",
                )
            if row is None:
                conn.execute(
                    sa.insert(st.stock).values(
                        sku=sku, warehouse_id=warehouse_id, on_hand=on_hand, reserved=0
                    )
                )
            else:
                conn.execute(sa.update(st.stock).where(key).values(on_hand=on_hand))
        return StockLevel(sku, warehouse_id, on_hand, reserved)

    def get_item(self, caller: str, sku: str) -> Item:
        """An item on sale (public, like the catalogue); one off sale only to its merchant,
        to anyone else as the catalogue has it: not there."""
        with read_connection(self.engine) as conn:
            return self._visible_item(conn, caller, sku)

    def _visible_item(self, conn: Connection, caller: str, sku: str) -> Item:
        item = self._item(conn, sku)
        if not item.active:
            role, actor = parse_principal(caller)
            if role is not Role.MERCHANT or actor != item.merchant_id:
                raise ItemNotFound(f"item {sku!r} does not exist", field="sku")
        return item

    def stock(self, sku: str, caller: str | None = None) -> list[StockLevel]:
        """What each warehouse holds of an item (public, like the catalogue); an item that does
        not exist is ``ItemNotFound``, not an empty list that reads as sold out. Seen by
        ``caller`` (the API's), an item off sale is its merchant's only, as :meth:`get_item`
        has it: to anyone else it does not exist (its stock told anyone that it did, and how
        much each warehouse held). Without one, the operator's own read (the CLI)."""
        with read_connection(self.engine) as conn:
            if caller is None:
                self._item(conn, sku)
            else:
                self._visible_item(conn, caller, sku)
            rows = conn.execute(
                sa.select(st.stock).where(st.stock.c.sku == sku).order_by(st.stock.c.warehouse_id)
            ).all()
        return [StockLevel(r.sku, r.warehouse_id, r.on_hand, r.reserved) for r in rows]

    def catalogue(self, merchant_id: str | None = None, limit: int = 100) -> list[Item]:
        """Active items, optionally of one merchant (public: what any buyer may browse)."""
        q = sa.select(st.items).where(st.items.c.active.is_(True))
        if merchant_id is not None:
            q = q.where(st.items.c.merchant_id == merchant_id)
        with read_connection(self.engine) as conn:
            rows = conn.execute(q.order_by(st.items.c.sku).limit(max(1, min(limit, 1000)))).all()
        return [st.item_from_row(r) for r in rows]

    # ------------------------------------------------------------------ landed-cost quotes
    def quote(
        self,
        caller: str,
        quote_id: str,
        lines: Sequence[tuple[str, int]],
        *,
        ttl_s: int = QUOTE_TTL_S,
    ) -> TradeQuote:
        """The buyer sees, before paying, the landed cost delivered duty paid in its own
        currency: goods at the scheme's best rate, freight, insurance, duty, excise, VAT/GST
        and customs fees, each with the rule that set it."""
        buyer_id = self._as(caller, Role.BUYER)
        check_id(quote_id, "quote")
        if not 1 <= len(lines) <= LINES_MAX:
            raise InvalidTradeInput(f"an order has 1..{LINES_MAX} lines", field="lines")
        if type(ttl_s) is not int or not 60 <= ttl_s <= 86_400:
            raise InvalidTradeInput("quote expiry must be 60..86400 s", field="ttlS")
        for sku, qty in lines:
            check_id(sku, "sku")
            check_positive(qty, "quantity", QUANTITY_MAX)
        if len({sku for sku, _ in lines}) != len(lines):
            raise InvalidTradeInput("a sku appears twice in the order", field="lines")

        def resent(row: Any) -> TradeQuote:
            found = st.quote_from_row(row)
            same = (
                found.buyer_id == buyer_id
                and [(ln.sku, ln.quantity) for ln in found.lines] == [tuple(ln) for ln in lines]
                and found.expires_at_ns - found.created_at_ns == ttl_s * NS_PER_S
            )
            return _resent(found, same, "quote", quote_id, "quoteId")

        with read_connection(self.engine) as conn:  # a resend is answered, not priced again
            row = self._one(conn, st.quotes, "id", quote_id)
        if row is not None:
            return resent(row)
        # One reading of the clock: the quote's time, its tariff day (the declaration's, read
        # back from it), its customs rate's and the year China's annual limit counts; two
        # could fall either side of midnight (or of New Year).
        now = self._now()
        with read_connection(self.engine) as conn:
            buyer = self._buyer(conn, buyer_id)
            items = [self._item(conn, sku) for sku, _ in lines]
            merchant = self._merchant(conn, items[0].merchant_id)
            hub = self._hub(conn, merchant.hub_id)
            dest_hub = self._hub(conn, buyer.hub_id)
            # before the stock is looked at: an item off sale is told so whatever the quantity
            # (its stock, "fewer than N available" past it, was the merchant's to know)
            self._check_orderable(merchant, items)
            picks = self._pick_warehouses(conn, merchant, items, [q for _, q in lines])
            annual = self._annual_purchases(conn, buyer, now)
        # Priced in the buyer's currency: refused once its wallet pays its alias in another
        # (it was quoted in one it no longer pays in, a quote no checkout could pay). An alias
        # gone from that wallet is checkout's to refuse (the consent lapsed), naming nobody.
        party = self._alias_party(buyer)
        if party is not None:
            _check_alias_currency(buyer, party)
        q = self._price(quote_id, buyer, merchant, hub, dest_hub, items, lines, picks, annual, now)
        q = replace(q, expires_at_ns=q.created_at_ns + ttl_s * NS_PER_S)
        # Customs' taxes too, in its currency: the destination hub pays them at clearance
        # (EDC), and a payment over the scheme's largest amount is refused every time.
        customs_taxes = 0 if q.customs_fx is None else q.customs_fx.taxes_minor
        if max(q.total_minor, q.goods_merchant_minor, customs_taxes) > SCHEME_AMOUNT_MAX:
            raise InvalidTradeInput(
                f"the order comes to more than the scheme's largest amount ({SCHEME_AMOUNT_MAX} "
                "minor units); order fewer",
                field="lines",
            )
        with self._write(f"{TRADE_QUOTE}:{quote_id}") as uow:
            conn = uow.connection
            row = self._one(conn, st.quotes, "id", quote_id)
            if row is not None:  # made since the look above
                return resent(row)
            conn.execute(
                sa.insert(st.quotes).values(
                    id=q.id,
                    buyer_id=q.buyer_id,
                    merchant_id=q.merchant_id,
                    currency=q.currency,
                    total=q.total_minor,
                    body=st.quote_body(q),
                    expires_at=q.expires_at_ns,
                    used=False,
                    created_at=q.created_at_ns,
                )
            )
        return q

    def _check_orderable(self, merchant: Merchant, items: Sequence[Item]) -> None:
        if merchant.state is not MerchantState.ACTIVE:
            raise MerchantNotActive(f"merchant {merchant.id} is {merchant.state.value}")
        for it in items:
            if it.merchant_id != merchant.id:
                raise InvalidTradeInput("an order is from one merchant", field="lines")
            if not it.active:
                raise InvalidTradeInput(f"item {it.sku} is not on sale", field="lines")
            if it.currency != items[0].currency:
                raise InvalidTradeInput("an order is priced in one currency", field="lines")
            if it.currency != merchant.settlement_currency:  # listed before the check
                raise CurrencyNotHeld(_not_payout_currency(merchant, it.currency), field="lines")

    def _pick_warehouses(
        self, conn: Connection, m: Merchant, items: Sequence[Item], qtys: Sequence[int]
    ) -> list[str]:
        picks = []
        for item, qty in zip(items, qtys, strict=True):
            row = conn.execute(
                sa.select(st.stock.c.warehouse_id)
                .where(
                    st.stock.c.sku == item.sku,
                    st.stock.c.on_hand - st.stock.c.reserved >= qty,
                )
                .order_by(st.stock.c.warehouse_id)
                .limit(1)
            ).first()
            if row is None:
                raise OutOfStock(f"item {item.sku}: fewer than {qty} available", field="lines")
            picks.append(row[0])
        return picks

    def _annual_purchases(self, conn: Connection, buyer: Buyer, now: int) -> int:
        """The buyer's CBEC purchases this calendar year (goods, freight and insurance, in its
        currency), for China's per-person annual limit: cancelled and refunded orders do not
        count, nor do orders that went through general trade (over a limit). The year is
        China's (UTC+8): the UTC year counted the old year's purchases in the buyer's first
        eight hours of the new one, and forgot them from 00:00 UTC."""
        year = ns_to_datetime(now).astimezone(CHINA_TIME).year
        since = int(datetime(year, 1, 1, tzinfo=CHINA_TIME).timestamp()) * NS_PER_S
        o = st.orders.c
        total = conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(o.total - o.tax_escrow), 0))
            .select_from(st.orders.join(st.quotes, st.quotes.c.id == o.quote_id))
            .where(
                o.buyer_id == buyer.id,
                o.created_at >= since,
                o.state.notin_(["CANCELLED", "REFUNDED"]),
                st.quotes.c.body.contains('"regime":"cbec"'),  # the quote's canonical JSON
            )
        ).scalar_one()
        return int(total)

    def _to_buyer(self, amount: int, currency: str, buyer_currency: str) -> tuple[int, Decimal]:
        """What the buyer pays, in its currency, for ``amount`` of ``currency``: the scheme's
        best rate from the buyer's currency, rounded up (the same the payout will buy at)."""
        if currency == buyer_currency:
            return amount, Decimal(1)
        try:
            fx = self.scheme.find_rate(buyer_currency, currency)
        except PaymentError as exc:
            raise PaymentFailed(exc.detail, field="currency") from None
        rate = fx.effective_rate
        return source_for_target(amount, currency, rate, buyer_currency), rate

    def _price(
        self,
        quote_id: str,
        buyer: Buyer,
        merchant: Merchant,
        hub: Hub,
        dest_hub: Hub,
        items: Sequence[Item],
        lines: Sequence[tuple[str, int]],
        picks: Sequence[str],
        annual_minor: int,
        now: int,
    ) -> TradeQuote:
        cur, mcur = buyer.currency, items[0].currency
        notes = []
        line_minors = [item.price_minor * qty for item, (_, qty) in zip(items, lines, strict=True)]
        goods_m = sum(line_minors)
        # converted once, rounded up once; the lines (customs' values) are its exact parts:
        # each line rounded up on its own made the buyer pay a minor unit more per line
        goods, rate = self._to_buyer(goods_m, mcur, cur)
        qlines = [
            QuoteLine(
                item.sku, qty, wh, item.price_minor, line_minor, part.amount_minor, item.customs
            )
            for item, (_, qty), wh, line_minor, part in zip(
                items,
                lines,
                picks,
                line_minors,
                allocate(Money(goods, get_currency(cur)), line_minors),
                strict=True,
            )
        ]
        if mcur != cur:
            notes.append(f"goods {goods_m} {mcur} at {rate} {mcur}/{cur} (best scheme rate)")
        international = hub.country != buyer.country
        weight = sum(it.chargeable_g * q for it, (_, q) in zip(items, lines, strict=True))
        freight_hub = hub.freight.freight(weight, international)
        freight, _ = self._to_buyer(freight_hub, hub.currency, cur)
        insurance = hub.freight.insurance(goods)
        notes.append(
            f"freight {freight_hub} {hub.currency} for {weight} g chargeable "
            f"({'international' if international else 'domestic'} card of {hub.id}); "
            f"insurance {hub.freight.insurance_bps} bps of goods"
        )
        duty = excise = vat = fees = 0
        regime, dftz = "domestic", False
        customs_fx = None
        if international:
            lines_in = [
                _declaration_line(it, ln, cur) for it, ln in zip(items, qlines, strict=True)
            ]
            try:
                cost, customs_fx = self._customs_cost(
                    buyer, hub, dest_hub, lines_in, freight, insurance, annual_minor, now
                )
            except UnitMismatch as exc:
                raise self._unit_missing(buyer.country, items, lines_in, exc, now) from None
            notes.extend(_customs_quantity_notes(qlines))
            duty, excise, vat, fees = (
                cost.duty_minor,
                cost.excise_minor,
                cost.vat_minor,
                cost.fees_minor,
            )
            if customs_fx is not None:  # customs' figures, in what the buyer pays them in
                duty, excise, vat, fees = (
                    self._taxes_to_buyer(t, customs_fx, cur) for t in (duty, excise, vat, fees)
                )
                notes.append(
                    f"duty, excise, VAT/GST and fees assessed in {customs_fx.currency}, paid in "
                    f"{cur} each at {customs_fx.rate} less {customs_fx.spread_bps} bps "
                    f"{customs_fx.currency}/{cur} (what the destination hub buys them at), "
                    "rounded up"
                )
            regime, dftz = cost.regime, cost.dftz
            notes.extend(cost.explanations)
            notes.extend(_customs_rules(cost, items))
        return TradeQuote(
            quote_id,
            buyer.id,
            merchant.id,
            tuple(qlines),
            cur,
            mcur,
            rate,
            goods_m,
            goods,
            freight,
            insurance,
            duty,
            excise,
            vat,
            fees,
            goods + freight + insurance + duty + excise + vat + fees,
            regime,
            dftz,
            tuple(notes),
            now,
            now,
            customs_fx=customs_fx,
        )

    def _customs_cost(
        self,
        buyer: Buyer,
        hub: Hub,
        dest_hub: Hub,
        lines: Sequence[DeclarationLine],
        freight: int,
        insurance: int,
        annual_minor: int,
        now: int,
    ) -> tuple[LandedCost, CustomsFx | None]:
        """Customs values in its own currency. A buyer paying in another has its figures
        converted at the scheme's posted rate, read now and kept with the quote (CustomsFx):
        the engine, given no rate, refused every such buyer (customs_missing_fx_rate)."""
        tariffs = self._zone_tariffs(hub, dest_hub)
        cur, ccy = buyer.currency, tariffs.get_country(buyer.country).currency
        fx = None
        if ccy != cur:
            try:
                rate = self.scheme.find_rate(cur, ccy)
            except PaymentError as exc:
                raise PaymentFailed(
                    f"customs in {buyer.country} values in {ccy}, and the scheme has no rate "
                    f"for it: {exc.detail}",
                    field="currency",
                ) from None
            fx = CustomsFx(
                currency=ccy,
                rate=rate.rate,
                provider_id=rate.provider_id,
                spread_bps=rate.spread_bps,
                read_at_ns=now,
                valid_until_ns=rate.valid_until_ns,
                freight_minor=_at_customs_rate(freight, cur, ccy, rate.rate),
                insurance_minor=_at_customs_rate(insurance, cur, ccy, rate.rate),
                customs_value_minor=0,  # the engine's figures, set below
                duty_minor=0,
                excise_minor=0,
                vat_minor=0,
                fees_minor=0,
            )
        cost = landed_cost(
            buyer.country,
            lines,
            freight_minor=freight if fx is None else fx.freight_minor,
            insurance_minor=insurance if fx is None else fx.insurance_minor,
            incoterm=INCOTERM,
            on=ns_to_datetime(now).date(),
            currency=ccy,
            fx_rates={cur: fx.rate} if fx is not None else None,
            fx_source=fx.source(cur) if fx is not None else "",
            regime="cbec" if buyer.country == "CN" else "general",
            annual_purchases_minor=(
                annual_minor if fx is None else _at_customs_rate(annual_minor, cur, ccy, fx.rate)
            ),
            origin_hub=hub.id,
            destination_hub=dest_hub.id,
            tariffs=tariffs,
        )
        if fx is not None:
            fx = replace(
                fx,
                customs_value_minor=cost.customs_value_minor,
                duty_minor=cost.duty_minor,
                excise_minor=cost.excise_minor,
                vat_minor=cost.vat_minor,
                fees_minor=cost.fees_minor,
            )
        return cost, fx

    def _unit_missing(
        self,
        country: str,
        items: Sequence[Item],
        lines: Sequence[DeclarationLine],
        exc: UnitMismatch,
        now: int,
    ) -> CustomsUnitMissing:
        """Which items the destination's duty needs a unit for that they do not declare: the
        engine's UnitMismatch names the HS code, not the sku the merchant has to fix."""
        tariff, on = self.tariffs.get_country(country), ns_to_datetime(now).date()
        wants = []
        for item, line in zip(items, lines, strict=True):
            try:
                rate = tariff.duty_on(line.hs_code, on).value
            except CustomsError:
                continue
            if rate.unit is not None and rate.unit not in ("kg", line.unit):
                declared = (
                    "no customs unit"
                    if item.customs is None
                    else f"its customs quantity in {item.customs.unit!r}"
                )
                wants.append(
                    f"item {item.sku} (HS {line.hs_code}) needs a customs quantity in "
                    f"{rate.unit!r} (duty {rate.describe()}) and declares {declared}"
                )
        detail = "; ".join(wants) if wants else exc.detail
        return CustomsUnitMissing(
            f"customs in {country}: {detail}; its merchant sets the item's customsUnit and "
            "customsQuantityPerPiece",
            field="lines",
        )

    @staticmethod
    def _taxes_to_buyer(amount: int, fx: CustomsFx, buyer_currency: str) -> int:
        """The buyer's currency that buys ``amount`` of customs' at the provider's rate less
        its spread, rounded up (so the destination hub can pay customs in full)."""
        if amount == 0:
            return 0
        effective = less_spread(fx.rate, fx.spread_bps)
        return source_for_target(amount, fx.currency, effective, buyer_currency)

    def get_quote(self, caller: str, quote_id: str) -> TradeQuote:
        with read_connection(self.engine) as conn:
            row = self._one(conn, st.quotes, "id", quote_id)
        if row is None:
            raise QuoteNotFound(f"quote {quote_id!r} does not exist", field="quote")
        q = st.quote_from_row(row)
        if caller != f"buyer:{q.buyer_id}":
            raise Forbidden(f"quote {quote_id} is not yours")
        return q

    # ------------------------------------------------------------------ checkout
    def checkout(self, caller: str, order_id: str, quote_id: str) -> Order:
        """Pay a landed-cost quote into escrow: stock reserved, the goods escrow held for the
        merchant's hub and the taxes escrow for the destination's customs, in one commit.
        Idempotent by order id."""
        buyer_id = self._as(caller, Role.BUYER)
        check_id(order_id, "order")
        with self._write() as uow:
            conn = uow.connection
            existing = self._one(conn, st.orders, "id", order_id)
            if existing is not None:
                if existing.quote_id != quote_id or existing.buyer_id != buyer_id:
                    raise IdConflict(
                        f"order {order_id} exists, created by a different request",
                        field="orderId",
                    )
                return st.order_from_row(existing)
            row = self._one(conn, st.quotes, "id", quote_id)
            if row is None or row.buyer_id != buyer_id:
                raise QuoteNotFound(f"quote {quote_id!r} does not exist", field="quote")
            q = st.quote_from_row(row)
            if q.used:
                raise InvalidTransition(f"quote {quote_id} was already used by an order")
            if self._now() >= q.expires_at_ns:
                raise QuoteExpired(f"quote {quote_id} expired; ask for a new one")
            order = self._place(conn, order_id, q)
        return order

    def _place(self, conn: Connection, order_id: str, q: TradeQuote) -> Order:
        buyer = self._buyer(conn, q.buyer_id)
        if buyer.wallet_consent is not WalletConsent.GRANTED:
            raise WalletConsentMissing(
                f"buyer {buyer.id}'s wallet at {buyer.wallet_participant} has not consented to "
                f"pay for its orders ({buyer.wallet_consent.value}); that participant grants it "
                f"(POST /v1/trade/buyers/{buyer.id}/wallet-consent)",
                field="buyer",
            )
        # The consent is the wallet's for its customer behind the alias, as registered when it
        # was given: once the wallet gave the alias up (the customer left it, or took the
        # number elsewhere), or registered it again (a number given to a new customer), it
        # no longer holds. Who holds the number now is not the buyer's to learn.
        if self._alias_registration(buyer) != buyer.wallet_consent_alias_at_ns:
            raise WalletConsentMissing(
                f"buyer {buyer.id}'s wallet consent was given by {buyer.wallet_participant} for "
                f"{buyer.wallet_alias_type} {buyer.wallet_alias} as it was registered then, "
                "and that registration is gone; if it registered the alias anew it consents "
                "again, otherwise the hub registers a buyer with the wallet that holds it",
                field="buyer",
            )
        merchant = self._merchant(conn, q.merchant_id)
        hub = self._hub(conn, merchant.hub_id)
        dest = self._hub(conn, buyer.hub_id)
        if merchant.state is not MerchantState.ACTIVE:
            raise MerchantNotActive(f"merchant {merchant.id} is {merchant.state.value}")
        for ln in q.lines:  # taken off sale since the quote: its merchant sells it no more
            if not self._item(conn, ln.sku).active:
                raise InvalidTradeInput(f"item {ln.sku} is not on sale", field="lines")
        for ln in q.lines:
            taken = conn.execute(
                sa.update(st.stock)
                .where(
                    st.stock.c.sku == ln.sku,
                    st.stock.c.warehouse_id == ln.warehouse_id,
                    st.stock.c.on_hand - st.stock.c.reserved >= ln.quantity,
                )
                .values(reserved=st.stock.c.reserved + ln.quantity)
            ).rowcount
            if taken != 1:
                raise OutOfStock(
                    f"item {ln.sku}: fewer than {ln.quantity} left at {ln.warehouse_id}",
                    field="lines",
                )
        now = self._now()
        backstop = ESCROW_BACKSTOP_DAYS * 86_400
        # Unguessable scheme ids: an id derived from the order's could be taken first by any
        # participant (escrow, quote and transfer ids are scheme-wide). The order keeps them.
        goods_id = f"tg{secrets.token_hex(16)}"
        tax_id = f"tt{secrets.token_hex(16)}" if q.taxes_minor else None
        try:
            self.scheme.create_escrow(
                buyer.wallet_participant,
                goods_id,
                hub.participant_id,
                q.currency,
                q.goods_escrow_minor,
                f"order {order_id}: goods, freight, insurance",
                backstop,
                DeadlineAction.REFUND,
                controller=hub.participant_id,
            )
            if tax_id is not None:
                # Customs is paid in its own currency: taxes paid in another are held for the
                # destination hub, the importer of record, which pays customs at clearance.
                self.scheme.create_escrow(
                    buyer.wallet_participant,
                    tax_id,
                    dest.customs_authority if q.customs_fx is None else dest.participant_id,
                    q.currency,
                    q.taxes_minor,
                    f"order {order_id}: duties and taxes for {buyer.country} customs",
                    backstop,
                    DeadlineAction.REFUND,
                    controller=hub.participant_id,
                )
        except PaymentError as exc:
            raise PaymentFailed(f"payment refused: {exc.detail}") from None
        commission = half_up(Decimal(q.goods_merchant_minor) * hub.commission_bps / 10_000)
        order = Order(
            order_id,
            q.id,
            buyer.id,
            merchant.id,
            hub.id,
            dest.id,
            buyer.country,
            q.currency,
            q.total_minor,
            goods_id,
            q.goods_escrow_minor,
            tax_id,
            q.taxes_minor,
            q.merchant_currency,
            q.goods_merchant_minor,
            commission,
            OrderState.PAID,
            now + hub.handling_days * DAY_NS,
            now + hub.delivery_days * DAY_NS,
            None,
            now,
        )
        conn.execute(sa.update(st.quotes).where(st.quotes.c.id == q.id).values(used=True))
        conn.execute(sa.insert(st.orders).values(**st.order_values(order)))
        conn.execute(
            sa.insert(st.order_lines),
            [
                {
                    "order_id": order_id,
                    "line": i,
                    "sku": ln.sku,
                    "quantity": ln.quantity,
                    "warehouse_id": ln.warehouse_id,
                    "unit_price": ln.unit_price_minor,
                }
                for i, ln in enumerate(q.lines, 1)
            ],
        )
        self._event(conn, order_id, "paid", f"buyer:{buyer.id}", total_minor=q.total_minor)
        return order

    # ------------------------------------------------------------------ reading orders
    def _check_sees(self, conn: Connection, caller: str, order: Order) -> None:
        role, actor = parse_principal(caller)
        if role is Role.BUYER and actor == order.buyer_id:
            return
        if role is Role.MERCHANT and actor == order.merchant_id:
            return
        if role is Role.HUB:
            hub = self._hub_of_caller(conn, caller)
            if hub.id in (order.hub_id, order.destination_hub_id):
                return
        if role is Role.ARBITRATOR and self._arbitrates(conn, actor, order.id):
            return
        raise Forbidden(f"order {order.id} is not yours to see")

    def get_order(self, caller: str, order_id: str) -> Order:
        with read_connection(self.engine) as conn:
            order = self._order(conn, order_id)
            self._check_sees(conn, caller, order)
        return order

    def list_orders(self, caller: str, state: str | None = None, limit: int = 100) -> list[Order]:
        """The caller's orders: a buyer's, a merchant's, or those through a hub."""
        role, actor = parse_principal(caller)
        state = check_state_filter(state, OrderState, "order state")
        q = sa.select(st.orders)
        with read_connection(self.engine) as conn:
            if role is Role.BUYER:
                q = q.where(st.orders.c.buyer_id == actor)
            elif role is Role.MERCHANT:
                q = q.where(st.orders.c.merchant_id == actor)
            elif role is Role.HUB:
                hub = self._hub_of_caller(conn, caller)
                q = q.where(
                    (st.orders.c.hub_id == hub.id) | (st.orders.c.destination_hub_id == hub.id)
                )
            else:
                raise Forbidden("arbitrators see orders through their disputes")
            if state is not None:
                q = q.where(st.orders.c.state == state)
            rows = conn.execute(q.order_by(st.orders.c.id).limit(max(1, min(limit, 1000)))).all()
        return [st.order_from_row(r) for r in rows]

    def order_events(self, caller: str, order_id: str) -> list[dict[str, object]]:
        """The order's log. Why screening held or blocked a payout (a transfer the origin hub
        pays) is that hub's to read, not the merchant's (its payee), the buyer's, the other
        hub's or an arbitrator's: they read that it was retried or refused
        (:func:`_payout_detail_shared`). What a payout withheld for the merchant's loan, as in
        :meth:`payouts`."""
        with read_connection(self.engine) as conn:
            order = self._order(conn, order_id)
            self._check_sees(conn, caller, order)
            payer = self._pays_payouts(conn, caller, order)
            sees_loan = payer or _is_its_merchant(caller, order)
            rows = conn.execute(
                sa.select(st.order_events)
                .where(st.order_events.c.order_id == order_id)
                .order_by(st.order_events.c.seq)
            ).all()
        events = []
        for r in rows:
            detail = json.loads(r.detail)
            if not payer:
                detail = _payout_detail_shared(r.kind, detail)
            if not sees_loan:
                if r.kind == "withholding_refused":
                    continue  # that the merchant has a loan is not theirs to know
                detail.pop("withheld_minor", None)  # the merchant's loan: see payouts()
            events.append({"seq": r.seq, "kind": r.kind, "actor": r.actor, "at_ns": r.at, **detail})
        return events

    def tracking(self, caller: str, order_id: str) -> dict[str, object]:
        with read_connection(self.engine) as conn:
            order = self._order(conn, order_id)
            self._check_sees(conn, caller, order)
            events = self._tracking(conn, order_id)
            decl = self._one(conn, st.declarations, "shipment_id", order_id)
        last = events[-1].code if events else None
        return {
            "order_id": order_id,
            "status": fulfilment_status(last),
            "events": [
                {"code": e.code, "hub": e.hub_id, "at_ns": e.at_ns, "note": e.note} for e in events
            ],
            "clearance": None
            if decl is None
            else {"lane": decl.lane, "estimated_hours": decl.clearance_hours},
        }

    def tracking_event(self, caller: str, order_id: str, seq: int) -> TrackingEvent:
        """One event of the order's parcel, by its number (0 first), to those who see it."""
        with read_connection(self.engine) as conn:
            order = self._order(conn, order_id)
            self._check_sees(conn, caller, order)
            events = self._tracking(conn, order_id)
        if not 0 <= seq < len(events):
            raise OrderNotFound(f"order {order_id} has no tracking event {seq}", field="seq")
        return events[seq]

    def _tracking(self, conn: Connection, shipment_id: str) -> list[TrackingEvent]:
        rows = conn.execute(
            sa.select(st.tracking)
            .where(st.tracking.c.shipment_id == shipment_id)
            .order_by(st.tracking.c.seq)
        ).all()
        return [
            TrackingEvent(r.shipment_id, r.seq, r.code, r.hub_id, r.actor, r.at, r.note)
            for r in rows
        ]

    # ------------------------------------------------------------------ logistics
    def track(self, caller: str, order_id: str, code: str, note: str = "") -> TrackingEvent:
        """A hub operator records a postal-style event for a parcel on its leg: the origin
        hub until line-haul departs, the destination hub after. EMA takes the stock; EDB
        lodges the import declaration; EDC pays duties and taxes to customs; EMI starts the
        dispute window, after which the escrow is released by itself."""
        check_note(note, "note", 400)
        check_tracking_code(code)
        with self._write() as uow:
            conn = uow.connection
            hub = self._hub_of_caller(conn, caller)
            order = self._order(conn, order_id)
            event = self._track(conn, hub, order, code, note)
            mark_keyed(conn, self._now(), f"{TRADE_TRACKING}:{order_id}/{event.seq}")
        return event

    def consolidate(
        self, caller: str, consolidation_id: str, order_ids: Sequence[str], code: str = "EXD"
    ) -> list[TrackingEvent]:
        """Move many parcels as one consignment: consolidation at the export hub (EXD), the
        line-haul's departure (EMC) and arrival (EMD) recorded for all of them at once, with the
        consolidation id in each note; all or none (one parcel out of step refuses the lot)."""
        check_id(consolidation_id, "consolidation")
        if code not in ("EXD", "EMC", "EMD"):
            raise InvalidTradeInput("a consolidation records EXD, EMC or EMD", field="code")
        if not 1 <= len(order_ids) <= 10_000 or len(set(order_ids)) != len(order_ids):
            raise InvalidTradeInput("1..10000 distinct orders", field="orders")
        for oid in order_ids:  # PostgreSQL refuses a NUL in a lookup: a 500, not a 422
            check_id(oid, "orders")
        note = f"consolidation {consolidation_id}"
        with self._write() as uow:
            conn = uow.connection
            hub = self._hub_of_caller(conn, caller)
            step = st.consolidations.c
            row = conn.execute(
                sa.select(st.consolidations).where(step.id == consolidation_id, step.code == code)
            ).first()
            if row is not None:  # a retry (ADR 0009): answered with what the step recorded
                # the parcels as a set (each is named once): their order is not the request's
                same = (row.hub_id, sorted(json.loads(row.order_ids))) == (
                    hub.id,
                    sorted(order_ids),
                )
                found = [
                    next(e for e in self._tracking(conn, oid) if (e.code, e.note) == (code, note))
                    for oid in (order_ids if same else ())
                ]
                return _resent(found, same, "consolidation", consolidation_id, "consolidationId")
            events = [
                self._track(conn, hub, self._order(conn, oid), code, note) for oid in order_ids
            ]
            conn.execute(
                sa.insert(st.consolidations).values(
                    id=consolidation_id,
                    code=code,
                    hub_id=hub.id,
                    order_ids=json.dumps(list(order_ids)),
                    created_at=self._now(),
                )
            )
            return events

    def _track(
        self, conn: Connection, hub: Hub, order: Order, code: str, note: str
    ) -> TrackingEvent:
        domestic = self._hub(conn, order.hub_id).country == order.destination
        if domestic:
            allowed = {order.hub_id, order.destination_hub_id}
        elif code in ORIGIN_CODES:
            allowed = {order.hub_id}
        else:
            allowed = {order.destination_hub_id}
        if hub.id not in {order.hub_id, order.destination_hub_id}:
            # not naming the order's hubs to a hub it does not pass through
            raise Forbidden(f"order {order.id} does not pass through hub {hub.id}")
        if hub.id not in allowed:
            raise Forbidden(
                f"{code} for order {order.id} is recorded by {' or '.join(sorted(allowed))}"
            )
        if order.state is OrderState.CANCELLED:
            raise InvalidTransition(f"order {order.id} was cancelled before hand-over")
        events = self._tracking(conn, order.id)
        check_tracking_step(events[-1].code if events else None, code, domestic=domestic)
        now = self._now()
        if code == "EMA" and now >= order.ship_by_ns:
            # the order is cancelled for it: a hand-over recorded before the deadline pass had
            # run (or while it could not refund: a suspended wallet) shipped a cancelled order
            raise WindowClosed(
                f"order {order.id} was not handed over by its ship-by deadline: it is cancelled "
                "and refunded"
            )
        if code == "EMI" and order.state is OrderState.SHIPPED and now >= order.deliver_by_ns:
            # the order is refunded for it (the deadline pass's rule): a delivery recorded
            # before the pass had run, or while it could not pay the refund (a suspended
            # wallet), took the due refund back and started a dispute window instead
            raise WindowClosed(
                f"order {order.id} was not delivered by its delivery deadline: it is refunded"
            )
        ev = TrackingEvent(order.id, len(events), code, hub.id, hub.participant_id, now, note)
        conn.execute(
            sa.insert(st.tracking).values(
                shipment_id=ev.shipment_id,
                seq=ev.seq,
                code=ev.code,
                hub_id=ev.hub_id,
                actor=ev.actor,
                at=ev.at_ns,
                note=ev.note,
            )
        )
        if code == "EMA":
            self._move_stock(conn, order, on_hand=-1, reserved=-1)
            self._event(conn, order.id, "shipped", hub.participant_id)
            self._set_state(conn, order)
        elif code == "EDB":
            self._declare(conn, order)
        elif code == "EDC":
            self._pay_taxes(conn, order, hub.participant_id)
        elif code == "EMI" and order.state not in TERMINAL_ORDER_STATES:
            self._event(conn, order.id, "delivered", hub.participant_id)
            release_at = now + self._hub(conn, order.hub_id).dispute_days * DAY_NS
            if order.state is not OrderState.DISPUTED:
                self._set_state(conn, order, release_at=release_at)
            else:
                conn.execute(
                    sa.update(st.orders)
                    .where(st.orders.c.id == order.id)
                    .values(release_at=release_at)
                )
        return ev

    def _lines(self, conn: Connection, order_id: str) -> list[Any]:
        return list(
            conn.execute(
                sa.select(st.order_lines)
                .where(st.order_lines.c.order_id == order_id)
                .order_by(st.order_lines.c.line)
            ).all()
        )

    def _move_stock(
        self, conn: Connection, order: Order, *, on_hand: int = 0, reserved: int = 0
    ) -> None:
        """Shift every line's stock by ``on_hand`` and ``reserved`` times its quantity: -1/-1
        at hand-over, 0/-1 when a reservation is freed, +1/0 when a return comes back."""
        for ln in self._lines(conn, order.id):
            conn.execute(
                sa.update(st.stock)
                .where(st.stock.c.sku == ln.sku, st.stock.c.warehouse_id == ln.warehouse_id)
                .values(
                    on_hand=st.stock.c.on_hand + on_hand * ln.quantity,
                    reserved=st.stock.c.reserved + reserved * ln.quantity,
                )
            )

    def _declare(self, conn: Connection, order: Order) -> Declaration:
        """Lodge the WCO-style import declaration for the parcel (recorded once)."""
        q = st.quote_from_row(self._one(conn, st.quotes, "id", order.quote_id))
        merchant = self._merchant(conn, order.merchant_id)
        hub = self._hub(conn, order.hub_id)
        dest = self._hub(conn, order.destination_hub_id)
        items = {ln.sku: self._item(conn, ln.sku) for ln in q.lines}
        shipment = Shipment(
            order.id,
            Party(merchant.legal_name, merchant.country, merchant.registration_number),
            # Delivered duty paid: the destination hub is the importer of record (an
            # authorised operator); the buyer's identity stays in the order, off the form.
            Party(dest.name, dest.country, dest.id, authorised_operator=True),
            Party(hub.name, hub.country, hub.id, authorised_operator=True),
            order.destination,
            tuple(_declaration_line(items[ln.sku], ln, q.currency) for ln in q.lines),
            q.freight_minor,
            q.insurance_minor,
            q.currency,
            INCOTERM,
            origin_hub=order.hub_id,
            destination_hub=order.destination_hub_id,
        )
        fx = q.customs_fx
        if fx is not None:  # valued in customs' currency at the quote's rate, never today's
            shipment = replace(
                shipment,
                freight_minor=fx.freight_minor,
                insurance_minor=fx.insurance_minor,
                currency=fx.currency,
            )
        on = ns_to_datetime(q.created_at_ns).date()
        log = _DeclarationTable(conn, self._now())
        return declare(
            shipment,
            on,
            log,
            fx_rates={q.currency: fx.rate} if fx is not None else None,
            fx_source=fx.source(q.currency) if fx is not None else "",
            regime=q.regime,  # the quote's: CBEC only if it was within the limits then
            tariffs=self._zone_tariffs(hub, dest),
        )

    def _zone_tariffs(self, origin: Hub, dest: Hub) -> Tariffs:
        """The tariffs with the Digital Free Trade Zone's members as the hubs say (``dftz``):
        the data's list of hub ids alone decided, so a hub created a member never was one and
        one created outside the zone under a listed id was inside it."""
        members = dict(self.tariffs.dftz_hubs)
        for h in (origin, dest):
            if h.dftz:
                members[h.id] = h.country
            else:
                members.pop(h.id, None)
        return replace(self.tariffs, dftz_hubs=MappingProxyType(members))

    def _pay_taxes(self, conn: Connection, order: Order, actor: str) -> None:
        if order.tax_escrow_id is None:
            return
        e = self.scheme.get_escrow(
            self._hub(conn, order.hub_id).participant_id, order.tax_escrow_id, recorded=True
        )
        if e.held_minor == 0:
            return
        hub = self._hub(conn, order.hub_id)
        self._escrow_move(hub, order.tax_escrow_id, release=e.held_minor, refund=0)
        q = st.quote_from_row(self._one(conn, st.quotes, "id", order.quote_id))
        if q.customs_fx is None:
            self._event(conn, order.id, "import_cleared", actor, taxes_minor=e.held_minor)
            return
        # Released to the destination hub (the importer of record), which pays customs what
        # it assessed, in its currency, from its own account there.
        fx, dest = q.customs_fx, self._hub(conn, order.destination_hub_id)
        paid_id = f"tc{secrets.token_hex(16)}"
        if fx.taxes_minor:
            try:
                self.scheme.create_escrow(
                    dest.participant_id,
                    paid_id,
                    dest.customs_authority,
                    fx.currency,
                    fx.taxes_minor,
                    f"order {order.id}: duties and taxes declared in {fx.currency}",
                    86_400,
                    DeadlineAction.REFUND,
                )
                self.scheme.release_escrow(dest.participant_id, paid_id, fx.taxes_minor)
            except PaymentError as exc:
                raise PaymentFailed(
                    f"{dest.participant_id} pays {order.destination} customs "
                    f"{fx.taxes_minor} {fx.currency} minor units at clearance: {exc.detail}"
                ) from None
        self._event(
            conn,
            order.id,
            "import_cleared",
            actor,
            taxes_minor=e.held_minor,
            customs_minor=fx.taxes_minor,
            customs_currency=fx.currency,
            customs_payment=paid_id if fx.taxes_minor else None,
        )

    def _escrow_move(self, hub: Hub, escrow_id: str, *, release: int, refund: int) -> None:
        try:
            if release and refund:
                self.scheme.split_escrow(hub.participant_id, escrow_id, release, refund)
            elif release:
                self.scheme.release_escrow(hub.participant_id, escrow_id, release)
            elif refund:
                self.scheme.refund_escrow(hub.participant_id, escrow_id, refund)
        except PaymentError as exc:
            raise PaymentFailed(f"escrow {escrow_id}: {exc.detail}") from None

    # ------------------------------------------------------------------ settling an order
    def _settle(
        self,
        conn: Connection,
        order: Order,
        refund_minor: int,
        actor: str,
        kind: str,
        **detail: object,
    ) -> Order:
        """Move the goods escrow: ``refund_minor`` back to the buyer, the rest to the hub,
        which owes the merchant its share (a payout, run after commit). Duties and taxes
        still held (the goods never cleared import on record) go back to the buyer, on a
        release too: a dispute ruled for the merchant before clearance left them held until
        the escrow's one-year backstop, the order COMPLETED."""
        hub = self._hub(conn, order.hub_id)
        release = order.goods_escrow_minor - refund_minor
        self._escrow_move(hub, order.goods_escrow_id, release=release, refund=refund_minor)
        taxes_back = 0
        if order.tax_escrow_id is not None:
            held = self.scheme.get_escrow(
                hub.participant_id, order.tax_escrow_id, recorded=True
            ).held_minor
            if held:
                self._escrow_move(hub, order.tax_escrow_id, release=0, refund=held)
                taxes_back = held
        self._event(
            conn,
            order.id,
            kind,
            actor,
            released_minor=release,
            refunded_minor=refund_minor,
            taxes_refunded_minor=taxes_back,
            **detail,
        )
        share = merchant_share(order, release) if release else 0
        if share > 0:
            conn.execute(
                sa.insert(st.payouts).values(
                    transfer_id=f"tp{secrets.token_hex(16)}",
                    order_id=order.id,
                    merchant_id=order.merchant_id,
                    currency=order.merchant_currency,
                    amount=share,
                    source_currency=order.currency,
                    source_amount=0,
                    withheld=0,
                    state="PENDING",
                    created_at=self._now(),
                )
            )
        return self._set_state(conn, order, release_at=None)

    def pay_out(self, transfer_id: str) -> str:
        """Pay a merchant what a release owes it, in its currency, through the scheme (the
        hub pays; the merchant's bank accepts). Part may be withheld to repay its loan.
        Returns the payout's state; PENDING means it will be retried."""
        try:
            with self._write() as uow:
                return self._pay_out(uow, transfer_id)
        except (PaymentError, PaymentFailed) as exc:
            with self._write() as uow:
                conn = uow.connection
                row = self._one(conn, st.payouts, "transfer_id", transfer_id)
                detail = {"error": str(exc), "payout": transfer_id}
                if isinstance(exc, TransferBlocked):  # its reasons: the paying hub's only
                    detail["code"] = exc.code
                if not self._failing_since_last_event(conn, row.order_id, detail):
                    self._event(conn, row.order_id, "payout_failed", SCHEME, **detail)
            return "PENDING"

    def _failing_since_last_event(
        self, conn: Connection, order_id: str, detail: Mapping[str, object]
    ) -> bool:
        """Whether the order's log already ends with this payout failure, only other failures
        after it: the deadline pass retries a stuck payout every pass, and its log records
        each failure once, until anything else happens to the order or the reason changes."""
        rows = conn.execute(
            sa.select(st.order_events.c.kind, st.order_events.c.detail)
            .where(st.order_events.c.order_id == order_id)
            .order_by(st.order_events.c.seq.desc())
        ).all()
        wanted = st.dumps(detail)
        for kind, text in rows:
            if kind != "payout_failed":
                return False
            if text == wanted:
                return True
        return False

    def _pay_out(self, uow: UnitOfWork, transfer_id: str) -> str:
        conn = uow.connection
        row = self._one(conn, st.payouts, "transfer_id", transfer_id)
        if row is None or row.state == "PAID":
            return "PAID" if row is not None else "UNKNOWN"
        order = self._order(conn, row.order_id)
        merchant = self._merchant(conn, row.merchant_id)
        hub = self._hub(conn, order.hub_id)
        attempt = self._payout_attempt(conn, row)
        if row.state == "HELD":
            return self._held_payout(uow, row, order, merchant, hub, attempt)
        # The partner bank that lends is the merchant's own bank: the whole payout goes to it,
        # and it keeps ``withheld`` against the loan, booked in the loan book once the payout
        # is paid (booked when it was prepared, a payout screening then held and its reviewer
        # rejected repaid the loan with money the bank never received).
        amount = row.amount
        quote = self.scheme.create_quote(
            hub.participant_id,
            f"{attempt}q",
            merchant.settlement_alias_type,
            merchant.settlement_alias,
            amount,
            AmountType.RECEIVE,
            order.currency,
            amount_currency=row.currency,  # the scheme refuses it rather than pay another
        )
        t = self.scheme.prepare_transfer(
            hub.participant_id,
            attempt,
            quote.id,
            ttl_s=PAYOUT_TTL_S,
            note=f"payout for order {order.id}",
        )
        state = "HELD"
        withheld = 0
        if t.state is TransferState.RESERVED:
            self.scheme.commit_transfer(merchant.settlement_participant, attempt)
            state = "PAID"
            withheld = self._withhold(uow, row, merchant)
        conn.execute(
            sa.update(st.payouts)
            .where(st.payouts.c.transfer_id == transfer_id)
            .values(state=state, source_amount=quote.source_amount_minor, withheld=withheld)
        )
        self._event(
            conn,
            order.id,
            "payout" if state == "PAID" else "payout_held",
            hub.participant_id,
            amount_minor=amount,
            withheld_minor=withheld,
            currency=row.currency,
            source_minor=quote.source_amount_minor,
        )
        return state

    def _payout_attempt(self, conn: Connection, row: Any) -> str:
        """The scheme transfer id of the payout's current attempt: its own id, then a new one
        after each attempt the scheme aborted (expired on hold, refused by the reviewer)."""
        retries = conn.execute(
            sa.select(sa.func.count())
            .select_from(st.order_events)
            .where(
                st.order_events.c.order_id == row.order_id,
                st.order_events.c.kind == "payout_retry",
            )
        ).scalar_one()
        return str(row.transfer_id) if not retries else f"{row.transfer_id}r{retries}"

    def _withhold(self, uow: UnitOfWork, row: Any, merchant: Merchant) -> int:
        """The part of a paid payout the merchant's bank keeps against its loan, booked in
        the loan book in the payout's transaction (by the payout's own id, whatever the
        attempt: a replay books nothing twice); 0 without lending."""
        if self.lending is None:
            return 0
        try:
            return int(
                self.lending.withhold(
                    merchant.id,
                    row.currency,
                    row.amount,
                    row.transfer_id,
                    uow=uow,
                    # only the bank the payout goes to can keep a repayment out of it
                    lender_id=merchant.settlement_participant,
                )
            )
        except Conflict as exc:
            # The loan book refuses the payout's id as a reference (its lender recorded a
            # direct repayment under it while the payout was held, say), before it books
            # anything: the payout is paid whole and says so, once. Refused, it rolled the
            # payout back at every pass, and stopped the pass's other payouts (a review).
            self._event_once(
                uow.connection, row.order_id, "withholding_refused", SCHEME,
                error=str(exc), payout=row.transfer_id,
            )  # fmt: skip
            return 0

    def _held_payout(
        self, uow: UnitOfWork, row: Any, order: Order, merchant: Merchant, hub: Hub, tid: str
    ) -> str:
        """A payout screening held: once the reviewer releases it (RESERVED) the merchant's
        bank accepts it, and the loan withholding is booked then; if it was aborted the next
        attempt uses new ids."""
        conn = uow.connection
        t = self.scheme.get_transfer(hub.participant_id, tid)
        state = "HELD"
        if t.state is TransferState.RESERVED:
            self.scheme.commit_transfer(merchant.settlement_participant, tid)
            state = "PAID"
        elif t.state is TransferState.COMMITTED:
            state = "PAID"
        elif t.state is TransferState.ABORTED:
            state = "PENDING"
            self._event(conn, order.id, "payout_retry", SCHEME, aborted=tid, reason=t.reason)
        withheld = self._withhold(uow, row, merchant) if state == "PAID" else 0
        conn.execute(
            sa.update(st.payouts)
            .where(st.payouts.c.transfer_id == row.transfer_id)
            .values(state=state, withheld=withheld)
        )
        if state == "PAID":
            self._event(
                conn, order.id, "payout", hub.participant_id, transfer=tid,
                withheld_minor=withheld,
            )  # fmt: skip
        return state

    def merchant_history(self, caller: str, merchant_id: str, months: int = 12) -> Any:
        """What the platform knows of a merchant's trade, for a partner bank's credit policy
        (``entrepot.risk.lending.MerchantHistory``): monthly sales over the last ``months``
        complete months (those that ended before the merchant joined left out), orders,
        refunds, disputes and those lost, tenure, and the share of weeks with a payout. The
        merchant and its hub may ask; a lender asks through the merchant."""
        from entrepot.risk.lending import MerchantHistory

        if not 1 <= months <= 36:
            raise InvalidTradeInput("months must be 1..36", field="months")
        with read_connection(self.engine) as conn:
            m = self._merchant(conn, merchant_id)
            role, actor = parse_principal(caller)
            mine = role is Role.MERCHANT and actor == m.id
            if not mine and not (
                role is Role.HUB and self._hub_of_caller(conn, caller).id == m.hub_id
            ):
                raise Forbidden(f"the history of merchant {merchant_id} is not yours")
            orders = [
                st.order_from_row(r)
                for r in conn.execute(
                    sa.select(st.orders).where(st.orders.c.merchant_id == m.id)
                ).all()
            ]
            paid_at = [
                r[0]
                for r in conn.execute(
                    sa.select(st.payouts.c.created_at).where(
                        st.payouts.c.merchant_id == m.id, st.payouts.c.state == "PAID"
                    )
                ).all()
            ]
            disputed_ids = {
                r[0]
                for r in conn.execute(
                    sa.select(st.disputes.c.order_id)
                    .join(st.orders, st.orders.c.id == st.disputes.c.order_id)
                    .where(st.orders.c.merchant_id == m.id)
                ).all()
            }
            lost_ids = {
                r[0]
                for r in conn.execute(
                    sa.select(st.order_events.c.order_id).where(
                        st.order_events.c.order_id.in_(disputed_ids),
                        st.order_events.c.kind.in_(["split", "refunded"]),
                    )
                ).all()
            }
            # a split sold the merchant's goods in part: the share released to it
            released = {
                r.order_id: int(json.loads(r.detail)["released_minor"])
                for r in conn.execute(
                    sa.select(st.order_events.c.order_id, st.order_events.c.detail)
                    .join(st.orders, st.orders.c.id == st.order_events.c.order_id)
                    .where(st.orders.c.merchant_id == m.id, st.order_events.c.kind == "split")
                ).all()
            }
        now = self._now()
        bounds = _month_bounds(ns_to_datetime(now).date(), months)
        # a month that ended before the merchant joined is no month of its trade: counted as
        # no sales, it lowered the average a bank lends on (found by a review)
        while len(bounds) > 1 and bounds[1] <= m.created_at_ns:
            bounds = bounds[1:]
        in_window = [o for o in orders if bounds[0] <= o.created_at_ns < bounds[-1]]

        def sold(o: Order) -> int:
            if o.id not in released:
                return o.merchant_amount_minor
            return o.merchant_amount_minor * released[o.id] // o.goods_escrow_minor

        sales = [
            sum(
                sold(o)
                for o in in_window
                if lo <= o.created_at_ns < hi and o.state is OrderState.COMPLETED
            )
            for lo, hi in itertools.pairwise(bounds)
        ]
        refunded = [o for o in in_window if o.state is OrderState.REFUNDED]
        # the same complete months as the sales: weeks observed since the merchant joined
        start, end = max(m.created_at_ns, bounds[0]), bounds[-1]
        weeks = max(1, -(-(end - start) // (7 * DAY_NS)))
        paid_weeks = {(t - start) // (7 * DAY_NS) for t in paid_at if start <= t < end}
        return MerchantHistory(
            m.id,
            m.country,
            m.currencies[0],
            now,
            max(0, (now - m.created_at_ns) // DAY_NS),
            tuple(sales),
            len(in_window),
            len(refunded),
            sum(o.merchant_amount_minor for o in refunded),
            sum(1 for o in in_window if o.id in disputed_ids),
            sum(1 for o in in_window if o.id in lost_ids),
            min(len(paid_weeks), weeks),
            weeks,
        )

    def declaration(self, caller: str, order_id: str) -> dict[str, Any] | None:
        """The import declaration lodged for the order's parcel (at EDB), as recorded."""
        with read_connection(self.engine) as conn:
            self._check_sees(conn, caller, self._order(conn, order_id))
            row = self._one(conn, st.declarations, "shipment_id", order_id)
        return None if row is None else dict(json.loads(row.body))

    def _pays_payouts(self, conn: Connection, caller: str, order: Order) -> bool:
        """Whether ``caller`` is the order's origin hub operator, which pays its payouts."""
        return parse_principal(caller)[0] is Role.HUB and (
            self._hub_of_caller(conn, caller).id == order.hub_id
        )

    def payouts(self, caller: str, order_id: str) -> list[dict[str, object]]:
        """The order's merchant payouts. What each withheld to repay the merchant's loan
        (``withheld_minor``) is lending's, read by the merchant and its hub, which pays the
        payout: None to the buyer, the destination hub and an arbitrator (that a merchant has
        a loan, and how fast it repays it, is not theirs to know)."""
        with read_connection(self.engine) as conn:
            order = self._order(conn, order_id)
            self._check_sees(conn, caller, order)
            sees_loan = _is_its_merchant(caller, order) or self._pays_payouts(conn, caller, order)
            rows = conn.execute(
                sa.select(st.payouts).where(st.payouts.c.order_id == order_id)
            ).all()
        return [
            {
                "transfer_id": r.transfer_id,
                "currency": r.currency,
                "amount_minor": r.amount,
                "withheld_minor": r.withheld if sees_loan else None,
                "source_currency": r.source_currency,
                "source_amount_minor": r.source_amount,
                "state": r.state,
            }
            for r in rows
        ]

    def _after(self, order_id: str) -> None:
        """Run the payouts a committed release owes."""
        with read_connection(self.engine) as conn:
            ids = [
                r[0]
                for r in conn.execute(
                    sa.select(st.payouts.c.transfer_id).where(
                        st.payouts.c.order_id == order_id, st.payouts.c.state != "PAID"
                    )
                ).all()
            ]
        for tid in ids:
            self.pay_out(tid)

    # ------------------------------------------------------------------ buyer and merchant acts
    def confirm_receipt(self, caller: str, order_id: str) -> Order:
        """The buyer confirms it received the goods as described: the escrow is released now."""
        buyer_id = self._as(caller, Role.BUYER)
        with self._write() as uow:
            conn = uow.connection
            order = self._order(conn, order_id)
            if order.buyer_id != buyer_id:
                raise Forbidden(f"order {order_id} is not yours")
            if order.state is not OrderState.DELIVERED:
                raise InvalidTransition(
                    f"order {order_id} is {order.state.value}; confirm after delivery"
                )
            order = self._settle(conn, order, 0, caller, "released")
        self._after(order_id)
        return order

    def cancel(self, caller: str, order_id: str, reason: str) -> Order:
        """Buyer, merchant or the merchant's hub cancels before hand-over: full refund."""
        reason = check_text(reason, "reason")
        with self._write() as uow:
            conn = uow.connection
            order = self._order(conn, order_id)
            self._check_party(conn, caller, order)
            if order.state is not OrderState.PAID:
                raise InvalidTransition(
                    f"order {order_id} is {order.state.value}: only a paid order not yet "
                    "handed over can be cancelled (after that: a return or a dispute)"
                )
            self._move_stock(conn, order, reserved=-1)
            order = self._settle(
                conn, order, order.goods_escrow_minor, caller, "cancelled", reason=reason
            )
        return order

    def _check_party(self, conn: Connection, caller: str, order: Order) -> None:
        role, actor = parse_principal(caller)
        if role is Role.BUYER and actor == order.buyer_id:
            return
        if role is Role.MERCHANT and actor == order.merchant_id:
            return
        if role is Role.HUB and self._hub_of_caller(conn, caller).id == order.hub_id:
            return
        raise Forbidden(f"order {order.id} is not yours")

    def request_return(self, caller: str, order_id: str, reason: str) -> Order:
        """Within the dispute window after delivery the buyer asks to send the goods back;
        the release waits. The merchant accepts (refund when the goods are back) or refuses
        (the buyer may then open a dispute); silence for 3 days counts as acceptance."""
        buyer_id = self._as(caller, Role.BUYER)
        reason = check_text(reason, "reason")
        with self._write() as uow:
            conn = uow.connection
            order = self._order(conn, order_id)
            if order.buyer_id != buyer_id:
                raise Forbidden(f"order {order_id} is not yours")
            if order.state is not OrderState.DELIVERED:
                raise InvalidTransition(f"order {order_id} is {order.state.value}")
            assert order.release_at_ns is not None
            if self._now() >= order.release_at_ns:
                raise WindowClosed(f"the return window of order {order_id} has closed")
            asked = conn.execute(
                sa.select(st.order_events.c.seq).where(
                    st.order_events.c.order_id == order.id,
                    st.order_events.c.kind == "return_requested",
                )
            ).first()
            if asked is not None:  # else refusals could keep the escrow held for ever
                raise InvalidTransition(
                    f"order {order_id} had its one return request; open a dispute instead"
                )
            self._event(conn, order.id, "return_requested", caller, reason=reason)
            order = self._set_state(
                conn, order, release_at=self._now() + RETURN_RESPONSE_DAYS * DAY_NS
            )
        return order

    def answer_return(self, caller: str, order_id: str, accept: bool, note: str = "") -> Order:
        merchant_id = self._as(caller, Role.MERCHANT)
        check_note(note, "note", 400)
        with self._write() as uow:
            conn = uow.connection
            order = self._order(conn, order_id)
            if order.merchant_id != merchant_id:
                raise Forbidden(f"order {order_id} is not yours")
            if order.state is not OrderState.RETURN_REQUESTED:
                raise InvalidTransition(f"order {order_id} is {order.state.value}")
            due = order.release_at_ns  # a return requested has its answer's deadline
            if not accept and due is not None and self._now() >= due:
                # silence for 3 days is acceptance: a refusal after them took back the refund
                # the deadline pass owed but had not paid yet (not run, a suspended wallet)
                raise WindowClosed(f"the time to refuse the return of order {order_id} has passed")
            if accept:
                order = self._refund_return(conn, order, caller, note or "return accepted")
            else:
                self._event(conn, order.id, "return_refused", caller, note=note)
                # the buyer keeps its dispute window, as it ran from delivery: a refusal
                # restarting it gave the buyer (and the escrow's hold) a week more each time
                order = self._set_state(conn, order, release_at=self._window_closes(conn, order))
        return order

    def _window_closes(self, conn: Connection, order: Order) -> int:
        """When the order's dispute window closes: its hub's dispute days after delivery, from
        the EMI event's time, the clock reading delivery set ``release_at`` from (the order's
        "delivered" event reads the clock again, later: a window from it closed later)."""
        delivered = conn.execute(
            sa.select(sa.func.min(st.tracking.c.at)).where(
                st.tracking.c.shipment_id == order.id,
                st.tracking.c.code == "EMI",
            )
        ).scalar_one()
        assert delivered is not None  # a return is asked for after delivery only
        return int(delivered) + self._hub(conn, order.hub_id).dispute_days * DAY_NS

    def _refund_return(self, conn: Connection, order: Order, actor: str, note: str) -> Order:
        self._move_stock(conn, order, on_hand=1)
        return self._settle(conn, order, order.goods_escrow_minor, actor, "refunded", note=note)

    # ------------------------------------------------------------------ deadlines
    def process_deadlines(self) -> dict[str, int]:
        """Act on every deadline that has passed: unshipped orders are cancelled, undelivered
        ones refunded, delivered ones released after the dispute window, unanswered returns
        accepted; dispute deadlines (``disputes.py``); pending payouts retried."""
        now = self._now()
        counts = {"cancelled": 0, "refunded": 0, "released": 0, "returns_accepted": 0}
        rules: list[tuple[str, Any, Callable[[Connection, Order], Order]]] = [
            (
                "cancelled",
                (st.orders.c.state == "PAID") & (st.orders.c.ship_by <= now),
                lambda c, o: self._expire_unshipped(c, o),
            ),
            (
                "refunded",
                (st.orders.c.state == "SHIPPED") & (st.orders.c.deliver_by <= now),
                lambda c, o: self._expire_undelivered(c, o),
            ),
            (
                "released",
                (st.orders.c.state == "DELIVERED") & (st.orders.c.release_at <= now),
                lambda c, o: self._settle(c, o, 0, SCHEME, "released"),
            ),
            (
                "returns_accepted",
                (st.orders.c.state == "RETURN_REQUESTED") & (st.orders.c.release_at <= now),
                lambda c, o: self._refund_return(
                    c, o, SCHEME, "the merchant did not answer the return in time"
                ),
            ),
        ]
        counts["failed"] = 0
        for name, where, act in rules:
            with read_connection(self.engine) as conn:
                ids = [r[0] for r in conn.execute(sa.select(st.orders.c.id).where(where)).all()]
            for order_id in ids:
                acted = self._act_on_deadline(order_id, where, act)
                if acted is None:
                    counts["failed"] += 1
                elif acted:
                    counts[name] += 1
                    self._after(order_id)
        counts.update(self.process_dispute_deadlines())
        counts["payouts_retried"], counts["payouts_failed"] = self._retry_payouts()
        return counts

    def _act_on_deadline(
        self, order_id: str, where: Any, act: Callable[[Connection, Order], Order]
    ) -> bool | None:
        """One order's deadline in its own unit of work: the rule is checked again under the
        write lock (the order may have moved since it was listed); a failure (a suspended
        wallet, a refused escrow move) is recorded on the order and does not stop the others.
        True: acted; False: no longer due; None: failed."""
        try:
            with self._write() as uow:
                conn = uow.connection
                due = conn.execute(
                    sa.select(st.orders.c.id).where(where, st.orders.c.id == order_id)
                ).first()
                if due is None:
                    return False
                act(conn, self._order(conn, order_id))
            return True
        except (TradeError, PaymentError) as exc:
            with self._write() as uow:
                # once while it keeps failing for the same reason: the pass retries it every
                # 30 s, and an order stuck for days gained thousands of identical events
                self._event_once(
                    uow.connection, order_id, "deadline_failed", SCHEME, error=str(exc)
                )
            return None

    def _expire_unshipped(self, conn: Connection, order: Order) -> Order:
        self._move_stock(conn, order, reserved=-1)
        return self._settle(
            conn,
            order,
            order.goods_escrow_minor,
            SCHEME,
            "cancelled",
            reason="not handed over in time",
        )

    def _expire_undelivered(self, conn: Connection, order: Order) -> Order:
        return self._settle(
            conn,
            order,
            order.goods_escrow_minor,
            SCHEME,
            "refunded",
            reason="not delivered in time",
        )

    def _retry_payouts(self) -> tuple[int, int]:
        """(paid, failed): each unpaid payout tried again; one the scheme refuses stays
        PENDING (``pay_out``, logged on the order); one refused otherwise (the loan book, say)
        is counted and logged here, and does not stop the others."""
        with read_connection(self.engine) as conn:
            ids = [
                r[0]
                for r in conn.execute(
                    # through its partial index (store.py)
                    sa.select(st.payouts.c.transfer_id).where(sa.text(st.UNPAID_PAYOUT))
                ).all()
            ]
        paid = failed = 0
        for tid in ids:
            try:
                paid += self.pay_out(tid) == "PAID"
            except DomainError:  # one payout refused otherwise must not stop the others
                failed += 1
                log.warning("payout %s could not be retried", tid, exc_info=True)
        return paid, failed


def _resent(found: _T, same: bool, what: str, ident: str, field: str) -> _T:
    """A create whose id exists (ADR 0009): the same request is answered with what it made,
    as it is now, and writes nothing; another request with that id is ``trade_id_conflict``
    (409, ``field`` naming the id), telling no more than that the id is taken."""
    if not same:
        raise IdConflict(f"{what} {ident} exists, created by a different request", field=field)
    return found


def _check_alias_currency(b: Buyer, party: DirectoryParty) -> None:
    """Refuse (``trade_invalid_transition``) once the buyer's wallet registered its alias
    again in another currency than the buyer was registered in: its quotes price, and its
    escrows take, the old one, which its wallet's customer is no longer paid in."""
    if party.currency != b.currency:
        raise InvalidTransition(
            f"buyer {b.id} pays in {b.currency}, and {b.wallet_participant} now registers "
            f"{b.wallet_alias_type} {b.wallet_alias} in {party.currency}: its orders would be "
            "paid in a currency its customer is not paid in; the hub registers a buyer for "
            "the alias as it is now",
            field="buyer",
        )


def _wallet_consent(value: WalletConsent | str) -> WalletConsent:
    try:
        return WalletConsent(value)
    except ValueError:
        allowed = ", ".join(c.value for c in WalletConsent)
        raise InvalidTradeInput(
            f"wallet consent {value!r}: expected one of {allowed}", field="walletConsent"
        ) from None


def _is_its_merchant(caller: str, order: Order) -> bool:
    return caller == principal(Role.MERCHANT, order.merchant_id)


#: What the order's other readers are told of a payout screening blocked
PAYOUT_REFUSED = "the scheme refused the payout; the paying hub has the reason"


def _payout_detail_shared(kind: str, detail: dict[str, Any]) -> dict[str, Any]:
    """An order event's detail as the order's readers other than the paying (origin) hub
    see it: a payout's transfer is the hub's, and why screening held it (the reviewer's
    words) or blocked it (the watch-list entry, the fraud evidence) is its payer's, not its
    payee's (``PaymentTransfer.seen_by``) nor the buyer's."""
    if kind == "payout_retry" and str(detail.get("reason") or "").startswith(
        (REVIEW_RELEASED, REVIEW_REJECTED)
    ):
        return {k: v for k, v in detail.items() if k != "reason"}
    if kind == "payout_failed" and (
        detail.get("code") == TransferBlocked.code
        or " blocked by screening: " in str(detail.get("error", ""))  # logged before the code
    ):
        return {**detail, "error": PAYOUT_REFUSED}
    return detail


def _not_payout_currency(m: Merchant, currency: str) -> str:
    """A payout is paid to the merchant's settlement alias, in the alias's currency only: an
    item priced in another would be paid its net as that many units of the alias's."""
    return (
        f"merchant {m.id} is paid in {m.settlement_currency} (its settlement alias), so its "
        f"items are priced in {m.settlement_currency}, not {currency}"
    )


def _month_bounds(today: date, months: int) -> list[int]:
    """Nanosecond starts of the last ``months`` complete calendar months, and the end of the
    last one (the first of this month)."""
    y, mth = today.year, today.month
    starts = []
    for _ in range(months + 1):
        starts.append(date(y, mth, 1))
        y, mth = (y, mth - 1) if mth > 1 else (y - 1, 12)
    epoch = date(1970, 1, 1)
    return [(d - epoch).days * 86_400 * NS_PER_S for d in reversed(starts)]


class _DeclarationTable:
    """The customs declaration log kept in ``trade_declarations`` (idempotent by shipment)."""

    def __init__(self, conn: Connection, now: int) -> None:
        self.conn = conn
        self.now = now

    def record(self, declaration: Declaration) -> Declaration:
        body = st.dumps(asdict(declaration))  # Decimals and dates as text (dumps)
        row = self.conn.execute(
            sa.select(st.declarations.c.body).where(
                st.declarations.c.shipment_id == declaration.shipment_id
            )
        ).first()
        if row is not None:
            if row[0] != body:
                from entrepot.trade.customs import DeclarationConflict

                raise DeclarationConflict(
                    f"shipment {declaration.shipment_id} is already declared differently",
                    field="shipment_id",
                )
            return declaration
        self.conn.execute(
            sa.insert(st.declarations).values(
                shipment_id=declaration.shipment_id,
                declaration_id=declaration.declaration_id,
                destination=declaration.destination,
                lane=declaration.clearance.lane,
                clearance_hours=declaration.clearance.estimated_clearance_hours,
                body=body,
                created_at=self.now,
            )
        )
        return declaration

    def find(self, shipment_id: str) -> Declaration | None:
        return None  # declarations are read back as JSON: TradeNetwork.declaration()


def _at_customs_rate(amount: int, currency: str, customs_currency: str, rate: Decimal) -> int:
    """``amount`` of ``currency`` in customs' currency at ``rate``, rounded half up once, as
    the customs engine converts a line's value."""
    if amount == 0:
        return 0
    return convert(
        Money(amount, get_currency(currency)), rate, customs_currency, ROUNDING
    ).amount_minor


def _declaration_line(item: Item, line: QuoteLine, currency: str) -> DeclarationLine:
    """The customs line of a quoted line: in the item's customs unit as quoted (pieces x the
    per-piece quantity), else in pieces; net mass from the item's weight."""
    return DeclarationLine(
        item.hs_code,
        item.title,
        item.origin,
        line.customs_quantity,
        line.customs_unit,
        Decimal(item.weight_g * line.quantity) / 1000,
        line.line_buyer_minor,
        currency,
    )


def _merchant_values(m: Merchant) -> dict[str, Any]:
    return {
        "id": m.id,
        "hub_id": m.hub_id,
        "legal_name": m.legal_name,
        "registration_number": m.registration_number,
        "country": m.country,
        "currencies": ",".join(m.currencies),
        "settlement_alias_type": m.settlement_alias_type,
        "settlement_alias": m.settlement_alias,
        "settlement_participant": m.settlement_participant,
        "state": m.state.value,
        "screening": m.screening,
        "created_at": m.created_at_ns,
    }


def _customs_rules(cost: LandedCost, items: Sequence[Item]) -> list[str]:
    """The rule behind each of customs' figures, in its currency: the de-minimis decisions,
    each line's duty, excise and VAT/GST, and the fees (the engine's words)."""
    ccy = cost.currency
    out = [d.explanation for d in cost.low_value]
    out.extend(
        f"{item.sku}: customs value {c.customs_value_minor} {ccy} minor units; duty "
        f"{c.duty_minor}: {c.duty_rule}; excise {c.excise_minor}: {c.excise_rule}; VAT/GST "
        f"{c.vat_minor} on {c.vat_base_minor}: {c.vat_rule}"
        for item, c in zip(items, cost.lines, strict=True)
    )
    out.extend(f"{f.name} {f.amount_minor} {ccy} minor units: {f.rule}" for f in cost.fees)
    return out


def _customs_quantity_notes(lines: Sequence[QuoteLine]) -> list[str]:
    return [
        f"{ln.sku}: {ln.quantity} pcs x {ln.customs.per_piece} {ln.customs.unit} = "
        f"{ln.customs_quantity} {ln.customs.unit} declared to customs"
        for ln in lines
        if ln.customs is not None
    ]


def _item_values(i: Item, now: int) -> dict[str, Any]:
    return {
        "sku": i.sku,
        "merchant_id": i.merchant_id,
        "title": i.title,
        "hs_code": i.hs_code,
        "origin": i.origin,
        "weight_g": i.weight_g,
        "length_mm": i.length_mm,
        "width_mm": i.width_mm,
        "height_mm": i.height_mm,
        "price": i.price_minor,
        "currency": i.currency,
        "active": i.active,
        "created_at": now,
        **st.customs_values(i.customs),
    }
