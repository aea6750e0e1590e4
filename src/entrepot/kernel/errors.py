"""Error hierarchy shared by every context.

Every error carries a stable snake_case ``code`` that callers (CLI, HTTP problem+json) can rely
on, a human ``detail``, and optionally the ``field`` at fault.
"""

from __future__ import annotations


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
