"""Caching: keys, the LRU cache, single flight, write generations, and cached embeddings.

The cached vector store's tests are in test_vectorstore_cache.py.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
from enum import Enum
from typing import Any

import numpy as np
import pytest
from helpers import FakeClock, HashEmbeddings, run_threads, wait_until
from langchain_core.documents import Document
from langchain_tests.integration_tests import (
    EmbeddingsIntegrationTests,
)
from langchain_tests.unit_tests import EmbeddingsUnitTests

from langchain_hybrid.cache import CachedEmbeddings, LRUCache, cache_key, estimate_size
from langchain_hybrid.errors import ConfigError


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


@pytest.mark.parametrize("name", ["CachedVectorStore", "chroma_staleness_check"])
def test_names_moved_to_vectorstore_cache_are_forwarded_with_a_warning(name: str) -> None:
    from langchain_hybrid import cache, vectorstore_cache  # noqa: PLC0415

    with pytest.warns(DeprecationWarning, match=rf"import {name} from langchain_hybrid\.vectorst"):
        moved = getattr(cache, name)
    assert moved is getattr(vectorstore_cache, name)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        cache.nothing  # noqa: B018 - the attribute access is the test
