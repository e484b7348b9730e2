"""The lexical leg: an exact, incremental, persistent Okapi BM25 index.

Scoring (Lucene's BM25, the ``lucene`` method of bm25s; Robertson & Zaragoza 2009)::

    idf(t)      = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))          always > 0
    score(q, d) = sum over query tokens t of
                  idf(t) * tf(t, d) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl))

``N``, ``df`` and ``avgdl`` count live documents only and are exact after every add, upsert or
delete: nothing is precomputed that a write could make stale. Postings are held twice: a
document-major log (CSR, the source of truth, appended on add) and a term-major copy (CSC) for
queries, built for the bulk of the slots and kept small for recent additions, so a write costs
time proportional to the documents written, not to the index.

Persistence is plain files, no pickle: ``manifest.json`` (settings, tokenizer, generation, file
checksums), ``vocab-<gen>-<hash>.json``, ``docs-<gen>-<hash>.json`` and
``postings-<gen>-<hash>.npz``. Data files are written under new, content-addressed names first and
the manifest is replaced atomically last, so a crash leaves either the old index or the new one,
never a mix.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import tempfile
import threading
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from langchain_hybrid._tokenize import Tokenizer, TokenizerConfig
from langchain_hybrid.errors import IndexCorruptError, InvalidDocumentsError
from langchain_hybrid.filters import MetadataColumns, Node, is_utf8

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1


class BM25Params(BaseModel):
    """Okapi BM25 parameters and the tokenizer; all saved with the index."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    k1: float = Field(
        default=0.9, ge=0.0, allow_inf_nan=False, description="term-frequency saturation"
    )
    b: float = Field(default=0.4, ge=0.0, le=1.0, description="document-length normalisation")
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)


class BM25Hit(NamedTuple):
    """One scored document of a BM25 search."""

    id: str
    score: float
    text: str
    metadata: dict[str, Any]


_OWN_FILE = re.compile(
    r"(?:\.(?:manifest\.json|(?:vocab|docs|postings)-\d+-[0-9a-f]{16}\.(?:json|npz))\.\w+\.tmp)"
    r"|(?:vocab|docs|postings)-\d+-[0-9a-f]{16}\.(?:json|npz)"
)
"""Names :meth:`BM25Index.save` writes (data files and its temp files): the only ones it removes."""
_Float = npt.NDArray[np.float64]
_Int = npt.NDArray[np.int64]
_MAX_CACHED_POSTINGS = 32_000_000  # 256 MB of float64 weights at most
_TINY = np.finfo(np.float64).tiny  # "greater than zero" for scores


class _CSC(NamedTuple):
    indptr: _Int  # per term
    slots: _Int
    tfs: _Float


