"""Sanctions screening against watch lists in OFAC's CSV layout (SDN, ALT, ADD files).

A screening blocks candidates through an inverted index of token keys (spelling folds, consonant
skeletons and one-typo deletion keys), scores only the best few dozen names in full, and then
weighs secondary evidence: date of birth, nationality or country, and party type.

Decisions (OFAC's FAQ: a name alone is not a match):
- ``match``: the name match is strong AND a DOB or nationality (for entities: country)
  corroborates AND nothing contradicts AND the name is not carried by initials: where the
  query holds an initial, at least two of its names match in full ("N. Maleki" of Iran is
  many people; "Mohammad S. Islambouli" is two names in full and an initial); and a listed
  person is matched on at least two names ("Hussein", a one-word a.k.a., is many people).
- ``review``: the name matches but identifiers are absent or contradict: a case for a person,
  never an automatic block.
- ``clear``: no name on the list is close enough, or the party type rules the candidate out.
"""

from __future__ import annotations

import csv
import hashlib
import heapq
import logging
import math
import re
import threading
import time
import unicodedata
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from rapidfuzz.distance import OSA, Indel, JaroWinkler

from entrepot.kernel.clock import Clock
from entrepot.risk.countries import CODE_TO_NAME, country_code
from entrepot.risk.decisions import Decision, DecisionSink, make_decision
from entrepot.risk.errors import EmptyName, InvalidParty, WatchListInvalid
from entrepot.risk.names import (
    ALLAH_SYMBOLS,
    LEGAL_FORMS,
    PARTICLES,
    SUN_ARTICLES,
    TITLES,
    abbreviations_joined,
    abjad_canonical,
    abjad_keys,
    canonical,
    deletion_keys,
    fold,
    is_abjad,
    is_compound_tail,
    join_particles,
    latin_abjad_key,
    name_count,
    needs_joining,
    normalise,
    particle_split,
    query_readings,
    query_tokens,
    skeleton,
    tokens,
    without_nasab,
)

log = logging.getLogger(__name__)

SDN_FILE, ALT_FILE, ADD_FILE = "ofac_sdn.csv", "ofac_alt.csv", "ofac_add.csv"
#: How often a screener made from a folder looks whether its lists changed (seconds).
REFRESH_S = 60.0
EMPTY = "-0-"
PARTY_TYPES = ("individual", "entity")
#: Name score at or above which a candidate is put to review.
REVIEW_THRESHOLD = 0.88
#: Name score at or above which corroborating identifiers make a match.
STRONG_THRESHOLD = 0.92
#: Name score below which a scored name is no candidate (neither judged nor returned).
CANDIDATE_FLOOR = REVIEW_THRESHOLD - 0.1
#: Candidates scored in full per screening, after blocking.
SHORTLIST_MAX = 60
#: Candidates scored in full in the joined space (the names as written had their 60).
JOINED_SHORTLIST_MAX = 20
#: A name in Arabic script shortlists this many times more: each of its words reaches every
#: listed spelling that aligns, and a common one (محمد, جابر) ties with hundreds.
ABJAD_SHORTLIST_FACTOR = 3
CANDIDATES_MAX = 10
#: The latest screenings a screener keeps, by party (a payee is screened at every payment).
SCREENINGS_REMEMBERED = 4096
INITIAL_SIM = 0.9
#: Similarity of two tokens (5+ letters) one edit apart (substitution, insertion, deletion or
#: transposition of neighbours): a typo.
ONE_EDIT_SIM = 0.92
#: Shortlist credit of a vocabulary token reached by an exact fold / a one-edit key / a skeleton.
KEY_QUALITY = {"fold": 1.0, "edit": 0.8, "skeleton": 0.6}
#: A matched token counts toward coverage of the listed name from this similarity up.
COVER_SIM = 0.85
#: A matched token counts as one of the two names a person's match needs from this similarity
#: up (a typo, a fold or the same name): a surname two letters long and one a letter longer
#: (Su, Sun) are two families.
NAME_SIM = ONE_EDIT_SIM
#: Weight of legal forms and particles relative to an ordinary token of the same rarity.
LOW_WEIGHT = 0.15
#: A query that matches only one token of a longer listed name (a surname alone) is capped here.
SINGLE_TOKEN_CAP = 0.8
#: Joined space: a token whose particle differs (abuhafs/binhafs), and one whose article
#: al- the other lacks (almasri/masri), relative to the similarity of the names after them.
JOINED_OTHER_PARTICLE = 0.8
JOINED_ARTICLE_DROPPED = 0.95
CIRCA_YEARS = 2
#: A listed token is a candidate for a word written in Arabic script from this similarity of
#: their alignment (``_abjad_sim``) up.
ABJAD_HIT_SIM = 0.8
#: The reason a candidate found for a name written in Arabic script carries.
ABJAD_NOTE = (
    "the name is written in Arabic script, which leaves short vowels out: it was compared "
    "letter by letter with the listed Latin spelling"
)
DECISION_RANK = {"clear": 0, "review": 1, "match": 2}

_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
)}  # fmt: skip
_DOB = re.compile(r"\bDOB ([^;]+)")
_NATIONALITY = re.compile(r"\b(nationality|citizen) ([^;]+)")
_POB = re.compile(r"\bPOB ([^;]+)")
#: Where the list states the country an entity is registered in: 'Nationality of Registration
#: China', or a company registry's number with its country, 'Registration ID HRB 26136
#: (Germany)'. Tax numbers and a vessel's IMO number are not a registry of companies.
_REGISTRATION = re.compile(
    r"\bNationality of Registration ([^;]+)"
    r"|\b(?:Registration (?:ID|Number)|Company Number|Commercial Registry Number"
    r"|Business Registration (?:Document|Number)|Certificate of Incorporation Number"
    r"|Chamber of Commerce Number|Public Registration Number|Legal Entity Number)\b"
    r"[^;()]*\(([^)]+)\)"
)
_AKA = re.compile(r"\ba\.k\.a\. '([^']+(?:'[^';.]+)*)'")
_GENDER = re.compile(r"\bGender (Male|Female)\b")
_DATE = re.compile(r"^(?:(\d{1,2}) )?(?:([A-Za-z]{3}) )?(\d{4})$")


# --------------------------------------------------------------------------- the list
@dataclass(frozen=True, slots=True)
class DobSpec:
    """A listed date of birth: a year range, and month and day where the list gives them."""

    year_from: int
    year_to: int
    month: int | None = None
    day: int | None = None

    def contains(self, when: date) -> bool:
        if not self.year_from <= when.year <= self.year_to:
            return False
        if self.month is not None and self.year_from == self.year_to and self.month != when.month:
            return False
        return not (self.day is not None and self.day != when.day)

    def describe(self) -> str:
        if self.year_from != self.year_to:
            return f"{self.year_from}–{self.year_to}"
        if self.day is not None and self.month is not None:
            return f"{self.year_from:04d}-{self.month:02d}-{self.day:02d}"
        if self.month is not None:
            return f"{self.year_from:04d}-{self.month:02d}"
        return f"{self.year_from}"


@dataclass(frozen=True, slots=True)
class Entry:
    ent_num: int
    name: str
    party_type: str  # individual, entity, vessel, aircraft
    programs: str
    aliases: tuple[str, ...] = ()
    dobs: tuple[DobSpec, ...] = ()
    nationalities: frozenset[str] = frozenset()
    countries: frozenset[str] = frozenset()  # addresses and places of birth
    gender: str | None = None
    registrations: frozenset[str] = frozenset()  # an entity's, where the list states it


def _cell(value: str) -> str:
    value = value.strip()
    return "" if value == EMPTY else value


