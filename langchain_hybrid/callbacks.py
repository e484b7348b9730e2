"""Monitoring: retrieval metrics from LangChain callbacks, health checks, and exporters.

Four parts, each usable alone:

* :class:`RetrievalMetricsHandler`: a LangChain callback handler that pairs the start and end
  (or error) of every retriever run and keeps counters and bounded windows per retriever and
  per hybrid leg (``bm25``, ``vector``): counts, errors, empty results, degraded answers, cache
  hits, latency percentiles. :meth:`~RetrievalMetricsHandler.snapshot` returns plain data.
* :class:`HealthMonitor`: side-effect-free checks of a :class:`HybridRetriever` (vector store
  answers, BM25 index in sync, a write under way or left unfinished, recent error rate, latency
  and degraded answers) combined into a :class:`HealthStatus`;
  :meth:`~HealthMonitor.report_json` adds metrics, recent errors and a config summary (never
  secrets).
* Exporters: :class:`PrometheusExporter` / :func:`to_prometheus` / :func:`serve_metrics`
  (``pip install 'langchain-hybrid[prometheus]'``), :func:`log_snapshot` (one ``key=value`` log
  line), and :class:`OTelRetrievalHandler`, one OpenTelemetry span per retriever run
  (``pip install 'langchain-hybrid[otel]'``). The optional packages are imported when an
  exporter is created, never when this module is imported.

Usage:
    ```python
    from langchain_hybrid.callbacks import (
        HealthMonitor, RetrievalMetricsHandler, serve_metrics)

    metrics = RetrievalMetricsHandler()
    chain = retriever | format_docs | prompt | llm
    chain.invoke("question", config={"callbacks": [metrics]})
    metrics.snapshot()["retrievers"]["HybridRetriever"]["latency_ms"]["p95"]

    monitor = HealthMonitor(retriever, metrics)
    monitor.health_check().status          # "healthy" | "degraded" | "unhealthy"
    server = serve_metrics(metrics, monitor, port=9464)   # GET /metrics
    ```
"""

from __future__ import annotations

import bisect
import itertools
import json
import logging
import math
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.embeddings import Embeddings

from langchain_hybrid.config import HybridConfig, MonitoringSettings, make_embedding
from langchain_hybrid.errors import ConfigError, IndexNotBuiltError
from langchain_hybrid.index import CollectionState, HybridIndex, IndexStatus, SavedState
from langchain_hybrid.retrievers import CACHE_EVENT, LEGS, HybridRetriever
from langchain_hybrid.stores import ChromaStore

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, TracerProvider
    from prometheus_client.registry import CollectorRegistry
    from typing_extensions import Self

logger = logging.getLogger(__name__)

ALL = "all"
"""The ``leg`` label of a retrieval as a whole (its legs are labelled ``bm25`` / ``vector``)."""
OTHER = "<other>"
"""The name that runs are recorded under once ``max_series`` (or the leg bound) is reached."""
MAX_LEGS = 16
"""Leg names kept per retriever name; further leg names are recorded as :data:`OTHER`."""
Status = Literal["healthy", "degraded", "unhealthy"]
CheckStatus = Literal["healthy", "degraded", "unhealthy", "skipped"]
_SEVERITY: dict[str, int] = {"skipped": -1, "healthy": 0, "degraded": 1, "unhealthy": 2}
_STATUS_BY_SEVERITY: tuple[Status, Status, Status] = ("healthy", "degraded", "unhealthy")
_QUANTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
LATENCY_BUCKETS_SECONDS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
)  # fmt: skip
"""Upper bounds of the latency histogram's buckets: 0.1 ms (a cached answer) to 10 s."""
_ERROR_TEXT = 300
_PROMETHEUS_HINT = "pip install 'langchain-hybrid[prometheus]'"
_OTEL_HINT = "pip install 'langchain-hybrid[otel]'"


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        msg = f"{name} must be an integer >= 1, got {value!r}"
        raise ConfigError(msg)
    return value


# ---------------------------------------------------------------------- metrics
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


def _count(documents: object) -> int:
    if type(documents) is list:  # the usual case, without an ABC check
        return len(documents)
    return len(documents) if isinstance(documents, Sequence) else 0


def _documents_info(documents: object) -> tuple[int, str | None]:
    """Number of documents and the failed legs named by ``metadata["degraded"]``, if any.

    Only the first document is read: :class:`HybridRetriever` marks every document of a
    degraded answer (and an empty degraded answer is caught by its failed leg's error event).
    """
    n = _count(documents)
    if not n:
        return 0, None
    metadata = getattr(documents[0], "metadata", None)  # type: ignore[index]
    degraded = metadata.get("degraded") if isinstance(metadata, dict) else None
    return n, None if degraded is None else str(degraded)


def _run_name(serialized: object, kwargs: Mapping[str, Any]) -> str:
    name = kwargs.get("name")
    if not name and isinstance(serialized, Mapping):
        name = serialized.get("name")
    return str(name) if name else "retriever"


def _error_text(error: object) -> str:
    text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
    return text if len(text) <= _ERROR_TEXT else text[: _ERROR_TEXT - 3] + "..."


class _RetrieverEventsOnly(BaseCallbackHandler):
    """Skip every event but retriever runs and custom events, before any work is done."""

    @property
    def ignore_llm(self) -> bool:
        """LLM events are not observed."""
        return True

    @property
    def ignore_chat_model(self) -> bool:
        """Chat model events are not observed."""
        return True

    @property
    def ignore_chain(self) -> bool:
        """Chain events are not observed."""
        return True

    @property
    def ignore_agent(self) -> bool:
        """Agent events are not observed."""
        return True

    @property
    def ignore_retry(self) -> bool:
        """Retry events are not observed."""
        return True


