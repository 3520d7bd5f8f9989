"""``file`` sources: CSV, JSON Lines, JSON arrays and Excel workbooks on local disk."""

from __future__ import annotations

import glob
import json
import re
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dlt

from ingest.checks import column_problems
from ingest.errors import IngestError

if TYPE_CHECKING:
    import pyarrow as pa
    from dlt.extract.resource import DltResource

    from ingest.spec import SourceSpec, TableSpec

BLOCK_SIZE = 16 << 20
CSV_BATCH_ROWS = 200_000


def _flatten(table: pa.Table) -> pa.Table:
    """Nested objects become ``parent__child`` columns, as dlt names them for dicts."""
    import pyarrow as pa

    while any(pa.types.is_struct(field.type) for field in table.schema):
        table = table.flatten()
    return table.rename_columns([name.replace(".", "__") for name in table.column_names])


# Read as booleans when a whole column holds only these (0/1 columns stay integers).
TRUE_VALUES = ["true", "True", "TRUE", "t", "T"]
FALSE_VALUES = ["false", "False", "FALSE", "f", "F"]
NULL_VALUES = ["", "NULL", "null", "NA", "N/A", "n/a", "NaN", "nan", "#N/A", "None"]


def csv_options(spec: TableSpec) -> dict[str, Any]:
    """pyarrow's read, parse and convert options for a CSV table of the sources file.

    An empty field is NULL in every column, text included, and a column of
    true/false or t/f is a boolean: what a database export means by them.
    """
    from pyarrow import csv

    header = spec.header is not False
    return {
        "read_options": csv.ReadOptions(
            block_size=BLOCK_SIZE,
            encoding=spec.encoding or "utf8",
            autogenerate_column_names=not header,
        ),
        "parse_options": csv.ParseOptions(delimiter=spec.delimiter or ","),
        "convert_options": csv.ConvertOptions(
            null_values=list(spec.null_values) if spec.null_values is not None else NULL_VALUES,
            strings_can_be_null=True,
            true_values=TRUE_VALUES,
            false_values=FALSE_VALUES,
        ),
    }


def read_csv(path: Path, spec: TableSpec) -> Iterator[pa.Table]:
    """Arrow batches of a CSV file: parsed by DuckDB (in memory, every core) when it is
    UTF-8, by pyarrow for other encodings. Both read NULLs and booleans the same way."""
    encoding = (spec.encoding or "utf-8").lower().replace("_", "-")
    batches = _csv_duckdb(path, spec) if encoding in ("utf-8", "utf8") else _csv_pyarrow(path, spec)
    for table in batches:
        if spec.header is False:  # name them as spreadsheets do
            table = table.rename_columns([f"column_{i}" for i in range(1, table.num_columns + 1)])
        yield _flatten(table)


def _csv_duckdb(path: Path, spec: TableSpec) -> Iterator[pa.Table]:
    import duckdb
    import pyarrow as pa

    connection = duckdb.connect(config={"autoinstall_known_extensions": False})
    try:
        relation = connection.read_csv(
            str(path),
            header=spec.header is not False,
            sep=spec.delimiter or ",",
            na_values=list(spec.null_values) if spec.null_values is not None else NULL_VALUES,
        )
        for batch in relation.to_arrow_reader(CSV_BATCH_ROWS):
            yield pa.Table.from_batches([batch])
    except duckdb.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise IngestError(f"cannot parse {path}: {first}") from None
    finally:
        connection.close()


def _csv_pyarrow(path: Path, spec: TableSpec) -> Iterator[pa.Table]:
    import pyarrow as pa
    from pyarrow import csv

    reader = csv.open_csv(path, **csv_options(spec))
    for batch in reader:
        yield pa.Table.from_batches([batch])


def read_jsonl(path: Path) -> Iterator[pa.Table]:
    from pyarrow import json as pa_json

    yield _flatten(pa_json.read_json(path, read_options=pa_json.ReadOptions(block_size=BLOCK_SIZE)))


