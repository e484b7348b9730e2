"""The lexical leg: an exact, incremental, persistent Okapi BM25 index.

Scoring (Lucene's BM25, the ``lucene`` method of bm25s; Robertson & Zaragoza 2009)::

    idf(t)      = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))          always > 0
    score(q, d) = sum over query tokens t of
                  idf(t) * tf(t, d) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl))

``N``, ``df`` and ``avgdl`` count live documents only and are exact after every add, upsert or
delete: nothing is precomputed that a write could make stale. Postings are held twice: a
document-major copy (CSR, the source of truth) and a term-major copy (CSC) for queries. Slots of
the last merged segment live in its memory-mapped files; slots added since live in growable
in-memory buffers (amortised O(added) per write) with a small term-major tail built for them, so
a write costs time proportional to the documents written, not to the index.

Persistence is log-structured, plain files, no pickle, in the index's directory:

* one immutable **segment**: ``vocab-<gen>-<tok>.json`` (terms); the documents, each kind
  UTF-8 back to back in one file cut at the byte offsets of a ``.npy`` array: ``ids-*.bin``
  (``id_ptr``), ``texts-*.txt`` (``text_ptr``) and ``metas-*.bin`` (``meta_ptr``, one JSON
  object per document, empty for none), with a lookup table of the ids' 64-bit BLAKE2b hashes
  sorted (``id_hashes``) and their slots (``id_order``); and uncompressed ``.npy`` postings
  (``doc_ptr``, ``terms``, ``tfs``, ``dl``, ``df``, and the term-major ``csc_ptr``,
  ``csc_slots``, ``csc_tfs``). Everything but the vocabulary is opened with ``mmap``
  (:mod:`langchain_hybrid._docstore`): the page cache is shared by every process, nothing per
  document is built in Python at open, nothing is rebuilt on the first query, and a text is
  read only when it is returned (the process does not hold a second copy of Chroma's texts).
  The metadata columns that filters use are built by the first filtered search after an open,
  and documents written since the segment (the log's, fewer than the merge threshold below)
  are held in memory;
* an append-only **log** ``log-<gen>-<tok>.log``: each :meth:`BM25Index.save` appends one record
  (the adds and deletes since the last save, the write generation reached, the live document
  count), framed by a length and a CRC-32, and ``fsync`` before returning;
* ``manifest.json``, replaced atomically (temp file, ``fsync``, rename, directory ``fsync``),
  naming the segment's files with their sizes and SHA-256 and the log.

A save that finds the log past a threshold (changes since the segment above
``max(2048, segment documents / 16)``), or a directory it did not write last, merges instead:
it writes a new segment and an empty log under new names, commits the manifest, and only then
removes the files of the old one (files of this format only). The merge writes its files without
holding the index's lock, so queries go on meanwhile. A crash leaves either the old segment and
log or the new ones; a record torn by a crash fails its CRC and is ignored at load with the
records after it, and the generation of the loaded index then tells the caller it is behind.

Open checks the size of every file against the manifest before mapping it (a mapped truncated
file would kill the process with SIGBUS), each ``.npy`` header (dtype, shape), that the offsets
span their files, the consistency of the small arrays (pointers, ``df`` against ``csc_ptr``)
and the SHA-256 of the vocabulary it reads anyway; the SHA-256 of the mapped files, computed
when a merge writes them, and the order of every offset and of the id table are checked on
``load(..., verify=True)``; a stored text or metadata that does not decode raises
:class:`IndexCorruptError` when read. An index saved in format 1 (``vocab``/``docs`` JSON and a
``postings`` ``.npz``) or format 2 (release 0.2.0: ids and metadata in ``docs-*.json``, texts
cut at code-point offsets) is read once and converted, with a log line.
"""

from __future__ import annotations

__all__ = ["BM25Hit", "BM25Index", "BM25Params"]

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import os
import re
import secrets
import struct
import tempfile
import threading
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, NamedTuple

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field
from scipy import sparse

from langchain_hybrid._docstore import DocStore, MappedDocs, map_blob
from langchain_hybrid._tokenize import Tokenizer, TokenizerConfig
from langchain_hybrid.errors import IndexCorruptError, InvalidDocumentsError
from langchain_hybrid.filters import MetadataColumns, Node, is_utf8
from langchain_hybrid.fusion import Population

logger = logging.getLogger(__name__)

FORMAT_VERSION = 3
_FORMAT_V1 = 1
_FORMAT_V2 = 2


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


_KINDS = (  # of formats 1 to 3
    "vocab|docs|texts|text_ptr|postings|doc_ptr|terms|tfs|dl|df|csc_ptr|csc_slots|csc_tfs|log"
    "|ids|metas|id_ptr|id_hashes|id_order|meta_ptr"
)
_EXTS = "json|npz|npy|log|txt|bin"
_OWN_FILE = re.compile(
    rf"(?:\.(?:manifest\.json|(?:{_KINDS})-\d+-[0-9a-f]{{16}}\.(?:{_EXTS}))\.\w+\.tmp)"
    rf"|(?:{_KINDS})-\d+-[0-9a-f]{{16}}\.(?:{_EXTS})"
)
"""Names :meth:`BM25Index.save` writes (data files and its temp files): the only ones it removes."""
_Float = npt.NDArray[np.float64]
_Int = npt.NDArray[np.int64]
_Ints = npt.NDArray[Any]  # int32 or int64 (postings in files are int32)
_MAX_CACHED_POSTINGS = 32_000_000  # 256 MB of float64 weights at most
_MERGE_MIN = 2048  # a save merges once the log holds more changed documents than this ...
_MERGE_FRACTION = 16  # ... and more than this fraction of the segment's documents
_LOG_MAGIC = b"LHB2"
_LOG_HEADER = struct.Struct("<4sQqqI")  # magic, payload bytes, generation, documents, CRC-32
# the segment's arrays: name -> (dtype, length as a function of (documents, terms, postings))
_POSTINGS: dict[str, tuple[str, str]] = {
    "doc_ptr": ("<i8", "docs+1"),
    "terms": ("<i4", "postings"),
    "tfs": ("<i4", "postings"),
    "dl": ("<f8", "docs"),
    "df": ("<i8", "terms"),
    "csc_ptr": ("<i8", "terms+1"),
    "csc_slots": ("<i4", "postings"),
    "csc_tfs": ("<i4", "postings"),
}
_ARRAYS: dict[str, tuple[str, str]] = {
    "id_ptr": ("<i8", "docs+1"),  # byte offsets of each id in the ids file
    "id_hashes": ("<u8", "docs"),  # the ids' 64-bit hashes, sorted (the lookup table) ...
    "id_order": ("<i8", "docs"),  # ... and the slot of each
    "text_ptr": ("<i8", "docs+1"),  # byte offsets of each text in the texts file
    "meta_ptr": ("<i8", "docs+1"),  # byte offsets of each metadata (JSON) in the metas file
    **_POSTINGS,
}
_BLOBS = {"ids": "bin", "texts": "txt", "metas": "bin"}  # kind -> extension (format 3)
_ARRAYS_V2: dict[str, tuple[str, str]] = {
    "text_ptr": ("<i8", "docs+1"),  # code-point offsets of each text in the texts file
    **_POSTINGS,
}


