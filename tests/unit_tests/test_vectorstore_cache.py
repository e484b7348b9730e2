"""CachedVectorStore: the cached store around a real in-process Chroma collection.

"Cached answer is right" always means "equal to the same call on the unwrapped store, made right
after"; writes behind the wrapper's back are real writes by another client of the collection.
"""

from __future__ import annotations

import asyncio
import functools
import random
import threading
import uuid
import warnings
from pathlib import Path
from typing import Any

import chromadb
import pytest
from chromadb.config import Settings
from helpers import FakeClock, HashEmbeddings, run_threads, wait_until
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_chroma import Chroma
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests import (
    VectorStoreIntegrationTests,
)

from langchain_hybrid import HybridRetriever
from langchain_hybrid.cache import CachedEmbeddings, cache_key
from langchain_hybrid.errors import ConfigError
from langchain_hybrid.stores import GENERATION_KEY
from langchain_hybrid.vectorstore_cache import (
    CachedVectorStore,
    _scalar_key,
    chroma_staleness_check,
)

STATS_KEYS = {"hits", "misses", "hit_rate", "evictions", "entries", "invalidations"}


@functools.cache
def chroma_client() -> Any:
    return chromadb.EphemeralClient(settings=Settings(anonymized_telemetry=False))


def new_chroma(embedding: Embeddings | None = None, cls: type[Chroma] = Chroma) -> Chroma:
    # Collections are never deleted: see the note in test_filters.py about Chroma 1.5.9.
    return cls(
        collection_name=f"cache-{uuid.uuid4().hex}",
        embedding_function=embedding or HashEmbeddings(),
        client=chroma_client(),
    )


CORPUS = [
    Document(id=i, page_content=text, metadata={"topic": topic, "n": n})
    for i, text, topic, n in [
        ("net-1", "router error after a firmware update", "a", 1),
        ("net-2", "reset the router to factory settings", "a", 2),
        ("cof-1", "coffee grind size for espresso", "b", 1),
        ("cof-2", "cold brew coffee needs a coarse grind", "b", 3),
        ("gar-1", "garden soil and compost", "b", 2),
    ]
]


def summary(result: list[Any]) -> list[tuple[Any, ...]]:
    """Ids, contents, metadata (and scores) of a search result, for equality checks."""
    out: list[tuple[Any, ...]] = []
    for item in result:
        if isinstance(item, tuple):
            doc, score = item
            out.append((doc.id, doc.page_content, doc.metadata, round(score, 9)))
        else:
            out.append((item.id, item.page_content, item.metadata))
    return out


# ============================================================================ standard suite
class TestCachedChromaStandard(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, collection_name: str) -> VectorStore:  # type: ignore[override]
        chroma = Chroma(
            collection_name=collection_name,
            embedding_function=self.get_embeddings(),
            client=chroma_client(),
        )
        return CachedVectorStore(chroma)


# ============================================================================ CachedVectorStore
@pytest.fixture
def chroma() -> Chroma:
    store = new_chroma()
    store.add_documents(CORPUS)
    return store


def test_store_stats_and_shared_sync_async_entries(chroma: Chroma) -> None:
    store = CachedVectorStore(chroma)
    assert store.similarity_search("router", k=2) == chroma.similarity_search("router", k=2)
    store.similarity_search("router", k=2)
    store.similarity_search("router", k=3)
    assert asyncio.run(store.asimilarity_search("router", k=2)) == chroma.similarity_search(
        "router", k=2
    )
    assert store.cache_stats() == {
        "hits": 2,
        "misses": 2,
        "hit_rate": 0.5,
        "evictions": 0,
        "entries": 2,
        "invalidations": 0,
    }
    store.add_texts(["new router text"], [{"topic": "a", "n": 9}], ids=["new-1"])
    stats = store.cache_stats()
    assert set(stats) == STATS_KEYS
    assert (stats["entries"], stats["invalidations"]) == (0, 2)
    assert store.similarity_search("router", k=3) == chroma.similarity_search("router", k=3)


