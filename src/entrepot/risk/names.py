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
import unicodedata
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
SUN_ARTICLES = frozenset({"ad", "ar", "as", "ash", "at", "az", "an", "ud", "ur", "us", "un"})
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


#: Allah as the second half of a compound name, written apart (Nasr Allah, Hayat Ullah) or
#: joined (Nasrallah, Hayatullah): joined to the name before it.
ALLAH = frozenset({"allah", "ullah", "ollah"})


def join_particles(toks: list[str]) -> list[str]:
    """The tokens with each particle joined to the name after it, canonical: 'abu hafs al
    masri', 'abuhafs almasri' and 'abu hafs al-masri' all give ['abuhafs', 'almasri'];
    'abd al rahman', 'abdul rahman' and 'abdurrahman' give ['abdalrahman']. A particle last
    (nothing to join to) is kept as it is. Allah apart is joined to the name before it:
    'hasan nasr allah' gives ['hasan', 'nasrallah']."""
    if any(t in ALLAH for t in toks[1:]):
        merged: list[str] = []
        for token in toks:
            if token in ALLAH and merged and len(merged[-1]) >= 3:
                merged[-1] += token
            else:
                merged.append(token)
        toks = merged
    out: list[str] = []
    for token in reversed(toks):
        nxt = out[-1] if out else None
        if nxt is not None and len(nxt) >= 3:
            prefix = PARTICLES.get(token)
            if prefix is None and token in SUN_ARTICLES and nxt.startswith(token[1:]):
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
    return any(
        t in PARTICLES or t in SUN_ARTICLES or t in ALLAH or t.startswith("abd") for t in toks
    )


#: Nasab connectors, "son of" and "daughter of": bin, ibn (بن and ابن are read as bin), bint
#: (بنت), the Malay binti. "Ayman bin Muhammad bin Rabi al-Zawahiri" is Ayman Muhammad Rabi
#: al-Zawahiri as lists write him: a connector between two names names no one.
NASAB = frozenset({"bin", "ibn", "bint", "binti"})


def without_nasab(toks: Sequence[str]) -> list[str] | None:
    """The tokens with each nasab connector between two names left out ('ayman bin muhammad
    bin rabi al zawahiri' -> 'ayman muhammad rabi al zawahiri'), None where there is none. A
    connector first or last (Bin Laden Usama) is no connector: kept."""
    out = [
        t for i, t in enumerate(toks)
        if not (t in NASAB and 0 < i < len(toks) - 1 and toks[i - 1] not in NASAB)
    ]  # fmt: skip
    return out if len(out) < len(toks) else None


def name_count(toks: Sequence[str]) -> int:
    """The names among tokens: not a particle (al, bin, abu) nor a letter."""
    return sum(1 for t in toks if len(t) > 1 and t not in PARTICLES)