class _CSC(NamedTuple):
    indptr: _Ints  # per term
    slots: _Ints
    tfs: _Ints


def _to_csc(ptr: _Int, terms: _Ints, tfs: _Ints, n_terms: int, first: int = 0) -> _CSC:
    """Term-major postings of document-major ones (slots from ``first``, ascending per term).

    scipy's CSR-to-CSC conversion is a counting sort: O(postings + terms), about 3x faster
    than a stable argsort of the term ids at 8M postings.
    """
    n_docs = len(ptr) - 1
    if not len(terms):
        empty = np.zeros(0, dtype=np.int32)
        return _CSC(np.zeros(n_terms + 1, dtype=np.int64), empty, empty)
    matrix = sparse.csr_matrix((tfs, terms, ptr), shape=(n_docs, n_terms)).tocsc()
    slots = matrix.indices.astype(np.int64) + first if first else matrix.indices
    return _CSC(matrix.indptr.astype(np.int64, copy=False), slots, matrix.data)


class _Buffer:
    """A growable 1-d array: appends are amortised O(appended); ``view`` is the filled part.

    Appends write past the filled part (or into a new, larger array), so a ``view`` taken
    earlier keeps its contents: a merge reads views taken under the lock without holding it.
    """

    __slots__ = ("_data", "_n")

    def __init__(self, dtype: npt.DTypeLike, initial: npt.ArrayLike | None = None) -> None:
        values = np.asarray(initial if initial is not None else [], dtype=dtype)
        self._data = np.empty(max(16, len(values)), dtype=dtype)
        self._data[: len(values)] = values
        self._n = len(values)

    def __len__(self) -> int:
        return self._n

    @property
    def view(self) -> npt.NDArray[Any]:
        return self._data[: self._n]

    def extend(self, values: npt.ArrayLike) -> None:
        values = np.asarray(values, dtype=self._data.dtype)
        need = self._n + len(values)
        if need > len(self._data):
            grown = np.empty(max(need, 2 * len(self._data)), dtype=self._data.dtype)
            grown[: self._n] = self._data[: self._n]
            self._data = grown
        self._data[self._n : need] = values
        self._n = need


def _gather(ptr: _Ints, terms: _Ints, tfs: _Ints, keep: _Int) -> tuple[_Int, _Ints, _Ints]:
    """The document-major postings of the slots ``keep`` (CSR), renumbered from 0."""
    if len(keep) == len(ptr) - 1:
        return np.asarray(ptr, dtype=np.int64), terms, tfs
    starts = ptr[keep]
    lengths = ptr[keep + 1] - starts
    new_ptr = np.zeros(len(keep) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_ptr[1:])
    take = np.repeat(starts - new_ptr[:-1], lengths) + np.arange(int(new_ptr[-1]))
    return new_ptr, terms[take], tfs[take]


class _AddOp(NamedTuple):
    """An add (upsert) since the last save, as the log records it."""

    ids: list[str]
    texts: list[str]
    metadatas: list[dict[str, Any] | None]
    tokens: list[list[str]]
    tfs: list[list[int]]


class _DeleteOp(NamedTuple):
    ids: list[str]


@dataclasses.dataclass(slots=True)
class _Persisted:
    """Where this index's state was last saved or loaded, and how far its log reaches."""

    path: Path  # resolved directory
    log: str  # the log file's name
    log_bytes: int  # length of the log's valid records
    segment_docs: int  # documents of the segment
    changes: int  # documents added or deleted through the log's records
    generation: int  # the write generation the log reaches


class _Segment(NamedTuple):
    """A segment's arrays (memory-mapped, or in memory when empty) and documents."""

    docs: MappedDocs | None  # format 3
    text_ptr: _Int  # code-point offsets (format 2) or byte offsets (format 3)
    doc_ptr: _Int
    terms: _Ints
    tfs: _Ints
    dl: _Float
    df: _Int
    csc: _CSC


def _slice(ptr: _Ints, terms: _Ints, tfs: _Ints, lo: int, hi: int) -> tuple[_Int, _Ints, _Ints]:
    """The CSR postings of slots ``[lo, hi)`` of ``ptr``/``terms``/``tfs``, pointers from 0."""
    p = np.asarray(ptr[lo : hi + 1], dtype=np.int64)
    start, end = int(p[0]), int(p[-1])
    return p - start, terms[start:end], tfs[start:end]


_SAMPLE = 1024
_MIN_STEP = 4  # with fewer values per sampled one, sampling saves about what it costs