def parse_dob(text: str) -> DobSpec | None:
    t = text.strip().rstrip(".").strip()
    circa = t.lower().startswith("circa ")
    if circa:
        t = t[6:].strip()
    if " to " in t:
        lo, hi = (parse_dob(part) for part in t.split(" to ", 1))
        if lo is None or hi is None:
            return None
        return DobSpec(lo.year_from, hi.year_to)
    m = _DATE.match(t)
    if m is None:
        return None
    day, mon, year = m.group(1), m.group(2), int(m.group(3))
    month = _MONTHS.get(mon.lower()) if mon else None
    if circa:
        return DobSpec(year - CIRCA_YEARS, year + CIRCA_YEARS)
    return DobSpec(year, year, month, int(day) if day and month else None)


def parse_remarks(remarks: str) -> dict[str, Any]:
    """DOBs, nationalities/citizenships, places of birth (countries), more a.k.a.'s, gender,
    and the countries an entity is registered in where stated (``registrations``)."""
    dobs = [d for d in (parse_dob(m.group(1)) for m in _DOB.finditer(remarks)) if d]
    nats = {country_code(m.group(2).rstrip(".")) for m in _NATIONALITY.finditer(remarks)}
    pobs = {country_code(m.group(1).rstrip(".").split(",")[-1]) for m in _POB.finditer(remarks)}
    gender = _GENDER.search(remarks)
    registered = {
        country_code((m.group(1) or m.group(2)).strip().rstrip("."))
        for m in _REGISTRATION.finditer(remarks)
    }
    return {
        "dobs": tuple(dobs),
        "nationalities": frozenset(c for c in nats if c),
        "pob_countries": frozenset(c for c in pobs if c),
        "akas": tuple(m.group(1).strip() for m in _AKA.finditer(remarks)),
        "gender": gender.group(1).lower() if gender else None,
        "registrations": frozenset(c for c in registered if c),
    }


def _rows(path: Path, width: int) -> Iterable[list[str]]:
    try:
        with path.open(encoding="utf-8", errors="replace", newline="") as handle:
            for row in csv.reader(handle):
                if len(row) == width:
                    yield row
                elif len(row) > 1:
                    raise WatchListInvalid(f"{path}: a row has {len(row)} fields, not {width}")
    except OSError as exc:
        raise WatchListInvalid(f"cannot read watch list file {path}: {exc.strerror}") from None


def load_watch_list(directory: Path | str) -> tuple[list[Entry], str]:
    """Entries of an OFAC-layout list and its version (sha256 prefix of the three files)."""
    d = Path(directory)
    alts: dict[int, list[str]] = defaultdict(list)
    for row in _rows(d / ALT_FILE, 5):
        if _cell(row[3]):
            alts[int(row[0])].append(_cell(row[3]))
    addresses: dict[int, set[str]] = defaultdict(set)
    for row in _rows(d / ADD_FILE, 6):
        code = country_code(_cell(row[4]))
        if code:
            addresses[int(row[0])].add(code)
    entries = []
    for row in _rows(d / SDN_FILE, 12):
        ent_num = int(row[0])
        info = parse_remarks(_cell(row[11]))
        aliases = tuple(dict.fromkeys(alts[ent_num] + list(info["akas"])))
        entries.append(Entry(
            ent_num=ent_num, name=_cell(row[1]), party_type=_cell(row[2]) or "entity",
            programs=_cell(row[3]), aliases=aliases, dobs=info["dobs"],
            nationalities=info["nationalities"],
            countries=frozenset(addresses[ent_num]) | info["pob_countries"],
            gender=info["gender"], registrations=info["registrations"],
        ))  # fmt: skip
    if not entries:
        raise WatchListInvalid(f"no entries in {d / SDN_FILE}")
    digest = hashlib.sha256()
    for name in (SDN_FILE, ALT_FILE, ADD_FILE):
        digest.update((d / name).read_bytes())
    return entries, f"ofac-{digest.hexdigest()[:12]}"


# --------------------------------------------------------------------------- the index
def _given_first(text: str, toks: list[str]) -> list[str]:
    """The tokens of a listed name (``toks``, as written) in the order it is spoken: OFAC
    writes a person 'FAMILY, Given', so 'AL-RAHMAN, Shaykh Umar Abd' is Shaykh Umar Abd
    al-Rahman."""
    family, comma, _ = text.partition(",")
    if not comma:
        return toks
    k = len(tokens(family))  # a comma splits tokens: the family's come first
    return toks[k:] + toks[:k]


@dataclass(frozen=True, slots=True)
class _Name:
    entry: int  # index into entries
    text: str
    toks: tuple[str, ...]
    folds: tuple[str, ...]
    weights: tuple[float, ...]


