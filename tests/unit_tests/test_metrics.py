# ruff: noqa: F811 - the fixtures imported from monitoring_chains are test arguments by name
"""The metrics handler on real LCEL chains: counts, legs, cache, bounds, concurrency, errors.

Every chain here is real: ``HybridRetriever | RunnableLambda | ChatPromptTemplate |
FakeListChatModel`` over in-process Chroma with the deterministic ``HashEmbeddings``; failures
are real too (the Chroma collection is deleted under the retriever, or a filter is invalid).
"""

from __future__ import annotations

import logging
import threading
import uuid

import pytest
from helpers import HashEmbeddings
from monitoring_chains import (  # noqa: F401 - embedding, retriever: fixtures, used by name
    BAD_FILTER,
    HYBRID,
    QUERIES,
    assert_latency_ordered,
    break_vector_leg,
    cfg,
    documents,
    embedding,
    hybrid,
    make_chain,
    retriever,
)

from langchain_hybrid import (
    ConfigError,
    HybridRetriever,
    HybridRetrieverError,
)
from langchain_hybrid.metrics import (
    MAX_LEGS,
    OTHER,
    RetrievalMetricsHandler,
)


@pytest.fixture
def uncached(collection_name: str) -> HybridRetriever:
    return HybridRetriever.from_documents(
        documents(), embedding=HashEmbeddings(), collection_name=collection_name, k=4, cache=False
    )


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
        caplog.at_level(logging.WARNING, logger="langchain_hybrid.metrics"),
        pytest.raises(HybridRetrieverError),
    ):
        make_chain(retriever).invoke("coffee", config=cfg(metrics))
    series = hybrid(metrics)
    assert (series["count"], series["errors"], series["error_rate"]) == (1, 1, 1.0)
    assert series["degraded"] == 0
    assert series["latency_ms"]["max"] > 0
    assert series["legs"]["vector"]["errors"] == 1
    assert [e["leg"] for e in metrics.recent_errors()] == ["vector", "all"]
    logged = [r.getMessage() for r in caplog.records if r.name == "langchain_hybrid.metrics"]
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
    with caplog.at_level(logging.WARNING, logger="langchain_hybrid.metrics"):
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
    warnings = [r for r in caplog.records if r.name == "langchain_hybrid.metrics"]
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
