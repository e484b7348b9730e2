"""HybridIndex: the Chroma collection and its BM25 index, kept in step; the write protocol.

Chroma is the system of record; the BM25 index is derived from it. This module is the one owner
of the pair: it opens them (load the saved BM25 index or rebuild it from Chroma, settle a write
whose writer died, check the vector index after a crash), writes to both (the write protocol
below), follows other processes' writes (:meth:`HybridIndex.refresh`), defers saves, and reports
the pair's state (:meth:`HybridIndex.status`, read by health checks and ``langchain-hybrid
stats``). It is the only reader of the write generation: :class:`HybridRetriever` (parameters,
legs, fusion, hydration, result cache) and the health monitor go through it.

Glossary: "generation" alone names nothing here; each kind has its own word.

* *write generation* (:meth:`HybridIndex.write_generation`): the seqlock counter every reader
  goes by, odd while a write is under way (or after its writer died), even once it completed;
  the larger of the next two. (With a change feed, the feed's intent marks a write
  under way instead, and this stays even.)
* *metadata generation* (:meth:`ChromaStore.metadata_generation`): the counter kept in the
  collection's metadata (key ``langchain_hybrid_generation``); each completed write makes it
  the next even value, and over HTTP without a change feed it also carries the odd mark.
* *intent generation*: the odd value of the intent marker written before a write's data (the
  ``.write-intent-<collection>`` file of an embedded store, a record in this process for an
  in-memory one).
* *BM25 generation* (``BM25Index.generation``, :attr:`IndexStatus.bm25_generation`): the write
  generation whose documents the in-memory BM25 index holds.
* *saved generation* (:attr:`SavedState.generation`): the write generation the saved BM25 files
  hold, as their manifest and log record it (the stored key stays ``"generation"``; segment
  file names ``<kind>-<generation>-<hex>`` carry it too, as a label).
* *change signal* (:func:`change_signal`; ``signal`` in this module): the pair (write
  generation, document count) compared to notice other writers' changes.
* *local write count*: writes completed through this process per collection
  (``_LOCAL_WRITE_COUNTS``), so that its other indexes of the collection sync on their next
  query; a counter, not a generation.

Unrelated despite the word: the result cache's generation (:mod:`langchain_hybrid.cache`, an
invalidation epoch of that cache only).

The write protocol (a seqlock over the collection):

1. One writer: the per-collection lock of this process (threads, and every retriever of the
   process on the same collection), and for an embedded index the writer lock of the persist
   directory (one process, see :mod:`langchain_hybrid._locking`).
2. *Begin*: the write generation becomes odd, before any data is written. For an embedded
   (``persistent``) store the odd marker is a small file beside Chroma's database,
   ``<path>/.write-intent-<collection>`` (``"<collection id> <odd generation>"``, flushed to
   disk, about 0.1 ms), which every process opening that directory reads; for an ``ephemeral``
   store it is kept in this process (no other process can see the collection); over HTTP it is
   the change feed's intent (see below), or without a feed the collection's metadata
   key ``langchain_hybrid_generation`` (other clients of the server see nothing else).
3. The data write (batched by :class:`ChromaStore`), then the BM25 update.
4. *End*: the collection's metadata generation becomes the next even value (one ``modify``),
   the feed's completion record is queued (HTTP), then BM25 is saved at that generation
   (unless saves are deferred).

The write generation a reader sees is the larger of the metadata and intent generations (an
intent generation older than the metadata one, or of another collection, is spent and ignored).
So readers see exactly what they saw when both markers lived in the collection metadata: odd
while a write is under way, or after its writer died mid-write; even and at the value BM25 was
saved with once it completed. The odd marker costs a file write and an ``fdatasync`` (0.1 ms on
an idle disk, a few ms under load) instead of a Chroma ``modify`` (12 ms or more on an embedded
10k-100k collection here): ``benchmarks/write_budget.py`` measured the protocol at 0.56-0.72x
of the two-``modify`` one in the same run, about 30% of a one-document write instead of ~40%.
The even marker stays a ``modify`` of the collection metadata, because HTTP clients read the
generation there. Readers outside a :class:`HybridIndex` (``chroma_staleness_check`` of
:mod:`langchain_hybrid.vectorstore_cache`) read it through :func:`change_signal`, the same
reading as :meth:`HybridIndex.refresh`.

Replica feed (``store.mode: http``, where several processes write to one server): every write
also records the ids it changes in the change feed (:mod:`langchain_hybrid._feed`), an *intent*
record before step 2 and its completion after step 3; :meth:`HybridIndex.refresh` reads the
records not applied yet and brings the named ids up to date with :meth:`HybridIndex.apply_changes`
(present in Chroma: re-indexed; absent: removed). The write generation stays for health checks and
result-cache staleness, but a replica no longer relies on it to find other writers' changes
(two writers' read-modify-writes of it can leave it unchanged by a write). Embedded and
in-memory stores have one writer process and keep the generation protocol alone.
"""

