"""The writer lock: one writer process per embedded index, readers unaffected."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import HashEmbeddings, hold_writer_lock
from langchain_core.documents import Document

from langchain_hybrid import HybridRetriever, WriterLockError
from langchain_hybrid._locking import LOCK_NAME, acquire_writer_lock, release_writer_lock


def test_a_second_writer_process_gets_a_clear_error(tmp_path: Path) -> None:
    retriever = HybridRetriever.from_documents(
        [Document(id="a", page_content="apples")],
        embedding=HashEmbeddings(),
        persist_directory=tmp_path,
        collection_name="kb",
    )
    release_writer_lock(tmp_path)  # as if this process had only read
    holder = hold_writer_lock(tmp_path)
    try:
        before = (
            retriever.store.count(),
            len(retriever.bm25),
            retriever.store.metadata_generation(),
        )
        with pytest.raises(WriterLockError, match=rf"pid {holder.pid}"):
            retriever.add_documents([Document(id="b", page_content="bananas")])
        with pytest.raises(WriterLockError):
            retriever.delete(["a"])
        after = (
            retriever.store.count(),
            len(retriever.bm25),
            retriever.store.metadata_generation(),
        )
        assert after == before  # nothing written
        assert [d.id for d in retriever.invoke("apples")] == ["a"]  # reading is fine
    finally:
        holder.communicate("\n", timeout=30)
    retriever.add_documents([Document(id="b", page_content="bananas")])  # the lock is free now
    assert retriever.store.count() == 2


def test_a_killed_writer_leaves_no_stale_lock(tmp_path: Path) -> None:
    holder = hold_writer_lock(tmp_path)
    holder.kill()
    holder.communicate(timeout=30)
    assert (tmp_path / LOCK_NAME).exists()
    acquire_writer_lock(tmp_path)  # the kernel released the dead process's lock
    release_writer_lock(tmp_path)


def test_retrievers_in_one_process_share_the_lock(tmp_path: Path) -> None:
    first = HybridRetriever.from_documents(
        [Document(id="a", page_content="apples")],
        embedding=HashEmbeddings(),
        persist_directory=tmp_path,
        collection_name="kb",
    )
    second = HybridRetriever.load(tmp_path, collection_name="kb", embedding=HashEmbeddings())
    second.add_documents([Document(id="b", page_content="bananas")])
    first.add_documents([Document(id="c", page_content="cherries")])
    assert first.store.count() == 3