def _kth_largest(values: _Float, k: int) -> float:
    """The ``k``-th largest of ``values`` (``0 < k <= len(values)``), exactly.

    A full partition of the matched scores costs ~0.2 ms per 27,000 (many of them equal). A
    strided sample of about :data:`_SAMPLE` gives a threshold that about ``2k`` of the values
    reach (plus eight sample steps); if at least ``k`` do, the ``k``-th largest is among them
    and only they are partitioned; otherwise (a skewed sample) the whole array is.
    """
    n = len(values)
    step = n // _SAMPLE
    if step >= _MIN_STEP:
        sample = values[::step]
        m = min(len(sample), 2 * (k * len(sample)) // n + 8)
        threshold = np.partition(sample, len(sample) - m)[len(sample) - m]
        top = values[values >= threshold]
        if len(top) >= k:
            values, n = top, len(top)
    return float(np.partition(values, n - k)[n - k])


class BM25Index:
    """An exact Okapi BM25 index with add, upsert, delete, filters and atomic persistence.

    Setup:
        Part of the core install (numpy, PyStemmer, scikit-learn's stopword list).

    Key init args:
        params: :class:`BM25Params` (``k1``, ``b`` and the tokenizer settings).

    Instantiate:
        ```python
        from langchain_hybrid.bm25 import BM25Index, BM25Params

        index = BM25Index(BM25Params(k1=0.9, b=0.4))
        ```

    Usage:
        ```python
        index.add(["a", "b"], ["red apples", "green pears"], [{"c": "red"}, None])
        index.search("apple", k=5)            # [BM25Hit(id="a", score=..., ...)]
        index.delete(["a"])
        index.save("./index/bm25/kb")
        same = BM25Index.load("./index/bm25/kb")
        ```

    Thread-safe: every operation holds the index's lock (a search holds it for about a
    millisecond at 100k documents).
    """

    def __init__(self, params: BM25Params | None = None) -> None:
        """Create an empty index."""
        self.params = params or BM25Params()
        self.tokenizer = Tokenizer(self.params.tokenizer)
        self.generation = 0
        self._lock = threading.RLock()
        self._save_mutex = threading.Lock()  # one save of this index at a time
        self._mutations = 0  # bumped by every change of the slots (a merge installs if unchanged)
        # the directory this state was last saved to or loaded from, and the writes since
        # (None: not tracked, the next save writes a whole new segment)
        self._persisted: _Persisted | None = None
        self._journal: list[_AddOp | _DeleteOp] | None = None
        self._journal_changes = 0
        self._reset()

    def _reset(self) -> None:
        self._mutations += 1
        self._journal = None
        # ids, texts and metadata by slot (a merged segment's mapped, later ones in lists)
        self._docs = DocStore()
        # metadata columns for filters, built on the first filtered search after an open
        self._columns: MetadataColumns | None = MetadataColumns()
        self._vocab: dict[str, int] = {}
        self._words: list[str] = []  # the vocabulary in id order
        self._df_buf = _Buffer(np.int64)
        self._df: _Int = self._df_buf.view
        # document-major postings (CSR over slots), the source of truth: slots below _base_slots
        # in the base arrays (a memory-mapped segment, or in memory after a compaction), later
        # slots in growable buffers
        self._base_slots = 0
        self._base_ptr: _Int = np.zeros(1, dtype=np.int64)
        self._base_terms: _Ints = np.zeros(0, dtype=np.int32)
        self._base_tfs: _Ints = np.zeros(0, dtype=np.int32)
        self._new_ptr = _Buffer(np.int64, [0])
        self._new_terms = _Buffer(np.int32)
        self._new_tfs = _Buffer(np.int32)
        self._dl_buf = _Buffer(np.float64)
        self._dl: _Float = self._dl_buf.view
        self._alive_buf = _Buffer(np.bool_)
        self._alive: npt.NDArray[np.bool_] = self._alive_buf.view
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
        if not isinstance(doc_id, str):
            return False
        with self._lock:
            return self._docs.find([doc_id], self._alive)[0] is not None

    @property
    def ids(self) -> list[str]:
        """Ids of the live documents, in insertion order."""
        with self._lock:
            return [self._docs.id(s) for s in np.flatnonzero(self._alive).tolist()]

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
        """Return stored text and metadata of ``ids`` (``None`` for unknown ids), score 0.

        Reads only these documents (from the mapped segment or the documents added since).

        Raises:
            IndexCorruptError: a stored text or metadata read is not valid UTF-8 / JSON.
        """
        wanted = [i if isinstance(i, str) else "" for i in ids]  # "" is never an id
        out: list[BM25Hit | None] = []
        with self._lock:
            docs = self._docs
            for doc_id, slot in zip(wanted, docs.find(wanted, self._alive), strict=True):
                if slot is None:
                    out.append(None)
                else:
                    metadata = dict(docs.metadata(slot) or {})
                    out.append(BM25Hit(doc_id, 0.0, docs.text(slot), metadata))
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
        clean = [dict(m) if m else None for m in metadatas]
        with self._lock:
            changes = self._upsert_locked(list(ids), list(texts), clean, counters)
            self.generation += 1
            if self._journal is not None:
                op = _AddOp(
                    list(ids),
                    list(texts),
                    clean,
                    [list(c) for c in counters],
                    [list(c.values()) for c in counters],
                )
                self._record_locked(op, changes)

    def _upsert_locked(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[dict[str, Any] | None],
        counters: Sequence[Mapping[str, int]],
    ) -> int:
        """Replace or add documents; how many documents changed (replaced ones count twice)."""
        found = self._docs.find(ids, self._alive)
        replaced = [i for i, slot in zip(ids, found, strict=True) if slot is not None]
        if replaced:
            self._delete_locked(replaced)
        self._append_locked(ids, texts, metadatas, counters)
        return len(ids) + len(replaced)

    def _record_locked(self, op: _AddOp | _DeleteOp, changes: int) -> None:
        """Keep a write for the next save's log record (dropped once a merge is due anyway)."""
        if self._journal is None:
            return
        self._journal.append(op)
        self._journal_changes += changes
        if self._merge_due_locked():  # the next save writes a segment: stop holding the ops
            self._journal = None

    def _merge_due_locked(self) -> bool:
        persisted = self._persisted
        if persisted is None:
            return True
        limit = max(_MERGE_MIN, persisted.segment_docs // _MERGE_FRACTION)
        return persisted.changes + self._journal_changes > limit

    def _append_locked(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[dict[str, Any] | None],
        counters: Sequence[Mapping[str, int]],
    ) -> None:
        lengths = np.zeros(len(ids), dtype=np.int64)
        terms: list[int] = []
        tfs: list[int] = []
        vocab, words = self._vocab, self._words
        for j, counter in enumerate(counters):
            for token, tf in counter.items():
                term = vocab.get(token)
                if term is None:
                    term = vocab[token] = len(words)
                    words.append(token)
                terms.append(term)
                tfs.append(tf)
            lengths[j] = len(counter)
        doc_lens = np.array([sum(c.values()) for c in counters], dtype=np.float64)
        new_terms = np.array(terms, dtype=np.int32)
        if len(words) > len(self._df):
            self._df_buf.extend(np.zeros(len(words) - len(self._df), np.int64))
            self._df = self._df_buf.view
        np.add.at(self._df, new_terms, 1)
        self._new_terms.extend(new_terms)
        self._new_tfs.extend(np.array(tfs, dtype=np.int32))
        self._new_ptr.extend(self._new_ptr.view[-1] + np.cumsum(lengths))
        self._dl_buf.extend(doc_lens)
        self._dl = self._dl_buf.view
        self._alive_buf.extend(np.ones(len(ids), dtype=bool))
        self._alive = self._alive_buf.view
        self._docs.append(ids, texts, metadatas)
        if self._columns is not None:
            self._columns.append(metadatas)
        self._n_alive += len(ids)
        self._total_len += float(doc_lens.sum())
        self._mutations += 1
        self._tail = None
        self._derived_valid = False

    def delete(self, ids: Iterable[str]) -> int:
        """Delete documents by id; unknown ids are ignored. Returns how many were deleted."""
        with self._lock:
            unique = list(dict.fromkeys(i for i in ids if isinstance(i, str)))
            found = self._docs.find(unique, self._alive)
            present = [i for i, slot in zip(unique, found, strict=True) if slot is not None]
            deleted = self._delete_locked(present)
            if deleted:
                self.generation += 1
                self._record_locked(_DeleteOp(present), deleted)
            return deleted

    def _doc_terms(self, slot: int) -> _Ints:
        """The term ids of one slot's postings."""
        if slot < self._base_slots:
            ptr, terms = self._base_ptr, self._base_terms
        else:
            slot -= self._base_slots
            ptr, terms = self._new_ptr.view, self._new_terms.view
        return terms[int(ptr[slot]) : int(ptr[slot + 1])]

    def _delete_locked(self, ids: Sequence[str]) -> int:
        """Delete live, distinct ``ids``."""
        for doc_id, slot in zip(ids, self._docs.find(ids, self._alive), strict=True):
            if slot is None:  # pragma: no cover - callers pass live ids
                msg = f"internal error: {doc_id!r} is not a live document"
                raise IndexCorruptError(msg)
            np.subtract.at(self._df, self._doc_terms(slot), 1)
            self._alive[slot] = False
            self._n_alive -= 1
            self._total_len -= float(self._dl[slot])
            self._docs.drop(slot, doc_id)
        if ids:
            self._mutations += 1
        self._derived_valid = False
        n_slots = len(self._docs)
        dead = n_slots - self._n_alive
        if dead > 1024 and dead > n_slots // 4:  # noqa: PLR2004
            self._compact_locked()
        return len(ids)

    def _doc_major(self, first: int, last: int) -> tuple[_Int, _Ints, _Ints]:
        """Document-major postings (pointers from 0, terms, tfs) of slots ``[first, last)``."""
        return _postings_range(self._parts(), first, last)

    def _set_base_locked(self, ptr: _Int, terms: _Ints, tfs: _Ints) -> None:
        """Make ``ptr``/``terms``/``tfs`` every slot's postings, with empty growable buffers."""
        self._base_slots = len(ptr) - 1
        self._base_ptr, self._base_terms, self._base_tfs = ptr, terms, tfs
        self._new_ptr = _Buffer(np.int64, [0])
        self._new_terms = _Buffer(np.int32)
        self._new_tfs = _Buffer(np.int32)

    def _compact_locked(self) -> None:
        """Drop deleted slots and renumber (amortised: runs when a quarter of slots are dead)."""
        keep = np.flatnonzero(self._alive)
        self._set_base_locked(*_gather(*self._doc_major(0, len(self._docs)), keep))
        self._dl_buf = _Buffer(np.float64, self._dl[keep])
        self._dl = self._dl_buf.view
        self._alive_buf = _Buffer(np.bool_, np.ones(len(keep), dtype=bool))
        self._alive = self._alive_buf.view
        self._docs = self._docs.take(keep)
        self._columns = None if self._columns is None else self._columns.take(keep)
        self._mutations += 1
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
        n_slots = len(self._docs)
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
        ptr, terms, tfs = self._doc_major(first, last)
        return _to_csc(ptr, terms, tfs, n_terms, first)

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
            return self._accumulate(self.token_ids(query))

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

    def _accumulate(self, terms: Mapping[int, int]) -> _Float:
        """Scores of every slot (dead slots 0)."""
        n_slots = len(self._docs)
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
            return np.zeros(n_slots)
        if len(slot_parts) == 1:
            slots, weights = slot_parts[0], weight_parts[0]
        else:
            slots, weights = np.concatenate(slot_parts), np.concatenate(weight_parts)
        scores: _Float = np.bincount(slots, weights, minlength=n_slots).astype(
            np.float64, copy=False
        )
        if self._n_alive != n_slots:
            scores[~self._alive] = 0.0
        return scores

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
        return self.search_population(query, k, where)[0]

    def search_population(
        self, query: str, k: int, where: Node | None = None
    ) -> tuple[list[BM25Hit], Population]:
        """:meth:`search`, with the statistics of the scores of every document it ranked.

        The population is every live document the filter passes, each with its exact score (0
        for one sharing no token with the query): fusion standardises the leg against it
        (:mod:`langchain_hybrid.fusion`). Its sums come from the score array the search builds
        anyway.
        """
        with self._lock:
            ranked, population = self.rank(query, k, where)
            docs = self._docs
            hits = [
                BM25Hit(doc_id, score, docs.text(slot), dict(docs.metadata(slot) or {}))
                for doc_id, score, slot in ranked
            ]
            return hits, population

    def rank(
        self, query: str, k: int, where: Node | None = None
    ) -> tuple[list[tuple[str, float, int]], Population]:
        """:meth:`search_population` without texts: ``(id, score, slot)`` of the top ``k``.

        What the retriever's BM25 leg uses: fusion keeps at most ``k`` of its ``fetch_k``
        hits, and only those are read (:meth:`get`). Slots are valid until the next write.
        """
        with self._lock:
            self._ensure_derived()
            terms = self.token_ids(query)
            if not terms:
                return [], Population(self._n_alive, 0.0, 0.0)
            scores = self._accumulate(terms)
            size = self._n_alive
            if where is not None:
                passes = self._metadata_columns().evaluate(where)
                scores[~passes] = 0.0
                size = int(np.count_nonzero(passes & self._alive))
            # only the matched slots score above 0: gathered once, they give the population's
            # sums (squared here, not by BLAS ddot over every slot: 15 ms at 100k on a loaded
            # machine) and the top k (selected among them, not among every slot)
            matched = np.flatnonzero(scores > 0.0)
            values = scores[matched]
            population = Population(size, float(values.sum()), float((values * values).sum()))
            if len(values) > k:  # every slot scoring at least the k-th best (ties included)
                keep = values >= _kth_largest(values, k)
                matched, values = matched[keep], values[keep]
            slots = matched.tolist()
            ranked = sorted(
                zip(map(self._docs.id, slots), values.tolist(), slots, strict=True),
                key=lambda t: (-t[1], t[0]),
            )[:k]
            return ranked, population

    def _metadata_columns(self) -> MetadataColumns:
        """The metadata columns of every slot, built from the stored metadata on first use.

        After an open they are built by the first filtered search (it reads every live
        document's metadata: 0.5-0.8 s at 100k documents here, under load); writes keep them
        current.
        """
        if self._columns is None:
            docs, alive = self._docs, self._alive
            columns = MetadataColumns()
            columns.append([docs.metadata(s) if alive[s] else None for s in range(len(docs))])
            self._columns = columns
        return self._columns

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | os.PathLike[str]) -> None:
        """Persist the index to ``directory``: append the writes since the last save, or merge.

        If ``directory`` holds the segment and log this index last saved or loaded (its manifest
        names the same log, which has the length this index left it at), the adds and deletes
        since then are appended to the log as one record carrying :attr:`generation` and the
        live document count, synced to disk (``fsync``) before this returns. Otherwise, or once
        the log is past the merge threshold, a new segment is written and committed by the
        manifest (see the module docstring). Callers that may race with other processes hold
        :func:`langchain_hybrid._locking.save_lock` around it.
        """
        path = Path(directory)
        try:
            path.mkdir(parents=True, exist_ok=True)
            with self._save_mutex:
                if not self._append_to_log(path):
                    self._merge(path)
        except (FileExistsError, IsADirectoryError, NotADirectoryError) as e:
            raise _unwritable(path, e) from e

    def _append_to_log(self, path: Path) -> bool:
        """Append the writes since the last save as one log record; ``False``: merge instead."""
        with self._lock:
            persisted, journal = self._persisted, self._journal
            if persisted is None or journal is None or self._merge_due_locked():
                return False
            ops, changes = list(journal), self._journal_changes
            generation, documents = self.generation, self._n_alive
        if not _log_is_as_left(path, persisted):
            return False
        if not ops and generation == persisted.generation:  # nothing new to write
            return True
        payload = _json_bytes({"ops": [_op_json(op) for op in ops]})
        size = _append_record(
            path / persisted.log, persisted.log_bytes, generation, documents, payload
        )
        if size is None:
            return False
        with self._lock:
            if self._journal is journal:
                del journal[: len(ops)]
                self._journal_changes -= changes
            persisted.log_bytes = size
            persisted.changes += changes
            persisted.generation = generation
        logger.debug(
            "appended %d BM25 writes (generation %d) to %s", len(ops), generation, persisted.log
        )
        return True

    def _merge(self, path: Path) -> None:
        """Write every live document as a new segment with an empty log; commit; swap to it."""
        with self._lock:  # a snapshot: the slow part below runs without the lock
            if self._journal is None:
                self._journal, self._journal_changes = [], 0
            journal, taken, taken_changes = self._journal, len(self._journal), self._journal_changes
            mutations, generation = self._mutations, self.generation
            alive = self._alive.copy()
            docs = self._docs.snapshot()
            words, df, dl = list(self._words), self._df.copy(), self._dl
            parts = self._parts()
        try:
            keep = np.flatnonzero(alive)
            postings = _gather(*_postings_range(parts, 0, len(docs)), keep)
            manifest = _write_segment(
                path,
                generation,
                self.params,
                words,
                docs.layout(keep),
                (*postings, dl[keep], df),
            )
            segment = _map_segment(path, manifest, verify=False)
        except BaseException:
            with self._lock:
                if self._journal is journal:
                    self._journal = None  # the next save writes a segment again
            raise
        with self._lock:
            if self._journal is journal:
                del journal[:taken]
                self._journal_changes -= taken_changes
            log = manifest["log"]
            self._persisted = _Persisted(path.resolve(), log, 0, len(keep), 0, generation)
            if self._mutations == mutations:  # no write meanwhile: serve from the mapped files
                columns = None if self._columns is None else self._columns.take(keep)
                self._install_locked(segment, DocStore(segment.docs), columns)
        logger.debug(
            "merged BM25 index (%d docs, generation %d) into a new segment in %s",
            len(keep),
            generation,
            path,
        )

    def _parts(self) -> _Parts:
        return _Parts(
            self._base_ptr,
            self._base_terms,
            self._base_tfs,
            self._base_slots,
            self._new_ptr.view,
            self._new_terms.view,
            self._new_tfs.view,
        )

    def _install_locked(
        self, segment: _Segment, docs: DocStore, columns: MetadataColumns | None
    ) -> None:
        """Serve the slots from ``segment`` (its documents are ``docs``, every one live)."""
        self._docs, self._columns = docs, columns
        n = len(docs)
        self._set_base_locked(segment.doc_ptr, segment.terms, segment.tfs)
        self._dl_buf = _Buffer(np.float64, segment.dl)
        self._dl = self._dl_buf.view
        self._alive_buf = _Buffer(np.bool_, np.ones(n, dtype=bool))
        self._alive = self._alive_buf.view
        self._main, self._main_upto, self._tail = segment.csc, n, None
        self._derived_valid = False
        self._mutations += 1

    @staticmethod
    def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
        """Read and check a saved index's manifest; ``generation`` and ``documents`` are current.

        For an index in the log-structured format, ``generation`` and ``documents`` are those of
        the log's last complete record (the state :meth:`load` restores), and ``log_records`` /
        ``log_bytes`` tell how much of the log is valid.

        Raises:
            FileNotFoundError: there is no saved index in ``directory``.
            IndexCorruptError: the manifest is unreadable or of an unknown format, or the log
                named by it is missing.
        """
        path = Path(directory)
        manifest = _read_manifest_json(path)
        if manifest["format_version"] != _FORMAT_V1:  # log-structured
            try:
                records, valid, _ = _read_log(path / str(manifest.get("log")))
            except OSError as e:
                msg = f"BM25 log of {path} is unreadable: {e}"
                raise IndexCorruptError(msg) from e
            if records:
                manifest["generation"], manifest["documents"] = records[-1][:2]
            manifest["log_records"], manifest["log_bytes"] = len(records), valid
        return manifest

    @classmethod
    def load(cls, directory: str | os.PathLike[str], *, verify: bool = False) -> BM25Index:
        """Open an index saved by :meth:`save`: map its segment, replay its log.

        Args:
            directory: the index's directory.
            verify: also check the SHA-256 of the memory-mapped files and the range of every
                posting (reads every byte; without it, open checks sizes, headers and the small
                arrays, see the module docstring).

        An index in format 1 is read and converted to the current format (under the save lock,
        if it is free and the index unchanged), with a log line saying so.

        Raises:
            FileNotFoundError: there is no saved index in ``directory``.
            IndexCorruptError: a file is missing, altered, truncated or inconsistent.
        """
        path = Path(directory)
        manifest = _read_manifest_json(path)
        try:
            index = cls._open(path, manifest, verify=verify)
        except IndexCorruptError:
            # a writer may have merged meanwhile (and removed the files this manifest named)
            again = _read_manifest_json(path)
            if again == manifest:
                raise
            manifest = again
            index = cls._open(path, manifest, verify=verify)
        if manifest["format_version"] != FORMAT_VERSION:
            _convert(index, path, manifest)
        return index

    @classmethod
    def _open(cls, path: Path, manifest: dict[str, Any], *, verify: bool) -> BM25Index:
        try:
            params = BM25Params.model_validate(manifest["params"])
            index = cls(params)
            with index._lock:
                if manifest["format_version"] == _FORMAT_V1:
                    index._load_v1(path, manifest)
                else:
                    index._load_segment_locked(path, manifest, verify=verify)
                    segment_docs = int(manifest["segment"]["documents"])
                    index._replay_log_locked(path, str(manifest["log"]), segment_docs)
        except IndexCorruptError:
            raise
        except (
            OSError,
            ValueError,
            KeyError,
            TypeError,
            IndexError,
            EOFError,
            struct.error,
            zipfile.BadZipFile,
            zlib.error,
        ) as e:
            msg = f"BM25 index in {path} is corrupt: {type(e).__name__}: {e}"
            raise IndexCorruptError(msg) from e
        return index

    def _load_segment_locked(self, path: Path, manifest: dict[str, Any], *, verify: bool) -> None:
        """Map a segment (format 3; format 2's documents are read into lists)."""
        segment_info = manifest["segment"]
        n_docs, n_terms = int(segment_info["documents"]), int(segment_info["terms"])
        names = _names_by_kind(manifest)
        files = manifest["files"]
        words = json.loads(_read_verified(path / names["vocab"], files[names["vocab"]]["sha256"]))
        if len(words) != n_terms:
            msg = f"vocabulary of {path} does not match its manifest"
            raise IndexCorruptError(msg)
        segment = _map_segment(path, manifest, verify=verify)
        self._vocab = {str(t): i for i, t in enumerate(words)}
        self._words = list(self._vocab)
        if len(self._words) != n_terms:
            msg = "duplicate terms in the saved vocabulary"
            raise IndexCorruptError(msg)
        self._df_buf = _Buffer(np.int64, segment.df)
        self._df = self._df_buf.view
        if segment.docs is not None:  # format 3: nothing per document is read
            self._install_locked(segment, DocStore(segment.docs), None)
        else:
            self._install_locked(segment, _read_v2_docs(path, manifest, segment), None)
            self._columns = MetadataColumns()
            self._columns.append(self._docs.metadatas)
            if len(self._docs.slot_of) != n_docs:
                msg = "duplicate document ids in the saved index"
                raise IndexCorruptError(msg)
        self._n_alive = n_docs
        self._total_len = float(segment.dl.sum())
        self.generation = int(manifest["generation"])

    def _replay_log_locked(self, path: Path, log: str, segment_docs: int) -> None:
        """Apply the log's complete records; stop at the first torn or altered one."""
        records, valid, size = _read_log(path / log)
        changes = 0
        for generation, documents, payload in records:
            changes += self._replay_locked(json.loads(payload)["ops"])
            if self._n_alive != documents:
                msg = f"log {log} replays to {self._n_alive} documents, its record says {documents}"
                raise IndexCorruptError(msg)
            self.generation = generation
        if valid < size:
            logger.warning(
                "BM25 log %s: %d bytes after the last complete record ignored (a save that did "
                "not return); the index is at generation %d",
                path / log,
                size - valid,
                self.generation,
            )
        self._persisted = _Persisted(
            path.resolve(), log, valid, segment_docs, changes, self.generation
        )
        self._journal, self._journal_changes = [], 0

    def _replay_locked(self, ops: list[dict[str, Any]]) -> int:
        changes = 0
        for op in ops:
            if "delete" in op:
                ids = [str(i) for i in op["delete"]]
                found = self._docs.find(ids, self._alive)
                if len(set(ids)) != len(ids) or any(slot is None for slot in found):
                    msg = "the log deletes a document that is not there"
                    raise IndexCorruptError(msg)
                changes += self._delete_locked(ids)
                continue
            add = op["add"]
            ids = [str(i) for i in add["ids"]]
            counters = [
                dict(zip(map(str, toks), map(int, tfs), strict=True))
                for toks, tfs in zip(add["tokens"], add["tfs"], strict=True)
            ]
            texts, metadatas = [str(t) for t in add["texts"]], add["metadatas"]
            if not len(ids) == len(set(ids)) == len(texts) == len(metadatas) == len(counters):
                msg = "a log record's add has lists of different lengths"
                raise IndexCorruptError(msg)
            changes += self._upsert_locked(ids, texts, [_metadata(m) for m in metadatas], counters)
        return changes

    def _load_v1(self, path: Path, manifest: dict[str, Any]) -> None:
        """Read an index saved in format 1 (JSON + compressed ``.npz``, every file checksummed)."""
        blobs: dict[str, bytes] = {}
        for name, digest in manifest["files"].items():
            blobs[name.split("-", 1)[0]] = _read_verified(path / name, str(digest))
        vocab_terms = json.loads(blobs["vocab"])
        docs = json.loads(blobs["docs"])
        with np.load(io.BytesIO(blobs["postings"]), allow_pickle=False) as npz:
            doc_ptr = npz["doc_ptr"].astype(np.int64)
            terms = npz["terms"].astype(np.int32)
            tfs = npz["tfs"].astype(np.int32)
        self._restore(vocab_terms, docs, doc_ptr, terms, tfs)
        self.generation = int(manifest["generation"])

    def _restore(
        self,
        vocab_terms: list[str],
        docs: list[list[Any]],
        doc_ptr: _Int,
        terms: _Ints,
        tfs: _Ints,
    ) -> None:
        n = len(docs)
        if len(doc_ptr) != n + 1 or doc_ptr[-1] != len(terms) or len(tfs) != len(terms):
            msg = "postings do not match the document list"
            raise IndexCorruptError(msg)
        if len(terms) and (terms.min() < 0 or terms.max() >= len(vocab_terms)):
            msg = "postings reference unknown terms"
            raise IndexCorruptError(msg)
        self._vocab = {t: i for i, t in enumerate(vocab_terms)}
        self._words = list(vocab_terms)
        self._docs = DocStore()
        self._docs.append(
            [str(d[0]) for d in docs], [str(d[1]) for d in docs], [_metadata(d[2]) for d in docs]
        )
        if len(self._docs.slot_of) != n:
            msg = "duplicate document ids in the saved index"
            raise IndexCorruptError(msg)
        self._columns = MetadataColumns()
        self._columns.append(self._docs.metadatas)
        self._set_base_locked(doc_ptr, terms, tfs)
        slot_of_posting = np.repeat(np.arange(n), np.diff(doc_ptr))
        self._dl_buf = _Buffer(np.float64, np.bincount(slot_of_posting, weights=tfs, minlength=n))
        self._dl = self._dl_buf.view
        self._df_buf = _Buffer(np.int64, np.bincount(terms, minlength=len(vocab_terms)))
        self._df = self._df_buf.view
        self._alive_buf = _Buffer(np.bool_, np.ones(n, dtype=bool))
        self._alive = self._alive_buf.view
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


class _HashingWriter:
    """A file wrapper that hashes what is written through it (for ``write_array``)."""

    def __init__(self, file: IO[bytes]) -> None:
        self.file = file
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        return self.file.write(data)


def _unwritable(path: Path, error: OSError) -> IndexCorruptError:
    """The typed error of a BM25 directory that cannot be written (nothing is deleted to fix it).

    A file or a dangling link where the directory should be, a directory where the manifest
    goes: the index stays usable in memory, but it cannot be saved until the path is repaired
    by hand (a save never removes what it did not write). Other ``OSError`` (a full disk) pass.
    """
    msg = (
        f"cannot write the BM25 index in {path}: {type(error).__name__}: {error}; "
        "move away whatever is in the way (nothing was deleted); Chroma holds every document, "
        "and the next open after that rebuilds the BM25 files from it"
    )
    return IndexCorruptError(msg)


def _atomic_write(path: Path, data: bytes | npt.NDArray[Any], *, sync_dir: bool = True) -> str:
    """Write ``data`` (bytes, or an array as ``.npy``) via a temp file, fsync, rename.

    Returns the SHA-256 of the bytes written. ``sync_dir=False`` leaves the directory's
    ``fsync`` (which makes the rename durable) to the caller (:func:`_fsync_dir`).
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            out = _HashingWriter(f)
            if isinstance(data, np.ndarray):
                np.lib.format.write_array(out, data, allow_pickle=False)
            else:
                out.write(data)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise
    if sync_dir:
        _fsync_dir(path.parent)
    return out.sha256.hexdigest()


def _fsync_dir(directory: Path) -> None:
    """Make the renames and creations in ``directory`` durable."""
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class _Parts(NamedTuple):
    """References to the document-major postings: the base arrays and the growable ones."""

    base_ptr: _Int
    base_terms: _Ints
    base_tfs: _Ints
    base_slots: int
    new_ptr: _Int
    new_terms: _Ints
    new_tfs: _Ints


def _postings_range(parts: _Parts, first: int, last: int) -> tuple[_Int, _Ints, _Ints]:
    """Document-major postings (pointers from 0, terms, tfs) of slots ``[first, last)``."""
    base = parts.base_slots
    pieces: list[tuple[_Int, _Ints, _Ints]] = []
    if first < base:
        pieces.append(
            _slice(parts.base_ptr, parts.base_terms, parts.base_tfs, first, min(last, base))
        )
    if last > base:
        new = (parts.new_ptr, parts.new_terms, parts.new_tfs)
        pieces.append(_slice(*new, max(first, base) - base, last - base))
    if len(pieces) == 1:
        return pieces[0]
    if not pieces:
        return np.zeros(1, dtype=np.int64), np.zeros(0, np.int32), np.zeros(0, np.int32)
    (ptr0, terms0, tfs0), (ptr1, terms1, tfs1) = pieces
    ptr = np.concatenate([ptr0, ptr0[-1] + ptr1[1:]])
    return ptr, np.concatenate([terms0, terms1]), np.concatenate([tfs0, tfs1])


def _op_json(op: _AddOp | _DeleteOp) -> dict[str, Any]:
    if isinstance(op, _DeleteOp):
        return {"delete": op.ids}
    return {"add": op._asdict()}


def _metadata(value: object) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    msg = f"a saved metadata is a {type(value).__name__}, not an object"
    raise IndexCorruptError(msg)


def _read_manifest_json(path: Path) -> dict[str, Any]:
    """The checked ``manifest.json`` of the index in ``path`` (format 1 or 2)."""
    file = path / "manifest.json"
    try:
        manifest = json.loads(file.read_bytes())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as e:
        msg = f"BM25 manifest {file} is unreadable: {e}"
        raise IndexCorruptError(msg) from e
    if not isinstance(manifest, dict) or manifest.get("format") != "langchain-hybrid-bm25":
        msg = f"{file} is not a langchain-hybrid BM25 manifest"
        raise IndexCorruptError(msg)
    version = manifest.get("format_version")
    if type(version) is not int or version not in (_FORMAT_V1, _FORMAT_V2, FORMAT_VERSION):
        msg = f"{file} has format version {version!r}, expected {FORMAT_VERSION} (or 1, 2)"
        raise IndexCorruptError(msg)
    for key, kind in (("generation", int), ("documents", int), ("params", dict), ("files", dict)):
        if type(manifest.get(key)) is not kind:
            msg = f"{file}: {key!r} is missing or not a {kind.__name__}"
            raise IndexCorruptError(msg)
    return manifest


def _names_by_kind(manifest: Mapping[str, Any]) -> dict[str, str]:
    """The segment's file names by kind (``vocab``, the documents' files, each array, ``log``)."""
    names = {str(name).split("-", 1)[0]: str(name) for name in manifest["files"]}
    if manifest["format_version"] == _FORMAT_V2:
        expected = {"vocab", "docs", "texts", "log", *_ARRAYS_V2}
    else:
        expected = {"vocab", "log", *_BLOBS, *_ARRAYS}
    if set(names) != expected or len(names) != len(manifest["files"]):
        msg = f"the manifest's files are {sorted(manifest['files'])}, not one of each kind"
        raise IndexCorruptError(msg)
    if names["log"] != manifest.get("log"):
        msg = "the manifest's log is not among its files"
        raise IndexCorruptError(msg)
    return names


def _write_segment(  # noqa: PLR0917 - private; each argument is a distinct part
    path: Path,
    generation: int,
    params: BM25Params,
    words: list[str],
    docs: dict[str, Any],
    arrays: tuple[_Int, _Ints, _Ints, _Float, _Int],
) -> dict[str, Any]:
    """Write a segment and an empty log under new names, then commit them by the manifest.

    Returns the manifest. Files of this format that the manifest does not name are removed
    after the commit (those of the previous segment, and temp files of interrupted saves).
    """
    doc_ptr, terms, tfs, dl, df = arrays
    n_docs, n_terms, n_postings = len(doc_ptr) - 1, len(words), len(terms)
    csc = _to_csc(doc_ptr, terms, tfs, n_terms)
    data: dict[str, npt.NDArray[Any]] = {
        **{kind: docs[kind] for kind in _ARRAYS if kind in docs},
        "doc_ptr": doc_ptr,
        "terms": terms,
        "tfs": tfs,
        "dl": dl,
        "df": df,
        "csc_ptr": csc.indptr,
        "csc_slots": csc.slots,
        "csc_tfs": csc.tfs,
    }
    token = secrets.token_hex(8)  # new names: a save never overwrites a file a manifest uses
    files: dict[str, dict[str, Any]] = {}

    def write(kind: str, ext: str, content: bytes | npt.NDArray[Any]) -> str:
        name = f"{kind}-{generation}-{token}.{ext}"
        digest = _atomic_write(path / name, content, sync_dir=False)
        files[name] = {"bytes": (path / name).stat().st_size, "sha256": digest}
        return name

    write("vocab", "json", _json_bytes(words))
    for kind, ext in _BLOBS.items():
        write(kind, ext, docs[kind])
    for kind, array in data.items():
        write(kind, "npy", np.ascontiguousarray(array, dtype=_ARRAYS[kind][0]))
    log = write("log", "log", b"")
    files[log]["sha256"] = None  # appended to: its records carry their own checksums
    _fsync_dir(path)  # every file's name is durable before the manifest names it
    manifest = {
        "format": "langchain-hybrid-bm25",
        "format_version": FORMAT_VERSION,
        "generation": generation,
        "documents": n_docs,
        "params": params.model_dump(mode="json"),
        "segment": {"documents": n_docs, "terms": n_terms, "postings": n_postings},
        "log": log,
        "files": files,
    }
    _atomic_write(path / "manifest.json", _json_bytes(manifest, indent=2))
    for stale in path.iterdir():  # only files of this format: never anything else
        if stale.name not in files and _OWN_FILE.fullmatch(stale.name):
            with contextlib.suppress(OSError):
                stale.unlink()
    return manifest


def _map_segment(path: Path, manifest: Mapping[str, Any], *, verify: bool) -> _Segment:
    """Check a segment's files against the manifest and map its arrays (see module docstring)."""
    names = _names_by_kind(manifest)
    files = manifest["files"]
    info = manifest["segment"]
    v2 = manifest["format_version"] == _FORMAT_V2
    specs = _ARRAYS_V2 if v2 else _ARRAYS
    n_docs, n_terms, n_postings = (int(info[k]) for k in ("documents", "terms", "postings"))
    lengths = {
        "docs": n_docs,
        "docs+1": n_docs + 1,
        "terms": n_terms,
        "terms+1": n_terms + 1,
        "postings": n_postings,
    }
    for kind, name in names.items():
        size, expected = (path / name).stat().st_size, int(files[name]["bytes"])
        if size < expected or (size != expected and kind != "log"):
            msg = f"{path / name} is {size} bytes, the manifest says {expected} (truncated?)"
            raise IndexCorruptError(msg)
    arrays = {
        kind: _map_npy(
            path / names[kind],
            np.dtype(dtype),
            lengths[length],
            files[names[kind]]["sha256"] if verify else None,
        )
        for kind, (dtype, length) in specs.items()
    }
    docs = None
    if not v2:
        blobs = {kind: map_blob(path / names[kind]) for kind in _BLOBS}
        if verify:
            for kind in _BLOBS:
                _read_verified(path / names[kind], files[names[kind]]["sha256"])
        docs = MappedDocs(
            blobs["ids"],
            arrays["id_ptr"],
            arrays["id_hashes"],
            arrays["id_order"],
            blobs["texts"],
            arrays["text_ptr"],
            blobs["metas"],
            arrays["meta_ptr"],
        )
        _check_docs(docs, n_docs, full=verify)
    segment = _Segment(
        docs,
        arrays["text_ptr"],
        arrays["doc_ptr"],
        arrays["terms"],
        arrays["tfs"],
        arrays["dl"],
        arrays["df"],
        _CSC(arrays["csc_ptr"], arrays["csc_slots"], arrays["csc_tfs"]),
    )
    _check_segment(segment, n_docs, n_terms, n_postings, full=verify)
    return segment


