# ruff: noqa: F811 - the fixtures imported from monitoring_chains are test arguments by name
"""Exporters: the log line, Prometheus over a real HTTP server, OpenTelemetry spans and metrics.

Scrapes go over loopback HTTP to :func:`serve_metrics` (and the ``serve-metrics`` command);
spans and histograms go to the OpenTelemetry SDK's in-memory exporter and reader.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from typing import Any

import pytest
from monitoring_chains import (  # noqa: F401 - embedding, retriever, in_tmp: fixtures, used by name
    GLOBAL,
    HYBRID,
    QUERIES,
    break_vector_leg,
    cfg,
    documents,
    embedding,
    hybrid,
    in_tmp,
    make_chain,
    retriever,
    run_cli,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client.parser import text_string_to_metric_families

from langchain_hybrid import (
    ConfigError,
    HybridRetriever,
    HybridRetrieverError,
    cli,
)
from langchain_hybrid.config import MonitoringSettings
from langchain_hybrid.exporters import (
    OTelRetrievalHandler,
    PrometheusExporter,
    log_snapshot,
    serve_metrics,
)
from langchain_hybrid.health import HealthCheck, HealthMonitor
from langchain_hybrid.metrics import (
    LATENCY_BUCKETS_SECONDS,
    RetrievalMetricsHandler,
)


def test_log_snapshot_is_one_key_value_line(
    retriever: HybridRetriever, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = RetrievalMetricsHandler()
    logger = logging.getLogger("app.metrics")
    with caplog.at_level(logging.INFO, logger="app.metrics"):
        assert log_snapshot(metrics, logger) == "retrieval_metrics retrievals=0"
        retriever.invoke("coffee", config=cfg(metrics))
        retriever.invoke("coffee", config=cfg(metrics))
        line = log_snapshot(metrics, logger)
    assert [r.getMessage() for r in caplog.records] == ["retrieval_metrics retrievals=0", line]
    assert caplog.records[-1].levelno == logging.INFO
    pairs = dict(part.split("=", 1) for part in line.split()[1:])
    assert pairs["HybridRetriever.count"] == "2"
    assert pairs["HybridRetriever.cache_hits"] == "1"
    assert pairs["HybridRetriever.bm25.count"] == "1"
    assert float(pairs["HybridRetriever.p95_ms"]) > 0


# ---------------------------------------------------------------------- prometheus
def families(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback http
        text = response.read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def sample(family: Any, suffix: str = "", **labels: str) -> float:
    found = [
        s.value for s in family.samples if s.name == family.name + suffix and s.labels == labels
    ]
    assert len(found) == 1, (family.name, suffix, labels, family.samples)
    return float(found[0])


def test_serve_metrics_exposes_the_snapshot(retriever: HybridRetriever) -> None:
    metrics = RetrievalMetricsHandler()
    for query in [*QUERIES[:3], QUERIES[0]]:
        retriever.invoke(query, config=cfg(metrics))
    retriever.invoke("coffee", filter={"source": "nowhere"}, config=cfg(metrics))
    with serve_metrics(metrics, HealthMonitor(retriever, metrics), port=0) as server:
        assert server.url.startswith("http://127.0.0.1:")
        scraped = families(server.url)
        port = server.port
    snap = hybrid(metrics)
    ns = "langchain_hybrid"
    everything = {"retriever": HYBRID, "leg": "all"}
    assert sample(scraped[f"{ns}_retrievals"], "_total", **everything) == snap["count"] == 5
    for leg in ("bm25", "vector"):
        labels = {"retriever": HYBRID, "leg": leg}
        leg_snap = snap["legs"][leg]
        assert sample(scraped[f"{ns}_retrievals"], "_total", **labels) == leg_snap["count"]
        assert sample(scraped[f"{ns}_empty_results"], "_total", **labels) == leg_snap["empty"]
        latency = scraped[f"{ns}_retrieval_latency_seconds"]
        assert sample(latency, "_count", **labels) == leg_snap["count"]
        assert sample(latency, "_bucket", le="+Inf", **labels) == leg_snap["count"]
    assert sample(scraped[f"{ns}_retrieval_errors"], "_total", **everything) == 0
    assert sample(scraped[f"{ns}_empty_results"], "_total", **everything) == 1
    assert sample(scraped[f"{ns}_cache_hits"], "_total", retriever=HYBRID) == 1
    assert sample(scraped[f"{ns}_cache_misses"], "_total", retriever=HYBRID) == 4
    assert sample(scraped[f"{ns}_degraded_results"], "_total", retriever=HYBRID) == 0
    latency = scraped[f"{ns}_retrieval_latency_seconds"]
    assert latency.type == "histogram"  # sums across processes, unlike client-side quantiles
    latencies = [record[1] for record in metrics.window_records(HYBRID)]
    assert len(latencies) == 5
    for le in LATENCY_BUCKETS_SECONDS:
        below = sum(1 for seconds in latencies if seconds <= le)
        assert sample(latency, "_bucket", le=str(le), **everything) == below, le
    assert sample(latency, "_bucket", le="+Inf", **everything) == 5
    assert sample(latency, "_sum", **everything) == pytest.approx(snap["latency_sum_ms"] / 1e3)
    assert sample(scraped[f"{ns}_retrieval_latency_max_seconds"], **everything) == pytest.approx(
        snap["latency_ms"]["max"] / 1e3
    )
    assert sample(scraped[f"{ns}_documents_returned_mean"], **everything) == pytest.approx(
        snap["documents_mean"]
    )
    assert sample(scraped[f"{ns}_health_status"]) == 0
    assert sample(scraped[f"{ns}_health_check_status"], check="vector_store") == 0
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", port), timeout=1),
    ):
        pass  # closed: nothing listens any more


def test_prometheus_health_gauge_follows_the_store(retriever: HybridRetriever) -> None:
    metrics = RetrievalMetricsHandler()
    fresh = MonitoringSettings(health_cache_seconds=0)  # every scrape runs the checks
    with serve_metrics(metrics, HealthMonitor(retriever, metrics, fresh), port=0) as server:
        assert sample(families(server.url)["langchain_hybrid_health_status"]) == 0
        retriever.store.begin_write()  # under way: still healthy
        assert sample(families(server.url)["langchain_hybrid_health_status"]) == 0
        retriever.store.end_write()  # completed by "another process": BM25 is behind
        scraped = families(server.url)
    assert sample(scraped["langchain_hybrid_health_status"]) == 1
    assert sample(scraped["langchain_hybrid_health_check_status"], check="bm25_index") == 1


def test_missing_optional_packages_give_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(ConfigError, match=r"pip install 'langchain-hybrid\[prometheus\]'"):
        PrometheusExporter(RetrievalMetricsHandler())
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(ConfigError, match=r"pip install 'langchain-hybrid\[otel\]'"):
        OTelRetrievalHandler()


def test_optional_packages_are_not_imported_with_the_module() -> None:
    # chromadb itself imports opentelemetry's API and trace SDK, never its metrics SDK
    code = (
        "import sys, langchain_hybrid.exporters, langchain_hybrid.health, langchain_hybrid.cli\n"
        "print(sorted(m for m in sys.modules if m.startswith("
        "('prometheus_client', 'opentelemetry.sdk.metrics'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]"


# ---------------------------------------------------------------------- opentelemetry
@pytest.fixture
def spans() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def by_name(finished: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {s.name: s for s in finished}


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_otel_spans_nest_legs_under_the_retrieval(
    retriever: HybridRetriever, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    tracer = provider.get_tracer("app")
    otel = OTelRetrievalHandler(provider, retriever=retriever)
    with tracer.start_as_current_span("request") as request:
        make_chain(retriever).invoke("coffee grind", config=cfg(otel))
    found = by_name(exporter.get_finished_spans())
    assert set(found) == {"request", HYBRID, "bm25", "vector"}
    root = found[HYBRID]
    assert root.parent is not None
    assert root.parent.span_id == request.get_span_context().span_id
    assert root.context is not None
    for leg in ("bm25", "vector"):
        parent = found[leg].parent
        assert parent is not None
        assert parent.span_id == root.context.span_id
        assert attrs(found[leg])["retrieval.leg"] == leg
    attributes = attrs(root)
    assert attributes["retrieval.documents"] == 4
    assert attributes["retrieval.degraded"] is False
    assert attributes["retrieval.cache_hit"] is False
    assert attributes["retrieval.query.length"] == len("coffee grind")
    assert (attributes["retrieval.k"], attributes["retrieval.fetch_k"]) == (4, 50)

    exporter.clear()
    retriever.invoke("coffee grind", config=cfg(otel))
    (cached,) = exporter.get_finished_spans()
    assert attrs(cached)["retrieval.cache_hit"] is True


def test_otel_error_status_on_failures(
    retriever: HybridRetriever, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    otel = OTelRetrievalHandler(provider)
    break_vector_leg(retriever)
    retriever.invoke("coffee", config=cfg(otel))
    found = by_name(exporter.get_finished_spans())
    assert found["vector"].status.status_code == StatusCode.ERROR
    assert [e.name for e in found["vector"].events] == ["exception"]
    assert found["bm25"].status.status_code == StatusCode.UNSET
    assert attrs(found[HYBRID])["retrieval.degraded"] is True
    assert attrs(found[HYBRID])["retrieval.degraded_legs"] == "vector"
    exporter.clear()
    retriever.on_leg_error = "raise"
    with pytest.raises(HybridRetrieverError):
        retriever.invoke("router", config=cfg(otel))
    assert by_name(exporter.get_finished_spans())[HYBRID].status.status_code == StatusCode.ERROR


def test_otel_duration_histogram_per_leg_and_retrieval(
    retriever: HybridRetriever, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    reader = InMemoryMetricReader()
    otel = OTelRetrievalHandler(spans[0], meter_provider=MeterProvider(metric_readers=[reader]))
    for query in QUERIES[:3]:
        retriever.invoke(query, config=cfg(otel))
    break_vector_leg(retriever)
    retriever.invoke("coffee", config=cfg(otel))
    data = reader.get_metrics_data()
    assert data is not None
    [metric] = [
        m
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for m in scope.metrics
        if m.name == "langchain_hybrid.retrieval.duration"
    ]
    assert metric.unit == "s"
    points = {
        (p.attributes["retrieval.leg"], p.attributes["error"]): p for p in metric.data.data_points
    }
    assert points[("all", False)].count == 4
    assert points[("bm25", False)].count == 4
    assert points[("vector", False)].count == 3
    assert points[("vector", True)].count == 1
    assert {p.attributes["retrieval.name"] for p in points.values()} == {HYBRID}
    assert list(points[("all", False)].explicit_bounds) == list(LATENCY_BUCKETS_SECONDS)
    assert sum(points[("all", False)].bucket_counts) == 4


async def test_otel_spans_in_async_chains(
    retriever: HybridRetriever, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    otel = OTelRetrievalHandler(provider)
    metrics = RetrievalMetricsHandler()
    await make_chain(retriever).abatch(QUERIES[:3], config=cfg(otel, metrics))
    finished = exporter.get_finished_spans()
    roots = [s for s in finished if s.name == HYBRID]
    assert len(roots) == 3
    assert all(s.parent is None for s in roots)
    root_ids = {s.context.span_id for s in roots if s.context is not None}
    legs = [s for s in finished if s.name in {"bm25", "vector"}]
    assert len(legs) == 6
    assert all(s.parent is not None and s.parent.span_id in root_ids for s in legs)
    assert hybrid(metrics)["count"] == 3  # both handlers on the same chain


def test_otel_open_spans_are_bounded(spans: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = spans
    otel = OTelRetrievalHandler(provider, max_in_flight=2)
    for _ in range(5):
        otel.on_retriever_start({}, "q", run_id=uuid.uuid4(), name="never-ends")
    abandoned = exporter.get_finished_spans()
    assert len(abandoned) == 3
    assert all(attrs(s)["retrieval.abandoned"] is True for s in abandoned)
    otel.on_retriever_end(None, run_id=uuid.uuid4())  # type: ignore[arg-type]
    otel.on_custom_event("langchain_hybrid.cache", "junk", run_id=uuid.uuid4())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def try_scrape(url: str) -> dict[str, Any] | None:
    try:
        return families(url)
    except OSError:  # not listening yet
        return None


@pytest.mark.usefixtures("in_tmp")
def test_cli_serve_metrics(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "index", "docs")[0] == 0
    port = _free_port()
    codes: list[int] = []
    args = [*GLOBAL, "serve-metrics", "--port", str(port), "--seconds", "1.5"]
    thread = threading.Thread(target=lambda: codes.append(cli.main(args)))
    thread.start()
    url = f"http://127.0.0.1:{port}/metrics"
    deadline = time.monotonic() + 20
    scraped = try_scrape(url)
    while scraped is None and time.monotonic() < deadline:
        time.sleep(0.05)
        scraped = try_scrape(url)
    thread.join(timeout=30)
    assert scraped is not None
    assert sample(scraped["langchain_hybrid_health_status"]) == 0
    assert sample(scraped["langchain_hybrid_in_flight_retrievals"]) == 0
    assert codes == [0]
    assert f"serving http://127.0.0.1:{port}/metrics" in capsys.readouterr().out
    assert run_cli(capsys, "serve-metrics", "--seconds", "0")[0] == 2


def test_scrapes_reuse_a_recent_health_result(retriever: HybridRetriever) -> None:
    runs: list[float] = []

    def counting_rule() -> HealthCheck:
        runs.append(time.monotonic())
        return HealthCheck("counted", "healthy", "ran")

    metrics = RetrievalMetricsHandler()
    cached = HealthMonitor(
        retriever,
        metrics,
        MonitoringSettings(health_cache_seconds=30),
        extra_checks=[counting_rule],
    )
    with serve_metrics(metrics, cached, port=0) as server:
        for _ in range(3):
            assert sample(families(server.url)["langchain_hybrid_health_status"]) == 0
    assert len(runs) == 1, "three scrapes within 30 s read the index once"
    cached.health_check()
    assert len(runs) == 2, "health_check itself always runs the rules"
    fresh = HealthMonitor(
        retriever, metrics, MonitoringSettings(health_cache_seconds=0), extra_checks=[counting_rule]
    )
    with serve_metrics(metrics, fresh, port=0) as server:
        for _ in range(3):
            families(server.url)
    assert len(runs) == 5
