"""Cost growth of writes, open and memory: ours against raw Chroma (and bm25s), per size.

For each size in ``BENCH_WRITE_SIZES`` (``make bench``: 10,000 and 100,000; ``make
bench-scale``: 1,000,000; 2,000 with ``--benchmark-disable``) a persistent collection is built
through :class:`HybridRetriever` (seeded corpus, 64-d hashing embedding: the model is out of
every figure), then, all in the same run:

* **writes**: rounds of one-document add and delete through the retriever, each paired with the
  same write (same id scheme, text and vector) straight into the same Chroma collection, and
  with the BM25 part alone (``BM25Index.add``/``delete`` + ``save`` on a copy of the saved
  index): p50 of each and the ratios (issue 11 target: retriever <= 2x Chroma);
* **open**: a new process opens the index and answers one query (``HybridRetriever.load`` +
  ``invoke``) against a new process opening the Chroma collection and answering one vector
  query, page cache warm (a warm-up run of each first; median of the timed runs; target 2x);
* **memory**: peak RSS of a process serving 200 queries (ours: hybrid ``invoke`` and the BM25
  leg) against raw Chroma serving the same vector queries plus bm25s (its own tokenizer)
  indexing the same texts and serving the same queries (target 1.3x of the sum), and the query
  p50 of our BM25 leg against bm25s's ``retrieve`` measured in those processes (target 1.5x);
* **query**: in the serving process, query by query in turn, the hybrid ``invoke`` (k=10), the
  vector leg as the hybrid runs it (embed, ids and distances from Chroma) and the retriever
  answering from its vector leg alone (``weights=[0, 1]``): p50 and ratios to the vector leg
  (target: hybrid <= 1.2x);
* **merge**: p50/p99 of BM25 queries while a merge rewrites the segment in another thread,
  against the same queries without a merge.

Everything goes into the benchmark's ``extra_info["writes"]``; ``report.py`` prints one table
with a row per size, so cost growth is visible. With ``--benchmark-disable`` (CI) each figure is
taken once on 2,000 documents and only correctness is asserted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from corpus import BenchSettings, Corpus, HashingEmbeddings, generate_corpus
from langchain_core.documents import Document

from langchain_hybrid import HybridRetriever
from langchain_hybrid.bm25 import BM25Index

BENCH_DIR = Path(__file__).resolve().parent
DIM = 64
K = 10
COLLECTION = "kb"
BUILD_BATCH = 5000
TARGETS = {"add": 2.0, "delete": 2.0, "open": 2.0, "rss": 1.3, "bm25_query": 1.5}


def _sizes(config: pytest.Config) -> list[int]:
    raw = os.environ.get("BENCH_WRITE_SIZES")
    if raw:
        return [int(s) for s in raw.split(",") if s.strip()]
    disabled = bool(config.getoption("benchmark_disable", default=False))
    return [2_000] if disabled else [10_000, 100_000]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "write_size" in metafunc.fixturenames:
        sizes = _sizes(metafunc.config)
        metafunc.parametrize("write_size", sizes, ids=[f"{n}docs" for n in sizes], scope="module")


@dataclass
class Built:
    corpus: Corpus
    directory: Path
    retriever: HybridRetriever
    embeddings: HashingEmbeddings
    seconds: float


@pytest.fixture(scope="module")
def built(write_size: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    corpus = generate_corpus(write_size, seed=11)
    embeddings = HashingEmbeddings(dim=DIM)
    directory = tmp_path_factory.mktemp(f"writes{write_size}")
    start = time.perf_counter()
    retriever = HybridRetriever.from_documents(
        [],
        embedding=embeddings,
        persist_directory=directory,
        collection_name=COLLECTION,
        cache=False,
        refresh_interval_seconds=None,
    )
    # the ingest pipeline in batches of BUILD_BATCH: each batch is one write (generation
    # protocol, Chroma upsert, BM25 log append); 1M documents are 200 writes, not 7,800
    retriever.add_documents(corpus.documents(), batch_size=BUILD_BATCH)
    built = Built(corpus, directory, retriever, embeddings, time.perf_counter() - start)
    yield built
    retriever.store.client.close()


def _p50(values: list[float]) -> float:
    return float(np.percentile(values, 50)) * 1e3


def _time(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# ---------------------------------------------------------------------- child processes
OURS_CHILD = r"""
import json, sys, time
args = json.loads(sys.stdin.read())
def peak_rss_kb():  # VmHWM: this process's own peak (ru_maxrss counts the forking parent's)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
import chromadb  # imported before the clock starts, as in the Chroma process
from corpus import HashingEmbeddings
from langchain_hybrid import HybridRetriever
embeddings = HashingEmbeddings(dim=args["dim"])
start = time.perf_counter()
r = HybridRetriever.load(args["directory"], collection_name=args["collection"],
                         embedding=embeddings, cache=False, refresh_interval_seconds=None)