def _check_docs(docs: MappedDocs, n_docs: int, *, full: bool) -> None:
    """The documents' offsets span their files (always); the id table is a sorted permutation."""
    for ptr, blob, what in (
        (docs.id_ptr, docs.ids, "ids"),
        (docs.text_ptr, docs.texts, "texts"),
        (docs.meta_ptr, docs.metas, "metadata"),
    ):
        if int(ptr[0]) != 0 or int(ptr[-1]) != len(blob):
            msg = f"BM25 segment inconsistent: {what} offsets do not span their file"
            raise IndexCorruptError(msg)
        if full and bool(np.any(np.diff(ptr) < 0)):
            msg = f"BM25 segment inconsistent: {what} offsets decrease"
            raise IndexCorruptError(msg)
    if full and n_docs:
        order = np.asarray(docs.order)
        hashes = np.asarray(docs.hashes)
        if bool(np.any(hashes[1:] < hashes[:-1])) or not np.array_equal(
            np.sort(order), np.arange(n_docs)
        ):
            msg = "BM25 segment inconsistent: the id table is not a sorted permutation"
            raise IndexCorruptError(msg)


def _read_v2_docs(path: Path, manifest: Mapping[str, Any], segment: _Segment) -> DocStore:
    """The documents of a format 2 segment (ids and metadata in JSON, texts cut at code points)."""
    names, files = _names_by_kind(manifest), manifest["files"]
    docs = json.loads(_read_verified(path / names["docs"], files[names["docs"]]["sha256"]))
    blob = _read_verified(path / names["texts"], files[names["texts"]]["sha256"])
    if len(docs) != int(manifest["segment"]["documents"]):
        msg = f"document list of {path} does not match its manifest"
        raise IndexCorruptError(msg)
    store = DocStore()
    store.append(
        [str(d[0]) for d in docs],
        _split_texts(blob.decode("utf-8"), segment.text_ptr),
        [_metadata(d[1]) for d in docs],
    )
    return store


