"""Caching: keys, the LRU cache, single flight, write generations, and the cached Chroma store.

Every store test runs against a real in-process Chroma collection; "cached answer is right"
always means "equal to the same call on the unwrapped store, made right after".
"""

from __future__ import annotations

import asyncio
import functools
import math
import random
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from enum import Enum
from typing import Any

import chromadb
import numpy as np
import pytest
from chromadb.config import Settings
from helpers import HashEmbeddings
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_chroma import Chroma
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests import (
    EmbeddingsIntegrationTests,
    VectorStoreIntegrationTests,
)
from langchain_tests.unit_tests import EmbeddingsUnitTests

from langchain_hybrid.cache import (
    CachedEmbeddings,
    CachedVectorStore,
    LRUCache,
    _scalar_key,
    cache_key,
    chroma_staleness_check,
    estimate_size,
)
from langchain_hybrid.errors import ConfigError
from langchain_hybrid.stores import GENERATION_KEY

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


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        time.sleep(0.001)


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


# ============================================================================ cache_key
def test_key_is_sha256_hex() -> None:
    key = cache_key("similarity_search", {"query": "q", "k": 4})
    assert len(key) == 64
    assert set(key) <= set("0123456789abcdef")
    assert key == cache_key("similarity_search", {"k": 4, "query": "q"})


def test_key_ignores_dict_key_order_at_every_depth() -> None:
    a = {"filter": {"$and": [{"topic": "a"}, {"n": {"$gte": 2}}]}, "k": 4, "fetch_k": 20}
    b = {"fetch_k": 20, "k": 4, "filter": {"$and": [{"topic": "a"}, {"n": {"$gte": 2}}]}}
    assert cache_key("mmr", a) == cache_key("mmr", b)
    assert cache_key({"x": {"b": 1, "a": 2}}) == cache_key({"x": {"a": 2, "b": 1}})


class Color(str, Enum):
    RED = "red"


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ((1,), (1.0,)),
        ((1,), (True,)),
        ((1,), ("1",)),
        ((None,), ("None",)),
        ((0.1 + 0.2,), (0.3,)),
        (("a", "b"), (["a", "b"],)),
        (("q", 4), ("q", 5)),
        (("q", {"topic": "a"}), ("q", {"topic": "b"})),
        (("q", {"topic": "a"}), ("q", None)),
        (("q1",), ("q2",)),
        (({"a": 1},), ({"a": [1]},)),
        ((0.0,), (-0.0,)),
    ],
)
def test_key_distinguishes_different_values(
    left: tuple[object, ...], right: tuple[object, ...]
) -> None:
    assert cache_key(*left) != cache_key(*right)


def test_key_equivalent_encodings() -> None:
    vector = [0.1, -0.25, 3.0]
    assert cache_key(vector) == cache_key(tuple(vector))
    assert cache_key(vector) == cache_key(np.array(vector))
    assert cache_key(np.float64(0.5), np.int64(3)) == cache_key(0.5, 3)
    assert cache_key(np.float32(0.1)) == cache_key(float(np.float32(0.1)))
    assert cache_key(Color.RED) == cache_key("red")
    assert cache_key(float("nan")) == cache_key(float("nan"))
    assert cache_key(float("inf")) != cache_key(float("-inf"))


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({"a"}, "set"),
        (object(), "object"),
        (b"bytes", "bytes"),
        (Document(page_content="x"), "Document"),
        ({"filter": {1: "a"}}, "only str keys"),
        ({"filter": [lambda: 1]}, "function"),
    ],
)
def test_key_rejects_non_json_values(value: object, fragment: str) -> None:
    with pytest.raises(TypeError, match=fragment):
        cache_key("q", value)


def test_key_error_names_the_path() -> None:
    with pytest.raises(TypeError, match=r"parts\[1\]\['filter'\]\[0\]"):
        cache_key("q", {"filter": [{1, 2}]})


def test_key_rejects_cycles() -> None:
    cyclic: list[object] = [1]
    cyclic.append(cyclic)
    with pytest.raises(TypeError, match="contains itself"):
        cache_key(cyclic)
    shared = [1, 2]
    assert cache_key([shared, shared]) == cache_key([[1, 2], [1, 2]])  # shared is not cyclic


# ============================================================================ LRUCache basics
@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_entries": 0},
        {"max_entries": True},
        {"max_entries": 1.5},
        {"ttl_seconds": 0},
        {"ttl_seconds": -1.0},
        {"ttl_seconds": math.inf},
        {"max_bytes": 0},
    ],
)
def test_invalid_limits_raise_config_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        LRUCache(**kwargs)


