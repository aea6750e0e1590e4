"""Notifications to participants (Mojaloop's callbacks), delivered from an outbox.

A transfer's state change writes its notifications into ``pay_outbox`` in the same
transaction, so a committed change is never without its notice and a rolled-back one never
has one. ``Dispatcher.deliver_due`` POSTs them to each participant's registered endpoint as
JSON, at least once: the ``X-Entrepot-Event-Id`` header lets the receiver drop duplicates. A
failed delivery (a network error or a non-2xx answer) is retried with exponential backoff,
1 s doubling (at most an hour between two; ``ATTEMPTS_MAX`` attempts end the retries first,
after about 34 minutes); every attempt is recorded. Participants can also read their
notifications (``PaymentScheme.notifications``), so a missed callback is never lost. Each
callback is signed with the scheme's Ed25519 key in the form requests are (``signing.py``:
the target is the callback's whole URL and the nonce its event id, so neither can be changed
on a resent notice); the public key is served at ``GET /v1/scheme/public-key``. Each
participant's notices arrive in order (``Dispatcher``).

Which participant hears what (the switch's part of Mojaloop's transfer flow):
- ``transfer.reserved`` -> the payee (funds reserved for it: accept or reject);
- ``transfer.hold`` -> the payer (screening asked for a person's review);
- ``transfer.committed`` -> the payer (the payee accepted; final);
- ``transfer.aborted`` -> the payer and the payee (rejected, expired or refused on review);
- ``bulk.committed`` -> each payee participant of a bulk, once, listing its credits;
- ``participant.suspended`` / ``participant.resumed`` -> the participant, with the reason.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import ipaddress
import json
import logging
import os
import socket
import ssl
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Sequence, Set
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from nacl.signing import SigningKey
from sqlalchemy import Connection, Engine

from entrepot.kernel.clock import NS_PER_S, Clock, SystemClock
from entrepot.payments import store as st
from entrepot.payments.model import REVIEW_RELEASED, PaymentTransfer, StatusChange, TransferState
from entrepot.payments.signing import sign_callback
from entrepot.storage.engine import read_connection

log = logging.getLogger(__name__)

BACKOFF_S_MAX = 3_600
#: Failed attempts after which a notice is abandoned (waits of 1 s ... 1,024 s between
#: them: 2,047 s, about 34 minutes of retries); a participant reads it from its notifications.
ATTEMPTS_MAX = 12
#: Answers that say the notice itself is refused, which sending it again cannot change (not
#: 408, 425 and 429, which say "later"): it is abandoned at once, so that the participant's
#: later notices are not held back behind it.
_RETRY_LATER = (408, 425, 429)
ERROR_LEN_MAX = 300
TIMEOUT_S = 5.0  # one read or connect
ATTEMPT_S_MAX = 10.0  # a whole attempt
#: A participant's turn in a delivery round: no further notice of its is started once its
#: turn has lasted this long (the rest wait for the next round, in order). An endpoint that
#: answered 200 just inside the attempt's deadline once held a round for 200 notices in a
#: row, every other participant sorted after it waiting (payments expired unheard).
TURN_S = 1.0
#: The most notices one participant's turn sends
TURN_LIMIT = 200
#: Participants served at once in a round, each by one thread (its notices stay in order).
DELIVERY_THREADS = 16

RECIPIENTS: dict[TransferState, tuple[str, ...]] = {
    TransferState.RESERVED: ("payee",),
    TransferState.HOLD: ("payer",),
    TransferState.COMMITTED: ("payer",),
    TransferState.ABORTED: ("payer", "payee"),
}

#: Sends one notification: (url, body, headers) -> HTTP status; raises OSError if unreachable.
Sender = Callable[[str, bytes, dict[str, str]], int]


def transfer_event(t: PaymentTransfer) -> dict[str, Any]:
    return {
        "transferId": t.id,
        "quoteId": t.quote_id,
        "state": t.state.value,
        "payerFsp": t.payer_participant,
        "payeeFsp": t.payee_participant,
        "sendAmount": {"minor": t.source_amount_minor, "currency": t.source_currency},
        "fee": {"minor": t.fee_minor, "currency": t.source_currency},
        "receiveAmount": {"minor": t.target_amount_minor, "currency": t.target_currency},
        "fxProvider": t.fx_provider,
        "reason": t.reason,
        "at": t.updated_at_ns,
    }


def _queue(
    conn: Connection,
    event: str,
    resource_id: str,
    bodies: dict[str, Any],
    now_ns: int,
    registered: Set[str] | None = None,
) -> int:
    """Queue ``bodies[participant]`` for each participant that registered an endpoint (the
    caller may know which: ``registered``); returns how many were queued."""
    if not bodies:
        return 0
    if registered is None:
        registered = {r[0] for r in conn.execute(st.ENDPOINTS_OF, {"pids": list(bodies)}).all()}
    rows = [
        {
            "participant_id": pid,
            "event": event,
            "resource_id": resource_id,
            "body": json.dumps(body, separators=(",", ":")),
            "created_at": now_ns,
            "attempts": 0,
            "next_attempt_at": now_ns,
        }
        for pid, body in bodies.items()
        if pid in registered
    ]
    if rows:
        conn.execute(st.INSERT_OUTBOX, rows)
    return len(rows)


def notify_transfer(
    conn: Connection, t: PaymentTransfer, now_ns: int, registered: Set[str] | None = None
) -> int:
    """Queue the notices of ``t``'s current state for its parties that have an endpoint
    (``registered``: the participants that have one, when the caller knows)."""
    roles = RECIPIENTS.get(t.state, ())
    if t.state is TransferState.RESERVED and (t.reason or "").startswith(REVIEW_RELEASED):
        # released from a hold the payer was told of: it is told of the release and the
        # reviewer's words too (it heard nothing more until the payee decided)
        roles = ("payee", "payer")
    who = [t.payer_participant if r == "payer" else t.payee_participant for r in roles]
    bodies = {p: transfer_event(t.seen_by(p)) for p in who}  # the payee not told why held
    return _queue(conn, f"transfer.{t.state.value.lower()}", t.id, bodies, now_ns, registered)


def notify_status(conn: Connection, change: StatusChange) -> int:
    """Tell a participant that the operator suspended or resumed it, and why."""
    body = {
        "participantId": change.participant_id,
        "active": change.active,
        "reason": change.reason,
        "seq": change.seq,
    }
    event = "participant.resumed" if change.active else "participant.suspended"
    resource = f"{change.participant_id}/{change.seq}"
    return _queue(conn, event, resource, {change.participant_id: body}, change.at_ns)


def notify_bulk(
    conn: Connection,
    bulk_id: str,
    payer: str,
    currency: str,
    credits: dict[str, list[tuple[str, int]]],
    now_ns: int,
) -> int:
    """One notice per payee participant of a committed bulk, listing its credits
    (``credits``: payee participant -> [(transfer id, minor units)]). Built only for the
    payees that registered an endpoint: a payroll's list runs to thousands of credits."""
    if not credits:
        return 0
    registered = {r[0] for r in conn.execute(st.ENDPOINTS_OF, {"pids": list(credits)}).all()}
    bodies = {
        pid: {
            "bulkId": bulk_id,
            "payerFsp": payer,
            "currency": currency,
            "credits": [{"transferId": tid, "minor": minor} for tid, minor in paid],
        }
        for pid, paid in credits.items()
        if pid in registered
    }
    return _queue(conn, "bulk.committed", bulk_id, bodies, now_ns, registered)


