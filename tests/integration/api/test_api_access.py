"""Who may call what.

Two guarantees, both checked against the application's own route table so that a new
route cannot slip past them:

* every route under ``/api`` declares its access guard (``public`` only for an explicit
  allow-list, a role guard otherwise) and no guarded route is excluded from
  authentication;
* an exhaustive matrix gives, for every route, every role (anonymous, viewer, user,
  admin) and the object it is called on, the exact status; each cell is a real request.

Ownership: the only object a user owns today is their own account (``self``), and the
account routes ``/api/users/{user_id}`` are admin routes, so a non-admin gets 403 there
whether the account is theirs, another's or missing (the answer reveals nothing). Jobs and
sources (later issues) are owned objects: their rows will add ``owner`` / ``non_owner``
targets where the non-owner must get 404, never 403 (a forbidden object answers as if it
did not exist).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar, get
from litestar.handlers.http_handlers import HTTPRouteHandler
from litestar.testing import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from api.app import PUBLIC_PATHS, create_app
from api.auth.guards import public, requires_admin, requires_reader, requires_writer
from api.queries.models import QueryRun
from api.users.models import Role, User
from api.users.services import create_user_with_password
from headwater.db import session_scope
from headwater.notify.dispatch import notify_users
from headwater.notify.models import AlertRule
from headwater.settings import Settings
from orchestration.models import Job, Run
from tests.integration.api.conftest import ADMIN, PASSWORD, VIEWER, Account, make_warehouse

pytestmark = pytest.mark.integration

Client = TestClient[Litestar]

ACCESS_GUARDS = {public, requires_reader, requires_writer, requires_admin}
PUBLIC_ROUTES = {("POST", "/api/auth/login"), ("POST", "/api/auth/refresh")}

USER = Account("user@example.com", PASSWORD, "user")
OTHER = Account("other@example.com", PASSWORD, "user")
"""Another user's account: the ``other`` target of every account route."""
ACCOUNTS = {"admin": ADMIN, "user": USER, "viewer": VIEWER}
ROLES = ("anonymous", "viewer", "user", "admin")
MISSING_ID = 2**62


# --------------------------------------------------------------------------- route table


def _is_framework_options(handler: HTTPRouteHandler) -> bool:
    """Litestar's own ``OPTIONS`` answer (an ``Allow`` header), added to every path."""
    return handler.http_methods == {"OPTIONS"} and "create_options_handler" in getattr(
        handler.fn, "__qualname__", ""
    )


def api_handlers(app: Litestar) -> Iterator[tuple[str, str, HTTPRouteHandler]]:
    """``(method, path template, handler)`` of every route the application serves under /api."""
    for route in app.routes:
        if not route.path.startswith("/api"):
            continue
        for handler in getattr(route, "route_handlers", ()):
            if not isinstance(handler, HTTPRouteHandler) or _is_framework_options(handler):
                continue
            for method in sorted(handler.http_methods):
                yield method, route.path, handler


def guards_of(handler: HTTPRouteHandler) -> list[Callable[..., Any]]:
    # Litestar wraps sync guards; ``func`` is the function the controller declared.
    return [getattr(guard, "func", guard) for guard in handler.resolve_guards()]


def unguarded(app: Litestar) -> list[str]:
    """Routes under /api without exactly one access guard."""
    found = []
    for method, path, handler in api_handlers(app):
        declared = [guard for guard in guards_of(handler) if guard in ACCESS_GUARDS]
        if len(declared) != 1:
            found.append(f"{method} {path}: {[g.__name__ for g in guards_of(handler)]}")
    return found


@pytest.fixture
def app(settings_maker: Callable[..., Settings], tmp_path: Path) -> Litestar:
    return create_app(settings_maker(tmp_path))


def test_every_api_route_declares_exactly_one_access_guard(app: Litestar) -> None:
    routes = list(api_handlers(app))
    assert ("GET", "/api/users/me") in {(m, p) for m, p, _ in routes}
    assert unguarded(app) == []


def test_the_route_walk_catches_an_unguarded_route(app: Litestar) -> None:
    @get("/api/forgotten", operation_id="forgotten", sync_to_thread=False)
    def forgotten() -> str:
        return "nobody checked me"

    app.register(forgotten)
    assert unguarded(app) == ["GET /api/forgotten: []"]


