"""HybridRetriever: the LangChain contract, fusion annotations, filters, writes and errors."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from helpers import CORPUS, HashEmbeddings, RunRecorder
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langchain_tests.integration_tests import RetrieversIntegrationTests

from langchain_hybrid import (
    AllLegsFailedError,
    BM25Params,
    ConfigError,
    HybridRetriever,
    HybridRetrieverError,
    IndexNotBuiltError,
    InvalidDocumentsError,
    InvalidFilterError,
    InvalidQueryError,
    TokenizerConfig,
)
from langchain_hybrid._locking import release_writer_lock
from langchain_hybrid.bm25 import BM25Index
from langchain_hybrid.cache import CachedEmbeddings
from langchain_hybrid.config import CacheSettings
from langchain_hybrid.embeddings import MiniLMEmbeddings
from langchain_hybrid.fusion import (
    LegRun,
    dbsf,
    fractional_ranks,
    fuse,
    relative_score,
    rrf,
    zscore,
)
from langchain_hybrid.retrievers import LEGS, default_bm25_path, leg_run
from langchain_hybrid.stores import ChromaStore, StoreConfig


def corpus_documents() -> list[Document]:
    return [
        Document(id=i, page_content=t, metadata={"source": s, "year": y}) for i, t, s, y in CORPUS
    ]


@pytest.fixture
def embedding() -> HashEmbeddings:
    return HashEmbeddings()


@pytest.fixture
def retriever(embedding: HashEmbeddings, collection_name: str) -> HybridRetriever:
    return HybridRetriever.from_documents(
        corpus_documents(), embedding=embedding, collection_name=collection_name, k=4
    )


def _snapshot(r: HybridRetriever) -> tuple[int, int, list[str], int]:
    return (r.store.count(), len(r.bm25), sorted(r.bm25.ids), r.store.metadata_generation())


# ---------------------------------------------------------------------- standard suite
def _make_standard(**kwargs: Any) -> HybridRetriever:
    return HybridRetriever.from_documents(
        corpus_documents(),
        embedding=HashEmbeddings(),
        collection_name=f"std-{uuid.uuid4().hex[:10]}",
        **kwargs,
    )


class TestStandardRetriever(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> Any:
        return _make_standard

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"k": 2}

    @property
    def retriever_query_example(self) -> str:
        return "coffee grind"


# ---------------------------------------------------------------------- results
def test_results_carry_ids_and_fusion_annotations(retriever: HybridRetriever) -> None:
    docs = retriever.invoke("router error E-4471")
    assert len(docs) == 4
    assert docs[0].id == "net-1"
    for doc in docs:
        assert doc.id is not None
        for key in ("hybrid_score", "bm25_rank", "bm25_score", "vector_rank", "vector_score"):
            assert key in doc.metadata
        assert doc.metadata["source"] in {"faq", "handbook", "blog"}
        assert "degraded" not in doc.metadata
    scores = [d.metadata["hybrid_score"] for d in docs]
    assert scores == sorted(scores, reverse=True)
    assert len({d.id for d in docs}) == len(docs)


def test_hybrid_score_is_weighted_rrf_of_leg_ranks(retriever: HybridRetriever) -> None:
    query = "python coffee router"
    docs = retriever.invoke(query, k=8, weights=(0.3, 0.7), rrf_k=10, fusion="rrf")
    # ranks as RRF counts them: hits of equal score share the mean of their positions
    ranks = {}
    for leg in ("bm25", "vector"):
        hits = [(h.id, h.score) for h in retriever.search_leg(leg, query, k=retriever.fetch_k)]
        ranks[leg] = dict(zip([i for i, _ in hits], fractional_ranks(hits), strict=True))
    for doc in docs:
        expected = 0.0
        if doc.metadata["bm25_rank"] is not None:
            expected += 0.3 / (10 + ranks["bm25"][doc.id])
        if doc.metadata["vector_rank"] is not None:
            expected += 0.7 / (10 + ranks["vector"][doc.id])
        assert doc.metadata["hybrid_score"] == pytest.approx(expected)


def test_leg_only_documents_have_none_for_the_other_leg(retriever: HybridRetriever) -> None:
    docs = retriever.invoke("E-4471", k=12)
    lexical = [d for d in docs if d.metadata["bm25_rank"] is not None]
    assert [d.id for d in lexical] == ["net-1"]
    vector_only = [d for d in docs if d.metadata["bm25_rank"] is None]
    assert vector_only
    assert all(d.metadata["bm25_score"] is None for d in vector_only)
    assert all(d.metadata["vector_rank"] is not None for d in vector_only)


def test_texts_are_read_for_the_final_k_only(
    retriever: HybridRetriever, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both legs return ids and scores; only the ``k`` fused documents' texts are read, once,
    from the BM25 index (issue 11: no text copied for the other ``fetch_k`` hits)."""
    bm25_reads: list[list[str]] = []
    chroma_reads: list[list[str]] = []
    real_get, real_store_get = BM25Index.get, ChromaStore.get

    def recording_get(self: BM25Index, ids: Any) -> Any:
        bm25_reads.append(list(ids))
        return real_get(self, bm25_reads[-1])

    def recording_store_get(self: ChromaStore, ids: Any) -> Any:
        chroma_reads.append(list(ids))
        return real_store_get(self, ids)

    monkeypatch.setattr(BM25Index, "get", recording_get)
    monkeypatch.setattr(ChromaStore, "get", recording_store_get)
    hits, _ = retriever.bm25.rank("coffee grind water python", 12)
    assert len(hits) > 3
    docs = retriever.invoke("coffee grind water python", k=3, fetch_k=12)
    assert bm25_reads == [[d.id for d in docs]]
    assert chroma_reads == []
    monkeypatch.undo()
    stored = {
        d.id: (d.page_content, d.metadata) for d in retriever.get_by_ids([d.id for d in docs])
    }
    for doc in docs:
        metadata = {k: v for k, v in doc.metadata.items() if k in stored[doc.id][1]}
        assert (doc.page_content, metadata) == stored[doc.id]


