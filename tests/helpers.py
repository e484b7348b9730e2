"""Test helpers shared by unit and integration tests: a real, deterministic embedding."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.embeddings import Embeddings

from langchain_hybrid._tokenize import TokenizerConfig

_WORD = re.compile(r"\w+")

FIGURES: list[str] = []
"""What the tests measured (cases run, kill points, queries, ...), shown after the run."""


def report(line: str) -> None:
    """Record a measured figure for the summary at the end of the test run."""
    FIGURES.append(line.strip())


class HashEmbeddings(Embeddings):
    """Bag-of-words hashed into ``dim`` signed buckets, L2-normalised.

    Deterministic and fast, with real (lexical) similarity; counts every text it embeds so
    tests can check that nothing is embedded twice.
    """

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.embedded_documents = 0
        self.embedded_queries = 0
        self._lock = threading.Lock()

    def _vector(self, text: str) -> list[float]:
        vec = [0.0] * self.dim
        for word in _WORD.findall(text.lower()):
            h = zlib.crc32(word.encode())
            vec[h % self.dim] += 1.0 if (h >> 16) & 1 else -1.0
        norm = math.sqrt(sum(v * v for v in vec)) or 1.0
        if not any(vec):
            vec[0] = 1.0
            norm = 1.0
        return [v / norm for v in vec]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        with self._lock:
            self.embedded_documents += len(texts)
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        with self._lock:
            self.embedded_queries += 1
        return self._vector(text)


def hold_writer_lock(directory: Path) -> subprocess.Popen[str]:
    """Another process that takes the writer lock and waits for a line on stdin (or a kill)."""
    script = textwrap.dedent(
        f"""
        import sys
        from langchain_hybrid._locking import acquire_writer_lock
        acquire_writer_lock({str(directory)!r})
        print("locked", flush=True)
        sys.stdin.readline()
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "locked"
    return process


IDENTITY = TokenizerConfig(
    lowercase=False,
    stopwords=None,
    stemmer=None,
    token_pattern=r"\S+",  # noqa: S106 - a regex, not a secret
    normalize=None,
    strip_accents=False,
)
"""A tokenizer that splits on whitespace and changes nothing: BM25 tests score exact tokens."""


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            msg = "condition not reached in time"
            raise AssertionError(msg)
        time.sleep(0.001)


def run_threads(n: int, target: Callable[[int], None]) -> list[threading.Thread]:
    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    return threads


class RunRecorder(BaseCallbackHandler):
    """Records retriever runs: (name, run id, parent run id, thread name) and errors."""

    def __init__(self) -> None:
        self.starts: list[tuple[str, UUID, UUID | None, str]] = []
        self.errors: list[tuple[UUID, str]] = []
        self.lock = threading.Lock()

    def on_retriever_start(
        self,
        serialized: dict[str, Any],
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        with self.lock:
            name = kwargs.get("name") or (serialized or {}).get("name", "")
            self.starts.append((name, run_id, parent_run_id, threading.current_thread().name))

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        with self.lock:
            self.errors.append((run_id, type(error).__name__))


# (id, text, source, year): twelve short documents on four topics, with an identifier
CORPUS = [
    ("net-1", "The NX-220 router shows error E-4471 when its firmware is outdated", "faq", 2024),
    ("net-2", "Reset the router by holding the button for ten seconds", "handbook", 2021),
    ("net-3", "Mesh networks extend wifi coverage across large houses", "blog", 2023),
    ("gar-1", "Water tomatoes deeply twice a week during hot summers", "handbook", 2020),
    ("gar-2", "Prune roses in late winter before new growth starts", "blog", 2022),
    ("gar-3", "Compost turns kitchen scraps into rich garden soil", "faq", 2025),
    ("cof-1", "Espresso needs a fine grind and nine bar of pressure", "blog", 2019),
    ("cof-2", "A french press brews coffee with a coarse grind", "faq", 2024),
    ("cof-3", "Cold brew coffee steeps for twelve hours in cold water", "handbook", 2026),
    ("py-1", "Use functools.lru_cache to memoize pure python functions", "faq", 2023),
    ("py-2", "Python generators yield values lazily one at a time", "blog", 2021),
    ("py-3", "Type hints in python help static checkers like mypy", "handbook", 2022),
]