from __future__ import annotations

__all__ = ["CollectionState", "HybridIndex", "IndexStatus", "SavedState", "change_signal"]

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import ValidationError

from langchain_hybrid._feed import ChangeFeed, FeedSettings
from langchain_hybrid._locking import (
    acquire_writer_lock,
    holds_writer_lock,
    save_lock,
    writer_lock_free,
    writer_lock_if_free,
)
from langchain_hybrid.bm25 import BM25Index, BM25Params
from langchain_hybrid.errors import (
    BatchWriteError,
    ConfigError,
    HybridRetrieverError,
    IndexCorruptError,
    IndexNotBuiltError,
    StoreError,
)
from langchain_hybrid.stores import (
    ChromaStore,
    HNSWConfig,
    StoreConfig,
    StoredDocument,
    hnsw_from_legacy_metadata,
)

logger = logging.getLogger(__name__)

INTENT_PREFIX = ".write-intent-"
_INTENT_WIDTH = 20  # digits: a fixed-size record is rewritten in place, never truncated

_LOCAL_WRITE_COUNTS: dict[str, int] = {}
"""The local write count: writes completed in this process, per collection; other indexes of the
same collection see them on their next query (not after ``refresh_interval_seconds``)."""
_EPHEMERAL_INTENTS: dict[str, tuple[str, int]] = {}
"""The intent marker (collection id, intent generation) per in-memory collection (only this
process sees it)."""
_REGISTRY_LOCK = threading.Lock()
_REBUILD_ATTEMPTS = 3
_WRITE_LOCKS: dict[str, threading.RLock] = {}


def _write_lock(key: str) -> threading.RLock:
    """The lock every write to one collection takes in this process (shared by its indexes)."""
    with _REGISTRY_LOCK:
        lock = _WRITE_LOCKS.get(key)
        if lock is None:
            lock = _WRITE_LOCKS[key] = threading.RLock()
        return lock


class CollectionState(NamedTuple):
    """The collection as read with the seqlock: write generation, document count, again.

    ``documents`` belongs to ``generation`` only if ``latest == generation`` and it is even;
    else a write was under way during the read.

    Attributes:
        generation: the write generation, read before the count.
        documents: the document count.
        latest: the write generation read again, after the count.
    """

    generation: int
    documents: int
    latest: int

    @property
    def before(self) -> int:
        """The generation before the write under way (``N - 1`` for odd ``N``), else itself."""
        return self.generation - self.generation % 2

    @property
    def settled(self) -> bool:
        """Whether no write was under way: an even generation that did not move."""
        return self.generation == self.latest and self.generation % 2 == 0


class SavedState(NamedTuple):
    """The saved BM25 files as their manifest describes them (``error``: none usable).

    Attributes:
        path: the BM25 directory.
        generation: the saved generation (the write generation the files hold).
        documents: the documents the files hold.
        params: the BM25 settings recorded in the manifest (as stored).
        error: why the files cannot be read (missing, corrupt).
    """

    path: Path
    generation: int | None = None
    documents: int | None = None
    params: object = None
    error: Exception | None = None


class IndexStatus(NamedTuple):
    """The pair's state, read without side effects (see :meth:`HybridIndex.status`).

    Attributes:
        collection: the seqlock read of the collection; ``None`` if the store did not answer.
        store_error: why the store did not answer.
        dead_write: an odd write generation whose writer died (embedded store, no writer-lock
            holder and the generation did not move).
        bm25_documents: documents in the in-memory BM25 index (``None``: not usable).
        bm25_generation: the BM25 generation (the write generation the in-memory BM25 index
            holds).
        bm25_error: why the in-memory BM25 index is not usable.
        saved: the saved BM25 files (``None``: the index is kept in memory only).
        feed_unapplied: change-feed records this replica has not applied yet (completed writes
            of other processes, and writes under way); ``None``: no feed (not ``http``) or it
            could not be read.
        seconds_since_caught_up: seconds (this process's clock) since this replica had applied
            every completed write it could see; ``0`` when nothing is waiting; ``None``: no feed.
        foreign_writes: writes that bypassed this package and changed the document count,
            detected (and repaired by a rebuild) since this index was opened.
    """

    collection: CollectionState | None
    store_error: Exception | None
    dead_write: bool
    bm25_documents: int | None
    bm25_generation: int | None
    bm25_error: Exception | None
    saved: SavedState | None
    feed_unapplied: int | None = None
    seconds_since_caught_up: float | None = None
    foreign_writes: int = 0

    @property
    def in_sync(self) -> bool:
        """The in-memory BM25 index holds exactly the settled collection's state."""
        return (
            self.collection is not None
            and self.collection.settled
            and (self.bm25_generation, self.bm25_documents)
            == (self.collection.generation, self.collection.documents)
        )


