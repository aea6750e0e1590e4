"""EMVCo Merchant-Presented Mode (MPM) QR codes: decode, validate, encode, build, render.

A payload is a flat list of TLV data objects: a 2-digit id, a 2-digit length and the value.
Some ids are templates whose value is itself a list of data objects (one level deep, two under
tag 62). :class:`QrPayload` keeps every object in the order it was read, unknown and reserved
ones included, so ``encode(decode(text)) == text`` byte for byte (but for a lower-case CRC).

Invariants (checked when a :class:`QrPayload` is built, so a decoded or constructed payload is
always valid):

- Tag 00 (payload format indicator, "01") comes first; tag 63 (CRC) is not stored: :func:`encode`
  appends it last. Beyond that the specification fixes no order (its own example puts 64 before
  54), so none is enforced.
- No id appears twice at the top level or within a template.
- Tags 00, 52, 53, 58, 59, 60 and at least one merchant account (02-51) are present.
- Merchant account templates (26-51), unreserved templates (80-99) and tag 62's payment system
  templates (50-99) start with sub-tag 00, the globally unique identifier.
- Lengths count characters, not bytes; a value holds 1-99 characters; a whole payload at most
  :data:`PAYLOAD_LEN_MAX`. The CRC is CRC-16/CCITT-FALSE over the UTF-8 bytes of everything up to
  and including "6304", written as 4 hex digits. :func:`encode` writes them in upper case, as
  MPM v1.1 requires (CRC, ID "63"); :func:`decode` also takes lower-case ones, as some
  generators in the field write them (the same 16-bit value, so no corruption is let through),
  which is then the one difference between ``encode(decode(text))`` and ``text``.
- Values are valid for their tag: 53 is a known ISO 4217 numeric code, 54/56 are not zero
  and carry no more decimals than that currency's exponent, and 57 is a percentage from 00.01
  to 99.99 in hundredths (at most two decimals).

Every rejection is a :class:`QrError` (an ``InvalidPaymentInput``, so an ``InvalidInput``, and
a ``ValueError``) with a stable ``code``, a ``detail`` naming the tag and its character position,
and the tag path as ``field``.
"""

from __future__ import annotations

import binascii
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import BinaryIO

import segno

from entrepot.kernel.countries import is_country
from entrepot.kernel.money import CURRENCIES, Currency, format_amount, get_currency, parse_amount
from entrepot.kernel.text import first_refused, shows_nothing
from entrepot.payments.errors import InvalidPaymentInput

__all__ = [
    "ADDITIONAL_DATA_NAMES",
    "DEFAULT_GUID",
    "PAYLOAD_LEN_MAX",
    "DataObject",
    "MerchantLanguage",
    "QrBadCrc",
    "QrBadLength",
    "QrBadTag",
    "QrBadValue",
    "QrDuplicateTag",
    "QrError",
    "QrMissingTag",
    "QrPayload",
    "QrTagOrder",
    "QrUnknownCurrency",
    "build_merchant_qr",
    "crc16_ccitt_false",
    "decode",
    "encode",
    "make_symbol",
    "render_png",
    "render_svg",
]

#: Longest payload, CRC included (EMVCo MPM 4.1).
PAYLOAD_LEN_MAX = 512
#: A value holds 1..99 characters: the length field has two digits and "00" is not allowed.
VALUE_LEN_MAX = 99
#: The globally unique identifier build_merchant_qr puts in sub-tag 00 of its account template.
DEFAULT_GUID = "org.entrepot"
#: Sub-tags of tag 62 (additional data field template) with a name, as additional_data keys.
ADDITIONAL_DATA_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "01": "bill_number",
        "02": "mobile_number",
        "03": "store_label",
        "04": "loyalty_number",
        "05": "reference_label",
        "06": "customer_label",
        "07": "terminal_label",
        "08": "purpose_of_transaction",
        "09": "additional_consumer_data_request",
        "10": "merchant_tax_id",
        "11": "merchant_channel",
    }
)

#: A tag 62 sub-tag (01-07) of this value asks the payer's app to prompt for it (v1.1:
#: "the mobile application should prompt the consumer for the input").
PROMPT = "***"
#: The tag 62 values a payer enters for an Entrepot payment where the QR prompts for them:
#: those its note carries (the bill, the reference, the terminal). A prompt for another
#: (mobile number, store, loyalty number, customer label) is not asked for: nothing carries it.
PAYER_ENTERED = ("bill_number", "reference_label", "terminal_label")

_TAG_CRC = "63"
_TAG_RE = re.compile(r"[0-9]{2}")
_HEX4_RE = re.compile(r"[0-9A-Fa-f]{4}")
_AMOUNT_RE = re.compile(r"[0-9]+(?:\.[0-9]*)?")
_MANDATORY_TAGS = ("00", "52", "53", "58", "59", "60")
_MERCHANT_ACCOUNT_TAGS = frozenset(f"{n:02d}" for n in range(2, 52))
_CURRENCY_BY_NUMERIC: Mapping[str, Currency] = MappingProxyType(
    {currency.numeric: currency for currency in CURRENCIES.values()}
)
_SEGNO_ERROR_LEVELS = frozenset({"L", "M", "Q", "H"})


