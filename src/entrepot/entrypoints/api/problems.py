"""Errors as application/problem+json with a stable code, a detail, the field at fault and,
where one fits, Mojaloop's four-digit error code."""

from __future__ import annotations

import sys
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from entrepot.entrypoints.api.convert import camel
from entrepot.kernel.errors import DomainError, InvalidInput, NotFound

PROBLEM = "application/problem+json"


def problem(
    status: int, code: str, detail: str, *, field: str | None = None, mojaloop: str | None = None
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://entrepot.dev/problems/{code}",
        "title": code.replace("_", " "),
        "status": status,
        "code": code,
        "detail": detail,
    }
    if field:
        body["field"] = field
    if mojaloop:
        body["errorCode"] = mojaloop
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    status = getattr(exc, "http_status", None)
    if status is None:
        status = 404 if isinstance(exc, NotFound) else 422 if isinstance(exc, InvalidInput) else 409
    mojaloop = getattr(exc, "mojaloop_code", None)
    if mojaloop is None and isinstance(exc, InvalidInput):
        # the shared money rules' (invalid_amount, unknown_currency): bad input, as a
        # malformed field is, in Mojaloop's validation family
        mojaloop = "3100"
    return problem(status, exc.code, exc.detail, field=api_field(exc.field), mojaloop=mojaloop)


def api_field(field: str | None) -> str | None:
    """A service's field name as the API spells its fields: the services name theirs in
    snake_case (``hs_code``, ``amount_minor``), the API's bodies in camelCase (``hsCode``,
    ``amountMinor``); a path's parts each (``lines.0.unit_price`` -> ``lines.0.unitPrice``)."""
    if not field or "_" not in field or field != field.lower():  # ENTREPOT_SCREENING stays
        return field
    return ".".join(_camel(part) for part in field.split("."))


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def http_error(_request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (unknown path, wrong method) as problems; FastAPI's for a body
    ``json.loads`` could not read as the invalid input it is."""
    assert isinstance(exc, StarletteHTTPException)
    unreadable = _unreadable_body(exc.__cause__) if exc.status_code == 400 else None
    if unreadable is not None:
        return problem(422, "invalid_input", unreadable, mojaloop="3100")
    codes = {
        400: "bad_request",
        401: "unauthenticated",
        404: "not_found",
        405: "method_not_allowed",
    }
    # a 401 here is ``caller_of``'s (a route reached without the security middleware): 3105,
    # as the middleware's own 401 (``security.unauthenticated``); a path no route has is
    # Mojaloop's 3002 "Unknown URI"
    mojaloop = {401: "3105", 404: "3002"}.get(exc.status_code)
    code = codes.get(exc.status_code, "http_error")
    response = problem(exc.status_code, code, str(exc.detail), mojaloop=mojaloop)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


def _unreadable_body(cause: BaseException | None) -> str | None:
    """What made a JSON body unreadable, for FastAPI's bare 400 ("There was an error parsing
    the body", raised from what ``json.loads`` raised other than a ``JSONDecodeError``): said
    as a body that is not JSON is (``Invalid JSON: ...``, 422), since it is one to Python."""
    if isinstance(cause, UnicodeDecodeError):
        return f"Invalid JSON: the body is not UTF-8 text (byte {cause.start})"
    if isinstance(cause, RecursionError):
        return "Invalid JSON: nested too deeply"
    if isinstance(cause, ValueError) and "integer string conversion" in str(cause):
        # Python's limit on converting a digit string to an int (CVE-2020-10735), which
        # json.loads meets after the text was read as JSON
        digits = sys.get_int_max_str_digits()
        return f"Invalid JSON: a number has more than {digits} digits, the most this API reads"
    return None


def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        # a body that is not JSON: FastAPI locates it by a character offset, which is no field
        at = first.get("loc", ())[-1:]
        reason = str((first.get("ctx") or {}).get("error") or first.get("msg"))
        if not reason.startswith("Invalid JSON"):
            reason = f"Invalid JSON: {reason}"
        if at and isinstance(at[0], int):
            reason += f" at character {at[0]}"
        return problem(422, "invalid_input", reason, mojaloop="3100")
    if first.get("type") == "missing" and tuple(first.get("loc", ())) == ("body",):
        # no body at all: FastAPI's "Field required" names nothing a client could look for
        detail = "this request needs a JSON body (Content-Type: application/json)"
        return problem(422, "invalid_input", detail, mojaloop="3100")
    where = _field(first.get("loc", ()))
    detail = "; ".join(_located(e) for e in errors[:5])
    return problem(422, "invalid_input", detail or "invalid request", field=where, mojaloop="3100")


def _located(error: dict[str, Any]) -> str:
    """``transfers.0.payee: Input should be an object``; the message alone for the body."""
    where = _field(error.get("loc", ()))
    return f"{where}: {error.get('msg')}" if where else str(error.get("msg"))


#: where FastAPI locates what it refused: the first part of an error's ``loc``
_PARTS = frozenset({"body", "query", "path", "header", "cookie"})


def _field(loc: Any) -> str:
    """An error's ``loc`` as the request spells the field: ``transfers.0.payee`` in the body,
    ``from`` or ``limit`` in the query, ``windowId`` for a path parameter (its template's
    snake_case name in the API's camelCase, as the routes' own checks and the bodies spell
    ids). FastAPI's ``query.from`` and ``path.window_id`` named the same parameters that
    the routes' own checks called ``from`` and ``windowId`` (found by a review)."""
    parts = list(loc)
    if parts and parts[0] in _PARTS:
        part = parts.pop(0)
        if part == "path" and parts and isinstance(parts[0], str):
            parts[0] = camel(parts[0])
    return ".".join(str(p) for p in parts)
