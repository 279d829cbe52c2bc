"""JobStore bookkeeping: finished jobs are forgotten oldest first, by TTL and by count."""

from __future__ import annotations

import asyncio
import dataclasses

from aix_jupyter.backend.catalog import ModelSpec
from aix_jupyter.backend.jobs import JobStore
from aix_jupyter.core.parameters import ModelParameters

SPEC = ModelSpec(
    id="test/echo",
    name="echo",
    function="utilities",
    runner=lambda inputs, ctx: inputs["data"],
    params=ModelParameters([{"name": "data", "dataType": "text", "required": True}]),
    concurrency=8,
)


def test_only_the_newest_finished_jobs_are_kept_beyond_max_kept():
    async def main() -> tuple[list[str], list[str]]:
        store = JobStore(max_kept=3, ttl=600)
        jobs = []
        for i in range(6):
            job = store.submit(SPEC, {"data": str(i)})
            assert await store.wait(job, 5)
            jobs.append(job)
        store.purge()
        kept = [j.id for j in jobs if store.get(j.id) is not None]
        return kept, [j.id for j in jobs[-3:]]

    kept, newest = asyncio.run(main())
    assert kept == newest


def test_expired_jobs_are_forgotten_and_running_ones_kept():
    async def main() -> tuple[bool, bool]:
        store = JobStore(ttl=0.1)
        done = store.submit(SPEC, {"data": "x"})
        assert await store.wait(done, 5)
        await asyncio.sleep(0.2)
        slow = dataclasses.replace(SPEC, id="test/slow", runner=lambda i, ctx: ctx.sleep(1) or "ok")
        running = store.submit(slow, {"data": "y"})
        await asyncio.sleep(0.2)
        store.purge()
        result = (store.get(done.id) is None, store.get(running.id) is running)
        store.cancel(running)
        return result

    forgotten, kept = asyncio.run(main())
    assert forgotten and kept
