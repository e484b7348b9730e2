"""Tests of the documents' store of a BM25 index (``langchain_hybrid._docstore``).

The oracle is a plain dict of the same documents: every lookup, read and layout of the mapped
segment plus the in-memory tail must agree with it, through deletes, re-adds and id hash
collisions (forced by a hand-built id table, as no two test ids share a 64-bit hash).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from langchain_hybrid._docstore import (
    DocStore,
    MappedDocs,
    decode_metadata,
    encode_metadata,
    id_hash,
    id_hashes,
    map_blob,
)
from langchain_hybrid.bm25 import BM25Index
from langchain_hybrid.errors import IndexCorruptError

IDS = ["a", "b", "ß-ü", "日本語", "x" * 300, "with space", "e\u0301"]
TEXTS = ["alpha", "", "straße über", "日本語のテキスト", "long " * 50, "two words", "café"]
METAS = [{"n": 1}, None, {"tag": ["x", "y"], "f": 1.5}, {"s": "日本"}, None, {"b": True}, {}]


def mapped_store(tmp_path: Path, keep: list[int] | None = None) -> DocStore:
    """A store whose documents were laid out as a segment, written and memory-mapped."""
    source = DocStore()
    source.append(IDS, TEXTS, METAS)
    files = source.layout(np.arange(len(IDS)) if keep is None else np.asarray(keep))
    blobs = {}
    for kind in ("ids", "texts", "metas"):
        (tmp_path / kind).write_bytes(files[kind])
        blobs[kind] = map_blob(tmp_path / kind)
    mapped = MappedDocs(
        blobs["ids"],
        files["id_ptr"],
        files["id_hashes"],
        files["id_order"],
        blobs["texts"],
        files["text_ptr"],
        blobs["metas"],
        files["meta_ptr"],
    )
    return DocStore(mapped)


def test_mapped_documents_read_back_as_written(tmp_path: Path) -> None:
    store = mapped_store(tmp_path)
    alive = np.ones(len(IDS), dtype=bool)
    assert len(store) == store.base == len(IDS)
    assert [store.id(s) for s in range(len(IDS))] == IDS
    assert [store.text(s) for s in range(len(IDS))] == TEXTS
    assert [store.metadata(s) for s in range(len(IDS))] == [m or None for m in METAS]
    assert store.find([*IDS, "absent", "A", "e"], alive) == [*range(len(IDS)), None, None, None]


def test_dead_slots_are_not_found_and_a_readded_id_lives_in_the_tail(tmp_path: Path) -> None:
    store = mapped_store(tmp_path)
    alive = np.ones(len(IDS) + 1, dtype=bool)
    alive[2] = False  # "ß-ü" deleted from the segment ...
    store.drop(2, "ß-ü")
    assert store.find(["ß-ü"], alive) == [None]
    store.append(["ß-ü"], ["new text"], [{"v": 2}])  # ... and added again
    assert store.find(["ß-ü", "a"], alive) == [len(IDS), 0]
    assert (store.text(len(IDS)), store.metadata(len(IDS))) == ("new text", {"v": 2})
    assert store.text(2) == TEXTS[2], "a mapped slot's text stays in its file"
    kept = np.flatnonzero(alive)
    copy = store.take(kept)
    assert copy.mapped is None
    assert [copy.id(s) for s in range(len(copy))] == [store.id(int(s)) for s in kept]
    snap = store.snapshot()
    store.append(["later"], ["t"], [None])
    assert len(snap) == len(IDS) + 1, "a snapshot does not see later appends"


def test_layout_of_mapped_and_tail_slots_round_trips(tmp_path: Path) -> None:
    store = mapped_store(tmp_path)
    store.append(["tail-1", "tail-2"], ["t one", "t two"], [{"k": 1}, None])
    keep = np.array([0, 3, 4, 7, 8])
    out = store.layout(keep)
    ids = [store.id(int(s)) for s in keep]
    cut = [out["ids"][a:b].decode() for a, b in zip(out["id_ptr"], out["id_ptr"][1:], strict=False)]
    assert cut == ids
    texts = out["texts"]
    assert [
        texts[a:b].decode() for a, b in zip(out["text_ptr"], out["text_ptr"][1:], strict=False)
    ] == [store.text(int(s)) for s in keep]
    metas = out["metas"]
    assert [
        json.loads(metas[a:b]) if b > a else None
        for a, b in zip(out["meta_ptr"], out["meta_ptr"][1:], strict=False)
    ] == [store.metadata(int(s)) for s in keep]
    assert out["id_hashes"].tolist() == sorted(id_hash(i) for i in ids)
    assert [ids[j] for j in out["id_order"]] == sorted(ids, key=id_hash)


def test_colliding_hashes_are_told_apart_by_the_id_bytes(tmp_path: Path) -> None:
    """Ids sharing a 64-bit hash (forced here) are found by comparing their bytes."""
    ids = [b"first", b"second", b"third"]
    (tmp_path / "ids").write_bytes(b"".join(ids))
    ptr = np.array([0, 5, 11, 16], dtype=np.int64)
    same = np.array([7, 7, 7], dtype=np.uint64)  # every id "hashes" to 7
    empty = np.zeros(4, dtype=np.int64)
    mapped = MappedDocs(
        map_blob(tmp_path / "ids"), ptr, same, np.array([2, 0, 1]), b"", empty, b"", empty
    )
    wanted = ["second", "third", "first", "fourth"]
    assert mapped.find(np.full(4, 7, dtype=np.uint64), wanted) == [1, 2, 0, None]
    assert mapped.find(id_hashes(["first"]), ["first"]) == [None]  # its real hash is not 7


def test_bad_bytes_in_a_mapped_file_are_a_typed_error(tmp_path: Path) -> None:
    index = BM25Index()
    index.add(["a", "b"], ["red apple", "green pear"], [{"c": "red"}, {"c": "green"}])
    index.save(tmp_path)
    metas = next(tmp_path.glob("metas-*.bin"))
    metas.write_bytes(metas.read_bytes().replace(b'{"c"', b"[1, "))  # same size: not an object
    texts = next(tmp_path.glob("texts-*.txt"))
    texts.write_bytes(texts.read_bytes().replace(b"red", b"\xff\xfe\xfd"))  # not UTF-8
    loaded = BM25Index.load(tmp_path)  # sizes and offsets agree: found on reading
    with pytest.raises(IndexCorruptError, match=r"not UTF-8|not JSON|metadata is a"):
        loaded.get(["a"])
    with pytest.raises(IndexCorruptError):
        BM25Index.load(tmp_path, verify=True)


def test_an_empty_file_maps_to_empty_bytes(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    assert map_blob(tmp_path / "empty") == b""


@pytest.mark.parametrize(
    "metadata",
    [
        {"n": 0},
        {"source": "docs/guide.md", "page": 3, "score": 0.25, "draft": False, "note": None},
        {"title": "設定ガイド", "emoji": "café ☕", "escaped": 'a "quoted" \\ tab\t'},
        {"tags": ["a", "b"], "nested": {"x": [1, 2.5, {"y": "z"}]}},
    ],
)
def test_stored_metadata_reads_back_as_written(metadata: dict[str, Any]) -> None:
    assert decode_metadata(encode_metadata(metadata)) == metadata


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b'{"a": "\xff"}', "not UTF-8"),
        (b'{"a": 1', "not JSON"),
        (b' {"a": 1}', "not JSON"),  # encode_metadata writes no whitespace around it
        (b'{"a": 1} ', "bytes after"),
        (b'{"a": 1}{"b": 2}', "bytes after"),
        (b"[1, 2]", "metadata is a list"),
    ],
)
def test_damaged_stored_metadata_is_a_typed_error(data: bytes, says: str) -> None:
    with pytest.raises(IndexCorruptError, match=says):
        decode_metadata(data)


def test_id_hashes_are_the_id_hash_of_each_id() -> None:
    ids = ["doc-1", "é", "設定", "", "doc-1"]
    assert id_hashes(ids).tolist() == [id_hash(i) for i in ids]
    assert id_hashes(ids).dtype == np.uint64
    assert id_hashes([]).tolist() == []
