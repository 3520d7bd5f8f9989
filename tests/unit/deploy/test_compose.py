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


def test_every_headwater_variable_is_a_setting(compose: dict) -> None:  # type: ignore[type-arg]
    fields = {f"HEADWATER_{name.upper()}" for name in Settings.model_fields}
    for service in compose["services"].values():
        for name in service.get("environment") or {}:
            if name.startswith("HEADWATER_"):
                assert name in fields, f"{name} is not a Headwater setting"


def test_secrets_are_required_not_defaulted() -> None:
    text = (PROJECT_ROOT / "docker-compose.yml").read_text()
    for secret in ("POSTGRES_PASSWORD", "HEADWATER_SECRET_KEY", "HEADWATER_ADMIN_PASSWORD"):
        assert re.search(r"\$\{" + secret + r":\?", text), f"{secret} must be required"


def test_files_it_mounts_exist(compose: dict) -> None:  # type: ignore[type-arg]
    for service in compose["services"].values():
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (PROJECT_ROOT / source).exists(), source
    dagster = yaml.safe_load((PROJECT_ROOT / "deploy" / "dagster.yaml").read_text())
    assert "postgres" in dagster["storage"]
