"""The documents of a BM25 index by slot: ids, texts and metadata, mapped or in memory.

Slots below ``base`` live in a merged segment's files, memory-mapped (:class:`MappedDocs`): the
ids, the texts and the metadata (one JSON object per document) each back to back in one file,
cut at byte offsets, and a lookup table of 64-bit id hashes sorted with their slots. Opening a
segment builds nothing per document in Python; a read decodes only the slots it asks for, and
the pages not read stay on disk (or in the page cache every process shares). Slots added since
the segment live in plain lists (:class:`DocStore`). The BM25 index (:mod:`langchain_hybrid.bm25`)
owns the files; this module only reads and lays them out.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import mmap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from langchain_hybrid.errors import IndexCorruptError

_Int = npt.NDArray[np.int64]
_U64 = npt.NDArray[np.uint64]
Blob = bytes | mmap.mmap


def _digest(doc_id: str) -> bytes:
    return hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest()


def id_hash(doc_id: str) -> int:
    """A stable 64-bit hash of a document id (BLAKE2b), the key of the segment's id table."""
    return int.from_bytes(_digest(doc_id), "little")


def id_hashes(ids: Sequence[str]) -> _U64:
    """:func:`id_hash` of each id, as an array."""
    return np.frombuffer(b"".join(map(_digest, ids)), dtype="<u8").astype(np.uint64)


def map_blob(path: Path) -> Blob:
    """Memory-map a whole file read-only (an empty file is ``b""``: it cannot be mapped)."""
    with path.open("rb") as f:
        if f.seek(0, 2) == 0:
            return b""
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


@dataclasses.dataclass(frozen=True, slots=True)
class MappedDocs:
    """A segment's documents, slot ``s`` at ``blob[ptr[s]:ptr[s + 1]]`` of each blob.

    ``hashes`` are the ids' :func:`id_hash` sorted ascending, ``order`` the slot of each.
    """

    ids: Blob
    id_ptr: _Int
    hashes: _U64
    order: _Int
    texts: Blob
    text_ptr: _Int
    metas: Blob
    meta_ptr: _Int

    @property
    def size(self) -> int:
        """Number of documents."""
        return len(self.id_ptr) - 1

    def id_bytes(self, slot: int) -> bytes:
        """The UTF-8 bytes of one slot's id."""
        return self.ids[int(self.id_ptr[slot]) : int(self.id_ptr[slot + 1])]

    def text_bytes(self, slot: int) -> bytes:
        """The UTF-8 bytes of one slot's text."""
        return self.texts[int(self.text_ptr[slot]) : int(self.text_ptr[slot + 1])]

    def meta_bytes(self, slot: int) -> bytes:
        """The JSON bytes of one slot's metadata (empty: none)."""
        return self.metas[int(self.meta_ptr[slot]) : int(self.meta_ptr[slot + 1])]

    def find(self, hashes: _U64, ids: Sequence[str]) -> list[int | None]:
        """The slot of each id (``None``: not in the segment); ``hashes`` are theirs."""
        table = self.hashes
        starts = np.searchsorted(table, hashes).tolist()
        out: list[int | None] = []
        n = len(table)
        for doc_id, start, wanted in zip(ids, starts, hashes.tolist(), strict=True):
            found = None
            position = start
            encoded = doc_id.encode("utf-8")
            while position < n and int(table[position]) == wanted:
                slot = int(self.order[position])
                if self.id_bytes(slot) == encoded:
                    found = slot
                    break
                position += 1
            out.append(found)
        return out

    def hashes_by_slot(self) -> _U64:
        """Each slot's id hash, in slot order (for a merge)."""
        by_slot = np.empty(self.size, dtype=np.uint64)
        by_slot[np.asarray(self.order)] = self.hashes
        return by_slot


_JSON = json.JSONDecoder()


