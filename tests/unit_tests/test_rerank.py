"""The query pipeline's optional stages: rerank (any BaseDocumentCompressor), group_by, scores.

The reranker in these tests is a real ``BaseDocumentCompressor`` with a deterministic rule
(distinct query words in the text, then id), not a mock: the retriever calls it through
LangChain's own interface, sync and async.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Sequence
from typing import Any

import pytest
from helpers import CORPUS, HashEmbeddings, RunRecorder
from langchain_classic.retrievers.document_compressors import CrossEncoderReranker
from langchain_core.callbacks import BaseCallbackHandler, Callbacks
from langchain_core.cross_encoders import BaseCrossEncoder
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import Field

from langchain_hybrid import (
    ConfigError,
    HybridRetriever,
    InvalidQueryError,
    RerankError,
    RetrievalMetricsHandler,
)
from langchain_hybrid.config import load_config

_WORD = re.compile(r"\w+")

FUSIONS = ("zscore", "rrf", "relative_score", "dbsf")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


class OverlapReranker(BaseDocumentCompressor):
    """Orders documents by distinct query words they contain (more first), then by id.

    Writes the count as ``relevance_score`` (as cross-encoder rerankers write theirs) and
    records every call: which path (sync / async) and the ids it was given, in order.
    """

    top_n: int | None = None
    calls: list[tuple[str, list[str | None]]] = Field(default_factory=list)

    def _ranked(self, documents: Sequence[Document], query: str) -> list[Document]:
        words = _words(query)
        scored = [
            Document(
                id=d.id,
                page_content=d.page_content,
                metadata={**d.metadata, "relevance_score": len(words & _words(d.page_content))},
            )
            for d in documents
        ]
        scored.sort(key=lambda d: (-d.metadata["relevance_score"], d.id or ""))
        return scored[: self.top_n]

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        self.calls.append(("sync", [d.id for d in documents]))
        return self._ranked(documents, query)

    async def acompress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        await asyncio.sleep(0)
        self.calls.append(("async", [d.id for d in documents]))
        return self._ranked(documents, query)


class IdDroppingReranker(OverlapReranker):
    """Rebuilds each document from text and metadata only, as Flashrank and Cohere do (no id)."""

    def _ranked(self, documents: Sequence[Document], query: str) -> list[Document]:
        return [
            Document(page_content=d.page_content, metadata=d.metadata)
            for d in super()._ranked(documents, query)
        ]


class BrokenReranker(OverlapReranker):
    """Fails the way a remote reranker does when its service is down."""

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        self.calls.append(("sync", [d.id for d in documents]))
        msg = "rerank service unavailable"
        raise ConnectionError(msg)

    async def acompress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        self.calls.append(("async", [d.id for d in documents]))
        msg = "rerank service unavailable"
        raise ConnectionError(msg)


class StrangerReranker(OverlapReranker):
    """Returns ``answer`` whatever it is given (a wrong answer a buggy reranker might give)."""

    answer: Any = None

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        self.calls.append(("sync", [d.id for d in documents]))
        return self.answer  # type: ignore[no-any-return]


def corpus_documents() -> list[Document]:
    return [
        Document(id=i, page_content=t, metadata={"source": s, "year": y}) for i, t, s, y in CORPUS
    ]


@pytest.fixture
def retriever(collection_name: str) -> HybridRetriever:
    return HybridRetriever.from_documents(
        corpus_documents(), embedding=HashEmbeddings(), collection_name=collection_name, k=4
    )


def _ids(docs: Sequence[Document]) -> list[str | None]:
    return [d.id for d in docs]


# ---------------------------------------------------------------------- rerank
def test_reranker_reorders_the_fused_top_rerank_k_before_the_cut(
    retriever: HybridRetriever,
) -> None:
    query = "python coffee grind"
    fused = retriever.invoke(query, k=6)
    reranker = OverlapReranker()
    retriever.reranker = reranker
    docs = retriever.invoke(query, k=3, rerank_k=6)
    assert reranker.calls == [("sync", _ids(fused))]  # the fused top rerank_k, in fused order
    expected = sorted(fused, key=lambda d: (-len(_words(query) & _words(d.page_content)), d.id))
    assert _ids(docs) == _ids(expected)[:3]
    by_id = {d.id: d for d in fused}
    for doc in docs:
        before = by_id[doc.id]
        assert doc.metadata["fused_rank"] == _ids(fused).index(doc.id) + 1
        assert doc.metadata["relevance_score"] == len(_words(query) & _words(doc.page_content))
        for key in ("hybrid_score", "bm25_rank", "bm25_score", "vector_rank", "vector_score"):
            assert doc.metadata[key] == before.metadata[key]
        assert doc.metadata["source"] == before.metadata["source"]
        assert doc.page_content == before.page_content
        assert "degraded" not in doc.metadata
    assert _ids(docs) != _ids(fused)[:3]  # the rerank changed the answer on this query


def test_rerank_k_is_at_least_k_and_fetch_k_at_least_rerank_k(
    retriever: HybridRetriever,
) -> None:
    reranker = OverlapReranker()
    retriever.reranker = reranker
    retriever.invoke("coffee", k=5, rerank_k=2)
    assert len(reranker.calls[-1][1]) == 5
    retriever.invoke("coffee", k=2, rerank_k=9, fetch_k=3)
    assert len(reranker.calls[-1][1]) == 9  # fetch_k was raised to rerank_k
    assert retriever.rerank_k == 20
    retriever.invoke("coffee", k=2)
    assert len(reranker.calls[-1][1]) == 12  # the default 20, capped by the corpus


def test_without_reranker_rerank_k_changes_nothing(retriever: HybridRetriever) -> None:
    plain = retriever.invoke("router error", k=3)
    assert retriever.invoke("router error", k=3, rerank_k=10) == plain
    assert all("fused_rank" not in d.metadata for d in plain)


def test_a_reranker_may_return_fewer_documents(retriever: HybridRetriever) -> None:
    retriever.reranker = OverlapReranker(top_n=2)
    docs = retriever.invoke("coffee grind", k=4, rerank_k=8)
    assert len(docs) == 2
    assert all("degraded" not in d.metadata for d in docs)


class _WordOverlapModel(BaseCrossEncoder):
    """A deterministic cross-encoder: shared words of the pair."""

    def score(self, text_pairs: list[tuple[str, str]]) -> list[float]:
        return [float(len(_words(q) & _words(t))) for q, t in text_pairs]


def test_langchains_cross_encoder_reranker_plugs_in(retriever: HybridRetriever) -> None:
    query = "python coffee grind"
    fused = retriever.invoke(query, k=8)
    retriever.reranker = CrossEncoderReranker(model=_WordOverlapModel(), top_n=3)
    docs = retriever.invoke(query, k=4, rerank_k=8)
    # its order: more shared words first, the fused order among equals (a stable sort)
    expected = sorted(fused, key=lambda d: -len(_words(query) & _words(d.page_content)))
    assert _ids(docs) == _ids(expected)[:3]  # top_n below k: the reranker's choice stands
    assert [d.metadata["fused_rank"] for d in docs] == [_ids(fused).index(d.id) + 1 for d in docs]
    assert all("degraded" not in d.metadata for d in docs)


def test_a_reranker_that_drops_ids_is_matched_by_text(retriever: HybridRetriever) -> None:
    query = "python coffee grind"
    retriever.reranker = OverlapReranker()
    with_ids = retriever.invoke(query, k=4, rerank_k=8)
    retriever.reranker = IdDroppingReranker()
    without_ids = retriever.invoke(query, k=4, rerank_k=8)
    assert [(d.id, d.metadata) for d in without_ids] == [(d.id, d.metadata) for d in with_ids]
    assert all(d.id is not None for d in without_ids)


def test_a_failing_reranker_degrades_to_the_fused_order_like_a_failed_leg(
    retriever: HybridRetriever,
) -> None:
    fused = retriever.invoke("python coffee grind", k=3)
    retriever.reranker = BrokenReranker()
    metrics = RetrievalMetricsHandler()
    recorder = RunRecorder()
    docs = retriever.invoke(
        "python coffee grind", k=3, rerank_k=6, config={"callbacks": [metrics, recorder]}
    )
    assert _ids(docs) == _ids(fused)
    assert all(d.metadata["degraded"] == "rerank" for d in docs)
    assert [d.metadata["fused_rank"] for d in docs] == [1, 2, 3]
    assert all("relevance_score" not in d.metadata for d in docs)
    # the rerank child run failed under the retrieval, as a failed leg's does
    root = next(run_id for name, run_id, *_ in recorder.starts if name == "HybridRetriever")
    rerank = next((run_id, p) for name, run_id, p, _ in recorder.starts if name == "rerank")
    assert rerank[1] == root
    assert recorder.errors == [(rerank[0], "ConnectionError")]
    series = metrics.snapshot()["retrievers"]["HybridRetriever"]
    assert series["degraded"] == 1
    assert series["errors"] == 0
    assert series["legs"]["rerank"]["errors"] == 1
    # a degraded answer is not cached: the reranker is asked again
    assert retriever.cache is not None
    before = len(retriever.reranker.calls)  # type: ignore[union-attr]
    retriever.invoke("python coffee grind", k=3, rerank_k=6)
    assert len(retriever.reranker.calls) == before + 1  # type: ignore[union-attr]


def test_failed_leg_and_failed_reranker_are_both_named(retriever: HybridRetriever) -> None:
    retriever.reranker = BrokenReranker()
    retriever.store.client.delete_collection(retriever.store.config.chroma_collection)
    docs = retriever.invoke("coffee grind", k=2)
    assert docs
    assert all(d.metadata["degraded"] == "vector,rerank" for d in docs)


@pytest.mark.parametrize(
    "answer",
    [
        None,
        "net-1",
        [Document(id="elsewhere", page_content="not a candidate")],
        [Document(id="cof-2", page_content="x"), Document(id="cof-2", page_content="x")],
        [{"id": "cof-2"}],
    ],
    ids=["none", "a-string", "a-stranger", "twice-the-same", "not-a-document"],
)
def test_a_reranker_answer_that_is_not_a_reordering_degrades(
    retriever: HybridRetriever, answer: Any
) -> None:
    fused = retriever.invoke("coffee grind", k=3)
    retriever.reranker = StrangerReranker(answer=answer)
    docs = retriever.invoke("coffee grind", k=3)
    assert _ids(docs) == _ids(fused)
    assert all(d.metadata["degraded"] == "rerank" for d in docs)


def test_reranker_failure_raises_under_on_leg_error_raise(retriever: HybridRetriever) -> None:
    retriever.reranker = BrokenReranker()
    retriever.on_leg_error = "raise"
    with pytest.raises(RerankError, match="rerank service unavailable") as caught:
        retriever.invoke("coffee grind")
    assert isinstance(caught.value.__cause__, ConnectionError)
    assert isinstance(caught.value, RuntimeError)


async def test_async_rerank_uses_acompress_documents(retriever: HybridRetriever) -> None:
    reranker = OverlapReranker()
    retriever.reranker = reranker
    sync = retriever.invoke("python coffee grind", k=3, rerank_k=6, filter={"year": {"$gt": 2019}})
    retriever.cache = None
    recorder = RunRecorder()
    docs = await retriever.ainvoke(
        "python coffee grind",
        k=3,
        rerank_k=6,
        filter={"year": {"$gt": 2019}},
        config={"callbacks": [recorder]},
    )
    assert [c[0] for c in reranker.calls] == ["sync", "async"]
    assert reranker.calls[0][1] == reranker.calls[1][1]
    assert [(d.id, d.metadata) for d in docs] == [(d.id, d.metadata) for d in sync]
    assert "rerank" in {name for name, *_ in recorder.starts}


async def test_async_reranker_failure_degrades(retriever: HybridRetriever) -> None:
    fused = await retriever.ainvoke("coffee grind", k=3)
    retriever.reranker = BrokenReranker()
    docs = await retriever.ainvoke("coffee grind", k=3)
    assert _ids(docs) == _ids(fused)
    assert all(d.metadata["degraded"] == "rerank" for d in docs)
    assert retriever.reranker.calls[0][0] == "async"  # type: ignore[union-attr]


def test_reranked_answers_are_cached_and_a_new_reranker_clears_them(
    retriever: HybridRetriever,
) -> None:
    first = OverlapReranker()
    retriever.reranker = first
    answer = retriever.invoke("python coffee grind", k=2, rerank_k=8)
    assert retriever.invoke("python coffee grind", k=2, rerank_k=8) == answer
    assert len(first.calls) == 1  # served from the cache
    retriever.invoke("python coffee grind", k=2, rerank_k=5)
    assert len(first.calls) == 2  # rerank_k is part of the key
    second = OverlapReranker(top_n=1)
    retriever.reranker = second
    assert len(retriever.invoke("python coffee grind", k=2, rerank_k=8)) == 1
    assert len(second.calls) == 1
    retriever.reranker = None
    assert len(retriever.invoke("python coffee grind", k=2, rerank_k=8)) == 2


def test_reranker_must_be_a_document_compressor(collection_name: str) -> None:
    with pytest.raises(ConfigError, match="reranker"):
        HybridRetriever.from_documents(
            corpus_documents(),
            embedding=HashEmbeddings(),
            collection_name=collection_name,
            reranker=lambda docs, _query: docs,
        )


def test_yaml_cannot_name_a_reranker() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'fusion\.reranker'"):
        load_config({"fusion": {"reranker": "my_pkg.MyReranker"}}, environ={})


# ---------------------------------------------------------------------- group_by
def _best_per_source(docs: Sequence[Document]) -> list[str | None]:
    seen: set[str] = set()
    out = []
    for doc in docs:
        if doc.metadata["source"] not in seen:
            seen.add(doc.metadata["source"])
            out.append(doc.id)
    return out


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("where", [None, {"year": {"$gte": 2021}}])
def test_group_by_keeps_each_groups_best_document(
    retriever: HybridRetriever, fusion: str, where: dict[str, Any] | None
) -> None:
    query = "coffee python router"
    everything = retriever.invoke(query, k=12, fusion=fusion, filter=where)
    grouped = retriever.invoke(query, k=3, fusion=fusion, filter=where, group_by="source")
    assert _ids(grouped) == _best_per_source(everything)[:3]
    assert len({d.metadata["source"] for d in grouped}) == 3
    for doc in grouped:
        fused = next(d for d in everything if d.id == doc.id)
        assert doc.metadata == fused.metadata  # the same fusion annotations
        if where is not None:
            assert doc.metadata["year"] >= 2021


def test_group_by_any_metadata_key_and_missing_keys(collection_name: str) -> None:
    docs = [
        Document(id="a1", page_content="kettle descaling guide", metadata={"manual": "A"}),
        Document(id="a2", page_content="kettle descaling steps", metadata={"manual": "A"}),
        Document(id="b1", page_content="kettle descaling vinegar", metadata={"manual": "B"}),
        Document(id="n1", page_content="kettle descaling tips", metadata={"other": 1}),
        Document(id="n2", page_content="kettle descaling how to", metadata={"other": 2}),
        Document(id="i1", page_content="kettle descaling numbers", metadata={"manual": 1}),
        Document(id="i2", page_content="kettle descaling counts", metadata={"manual": 1.0}),
    ]
    retriever = HybridRetriever.from_documents(
        docs, embedding=HashEmbeddings(), collection_name=collection_name, k=7
    )
    everything = retriever.invoke("kettle descaling")
    grouped = retriever.invoke("kettle descaling", group_by="manual")
    ungrouped_order = _ids(everything)
    # one of a1/a2 (the better fused), b1, both documents without the key, 1 and 1.0 apart
    expected = [
        i
        for i in ungrouped_order
        if i not in {"a1", "a2"} or i == min(("a1", "a2"), key=ungrouped_order.index)
    ]
    assert _ids(grouped) == expected


def test_group_by_searches_deeper_until_k_groups(collection_name: str) -> None:
    # 40 chunks of one long manual match the query best; three other sources match less
    docs = [
        Document(
            id=f"big-{i:02d}",
            page_content=f"router firmware upgrade error section {i}",
            metadata={"source": "big-manual"},
        )
        for i in range(40)
    ]
    docs += [
        Document(id=f"small-{s}", page_content="router notes", metadata={"source": s})
        for s in ("faq", "blog", "forum")
    ]
    retriever = HybridRetriever.from_documents(
        docs, embedding=HashEmbeddings(), collection_name=collection_name, k=4, fetch_k=5
    )
    plain = retriever.invoke("router firmware upgrade error")
    assert {d.metadata["source"] for d in plain} == {"big-manual"}
    legs = _LegRuns()
    grouped = retriever.invoke(
        "router firmware upgrade error", group_by="source", config={"callbacks": [legs]}
    )
    assert len(grouped) == 4
    assert {d.metadata["source"] for d in grouped} == {"big-manual", "faq", "blog", "forum"}
    assert grouped[0].id == plain[0].id
    assert legs.bm25 == 3  # fetch_k 5, then 20, then 80 (every chunk)


@pytest.mark.parametrize("handler", ["none", "watched"])
@pytest.mark.parametrize("run", ["sync", "async", "async-native"])
async def test_a_deeper_search_embeds_the_query_once(
    collection_name: str, handler: str, run: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = [
        Document(id=f"big-{i:02d}", page_content=f"router error {i}", metadata={"source": "big"})
        for i in range(40)
    ]
    docs += [Document(id=f"s-{s}", page_content="router", metadata={"source": s}) for s in "abc"]
    embedding = _NativeAsync() if run == "async-native" else HashEmbeddings()
    retriever = HybridRetriever.from_documents(
        docs, embedding=embedding, collection_name=collection_name, k=4, fetch_k=5, cache=False
    )
    legs = _LegRuns()
    config: Any = {"callbacks": [legs]} if handler == "watched" else {}
    ranked: list[int] = []
    real_rank = HybridRetriever._rank

    def counting_rank(self: HybridRetriever, leg: str, params: Any, vector: Any = None) -> Any:
        if leg == "bm25":
            ranked.append(params.fetch_k)
        return real_rank(self, leg, params, vector)

    monkeypatch.setattr(HybridRetriever, "_rank", counting_rank)
    before = embedding.embedded_queries
    if run == "sync":
        grouped = retriever.invoke("router error", group_by="source", config=config)
    else:
        grouped = await retriever.ainvoke("router error", group_by="source", config=config)
    assert {d.metadata["source"] for d in grouped} == {"big", "a", "b", "c"}
    assert embedding.embedded_queries == before + 1  # three searches (fetch_k 5, 20, 80)
    assert sorted(ranked) == [5, 20, 80]  # each round once, as deep as the sync search goes
    assert legs.bm25 == (3 if handler == "watched" else 0)


class _NativeAsync(HashEmbeddings):
    """An embedding with its own ``aembed_query`` (an async client), not LangChain's default."""

    async def aembed_query(self, text: str) -> list[float]:
        await asyncio.sleep(0)
        return self.embed_query(text)


