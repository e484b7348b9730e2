"""CachedVectorStore: the searches of any LangChain ``VectorStore``, cached and invalidated.

:class:`CachedVectorStore` wraps a ``VectorStore`` by composition and is one itself, so
``as_retriever()``, ``search()`` and chains use the cache. It is built on
:class:`~langchain_hybrid.cache.LRUCache` (single flight, LRU, TTL, byte budget) and its write
generations: see :mod:`langchain_hybrid.cache` for the read/write race they close.

Each search exists twice in LangChain's interface (``similarity_search`` /
``asimilarity_search``, ...); here each pair shares one description of the call (:class:`_Call`:
the method, what the key is made of, the arguments), one key, one entry and one copy-in/copy-out
path. Only the last step differs: the sync form calls the wrapped store's ``method``, the async
form awaits its ``a<method>``. Writes likewise go through one ``_write`` / ``_awrite`` pair.

Writes made behind the wrapper's back (another process, or the wrapped store used directly) are
caught by an optional ``staleness_check``: a callable whose value changes when the data does,
evaluated at most every ``check_interval_seconds``; a change bumps the generation.
:func:`chroma_staleness_check` builds one for ``langchain_chroma.Chroma``: the change signal
the retriever itself goes by (:func:`langchain_hybrid.index.change_signal`: the write
generation, including a write under way, and the document count). Its limit: a write that
changes neither (an ``upsert`` of existing ids by a client that does not bump the generation)
is only caught when the TTL expires, so set ``ttl_seconds`` when other writers exist.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, cast

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from langchain_hybrid.cache import (
    DEFAULT_MAX_ENTRIES,
    IMMUTABLE_TYPES,
    CachedEmbeddings,
    DocumentTemplate,
    LRUCache,
    cache_key,
)
from langchain_hybrid.errors import ConfigError
from langchain_hybrid.index import change_signal

if TYPE_CHECKING:
    from typing_extensions import Self

logger = logging.getLogger(__name__)

R = TypeVar("R")


def _scalar_key(method: str, params: Mapping[str, Any], generation: int) -> str | None:
    """A cheap key for the common call, all arguments scalars and no extra keyword arguments.

    Unambiguous: each value is typed and ``repr``-ed (which escapes control characters), the
    parts are joined by a control character, and the first part is ``"s"``, which no
    :func:`cache_key` (64 hex digits) can be. ``None`` for any other call.
    """
    parts = ["s", method, str(generation)]
    for name, value in params.items():
        if name == "kwargs" and not value:
            continue
        if type(value) not in IMMUTABLE_TYPES:
            return None
        parts.append(f"{name}={type(value).__name__}:{value!r}")
    return "\x1f".join(parts)


def _freeze(value: object) -> object:
    """What a cache stores of a search result: Documents as templates, the rest copied."""
    if isinstance(value, Document):
        return DocumentTemplate.of(value)
    if type(value) is list:
        return [_freeze(item) for item in value]
    if type(value) is tuple:
        return tuple(_freeze(item) for item in value)
    return value if type(value) in IMMUTABLE_TYPES else copy.deepcopy(value)


def _thaw(value: R) -> R:
    """A fresh copy of a stored search result (see :func:`_freeze`)."""
    kind = type(value)
    if kind is DocumentTemplate:
        return cast("R", cast("DocumentTemplate", value).build())
    if kind is list:
        return cast("R", [_thaw(item) for item in cast("list[object]", value)])
    if kind is tuple:
        return cast("R", tuple(_thaw(item) for item in cast("tuple[object, ...]", value)))
    return value if kind in IMMUTABLE_TYPES else copy.deepcopy(value)


def chroma_staleness_check(store: VectorStore) -> Callable[[], tuple[int, int]]:
    """Build a ``staleness_check`` for a ``langchain_chroma.Chroma`` store.

    The check returns the change signal the retriever itself goes by
    (:func:`langchain_hybrid.index.change_signal`): the collection's write generation (odd while
    a write by this package is under way) and its document count, read fresh each time (about
    1 ms on an in-process client). It changes when another writer adds or deletes documents, or
    writes through this package (:class:`~langchain_hybrid.HybridRetriever`,
    :class:`~langchain_hybrid.index.HybridIndex`), which moves the generation. It does *not*
    change for an ``upsert``/``update`` of existing ids by a writer that leaves the generation
    alone: those are only caught by the cache's TTL.

    Args:
        store: a ``langchain_chroma.Chroma`` (anything with its ``_client`` and
            ``_collection``).

    Returns:
        A callable for ``CachedVectorStore(staleness_check=...)``.

    Raises:
        ConfigError: ``store`` does not look like a ``langchain_chroma.Chroma``.
    """
    client = getattr(store, "_client", None)
    collection = getattr(store, "_collection", None)
    if client is None or collection is None or not hasattr(collection, "count"):
        msg = (
            "chroma_staleness_check() expects a langchain_chroma.Chroma store, "
            f"got {type(store).__name__}"
        )
        raise ConfigError(msg)
    return change_signal(client, collection.name)


_UNSET: Any = object()


class CachedVectorStore(VectorStore):
    """Caches the searches of any LangChain ``VectorStore``, invalidated on every write.

    A ``VectorStore`` itself, so ``as_retriever()``, ``search()`` and chains use the cache.
    Searches (``similarity_search``, ``..._with_score``, ``..._with_relevance_scores``,
    ``..._by_vector``, ``max_marginal_relevance_search`` and ``..._by_vector``, and their async
    forms) are cached under :func:`cache_key` of (method, query or vector, ``k``, every other
    argument including a normalised ``filter``, write generation); sync and async forms share
    entries. Results are copied in and out, so mutating a returned ``Document`` cannot corrupt
    the cache. ``get_by_ids`` passes through uncached.

    Writes (``add_texts``, ``add_documents``, ``delete`` and async forms) go to the wrapped
    store, then bump the generation before returning, also when they raise. See
    :mod:`langchain_hybrid.cache` for the race this ordering closes, and this module's docstring
    for ``staleness_check``.

    Setup:
        ```bash
        pip install langchain-hybrid langchain-chroma
        ```

    Key init args:
        inner: the store to wrap.
        max_entries: most cached searches (default 10 000).
        ttl_seconds: time to live of a result (default ``None``); set it when other writers
            can change data in ways ``staleness_check`` does not see.
        max_bytes: memory budget for cached results (default ``None``).
        staleness_check: a callable whose value changes when the data changes behind the
            wrapper's back (e.g. :func:`chroma_staleness_check`); a change drops the cache.
        check_interval_seconds: how often ``staleness_check`` runs at most (default 1.0; 0:
            before every search).

    Instantiate:
        ```python
        import chromadb
        from langchain_chroma import Chroma
        from langchain_hybrid.vectorstore_cache import CachedVectorStore, chroma_staleness_check

        chroma = Chroma("kb", embedding_function=emb, client=chromadb.PersistentClient("db"))
        store = CachedVectorStore(
            chroma, max_entries=10_000, ttl_seconds=600,
            staleness_check=chroma_staleness_check(chroma), check_interval_seconds=1.0)
        ```

    Usage:
        ```python
        store.add_documents(docs)
        store.similarity_search("router error", k=4, filter={"source": "faq"})  # miss
        store.similarity_search("router error", k=4, filter={"source": "faq"})  # hit
        retriever = store.as_retriever(search_kwargs={"k": 4})
        store.cache_stats()  # {"hits": 1, "misses": 1, "hit_rate": 0.5, ...}
        ```
    """

    def __init__(
        self,
        inner: VectorStore,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        ttl_seconds: float | None = None,
        max_bytes: int | None = None,
        staleness_check: Callable[[], object] | None = None,
        check_interval_seconds: float = 1.0,
        sizeof: Callable[[object], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Wrap ``inner``; raises ``ConfigError`` for a bad store or setting."""
        if not isinstance(inner, VectorStore):
            msg = f"CachedVectorStore wraps a VectorStore, got {type(inner).__name__}"
            raise ConfigError(msg)
        if (
            isinstance(check_interval_seconds, bool)
            or not isinstance(check_interval_seconds, int | float)
            or not check_interval_seconds >= 0
        ):
            msg = f"check_interval_seconds must be >= 0, got {check_interval_seconds!r}"
            raise ConfigError(msg)
        self._inner = inner
        self._cache: LRUCache[object] = LRUCache(
            max_entries, ttl_seconds=ttl_seconds, max_bytes=max_bytes, sizeof=sizeof, clock=clock
        )
        self._clock = clock
        self._staleness_check = staleness_check
        self._check_interval = float(check_interval_seconds)
        self._check_lock = threading.Lock()
        self._baseline: object = _UNSET
        self._last_check = -math.inf

    # ------------------------------------------------------------------ plumbing
    @property
    def inner(self) -> VectorStore:
        """The wrapped store (writes made through it directly bypass invalidation)."""
        return self._inner

    @property
    def cache(self) -> LRUCache[object]:
        """The underlying result cache."""
        return self._cache

    @property
    def embeddings(self) -> Embeddings | None:
        """The wrapped store's embeddings."""
        return self._inner.embeddings

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        return self._inner._select_relevance_score_fn()  # noqa: SLF001

    def cache_stats(self) -> dict[str, Any]:
        """Return ``hits``, ``misses``, ``hit_rate``, ``evictions``, ``entries``, ``invalidations``.

        If the wrapped store's embeddings are a :class:`CachedEmbeddings`, their statistics are
        added under ``"embeddings"``.
        """
        stats = self._cache.stats()
        out: dict[str, Any] = {
            name: stats[name]
            for name in ("hits", "misses", "hit_rate", "evictions", "entries", "invalidations")
        }
        embeddings = self._inner.embeddings
        if isinstance(embeddings, CachedEmbeddings):
            out["embeddings"] = embeddings.cache_stats()
        return out

    def invalidate(self) -> None:
        """Drop every cached result and fence searches in flight (e.g. after an outside write)."""
        self._cache.bump()

    def _due(self) -> bool:
        return (
            self._staleness_check is not None
            and self._clock() - self._last_check >= self._check_interval
        )

    def _check_staleness(self) -> None:
        """Run ``staleness_check`` if due; bump the generation if its value changed."""
        check = self._staleness_check
        if check is None:
            return
        with self._check_lock:
            now = self._clock()
            if now - self._last_check < self._check_interval:
                return  # another thread checked meanwhile
            try:
                value = check()
            except Exception:
                # Cannot vouch for the cache: drop it, keep the old baseline, retry next lookup.
                logger.warning("staleness check failed; dropping the cache", exc_info=True)
                self._cache.bump()
                return
            self._last_check = now
            if value != self._baseline:  # also the first check (or after a failed one)
                logger.debug("data changed behind the cache (%r -> %r)", self._baseline, value)
                self._baseline = value
                self._cache.bump()

    async def _acheck_staleness(self) -> None:
        if self._due():
            await asyncio.get_running_loop().run_in_executor(None, self._check_staleness)

    def _after_write(self) -> None:
        """Invalidate after a write through the wrapper (also a failed one).

        The staleness baseline is read *before* the bump, so an outside write that lands after
        the read differs from it and is caught by the next check.
        """
        check = self._staleness_check
        if check is None:
            self._cache.bump()
            return
        with self._check_lock:
            try:
                self._baseline = check()
                self._last_check = self._clock()
            except Exception:
                logger.warning("staleness check failed after a write", exc_info=True)
                self._baseline = _UNSET
                self._last_check = -math.inf
            self._cache.bump()

    async def _aafter_write(self) -> None:
        if self._staleness_check is None:
            self._cache.bump()
        else:
            await asyncio.get_running_loop().run_in_executor(None, self._after_write)

    def _key(self, call: _Call) -> tuple[str | None, int]:
        """The cache key of ``call`` at the current generation (``None``: not cacheable)."""
        generation = self._cache.generation
        key = _scalar_key(call.method, call.params, generation)
        if key is not None:
            return key, generation
        try:
            return cache_key(call.method, call.params, generation), generation
        except TypeError as e:
            logger.debug("%s not cached: %s", call.method, e)
            return None, generation

    def _cached(self, call: _Call) -> Any:
        """``call`` on the wrapped store, from the cache when the same call is cached."""
        if self._due():
            self._check_staleness()
        key, generation = self._key(call)
        method = getattr(self._inner, call.method)
        if key is None:
            return method(*call.args, **call.kwargs)

        def fill() -> object:
            return _freeze(method(*call.args, **call.kwargs))

        return _thaw(self._cache.get_or_compute(key, fill, generation=generation))

    async def _acached(self, call: _Call) -> Any:
        """:meth:`_cached` awaiting the wrapped store's async form (same key, same entry)."""
        await self._acheck_staleness()
        key, generation = self._key(call)
        method = getattr(self._inner, f"a{call.method}")
        if key is None:
            return await method(*call.args, **call.kwargs)

        async def fill() -> object:
            return _freeze(await method(*call.args, **call.kwargs))

        return _thaw(await self._cache.aget_or_compute(key, fill, generation=generation))

    def _write(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Write through the wrapped store's ``method``, then invalidate (also if it raised)."""
        try:
            return getattr(self._inner, method)(*args, **kwargs)
        finally:
            self._after_write()

    async def _awrite(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """:meth:`_write` awaiting the wrapped store's ``a<method>``."""
        try:
            return await getattr(self._inner, f"a{method}")(*args, **kwargs)
        finally:
            await self._aafter_write()

    # ------------------------------------------------------------------ searches
    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        """Cached ``similarity_search`` of the wrapped store."""
        return cast("list[Document]", self._cached(_search("similarity_search", query, k, kwargs)))

    async def asimilarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        """Cached ``asimilarity_search`` of the wrapped store."""
        call = _search("similarity_search", query, k, kwargs)
        return cast("list[Document]", await self._acached(call))

    def similarity_search_with_score(
        self, *args: Any, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Cached ``similarity_search_with_score(query, k=4, **kwargs)`` of the wrapped store."""
        call = _with_score_call(args, kwargs)
        return cast("list[tuple[Document, float]]", self._cached(call))

    async def asimilarity_search_with_score(
        self, *args: Any, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Cached ``asimilarity_search_with_score`` of the wrapped store."""
        call = _with_score_call(args, kwargs)
        return cast("list[tuple[Document, float]]", await self._acached(call))

    def similarity_search_with_relevance_scores(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Cached ``similarity_search_with_relevance_scores`` (``score_threshold`` is keyed)."""
        call = _search("similarity_search_with_relevance_scores", query, k, kwargs)
        return cast("list[tuple[Document, float]]", self._cached(call))

    async def asimilarity_search_with_relevance_scores(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Cached ``asimilarity_search_with_relevance_scores`` of the wrapped store."""
        call = _search("similarity_search_with_relevance_scores", query, k, kwargs)
        return cast("list[tuple[Document, float]]", await self._acached(call))

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, **kwargs: Any
    ) -> list[Document]:
        """Cached ``similarity_search_by_vector`` (the vector is part of the key)."""
        call = _search("similarity_search_by_vector", embedding, k, kwargs, name="embedding")
        return cast("list[Document]", self._cached(call))

    async def asimilarity_search_by_vector(
        self, embedding: list[float], k: int = 4, **kwargs: Any
    ) -> list[Document]:
        """Cached ``asimilarity_search_by_vector`` of the wrapped store."""
        call = _search("similarity_search_by_vector", embedding, k, kwargs, name="embedding")
        return cast("list[Document]", await self._acached(call))

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **kwargs: Any,
    ) -> list[Document]:
        """Cached ``max_marginal_relevance_search`` (``fetch_k``, ``lambda_mult`` keyed)."""
        call = _mmr(
            "max_marginal_relevance_search",
            "query",
            query,
            k=k,
            fetch_k=fetch_k,
            lambda_mult=lambda_mult,
            kwargs=kwargs,
        )
        return cast("list[Document]", self._cached(call))

    async def amax_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **kwargs: Any,
    ) -> list[Document]:
        """Cached ``amax_marginal_relevance_search`` of the wrapped store."""
        call = _mmr(
            "max_marginal_relevance_search",
            "query",
            query,
            k=k,
            fetch_k=fetch_k,
            lambda_mult=lambda_mult,
            kwargs=kwargs,
        )
        return cast("list[Document]", await self._acached(call))

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **kwargs: Any,
    ) -> list[Document]:
        """Cached ``max_marginal_relevance_search_by_vector`` of the wrapped store."""
        call = _mmr(
            "max_marginal_relevance_search_by_vector",
            "embedding",
            embedding,
            k=k,
            fetch_k=fetch_k,
            lambda_mult=lambda_mult,
            kwargs=kwargs,
        )
        return cast("list[Document]", self._cached(call))

    async def amax_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **kwargs: Any,
    ) -> list[Document]:
        """Cached ``amax_marginal_relevance_search_by_vector`` of the wrapped store."""
        call = _mmr(
            "max_marginal_relevance_search_by_vector",
            "embedding",
            embedding,
            k=k,
            fetch_k=fetch_k,
            lambda_mult=lambda_mult,
            kwargs=kwargs,
        )
        return cast("list[Document]", await self._acached(call))

    # ------------------------------------------------------------------ reads by id
    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Get documents by id from the wrapped store (not cached)."""
        return self._inner.get_by_ids(ids)

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Async get documents by id from the wrapped store (not cached)."""
        return await self._inner.aget_by_ids(ids)

    # ------------------------------------------------------------------ writes
    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Add texts to the wrapped store, then invalidate the cache."""
        return cast("list[str]", self._write("add_texts", texts, metadatas, ids=ids, **kwargs))

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Async add texts to the wrapped store, then invalidate the cache."""
        added = await self._awrite("add_texts", texts, metadatas, ids=ids, **kwargs)
        return cast("list[str]", added)

    def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """Add (or upsert by id) documents in the wrapped store, then invalidate the cache."""
        return cast("list[str]", self._write("add_documents", documents, **kwargs))

    async def aadd_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """Async add documents to the wrapped store, then invalidate the cache."""
        return cast("list[str]", await self._awrite("add_documents", documents, **kwargs))

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete from the wrapped store, then invalidate the cache."""
        return cast("bool | None", self._write("delete", ids, **kwargs))

    async def adelete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Async delete from the wrapped store, then invalidate the cache."""
        return cast("bool | None", await self._awrite("delete", ids, **kwargs))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        vectorstore_cls: type[VectorStore] | None = None,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        ttl_seconds: float | None = None,
        max_bytes: int | None = None,
        **kwargs: Any,
    ) -> Self:
        """Build ``vectorstore_cls.from_texts(texts, embedding, ...)`` and wrap it.

        Args:
            texts: texts to add.
            embedding: the embedding function of the new store.
            metadatas: one metadata dict per text.
            ids: one id per text.
            vectorstore_cls: the ``VectorStore`` class to build (required), e.g. ``Chroma``.
            max_entries: as in the constructor.
            ttl_seconds: as in the constructor.
            max_bytes: as in the constructor.
            **kwargs: passed to ``vectorstore_cls.from_texts``.

        Returns:
            The cached store.

        Raises:
            ConfigError: ``vectorstore_cls`` is missing or not a ``VectorStore`` class.
        """
        if not (isinstance(vectorstore_cls, type) and issubclass(vectorstore_cls, VectorStore)):
            msg = (
                "CachedVectorStore wraps an existing store: use CachedVectorStore(store), or "
                "pass vectorstore_cls=<a VectorStore class> to from_texts/from_documents"
            )
            raise ConfigError(msg)
        inner = vectorstore_cls.from_texts(texts, embedding, metadatas, ids=ids, **kwargs)
        return cls(inner, max_entries=max_entries, ttl_seconds=ttl_seconds, max_bytes=max_bytes)


