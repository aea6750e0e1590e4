from __future__ import annotations

import dataclasses
import errno
import gc
import hashlib
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from entrepot.kernel.clock import FakeClock
from entrepot.risk.decisions import (
    GENESIS,
    Decision,
    JsonlSink,
    LogHead,
    explain_decision,
    get_decision,
    make_decision,
    verify_log,
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


def test_an_fsync_that_fails_fails_every_batch_it_was_to_cover(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two batches written, then one fsync for both fails: both appends raise (a later fsync's
    success would not prove their pages reached the disk); a batch after them is synced."""
    sink = JsonlSink(tmp_path)
    calls: list[int] = []
    both_written = threading.Barrier(2)

    def fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 1:
            raise OSError(errno.EIO, "I/O error")

    # The first append holds the fsync lock until the second has written.
    real_sync = JsonlSink._sync

    def sync(self: JsonlSink, fd: int, where: tuple[int, int], mine: int) -> None:
        both_written.wait()
        real_sync(self, fd, where, mine)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(JsonlSink, "_sync", sync)
    errors: list[BaseException] = []

    def one(n: int) -> None:
        try:
            sink.append(_sanctions(n))
        except OSError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(n,)) for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 2 and all(e.errno == errno.EIO for e in errors)
    assert len(calls) == 1  # the second was told by the first's failure, not by a retry
    monkeypatch.setattr(JsonlSink, "_sync", real_sync)
    sink.append(_sanctions(3))  # a later batch: its own fsync, which succeeds
    assert len(calls) == 2


def test_a_write_that_fails_half_way_leaves_the_next_batch_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    sink = JsonlSink(tmp_path)
    sink.append(_sanctions(1))
    real_write = os.write

    def half(fd: int, data: Any) -> int:
        real_write(fd, bytes(data)[:40])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half)
    with pytest.raises(OSError, match="No space"):
        sink.append(_sanctions(2))
    monkeypatch.setattr(os, "write", real_write)
    sink.append(_sanctions(3))
    assert [d.inputs["n"] for d in sink] == [1, 3]  # the fragment skipped, 3 whole
    assert "not a decision, skipped" in caplog.text


def test_a_batch_torn_by_a_crash_does_not_swallow_the_first_decision_after_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before = JsonlSink(tmp_path)
    before.append(_sanctions(1))
    with before.path.open("a") as handle:
        handle.write('{"decision_id": "torn')  # the process died mid-write
    before.close()
    after = JsonlSink(tmp_path)  # the restarted process
    after.append(_sanctions(2))
    assert [d.inputs["n"] for d in after] == [1, 2]  # 2 was acknowledged: it must read back
    assert "line 2: not a decision, skipped" in caplog.text  # the torn fragment, and only it


def test_a_batch_torn_by_another_worker_does_not_swallow_the_next_decision(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two server workers append to one log; one dies mid-write. The other, whose log has
    been open all along, must still start its next batch on a line of its own: glued to the
    fragment, its decision was acknowledged (written, fsynced) and then never read back."""
    worker_a, worker_b = JsonlSink(tmp_path), JsonlSink(tmp_path)
    worker_a.append(_sanctions(1))
    worker_b.append(_sanctions(2))  # B's log is open from here on
    with worker_a.path.open("a") as handle:
        handle.write('{"decision_id": "torn')  # A died mid-write
    worker_b.append(_sanctions(3))
    kept = worker_b.path.read_text(encoding="utf-8")
    assert [d.inputs["n"] for d in worker_b] == [1, 2, 3]
    assert "not a decision, skipped" in caplog.text  # the fragment, and only it
    assert kept.endswith("\n")


def test_a_line_still_being_written_is_left_for_later(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink = JsonlSink(tmp_path)
    sink.append(_sanctions(1))
    with sink.path.open("a") as handle:
        handle.write('{"decision_id": "half')  # another process, mid-write
    assert [d.inputs["n"] for d in sink] == [1]
    assert "skipped" not in caplog.text  # not a fragment: the rest of a line to come


def test_a_forked_child_can_append_though_a_thread_held_the_lock_at_the_fork(
    tmp_path: Path,
) -> None:
    sink = JsonlSink(tmp_path)
    sink._sync_lock.acquire()  # as if another thread were in the middle of an fsync
    try:
        pid = os.fork()
        if pid == 0:  # the child: append, or be killed by the alarm
            signal.alarm(5)
            try:
                sink.append(_sanctions(2))
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
    finally:
        sink._sync_lock.release()
    assert os.waitstatus_to_exitcode(status) == 0
    assert [d.inputs["n"] for d in sink] == [2]


def test_a_batch_in_a_log_moved_away_is_synced_in_that_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writes to the log; the log is moved away; B writes to the new one and syncs it; then
    A syncs: B's fsync did not cover A's file, so A's own does."""
    sink = JsonlSink(tmp_path)
    synced_files: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced_files.append(os.fstat(fd).st_ino)
        real_fsync(fd)

    real_sync = JsonlSink._sync
    b_done = threading.Event()

    def sync(self: JsonlSink, fd: int, where: tuple[int, int], mine: int) -> None:
        if mine == 1:  # A: wait until the log has moved and B is durable
            b_done.wait(5)
        real_sync(self, fd, where, mine)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(JsonlSink, "_sync", sync)
    a = threading.Thread(target=sink.append, args=(_sanctions(1),))
    a.start()
    while not sink.path.exists() or not sink.path.read_bytes().endswith(b"\n"):
        time.sleep(0.001)
    old_inode = sink.path.stat().st_ino
    sink.path.rename(tmp_path / "decisions.1.jsonl")
    sink.append(_sanctions(2))
    b_done.set()
    a.join()
    assert old_inode in synced_files
    assert synced_files[-1] == old_inode  # A's, after B's


def _open_on(path: Path) -> int:
    """How many of this process's descriptors are open on ``path``."""
    fds = Path("/proc/self/fd")
    return sum(1 for fd in fds.iterdir() if os.path.realpath(fd) == str(path.resolve()))


def test_the_log_stays_open_once_and_is_let_go(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path)
    for n in range(3):
        sink.append(_sanctions(n))
    assert _open_on(sink.path) == 1  # one descriptor, kept: no duplicate left behind
    sink.close()
    assert _open_on(sink.path) == 0
    sink.append(_sanctions(3))
    assert [d.inputs["n"] for d in sink] == [0, 1, 2, 3]
    path = sink.path
    del sink
    gc.collect()
    assert _open_on(path) == 0  # a sink dropped lets its descriptor go


def test_personal_identifiers_are_digested_under_the_logs_own_key(tmp_path: Path) -> None:
    """A phone number's plain SHA-256 is read back by hashing every number; under the log's
    key it is not, yet every writer of one log digests one identifier alike."""
    import hashlib
    import stat

    from entrepot.risk.decisions import PSEUDONYM_KEY_FILE, MemorySink, Pseudonyms

    folder = tmp_path / "decisions"
    one, other = JsonlSink(folder), JsonlSink(folder)  # two workers of one server
    phone = "mtn-rw/MSISDN:+250788000001"
    digest = one.pseudonyms.digest(phone)
    assert digest == other.pseudonyms.digest(phone) == Pseudonyms.at(folder).digest(phone)
    assert digest != hashlib.sha256(phone.encode()).hexdigest()
    key = folder / PSEUDONYM_KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_bytes()) == 32
    assert JsonlSink(tmp_path / "elsewhere").pseudonyms.digest(phone) != digest
    assert MemorySink().pseudonyms.digest(phone) != MemorySink().pseudonyms.digest(phone)
    assert [p.name for p in folder.iterdir()] == [PSEUDONYM_KEY_FILE]  # no temporary left


def test_writers_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    from entrepot.risk.decisions import Pseudonyms

    folder = tmp_path / "decisions"
    start = threading.Barrier(8)
    digests: list[str] = []

    def make() -> None:
        start.wait()
        digests.append(Pseudonyms.at(folder).digest("Naser Maleki"))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(digests) == 8 and len(set(digests)) == 1


def test_a_screening_logs_the_name_as_a_keyed_digest_only(tmp_path: Path) -> None:
    from entrepot.config import shared_data_dir
    from entrepot.risk.sanctions import Screener, make_party

    lists = shared_data_dir() / "sanctions"
    if not (lists / "ofac_sdn.csv").is_file():
        pytest.skip("no OFAC snapshot")
    sink = JsonlSink(tmp_path / "decisions")
    Screener.from_directory(lists, sink=sink).screen(make_party("Jennifer Walker"))
    (logged,) = list(sink)
    assert logged.inputs["name_digest"] == sink.pseudonyms.digest("jennifer walker")
    assert "walker" not in sink.path.read_text().lower()


def test_finding_one_decision_parses_only_the_lines_that_hold_its_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``GET /v1/risk/decisions/{id}`` and ``risk explain`` parsed every line of the log as
    JSON to find one decision (a log of every screening of every payment: its whole length
    a request). A line that does not hold the id as text cannot be its decision and is no
    longer parsed: a fragment elsewhere is not even looked at. One whose reasons name the
    id (a review naming the decision it overturns) is parsed and passed over."""
    sink = JsonlSink(tmp_path)
    wanted, *others = _sanctions(1) + _sanctions(2)
    sink.append([wanted])
    with sink.path.open("a") as handle:
        handle.write("not json at all\n")  # a fragment of a failed write, long ago
    naming = make_decision(
        "credit", model_version="m", outcome="upheld", score=None,
        reasons=[f"on review of {wanted.decision_id}"], inputs={},
    )  # fmt: skip
    sink.append([naming, *others])
    caplog.clear()
    assert get_decision(sink, wanted.decision_id.upper()) == wanted
    assert get_decision(sink, naming.decision_id) == naming
    assert "not a decision" not in caplog.text
    with pytest.raises(UnknownDecision):
        get_decision(sink, "0" * 32)
    assert [d.decision_id for d in sink] == [wanted.decision_id, naming.decision_id] + [
        d.decision_id for d in others
    ]
    assert "line 2: not a decision, skipped" in caplog.text  # reading it all still says so


# ------------------------------------------------------------------ the chain
def _lines(sink: JsonlSink) -> list[bytes]:
    return sink.path.read_bytes().split(b"\n")[:-1]


def _hash(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def test_each_line_names_the_hash_of_the_line_before_it(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path)
    assert sink.head() == LogHead(0, GENESIS)  # no log yet
    for n in range(3):
        sink.append(_sanctions(n) + _sanctions(n + 10))  # batches of two
    lines = _lines(sink)
    assert [json.loads(line)["prev"] for line in lines] == [GENESIS] + [
        _hash(line) for line in lines[:-1]
    ]
    check = verify_log(sink.path)
    assert check.intact and check.lines == 6 and check.unchained == 0 and check.torn == ()
    assert check.head == sink.head() == LogHead(sink.path.stat().st_size, _hash(lines[-1]))
    assert [d.inputs["n"] for d in sink] == [0, 10, 1, 11, 2, 12]  # read back as before


@pytest.mark.parametrize("tamper", ["change", "remove", "insert", "reorder"])
def test_a_line_changed_removed_inserted_or_moved_breaks_the_chain_after_it(
    tmp_path: Path, tamper: str
) -> None:
    sink = JsonlSink(tmp_path)
    for n in range(4):
        sink.append(_sanctions(n))
    lines = _lines(sink)
    if tamper == "change":  # a decision's outcome rewritten
        lines[1] = lines[1].replace(b'"outcome": "clear"', b'"outcome": "match"')
    elif tamper == "remove":
        del lines[1]
    elif tamper == "insert":
        lines.insert(2, lines[1])
    else:
        lines[1], lines[2] = lines[2], lines[1]
    sink.path.write_bytes(b"\n".join(lines) + b"\n")
    check = verify_log(sink.path)
    assert not check.intact
    # the first line whose link no longer holds: after the change, at the gap, the copy, the swap
    assert check.broken_at == {"change": 3, "remove": 2, "insert": 3, "reorder": 2}[tamper]
    assert "a line before it was changed, removed or inserted" in (check.problem or "")


def test_a_rewrite_that_recomputes_every_hash_is_caught_by_an_anchor(tmp_path: Path) -> None:
    """The chain alone shows a change only to someone who kept nothing: whoever rewrites a
    line can recompute every hash after it. A head recorded earlier (by a consortium member,
    GET /v1/risk/decisions/head) no longer holds."""
    sink = JsonlSink(tmp_path)
    for n in range(3):
        sink.append(_sanctions(n))
    anchor = sink.head()
    sink.append(_sanctions(3))
    later = sink.head()
    assert verify_log(sink.path, [anchor, later]).intact
    records = [json.loads(line) for line in _lines(sink)]
    records[0]["outcome"] = "match"
    prev, out = GENESIS, []
    for record in records:  # the forger re-chains the whole log
        record["prev"] = prev
        line = json.dumps(record, sort_keys=True).encode()
        prev = _hash(line)
        out.append(line)
    sink.path.write_bytes(b"\n".join(out) + b"\n")
    assert verify_log(sink.path).intact  # the chain holds again...
    check = verify_log(sink.path, [anchor])
    assert not check.intact and check.broken_at == 3  # ...the anchor does not
    assert "not the anchor's" in (check.problem or "")


def test_lines_removed_from_the_end_are_caught_by_an_anchor(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path)
    for n in range(3):
        sink.append(_sanctions(n))
    anchor = sink.head()
    lines = _lines(sink)
    sink.path.write_bytes(b"\n".join(lines[:2]) + b"\n")
    assert verify_log(sink.path).intact  # what is left is a chain
    check = verify_log(sink.path, [anchor])
    assert not check.intact and "lies past the log's end" in (check.problem or "")
    sink.path.write_bytes(b"\n".join(lines[:2]) + b"\n" + lines[2][:-5] + b"XXXXX\n")
    check = verify_log(sink.path, [anchor])  # the same length, another last line
    assert not check.intact and check.broken_at == 3


def test_an_anchor_inside_a_line_is_refused(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path)
    sink.append(_sanctions(1))
    head = sink.head()
    check = verify_log(sink.path, [LogHead(head.offset - 1, head.hash)])
    assert not check.intact and "falls inside line 1" in (check.problem or "")
    assert verify_log(sink.path, [LogHead(0, GENESIS), head]).intact


def test_workers_appending_together_keep_one_chain(tmp_path: Path) -> None:
    """A server's workers share the log: each sink (its own descriptor) appends under the
    file lock, reading the last line another wrote (its remembered head is stale)."""
    a, b = JsonlSink(tmp_path), JsonlSink(tmp_path)
    threads = [
        threading.Thread(
            target=lambda s=s, k=k: [s.append(_sanctions(k * 100 + i)) for i in range(40)]
        )
        for k, s in enumerate((a, b, a, b))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check = verify_log(a.path)
    assert check.intact and check.lines == 160


def test_processes_appending_together_keep_one_chain(tmp_path: Path) -> None:
    JsonlSink(tmp_path).append(_sanctions(0))
    pids = []
    for k in range(3):
        pid = os.fork()
        if pid == 0:  # a worker process of its own
            code = 1
            try:
                sink = JsonlSink(tmp_path)
                for i in range(50):
                    sink.append(_sanctions(k * 1000 + i) + _sanctions(-i))
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    for pid in pids:
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    check = verify_log(tmp_path / "decisions.jsonl")
    assert check.intact and check.lines == 301


def test_a_fragment_is_a_link_of_the_chain(tmp_path: Path) -> None:
    before = JsonlSink(tmp_path)
    before.append(_sanctions(1))
    with before.path.open("a") as handle:
        handle.write('{"decision_id": "torn')  # the process died mid-write
    assert before.head() == LogHead(len(_lines(before)[0]) + 1, _hash(_lines(before)[0]))
    before.close()
    after = JsonlSink(tmp_path)
    after.append(_sanctions(2))
    lines = _lines(after)
    assert json.loads(lines[2])["prev"] == _hash(b'{"decision_id": "torn')
    check = verify_log(after.path)
    assert check.intact and check.torn == (2,) and check.lines == 3


def test_a_remembered_head_is_not_trusted_after_a_failed_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = JsonlSink(tmp_path)
    sink.append(_sanctions(1))
    real_write = os.write

    def whole_line_then_fail(fd: int, data: Any) -> int:
        # the first line of the batch written whole, then the disk fills
        real_write(fd, bytes(data)[: bytes(data).index(b"\n") + 1])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", whole_line_then_fail)
    with pytest.raises(OSError, match="No space"):
        sink.append(_sanctions(2) + _sanctions(3))
    monkeypatch.setattr(os, "write", real_write)
    sink.append(_sanctions(4))
    assert [d.inputs["n"] for d in sink] == [1, 2, 4]
    assert verify_log(sink.path).intact


def test_a_log_written_before_the_chain_is_chained_from_its_end(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    old = [json.dumps(d.to_dict(), sort_keys=True) for d in _sanctions(1) + _sanctions(2)]
    path.write_text("\n".join(old) + "\n")
    sink = JsonlSink(tmp_path)
    sink.append(_sanctions(3))
    assert json.loads(_lines(sink)[2])["prev"] == _hash(old[1].encode())
    check = verify_log(path)
    assert check.intact and check.unchained == 2
    with path.open("a") as handle:  # a decision added by hand, without a link
        handle.write(old[0] + "\n")
    check = verify_log(path)
    assert not check.intact and check.broken_at == 4
    assert "not chained" in (check.problem or "")


@pytest.mark.parametrize(
    "text", ["12", "x:" + "a" * 64, "12:" + "a" * 63, "12:" + "g" * 64, "-1:" + "a" * 64]
)
def test_an_anchor_is_offset_colon_hash(text: str) -> None:
    with pytest.raises(ValueError, match="an anchor is OFFSET:HASH"):
        LogHead.parse(text)
    assert LogHead.parse(f"12:{'AB' * 32}") == LogHead(12, "ab" * 32)


def test_a_long_log_reports_its_progress(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path)
    sink.append([d for n in range(10_001) for d in _sanctions(n)])
    seen: list[tuple[int, int]] = []
    check = verify_log(sink.path, progress=lambda done, total: seen.append((done, total)))
    size = sink.path.stat().st_size
    assert check.intact and check.lines == 10_001
    assert len(seen) == 1 and 0 < seen[0][0] < size and seen[0][1] == size
