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
import fcntl
import hashlib
import hmac
import json
import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from entrepot.kernel.clock import Clock, SystemClock, iso_utc
from entrepot.kernel.ids import new_id
from entrepot.risk.errors import UnknownDecision

log = logging.getLogger(__name__)

DECISION_KINDS = ("credit", "sanctions", "fraud")
LOG_FILE_NAME = "decisions.jsonl"
#: The ``prev`` of a log's first line: no line before it.
GENESIS = "0" * 64
#: How far back a tail is read at first to find the last line (a decision is ~0.3-2 KB).
_TAIL_CHUNK = 8192


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


@dataclass(frozen=True, slots=True)
class LogHead:
    """A point of a log's chain: its whole lines end at byte ``offset`` and the last of them
    hashes to ``hash`` (:data:`GENESIS` at 0: no line yet). Written ``OFFSET:HASH``."""

    offset: int
    hash: str

    def __str__(self) -> str:
        return f"{self.offset}:{self.hash}"

    @staticmethod
    def parse(text: str) -> LogHead:
        """``OFFSET:HASH`` as :meth:`__str__` writes it; a clear ValueError otherwise."""
        offset, sep, digest = text.strip().partition(":")
        digest = digest.lower()
        if (
            not sep
            or not offset.isdigit()
            or len(digest) != 64
            or any(c not in "0123456789abcdef" for c in digest)
        ):
            raise ValueError(
                f"an anchor is OFFSET:HASH (a byte offset, a colon, 64 hex digits), not {text!r}"
            )
        return LogHead(int(offset), digest)


@dataclass(frozen=True, slots=True)
class LogCheck:
    """What :func:`verify_log` found. ``broken_at`` is the first line (1-based) at which the
    chain or an anchor does not hold, ``problem`` says how; both None for an intact log.
    ``unchained`` counts the lines written before the log was chained (they are covered
    only through the first chained line's hash of the last of them); ``torn`` lists the
    lines that are not decisions (fragments of writes cut off: links of the chain all the
    same)."""

    lines: int
    head: LogHead
    unchained: int
    torn: tuple[int, ...]
    anchors_checked: int
    broken_at: int | None = None
    problem: str | None = None

    @property
    def intact(self) -> bool:
        return self.problem is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "intact": self.intact,
            "lines": self.lines,
            "head": str(self.head),
            "unchained": self.unchained,
            "torn": list(self.torn),
            "anchors_checked": self.anchors_checked,
            "broken_at": self.broken_at,
            "problem": self.problem,
        }


def verify_log(
    path: Path,
    anchors: Sequence[LogHead] = (),
    progress: Callable[[int, int], None] | None = None,
) -> LogCheck:
    """Walk a decision log's chain from its first line: every chained line must name the hash
    of the line before it, and no line may be left unchained once the chain has begun (a
    line without ``prev`` after it was written by something other than the log). Each anchor
    (a head recorded earlier) must still hold: a line ends at its offset and hashes to its
    hash. A last line without its newline is being written (or is a fragment): not read.
    Reads the file once, a line at a time (~40,000 lines/s here: ``progress(bytes read,
    bytes in all)`` is called every 10,000 lines)."""
    wanted = sorted({a.offset for a in anchors})
    at: dict[int, tuple[int, str | None]] = {0: (0, GENESIS)}  # offset: line, hash if it ends there
    prev, offset, number, unchained, chained = GENESIS, 0, 0, 0, False
    torn: list[int] = []
    broken: tuple[int, str] | None = None
    if Path(path).exists():
        with Path(path).open("rb") as handle:
            total = os.fstat(handle.fileno()).st_size
            for raw in handle:
                if not raw.endswith(b"\n"):
                    break  # still being written
                number += 1
                if progress is not None and not number % 10_000:
                    progress(offset, total)
                line = raw[:-1]
                named = _prev_of(line)
                if named is None:  # not a decision: a fragment of a write cut off
                    torn.append(number)
                elif named == "":  # a decision without a link
                    if chained:
                        broken = (number, f"line {number} is not chained to the line before it")
                        break
                    unchained += 1
                elif named != prev:
                    broken = (
                        number,
                        f"line {number} names {named} as the hash of the line before it, which "
                        f"hashes to {prev}: a line before it was changed, removed or inserted",
                    )
                    break
                else:
                    chained = True
                prev = _sha256(line)
                start, offset = offset, offset + len(raw)
                while wanted and wanted[0] <= offset:
                    inside = wanted.pop(0)
                    if inside > start:
                        at[inside] = (number, prev if inside == offset else None)
    head = LogHead(offset, prev)
    for a in sorted(anchors, key=lambda a: a.offset):
        if broken is not None:
            break
        if a.offset > offset:
            broken = (number, f"the anchor {a} lies past the log's end (byte {offset}): "
                      "lines were removed from its end")  # fmt: skip
            continue
        line_no, found = at[a.offset]
        if found is None:
            broken = (line_no, f"no line ends at the anchor's offset {a.offset} (it falls "
                      f"inside line {line_no}): the log was rewritten before it")  # fmt: skip
        elif found != a.hash:
            broken = (line_no, f"line {line_no}, ending at byte {a.offset}, hashes to {found}, "
                      f"not the anchor's {a.hash}: the log was rewritten up to it")  # fmt: skip
    return LogCheck(
        lines=number,
        head=head,
        unchained=unchained,
        torn=tuple(torn),
        anchors_checked=len(anchors),
        broken_at=None if broken is None else broken[0],
        problem=None if broken is None else broken[1],
    )