# --------------------------------------------------------------------------- Arabic script
#: Arabic, Persian and Urdu writing leaves short vowels out: "أيمن الظواهري" is the letters
#: ʾ-y-m-n al-ẓ-w-ā-h-r-y, and Unidecode makes "ymn lzwhry" of it, which no listed Latin
#: spelling (AL ZAWAHIRI, Ayman) comes near. A word in that script is instead written as one
#: symbol a letter (upper case and a few marks: never a Latin token's a-z0-9), which the
#: screening aligns with a listed Latin spelling, short vowels free to be absent
#: (``risk.sanctions._abjad_sim``). Each symbol stands for one letter or a few that Latin
#: spellings do not tell apart (ت and ط are both "t").
ABJAD = {
    # long vowels and vowel carriers: alif (A), alif with hamza above (O) and below (I),
    # waw (W), ya (Y); ayn and hamza (E), which Latin writes as a vowel, an apostrophe or not
    # at all; ta marbuta (@), a final -a/-ah/-at
    "ا": "A", "آ": "A", "ٱ": "A", "أ": "O", "إ": "I",
    # alif maqsura (Á): a final -a (مصطفى, Mustafa), and in Egypt's spelling a final ya (على)
    "ى": "Á",
    "و": "W", "ي": "Y", "ی": "Y", "ے": "Y",
    "ع": "E", "ء": "E", "ة": "@", "ۃ": "@",
    # hamza on a waw or a ya (Ŵ, Ŷ): a hamza, or the waw or ya it sits on (Urdu داؤد, Dawood)
    "ؤ": "Ŵ", "ئ": "Ŷ",
    # consonants
    "ب": "B", "پ": "P", "ت": "T", "ط": "T", "ٹ": "T", "ث": "C", "ج": "J", "چ": "Č",
    "ح": "H", "ه": "H", "ھ": "Ħ", "ہ": "H", "خ": "X", "د": "D", "ڈ": "D", "ذ": "Q", "ر": "R",
    "ڑ": "R", "ز": "Z", "ژ": "Ž", "س": "S", "ص": "S", "ش": "Š", "ض": "V", "ظ": "U", "غ": "G",
    "گ": "G", "ف": "F", "ق": "K", "ك": "K", "ک": "K", "ل": "L", "م": "M", "ن": "N", "ں": "N",
    # Pashto: ټ ډ ړ ڼ ګ as t d r n g; ښ sh or kh, ږ zh or g, ځ dz (z), څ ts (s); ې ۍ y
    "ټ": "T", "ډ": "D", "ړ": "R", "ڼ": "N", "ګ": "G", "ښ": "Š", "ږ": "Ž", "ځ": "Z", "څ": "S",
    "ې": "Y", "ۍ": "Y",
}  # fmt: skip
#: Letters of the Arabic script (presentation forms are folded to the letters by NFKC).
_LETTER = (
    r"[\u0621-\u063a\u0641-\u064a\u0671-\u06d3\u06d5\u06ee\u06ef\u06fa-\u06fc\u0750-\u077f"
    r"\u08a0-\u08c9\ufb50-\ufdff\ufe70-\ufefc]"
)
#: Short-vowel signs, tanwin, shadda, sukun, the small alif and other marks, tatweel: dropped
#: from a word before it is read (a word is its letters: عَبْدُ is عبد).
_MARK = r"[\u064b-\u065f\u0670\u0640\u06d6-\u06ed]"
_MARKS = re.compile(_MARK)
#: A word in that script (its letters, marks and the joiners that part one word's letters),
#: and a run of them with what separates them (a particle is read with the next word).
_WORD = rf"{_LETTER}(?:{_LETTER}|{_MARK}|[\u200c\u200d])*"
_ARABIC_RUN = re.compile(rf"{_WORD}(?:[\s.,\-\u060c\u061b]+{_WORD})*")
#: A letter or digit of another script: a run of Arabic letters glued to one is not read as
#: Arabic words ("Zawa" + a letter + "hiri" is one Latin word with a stray letter in it).
_OTHER_ALNUM = re.compile(
    r"[^\W_\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufeff]"
)
#: Lower-case letters of a particle joined to an Arabic word (abdal-, al-) as the symbol of
#: the same letter, so that the article's l and a name's L are one l (عبدالله is abd-allah).
_LATIN_AS_SYMBOL = {
    "b": "B", "d": "D", "f": "F", "g": "G", "h": "H", "k": "K", "l": "L", "m": "M", "n": "N",
    "p": "P", "r": "R", "s": "S", "t": "T",
}  # fmt: skip
#: Arabic particles written as words, as the Latin particle a listed name carries.
_ARABIC_PARTICLES = {
    "ابو": "abu", "أبو": "abu", "ابي": "abu", "أبي": "abu", "بن": "bin", "ابن": "bin",
    "إبن": "bin", "بنت": "bint", "ال": "al",
}  # fmt: skip
#: Titles written in the script, as the Latin title the screening weighs little (TITLES),
#: with or without the article: الشيخ is Sheikh, حاج Haji.
_ARABIC_TITLES = {
    "شيخ": "sheikh", "شیخ": "sheikh", "حاج": "haji", "حاجي": "haji", "حاجی": "haji",
    "دكتور": "dr", "دکتر": "dr", "ملا": "mullah", "مولوي": "mawlawi", "مولوی": "mawlawi",
    "مولانا": "maulana", "لواء": "general", "عقيد": "colonel",
}  # fmt: skip
#: Persian compound given names written as one word (محمدرضا, Mohammad Reza): the first name
#: and the second, each as a list writes them apart. Only these pairs: محمدی is Mohammadi and
#: علیزاده Alizadeh, one name each.
_COMPOUND_FIRST = ("محمد", "علی", "علي", "غلام", "امیر", "امير")
_COMPOUND_SECOND = frozenset({
    "رضا", "علی", "علي", "حسین", "حسين", "حسن", "جواد", "مهدی", "مهدي", "باقر", "تقی", "صادق",
    "کاظم", "كاظم", "اکبر", "اكبر", "اصغر", "امین", "هادی", "کریم", "رحیم", "عباس", "ابراهیم",
    "اسماعیل", "یوسف", "مصطفی", "مرتضی", "محمد", "رسول", "حمید", "سعید", "ناصر", "قاسم",
})  # fmt: skip
#: The Persian -ei written apart (خامنه ای) or after a joiner, and the suffixes of Persian
#: family names written apart (حاجی زاده, Hajizadeh; -pour, -nejad): part of the word before.
_SUFFIXES_APART = frozenset({"ای", "اي", "زاده", "پور", "نژاد"})
#: Urdu's letters for ه and ة (اللہ is الله), read as those before a word is looked at.
_URDU = str.maketrans({"ہ": "ه", "ۃ": "ة"})
#: Second names a compound joins with the article, written as one word or apart (نصیرالدین,
#: Nasiruddin; فضل الرحمن, Fazlurrahman; ضیاء الحق, Ziaulhaq): one word is parted.
_ARTICLE_COMPOUNDS = ("الدين", "الدین", "الرحمن", "الحق", "الاسلام", "الإسلام", "الله")
#: Their symbols after the article: a compound name in the second reading of a name
#: (:func:`query_readings`).
COMPOUND_TAILS = ("DYN", "RHMN", "HK", "ASLAM", "ISLAM")
#: Allah joined to the name before it, as symbols (نصر الله as NSRalLH, Nasrallah).
ALLAH_SYMBOLS = "alLH"
_ABD, _AL, _ALLAH = "عبد", "ال", "الله"
_LATIN_TOKEN = re.compile(r"[a-z0-9]*")