def _split_texts(blob: str, text_ptr: _Int) -> list[str]:
    """The texts of a segment: ``blob`` cut at the code-point offsets ``text_ptr``."""
    bounds: list[int] = text_ptr.tolist()
    if bounds[0] != 0 or bounds[-1] != len(blob) or bool(np.any(np.diff(text_ptr) < 0)):
        msg = "BM25 segment inconsistent: text offsets do not span the texts file"
        raise IndexCorruptError(msg)
    return [blob[bounds[i] : bounds[i + 1]] for i in range(len(bounds) - 1)]


def _check_segment(
    segment: _Segment, n_docs: int, n_terms: int, n_postings: int, *, full: bool
) -> None:
    """Consistency of the small arrays (always) and of every posting (``full``)."""
    ptr, csc_ptr = segment.doc_ptr, segment.csc.indptr
    problems = [
        (ptr[0] != 0 or ptr[-1] != n_postings, "document pointers do not span the postings"),
        (bool(np.any(np.diff(ptr) < 0)), "document pointers decrease"),
        (csc_ptr[0] != 0 or csc_ptr[-1] != n_postings, "term pointers do not span the postings"),
        (not np.array_equal(np.diff(csc_ptr), segment.df), "term pointers do not match df"),
        (bool(np.any(segment.df < 0)) or bool(np.any(segment.dl < 0)), "negative df or length"),
    ]
    if full and n_postings:
        problems += [
            (bool(segment.terms.min() < 0 or segment.terms.max() >= n_terms), "unknown terms"),
            (bool(segment.csc.slots.min() < 0 or segment.csc.slots.max() >= n_docs), "bad slots"),
            (bool(segment.tfs.min() <= 0 or segment.csc.tfs.min() <= 0), "non-positive tf"),
        ]
    for failed, what in problems:
        if failed:
            msg = f"BM25 segment inconsistent: {what}"
            raise IndexCorruptError(msg)


