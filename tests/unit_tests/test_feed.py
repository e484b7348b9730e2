"""The replica change feed: records, cursor, intent timeout, overlap, compaction, foreign writes.

In-process Chroma: the feed only needs a Chroma client, and two :class:`HybridIndex` objects on
one in-memory collection (each with its own feed writer id) behave as two replicas of one
server. ``tests/integration_tests/test_replicas.py`` runs the same protocol over ``chroma run``
with several processes.
"""

from __future__ import annotations

import json

import pytest
from helpers import HashEmbeddings

from langchain_hybrid import ChromaStore, StoreConfig
from langchain_hybrid import _feed as feed_module
from langchain_hybrid._feed import FEED_SUFFIX, ChangeFeed, FeedSettings
from langchain_hybrid.index import HybridIndex, rebuild_bm25

EMB = HashEmbeddings(16)


class Clock:
    """A hand-driven clock (wall or monotonic) for the feed's timeouts and windows."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _store(collection: str) -> ChromaStore:
    return ChromaStore(StoreConfig(mode="ephemeral", collection=collection))


def _replica(collection: str, settings: FeedSettings | None = None) -> HybridIndex:
    return HybridIndex.open(_store(collection), feed=settings or FeedSettings())


def _add(index: HybridIndex, docs: dict[str, str], meta: dict[str, object] | None = None) -> None:
    texts = list(docs.values())
    index.add(list(docs), texts, EMB.embed_documents(texts), [meta] * len(docs))
    if index.feed is not None:
        assert index.feed.flush()  # the completion record is written in the background


def _state(index: HybridIndex) -> dict[str, tuple[str, dict[str, object]]]:
    hits = index.bm25.get(index.bm25.ids)
    return {h.id: (h.text, h.metadata) for h in hits if h is not None}


def _truth(index: HybridIndex) -> dict[str, tuple[str, dict[str, object]]]:
    """The oracle: a BM25 index rebuilt from scratch from what Chroma holds."""
    rebuilt = rebuild_bm25(index.store)
    hits = rebuilt.get(rebuilt.ids)
    return {h.id: (h.text, h.metadata) for h in hits if h is not None}


def test_a_record_is_an_intent_before_the_write_and_done_after(collection_name: str) -> None:
    store = _store(collection_name)
    writer, reader = ChangeFeed(store), ChangeFeed(store)
    assert reader.poll().quiet  # no feed collection yet: nothing to read, nothing created
    record = writer.intent(["a", "b"])
    feed_name = f"{store.config.chroma_collection}{FEED_SUFFIX}"
    slot = store.client.get_collection(f"{feed_name}.{writer.writer}")  # the writer's own slot
    seq = int(record.rpartition(".")[2])
    assert json.loads(slot.metadata["lh_unfinished"]) == {str(seq): ["a", "b"]}
    batch = reader.poll()
    assert (batch.ids, batch.pending) == ([], 1)  # a write under way is waited for
    reader.commit(batch)
    writer.done(record, ["a", "b"], wait=True)
    got = store.client.get_collection(feed_name).get(
        ids=[record], include=["documents", "metadatas"]
    )
    assert json.loads(got["documents"][0]) == ["a", "b"]
    assert got["metadatas"][0]["state"] == "done"
    assert json.loads(store.client.get_collection(slot.name).metadata["lh_unfinished"]) == {}
    batch = reader.poll()
    assert sorted(batch.ids) == ["a", "b"]
    assert batch.pending == 0
    reader.commit(batch)
    assert reader.poll().quiet  # applied: not read again
    assert writer.poll().quiet  # a writer's own completed records are already applied


def test_a_large_write_announces_its_intent_with_a_record(collection_name: str) -> None:
    store = _store(collection_name)
    writer, reader = ChangeFeed(store), ChangeFeed(store)
    ids = [f"d{i}" for i in range(65)]  # more ids than a slot takes
    record = writer.intent(ids)
    feed = store.client.get_collection(f"{store.config.chroma_collection}{FEED_SUFFIX}")
    got = feed.get(ids=[record], include=["documents", "metadatas"])
    assert json.loads(got["documents"][0]) == ids
    assert got["metadatas"][0]["state"] == "intent"
    assert reader.poll().pending == 1
    writer.done(record, ids, wait=True)
    assert sorted(reader.poll().ids) == sorted(ids)


def test_a_writers_own_intent_seen_pending_resolves_when_it_completes(
    collection_name: str,
) -> None:
    """A replica that polls between its own write and the background completion waits for
    that completion (not for the intent timeout) and does not re-read its own write."""
    store = _store(collection_name)
    feed = ChangeFeed(store)
    record = feed.intent(["a"])
    feed.commit(feed.poll())  # seen as a write under way
    assert feed.poll().pending == 1
    feed.done(record, ["a"], wait=True)
    batch = feed.poll()
    assert (batch.ids, batch.pending, batch.resolved) == ([], 0, frozenset({record}))
    feed.commit(batch)
    assert feed.poll().quiet
    assert feed.cursor.pending == {}


def test_a_writer_that_never_polls_remembers_a_bounded_number_of_completions(
    collection_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feed_module, "_MAX_APPLIED", 10)
    store = _store(collection_name)
    tick = Clock()
    feed = ChangeFeed(store, clock=tick)
    for i in range(12):
        tick.now += 1
        feed.done(feed.intent([f"d{i}"]), [f"d{i}"])
    assert feed.flush()
    assert len(feed.cursor.applied) <= 10
    assert "d11" not in feed.poll().ids  # the newest are remembered ...
    assert "d0" in feed.poll().ids  # ... the oldest forgotten: re-read once (idempotent)


def test_an_intent_whose_writer_died_is_applied_after_the_timeout(collection_name: str) -> None:
    store = _store(collection_name)
    tick = Clock()
    settings = FeedSettings(intent_timeout_seconds=60)
    writer = ChangeFeed(store, settings)
    reader = ChangeFeed(store, settings, monotonic=tick)
    record = writer.intent(["x"])  # the writer dies here (after its data write, say)
    reader.commit(reader.poll())
    tick.now += 59
    assert reader.poll().ids == []
    tick.now += 1
    batch = reader.poll()
    assert batch.ids == ["x"]
    assert batch.pending == 0
    reader.commit(batch)
    assert reader.poll().quiet
    writer.done(record, ["x"], wait=True)  # it was only slow: its completion is applied once more
    assert reader.poll().ids == ["x"]


def _slots(store: ChromaStore) -> list[str]:
    prefix = f"{store.config.chroma_collection}{FEED_SUFFIX}."
    return sorted(c.name for c in store.client.list_collections() if c.name.startswith(prefix))


def test_idle_slots_are_dropped_by_compaction_and_a_writer_deletes_its_own_at_exit(
    collection_name: str,
) -> None:
    store = _store(collection_name)
    wall = Clock()
    settings = FeedSettings(retention_seconds=3600)
    gone, alive = ChangeFeed(store, settings, clock=wall), ChangeFeed(store, settings, clock=wall)
    gone.intent(["x"])  # killed mid-write: its slot names the write
    alive.done(alive.intent(["y"]), ["y"], wait=True)
    assert _slots(store) == sorted([gone._slot_name(), alive._slot_name()])
    wall.now += 3601
    alive.compact()  # gone's slot is idle past the retention: dropped; alive keeps its own
    assert _slots(store) == [alive._slot_name()]
    alive.done(alive.intent(["z"]), ["z"], wait=True)  # still works (and recreates if dropped)
    alive.close()  # nothing unfinished: its slot goes too
    assert _slots(store) == []
    assert alive.poll().quiet


def test_an_unreadable_slot_is_ignored(collection_name: str) -> None:
    store = _store(collection_name)
    feed_name = f"{store.config.chroma_collection}{FEED_SUFFIX}"
    bad = {"lh_writer": "w", "lh_t": 1.0, "lh_unfinished": json.dumps({"not-a-seq": ["a"]})}
    store.client.create_collection(f"{feed_name}.broken", metadata=bad)
    store.client.create_collection(f"{feed_name}.other", metadata={"owner": "someone"})
    writer, reader = ChangeFeed(store), ChangeFeed(store)
    writer.intent(["x"])
    batch = reader.poll()  # the broken slot and the foreign collection are skipped
    assert (batch.ids, batch.pending) == ([], 1)


def test_records_outside_the_overlap_window_are_not_read(collection_name: str) -> None:
    """The documented clock limit: a record stamped more than the overlap behind is missed."""
    store = _store(collection_name)
    wall = Clock()
    settings = FeedSettings(overlap_seconds=30)
    fast = ChangeFeed(store, settings, clock=lambda: wall.now + 100)  # a clock 100 s ahead
    slow = ChangeFeed(store, settings, clock=wall)
    reader = ChangeFeed(store, settings, clock=wall)
    fast.done(fast.intent(["a"]), ["a"], wait=True)
    batch = reader.poll()
    assert batch.ids == ["a"]
    reader.commit(batch)  # the watermark moves to the fast writer's clock
    slow.done(slow.intent(["b"]), ["b"], wait=True)
    assert reader.poll().ids == []  # 100 s of skew > 30 s of overlap: keep clocks in sync
    wide = ChangeFeed(store, FeedSettings(overlap_seconds=120), clock=wall)
    wide.cursor.watermark = reader.cursor.watermark
    assert sorted(wide.poll().ids) == ["a", "b"]


def test_compaction_deletes_old_records_and_a_replica_behind_it_rebuilds_once(
    collection_name: str,
) -> None:
    wall = Clock()
    settings = FeedSettings(retention_seconds=3600, overlap_seconds=30)
    a, b = _replica(collection_name, settings), _replica(collection_name, settings)
    assert a.feed is not None
    assert b.feed is not None
    a.feed.clock = b.feed.clock = wall
    a.feed.cursor.watermark = b.feed.cursor.watermark = wall.now
    _add(a, {"a": "espresso grind", "b": "pour over"})
    assert b.refresh()
    assert _state(b) == _truth(b)
    wall.now += 7200  # two hours later, b has not polled since
    _add(a, {"c": "routers forward packets"})
    assert a.feed.compact() >= 1  # the first write's record is gone
    feed = a.store.client.get_collection(a.feed.name)
    assert len(feed.get(where={"t": {"$lt": wall.now - 3600}})["ids"]) == 0
    b.feed.cursor.watermark = wall.now - 7200  # behind the compaction marker
    assert b.feed.poll().behind
    assert b.refresh()  # one rebuild, then following the feed again
    assert _state(b) == _truth(b)
    assert not b.feed.poll().behind
    assert not b.refresh()


def test_replicas_follow_adds_count_neutral_updates_and_deletes(collection_name: str) -> None:
    a, b = _replica(collection_name), _replica(collection_name)
    _add(a, {"a": "espresso needs a fine grind", "b": "pour over coffee"}, {"v": 1})
    _add(b, {"c": "routers forward packets"})
    assert a.refresh()
    assert b.refresh()
    _add(a, {"b": "saffron threads in paella"}, {"v": 2})  # count unchanged
    b.delete(["a"])
    assert b.feed is not None
    assert b.feed.flush()
    assert a.refresh()
    assert b.refresh()
    truth = _truth(a)
    assert truth["b"] == ("saffron threads in paella", {"v": 2})
    assert "a" not in truth
    assert _state(a) == _state(b) == truth
    assert a.bm25.search("saffron", 1)[0].id == "b"
    assert not a.refresh()  # caught up: nothing more to apply
    status = a.status()
    assert (status.feed_unapplied, status.seconds_since_caught_up) == (0, 0.0)


def test_the_lost_update_interleaving_applies_the_late_update(collection_name: str) -> None:
    """Issue #14: B updates a document (count unchanged) while A's larger batch is under way
    and ends first; A must end up with B's text, not its own old copy."""
    a, b = _replica(collection_name), _replica(collection_name)
    _add(a, {"x": "old text of x", "y": "why"})
    assert b.refresh()
    texts = [f"batch document {i}" for i in range(20)]
    ids = [f"n{i}" for i in range(20)]
    write_a = a._begin(ids)  # A's batch begins ...
    a.store.upsert(ids, texts, EMB.embed_documents(texts), [None] * len(ids))
    write_b = b._begin(["x"])  # ... B's update begins and writes ...
    b.store.upsert(["x"], ["new text of x"], EMB.embed_documents(["new text of x"]), [{"v": 2}])
    a.bm25.add(ids, texts, [None] * len(ids))
    a._finish(write_a, ids)  # ... A ends first ...
    b.bm25.add(["x"], ["new text of x"], [{"v": 2}])
    b._finish(write_b, ["x"])  # ... then B
    assert a.feed is not None
    assert b.feed is not None
    assert a.feed.flush()
    assert b.feed.flush()
    a.refresh()
    b.refresh()
    assert _state(a)["x"] == ("new text of x", {"v": 2})
    assert _state(a) == _state(b) == _truth(a)


