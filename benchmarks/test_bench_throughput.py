"""Throughput under concurrency: one ``HybridRetriever`` queried from 1, 2, 4 and 8 threads.

``HybridRetriever.from_documents(..., k=10, fetch_k=50, cache=False)`` over the hybrid corpus
(``BENCH_HYBRID_DOCS``: 10k documents, 1k with ``--benchmark-disable``) with
:class:`corpus.HashingEmbeddings`. For each thread count, ``BENCH_THROUGHPUT_QUERIES`` queries
(2000; 200 with ``--benchmark-disable``) are split evenly between the threads (thread ``t``
takes queries ``t, t + threads, ...`` of the corpus's distinct queries, cycled), started
together on a barrier. Each setting is one pytest-benchmark round (``pedantic(rounds=1)``),
so the table's p50 column is the wall time of the whole run; ``extra_info`` has what matters:
``qps``, per-query ``latency_p50_ms``/``_p95_ms``/``_p99_ms``, and ``qps_vs_1_thread``.

Correctness: no call raises, every answer has ``k`` distinct documents, and every answer equals
the one the same query got before, alone on one thread (so concurrent searches do not mix up
their results).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from corpus import BenchSettings, Corpus, HashingEmbeddings

from langchain_hybrid.retrievers import HybridRetriever

GROUP = "throughput"
K = 10
FETCH_K = 50
THREADS = (1, 2, 4, 8)
QPS: dict[int, float] = {}  # thread count -> queries per second, filled as the group runs


@pytest.fixture(scope="module")
def retriever(hybrid_corpus: Corpus, embeddings: HashingEmbeddings) -> Iterator[HybridRetriever]:
    retriever = HybridRetriever.from_documents(
        hybrid_corpus.documents(),
        embedding=embeddings,
        collection_name=f"bench-tp-{uuid.uuid4().hex[:12]}",
        k=K,
        fetch_k=FETCH_K,
        cache=False,  # the query list repeats: measure searches, not result-cache hits
    )
    yield retriever
    retriever.store.client.delete_collection(retriever.store.config.chroma_collection)


@pytest.fixture(scope="module")
def reference(retriever: HybridRetriever, hybrid_corpus: Corpus) -> dict[str, list[str | None]]:
    """Each query's answer (document ids) alone on one thread; also warms everything up."""
    return {q: [d.id for d in retriever.invoke(q)] for q in hybrid_corpus.queries}


@dataclass
class Outcome:
    """What one concurrent run did: per-query answers and latencies, errors, wall time."""

    answers: list[tuple[str, list[str | None]]] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    wall_s: float = 0.0


def _run(retriever: HybridRetriever, queries: list[str], threads: int, total: int) -> Outcome:
    outcome = Outcome()
    lock = threading.Lock()
    barrier = threading.Barrier(threads + 1)

    def worker(first: int) -> None:
        answers, latencies, errors = [], [], []
        barrier.wait()
        for i in range(first, total, threads):
            query = queries[i % len(queries)]
            started = time.perf_counter()
            try:
                documents = retriever.invoke(query)
            except Exception as e:  # noqa: BLE001 - counted and asserted on afterwards
                errors.append(e)
                continue
            latencies.append(time.perf_counter() - started)
            answers.append((query, [d.id for d in documents]))
        with lock:
            outcome.answers.extend(answers)
            outcome.latencies.extend(latencies)
            outcome.errors.extend(errors)

    workers = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for thread in workers:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in workers:
        thread.join()
    outcome.wall_s = time.perf_counter() - started
    return outcome


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("threads", THREADS)
def test_throughput(
    benchmark: Any,
    settings: BenchSettings,
    retriever: HybridRetriever,
    reference: dict[str, list[str | None]],
    threads: int,
) -> None:
    total = int(os.environ.get("BENCH_THROUGHPUT_QUERIES") or (200 if settings.disabled else 2000))
    outcome: Outcome = benchmark.pedantic(
        _run,
        args=(retriever, list(reference), threads, total),
        rounds=1,
        warmup_rounds=0,
        iterations=1,
    )
    qps = total / outcome.wall_s
    QPS[threads] = qps
    latency_ms = np.percentile(np.asarray(outcome.latencies) * 1e3, (50, 95, 99))
    benchmark.extra_info.update(
        docs=len(retriever.bm25),
        role="baseline" if threads == 1 else "ours",
        threads=threads,
        queries=total,
        k=K,
        fetch_k=FETCH_K,
        wall_s=round(outcome.wall_s, 3),
        qps=round(qps, 1),
        latency_p50_ms=round(float(latency_ms[0]), 3),
        latency_p95_ms=round(float(latency_ms[1]), 3),
        latency_p99_ms=round(float(latency_ms[2]), 3),
    )
    if 1 in QPS:
        benchmark.extra_info["qps_vs_1_thread"] = round(qps / QPS[1], 3)
    assert not outcome.errors, outcome.errors[:3]
    assert len(outcome.answers) == len(outcome.latencies) == total
    for query, ids in outcome.answers:
        assert len(ids) == K == len(set(ids)), query
        assert ids == reference[query], f"concurrent answer differs for {query!r}"