class WatchListIndex:
    """Names (primary and aliases) blocked by token keys, with IDF weights per folded token.
    Read-only once built, so one index serves every screener of a process.

    A name holding Arabic particles (Abu, al-, bin, Abd al-) is also indexed in a second
    space, its particles joined to the names after them (``AL-MASRI, Abu Hafs`` as
    ``abuhafs almasri``, in the order given name first): a query written with the particles
    joined or split otherwise (``Abuhafs Almasri``, ``Abu Hafs al Masri``) is screened there
    too. Those variants (``variants``, numbered after ``names``) are posted apart, so the
    screening of the names as written is what it was without them."""

    def __init__(self, entries: Sequence[Entry], version: str) -> None:
        self.entries = list(entries)
        self.version = version
        raw: list[tuple[int, str, list[str]]] = []
        for i, entry in enumerate(self.entries):
            seen: set[tuple[str, ...]] = set()
            for written in (entry.name, *entry.aliases):
                # a dotted abbreviation is also indexed as one word ("U.K." as "UK")
                one_word = abbreviations_joined(written)
                for text in (written,) if one_word is None else (written, one_word):
                    toks = tokens(text)
                    key = tuple(sorted(toks))
                    if toks and key not in seen:
                        seen.add(key)
                        raw.append((i, text, toks))
        df: dict[str, int] = defaultdict(int)
        for _, _, toks in raw:
            for f in {fold(t) for t in toks}:
                df[f] += 1
        # Joined variants: IDF of a joined token over the variants holding it; every other
        # token keeps its weight among the names as written (and the name count is theirs).
        joined_raw: list[tuple[int, str, list[str]]] = []
        seen_joined: set[tuple[int, tuple[str, ...]]] = set()
        has_variant: set[int] = set()  # names as written a joined variant stands for
        for n, (i, text, toks) in enumerate(raw):
            if not needs_joining(toks):
                continue
            joined = join_particles(_given_first(text, toks))
            jkey = (i, tuple(sorted(joined)))
            if sorted(joined) == sorted(toks):
                continue
            has_variant.add(n)
            if jkey not in seen_joined:
                seen_joined.add(jkey)
                joined_raw.append((i, text, joined))
        plain = set(df)
        joined_df: dict[str, int] = defaultdict(int)
        for _, _, toks in joined_raw:
            for f in {fold(t) for t in toks} - plain:
                joined_df[f] += 1
        self._n_names = len(raw)
        self._df = {**joined_df, **df}

        def make(i: int, text: str, toks: list[str]) -> _Name:
            return _Name(i, text, tuple(toks), tuple(fold(t) for t in toks),
                         tuple(self.weight(t) for t in toks))  # fmt: skip

        self.names = [make(*r) for r in raw]
        self.variants = [make(*r) for r in joined_raw]
        self._postings = self._post(self.names, 0)
        self._jpostings = self._post(self.variants, len(self.names))
        self._has_variant = frozenset(has_variant)
        self._name_weight = [sum(name.weights) for name in (*self.names, *self.variants)]
        #: every name (as written and joined variants), longest first, and its length
        self._name_len = [len(name.toks) for name in (*self.names, *self.variants)]
        self._longest_first = sorted(range(len(self._name_len)), key=lambda n: -self._name_len[n])
        # Blocking keys -> the folded tokens holding them (each token once a key: a token's
        # deletion keys differ from one another).
        deletions: dict[str, list[str]] = defaultdict(list)
        skeletons: dict[str, list[str]] = defaultdict(list)
        for f in {*self._postings, *self._jpostings}:
            for k in deletion_keys(f):
                deletions[k].append(f)
            skeletons[skeleton(f)].append(f)
        self._deletion_keys = dict(deletions)
        self._skeleton_keys = dict(skeletons)
        # Words written in Arabic script: the listed tokens an Arabic spelling may key alike
        # (their consonants, names.latin_abjad_key).
        abjad: dict[str, list[str]] = defaultdict(list)
        for f in {*self._postings, *self._jpostings}:
            abjad[latin_abjad_key(f)].append(f)
        self._abjad_vocab = dict(abjad)
        self._abjad_weights: dict[str, float] = {}
        #: Folded tokens of the variants that begin with a particle (almasri, abuhafs).
        self._joined_vocab = frozenset(
            f for name in self.variants for t, f in zip(name.toks, name.folds, strict=True)
            if particle_split(t)[0]
        )  # fmt: skip

    def joined_query(self, query_tokens: list[str]) -> tuple[list[str], str] | None:
        """The query's tokens in the joined space and the part of it to search ("all" or
        "variants", see :meth:`shortlist`); None where the joined space can add nothing: no
        particle apart, and no token that is, or is one typo from, a joined listed token
        (Elena is Alena there, but no listed name begins so: searched as written alone)."""
        joined = join_particles(query_tokens)
        if len(joined) < len(query_tokens):  # a particle apart joined: the names differ
            return joined, "all"
        if any(is_abjad(t) and (particle_split(t)[0] or t.endswith(ALLAH_SYMBOLS)) for t in joined):
            return joined, "all"  # عبدالرحمن, حیات الله: Abd al-, Allah joined already
        for token in joined:
            c = canonical(token)
            if particle_split(c)[0] and any(
                v in self._joined_vocab
                for k in deletion_keys(c)
                for v in self._deletion_keys.get(k, ())
            ):
                return joined, "variants"
        return None

    @staticmethod
    def _post(names: Sequence[_Name], offset: int) -> dict[str, list[int]]:
        postings: dict[str, list[int]] = defaultdict(list)
        for n, name in enumerate(names, offset):
            for f in set(name.folds):
                postings[f].append(n)
        return dict(postings)

    def name(self, n: int) -> _Name:
        """A name as written (``n`` below ``len(names)``) or a joined variant."""
        return self.names[n] if n < len(self.names) else self.variants[n - len(self.names)]

    def weight(self, token: str) -> float:
        if is_abjad(token):
            return self._abjad_weight(token)
        f = fold(token)
        idf = math.log((self._n_names + 1) / (self._df.get(f, 0) + 1)) + 1.0
        low = token in LEGAL_FORMS or token in TITLES or len(token) == 1
        return idf * (LOW_WEIGHT if low else 1.0)

    def shortlist(
        self,
        query_tokens: Sequence[str],
        *,
        joined: str | None = None,
        mass: dict[int, float] | None = None,
    ) -> list[int]:
        """Names sharing a blocking key with the query, ranked by the IDF mass of the query
        tokens they share (an exact fold counts more than a one-edit or skeleton key), scaled by
        how much of the name that mass covers (short exact names before long partial ones).

        ``joined``: the joined space instead of the names as written: "variants" (the joined
        variants alone) or "all" (the variants, and the names as written that have none).
        ``mass``: the query's :meth:`mass`, where it is known already."""
        if mass is None:
            mass = self.mass(query_tokens, joined=joined)
        ranked = heapq.nsmallest(
            (SHORTLIST_MAX if joined is None else JOINED_SHORTLIST_MAX)
            * (ABJAD_SHORTLIST_FACTOR if any(is_abjad(t) for t in query_tokens) else 1),
            ((-m * (0.5 + 0.5 * min(1.0, m / self._name_weight[n])), n) for n, m in mass.items()),
        )
        return [n for _, n in ranked]

    def _hits(self, token: str, joined: str | None) -> dict[int, float]:
        if joined is None:
            return self._token_hits(token, self._postings)
        hits = self._token_hits(token, self._jpostings)
        if joined == "all":
            plain = self._token_hits(token, self._postings)
            hits.update((n, q) for n, q in plain.items() if n not in self._has_variant)
        return hits

    def mass(self, query_tokens: Sequence[str], *, joined: str | None = None) -> dict[int, float]:
        """The IDF mass of the query tokens each name sharing a key with them holds (weighted
        by the key's quality), by name: what :meth:`shortlist` ranks."""
        mass: dict[int, float] = defaultdict(float)
        for token in set(query_tokens):
            if len(token) < 2:
                continue
            w = self.weight(token)
            for n, quality in self._hits(token, joined).items():
                mass[n] += w * quality
        return mass

    def holds_name_of(self, k: int, mass: dict[int, float]) -> bool:
        """Whether a name of ``k`` tokens or more is among those of a :meth:`mass`."""
        for n in self._longest_first:
            if self._name_len[n] < k:
                return False
            if n in mass:
                return True
        return False

    def mass_without(self, mass: dict[int, float], removed: Iterable[str]) -> dict[int, float]:
        """:meth:`mass` (names as written) of a query less some of its tokens, from the
        query's: a nasab read without its connectors (the same names less bin) costs one
        token's hits, not the name's again (a chain of twenty names: half its screening)."""
        out = dict(mass)
        for token in set(removed):
            if len(token) < 2:
                continue
            w = self.weight(token)
            for n, quality in self._hits(token, None).items():
                left = out[n] - w * quality
                if left > 1e-9:
                    out[n] = left
                else:
                    del out[n]
        return out

    def _abjad_matches(self, token: str) -> dict[str, float]:
        """Listed (folded) tokens a word written in Arabic script may be, with the similarity
        of their alignment."""
        out: dict[str, float] = {}
        for key in abjad_keys(token):
            for v in self._abjad_vocab.get(key, ()):
                sim = _abjad_sim(token, v)
                if sim >= ABJAD_HIT_SIM:
                    out[v] = sim
        return out

    def _abjad_weight(self, token: str) -> float:
        """A word in Arabic script weighs as the commonest listed token it may be (محمد as
        Muhammad): its spelling on the list is not known, only its candidates'."""
        w = self._abjad_weights.get(token)
        if w is None:
            df = max(
                (self._df.get(v, 0) for v, sim in self._abjad_matches(token).items()
                 if sim >= COVER_SIM),
                default=0,
            )  # fmt: skip
            w = math.log((self._n_names + 1) / (df + 1)) + 1.0
            w *= LOW_WEIGHT if len(token) == 1 else 1.0
            if len(self._abjad_weights) < 100_000:
                self._abjad_weights[token] = w
        return w

    def _token_hits(self, token: str, postings: dict[str, list[int]]) -> dict[int, float]:
        f = fold(token)
        quality: dict[str, float] = {}
        if is_abjad(token):
            quality = self._abjad_matches(token)
            f = ""  # no Latin token is the same fold: the keys below are not the Latin ones
        else:
            for v in self._skeleton_keys.get(skeleton(token), ()):
                quality[v] = KEY_QUALITY["skeleton"]
            for k in deletion_keys(token):
                for v in self._deletion_keys.get(k, ()):
                    quality[v] = KEY_QUALITY["fold"] if v == f else KEY_QUALITY["edit"]
        hits: dict[int, float] = {}
        for v, q in quality.items():
            for n in postings.get(v, ()):
                if hits.get(n, 0.0) < q:
                    hits[n] = q
        return hits