# --- errors -------------------------------------------------------------------------------------


class QrError(InvalidPaymentInput, ValueError):
    """Base of QR errors: bad input (an InvalidInput, Mojaloop 3100, HTTP 422) and a ValueError."""

    code = "qr_error"


class QrBadCrc(QrError):
    code = "qr_bad_crc"


class QrBadLength(QrError):
    """A length field is not two digits, is 00, overruns the text, or a value is too long."""

    code = "qr_bad_length"


class QrBadTag(QrError):
    """An id is not two ASCII digits."""

    code = "qr_bad_tag"


class QrDuplicateTag(QrError):
    code = "qr_duplicate_tag"


class QrTagOrder(QrError):
    """Tag 00 not first, tag 63 not last, or a template's sub-tag 00 not first."""

    code = "qr_tag_order"


class QrMissingTag(QrError):
    code = "qr_missing_tag"


class QrBadValue(QrError):
    code = "qr_bad_value"


class QrUnknownCurrency(QrBadValue):
    code = "qr_unknown_currency"


# --- model --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DataObject:
    """One TLV data object; a template's value is a tuple of nested data objects."""

    tag: str
    value: str | tuple[DataObject, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.tag, str) or _TAG_RE.fullmatch(self.tag) is None:
            raise QrBadTag(f"tag {self.tag!r}: an id is two ASCII digits", field=str(self.tag))
        if isinstance(self.value, tuple):
            if not all(isinstance(child, DataObject) for child in self.value):
                raise TypeError(f"tag {self.tag}: a template's value is a tuple of DataObject")
        elif not isinstance(self.value, str):
            raise TypeError(f"tag {self.tag}: value must be a str or a tuple of DataObject")

    @property
    def is_template(self) -> bool:
        return isinstance(self.value, tuple)

    @property
    def text(self) -> str:
        """The value as it is written in the payload (a template's children, encoded)."""
        if isinstance(self.value, str):
            return self.value
        return "".join(child.encode() for child in self.value)

    def encode(self) -> str:
        text = self.text
        return f"{self.tag}{len(text):02d}{text}"

    def find(self, tag: str) -> DataObject | None:
        """The nested data object with this id, or None (always None for a primitive)."""
        if isinstance(self.value, str):
            return None
        return next((child for child in self.value if child.tag == tag), None)

    def find_value(self, tag: str) -> str | None:
        """The primitive value of nested sub-tag ``tag``, or None."""
        child = self.find(tag)
        return child.value if child is not None and isinstance(child.value, str) else None


@dataclass(frozen=True, slots=True)
class MerchantLanguage:
    """Tag 64: the merchant's name and city in an alternate language (ISO 639-1 preference)."""

    preference: str
    merchant_name: str
    city: str | None = None


