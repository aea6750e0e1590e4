"""The scheme's state (``payments.monitoring``) in Prometheus' text exposition format, for
``GET /v1/metrics`` and ``entrepot payments metrics``. Amounts are minor units of the
currency each series names."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from entrepot.payments.monitoring import SchemeSnapshot

#: the media type of ``prometheus_text``'s answer
METRICS_MEDIA_TYPE = CONTENT_TYPE_LATEST

_POSITION = (
    ("settlement_balance_minor", "Settlement account balance at the central bank"),
    ("net_debit_cap_minor", "Net debit cap: how far the position may go below zero"),
    ("position_available_minor", "What the participant may still send (cap + received - sent)"),
    ("position_reserved_minor", "Reserved by transfers prepared and not yet decided"),
    ("net_position_minor", "Received minus sent since the last settlement"),
)


class _Snapshot(Collector):
    def __init__(self, snapshot: SchemeSnapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[GaugeMetricFamily]:
        s = self.snapshot
        active = GaugeMetricFamily(
            "entrepot_participant_active",
            "1 if the participant may send and receive, 0 if suspended",
            labels=["participant", "kind"],
        )
        for pid, kind, is_active in sorted(
            {(p.participant_id, p.kind, p.active) for p in s.positions}
        ):
            active.add_metric([pid, kind.value], 1.0 if is_active else 0.0)
        yield active
        for field, doc in _POSITION:
            family = GaugeMetricFamily(
                f"entrepot_{field}", f"{doc} (minor units)", labels=["participant", "currency"]
            )
            for p in s.positions:
                family.add_metric([p.participant_id, p.currency], float(getattr(p, field)))
            yield family
        used = GaugeMetricFamily(
            "entrepot_net_debit_cap_used_ratio",
            "Share of the net debit cap in use, 0-1 (participants with a cap)",
            labels=["participant", "currency"],
        )
        for p in s.positions:
            if p.cap_used is not None:
                used.add_metric([p.participant_id, p.currency], p.cap_used)
        yield used
        opened = GaugeMetricFamily(
            "entrepot_transfers_open",
            "Transfers prepared and not decided: RESERVED awaits the payee, HOLD a review",
            labels=["state"],
        )
        for state, count in sorted(s.transfers_open.items()):
            opened.add_metric([state], float(count))
        yield opened
        yield GaugeMetricFamily(
            "entrepot_transfer_oldest_hold_age_seconds",
            "How long the longest-waiting transfer on HOLD has waited for review (0: none)",
            value=s.oldest_hold_age_s or 0.0,
        )
        escrows = GaugeMetricFamily(
            "entrepot_escrows_held", "Escrows still holding funds", labels=["currency"]
        )
        held = GaugeMetricFamily(
            "entrepot_escrow_held_minor", "What escrows hold (minor units)", labels=["currency"]
        )
        for currency, (count, amount) in sorted(s.escrows_held.items()):
            escrows.add_metric([currency], float(count))
            held.add_metric([currency], float(amount))
        yield escrows
        yield held
        if s.window_open_id is not None:
            yield GaugeMetricFamily(
                "entrepot_settlement_window_open_id",
                "The settlement window open now",
                value=float(s.window_open_id),
            )
            yield GaugeMetricFamily(
                "entrepot_settlement_window_open_age_seconds",
                "How long the open settlement window has been open",
                value=s.window_open_age_s or 0.0,
            )
        yield GaugeMetricFamily(
            "entrepot_settlement_windows_unsettled",
            "Settlement windows closed and not yet settled",
            value=float(s.windows_unsettled),
        )
        pending = GaugeMetricFamily(
            "entrepot_notifications_pending",
            "Notices the participant's endpoint has not taken yet",
            labels=["participant"],
        )
        oldest = GaugeMetricFamily(
            "entrepot_notification_oldest_pending_age_seconds",
            "Age of the participant's oldest notice not taken yet",
            labels=["participant"],
        )
        for pid, count in sorted(s.notices_pending.items()):
            pending.add_metric([pid], float(count))
            oldest.add_metric([pid], s.oldest_notice_age_s.get(pid, 0.0))
        yield pending
        yield oldest
        abandoned = GaugeMetricFamily(
            "entrepot_notifications_abandoned",
            "Notices the dispatcher gave up delivering (the participant reads them instead)",
            labels=["participant"],
        )
        for pid, count in sorted(s.notices_abandoned.items()):
            abandoned.add_metric([pid], float(count))
        yield abandoned


def prometheus_text(snapshot: SchemeSnapshot, *also: Collector) -> bytes:
    """The scheme's state, then what ``also`` collects (the API's request counts)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(snapshot))
    for collector in also:
        registry.register(collector)
    return generate_latest(registry)


__all__ = ["METRICS_MEDIA_TYPE", "prometheus_text"]
