"""Retrieval metrics from LangChain callbacks: counts, errors, cache hits, latency percentiles.

:class:`RetrievalMetricsHandler` is a LangChain callback handler that pairs the start and end (or
error) of every retriever run and keeps counters and bounded windows per retriever and per hybrid
leg (``bm25``, ``vector``): counts, errors, empty results, degraded answers, cache hits (the
:data:`~langchain_hybrid.cache.CACHE_EVENT` custom event), latency percentiles and a latency
histogram. :meth:`~RetrievalMetricsHandler.snapshot` returns plain data; the health rules
(:mod:`langchain_hybrid.health`) read its window, the exporters
(:mod:`langchain_hybrid.exporters`) turn it into Prometheus families, a log line or spans.

This module imports neither the retriever nor Chroma: it only listens to callback events.

Usage:
    ```python
    from langchain_hybrid import RetrievalMetricsHandler

    metrics = RetrievalMetricsHandler()
    chain = retriever | format_docs | prompt | llm
    chain.invoke("question", config={"callbacks": [metrics]})
    metrics.snapshot()["retrievers"]["HybridRetriever"]["latency_ms"]["p95"]
    ```
"""

from __future__ import annotations

__all__ = ["RetrievalMetricsHandler"]

import bisect
import itertools
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any
from uuid import UUID

from langchain_hybrid._events import (
    RetrieverEventsOnly,
    count_documents,
    documents_info,
    error_text,
    positive,
    run_name,
)
from langchain_hybrid.cache import CACHE_EVENT

logger = logging.getLogger(__name__)

ALL = "all"
"""The ``leg`` label of a retrieval as a whole (its legs are labelled ``bm25`` / ``vector``)."""
OTHER = "<other>"
"""The name that runs are recorded under once ``max_series`` (or the leg bound) is reached."""
MAX_LEGS = 16
"""Leg names kept per retriever name; further leg names are recorded as :data:`OTHER`."""
_QUANTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
LATENCY_BUCKETS_SECONDS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
)  # fmt: skip
"""Upper bounds of the latency histogram's buckets: 0.1 ms (a cached answer) to 10 s."""


class _Run:
    """A retriever run between its start and its end (or error)."""

    __slots__ = ("cache_hit", "key", "leg_failed", "parent", "started")

    def __init__(self, started: float, key: tuple[str, str] | None, parent: UUID | None) -> None:
        self.started = started
        self.key = key  # (retriever, leg); None: a deeper descendant, not measured
        self.parent = parent  # the tracked parent of a leg
        self.leg_failed = False
        self.cache_hit: bool | None = None


# one window record: (ended_at monotonic seconds, latency seconds, documents (-1: error), degraded)
_Record = tuple[float, float, int, bool]


class _Series:
    """Totals since start (or reset) and the window of recent records of one retriever/leg."""

    __slots__ = (
        "buckets",
        "cache_hits",
        "cache_misses",
        "count",
        "degraded",
        "empty",
        "errors",
        "latency_sum",
        "window",
    )

    def __init__(self, window: int) -> None:
        self.count = 0
        self.errors = 0
        self.empty = 0
        self.degraded = 0
        self.cache_hits = 0
        self.cache_misses = 0
        self.latency_sum = 0.0
        self.buckets = [0] * (len(LATENCY_BUCKETS_SECONDS) + 1)  # per bucket; the last is +Inf
        self.window: deque[_Record] = deque(maxlen=window)

    def record(self, latency: float) -> None:
        """Count one run's latency in the totals and its histogram bucket."""
        self.count += 1
        self.latency_sum += latency
        self.buckets[bisect.bisect_left(LATENCY_BUCKETS_SECONDS, latency)] += 1


