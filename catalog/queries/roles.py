"""PostgreSQL roles that make ad hoc queries read-only in the engine itself.

- ``<query_user>``: the login role queries connect as. NOINHERIT, so on its own it
  reads nothing; every transaction starts read-only.
- ``<query_user>_viewer|_user|_admin``: NOLOGIN roles granted to it, each with USAGE
  and SELECT on exactly the schemas its Headwater role may read (and the same for
  tables created later, through default privileges). A query runs after
  ``SET LOCAL ROLE`` to one of them.

:func:`grant_query_access` creates or updates all of this; it is idempotent and runs
at ``headwater init`` and after every catalog refresh (new raw schemas appear with new
sources).
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from catalog.queries.policy import ROLES, readable

if TYPE_CHECKING:
    from headwater.settings import Settings

SYSTEM_SCHEMAS = ("information_schema", "pg_catalog", "pg_toast")


def role_name(settings: Settings, role: str) -> str:
    """The PostgreSQL role a query of Headwater ``role`` runs as."""
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


def grant_query_access(settings: Settings, schemas: Iterable[str] | None = None) -> None:
    """Create the query roles and grant each role SELECT on the schemas it may read."""
    from psycopg2 import errors
    from psycopg2 import sql as pgsql

    from headwater.warehouse import connect_postgres

    ident = pgsql.Identifier
    login = settings.query_user
    password = settings.query_password.get_secret_value()
    connection = connect_postgres(settings)
    try:
        connection.autocommit = True
        with connection.cursor() as cur:
            for name, options in [(login, "LOGIN NOINHERIT")] + [
                (role_name(settings, role), "NOLOGIN") for role in ROLES
            ]:
                # Already there, or created by a concurrent call: fine.
                with suppress(errors.DuplicateObject, errors.UniqueViolation):
                    cur.execute(pgsql.SQL("CREATE ROLE {} " + options).format(ident(name)))
            cur.execute(pgsql.SQL("ALTER ROLE {} LOGIN NOINHERIT").format(ident(login)))
            if password:
                cur.execute(
                    pgsql.SQL("ALTER ROLE {} PASSWORD %s").format(ident(login)), (password,)
                )
            cur.execute(
                pgsql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(
                    ident(login)
                )
            )
            for role in ROLES:
                cur.execute(
                    pgsql.SQL("GRANT {} TO {}").format(
                        ident(role_name(settings, role)), ident(login)
                    )
                )
            chosen = list(schemas) if schemas is not None else None
            names = chosen if chosen is not None else warehouse_schemas(cur, settings.schema_prefix)
            for schema in names:
                for role in ROLES:
                    allowed = readable(schema, settings.query_schemas(role), settings.schema_prefix)
                    _grant(cur, schema, role_name(settings, role), allowed)
    finally:
        connection.close()


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