def test_lru_eviction_order() -> None:
    cache: LRUCache[str] = LRUCache(3)
    for key in "abc":
        cache.put(key, key.upper())
    assert cache.get("a") == "A"  # a becomes most recently used
    cache.put("d", "D")  # evicts b, the least recently used
    assert "b" not in cache
    assert [k for k in "abcd" if k in cache] == ["a", "c", "d"]
    cache.put("c", "C2")  # an update refreshes recency and is not an eviction
    cache.put("e", "E")  # evicts a
    assert [k for k in "abcde" if k in cache] == ["c", "d", "e"]
    assert cache.get("c") == "C2"
    assert cache.stats()["evictions"] == 2


def test_ttl_expiry_with_injected_clock() -> None:
    clock = FakeClock()
    cache: LRUCache[str] = LRUCache(10, ttl_seconds=5, clock=clock)
    cache.put("k", "v")
    clock.advance(4.5)
    assert cache.get("k") == "v"
    clock.advance(0.5)
    assert "k" not in cache
    assert cache.get("k") is None
    assert len(cache) == 0
    cache.put("k", "v2")  # a new put restarts the clock
    clock.advance(3)
    assert cache.get("k") == "v2"
    stats = cache.stats()
    assert (stats["hits"], stats["misses"], stats["expirations"], stats["entries"]) == (2, 1, 1, 1)


def test_stats_purge_expired_entries() -> None:
    clock = FakeClock()
    cache: LRUCache[int] = LRUCache(10, ttl_seconds=1, clock=clock, sizeof=lambda _: 10)
    for i in range(3):
        cache.put(str(i), i)
    clock.advance(1)
    stats = cache.stats()
    assert (stats["entries"], stats["bytes"], stats["expirations"]) == (0, 0, 3)


def test_max_bytes_budget() -> None:
    cache: LRUCache[str] = LRUCache(100, max_bytes=10, sizeof=len)
    cache.put("a", "aaaa")
    cache.put("b", "bbbb")
    assert cache.stats()["bytes"] == 8
    cache.put("c", "cc")  # exactly 10: fits
    assert cache.stats()["bytes"] == 10
    cache.put("d", "d")  # 11 > 10: evict a (least recently used)
    assert "a" not in cache
    assert cache.stats()["bytes"] == 7
    assert cache.stats()["evictions"] == 1
    assert cache.put("b", "x" * 11) is False  # larger than the budget: not stored...
    assert "b" not in cache  # ...and the older value is gone too
    assert cache.stats()["bytes"] == 3
    cache.put("e", "e" * 9)  # 12 > 10: evicts c, and d + e fit
    assert [k for k in "abcde" if k in cache] == ["d", "e"]
    assert cache.stats()["bytes"] == 10
    assert cache.stats()["evictions"] == 2


def test_default_size_estimator_counts_contents() -> None:
    small = [Document(page_content="x", metadata={"a": 1})]
    big = [Document(page_content="x" * 10_000, metadata={"a": 1, "b": "y" * 1000})]
    assert estimate_size(big) > estimate_size(small) + 10_000
    cache: LRUCache[list[Document]] = LRUCache(10, max_bytes=5000)
    assert cache.put("small", small) is True
    assert cache.put("big", big) is False
    assert cache.stats()["bytes"] == estimate_size(small)


def test_stats_are_exact() -> None:
    cache: LRUCache[int] = LRUCache(2, sizeof=lambda _: 1)
    assert cache.stats() == {
        "hits": 0,
        "misses": 0,
        "hit_rate": 0.0,
        "evictions": 0,
        "entries": 0,
        "invalidations": 0,
        "bytes": 0,
        "expirations": 0,
        "generation": 0,
    }
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    assert cache.get("zz") is None
    assert cache.get_or_compute("c", lambda: 3) == 3  # miss; evicts b
    assert cache.get_or_compute("c", lambda: 99) == 3  # hit
    assert cache.invalidate(lambda _key, value: value == 1) == 1
    assert cache.stats() == {
        "hits": 2,
        "misses": 2,
        "hit_rate": 0.5,
        "evictions": 1,
        "entries": 1,
        "invalidations": 1,
        "bytes": 1,
        "expirations": 0,
        "generation": 0,
    }
    assert cache.bump() == 1
    stats = cache.stats()
    assert (stats["entries"], stats["invalidations"], stats["generation"]) == (0, 2, 1)


