"""Entrepot: an open platform for cross-border digital trade.

Bounded contexts live in sub-packages (kernel, storage, ledger, ...); the context map in
docs/architecture.md says which may import which, and import-linter enforces it.
"""

__version__ = "0.1.0"
