"""A reconcile queue in asyncio, after controller-runtime's workqueue.

Keys are deduplicated; one key is never processed twice at once (an add while it is
processed marks it dirty, and it runs again afterwards); `add_after` keeps only the
earliest pending wake-up per key. Nothing sleeps: waits are timers on the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable


class WorkQueue:
    def __init__(self) -> None:
        self._queue: asyncio.Queue[Hashable] = asyncio.Queue()
        self._queued: set[Hashable] = set()
        self._active: set[Hashable] = set()
        self._dirty: set[Hashable] = set()
        self._timers: dict[Hashable, asyncio.TimerHandle] = {}
        self._failures: dict[Hashable, int] = {}

    def add(self, key: Hashable) -> None:
        if key in self._active:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def add_after(self, key: Hashable, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        timer = self._timers.get(key)
        if timer is not None and timer.when() <= when:
            return  # an earlier wake-up is already due
        if timer is not None:
            timer.cancel()
        self._timers[key] = loop.call_at(when, self._fire, key)

    def _fire(self, key: Hashable) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def add_rate_limited(self, key: Hashable, base: float = 0.5, cap: float = 60.0) -> None:
        """Retry after a failure: exponential back-off per key until `forget_failures`."""
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        self.add_after(key, min(base * 2**n, cap))

    def forget_failures(self, key: Hashable) -> None:
        self._failures.pop(key, None)

    def forget(self, key: Hashable) -> None:
        """Drop pending wake-ups of a key whose object is gone."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._failures.pop(key, None)

    async def get(self) -> Hashable:
        key = await self._queue.get()
        self._queued.discard(key)
        self._active.add(key)
        return key

    def done(self, key: Hashable) -> None:
        self._active.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def __len__(self) -> int:
        return len(self._queued)