def test_invalidate_all_and_clear() -> None:
    cache: LRUCache[int] = LRUCache(10)
    for i in range(4):
        cache.put(str(i), i)
    assert cache.invalidate(lambda _key, value: value % 2 == 0) == 2
    assert sorted(k for k in "0123" if k in cache) == ["1", "3"]
    assert cache.invalidate() == 2
    assert len(cache) == 0
    cache.put("x", 1)
    cache.get("x")
    cache.clear()  # empties and resets the statistics, keeps the generation
    cache.bump()
    cache.clear()
    stats = cache.stats()
    assert (stats["entries"], stats["hits"], stats["invalidations"], stats["generation"]) == (
        0,
        0,
        0,
        1,
    )


def test_put_with_stale_generation_is_dropped() -> None:
    cache: LRUCache[str] = LRUCache(10)
    generation = cache.generation
    cache.bump()
    assert cache.put("k", "old", generation=generation) is False
    assert "k" not in cache
    assert cache.put("k", "new", generation=cache.generation) is True


# ============================================================================ threads
def test_threads_hammering_get_and_put_keep_the_cache_consistent() -> None:
    cache: LRUCache[str] = LRUCache(32, max_bytes=24, sizeof=lambda _: 1)
    errors: list[str] = []
    gets = [0] * 8

    def worker(seed: int) -> None:
        rng = random.Random(seed)  # noqa: S311 - seeded test data, not crypto
        for _ in range(2500):
            key = str(rng.randrange(100))
            op = rng.random()
            if op < 0.45:
                gets[seed] += 1
                value = cache.get(key)
                if value not in (None, f"v{key}"):
                    errors.append(f"{key} -> {value}")
            elif op < 0.9:
                cache.put(key, f"v{key}")
            elif op < 0.98:
                gets[seed] += 1
                if cache.get_or_compute(key, lambda key=key: f"v{key}") != f"v{key}":
                    errors.append(key)
            else:
                cache.invalidate(lambda k, _v: k.endswith("7"))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    stats = cache.stats()
    assert stats["hits"] + stats["misses"] == sum(gets)
    assert stats["entries"] == len(cache) == stats["bytes"] <= 24
    assert cache._bytes == sum(entry.size for entry in cache._data.values())
    assert cache._inflight == {}


def run_threads(n: int, target: Callable[[int], None]) -> list[threading.Thread]:
    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    return threads


def test_single_flight_computes_once_for_concurrent_misses() -> None:
    cache: LRUCache[object] = LRUCache(10)
    release = threading.Event()
    calls: list[int] = []
    results: list[object] = [None] * 8

    def compute() -> object:
        calls.append(1)
        release.wait(5)
        return object()

    def call(i: int) -> None:
        results[i] = cache.get_or_compute("k", compute)

    threads = run_threads(8, call)
    wait_until(lambda: cache.stats()["misses"] == 8)  # all 8 are inside, 7 waiting
    release.set()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert all(result is results[0] for result in results)
    stats = cache.stats()
    assert (stats["hits"], stats["misses"], stats["entries"]) == (0, 8, 1)
    assert cache.get_or_compute("k", compute) is results[0]
    assert len(calls) == 1


def test_single_flight_exception_reaches_every_waiter_and_is_not_cached() -> None:
    cache: LRUCache[str] = LRUCache(10)
    release = threading.Event()
    calls: list[int] = []
    errors: list[BaseException] = []

    def failing() -> str:
        calls.append(1)
        release.wait(5)
        msg = "backend down"
        raise RuntimeError(msg)

    def call(_: int) -> None:
        try:
            cache.get_or_compute("k", failing)
        except RuntimeError as e:
            errors.append(e)

    threads = run_threads(6, call)
    wait_until(lambda: cache.stats()["misses"] == 6)
    release.set()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert len(errors) == 6
    assert all(str(e) == "backend down" for e in errors)
    assert "k" not in cache
    assert cache._inflight == {}
    assert cache.get_or_compute("k", lambda: "recovered") == "recovered"


def test_computation_started_before_bump_is_never_served_after_it() -> None:
    cache: LRUCache[str] = LRUCache(10)
    data = {"value": "old"}
    read_done = threading.Event()
    release = threading.Event()
    results: dict[str, str] = {}

    def slow_read() -> str:
        snapshot = data["value"]  # reads the data, then is slow to finish
        read_done.set()
        release.wait(5)
        return snapshot

    def reader(_: int) -> None:
        results["early"] = cache.get_or_compute("k", slow_read)

    (thread,) = run_threads(1, reader)
    read_done.wait(5)
    data["value"] = "new"  # the write...
    cache.bump()  # ...then the bump, before the write "returns"
    # A lookup that starts after the bump does not join the old computation, nor wait for it.
    assert cache.get_or_compute("k", lambda: data["value"]) == "new"
    release.set()
    thread.join()
    assert results["early"] == "old"  # the overlapping read may see the old value...
    assert cache.get("k") == "new"  # ...but it never replaces the newer cached one
    cache.invalidate()
    assert cache.get_or_compute("k", lambda: data["value"]) == "new"


