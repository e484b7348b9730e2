"""Monitoring: the metrics handler on real LCEL chains, health rules, exporters and the CLI.

Every chain here is real: ``HybridRetriever | RunnableLambda | ChatPromptTemplate |
FakeListChatModel`` over in-process Chroma with the deterministic ``HashEmbeddings``; failures
are real too (the Chroma collection is deleted under the retriever, or a filter is invalid).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import chromadb
import pytest
from chromadb.config import Settings
from helpers import HashEmbeddings, hold_writer_lock
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
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
    StoreConfig,
    cli,
)
from langchain_hybrid.callbacks import (
    LATENCY_BUCKETS_SECONDS,
    MAX_LEGS,
    OTHER,
    HealthCheck,
    HealthMonitor,
    HealthStatus,
    OTelRetrievalHandler,
    PrometheusExporter,
    RetrievalMetricsHandler,
    log_snapshot,
    serve_metrics,
)
from langchain_hybrid.config import MonitoringSettings
from langchain_hybrid.locking import LOCK_NAME, holds_writer_lock, release_writer_lock
from langchain_hybrid.stores import ChromaStore

TEXTS = [
    ("net-1", "The NX-220 router shows error E-4471 when its firmware is outdated", "faq"),
    ("net-2", "Reset the router by holding the button for ten seconds", "handbook"),
    ("net-3", "Mesh networks extend wifi coverage across large houses", "blog"),
    ("gar-1", "Water tomatoes deeply twice a week during hot summers", "handbook"),
    ("gar-2", "Prune roses in late winter before new growth starts", "blog"),
    ("cof-1", "Espresso needs a fine grind and nine bar of pressure", "blog"),
    ("cof-2", "A french press brews coffee with a coarse grind", "faq"),
    ("cof-3", "Cold brew coffee steeps for twelve hours in cold water", "handbook"),
    ("py-1", "Use functools.lru_cache to memoize pure python functions", "faq"),
    ("py-2", "Python generators yield values lazily one at a time", "blog"),
]
QUERIES = ["router error", "coffee grind", "python cache", "roses winter", "wifi mesh", "tomatoes"]
HYBRID = "HybridRetriever"
BAD_FILTER = {"source": {"$regex": "faq"}}  # an unknown operator: InvalidFilterError in the run


def documents() -> list[Document]:
    return [Document(id=i, page_content=t, metadata={"source": s}) for i, t, s in TEXTS]


@pytest.fixture
def embedding() -> HashEmbeddings:
    return HashEmbeddings()


@pytest.fixture
def retriever(embedding: HashEmbeddings, collection_name: str) -> HybridRetriever:
    return HybridRetriever.from_documents(
        documents(), embedding=embedding, collection_name=collection_name, k=4
    )


@pytest.fixture
def uncached(collection_name: str) -> HybridRetriever:
    return HybridRetriever.from_documents(
        documents(), embedding=HashEmbeddings(), collection_name=collection_name, k=4, cache=False
    )


def format_docs(docs: list[Document]) -> dict[str, str]:
    return {"context": "\n".join(d.page_content for d in docs)}


def make_chain(retriever: HybridRetriever) -> Runnable[str, Any]:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Answer from these notes:\n{context}"), ("human", "Answer briefly.")]
    )
    return retriever | RunnableLambda(format_docs) | prompt | FakeListChatModel(responses=["ok"])


def cfg(*handlers: Any) -> RunnableConfig:
    return {"callbacks": list(handlers)}


def hybrid(handler: RetrievalMetricsHandler) -> dict[str, Any]:
    series: dict[str, Any] = handler.snapshot()["retrievers"][HYBRID]
    return series


def break_vector_leg(retriever: HybridRetriever) -> None:
    retriever.store.client.delete_collection(retriever.store.config.chroma_collection)


def assert_latency_ordered(series: dict[str, Any]) -> None:
    latency = series["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert latency["mean"] > 0


# ---------------------------------------------------------------------- metrics on chains
def test_sync_chain_counts_retrievals_legs_and_cache(retriever: HybridRetriever) -> None:
    metrics = RetrievalMetricsHandler()
    chain = make_chain(retriever)
    for query in [*QUERIES[:3], QUERIES[0], QUERIES[1]]:
        assert chain.invoke(query, config=cfg(metrics)).content == "ok"
    series = hybrid(metrics)
    assert series["count"] == 5
    assert series["errors"] == series["empty"] == series["degraded"] == 0
    assert series["cache"] == {"hits": 2, "misses": 3, "hit_rate": pytest.approx(0.4)}
    assert series["documents_mean"] == 4.0
    assert set(series["legs"]) == {"bm25", "vector"}
    for leg in series["legs"].values():
        assert leg["count"] == 3  # legs run for the uncached retrievals only
        assert leg["errors"] == 0
        assert_latency_ordered(leg)
    assert_latency_ordered(series)
    snapshot = metrics.snapshot()
    assert snapshot["in_flight"] == snapshot["unmatched_events"] == 0
    assert list(snapshot["retrievers"]) == [HYBRID]  # chain, prompt and model are not retrievers


async def test_async_chain_ainvoke_and_abatch(retriever: HybridRetriever) -> None:
    metrics = RetrievalMetricsHandler()
    chain = make_chain(retriever)
    assert (await chain.ainvoke(QUERIES[0], config=cfg(metrics))).content == "ok"
    answers = await chain.abatch(QUERIES[1:5], config=cfg(metrics))
    assert [a.content for a in answers] == ["ok"] * 4
    series = hybrid(metrics)
    assert series["count"] == 5
    assert series["cache"]["misses"] == 5
    assert series["legs"]["bm25"]["count"] == series["legs"]["vector"]["count"] == 5
    await chain.abatch(QUERIES[1:5], config=cfg(metrics))
    series = hybrid(metrics)
    assert series["count"] == 9
    assert series["cache"]["hits"] == 4
    assert series["legs"]["bm25"]["count"] == series["legs"]["vector"]["count"] == 5
    assert_latency_ordered(series)
    assert metrics.snapshot()["in_flight"] == 0


def test_run_name_labels_the_retrieval(retriever: HybridRetriever) -> None:
    metrics = RetrievalMetricsHandler()
    retriever.invoke("coffee", config={"callbacks": [metrics], "run_name": "kb"})
    snapshot = metrics.snapshot()["retrievers"]
    assert list(snapshot) == ["kb"]
    assert set(snapshot["kb"]["legs"]) == {"bm25", "vector"}


def test_empty_results_are_counted(retriever: HybridRetriever) -> None:
    metrics = RetrievalMetricsHandler()
    assert retriever.invoke("coffee", filter={"source": "nowhere"}, config=cfg(metrics)) == []
    retriever.invoke("coffee", config=cfg(metrics))
    series = hybrid(metrics)
    assert series["empty"] == 1
    assert series["empty_rate"] == 0.5
    assert series["documents_mean"] == 2.0  # (0 + 4) / 2
    assert series["legs"]["bm25"]["empty"] == series["legs"]["vector"]["empty"] == 1


def test_failed_vector_leg_is_a_leg_error_and_a_degraded_answer(
    retriever: HybridRetriever,
) -> None:
    metrics = RetrievalMetricsHandler()
    chain = make_chain(retriever)
    chain.invoke("coffee", config=cfg(metrics))
    break_vector_leg(retriever)
    for query in QUERIES[1:4]:
        chain.invoke(query, config=cfg(metrics))
    series = hybrid(metrics)
    assert series["count"] == 4
    assert series["errors"] == 0
    assert series["degraded"] == 3
    assert series["degraded_rate"] == 0.75
    assert series["legs"]["vector"]["errors"] == 3
    assert series["legs"]["vector"]["error_rate"] == 0.75
    assert series["legs"]["bm25"]["errors"] == 0
    errors = metrics.recent_errors()
    assert len(errors) == 3
    assert {(e["retriever"], e["leg"]) for e in errors} == {(HYBRID, "vector")}
    assert all(e["error"] and e["time"].endswith("+00:00") for e in errors)


def test_on_leg_error_raise_is_a_failed_retrieval(
    retriever: HybridRetriever, caplog: pytest.LogCaptureFixture
) -> None:
    retriever.on_leg_error = "raise"
    metrics = RetrievalMetricsHandler(log_errors=True)
    break_vector_leg(retriever)
    with (
        caplog.at_level(logging.WARNING, logger="langchain_hybrid.callbacks"),
        pytest.raises(HybridRetrieverError),
    ):
        make_chain(retriever).invoke("coffee", config=cfg(metrics))
    series = hybrid(metrics)
    assert (series["count"], series["errors"], series["error_rate"]) == (1, 1, 1.0)
    assert series["degraded"] == 0
    assert series["latency_ms"]["max"] > 0
    assert series["legs"]["vector"]["errors"] == 1
    assert [e["leg"] for e in metrics.recent_errors()] == ["vector", "all"]
    logged = [r.getMessage() for r in caplog.records if r.name == "langchain_hybrid.callbacks"]
    assert len(logged) == 2
    assert all(f"retriever={HYBRID}" in line for line in logged)


def test_window_is_bounded_but_totals_are_not(uncached: HybridRetriever) -> None:
    metrics = RetrievalMetricsHandler(window=5)
    for i in range(50):
        uncached.invoke(f"{QUERIES[i % len(QUERIES)]} {i}", config=cfg(metrics))
    assert {len(s.window) for s in metrics._series.values()} == {5}
    assert len(metrics._series) == 3
    series = hybrid(metrics)
    assert (series["count"], series["window_size"]) == (50, 5)
    for leg in series["legs"].values():
        assert (leg["count"], leg["window_size"]) == (50, 5)
    assert len(metrics.window_records()) == 5


def test_in_flight_runs_are_bounded() -> None:
    metrics = RetrievalMetricsHandler(max_in_flight=3)
    runs = [uuid.uuid4() for _ in range(10)]
    for run_id in runs:
        metrics.on_retriever_start({}, "q", run_id=run_id, name="never-ends")
    snapshot = metrics.snapshot()
    assert (snapshot["in_flight"], snapshot["evicted_in_flight"]) == (3, 7)
    metrics.on_retriever_end([], run_id=runs[0])  # evicted: cannot be paired any more
    metrics.on_retriever_end([], run_id=runs[-1])
    snapshot = metrics.snapshot()
    assert snapshot["unmatched_events"] == 1
    assert snapshot["retrievers"]["never-ends"]["count"] == 1


def test_series_are_bounded_by_max_series(
    uncached: HybridRetriever, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = RetrievalMetricsHandler(max_series=3)
    with caplog.at_level(logging.WARNING, logger="langchain_hybrid.callbacks"):
        for i in range(8):  # run names carrying user data: one per "tenant"
            uncached.invoke(f"coffee {i}", config={"callbacks": [metrics], "run_name": f"t{i}"})
        uncached.invoke("coffee again", config={"callbacks": [metrics], "run_name": "t0"})
    snapshot = metrics.snapshot()
    assert list(snapshot["retrievers"]) == [OTHER, "t0", "t1", "t2"]
    assert (snapshot["max_series"], snapshot["overflow_runs"]) == (3, 5)
    assert snapshot["retrievers"]["t0"]["count"] == 2  # a name seen before keeps its series
    other = snapshot["retrievers"][OTHER]
    assert other["count"] == 5
    assert {n: leg["count"] for n, leg in other["legs"].items()} == {"bm25": 5, "vector": 5}
    assert len(metrics._series) == 4 * 3  # (retrieval + 2 legs) per name, <other> included
    warnings = [r for r in caplog.records if r.name == "langchain_hybrid.callbacks"]
    assert len(warnings) == 1  # once, not per run
    assert "<other>" in warnings[0].getMessage()

    metrics.reset()
    uncached.invoke("coffee", config={"callbacks": [metrics], "run_name": "t7"})
    snapshot = metrics.snapshot()
    assert list(snapshot["retrievers"]) == ["t7"]  # reset frees the names too
    assert snapshot["overflow_runs"] == 0


def test_leg_names_are_bounded() -> None:
    metrics = RetrievalMetricsHandler()
    parent = uuid.uuid4()
    metrics.on_retriever_start({}, "q", run_id=parent, name="kb")
    for i in range(MAX_LEGS + 5):
        leg = uuid.uuid4()
        metrics.on_retriever_start({}, "q", run_id=leg, parent_run_id=parent, name=f"leg{i}")
        metrics.on_retriever_end([], run_id=leg, parent_run_id=parent)
    metrics.on_retriever_end([], run_id=parent)
    snapshot = metrics.snapshot()
    legs = snapshot["retrievers"]["kb"]["legs"]
    assert len(legs) == MAX_LEGS + 1
    assert legs[OTHER]["count"] == 5
    assert snapshot["overflow_runs"] == 5
    assert snapshot["in_flight"] == 0


def test_concurrent_threads_give_exact_totals(uncached: HybridRetriever) -> None:
    metrics = RetrievalMetricsHandler()
    failures: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(12):
                uncached.invoke(f"{QUERIES[i % len(QUERIES)]} w{worker}", config=cfg(metrics))
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            failures.append(e)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    series = hybrid(metrics)
    assert series["count"] == 48
    assert series["legs"]["bm25"]["count"] == series["legs"]["vector"]["count"] == 48
    assert metrics.snapshot()["in_flight"] == 0


def test_the_handler_never_raises(retriever: HybridRetriever) -> None:
    metrics = RetrievalMetricsHandler()
    assert metrics.raise_error is False
    unknown = uuid.uuid4()
    metrics.on_retriever_end(None, run_id=unknown)  # type: ignore[arg-type]
    metrics.on_retriever_error("not an exception", run_id=unknown)  # type: ignore[arg-type]
    metrics.on_custom_event("langchain_hybrid.cache", None, run_id=unknown)
    metrics.on_custom_event("langchain_hybrid.cache", {"hit": "yes"}, run_id=unknown)
    metrics.on_custom_event("something.else", {"hit": True}, run_id=unknown)
    metrics.on_custom_event("langchain_hybrid.cache", {"hit": True}, run_id=unknown)
    started = uuid.uuid4()
    metrics.on_retriever_start(None, None, run_id=started)  # type: ignore[arg-type]
    metrics.on_retriever_end(None, run_id=started)  # type: ignore[arg-type]
    odd = uuid.uuid4()
    metrics.on_retriever_start({}, "q", run_id=odd, name="odd")
    metrics.on_retriever_end(5, run_id=odd)  # type: ignore[arg-type]
    snapshot = metrics.snapshot()
    assert snapshot["unmatched_events"] == 3  # end, error and the valid cache event
    assert snapshot["retrievers"]["retriever"]["count"] == 1
    assert snapshot["retrievers"]["retriever"]["empty"] == 1
    assert snapshot["retrievers"]["odd"]["count"] == 1
    # even broken internals stay inside the handler
    metrics._in_flight = None  # type: ignore[assignment]
    docs = make_chain(retriever).invoke("coffee", config=cfg(metrics))
    assert docs.content == "ok"


def test_reset_forgets_everything(retriever: HybridRetriever) -> None:
    metrics = RetrievalMetricsHandler(max_recent_errors=2)
    retriever.invoke("coffee", config=cfg(metrics))
    for _ in range(3):
        with pytest.raises(HybridRetrieverError):
            retriever.invoke("coffee", filter=BAD_FILTER, config=cfg(metrics))
    assert len(metrics.recent_errors()) == 2
    metrics.reset()
    snapshot = metrics.snapshot()
    assert snapshot["retrievers"] == {}
    assert snapshot["recent_errors"] == []


def test_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="window"):
        RetrievalMetricsHandler(window=0)
    with pytest.raises(ConfigError, match="max_in_flight"):
        RetrievalMetricsHandler(max_in_flight=-1)
    with pytest.raises(ConfigError, match="max_series"):
        RetrievalMetricsHandler(max_series=0)


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


# ---------------------------------------------------------------------- health
def monitoring(**kwargs: Any) -> MonitoringSettings:
    return MonitoringSettings(**{"min_requests": 5, **kwargs})


def test_cold_start_is_healthy(retriever: HybridRetriever) -> None:
    status = HealthMonitor(retriever, RetrievalMetricsHandler()).health_check()
    assert status.status == "healthy"
    assert status.exit_code == 0
    vector = status.check("vector_store")
    assert vector is not None
    assert (vector.status, vector.value) == ("healthy", len(TEXTS))
    bm25 = status.check("bm25_index")
    assert bm25 is not None
    assert bm25.status == "healthy"
    for name in ("error_rate", "latency_p95", "degraded_answers"):
        check = status.check(name)
        assert check is not None
        assert check.status == "skipped"
    assert HealthMonitor(retriever).health_check().status == "healthy"  # no handler at all


def detail(status: HealthStatus, name: str) -> str:
    check = status.check(name)
    assert check is not None
    return check.detail


def degraded_checks(status: HealthStatus) -> list[str]:
    return [c.name for c in status.checks if c.status == "degraded"]


def test_bm25_out_of_sync_is_degraded(retriever: HybridRetriever) -> None:
    retriever.store.begin_write()  # a completed write by "another process": BM25 is behind it
    retriever.store.end_write()
    status = HealthMonitor(retriever).health_check()
    assert status.status == "degraded"
    assert degraded_checks(status) == ["bm25_index"]
    assert "out of sync" in detail(status, "bm25_index")
    assert "generation 2 vs 4" in detail(status, "bm25_index")
    retriever.refresh()
    assert HealthMonitor(retriever).health_check().status == "healthy"


def test_a_write_under_way_is_healthy(retriever: HybridRetriever) -> None:
    monitor = HealthMonitor(retriever)
    assert retriever.bm25.generation == 2
    retriever.store.begin_write()  # generation 3: the write has begun, nothing landed yet
    status = monitor.health_check()
    assert status.status == "healthy"
    assert "a write is under way (generation 3)" in detail(status, "bm25_index")
    retriever.store.client.get_collection(retriever.store.config.chroma_collection).delete(
        ids=["net-1"]
    )  # half of the write has landed: the counts differ, which is expected mid-write
    assert monitor.health_check().status == "healthy"
    retriever.store.end_write()  # generation 4, and BM25 of this retriever never got the write
    status = monitor.health_check()
    assert degraded_checks(status) == ["bm25_index"]
    assert "generation 2 vs 4, 10 vs 9 documents" in detail(status, "bm25_index")
    retriever.refresh()
    assert monitor.health_check().status == "healthy"


def test_bm25_behind_a_completed_write_is_degraded_during_the_next(
    retriever: HybridRetriever,
) -> None:
    retriever.store.begin_write()
    retriever.store.end_write()  # 4: completed, BM25 still at 2
    retriever.store.begin_write()  # 5: the next write is under way
    status = HealthMonitor(retriever).health_check()
    assert degraded_checks(status) == ["bm25_index"]
    text = detail(status, "bm25_index")
    assert "generation 2, behind generation 4" in text
    assert "a write is under way (generation 5)" in text


def test_a_write_between_the_two_generation_reads_is_under_way(
    retriever: HybridRetriever, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = retriever.store
    reads = iter([2, 4])  # a whole write landed between the reads: the count is of neither
    monkeypatch.setattr(store, "generation", lambda: next(reads))
    monkeypatch.setattr(store, "count", lambda: 99)
    status = HealthMonitor(retriever).health_check()
    assert status.status == "healthy"
    assert "generation 2 -> 4 during the check" in detail(status, "bm25_index")


def test_an_odd_generation_that_stays_is_a_dead_write(retriever: HybridRetriever) -> None:
    monitor = HealthMonitor(retriever, stuck_write_seconds=0.2)
    retriever.store.begin_write()  # a write that failed midway and was never ended
    assert monitor.health_check().status == "healthy"  # first seen: a write under way
    time.sleep(0.3)
    status = monitor.health_check()
    assert degraded_checks(status) == ["bm25_index"]
    assert "stayed odd" in detail(status, "bm25_index")
    assert "stuck_write_seconds=0.2" in detail(status, "bm25_index")
    assert HealthMonitor(retriever).health_check().status == "healthy"  # a new monitor: seen now
    assert HealthMonitor(retriever, stuck_write_seconds=None).health_check().status == "healthy"
    retriever.store.end_write()  # the write ends at last (4)
    retriever.refresh()
    assert monitor.health_check().status == "healthy"
    retriever.store.begin_write()  # the next write (5): a new odd generation, a new clock
    assert monitor.health_check().status == "healthy"
    with pytest.raises(ConfigError, match="stuck_write_seconds"):
        HealthMonitor(retriever, stuck_write_seconds=-1)


def test_writes_of_a_live_writer_process_and_of_a_dead_one(tmp_path: Path) -> None:
    directory = tmp_path / "index"
    retriever = HybridRetriever.from_documents(
        documents(), embedding=HashEmbeddings(), persist_directory=directory, collection_name="kb"
    )
    monitor = HealthMonitor(retriever)
    assert holds_writer_lock(directory)  # this process wrote: it is the writer
    retriever.store.begin_write()
    status = monitor.health_check()
    assert status.status == "healthy", status.format()
    retriever.store.end_write()
    retriever.refresh()
    assert monitor.health_check().status == "healthy"

    release_writer_lock(directory)  # from here on this process only reads
    holder = hold_writer_lock(directory)
    try:
        retriever.store.begin_write()  # the holder's write, under way
        status = monitor.health_check()
        assert status.status == "healthy", status.format()
        for name in ("bm25_index", "bm25_files"):
            assert "a write is under way (generation 5)" in detail(status, name)
        assert not holds_writer_lock(directory)  # the check did not take the lock
        assert (directory / LOCK_NAME).read_text() == str(holder.pid)
    finally:
        holder.kill()  # the writer dies in the middle of its write
        holder.communicate(timeout=30)
    status = monitor.health_check()
    assert status.status == "degraded"
    assert degraded_checks(status) == ["bm25_index", "bm25_files"]
    for name in ("bm25_index", "bm25_files"):
        text = detail(status, name)
        assert "the write at generation 5 never finished" in text
        assert "no process holds the writer lock" in text
    assert retriever.store.generation() == 5  # reported, not settled
    retriever.refresh()  # what a reader does: marks the dead write complete, resyncs BM25
    assert retriever.store.generation() == 6
    assert monitor.health_check().status == "healthy"


def test_error_rate_over_threshold(retriever: HybridRetriever) -> None:
    metrics = RetrievalMetricsHandler()
    monitor = HealthMonitor(retriever, metrics, monitoring(error_rate_threshold=0.2))
    for query in QUERIES[:4]:
        retriever.invoke(query, config=cfg(metrics))
    with pytest.raises(HybridRetrieverError):
        retriever.invoke("coffee", filter=BAD_FILTER, config=cfg(metrics))
    status = monitor.health_check()
    assert status.status == "healthy"  # 1 of 5: 20% is not above 20%
    with pytest.raises(HybridRetrieverError):
        retriever.invoke("coffee", filter=BAD_FILTER, config=cfg(metrics))
    status = monitor.health_check()
    assert status.status == "degraded"
    check = status.check("error_rate")
    assert check is not None
    assert check.status == "degraded"
    assert check.value == pytest.approx(2 / 6)
    assert status.check("vector_store").status == "healthy"  # type: ignore[union-attr]


def test_every_recent_retrieval_failing_is_unhealthy(retriever: HybridRetriever) -> None:
    metrics = RetrievalMetricsHandler()
    for _ in range(5):
        with pytest.raises(HybridRetrieverError):
            retriever.invoke("coffee", filter=BAD_FILTER, config=cfg(metrics))
    status = HealthMonitor(retriever, metrics, monitoring()).health_check()
    assert status.status == "unhealthy"
    assert status.exit_code == 2


def test_latency_and_degraded_answer_rules(retriever: HybridRetriever) -> None:
    metrics = RetrievalMetricsHandler()
    for query in QUERIES[:5]:
        retriever.invoke(query, config=cfg(metrics))
    slow = HealthMonitor(retriever, metrics, monitoring(p95_threshold_ms=0.001)).health_check()
    assert slow.check("latency_p95").status == "degraded"  # type: ignore[union-attr]
    assert slow.status == "degraded"
    break_vector_leg(retriever)
    for query in ("python", "router"):
        retriever.invoke(query, config=cfg(metrics))
    status = HealthMonitor(retriever, metrics, monitoring()).health_check()
    degraded = status.check("degraded_answers")
    assert degraded is not None
    assert degraded.status == "degraded"
    assert degraded.value == pytest.approx(2 / 7)
    assert status.check("vector_store").status == "degraded"  # type: ignore[union-attr]
    assert status.status == "degraded"  # BM25 still answers


def test_rules_use_only_recent_traffic(retriever: HybridRetriever) -> None:
    metrics = RetrievalMetricsHandler()
    for _ in range(5):
        with pytest.raises(HybridRetrieverError):
            retriever.invoke("coffee", filter=BAD_FILTER, config=cfg(metrics))
    assert HealthMonitor(retriever, metrics, monitoring()).health_check().status == "unhealthy"
    for query in QUERIES[:5]:
        retriever.invoke(query, config=cfg(metrics))
    window = monitoring(window=5)  # the last 5 retrievals are all good
    assert HealthMonitor(retriever, metrics, window).health_check().status == "healthy"
    time.sleep(0.05)
    aged = HealthMonitor(retriever, metrics, monitoring(), max_age_seconds=0.01).health_check()
    assert aged.status == "healthy"
    assert aged.check("error_rate").status == "skipped"  # type: ignore[union-attr]


def test_both_legs_broken_is_unhealthy(retriever: HybridRetriever) -> None:
    break_vector_leg(retriever)
    assert HealthMonitor(retriever).health_check().status == "degraded"
    retriever.bm25 = None  # type: ignore[assignment]
    status = HealthMonitor(retriever).health_check()
    assert status.status == "unhealthy"
    assert status.check("vector_store").status == "unhealthy"  # type: ignore[union-attr]
    assert status.check("bm25_index").status == "unhealthy"  # type: ignore[union-attr]


def test_vector_only_retriever_with_the_store_down_is_unhealthy(
    retriever: HybridRetriever,
) -> None:
    retriever.weights = (0.0, 1.0)
    break_vector_leg(retriever)
    assert HealthMonitor(retriever).health_check().status == "unhealthy"


def test_health_check_does_not_touch_the_cache(
    retriever: HybridRetriever, embedding: HashEmbeddings
) -> None:
    metrics = RetrievalMetricsHandler()
    for query in [*QUERIES[:3], QUERIES[0]]:
        retriever.invoke(query, config=cfg(metrics))
    assert retriever.cache is not None
    before = (retriever.cache.stats(), embedding.embedded_queries, hybrid(metrics)["count"])
    monitor = HealthMonitor(retriever, metrics)
    monitor.health_check()
    monitor.report_json()
    assert (retriever.cache.stats(), embedding.embedded_queries, hybrid(metrics)["count"]) == before


def test_extra_checks_and_a_broken_one(retriever: HybridRetriever) -> None:
    def llm_reachable() -> HealthCheck:
        return HealthCheck("llm", "healthy", "answering")

    def broken_rule() -> HealthCheck:
        msg = "cannot tell"
        raise RuntimeError(msg)

    status = HealthMonitor(retriever, extra_checks=[llm_reachable, broken_rule]).health_check()
    assert status.check("llm") == HealthCheck("llm", "healthy", "answering")
    broken = status.check("broken_rule")
    assert broken is not None
    assert broken.status == "unhealthy"
    assert "cannot tell" in broken.detail
    assert status.status == "unhealthy"


def test_report_json_has_everything_and_no_secrets(collection_name: str) -> None:
    client = chromadb.EphemeralClient(settings=Settings(anonymized_telemetry=False))
    config = StoreConfig(
        mode="http",
        host="chroma.internal",
        token="tok-s3cr3t",  # noqa: S106 - the point is that it never shows
        headers={"X-Api-Key": "hdr-s3cr3t"},
        collection=collection_name,
    )
    retriever = HybridRetriever.from_store(ChromaStore(config, client=client), HashEmbeddings())
    retriever.add_documents(documents())
    metrics = RetrievalMetricsHandler()
    retriever.invoke("coffee", config=cfg(metrics))
    with pytest.raises(HybridRetrieverError):
        retriever.invoke("coffee", filter=BAD_FILTER, config=cfg(metrics))
    text = HealthMonitor(retriever, metrics).report_json()
    assert "s3cr3t" not in text
    report = json.loads(text)
    assert set(report) == {"health", "metrics", "recent_errors", "config"}
    assert report["health"]["status"] == "healthy"
    assert report["metrics"]["retrievers"][HYBRID]["count"] == 2
    assert [e["leg"] for e in report["recent_errors"]] == ["all"]
    assert "InvalidFilterError" in report["recent_errors"][0]["error"]
    config_summary = report["config"]
    assert config_summary["store_mode"] == "http"
    assert config_summary["store_location"] == "http://chroma.internal:8000"
    assert config_summary["collection"] == collection_name
    assert (config_summary["k"], config_summary["weights"]) == (4, [0.5, 0.5])


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
    code = (
        "import sys, langchain_hybrid, langchain_hybrid.cli, langchain_hybrid.retrievers\n"
        "before = set(sys.modules)\n"
        "import langchain_hybrid.callbacks\n"
        "new = set(sys.modules) - before\n"
        "print(sorted(m for m in new if m.startswith(('prometheus_client', 'opentelemetry'))))\n"
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


# ---------------------------------------------------------------------- CLI
GLOBAL = ["--path", "index", "--collection", "kb"]


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the CLI in tmp_path, with no settings from the environment and HashEmbeddings."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name == "LANGCHAIN_HYBRID_CONFIG" or (
            name.startswith("LANGCHAIN_HYBRID_") and "__" in name
        ):
            monkeypatch.delenv(name)
    emb = HashEmbeddings()
    monkeypatch.setattr(cli, "make_embedding", lambda _settings: emb)
    docs = tmp_path / "docs"
    docs.mkdir()
    for doc_id, text, _ in TEXTS:
        (docs / f"{doc_id}.txt").write_text(text, encoding="utf-8")
    return tmp_path


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main([*GLOBAL, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.usefixtures("in_tmp")
def test_cli_health_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "index", "docs")[0] == 0
    code, out, err = run_cli(capsys, "health")
    assert (code, err) == (0, "")
    assert out.startswith("status: healthy")
    assert "vector_store" in out
    assert "bm25_files" in out

    code, out, _ = run_cli(capsys, "health", "--json")
    report = json.loads(out)
    assert code == 0
    assert report["health"]["status"] == "healthy"
    assert report["config"]["collection"] == "kb"
    checks = {c["name"]: c for c in report["health"]["checks"]}
    assert checks["bm25_index"]["value"] == len(TEXTS)
    assert checks["error_rate"]["status"] == "skipped"

    manifest = Path("index/bm25/kb/manifest.json").read_bytes()
    store = ChromaStore(StoreConfig(path="index", collection="kb"))
    store.begin_write()  # a write by another writer, completed: the saved BM25 is behind it
    store.end_write()
    code, out, _ = run_cli(capsys, "health")
    assert code == 1
    assert out.startswith("status: degraded")
    assert cli_degraded(out) == ["bm25_index", "bm25_files"]
    assert Path("index/bm25/kb/manifest.json").read_bytes() == manifest  # nothing rebuilt


def cli_degraded(out: str) -> list[str]:
    return [line.split()[1] for line in out.splitlines()[1:] if line.split()[0] == "degraded"]


@pytest.mark.usefixtures("in_tmp")
def test_cli_health_during_a_write_and_after_its_writer_died(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_cli(capsys, "index", "docs")[0] == 0
    assert holds_writer_lock("index")  # the `index` command ran here: this process writes
    manifest = Path("index/bm25/kb/manifest.json").read_bytes()
    store = ChromaStore(StoreConfig(path="index", collection="kb"))
    generation = store.begin_write()
    code, out, _ = run_cli(capsys, "health")
    assert (code, cli_degraded(out)) == (0, [])
    assert f"a write is under way (generation {generation})" in out

    release_writer_lock("index")  # as if the writer had died: the write never ends
    code, out, _ = run_cli(capsys, "health", "--json")
    report = json.loads(out)
    assert code == 1
    checks = {c["name"]: c for c in report["health"]["checks"]}
    for name in ("bm25_index", "bm25_files"):
        assert checks[name]["status"] == "degraded"
        assert f"the write at generation {generation} never finished" in checks[name]["detail"]
    assert store.generation() == generation  # health settles nothing, rebuilds nothing
    assert Path("index/bm25/kb/manifest.json").read_bytes() == manifest
    assert not holds_writer_lock("index")


@pytest.mark.usefixtures("in_tmp")
def test_cli_health_without_an_index_is_unhealthy_and_creates_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = cli.main(["--path", "nowhere", "health"]), *capsys.readouterr()
    assert code == 2
    assert out.startswith("status: unhealthy")
    assert "no index at nowhere" in out
    assert "Traceback" not in out + err
    assert not Path("nowhere").exists()
    code = cli.main(["--path", "nowhere", "health", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 2
    assert report["health"]["status"] == "unhealthy"
    assert not Path("nowhere").exists()


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
