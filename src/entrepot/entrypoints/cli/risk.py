"""``entrepot risk``: train and apply credit scorecards, screen parties against sanctions lists,
explain a recorded decision.

Models live under ``$ENTREPOT_HOME/models/<model_id>/``; every decision is appended to
``$ENTREPOT_HOME/decisions/decisions.jsonl``. ``--json`` prints one JSON document on stdout
(``screen --file`` prints one JSON object per row: JSON lines).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from entrepot.config import load_settings, shared_data_dir
from entrepot.entrypoints.cli.output import LazyModule, bad_input, emit_json, err, guard, out
from entrepot.kernel.errors import InvalidInput

if TYPE_CHECKING:
    from entrepot.risk import credit, decisions, sanctions
else:  # the risk stack (pandas, scikit-learn, optbinning) loads in seconds: only when used
    credit = LazyModule("entrepot.risk.credit")
    decisions = LazyModule("entrepot.risk.decisions")
    sanctions = LazyModule("entrepot.risk.sanctions")

app = typer.Typer(
    help="Risk: credit scoring, sanctions screening, decision explanations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON on stdout")]


#: Where the OFAC files are looked for when --lists is not given (first that exists).
def list_dirs() -> tuple[Path, ...]:
    """ENTREPOT_SANCTIONS_DIR when set (payees and the API are screened against it, so the
    CLI must be too); else $ENTREPOT_HOME/sanctions, then the shared reference data
    (ENTREPOT_DATA_DIR)."""
    configured = load_settings().sanctions_dir
    if configured is not None:
        return (configured,)
    return (_home() / "sanctions", shared_data_dir() / "sanctions")


def _home() -> Path:
    return load_settings().home


def _sink() -> decisions.JsonlSink:
    return decisions.JsonlSink(_home() / "decisions")


@app.command("train-credit")
@guard
def train_credit(
    data: Annotated[Path, typer.Option("--data", help="CSV file with one row per loan")],
    target: Annotated[str, typer.Option("--target", help="binary outcome column")],
    bad: Annotated[str | None, typer.Option("--bad", help="target value meaning bad")] = None,
    protected: Annotated[
        str | None,
        typer.Option(
            "--protected",
            help="comma-separated protected columns (replaces the declared defaults; "
            "columns named sex, gender, age, ... are always excluded)",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed")] = 42,
    folds: Annotated[int, typer.Option("--folds", min=2, max=20)] = 5,  # credit.N_SPLITS
    as_json: JsonOpt = False,
) -> None:
    """Fit a WoE scorecard and a GBM, cross-validate both, save a versioned model and card."""
    declared = (
        credit.DEFAULT_PROTECTED
        if protected is None
        else tuple(p.strip() for p in protected.split(",") if p.strip())
    )
    with err().status("training (cross-validating two calibrated models)..."):
        report = credit.train_credit(
            data, target, bad, declared, seed, _home() / "models", n_splits=folds
        )
    if as_json:
        emit_json(report.to_dict())
        return
    table = Table("model", "AUC", "KS", "Brier", title=f"model {report.model_id}")
    for name, m in (("scorecard", report.scorecard), ("gbm", report.gbm)):
        table.add_row(name, f"{m['auc']:.4f}", f"{m['ks']:.4f}", f"{m['brier']:.4f}")
    out().print(table)
    out().print(f"protected excluded: {', '.join(report.protected_excluded) or 'none'}; "
                f"cost of exclusion: {report.cost_of_exclusion}")  # fmt: skip
    out().print(f"saved to {report.model_dir}")


@app.command("score-credit")
@guard
def score_credit(
    model: Annotated[str, typer.Option("--model", help="model id from train-credit")],
    data: Annotated[Path, typer.Option("--data", help="CSV of applications to score")],
    as_json: JsonOpt = False,
) -> None:
    """PD, score and approve/decline per row, with up to four reasons per decline."""
    results = credit.score_credit(model, data, _home() / "models", sink=_sink())
    if as_json:
        emit_json({"model_id": model, "rows": [r.to_dict() for r in results]})
        return
    table = Table("row", "PD", "score", "decision", "reasons", "decision id")
    for r in results:
        table.add_row(str(r.row), f"{r.pd:.3f}", str(r.score), r.decision,
                      "; ".join(r.reasons), r.decision_id or "")  # fmt: skip
    out().print(table)


def _default_lists() -> Path:
    candidates = list_dirs()
    for candidate in candidates:
        if (candidate / sanctions.SDN_FILE).is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise bad_input(
        f"no watch list found in {looked}: pass --lists DIR or set ENTREPOT_SANCTIONS_DIR "
        "(with ofac_sdn.csv, ofac_alt.csv, ofac_add.csv)"
    )


def _read_parties(path: Path) -> list[sanctions.Party]:
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise bad_input(f"cannot read parties file {path}: {exc}") from None
    if rows and "name" not in rows[0]:
        raise bad_input(f"{path} has no 'name' column")
    parties = []
    for i, row in enumerate(rows, 1):
        try:
            parties.append(sanctions.make_party(
                row.get("name") or "", row.get("dob"), row.get("country"), row.get("type"),
            ))  # fmt: skip
        except InvalidInput as exc:
            raise bad_input(f"{path} row {i}: {exc.detail}") from None
    return parties


@app.command("screen")
@guard
def screen(
    name: Annotated[str | None, typer.Option("--name", help="party to screen")] = None,
    dob: Annotated[str | None, typer.Option("--dob", help="YYYY-MM-DD")] = None,
    country: Annotated[str | None, typer.Option("--country", help="ISO alpha-2")] = None,
    party_type: Annotated[str | None, typer.Option("--type", help="individual or entity")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="CSV with name, dob, country columns")
    ] = None,
    lists: Annotated[
        Path | None, typer.Option("--lists", help="folder with the OFAC CSV files")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Screen one party (--name) or a file of parties (--file) against the watch list."""
    if (name is None) == (file is None):
        raise bad_input("give exactly one of --name or --file")
    parties = (
        _read_parties(file)
        if file is not None
        else [sanctions.make_party(name or "", dob, country, party_type)]
    )
    screener = sanctions.Screener.from_directory(lists or _default_lists(), sink=_sink())
    results = screener.screen_many(parties)
    if as_json and file is not None:
        for result in results:
            # one line per party, the object ``--name --json`` prints for one
            sys.stdout.write(json.dumps(result.to_dict()) + "\n")
        return
    if as_json:
        emit_json(results[0].to_dict())
        return
    table = Table("name", "decision", "score", "best candidate", "reasons")
    for r in results:
        best = r.best
        table.add_row(r.query, r.decision, f"{r.score:.2f}",
                      "" if best is None else f"{best.listed_name} ({best.ent_num})",
                      "" if best is None else "; ".join(best.reasons))  # fmt: skip
    out().print(table)


