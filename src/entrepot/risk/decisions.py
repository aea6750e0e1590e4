"""The decision log: every credit and sanctions decision, recorded so it can be explained later.

Records are append-only JSON lines (``$ENTREPOT_HOME/decisions/decisions.jsonl``) or, in tests,
an in-memory list. Personal inputs are minimised before they are written: names are kept only as
an unsalted SHA-256 of their normalised form (enough to prove what was screened, not to read
it back), dates of birth only as the year; credit rows as a hash of their values. What *is* kept
in the clear is what explains the outcome: the model or list version, the score and the reasons.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from entrepot.kernel.clock import Clock, SystemClock, ns_to_datetime
from entrepot.kernel.ids import new_id
from entrepot.risk.errors import UnknownDecision

DECISION_KINDS = ("credit", "sanctions", "fraud")
LOG_FILE_NAME = "decisions.jsonl"


@dataclass(frozen=True, slots=True)
class Decision:
    decision_id: str
    kind: str
    at: str
    model_version: str
    outcome: str
    score: float | None
    reasons: tuple[str, ...]
    inputs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        assert self.kind in DECISION_KINDS, self.kind

    def to_dict(self) -> dict[str, Any]:
        """As JSON would have it (``dataclasses.asdict`` deep-copies every value: slow, for a
        record written once per screening)."""
        return {
            "decision_id": self.decision_id,
            "kind": self.kind,
            "at": self.at,
            "model_version": self.model_version,
            "outcome": self.outcome,
            "score": self.score,
            "reasons": list(self.reasons),
            "inputs": dict(self.inputs),
        }

    @staticmethod
    def from_dict(raw: Mapping[str, Any]) -> Decision:
        return Decision(
            decision_id=str(raw["decision_id"]),
            kind=str(raw["kind"]),
            at=str(raw["at"]),
            model_version=str(raw["model_version"]),
            outcome=str(raw["outcome"]),
            score=None if raw.get("score") is None else float(raw["score"]),
            reasons=tuple(str(r) for r in raw.get("reasons", ())),
            inputs=dict(raw.get("inputs", {})),
        )


class DecisionSink(Protocol):
    def append(self, decisions: Sequence[Decision]) -> None: ...

    def __iter__(self) -> Iterator[Decision]: ...


class MemorySink:
    """Holds decisions in a list; for tests and benchmarks."""

    def __init__(self) -> None:
        self.decisions: list[Decision] = []

    def append(self, decisions: Sequence[Decision]) -> None:
        self.decisions.extend(decisions)

    def __iter__(self) -> Iterator[Decision]:
        return iter(list(self.decisions))


class JsonlSink:
    """Append-only JSON lines under ``directory``. ``append`` returns once its batch is written
    (one ``write`` on an ``O_APPEND`` descriptor, whole lines, never interleaved with another
    writer's) and fsynced. Threads appending at once share an fsync: the first to reach it
    syncs every batch written so far, the others find theirs already durable (group commit,
    as the scheme's writes). The file stays open; replaced or removed, it is opened again."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / LOG_FILE_NAME
        self._lock = threading.Lock()  # the descriptor and the counters
        self._sync_lock = threading.Lock()  # one fsync at a time
        self._fd: int | None = None
        self._pid = 0
        self._written = 0  # batches written through this sink
        self._synced = 0  # of which known durable

    def append(self, decisions: Sequence[Decision]) -> None:
        if not decisions:
            return
        blob = "".join(json.dumps(d.to_dict(), sort_keys=True) + "\n" for d in decisions).encode(
            "utf-8"
        )
        with self._lock:
            fd = self._descriptor()
            _write_all(fd, blob)
            self._written += 1
            mine = self._written
        with self._sync_lock:
            if self._synced >= mine:
                return  # an fsync that started after our write covered it
            with self._lock:
                upto, fd = self._written, self._descriptor()
            os.fsync(fd)
            self._synced = upto

    def _descriptor(self) -> int:
        """The open log (under ``_lock``): opened again after a fork, or when the path no
        longer names the file it was opened as."""
        fd = self._fd
        if fd is not None and self._pid != os.getpid():
            os.close(fd)  # the parent's: it syncs what it wrote
        elif fd is not None:
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                return fd
            os.fsync(fd)  # batches written there and not yet synced: durable before we let go
            os.close(fd)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._pid = os.getpid()
        return self._fd

    def __iter__(self) -> Iterator[Decision]:
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield Decision.from_dict(json.loads(line))


def _write_all(fd: int, blob: bytes) -> None:
    view = memoryview(blob)
    while view:
        view = view[os.write(fd, view) :]


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def make_decision(
    kind: str,
    *,
    model_version: str,
    outcome: str,
    score: float | None,
    reasons: Sequence[str],
    inputs: Mapping[str, Any],
    clock: Clock | None = None,
) -> Decision:
    now_ns = (clock or SystemClock()).now_ns()
    return Decision(
        decision_id=f"{new_id(now_ns // 1_000_000):032x}",
        kind=kind,
        at=ns_to_datetime(now_ns).isoformat().replace("+00:00", "Z"),
        model_version=model_version,
        outcome=outcome,
        score=score,
        reasons=tuple(reasons),
        inputs=dict(inputs),
    )


def get_decision(sink: DecisionSink, decision_id: str) -> Decision:
    wanted = decision_id.strip().lower()
    for decision in sink:
        if decision.decision_id == wanted:
            return decision
    raise UnknownDecision(f"no decision with id {decision_id!r} in the log", field="decision_id")


def explain_decision(sink: DecisionSink, decision_id: str) -> str:
    """A paragraph a person can read: what was decided, when, by which model, and why."""
    d = get_decision(sink, decision_id)
    score = "" if d.score is None else f" with score {d.score:g}"
    lines = [
        f"Decision {d.decision_id} ({d.kind}) at {d.at}: {d.outcome}{score}, by {d.model_version}."
    ]
    if d.reasons:
        lines.append("Reasons:")
        lines.extend(f"  {i}. {reason}" for i, reason in enumerate(d.reasons, 1))
    else:
        lines.append("No adverse reasons were recorded.")
    shown = ", ".join(f"{k}={v}" for k, v in sorted(d.inputs.items()))
    lines.append(f"Inputs as recorded (minimised): {shown or 'none'}.")
    return "\n".join(lines)