class _Write(NamedTuple):
    """A write begun by this process: the write generation it runs under, its feed record."""

    generation: int
    record: str | None = None


class HybridIndex:
    """The Chroma collection + BM25 index pair: write protocol, recovery, sync, status.

    Setup:
        Part of the core install. :class:`HybridRetriever` creates one; use it directly to
        write or inspect an index without a retriever.

    Key init args:
        store: the Chroma store (system of record).
        bm25: the BM25 index derived from it.
        path: where the BM25 files live (``None``: in memory only).

    Instantiate:
        ```python
        from langchain_hybrid.index import HybridIndex
        from langchain_hybrid.stores import ChromaStore, StoreConfig

        store = ChromaStore(StoreConfig(path="./index", collection="kb"))
        index = HybridIndex.open(store, Path("./index/bm25/kb"))
        ```

    Usage:
        ```python
        index.add(ids, texts, embeddings, metadatas)
        index.delete(ids)
        index.status().in_sync
        ```
    """

    def __init__(
        self,
        store: ChromaStore,
        bm25: BM25Index,
        path: Path | None = None,
        feed: FeedSettings | None = None,
    ) -> None:
        """Wrap an opened pair (no I/O; :meth:`open` loads or rebuilds BM25 first).

        ``feed``: change-feed settings. An ``http`` store always writes and follows the feed;
        given for another store, it does too (one process's indexes on one in-memory
        collection, tests).
        """
        self.store = store
        self.bm25 = bm25
        self.path = path
        self.key = store.identity()
        self._lock = _write_lock(self.key)
        self._deferred_saves = 0
        self._local_writes_synced = _LOCAL_WRITE_COUNTS.get(self.key, 0)
        self.opened_from = "given"
        """How :meth:`open` / :meth:`inspect` got the BM25 index (``"saved"``, a reason)."""
        followed = feed is not None or store.config.mode == "http"
        self.feed = ChangeFeed(store, feed) if followed else None
        """The replica change feed (``None``: not an ``http`` store; see :mod:`.feed`)."""
        self.foreign_writes = 0

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(
        cls,
        store: ChromaStore,
        path: Path | None = None,
        params: BM25Params | None = None,
        *,
        check_vectors: bool = True,
        feed: FeedSettings | None = None,
    ) -> HybridIndex:
        """Open the pair: load the saved BM25 index if it matches the collection, else rebuild.

        The BM25 index at ``path`` is used when it matches the collection (same write
        generation and document count, same settings); if it is missing, corrupt, stale or
        built with other settings, it is rebuilt from the documents stored in Chroma (nothing
        is embedded), saved, and the reason logged. A write whose writer died is marked
        complete first; with ``check_vectors``, a crash detected this way also has the
        embedded vector index checked (:meth:`ChromaStore.repair_vectors`).

        An ``http`` store (several writer processes) is always rebuilt from Chroma: no local
        file can show which of other processes' writes it holds. The replica then follows the
        change feed from the moment the rebuild began (``feed``: its settings).
        """
        index = cls(store, BM25Index(params), path, feed)
        if index.feed is not None:
            index.resync(params)
            index.opened_from = "rebuilt: replica of an http store"
            return index
        index.bm25, index.opened_from = index._load_or_rebuild_bm25(
            params, check_vectors=check_vectors
        )
        return index

    @classmethod
    def inspect(
        cls, store: ChromaStore, path: Path | None, params: BM25Params | None = None
    ) -> HybridIndex:
        """Open the pair read-only, for health checks and statistics.

        Nothing is settled, saved or repaired: the saved BM25 index is loaded as it is (stale
        or not, so that it can be reported); when it is missing, corrupt or built with other
        settings, it is rebuilt in memory only. ``opened_from`` says which.
        """
        index = cls(store, BM25Index(params), path)
        saved, reason = _saved_or_reason(path)
        if saved is not None and (params is None or saved.params == params):
            index.bm25, index.opened_from = saved, "saved"
            return index
        index.bm25 = rebuild_bm25(store, params)
        index.bm25.generation = index.write_generation()
        index.opened_from = reason if saved is None else "BM25 settings changed"
        return index

    def _load_or_rebuild_bm25(
        self,
        params: BM25Params | None,
        *,
        signal: tuple[int, int] | None = None,
        check_vectors: bool = False,
    ) -> tuple[BM25Index, str]:
        """The BM25 index that matches the collection: the saved one, or one rebuilt from Chroma.

        The steps: read the collection's state (settling a write whose writer died), use the
        saved BM25 index if it matches that state, else rebuild from Chroma, check the vector
        index if the mismatch shows a crash (``check_vectors``), and save the rebuilt index if
        it is still current (:meth:`_save_rebuilt`).

        ``signal`` is the collection's change signal ``(write generation, count)`` if the caller
        read it before reopening the store (as :meth:`refresh` does); else it is read here.
        """
        generation, count = signal if signal is not None else self._change_signal()
        if generation % 2:
            generation = self._settle_dead_write(generation)
        saved, reason = self._saved_matching(params, generation, count)
        if saved is not None and not reason:
            return saved, "saved"
        rebuilt = rebuild_bm25(self.store, params or (saved.params if saved else None))
        rebuilt.generation = generation
        if check_vectors and reason.startswith(("BM25 index stale", "BM25 index corrupt")):
            self._repair_vectors_after_crash(rebuilt, count)
        self._save_rebuilt(rebuilt, generation, count)
        self._log_rebuild(reason, generation, count)
        return rebuilt, reason

    def _log_rebuild(self, reason: str, generation: int, count: int) -> None:
        """Log a rebuild: a warning, unless nothing was lost (empty, in memory, write under way)."""
        level = (
            logging.DEBUG if count == 0 or self.path is None or generation % 2 else logging.WARNING
        )
        logger.log(level, "%s: rebuilt from %d Chroma documents", reason, count)

    def _saved_matching(
        self, params: BM25Params | None, generation: int, count: int
    ) -> tuple[BM25Index | None, str]:
        """The saved BM25 index and ``""`` if it matches the collection, else why it does not.

        The saved index is returned (with the reason) also when it does not match, so that a
        rebuild can keep its settings. A collection at an odd generation (a write under way)
        matches no saved index: BM25 is always saved at an even one.
        """
        if generation % 2:
            return None, f"a write is under way (generation {generation})"
        saved, reason = _saved_or_reason(self.path)
        if saved is None:
            return None, reason
        return saved, _saved_mismatch(saved, params, generation, count)

    def _repair_vectors_after_crash(self, rebuilt: BM25Index, count: int) -> None:
        """Check the embedded vector index after a crash (a writer died): see ``repair_vectors``."""
        store = self.store
        if store.config.mode == "persistent" and count:
            with writer_lock_if_free(store.config.path) as writer:
                store.repair_vectors(rebuilt.ids, rewrite=writer)

    def _save_rebuilt(self, rebuilt: BM25Index, generation: int, count: int) -> None:
        """Save a rebuilt BM25 index if the collection is still at ``(generation, count)``.

        A process that is not the writer saves a rebuilt index under the save lock, and only if
        the collection is still at the generation and count it was rebuilt from: a writer's
        later save always comes after it, and a writer's newer files are never replaced.
        An unsettled (odd) state is never saved.
        """
        path = self.path
        if path is None or generation % 2:
            return
        with save_lock(path) as locked:
            if locked and (
                holds_writer_lock(self._lock_dir()) or self._change_signal() == (generation, count)
            ):
                rebuilt.save(path)

    def _lock_dir(self) -> str | Path:
        """The directory whose writer lock guards this pair's writes."""
        if self.store.config.mode == "persistent" or self.path is None:
            return self.store.config.path
        return self.path

    def _settle_dead_write(self, generation: int) -> int:
        """Mark complete a write whose writer process died in the middle of it; the generation.

        An odd generation with no process holding the writer lock of an embedded index is a
        write that will never end. What it wrote is what Chroma holds, so ending it makes the
        state final and lets BM25 be saved again. Only for embedded stores: on a server, other
        clients' writes are not covered by this directory's lock. Not while this process is the
        writer (another of its indexes may be in that write).
        """
        store = self.store
        if store.config.mode != "persistent" or holds_writer_lock(store.config.path):
            return generation
        with writer_lock_if_free(store.config.path) as free:
            if not free or self.write_generation() != generation:
                return generation  # a live writer is in the middle of a write, or it moved on
            settled = store.end_write(at_least=generation)
        logger.warning(
            "generation %d: a writer died during a write; marked complete as %d",
            generation,
            settled,
        )
        return settled

    # ------------------------------------------------------------------ the write generation
    def write_generation(self) -> int:
        """The write generation readers go by: odd while a write is under way (or died).

        The larger of the metadata generation (:meth:`ChromaStore.metadata_generation`) and
        the intent generation (the odd marker of a write begun after it; see the module
        docstring).
        """
        return max(self.store.metadata_generation(), self._intent_generation())

    def _change_signal(self) -> tuple[int, int]:
        """The change signal: ``(write generation, document count)``, read in that order."""
        return self.write_generation(), self.store.count()

    def _intent_marker_path(self) -> Path | None:
        """The intent marker file of an embedded store (``None``: not an embedded store)."""
        config = self.store.config
        if config.mode != "persistent":
            return None
        return Path(config.path) / f"{INTENT_PREFIX}{config.chroma_collection}"

    def _intent_generation(self) -> int:
        """The odd generation of the last write begun here, 0 if none (or of another collection)."""
        if self.store.config.mode == "ephemeral":
            owner, value = _EPHEMERAL_INTENTS.get(self.key, ("", 0))
            return value if owner == str(self.store.collection.id) else 0
        file = self._intent_marker_path()
        if file is None:
            return 0
        try:
            text = file.read_text(encoding="ascii")
        except FileNotFoundError:
            return 0
        except (OSError, UnicodeDecodeError) as e:
            logger.warning("write intent %s unreadable (%s): ignored", file, e)
            return 0
        owner, _, number = text.strip().partition(" ")
        if owner != str(self.store.collection.id) or not number.isdigit():
            return 0
        return int(number)

    def _record_intent(self, odd_generation: int) -> None:
        """Make ``odd_generation`` the intent generation readers see, before the data write."""
        if self.store.config.mode == "ephemeral":
            _EPHEMERAL_INTENTS[self.key] = (str(self.store.collection.id), odd_generation)
            return
        file = self._intent_marker_path()
        if file is None:
            return
        owner = self.store.collection.id
        record = f"{owner} {odd_generation:0{_INTENT_WIDTH}d}\n".encode("ascii")
        fd = os.open(file, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, record, 0)
            os.fdatasync(fd)  # durable before the data write: a crash after it is detected
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ writes
    def _take_writer_lock(self) -> None:
        """One writer process per embedded index (see :mod:`langchain_hybrid._locking`)."""
        if self.store.config.mode == "persistent":
            acquire_writer_lock(self.store.config.path)
        elif self.path is not None:
            acquire_writer_lock(self.path)

    @contextlib.contextmanager
    def write_guard(self) -> Iterator[None]:
        """Hold this collection's write locks (this process's, and the writer lock) for a block."""
        with self._lock:
            self._take_writer_lock()
            try:
                yield
            finally:
                self._count_local_write()

    def _begin(self, ids: Sequence[str] = ()) -> _Write:
        """Mark a write of ``ids`` as begun, before any data is written.

        With a change feed (``http``): the feed's intent (in the writer's slot, or a record for
        a large write), which replicas read as "a write under way" (if it fails, nothing was
        written). Without one, over HTTP: the odd
        generation in the collection metadata; embedded and in-memory: the odd intent marker
        (see the module docstring).
        """
        if self.feed is not None:
            return _Write(0, self.feed.intent(ids))
        if self.store.config.mode == "http":  # other clients see only the collection metadata
            return _Write(self.store.begin_write())
        current = self.write_generation()
        odd = current + 1 if current % 2 == 0 else current + 2
        self._record_intent(odd)
        return _Write(odd)

    def _finish(self, write: _Write, ids: Sequence[str] = ()) -> None:
        """Mark the write complete: next even generation, feed completion, then save BM25.

        The completion record is written by the feed's background thread (the write returns
        without waiting); if it never reaches the server, replicas apply the intent
        after its timeout instead.
        """
        self.bm25.generation = self.store.end_write(at_least=write.generation)
        if self.feed is not None and write.record is not None:
            self.feed.done(write.record, ids)
        self._save()

    def add(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        embeddings: Sequence[Sequence[float]],
        metadatas: Sequence[dict[str, Any] | None],
    ) -> None:
        """Write validated documents to both legs (an existing id is replaced).

        Raises:
            BatchWriteError: a Chroma batch failed; ``written_ids`` are in both legs,
                ``failed_ids`` in neither.
            WriterLockError: another process is writing to this embedded index.
        """
        with self.write_guard():
            write = self._begin(ids)
            try:
                self.store.upsert(ids, texts, embeddings, metadatas)
            except BatchWriteError as e:  # what was written is in both legs, then raise
                self._add_bm25(e.written_ids, texts, metadatas, ids)
                with contextlib.suppress(HybridRetrieverError):
                    self._finish(write, ids)
                raise
            self._add_bm25(ids, texts, metadatas, ids)
            self._finish(write, ids)

    def _add_bm25(
        self,
        written: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[dict[str, Any] | None],
        ids: Sequence[str],
    ) -> None:
        if written:
            position = {doc_id: i for i, doc_id in enumerate(ids)}
            rows = [position[doc_id] for doc_id in written]
            self.bm25.add(list(written), [texts[r] for r in rows], [metadatas[r] for r in rows])

    def delete(self, ids: Sequence[str]) -> None:
        """Delete validated, distinct ids from both legs; unknown ids are ignored."""
        with self.write_guard():
            write = self._begin(ids)
            self.store.delete(ids)
            self.bm25.delete(ids)
            self._finish(write, ids)

    def get(self, ids: Sequence[str]) -> list[StoredDocument]:
        """Documents stored under distinct ``ids`` in Chroma (unknown ids are left out)."""
        return self.store.get(ids)

    def apply_changes(self, ids: Sequence[str], bm25_generation: int | None = None) -> int:
        """Bring ``ids`` up to date in BM25 from what Chroma holds now; how many were stored.

        The seam for a change feed (a replica applying "these ids changed" records): an id
        stored in Chroma is (re)indexed with its stored text and metadata, an id absent from
        Chroma is removed from BM25. ``bm25_generation``: the write generation the records
        bring BM25 to (``None``: unchanged). Saved like a write (or at the end of
        :meth:`deferred_save`).
        """
        ids = list(dict.fromkeys(ids))
        with self._lock:
            stored = self._reindex_from_chroma(ids)
            if bm25_generation is not None:
                self.bm25.generation = bm25_generation
            self._save()
        return stored

    def _reindex_from_chroma(self, ids: list[str]) -> int:
        """(Re)index in BM25 the distinct ``ids`` Chroma holds, remove the others; how many held."""
        stored = self.store.get(ids) if ids else []
        present = {d.id for d in stored}
        gone = [i for i in ids if i not in present]
        if gone:
            self.bm25.delete(gone)
        if stored:
            self.bm25.add(
                [d.id for d in stored], [d.text for d in stored], [d.metadata for d in stored]
            )
        return len(stored)

    def _count_local_write(self) -> None:
        """Count a write for this process's other indexes of the collection."""
        with _REGISTRY_LOCK:
            current = _LOCAL_WRITE_COUNTS.get(self.key, 0)
            _LOCAL_WRITE_COUNTS[self.key] = current + 1
            if current == self._local_writes_synced:  # else another index wrote: still to sync
                self._local_writes_synced = current + 1

    def _save(self) -> None:
        if self.path is not None and not self._deferred_saves:
            with save_lock(self.path) as locked:
                if locked:
                    self.bm25.save(self.path)

    @contextlib.contextmanager
    def deferred_save(self) -> Iterator[None]:
        """Save the BM25 files once, when the block ends, instead of after every write.

        Writes from other threads (and other indexes of this collection) wait until the block
        ends. If the process dies inside the block, the saved BM25 index is older than the
        collection and is rebuilt from Chroma on the next open: nothing is lost.
        """
        with self._lock:
            self._deferred_saves += 1
            try:
                yield
            finally:
                self._deferred_saves -= 1
                self._save()

    # ------------------------------------------------------------------ other writers
    def local_writes_pending(self) -> bool:
        """Whether another index of this process wrote to the collection since the last sync."""
        return _LOCAL_WRITE_COUNTS.get(self.key, 0) != self._local_writes_synced

    def refresh(self) -> bool:
        """Pick up writes made to the collection by other processes (and other indexes).

        Compares the collection's write generation and count with the BM25 index's; if they
        differ, reopens the store and reloads (or rebuilds) the BM25 index. Skipped while this
        process is writing to the collection.

        Returns:
            Whether anything changed.
        """
        if not self._lock.acquire(blocking=False):
            return False
        try:
            if self.feed is not None:
                self._local_writes_synced = _LOCAL_WRITE_COUNTS.get(self.key, 0)
                return self._catch_up(self.feed)
            local_writes = _LOCAL_WRITE_COUNTS.get(self.key, 0)
            signal = self._change_signal()
            self._local_writes_synced = local_writes
            if signal == (self.bm25.generation, len(self.bm25)) and signal[0] % 2 == 0:
                return False
            # read before reopening, so the state recorded is never newer than the one loaded;
            # an odd generation (a write under way) keeps this resyncing until it settles
            logger.info("collection changed by another writer: reopening and syncing BM25")
            self.store.reopen()
            self.bm25, _ = self._load_or_rebuild_bm25(self.bm25.params, signal=signal)
            return True
        finally:
            self._lock.release()

    def writes_under_way(self) -> bool:
        """Whether the last catch-up saw other writers' writes begun and not yet complete.

        Their completion records follow within milliseconds (or their intents time out), so
        the retriever looks again sooner than its ``refresh_interval_seconds``.
        """
        return self.feed is not None and self.feed.cursor.unapplied > 0

    def _catch_up(self, feed: ChangeFeed) -> bool:
        """Apply the feed records not applied yet (a replica of an ``http`` store); changed?

        A catch-up reads the feed only (Chroma's ``count`` grows with the collection: 8 ms at
        20k documents here). When the feed is quiet, the generation and count are read, then
        the feed again: if it is still quiet, every write through this package that changed the
        collection before the count had its intent in that second read, so BM25 holds
        the state the count was taken from, and a count that differs was changed by a foreign
        writer: BM25 is rebuilt (and the event counted).
        """
        batch = feed.poll()
        counted: tuple[int, int] | None = None
        if batch.quiet and not batch.behind:
            seen = (self.write_generation(), self.store.count())
            batch = feed.poll()
            counted = seen if batch.quiet else None
        if batch.behind:
            logger.warning("feed compacted past this replica's watermark: rebuilding BM25 once")
            self.resync()
            return True
        if batch.ids:
            self.apply_changes(batch.ids)
        feed.commit(batch)
        if counted is not None and counted[1] != len(self.bm25):
            self.foreign_writes += 1
            logger.warning(
                "the collection holds %d documents, BM25 %d, and no feed record explains it: a "
                "write bypassed langchain-hybrid; rebuilding BM25",
                counted[1],
                len(self.bm25),
            )
            self.resync()
            return True
        if counted is not None:
            self.bm25.generation = counted[0]
        return bool(batch.ids)

    def resync(self, params: BM25Params | None = None) -> None:
        """Rebuild BM25 from everything Chroma holds now; the repair for foreign writes.

        For an ``http`` store, the replica follows the change feed again from the moment the
        rebuild began (records of writes under way then are applied once they complete).
        Replaces BM25 even when saves are deferred; saved like a write.
        """
        with self._lock:
            for attempt in range(1, _REBUILD_ATTEMPTS + 1):
                if self._rebuild(params) or attempt == _REBUILD_ATTEMPTS:
                    break
                logger.info("a write moved documents while BM25 was rebuilt: rebuilding again")
            self._save()

    def _rebuild(self, params: BM25Params | None) -> bool:
        """Rebuild BM25, then apply the feed from the rebuild's start; whether it is whole.

        Chroma pages by offset: a delete during the rebuild can shift a document past the
        pages read. Such a document is named by no feed record, so when the feed is quiet
        after the catch-up, a count that differs from BM25's means the rebuild missed it.
        """
        started = self.feed.clock() if self.feed is not None else 0.0
        generation = self.write_generation()
        rebuilt = rebuild_bm25(self.store, params or self.bm25.params)
        rebuilt.generation = generation
        self.bm25 = rebuilt
        if self.feed is None:
            return True
        self.feed.restart(started)  # writes that ended during the rebuild: applied again
        count = self.store.count()
        batch = self.feed.poll()
        if batch.ids:
            self.apply_changes(batch.ids)
        self.feed.commit(batch)
        return not batch.quiet or count == len(self.bm25)

    # ------------------------------------------------------------------ status
    def status(self) -> IndexStatus:
        """The pair's state, read without side effects; never raises.

        The collection is read as a seqlock (generation, count, generation again), after a
        heartbeat. Nothing is written, settled or rebuilt, and the writer lock is never taken:
        an odd generation is checked against it with a non-blocking probe.
        """
        collection: CollectionState | None = None
        store_error: Exception | None = None
        try:
            self.store.heartbeat()
            generation = self.write_generation()
            count = self.store.count()
            collection = CollectionState(generation, count, self.write_generation())
        except Exception as e:  # noqa: BLE001 - a failed probe is a finding, not an error
            store_error = e
        dead = collection is not None and self._writer_died(collection)
        unapplied: int | None = None
        since: float | None = None
        if self.feed is not None and store_error is None:
            try:
                unapplied, since = self.feed.lag()
            except Exception as e:  # noqa: BLE001 - a failed probe is a finding
                store_error = e
        bm25_documents = bm25_generation = None
        bm25_error: Exception | None = None
        try:
            bm25_documents = len(self.bm25)
            bm25_generation = self.bm25.generation
        except Exception as e:  # noqa: BLE001
            bm25_error = e
        return IndexStatus(
            collection,
            store_error,
            dead,
            bm25_documents,
            bm25_generation,
            bm25_error,
            None if self.path is None else _read_saved(self.path),
            unapplied,
            since,
            self.foreign_writes,
        )

    def _writer_died(self, state: CollectionState) -> bool:
        """An odd generation, no process holds the writer lock, and it did not move meanwhile."""
        config = self.store.config
        if state.latest != state.generation or state.generation % 2 == 0:
            return False
        if config.mode != "persistent" or writer_lock_free(config.path) is not True:
            return False
        try:
            return self.write_generation() == state.generation
        except Exception:  # noqa: BLE001 - cannot tell: not reported as dead
            return False


