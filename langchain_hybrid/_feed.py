"""The replica change feed: which ids each write changed, kept in a companion Chroma collection.

Several app replicas share one ``chroma run`` server (``store.mode: http``); vectors live on the
server, each replica's BM25 leg is its own. Every write through :class:`~langchain_hybrid.index.
HybridIndex` records the ids it changed in the collection ``<collection>-feed`` on the same
server; every replica reads the records it has not applied yet and brings those ids up to date
from what Chroma holds now (:meth:`HybridIndex.apply_changes`): present ids are re-indexed with
their stored text and metadata, absent ids are removed. Catching up costs one feed read plus one
``get`` of the changed ids: proportional to the changes, not to the collection.

Design (no compare-and-swap needed; Chroma is the truth):

* **A record** is one Chroma entry per write: id ``<writer>.<seq>`` (a random writer id per
  :class:`ChangeFeed`, a counter per writer), the changed ids as a JSON list in its document,
  metadata ``writer``, ``seq``, ``state`` and ``t`` (the writer's wall clock, seconds), and a
  one-dimensional dummy vector. Records carry no content and no global order: a replica re-reads
  the named ids, so applying records in any order, or twice, gives the same state.
* **Intent, then completion.** *Before* its data write the writer announces it: a write of up
  to 64 ids in its **slot**, a companion collection ``<collection>-feed.<writer>`` whose
  metadata holds that writer's unfinished writes (``{seq: ids}``), rewritten whole by one
  metadata ``modify`` (a third of the cost of a record's data write on ``chroma run``; only its
  writer modifies a slot and a writer's writes are serialised, so nothing is lost without a
  compare-and-swap); a larger write adds its record with ``state: "intent"``. *After* the data
  write the record is written with ``state: "done"`` and a fresh ``t``, and the write leaves
  the slot (a background thread writes completions, several per call when they queue up, so a
  write waits for its intent only; :meth:`ChangeFeed.flush` waits for them, and
  :meth:`ChangeFeed.close` runs at interpreter exit: it deletes the slot if it names no write).
  A replica reads every slot with one ``list_collections`` per poll. A
  replica applies a record once it is ``done`` (it re-reads the ids after the data write ended,
  so it sees that write or a later one, and any later write has its own record). An intent that
  stays pending for ``intent_timeout_seconds`` on the replica's own monotonic clock (its writer
  died between its data write and its completion, or failed midway) is applied as it is:
  whatever the writer got into Chroma is re-read. If it completes later, it is applied again.
* **What a replica applied** (:class:`FeedCursor`): a time watermark with an overlap window and
  the record ids applied inside it. The watermark is the largest ``t`` seen; each poll reads the
  records with ``t >= watermark - overlap_seconds`` (one ``get`` with a ``where`` filter, ids
  and metadata only), skips those already applied in the same state, and fetches the id lists of
  the others (a second ``get``). A replica's own completed writes are already in its BM25 leg:
  it marks them applied without re-reading.
* **Clocks.** Only writers' wall clocks are compared with each other (``t``); a replica's
  timeouts and lag use its own monotonic clock. A record is missed only if it becomes visible
  more than ``overlap_seconds`` (default 30 s) after a record stamped later by another writer:
  keep writers' clocks within a few seconds of each other (NTP) and the window covers the rest.
* **Compaction.** Every ``compact_every`` writes, a writer deletes the records older than
  ``retention_seconds`` (default 1 h) by its clock, and other writers' slots untouched for as
  long (their writers are gone; a live writer recreates a dropped slot), after raising its own
  marker record
  (``~compacted.<writer>``, ``before``: the cutoff; markers carry ``t`` = 1e18 so every poll
  reads them; one marker per writer, so compactors never overwrite each other). A replica whose
  window starts before the largest marker may have missed deleted records: it rebuilds its BM25
  leg from Chroma once and restarts its watermark (:attr:`FeedBatch.behind`).
* **Foreign writers** (clients writing to the collection without this package) leave no record.
  :meth:`HybridIndex.refresh` compares the collection count with the BM25 leg when the feed is
  quiet (no new and no pending records, in a read before the count and one after it): a foreign
  write that changed the count is detected there and repaired by a rebuild. A catch-up that has
  records to apply reads no count (Chroma's ``count`` grows with the collection). A
  count-neutral foreign write (an update of existing ids) cannot be seen without reading every
  document; health says so, and ``resync()`` repairs it.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from langchain_hybrid.errors import StoreError

if TYPE_CHECKING:
    from langchain_hybrid.stores import ChromaStore

logger = logging.getLogger(__name__)

FEED_SUFFIX = "-feed"
"""The companion collection is named ``<chroma collection>-feed``."""
MARKER_PREFIX = "~compacted."
_MARKER_T = 1.0e18  # a marker's ``t``: inside every poll window
_DUMMY = [0.0]  # the feed collection's one-dimensional placeholder vector
SLOT_KEYS = ("lh_writer", "lh_t", "lh_unfinished")
"""Metadata keys of a writer's intent slot: its writer id, clock, and unfinished writes."""
_SLOT_MAX_IDS = 64
"""Writes of up to this many ids announce their intent in the writer's slot (a metadata
``modify``); larger ones with an intent record (their data write dwarfs either)."""
_MAX_NAME = 512  # Chroma's longest collection name
_MAX_APPLIED = 20_000
"""Own completions remembered by a process that writes but never polls (a later poll that
meets a forgotten one re-reads its ids from Chroma: harmless, applying is idempotent)."""

