"""The forecast protocol: choices made on validation days only, causal features, splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from entrepot.city import InvalidSeries, services
from entrepot.city import forecast_eval as fe
from entrepot.city.forecast import LOOKBACK_MIN, SpeedDays, synthetic_days
from entrepot.city.forecast_features import build_rows, forecast_times
from entrepot.city.forecast_models import ModelConfig, fit_predict
from entrepot.city.report import forecast_splits_table, plot_forecast_splits


def _graph_days(n_days: int = 6, minutes: int = 70, seed: int = 3) -> SpeedDays:
    """Synthetic days with flows, queues and a ring of neighbours."""
    base = synthetic_days(n_days=n_days, minutes=minutes, links=4, seed=seed)
    rng = np.random.default_rng(seed)
    ring = np.roll(np.eye(4), 1, axis=1)
    return SpeedDays(
        base.speeds,
        base.link_ids,
        flows=np.clip(1500.0 - 80.0 * base.speeds + rng.normal(0, 30, base.speeds.shape), 0, None),
        queues=np.clip(12.0 - base.speeds + rng.normal(0, 0.5, base.speeds.shape), 0, None),
        upstream=ring.T.copy(),
        downstream=ring,
    )


def _perturbed(days: SpeedDays, which: list[int], rng_seed: int = 1) -> SpeedDays:
    rng = np.random.default_rng(rng_seed)
    speeds, flows, queues = days.speeds.copy(), days.flows, days.queues
    assert flows is not None and queues is not None
    flows, queues = flows.copy(), queues.copy()
    for arr in (speeds, flows, queues):
        arr[which] = arr[which] * rng.uniform(0.3, 1.7, arr[which].shape)
    return SpeedDays(speeds, days.link_ids, flows, queues, days.upstream, days.downstream)


def test_selection_sees_only_training_days(monkeypatch: pytest.MonkeyPatch) -> None:
    days = _graph_days()
    split = fe.Split((0, 1, 2, 3), (4, 5))
    seen: list[SpeedDays] = []
    real = fe.select_config

    def spy(train_days: SpeedDays, *args: object, **kwargs: object) -> fe.Selection:
        seen.append(train_days)
        return real(train_days, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(fe, "select_config", spy)
    fe.evaluate_split(days, split, (5, 15), model="ridge")

    assert len(seen) == 2
    for got in seen:
        np.testing.assert_array_equal(got.speeds, days.speeds[:4])
        assert got.flows is not None and days.flows is not None
        np.testing.assert_array_equal(got.flows, days.flows[:4])


def test_changing_test_days_changes_no_choice_and_no_training_row() -> None:
    days = _graph_days()
    other = _perturbed(days, [4, 5])
    split = fe.Split((0, 1, 2, 3), (4, 5))

    a = fe.evaluate_split(days, split, (5, 15), model="ridge")
    b = fe.evaluate_split(other, split, (5, 15), model="ridge")

    assert [s.as_json() for s in a.selections] == [s.as_json() for s in b.selections]
    assert a.scores != b.scores  # the test days did change
    rows_a = build_rows(days, split.train, split.train, 15, 5)
    rows_b = build_rows(other, split.train, split.train, 15, 5)
    np.testing.assert_array_equal(rows_a.x, rows_b.x)
    np.testing.assert_array_equal(rows_a.y - rows_a.ha, rows_b.y - rows_b.ha)


def _after(days: SpeedDays, later: SpeedDays, cut: int) -> SpeedDays:
    """``days`` up to minute ``cut``, ``later`` after it."""

    def join(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
        assert a is not None and b is not None
        return np.concatenate([a[:, : cut + 1], b[:, cut + 1 :]], axis=1)

    speeds = join(days.speeds, later.speeds)
    assert speeds is not None
    return SpeedDays(
        speeds,
        days.link_ids,
        join(days.flows, later.flows),
        join(days.queues, later.queues),
        days.upstream,
        days.downstream,
    )


def test_features_at_t_ignore_later_data() -> None:
    days = _graph_days()
    cut = 40
    changed = _after(days, _perturbed(days, [5]), cut)
    for horizon in (5, 15):
        a = build_rows(days, (0, 1, 2, 3), (5,), horizon, 5)
        b = build_rows(changed, (0, 1, 2, 3), (5,), horizon, 5)
        t = np.repeat(forecast_times(days.speeds.shape[1], horizon, 5), 4)
        known = t <= cut
        assert known.any() and (~known).any()
        np.testing.assert_array_equal(a.x[known], b.x[known])
        np.testing.assert_array_equal(a.last[known], b.last[known])
        assert not np.array_equal(a.x[~known], b.x[~known])


def test_training_rows_at_t_ignore_their_own_days_later_data() -> None:
    """A training day is also a reference day for the other training rows: nothing of its
    own later minutes may come back to its row at t through another day's fit or usual level."""
    minutes, n_days, cut = 120, 8, 55
    m = np.arange(minutes, dtype=float)
    rng = np.random.default_rng(0)
    flows = np.empty((n_days, minutes, 3))
    speeds = np.empty((n_days, minutes, 3))
    for d in range(n_days):  # demand peaks shifted and scaled per day, as in the simulated days
        entering = rng.uniform(0.8, 1.2) * (
            300.0 + 900.0 * np.exp(-(((m - 60.0 - rng.uniform(-20, 20)) / 15.0) ** 2))
        )
        flows[d] = entering[:, None] * np.array([1.0, 0.6, 0.4])[None, :]
        speeds[d] = (15.0 - entering / 100.0)[:, None] + rng.normal(0, 0.3, (minutes, 3))
    up = np.zeros((3, 3))
    up[1, 0] = up[2, 1] = 1.0

    def days_with(f: np.ndarray) -> SpeedDays:
        return SpeedDays(speeds, ("a", "b", "c"), f, np.zeros_like(f), up, up.T.copy())

    ref = tuple(range(n_days))
    t = np.repeat(forecast_times(minutes, 15, 5), 3)
    known = t <= cut
    a = build_rows(days_with(flows), ref, ref, 15, 5)
    for day in ref:
        for seed in range(3):
            changed = flows.copy()
            changed[day, cut + 1 :] *= np.random.default_rng(seed).uniform(0.2, 3.0)
            b = build_rows(days_with(changed), ref, ref, 15, 5)
            rows = slice(day * len(t), (day + 1) * len(t))
            np.testing.assert_allclose(a.x[rows][known], b.x[rows][known], rtol=0, atol=1e-9)