# --------------------------------------------------------------------------- scoring
#: What each Arabic-script symbol (names.ABJAD) may be in a folded Latin spelling, and at what
#: cost ("": not written in Latin). Vowel letters may be a vowel or (W, Y) a consonant; the
#: letters Latin spells several ways (ذ: d, dh, z (folded s), th (folded t)) may be each.
_ABJAD_OPTIONS: dict[str, tuple[tuple[str, float], ...]] = {
    "A": (("a", 0), ("Â", 0), ("i", 0.4), ("u", 0.4), ("", 0.5)),
    "Á": (("a", 0), ("Â", 0), ("i", 0), ("Î", 0), ("", 0.5)),
    "O": (("a", 0), ("u", 0), ("Â", 0), ("Û", 0), ("i", 0.4), ("", 0.5)),
    "I": (("i", 0), ("Î", 0), ("a", 0.3), ("", 0.5)),
    "W": (("u", 0), ("Û", 0), ("v", 0), ("", 0.7)),
    "Y": (("i", 0), ("Î", 0), ("Ÿ", 0), ("Ĵ", 0.3), ("a", 0.4), ("", 0.7)),
    "E": (("", 0), ("a", 0), ("Â", 0), ("i", 0.1), ("u", 0.1)),
    "Ŵ": (("", 0), ("u", 0), ("Û", 0), ("v", 0), ("a", 0.1), ("i", 0.1)),
    "Ŷ": (("", 0), ("i", 0), ("Î", 0), ("Ÿ", 0), ("a", 0.1), ("u", 0.1)),
    # the article inside a compound name (Sirajuddin, Fazlurrahman): its vowel, its l
    "ə": (("a", 0), ("u", 0), ("i", 0), ("", 0)),
    "ʟ": (("l", 0), ("", 0)),
    "@": (("a", 0), ("", 0), ("ah", 0), ("at", 0.3)),
    "B": (("b", 0), ("p", 0.5)), "P": (("p", 0), ("b", 0.3)), "T": (("t", 0), ("d", 0.5)),
    "C": (("t", 0), ("s", 0.1)), "J": (("Ĵ", 0), ("g", 0.2)), "Č": (("kh", 0), ("Ĵ", 0.5)),
    "H": (("h", 0), ("", 0.6)), "Ħ": (("h", 0), ("", 0.1)), "X": (("h", 0), ("k", 0.3)),
    "D": (("d", 0), ("t", 0.5)),
    "Q": (("d", 0), ("dh", 0), ("s", 0.1), ("Ż", 0.1), ("t", 0.2)),
    "R": (("r", 0),), "Z": (("s", 0), ("Ż", 0)), "Ž": (("Żh", 0), ("Ĵ", 0), ("s", 0.3)),
    "S": (("s", 0),), "Š": (("sh", 0), ("kh", 0.2), ("s", 0.5)),
    "V": (("d", 0), ("dh", 0), ("s", 0.1), ("Ż", 0.1)),
    "U": (("s", 0), ("Ż", 0), ("d", 0.1), ("dh", 0.1), ("t", 0.2)),
    "G": (("g", 0),), "F": (("f", 0), ("p", 0.5)), "K": (("k", 0), ("g", 0.3)),
    "L": (("l", 0),), "M": (("m", 0),), "N": (("n", 0),),
}  # fmt: skip
#: A final ه is often not written in Latin (Persian Hamzeh, Hamza).
_ABJAD_FINAL_H = _ABJAD_OPTIONS["Ħ"]
#: A word's first ع is a vowel in Latin (Abbas, Ali, Omar), or an apostrophe: not nothing.
_ABJAD_E_FIRST = tuple(o for o in _ABJAD_OPTIONS["E"] if o[0])
#: ي is "a" only last (Persian یحیی, Yahya); inside a word it is i, y or nothing.
_ABJAD_Y_INSIDE = tuple(o for o in _ABJAD_OPTIONS["Y"] if o[0] != "a")
#: Symbols and Latin letters aligned at most (a name's word is far shorter; a longer one costs
#: time, not a better answer).
_ABJAD_LEN_MAX = 40
#: Cost of a Latin letter the Arabic spelling does not write: a short vowel, an h (the h of
#: dh or of a final -ah), a long vowel (Latin doubles it: Mahmoud, Saeed), any other letter.
_LATIN_VOWEL_ABSENT, _LATIN_H_ABSENT, _LATIN_LONG_ABSENT, _MISMATCH = 0.15, 0.4, 0.5, 1.0
#: An u or i in a name's last syllable is long more often than not (Mahmud is محمود, Sa'id
#: سعيد; Yusuf and Khalid are the exceptions): left unwritten, it costs this.
_LATIN_LAST_SHORT_ABSENT = 0.3
#: Latin spellings of a long vowel, marked before folding (which would make them short).
_LONG_VOWELS = (
    ("ou", "Û"), ("oo", "Û"), ("uu", "Û"), ("ee", "Î"), ("ii", "Î"), ("ei", "Î"), ("aa", "Â"),
)  # fmt: skip
#: Latin consonants the folds would make vowels, marked before folding: j and dj (Ĵ), y
#: before a vowel or first (Ÿ: Yusuf, Ayad), the z of zh (Ż: Azhar is z-h, Zhaleh ژ).
_CONSONANTS = (("dj", "Ĵ"), ("j", "Ĵ"), ("zh", "Żh"))
_Y_CONSONANT = re.compile(r"y(?=[aeiou])|^y")


@lru_cache(maxsize=200_000)
def _long_marked(token: str) -> str:
    """A Latin token folded with its long vowels and the consonants the folds would make
    vowels marked: mahmoud -> mahmÛd (محمود writes the ū, محمد writes none), majid -> maĴid
    (the fold made "maid")."""
    for latin, mark in _LONG_VOWELS:
        token = token.replace(latin, mark)
    token = token.replace("yy", "y")  # Sayyid: the script writes its y once
    for latin, mark in _CONSONANTS:
        token = token.replace(latin, mark)
    return fold(_Y_CONSONANT.sub("Ÿ", token))


#: The commonest given names that the alignment cannot tell apart, each with its Latin
#: spellings and its spellings in the script: محمد and the list's Mahmud are both m-h-m-d with
#: the vowels left out (the list writes Mahmud's long u singly); محمود is Mahmud. A word of the
#: script spelled as one of these and a listed token spelled as another are different names.
_KNOWN_NAMES = (
    (("muhammad", "mohammed", "mohamed", "mohammad", "mohamad", "muhamad"), ("محمد",)),
    (("mahmud", "mahmoud", "mahmood", "mehmood", "mahmut"), ("محمود",)),
    (("ahmad", "ahmed"), ("أحمد", "احمد")),
    (("hasan", "hassan"), ("حسن",)),
    (("husayn", "hussein", "husain", "hussain", "husein", "hossein", "hosein"), ("حسين", "حسین")),
    (("umar", "omar"), ("عمر",)),
    (("amr", "amru"), ("عمرو",)),
)
_KNOWN_LATIN = {
    fold(latin): i for i, (spellings, _) in enumerate(_KNOWN_NAMES) for latin in spellings
}
_KNOWN_SCRIPT = {
    abjad_canonical(query_tokens(word)[0]): i
    for i, (_, words) in enumerate(_KNOWN_NAMES)
    for word in words
}
#: Similarity of a known name's spelling in the script and a listed spelling of itself (as two
#: Latin spellings of one fold), and at most of another known name.
_KNOWN_SAME_SIM, _KNOWN_OTHER_SIM = 0.97, 0.75


_LATIN_COMPOUND_TAILS = frozenset({"aldin", "alrahman", "alhaq", "alhaqq", "alislam"})


def _compound_tail(token: str) -> bool:
    """Whether a query token is the al-Din, al-Rahman ... of a compound given name written
    apart (Nur al-Din, نور الدين: one name, the token before it its first half)."""
    return token in _LATIN_COMPOUND_TAILS or is_compound_tail(token)


#: Listed particles a word in the script is never aligned with (Abd, which is also a name,
#: aside): WAEL scored 0.875 against the "al" of a listed AL HADID.
_ARTICLES_AND_KIN = frozenset(p for p in PARTICLES if not p.startswith("abd")) | SUN_ARTICLES


