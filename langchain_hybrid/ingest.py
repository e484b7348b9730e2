"""The ingest pipeline: embed the next batch while the previous one is written; progress.

Indexing is dominated by the embedding model, and a write (Chroma's upsert and HNSW insert,
the BM25 update, the generation ``modify``) is a few tenths of a second per batch more. Run one
after the other, the two legs add up; here a worker thread embeds batch *n + 1* while the
calling thread writes batch *n* (onnxruntime and Chroma's native code release the GIL), so a
run takes about as long as the slower leg.

* **Bounded memory.** Embedded batches wait in a queue of ``depth`` entries (default 2): at
  most ``depth + 2`` batches of vectors exist at once (queued, being written, being embedded),
  whatever the input size.
* **The write protocol is kept.** Writes run in the calling thread, one batch at a time, each
  through the caller's ``write`` (for :class:`~langchain_hybrid.retrievers.HybridRetriever`,
  :meth:`HybridIndex.add <langchain_hybrid.index.HybridIndex.add>`: its own write generation,
  writer lock and crash guarantees). A caller holding the index's locks (``deferred_save``)
  keeps holding them: no lock is taken from another thread.
* **Nothing lost, typed errors.** A failed write or embedding stops the run after the batches
  already written: when some were, :class:`~langchain_hybrid.errors.BatchWriteError` names the
  ids written and the ids not written (the error that stopped it is its cause); when none were,
  the error itself is raised. An interrupt (``KeyboardInterrupt``) lets the embedding thread
  stop and is raised again; a write under way when it arrives is settled by the write protocol.
* **Resume.** Every batch written is a complete write, so a run killed in the middle leaves
  whole batches. Callers with deterministic ids (``langchain-hybrid index``) skip on the next
  run the ids already stored with the same text and metadata: nothing written is embedded again.

Progress (:class:`IngestProgress`): on a terminal, one line on stderr rewritten in place (files,
chunks, passages/s, ETA); otherwise an ``INFO`` record of this module's logger at the start,
every :data:`PROGRESS_SECONDS` and at the end.

Usage:
    ```python
    from langchain_hybrid.ingest import IngestProgress, run_pipeline

    progress = IngestProgress(len(ids), files=3)
    run_pipeline(
        ids, texts, metadatas,
        embed=embedding.embed_documents,
        write=index.add,  # (ids, texts, vectors, metadatas)
        batch_size=256,
        progress=progress,
    )
    ```
"""

from __future__ import annotations

__all__ = ["IngestProgress"]

import logging
import math
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn, TextIO

from langchain_hybrid.errors import BatchWriteError

if TYPE_CHECKING:
    from typing_extensions import Self

logger = logging.getLogger(__name__)

PIPELINE_MIN_DOCUMENTS = 512
"""``add_documents`` / ``from_documents`` with at least this many documents use the pipeline."""
DEFAULT_BATCH_SIZE = 128
"""Documents per pipeline batch (one embedding call, one write) unless the caller says."""
DEFAULT_DEPTH = 2
"""Embedded batches that may wait for the writer."""
PROGRESS_SECONDS = 10.0
"""Without a terminal, a progress log record is written at least this often (and at the ends)."""
_TERMINAL_SECONDS = 0.25  # a terminal line is redrawn at most this often
_POLL_SECONDS = 0.2  # how often a blocked queue operation looks at the stop flag

Embed = Callable[[list[str]], list[list[float]]]
"""Embeds texts: ``Embeddings.embed_documents``."""
Write = Callable[[list[str], list[str], list[list[float]], list[dict[str, Any] | None]], None]
"""Writes one embedded batch: ``(ids, texts, vectors, metadatas)``, e.g. ``HybridIndex.add``."""


class IngestResult(NamedTuple):
    """What a pipeline run did.

    Attributes:
        written: documents written.
        batches: batches written.
        seconds: wall time of the run.
        embed_seconds: time the embedding thread spent embedding.
        write_seconds: time the calling thread spent writing.
    """

    written: int
    batches: int
    seconds: float
    embed_seconds: float
    write_seconds: float

    @property
    def per_second(self) -> float:
        """Documents written per second of wall time."""
        return self.written / self.seconds if self.seconds > 0 else 0.0


