"""Domain errors that handlers raise; the error interceptor turns them into gRPC statuses."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import grpc

# What a caller reads when a service or database this one depends on fails: the same words
# whichever it is (which service calls which is the deployment's business, not a caller's).
DEPENDENCY_UNAVAILABLE = "a backing service is temporarily unavailable; retry later"
DEPENDENCY_OVERLOADED = "a backing service is overloaded; retry later"
DEPENDENCY_DEADLINE = "deadline exceeded while waiting for a backing service"


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class ServiceError(Exception):
    """Base class: a failure whose status code and message are safe to show the caller.

    `detail` is for the service's own log line only (which dependency failed, and how):
    callers never see it, so it may name what the message must not.
    """

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class InvalidArgument(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, violations: Iterable[FieldViolation] | FieldViolation) -> None:
        if isinstance(violations, FieldViolation):
            violations = [violations]
        self.violations = list(violations)
        if not self.violations:
            raise ValueError("InvalidArgument needs at least one field violation")
        message = "; ".join(f"{v.field}: {v.description}" for v in self.violations)
        super().__init__(message)

    @classmethod
    def field(cls, field: str, description: str) -> InvalidArgument:
        return cls(FieldViolation(field, description))


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(ServiceError):
    code = grpc.StatusCode.ALREADY_EXISTS


class Unauthenticated(ServiceError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(ServiceError):
    code = grpc.StatusCode.PERMISSION_DENIED


class FailedPrecondition(ServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE
