"""Schemathesis against the OpenAPI document a real server serves, with every check on.

A uvicorn process serves the API over a migrated SQLite store with the test
accounts and a small catalog. The document is loaded from its URL and
Schemathesis's engine runs all its phases over every operation (examples,
coverage, fuzzing with valid and invalid data, stateful sequences), signed in as
the admin, with every check enabled: no 5xx; every status, content type, header
and body as documented; invalid data refused, valid data accepted; auth enforced
where declared; ``Allow`` and unsupported methods answered properly. (Only the
response-time check stays off: it needs a threshold, and timings belong in
``benchmarks/``.)

No operation is excluded. Two get their own handling so that the run does not
pull the rug from under itself: ``POST /api/auth/logout`` signs out a session
opened for that very call, and requests aimed at the admin's own account through
``/api/users/{user_id}`` are redirected to another admin (demoting,
deactivating or re-keying the admin would turn the rest of the run into a series
of documented 401s).

One allowance, stated where it is configured: creating and changing a source or a job
may answer 400 to a schema-valid body, because a source's cross-field rules are those
of sources.yml, and a job names a source, a destination and dbt models that must
exist, none of which JSON Schema can say. Nothing else is forgiven. The defects a first run
found (OPTIONS ``Allow`` lists, integer maxima written as floats, unknown fields
and dependent fields the document did not state, lenient booleans and timestamps)
each keep a direct
test below.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import hypothesis.configuration
import jsonschema_rs
import pytest
import schemathesis
from schemathesis.engine import events, from_schema
from schemathesis.hooks import GLOBAL_HOOK_DISPATCHER

from benchmarks.api import REAL_APP, serve
from headwater.settings import Settings

pytestmark = pytest.mark.integration

SERVER_SECRET = "schemathesis-run-secret-key-long-enough-for-hs256"
TARGET_EMAIL = "fuzz-target@example.com"
MAX_EXAMPLES = 25
SEED = 20240601

OPERATIONS = [
    "GET /health",
    "GET /health/ready",
    "GET /metrics",
    "POST /api/auth/login",
    "POST /api/auth/refresh",
    "POST /api/auth/logout",
    "GET /api/users/me",
    "PATCH /api/users/me",
    "GET /api/users",
    "POST /api/users",
    "GET /api/users/{user_id}",
    "PATCH /api/users/{user_id}",
    "POST /api/users/{user_id}/password",
    "GET /api/catalog/datasets",
    "GET /api/catalog/datasets/{dataset_id}",
    "GET /api/catalog/datasets/{dataset_id}/lineage",
    "GET /api/catalog/datasets/{dataset_id}/impact",
    "GET /api/catalog/schema-changes",
    "GET /api/audit-log",
    "GET /api/sources",
    "POST /api/sources",
    "GET /api/sources/{name}",
    "PATCH /api/sources/{name}",
    "DELETE /api/sources/{name}",
    "POST /api/sources/{name}/test",
    "GET /api/sources/{name}/state",
    "GET /api/destinations",
    "GET /api/jobs",
    "POST /api/jobs",
    "GET /api/jobs/{job_id}",
    "PATCH /api/jobs/{job_id}",
    "DELETE /api/jobs/{job_id}",
    "POST /api/jobs/{job_id}/enable",
    "POST /api/jobs/{job_id}/disable",
    "POST /api/jobs/{job_id}/run",
    "GET /api/jobs/{job_id}/runs",
    "GET /api/runs/{run_id}",
    "GET /api/runs/{run_id}/logs",
    "POST /api/runs/{run_id}/retry",
    "POST /api/runs/{run_id}/cancel",
    "GET /api/dashboard",
    "POST /api/queries",
    "POST /api/queries/validate",
    "POST /api/queries/export",
    "GET /api/queries/history",
    "POST /api/queries/history/{history_id}/run",
    "GET /api/notifications",
    "GET /api/notifications/unread-count",
    "POST /api/notifications/{notification_id}/read",
    "POST /api/notifications/read-all",
    "GET /api/notification-channels",
    "POST /api/notification-channels",
    "GET /api/notification-channels/{channel_id}",
    "PATCH /api/notification-channels/{channel_id}",
    "DELETE /api/notification-channels/{channel_id}",
    "POST /api/notification-channels/{channel_id}/test",
    "GET /api/alert-rules",
    "POST /api/alert-rules",
    "GET /api/alert-rules/{rule_id}",
    "PATCH /api/alert-rules/{rule_id}",
    "DELETE /api/alert-rules/{rule_id}",
    "GET /api/alerts",
]


@dataclass(frozen=True)
class Served:
    url: str
    admin_email: str
    password: str
    admin_token: str = ""
    admin_id: int = 0
    target_id: int = 0

    def login(self) -> str:
        response = httpx.post(
            f"{self.url}/api/auth/login",
            json={"email": self.admin_email, "password": self.password},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["accessToken"]
        return token

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}


def _server_environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    env.update(
        HEADWATER_HOME=str(home),
        HEADWATER_SECRET_KEY=SERVER_SECRET,
        # The fuzzer signs in hundreds of times, mostly with made-up credentials.
        HEADWATER_LOGIN_ATTEMPTS_PER_ADDRESS="1000000",
        HEADWATER_LOGIN_FAILURES_PER_ACCOUNT="1000000",
    )
    return env


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
    settings_maker: Callable[..., Settings],
    seed: Callable[[str], dict[str, int]],
    admin: Any,
) -> Iterator[Served]:
    """``python -m uvicorn api.app:create_app --factory`` over a seeded store, on a free port."""
    root = tmp_path_factory.mktemp("schemathesis")
    home = root / "home"
    seed(settings_maker(home).metadata_url)
    with serve(REAL_APP, _server_environment(home), cwd=root, log=root / "uvicorn.log") as api:
        url = api.base_url
        token = Served(url, admin.email, admin.password).login()
        auth = {"Authorization": f"Bearer {token}"}
        me = httpx.get(f"{url}/api/users/me", headers=auth, timeout=10).json()
        target = httpx.post(
            f"{url}/api/users",
            headers=auth,
            json={"email": TARGET_EMAIL, "role": "admin"},
            timeout=10,
        )
        assert target.status_code == 201, target.text
        yield Served(url, admin.email, admin.password, token, int(me["id"]), target.json()["id"])


@pytest.fixture(scope="module")
def document(served: Served) -> dict[str, Any]:
    response = httpx.get(f"{served.url}/schema/openapi.json", timeout=10)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


# -- the run --------------------------------------------------------------------------------


@dataclass
class Report:
    tested: set[str] = field(default_factory=set)
    failures: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    stop_reason: str = ""


def _failure_text(failure: Any, code_sample: str, interaction: Any) -> str:
    answer = ""
    if interaction is not None and interaction.response is not None:
        response = interaction.response
        answer = f"\n    -> {response.status_code} {response.content[:300]!r}"
    return f"{failure.code} {failure.title}: {failure.message}\n    {code_sample}{answer}"


@pytest.fixture(scope="module")
def report(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Report]:
    """One Schemathesis run over the whole served API; its failures by operation."""
    result = Report()
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "cache": {"enabled": False},
            "checks": {"enabled": True},
            "phases": {"enabled": True},
            "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
            "workers": 1,
            # A source's cross-field rules (a merge needs a primary key, a file source's
            # paths must lie in the data directories, a connection must parse as a URL of
            # an installed driver) are checked by the same validation as sources.yml, not
            # by JSON Schema; a job names a source, a destination and dbt models that
            # must exist: schema-valid bodies may get a 400 naming the rule. So may a
            # query: the SQL itself is judged by the validator and the engine, not by
            # JSON Schema (a string is rarely a valid query over this catalog). Bodies are
            # decoded strictly everywhere, so an integral float (a limit of 163.0) is a 400.
            # A channel's URL must be one apprise can use, and an alert rule's fields
            # depend on its condition and scope (a threshold for duration_above, a job
            # of the caller's for scope job…): those too may get a 400 naming the rule.
            "operations": [
                {
                    "include-operation-id": [
                        "createSource",
                        "updateSource",
                        "createJob",
                        "updateJob",
                        "runQuery",
                        "rerunQuery",
                        "validateQuery",
                        "exportQuery",
                        "createNotificationChannel",
                        "updateNotificationChannel",
                        "createAlertRule",
                        "updateAlertRule",
                    ],
                    "checks": {
                        "positive_data_acceptance": {
                            "expected-statuses": [
                                "2xx",
                                "3xx",
                                "400",
                                "401",
                                "403",
                                "404",
                                "409",
                                "429",
                                "5xx",
                            ]
                        }
                    },
                }
            ],
        }
    )
    schema = schemathesis.openapi.from_url(f"{served.url}/schema/openapi.json", config=config)
    schema.config.update(base_url=served.url)

    @schema.auth(refresh_interval=None, retry_on=[])
    class AdminToken:
        def get(self, case: schemathesis.Case, ctx: schemathesis.AuthContext) -> str:
            return served.login() if case.path == "/api/auth/logout" else served.admin_token

        def set(self, case: schemathesis.Case, data: str, ctx: schemathesis.AuthContext) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    def before_call(context: Any, case: schemathesis.Case, kwargs: dict[str, Any]) -> None:
        """Aim the admin's own account out of harm's way."""
        if not case.path.startswith("/api/users/{user_id}"):
            return
        try:
            own = int(str(case.path_parameters["user_id"])) == served.admin_id
        except (KeyError, ValueError):
            return
        if own:
            case.path_parameters["user_id"] = served.target_id

    @schema.hook
    def after_call(context: Any, case: schemathesis.Case, response: Any) -> None:
        result.statuses[case.operation.label].update([response.status_code])

    schemathesis.hook(before_call)
    # Hypothesis keeps caches under ./.hypothesis unless told otherwise: not in the work tree.
    previous_home = vars(hypothesis.configuration)["__hypothesis_home_directory"]
    hypothesis.configuration.set_hypothesis_home_dir(tmp_path_factory.mktemp("hypothesis"))
    try:
        for event in from_schema(schema).execute():
            if isinstance(event, events.ScenarioFinished | events.FuzzScenarioFinished):
                result.tested.update(
                    node.value.operation.label for node in event.recorder.cases.values()
                )
                for case_id, checks in event.recorder.checks.items():
                    for check in checks:
                        if check.failure_info is not None:
                            failure = check.failure_info.failure
                            label = failure.operation or event.recorder.label
                            interaction = event.recorder.interactions.get(case_id)
                            result.failures[label].append(
                                _failure_text(failure, check.failure_info.code_sample, interaction)
                            )
            elif isinstance(event, events.NonFatalError):
                result.failures[event.label].append(f"error: {event.info.format()}")
            elif isinstance(event, events.FatalError):
                raise event.exception
            elif isinstance(event, events.EngineFinished):
                result.stop_reason = str(event.stop_reason)
                for failure in event.failures:  # checks that judge the run as a whole
                    text = f"{failure.code} {failure.title}: {failure.message}"
                    result.failures[failure.operation or "run"].append(text)
    finally:
        GLOBAL_HOOK_DISPATCHER.unregister(before_call)
        hypothesis.configuration.set_hypothesis_home_dir(previous_home)
    yield result


def test_the_document_lists_the_operations_under_test(document: dict[str, Any]) -> None:
    served_operations = {
        f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item
    }
    assert served_operations == set(OPERATIONS)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_every_operation_keeps_to_the_document(report: Report, operation: str) -> None:
    assert operation in report.tested, f"not tested; tested: {sorted(report.tested)}"
    failures = report.failures.get(operation, [])
    assert not failures, "\n".join(dict.fromkeys(failures))


def test_the_run_completed(report: Report) -> None:
    assert report.stop_reason == "completed"


def test_no_failure_outside_an_operation(report: Report) -> None:
    stray = {label: texts for label, texts in report.failures.items() if label not in OPERATIONS}
    assert not stray


def test_the_run_reached_past_authentication(report: Report, served: Served) -> None:
    """The run kept its admin and got real answers, not a wall of documented 401s."""
    me = httpx.get(f"{served.url}/api/users/me", headers=served.admin_headers, timeout=10)
    assert me.status_code == 200
    assert me.json()["role"] == "admin"
    for operation in ("GET /api/users", "GET /api/catalog/datasets", "PATCH /api/users/{user_id}"):
        assert report.statuses[operation][200] > 0, report.statuses[operation]


# -- the known defects, pinned: each of these fails (as expected) until its fix lands ------


def _documented_valid(document: dict[str, Any], component: str, instance: object) -> bool:
    """Whether ``instance`` is valid for the document's ``component`` schema (formats checked)."""
    schema = {"$ref": f"#/components/schemas/{component}", "components": document["components"]}
    return bool(jsonschema_rs.validator_for(schema, validate_formats=True).is_valid(instance))


