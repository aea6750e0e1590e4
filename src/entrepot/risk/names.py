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
from collections.abc import Sequence
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


#: Two or more single letters each followed by a full stop (the last one's optional):
#: "U.K.", "B.V", "S. A.", "J.R.R."
_DOTTED = re.compile(r"(?<![^\W\d_])(?:[^\W\d_]\.\s?)+[^\W\d_](?![^\W\d_])\.?")


def abbreviations_joined(text: str) -> str | None:
    """``text`` with each dotted abbreviation written as one word ("CUBANACAN U.K. LIMITED"
    as "CUBANACAN UK LIMITED"), None if it has none. ``tokens`` splits "U.K." into two
    one-letter tokens, which the usual spelling "UK" does not match: a listed name is indexed
    both ways, so a query written either way (or "U K") finds it."""
    joined = _DOTTED.sub(lambda m: "".join(ch for ch in m.group(0) if ch.isalpha()), text)
    return None if joined == text else joined


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


# --------------------------------------------------------------------------- particles
#: Arabic name particles, written apart or joined to the name they belong to: Abu Hafs /
#: Abuhafs, al-Masri / Almasri, bin Laden / Binladen, Abd al-Rahman / Abdul Rahman /
#: Abdulrahman / Abdel Rahman. Each maps to the prefix it takes when joined.
PARTICLES = {
    "abu": "abu", "abou": "abu", "abo": "abu", "bou": "abu",
    "al": "al", "el": "al", "ul": "al",
    "bin": "bin", "ibn": "bin", "ben": "bin", "bint": "bint",
    "abd": "abd", "abdul": "abdal", "abdel": "abdal", "abdal": "abdal", "abdol": "abdal",
    "abdil": "abdal",
}  # fmt: skip
#: The article assimilated to a sun letter (ar-Rashid, ash-Shami, ad-Din, ud-Din), a particle
#: only before a name that starts with the letter it doubles.
_SUN_ARTICLES = frozenset({"ad", "ar", "as", "ash", "at", "az", "an", "ud", "ur", "us", "un"})
#: Abd al- in one word, the article's l written or assimilated: abdulrahman, abdelaziz,
#: abdurrahman, abdullah (abd allah) all begin abdal.
_ABD_AL = re.compile(r"^abd[aeiou]?(?:l|([rstdzn])(?=\1))(?=[a-z]{3})")
#: A particle already joined, written otherwise than its canonical prefix: Elmasri, Abouhafs.
_JOINED_OTHERWISE = re.compile(r"^(?:el|abou|abo)(?=[a-z]{3})")
_CANONICAL_PREFIX = {"el": "al", "abou": "abu", "abo": "abu"}
#: Prefixes a joined token may begin with (after canonicalisation), longest first.
_JOINED_PREFIXES = ("abdal", "bint", "abu", "bin", "al")


@lru_cache(maxsize=200_000)
def canonical(token: str) -> str:
    """A token with the particle it begins with written one way: abdulrahman -> abdalrahman,
    elmasri -> almasri, abouhafs -> abuhafs."""
    token = _ABD_AL.sub("abdal", token)
    return _JOINED_OTHERWISE.sub(lambda m: _CANONICAL_PREFIX[m.group(0)], token)


def join_particles(toks: list[str]) -> list[str]:
    """The tokens with each particle joined to the name after it, canonical: 'abu hafs al
    masri', 'abuhafs almasri' and 'abu hafs al-masri' all give ['abuhafs', 'almasri'];
    'abd al rahman', 'abdul rahman' and 'abdurrahman' give ['abdalrahman']. A particle last
    (nothing to join to) is kept as it is."""
    out: list[str] = []
    for token in reversed(toks):
        nxt = out[-1] if out else None
        if nxt is not None and len(nxt) >= 3:
            prefix = PARTICLES.get(token)
            if prefix is None and token in _SUN_ARTICLES and nxt.startswith(token[1:]):
                prefix = "al"
            if prefix is not None:
                out[-1] = canonical(prefix + nxt)
                continue
        out.append(canonical(token))
    return out[::-1]


def particle_split(token: str) -> tuple[str, str]:
    """(particle, stem) of a joined token such as 'abuhafs' -> ('abu', 'hafs'); ('', token)
    where it begins with no particle or the stem would be under three letters."""
    for prefix in _JOINED_PREFIXES:
        if token.startswith(prefix) and len(token) - len(prefix) >= 3:
            return prefix, token[len(prefix) :]
    return "", token


def needs_joining(toks: Sequence[str]) -> bool:
    """Whether :func:`join_particles` may change a name: a particle apart, or Abd al- joined
    otherwise than canonically (a quick test before the work)."""
    return any(t in PARTICLES or t in _SUN_ARTICLES or t.startswith("abd") for t in toks)
