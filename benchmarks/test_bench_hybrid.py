"""Hybrid query latency at ``BENCH_HYBRID_DOCS`` documents: ours vs LangChain's stock recipe.

Same documents, same embedding model (:class:`corpus.HashingEmbeddings`, shared, so embedding
time is equal and small on both sides), same in-memory Chroma engine (one ephemeral client).

* ours: ``HybridRetriever.from_documents(..., k=10, fetch_k=50, fusion="rrf", cache=False)``,
  ``invoke(query)``: both legs at depth 50 (BM25 in a worker thread, vector in the caller's),
  weighted RRF as the ensemble does, cut to 10.
* baseline: ``EnsembleRetriever([BM25Retriever(k=10), Chroma.as_retriever(k=10)],
  weights=[0.5, 0.5])``, LangChain's documented hybrid recipe: legs run one after the other,
  the union of both top-10s is returned (10-20 documents).
* ours, one leg at a time (``rank_leg``, depth 50), and LangChain's Chroma leg alone (top 10),
  to show where the hybrid time goes.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import chromadb
import numpy as np
import pytest
from corpus import BenchSettings, Corpus, HashingEmbeddings, QueryCycle
from langchain_chroma import Chroma
from langchain_classic.retrievers import EnsembleRetriever
from langchain_core.retrievers import BaseRetriever

from langchain_hybrid.fusion import rrf
from langchain_hybrid.retrievers import HybridRetriever

with warnings.catch_warnings():  # langchain-community warns on import that it is sunset
    warnings.simplefilter("ignore", DeprecationWarning)
    from langchain_community.retrievers import BM25Retriever

K = 10
FETCH_K = 50
GROUP = "hybrid"
MIN_SIMILARITY_RATIO = 0.9  # summed similarity of the HNSW top 10 over the exact top 10's
CHECKED = 50  # queries re-run untimed for the correctness checks


@pytest.fixture(scope="module")
def ours(hybrid_corpus: Corpus, embeddings: HashingEmbeddings) -> Iterator[HybridRetriever]:
    retriever = HybridRetriever.from_documents(
        hybrid_corpus.documents(),
        embedding=embeddings,
        collection_name=f"bench-{uuid.uuid4().hex[:12]}",
        k=K,
        fetch_k=FETCH_K,
        fusion="rrf",  # what EnsembleRetriever does (weighted RRF, rrf_k 60)
        cache=False,  # the query list repeats: measure searches, not result-cache hits
    )
    yield retriever
    retriever.store.client.delete_collection(retriever.store.config.chroma_collection)


@dataclass(frozen=True, slots=True)
class Stock:
    """LangChain's recipe: the ensemble and its two legs."""

    ensemble: EnsembleRetriever
    bm25: BM25Retriever
    vector: BaseRetriever


@pytest.fixture(scope="module")
def stock(
    hybrid_corpus: Corpus, embeddings: HashingEmbeddings, ours: HybridRetriever
) -> Iterator[Stock]:
    client: chromadb.ClientAPI = ours.store.client  # one ephemeral Chroma per process
    name = f"bench-lc-{uuid.uuid4().hex[:12]}"
    documents = hybrid_corpus.documents()
    store = Chroma.from_documents(
        documents, embeddings, ids=hybrid_corpus.ids, collection_name=name, client=client
    )
    bm25 = BM25Retriever.from_documents(documents, k=K)
    vector = store.as_retriever(search_kwargs={"k": K})
    yield Stock(EnsembleRetriever(retrievers=[bm25, vector], weights=[0.5, 0.5]), bm25, vector)
    client.delete_collection(name)


@dataclass(frozen=True, slots=True)
class Exact:
    """Brute-force cosine similarity of every query to every document."""

    similarity: dict[str, np.ndarray]
    position: dict[str, int]

    def quality(self, query: str, ids: list[str]) -> tuple[float, float]:
        """Recall@k of ``ids`` and their summed similarity over the exact top-k's."""
        sims = self.similarity[query]
        exact = np.argsort(-sims, kind="stable")[: len(ids)]
        found = np.array([self.position[i] for i in ids])
        recall = len(set(found.tolist()) & set(exact.tolist())) / len(ids)
        return recall, float(sims[found].sum() / sims[exact].sum())


@pytest.fixture(scope="module")
def exact(hybrid_corpus: Corpus, embeddings: HashingEmbeddings) -> Exact:
    vectors = embeddings.embed_array(hybrid_corpus.texts)
    queries = embeddings.embed_array(hybrid_corpus.queries[:CHECKED])
    similarity = queries @ vectors.T
    return Exact(
        dict(zip(hybrid_corpus.queries, similarity, strict=False)),
        {doc_id: i for i, doc_id in enumerate(hybrid_corpus.ids)},
    )


