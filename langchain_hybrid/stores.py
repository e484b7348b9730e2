"""The tuned Chroma store: client modes, HNSW configuration, batched all-or-report writes.

Chroma is the system of record: documents, metadata, ids and vectors live here, and the
*metadata generation* is kept in the collection's metadata (``langchain_hybrid_generation``), the
stored part of the write generation by which the derived BM25 index tells whether it is current
(:mod:`langchain_hybrid.index` says which generation is which). The same metadata records which
embedding model and precision made the vectors (``langchain_hybrid_embedding``, e.g.
``"all-MiniLM-L6-v2/fp32"``), written by the first write's metadata-generation ``modify`` (no
extra round trip) and checked when a retriever opens the store (:meth:`ChromaStore.use_embedding`).

Chroma 1.5 behaviours this module corrects for (see ``FIELD-NOTES.md``):

* ``get_or_create_collection`` with a different ``space`` silently returns the old collection:
  we compare and raise :class:`CollectionConfigError`.
* ``upsert`` merges metadata with the stored one: we clear dropped keys, so an upsert replaces.
* ``add`` of an existing id is silently ignored: we always upsert.
* The HTTP client has no timeout: we set one.
* ``modify(configuration=...)`` shortly after a write sometimes fails at once with SQLite's
  "database is locked" (1-3% of tries here, in-process): we retry it briefly.
"""

from __future__ import annotations

__all__ = ["ChromaStore", "HNSWConfig", "StoreConfig", "StoredDocument", "VectorHit"]

import logging
import math
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from langchain_hybrid.embeddings import (
    EMBEDDING_METADATA_KEY,
    check_embedding_model,
    embedding_model_id,
)
from langchain_hybrid.errors import (
    BatchWriteError,
    CollectionConfigError,
    ForkedProcessError,
    IndexNotBuiltError,
    StoreError,
    StoreUnavailableError,
)

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

logger = logging.getLogger(__name__)

GENERATION_KEY = "langchain_hybrid_generation"
_LEGACY_HNSW_KEYS = {
    "hnsw:space": "space",
    "hnsw:construction_ef": "ef_construction",
    "hnsw:search_ef": "ef_search",
    "hnsw:M": "max_neighbors",
}
_CREATION_ONLY = ("space", "ef_construction")
_LOCKED_RETRY_DELAYS = (0.02, 0.1, 0.5)  # seconds before each retry of a locked modify


