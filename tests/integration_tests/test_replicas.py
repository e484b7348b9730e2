"""Replicas over one real ``chroma run``: the change feed loses no update, in any interleaving.

* A stress run: ``REPLICAS`` (3) replica processes, each a :class:`HybridRetriever` on the same
  server collection, add, update (also count-neutral: new text and metadata for ids that exist)
  and delete documents concurrently, on a shared pool of ids so they overwrite each other's
  documents, and query while they write. At quiescence every replica's BM25 leg equals a BM25
  index rebuilt from scratch from Chroma (ids, text and metadata), and its answers carry the
  current text and metadata. ``REPLICA_OPS`` document operations in all (counted per document;
  CI: 1,200; ``make stress``: 12,000).
* The lost update of issue #14, made deterministic: B's count-neutral update runs inside A's
  batch, and A's completion writes the generation it read before B began (Chroma has no
  compare-and-swap), so generation and count say A is in sync while its BM25 leg holds B's old
  text. The feed brings B's text to A.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from conftest import ChromaServer
from helpers import HashEmbeddings, report

from langchain_hybrid import ChromaStore, HybridRetriever, StoreConfig
from langchain_hybrid.index import HybridIndex, rebuild_bm25
from langchain_hybrid.stores import GENERATION_KEY

TESTS = Path(__file__).resolve().parents[1]
REPLICAS = int(os.environ.get("REPLICA_COUNT", "3"))
OPS = int(os.environ.get("REPLICA_OPS", "1200"))
EMB = HashEmbeddings(32)

WORKER = r"""
import json, random, sys, time
sys.path.insert(0, sys.argv[1])
from helpers import HashEmbeddings
from langchain_core.documents import Document
from langchain_hybrid import ChromaStore, HybridRetriever, StoreConfig

port, collection, out = int(sys.argv[2]), sys.argv[3], sys.argv[6]
me, ops = int(sys.argv[4]), int(sys.argv[5])
rng = random.Random(1000 + me)  # noqa: S311 - seeded test data
WORDS = [f"w{i}" for i in range(300)]
POOL = [f"s{i}" for i in range(150)]  # shared by every replica: they overwrite each other
SCORES = {"hybrid_score", "bm25_rank", "bm25_score", "vector_rank", "vector_score"}
config = StoreConfig(mode="http", host="127.0.0.1", port=port, collection=collection)
store = ChromaStore(config)
retriever = HybridRetriever.from_store(
    store, HashEmbeddings(32), k=5, cache=False, refresh_interval_seconds=0.2
)
print("ready", flush=True)
sys.stdin.readline()
done = counts = 0
version = 0
stats = {"add": 0, "update": 0, "delete": 0}
while done < ops:
    kind = rng.choice(["add", "add", "update", "update", "delete"])
    n = min(ops - done, rng.randint(1, 24))
    if kind == "delete":
        ids = rng.sample(POOL, n)
        retriever.delete(ids)
    else:
        version += 1
        ids = rng.sample(POOL, n) if kind == "update" or rng.random() < 0.6 else [
            f"r{me}-{version}-{i}" for i in range(n)
        ]
        docs = [
            Document(
                id=i,
                page_content=f"tag{i.replace('-', '')} by{me} v{version} "
                + " ".join(rng.sample(WORDS, 5)),
                metadata={"by": me, "v": version, **({"odd": True} if version % 2 else {})},
            )
            for i in ids
        ]
        retriever.add_documents(docs)
    stats[kind] += len(ids)
    done += len(ids)
    if rng.random() < 0.2:
        retriever.invoke(" ".join(rng.sample(WORDS, 2)))
retriever.index.feed.flush()  # completion records are written in the background
print("done", json.dumps(stats), flush=True)
sys.stdin.readline()  # quiescence: every replica finished writing
for _ in range(20):
    retriever.refresh()
    status = retriever.index.status()
    if status.feed_unapplied == 0:
        break
    time.sleep(0.2)
bm25 = retriever.bm25
hits = {h.id: [h.text, h.metadata] for h in bm25.get(bm25.ids) if h is not None}
answers = {}
for doc_id in rng.sample(sorted(hits), min(20, len(hits))):
    found = retriever.invoke(f"tag{doc_id.replace('-', '')}")
    answers[doc_id] = [
        [d.id, d.page_content, {k: v for k, v in d.metadata.items() if k not in SCORES}]
        for d in found
    ]
status = retriever.index.status()
state = {
    "bm25": hits,
    "answers": answers,
    "unapplied": status.feed_unapplied,
    "foreign": status.foreign_writes,
}
with open(out, "w", encoding="utf-8") as f:
    json.dump(state, f)
