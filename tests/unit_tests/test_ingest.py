"""The ingest pipeline: overlap of the two legs, bounded memory, errors, progress.

Real parts: an in-process Chroma collection written through ``HybridIndex.add`` (via
``HybridRetriever``), the deterministic :class:`HashEmbeddings`; the wrappers below count or
fail calls of that real embedding.
"""

from __future__ import annotations

import io
import logging
import re
import threading
from typing import Any

import pytest
from helpers import HashEmbeddings
from langchain_core.documents import Document

from langchain_hybrid import HybridRetriever
from langchain_hybrid.errors import BatchWriteError
from langchain_hybrid.ingest import IngestProgress, run_pipeline

WAIT = 30.0  # seconds a test waits for the other leg before it fails


def _docs(n: int) -> list[Document]:
    return [
        Document(page_content=f"passage {i} about topic{i % 7}", metadata={"source": f"f{i % 3}"})
        for i in range(n)
    ]


def _retriever(collection_name: str) -> HybridRetriever:
    return HybridRetriever.from_documents([], HashEmbeddings(), collection_name=collection_name)


class _Recording(HashEmbeddings):
    """HashEmbeddings noting each call's start, and failing on the call numbered ``fail_at``."""

    def __init__(self, fail_at: int | None = None) -> None:
        super().__init__()
        self.calls = 0
        self.started: list[threading.Event] = [threading.Event() for _ in range(64)]
        self.fail_at = fail_at

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        call = self.calls
        self.calls += 1
        self.started[call].set()
        if call == self.fail_at:
            msg = f"embedding call {call} failed"
            raise OSError(msg)
        return super().embed_documents(texts)


def test_the_next_batch_is_embedded_while_one_is_written(collection_name: str) -> None:
    """The write of batch 0 waits until batch 1's embedding has begun: a sequential run hangs."""
    retriever = _retriever(collection_name)
    embedding = _Recording()
    docs = _docs(40)
    ids = [f"d{i}" for i in range(40)]
    overlapped: list[bool] = []
    writer_threads: set[int] = set()

    def write(*args: Any) -> None:
        writer_threads.add(threading.get_ident())
        if not overlapped:
            overlapped.append(embedding.started[1].wait(WAIT))
        retriever.index.add(*args)

    result = run_pipeline(
        ids,
        [d.page_content for d in docs],
        [d.metadata for d in docs],
        embed=embedding.embed_documents,
        write=write,
        batch_size=10,
    )
    assert overlapped == [True], "batch 1 was not embedded while batch 0 was being written"
    assert writer_threads == {threading.get_ident()}, "writes run in the calling thread"
    assert (result.written, result.batches) == (40, 4)
    assert embedding.embedded_documents == 40, "each text embedded once"
    assert retriever.store.count() == 40
    assert retriever.index.write_generation() == 2 * 4, "one write (two generation steps) per batch"


@pytest.mark.parametrize("depth", [1, 3])
def test_memory_is_bounded_by_the_queue(collection_name: str, depth: int) -> None:
    """While the writer is stuck, the embedding leg runs at most ``depth + 1`` batches ahead."""
    retriever = _retriever(collection_name)
    embedding = _Recording()
    docs = _docs(200)
    seen: list[int] = []
    release = threading.Event()

    def write(*args: Any) -> None:
        if not seen:
            # give the embedding leg every chance to run ahead, then look
            embedding.started[depth + 1].wait(WAIT)
            release.wait(0.5)
            seen.append(embedding.calls)
        retriever.index.add(*args)

    run_pipeline(
        [f"d{i}" for i in range(200)],
        [d.page_content for d in docs],
        [d.metadata for d in docs],
        embed=embedding.embed_documents,
        write=write,
        batch_size=10,
        depth=depth,
    )
    # batch 0 is being written, `depth` batches wait in the queue, one more waits to be put
    assert seen == [depth + 2], f"{seen[0]} of 20 batches embedded while batch 0 was written"
    assert retriever.store.count() == 200


def test_a_failed_write_names_what_was_and_was_not_written(collection_name: str) -> None:
    retriever = _retriever(collection_name)
    ids = [f"d{i}" for i in range(50)]
    docs = _docs(50)
    writes = 0

    def write(*args: Any) -> None:
        nonlocal writes
        writes += 1
        if writes == 3:  # the third batch writes 4 of its 10 documents, then fails
            retriever.index.add(*(a[:4] for a in args))
            msg = "Chroma went away"
            raise BatchWriteError(msg, written_ids=args[0][:4], failed_ids=args[0][4:])
        retriever.index.add(*args)

    with pytest.raises(BatchWriteError) as caught:
        run_pipeline(
            ids,
            [d.page_content for d in docs],
            [d.metadata for d in docs],
            embed=HashEmbeddings().embed_documents,
            write=write,
            batch_size=10,
        )
    assert caught.value.written_ids == ids[:24]
    assert caught.value.failed_ids == ids[24:]
    assert sorted(retriever.index.bm25.ids) == sorted(ids[:24])
    assert retriever.store.count() == 24, "what the error says is written is what is stored"


