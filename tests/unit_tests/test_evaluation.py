"""Evaluation: trec_eval-equal metrics, BEIR loading, cached indexes, modes, baseline, sweeps."""

from __future__ import annotations

import json
import math
import random
import statistics
import tempfile
from pathlib import Path
from typing import Any

import pytest
import pytrec_eval
import yaml
from helpers import HashEmbeddings
from hypothesis import given, settings
from hypothesis import strategies as st

from langchain_hybrid import ConfigError, HNSWConfig, HybridConfig, cli
from langchain_hybrid.adaptive import AdaptiveWeights
from langchain_hybrid.evaluation import (
    METRICS,
    evaluate_run,
    evaluate_search,
    format_table,
    index_key,
    langchain_baseline,
    load_beir,
    mode_search,
    open_eval_index,
    parse_sweep,
    percentiles,
    query_metrics,
    run_evaluation,
    sweep,
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
    for bad in (
        ["rrf_k"],
        ["k1=1"],
        ["rrf_k=a"],
        ["weights=0.5"],
        ["weights=0:0"],
        ["weights=-1:2"],
        ["rrf_k=-1"],
        ["rrf_k=inf"],
        ["fetch_k=0"],
        ["fusion=borda"],
        ["rrf_k=10", "rrf_k=60"],
    ):
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


def write_collection(
    root: Path,
    corpus: list[dict[str, Any]],
    queries: list[dict[str, Any]],
    qrels: dict[str, list[str]],
) -> Path:
    """Write a BEIR collection: JSONL corpus and queries, one qrels TSV (with header) per split."""
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text("\n".join(json.dumps(c) for c in corpus))
    (root / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries))
    for split, lines in qrels.items():
        text = "\n".join(["query-id\tcorpus-id\tscore", *lines])
        (root / "qrels" / f"{split}.tsv").write_text(text)
    return root


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    """A tiny BEIR collection written by the test itself."""
    corpus, queries, qrels = [], [], []
    for topic, texts in TOPICS.items():
        for i, text in enumerate(texts):
            corpus.append(
                {"_id": f"{topic}-{i}", "title": topic.title(), "text": f"Notes on {text}."}
            )
            queries.append({"_id": f"{topic}-q{i}", "text": text})
            qrels.append(f"{topic}-q{i}\t{topic}-{i}\t1")
    queries.append({"_id": "unjudged", "text": "nothing"})
    # dev: three queries, judged against other documents of their topic (graded)
    dev = ["coffee-q0\tcoffee-1\t2", "coffee-q0\tcoffee-0\t1", "garden-q1\tgarden-2\t1"]
    dev.append("network-q2\tnetwork-2\t0")  # no relevant document: left out
    return write_collection(tmp_path / "tiny", corpus, queries, {"test": qrels, "dev": dev})


@pytest.fixture
def harder(tmp_path: Path) -> Path:
    """A seeded collection where fusion settings change the ranking (ties, shared terms)."""
    rng = random.Random(7)  # noqa: S311 - seeded test data, not cryptography
    words = [f"w{i}" for i in range(60)]
    docs = {f"d{i}": rng.sample(words, 8) for i in range(80)}
    queries, qrels = [], []
    for q in range(25):
        target = f"d{rng.randrange(80)}"
        terms = [*rng.sample(docs[target], 3), rng.choice(words)]
        queries.append({"_id": f"q{q}", "text": " ".join(terms)})
        qrels.append(f"q{q}\t{target}\t2")
        qrels += [
            f"q{q}\t{d}\t1"
            for d, ws in docs.items()
            if d != target and len(set(ws) & set(terms[:3])) >= 2
        ]
    corpus = [{"_id": d, "title": "", "text": " ".join(ws)} for d, ws in docs.items()]
    return write_collection(tmp_path / "harder", corpus, queries, {"test": qrels})


def test_load_beir(collection: Path) -> None:
    dataset = load_beir(collection, "test")
    assert len(dataset.corpus) == 9
    assert "unjudged" not in dataset.queries
    assert len(dataset.queries) == len(dataset.qrels) == 9
    doc = dataset.documents()[0]
    assert doc.page_content.startswith("Coffee\n")
    with pytest.raises(ConfigError, match="cannot read"):
        load_beir(collection, "train")


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


