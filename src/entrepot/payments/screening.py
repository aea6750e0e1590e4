"""Screening hooks that plug the risk engine into the scheme: a transfer whose payee matches a
watch list goes on HOLD for a person's review instead of being reserved for the payee. Never an
automatic block on a name: a reviewer approves or rejects (``PaymentScheme.review_hold``)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from entrepot.payments.model import Party, PaymentTransfer
from entrepot.payments.services import ScreeningDecision
from entrepot.risk.sanctions import Screener, make_party

COUNTRYLESS = "ZZ"


class SanctionsScreening:
    """Screens the payee party (display name and country) of every prepared transfer."""

    def __init__(self, screener: Screener | Callable[[], Screener]) -> None:
        # A factory defers loading the lists (about a second) to the first payment screened,
        # so commands that never pay do not wait for it.
        self._screener = screener if isinstance(screener, Screener) else None
        self._factory = None if isinstance(screener, Screener) else screener
        self._lock = threading.Lock()

    @property
    def screener(self) -> Screener:
        if self._screener is None:
            with self._lock:
                if self._screener is None:
                    assert self._factory is not None
                    self._screener = self._factory()
        return self._screener

    def screen(self, transfer: PaymentTransfer, payee: Party | None) -> ScreeningDecision:
        if payee is None:
            return ScreeningDecision(hold=False)
        country = payee.country if payee.country != COUNTRYLESS else None
        result = self.screener.screen(make_party(payee.display_name, None, country))
        if result.decision == "clear" or result.best is None:
            return ScreeningDecision(hold=False)
        best = result.best
        reasons = (
            f"sanctions {result.decision}: '{payee.display_name}' ~ '{best.listed_name}' "
            f"(OFAC entry {best.ent_num}, {best.programs}, score {best.score:.2f})",
            *best.reasons[:3],
        )
        return ScreeningDecision(hold=True, reasons=reasons)

    def screen_business(self, name: str, country: str) -> tuple[str, str]:
        """Onboarding screening of a business (the trade context's hook): ``clear``,
        ``review`` (a person at the hub decides) or ``match`` (strong name match corroborated
        by country or other evidence), with why."""
        result = self.screener.screen(make_party(name, None, country))
        best = result.best
        if result.decision == "clear" or best is None:
            return "clear", f"no watch-list candidate ({result.list_version})"
        why = (
            f"'{name}' ~ '{best.listed_name}' (OFAC entry {best.ent_num}, {best.programs}, "
            f"score {best.score:.2f}): " + "; ".join(best.reasons[:3])
        )
        return result.decision, why
