"""The ``entrepot`` command (Typer + Rich).

Every command that prints results takes ``--json`` and then prints exactly one JSON document on
stdout. Errors are one line on stderr; exit code 2 means bad input (nothing was changed), 1 any
other failure, including a ledger result other than ``ok``/``exists``.
"""
