"""A long name (a nasab chain of twenty names, in Arabic script or Latin letters) is screened
with work in proportion to its length, and with the same answer as before."""

from __future__ import annotations

import random
from typing import Any

import pytest

from entrepot.risk import sanctions
from entrepot.risk.names import query_tokens
from entrepot.risk.sanctions import Screener, make_party, score_ceilings, score_name
from entrepot.risk.sanctions_eval import arabic_script_cases, build_cases

GIVEN = (
    ("محمد", "Muhammad"), ("عبد الله", "Abdullah"), ("أحمد", "Ahmad"), ("علي", "Ali"),
    ("حسن", "Hasan"), ("خالد", "Khalid"), ("عمر", "Umar"), ("يوسف", "Yusuf"),
    ("إبراهيم", "Ibrahim"), ("سعيد", "Said"), ("محمود", "Mahmud"), ("حسين", "Husayn"),
    ("عبد الرحمن", "Abd al-Rahman"), ("مصطفى", "Mustafa"), ("جابر", "Jabir"),
    ("ناصر", "Nasir"), ("سليمان", "Sulayman"), ("فهد", "Fahd"), ("طارق", "Tariq"),
    ("وليد", "Walid"), ("كريم", "Karim"), ("زياد", "Ziyad"),
)  # fmt: skip
NASAB_SCRIPT = " بن ".join(a for a, _ in GIVEN)  # 185 characters
NASAB_LATIN = " bin ".join(b for _, b in GIVEN)


class Counting:
    """``score_name`` counting the names it scores and the token pairs it compares."""

    def __init__(self) -> None:
        self.names = 0
        self.pairs = 0

    def __call__(self, q_toks: Any, q_weights: Any, name: Any, *args: Any) -> Any:
        self.names += 1
        self.pairs += len(q_toks) * len(name.toks)
        return score_name(q_toks, q_weights, name, *args)


@pytest.mark.parametrize("query", [NASAB_SCRIPT, NASAB_LATIN])
def test_a_long_name_is_not_aligned_with_names_it_cannot_match(
    screener: Screener, query: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A nasab chain of 22 names (43 tokens) was scored in full against every shortlisted
    name: 40,000 token alignments in Arabic script, half a second of CPU a screening. A
    listed name of a few tokens cannot reach a candidate's score against it (at most the
    share of the query's weight its heaviest tokens hold), so it is not aligned at all."""
    counting = Counting()
    monkeypatch.setattr(sanctions, "score_name", counting)
    result = screener.screen(make_party(query))
    assert result.decision == "clear"
    assert counting.pairs <= 20 * len(query_tokens(query))


def _queries(screener: Screener) -> list[str]:
    index = screener.index
    cases = build_cases(index, 60, 60, seed=3) + arabic_script_cases(index, 60, seed=3)
    rng = random.Random(5)
    chains = []
    for _ in range(10):
        picked = rng.sample(GIVEN, rng.randint(3, 12))
        chains.append(" بن ".join(a for a, _ in picked))
        chains.append(" bin ".join(b for _, b in picked))
    # listed names padded with a chain of names after them, and long listed names as written
    padded = [f"{c.query} {chains[i % len(chains)]}" for i, c in enumerate(cases[:40])]
    long_listed = [n.text for n in index.names if len(n.toks) >= 8][:40]
    return [c.query for c in cases] + chains + padded + long_listed


def test_leaving_out_the_names_that_cannot_match_changes_no_screening(
    screener: Screener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ceiling is exact: every screening is the one that scoring every shortlisted name
    gives (listed and unlisted names, in Latin letters and in Arabic script, short and long)."""
    queries = _queries(screener)
    pruned = [screener.screen(make_party(q)).to_dict() for q in queries]
    monkeypatch.setattr(sanctions, "score_ceilings", lambda w: [2.0] * (len(w) + 1))
    full = [screener.screen(make_party(q)).to_dict() for q in queries]
    assert pruned == full
    assert sum(r["decision"] != "clear" for r in full) >= 60  # the listed ones are there


def test_no_score_exceeds_its_ceiling(screener: Screener) -> None:
    index = screener.index
    rng = random.Random(11)
    queries = _queries(screener)
    for query in rng.sample(queries, 60):
        toks = query_tokens(query)
        weights = [index.weight(t) for t in toks]
        ceilings = score_ceilings(weights)
        for n in index.shortlist(toks)[:40]:
            name = index.name(n)
            match = score_name(toks, weights, name)
            assert match.score <= ceilings[min(len(name.toks), len(toks))], (query, name.text)
