"""What a service refuses, and how the refusal travels: one class per kind of refusal, each with the
gRPC status a service answers it with, and the HTTP status the gateway turns that gRPC status into.

A domain module raises a `Refusal` subclass with a message for the person who asked; the service's
gRPC layer answers every refusal the same way (`await abort(context, exc)`), and the gateway's
`backends.rpc_errors` answers every gRPC status with `HTTP_STATUS`. So a rule refused by ingest,
masking, archive or requisition reaches the user with the same status for the same kind of refusal,
and with the service's own words (bounded by the gateway).

The kinds, as a user meets them: NotFound 404; Invalid 422 (a value breaks a rule on its own, like
the gateway's own request validation); Conflict 409 (not allowed in the current state); Exists 409;
Busy 409 (someone holds it: a PTZ session); Denied 403; TooLarge 413; Unauthenticated 401;
Unavailable 503 (a dependency of the service, in its own words); DataLoss 502 (stored data fails its
hash: the service is at fault, not the request).
"""

from typing import NoReturn

import grpc

# The HTTP answer to each gRPC status a service may send. Anything else (INTERNAL, UNKNOWN,
# UNIMPLEMENTED...) is the service's failure: 502, naming the service, never its internals.
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.INVALID_ARGUMENT: 422,
    grpc.StatusCode.OUT_OF_RANGE: 422,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 413,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.DATA_LOSS: 502,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 503,
}

# A refusal's message travels in gRPC's trailing metadata, whose default limit is 8 KiB: a message quoting a
# 60,000-character field would become RESOURCE_EXHAUSTED ("trailing metadata size exceeds limit") on
# the caller's side, a 413 about gRPC instead of the user's answer. The gateway shows 300 of them.
MAX_MESSAGE = 2000


class Refusal(Exception):
    """A request refused; the message is for the person who asked."""

    code: grpc.StatusCode = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class NotFound(Refusal):
    code = grpc.StatusCode.NOT_FOUND


class Invalid(Refusal):
    """A value breaks a rule on its own."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class Conflict(Refusal):
    """Not allowed in the current state."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Exists(Refusal):
    code = grpc.StatusCode.ALREADY_EXISTS


class Busy(Refusal):
    """Someone else holds what the request needs (a PTZ session of higher priority)."""

    code = grpc.StatusCode.ABORTED


class Denied(Refusal):
    code = grpc.StatusCode.PERMISSION_DENIED


class TooLarge(Refusal):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unauthenticated(Refusal):
    code = grpc.StatusCode.UNAUTHENTICATED


class Unavailable(Refusal):
    """What the service needs (a camera's driver, a store) does not answer; said in its words."""

    code = grpc.StatusCode.UNAVAILABLE


class DataLoss(Refusal):
    """Stored data does not match its recorded hash: nothing was served from it."""

    code = grpc.StatusCode.DATA_LOSS


_BY_CODE: dict[grpc.StatusCode, type[Refusal]] = {
    kind.code: kind for kind in (NotFound, Invalid, Conflict, Exists, Busy, Denied, TooLarge, Unauthenticated)
} | {grpc.StatusCode.UNAVAILABLE: Unavailable, grpc.StatusCode.DATA_LOSS: DataLoss}


def from_code(code: grpc.StatusCode, message: str) -> Refusal:
    """The refusal another replica answered with (a forwarded call), as the same kind here."""
    kind = _BY_CODE.get(code)
    return kind(message) if kind is not None else Refusal(message, code)


def relayed(exc: grpc.aio.AioRpcError, service: str, where: str = "") -> Refusal:
    """Another service's refusal passed on as the same kind, in its words (after `where`, when given);
    its failures (unreachable, timed out, crashed) as Unavailable naming only that service: the
    caller's user learns which piece is missing, not its addresses or tracebacks."""
    code = exc.code()
    kind = Invalid if code == grpc.StatusCode.OUT_OF_RANGE else _BY_CODE.get(code)
    # Denied or Unauthenticated here refuse the calling service, not its user: passed on, they would
    # read as the user's 403 or 401 (and a 401 ends the console's session).
    if kind in (None, Unavailable, Denied, Unauthenticated):
        return Unavailable(f"the {service} service is unavailable; try again shortly")
    details = exc.details() or "refused"
    return kind(f"{where}: {details}" if where else details)


async def abort(context: grpc.aio.ServicerContext, refusal: Refusal) -> NoReturn:
    """Answer a gRPC call with the refusal's status and message, the message cut to MAX_MESSAGE."""
    message = refusal.message if len(refusal.message) <= MAX_MESSAGE else refusal.message[:MAX_MESSAGE] + "…"
    await context.abort(refusal.code, message)
    raise AssertionError("unreachable")  # context.abort raises
