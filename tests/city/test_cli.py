"""`entrepot city ...`: --json prints one parseable document on stdout."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from entrepot.city.model import Scenario
from entrepot.entrypoints.cli.city import app

runner = CliRunner()


def test_bench_json_holds_every_controller(small_cfg: Path) -> None:
    result = runner.invoke(
        app, ["bench", "--scenario", str(small_cfg), "--end", "120", "--workers", "2", "--json"]
    )

    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["scenario"] == "small"
    assert set(doc["controllers"]) == {"fixed", "actuated", "max_pressure", "entrepot"}
    for metrics in doc["controllers"].values():
        for key in (
            "avg_travel_time_s",
            "avg_waiting_time_s",
            "avg_time_loss_s",
            "teleports",
            "never_inserted",
        ):
            assert key in metrics


def test_run_json_explains_decisions(small_cfg: Path) -> None:
    result = runner.invoke(
        app, ["run", "--scenario", str(small_cfg), "--controller", "entrepot", "--json"]
    )

    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["controller"] == "entrepot"
    assert doc["metrics"]["safety_violations"] == 0
    assert doc["decisions"] and all(d["reason"] for d in doc["decisions"])


def test_unknown_controller_exits_2_naming_it(small_cfg: Path) -> None:
    result = runner.invoke(app, ["run", "--scenario", str(small_cfg), "--controller", "magic"])

    assert result.exit_code == 2
    assert "unknown controller 'magic'" in result.stderr


def test_missing_scenario_file_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "--scenario", str(tmp_path / "none.sumocfg")])

    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_forecast_json_parses() -> None:
    result = runner.invoke(app, ["forecast", "--synthetic", "--json"])

    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [h["horizon_min"] for h in doc["horizons"]] == [5, 10, 15]


def test_forecast_splits_json_reports_every_split(tmp_path: Path) -> None:
    png = tmp_path / "forecast.png"
    result = runner.invoke(
        app,
        ["forecast", "--synthetic", "--days", "6", "--splits", "2", "--json", "--plot", str(png)],
    )

    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["scheme"] == "blocked folds"
    assert [s["test_days"] for s in doc["splits"]] == [[0, 1, 2], [3, 4, 5]]
    assert [h["horizon_min"] for h in doc["summary"]] == [5, 10, 15]
    assert png.stat().st_size > 0


def test_end_before_the_configurations_begin_exits_2(small_grid: Scenario, tmp_path: Path) -> None:
    cfg = tmp_path / "begins.sumocfg"
    cfg.write_text(
        "<configuration><input>"
        f'<net-file value="{small_grid.net_file}"/>'
        f'<route-files value="{small_grid.route_files[0]}"/>'
        '</input><time><begin value="100"/><end value="240"/></time></configuration>'
    )

    result = runner.invoke(app, ["run", "--scenario", str(cfg), "--end", "60"])

    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: city_scenario_invalid: ")
    assert "begin 100 s, end 60 s" in result.stderr


def test_forecast_load_of_a_file_that_is_not_saved_days_exits_2(tmp_path: Path) -> None:
    other = tmp_path / "other.npz"
    np.savez(other, temperatures=np.zeros(3))
    text = tmp_path / "notes.npz"
    text.write_text("not an archive")

    for path in (other, text):
        result = runner.invoke(app, ["forecast", "--load", str(path), "--json"])

        assert result.exit_code == 2, result.output
        assert result.stderr.startswith("error: city_invalid_series: ")
        assert f"{path} is not a file of days saved by" in result.stderr
        assert result.stdout == ""


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--model", "gbn", "--train-days", "1"], "unknown forecast model 'gbn'"),
        (["--train-days", "2"], "need at least one training and one test day, got 2/2"),
        (["--splits", "3"], "2 days cannot make 3 splits"),
        (["--splits", "1"], "2 days leave a split of 1 without training days"),
        (["--train-days", "1"], "need at least two training days, got 1"),
        (["--splits", "2"], "need at least two training days, got 1"),
    ],
)
def test_forecast_refuses_bad_options_before_simulating_days(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: list[str], message: str
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where days would be simulated

    result = runner.invoke(app, ["forecast", "--days", "2", "--workers", "1", *options])

    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert not (tmp_path / "entrepot-city").exists()  # no SUMO day was simulated


def test_bench_with_no_controller_named_exits_2(small_cfg: Path) -> None:
    result = runner.invoke(
        app, ["bench", "--scenario", str(small_cfg), "--controllers", " , ", "--json"]
    )

    assert result.exit_code == 2, result.output
    assert "name at least one controller" in result.stderr
    assert result.stdout == ""


def test_forecast_save_into_a_folder_that_does_not_exist_is_refused_before_simulating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where days would be simulated
    target = tmp_path / "no-such-folder" / "days.npz"

    result = runner.invoke(
        app, ["forecast", "--days", "3", "--train-days", "2", "--save", str(target)]
    )

    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: city_invalid_series: ")
    assert str(target.parent) in result.stderr
    assert not (tmp_path / "entrepot-city").exists()  # no SUMO day was simulated, then lost


def test_forecast_save_writes_the_path_given_so_load_reads_it_back(tmp_path: Path) -> None:
    path = tmp_path / "days"  # no .npz suffix

    saved = runner.invoke(
        app, ["forecast", "--synthetic", "--days", "3", "--train-days", "2", "--save", str(path)]
    )
    loaded = runner.invoke(app, ["forecast", "--load", str(path), "--train-days", "2", "--json"])

    assert saved.exit_code == 0, saved.output
    assert path.is_file() and not (tmp_path / "days.npz").exists()
    assert loaded.exit_code == 0, loaded.output
    assert json.loads(loaded.stdout)["days"] == 3