def test_group_by_stops_when_the_corpus_has_fewer_groups(retriever: HybridRetriever) -> None:
    legs = _LegRuns()
    grouped = retriever.invoke("coffee", k=5, group_by="source", config={"callbacks": [legs]})
    assert len(grouped) == 3  # faq, handbook, blog: the corpus has no more
    assert legs.bm25 == 1  # no leg was cut at fetch_k: nothing deeper to find


async def test_group_by_in_async_matches_sync(collection_name: str) -> None:
    docs = [
        Document(id=f"m{i}", page_content=f"espresso grind size {i}", metadata={"source": "m"})
        for i in range(12)
    ] + [Document(id="x", page_content="espresso", metadata={"source": "x"})]
    retriever = HybridRetriever.from_documents(
        docs, embedding=HashEmbeddings(), collection_name=collection_name, k=2, fetch_k=2
    )
    sync = retriever.invoke("espresso grind size", group_by="source")
    retriever.cache = None
    asynchronous = await retriever.ainvoke("espresso grind size", group_by="source")
    assert _ids(asynchronous) == _ids(sync)
    assert {d.metadata["source"] for d in sync} == {"m", "x"}


def test_group_then_rerank_sees_one_document_per_group(retriever: HybridRetriever) -> None:
    reranker = OverlapReranker()
    retriever.reranker = reranker
    docs = retriever.invoke("python coffee grind", k=2, rerank_k=3, group_by="source")
    given = reranker.calls[0][1]
    sources = {next(s for i, _, s, _ in CORPUS if i == doc_id) for doc_id in given}
    assert len(given) == 3
    assert len(sources) == 3
    assert {d.id for d in docs} <= set(given)


