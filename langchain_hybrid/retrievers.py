"""HybridRetriever: run the BM25 and vector legs at once, fuse their ranks, cut to ``k``.

Orchestration only: scoring lives in :mod:`langchain_hybrid.bm25`, storage in
:mod:`langchain_hybrid.stores`, fusion in :mod:`langchain_hybrid.fusion`, the index lifecycle
in :mod:`langchain_hybrid.index`.

A query, in the order the code runs it: ``_keyed_params`` (validated :class:`SearchParams` and
the cache key) -> the result cache -> ``_run_legs`` (each leg's ``_rank``: :class:`LegHit` ids
and scores, no texts; as a child run ``bm25`` / ``vector`` when a callback handler is attached)
-> ``_combine`` (the method of :data:`~langchain_hybrid.fusion.FUSION_METHODS`, ``group_by``,
and ``_found``: the only read of texts and metadata, for the kept candidates) -> ``_reranked``
-> cut to ``k``.
:meth:`HybridRetriever.rank_leg` is one leg's ranking as fused; :meth:`HybridRetriever.search_leg`
one leg alone with texts.
"""

from __future__ import annotations

__all__ = ["HybridRetriever", "LegHit", "LegHits", "leg_run"]

import asyncio
import contextlib
import functools
import logging
import math
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, cast

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever, LangSmithRetrieverParams
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    create_model,
)

from langchain_hybrid._loaders import document_ids
from langchain_hybrid.adaptive import AdaptiveWeights, leg_weights
from langchain_hybrid.bm25 import BM25Index, BM25Params, check_ids
from langchain_hybrid.cache import (
    CACHE_EVENT,
    CachedEmbeddings,
    DocumentTemplate,
    LRUCache,
    cache_key,
)
from langchain_hybrid.config import (
    CacheSettings,
    HybridConfig,
    check_bm25_path,
    load_config,
    make_embedding,
)
from langchain_hybrid.embeddings import MiniLMEmbeddings
from langchain_hybrid.errors import (
    AllLegsFailedError,
    ConfigError,
    ForkedProcessError,
    HybridRetrieverError,
    IndexNotBuiltError,
    InvalidDocumentsError,
    InvalidQueryError,
    RerankError,
    StoreError,
)
from langchain_hybrid.filters import (
    Node,
    chroma_where,
    is_utf8,
    parse_filter,
    validate_metadata,
)
from langchain_hybrid.fusion import (
    FUSION_METHODS,
    MAX_K,
    Fused,
    FusionMethod,
    LegRun,
    Population,
    check_count,
    check_rrf_k,
    check_weights,
)
from langchain_hybrid.index import HybridIndex
from langchain_hybrid.ingest import (
    DEFAULT_BATCH_SIZE,
    PIPELINE_MIN_DOCUMENTS,
    IngestProgress,
    run_pipeline,
)
from langchain_hybrid.stores import ChromaStore, StoreConfig

logger = logging.getLogger(__name__)

LEGS: tuple[Literal["bm25"], Literal["vector"]] = ("bm25", "vector")
_CALL_KWARGS = frozenset(
    {"k", "filter", "fetch_k", "weights", "fusion", "rrf_k", "rerank_k", "group_by"}
)
_DEEPER_ROUNDS = 2
"""How many times grouping searches again, each time with ``fetch_k`` times ``_DEEPER_FACTOR``."""
_DEEPER_FACTOR = 4
_EXECUTOR_LOCK = threading.Lock()
_EXECUTORS: dict[str, ThreadPoolExecutor] = {}
_LEG_START_WAIT_SECONDS = 0.002
"""How long the calling thread waits for the vector leg's thread to start before its BM25 leg."""
_UNDER_WAY_RECHECK_SECONDS = 0.25
"""How soon a query checks the change feed again after a refresh saw another replica's write
under way (its intent without a completion yet)."""
_SEARCH_PARAMS_NEW = tuple.__new__


def _executor(name: str = "langchain-hybrid") -> ThreadPoolExecutor:
    """A shared thread pool (created on first use).

    ``langchain-hybrid`` runs the async API's work off the event loop (writes, refreshes, a
    search's legs and fusion); ``langchain-hybrid-leg`` (:func:`_leg_executor`) runs one leg
    beside the thread that runs the other. A job of the first pool may wait for one of the
    second; a leg waits for nothing, so every waiting job waits on one that can run.
    """
    with _EXECUTOR_LOCK:
        pool = _EXECUTORS.get(name)
        if pool is None:
            workers = min(32, (os.cpu_count() or 1) + 4)
            pool = _EXECUTORS[name] = ThreadPoolExecutor(workers, thread_name_prefix=name)
        return pool


def _leg_executor() -> ThreadPoolExecutor:
    """The pool of the legs that run beside another thread's work (see :func:`_executor`)."""
    return _executor("langchain-hybrid-leg")


def _forget_executor_after_fork() -> None:
    """In a forked child the parent's pool threads do not exist: new pools start on demand."""
    global _EXECUTOR_LOCK  # noqa: PLW0603
    _EXECUTOR_LOCK = threading.Lock()
    _EXECUTORS.clear()


def _started(
    started: threading.Event, leg: Callable[[], LegHits | BaseException]
) -> LegHits | BaseException:
    """Run ``leg`` after telling the thread that waits on ``started`` that it has begun."""
    started.set()
    return leg()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forget_executor_after_fork)


def _raise_if_forked(failed: Mapping[str, BaseException]) -> None:
    """A store unusable in this (forked) process is an error, never a degraded answer."""
    for error in failed.values():
        if isinstance(error, ForkedProcessError):
            raise error


class SearchParams(NamedTuple):
    """Validated parameters of one search."""

    query: str
    k: int
    fetch_k: int
    weights: tuple[float, float]
    fusion: str
    rrf_k: float
    where: dict[str, Any] | None
    node: Node | None
    rerank_k: int
    """Fused candidates kept before the cut to ``k``: passed to the reranker (``k`` if none)."""
    group_by: str | None
    """Metadata key whose value names a document's group (one document per group)."""
    adaptive: AdaptiveWeights | None = None
    """Sets the two legs' weights per query (``None``: ``weights`` as given)."""

    def cache_key(self) -> str:
        """A collision-proof key of everything that changes the answer.

        Fixed-format fields joined by a control character that none of them can contain (the
        filter is canonical JSON, whose strings escape control characters), the query last:
        unambiguous, and far cheaper than hashing a canonical encoding on every cache hit.
        """
        return self.key_prefix() + self.query

    def key_prefix(self) -> str:
        """:meth:`cache_key` without the query (equal for every query with these settings)."""
        where = "" if self.where is None else cache_key(self.where)
        return (
            f"{self.k}\x1f{self.fetch_k}\x1f{self.weights[0]!r}\x1f{self.weights[1]!r}\x1f"
            f"{self.fusion}\x1f{self.rrf_k!r}\x1f{where}\x1f{self.rerank_k}\x1f"
            f"{self.group_by!r}\x1f"
            f"{'' if self.adaptive is None else self.adaptive.model_dump_json()}\x1f"
        )

    def active_legs(self) -> tuple[str, ...]:
        """The legs with a positive weight: a leg weighted 0 is not run at all."""
        return tuple(leg for leg, weight in zip(LEGS, self.weights, strict=True) if weight > 0)


class LegHit(NamedTuple):
    """One document as a leg returned it (``text`` ``None``: not fetched yet)."""

    id: str
    score: float
    text: str | None
    metadata: dict[str, Any]


class LegHits(list[LegHit]):
    """A leg's hits, best first, and the statistics of all its scores when the leg knows them.

    The BM25 leg scores every live document to rank them, so it reports their
    :class:`~langchain_hybrid.fusion.Population`; fusion standardises the leg against it.
    """

    population: Population | None = None
    query_vector: Sequence[float] | None = None
    """The query's embedding the vector leg searched with (``None`` for the BM25 leg)."""


def leg_run(leg: str, hits: Sequence[LegHit], depth: int) -> LegRun:
    """What fusion needs of one leg's search at ``depth`` (``fetch_k``) candidates.

    The BM25 leg scores 0 for every document it does not match (its floor: a list shorter than
    ``depth`` holds every document it matched) and knows its population; the vector leg has
    neither (see :mod:`langchain_hybrid.fusion`).
    """
    population = hits.population if isinstance(hits, LegHits) else None
    return LegRun(
        [(h.id, h.score) for h in hits],
        depth,
        0.0 if leg == "bm25" else None,
        population,
    )


