"""How latency grows with the corpus: 1k / 10k / 100k documents, one group per scale.

Scales (``BENCH_SCALES``, comma-separated document counts; default ``1000,10000,100000``, and
``300,1000`` with ``--benchmark-disable``). Each scale's corpus is generated (seed 5), embedded
with :class:`corpus.HashingEmbeddings` and indexed once (a module fixture per scale: the next
scale's index is built after the previous one is dropped), then every benchmark of group
``scale-<n>`` runs on it:

* ``leg[bm25|vector]``: ``HybridRetriever.rank_leg(leg, query, fetch_k=50)``, each leg as the
  hybrid runs it: ids and scores, no texts (the vector leg: embed the query, ids and distances
  from Chroma); the hybrid's target (issue 11) is ``hybrid_uncached`` <= 1.2x this vector leg;
* ``vector_only``: the same retriever answering from its vector leg alone (``invoke`` with
  ``weights=[0, 1]``: no BM25 leg, one fused leg, the final 10 texts read): what ``invoke``,
  fusion and hydration add to the vector leg without a second leg;
* ``fusion[zscore|rrf]``: the fusion function alone over two precomputed 50-long legs (the
  first :data:`FUSION_QUERIES` queries' real BM25 and vector results), checked against a
  reference computed here with numpy;
* ``hybrid_uncached``: ``HybridRetriever(cache=False, k=10, fetch_k=50)``, default fusion
  (z-score), ``invoke`` with the corpus's 200 queries in turn;
* ``hybrid_cached``: a retriever with the result cache on (sharing the same Chroma collection
  and BM25 index), ``invoke`` of one repeated query: every timed round is a cache hit;
* ``langchain_ensemble`` (the group's baseline): LangChain's recipe,
  ``EnsembleRetriever([BM25Retriever(k=10), Chroma.as_retriever(k=10)])``. ``BM25Retriever``
  scans the whole corpus per query (the ensemble took 137 ms p50 at 100k here), so it gets
  ``min(BENCH_ROUNDS // 10, 1_000_000 // n)`` rounds (at least 5): 10 at 100k. Its Chroma leg
  is LangChain's ``Chroma`` opened on *our* collection (same documents, same HNSW index,
  ``ef_search`` 200), so 100k vectors are not indexed twice.

Index build time (``extra_info["build_s"]``: Chroma + BM25 of ours, and LangChain's
``BM25Retriever``) is measured once per scale and attached to every benchmark of the group.
Indexing is dominated by Chroma's HNSW build (``ef_construction`` 200): 18 s at 10k and 238 s
at 100k on a 2-core machine (most of it in Chroma's ``upsert``), so the whole file takes about
5.5 minutes at the default scales. ``BENCH_SCALE_VECTOR_MAX`` (default: no cap) limits the
scales that get a vector index: above it only the BM25 documents are indexed and the vector,
hybrid and ensemble benchmarks of that scale are skipped (the BM25 leg always runs).
"""

from __future__ import annotations

import os
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from corpus import BenchSettings, Corpus, HashingEmbeddings, QueryCycle, generate_corpus
from langchain_chroma import Chroma
from langchain_classic.retrievers import EnsembleRetriever
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from langchain_hybrid.cache import CachedEmbeddings, LRUCache
from langchain_hybrid.fusion import LegRun, fuse, rrf, zscore
from langchain_hybrid.retrievers import LEGS, HybridRetriever, leg_run

with warnings.catch_warnings():  # langchain-community warns on import that it is sunset
    warnings.simplefilter("ignore", DeprecationWarning)
    from langchain_community.retrievers import BM25Retriever

K = 10
FETCH_K = 50
SEED = 5
CHECKED = 20  # queries re-run untimed for the correctness checks
CHECKED_SLOW = 3  # ... of the ensemble (BM25Retriever scans the whole corpus)
FUSION_QUERIES = 50
DEFAULT_SCALES = "1000,10000,100000"
DISABLED_SCALES = "300,1000"