def _prev_of(line: bytes) -> str | None:
    """A line's ``prev`` ("" for a decision without one); None for a line that is not a
    decision (a fragment)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or "decision_id" not in record:
        return None
    prev = record.get("prev", "")
    return prev if isinstance(prev, str) else None


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
    skip what does not parse (:meth:`__iter__`).

    Each line is chained to the one before it (``prev``, module docstring). Writers sharing
    the log (a server's workers, the CLI) take an exclusive ``flock`` on it while they read
    its last line and append, so the lines are chained in the order they lie in the file;
    a fragment is a line of the chain like any other (its next line names its hash). The
    last line's hash is kept between appends: the tail is read again only when the file is
    not the size this sink left it (another writer appended, or a write failed)."""

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
        self._end: tuple[tuple[int, int], int, str] | None = None  # file, size, last line's hash

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
        records = [d.to_dict() for d in decisions]
        with self._lock:
            shared, where = self._shared()
            fd = os.dup(shared)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # other writers of this file wait here
                try:
                    size, prev, whole = self._tail(fd, where)
                    blob, head = _chained(records, prev)
                    if not whole:
                        # A batch torn here, or by another process that died mid-write (a
                        # server's workers share the log): start ours on a new line, or the
                        # fragment would swallow our first decision.
                        blob = b"\n" + blob
                    self._end = None  # until the whole batch is written
                    _write_all(fd, blob)
                    self._end = (where, size + len(blob), head)
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                self._written += 1
                mine = self._written
            except BaseException:
                os.close(fd)
                raise
        try:
            self._sync(fd, where, mine)
        finally:
            os.close(fd)

    def _tail(self, fd: int, where: tuple[int, int]) -> tuple[int, str, bool]:
        """Under the file lock: the file's size, the hash of its last line (a fragment
        included: it becomes a line of the chain) and whether the file ends a line."""
        size = os.fstat(fd).st_size
        end = self._end
        if end is not None and end[0] == where and end[1] == size:
            return size, end[2], True
        if not size:
            return 0, GENESIS, True
        whole = os.pread(fd, 1, size - 1) == b"\n"
        stop = size - 1 if whole else size  # the last line's bytes end here
        return size, _sha256(_line_ending_at(fd, stop)), whole

    def head(self) -> LogHead:
        """Where the log's whole lines end and the hash of the last (the chain's head), read
        from its tail; :data:`GENESIS` at 0 for a log with none. Recorded elsewhere, it is an
        anchor for :func:`verify_log`."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return LogHead(0, GENESIS)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)  # no append half-way through
            try:
                size = os.fstat(fd).st_size
                data_end = size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    # a fragment, or a line still being written: the head is the line before
                    data_end = _start_of_line(fd, size)
                if not data_end:
                    return LogHead(0, GENESIS)
                return LogHead(data_end, _sha256(_line_ending_at(fd, data_end - 1)))
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
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


def _start_of_line(fd: int, stop: int) -> int:
    """The offset where the line holding the byte before ``stop`` starts (just after the
    newline before it; 0 for the file's first line), read backwards a chunk at a time."""
    chunk = _TAIL_CHUNK
    while True:
        start = max(0, stop - chunk)
        found = os.pread(fd, stop - start, start).rfind(b"\n")
        if found >= 0:
            return start + found + 1
        if start == 0:
            return 0
        chunk *= 2


def _line_ending_at(fd: int, stop: int) -> bytes:
    """The bytes of the line that ends at ``stop`` (its newline, or the end of a fragment),
    the newline left out."""
    begin = _start_of_line(fd, stop)
    return os.pread(fd, stop - begin, begin)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _chained(records: Sequence[dict[str, Any]], prev: str) -> tuple[bytes, str]:
    """The records as lines of the chain after a line hashing to ``prev``, and the last
    line's hash. ``json.dumps`` writes ASCII only: a line's bytes are its text."""
    lines = []
    for record in records:
        record["prev"] = prev
        line = json.dumps(record, sort_keys=True).encode("ascii")
        prev = _sha256(line)
        lines.append(line)
    lines.append(b"")
    return b"\n".join(lines), prev


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
        at=iso_utc(now_ns),
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