@dataclass(frozen=True, slots=True)
class QrPayload:
    """A valid MPM payload: its data objects in order, tag 63 (CRC) excluded."""

    objects: tuple[DataObject, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.objects, tuple) or not all(
            isinstance(obj, DataObject) for obj in self.objects
        ):
            raise TypeError("QrPayload.objects must be a tuple of DataObject")
        _check_payload(self.objects)

    @property
    def text(self) -> str:
        """The encoded payload, CRC included; same as ``encode(self)``."""
        return encode(self)

    def find(self, tag: str) -> DataObject | None:
        return next((obj for obj in self.objects if obj.tag == tag), None)

    def find_value(self, tag: str) -> str | None:
        """The primitive value of top-level tag ``tag``, or None."""
        obj = self.find(tag)
        return obj.value if obj is not None and isinstance(obj.value, str) else None

    def _value(self, tag: str) -> str:
        value = self.find_value(tag)
        assert value is not None, f"mandatory tag {tag} checked at construction"
        return value

    @property
    def payload_format(self) -> str:
        return self._value("00")

    @property
    def point_of_initiation(self) -> str | None:
        """ "11" (static: reused for many payments), "12" (dynamic: one payment) or None."""
        return self.find_value("01")

    @property
    def is_dynamic(self) -> bool:
        return self.point_of_initiation == "12"

    @property
    def merchant_accounts(self) -> tuple[DataObject, ...]:
        """Merchant account information (tags 02-51), in payload order."""
        return tuple(obj for obj in self.objects if obj.tag in _MERCHANT_ACCOUNT_TAGS)

    def find_merchant_alias(self, guid: str = DEFAULT_GUID) -> str | None:
        """Sub-tag 01 of the account template whose globally unique id is ``guid``, or None."""
        return self._account_value(guid, "01")

    def find_acquirer(self, guid: str = DEFAULT_GUID) -> str | None:
        """Sub-tag 02 of the account template whose globally unique id is ``guid``: in an
        Entrepot template, the participant that registered the till when the QR was made
        (:func:`build_merchant_qr`), or None (a QR made without it)."""
        return self._account_value(guid, "02")

    def _account_value(self, guid: str, tag: str) -> str | None:
        for account in self.merchant_accounts:
            if account.find_value("00") == guid:
                return account.find_value(tag)
        return None

    @property
    def mcc(self) -> str:
        return self._value("52")

    @property
    def currency(self) -> Currency:
        return _CURRENCY_BY_NUMERIC[self._value("53")]

    @property
    def amount_minor(self) -> int | None:
        text = self.find_value("54")
        return None if text is None else _amount_minor(text, self.currency)

    @property
    def tip_indicator(self) -> str | None:
        """ "01" (payer enters a tip), "02" (fixed fee, tag 56), "03" (percentage, tag 57)."""
        return self.find_value("55")

    @property
    def convenience_fee_fixed_minor(self) -> int | None:
        text = self.find_value("56")
        return None if text is None else _amount_minor(text, self.currency)

    @property
    def convenience_fee_percentage(self) -> Decimal | None:
        text = self.find_value("57")
        return None if text is None else Decimal(text)

    @property
    def country(self) -> str:
        return self._value("58")

    @property
    def merchant_name(self) -> str:
        return self._value("59")

    @property
    def city(self) -> str:
        return self._value("60")

    @property
    def postal_code(self) -> str | None:
        return self.find_value("61")

    @property
    def prompts(self) -> tuple[str, ...]:
        """The PAYER_ENTERED names whose value is ``***``: a payment by the QR needs what the
        payer entered for each."""
        data = self.additional_data
        return tuple(name for name in PAYER_ENTERED if data.get(name) == PROMPT)

    @property
    def additional_data(self) -> dict[str, str]:
        """Tag 62's primitive sub-tags: named keys for 01-11 (ADDITIONAL_DATA_NAMES), else ids.

        Payment system templates (50-99) are left out; read them with ``find("62")``.
        """
        template = self.find("62")
        if template is None or isinstance(template.value, str):
            return {}
        return {
            ADDITIONAL_DATA_NAMES.get(child.tag, child.tag): child.value
            for child in template.value
            if isinstance(child.value, str)
        }

    @property
    def language(self) -> MerchantLanguage | None:
        template = self.find("64")
        if template is None:
            return None
        preference, name = template.find_value("00"), template.find_value("01")
        assert preference is not None and name is not None, "checked at construction"
        return MerchantLanguage(preference, name, template.find_value("02"))


def _amount_minor(text: str, currency: Currency) -> int:
    # The spec allows a trailing "." with no decimals ("98."); parse_amount does not.
    return parse_amount(text[:-1] if text.endswith(".") else text, currency)


# --- tag rules ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rule:
    """What a primitive value of one tag must look like."""

    name: str
    len_min: int = 1
    len_max: int = VALUE_LEN_MAX
    pattern: re.Pattern[str] | None = None
    expected: str = ""


def _rules(tags: Iterable[int], rule: _Rule) -> dict[str, _Rule]:
    return {f"{tag:02d}": rule for tag in tags}


_AMOUNT_WHAT = "digits with an optional single '.', like '23.72'"
_TOP_RULES: Mapping[str, _Rule] = MappingProxyType(
    {
        "00": _Rule("payload format indicator", 2, 2, re.compile("01"), "'01'"),
        "01": _Rule("point of initiation method", 2, 2, re.compile("1[12]"), "'11' or '12'"),
        **_rules(range(2, 26), _Rule("merchant account information")),
        "52": _Rule("merchant category code", 4, 4, re.compile("[0-9]{4}"), "4 digits"),
        "53": _Rule("transaction currency", 3, 3, re.compile("[0-9]{3}"), "ISO 4217 numeric"),
        "54": _Rule("transaction amount", 1, 13, _AMOUNT_RE, _AMOUNT_WHAT),
        "55": _Rule("tip or convenience indicator", 2, 2, re.compile("0[123]"), "01, 02 or 03"),
        "56": _Rule("convenience fee fixed", 1, 13, _AMOUNT_RE, _AMOUNT_WHAT),
        "57": _Rule("convenience fee percentage", 1, 5, _AMOUNT_RE, _AMOUNT_WHAT),
        "58": _Rule("country code", 2, 2, re.compile("[A-Z]{2}"), "ISO 3166-1 alpha-2"),
        "59": _Rule("merchant name", 1, 25),
        "60": _Rule("merchant city", 1, 15),
        "61": _Rule("postal code", 1, 10),
        **_rules(range(65, 80), _Rule("RFU for EMVCo")),
    }
)
_GUID_RULE = _Rule("globally unique identifier", 1, 32)
_ACCOUNT_SUB_RULES: Mapping[str, _Rule] = MappingProxyType(
    {"00": _GUID_RULE, **_rules(range(1, 100), _Rule("payment network specific"))}
)
_ADDITIONAL_SUB_RULES: Mapping[str, _Rule] = MappingProxyType(
    {
        **_rules([0, *range(12, 50)], _Rule("RFU for EMVCo")),
        **{
            tag: _Rule(name.replace("_", " "), 1, 25) for tag, name in ADDITIONAL_DATA_NAMES.items()
        },
        "09": _Rule(
            "additional consumer data request",
            1,
            3,
            re.compile(r"(?!.*(.).*\1)[AME]{1,3}"),
            "1-3 distinct letters of A, M, E",
        ),
        "10": _Rule("merchant tax id", 1, 20),
        "11": _Rule("merchant channel", 3, 3),
    }
)
_LANGUAGE_SUB_RULES: Mapping[str, _Rule] = MappingProxyType(
    {
        "00": _Rule("language preference", 2, 2, re.compile("[A-Za-z]{2}"), "ISO 639-1 alpha-2"),
        "01": _Rule("merchant name alternate language", 1, 25),
        "02": _Rule("merchant city alternate language", 1, 15),
        **_rules(range(3, 100), _Rule("RFU for EMVCo")),
    }
)