def signing_key(path: Path) -> SigningKey:
    """The scheme's Ed25519 key for signing callbacks, created on first use (owner-only).

    Several API workers start at once on a new home: each writes a candidate key to a file of
    its own and links it into place, which succeeds for one only; the others read the
    winner's (complete, since it was linked after it was written). Creating the file in place
    let a second worker fail at start on the first's file, or read it half-written."""
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        candidate = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}")
        fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(bytes(SigningKey.generate()).hex())
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(FileExistsError):  # another worker's key won
                os.link(candidate, path)
        finally:
            candidate.unlink(missing_ok=True)
    return SigningKey(bytes.fromhex(path.read_text().strip()))


def public_key_b64(key: SigningKey) -> str:
    return base64.b64encode(bytes(key.verify_key)).decode()


IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class CallbackAddresses:
    """Where the scheme may connect to deliver a callback, judged on the address the
    endpoint's name resolves to when it is called: the host allow-list holds names whose DNS
    the participants control, so a name allowed could point at the scheme's own host or a
    cloud's metadata service. With no ``networks`` (the default), public addresses only: not
    loopback, link-local (169.254.169.254), IPv6 site-local (fec0::/10), unspecified,
    multicast, reserved, nor private or
    shared ones (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7: the operator's own network,
    which a participant's endpoint could otherwise POST into, its ``lastError`` telling which
    ports answer); with ``networks`` (``ENTREPOT_CALLBACK_NETWORKS``), only addresses in them
    (participants on a private network, a test's loopback)."""

    networks: tuple[IpNetwork, ...] = ()

    @classmethod
    def parse(cls, cidrs: Sequence[str]) -> CallbackAddresses:
        """From CIDR texts (``10.0.0.0/8``); raises ValueError naming a malformed one."""
        networks = []
        for text in cidrs:
            try:
                networks.append(ipaddress.ip_network(text.strip(), strict=False))
            except ValueError as exc:
                raise ValueError(f"{text!r} is not an IP network: {exc}") from None
        return cls(tuple(networks))

    def problem(self, address: IpAddress) -> str | None:
        """Why the scheme will not connect to ``address`` (None: it will)."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
        if not self.networks and isinstance(address, ipaddress.IPv6Address):
            # Tunnels whose addresses carry an IPv4 one that Python calls global: 6to4's
            # 2002:a9fe:a9fe::1 is 169.254.169.254 where a 6to4 route exists (a review);
            # Teredo's client address is obscured, so it is refused whole
            if address.teredo is not None:
                return f"{address} is a Teredo tunnel address"
            carried = address.sixtofour
            if carried is not None:
                why = self.problem(carried)
                if why is not None:
                    return f"{address} is a 6to4 address of {carried}, and {why}"
        if self.networks:
            if any(address in n for n in self.networks):
                return None
            return f"{address} is outside the networks callbacks may reach"
        for what, bad in (
            ("loopback", address.is_loopback),
            ("link-local", address.is_link_local),
            # fec0::/10: deprecated (RFC 3879) but routed inside networks that kept it, and
            # Python calls it global
            ("site-local", isinstance(address, ipaddress.IPv6Address) and address.is_site_local),
            ("unspecified", address.is_unspecified),
            ("multicast", address.is_multicast),
            ("reserved", address.is_reserved),
            ("private", not address.is_global),  # any other not for the public internet
        ):
            if bad:
                return f"{address} is a {what} address"
        return None

    def resolve(self, host: str, port: int, timeout: float | None = None) -> IpAddress:
        """The first address ``host`` resolves to that may be reached; raises OSError naming
        why none may (the connection is then made to that address, not to the name again:
        a second lookup could answer otherwise), TimeoutError when the lookup takes longer
        than ``timeout`` seconds."""
        found = _lookup(host, port, timeout)
        problems = []
        for _family, _type, _proto, _name, sockaddr in found:
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            why = self.problem(address)
            if why is None:
                return address
            problems.append(why)
        raise ConnectionRefusedError(
            f"callback host {host!r} refused: {'; '.join(dict.fromkeys(problems)) or 'no address'}"
        )


#: Name lookups of callback hosts. getaddrinfo cannot be interrupted (a resolver that does not
#: answer holds it for its own retries, tens of seconds): it runs on these threads, and an
#: attempt waits for it only until its deadline; a lookup past it ends in the background, and
#: lookups beyond these threads wait their turn within their own attempt's deadline.
_LOOKUPS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="callback-dns")


def _lookup(host: str, port: int, timeout: float | None) -> list[Any]:
    future = _LOOKUPS.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        return future.result(timeout=timeout)
    except TimeoutError:
        future.cancel()  # not started yet (the threads all waiting on slow lookups): never
        raise TimeoutError(f"resolving {host!r} took more than {timeout:g} s") from None


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to an address already checked, the name kept for ``Host``."""

    def __init__(self, name: str, address: IpAddress, port: int | None, timeout: float) -> None:
        super().__init__(name, port, timeout=timeout)
        self._address = str(address)

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """An HTTPS connection to an address already checked; the certificate is verified for
    the name (SNI too), as a connection to the name would."""

    def __init__(self, name: str, address: IpAddress, port: int | None, timeout: float) -> None:
        super().__init__(name, port, timeout=timeout, context=ssl.create_default_context())
        self._address = str(address)

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def http_post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    addresses: CallbackAddresses | None = None,
) -> int:
    """POST ``body`` to ``url`` (http or https; redirects are answers, not new targets: a
    3xx is returned, not followed, so an endpoint cannot point the scheme elsewhere) and
    return the status. The whole attempt, connecting to the end of the status line and
    headers, takes at most ``ATTEMPT_S_MAX``: a per-read timeout alone let an endpoint that
    sent a byte every few seconds hold the dispatcher for hours. With ``addresses``, the name
    is resolved once, its address checked and connected to (:class:`CallbackAddresses`), the
    lookup within the attempt's time (a resolver that did not answer held it before the
    deadline's clock started).
    Raises OSError (or ``http.client.HTTPException``) when there is no answer."""
    parts = urllib.parse.urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target += f"?{parts.query}"
    https = parts.scheme == "https"
    host = parts.hostname or ""
    conn: http.client.HTTPConnection
    start = time.monotonic()
    # always given: without one, http.client reads an IPv6 host's last group as its port
    # (http://[2001:db8::1]/cb was called on port 1)
    port = parts.port or (443 if https else 80)
    if addresses is not None:
        address = addresses.resolve(host, port, ATTEMPT_S_MAX)  # in the attempt's time
        pinned = _PinnedHTTPSConnection if https else _PinnedHTTPConnection
        conn = pinned(host, address, port, TIMEOUT_S)
    else:
        cls = http.client.HTTPSConnection if https else http.client.HTTPConnection
        conn = cls(host, port, timeout=TIMEOUT_S)
    fired = threading.Event()

    def cut() -> None:  # shutting the socket down wakes the read it is blocked in
        fired.set()
        sock = conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(max(0.0, ATTEMPT_S_MAX - (time.monotonic() - start)), cut)
    timer.daemon = True
    timer.start()
    try:
        conn.connect()  # its own step: the cut has no socket to shut down until it returns
        if fired.is_set():
            raise TimeoutError("connecting took the attempt's time")
        conn.request("POST", target, body=body, headers=headers)
        status = int(conn.getresponse().status)
    except (OSError, http.client.HTTPException) as exc:
        if fired.is_set():
            raise TimeoutError(f"no answer within {ATTEMPT_S_MAX:g} s") from exc
        raise
    finally:
        timer.cancel()
        conn.close()
    if fired.is_set():  # the status came as the time ran out: not taken as an answer
        raise TimeoutError(f"no answer within {ATTEMPT_S_MAX:g} s")
    return status