class _Leg(BaseRetriever):
    """One retrieval leg as a child retriever run ``bm25`` / ``vector``, so traces nest per leg.

    Used only when a callback handler is attached. It ranks with the same
    :meth:`HybridRetriever._rank` as an unwatched search and appends the hits to the list
    passed as ``ranked`` (the search fuses those); the handlers see them as documents made from
    the same hits (:func:`_trace_documents`), never read back.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    parent: Any = Field(exclude=True)
    leg: Literal["bm25", "vector"]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        hits: LegHits = self.parent._rank(  # noqa: SLF001
            self.leg, kwargs["params"], kwargs.get("embedding")
        )
        kwargs["ranked"].append(hits)
        return _trace_documents(self.leg, hits)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        hits: LegHits = await self.parent._arank(  # noqa: SLF001
            self.leg, kwargs["params"], kwargs.get("embedding")
        )
        kwargs["ranked"].append(hits)
        return _trace_documents(self.leg, hits)


class _Rerank(BaseRetriever):
    """The reranker's call as a child retriever run ``rerank``, reported like a leg.

    Callback handlers see its latency, and its failure as a failed child run (the
    :class:`~langchain_hybrid.callbacks.RetrievalMetricsHandler` counts it under the leg
    ``rerank`` and the answer as degraded); the compressor's own runs nest below it.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    parent: Any = Field(exclude=True)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        reranker: BaseDocumentCompressor = self.parent.reranker
        return list(
            reranker.compress_documents(
                kwargs["documents"], query, callbacks=run_manager.get_child()
            )
        )

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        reranker: BaseDocumentCompressor = self.parent.reranker
        return list(
            await reranker.acompress_documents(
                kwargs["documents"], query, callbacks=run_manager.get_child()
            )
        )


def _trace_documents(leg: str, hits: Sequence[LegHit]) -> list[Document]:
    """A leg's hits as its child run reports them: id, no text, the leg's rank and score."""
    rank_key, score_key = f"{leg}_rank", f"{leg}_score"
    return [
        Document(id=hit.id, page_content="", metadata={rank_key: rank, score_key: hit.score})
        for rank, hit in enumerate(hits, start=1)
    ]


def _check_leg(leg: object) -> None:
    if leg not in LEGS:
        msg = f"unknown leg {leg!r}; expected one of {LEGS}"
        raise InvalidQueryError(msg)


def _valid_weights(value: object) -> tuple[float, ...]:
    return check_weights(value, len(LEGS))


def _count_field(value: object, info: ValidationInfo) -> int:
    return check_count(str(info.field_name), value)