def has_arabic_script(text: str) -> bool:
    return _ARABIC_RUN.search(text) is not None


def is_abjad(token: str) -> bool:
    """Whether a query token came from Arabic script (holds a symbol, not only a-z0-9)."""
    return _LATIN_TOKEN.fullmatch(token) is None


def _symbols(word: str) -> str:
    """One Arabic-script word as symbols: what is no letter dropped, a letter written twice
    (shadda is rarely written) once; a ه before the Persian -ei (خامنه‌ای, Khamenei) as one a
    Latin spelling may leave out (Ħ), the alif after it, which only carries the e, dropped."""
    out: list[str] = []
    for ch in word:
        sym = ABJAD.get(ch)
        if sym == "Ħ" and out and out[-1] == "K":
            out[-1] = "X"  # Urdu's کھ is kh (Lakhvi)
        elif sym is not None and (not out or out[-1] != sym):
            out.append(sym)
    for i in range(len(out) - 2):
        if out[i] == "H" and out[i + 1] == "A" and out[i + 2] == "Y":
            out[i : i + 2] = ["Ħ"]  # its alif only carries the e: the -ei is "Ħ" + "Y"
            break
    return "".join(out)


def _words(run: str) -> list[str]:
    """The words of a run, their marks dropped and Urdu's ہ read as ه; the Persian -ei and the
    family suffixes written apart joined to the word before them; a compound with the article
    written as one word (نصیرالدین) and a Persian compound given name (محمدرضا) parted."""
    words: list[str] = []
    # a zero-width non-joiner parts the letters of one word (قلی‌زاده is Gholizadeh)
    for raw in re.split(r"[\s\u060c\u061b\u061f\u06d4.,;:!?()\-]+", run):
        word = _MARKS.sub("", raw).replace("\u200c", "").replace("\u200d", "")
        word = word.translate(_URDU)
        if not word:
            continue
        if word in _SUFFIXES_APART and words:
            words[-1] += word
            continue
        tail = next((t for t in _ARTICLE_COMPOUNDS if word.endswith(t)), None)
        if tail is not None and len(word) - len(tail) >= 2 and not word.startswith(_ABD):
            words += [word[: -len(tail)], tail]  # نصیرالدین as نصیر الدین
            continue
        for first in _COMPOUND_FIRST:
            if word.startswith(first) and word[len(first) :] in _COMPOUND_SECOND:
                words += [first, word[len(first) :]]
                break
        else:
            words.append(word)
    return words


def _title(word: str) -> str | None:
    """The Latin title a word in the script is, with or without the article (الشيخ)."""
    title = _ARABIC_TITLES.get(word)
    if title is None and word.startswith(_AL):
        title = _ARABIC_TITLES.get(word[len(_AL) :])
    return title


