"""FastAPI's native OpenTelemetry: off unless the operator turns it on (ENTREPOT_OTEL=on)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN_CONTEXT, NonRecordingSpan, Span

from entrepot.config import load_settings
from entrepot.entrypoints.api.app import create_app
from entrepot.kernel.errors import ConfigurationError
from entrepot.payments import PaymentScheme
from entrepot.payments.credentials import issue_credential


class _Span(NonRecordingSpan):
    """A span that keeps the route FastAPI gives it (``http.route``)."""

    def __init__(self, routes: list[str]) -> None:
        super().__init__(INVALID_SPAN_CONTEXT)
        self.routes = routes

    def is_recording(self) -> bool:
        return True

    def set_attribute(self, key: str, value: Any) -> None:
        if key == "http.route":
            self.routes.append(str(value))


class _Tracer(trace.Tracer):
    def __init__(self, started: list[str], routes: list[str]) -> None:
        self.started = started
        self.routes = routes

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> Span:
        self.started.append(name)
        return _Span(self.routes)

    @contextmanager
    def start_as_current_span(self, name: str, *args: Any, **kwargs: Any) -> Iterator[Span]:
        self.started.append(name)
        yield _Span(self.routes)


class _Provider(trace.TracerProvider):
    """An operator's tracer provider: records the names of the spans started through it."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.routes: list[str] = []

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return _Tracer(self.started, self.routes)


def _spans(scheme: PaymentScheme, monkeypatch: pytest.MonkeyPatch, *, otel: bool) -> Sequence[str]:
    provider = _Provider()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    with TestClient(create_app(scheme, otel=otel)) as client:
        assert client.get("/health").status_code == 200
    return provider.started


def test_requests_are_traced_only_when_the_operator_turns_telemetry_on(
    scheme: PaymentScheme, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _spans(scheme, monkeypatch, otel=False) == []
    assert any("GET" in name for name in _spans(scheme, monkeypatch, otel=True))


def test_the_payment_calls_are_traced_under_their_route(
    scheme: PaymentScheme, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a review: the direct payment path (ADR 0006) skips FastAPI's router, which
    names a span's route, so with telemetry on the busiest calls were bare GET/POST spans."""
    provider = _Provider()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    token = issue_credential(scheme.engine, "mtn-rw").token
    with TestClient(create_app(scheme, otel=True)) as client:
        found = client.get(
            "/v1/parties/MERCHANT/KL-TILL-42", headers={"Authorization": f"Bearer {token}"}
        )
    assert found.status_code == 200, found.text
    assert provider.routes == ["/v1/parties/{party_type}/{party_id}"]


def test_the_setting_reads_on_or_off_and_refuses_anything_else() -> None:
    assert load_settings({}).otel is False
    assert load_settings({"ENTREPOT_OTEL": "on"}).otel is True
    assert load_settings({"ENTREPOT_OTEL": "OFF"}).otel is False
    with pytest.raises(ConfigurationError, match="ENTREPOT_OTEL='yes': expected on or off"):
        load_settings({"ENTREPOT_OTEL": "yes"})