@pytest.mark.benchmark(group=GROUP)
def test_hybrid_ours(
    benchmark, settings: BenchSettings, hybrid_corpus: Corpus, ours: HybridRetriever
) -> None:
    benchmark.extra_info.update(
        docs=len(hybrid_corpus), role="ours", k=K, fetch_k=FETCH_K, fusion=ours.fusion
    )
    documents = benchmark.pedantic(
        ours.invoke,
        setup=QueryCycle(hybrid_corpus.queries),
        rounds=settings.rounds,
        warmup_rounds=settings.warmup(settings.rounds),
        iterations=1,
    )
    assert len(documents) == K
    for query in hybrid_corpus.queries[:CHECKED]:
        documents = ours.invoke(query)
        ids = [d.id for d in documents]
        assert len(ids) == K == len(set(ids)), query
        runs = [[(h.id, h.score) for h in ours.rank_leg(leg, query)] for leg in ("bm25", "vector")]
        fused = rrf(runs, ours.weights, rrf_k=ours.rrf_k)[:K]
        assert ids == [f.id for f in fused], f"invoke disagrees with RRF of the legs for {query!r}"
        np.testing.assert_allclose(
            [d.metadata["hybrid_score"] for d in documents], [f.score for f in fused]
        )


@pytest.mark.benchmark(group=GROUP)
def test_hybrid_langchain_ensemble(
    benchmark, settings: BenchSettings, hybrid_corpus: Corpus, stock: Stock
) -> None:
    rounds = max(5, settings.rounds // 10)
    benchmark.extra_info.update(docs=len(hybrid_corpus), role="baseline", k_per_leg=K)
    documents = benchmark.pedantic(
        stock.ensemble.invoke,
        setup=QueryCycle(hybrid_corpus.queries),
        rounds=rounds,
        warmup_rounds=settings.warmup(rounds),
        iterations=1,
    )
    assert K <= len(documents) <= 2 * K
    for query in hybrid_corpus.queries[:CHECKED]:
        texts = [d.page_content for d in stock.ensemble.invoke(query)]
        union = {d.page_content for d in stock.bm25.invoke(query)} | {
            d.page_content for d in stock.vector.invoke(query)
        }
        assert len(texts) == len(set(texts)) == len(union), query
        assert set(texts) == union, query


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("leg", ["bm25", "vector"])
def test_hybrid_ours_leg(
    benchmark, settings: BenchSettings, hybrid_corpus: Corpus, ours: HybridRetriever, leg: str
) -> None:
    benchmark.extra_info.update(docs=len(hybrid_corpus), role="ours", fetch_k=FETCH_K)
    hits = benchmark.pedantic(
        ours.rank_leg,
        setup=QueryCycle(hybrid_corpus.queries, leg),
        rounds=settings.rounds,
        warmup_rounds=settings.warmup(settings.rounds),
        iterations=1,
    )
    assert hits
    for query in hybrid_corpus.queries[:CHECKED]:
        hits = ours.rank_leg(leg, query)  # type: ignore[arg-type]
        matching = int(np.count_nonzero(ours.bm25.scores(query) > 0.0)) if leg == "bm25" else None
        assert len(hits) == min(FETCH_K, matching or FETCH_K), query
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True), query
        if leg == "bm25":
            assert [h.id for h in hits] == [h.id for h in ours.bm25.search(query, FETCH_K)]


@pytest.mark.benchmark(group=GROUP)
def test_hybrid_langchain_chroma_leg(
    benchmark, settings: BenchSettings, hybrid_corpus: Corpus, stock: Stock
) -> None:
    benchmark.extra_info.update(docs=len(hybrid_corpus), role="reference", k=K)
    documents = benchmark.pedantic(
        stock.vector.invoke,
        setup=QueryCycle(hybrid_corpus.queries),
        rounds=settings.rounds,
        warmup_rounds=settings.warmup(settings.rounds),
        iterations=1,
    )
    assert len(documents) == K


def test_vector_legs_quality(ours: HybridRetriever, stock: Stock, exact: Exact) -> None:
    """Both vector legs return (near-)exact nearest neighbours, so both do the same work.

    On these hashed bag-of-words vectors similarities are flat (a query's 10th and 100th
    neighbours differ little), so HNSW's recall@10 is only about 0.6 on both sides although
    what it returns is about 96% as similar as the exact top 10: the check is on that ratio.
    """
    ours_quality, stock_quality = [], []
    for query in exact.similarity:
        hits = ours.rank_leg("vector", query)[:K]
        ours_quality.append(exact.quality(query, [h.id for h in hits]))
        stock_quality.append(exact.quality(query, [str(d.id) for d in stock.vector.invoke(query)]))
    for quality in (ours_quality, stock_quality):
        recall, similarity_ratio = np.mean(quality, axis=0)
        assert similarity_ratio >= MIN_SIMILARITY_RATIO, (recall, similarity_ratio)
