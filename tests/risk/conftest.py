"""Shared fixtures: a seeded synthetic credit file, the German credit file, the OFAC list."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from entrepot.config import shared_data_dir
from entrepot.risk.sanctions import Screener

SHARED = shared_data_dir()
GERMAN = SHARED / "credit" / "german_credit.csv"
SANCTIONS = SHARED / "sanctions"


def write_synthetic_credit(path: Path, rows: int = 600, seed: int = 7) -> Path:
    """Merchants with other column names than German credit: numeric and categorical columns,
    missing values, two protected columns, an identifier, and a yes/no target."""
    rng = random.Random(seed)
    lines = ["loan_ref,monthly_sales_eur,tenure_months,refund_rate,sector,region,gender,"
             "applicant_age,defaulted"]  # fmt: skip
    sectors = ["food", "crafts", "textiles", "electronics"]
    for i in range(rows):
        sales = rng.lognormvariate(8, 0.8)
        tenure = rng.randint(1, 60)
        refund = rng.random() * 0.2
        sector = rng.choice(sectors)
        region = rng.choice(["north", "south", "east"])
        logit = -0.5 - 0.4 * math.log(sales / 3000) - 0.03 * tenure + 12 * refund
        logit += {"food": -0.3, "crafts": 0.2, "textiles": 0.0, "electronics": 0.5}[sector]
        bad = rng.random() < 1 / (1 + math.exp(-logit))
        sales_txt = "" if rng.random() < 0.05 else f"{sales:.2f}"
        sector_txt = "" if rng.random() < 0.05 else sector
        gender = rng.choice(["f", "m"])
        age = rng.randint(20, 70)
        lines.append(f"L{i:05d},{sales_txt},{tenure},{refund:.4f},{sector_txt},{region},"
                     f"{gender},{age},{'yes' if bad else 'no'}")  # fmt: skip
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def synthetic_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_credit(tmp_path_factory.mktemp("credit") / "merchants.csv")


@pytest.fixture(scope="session")
def screener() -> Screener:
    if not (SANCTIONS / "ofac_sdn.csv").is_file():
        pytest.skip("the OFAC snapshot is not on this machine")
    # Shared by the session's tests: it remembers nothing, so that no test's answer comes
    # from another's screening (what it remembers is tested on screeners of their own).
    return Screener.from_directory(SANCTIONS, remember=0)
