"""Health and metrics against a real `chroma run` server that goes down and comes back.

Rules under test (see ``HealthMonitor``): the ``vector_store`` check follows the server at
once; the ``degraded_answers`` rule looks back over the last ``window`` retrievals, so after the
server is back the monitor stays *degraded* until the outage's answers have left the window,
i.e. until ``window`` new good retrievals have been served. That is by design: it reports what
users got recently, not only what the store says now.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ChromaServer
from helpers import HashEmbeddings
from langchain_core.documents import Document

from langchain_hybrid import HealthMonitor, HybridRetriever, RetrievalMetricsHandler, StoreConfig
from langchain_hybrid.config import MonitoringSettings

pytestmark = pytest.mark.server

WINDOW = 12
DOCS = [
    Document(id=f"d{i}", page_content=text)
    for i, text in enumerate(
        [
            "The NX-220 router reports error E-4471 after a failed update",
            "Mesh wifi nodes should sit in open hallways",
            "Espresso wants a fine grind and a hot group head",
            "Cold brew steeps overnight in the fridge",
            "Sirius is the brightest star of the night sky",
            "Jupiter's moons were first seen by Galileo",
        ]
    )
]
WORDS = ["router", "wifi", "espresso", "brew", "star", "moons", "grind", "update"]


def traffic(retriever: HybridRetriever, metrics: RetrievalMetricsHandler, n: int, tag: str) -> None:
    for i in range(n):  # distinct queries: every one runs both legs (no cache hits)
        retriever.invoke(f"{WORDS[i % len(WORDS)]} {tag}{i}", config={"callbacks": [metrics]})


def statuses(monitor: HealthMonitor) -> tuple[str, dict[str, str]]:
    status = monitor.health_check()
    return status.status, {c.name: c.status for c in status.checks}


def test_outage_is_reported_and_recovery_needs_good_traffic(
    chroma_server: ChromaServer, tmp_path: Path
) -> None:
    retriever = HybridRetriever.from_documents(
        DOCS,
        embedding=HashEmbeddings(),
        store_config=StoreConfig(
            mode="http",
            host="127.0.0.1",
            port=chroma_server.port,
            collection="kb-health",
            timeout_seconds=5,
        ),
        bm25_path=tmp_path / "bm25",
        k=3,
    )
    metrics = RetrievalMetricsHandler(window=100)
    settings = MonitoringSettings(window=WINDOW, min_requests=5, p95_threshold_ms=5_000)
    monitor = HealthMonitor(retriever, metrics, settings)
    assert statuses(monitor)[0] == "healthy"  # cold start: no traffic yet

    traffic(retriever, metrics, 8, "before")
    overall, checks = statuses(monitor)
    assert overall == "healthy", checks
    assert checks["error_rate"] == checks["degraded_answers"] == "healthy"

    chroma_server.stop()
    traffic(retriever, metrics, 6, "outage")
    overall, checks = statuses(monitor)
    assert overall == "degraded"  # BM25 still answers every query
    assert checks["vector_store"] == "degraded"
    assert checks["degraded_answers"] == "degraded"
    assert checks["error_rate"] == "healthy"  # users got answers, from one leg
    series = metrics.snapshot()["retrievers"]["HybridRetriever"]
    assert series["degraded"] == 6
    assert series["legs"]["vector"]["errors"] == 6
    assert series["legs"]["bm25"]["errors"] == 0
    assert {e["leg"] for e in metrics.recent_errors()} == {"vector"}

    chroma_server.start()
    overall, checks = statuses(monitor)
    assert checks["vector_store"] == "healthy"  # the store is back at once...
    assert checks["degraded_answers"] == "degraded"  # ...the window still holds the outage
    assert overall == "degraded"

    traffic(retriever, metrics, WINDOW, "after")
    overall, checks = statuses(monitor)
    assert overall == "healthy", checks
    series = metrics.snapshot()["retrievers"]["HybridRetriever"]
    assert series["count"] == 8 + 6 + WINDOW
    assert series["degraded"] == 6  # totals keep the history