class RetrievalMetricsHandler(_RetrieverEventsOnly):
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
        self.window = _positive("window", window)
        self.max_series = _positive("max_series", max_series)
        self.max_in_flight = _positive("max_in_flight", max_in_flight)
        self.log_errors = log_errors
        self._lock = threading.Lock()
        self._in_flight: OrderedDict[UUID, _Run] = OrderedDict()  # O(1) eviction of the oldest
        self._series: dict[tuple[str, str], _Series] = {}
        # the names given a series of their own: retriever name -> its leg names (both bounded)
        self._names: dict[str, set[str]] = {}
        self._overflow = 0
        self._errors: deque[tuple[float, str, str, str]] = deque(
            maxlen=_positive("max_recent_errors", max_recent_errors)
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
            name = _run_name(serialized, kwargs)
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
                n_documents, marked = _documents_info(documents)
            else:
                n_documents, marked = _count(documents), None
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
            text = _error_text(error)
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


# ---------------------------------------------------------------------- health
@dataclass(frozen=True, slots=True)
class HealthCheck:
    """One health rule's outcome.

    Attributes:
        name: the rule (``vector_store``, ``bm25_index``, ``bm25_files``, ``error_rate``,
            ``latency_p95``, ``degraded_answers``, or an extra check's name).
        status: ``healthy``, ``degraded``, ``unhealthy``, or ``skipped`` (not evaluated, e.g.
            too little traffic; a skipped check does not change the overall status).
        detail: a sentence for people.
        value: the measured value (a count, a rate, milliseconds), if any.
    """

    name: str
    status: CheckStatus
    detail: str
    value: float | int | str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The check as plain data."""
        return {
            "name": self.name,
            "status": self.status,
            "detail": self.detail,
            "value": self.value,
        }


@dataclass(frozen=True, slots=True)
class HealthStatus:
    """The overall health: the worst status of the checks (skipped ones aside)."""

    status: Status
    checks: tuple[HealthCheck, ...]
    checked_at: datetime

    @classmethod
    def from_checks(cls, checks: Iterable[HealthCheck]) -> HealthStatus:
        """Combine checks: ``unhealthy`` > ``degraded`` > ``healthy``; ``skipped`` is ignored."""
        checks = tuple(checks)
        worst = max((_SEVERITY[c.status] for c in checks), default=0)
        return cls(_STATUS_BY_SEVERITY[max(worst, 0)], checks, datetime.now(timezone.utc))

    @property
    def exit_code(self) -> int:
        """0 healthy, 1 degraded, 2 unhealthy (what ``langchain-hybrid health`` exits with)."""
        return _SEVERITY[self.status]

    def check(self, name: str) -> HealthCheck | None:
        """The check called ``name``, if it ran."""
        return next((c for c in self.checks if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """The status as plain JSON-able data."""
        return {
            "status": self.status,
            "checked_at": self.checked_at.isoformat(timespec="milliseconds"),
            "checks": [c.to_dict() for c in self.checks],
        }

    def format(self) -> str:
        """Lines for a terminal: the status, then one line per check."""
        width = max((len(c.name) for c in self.checks), default=0)
        lines = [f"status: {self.status} ({self.checked_at.isoformat(timespec='seconds')})"]
        lines += [f"  {c.status:<9}  {c.name:<{width}}  {c.detail}" for c in self.checks]
        return "\n".join(lines)


HealthRule = Callable[[], HealthCheck]


def _run_rule(rule: HealthRule) -> HealthCheck:
    try:
        return rule()
    except Exception as e:  # noqa: BLE001 - a broken check is reported, not raised
        name = getattr(rule, "__name__", type(rule).__name__)
        return HealthCheck(name, "unhealthy", f"check failed: {_error_text(e)}")


class _Write(NamedTuple):
    """A write seen unfinished: under way, or ``dead`` (it will not finish by itself)."""

    detail: str
    dead: bool


def _lag(
    generation: object, documents: object, seen: CollectionState, write: _Write | None
) -> str | None:
    """How an index at ``generation`` with ``documents`` is out of sync with ``seen``, if it is.

    With no write under way, both must match. While one is (``write``), the count is not
    compared, and the index must be at the generation before that write or newer.
    """
    if write is None:
        if (generation, documents) == (seen.generation, seen.documents):
            return None
        return (
            f"generation {generation} vs {seen.generation}, {documents} vs {seen.documents} "
            "documents"
        )
    if isinstance(generation, int) and seen.before <= generation <= seen.latest:
        return None
    return f"generation {generation}, behind generation {seen.before}; {write.detail}"


_REPLICA_GAUGES = {
    "replica_feed": (
        "replica_feed_unapplied_records",
        "Change-feed records this replica has not applied yet (http stores).",
    ),
    "replica_lag": (
        "replica_seconds_since_caught_up",
        "Seconds since this replica had applied every completed write it could see.",
    ),
}


def _replica_checks(state: IndexStatus, limit: float | None) -> list[HealthCheck]:
    """A replica's change-feed lag (``http`` stores; see :mod:`langchain_hybrid.feed`).

    Degraded when the replica has not been caught up for more than ``limit`` seconds.
    """
    unapplied, since = state.feed_unapplied, state.seconds_since_caught_up
    guarantee = (
        "vouches for writes through langchain-hybrid, and for foreign writes that change the "
        f"document count (detected and repaired so far: {state.foreign_writes}); a foreign "
        "write that keeps the count is not seen: retriever.index.resync() repairs it"
    )
    if unapplied is None:
        detail = f"change feed not readable; {guarantee}"
        return [HealthCheck("replica_feed", "degraded", detail)]
    late = limit is not None and since is not None and since > limit
    status: CheckStatus = "degraded" if late else "healthy"
    ago = "never" if since is None else f"{since:.1f} s ago"
    return [
        HealthCheck(
            "replica_feed", status, f"{unapplied} feed records not applied; {guarantee}", unapplied
        ),
        HealthCheck(
            "replica_lag",
            status,
            f"last caught up with the change feed {ago} (degraded after {limit} s)",
            since,
        ),
    ]


class HealthMonitor:
    """Side-effect-free health checks of a :class:`HybridRetriever`, and a JSON report.

    :meth:`health_check` runs these rules; the overall status is the worst of them:

    1. ``vector_store``: ``store.heartbeat()`` and ``store.count()`` answer -> healthy. If they
       fail, the vector leg is down: *degraded* while another active leg (weight > 0) works,
       since the retriever then answers from it (``on_leg_error="degrade"``), *unhealthy* when
       no active leg works.
    2. ``bm25_index``: the in-memory BM25 index is loaded (``len()`` answers) and in sync with
       the collection (same write generation and document count) -> healthy; out of sync ->
       degraded (another process wrote; the next query after ``refresh_interval_seconds``, or
       ``retriever.refresh()``, resyncs it). Not loaded: degraded while the vector leg works,
       else unhealthy. Sync is not compared while the vector store is down.
    3. ``bm25_files`` (only with a ``bm25_path``): the saved BM25 manifest exists, was saved
       with the retriever's BM25 settings and matches the collection's generation and count ->
       healthy; missing, corrupt or behind -> degraded (the next open rebuilds it from Chroma;
       also transiently true inside ``deferred_save``).

       *A write under way is not a degradation.* Writers make the generation odd before a
       write and even once both legs have it (:meth:`ChromaStore.begin_write` / ``end_write``),
       so the collection is read as a seqlock: generation, count, generation again. An odd
       generation ``N``, or two reads that differ, is a write under way: rules 2 and 3 then do
       not compare counts, and pass (``a write is under way (generation N)`` in their detail)
       if the index, or the saved files, are at generation ``N - 1`` (the one before the
       write) or newer; older -> degraded, as they are behind a write that ended before this
       one began (or, if ``N - 1`` was skipped because the write before never ended, may miss
       that write's changes).

       *A dead write is*: it makes rules 2 and 3 degraded, saying so. A write is dead when the
       generation is odd and either (embedded ``persistent`` store) no process holds the
       writer lock (probed without taking it, see below): its writer died, and the next open
       of the index (``HybridRetriever.load`` / ``from_store``) or ``refresh()`` marks it
       complete, a health check does not; or (any store) this monitor's checks have seen the
       same odd generation for more than ``stuck_write_seconds`` (default 60 s): a write that
       long, or one that failed midway and was never ended (the writer's next write ends it).
       A one-off check, such as the CLI's, can only tell the first kind.
    4. Traffic rules, over the handler's last ``settings.window`` retrievals (and only those
       that ended within ``max_age_seconds``, if given), evaluated only when at least
       ``settings.min_requests`` of them exist, else *skipped*: so a cold start with no traffic
       is healthy, and so is a process (such as the CLI) that has no handler at all.

       * ``error_rate`` (failed retrievals / retrievals) above ``error_rate_threshold`` ->
         degraded; every one of them failed -> unhealthy.
       * ``latency_p95`` above ``p95_threshold_ms`` -> degraded.
       * ``degraded_answers`` (answers served by fewer legs / successful answers) above
         ``degraded_rate_threshold`` -> degraded.

       These look back over recorded traffic: after an outage they stay degraded until the
       bad retrievals leave the window (enough new good traffic) or age past
       ``max_age_seconds``. Size ``window`` to a few minutes of traffic, or set
       ``max_age_seconds``.
    5. ``replica_feed`` and ``replica_lag`` (``http`` stores, whose replicas follow the change
       feed, :mod:`langchain_hybrid.feed`): feed records not applied yet (value) and seconds
       since the replica was last caught up (value, its own clock); degraded when that exceeds
       ``stuck_write_seconds``. The detail states what the replica vouches for.
    6. ``extra_checks``: callables returning a :class:`HealthCheck` (a raised exception becomes
       an unhealthy check naming it).

    Nothing is written and no query runs: the retriever's result cache is not read (its
    statistics do not move), the BM25 index is not rebuilt, nothing is embedded, a dead write is
    reported but not settled. The writer lock is never taken: an odd generation is checked
    against it with a non-blocking shared ``flock`` on ``<path>/.writer.lock``, released at
    once (a writer waiting for the lock polls for a second, so it is not refused). The monitor
    remembers only when it first saw the current odd generation.

    Key init args:
        retriever: the retriever to check.
        metrics: the handler that measures its traffic (``None``: traffic rules skipped).
        settings: thresholds (default :class:`MonitoringSettings()`).
        name: the retriever name whose traffic counts (``None``: every retrieval the handler
            measured).
        max_age_seconds: ignore retrievals that ended longer ago than this.
        stuck_write_seconds: an odd generation seen for longer than this by this monitor's
            checks is a dead write (default 60; ``None``: only the writer lock tells). Raise it
            if single writes (one ``add_documents`` call) take longer.
        extra_checks: more rules.

    Usage:
        ```python
        monitor = HealthMonitor(retriever, metrics, load_config("hybrid.yaml").monitoring)
        status = monitor.health_check()
        status.status, [c.name for c in status.checks if c.status != "healthy"]
        print(monitor.report_json())
        ```
    """

    def __init__(
        self,
        retriever: HybridRetriever,
        metrics: RetrievalMetricsHandler | None = None,
        settings: MonitoringSettings | None = None,
        *,
        name: str | None = None,
        max_age_seconds: float | None = None,
        stuck_write_seconds: float | None = 60.0,
        extra_checks: Sequence[HealthRule] = (),
    ) -> None:
        """Create a monitor (see the class docstring for the arguments)."""
        if stuck_write_seconds is not None and not stuck_write_seconds >= 0:
            msg = f"stuck_write_seconds must be >= 0 or None, got {stuck_write_seconds!r}"
            raise ConfigError(msg)
        self.retriever = retriever
        self.metrics = metrics
        self.settings = settings or MonitoringSettings()
        self.name = name
        self.max_age_seconds = max_age_seconds
        self.stuck_write_seconds = stuck_write_seconds
        self.extra_checks = tuple(extra_checks)
        self._odd_lock = threading.Lock()
        self._odd_since: tuple[int, float] | None = None  # (odd generation, first seen)
        self._last: tuple[float, HealthStatus] | None = None  # (monotonic time, result)
        self._last_lock = threading.Lock()

    @classmethod
    def from_config(
        cls,
        settings: HybridConfig,
        *,
        store: ChromaStore | None = None,
        embedding: Embeddings | None = None,
        metrics: RetrievalMetricsHandler | None = None,
    ) -> HealthMonitor:
        """Open the configured index read-only for health checks (what the CLI does).

        Nothing is created or saved: a missing index raises, the saved BM25 index is loaded as
        it is (stale or not, so that ``bm25_index`` can report it), and when it is missing,
        corrupt or built with other settings it is rebuilt in memory only (``bm25_files``
        reports it). No result cache is attached.

        Args:
            settings: the configuration.
            store: an opened store (default: the configured one, opened without creating).
            embedding: the embedding model (default: the configured one; loaded lazily).
            metrics: a handler measuring traffic, if any.

        Raises:
            IndexNotBuiltError: the index directory or collection does not exist.
            StoreUnavailableError: the store cannot be reached.
            ConfigError: the embedding provider cannot be created.
        """
        if store is None:
            config = settings.store
            if config.mode == "persistent" and not Path(config.path).is_dir():
                msg = f"no index at {config.path}"
                raise IndexNotBuiltError(msg)
            store = ChromaStore(config, create_if_missing=False)
        path = settings.bm25_path()
        index = HybridIndex.inspect(store, path, settings.bm25.params())
        if index.opened_from != "saved":
            logger.debug("saved BM25 index not used: %s", index.opened_from)
        retriever = HybridRetriever(
            store=store,
            bm25=index.bm25,
            embedding=embedding if embedding is not None else make_embedding(settings.embedding),
            bm25_path=path,
            **settings.retriever_fields(),
        )
        return cls(retriever, metrics, settings.monitoring)

    # ------------------------------------------------------------------ checks
    def recent_health_check(self) -> HealthStatus:
        """The last result if younger than ``settings.health_cache_seconds``, else a new one.

        For scrapes: several Prometheus servers (or a short scrape interval) then read Chroma
        at most once per ``health_cache_seconds``. :meth:`health_check` always runs the rules.
        """
        ttl = self.settings.health_cache_seconds
        with self._last_lock:
            last = self._last
            if ttl > 0 and last is not None and time.monotonic() - last[0] < ttl:
                return last[1]
            status = self.health_check()
            self._last = (time.monotonic(), status)
            return status

    def health_check(self) -> HealthStatus:
        """Run every rule (see the class docstring); never raises."""
        retriever = self.retriever
        state = retriever.index.status()
        seen = state.collection
        store_error = None if state.store_error is None else _error_text(state.store_error)
        write = self._unfinished_write(seen, dead=state.dead_write) if seen is not None else None
        available = {"vector": store_error is None, "bm25": state.bm25_error is None}
        active = [leg for leg, weight in zip(LEGS, retriever.weights, strict=True) if weight > 0]
        leg_down: CheckStatus = "degraded" if any(available[leg] for leg in active) else "unhealthy"

        checks = [
            HealthCheck(
                "vector_store", "healthy", f"answering, {seen.documents} documents", seen.documents
            )
            if seen is not None
            else HealthCheck("vector_store", leg_down, f"not answering: {store_error}")
        ]
        checks.append(self._bm25_index(state, write, leg_down))
        if retriever.index.feed is not None and seen is not None:
            checks.extend(_replica_checks(state, self.stuck_write_seconds))
        if state.saved is not None:
            checks.append(self._bm25_files(state.saved, seen, write))
        checks.extend(self._traffic_checks())
        checks.extend(_run_rule(rule) for rule in self.extra_checks)
        return HealthStatus.from_checks(checks)

    def _unfinished_write(self, seen: CollectionState, *, dead: bool) -> _Write | None:
        """The write under way (or dead) that ``seen`` shows; ``None``: none, ``seen`` is exact.

        ``dead``: the index found the writer of this odd generation dead (see
        :meth:`HybridIndex.status`).
        """
        if seen.latest != seen.generation:
            self._odd_age(seen.latest)
            detail = (
                f"a write is under way (generation {seen.generation} -> {seen.latest} during "
                "the check)"
            )
            return _Write(detail, dead=False)
        generation = seen.generation
        age = self._odd_age(generation)
        if generation % 2 == 0:
            return None
        config = self.retriever.store.config
        if dead:
            detail = (
                f"the write at generation {generation} never finished: no process holds the "
                f"writer lock of {config.path}, so its writer died (the next open of the index "
                "by HybridRetriever.load or from_store, or refresh(), marks it complete and "
                "resyncs BM25; health checks do not)"
            )
            return _Write(detail, dead=True)
        limit = self.stuck_write_seconds
        if limit is not None and age > limit:
            detail = (
                f"the write at generation {generation} never finished: the generation has "
                f"stayed odd for {age:.0f} s (stuck_write_seconds={limit:g}), a write that long "
                "or one that failed midway (the writer's next write completes it)"
            )
            return _Write(detail, dead=True)
        return _Write(f"a write is under way (generation {generation})", dead=False)

    def _odd_age(self, generation: int) -> float:
        """Seconds since this monitor first saw ``generation``, if odd (0 if even, or new)."""
        now = time.monotonic()
        with self._odd_lock:
            if generation % 2 == 0:
                self._odd_since = None
                return 0.0
            if self._odd_since is None or self._odd_since[0] != generation:
                self._odd_since = (generation, now)
            return now - self._odd_since[1]

    def _bm25_index(
        self, state: IndexStatus, write: _Write | None, leg_down: CheckStatus
    ) -> HealthCheck:
        seen, size, bm25_generation = state.collection, state.bm25_documents, state.bm25_generation
        error = None if state.bm25_error is None else _error_text(state.bm25_error)
        if error is not None:
            return HealthCheck("bm25_index", leg_down, f"not loaded: {error}")
        if seen is None:
            detail = f"loaded, {size} documents; sync not checked (the vector store is down)"
            return HealthCheck("bm25_index", "healthy", detail, size)
        status: CheckStatus = "healthy"
        if write is not None and write.dead:
            status = "degraded"
            detail = f"loaded, {size} documents, generation {bm25_generation}; {write.detail}"
        elif (lag := _lag(bm25_generation, size, seen, write)) is not None:
            status = "degraded"
            detail = (
                f"out of sync with the collection: {lag} (written by another process? the next "
                "query after refresh_interval_seconds, or refresh(), resyncs it)"
            )
        elif write is not None:
            detail = (
                f"loaded, {size} documents, generation {bm25_generation}; {write.detail}: sync "
                "is checked once it completes"
            )
        else:
            detail = f"loaded and in sync: {size} documents, generation {seen.generation}"
        return HealthCheck("bm25_index", status, detail, size)

    def _bm25_files(
        self, saved: SavedState, seen: CollectionState | None, write: _Write | None
    ) -> HealthCheck:
        path = saved.path
        if isinstance(saved.error, FileNotFoundError):
            detail = f"no saved BM25 index at {path}: the next open rebuilds it from Chroma"
            return HealthCheck("bm25_files", "degraded", detail)
        if saved.error is not None:
            detail = f"{saved.error}: the next open rebuilds it from Chroma"
            return HealthCheck("bm25_files", "degraded", detail)
        generation, documents = saved.generation, saved.documents
        status: CheckStatus = "healthy"
        detail = f"saved at {path}: {documents} documents, generation {generation}"
        if saved.params != self.retriever.bm25.params.model_dump(mode="json"):
            status = "degraded"
            detail = f"saved at {path} with other BM25 settings: the next open rebuilds it"
        elif seen is None:
            pass  # the vector store is down: nothing to compare with
        elif write is not None and write.dead:
            status = "degraded"
            detail = f"{detail}; {write.detail}"
        elif (lag := _lag(generation, documents, seen, write)) is not None:
            status = "degraded"
            detail = (
                f"saved index at {path} is behind the collection: {lag} (the next open rebuilds it)"
            )
        elif write is not None:
            detail = f"{detail}; {write.detail}"
        return HealthCheck("bm25_files", status, detail, documents)

    def _traffic_checks(self) -> list[HealthCheck]:
        names = ("error_rate", "latency_p95", "degraded_answers")
        settings = self.settings
        if self.metrics is None:
            return [HealthCheck(n, "skipped", "no metrics handler attached") for n in names]
        records = self.metrics.window_records(
            self.name, last=settings.window, max_age_seconds=self.max_age_seconds
        )
        if len(records) < settings.min_requests:
            detail = (
                f"{len(records)} retrievals recorded; the rule applies from {settings.min_requests}"
            )
            return [HealthCheck(n, "skipped", detail, len(records)) for n in names]
        stats = window_stats(records)
        size = stats["size"]
        checks = []
        error_rate: float = stats["error_rate"]
        status: CheckStatus = "healthy"
        if error_rate >= 1.0:
            status = "unhealthy"
        elif error_rate > settings.error_rate_threshold:
            status = "degraded"
        detail = (
            f"{stats['errors']} of the last {size} retrievals failed ({error_rate:.1%}; "
            f"threshold {settings.error_rate_threshold:.1%})"
        )
        checks.append(HealthCheck("error_rate", status, detail, error_rate))
        p95: float = stats["latency_ms"]["p95"]
        status = "degraded" if p95 > settings.p95_threshold_ms else "healthy"
        detail = (
            f"p95 {p95:.1f} ms over the last {size} retrievals "
            f"(threshold {settings.p95_threshold_ms:g} ms)"
        )
        checks.append(HealthCheck("latency_p95", status, detail, p95))
        rate: float = stats["degraded_rate"]
        status = "degraded" if rate > settings.degraded_rate_threshold else "healthy"
        detail = (
            f"{rate:.1%} of the last successful answers came from fewer legs "
            f"(threshold {settings.degraded_rate_threshold:.1%})"
        )
        checks.append(HealthCheck("degraded_answers", status, detail, rate))
        return checks

    # ------------------------------------------------------------------ reports
    def config_summary(self) -> dict[str, Any]:
        """The retriever's settings that explain its behaviour; never a token or header."""
        retriever = self.retriever
        store = retriever.store.config
        location: str | None = store.path if store.mode == "persistent" else None
        if store.mode == "http":
            location = f"http{'s' if store.ssl else ''}://{store.host}:{store.port}"
        return {
            "k": retriever.k,
            "fetch_k": retriever.fetch_k,
            "fusion": retriever.fusion,
            "rrf_k": retriever.rrf_k,
            "weights": list(retriever.weights),
            "on_leg_error": retriever.on_leg_error,
            "refresh_interval_seconds": retriever.refresh_interval_seconds,
            "cache": retriever.cache is not None,
            "collection": store.collection,
            "store_mode": store.mode,
            "store_location": location,
            "bm25_path": str(retriever.bm25_path) if retriever.bm25_path else None,
        }

    def report(self, status: HealthStatus | None = None) -> dict[str, Any]:
        """Health, metrics snapshot, recent errors and config summary as plain data.

        Args:
            status: a status already computed (default: run :meth:`health_check`).
        """
        status = status or self.health_check()
        snapshot = self.metrics.snapshot() if self.metrics is not None else None
        errors = snapshot.pop("recent_errors") if snapshot is not None else []
        return {
            "health": status.to_dict(),
            "metrics": snapshot,
            "recent_errors": errors,
            "config": self.config_summary(),
        }

    def report_json(self, status: HealthStatus | None = None, *, indent: int | None = 2) -> str:
        """:meth:`report` as a JSON string."""
        return json.dumps(self.report(status), indent=indent, ensure_ascii=False)


# ---------------------------------------------------------------------- logs
_KEY_UNSAFE = re.compile(r"[^\w.-]+")


def log_snapshot(
    handler: RetrievalMetricsHandler,
    logger: logging.Logger | None = None,
    *,
    level: int = logging.INFO,
) -> str:
    """Log the metrics as one line of ``key=value`` pairs (and return the line).

    Keys are ``<retriever>.<metric>`` and ``<retriever>.<leg>.<metric>`` (names made safe:
    anything but letters, digits, ``_``, ``.`` and ``-`` becomes ``_``); latencies in ms.
    Example: ``retrieval_metrics HybridRetriever.count=50 HybridRetriever.p95_ms=3.1 ...``.

    Args:
        handler: the metrics handler.
        logger: where to log (default: this module's logger).
        level: the log level (default INFO).
    """
    parts = ["retrieval_metrics"]
    snapshot = handler.snapshot()
    for name, series in snapshot["retrievers"].items():
        prefix = _KEY_UNSAFE.sub("_", name)
        parts += _log_pairs(prefix, series)
        cache = series["cache"]
        parts += [
            f"{prefix}.degraded={series['degraded']}",
            f"{prefix}.cache_hits={cache['hits']}",
            f"{prefix}.cache_misses={cache['misses']}",
        ]
        for leg, leg_series in series["legs"].items():
            parts += _log_pairs(f"{prefix}.{_KEY_UNSAFE.sub('_', leg)}", leg_series)
    if len(parts) == 1:
        parts.append("retrievals=0")
    line = " ".join(parts)
    (logger or globals()["logger"]).log(level, "%s", line)
    return line


def _log_pairs(prefix: str, series: Mapping[str, Any]) -> list[str]:
    def number(value: object) -> str:
        return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)

    pairs = [
        f"{prefix}.{key}={number(series[key])}"
        for key in ("count", "errors", "error_rate", "empty_rate", "documents_mean")
    ]
    pairs += [f"{prefix}.{key}_ms={number(value)}" for key, value in series["latency_ms"].items()]
    return pairs