def test_store_key_covers_every_argument(chroma: Chroma) -> None:
    store = CachedVectorStore(chroma)
    store.similarity_search("router", k=2)
    store.similarity_search("router", k=3)
    store.similarity_search("coffee", k=2)
    store.similarity_search("router", k=2, filter={"topic": "b"})
    store.similarity_search_with_score("router", k=2)
    store.max_marginal_relevance_search("router", k=2, fetch_k=5)
    store.max_marginal_relevance_search("router", k=2, fetch_k=4)
    store.max_marginal_relevance_search("router", k=2, fetch_k=4, lambda_mult=0.9)
    assert store.cache_stats()["misses"] == 8
    assert store.cache_stats()["hits"] == 0
    # keyword order, and positional vs keyword k, do not matter
    where = {"$and": [{"topic": "b"}, {"n": {"$gte": 2}}]}
    contains = {"$contains": "grind"}
    first = store.max_marginal_relevance_search(
        "coffee", k=2, fetch_k=5, filter=where, where_document=contains
    )
    second = store.max_marginal_relevance_search(
        "coffee", where_document=contains, filter=where, fetch_k=5, k=2
    )
    assert summary(first) == summary(second)
    assert store.similarity_search_with_score("router", 2) == store.similarity_search_with_score(
        query="router", k=2
    )
    assert store.cache_stats()["hits"] == 3


def test_store_returns_copies(chroma: Chroma) -> None:
    store = CachedVectorStore(chroma)
    docs = store.similarity_search("router", k=2)
    docs[0].metadata["topic"] = "corrupted"
    docs[0].page_content = "corrupted"
    docs.append(Document(page_content="extra"))
    scored = store.similarity_search_with_score("router", k=2)
    scored[0][0].metadata.clear()
    assert store.similarity_search("router", k=2) == chroma.similarity_search("router", k=2)
    assert summary(store.similarity_search_with_score("router", k=2)) == summary(
        chroma.similarity_search_with_score("router", k=2)
    )
    assert store.cache_stats()["hits"] == 2
    again = store.similarity_search("router", k=2)
    assert again[0] is not store.similarity_search("router", k=2)[0]


