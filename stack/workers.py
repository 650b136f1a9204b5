"""Several worker processes serving one port: ``ensign delivery --workers N``.

CPython runs one thread of Python at a time, so one process uses one core. Each worker is a
process of its own with its own event loop, its own Redis connections and its own listening
socket on the same port (``SO_REUSEPORT``: the kernel spreads new connections over the workers).
Nothing else is shared: the delivery service already keeps all state in Redis and crosses
processes through pub/sub (pushes) and claims (the sweeper).

The parent only supervises:

* it binds the port first (with ``SO_REUSEPORT``, never listening, so it gets no connections):
  a port in use fails at once, and port ``0`` becomes one port that every worker then shares;
* it makes an empty directory for the workers' Prometheus values (``PROMETHEUS_MULTIPROC_DIR``,
  :mod:`ensign.metrics`), so ``/metrics`` on any worker answers for all, and removes it at the end;
* SIGTERM or SIGINT is passed on to every worker, each stops gracefully, the parent waits;
* a worker that exits on its own (a crash, a start-up error) stops the others: the service is
  then down as a whole and the supervisor (Docker, systemd) restarts it, rather than running on
  with fewer workers unnoticed. The exit status is the worker's.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Callable
from multiprocessing.connection import wait
from types import FrameType

from ensign.config import ConfigError

__all__ = ["MULTIPROC_VARIABLE", "default_workers", "run_workers"]

log = logging.getLogger(__name__)

#: The variable prometheus_client reads, in each worker, at import time.
MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

#: Seconds the workers get to stop after the parent passed a stop signal on (after their own
#: graceful stop of at most stack.serve.SHUTDOWN_TIMEOUT), before they are killed.
STOP_GRACE = 20.0

#: ``target(index, port, metrics_dir)``, run in each worker process; must be a module-level function.
WorkerTarget = Callable[[int, int, str], None]


def default_workers() -> int:
    """The number of cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_workers(target: WorkerTarget, *, count: int, host: str, port: int, port_variable: str) -> int:
    """Start ``count`` workers running ``target`` on ``host:port``, supervise them until they stop;
    the exit status (0 after a stop signal and a clean stop of every worker)."""
    if count < 1:
        raise ConfigError("--workers must be at least 1")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            holder.bind((host, port))
        except OSError as error:
            raise ConfigError(f"cannot listen on {host}:{port} ({error.strerror}); set {port_variable} to a free port") from None
        port = int(holder.getsockname()[1])
        metrics_dir = tempfile.mkdtemp(prefix="ensign-metrics-")
        try:
            return _supervise(target, count, port, metrics_dir)
        finally:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _supervise(target: WorkerTarget, count: int, port: int, metrics_dir: str) -> int:
    # Spawned, not forked: each worker imports afresh and reads the variable below when it
    # imports prometheus_client; no event loop or connection of the parent leaks into a child.
    os.environ[MULTIPROC_VARIABLE] = metrics_dir
    context = multiprocessing.get_context("spawn")
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for running in workers:
            if running.pid is not None and running.exitcode is None:
                os.kill(running.pid, signal.SIGTERM)

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGINT)}
    workers: list[multiprocessing.process.BaseProcess] = []
    try:
        for index in range(count):
            worker = context.Process(target=target, args=(index, port, metrics_dir), name=f"worker-{index}")
            worker.start()
            workers.append(worker)
        log.info("%d worker processes on port %d (pids %s)", count, port, ", ".join(str(w.pid) for w in workers))
        status = 0
        while any(w.exitcode is None for w in workers):
            ready = wait([w.sentinel for w in workers if w.exitcode is None])
            for ended in workers:
                # A ready sentinel means the process is ending; join() waits for its status.
                ended.join(None if ended.sentinel in ready else 0)
                # A worker still starting when the stop signal came has no handler yet and ends by
                # the signal itself: it served nothing, so that is a clean stop too.
                stopped_early = stopping and ended.exitcode == -signal.SIGTERM
                if ended.exitcode is not None and ended.exitcode != 0 and not stopped_early and status == 0:
                    status = ended.exitcode if ended.exitcode > 0 else 1
            if not stopping and any(w.exitcode is not None for w in workers):
                exited = [w for w in workers if w.exitcode is not None]
                log.error("worker %s exited (status %s): stopping the others", exited[0].pid, exited[0].exitcode)
                status = status or 1
                stop(signal.SIGTERM, None)
                _join_or_kill(workers)
        return status
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _join_or_kill(workers)


def _join_or_kill(workers: list[multiprocessing.process.BaseProcess]) -> None:
    for worker in workers:
        worker.join(STOP_GRACE)
        if worker.exitcode is None:
            worker.kill()
            worker.join()
