"""A regenerated sample makes what was loaded from the old one stale: the next load of
each source reading it (from the CLI, a schedule or a job alike) is a full refresh, once.

``HEADWATER_HOME/sample/.reload-pending`` marks the sample as replaced; it lists the
sources already reloaded since, and goes once every source reading the sample has been.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from headwater.settings import Settings
    from ingest.spec import SourceSpec


def reload_marker(settings: Settings) -> Path:
    """Present while raw tables loaded from an older sample await a full reload."""
    return settings.sample_dir / ".reload-pending"


def sample_replaced(settings: Settings) -> None:
    """Every source reading the sample reloads it in full on its next load."""
    reload_marker(settings).write_text("")


def reads_sample(settings: Settings, source: SourceSpec) -> bool:
    """Whether a source reads the generated sample (its database or files)."""
    sample = str(settings.sample_dir)
    places = [source.connection or ""] + [t.path or "" for t in source.tables.values()]
    return any(sample in place for place in places)


def _reloaded(settings: Settings) -> set[str] | None:
    """Sources reloaded since the sample was replaced (None: nothing pending)."""
    try:
        return set(reload_marker(settings).read_text().split())
    except FileNotFoundError:
        return None


def reload_pending(settings: Settings, name: str, source: SourceSpec) -> bool:
    done = _reloaded(settings)
    return done is not None and name not in done and reads_sample(settings, source)


def reloaded(settings: Settings, name: str) -> None:
    """Source ``name`` has loaded the new sample in full; the marker goes with the last."""
    from ingest.runner import load_declared

    done = _reloaded(settings)
    if done is None:
        return
    done.add(name)
    waiting = {
        n for n, s in load_declared(settings).items() if n not in done and reads_sample(settings, s)
    }
    marker = reload_marker(settings)
    if waiting:
        marker.write_text("\n".join(sorted(done)) + "\n")
    else:
        marker.unlink(missing_ok=True)