def test_a_failed_embedding_after_writes_is_a_batch_write_error(collection_name: str) -> None:
    retriever = _retriever(collection_name)
    retriever.embedding = _Recording(fail_at=2)
    docs = _docs(600)
    with pytest.raises(BatchWriteError, match="embedding failed after 256 of 600") as caught:
        retriever.add_documents(docs, batch_size=128)
    assert isinstance(caught.value.__cause__, OSError)
    assert len(caught.value.written_ids) == 256
    assert len(caught.value.failed_ids) == 600 - 256
    assert retriever.store.count() == 256
    stored = {d.id for d in retriever.get_by_ids(caught.value.written_ids)}
    assert stored == set(caught.value.written_ids)


def test_a_failed_first_embedding_raises_it_and_writes_nothing(collection_name: str) -> None:
    retriever = _retriever(collection_name)
    retriever.embedding = _Recording(fail_at=0)
    with pytest.raises(OSError, match="embedding call 0 failed"):
        retriever.add_documents(_docs(30), batch_size=10)
    assert retriever.store.count() == 0
    assert retriever.index.write_generation() == 0


def test_large_add_documents_goes_through_the_pipeline(
    collection_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    retriever = _retriever(collection_name)
    embedding = HashEmbeddings()
    retriever.embedding = embedding
    docs = _docs(600)
    with caplog.at_level(logging.INFO, logger="langchain_hybrid.ingest"):
        ids = retriever.add_documents(docs)
    assert len(ids) == 600
    assert embedding.embedded_documents == 600
    assert retriever.store.count() == len(retriever.bm25) == 600
    assert retriever.index.write_generation() == 2 * 5, "five batches of 128: five writes"
    progress = [r.getMessage() for r in caplog.records if r.name == "langchain_hybrid.ingest"]
    assert progress[0] == "indexing: 3 files, 0/600 chunks (0%), -- passages/s, ETA --"
    assert progress[-1].startswith("indexing: 3 files, 600/600 chunks (100%), ")
    hits = retriever.invoke("passage 599 topic4", k=1)
    assert hits[0].id == ids[599]
    small = _retriever(collection_name + "-small")
    small.add_documents(docs[:511])
    assert small.index.write_generation() == 2, "below 512 documents: one write"


def test_pipeline_rejects_a_bad_batch_size() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        run_pipeline([], [], [], embed=HashEmbeddings().embed_documents, write=print, depth=0)


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_line_shows_files_chunks_rate_and_eta() -> None:
    clock = _Clock()
    progress = IngestProgress(2_000, files=12, terminal=False, clock=clock)
    assert progress.text() == "indexing: 12 files, 0/2,000 chunks (0%), -- passages/s, ETA --"
    progress.start()
    clock.now += 10
    progress.update(250)  # 25 passages/s, 1,750 left: 70 s
    assert (
        progress.text() == "indexing: 12 files, 250/2,000 chunks (12%), 25.0 passages/s, ETA 1:10"
    )
    clock.now += 3590
    progress.update(250)  # 500 in an hour: 1,500 left take three more
    assert progress.text().endswith("500/2,000 chunks (25%), 0.1 passages/s, ETA 3:00:00")
    single = IngestProgress(3, files=1, terminal=False, clock=clock)
    assert single.text().startswith("indexing: 1 file, 0/3 chunks")
    assert IngestProgress(3, terminal=False).text().startswith("indexing: 0/3 chunks (0%)")


def test_progress_on_a_terminal_rewrites_one_line() -> None:
    clock = _Clock()
    stream = io.StringIO()
    with IngestProgress(30, files=2, stream=stream, terminal=True, clock=clock) as progress:
        for _ in range(3):
            clock.now += 1
            progress.update(10)
    text = stream.getvalue()
    assert text.endswith("\n")
    assert text.count("\n") == 1, "one line, ended once"
    frames = text.rstrip("\n").split("\r")[1:]
    assert frames[0] == "indexing: 2 files, 0/30 chunks (0%), -- passages/s, ETA --"
    assert [re.search(r"(\d+)/30", f).group(1) for f in frames] == ["0", "10", "20", "30", "30"]  # type: ignore[union-attr]
    assert frames[-1].startswith("indexing: 2 files, 30/30 chunks (100%), 10.0 passages/s")
    assert all(len(f) >= len(frames[0]) for f in frames), "a shorter frame blanks the old one"


def test_progress_without_a_terminal_logs_every_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = _Clock()
    stream = io.StringIO()
    with (
        caplog.at_level(logging.INFO, logger="langchain_hybrid.ingest"),
        IngestProgress(100, stream=stream, interval=10, clock=clock) as progress,
    ):
        for _ in range(9):
            clock.now += 4
            progress.update(10)
    lines = [r.getMessage() for r in caplog.records]
    done = [int(re.search(r"(\d+)/100", line).group(1)) for line in lines]  # type: ignore[union-attr]
    # the start, then one record per 10 s (every third update of 4 s), and none at close:
    # 90 of 100 were done, so close logs the final state
    assert done == [0, 30, 60, 90, 90]
    assert stream.getvalue() == "", "nothing written to a stream that is not a terminal"
