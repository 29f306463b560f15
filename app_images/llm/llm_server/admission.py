"""Concurrency limit with a bounded wait queue: past the queue, callers get 429 at once."""

from __future__ import annotations

import asyncio

from .metrics import ServerMetrics


class QueueFullError(RuntimeError):
    pass


class Admission:
    def __init__(self, max_concurrency: int, max_queue: int, metrics: ServerMetrics) -> None:
        self._slots = asyncio.Semaphore(max_concurrency)
        self._max_queue = max_queue
        self._waiting = 0
        self._active = 0
        self._metrics = metrics
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def active(self) -> int:
        return self._active

    async def acquire(self) -> None:
        if self._slots.locked() and self._waiting >= self._max_queue:
            raise QueueFullError(
                f"server is at its limit ({self._active} generating, {self._waiting} queued)"
            )
        self._waiting += 1
        self._metrics.queue_depth.set(self._waiting)
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
            self._metrics.queue_depth.set(self._waiting)
        self._active += 1
        self._idle.clear()
        self._metrics.in_flight.set(self._active)

    def release(self) -> None:
        self._active -= 1
        self._metrics.in_flight.set(self._active)
        self._slots.release()
        if self._active == 0:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no generation runs (graceful shutdown); False on timeout."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:  # not the builtin on 3.10 (the vendor base image)
            return False
        return True
