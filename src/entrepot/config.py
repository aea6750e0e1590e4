"""Settings from ``ENTREPOT_*`` environment variables. Nothing else reads the environment."""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from entrepot.kernel.errors import ConfigurationError
from entrepot.kernel.limits import (
    RATE_BURST_MAX,
    RATE_PER_S_MAX,
    RATE_PER_S_MIN,
    default_burst,
)

SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")


#: How long an Idempotency-Key's answer is kept unless the operator says otherwise (a day):
#: a request resent with its key within it is answered as the first was, after it the key
#: names a new request; and the retention an operator may set: at least an hour (a client's
#: retries after an outage must still find their answers), at most a year.
IDEMPOTENCY_RETENTION_S = 86_400
RETENTION_S_RANGE = (3_600, 366 * 86_400)


@dataclass(frozen=True, slots=True)
class Settings:
    home: Path
    database_url: str
    sqlite_synchronous: str = "FULL"
    auto_upgrade: bool = True
    #: "auto" screens payees against the watch lists when they are found, "sanctions" requires
    #: them, "off" screens nothing.
    screening: str = "auto"
    sanctions_dir: Path | None = None
    #: a fraud model saved by ``entrepot risk train-fraud``: every transfer whose quote names
    #: its payer is scored (review -> HOLD, block -> refused); none: no fraud screening.
    fraud_model: Path | None = None
    #: hosts participants may register callback endpoints on (empty: any host)
    callback_hosts: tuple[str, ...] = ()
    #: networks (CIDR) a callback may connect to, judged on the resolved address; empty: any
    #: but loopback, link-local, unspecified, multicast and reserved (payments/notify.py)
    callback_networks: tuple[str, ...] = ()
    #: FastAPI's native OpenTelemetry (request spans, metrics, logs to the process's global
    #: providers). Off by default: its per-request check of the providers costs ~1.5 % of a
    #: payment's instructions even when none is configured.
    otel: bool = False
    #: the scheme's fee schedule (a TOML file, payments/fees.py); none: 30 basis points of
    #: every payment, nothing fixed
    fee_schedule: Path | None = None
    #: seconds an Idempotency-Key's answer is kept (payments/keyed.py): a request resent with
    #: its key within them is answered as the first was; after them it is a new request
    idempotency_retention_s: int = IDEMPOTENCY_RETENTION_S
    #: requests a second each participant may send to the API, across the workers of this
    #: home (entrypoints/api/rate_limit.py); none: no limit
    rate_limit_per_s: float | None = None
    #: requests a participant may send at once, within its rate (default: a second's worth)
    rate_burst: int = 1

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    home = Path(env.get("ENTREPOT_HOME", "./var")).expanduser()
    url = env.get("ENTREPOT_DATABASE_URL", "").strip()
    if not url:
        url = f"sqlite:///{(home / 'entrepot.db').resolve()}"
    url = check_database_url(normalise_database_url(url))
    sync = env.get("ENTREPOT_SQLITE_SYNCHRONOUS", "FULL").upper()
    if sync not in SYNCHRONOUS_MODES:
        raise ConfigurationError(
            f"ENTREPOT_SQLITE_SYNCHRONOUS={sync!r}: expected one of {', '.join(SYNCHRONOUS_MODES)}",
            field="ENTREPOT_SQLITE_SYNCHRONOUS",
        )
    auto = env.get("ENTREPOT_AUTO_UPGRADE", "1") not in ("0", "false", "no")
    screening = env.get("ENTREPOT_SCREENING", "auto").lower()
    if screening not in ("auto", "sanctions", "off"):
        raise ConfigurationError(
            f"ENTREPOT_SCREENING={screening!r}: expected auto, sanctions or off",
            field="ENTREPOT_SCREENING",
        )
    lists = env.get("ENTREPOT_SANCTIONS_DIR", "").strip()
    fraud = env.get("ENTREPOT_FRAUD_MODEL", "").strip()
    hosts = tuple(
        h.strip().lower() for h in env.get("ENTREPOT_CALLBACK_HOSTS", "").split(",") if h.strip()
    )
    networks = tuple(
        n.strip() for n in env.get("ENTREPOT_CALLBACK_NETWORKS", "").split(",") if n.strip()
    )
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError as exc:
            raise ConfigurationError(
                f"ENTREPOT_CALLBACK_NETWORKS: {network!r} is not an IP network (CIDR, like "
                f"10.0.0.0/8): {exc}",
                field="ENTREPOT_CALLBACK_NETWORKS",
            ) from None
    otel = env.get("ENTREPOT_OTEL", "off").strip().lower()
    if otel not in ("on", "off"):
        raise ConfigurationError(
            f"ENTREPOT_OTEL={otel!r}: expected on or off", field="ENTREPOT_OTEL"
        )
    fees = env.get("ENTREPOT_FEE_SCHEDULE", "").strip()
    retention = _retention_s(env.get("ENTREPOT_IDEMPOTENCY_RETENTION_S", "").strip())
    rate, burst = _rate_limit(
        env.get("ENTREPOT_RATE_LIMIT", "").strip(), env.get("ENTREPOT_RATE_BURST", "").strip()
    )
    return Settings(
        home=home,
        database_url=url,
        sqlite_synchronous=sync,
        auto_upgrade=auto,
        screening=screening,
        sanctions_dir=Path(lists).expanduser() if lists else None,
        fraud_model=Path(fraud).expanduser() if fraud else None,
        callback_hosts=hosts,
        callback_networks=networks,
        otel=otel == "on",
        fee_schedule=Path(fees).expanduser() if fees else None,
        idempotency_retention_s=retention,
        rate_limit_per_s=rate,
        rate_burst=burst,
    )


