# ruff: noqa: F811 - the fixtures imported from monitoring_chains are test arguments by name
"""Health rules on real indexes: sync, writes under way and dead, traffic rules, the CLI.

The retrievers run over in-process (or on-disk) Chroma with ``HashEmbeddings``; a dead writer is
a real process holding, then losing, the writer lock; ``langchain-hybrid health`` runs for real.
"""

from __future__ import annotations

import ast
import json
import time
from pathlib import Path
from typing import Any

import chromadb
import pytest
from chromadb.config import Settings
from helpers import HashEmbeddings, hold_writer_lock
from monitoring_chains import (  # noqa: F401 - embedding, retriever, in_tmp: fixtures, used by name
    BAD_FILTER,
    HYBRID,
    QUERIES,
    TEXTS,
    break_vector_leg,
    cfg,
    documents,
    embedding,
    hybrid,
    in_tmp,
    retriever,
    run_cli,
)

from langchain_hybrid import (
    ConfigError,
    HybridRetriever,
    HybridRetrieverError,
    StoreConfig,
    cli,
)
from langchain_hybrid._locking import LOCK_NAME, holds_writer_lock, release_writer_lock
from langchain_hybrid.config import MonitoringSettings, load_config
from langchain_hybrid.health import HealthCheck, HealthMonitor, HealthStatus
from langchain_hybrid.metrics import (
    RetrievalMetricsHandler,
)
from langchain_hybrid.stores import ChromaStore


# ---------------------------------------------------------------------- health
def monitoring(**kwargs: Any) -> MonitoringSettings:
    return MonitoringSettings(**{"min_requests": 5, **kwargs})


def test_cold_start_is_healthy(retriever: HybridRetriever) -> None:
    status = HealthMonitor(retriever, RetrievalMetricsHandler()).health_check()
    assert status.status == "healthy"
    assert status.exit_code == 0
    vector = status.check("vector_store")
    assert vector is not None
    assert (vector.status, vector.value) == ("healthy", len(TEXTS))
    bm25 = status.check("bm25_index")
    assert bm25 is not None
    assert bm25.status == "healthy"
    for name in ("error_rate", "latency_p95", "degraded_answers"):
        check = status.check(name)
        assert check is not None
        assert check.status == "skipped"
    assert HealthMonitor(retriever).health_check().status == "healthy"  # no handler at all


def detail(status: HealthStatus, name: str) -> str:
    check = status.check(name)
    assert check is not None
    return check.detail


def degraded_checks(status: HealthStatus) -> list[str]:
    return [c.name for c in status.checks if c.status == "degraded"]


def test_bm25_out_of_sync_is_degraded(retriever: HybridRetriever) -> None:
    retriever.store.begin_write()  # a completed write by "another process": BM25 is behind it
    retriever.store.end_write()
    status = HealthMonitor(retriever).health_check()
    assert status.status == "degraded"
    assert degraded_checks(status) == ["bm25_index"]
    assert "out of sync" in detail(status, "bm25_index")
    assert "generation 2 vs 4" in detail(status, "bm25_index")
    retriever.refresh()
    assert HealthMonitor(retriever).health_check().status == "healthy"


def test_a_write_under_way_is_healthy(retriever: HybridRetriever) -> None:
    monitor = HealthMonitor(retriever)
    assert retriever.bm25.generation == 2
    retriever.store.begin_write()  # generation 3: the write has begun, nothing landed yet
    status = monitor.health_check()
    assert status.status == "healthy"
    assert "a write is under way (generation 3)" in detail(status, "bm25_index")
    retriever.store.client.get_collection(retriever.store.config.chroma_collection).delete(
        ids=["net-1"]
    )  # half of the write has landed: the counts differ, which is expected mid-write
    assert monitor.health_check().status == "healthy"
    retriever.store.end_write()  # generation 4, and BM25 of this retriever never got the write
    status = monitor.health_check()
    assert degraded_checks(status) == ["bm25_index"]
    assert "generation 2 vs 4, 10 vs 9 documents" in detail(status, "bm25_index")
    retriever.refresh()
    assert monitor.health_check().status == "healthy"