def test_a_foreign_write_that_changes_the_count_is_detected_and_repaired(
    collection_name: str,
) -> None:
    a = _replica(collection_name)
    _add(a, {"a": "espresso grind", "b": "pour over"})
    assert not a.refresh()
    a.store.collection.add(  # bypasses the package: no feed record
        ids=["f"], documents=["foreign text"], embeddings=EMB.embed_documents(["foreign"])
    )
    assert a.refresh()
    assert a.status().foreign_writes == 1
    assert _state(a) == _truth(a)


def test_a_count_neutral_foreign_write_needs_resync(collection_name: str) -> None:
    """The guarantee's limit: an update that bypasses the package is not seen; resync repairs."""
    a = _replica(collection_name)
    _add(a, {"a": "espresso grind", "b": "pour over"})
    a.store.collection.upsert(
        ids=["a"], documents=["changed behind our back"], embeddings=[[0.5] * 16]
    )
    assert not a.refresh()
    assert _state(a) != _truth(a)
    a.resync()
    assert _state(a) == _truth(a)


def test_lag_counts_unapplied_records_and_time_since_caught_up(collection_name: str) -> None:
    tick = Clock()
    a, b = _replica(collection_name), _replica(collection_name)
    assert b.feed is not None
    b.feed.monotonic = tick
    b.refresh()
    _add(a, {"a": "espresso grind"})
    _add(a, {"b": "pour over"})
    tick.now += 12
    status = b.status()
    assert status.feed_unapplied == 2
    assert status.seconds_since_caught_up == pytest.approx(12)
    b.refresh()
    status = b.status()
    assert (status.feed_unapplied, status.seconds_since_caught_up) == (0, 0.0)


