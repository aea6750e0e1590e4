"""docs/payments.md's table of the scheme's error codes is what the API answers: each code's
HTTP status and Mojaloop errorCode, and every code the scheme raises is in it. A Mojaloop
code outside its family (``forbidden`` as 3300, which is "expired"; ``no_fx_rate`` as 3208,
"transfer id not found") is what a client reading ``errorCode`` would be misled by."""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path

import entrepot.payments
from entrepot.payments.errors import PaymentError

# every module of the scheme, so that the set of errors does not depend on what other tests
# imported first (the QR module's were missing when this test ran alone)
for _module in pkgutil.walk_packages(entrepot.payments.__path__, "entrepot.payments."):
    importlib.import_module(_module.name)

DOC = Path(__file__).resolve().parents[2] / "docs" / "payments.md"
ROW = re.compile(r"^\s*\| `(\w+)` \| (\d{3}) \| (\d{4}) \|", re.M)
#: Mojaloop's families: what a code's first two digits mean
FAMILIES = {
    "20": "server",
    "30": "generic client",
    "31": "validation",
    "32": "identifier",
    "33": "expired",
    "40": "payer",
    "44": "payer blocked",
}


def _raised() -> Iterator[type[PaymentError]]:
    stack = list(PaymentError.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        yield cls


def test_the_documented_codes_are_the_ones_answered() -> None:
    documented = {code: (int(h), m) for code, h, m in ROW.findall(DOC.read_text())}
    raised = {cls.code: (cls.http_status, cls.mojaloop_code) for cls in _raised()}
    assert raised and all(documented.get(code) == answer for code, answer in raised.items()), {
        code: (answer, documented.get(code))
        for code, answer in raised.items()
        if documented.get(code) != answer
    }


def test_each_code_is_in_the_family_its_name_says() -> None:
    for cls in _raised():
        family = FAMILIES[cls.mojaloop_code[:2]]
        if cls.code.endswith("_not_found") or cls.code == "no_fx_rate":
            assert family == "identifier", cls
        elif cls.code.endswith("_expired"):
            assert family == "expired", cls
        else:
            assert family != "expired", cls


def test_a_service_field_is_named_as_the_api_names_it() -> None:
    from entrepot.entrypoints.api.problems import api_field

    assert api_field("hs_code") == "hsCode"
    assert api_field("new_principal_minor") == "newPrincipalMinor"
    assert api_field("lines.0.unit_price") == "lines.0.unitPrice"
    # already the API's, or no name at all: unchanged
    for same in ("amount.currency", "weightG", "54", "ENTREPOT_SCREENING", None, ""):
        assert api_field(same) == same