def test_bm25_behind_a_completed_write_is_degraded_during_the_next(
    retriever: HybridRetriever,
) -> None:
    retriever.store.begin_write()
    retriever.store.end_write()  # 4: completed, BM25 still at 2
    retriever.store.begin_write()  # 5: the next write is under way
    status = HealthMonitor(retriever).health_check()
    assert degraded_checks(status) == ["bm25_index"]
    text = detail(status, "bm25_index")
    assert "generation 2, behind generation 4" in text
    assert "a write is under way (generation 5)" in text


def test_a_write_between_the_two_generation_reads_is_under_way(
    retriever: HybridRetriever, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = retriever.store
    reads = iter([2, 4])  # a whole write landed between the reads: the count is of neither
    monkeypatch.setattr(store, "metadata_generation", lambda: next(reads))
    monkeypatch.setattr(store, "count", lambda: 99)
    status = HealthMonitor(retriever).health_check()
    assert status.status == "healthy"
    assert "generation 2 -> 4 during the check" in detail(status, "bm25_index")


def test_an_odd_generation_that_stays_is_a_dead_write(retriever: HybridRetriever) -> None:
    monitor = HealthMonitor(retriever, stuck_write_seconds=0.2)
    retriever.store.begin_write()  # a write that failed midway and was never ended
    assert monitor.health_check().status == "healthy"  # first seen: a write under way
    time.sleep(0.3)
    status = monitor.health_check()
    assert degraded_checks(status) == ["bm25_index"]
    assert "stayed odd" in detail(status, "bm25_index")
    assert "stuck_write_seconds=0.2" in detail(status, "bm25_index")
    assert HealthMonitor(retriever).health_check().status == "healthy"  # a new monitor: seen now
    assert HealthMonitor(retriever, stuck_write_seconds=None).health_check().status == "healthy"
    retriever.store.end_write()  # the write ends at last (4)
    retriever.refresh()
    assert monitor.health_check().status == "healthy"
    retriever.store.begin_write()  # the next write (5): a new odd generation, a new clock
    assert monitor.health_check().status == "healthy"
    with pytest.raises(ConfigError, match="stuck_write_seconds"):
        HealthMonitor(retriever, stuck_write_seconds=-1)


def test_writes_of_a_live_writer_process_and_of_a_dead_one(tmp_path: Path) -> None:
    directory = tmp_path / "index"
    retriever = HybridRetriever.from_documents(
        documents(), embedding=HashEmbeddings(), persist_directory=directory, collection_name="kb"
    )
    monitor = HealthMonitor(retriever)
    assert holds_writer_lock(directory)  # this process wrote: it is the writer
    retriever.store.begin_write()
    status = monitor.health_check()
    assert status.status == "healthy", status.format()
    retriever.store.end_write()
    retriever.refresh()
    assert monitor.health_check().status == "healthy"

    release_writer_lock(directory)  # from here on this process only reads
    holder = hold_writer_lock(directory)
    try:
        retriever.store.begin_write()  # the holder's write, under way
        status = monitor.health_check()
        assert status.status == "healthy", status.format()
        for name in ("bm25_index", "bm25_files"):
            assert "a write is under way (generation 5)" in detail(status, name)
        assert not holds_writer_lock(directory)  # the check did not take the lock
        assert (directory / LOCK_NAME).read_text() == str(holder.pid)
    finally:
        holder.kill()  # the writer dies in the middle of its write
        holder.communicate(timeout=30)
    status = monitor.health_check()
    assert status.status == "degraded"
    assert degraded_checks(status) == ["bm25_index", "bm25_files"]
    for name in ("bm25_index", "bm25_files"):
        text = detail(status, name)
        assert "the write at generation 5 never finished" in text
        assert "no process holds the writer lock" in text
    assert retriever.store.metadata_generation() == 5  # reported, not settled
    retriever.refresh()  # what a reader does: marks the dead write complete, resyncs BM25
    assert retriever.store.metadata_generation() == 6
    assert monitor.health_check().status == "healthy"


def test_error_rate_over_threshold(retriever: HybridRetriever) -> None:
    metrics = RetrievalMetricsHandler()
    monitor = HealthMonitor(retriever, metrics, monitoring(error_rate_threshold=0.2))
    for query in QUERIES[:4]:
        retriever.invoke(query, config=cfg(metrics))
    with pytest.raises(HybridRetrieverError):
        retriever.invoke("coffee", filter=BAD_FILTER, config=cfg(metrics))
    status = monitor.health_check()
    assert status.status == "healthy"  # 1 of 5: 20% is not above 20%
    with pytest.raises(HybridRetrieverError):
        retriever.invoke("coffee", filter=BAD_FILTER, config=cfg(metrics))
    status = monitor.health_check()
    assert status.status == "degraded"
    check = status.check("error_rate")
    assert check is not None
    assert check.status == "degraded"
    assert check.value == pytest.approx(2 / 6)
    assert status.check("vector_store").status == "healthy"  # type: ignore[union-attr]


def test_every_recent_retrieval_failing_is_unhealthy(retriever: HybridRetriever) -> None:
    metrics = RetrievalMetricsHandler()
    for _ in range(5):
        with pytest.raises(HybridRetrieverError):
            retriever.invoke("coffee", filter=BAD_FILTER, config=cfg(metrics))
    status = HealthMonitor(retriever, metrics, monitoring()).health_check()
    assert status.status == "unhealthy"
    assert status.exit_code == 2


def test_latency_and_degraded_answer_rules(retriever: HybridRetriever) -> None:
    metrics = RetrievalMetricsHandler()
    for query in QUERIES[:5]:
        retriever.invoke(query, config=cfg(metrics))
    slow = HealthMonitor(retriever, metrics, monitoring(p95_threshold_ms=0.001)).health_check()
    assert slow.check("latency_p95").status == "degraded"  # type: ignore[union-attr]
    assert slow.status == "degraded"
    break_vector_leg(retriever)
    for query in ("python", "router"):
        retriever.invoke(query, config=cfg(metrics))
    status = HealthMonitor(retriever, metrics, monitoring()).health_check()
    degraded = status.check("degraded_answers")
    assert degraded is not None
    assert degraded.status == "degraded"
    assert degraded.value == pytest.approx(2 / 7)
    assert status.check("vector_store").status == "degraded"  # type: ignore[union-attr]
    assert status.status == "degraded"  # BM25 still answers


def test_rules_use_only_recent_traffic(retriever: HybridRetriever) -> None:
    metrics = RetrievalMetricsHandler()
    for _ in range(5):
        with pytest.raises(HybridRetrieverError):
            retriever.invoke("coffee", filter=BAD_FILTER, config=cfg(metrics))
    assert HealthMonitor(retriever, metrics, monitoring()).health_check().status == "unhealthy"
    for query in QUERIES[:5]:
        retriever.invoke(query, config=cfg(metrics))
    window = monitoring(window=5)  # the last 5 retrievals are all good
    assert HealthMonitor(retriever, metrics, window).health_check().status == "healthy"
    time.sleep(0.05)
    aged = HealthMonitor(retriever, metrics, monitoring(), max_age_seconds=0.01).health_check()
    assert aged.status == "healthy"
    assert aged.check("error_rate").status == "skipped"  # type: ignore[union-attr]


def test_both_legs_broken_is_unhealthy(retriever: HybridRetriever) -> None:
    break_vector_leg(retriever)
    assert HealthMonitor(retriever).health_check().status == "degraded"
    retriever.bm25 = None  # type: ignore[assignment]
    status = HealthMonitor(retriever).health_check()
    assert status.status == "unhealthy"
    assert status.check("vector_store").status == "unhealthy"  # type: ignore[union-attr]
    assert status.check("bm25_index").status == "unhealthy"  # type: ignore[union-attr]


def test_vector_only_retriever_with_the_store_down_is_unhealthy(
    retriever: HybridRetriever,
) -> None:
    retriever.weights = (0.0, 1.0)
    break_vector_leg(retriever)
    assert HealthMonitor(retriever).health_check().status == "unhealthy"


def test_health_check_does_not_touch_the_cache(
    retriever: HybridRetriever, embedding: HashEmbeddings
) -> None:
    metrics = RetrievalMetricsHandler()
    for query in [*QUERIES[:3], QUERIES[0]]:
        retriever.invoke(query, config=cfg(metrics))
    assert retriever.cache is not None
    before = (retriever.cache.stats(), embedding.embedded_queries, hybrid(metrics)["count"])
    monitor = HealthMonitor(retriever, metrics)
    monitor.health_check()
    monitor.report_json()
    assert (retriever.cache.stats(), embedding.embedded_queries, hybrid(metrics)["count"]) == before


def test_extra_checks_and_a_broken_one(retriever: HybridRetriever) -> None:
    def llm_reachable() -> HealthCheck:
        return HealthCheck("llm", "healthy", "answering")

    def broken_rule() -> HealthCheck:
        msg = "cannot tell"
        raise RuntimeError(msg)

    status = HealthMonitor(retriever, extra_checks=[llm_reachable, broken_rule]).health_check()
    assert status.check("llm") == HealthCheck("llm", "healthy", "answering")
    broken = status.check("broken_rule")
    assert broken is not None
    assert broken.status == "unhealthy"
    assert "cannot tell" in broken.detail
    assert status.status == "unhealthy"


def test_report_json_has_everything_and_no_secrets(collection_name: str) -> None:
    client = chromadb.EphemeralClient(settings=Settings(anonymized_telemetry=False))
    config = StoreConfig(
        mode="http",
        host="chroma.internal",
        token="tok-s3cr3t",  # noqa: S106 - the point is that it never shows
        headers={"X-Api-Key": "hdr-s3cr3t"},
        collection=collection_name,
    )
    retriever = HybridRetriever.from_store(ChromaStore(config, client=client), HashEmbeddings())
    retriever.add_documents(documents())
    metrics = RetrievalMetricsHandler()
    retriever.invoke("coffee", config=cfg(metrics))
    with pytest.raises(HybridRetrieverError):
        retriever.invoke("coffee", filter=BAD_FILTER, config=cfg(metrics))
    text = HealthMonitor(retriever, metrics).report_json()
    assert "s3cr3t" not in text
    report = json.loads(text)
    assert set(report) == {"health", "metrics", "recent_errors", "config"}
    assert report["health"]["status"] == "healthy"
    assert report["metrics"]["retrievers"][HYBRID]["count"] == 2
    assert [e["leg"] for e in report["recent_errors"]] == ["all"]
    assert "InvalidFilterError" in report["recent_errors"][0]["error"]
    config_summary = report["config"]
    assert config_summary["store_mode"] == "http"
    assert config_summary["store_location"] == "http://chroma.internal:8000"
    assert config_summary["collection"] == collection_name
    assert (config_summary["k"], config_summary["weights"]) == (4, [0.5, 0.5])


def runtime_imports(module: str) -> set[str]:
    """The modules ``module`` imports when it is imported (``if TYPE_CHECKING:`` blocks aside)."""
    path = Path(__file__).parents[2] / "langchain_hybrid" / f"{module}.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in tree.body:  # module level only: lazy imports inside functions are not counted
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            continue
        for child in ast.walk(node):
            if isinstance(child, ast.ImportFrom) and child.module:
                found.add(child.module)
            elif isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
    return found


def test_health_and_metrics_do_not_import_the_retriever() -> None:
    health, metrics = runtime_imports("health"), runtime_imports("metrics")
    assert "langchain_hybrid.index" in health  # the state comes from HybridIndex.status()
    assert "langchain_hybrid.retrievers" not in health | metrics
    assert not {"langchain_hybrid.stores", "langchain_hybrid.index", "chromadb"} & metrics


def test_from_config_reports_what_a_retriever_of_that_config_would(tmp_path: Path) -> None:
    settings = load_config(
        {
            "store": {"path": str(tmp_path / "index"), "collection": "kb"},
            "fusion": {"k": 7, "fetch_k": 30, "weights": [0.3, 0.7], "method": "rrf"},
        }
    )
    retriever = HybridRetriever.from_config(settings, HashEmbeddings(), cache=False)
    retriever.add_documents(documents())
    from_retriever = HealthMonitor(retriever).report()
    opened = HealthMonitor.from_config(settings)
    assert opened.retriever.index.opened_from == "saved"
    from_config = opened.report()
    assert from_config["config"] == from_retriever["config"]
    assert from_config["config"]["weights"] == [0.3, 0.7]
    assert [(c["name"], c["status"], c["value"]) for c in from_config["health"]["checks"]] == [
        (c["name"], c["status"], c["value"]) for c in from_retriever["health"]["checks"]
    ]
    assert from_config["health"]["status"] == "healthy"


@pytest.mark.usefixtures("in_tmp")
def test_cli_health_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "index", "docs")[0] == 0
    code, out, err = run_cli(capsys, "health")
    assert (code, err) == (0, "")
    assert out.startswith("status: healthy")
    assert "vector_store" in out
    assert "bm25_files" in out

    code, out, _ = run_cli(capsys, "health", "--json")
    report = json.loads(out)
    assert code == 0
    assert report["health"]["status"] == "healthy"
    assert report["config"]["collection"] == "kb"
    checks = {c["name"]: c for c in report["health"]["checks"]}
    assert checks["bm25_index"]["value"] == len(TEXTS)
    assert checks["error_rate"]["status"] == "skipped"

    manifest = Path("index/bm25/kb/manifest.json").read_bytes()
    store = ChromaStore(StoreConfig(path="index", collection="kb"))
    store.begin_write()  # a write by another writer, completed: the saved BM25 is behind it
    store.end_write()
    code, out, _ = run_cli(capsys, "health")
    assert code == 1
    assert out.startswith("status: degraded")
    assert cli_degraded(out) == ["bm25_index", "bm25_files"]
    assert Path("index/bm25/kb/manifest.json").read_bytes() == manifest  # nothing rebuilt