def read_json(path: Path) -> Iterator[list[dict[str, Any]]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise IngestError(f"{path}: expected a JSON array of objects")
    yield data


def read_excel(path: Path, sheet: str | None) -> Generator[list[dict[str, Any]], None, None]:
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        if sheet is not None and sheet not in workbook.sheetnames:
            raise IngestError(
                f"{path}: no sheet named {sheet!r}",
                hint=f"sheets: {', '.join(workbook.sheetnames)}",
            )
        worksheet = workbook[sheet] if sheet else workbook.worksheets[0]
        rows = worksheet.iter_rows(values_only=True)
        header = next(rows, None)
        if header is None:
            return
        names = [
            str(h).strip() if h is not None else f"column_{i}" for i, h in enumerate(header, 1)
        ]
        batch: list[dict[str, Any]] = []
        for row in rows:
            if all(value is None for value in row):
                continue
            batch.append(dict(zip(names, row, strict=False)))
            if len(batch) >= 10_000:
                yield batch
                batch = []
        if batch:
            yield batch
    finally:
        workbook.close()


GLOB = re.compile(r"[*?\[]")


def files_of(pattern: str) -> list[Path]:
    """The files a table's ``path`` names: itself, or every match of a glob, in order."""
    if not GLOB.search(pattern):
        return [Path(pattern)]
    return [
        Path(found) for found in sorted(glob.glob(pattern, recursive=True)) if Path(found).is_file()
    ]


def _read_file(source: SourceSpec, table: str, path: Path) -> Iterator[Any]:
    spec = source.tables[table]
    fmt = source.file_format(table)
    if fmt == "csv":
        return read_csv(path, spec)
    if fmt == "jsonl":
        return read_jsonl(path)
    if fmt == "json":
        return read_json(path)
    return read_excel(path, spec.sheet)


def _reader(source: SourceSpec, table: str) -> Iterator[Any]:
    """Every file of the table. For a glob loaded by merge or append, only files that are
    new or changed (size or modification time) since the last successful load: what was
    read is remembered in the resource's state, which dlt keeps with the load."""
    spec = source.tables[table]
    pattern = spec.path or ""
    paths = files_of(pattern)
    if not paths or not paths[0].is_file():
        raise IngestError(
            f"no file matches {pattern}" if GLOB.search(pattern) else f"file not found: {pattern}",
            hint="check the path in the sources file",
        )
    disposition, _ = spec.resolved(table)
    changed_only = GLOB.search(pattern) is not None and disposition != "replace"
    seen: dict[str, Any] = (
        dlt.current.resource_state().setdefault("files", {}) if changed_only else {}
    )
    for path in paths:
        stat = path.stat()
        signature = [stat.st_mtime_ns, stat.st_size]
        if changed_only and seen.get(str(path)) == signature:
            continue
        yield from _read_file(source, table, path)
        if changed_only:
            seen[str(path)] = signature


def _read_again(source: SourceSpec, table: str) -> Callable[[], Iterator[Any]]:
    def read() -> Iterator[Any]:
        yield from _reader(source, table)

    return read


def resources(source: SourceSpec, tables: list[str]) -> list[DltResource]:
    out = []
    for name in tables:
        spec = source.tables[name]
        disposition, key = spec.resolved(name)
        resource = dlt.resource(
            _read_again(source, name),  # a function: a retried load reads the file anew
            name=name,
            write_disposition=disposition,
            primary_key=list(key),
        )()
        if spec.cursor:
            resource.apply_hints(incremental=dlt.sources.incremental(spec.cursor, lag=spec.lag))
        out.append(resource)
    return out


def _flat_keys(record: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in record.items():
        name = f"{prefix}{key}"
        keys.extend(_flat_keys(value, f"{name}__") if isinstance(value, dict) else [name])
    return keys


def columns_of(source: SourceSpec, table: str) -> list[str]:
    """The column names a load of ``table`` will see, read from the (first) file's head."""
    spec = source.tables[table]
    path = files_of(spec.path or "")[0]
    fmt = source.file_format(table)
    if fmt == "csv":
        from pyarrow import csv

        found = list(csv.open_csv(path, **csv_options(spec)).schema.names)
        return [f"column_{i}" for i in range(1, len(found) + 1)] if spec.header is False else found
    if fmt == "excel":
        batches = read_excel(path, spec.sheet)
        try:
            head = next(batches, None)
        finally:
            batches.close()
        return list(head[0]) if head else []
    if fmt == "jsonl":
        with path.open(encoding="utf-8") as handle:
            first = next((line for line in handle if line.strip()), "{}")
        record = json.loads(first)
    else:
        batch = next(read_json(path))
        record = batch[0] if batch else {}
    return _flat_keys(record) if isinstance(record, dict) else []


def check_connection(source: SourceSpec) -> None:
    problems = []
    for name, spec in source.tables.items():
        paths = files_of(spec.path or "")
        if not paths:
            raise IngestError(f"table {name!r}: no file matches {spec.path}")
        path = paths[0]
        if not path.is_file():
            raise IngestError(f"table {name!r}: file not found: {path}")
        try:
            columns = columns_of(source, name)
        except OSError as exc:
            raise IngestError(f"table {name!r}: cannot read {path}: {exc.strerror}") from None
        except (ValueError, UnicodeDecodeError) as exc:
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise IngestError(f"table {name!r}: cannot parse {path}: {first}") from None
        problems += column_problems(name, spec, columns)
    if problems:
        raise IngestError("; ".join(problems), hint="fix the column names in the sources file")
