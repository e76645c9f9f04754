"""HTTP errors: the one place where facestyle's exceptions become status codes and JSON bodies.

Every error response is ``{"error": {"code", "message", "input"}}``: ``code`` a stable word for
programs, ``message`` one line for people, ``input`` the part of the request at fault (a form field,
a query parameter, a file name) or null.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import (
    BackendUnavailableError,
    BadImageError,
    BadInputError,
    BatcherClosedError,
    BatcherFullError,
    FacestyleError,
    ManifestError,
    ModelFormatError,
    NoFaceError,
)

RETRY_AFTER_S = 1  # what a 503 tells a client to wait before trying again


class ServeError(FacestyleError):
    """An error of the HTTP layer itself; ``input`` names the part of the request at fault."""

    def __init__(self, message: str, input: str | None = None):
        super().__init__(message)
        self.input = input


class NotFoundError(ServeError, LookupError):
    """An unknown person, style or resource (HTTP 404)."""


class UnauthorizedError(ServeError):
    """A request without the server's token, or with another one (HTTP 401)."""


class RequestTimeoutError(ServeError):
    """A request body that did not arrive within ``--body-timeout`` (HTTP 408)."""


class BodyTooLargeError(ServeError):
    """A request body over ``--max-body-mb`` (HTTP 413)."""


class MalformedRequestError(ServeError, ValueError):
    """A request of the wrong shape: a missing field, bad base64, a wrong content type (HTTP 422)."""


class OverloadedError(ServeError):
    """The server cannot take the request now: a full queue, models still loading, draining (HTTP 503)."""


class ConflictError(ServeError):
    """The request contradicts what is stored (a photo enrolled under another name) (HTTP 409)."""


class UnavailableError(ServeError):
    """A part of the service that failed to load (a broken artifact, a gallery of another model) (HTTP 503)."""


class LimitReachedError(ServeError):
    """A request past a limit the server was started with, e.g. --max-streams (HTTP 429)."""


@dataclass(frozen=True)
class Status:
    status: int
    code: str


# The mapping, most specific class first: the first class the exception is an instance of wins.
STATUS_OF: tuple[tuple[type[BaseException], Status], ...] = (
    (NoFaceError, Status(400, "no_face")),
    (BadImageError, Status(400, "bad_image")),
    (UnauthorizedError, Status(401, "unauthorized")),
    (NotFoundError, Status(404, "not_found")),
    (RequestTimeoutError, Status(408, "request_timeout")),
    (ConflictError, Status(409, "already_enrolled")),
    (LimitReachedError, Status(429, "limit_reached")),
    (BodyTooLargeError, Status(413, "body_too_large")),
    (MalformedRequestError, Status(422, "malformed_request")),
    (BadInputError, Status(422, "bad_input")),
    (BatcherFullError, Status(503, "overloaded")),
    (BatcherClosedError, Status(503, "shutting_down")),
    (OverloadedError, Status(503, "overloaded")),
    (UnavailableError, Status(503, "unavailable")),
    (TimeoutError, Status(503, "overloaded")),  # a result not ready in time: the queue is too long
    (ManifestError, Status(500, "model_error")),
    (ModelFormatError, Status(500, "model_error")),
    (BackendUnavailableError, Status(500, "backend_unavailable")),
    (FacestyleError, Status(500, "internal")),
)
INTERNAL = Status(500, "internal")
CLIENT_GONE = Status(499, "client_disconnected")  # no response: the client left first (nginx's 499), counted apart


def status_of(error: BaseException) -> Status:
    for cls, status in STATUS_OF:
        if isinstance(error, cls):
            return status
    return INTERNAL


def error_body(code: str, message: str, input: str | None = None) -> dict:
    return {"error": {"code": code, "message": message, "input": input}}


def error_response_parts(error: BaseException) -> tuple[int, dict, dict[str, str]]:
    """(status, JSON body, extra headers) for an exception raised while serving a request."""
    status = status_of(error)
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    if status is INTERNAL and not isinstance(error, FacestyleError):
        message = f"internal error ({type(error).__name__}); see the server log"
    headers = {}
    if status.status == 503:
        headers["Retry-After"] = str(RETRY_AFTER_S)
    if status.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="facestyle"'
    return status.status, error_body(status.code, message, getattr(error, "input", None)), headers


def install_handlers(app) -> None:
    """Route every error (ours, FastAPI's validation, Starlette's 404/405, anything else) to the JSON form."""
    import logging

    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    log = logging.getLogger("facestyle.serve")

    def respond(error: BaseException) -> JSONResponse:
        status, body, headers = error_response_parts(error)
        if status >= 500 and status != 503:
            log.error("%s: %s", type(error).__name__, error, exc_info=error)
        return JSONResponse(body, status_code=status, headers=headers)

    async def on_facestyle_error(request, error):
        return respond(error)

    async def on_validation_error(request, error: RequestValidationError):
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header"))
        message = f"{where or 'request'}: {first.get('msg', 'malformed request')}"
        return JSONResponse(error_body("malformed_request", message, where or None), status_code=422)

    async def on_http_error(request, error: HTTPException):
        codes = {404: "not_found", 405: "method_not_allowed", 400: "bad_request", 413: "body_too_large"}
        body = error_body(codes.get(error.status_code, f"http_{error.status_code}"), str(error.detail), None)
        if error.status_code == 404 and error.detail == "Not Found":
            body["error"]["message"] = f"{request.url.path}: no such endpoint (see /docs)"
        return JSONResponse(body, status_code=error.status_code, headers=getattr(error, "headers", None))

    async def on_any_error(request, error: Exception):
        return respond(error)

    app.add_exception_handler(FacestyleError, on_facestyle_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(Exception, on_any_error)
