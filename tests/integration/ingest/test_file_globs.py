"""A file table may name a glob: every matching file is read, and a merge or append load
reads only the files that are new or changed since the last successful load."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ingest.errors import IngestError
from ingest.runner import run_source
from ingest.spec import SourceSpec, parse_sources
from ingest.targets import UnsafeTarget, check_targets
from tests.conftest import make_settings
from tests.integration.ingest.warehouses import warehouse_rows

pytestmark = pytest.mark.integration


def orders(folder: Path, disposition: str) -> SourceSpec:
    text = (
        "sources:\n  drops:\n    kind: file\n    tables:\n"
        f"      orders: {{path: '{folder}/orders_*.csv', primary_key: id, "
        f"write_disposition: {disposition}}}\n"
    )
    return parse_sources(text, env={}).sources["drops"]


def write(path: Path, rows: list[tuple[int, str]]) -> None:
    path.write_text("id,status\n" + "".join(f"{i},{s}\n" for i, s in rows))


def test_only_new_and_changed_files_are_read_again(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    folder = tmp_path / "drops"
    folder.mkdir()
    write(folder / "orders_1.csv", [(1, "new"), (2, "new")])
    write(folder / "orders_2.csv", [(3, "new")])
    (folder / "other.csv").write_text("id,status\n99,ignored\n")
    source = orders(folder, "merge")

    assert run_source(settings, "drops", source).rows == {"orders": 3}
    assert run_source(settings, "drops", source).rows == {"orders": 0}  # nothing changed

    write(folder / "orders_3.csv", [(4, "new")])
    write(folder / "orders_1.csv", [(1, "shipped"), (2, "new")])
    stat = (folder / "orders_1.csv").stat()
    os.utime(folder / "orders_1.csv", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert run_source(settings, "drops", source).rows == {"orders": 3}  # files 1 and 3
    assert warehouse_rows(
        settings, "drops", "select id, status from {schema}.orders order by id"
    ) == [(1, "shipped"), (2, "new"), (3, "new"), (4, "new")]


def test_a_replaced_glob_reads_every_file_each_time(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    folder = tmp_path / "drops"
    folder.mkdir()
    write(folder / "orders_1.csv", [(1, "new")])
    write(folder / "orders_2.csv", [(2, "new")])
    source = orders(folder, "replace")
    run_source(settings, "drops", source)
    assert run_source(settings, "drops", source).rows == {"orders": 2}
    assert warehouse_rows(settings, "drops", "select count(*) from {schema}.orders") == [(2,)]


def test_a_glob_that_matches_nothing_or_escapes_is_refused(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    folder = tmp_path / "empty"
    folder.mkdir()
    with pytest.raises(IngestError, match="no file matches"):
        run_source(settings, "drops", orders(folder, "merge"))
    outside = tmp_path.parent / f"{tmp_path.name}_outside"
    outside.mkdir()
    with pytest.raises(UnsafeTarget, match="outside the data directories"):
        check_targets(settings, "drops", orders(outside, "merge"))
    deep = parse_sources(
        "sources:\n  d:\n    kind: file\n    tables:\n"
        f"      t: {{path: '{tmp_path}/*/orders.csv'}}\n",
        env={},
    ).sources["d"]
    with pytest.raises(UnsafeTarget, match="wildcards only in the file name"):
        check_targets(settings, "d", deep)