def test_no_feed_for_embedded_or_in_memory_stores_unless_asked(collection_name: str) -> None:
    plain = HybridIndex.open(_store(collection_name))
    assert plain.feed is None
    _add(plain, {"a": "espresso grind"})
    names = {c.name for c in plain.store.client.list_collections()}
    assert collection_name in names
    assert f"{collection_name}{FEED_SUFFIX}" not in names
    assert plain.status().feed_unapplied is None


def test_a_forked_child_writes_under_its_own_writer_id(collection_name: str) -> None:
    """Record ids never clash between a parent and a child forked after it wrote."""
    feed = ChangeFeed(_store(collection_name))
    first = feed.intent(["a"])
    parent = feed.writer
    feed._pid = -1  # what a fork looks like to the feed: another process id
    second = feed.intent(["b"])
    assert feed.writer != parent
    assert second.startswith(f"{feed.writer}.")
    assert first.rpartition(".")[2] == second.rpartition(".")[2]  # both seq 1: ids still differ
    assert first != second


def _count_calls(
    monkeypatch: pytest.MonkeyPatch, store: ChromaStore, before: object = None
) -> list[int]:
    """Count ``store.count()`` calls (the real count still runs); ``before`` runs first, once."""
    calls: list[int] = []
    real = ChromaStore.count

    def counted(self: ChromaStore) -> int:
        if self is store:
            calls.append(1)
            if callable(before) and len(calls) == 1:
                before()
        return real(self)

    monkeypatch.setattr(ChromaStore, "count", counted)
    return calls