@dataclass(frozen=True, slots=True)
class _Template:
    """What a template tag holds: rules for its sub-tags, which sub-tags are templates."""

    name: str
    sub_rules: Mapping[str, _Rule]
    sub_templates: Mapping[str, _Template]
    guid_first: bool
    mandatory: tuple[str, ...]


def _templates(tags: Iterable[int], template: _Template) -> dict[str, _Template]:
    return {f"{tag:02d}": template for tag in tags}


def _guid_template(name: str) -> _Template:
    return _Template(name, _ACCOUNT_SUB_RULES, {}, guid_first=True, mandatory=("00",))


_PAYMENT_SYSTEM_TEMPLATE = _guid_template("payment system specific template")
_TOP_TEMPLATES: Mapping[str, _Template] = MappingProxyType(
    {
        **_templates(range(26, 52), _guid_template("merchant account information")),
        "62": _Template(
            "additional data field template",
            _ADDITIONAL_SUB_RULES,
            _templates(range(50, 100), _PAYMENT_SYSTEM_TEMPLATE),
            guid_first=False,
            mandatory=(),
        ),
        "64": _Template(
            "merchant information language template",
            _LANGUAGE_SUB_RULES,
            {},
            guid_first=False,
            mandatory=("00", "01"),
        ),
        **_templates(range(80, 100), _guid_template("unreserved template")),
    }
)


# --- validation ---------------------------------------------------------------------------------


def _where(path: str, name: str, position: int) -> str:
    return f"tag {path} ({name}) at position {position}"


def _encoded_len(obj: DataObject) -> int:
    return 4 + len(obj.text)


def _positions(objects: tuple[DataObject, ...], start: int) -> list[int]:
    """Character offset of each object's id, for objects encoded from ``start`` on."""
    out = []
    for obj in objects:
        out.append(start)
        start += _encoded_len(obj)
    return out


def _check_payload(objects: tuple[DataObject, ...]) -> None:
    positions = _positions(objects, 0)
    _check_no_duplicates(objects, positions, "")
    tags = [obj.tag for obj in objects]
    if "00" not in tags:
        raise QrMissingTag("tag 00 (payload format indicator) is missing", field="00")
    if tags[0] != "00":
        raise QrTagOrder(
            f"tag 00 (payload format indicator) must come first, found at position "
            f"{positions[tags.index('00')]} after tag {tags[0]} at position 0",
            field="00",
        )
    if _TAG_CRC in tags:
        raise QrTagOrder(
            f"tag 63 (CRC) at position {positions[tags.index(_TAG_CRC)]}: the CRC goes last and "
            "is computed by encode(); leave it out of QrPayload.objects",
            field=_TAG_CRC,
        )
    for obj, position in zip(objects, positions, strict=True):
        _check_top_object(obj, position)
    _check_mandatory(tags)
    _check_money_fields(objects, positions)
    total = (positions[-1] + _encoded_len(objects[-1])) + 8
    if total > PAYLOAD_LEN_MAX:
        raise QrBadLength(
            f"payload is {total} characters with its CRC, at most {PAYLOAD_LEN_MAX}",
            field="payload",
        )


def _check_no_duplicates(objects: tuple[DataObject, ...], positions: list[int], path: str) -> None:
    first_seen: dict[str, int] = {}
    for obj, position in zip(objects, positions, strict=True):
        if obj.tag in first_seen:
            raise QrDuplicateTag(
                f"tag {path}{obj.tag} appears twice: at positions {first_seen[obj.tag]} "
                f"and {position}",
                field=path + obj.tag,
            )
        first_seen[obj.tag] = position