# ---------------------------------------------------------------------- the index cache key
def test_index_key_holds_the_hnsw_graph_settings(collection: Path) -> None:
    default = index_key(collection, "HashEmbeddings", HNSWConfig())
    assert index_key(collection, "HashEmbeddings") == default
    assert index_key(collection, "HashEmbeddings", HNSWConfig(ef_search=50)) == default
    for changed in (
        HNSWConfig(ef_construction=100),
        HNSWConfig(space="l2"),
        HNSWConfig(max_neighbors=32),
    ):
        assert index_key(collection, "HashEmbeddings", changed) != default, changed
    assert index_key(collection, "Other", HNSWConfig()) != default
    with pytest.raises(ConfigError, match="cannot read"):
        index_key(collection / "missing", "HashEmbeddings")


def _index_dir(retriever: Any) -> Path:
    return Path(retriever.store.config.path)


def test_eval_index_cache_follows_hnsw_not_bm25_or_fusion(collection: Path, tmp_path: Path) -> None:
    dataset = load_beir(collection)
    embedding = HashEmbeddings()
    cache = tmp_path / "cache"

    def opened(config: dict[str, Any]) -> Path:
        settings = HybridConfig.model_validate(config)
        return _index_dir(
            open_eval_index(collection, dataset, embedding, settings=settings, cache_dir=cache)
        )

    base = opened({})
    assert embedding.embedded_documents == 9
    # BM25 and fusion settings: the same index, nothing embedded again
    assert opened({"bm25": {"k1": 1.5, "b": 0.9}}) == base
    assert opened({"fusion": {"method": "rrf", "rrf_k": 10, "fetch_k": 7}}) == base
    assert opened({"store": {"hnsw": {"ef_search": 64}}}) == base
    assert embedding.embedded_documents == 9
    # graph settings: a new index (the old one would raise CollectionConfigError)
    other = opened({"store": {"hnsw": {"ef_construction": 100}}})
    assert other != base
    assert embedding.embedded_documents == 18
    assert opened({"store": {"hnsw": {"space": "l2"}}}) not in {base, other}
    assert embedding.embedded_documents == 27
    assert opened({"store": {"hnsw": {"ef_construction": 100}}}) == other
    assert embedding.embedded_documents == 27


# ---------------------------------------------------------------------- load_beir errors
CORPUS = "corpus.jsonl"
QUERIES = "queries.jsonl"
QRELS = "qrels/test.tsv"
GOOD_DOC = '{"_id": "coffee-0", "title": "Coffee", "text": "Notes on espresso."}'
GOOD_QUERY = '{"_id": "coffee-q0", "text": "espresso"}'
HEADER = "query-id\tcorpus-id\tscore"

MALFORMED = {
    "corpus row without _id": (CORPUS, [GOOD_DOC, '{"text": "x"}'], 2, "missing '_id'"),
    "corpus row without text": (CORPUS, [GOOD_DOC, '{"_id": "x"}'], 2, "missing 'text'"),
    "corpus text null": (CORPUS, ['{"_id": "x", "text": null}'], 1, "missing 'text'"),
    "corpus text a number": (CORPUS, ['{"_id": "x", "text": 3}'], 1, "'text' must be a string"),
    "corpus title a list": (
        CORPUS,
        ['{"_id": "x", "title": [], "text": "t"}'],
        1,
        "'title' must be a string",
    ),
    "corpus _id a list": (CORPUS, ['{"_id": [1], "text": "t"}'], 1, "'_id' must be a string"),
    "corpus _id empty": (CORPUS, ['{"_id": "", "text": "t"}'], 1, "must not be empty"),
    "corpus duplicate _id": (CORPUS, [GOOD_DOC, "", GOOD_DOC], 3, "duplicate _id"),
    "corpus bad JSON": (CORPUS, [GOOD_DOC, '{"_id": "x", '], 2, "invalid JSON"),
    "corpus line not an object": (CORPUS, [GOOD_DOC, "[1, 2]"], 2, "expected a JSON object"),
    "corpus not UTF-8": (CORPUS, [GOOD_DOC, '{"_id": "\xff"}'], 2, "not UTF-8"),
    "query row without _id": (QUERIES, [GOOD_QUERY, '{"text": "q"}'], 2, "missing '_id'"),
    "query row without text": (QUERIES, [GOOD_QUERY, '{"_id": "q"}'], 2, "missing 'text'"),
    "query text blank": (QUERIES, [GOOD_QUERY, '{"_id": "q", "text": " "}'], 2, "empty 'text'"),
    "query bad JSON": (QUERIES, ["{"], 1, "invalid JSON"),
    "qrels grade 1.0": (QRELS, [HEADER, "coffee-q0\tcoffee-0\t1.0"], 2, "'1.0' is not an int"),
    "qrels grade 1.0, no header": (QRELS, ["coffee-q0\tcoffee-0\t1.0"], 1, "not an integer"),
    "qrels grade a word": (QRELS, [HEADER, "coffee-q0\tcoffee-0\thigh"], 2, "not an integer"),
    "qrels two columns": (QRELS, [HEADER, "coffee-q0\tcoffee-0"], 2, "3 tab-separated"),
    "qrels five columns": (QRELS, [HEADER, "a\tb\tc\td\t1"], 2, "got 5"),
    "qrels empty id": (QRELS, [HEADER, "\tcoffee-0\t1"], 2, "empty query or document id"),
    "qrels conflicting grades": (
        QRELS,
        [HEADER, "coffee-q0\tcoffee-0\t1", "coffee-q0\tcoffee-0\t2"],
        3,
        "judged twice",
    ),
    "qrels not UTF-8": (QRELS, [HEADER, "coffee-q0\t\xff\t1"], 2, "not UTF-8"),
}


