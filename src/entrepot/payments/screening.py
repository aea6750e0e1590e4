"""Screening hooks that plug the risk engine into the scheme: a transfer whose payee matches a
watch list goes on HOLD for a person's review instead of being reserved for the payee. Never an
automatic block on a name: a reviewer approves or rejects (``PaymentScheme.review_hold``).
Fraud screening scores every transfer whose quote named its payer: review -> HOLD, block
(strong combined evidence, see ``entrepot.risk.fraud``) -> refused; the reviewer's verdict on a
held transfer is the label the model's features learn from."""

from __future__ import annotations

import heapq
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from entrepot.kernel.clock import NS_PER_S
from entrepot.payments.model import Party, PaymentTransfer
from entrepot.payments.services import (
    SCHEME,
    ScreeningDecision,
    VerdictsPartlyLogged,
    screen_all,
    screens_bulks_ahead,
)
from entrepot.risk.errors import EmptyName
from entrepot.risk.sanctions import Screener, make_party

if TYPE_CHECKING:
    from entrepot.risk.decisions import Decision
    from entrepot.risk.fraud import FraudScreener, Payment

T = TypeVar("T")


class _Loaded(Generic[T]):
    """A screener given built, or a factory run once on first use (thread-safe): loading the
    lists or a model takes about a second, which commands that never pay should not wait."""

    def __init__(self, value: T | None, factory: Callable[[], T] | None) -> None:
        self._value, self._factory = value, factory
        self._lock = threading.Lock()

    def get(self) -> T:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    assert self._factory is not None
                    self._value = self._factory()
        return self._value


#: How a held transfer's reason names the decisions that held it (``ScreeningDecision.
#: logged``), through which ``learn`` links the reviewer's verdict to them.
SANCTIONS_MARK = "sanctions decision "
FRAUD_MARK = "fraud decision "
_HELD_BY = re.compile(re.escape(SANCTIONS_MARK) + r"([0-9a-f]{32})")
_FRAUD_HELD_BY = re.compile(re.escape(FRAUD_MARK) + r"([0-9a-f]{32})")