def test_only_the_allow_listed_routes_are_public(app: Litestar) -> None:
    public_routes = {(m, p) for m, p, h in api_handlers(app) if public in guards_of(h)}
    assert public_routes == PUBLIC_ROUTES
    for method, path, handler in api_handlers(app):
        if (method, path) in PUBLIC_ROUTES:
            assert handler.opt.get("exclude_from_auth") is True, f"{method} {path}"


def test_no_guarded_api_route_is_excluded_from_authentication(app: Litestar) -> None:
    exclusions = [re.compile(PUBLIC_PATHS)]
    for probe in ("/health", "/health/ready", "/metrics", "/schema/openapi.json"):
        assert exclusions[0].match(probe), probe
    for method, path, handler in api_handlers(app):
        if (method, path) in PUBLIC_ROUTES:
            continue
        assert not handler.opt.get("exclude_from_auth"), f"{method} {path}"
        assert not any(p.search(path) for p in exclusions), f"{method} {path}"


# --------------------------------------------------------------------------- the matrix

# Targets: what the path parameter names.
NONE = "none"  # the route names no object
SELF = "self"  # the caller's own account
OTHER_ACCOUNT = "other"  # another user's account
MISSING = "missing"  # an id no object has
SHARED = "shared"  # an object every reader may see (a catalog dataset)
DECLARED = "declared"  # a source from sources.yml (read-only through the API)
STORED = "stored"  # a source stored through the API
OWN_JOB = "own_job"  # a job of the user account (not shared)
SHARED_JOB = "shared_job"  # another user's job, shared with every reader
RUN = "run"  # a failed run of the user account's job
OWN_QUERY = "own_query"  # an entry in the user account's query history
OWN_NOTE = "own_note"  # a notification of the user account
CHANNEL = "channel"  # a notification channel (admins')
OWN_RULE = "own_rule"  # an alert rule of the user account (on their own job)
DEFAULT_RULE = "default_rule"  # one of the rules Headwater creates (admins')

DAGSTER_DOWN = 503
"""What a caller who passed every check gets when Dagster is not running: the matrix
runs without it, so a route that must reach Dagster answers this after the checks."""


def row(**statuses: int) -> dict[str, int]:
    return statuses