@app.command("explain")
@guard
def explain(
    decision_id: Annotated[str, typer.Option("--id", help="decision id from the log")],
    as_json: JsonOpt = False,
) -> None:
    """Explain a recorded credit or sanctions decision."""
    sink = _sink()
    if as_json:
        emit_json(decisions.get_decision(sink, decision_id).to_dict())
        return
    out().print(decisions.explain_decision(sink, decision_id))


@app.command("verify-log")
@guard
def verify_log(
    anchors: Annotated[
        list[str] | None,
        typer.Option(
            "--anchor",
            help="a head recorded earlier, OFFSET:HASH (GET /v1/risk/decisions/head, or this "
            "command's head); repeat for several",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check that the decision log's chain is whole (no line changed, removed or inserted)
    and that every anchor still holds; print its head to record. Exit 1 if not."""
    points = [decisions.LogHead.parse(a) for a in anchors or ()]
    path = _sink().path
    columns = (TextColumn("checking the log"), BarColumn(), DownloadColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err(), transient=True) as progress:
        task = progress.add_task("verify", total=None)
        check = decisions.verify_log(
            path,
            points,
            lambda done, total: progress.update(task, completed=done, total=total),
        )
    if as_json:
        emit_json(check.to_dict())
    else:
        state = "intact" if check.intact else f"BROKEN at line {check.broken_at}"
        out().print(f"{path}: {state}; {check.lines} lines, head {check.head}", soft_wrap=True)
        if check.unchained:
            out().print(f"{check.unchained} lines written before the log was chained")
        if check.torn:
            shown = ", ".join(str(n) for n in check.torn[:10])
            more = "" if len(check.torn) <= 10 else f" (and {len(check.torn) - 10} more)"
            out().print(
                f"fragments of writes cut off (not decisions): lines {shown}{more}", soft_wrap=True
            )
        if check.anchors_checked:
            out().print(f"{check.anchors_checked} anchors checked")
    if not check.intact:
        if not as_json:
            err().print(check.problem, soft_wrap=True)
        raise typer.Exit(1)


@app.command("train-fraud")
@guard
def train_fraud(
    out_path: Annotated[
        Path | None,
        typer.Option("--out", help="where to save the model (default $ENTREPOT_HOME/models/)"),
    ] = None,
    days: Annotated[int, typer.Option("--days", min=22, max=365)] = 42,
    customers: Annotated[int, typer.Option("--customers", min=100)] = 2_000,
    terminals: Annotated[int, typer.Option("--terminals", min=20)] = 400,
    seed: Annotated[int, typer.Option("--seed")] = 7,
    as_json: JsonOpt = False,
) -> None:
    """Train the payment fraud model on the seeded transaction simulator (every labelled day)
    and save it; point ENTREPOT_FRAUD_MODEL at the file to screen the scheme's transfers.
    How well such a model does on a later window: ``entrepot bench risk``."""
    from entrepot.risk.fraud_bench import train_from_simulator

    with err().status(f"simulating {days} days and training..."):
        model, facts = train_from_simulator(
            seed=seed, customers=customers, terminals=terminals, days=days
        )
    path = out_path or _home() / "models" / f"{model.version}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    facts["path"] = str(path)
    if as_json:
        emit_json(facts)
        return
    out().print(
        f"fraud model {model.version}: {facts['train_rows']} simulated payments "
        f"({facts['train_frauds']} fraudulent) over {days} days; review threshold "
        f"{model.thresholds.review:.3f}, block {model.thresholds.block:.3f}"
    )
    out().print(f"saved to {path}\nscreen payments with: export ENTREPOT_FRAUD_MODEL={path}")
