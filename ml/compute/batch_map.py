"""Ordered batch map over a local process pool or a Ray cluster.

Callers hand over a picklable function of one batch and an iterable of batches; results come
back in input order with a bounded number of batches in flight, so memory stays bounded too.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

BatchFn = Callable[[Any], Any]


class ComputeSettings(BaseModel):
    backend: Literal["local", "ray"] = "local"
    workers: int = Field(0, ge=0, description="0: one per CPU core; 1: run in the calling process")
    ray_address: str | None = Field(None, description="join this Ray cluster; None starts a local one")
    max_in_flight: int = Field(0, ge=0, description="batches submitted ahead; 0: 2 x workers")

    def resolved_workers(self) -> int:
        return self.workers or os.cpu_count() or 1


class BatchMapper(Protocol):
    name: str

    def map(self, fn: BatchFn, batches: Iterable[Any]) -> Iterator[Any]: ...

    def close(self) -> None: ...


def _ordered(submit: Callable[[Any], Any], resolve: Callable[[Any], Any], batches: Iterable[Any], ahead: int) -> Iterator[Any]:
    pending: deque = deque()
    for batch in batches:
        pending.append(submit(batch))
        if len(pending) >= ahead:
            yield resolve(pending.popleft())
    while pending:
        yield resolve(pending.popleft())


class LocalBatchMapper:
    """A forkserver process pool (safe beside the threads of a Dagster run), or inline at 1 worker."""

    name = "local"

    def __init__(self, workers: int, max_in_flight: int = 0, preload: tuple[str, ...] = ()):
        self.workers = workers
        self.ahead = max_in_flight or 2 * workers
        self._pool: ProcessPoolExecutor | None = None
        self._preload = preload

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            ctx = multiprocessing.get_context("forkserver")
            if self._preload:
                ctx.set_forkserver_preload(list(self._preload))
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
        return self._pool

    def map(self, fn: BatchFn, batches: Iterable[Any]) -> Iterator[Any]:
        if self.workers <= 1:
            yield from (fn(batch) for batch in batches)
            return
        pool = self._executor()
        yield from _ordered(lambda b: pool.submit(fn, b), Future.result, batches, self.ahead)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


def ensure_ray(settings: ComputeSettings) -> None:
    """Join `ray_address`, or start a local Ray with `workers` CPUs; once per process."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if settings.ray_address:
        ray.init(address=settings.ray_address, log_to_driver=False)
    else:
        ray.init(num_cpus=settings.resolved_workers(), include_dashboard=False, log_to_driver=False)


def _apply(fn: BatchFn, batch: Any) -> Any:
    return fn(batch)


class RayBatchMapper:
    """Ray tasks, one per batch; joins `address` or starts a local Ray of `workers` CPUs."""

    name = "ray"

    def __init__(self, workers: int, address: str | None = None, max_in_flight: int = 0):
        import ray

        ensure_ray(ComputeSettings(backend="ray", workers=workers, ray_address=address))
        self._ray = ray
        self.workers = int(ray.cluster_resources().get("CPU", workers))
        self.ahead = max_in_flight or 2 * self.workers
        self._apply = ray.remote(_apply)

    def map(self, fn: BatchFn, batches: Iterable[Any]) -> Iterator[Any]:
        fn_ref = self._ray.put(fn)  # shipped once, not with every batch
        yield from _ordered(lambda b: self._apply.remote(fn_ref, b), self._ray.get, batches, self.ahead)

    def close(self) -> None:
        """Leaves Ray running: it is shared by the process, and the cluster may not be ours."""


def make_mapper(settings: ComputeSettings, preload: tuple[str, ...] = ()) -> BatchMapper:
    if settings.backend == "ray":
        return RayBatchMapper(settings.resolved_workers(), settings.ray_address, settings.max_in_flight)
    return LocalBatchMapper(settings.resolved_workers(), settings.max_in_flight, preload)
