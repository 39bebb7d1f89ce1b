"""Per-minute rollups buffered in process and merged into the database off the request path.

    buffer = RollupBuffer("http", write=http_rollups_write, prune=http_rollups_prune)
    buffer.add(("api/v1/jobs/<int:pk>/", "GET", 200), ms=3.2, failed=False)   # a dict update

`add` touches only a dict under one lock: no I/O. A daemon thread per process
(`start_flusher`, started by the gunicorn and Celery process hooks) drains every buffer at most
every `TELEMETRY_FLUSH_SECONDS` and merges each (minute, key) into its row, so several processes
writing the same minute add up. A process that never starts the flusher (a shell, a test) keeps
at most `MAX_BUFFERED_KEYS` keys and drops the rest (logged once).

Latency is kept as counts over fixed buckets (`LATENCY_BUCKETS_MS`, the same edges as the
Prometheus histograms); `latency_quantile_ms` reads p50/p99 back by linear interpolation inside
a bucket, so a quantile is exact to its bucket's width.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction

if TYPE_CHECKING:
    from core.telemetry.models import MinuteRollup

logger = logging.getLogger(__name__)

# Upper edges in milliseconds; one more bucket counts what is above the last edge.
LATENCY_BUCKETS_MS: tuple[float, ...] = (
    1,
    2.5,
    5,
    10,
    25,
    50,
    100,
    250,
    500,
    1000,
    2500,
    5000,
    10000,
    30000,
    60000,
)
MAX_BUFFERED_KEYS = 50_000

Key = tuple[Any, ...]


def latency_bucket(ms: float) -> int:
    """Index of the bucket `ms` falls in (upper edge inclusive, like Prometheus's `le`)."""
    return bisect_left(LATENCY_BUCKETS_MS, ms)


def latency_quantile_ms(buckets: Sequence[int], q: float, *, maximum: float | None = None) -> float | None:
    """The `q` quantile (0..1) of a bucketed latency distribution, interpolated inside its bucket.

    The overflow bucket (above the last edge) reads as `maximum` when given. None when empty.
    """
    total = sum(buckets)
    if total <= 0:
        return None
    rank = q * total
    seen = 0.0
    for index, count in enumerate(buckets):
        if count and seen + count >= rank:
            low = LATENCY_BUCKETS_MS[index - 1] if index > 0 else 0.0
            if index >= len(LATENCY_BUCKETS_MS):
                return maximum if maximum is not None else LATENCY_BUCKETS_MS[-1]
            high = LATENCY_BUCKETS_MS[index]
            if maximum is not None:
                high = min(high, max(maximum, low))
            return low + (high - low) * ((rank - seen) / count)
        seen += count
    return maximum


def merged_buckets(*bucket_lists: Sequence[int]) -> list[int]:
    """Element-wise sum of bucket lists (rows of several processes or minutes)."""
    size = len(LATENCY_BUCKETS_MS) + 1
    total = [0] * size
    for buckets in bucket_lists:
        for index, count in enumerate(buckets[:size]):
            total[index] += int(count)
    return total


@dataclass
class MinuteAggregate:
    """What one process saw for one key in one minute."""

    count: int = 0
    errors: int = 0
    items: int = 0
    latency_ms_sum: float = 0.0
    latency_ms_max: float = 0.0
    latency_buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1))

    def add(self, *, ms: float, failed: bool, items: int) -> None:
        self.count += 1
        self.errors += int(failed)
        self.items += items
        self.latency_ms_sum += ms
        if ms > self.latency_ms_max:
            self.latency_ms_max = ms
        self.latency_buckets[latency_bucket(ms)] += 1

    def merge(self, other: MinuteAggregate) -> None:
        self.count += other.count
        self.errors += other.errors
        self.items += other.items
        self.latency_ms_sum += other.latency_ms_sum
        self.latency_ms_max = max(self.latency_ms_max, other.latency_ms_max)
        self.latency_buckets = merged_buckets(self.latency_buckets, other.latency_buckets)


def minute_start(epoch_minute: int) -> datetime:
    return datetime.fromtimestamp(epoch_minute * 60, tz=UTC)


Writer = Callable[[Mapping[tuple[int, Key], MinuteAggregate]], None]
Pruner = Callable[[datetime], int]