def _duration(seconds: float) -> str:
    """``h:mm:ss`` or ``m:ss``."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class IngestProgress:
    """Progress of an ingest run that a person can follow: files, chunks, passages/s, ETA.

    On a terminal (``stream.isatty()``) one line is rewritten in place on ``stream``, at most
    four times a second, and ended with a newline by :meth:`close`. Otherwise the same text is
    logged at ``INFO`` by this module's logger when the run starts, at least every
    ``interval`` seconds while it goes on, and when it ends.

    Key init args:
        total: chunks (documents) to embed and write.
        files: the files they come from (``None``: not shown).
        stream: where the terminal line goes (default ``sys.stderr``).
        terminal: force (or forbid) the terminal line; ``None`` asks ``stream.isatty()``.
        interval: seconds between log records without a terminal.

    Usage:
        ```python
        with IngestProgress(2_000, files=12) as progress:
            progress.update(128)
        progress.text()  # "indexing: 12 files, 128/2,000 chunks (6%), 31.0 passages/s, ETA 1:00"
        ```
    """

    def __init__(
        self,
        total: int,
        *,
        files: int | None = None,
        stream: TextIO | None = None,
        terminal: bool | None = None,
        interval: float = PROGRESS_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Set up the display; nothing is shown before :meth:`start` (or the ``with`` block)."""
        self.total = total
        self.files = files
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        if terminal is None:
            isatty = getattr(self.stream, "isatty", None)
            terminal = bool(isatty()) if callable(isatty) else False
        self.terminal = terminal
        self.interval = interval
        self._clock = clock
        self._started: float | None = None
        self._next = 0.0
        self._width = 0
        self._closed = False

    def start(self) -> None:
        """Start the clock and show the first line."""
        if self._started is None:
            self._started = self._clock()
            self._show(force=True)

    def rate(self) -> float | None:
        """Passages per second since :meth:`start` (``None`` before any was done)."""
        if self._started is None or self.done == 0:
            return None
        elapsed = self._clock() - self._started
        return self.done / elapsed if elapsed > 0 else None

    def text(self) -> str:
        """The progress line.

        Returns:
            e.g. ``indexing: 3 files, 40/100 chunks (40%), 25.0 passages/s, ETA 0:02``.
        """
        share = self.done / self.total if self.total else 1.0
        parts = [f"{self.done:,}/{self.total:,} chunks ({share:.0%})"]
        if self.files is not None:
            parts.insert(0, f"{self.files:,} file{'s' if self.files != 1 else ''}")
        rate = self.rate()
        if rate is None:
            parts.append("-- passages/s, ETA --")
        else:
            eta = (self.total - self.done) / rate if rate > 0 else math.inf
            shown = _duration(eta) if math.isfinite(eta) else "--"
            parts.append(f"{rate:.1f} passages/s, ETA {shown}")
        return "indexing: " + ", ".join(parts)

    def update(self, n: int) -> None:
        """Count ``n`` more chunks written."""
        self.start()
        self.done += n
        self._show(force=self.done >= self.total)

    def _show(self, *, force: bool) -> None:
        now = self._clock()
        if not force and now < self._next:
            return
        line = self.text()
        if self.terminal:
            self._next = now + _TERMINAL_SECONDS
            padding = " " * max(0, self._width - len(line))
            self._width = len(line)
            self.stream.write(f"\r{line}{padding}")
            self.stream.flush()
        else:
            self._next = now + self.interval
            logger.info("%s", line)

    def close(self) -> None:
        """Show the last state (a terminal line is ended with a newline)."""
        if self._closed or self._started is None:
            return
        self._closed = True
        if self.terminal:
            self._show(force=True)
            self.stream.write("\n")
            self.stream.flush()
        elif self.done < self.total:  # a complete run was logged by its last update
            self._show(force=True)

    def __enter__(self) -> Self:
        """Start."""
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        """Close."""
        self.close()


class _Failed(NamedTuple):
    error: BaseException


_DONE = object()


