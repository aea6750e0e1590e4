"""Text that people are shown and asked to trust: a payee's display name, a participant's
name, a merchant's name in a QR code, a transfer's note. None of it may hold a control
character (C0 or C1: U+0085 or U+009B can end a line or start a terminal escape where it is
printed), a lone surrogate, a non-character, a line or paragraph separator, or an invisible
formatting character: a direction override shows "Kedai\u202eLK ipoK" as another name, and a
zero-width space or byte-order mark makes two names that look one; nor a character that
renders as nothing though it is no format character (the Hangul fillers, the Braille blank,
the combining grapheme joiner). The joiners some scripts need in names (Persian, the Indic
scripts) are the only format characters allowed.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["first_refused", "refused_char", "shows_nothing"]

#: ZWNJ and ZWJ: the only format characters (Cf) a name may hold
_JOINERS = frozenset("\u200c\u200d")
#: control, lone surrogate, line and paragraph separator
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
_NONCHARACTERS = frozenset("\ufffe\uffff")
#: characters that render as nothing though Unicode does not class them as format characters:
#: the Hangul fillers (Lo: U+3164 shows "Kedai\u3164Kopi KL" as "Kedai Kopi KL"), the
#: Braille blank (So), the combining grapheme joiner (Mn) and Khmer's two inherent vowels,
#: which Unicode deprecates as invisible (Mn) (found by reviews). Variation selectors (emoji
#: presentation, Japanese names' ideographic variants) and Mongolian's free variation
#: selectors are kept: scripts and emoji need them.
_BLANKS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u034f\u17b4\u17b5")
#: what ASCII text may hold that is refused: C0 controls and DEL (the fast path)
_ASCII_REFUSED = re.compile("[\x00-\x1f\x7f]")


#: code points Unicode reserves as default-ignorable (unassigned: shown as nothing when they
#: are assigned, by software that follows the standard); the assigned ones are Cf or above
_RESERVED_IGNORABLE = ((0x2065, 0x2065), (0xFFF0, 0xFFF8), (0xE0000, 0xE0FFF))


def refused_char(char: str) -> bool:
    """Whether ``char`` (one character) may not appear in such text."""
    category = unicodedata.category(char)
    point = ord(char)
    return (
        category in _REFUSED_CATEGORIES
        or (category == "Cf" and char not in _JOINERS)
        or char in _NONCHARACTERS
        or char in _BLANKS
        or 0xFDD0 <= point <= 0xFDEF  # non-characters, as U+FFFE and U+FFFF
        or point & 0xFFFE == 0xFFFE  # the last two of every plane
        or (category == "Cn" and any(lo <= point <= hi for lo, hi in _RESERVED_IGNORABLE))
    )


def first_refused(text: str) -> int | None:
    """The index of the first character of ``text`` that may not appear in it, or None."""
    if text.isascii():  # most names and notes: one scan in C
        found = _ASCII_REFUSED.search(text)
        return None if found is None else found.start()
    return next((i for i, char in enumerate(text) if refused_char(char)), None)


#: variation selectors (U+FE00-FE0F, U+E0100-E01EF) and Mongolian's free ones: kept in a name
#: (they change how the character before them looks), but nothing of their own
_SELECTORS = ((0xFE00, 0xFE0F), (0xE0100, 0xE01EF), (0x180B, 0x180D), (0x180F, 0x180F))


def _shows_nothing_alone(char: str) -> bool:
    point = ord(char)
    return (
        char.isspace()
        or char in _JOINERS
        or unicodedata.category(char) in ("Mn", "Me")  # marks: on what comes before them
        or any(lo <= point <= hi for lo, hi in _SELECTORS)
    )


def shows_nothing(text: str) -> bool:
    """Whether ``text`` (its characters allowed, :func:`first_refused`) would show a person
    nothing: empty, or only spaces, joiners, variation selectors and combining marks, none of
    which is seen without a character to join, vary or mark (a name of only a ZWJ, or of a
    lone accent, passed the check for spaces and showed a payer a blank merchant)."""
    if text.isascii():
        return not text.strip()
    return all(_shows_nothing_alone(char) for char in text)
