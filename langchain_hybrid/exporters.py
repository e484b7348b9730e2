"""Exporters of the retrieval metrics and health: Prometheus, an HTTP server, a log line, OTel.

* :class:`PrometheusExporter` / :func:`to_prometheus`: a ``prometheus_client`` collector that
  reads a :class:`~langchain_hybrid.metrics.RetrievalMetricsHandler` (and a
  :class:`~langchain_hybrid.health.HealthMonitor`) at scrape time;
  :func:`serve_metrics` serves them at ``/metrics`` (:class:`MetricsServer`)
  (``pip install 'langchain-hybrid[prometheus]'``).
* :func:`log_snapshot`: the metrics as one ``key=value`` log line.
* :class:`OTelRetrievalHandler`: one OpenTelemetry span per retriever run, legs as child spans,
  and a duration histogram (``pip install 'langchain-hybrid[otel]'``).

The optional packages are imported when an exporter is created, never when this module is
imported.

Usage:
    ```python
    from langchain_hybrid import HealthMonitor, RetrievalMetricsHandler, serve_metrics

    metrics = RetrievalMetricsHandler()
    server = serve_metrics(metrics, HealthMonitor(retriever, metrics), port=9464)
    server.url   # http://127.0.0.1:9464/metrics
    ```
"""

from __future__ import annotations

__all__ = [
    "MetricsServer",
    "OTelRetrievalHandler",
    "PrometheusExporter",
    "log_snapshot",
    "serve_metrics",
    "to_prometheus",
]

import logging
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from langchain_hybrid._events import (
    RetrieverEventsOnly,
    documents_info,
    error_text,
    positive,
    run_name,
)
from langchain_hybrid.cache import CACHE_EVENT
from langchain_hybrid.errors import ConfigError
from langchain_hybrid.health import SEVERITY, HealthMonitor
from langchain_hybrid.metrics import ALL, LATENCY_BUCKETS_SECONDS, RetrievalMetricsHandler

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, TracerProvider
    from prometheus_client.registry import CollectorRegistry
    from typing_extensions import Self

    from langchain_hybrid.retrievers import HybridRetriever

logger = logging.getLogger(__name__)

_PROMETHEUS_HINT = "pip install 'langchain-hybrid[prometheus]'"
_OTEL_HINT = "pip install 'langchain-hybrid[otel]'"


# ---------------------------------------------------------------------- logs
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
"""Health checks also exported as gauges of their own: check name -> (metric name, help)."""
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
                    checks.add_metric([check.name], SEVERITY[check.status])
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
class OTelRetrievalHandler(RetrieverEventsOnly):
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
        self.max_in_flight = positive("max_in_flight", max_in_flight)
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
            name = run_name(serialized, kwargs)
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
            n_documents, marked = documents_info(documents)
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
            status = self._trace.Status(self._trace.StatusCode.ERROR, error_text(error))
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
