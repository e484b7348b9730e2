"""BM25 query latency at ``BENCH_DOCS`` documents: ours vs bm25s vs LangChain's BM25Retriever.

Same corpus, top 10. bm25s (numpy backend, Lucene BM25 with our ``k1``/``b``) indexes exactly
the tokens our index holds (``index.tokenizer`` of each text) and is queried with pre-tokenized
token ids, so its time excludes tokenization while ours includes it (``search`` takes the query
text). LangChain's ``BM25Retriever`` is the stock recipe: ``from_texts(texts, k=10)``, i.e.
``str.split`` tokens and rank_bm25's ``BM25Okapi`` scoring a full corpus scan per query.

A fourth benchmark times bm25s's own scoring with a top-k selection that avoids a numpy
slowdown its ``retrieve`` hits (see :func:`test_bm25_bm25s_negated_topk`): what bm25s would
cost without it.

Targets (checked by ``report.py --check``): ours no slower than 1.5x bm25s at p50, and at
least 100x faster than BM25Retriever; 1.5x of the fourth is reported as informational.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import bm25s
import numpy as np
import pytest
from corpus import BenchSettings, Corpus, QueryCycle

from langchain_hybrid.bm25 import BM25Hit, BM25Index

with warnings.catch_warnings():  # langchain-community warns on import that it is sunset
    warnings.simplefilter("ignore", DeprecationWarning)
    from langchain_community.retrievers import BM25Retriever

K = 10
GROUP = "bm25"
SLOW_QUERIES = 10  # BM25Retriever scans the whole corpus: few distinct queries, few rounds
REL_TOL = 1e-4  # bm25s scores in float32


@dataclass(frozen=True, slots=True)
class Ours:
    """Our index and the tokens it was built from (shared with bm25s)."""

    index: BM25Index
    tokens: list[list[str]]


@pytest.fixture(scope="module")
def ours(bm25_corpus: Corpus) -> Ours:
    index = BM25Index()
    tokens = [index.tokenizer(text) for text in bm25_corpus.texts]
    index.add(bm25_corpus.ids, bm25_corpus.texts, tokens=tokens)
    index.search(bm25_corpus.queries[0], K)  # build the query-side structures once
    return Ours(index, tokens)


@dataclass(frozen=True, slots=True)
class Reference:
    """bm25s indexed with our tokens, and each query as bm25s token ids (made once, untimed)."""

    engine: bm25s.BM25
    query_ids: dict[str, list[int]]


@pytest.fixture(scope="module")
def reference(ours: Ours, bm25_corpus: Corpus) -> Reference:
    params = ours.index.params
    engine = bm25s.BM25(method="lucene", k1=params.k1, b=params.b, backend="numpy")
    engine.index(ours.tokens, show_progress=False)
    query_ids = {
        q: [int(t) for t in engine.get_tokens_ids(ours.index.tokenizer(q))]
        for q in bm25_corpus.queries
    }
    return Reference(engine, query_ids)


def _bm25s_top(engine: bm25s.BM25, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    docs, scores = engine.retrieve(
        [ids], k=K, show_progress=False, n_threads=0, backend_selection="numpy"
    )
    return docs[0], scores[0]


def _assert_same_ranking(
    query: str, hits: list[BM25Hit], ref_ids: list[str], ref_scores: list[float]
) -> None:
    """Same scores at every rank; same documents except where scores tie (within float32)."""
    assert len(hits) == len(ref_ids), query
    np.testing.assert_allclose(
        [h.score for h in hits], ref_scores, rtol=REL_TOL, err_msg=f"scores differ for {query!r}"
    )
    if len(hits) > 1 and ref_scores[0] - ref_scores[1] > REL_TOL * ref_scores[0]:
        assert hits[0].id == ref_ids[0], f"top hit differs for {query!r}"
    cut = ref_scores[-1] * (1 + REL_TOL)
    assert {h.id for h in hits if h.score > cut} == {
        i for i, s in zip(ref_ids, ref_scores, strict=True) if s > cut
    }, f"top-{K} sets differ (ties aside) for {query!r}"


@pytest.mark.benchmark(group=GROUP)
def test_bm25_ours(
    benchmark,
    settings: BenchSettings,
    bm25_corpus: Corpus,
    ours: Ours,
    reference: Reference,
) -> None:
    benchmark.extra_info.update(
        docs=len(bm25_corpus),
        role="ours",
        targets=[
            {"vs": "test_bm25_bm25s", "max_ratio": 1.5},
            {"vs": "test_bm25_langchain_bm25retriever", "min_speedup": 100},
            {"vs": "test_bm25_bm25s_negated_topk", "max_ratio": 1.5, "informational": True},
        ],
    )
    index = ours.index
    hits = benchmark.pedantic(
        index.search,
        setup=QueryCycle(bm25_corpus.queries, k=K),
        rounds=settings.rounds,
        warmup_rounds=settings.warmup(settings.rounds),
        iterations=1,
    )
    assert 0 < len(hits) <= K
    matches = []
    for query in bm25_corpus.queries:
        hits = index.search(query, k=K)
        matching = int(np.count_nonzero(index.scores(query) > 0.0))
        matches.append(matching)
        assert len(hits) == min(K, matching), query
        ref_docs, ref_scores = _bm25s_top(reference.engine, reference.query_ids[query])
        keep = ref_scores > 0.0
        _assert_same_ranking(
            query,
            hits,
            [bm25_corpus.ids[d] for d in ref_docs[keep]],
            ref_scores[keep].tolist(),
        )
    benchmark.extra_info["mean_matching_docs"] = round(float(np.mean(matches)))


@pytest.mark.benchmark(group=GROUP)
def test_bm25_bm25s(
    benchmark,
    settings: BenchSettings,
    bm25_corpus: Corpus,
    reference: Reference,
) -> None:
    benchmark.extra_info.update(docs=len(bm25_corpus), role="reference", backend="numpy")
    docs, scores = benchmark.pedantic(
        _bm25s_top,
        setup=QueryCycle([reference.query_ids[q] for q in bm25_corpus.queries], reference.engine),
        rounds=settings.rounds,
        warmup_rounds=settings.warmup(settings.rounds),
        iterations=1,
    )
    assert len(docs) == K
    assert np.all(np.diff(scores) <= 0.0)


def _bm25s_scores_negated_topk(engine: bm25s.BM25, ids: list[int]) -> np.ndarray:
    scores = engine.get_scores_from_ids(ids)
    top = np.argpartition(-scores, K - 1)[:K]
    return top[np.argsort(-scores[top], kind="stable")]


@pytest.mark.benchmark(group=GROUP)
def test_bm25_bm25s_negated_topk(
    benchmark, settings: BenchSettings, bm25_corpus: Corpus, reference: Reference
) -> None:
    """bm25s's scoring with a top-k that avoids a numpy slowdown ``retrieve`` runs into.

    ``retrieve`` selects with ``np.argpartition(scores, -k)``, which on numpy 2.4 takes
    milliseconds on an array that is mostly zeros (most documents match no query term);
    ``np.argpartition(-scores, k - 1)`` selects the same documents in about a tenth of the time.
    This is what bm25s would cost without that slowdown: an informational reference.
    """
    benchmark.extra_info.update(docs=len(bm25_corpus), role="reference", backend="numpy")
    top = benchmark.pedantic(
        _bm25s_scores_negated_topk,
        setup=QueryCycle([reference.query_ids[q] for q in bm25_corpus.queries], reference.engine),
        rounds=settings.rounds,
        warmup_rounds=settings.warmup(settings.rounds),
        iterations=1,
    )
    assert len(top) == K
    for query in bm25_corpus.queries:
        ids = reference.query_ids[query]
        top = _bm25s_scores_negated_topk(reference.engine, ids)
        _, ref_scores = _bm25s_top(reference.engine, ids)
        np.testing.assert_allclose(
            reference.engine.get_scores_from_ids(ids)[top], ref_scores, rtol=REL_TOL
        )


@pytest.fixture(scope="module")
def langchain_bm25(bm25_corpus: Corpus) -> BM25Retriever:
    return BM25Retriever.from_texts(bm25_corpus.texts, ids=bm25_corpus.ids, k=K)


@pytest.mark.benchmark(group=GROUP)
def test_bm25_langchain_bm25retriever(
    benchmark, settings: BenchSettings, bm25_corpus: Corpus, langchain_bm25: BM25Retriever
) -> None:
    benchmark.extra_info.update(docs=len(bm25_corpus), role="baseline")
    queries = bm25_corpus.queries[:SLOW_QUERIES]
    documents = benchmark.pedantic(
        langchain_bm25.invoke,
        setup=QueryCycle(queries),
        rounds=settings.slow_rounds,
        warmup_rounds=0 if settings.disabled else 1,
        iterations=1,
    )
    assert len(documents) == K
    for query in queries:
        documents = langchain_bm25.invoke(query)
        assert len(documents) == K
        assert set(query.split()) & set(documents[0].page_content.split()), query