def _scales(config: pytest.Config) -> list[int]:
    disabled = bool(config.getoption("benchmark_disable", default=False))
    raw = os.environ.get("BENCH_SCALES") or (DISABLED_SCALES if disabled else DEFAULT_SCALES)
    return [int(part) for part in raw.split(",") if part.strip()]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One module-scoped ``n_docs`` per scale, each its own benchmark group ``scale-<n>``."""
    if "n_docs" in metafunc.fixturenames:
        metafunc.parametrize(
            "n_docs",
            [
                pytest.param(n, id=str(n), marks=pytest.mark.benchmark(group=f"scale-{n}"))
                for n in _scales(metafunc.config)
            ],
            scope="module",
        )


@dataclass
class Scale:
    """One scale's corpus and indexes; ``stock`` is ``None`` when the vector part is capped."""

    corpus: Corpus
    ours: HybridRetriever
    cached: HybridRetriever | None
    stock: EnsembleRetriever | None
    stock_bm25: BM25Retriever | None
    stock_vector: BaseRetriever | None
    build_s: dict[str, float] = field(default_factory=dict)

    @property
    def has_vectors(self) -> bool:
        return self.cached is not None

    def info(self, role: str, **extra: Any) -> dict[str, Any]:
        return {"docs": len(self.corpus), "role": role, "build_s": self.build_s, **extra}


def _vector_cap() -> int | None:
    value = os.environ.get("BENCH_SCALE_VECTOR_MAX")
    return int(value) if value else None


@pytest.fixture(scope="module")
def scale(n_docs: int, embeddings: HashingEmbeddings) -> Iterator[Scale]:
    corpus = generate_corpus(n_docs, seed=SEED)
    documents = corpus.documents()
    cap = _vector_cap()
    with_vectors = cap is None or n_docs <= cap
    build: dict[str, float] = {}
    started = time.perf_counter()
    ours = HybridRetriever.from_documents(
        documents if with_vectors else [],
        embedding=embeddings,
        collection_name=f"bench-scale-{uuid.uuid4().hex[:12]}",
        k=K,
        fetch_k=FETCH_K,
        cache=False,  # the query list repeats: measure searches, not result-cache hits
    )
    if not with_vectors:  # BM25 only: the lexical index alone, from the same documents
        ours.bm25.add(corpus.ids, corpus.texts, [d.metadata for d in documents])
    build["ours"] = round(time.perf_counter() - started, 2)
    cached = stock = stock_bm25 = stock_vector = None
    if with_vectors:
        cached = HybridRetriever(  # what from_documents(cache=True) builds, on the same indexes
            store=ours.store,
            bm25=ours.bm25,
            embedding=CachedEmbeddings(embeddings),
            cache=LRUCache(10_000),
            k=K,
            fetch_k=FETCH_K,
        )
        started = time.perf_counter()
        stock_bm25 = BM25Retriever.from_documents(documents, k=K)
        build["langchain_bm25retriever"] = round(time.perf_counter() - started, 2)
        chroma = Chroma(
            collection_name=ours.store.config.chroma_collection,
            embedding_function=embeddings,
            client=ours.store.client,
        )
        stock_vector = chroma.as_retriever(search_kwargs={"k": K})
        stock = EnsembleRetriever(retrievers=[stock_bm25, stock_vector], weights=[0.5, 0.5])
    yield Scale(corpus, ours, cached, stock, stock_bm25, stock_vector, build)
    ours.store.client.delete_collection(ours.store.config.chroma_collection)


def _need_vectors(scale: Scale) -> None:
    if not scale.has_vectors:
        pytest.skip(f"no vector index at {len(scale.corpus)} docs (BENCH_SCALE_VECTOR_MAX)")


# ------------------------------------------------------------------ legs
@pytest.mark.parametrize("leg", LEGS)
def test_scale_leg(benchmark: Any, settings: BenchSettings, scale: Scale, leg: str) -> None:
    if leg == "vector":
        _need_vectors(scale)
    corpus, ours = scale.corpus, scale.ours
    benchmark.extra_info.update(scale.info("ours", k=FETCH_K))
    ranked = benchmark.pedantic(
        ours.rank_leg,
        setup=QueryCycle(corpus.queries, leg, fetch_k=FETCH_K),
        rounds=settings.rounds,
        warmup_rounds=settings.warmup(settings.rounds),
        iterations=1,
    )
    assert ranked
    for query in corpus.queries[:CHECKED]:
        hits = ours.search_leg(leg, query, k=FETCH_K)
        assert [h.id for h in ours.rank_leg(leg, query, fetch_k=FETCH_K)] == [h.id for h in hits]
        if leg == "bm25":
            matching = int(np.count_nonzero(ours.bm25.scores(query) > 0.0))
            assert len(hits) == min(FETCH_K, matching), query
            assert [h.id for h in hits] == [h.id for h in ours.bm25.search(query, FETCH_K)]
        else:
            assert len(hits) == min(FETCH_K, len(corpus)), query
        assert len({h.id for h in hits}) == len(hits), query
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True), query
        assert all(h.text == corpus.texts[int(h.id.removeprefix("doc-"))] for h in hits), query