def endpoint_problem(url: str, hosts: Set[str] = frozenset()) -> str | None:
    """Why the scheme will not POST to ``url`` (None: it will): not http(s), no host, a
    port that is not a number, user info or a backslash in the authority (read one way by
    the check and another by the connection), a path or query that is not ASCII, or a host
    outside ``hosts`` when the operator set them (``ENTREPOT_CALLBACK_HOSTS``)."""
    if any(c.isspace() or c < " " or c == "\x7f" for c in url) or "\\" in url:
        return "it holds spaces, control characters or a backslash"
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        return f"it does not parse: {exc}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "it is not an http(s) URL with a host"
    if "@" in parts.netloc:
        return "it names a user"
    if not (parts.path + parts.query).isascii():  # a fragment is never sent
        # a request line is ASCII: every attempt failed to encode it, and every notice was
        # abandoned after its retries
        return "its path or query is not ASCII: percent-encode it"
    host = parts.hostname.lower()
    if hosts and host not in hosts:
        return f"host {host!r} is not one the scheme allows ({', '.join(sorted(hosts))})"
    return None


def _printable(text: str) -> str:
    """An error as it can be stored anywhere: an endpoint's answer may hold a NUL (which
    PostgreSQL's text refuses: the attempt could not be recorded, and every round stopped at
    it) or other control characters."""
    return "".join("?" if c < " " or c == "\x7f" else c for c in text)