# ---------------------------------------------------------------------- prometheus
def _prometheus() -> Any:
    try:
        import prometheus_client  # noqa: PLC0415
        import prometheus_client.core  # noqa: PLC0415
    except ImportError as e:
        msg = f"Prometheus export needs prometheus_client: {_PROMETHEUS_HINT}"
        raise ConfigError(msg) from e
    return prometheus_client


class PrometheusExporter:
    """A ``prometheus_client`` collector that reads the metrics (and health) at scrape time.

    Families (``namespace`` prefix, default ``langchain_hybrid``; labels ``retriever`` and
    ``leg``, where ``leg="all"`` is the retrieval as a whole and ``bm25``/``vector`` its legs:
    filter on ``leg`` rather than summing over it):

    * counters ``_retrievals_total``, ``_retrieval_errors_total``, ``_empty_results_total``
      {retriever, leg}; ``_degraded_results_total``, ``_cache_hits_total``,
      ``_cache_misses_total`` {retriever};
    * histogram ``_retrieval_latency_seconds`` {retriever, leg, le}: cumulative buckets from
      0.1 ms to 10 s (:data:`LATENCY_BUCKETS_SECONDS`), ``_count`` and ``_sum``, all totals since
      start, so they sum across processes and any quantile is computed server-side
      (``histogram_quantile(0.95, sum by (le) (rate(..._bucket[5m])))``); gauges
      ``_retrieval_latency_max_seconds`` and ``_documents_returned_mean`` (window);
    * gauge ``_in_flight_retrievals``;
    * with a monitor: gauges ``_health_status`` (0 healthy, 1 degraded, 2 unhealthy) and
      ``_health_check_status`` {check} (same values; skipped checks are left out). The health
      checks (a heartbeat and three reads of the collection; while a write is under way, a
      non-blocking probe of the writer lock and one more read) run at most once per
      ``monitoring.health_cache_seconds`` (default 2 s): scrapes in between reuse the result.

    Raises:
        ConfigError: ``prometheus_client`` is not installed
            (``pip install 'langchain-hybrid[prometheus]'``).
    """

    def __init__(
        self,
        handler: RetrievalMetricsHandler,
        monitor: HealthMonitor | None = None,
        *,
        namespace: str = "langchain_hybrid",
    ) -> None:
        """Create the collector; register it with :func:`to_prometheus` or a registry."""
        self._client = _prometheus()
        self.handler = handler
        self.monitor = monitor
        self.namespace = namespace

    def describe(self) -> list[Any]:
        """No fixed description: the families depend on the traffic seen."""
        return []

    def collect(self) -> Iterator[Any]:
        """Build the metric families from a fresh snapshot."""
        core = self._client.core
        ns = self.namespace
        snapshot = self.handler.snapshot()
        by_leg = ["retriever", "leg"]
        retrievals = core.CounterMetricFamily(
            f"{ns}_retrievals", "Completed retriever runs, failed ones included.", labels=by_leg
        )
        errors = core.CounterMetricFamily(
            f"{ns}_retrieval_errors", "Failed retriever runs.", labels=by_leg
        )
        empty = core.CounterMetricFamily(
            f"{ns}_empty_results", "Successful retriever runs with no documents.", labels=by_leg
        )
        degraded = core.CounterMetricFamily(
            f"{ns}_degraded_results",
            "Retrievals answered by fewer legs than asked (a leg failed).",
            labels=["retriever"],
        )
        hits = core.CounterMetricFamily(
            f"{ns}_cache_hits", "Retrievals served from the result cache.", labels=["retriever"]
        )
        misses = core.CounterMetricFamily(
            f"{ns}_cache_misses", "Retrievals computed on a cache miss.", labels=["retriever"]
        )
        latency = core.HistogramMetricFamily(
            f"{ns}_retrieval_latency_seconds",
            "Retriever run latency (failed runs included), since start.",
            labels=by_leg,
        )
        latency_max = core.GaugeMetricFamily(
            f"{ns}_retrieval_latency_max_seconds",
            "Slowest retriever run in the recent window.",
            labels=by_leg,
        )
        documents = core.GaugeMetricFamily(
            f"{ns}_documents_returned_mean",
            "Mean documents per successful run in the recent window.",
            labels=by_leg,
        )
        for name, series in snapshot["retrievers"].items():
            rows = [(ALL, series), *series["legs"].items()]
            for leg, data in rows:
                labels = [name, leg]
                retrievals.add_metric(labels, data["count"])
                errors.add_metric(labels, data["errors"])
                empty.add_metric(labels, data["empty"])
                histogram = data["latency_histogram"]
                latency.add_metric(
                    labels,
                    buckets=[
                        ("+Inf" if math.isinf(le) else repr(le), count)
                        for le, count in zip(
                            [*histogram["le_seconds"], math.inf],
                            histogram["cumulative"],
                            strict=True,
                        )
                    ],
                    sum_value=data["latency_sum_ms"] / 1e3,
                )
                if data["latency_ms"]["max"] is not None:
                    latency_max.add_metric(labels, data["latency_ms"]["max"] / 1e3)
                if data["documents_mean"] is not None:
                    documents.add_metric(labels, data["documents_mean"])
            degraded.add_metric([name], series["degraded"])
            hits.add_metric([name], series["cache"]["hits"])
            misses.add_metric([name], series["cache"]["misses"])
        yield from (retrievals, errors, empty, degraded, hits, misses, latency, latency_max)
        yield documents
        yield core.GaugeMetricFamily(
            f"{ns}_in_flight_retrievals",
            "Retriever runs started and not ended.",
            value=snapshot["in_flight"],
        )
        if self.monitor is not None:
            status = self.monitor.recent_health_check()
            yield core.GaugeMetricFamily(
                f"{ns}_health_status",
                "Overall health: 0 healthy, 1 degraded, 2 unhealthy.",
                value=status.exit_code,
            )
            checks = core.GaugeMetricFamily(
                f"{ns}_health_check_status",
                "Each health check: 0 healthy, 1 degraded, 2 unhealthy (skipped ones left out).",
                labels=["check"],
            )
            for check in status.checks:
                if check.status != "skipped":
                    checks.add_metric([check.name], _SEVERITY[check.status])
            yield checks
            for check in status.checks:  # a replica of an http store: its change-feed lag
                if check.name in _REPLICA_GAUGES and isinstance(check.value, int | float):
                    name, text = _REPLICA_GAUGES[check.name]
                    yield core.GaugeMetricFamily(f"{ns}_{name}", text, value=check.value)


