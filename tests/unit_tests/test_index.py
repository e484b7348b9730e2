"""HybridIndex: the collection + BM25 pair, its lean write protocol, recovery, status, changes."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from helpers import HashEmbeddings, hold_writer_lock

from langchain_hybrid import (
    BM25Index,
    ChromaStore,
    HybridRetriever,
    IndexNotBuiltError,
    StoreConfig,
)
from langchain_hybrid._locking import holds_writer_lock, release_writer_lock
from langchain_hybrid.index import INTENT_PREFIX, HybridIndex, change_signal, rebuild_bm25

TEXTS = {
    "a": "espresso needs a fine grind",
    "b": "pour over coffee uses a medium grind",
    "c": "routers forward packets between networks",
}


def _add(index: HybridIndex, ids: list[str], texts: list[str]) -> None:
    index.add(ids, texts, HashEmbeddings(16).embed_documents(texts), [None] * len(ids))


def _marker(index: HybridIndex) -> Path:
    """The intent marker file of an embedded index."""
    return Path(index.store.config.path) / f"{INTENT_PREFIX}{index.store.config.chroma_collection}"


def _persistent(path: Path, collection: str = "kb") -> HybridIndex:
    store = ChromaStore(StoreConfig(mode="persistent", path=str(path), collection=collection))
    return HybridIndex.open(store, path / "bm25" / collection)


@pytest.fixture
def persistent(tmp_path: Path) -> HybridIndex:
    index = _persistent(tmp_path)
    _add(index, list(TEXTS), list(TEXTS.values()))
    return index


def test_a_write_keeps_its_odd_marker_beside_chroma_and_ends_in_the_collection(
    persistent: HybridIndex, tmp_path: Path
) -> None:
    """The lean protocol: the odd marker is a file, the even one the collection's metadata."""
    store = persistent.store
    before = store.metadata_generation()
    assert before % 2 == 0
    assert persistent.write_generation() == before
    write = persistent._begin()
    assert write.generation == before + 1
    assert store.metadata_generation() == before  # no Chroma round trip for the odd marker
    assert persistent.write_generation() == before + 1  # but every reader sees it
    intent = _marker(persistent).read_text()
    assert intent.split() == [str(store.collection.id), f"{before + 1:020d}"]
    assert _persistent(tmp_path).write_generation() == before + 1  # another opener sees it too
    persistent._finish(write)
    assert (store.metadata_generation(), persistent.write_generation()) == (before + 2, before + 2)
    assert persistent.bm25.generation == before + 2


def test_writes_move_the_generation_by_two_and_bm25_follows(persistent: HybridIndex) -> None:
    first = persistent.write_generation()
    _add(persistent, ["d"], ["saffron threads in paella"])
    persistent.delete(["a"])
    assert persistent.store.metadata_generation() == persistent.write_generation() == first + 4
    assert persistent.bm25.generation == first + 4
    assert sorted(persistent.bm25.ids) == ["b", "c", "d"]
    status = persistent.status()
    assert status.in_sync
    assert status.collection is not None
    assert status.collection.documents == 3
    assert status.saved is not None
    assert (status.saved.generation, status.saved.documents) == (first + 4, 3)


def test_a_writer_that_died_after_its_odd_marker_is_settled_on_open(
    persistent: HybridIndex, tmp_path: Path
) -> None:
    """A count-neutral replace whose writer died before the end marker is still detected."""
    store = persistent.store
    before = store.metadata_generation()
    persistent._begin()
    store.upsert(["b"], ["saffron paella"], HashEmbeddings(16).embed_documents(["x"]), [None])
    release_writer_lock(tmp_path)  # the writer "dies": no end marker, no BM25 save
    status = persistent.status()
    assert status.dead_write
    assert status.collection is not None
    assert status.collection.generation == before + 1
    reopened = _persistent(tmp_path)
    settled = before + 2
    assert reopened.store.metadata_generation() == reopened.write_generation() == settled
    assert reopened.bm25.generation == before + 2
    hit = reopened.bm25.get(["b"])[0]
    assert hit is not None
    assert hit.text == "saffron paella"  # rebuilt from Chroma: the replace is not lost
    assert _persistent(tmp_path).opened_from == "saved"  # the repaired index was saved


def test_a_live_writer_s_odd_marker_is_not_settled(persistent: HybridIndex, tmp_path: Path) -> None:
    persistent._begin()
    release_writer_lock(tmp_path)
    holder = hold_writer_lock(tmp_path)  # another process holds the lock: a write under way
    try:
        status = persistent.status()
        assert not status.dead_write
        assert not status.in_sync
        reopened = _persistent(tmp_path)
        assert reopened.write_generation() % 2 == 1  # nothing settled behind a live writer's back
        assert "write is under way" in reopened.opened_from
    finally:
        holder.kill()
        holder.communicate(timeout=30)
    assert not holds_writer_lock(tmp_path)


def test_an_intent_of_another_collection_or_an_old_one_is_ignored(
    persistent: HybridIndex,
) -> None:
    generation = persistent.write_generation()
    marker = _marker(persistent)
    assert marker.exists()  # the fixture's write left its marker, spent: older than Chroma's

    marker.write_text(f"{uuid.uuid4()} {generation + 7:020d}\n")  # a dropped collection's
    assert persistent.write_generation() == generation
    marker.write_text(f"{persistent.store.collection.id} {generation - 1:020d}\n")  # spent
    assert persistent.write_generation() == generation
    marker.write_text("garbage")
    assert persistent.write_generation() == generation


