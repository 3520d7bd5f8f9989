"""Why a query was refused or could not run."""

from __future__ import annotations

from catalog.errors import CatalogError


class QueryError(CatalogError):
    """An ad hoc query could not be run."""


class QueryRejected(QueryError):
    """The SQL is not allowed or not valid; ``line``/``column`` point at the problem when known."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.line = line
        self.column = column


class QueryFailed(QueryError):
    """The engine refused or failed the query (its message, never a secret)."""


class QueryTimeout(QueryError):
    """The query ran past its timeout and was stopped."""


class WarehouseBusy(QueryError):
    """A load holds the warehouse; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class WarehouseUnavailable(QueryError):
    """The warehouse cannot be reached or opened now (not built yet, down, no login)."""

    def __init__(self, message: str, *, hint: str | None = None, retry_after: int = 30) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after
