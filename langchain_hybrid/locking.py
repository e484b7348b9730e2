"""The writer lock of a persist directory: one writer process, any number of reader processes.

An embedded (persistent) index is a SQLite database and a set of BM25 files, both written by
this package without cross-process coordination, so one process at a time may write. The lock
is ``<persist_directory>/.writer.lock``, taken with ``flock`` on the first write and held until
the process exits or :func:`release_writer_lock` is called; the kernel drops it when the process
dies (even by SIGKILL), so a crash never leaves a stale lock. Readers take no lock: they notice
other processes' writes through :meth:`HybridRetriever.refresh`. For many writer processes, run
a ``chroma run`` server (``store.mode: http``).

Several retrievers in one process share the lock (it is counted per directory).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from langchain_hybrid.errors import WriterLockError

logger = logging.getLogger(__name__)

LOCK_NAME = ".writer.lock"
_held: dict[Path, IO[str]] = {}
_guard = threading.Lock()


def acquire_writer_lock(directory: str | os.PathLike[str]) -> None:
    """Take (or confirm this process holds) the writer lock of ``directory``.

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

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
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


@contextlib.contextmanager
def writer_lock_if_free(directory: str | os.PathLike[str]) -> Iterator[bool]:
    """Hold the writer lock for the block if no other process has it; yields whether held.

    For saving a repaired BM25 index on open: a reader process must not write files while
    another process is writing. A lock this process already held stays held afterwards.
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
