"""Fixtures for API unit tests: settings under a temporary home, nothing from the environment."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from headwater.migrate import upgrade
from headwater.settings import Settings

TEST_SECRET = "unit-test-secret-key-long-enough-for-hs256-signing"

SettingsFactory = Callable[..., Settings]


@pytest.fixture
def make_api_settings(tmp_path_factory: pytest.TempPathFactory) -> SettingsFactory:
    """Build settings in a fresh home whose SQLite metadata store is migrated."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "home": tmp_path_factory.mktemp("home"),
            "database_url": None,
            "warehouse": "duckdb",
            "warehouse_path": None,
            "redis_url": None,
            "secret_key": TEST_SECRET,
            "admin_email": "admin@example.com",
            "admin_password": None,
            **overrides,
        }
        settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
        upgrade(settings.metadata_url)
        return settings

    return make


@pytest.fixture
def settings(make_api_settings: SettingsFactory) -> Settings:
    return make_api_settings()


@pytest.fixture
def home(settings: Settings) -> Path:
    return settings.home_dir