class SanctionsScreening:
    """Screens the payee party of every prepared transfer by its display name. Not by its
    alias's country: that is the payee's participant's, where the bank is, not the payee's
    nationality or address, and taken for one it made a listed name a ``match`` at a bank in
    the listed nationality's country and "nationality differs" at one abroad. By name alone a
    close name is a ``review`` ("name only"), held for a person either way."""

    #: a pure function of the party (plus the decision log): safe to run before the write lock
    screens_ahead = True

    def __init__(self, screener: Screener | Callable[[], Screener]) -> None:
        if isinstance(screener, Screener):
            self._loaded = _Loaded[Screener](screener, None)
        else:
            self._loaded = _Loaded[Screener](None, screener)

    @property
    def screener(self) -> Screener:
        return self._loaded.get()

    def load(self) -> None:
        """Load the lists now (a server does, before it takes requests), not on first use."""
        self._loaded.get()

    def screen(self, transfer: PaymentTransfer, payee: Party | None) -> ScreeningDecision:
        asked = self._asked(transfer, payee)
        if isinstance(asked, ScreeningDecision):
            return asked
        assert payee is not None
        return self._decision(payee, self.screener.screen(asked))

    def _asked(self, transfer: PaymentTransfer, payee: Party | None) -> Any:
        """The party to screen for ``payee``, or the decision where there is none to screen
        (no payee: nothing held; a name with nothing to screen: held, ``_unreadable``)."""
        if payee is None:
            return ScreeningDecision(hold=False)
        try:
            return make_party(payee.display_name, asked=False)
        except EmptyName:
            return self._unreadable(transfer)

    def screen_many(
        self, pairs: Sequence[tuple[PaymentTransfer, Party | None]]
    ) -> list[ScreeningDecision]:
        """:meth:`screen` for each (transfer, payee), their decisions logged in one append
        (a bulk screens its payees together: one fsync, not one a payee)."""
        decisions: list[ScreeningDecision | None] = [None] * len(pairs)
        asked: list[tuple[int, Any]] = []  # (index, party to screen)
        for n, (transfer, payee) in enumerate(pairs):
            party = self._asked(transfer, payee)
            if isinstance(party, ScreeningDecision):
                decisions[n] = party
            else:
                asked.append((n, party))
        if asked:
            results = self.screener.screen_many([party for _, party in asked])
            for (n, _), result in zip(asked, results, strict=True):
                payee = pairs[n][1]
                assert payee is not None
                decisions[n] = self._decision(payee, result)
        return [d for d in decisions if d is not None]

    def _decision(self, payee: Party, result: Any) -> ScreeningDecision:
        if result.decision == "clear" or result.best is None:
            return ScreeningDecision(hold=False)
        best = result.best
        reasons = (
            f"sanctions {result.decision}: '{payee.display_name}' ~ '{best.listed_name}' "
            f"(OFAC entry {best.ent_num}, {best.programs}, score {best.score:.2f})",
            *best.reasons[:3],
        )
        logged = () if result.decision_id is None else (f"{SANCTIONS_MARK}{result.decision_id}",)
        return ScreeningDecision(hold=True, reasons=reasons, logged=logged)

    def verdicts(
        self,
        transfer: PaymentTransfer,
        rejected: bool,
        reason: str = "",
        by: Mapping[str, str] | None = None,
    ) -> list[Decision]:
        """The reviewer's verdict on a transfer this screening held, as the sanctions decision
        to log, linked to the one that held it (``review_of``): a person's release or rejection
        of a payment is as much a decision about the payee as the hold. Made, not logged: the
        scheme writes it in the review's transaction and logs it once that has committed
        (:meth:`log_verdicts`), so that the log holds a verdict if and only if it took effect.
        The link is the held transfer's reason, so it holds across restarts."""
        found = _HELD_BY.search(transfer.reason or "")
        if found is None or self.screener.sink is None:
            return []
        from entrepot.risk.decisions import make_decision

        verdict = "rejected" if rejected else "released"
        who = reviewer_words(by)
        return [
            make_decision(
                "sanctions", model_version=f"review:{SCHEME}", outcome=verdict, score=None,
                reasons=(f"held transfer {verdict} by the scheme's reviewer{who}: {reason}",),
                inputs={"review_of": found.group(1), "transfer_id": transfer.id,
                        "reviewer": SCHEME, "verdict": verdict, **(by or {})},
                clock=self.screener.clock,
            )
        ]  # fmt: skip

    def log_verdicts(self, records: Sequence[Mapping[str, Any]]) -> set[str]:
        """Append the sanctions decisions among ``records`` (as :meth:`verdicts` made them,
        in ``Decision.to_dict``'s form) to the log, in one append; the ids appended. Raises
        where the log refuses them."""
        return _log_kind(self.screener.sink, "sanctions", records)

    def learn(
        self, transfer: PaymentTransfer, rejected: bool, verdicts: Sequence[Decision] = ()
    ) -> None:
        """Nothing to learn: the verdict is all a sanctions screening keeps of a review."""

    def _unreadable(self, transfer: PaymentTransfer) -> ScreeningDecision:
        """A payee whose display name holds nothing to screen ("...", "-", an emoji): held for
        a person, logged. It was refused (422 ``risk_empty_name``, a field the request does
        not have), so the name alone kept every payment from it: a name never blocks."""
        reasons = (
            "sanctions review: the payee's name holds no letter or digit to screen against "
            "the lists: a person checks whom the payment is for",
        )
        sink = self.screener.sink
        if sink is None:
            return ScreeningDecision(hold=True, reasons=reasons)
        from entrepot.risk.decisions import make_decision

        decision = make_decision(
            "sanctions", model_version=self.screener.index.version, outcome="review",
            score=None, reasons=reasons,
            inputs={"transfer_id": transfer.id, "name_digest": None, "unreadable_name": True},
            clock=self.screener.clock,
        )  # fmt: skip
        sink.append([decision])
        return ScreeningDecision(
            hold=True, reasons=reasons, logged=(f"{SANCTIONS_MARK}{decision.decision_id}",)
        )

    def screen_business(self, name: str, country: str) -> tuple[str, str]:
        """Onboarding screening of a business (the trade context's hook): ``clear``,
        ``review`` (a person at the hub decides) or ``match`` (strong name match corroborated
        by country or other evidence), with why."""
        # the hub's country is where the business is, not the nationality of a person its
        # name may be: taken for one, a name alone suspended a business
        party = replace(make_party(name, None, country, asked=False), business_country=True)
        result = self.screener.screen(party)
        best = result.best
        # the logged decision first (the merchant's note is cut at 400 characters): explained
        # by its id later, as a held payment's is
        logged = "" if result.decision_id is None else f"{SANCTIONS_MARK}{result.decision_id}: "
        if result.decision == "clear" or best is None:
            return "clear", f"{logged}no watch-list candidate ({result.list_version})"
        why = logged + (
            f"'{name}' ~ '{best.listed_name}' (OFAC entry {best.ent_num}, {best.programs}, "
            f"score {best.score:.2f}): " + "; ".join(best.reasons[:3])
        )
        return result.decision, why