def _write_lines(path: Path, lines: list[str]) -> None:
    # "\xff" in a line stands for an invalid UTF-8 byte
    data = b"\n".join(line.encode("utf-8").replace(b"\xc3\xbf", b"\xff") for line in lines)
    path.write_bytes(data)


@pytest.mark.parametrize("case", MALFORMED.values(), ids=MALFORMED.keys())
def test_load_beir_malformed_line_names_file_and_line(
    collection: Path, case: tuple[str, list[str], int, str]
) -> None:
    name, lines, line, message = case
    path = collection / name
    _write_lines(path, lines)
    with pytest.raises(ConfigError) as caught:
        load_beir(collection)
    text = str(caught.value)
    assert text.startswith(f"{path}:{line}: "), text
    assert message in text


@pytest.mark.parametrize(
    ("name", "lines", "message"),
    [
        (CORPUS, [], "no records"),
        (CORPUS, ["", "  "], "no records"),
        (QUERIES, [], "no records"),
        (QRELS, [HEADER], "no query of"),
        (QRELS, [HEADER, "coffee-q0\tcoffee-0\t0"], "no query of"),
        (QRELS, [HEADER, "unknown-q\tcoffee-0\t1"], "no query of"),
    ],
    ids=[
        "empty corpus",
        "blank corpus",
        "empty queries",
        "no judgements",
        "none relevant",
        "unknown queries",
    ],
)
def test_load_beir_nothing_to_evaluate(
    collection: Path, name: str, lines: list[str], message: str
) -> None:
    path = collection / name
    _write_lines(path, lines)
    with pytest.raises(ConfigError, match=message) as caught:
        load_beir(collection)
    assert str(caught.value).startswith(str(path))


@pytest.mark.parametrize("name", [CORPUS, QUERIES, QRELS])
def test_load_beir_missing_file(collection: Path, name: str) -> None:
    (collection / name).unlink()
    with pytest.raises(ConfigError, match=f"cannot read {collection / name}"):
        load_beir(collection)


def test_load_beir_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_beir(tmp_path / "nowhere")


def test_load_beir_accepts_trec_qrels_integer_ids_bom_and_blank_lines(tmp_path: Path) -> None:
    root = tmp_path / "trec"
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(
        '\ufeff{"_id": 1, "text": "one"}\n\n{"_id": "2", "title": null, "text": ""}\n',
        encoding="utf-8",
    )
    (root / "queries.jsonl").write_text('{"_id": 7, "text": "one"}\n', encoding="utf-8")
    (root / "qrels" / "test.tsv").write_text("7\t0\t1\t2\n\n7\tQ0\t2\t-1\n7\t0\t1\t2\n")
    dataset = load_beir(root)
    assert dataset.corpus == {"1": ("", "one"), "2": ("", "")}
    assert dataset.queries == {"7": "one"}
    assert dataset.qrels == {"7": {"1": 2, "2": -1}}


