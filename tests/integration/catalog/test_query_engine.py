"""The engine is the last word on ad hoc SQL: with the validator bypassed (SQL handed
straight to the executor), DuckDB and PostgreSQL themselves refuse writes, file reads,
ATTACH, setting changes and role escapes; timeouts stop queries; a load holding the
DuckDB file is a WarehouseBusy. Also ``headwater query`` on a catalogued warehouse."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import psycopg2
import pytest
from click.testing import CliRunner

from catalog.queries import execute
from catalog.queries.errors import QueryError, QueryFailed, QueryTimeout, WarehouseBusy
from catalog.queries.policy import CALL_FORMS, CALLS_AS_WRITTEN
from catalog.queries.roles import grant_query_access, role_name
from catalog.queries.versions import data_version
from catalog.refresh import refresh
from headwater.cli import main
from headwater.migrate import upgrade
from headwater.settings import Settings
from tests.conftest import make_settings

pytestmark = pytest.mark.integration

ROLES = ("viewer", "user", "admin")


def run(settings: Settings, sql: str, role: str = "viewer", timeout: float = 10) -> list[tuple]:  # type: ignore[type-arg]
    return execute.run(settings, sql, None, role=role, limit=100, timeout=timeout).rows


# --- DuckDB -----------------------------------------------------------------------------


@pytest.fixture
def duck(tmp_path: Path) -> Settings:
    settings = make_settings(tmp_path)
    with duckdb.connect(str(settings.duckdb_path)) as connection:
        connection.execute(
            "CREATE SCHEMA marts; CREATE TABLE marts.t AS SELECT range AS i FROM range(10)"
        )
    return settings


@pytest.mark.parametrize(
    ("sql", "refusal"),
    [
        ("delete from marts.t", "read-only"),
        ("create table marts.u (i int)", "read-only"),
        ("select * from read_csv('/etc/passwd')", "file system operations are disabled"),
        ("select * from '/tmp/anything.csv'", "file system operations are disabled"),
        ("attach '/tmp/elsewhere.duckdb' as other", "file system operations are disabled"),
        ("copy marts.t to '/tmp/out.csv'", "file system operations are disabled"),
        ("install httpfs", "disabled"),
        ("load httpfs", "disabled"),
        ("set threads = 64", "configuration has been locked"),
        ("set enable_external_access = true", "configuration has been locked"),
        ("select 1; delete from marts.t", "read-only"),
    ],
)
def test_duckdb_refuses_what_the_validator_would(duck: Settings, sql: str, refusal: str) -> None:
    with pytest.raises(QueryFailed) as refused:
        run(duck, sql)
    assert refusal in refused.value.message
    assert run(duck, "select count(*) from marts.t") == [(10,)]  # nothing changed


def test_duckdb_stops_a_query_at_its_timeout(duck: Settings) -> None:
    started = time.monotonic()
    with pytest.raises(QueryTimeout):
        run(duck, "select count(*) from range(1000000000000) a", timeout=0.5)
    assert time.monotonic() - started < 5


def test_a_load_holding_the_file_is_busy_not_a_crash(duck: Settings) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys\n"
            f"c = duckdb.connect({str(duck.duckdb_path)!r})\n"
            "print('holding', flush=True)\nsys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        with pytest.raises(WarehouseBusy) as busy:
            run(duck, "select 1")
        assert busy.value.retry_after > 0
    finally:
        holder.communicate("", timeout=30)
    assert run(duck, "select 1") == [(1,)]


# --- PostgreSQL -------------------------------------------------------------------------


@pytest.fixture
def pg(tmp_path: Path, pg_prefix: str) -> Iterator[Settings]:
    login = f"hwq_{pg_prefix.rstrip('_')}"
    settings = make_settings(
        tmp_path,
        warehouse="postgres",
        warehouse_dbname="test",
        schema_prefix=pg_prefix.rstrip("_") + "_",
        query_user=login,
    )
    owner = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="test")
    owner.autocommit = True
    with owner.cursor() as cur:
        for schema in ("marts", "staging", "raw_shop"):
            name = settings.warehouse_schema(schema)
            cur.execute(f'CREATE SCHEMA "{name}"')
            cur.execute(f'CREATE TABLE "{name}".t AS SELECT g AS i FROM generate_series(1, 10) g')
    grant_query_access(
        settings, [settings.warehouse_schema(s) for s in ("marts", "staging", "raw_shop")]
    )
    yield settings
    execute.close_pools()
    with owner.cursor() as cur:
        for name in (role_name(settings, role) for role in ROLES):
            cur.execute(f'DROP OWNED BY "{name}"')
            cur.execute(f'DROP ROLE "{name}"')
    owner.close()


def test_postgres_roles_read_exactly_their_schemas(pg: Settings) -> None:
    marts, staging, raw = (pg.warehouse_schema(s) for s in ("marts", "staging", "raw_shop"))
    expected = {
        "viewer": {marts},
        "user": {marts, staging},
        "admin": {marts, staging, raw},
    }
    for role, readable in expected.items():
        for schema in (marts, staging, raw):
            sql = f'select count(*) from "{schema}".t'
            if schema in readable:
                assert run(pg, sql, role) == [(10,)]
            else:
                with pytest.raises(QueryFailed, match="permission denied"):
                    run(pg, sql, role)


def test_postgres_tables_created_later_are_readable_by_the_roles_that_may(pg: Settings) -> None:
    marts = pg.warehouse_schema("marts")
    owner = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="test")
    try:
        with owner, owner.cursor() as cur:
            cur.execute(f'CREATE TABLE "{marts}".later AS SELECT 1 AS x')
    finally:
        owner.close()
    assert run(pg, f'select x from "{marts}".later') == [(1,)]


@pytest.mark.parametrize(
    ("sql", "refusal"),
    [
        ("delete from {marts}.t", "read-only transaction"),
        ("create table {marts}.u (i int)", "read-only transaction"),
        ("select pg_read_file('/etc/passwd')", "permission denied"),
        ("copy {marts}.t to '/tmp/out.csv'", "pg_write_server_files"),
        ("reset role; select count(*) from {raw}.t", "permission denied"),
        ("set role postgres", "permission denied"),
        ("set role {admin_role}", "permission denied"),
        ("commit; delete from {marts}.t", "read-only transaction"),
        ("select set_config('default_transaction_read_only', 'off', false)", ""),
    ],
)
def test_postgres_refuses_what_the_validator_would(pg: Settings, sql: str, refusal: str) -> None:
    marts, raw = pg.warehouse_schema("marts"), pg.warehouse_schema("raw_shop")
    admin_role = role_name(pg, "admin")
    statement = sql.format(marts=f'"{marts}"', raw=f'"{raw}"', admin_role=f'"{admin_role}"')
    if refusal:
        with pytest.raises(QueryError, match=refusal):
            run(pg, statement, "viewer" if "role" in sql else "admin")
    else:  # allowed, but changes nothing that outlives the transaction
        run(pg, statement, "admin")
        with pytest.raises(QueryFailed, match="read-only transaction"):
            run(pg, f"delete from {marts!r}.t".replace("'", '"'), "admin")
    assert run(pg, f'select count(*) from "{marts}".t', "admin") == [(10,)]


def test_postgres_calls_only_built_in_functions_by_a_plain_name(pg: Settings) -> None:
    """A function a schema on PostgreSQL's default search path adds is never what a
    plain name calls: the query roles search pg_catalog only."""
    marts = pg.warehouse_schema("marts")
    probe = f"{marts}_probe"  # unique to this test run
    owner = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="test")
    try:
        with owner, owner.cursor() as cur:
            cur.execute(
                f"CREATE FUNCTION public.{probe}(varchar) RETURNS text "
                "LANGUAGE sql AS $$ SELECT 'ran' $$"
            )
            cur.execute(f"GRANT EXECUTE ON FUNCTION public.{probe}(varchar) TO PUBLIC")
        table = f'"{marts}".t'
        assert run(pg, f"select public.{probe}('x') from {table} limit 1", "admin") == [("ran",)]
        with pytest.raises(QueryFailed, match="does not exist"):
            run(pg, f"select {probe}('x') from {table} limit 1", "admin")
    finally:
        with owner, owner.cursor() as cur:
            cur.execute(f"DROP FUNCTION IF EXISTS public.{probe}(varchar)")
        owner.close()


def test_every_call_run_as_written_on_postgres_is_a_built_in() -> None:
    """The splicer lets PostgreSQL call these by the name as written: each must be one
    of its own functions (or a grammar form such as COALESCE), not a name only sqlglot
    knows (GROUP_CONCAT, IF, EXPLODE …)."""
    owner = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="test")
    try:
        with owner.cursor() as cur:
            cur.execute(
                "SELECT DISTINCT proname FROM pg_proc JOIN pg_namespace n "
                "ON n.oid = pronamespace WHERE nspname = 'pg_catalog'"
            )
            built_in = {name for (name,) in cur.fetchall()}
            assert CALLS_AS_WRITTEN["postgres"] - CALL_FORMS["postgres"] <= built_in
            for form in CALL_FORMS["postgres"]:
                cur.execute(f"SELECT {form}(1, 2)")
    finally:
        owner.close()


def test_postgres_stops_a_query_at_its_timeout(pg: Settings) -> None:
    with pytest.raises(QueryTimeout):
        run(pg, "select pg_sleep(5)", timeout=0.5)
    assert run(pg, "select 1") == [(1,)]  # the pooled connection came back clean


# --- the command line -------------------------------------------------------------------


def test_headwater_query_prints_csv_json_and_explains_a_refusal(
    duck: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("HEADWATER_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HEADWATER_HOME", str(duck.home_dir))
    upgrade(duck.metadata_url)
    refresh(duck)
    cli = CliRunner()
    csv_out = cli.invoke(
        main, ["query", "select i from t where i < 3 order by i", "--format", "csv"]
    )
    assert csv_out.exit_code == 0, csv_out.output
    assert csv_out.stdout.splitlines() == ["i", "0", "1", "2"]
    json_out = cli.invoke(
        main,
        ["query", "select i from marts.t where i = $n", "--format", "json", "--param", "n=4"],
    )
    assert json_out.exit_code == 0, json_out.output
    assert [json.loads(line) for line in json_out.stdout.splitlines()] == [{"i": 4}]
    table = cli.invoke(main, ["query", "select count(*) as n from t"])
    assert table.exit_code == 0 and "10" in table.stdout
    refused = cli.invoke(main, ["query", "drop table marts.t"])
    assert refused.exit_code == 1
    assert "Only a SELECT query may run; found a DROP" in refused.stderr


def test_postgres_data_versions_change_with_writes_to_the_tables_read(pg: Settings) -> None:
    marts, staging = pg.warehouse_schema("marts"), pg.warehouse_schema("staging")
    read = [f"{marts}.t"]
    before = data_version(pg, read)
    assert data_version(pg, read) == before
    owner = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="test")
    owner.autocommit = True
    try:
        with owner.cursor() as cur:
            cur.execute(f'INSERT INTO "{staging}".t VALUES (11)')  # a table not read
            time.sleep(1.2)  # statistics are published within about a second
            assert data_version(pg, read) == before
            cur.execute(f'INSERT INTO "{marts}".t VALUES (11)')
            time.sleep(1.2)
            inserted = data_version(pg, read)
            assert inserted != before
            cur.execute(f'TRUNCATE "{marts}".t')  # a rebuilt table: new storage at once
            assert data_version(pg, read) != inserted
    finally:
        owner.close()


PG_AWKWARD = """
CREATE TABLE "{schema}".awkward AS SELECT * FROM (VALUES
  (1, 'plain', 1.5::numeric(5, 2), true, '{{"a": [1, "x,y"]}}'::jsonb, ARRAY['a', 'b,c'],
   TIMESTAMPTZ '2024-01-01 10:00:00+00', DATE '2024-01-02', INTERVAL '1 day'),
  (2, '', NULL, false, 'null'::jsonb, ARRAY[]::text[], NULL, NULL, NULL),
  (3, NULL, 2, NULL, NULL, NULL, NULL, NULL, NULL),
  (4, E'say "hi"\\nnext line', 3, NULL, NULL, NULL, NULL, NULL, NULL)
) v(i, s, d, b, j, a, ts, dt, iv)
"""


def test_a_postgres_csv_export_is_what_postgres_copy_writes(pg: Settings) -> None:
    """NULL apart from an empty string, JSON as JSON, booleans as t/f: PostgreSQL's own
    text of every value, with parameters bound and the row limit kept."""
    from catalog.queries.export import export

    marts = pg.warehouse_schema("marts")
    owner = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="test")
    try:
        with owner, owner.cursor() as cur:
            cur.execute(PG_AWKWARD.format(schema=marts))
            cur.execute(f'GRANT SELECT ON "{marts}".awkward TO "{role_name(pg, "viewer")}"')
            sql = f'SELECT * FROM "{marts}".awkward WHERE i >= %(low)s ORDER BY i'
            copied = io.BytesIO()
            cur.copy_expert(
                "COPY ("
                + cur.mogrify(sql, {"low": 2}).decode()
                + ") TO STDOUT WITH (FORMAT csv, HEADER)",
                copied,
            )
    finally:
        owner.close()
    chunks = export(pg, sql, {"low": 2}, role="viewer", timeout=30, fmt="csv", limit=100)
    exported = b"".join(chunks)
    assert exported == copied.getvalue()
    assert b',"",' in exported and b'"{""a"": [1, ""x,y""]}"' not in exported  # row 1 is out
    rows = list(csv.reader(io.StringIO(exported.decode())))
    assert [r[0] for r in rows] == ["i", "2", "3", "4"]
    limited = export(pg, sql, {"low": 0}, role="viewer", timeout=30, fmt="csv", limit=2)
    assert b"".join(limited).decode().splitlines()[1:] == [
        '1,plain,1.50,t,"{""a"": [1, ""x,y""]}","{a,""b,c""}",2024-01-01 10:00:00+00,'
        "2024-01-02,1 day",
        '2,"",,f,null,{},,,',
    ]
    lines = export(pg, sql, {"low": 3}, role="viewer", timeout=30, fmt="jsonl", limit=10)
    assert [json.loads(line)["i"] for line in b"".join(lines).splitlines()] == [3, 4]


def test_a_postgres_export_closed_early_stops_its_copy(pg: Settings) -> None:
    """A client that hangs up mid-export: the COPY is cancelled and the connection comes
    back to the pool usable."""
    from catalog.queries.export import COPY_CHUNK_BYTES, export

    sql = "SELECT g, repeat('x', 100) AS pad FROM generate_series(1, 2000000) AS g"
    chunks = export(pg, sql, None, role="viewer", timeout=60, fmt="csv", limit=2_000_000)
    first = next(chunks)
    assert first.startswith(b"g,pad\n") and len(first) >= COPY_CHUNK_BYTES
    started = time.monotonic()
    chunks.close()
    assert time.monotonic() - started < 10
    assert run(pg, "select 1") == [(1,)]


def test_a_postgres_export_past_its_timeout_is_stopped(pg: Settings) -> None:
    from catalog.queries.export import export

    sql = "SELECT count(*) FROM generate_series(1, 10000000000) AS g"
    started = time.monotonic()
    with pytest.raises(QueryTimeout):
        b"".join(export(pg, sql, None, role="viewer", timeout=1, fmt="csv", limit=10))
    assert time.monotonic() - started < 10
    assert run(pg, "select 1") == [(1,)]


def test_postgres_connections_come_back_to_the_pool_clean(pg: Settings) -> None:
    run(pg, "select pg_advisory_lock(4242)", "admin")
    owner = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="test")
    try:
        with owner.cursor() as cur:
            cur.execute(
                "select count(*) from pg_locks where locktype = 'advisory' and objid = 4242"
            )
            assert cur.fetchone() == (0,)  # DISCARD ALL released it
    finally:
        owner.close()
    # The timeout holds even after a COMMIT inside the SQL.
    started = time.monotonic()
    with pytest.raises(QueryTimeout):
        run(pg, "commit; select pg_sleep(30)", "admin", timeout=0.5)
    assert time.monotonic() - started < 10


def test_a_waiting_load_goes_first_queries_step_aside(duck: Settings) -> None:
    """A reader holds the file; a load waits for it (announcing so); meanwhile queries
    answer busy instead of opening the file again, so they cannot starve the load."""
    import threading

    from headwater.warehouse import wait_for_warehouse, writer_marker

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys\n"
            f"c = duckdb.connect({str(duck.duckdb_path)!r}, read_only=True)\n"
            "print('reading', flush=True)\nsys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "reading"
    loaded: list[int] = []

    def load() -> None:
        with duckdb.connect(str(duck.duckdb_path)) as connection:
            connection.execute("INSERT INTO marts.t VALUES (10)")
            loaded.append(1)

    writer = threading.Thread(target=lambda: wait_for_warehouse(duck, load, 30, writer=True))
    writer.start()
    try:
        deadline = time.monotonic() + 10
        while not writer_marker(duck).exists():
            assert time.monotonic() < deadline, "the load never announced that it waits"
            time.sleep(0.05)
        with pytest.raises(WarehouseBusy, match="waiting to write"):
            run(duck, "select 1")
    finally:
        holder.communicate("", timeout=30)
        writer.join(timeout=30)
    assert loaded == [1] and not writer_marker(duck).exists()
    assert run(duck, "select count(*) from marts.t") == [(11,)]


AWKWARD_ROWS = r"""
CREATE TABLE marts.awkward AS SELECT * FROM (VALUES
  (1, 'plain', 1.5::DECIMAL(5, 2), [1, 2], {'a': 1}, TIMESTAMPTZ '2024-01-01 10:00:00+00',
   TRUE, 'x'::BLOB, 2.5::DOUBLE, INTERVAL 1 DAY, DATE '2024-01-02',
   UUID '00000000-0000-0000-0000-000000000001', TIME '10:00', 'ok'),
  (2, '', NULL, [], NULL, NULL, NULL, ''::BLOB, 'nan'::DOUBLE, NULL, NULL, NULL, NULL, ''),
  (NULL, 'a,b', 1, [3], {'a': 2}, NULL, FALSE, '\x00,'::BLOB, 1e300, INTERVAL 2 HOUR,
   NULL, NULL, NULL, NULL),
  (4, 'say "hi"', 2, NULL, {'a': NULL}, NULL, NULL, NULL, -0.0, NULL, NULL, NULL, NULL,
   'x"'),
  (5, E'line\nbreak', 3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (6, E'cr\rhere', 3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (7, ' lead, trail ', 3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (8, 'é ✓', 3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
) v(i, s, d, l, st, ts, b, bl, f, iv, dt, u, tm, e)
"""


def test_a_csv_export_is_byte_for_byte_what_duckdb_copy_writes(
    duck: Settings, tmp_path: Path
) -> None:
    """Quoting only where needed, an empty string as "" (not a NULL), every type's text."""
    from catalog.queries.export import export

    with duckdb.connect(str(duck.duckdb_path)) as connection:
        connection.execute(AWKWARD_ROWS)
        labels = "ENUM('ok', '', 'x\"')"  # an enum's labels can hold anything
        connection.execute(f"ALTER TABLE marts.awkward ALTER e TYPE {labels} USING e::{labels}")
        sql = "SELECT * FROM marts.awkward ORDER BY i NULLS FIRST"
        connection.execute(f"COPY ({sql}) TO '{tmp_path / 'copy.csv'}' (HEADER)")
    exported = export(duck, sql, None, role="admin", timeout=30, fmt="csv", limit=100)
    copied = (tmp_path / "copy.csv").read_bytes()
    assert copied.count(b'""') >= 3  # the awkward values are there to be quoted
    assert b"".join(exported) == copied


def test_exports_take_a_slot_each_and_give_it_back(duck: Settings) -> None:
    from catalog.queries.export import EXPORT_SLOTS, export

    def started() -> Iterator[bytes]:
        chunks = export(
            duck, "select i from marts.t", None, role="viewer", timeout=30, fmt="csv", limit=10
        )
        assert next(chunks) == b"i\n"  # a client that read the header, then stalled
        return chunks

    stalled = [started() for _ in range(EXPORT_SLOTS)]
    with pytest.raises(WarehouseBusy, match="exports are running"):
        started()
    stalled.pop().close()  # that client hung up
    assert b"".join(started()) == b"".join(f"{i}\n".encode() for i in range(10))
    for chunks in stalled:
        chunks.close()