class RollupBuffer:
    """One kind of rollup (HTTP, jobs, predictions): an in-memory buffer and how to store it."""

    def __init__(self, name: str, *, write: Writer, prune: Pruner, register: bool = True) -> None:
        self.name = name
        self._write = write
        self._prune = prune
        self._items: dict[tuple[int, Key], MinuteAggregate] = {}
        self._lock = threading.Lock()
        self._dropped = 0
        if register:  # flushed and pruned with the others (`telemetry_flush`, `telemetry_prune`)
            _BUFFERS.append(self)

    def add(self, key: Key, *, ms: float, failed: bool = False, items: int = 1, at: float | None = None) -> None:
        """Count one event of `key` now (or at epoch seconds `at`): a dict update, no I/O."""
        slot = (int((time.time() if at is None else at) // 60), key)
        with self._lock:
            aggregate = self._items.get(slot)
            if aggregate is None:
                if len(self._items) >= MAX_BUFFERED_KEYS:
                    self._dropped += 1
                    if self._dropped == 1:
                        logger.warning("Telemetry buffer %s is full (no flusher running?); dropping.", self.name)
                    return
                aggregate = self._items[slot] = MinuteAggregate()
            aggregate.add(ms=ms, failed=failed, items=items)

    def drain(self) -> dict[tuple[int, Key], MinuteAggregate]:
        with self._lock:
            items, self._items = self._items, {}
        return items

    def restore(self, items: Mapping[tuple[int, Key], MinuteAggregate]) -> None:
        """Put back what a failed write drained, merged with what arrived meanwhile."""
        with self._lock:
            for slot, aggregate in items.items():
                current = self._items.get(slot)
                if current is None:
                    self._items[slot] = aggregate
                else:
                    current.merge(aggregate)

    def flush(self) -> int:
        """Merge the buffered minutes into the database; returns how many (minute, key) rows."""
        items = self.drain()
        if not items:
            return 0
        try:
            self._write(items)
        except Exception:
            self.restore(items)
            raise
        return len(items)

    def prune(self, before: datetime) -> int:
        return self._prune(before)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_BUFFERS: list[RollupBuffer] = []


def rollup_rows_merge(
    model: type[MinuteRollup],
    items: Mapping[tuple[int, Key], MinuteAggregate],
    *,
    key_fields: Sequence[str],
) -> None:
    """Add each (minute, key) aggregate to its row of `model`, creating it when missing.

    Rows are locked while merged (`select_for_update`; SQLite serialises writers anyway), and a
    row created by another process at the same moment is merged into on the retry.
    """
    for (epoch_minute, key), aggregate in items.items():
        lookup: dict[str, Any] = {"minute": minute_start(epoch_minute), **dict(zip(key_fields, key, strict=True))}
        for _ in range(3):
            try:
                with transaction.atomic():
                    row = model._default_manager.select_for_update().filter(**lookup).first()
                    if row is None:
                        row = model(**lookup)
                    row.merge(aggregate)
                    row.save()
                break
            except IntegrityError:  # another process created the row first: merge into it
                continue


def rollup_rows_prune(model: type[MinuteRollup], before: datetime) -> int:
    return int(model._default_manager.filter(minute__lt=before).delete()[0])


def telemetry_flush() -> int:
    """Flush every buffer of this process and record its heartbeat; returns rows merged."""
    from core.telemetry.services import process_heartbeat_record

    merged = 0
    for buffer in list(_BUFFERS):
        try:
            merged += buffer.flush()
        except Exception:  # the next flush retries; telemetry never takes a process down
            logger.exception("Flushing telemetry buffer %s failed", buffer.name)
    if _flusher is not None and _flusher.pid == os.getpid():
        try:
            process_heartbeat_record(role=_flusher.role, started_at=_flusher.started_at)
        except Exception:
            logger.exception("Recording the process heartbeat failed")
    return merged


def telemetry_prune(*, now: datetime | None = None) -> int:
    """Delete rollups older than `TELEMETRY_RETENTION_DAYS` (and long-gone process heartbeats)."""
    from core.telemetry.services import process_heartbeats_prune

    before = (now or datetime.now(tz=UTC)) - timedelta(days=settings.TELEMETRY_RETENTION_DAYS)
    deleted = sum(buffer.prune(before) for buffer in list(_BUFFERS))
    return deleted + process_heartbeats_prune(before=(now or datetime.now(tz=UTC)) - timedelta(days=1))


def buffers_clear() -> None:
    """Forget what every buffer holds (tests)."""
    for buffer in list(_BUFFERS):
        buffer.clear()


class _Flusher(threading.Thread):
    def __init__(self, role: str, interval: float) -> None:
        super().__init__(name="telemetry-flusher", daemon=True)
        self.role = role
        self.interval = interval
        self.pid = os.getpid()
        self.host = socket.gethostname()
        self.started_at = datetime.now(tz=UTC)
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                telemetry_flush()
            finally:
                connection.close()  # this thread's own connection; never held between flushes


_flusher: _Flusher | None = None
_flusher_lock = threading.Lock()


def start_flusher(*, role: str) -> bool:
    """Start this process's flusher thread (once per process; after a fork, once in the child).

    `role` (`web`, `worker`) labels the process heartbeat. Returns False when
    `TELEMETRY_FLUSH_SECONDS` is 0 (flushing only when asked, e.g. tests).
    """
    global _flusher
    interval = float(settings.TELEMETRY_FLUSH_SECONDS)
    if interval <= 0:
        return False
    with _flusher_lock:
        if _flusher is not None and _flusher.pid == os.getpid() and _flusher.is_alive():
            return True
        _flusher = _Flusher(role, interval)
        _flusher.start()
    return True


def stop_flusher() -> None:
    """Flush what is left and stop the thread (process shutdown hooks)."""
    flusher = _flusher
    if flusher is None or flusher.pid != os.getpid():
        return
    flusher.stopped.set()
    try:
        telemetry_flush()
    finally:
        connection.close()


@atexit.register
def _flush_at_exit() -> None:
    if _flusher is not None and _flusher.pid == os.getpid() and not _flusher.stopped.is_set():
        try:
            stop_flusher()
        except Exception:  # pragma: no cover - interpreter shutdown
            logger.exception("Final telemetry flush failed")
