"""Refusals the requisition service answers with: each carries the gRPC status the gateway turns
into the HTTP status a user can act on, and a message that names the problem."""

import grpc


class ServiceError(Exception):
    code = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND


class Invalid(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class Conflict(ServiceError):
    """Not allowed in the current state (HTTP 409)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Denied(ServiceError):
    code = grpc.StatusCode.PERMISSION_DENIED


class TooLarge(ServiceError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unauthenticated(ServiceError):
    code = grpc.StatusCode.UNAUTHENTICATED


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE


class DataLoss(ServiceError):
    """Stored footage does not match its recorded hash: nothing was extracted."""

    code = grpc.StatusCode.DATA_LOSS