def test_computation_finishing_after_bump_is_not_stored() -> None:
    cache: LRUCache[str] = LRUCache(10)
    started = threading.Event()
    release = threading.Event()

    def slow() -> str:
        started.set()
        release.wait(5)
        return "stale"

    (thread,) = run_threads(1, lambda _: cache.get_or_compute("k", slow))
    started.wait(5)
    cache.bump()
    release.set()
    thread.join()
    assert "k" not in cache
    assert cache.stats()["entries"] == 0


def test_generation_argument_guards_against_a_stale_caller() -> None:
    cache: LRUCache[str] = LRUCache(10)
    generation = cache.generation
    key = cache_key("search", "q", generation)
    cache.bump()  # a write happened after the caller read the generation
    assert cache.get_or_compute(key, lambda: "value", generation=generation) == "value"
    assert key not in cache  # computed for the caller, not stored
    assert cache.get_or_compute(key, lambda: "value", generation=cache.generation) == "value"
    assert key in cache


# ============================================================================ asyncio
async def test_async_single_flight_with_gather() -> None:
    cache: LRUCache[list[int]] = LRUCache(10)
    calls = 0

    async def compute() -> list[int]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.02)
        return [calls]

    results = await asyncio.gather(*(cache.aget_or_compute("k", compute) for _ in range(10)))
    assert calls == 1
    assert all(result is results[0] for result in results)
    assert results[0] == [1]
    stats = cache.stats()
    assert (stats["misses"], stats["hits"], stats["entries"]) == (10, 0, 1)
    assert await cache.aget_or_compute("k", compute) == [1]
    assert cache.stats()["hits"] == 1


async def test_async_exception_reaches_all_and_is_not_cached() -> None:
    cache: LRUCache[str] = LRUCache(10)
    calls = 0

    async def failing() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        msg = "boom"
        raise ValueError(msg)

    results = await asyncio.gather(
        *(cache.aget_or_compute("k", failing) for _ in range(5)), return_exceptions=True
    )
    assert calls == 1
    assert all(isinstance(r, ValueError) for r in results)
    assert "k" not in cache

    async def ok() -> str:
        return "fine"

    assert await cache.aget_or_compute("k", ok) == "fine"


async def test_cancelled_owner_hands_the_computation_to_a_waiter() -> None:
    cache: LRUCache[int] = LRUCache(10)
    calls = 0
    started = asyncio.Event()

    async def slow() -> int:
        nonlocal calls
        calls += 1
        started.set()
        await asyncio.sleep(0.05)
        return calls

    owner = asyncio.create_task(cache.aget_or_compute("k", slow))
    await started.wait()
    waiter = asyncio.create_task(cache.aget_or_compute("k", slow))
    while cache.stats()["misses"] < 2:  # noqa: ASYNC110 - polls a counter, no event exists
        await asyncio.sleep(0)
    owner.cancel()
    assert await waiter == 2  # the waiter retried and computed
    with pytest.raises(asyncio.CancelledError):
        await owner
    assert cache.get("k") == 2


async def test_cancelled_waiter_does_not_cancel_the_computation() -> None:
    cache: LRUCache[str] = LRUCache(10)

    async def slow() -> str:
        await asyncio.sleep(0.05)
        return "done"

    owner = asyncio.create_task(cache.aget_or_compute("k", slow))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(cache.aget_or_compute("k", slow))
    while cache.stats()["misses"] < 2:  # noqa: ASYNC110 - polls a counter, no event exists
        await asyncio.sleep(0)
    waiter.cancel()
    assert await owner == "done"
    assert cache.get("k") == "done"
    with pytest.raises(asyncio.CancelledError):
        await waiter


def test_async_single_flight_across_event_loops_and_threads() -> None:
    cache: LRUCache[str] = LRUCache(10)
    calls: list[int] = []
    release = threading.Event()
    results: list[str] = ["", ""]

    async def compute() -> str:
        calls.append(1)
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 5)
        return "shared"

    def in_own_loop(i: int) -> None:
        results[i] = asyncio.run(cache.aget_or_compute("k", compute))

    threads = run_threads(2, in_own_loop)
    wait_until(lambda: cache.stats()["misses"] == 2)
    release.set()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert results == ["shared", "shared"]