def _arabic_words(run: str) -> list[str]:
    """The tokens of a run of Arabic-script words: particles as their Latin spelling (abu, bin,
    al) and titles as theirs (sheikh, haji, dr); the article joined to a word kept with it as
    ``al`` + symbols (screened with and without it, as the joined space reads al-Zawahiri),
    Abd al- joined to the name after it (``abdal`` + symbols, as the index joins Abdul Rahman
    into abdalrahman), and Allah to the name before it (``NSRalLH``, Nasrallah)."""
    out: list[str] = []
    digits = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")
    pending_abd = False
    for word in _words(run):
        if word.translate(digits).isdigit():
            out.append(word.translate(digits))
            pending_abd = False
            continue
        particle = _ARABIC_PARTICLES.get(word)
        if word == _ABD:
            pending_abd = True
            continue
        if word.startswith(_ABD + _AL) and len(word) > len(_ABD + _AL) + 1:
            out.append("abdal" + _symbols(word[len(_ABD + _AL) :]))
            pending_abd = False
            continue
        if pending_abd:
            pending_abd = False
            if word.startswith(_AL) and len(word) > len(_AL) + 1:
                out.append("abdal" + _symbols(word[len(_AL) :]))
                continue
            out.append("abd")
        title = _title(word)
        if particle is not None:
            out.append(particle)
        elif title is not None:
            out.append(title)
        elif word == _ALLAH and out and is_abjad(out[-1]):
            out[-1] += ALLAH_SYMBOLS  # نصر الله, فضل الله: Latin writes Nasrallah, Fadlallah
        elif word.startswith(_AL) and len(word) > len(_AL) + 1:
            out.append("al" + _symbols(word[len(_AL) :]))
        else:
            out.append(_symbols(word))
    if pending_abd:
        out.append("abd")
    return [t for t in out if t]


def query_tokens(text: str) -> list[str]:
    """The tokens of a name to screen: :func:`tokens`, except that words in Arabic script
    become symbol tokens (:data:`ABJAD`) in their place among the Latin ones."""
    text = _MARKS.sub("", text)  # vowel signs alone are no letters (Unidecode made "a u i")
    if not has_arabic_script(text):
        return tokens(text)
    text = unicodedata.normalize("NFKC", text)
    runs = list(_ARABIC_RUN.finditer(text))
    for m in runs:
        before, after = text[m.start() - 1 : m.start()], text[m.end() : m.end() + 1]
        if _OTHER_ALNUM.match(before) or _OTHER_ALNUM.match(after):
            return tokens(text)  # read as before: Unidecode, the stray letters in the word
    out: list[str] = []
    start = 0
    for m in runs:
        out += tokens(text[start : m.start()])
        out += _arabic_words(m.group(0))
        start = m.end()
    return out + tokens(text[start:])


def is_compound_tail(token: str) -> bool:
    """Whether a symbol token is the article and the second name of a compound (alDYN: the
    al-Din of سراج الدین)."""
    return token.startswith("al") and token[2:] in COMPOUND_TAILS


def query_readings(text: str) -> list[list[str]]:
    """The readings of a name to screen: :func:`query_tokens`, and where a word in Arabic
    script is followed by the article and a second name of a compound (سراج الدین), the name
    with each such pair as one word too (SRAJəʟDYN: the article's vowel and its l, which Latin
    spellings assimilate, free), as lists write Sirajuddin, Fazlurrahman. A name holding a
    zero-width space is read with it as a space and as nothing."""
    readings = _readings(text)
    variants = _han_names(text) + _pinyin_names(readings[0])
    if _ZWSP in text:
        # An invisible zero-width space: Unidecode makes it a space, which parts a word
        # pasted with one inside ("Mal\u200beki"); some scripts part words with it. Both.
        variants.append(text.replace(_ZWSP, ""))
    for variant in variants:
        for reading in _readings(variant):
            if reading not in readings:
                readings.append(reading)
    return readings


_ZWSP = "\u200b"
#: A Chinese name written in Han characters, no space inside (李方伟)
_HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]{3,}")


def _han_names(text: str) -> list[str]:
    """``text`` with each run of three or more Han characters romanised as lists write a
    Chinese name: the family name, then the given name's syllables as one word (李方伟 as
    "Li Fangwei", the listed LI, Fangwei; Unidecode gives one word a syllable, "Li Fang
    Wei", which no listed name matched). A two-syllable family name (欧阳修, Ouyang) is not
    read apart: it flagged four times as many ordinary names as the pinyin does."""
    runs = list(_HAN_RUN.finditer(text))
    if not runs:
        return []
    parts: list[str] = []
    start = 0
    for m in runs:
        syllables = [unidecode(ch).strip() for ch in m.group(0)]
        parts += [text[start : m.start()], " ", syllables[0], " ", "".join(syllables[1:]), " "]
        start = m.end()
    return ["".join([*parts, text[start:]])]


#: A Mandarin syllable's shape in pinyin without tones: an initial, then a final
_PINYIN_SHAPE = re.compile(
    r"(zh|ch|sh|[bpmfdtnlgkhjqxrzcsyw])?"
    r"(iang|iong|uang|ueng|ang|eng|ing|ong|ian|iao|uai|uan|ai|ei|ao|ou|an|en|in|un"
    r"|ia|ie|iu|ua|uo|ui|ue|er|a|o|e|i|u)"
)


