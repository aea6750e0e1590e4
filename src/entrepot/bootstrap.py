"""Composition root: settings -> engine (migrated) -> services."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from entrepot.config import Settings, load_settings
from entrepot.kernel.clock import Clock, SystemClock
from entrepot.ledger import Ledger
from entrepot.payments import PaymentScheme
from entrepot.storage import create_engine_from_settings, upgrade


@dataclass
class App:
    settings: Settings
    engine: Engine
    clock: Clock
    ledger: Ledger
    payments: PaymentScheme

    def close(self) -> None:
        self.engine.dispose()


def bootstrap(
    settings: Settings | None = None, *, clock: Clock | None = None, migrate: bool | None = None
) -> App:
    settings = settings or load_settings()
    engine = create_engine_from_settings(settings)
    if settings.auto_upgrade if migrate is None else migrate:
        upgrade(engine)
    clock = clock or SystemClock()
    ledger = Ledger(engine, clock)
    payments = PaymentScheme(engine, ledger, clock)
    return App(settings=settings, engine=engine, clock=clock, ledger=ledger, payments=payments)
