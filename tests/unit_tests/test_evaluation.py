"""Evaluation: trec_eval-equal metrics, BEIR loading, cached indexes, modes, baseline, sweeps."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import pytrec_eval
from helpers import HashEmbeddings
from hypothesis import given, settings
from hypothesis import strategies as st

from langchain_hybrid import ConfigError
from langchain_hybrid.evaluation import (
    evaluate_run,
    evaluate_search,
    format_table,
    langchain_baseline,
    load_beir,
    mode_search,
    open_eval_index,
    parse_sweep,
    percentiles,
    query_metrics,
)

PYTREC = {"ndcg_cut.10", "recall.100", "map_cut.100", "P.1", "P.5", "recip_rank"}


def _reference(run: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    scored = {q: {d: float(len(r) - i) for i, d in enumerate(r)} for q, r in run.items()}
    cut10 = {q: {d: float(len(r) - i) for i, d in enumerate(r[:10])} for q, r in run.items()}
    full = pytrec_eval.RelevanceEvaluator(qrels, PYTREC).evaluate(scored)
    rr10 = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(cut10)

    def mean(values: list[float]) -> float:
        return statistics.mean(values) if values else 0.0

    return {
        "ndcg@10": mean([full[q]["ndcg_cut_10"] for q in qrels if q in full]),
        "recall@100": mean([full[q]["recall_100"] for q in qrels if q in full]),
        "map@100": mean([full[q]["map_cut_100"] for q in qrels if q in full]),
        "p@1": mean([full[q]["P_1"] for q in qrels if q in full]),
        "p@5": mean([full[q]["P_5"] for q in qrels if q in full]),
        "mrr@10": mean([rr10[q]["recip_rank"] for q in qrels if q in rr10]),
    }


@st.composite
def runs_and_qrels(draw: st.DrawFn) -> tuple[dict[str, list[str]], dict[str, dict[str, int]]]:
    n_queries = draw(st.integers(1, 8))
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, list[str]] = {}
    docs = [f"d{i}" for i in range(150)]
    for q in range(n_queries):
        judged = draw(
            st.dictionaries(st.sampled_from(docs), st.integers(0, 3), min_size=1, max_size=12)
        )
        judged[draw(st.sampled_from(docs))] = draw(st.integers(1, 3))  # one relevant at least
        qrels[f"q{q}"] = judged
        run[f"q{q}"] = draw(st.lists(st.sampled_from(docs), min_size=1, max_size=120, unique=True))
    return run, qrels


@settings(max_examples=150, deadline=None)
@given(runs_and_qrels())
def test_metrics_equal_pytrec_eval(
    data: tuple[dict[str, list[str]], dict[str, dict[str, int]]],
) -> None:
    run, qrels = data
    ours = evaluate_run(run, qrels)
    reference = _reference(run, qrels)
    for name, value in reference.items():
        assert ours[name] == pytest.approx(value, abs=1e-9), name


def test_graded_relevance_uses_linear_gains() -> None:
    perfect = query_metrics(["a", "b"], {"a": 2, "b": 1})
    swapped = query_metrics(["b", "a"], {"a": 2, "b": 1})
    assert perfect["ndcg@10"] == pytest.approx(1.0)
    # swapped: DCG is 1 plus 2 over log2(3); the ideal DCG is 2 plus 1 over log2(3)
    assert swapped["ndcg@10"] == pytest.approx((1 + 2 / 1.5849625) / (2 + 1 / 1.5849625), 1e-6)


def test_percentiles_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentiles(values) == {"p50_ms": 50.0, "p95_ms": 95.0, "p99_ms": 99.0, "mean_ms": 50.5}


def test_parse_sweep_builds_the_grid() -> None:
    grid = parse_sweep(["rrf_k=10,60", "weights=0.5:0.5,0.3:0.7"])
    assert grid == [
        {"rrf_k": 10.0, "weights": (0.5, 0.5)},
        {"rrf_k": 10.0, "weights": (0.3, 0.7)},
        {"rrf_k": 60.0, "weights": (0.5, 0.5)},
        {"rrf_k": 60.0, "weights": (0.3, 0.7)},
    ]
    for bad in (["rrf_k"], ["k1=1"], ["rrf_k=a"], ["weights=0.5"]):
        with pytest.raises(ConfigError):
            parse_sweep(bad)


def test_format_table() -> None:
    table = format_table(
        [{"mode": "bm25", "ndcg@10": 0.5, "p50_ms": 12.345}], ["mode", "ndcg@10", "p50_ms"]
    )
    assert table.splitlines() == [
        "| mode | ndcg@10 | p50_ms |",
        "|---|---|---|",
        "| bm25 | 0.5000 | 12.35 |",
    ]


TOPICS = {
    "coffee": ["espresso grind pressure", "french press coarse grind", "cold brew steep hours"],
    "garden": ["tomato watering summer", "rose pruning winter", "compost kitchen scraps"],
    "network": ["router firmware error", "mesh wifi coverage", "ethernet cable category"],
}


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    """A tiny BEIR collection written by the test itself."""
    root = tmp_path / "tiny"
    (root / "qrels").mkdir(parents=True)
    corpus, queries, qrels = [], [], ["query-id\tcorpus-id\tscore"]
    for topic, texts in TOPICS.items():
        for i, text in enumerate(texts):
            corpus.append(
                {"_id": f"{topic}-{i}", "title": topic.title(), "text": f"Notes on {text}."}
            )
            queries.append({"_id": f"{topic}-q{i}", "text": text})
            qrels.append(f"{topic}-q{i}\t{topic}-{i}\t1")
    queries.append({"_id": "unjudged", "text": "nothing"})
    (root / "corpus.jsonl").write_text("\n".join(json.dumps(c) for c in corpus))
    (root / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries))
    (root / "qrels" / "test.tsv").write_text("\n".join(qrels))
    return root


def test_load_beir(collection: Path) -> None:
    dataset = load_beir(collection, "test")
    assert len(dataset.corpus) == 9
    assert "unjudged" not in dataset.queries
    assert len(dataset.queries) == len(dataset.qrels) == 9
    doc = dataset.documents()[0]
    assert doc.page_content.startswith("Coffee\n")
    with pytest.raises(ConfigError, match="cannot read"):
        load_beir(collection, "dev")


def test_eval_index_is_reused_and_modes_score(collection: Path, tmp_path: Path) -> None:
    dataset = load_beir(collection)
    embedding = HashEmbeddings()
    retriever = open_eval_index(collection, dataset, embedding, cache_dir=tmp_path / "cache")
    assert embedding.embedded_documents == 9
    again = open_eval_index(collection, dataset, embedding, cache_dir=tmp_path / "cache")
    assert embedding.embedded_documents == 9  # nothing embedded the second time
    for mode in ("hybrid", "bm25", "vector"):
        result = evaluate_search(mode, mode_search(again, mode), dataset)
        assert result.metrics["recall@100"] == pytest.approx(1.0)
        assert result.metrics["ndcg@10"] > 0.8
        assert result.latency["p50_ms"] > 0
    baseline = evaluate_search("langchain", langchain_baseline(retriever, dataset), dataset)
    assert baseline.metrics["ndcg@10"] > 0.5
    with pytest.raises(ConfigError):
        mode_search(again, "sparse")
