"""The dlt destinations ingest builds: the same capabilities as dlt's own, resolved once."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import dlt
import pytest
from dlt.common.normalizers.naming import snake_case, sql_cs_v1

from ingest.destinations import Destination

pytestmark = pytest.mark.unit


def comparable(capabilities: Any) -> dict[str, Any]:
    """Capabilities as values: dlt builds a new functools.partial at every resolution."""
    return {
        key: (value.func, value.args, value.keywords) if isinstance(value, partial) else value
        for key, value in dict(capabilities).items()
    }


@pytest.mark.parametrize(
    ("kind", "connection"),
    [("duckdb", "warehouse.duckdb"), ("postgres", "postgresql://loader@127.0.0.1:5432/w")],
)
def test_capabilities_are_dlts_own_resolved_once(
    kind: str, connection: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if kind == "duckdb":
        connection = str(tmp_path / connection)
    ours = Destination("warehouse", kind, connection).dlt()  # type: ignore[arg-type]
    plain = getattr(dlt.destinations, kind)(credentials=connection, supports_transactions=True)
    for naming in (None, snake_case.NamingConvention(), sql_cs_v1.NamingConvention()):
        assert comparable(ours.capabilities(naming=naming)) == comparable(
            plain.capabilities(naming=naming)
        )
    assert ours.capabilities().supports_transactions is True

    # Resolved once: a second call does not resolve the configuration again.
    calls = []
    monkeypatch.setattr(type(ours), "configuration", lambda *a, **k: calls.append(a))
    ours.capabilities()
    ours.capabilities(naming=snake_case.NamingConvention())
    assert calls == []
    # Each caller gets its own copy: dlt changes the file formats of the one it holds.
    held = ours.capabilities()
    held.preferred_loader_file_format = "csv"
    assert ours.capabilities().preferred_loader_file_format != "csv"
