"""The error hierarchy shared by every layer, each class tied to one exit code.

Exit codes are stable and documented in the README:
0 success; 1 a check or job failed; 2 invalid usage or input; 3 not enough credits;
4 a required service is unreachable; 5 another run holds the lock.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CREDITS = 3
EXIT_UNAVAILABLE = 4
EXIT_LOCKED = 5


class QmlError(Exception):
    """Base class: a message for the operator and the exit code the CLI maps it to."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        message = self.message.rstrip()
        if not self.hint:
            return message
        if not message.endswith((".", "!", "?", ":")):
            message += "."
        hint = self.hint.strip()
        separator = "\n" if self.hint.startswith("\n") else " "
        return f"{message}{separator}{hint}"


class CheckFailed(QmlError):
    """A check or a job ran and found a problem."""

    exit_code = EXIT_FAILED


class InvalidInput(QmlError):
    """Invalid usage or input: a bad value, an unknown name, a malformed file."""

    exit_code = EXIT_USAGE


class NotFound(InvalidInput):
    """A named object (tenant, prediction, backup, ...) does not exist."""


class Conflict(InvalidInput):
    """The request contradicts stored state, such as an idempotency key replayed
    with a different amount."""


class InsufficientCredits(QmlError):
    """The tenant's available credits do not cover the charge."""

    exit_code = EXIT_CREDITS

    def __init__(self, message: str, *, available: int = 0, required: int = 0) -> None:
        super().__init__(message)
        self.available = available
        self.required = required


class ServiceUnavailable(QmlError):
    """A required service (database, Redis) cannot be reached."""

    exit_code = EXIT_UNAVAILABLE


class LockHeld(QmlError):
    """Another run of the same job holds its lock."""

    exit_code = EXIT_LOCKED


class ResourceLimit(InvalidInput):
    """The request needs more memory or time than this machine allows."""