ROW = st.one_of(
    st.fixed_dictionaries(
        {"_id": st.one_of(st.text(max_size=3), st.integers(), st.none()), "text": st.text()},
        optional={"title": st.one_of(st.text(max_size=3), st.none(), st.integers())},
    ).map(json.dumps),
    st.dictionaries(st.sampled_from(["_id", "text", "title", "x"]), st.integers()).map(json.dumps),
    st.text(max_size=8),
)
QREL = st.one_of(
    st.lists(st.sampled_from(["q", "d", "0", "1", "2", "1.0", "-1", "", "x"]), max_size=5).map(
        "\t".join
    ),
    st.text(max_size=8),
)


@settings(max_examples=150, deadline=None)
@given(
    corpus=st.lists(ROW, max_size=4),
    queries=st.lists(ROW, max_size=4),
    qrels=st.lists(QREL, max_size=4),
    junk=st.binary(max_size=4),
)
def test_load_beir_raises_only_config_errors(
    corpus: list[str], queries: list[str], qrels: list[str], junk: bytes
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "fuzz"
        (root / "qrels").mkdir(parents=True)
        (root / "corpus.jsonl").write_bytes("\n".join(corpus).encode("utf-8", "surrogatepass"))
        (root / "queries.jsonl").write_bytes(
            "\n".join(queries).encode("utf-8", "surrogatepass") + junk
        )
        (root / "qrels" / "test.tsv").write_bytes("\n".join(qrels).encode("utf-8", "surrogatepass"))
        try:
            dataset = load_beir(root)
        except ConfigError as e:
            error: ConfigError | None = e
        else:
            error = None
            assert dataset.queries
            assert set(dataset.queries) == set(dataset.qrels)
            assert all(isinstance(g, int) for r in dataset.qrels.values() for g in r.values())
        if error is not None:  # the message names the file (and line) at fault
            assert str(error).startswith((str(root), f"cannot read {root}")), error


# ---------------------------------------------------------------------- sweeps fuse like invoke
def test_sweep_equals_the_online_retriever(harder: Path, tmp_path: Path) -> None:
    """Every sweep row equals ``evaluate_search`` of ``invoke`` with that setting, exactly.

    The HNSW graph is deliberately poor (M=2, beams of 2), so a deeper vector search does not
    start with a shallower one: the sweep must search each candidate depth as ``invoke`` does.
    """
    dataset = load_beir(harder)
    poor = HybridConfig.model_validate(
        {"store": {"hnsw": {"ef_construction": 2, "ef_search": 2, "max_neighbors": 2}}}
    )
    retriever = open_eval_index(
        harder, dataset, HashEmbeddings(), settings=poor, cache_dir=tmp_path / "cache"
    )
    grid = parse_sweep(["fusion=rrf,zscore", "fetch_k=3,20,120", "weights=0.5:0.5,1:0"])
    rows = sweep(retriever, dataset, grid)
    assert len(rows) == len(grid) == 12
    assert [r["ndcg@10"] for r in rows] == sorted((r["ndcg@10"] for r in rows), reverse=True)
    assert len({r["ndcg@10"] for r in rows}) > 3  # the settings matter on this collection
    for row in rows:
        setting = {
            "fusion": row["fusion"],
            "rrf_k": row["rrf_k"],
            "weights": row["weights"],
            "fetch_k": row["fetch_k"],
        }

        def online(query: str, k: int, setting: dict[str, Any] = setting) -> list[str]:
            return [str(d.id) for d in retriever.invoke(query, k=k, **setting)]

        expected = evaluate_search("hybrid", online, dataset).metrics
        assert {m: row[m] for m in METRICS} == expected, setting


# ---------------------------------------------------------------------- the eval command
def run_eval(
    capsys: pytest.CaptureFixture[str], dataset: Path, cache: Path, *args: str
) -> tuple[int, str, str]:
    code = cli.main(["eval", "--dataset", str(dataset), "--cache-dir", str(cache), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def table_rows(out: str) -> dict[str, dict[str, str]]:
    """The printed Markdown table as {first cell: {column: cell}}."""
    lines = [line for line in out.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    return {row[0]: dict(zip(header, row, strict=True)) for row in rows}


LATENCIES = ("p50_ms", "p95_ms", "p99_ms")


def test_eval_command_end_to_end(
    collection: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    embedding: HashEmbeddings,
) -> None:
    cache, out = tmp_path / "cache", tmp_path / "rows.json"
    code, stdout, stderr = run_eval(capsys, collection, cache, "--mode", "all", "--json", str(out))
    assert code == 0, stderr
    assert stdout.splitlines()[0] == "tiny (test, 3 rows)"
    assert embedding.embedded_documents == 9
    table = table_rows(stdout)
    assert set(table) == {"hybrid", "bm25", "vector"}
    rows = {r["mode"]: r for r in json.loads(out.read_text())}
    assert set(rows) == set(table)
    for mode, row in rows.items():
        assert set(METRICS) | set(LATENCIES) <= set(row), mode
        for metric in METRICS:
            assert 0.0 <= row[metric] <= 1.0, (mode, metric)
            assert table[mode][metric] == f"{row[metric]:.4f}", (mode, metric)
        for latency in LATENCIES:
            assert math.isfinite(row[latency]), (mode, latency)
            assert row[latency] > 0, (mode, latency)
        assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"], mode
    # the same numbers as the Python API on the same index (which embeds nothing)
    api_embedding = HashEmbeddings()
    api = {r["mode"]: r for r in run_evaluation(collection, api_embedding, cache_dir=cache)}
    assert api_embedding.embedded_documents == 0
    for mode, row in rows.items():
        assert {m: row[m] for m in METRICS} == {m: api[mode][m] for m in METRICS}, mode
    # a second run reuses the index: nothing is embedded again, the metrics are the same
    code, _, stderr = run_eval(capsys, collection, cache, "--json", str(out))
    assert code == 0, stderr
    assert embedding.embedded_documents == 9
    again = {r["mode"]: r for r in json.loads(out.read_text())}
    for mode, row in rows.items():
        assert {m: row[m] for m in METRICS} == {m: again[mode][m] for m in METRICS}, mode
    assert len(list(cache.iterdir())) == 1


def test_eval_command_split_picks_the_qrels_file(
    collection: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    embedding: HashEmbeddings,
) -> None:
    cache, out = tmp_path / "cache", tmp_path / "dev.json"
    code, stdout, stderr = run_eval(
        capsys, collection, cache, "--split", "dev", "--mode", "hybrid", "--json", str(out)
    )
    assert code == 0, stderr
    assert stdout.splitlines()[0] == "tiny (dev, 1 rows)"
    (row,) = json.loads(out.read_text())
    dev = load_beir(collection, "dev")
    assert set(dev.qrels) == {"coffee-q0", "garden-q1"}
    (expected,) = run_evaluation(
        collection, HashEmbeddings(), split="dev", modes=["hybrid"], cache_dir=cache
    )
    assert {m: row[m] for m in METRICS} == {m: expected[m] for m in METRICS}
    (test,) = run_evaluation(collection, HashEmbeddings(), modes=["hybrid"], cache_dir=cache)
    assert row["ndcg@10"] < test["ndcg@10"]  # other judgements, other scores
    assert embedding.embedded_documents == 9  # qrels are not part of the index
    code, _, stderr = run_eval(capsys, collection, cache, "--split", "train")
    assert code == 2
    assert f"cannot read {collection / 'qrels' / 'train.tsv'}" in stderr


def test_eval_command_sweep_equals_normal_evaluations(
    harder: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    embedding: HashEmbeddings,
) -> None:
    cache, out = tmp_path / "cache", tmp_path / "sweep.json"
    spec = ("fusion=rrf,zscore", "rrf_k=10,60", "weights=0.5:0.5,0:1")
    code, stdout, stderr = run_eval(capsys, harder, cache, "--sweep", *spec, "--json", str(out))
    assert code == 0, stderr
    assert stdout.splitlines()[0] == "harder (test, 8 rows)"
    rows = json.loads(out.read_text())
    assert {(r["fusion"], r["rrf_k"], tuple(r["weights"])) for r in rows} == {
        (fusion, rrf_k, weights)
        for fusion in ("rrf", "zscore")
        for rrf_k in (10.0, 60.0)
        for weights in ((0.5, 0.5), (0.0, 1.0))
    }
    assert len({r["ndcg@10"] for r in rows}) > 1
    indexed = embedding.embedded_documents
    for row in rows:
        assert row["fetch_k"] == 50
        settings = HybridConfig.model_validate(
            {"fusion": {"method": row["fusion"], "rrf_k": row["rrf_k"], "weights": row["weights"]}}
        )
        (normal,) = run_evaluation(
            harder, embedding, modes=["hybrid"], settings=settings, cache_dir=cache
        )
        for metric in METRICS:
            assert row[metric] == pytest.approx(normal[metric], abs=1e-12), (row, metric)
    assert embedding.embedded_documents == indexed


def test_eval_command_tune_fits_a_model_that_evaluates_as_printed(
    harder: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    embedding: HashEmbeddings,
) -> None:
    cache, out = tmp_path / "cache", tmp_path / "tune.json"
    code, stdout, stderr = run_eval(capsys, harder, cache, "--tune", "--json", str(out))
    assert code == 0, stderr
    assert stdout.splitlines()[0] == "harder (test, 25 queries, in-sample)"
    table = table_rows(stdout.split("\n\n")[0])
    assert set(table) == {"fixed weights", "adaptive"}
    printed = yaml.safe_load(stdout.split("\n\n", 1)[1])
    result = json.loads(out.read_text())
    model = AdaptiveWeights.model_validate(result["adaptive"])
    assert AdaptiveWeights.model_validate(printed["fusion"]["adaptive"]) == model
    assert any(value != 0.0 for value in model.coefficients.values())
    rows = {r["fusion"]: r for r in result["rows"]}
    indexed = embedding.embedded_documents
    # each row equals a normal evaluation of the hybrid mode with that configuration
    for name, section in (("fixed weights", {}), ("adaptive", printed["fusion"])):
        settings = HybridConfig.model_validate({"fusion": section})
        (normal,) = run_evaluation(
            harder, embedding, modes=["hybrid"], settings=settings, cache_dir=cache
        )
        for metric in ("ndcg@10", "mrr@10", "p@1", "p@5"):
            assert rows[name][metric] == pytest.approx(normal[metric], abs=1e-12), (name, metric)
            assert table[name][metric] == f"{rows[name][metric]:.4f}"
    assert embedding.embedded_documents == indexed


@pytest.mark.parametrize(
    "case",
    [
        (["--sweep", "rrf_k=10,60", "--baseline", "langchain"], "--baseline cannot be combined"),
        (["--sweep", "rrf_k=10", "--mode", "bm25"], "--mode bm25 cannot be combined"),
        (["--sweep", "rrf_k=10", "--mode", "all"], "--mode all cannot be combined"),
        (["--sweep", "fusion=borda"], "unknown fusion method 'borda'"),
        (["--tune", "--sweep", "rrf_k=10"], "--tune fits the hybrid mode's weights alone"),
        (["--tune", "--exact-match"], "--tune fits the hybrid mode's weights alone"),
    ],
    ids=["baseline", "mode bm25", "mode all", "bad spec", "tune sweep", "tune exact"],
)
def test_eval_command_rejects_ignored_options(
    collection: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    embedding: HashEmbeddings,
    case: tuple[list[str], str],
) -> None:
    args, message = case
    cache = tmp_path / "cache"
    code, stdout, stderr = run_eval(capsys, collection, cache, *args)
    assert code == 2
    assert stdout == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("langchain-hybrid: error: ")
    assert message in lines[0]
    assert embedding.embedded_documents == 0
    assert not cache.exists()


def test_eval_command_hnsw_config_builds_a_new_index(
    collection: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    embedding: HashEmbeddings,
) -> None:
    cache = tmp_path / "cache"
    configs = {
        "ef.yaml": "store:\n  hnsw:\n    ef_construction: 100\n",
        "space.yaml": "store:\n  hnsw:\n    space: ip\n",
        "bm25.yaml": "bm25:\n  k1: 1.6\nfusion:\n  method: rrf\n  rrf_k: 10\n",
        "search.yaml": "store:\n  hnsw:\n    ef_search: 40\n",
    }
    for name, text in configs.items():
        (tmp_path / name).write_text(text)
    assert run_eval(capsys, collection, cache)[0] == 0
    assert embedding.embedded_documents == 9
    for name, embedded in [
        ("ef.yaml", 18),
        ("space.yaml", 27),
        ("bm25.yaml", 27),
        ("search.yaml", 27),
    ]:
        code, _, stderr = run_eval(capsys, collection, cache, "--config", str(tmp_path / name))
        assert code == 0, (name, stderr)
        assert embedding.embedded_documents == embedded, name
    assert len(list(cache.iterdir())) == 3
