"""The decision log: every credit and sanctions decision, recorded so it can be explained later.

Records are append-only JSON lines (``$ENTREPOT_HOME/decisions/decisions.jsonl``) or, in tests,
an in-memory list. Personal inputs are minimised before they are written: a screened name and a
payer's or beneficiary's identifier are kept only as a keyed digest (:class:`Pseudonyms`: the
operator, who holds the log's key, can show what was screened; no one can read it back or find
it by trying every phone number), dates of birth only as the year; credit rows as a hash of
their values. What *is* kept in the clear is what explains the outcome: the model or list
version, the score and the reasons.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from entrepot.kernel.clock import Clock, SystemClock, ns_to_datetime
from entrepot.kernel.ids import new_id
from entrepot.risk.errors import UnknownDecision

log = logging.getLogger(__name__)

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


PSEUDONYM_KEY_FILE = "pseudonym.key"
_KEY_BYTES = 32


class Pseudonyms:
    """Keyed digests (HMAC-SHA256) of the personal identifiers a log keeps: a screened name,
    a payer's or beneficiary's alias. One log's key gives one identifier one digest, so its
    decisions about the same person can be linked, and the operator, who holds the key, can
    show that a given name was screened. A plain SHA-256 of a phone number or a name is read
    back by hashing every candidate (a billion phone numbers take minutes); without the key
    that is not possible. Deleting the key (and its copies) makes every digest in the log
    unlinkable to anyone: erasure without rewriting an append-only log."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a pseudonym key needs at least 16 bytes")
        self._key = key

    def digest(self, text: str) -> str:
        return hmac.new(self._key, text.encode("utf-8"), hashlib.sha256).hexdigest()

    @classmethod
    def fresh(cls) -> Pseudonyms:
        """A key of its own, kept nowhere (a log in memory)."""
        return cls(os.urandom(_KEY_BYTES))

    @classmethod
    def at(cls, directory: Path) -> Pseudonyms:
        """The key kept beside a log (``pseudonym.key``, owner-only), made on first use. Every
        process writing the log reads the same key: one that finds none writes a key of its
        own to a temporary file and links it into place, so two starting together agree on
        the one that got there first."""
        path = Path(directory) / PSEUDONYM_KEY_FILE
        try:
            return cls(path.read_bytes())
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{PSEUDONYM_KEY_FILE}.{os.getpid()}.{threading.get_ident()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            _write_all(fd, os.urandom(_KEY_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process's key is in place first: take that one
        finally:
            tmp.unlink()
        sync_directory(path.parent)  # the key's name is durable before any digest made with it is
        return cls(path.read_bytes())


def sync_directory(directory: Path) -> None:
    """fsync a folder: the names linked or renamed into it are durable once it returns."""
    dir_fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class DecisionSink(Protocol):
    def append(self, decisions: Sequence[Decision]) -> None: ...

    def __iter__(self) -> Iterator[Decision]: ...

    @property
    def pseudonyms(self) -> Pseudonyms: ...


class MemorySink:
    """Holds decisions in a list; for tests and benchmarks."""

    def __init__(self) -> None:
        self.decisions: list[Decision] = []
        self.pseudonyms = Pseudonyms.fresh()

    def append(self, decisions: Sequence[Decision]) -> None:
        self.decisions.extend(decisions)

    def __iter__(self) -> Iterator[Decision]:
        return iter(list(self.decisions))


class JsonlSink:
    """Append-only JSON lines under ``directory``. ``append`` returns once its batch is in the
    file, whole, and fsynced; or raises. Threads appending at once share an fsync: the first
    to reach it syncs every batch written to that file so far, the others find theirs
    already durable (group commit, as the scheme's writes).

    The log stays open (closing the last writer's descriptor makes ext4 drop the file's block
    preallocation, and every append then allocated anew: more to journal at each fsync); each
    append writes and syncs through a duplicate of that descriptor of its own, closed when it
    returns. A log moved away or removed is opened again at its path. A batch is covered by
    another's fsync only if it went to the same file (device and inode) before that fsync
    began. An fsync that fails fails every batch it was to cover: the kernel may have dropped
    their pages, so a later fsync's success would not prove them durable. A write that fails
    half-way, or a process that died mid-write, leaves a fragment: the next batch starts on a
    new line (a log whose last byte is not a newline, looked at before each append, is taken as
    torn: another worker sharing the log may have died mid-write at any time), and readers
    skip what does not parse (:meth:`__iter__`)."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / LOG_FILE_NAME
        self._pseudonyms: Pseudonyms | None = None
        self._fd: int | None = None
        self._closer: weakref.finalize[Any, Any] | None = None
        self._reset()
        _SINKS.add(self)

    def _reset(self) -> None:
        """Fresh locks and counters (also in a forked child: a lock another thread held at
        the fork would never be released there)."""
        self._lock = threading.Lock()  # the descriptor and the counters; one write at a time
        self._sync_lock = threading.Lock()  # one fsync at a time
        self._written = 0  # batches written through this sink
        self._synced: tuple[tuple[int, int], int] = ((0, 0), 0)  # file, batches up to: durable
        self._failed: tuple[tuple[int, int], int, OSError] | None = None  # file, up to, error
        self._torn = False  # a write failed half-way: start the next on a new line

    @property
    def pseudonyms(self) -> Pseudonyms:
        """The log's key for the digests of personal identifiers (read or made on first use)."""
        if self._pseudonyms is None:
            with self._lock:
                if self._pseudonyms is None:
                    self._pseudonyms = Pseudonyms.at(self.path.parent)
        return self._pseudonyms

    def _after_fork(self) -> None:
        """In a forked child: its own locks, and its own descriptor when it first appends."""
        self._reset()
        if self._closer is not None:
            self._closer()  # the child's copy of the parent's descriptor
            self._closer = None
        self._fd = None

    def append(self, decisions: Sequence[Decision]) -> None:
        if not decisions:
            return
        blob = "".join(json.dumps(d.to_dict(), sort_keys=True) + "\n" for d in decisions).encode(
            "utf-8"
        )
        with self._lock:
            shared, where = self._shared()
            fd = os.dup(shared)
            try:
                if self._torn or not _ends_a_line(fd):
                    # A batch torn here, or by another process that died mid-write (a
                    # server's workers share the log): start ours on a new line, or the
                    # fragment would swallow our first decision.
                    blob = b"\n" + blob
                self._torn = True  # until the whole batch is written
                _write_all(fd, blob)
                self._torn = False
                self._written += 1
                mine = self._written
            except BaseException:
                os.close(fd)
                raise
        try:
            self._sync(fd, where, mine)
        finally:
            os.close(fd)

    def _shared(self) -> tuple[int, tuple[int, int]]:
        """The open log and which file it is (device, inode), under ``_lock``; opened again
        when the path no longer names the file it was opened as. The new one is open before
        the old one is closed: a descriptor number is never left pointing at nothing, or at
        someone else's file."""
        fd = self._fd
        if fd is not None:
            held = os.fstat(fd)
            try:
                if os.path.samestat(held, os.stat(self.path)):
                    return fd, (held.st_dev, held.st_ino)
            except FileNotFoundError:
                pass
        new = self._open()
        closer, self._fd = self._closer, new
        self._closer = weakref.finalize(self, _close_quietly, new)
        if closer is not None:
            closer()  # the old file: batches written there sync through their own duplicates
        opened = os.fstat(new)
        return new, (opened.st_dev, opened.st_ino)

    def _open(self) -> int:
        """The log, opened for appending; created (and its folder) only when missing: an
        open with ``O_CREAT`` takes the folder's lock, even for a file that exists."""
        flags = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC  # read: whether the last line is whole
        try:
            return os.open(self.path, flags)
        except FileNotFoundError:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, flags | os.O_CREAT, 0o644)

    def close(self) -> None:
        """Let the log's descriptor go (the next append opens it again)."""
        with self._lock:
            if self._closer is not None:
                self._closer()
                self._closer = None
            self._fd = None

    def _sync(self, fd: int, where: tuple[int, int], mine: int) -> None:
        with self._sync_lock:
            failed = self._failed
            if failed is not None and failed[0] == where and mine <= failed[1]:
                raise OSError(
                    failed[2].errno, f"the decision log could not be synced: {failed[2]}"
                ) from failed[2]
            synced_where, synced_upto = self._synced
            if synced_where == where and mine <= synced_upto:
                return  # an fsync of this file, begun after our write, covered it
            with self._lock:
                upto = self._written  # every batch written so far, ours among them
            try:
                os.fsync(fd)
            except OSError as exc:
                self._failed = (where, upto, exc)
                raise
            self._synced = (where, upto)

    def __iter__(self) -> Iterator[Decision]:
        """Every whole decision. A last line without its newline is still being written, and
        is left for later; a line that does not parse (a fragment of a write that failed
        half-way) is skipped with a warning."""
        return self._read()

    def holding(self, text: str) -> Iterator[Decision]:
        """The whole decisions whose line holds ``text`` (a decision id: its own line, and
        any whose reasons or inputs name it), in order; no other line is parsed. A decision
        is written with its id as it is (lower-case hex), so its line holds it."""
        return self._read(text)

    def _read(self, needle: str | None = None) -> Iterator[Decision]:
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, 1):
                if not line.endswith("\n"):
                    return
                if (needle is not None and needle not in line) or not line.strip():
                    continue
                try:
                    decision = Decision.from_dict(json.loads(line))
                except (ValueError, KeyError, TypeError, AssertionError):
                    log.warning("%s, line %d: not a decision, skipped", self.path, number)
                    continue
                yield decision


_SINKS: weakref.WeakSet[JsonlSink] = weakref.WeakSet()


def _reset_sinks_after_fork() -> None:
    for sink in list(_SINKS):
        sink._after_fork()


def _close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


os.register_at_fork(after_in_child=_reset_sinks_after_fork)


def _ends_a_line(fd: int) -> bool:
    """Whether the file is empty or its last byte ends a line (another writer's batch may
    have been torn since we last wrote: looked at before every append, not only at open)."""
    size = os.fstat(fd).st_size
    return not size or os.pread(fd, 1, size - 1) == b"\n"


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
    # a file log: only the lines holding the id are parsed (every line was, a lookup)
    candidates = sink.holding(wanted) if isinstance(sink, JsonlSink) and wanted else iter(sink)
    for decision in candidates:
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
