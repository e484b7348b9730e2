"""Shared benchmark fixtures, the scale settings, and the p50/p95/p99 JSON hook.

Scale (environment variables; small defaults when run with ``--benchmark-disable``, as CI does,
so the suite then only checks correctness, in seconds):

* ``BENCH_DOCS``: documents of the BM25 comparison (100000; 2000 when disabled).
* ``BENCH_HYBRID_DOCS``: documents of the hybrid comparison (10000; 1000 when disabled).
* ``BENCH_ROUNDS``: timed rounds of each fast benchmark (1000; the EnsembleRetriever baseline
  gets a tenth of them).
* ``BENCH_SLOW_ROUNDS``: timed rounds of LangChain's BM25Retriever at ``BENCH_DOCS`` (10,
  over 10 queries; it scans the whole corpus, about 30 ms per query token at 100k).

With ``--benchmark-disable`` each benchmark body runs once, untimed, and the correctness
checks still run (over every query; the first 50 for the hybrid group).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
from corpus import BenchSettings, Corpus, HashingEmbeddings, generate_corpus

PERCENTILES = (50, 95, 99)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


@pytest.fixture(scope="session")
def settings(pytestconfig: pytest.Config) -> BenchSettings:
    """Scale settings: full size when timing, small when ``--benchmark-disable`` is given."""
    disabled = bool(pytestconfig.getoption("benchmark_disable", default=False))
    return BenchSettings(
        disabled=disabled,
        docs=_env_int("BENCH_DOCS", 2_000 if disabled else 100_000),
        hybrid_docs=_env_int("BENCH_HYBRID_DOCS", 1_000 if disabled else 10_000),
        rounds=_env_int("BENCH_ROUNDS", 1_000),
        slow_rounds=_env_int("BENCH_SLOW_ROUNDS", 10),
    )


@pytest.fixture(scope="session")
def bm25_corpus(settings: BenchSettings) -> Corpus:
    """The BM25 comparison corpus (generated once per session)."""
    return generate_corpus(settings.docs, seed=1)


@pytest.fixture(scope="session")
def hybrid_corpus(settings: BenchSettings) -> Corpus:
    """The hybrid comparison corpus (generated once per session)."""
    return generate_corpus(settings.hybrid_docs, seed=2)


@pytest.fixture(scope="session")
def embeddings() -> HashingEmbeddings:
    """The cheap deterministic embedding model shared by every vector leg."""
    return HashingEmbeddings()


def percentiles_ms(data: list[float]) -> dict[str, float]:
    """``p50_ms``, ``p95_ms``, ``p99_ms`` (linear interpolation) of per-round seconds."""
    values = np.percentile(np.asarray(data, dtype=np.float64) * 1e3, PERCENTILES)
    return {f"p{p}_ms": round(float(v), 4) for p, v in zip(PERCENTILES, values, strict=True)}


def pytest_benchmark_update_json(benchmarks: list[Any], output_json: dict[str, Any]) -> None:
    """Add p50/p95/p99 (ms) of each benchmark's raw per-round timings to its ``extra_info``.

    The raw data is read from the in-memory benchmark objects (``bench.stats.data``), so this
    works for ``--benchmark-json`` and for ``--benchmark-save`` with or without
    ``--benchmark-save-data``.
    """
    raw = {bench.fullname: list(bench.stats.data) for bench in benchmarks if not bench.has_error}
    for entry in output_json["benchmarks"]:
        data = raw.get(entry["fullname"]) or entry["stats"].get("data")
        if data:
            entry["extra_info"].update(percentiles_ms(data), rounds_timed=len(data))