def test_training_rows_see_a_historical_average_without_their_own_day() -> None:
    levels = np.array([10.0, 12.0, 14.0])
    days = SpeedDays(np.broadcast_to(levels[:, None, None], (3, 40, 1)).copy(), ("a",))

    train = build_rows(days, (0, 1, 2), (0, 1, 2), 5, 5)
    test = build_rows(days, (0, 1), (2,), 5, 5)

    per_day = train.ha.reshape(3, -1)[:, 0]
    assert per_day.tolist() == [13.0, 12.0, 11.0]  # the mean of the other two days
    assert np.allclose(test.ha, 11.0)  # a test day: the mean of all reference days


def test_splits_cover_days_once_and_rolling_trains_on_the_past() -> None:
    folds = fe.split_days(30, 5)
    assert sorted(d for s in folds for d in s.test) == list(range(30))
    for s in folds:
        assert not set(s.train) & set(s.test)
        assert len(s.train) == 24
        fit, val = s.fit_and_validation()
        assert set(fit) | set(val) == set(s.train) and not set(fit) & set(val)
        assert len(val) == 5
    for s in fe.split_days(30, 5, rolling=True):
        assert max(s.train) < min(s.test)
    with pytest.raises(InvalidSeries, match="cannot make"):
        fe.split_days(3, 5)


def test_model_beats_both_baselines_on_synthetic_graph_days() -> None:
    days = _graph_days(n_days=10, minutes=120)
    for model in ("ridge", "gbm"):
        result = fe.evaluate_split(days, fe.Split(tuple(range(8)), (8, 9)), model=model)
        for s in result.scores:
            assert s.mae_model < s.mae_last_value, (model, s)
            assert s.mae_model < s.mae_historical_average, (model, s)


def test_every_feature_set_fits_and_predicts_finite_values() -> None:
    days = _graph_days()
    train = build_rows(days, (0, 1, 2, 3), (0, 1, 2, 3), 10, 5)
    test = build_rows(days, (0, 1, 2, 3), (4, 5), 10, 5)
    assert len(test.y) == 2 * 4 * len(forecast_times(70, 10, 5))
    assert forecast_times(70, 10, 5)[0] == LOOKBACK_MIN - 1
    for fs in ("local", "graph", "full"):
        for family in ("ridge", "gbm"):
            cfg = ModelConfig(family, fs, {"rounds": 20} if family == "gbm" else {})
            pred = fit_predict(cfg, train, test)
            assert pred.shape == test.y.shape and np.all(np.isfinite(pred))


def test_multi_split_report_table_and_plot(tmp_path: Path) -> None:
    report = services.score_forecast_splits(synthetic_days(n_days=6, seed=7), 2, model="ridge")

    doc = report.as_json()
    assert [h["horizon_min"] for h in doc["summary"]] == [5, 10, 15]
    assert len(doc["splits"]) == 2
    assert doc["splits"][0]["selection"][0]["validation_mae_mps"]
    for h in doc["summary"]:
        g = h["gain_vs_historical_average"]
        assert g["min"] <= g["mean"] <= g["max"]
    assert "gain vs HA mean" in forecast_splits_table(report)
    assert plot_forecast_splits(report, tmp_path / "f.png").stat().st_size > 0


