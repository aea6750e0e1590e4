"""``python -m entrepot``: the ``entrepot`` command, for where its script is not on PATH."""

from entrepot.entrypoints.cli.main import app

app(prog_name="entrepot")