EXPECTED: dict[tuple[str, str], dict[str, dict[str, int]]] = {
    ("POST", "/api/auth/login"): {NONE: row(anonymous=200, viewer=200, user=200, admin=200)},
    ("POST", "/api/auth/refresh"): {NONE: row(anonymous=200, viewer=200, user=200, admin=200)},
    ("POST", "/api/auth/logout"): {NONE: row(anonymous=401, viewer=204, user=204, admin=204)},
    ("GET", "/api/users/me"): {SELF: row(anonymous=401, viewer=200, user=200, admin=200)},
    ("PATCH", "/api/users/me"): {SELF: row(anonymous=401, viewer=200, user=200, admin=200)},
    ("GET", "/api/users"): {NONE: row(anonymous=401, viewer=403, user=403, admin=200)},
    ("POST", "/api/users"): {NONE: row(anonymous=401, viewer=403, user=403, admin=201)},
    ("GET", "/api/users/{user_id:int}"): {
        SELF: row(viewer=403, user=403, admin=200),
        OTHER_ACCOUNT: row(anonymous=401, viewer=403, user=403, admin=200),
        MISSING: row(anonymous=401, viewer=403, user=403, admin=404),
    },
    ("PATCH", "/api/users/{user_id:int}"): {
        SELF: row(viewer=403, user=403, admin=200),
        OTHER_ACCOUNT: row(anonymous=401, viewer=403, user=403, admin=200),
        MISSING: row(anonymous=401, viewer=403, user=403, admin=404),
    },
    ("POST", "/api/users/{user_id:int}/password"): {
        SELF: row(viewer=403, user=403, admin=200),
        OTHER_ACCOUNT: row(anonymous=401, viewer=403, user=403, admin=200),
        MISSING: row(anonymous=401, viewer=403, user=403, admin=404),
    },
    ("GET", "/api/catalog/datasets"): {NONE: row(anonymous=401, viewer=200, user=200, admin=200)},
    ("GET", "/api/catalog/datasets/{dataset_id:int}"): {
        SHARED: row(anonymous=401, viewer=200, user=200, admin=200),
        MISSING: row(anonymous=401, viewer=404, user=404, admin=404),
    },
    ("GET", "/api/catalog/datasets/{dataset_id:int}/lineage"): {
        SHARED: row(anonymous=401, viewer=200, user=200, admin=200),
        MISSING: row(anonymous=401, viewer=404, user=404, admin=404),
    },
    ("GET", "/api/catalog/schema-changes"): {
        NONE: row(anonymous=401, viewer=200, user=200, admin=200)
    },
    ("GET", "/api/catalog/datasets/{dataset_id:int}/impact"): {
        SHARED: row(anonymous=401, viewer=200, user=200, admin=200),
        MISSING: row(anonymous=401, viewer=404, user=404, admin=404),
    },
    ("GET", "/api/audit-log"): {NONE: row(anonymous=401, viewer=403, user=403, admin=200)},
    ("GET", "/api/sources"): {NONE: row(anonymous=401, viewer=200, user=200, admin=200)},
    ("POST", "/api/sources"): {NONE: row(anonymous=401, viewer=403, user=403, admin=201)},
    ("GET", "/api/sources/{name:str}"): {
        DECLARED: row(anonymous=401, viewer=200, user=200, admin=200),
        STORED: row(viewer=200, user=200, admin=200),
        MISSING: row(viewer=404, user=404, admin=404),
    },
    ("PATCH", "/api/sources/{name:str}"): {
        DECLARED: row(anonymous=401, viewer=403, user=403, admin=409),
        STORED: row(viewer=403, user=403, admin=200),
        MISSING: row(viewer=403, user=403, admin=404),
    },
    ("DELETE", "/api/sources/{name:str}"): {
        DECLARED: row(anonymous=401, viewer=403, user=403, admin=409),
        STORED: row(viewer=403, user=403, admin=204),
        MISSING: row(viewer=403, user=403, admin=404),
    },
    ("POST", "/api/sources/{name:str}/test"): {
        DECLARED: row(anonymous=401, viewer=403, user=200, admin=200),
        MISSING: row(viewer=403, user=404, admin=404),
    },
    ("GET", "/api/sources/{name:str}/state"): {
        DECLARED: row(anonymous=401, viewer=200, user=200, admin=200),
        MISSING: row(viewer=404, user=404, admin=404),
    },
    ("GET", "/api/jobs"): {NONE: row(anonymous=401, viewer=200, user=200, admin=200)},
    ("POST", "/api/jobs"): {NONE: row(anonymous=401, viewer=403, user=201, admin=201)},
    ("GET", "/api/jobs/{job_id:int}"): {
        OWN_JOB: row(anonymous=401, viewer=404, user=200, admin=200),
        SHARED_JOB: row(viewer=200, user=200, admin=200),
        MISSING: row(viewer=404, user=404, admin=404),
    },
    ("PATCH", "/api/jobs/{job_id:int}"): {
        OWN_JOB: row(anonymous=401, viewer=403, user=200, admin=200),
        SHARED_JOB: row(viewer=403, user=403, admin=200),
        MISSING: row(viewer=403, user=404, admin=404),
    },
    ("DELETE", "/api/jobs/{job_id:int}"): {
        OWN_JOB: row(anonymous=401, viewer=403, user=204, admin=204),
        SHARED_JOB: row(viewer=403, user=403, admin=204),
        MISSING: row(viewer=403, user=404, admin=404),
    },
    ("POST", "/api/jobs/{job_id:int}/enable"): {
        OWN_JOB: row(anonymous=401, viewer=403, user=200, admin=200),
        SHARED_JOB: row(viewer=403, user=403, admin=200),
        MISSING: row(viewer=403, user=404, admin=404),
    },
    ("POST", "/api/jobs/{job_id:int}/disable"): {
        OWN_JOB: row(anonymous=401, viewer=403, user=200, admin=200),
        SHARED_JOB: row(viewer=403, user=403, admin=200),
        MISSING: row(viewer=403, user=404, admin=404),
    },
    ("POST", "/api/jobs/{job_id:int}/run"): {
        OWN_JOB: row(anonymous=401, viewer=403, user=DAGSTER_DOWN, admin=DAGSTER_DOWN),
        SHARED_JOB: row(viewer=403, user=403, admin=DAGSTER_DOWN),
        MISSING: row(viewer=403, user=404, admin=404),
    },
    ("GET", "/api/jobs/{job_id:int}/runs"): {
        OWN_JOB: row(anonymous=401, viewer=404, user=200, admin=200),
        SHARED_JOB: row(viewer=200, user=200, admin=200),
        MISSING: row(viewer=404, user=404, admin=404),
    },
    ("GET", "/api/runs/{run_id:str}"): {
        RUN: row(anonymous=401, viewer=404, user=200, admin=200),
        MISSING: row(viewer=404, user=404, admin=404),
    },
    ("GET", "/api/runs/{run_id:str}/logs"): {
        RUN: row(anonymous=401, viewer=404, user=DAGSTER_DOWN, admin=DAGSTER_DOWN),
        MISSING: row(viewer=404, user=404, admin=404),
    },
    ("POST", "/api/runs/{run_id:str}/retry"): {
        RUN: row(anonymous=401, viewer=403, user=DAGSTER_DOWN, admin=DAGSTER_DOWN),
        MISSING: row(viewer=403, user=404, admin=404),
    },
    ("POST", "/api/runs/{run_id:str}/cancel"): {
        RUN: row(anonymous=401, viewer=403, user=409, admin=409),
        MISSING: row(viewer=403, user=404, admin=404),
    },
    ("GET", "/api/destinations"): {NONE: row(anonymous=401, viewer=200, user=200, admin=200)},
    ("GET", "/api/dashboard"): {NONE: row(anonymous=401, viewer=200, user=200, admin=200)},
    ("POST", "/api/queries"): {NONE: row(anonymous=401, viewer=200, user=200, admin=200)},
    ("POST", "/api/queries/export"): {NONE: row(anonymous=401, viewer=200, user=200, admin=200)},
    ("POST", "/api/queries/validate"): {NONE: row(anonymous=401, viewer=200, user=200, admin=200)},
    ("GET", "/api/queries/history"): {NONE: row(anonymous=401, viewer=200, user=200, admin=200)},
    ("POST", "/api/queries/history/{history_id:int}/run"): {
        OWN_QUERY: row(anonymous=401, viewer=404, user=200, admin=200),
        MISSING: row(viewer=404, user=404, admin=404),
    },
    ("GET", "/api/notifications"): {NONE: row(anonymous=401, viewer=200, user=200, admin=200)},
    ("GET", "/api/notifications/unread-count"): {
        NONE: row(anonymous=401, viewer=200, user=200, admin=200)
    },
    ("POST", "/api/notifications/read-all"): {
        NONE: row(anonymous=401, viewer=200, user=200, admin=200)
    },
    ("POST", "/api/notifications/{notification_id:int}/read"): {
        OWN_NOTE: row(anonymous=401, viewer=404, user=200, admin=404),
        MISSING: row(viewer=404, user=404, admin=404),
    },
    ("GET", "/api/notification-channels"): {
        NONE: row(anonymous=401, viewer=403, user=403, admin=200)
    },
    ("POST", "/api/notification-channels"): {
        NONE: row(anonymous=401, viewer=403, user=403, admin=201)
    },
    ("GET", "/api/notification-channels/{channel_id:int}"): {
        CHANNEL: row(anonymous=401, viewer=403, user=403, admin=200),
        MISSING: row(viewer=403, user=403, admin=404),
    },
    ("PATCH", "/api/notification-channels/{channel_id:int}"): {
        CHANNEL: row(anonymous=401, viewer=403, user=403, admin=200),
        MISSING: row(viewer=403, user=403, admin=404),
    },
    ("DELETE", "/api/notification-channels/{channel_id:int}"): {
        CHANNEL: row(anonymous=401, viewer=403, user=403, admin=204),
        MISSING: row(viewer=403, user=403, admin=404),
    },
    ("POST", "/api/notification-channels/{channel_id:int}/test"): {
        CHANNEL: row(anonymous=401, viewer=403, user=403, admin=200),
        MISSING: row(viewer=403, user=403, admin=404),
    },
    ("GET", "/api/alert-rules"): {NONE: row(anonymous=401, viewer=403, user=200, admin=200)},
    ("POST", "/api/alert-rules"): {NONE: row(anonymous=401, viewer=403, user=201, admin=201)},
    ("GET", "/api/alert-rules/{rule_id:int}"): {
        OWN_RULE: row(anonymous=401, viewer=403, user=200, admin=200),
        DEFAULT_RULE: row(viewer=403, user=404, admin=200),
        MISSING: row(viewer=403, user=404, admin=404),
    },
    ("PATCH", "/api/alert-rules/{rule_id:int}"): {
        OWN_RULE: row(anonymous=401, viewer=403, user=200, admin=200),
        DEFAULT_RULE: row(viewer=403, user=404, admin=200),
        MISSING: row(viewer=403, user=404, admin=404),
    },
    ("DELETE", "/api/alert-rules/{rule_id:int}"): {
        OWN_RULE: row(anonymous=401, viewer=403, user=204, admin=204),
        DEFAULT_RULE: row(viewer=403, user=404, admin=409),
        MISSING: row(viewer=403, user=404, admin=404),
    },
    ("GET", "/api/alerts"): {NONE: row(anonymous=401, viewer=200, user=200, admin=200)},
}
CASES = [
    (method, path, target, role, status)
    for (method, path), targets in EXPECTED.items()
    for target, statuses in targets.items()
    for role, status in statuses.items()
]
ERROR_CODES = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    503: "unavailable",
}


