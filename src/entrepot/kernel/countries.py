"""ISO 3166-1 alpha-2 country codes: the ones assigned, not any two capitals.

The list is pycountry's copy of the standard (249 codes), plus ``XK``: Kosovo's user-assigned
code, which the IBAN registry, SWIFT and the EU use (Kosovo's IBANs start with it). ``ZZ`` or
``AA`` are shaped like a country and name none: a participant, hub or QR code placed there
would be screened, reported and settled as nowhere. Loaded on first use (pycountry reads its
database in ~50 ms; most commands never need it).
"""

from __future__ import annotations

from functools import cache
from typing import TypeGuard

__all__ = ["is_country"]

#: user-assigned codes in use by the payment industry beside the standard's own
_IN_USE = frozenset({"XK"})


@cache
def _assigned() -> frozenset[str]:
    import pycountry

    return frozenset(c.alpha_2 for c in pycountry.countries) | _IN_USE


def is_country(code: object) -> TypeGuard[str]:
    """Whether ``code`` is an assigned ISO 3166-1 alpha-2 code (upper case, as written)."""
    return isinstance(code, str) and len(code) == 2 and code in _assigned()