#: Converts an amount to the fraud model's currency (minor units); None when it cannot.
ToModelMinor = Callable[[int, str], "int | None"]
FRAUD_MODEL_CURRENCY = "EUR"  # what the simulator, and so the model, counts amounts in


def to_currency_minor(scheme: Any, currency: str) -> ToModelMinor:
    """Amounts converted to ``currency`` at the scheme's best mid rate (no spread), half up;
    None when no FX provider quotes the pair."""
    from decimal import ROUND_HALF_UP, Decimal

    from entrepot.kernel.money import get_currency
    from entrepot.payments.errors import PaymentError

    target = get_currency(currency)

    def convert(amount_minor: int, source: str) -> int | None:
        if source == currency:
            return amount_minor
        try:
            rate = scheme.find_rate(source, currency).rate
        except PaymentError:
            return None
        units = Decimal(amount_minor).scaleb(-get_currency(source).exponent) * rate
        return int(units.scaleb(target.exponent).quantize(Decimal(1), rounding=ROUND_HALF_UP))

    convert.currency = currency  # type: ignore[attr-defined]  # what its amounts are in
    return convert


HELD_REMEMBERED_MAX = 100_000
BLOCKED_REMEMBERED_MAX = 10_000


class FraudScreening:
    """Scores every prepared transfer with the fraud model. The payer is the quote's payer
    party at its participant, the beneficiary the payee's alias; amounts are converted to the
    model's currency. A transfer whose quote named no payer is not scored (``unscored``):
    without a payer, velocity and history mean nothing."""

    #: A bulk item names no payer party (there is no quote): it is not scored, and nothing of
    #: it is learned, so a bulk may screen its payees before the write lock with this on.
    screens_bulks_ahead = True

    def __init__(
        self,
        screener: FraudScreener | Callable[[], FraudScreener],
        to_model_minor: ToModelMinor | None = None,
    ) -> None:
        if callable(screener) and not hasattr(screener, "screen"):
            self._loaded = _Loaded["FraudScreener"](None, screener)
        else:
            self._loaded = _Loaded["FraudScreener"](screener, None)  # type: ignore[arg-type]
        self.to_model_minor: ToModelMinor = to_model_minor or (lambda amount, _cur: amount)
        self.unscored = 0
        self._held: OrderedDict[str, Payment] = OrderedDict()  # held here: their labels
        #: (expiry, transfer, decision) of the transfers held here: past its expiry no one can
        #: review a transfer, and its review item and payment are forgotten (they were kept
        #: for the life of the process, one per hold)
        self._expiring: list[tuple[int, str, str]] = []
        #: the transfers blocked here, by id: the payment scored and the decision. A block
        #: keeps no transfer, so a retried prepare (a lost answer, a keyed retry) was scored
        #: again: a second decision logged for one payment, counted twice in its history
        self._blocked: OrderedDict[str, tuple[Payment, ScreeningDecision]] = OrderedDict()
        self._lock = threading.Lock()  # guards the feature history, not the loading

    @property
    def screener(self) -> FraudScreener:
        return self._loaded.get()

    def load(self) -> None:
        """Load the model now (a server does, before it takes requests), not on first use."""
        self._loaded.get()

    def _payment(self, transfer: PaymentTransfer, payee: Party | None) -> Payment | None:
        from entrepot.risk.fraud import AMOUNT_MINOR_MAX, Payment

        if transfer.payer_alias is None or payee is None:
            return None  # (before the conversion: it reads a rate, ~0.5 ms, for nothing)
        amount = self.to_model_minor(transfer.source_amount_minor, transfer.source_currency)
        if amount is None:
            return None
        return Payment(
            payment_id=transfer.id,
            at_s=transfer.created_at_ns // NS_PER_S,
            payer_id=f"{transfer.payer_participant}/{transfer.payer_alias}",
            beneficiary_id=f"{payee.participant_id}/{payee.alias_type.value}:{payee.alias}",
            # (a rate can take it past the largest the model scores: scored as that one,
            # where it raised OverflowError, a 500)
            amount_minor=min(max(1, amount), AMOUNT_MINOR_MAX),
            # the currency the amount is in once converted (the decision log records the
            # pair: the converted amount was logged under the transfer's own currency)
            currency=getattr(self.to_model_minor, "currency", transfer.source_currency),
            channel="transfer",
        )

    def screen(self, transfer: PaymentTransfer, payee: Party | None) -> ScreeningDecision:
        payment = self._payment(transfer, payee)
        if payment is None:
            with self._lock:  # (a bulk's payees are screened outside the write lock)
                self.unscored += 1
            return ScreeningDecision(hold=False)
        screener = self.screener  # loads the model on first use (under _Loaded's lock, not ours)
        with self._lock:  # the feature state is one in-memory history
            blocked = self._blocked.get(transfer.id)
            if blocked is not None and blocked[0] == replace(payment, at_s=blocked[0].at_s):
                return blocked[1]  # the same payment again: as decided, not scored again
            d, take_back = screener.screen_revocably(payment)
            self._forget_expired(screener, transfer.created_at_ns)

        def undo() -> None:  # the transfer was not written after all
            with self._lock:
                take_back()
                self._held.pop(transfer.id, None)

        if d.outcome == "approve":
            return ScreeningDecision(hold=False, undo=(undo,))
        if d.outcome == "review":
            with self._lock:
                self._held[transfer.id] = payment
                heapq.heappush(self._expiring, (transfer.expires_at_ns, transfer.id, d.decision_id))
                while len(self._held) > HELD_REMEMBERED_MAX:
                    self._held.popitem(last=False)
        reasons = (
            f"fraud {d.outcome}: score {d.score:.3f} (model "
            f"{self.screener.model.version}, decision {d.decision_id})",
            *d.reasons,
        )
        decision = ScreeningDecision(
            hold=d.outcome == "review",
            block=d.outcome == "block",
            reasons=reasons,
            logged=(f"{FRAUD_MARK}{d.decision_id}",),
            undo=(undo,),
        )
        if decision.block:
            with self._lock:
                # (without its undo: a block counts, and that would keep its parties' state)
                self._blocked[transfer.id] = (payment, replace(decision, undo=()))
                while len(self._blocked) > BLOCKED_REMEMBERED_MAX:
                    self._blocked.popitem(last=False)
        return decision

    def _forget_expired(self, screener: FraudScreener, now_ns: int) -> None:
        """Forget the holds past their expiry (under ``_lock``): no verdict can come for them."""
        while self._expiring and self._expiring[0][0] <= now_ns:
            _, transfer_id, decision_id = heapq.heappop(self._expiring)
            self._held.pop(transfer_id, None)
            screener.queue.discard(decision_id)

    def verdicts(
        self,
        transfer: PaymentTransfer,
        rejected: bool,
        reason: str = "",
        by: Mapping[str, str] | None = None,
    ) -> list[Decision]:
        """The reviewer's verdict on a transfer fraud screening held, as the outcome of its
        review to log, linked to the decision that held it (named in the hold's reason). Made,
        not logged (the scheme logs it once the review has committed). None where its review
        item was already resolved (through the risk API: logged then) or there is no log."""
        from entrepot.risk.fraud import review_decision

        found = _FRAUD_HELD_BY.search(transfer.reason or "")
        screener = self.screener
        if found is None or screener.sink is None:
            return []
        decision_id = found.group(1)
        with self._lock:
            item = screener.queue.open_item(decision_id)
            if item is None and screener.queue.was_resolved(decision_id):
                return []
        verdict = "fraud" if rejected else "legitimate"
        score = None if item is None else item.score
        return [
            review_decision(decision_id, transfer.id, verdict, SCHEME, score, screener.clock, by)
        ]

    def log_verdicts(self, records: Sequence[Mapping[str, Any]]) -> set[str]:
        """Append the fraud decisions among ``records`` to the log; the ids appended."""
        from entrepot.risk.fraud import FRAUD_KIND

        return _log_kind(self.screener.sink, FRAUD_KIND, records)

    def learn(
        self, transfer: PaymentTransfer, rejected: bool, verdicts: Sequence[Decision] = ()
    ) -> None:
        """After the review committed: the worker that held the transfer resolves its review
        item (as ``verdicts`` logged it) and learns the fraud label; another worker (a server
        runs several, a restart empties them) has neither, and the log is all there is."""
        from entrepot.risk.fraud import FRAUD_KIND, ReviewAlreadyResolved, UnknownReviewItem

        found = _FRAUD_HELD_BY.search(transfer.reason or "")
        if found is None:
            return
        decision_id = found.group(1)
        logged = next((d for d in verdicts if d.kind == FRAUD_KIND), None)
        screener = self.screener
        with self._lock:
            try:
                verdict = "fraud" if rejected else "legitimate"
                screener.queue.resolve(decision_id, verdict, SCHEME, logged=logged)
            except (ReviewAlreadyResolved, UnknownReviewItem):
                pass  # resolved through the risk API (logged then), or held in another worker
            held = self._held.pop(transfer.id, None)
            if held is not None:
                screener.add_label(held, rejected)


