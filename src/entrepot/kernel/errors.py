"""Error hierarchy shared by every context.

Every error carries a stable snake_case ``code`` that callers (CLI, HTTP problem+json) can rely
on, a human ``detail``, and optionally the ``field`` at fault.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType


class DomainError(Exception):
    """Base of every error a context raises on purpose."""

    code: str = "domain_error"

    def __init__(self, detail: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, str]:
        out = {"code": self.code, "detail": self.detail}
        if self.field is not None:
            out["field"] = self.field
        return out


class InvalidInput(DomainError):
    """The caller sent something malformed; nothing was changed."""

    code = "invalid_input"


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    code = "conflict"


class ConfigurationError(DomainError):
    code = "configuration_error"


class FieldsNamed:
    """``with FieldsNamed({"id": "tillId"}): ...``: a ``DomainError`` raised inside names its
    field as the request spells it (a shared check says ``id``; a QR's body ``tillId``, a
    quote's ``payee.partyIdentifier``). A class, not a generator: it wraps checks on the
    payment path, where entering costs one call."""

    __slots__ = ("names",)

    def __init__(self, names: Mapping[str, str]) -> None:
        self.names = names

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, DomainError) and exc.field is not None:
            exc.field = self.names.get(exc.field, exc.field)
