"""The writer lock of a persist directory: one writer process, any number of reader processes.

An embedded (persistent) index is a SQLite database and a set of BM25 files, both written by
this package without cross-process coordination, so one process at a time may write. The lock
is ``<persist_directory>/.writer.lock``, taken with ``flock`` on the first write and held until
the process exits or :func:`release_writer_lock` is called; the kernel drops it when the process
dies (even by SIGKILL), so a crash never leaves a stale lock. Readers take no lock: they notice
other processes' writes through :meth:`HybridRetriever.refresh`. For many writer processes, run
a ``chroma run`` server (``store.mode: http``).

Several retrievers in one process share the lock (it is counted per directory).

Saving BM25 files is serialised separately, by :func:`save_lock` (``<bm25 dir>/.save.lock``, held
only for the length of one save): a reader process may save an index it repaired from Chroma,
and it must neither interleave with the writer's save nor keep the writer from writing.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from langchain_hybrid.errors import IndexCorruptError, WriterLockError

logger = logging.getLogger(__name__)

LOCK_NAME = ".writer.lock"
SAVE_LOCK_NAME = ".save.lock"
_POLL_SECONDS = 0.01
_held: dict[Path, IO[str]] = {}
_guard = threading.Lock()


def acquire_writer_lock(directory: str | os.PathLike[str], wait_seconds: float = 1.0) -> None:
    """Take (or confirm this process holds) the writer lock of ``directory``.

    Waits up to ``wait_seconds`` for it: a process that is not the writer takes it for a moment
    to mark complete a write whose writer died (see ``sync_bm25``).

    Raises:
        WriterLockError: another process holds it.
    """
    path = Path(directory).absolute()
    with _guard:
        if path in _held:
            return
        path.mkdir(parents=True, exist_ok=True)
        handle = (path / LOCK_NAME).open("a+", encoding="utf-8")
        try:
            import fcntl  # noqa: PLC0415 - POSIX only; on other systems writes are not locked

            _flock_within(fcntl, handle, wait_seconds)
        except ImportError:  # pragma: no cover - Windows
            logger.warning("no fcntl: the writer lock of %s is not enforced", path)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            msg = (
                f"another process (pid {holder}) is writing to {path}: an embedded index takes "
                "one writer process at a time (readers are fine); write from that process, or "
                "use a `chroma run` server (store.mode: http) for many writers"
            )
            raise WriterLockError(msg) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        _held[path] = handle
        logger.debug("writer lock of %s taken by pid %d", path, os.getpid())


def _flock_within(fcntl: Any, handle: IO[str], seconds: float) -> None:
    """Take an exclusive ``flock`` on ``handle``, polling up to ``seconds``.

    Raises:
        BlockingIOError: another process held it all that time.
    """
    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # noqa: PERF203 - polling a lock, not a hot loop
            if time.monotonic() >= deadline:
                raise
            time.sleep(_POLL_SECONDS)
        else:
            return


@contextlib.contextmanager
def writer_lock_if_free(directory: str | os.PathLike[str]) -> Iterator[bool]:
    """Hold the writer lock for the block if no other process has it; yields whether held.

    For repairs on open (marking a dead write complete, rewriting lost vectors), which only the
    writer may do. A lock this process already held stays held afterwards.
    """
    path = Path(directory).absolute()
    with _guard:
        already = path in _held
    if already:
        yield True
        return
    try:
        acquire_writer_lock(path)
    except WriterLockError:
        yield False
        return
    try:
        yield True
    finally:
        release_writer_lock(path)


def holds_writer_lock(directory: str | os.PathLike[str]) -> bool:
    """Whether this process holds the writer lock of ``directory``."""
    with _guard:
        return Path(directory).absolute() in _held


@contextlib.contextmanager
def save_lock(directory: str | os.PathLike[str], timeout_seconds: float = 30.0) -> Iterator[bool]:
    """Hold the save lock of a BM25 directory for the block; yields whether it was taken.

    Every save of BM25 files to ``directory`` (by any process or thread) runs under it, so saves
    never interleave and the last one to commit its manifest is the last one to take the lock.
    It waits up to ``timeout_seconds`` for another save to finish; on timeout it yields
    ``False`` and the caller skips its save (the files on disk then lag behind the collection,
    which the next open detects and repairs: nothing is lost).
    """
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
        handle = (path / SAVE_LOCK_NAME).open("a", encoding="utf-8")
    except (FileExistsError, IsADirectoryError, NotADirectoryError) as e:  # something in the way
        msg = (
            f"cannot write the BM25 index in {path}: {type(e).__name__}: {e}; move away whatever "
            "is in the way (nothing was deleted)"
        )
        raise IndexCorruptError(msg) from e
    with handle:
        try:
            import fcntl  # noqa: PLC0415 - POSIX only; on other systems saves are not locked
        except ImportError:  # pragma: no cover - Windows
            yield True
            return
        try:
            _flock_within(fcntl, handle, timeout_seconds)
        except BlockingIOError:
            logger.warning("BM25 save lock of %s busy for %.0fs", path, timeout_seconds)
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def writer_lock_free(directory: str | os.PathLike[str]) -> bool | None:
    """Whether no process holds the writer lock of ``directory``; ``None``: cannot tell.

    A probe, not a lock: it never takes the writer lock (that would be a side effect, and is
    what ``sync_bm25`` does to settle a dead write). It opens the lock file read-only (never
    creating it) and tries a shared ``flock`` without waiting, which fails while a writer holds
    its exclusive one, and unlocks at once: a writer taking the lock meanwhile polls for up to a
    second (:func:`acquire_writer_lock`), so it does not fail.
    """
    if holds_writer_lock(directory):
        return False  # this process is the writer
    try:
        import fcntl  # noqa: PLC0415 - POSIX only, like the writer lock itself
    except ImportError:  # pragma: no cover - Windows: writes are not locked there
        return None
    try:
        fd = os.open(Path(directory) / LOCK_NAME, os.O_RDONLY)
    except FileNotFoundError:
        return True  # no writer ever locked this directory
    except OSError:
        return None
    free: bool | None = True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
    except BlockingIOError:
        free = False  # a writer holds it
    except OSError:
        free = None
    finally:
        os.close(fd)
    return free


def _release_all() -> None:
    with _guard:
        handles = list(_held.values())
        _held.clear()
    for handle in handles:
        handle.close()


atexit.register(_release_all)


def release_writer_lock(directory: str | os.PathLike[str]) -> None:
    """Release this process's writer lock of ``directory`` (no-op if not held)."""
    path = Path(directory).absolute()
    with _guard:
        handle = _held.pop(path, None)
    if handle is not None:
        handle.close()  # closing the descriptor releases the flock


def _forget_after_fork() -> None:
    """In a forked child: the parent's writer locks stay the parent's.

    The child inherits the lock files' descriptors, and with them the parent's ``flock`` (it
    belongs to the shared open file): left as is, the child would write as if it were the
    writer, and its copy would keep the lock held after the parent released it. Closing the
    child's copies leaves the parent's lock as it was; a write in the child takes the lock anew
    (and gets :class:`WriterLockError` while the parent holds it).
    """
    global _guard  # noqa: PLW0603 - a lock another thread held at the fork is never released
    _guard = threading.Lock()
    handles = list(_held.values())
    _held.clear()
    for handle in handles:
        with contextlib.suppress(OSError):
            handle.close()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forget_after_fork)
