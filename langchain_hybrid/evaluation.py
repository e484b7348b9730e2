"""Retrieval evaluation on BEIR-layout collections: metrics, runs, latency, sweeps.

A collection directory holds ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl``
(``_id``, ``text``) and ``qrels/<split>.tsv`` (``query-id``, ``corpus-id``, ``score``, with a
header line). Metrics follow trec_eval (as pytrec_eval and ranx compute them): relevance grades
are gains as they are (linear, so grade 2 counts twice grade 1 in nDCG), a document is relevant
for the binary metrics when its grade is >= 1, and queries without any relevant document are
left out. A test checks every metric against pytrec_eval on the same run.

Metrics: ``ndcg@10``, ``recall@100``, ``mrr@10``, ``map@100``, ``p@1``, ``p@5``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.documents import Document

from langchain_hybrid.errors import ConfigError

logger = logging.getLogger(__name__)

METRICS = ("ndcg@10", "recall@100", "mrr@10", "map@100", "p@1", "p@5")
RUN_DEPTH = 100

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Sequence[str]]  # query id -> ranked document ids, best first


@dataclass(frozen=True)
class BeirDataset:
    """A loaded BEIR collection (the queries kept are those with judgements in the split)."""

    name: str
    corpus: dict[str, tuple[str, str]]  # id -> (title, text)
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    def documents(self) -> list[Document]:
        """The corpus as Documents: title and text joined by a newline, title in metadata."""
        return [
            Document(
                id=doc_id,
                page_content=f"{title}\n{text}" if title else text,
                metadata={"title": title} if title else {},
            )
            for doc_id, (title, text) in self.corpus.items()
        ]


def _read_jsonl(path: Path) -> Iterable[dict[str, Any]]:
    try:
        with path.open(encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except ValueError as e:
                        msg = f"{path}:{number}: invalid JSON: {e}"
                        raise ConfigError(msg) from e
    except OSError as e:
        msg = f"cannot read {path}: {e.strerror or e}"
        raise ConfigError(msg) from e


def load_beir(directory: str | Path, split: str = "test") -> BeirDataset:
    """Load a BEIR-layout collection.

    Raises:
        ConfigError: a file is missing or malformed.
    """
    root = Path(directory)
    corpus = {
        str(row["_id"]): (str(row.get("title") or ""), str(row.get("text") or ""))
        for row in _read_jsonl(root / "corpus.jsonl")
    }
    queries = {str(row["_id"]): str(row["text"]) for row in _read_jsonl(root / "queries.jsonl")}
    qrels: dict[str, dict[str, int]] = {}
    qrels_path = root / "qrels" / f"{split}.tsv"
    try:
        lines = qrels_path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        msg = f"cannot read {qrels_path}: {e.strerror or e}"
        raise ConfigError(msg) from e
    for number, line in enumerate(lines, start=1):
        parts = line.split("\t")
        if number == 1 and not parts[-1].strip().lstrip("-").isdigit():
            continue  # header
        if len(parts) < 3:  # noqa: PLR2004
            continue
        qid, did, grade = parts[0], parts[1], parts[-1]
        qrels.setdefault(qid, {})[did] = int(grade)
    judged = {q: r for q, r in qrels.items() if q in queries and any(g > 0 for g in r.values())}
    return BeirDataset(
        name=root.name,
        corpus=corpus,
        queries={q: queries[q] for q in judged},
        qrels=judged,
    )


# ---------------------------------------------------------------------- metrics
def _dcg(gains: Iterable[float]) -> float:
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains))


def query_metrics(ranked: Sequence[str], judged: Mapping[str, int]) -> dict[str, float]:
    """trec_eval metrics of one ranked list against one query's judgements."""
    relevant = {d for d, g in judged.items() if g > 0}
    if not relevant:
        return dict.fromkeys(METRICS, 0.0)
    ranked = list(dict.fromkeys(ranked))
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)
    idcg = _dcg(ideal[:10])
    out = {
        "ndcg@10": _dcg(max(judged.get(d, 0), 0) for d in ranked[:10]) / idcg,
        "recall@100": len(relevant.intersection(ranked[:100])) / len(relevant),
        "p@1": len(relevant.intersection(ranked[:1])) / 1,
        "p@5": len(relevant.intersection(ranked[:5])) / 5,
    }
    out["mrr@10"] = next((1 / (i + 1) for i, d in enumerate(ranked[:10]) if d in relevant), 0.0)
    hits, precision_sum = 0, 0.0
    for i, doc in enumerate(ranked[:100]):
        if doc in relevant:
            hits += 1
            precision_sum += hits / (i + 1)
    out["map@100"] = precision_sum / len(relevant)
    return out


