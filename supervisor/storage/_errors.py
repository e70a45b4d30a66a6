"""Storage errors and the sink protocol."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


class StorageError(Exception):
    """A write or set-up that failed.

    ``retryable`` says whether the same request may succeed later (server error, 429, connection
    error) or not (bad request, authentication, missing database). ``status`` is the HTTP status
    when there was a response. ``detail`` is the server's error text or the local cause; it never
    contains a secret. ``retry_after`` is the server's ``Retry-After`` hint in seconds, if any.
    """

    def __init__(
        self, retryable: bool, status: int | None, detail: str, *, retry_after: float | None = None
    ) -> None:
        kind = "retryable" if retryable else "permanent"
        where = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"{kind} storage error ({where}): {detail}")
        self.retryable = retryable
        self.status = status
        self.detail = detail
        self.retry_after = retry_after


class PartialWriteError(StorageError):
    """Some lines of a batch were refused for good; all the others were stored.

    Raised by a sink after it has isolated the bad lines (by splitting the batch); ``rejected``
    holds them, ``written`` counts the stored lines. The writer sends ``rejected`` to its
    dead-letter callback and treats the batch as done.
    """

    def __init__(self, status: int | None, detail: str, rejected: list[bytes], written: int) -> None:
        super().__init__(False, status, f"{len(rejected)} line(s) refused, {written} stored: {detail}")
        self.rejected = rejected
        self.written = written


class StorageConfigError(ValueError):
    """A sink configuration that cannot work (raised at construction, before any I/O)."""


@runtime_checkable
class Sink(Protocol):
    """Where batches go. Blocking; used from one writer thread at a time."""

    name: str

    def ensure_ready(self) -> None:
        """Prepare the destination (create the database when configured); the only start-up I/O."""

    def write(self, body: bytes, count: int) -> None:
        """Store ``count`` newline-separated lines; raise :class:`StorageError` on failure."""

    def close(self) -> None:
        """Release connections and files; the sink may not be used afterwards."""