def test_group_by_is_part_of_the_cache_key(retriever: HybridRetriever) -> None:
    plain = retriever.invoke("coffee grind", k=4)
    grouped = retriever.invoke("coffee grind", k=4, group_by="source")
    assert len(plain) == 4
    assert len(grouped) == 3  # three sources in the corpus
    assert retriever.cache is not None
    assert retriever.cache.stats()["misses"] == 2
    assert retriever.invoke("coffee grind", k=4, group_by="source") == grouped
    assert retriever.cache.stats()["hits"] == 1


def test_group_by_as_a_field_and_from_config(collection_name: str) -> None:
    retriever = HybridRetriever.from_config(
        {
            "store": {"mode": "ephemeral", "collection": collection_name},
            "fusion": {"group_by": "source", "rerank_k": 7, "k": 3},
        },
        HashEmbeddings(),
    )
    assert (retriever.group_by, retriever.rerank_k) == ("source", 7)
    retriever.add_documents(corpus_documents())
    docs = retriever.invoke("coffee grind")
    assert len({d.metadata["source"] for d in docs}) == 3
    assert len(retriever.invoke("coffee grind", group_by=None)) == 3


@pytest.mark.parametrize("bad", ["", 3, ["source"]])
def test_bad_group_by_is_an_invalid_query(retriever: HybridRetriever, bad: object) -> None:
    with pytest.raises(InvalidQueryError, match="group_by"):
        retriever.invoke("coffee", group_by=bad)


