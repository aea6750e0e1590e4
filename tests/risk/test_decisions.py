from __future__ import annotations

from pathlib import Path

import pytest

from entrepot.kernel.clock import FakeClock
from entrepot.risk.decisions import JsonlSink, explain_decision, get_decision, make_decision
from entrepot.risk.errors import UnknownDecision


def test_jsonl_log_is_append_only_and_explains(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path / "decisions")
    first = make_decision("credit", model_version="credit-m1", outcome="decline", score=0.61,
                          reasons=["duration_in_month in [43.50, inf)"], inputs={"row": 3},
                          clock=FakeClock())  # fmt: skip
    second = make_decision("sanctions", model_version="ofac-abc", outcome="clear", score=0.0,
                           reasons=[], inputs={}, clock=FakeClock())  # fmt: skip
    sink.append([first])
    before = sink.path.read_text()
    sink.append([second])
    assert sink.path.read_text().startswith(before)
    assert [d.decision_id for d in sink] == [first.decision_id, second.decision_id]
    assert get_decision(sink, first.decision_id) == first
    assert first.at == "2026-01-01T00:00:00Z"
    text = explain_decision(sink, first.decision_id)
    assert "decline with score 0.61, by credit-m1" in text
    assert "1. duration_in_month in [43.50, inf)" in text


def test_unknown_decision(tmp_path: Path) -> None:
    with pytest.raises(UnknownDecision, match="no decision with id 'nope'"):
        explain_decision(JsonlSink(tmp_path), "nope")
