"""The scheduled job that removes expired messages from every queue (APScheduler 3.x).

Fetch already hides expired messages; the sweeper frees their memory. Each run walks the keyspace
under the queue's prefix with SCAN (never KEYS) and removes expired messages in bounded batches
(:meth:`delivery.queue.MessageQueue.sweep_expired`).

Several processes run the same job. A run first claims ``{prefix}sweeper:claim`` with
``SET NX EX`` for 90 % of the interval, so one process does the SCAN per interval; when that process
dies, its claim expires and another takes over at its next run. The claim only saves work: a sweep
is idempotent, so two overlapping runs remove each message once.

Wiring, in the service's cleanup context::

    scheduler = AsyncIOScheduler()
    add_sweeper_job(scheduler, queue, interval_seconds=60)
    scheduler.start()
    yield
    scheduler.shutdown(wait=False)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

# APScheduler 3 ships no type information.
from apscheduler.job import Job  # type: ignore[import-untyped]
from apscheduler.schedulers.base import BaseScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]
from redis.exceptions import RedisError

from delivery.queue import DEFAULT_SWEEP_BATCH, MessageQueue

__all__ = ["DEFAULT_INTERVAL_SECONDS", "JOB_ID", "add_sweeper_job", "run_sweep"]

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS = 60.0
JOB_ID = "delivery-sweeper"


async def run_sweep(
    queue: MessageQueue,
    *,
    clock: Callable[[], float] = time.time,
    batch: int = DEFAULT_SWEEP_BATCH,
    claim_seconds: int | None = None,
) -> int | None:
    """Run one sweep and log what it removed.

    :param clock: returns the current time in epoch seconds (``time.time`` by default); a queue on
        Redis's clock (the delivery service's) ignores it and expires by ``TIME``.
    :param batch: most messages removed per script call.
    :param claim_seconds: claim the sweep for this long first and skip the run if another
        process holds the claim; ``None`` sweeps unconditionally.
    :returns: messages removed, or ``None`` when skipped (claim held elsewhere, or Redis failed;
        the next run retries).
    """
    try:
        if claim_seconds is not None and not await queue.claim_sweep(claim_seconds):
            log.debug("sweep skipped: another process holds the claim for %r", queue.prefix)
            return None
        started = time.monotonic()
        removed = await queue.sweep_expired(clock(), batch=batch)
    except RedisError as exc:
        # The scheduler keeps the job; expired messages stay hidden from fetch until a run succeeds.
        log.warning("sweep of %r failed, next run retries: %s", queue.prefix, exc)
        return None
    elapsed = time.monotonic() - started
    level = logging.INFO if removed else logging.DEBUG
    log.log(level, "swept %d expired messages under %r in %.3f s", removed, queue.prefix, elapsed)
    return removed


def add_sweeper_job(
    scheduler: BaseScheduler,
    queue: MessageQueue,
    *,
    interval_seconds: float = DEFAULT_INTERVAL_SECONDS,
    batch: int = DEFAULT_SWEEP_BATCH,
    clock: Callable[[], float] = time.time,
    claim: bool = True,
    job_id: str = JOB_ID,
) -> Job:
    """Add the sweeper to ``scheduler`` (an ``AsyncIOScheduler`` running on the service's loop).

    :param interval_seconds: time between runs; default ``DEFAULT_INTERVAL_SECONDS`` (60 s).
    :param batch: most messages removed per script call; default ``DEFAULT_SWEEP_BATCH``.
    :param clock: epoch seconds, ``time.time`` by default (tests pass a fixed clock).
    :param claim: claim each run across processes (see the module docstring); default on.
    :param job_id: the job's id; adding a job with the same id replaces it.
    :returns: the scheduled job. Runs never overlap (``max_instances=1``) and missed runs
        collapse into one (``coalesce``).
    """
    if interval_seconds <= 0:
        raise ValueError("interval_seconds must be positive")
    # Shorter than the interval, so the claimant's own next run finds the claim gone.
    claim_seconds = max(1, int(interval_seconds * 0.9)) if claim else None
    return scheduler.add_job(
        run_sweep,
        trigger=IntervalTrigger(seconds=interval_seconds),
        args=[queue],
        kwargs={"clock": clock, "batch": batch, "claim_seconds": claim_seconds},
        id=job_id,
        name=f"sweep expired messages under {queue.prefix!r}",
        max_instances=1,
        coalesce=True,
        replace_existing=True,
    )
