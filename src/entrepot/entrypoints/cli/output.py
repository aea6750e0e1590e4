"""What every command shares: consoles, JSON output, and turning errors into exit codes.

Exit codes: 0 success; 1 a failure (a ledger result other than ``ok``/``exists``, something not
found, a database error); 2 bad input, refused before anything was changed. Errors are one line
on stderr: ``error: <what is wrong>``.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, ParamSpec, TypeVar

import click
import typer
from rich.console import Console
from sqlalchemy import make_url
from sqlalchemy.exc import SQLAlchemyError

from entrepot.bootstrap import App, bootstrap
from entrepot.config import Settings, load_settings
from entrepot.kernel.clock import Clock
from entrepot.kernel.errors import ConfigurationError, DomainError, InvalidInput

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
#: Width of tables when stdout is not a terminal (a pipe, a file, a test): ids are 39 digits.
PIPE_WIDTH = 160

P = ParamSpec("P")
R = TypeVar("R")


class LazyModule:
    """A module imported on first attribute access, so heavy stacks load only when used."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        import importlib

        return getattr(importlib.import_module(self._name), attr)


class CliError(Exception):
    """A failure the command has already put into words."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def bad_input(message: str) -> CliError:
    return CliError(message, EXIT_BAD_INPUT)


def out() -> Console:
    """A console on the current stdout (looked up per call, so test runners can swap it).
    What it prints is text, never Rich markup: a reason such as ``purpose is one of [repairs,
    car (new)]`` or a file name in brackets is shown as it is, not read as a style tag."""
    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else PIPE_WIDTH
    return Console(file=sys.stdout, highlight=False, markup=False, width=width)


def err() -> Console:
    return Console(file=sys.stderr, highlight=False, markup=False)


def emit_json(document: Any) -> None:
    """Exactly one JSON document on stdout."""
    sys.stdout.write(json.dumps(document, indent=2) + "\n")


#: What an error line never writes to the terminal as it is: control characters (an escape
#: sequence from a bulk file retitled the window, cleared the screen) and bidirectional
#: overrides (which reorder what the line shows). Written as ``\xNN`` / ``\uNNNN``.
_UNSHOWN = {
    **{c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)},
    **{c: f"\\x{c:02x}" for c in range(0x80, 0xA0)},
    **{c: f"\\u{c:04x}" for c in (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F))},
    **{c: f"\\u{c:04x}" for c in range(0x2066, 0x206A)},
}


def error_line(message: str) -> None:
    """``error: <message>`` on one line of stderr: whitespace runs as one space, characters a
    terminal would act on rather than show (quoted from a file or an argument) escaped."""
    one_line = " ".join(str(message).split()).translate(_UNSHOWN)
    sys.stderr.write(f"error: {one_line}\n")


def exit_with(message: str, exit_code: int) -> NoReturn:
    error_line(message)
    raise typer.Exit(exit_code)


def _describe(exc: DomainError) -> str:
    return f"{exc.code}: {exc.detail}"


def guard(func: Callable[P, R]) -> Callable[P, R]:
    """Run a command, turning the errors it may meet into one stderr line and an exit code."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except CliError as exc:
            exit_with(exc.message, exc.exit_code)
        except (InvalidInput, ConfigurationError) as exc:
            exit_with(_describe(exc), EXIT_BAD_INPUT)
        except DomainError as exc:
            exit_with(_describe(exc), EXIT_FAILURE)
        except ValueError as exc:
            exit_with(str(exc), EXIT_BAD_INPUT)
        except OverflowError as exc:  # a number past what a column holds (not a bug's 1/0)
            exit_with(f"number out of range: {exc}", EXIT_BAD_INPUT)
        except SQLAlchemyError as exc:
            cause = getattr(exc, "orig", None) or exc
            exit_with(f"database error: {cause}", EXIT_FAILURE)
        except OSError as exc:
            exit_with(str(exc), EXIT_FAILURE)

    return wrapper


def shown_url(url: str) -> str:
    """A database URL as a message may show it: its password hidden, the one in the userinfo
    and the one libpq takes as a query parameter (``?password=``) alike, as ``user:***@``."""
    parsed = make_url(url)
    if "password" in parsed.query:
        parsed = parsed.difference_update_query(["password"]).set(password="***")
    return parsed.render_as_string(hide_password=True)


@contextmanager
def open_app(
    settings: Settings | None = None, *, clock: Clock | None = None, migrate: bool | None = None
) -> Iterator[App]:
    settings = settings or load_settings()
    try:
        app = bootstrap(settings, clock=clock, migrate=migrate)
    except SQLAlchemyError as exc:  # a file that is no database, a server that is not there
        cause = getattr(exc, "orig", None) or exc
        where = shown_url(settings.database_url)
        raise CliError(f"database {where}: {cause}", EXIT_FAILURE) from None
    try:
        yield app
    finally:
        app.close()
