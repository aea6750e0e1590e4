"""One watch-list index per process and list version: the payments screening hook and the
risk API both screen against it instead of building a copy each (about 45 MB and seconds)."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import pytest

from entrepot.risk import sanctions
from entrepot.risk.sanctions import Screener, make_party, watch_list_index


def _lists(folder: Path, names: list[str]) -> Path:
    folder.mkdir(exist_ok=True)
    rows = [
        f'{i},"{name}","individual","SDGT",-0-,-0-,-0-,-0-,-0-,-0-,-0-,-0-'
        for i, name in enumerate(names, 1)
    ]
    (folder / "ofac_sdn.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (folder / "ofac_alt.csv").write_text("", encoding="utf-8")
    (folder / "ofac_add.csv").write_text("", encoding="utf-8")
    return folder


def test_screeners_of_one_list_share_its_index(tmp_path: Path) -> None:
    lists = _lists(tmp_path / "lists", ["Ivan Petrovich SIDOROV", "ACME SHIPPING LLC"])
    a = Screener.from_directory(lists)
    b = Screener.from_directory(str(lists) + "/")  # the same folder, spelt otherwise
    assert a.index is b.index is watch_list_index(lists)
    assert a.screen(make_party("Ivan Petrovich Sidorov")).candidates


def test_a_changed_list_is_indexed_again(tmp_path: Path) -> None:
    lists = _lists(tmp_path / "lists", ["Ivan Petrovich SIDOROV"])
    first = watch_list_index(lists)
    _lists(lists, ["Ivan Petrovich SIDOROV", "Olga Nikolaevna KUZNETSOVA"])
    stat = (lists / "ofac_sdn.csv").stat()
    os.utime(lists / "ofac_sdn.csv", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    second = watch_list_index(lists)
    assert second is not first
    assert second.version != first.version
    assert len(second.entries) == 2
    assert Screener.from_directory(lists).screen(make_party("Olga Kuznetsova")).candidates


def _touch(path: Path, seconds: int = 1) -> None:
    """Move a file's modification time on (a rewrite within the clock's tick may keep it)."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + seconds * 10**9))


def test_a_screener_follows_its_folder_once_the_new_lists_have_settled(tmp_path: Path) -> None:
    """A new OFAC publication was screened against only after a restart of every process."""
    lists = _lists(tmp_path / "lists", ["Ivan Petrovich SIDOROV"])
    screener = Screener.from_directory(lists, refresh_s=3600)
    before = screener.index
    assert screener.screen(make_party("Olga Nikolaevna Kuznetsova")).decision == "clear"
    assert not screener.refresh(wait=True)  # nothing changed
    _lists(lists, ["Ivan Petrovich SIDOROV", "Olga Nikolaevna KUZNETSOVA"])
    _touch(lists / "ofac_sdn.csv")
    assert not screener.refresh(wait=True)  # changed: maybe a copy half done, look again
    assert screener.index is before
    assert screener.refresh(wait=True)  # unchanged since: loaded and swapped in
    assert screener.index is not before and screener.index.version != before.version
    found = screener.screen(make_party("Olga Nikolaevna Kuznetsova"))
    assert found.decision == "review" and found.list_version == screener.index.version
    assert not screener.refresh(wait=True)


def test_lists_that_do_not_load_leave_the_screener_on_the_good_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lists = _lists(tmp_path / "lists", ["Ivan Petrovich SIDOROV"])
    screener = Screener.from_directory(lists, refresh_s=3600)
    good = screener.index
    (lists / "ofac_sdn.csv").write_text("", encoding="utf-8")  # an empty download
    _touch(lists / "ofac_sdn.csv")
    screener.refresh(wait=True)
    with caplog.at_level(logging.ERROR, logger="entrepot.risk.sanctions"):
        assert screener.refresh(wait=True)  # tried
    assert screener.index is good
    assert "do not load" in caplog.text and good.version in caplog.text
    assert not screener.refresh(wait=True)  # not tried again until they change
    assert screener.screen(make_party("Ivan Petrovich Sidorov")).decision == "review"


