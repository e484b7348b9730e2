"""Tests of the BM25 index's log-structured, memory-mapped storage.

A save appends the writes since the last save to the log (one record, CRC-framed, fsynced) or,
past a threshold, merges everything into a new segment. The oracle: an index loaded after any
sequence of adds, upserts, deletes, saves, merges and compactions equals an index built from
scratch from its live documents (same documents, vocabulary statistics and scores).
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import logging
import threading
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import IDENTITY

from langchain_hybrid import bm25 as bm25_module
from langchain_hybrid._locking import save_lock
from langchain_hybrid.bm25 import BM25Index, BM25Params
from langchain_hybrid.errors import IndexCorruptError
from langchain_hybrid.filters import parse_filter

PARAMS = BM25Params(k1=1.2, b=0.7, tokenizer=IDENTITY)
WORDS = [f"w{i}" for i in range(300)]


def random_text(rng: np.random.Generator) -> str:
    p = 1.0 / np.arange(1, len(WORDS) + 1)
    words = rng.choice(len(WORDS), size=int(rng.integers(1, 25)), p=p / p.sum())
    return " ".join(WORDS[j] for j in words)


def rebuilt(index: BM25Index) -> BM25Index:
    """A fresh index of ``index``'s live documents."""
    fresh = BM25Index(index.params)
    ids = index.ids
    hits = index.get(ids)
    fresh.add(ids, [h.text for h in hits if h], [h.metadata or None for h in hits if h])
    return fresh


def live_scores(index: BM25Index, query: str) -> dict[str, float]:
    scores = index.scores(query)
    return {index._docs.id(s): float(scores[s]) for s in np.flatnonzero(np.asarray(index._alive))}


def assert_equals_rebuild(index: BM25Index) -> None:
    fresh = rebuilt(index)
    assert sorted(index.ids) == sorted(fresh.ids)
    assert len(index) == len(fresh)
    assert index.avgdl == pytest.approx(fresh.avgdl, rel=1e-12)
    by_term = {t: int(index._df[i]) for t, i in index._vocab.items() if index._df[i]}
    assert by_term == {t: int(fresh._df[i]) for t, i in fresh._vocab.items()}
    for query in ("w0", "w1 w2", "w5 w40 w200", "w3 w3 w99", "nothing"):
        assert live_scores(index, query) == pytest.approx(live_scores(fresh, query), abs=1e-12)
        got = [(h.id, h.text, h.metadata) for h in index.search(query, 10)]
        assert got == [(h.id, h.text, h.metadata) for h in fresh.search(query, 10)]


def manifest_of(path: Path) -> dict[str, Any]:
    return dict(json.loads((path / "manifest.json").read_text(encoding="utf-8")))


def is_mapped(array: np.ndarray) -> bool:
    base: Any = array
    while base is not None:
        if isinstance(base, np.memmap):
            return True
        base = getattr(base, "base", None)
    return False