def test_a_catch_up_that_applies_records_reads_the_feed_only(
    collection_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chroma's count grows with the collection: only a quiet feed is checked against it."""
    a, b = _replica(collection_name), _replica(collection_name)
    calls = _count_calls(monkeypatch, b.store)
    _add(a, {"a": "espresso grind", "b": "pour over"})
    assert b.refresh()
    assert calls == []  # records to apply: no count
    assert _state(b) == _truth(a)
    assert not b.refresh()
    assert calls == [1]  # quiet: counted once (the foreign-writer check)


def test_a_write_begun_between_the_feed_read_and_the_count_is_not_foreign(
    collection_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A's write lands while B counts: B's second feed read sees A's intent, so the count that
    differs from BM25 is not taken for a foreign write."""
    a, b = _replica(collection_name), _replica(collection_name)
    _add(a, {"a": "espresso grind"})
    assert b.refresh()
    ids, texts = ["n1", "n2"], ["new one", "new two"]
    writes = []

    def a_writes() -> None:
        writes.append(a._begin(ids))
        a.store.upsert(ids, texts, EMB.embed_documents(texts), [None, None])

    calls = _count_calls(monkeypatch, b.store, a_writes)
    assert not b.refresh()  # the feed was quiet, then A's write began: not counted, not applied
    assert calls == [1]
    assert b.foreign_writes == 0
    a.bm25.add(ids, texts, [None, None])
    a._finish(writes[0], ids)
    assert a.feed is not None
    assert a.feed.flush()
    assert b.refresh()
    assert b.foreign_writes == 0
    assert _state(b) == _truth(a)