def _retention_s(text: str) -> int:
    if not text:
        return IDEMPOTENCY_RETENTION_S
    low, high = RETENTION_S_RANGE
    if not text.isascii() or not text.isdigit() or not low <= int(text) <= high:
        raise ConfigurationError(
            f"ENTREPOT_IDEMPOTENCY_RETENTION_S={text!r}: expected whole seconds from {low:,} "
            f"(an hour) to {high:,} (366 days)",
            field="ENTREPOT_IDEMPOTENCY_RETENTION_S",
        )
    return int(text)


def _rate_limit(rate_text: str, burst_text: str) -> tuple[float | None, int]:
    """ENTREPOT_RATE_LIMIT (requests a second a participant, or off) and ENTREPOT_RATE_BURST
    (requests at once; default a second's worth, at least one)."""
    if rate_text.lower() in ("", "off"):
        if burst_text:
            raise ConfigurationError(
                f"ENTREPOT_RATE_BURST={burst_text!r} without ENTREPOT_RATE_LIMIT: a burst is "
                "part of a rate limit; set the rate too (requests a second a participant)",
                field="ENTREPOT_RATE_BURST",
            )
        return None, 1
    try:
        rate = float(rate_text) if rate_text.isascii() else math.nan
    except ValueError:
        rate = math.nan
    if not (math.isfinite(rate) and RATE_PER_S_MIN <= rate <= RATE_PER_S_MAX):
        raise ConfigurationError(
            f"ENTREPOT_RATE_LIMIT={rate_text!r}: expected requests a second a participant, a "
            f"number from {RATE_PER_S_MIN} to {RATE_PER_S_MAX:,} (like 200 or 0.5), or off",
            field="ENTREPOT_RATE_LIMIT",
        )
    if not burst_text:
        return rate, default_burst(rate)
    if (
        not burst_text.isascii()
        or not burst_text.isdigit()
        or not 1 <= int(burst_text) <= RATE_BURST_MAX
    ):
        raise ConfigurationError(
            f"ENTREPOT_RATE_BURST={burst_text!r}: expected whole requests from 1 to "
            f"{RATE_BURST_MAX:,}",
            field="ENTREPOT_RATE_BURST",
        )
    return rate, int(burst_text)


def normalise_database_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3; SQLite URLs pass through."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if url.startswith(("sqlite", "postgresql+psycopg://")):
        return url
    raise ConfigurationError(
        f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://USER@HOST/DB",
        field="ENTREPOT_DATABASE_URL",
    )


#: Drivers the engine is built for (``normalise_database_url`` maps postgres:// to psycopg).
DATABASE_DRIVERS = ("sqlite", "sqlite+pysqlite", "postgresql+psycopg")


def check_database_url(url: str) -> str:
    """The URL as the engine will read it. One that does not parse (``postgresql://u@h:x/db``),
    names another driver (``sqlitex:///f``), or an SQLite database held in memory is refused
    here, naming ENTREPOT_DATABASE_URL: not a parser's bare ``invalid literal for int()``
    later, and not a command that reports success on a database gone when it exits."""
    field = "ENTREPOT_DATABASE_URL"
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise ConfigurationError(f"{field} is malformed: {exc}", field=field) from None
    if parsed.drivername not in DATABASE_DRIVERS:
        raise ConfigurationError(
            f"{field}: unsupported driver {parsed.drivername!r}: use sqlite:///PATH or "
            "postgresql://USER@HOST/DB",
            field=field,
        )
    in_memory = parsed.database in (None, "", ":memory:") or parsed.query.get("mode") == "memory"
    if parsed.drivername.startswith("sqlite") and in_memory:
        raise ConfigurationError(
            f"{field}: {url!r} is an in-memory SQLite database, lost when the command exits: "
            "name a file, sqlite:///PATH",
            field=field,
        )
    return url


def shared_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Reference data (watch lists, credit and city data sets): ``ENTREPOT_DATA_DIR``, else
    ``../shared/data`` beside the checkout (where developers and CI keep it)."""
    env = os.environ if environ is None else environ
    configured = env.get("ENTREPOT_DATA_DIR", "").strip()
    if configured:
        return Path(configured).expanduser()
    return Path(__file__).resolve().parents[3] / "shared" / "data"