# ------------------------------------------------------------------ fusion
def _reference(method: str, runs: list[LegRun]) -> dict[str, float]:
    """Fused score of every document, computed independently (numpy, 0.5/0.5 weights).

    The rule of ``langchain_hybrid.fusion`` restated: ``rrf`` sums ``0.5 / (60 + rank)`` with
    tied scores sharing the mean of their ranks; ``zscore`` sums, over the legs that returned a
    document, ``0.5 * (score - credit) / sigma``, where sigma is the leg's population's (the BM25
    leg) or its hits', and the credit is the floor of a complete list or the last hit's score.
    """
    fused: dict[str, float] = {}
    for run in runs:
        if not run.hits:
            continue
        scores = np.array([score for _, score in run.hits])
        if method == "rrf":
            ranks = np.array([np.mean(np.flatnonzero(scores == v)) + 1.0 for v in scores])
            values = 0.5 / (60.0 + ranks)
        else:
            if run.population is not None and run.population.size > 0:
                size, total, total_sq = run.population
                sigma = float(np.sqrt(max(total_sq / size - (total / size) ** 2, 0.0)))
            else:
                sigma = float(scores.std())
            complete = run.floor is not None and len(run.hits) < (run.depth or 0)
            credit = run.floor if complete else float(scores.min())
            values = 0.5 * (scores - credit) / sigma if sigma > 0 else np.zeros_like(scores)
        for (doc_id, _), value in zip(run.hits, values, strict=True):
            fused[doc_id] = fused.get(doc_id, 0.0) + float(value)
    return fused


@pytest.mark.parametrize("method", ["zscore", "rrf"])
def test_scale_fusion(benchmark: Any, settings: BenchSettings, scale: Scale, method: str) -> None:
    _need_vectors(scale)
    corpus, ours = scale.corpus, scale.ours
    all_runs = [  # what the retriever fuses: BM25 with its population, floor and depth
        [leg_run(leg, ours.rank_leg(leg, query, fetch_k=FETCH_K), FETCH_K) for leg in LEGS]
        for query in corpus.queries[:FUSION_QUERIES]
    ]
    function = {"zscore": zscore, "rrf": rrf}[method]
    lengths = [len(run.hits) for runs in all_runs for run in runs]
    benchmark.extra_info.update(scale.info("ours", mean_leg_length=round(float(np.mean(lengths)))))
    fused = benchmark.pedantic(
        function,
        setup=QueryCycle(all_runs, weights=(0.5, 0.5)),
        rounds=settings.rounds,
        warmup_rounds=settings.warmup(settings.rounds),
        iterations=1,
    )
    assert fused
    for runs in all_runs:
        fused = function(runs, (0.5, 0.5))
        assert fused == fuse(method, runs, (0.5, 0.5))
        reference = _reference(method, runs)
        assert {f.id for f in fused} == set(reference)
        np.testing.assert_allclose(
            [f.score for f in fused], [reference[f.id] for f in fused], atol=1e-12
        )
        scores = [f.score for f in fused]
        assert scores == sorted(scores, reverse=True)


# ------------------------------------------------------------------ hybrid
def _ids(documents: list[Document]) -> list[str | None]:
    return [d.id for d in documents]


def _check_hybrid(ours: HybridRetriever, query: str, documents: list[Document]) -> None:
    """``documents`` are the fusion of the two legs, cut to ``k``, with their texts."""
    depth = ours.fetch_k
    runs = [leg_run(leg, ours.rank_leg(leg, query, fetch_k=depth), depth) for leg in LEGS]
    expected = fuse(ours.fusion, runs, ours.weights, rrf_k=ours.rrf_k)[:K]
    assert _ids(documents) == [f.id for f in expected], query
    np.testing.assert_allclose(
        [d.metadata["hybrid_score"] for d in documents], [f.score for f in expected]
    )
    assert all(d.page_content for d in documents), query