def _concrete(path: str, served: Served) -> str:
    return path.format(
        user_id=served.target_id,
        dataset_id=1,
        name="shop",
        job_id=1,
        run_id="00000000-0000-4000-8000-000000000000",
        history_id=1,
        notification_id=1,
        channel_id=1,
        rule_id=1,
    )


@pytest.mark.parametrize(
    "path",
    [path for path in dict.fromkeys(operation.split(" ")[1] for operation in OPERATIONS)],
)
def test_options_lists_every_method_of_the_path(
    served: Served, document: dict[str, Any], path: str
) -> None:
    response = httpx.options(
        f"{served.url}{_concrete(path, served)}", headers=served.admin_headers, timeout=10
    )
    assert response.status_code == 204, response.text
    allowed = {method.strip() for method in response.headers["allow"].split(",")}
    assert allowed == {method.upper() for method in document["paths"][path]} | {"OPTIONS"}


@pytest.mark.parametrize(
    ("method", "path", "name"),
    [
        ("GET", "/api/catalog/datasets/{dataset_id}", "dataset_id"),
        ("GET", "/api/users/{user_id}", "user_id"),
        ("PATCH", "/api/users/{user_id}", "user_id"),
        ("POST", "/api/users/{user_id}/password", "user_id"),
        ("GET", "/api/catalog/datasets", "offset"),
        ("GET", "/api/users", "offset"),
        ("GET", "/api/audit-log", "offset"),
        ("GET", "/api/audit-log", "actorId"),
    ],
)
def test_documented_integer_maximum_is_exact(
    served: Served, document: dict[str, Any], method: str, path: str, name: str
) -> None:
    """The documented maximum is accepted and one more is refused (400, never 500)."""
    [parameter] = [
        p for p in document["paths"][path][method.lower()]["parameters"] if p["name"] == name
    ]
    documented = parameter["schema"]["maximum"]
    assert documented == int(documented)

    def status(value: int) -> int:
        url = f"{served.url}{path}"
        params = {}
        if parameter["in"] == "path":
            url = url.replace("{" + name + "}", str(value))
        else:
            params[name] = str(value)
        body = {} if method != "GET" else None
        response = httpx.request(
            method, url, params=params, json=body, headers=served.admin_headers, timeout=10
        )
        return response.status_code

    assert status(int(documented)) in (200, 404)
    assert status(int(documented) + 1) == 400