class HNSWConfig(BaseModel):
    """HNSW settings of the collection (Chroma 1.x ``configuration["hnsw"]``).

    ``space`` and ``ef_construction`` are fixed when a collection is created; ``ef_search`` and
    ``max_neighbors`` can be changed later (Chroma applies a changed ``ef_search`` once the
    collection is reopened, so an embedded store reopens its client after changing it).
    Defaults: cosine space (the embeddings are normalised), and a wider build and search beam
    than Chroma's (``ef_construction`` and ``ef_search`` 200 vs 100): on SciFact
    train, ``ef_search`` 100 loses 0.004 nDCG@10 of the vector leg against exact search, 200
    loses 0.001, and 400 gains nothing more.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    space: Literal["cosine", "l2", "ip"] = "cosine"
    ef_construction: int = Field(default=200, ge=1)
    ef_search: int = Field(default=200, ge=1)
    max_neighbors: int = Field(default=16, ge=2)


class StoreConfig(BaseModel):
    """Where and how the vector store runs.

    Modes: ``persistent`` (embedded, on disk at ``path``; the default), ``ephemeral`` (in
    memory), ``http`` (a ``chroma run`` server or Chroma's distributed deployment).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["persistent", "ephemeral", "http"] = "persistent"
    path: str = "./index"
    host: str = "localhost"
    port: int = Field(default=8000, ge=1, le=65535)
    ssl: bool = False
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    token: SecretStr | None = None
    tenant: str = "default_tenant"
    database: str = "default_database"
    collection: str = "langchain_hybrid"
    hnsw: HNSWConfig = Field(default_factory=HNSWConfig)
    batch_size: int | None = Field(default=None, ge=1)
    timeout_seconds: float = Field(default=30.0, gt=0, allow_inf_nan=False)

    @field_validator("collection")
    @classmethod
    def _collection_name(cls, value: str) -> str:
        ok = 1 <= len(value) <= 500 and value[0].isalnum() and value[-1].isalnum()  # noqa: PLR2004
        if not ok or not all(c.isascii() and (c.isalnum() or c in "._-") for c in value):
            msg = (
                f"collection name {value!r} must be 1-500 characters of [a-zA-Z0-9._-], "
                "starting and ending with a letter or digit"
            )
            raise ValueError(msg)
        return value

    @property
    def chroma_collection(self) -> str:
        """The name used in Chroma, which needs at least 3 characters: ``kb`` -> ``kb-hybrid``."""
        return self.collection if len(self.collection) >= 3 else f"{self.collection}-hybrid"  # noqa: PLR2004


class VectorHit(NamedTuple):
    """One result of a vector search; ``score`` is a similarity (higher is better)."""

    id: str
    score: float
    text: str
    metadata: dict[str, Any]


class StoredDocument(NamedTuple):
    """A document as stored in Chroma."""

    id: str
    text: str
    metadata: dict[str, Any]


def hnsw_from_legacy_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """Map legacy ``hnsw:*`` collection metadata keys onto :class:`HNSWConfig` field names."""
    return {
        field: metadata[key]
        for key, field in _LEGACY_HNSW_KEYS.items()
        if metadata and key in metadata
    }


class ChromaStore:
    """A Chroma collection tuned and guarded for hybrid retrieval.

    Setup:
        Part of the core install (``chromadb``). For client-server use, start a server with
        ``chroma run --path DIR --host 127.0.0.1 --port 8000``.

    Key init args:
        config: a :class:`StoreConfig` (mode, location, collection, HNSW, batch size, timeout).

    Instantiate:
        ```python
        from langchain_hybrid.stores import ChromaStore, StoreConfig

        store = ChromaStore(StoreConfig(mode="persistent", path="./index", collection="kb"))
        ```

    Usage:
        ```python
        store.upsert(ids, texts, embeddings, metadatas)
        store.query(query_embedding, n_results=50, where={"source": "faq"})
        store.delete(ids)
        ```
    """

    def __init__(
        self,
        config: StoreConfig | None = None,
        *,
        client: Any = None,
        create_if_missing: bool = True,
    ) -> None:
        """Connect (or open the embedded database) and get or create the collection.

        Args:
            config: the store settings.
            client: an existing ``chromadb`` client to use instead of creating one.
            create_if_missing: create the collection if it does not exist; if ``False``, a
                missing collection raises :class:`IndexNotBuiltError`.

        Raises:
            StoreUnavailableError: the server cannot be reached.
            IndexNotBuiltError: the collection does not exist and ``create_if_missing`` is off.
            CollectionConfigError: a creation-time-only HNSW setting differs from the existing
                collection's.
        """
        self._pid = _current_pid  # the process the client belongs to (see `client`)
        self._owns_client = client is None
        self.config = config or StoreConfig()
        self.client = client if client is not None else self._connect()
        if not create_if_missing and not self.exists():
            msg = (
                f"collection {self.config.chroma_collection!r} does not exist in "
                f"{self._target()}; build it first (HybridRetriever.from_documents or "
                "`langchain-hybrid index`)"
            )
            raise IndexNotBuiltError(msg)
        self._reconfigured = False
        self.embedding_id: str | None = None
        """The model id to record with the next write if the collection records none."""
        self.collection = self._open_collection()
        if self._reconfigured and client is None:
            # an HNSW index already loaded in this process keeps its old ef_search: reopen
            self.reopen()
        max_batch = self._call("get_max_batch_size", self.client.get_max_batch_size)
        self.batch_size = min(self.config.batch_size or max_batch, max_batch)

    # ------------------------------------------------------------------ connection
    @property
    def config(self) -> StoreConfig:
        """The store settings, checked like :attr:`client`: any use in a forked child is."""
        if self._pid != _current_pid:
            self._after_fork()
        return self._config

    @config.setter
    def config(self, value: StoreConfig) -> None:
        self._config = value

    @property
    def client(self) -> Any:
        """The ``chromadb`` client, checked to belong to this process (one integer compare).

        ``client``, ``collection`` and ``config`` are checked on every access, so a store used
        in a forked child fails at its first use, before a write touches anything.

        Raises:
            ForkedProcessError: an embedded store (or a client passed in) opened before a
                fork is used in the child; an HTTP store this object connected reconnects.
        """
        if self._pid != _current_pid:
            self._after_fork()
        return self._client

    @client.setter
    def client(self, value: Any) -> None:
        self._client = value

    @property
    def collection(self) -> Any:
        """The Chroma collection, checked like :attr:`client`."""
        if self._pid != _current_pid:
            self._after_fork()
        return self._collection

    @collection.setter
    def collection(self, value: Any) -> None:
        self._collection = value

    def _after_fork(self) -> None:
        """Reconnect an HTTP store in a forked child; refuse an embedded one.

        Chroma's embedded client hangs for good in a forked child, at its first call (its
        native runtime stays behind in the parent); a new client on the same path inherits the
        parent's cached system and hangs too. An HTTP client holds only sockets: this process
        gets its own connection.
        """
        parent, child = self._pid, os.getpid()
        if self._config.mode == "http" and self._owns_client:
            logger.info(
                "process %d forked from %d: reconnecting to %s", child, parent, self._target()
            )
            self._pid = child
            try:
                self._client = self._connect()
                self._collection = self._open_collection()
            except BaseException:
                self._pid = parent  # still unusable here: the next access tries again
                raise
            return
        if self._owns_client:
            where = f"{self._config.mode} mode"
            why = "Chroma's embedded client hangs after a fork"
        else:
            where = "a client passed in"
            why = "a client passed in is not reconnected here (an embedded one would hang)"
        msg = (
            f"this Chroma store ({where}, {self._target()}) was opened in process {parent} and "
            f"is used in process {child}, forked from it: {why}. "
            "Open the index in the child, not in the parent before forking "
            "(gunicorn: no --preload, or open it in post_fork; multiprocessing: open it in the "
            "worker function, or use the 'spawn' start method), or serve it with `chroma run` "
            "(store.mode: http)"
        )
        raise ForkedProcessError(msg)

    def _connect(self) -> Any:
        import chromadb  # noqa: PLC0415
        from chromadb.config import Settings  # noqa: PLC0415

        cfg = self.config
        settings = Settings(anonymized_telemetry=False, allow_reset=False)
        if cfg.mode != "http":
            _refuse_embedded_after_fork()
        try:
            if cfg.mode == "ephemeral":
                return chromadb.EphemeralClient(settings=settings)
            if cfg.mode == "persistent":
                # absolute: chromadb caches one client per path *string*, so a relative path
                # would reach another directory's cached client after a chdir
                return chromadb.PersistentClient(
                    path=str(Path(cfg.path).absolute()), settings=settings
                )
            headers = {k: v.get_secret_value() for k, v in cfg.headers.items()}
            if cfg.token is not None:
                headers.setdefault("Authorization", f"Bearer {cfg.token.get_secret_value()}")
            self._probe(headers)  # HttpClient() itself sends untimed requests
            client = chromadb.HttpClient(
                host=cfg.host,
                port=cfg.port,
                ssl=cfg.ssl,
                headers=headers or None,
                settings=settings,
                tenant=cfg.tenant,
                database=cfg.database,
            )
        except Exception as e:
            msg = f"cannot open Chroma ({cfg.mode}) at {self._target()}: {type(e).__name__}: {e}"
            raise StoreUnavailableError(msg) from e
        session = getattr(getattr(client, "_server", None), "_session", None)
        if session is not None:  # chromadb's HTTP client is created with timeout=None
            import httpx  # noqa: PLC0415

            session.timeout = httpx.Timeout(cfg.timeout_seconds)
        return client

    def _probe(self, headers: dict[str, str]) -> None:
        """Fail fast, within ``timeout_seconds``, if the server does not answer a heartbeat."""
        import httpx  # noqa: PLC0415

        cfg = self.config
        url = f"http{'s' if cfg.ssl else ''}://{cfg.host}:{cfg.port}/api/v2/heartbeat"
        try:
            httpx.get(url, headers=headers, timeout=cfg.timeout_seconds).raise_for_status()
        except httpx.HTTPError as e:
            msg = f"Chroma at {self._target()} did not answer a heartbeat: {type(e).__name__}"
            raise StoreUnavailableError(msg) from None

    def call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Call ``fn`` of this store's client (or of another collection of it), typed errors.

        For companions of the collection such as the replica feed (:mod:`langchain_hybrid._feed`).

        Raises:
            StoreUnavailableError: the server did not answer.
            StoreError: Chroma rejected or failed the call.
        """
        return self._call(what, fn, *args, **kwargs)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Call the Chroma client, turning connection failures into typed errors."""
        try:
            return fn(*args, **kwargs)
        except (ConnectionError, OSError, TimeoutError) as e:
            raise self._unavailable(what, e) from e
        except Exception as e:
            if _is_transport_error(e):
                raise self._unavailable(what, e) from e
            if isinstance(e, ValueError | TypeError):
                msg = f"Chroma rejected {what}: {e}"
                raise StoreError(msg) from e
            msg = f"Chroma failed in {what}: {type(e).__name__}: {e}"
            raise StoreError(msg) from e

    def _target(self) -> str:
        cfg = self._config  # unchecked: error messages use it, in a forked child too
        if cfg.mode == "http":
            return f"http{'s' if cfg.ssl else ''}://{cfg.host}:{cfg.port}"
        return cfg.path if cfg.mode == "persistent" else "memory"

    def _unavailable(self, what: str, e: BaseException) -> StoreUnavailableError:
        msg = f"Chroma at {self._target()} is unavailable during {what}: {type(e).__name__}: {e}"
        return StoreUnavailableError(msg)

    def exists(self) -> bool:
        """Whether the configured collection exists."""
        from chromadb.errors import NotFoundError  # noqa: PLC0415

        try:
            self.client.get_collection(self.config.chroma_collection)
        except NotFoundError:
            return False
        except Exception as e:
            what = "get_collection"
            raise self._unavailable(what, e) from e
        return True

    def identity(self) -> str:
        """Which collection this is, as a string equal for every store on the same one."""
        config = self.config
        where = (
            str(Path(config.path).absolute())
            if config.mode == "persistent"
            else f"{config.host}:{config.port}"
            if config.mode == "http"
            else ""
        )
        parts = (config.mode, where, config.tenant, config.database, config.chroma_collection)
        return "\x1f".join(parts)

    def reopen(self) -> None:
        """Reconnect, so an embedded client sees what other processes wrote.

        Chroma's embedded client keeps the collection's vector index in process memory and does
        not see vectors another process added later; only a new client does. Chroma caches one
        client system per path, so that entry is dropped first (other paths are untouched).
        """
        if self.config.mode != "persistent":
            return
        from chromadb.api.shared_system_client import SharedSystemClient  # noqa: PLC0415

        identifier = getattr(self.client, "_identifier", None)
        if identifier is not None:
            SharedSystemClient._identifier_to_system.pop(identifier, None)  # noqa: SLF001
            SharedSystemClient._identifier_to_refcount.pop(identifier, None)  # noqa: SLF001
        self.client = self._connect()
        self.collection = self._open_collection()

    def heartbeat(self) -> int:
        """Ask the server (or embedded database) whether it is alive; returns its clock (ns)."""
        return int(self._call("heartbeat", self.client.heartbeat))

    def _open_collection(self) -> Any:
        wanted = self.config.hnsw
        configuration = {"hnsw": wanted.model_dump()}
        collection = self._call(
            "get_or_create_collection",
            self.client.get_or_create_collection,
            self.config.chroma_collection,
            embedding_function=None,
            configuration=configuration,
        )
        actual = self._actual_hnsw(collection)
        for key in _CREATION_ONLY:
            if key in actual and actual[key] != getattr(wanted, key):
                msg = (
                    f"collection {self.config.chroma_collection!r} was created with hnsw {key}="
                    f"{actual[key]!r}, but {getattr(wanted, key)!r} is configured; {key} cannot "
                    "change after creation: use the existing value or a new collection"
                )
                raise CollectionConfigError(msg)
        changes = {
            key: getattr(wanted, key)
            for key in ("ef_search", "max_neighbors")
            if key in actual and actual[key] != getattr(wanted, key)
        }
        if changes:
            logger.info(
                "updating collection %s hnsw settings: %s", self.config.chroma_collection, changes
            )
            self._modify_configuration(collection, {"hnsw": changes})
            self._reconfigured = True
        return collection

    def _modify_configuration(self, collection: Any, configuration: dict[str, Any]) -> None:
        """``collection.modify(configuration=...)``, retried while SQLite reports a lock."""
        for delay in (*_LOCKED_RETRY_DELAYS, None):
            try:
                self._call("modify", collection.modify, configuration=configuration)
            except StoreError as e:  # noqa: PERF203 - a bounded retry, not a hot loop
                if delay is None or "database is locked" not in str(e):
                    raise
                logger.debug("modify of %s hit a locked database; retrying", collection.name)
                time.sleep(delay)
            else:
                return

    @staticmethod
    def _actual_hnsw(collection: Any) -> dict[str, Any]:
        configuration = getattr(collection, "configuration_json", None) or {}
        hnsw = dict(configuration.get("hnsw") or {})
        hnsw.update(hnsw_from_legacy_metadata(collection.metadata))
        return hnsw

    # ------------------------------------------------------------------ embedding model
    def recorded_embedding(self) -> str | None:
        """The embedding model id the collection records (``None``: none recorded).

        Read from the collection as opened (or as last written by this store): no round trip.
        """
        value = (self.collection.metadata or {}).get(EMBEDDING_METADATA_KEY)
        return value if isinstance(value, str) and value else None

    def use_embedding(self, embedding: Embeddings, *, allow_mismatch: bool = False) -> None:
        """Check ``embedding`` against the recorded model; record it with the next write if none.

        An index written before models were recorded (a metadata generation but no record) is
        accepted: its vectors are assumed to be ``embedding``'s, which the next write records.

        Args:
            embedding: the embedding that will query and extend this collection.
            allow_mismatch: accept another model than the recorded one (a warning is logged;
                the record is left as it is).

        Raises:
            EmbeddingMismatchError: the collection records another model or precision.
        """
        recorded = self.recorded_embedding()
        check_embedding_model(recorded, embedding, allow_mismatch=allow_mismatch)
        self.embedding_id = embedding_model_id(embedding)
        if recorded is None and self._metadata_generation_of(self.collection) > 0:
            logger.info(
                "collection %s records no embedding model (written before 0.3): assuming %s, "
                "recorded with the next write",
                self.config.chroma_collection,
                self.embedding_id,
            )

    # ------------------------------------------------------------------ metadata generation
    @staticmethod
    def _metadata_generation_of(collection: Any) -> int:
        """The metadata generation recorded in a Chroma collection object (0 if none)."""
        value = (collection.metadata or {}).get(GENERATION_KEY, 0)
        return int(value) if isinstance(value, int) else 0

    def metadata_generation(self) -> int:
        """The metadata generation: the collection's stored write counter (0: never written).

        Readers of the pair go by :meth:`HybridIndex.write_generation
        <langchain_hybrid.index.HybridIndex.write_generation>`, which also sees the odd intent
        marker of an embedded or in-memory write under way; this is the stored part alone.
        """
        collection = self._call(
            "get_collection", self.client.get_collection, self.config.chroma_collection
        )
        return self._metadata_generation_of(collection)

    def bump_metadata_generation(self, *, to_odd: bool | None = None, at_least: int = 0) -> int:
        """Advance the metadata generation and return the new value (one read, one ``modify``).

        ``to_odd=None`` adds one; ``True`` / ``False`` advance to the next odd / even value.
        ``at_least``: advance past this value too (a generation a reader saw elsewhere, such as
        the intent generation of :class:`~langchain_hybrid.index.HybridIndex`). The same ``modify``
        records :attr:`embedding_id` if the collection records no model yet. Writers go through
        :class:`~langchain_hybrid.index.HybridIndex`, or :meth:`begin_write` / :meth:`end_write`.
        """
        collection = self._call(
            "get_collection", self.client.get_collection, self.config.chroma_collection
        )
        metadata = {
            k: v for k, v in (collection.metadata or {}).items() if k not in _LEGACY_HNSW_KEYS
        }
        value = metadata.get(GENERATION_KEY, 0)
        new = max(int(value) if isinstance(value, int) else 0, at_least) + 1
        if to_odd is not None and (new % 2 == 1) != to_odd:
            new += 1
        metadata[GENERATION_KEY] = new
        if self.embedding_id is not None and EMBEDDING_METADATA_KEY not in metadata:
            metadata[EMBEDDING_METADATA_KEY] = self.embedding_id  # the first write records it
        self._call("modify", self.collection.modify, metadata=metadata)
        return new

    def begin_write(self) -> int:
        """Mark a write as begun: the metadata generation becomes odd (called *before* writing).

        An odd generation means a write is in progress, or a writer died in the middle of one:
        a reader that sees it knows the collection may still change without another bump, and
        a saved BM25 index (always saved at an even generation by the writer) is stale. An
        embedded writer keeps this marker in a file instead (one ``modify`` less per write):
        see :mod:`langchain_hybrid.index`.
        """
        return self.bump_metadata_generation(to_odd=True)

    def end_write(self, *, at_least: int = 0) -> int:
        """Mark the write complete: the metadata generation becomes even (called *after* writing).

        ``at_least``: the odd generation the write ran under, if it was not recorded here.
        """
        return self.bump_metadata_generation(to_odd=False, at_least=at_least)

    def count(self) -> int:
        """Number of documents in the collection."""
        return int(self._call("count", self.collection.count))

    # ------------------------------------------------------------------ writes
    def upsert(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        embeddings: Sequence[Sequence[float]],
        metadatas: Sequence[Mapping[str, Any] | None],
    ) -> list[str]:
        """Write documents in batches; an upsert replaces text, vector and metadata.

        Returns:
            The ids written (all of them).

        Raises:
            BatchWriteError: a batch failed. ``written_ids`` were written, ``failed_ids`` (that
                batch and every later one) were not; nothing is half-written within a batch.
        """
        written: list[str] = []
        for start in range(0, len(ids), self.batch_size):
            end = start + self.batch_size
            batch_ids = list(ids[start:end])
            try:
                batch_meta = self._replacing_metadata(batch_ids, metadatas[start:end])
                self._call(
                    "upsert",
                    self.collection.upsert,
                    ids=batch_ids,
                    documents=list(texts[start:end]),
                    embeddings=[list(map(float, e)) for e in embeddings[start:end]],
                    metadatas=batch_meta,
                )
            except StoreError as e:
                failed = list(ids[start:])
                logger.warning(
                    "batch %d-%d failed (%s); %d written, %d not written",
                    start,
                    end,
                    e,
                    len(written),
                    len(failed),
                )
                msg = (
                    f"writing to Chroma failed after {len(written)} of {len(ids)} documents: {e}."
                    f" Not written: {_preview(failed)}"
                )
                raise BatchWriteError(msg, written_ids=written, failed_ids=failed) from e
            written.extend(batch_ids)
            logger.debug("batch %d-%d written (%d ids)", start, end, len(batch_ids))
        return written

    def _replacing_metadata(
        self, ids: list[str], metadatas: Sequence[Mapping[str, Any] | None]
    ) -> list[dict[str, Any] | None]:
        """Metadata that replaces what is stored: keys no longer present are set to ``None``."""
        existing = self._call("get", self.collection.get, ids=ids, include=["metadatas"])
        old = dict(zip(existing["ids"], existing["metadatas"] or [], strict=False))
        out: list[dict[str, Any] | None] = []
        for doc_id, metadata in zip(ids, metadatas, strict=True):
            new: dict[str, Any] = dict(metadata or {})
            for key in old.get(doc_id) or {}:
                new.setdefault(key, None)
            out.append(new or None)
        return out

    def delete(self, ids: Sequence[str]) -> None:
        """Delete documents by id, in batches; unknown ids are ignored."""
        for start in range(0, len(ids), self.batch_size):
            self._call(
                "delete", self.collection.delete, ids=list(ids[start : start + self.batch_size])
            )

    # ------------------------------------------------------------------ reads
    def query(
        self,
        embedding: Sequence[float],
        n_results: int,
        where: Mapping[str, Any] | None = None,
        *,
        include_documents: bool = True,
    ) -> list[VectorHit]:
        """Nearest neighbours of ``embedding``, best first, optionally filtered.

        With ``include_documents=False`` only ids and scores are fetched (text ``""``, metadata
        ``{}``): much cheaper when most hits are dropped by fusion anyway.
        """
        include = ["documents", "metadatas", "distances"] if include_documents else ["distances"]
        result = self._call(
            "query",
            self.collection.query,
            query_embeddings=[list(map(float, embedding))],
            n_results=n_results,
            where=dict(where) if where else None,
            include=include,
        )
        to_score = _SIMILARITY[self.config.hnsw.space]
        ids = result["ids"][0]
        texts = (result.get("documents") or [[]])[0] or [""] * len(ids)
        metadatas = (result.get("metadatas") or [[]])[0] or [None] * len(ids)
        distances = (result.get("distances") or [[]])[0] or [math.nan] * len(ids)
        return [
            VectorHit(doc_id, to_score(float(d)), text or "", dict(m or {}))
            for doc_id, text, m, d in zip(ids, texts, metadatas, distances, strict=True)
        ]

    def get(self, ids: Sequence[str]) -> list[StoredDocument]:
        """Stored documents for ``ids`` (unknown ids are left out)."""
        result = self._call(
            "get", self.collection.get, ids=list(ids), include=["documents", "metadatas"]
        )
        return [
            StoredDocument(i, t or "", dict(m or {}))
            for i, t, m in zip(result["ids"], result["documents"], result["metadatas"], strict=True)
        ]

    def repair_vectors(self, ids: Sequence[str], *, rewrite: bool = True) -> list[str]:
        """Make the vector index hold every id in ``ids`` (all stored documents); returns repairs.

        After an embedded writer is killed, a first client of the directory can serve an HNSW
        index missing the last vectors the writer wrote, although Chroma's tables hold them (seen
        with chromadb 1.5.9 under SIGKILL, about one open in several hundred). A search for
        all of them (``n_results`` = the count) finds which are missing; the client is reopened,
        and, with ``rewrite``, what is still missing is written again from the stored embeddings
        (nothing is embedded). Costly for a large collection: callers run it only after a crash
        was detected. Returns the ids still missing after the reopen.
        """
        missing = self._unsearchable(ids)
        if missing:
            logger.warning(
                "vector index misses %d of %d documents after an unclean shutdown: reopening",
                len(missing),
                len(ids),
            )
            self.reopen()
            missing = self._unsearchable(ids)
        if missing and not rewrite:
            logger.error("vector index still misses %s (not the writer: not rewritten)", missing)
        elif missing:
            logger.warning("writing %d vectors again from the stored embeddings", len(missing))
            stored = self._call(
                "get",
                self.collection.get,
                ids=missing,
                include=["embeddings", "documents", "metadatas"],
            )
            self._call(
                "upsert",
                self.collection.upsert,
                ids=stored["ids"],
                embeddings=stored["embeddings"],
                documents=stored["documents"],
                metadatas=stored["metadatas"],
            )
        return missing

    def _unsearchable(self, ids: Sequence[str]) -> list[str]:
        if not ids:
            return []
        probe = self._call("get", self.collection.get, ids=[ids[0]], include=["embeddings"])
        if not len(probe["ids"]):
            return []
        found = {
            h.id for h in self.query(probe["embeddings"][0], len(ids), include_documents=False)
        }
        return [i for i in ids if i not in found]

    def iter_all(self, batch_size: int | None = None) -> Iterator[list[StoredDocument]]:
        """Every stored document, in pages (used to rebuild the BM25 index from Chroma)."""
        size = batch_size or min(self.batch_size, 5000)
        offset = 0
        while True:
            result = self._call(
                "get",
                self.collection.get,
                limit=size,
                offset=offset,
                include=["documents", "metadatas"],
            )
            page = [
                StoredDocument(i, t or "", dict(m or {}))
                for i, t, m in zip(
                    result["ids"], result["documents"], result["metadatas"], strict=True
                )
            ]
            if not page:
                return
            yield page
            offset += len(page)


def _one_minus(distance: float) -> float:
    return 1.0 - distance


def _from_squared_l2(distance: float) -> float:
    return 1.0 - distance / 2.0  # squared L2 of unit vectors is 2 - 2 cos


_inherited_databases: list[str] = []
"""Embedded Chroma databases (paths, or ``"ephemeral"``) open in the parent at the last fork."""
_current_pid = os.getpid()
"""This process's id, kept current by the fork hook (``os.getpid`` is a system call)."""


def _note_inherited_systems() -> None:
    """After a fork, in the child: remember which embedded Chroma databases the parent had open."""
    global _current_pid  # noqa: PLW0603 - one writer: the fork hook, in the new process
    _current_pid = os.getpid()
    shared = sys.modules.get("chromadb.api.shared_system_client")
    if shared is None:
        return
    for identifier, system in shared.SharedSystemClient._identifier_to_system.items():  # noqa: SLF001
        if identifier == "ephemeral" or getattr(system.settings, "is_persistent", False):
            _inherited_databases.append(identifier)


def _refuse_embedded_after_fork() -> None:
    """Refuse to open an embedded database in a child forked from a process that had one open.

    Measured with chromadb 1.5.9: in such a child every embedded client hangs for good, the
    parent's at its first call, a new one on the same path at its first read, and one on
    another path (or in memory) at its first write: the embedded database's native runtime stays
    behind in the parent. An HTTP client is not affected.

    Raises:
        ForkedProcessError: the parent had an embedded database open when it forked.
    """
    if not _inherited_databases:
        return
    opened = ", ".join(repr(d) for d in _inherited_databases[:3])
    msg = (
        f"this process (pid {os.getpid()}) was forked from one that had Chroma's embedded "
        f"database open ({opened}), and Chroma's embedded client hangs in such a child, for "
        "this index or any other. Open the index in the child, not in the parent before forking "
        "(gunicorn: no --preload, or open it in post_fork; multiprocessing: open it in the worker "
        "function, or use the 'spawn' start method), or serve it with `chroma run` "
        "(store.mode: http)"
    )
    raise ForkedProcessError(msg)


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_note_inherited_systems)


_SIMILARITY = {"cosine": _one_minus, "ip": _one_minus, "l2": _from_squared_l2}


def _is_transport_error(e: BaseException) -> bool:
    """Whether ``e`` (or its cause) is a network failure raised by httpx or the OS."""
    seen: set[int] = set()
    current: BaseException | None = e
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        module = type(current).__module__
        if module.startswith(("httpx", "httpcore")) or isinstance(
            current, (ConnectionError, TimeoutError)
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def _preview(ids: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(map(repr, ids[:limit]))
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")
