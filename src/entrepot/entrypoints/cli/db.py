"""``entrepot db``: migrations of the database that ENTREPOT_DATABASE_URL / ENTREPOT_HOME name."""

from typing import Annotated

import typer

from entrepot.entrypoints.cli.output import (
    EXIT_FAILURE,
    emit_json,
    guard,
    open_app,
    out,
    shown_url,
)
from entrepot.storage import current_revision, head_revision, upgrade

app = typer.Typer(help="Database migrations.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


@app.command("upgrade")
@guard
def upgrade_command(as_json: JsonOption = False) -> None:
    """Apply every migration up to the head; print the revision now current."""
    with open_app(migrate=False) as entrepot:
        before = current_revision(entrepot.engine)
        revision = upgrade(entrepot.engine)
        url = shown_url(entrepot.settings.database_url)
    if as_json:
        emit_json({"database": url, "previous": before, "revision": revision})
        return
    verb = "already at" if before == revision else f"upgraded {before or 'empty'} ->"
    out().print(f"{url}: {verb} {revision}")


@app.command("status")
@guard
def status_command(
    as_json: JsonOption = False,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 unless the database is at the head.")
    ] = False,
) -> None:
    """Show the database's revision and the head revision of the migrations."""
    with open_app(migrate=False) as entrepot:
        current = current_revision(entrepot.engine)
        url = shown_url(entrepot.settings.database_url)
    head = head_revision()
    if as_json:
        emit_json(
            {"database": url, "current": current, "head": head, "up_to_date": current == head}
        )
    else:
        state = "up to date" if current == head else "needs `entrepot db upgrade`"
        out().print(f"{url}\ncurrent: {current or '(empty)'}\nhead:    {head}\n{state}")
    if check and current != head:
        raise typer.Exit(EXIT_FAILURE)
