"""The payments bench's plot (sim/payments_bench.py): the rate over time it draws."""

from __future__ import annotations

import pytest

from entrepot.sim.payments_bench import _rate


def test_the_rate_counts_each_bins_payments_per_second() -> None:
    edges, rates = _rate([0.05, 0.15, 0.95, 1.5], elapsed=2.0, bins=4)
    assert edges == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert rates == [4.0, 2.0, 0.0, 2.0]  # two payments in half a second: 4 a second


def test_a_last_partial_bin_is_left_out_and_bins_are_at_least_a_tenth_of_a_second() -> None:
    edges, rates = _rate([0.01, 0.12, 0.25], elapsed=0.25, bins=60)
    assert edges == pytest.approx([0.0, 0.1, 0.2])  # 0.2-0.25 is not a whole bin
    assert rates == pytest.approx([10.0, 10.0])


def test_a_phase_shorter_than_a_bin_is_one_bin() -> None:
    edges, rates = _rate([0.01, 0.02], elapsed=0.05)
    assert edges == [0.0, 0.1] and rates == [20.0]
