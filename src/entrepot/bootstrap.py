"""Composition root: settings -> engine (migrated) -> services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from entrepot.config import Settings, load_settings, shared_data_dir
from entrepot.kernel.clock import Clock, SystemClock
from entrepot.kernel.errors import ConfigurationError
from entrepot.ledger import Ledger
from entrepot.payments import PaymentScheme, Screening, load_fee_schedule
from entrepot.payments.screening import (
    FRAUD_MODEL_CURRENCY,
    CombinedScreening,
    FraudScreening,
    to_currency_minor,
)
from entrepot.risk.decisions import JsonlSink
from entrepot.risk.lending import Lending
from entrepot.storage import (
    create_engine_from_settings,
    current_revision,
    head_revision,
    upgrade,
)
from entrepot.trade import TradeNetwork


@dataclass
class App:
    settings: Settings
    engine: Engine
    clock: Clock
    ledger: Ledger
    payments: PaymentScheme
    trade: TradeNetwork
    lending: Lending

    def close(self) -> None:
        self.engine.dispose()


def _sanctions(settings: Settings, clock: Clock) -> Screening | None:
    """Sanctions screening of every payee, from the OFAC lists in ENTREPOT_SANCTIONS_DIR (else
    the shared reference data); decisions are logged under $ENTREPOT_HOME/decisions."""
    lists = settings.sanctions_dir or shared_data_dir() / "sanctions"
    if not (lists / "ofac_sdn.csv").is_file():
        if settings.screening == "sanctions":
            raise ConfigurationError(
                f"ENTREPOT_SCREENING=sanctions but no OFAC lists at {lists}",
                field="ENTREPOT_SANCTIONS_DIR",
            )
        return None
    from entrepot.payments.screening import SanctionsScreening
    from entrepot.risk.sanctions import Screener

    sink = JsonlSink(settings.home / "decisions")
    return SanctionsScreening(lambda: Screener.from_directory(lists, sink=sink, clock=clock))


def _fraud(settings: Settings, clock: Clock) -> FraudScreening | None:
    """Fraud screening with the model in ENTREPOT_FRAUD_MODEL (loaded on first use)."""
    path = settings.fraud_model
    if path is None:
        return None
    if not path.is_file():
        raise ConfigurationError(
            f"ENTREPOT_FRAUD_MODEL={path}: no such file (train one with "
            "'entrepot risk train-fraud')",
            field="ENTREPOT_FRAUD_MODEL",
        )

    def load() -> Any:
        from entrepot.risk.fraud import FraudScreener, load_fraud_model

        sink = JsonlSink(settings.home / "decisions")
        return FraudScreener(load_fraud_model(path), sink=sink, clock=clock)

    return FraudScreening(load)


def _screening(settings: Settings, clock: Clock) -> tuple[Screening | None, FraudScreening | None]:
    if settings.screening == "off":
        return None, None
    parts = [s for s in (_sanctions(settings, clock), _fraud(settings, clock)) if s is not None]
    fraud = next((s for s in parts if isinstance(s, FraudScreening)), None)
    if not parts:
        return None, None
    return (parts[0] if len(parts) == 1 else CombinedScreening(parts)), fraud


def _require_head(engine: Engine) -> None:
    """With ENTREPOT_AUTO_UPGRADE=0 the operator migrates: a database not at the head is
    refused here, naming the command, not by the first query that meets a missing table (a
    traceback, ``no such table: ledger_ledgers``, on an empty one)."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        engine.dispose()
        raise ConfigurationError(
            f"the database is at {current or 'no revision (empty)'}, not at {head}, and "
            "ENTREPOT_AUTO_UPGRADE=0 leaves migrating to you: run `entrepot db upgrade`",
            field="ENTREPOT_AUTO_UPGRADE",
        )


def bootstrap(
    settings: Settings | None = None, *, clock: Clock | None = None, migrate: bool | None = None
) -> App:
    settings = settings or load_settings()
    # a schedule that cannot be read or is wrong stops the start before anything is opened
    fees = load_fee_schedule(settings.fee_schedule) if settings.fee_schedule else None
    engine = create_engine_from_settings(settings)
    if settings.auto_upgrade if migrate is None else migrate:
        upgrade(engine)
    elif migrate is None:
        _require_head(engine)
    clock = clock or SystemClock()
    ledger = Ledger(engine, clock)
    screening, fraud = _screening(settings, clock)
    payments = PaymentScheme(
        engine,
        ledger,
        clock,
        fees=fees,
        screening=screening,
        callback_hosts=settings.callback_hosts,
        idempotency_retention_s=settings.idempotency_retention_s,
    )
    if fraud is not None:  # the model learnt on EUR amounts: convert at the scheme's rates
        fraud.to_model_minor = to_currency_minor(payments, FRAUD_MODEL_CURRENCY)
    lending = Lending(engine, ledger, clock, sink=JsonlSink(settings.home / "decisions"))
    trade = TradeNetwork(
        engine,
        payments,
        clock,
        # merchants are screened at onboarding against the same lists as payees
        onboarding_screening=getattr(screening, "screen_business", None),
        lending=lending,
    )
    return App(
        settings=settings,
        engine=engine,
        clock=clock,
        ledger=ledger,
        payments=payments,
        trade=trade,
        lending=lending,
    )