def to_prometheus(
    handler: RetrievalMetricsHandler,
    registry: CollectorRegistry | None = None,
    *,
    monitor: HealthMonitor | None = None,
    namespace: str = "langchain_hybrid",
) -> PrometheusExporter:
    """Register a :class:`PrometheusExporter` for ``handler`` (and ``monitor``).

    Args:
        handler: the metrics handler.
        registry: where to register (default: ``prometheus_client.REGISTRY``, which your app's
            ``start_http_server`` or ASGI/WSGI app already serves).
        monitor: add the health gauges.
        namespace: the metric name prefix.

    Returns:
        The exporter (``registry.unregister(exporter)`` removes it).

    Raises:
        ConfigError: ``prometheus_client`` is not installed.
    """
    exporter = PrometheusExporter(handler, monitor, namespace=namespace)
    target = registry if registry is not None else _prometheus().REGISTRY
    target.register(exporter)
    return exporter


@dataclass(slots=True)
class MetricsServer:
    """A running ``/metrics`` HTTP server (from :func:`serve_metrics`); ``close()`` stops it."""

    server: WSGIServer
    thread: threading.Thread
    registry: CollectorRegistry
    exporter: PrometheusExporter

    @property
    def port(self) -> int:
        """The bound port (useful after ``port=0``)."""
        return int(self.server.server_port)

    @property
    def url(self) -> str:
        """The metrics URL."""
        address = self.server.server_address[0]
        host = address.decode() if isinstance(address, bytes) else str(address)
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the port."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> Self:
        """Use as a context manager: the server stops when the block ends."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop the server."""
        self.close()