def _worked(pid: str, turn: Future[dict[str, int]]) -> bool:
    """Whether participant ``pid``'s finished ``turn`` delivered or failed anything (False
    if it raised: logged, the other participants go on)."""
    try:
        return any(turn.result().values())
    except Exception:
        log.exception("a delivery turn to %s failed", pid)
        return False


class Dispatcher:
    """Delivers due notifications; run it in a loop beside the API (``entrepot payments
    deliver --loop``). Several dispatchers may run: a notice may then arrive twice.

    Each participant's notices arrive in the order they were written: a notice waits while
    an earlier one to the same participant is undelivered (a payee heard "aborted" before
    "reserved" when its endpoint was down for the first). A round serves the participants
    whose oldest undelivered notice is due at once (``threads`` at a time, one thread each),
    each taking its notices in order until one fails or its turn has lasted ``TURN_S``: an
    endpoint that is down costs one attempt a round (its deadline at most), not one per
    notice, and a slow one delays no other participant's notices beyond the round's end
    (one attempt's deadline at most). A notice refused outright, or failed ``ATTEMPTS_MAX``
    times, is abandoned so as not to hold back the later ones (the participant still reads
    it).
    ``hosts``: the operator's allowed callback hosts, checked at every attempt too (an
    endpoint registered before the list was set is not called outside it)."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock | None = None,
        send: Sender | None = None,
        key: SigningKey | None = None,
        hosts: Set[str] = frozenset(),
        threads: int = DELIVERY_THREADS,
    ) -> None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, not {threads}")
        self.engine = engine
        self.clock: Clock = clock or SystemClock()
        self.send: Sender = send or http_post
        self.key = key
        self.hosts = frozenset(h.lower() for h in hosts)
        self.threads = threads

    def deliver_due(self, limit: int = TURN_LIMIT) -> dict[str, int]:
        """One round: at most ``limit`` notices per participant, each participant's turn
        ending once it has lasted ``TURN_S``; returns once every turn has ended."""
        ready = self._ready()
        counts = {"delivered": 0, "failed": 0}
        if len(ready) <= 1:  # no thread to start for one participant
            turns = [self._turn(pid, limit) for pid in ready]
        else:
            with ThreadPoolExecutor(min(self.threads, len(ready)), "deliver") as pool:
                turns = list(pool.map(lambda pid: self._turn(pid, limit), sorted(ready)))
        for turn in turns:
            for key, n in turn.items():
                counts[key] += n
        return counts

    def _ready(self) -> list[str]:
        """The participants whose oldest notice still to deliver is due now."""
        now = self.clock.now_ns()
        o = st.outbox.c
        heads = (  # each participant's oldest notice still to deliver
            sa.select(sa.func.min(o.id))
            .where(o.delivered_at.is_(None), o.abandoned_at.is_(None))
            .group_by(o.participant_id)
        )
        with read_connection(self.engine) as conn:
            return list(
                conn.execute(
                    sa.select(o.participant_id).where(o.id.in_(heads), o.next_attempt_at <= now)
                )
                .scalars()
                .all()
            )

    def _turn(self, pid: str, limit: int) -> dict[str, int]:
        """Participant ``pid``'s notices in order, until one fails or the turn has lasted
        ``TURN_S`` (at least one is tried)."""
        ends = time.monotonic() + TURN_S
        counts = {"delivered": 0, "failed": 0}
        try:
            with read_connection(self.engine) as conn:
                rows = conn.execute(
                    sa.select(st.outbox, st.endpoints.c.url)
                    .join(st.endpoints, st.endpoints.c.participant_id == st.outbox.c.participant_id)
                    .where(
                        st.outbox.c.participant_id == pid,
                        st.outbox.c.delivered_at.is_(None),
                        st.outbox.c.abandoned_at.is_(None),
                    )
                    .order_by(st.outbox.c.id)
                    .limit(limit)
                ).all()
        except Exception:  # read again next round; the other participants go on now
            log.exception("reading the notices to %s failed", pid)
            return counts
        for i, row in enumerate(rows):
            if i and time.monotonic() >= ends:
                break  # the rest next round: the other participants' turns are not held up
            error, refused = self._attempt(row)
            try:
                abandoned = self._record(row, error, refused)
            except Exception:  # recorded next round; the other participants go on now
                log.exception("recording a notice to %s failed", pid)
                break
            counts["failed" if error else "delivered"] += 1
            if error and not abandoned:
                break  # the rest wait, in order, for this one
        return counts

    def _attempt(self, row: Any) -> tuple[str | None, bool]:
        """The error of an attempt (None: delivered), and whether the endpoint refused the
        notice itself (a 4xx other than "later")."""
        why = endpoint_problem(row.url, self.hosts)
        if why is not None:
            return f"endpoint refused: {why}"[:ERROR_LEN_MAX], False
        body = row.body.encode()
        headers = {
            "Content-Type": "application/json",
            "FSPIOP-Source": "scheme",
            "FSPIOP-Destination": row.participant_id,
            "X-Entrepot-Event": row.event,
            "X-Entrepot-Event-Id": str(row.id),
        }
        if self.key is not None:
            headers |= sign_callback(
                self.key,
                row.url,
                str(row.id),
                body,
                destination=row.participant_id,
                event=row.event,
            )
        try:
            status = self.send(row.url, body, headers)
        except Exception as exc:  # whatever one endpoint does, the others are still served
            return _printable(f"{type(exc).__name__}: {exc}")[:ERROR_LEN_MAX], False
        if 200 <= status < 300:
            return None, False
        return f"HTTP {status}", 400 <= status < 500 and status not in _RETRY_LATER

    def _record(self, row: Any, error: str | None, refused: bool = False) -> bool:
        """Record an attempt; whether the notice is abandoned now."""
        now = self.clock.now_ns()
        attempts = row.attempts + 1
        values: dict[str, Any] = {"attempts": attempts, "last_error": error}
        abandoned = error is not None and (refused or attempts >= ATTEMPTS_MAX)
        if error is None:
            values["delivered_at"] = now
        elif abandoned:
            values["abandoned_at"] = now
        else:
            values["next_attempt_at"] = now + min(2 ** (attempts - 1), BACKOFF_S_MAX) * NS_PER_S
        o = st.outbox.c
        record = sa.update(st.outbox).where(o.id == row.id).values(**values)
        if error is not None:
            # A failure counts only if no new endpoint was set while this attempt went to the
            # old one: its notices start again there, all their attempts before them.
            # Recorded over that reset, the old endpoint's count came back (one that had
            # failed 11 times was then abandoned unsent to the new one). A delivery is
            # recorded whatever happened to the row meanwhile.
            record = record.where(o.attempts == row.attempts)
        with self.engine.begin() as conn:
            if not conn.execute(record).rowcount:
                return False
        if abandoned:  # for the operator's alerting: the participant may never have heard
            log.warning(
                "notice %s (%s) to %s abandoned after %d attempt(s): %s",
                row.id,
                row.event,
                row.participant_id,
                attempts,
                error,
            )
        return abandoned

    def run(
        self,
        interval_s: float = 1.0,
        rounds: int | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        """Deliver until ``stop`` is set (or for ``rounds`` passes). Each participant's turn
        starts as soon as its oldest notice is due and no turn of its own is running
        (``threads`` at a time, the least recently served first), not in rounds: in rounds,
        every turn waited for the slowest endpoint's (an endpoint answering 200 just inside
        the 10 s deadline made every round last 10 s), so each other participant got at most
        a turn's notices a round: about 20 a second, its backlog growing and its payments
        expiring unheard (found by a review). A turn that delivered nothing and failed
        nothing (its notices could not be read or recorded) is not started again for
        ``interval_s``: started again at once, it sent one notice over and over. A pass that
        fails (the database busy or gone for a moment) is logged and the next one tried
        after ``interval_s``: the loop beside the API does not end on it."""
        stop = stop or threading.Event()  # never set: passes until ``rounds``
        running: dict[str, Future[dict[str, int]]] = {}
        served: dict[str, float] = {}  # when each participant's last turn started
        resting: dict[str, float] = {}  # participants not to start again before then
        with ThreadPoolExecutor(self.threads, "deliver") as pool:
            n = 0
            while (rounds is None or n < rounds) and not stop.is_set():
                n += 1
                now = time.monotonic()
                busy = False
                for pid in [pid for pid, turn in running.items() if turn.done()]:
                    worked = _worked(pid, running.pop(pid))
                    busy |= worked
                    if not worked:
                        resting[pid] = now + interval_s
                try:
                    ready = self._ready()
                except Exception:
                    log.exception("reading the notices due failed; trying again")
                    ready = []
                waiting = [
                    pid for pid in ready if pid not in running and resting.get(pid, 0.0) <= now
                ]
                waiting.sort(key=lambda pid: (served.get(pid, 0.0), pid))
                for pid in waiting[: self.threads - len(running)]:
                    resting.pop(pid, None)
                    served[pid] = now
                    running[pid] = pool.submit(self._turn, pid, TURN_LIMIT)
                    busy = True
                if running:  # until a turn ends (its participant may have more) or a while
                    wait(running.values(), timeout=interval_s, return_when=FIRST_COMPLETED)
                elif not busy:
                    stop.wait(interval_s)
            for pid, turn in running.items():  # stopping: the turns under way end first
                _worked(pid, turn)