def test_bad_rerank_k_is_an_invalid_query(retriever: HybridRetriever) -> None:
    with pytest.raises(InvalidQueryError, match="rerank_k"):
        retriever.invoke("coffee", rerank_k=0)


# ---------------------------------------------------------------------- scores
@pytest.mark.parametrize("weights", [(0.5, 0.5), (0.3, 0.7)])
@pytest.mark.parametrize("query", ["coffee grind", "E-4471", "python mypy", "zzqx unrelated"])
def test_hybrid_score_ranges_are_as_documented(
    retriever: HybridRetriever, weights: tuple[float, float], query: str
) -> None:
    total = sum(weights)
    for fusion in FUSIONS:
        docs = retriever.invoke(query, k=12, fusion=fusion, weights=weights, rrf_k=60)
        scores = [d.metadata["hybrid_score"] for d in docs]
        assert all(s >= 0 for s in scores), fusion
        if fusion == "rrf":
            assert all(s <= total / 61 + 1e-12 for s in scores)
            for doc in docs:
                both_first = doc.metadata["bm25_rank"] == doc.metadata["vector_rank"] == 1
                assert (abs(doc.metadata["hybrid_score"] - total / 61) < 1e-12) == both_first
        elif fusion in {"relative_score", "dbsf"}:
            assert all(s <= total + 1e-12 for s in scores), fusion


def test_hybrid_score_is_not_comparable_across_queries(retriever: HybridRetriever) -> None:
    """Why no normalised [0, 1] fused score is offered: its top is the top of *this* query.

    A query about nothing in the corpus gets a best relative_score as high as the vector leg's
    weight, like a query with an exact match would from that leg; ``vector_score`` (a cosine
    similarity) does separate them.
    """
    good = retriever.invoke("french press coffee grind", k=1, fusion="relative_score")[0]
    nonsense = retriever.invoke("zzqx plover quux", k=1, fusion="relative_score")[0]
    assert nonsense.metadata["bm25_rank"] is None  # no token matched
    assert nonsense.metadata["hybrid_score"] == pytest.approx(0.5)  # the vector leg's best: 1.0
    assert good.metadata["vector_score"] > nonsense.metadata["vector_score"] + 0.3


# ---------------------------------------------------------------------- helpers
class _LegRuns(BaseCallbackHandler):
    def __init__(self) -> None:
        self.bm25 = 0
        self.lock = threading.Lock()

    def on_retriever_start(self, serialized: dict[str, Any], query: str, **kwargs: Any) -> None:
        if kwargs.get("name") == "bm25":
            with self.lock:
                self.bm25 += 1