class _Call(NamedTuple):
    """One search, as both forms of it run: the sync method (the async one is ``a<method>``)."""

    method: str
    params: dict[str, Any]  # what the cache key is made of (with the method and generation)
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


def _search(
    method: str, query: object, k: int, kwargs: dict[str, Any], *, name: str = "query"
) -> _Call:
    """``method(query, k=k, **kwargs)``, keyed by ``name`` (``query`` or ``embedding``)."""
    return _Call(method, {name: query, "k": k, "kwargs": kwargs}, (query,), {"k": k, **kwargs})


def _with_score_call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Call:
    """``similarity_search_with_score(query, k=4, **kwargs)`` given positionally or by keyword.

    Unusual calls (extra positional arguments, no query) are keyed and passed on exactly as
    given.
    """
    method = "similarity_search_with_score"
    kwargs = dict(kwargs)
    if len(args) > 2 or (not args and "query" not in kwargs):  # noqa: PLR2004
        return _Call(method, {"args": list(args), "kwargs": kwargs}, args, kwargs)
    query = args[0] if args else kwargs.pop("query")
    k = args[1] if len(args) > 1 else kwargs.pop("k", 4)
    return _search(method, query, k, kwargs)


def _mmr(
    method: str,
    name: str,
    query: object,
    *,
    k: int,
    fetch_k: int,
    lambda_mult: float,
    kwargs: dict[str, Any],
) -> _Call:
    """A maximal-marginal-relevance search (``fetch_k`` and ``lambda_mult`` keyed too)."""
    params = {name: query, "k": k, "fetch_k": fetch_k, "lambda_mult": lambda_mult}
    return _Call(
        method,
        {**params, "kwargs": kwargs},
        (query,),
        {"k": k, "fetch_k": fetch_k, "lambda_mult": lambda_mult, **kwargs},
    )


__all__ = ["CachedVectorStore", "chroma_staleness_check"]
