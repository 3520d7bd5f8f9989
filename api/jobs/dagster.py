"""The API's handle on Dagster: one GraphQL client, code-location reloads coalesced.

After a job changes, the code location is reloaded in the background: the
response does not wait, and a burst of changes costs one or two reloads, not one
each. A run launched before its job reached Dagster waits for that reload.
"""

from __future__ import annotations

import asyncio
import logging

from headwater.settings import Settings
from orchestration.client import DagsterClient, DagsterUnavailable
from orchestration.jobs import TAG_JOB_ID, TAG_OWNER_ID, dagster_job_name

log = logging.getLogger("headwater.api")


class Dagster:
    def __init__(self, settings: Settings) -> None:
        self.client = DagsterClient(settings.dagster_webserver, settings.dagster_location)
        self._task: asyncio.Task[None] | None = None
        self._dirty = False

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        await self.client.close()

    def reload_soon(self) -> None:
        """Reload the code location in the background (after the current reload, if one
        is running: it may have read the jobs before this change)."""
        self._dirty = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._reload())

    async def _reload(self) -> None:
        while self._dirty:
            self._dirty = False
            try:
                await self.client.reload()
            except DagsterUnavailable as exc:
                log.warning("Dagster not reloaded after a job change: %s", exc.message)

    async def reloaded(self) -> None:
        """Return once no reload is pending (starting one if asked for)."""
        if self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def launch(self, job_id: int, owner_id: int) -> str:
        """Launch the Dagster job of Headwater job ``job_id``; its run id.

        Raises:
            DagsterUnavailable: Dagster cannot be reached or does not know the job.
        """
        name = dagster_job_name(job_id)
        tags = {TAG_JOB_ID: str(job_id), TAG_OWNER_ID: str(owner_id)}
        await self.reloaded()
        try:
            return await self.client.launch(name, tags)
        except DagsterUnavailable:
            if await self.client.has_job(name):
                raise
        # Created or changed a moment ago, by another API process perhaps: load it now.
        await self.client.reload()
        return await self.client.launch(name, tags)