State = Literal["intent", "done"]


class FeedSettings(BaseModel):
    """How the change feed is read and compacted (the defaults suit NTP-synchronised hosts).

    Attributes:
        overlap_seconds: how far before its watermark a replica re-reads the feed; must exceed
            the clock skew between writers plus the time a record takes to become visible.
        intent_timeout_seconds: a record still ``intent`` this long after a replica first saw
            it is applied as it is (its writer died or failed mid-write).
        retention_seconds: records older than this are deleted by compaction.
        compact_every: a writer compacts after this many of its writes (``0``: never).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    overlap_seconds: float = Field(default=30.0, gt=0, allow_inf_nan=False)
    intent_timeout_seconds: float = Field(default=60.0, gt=0, allow_inf_nan=False)
    retention_seconds: float = Field(default=3600.0, gt=0, allow_inf_nan=False)
    compact_every: int = Field(default=500, ge=0)


class FeedRecord(NamedTuple):
    """A record as the feed's metadata shows it (without its id list)."""

    id: str
    writer: str
    seq: int
    state: State
    t: float


class FeedBatch(NamedTuple):
    """What one poll found (see :meth:`ChangeFeed.poll`); applied with :meth:`ChangeFeed.commit`.

    Attributes:
        ids: the document ids to bring up to date (from completed and timed-out records).
        records: the records this batch applies, with the state applied.
        seen_pending: intent records seen pending (record id -> its ``t``).
        resolved: records waited for as intents that are now ``done`` (fresh or already
            applied: this replica's own completions).
        pending: how many intents are still pending after this batch (writes under way).
        behind: compaction deleted records this replica may not have applied: rebuild.
        max_t: the largest writer clock seen (the next watermark).
    """

    ids: list[str]
    records: list[FeedRecord]
    seen_pending: dict[str, float]
    resolved: frozenset[str]
    pending: int
    behind: bool
    max_t: float | None

    @property
    def quiet(self) -> bool:
        """Nothing new and nothing pending: the feed names no write since the last poll."""
        return not self.records and not self.pending


class FeedCursor:
    """What one replica applied.

    A watermark, the records applied within the overlap window, the intents seen pending, and
    when it was last caught up (its own monotonic clock).
    """

    def __init__(self, watermark: float) -> None:
        """Start at ``watermark`` (a writer-clock time): records from ``watermark - overlap``."""
        self.watermark = watermark
        self.applied: dict[str, tuple[State, float]] = {}
        self.pending: dict[str, float] = {}  # record id -> monotonic time first seen pending
        self.caught_up_at: float | None = None
        self.unapplied = 0  # records not applied at the last poll (for status)


