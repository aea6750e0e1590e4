"""A transfer's UETR, as a string (pacs.008, pacs.002) and as the integer its ledger legs
carry: the same reference, made the documented way (uuid5-derived, version 4)."""

from __future__ import annotations

import random
import string
import uuid

from entrepot.payments.model import uetr, uetr_int


def _reference(transfer_id: str) -> str:
    """The definition: the id itself when a canonical version-4 UUID, else uuid5 of
    ``entrepot:transfer:<id>`` in the URL namespace, given version 4."""
    try:
        parsed = uuid.UUID(transfer_id)
        if parsed.version == 4 and str(parsed) == transfer_id.lower():
            return str(parsed)
    except ValueError:
        pass
    derived = uuid.uuid5(uuid.NAMESPACE_URL, f"entrepot:transfer:{transfer_id}")
    return str(uuid.UUID(bytes=derived.bytes, version=4))


def test_the_string_and_the_integer_are_one_reference_made_by_the_definition() -> None:
    rng = random.Random(7)
    v4 = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(200)]
    ids = v4 + [u.upper() for u in v4[:50]] + ["{" + v4[0] + "}", v4[1].replace("-", "")]
    ids += [str(uuid.uuid1()), "urn:uuid:" + v4[2], "t1", "t-123456", "é"]
    ids += [
        "".join(rng.choice(string.printable) for _ in range(rng.randint(1, 64))) for _ in range(300)
    ]
    for transfer_id in ids:
        expected = _reference(transfer_id)
        assert uetr(transfer_id) == expected, transfer_id
        assert uetr_int(transfer_id) == uuid.UUID(expected).int, transfer_id
    assert uetr(v4[0].upper()) == v4[0]  # a UUID in capitals is that UUID