class HybridRetriever(BaseRetriever):
    r"""Hybrid retriever: exact BM25 + Chroma vector search in parallel, fused (z-score default).

    Setup:
        Install from a checkout of the repository (not on PyPI yet); the offline embedding
        model is found in ``$LANGCHAIN_HYBRID_MODEL_DIR`` or Chroma's cache.

        ```bash
        pip install -e .
        export LANGCHAIN_HYBRID_MODEL_DIR=/path/to/all-MiniLM-L6-v2/onnx  # optional
        ```

    Key init args (defaults for every call; each can be overridden per call):
        k: documents returned (default 4).
        fetch_k: candidates taken from each leg before fusion (default 50).
        rrf_k: the RRF constant (default 60; used when ``fusion="rrf"``).
        weights: ``(bm25, vector)`` fusion weights (default ``(0.5, 0.5)``); a leg weighted 0
            is not run.
        fusion: ``"zscore"`` (default: each leg's scores standardised, BM25's against all
            its scores, then summed with the weights; chosen on SciFact train and an
            exact-match set, see the README and :mod:`langchain_hybrid.fusion`) |
            ``"relative_score"`` (min-max) | ``"rrf"`` (weighted Reciprocal Rank Fusion) |
            ``"dbsf"``.
        adaptive: an :class:`~langchain_hybrid.adaptive.AdaptiveWeights` (default ``None``):
            when both legs run, it sets their weights per query from the legs' own signals
            (``langchain-hybrid eval --tune`` fits one); not a per-call argument.
        on_leg_error: ``"degrade"`` (return the other leg's results, marked
            ``metadata["degraded"] = "<failed leg>"``; a failed reranker: the fused order,
            marked ``"rerank"``) or ``"raise"``.
        reranker: any LangChain ``BaseDocumentCompressor`` (a cross-encoder reranker, ...),
            applied to the fused top ``rerank_k`` before the cut to ``k``; Python only (never
            from YAML). ``None`` (default): no rerank stage.
        rerank_k: fused candidates passed to the reranker (default 20; at least ``k``).
        group_by: a metadata key (e.g. ``"source"``): only each group's best document after
            fusion is kept (before reranking), searching deeper when fewer than ``k`` groups
            came back; documents without the key are groups of their own. ``None``: off.

    Instantiate:
        ```python
        from langchain_hybrid import HybridRetriever

        retriever = HybridRetriever.from_documents(
            docs, embedding=emb, persist_directory="./index", collection_name="kb",
            k=4, fetch_k=50, weights=(0.5, 0.5))
        # later, in another process: nothing is embedded or tokenized again
        retriever = HybridRetriever.load("./index", collection_name="kb", embedding=emb)
        ```

    Usage:
        ```python
        ids = retriever.add_documents(more_docs)
        retriever.delete(ids[:2])
        hits = retriever.invoke("router error E-4471", k=5, filter={"source": "faq"})
        hits[0].metadata["hybrid_score"], hits[0].metadata["bm25_rank"]
        ```

    Async:
        ```python
        hits = await retriever.ainvoke("router error E-4471", k=5)
        ids = await retriever.aadd_documents(more_docs)  # never blocks the event loop
        await retriever.adelete(ids)
        ```

    Use within a chain:
        ```python
        from langchain_core.output_parsers import StrOutputParser
        from langchain_core.prompts import ChatPromptTemplate
        from langchain_core.runnables import RunnablePassthrough

        prompt = ChatPromptTemplate.from_template("Context: {context}\n\nQuestion: {question}")

        def format_docs(docs):
            return "\n\n".join(d.page_content for d in docs)

        chain = (
            {"context": retriever | format_docs, "question": RunnablePassthrough()}
            | prompt
            | llm
            | StrOutputParser()
        )
        chain.invoke("What does error E-4471 mean?")
        ```

    Rerank and group:
        ```python
        from langchain_classic.retrievers.document_compressors import CrossEncoderReranker

        retriever.reranker = CrossEncoderReranker(model=cross_encoder, top_n=20)
        hits = retriever.invoke("router error E-4471", k=5, rerank_k=30, group_by="source")
        hits[0].metadata["fused_rank"], hits[0].metadata["bm25_rank"]
        ```

    Every returned ``Document`` has ``id`` set and metadata keys ``hybrid_score``,
    ``bm25_rank``, ``bm25_score``, ``vector_rank``, ``vector_score`` (``None`` for a leg that did
    not return it); with a reranker also ``fused_rank`` (its place in the fused order) besides
    whatever score the reranker writes. Documents are deduplicated by id.

    ``hybrid_score`` orders one query's results; it is not comparable across queries (see the
    README, "Scores and thresholds"): threshold a reranker's score or ``vector_score`` instead.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    store: ChromaStore = Field(exclude=True)
    embedding: Embeddings = Field(exclude=True)
    k: Annotated[int, BeforeValidator(_count_field)] = 4
    fetch_k: Annotated[int, BeforeValidator(_count_field)] = 50
    rrf_k: Annotated[float, BeforeValidator(check_rrf_k)] = 60.0
    weights: Annotated[tuple[float, float], BeforeValidator(_valid_weights)] = (0.5, 0.5)
    fusion: FusionMethod = "zscore"
    adaptive: AdaptiveWeights | None = None
    """Query-adaptive weights (``None``: the fixed ``weights``; see :mod:`.adaptive`)."""
    on_leg_error: Literal["degrade", "raise"] = "degrade"
    reranker: BaseDocumentCompressor | None = Field(default=None, exclude=True)
    """Reorders the fused top ``rerank_k`` before the cut to ``k`` (``None``: no rerank stage)."""
    rerank_k: Annotated[int, BeforeValidator(_count_field)] = 20
    group_by: str | None = Field(default=None, min_length=1)
    """Metadata key: keep each group's best document (``None``: no grouping)."""
    bm25_path: Path | None = None
    cache: LRUCache[tuple[DocumentTemplate, ...]] | None = Field(default=None, exclude=True)
    """Fused-result cache (``None``: off). Cleared by every write through this retriever."""
    refresh_interval_seconds: float | None = Field(default=5.0, gt=0)
    """How often a query checks Chroma for writes by other processes (``None``: never)."""

    _index: HybridIndex = PrivateAttr()
    """The collection + BM25 pair: writes, sync, recovery, status (see :mod:`.index`)."""
    _next_refresh: float = PrivateAttr(default=0.0)
    _defaults: tuple[tuple[Any, ...], tuple[Any, ...], str] | None = PrivateAttr(default=None)
    """(the fields the defaults depend on, the SearchParams fields after the query, key prefix)"""
    _legs: dict[str, _Leg] = PrivateAttr(default_factory=dict)
    _rerank: _Rerank | None = PrivateAttr(default=None)
    _reranker_seen: BaseDocumentCompressor | None = PrivateAttr(default=None)
    """The reranker the cached answers were computed with (another one clears the cache)."""

    def __init__(self, **data: Any) -> None:
        """Create the retriever from its fields and handles (see the class docstring).

        ``bm25`` (a :class:`BM25Index` that matches ``store``) is required: the retriever's
        :class:`HybridIndex` owns it from then on.

        Raises:
            ConfigError: an unknown field, a field value out of range, or no ``bm25`` index.
        """
        bm25 = data.pop("bm25", None)
        if not isinstance(bm25, BM25Index):
            problem = "Field required" if bm25 is None else "Input should be a BM25Index"
            msg = f"invalid HybridRetriever settings: bm25: {problem}"
            raise ConfigError(msg)
        try:
            super().__init__(**data)
        except ValidationError as e:
            raise _settings_error(e) from None
        self._index = HybridIndex(self.store, bm25, self.bm25_path)

    @property
    def index(self) -> HybridIndex:
        """The Chroma collection + BM25 index pair this retriever searches and writes."""
        return cast("HybridIndex", self._private_attrs()["_index"])

    @property
    def bm25(self) -> BM25Index:
        """The BM25 index (owned by :attr:`index`; replaced when it resyncs)."""
        return cast("BM25Index", self._private_attrs()["_index"].bm25)

    @bm25.setter
    def bm25(self, value: BM25Index) -> None:
        self.index.bm25 = value

    @classmethod
    def check_fields(cls, fields: Mapping[str, Any]) -> None:
        """Validate retriever fields (``k``, ``fetch_k``, ``weights``, ...), creating nothing.

        The constructors call it before they open or create a store, so a rejected argument
        leaves nothing on disk. Handles (``store``, ``bm25``, ``embedding``, ``cache``) are not
        checked here.

        Raises:
            ConfigError: an unknown field, or a field value out of range.
        """
        try:
            _fields_model().model_validate(
                {k: v for k, v in fields.items() if k not in _HANDLES | _OPEN_OPTIONS}
            )
        except ValidationError as e:
            raise _settings_error(e) from None

    def model_post_init(self, _context: Any, /) -> None:
        """Check the BM25 location and create the two leg retrievers."""
        if self.bm25_path is not None:
            check_bm25_path(self.bm25_path, self.store.config)
        self._legs = {leg: _Leg(parent=self, leg=leg) for leg in LEGS}
        self._rerank = _Rerank(parent=self)
        self._reranker_seen = self.reranker
        if self.refresh_interval_seconds is not None:
            self._next_refresh = time.monotonic() + self.refresh_interval_seconds

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_store(
        cls,
        store: ChromaStore,
        embedding: Embeddings | None = None,
        *,
        bm25_path: str | os.PathLike[str] | None = None,
        bm25_params: BM25Params | None = None,
        cache: CacheSettings | bool = True,
        allow_embedding_mismatch: bool = False,
        **kwargs: Any,
    ) -> HybridRetriever:
        """Open a retriever on an existing store, loading or rebuilding the BM25 index.

        The BM25 index at ``bm25_path`` is used when it matches the collection (same write
        generation and document count, same settings); if it is missing, corrupt, stale or
        built with other settings, it is rebuilt from the documents stored in Chroma (nothing
        is embedded), saved, and the reason logged.

        The collection records the embedding model and precision that embedded it (written by
        its first write); ``embedding`` must be that model (see
        :meth:`ChromaStore.use_embedding`). An index that records none (built before 0.3) is
        accepted and records ``embedding`` with its next write.

        Args:
            store: the Chroma store (system of record).
            embedding: the embedding model; ``None`` means :class:`MiniLMEmbeddings`.
            bm25_path: where the BM25 files live; ``None`` keeps the index in memory only.
            bm25_params: BM25 settings; ``None`` keeps the saved ones (or the defaults).
            cache: cache settings, ``True`` for the defaults (10,000 fused results and 10,000
                query embeddings, no TTL) or ``False`` for none.
            allow_embedding_mismatch: accept an embedding other than the one the collection
                records (a warning is logged instead of the error).
            **kwargs: retriever fields (``k``, ``fetch_k``, ``rrf_k``, ``weights``, ...).

        Raises:
            EmbeddingMismatchError: the collection was embedded by another model or precision.
        """
        cls.check_fields(kwargs)
        if embedding is None:
            from langchain_hybrid.embeddings import MiniLMEmbeddings  # noqa: PLC0415

            embedding = MiniLMEmbeddings()
        store.use_embedding(
            embedding.inner if isinstance(embedding, CachedEmbeddings) else embedding,
            allow_mismatch=allow_embedding_mismatch,
        )
        settings = CacheSettings(enabled=cache) if isinstance(cache, bool) else cache
        if settings.enabled:
            kwargs.setdefault(
                "cache",
                LRUCache(
                    settings.max_entries,
                    ttl_seconds=settings.ttl_seconds,
                    max_bytes=settings.max_bytes,
                ),
            )
            if not isinstance(embedding, CachedEmbeddings):
                embedding = CachedEmbeddings(
                    embedding, max_entries=settings.max_entries, ttl_seconds=settings.ttl_seconds
                )
        path = Path(bm25_path) if bm25_path is not None else None
        if path is not None:
            check_bm25_path(path, store.config)
        index = HybridIndex.open(store, path, bm25_params, check_vectors=True)
        retriever = cls(store=store, bm25=index.bm25, embedding=embedding, bm25_path=path, **kwargs)
        retriever.index.feed = index.feed  # follow the change feed from where the open began
        return retriever

    @classmethod
    def from_config(
        cls,
        config: str | os.PathLike[str] | Mapping[str, Any] | HybridConfig | None = None,
        embedding: Embeddings | None = None,
        *,
        create_if_missing: bool = True,
        **kwargs: Any,
    ) -> HybridRetriever:
        """Open (or create) the retriever a configuration describes.

        Args:
            config: a YAML file, a dict of sections or a :class:`HybridConfig`; ``None`` reads
                ``LANGCHAIN_HYBRID_CONFIG`` or uses the defaults. Environment variables
                ``LANGCHAIN_HYBRID_<SECTION>__<KEY>`` override it.
            embedding: an embedding model; ``None`` builds the one the ``embedding`` section
                names (by default the offline :class:`MiniLMEmbeddings`).
            create_if_missing: create the collection if it does not exist (else raise
                :class:`IndexNotBuiltError`).
            **kwargs: retriever fields that win over the ``fusion`` section.

        Raises:
            ConfigError: invalid settings (the message names key, file and line).
            IndexNotBuiltError: the collection is missing and ``create_if_missing`` is off.
        """
        settings = load_config(config)
        fields = {**settings.retriever_fields(), **kwargs}
        cache = fields.pop("cache", settings.cache)  # the same arguments as from_store
        bm25_params = fields.pop("bm25_params", None) or settings.bm25.params()
        fields.setdefault("allow_embedding_mismatch", settings.embedding.allow_mismatch)
        cls.check_fields(fields)
        bm25_path = fields.pop("bm25_path", None) or settings.bm25_path()
        if bm25_path is not None:
            check_bm25_path(bm25_path, settings.store)
        if embedding is None:
            embedding = make_embedding(settings.embedding)
        return cls.from_store(
            ChromaStore(settings.store, create_if_missing=create_if_missing),
            embedding,
            bm25_path=bm25_path,
            bm25_params=bm25_params,
            cache=cache,
            **fields,
        )

    @classmethod
    def load(
        cls,
        persist_directory: str | os.PathLike[str],
        *,
        collection_name: str = "langchain_hybrid",
        embedding: Embeddings | None = None,
        bm25_params: BM25Params | None = None,
        **kwargs: Any,
    ) -> HybridRetriever:
        """Reopen a persisted retriever built by :meth:`from_documents`.

        Raises:
            IndexNotBuiltError: there is no such collection in ``persist_directory`` (nothing is
                created on disk).
        """
        cls.check_fields(kwargs)
        bm25_path = kwargs.pop("bm25_path", None) or default_bm25_path(
            persist_directory, collection_name
        )
        store_config = StoreConfig(
            mode="persistent", path=str(persist_directory), collection=collection_name
        )
        check_bm25_path(bm25_path, store_config)
        if not (Path(persist_directory) / "chroma.sqlite3").is_file():
            msg = (
                f"no index in {persist_directory}: build it first (HybridRetriever."
                "from_documents or `langchain-hybrid index`)"
            )
            raise IndexNotBuiltError(msg)
        store = ChromaStore(store_config, create_if_missing=False)
        return cls.from_store(
            store,
            embedding,
            bm25_path=bm25_path,
            bm25_params=bm25_params,
            **kwargs,
        )

    @classmethod
    def from_documents(
        cls,
        documents: Sequence[Document],
        embedding: Embeddings | None = None,
        *,
        persist_directory: str | os.PathLike[str] | None = None,
        collection_name: str = "langchain_hybrid",
        store_config: StoreConfig | None = None,
        bm25_params: BM25Params | None = None,
        ids: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> HybridRetriever:
        """Build (or extend) a retriever from documents.

        Args:
            documents: the documents to index (ids from ``ids``, else ``Document.id``, else
                new UUIDs).
            embedding: the embedding model; ``None`` means :class:`MiniLMEmbeddings`.
            persist_directory: on-disk location (Chroma and the BM25 files); ``None`` keeps
                everything in memory unless ``store_config`` says otherwise.
            collection_name: the Chroma collection.
            store_config: full store settings (overrides the two arguments above).
            bm25_params: BM25 settings.
            ids: explicit document ids.
            **kwargs: retriever fields (``k``, ``fetch_k``, ``rrf_k``, ``weights``, ...).
        """
        if store_config is None:
            mode: Literal["persistent", "ephemeral"] = (
                "persistent" if persist_directory is not None else "ephemeral"
            )
            store_config = StoreConfig(
                mode=mode, path=str(persist_directory or "./index"), collection=collection_name
            )
        cls.check_fields(kwargs)
        bm25_path = kwargs.pop("bm25_path", None)
        if bm25_path is None and store_config.mode == "persistent":
            bm25_path = default_bm25_path(store_config.path, store_config.collection)
        if bm25_path is not None:
            check_bm25_path(bm25_path, store_config)
        retriever = cls.from_store(
            ChromaStore(store_config),
            embedding,
            bm25_path=bm25_path,
            bm25_params=bm25_params,
            **kwargs,
        )
        if documents:
            retriever.add_documents(documents, ids=ids)
        return retriever

    @classmethod
    def from_texts(
        cls,
        texts: Sequence[str],
        embedding: Embeddings | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        *,
        ids: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> HybridRetriever:
        """Build a retriever from texts (see :meth:`from_documents` for the arguments)."""
        if not _is_sequence(texts) or not all(isinstance(t, str) for t in texts):
            msg = "from_texts takes a sequence of strings"
            raise InvalidDocumentsError(msg)
        if metadatas is not None and not _is_sequence(metadatas):
            msg = f"metadatas must be a sequence, got {type(metadatas).__name__}"
            raise InvalidDocumentsError(msg)
        if metadatas is not None and len(metadatas) != len(texts):
            msg = f"got {len(texts)} texts and {len(metadatas)} metadatas"
            raise InvalidDocumentsError(msg)
        docs = [
            Document(page_content=t, metadata=dict(m or {}))
            for t, m in zip(texts, metadatas or [None] * len(texts), strict=True)
        ]
        return cls.from_documents(docs, embedding, ids=ids, **kwargs)

    # ------------------------------------------------------------------ writes
    def add_documents(
        self,
        documents: Sequence[Document],
        *,
        ids: Sequence[str] | None = None,
        batch_size: int | None = None,
        progress: IngestProgress | None = None,
    ) -> list[str]:
        """Add or replace documents in both legs; returns their ids.

        Each text is embedded exactly once. An id already present is replaced (text, vector
        and metadata) in both legs. Up to 511 documents are one write. From
        :data:`~langchain_hybrid.ingest.PIPELINE_MIN_DOCUMENTS` (512) documents, or whenever
        ``batch_size`` is given, they go through the ingest pipeline
        (:mod:`langchain_hybrid.ingest`): batches of ``batch_size`` (default 128), each one
        write, the next batch embedded while one is written, the BM25 files saved once at the
        end, and progress shown (one line on a terminal, else ``INFO`` log records of
        ``langchain_hybrid.ingest``).

        Args:
            documents: the documents.
            ids: their ids (default: ``Document.id``, else a deterministic id).
            batch_size: documents per pipeline batch; given, the pipeline is used at any size.
            progress: the progress display of a pipeline run (default: one for these
                documents, counting the distinct ``metadata["source"]`` values as files).

        Raises:
            InvalidDocumentsError: inconsistent input; nothing is written.
            BatchWriteError: a Chroma batch failed, or (pipeline) the embedding failed after
                some batches were written; ``written_ids`` are in both legs, ``failed_ids`` in
                neither.
            WriterLockError: another process is writing to this embedded index.
        """
        ids, texts, metadatas = self._checked_documents(documents, ids)
        if not ids:
            return []
        if batch_size is None and len(ids) < PIPELINE_MIN_DOCUMENTS:
            embeddings = self.embedding.embed_documents(texts)
            self._write(ids, texts, embeddings, metadatas)
            return ids
        if progress is None:
            sources = {m.get("source") for m in metadatas if m and m.get("source") is not None}
            progress = IngestProgress(len(ids), files=len(sources) or None)
        with self.index.deferred_save(), progress:
            run_pipeline(
                ids,
                texts,
                metadatas,
                embed=self.embedding.embed_documents,
                write=self._write,
                batch_size=batch_size or DEFAULT_BATCH_SIZE,
                progress=progress,
            )
        return ids

    async def aadd_documents(
        self, documents: Sequence[Document], *, ids: Sequence[str] | None = None
    ) -> list[str]:
        """:meth:`add_documents` for async callers: nothing blocking runs on the event loop.

        The texts are embedded with the model's ``aembed_documents`` and both legs are written
        in a worker thread (the writer lock, Chroma's write, the BM25 save).
        """
        ids, texts, metadatas = self._checked_documents(documents, ids)
        if not ids:
            return []
        embeddings = await self.embedding.aembed_documents(texts)
        await asyncio.get_running_loop().run_in_executor(
            _executor(), self._write, ids, texts, embeddings, metadatas
        )
        return ids

    def _checked_documents(
        self, documents: Sequence[Document], ids: Sequence[str] | None
    ) -> tuple[list[str], list[str], list[dict[str, Any] | None]]:
        """The ids, texts and metadatas of a write, validated (nothing is written on error)."""
        if not _is_sequence(documents):
            msg = f"add_documents takes a sequence of Documents, got {type(documents).__name__}"
            raise InvalidDocumentsError(msg)
        docs = list(documents)
        if not all(isinstance(d, Document) for d in docs):
            msg = "add_documents takes a sequence of langchain_core Document objects"
            raise InvalidDocumentsError(msg)
        if ids is None:
            ids = document_ids(docs)
        elif not _is_sequence(ids):
            msg = f"ids must be a sequence of strings, got {type(ids).__name__}"
            raise InvalidDocumentsError(msg)
        elif len(ids) != len(docs):
            msg = f"got {len(docs)} documents and {len(ids)} ids"
            raise InvalidDocumentsError(msg)
        ids = list(ids)
        check_ids(ids)
        texts = [d.page_content for d in docs]
        for doc_id, text in zip(ids, texts, strict=True):
            if not isinstance(text, str) or not is_utf8(text):
                msg = f"page_content of {doc_id!r} must be valid Unicode text"
                raise InvalidDocumentsError(msg)
        metadatas = [
            validate_metadata(d.metadata, f"document {i!r}") for d, i in zip(docs, ids, strict=True)
        ]
        return ids, texts, metadatas

    def _write(
        self,
        ids: list[str],
        texts: list[str],
        embeddings: list[list[float]],
        metadatas: list[dict[str, Any] | None],
    ) -> None:
        _check_embeddings(embeddings, len(texts))
        try:
            self.index.add(ids, texts, embeddings, metadatas)
        finally:
            self._invalidate()

    def delete(self, ids: Sequence[str]) -> None:
        """Delete documents by id from both legs; unknown ids are ignored.

        Raises:
            InvalidDocumentsError: ``ids`` is not a sequence of non-empty strings.
        """
        self._delete(_checked_ids(ids))

    async def adelete(self, ids: Sequence[str]) -> None:
        """:meth:`delete` for async callers: both legs are written in a worker thread."""
        checked = _checked_ids(ids)
        await asyncio.get_running_loop().run_in_executor(_executor(), self._delete, checked)

    def _delete(self, ids: list[str]) -> None:
        if not ids:
            return
        try:
            self.index.delete(ids)
        finally:
            self._invalidate()

    def get_by_ids(self, ids: Sequence[str]) -> list[Document]:
        """Documents stored under ``ids`` (unknown ids are left out), from Chroma."""
        if not _is_sequence(ids) or not all(isinstance(i, str) and i for i in ids):
            msg = "get_by_ids takes a sequence of non-empty id strings"
            raise InvalidDocumentsError(msg)
        ids = list(dict.fromkeys(ids))  # Chroma rejects repeated ids in one get
        if not ids:
            return []
        return [
            Document(id=d.id, page_content=d.text, metadata=d.metadata) for d in self.index.get(ids)
        ]

    def _invalidate(self) -> None:
        """Drop cached results."""
        if self.cache is not None:
            self.cache.bump()

    def refresh(self) -> bool:
        """Pick up writes made to the collection by other processes.

        Compares the collection's write generation and count with the BM25 index's; if they
        differ, reloads (or rebuilds) the BM25 index and clears the result cache. Queries call it
        every ``refresh_interval_seconds``. Skipped while this process is writing.

        Returns:
            Whether anything changed.
        """
        interval = self.refresh_interval_seconds
        if interval is not None:
            self._next_refresh = time.monotonic() + interval
        changed = self.index.refresh()
        if interval is not None and self.index.writes_under_way():
            # another replica's write is under way: its completion follows within milliseconds
            self._next_refresh = time.monotonic() + min(interval, _UNDER_WAY_RECHECK_SECONDS)
        if changed:
            self._invalidate()
        return changed

    def _refresh_due(self) -> bool:
        """Whether a query should :meth:`refresh` first.

        Yes if another retriever of this process wrote to the store, or if
        ``refresh_interval_seconds`` have passed since the last check.
        """
        private = self._private_attrs()
        if private["_index"].local_writes_pending():
            return True
        return (
            self.refresh_interval_seconds is not None
            and time.monotonic() >= private["_next_refresh"]
        )

    def _maybe_refresh(self) -> None:
        if self._refresh_due():
            try:
                self.refresh()
            except HybridRetrieverError as e:  # the query itself reports store trouble
                logger.debug("refresh skipped: %s", e)

    @contextlib.contextmanager
    def deferred_save(self) -> Iterator[None]:
        """Save the BM25 files once, when the block ends, instead of after every write.

        For bulk loading in many ``add_documents`` calls. Writes from other threads wait until
        the block ends. If the process dies inside the block, the saved BM25 index is older
        than the collection and is rebuilt from Chroma on the next open: nothing is lost.
        """
        with self.index.deferred_save():
            yield

    # ------------------------------------------------------------------ tracing
    def _get_ls_params(self, **kwargs: Any) -> LangSmithRetrieverParams:
        """LangSmith trace metadata: this retriever, Chroma, and the embedding model."""
        params = super()._get_ls_params(**kwargs)
        model = self.embedding
        while isinstance(model, CachedEmbeddings):  # name the model, not the cache around it
            model = model.inner
        params["ls_vector_store_provider"] = "chroma"
        params["ls_embedding_provider"] = type(model).__name__
        name = getattr(model, "model_name", None) or getattr(model, "model", None)
        if isinstance(model, MiniLMEmbeddings):
            name = "all-MiniLM-L6-v2"
        params["ls_embedding_model"] = name if isinstance(name, str) else None
        return params

    # ------------------------------------------------------------------ search
    def _private_attrs(self) -> dict[str, Any]:
        """Pydantic's dict of the private attributes, to read them without its ``__getattr__``.

        ``self._x`` on a pydantic model goes through ``BaseModel.__getattr__``, which is slow;
        the query path reads a few private attributes per call, so it reads them here.
        """
        return cast("dict[str, Any]", self.__pydantic_private__)

    def _params(self, query: object, kwargs: Mapping[str, Any]) -> SearchParams:
        return self._keyed_params(query, kwargs)[0]

    def _keyed_params(self, query: object, kwargs: Mapping[str, Any]) -> tuple[SearchParams, str]:
        """The validated parameters of a call and their cache key."""
        if not kwargs and isinstance(query, str) and query.strip():
            # the common call: the defaults, validated once while the fields stay the same
            current = (
                self.k,
                self.fetch_k,
                self.weights,
                self.fusion,
                self.rrf_k,
                self.rerank_k,
                self.group_by,
                self.reranker is None,
                self.adaptive,
            )
            defaults = self._private_attrs()["_defaults"]
            if defaults is None or defaults[0] != current:
                validated = self._validate(query, {})
                defaults = self._defaults = (current, validated[1:], validated.key_prefix())
            return _SEARCH_PARAMS_NEW(SearchParams, (query, *defaults[1])), defaults[2] + query
        params = self._validate(query, kwargs)
        return params, params.cache_key()

    def _validate(self, query: object, kwargs: Mapping[str, Any]) -> SearchParams:
        unknown = set(kwargs) - _CALL_KWARGS
        if unknown:
            msg = f"unknown search arguments {sorted(unknown)}; accepted: {sorted(_CALL_KWARGS)}"
            raise InvalidQueryError(msg)
        if not isinstance(query, str):
            msg = f"query must be a string, got {type(query).__name__}"
            raise InvalidQueryError(msg)
        if not query.strip():
            msg = "query must not be empty or whitespace"
            raise InvalidQueryError(msg)
        if not is_utf8(query):
            msg = "query is not valid Unicode text (it holds a lone surrogate)"
            raise InvalidQueryError(msg)
        k = check_count("k", kwargs.get("k", self.k))
        fetch_k = check_count("fetch_k", kwargs.get("fetch_k", self.fetch_k))
        weights = check_weights(kwargs.get("weights", self.weights), len(LEGS))
        fusion = kwargs.get("fusion", self.fusion)
        if not isinstance(fusion, str) or fusion not in FUSION_METHODS:
            msg = f"unknown fusion method {fusion!r}; expected one of {sorted(FUSION_METHODS)}"
            raise InvalidQueryError(msg)
        rrf_k = check_rrf_k(kwargs.get("rrf_k", self.rrf_k))
        where = kwargs.get("filter")
        node = parse_filter(where)
        # without a reranker the candidates are the k documents returned
        rerank_k = check_count("rerank_k", kwargs.get("rerank_k", self.rerank_k))
        depth = k if self.reranker is None else max(k, rerank_k)
        group_by = _checked_group_by(kwargs.get("group_by", self.group_by))
        return SearchParams(
            query,
            k,
            max(fetch_k, depth),
            (weights[0], weights[1]),
            fusion,
            rrf_k,
            chroma_where(where) if node is not None and isinstance(where, Mapping) else None,
            node,
            depth,
            group_by,
            self.adaptive,
        )

    def search_leg(self, leg: Literal["bm25", "vector"], query: str, **kwargs: Any) -> list[LegHit]:
        """Search one leg alone (diagnostics, evaluation, the CLI's ``--mode``), best first.

        Takes the same per-call arguments as ``invoke``; ``k`` is the number of hits returned,
        each with its text and metadata (:meth:`rank_leg`: ids and scores only).

        Raises:
            InvalidQueryError: bad query or arguments.
            InvalidFilterError: bad filter.
        """
        _check_leg(leg)
        params = self._params(query, kwargs)
        hits = self._rank(leg, params._replace(fetch_k=params.k))
        found = self._hydrate([h.id for h in hits])
        return [
            h._replace(text=found[h.id][0], metadata=found[h.id][1]) if h.id in found else h
            for h in hits
        ]

    def rank_leg(
        self,
        leg: Literal["bm25", "vector"],
        query: str,
        *,
        fetch_k: int | None = None,
        filter: Mapping[str, Any] | None = None,  # noqa: A002 - the per-call argument's name
        embedding: Sequence[float] | None = None,
    ) -> LegHits:
        """One leg's ranking as a hybrid search fuses it: ids and scores, best first, no texts.

        For evaluation and tuning, which fuse the legs offline: :func:`leg_run` turns the
        result into the input of :func:`langchain_hybrid.fusion.fuse`. The BM25 leg's list
        carries the statistics of all its scores (:attr:`LegHits.population`).

        ```python
        from langchain_hybrid.retrievers import LEGS, leg_run

        query = "router error E-4471"
        vector = retriever.embedding.embed_query(query)  # embedded once for every depth
        runs = [
            leg_run(leg, retriever.rank_leg(leg, query, fetch_k=100, embedding=vector), 100)
            for leg in LEGS
        ]
        ```

        Args:
            leg: ``"bm25"`` or ``"vector"``.
            query: the query text.
            fetch_k: how many hits (the candidate depth); ``None``: the depth a search with
                the retriever's settings fetches (``fetch_k``, at least ``k`` or ``rerank_k``).
            filter: a ``where`` filter, as for ``invoke``.
            embedding: the query's vector, for a caller that embedded it already (the vector
                leg then does not embed the query; the BM25 leg ignores it).

        Raises:
            InvalidQueryError: bad query, leg or ``fetch_k``.
            InvalidFilterError: bad filter.
        """
        _check_leg(leg)
        params = self._params(query, {} if filter is None else {"filter": filter})
        if fetch_k is not None:
            params = params._replace(fetch_k=check_count("fetch_k", fetch_k))
        return self._rank(leg, params, embedding)

    def leg_search(self, leg: str, params: SearchParams) -> list[LegHit]:
        """Deprecated since 0.3 (removed in 0.4): use :meth:`rank_leg`."""
        warnings.warn(
            "HybridRetriever.leg_search is deprecated: use rank_leg(leg, query, fetch_k=...)",
            DeprecationWarning,
            stacklevel=2,
        )
        _check_leg(leg)
        return self._rank(leg, params)

    def vector_leg_search(self, embedding: Sequence[float], params: SearchParams) -> list[LegHit]:
        """Deprecated since 0.3 (removed in 0.4): use :meth:`rank_leg` with ``embedding=``."""
        warnings.warn(
            "HybridRetriever.vector_leg_search is deprecated: use "
            "rank_leg('vector', query, fetch_k=..., embedding=...)",
            DeprecationWarning,
            stacklevel=2,
        )
        return self._rank("vector", params, embedding)

    def _rank(
        self, leg: str, params: SearchParams, embedding: Sequence[float] | None = None
    ) -> LegHits:
        """One leg's top ``params.fetch_k``: ids and scores (text ``None``), best first.

        The one way a leg searches, watched or not (the child run of :class:`_Leg` calls it
        too). Texts are not read here: fusion keeps at most ``rerank_k`` of the ``fetch_k``
        hits, and only those are read (:meth:`_found`). The vector leg embeds the query
        unless given its ``embedding``.
        """
        if leg == "bm25":
            ranked, population = self.bm25.rank(params.query, params.fetch_k, params.node)
            hits = LegHits([LegHit(doc_id, score, None, {}) for doc_id, score, _ in ranked])
            hits.population = population
            return hits
        if embedding is None:
            embedding = self.embedding.embed_query(params.query)
        found = self.store.query(embedding, params.fetch_k, params.where, include_documents=False)
        hits = LegHits([LegHit(h.id, h.score, None, {}) for h in found])
        hits.query_vector = embedding
        return hits

    async def _arank(
        self, leg: str, params: SearchParams, embedding: Sequence[float] | None = None
    ) -> LegHits:
        """:meth:`_rank` on the event loop: ``aembed_query`` unless given, then a thread."""
        if leg == "vector" and embedding is None:
            embedding = await self.embedding.aembed_query(params.query)
        return await asyncio.get_running_loop().run_in_executor(
            _executor(), self._rank, leg, params, embedding
        )

    def _hydrate(
        self, ids: Sequence[str], failures: list[StoreError] | None = None
    ) -> dict[str, tuple[str, dict[str, Any]]]:
        """Text and metadata of ``ids``: from the BM25 index's files, else from Chroma.

        The BM25 index keeps the texts and metadata in memory-mapped files (read per document,
        not held in the process), so answers need no Chroma round trip, and BM25-only answers
        still have their texts while Chroma is down. Ids it does not hold (a vector hit written
        by another process, or by this one a moment ago, before BM25 has it) are read from
        Chroma in one ``get``. If that fails and ``failures`` is given, the error is appended
        to it and those ids are left out (the vector leg's hits that cannot be read: the
        answer is degraded); else it is raised.
        """
        found: dict[str, tuple[str, dict[str, Any]]] = {}
        if not ids:
            return found
        try:
            for hit in self.bm25.get(ids):
                if hit is not None:
                    found[hit.id] = (hit.text, hit.metadata)
        except Exception as e:  # noqa: BLE001 - a broken lexical index: Chroma has everything
            logger.debug("BM25 copy unavailable for texts: %s", e)
        missing = [i for i in ids if i not in found]
        if missing:
            try:
                for doc in self.store.get(missing):
                    found[doc.id] = (doc.text, doc.metadata)
            except StoreError as e:
                if failures is None:
                    raise
                logger.warning("texts of %d vector hits unreadable, left out: %s", len(missing), e)
                failures.append(e)
        return found

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        params, key = self._keyed_params(query, kwargs)
        self._maybe_refresh()
        self._note_reranker()
        if self.cache is None:
            return self._search(params, run_manager)
        cached, hit = self.cache.fetch(
            key, lambda: _templates(self._search(params, run_manager)), keep=_complete_answer
        )
        if run_manager.handlers:
            run_manager.get_child().on_custom_event(
                CACHE_EVENT, {"hit": hit}, run_id=run_manager.run_id
            )
        return [t.build() for t in cached]

    def _note_reranker(self) -> None:
        """Clear cached answers when the reranker was replaced (they are its order)."""
        reranker = self.reranker
        if reranker is not self._private_attrs()["_reranker_seen"]:
            self._reranker_seen = reranker
            self._invalidate()

    def _search(
        self, params: SearchParams, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        """The query pipeline: legs, fusion, grouping (deeper while short), rerank, cut to k."""
        params, candidates = self._candidates(params, run_manager)
        return self._reranked(params, candidates, run_manager)

    def _candidates(
        self,
        params: SearchParams,
        run_manager: CallbackManagerForRetrieverRun,
        embedding: Sequence[float] | BaseException | None = None,
        outcomes: dict[str, LegHits | BaseException] | None = None,
    ) -> tuple[SearchParams, list[Document]]:
        """Legs and fusion, searched deeper while grouping is short; the parameters last used.

        The query is embedded once: a deeper search reuses the vector the first one used.
        ``embedding``: see :meth:`_run_legs`; ``outcomes``: the first search's legs, if run.
        """
        if outcomes is None:
            outcomes = self._run_legs(params, run_manager, embedding)
        candidates, short = self._combine(params, outcomes)
        for _ in range(_DEEPER_ROUNDS if short else 0):
            params = _deeper(params)
            vector = _query_vector(outcomes)
            outcomes = self._run_legs(params, run_manager, embedding if vector is None else vector)
            candidates, short = self._combine(params, outcomes)
            if not short:
                break
        return params, candidates

    def _run_legs(
        self,
        params: SearchParams,
        run_manager: CallbackManagerForRetrieverRun,
        embedding: Sequence[float] | BaseException | None = None,
    ) -> dict[str, LegHits | BaseException]:
        """Each active leg's hits (or its error): the vector leg in a pool thread, BM25 here.

        ``embedding``: the query's vector if already known, or the error embedding it raised
        (the vector leg's outcome); ``None``: the vector leg embeds the query.

        The two legs overlap because the vector leg spends most of its time outside Python's
        GIL: in Chroma's Rust core (in-process), on the network (``chroma run``) or in the
        embedding model, while the BM25 leg is Python and numpy. The calling thread starts
        its BM25 leg once the vector leg's thread has begun (or after
        ``_LEG_START_WAIT_SECONDS``), so the vector leg takes the GIL first and gives it up as
        it enters Chroma or the model; started the other way, the pool thread waited for the
        GIL while BM25 ran, and the legs measured no faster than one after the other.
        """
        active = params.active_legs()
        if len(active) == 1:
            return {active[0]: self._run_leg(active[0], params, run_manager, embedding)}
        started = threading.Event()
        vector = partial(self._run_leg, "vector", params, run_manager, embedding)
        future = _leg_executor().submit(_started, started, vector)
        started.wait(_LEG_START_WAIT_SECONDS)
        bm25 = self._run_leg("bm25", params, run_manager)
        return {"bm25": bm25, "vector": future.result()}

    def _run_leg(
        self,
        leg: str,
        params: SearchParams,
        run_manager: CallbackManagerForRetrieverRun,
        embedding: Sequence[float] | BaseException | None = None,
    ) -> LegHits | BaseException:
        """One leg's hits (:meth:`_rank`), or its error (reported by :meth:`_combine`).

        With a callback handler attached the leg runs as its child run (:class:`_Leg`), which
        hands back the hits it ranked; without one that bookkeeping is skipped.
        """
        if isinstance(embedding, BaseException):
            return embedding
        try:
            if not run_manager.handlers:
                return self._rank(leg, params, embedding)
            ranked: list[LegHits] = []
            self._legs[leg].invoke(
                params.query,
                config={"callbacks": run_manager.get_child(leg), "run_name": leg},
                params=params,
                ranked=ranked,
                embedding=embedding,
            )
            return ranked[0]
        except Exception as e:  # noqa: BLE001 - one leg failing is reported in _combine
            return e

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        params, key = self._keyed_params(query, kwargs)
        if self._refresh_due():
            await asyncio.get_running_loop().run_in_executor(_executor(), self._maybe_refresh)
        self._note_reranker()
        if self.cache is None:
            return await self._asearch(params, run_manager)

        async def compute() -> tuple[DocumentTemplate, ...]:
            return _templates(await self._asearch(params, run_manager))

        cached, hit = await self.cache.afetch(key, compute, keep=_complete_answer)
        if run_manager.handlers:
            await run_manager.get_child().on_custom_event(
                CACHE_EVENT, {"hit": hit}, run_id=run_manager.run_id
            )
        return [t.build() for t in cached]

    async def _asearch(
        self, params: SearchParams, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        """:meth:`_search` on the event loop: ``aembed_query``, the rest in worker threads.

        Unwatched, the legs and fusion run in one worker thread (each hand-off to a thread
        cost about a quarter of a millisecond here, 2 cores): the BM25 leg starts in the pool
        before the query is embedded, so the two overlap, and the vector leg and fusion follow
        in one thread (:meth:`_candidates_after`). An embedding whose ``aembed_query`` is
        LangChain's default (``embed_query`` in a thread) is embedded in that thread instead,
        as in :meth:`_search`. Watched, each leg is a child run (:meth:`_acandidates_watched`).
        """
        if run_manager.handlers:
            params, candidates = await self._acandidates_watched(params, run_manager)
            return await self._areranked(params, candidates, run_manager)
        loop = asyncio.get_running_loop()
        quiet = CallbackManagerForRetrieverRun.get_noop_manager()
        if "vector" not in params.active_legs() or _embeds_in_a_thread(self.embedding):
            params, candidates = await loop.run_in_executor(
                _executor(), self._candidates, params, quiet
            )
            return await self._areranked(params, candidates, run_manager)
        bm25 = (
            _leg_executor().submit(self._run_leg, "bm25", params, quiet)
            if "bm25" in params.active_legs()
            else None
        )
        embedding: Sequence[float] | BaseException
        try:
            embedding = await self.embedding.aembed_query(params.query)
        except Exception as e:  # noqa: BLE001 - the vector leg's failure, reported in _combine
            embedding = e
        params, candidates = await loop.run_in_executor(
            _executor(), self._candidates_after, params, quiet, embedding, bm25
        )
        return await self._areranked(params, candidates, run_manager)

    def _candidates_after(
        self,
        params: SearchParams,
        run_manager: CallbackManagerForRetrieverRun,
        embedding: Sequence[float] | BaseException,
        bm25: Future[LegHits | BaseException] | None,
    ) -> tuple[SearchParams, list[Document]]:
        """:meth:`_candidates` once the query is embedded and the BM25 leg already started."""
        outcomes = None
        if bm25 is not None:
            outcomes = {
                "vector": self._run_leg("vector", params, run_manager, embedding),
                "bm25": bm25.result(),
            }
        return self._candidates(params, run_manager, embedding, outcomes)

    async def _acandidates_watched(
        self, params: SearchParams, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> tuple[SearchParams, list[Document]]:
        """:meth:`_candidates` with each leg a child run of ``run_manager``."""
        loop = asyncio.get_running_loop()
        outcomes = await self._arun_legs(params, run_manager)
        candidates, short = await loop.run_in_executor(_executor(), self._combine, params, outcomes)
        for _ in range(_DEEPER_ROUNDS if short else 0):
            params = _deeper(params)
            outcomes = await self._arun_legs(params, run_manager, _query_vector(outcomes))
            candidates, short = await loop.run_in_executor(
                _executor(), self._combine, params, outcomes
            )
            if not short:
                break
        return params, candidates

    async def _arun_legs(
        self,
        params: SearchParams,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        embedding: Sequence[float] | None = None,
    ) -> dict[str, LegHits | BaseException]:
        """:meth:`_run_legs` on the event loop: the legs run concurrently."""
        active = params.active_legs()
        results = await asyncio.gather(
            *(self._arun_leg(leg, params, run_manager, embedding) for leg in active),
            return_exceptions=True,
        )
        outcomes: dict[str, LegHits | BaseException] = {}
        for leg, result in zip(active, results, strict=True):
            if isinstance(result, asyncio.CancelledError):
                raise result
            outcomes[leg] = result
        return outcomes

    async def _arun_leg(
        self,
        leg: str,
        params: SearchParams,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        embedding: Sequence[float] | None = None,
    ) -> LegHits:
        """:meth:`_run_leg` for the event loop (:meth:`_arank`); errors go to ``gather``."""
        if not run_manager.handlers:
            return await self._arank(leg, params, embedding)
        ranked: list[LegHits] = []
        await self._legs[leg].ainvoke(
            params.query,
            config={"callbacks": run_manager.get_child(leg), "run_name": leg},
            params=params,
            ranked=ranked,
            embedding=embedding,
        )
        return ranked[0]

    def _combine(
        self, params: SearchParams, outcomes: Mapping[str, LegHits | BaseException]
    ) -> tuple[list[Document], bool]:
        """Fuse the legs' hits, group, and annotate the top ``rerank_k`` (in fused order).

        Returns:
            The candidates, and whether grouping found fewer than ``rerank_k`` groups while a
            leg was cut at ``fetch_k`` (a deeper search may find more).
        """
        runs, failed = _usable_runs(outcomes, self.on_leg_error)
        legs = [leg_run(leg, runs.get(leg, []), params.fetch_k) for leg in LEGS]
        weights = leg_weights(params.adaptive, params.query, params.weights, legs)
        # checked where they entered (_validate); adaptive weights are valid by construction
        # grouping reads down the fused order until it has rerank_k groups; else rerank_k do
        limit = params.rerank_k if params.group_by is None else None
        ranked = FUSION_METHODS[params.fusion](legs, weights, rrf_k=params.rrf_k, limit=limit)
        table = _LegTable(runs)
        short = False
        # the vector leg answered but Chroma then failed to give texts only it had: degrade
        unread: list[StoreError] | None = [] if self.on_leg_error == "degrade" else None
        if params.group_by is None:
            found = self._found(ranked, unread)
        else:
            found = self._found_groups(ranked, params.group_by, params.rerank_k, unread)
            short = len(found) < params.rerank_k and _some_leg_cut(runs, params.fetch_k)
        if unread and "vector" not in failed:
            failed = {**failed, "vector": unread[0]}
            if len(failed) == len(LEGS):  # BM25 had failed too: nothing usable remains
                _raise_leg_failure(failed, every=True)
        degraded = ",".join(failed) if failed else None
        candidates = [table.document(hit, degraded) for hit in found[: params.rerank_k]]
        return candidates, short

    def _found(
        self, ranked: Sequence[Fused], failures: list[StoreError] | None = None
    ) -> list[_Found]:
        """The fused documents with their text and metadata (documents deleted since: left out).

        The only place a search reads texts: the legs return ids and scores (:meth:`_rank`).
        ``failures``: see :meth:`_hydrate`.
        """
        hydrated = self._hydrate([fused.id for fused in ranked], failures)
        return [_Found(fused, *hydrated[fused.id]) for fused in ranked if fused.id in hydrated]

    def _found_groups(
        self,
        ranked: Sequence[Fused],
        key: str,
        want: int,
        failures: list[StoreError] | None = None,
    ) -> list[_Found]:
        """Each group's best fused document, in fused order, until ``want`` groups are found.

        Read in batches down the fused order (``want`` documents, then twice as many each time),
        so the texts of candidates past the ``want``-th group are not read. All groups when
        there are fewer than ``want``.
        """
        found: list[_Found] = []
        seen: set[tuple[str, Any]] = set()
        start, size = 0, want
        while start < len(ranked) and len(found) < want:
            batch = self._found(ranked[start : start + size], failures)
            found += _best_per_group(batch, key, seen)
            start, size = start + size, size * 2
        return found

    def _reranked(
        self,
        params: SearchParams,
        candidates: list[Document],
        run_manager: CallbackManagerForRetrieverRun,
    ) -> list[Document]:
        """The reranker's order of ``candidates`` cut to ``k``; the fused order if it fails."""
        reranker = self.reranker
        if reranker is None or not candidates:
            return candidates[: params.k]
        given = _rerank_input(candidates)
        try:
            if run_manager.handlers:
                returned = self._private_attrs()["_rerank"].invoke(
                    params.query,
                    config={"callbacks": run_manager.get_child("rerank"), "run_name": "rerank"},
                    documents=given,
                )
            else:
                returned = reranker.compress_documents(given, params.query)
            return _reordered(returned, candidates)[: params.k]
        except Exception as e:  # noqa: BLE001 - a failed reranker is reported, like a leg
            return self._rerank_failed(e, candidates[: params.k])

    async def _areranked(
        self,
        params: SearchParams,
        candidates: list[Document],
        run_manager: AsyncCallbackManagerForRetrieverRun,
    ) -> list[Document]:
        """:meth:`_reranked` with the reranker's ``acompress_documents``."""
        reranker = self.reranker
        if reranker is None or not candidates:
            return candidates[: params.k]
        given = _rerank_input(candidates)
        try:
            if run_manager.handlers:
                returned = await self._private_attrs()["_rerank"].ainvoke(
                    params.query,
                    config={"callbacks": run_manager.get_child("rerank"), "run_name": "rerank"},
                    documents=given,
                )
            else:
                returned = await reranker.acompress_documents(given, params.query)
            return _reordered(returned, candidates)[: params.k]
        except Exception as e:  # noqa: BLE001 - a failed reranker is reported, like a leg
            return self._rerank_failed(e, candidates[: params.k])

    def _rerank_failed(self, error: Exception, fused: list[Document]) -> list[Document]:
        """The fused order marked ``degraded`` (or :class:`RerankError` under ``"raise"``)."""
        if self.on_leg_error == "raise":
            msg = f"the reranker failed: {type(error).__name__}: {error}"
            raise RerankError(msg) from error
        logger.warning("reranker failed, returning the fused order: %s", error)
        for doc in fused:
            before = doc.metadata.get("degraded")
            doc.metadata["degraded"] = "rerank" if before is None else f"{before},rerank"
        return fused


class _Found(NamedTuple):
    """A fused document with its text and (stored, not yet copied) metadata."""

    fused: Fused
    text: str
    metadata: dict[str, Any]


class _LegTable:
    """Where each leg ranked each document, to annotate fused results."""

    __slots__ = ("positions",)

    def __init__(self, runs: Mapping[str, Sequence[LegHit]]) -> None:
        self.positions = {
            leg: {hit.id: (rank, hit) for rank, hit in enumerate(runs[leg], start=1)}
            for leg in LEGS
            if leg in runs
        }

    def document(self, found: _Found, degraded: str | None) -> Document:
        """The result document: its own metadata, the fused score, each leg's rank and score."""
        metadata = dict(found.metadata)
        metadata["hybrid_score"] = found.fused.score
        for leg in LEGS:
            hit = self.positions.get(leg, {}).get(found.fused.id)
            metadata[f"{leg}_rank"] = hit[0] if hit else None
            metadata[f"{leg}_score"] = hit[1].score if hit else None
        if degraded:
            metadata["degraded"] = degraded
        return Document(id=found.fused.id, page_content=found.text, metadata=metadata)


def _usable_runs(
    outcomes: Mapping[str, LegHits | BaseException], on_leg_error: str
) -> tuple[dict[str, LegHits], dict[str, BaseException]]:
    """The legs' hits and the failed legs' errors; raises when the answer cannot be degraded."""
    failed = {leg: r for leg, r in outcomes.items() if isinstance(r, BaseException)}
    _raise_if_forked(failed)
    if failed and (on_leg_error == "raise" or len(failed) == len(outcomes)):
        _raise_leg_failure(failed, every=len(failed) == len(outcomes))
    for leg, error in failed.items():
        logger.warning("%s leg failed, returning the other leg's results: %s", leg, error)
    runs = {leg: r for leg, r in outcomes.items() if not isinstance(r, BaseException)}
    return runs, failed


def _raise_leg_failure(failed: Mapping[str, BaseException], *, every: bool) -> None:
    """Raise the first failed leg's error, or :class:`AllLegsFailedError` naming them all."""
    error = next(iter(failed.values()))
    if isinstance(error, InvalidQueryError) or not every:
        raise error
    msg = "; ".join(f"{name} leg: {type(e).__name__}: {e}" for name, e in failed.items())
    raise AllLegsFailedError(msg) from error


def _best_per_group(found: Iterable[_Found], key: str, seen: set[tuple[str, Any]]) -> list[_Found]:
    """Each group's first (best fused) document; a document without ``key`` is its own group.

    ``seen`` holds the groups already kept (by earlier batches); the new ones are added to it.
    """
    kept = []
    for item in found:
        if key in item.metadata:
            value = item.metadata[key]
            # the type is part of the group (1, 1.0 and True are three groups), lists by value
            group = (type(value).__name__, tuple(value) if isinstance(value, list) else value)
            if group in seen:
                continue
            seen.add(group)
        kept.append(item)
    return kept


def _some_leg_cut(runs: Mapping[str, Sequence[LegHit]], fetch_k: int) -> bool:
    """Whether a leg returned all ``fetch_k`` hits asked for (so it may hold more)."""
    return fetch_k < MAX_K and any(len(hits) >= fetch_k for hits in runs.values())


def _query_vector(outcomes: Mapping[str, LegHits | BaseException]) -> Sequence[float] | None:
    """The query vector the vector leg searched with (``None``: it failed or did not run)."""
    vector = outcomes.get("vector")
    return vector.query_vector if isinstance(vector, LegHits) else None


def _embeds_in_a_thread(embedding: Embeddings) -> bool:
    """Whether ``aembed_query`` is LangChain's default: ``embed_query`` in a worker thread."""
    return type(embedding).aembed_query is Embeddings.aembed_query


def _deeper(params: SearchParams) -> SearchParams:
    return params._replace(fetch_k=min(MAX_K, params.fetch_k * _DEEPER_FACTOR))


def _rerank_input(candidates: Sequence[Document]) -> list[Document]:
    """Copies for the reranker, with ``fused_rank`` (a failure leaves the candidates intact)."""
    for rank, doc in enumerate(candidates, start=1):
        doc.metadata["fused_rank"] = rank
    return [
        Document(id=doc.id, page_content=doc.page_content, metadata=dict(doc.metadata))
        for doc in candidates
    ]


_FUSION_KEYS = (
    "fused_rank",
    "hybrid_score",
    "bm25_rank",
    "bm25_score",
    "vector_rank",
    "vector_score",
    "degraded",
)


def _reordered(returned: object, candidates: Sequence[Document]) -> list[Document]:
    """The reranker's answer as result documents: each matched to its candidate.

    A returned document is its candidate if it has the candidate's id, else if it has the same
    text (rerankers that rebuild documents drop ``id``). It keeps the reranker's text and
    metadata (its score), with the candidate's id and fusion keys.

    Raises:
        RerankError: the answer is not a sequence of documents, each a distinct candidate.
    """
    if not _is_sequence(returned):
        msg = f"the reranker returned {type(returned).__name__}, not a sequence of Documents"
        raise RerankError(msg)
    by_id = {doc.id: doc for doc in candidates}
    by_text: dict[str, list[Document]] = {}
    for doc in candidates:  # the best-fused candidate of a text is matched first
        by_text.setdefault(doc.page_content, []).append(doc)
    used: set[str | None] = set()
    out = []
    for item in cast("Sequence[object]", returned):
        doc, source = _candidate_of(item, by_id, by_text, used)
        used.add(source.id)
        metadata = {**source.metadata, **doc.metadata}
        metadata.update(
            (key, source.metadata[key]) for key in _FUSION_KEYS if key in source.metadata
        )
        out.append(Document(id=source.id, page_content=doc.page_content, metadata=metadata))
    return out


def _candidate_of(
    doc: object,
    by_id: Mapping[str | None, Document],
    by_text: Mapping[str, list[Document]],
    used: set[str | None],
) -> tuple[Document, Document]:
    """The returned document and the candidate it stands for (see :func:`_reordered`)."""
    if not isinstance(doc, Document):
        msg = f"the reranker returned a {type(doc).__name__}, not a Document"
        raise RerankError(msg)
    source = by_id.get(doc.id) if doc.id is not None else None
    if source is None:
        source = next((c for c in by_text.get(doc.page_content, []) if c.id not in used), None)
    if source is None or source.id in used:
        msg = f"the reranker returned a document that is not one of its candidates (id {doc.id!r})"
        raise RerankError(msg)
    return doc, source


def _templates(documents: Iterable[Document]) -> tuple[DocumentTemplate, ...]:
    return tuple(map(DocumentTemplate.of, documents))


def _complete_answer(templates: tuple[DocumentTemplate, ...]) -> bool:
    """Whether an answer may be cached: degraded ones are not (the failed leg may be back)."""
    return not any("degraded" in t.fields["metadata"] for t in templates)


def _checked_ids(ids: Sequence[str]) -> list[str]:
    """The distinct ids of a delete, validated.

    Raises:
        InvalidDocumentsError: ``ids`` is not a sequence of non-empty UTF-8 strings.
    """
    if not _is_sequence(ids):
        msg = f"delete takes a sequence of id strings, got {type(ids).__name__}"
        raise InvalidDocumentsError(msg)
    if not all(isinstance(i, str) and i and is_utf8(i) for i in ids):
        msg = "document ids must be non-empty UTF-8 strings"
        raise InvalidDocumentsError(msg)
    return list(dict.fromkeys(ids))


def _is_sequence(value: object) -> bool:
    """A list-like of items (not a string, bytes or a mapping)."""
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray))


def _checked_group_by(group_by: object) -> str | None:
    if group_by is not None and (not isinstance(group_by, str) or not group_by):
        msg = f"group_by must be a metadata key (a non-empty string) or None, got {group_by!r}"
        raise InvalidQueryError(msg)
    return group_by


def _check_embeddings(embeddings: Sequence[Sequence[float]], n: int) -> None:
    if len(embeddings) != n:
        msg = f"the embedding model returned {len(embeddings)} vectors for {n} texts"
        raise InvalidDocumentsError(msg)
    dims = {len(e) for e in embeddings}
    if len(dims) > 1 or any(not math.isfinite(x) for e in embeddings for x in e):
        msg = "the embedding model returned vectors of mixed sizes or non-finite values"
        raise InvalidDocumentsError(msg)


def default_bm25_path(persist_directory: str | os.PathLike[str], collection: str) -> Path:
    """Where the BM25 files of ``collection`` live inside a persist directory."""
    return Path(persist_directory) / "bm25" / collection


_HANDLES = frozenset({"store", "bm25", "embedding", "cache"})
_OPEN_OPTIONS = frozenset({"allow_embedding_mismatch"})
"""Arguments of the constructors that are not retriever fields."""


@functools.cache
def _fields_model() -> type[BaseModel]:
    """A model of :class:`HybridRetriever`'s settings fields (everything but its handles)."""
    fields: dict[str, Any] = {
        name: (info.annotation, info)
        for name, info in HybridRetriever.model_fields.items()
        if name not in _HANDLES
    }
    return create_model(
        "HybridRetrieverFields",
        __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=True),
        **fields,
    )


def _settings_error(error: ValidationError) -> ConfigError:
    problems = "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'fields'}: "
        + ("unknown argument" if e["type"] == "extra_forbidden" else e["msg"])
        for e in error.errors(include_url=False)
    )
    return ConfigError(f"invalid HybridRetriever settings: {problems}")
