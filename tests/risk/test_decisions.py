from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from pathlib import Path

import pytest

from entrepot.kernel.clock import FakeClock
from entrepot.risk.decisions import (
    Decision,
    JsonlSink,
    explain_decision,
    get_decision,
    make_decision,
)
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


def _sanctions(n: int) -> list[Decision]:
    return [
        make_decision(
            "sanctions",
            model_version="v",
            outcome="clear",
            score=0.0,
            reasons=[],
            inputs={"n": n, "pad": "x" * 300},
        )
    ]


def test_concurrent_appends_share_fsyncs_and_each_returns_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """32 threads append at once. Every line is whole; each append returns only once an fsync
    that began after its write has finished (the fsync stand-in records how much of the file
    it made durable); fewer fsyncs than appends."""
    sink = JsonlSink(tmp_path)
    durable = [0]
    fsyncs = [0]
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        size = os.fstat(fd).st_size
        time.sleep(0.005)  # a slow disk: others write meanwhile
        real_fsync(fd)
        durable[0] = max(durable[0], size)
        fsyncs[0] += 1

    monkeypatch.setattr(os, "fsync", fsync)
    late: list[int] = []
    start = threading.Barrier(32)

    def one(n: int) -> None:
        start.wait()
        (decision,) = batch = _sanctions(n)
        sink.append(batch)
        text = sink.path.read_bytes()[: durable[0]].decode()
        if decision.decision_id not in text:
            late.append(n)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert late == []
    lines = sink.path.read_text().splitlines()
    assert sorted(json.loads(line)["inputs"]["n"] for line in lines) == list(range(32))
    assert 1 <= fsyncs[0] < 32


def test_a_log_moved_away_is_started_again_at_its_path(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path)
    sink.append(_sanctions(1))
    sink.path.rename(tmp_path / "decisions.1.jsonl")
    sink.append(_sanctions(2))
    assert [d.inputs["n"] for d in sink] == [2]
    assert [json.loads(x)["inputs"]["n"] for x in (tmp_path / "decisions.1.jsonl").open()] == [1]
    sink.path.unlink()
    sink.append(_sanctions(3))
    assert [d.inputs["n"] for d in sink] == [3]


def test_a_decision_as_a_dict_holds_every_field_and_reads_back() -> None:
    (decision,) = _sanctions(7)
    raw = decision.to_dict()
    assert list(raw) == [f.name for f in dataclasses.fields(Decision)]
    assert Decision.from_dict(json.loads(json.dumps(raw))) == decision
