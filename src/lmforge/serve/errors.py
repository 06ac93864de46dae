"""OpenAI-style errors: ``{"error": {"message", "type", "param", "code"}}`` with a 4xx status for
everything a client did wrong (bad JSON, bad fields, unknown model or route, missing key, a full
queue) and 500 only for a failure inside the server itself."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

log = logging.getLogger("lmforge.serve")

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "invalid_request_error",
          405: "invalid_request_error", 413: "invalid_request_error", 429: "rate_limit_error"}


class APIError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None,
                 code: str | None = None, type: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.type = type or _TYPES.get(status, "invalid_request_error" if status < 500
                                       else "server_error")
        self.headers = headers

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def from_validation(exc: ValidationError | RequestValidationError) -> APIError:
    """One 400 naming the offending field(s), e.g. ``max_tokens: Input should be >= 1``."""
    problems, first = [], None
    for err in exc.errors()[:3]:
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        # drop pydantic's union-branch names ("str", "list[TextPart]") from the path
        loc = [p for p in loc if not any(c in p for c in "[]") and p not in ("str", "int")]
        param = ".".join(loc) or None
        first = first or param
        msg = err.get("msg", "invalid value").removeprefix("Value error, ")
        problems.append(f"{param}: {msg}" if param else msg)
    code = "missing_required_parameter" if any(e.get("type") == "missing"
                                               for e in exc.errors()) else "invalid_value"
    return APIError(400, "; ".join(problems), first, code)


def install(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api(request: Request, exc: APIError):
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        return from_validation(exc).response()

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException):
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404:
            message = f"no such route: {request.method} {request.url.path}"
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return APIError(exc.status_code, message, None, code,
                        headers=getattr(exc, "headers", None)).response()

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception):
        log.exception("internal error on %s", request.url.path)
        return APIError(500, f"internal server error: {type(exc).__name__}", None,
                        "internal_error", "server_error").response()
