"""One typed settings object per process, built from the environment.

Every value comes from a ``HEADWATER_*`` environment variable (or ``.env`` in
the working directory for local use); environment variables always beat the
file. All state lives under ``HEADWATER_HOME`` so it can be backed up or wiped
as a whole.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

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
    secret_keys: SecretStr | None = Field(
        default=None,
        description="Keys that encrypt stored credentials (comma separated Fernet keys, the "
        "first encrypts). Default: a key file generated into HEADWATER_HOME.",
    )
    data_dirs: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Folders file sources may read (comma separated). Default: the project "
        "and HEADWATER_HOME.",
    )
    ingest_attempts: int = Field(
        default=3, ge=1, le=10, description="Attempts of a load that fails transiently."
    )
    ingest_retry_seconds: float = Field(
        default=2.0, ge=0, description="First wait before another attempt (then doubled)."
    )
    jwt_ttl_minutes: int = Field(
        default=15, gt=0, le=15, description="Access token lifetime (at most 15 minutes)."
    )
    refresh_ttl_days: int = Field(default=14, gt=0, le=90, description="Refresh token lifetime.")
    login_attempts_per_address: int = Field(
        default=20, gt=0, description="Login attempts one client address may make per window."
    )
    login_failures_per_account: int = Field(
        default=10, gt=0, description="Failed logins one account may take per window."
    )
    login_window_seconds: int = Field(default=300, gt=0, description="Login throttling window.")
    cache_ttl_seconds: int = Field(
        default=30, ge=0, description="Lifetime of cached read responses (0 turns caching off)."
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Origins allowed by CORS (comma separated; off if empty)."
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Proxy addresses whose X-Forwarded-For names the client (comma separated).",
    )
    metrics_token: SecretStr | None = Field(
        default=None, description="Bearer token that /metrics requires (open when unset)."
    )
    max_body_bytes: int = Field(default=1_048_576, gt=0, description="Largest request body.")
    admin_email: str = "admin@headwater.local"
    admin_password: SecretStr | None = None
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    dagster_host: str = "127.0.0.1"
    dagster_port: int = 3000
    dagster_url: str | None = Field(
        default=None,
        description="The Dagster webserver the API launches runs through "
        "(default: http://DAGSTER_HOST:DAGSTER_PORT).",
    )
    dagster_location: str = Field(
        default="headwater", description="The code location of Headwater's definitions."
    )
    # Ad hoc SQL (``POST /api/queries``, ``headwater query``).
    query_schemas_viewer: Annotated[list[str], NoDecode] = Field(
        default=["marts"], description="Schemas a viewer's queries may read (no prefix; globs)."
    )
    query_schemas_user: Annotated[list[str], NoDecode] = Field(
        default=["staging", "marts"], description="Schemas a user's queries may read."
    )
    query_schemas_admin: Annotated[list[str], NoDecode] = Field(
        default=["*"], description="Schemas an admin's queries may read (`*`: all, raw too)."
    )
    query_row_cap: int = Field(default=10_000, gt=0, description="Most rows a query returns.")
    query_export_row_cap: int = Field(
        default=5_000_000, gt=0, description="Most rows a streamed export writes."
    )
    query_max_sql_chars: int = Field(default=20_000, gt=0, description="Longest SQL text.")
    query_max_result_bytes: int = Field(
        default=64_000_000, gt=0, description="Largest answer of POST /api/queries, in bytes."
    )
    query_timeout_seconds: float = Field(
        default=30, gt=0, le=3600, description="Default and longest run time of a query."
    )
    query_cache_ttl_seconds: int = Field(
        default=300, ge=0, description="How long a query result stays cached (0: never)."
    )
    query_memory_limit: str = Field(default="1GB", description="DuckDB memory per query.")
    query_threads: int = Field(default=2, gt=0, description="DuckDB threads per query.")
    query_user: str = Field(
        default="headwater_query",
        pattern=r"^[a-z_][a-z0-9_]{0,40}$",
        description="PostgreSQL login role queries run as (SELECT only; `headwater init`).",
    )
    query_password: SecretStr = Field(default=SecretStr(""), description="Its password.")
    sources_file: Path = Field(default=PROJECT_ROOT / "ingest" / "sources.yml")
    project_dir: Path = Field(default=PROJECT_ROOT, description="The dbt project directory.")
    sample_scale: float = Field(default=1.0, gt=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    # OpenLineage events of every load and build (catalog/emit.py); none when both unset.
    openlineage_url: str | None = Field(
        default=None,
        description="Endpoint the events are POSTed to (a bare server URL gets /api/v1/lineage).",
    )
    openlineage_file: Path | None = Field(
        default=None, description="JSON-lines file the events are appended to (relative: in HOME)."
    )
    openlineage_api_key: SecretStr | None = Field(
        default=None, description="Bearer token sent to OPENLINEAGE_URL."
    )
    openlineage_namespace: str = Field(
        default="headwater", min_length=1, description="Namespace of Headwater's jobs."
    )
    openlineage_timeout_seconds: float = Field(
        default=5.0, gt=0, le=300, description="Longest wait for the endpoint, per attempt."
    )

    @field_validator("openlineage_url", "openlineage_file", "openlineage_api_key", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator(
        "cors_origins",
        "trusted_proxies",
        "data_dirs",
        "query_schemas_viewer",
        "query_schemas_user",
        "query_schemas_admin",
        mode="before",
    )
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [origin.strip() for origin in text.split(",") if origin.strip()]
        return value

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

    def query_schemas(self, role: str) -> list[str]:
        """The schema patterns (no prefix) ad hoc queries of ``role`` may read."""
        by_role = {
            "viewer": self.query_schemas_viewer,
            "user": self.query_schemas_user,
            "admin": self.query_schemas_admin,
        }
        return list(by_role.get(role, []))

    def warehouse_schema(self, name: str) -> str:
        """The warehouse schema called ``name``, with the configured prefix."""
        return f"{self.schema_prefix}{name}"

    def raw_schema(self, source: str) -> str:
        """The warehouse schema a declared source loads into."""
        return self.warehouse_schema(f"raw_{source}")

    def raw_source(self, schema: str) -> str | None:
        """The source whose raw schema ``schema`` is (the inverse of ``raw_schema``), or None.

        Only the naming rule is checked: the answer need not be a declared source.
        """
        head = self.raw_schema("")
        if schema.startswith(head) and len(schema) > len(head):
            return schema[len(head) :]
        return None

    def pipeline_name(self, source: str) -> str:
        """The dlt pipeline (and its state directory) of a declared source."""
        return f"headwater_{self.schema_prefix}{source}"

    @property
    def dagster_webserver(self) -> str:
        """The Dagster webserver's base URL."""
        if self.dagster_url:
            return self.dagster_url.rstrip("/")
        return f"http://{self.dagster_host}:{self.dagster_port}"

    def jwt_secret(self) -> str:
        """The JWT signing key: configured, or generated once into HEADWATER_HOME."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        key_file = self.home_dir / "secret_key"
        key = key_file.read_text().strip() if key_file.exists() else ""
        if len(key) >= MIN_SECRET_LENGTH:
            return key
        self.secure_home()
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

    def secure_home(self) -> None:
        """Create HEADWATER_HOME owner-only (0700) and make its secret-bearing files 0600.

        The home holds the signing key, the SQLite metadata store (password hashes)
        and the warehouse; nobody but its owner has business reading them.
        """
        from headwater.db import restrict_file, sqlite_path

        home = self.home_dir
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        if home.stat().st_mode & 0o077:
            home.chmod(0o700)
        restrict_file(home / "secret_key")
        restrict_file(home / "secret_keys")
        store = sqlite_path(self.metadata_url)
        if store is not None:
            restrict_file(store)

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
