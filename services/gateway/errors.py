"""The one way the gateway's domain modules refuse: `Refusal(status, message)`.

Accounts, OIDC, federation and the operations modules (alarms, bollards, journal, visitors, the
viewing room) each raise their own subclass, so a caller can catch one domain's refusals; the
application answers any that reaches it with its status and `{"detail": message}`, the shape of
every other refusal (`install`). Routes catch a refusal only to do something more with it (audit
it, answer as an unknown object), never to translate it.
"""

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


class Refusal(Exception):
    """A refusal the user can act on; status is the HTTP status to answer with, message says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def _answer(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refusal)
    return JSONResponse({"detail": exc.message}, status_code=exc.status)


def install(app: FastAPI) -> None:
    app.add_exception_handler(Refusal, _answer)