def test_async_waiter_joins_a_computation_running_in_a_thread() -> None:
    cache: LRUCache[str] = LRUCache(10)
    release = threading.Event()
    calls: list[int] = []

    def compute() -> str:
        calls.append(1)
        release.wait(5)
        return "from-thread"

    (thread,) = run_threads(1, lambda _: cache.get_or_compute("k", compute))
    wait_until(lambda: cache.stats()["misses"] == 1)

    async def other() -> str:
        return "recomputed"

    async def main() -> str:
        task = asyncio.create_task(cache.aget_or_compute("k", other))
        while cache.stats()["misses"] < 2:  # noqa: ASYNC110 - polls a counter
            await asyncio.sleep(0)
        release.set()
        return await task

    assert asyncio.run(main()) == "from-thread"
    thread.join()
    assert len(calls) == 1


def test_sync_caller_never_blocks_on_a_coroutine_computation() -> None:
    # Blocking a thread on a coroutine's flight could stall the loop that runs it: the sync
    # caller computes on its own instead.
    cache: LRUCache[str] = LRUCache(10)

    async def main() -> tuple[str, str]:
        started = asyncio.Event()

        async def slow() -> str:
            started.set()
            await asyncio.sleep(0.05)
            return "async"

        task = asyncio.create_task(cache.aget_or_compute("k", slow))
        await started.wait()
        sync_value = cache.get_or_compute("k", lambda: "sync")  # same thread as the loop
        return sync_value, await task

    assert asyncio.run(main()) == ("sync", "async")


# ============================================================================ CachedEmbeddings
def test_cached_embeddings_hits_and_misses() -> None:
    inner = HashEmbeddings()
    embeddings = CachedEmbeddings(inner, max_entries=2)
    first = embeddings.embed_query("reset the router")
    assert (
        embeddings.embed_query("reset the router") == first == inner.embed_query("reset the router")
    )
    assert inner.embedded_queries == 2  # one through the cache, one direct
    embeddings.embed_query("coffee")
    embeddings.embed_query("garden")  # evicts "reset the router"
    embeddings.embed_query("reset the router")
    stats = embeddings.cache_stats()
    assert (stats["hits"], stats["misses"], stats["evictions"], stats["entries"]) == (1, 4, 2, 2)
    assert inner.embedded_queries == 5


def test_cached_embeddings_documents_pass_through_and_vectors_are_copies() -> None:
    inner = HashEmbeddings()
    embeddings = CachedEmbeddings(inner)
    texts = ["a b", "c d"]
    assert embeddings.embed_documents(texts) == inner.embed_documents(texts)
    embeddings.embed_documents(texts)
    assert inner.embedded_documents == 6  # documents are never cached here
    vector = embeddings.embed_query("q")
    vector[0] = 123.0
    assert embeddings.embed_query("q")[0] != 123.0


async def test_cached_embeddings_async() -> None:
    inner = HashEmbeddings()
    embeddings = CachedEmbeddings(inner)
    vectors = await asyncio.gather(*(embeddings.aembed_query("router") for _ in range(5)))
    assert inner.embedded_queries == 1  # one for the five concurrent calls
    assert all(v == inner.embed_query("router") for v in vectors[:1])
    assert all(v == vectors[0] and v is not vectors[0] for v in vectors[1:])
    assert await embeddings.aembed_documents(["x"]) == inner.embed_documents(["x"])
    assert embeddings.embed_query("router") == vectors[0]  # sync shares the async entry
    assert embeddings.cache_stats()["hits"] == 1


def test_cached_embeddings_rejects_non_embeddings() -> None:
    with pytest.raises(ConfigError):
        CachedEmbeddings(object())  # type: ignore[arg-type]


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


# ------------------------------------------------------------ LangChain's standard suites
class _CachedEmbeddingsUnderTest:
    """What langchain-tests' embeddings suites build: the cache around hashing embeddings."""

    @property
    def embeddings_class(self) -> type[CachedEmbeddings]:
        return CachedEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, object]:
        return {"inner": HashEmbeddings(), "max_entries": 100}


class TestCachedEmbeddingsStandardUnit(_CachedEmbeddingsUnderTest, EmbeddingsUnitTests):
    """langchain-tests' unit suite for the query-embedding cache."""


class TestCachedEmbeddingsStandardIntegration(
    _CachedEmbeddingsUnderTest, EmbeddingsIntegrationTests
):
    """langchain-tests' integration suite: sync and async, query and documents, cached."""