def _quantile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default ``linear`` method)."""
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def window_stats(records: Sequence[_Record]) -> dict[str, Any]:
    """Rates, mean documents and latency percentiles (ms) of window records.

    ``error_rate`` is errors over all records; ``empty_rate`` and ``degraded_rate`` are over the
    successful ones; ``documents_mean`` is over the successful ones; latency covers every record
    (a failure's latency is what its caller waited). Values are ``None`` for an empty window.
    """
    size = len(records)
    errors = sum(1 for r in records if r[2] < 0)
    ok = size - errors
    empty = sum(1 for r in records if r[2] == 0)
    degraded = sum(1 for r in records if r[3])
    documents = sum(r[2] for r in records if r[2] > 0)
    latency: dict[str, float | None] = dict.fromkeys(("p50", "p95", "p99", "max", "mean"))
    if size:
        ordered = sorted(r[1] * 1e3 for r in records)
        latency = {name: _quantile(ordered, q) for name, q in _QUANTILES}
        latency["max"] = ordered[-1]
        latency["mean"] = sum(ordered) / size
    return {
        "size": size,
        "errors": errors,
        "error_rate": errors / size if size else 0.0,
        "empty_rate": empty / ok if ok else 0.0,
        "degraded_rate": degraded / ok if ok else 0.0,
        "documents_mean": documents / ok if ok else None,
        "latency_ms": latency,
    }


class RetrievalMetricsHandler(RetrieverEventsOnly):
    """Retrieval metrics from LangChain callbacks: counts, errors, latency, cache, degraded.

    Attach it where callbacks go (``config={"callbacks": [handler]}`` on a chain, a retriever or
    ``with_config``); it measures every retriever run under it. A retriever run whose parent is
    not a measured retriever run is a *retrieval*, labelled by its run name (``HybridRetriever``,
    or ``run_name``); a retriever run whose parent is a retrieval is a *leg* of it, labelled by
    its own run name (the hybrid retriever's ``bm25`` and ``vector``). Deeper retriever runs are
    not measured.

    Per retrieval and per leg: ``count``, ``errors``, ``empty`` (successful runs that returned
    no documents) as totals since creation or :meth:`reset`; and, over the last ``window``
    runs, ``error_rate``, ``empty_rate``, ``documents_mean`` and ``latency_ms`` (p50, p95, p99,
    max, mean). Per retrieval also: ``degraded`` (answers whose first document carries
    ``metadata["degraded"]``, or whose leg failed while the retrieval succeeded) and
    ``degraded_rate``, and ``cache`` hits and misses from the ``langchain_hybrid.cache``
    custom event.

    Memory is bounded whatever the traffic: one ``deque(maxlen=window)`` per series; at most
    ``max_series`` retriever names, each with at most :data:`MAX_LEGS` leg names (run names
    can carry user data, e.g. ``run_name=f"kb-{tenant}"``: past the bound, retrievals with a new
    name are recorded under the name ``"<other>"``, and legs with a new name under the leg
    ``"<other>"``, both counted as ``overflow_runs``; names already seen keep their series); at
    most ``max_in_flight`` unfinished runs (the oldest are dropped beyond it and counted as
    ``evicted_in_flight``); the last ``max_recent_errors`` error messages.

    Thread-safe (one lock, held for a few dict and deque operations), and ``run_inline``: in
    async chains its methods run on the event loop instead of a thread-pool hop each. It never
    raises into the chain: every callback body is wrapped, and failures are logged at DEBUG.

    Key init args:
        window: runs kept per series for rates and percentiles (default 10,000).
        max_series: retriever names with a series of their own (default 1,000); later new
            names share the ``"<other>"`` series.
        max_in_flight: unfinished runs tracked at most (default 10,000).
        max_recent_errors: error messages kept for :meth:`recent_errors` (default 20).
        log_errors: also log each failed retrieval or leg at WARNING with its run name.

    Usage:
        ```python
        metrics = RetrievalMetricsHandler(window=5_000)
        retriever.invoke("query", config={"callbacks": [metrics]})
        await chain.abatch(questions, config={"callbacks": [metrics]})
        metrics.snapshot()["retrievers"]["HybridRetriever"]["legs"]["vector"]["errors"]
        ```
    """

    raise_error = False
    run_inline = True

    def __init__(
        self,
        window: int = 10_000,
        *,
        max_series: int = 1_000,
        max_in_flight: int = 10_000,
        max_recent_errors: int = 20,
        log_errors: bool = False,
    ) -> None:
        """Create an empty handler (see the class docstring for the arguments)."""
        self.window = positive("window", window)
        self.max_series = positive("max_series", max_series)
        self.max_in_flight = positive("max_in_flight", max_in_flight)
        self.log_errors = log_errors
        self._lock = threading.Lock()
        self._in_flight: OrderedDict[UUID, _Run] = OrderedDict()  # O(1) eviction of the oldest
        self._series: dict[tuple[str, str], _Series] = {}
        # the names given a series of their own: retriever name -> its leg names (both bounded)
        self._names: dict[str, set[str]] = {}
        self._overflow = 0
        self._errors: deque[tuple[float, str, str, str]] = deque(
            maxlen=positive("max_recent_errors", max_recent_errors)
        )
        self._evicted = 0
        self._unmatched = 0

    # ------------------------------------------------------------------ callbacks
    def on_retriever_start(
        self,
        serialized: dict[str, Any],
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Remember when the run started and whether it is a retrieval or a leg."""
        try:
            started = time.perf_counter()
            name = run_name(serialized, kwargs)
            with self._lock:
                parent = self._in_flight.get(parent_run_id) if parent_run_id else None
                if parent is None:
                    run = _Run(started, (self._retriever_name(name), ALL), None)
                elif parent.key is not None and parent.key[1] == ALL:
                    retriever = parent.key[0]
                    run = _Run(started, (retriever, self._leg_name(retriever, name)), parent_run_id)
                else:
                    run = _Run(started, None, None)
                in_flight = self._in_flight
                if len(in_flight) >= self.max_in_flight:
                    in_flight.popitem(last=False)
                    self._evicted += 1
                in_flight[run_id] = run
        except Exception:  # a metrics failure must never break retrieval
            logger.debug("on_retriever_start not recorded", exc_info=True)

    def _retriever_name(self, name: str) -> str:
        """The series name of a retrieval called ``name`` (call with the lock held)."""
        names = self._names
        if name in names:
            return name
        if len(names) - (OTHER in names) < self.max_series:
            names[name] = set()
            return name
        self._overflow_run("retriever names", self.max_series)
        names.setdefault(OTHER, set())  # the one series beyond max_series
        return OTHER

    def _leg_name(self, retriever: str, leg: str) -> str:
        """The series name of leg ``leg`` of ``retriever`` (call with the lock held)."""
        legs = self._names.setdefault(retriever, set())
        if leg in legs:
            return leg
        if len(legs) < MAX_LEGS:
            legs.add(leg)
            return leg
        self._overflow_run(f"leg names of {retriever!r}", MAX_LEGS)
        return OTHER

    def _overflow_run(self, what: str, bound: int) -> None:
        if not self._overflow:
            logger.warning(
                "metrics: more than %d %s; further new names are recorded as %r", bound, what, OTHER
            )
        self._overflow += 1

    def on_retriever_end(
        self,
        documents: Sequence[Any],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """Record a successful run: latency, documents, empty and degraded answers."""
        try:
            ended = time.perf_counter()
            pending = self._in_flight.get(run_id)  # a read: only retrievals need the scan
            if pending is not None and pending.key is not None and pending.key[1] == ALL:
                n_documents, marked = documents_info(documents)
            else:
                n_documents, marked = count_documents(documents), None
            with self._lock:
                run = self._in_flight.pop(run_id, None)
                if run is None:
                    self._unmatched += 1
                    return
                key = run.key
                if key is None:
                    return
                series = self._series.get(key)
                if series is None:
                    series = self._series[key] = _Series(self.window)
                latency = ended - run.started
                degraded = key[1] == ALL and (marked is not None or run.leg_failed)
                series.record(latency)
                if not n_documents:
                    series.empty += 1
                if degraded:
                    series.degraded += 1
                series.window.append((ended, latency, n_documents, degraded))
        except Exception:
            logger.debug("on_retriever_end not recorded", exc_info=True)

    def on_retriever_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """Record a failed run; a failed leg marks its retrieval as degraded."""
        try:
            ended = time.perf_counter()
            text = error_text(error)
            with self._lock:
                run = self._in_flight.pop(run_id, None)
                if run is None:
                    self._unmatched += 1
                    return
                key = run.key
                if key is None:
                    return
                series = self._series.get(key)
                if series is None:
                    series = self._series[key] = _Series(self.window)
                latency = ended - run.started
                series.record(latency)
                series.errors += 1
                series.window.append((ended, latency, -1, False))
                if run.parent is not None:
                    parent = self._in_flight.get(run.parent)
                    if parent is not None:
                        parent.leg_failed = True
                self._errors.append((time.time(), key[0], key[1], text))
            if self.log_errors:
                logger.warning("retrieval failed: retriever=%s leg=%s error=%s", *key, text)
        except Exception:
            logger.debug("on_retriever_error not recorded", exc_info=True)

    def on_custom_event(
        self,
        name: str,
        data: Any,
        *,
        run_id: UUID,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Count cache hits and misses (the ``langchain_hybrid.cache`` event)."""
        try:
            if name != CACHE_EVENT or not isinstance(data, Mapping):
                return
            hit = data.get("hit")
            if not isinstance(hit, bool):
                return
            with self._lock:
                run = self._in_flight.get(run_id)
                if run is None or run.key is None:
                    self._unmatched += 1
                    return
                run.cache_hit = hit
                series = self._series.get(run.key)
                if series is None:
                    series = self._series[run.key] = _Series(self.window)
                if hit:
                    series.cache_hits += 1
                else:
                    series.cache_misses += 1
        except Exception:
            logger.debug("on_custom_event not recorded", exc_info=True)

    # ------------------------------------------------------------------ reading
    def reset(self) -> None:
        """Forget every counter, window and recent error (runs in flight are still paired)."""
        with self._lock:
            self._series.clear()
            self._errors.clear()
            self._evicted = 0
            self._unmatched = 0
            self._overflow = 0
            self._names = {}
            for run in self._in_flight.values():  # their names keep their series
                if run.key is not None:
                    retriever, leg = run.key
                    legs = self._names.setdefault(retriever, set())
                    if leg != ALL:
                        legs.add(leg)

    def recent_errors(self) -> list[dict[str, str]]:
        """The last errors, oldest first, as ``time`` (UTC), ``retriever``, ``leg``, ``error``.

        ``time`` is ISO 8601; ``leg`` is ``"all"`` for a failed retrieval, else the leg's name.
        """
        with self._lock:
            errors = list(self._errors)
        return [
            {
                "time": datetime.fromtimestamp(at, timezone.utc).isoformat(timespec="milliseconds"),
                "retriever": retriever,
                "leg": leg,
                "error": text,
            }
            for at, retriever, leg, text in errors
        ]

    def window_records(
        self,
        name: str | None = None,
        *,
        last: int | None = None,
        max_age_seconds: float | None = None,
    ) -> list[_Record]:
        """Window records of retrievals (all retriever names, or ``name``), oldest first.

        Args:
            name: one retriever name; ``None`` merges every retrieval series.
            last: keep only the most recent ``last`` records.
            max_age_seconds: keep only records that ended within this many seconds.
        """
        with self._lock:
            records = [
                record
                for (retriever, leg), series in self._series.items()
                if leg == ALL and (name is None or retriever == name)
                for record in series.window
            ]
        if max_age_seconds is not None:
            oldest = time.perf_counter() - max_age_seconds
            records = [r for r in records if r[0] >= oldest]
        records.sort(key=lambda r: r[0])
        if last is not None:
            records = records[-last:] if last > 0 else []
        return records

    def snapshot(self) -> dict[str, Any]:
        """Everything measured, as plain JSON-able data.

        Returns:
            ``{"window", "max_series", "overflow_runs", "in_flight", "evicted_in_flight",
            "unmatched_events", "retrievers": {name: series}, "recent_errors": [...]}``, where
            ``overflow_runs`` counts the runs recorded as ``"<other>"`` (their name came past
            ``max_series`` retriever names or :data:`MAX_LEGS` leg names), and a retrieval's
            series is ``count``, ``errors``, ``empty``, ``degraded`` (totals), ``error_rate``,
            ``empty_rate``, ``degraded_rate``, ``documents_mean``, ``latency_ms`` (p50, p95,
            p99, max, mean) and ``window_size`` (over the window), ``latency_sum_ms`` (total),
            ``latency_histogram`` (``le_seconds``: the finite bucket bounds; ``cumulative``: runs
            at or below each bound, since start, and last all runs (``+Inf``): the Prometheus
            histogram),
            ``cache`` (``hits``, ``misses``, ``hit_rate``) and ``legs`` (the same per leg,
            without ``degraded``, ``cache`` and ``legs``).
        """
        with self._lock:
            copied = [
                (
                    key,
                    (s.count, s.errors, s.empty, s.degraded, s.cache_hits, s.cache_misses),
                    s.latency_sum,
                    list(s.window),
                    list(itertools.accumulate(s.buckets)),
                )
                for key, s in self._series.items()
            ]
            in_flight, evicted, unmatched = len(self._in_flight), self._evicted, self._unmatched
            overflow = self._overflow
        retrievers: dict[str, dict[str, Any]] = {}
        legs: list[tuple[str, str, dict[str, Any]]] = []
        for (retriever, leg), totals, latency_sum, records, cumulative in sorted(
            copied, key=lambda c: c[0]
        ):
            count, errors, empty, degraded, hits, misses = totals
            stats = window_stats(records)
            series: dict[str, Any] = {
                "count": count,
                "errors": errors,
                "error_rate": stats["error_rate"],
                "empty": empty,
                "empty_rate": stats["empty_rate"],
                "documents_mean": stats["documents_mean"],
                "latency_ms": stats["latency_ms"],
                "latency_sum_ms": latency_sum * 1e3,
                "latency_histogram": {
                    "le_seconds": list(LATENCY_BUCKETS_SECONDS),
                    "cumulative": cumulative,
                },
                "window_size": stats["size"],
            }
            if leg == ALL:
                lookups = hits + misses
                series["degraded"] = degraded
                series["degraded_rate"] = stats["degraded_rate"]
                series["cache"] = {
                    "hits": hits,
                    "misses": misses,
                    "hit_rate": hits / lookups if lookups else 0.0,
                }
                series["legs"] = {}
                retrievers[retriever] = series
            else:
                legs.append((retriever, leg, series))
        for retriever, leg, series in legs:
            if retriever in retrievers:
                retrievers[retriever]["legs"][leg] = series
        return {
            "window": self.window,
            "max_series": self.max_series,
            "overflow_runs": overflow,
            "in_flight": in_flight,
            "evicted_in_flight": evicted,
            "unmatched_events": unmatched,
            "retrievers": retrievers,
            "recent_errors": self.recent_errors(),
        }
