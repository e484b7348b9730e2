"""Latency cost of the optional query stages, rerank and ``group_by``, as ratios to plain hybrid.

``BENCH_HYBRID_DOCS`` documents (10,000; 1,000 under ``--benchmark-disable``), each with
``source = "s<n // 8>"`` (eight chunks per source), the shared hashing embedding, in-memory
Chroma; ``k=10``, ``fetch_k=50``, z-score fusion, result cache off. Variants of one retriever:

* ``plain``: ``invoke(query)`` (the group's baseline);
* ``group_by``: ``invoke(query, group_by="source")``;
* ``rerank``: a reranker over the fused top ``rerank_k=20``;
* ``group_by+rerank``: both;
* ``rerank(identity)``: a reranker that keeps the fused order (the stage's own overhead);
* ``group_by(6 groups)``: grouping by a key with fewer values than ``k``, so every query
  searches again at 4x and 16x ``fetch_k`` (the worst case of grouping).

The reranker is a cheap deterministic ``BaseDocumentCompressor`` (distinct query words per
document), so these figures are the stages' own overhead: a cross-encoder adds its inference
on ``rerank_k`` pairs per query on top. Separate benchmarks drift on a shared machine, so
``test_pipeline_ratios`` also times the four variants interleaved (each query through all of them,
in a seeded random order; ``BENCH_ROUNDS`` queries, cycling the query list) and stores the p50
ratios to plain in its ``extra_info``.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pytest
from corpus import BenchSettings, Corpus, HashingEmbeddings, QueryCycle
from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document

from langchain_hybrid.retrievers import HybridRetriever

K = 10
FETCH_K = 50
RERANK_K = 20
CHUNKS_PER_SOURCE = 8
SHELVES = 6  # fewer groups than k: every grouped query searches deeper, twice (the worst case)
GROUP = "pipeline"
_WORD = re.compile(r"\w+")


class OverlapReranker(BaseDocumentCompressor):
    """Orders documents by distinct query words they contain, then by id (deterministic)."""

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        words = set(_WORD.findall(query.lower()))
        scored = [
            (len(words & set(_WORD.findall(d.page_content.lower()))), d.id or "", d)
            for d in documents
        ]
        scored.sort(key=lambda s: (-s[0], s[1]))
        for score, _, doc in scored:
            doc.metadata["relevance_score"] = score
        return [doc for _, _, doc in scored]


class IdentityReranker(BaseDocumentCompressor):
    """Keeps the fused order: what the rerank stage costs besides the reranker's own work."""

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        return documents


RERANKER = OverlapReranker()
VARIANTS: dict[str, tuple[BaseDocumentCompressor | None, dict[str, Any]]] = {
    "plain": (None, {}),
    "group_by": (None, {"group_by": "source"}),
    "rerank": (RERANKER, {}),
    "group_by+rerank": (RERANKER, {"group_by": "source"}),
    "rerank(identity)": (IdentityReranker(), {}),
    "group_by(6 groups)": (None, {"group_by": "shelf"}),
}


@pytest.fixture(scope="module")
def retriever(hybrid_corpus: Corpus, embeddings: HashingEmbeddings) -> Iterator[HybridRetriever]:
    documents = [
        Document(
            id=doc.id,
            page_content=doc.page_content,
            metadata={
                **doc.metadata,
                "source": f"s{doc.metadata['n'] // CHUNKS_PER_SOURCE}",
                "shelf": f"h{doc.metadata['n'] % SHELVES}",
            },
        )
        for doc in hybrid_corpus.documents()
    ]
    retriever = HybridRetriever.from_documents(
        documents,
        embedding=embeddings,
        collection_name=f"bench-pipe-{uuid.uuid4().hex[:12]}",
        k=K,
        fetch_k=FETCH_K,
        rerank_k=RERANK_K,
        cache=False,  # the query list repeats: measure searches, not result-cache hits
    )
    yield retriever
    retriever.store.client.delete_collection(retriever.store.config.chroma_collection)


def _search(retriever: HybridRetriever, variant: str) -> Callable[[str], list[Document]]:
    """The variant's query function (its reranker is set on the retriever now)."""
    reranker, kwargs = VARIANTS[variant]
    retriever.reranker = reranker

    def search(query: str) -> list[Document]:
        return retriever.invoke(query, **kwargs)

    return search


