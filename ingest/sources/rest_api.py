"""``rest_api`` sources: HTTP JSON APIs, declared with dlt's ``rest_api`` configuration.

``client`` is dlt's client configuration (``base_url``, ``auth`` — bearer, API key
in a header or the query, HTTP basic —, ``paginator``: page number, offset,
cursor, next link in the body or the ``Link`` header). Each table is one endpoint
(``endpoint``: dlt's endpoint configuration, or just its path; default the
table's name); a path with ``{resources.<parent>.<field>}`` reads a child
resource once per parent row. ``cursor`` + ``cursor_param`` make a table
incremental: the last value seen is sent as that query parameter. Answers 429
(honouring ``Retry-After``) and 5xx are retried with backoff by dlt's client.
"""

from __future__ import annotations

import copy
import re
from typing import TYPE_CHECKING, Any, cast

from ingest.errors import IngestError
from ingest.masks import MASK, mask_url, scrub, secret_paths, set_path

if TYPE_CHECKING:
    from dlt.extract.resource import DltResource

    from ingest.spec import SourceSpec

AUTH_TYPES = ("bearer", "api_key", "http_basic", "oauth2_client_credentials")
CHECK_TIMEOUT_SECONDS = 10
_CHILD = re.compile(r"\{resources\.")


def _endpoint(name: str, endpoint: dict[str, Any] | str | None) -> dict[str, Any]:
    if endpoint is None:
        return {"path": name}
    if isinstance(endpoint, str):
        return {"path": endpoint}
    return copy.deepcopy(endpoint)


def dlt_config(source: SourceSpec, tables: list[str] | None = None) -> dict[str, Any]:
    """The ``RESTAPIConfig`` for ``source`` (every table, or ``tables``)."""
    resources = []
    for name in tables if tables is not None else list(source.tables):
        spec = source.tables[name]
        disposition, key = spec.resolved(name)
        endpoint = _endpoint(name, spec.endpoint)
        if spec.cursor and spec.cursor_param:
            incremental: dict[str, Any] = {
                "start_param": spec.cursor_param,
                "cursor_path": spec.cursor,
            }
            if spec.lag is not None:
                incremental["lag"] = spec.lag
            endpoint["incremental"] = incremental
        resource: dict[str, Any] = {
            "name": name,
            "table_name": name,
            "endpoint": endpoint,
            "write_disposition": disposition,
        }
        if key:
            resource["primary_key"] = list(key)
        resources.append(resource)
    config: dict[str, Any] = {"client": copy.deepcopy(source.client or {}), "resources": resources}
    if source.resource_defaults:
        config["resource_defaults"] = copy.deepcopy(source.resource_defaults)
    return config


def rest_problems(source: SourceSpec) -> list[str]:
    """What is wrong with a ``rest_api`` source, in the words of the sources file."""
    problems = []
    if source.connection is not None or source.database is not None:
        problems.append("a 'rest_api' source takes no 'connection'; put base_url under 'client'")
    client = source.client or {}
    base_url = client.get("base_url")
    if not isinstance(base_url, str) or not re.match(r"^https?://[^/\s]+", base_url):
        problems.append("client.base_url: an http:// or https:// URL is needed")
    auth = client.get("auth")
    if auth is not None:
        kind = auth.get("type", "bearer") if isinstance(auth, dict) else None
        if kind not in AUTH_TYPES:
            problems.append(f"client.auth.type: one of {', '.join(AUTH_TYPES)}")
    for name, table in source.tables.items():
        if table.path or table.sheet or table.format or table.csv_options_set():
            problems.append(f"table {name!r}: path, sheet, format and CSV options belong to files")
        if table.source_table is not None:
            problems.append(f"table {name!r}: source_table: set endpoint.path instead")
        path = _endpoint(name, table.endpoint).get("path")
        if isinstance(path, str) and re.match(r"^(?:[a-z][a-z0-9+.-]*:)?//", path, re.I):
            problems.append(
                f"table {name!r}: endpoint path {mask_url(path)!r} is a full URL; give a path "
                "under client.base_url (the credentials go to that host only)"
            )
        has_incremental = isinstance(table.endpoint, dict) and "incremental" in table.endpoint
        if table.cursor and not table.cursor_param and not has_incremental:
            problems.append(
                f"table {name!r}: a cursor needs 'cursor_param', the query parameter that "
                "receives its last value"
            )
    if problems:
        return problems
    return _dlt_problems(source)


def _dlt_problems(source: SourceSpec) -> list[str]:
    """The rest of dlt's own validation (paginator, params, parent references)."""
    from dlt.common.exceptions import DictValidationException
    from dlt.common.validation import validate_dict
    from dlt.sources.rest_api.typing import RESTAPIConfig

    try:
        config = dlt_config(source)
    except IngestError as exc:
        return [exc.message]
    for path, _ in secret_paths(config):
        set_path(config, path, MASK)
    try:
        validate_dict(RESTAPIConfig, config, path=".")
    except DictValidationException as exc:
        where = (exc.path or ".").strip("./").replace("/", ".")
        field = f"{where}.{exc.field}".strip(".") if exc.field else where
        return [f"{field or 'rest_api'}: {_first_line(exc)}"]
    return []


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return re.sub(r"^In path [^:]*: ", "", text)[:300]


def resources(source: SourceSpec, tables: list[str]) -> list[DltResource]:
    from dlt.sources.rest_api import rest_api_resources
    from dlt.sources.rest_api.typing import RESTAPIConfig

    config = cast("RESTAPIConfig", dlt_config(source))
    built = {resource.name: resource for resource in rest_api_resources(config)}
    return [built[name] for name in tables]


def check_connection(source: SourceSpec) -> None:
    """GET the first page of every top-level endpoint with the configured auth."""
    import requests
    from dlt.sources.rest_api.config_setup import create_auth

    client = source.client or {}
    base_url = str(client.get("base_url"))
    auth = create_auth(client.get("auth"))
    for name in source.tables:
        endpoint = _endpoint(name, source.tables[name].endpoint)
        path = str(endpoint.get("path", name))
        if _CHILD.search(path):
            continue  # read once per parent row: nothing to call on its own
        params = {
            key: value
            for key, value in (endpoint.get("params") or {}).items()
            if not isinstance(value, dict)
        }
        try:
            response = requests.get(
                f"{base_url.rstrip('/')}/{path.lstrip('/')}",
                params=params,
                auth=auth,
                headers=client.get("headers"),
                timeout=CHECK_TIMEOUT_SECONDS,
            )
        except requests.RequestException as exc:
            raise IngestError(f"cannot reach {mask_url(base_url)}: {type(exc).__name__}") from None
        if response.status_code >= 400:
            secrets = [value for _, value in secret_paths(client)]
            raise IngestError(
                scrub(
                    f"table {name!r}: GET {path} answered {response.status_code} {response.reason}",
                    secrets,
                )
            )
