"""Test helpers shared by unit and integration tests: a real, deterministic embedding."""

from __future__ import annotations

import math
import re
import threading
import zlib

from langchain_core.embeddings import Embeddings

_WORD = re.compile(r"\w+")


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