def _map_npy(path: Path, dtype: np.dtype[Any], length: int, digest: str | None) -> npt.NDArray[Any]:
    """Memory-map a 1-d ``.npy`` file after checking its header and size (no pickle)."""
    with path.open("rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, found = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, found = np.lib.format.read_array_header_2_0(f)
        else:
            msg = f"{path}: unsupported .npy version {version}"
            raise IndexCorruptError(msg)
        offset = f.tell()
    size = path.stat().st_size
    if found != dtype or fortran or shape != (length,) or offset + length * dtype.itemsize != size:
        msg = f"{path}: {found}{shape} in {size} bytes, expected {dtype}({length},)"
        raise IndexCorruptError(msg)
    if digest is not None:
        _read_verified(path, digest)
    if length == 0:
        return np.zeros(0, dtype=dtype)
    return np.asarray(np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(length,)))


def _log_is_as_left(path: Path, persisted: _Persisted) -> bool:
    """Whether ``path``'s manifest names ``persisted``'s log and the log has the length left."""
    if persisted.path != path.resolve():
        return False
    try:
        manifest = _read_manifest_json(path)
        size = (path / persisted.log).stat().st_size
    except (OSError, IndexCorruptError):
        return False
    return (
        manifest["format_version"] == FORMAT_VERSION
        and manifest.get("log") == persisted.log
        and size == persisted.log_bytes
    )