def _abjad_options(sym: str, final: bool, first: bool) -> tuple[tuple[str, float], ...]:
    if sym == "H" and final:
        return _ABJAD_FINAL_H
    if sym == "E" and first:
        return _ABJAD_E_FIRST
    if sym == "Y" and not final:
        return _ABJAD_Y_INSIDE
    options = _ABJAD_OPTIONS.get(sym)
    if options is not None:
        return options
    # a Latin letter of a joined particle (the a of abdal): itself, a vowel maybe unwritten
    return ((sym, 0.0), ("", _LATIN_VOWEL_ABSENT)) if sym in "aiu" else ((sym, 0.0),)


def _latin_absent(ch: str) -> float:
    if ch in "aiu":
        return _LATIN_VOWEL_ABSENT
    if ch in "ÂÎÛ":
        return _LATIN_LONG_ABSENT
    if ch == "Ÿ":  # a y before a vowel is a consonant the script writes
        return _LATIN_LONG_ABSENT
    return _LATIN_H_ABSENT if ch == "h" else _MISMATCH


@lru_cache(maxsize=200_000)
def _abjad_sim(q: str, nf: str) -> float:
    """Similarity of a word written in Arabic script (symbols, names.query_tokens) and a
    folded Latin token: the cheapest alignment of the two (each symbol one of its Latin
    options or a mismatch; a Latin letter the script leaves unwritten costs little for a short
    vowel), as 1 - cost / length. أيمن (OYMN) and aiman (Ayman) align but for the unwritten
    a: 0.97; حسن (HSN) and hasan: 0.94; حسين (HSYN) and hasan: 0.89."""
    syms = abjad_canonical(q)[:_ABJAD_LEN_MAX]
    nf = nf[:_ABJAD_LEN_MAX]
    m, n = len(syms), len(nf)
    if not m or not n:
        return 0.0
    absent = [_latin_absent(ch) for ch in nf]
    vowels = [j for j, ch in enumerate(nf) if ch in "aiuÂÎÛ"]
    if vowels and nf[vowels[-1]] in "iu" and vowels[-1] < n - 1:
        absent[vowels[-1]] = _LATIN_LAST_SHORT_ABSENT
    row = [0.0] * (n + 1)
    for j in range(n):
        row[j + 1] = row[j] + absent[j]
    for i, sym in enumerate(syms):
        # a first ع before a vowel letter may be unwritten (عاطف, Atif: the a is the alif's)
        first = i == 0 and not (m > 1 and syms[1] in "AYWÁ")
        options = _abjad_options(sym, i == m - 1, first)
        unwritten = min((c for latin, c in options if not latin), default=_MISMATCH)
        nxt = [math.inf] * (n + 1)
        for j in range(n + 1):
            c = row[j]
            if c + unwritten < nxt[j]:
                nxt[j] = c + unwritten
            if j < n and c + _MISMATCH < nxt[j + 1]:
                nxt[j + 1] = c + _MISMATCH
            for latin, cost in options:
                if latin and nf.startswith(latin, j) and c + cost < nxt[j + len(latin)]:
                    nxt[j + len(latin)] = c + cost
        for j in range(n):
            if nxt[j] + absent[j] < nxt[j + 1]:
                nxt[j + 1] = nxt[j] + absent[j]
        row = nxt
    return max(0.0, round(1.0 - row[n] / max(m, n), 4))


@lru_cache(maxsize=500_000)
def _pair_sim(q: str, qf: str, n: str, nf: str) -> float:
    if len(n) == 1:  # a listed letter (S.R.L., M-VITO) is not an initial of a query's name
        return 1.0 if q == n else 0.0
    if is_abjad(q):
        if n in _ARTICLES_AND_KIN:  # a name is not the listing's al, bin, abu
            return 0.0
        sim = _abjad_sim(q, _long_marked(n))
        known = _KNOWN_SCRIPT.get(abjad_canonical(q))
        listed = None if known is None else _KNOWN_LATIN.get(nf)
        if listed is None:
            return sim
        return max(sim, _KNOWN_SAME_SIM) if listed == known else min(sim, _KNOWN_OTHER_SIM)
    if len(q) == 1:
        return INITIAL_SIM if q == n[0] else 0.0
    if qf == nf:
        return 1.0 if q == n else 0.97
    if min(len(qf), len(nf)) >= 5 and OSA.distance(qf, nf, score_cutoff=1) <= 1:
        return ONE_EDIT_SIM
    # Jaro-Winkler alone forgives too much in short tokens (walid/ali 0.87): average it with
    # the edit similarity.
    raw = 0.5 * (JaroWinkler.normalized_similarity(q, n) + Indel.normalized_similarity(q, n))
    folded = 0.5 * (JaroWinkler.normalized_similarity(qf, nf) + Indel.normalized_similarity(qf, nf))
    return max(raw, 0.98 * folded)


@lru_cache(maxsize=200_000)
def _joined_pair_sim(q: str, qf: str, n: str, nf: str) -> float:
    """Token similarity in the joined space: two tokens with the same particle joined are as
    alike as the names after it (abuhafs/abuhamza are Hafs and Hamza, not 'abuha' alike); a
    different particle is another name (Abu Hafs is not Bin Hafs); the article alone may be
    dropped (Masri, al-Masri)."""
    qp, qs = particle_split(canonical(q))
    np_, ns = particle_split(canonical(n))
    if not qp and not np_:
        return _pair_sim(q, qf, n, nf)
    stems = _pair_sim(qs, fold(qs), ns, fold(ns))
    if qp == np_:
        return stems
    if qp and np_:
        return JOINED_OTHER_PARTICLE * stems
    if "al" in (qp, np_):
        return JOINED_ARTICLE_DROPPED * stems
    return _pair_sim(q, qf, n, nf)


@dataclass(frozen=True, slots=True)
class NameMatch:
    score: float
    alias: str
    matched: int  # query tokens matched (sim >= COVER_SIM)
    jw: float  # mean similarity of the matched tokens
    initials: int = 0  # of those, a query's initial standing for a listed name
    #: of those, names alike at NAME_SIM or more, not initials: the names a match rests on
    #: (Sun is not Su: 0.86 covers a listed name, it does not confirm a person)
    names: int = 0


def score_name(
    q_toks: Sequence[str],
    q_weights: Sequence[float],
    name: _Name,
    pair_sim: Callable[[str, str, str, str], float] = _pair_sim,
) -> NameMatch:
    """Token-set similarity, order-free: greedy one-to-one pairing of query and listed tokens by
    similarity; the IDF-weighted mean similarity over query tokens, discounted by the share of
    the listed name's weight left unmatched (a dropped middle name costs a little).
    ``pair_sim``: the token similarity (``_joined_pair_sim`` in the joined space)."""
    q_folds = [fold(t) for t in q_toks]
    pairs = sorted(
        (
            (pair_sim(q, qf, n, nf), i, j)
            for i, (q, qf) in enumerate(zip(q_toks, q_folds, strict=True))
            for j, (n, nf) in enumerate(zip(name.toks, name.folds, strict=True))
        ),
        reverse=True,
    )
    used_q: set[int] = set()
    used_n: set[int] = set()
    q_sum = 0.0
    covered = 0.0
    matched_sims = []
    names_matched = 0  # matched query tokens that are names, not a title like a name
    initials = 0
    names = 0
    for sim, i, j in pairs:
        if i in used_q or j in used_n or sim <= 0:
            continue
        used_q.add(i)
        used_n.add(j)
        q_sum += q_weights[i] * sim
        if sim >= COVER_SIM:
            covered += name.weights[j]
            matched_sims.append(sim)
            initial = len(q_toks[i]) == 1 < len(name.toks[j]) and not is_abjad(q_toks[i])
            initials += initial
            names += sim >= NAME_SIM and not initial
            # A title counts as matched only where the listing carries it too (Shaykh is also
            # a family name): Haji is not Hadi, Sheikh is not Shi, General is not Gener.
            if (q_toks[i] not in TITLES or q_folds[i] == name.folds[j]) and not _compound_tail(
                q_toks[i]
            ):
                names_matched += 1
    q_score = q_sum / sum(q_weights)
    coverage = covered / sum(name.weights)
    score = q_score * (0.75 + 0.25 * coverage)
    # A surname with a title ("Mr Maleki", "Sheikh Zhang") is still a surname alone.
    # nor is a compound given name (نور الدين, Nur al-Din: its al-Din is no second name)
    strong_tokens = [
        t for t in q_toks
        if len(t) > 1 and t not in LEGAL_FORMS | TITLES and not _compound_tail(t)
    ]  # fmt: skip
    if names_matched < 2 and len(name.toks) > 1 and len(strong_tokens) < 2:
        score = min(score, SINGLE_TOKEN_CAP)
    jw = sum(matched_sims) / len(matched_sims) if matched_sims else 0.0
    return NameMatch(round(score, 4), name.text, len(matched_sims), round(jw, 2), initials, names)