def _read_saved(path: Path) -> SavedState:
    """The saved BM25 manifest at ``path`` (read only; ``error`` if missing or corrupt)."""
    try:
        manifest: Mapping[str, Any] = BM25Index.read_manifest(path)
    except (FileNotFoundError, IndexCorruptError) as e:
        return SavedState(path, error=e)
    generation, documents = manifest.get("generation"), manifest.get("documents")
    return SavedState(
        path,
        generation if isinstance(generation, int) else None,
        documents if isinstance(documents, int) else None,
        manifest.get("params"),
    )


def _load_saved(path: Path) -> BM25Index | FileNotFoundError | IndexCorruptError:
    """The BM25 index saved at ``path`` as it is, or why it cannot be loaded (missing, corrupt)."""
    try:
        return BM25Index.load(path)
    except (FileNotFoundError, IndexCorruptError) as e:
        return e


def _saved_or_reason(path: Path | None) -> tuple[BM25Index | None, str]:
    """The saved BM25 index, or ``None`` and why there is none to use."""
    if path is None:
        return None, "no BM25 path (in-memory index)"
    saved = _load_saved(path)
    if isinstance(saved, FileNotFoundError):
        return None, "BM25 index missing"
    if isinstance(saved, IndexCorruptError):
        return None, f"BM25 index corrupt ({saved})"
    return saved, ""


