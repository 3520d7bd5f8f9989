"""Request bodies are decoded strictly: ``"false"`` is not a boolean, ``"1"`` is not a number.

Litestar converts bodies leniently (as it must for query strings), so a body of
``{"isActive": "false"}`` would deactivate a user. This ``before_request`` hook
decodes the JSON body once more, strictly, against the handler's ``data`` type
and refuses what does not match with the usual 400. Only requests with a body
pay for it.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException

_AT = re.compile(r" - at `\$\.?(?P<key>[^`]*)`$")


async def strict_body(request: Request[Any, Any, Any]) -> None:
    """Refuse a JSON body that only a lenient conversion would accept."""
    parameter = request.route_handler.parsed_fn_signature.parameters.get("data")
    if parameter is None:
        return
    body = await request.body()
    if not body:
        return  # Litestar reports a missing body itself
    try:
        msgspec.json.decode(body, type=parameter.annotation, strict=True)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = _AT.search(message)
        key = match.group("key") if match else ""
        text = message[: match.start()] if match else message
        raise ValidationException(
            detail="Request validation failed",
            extra=[{"message": text, "key": key, "source": "body"}],
        ) from None
    except msgspec.DecodeError:
        return  # not JSON at all: Litestar's own parsing answers 400