def score_ceilings(q_weights: Sequence[float]) -> list[float]:
    """``ceilings[k]``: the highest score :func:`score_name` can give these query tokens
    against any listed name of ``k`` tokens (``k`` up to the query's length: a longer name
    pairs as many tokens as the query has). Pairing is one to one, so at most ``k`` query
    tokens are paired, each at a similarity of at most 1: the score is at most the share of
    the query's weight that its ``k`` heaviest tokens hold (the coverage factor is at most 1
    and the single-name cap only lowers it), plus a margin for the rounding to 4 places.

    A name that cannot reach :data:`CANDIDATE_FLOOR` is not scored, which changes no
    screening. A long name (a nasab chain of twenty names, 43 tokens) shares too little of
    its weight with any listed name of a few tokens: it was aligned with each of the 240
    shortlisted names in full, 40,000 token pairs, and in Arabic script each pair is a
    dynamic program (0.2-0.35 s of CPU a screening)."""
    total = sum(q_weights)
    ceilings = [0.0]
    for w in sorted(q_weights, reverse=True):
        ceilings.append(ceilings[-1] + w)
    return [c / total + 1e-4 for c in ceilings]


#: The mean similarity two names read without the nasab connector between them must have
#: (:func:`_two_names_in_full`): equal folds in Latin letters (a typo's 0.92 brings two names
#: to 0.96), a close alignment in Arabic script.
NASAB_TWO_NAMES_SIM = 0.97


def _two_names_in_full(match: NameMatch, name: _Name) -> bool:
    """Whether two names read without the connector between them ("Bilal bin Marwan" as
    Bilal Marwan) are a listed name of two names, both alike at :data:`NASAB_TWO_NAMES_SIM`.
    Two common names alone are otherwise as close to some listed pair as the screening allows
    ("Walid bin Noor" and WALI, Noor; "Omar bin Layla" and LAVILLA, Omar): read so without
    this, made-up two-name nasabs were put to review four times as often (33 of 424 against
    8, docs/benchmarks.md, 2026-12-05); with it, as often as before."""
    return match.names >= 2 and match.jw >= NASAB_TWO_NAMES_SIM and name_count(name.toks) == 2


# --------------------------------------------------------------------------- screening
@dataclass(frozen=True, slots=True)
class Party:
    name: str
    dob: date | None = None
    country: str | None = None  # ISO alpha-2
    party_type: str | None = None  # individual | entity
    #: the country is where a business is (onboarding: its hub's), not anyone's nationality:
    #: it confirms or contradicts a listed entity's registration or address only
    business_country: bool = False


@dataclass(frozen=True, slots=True)
class Candidate:
    ent_num: int
    listed_name: str
    party_type: str
    programs: str
    name_score: float
    score: float
    decision: str
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["reasons"] = list(self.reasons)
        return out


@dataclass(frozen=True, slots=True)
class Screening:
    query: str
    decision: str
    score: float
    best: Candidate | None
    candidates: tuple[Candidate, ...]
    list_version: str
    decision_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "decision": self.decision,
            "score": self.score,
            "best": None if self.best is None else self.best.to_dict(),
            "candidates": [c.to_dict() for c in self.candidates],
            "list_version": self.list_version,
            "decision_id": self.decision_id,
        }


_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def make_party(
    name: str,
    dob: str | None = None,
    country: str | None = None,
    party_type: str | None = None,
    *,
    asked: bool = True,
) -> Party:
    """A party from text; bad input raises an error naming the field. ``asked``: a person or
    a bank asks for this screening, and a name of titles and legal forms alone is refused (a
    "clear" would assure them of nothing); a payment's or an onboarding's own screening of a
    name registered earlier screens what there is."""
    if asked and name:
        control = next((i for i, ch in enumerate(name) if unicodedata.category(ch) == "Cc"), None)
        if control is not None:
            # a NUL, a line break or a terminal escape: refused, as every text the API takes
            # (it was screened as two words and echoed back as sent)
            raise InvalidParty(
                f"the name holds a control character (U+{ord(name[control]):04X}) at {control}",
                field="name",
            )
    words = query_tokens(name) if name else []
    if not words:  # nothing but marks, or the short-vowel signs of Arabic script alone
        raise EmptyName("the name to screen is empty", field="name")
    if asked and all(t in TITLES or t in LEGAL_FORMS for t in words):
        # "Mr" or "The Company Ltd" names no one: a "clear" for it would assure nothing
        raise EmptyName(
            f"the name {name.strip()!r} holds only titles or legal forms: nothing that names "
            "whom to screen",
            field="name",
        )
    when = None
    if dob and dob.strip():
        # date.fromisoformat also reads "19600501" and "1960-W18-1": the documented form only
        try:
            if not _ISO_DATE.match(dob.strip()):
                raise ValueError
            when = date.fromisoformat(dob.strip())
        except ValueError:
            raise InvalidParty(f"date of birth {dob!r} is not YYYY-MM-DD", field="dob") from None
        if when > date.today():
            raise InvalidParty(f"date of birth {dob!r} is in the future", field="dob")
    code = None
    if country and country.strip():
        code = country_code(country)
        if code is None:
            raise InvalidParty(f"unknown country {country!r}: give ISO alpha-2", field="country")
    kind = party_type.strip().lower() if party_type and party_type.strip() else None
    if kind is not None and kind not in PARTY_TYPES:
        raise InvalidParty(f"party type {party_type!r} is not individual or entity", field="type")
    return Party(name.strip(), when, code, kind)


def _evidence(entry: Entry, party: Party) -> tuple[list[str], list[str], list[str]]:
    """(corroborations, contradictions, notes) from the secondary identifiers."""
    good: list[str] = []
    bad: list[str] = []
    notes: list[str] = []
    if party.party_type is not None:
        listed_person = entry.party_type == "individual"
        if listed_person != (party.party_type == "individual"):
            bad.append(f"type differs (listed as {entry.party_type})")
    if party.dob is not None and entry.dobs:
        hits = [d for d in entry.dobs if d.contains(party.dob)]
        if hits:
            good.append(f"DOB {party.dob.isoformat()} matches {hits[0].describe()}")
        else:
            listed = ", ".join(d.describe() for d in entry.dobs[:3])
            bad.append(f"DOB {party.dob.isoformat()} differs (listed {listed})")
    if party.country is not None:
        _country_evidence(entry, party, party.country, good, bad, notes)
    return good, bad, notes


