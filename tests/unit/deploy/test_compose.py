"""docker-compose.yml is for users (no Docker engine runs here): check it with a parser."""

from __future__ import annotations

import re

import pytest
import yaml

from headwater.settings import PROJECT_ROOT, Settings

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())


def test_production_shape_services(compose: dict) -> None:  # type: ignore[type-arg]
    services = compose["services"]
    assert {
        "postgres",
        "redis",
        "api",
        "dagster-webserver",
        "dagster-daemon",
        "dagster-code",
    } <= set(services)
    assert services["api"]["ports"] == ["8000:8000"]
    assert services["api"]["environment"]["HEADWATER_WAREHOUSE"] == "postgres"
    assert services["api"]["environment"]["HEADWATER_API_HOST"] == "0.0.0.0"  # noqa: S104


def _host_ip(port: str | int | dict) -> str:  # type: ignore[type-arg]
    """The host address a `ports:` entry binds; "" is every interface."""
    if isinstance(port, dict):
        return str(port.get("host_ip", ""))
    parts = str(port).rsplit(":", 2)  # [HOST_IP:][HOST_PORT:]CONTAINER_PORT
    return parts[0].strip("[]") if len(parts) == 3 else ""


def test_dagster_ui_is_published_on_this_host_only(compose: dict) -> None:  # type: ignore[type-arg]
    """The Dagster UI has no login: reachable from the network only through a proxy."""
    webserver = compose["services"]["dagster-webserver"]
    assert webserver["ports"] == ["127.0.0.1:3000:3000"]


def test_only_the_api_is_published_beyond_this_host(compose: dict) -> None:  # type: ignore[type-arg]
    for name, service in compose["services"].items():
        for port in service.get("ports") or []:
            if name != "api":
                assert _host_ip(port) in {"127.0.0.1", "::1"}, f"{name} publishes {port}"


def test_headwater_containers_have_no_privileges(compose: dict) -> None:  # type: ignore[type-arg]
    built = {name: s for name, s in compose["services"].items() if "build" in s}
    assert {"api", "migrate", "dagster-webserver", "dagster-daemon", "dagster-code"} <= set(built)
    for name, service in built.items():
        assert service.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        assert str(service.get("user", "10001")).partition(":")[0] not in {"0", "root"}, name
        assert not service.get("privileged"), name


def test_every_headwater_variable_is_a_setting(compose: dict) -> None:  # type: ignore[type-arg]
    fields = {f"HEADWATER_{name.upper()}" for name in Settings.model_fields}
    for service in compose["services"].values():
        for name in service.get("environment") or {}:
            if name.startswith("HEADWATER_"):
                assert name in fields, f"{name} is not a Headwater setting"


def test_secrets_are_required_not_defaulted() -> None:
    text = (PROJECT_ROOT / "docker-compose.yml").read_text()
    for secret in (
        "POSTGRES_PASSWORD",
        "HEADWATER_SECRET_KEY",
        "HEADWATER_SECRET_KEYS",
        "HEADWATER_ADMIN_PASSWORD",
        "HEADWATER_QUERY_PASSWORD",
    ):
        assert re.search(r"\$\{" + secret + r":\?", text), f"{secret} must be required"


def test_files_it_mounts_exist(compose: dict) -> None:  # type: ignore[type-arg]
    for service in compose["services"].values():
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (PROJECT_ROOT / source).exists(), source
    dagster = yaml.safe_load((PROJECT_ROOT / "deploy" / "dagster.yaml").read_text())
    assert "postgres" in dagster["storage"]