def serve_metrics(
    handler: RetrievalMetricsHandler,
    monitor: HealthMonitor | None = None,
    *,
    port: int = 9464,
    addr: str = "127.0.0.1",
    registry: CollectorRegistry | None = None,
) -> MetricsServer:
    """Serve the Prometheus text format at ``http://addr:port/metrics`` in a daemon thread.

    Call it in the process that runs the retriever (the handler only sees that process's
    traffic). Binds to loopback by default; pass ``addr="0.0.0.0"`` to expose it.

    Args:
        handler: the metrics handler attached to your chains.
        monitor: also serve the health gauges (see :meth:`HealthMonitor.recent_health_check`).
        port: the TCP port (``0``: any free port, see :attr:`MetricsServer.port`).
        addr: the address to bind.
        registry: the registry to serve (default: a new one holding only these metrics; pass
            ``prometheus_client.REGISTRY`` to serve the process metrics and your own too).

    Raises:
        ConfigError: ``prometheus_client`` is not installed.
        OSError: the port is taken.
    """
    client = _prometheus()
    registry = registry if registry is not None else client.CollectorRegistry()
    exporter = to_prometheus(handler, registry, monitor=monitor)
    server, thread = client.start_http_server(port, addr=addr, registry=registry)
    return MetricsServer(server, thread, registry, exporter)


