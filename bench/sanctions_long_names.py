"""Sanctions screening of long names against the OFAC lists: prints one JSON object.

    .venv/bin/python bench/sanctions_long_names.py [--names 20] [--length 200] [--seed 7]
                                                   [--lists DIR] [--baseline-src DIR]

A long name in Arabic script (a nasab chain, "محمد بن عبد الله بن أحمد ...", or words of random
letters) cost about half a second of CPU to screen, against a few milliseconds for a short
one: a caller of the payment path or of the screening routes chose how much CPU the server
spent. Each set is ``--names`` names of about ``--length`` characters (or short names, the
comparison), each screened once by a screener that remembers nothing, the similarity caches
emptied before each name (a caller varies the names it sends, so no cache helps it). Reports,
per set, the CPU milliseconds per name (``thread_time``: the machine's other load is not
counted; median and max), the names scored in full (``score_name`` calls) and the token pairs
those compared (query tokens times listed tokens), and the decisions. ``--baseline-src DIR``
(another checkout's ``src``, e.g. a ``git worktree`` of the commit before a change) runs the
same names with that code in a subprocess in the same run, so the JSON holds both and the
ratios; the machine's noise moves both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

#: Given names in Arabic script and in Latin letters, side by side (a nasab chain in either).
GIVEN = (
    ("محمد", "Muhammad"), ("أحمد", "Ahmad"), ("علي", "Ali"), ("حسن", "Hasan"),
    ("خالد", "Khalid"), ("عمر", "Umar"), ("يوسف", "Yusuf"), ("إبراهيم", "Ibrahim"),
    ("سعيد", "Said"), ("محمود", "Mahmud"), ("حسين", "Husayn"), ("مصطفى", "Mustafa"),
    ("جابر", "Jabir"), ("ناصر", "Nasir"), ("سليمان", "Sulayman"), ("فهد", "Fahd"),
    ("طارق", "Tariq"), ("وليد", "Walid"), ("كريم", "Karim"), ("زياد", "Ziyad"),
    ("عبد الله", "Abdullah"), ("عبد الرحمن", "Abd al-Rahman"), ("صالح", "Salih"),
    ("حمزة", "Hamza"), ("عثمان", "Uthman"), ("منصور", "Mansur"), ("رشيد", "Rashid"),
    ("فيصل", "Faisal"), ("ماجد", "Majid"), ("سلمان", "Salman"), ("نبيل", "Nabil"),
    ("جمال", "Jamal"), ("أنور", "Anwar"), ("هشام", "Hisham"), ("عادل", "Adil"),
)  # fmt: skip
ARABIC_LETTERS = "ابتثجحخدذرزسشصضطظعغفقكلمنهوي"
LATIN_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _nasab(rng: random.Random, length: int) -> tuple[str, str]:
    """A chain "X bin Y bin Z ..." of about ``length`` characters, in the script and in Latin."""
    ar: list[str] = []
    la: list[str] = []
    while len(" بن ".join(ar)) < length:
        a, b = rng.choice(GIVEN)
        ar.append(a)
        la.append(b)
    return " بن ".join(ar), " bin ".join(la)


def _random_words(rng: random.Random, length: int, letters: str) -> str:
    words: list[str] = []
    while len(" ".join(words)) < length:
        words.append("".join(rng.choice(letters) for _ in range(rng.randint(3, 7))))
    return " ".join(words)


def name_sets(count: int, length: int, seed: int) -> dict[str, list[str]]:
    rng = random.Random(seed)
    chains = [_nasab(rng, length) for _ in range(count)]
    short = [tuple(zip(*rng.sample(GIVEN, 2), strict=True)) for _ in range(count)]
    return {
        "arabic_nasab_long": [a for a, _ in chains],
        "latin_nasab_long": [b for _, b in chains],
        "arabic_random_long": [_random_words(rng, length, ARABIC_LETTERS) for _ in range(count)],
        "latin_random_long": [_random_words(rng, length, LATIN_LETTERS) for _ in range(count)],
        "arabic_short": [" ".join(a) for a, _ in short],
        "latin_short": [" ".join(b) for _, b in short],
    }


def measure(count: int, length: int, seed: int, lists: str) -> dict[str, Any]:
    from entrepot.risk import names as names_mod
    from entrepot.risk import sanctions as s

    screener = s.Screener.from_directory(lists, remember=0)
    screener.screen(s.make_party("Ali Hassan"))  # build what is built on first use
    kept = getattr(names_mod, "pinyin_syllables", None)  # built once, 0.15 s: not per name
    caches = [
        f for mod in (s, names_mod) for f in vars(mod).values()
        if callable(getattr(f, "cache_clear", None)) and f is not kept
        and getattr(f, "__module__", "") == mod.__name__
    ]  # fmt: skip
    calls = Counter()
    score_name = s.score_name

    def counting(q_toks: Any, q_weights: Any, name: Any, *args: Any) -> Any:
        calls["names"] += 1
        calls["pairs"] += len(q_toks) * len(name.toks)
        return score_name(q_toks, q_weights, name, *args)

    s.score_name = counting
    out: dict[str, Any] = {}
    for label, names in name_sets(count, length, seed).items():
        cpu: list[float] = []
        scored: list[int] = []
        pairs: list[int] = []
        decisions: Counter[str] = Counter()
        for name in names:
            for f in caches:
                f.cache_clear()
            getattr(screener.index, "_abjad_weights", {}).clear()
            calls.clear()
            t0 = time.thread_time()
            result = screener.screen(s.make_party(name))
            cpu.append((time.thread_time() - t0) * 1000)
            scored.append(calls["names"])
            pairs.append(calls["pairs"])
            decisions[result.decision] += 1
        out[label] = {
            "names": len(names),
            "chars_mean": round(statistics.mean(len(n) for n in names), 1),
            "cpu_ms_median": round(statistics.median(cpu), 2),
            "cpu_ms_max": round(max(cpu), 2),
            "names_scored_median": statistics.median(scored),
            "token_pairs_median": statistics.median(pairs),
            "token_pairs_max": max(pairs),
            "decisions": dict(decisions),
        }
    s.score_name = score_name
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", type=int, default=20)
    parser.add_argument("--length", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--lists", default=None, help="OFAC CSV folder (default: shared data)")
    parser.add_argument("--baseline-src", default=None, help="another checkout's src directory")
    parser.add_argument("--only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    lists = args.lists
    if lists is None:
        from entrepot.config import shared_data_dir

        lists = str(shared_data_dir() / "sanctions")
    result: dict[str, Any] = {"names": args.names, "length": args.length, "seed": args.seed}
    result["this"] = measure(args.names, args.length, args.seed, lists)
    if args.baseline_src and not args.only:
        env = {**os.environ, "PYTHONPATH": str(Path(args.baseline_src).resolve())}
        argv_b = [
            sys.executable, __file__, "--only", "--names", str(args.names),
            "--length", str(args.length), "--seed", str(args.seed), "--lists", lists,
        ]  # fmt: skip
        out = subprocess.run(argv_b, env=env, capture_output=True, text=True, check=True)
        result["baseline"] = json.loads(out.stdout)["this"]
        result["cpu_ms_median_this_vs_baseline"] = {
            label: round(
                result["this"][label]["cpu_ms_median"]
                / max(result["baseline"][label]["cpu_ms_median"], 0.01),
                3,
            )
            for label in result["this"]
        }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