@pytest.mark.parametrize(
    ("method", "path", "component", "body"),
    [
        ("POST", "/api/users", "CreateUserRequest", {"email": "extra-field@example.com"}),
        ("PATCH", "/api/users/{user_id}", "UpdateUserRequest", {}),
        ("PATCH", "/api/users/me", "UpdateMeRequest", {}),
        ("POST", "/api/users/{user_id}/password", "ResetPasswordRequest", {}),
    ],
)
def test_document_and_server_agree_on_unknown_fields(
    served: Served,
    document: dict[str, Any],
    method: str,
    path: str,
    component: str,
    body: dict[str, Any],
) -> None:
    extra = {**body, "nickname": "x"}
    response = httpx.request(
        method,
        f"{served.url}{_concrete(path, served)}",
        json=extra,
        headers=served.admin_headers,
        timeout=10,
    )
    assert response.status_code in (200, 201, 400), response.text
    assert (response.status_code == 400) == (not _documented_valid(document, component, extra))


@pytest.mark.parametrize(
    ("method", "path", "component", "body"),
    [
        ("POST", "/api/users", "CreateUserRequest", {"email": "000"}),
        ("PATCH", "/api/users/me", "UpdateMeRequest", {"password": "a-brand-new-password"}),
    ],
)
def test_document_states_the_rules_the_server_enforces(
    served: Served,
    document: dict[str, Any],
    method: str,
    path: str,
    component: str,
    body: dict[str, Any],
) -> None:
    response = httpx.request(
        method, f"{served.url}{path}", json=body, headers=served.admin_headers, timeout=10
    )
    assert response.status_code == 400, response.text
    assert not _documented_valid(document, component, body)


@pytest.mark.parametrize("value", [0, 1, "false", "1"])
def test_booleans_in_a_body_are_json_booleans(served: Served, viewer: Any, value: object) -> None:
    users = httpx.get(
        f"{served.url}/api/users", params={"search": viewer.email}, headers=served.admin_headers
    ).json()
    [viewer_id] = [user["id"] for user in users["items"]]
    response = httpx.patch(
        f"{served.url}/api/users/{viewer_id}",
        json={"isActive": value},
        headers=served.admin_headers,
        timeout=10,
    )
    assert response.status_code == 400, response.text


def test_audit_log_times_are_what_the_document_says(
    served: Served, document: dict[str, Any]
) -> None:
    [until] = [
        p for p in document["paths"]["/api/audit-log"]["get"]["parameters"] if p["name"] == "until"
    ]
    documented_numbers = "number" in str(until["schema"]) or "integer" in str(until["schema"])
    response = httpx.get(
        f"{served.url}/api/audit-log",
        params={"until": "0.5"},
        headers=served.admin_headers,
        timeout=10,
    )
    assert response.status_code == (200 if documented_numbers else 400)