class ChangeFeed:
    """The change feed of one collection: producer (writes) and consumer (a replica's cursor).

    Setup:
        Part of the core install. :class:`~langchain_hybrid.index.HybridIndex` creates one for
        an ``http`` store; nothing to configure.

    Key init args:
        store: the Chroma store whose collection the feed follows (the feed lives beside it).
        settings: overlap, intent timeout, retention, compaction period.
        clock: the wall clock records are stamped with (``time.time``).

    Instantiate:
        ```python
        from langchain_hybrid._feed import ChangeFeed

        feed = ChangeFeed(store)
        ```

    Usage:
        ```python
        record = feed.intent(["a", "b"])  # before the data write
        feed.done(record, ["a", "b"])  # after it
        batch = feed.poll()  # on a replica
        index.apply_changes(batch.ids)
        feed.commit(batch)
        ```
    """

    def __init__(
        self,
        store: ChromaStore,
        settings: FeedSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """Follow ``store``'s collection; no I/O until the first read or write."""
        self.store = store
        self.settings = settings or FeedSettings()
        self.clock = clock
        self.monotonic = monotonic
        self.name = f"{store.config.chroma_collection}{FEED_SUFFIX}"
        self._writes_since_compaction = 0
        self._collection: Any = None
        self._lock = threading.Lock()
        self._seen_slot_ids: dict[str, list[str]] = {}  # intents read from slots: their ids
        self._done = threading.Condition()
        self._new_writer()
        self.cursor = FeedCursor(clock())

    # ------------------------------------------------------------------ the collection
    def _feed(self, *, create: bool) -> Any:
        """The feed collection (created by writers; ``None`` for readers if it does not exist)."""
        if self._collection is not None:
            return self._collection
        store = self.store
        if create:
            self._collection = store.call(
                "get_or_create_collection",
                store.client.get_or_create_collection,
                self.name,
                embedding_function=None,
            )
            return self._collection
        from chromadb.errors import NotFoundError  # noqa: PLC0415

        try:
            self._collection = store.call(
                "get_collection", store.client.get_collection, self.name, embedding_function=None
            )
        except StoreError as e:
            if isinstance(e.__cause__, NotFoundError):
                return None  # no write has recorded anything yet
            raise
        return self._collection

    # ------------------------------------------------------------------ producer
    def _new_writer(self) -> None:
        """A writer id of this process (a forked child gets its own: record ids never clash)."""
        self._pid = os.getpid()
        self.writer = uuid.uuid4().hex[:16]
        self._seq = 0
        self._queue: list[tuple[str, list[str]]] = []
        self._flushing = 0
        self._thread: threading.Thread | None = None
        self._slot: Any = None
        self._unfinished: dict[int, list[str]] = {}  # seq -> ids, until its completion is written
        self._slot_lock = threading.Lock()  # slot modifies, foreground and background, in turn

    def intent(self, ids: Sequence[str]) -> str:
        """Record that a write of ``ids`` begins (before the data write); returns the record id.

        Raises:
            StoreUnavailableError: the server did not take the record (nothing was written).
        """
        with self._lock:
            if self._pid != os.getpid():
                self._new_writer()
            self._seq += 1
            seq = self._seq
        record = f"{self.writer}.{seq:012d}"
        if len(ids) <= _SLOT_MAX_IDS and len(self._slot_name()) <= _MAX_NAME:
            with self._slot_lock:
                self._unfinished[seq] = list(ids)
                try:
                    self._write_slot()
                except BaseException:
                    self._unfinished.pop(seq, None)
                    raise
        else:
            self._put([(record, list(ids))], "intent", add=True)
        return record

    def _slot_name(self) -> str:
        """This writer's intent slot: a companion collection only this writer modifies."""
        return f"{self.name}.{self.writer}"

    def _write_slot(self) -> None:
        """Write this writer's unfinished writes into its slot's metadata (``_slot_lock`` held).

        One metadata ``modify`` (a third of a record's data write on ``chroma run``). Only this
        writer modifies its slot and its writes are serialised, so the whole state is written
        each time and no compare-and-swap is needed. A slot deleted by compaction (it lay idle
        past ``retention_seconds``) is created again.
        """
        from chromadb.errors import NotFoundError  # noqa: PLC0415

        unfinished = {str(seq): ids for seq, ids in self._unfinished.items()}
        metadata = dict(
            zip(
                SLOT_KEYS,
                (self.writer, self.clock(), json.dumps(unfinished, ensure_ascii=False)),
                strict=True,
            )
        )
        store = self.store
        for attempt in (1, 2):
            if self._slot is None:
                self._slot = store.call(
                    "get_or_create_collection",
                    store.client.get_or_create_collection,
                    self._slot_name(),
                    embedding_function=None,
                )
            try:
                store.call("feed intent", self._slot.modify, metadata=metadata)
            except StoreError as e:
                if attempt == 1 and isinstance(e.__cause__, NotFoundError):
                    self._slot = None
                    continue
                raise
            return

    def done(self, record: str, ids: Sequence[str], *, wait: bool = False) -> None:
        """Record that the write of ``record`` ended (after the data write), in the background.

        The completion is queued and written by this feed's background thread (several queued
        completions in one call), so a write returns without waiting for it; :meth:`flush`
        waits (it runs at interpreter exit too). If it never reaches the server (the process
        died, the server failed), replicas apply the intent after ``intent_timeout_seconds``.
        Every ``compact_every`` completions, the thread also compacts the feed.

        Args:
            record: the id :meth:`intent` returned.
            ids: the ids the write changed.
            wait: write it before returning (:meth:`flush`).
        """
        applied = self.cursor.applied
        applied[record] = ("done", self.clock())  # already in this index
        if len(applied) > _MAX_APPLIED:  # a writer that never polls: forget the oldest half
            for old in sorted(applied, key=lambda r: applied[r][1])[: len(applied) // 2]:
                del applied[old]
        with self._done:
            self._queue.append((record, list(ids)))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._complete, name=f"feed-{self.writer}", daemon=True
                )
                self._thread.start()
                _FEEDS.add(self)
            self._done.notify_all()
        if wait:
            self.flush()

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until every queued completion was written (or failed); whether it finished."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._done:
            while self._queue or self._flushing:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._done.wait(left)
        return True

    def _complete(self) -> None:
        """The background thread: write queued completions, then compact when due."""
        while True:
            with self._done:
                while not self._queue:
                    if not self._done.wait(timeout=5.0) and not self._queue:
                        self._thread = None  # idle: the next completion starts a new thread
                        return
                batch, self._queue = self._queue, []
                self._flushing = len(batch)
            try:
                self._put(batch, "done", add=False)
                self._finish_slot(batch)
            except Exception as e:  # noqa: BLE001 - replicas time the intents out instead
                logger.warning("feed completion of %d writes failed: %s", len(batch), e)
            self._writes_since_compaction += len(batch)
            every = self.settings.compact_every
            if every and self._writes_since_compaction >= every:
                self._writes_since_compaction = 0
                try:
                    self.compact()
                except Exception as e:  # noqa: BLE001 - retried after the next completions
                    logger.warning("feed compaction failed: %s", e)
            with self._done:
                self._flushing = 0
                self._done.notify_all()

    def _finish_slot(self, batch: list[tuple[str, list[str]]]) -> None:
        """Drop completed writes from the slot (their completion records are written)."""
        with self._slot_lock:
            dropped = [self._unfinished.pop(int(r.rpartition(".")[2]), None) for r, _ in batch]
            if any(d is not None for d in dropped):
                self._write_slot()

    def _put(self, records: list[tuple[str, list[str]]], state: State, *, add: bool) -> None:
        feed = self._feed(create=True)
        now = self.clock()
        metadatas = [
            {"writer": self.writer, "seq": int(r.rpartition(".")[2]), "state": state, "t": now}
            for r, _ in records
        ]
        fn = feed.add if add else feed.upsert
        self.store.call(
            f"feed {state}",
            fn,
            ids=[r for r, _ in records],
            documents=[json.dumps(ids, ensure_ascii=False) for _, ids in records],
            embeddings=[_DUMMY] * len(records),
            metadatas=metadatas,
        )

    def compact(self) -> int:
        """Delete records older than ``retention_seconds`` (this writer's clock); how many.

        This writer's marker is raised to the cutoff first, so a replica that reads the feed
        between the two steps already knows it must rebuild.
        """
        feed = self._feed(create=True)
        cutoff = self.clock() - self.settings.retention_seconds
        marker = f"{MARKER_PREFIX}{self.writer}"
        self.store.call(
            "feed marker",
            feed.upsert,
            ids=[marker],
            documents=["[]"],
            embeddings=[_DUMMY],
            metadatas=[
                {"writer": self.writer, "state": "marker", "t": _MARKER_T, "before": cutoff}
            ],
        )
        old = self.store.call("feed get", feed.get, where={"t": {"$lt": cutoff}}, include=[])
        doomed = list(old["ids"])
        step = self.store.batch_size
        for start in range(0, len(doomed), step):
            self.store.call("feed delete", feed.delete, ids=doomed[start : start + step])
        if doomed:
            logger.info(
                "feed %s: compacted %d records older than %.0f", self.name, len(doomed), cutoff
            )
        self._drop_idle_slots(cutoff)
        return len(doomed)

    def _drop_idle_slots(self, cutoff: float) -> None:
        """Delete other writers' slots untouched since ``cutoff`` (writers gone long ago).

        Their unfinished writes, if any, were applied by every replica after
        ``intent_timeout_seconds``; a replica starting later rebuilds from Chroma. A live
        writer whose slot was dropped creates it again at its next write.
        """
        store, own = self.store, self._slot_name()
        for name, meta in self._slots():
            t = meta.get("lh_t")
            if isinstance(t, int | float) and t < cutoff and name != own:
                try:
                    store.call("delete_collection", store.client.delete_collection, name)
                except StoreError as e:  # another compactor was first, or the server failed
                    logger.debug("feed slot %s not dropped: %s", name, e)

    def close(self) -> None:
        """Write queued completions, then delete this writer's slot if it names no write.

        Runs at interpreter exit. A slot left behind (the process was killed) is dropped by
        a later compaction once idle for ``retention_seconds``.
        """
        self.flush(timeout=10.0)
        with self._slot_lock:
            if self._slot is None or self._unfinished or self._pid != os.getpid():
                return
            store = self.store
            try:
                store.call("delete_collection", store.client.delete_collection, self._slot_name())
            except Exception as e:  # noqa: BLE001 - at exit: a later compaction drops it
                logger.debug("feed slot %s not deleted at exit: %s", self._slot_name(), e)
            self._slot = None

    # ------------------------------------------------------------------ consumer
    def restart(self, watermark: float | None = None) -> None:
        """Forget what was applied and start at ``watermark`` (default: now), after a rebuild.

        Call it with the time read *before* the rebuild started: records from then on (minus
        the overlap) are applied again, which is harmless.
        """
        self.cursor = FeedCursor(self.clock() if watermark is None else watermark)
        self.cursor.caught_up_at = self.monotonic()

    def poll(self) -> FeedBatch:
        """Read the records this replica has not applied (two ``get`` calls at most).

        Pure with respect to the cursor: :meth:`commit` records what was applied, after the
        caller applied ``ids`` (so a failure in between loses nothing).

        Raises:
            StoreError: the server did not answer.
        """
        cursor, settings = self.cursor, self.settings
        slots = self._slot_intents()  # read first: a write it names is then in the feed read
        feed = self._feed(create=False)
        if feed is None and not slots:
            return FeedBatch([], [], {}, frozenset(), 0, behind=False, max_t=None)
        low = cursor.watermark - settings.overlap_seconds
        got: dict[str, Any] = {"ids": [], "metadatas": []}
        if feed is not None:
            got = self.store.call(
                "feed get", feed.get, where={"t": {"$gte": low}}, include=["metadatas"]
            )
        now = self.monotonic()
        waiting = dict(cursor.pending)  # a copy: status() polls without the index's lock
        scan = _Scan(low, waiting, cursor.applied)
        for record_id, meta in zip(got["ids"], got["metadatas"] or [], strict=True):
            scan.see(record_id, meta)
        finished = {f.id for f in scan.fresh} | scan.resolved
        for record_id, (meta, named) in slots.items():
            applied = cursor.applied.get(record_id)
            if record_id in finished or (applied is not None and applied[0] == "done"):
                continue  # its completion is read (or applied): the slot lags behind it
            self._seen_slot_ids[record_id] = named
            scan.see(record_id, meta)
        timeout = settings.intent_timeout_seconds
        stale = [
            r for r, seen in waiting.items() if now - seen >= timeout and r not in scan.resolved
        ]
        fresh_ids = {f.id for f in scan.fresh}
        ids = self._ids([*fresh_ids, *stale], feed) if fresh_ids or stale else []
        records = scan.fresh + [FeedRecord(r, "", 0, "intent", 0.0) for r in stale]
        still = (set(waiting) | set(scan.pending)) - scan.resolved - fresh_ids - set(stale)
        return FeedBatch(
            ids,
            records,
            scan.pending,
            frozenset(scan.resolved),
            len(still),
            behind=scan.behind,
            max_t=scan.max_t,
        )

    def _slot_intents(self) -> dict[str, tuple[dict[str, Any], list[str]]]:
        """Every writer's unfinished writes, from the slots' metadata (one ``list_collections``).

        Returns:
            record id -> (its metadata as an intent record, the ids it names).
        """
        out: dict[str, tuple[dict[str, Any], list[str]]] = {}
        for name, meta in self._slots():
            writer, t, raw = (meta.get(key) for key in SLOT_KEYS)
            if writer is None and raw is None:
                continue  # a collection of that name that is not a slot
            try:
                unfinished = json.loads(raw) if isinstance(raw, str) else None
                if not (
                    isinstance(writer, str)
                    and isinstance(t, int | float)
                    and isinstance(unfinished, dict)
                ):
                    raise TypeError  # noqa: TRY301 - one handler for every malformed slot
                for seq, named in unfinished.items():
                    record = {"writer": writer, "seq": int(seq), "state": "intent", "t": float(t)}
                    out[f"{writer}.{int(seq):012d}"] = (record, [str(i) for i in named])
            except (ValueError, TypeError):
                logger.warning("feed slot %r is unreadable: ignored", name)
        return out

    def _slots(self) -> list[tuple[str, dict[str, Any]]]:
        """The writers' slots on the server: name and metadata (one ``list_collections``)."""
        prefix, store = f"{self.name}.", self.store
        slots = []
        for collection in store.call("list_collections", store.client.list_collections):
            name = getattr(collection, "name", "")
            if isinstance(name, str) and name.startswith(prefix):
                slots.append((name, dict(getattr(collection, "metadata", None) or {})))
        return slots

    def _ids(self, records: list[str], feed: Any) -> list[str]:
        out: dict[str, None] = {}
        in_feed = []
        for record in records:
            named = self._seen_slot_ids.get(record)
            if named is None:
                in_feed.append(record)
            else:
                out.update(dict.fromkeys(named))
        if not in_feed or feed is None:
            return list(out)
        got = self.store.call("feed get", feed.get, ids=in_feed, include=["documents"])
        for text in got["documents"] or []:
            try:
                named = json.loads(text or "[]")
            except ValueError:
                logger.warning("feed record with an unreadable id list ignored")
                continue
            out.update(dict.fromkeys(str(i) for i in named))
        return list(out)

    def commit(self, batch: FeedBatch) -> None:
        """Record ``batch`` as applied: advance the watermark, drop what left the window."""
        cursor = self.cursor
        now = self.monotonic()
        for record in batch.records:  # done, or a timed-out intent applied as it is
            cursor.applied[record.id] = (record.state, record.t or cursor.watermark)
            cursor.pending.pop(record.id, None)
        for record_id in batch.resolved:
            cursor.pending.pop(record_id, None)
        for record_id in [r for r in self._seen_slot_ids if r not in cursor.pending]:
            if record_id in cursor.applied or record_id in batch.resolved:
                del self._seen_slot_ids[record_id]
        for record_id in batch.seen_pending:
            cursor.pending.setdefault(record_id, now)
        if batch.max_t is not None and math.isfinite(batch.max_t):
            cursor.watermark = max(cursor.watermark, batch.max_t)
        low = cursor.watermark - self.settings.overlap_seconds
        for record_id in [r for r, (_, t) in cursor.applied.items() if t < low]:
            del cursor.applied[record_id]
        cursor.unapplied = batch.pending
        cursor.caught_up_at = now

    def lag(self) -> tuple[int, float | None]:
        """Records not yet applied (read now, without applying) and seconds since caught up.

        Raises:
            StoreError: the server did not answer.
        """
        batch = self.poll()
        unapplied = len(batch.records) + batch.pending
        caught = self.cursor.caught_up_at
        since = None if caught is None else max(0.0, self.monotonic() - caught)
        if unapplied == 0 and not batch.behind:
            since = 0.0
        return unapplied, since


class _Scan:
    """One poll's pass over the records in its window (see :meth:`ChangeFeed.poll`).

    Sorts each record into: done and not applied yet (``fresh``), an intent seen for the first
    time (``pending``), an intent waited for that is now done (``resolved``); a compaction
    marker past the window's start sets ``behind``; ``max_t`` is the largest writer clock.
    """

    def __init__(
        self, low: float, waiting: dict[str, float], applied: dict[str, tuple[State, float]]
    ) -> None:
        self.low, self.waiting, self.applied = low, waiting, applied
        self.fresh: list[FeedRecord] = []
        self.pending: dict[str, float] = {}
        self.resolved: set[str] = set()
        self.behind = False
        self.max_t: float | None = None

    def see(self, record_id: str, meta: object) -> None:
        """Take one entry of the feed collection into account."""
        if record_id.startswith(MARKER_PREFIX):  # compaction deleted records before ``before``
            before = meta.get("before") if isinstance(meta, dict) else None
            self.behind |= isinstance(before, int | float) and before > self.low
            return
        record = _record(record_id, meta)
        if record is None:
            return
        self.max_t = record.t if self.max_t is None else max(self.max_t, record.t)
        if record.state == "done" and record_id in self.waiting:
            self.resolved.add(record_id)
        applied = self.applied.get(record_id)
        if applied is not None and applied[0] == record.state:
            return
        if record.state == "done":
            self.fresh.append(record)
        elif record_id not in self.waiting:
            self.pending[record_id] = record.t


def _record(record_id: str, meta: object) -> FeedRecord | None:
    """A feed record from its id and metadata; ``None`` (logged) if it is not one."""
    if not isinstance(meta, dict):
        return None
    writer, seq, state, t = meta.get("writer"), meta.get("seq"), meta.get("state"), meta.get("t")
    if (
        not isinstance(writer, str)
        or not isinstance(seq, int)
        or state not in {"intent", "done"}
        or not isinstance(t, int | float)
    ):
        logger.warning("feed entry %r is not a record: ignored", record_id)
        return None
    return FeedRecord(record_id, writer, seq, "done" if state == "done" else "intent", float(t))


_FEEDS: weakref.WeakSet[ChangeFeed] = weakref.WeakSet()
"""Feeds with a completion thread: flushed at interpreter exit."""


@atexit.register
def _flush_all() -> None:
    for feed in list(_FEEDS):
        feed.close()
