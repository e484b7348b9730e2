"""Soak: minutes of mixed traffic on one retriever; bounded caches, flat memory, no errors.

One persistent retriever (2,000 generated documents, :class:`corpus.HashingEmbeddings`, result
and query-embedding caches limited to ``SOAK_CACHE_ENTRIES``, default 200, 40 in CI) takes a
seeded random mix, from one thread, of:

* phases of queries (sync ``invoke``, and ``ainvoke`` on one event loop), three times as many
  as the cache holds and most of them distinct, so both caches fill and evict (a few come from a
  hot set, so there are hits too), each phase followed by
* a burst of writes (every write clears the result cache): adds of new documents, each checked
  to be found right away by its unique marker word, and deletes of earlier additions, each
  checked to be gone right away.

Every call carries a :class:`RetrievalMetricsHandler` (``window`` = the cache limit,
``max_series`` = ``MAX_SERIES``) in its callbacks config, with a run name per call from
``TENANTS`` names (more than ``MAX_SERIES``, as when run names carry user data), so its windows
fill, its series overflow into ``"<other>"``, and its bounds are exercised too.

Every ``SOAK_SAMPLE_SECONDS`` it samples the resident set size (``/proc/self/statm``), both cache
sizes, the BM25 size, the Chroma count, and the handler's in-flight runs, largest window and
number of series. Asserted: no errors; both caches never above their limit; Chroma count == BM25
size == the expected number; the handler never holds more than ``window`` records in a series,
more than ``MAX_SERIES`` names (plus ``"<other>"``) or any run in flight between calls, counts
every call, and records no error; and, after a warm-up (the first fifth), the median RSS of the
last third of the samples within 25 % + 64 MiB of the first third's.

Duration: ``SOAK_SECONDS`` (default 180 when timing, 5 with ``--benchmark-disable`` as in CI,
where the memory bound is loosened to 256 MiB: five seconds is mostly warm-up). The figures go to
the benchmark's ``extra_info`` and are printed.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from corpus import BenchSettings, HashingEmbeddings, generate_corpus
from langchain_core.documents import Document
from langchain_core.runnables import RunnableConfig

from langchain_hybrid import HybridRetriever
from langchain_hybrid.cache import CachedEmbeddings
from langchain_hybrid.config import CacheSettings
from langchain_hybrid.metrics import OTHER, RetrievalMetricsHandler

GROUP = "soak"
DOCS = 2_000
K = 10
CACHE_ENTRIES = os.environ.get("SOAK_CACHE_ENTRIES")
SAMPLE_SECONDS = float(os.environ.get("SOAK_SAMPLE_SECONDS", "0.5"))
PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1 << 20
TENANTS = 24  # distinct run names of queries
MAX_SERIES = 8  # the handler's bound on them: the rest share "<other>"
FRESHNESS = "freshness"  # the run name of the look-ups checking a write


def rss_bytes() -> int:
    """Resident set size of this process (second field of /proc/self/statm, in pages)."""
    with Path("/proc/self/statm").open(encoding="ascii") as f:
        return int(f.read().split()[1]) * PAGE


def cache_entries(settings: BenchSettings) -> int:
    if CACHE_ENTRIES:
        return int(CACHE_ENTRIES)
    return 40 if settings.disabled else 200


def soak_seconds(settings: BenchSettings) -> float:
    configured = os.environ.get("SOAK_SECONDS")
    if configured:
        return float(configured)
    return 5.0 if settings.disabled else 180.0


class Soak:
    """The load generator and its bookkeeping."""

    def __init__(
        self,
        retriever: HybridRetriever,
        vocabulary: list[str],
        seed: int,
        limit: int,
        metrics: RetrievalMetricsHandler,
    ) -> None:
        self.r = retriever
        self.limit = limit
        self.metrics = metrics
        self.calls = 0  # retriever calls made, each one a retrieval for the handler
        self.phase_queries = 0
        self.rng = random.Random(seed)
        self.vocabulary = vocabulary
        self.hot = [self.query() for _ in range(20)]
        self.added: list[str] = []
        self.live = len(retriever.bm25)
        self.ops = {"invoke": 0, "ainvoke": 0, "add": 0, "delete": 0}
        self.errors: list[str] = []
        self.samples: list[dict[str, float]] = []
        self.loop = asyncio.new_event_loop()
        self.serial = 0

    def query(self) -> str:
        return " ".join(self.rng.sample(self.vocabulary, self.rng.randint(2, 4)))

    def config(self, run_name: str | None = None) -> RunnableConfig:
        """The callbacks config of the next call (a tenant's run name unless given)."""
        self.calls += 1
        name = run_name or f"tenant-{self.calls % TENANTS}"
        return {"callbacks": [self.metrics], "run_name": name}

    def step(self) -> None:
        """Queries until the caches have filled and evicted, then a burst of writes."""
        if self.phase_queries >= 3 * self.limit:
            for _ in range(self.rng.randint(3, 8)):
                if self.added and self.rng.random() < 0.4:
                    self.delete()
                else:
                    self.add()
            self.phase_queries = 0
            return
        self.phase_queries += 1
        roll = self.rng.random()
        text = self.rng.choice(self.hot) if roll > 0.9 else self.query()
        if roll < 0.3:
            docs = self.loop.run_until_complete(self.r.ainvoke(text, self.config(), k=K))
            self.ops["ainvoke"] += 1
        else:
            docs = self.r.invoke(text, self.config(), k=K)
            self.ops["invoke"] += 1
        if len(docs) > K or any("degraded" in d.metadata for d in docs):
            self.errors.append(f"bad answer to {text!r}: {len(docs)} documents")

    def add(self) -> None:
        batch = []
        for _ in range(self.rng.randint(1, 5)):
            self.serial += 1
            marker = f"soakmarker{self.serial}"
            batch.append(
                Document(id=f"soak-{self.serial}", page_content=f"{marker} {self.query()}")
            )
        self.r.add_documents(batch)
        self.added.extend(str(d.id) for d in batch)
        self.live += len(batch)
        self.ops["add"] += 1
        last = batch[-1]
        found = self.r.invoke(last.page_content.split()[0], self.config(FRESHNESS), k=K)
        if last.id not in {d.id for d in found}:
            self.errors.append(f"added {last.id} not found")

    def delete(self) -> None:
        doc_id = self.added.pop(self.rng.randrange(len(self.added)))
        self.r.delete([doc_id])
        self.live -= 1
        self.ops["delete"] += 1
        marker = f"soakmarker{doc_id.split('-')[1]}"
        if doc_id in {d.id for d in self.r.invoke(marker, self.config(FRESHNESS), k=K)}:
            self.errors.append(f"deleted {doc_id} still found")

    def sample(self, elapsed: float) -> None:
        embedding = self.r.embedding
        assert isinstance(embedding, CachedEmbeddings)
        assert self.r.cache is not None
        results, vectors = self.r.cache.stats(), embedding.cache_stats()
        metrics = self.metrics.snapshot()
        series = [
            part
            for retrieval in metrics["retrievers"].values()
            for part in (retrieval, *retrieval["legs"].values())
        ]
        self.samples.append(
            {
                "t": elapsed,
                "rss_mib": rss_bytes() / MIB,
                "result_entries": results["entries"],
                "result_evictions": results["evictions"],
                "result_hit_rate": results["hit_rate"],
                "vector_entries": vectors["entries"],
                "vector_evictions": vectors["evictions"],
                "bm25": len(self.r.bm25),
                "chroma": self.r.store.count(),
                "metrics_in_flight": metrics["in_flight"],
                "metrics_max_window": max((s["window_size"] for s in series), default=0),
                "metrics_retrievers": len(metrics["retrievers"]),
                "metrics_series": len(series),
            }
        )

    def run(self, seconds: float) -> None:
        start = time.monotonic()
        next_sample = start
        while (now := time.monotonic()) - start < seconds:
            if now >= next_sample:
                self.sample(now - start)
                next_sample = now + SAMPLE_SECONDS
            try:
                self.step()
            except Exception as e:  # noqa: BLE001 - every error is reported by the test
                self.errors.append(f"{type(e).__name__}: {e}")
        self.sample(time.monotonic() - start)
        self.loop.close()


@pytest.mark.benchmark(group=GROUP)
def test_soak_mixed_traffic(
    benchmark: Any,
    settings: BenchSettings,
    embeddings: HashingEmbeddings,
    tmp_path: Path,
) -> None:
    seconds = soak_seconds(settings)
    limit = cache_entries(settings)
    corpus = generate_corpus(DOCS, seed=5)
    retriever = HybridRetriever.from_documents(
        corpus.documents(),
        embedding=embeddings,
        persist_directory=tmp_path / "index",
        collection_name=f"soak-{uuid.uuid4().hex[:8]}",
        cache=CacheSettings(max_entries=limit),
        k=K,
        # the freshness checks look a new document up by its unique marker word: a lone BM25
        # hit, which the zscore default scores 0 (as if absent); rrf always keeps it
        fusion="rrf",
    )
    vocabulary = sorted({w for text in corpus.texts[:500] for w in text.split()})
    metrics = RetrievalMetricsHandler(window=limit, max_series=MAX_SERIES)
    soak = Soak(retriever, vocabulary, seed=11, limit=limit, metrics=metrics)
    benchmark.pedantic(soak.run, args=(seconds,), rounds=1, iterations=1, warmup_rounds=0)

    samples = soak.samples
    assert not soak.errors, soak.errors[:5]
    assert len(samples) >= 3
    assert max(s["result_entries"] for s in samples) <= limit
    assert max(s["vector_entries"] for s in samples) <= limit
    assert samples[-1]["chroma"] == samples[-1]["bm25"] == soak.live
    queries = soak.ops["invoke"] + soak.ops["ainvoke"]
    if queries > 2 * limit:  # enough distinct queries to have filled the caches
        assert samples[-1]["result_evictions"] > 0
        assert samples[-1]["vector_evictions"] > 0

    # the metrics handler stayed bounded, paired every run, and counted every call
    snapshot = metrics.snapshot()
    assert max(s["metrics_in_flight"] for s in samples) == 0  # between calls: none in flight
    assert (snapshot["in_flight"], snapshot["evicted_in_flight"]) == (0, 0)
    assert snapshot["unmatched_events"] == 0
    assert max(s["metrics_max_window"] for s in samples) <= limit
    assert all(len(s.window) <= limit for s in metrics._series.values())
    assert max(s["metrics_retrievers"] for s in samples) <= MAX_SERIES + 1
    assert len(metrics._series) <= 3 * (MAX_SERIES + 1)  # a retrieval and its 2 legs per name
    retrievals = snapshot["retrievers"]
    assert sum(r["count"] for r in retrievals.values()) == soak.calls
    assert sum(r["errors"] + r["degraded"] for r in retrievals.values()) == 0
    assert snapshot["recent_errors"] == []
    if soak.calls > TENANTS:  # every tenant name came up: the names overflowed
        assert OTHER in retrievals
        assert snapshot["overflow_runs"] == retrievals[OTHER]["count"] > 0
    if snapshot["overflow_runs"] >= limit:  # the "<other>" window filled, and stopped there
        assert retrievals[OTHER]["window_size"] == limit

    warm = [s for s in samples if s["t"] >= seconds / 5] or samples
    third = max(1, len(warm) // 3)
    first = statistics.median(s["rss_mib"] for s in warm[:third])
    last = statistics.median(s["rss_mib"] for s in warm[-third:])
    allowed = first * 1.25 + 64 if seconds >= 60 else first + 256
    figures = {
        "seconds": round(seconds, 1),
        "docs": DOCS,
        "cache_max_entries": limit,
        "ops": dict(soak.ops),
        "ops_per_second": round(sum(soak.ops.values()) / seconds, 1),
        "samples": len(samples),
        "rss_first_third_mib": round(first, 1),
        "rss_last_third_mib": round(last, 1),
        "rss_max_mib": round(max(s["rss_mib"] for s in samples), 1),
        "result_cache_max_entries": max(s["result_entries"] for s in samples),
        "result_cache_evictions": samples[-1]["result_evictions"],
        "result_cache_hit_rate": round(samples[-1]["result_hit_rate"], 3),
        "vector_cache_max_entries": max(s["vector_entries"] for s in samples),
        "documents_at_end": soak.live,
        "metrics_retrievals": soak.calls,
        "metrics_series_max": max(s["metrics_series"] for s in samples),
        "metrics_window_max": max(s["metrics_max_window"] for s in samples),
        "metrics_overflow_runs": snapshot["overflow_runs"],
    }
    benchmark.extra_info.update(figures)
    print(f"\nsoak: {figures}")  # noqa: T201
    assert last <= allowed, f"RSS grew from {first:.0f} MiB to {last:.0f} MiB"
