"""One typed settings object per process, built from the environment.

Every value comes from a ``HEADWATER_*`` environment variable (or ``.env`` in
the working directory for local use); environment variables always beat the
file. All state lives under ``HEADWATER_HOME`` so it can be backed up or wiped
as a whole.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MIN_SECRET_LENGTH = 32


class Settings(BaseSettings):
    """Headwater configuration. See the configuration table in README.md."""

    model_config = SettingsConfigDict(
        env_prefix="HEADWATER_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    home: Path = Field(default=Path(".headwater"), description="Data directory for all state.")
    database_url: str | None = Field(
        default=None,
        description="Metadata store (SQLAlchemy URL). Default: SQLite file in HEADWATER_HOME.",
    )
    warehouse: Literal["duckdb", "postgres"] = Field(default="duckdb")
    warehouse_path: Path | None = Field(
        default=None, description="DuckDB warehouse file. Default: HEADWATER_HOME/warehouse.duckdb."
    )
    warehouse_host: str = "127.0.0.1"
    warehouse_port: int = 5432
    warehouse_user: str = "postgres"
    warehouse_password: SecretStr = SecretStr("")
    warehouse_dbname: str = "headwater"
    schema_prefix: str = Field(
        default="", description="Prefix for every warehouse schema (isolates test runs)."
    )
    redis_url: str | None = None
    secret_key: SecretStr | None = Field(
        default=None, description="JWT signing key. Default: generated once into HEADWATER_HOME."
    )
    jwt_ttl_minutes: int = Field(default=60, gt=0)
    admin_email: str = "admin@headwater.local"
    admin_password: SecretStr | None = None
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    dagster_host: str = "127.0.0.1"
    dagster_port: int = 3000
    sources_file: Path = Field(default=PROJECT_ROOT / "ingest" / "sources.yml")
    project_dir: Path = Field(default=PROJECT_ROOT, description="The dbt project directory.")
    sample_scale: float = Field(default=1.0, gt=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("secret_key")
    @classmethod
    def _strong_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_SECRET_LENGTH:
            raise ValueError("must be at least 32 characters (e.g. `openssl rand -hex 32`)")
        return value

    @field_validator("schema_prefix")
    @classmethod
    def _prefix_is_identifier(cls, value: str) -> str:
        if value and not (value.replace("_", "").isalnum() and value[0].isalpha()):
            raise ValueError("must be letters, digits and underscores, starting with a letter")
        return value.lower()

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def metadata_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home_dir / 'headwater.db'}"

    @property
    def duckdb_path(self) -> Path:
        return (self.warehouse_path or self.home_dir / "warehouse.duckdb").expanduser().resolve()

    @property
    def sample_dir(self) -> Path:
        return self.home_dir / "sample"

    @property
    def dagster_home(self) -> Path:
        return self.home_dir / "dagster"

    @property
    def logs_dir(self) -> Path:
        return self.home_dir / "logs"

    @property
    def dlt_dir(self) -> Path:
        return self.home_dir / "dlt"

    @property
    def dbt_target_dir(self) -> Path:
        return self.home_dir / "dbt_target"

    @property
    def profiles_dir(self) -> Path:
        return PROJECT_ROOT / "profiles"

    def warehouse_schema(self, name: str) -> str:
        """The warehouse schema called ``name``, with the configured prefix."""
        return f"{self.schema_prefix}{name}"

    def raw_schema(self, source: str) -> str:
        """The warehouse schema a declared source loads into."""
        return self.warehouse_schema(f"raw_{source}")

    def pipeline_name(self, source: str) -> str:
        """The dlt pipeline (and its state directory) of a declared source."""
        return f"headwater_{self.schema_prefix}{source}"

    def jwt_secret(self) -> str:
        """The JWT signing key: configured, or generated once into HEADWATER_HOME."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        key_file = self.home_dir / "secret_key"
        key = key_file.read_text().strip() if key_file.exists() else ""
        if len(key) >= MIN_SECRET_LENGTH:
            return key
        self.home_dir.mkdir(parents=True, exist_ok=True)
        # Written whole into a private temporary file, then renamed into place: a
        # process starting at the same moment never reads a half-written key.
        descriptor, partial = tempfile.mkstemp(dir=self.home_dir, prefix=".secret_key.")
        try:
            with os.fdopen(descriptor, "w") as handle:  # mkstemp: mode 0600
                handle.write(secrets.token_urlsafe(48))
            if not key_file.exists() or len(key_file.read_text().strip()) < MIN_SECRET_LENGTH:
                os.replace(partial, key_file)
        finally:
            Path(partial).unlink(missing_ok=True)
        return key_file.read_text().strip()

    def tool_env(self) -> dict[str, str]:
        """Environment variables that dbt's profile and Dagster read, derived from settings."""
        env = {
            "HEADWATER_HOME": str(self.home_dir),
            "HEADWATER_WAREHOUSE": self.warehouse,
            "HEADWATER_WAREHOUSE_PATH": str(self.duckdb_path),
            "HEADWATER_WAREHOUSE_HOST": self.warehouse_host,
            "HEADWATER_WAREHOUSE_PORT": str(self.warehouse_port),
            "HEADWATER_WAREHOUSE_USER": self.warehouse_user,
            "HEADWATER_WAREHOUSE_PASSWORD": self.warehouse_password.get_secret_value(),
            "HEADWATER_WAREHOUSE_DBNAME": self.warehouse_dbname,
            "HEADWATER_SCHEMA_PREFIX": self.schema_prefix,
            "DBT_TARGET_PATH": str(self.dbt_target_dir),
            "DBT_LOG_PATH": str(self.logs_dir / "dbt"),
            "DAGSTER_HOME": str(self.dagster_home),
        }
        return env


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, built once from the environment."""
    return Settings()
