"""Alias formats: MSISDN (E.164), merchant till id, IBAN (ISO 13616, by schwifty's registry),
business registration id. Normalise, then validate; a bad alias is a clear error."""

from __future__ import annotations

import re

from schwifty import IBAN
from schwifty.exceptions import SchwiftyException

from entrepot.payments.errors import InvalidPaymentInput
from entrepot.payments.model import AliasType

# Matched whole (``fullmatch``): ``$`` also matches before a final newline, so a number that
# ended in "\n" once passed as E.164 and registered as a second copy of a real one.
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
#: The longest merchant till id (what the API's QR encoding takes too)
TILL_LEN_MAX = 32
_TILL = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{TILL_LEN_MAX - 1}}}")
# No "/": the API names a party in its path (/v1/parties/BUSINESS/{id}), where a slash (or
# %2F, decoded before routing) cannot be: one registered with a slash could not be reached.
_BUSINESS = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ -]{1,39}")
_SPACES = re.compile(" +")
# "+44 (0)20 ...": a trunk prefix in brackets, which E.164 leaves out in some countries and
# keeps in others (Italy): refused rather than guessed.
_BRACKETED_TRUNK = re.compile(r"\(\s*0\s*\)")


def _iban(value: str, text: str) -> str:
    """``text`` as a valid IBAN (compact, upper case), by schwifty's registry: the country
    has IBANs, the length is its length, the BBAN has its format, the check digits are 02-98
    and pass mod-97. The countries that issue IBANs nationally without being in ISO 13616's
    registry (schwifty's "aspirational": UEMOA, CEMAC, Morocco, ...) are accepted on purpose
    (docs/payments.md, Lookup)."""
    try:
        return str(IBAN(text).compact)
    except SchwiftyException as exc:
        raise InvalidPaymentInput(f"IBAN {value!r} is not valid: {exc}", field="id") from None


def normalise_alias(alias_type: AliasType | str, value: str) -> tuple[AliasType, str]:
    try:
        kind = AliasType(alias_type)
    except ValueError:
        kinds = ", ".join(a.value for a in AliasType)
        raise InvalidPaymentInput(
            f"unknown alias type {alias_type!r}; use one of {kinds}", field="type"
        ) from None
    raw = value.strip()
    if kind is AliasType.MSISDN:
        if _BRACKETED_TRUNK.search(raw):
            raise InvalidPaymentInput(
                f"MSISDN {value!r} has a trunk prefix in brackets: give the number as E.164 "
                "(without it where the country drops it, e.g. +44 20 ...)",
                field="id",
            )
        text = re.sub(r"[ ()-]", "", raw)
        if not _E164.fullmatch(text):
            raise InvalidPaymentInput(
                f"MSISDN {value!r} is not in E.164 form (+ country code and 7-15 digits)",
                field="id",
            )
        return kind, text
    if kind is AliasType.IBAN:
        return kind, _iban(value, raw.replace(" ", "").upper())
    pattern = _TILL if kind is AliasType.MERCHANT else _BUSINESS
    if not pattern.fullmatch(raw):
        raise InvalidPaymentInput(f"{kind.value} id {value!r} is malformed", field="id")
    if kind is AliasType.BUSINESS:
        # typed by people, from a registry's certificate: "acme ltd 12345" and "ACME  Ltd
        # 12345" are one business, which registered as three parties, at three participants
        # (a payer's lower case paid whoever held that spelling). A till is matched as its QR
        # carries it, case and all.
        return kind, business_id(raw)
    return kind, raw


def business_id(text: str) -> str:
    """A business id as the directory keeps it: upper case, one space between words (of a
    value already checked to be ASCII letters, digits, ``.``, ``_``, ``-`` and spaces)."""
    return _SPACES.sub(" ", text).upper()


def alias_text(kind: str, value: str) -> str:
    """A normalised alias as a quote or transfer row keeps it (``payer_alias``,
    ``payee_alias``): ``TYPE:value``. Rows are written and compared in this one form."""
    return f"{kind}:{value}"
