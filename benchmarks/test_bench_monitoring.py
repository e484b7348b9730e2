"""What watching costs: a hybrid query with and without ``RetrievalMetricsHandler`` attached.

Same retriever, same queries, same run (group ``monitoring``):

* ``plain``: ``HybridRetriever.invoke(query)`` at ``BENCH_MONITORING_DOCS`` documents (2000),
  cache off (``cache=False``, so every round runs both legs), ``HashingEmbeddings``;
* ``noop_handler``: the same call with a ``BaseCallbackHandler`` that does nothing: the cost of
  being watched at all. With no handler the retriever skips the legs' child runs; with any
  handler each leg becomes a child retriever run (LangChain's run bookkeeping, and the leg's
  ``fetch_k`` candidates built as ``Document`` objects and read back);
* ``with_handler``: the same call with ``config={"callbacks": [RetrievalMetricsHandler()]}``.
  ``extra_info``: ``overhead_ratio_p50`` (median over ``plain``'s) and ``ratio_to_noop_p50``
  (over ``noop_handler``'s), when those were timed in this run;
* ``handler_events``: the handler alone, replaying one hybrid query's seven events (three
  starts, the cache event, three ends) on fresh run ids: its own cost per query, with
  ``extra_info["share_of_plain_p50"]``. It then times ``PAIRS`` queries with the no-op and the
  metrics handler back to back (alternating which goes first), since separate benchmarks on a
  busy machine drift more than the handler costs: ``paired_handler_minus_noop_us_p50`` (median
  of the per-query differences) and ``paired_share_of_plain`` (that over ``plain``'s median).

Timing is reported, not asserted; each benchmark checks its results (same documents with and
without the handler, exact counts in the handler).
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from corpus import BenchSettings, Corpus, HashingEmbeddings, QueryCycle, generate_corpus
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.runnables import RunnableConfig

from langchain_hybrid.cache import CACHE_EVENT
from langchain_hybrid.metrics import RetrievalMetricsHandler
from langchain_hybrid.retrievers import HybridRetriever

GROUP = "monitoring"
K = 10
CHECKED = 50
PAIRS = 300
MEDIANS: dict[str, float] = {}  # benchmark name -> median seconds, filled as the group runs


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return generate_corpus(int(os.environ.get("BENCH_MONITORING_DOCS") or 2_000), seed=3)


@pytest.fixture(scope="module")
def retriever(corpus: Corpus, embeddings: HashingEmbeddings) -> Iterator[HybridRetriever]:
    retriever = HybridRetriever.from_documents(
        corpus.documents(),
        embedding=embeddings,
        collection_name=f"bench-mon-{uuid.uuid4().hex[:12]}",
        k=K,
        cache=False,  # measure searches, not result-cache hits
    )
    yield retriever
    retriever.store.client.delete_collection(retriever.store.config.chroma_collection)


def _rounds(settings: BenchSettings) -> tuple[int, int]:
    return settings.rounds, settings.warmup(settings.rounds)


def _record(benchmark: Any, name: str) -> float | None:
    stats = getattr(benchmark, "stats", None)
    if stats is None:  # --benchmark-disable: nothing timed
        return None
    MEDIANS[name] = float(stats.stats.median)
    return MEDIANS[name]


def _ids(documents: list[Document]) -> list[str | None]:
    return [d.id for d in documents]


@pytest.mark.benchmark(group=GROUP)
def test_monitoring_plain(
    benchmark: Any, settings: BenchSettings, corpus: Corpus, retriever: HybridRetriever
) -> None:
    rounds, warmup = _rounds(settings)
    benchmark.extra_info.update(docs=len(corpus), k=K, handler=None)
    documents = benchmark.pedantic(
        retriever.invoke,
        setup=QueryCycle(corpus.queries),
        rounds=rounds,
        warmup_rounds=warmup,
        iterations=1,
    )
    _record(benchmark, "plain")
    assert len(documents) == K
    assert all("degraded" not in d.metadata for d in documents)


class _Noop(BaseCallbackHandler):
    """A handler that does nothing: what LangChain and the retriever cost when watched."""


@pytest.mark.benchmark(group=GROUP)
def test_monitoring_noop_handler(
    benchmark: Any, settings: BenchSettings, corpus: Corpus, retriever: HybridRetriever
) -> None:
    rounds, warmup = _rounds(settings)
    config: RunnableConfig = {"callbacks": [_Noop()]}
    benchmark.extra_info.update(docs=len(corpus), k=K, handler="no-op")
    documents = benchmark.pedantic(
        retriever.invoke,
        setup=QueryCycle(corpus.queries, config=config),
        rounds=rounds,
        warmup_rounds=warmup,
        iterations=1,
    )
    median = _record(benchmark, "noop")
    if median is not None and "plain" in MEDIANS:
        benchmark.extra_info["overhead_ratio_p50"] = round(median / MEDIANS["plain"], 4)
    assert len(documents) == K
    for query in corpus.queries[:CHECKED]:  # watched or not, the same answers
        assert _ids(retriever.invoke(query, config=config)) == _ids(retriever.invoke(query))


@pytest.mark.benchmark(group=GROUP)
def test_monitoring_with_handler(
    benchmark: Any, settings: BenchSettings, corpus: Corpus, retriever: HybridRetriever
) -> None:
    rounds, warmup = _rounds(settings)
    metrics = RetrievalMetricsHandler()
    config: RunnableConfig = {"callbacks": [metrics]}
    benchmark.extra_info.update(docs=len(corpus), k=K, handler="RetrievalMetricsHandler")
    documents = benchmark.pedantic(
        retriever.invoke,
        setup=QueryCycle(corpus.queries, config=config),
        rounds=rounds,
        warmup_rounds=warmup,
        iterations=1,
    )
    median = _record(benchmark, "with_handler")
    for key, baseline in (("overhead_ratio_p50", "plain"), ("ratio_to_noop_p50", "noop")):
        if median is not None and baseline in MEDIANS:
            benchmark.extra_info[key] = round(median / MEDIANS[baseline], 4)
    assert len(documents) == K
    calls = 1 if settings.disabled else rounds + warmup
    series = metrics.snapshot()["retrievers"]["HybridRetriever"]
    assert series["count"] == calls
    assert series["errors"] == series["degraded"] == 0
    assert series["legs"]["bm25"]["count"] == series["legs"]["vector"]["count"] == calls
    for query in corpus.queries[:CHECKED]:  # the handler changes nothing in the answers
        assert _ids(retriever.invoke(query, config=config)) == _ids(retriever.invoke(query))
    assert metrics.snapshot()["in_flight"] == 0


class _Replay:
    """One hybrid query's callback events, as LangChain sends them, on fresh run ids."""

    def __init__(self, documents: list[Document]) -> None:
        self.documents = documents
        self.legs = documents * 5  # a leg returns fetch_k (50) candidates

    def setup(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (uuid.uuid4(), uuid.uuid4(), uuid.uuid4()), {}

    def __call__(self, root: uuid.UUID, bm25: uuid.UUID, vector: uuid.UUID) -> None:
        h = self.handler
        h.on_retriever_start({}, "q", run_id=root, name="HybridRetriever")
        h.on_retriever_start({}, "q", run_id=bm25, parent_run_id=root, name="bm25")
        h.on_retriever_start({}, "q", run_id=vector, parent_run_id=root, name="vector")
        h.on_retriever_end(self.legs, run_id=bm25, parent_run_id=root)
        h.on_retriever_end(self.legs, run_id=vector, parent_run_id=root)
        h.on_custom_event(CACHE_EVENT, {"hit": False}, run_id=root)
        h.on_retriever_end(self.documents, run_id=root)

    handler: RetrievalMetricsHandler


@pytest.mark.benchmark(group=GROUP)
def test_monitoring_handler_events(
    benchmark: Any, settings: BenchSettings, corpus: Corpus, retriever: HybridRetriever
) -> None:
    rounds, warmup = _rounds(settings)
    replay = _Replay(retriever.invoke(corpus.queries[0]))
    replay.handler = RetrievalMetricsHandler()
    benchmark.extra_info.update(events_per_query=7)
    benchmark.pedantic(
        replay, setup=replay.setup, rounds=rounds, warmup_rounds=warmup, iterations=1
    )
    median = _record(benchmark, "handler_events")
    if median is not None:
        benchmark.extra_info["handler_us_per_query_p50"] = round(median * 1e6, 2)
        if "plain" in MEDIANS:
            benchmark.extra_info["share_of_plain_p50"] = round(median / MEDIANS["plain"], 5)
    calls = 1 if settings.disabled else rounds + warmup
    series = replay.handler.snapshot()["retrievers"]["HybridRetriever"]
    assert (series["count"], series["cache"]["misses"], series["documents_mean"]) == (
        calls,
        calls,
        K,
    )
    assert series["legs"]["bm25"]["documents_mean"] == 5 * K
    if not settings.disabled:
        benchmark.extra_info.update(_paired(retriever, corpus.queries))


def _paired(retriever: HybridRetriever, queries: list[str]) -> dict[str, float]:
    """Per-query time with the metrics handler minus with a no-op one, interleaved."""
    configs: dict[str, RunnableConfig] = {
        "noop": {"callbacks": [_Noop()]},
        "metrics": {"callbacks": [RetrievalMetricsHandler()]},
    }
    times: dict[str, list[float]] = {"noop": [], "metrics": []}
    for i in range(PAIRS):
        query = queries[i % len(queries)]
        for name in ("noop", "metrics") if i % 2 else ("metrics", "noop"):
            started = time.perf_counter()
            retriever.invoke(query, config=configs[name])
            times[name].append(time.perf_counter() - started)
    diff = statistics.median(m - n for m, n in zip(times["metrics"], times["noop"], strict=True))
    out = {
        "paired_pairs": PAIRS,
        "paired_noop_ms_p50": round(statistics.median(times["noop"]) * 1e3, 4),
        "paired_metrics_ms_p50": round(statistics.median(times["metrics"]) * 1e3, 4),
        "paired_handler_minus_noop_us_p50": round(diff * 1e6, 2),
    }
    if "plain" in MEDIANS:
        out["paired_share_of_plain"] = round(diff / MEDIANS["plain"], 5)
    return out
