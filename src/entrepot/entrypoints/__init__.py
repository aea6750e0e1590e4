"""Entrypoints: the ways in (cli/ today; api/ and console/ later).

They parse and render; the use cases live in the contexts. Schemas and formatting stay here, and
no context imports this package (import-linter enforces it).
"""
