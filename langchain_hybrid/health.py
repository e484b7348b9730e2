"""Health checks of a hybrid index and its traffic, and a JSON report.

:class:`HealthMonitor` combines side-effect-free rules into a :class:`HealthStatus` (the worst of
its :class:`HealthCheck` results): the vector store answers, the BM25 index (in memory and, with a
``bm25_path``, saved) is in step with the collection, no write was left unfinished, and the recent
traffic measured by a :class:`~langchain_hybrid.metrics.RetrievalMetricsHandler` (error rate,
p95 latency, degraded answers) is within the ``monitoring`` thresholds.
:meth:`~HealthMonitor.report_json` adds metrics, recent errors and a config summary (never
secrets).

The state of the index comes from one read, :meth:`HybridIndex.status()
<langchain_hybrid.index.HybridIndex.status>` (the index is the only reader of the write
generation); this module judges that state, it does not read Chroma itself. It does not import
the retriever: a monitor reads what :class:`MonitoredRetriever` names (a
:class:`~langchain_hybrid.HybridRetriever` has all of it), and :meth:`HealthMonitor.from_config`
opens the configured index read-only without building a retriever.

Usage:
    ```python
    from langchain_hybrid import HealthMonitor, RetrievalMetricsHandler

    metrics = RetrievalMetricsHandler()
    monitor = HealthMonitor(retriever, metrics)
    monitor.health_check().status          # "healthy" | "degraded" | "unhealthy"
    print(monitor.report_json())
    ```
"""

from __future__ import annotations

__all__ = [
    "CheckStatus",
    "HealthCheck",
    "HealthMonitor",
    "HealthRule",
    "HealthStatus",
    "MonitoredRetriever",
    "Status",
]

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol

from langchain_hybrid._events import error_text as _error_text
from langchain_hybrid.config import HybridConfig, MonitoringSettings
from langchain_hybrid.errors import ConfigError, IndexNotBuiltError
from langchain_hybrid.index import CollectionState, HybridIndex, IndexStatus, SavedState
from langchain_hybrid.metrics import RetrievalMetricsHandler, window_stats
from langchain_hybrid.stores import ChromaStore

logger = logging.getLogger(__name__)

Status = Literal["healthy", "degraded", "unhealthy"]
CheckStatus = Literal["healthy", "degraded", "unhealthy", "skipped"]
SEVERITY: dict[str, int] = {"skipped": -1, "healthy": 0, "degraded": 1, "unhealthy": 2}
_STATUS_BY_SEVERITY: tuple[Status, Status, Status] = ("healthy", "degraded", "unhealthy")
_LEGS = ("bm25", "vector")  # the order of a retriever's ``weights``


class MonitoredRetriever(Protocol):
    """What :class:`HealthMonitor` reads of a retriever (:class:`HybridRetriever` has it all).

    The index state comes from ``index.status()``; the rest explains the retriever's behaviour
    in reports (``config_summary``), and ``weights`` tells which legs are active.
    """

    @property
    def index(self) -> HybridIndex:
        """The Chroma collection + BM25 pair whose :meth:`~HybridIndex.status` is judged."""

    @property
    def weights(self) -> tuple[float, ...]:
        """Leg weights in the order ``bm25``, ``vector`` (a leg weighted 0 is not run)."""

    @property
    def k(self) -> int:
        """Documents returned."""

    @property
    def fetch_k(self) -> int:
        """Candidates per leg."""

    @property
    def fusion(self) -> str:
        """The fusion method."""

    @property
    def rrf_k(self) -> float:
        """The RRF constant."""

    @property
    def on_leg_error(self) -> str:
        """``degrade`` or ``raise``."""

    @property
    def refresh_interval_seconds(self) -> float | None:
        """How often queries look for other processes' writes."""

    @property
    def cache(self) -> object | None:
        """The result cache (``None``: off)."""

    @property
    def bm25_path(self) -> Path | None:
        """Where the BM25 files live (``None``: in memory only)."""