def _decode(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        msg = f"BM25 segment corrupt: a stored {what} is not UTF-8 ({e})"
        raise IndexCorruptError(msg) from e


def decode_metadata(data: bytes) -> dict[str, Any] | None:
    """A stored metadata record (empty bytes: no metadata)."""
    if not data:
        return None
    text = _decode(data, "metadata")
    try:
        # written by encode_metadata: no surrounding whitespace, so raw_decode (about a fifth
        # of json.loads' cost per small record) with a check that it read every byte
        value, end = _JSON.raw_decode(text)
    except ValueError as e:
        msg = f"BM25 segment corrupt: a stored metadata is not JSON ({e})"
        raise IndexCorruptError(msg) from e
    if end != len(text):
        msg = "BM25 segment corrupt: a stored metadata has bytes after its JSON object"
        raise IndexCorruptError(msg)
    if not isinstance(value, dict):
        msg = f"BM25 segment corrupt: a stored metadata is a {type(value).__name__}"
        raise IndexCorruptError(msg)
    return value


def encode_metadata(metadata: dict[str, Any] | None) -> bytes:
    """The stored form of a metadata dict (``None`` or empty: no bytes)."""
    if not metadata:
        return b""
    return json.dumps(metadata, ensure_ascii=False, allow_nan=False).encode("utf-8")


class DocStore:
    """Ids, texts and metadata by slot: slots ``< base`` mapped, later ones in lists.

    ``slot_of`` maps the ids of later slots that are live; a segment slot's liveness is the
    index's ``alive`` array (passed to :meth:`find`). Not thread-safe: the index's lock guards it.
    """

    __slots__ = ("base", "ids", "mapped", "metadatas", "slot_of", "texts")

    def __init__(self, mapped: MappedDocs | None = None) -> None:
        """A store over ``mapped`` (or none) with no later slots."""
        self.mapped = mapped
        self.base = mapped.size if mapped is not None else 0
        self.ids: list[str] = []
        self.texts: list[str] = []
        self.metadatas: list[dict[str, Any] | None] = []
        self.slot_of: dict[str, int] = {}

    def __len__(self) -> int:
        """Number of slots (live or not)."""
        return self.base + len(self.ids)

    def id(self, slot: int) -> str:
        """One slot's id."""
        if slot < self.base:
            return _decode(self.mapped.id_bytes(slot), "id")  # type: ignore[union-attr]
        return self.ids[slot - self.base]

    def text(self, slot: int) -> str:
        """One slot's text."""
        if slot < self.base:
            return _decode(self.mapped.text_bytes(slot), "text")  # type: ignore[union-attr]
        return self.texts[slot - self.base]

    def metadata(self, slot: int) -> dict[str, Any] | None:
        """One slot's metadata (a fresh dict for a mapped slot; the stored one otherwise)."""
        if slot < self.base:
            return decode_metadata(self.mapped.meta_bytes(slot))  # type: ignore[union-attr]
        return self.metadatas[slot - self.base]

    def find(self, ids: Sequence[str], alive: npt.NDArray[np.bool_]) -> list[int | None]:
        """The live slot of each id (``None``: not a live document)."""
        out: list[int | None] = [self.slot_of.get(i) for i in ids]
        if self.mapped is None or not self.base:
            return out
        rest = [j for j, slot in enumerate(out) if slot is None]
        if not rest:
            return out
        wanted = [ids[j] for j in rest]
        for j, slot in zip(rest, self.mapped.find(id_hashes(wanted), wanted), strict=True):
            if slot is not None and alive[slot]:
                out[j] = slot
        return out

    def append(
        self, ids: Sequence[str], texts: Sequence[str], metadatas: Sequence[dict[str, Any] | None]
    ) -> None:
        """Add slots at the end."""
        first = len(self)
        for j, doc_id in enumerate(ids):
            self.slot_of[doc_id] = first + j
        self.ids.extend(ids)
        self.texts.extend(texts)
        self.metadatas.extend(metadatas)

    def drop(self, slot: int, doc_id: str) -> None:
        """Forget a deleted slot's id, text and metadata (a mapped slot's stay in its files)."""
        if slot >= self.base:
            self.slot_of.pop(doc_id, None)
            self.texts[slot - self.base] = ""
            self.metadatas[slot - self.base] = None

    def snapshot(self) -> DocStore:
        """A copy that later appends and drops do not change (the mapped part is shared)."""
        copy = DocStore(self.mapped)
        copy.ids, copy.texts = list(self.ids), list(self.texts)
        copy.metadatas = list(self.metadatas)
        return copy

    def take(self, keep: _Int) -> DocStore:
        """A store of the slots ``keep`` renumbered from 0, every one in lists (compaction)."""
        out = DocStore()
        out.append(
            [self.id(int(s)) for s in keep],
            [self.text(int(s)) for s in keep],
            [self.metadata(int(s)) for s in keep],
        )
        return out

    def layout(self, keep: _Int) -> dict[str, Any]:
        """The files of a segment holding the slots ``keep`` (ascending): blobs, offsets, id table.

        Mapped slots are copied as byte ranges, one per run of consecutive kept slots (a merge
        follows at most ``N / 16`` changes, so runs are few); later slots are encoded.
        """
        base, mapped = self.base, self.mapped
        old = keep[keep < base]
        new_slots: list[int] = (keep[keep >= base] - base).tolist()
        encoded = {
            "ids": [self.ids[s].encode("utf-8") for s in new_slots],
            "texts": [self.texts[s].encode("utf-8") for s in new_slots],
            "metas": [encode_metadata(self.metadatas[s]) for s in new_slots],
        }
        out: dict[str, Any] = {}
        for kind, ptr_name in (("ids", "id_ptr"), ("texts", "text_ptr"), ("metas", "meta_ptr")):
            pieces: list[bytes] = []
            lengths = [np.fromiter(map(len, encoded[kind]), np.int64, len(new_slots))]
            if mapped is not None and len(old):
                ptr = np.asarray(getattr(mapped, ptr_name))
                blob = getattr(mapped, kind)
                lengths.insert(0, ptr[old + 1] - ptr[old])
                breaks = np.flatnonzero(np.diff(old) != 1) + 1
                starts = np.concatenate([[0], breaks]).tolist()
                ends = np.concatenate([breaks, [len(old)]]).tolist()
                for i, j in zip(starts, ends, strict=True):
                    pieces.append(blob[int(ptr[old[i]]) : int(ptr[old[j - 1] + 1])])
            pieces += encoded[kind]
            offsets = np.zeros(len(keep) + 1, dtype=np.int64)
            np.cumsum(np.concatenate(lengths), out=offsets[1:])
            out[kind], out[ptr_name] = b"".join(pieces), offsets
        hashes = np.empty(len(keep), dtype=np.uint64)
        if mapped is not None and len(old):
            hashes[: len(old)] = mapped.hashes_by_slot()[old]
        hashes[len(old) :] = id_hashes([self.ids[s] for s in new_slots])
        order = np.argsort(hashes, kind="stable")
        out["id_hashes"], out["id_order"] = hashes[order], order.astype(np.int64)
        return out
