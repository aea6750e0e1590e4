"""``python -m entrepot.entrypoints.cli``: the same as the ``entrepot`` command."""

from entrepot.entrypoints.cli.main import app

app(prog_name="entrepot")