def test_demand_fit_recovers_todays_level_and_timing_from_entering_flow() -> None:
    """Reference days share one demand curve; a test day runs it 1.2x higher and 10 minutes
    later. The fit on the flow entering the network finds both, from data up to t only."""
    minutes, shift, scale = 100, 10, 1.2
    m = np.arange(minutes, dtype=float)

    def curve(lag: float) -> np.ndarray:
        return 300.0 + 900.0 * np.exp(-(((m - 50.0 - lag) / 15.0) ** 2))

    n_days = 5
    flows = np.empty((n_days, minutes, 3))
    for d in range(n_days):
        entering = curve(shift) * scale if d == n_days - 1 else curve(0.0)
        flows[d] = entering[:, None] * np.array([1.0, 0.6, 0.4])[None, :]
    up = np.zeros((3, 3))
    up[1, 0] = up[2, 1] = 1.0  # link 0 is the only entrance
    days = SpeedDays(
        np.full((n_days, minutes, 3), 10.0),
        ("a", "b", "c"),
        flows=flows,
        queues=np.zeros((n_days, minutes, 3)),
        upstream=up,
        downstream=up.T.copy(),
    )
    rows = build_rows(days, tuple(range(n_days - 1)), (n_days - 1,), 15, 5)
    x = rows.x.reshape(-1, 3, len(rows.names))[:, 0]
    t = forecast_times(minutes, 15, 5)
    at = int(np.flatnonzero(t == 60)[0])  # the ramp is well under way by minute 60
    assert x[at, rows.names.index("full:demand_lag")] == shift
    assert x[at, rows.names.index("full:demand_scale")] == pytest.approx(scale, rel=0.02)
    ratio = x[at, rows.names.index("full:demand_ratio_at_target")]
    # entering flow is read as 5-minute trailing means; the target window's middle is t + 17
    usual5 = np.convolve(curve(0.0), np.ones(5) / 5, mode="full")[:minutes]
    expected = scale * usual5[60 + 17 - shift] / usual5[60 + 17]
    assert ratio == pytest.approx(expected, rel=0.05)


def test_slow_spell_age_counts_the_minutes_of_an_incident_and_since_it_cleared() -> None:
    minutes = 90
    speeds = np.full((4, minutes, 2), 10.0)
    speeds[3, 30:50, 1] = 2.0  # the test day: link 1 crawls from minute 30 to 49
    days = SpeedDays(speeds, ("a", "b"))
    rows = build_rows(days, (0, 1, 2), (3,), 5, 5)
    x = rows.x.reshape(-1, 2, len(rows.names))
    t = forecast_times(minutes, 5, 5)
    age = x[:, :, rows.names.index("local:slow_age")]
    since = x[:, :, rows.names.index("local:since_slow")]
    at = {int(m): i for i, m in enumerate(t)}
    assert age[at[29], 1] == 0 and age[at[40], 1] > 5 and age[at[40], 0] == 0
    assert age[at[48], 1] == age[at[40], 1] + 8  # one more minute each minute
    assert age[at[60], 1] == 0 and 0 < since[at[60], 1] < since[at[60], 0]


def test_ensemble_averages_every_gbm_candidate_with_its_validated_rounds() -> None:
    days = _graph_days()
    chosen = fe.select_config(days.take((0, 1, 2, 3, 4)), 5, 5, "ensemble")
    assert len(chosen.members) == len(fe.candidates("gbm")) >= 2
    assert all("rounds" in m.params for m in chosen.members)
    assert chosen.label().startswith("mean of ")
    train = build_rows(days, (0, 1, 2, 3, 4), (0, 1, 2, 3, 4), 5, 5)
    test = build_rows(days, (0, 1, 2, 3, 4), (5,), 5, 5)
    each = [fit_predict(m, train, test) for m in chosen.members]
    np.testing.assert_allclose(chosen.predict(train, test), np.mean(each, axis=0))
    assert chosen.as_json()["members"][0]["family"] == "gbm"


def test_a_split_too_small_to_validate_reports_no_validation_day() -> None:
    """With two training days nothing is validated (the first candidate is used); the report
    named one of them a validation day and the table said "2 / 1"."""
    days = synthetic_days(n_days=3, minutes=70, seed=2)
    split = fe.Split((0, 1), (2,))

    result = fe.evaluate_split(days, split, (5,))

    assert result.selections[0].validation_mae == {}
    assert result.as_json()["validation_days"] == []
    report = services.ForecastSplitsReport(
        3, 8, 70, "ridge", False, (result,), fe.summarise([result])
    )
    assert "| 2-2 | 2 / 0 |" in forecast_splits_table(report)


def test_one_training_day_is_refused_its_rows_would_see_their_own_target_as_the_ha() -> None:
    """With one training day no other day gives its rows a historical average: the HA (and
    the analogue) of a training row was its own future target, the model learnt a zero
    deviation from it and scored exactly the HA."""
    days = synthetic_days(n_days=3, minutes=70, seed=2)

    with pytest.raises(InvalidSeries, match="at least two training days"):
        fe.evaluate_split(days, fe.Split((0,), (1, 2)), (5,))
    with pytest.raises(InvalidSeries, match="at least two training days"):
        fe.evaluate_forecast(days, train_days=1, horizons_min=(5,))
    assert fe.evaluate_split(days, fe.Split((0, 1), (2,)), (5,)).scores
