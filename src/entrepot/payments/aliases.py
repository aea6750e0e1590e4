"""Alias formats: MSISDN (E.164), merchant till id, IBAN (ISO 13616 with mod-97 check digits),
business registration id. Normalise, then validate; a bad alias is a clear error."""

from __future__ import annotations

import re

from entrepot.payments.errors import InvalidPaymentInput
from entrepot.payments.model import AliasType

_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_TILL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
_BUSINESS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9/._ -]{1,39}$")
_IBAN = re.compile(r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$")
# Lengths of the countries the seed's hubs and their partners use (ISO 13616 registry).
IBAN_LENGTHS = {
    "AE": 23,
    "BE": 16,
    "CH": 21,
    "DE": 22,
    "ES": 24,
    "FR": 27,
    "GB": 22,
    "IT": 27,
    "LU": 20,
    "NL": 18,
    "PL": 28,
    "PT": 25,
    "SA": 24,
    "SE": 24,
    "TN": 24,
    "EG": 29,
}


def iban_checksum_ok(iban: str) -> bool:
    rearranged = iban[4:] + iban[:4]
    digits = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(digits) % 97 == 1


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
        text = re.sub(r"[ ()-]", "", raw)
        if not _E164.match(text):
            raise InvalidPaymentInput(
                f"MSISDN {value!r} is not in E.164 form (+ country code and 7-15 digits)",
                field="id",
            )
        return kind, text
    if kind is AliasType.IBAN:
        text = raw.replace(" ", "").upper()
        if not _IBAN.match(text):
            raise InvalidPaymentInput(f"IBAN {value!r} is malformed", field="id")
        expected = IBAN_LENGTHS.get(text[:2])
        if expected is not None and len(text) != expected:
            raise InvalidPaymentInput(
                f"IBAN {value!r} has {len(text)} characters; {text[:2]} IBANs have {expected}",
                field="id",
            )
        if not iban_checksum_ok(text):
            raise InvalidPaymentInput(f"IBAN {value!r} fails its mod-97 check digits", field="id")
        return kind, text
    pattern = _TILL if kind is AliasType.MERCHANT else _BUSINESS
    if not pattern.match(raw):
        raise InvalidPaymentInput(f"{kind.value} id {value!r} is malformed", field="id")
    return kind, raw


def alias_text(kind: str, value: str) -> str:
    """A normalised alias as a quote or transfer row keeps it (``payer_alias``,
    ``payee_alias``): ``TYPE:value``. Rows are written and compared in this one form."""
    return f"{kind}:{value}"