class _Embedder(threading.Thread):
    """The embedding leg: embeds batch after batch into a bounded queue, until told to stop."""

    def __init__(
        self, texts: Sequence[str], spans: list[tuple[int, int]], embed: Embed, depth: int
    ) -> None:
        super().__init__(name="langchain-hybrid-embed", daemon=True)
        self.texts, self.spans, self.embed = texts, spans, embed
        self.channel: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.seconds = 0.0

    def _put(self, item: object) -> bool:
        """Put ``item``, waiting for room unless stopped; whether it was put."""
        while not self.stop.is_set():
            try:
                self.channel.put(item, timeout=_POLL_SECONDS)
            except queue.Full:
                continue
            return True
        return False

    def run(self) -> None:
        try:
            for start, end in self.spans:
                if self.stop.is_set():
                    return
                began = time.perf_counter()
                vectors = self.embed(list(self.texts[start:end]))
                self.seconds += time.perf_counter() - began
                if not self._put((start, end, vectors)):
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the calling thread, raised there
            self._put(_Failed(e))
            return
        self._put(_DONE)

    def batches(self) -> Iterator[tuple[int, int, list[list[float]]]]:
        """The embedded batches in order (raises what the embedding raised, at its place)."""
        while True:
            try:
                item = self.channel.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                continue
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item


def run_pipeline(
    ids: Sequence[str],
    texts: Sequence[str],
    metadatas: Sequence[dict[str, Any] | None],
    *,
    embed: Embed,
    write: Write,
    batch_size: int = DEFAULT_BATCH_SIZE,
    depth: int = DEFAULT_DEPTH,
    progress: IngestProgress | None = None,
) -> IngestResult:
    """Embed and write documents in batches, embedding the next batch while one is written.

    Args:
        ids: the documents' ids (validated by the caller).
        texts: their texts.
        metadatas: their metadata (validated by the caller).
        embed: embeds a batch of texts (``Embeddings.embed_documents``); runs in a worker thread.
        write: writes one embedded batch; runs in the calling thread, batch after batch, in
            input order.
        batch_size: documents per batch.
        depth: embedded batches that may wait for the writer (the memory bound).
        progress: counts written documents (closed by the caller).

    Returns:
        Counts and timings of the run.

    Raises:
        BatchWriteError: a write or an embedding failed after some batches were written:
            ``written_ids`` are stored, ``failed_ids`` (the rest) are not; the cause is the
            error that stopped the run.
        ValueError: ``batch_size`` or ``depth`` is below 1.
    """
    if batch_size < 1 or depth < 1:
        msg = f"batch_size and depth must be at least 1, got {batch_size} and {depth}"
        raise ValueError(msg)
    started = time.perf_counter()
    spans = [(s, min(s + batch_size, len(ids))) for s in range(0, len(ids), batch_size)]
    embedder = _Embedder(texts, spans, embed, depth)
    written = batches = 0
    write_seconds = 0.0
    embedder.start()
    try:
        embedded = embedder.batches()
        while True:
            try:
                item = next(embedded, None)
            except Exception as e:  # noqa: BLE001 - re-raised, typed, by _raise_stopped
                _raise_stopped(e, ids, written, "embedding")
            if item is None:
                break
            start, end, vectors = item
            began = time.perf_counter()
            try:
                write(
                    list(ids[start:end]),
                    list(texts[start:end]),
                    vectors,
                    list(metadatas[start:end]),
                )
            except Exception as e:  # noqa: BLE001 - re-raised, typed, by _raise_stopped
                _raise_stopped(e, ids, start, "writing")
            write_seconds += time.perf_counter() - began
            written, batches = end, batches + 1
            if progress is not None:
                progress.update(end - start)
    finally:
        embedder.stop.set()
        embedder.join()
    result = IngestResult(
        written, batches, time.perf_counter() - started, embedder.seconds, write_seconds
    )
    logger.debug(
        "pipeline: %d documents in %d batches, %.2fs (embedding %.2fs, writing %.2fs)", *result
    )
    return result


def _raise_stopped(error: BaseException, ids: Sequence[str], start: int, leg: str) -> NoReturn:
    """End a run stopped by ``error`` in the batch from ``start`` (earlier ones are stored).

    Raises:
        BatchWriteError: some documents are stored (or the failed write names its ids).
        BaseException: ``error`` itself when nothing is stored, or for an interrupt.
    """
    if isinstance(error, BatchWriteError):  # the failed batch may have written part of itself
        done = [*ids[:start], *error.written_ids]
    elif start and isinstance(error, Exception):
        done = list(ids[:start])
    else:
        raise error  # nothing stored yet, or an interrupt: raised as it is
    stored = set(done)
    failed = [doc_id for doc_id in ids[start:] if doc_id not in stored]
    msg = (
        f"{leg} failed after {len(done)} of {len(ids)} documents were written "
        f"({type(error).__name__}: {error}); the other {len(failed)} were not written"
    )
    raise BatchWriteError(msg, written_ids=done, failed_ids=failed) from error