def _record_crc(generation: int, documents: int, payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(struct.pack("<qq", generation, documents)))


def _append_record(
    path: Path, expected_size: int, generation: int, documents: int, payload: bytes
) -> int | None:
    """Append one record and ``fsync`` it; the log's new size, or ``None`` if it is not as left."""
    header = _LOG_HEADER.pack(
        _LOG_MAGIC, len(payload), generation, documents, _record_crc(generation, documents, payload)
    )
    try:
        f = path.open("r+b")
    except FileNotFoundError:
        return None
    with f:
        end = f.seek(0, os.SEEK_END)
        if end != expected_size:
            return None
        f.write(header + payload)
        f.flush()
        os.fsync(f.fileno())
        return end + len(header) + len(payload)


def _read_log(path: Path) -> tuple[list[tuple[int, int, bytes]], int, int]:
    """The complete records ``(generation, documents, payload)``, their end, the file's size."""
    data = path.read_bytes()
    records: list[tuple[int, int, bytes]] = []
    pos = 0
    while pos + _LOG_HEADER.size <= len(data):
        magic, length, generation, documents, crc = _LOG_HEADER.unpack_from(data, pos)
        end = pos + _LOG_HEADER.size + length
        if magic != _LOG_MAGIC or end > len(data):
            break
        payload = data[pos + _LOG_HEADER.size : end]
        if _record_crc(generation, documents, payload) != crc:
            break
        records.append((generation, documents, payload))
        pos = end
    return records, pos, len(data)


def _convert(index: BM25Index, path: Path, manifest: dict[str, Any]) -> None:
    """Save an index read in format 1 or 2 in the current format, if nothing changed since."""
    from langchain_hybrid._locking import save_lock  # noqa: PLC0415 - locking is a light import

    version = manifest["format_version"]
    try:
        with save_lock(path, timeout_seconds=1.0) as locked:
            persisted = index._persisted  # noqa: SLF001 - same module
            if (
                locked
                and _read_manifest_json(path) == manifest
                and (  # format 2: and its log did not grow since it was replayed
                    persisted is None
                    or (path / persisted.log).stat().st_size == persisted.log_bytes
                )
            ):
                index.save(path)
                logger.info(
                    "BM25 index in %s was in format %d: read once and converted to format %d",
                    path,
                    version,
                    FORMAT_VERSION,
                )
                return
            reason = "the save lock is busy or the index changed meanwhile"
    except (OSError, IndexCorruptError) as e:
        reason = f"{type(e).__name__}: {e}"
    logger.info(
        "BM25 index in %s is in format %d: read, not converted (%s); the next save converts it",
        path,
        version,
        reason,
    )