def reviewer_words(by: Mapping[str, str] | None) -> str:
    """Who at the operator decided, as a verdict's reason names them (`` alice``), from a
    review's ``by`` (``reviewer_id``, ``credential``): empty where nothing names them."""
    if not by:
        return ""
    named = by.get("reviewer_id")
    credential = by.get("credential")
    if named and credential:
        return f" {named} (credential {credential})"
    if named:
        return f" {named}"
    return f" (credential {credential})" if credential else ""


def _log_kind(sink: Any, kind: str, records: Sequence[Mapping[str, Any]]) -> set[str]:
    from entrepot.risk.decisions import Decision

    mine = [Decision.from_dict(r) for r in records if r.get("kind") == kind]
    if not mine or sink is None:
        return set()
    sink.append(mine)
    return {d.decision_id for d in mine}


def _combined(decided: Sequence[ScreeningDecision]) -> ScreeningDecision:
    """Held if any holds, blocked if any blocks (then not held), all reasons and logs."""
    hold = any(d.hold for d in decided)
    block = any(d.block for d in decided)
    return ScreeningDecision(
        hold=hold and not block,
        reasons=tuple(r for d in decided for r in d.reasons),
        block=block,
        logged=tuple(m for d in decided for m in d.logged),
        undo=tuple(u for d in decided for u in d.undo),
    )


