"""What sqlcoach's HTTP apps share (``serve`` and ``view``): the bind-address check, the API-key
dependency, and the JSON error shape with its handlers, and running uvicorn until stopped.

Errors have OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, on every route
of every app: a 401 for a wrong or missing key (``bearer_auth``), 400 for a request FastAPI could
not validate, the route's own ``ApiError`` status, and a logged JSON 500 for anything unexpected
(``add_error_handlers``). Imports FastAPI only inside the functions that build app pieces.
"""

import ipaddress
import logging
import secrets
import sys
from typing import Any, Callable

log = logging.getLogger("sqlcoach.web")


class ApiError(Exception):
    """An HTTP error a route raises on purpose: ``status``, OpenAI's error fields, extra headers."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param
        self.headers = headers or {}


def error_body(message: str, type: str = "invalid_request_error", code: str | None = None,
               param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def is_loopback(host: str) -> bool:
    """True when ``host`` is this machine only (``localhost``, ``127.0.0.0/8``, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def warn_if_open(host: str, api_key: str | None, what: str) -> None:
    """Say on stderr when a server binds beyond this machine without an API key (``what``: who
    could then use what)."""
    if not is_loopback(host) and api_key is None:
        print(f"warning: serving on {host} without --api-key: anyone who can reach this address can use {what}",
              file=sys.stderr)


def log_to_stderr() -> None:
    """The servers' log lines on stderr with time, level and logger."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run_until_stopped(app: Any, host: str, port: int, close: Callable[[], None]) -> int:
    """Run the ASGI ``app`` with uvicorn on ``host:port`` until Ctrl-C (or SIGTERM), giving
    requests in flight 5 s to finish, then ``close()`` whatever it holds (always); 0."""
    import uvicorn

    try:
        uvicorn.run(app, host=host, port=port, log_level="info", access_log=False, timeout_graceful_shutdown=5)
    finally:
        close()
    return 0


def bearer_auth(api_key: str | None) -> Any:
    """A FastAPI dependency: with ``api_key`` set, a request without ``Authorization: Bearer
    <api_key>`` gets 401 (compared in constant time); with ``None`` every request passes."""
    from fastapi import Request

    # no ``from __future__ import annotations`` in this module: FastAPI reads ``Request`` from the
    # live annotation to know that ``request`` is the request, not a query parameter
    async def check(request: Request) -> None:
        if api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), api_key.encode()):
            raise ApiError(401, "Incorrect or missing API key: send 'Authorization: Bearer <key>'",
                           type="authentication_error", code="invalid_api_key")

    return check


def _validation_message(exc: Any) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = [str(x) for x in err.get("loc", ()) if x != "body"]
        if err.get("type") == "json_invalid":
            return f"malformed JSON body: {err.get('ctx', {}).get('error', err.get('msg'))}"
        parts.append(f"{'.'.join(loc) or 'body'}: {err.get('msg')}")
    return "invalid request: " + "; ".join(parts)


def _validation_param(exc: Any) -> str | None:
    """The top-level body field of the first validation error (OpenAI's ``param``), if any."""
    for err in exc.errors()[:1]:
        loc = [x for x in err.get("loc", ()) if x != "body"]
        if loc and isinstance(loc[0], str):
            return loc[0]
    return None


def add_error_handlers(app: Any, logger: logging.Logger = log) -> None:
    """Every error of ``app`` as a JSON ``error_body``: ``ApiError`` with its status, a request
    that fails validation 400, Starlette's HTTP errors (404, 405) with theirs, anything else a
    500 logged with its traceback on ``logger`` (the process goes on)."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    async def api_error(request: Any, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.message, exc.type, exc.code, exc.param), status_code=exc.status,
                            headers=exc.headers)

    async def invalid(request: Any, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(error_body(_validation_message(exc), param=_validation_param(exc)), status_code=400)

    async def http_error(request: Any, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(error_body(str(exc.detail)), status_code=exc.status_code, headers=exc.headers)

    async def internal(request: Any, exc: Exception) -> JSONResponse:
        logger.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse(error_body("internal server error (logged by the server)", "server_error"),
                            status_code=500)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, internal)
