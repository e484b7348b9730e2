"""Result caching with correct invalidation: collision-proof keys, an LRU cache, cached embeddings.

* :func:`cache_key` turns call arguments into a collision-proof key: the SHA-256 of a canonical
  JSON encoding (sorted keys, no whitespace, shortest round-trip float ``repr``), never
  ``str(dict)``.
* :class:`LRUCache` is a thread-safe LRU map with an entry limit, an optional TTL and an
  optional byte budget, plus *single flight*: concurrent identical misses, from threads or
  coroutines, run the computation once.
* :class:`DocumentTemplate`: a cached ``Document`` as its fields, built afresh on every hit.
* :class:`CachedEmbeddings` wraps any LangChain ``Embeddings`` and caches query vectors.

The retriever's result cache is an :class:`LRUCache`; so is
:class:`~langchain_hybrid.vectorstore_cache.CachedVectorStore`'s (in its own module).

Write generations and the read/write race
-----------------------------------------
The cache holds a *generation* counter. :meth:`LRUCache.bump` increments it and, under the same
lock, drops every stored entry and forgets every computation in flight (eager, not lazy: after
``bump()`` returns, nothing computed before it can be served or stored). A computation records
the generation current when it *starts*; when it finishes, its value is stored only if the
generation is still the same, checked and stored under one lock. So a read that ran while a
write happened can return its value to its own caller (the two calls overlapped) but can never
leave that value in the cache for later callers.

A writer bumps *after* the write has run (in a ``finally``, so also when the write raises,
since it may have applied in part) and before the write call returns. Bumping only before the
write would be wrong: a read starting between the bump and the write would cache pre-write
results under the new generation. The generation is also part of every key, so an entry from an
older generation could not be found even if it survived.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import logging
import math
import sys
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Generic, Literal, NamedTuple, TypeAlias, TypeVar, cast

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from langchain_hybrid.errors import ConfigError

logger = logging.getLogger(__name__)

V = TypeVar("V")
R = TypeVar("R")

CACHE_EVENT = "langchain_hybrid.cache"
"""Custom callback event sent by every cached query: ``{"hit": bool}`` for the parent run."""
_KEY_VERSION = "langchain-hybrid/cache-key/1"
DEFAULT_MAX_ENTRIES = 10_000
"""``max_entries`` of a cache by default (``LRUCache``, ``CachedVectorStore``)."""
JSONValue: TypeAlias = bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"] | None


# ---------------------------------------------------------------------------------- keys
def cache_key(*parts: object) -> str:
    """Return a collision-proof cache key for ``parts``.

    The key is the SHA-256 hex digest of a canonical JSON encoding of the parts: dict keys
    sorted (so key order does not matter), tuples encoded as lists, floats as their shortest
    round-trip ``repr``, no whitespace. Distinct values give distinct encodings: ``1``, ``1.0``,
    ``True`` and ``"1"`` differ, and ``cache_key("a", "b") != cache_key(["a", "b"])``. NumPy
    arrays and scalars are accepted as the equivalent lists and numbers (so a vector as a list
    of floats or as an array gives the same key).

    Args:
        *parts: JSON-able values: ``None``, ``bool``, ``int``, ``float``, ``str``, lists and
            tuples of these, dicts with ``str`` keys, NumPy arrays and scalars.

    Returns:
        64 lowercase hex characters.

    Raises:
        TypeError: a part (or something nested in it) is not JSON-able, a dict key is not a
            ``str``, or a container contains itself. The message names the offending path.
    """
    canonical = _canonical(list(parts), "parts", set())
    payload = json.dumps(
        [_KEY_VERSION, canonical],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
        allow_nan=True,
    )
    return hashlib.sha256(payload.encode("ascii")).hexdigest()


def _scalar(obj: object) -> tuple[bool, JSONValue]:
    """Return ``(True, value)`` for a None, bool, int, float or str, else ``(False, None)``."""
    if obj is None or type(obj) in (bool, int, float, str):
        return True, cast("JSONValue", obj)
    for kind in (bool, int, float):  # bool first: it is an int subclass
        if isinstance(obj, kind):
            return True, kind(obj)
    if isinstance(obj, str):
        return True, str.__str__(obj)  # an exact str copy, whatever the subclass's __str__ says
    return False, None


def _canonical(obj: object, path: str, active: set[int]) -> JSONValue:
    """Convert ``obj`` to plain JSON types, rejecting anything without one obvious encoding."""
    is_scalar, scalar = _scalar(obj)
    if is_scalar:
        return scalar
    if isinstance(obj, np.ndarray | np.generic):
        return _canonical(obj.tolist(), path, active)
    if isinstance(obj, Mapping | list | tuple):
        if id(obj) in active:
            msg = f"cache_key(): {path} contains itself; a cyclic value cannot be encoded"
            raise TypeError(msg)
        active.add(id(obj))
        try:
            if isinstance(obj, Mapping):
                out: dict[str, JSONValue] = {}
                for key, value in obj.items():
                    if not isinstance(key, str):
                        msg = (
                            f"cache_key(): dict key {key!r} at {path} is a "
                            f"{type(key).__name__}; only str keys are allowed (JSON would turn "
                            "1 and '1' into the same key)"
                        )
                        raise TypeError(msg)
                    out[str.__str__(key)] = _canonical(value, f"{path}[{key!r}]", active)
                return out
            return [_canonical(v, f"{path}[{i}]", active) for i, v in enumerate(obj)]
        finally:
            active.discard(id(obj))
    msg = (
        f"cache_key(): cannot encode {type(obj).__name__} at {path}; allowed: None, bool, int, "
        "float, str, lists/tuples, dicts with str keys, NumPy arrays and scalars"
    )
    raise TypeError(msg)


# ---------------------------------------------------------------------------------- sizes
def estimate_size(obj: object) -> int:
    """Estimate the memory held by ``obj`` in bytes (the default ``sizeof`` of the caches).

    Sums ``sys.getsizeof`` over the object and, recursively, the items of lists, tuples, sets
    and dicts and the fields of ``Document`` objects, counting each object once. It is an
    estimate (shared small ints and interned strings count once), good for a budget.

    Args:
        obj: the value to measure.

    Returns:
        The estimated size in bytes.
    """
    seen: set[int] = set()
    stack: list[object] = [obj]
    total = 0
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        if isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
        elif isinstance(item, Document):
            stack.extend((item.page_content, item.metadata, item.id))
    return total


# ---------------------------------------------------------------------------------- LRU cache
@dataclass(slots=True)
class _Entry(Generic[V]):
    value: V
    size: int
    expires_at: float | None


@dataclass(slots=True)
class _Flight(Generic[V]):
    """A computation in progress; later identical misses wait on ``future``."""

    future: Future[V]
    generation: int
    owner_thread: int
    is_async: bool


class _AbandonedError(Exception):
    """Set on a flight whose owner was cancelled or interrupted: waiters retry."""


_Role = Literal["hit", "wait", "own", "bypass"]


def _must_not_wait(flight: _Flight[Any], me: int, *, is_async: bool) -> bool:
    """Whether a lookup must compute on its own rather than wait for ``flight``.

    A thread never blocks on a coroutine's flight (that coroutine may need the thread's own
    loop, or executor threads the waiters hold), nor on a flight it owns itself. A coroutine
    may wait for anything but a sync flight of its own thread (tasks of one loop share a
    thread, and wait for each other without blocking it).
    """
    own_thread = flight.owner_thread == me
    if is_async:
        return own_thread and not flight.is_async
    return flight.is_async or own_thread


class LRUCache(Generic[V]):
    """A thread-safe LRU cache with TTL, a byte budget, single flight and write generations.

    ``get``/``put`` are O(1) (an ``OrderedDict`` under a ``threading.Lock``). Values are stored
    as given: store immutable values, or copy on the way in and out (the wrappers below do).

    Setup:
        ```bash
        pip install langchain-hybrid
        ```

    Key init args:
        max_entries: the most entries kept; the least recently used is evicted first.
        ttl_seconds: entries older than this are misses and are removed (``None``: no TTL).
        max_bytes: a budget for the summed ``sizeof`` of the values (``None``: no budget). A
            value larger than the whole budget is not stored.
        sizeof: estimates a value's size in bytes (default :func:`estimate_size`).
        clock: a monotonic clock in seconds (default ``time.monotonic``); inject one in tests.

    Instantiate:
        ```python
        from langchain_hybrid.cache import LRUCache, cache_key

        cache: LRUCache[list[str]] = LRUCache(max_entries=1000, ttl_seconds=300)
        ```

    Usage:
        ```python
        key = cache_key("search", {"q": "router", "k": 4})
        ids = cache.get_or_compute(key, lambda: expensive_search("router", 4))
        ids = await cache.aget_or_compute(key, lambda: aexpensive_search("router", 4))
        cache.bump()  # after a write: drop everything, fence computations in flight
        cache.stats()  # {"hits": 1, "misses": 1, "hit_rate": 0.5, ...}
        ```

    Single flight: concurrent :meth:`get_or_compute` / :meth:`aget_or_compute` calls for a key
    that is missing run ``fn`` once; the others wait for it and get the same value, or the same
    exception (nothing is cached then). A coroutine waits without blocking its loop, and can wait
    for a computation running in another thread or loop. A *sync* caller never waits for a
    computation run by a coroutine (it computes on its own instead), since blocking the thread
    could stall the event loop that computation needs. ``fn`` must not look up its own key.

    Generations: see the module docstring. ``bump()`` is eager: it drops all entries at once.
    """

    def __init__(
        self,
        max_entries: int = 1024,
        *,
        ttl_seconds: float | None = None,
        max_bytes: int | None = None,
        sizeof: Callable[[V], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create an empty cache; raises ``ConfigError`` for a limit that is not positive."""
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            msg = f"max_entries must be an int >= 1, got {max_entries!r}"
            raise ConfigError(msg)
        if ttl_seconds is not None and (
            isinstance(ttl_seconds, bool)
            or not isinstance(ttl_seconds, int | float)
            or not math.isfinite(ttl_seconds)
            or ttl_seconds <= 0
        ):
            msg = f"ttl_seconds must be a positive number or None, got {ttl_seconds!r}"
            raise ConfigError(msg)
        if max_bytes is not None and (
            isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1
        ):
            msg = f"max_bytes must be an int >= 1 or None, got {max_bytes!r}"
            raise ConfigError(msg)
        self._max_entries = max_entries
        self._ttl = float(ttl_seconds) if ttl_seconds is not None else None
        self._max_bytes = max_bytes
        self._sizeof: Callable[[V], int] = sizeof if sizeof is not None else estimate_size
        self._clock = clock
        self._lock = threading.Lock()
        self._data: OrderedDict[str, _Entry[V]] = OrderedDict()
        self._inflight: dict[str, _Flight[V]] = {}
        self._generation = 0
        self._bytes = 0
        self._reset_counters()

    def _reset_counters(self) -> None:
        self._hits = 0
        self._misses = 0
        self._evictions = 0
        self._expirations = 0
        self._invalidations = 0

    # ------------------------------------------------------------------ properties
    @property
    def max_entries(self) -> int:
        """The most entries kept."""
        return self._max_entries

    @property
    def ttl_seconds(self) -> float | None:
        """The time to live of an entry, or ``None``."""
        return self._ttl

    @property
    def max_bytes(self) -> int | None:
        """The byte budget, or ``None``."""
        return self._max_bytes

    @property
    def generation(self) -> int:
        """The current write generation (starts at 0; :meth:`bump` adds one)."""
        with self._lock:
            return self._generation

    def __len__(self) -> int:
        """Number of stored entries (expired ones count until they are looked up)."""
        with self._lock:
            return len(self._data)

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` holds an unexpired value; touches neither statistics nor LRU order."""
        if not isinstance(key, str):
            return False
        with self._lock:
            entry = self._data.get(key)
            return entry is not None and not self._expired(entry, self._clock())

    # ------------------------------------------------------------------ internals
    def _expired(self, entry: _Entry[V], now: float) -> bool:
        return entry.expires_at is not None and now >= entry.expires_at

    def _remove_locked(self, key: str) -> _Entry[V] | None:
        entry = self._data.pop(key, None)
        if entry is not None:
            self._bytes -= entry.size
        return entry

    def _fresh_locked(self, key: str) -> _Entry[V] | None:
        """The live entry for ``key`` (moved to the MRU end), removing it if expired."""
        entry = self._data.get(key)
        if entry is None:
            return None
        if self._expired(entry, self._clock()):
            self._remove_locked(key)
            self._expirations += 1
            return None
        self._data.move_to_end(key)
        return entry

    def _insert_locked(self, key: str, value: V, size: int) -> bool:
        self._remove_locked(key)
        if self._max_bytes is not None and size > self._max_bytes:
            logger.debug("not caching %s: %d bytes exceed max_bytes=%d", key, size, self._max_bytes)
            return False
        expires_at = self._clock() + self._ttl if self._ttl is not None else None
        self._data[key] = _Entry(value, size, expires_at)
        self._bytes += size
        while len(self._data) > self._max_entries or (
            self._max_bytes is not None and self._bytes > self._max_bytes
        ):
            _, evicted = self._data.popitem(last=False)
            self._bytes -= evicted.size
            self._evictions += 1
        return True

    # ------------------------------------------------------------------ get / put
    def get(self, key: str, default: V | None = None) -> V | None:
        """Return the value for ``key`` (a hit) or ``default`` (a miss; expired counts as one).

        Args:
            key: the key.
            default: returned on a miss.

        Returns:
            The cached value or ``default``.
        """
        with self._lock:
            entry = self._fresh_locked(key)
            if entry is None:
                self._misses += 1
                return default
            self._hits += 1
            return entry.value

    def put(self, key: str, value: V, *, generation: int | None = None) -> bool:
        """Store ``value`` under ``key``, evicting least recently used entries past the limits.

        Args:
            key: the key.
            value: the value (stored as is, not copied).
            generation: if given and no longer current (a :meth:`bump` happened since the
                caller read it), the value is not stored.

        Returns:
            Whether the value was stored (``False``: stale generation, or larger than
            ``max_bytes``; any older value under ``key`` is removed in the latter case).
        """
        size = self._sizeof(value)
        with self._lock:
            if generation is not None and generation != self._generation:
                logger.debug("not caching %s: generation %d is stale", key, generation)
                return False
            return self._insert_locked(key, value, size)

    # ------------------------------------------------------------------ single flight
    def _begin(
        self, key: str, generation: int | None, *, is_async: bool, count: bool
    ) -> tuple[_Role, Any]:
        """Decide, under the lock, how one lookup proceeds.

        Returns ``("hit", value)``, ``("wait", flight)``, ``("own", flight)`` or
        ``("bypass", start_generation_or_None)`` (``None``: compute but do not store).
        """
        me = threading.get_ident()
        with self._lock:
            if generation is not None and generation != self._generation:
                if count:
                    self._misses += 1
                return "bypass", None
            entry = self._fresh_locked(key)
            if entry is not None:
                if count:
                    self._hits += 1
                return "hit", entry.value
            if count:
                self._misses += 1
            flight = self._inflight.get(key)
            if flight is not None:
                if _must_not_wait(flight, me, is_async=is_async):
                    return "bypass", self._generation
                return "wait", flight
            future: Future[V] = Future()
            future.set_running_or_notify_cancel()  # a cancelled waiter can't cancel the flight
            flight = _Flight(future, self._generation, me, is_async)
            self._inflight[key] = flight
            return "own", flight

    def _complete(
        self,
        key: str,
        flight: _Flight[V] | None,
        start: int | None,
        value: V,
        keep: Callable[[V], bool] | None = None,
    ) -> None:
        """Store ``value`` if the generation is unchanged, end the flight, wake its waiters."""
        size: int | None = None
        if start is not None and keep is not None and not keep(value):
            start = None
        if start is not None:
            try:
                size = self._sizeof(value)
            except Exception:
                logger.warning("sizeof failed for %s; value not cached", key, exc_info=True)
        with self._lock:
            if flight is not None and self._inflight.get(key) is flight:
                del self._inflight[key]
            if start is not None and size is not None:
                if start == self._generation:
                    self._insert_locked(key, value, size)
                else:
                    logger.debug(
                        "discarding %s computed at generation %d (now %d)",
                        key,
                        start,
                        self._generation,
                    )
        if flight is not None:
            flight.future.set_result(value)

    def _fail(self, key: str, flight: _Flight[V] | None, error: BaseException) -> None:
        """End a failed flight: waiters get ``error`` (or retry if the owner was cancelled)."""
        if flight is None:
            return
        with self._lock:
            if self._inflight.get(key) is flight:
                del self._inflight[key]
        if isinstance(error, Exception):
            flight.future.set_exception(error)
        else:  # CancelledError, KeyboardInterrupt, SystemExit: not the waiters' business
            flight.future.set_exception(_AbandonedError())

    def get_or_compute(
        self,
        key: str,
        fn: Callable[[], V],
        *,
        generation: int | None = None,
        keep: Callable[[V], bool] | None = None,
    ) -> V:
        """Return the cached value for ``key``, or compute it once with ``fn`` and cache it.

        Concurrent calls for the same missing key (from other threads) wait for the first
        one's ``fn`` and get its value or its exception; a failed computation is not cached.
        Each call that finds no stored value counts as one miss, including those that wait.

        Args:
            key: the key.
            fn: computes the value.
            generation: the generation the caller expects (e.g. the one it put into ``key``).
                If it is no longer current, ``fn`` runs and its value is returned but not
                stored.
            keep: if given, a computed value is stored only if ``keep(value)`` is true (the
                callers waiting for it still get it).

        Returns:
            The value.
        """
        return self.fetch(key, fn, generation=generation, keep=keep)[0]

    def fetch(
        self,
        key: str,
        fn: Callable[[], V],
        *,
        generation: int | None = None,
        keep: Callable[[V], bool] | None = None,
    ) -> tuple[V, bool]:
        """:meth:`get_or_compute`, also telling whether the value was a hit (a stored value).

        A call that waited for another caller's computation is a miss, as in :meth:`stats`.
        """
        if generation is None:  # the hit path, without the single-flight bookkeeping
            with self._lock:
                entry = self._data.get(key)
                if entry is not None and (
                    entry.expires_at is None or self._clock() < entry.expires_at
                ):
                    self._data.move_to_end(key)
                    self._hits += 1
                    return entry.value, True
        count = True
        while True:
            role, payload = self._begin(key, generation, is_async=False, count=count)
            count = False
            if role == "hit":
                return cast("V", payload), True
            if role == "wait":
                try:
                    return cast("_Flight[V]", payload).future.result(), False
                except _AbandonedError:
                    continue
            flight = cast("_Flight[V]", payload) if role == "own" else None
            start = flight.generation if flight is not None else cast("int | None", payload)
            try:
                value = fn()
            except BaseException as e:
                self._fail(key, flight, e)
                raise
            self._complete(key, flight, start, value, keep)
            return value, False

    async def aget_or_compute(
        self,
        key: str,
        coro_fn: Callable[[], Awaitable[V]],
        *,
        generation: int | None = None,
        keep: Callable[[V], bool] | None = None,
    ) -> V:
        """Async :meth:`get_or_compute`: ``coro_fn()`` is awaited once per missing key.

        Identical misses in the same loop share one computation; so do misses from other loops
        and threads (the shared state is a ``concurrent.futures.Future``, awaited through
        ``asyncio.wrap_future``, so waiting never blocks a loop). If the computing task is
        cancelled, a waiting task takes over the computation.

        Args:
            key: the key.
            coro_fn: returns an awaitable computing the value.
            generation: as in :meth:`get_or_compute`.
            keep: as in :meth:`get_or_compute`.

        Returns:
            The value.
        """
        return (await self.afetch(key, coro_fn, generation=generation, keep=keep))[0]

    async def afetch(
        self,
        key: str,
        coro_fn: Callable[[], Awaitable[V]],
        *,
        generation: int | None = None,
        keep: Callable[[V], bool] | None = None,
    ) -> tuple[V, bool]:
        """Async :meth:`fetch`."""
        count = True
        while True:
            role, payload = self._begin(key, generation, is_async=True, count=count)
            count = False
            if role == "hit":
                return cast("V", payload), True
            if role == "wait":
                try:
                    return await asyncio.wrap_future(cast("_Flight[V]", payload).future), False
                except _AbandonedError:
                    continue
            flight = cast("_Flight[V]", payload) if role == "own" else None
            start = flight.generation if flight is not None else cast("int | None", payload)
            try:
                value = await coro_fn()
            except BaseException as e:
                self._fail(key, flight, e)
                raise
            self._complete(key, flight, start, value, keep)
            return value, False

    # ------------------------------------------------------------------ invalidation
    def bump(self) -> int:
        """Start a new write generation: drop every entry and fence computations in flight.

        Call it after each write to the underlying data (before the write call returns).
        Computations that started before the bump still return their value to their callers,
        but never store it; lookups that start after the bump never join them.

        Returns:
            The new generation.
        """
        with self._lock:
            self._generation += 1
            self._invalidations += len(self._data)
            self._data.clear()
            self._bytes = 0
            self._inflight.clear()
            generation = self._generation
        logger.debug("cache generation bumped to %d", generation)
        return generation

    def invalidate(self, predicate: Callable[[str, V], bool] | None = None) -> int:
        """Remove all entries, or those for which ``predicate(key, value)`` is true.

        Unlike :meth:`bump`, this does not fence computations already in flight (they may
        still store their value); after a data change, use :meth:`bump`. ``predicate`` runs
        under the cache lock and must not call back into the cache.

        Args:
            predicate: selects the entries to remove; ``None`` removes all.

        Returns:
            The number of entries removed (added to the ``invalidations`` statistic).
        """
        with self._lock:
            if predicate is None:
                keys = list(self._data)
            else:
                keys = [k for k, entry in self._data.items() if predicate(k, entry.value)]
            for key in keys:
                self._remove_locked(key)
            self._invalidations += len(keys)
        if keys:
            logger.debug("invalidated %d cache entries", len(keys))
        return len(keys)

    def clear(self) -> None:
        """Empty the cache and reset its statistics (like ``functools.lru_cache``).

        The generation is kept (it only ever grows) and computations in flight are not fenced.
        """
        with self._lock:
            self._data.clear()
            self._bytes = 0
            self._reset_counters()

    def purge_expired(self) -> int:
        """Remove expired entries now (they are otherwise removed when looked up).

        Returns:
            The number of entries removed.
        """
        with self._lock:
            return self._purge_expired_locked()

    def _purge_expired_locked(self) -> int:
        if self._ttl is None:
            return 0
        now = self._clock()
        expired = [k for k, entry in self._data.items() if self._expired(entry, now)]
        for key in expired:
            self._remove_locked(key)
        self._expirations += len(expired)
        return len(expired)

    def stats(self) -> dict[str, int | float]:
        """Return the statistics (expired entries are purged first, so ``entries`` is exact).

        Returns:
            ``hits``, ``misses``, ``hit_rate`` (hits / lookups, 0.0 before any lookup),
            ``evictions`` (entries dropped for ``max_entries`` / ``max_bytes``), ``entries``,
            ``invalidations`` (entries removed by :meth:`invalidate` / :meth:`bump`),
            ``bytes`` (summed ``sizeof`` of the entries), ``expirations`` (entries dropped by
            the TTL) and ``generation``.
        """
        with self._lock:
            self._purge_expired_locked()
            lookups = self._hits + self._misses
            return {
                "hits": self._hits,
                "misses": self._misses,
                "hit_rate": self._hits / lookups if lookups else 0.0,
                "evictions": self._evictions,
                "entries": len(self._data),
                "invalidations": self._invalidations,
                "bytes": self._bytes,
                "expirations": self._expirations,
                "generation": self._generation,
            }


# ---------------------------------------------------------------------------------- copies
class DocumentTemplate(NamedTuple):
    """A cached Document as its fields: every hit builds a fresh copy from it (:meth:`build`).

    Cheaper than ``model_copy`` plus ``deepcopy`` (pydantic's generic copy machinery runs on
    every hit otherwise). Metadata of scalars (and lists of scalars, Chroma's types) is copied
    one level deep; anything else is deep-copied.
    """

    fields: dict[str, Any]
    fields_set: set[str]
    depth: int  # 0: scalars only, 1: lists of scalars too, 2: anything else

    @classmethod
    def of(cls, document: Document) -> DocumentTemplate:
        """The template of ``document`` (a copy: later changes to it do not reach the cache)."""
        metadata = document.metadata
        depth = max(map(_depth, metadata.values()), default=0)
        fields = dict(document.__dict__)
        fields["metadata"] = _copy_metadata(metadata, depth)
        return cls(fields, set(document.__pydantic_fields_set__), depth)

    def build(self) -> Document:
        """A new Document equal to the cached one, sharing nothing mutable with it."""
        fields = self.fields
        document = _OBJECT_NEW(Document)
        metadata = _copy_metadata(fields["metadata"], self.depth)
        _OBJECT_SET(document, "__dict__", {**fields, "metadata": metadata})
        _OBJECT_SET(document, "__pydantic_fields_set__", self.fields_set.copy())
        _OBJECT_SET(document, "__pydantic_extra__", None)
        _OBJECT_SET(document, "__pydantic_private__", None)
        return document


def _depth(value: object) -> Literal[0, 1, 2]:
    if type(value) in IMMUTABLE_TYPES:
        return 0
    if type(value) is list and all(type(v) in IMMUTABLE_TYPES for v in value):
        return 1
    return 2


def _copy_metadata(metadata: dict[str, Any], depth: int) -> dict[str, Any]:
    if depth == 0:
        return metadata.copy()
    if depth == 1:
        return {k: list(v) if type(v) is list else v for k, v in metadata.items()}
    return copy.deepcopy(metadata)


IMMUTABLE_TYPES = frozenset({str, int, float, bool, type(None)})
"""Types whose values a cache hands out without copying."""
_OBJECT_NEW = object.__new__
_OBJECT_SET = object.__setattr__


# ---------------------------------------------------------------------------------- embeddings
class CachedEmbeddings(Embeddings):
    """Caches the query embeddings of any LangChain ``Embeddings`` in memory.

    ``embed_query`` / ``aembed_query`` results are cached by text, with single flight.
    ``embed_documents`` passes through: to cache document embeddings on disk, use LangChain's
    ``CacheBackedEmbeddings.from_bytes_store(underlying, LocalFileStore(path))``.

    Setup:
        ```bash
        pip install langchain-hybrid
        ```

    Key init args:
        inner: the embeddings to wrap.
        max_entries: most query vectors kept (default 10 000).
        ttl_seconds: time to live of a vector (default ``None``: forever).
        max_bytes: memory budget for the vectors (default ``None``).

    Instantiate:
        ```python
        from langchain_hybrid import MiniLMEmbeddings
        from langchain_hybrid.cache import CachedEmbeddings

        embeddings = CachedEmbeddings(MiniLMEmbeddings(), max_entries=50_000)
        ```

    Usage:
        ```python
        vector = embeddings.embed_query("reset the router")  # computed
        vector = embeddings.embed_query("reset the router")  # cached
        embeddings.cache_stats()["hits"]  # 1
        ```
    """

    def __init__(
        self,
        inner: Embeddings,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        ttl_seconds: float | None = None,
        max_bytes: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Wrap ``inner``; raises ``ConfigError`` if it is not an ``Embeddings``."""
        if not isinstance(inner, Embeddings):
            msg = f"CachedEmbeddings wraps an Embeddings, got {type(inner).__name__}"
            raise ConfigError(msg)
        self.inner = inner
        self._cache: LRUCache[tuple[float, ...]] = LRUCache(
            max_entries, ttl_seconds=ttl_seconds, max_bytes=max_bytes, clock=clock
        )

    @property
    def cache(self) -> LRUCache[tuple[float, ...]]:
        """The underlying query-vector cache."""
        return self._cache

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents with the wrapped model (not cached)."""
        return self.inner.embed_documents(texts)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async embed documents with the wrapped model (not cached)."""
        return await self.inner.aembed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        """Embed a query, from the cache when the same text was embedded before."""
        vector = self._cache.get_or_compute(text, lambda: tuple(self.inner.embed_query(text)))
        return list(vector)

    async def aembed_query(self, text: str) -> list[float]:
        """Async embed a query, from the cache when the same text was embedded before."""

        async def compute() -> tuple[float, ...]:
            return tuple(await self.inner.aembed_query(text))

        return list(await self._cache.aget_or_compute(text, compute))

    def cache_stats(self) -> dict[str, int | float]:
        """Statistics of the query cache (see :meth:`LRUCache.stats`)."""
        return self._cache.stats()


_MOVED = {"CachedVectorStore", "chroma_staleness_check"}


def __getattr__(name: str) -> object:
    """Forward the names moved to :mod:`langchain_hybrid.vectorstore_cache` (deprecated)."""
    if name not in _MOVED:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    warnings.warn(
        f"import {name} from langchain_hybrid.vectorstore_cache (or from langchain_hybrid): "
        "langchain_hybrid.cache no longer holds it",
        DeprecationWarning,
        stacklevel=2,
    )
    from langchain_hybrid import vectorstore_cache  # noqa: PLC0415 - it imports this module

    return getattr(vectorstore_cache, name)


__all__ = ["CACHE_EVENT", "CachedEmbeddings", "LRUCache"]
