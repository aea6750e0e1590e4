"""One watch-list index per process and list version: the payments screening hook and the
risk API both screen against it instead of building a copy each (about 45 MB and seconds)."""

from __future__ import annotations

import os
from pathlib import Path

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
