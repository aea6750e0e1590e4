"""Ledger ids as people type them: decimal, 0x-hex, 32 hex digits or a UUID; nothing else."""

from __future__ import annotations

import uuid

import pytest

from entrepot.kernel.ids import U128_MAX, parse_id


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("42", 42),
        (" 0x2A ", 42),
        ("0XFF", 255),
        ("0" * 31 + "1", 1),
        (str(uuid.UUID(int=7)), 7),
        (str(U128_MAX), U128_MAX),
    ],
)
def test_the_forms_an_id_takes(text: str, value: int) -> None:
    assert parse_id(text) == value


@pytest.mark.parametrize(
    "text",
    [
        "\u0661\u0662",  # Arabic-Indic digits: int() reads them as 12
        "\uff11\uff12",  # fullwidth digits
        "0x_ff",  # int(..., 16) takes an underscore after the prefix
        "0x",
        "1_000",
        "-1",
        "",
        "12a",
    ],
)
def test_anything_else_is_malformed(text: str) -> None:
    with pytest.raises(ValueError, match="malformed id"):
        parse_id(text)


def test_an_id_past_128_bits_is_refused() -> None:
    with pytest.raises(ValueError, match="outside the unsigned 128-bit range"):
        parse_id(str(U128_MAX + 1))