def _saved_mismatch(
    saved: BM25Index, params: BM25Params | None, generation: int, count: int
) -> str:
    """Why the saved BM25 index does not match the collection at ``(generation, count)``; ``""``."""
    if params is not None and saved.params != params:
        return "BM25 settings changed"
    if saved.generation != generation or len(saved) != count:
        return (
            f"BM25 index stale (generation {saved.generation} vs {generation}, "
            f"{len(saved)} vs {count} documents)"
        )
    return ""


def rebuild_bm25(store: ChromaStore, params: BM25Params | None = None) -> BM25Index:
    """Build a BM25 index from every document stored in ``store`` (no embedding involved)."""
    index = BM25Index(params)
    for page in store.iter_all():
        index.add([d.id for d in page], [d.text for d in page], [d.metadata for d in page])
    return index


def sync_bm25(
    store: ChromaStore,
    path: Path | None,
    params: BM25Params | None = None,
    *,
    check_vectors: bool = False,
) -> BM25Index:
    """The BM25 index of ``store`` as :meth:`HybridIndex.open` makes it (loaded or rebuilt)."""
    return HybridIndex.open(store, path, params, check_vectors=check_vectors).bm25


def change_signal(client: Any, collection: str) -> Callable[[], tuple[int, int]]:
    """A reader of the change signal of a collection opened by another library's client.

    The signal is the pair :meth:`HybridIndex.refresh` compares to notice writes: the write
    generation readers go by (:meth:`HybridIndex.write_generation`, the odd marker of a write under
    way included) and the document count. This gives the same reading for a ``chromadb`` client
    opened elsewhere, such as ``langchain_chroma.Chroma``'s (see
    :func:`~langchain_hybrid.vectorstore_cache.chroma_staleness_check`): the collection is
    opened as a :class:`ChromaStore` with the HNSW settings it already has, so nothing is
    created or modified, and each call of the returned function reads the pair afresh.

    Args:
        client: a ``chromadb`` client (embedded persistent, ephemeral, or HTTP).
        collection: the collection's name in Chroma.

    Returns:
        A function returning ``(generation, documents)``.

    Raises:
        IndexNotBuiltError: the collection does not exist.
        StoreError: Chroma failed (``StoreUnavailableError``: it cannot be reached).
        ConfigError: the name is not one :class:`StoreConfig` accepts.
    """
    from chromadb.errors import NotFoundError  # noqa: PLC0415 - chromadb loads lazily here

    try:
        settings = client.get_settings()
        found = client.get_collection(collection)
    except NotFoundError as e:
        msg = f"collection {collection!r} does not exist"
        raise IndexNotBuiltError(msg) from e
    except Exception as e:
        msg = f"Chroma failed in get_collection: {type(e).__name__}: {e}"
        raise StoreError(msg) from e
    configuration = getattr(found, "configuration_json", None) or {}
    hnsw = {**(configuration.get("hnsw") or {}), **hnsw_from_legacy_metadata(found.metadata)}
    fields: dict[str, Any] = {
        "collection": collection,
        "hnsw": HNSWConfig(**{k: v for k, v in hnsw.items() if k in HNSWConfig.model_fields}),
        "tenant": client.tenant,
        "database": client.database,
        **_client_location(settings),
    }
    try:
        config = StoreConfig(**fields)
    except ValidationError as e:
        msg = f"collection {collection!r} cannot be watched: {e}"
        raise ConfigError(msg) from e
    store = ChromaStore(config, client=client, create_if_missing=False)
    index = HybridIndex(store, BM25Index())

    def read() -> tuple[int, int]:
        return index.write_generation(), store.count()

    return read


def _client_location(settings: Any) -> dict[str, Any]:
    """The :class:`StoreConfig` mode and location fields of a client's ``Settings``."""
    if "fastapi" in str(settings.chroma_api_impl).lower():
        port = settings.chroma_server_http_port
        host = settings.chroma_server_host or "localhost"
        return {"mode": "http", "host": host, **({"port": int(port)} if port else {})}
    if settings.is_persistent:
        return {"mode": "persistent", "path": str(settings.persist_directory)}
    return {"mode": "ephemeral"}