# ------------------------------------------------------------------ log replay == rebuild
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_load_after_log_replay_equals_rebuild(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    monkeypatch.setattr(bm25_module, "_MERGE_MIN", 40)  # merges every few dozen changes
    rng = np.random.default_rng(seed)
    path = tmp_path / "idx"
    index = BM25Index(PARAMS)
    index.add([f"d{i}" for i in range(150)], [random_text(rng) for _ in range(150)])
    seen = {"append": 0, "merge": 0, "compacted": 0}
    for step in range(60):
        live = index.ids
        op = rng.random()
        if op < 0.45:
            ids = [f"n{step}-{j}" for j in range(int(rng.integers(1, 4)))]
            index.add(ids, [random_text(rng) for _ in ids], [{"step": step}] * len(ids))
        elif op < 0.7 and live:
            ids = list(
                rng.choice(live, size=min(len(live), int(rng.integers(1, 3))), replace=False)
            )
            index.add(ids, [random_text(rng) for _ in ids])  # upserts
        elif live:
            doomed = list(
                rng.choice(live, size=min(len(live), int(rng.integers(1, 30))), replace=False)
            )
            slots = len(index._docs)
            index.delete([*doomed, "unknown"])
            seen["compacted"] += len(index._docs) < slots
        log_before = manifest_of(path)["log"] if path.exists() else None
        index.save(path)
        seen["merge" if manifest_of(path)["log"] != log_before else "append"] += 1
        loaded = BM25Index.load(path)
        assert loaded.generation == index.generation
        assert BM25Index.read_manifest(path)["generation"] == index.generation
        assert_equals_rebuild(loaded)
        assert sorted(loaded.ids) == sorted(index.ids)
        assert loaded.get(index.ids) == index.get(index.ids)
        if step % 10 == 0:
            assert_equals_rebuild(index)
    assert seen["append"] > 20
    assert seen["merge"] > 2


def test_an_append_writes_one_small_record_and_touches_no_segment_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    index = BM25Index(PARAMS)
    index.add([f"d{i}" for i in range(3000)], [random_text(rng) for _ in range(3000)])
    path = tmp_path / "idx"
    index.save(path)
    manifest = manifest_of(path)
    before = {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in path.iterdir()}
    index.add(["new"], ["w1 w2 w3"], [{"k": "v"}])
    index.generation = 42  # set by the caller (the collection's write generation)
    index.save(path)
    index.delete(["d7"])
    index.generation = 44
    index.save(path)
    after = {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in path.iterdir()}
    log = manifest["log"]
    assert {n: v for n, v in after.items() if n != log} == {
        n: v for n, v in before.items() if n != log
    }
    assert 0 < after[log][0] < 1000  # two records, independent of the index's size
    current = BM25Index.read_manifest(path)
    assert (current["generation"], current["documents"], current["log_records"]) == (44, 3000, 2)
    loaded = BM25Index.load(path)
    assert (loaded.generation, len(loaded), "new" in loaded, "d7" in loaded) == (
        44,
        3000,
        True,
        False,
    )
    assert loaded.get(["new"])[0] == index.get(["new"])[0]


def test_a_save_with_nothing_new_writes_nothing(tmp_path: Path) -> None:
    index = BM25Index(PARAMS)
    index.add(["a"], ["w1"])
    index.save(tmp_path)
    index.add(["b"], ["w2"])
    index.save(tmp_path)
    size = (tmp_path / manifest_of(tmp_path)["log"]).stat().st_size
    index.save(tmp_path)
    assert (tmp_path / manifest_of(tmp_path)["log"]).stat().st_size == size


# ------------------------------------------------------------------ torn and foreign logs
def test_a_torn_record_is_ignored_and_the_index_is_behind(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    index = BM25Index(PARAMS)
    index.add(["a", "b"], ["w1 w2", "w2 w3"])
    index.save(tmp_path)
    index.add(["c"], ["w3 w4"])
    index.save(tmp_path)
    acknowledged = index.generation
    log = tmp_path / manifest_of(tmp_path)["log"]
    good = log.stat().st_size
    index.add(["d"], ["w4 w5"])
    index.save(tmp_path)
    for cut in (1, 7, log.stat().st_size - good - 1):  # torn header, torn payload
        data = log.read_bytes()
        log.write_bytes(data[: good + cut])
        with caplog.at_level(logging.WARNING, logger="langchain_hybrid.bm25"):
            loaded = BM25Index.load(tmp_path)
        assert (loaded.generation, sorted(loaded.ids)) == (acknowledged, ["a", "b", "c"])
        assert "ignored" in caplog.text
        assert BM25Index.read_manifest(tmp_path)["generation"] == acknowledged
        log.write_bytes(data)
    # a flipped bit in the last record's payload fails its CRC the same way
    data = bytearray(log.read_bytes())
    data[-3] ^= 0x20
    log.write_bytes(bytes(data))
    loaded = BM25Index.load(tmp_path)
    assert loaded.generation == acknowledged
    # the loaded index does not append after the garbage: its next save merges
    loaded.add(["e"], ["w6"])
    loaded.save(tmp_path)
    assert manifest_of(tmp_path)["log"] != log.name
    assert not log.exists()
    assert sorted(BM25Index.load(tmp_path).ids) == ["a", "b", "c", "e"]


def test_another_index_saved_in_between_is_not_appended_to(tmp_path: Path) -> None:
    first = BM25Index(PARAMS)
    first.add(["a"], ["w1"])
    first.save(tmp_path)
    second = BM25Index.load(tmp_path)
    second.add(["b"], ["w2"])
    second.save(tmp_path)  # appends to the log first wrote
    first.add(["c"], ["w3"])
    first.save(tmp_path)  # the log is longer than first left it: first merges
    assert sorted(BM25Index.load(tmp_path).ids) == ["a", "c"]
    other = BM25Index(PARAMS)
    other.add(["x"], ["w9"])
    other.save(tmp_path)  # a new segment and log
    first.add(["d"], ["w4"])
    first.save(tmp_path)  # the manifest names another log: first merges again
    assert sorted(BM25Index.load(tmp_path).ids) == ["a", "c", "d"]


def test_saves_to_two_directories(tmp_path: Path) -> None:
    index = BM25Index(PARAMS)
    index.add(["a"], ["w1"])
    index.save(tmp_path / "one")
    index.add(["b"], ["w2"])
    index.save(tmp_path / "two")
    index.add(["c"], ["w3"])
    index.save(tmp_path / "one")
    assert sorted(BM25Index.load(tmp_path / "one").ids) == ["a", "b", "c"]
    assert sorted(BM25Index.load(tmp_path / "two").ids) == ["a", "b"]


# ------------------------------------------------------------------ merges
def test_a_merge_serves_from_the_mapped_files_and_open_rebuilds_nothing(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    index = BM25Index(PARAMS)
    index.add([f"d{i}" for i in range(500)], [random_text(rng) for _ in range(500)])
    index.delete(["d3", "d4"])
    expected = {q: index.search(q, 10) for q in ("w1", "w2 w30", "w7 w8 w9")}
    index.save(tmp_path)
    assert is_mapped(index._main.slots)
    assert is_mapped(index._base_terms)
    assert len(index._docs) == 498  # the merge dropped the deleted slots
    assert {q: index.search(q, 10) for q in expected} == expected
    loaded = BM25Index.load(tmp_path)
    main = loaded._main
    assert main is not None
    assert is_mapped(main.slots)
    assert is_mapped(main.tfs)
    assert {q: loaded.search(q, 10) for q in expected} == expected
    assert loaded._main is main, "the first query rebuilt the term-major postings"
    loaded.add(["new"], ["w1 w1 w1"])  # a write goes to the in-memory tail
    assert loaded.search("w1", 1)[0].id == "new"
    assert loaded._main is main


def test_the_log_merges_past_the_threshold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bm25_module, "_MERGE_MIN", 10)
    index = BM25Index(PARAMS)
    index.add([f"d{i}" for i in range(20)], ["w1 w2"] * 20)
    index.save(tmp_path)
    logs = [manifest_of(tmp_path)["log"]]
    for i in range(25):
        index.add([f"n{i}"], ["w3"])
        index.save(tmp_path)
        logs.append(manifest_of(tmp_path)["log"])
    merges = sum(a != b for a, b in itertools.pairwise(logs))
    assert merges == 2  # after 11 and 22 changes
    assert len(BM25Index.load(tmp_path)) == 45
    # a long bulk write between saves drops its journal: the save merges instead of logging
    index.add([f"bulk{i}" for i in range(30)], ["w4"] * 30)
    assert index._journal is None
    index.save(tmp_path)
    assert manifest_of(tmp_path)["log"] != logs[-1]
    assert (tmp_path / manifest_of(tmp_path)["log"]).stat().st_size == 0


def test_writes_during_a_merge_are_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index = BM25Index(PARAMS)
    index.add(["a", "b"], ["w1", "w2"])
    index.save(tmp_path)
    real = bm25_module._write_segment

    def write_while_merging(*args: Any, **kwargs: Any) -> dict[str, Any]:
        index.add(["during"], ["w3 w3"])  # another thread's write, while the lock is free
        index.delete(["a"])
        return real(*args, **kwargs)

    other = BM25Index.load(tmp_path)
    monkeypatch.setattr(bm25_module, "_write_segment", write_while_merging)
    index = other
    index.clear()  # forces the next save to merge
    index.add(["c"], ["w4"])
    index.save(tmp_path)
    monkeypatch.setattr(bm25_module, "_write_segment", real)
    assert sorted(index.ids) == ["c", "during"]
    assert sorted(BM25Index.load(tmp_path).ids) == ["c"]  # the merge's snapshot
    index.save(tmp_path)  # the writes made during the merge follow
    loaded = BM25Index.load(tmp_path)
    assert sorted(loaded.ids) == ["c", "during"]
    assert loaded.generation == index.generation
    assert_equals_rebuild(loaded)


def test_queries_run_during_a_merge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    index = BM25Index(PARAMS)
    index.add([f"d{i}" for i in range(300)], [random_text(rng) for _ in range(300)])
    expected = index.search("w1 w2", 5)
    real = bm25_module._write_segment
    answered = threading.Event()

    def slow_write(*args: Any, **kwargs: Any) -> dict[str, Any]:
        thread = threading.Thread(target=lambda: index.search("w1 w2", 5) and answered.set())
        thread.start()
        thread.join(timeout=30)
        return real(*args, **kwargs)

    monkeypatch.setattr(bm25_module, "_write_segment", slow_write)
    index.save(tmp_path)
    assert answered.is_set(), "a query waited for the merge"
    assert index.search("w1 w2", 5) == expected


def test_in_memory_adds_grow_buffers_geometrically() -> None:
    index = BM25Index(PARAMS)
    capacities = set()
    for i in range(2000):
        index.add([f"d{i}"], ["w1 w2 w3"])
        capacities.add(len(index._new_terms._data))
    assert len(capacities) <= 12  # doubling: about log2(6000 / 16) reallocations
    assert len(index._new_terms) == 6000


# ------------------------------------------------------------------ files and format 1
def test_a_truncated_array_is_refused_before_it_is_mapped(tmp_path: Path) -> None:
    index = BM25Index(PARAMS)
    index.add(["a", "b"], ["w1 w2", "w2 w3"])
    index.save(tmp_path)
    name = next(p for p in tmp_path.iterdir() if p.name.startswith("csc_slots-"))
    name.write_bytes(name.read_bytes()[:-4])
    with pytest.raises(IndexCorruptError, match="bytes, the manifest says"):
        BM25Index.load(tmp_path)


def write_format_1(path: Path, index: BM25Index) -> None:
    """The files the previous release saved (format 1): JSON + a compressed ``.npz``."""
    path.mkdir(parents=True, exist_ok=True)
    live = np.flatnonzero(index._alive)
    ptr, terms, tfs = bm25_module._gather(*index._doc_major(0, len(index._docs)), live)
    docs = [[index._docs.id(s), index._docs.text(s), index._docs.metadata(s)] for s in live]
    npz = io.BytesIO()
    np.savez_compressed(npz, doc_ptr=ptr, terms=terms.astype(np.int32), tfs=tfs.astype(np.int32))
    blobs = {
        "vocab": (json.dumps(index._words).encode(), "json"),
        "docs": (json.dumps(docs).encode(), "json"),
        "postings": (npz.getvalue(), "npz"),
    }
    files = {}
    for kind, (data, ext) in blobs.items():
        digest = hashlib.sha256(data).hexdigest()
        name = f"{kind}-{index.generation}-{digest[:16]}.{ext}"
        (path / name).write_bytes(data)
        files[name] = digest
    manifest = {
        "format": "langchain-hybrid-bm25",
        "format_version": 1,
        "generation": index.generation,
        "documents": len(docs),
        "params": index.params.model_dump(mode="json"),
        "files": files,
    }
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_format_1_is_read_once_and_converted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rng = np.random.default_rng(6)
    index = BM25Index(PARAMS)
    index.add(
        [f"d{i}" for i in range(200)], [random_text(rng) for _ in range(200)], [{"i": 1}] * 200
    )
    index.delete(["d0", "d1"])
    write_format_1(tmp_path, index)
    (tmp_path / "notes.txt").write_text("mine")
    assert BM25Index.read_manifest(tmp_path)["format_version"] == 1
    with caplog.at_level(logging.INFO, logger="langchain_hybrid.bm25"):
        loaded = BM25Index.load(tmp_path)
    assert "read once and converted" in caplog.text
    assert manifest_of(tmp_path)["format_version"] == 3
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".npz"], "format 1 files left"
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert_equals_rebuild(loaded)
    assert loaded.generation == index.generation
    again = BM25Index.load(tmp_path)
    assert sorted(again.ids) == sorted(index.ids)
    assert again.search("w1 w2", 10) == index.search("w1 w2", 10)


def write_format_2(path: Path, index: BM25Index, later: BM25Index) -> None:
    """The files release 0.2.0 saved (format 2): a segment of ``index``, a log record to ``later``.

    Ids and metadata in one JSON file, the texts cut at code-point offsets, ``.npy`` postings.
    """
    path.mkdir(parents=True, exist_ok=True)
    live = np.flatnonzero(index._alive)
    ptr, terms, tfs = bm25_module._gather(*index._doc_major(0, len(index._docs)), live)
    csc = bm25_module._to_csc(ptr, terms, tfs, len(index._words))
    texts = [index._docs.text(s) for s in live]
    token, gen = "0123456789abcdef", index.generation
    arrays = {
        "text_ptr": np.cumsum([0] + [len(t) for t in texts]).astype("<i8"),
        "doc_ptr": ptr.astype("<i8"),
        "terms": terms.astype("<i4"),
        "tfs": tfs.astype("<i4"),
        "dl": np.asarray(index._dl)[live].astype("<f8"),
        "df": np.asarray(index._df).astype("<i8"),
        "csc_ptr": csc.indptr.astype("<i8"),
        "csc_slots": csc.slots.astype("<i4"),
        "csc_tfs": csc.tfs.astype("<i4"),
    }
    blobs = {
        f"vocab-{gen}-{token}.json": json.dumps(index._words).encode(),
        f"docs-{gen}-{token}.json": json.dumps(
            [[index._docs.id(s), index._docs.metadata(s)] for s in live]
        ).encode(),
        f"texts-{gen}-{token}.txt": "".join(texts).encode(),
    }
    for kind, array in arrays.items():
        out = io.BytesIO()
        np.save(out, array, allow_pickle=False)
        blobs[f"{kind}-{gen}-{token}.npy"] = out.getvalue()
    files: dict[str, Any] = {}
    for name, data in blobs.items():
        (path / name).write_bytes(data)
        files[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    log = f"log-{gen}-{token}.log"
    added = [i for i in later.ids if i not in index]
    hits = later.get(added)
    op = {
        "add": {
            "ids": added,
            "texts": [h.text for h in hits if h],
            "metadatas": [h.metadata or None for h in hits if h],
            "tokens": [h.text.split() for h in hits if h],
            "tfs": [[1] * len(h.text.split()) for h in hits if h],
        }
    }
    (path / log).write_bytes(b"")
    bm25_module._append_record(
        path / log, 0, later.generation, len(later), json.dumps({"ops": [op]}).encode()
    )
    files[log] = {"bytes": 0, "sha256": None}
    manifest = {
        "format": "langchain-hybrid-bm25",
        "format_version": 2,
        "generation": gen,
        "documents": len(live),
        "params": index.params.model_dump(mode="json"),
        "segment": {"documents": len(live), "terms": len(index._words), "postings": len(terms)},
        "log": log,
        "files": files,
    }
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_format_2_is_read_once_and_converted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Release 0.2.0's segment and log are replayed, then saved once as format 3."""
    rng = np.random.default_rng(7)
    index = BM25Index(PARAMS)
    index.add(
        [f"d{i}" for i in range(300)],
        [random_text(rng) + " café ß" * (i % 3) for i in range(300)],  # multi-byte texts
        [{"i": i, "tag": ["x", "y"][i % 2]} for i in range(300)],
    )
    index.delete(["d0", "d1"])
    later = BM25Index(PARAMS)  # index plus the log's add (distinct words: tf 1 each)
    later.add(
        index.ids,
        [h.text for h in index.get(index.ids) if h],
        [h.metadata or None for h in index.get(index.ids) if h],
    )
    later.add(["n1", "n2"], ["w1 w2 w3", "w4 w5"], [{"i": -1}, None])
    later.generation = index.generation + 1
    write_format_2(tmp_path, index, later)
    (tmp_path / "notes.txt").write_text("mine")
    assert BM25Index.read_manifest(tmp_path)["generation"] == later.generation
    with caplog.at_level(logging.INFO, logger="langchain_hybrid.bm25"):
        loaded = BM25Index.load(tmp_path)
    assert "was in format 2: read once and converted to format 3" in caplog.text
    assert manifest_of(tmp_path)["format_version"] == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("docs-")], "format 2 left"
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert_equals_rebuild(loaded)
    again = BM25Index.load(tmp_path)
    assert again.generation == later.generation
    assert sorted(again.ids) == sorted(later.ids)
    assert again.get(later.ids) == later.get(later.ids)
    for query in ("w1 w2", "café", "w7 w9 w11"):
        assert again.search(query, 10) == later.search(query, 10)
    node = parse_filter({"$and": [{"tag": "x"}, {"i": {"$gt": 100}}]})
    assert again.search("w1 w2", 50, node) == later.search("w1 w2", 50, node)


def test_format_1_with_the_save_lock_busy_is_read_and_not_converted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    index = BM25Index(PARAMS)
    index.add(["a", "b"], ["w1 w2", "w2 w3"])
    write_format_1(tmp_path, index)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with save_lock(tmp_path):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(30)
    try:
        with caplog.at_level(logging.INFO, logger="langchain_hybrid.bm25"):
            loaded = BM25Index.load(tmp_path)
    finally:
        release.set()
        holder.join()
    assert "not converted" in caplog.text
    assert manifest_of(tmp_path)["format_version"] == 1
    assert sorted(loaded.ids) == ["a", "b"]
    loaded.add(["c"], ["w9"])
    loaded.save(tmp_path)  # the next save converts
    assert manifest_of(tmp_path)["format_version"] == 3
    assert sorted(BM25Index.load(tmp_path).ids) == ["a", "b", "c"]


def test_format_1_with_a_pickle_bearing_npz_is_refused(tmp_path: Path) -> None:
    index = BM25Index(PARAMS)
    index.add(["a"], ["w1"])
    write_format_1(tmp_path, index)
    manifest = manifest_of(tmp_path)
    name = next(n for n in manifest["files"] if n.startswith("postings-"))
    objects = np.empty(2, dtype=object)
    objects[:] = [{"x": 1}, 2]
    buffer = io.BytesIO()
    np.savez(buffer, doc_ptr=objects, terms=objects, tfs=objects)
    data = buffer.getvalue()
    (tmp_path / name).write_bytes(data)
    manifest["files"][name] = hashlib.sha256(data).hexdigest()
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexCorruptError, match="corrupt"):
        BM25Index.load(tmp_path)
    assert zipfile.is_zipfile(tmp_path / name)


def test_a_load_racing_with_a_merge_retries_with_the_new_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = BM25Index(PARAMS)
    first.add(["a"], ["w1"])
    first.save(tmp_path)
    writer = BM25Index(PARAMS)
    writer.add(["b"], ["w2"])
    real = bm25_module._map_segment
    merged: list[str] = []

    def merge_meanwhile(path: Path, manifest: dict[str, Any], *, verify: bool) -> Any:
        if not merged:  # another process merges after this load read the manifest
            merged.append(manifest["log"])
            writer.save(tmp_path)  # removes the files the manifest read first names
        return real(path, manifest, verify=verify)

    monkeypatch.setattr(bm25_module, "_map_segment", merge_meanwhile)
    loaded = BM25Index.load(tmp_path)
    assert loaded.ids == ["b"]
    assert merged
    assert not (tmp_path / merged[0]).exists()