# ---------------------------------------------------------------------- opentelemetry
class OTelRetrievalHandler(_RetrieverEventsOnly):
    """One OpenTelemetry span per retriever run; legs are child spans of their retrieval.

    A retrieval's span is a child of the current span when the retrieval starts (so it nests
    under your request's span); leg spans are children of the retrieval's span, whatever thread
    they run in. Span names are the run names (``HybridRetriever``, ``bm25``, ``vector``).

    Attributes: ``langchain.run_id``, ``retrieval.query.length`` (the query text is never
    recorded), ``retrieval.leg`` on legs; with ``retriever`` given, ``retrieval.k``,
    ``retrieval.fetch_k``, ``retrieval.fusion`` on retrievals; at the end
    ``retrieval.documents``, ``retrieval.degraded`` (and ``retrieval.degraded_legs`` when the
    documents name them) and ``retrieval.cache_hit`` when the cache answered the event. A
    failure records the exception and sets the span status to ERROR.

    Each run's duration also goes into the histogram ``langchain_hybrid.retrieval.duration``
    (seconds; bucket advice :data:`LATENCY_BUCKETS_SECONDS`; attributes ``retrieval.name``,
    ``retrieval.leg`` (``all`` for a retrieval) and ``error``), which aggregates across processes
    like the Prometheus histogram.

    Without an SDK configured, the API's default providers create no-op spans and instruments;
    pass ``tracer_provider`` / ``meter_provider`` or configure the SDK globally. Composes with
    :class:`RetrievalMetricsHandler` (attach both). Never raises into the chain.

    Key init args:
        tracer_provider: the tracer provider (default: the global one).
        meter_provider: the meter provider of the duration histogram (default: the global one).
        retriever: a :class:`HybridRetriever` whose default ``k``, ``fetch_k`` and ``fusion``
            are recorded on retrieval spans.
        max_in_flight: open spans kept at most; older ones are ended with
            ``retrieval.abandoned = true`` beyond it.

    Raises:
        ConfigError: ``opentelemetry-api`` is not installed
            (``pip install 'langchain-hybrid[otel]'``).
    """

    raise_error = False
    run_inline = True

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        *,
        retriever: HybridRetriever | None = None,
        max_in_flight: int = 10_000,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        """Create the handler (see the class docstring for the arguments)."""
        try:
            from opentelemetry import metrics, trace  # noqa: PLC0415
        except ImportError as e:
            msg = f"OpenTelemetry tracing needs opentelemetry-api: {_OTEL_HINT}"
            raise ConfigError(msg) from e
        self._trace = trace
        self._tracer = trace.get_tracer("langchain_hybrid", tracer_provider=tracer_provider)
        meter = metrics.get_meter("langchain_hybrid", meter_provider=meter_provider)
        self._duration = meter.create_histogram(
            "langchain_hybrid.retrieval.duration",
            unit="s",
            description="Retriever run duration (legs and retrievals; failed runs included).",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS_SECONDS,
        )
        self.max_in_flight = _positive("max_in_flight", max_in_flight)
        self._attributes: dict[str, str | int] = {}
        if retriever is not None:
            self._attributes = {
                "retrieval.k": retriever.k,
                "retrieval.fetch_k": retriever.fetch_k,
                "retrieval.fusion": retriever.fusion,
            }
        self._lock = threading.Lock()
        # run id -> (span, parent run id if it is a leg of a traced retrieval, run name, start)
        self._spans: OrderedDict[UUID, tuple[Span, UUID | None, str, float]] = OrderedDict()
        self._failed_legs: dict[UUID, list[str]] = {}

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
        """Start the run's span (a child of its retrieval's span for a leg)."""
        try:
            name = _run_name(serialized, kwargs)
            with self._lock:
                parent = self._spans.get(parent_run_id) if parent_run_id else None
            attributes: dict[str, str | int] = {
                "langchain.run_id": str(run_id),
                "retrieval.query.length": len(query) if isinstance(query, str) else 0,
            }
            if parent is None:
                attributes.update(self._attributes)
                context = None
            else:
                attributes["retrieval.leg"] = name
                context = self._trace.set_span_in_context(parent[0])
            span = self._tracer.start_span(name, context=context, attributes=attributes)
            abandoned: list[Span] = []
            with self._lock:
                while len(self._spans) >= self.max_in_flight:
                    oldest, entry = self._spans.popitem(last=False)
                    abandoned.append(entry[0])
                    self._failed_legs.pop(oldest, None)
                leg_of = parent_run_id if parent is not None else None
                self._spans[run_id] = (span, leg_of, name, time.perf_counter())
            for old in abandoned:
                old.set_attribute("retrieval.abandoned", value=True)
                old.end()
        except Exception:  # tracing must never break retrieval
            logger.debug("span not started", exc_info=True)

    def _pop(self, run_id: UUID, *, error: bool) -> tuple[Span | None, UUID | None, str, list[str]]:
        """Forget the run and record its duration (retrievals and legs alike)."""
        with self._lock:
            entry = self._spans.pop(run_id, None)
            failed = self._failed_legs.pop(run_id, [])
            root = None if entry is None or entry[1] is None else self._spans.get(entry[1])
        if entry is None:
            return None, None, "", failed
        span, parent, name, started = entry
        attributes: dict[str, str | bool] = {
            "retrieval.name": name if root is None else root[2],
            "retrieval.leg": ALL if parent is None else name,
            "error": error,
        }
        self._duration.record(time.perf_counter() - started, attributes)
        return span, parent, name, failed

    def on_retriever_end(
        self,
        documents: Sequence[Any],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """End the span with the number of documents and whether the answer is degraded."""
        try:
            span, parent, _, failed = self._pop(run_id, error=False)
            if span is None:
                return
            n_documents, marked = _documents_info(documents)
            span.set_attribute("retrieval.documents", n_documents)
            if parent is None:
                span.set_attribute("retrieval.degraded", marked is not None or bool(failed))
                legs = ",".join(failed) if failed else marked
                if legs:
                    span.set_attribute("retrieval.degraded_legs", legs)
            span.end()
        except Exception:
            logger.debug("span not ended", exc_info=True)

    def on_retriever_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """End the span with ERROR status and the exception recorded."""
        try:
            span, parent, name, _ = self._pop(run_id, error=True)
            if span is None:
                return
            if parent is not None:
                with self._lock:
                    if parent in self._spans:
                        self._failed_legs.setdefault(parent, []).append(name)
            if isinstance(error, BaseException):
                span.record_exception(error)
            status = self._trace.Status(self._trace.StatusCode.ERROR, _error_text(error))
            span.set_status(status)
            span.end()
        except Exception:
            logger.debug("span not ended", exc_info=True)

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
        """Record ``retrieval.cache_hit`` from the ``langchain_hybrid.cache`` event."""
        try:
            if name != CACHE_EVENT or not isinstance(data, Mapping):
                return
            with self._lock:
                entry = self._spans.get(run_id)
            if entry is not None and isinstance(data.get("hit"), bool):
                entry[0].set_attribute("retrieval.cache_hit", data["hit"])
        except Exception:
            logger.debug("cache event not traced", exc_info=True)