def test_ephemeral_writes_keep_the_marker_in_the_process(collection_name: str) -> None:
    store = ChromaStore(StoreConfig(mode="ephemeral", collection=collection_name))
    index = HybridIndex.open(store)
    _add(index, ["a"], ["espresso"])
    assert (store.metadata_generation(), index.write_generation()) == (2, 2)
    write = index._begin()
    assert (store.metadata_generation(), index.write_generation()) == (2, 3)
    other = HybridIndex(
        ChromaStore(StoreConfig(mode="ephemeral", collection=collection_name)), index.bm25
    )
    assert other.write_generation() == 3  # another index of the collection in this process sees it
    index._finish(write)
    assert other.write_generation() == 4


def test_apply_changes_brings_given_ids_up_to_date_from_chroma(persistent: HybridIndex) -> None:
    """The replica-feed seam: ids changed in Chroma behind BM25's back are re-read."""
    store = persistent.store
    text = "saffron threads in paella"
    store.upsert(
        ["b", "e"], [text, text], HashEmbeddings(16).embed_documents([text, text]), [None, {"n": 1}]
    )
    store.delete(["a"])
    assert "a" in persistent.bm25
    assert persistent.apply_changes(["a", "b", "e", "never"], bm25_generation=10) == 2
    assert sorted(persistent.bm25.ids) == ["b", "c", "e"]
    assert persistent.bm25.search("saffron", 5)[0].id in {"b", "e"}
    assert persistent.bm25.generation == 10
    rebuilt = rebuild_bm25(store)
    assert sorted(rebuilt.ids) == sorted(persistent.bm25.ids)  # the oracle: a from-scratch build


def test_inspect_reads_without_writing(persistent: HybridIndex, tmp_path: Path) -> None:
    manifest = tmp_path / "bm25" / "kb" / "manifest.json"
    saved = manifest.read_bytes()
    persistent.store.begin_write()  # a completed write by another writer: BM25 files behind
    persistent.store.end_write()
    release_writer_lock(tmp_path)
    inspected = HybridIndex.inspect(persistent.store, tmp_path / "bm25" / "kb")
    assert inspected.opened_from == "saved"
    status = inspected.status()
    assert not status.in_sync  # stale, reported as it is
    assert status.saved is not None
    assert status.saved.generation == inspected.bm25.generation
    assert manifest.read_bytes() == saved
    assert not holds_writer_lock(tmp_path)
    missing = HybridIndex.inspect(persistent.store, tmp_path / "bm25" / "nothing")
    assert missing.opened_from == "BM25 index missing"
    assert len(missing.bm25) == len(TEXTS)  # rebuilt in memory only
    assert not (tmp_path / "bm25" / "nothing").exists()


def test_status_reports_a_store_that_does_not_answer(persistent: HybridIndex) -> None:
    persistent.store.collection = None  # a broken handle: every Chroma call fails
    persistent.store.client = None
    status = persistent.status()
    assert status.collection is None
    assert status.store_error is not None
    assert status.bm25_documents == len(TEXTS)
    assert not status.in_sync


def test_retriever_delegates_to_its_index(tmp_path: Path) -> None:
    retriever = HybridRetriever.from_texts(
        list(TEXTS.values()),
        embedding=HashEmbeddings(),
        ids=list(TEXTS),
        persist_directory=tmp_path,
        collection_name="kb",
    )
    index = retriever.index
    assert retriever.bm25 is index.bm25
    assert retriever.store is index.store
    replacement = BM25Index(retriever.bm25.params)
    retriever.bm25 = replacement
    assert index.bm25 is replacement
    assert retriever.refresh() is True  # an empty BM25 is out of sync: resynced by the index
    assert sorted(retriever.bm25.ids) == sorted(TEXTS)


@pytest.mark.parametrize("mode", ["persistent", "ephemeral"])
def test_change_signal_of_a_foreign_client_is_the_one_refresh_compares(
    mode: str, tmp_path: Path, collection_name: str
) -> None:
    store = ChromaStore(StoreConfig(mode=mode, path=str(tmp_path), collection=collection_name))
    index = HybridIndex.open(store)
    _add(index, ["a", "b"], ["espresso", "routers"])
    metadata_before = store.collection.metadata
    signal = change_signal(store.client, store.config.chroma_collection)
    assert store.collection.metadata == metadata_before  # opening it modified nothing
    assert signal() == (index.write_generation(), 2)
    write = index._begin()  # the odd marker lives outside the collection's metadata
    assert signal() == (write.generation, 2)
    assert write.generation % 2 == 1
    assert store.metadata_generation() == write.generation - 1
    index._finish(write)
    _add(index, ["c"], ["grind"])
    assert signal() == (index.write_generation(), 3)
    assert index.write_generation() % 2 == 0


def test_change_signal_of_a_missing_collection_raises(tmp_path: Path) -> None:
    store = ChromaStore(StoreConfig(path=str(tmp_path), collection="kb"))
    with pytest.raises(IndexNotBuiltError, match="'nothing-here' does not exist"):
        change_signal(store.client, "nothing-here")