def test_grouping_reads_texts_down_the_fused_order_only_as_far_as_needed(
    retriever: HybridRetriever, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``group_by`` reads candidates in batches (``k``, then twice as many) until ``k`` groups,
    not every fused candidate; the groups are those of the whole fused order."""
    query = "coffee grind water python router"
    fused = retriever.invoke(query, k=len(CORPUS))
    expected, sources = [], set()
    for doc in fused:  # each source's best document, in fused order
        if doc.metadata["source"] not in sources:
            sources.add(doc.metadata["source"])
            expected.append(doc.id)
    reads: list[list[str]] = []
    real_get = BM25Index.get

    def recording_get(self: BM25Index, ids: Any) -> Any:
        reads.append(list(ids))
        return real_get(self, reads[-1])

    monkeypatch.setattr(BM25Index, "get", recording_get)
    for k in (1, 2, 3):
        reads.clear()
        docs = retriever.invoke(query, k=k, group_by="source")
        assert [d.id for d in docs] == expected[:k]
        read = [i for batch in reads for i in batch]
        assert read == [d.id for d in fused[: len(read)]]  # a prefix of the fused order
        assert len(read) < len(fused), k  # not the whole list: the k groups come early
        assert all(len(batch) == k * 2**i for i, batch in enumerate(reads[:-1])), reads


def test_fusion_matches_the_pure_function(retriever: HybridRetriever) -> None:
    query = "coffee grind water"
    bm25 = retriever.search_leg("bm25", query, k=12)
    vector = retriever.search_leg("vector", query, k=12)
    # the BM25 leg also reports its floor (0) and the statistics of all its scores
    _, population = retriever.bm25.search_population(query, 12)
    runs = [
        LegRun([(h.id, h.score) for h in bm25], 12, 0.0, population),
        LegRun([(h.id, h.score) for h in vector], 12),
    ]
    methods = (("zscore", zscore), ("rrf", rrf), ("relative_score", relative_score), ("dbsf", dbsf))
    for method, function in methods:
        docs = retriever.invoke(query, k=12, fetch_k=12, fusion=method, weights=(0.4, 0.6))
        expected = function(runs, (0.4, 0.6), rrf_k=60)
        assert [d.id for d in docs] == [f.id for f in expected][:12]
        assert [d.metadata["hybrid_score"] for d in docs] == [f.score for f in expected][:12]


@pytest.mark.parametrize("fusion", ["zscore", "rrf", "relative_score", "dbsf"])
def test_rank_leg_is_what_a_search_fuses(retriever: HybridRetriever, fusion: str) -> None:
    """Fusing each leg's ``rank_leg`` offline (as evaluation does) gives ``invoke``'s answer."""
    for query in ("coffee grind water", "E-4471", "python mypy", "router"):
        legs = {leg: retriever.rank_leg(leg, query, fetch_k=6) for leg in LEGS}
        assert all(h.text is None and h.metadata == {} for hits in legs.values() for h in hits)
        assert legs["bm25"].population is not None
        runs = [leg_run(leg, legs[leg], 6) for leg in LEGS]
        expected = fuse(fusion, runs, (0.3, 0.7), rrf_k=60)[:5]
        docs = retriever.invoke(query, k=5, fetch_k=6, fusion=fusion, weights=(0.3, 0.7))
        assert [(d.id, d.metadata["hybrid_score"]) for d in docs] == [
            (f.id, f.score) for f in expected
        ], query
        for leg in LEGS:  # the same hits the answer reports per leg
            ranks = {h.id: (rank, h.score) for rank, h in enumerate(legs[leg], start=1)}
            for doc in docs:
                got = (doc.metadata[f"{leg}_rank"], doc.metadata[f"{leg}_score"])
                assert got == ranks.get(doc.id, (None, None)), (query, leg)


def test_rank_leg_depth_filter_and_given_embedding(
    retriever: HybridRetriever, embedding: HashEmbeddings
) -> None:
    query = "coffee grind"
    assert len(retriever.rank_leg("vector", query)) == min(retriever.fetch_k, len(CORPUS))
    assert len(retriever.rank_leg("vector", query, fetch_k=3)) == 3
    faq = retriever.rank_leg("vector", query, filter={"source": "faq"})
    assert {h.id for h in faq} == {i for i, _, s, _ in CORPUS if s == "faq"}
    assert [h.id for h in retriever.rank_leg("bm25", query, filter={"source": "faq"})] == ["cof-2"]
    # a given vector is searched instead of the query's own (evaluation embeds once per query)
    other = embedding.embed_query("tomatoes summer water")
    given = retriever.rank_leg("vector", query, embedding=other)
    assert given == retriever.rank_leg("vector", "tomatoes summer water")
    assert given != retriever.rank_leg("vector", query)
    assert retriever.rank_leg("bm25", query, embedding=other) == retriever.rank_leg("bm25", query)
    for bad in ({"leg": "sparse"}, {"fetch_k": 0}, {"fetch_k": True}, {"query": " "}):
        arguments: dict[str, Any] = {"leg": "bm25", "query": query, **bad}
        leg, text = arguments.pop("leg"), arguments.pop("query")
        with pytest.raises(InvalidQueryError):
            retriever.rank_leg(leg, text, **arguments)


def test_deprecated_leg_search_names_warn_and_agree(retriever: HybridRetriever) -> None:
    query = "router error"
    params = retriever._params(query, {})  # the old calls took this tuple
    with pytest.warns(DeprecationWarning, match="rank_leg"):
        bm25 = retriever.leg_search("bm25", params)
    vector_of_query = retriever.embedding.embed_query(query)
    with pytest.warns(DeprecationWarning, match="rank_leg"):
        vector = retriever.vector_leg_search(vector_of_query, params)
    assert bm25 == retriever.rank_leg("bm25", query)
    assert vector == retriever.rank_leg("vector", query)


def test_default_fusion_is_zscore(retriever: HybridRetriever) -> None:
    assert retriever.fusion == "zscore"
    docs = retriever.invoke("router error E-4471", k=12)
    assert docs[0].id == "net-1"
    # scores are relative to what each leg credits a document it did not return: never below
    assert docs[0].metadata["hybrid_score"] > docs[-1].metadata["hybrid_score"] >= 0


@pytest.mark.parametrize("method", ["zscore", "rrf", "relative_score", "dbsf"])
def test_fusion_method_by_name(retriever: HybridRetriever, method: str) -> None:
    docs = retriever.invoke("espresso grind", fusion=method, k=3)
    assert docs[0].id == "cof-1"
    scores = [d.metadata["hybrid_score"] for d in docs]
    assert scores == sorted(scores, reverse=True)


def test_a_zero_weight_turns_its_leg_off(retriever: HybridRetriever) -> None:
    recorder = RunRecorder()
    lexical = retriever.invoke(
        "router firmware", weights=(1.0, 0.0), k=12, config={"callbacks": [recorder]}
    )
    assert [d.metadata["bm25_rank"] for d in lexical] == list(range(1, len(lexical) + 1))
    assert all(d.metadata["vector_rank"] is None for d in lexical)
    assert len(lexical) < 12  # only documents sharing a token with the query
    assert {name for name, *_ in recorder.starts} == {"HybridRetriever", "bm25"}
    only_vector = retriever.invoke("router firmware", weights=(0.0, 1.0), k=3)
    assert [d.metadata["vector_rank"] for d in only_vector] == [1, 2, 3]
    assert all(d.metadata["bm25_rank"] is None for d in only_vector)


async def test_a_zero_weight_turns_its_leg_off_in_async(retriever: HybridRetriever) -> None:
    docs = await retriever.ainvoke("router firmware", weights=(0.0, 1.0), k=12)
    assert len(docs) == 12
    assert all(d.metadata["bm25_rank"] is None for d in docs)


def test_k_and_fetch_k_per_call(retriever: HybridRetriever) -> None:
    assert len(retriever.invoke("coffee", k=1)) == 1
    assert len(retriever.invoke("coffee", k=12)) == 12
    docs = retriever.invoke("coffee", k=2, fetch_k=1)  # fetch_k is raised to k
    assert len(docs) == 2


async def test_ainvoke_passes_kwargs(retriever: HybridRetriever) -> None:
    docs = await retriever.ainvoke("coffee grind", k=2, filter={"source": "faq"})
    assert len(docs) == 2
    assert all(d.metadata["source"] == "faq" for d in docs)
    sync = retriever.invoke("coffee grind", k=2, filter={"source": "faq"})
    assert [d.id for d in docs] == [d.id for d in sync]


async def test_async_and_sync_agree(retriever: HybridRetriever) -> None:
    for query in ("python functions", "garden soil", "wifi router reset"):
        sync = retriever.invoke(query, k=5)
        asyn = await retriever.ainvoke(query, k=5)
        assert [(d.id, d.metadata["hybrid_score"]) for d in sync] == [
            (d.id, d.metadata["hybrid_score"]) for d in asyn
        ]


# ---------------------------------------------------------------------- filters
@pytest.mark.parametrize(
    ("where", "check"),
    [
        ({"source": "faq"}, lambda m: m["source"] == "faq"),
        ({"year": {"$gte": 2024}}, lambda m: m["year"] >= 2024),
        ({"source": {"$in": ["blog", "handbook"]}}, lambda m: m["source"] != "faq"),
        ({"source": {"$ne": "faq"}}, lambda m: m["source"] != "faq"),
        (
            {"$and": [{"source": "faq"}, {"year": {"$lt": 2024}}]},
            lambda m: m["source"] == "faq" and m["year"] < 2024,
        ),
        (
            {"$or": [{"year": 2019}, {"year": 2026}]},
            lambda m: m["year"] in {2019, 2026},
        ),
    ],
)
def test_filters_apply_to_both_legs_and_never_pad(
    retriever: HybridRetriever, where: dict[str, Any], check: Any
) -> None:
    matching = {i for i, _, s, y in CORPUS if check({"source": s, "year": y})}
    docs = retriever.invoke("coffee router python garden", k=12, filter=where)
    assert {d.id for d in docs} <= matching
    assert all(check(d.metadata) for d in docs)
    bm25_ids = {d.id for d in docs if d.metadata["bm25_rank"] is not None}
    vector_ids = {d.id for d in docs if d.metadata["vector_rank"] is not None}
    assert bm25_ids
    assert vector_ids
    assert vector_ids == matching  # every matching doc is a vector candidate (12 <= fetch_k)


def test_filter_that_matches_nothing_returns_nothing(retriever: HybridRetriever) -> None:
    assert retriever.invoke("coffee", filter={"source": "nowhere"}) == []


@pytest.mark.parametrize(
    "where",
    [
        {"source": {"$regex": "f.*"}},
        {"source": "faq", "year": 2024},
        {"$and": [{"source": "faq"}]},
        {"year": {"$gt": "2020"}},
        "source = faq",
        {"source": None},
    ],
)
def test_bad_filters_raise_typed_errors(retriever: HybridRetriever, where: Any) -> None:
    with pytest.raises(InvalidFilterError):
        retriever.invoke("coffee", filter=where)


# ---------------------------------------------------------------------- bad queries
@pytest.mark.parametrize(
    ("query", "kwargs"),
    [
        ("", {}),
        ("   \n\t", {}),
        (None, {}),
        (42, {}),
        ("coffee", {"k": 0}),
        ("coffee", {"k": -1}),
        ("coffee", {"k": 2.5}),
        ("coffee", {"k": True}),
        ("coffee", {"fetch_k": 0}),
        ("coffee", {"weights": (1.0,)}),
        ("coffee", {"weights": (-1.0, 1.0)}),
        ("coffee", {"weights": (0.0, 0.0)}),
        ("coffee", {"weights": (float("nan"), 1.0)}),
        ("coffee", {"fusion": "borda"}),
        ("coffee", {"rrf_k": -5}),
        ("coffee", {"kk": 3}),
    ],
)
def test_bad_queries_raise_invalid_query_error(
    retriever: HybridRetriever, query: Any, kwargs: dict[str, Any]
) -> None:
    before = _snapshot(retriever)
    with pytest.raises(InvalidQueryError):
        retriever.invoke(query, **kwargs)
    assert _snapshot(retriever) == before


async def test_bad_async_queries_raise_invalid_query_error(retriever: HybridRetriever) -> None:
    with pytest.raises(InvalidQueryError):
        await retriever.ainvoke("  ")
    with pytest.raises(InvalidQueryError):
        await retriever.ainvoke("coffee", k=0)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"weights": (1.0, -1.0)}, "weights"),
        ({"k": 0}, "k"),
        ({"fetch_k": 0}, "fetch_k"),
        ({"fusion": "borda"}, "fusion"),
        ({"rrf_k": -1}, "rrf_k"),
        ({"on_leg_error": "ignore"}, "on_leg_error"),
        ({"fetchk": 50}, "fetchk: unknown argument"),  # a typo is not silently ignored
    ],
)
def test_bad_constructor_fields_raise_config_error_and_create_nothing(
    tmp_path: Path, embedding: HashEmbeddings, fields: dict[str, Any], named: str
) -> None:
    directory = tmp_path / "index"
    with pytest.raises(ConfigError, match=named):
        HybridRetriever.from_documents(
            corpus_documents(), embedding=embedding, persist_directory=directory, **fields
        )
    assert not directory.exists()  # nothing was created before the arguments were checked
    assert embedding.embedded_documents == 0
    with pytest.raises(ConfigError, match=named):
        HybridRetriever.from_config({"store": {"path": str(directory)}}, embedding, **fields)
    assert not directory.exists()
    built = HybridRetriever.from_documents(
        corpus_documents(), embedding=embedding, persist_directory=directory
    )
    with pytest.raises(ConfigError, match=named):
        HybridRetriever.load(directory, embedding=embedding, **fields)
    with pytest.raises(ConfigError, match=named):
        HybridRetriever(store=built.store, bm25=built.bm25, embedding=embedding, **fields)


# ---------------------------------------------------------------------- writes
def test_add_update_delete_keep_both_legs_in_step(retriever: HybridRetriever) -> None:
    ids = retriever.add_documents(
        [Document(page_content="Moka pots brew strong stovetop coffee", metadata={"source": "x"})]
    )
    assert len(ids) == 1
    assert ids[0] in retriever.bm25
    assert retriever.store.count() == len(retriever.bm25) == len(CORPUS) + 1
    assert retriever.invoke("moka stovetop", k=1)[0].id == ids[0]

    retriever.add_documents(
        [Document(page_content="Aeropress makes a clean cup", metadata={"source": "y"})], ids=ids
    )
    assert retriever.store.count() == len(CORPUS) + 1
    assert retriever.invoke("moka stovetop", k=1, filter={"source": "x"}) == []
    top = retriever.invoke("aeropress clean", k=1)[0]
    assert (top.id, top.metadata["source"]) == (ids[0], "y")
    assert retriever.get_by_ids(ids)[0].metadata == {"source": "y"}

    retriever.delete(ids)
    assert ids[0] not in retriever.bm25
    assert retriever.store.count() == len(retriever.bm25) == len(CORPUS)
    assert all(d.id != ids[0] for d in retriever.invoke("aeropress clean moka", k=12))


def test_upsert_replaces_metadata_instead_of_merging(retriever: HybridRetriever) -> None:
    retriever.add_documents(
        [Document(page_content="Drip coffee", metadata={"source": "faq", "extra": "old"})],
        ids=["drip"],
    )
    retriever.add_documents(
        [Document(page_content="Drip coffee", metadata={"source": "blog"})], ids=["drip"]
    )
    assert retriever.get_by_ids(["drip"])[0].metadata == {"source": "blog"}
    assert retriever.invoke("drip coffee", k=12, filter={"extra": "old"}) == []


def test_each_text_is_embedded_once(embedding: HashEmbeddings, collection_name: str) -> None:
    retriever = HybridRetriever.from_documents(
        corpus_documents(), embedding=embedding, collection_name=collection_name
    )
    assert embedding.embedded_documents == len(CORPUS)
    retriever.invoke("coffee")
    assert embedding.embedded_documents == len(CORPUS)
    assert embedding.embedded_queries == 1


def test_document_ids_come_from_documents(retriever: HybridRetriever) -> None:
    ids = retriever.add_documents([Document(id="mine", page_content="Latte art with milk foam")])
    assert ids == ["mine"]


@pytest.mark.parametrize(
    ("docs", "ids"),
    [
        ([Document(page_content="a"), Document(page_content="b")], ["x"]),
        ([Document(page_content="a"), Document(page_content="b")], ["x", "x"]),
        ([Document(page_content="a")], [""]),
        ([Document(page_content="a")], [7]),
        ([Document(page_content="a", metadata={"n": float("nan")})], ["x"]),
        ([Document(page_content="a", metadata={"n": {"nested": 1}})], ["x"]),
        ([Document(page_content="a", metadata={"n": []})], ["x"]),
        (["not a document"], ["x"]),
    ],
)
def test_bad_writes_raise_and_change_nothing(
    retriever: HybridRetriever, embedding: HashEmbeddings, docs: list[Any], ids: list[Any]
) -> None:
    before = _snapshot(retriever)
    embedded = embedding.embedded_documents
    with pytest.raises(InvalidDocumentsError):
        retriever.add_documents(docs, ids=ids)
    assert _snapshot(retriever) == before
    assert embedding.embedded_documents == embedded  # validated before the model runs


def test_bad_deletes_raise_and_change_nothing(retriever: HybridRetriever) -> None:
    before = _snapshot(retriever)
    for bad in ("net-1", [""], [None]):
        with pytest.raises(InvalidDocumentsError):
            retriever.delete(bad)  # type: ignore[arg-type]
    assert _snapshot(retriever) == before
    retriever.delete(["no-such-id"])
    assert _snapshot(retriever)[:3] == before[:3]


def test_errors_share_one_root() -> None:
    for error in (InvalidQueryError, InvalidFilterError, InvalidDocumentsError):
        assert issubclass(error, HybridRetrieverError)
        assert issubclass(error, ValueError)


# ---------------------------------------------------------------------- legs
def test_legs_are_child_runs_in_parallel_threads(retriever: HybridRetriever) -> None:
    recorder = RunRecorder()
    retriever.invoke("coffee", config={"callbacks": [recorder]})
    names = {name: (run_id, parent) for name, run_id, parent, _ in recorder.starts}
    assert set(names) == {"HybridRetriever", "bm25", "vector"}
    root = names["HybridRetriever"][0]
    assert names["bm25"][1] == root
    assert names["vector"][1] == root
    threads = {name: thread for name, _, _, thread in recorder.starts}
    # the vector leg (outside the GIL most of its time) in the pool, BM25 in the calling thread
    assert threads["bm25"] == threading.current_thread().name
    assert threads["vector"].startswith("langchain-hybrid")


class _SlowQueries(HashEmbeddings):
    """HashEmbeddings whose query embedding waits 50 ms without the GIL (a model's inference)."""

    def embed_query(self, text: str) -> list[float]:
        time.sleep(0.05)
        return super().embed_query(text)


def test_the_bm25_leg_runs_while_the_vector_leg_waits(collection_name: str) -> None:
    slow = HybridRetriever.from_documents(
        corpus_documents(), embedding=_SlowQueries(), collection_name=collection_name, k=4
    )
    fast = HybridRetriever(store=slow.store, bm25=slow.bm25, embedding=HashEmbeddings(), k=4)
    legs = _LegDocuments()
    answer = slow.invoke("espresso beans", config={"callbacks": [legs]})
    assert _answer(answer) == _answer(fast.invoke("espresso beans"))
    (bm25_start, bm25_end), (vector_start, vector_end) = legs.times["bm25"], legs.times["vector"]
    assert vector_end - vector_start >= 0.05
    assert bm25_end < vector_end  # in turn, BM25 would start after the vector leg ended
    assert bm25_start < vector_start + 0.05


class _LegDocuments(BaseCallbackHandler):
    """Records what each leg's child run reported, and when it started and ended, by run name."""

    def __init__(self) -> None:
        self.names: dict[UUID, str] = {}
        self.documents: dict[str, list[Document]] = {}
        self.times: dict[str, tuple[float, float]] = {}
        self.started: dict[UUID, float] = {}

    def on_retriever_start(
        self, serialized: dict[str, Any], query: str, *, run_id: UUID, **kwargs: Any
    ) -> None:
        self.names[run_id] = kwargs.get("name") or ""
        self.started[run_id] = time.perf_counter()

    def on_retriever_end(self, documents: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.documents[self.names[run_id]] = list(documents)
        self.times[self.names[run_id]] = (self.started[run_id], time.perf_counter())


def _answer(docs: list[Document]) -> list[tuple[Any, str, dict[str, Any]]]:
    return [(d.id, d.page_content, d.metadata) for d in docs]


@pytest.mark.parametrize("group_by", [None, "source"])
async def test_watched_and_unwatched_searches_take_one_path(
    embedding: HashEmbeddings,
    collection_name: str,
    monkeypatch: pytest.MonkeyPatch,
    group_by: str | None,
) -> None:
    """With or without a handler, sync or async: each leg ranks once (``_rank``), the answers
    are equal, and the legs' child runs report exactly the hits that were fused."""
    retriever = HybridRetriever.from_documents(
        corpus_documents(),
        embedding=embedding,
        collection_name=collection_name,
        k=4,
        cache=False,
        group_by=group_by,
    )
    calls: list[tuple[str, int]] = []
    real_rank = HybridRetriever._rank

    def counting_rank(self: HybridRetriever, leg: str, params: Any, vector: Any = None) -> Any:
        calls.append((leg, params.fetch_k))
        return real_rank(self, leg, params, vector)

    monkeypatch.setattr(HybridRetriever, "_rank", counting_rank)
    for query in ("coffee grind water", "router error E-4471", "python"):
        answers = []
        for watched in (False, True):
            for run in ("sync", "async"):
                handler = _LegDocuments()
                config: Any = {"callbacks": [handler]} if watched else {}
                calls.clear()
                if run == "sync":
                    docs = retriever.invoke(query, config=config)
                else:
                    docs = await retriever.ainvoke(query, config=config)
                assert sorted(calls) == [("bm25", 50), ("vector", 50)], (query, watched, run)
                answers.append(_answer(docs))
                if not watched:
                    assert handler.documents == {}
                    continue
                for leg in LEGS:
                    hits = real_rank(retriever, leg, retriever._params(query, {}))
                    assert [(d.id, d.page_content, d.metadata) for d in handler.documents[leg]] == [
                        (h.id, "", {f"{leg}_rank": r, f"{leg}_score": h.score})
                        for r, h in enumerate(hits, start=1)
                    ], (query, leg, run)
        assert all(answer == answers[0] for answer in answers), query
        assert len(answers[0]) == (4 if group_by is None else 3), query  # three sources


class _SlowNativeAsync(_SlowQueries):
    """A slow query embedding with its own ``aembed_query`` (an async client)."""

    async def aembed_query(self, text: str) -> list[float]:
        await asyncio.sleep(0.05)
        return HashEmbeddings.embed_query(self, text)


@pytest.mark.parametrize("embedding", [_SlowQueries, _SlowNativeAsync])
async def test_more_concurrent_async_queries_than_pool_threads(
    collection_name: str, embedding: type[HashEmbeddings]
) -> None:
    """A search's worker thread waits for a leg in another pool: it never waits on a job
    queued behind itself, however many searches run at once."""
    retriever = HybridRetriever.from_documents(
        corpus_documents(), embedding=embedding(), collection_name=collection_name, k=3, cache=False
    )
    queries = [f"coffee {i}" for i in range(4 * ((os.cpu_count() or 1) + 4))]
    answers = await asyncio.wait_for(
        asyncio.gather(*(retriever.ainvoke(q) for q in queries)), timeout=60
    )
    assert [len(a) for a in answers] == [3] * len(queries)
    assert answers[0] == retriever.invoke(queries[0])


async def test_async_legs_are_child_runs(retriever: HybridRetriever) -> None:
    recorder = RunRecorder()
    await retriever.ainvoke("coffee", config={"callbacks": [recorder]})
    names = {name: parent for name, _, parent, _ in recorder.starts}
    assert names["bm25"] is not None
    assert names["vector"] is not None


def test_a_failing_leg_degrades_to_the_other(retriever: HybridRetriever) -> None:
    retriever.store.client.delete_collection(retriever.store.config.chroma_collection)
    recorder = RunRecorder()
    docs = retriever.invoke("coffee grind", config={"callbacks": [recorder]})
    assert docs
    assert all(d.metadata["degraded"] == "vector" for d in docs)
    assert all(d.metadata["vector_rank"] is None for d in docs)
    assert docs[0].metadata["bm25_rank"] == 1
    assert len(recorder.errors) == 1  # the vector child run reported its error


async def test_a_failing_leg_degrades_in_async_too(retriever: HybridRetriever) -> None:
    retriever.store.client.delete_collection(retriever.store.config.chroma_collection)
    docs = await retriever.ainvoke("coffee grind")
    assert docs
    assert all(d.metadata["degraded"] == "vector" for d in docs)


def test_on_leg_error_raise(retriever: HybridRetriever) -> None:
    retriever.on_leg_error = "raise"
    retriever.store.client.delete_collection(retriever.store.config.chroma_collection)
    with pytest.raises(HybridRetrieverError):
        retriever.invoke("coffee grind")


def test_all_legs_failing_raises(retriever: HybridRetriever) -> None:
    class Broken(HashEmbeddings):
        def embed_query(self, text: str) -> list[float]:
            msg = "model crashed"
            raise RuntimeError(msg)

    retriever.embedding = Broken()
    retriever.bm25 = None  # type: ignore[assignment]
    with pytest.raises(AllLegsFailedError, match="model crashed"):
        retriever.invoke("coffee")


# ---------------------------------------------------------------------- persistence
def test_reload_gives_same_results_without_embedding_or_tokenizing(
    tmp_path: Path, embedding: HashEmbeddings
) -> None:
    built = HybridRetriever.from_documents(
        corpus_documents(), embedding=embedding, persist_directory=tmp_path, collection_name="kb"
    )
    expected = [(d.id, d.metadata) for d in built.invoke("coffee router python", k=6)]
    fresh = HashEmbeddings()
    reopened = HybridRetriever.load(tmp_path, collection_name="kb", embedding=fresh, k=6)
    got = [(d.id, d.metadata) for d in reopened.invoke("coffee router python")]
    assert [i for i, _ in got] == [i for i, _ in expected]
    assert fresh.embedded_documents == 0
    assert (tmp_path / "bm25" / "kb" / "manifest.json").is_file()


def test_load_of_a_missing_collection_is_a_clear_error(
    tmp_path: Path, embedding: HashEmbeddings
) -> None:
    with pytest.raises(IndexNotBuiltError, match="no index"):
        HybridRetriever.load(tmp_path / "absent", embedding=HashEmbeddings())
    assert not (tmp_path / "absent").exists()  # nothing created by a failed load
    HybridRetriever.from_documents(
        corpus_documents(), embedding=embedding, persist_directory=tmp_path, collection_name="kb"
    )
    with pytest.raises(IndexNotBuiltError, match="does not exist"):
        HybridRetriever.load(tmp_path, collection_name="nothing", embedding=HashEmbeddings())


@pytest.mark.parametrize("damage", ["missing", "corrupt", "stale", "died-mid-write", "settings"])
def test_bm25_is_rebuilt_from_chroma(
    tmp_path: Path, embedding: HashEmbeddings, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    built = HybridRetriever.from_documents(
        corpus_documents(), embedding=embedding, persist_directory=tmp_path, collection_name="kb"
    )
    expected = [d.id for d in built.invoke("coffee grind", k=5)]
    bm25_dir = default_bm25_path(tmp_path, "kb")
    params = None
    if damage == "missing":
        for f in bm25_dir.iterdir():
            f.unlink()
    elif damage == "corrupt":
        vocab_file = next(bm25_dir.glob("vocab-*.json"))
        vocab_file.write_bytes(b"garbage")
    elif damage == "stale":  # as a crash between a completed Chroma write and the BM25 save
        built.store.begin_write()
        built.store.end_write()
    elif damage == "died-mid-write":  # the writer process died inside a write
        built.store.begin_write()
        release_writer_lock(tmp_path)
    else:
        params = BM25Params(k1=1.2, b=0.75, tokenizer=TokenizerConfig(stemmer=None))
    with caplog.at_level("WARNING", logger="langchain_hybrid"):
        reopened = HybridRetriever.load(
            tmp_path, collection_name="kb", embedding=HashEmbeddings(), bm25_params=params
        )
    assert len(reopened.bm25) == len(CORPUS)
    assert reopened.bm25.generation == reopened.store.metadata_generation()
    assert reopened.bm25.generation % 2 == 0  # a dead writer's write is marked complete
    if params is None:
        assert [d.id for d in reopened.invoke("coffee grind", k=5)] == expected
    else:
        assert reopened.bm25.params == params
    assert any("rebuilt from" in r.getMessage() for r in caplog.records)
    again = HybridRetriever.load(tmp_path, collection_name="kb", embedding=HashEmbeddings())
    assert again.bm25.generation == reopened.bm25.generation  # the repaired index was saved


def test_lcel_chain_with_retriever(retriever: HybridRetriever) -> None:
    prompt = ChatPromptTemplate.from_template("Context: {context}\nQ: {question}")
    chain = {
        "context": retriever | RunnableLambda(lambda ds: "\n".join(d.page_content for d in ds)),
        "question": RunnableLambda(lambda q: q),
    } | prompt
    value = chain.invoke("espresso grind")
    assert "Espresso needs a fine grind" in value.to_string()


def test_concurrent_queries_from_threads(retriever: HybridRetriever) -> None:
    expected = [d.id for d in retriever.invoke("python functions", k=3)]
    results: list[list[str]] = []

    def work() -> None:
        results.extend([d.id for d in retriever.invoke("python functions", k=3)] for _ in range(10))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected] * 40


async def test_many_concurrent_async_queries(retriever: HybridRetriever) -> None:
    queries = ["coffee", "router", "python", "garden"] * 5
    results = await asyncio.gather(*(retriever.ainvoke(q, k=2) for q in queries))
    assert all(len(r) == 2 for r in results)


def test_deferred_save_writes_bm25_once_at_the_end(
    tmp_path: Path, embedding: HashEmbeddings
) -> None:
    retriever = HybridRetriever.from_documents(
        corpus_documents(), embedding=embedding, persist_directory=tmp_path, collection_name="kb"
    )
    manifest = default_bm25_path(tmp_path, "kb") / "manifest.json"
    before = manifest.read_bytes()
    with retriever.deferred_save():
        retriever.add_documents([Document(id="x1", page_content="first bulk doc")])
        retriever.add_documents([Document(id="x2", page_content="second bulk doc")])
        retriever.delete(["net-1"])
        assert manifest.read_bytes() == before  # nothing saved inside the block
    reopened = HybridRetriever.load(tmp_path, collection_name="kb", embedding=HashEmbeddings())
    assert reopened.bm25.generation == retriever.store.metadata_generation()
    assert {"x1", "x2"} <= set(reopened.bm25.ids)
    assert "net-1" not in reopened.bm25


# ---------------------------------------------------------------------- cache
class _CacheEvents(BaseCallbackHandler):
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.leg_runs = 0

    def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        if name == "langchain_hybrid.cache":
            self.events.append(data)

    def on_retriever_start(self, serialized: dict[str, Any], query: str, **kwargs: Any) -> None:
        if kwargs.get("name") in {"bm25", "vector"}:
            self.leg_runs += 1


def test_repeated_query_is_served_from_the_cache(
    retriever: HybridRetriever, embedding: HashEmbeddings
) -> None:
    events = _CacheEvents()
    first = retriever.invoke("coffee grind", k=3, config={"callbacks": [events]})
    queries = embedding.embedded_queries
    second = retriever.invoke("coffee grind", k=3, config={"callbacks": [events]})
    assert [(d.id, d.metadata) for d in second] == [(d.id, d.metadata) for d in first]
    assert embedding.embedded_queries == queries  # nothing embedded on a hit
    assert events.leg_runs == 2  # legs ran for the first call only
    assert events.events == [{"hit": False}, {"hit": True}]
    assert retriever.cache is not None
    assert retriever.cache.stats()["hits"] == 1


def test_cache_key_covers_every_argument(retriever: HybridRetriever) -> None:
    base = retriever.invoke("coffee grind", k=3)
    assert len(retriever.invoke("coffee grind", k=4)) == 4
    assert retriever.invoke("coffee grind", k=3, filter={"source": "faq"}) != base
    assert retriever.cache is not None
    assert retriever.cache.stats()["misses"] == 3
    retriever.invoke("coffee grind", k=3, filter={"source": "faq"})
    assert retriever.cache.stats()["hits"] == 1


def test_writes_invalidate_the_cache_before_returning(retriever: HybridRetriever) -> None:
    before = retriever.invoke("aeropress", k=12)
    assert all(d.id != "aero" for d in before)
    retriever.add_documents([Document(id="aero", page_content="Aeropress recipe")])
    assert retriever.invoke("aeropress", k=12)[0].id == "aero"
    retriever.delete(["aero"])
    assert all(d.id != "aero" for d in retriever.invoke("aeropress", k=12))


def test_cached_documents_are_copies(retriever: HybridRetriever) -> None:
    first = retriever.invoke("coffee grind", k=2)
    first[0].metadata["source"] = "tampered"
    first[0].page_content = "tampered"
    again = retriever.invoke("coffee grind", k=2)
    assert again[0].metadata["source"] != "tampered"
    assert again[0].page_content != "tampered"


def test_degraded_answers_are_not_cached(retriever: HybridRetriever) -> None:
    retriever.store.client.delete_collection(retriever.store.config.chroma_collection)
    assert retriever.invoke("coffee grind")[0].metadata["degraded"] == "vector"
    assert retriever.cache is not None
    assert retriever.cache.stats()["entries"] == 0


async def test_async_cache_hits(retriever: HybridRetriever, embedding: HashEmbeddings) -> None:
    events = _CacheEvents()
    await retriever.ainvoke("python", config={"callbacks": [events]})
    queries = embedding.embedded_queries
    results = await asyncio.gather(*(retriever.ainvoke("python") for _ in range(5)))
    assert len({tuple(d.id for d in r) for r in results}) == 1
    assert embedding.embedded_queries == queries
    assert events.events == [{"hit": False}]


def test_cache_can_be_disabled(collection_name: str) -> None:
    retriever = HybridRetriever.from_documents(
        corpus_documents(),
        embedding=HashEmbeddings(),
        collection_name=collection_name,
        cache=False,
    )
    assert retriever.cache is None
    assert isinstance(retriever.embedding, HashEmbeddings)
    assert retriever.invoke("coffee") == retriever.invoke("coffee")


def test_refresh_picks_up_another_writer(tmp_path: Path, embedding: HashEmbeddings) -> None:
    reader = HybridRetriever.from_documents(
        corpus_documents(), embedding=embedding, persist_directory=tmp_path, collection_name="kb"
    )
    assert reader.invoke("saffron", k=12)[0].id != "new"
    writer = HybridRetriever.load(tmp_path, collection_name="kb", embedding=HashEmbeddings())
    writer.add_documents([Document(id="new", page_content="Saffron threads in paella")])
    assert reader.refresh() is True
    assert "new" in reader.bm25
    top = reader.invoke("saffron", k=12)[0]
    assert (top.id, top.metadata["bm25_rank"]) == ("new", 1)
    assert reader.refresh() is False


def test_writes_leave_an_even_generation_that_bm25_matches(
    tmp_path: Path, embedding: HashEmbeddings
) -> None:
    retriever = HybridRetriever.from_documents(
        corpus_documents(), embedding=embedding, persist_directory=tmp_path, collection_name="kb"
    )
    first = retriever.store.metadata_generation()
    retriever.add_documents([Document(id="new", page_content="Saffron threads in paella")])
    retriever.delete(["new"])
    generation = retriever.store.metadata_generation()
    assert generation % 2 == 0
    assert generation == first + 4  # each write: odd while under way, even once complete
    assert retriever.bm25.generation == generation
    assert retriever.refresh() is False


def test_refresh_follows_a_write_under_way_until_it_completes(
    tmp_path: Path, embedding: HashEmbeddings
) -> None:
    """A reader that syncs in the middle of another process's write is not left stale.

    The write is count-neutral (an upsert), so only the generation can tell the reader that
    the state it loaded was not final.
    """
    reader = HybridRetriever.from_documents(
        corpus_documents(), embedding=embedding, persist_directory=tmp_path, collection_name="kb"
    )
    writer = HybridRetriever.load(tmp_path, collection_name="kb", embedding=HashEmbeddings())
    writer.store.begin_write()  # the writer has begun; its upsert has not landed yet
    assert reader.refresh() is True
    assert "saffron" not in reader.bm25.get(["net-2"])[0].text.lower()  # type: ignore[union-attr]
    text = "Saffron threads in paella"
    writer.store.upsert(["net-2"], [text], embedding.embed_documents([text]), [None])
    assert reader.refresh() is True  # still odd: the reader syncs again and sees the upsert
    assert reader.bm25.get(["net-2"])[0].text == text  # type: ignore[union-attr]
    assert reader.invoke("saffron paella", k=1)[0].id == "net-2"
    writer.store.end_write()
    assert reader.refresh() is True
    assert reader.refresh() is False  # settled


class _SlowEmbeddings(HashEmbeddings):
    """Query embeddings that take a while, so concurrent identical queries overlap."""

    def embed_query(self, text: str) -> list[float]:
        time.sleep(0.2)
        return super().embed_query(text)


def test_cache_events_agree_with_cache_statistics(collection_name: str) -> None:
    """A call that waited for another thread's computation is a miss, in both accounts."""
    retriever = HybridRetriever.from_documents(
        corpus_documents(), embedding=_SlowEmbeddings(), collection_name=collection_name
    )
    events = _CacheEvents()
    barrier = threading.Barrier(3)

    def ask() -> None:
        barrier.wait()
        retriever.invoke("coffee grind", config={"callbacks": [events]})

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    retriever.invoke("coffee grind", config={"callbacks": [events]})
    assert retriever.cache is not None
    stats = retriever.cache.stats()
    assert stats["hits"] == sum(e["hit"] for e in events.events) == 1
    assert stats["misses"] == sum(not e["hit"] for e in events.events) == 3
    assert retriever.embedding.cache_stats()["misses"] == 1  # type: ignore[attr-defined]


def test_another_retriever_in_this_process_never_serves_a_stale_answer(
    tmp_path: Path, embedding: HashEmbeddings
) -> None:
    """Writes through one retriever are seen by the next query of another on the same store,
    without waiting for ``refresh_interval_seconds`` (here: never)."""
    reader = HybridRetriever.from_documents(
        corpus_documents(),
        embedding=embedding,
        persist_directory=tmp_path,
        collection_name="kb",
        refresh_interval_seconds=None,
    )
    writer = HybridRetriever.load(tmp_path, collection_name="kb", embedding=HashEmbeddings())
    assert all(d.id != "new" for d in reader.invoke("saffron paella", k=12))  # now cached
    writer.add_documents([Document(id="new", page_content="Saffron threads in paella")])
    hits = reader.invoke("saffron paella", k=12)
    assert (hits[0].id, hits[0].metadata["bm25_rank"]) == ("new", 1)
    assert hits[0].metadata["vector_rank"] is not None
    writer.delete(["new"])
    assert all(d.id != "new" for d in reader.invoke("saffron paella", k=12))
    assert "new" not in reader.bm25
    reader.add_documents([Document(id="own", page_content="Saffron risotto")])
    assert writer.invoke("saffron risotto", k=1)[0].id == "own"
    assert "own" in writer.bm25
    assert reader.refresh() is False  # its own write needs no sync


def test_result_cache_byte_budget(collection_name: str) -> None:
    retriever = HybridRetriever.from_documents(
        corpus_documents(),
        embedding=HashEmbeddings(),
        collection_name=collection_name,
        cache=CacheSettings(max_bytes=6_000),
    )
    assert retriever.cache is not None
    assert retriever.cache.max_bytes == 6_000
    for query in ("coffee", "router", "roses", "python", "tomatoes", "espresso"):
        retriever.invoke(query, k=2)
    assert 0 < retriever.cache.stats()["entries"] < 6  # evicted to stay within the budget
    retriever.invoke("coffee grind", k=12)  # an answer larger than the whole budget
    assert "coffee grind" not in [k.rsplit("\x1f", 1)[-1] for k in retriever.cache._data]


# ---------------------------------------------------------------------- tracing
class _StartMetadata(BaseCallbackHandler):
    def __init__(self) -> None:
        self.metadata: dict[str, Any] = {}

    def on_retriever_start(self, serialized: Any, query: str, **kwargs: Any) -> None:
        if kwargs.get("parent_run_id") is None:  # the retriever's own run, not a leg's
            self.metadata = dict(kwargs.get("metadata") or {})


def test_langsmith_trace_names_the_retriever_store_and_model(collection_name: str) -> None:
    retriever = HybridRetriever.from_texts(
        ["red apples", "green pears"],
        embedding=HashEmbeddings(),
        store_config=StoreConfig(mode="ephemeral", collection=collection_name),
    )
    seen = _StartMetadata()
    retriever.invoke("apples", config={"callbacks": [seen]})
    assert seen.metadata["ls_retriever_name"] == "hybrid"
    assert seen.metadata["ls_vector_store_provider"] == "chroma"
    assert seen.metadata["ls_embedding_provider"] == "HashEmbeddings", "the cache is unwrapped"
    minilm = retriever.model_copy(update={"embedding": CachedEmbeddings(MiniLMEmbeddings())})
    params = minilm._get_ls_params()
    assert params["ls_embedding_provider"] == "MiniLMEmbeddings"
    assert params["ls_embedding_model"] == "all-MiniLM-L6-v2"
