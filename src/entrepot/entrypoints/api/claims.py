"""Which Idempotency-Keys are being answered right now, across the API workers of one home.

A retry that arrives while the first request with its key is still running found no stored
answer, ran the operation again (which, idempotent by its id, then refused it as "already
exists"; since ADR 0009 it answers a resend by its id, but routes other than the creates
are not idempotent that way), and could store *its* answer as the key's if it finished
first: the client that sent the original could be answered 201 and every later replay 409.
A key is now claimed for the time its request runs, from the stored-answer lookup to the
answer's commit; a request whose key is claimed is answered 409 ``request_in_progress`` with
``Retry-After`` at once (as the IETF Idempotency-Key draft and Stripe answer it), and its
retry, after the first finished, replays the first answer.

A claim is an entry in this process's set of keys (threads and event loops of one worker)
and an open-file-description lock (Linux ``F_OFD_SETLK``) on one byte of a lock file shared
by the workers (``$ENTREPOT_HOME/idempotency-claims.lock``), at an offset hashed from the
caller and the key. The kernel lets the lock go when the process dies, so a killed worker
leaves no key claimed. Claims are never waited for (non-blocking, two system calls). Where
the lock file cannot be opened or OFD locks do not exist (not Linux), claims hold within the
process only, and a warning says so. They are per lock file, that is per ``ENTREPOT_HOME``:
servers with other homes (on other hosts, or in containers that do not share the file)
sharing one database do not see each other's claims; there the key's marker, inserted with
the operation under the write lock, refuses the second request (``payments/keyed.py``)."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import struct
import threading
import weakref
from contextlib import suppress
from pathlib import Path

log = logging.getLogger(__name__)

# struct flock on Linux (x86-64 and aarch64): l_type, l_whence (short), l_start, l_len
# (off_t), l_pid (pid_t, 0 for OFD locks), padded to 32 bytes.
_FLOCK = struct.Struct("hhqqi4x")
_OFFSET_MASK = (1 << 62) - 1  # an offset well inside off_t, whatever l_len adds
_SETLK = getattr(fcntl, "F_OFD_SETLK", None)


class KeyClaims:
    """``claim(caller, key)`` -> True if no worker of this home is answering that key now
    (the claim is then this request's until ``release``), else False."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._held: set[tuple[str, str]] = set()
        self._state = threading.Lock()
        self._fd: int | None = None
        self._warned = False
        self._unusable = False  # the lock file failed once: claims stay in the process
        _ALL.add(self)

    def claim(self, caller: str, key: str) -> bool:
        pair = (caller, key)
        with self._state:
            if pair in self._held:
                return False
            fd = self._file()
            if fd is not None and not self._lock(fd, fcntl.F_WRLCK, _offset(caller, key)):
                return False  # another worker's request holds it
            self._held.add(pair)
            return True

    def release(self, caller: str, key: str) -> None:
        pair = (caller, key)
        with self._state:
            if pair not in self._held:
                return
            self._held.discard(pair)
            if self._fd is not None:
                self._lock(self._fd, fcntl.F_UNLCK, _offset(caller, key))

    def close(self) -> None:
        with self._state:
            fd, self._fd = self._fd, None
            self._held.clear()
            if fd is not None:
                os.close(fd)  # lets go of every lock held through it

    def _after_fork(self) -> None:
        """In a forked child: none of the parent's requests are the child's, and the
        descriptor it inherited shares the parent's locks (closing it does not end them)."""
        self._state = threading.Lock()  # another thread may have held it at the fork
        self._held = set()
        fd, self._fd = self._fd, None
        if fd is not None:
            with suppress(OSError):
                os.close(fd)

    def _file(self) -> int | None:
        if self._fd is not None:
            return self._fd
        if self.path is None or self._unusable:
            return None
        if _SETLK is None:
            self._unusable = True
            self._warn("this system has no open-file-description locks")
            return None
        try:
            # the server's workers' alone: a byte another user could lock (a read lock
            # will do) would stall every keyed request naming it
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            self._unusable = True
            self._warn(f"cannot open {self.path}: {exc.strerror}")
            return None
        with suppress(OSError):  # one an earlier version left open to all
            os.fchmod(fd, 0o600)
        self._fd = fd
        return fd

    def _lock(self, fd: int, kind: int, offset: int) -> bool:
        """False when another open file description holds the byte; any other failure leaves
        the lock file (claims then hold within the process) rather than the request."""
        assert _SETLK is not None
        try:
            fcntl.fcntl(fd, _SETLK, _FLOCK.pack(kind, os.SEEK_SET, offset, 1, 0))
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                return False
            self._unusable = True
            self._fd = None
            os.close(fd)
            self._warn(f"locking {self.path} failed: {exc.strerror}")
        return True

    def _warn(self, why: str) -> None:
        if not self._warned and self.path is not None:
            self._warned = True
            log.warning(
                "Idempotency-Key claims hold within this process only (%s): a retry that "
                "reaches another worker while the first request runs is not refused",
                why,
            )


_ALL: weakref.WeakSet[KeyClaims] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for claims in list(_ALL):
        claims._after_fork()


os.register_at_fork(after_in_child=_reset_after_fork)


def _offset(caller: str, key: str) -> int:
    digest = hashlib.blake2b(f"{caller}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & _OFFSET_MASK


__all__ = ["KeyClaims"]
