"""PostgreSQL roles that make ad hoc queries read-only in the engine itself.

One login role per Headwater role, ``<query_user>_viewer|_user|_admin``, each with
USAGE and SELECT on exactly the schemas its Headwater role may read (and the same for
tables created later, through default privileges), every transaction read-only. None
is a member of another, so no SQL run as one can become another (``SET ROLE``).

:func:`ensure_query_roles` creates them (``headwater init``); :func:`grant_query_access`
grants each one the catalogued schemas it may read and revokes every other warehouse
schema (after every catalog refresh: a new source brings a new raw schema). Only
schemas in the catalog are ever granted, so nothing else sharing the database (the
metadata store, other applications) becomes readable.
"""

from __future__ import annotations

from collections.abc import Collection
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from catalog.queries.policy import ROLES, readable

if TYPE_CHECKING:
    from headwater.settings import Settings

SYSTEM_SCHEMAS = ("information_schema", "pg_catalog", "pg_toast")


def role_name(settings: Settings, role: str) -> str:
    """The PostgreSQL login role a query of Headwater ``role`` runs as."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    return f"{settings.query_user}_{role}"


def warehouse_schemas(cursor: Any, prefix: str) -> list[str]:
    cursor.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%%' "
        "AND nspname <> ALL(%s) ORDER BY 1",
        (list(SYSTEM_SCHEMAS),),
    )
    names = [str(row[0]) for row in cursor.fetchall()]
    return [n for n in names if n.startswith(prefix)] if prefix else names


def ensure_query_roles(settings: Settings) -> None:
    """Create (or bring up to date) the three login roles; grants nothing on schemas."""
    _with_owner(settings, lambda cur: _roles(cur, settings))


def grant_query_access(settings: Settings, schemas: Collection[str]) -> None:
    """Each role may read the ``schemas`` (from the catalog) its patterns allow, and no
    other schema of the warehouse."""
    wanted = set(schemas)

    def work(cur: Any) -> None:
        _roles(cur, settings)
        for schema in warehouse_schemas(cur, settings.schema_prefix):
            for role in ROLES:
                allowed = schema in wanted and readable(
                    schema, settings.query_schemas(role), settings.schema_prefix
                )
                _grant(cur, schema, role_name(settings, role), allowed)

    _with_owner(settings, work)


def _with_owner(settings: Settings, work: Any) -> None:
    from headwater.warehouse import connect_postgres

    connection = connect_postgres(settings)
    try:
        connection.autocommit = True
        with connection.cursor() as cur:
            work(cur)
    finally:
        connection.close()


def _roles(cur: Any, settings: Settings) -> None:
    from psycopg2 import errors
    from psycopg2 import sql as pgsql

    password = settings.query_password.get_secret_value()
    for role in ROLES:
        name = pgsql.Identifier(role_name(settings, role))
        # Already there, or created by a concurrent call: fine.
        with suppress(errors.DuplicateObject, errors.UniqueViolation):
            cur.execute(pgsql.SQL("CREATE ROLE {} LOGIN NOINHERIT").format(name))
        cur.execute(pgsql.SQL("ALTER ROLE {} LOGIN NOINHERIT").format(name))
        if password:
            cur.execute(pgsql.SQL("ALTER ROLE {} PASSWORD %s").format(name), (password,))
        cur.execute(pgsql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(name))


def _grant(cur: Any, schema: str, role: str, allowed: bool) -> None:
    from psycopg2 import sql as pgsql

    names = {"s": pgsql.Identifier(schema), "r": pgsql.Identifier(role)}
    statements = (
        [
            "GRANT USAGE ON SCHEMA {s} TO {r}",
            "GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {r}",
            "ALTER DEFAULT PRIVILEGES IN SCHEMA {s} GRANT SELECT ON TABLES TO {r}",
        ]
        if allowed
        else [
            "ALTER DEFAULT PRIVILEGES IN SCHEMA {s} REVOKE SELECT ON TABLES FROM {r}",
            "REVOKE SELECT ON ALL TABLES IN SCHEMA {s} FROM {r}",
            "REVOKE USAGE ON SCHEMA {s} FROM {r}",
        ]
    )
    for statement in statements:
        cur.execute(pgsql.SQL(statement).format(**names))
