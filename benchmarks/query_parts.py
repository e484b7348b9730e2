"""Where a hybrid query's time goes: each part timed inside the query, beside the bare vector leg.

Usage::

    .venv/bin/python benchmarks/query_parts.py --docs 10000 --queries 800

Builds a persistent index of ``--docs`` generated documents (64-d hashing embedding, the
writes benchmark's corpus and build) in a temporary directory, then runs, query by query in
turn, the hybrid ``invoke`` (k=10, fetch_k=50), the vector leg as the hybrid runs it (embed,
ids and distances from Chroma) and the retriever answering from its vector leg alone
(``weights=[0, 1]``). Inside the hybrid query it times (by wrapping the retriever's own steps,
a diagnostic only) the time before the legs start (LangChain's ``invoke`` and the parameter
checks), the wait for the vector leg's thread to start, each leg, the wait for the caller to
wake once the last leg is done, fusion, reading the texts and building the documents. Prints
the p50 of each, and of each part's duration, in milliseconds. The figures of README
"Latency" (hybrid against its vector leg) come from this script and the writes benchmark.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from corpus import HashingEmbeddings, generate_corpus

import langchain_hybrid.retrievers as retrievers_module
from langchain_hybrid import HybridRetriever
from langchain_hybrid.fusion import FUSION_METHODS

DIM = 64
WARMUP = 100


def _timed(marks: dict[str, float], start: str, end: str, fn: Callable[..., Any]) -> Any:
    """``fn`` wrapped to record ``perf_counter`` before and after each call under two names."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        marks[start] = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            marks[end] = time.perf_counter()

    return wrapper


def _print(line: str) -> None:
    sys.stdout.write(line + "\n")


def main() -> None:
    """Build the index, run the queries, print the parts."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=800)
    args = parser.parse_args()
    corpus = generate_corpus(args.docs, seed=11)
    embeddings = HashingEmbeddings(dim=DIM)
    with tempfile.TemporaryDirectory() as directory:
        built = HybridRetriever.from_documents(
            [], embedding=embeddings, persist_directory=directory, collection_name="kb", cache=False
        )
        built.add_documents(corpus.documents(), batch_size=5000)
        built.store.client.close()
        retriever = HybridRetriever.load(
            Path(directory),
            collection_name="kb",
            embedding=embeddings,
            cache=False,
            refresh_interval_seconds=None,
        )
        rows = _run(retriever, embeddings, corpus.queries, args.queries)
    parts = {
        "before the legs (invoke, parameters)": ("start", "legs0"),
        "vector leg's thread starting": ("legs0", "vector0"),
        "vector leg": ("vector0", "vector1"),
        "BM25 leg": ("bm25_0", "bm25_1"),
        "caller waking after the last leg": ("last_leg", "legs1"),
        "fusion": ("fusion0", "fusion1"),
        "reading the texts": ("texts0", "texts1"),
        "documents and the rest": ("texts1", "end"),
    }
    for name, (a, b) in parts.items():
        _print(f"{name:<40}{statistics.median([r[b] - r[a] for r in rows]) * 1e3:8.3f} ms")
    for name in ("hybrid", "vector leg alone", "vector-only retriever"):
        p50 = statistics.median([r[name] for r in rows]) * 1e3
        _print(f"{name:<40}{p50:8.3f} ms")
    vector = statistics.median([r["vector leg alone"] for r in rows])
    _print(f"hybrid / vector leg {statistics.median([r['hybrid'] for r in rows]) / vector:.2f}x")


def _run(
    retriever: HybridRetriever, embeddings: HashingEmbeddings, queries: list[str], n: int
) -> list[dict[str, float]]:
    marks: dict[str, float] = {}
    cls = HybridRetriever
    patched = {
        "_run_legs": ("legs0", "legs1"),
        "_found": ("texts0", "texts1"),
    }
    originals = {name: getattr(cls, name) for name in patched}
    for name, (a, b) in patched.items():
        setattr(cls, name, _timed(marks, a, b, originals[name]))
    fusion = FUSION_METHODS["zscore"]  # the retriever's dict: the same object
    FUSION_METHODS["zscore"] = _timed(marks, "fusion0", "fusion1", fusion)
    started = retrievers_module._started  # a diagnostic of the query's steps
    retrievers_module._started = _timed(marks, "vector0", "vector1", started)
    bm25_rank = retriever.bm25.rank
    retriever.bm25.__dict__["rank"] = _timed(marks, "bm25_0", "bm25_1", bm25_rank)
    rows = []
    try:
        for i in range(n + WARMUP):
            query = queries[i % len(queries)]
            marks.clear()
            marks["start"] = time.perf_counter()
            retriever.invoke(query, k=10)
            marks["end"] = time.perf_counter()
            marks["last_leg"] = max(marks["vector1"], marks["bm25_1"])
            row = dict(marks)
            row["hybrid"] = row["end"] - row["start"]
            begin = time.perf_counter()
            retriever.store.query(
                embeddings.embed_query(query), retriever.fetch_k, None, include_documents=False
            )
            row["vector leg alone"] = time.perf_counter() - begin
            begin = time.perf_counter()
            retriever.invoke(query, k=10, weights=[0.0, 1.0])
            row["vector-only retriever"] = time.perf_counter() - begin
            if i >= WARMUP:
                rows.append(row)
    finally:
        for name, fn in originals.items():
            setattr(cls, name, fn)
        FUSION_METHODS["zscore"] = fusion
        retrievers_module._started = started
        del retriever.bm25.__dict__["rank"]
    return rows


if __name__ == "__main__":
    main()