def evaluate_run(run: Run, qrels: Qrels) -> dict[str, float]:
    """Mean of :func:`query_metrics` over every judged query (missing runs count as zero)."""
    totals = dict.fromkeys(METRICS, 0.0)
    for qid, judged in qrels.items():
        for name, value in query_metrics(run.get(qid, ()), judged).items():
            totals[name] += value
    return {name: value / len(qrels) for name, value in totals.items()} if qrels else totals


def percentiles(samples_ms: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99 (nearest-rank on the sorted samples) and the mean, in milliseconds."""
    if not samples_ms:
        return {"p50_ms": math.nan, "p95_ms": math.nan, "p99_ms": math.nan, "mean_ms": math.nan}
    ordered = sorted(samples_ms)

    def rank(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(p * len(ordered)) - 1))]

    return {
        "p50_ms": rank(0.50),
        "p95_ms": rank(0.95),
        "p99_ms": rank(0.99),
        "mean_ms": sum(ordered) / len(ordered),
    }


# ---------------------------------------------------------------------- running
@dataclass
class ModeResult:
    """Quality and latency of one retrieval mode over a query set."""

    mode: str
    metrics: dict[str, float]
    latency: dict[str, float]
    run: dict[str, list[str]] = field(repr=False)


def run_queries(
    search: Callable[[str], Sequence[str]],
    queries: Mapping[str, str],
    *,
    progress: bool = False,
    description: str = "querying",
) -> tuple[dict[str, list[str]], list[float]]:
    """Run ``search`` (query text -> ranked ids) over every query, timing each call (ms)."""
    run: dict[str, list[str]] = {}
    timings: list[float] = []
    items: Iterable[tuple[str, str]] = queries.items()
    if progress:
        from tqdm.auto import tqdm  # noqa: PLC0415

        items = tqdm(items, total=len(queries), desc=description, unit="q")
    for qid, text in items:
        start = time.perf_counter()
        run[qid] = list(search(text))
        timings.append((time.perf_counter() - start) * 1000.0)
    return run, timings


SHALLOW_METRICS = ("ndcg@10", "mrr@10", "p@1", "p@5")


def evaluate_search(
    mode: str,
    search: Callable[[str, int], Sequence[str]],
    dataset: BeirDataset,
    *,
    progress: bool = False,
) -> ModeResult:
    """Run and score one search function (query, k -> ranked ids) on a dataset.

    The @10 metrics (and P@1, P@5) come from ``search(query, 10)``, exactly the call a RAG
    chain makes; Recall@100 and MAP@100 from ``search(query, 100)``. Latency is that of the
    k=10 calls. (Candidate depth matters: Chroma searches HNSW with ``max(ef_search, n)``,
    and fusion sees ``fetch_k`` candidates per leg, so a deeper call is not a superset.)
    """
    shallow, timings = run_queries(
        lambda q: search(q, 10), dataset.queries, progress=progress, description=f"{mode} k=10"
    )
    deep, _ = run_queries(
        lambda q: search(q, RUN_DEPTH),
        dataset.queries,
        progress=progress,
        description=f"{mode} k={RUN_DEPTH}",
    )
    metrics = evaluate_run(deep, dataset.qrels)
    metrics.update(
        {k: v for k, v in evaluate_run(shallow, dataset.qrels).items() if k in SHALLOW_METRICS}
    )
    return ModeResult(mode, metrics, percentiles(timings), deep)


def index_key(dataset_dir: str | Path, embedding_id: str) -> str:
    """A cache key for an evaluation index: the dataset's corpus file and the embedding model.

    BM25 and fusion settings are not part of it: the BM25 index is rebuilt from Chroma (no
    re-embedding) when its settings change, and fusion happens at query time.
    """
    corpus = Path(dataset_dir) / "corpus.jsonl"
    stat = corpus.stat()
    raw = f"{corpus.resolve()}|{stat.st_size}|{int(stat.st_mtime)}|{embedding_id}"
    return f"{Path(dataset_dir).name}-{hashlib.sha256(raw.encode()).hexdigest()[:12]}"


def _weights_pair(raw: str) -> tuple[float, float]:
    bm25_weight, vector_weight = raw.split(":")
    return (float(bm25_weight), float(vector_weight))


_SWEEP_PARSERS: dict[str, Callable[[str], Any]] = {
    "rrf_k": float,
    "fetch_k": int,
    "weights": _weights_pair,
    "fusion": str,
}


def parse_sweep(specs: Sequence[str]) -> list[dict[str, Any]]:
    """Expand ``name=v1,v2`` specs into the grid of settings they describe.

    Weights are given as ``weights=0.5:0.5,0.3:0.7`` (bm25:vector). Names: ``rrf_k``,
    ``fetch_k``, ``weights``, ``fusion``.

    Raises:
        ConfigError: a spec is malformed.
    """
    axes: list[list[tuple[str, Any]]] = []
    for spec in specs:
        name, sep, values = spec.partition("=")
        if not sep or not values:
            msg = f"sweep spec {spec!r} must look like name=v1,v2"
            raise ConfigError(msg)
        if name not in _SWEEP_PARSERS:
            msg = f"cannot sweep {name!r}; use {', '.join(sorted(_SWEEP_PARSERS))}"
            raise ConfigError(msg)
        try:
            parsed = [_SWEEP_PARSERS[name](raw) for raw in values.split(",")]
        except ValueError as e:
            msg = f"bad value in sweep spec {spec!r}: {e}"
            raise ConfigError(msg) from e
        axes.append([(name, v) for v in parsed])
    return [dict(combo) for combo in itertools.product(*axes)]


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A Markdown table of ``rows`` (floats shown with 4 decimals, ms with 2)."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"  # noqa: PLR2004
        if isinstance(value, tuple):
            return ":".join(str(v) for v in value)
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------------- indexes and modes
def embedding_id(embedding: Any) -> str:
    """A stable name for an embedding model, for cache keys."""
    name = type(embedding).__name__
    for attribute in ("model", "model_name", "max_length"):
        value = getattr(embedding, attribute, None)
        if value is not None:
            name += f"-{value}"
    return name


def default_cache_dir() -> Path:
    """Where evaluation indexes are kept between runs: ``~/.cache/langchain-hybrid/eval``."""
    return Path.home() / ".cache" / "langchain-hybrid" / "eval"


def open_eval_index(
    dataset_dir: str | Path,
    dataset: BeirDataset,
    embedding: Any,
    *,
    settings: Any = None,
    cache_dir: str | Path | None = None,
    batch_size: int = 256,
    progress: bool = False,
) -> Any:
    """Open the persisted evaluation index of a dataset, embedding only what is missing.

    The index lives in ``cache_dir/<dataset>-<key>`` (see :func:`index_key`); a second run
    with the same dataset and embedding model embeds nothing. ``settings`` (a
    :class:`~langchain_hybrid.config.HybridConfig`) supplies BM25 and fusion settings.
    """
    from langchain_hybrid.config import HybridConfig  # noqa: PLC0415
    from langchain_hybrid.retrievers import HybridRetriever  # noqa: PLC0415
    from langchain_hybrid.stores import ChromaStore, StoreConfig  # noqa: PLC0415

    config = settings if settings is not None else HybridConfig()
    directory = Path(cache_dir or default_cache_dir()) / index_key(
        dataset_dir, embedding_id(embedding)
    )
    store = ChromaStore(
        StoreConfig(
            mode="persistent", path=str(directory), collection="eval", hnsw=config.store.hnsw
        )
    )
    fusion = config.fusion
    retriever = HybridRetriever.from_store(
        store,
        embedding,
        bm25_path=directory / "bm25" / "eval",
        bm25_params=config.bm25.params(),
        cache=False,  # every measured query does its full work
        refresh_interval_seconds=None,
        k=fusion.k,
        fetch_k=fusion.fetch_k,
        rrf_k=fusion.rrf_k,
        weights=fusion.weights,
        fusion=fusion.method,
    )
    missing = [d for d in dataset.documents() if d.id not in retriever.bm25]
    if missing:
        logger.info(
            "embedding %d of %d documents into %s", len(missing), len(dataset.corpus), directory
        )
        bar = None
        if progress:
            from tqdm.auto import tqdm  # noqa: PLC0415

            bar = tqdm(total=len(missing), desc="indexing", unit="doc")
        with retriever.deferred_save():
            for start in range(0, len(missing), batch_size):
                batch = missing[start : start + batch_size]
                retriever.add_documents(batch)
                if bar is not None:
                    bar.update(len(batch))
        if bar is not None:
            bar.close()
    return retriever


def mode_search(retriever: Any, mode: str) -> Callable[[str, int], list[str]]:
    """A (query, k) -> ranked ids function for ``hybrid``, ``bm25`` or ``vector`` mode."""
    if mode == "hybrid":

        def hybrid(query: str, k: int) -> list[str]:
            return [str(d.id) for d in retriever.invoke(query, k=k)]

        return hybrid
    if mode in {"bm25", "vector"}:

        def leg(query: str, k: int) -> list[str]:
            return [h.id for h in retriever.search_leg(mode, query, k=k)]

        return leg
    msg = f"unknown mode {mode!r}; expected hybrid, bm25 or vector"
    raise ConfigError(msg)


def langchain_baseline(retriever: Any, dataset: BeirDataset) -> Callable[[str, int], list[str]]:
    """LangChain's stock hybrid over the same data and vectors.

    ``EnsembleRetriever([BM25Retriever, Chroma.as_retriever()], weights=[0.5, 0.5])`` with
    ``k`` per leg and the union cut to ``k``; the Chroma leg reads the collection this package
    already embedded (same vectors, same HNSW graph), so the comparison embeds nothing twice. Needs
    ``langchain-community``, ``langchain-classic`` and ``langchain-chroma``.

    Raises:
        ConfigError: a baseline package is not installed.
    """
    try:
        from langchain_chroma import Chroma  # noqa: PLC0415
        from langchain_classic.retrievers import EnsembleRetriever  # noqa: PLC0415
        from langchain_community.retrievers import BM25Retriever  # noqa: PLC0415
    except ImportError as e:
        msg = (
            "--baseline langchain needs `pip install langchain-community langchain-classic "
            f"langchain-chroma rank-bm25` ({e.name} is missing)"
        )
        raise ConfigError(msg) from e
    docs = dataset.documents()
    for doc in docs:
        doc.metadata = {**doc.metadata, "doc_id": doc.id}
    bm25 = BM25Retriever.from_documents(docs)
    chroma = Chroma(
        client=retriever.store.client,
        collection_name=retriever.store.config.chroma_collection,
        embedding_function=retriever.embedding,
    )
    vector = chroma.as_retriever()
    ensemble = EnsembleRetriever(retrievers=[bm25, vector], weights=[0.5, 0.5])

    def search(query: str, k: int) -> list[str]:
        # the stock recipe ignores k at call time: each leg's k is set on the leg, and the
        # ensemble returns the union of both legs, which we cut to k
        bm25.k = k
        vector.search_kwargs = {"k": k}
        return [str(d.metadata.get("doc_id") or d.id) for d in ensemble.invoke(query)][:k]

    return search


def leg_runs(
    retriever: Any, dataset: BeirDataset, depth: int, *, progress: bool = False
) -> dict[str, dict[str, list[tuple[str, float]]]]:
    """Each leg's ranked ``(id, score)`` lists for every query, ``depth`` deep (run once)."""
    out: dict[str, dict[str, list[tuple[str, float]]]] = {}
    for leg in ("bm25", "vector"):

        def search(query: str, leg: str = leg) -> list[tuple[str, float]]:
            return [(h.id, h.score) for h in retriever.search_leg(leg, query, k=depth)]

        runs: dict[str, list[tuple[str, float]]] = {}
        items: Iterable[tuple[str, str]] = dataset.queries.items()
        if progress:
            from tqdm.auto import tqdm  # noqa: PLC0415

            items = tqdm(items, total=len(dataset.queries), desc=f"{leg} leg", unit="q")
        for qid, text in items:
            runs[qid] = search(text)
        out[leg] = runs
    return out


def sweep(
    retriever: Any,
    dataset: BeirDataset,
    grid: Sequence[Mapping[str, Any]],
    *,
    depth: int = RUN_DEPTH,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Score every setting of ``grid`` (see :func:`parse_sweep`) on ``dataset``.

    Each leg runs once per query; every grid point is then fused offline with the same pure
    functions the retriever uses, so a sweep costs one evaluation plus a little arithmetic.
    Each leg contributes ``fetch_k`` candidates, exactly as ``invoke(k=10, fetch_k=...)`` fuses
    them, so the @10 metrics are what a user with that ``fetch_k`` gets; with ``fetch_k`` below
    100 the fused list may be shorter than 100, which lowers recall@100 and MAP@100. Rows hold
    the setting and the metrics, best nDCG@10 first.
    """
    from langchain_hybrid.fusion import fuse  # noqa: PLC0415

    deepest = max([depth, *(int(p.get("fetch_k", retriever.fetch_k)) for p in grid)])
    runs = leg_runs(retriever, dataset, deepest, progress=progress)
    rows = []
    for point in grid:
        fetch_k = int(point.get("fetch_k", retriever.fetch_k))
        weights = point.get("weights", retriever.weights)
        method = point.get("fusion", retriever.fusion)
        rrf_k = float(point.get("rrf_k", retriever.rrf_k))
        fused = {
            qid: [
                f.id
                for f in fuse(
                    method,
                    [runs["bm25"][qid][:fetch_k], runs["vector"][qid][:fetch_k]],
                    weights,
                    rrf_k=rrf_k,
                )[:depth]
            ]
            for qid in dataset.queries
        }
        setting = {"fusion": method, "rrf_k": rrf_k, "weights": tuple(weights), "fetch_k": fetch_k}
        rows.append({**setting, **evaluate_run(fused, dataset.qrels)})
    rows.sort(key=lambda r: -r["ndcg@10"])
    return rows


MODES = ("hybrid", "bm25", "vector")
TABLE_COLUMNS = ("mode", *METRICS, "p50_ms", "p95_ms", "p99_ms")


def run_evaluation(
    dataset_dir: str | Path,
    embedding: Any,
    *,
    split: str = "test",
    modes: Sequence[str] = MODES,
    baseline: bool = False,
    settings: Any = None,
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Evaluate ``modes`` (and optionally LangChain's stock recipe) on a BEIR collection.

    Returns one row per mode: the metrics of :data:`METRICS` and latency percentiles (ms, per
    k=10 call, query embedding included).
    """
    dataset = load_beir(dataset_dir, split)
    retriever = open_eval_index(
        dataset_dir, dataset, embedding, settings=settings, cache_dir=cache_dir, progress=progress
    )
    searches: list[tuple[str, Callable[[str, int], Sequence[str]]]] = [
        (mode, mode_search(retriever, mode)) for mode in modes
    ]
    if baseline:
        searches.append(("langchain-ensemble", langchain_baseline(retriever, dataset)))
    rows = []
    for mode, search in searches:
        result = evaluate_search(mode, search, dataset, progress=progress)
        rows.append({"mode": mode, **result.metrics, **result.latency})
    return rows