def _country_evidence(
    entry: Entry, party: Party, code: str, good: list[str], bad: list[str], notes: list[str]
) -> None:
    """A person's nationality or citizenship confirms or contradicts; so does nothing else
    for a person. An entity's country confirms where the list states it registered there,
    or has an address there and the party is known to be an entity: a party of no stated
    type may be a person, whose country is no address of the entity's."""
    name = CODE_TO_NAME.get(code, code)
    if party.business_country and entry.party_type == "individual":
        if code in entry.nationalities or code in entry.countries:
            notes.append(
                f"the business is in {name}, which the listing names: where a business is "
                "is not a person's nationality"
            )
        return
    if entry.nationalities:
        if code in entry.nationalities:
            good.append(f"nationality {name} matches")
        else:
            listed = ", ".join(CODE_TO_NAME.get(c, c) for c in sorted(entry.nationalities))
            bad.append(f"nationality differs (listed {listed})")
    elif entry.party_type != "individual" and code in entry.registrations:
        good.append(f"country {name} matches the listed registration")
    elif code in entry.countries:
        if entry.party_type == "individual":
            notes.append(f"country {name} appears in the listing's addresses or place of birth")
        elif party.party_type is None:
            notes.append(
                f"country {name} appears in the listing's addresses: the party's type is not "
                "given, and an address is not a nationality"
            )
        else:
            good.append(f"country {name} matches a listed address")


def _born_that_day(entry: Entry, party: Party) -> bool:
    """Whether the party's date of birth is one the listing gives to the day."""
    return party.dob is not None and any(
        d.year_from == d.year_to and d.month is not None and d.day is not None
        and d.contains(party.dob)
        for d in entry.dobs
    )  # fmt: skip


def _judge(entry: Entry, match: NameMatch, party: Party, abjad: bool = False) -> Candidate:
    good, bad, notes = _evidence(entry, party)
    if abjad:
        notes.append(ABJAD_NOTE)
    how = "match" if match.alias == entry.name else "match alias"
    # a word in Arabic script is aligned letter by letter, not compared by Jaro-Winkler
    measure = "similarity" if abjad else "Jaro-Winkler"
    reasons = [f"name tokens {how} '{match.alias}' ({measure} {match.jw:.2f}, "
               f"score {match.score:.2f})"]  # fmt: skip
    reasons += good + bad + notes
    type_differs = any(b.startswith("type differs") for b in bad)
    if type_differs:
        decision = "clear"
    elif match.score < REVIEW_THRESHOLD and not bad and _born_that_day(entry, party):
        # 'Moussa Essaadi' born 1964-12-04 of ESSAADI, Moussa Ben Amor Ben Ali (born that
        # day): the names given all match, the rest of the listed name is missing; the day
        # of birth is evidence a name score does not see
        decision = "review"
        reasons.append(
            f"name score {match.score} is below the {REVIEW_THRESHOLD} a review needs, but the "
            "date of birth matches to the day: a person decides"
        )
    elif match.score < REVIEW_THRESHOLD:
        decision = "clear"  # say so: the reasons above read like a hit
        reasons.append(
            f"name score {match.score} is below the {REVIEW_THRESHOLD} a review needs: not a hit"
        )
    elif (
        match.score >= STRONG_THRESHOLD
        and good
        and not bad
        and match.initials
        and match.matched - match.initials < 2
    ):
        decision = "review"  # 'N. Maleki' of Iran: thousands are; the initial is not a name
        reasons.append(
            "a given name is an initial only: the name is not confirmed, a person decides"
        )
    elif (
        match.score >= STRONG_THRESHOLD
        and good
        and not bad
        and entry.party_type == "individual"
        and match.names < 2
        and not (match.matched >= 2 and _born_that_day(entry, party))
    ):
        # 'Hussein' of Egypt: a listed one-word a.k.a. names no one; 'Sun Wei' of China is
        # not 'Su Wei' (found by a review): the one name alike does not confirm the person.
        # Born on the listed day, two names alike are: 'Ebrahim Reisi' of Iran born
        # 1960-12-14 is RAISI, Ebrahim (a review of the rule)
        decision = "review"
        reasons.append(
            "one name only: the person is not confirmed by a single name, a person decides"
            if match.matched < 2
            else "only one name is the listed one; the others are only like it: a person decides"
        )
    elif match.score >= STRONG_THRESHOLD and good and not bad:
        decision = "match"
    else:
        decision = "review"
        if not good and not bad:
            reasons.append("name only: no DOB or nationality to confirm it")
        elif not bad:  # corroborated, yet not a match: say why
            reasons.append(
                f"name score {match.score} is below the {STRONG_THRESHOLD} a match needs"
            )
    score = max(0.0, min(1.0, match.score + 0.03 * len(good) - 0.05 * len(bad)))
    return Candidate(
        ent_num=entry.ent_num, listed_name=entry.name, party_type=entry.party_type,
        programs=entry.programs, name_score=match.score, score=round(score, 4),
        decision=decision, reasons=tuple(reasons),
    )  # fmt: skip


_INDEXES: dict[tuple[object, ...], WatchListIndex] = {}
_INDEXES_LOCK = threading.Lock()


def watch_list_index(directory: Path | str) -> WatchListIndex:
    """The index of the lists in ``directory``, built once per process while its files are
    unchanged (the payments screening hook and the risk API each screen against it; a copy
    is about 45 MB and takes seconds to build)."""
    folder = Path(directory).resolve()
    key = _lists_key(folder)
    with _INDEXES_LOCK:
        index = _INDEXES.get(key)
        if index is None:
            entries, version = load_watch_list(folder)
            index = WatchListIndex(entries, version)
            for old in [k for k in _INDEXES if k[0] == key[0]]:
                del _INDEXES[old]  # the lists changed: drop the stale copy
            _INDEXES[key] = index
        return index


def _lists_key(folder: Path) -> tuple[object, ...]:
    """What says the files in ``folder`` changed: their names, sizes and modification times."""
    files = sorted(p for p in folder.glob("*") if p.is_file())
    stats = [(p.name, p.stat()) for p in files]  # one stat a file: size and time agree
    return (str(folder), *((name, st.st_size, st.st_mtime_ns) for name, st in stats))