def _to_csc(terms: _Int, slots: _Int, tfs: _Float, n_terms: int) -> _CSC:
    order = np.argsort(terms, kind="stable")
    counts = np.bincount(terms, minlength=n_terms)
    indptr = np.zeros(n_terms + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return _CSC(indptr, slots[order], tfs[order])


class BM25Index:
    """An exact Okapi BM25 index with add, upsert, delete, filters and atomic persistence.

    Setup:
        Part of the core install (numpy, PyStemmer, scikit-learn's stopword list).

    Key init args:
        params: :class:`BM25Params` (``k1``, ``b`` and the tokenizer settings).

    Instantiate:
        .. code-block:: python

            from langchain_hybrid.bm25 import BM25Index, BM25Params

            index = BM25Index(BM25Params(k1=0.9, b=0.4))

    Usage:
        .. code-block:: python

            index.add(["a", "b"], ["red apples", "green pears"], [{"c": "red"}, None])
            index.search("apple", k=5)            # [BM25Hit(id="a", score=..., ...)]
            index.delete(["a"])
            index.save("./index/bm25/kb")
            same = BM25Index.load("./index/bm25/kb")

    Thread-safe: every operation holds the index's lock (a search holds it for about a
    millisecond at 100k documents).
    """

    def __init__(self, params: BM25Params | None = None) -> None:
        """Create an empty index."""
        self.params = params or BM25Params()
        self.tokenizer = Tokenizer(self.params.tokenizer)
        self.generation = 0
        self._lock = threading.RLock()
        self._reset()

    def _reset(self) -> None:
        self._ids: list[str] = []
        self._slot_of: dict[str, int] = {}
        self._texts: list[str] = []
        self._metadatas: list[dict[str, Any] | None] = []
        self._columns = MetadataColumns()
        self._vocab: dict[str, int] = {}
        self._df = np.zeros(0, dtype=np.int64)
        # document-major postings (CSR over slots): the source of truth
        self._doc_ptr = np.zeros(1, dtype=np.int64)
        self._terms = np.zeros(0, dtype=np.int64)
        self._tfs = np.zeros(0, dtype=np.float64)
        self._dl = np.zeros(0, dtype=np.float64)
        self._alive = np.zeros(0, dtype=bool)
        self._n_alive = 0
        self._total_len = 0.0
        # term-major copy for queries: slots < _main_upto in _main, the rest in _tail
        self._main: _CSC | None = None
        self._main_upto = 0
        self._tail: _CSC | None = None
        self._derived_valid = False
        self._idf = np.zeros(0)
        self._norm = np.zeros(0)
        # per-term weights tf / (tf + norm) of the current derived state, filled as queries use
        # terms and dropped by every write (which moves avgdl), so scores stay exact
        self._term_weights: dict[tuple[int, int], _Float] = {}
        self._cached_postings = 0

    # ------------------------------------------------------------------ introspection
    # Every reader below holds the lock: a delete may compact (renumber every slot and replace
    # every array), so reads outside it could mix slots of two layouts.
    def __len__(self) -> int:
        """Number of live documents."""
        with self._lock:
            return self._n_alive

    def __contains__(self, doc_id: object) -> bool:
        """Whether ``doc_id`` is a live document."""
        with self._lock:
            return doc_id in self._slot_of

    @property
    def ids(self) -> list[str]:
        """Ids of the live documents, in insertion order."""
        with self._lock:
            return [i for i, alive in zip(self._ids, self._alive, strict=True) if alive]

    @property
    def vocabulary_size(self) -> int:
        """Number of distinct tokens ever indexed (including ones only deleted docs used)."""
        with self._lock:
            return len(self._vocab)

    @property
    def avgdl(self) -> float:
        """Average live document length in tokens."""
        with self._lock:
            return self._total_len / self._n_alive if self._n_alive else 0.0

    def get(self, ids: Iterable[str]) -> list[BM25Hit | None]:
        """Return stored text and metadata of ``ids`` (``None`` for unknown ids), score 0."""
        wanted = list(ids)
        out: list[BM25Hit | None] = []
        with self._lock:
            for doc_id in wanted:
                slot = self._slot_of.get(doc_id)
                if slot is None:
                    out.append(None)
                else:
                    metadata = dict(self._metadatas[slot] or {})
                    out.append(BM25Hit(doc_id, 0.0, self._texts[slot], metadata))
        return out

    # ------------------------------------------------------------------ writes
    def add(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        *,
        tokens: Sequence[Sequence[str]] | None = None,
    ) -> None:
        """Add documents; ids already present are replaced (upsert).

        Args:
            ids: unique, non-empty document ids.
            texts: the text of each document.
            metadatas: metadata of each document (for filters and returned documents).
            tokens: pre-tokenized texts (skips the tokenizer; used by tests and rebuilds).

        Raises:
            InvalidDocumentsError: lengths differ or ids are duplicated or empty. The index is
                unchanged.
        """
        n = len(ids)
        metadatas = list(metadatas) if metadatas is not None else [None] * n
        if len(texts) != n or len(metadatas) != n or (tokens is not None and len(tokens) != n):
            msg = f"got {n} ids, {len(texts)} texts and {len(metadatas)} metadatas"
            raise InvalidDocumentsError(msg)
        check_ids(ids)
        token_lists = [self.tokenizer(t) for t in texts] if tokens is None else tokens
        counters = [Counter(toks) for toks in token_lists]
        with self._lock:
            replaced = [i for i in ids if i in self._slot_of]
            if replaced:
                self._delete_locked(replaced)
            self._append_locked(ids, texts, metadatas, counters)
            self.generation += 1

    def _append_locked(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[Mapping[str, Any] | None],
        counters: Sequence[Counter[str]],
    ) -> None:
        first = len(self._ids)
        lengths = np.zeros(len(ids), dtype=np.int64)
        terms: list[int] = []
        tfs: list[int] = []
        vocab = self._vocab
        for j, counter in enumerate(counters):
            for token, tf in counter.items():
                term = vocab.get(token)
                if term is None:
                    term = vocab[token] = len(vocab)
                terms.append(term)
                tfs.append(tf)
            lengths[j] = len(counter)
        doc_lens = np.array([sum(c.values()) for c in counters], dtype=np.float64)
        new_terms = np.array(terms, dtype=np.int64)
        if len(vocab) > len(self._df):
            self._df = np.concatenate([self._df, np.zeros(len(vocab) - len(self._df), np.int64)])
        np.add.at(self._df, new_terms, 1)
        self._terms = np.concatenate([self._terms, new_terms])
        self._tfs = np.concatenate([self._tfs, np.array(tfs, dtype=np.float64)])
        self._doc_ptr = np.concatenate([self._doc_ptr, self._doc_ptr[-1] + np.cumsum(lengths)])
        self._dl = np.concatenate([self._dl, doc_lens])
        self._alive = np.concatenate([self._alive, np.ones(len(ids), dtype=bool)])
        for j, doc_id in enumerate(ids):
            self._slot_of[doc_id] = first + j
        self._ids.extend(ids)
        self._texts.extend(texts)
        clean = [dict(m) if m else None for m in metadatas]
        self._metadatas.extend(clean)
        self._columns.append(clean)
        self._n_alive += len(ids)
        self._total_len += float(doc_lens.sum())
        self._tail = None
        self._derived_valid = False

    def delete(self, ids: Iterable[str]) -> int:
        """Delete documents by id; unknown ids are ignored. Returns how many were deleted."""
        with self._lock:
            deleted = self._delete_locked(list(dict.fromkeys(i for i in ids if i in self._slot_of)))
            if deleted:
                self.generation += 1
            return deleted

    def _delete_locked(self, ids: Sequence[str]) -> int:
        for doc_id in ids:
            slot = self._slot_of.pop(doc_id)
            start, end = self._doc_ptr[slot], self._doc_ptr[slot + 1]
            np.subtract.at(self._df, self._terms[start:end], 1)
            self._alive[slot] = False
            self._n_alive -= 1
            self._total_len -= float(self._dl[slot])
            self._texts[slot] = ""
            self._metadatas[slot] = None
        self._derived_valid = False
        dead = len(self._ids) - self._n_alive
        if dead > 1024 and dead > len(self._ids) // 4:  # noqa: PLR2004
            self._compact_locked()
        return len(ids)

    def _compact_locked(self) -> None:
        """Drop deleted slots and renumber (amortised: runs when a quarter of slots are dead)."""
        keep = np.flatnonzero(self._alive)
        starts, ends = self._doc_ptr[keep], self._doc_ptr[keep + 1]
        lengths = ends - starts
        take = np.repeat(starts - np.cumsum(np.concatenate([[0], lengths[:-1]])), lengths)
        take = take + np.arange(int(lengths.sum()))
        self._terms = self._terms[take]
        self._tfs = self._tfs[take]
        self._doc_ptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self._dl = self._dl[keep]
        self._alive = np.ones(len(keep), dtype=bool)
        self._ids = [self._ids[s] for s in keep]
        self._texts = [self._texts[s] for s in keep]
        self._metadatas = [self._metadatas[s] for s in keep]
        self._columns = self._columns.take(keep)
        self._slot_of = {doc_id: s for s, doc_id in enumerate(self._ids)}
        self._main = None
        self._main_upto = 0
        self._tail = None
        self._derived_valid = False
        logger.debug("compacted BM25 index to %d slots", len(keep))

    def clear(self) -> None:
        """Remove every document."""
        with self._lock:
            self._reset()
            self.generation += 1

    # ------------------------------------------------------------------ queries
    def _ensure_derived(self) -> None:
        """Bring the query-side structures up to date (under the lock; cheap when current)."""
        if self._derived_valid:
            return
        n_slots = len(self._ids)
        n_terms = len(self._vocab)
        tail_slots = n_slots - self._main_upto
        if self._main is None or tail_slots > max(4096, self._main_upto // 8):
            self._main = self._build_csc(0, n_slots, n_terms)
            self._main_upto = n_slots
            self._tail = None
        elif self._tail is None and tail_slots:
            self._tail = self._build_csc(self._main_upto, n_slots, n_terms)
        if len(self._main.indptr) < n_terms + 1:  # terms added by the tail only
            pad = np.full(n_terms + 1 - len(self._main.indptr), self._main.indptr[-1])
            self._main = self._main._replace(indptr=np.concatenate([self._main.indptr, pad]))
        n = float(self._n_alive)
        df = self._df.astype(np.float64)
        self._idf = np.log1p((n - df + 0.5) / (df + 0.5))
        avgdl = self.avgdl or 1.0
        k1, b = self.params.k1, self.params.b
        self._norm = k1 * (1.0 - b + b * self._dl / avgdl)
        self._term_weights.clear()
        self._cached_postings = 0
        self._derived_valid = True

    def _build_csc(self, first: int, last: int, n_terms: int) -> _CSC:
        start, end = self._doc_ptr[first], self._doc_ptr[last]
        lengths = np.diff(self._doc_ptr[first : last + 1])
        slots = np.repeat(np.arange(first, last, dtype=np.int64), lengths)
        return _to_csc(self._terms[start:end], slots, self._tfs[start:end], n_terms)

    def token_ids(self, query: str) -> dict[int, int]:
        """Map the query's known tokens to their vocabulary ids, with query term counts."""
        tokens = self.tokenizer.query(query)
        counts: dict[int, int] = {}
        with self._lock:
            for token in tokens:
                term = self._vocab.get(token)
                if term is not None:
                    counts[term] = counts.get(term, 0) + 1
        return counts

    def scores(self, query: str) -> _Float:
        """Exact BM25 score of every slot (dead slots score 0). For tests and diagnostics."""
        with self._lock:
            self._ensure_derived()
            return self._score_locked(self.token_ids(query))

    def _weights(self, part: int, csc: _CSC, term: int, lo: int, hi: int) -> _Float:
        """``tf / (tf + norm)`` of one term's postings in one part, cached until a write."""
        key = (part, term)
        weights = self._term_weights.get(key)
        if weights is None:
            tf = csc.tfs[lo:hi]
            weights = tf / (tf + self._norm[csc.slots[lo:hi]])
            if self._cached_postings + len(weights) <= _MAX_CACHED_POSTINGS:
                self._term_weights[key] = weights
                self._cached_postings += len(weights)
        return weights

    def _score_locked(self, terms: Mapping[int, int]) -> _Float:
        return self._accumulate(terms)[0]

    def _accumulate(self, terms: Mapping[int, int]) -> tuple[_Float, _Int, int]:
        """Scores of every slot, the slots of the postings read, and how many lists were read."""
        n_slots = len(self._ids)
        slot_parts: list[_Int] = []
        weight_parts: list[_Float] = []
        for part, csc in enumerate((self._main, self._tail)):
            if csc is None:
                continue
            for term, qtf in terms.items():
                if term + 1 >= len(csc.indptr):
                    continue
                lo, hi = int(csc.indptr[term]), int(csc.indptr[term + 1])
                if lo == hi:
                    continue
                slot_parts.append(csc.slots[lo:hi])
                weight_parts.append(
                    self._weights(part, csc, term, lo, hi) * (self._idf[term] * qtf)
                )
        if not slot_parts:
            return np.zeros(n_slots), np.zeros(0, dtype=np.int64), 0
        if len(slot_parts) == 1:
            slots, weights = slot_parts[0], weight_parts[0]
        else:
            slots, weights = np.concatenate(slot_parts), np.concatenate(weight_parts)
        scores: _Float = np.bincount(slots, weights, minlength=n_slots).astype(
            np.float64, copy=False
        )
        if self._n_alive != n_slots:
            scores[~self._alive] = 0.0
        return scores, slots, len(slot_parts)

    @staticmethod
    def _top_candidates(scores: _Float, slots: _Int, lists: int, k: int) -> _Int:
        """Slots that may be in the top ``k`` (a superset; every slot scoring >= the k-th).

        Only slots in the postings read can score. Each appears at most once per posting list,
        so the (k * lists)-th largest of the gathered posting scores is at most the k-th best
        slot score: selecting among the postings (often far fewer than the slots) is exact.
        """
        if len(slots) < len(scores) // 2:
            values = scores[slots]
            depth = k * lists
            if depth < len(values):
                cut = np.partition(values, len(values) - depth)[len(values) - depth]
                return np.unique(slots[values >= max(cut, _TINY)])
            return np.unique(slots[values > 0.0])
        if k < len(scores):
            cut = np.partition(scores, len(scores) - k)[len(scores) - k]
            return np.flatnonzero(scores >= max(cut, _TINY))
        return np.flatnonzero(scores > 0.0)

    def search(self, query: str, k: int, where: Node | None = None) -> list[BM25Hit]:
        """Return the top ``k`` documents for ``query``, best first.

        Args:
            query: the query text (tokenized with the index's tokenizer).
            k: how many documents to return at most.
            where: a compiled filter (:func:`langchain_hybrid.filters.parse_filter`), evaluated
                before top-k selection: only matching documents are ranked.

        Only documents sharing at least one token with the query are returned. Ties are broken
        by document id, so results do not depend on insertion order.
        """
        with self._lock:
            self._ensure_derived()
            terms = self.token_ids(query)
            if not terms:
                return []
            scores, slots, lists = self._accumulate(terms)
            if where is not None:
                scores[~self._columns.evaluate(where)] = 0.0
            candidates = self._top_candidates(scores, slots, lists, k)
            ranked = sorted(
                ((float(scores[s]), self._ids[s], int(s)) for s in candidates),
                key=lambda t: (-t[0], t[1]),
            )[:k]
            return [
                BM25Hit(doc_id, score, self._texts[s], dict(self._metadatas[s] or {}))
                for score, doc_id, s in ranked
            ]

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write the index to ``directory`` atomically (see the module docstring).

        Callers that may race with other processes hold
        :func:`langchain_hybrid.locking.save_lock` around it.
        """
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        with self._lock:
            live = np.flatnonzero(self._alive)
            if len(live) != len(self._ids):
                self._compact_locked()
            gen = self.generation
            vocab_terms = sorted(self._vocab, key=self._vocab.__getitem__)
            docs = [
                [self._ids[s], self._texts[s], self._metadatas[s]] for s in range(len(self._ids))
            ]
            arrays: dict[str, npt.NDArray[Any]] = {
                "doc_ptr": self._doc_ptr,
                "terms": self._terms.astype(np.int32),
                "tfs": self._tfs.astype(np.int32),
            }
        blobs = {
            "vocab": (_json_bytes(vocab_terms), "json"),
            "docs": (_json_bytes(docs), "json"),
            "postings": (_npz_bytes(arrays), "npz"),
        }
        # unique names per content: a save never overwrites a file the current manifest uses
        files = {
            f"{kind}-{gen}-{hashlib.sha256(data).hexdigest()[:16]}.{ext}": data
            for kind, (data, ext) in blobs.items()
        }
        for name, data in files.items():
            _atomic_write(path / name, data)
        manifest = {
            "format": "langchain-hybrid-bm25",
            "format_version": FORMAT_VERSION,
            "generation": gen,
            "documents": len(docs),
            "params": self.params.model_dump(mode="json"),
            "files": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
        }
        _atomic_write(path / "manifest.json", _json_bytes(manifest, indent=2))
        for stale in path.iterdir():  # only files of this format: never anything else
            if stale.name not in files and _OWN_FILE.fullmatch(stale.name):
                with contextlib.suppress(OSError):
                    stale.unlink()
        logger.debug("saved BM25 index (%d docs, generation %d) to %s", len(docs), gen, path)

    @staticmethod
    def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
        """Read and check a saved index's manifest.

        Raises:
            FileNotFoundError: there is no saved index in ``directory``.
            IndexCorruptError: the manifest is unreadable or of an unknown format.
        """
        path = Path(directory) / "manifest.json"
        try:
            manifest = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as e:
            msg = f"BM25 manifest {path} is unreadable: {e}"
            raise IndexCorruptError(msg) from e
        if not isinstance(manifest, dict) or manifest.get("format") != "langchain-hybrid-bm25":
            msg = f"{path} is not a langchain-hybrid BM25 manifest"
            raise IndexCorruptError(msg)
        if manifest.get("format_version") != FORMAT_VERSION:
            msg = f"{path} has format version {manifest.get('format_version')}, expected 1"
            raise IndexCorruptError(msg)
        return manifest

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> BM25Index:
        """Load an index saved by :meth:`save`, verifying every file's checksum.

        Raises:
            FileNotFoundError: there is no saved index in ``directory``.
            IndexCorruptError: a file is missing, altered, truncated or inconsistent.
        """
        path = Path(directory)
        manifest = cls.read_manifest(path)
        try:
            params = BM25Params.model_validate(manifest["params"])
            blobs: dict[str, bytes] = {}
            for name, digest in manifest["files"].items():
                blobs[name.split("-", 1)[0]] = _read_verified(path / name, digest)
            vocab_terms = json.loads(blobs["vocab"])
            docs = json.loads(blobs["docs"])
            with np.load(io.BytesIO(blobs["postings"]), allow_pickle=False) as npz:
                doc_ptr = npz["doc_ptr"].astype(np.int64)
                terms = npz["terms"].astype(np.int64)
                tfs = npz["tfs"].astype(np.float64)
            index = cls(params)
            index._restore(vocab_terms, docs, doc_ptr, terms, tfs)
            index.generation = int(manifest["generation"])
        except IndexCorruptError:
            raise
        except (
            OSError,
            ValueError,
            KeyError,
            TypeError,
            IndexError,
            EOFError,
            zipfile.BadZipFile,
            zlib.error,
        ) as e:
            msg = f"BM25 index in {path} is corrupt: {type(e).__name__}: {e}"
            raise IndexCorruptError(msg) from e
        return index

    def _restore(
        self,
        vocab_terms: list[str],
        docs: list[list[Any]],
        doc_ptr: _Int,
        terms: _Int,
        tfs: _Float,
    ) -> None:
        n = len(docs)
        if len(doc_ptr) != n + 1 or doc_ptr[-1] != len(terms) or len(tfs) != len(terms):
            msg = "postings do not match the document list"
            raise IndexCorruptError(msg)
        if len(terms) and (terms.min() < 0 or terms.max() >= len(vocab_terms)):
            msg = "postings reference unknown terms"
            raise IndexCorruptError(msg)
        self._vocab = {t: i for i, t in enumerate(vocab_terms)}
        self._ids = [str(d[0]) for d in docs]
        self._texts = [str(d[1]) for d in docs]
        self._metadatas = [d[2] for d in docs]
        self._slot_of = {doc_id: s for s, doc_id in enumerate(self._ids)}
        if len(self._slot_of) != n:
            msg = "duplicate document ids in the saved index"
            raise IndexCorruptError(msg)
        self._columns.append(self._metadatas)
        self._doc_ptr, self._terms, self._tfs = doc_ptr, terms, tfs
        slot_of_posting = np.repeat(np.arange(n), np.diff(doc_ptr))
        self._dl = np.bincount(slot_of_posting, weights=tfs, minlength=n).astype(np.float64)
        self._df = np.bincount(terms, minlength=len(vocab_terms)).astype(np.int64)
        self._alive = np.ones(n, dtype=bool)
        self._n_alive = n
        self._total_len = float(self._dl.sum())


def check_ids(ids: Sequence[object]) -> None:
    """Raise :class:`InvalidDocumentsError` unless ``ids`` are unique non-empty strings."""
    seen: set[str] = set()
    for doc_id in ids:
        if not isinstance(doc_id, str) or not doc_id or not is_utf8(doc_id):
            msg = f"document ids must be non-empty UTF-8 strings, got {doc_id!r}"
            raise InvalidDocumentsError(msg)
        if doc_id in seen:
            msg = f"duplicate document id {doc_id!r} in one call"
            raise InvalidDocumentsError(msg)
        seen.add(doc_id)


def _read_verified(path: Path, digest: str) -> bytes:
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != digest:
        msg = f"checksum mismatch for {path}"
        raise IndexCorruptError(msg)
    return data


def _json_bytes(obj: object, indent: int | None = None) -> bytes:
    return json.dumps(obj, ensure_ascii=False, indent=indent, allow_nan=False).encode("utf-8")


def _npz_bytes(arrays: Mapping[str, npt.NDArray[Any]]) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same directory, fsync and rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
