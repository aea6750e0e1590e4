"""Each participant's request rate, limited across the API workers of one home (ADR 0016).

The scheme has one writer and a few workers for every participant together: a participant
that sends faster than it should (a bank's retry storm, a runaway batch job, a stolen
credential) would otherwise take the whole scheme's capacity, and every other participant's
payments would wait behind its requests. ``ENTREPOT_RATE_LIMIT`` (requests a second, a
participant) and ``ENTREPOT_RATE_BURST`` (requests at once) set one limit for every
participant; a request past it is answered 429 ``rate_limited`` with ``Retry-After`` before
its body is read, and changes nothing.

The limit is the generic cell rate algorithm (GCRA, ITU-T I.371; the "virtual scheduling"
form): for each participant one number, the theoretical arrival time ``tat`` of its next
request. A request at ``now`` is admitted when ``max(tat, now) <= now + (burst - 1) / rate``,
and then moves ``tat`` on by ``1 / rate``; a refused request moves nothing. A participant
idle for ``burst / rate`` seconds may send ``burst`` requests at once, and ``rate`` a second
after that, whichever worker each request reaches.

The numbers live in a table of fixed slots in a file of the home
(``$ENTREPOT_HOME/rate-limits.table``), mapped into each worker's memory, each slot a
participant's 64-bit fingerprint and its ``tat``. A worker reads and moves a ``tat`` under an
open-file-description lock on the file (Linux ``F_OFD_SETLKW``: a few microseconds, never held
across anything else); the kernel lets the lock go when a worker dies, so a killed worker
cannot stall the others. Times are ``CLOCK_MONOTONIC`` (one clock for every process of a
host); a ``tat`` further ahead than any admitted request can leave it (the host rebooted, its
monotonic clock restarted) is read as now. Where the file cannot be used (not Linux, a home
that cannot be written), the table is the worker's own memory and a warning says the limit
holds per worker.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import math
import mmap
import os
import struct
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from entrepot.payments.rate_limits import OWN_LIMIT_FRESH_S

log = logging.getLogger(__name__)

#: The file's first bytes: what it is and which layout (a table of another layout, left by
#: another version, is cleared rather than misread)
MAGIC = b"ENTRRATE"
VERSION = 1
_HEADER = struct.Struct("<8sII")  # magic, version, slots
_SLOT = struct.Struct("<Qd")  # fingerprint (0: free), tat (monotonic seconds)
#: Slots in the table: a participant takes one for the table's life; 65,536 slots (1 MiB)
#: keep probing short for tens of thousands of participants
SLOTS = 65_536
#: How many slots after its own a participant's fingerprint is looked for
PROBES = 64
_FLOCK = struct.Struct("hhqqi4x")  # struct flock on Linux: see claims.py
_SETLKW = getattr(fcntl, "F_OFD_SETLKW", None)
#: The participants whose own limits a worker keeps what it read of at once
OWN_KNOWN_MAX = 100_000
_PER_WORKER = "are counted in each worker apart (a participant gets its limit once a worker)"


@dataclass(frozen=True, slots=True)
class RateLimit:
    """``rate_per_s`` requests a second for each participant, ``burst`` of them at once."""

    rate_per_s: float
    burst: int

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate_per_s) and self.rate_per_s > 0):
            raise ValueError(
                f"a rate limit is a positive number of requests a second, not {self.rate_per_s!r}"
            )
        if self.burst < 1:
            raise ValueError(f"a burst is at least one request, not {self.burst!r}")

    def describe(self) -> str:
        rate = f"{self.rate_per_s:g}"
        return f"{rate} requests a second, {self.burst} at once"


class RateLimiter:
    """``admit(participant)`` -> ``None`` when the request may go on (and it is counted), else
    the seconds until the participant's next request would be admitted."""

    def __init__(
        self,
        default: RateLimit | None,
        path: Path | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        slots: int = SLOTS,
    ) -> None:
        #: the scheme's limit, for every participant without one of its own (none: those
        #: are not limited)
        self.default = default
        self.path = path
        self._clock = clock
        self._slots = slots
        self._state = threading.Lock()
        self._pid = -1  # the process the table was opened in (a forked child opens its own)
        self._fd: int | None = None
        self._table: mmap.mmap | bytearray | None = None
        #: participant -> its slot's offset and fingerprint
        self._where: dict[str, tuple[int, int]] = {}
        #: participant -> until when (clock) its own limit (or none) as last read holds
        self._own: dict[str, tuple[float, RateLimit | None]] = {}
        self._file_unusable = False  # the file failed once: the table is the worker's own
        self._warned = False

    def own_known(self, participant: str) -> tuple[bool, RateLimit | None]:
        """``(True, its own limit or None)`` while what this worker last read of the
        participant's own limit is fresh (``OWN_LIMIT_FRESH_S``), else ``(False, None)``:
        read it (``payments.rate_limits.own_limit``) and :meth:`remember` it."""
        known = self._own.get(participant)
        if known is None or known[0] <= self._clock():
            return False, None
        return True, known[1]

    def remember(self, participant: str, own: tuple[float, int] | None) -> RateLimit | None:
        """What was just read of the participant's own limit, for ``OWN_LIMIT_FRESH_S``."""
        limit = RateLimit(*own) if own is not None else None
        if len(self._own) >= OWN_KNOWN_MAX:
            self._own.clear()  # callers that come and go (trade principals): read again
        self._own[participant] = (self._clock() + OWN_LIMIT_FRESH_S, limit)
        return limit

    def forget(self, participant: str) -> None:
        """The participant's own limit changed (in this worker): read it at its next request."""
        self._own.pop(participant, None)

    def admit(self, participant: str, limit: RateLimit | None = None) -> float | None:
        """``limit``: the participant's own (:meth:`own_known`), else the scheme's."""
        limit = limit or self.default
        if limit is None:
            return None  # neither the scheme nor the participant has one
        with self._state:
            table = self._open()
            if self._fd is not None:
                try:
                    self._lock(fcntl.F_WRLCK)
                except OSError as exc:
                    self._give_up_file(exc.strerror or str(exc))
                    table = self._open()
            try:
                return self._admit(table, participant, limit)
            finally:
                if self._fd is not None:
                    try:
                        self._lock(fcntl.F_UNLCK)
                    except OSError as exc:
                        self._give_up_file(exc.strerror or str(exc))

    def _admit(
        self, table: mmap.mmap | bytearray, participant: str, limit: RateLimit
    ) -> float | None:
        found = self._slot(table, participant)
        if found is None:  # no free slot near its own: never refused for that
            self._warn("do not apply to some participants", "the table is full near their slots")
            return None
        offset, fingerprint = found
        interval = 1.0 / limit.rate_per_s
        # how far ahead of now the participant's next time may be for this one to go
        tolerance = (limit.burst - 1) * interval
        now = self._clock()
        tat: float = _SLOT.unpack_from(table, offset)[1]
        if tat < now or tat > now + tolerance + interval:
            # idle; or stale: written under another boot's monotonic clock, or under a
            # slower limit than the participant's now (raised: it starts afresh under it)
            tat = now
        if tat - now > tolerance:
            return tat - now - tolerance
        _SLOT.pack_into(table, offset, fingerprint, tat + interval)
        return None

    def close(self) -> None:
        with self._state:
            self._close()

    def _close(self) -> None:
        table, self._table = self._table, None
        fd, self._fd = self._fd, None
        self._where.clear()
        if isinstance(table, mmap.mmap):
            table.close()
        if fd is not None:
            os.close(fd)  # lets go of the lock, were it held

    def _give_up_file(self, why: str) -> None:
        """The file failed: the table is this worker's own from now on."""
        self._close()
        self._file_unusable = True
        self._warn(_PER_WORKER, f"{self.path}: {why}")

    def _slot(self, table: mmap.mmap | bytearray, participant: str) -> tuple[int, int] | None:
        """The participant's slot (offset, fingerprint), a free one taken at its first request."""
        known = self._where.get(participant)
        if known is not None and _SLOT.unpack_from(table, known[0])[0] == known[1]:
            return known
        fingerprint = _fingerprint(participant)
        first = fingerprint % self._slots
        for step in range(PROBES):
            offset = _HEADER.size + ((first + step) % self._slots) * _SLOT.size
            held, _ = _SLOT.unpack_from(table, offset)
            if held == fingerprint or held == 0:
                if held == 0:
                    _SLOT.pack_into(table, offset, fingerprint, 0.0)
                self._where[participant] = (offset, fingerprint)
                return offset, fingerprint
        return None

    def _open(self) -> mmap.mmap | bytearray:
        if self._pid != os.getpid():
            # a fork's child (or the first use): the parent's descriptor and mapping are the
            # parent's (its locks are shared with them), the child opens its own
            with suppress(OSError, ValueError):
                self._close()
            self._pid = os.getpid()
        if self._table is not None:
            return self._table
        size = _HEADER.size + self._slots * _SLOT.size
        if self.path is not None and not self._file_unusable:
            if _SETLKW is None:
                self._file_unusable = True
                self._warn(_PER_WORKER, "this system has no open-file-description locks")
            else:
                try:
                    self._table = self._map(size)
                    return self._table
                except OSError as exc:
                    self._give_up_file(exc.strerror or str(exc))
        table = bytearray(size)
        _HEADER.pack_into(table, 0, MAGIC, VERSION, self._slots)
        self._table = table
        return table

    def _map(self, size: int) -> mmap.mmap:
        assert self.path is not None
        # the server's workers' alone: another user who could lock it would stall every request
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._lock(fcntl.F_WRLCK)
        try:
            header = os.pread(self._fd, _HEADER.size, 0)
            held = os.fstat(self._fd).st_size
            if held < size or _HEADER.unpack(header) != (MAGIC, VERSION, self._slots):
                # new, or another layout's: cleared, every participant starting afresh. Never
                # made shorter: a worker of another version mapping it would fault past the end
                os.ftruncate(self._fd, max(size, held))
                os.pwrite(self._fd, bytes(size), 0)
                os.pwrite(self._fd, _HEADER.pack(MAGIC, VERSION, self._slots), 0)
            return mmap.mmap(self._fd, size)
        finally:
            self._lock(fcntl.F_UNLCK)

    def _lock(self, kind: int) -> None:
        """Take (``F_WRLCK``, waiting for another worker's) or let go of the table's lock."""
        assert self._fd is not None and _SETLKW is not None
        while True:
            try:
                fcntl.fcntl(self._fd, _SETLKW, _FLOCK.pack(kind, os.SEEK_SET, 0, 1, 0))
                return
            except InterruptedError:
                continue

    def _warn(self, consequence: str, why: str) -> None:
        if not self._warned:
            self._warned = True
            log.warning("participants' request rate limits %s: %s", consequence, why)


def _fingerprint(participant: str) -> int:
    digest = hashlib.blake2b(participant.encode(), digest_size=8, person=b"entrepot-rate").digest()
    return int.from_bytes(digest, "little") or 1


def retry_after_s(wait: float) -> int:
    """``Retry-After``'s whole seconds: at least one, never before the wait is over."""
    return max(1, math.ceil(wait))


__all__ = ["RateLimit", "RateLimiter", "retry_after_s"]