class Screener:
    """Screens parties against one watch list index; optionally logs every decision.

    Made from a folder (:meth:`from_directory`), it follows the lists there: at most every
    ``refresh_s`` seconds a screening looks at the files (names, sizes, times); once they
    have changed and then stayed the same for a whole period (a copy of three files is not
    read half done), a thread builds the new index while screenings go on against the old
    one, and then swaps it in. Lists that do not load are logged as an error each time they
    change, and the screener keeps the ones it has. A server screens against a new OFAC
    publication within two periods of screening, without a restart (the looks ride on
    screenings: an idle screener notes a change at its next screening)."""

    def __init__(
        self,
        index: WatchListIndex,
        sink: DecisionSink | None = None,
        clock: Clock | None = None,
        remember: int = SCREENINGS_REMEMBERED,
        *,
        directory: Path | str | None = None,
        refresh_s: float = REFRESH_S,
    ) -> None:
        self.index = index
        self.directory = None if directory is None else Path(directory).resolve()
        self.refresh_s = refresh_s
        self._refresh_lock = threading.Lock()
        self._next_look = time.monotonic() + refresh_s
        self._loaded_key = None if self.directory is None else _lists_key(self.directory)
        self._changed_key: tuple[object, ...] | None = None  # seen once: waiting to settle
        self._failed_key: tuple[object, ...] | None = None  # would not load
        self._reloading = False
        self.sink = sink
        self.clock = clock
        # A screening is a function of the party and the index: the latest ``remember`` are
        # kept, as a payment scheme screens the same merchants again and again (0: none, for
        # benchmarks of the matching itself). Each screening is still logged as a decision.
        self.remember = remember
        self._memo: OrderedDict[Party, Screening] = OrderedDict()
        self._memo_index = index
        self._memo_lock = threading.Lock()

    @classmethod
    def from_directory(cls, directory: Path | str, **kwargs: Any) -> Screener:
        # What the files looked like before the index is built, not after: lists that land
        # while it is built are then seen as changed, and loaded a period later.
        key = _lists_key(Path(directory).resolve())
        screener = cls(watch_list_index(directory), directory=directory, **kwargs)
        screener._loaded_key = key
        return screener

    def refresh(self, *, wait: bool = False) -> bool:
        """Look whether the lists changed (see the class); True when a new index is being
        built, or (``wait``) was tried: built and swapped in, or logged as not loading.
        Screenings look themselves at most every ``refresh_s`` seconds; an operator's tool or
        a test may call it at any time."""
        return self._look(wait=wait, due_only=False)

    def _look(self, *, wait: bool, due_only: bool) -> bool:
        if self.directory is None:
            return False
        with self._refresh_lock:
            now = time.monotonic()
            if due_only and now < self._next_look:
                # Screenings that found the period over together: one looks. A second look
                # just after the first would take the change for settled and read a copy
                # half done.
                return False
            self._next_look = now + self.refresh_s
            if self._reloading:
                return False
            try:
                key = _lists_key(self.directory)
            except OSError as exc:
                log.error("cannot look at the sanctions lists at %s: %s", self.directory, exc)
                return False
            if key == self._loaded_key or key == self._failed_key:
                self._changed_key = None
                return False
            if key != self._changed_key:  # changed since the last look: let it settle
                self._changed_key = key
                return False
            self._reloading = True
        if wait:
            self._reload(key)
            return True
        try:
            threading.Thread(
                target=self._reload, args=(key,), name="sanctions-reload", daemon=True
            ).start()
        except RuntimeError as exc:  # out of threads: screen on, and look again next period
            with self._refresh_lock:
                self._reloading = False
            log.error(
                "cannot reload the sanctions lists at %s (%s): still screening against %s",
                self.directory,
                exc,
                self.index.version,
            )
            return False
        return True

    def _reload(self, key: tuple[object, ...]) -> None:
        assert self.directory is not None
        try:
            index = watch_list_index(self.directory)
        except Exception as exc:  # a bad file must not stop screening against the good ones
            with self._refresh_lock:
                self._failed_key, self._reloading = key, False
            log.error(
                "the sanctions lists at %s changed but do not load (%s): still screening "
                "against %s",
                self.directory,
                exc,
                self.index.version,
            )
            return
        with self._refresh_lock:
            old, self.index = self.index, index
            self._loaded_key, self._changed_key, self._reloading = key, None, False
        log.warning(
            "sanctions lists at %s reloaded: %s -> %s", self.directory, old.version, index.version
        )

    def screen(self, party: Party) -> Screening:
        return self.screen_many([party])[0]

    def screen_many(
        self, parties: Sequence[Party], *, requested_by: str | None = None
    ) -> list[Screening]:
        """Screen each party; each decision is logged (with a sink), naming ``requested_by``
        (the participant that asked, which may read it back) when given."""
        if self.directory is not None and time.monotonic() >= self._next_look:
            self._look(wait=False, due_only=True)
        results = [self._screen(p) for p in parties]
        if self.sink is not None:
            decisions = [
                self._decision(p, r, requested_by) for p, r in zip(parties, results, strict=True)
            ]
            self.sink.append(decisions)
            results = [
                Screening(**{**_fields(r), "decision_id": d.decision_id})
                for r, d in zip(results, decisions, strict=True)
            ]
        return results

    def _screen(self, party: Party) -> Screening:
        if self.remember <= 0:
            return self._match(party, self.index)
        with self._memo_lock:
            if self._memo_index is not self.index:  # the lists were replaced
                self._memo.clear()
                self._memo_index = self.index
            hit = self._memo.get(party)
            if hit is not None:
                self._memo.move_to_end(party)
                return hit
            index = self.index
        result = self._match(party, index)
        with self._memo_lock:
            if self._memo_index is index:
                self._memo[party] = result
                if len(self._memo) > self.remember:
                    self._memo.popitem(last=False)
        return result

    def _match(self, party: Party, index: WatchListIndex) -> Screening:
        readings = query_readings(party.name)
        q_toks = readings[0] or normalise(party.name).split()
        if not q_toks:
            raise EmptyName("the name to screen is empty", field="name")
        best_by_entry: dict[int, NameMatch] = {}

        def score(
            toks: list[str],
            sim: Callable[..., float],
            accept: Callable[[NameMatch, _Name], bool] | None = None,
            *,
            joined: str | None = None,
            mass: dict[int, float] | None = None,
        ) -> None:
            weights = [index.weight(t) for t in toks]
            ceilings = score_ceilings(weights)
            if mass is None:
                mass = index.mass(toks, joined=joined)
            # only a listed name of k tokens or more can reach a candidate's score: where the
            # names sharing a key with these tokens hold none (a long chain of names), ranking
            # them would change nothing
            k = next(k for k, c in enumerate(ceilings) if c >= CANDIDATE_FLOOR)
            if not index.holds_name_of(k, mass):
                return
            for n in index.shortlist(toks, joined=joined, mass=mass):
                name = index.name(n)
                if ceilings[min(len(name.toks), len(toks))] < CANDIDATE_FLOOR:
                    continue  # it cannot be a candidate: scoring it would change nothing
                m = score_name(toks, weights, name, sim)
                if accept is not None and not accept(m, name):
                    continue
                seen = best_by_entry.get(name.entry)
                if seen is None or m.score > seen.score:
                    best_by_entry[name.entry] = m

        # a name in Arabic script with a compound (سراج الدین) is read a second time with it
        # as one word (Sirajuddin), the better score per entry kept
        # a nasab (bin, ibn, bint, binti; بن, ابن, بنت) is read without its connectors too
        bare: list[list[str]] = []
        for b in map(without_nasab, readings):
            if b is not None and b not in readings and b not in bare:
                bare.append(b)
        q_mass = index.mass(q_toks)
        for toks in [q_toks, *readings[1:], *bare]:
            accept = None
            if toks in bare and name_count(toks) < 3:
                accept = _two_names_in_full
            if toks is q_toks:
                mass = q_mass
            elif toks in bare and set(toks) <= set(q_toks):
                mass = index.mass_without(q_mass, set(q_toks) - set(toks))
            else:
                mass = None
            score(toks, _pair_sim, accept, mass=mass)
            joined = index.joined_query(toks)
            if joined is not None:
                # Abuhafs Almasri, Abu Hafs al Masri: the particles joined on both sides. A
                # query with none apart is the same joined: its names as written were
                # screened above.
                j_toks, space = joined
                score(j_toks, _joined_pair_sim, accept, joined=space)
        abjad = any(is_abjad(t) for t in q_toks)
        judged = [
            _judge(index.entries[i], m, party, abjad)
            for i, m in best_by_entry.items()
            if m.score >= CANDIDATE_FLOOR
        ]
        judged.sort(key=lambda c: (-DECISION_RANK[c.decision], -c.score, c.ent_num))
        best = judged[0] if judged else None
        return Screening(
            query=party.name,
            decision=best.decision if best else "clear",
            score=best.score if best else 0.0,
            best=best,
            candidates=tuple(judged[:CANDIDATES_MAX]),
            list_version=index.version,
        )

    def _decision(
        self, party: Party, result: Screening, requested_by: str | None = None
    ) -> Decision:
        assert self.sink is not None  # a decision is made only to be logged
        inputs: dict[str, Any] = {
            "name_digest": self.sink.pseudonyms.digest(normalise(party.name)),
            "dob_year": party.dob.year if party.dob else None,
            "country": party.country,
            "type": party.party_type,
            "candidate": result.best.ent_num if result.best else None,
        }
        if requested_by is not None:
            inputs["requested_by"] = requested_by
        reasons = result.best.reasons if result.best else ("no listed name is close enough",)
        return make_decision(
            "sanctions", model_version=result.list_version, outcome=result.decision,
            score=result.score, reasons=reasons, inputs=inputs, clock=self.clock,
        )  # fmt: skip


def _fields(result: Screening) -> dict[str, Any]:
    return {f: getattr(result, f) for f in Screening.__dataclass_fields__}


__all__ = [
    "Candidate", "DobSpec", "Entry", "Party", "Screener", "Screening", "WatchListIndex",
    "load_watch_list", "make_party", "parse_dob", "parse_remarks", "watch_list_index",
]  # fmt: skip