def test_the_matrix_has_a_row_for_every_api_route(app: Litestar) -> None:
    served = {(method, path) for method, path, _ in api_handlers(app)}
    assert set(EXPECTED) == served


def test_the_matrix_covers_every_role_and_anonymous_is_refused_outside_public_routes() -> None:
    for route, targets in EXPECTED.items():
        anonymous = {s["anonymous"] for s in targets.values() if "anonymous" in s}
        assert anonymous, f"{route}: no anonymous cell"
        if route not in PUBLIC_ROUTES:
            assert anonymous == {401}, route
        for target, statuses in targets.items():
            assert {"viewer", "user", "admin"} <= set(statuses), (route, target)


@dataclass(frozen=True)
class World:
    client: Client
    ids: dict[str, int]
    dataset_id: int
    settings: Settings
    stored_source: str = ""
    jobs: dict[str, int] = field(default_factory=dict)
    run_id: str = ""
    query_id: int = 0
    objects: dict[str, int] = field(default_factory=dict)
    """Notification, channel and rule ids by target."""


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
    settings_maker: Callable[..., Settings],
    seed: Callable[[str], dict[str, int]],
) -> Iterator[World]:
    """One store for the whole matrix: each case signs in afresh, so a case that ends its
    own tokens (logout, password reset) cannot touch the next one."""
    settings = settings_maker(tmp_path_factory.mktemp("matrix"), login_attempts_per_address=10_000)
    make_warehouse(settings.duckdb_path)
    datasets = seed(settings.metadata_url)
    with session_scope(settings.metadata_url) as session:
        for account in (USER, OTHER):
            create_user_with_password(session, account.email, account.password, Role.USER)
    with session_scope(settings.metadata_url) as session:
        by_email = dict(session.execute(select(User.email, User.id)).tuples().all())
    ids = {role: by_email[account.email] for role, account in ACCOUNTS.items()}
    ids["other"] = by_email[OTHER.email]
    jobs = {OWN_JOB: _job(settings, ids["user"]), SHARED_JOB: _job(settings, ids["other"], True)}
    run_id = str(uuid.uuid4())
    with session_scope(settings.metadata_url) as session:
        session.add(Run(id=run_id, job_id=jobs[OWN_JOB], status="failed", rows_per_table={}))
        entry = QueryRun(user_id=ids["user"], sql="select 1 as one", role="user", outcome="success")
        session.add(entry)
        session.flush()
        query_id = entry.id
        [note] = notify_users(session, [ids["user"]], title="yours", body="", level="info")
        default_rule = session.scalar(select(AlertRule.id).where(AlertRule.builtin.is_not(None)))
        assert default_rule is not None
    RULE_JOB[:] = [jobs[OWN_JOB]]
    objects = {OWN_NOTE: int(note["data"]["notificationId"]), DEFAULT_RULE: default_rule}
    with TestClient(create_app(settings)) as test_client:
        world = World(test_client, ids, datasets["marts.customer_revenue"], settings)
        objects[CHANNEL] = _store_channel(world)
        objects[OWN_RULE] = _store_rule(world)
        yield World(
            test_client,
            ids,
            world.dataset_id,
            settings,
            _store_source(world),
            jobs,
            run_id,
            query_id,
            objects,
        )