def _check_top_object(obj: DataObject, position: int) -> None:
    template = _TOP_TEMPLATES.get(obj.tag)
    if template is not None:
        _check_template(obj, template, obj.tag, position)
        return
    rule = _TOP_RULES.get(obj.tag)
    assert rule is not None, f"every top-level id but 63 has a rule or a template: {obj.tag}"
    _check_primitive(obj, rule, obj.tag, position)


#: the tags a payer is shown as the merchant's name and city (64: in another language)
_SHOWN_NAMES = frozenset({"59", "60", "64.01", "64.02"})


def _check_primitive(obj: DataObject, rule: _Rule, path: str, position: int) -> None:
    where = _where(path, rule.name, position)
    if not isinstance(obj.value, str):
        raise QrBadValue(f"{where}: not a template; its value is text", field=path)
    value = obj.value
    if not 1 <= len(value) <= VALUE_LEN_MAX:
        raise QrBadLength(
            f"{where}: {len(value)} characters, a value holds 1 to {VALUE_LEN_MAX}", field=path
        )
    if not rule.len_min <= len(value) <= rule.len_max:
        expected = (
            f"exactly {rule.len_min}"
            if rule.len_min == rule.len_max
            else f"{rule.len_min} to {rule.len_max}"
        )
        raise QrBadValue(
            f"{where}: {len(value)} characters, expected {expected}: {value!r}", field=path
        )
    at = first_refused(value)
    if at is not None:
        raise QrBadValue(
            f"{where}: control or invisible formatting character {value[at]!r} in {value!r}",
            field=path,
        )
    if path in _SHOWN_NAMES and shows_nothing(value):
        # the directory refuses a name that shows nothing; a QR showed the payer one (reviews:
        # of spaces, then of joiners, selectors or marks alone)
        raise QrBadValue(
            f"{where}: only spaces, joiners or marks, a payer is shown nothing", field=path
        )
    if rule.pattern is not None and rule.pattern.fullmatch(value) is None:
        raise QrBadValue(f"{where}: {value!r} is not {rule.expected}", field=path)


def _check_template(obj: DataObject, template: _Template, path: str, position: int) -> None:
    where = _where(path, template.name, position)
    if not isinstance(obj.value, tuple):
        raise QrBadValue(f"{where}: a template; its value is nested data objects", field=path)
    children = obj.value
    if not 1 <= len(obj.text) <= VALUE_LEN_MAX:
        raise QrBadLength(
            f"{where}: {len(obj.text)} characters, expected 1 to {VALUE_LEN_MAX}", field=path
        )
    positions = _positions(children, position + 4)
    _check_no_duplicates(children, positions, path + ".")
    tags = [child.tag for child in children]
    for tag in template.mandatory:
        if tag not in tags:
            rule = template.sub_rules[tag]
            raise QrMissingTag(f"{where}: sub-tag {tag} ({rule.name}) is missing", field=path)
    if template.guid_first and tags[0] != "00":
        raise QrTagOrder(
            f"{where}: sub-tag 00 (globally unique identifier) must come first, found at "
            f"position {positions[tags.index('00')]} after sub-tag {tags[0]}",
            field=f"{path}.00",
        )
    for child, child_position in zip(children, positions, strict=True):
        child_path = f"{path}.{child.tag}"
        sub_template = template.sub_templates.get(child.tag)
        if sub_template is not None:
            _check_template(child, sub_template, child_path, child_position)
        else:
            _check_primitive(child, template.sub_rules[child.tag], child_path, child_position)


def _check_mandatory(tags: list[str]) -> None:
    for tag in _MANDATORY_TAGS:
        if tag not in tags:
            raise QrMissingTag(f"tag {tag} ({_TOP_RULES[tag].name}) is missing", field=tag)
    if not _MERCHANT_ACCOUNT_TAGS.intersection(tags):
        raise QrMissingTag(
            "no merchant account information: at least one of tags 02-51 is required",
            field="02-51",
        )


def _check_money_fields(objects: tuple[DataObject, ...], positions: list[int]) -> None:
    found = {
        obj.tag: (obj.value, position)
        for obj, position in zip(objects, positions, strict=True)
        if isinstance(obj.value, str)
    }
    currency = _currency(*found["53"])
    _check_country(*found["58"])
    for tag in ("54", "56"):
        if tag in found:
            _check_decimals(tag, *found[tag], currency)
            _check_not_zero(tag, *found[tag])
    _check_convenience_fee(found)


def _check_country(code: str, position: int) -> None:
    """Tag 58 names an assigned ISO 3166-1 code: "ZZ" is shaped like one and names no
    country a payer could be shown or a scheme could screen."""
    if not is_country(code):
        raise QrBadValue(
            f"{_where('58', 'country code', position)}: {code!r} is not an assigned ISO 3166-1 "
            "alpha-2 code",
            field="58",
        )