print("dumped", flush=True)
"""


def _config(server: ChromaServer, collection: str) -> StoreConfig:
    return StoreConfig(mode="http", host="127.0.0.1", port=server.port, collection=collection)


def _truth(store: ChromaStore) -> dict[str, list[Any]]:
    rebuilt = rebuild_bm25(store)
    return {h.id: [h.text, h.metadata] for h in rebuilt.get(rebuilt.ids) if h is not None}


def _line(process: subprocess.Popen[str], expected: str, timeout: float = 120.0) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    line = process.stdout.readline()
    if not line.startswith(expected):
        _, err = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
        msg = f"replica said {line!r}, expected {expected!r}; stderr:\n{err[-3000:]}"
        raise AssertionError(msg)
    return line


def _send(process: subprocess.Popen[str]) -> None:
    assert process.stdin is not None
    process.stdin.write("\n")
    process.stdin.flush()


def test_replica_processes_converge_on_a_from_scratch_rebuild(
    chroma_server: ChromaServer, tmp_path: Path, collection_name: str
) -> None:
    seed_store = ChromaStore(_config(chroma_server, collection_name))
    seed = HybridIndex.open(seed_store)
    texts = [f"seed document {i} w{i}" for i in range(150)]
    seed.add([f"s{i}" for i in range(150)], texts, EMB.embed_documents(texts), [{"v": 0}] * 150)
    per_replica = -(-OPS // REPLICAS)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                str(TESTS),
                str(chroma_server.port),
                collection_name,
                str(me),
                str(per_replica),
                str(tmp_path / f"replica-{me}.json"),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for me in range(REPLICAS)
    ]
    launched = time.monotonic()
    try:
        for process in processes:
            _line(process, "ready")
        started = time.monotonic()
        for process in processes:  # all start writing at once
            _send(process)
        stats = [json.loads(_line(p, "done", 600).split(" ", 1)[1]) for p in processes]
        elapsed = time.monotonic() - started
        for process in processes:
            _send(process)
        for process in processes:
            _line(process, "dumped")
            assert process.wait(timeout=60) == 0
        quiesced = time.monotonic() - started - elapsed
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.communicate()
    operations = sum(sum(s.values()) for s in stats)
    assert operations >= OPS
    assert all(s["update"] and s["delete"] and s["add"] for s in stats)
    truth = _truth(seed_store)
    assert len(truth) == seed_store.count()
    divergences = 0
    for me in range(REPLICAS):
        state = json.loads((tmp_path / f"replica-{me}.json").read_text(encoding="utf-8"))
        assert state["unapplied"] == 0
        assert state["foreign"] == 0  # no write bypassed the package: no false alarm either
        wrong = {
            i for i in truth.keys() | state["bm25"].keys() if truth.get(i) != state["bm25"].get(i)
        }
        divergences += len(wrong)
        assert not wrong, (
            f"replica {me}: {len(wrong)} ids differ from Chroma, e.g. {sorted(wrong)[:5]}"
        )
        for doc_id, found in state["answers"].items():
            assert found, f"replica {me}: no answer for {doc_id}"
            for hit_id, text, metadata in found:
                assert [text, metadata] == truth[hit_id], f"replica {me}: stale answer {hit_id}"
    report(
        f"replicas: {REPLICAS} processes x {operations // REPLICAS} document operations "
        f"({operations} in all: {sum(s['add'] for s in stats)} adds, "
        f"{sum(s['update'] for s in stats)} updates, {sum(s['delete'] for s in stats)} deletes) "
        f"in {elapsed:.1f} s on chroma run (processes ready in {started - launched:.1f} s, "
        f"caught up and checked in {quiesced:.1f} s); divergences from a rebuild at "
        f"quiescence: {divergences}"
    )


def test_the_lost_update_interleaving_over_a_real_server(
    chroma_server: ChromaServer, collection_name: str
) -> None:
    config = _config(chroma_server, collection_name)
    a = HybridIndex.open(ChromaStore(config))
    b = HybridIndex.open(ChromaStore(config))
    assert a.feed is not None
    assert b.feed is not None
    a.add(["x", "y"], ["old text of x", "y text"], EMB.embed_documents(["x", "y"]), [{"v": 1}] * 2)
    assert a.feed.flush()  # A's completion record is written in the background
    assert b.refresh()
    ids = [f"n{i}" for i in range(50)]
    texts = [f"batch document {i}" for i in range(50)]
    write_a = a._begin(ids)  # A's large batch begins
    a.store.upsert(ids, texts, EMB.embed_documents(texts), [None] * len(ids))
    stale = a.store.metadata_generation()  # A's completion reads the generation now ...
    b.add(["x"], ["new text of x"], EMB.embed_documents(["new text of x"]), [{"v": 2}])
    assert b.feed.flush()
    a.bm25.add(ids, texts, [None] * len(ids))
    assert write_a.record is not None
    a.feed.done(write_a.record, ids, wait=True)
    collection = a.store.collection  # ... and writes it after B's whole write: B's bump is lost
    metadata = dict(a.store.client.get_collection(collection.name).metadata or {})
    metadata[GENERATION_KEY] = stale + 1
    collection.modify(metadata=metadata)
    a.bm25.generation = stale + 1
    # what the generation protocol alone saw: A in sync, holding B's old text
    assert (a.write_generation(), a.store.count()) == (a.bm25.generation, len(a.bm25))
    assert a.bm25.get(["x"])[0] is not None
    assert a.bm25.get(["x"])[0].text == "old text of x"  # type: ignore[union-attr]
    assert a.refresh()  # the feed names x: A re-reads it
    truth = _truth(a.store)
    assert truth["x"] == ["new text of x", {"v": 2}]
    for index in (a, b):
        index.refresh()
        assert {h.id: [h.text, h.metadata] for h in index.bm25.get(index.bm25.ids) if h} == truth


def test_a_replicas_lag_is_in_health_and_the_prometheus_export(
    chroma_server: ChromaServer, collection_name: str
) -> None:
    from prometheus_client import CollectorRegistry, generate_latest  # noqa: PLC0415

    from langchain_hybrid import HealthMonitor, RetrievalMetricsHandler  # noqa: PLC0415
    from langchain_hybrid.exporters import to_prometheus  # noqa: PLC0415

    config = _config(chroma_server, collection_name)
    a = HybridIndex.open(ChromaStore(config))
    b = HybridRetriever.from_store(
        ChromaStore(config), EMB, cache=False, refresh_interval_seconds=None
    )
    monitor = HealthMonitor(b, RetrievalMetricsHandler(), stuck_write_seconds=3600)
    registry = CollectorRegistry()
    to_prometheus(RetrievalMetricsHandler(), registry, monitor=monitor)
    for doc_id in ("p", "q"):
        a.add([doc_id], [f"text {doc_id}"], EMB.embed_documents([doc_id]), [None])
    assert a.feed is not None
    assert a.feed.flush()
    checks = {c.name: c for c in monitor.health_check().checks}
    assert checks["replica_feed"].value == 2
    assert checks["replica_feed"].status == "healthy"  # behind, but not for long
    assert "keeps the count is not seen" in checks["replica_feed"].detail
    assert isinstance(checks["replica_lag"].value, float)
    assert checks["replica_lag"].value > 0
    exported = generate_latest(registry).decode()
    assert "langchain_hybrid_replica_feed_unapplied_records 2.0" in exported
    assert "langchain_hybrid_replica_seconds_since_caught_up" in exported
    assert b.refresh()
    checks = {c.name: c for c in monitor.health_check().checks}
    assert (checks["replica_feed"].value, checks["replica_lag"].value) == (0, 0.0)
    assert sorted(b.bm25.ids) == ["p", "q"]
    strict = HealthMonitor(b, None, stuck_write_seconds=0.0)
    a.add(["r"], ["text r"], EMB.embed_documents(["r"]), [None])
    time.sleep(0.05)
    assert {c.name: c.status for c in strict.health_check().checks}["replica_lag"] == "degraded"


def test_a_write_under_way_elsewhere_is_looked_for_again_sooner(
    chroma_server: ChromaServer, collection_name: str
) -> None:
    """A refresh that sees another replica's intent without its completion checks again within
    0.25 s, not after the whole ``refresh_interval_seconds``; then the write is in BM25."""
    config = _config(chroma_server, collection_name)
    a = HybridIndex.open(ChromaStore(config))
    b = HybridRetriever.from_store(ChromaStore(config), EMB, cache=False)  # interval 5 s
    assert a.feed is not None
    record = a.feed.intent(["u"])  # a's write has begun: its data write is on the way
    a.store.upsert(["u"], ["under way"], EMB.embed_documents(["under way"]), [None])
    b.refresh()
    assert b.index.writes_under_way()
    assert b._next_refresh - time.monotonic() <= 0.25
    assert "u" not in b.bm25.ids  # not applied before its completion (or its timeout)
    a.bm25.add(["u"], ["under way"], [None])
    a.feed.done(record, ["u"], wait=True)
    b.refresh()
    assert not b.index.writes_under_way()
    assert b._next_refresh - time.monotonic() > 4.0
    assert [d.id for d in b.invoke("under way", k=1)] == ["u"]