RULE_JOB: list[int] = []
"""The user account's job, which the alert rules of the matrix watch."""


def _rule_body() -> dict[str, Any]:
    return {
        "name": f"rule {uuid.uuid4().hex[:8]}",
        "condition": "run_failed",
        "scope": "job",
        "scopeValue": str(RULE_JOB[0]),
    }


def _channel_body() -> dict[str, Any]:
    # Port 9 (discard): nothing listens, so a test send fails fast, and says so.
    return {"name": f"hook {uuid.uuid4().hex[:8]}", "url": "json://127.0.0.1:9/hook"}


def _store_channel(world: World) -> int:
    token = _sign_in(world.client, ADMIN)["accessToken"]
    response = world.client.post(
        "/api/notification-channels",
        json=_channel_body(),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _store_rule(world: World) -> int:
    token = _sign_in(world.client, USER)["accessToken"]
    response = world.client.post(
        "/api/alert-rules", json=_rule_body(), headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _job(settings: Settings, owner_id: int, shared: bool = False) -> int:
    with session_scope(settings.metadata_url) as session:
        job = Job(
            name=f"job {uuid.uuid4().hex[:8]}",
            owner_id=owner_id,
            source="shop",
            target="warehouse",
            timezone="UTC",
            retries=0,
            retry_delay_seconds=60,
            enabled=True,
            shared=shared,
        )
        session.add(job)
        session.flush()
        return job.id


def _sign_in(client: Client, account: Account) -> dict[str, Any]:
    response = client.post(
        "/api/auth/login", json={"email": account.email, "password": account.password}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _body(method: str, path: str, account: Account, client: Client) -> dict[str, Any] | None:
    """A valid body for the route, so the status says who may call it, not what was sent."""
    if (method, path) == ("POST", "/api/auth/login"):
        return {"email": account.email, "password": account.password}
    if (method, path) == ("POST", "/api/auth/refresh"):
        return {"refreshToken": _sign_in(client, account)["refreshToken"]}
    if (method, path) == ("PATCH", "/api/users/me"):
        return {"name": "Renamed Myself"}
    if (method, path) == ("POST", "/api/users"):
        return {"email": f"new-{uuid.uuid4().hex[:12]}@example.com", "role": "viewer"}
    if (method, path) == ("PATCH", "/api/users/{user_id:int}"):
        return {"name": "Renamed By Admin"}
    if (method, path) == ("POST", "/api/users/{user_id:int}/password"):
        return {"password": PASSWORD}  # the same one, so later cases still sign in
    if (method, path) == ("POST", "/api/sources"):
        return _new_source()
    if (method, path) == ("PATCH", "/api/sources/{name:str}"):
        return {"description": "Changed"}
    if (method, path) == ("POST", "/api/jobs"):
        return {"name": f"job {uuid.uuid4().hex[:12]}", "sourceId": "shop"}
    if (method, path) == ("PATCH", "/api/jobs/{job_id:int}"):
        return {"description": "Changed"}
    if path in ("/api/queries", "/api/queries/validate", "/api/queries/export"):
        return {"sql": "select 1 as one"}
    if (method, path) == ("POST", "/api/notification-channels"):
        return _channel_body()
    if (method, path) == ("PATCH", "/api/notification-channels/{channel_id:int}"):
        return {"rateLimitPerHour": 30}
    if (method, path) == ("POST", "/api/alert-rules"):
        return _rule_body()
    if (method, path) == ("PATCH", "/api/alert-rules/{rule_id:int}"):
        return {"quietMinutes": 5}
    return None


def _new_source() -> dict[str, Any]:
    """A valid stored source (a file in the project's folder: inside the data directories)."""
    name = f"s_{uuid.uuid4().hex[:12]}"
    return {"name": name, "kind": "file", "tables": {"t": {"path": "data/t.csv"}}}


def _url(world: World, method: str, path: str, role: str, target: str) -> str:
    if "{user_id:int}" in path:
        user_id = {SELF: world.ids.get(role), OTHER_ACCOUNT: world.ids["other"]}.get(
            target, MISSING_ID
        )
        return path.replace("{user_id:int}", str(user_id))
    if "{dataset_id:int}" in path:
        dataset_id = world.dataset_id if target == SHARED else MISSING_ID
        return path.replace("{dataset_id:int}", str(dataset_id))
    if "{job_id:int}" in path:
        job_id = world.jobs.get(target, MISSING_ID)
        changes_state = method == "DELETE" or path.endswith("/disable")
        if changes_state and target in world.jobs and role in ("user", "admin"):
            # a delete or disable must not take the shared job away from later cases
            owner = world.ids["user"] if target == OWN_JOB else world.ids["other"]
            job_id = _job(world.settings, owner, target == SHARED_JOB)
        return path.replace("{job_id:int}", str(job_id))
    if "{history_id:int}" in path:
        history_id = world.query_id if target == OWN_QUERY else MISSING_ID
        return path.replace("{history_id:int}", str(history_id))
    if "{notification_id:int}" in path:
        note_id = world.objects.get(target, MISSING_ID)
        return path.replace("{notification_id:int}", str(note_id))
    if "{channel_id:int}" in path:
        channel_id = world.objects.get(target, MISSING_ID)
        if target == CHANNEL and method == "DELETE" and role == "admin":
            channel_id = _store_channel(world)  # the shared one stays for later cases
        return path.replace("{channel_id:int}", str(channel_id))
    if "{rule_id:int}" in path:
        rule_id = world.objects.get(target, MISSING_ID)
        if target == OWN_RULE and method == "DELETE" and role in ("user", "admin"):
            rule_id = _store_rule(world)
        return path.replace("{rule_id:int}", str(rule_id))
    if "{run_id:str}" in path:
        run_id = world.run_id if target == RUN else "00000000-0000-4000-8000-000000000000"
        return path.replace("{run_id:str}", run_id)
    if "{name:str}" in path:
        name = {DECLARED: "shop", STORED: world.stored_source}.get(target, "no_such_source")
        if target == STORED and path.endswith("{name:str}") and role == "admin":
            name = _store_source(world)  # a delete must not take the shared one away
        return path.replace("{name:str}", name)
    return path


def _store_source(world: World) -> str:
    token = _sign_in(world.client, ADMIN)["accessToken"]
    body = _new_source()
    response = world.client.post(
        "/api/sources", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 201, response.text
    return str(body["name"])


@pytest.mark.parametrize(
    ("method", "path", "target", "role", "expected"),
    CASES,
    ids=[f"{m} {p} {t} {r}" for m, p, t, r, _ in CASES],
)
def test_access_matrix(
    world: World, method: str, path: str, target: str, role: str, expected: int
) -> None:
    client = world.client
    account = ACCOUNTS.get(role, OTHER)
    headers = {}
    if role != "anonymous":
        headers["Authorization"] = f"Bearer {_sign_in(client, account)['accessToken']}"
    body = _body(method, path, account, client)
    response: httpx.Response = client.request(
        method, _url(world, method, path, role, target), headers=headers, json=body
    )
    assert response.status_code == expected, response.text
    if expected in ERROR_CODES:
        assert response.json()["error"]["code"] == ERROR_CODES[expected]
    if expected == 401:
        assert response.headers["www-authenticate"] == "Bearer"


def test_a_signed_in_caller_reads_their_own_account_on_me(world: World) -> None:
    for role, account in ACCOUNTS.items():
        token = _sign_in(world.client, account)["accessToken"]
        me = world.client.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
        assert (me.json()["id"], me.json()["role"]) == (world.ids[role], role)


# --------------------------------------------------------------------------- probes


@pytest.mark.parametrize("path", ["/health", "/health/ready", "/metrics", "/schema/openapi.json"])
def test_probes_outside_api_answer_without_a_token(client: Client, path: str) -> None:
    assert client.get(path).status_code == 200
    # A stray or stale header (a proxy, a browser) must not turn a probe into a 401.
    stale = client.get(path, headers={"Authorization": "Bearer not.a-valid.jwt"})
    assert stale.status_code == 200


def test_metrics_token_is_checked_by_metrics_not_mistaken_for_a_jwt(
    settings: Settings, seed: Callable[[str], dict[str, int]], client_for: Any
) -> None:
    guarded = settings.model_copy(update={"metrics_token": SecretStr("prometheus-scrape-token")})
    seed(guarded.metadata_url)
    metrics_client = client_for(guarded)
    assert metrics_client.get("/metrics").status_code == 401
    wrong = metrics_client.get("/metrics", headers={"Authorization": "Bearer wrong-token"})
    assert wrong.status_code == 401
    scraped = metrics_client.get(
        "/metrics", headers={"Authorization": "Bearer prometheus-scrape-token"}
    )
    assert scraped.status_code == 200
    assert "headwater_http_requests_total" in scraped.text
    assert metrics_client.get("/health").status_code == 200