def test_store_by_vector_and_relevance_scores(chroma: Chroma) -> None:
    store = CachedVectorStore(chroma)
    vector = HashEmbeddings().embed_query("coffee grind")
    for _ in range(2):
        assert store.similarity_search_by_vector(vector, k=2) == (
            chroma.similarity_search_by_vector(vector, k=2)
        )
        assert store.max_marginal_relevance_search_by_vector(vector, k=2, fetch_k=4) == (
            chroma.max_marginal_relevance_search_by_vector(vector, k=2, fetch_k=4)
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # l2 relevance of HashEmbeddings can be < 0
        all_scores = store.similarity_search_with_relevance_scores("router", k=5)
        assert summary(all_scores) == summary(
            chroma.similarity_search_with_relevance_scores("router", k=5)
        )
        threshold = sorted(score for _, score in all_scores)[-2]
        kept = store.similarity_search_with_relevance_scores(
            "router", k=5, score_threshold=threshold
        )
    assert len(kept) == 2  # the threshold is part of the key, not served from the k=5 entry
    assert store.cache_stats()["hits"] == 2


async def test_store_async_methods(chroma: Chroma) -> None:
    store = CachedVectorStore(chroma)
    vector = HashEmbeddings().embed_query("router")
    for _ in range(2):
        assert await store.asimilarity_search("router", k=2) == chroma.similarity_search(
            "router", k=2
        )
        assert summary(await store.asimilarity_search_with_score("router", k=2)) == summary(
            chroma.similarity_search_with_score("router", k=2)
        )
        assert await store.asimilarity_search_by_vector(vector, k=2) == (
            chroma.similarity_search_by_vector(vector, k=2)
        )
        assert await store.amax_marginal_relevance_search("router", k=2, fetch_k=4) == (
            chroma.max_marginal_relevance_search("router", k=2, fetch_k=4)
        )
        assert await store.amax_marginal_relevance_search_by_vector(vector, k=2, fetch_k=4) == (
            chroma.max_marginal_relevance_search_by_vector(vector, k=2, fetch_k=4)
        )
    assert store.cache_stats()["hits"] == 5
    await store.aadd_texts(["router router"], [{"topic": "a", "n": 5}], ids=["r2"])
    assert store.cache_stats()["entries"] == 0
    assert await store.asimilarity_search("router", k=2) == chroma.similarity_search("router", k=2)
    await store.aadd_documents([Document(id="r3", page_content="router", metadata={"n": 1})])
    await store.adelete(["r2"])
    assert await store.asimilarity_search("router", k=2) == chroma.similarity_search("router", k=2)
    assert await store.aget_by_ids(["r3"]) == chroma.get_by_ids(["r3"])
    assert store.cache_stats()["invalidations"] == 6


async def test_store_async_single_flight(chroma: Chroma) -> None:
    embedding = HashEmbeddings()
    chroma_with_counter = Chroma(
        collection_name=chroma._collection.name,
        embedding_function=embedding,
        client=chroma_client(),
    )
    store = CachedVectorStore(chroma_with_counter)
    results = await asyncio.gather(*(store.asimilarity_search("router", k=3) for _ in range(8)))
    assert embedding.embedded_queries == 1  # the store was searched once
    assert all(r == results[0] for r in results)
    assert len({id(r[0]) for r in results}) == 8  # every caller got its own copy


class GatedEmbeddings(HashEmbeddings):
    """A real embedding whose ``embed_query`` waits while ``gate`` is closed."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()

    def embed_query(self, text: str) -> list[float]:
        self.gate.wait(5)
        return super().embed_query(text)


def test_store_single_flight_across_threads() -> None:
    embedding = GatedEmbeddings()
    chroma = new_chroma(embedding)
    chroma.add_documents(CORPUS)
    store = CachedVectorStore(chroma)
    embedding.gate.clear()
    results: list[list[Document]] = [[] for _ in range(6)]
    threads = run_threads(6, lambda i: results.__setitem__(i, store.similarity_search("router")))
    wait_until(lambda: store.cache_stats()["misses"] == 6)
    embedding.gate.set()
    for thread in threads:
        thread.join()
    assert embedding.embedded_queries == 1
    assert all(r == chroma.similarity_search("router") for r in results)


class SlowChroma(Chroma):
    """Chroma whose ``similarity_search`` can pause after reading, before returning."""

    read_done: threading.Event
    release: threading.Event
    pause = False

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        result = super().similarity_search(query, k=k, **kwargs)
        if self.pause:
            self.read_done.set()
            self.release.wait(5)
        return result


def test_store_read_racing_a_write_does_not_cache_stale_results() -> None:
    chroma = new_chroma(cls=SlowChroma)
    assert isinstance(chroma, SlowChroma)
    chroma.add_documents(CORPUS)
    chroma.read_done, chroma.release, chroma.pause = threading.Event(), threading.Event(), True
    store = CachedVectorStore(chroma)
    early: list[list[Document]] = []
    (reader,) = run_threads(1, lambda _: early.append(store.similarity_search("espresso", k=2)))
    chroma.read_done.wait(5)  # the reader has read the old data and is about to return
    store.add_texts(["espresso espresso espresso"], [{"topic": "b", "n": 7}], ids=["esp"])
    chroma.pause = False
    chroma.release.set()
    reader.join()
    assert "esp" not in [d.id for d in early[0]]  # the overlapping read saw the old data
    fresh = store.similarity_search("espresso", k=2)
    assert fresh[0].id == "esp"
    assert fresh == chroma.similarity_search("espresso", k=2)
    assert store.cache_stats()["hits"] == 0  # the old read's result was never stored


class GatedWriteEmbeddings(HashEmbeddings):
    """A real embedding whose ``embed_documents`` (run inside a write) can be held open."""

    def __init__(self) -> None:
        super().__init__()
        self.writing = threading.Event()
        self.gate = threading.Event()
        self.gate.set()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.writing.set()
        self.gate.wait(5)
        return super().embed_documents(texts)


def test_store_read_during_a_write_is_not_cached_past_it() -> None:
    # A read that runs while the wrapped write is in progress may see the old data, but what it
    # caches must be gone when the write returns: the bump comes after the inner write.
    embedding = GatedWriteEmbeddings()
    chroma = new_chroma(embedding)
    chroma.add_documents(CORPUS)
    store = CachedVectorStore(chroma)
    embedding.gate.clear()
    embedding.writing.clear()
    (writer,) = run_threads(
        1, lambda _: store.add_texts(["espresso espresso"], [{"n": 7}], ids=["esp"])
    )
    embedding.writing.wait(5)  # the write is under way inside the wrapped store
    during = store.similarity_search("espresso", k=2)
    assert "esp" not in [d.id for d in during]
    embedding.gate.set()
    writer.join()
    after = store.similarity_search("espresso", k=2)
    assert after[0].id == "esp"
    assert after == chroma.similarity_search("espresso", k=2)


def test_store_readers_racing_a_writer_never_serve_stale_results() -> None:
    chroma = new_chroma()
    chroma.add_documents(CORPUS)
    store = CachedVectorStore(chroma)
    words = [f"w{i}" for i in range(25)]
    stop = threading.Event()
    mismatches: list[str] = []

    def reader(seed: int) -> None:
        rng = random.Random(seed)  # noqa: S311 - seeded test data, not crypto
        while not stop.is_set():
            store.similarity_search(rng.choice(words), k=2)

    readers = run_threads(2, reader)
    try:
        for i, word in enumerate(words):
            store.add_texts([f"item {word}"], [{"n": i}], ids=[word])
            # the write has returned: no reader may have left a pre-write answer behind
            if summary(store.similarity_search(word, k=2)) != summary(
                chroma.similarity_search(word, k=2)
            ):
                mismatches.append(word)
    finally:
        stop.set()
        for thread in readers:
            thread.join()
    assert mismatches == []


def test_failed_write_still_invalidates(chroma: Chroma) -> None:
    store = CachedVectorStore(chroma)
    store.similarity_search("router", k=2)
    with pytest.raises(ValueError, match="metadata"):
        store.add_texts(["bad"], [{"nested": {"not": "allowed"}}], ids=["bad"])
    assert store.cache_stats()["entries"] == 0
    assert store.cache_stats()["invalidations"] == 1
    assert store.cache.generation == 1


def test_writes_through_the_wrapper_invalidate(chroma: Chroma) -> None:
    store = CachedVectorStore(chroma)
    store.similarity_search("router", k=2)
    assert store.delete(["net-1"]) is None
    assert store.similarity_search("router", k=2) == chroma.similarity_search("router", k=2)
    assert "net-1" not in [d.id for d in store.similarity_search("router", k=5)]
    store.add_documents([Document(id="net-2", page_content="router router", metadata={"n": 2})])
    assert store.similarity_search("router", k=2) == chroma.similarity_search("router", k=2)
    assert store.get_by_ids(["net-2"])[0].page_content == "router router"
    assert (store.cache_stats()["hits"], store.cache_stats()["misses"]) == (0, 4)


def test_behind_the_back_write_detected_by_count() -> None:
    chroma = new_chroma()
    chroma.add_documents(CORPUS)
    store = CachedVectorStore(
        chroma, staleness_check=chroma_staleness_check(chroma), check_interval_seconds=0
    )
    store.similarity_search("router", k=2)
    store.similarity_search("router", k=2)
    chroma.add_texts(["router router router"], ids=["behind"])  # not through the wrapper
    fresh = store.similarity_search("router", k=2)
    assert fresh[0].id == "behind"
    assert fresh == chroma.similarity_search("router", k=2)
    chroma.delete(["behind"])
    assert store.similarity_search("router", k=2) == chroma.similarity_search("router", k=2)


def test_behind_the_back_write_detected_by_generation_metadata() -> None:
    chroma = new_chroma()
    chroma.add_documents(CORPUS)
    store = CachedVectorStore(
        chroma, staleness_check=chroma_staleness_check(chroma), check_interval_seconds=0
    )
    store.similarity_search("router", k=2)
    # another client upserts an existing id (same count) and bumps the generation, as
    # langchain_hybrid.stores.ChromaStore does
    other = chroma_client().get_collection(chroma._collection.name)
    other.upsert(
        ids=["cof-1"],
        documents=["router espresso"],
        embeddings=[HashEmbeddings().embed_query("router espresso")],
        metadatas=[{"topic": "b", "n": 1}],
    )
    other.modify(metadata={GENERATION_KEY: 1})
    assert store.similarity_search("router", k=2) == chroma.similarity_search("router", k=2)
    assert "cof-1" in [d.id for d in store.similarity_search("router", k=2)]


def test_count_neutral_outside_upsert_is_only_caught_by_ttl() -> None:
    # The documented limitation: same count, same generation -> stale until the TTL.
    clock = FakeClock()
    chroma = new_chroma()
    chroma.add_documents(CORPUS)
    store = CachedVectorStore(
        chroma,
        ttl_seconds=30,
        staleness_check=chroma_staleness_check(chroma),
        check_interval_seconds=0,
        clock=clock,
    )
    before = store.similarity_search("router", k=1)
    chroma.add_texts(["router router"], [{"n": 0}], ids=["gar-1"])  # upsert, count unchanged
    assert store.similarity_search("router", k=1) == before  # stale, as documented
    clock.advance(30)
    assert store.similarity_search("router", k=1) == chroma.similarity_search("router", k=1)
    assert store.similarity_search("router", k=1)[0].id == "gar-1"


def test_check_interval_limits_staleness_checks() -> None:
    clock = FakeClock()
    chroma = new_chroma()
    chroma.add_documents(CORPUS)
    store = CachedVectorStore(
        chroma,
        staleness_check=chroma_staleness_check(chroma),
        check_interval_seconds=1.0,
        clock=clock,
    )
    before = store.similarity_search("router", k=1)
    chroma.add_texts(["router router router"], ids=["behind"])
    clock.advance(0.5)
    assert store.similarity_search("router", k=1) == before  # not checked yet
    clock.advance(0.5)
    assert store.similarity_search("router", k=1)[0].id == "behind"


def test_failing_staleness_check_disables_caching_until_it_recovers(chroma: Chroma) -> None:
    healthy = {"ok": True}

    def check() -> object:
        if not healthy["ok"]:
            msg = "cannot reach the server"
            raise ConnectionError(msg)
        return chroma._collection.count()

    store = CachedVectorStore(chroma, staleness_check=check, check_interval_seconds=0)
    store.similarity_search("router", k=2)
    healthy["ok"] = False
    for _ in range(3):
        assert store.similarity_search("router", k=2) == chroma.similarity_search("router", k=2)
    assert store.cache_stats()["hits"] == 0
    healthy["ok"] = True
    # the result computed during the failure is served: any outside write since the last good
    # check would have changed the value compared against
    store.similarity_search("router", k=2)
    store.similarity_search("router", k=2)
    assert store.cache_stats()["hits"] == 2


def test_chroma_staleness_check_rejects_other_stores(chroma: Chroma) -> None:
    with pytest.raises(ConfigError, match=r"langchain_chroma\.Chroma"):
        chroma_staleness_check(CachedVectorStore(chroma))


def test_store_settings_are_validated(chroma: Chroma) -> None:
    with pytest.raises(ConfigError):
        CachedVectorStore(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        CachedVectorStore(chroma, check_interval_seconds=-1)
    with pytest.raises(ConfigError):
        CachedVectorStore(chroma, max_entries=0)


def test_from_texts_builds_and_wraps_the_given_class(collection_name: str) -> None:
    store = CachedVectorStore.from_texts(
        ["router error", "coffee grind"],
        HashEmbeddings(),
        [{"n": 1}, {"n": 2}],
        ids=["a", "b"],
        vectorstore_cls=Chroma,
        client=chroma_client(),
        collection_name=collection_name,
        max_entries=5,
    )
    assert isinstance(store.inner, Chroma)
    assert store.cache.max_entries == 5
    assert [d.id for d in store.similarity_search("router", k=1)] == ["a"]
    with pytest.raises(ConfigError, match="vectorstore_cls"):
        CachedVectorStore.from_texts(["x"], HashEmbeddings())


def test_as_retriever_uses_the_cache(chroma: Chroma) -> None:
    store = CachedVectorStore(chroma)
    retriever = store.as_retriever(search_kwargs={"k": 2})
    assert retriever.invoke("router") == chroma.similarity_search("router", k=2)
    assert retriever.invoke("router") == chroma.similarity_search("router", k=2)
    mmr = store.as_retriever(search_type="mmr", search_kwargs={"k": 2, "fetch_k": 4})
    assert mmr.invoke("coffee") == chroma.max_marginal_relevance_search("coffee", k=2, fetch_k=4)
    assert asyncio.run(mmr.ainvoke("coffee")) == mmr.invoke("coffee")
    assert store.cache_stats()["hits"] == 3
    assert store.embeddings is chroma.embeddings


def test_embedding_stats_are_reported_when_the_store_uses_cached_embeddings() -> None:
    embeddings = CachedEmbeddings(HashEmbeddings())
    chroma = new_chroma(embeddings)
    chroma.add_documents(CORPUS)
    store = CachedVectorStore(chroma)
    store.similarity_search("router", k=1)
    store.similarity_search("router", k=2)  # store miss, query-embedding hit
    stats = store.cache_stats()
    assert stats["misses"] == 2
    assert stats["embeddings"]["hits"] == 1
    assert stats["embeddings"]["misses"] == 1


# ============================================================================ property test
WORDS = ["router", "error", "reset", "firmware", "coffee", "grind", "garden", "soil"]
IDS = [f"d{i}" for i in range(6)]
FILTERS: list[dict[str, Any] | None] = [
    None,
    {"topic": "a"},
    {"n": {"$gte": 2}},
    {"$and": [{"topic": "b"}, {"n": {"$lte": 2}}]},
    {"$or": [{"topic": "a"}, {"n": {"$eq": 3}}]},
]
METHODS = [
    "similarity_search",
    "similarity_search_with_score",
    "similarity_search_by_vector",
    "max_marginal_relevance_search",
    "similarity_search_with_relevance_scores",
]
_texts = st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map(" ".join)
_read = st.tuples(
    st.just("read"),
    st.sampled_from(METHODS),
    _texts,
    st.integers(1, 4),
    st.sampled_from(range(len(FILTERS))),
    st.booleans(),
)
_upsert = st.tuples(
    st.just("upsert"),
    st.lists(
        st.tuples(st.sampled_from(IDS), _texts, st.sampled_from(["a", "b"]), st.integers(1, 3)),
        min_size=1,
        max_size=3,
        unique_by=lambda row: row[0],
    ),
)
_delete = st.tuples(
    st.just("delete"), st.lists(st.sampled_from(IDS), min_size=1, max_size=3, unique=True)
)
OPS = st.lists(st.one_of(_read, _read, _upsert, _delete), min_size=1, max_size=18)
_QUERY_EMBEDDING = HashEmbeddings()


def search(store: VectorStore, method: str, *, text: str, k: int, where: int, reverse: bool) -> Any:
    kwargs: dict[str, Any] = {"k": k, "filter": FILTERS[where]}
    if method == "max_marginal_relevance_search":
        kwargs |= {"fetch_k": 6, "lambda_mult": 0.3}
    if reverse:
        kwargs = dict(reversed(kwargs.items()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # relevance scores outside [0, 1]
        if method == "similarity_search_by_vector":
            return getattr(store, method)(_QUERY_EMBEDDING.embed_query(text), **kwargs)
        return getattr(store, method)(text, **kwargs)


def run_ops(ops: list[tuple[Any, ...]], *, behind_back: bool) -> None:
    chroma = new_chroma()
    chroma.add_documents(CORPUS[:3])
    check = chroma_staleness_check(chroma) if behind_back else None
    store = CachedVectorStore(chroma, staleness_check=check, check_interval_seconds=0)
    writer: VectorStore = chroma if behind_back else store
    generation = 0
    for op in ops:
        if op[0] == "read":
            _, method, text, k, where, reverse = op
            args = {"text": text, "k": k, "where": where}
            first = summary(search(store, method, **args, reverse=reverse))
            second = summary(search(store, method, **args, reverse=not reverse))  # a hit
            expected = summary(search(chroma, method, **args, reverse=reverse))
            assert first == expected, op
            assert second == expected, op
            continue
        if behind_back:  # another writer that bumps the generation, like ChromaStore
            generation += 1
            chroma._collection.modify(metadata={GENERATION_KEY: generation})
        if op[0] == "upsert":
            writer.add_documents(
                [
                    Document(id=i, page_content=t, metadata={"topic": topic, "n": n})
                    for i, t, topic, n in op[1]
                ]
            )
        else:
            writer.delete(op[1])
    assert store.cache_stats()["hits"] >= sum(op[0] == "read" for op in ops)


@settings(max_examples=100, deadline=None, database=None)
@given(ops=OPS)
def test_cached_answers_equal_the_unwrapped_store(ops: list[tuple[Any, ...]]) -> None:
    run_ops(ops, behind_back=False)


@settings(max_examples=100, deadline=None, database=None)
@given(ops=OPS)
def test_cached_answers_stay_right_with_writes_behind_the_wrapper(
    ops: list[tuple[Any, ...]],
) -> None:
    run_ops(ops, behind_back=True)


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(alphabet=st.characters(codec="utf-8")),
)


@settings(max_examples=300, deadline=None)
@given(
    a=st.dictionaries(st.sampled_from(["query", "k", "lambda_mult"]), _SCALARS, max_size=3),
    b=st.dictionaries(st.sampled_from(["query", "k", "lambda_mult"]), _SCALARS, max_size=3),
)
def test_scalar_keys_equal_only_for_equal_typed_arguments(
    a: dict[str, Any], b: dict[str, Any]
) -> None:
    def typed(params: dict[str, Any]) -> list[tuple[str, type, str]]:
        return [(name, type(v), repr(v)) for name, v in params.items()]

    key_a, key_b = _scalar_key("m", a, 1), _scalar_key("m", b, 1)
    assert key_a is not None
    assert key_b is not None
    assert (key_a == key_b) == (typed(a) == typed(b))
    assert key_a != _scalar_key("m", a, 2)  # the generation is part of the key
    assert key_a != cache_key("m", a, 1)  # never equal to a hashed key


def test_scalar_keys_cover_only_scalar_calls() -> None:
    assert _scalar_key("m", {"query": "q", "k": 4, "kwargs": {}}, 0) is not None
    assert _scalar_key("m", {"query": "q", "kwargs": {"filter": {"a": 1}}}, 0) is None
    assert _scalar_key("m", {"embedding": [0.1, 0.2]}, 0) is None
    # 1, 1.0, True and "1" are different arguments
    keys = {_scalar_key("m", {"k": v}, 0) for v in (1, 1.0, True, "1")}
    assert len(keys) == 4
    # a separator inside a query cannot forge another call's key
    assert _scalar_key("m", {"query": "a\x1fk=int:4"}, 0) != _scalar_key(
        "m", {"query": "a", "k": 4}, 0
    )


def test_chroma_staleness_check_follows_a_hybrid_retrievers_writes(tmp_path: Path) -> None:
    """The cached store around a retriever's collection goes by the retriever's change signal."""
    retriever = HybridRetriever.from_documents(
        CORPUS, embedding=HashEmbeddings(), persist_directory=tmp_path, collection_name="kb"
    )
    index = retriever.index
    chroma = Chroma(
        collection_name=retriever.store.config.chroma_collection,
        embedding_function=HashEmbeddings(),
        client=retriever.store.client,
    )
    check = chroma_staleness_check(chroma)
    assert check() == (index.write_generation(), len(CORPUS))
    store = CachedVectorStore(chroma, staleness_check=check, check_interval_seconds=0)
    before = [d.id for d in store.similarity_search("router", k=2)]
    assert before[0] == "net-1"
    assert "cof-1" not in before
    assert store.cache_stats()["hits"] == 0
    assert store.similarity_search("router", k=2)[0].id == "net-1"
    assert store.cache_stats()["hits"] == 1  # cached while nothing changed
    write = index._begin()  # under way: its odd marker is a file beside Chroma's database
    assert check()[0] == write.generation == index.write_generation()
    index._finish(write)
    # a count-neutral rewrite through the retriever: the generation alone tells
    retriever.add_documents([Document(id="cof-1", page_content="router router router")])
    assert check() == (index.write_generation(), len(CORPUS))
    assert store.similarity_search("router", k=2) == chroma.similarity_search("router", k=2)
    assert "cof-1" in [d.id for d in store.similarity_search("router", k=2)]
