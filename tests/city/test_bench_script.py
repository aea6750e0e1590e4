"""bench/city.py: its options reach the scenarios they are for."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

from entrepot.city import services

BENCH = Path(__file__).resolve().parents[2] / "bench" / "city.py"


class _Resolved(Exception):
    pass


@pytest.mark.parametrize(("scenario", "rate"), [("hangzhou", None), ("grid4x4", 12000.0)])
def test_rate_goes_to_grid4x4_only(
    monkeypatch: pytest.MonkeyPatch, scenario: str, rate: float | None
) -> None:
    """``bench/city.py --rate 12000`` (docs/benchmarks.md) passed the rate to hangzhou too,
    which refuses one (its routes bring their own demand): a bench of the default scenarios,
    hangzhou first, stopped before it began."""
    spec = importlib.util.spec_from_file_location("bench_city", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    resolved: list[tuple[str, Any]] = []

    def resolve(name: str, **kwargs: Any) -> Any:
        resolved.append((name, kwargs["rate_vph"]))
        raise _Resolved  # running the bench needs SUMO: what it was asked to run is enough

    monkeypatch.setattr(services, "resolve_scenario", resolve)
    monkeypatch.setattr(sys, "argv", ["city.py", "--scenarios", scenario, "--rate", "12000"])
    with pytest.raises(_Resolved):
        bench.main()
    assert resolved == [(scenario, rate)]
