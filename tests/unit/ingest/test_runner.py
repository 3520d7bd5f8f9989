"""The runner's last line of error handling: a warehouse that stays locked."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest import runner
from ingest.errors import IngestError
from ingest.spec import parse_sources
from tests.conftest import make_settings

pytestmark = pytest.mark.unit


def test_a_warehouse_locked_past_the_wait_is_one_clear_transient_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path)
    text = "sources:\n  shop:\n    kind: file\n    tables:\n      prices: {path: p.csv}\n"
    spec = parse_sources(text, env={}).sources["shop"]

    def locked() -> None:
        raise OSError('IO Error: Could not set lock on file "warehouse.duckdb": Conflicting lock')

    # The wait itself is wait_for_warehouse's (tested with it); here it has run out.
    monkeypatch.setattr(runner, "wait_for_warehouse", lambda _settings, work, **_: work())
    with pytest.raises(IngestError) as failure:
        runner._load_or_raise(settings, "shop", spec, locked)
    assert failure.value.transient
    assert "locked" in failure.value.message and "shop" in failure.value.message

    def broken() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):  # anything else is not dressed up
        runner._load_or_raise(settings, "shop", spec, broken)
