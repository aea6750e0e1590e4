"""Name normalisation for screening: transliteration, diacritics, spelling folds, blocking keys.

- ``tokens``: Unidecode (Cyrillic, Arabic, Greek, accents -> ASCII), lower case, apostrophes
  dropped (OFAC writes the Arabic ayn as ``'``), everything else not a letter or digit splits.
  Titles (dr, sheikh, ...) are kept (Shaykh is also a family name) but weigh little.
- ``fold``: spelling variants of one sound made equal (kh/h, ou/u, ph/f, w/v, y/i, c/k/q, z/s,
  doubled letters), so Mohammed/Muhammad or Yousef/Yusuf differ only in vowels.
- ``skeleton``: the fold without vowels after the first letter: mhmd for every Muhammad.
- ``deletion_keys``: the fold and its one-letter deletions (SymSpell): two tokens one typo apart
  share a key, so blocking survives a typo anywhere, including the first letter.
"""

from __future__ import annotations

import re
from functools import lru_cache

from unidecode import unidecode

TITLES = frozenset({
    "dr", "mr", "mrs", "ms", "miss", "sir", "sheikh", "sheik", "shaykh", "haji", "hajji",
    "general", "gen", "colonel", "col", "major", "maj", "lt", "capt", "captain", "mullah",
    "maulana", "mawlawi", "prof", "engineer", "eng",
})  # fmt: skip
#: Legal forms: they say what kind of body a name is, not which one.
LEGAL_FORMS = frozenset({
    "ltd", "limited", "llc", "inc", "incorporated", "co", "corp", "corporation", "company",
    "sa", "s", "a", "gmbh", "ag", "plc", "jsc", "ojsc", "cjsc", "pjsc", "ooo", "zao", "oao",
    "fze", "fzc", "fzco", "fz", "lda", "srl", "bv", "nv", "sarl", "pte", "pvt", "de", "cv",
    "sas", "spa", "sl", "llp", "lp", "the", "of", "and", "group", "holding", "holdings",
})  # fmt: skip
_FOLDS = (
    ("sch", "sh"), ("tch", "ch"), ("dzh", "j"), ("zh", "j"), ("dj", "j"), ("kh", "h"),
    ("gh", "g"), ("ph", "f"), ("th", "t"), ("ck", "k"), ("ou", "u"), ("oo", "u"), ("ee", "i"),
    ("ei", "i"), ("ie", "i"), ("q", "k"), ("c", "k"), ("w", "v"), ("y", "i"), ("j", "i"),
    ("z", "s"), ("x", "ks"), ("e", "a"), ("o", "u"),
)  # fmt: skip
_SPLIT = re.compile(r"[^a-z0-9]+")
_VOWELS = frozenset("aeiou")


def normalise(text: str) -> str:
    ascii_text = unidecode(text).lower()
    ascii_text = re.sub(r"['`´’‘]", "", ascii_text)
    return " ".join(t for t in _SPLIT.split(ascii_text) if t)


def tokens(text: str) -> list[str]:
    return normalise(text).split()


@lru_cache(maxsize=200_000)
def fold(token: str) -> str:
    out = token
    for old, new in _FOLDS:
        out = out.replace(old, new)
    collapsed: list[str] = []
    for ch in out:
        if not collapsed or collapsed[-1] != ch:
            collapsed.append(ch)
    return "".join(collapsed)


@lru_cache(maxsize=200_000)
def skeleton(token: str) -> str:
    f = fold(token)
    tail = [ch for ch in f[1:] if ch not in _VOWELS and ch != "h"]
    return f[:1] + "".join(tail)


def deletion_keys(token: str) -> set[str]:
    f = fold(token)
    keys = {f}
    if len(f) >= 4:
        keys.update(f[:i] + f[i + 1 :] for i in range(len(f)))
    return keys