@dataclass(frozen=True, slots=True)
class _ConfiguredIndex:
    """A configured index opened read-only, with its retriever settings (no retriever built)."""

    index: HybridIndex
    weights: tuple[float, ...]
    k: int
    fetch_k: int
    fusion: str
    rrf_k: float
    on_leg_error: str
    refresh_interval_seconds: float | None
    bm25_path: Path | None
    cache: object | None = None


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
        worst = max((SEVERITY[c.status] for c in checks), default=0)
        return cls(_STATUS_BY_SEVERITY[max(worst, 0)], checks, datetime.now(timezone.utc))

    @property
    def exit_code(self) -> int:
        """0 healthy, 1 degraded, 2 unhealthy (what ``langchain-hybrid health`` exits with)."""
        return SEVERITY[self.status]

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


class _UnfinishedWrite(NamedTuple):
    """A write seen unfinished: under way, or ``dead`` (it will not finish by itself)."""

    detail: str
    dead: bool


def _lag(
    generation: object, documents: object, seen: CollectionState, write: _UnfinishedWrite | None
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


def _replica_checks(state: IndexStatus, limit: float | None) -> list[HealthCheck]:
    """A replica's change-feed lag (``http`` stores; see :mod:`langchain_hybrid._feed`).

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
    """Side-effect-free health checks of a hybrid index and its traffic, and a JSON report.

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
       feed, :mod:`langchain_hybrid._feed`): feed records not applied yet (value) and seconds
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
        retriever: the retriever to check (a :class:`HybridRetriever`, or anything with the
            attributes :class:`MonitoredRetriever` names).
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
        retriever: MonitoredRetriever,
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
        metrics: RetrievalMetricsHandler | None = None,
    ) -> HealthMonitor:
        """Open the configured index read-only for health checks (what the CLI does).

        Nothing is created or saved: a missing index raises, the saved BM25 index is loaded as
        it is (stale or not, so that ``bm25_index`` can report it), and when it is missing,
        corrupt or built with other settings it is rebuilt in memory only (``bm25_files``
        reports it). No retriever is built (nothing needs the embedding model) and no result
        cache is attached: the report's ``config`` shows the configured retriever settings.

        Args:
            settings: the configuration.
            store: an opened store (default: the configured one, opened without creating).
            metrics: a handler measuring traffic, if any.

        Raises:
            IndexNotBuiltError: the index directory or collection does not exist.
            StoreUnavailableError: the store cannot be reached.
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
        fusion = settings.fusion
        retriever = _ConfiguredIndex(
            index=index,
            weights=tuple(fusion.weights),
            k=fusion.k,
            fetch_k=fusion.fetch_k,
            fusion=fusion.method,
            rrf_k=fusion.rrf_k,
            on_leg_error=fusion.on_leg_error,
            refresh_interval_seconds=settings.cache.refresh_interval_seconds,
            bm25_path=path,
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
        active = [leg for leg, weight in zip(_LEGS, retriever.weights, strict=True) if weight > 0]
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

    def _unfinished_write(self, seen: CollectionState, *, dead: bool) -> _UnfinishedWrite | None:
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
            return _UnfinishedWrite(detail, dead=False)
        generation = seen.generation
        age = self._odd_age(generation)
        if generation % 2 == 0:
            return None
        config = self.retriever.index.store.config
        if dead:
            detail = (
                f"the write at generation {generation} never finished: no process holds the "
                f"writer lock of {config.path}, so its writer died (the next open of the index "
                "by HybridRetriever.load or from_store, or refresh(), marks it complete and "
                "resyncs BM25; health checks do not)"
            )
            return _UnfinishedWrite(detail, dead=True)
        limit = self.stuck_write_seconds
        if limit is not None and age > limit:
            detail = (
                f"the write at generation {generation} never finished: the generation has "
                f"stayed odd for {age:.0f} s (stuck_write_seconds={limit:g}), a write that long "
                "or one that failed midway (the writer's next write completes it)"
            )
            return _UnfinishedWrite(detail, dead=True)
        return _UnfinishedWrite(f"a write is under way (generation {generation})", dead=False)

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
        self, state: IndexStatus, write: _UnfinishedWrite | None, leg_down: CheckStatus
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
        self, saved: SavedState, seen: CollectionState | None, write: _UnfinishedWrite | None
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
        if saved.params != self.retriever.index.bm25.params.model_dump(mode="json"):
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
        store = retriever.index.store.config
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