def cli_degraded(out: str) -> list[str]:
    return [line.split()[1] for line in out.splitlines()[1:] if line.split()[0] == "degraded"]


@pytest.mark.usefixtures("in_tmp")
def test_cli_health_during_a_write_and_after_its_writer_died(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_cli(capsys, "index", "docs")[0] == 0
    assert holds_writer_lock("index")  # the `index` command ran here: this process writes
    manifest = Path("index/bm25/kb/manifest.json").read_bytes()
    store = ChromaStore(StoreConfig(path="index", collection="kb"))
    generation = store.begin_write()
    code, out, _ = run_cli(capsys, "health")
    assert (code, cli_degraded(out)) == (0, [])
    assert f"a write is under way (generation {generation})" in out

    release_writer_lock("index")  # as if the writer had died: the write never ends
    code, out, _ = run_cli(capsys, "health", "--json")
    report = json.loads(out)
    assert code == 1
    checks = {c["name"]: c for c in report["health"]["checks"]}
    for name in ("bm25_index", "bm25_files"):
        assert checks[name]["status"] == "degraded"
        assert f"the write at generation {generation} never finished" in checks[name]["detail"]
    assert store.metadata_generation() == generation  # health settles nothing, rebuilds nothing
    assert Path("index/bm25/kb/manifest.json").read_bytes() == manifest
    assert not holds_writer_lock("index")


@pytest.mark.usefixtures("in_tmp")
def test_cli_health_without_an_index_is_unhealthy_and_creates_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = cli.main(["--path", "nowhere", "health"]), *capsys.readouterr()
    assert code == 2
    assert out.startswith("status: unhealthy")
    assert "no index at nowhere" in out
    assert "Traceback" not in out + err
    assert not Path("nowhere").exists()
    code = cli.main(["--path", "nowhere", "health", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 2
    assert report["health"]["status"] == "unhealthy"
    assert not Path("nowhere").exists()