if args["hydrate"] == "chroma":  # the alternative measured: the final k's texts from Chroma
    r.bm25.get = lambda ids: [None] * len(list(ids))
first = [d.id for d in r.invoke(args["queries"][0], k=args["k"])]
opened = time.perf_counter() - start
leg = []
for q in args["queries"]:
    t = time.perf_counter(); r.bm25.search(q, args["k"]); leg.append(time.perf_counter() - t)
hybrid, vector, vector_only, answers = [], [], [], []
for q in args["queries"]:  # interleaved: the hybrid answer, the vector leg, the vector-only answer
    t = time.perf_counter(); docs = r.invoke(q, k=args["k"]); hybrid.append(time.perf_counter() - t)
    answers.append([[d.id, d.page_content] for d in docs])
    t = time.perf_counter()  # the vector leg as the hybrid runs it: embed, ids and distances
    r.store.query(embeddings.embed_query(q), r.fetch_k, None, include_documents=False)
    vector.append(time.perf_counter() - t)
    t = time.perf_counter()  # the retriever answering from the vector leg alone (no BM25 leg)
    r.invoke(q, k=args["k"], weights=[0.0, 1.0])
    vector_only.append(time.perf_counter() - t)
top = [h.id for h in r.bm25.search(args["queries"][1], args["k"])]
print(json.dumps({"open_s": opened, "first": first, "bm25_top": top, "leg_s": leg,
                  "hybrid_s": hybrid, "vector_s": vector, "vector_only_s": vector_only,
                  "answers": answers,
                  "rss_kb": peak_rss_kb()}))
"""

CHROMA_CHILD = r"""
import json, sys, time
args = json.loads(sys.stdin.read())
def peak_rss_kb():  # VmHWM: this process's own peak (ru_maxrss counts the forking parent's)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
import chromadb
start = time.perf_counter()
client = chromadb.PersistentClient(path=args["directory"])
collection = client.get_collection(args["chroma_collection"])
first = collection.query(query_embeddings=[args["vectors"][0]], n_results=args["k"])["ids"][0]
opened = time.perf_counter() - start
for v in args["vectors"]:
    collection.query(query_embeddings=[v], n_results=args["k"])
print(json.dumps({"open_s": opened, "first": first,
                  "rss_kb": peak_rss_kb()}))
"""

BM25S_CHILD = r"""
import json, sys, time
args = json.loads(sys.stdin.read())
def peak_rss_kb():  # VmHWM: this process's own peak (ru_maxrss counts the forking parent's)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
import bm25s
from corpus import generate_corpus
corpus = generate_corpus(args["docs"], seed=args["seed"])
engine = bm25s.BM25(method="lucene", k1=0.9, b=0.4, backend="numpy")
engine.index(bm25s.tokenize(corpus.texts, stopwords="en", show_progress=False), show_progress=False)
times = []
for q in args["queries"]:
    t = time.perf_counter()
    tokens = bm25s.tokenize([q], stopwords="en", show_progress=False)
    engine.retrieve(tokens, k=args["k"], show_progress=False, n_threads=0)
    times.append(time.perf_counter() - t)
