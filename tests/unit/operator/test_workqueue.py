"""The reconcile queue: dedup, one worker per key, earliest wake-up wins."""

from __future__ import annotations

import asyncio

from kubetrain_operator.workqueue import WorkQueue


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, 5))


def test_adds_are_deduplicated():
    async def main() -> list[str]:
        q = WorkQueue()
        for key in ("a", "b", "a", "a"):
            q.add(key)
        return [str(await q.get()), str(await q.get()), str(len(q))]

    assert run(main()) == ["a", "b", "0"]


def test_add_while_processing_runs_again_after_done():
    async def main() -> list[str]:
        q = WorkQueue()
        q.add("a")
        key = await q.get()
        q.add("a")  # arrives while "a" is processed: not handed to a second worker
        assert len(q) == 0
        q.done(key)
        return [await q.get()]

    assert run(main()) == ["a"]


def test_earliest_delayed_add_wins():
    async def main() -> tuple[str, float]:
        q = WorkQueue()
        loop = asyncio.get_running_loop()
        start = loop.time()
        q.add_after("a", 5.0)
        q.add_after("a", 0.05)
        q.add_after("a", 3.0)  # later than the pending wake-up: ignored
        key = await q.get()
        return str(key), loop.time() - start

    key, waited = run(main())
    assert key == "a" and waited < 1.0


def test_forget_cancels_wake_ups():
    async def main() -> int:
        q = WorkQueue()
        q.add_after("a", 0.01)
        q.forget("a")
        await asyncio.sleep(0.05)  # let the (cancelled) timer's moment pass
        return len(q)

    assert run(main()) == 0