@lru_cache(maxsize=1)
def pinyin_syllables() -> frozenset[str]:
    """The Mandarin syllables, as Unidecode writes the CJK Unified Ideographs (the same
    romanisation the Han reading uses), less its Japanese readings (akutsu, boku: not the
    shape of a syllable). Built on first use, about 0.15 s."""
    words = {unidecode(chr(c)).strip().lower() for c in range(0x4E00, 0xA000)}
    return frozenset(w for w in words if _PINYIN_SHAPE.fullmatch(w))


def _pinyin_names(toks: Sequence[str]) -> list[str]:
    """A name of three pinyin syllables (Li Fang Wei, Fang Wei Li) read with two of them as
    one word, both ways round (Li Fangwei, Lifang Wei), as lists write a Chinese name's
    two-syllable given name (LI, Fangwei); else nothing. Three exactly: a fourth word is
    another name's, or a Western name's (Anna, Lee: no syllable) is not Chinese."""
    if len(toks) != 3 or not all(t in pinyin_syllables() for t in toks):
        return []
    a, b, c = toks
    return [f"{a} {b}{c}", f"{a}{b} {c}"]


def _readings(text: str) -> list[list[str]]:
    first = query_tokens(text)
    second: list[str] = []
    for token in first:
        prev = second[-1] if second else None
        if (
            prev is not None
            and is_abjad(prev)
            and is_compound_tail(token)
            and not prev.startswith(("al", "abd", "abu", "bin"))
        ):
            second[-1] = prev + "əʟ" + token[2:]
        else:
            second.append(token)
    return [first] if second == first else [first, second]


def abjad_canonical(token: str) -> str:
    """A symbol token with the Latin letters of a particle joined to it as symbols where one
    stands for the same letter (abdalLH: a B D a L H), doubled symbols once."""
    out: list[str] = []
    for ch in token:
        sym = _LATIN_AS_SYMBOL.get(ch, ch)
        if not out or out[-1] != sym:
            out.append(sym)
    return "".join(out)


#: Symbol -> what it may be in a folded Latin key (:func:`abjad_key`): consonants only, since
#: a key drops vowels, v (w) and i (y, j) the way the alignment lets them be absent.
_KEY_VARIANTS: dict[str, tuple[str, ...]] = {
    "B": ("b",), "P": ("p", "b"), "T": ("t",), "C": ("t", "s"), "J": ("", "g"),
    "Č": ("kh",), "H": ("h",), "Ħ": ("h", ""), "X": ("h",), "ʟ": ("l", ""), "D": ("d",),
    "Q": ("d", "dh", "s", "t"),
    "R": ("r",), "Z": ("s",), "Ž": ("",), "S": ("s",), "Š": ("sh", "kh"), "V": ("d", "dh", "s"),
    "U": ("s", "d", "dh", "t"), "G": ("g",), "F": ("f",), "K": ("k", "g"), "L": ("l",),
    "M": ("m",), "N": ("n",),
}  # fmt: skip
_KEY_DROPPED = frozenset("aiuv")
#: More spellings than this of one symbol token are not keyed (a pathological run of
#: ambiguous letters); its first variants still are.
_KEY_VARIANTS_MAX = 64


def latin_abjad_key(folded: str) -> str:
    """A folded Latin token as an Arabic spelling could key it: vowels, v (w) and i (y, j)
    dropped, a final h too (a ta marbuta written -ah): savahiri -> shr, muhamad -> mhmd."""
    return _without_final_h("".join(ch for ch in folded if ch not in _KEY_DROPPED))


def _without_final_h(key: str) -> str:
    return key[:-1] if key.endswith("h") else key


@lru_cache(maxsize=50_000)
def abjad_keys(token: str) -> tuple[str, ...]:
    """The Latin keys (:func:`latin_abjad_key`) a symbol token may have: one a reading of its
    ambiguous letters (ذ is d, dh, z or th)."""
    keys = [""]
    for ch in abjad_canonical(token):
        options = _KEY_VARIANTS.get(ch)
        if options is None:  # a vowel (a Latin one, a vowel letter) or a Latin letter as itself
            options = (ch,) if "a" <= ch <= "z" and ch not in _KEY_DROPPED else ("",)
        keys = [k + o for k in keys for o in options][:_KEY_VARIANTS_MAX]
    return tuple(dict.fromkeys(_without_final_h(k) for k in keys))