def _check(variant: str, retriever: HybridRetriever, queries: Sequence[str]) -> None:
    """The variant's answers are what its stages promise, against the plain fused order."""
    reranker, kwargs = VARIANTS[variant]
    for query in queries:
        retriever.reranker = None
        fused = [d.id for d in retriever.invoke(query, k=FETCH_K)]  # same fetch_k: same fusion
        sources = {d.id: d.metadata["source"] for d in retriever.invoke(query, k=FETCH_K)}
        retriever.reranker = reranker
        docs = retriever.invoke(query, **kwargs)
        if kwargs.get("group_by") == "shelf":
            assert len(docs) == SHELVES == len({d.metadata["shelf"] for d in docs}), query
            continue  # fused again at 16x fetch_k: not comparable with the plain order
        assert len(docs) == K == len({d.id for d in docs}), query
        if "group_by" in kwargs:
            assert len({d.metadata["source"] for d in docs}) == K, query
            for doc in docs:  # the best of its source in the fused order
                before = fused[: fused.index(doc.id)] if doc.id in fused else []
                assert doc.metadata["source"] not in {sources[i] for i in before}, query
        if isinstance(reranker, IdentityReranker):
            assert [d.metadata["fused_rank"] for d in docs] == list(range(1, K + 1)), query
            assert [d.id for d in docs] == fused[:K], query
        elif reranker is not None:
            scores = [d.metadata["relevance_score"] for d in docs]
            assert scores == sorted(scores, reverse=True), query
            assert all(d.metadata["fused_rank"] <= RERANK_K for d in docs), query
        else:
            positions = [fused.index(d.id) for d in docs if d.id in fused]
            assert positions == sorted(positions), query  # the fused order is kept
            if "group_by" not in kwargs:
                assert [d.id for d in docs] == fused[:K], query


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_pipeline_variant(
    benchmark: Any,
    settings: BenchSettings,
    hybrid_corpus: Corpus,
    retriever: HybridRetriever,
    variant: str,
) -> None:
    benchmark.extra_info.update(
        docs=len(hybrid_corpus),
        role="baseline" if variant == "plain" else "ours",
        k=K,
        fetch_k=FETCH_K,
        rerank_k=RERANK_K if "rerank" in variant else None,
    )
    documents = benchmark.pedantic(
        _search(retriever, variant),
        setup=QueryCycle(hybrid_corpus.queries),
        rounds=settings.rounds,
        warmup_rounds=settings.warmup(settings.rounds),
        iterations=1,
    )
    assert len(documents) == (SHELVES if "6 groups" in variant else K)
    _check(variant, retriever, hybrid_corpus.queries[:20])


@pytest.mark.benchmark(group=f"{GROUP}-interleaved")
def test_pipeline_ratios(
    benchmark: Any, settings: BenchSettings, hybrid_corpus: Corpus, retriever: HybridRetriever
) -> None:
    pool = hybrid_corpus.queries
    count = 10 if settings.disabled else settings.rounds
    queries = [pool[i % len(pool)] for i in range(count)]
    searches = {variant: _search(retriever, variant) for variant in VARIANTS}
    timings: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    # a seeded random order per query: each variant follows each other one equally often (a
    # fixed rotation made plain always follow the slow worst case, and pay for its aftermath)
    rng = np.random.default_rng(7)
    orders = [[list(VARIANTS)[j] for j in rng.permutation(len(VARIANTS))] for _ in queries]

    def interleaved() -> None:
        for query, order in zip(queries, orders, strict=True):
            for variant in order:
                retriever.reranker = VARIANTS[variant][0]
                started = time.perf_counter()
                searches[variant](query)
                timings[variant].append(time.perf_counter() - started)

    benchmark.pedantic(interleaved, rounds=1, warmup_rounds=0, iterations=1)
    p50 = {variant: float(np.median(times)) for variant, times in timings.items()}
    ratios = {variant: round(p50[variant] / p50["plain"], 3) for variant in VARIANTS}
    benchmark.extra_info.update(
        docs=len(hybrid_corpus),
        queries=len(queries),
        p50_ms_by_variant={v: round(t * 1e3, 4) for v, t in p50.items()},
        p50_ratio_to_plain=ratios,
    )
    print(f"\npipeline p50 ratios to plain hybrid ({len(hybrid_corpus)} docs): {ratios}")  # noqa: T201
    assert all(len(times) == len(queries) for times in timings.values())
    assert ratios["plain"] == 1.0