print(json.dumps({"query_s": times, "rss_kb": peak_rss_kb()}))
"""


def _child(script: str, args: dict[str, Any]) -> dict[str, Any]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(BENCH_DIR), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", script],
        input=json.dumps(args),
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=BENCH_DIR,
        timeout=3600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# ---------------------------------------------------------------------- the benchmark
@pytest.mark.benchmark(group="writes")
def test_write_open_memory_costs(
    benchmark: Any, settings: BenchSettings, built: Built, write_size: int, tmp_path: Path
) -> None:
    r, corpus = built.retriever, built.corpus
    rounds = 1 if settings.disabled else int(os.environ.get("BENCH_WRITE_ROUNDS", "30"))
    collection = r.store.collection
    bm25_path = r.bm25_path
    assert bm25_path is not None
    copy_path = tmp_path / "bm25-copy"
    shutil.copytree(bm25_path, copy_path)
    alone = BM25Index.load(copy_path)
    texts = corpus.texts
    times: dict[str, list[float]] = {
        k: [] for k in ("add", "delete", "chroma_add", "chroma_delete", "bm25_add", "bm25_delete")
    }
    counter = iter(range(10**9))

    def one_round() -> None:
        i = next(counter)
        text = texts[i % len(texts)]
        vector = built.embeddings.embed_documents([text])[0]
        ours_id, raw_id, bm25_id = f"w-{i}", f"c-{i}", f"b-{i}"
        times["add"].append(
            _time(
                lambda: r.add_documents(
                    [Document(page_content=text, metadata={"n": i})], ids=[ours_id]
                )
            )
        )
        times["chroma_add"].append(
            _time(
                lambda: collection.upsert(
                    ids=[raw_id], embeddings=[vector], documents=[text], metadatas=[{"n": i}]
                )
            )
        )
        times["bm25_add"].append(
            _time(lambda: (alone.add([bm25_id], [text], [{"n": i}]), alone.save(copy_path)))
        )
        times["delete"].append(_time(lambda: r.delete([ours_id])))
        times["chroma_delete"].append(_time(lambda: collection.delete(ids=[raw_id])))
        times["bm25_delete"].append(_time(lambda: (alone.delete([bm25_id]), alone.save(copy_path))))

    benchmark.pedantic(
        one_round, rounds=rounds, warmup_rounds=0 if settings.disabled else 2, iterations=1
    )
    # correctness: every write came and went in both legs, and the saved files agree
    assert len(r.bm25) == r.store.count() == write_size
    assert BM25Index.read_manifest(bm25_path)["documents"] == write_size
    assert BM25Index.read_manifest(copy_path)["documents"] == write_size
    assert BM25Index.read_manifest(bm25_path)["generation"] == r.bm25.generation

    figures: dict[str, Any] = {
        "docs": write_size,
        "rounds": rounds,
        "build_s": round(built.seconds, 1),
    }
    for what, values in times.items():
        figures[f"{what}_ms"] = round(_p50(values), 2)
    for what in ("add", "delete"):
        figures[f"{what}_ratio"] = round(figures[f"{what}_ms"] / figures[f"chroma_{what}_ms"], 2)
        figures[f"{what}_bm25_share"] = round(figures[f"bm25_{what}_ms"] / figures[f"{what}_ms"], 2)

    figures.update(_open_and_memory(built, write_size, settings))
    figures.update(_merge_latency(copy_path, corpus, settings))
    benchmark.extra_info.update(docs=write_size, role="ours", writes=figures)


def _open_and_memory(built: Built, n_docs: int, settings: BenchSettings) -> dict[str, Any]:
    r, corpus = built.retriever, built.corpus
    queries = corpus.queries[: 50 if settings.disabled else 200]
    common = {"directory": str(built.directory), "k": K, "queries": queries}
    ours_args = {**common, "dim": DIM, "collection": COLLECTION, "hydrate": "bm25"}
    chroma_args = {
        **common,
        "chroma_collection": r.store.config.chroma_collection,
        "vectors": [built.embeddings.embed_query(q) for q in queries],
    }
    runs = 1 if settings.disabled else 3
    if not settings.disabled:  # warm the page cache for both
        _child(OURS_CHILD, ours_args)
        _child(CHROMA_CHILD, chroma_args)
    ours: list[dict[str, Any]] = []
    chroma: list[dict[str, Any]] = []
    for _ in range(runs):  # interleaved, so load on the machine hits both alike
        ours.append(_child(OURS_CHILD, ours_args))
        chroma.append(_child(CHROMA_CHILD, chroma_args))
    from_chroma = _child(OURS_CHILD, {**ours_args, "hydrate": "chroma"})
    bm25s_run = _child(
        BM25S_CHILD, {"docs": n_docs, "seed": corpus.seed, "queries": queries, "k": K}
    )
    # correctness: the new process serves what this one does
    assert ours[-1]["bm25_top"] == [h.id for h in r.bm25.search(queries[1], K)]
    assert len(ours[-1]["first"]) == K
    assert len(chroma[-1]["first"]) == K
    # texts from the BM25 files or from Chroma: every answer whole, every document with its
    # own text (the order is not compared: two processes' HNSW searches may differ slightly
    # in their distances, which swaps near-tied documents; the source of texts cannot)
    stored = dict(zip(corpus.ids, corpus.texts, strict=True))
    for run in (ours[-1], from_chroma):
        assert all(len(a) == K for a in run["answers"])
        wrong = [(i, t) for a in run["answers"] for i, t in a if stored.get(i) != t]
        assert not wrong, wrong[:3]
    open_ours = float(np.median([o["open_s"] for o in ours])) * 1e3
    open_chroma = float(np.median([c["open_s"] for c in chroma])) * 1e3
    rss_ours = ours[-1]["rss_kb"] / 1024
    rss_chroma, rss_bm25s = chroma[-1]["rss_kb"] / 1024, bm25s_run["rss_kb"] / 1024
    leg, ref = _p50(ours[-1]["leg_s"]), _p50(bm25s_run["query_s"])
    return {
        "open_ms": round(open_ours, 1),
        "chroma_open_ms": round(open_chroma, 1),
        "open_ratio": round(open_ours / open_chroma, 2),
        "rss_mb": round(rss_ours, 1),
        "chroma_rss_mb": round(rss_chroma, 1),
        "bm25s_rss_mb": round(rss_bm25s, 1),
        "rss_ratio": round(rss_ours / (rss_chroma + rss_bm25s), 2),
        "bm25_query_ms": round(leg, 3),
        "bm25s_query_ms": round(ref, 3),
        "bm25_query_ratio": round(leg / ref, 2),
        # the hybrid answer (texts of the final k from the BM25 files) against the vector leg
        # alone (ids and distances from Chroma), and the same with the texts from Chroma
        "hybrid_query_ms": round(_p50(ours[-1]["hybrid_s"]), 3),
        "vector_leg_ms": round(_p50(ours[-1]["vector_s"]), 3),
        "hybrid_ratio": round(_p50(ours[-1]["hybrid_s"]) / _p50(ours[-1]["vector_s"]), 2),
        # what invoke, fusion and hydration add to the vector leg with no BM25 leg beside it
        "vector_only_ms": round(_p50(ours[-1]["vector_only_s"]), 3),
        "vector_only_ratio": round(_p50(ours[-1]["vector_only_s"]) / _p50(ours[-1]["vector_s"]), 2),
        "hybrid_chroma_texts_ms": round(_p50(from_chroma["hybrid_s"]), 3),
        "hybrid_chroma_texts_ratio": round(
            _p50(from_chroma["hybrid_s"]) / _p50(from_chroma["vector_s"]), 2
        ),
        "rss_chroma_texts_mb": round(from_chroma["rss_kb"] / 1024, 1),
    }


def _merge_latency(path: Path, corpus: Corpus, settings: BenchSettings) -> dict[str, Any]:
    index = BM25Index.load(path)
    queries = corpus.queries
    expected = {q: index.search(q, K) for q in queries}
    quiet = [
        _time(lambda q=q: index.search(q, K)) for q in queries * (1 if settings.disabled else 3)
    ]
    during: list[float] = []
    merge_s: list[float] = []

    def merge() -> None:
        index._journal = None  # the next save merges (as past the threshold)
        merge_s.append(_time(lambda: index.save(path)))

    thread = threading.Thread(target=merge)
    thread.start()
    i = 0
    while thread.is_alive() or not during:
        q = queries[i % len(queries)]
        start = time.perf_counter()
        hits = index.search(q, K)
        during.append(time.perf_counter() - start)
        assert hits == expected[q]
        i += 1
    thread.join()
    assert "log_records" in BM25Index.read_manifest(path)
    assert BM25Index.load(path).search(queries[0], K) == expected[queries[0]]
    return {
        "merge_s": round(merge_s[0], 2),
        "queries_during_merge": len(during),
        "query_p50_ms": round(_p50(quiet), 3),
        "query_p99_ms": round(float(np.percentile(quiet, 99)) * 1e3, 3),
        "merge_query_p50_ms": round(_p50(during), 3),
        "merge_query_p99_ms": round(float(np.percentile(during, 99)) * 1e3, 3),
    }