def test_screenings_look_at_the_folder_by_themselves_every_period(tmp_path: Path) -> None:
    lists = _lists(tmp_path / "lists", ["Ivan Petrovich SIDOROV"])
    screener = Screener.from_directory(lists, refresh_s=0)
    before = screener.index
    _lists(lists, ["Ivan Petrovich SIDOROV", "Olga Nikolaevna KUZNETSOVA"])
    _touch(lists / "ofac_sdn.csv")
    party = make_party("Olga Nikolaevna Kuznetsova")
    for _ in range(200):  # each screening looks; the second look starts the reload thread
        if screener.screen(party).decision == "review":
            break
        time.sleep(0.05)
    assert screener.index is not before


class _CountingLock:
    """A lock that counts the threads that came to take it (to line them up in a test)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.came = 0

    def __enter__(self) -> None:
        self.came += 1
        self.lock.acquire()

    def __exit__(self, *_: object) -> None:
        self.lock.release()


def test_screenings_at_the_same_moment_look_once_not_twice(tmp_path: Path) -> None:
    """Two screenings that found the period over together each looked at the folder, one
    just after the other: the second look saw the change 'settled' and loaded files that
    might still be half copied."""
    lists = _lists(tmp_path / "lists", ["Ivan Petrovich SIDOROV"])
    screener = Screener.from_directory(lists, refresh_s=3600)
    before = screener.index
    _lists(lists, ["Ivan Petrovich SIDOROV", "Olga Nikolaevna KUZNETSOVA"])
    _touch(lists / "ofac_sdn.csv")
    gate = _CountingLock()
    screener._refresh_lock = gate  # type: ignore[assignment]
    screener._next_look = 0.0  # the period is over
    party = make_party("Olga Nikolaevna Kuznetsova")
    with gate.lock:
        threads = [threading.Thread(target=screener.screen, args=(party,)) for _ in range(2)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while gate.came < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    for t in threads:
        t.join(10)
    assert gate.came >= 2
    assert screener.index is before  # one look: the change is seen, not yet trusted
    assert screener.refresh(wait=True)  # the next look, a period on, loads it
    assert screener.index is not before


def test_a_reload_thread_that_cannot_start_neither_fails_the_screening_nor_stops_reloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A process out of threads raised from Thread.start into the payment being screened, and
    left the screener 'reloading' for good: it never looked at its lists again."""
    lists = _lists(tmp_path / "lists", ["Ivan Petrovich SIDOROV"])
    screener = Screener.from_directory(lists, refresh_s=0)
    before = screener.index
    _lists(lists, ["Ivan Petrovich SIDOROV", "Olga Nikolaevna KUZNETSOVA"])
    _touch(lists / "ofac_sdn.csv")
    party = make_party("Ivan Petrovich Sidorov")
    assert screener.screen(party).decision == "review"  # the first look: changed

    def cannot(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    with monkeypatch.context() as patched, caplog.at_level(logging.ERROR):
        patched.setattr(threading.Thread, "start", cannot)
        found = screener.screen(party)  # the second look: the reload cannot start
    assert found.decision == "review" and found.list_version == before.version
    assert "can't start new thread" in caplog.text
    assert screener.refresh(wait=True)  # tried again, and loaded
    assert screener.index is not before


def test_lists_that_change_while_the_first_index_is_built_are_loaded_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The screener noted what its lists looked like after building its index: a copy that
    finished during the build was noted as loaded though the index held the old lists, and
    never loaded until the files changed again."""
    lists = _lists(tmp_path / "lists", ["Ivan Petrovich SIDOROV"])
    real = sanctions.watch_list_index

    def copy_lands_meanwhile(directory: Path | str) -> sanctions.WatchListIndex:
        index = real(directory)
        _lists(lists, ["Ivan Petrovich SIDOROV", "Olga Nikolaevna KUZNETSOVA"])
        _touch(lists / "ofac_sdn.csv")
        return index

    with monkeypatch.context() as patched:
        patched.setattr(sanctions, "watch_list_index", copy_lands_meanwhile)
        screener = Screener.from_directory(lists, refresh_s=3600)
    before = screener.index
    assert len(before.entries) == 1
    screener.refresh(wait=True)  # changed since the index was built: settle
    assert screener.refresh(wait=True)
    assert len(screener.index.entries) == 2