def _currency(numeric: str, position: int) -> Currency:
    currency = _CURRENCY_BY_NUMERIC.get(numeric)
    if currency is None:
        raise QrUnknownCurrency(
            f"{_where('53', 'transaction currency', position)}: {numeric!r} is not a known "
            "ISO 4217 numeric code",
            field="53",
        )
    return currency


def _check_convenience_fee(found: Mapping[str, tuple[str, int]]) -> None:
    """Tag 56 is there exactly when tag 55 is 02, tag 57 exactly when it is 03."""
    indicator = found.get("55", ("", 0))[0]
    for tag, wanted in (("56", "02"), ("57", "03")):
        if tag in found and indicator != wanted:
            raise QrBadValue(
                f"{_where(tag, _TOP_RULES[tag].name, found[tag][1])}: only allowed when tag 55 "
                f"(tip or convenience indicator) is {wanted}, it is {indicator or 'absent'}",
                field=tag,
            )
        if indicator == wanted and tag not in found:
            raise QrMissingTag(
                f"tag {tag} ({_TOP_RULES[tag].name}) is missing: tag 55 is {wanted}", field=tag
            )
    if "57" in found:
        _check_percentage(*found["57"])


def _check_percentage(text: str, position: int) -> None:
    """MPM v1.1 on tag 57: "only values between "00.01" and "99.99" shall be used", so a
    percentage is in hundredths: "1.125" is not one of them, however it would round."""
    where = _where("57", _TOP_RULES["57"].name, position)
    decimals = len(text.partition(".")[2])
    if decimals > 2:
        raise QrBadValue(
            f"{where}: {text!r} has {decimals} decimals, a percentage has at most 2 "
            "(00.01 to 99.99)",
            field="57",
        )
    if not Decimal("0.01") <= Decimal(text) <= Decimal("99.99"):
        raise QrBadValue(f"{where}: {text!r} is not between 00.01 and 99.99", field="57")


def _check_decimals(tag: str, text: str, position: int, currency: Currency) -> None:
    decimals = len(text.partition(".")[2])
    if decimals > currency.exponent:
        raise QrBadValue(
            f"{_where(tag, _TOP_RULES[tag].name, position)}: {text!r} has {decimals} decimals, "
            f"{currency.code} ({currency.numeric}) allows at most {currency.exponent}",
            field=tag,
        )


def _check_not_zero(tag: str, text: str, position: int) -> None:
    """MPM v1.1 on tags 54 and 56: "shall be different from zero". A QR whose payer enters the
    amount leaves tag 54 out; a zero one is not a code for a payment of nothing."""
    if Decimal(text) == 0:
        hint = "; a QR whose payer enters the amount leaves tag 54 out" if tag == "54" else ""
        raise QrBadValue(
            f"{_where(tag, _TOP_RULES[tag].name, position)}: {text!r} is zero, it must be "
            f"different from zero{hint}",
            field=tag,
        )


