"""Runs watched from the API process, so live clients hear of a run's moves at once.

The Dagster daemon's sensor mirrors runs every few seconds; for clients that is slow.
(Failures are the exception: the sensor announces them, with the error.)
The watcher asks the webserver a few times a second which runs changed and publishes
each move of a Headwater job's run (``orchestration.events.run_update``: whoever
records a move first publishes it, so the sensor and other API processes add no
duplicate). It stays quiet while Dagster is away and picks up again when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from orchestration.client import DagsterClient, DagsterUnavailable, RunInfo
from orchestration.events import run_update
from orchestration.jobs import TAG_JOB_ID
from orchestration.models import Job

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from api.db import Database
    from api.events.hub import EventHub

log = logging.getLogger("headwater.api.events")

INTERVAL_SECONDS = 0.3
AWAY_INTERVAL_SECONDS = 5.0
START_LOOKBACK_SECONDS = 60.0
POLL_TIMEOUT_SECONDS = 5.0


class RunWatcher:
    def __init__(self, client: DagsterClient, database: Database, hub: EventHub) -> None:
        self.client = client
        self.database = database
        self.hub = hub
        self.since = time.time() - START_LOOKBACK_SECONDS
        self._seen: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None
        self._away = False

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            try:
                await self.poll()
                if self._away:
                    log.info("Dagster is back: run events resume")
                self._away = False
            except (DagsterUnavailable, TimeoutError) as exc:
                if not self._away:
                    reason = getattr(exc, "message", None) or "it did not answer in time"
                    log.info("run events wait for Dagster: %s", reason)
                self._away = True
            except Exception:
                log.exception("run events: a poll failed")
            await asyncio.sleep(AWAY_INTERVAL_SECONDS if self._away else INTERVAL_SECONDS)

    async def poll(self) -> None:
        """Publish the moves of the runs changed since the last poll."""
        runs = await asyncio.wait_for(
            self.client.runs_updated_after(self.since), POLL_TIMEOUT_SECONDS
        )
        moved = [
            run
            for run in runs
            if TAG_JOB_ID in run.tags and self._seen.get(run.run_id) != _state(run)
        ]
        if runs:
            self.since = max(self.since, *(run.updated for run in runs))
        if not moved or not self.database.present():
            return
        messages = await self.database.run(lambda s: _publish(s, moved))
        for run in moved:
            self._seen[run.run_id] = _state(run)
        if len(self._seen) > 10_000:
            self._seen = dict(list(self._seen.items())[-5_000:])
        await self.hub.announce(messages)


def _state(run: RunInfo) -> str:
    """What tells one move from the next: STARTING and STARTED are both ``running``; the
    run has started once it has a start time."""
    return f"{run.status}:{run.started_at is not None}"


def _publish(session: Session, runs: list[RunInfo]) -> list[dict[str, Any] | None]:
    messages: list[dict[str, Any] | None] = []
    for run in sorted(runs, key=lambda r: r.updated):
        job = session.get(Job, int(run.tags[TAG_JOB_ID]))
        if job is None or run.status == "failed":
            # A failure is announced by the runs sensor, with its (scrubbed) error and
            # the rows it did load, which this side does not know.
            continue
        if run.status != "queued":
            # A run seen only once it started was queued first: say so, in order.
            messages.append(run_update(session, job, run.run_id, "queued"))
        messages.append(
            run_update(
                session,
                job,
                run.run_id,
                run.status,
                started_at=run.started_at,
                finished_at=run.finished_at,
            )
        )
    return messages
