"""OpenAPI helpers: document error responses with the body the API really sends."""

from __future__ import annotations

from litestar.openapi.datastructures import ResponseSpec

from api.schemas import ErrorResponse

ERROR_DESCRIPTIONS = {
    400: "The request is malformed or breaks a rule",
    401: "Missing, invalid or expired bearer token",
    403: "The caller's role does not allow this",
    404: "No such object",
    409: "Conflicts with existing state",
    413: "The request body is too large",
    429: "Too many requests; retry after the Retry-After header's seconds",
    500: "Unexpected error; the body carries a request id to report",
    503: "A backing service is busy or down; retry later",
}


def error_responses(*status_codes: int, **descriptions: str) -> dict[int, ResponseSpec]:
    """``responses=`` for a handler: each status documented with :class:`ErrorResponse`.

    Replaces Litestar's default 400 schema, which describes a snake_case body. 500 and
    503 are always documented: any route may meet a bug or a busy metadata store.
    ``descriptions`` override the default text per status, keyed ``s<code>``.
    """
    return {
        code: ResponseSpec(
            ErrorResponse,
            description=descriptions.get(f"s{code}", ERROR_DESCRIPTIONS[code]),
            generate_examples=False,
        )
        for code in sorted({*status_codes, 500, 503})
    }