# --- decode and encode --------------------------------------------------------------------------


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final xor."""
    return binascii.crc_hqx(data, 0xFFFF)


def _crc_text(body: str) -> str:
    # surrogatepass: decode() must answer a QrError for any str; a lone surrogate is then
    # rejected as a bad value (a valid payload holds none, so encode() never meets one).
    return f"{crc16_ccitt_false(body.encode('utf-8', 'surrogatepass')):04X}"


@dataclass(frozen=True, slots=True)
class _Raw:
    tag: str
    value: str
    position: int


def _parse_level(text: str, start: int, end: int, path: str) -> list[_Raw]:
    """The TLV objects in ``text[start:end]``, values left as text."""
    out = []
    index = start
    while index < end:
        if end - index < 4:
            raise QrBadLength(
                f"truncated data object at position {index}: {end - index} characters left, "
                "a data object needs a 2-digit id and a 2-digit length",
                field=path.rstrip(".") or "payload",
            )
        tag, length_text = text[index : index + 2], text[index + 2 : index + 4]
        if _TAG_RE.fullmatch(tag) is None:
            raise QrBadTag(f"id {tag!r} at position {index} is not two digits", field=path + tag)
        where = f"tag {path}{tag} at position {index}"
        if _TAG_RE.fullmatch(length_text) is None:
            raise QrBadLength(
                f"{where}: length {length_text!r} is not two digits", field=path + tag
            )
        length = int(length_text)
        if length == 0:
            raise QrBadLength(f"{where}: length 00, a value holds 1 to 99", field=path + tag)
        if index + 4 + length > end:
            raise QrBadLength(
                f"{where}: truncated, length {length} but only {end - index - 4} characters left",
                field=path + tag,
            )
        out.append(_Raw(tag, text[index + 4 : index + 4 + length], index))
        index += 4 + length
    return out


def _build(text: str, raw: _Raw, template: _Template | None, path: str) -> DataObject:
    if template is None:
        return DataObject(raw.tag, raw.value)
    start = raw.position + 4
    children = _parse_level(text, start, start + len(raw.value), path + ".")
    return DataObject(
        raw.tag,
        tuple(
            _build(text, child, template.sub_templates.get(child.tag), f"{path}.{child.tag}")
            for child in children
        ),
    )


def decode(text: str) -> QrPayload:
    """The payload in ``text``; raises a QrError naming the tag and position at fault."""
    if not isinstance(text, str):
        raise TypeError(f"QR payload must be a str, got {type(text).__name__}")
    if len(text) > PAYLOAD_LEN_MAX:
        raise QrBadLength(
            f"payload is {len(text)} characters, at most {PAYLOAD_LEN_MAX}", field="payload"
        )
    raws = _parse_level(text, 0, len(text), "")
    _check_crc(text, raws)
    objects = tuple(_build(text, raw, _TOP_TEMPLATES.get(raw.tag), raw.tag) for raw in raws[:-1])
    return QrPayload(objects)


def _check_crc(text: str, raws: list[_Raw]) -> None:
    crc_objects = [raw for raw in raws if raw.tag == _TAG_CRC]
    if not crc_objects:
        raise QrMissingTag("tag 63 (CRC) is missing", field=_TAG_CRC)
    if len(crc_objects) > 1:
        raise QrDuplicateTag(
            f"tag 63 (CRC) appears twice: at positions {crc_objects[0].position} "
            f"and {crc_objects[1].position}",
            field=_TAG_CRC,
        )
    crc = crc_objects[0]
    where = f"tag 63 (CRC) at position {crc.position}"
    if raws[-1] is not crc:
        raise QrTagOrder(
            f"{where} must be last, but tag {raws[-1].tag} follows at position {raws[-1].position}",
            field=_TAG_CRC,
        )
    if len(crc.value) != 4:
        raise QrBadLength(f"{where}: length {len(crc.value)}, expected 04", field=_TAG_CRC)
    if _HEX4_RE.fullmatch(crc.value) is None:
        raise QrBadValue(f"{where}: {crc.value!r} is not 4 hex digits", field=_TAG_CRC)
    expected = _crc_text(text[: crc.position + 4])
    if crc.value.upper() != expected:  # "a13a" is A13A: the same checksum, in lower case
        raise QrBadCrc(
            f"{where}: CRC mismatch, expected {expected} but found {crc.value}", field=_TAG_CRC
        )


def shown(p: QrPayload) -> dict[str, object]:
    """What a payer is shown of a decoded QR (``payments qr-decode``; ``/v1/qr/decode`` in
    camelCase): the merchant (and, from tag 64, its name and city in another language), the
    amount, and what tag 55 asks the payer to add (01: a tip; 02: tag 56's fee; 03: tag
    57's %), which a payment by the QR adds."""
    amount, fee, percent = (
        p.amount_minor,
        p.convenience_fee_fixed_minor,
        p.convenience_fee_percentage,
    )
    language = p.language
    return {
        "merchant_alias": p.find_merchant_alias(),
        "merchant_participant": p.find_acquirer(),
        "merchant_name": p.merchant_name,
        "city": p.city,
        "country": p.country,
        "mcc": p.mcc,
        "currency": p.currency.code,
        "amount": None if amount is None else format_amount(amount, p.currency),
        "dynamic": p.is_dynamic,
        "tip_or_convenience_indicator": p.tip_indicator,
        "convenience_fee": None if fee is None else format_amount(fee, p.currency),
        "convenience_fee_percentage": None if percent is None else str(percent),
        "additional_data": p.additional_data,
        "prompts": list(p.prompts),
        # tag 64: the name and city in the merchant's other language, for a wallet set to it
        "alternate_language": None
        if language is None
        else {
            "language": language.preference,
            "merchant_name": language.merchant_name,
            "city": language.city,
        },
    }


def encode(payload: QrPayload) -> str:
    """The payload's text: its objects in order, then tag 63 with the CRC of what precedes it."""
    if not isinstance(payload, QrPayload):
        raise TypeError(f"encode takes a QrPayload, got {type(payload).__name__}")
    body = "".join(obj.encode() for obj in payload.objects) + _TAG_CRC + "04"
    return body + _crc_text(body)


# --- building -----------------------------------------------------------------------------------


def _account(guid: str, till: str, acquirer: str | None) -> tuple[DataObject, ...]:
    """Template 26's sub-tags: the till's network, the till and, where the template's 99
    characters hold it too, its participant (a 64-character id beside a 32-character till
    does not fit: the QR names none, and is paid as one made without it)."""
    account = (DataObject("00", guid), DataObject("01", till))
    if acquirer is not None:
        named = (*account, DataObject("02", acquirer))
        if sum(4 + len(str(o.value)) for o in named) <= VALUE_LEN_MAX:
            return named
    return account


def build_merchant_qr(
    *,
    merchant_alias: str,
    mcc: str,
    currency: Currency | str,
    country: str,
    merchant_name: str,
    city: str,
    amount_minor: int | None = None,
    guid: str = DEFAULT_GUID,
    acquirer: str | None = None,
    postal_code: str | None = None,
    bill_number: str | None = None,
    store_label: str | None = None,
    reference_label: str | None = None,
    terminal_label: str | None = None,
    purpose: str | None = None,
    language: MerchantLanguage | None = None,
) -> QrPayload:
    """A merchant's payload: account template 26 = (00 ``guid``, 01 ``merchant_alias``, and
    02 ``acquirer``, the participant the till is registered at, where given and it fits: a
    payment by the QR is refused if the till has moved to another participant since, rather
    than paying whoever holds it now).

    With ``amount_minor`` the code is dynamic (01 = "12", one payment of that amount); without,
    it is static ("11") and the payer enters the amount. ``currency`` is a Currency or its
    alphabetic code. Tags come in ascending order. ``encode()`` (or ``.text``) gives the text.
    """
    resolved = currency if isinstance(currency, Currency) else get_currency(currency)
    objects = [
        DataObject("00", "01"),
        DataObject("01", "11" if amount_minor is None else "12"),
        DataObject("26", _account(guid, merchant_alias, acquirer)),
        DataObject("52", mcc),
        DataObject("53", resolved.numeric),
    ]
    if amount_minor is not None:
        if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
            raise TypeError(f"amount_minor must be an int, got {type(amount_minor).__name__}")
        if amount_minor <= 0:  # in the decoder's words (_check_not_zero): no encoder names
            text = format_amount(amount_minor, resolved)
            what = "zero, it must be different from zero" if amount_minor == 0 else "negative"
            raise QrBadValue(
                f"tag 54 ({_TOP_RULES['54'].name}): {text!r} is {what}; a QR whose payer "
                "enters the amount leaves tag 54 out",
                field="54",
            )
        objects.append(DataObject("54", format_amount(amount_minor, resolved)))
    objects += [
        DataObject("58", country),
        DataObject("59", merchant_name),
        DataObject("60", city),
    ]
    if postal_code is not None:
        objects.append(DataObject("61", postal_code))
    additional = [
        DataObject(tag, value)
        for tag, value in (
            ("01", bill_number),
            ("03", store_label),
            ("05", reference_label),
            ("07", terminal_label),
            ("08", purpose),
        )
        if value is not None
    ]
    if additional:
        objects.append(DataObject("62", tuple(additional)))
    if language is not None:
        objects.append(_language_object(language))
    return QrPayload(tuple(objects))


def _language_object(language: MerchantLanguage) -> DataObject:
    children = [DataObject("00", language.preference), DataObject("01", language.merchant_name)]
    if language.city is not None:
        children.append(DataObject("02", language.city))
    return DataObject("64", tuple(children))


# --- rendering ----------------------------------------------------------------------------------


def make_symbol(data: str | QrPayload, *, error: str = "M") -> segno.QRCode:
    """The QR symbol for a payload, at exactly error correction level ``error`` (L, M, Q, H).

    The text is encoded as UTF-8 (segno would otherwise try ISO 8859-1 and Shift_JIS first), so
    the bytes a wallet reads are those the CRC was computed over.
    """
    text = encode(data) if isinstance(data, QrPayload) else data
    level = error.upper()
    if level not in _SEGNO_ERROR_LEVELS:
        raise QrBadValue(f"error correction level must be L, M, Q or H, got {error!r}")
    return segno.make_qr(text, error=level, encoding="utf-8", boost_error=False)


def render_png(
    data: str | QrPayload,
    out: str | os.PathLike[str] | BinaryIO,
    *,
    scale: int = 8,
    border: int = 4,
    error: str = "M",
) -> None:
    """Writes the QR code as PNG to a path or a binary file object."""
    _save(make_symbol(data, error=error), out, "png", scale, border)


def render_svg(
    data: str | QrPayload,
    out: str | os.PathLike[str] | BinaryIO,
    *,
    scale: int = 8,
    border: int = 4,
    error: str = "M",
) -> None:
    """Writes the QR code as SVG (UTF-8 XML) to a path or a binary file object."""
    _save(make_symbol(data, error=error), out, "svg", scale, border)


def _save(
    symbol: segno.QRCode,
    out: str | os.PathLike[str] | BinaryIO,
    kind: str,
    scale: int,
    border: int,
) -> None:
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise QrBadValue(f"scale must be an int >= 1, got {scale!r}", field="scale")
    if isinstance(border, bool) or not isinstance(border, int) or border < 0:
        raise QrBadValue(f"border must be an int >= 0, got {border!r}", field="border")
    target = os.fspath(out) if isinstance(out, (str, os.PathLike)) else out
    symbol.save(target, kind=kind, scale=scale, border=border)
