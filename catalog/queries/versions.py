"""Data versions: a value that changes whenever a load or a build changes the data a
query reads, so that a cached result keyed by it is never served stale.

- DuckDB (embedded): the warehouse file and its write-ahead log, by size and time of
  last change. Any write (a load, a build) changes one of them, so every cached result
  is dropped at once: coarse, but exact, and two ``stat`` calls.
- PostgreSQL: per table, its storage (``pg_class.relfilenode``: a rebuilt table gets a
  new one) and its write counters (``pg_stat_all_tables``), for each table the query
  reads and each table upstream of it in the catalog's lineage (a staging view changes
  when its raw table does). The counters are published when a writing transaction ends,
  within about a second.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from catalog.models import OUTSIDE_THE_WAREHOUSE, Dataset, LineageEdge
from catalog.queries.errors import WarehouseUnavailable
from catalog.queries.known import catalog_version

_Graph = tuple[dict[str, int], dict[int, str], dict[int, list[int]]]

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from headwater.settings import Settings


_graphs: dict[str, tuple[tuple[Any, ...], _Graph]] = {}
_graphs_lock = threading.Lock()


def _graph(session: Session) -> _Graph:
    """Dataset ids by name, warehouse names by id and upstream ids by dataset id, read
    once per state of the catalog (not on every cached answer)."""
    version = (
        *catalog_version(session),
        session.scalar(select(func.count()).select_from(LineageEdge)),
    )
    url = str(session.get_bind().engine.url)
    with _graphs_lock:
        known = _graphs.get(url)
    if known is not None and known[0] == version:
        return known[1]
    rows = session.execute(
        select(Dataset.id, Dataset.schema_name, Dataset.table_name, Dataset.kind)
    ).all()
    by_name = {f"{s}.{t}".lower(): i for i, s, t, _ in rows}
    names = {i: f"{s}.{t}" for i, s, t, kind in rows if kind not in OUTSIDE_THE_WAREHOUSE}
    edges: dict[int, list[int]] = {}
    for up, down in session.execute(select(LineageEdge.upstream_id, LineageEdge.downstream_id)):
        edges.setdefault(down, []).append(up)
    graph = (by_name, names, edges)
    with _graphs_lock:
        _graphs[url] = (version, graph)
    return graph


def upstream_relations(session: Session, tables: Collection[str]) -> list[str]:
    """``tables`` (``schema.name``) and every warehouse table upstream of them."""
    by_name, names, edges = _graph(session)
    seen: set[int] = set()
    todo = [by_name[t.lower()] for t in tables if t.lower() in by_name]
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(edges.get(node, ()))
    found = {names[i] for i in seen if i in names} | set(tables)
    return sorted(found)


def data_version(settings: Settings, relations: Collection[str]) -> str:
    """A short digest that changes when the data of ``relations`` may have changed."""
    digest = hashlib.sha256()
    if settings.warehouse == "duckdb":
        for file in _warehouse_files(settings):
            try:
                stat = os.stat(file)
            except FileNotFoundError:
                digest.update(b"-")
                continue
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns};".encode())
        return digest.hexdigest()[:32]
    import psycopg2

    try:
        rows = _postgres_versions(settings, relations)
    except psycopg2.Error:
        raise WarehouseUnavailable("The warehouse does not answer") from None
    for row in rows:
        digest.update(repr(row).encode())
    return digest.hexdigest()[:32]


def _warehouse_files(settings: Settings) -> tuple[str, str]:
    """The DuckDB file and its write-ahead log, resolved once per configured location
    (resolving a path costs a system call per component: this runs on every query)."""
    where = (settings.warehouse_path, settings.home)
    found = _files.get(where)
    if found is None:
        path = settings.duckdb_path
        found = _files[where] = (str(path), str(path.with_name(path.name + ".wal")))
    return found


_files: dict[tuple[object, object], tuple[str, str]] = {}


def _postgres_versions(settings: Settings, relations: Collection[str]) -> list[tuple[object, ...]]:
    from headwater.warehouse import connect_postgres

    pairs = [r.split(".", 1) for r in sorted(relations) if "." in r]
    if not pairs:
        return []
    connection = connect_postgres(settings)
    try:
        with connection.cursor() as cur:
            cur.execute(
                """
                SELECT n.nspname, c.relname, c.oid, c.relfilenode,
                       s.n_tup_ins, s.n_tup_upd, s.n_tup_del, s.n_live_tup
                FROM unnest(%s::text[], %s::text[]) AS wanted(schema_name, table_name)
                JOIN pg_namespace n ON n.nspname = wanted.schema_name
                JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = wanted.table_name
                LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
                ORDER BY 1, 2
                """,
                ([s for s, _ in pairs], [t for _, t in pairs]),
            )
            return [tuple(row) for row in cur.fetchall()]
    finally:
        connection.rollback()
        connection.close()