def test_scale_hybrid_uncached(benchmark: Any, settings: BenchSettings, scale: Scale) -> None:
    _need_vectors(scale)
    corpus, ours = scale.corpus, scale.ours
    benchmark.extra_info.update(scale.info("ours", k=K, fetch_k=FETCH_K, fusion=ours.fusion))
    documents = benchmark.pedantic(
        ours.invoke,
        setup=QueryCycle(corpus.queries),
        rounds=settings.rounds,
        warmup_rounds=settings.warmup(settings.rounds),
        iterations=1,
    )
    assert len(documents) == K
    for query in corpus.queries[:CHECKED]:
        documents = ours.invoke(query)
        assert len(documents) == K == len(set(_ids(documents))), query
        _check_hybrid(ours, query, documents)


def test_scale_vector_only(benchmark: Any, settings: BenchSettings, scale: Scale) -> None:
    _need_vectors(scale)
    corpus, ours = scale.corpus, scale.ours
    benchmark.extra_info.update(scale.info("ours", k=K, fetch_k=FETCH_K, weights=[0.0, 1.0]))
    documents = benchmark.pedantic(
        ours.invoke,
        setup=QueryCycle(corpus.queries, weights=[0.0, 1.0]),
        rounds=settings.rounds,
        warmup_rounds=settings.warmup(settings.rounds),
        iterations=1,
    )
    assert len(documents) == K
    texts = dict(zip(corpus.ids, corpus.texts, strict=True))
    for query in corpus.queries[:CHECKED]:
        documents = ours.invoke(query, weights=[0.0, 1.0])
        leg = ours.rank_leg("vector", query, fetch_k=FETCH_K)
        assert _ids(documents) == [h.id for h in leg[:K]], query
        assert all(d.metadata["bm25_rank"] is None for d in documents), query
        assert [d.page_content for d in documents] == [texts[h.id] for h in leg[:K]], query


def test_scale_hybrid_cached(benchmark: Any, settings: BenchSettings, scale: Scale) -> None:
    _need_vectors(scale)
    corpus, ours, cached = scale.corpus, scale.ours, scale.cached
    assert cached is not None
    assert cached.cache is not None
    query = corpus.queries[0]
    before = cached.cache.stats()
    benchmark.extra_info.update(scale.info("ours", k=K, fetch_k=FETCH_K, fusion=cached.fusion))
    rounds, warmup = settings.rounds, settings.warmup(settings.rounds)
    documents = benchmark.pedantic(
        cached.invoke, args=(query,), rounds=rounds, warmup_rounds=warmup, iterations=1
    )
    stats = cached.cache.stats()
    calls = 1 if settings.disabled else rounds + warmup
    assert stats["misses"] - before["misses"] <= 1
    assert stats["hits"] - before["hits"] >= calls - 1
    benchmark.extra_info["cache_hit_rate"] = round(float(stats["hit_rate"]), 4)
    # a hit answers exactly what a search answers
    fresh = ours.invoke(query)
    assert _ids(documents) == _ids(fresh)
    assert [d.page_content for d in documents] == [d.page_content for d in fresh]
    assert [d.metadata for d in documents] == [d.metadata for d in fresh]
    _check_hybrid(ours, query, documents)
    for other in corpus.queries[1:CHECKED]:  # miss, then hit: both equal the uncached answer
        expected = ours.invoke(other)
        for _ in range(2):
            got = cached.invoke(other)
            assert _ids(got) == _ids(expected), other
            assert [d.metadata for d in got] == [d.metadata for d in expected], other


# ------------------------------------------------------------------ LangChain's recipe
def test_scale_langchain_ensemble(benchmark: Any, settings: BenchSettings, scale: Scale) -> None:
    _need_vectors(scale)
    corpus, stock = scale.corpus, scale.stock
    assert stock is not None
    assert scale.stock_bm25 is not None
    assert scale.stock_vector is not None
    rounds = max(5, min(settings.rounds // 10, 1_000_000 // len(corpus)))
    benchmark.extra_info.update(scale.info("baseline", k_per_leg=K))
    documents = benchmark.pedantic(
        stock.invoke,
        setup=QueryCycle(corpus.queries),
        rounds=rounds,
        warmup_rounds=settings.warmup(rounds),
        iterations=1,
    )
    assert K <= len(documents) <= 2 * K
    for query in corpus.queries[:CHECKED_SLOW]:
        texts = [d.page_content for d in stock.invoke(query)]
        union = {d.page_content for d in scale.stock_bm25.invoke(query)} | {
            d.page_content for d in scale.stock_vector.invoke(query)
        }
        assert len(texts) == len(set(texts)) == len(union), query
        assert set(texts) == union, query
