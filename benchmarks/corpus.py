"""Seeded benchmark data: a Zipf-distributed synthetic corpus, queries, and a cheap embedding.

Everything here is deterministic for a given seed and built with numpy, so 100k documents take
a few seconds and every run (and every machine) benchmarks the same data.

* :func:`make_vocabulary`: pronounceable pseudo-words (syllables plus English-like suffixes such
  as ``-ing``/``-ed``/``-s``, so the stemmer has variants to merge), none an English stopword,
  shorter words at the frequent end of the ranking as in natural language.
* :func:`generate_corpus`: documents of 50-150 words drawn from a Zipf-Mandelbrot law
  ``p(rank) ~ 1 / (rank + 2.7) ** 1.0`` over the vocabulary, lowercase and space-separated (so
  LangChain"s ``str.split`` tokenization sees the same surface words as ours).
* :func:`make_queries`: 2-4 distinct words taken from a random document, so every query has
  matches and mixes frequent and rare terms.
* :class:`HashingEmbeddings`: a deterministic 384-d embedding (hashing trick + seeded Gaussian
  random projection of log term counts, L2-normalised), standing in for a real model whose
  20 passages/s would dominate any latency measured at 10k documents.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from scipy import sparse

from langchain_hybrid._stopwords import ENGLISH_STOP_WORDS

_ONSETS = "b c d f g h j k l m n p r s t v w z br cr dr fl gr pl pr st tr ch sh th sl sp".split()  # noqa: SIM905 - reads best as one string
_VOWELS = "a e i o u a e i o ai ea ou io".split()  # noqa: SIM905 - as above
_CODAS = ["", "", "", "n", "r", "s", "l", "m", "nd", "st", "rt", "ck", "x"]
_SUFFIXES = ["", "", "", "", "", "s", "s", "ing", "ed", "er", "ly", "tion", "ment", "ness"]


@dataclass(frozen=True, slots=True)
class Corpus:
    """A generated corpus: parallel ``ids``/``texts`` and a fixed list of ``queries``."""

    ids: list[str]
    texts: list[str]
    queries: list[str]
    seed: int

    def __len__(self) -> int:
        """Number of documents."""
        return len(self.texts)

    def documents(self) -> list[Document]:
        """The corpus as LangChain documents, ``Document.id`` set."""
        return [
            Document(id=doc_id, page_content=text, metadata={"n": n})
            for n, (doc_id, text) in enumerate(zip(self.ids, self.texts, strict=True))
        ]


def make_vocabulary(size: int, rng: np.random.Generator) -> list[str]:
    """``size`` distinct pseudo-words, sorted shortest first (frequent words are short)."""
    seen: dict[str, None] = {}
    while len(seen) < size:
        batch = 2 * (size - len(seen)) + 64
        syllables = rng.integers(1, 4, batch)
        onsets = rng.integers(0, len(_ONSETS), (batch, 3))
        vowels = rng.integers(0, len(_VOWELS), (batch, 3))
        codas = rng.integers(0, len(_CODAS), (batch, 3))
        suffixes = rng.integers(0, len(_SUFFIXES), batch)
        for i in range(batch):
            word = "".join(
                _ONSETS[onsets[i, j]] + _VOWELS[vowels[i, j]] + _CODAS[codas[i, j]]
                for j in range(syllables[i])
            )
            word += _SUFFIXES[suffixes[i]]
            if len(word) > 2 and word not in ENGLISH_STOP_WORDS:
                seen.setdefault(word, None)
    words = list(seen)[:size]
    words.sort(key=len)  # stable: the order within a length stays seeded
    return words


def zipf_cdf(size: int, exponent: float = 1.0, shift: float = 2.7) -> npt.NDArray[np.float64]:
    """Cumulative Zipf-Mandelbrot distribution over ranks ``0 .. size - 1``."""
    weights = 1.0 / (np.arange(1, size + 1, dtype=np.float64) + shift) ** exponent
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    return cdf


def generate_corpus(
    n_docs: int,
    *,
    seed: int = 20240601,
    vocab_size: int = 50_000,
    min_len: int = 50,
    max_len: int = 150,
    n_queries: int = 200,
) -> Corpus:
    """Generate ``n_docs`` documents of ``min_len``-``max_len`` words and ``n_queries`` queries.

    About 2 s for 100k documents (10M words); the same seed always gives the same corpus.
    """
    rng = np.random.default_rng(seed)
    words = make_vocabulary(vocab_size, rng)
    lengths = rng.integers(min_len, max_len + 1, n_docs)
    ranks = np.searchsorted(zipf_cdf(vocab_size), rng.random(int(lengths.sum())), side="right")
    np.minimum(ranks, vocab_size - 1, out=ranks)
    flat: list[str] = np.asarray(words, dtype=object)[ranks].tolist()
    bounds = np.concatenate([[0], np.cumsum(lengths)]).tolist()
    texts = [" ".join(flat[bounds[i] : bounds[i + 1]]) for i in range(n_docs)]
    ids = [f"doc-{i:07d}" for i in range(n_docs)]
    queries = make_queries(texts, n_queries, rng)
    return Corpus(ids=ids, texts=texts, queries=queries, seed=seed)


def make_queries(texts: list[str], n: int, rng: np.random.Generator) -> list[str]:
    """``n`` queries of 2-4 distinct words, each drawn from the words of one random document."""
    queries = []
    for doc in rng.integers(0, len(texts), n):
        distinct = sorted(set(texts[doc].split()))
        size = min(len(distinct), int(rng.integers(2, 5)))
        picked = rng.choice(len(distinct), size=size, replace=False)
        queries.append(" ".join(distinct[i] for i in picked))
    return queries


class HashingEmbeddings(Embeddings):
    """Deterministic, fast bag-of-words embeddings: a seeded random projection to ``dim``.

    Each lowercase word is hashed (CRC-32, stable across processes, unlike ``hash``) to one of
    ``n_buckets`` rows of a seeded Gaussian matrix; a text"s vector is the sum of its words" rows
    weighted by ``1 + log(count)``, L2-normalised. Texts sharing words get close vectors (a
    Johnson-Lindenstrauss projection of their term vectors), which is all a latency benchmark
    of the vector leg needs. About 10k texts/s.
    """

    _word = re.compile(r"\w+")

    def __init__(self, dim: int = 384, n_buckets: int = 1 << 14, seed: int = 7) -> None:
        """Draw the projection matrix."""
        self.dim = dim
        self.n_buckets = n_buckets
        rng = np.random.default_rng(seed)
        self._projection = rng.standard_normal((n_buckets, dim)).astype(np.float32)
        self._buckets: dict[str, int] = {}

    def _bucket(self, word: str) -> int:
        bucket = self._buckets.get(word)
        if bucket is None:
            bucket = self._buckets[word] = zlib.crc32(word.encode()) % self.n_buckets
        return bucket

    def _weighted_buckets(self, text: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        buckets = np.fromiter(
            (self._bucket(w) for w in self._word.findall(text.lower())), dtype=np.int64
        )
        unique, counts = np.unique(buckets, return_counts=True)
        return unique, (1.0 + np.log(counts)).astype(np.float32)

    def embed_array(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts`` into a ``(len(texts), dim)`` float32 array of unit rows."""
        if len(texts) <= 16:  # a query: gather a few rows, skip building a sparse matrix
            vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
            for row, text in enumerate(texts):
                unique, weights = self._weighted_buckets(text)
                vectors[row] = weights @ self._projection[unique]
        else:
            rows: list[int] = []
            cols: list[int] = []
            for row, text in enumerate(texts):
                for word in self._word.findall(text.lower()):
                    rows.append(row)
                    cols.append(self._bucket(word))
            counts = sparse.csr_matrix(
                (np.ones(len(rows), dtype=np.float32), (rows, cols)),
                shape=(len(texts), self.n_buckets),
            )
            counts.sum_duplicates()
            counts.data = 1.0 + np.log(counts.data)
            vectors = np.asarray(counts @ self._projection, dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        norms[norms == 0.0] = 1.0
        return vectors / norms

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents."""
        return self.embed_array(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        """Embed one query."""
        return self.embed_array([text])[0].tolist()


@dataclass(frozen=True, slots=True)
class BenchSettings:
    """How big and how long: read once per session from the environment."""

    disabled: bool
    docs: int
    hybrid_docs: int
    rounds: int
    slow_rounds: int

    def warmup(self, rounds: int) -> int:
        """Warm-up rounds for ``rounds`` timed rounds (none when timing is disabled)."""
        return 0 if self.disabled else max(1, rounds // 20)


class QueryCycle:
    """Feeds ``benchmark.pedantic`` one query per round, cycling through a fixed list.

    Used as ``pedantic``'s ``setup`` (not timed): each call returns the target's arguments,
    ``(*leading, query)`` and ``kwargs``.
    """

    def __init__(self, queries: Sequence[object], *leading: object, **kwargs: object) -> None:
        """Start at the first query."""
        self.queries = queries
        self.leading = leading
        self.kwargs = kwargs
        self._next = 0

    def __call__(self) -> tuple[tuple[object, ...], dict[str, object]]:
        """The next round's arguments."""
        query = self.queries[self._next % len(self.queries)]
        self._next += 1
        return (*self.leading, query), self.kwargs