class CombinedScreening:
    """Several screenings in turn: held if any holds, blocked if any blocks, all reasons."""

    def __init__(self, screenings: Sequence[Any]) -> None:
        self.screenings = tuple(screenings)
        self.screens_ahead = all(getattr(s, "screens_ahead", False) for s in self.screenings)
        self.screens_bulks_ahead = all(screens_bulks_ahead(s) for s in self.screenings)

    def screen(self, transfer: PaymentTransfer, payee: Party | None) -> ScreeningDecision:
        return _combined([s.screen(transfer, payee) for s in self.screenings])

    def screen_many(
        self, pairs: Sequence[tuple[PaymentTransfer, Party | None]]
    ) -> list[ScreeningDecision]:
        """Each screening's decisions on every pair (together where it can), combined."""
        each = [screen_all(s, pairs) for s in self.screenings]
        return [_combined([d[n] for d in each]) for n in range(len(pairs))]

    def load(self) -> None:
        for s in self.screenings:
            load = getattr(s, "load", None)
            if load is not None:
                load()

    def verdicts(
        self,
        transfer: PaymentTransfer,
        rejected: bool,
        reason: str = "",
        by: Mapping[str, str] | None = None,
    ) -> list[Decision]:
        made: list[Decision] = []
        for s in self.screenings:
            verdicts = getattr(s, "verdicts", None)
            if verdicts is not None:
                made.extend(verdicts(transfer, rejected, reason, by))
        return made

    def log_verdicts(self, records: Sequence[Mapping[str, Any]]) -> set[str]:
        """Each screening appends the decisions of its kind; where one's log refuses, the
        others still append theirs, and what was appended is named with the refusal
        (``VerdictsPartlyLogged``): deleted from the outbox, not appended again at every
        pass until the refusing log recovers."""
        logged: set[str] = set()
        refused: BaseException | None = None
        for s in self.screenings:
            log_verdicts = getattr(s, "log_verdicts", None)
            if log_verdicts is None:
                continue
            try:
                logged |= log_verdicts(records)
            except VerdictsPartlyLogged as partly:
                logged |= partly.logged
                refused = refused or partly
            except Exception as exc:
                refused = refused or exc
        if refused is not None:
            raise VerdictsPartlyLogged(logged, refused) from refused
        return logged

    def learn(
        self, transfer: PaymentTransfer, rejected: bool, verdicts: Sequence[Decision] = ()
    ) -> None:
        for s in self.screenings:
            learn = getattr(s, "learn", None)
            if learn is not None:
                learn(transfer, rejected, verdicts)

    def screen_business(self, name: str, country: str) -> tuple[str, str]:
        for s in self.screenings:
            if hasattr(s, "screen_business"):
                return s.screen_business(name, country)  # type: ignore[no-any-return]
        return "clear", "no sanctions screening configured"
