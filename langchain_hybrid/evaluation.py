"""Retrieval evaluation on BEIR-layout collections: metrics, runs, latency, sweeps.

A collection directory holds ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl``
(``_id``, ``text``) and ``qrels/<split>.tsv`` (``query-id``, ``corpus-id``, ``score``, with a
header line; TREC's four columns also work); :func:`load_beir` checks every line. Metrics
follow trec_eval (as pytrec_eval and ranx compute them): relevance grades are gains as they are
(linear, so grade 2 counts twice grade 1 in nDCG), a document is relevant for the binary
metrics when its grade is >= 1, and queries without any relevant document are left out. A test
checks every metric against pytrec_eval on the same run.

Metrics: ``ndcg@10``, ``recall@100``, ``mrr@10``, ``map@100``, ``p@1``, ``p@5``.
"""

from __future__ import annotations

__all__ = ["BeirDataset", "load_beir", "run_evaluation", "sweep"]

import hashlib
import itertools
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.documents import Document

from langchain_hybrid.errors import ConfigError, InvalidQueryError
from langchain_hybrid.fusion import (
    FUSION_METHODS,
    LegRun,
    check_count,
    check_rrf_k,
    check_weights,
)
from langchain_hybrid.stores import HNSWConfig

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from langchain_hybrid.adaptive import AdaptiveWeights
    from langchain_hybrid.config import HybridConfig
    from langchain_hybrid.retrievers import HybridRetriever

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


def _read_jsonl(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for every non-blank line of a JSON Lines file.

    Raises:
        ConfigError: the file cannot be read, or a line is not UTF-8 or not a JSON object.
    """
    try:
        with path.open("rb") as f:
            for number, raw in enumerate(f, start=1):
                try:
                    line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
                except UnicodeDecodeError as e:
                    msg = f"{path}:{number}: not UTF-8 text: {e.reason}"
                    raise ConfigError(msg) from e
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as e:
                    msg = f"{path}:{number}: invalid JSON: {e}"
                    raise ConfigError(msg) from e
                if not isinstance(row, dict):
                    msg = f"{path}:{number}: expected a JSON object, got {type(row).__name__}"
                    raise ConfigError(msg)
                yield number, row
    except OSError as e:
        msg = f"cannot read {path}: {e.strerror or e}"
        raise ConfigError(msg) from e


def _field(row: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> str:
    """A string field of a JSONL row (an integer ``_id`` is taken as its decimal string)."""
    value = row.get(key)
    if value is None:
        if required:
            msg = f"{where}: missing {key!r}"
            raise ConfigError(msg)
        return ""
    if key == "_id" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        msg = f"{where}: {key!r} must be a string, got {type(value).__name__}"
        raise ConfigError(msg)
    if key == "_id" and not value:
        msg = f"{where}: '_id' must not be empty"
        raise ConfigError(msg)
    return value


def _read_records(path: Path, *, title: bool) -> dict[str, tuple[str, str]]:
    """``_id -> (title, text)`` of a BEIR corpus (``title``) or queries file."""
    out: dict[str, tuple[str, str]] = {}
    lines: dict[str, int] = {}
    for number, row in _read_jsonl(path):
        where = f"{path}:{number}"
        doc_id = _field(row, "_id", where)
        if doc_id in out:
            msg = f"{where}: duplicate _id {doc_id!r} (first on line {lines[doc_id]})"
            raise ConfigError(msg)
        heading = _field(row, "title", where, required=False) if title else ""
        text = _field(row, "text", where)
        if not title and not text.strip():
            msg = f"{where}: query {doc_id!r} has an empty 'text'"
            raise ConfigError(msg)
        out[doc_id] = (heading, text)
        lines[doc_id] = number
    if not out:
        msg = f"{path}: no records"
        raise ConfigError(msg)
    return out


_QRELS_COLUMNS = {3: (0, 1, 2), 4: (0, 2, 3)}  # BEIR: qid, did, grade; TREC: qid, 0, did, grade


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """``query id -> {document id: grade}`` of a tab-separated qrels file."""
    try:
        raw_lines = path.read_bytes().splitlines()
    except OSError as e:
        msg = f"cannot read {path}: {e.strerror or e}"
        raise ConfigError(msg) from e
    qrels: dict[str, dict[str, int]] = {}
    for number, raw in enumerate(raw_lines, start=1):
        where = f"{path}:{number}"
        try:
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as e:
            msg = f"{where}: not UTF-8 text: {e.reason}"
            raise ConfigError(msg) from e
        if not line.strip():
            continue
        parts = [part.strip() for part in line.split("\t")]
        columns = _QRELS_COLUMNS.get(len(parts))
        if number == 1 and columns is not None and not _is_number(parts[columns[2]]):
            continue  # the header: query-id, corpus-id, score
        if columns is None:
            msg = (
                f"{where}: expected 3 tab-separated columns (query-id, corpus-id, score) "
                f"or 4 (TREC: query-id, iteration, doc-id, grade), got {len(parts)}"
            )
            raise ConfigError(msg)
        qid, did, grade_text = (parts[i] for i in columns)
        if not qid or not did:
            msg = f"{where}: empty query or document id"
            raise ConfigError(msg)
        try:
            grade = int(grade_text)
        except ValueError:
            msg = f"{where}: relevance grade {grade_text!r} is not an integer"
            raise ConfigError(msg) from None
        judged = qrels.setdefault(qid, {})
        if judged.get(did, grade) != grade:
            msg = f"{where}: ({qid}, {did}) judged twice, {judged[did]} and {grade}"
            raise ConfigError(msg)
        judged[did] = grade
    return qrels


def load_beir(directory: str | Path, split: str = "test") -> BeirDataset:
    """Load a BEIR-layout collection.

    Every corpus and query line must be a JSON object with a string ``_id`` (an integer is
    taken as its decimal string) and ``text`` (corpus lines may add ``title``); ids are unique
    within a file. A qrels line has three tab-separated columns (``query-id``, ``corpus-id``,
    integer ``score``; an optional header first) or TREC's four (``query-id``, iteration,
    ``doc-id``, grade). Queries judged in the split but missing from ``queries.jsonl`` are
    left out (logged), as BEIR's own loader does; judged documents missing from the corpus stay
    (they count as relevant documents never retrieved).

    Raises:
        ConfigError: a file is missing or malformed (the message names the file and line), or
            no query of ``queries.jsonl`` has a relevant document in the split.
    """
    root = Path(directory)
    if not root.is_dir():
        msg = f"dataset directory {root} does not exist"
        raise ConfigError(msg)
    corpus = _read_records(root / "corpus.jsonl", title=True)
    queries = {q: t for q, (_, t) in _read_records(root / "queries.jsonl", title=False).items()}
    qrels_path = root / "qrels" / f"{split}.tsv"
    qrels = _read_qrels(qrels_path)
    judged = {q: r for q, r in qrels.items() if q in queries and any(g > 0 for g in r.values())}
    if not judged:
        msg = (
            f"{qrels_path}: no query of {root / 'queries.jsonl'} has a relevant document "
            f"(grade >= 1) in split {split!r}"
        )
        raise ConfigError(msg)
    unknown = sum(q not in queries for q in qrels)
    if unknown:
        logger.warning("%s: %d judged queries are not in queries.jsonl", qrels_path, unknown)
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


SHALLOW_K = 10
SHALLOW_METRICS = ("ndcg@10", "mrr@10", "p@1", "p@5")  # from the k=SHALLOW_K calls


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
        lambda q: search(q, SHALLOW_K),
        dataset.queries,
        progress=progress,
        description=f"{mode} k={SHALLOW_K}",
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


INDEX_HNSW_FIELDS = ("space", "ef_construction", "max_neighbors")
"""The HNSW settings that shape the built graph, and so belong to an index's cache key."""


def index_key(dataset_dir: str | Path, embedding_id: str, hnsw: HNSWConfig | None = None) -> str:
    """A cache key for an evaluation index: the corpus file, the embedding model, the HNSW graph.

    ``hnsw`` contributes :data:`INDEX_HNSW_FIELDS`: ``space`` and ``ef_construction`` are fixed
    when the collection is created (Chroma refuses to reopen it with other values), and
    ``max_neighbors`` (M) is the degree of the graph, set as vectors are inserted (a value
    changed later is recorded on the collection, but the graph already built keeps its degree).
    ``ef_search`` is left out: it only sets the search beam, and the store applies a changed
    value to the existing collection when it opens it (in a process that has not searched the
    collection yet; see :class:`~langchain_hybrid.stores.HNSWConfig`). BM25 and fusion settings
    are left out too: the BM25 index is rebuilt from Chroma (no re-embedding) when its settings
    change, and fusion happens at query time.

    Raises:
        ConfigError: the corpus file cannot be read.
    """
    graph = hnsw if hnsw is not None else HNSWConfig()
    shape = ",".join(f"{name}={getattr(graph, name)!r}" for name in INDEX_HNSW_FIELDS)
    corpus = Path(dataset_dir) / "corpus.jsonl"
    try:
        stat = corpus.stat()
    except OSError as e:
        msg = f"cannot read {corpus}: {e.strerror or e}"
        raise ConfigError(msg) from e
    raw = f"{corpus.resolve()}|{stat.st_size}|{int(stat.st_mtime)}|{embedding_id}|{shape}"
    return f"{Path(dataset_dir).name}-{hashlib.sha256(raw.encode()).hexdigest()[:12]}"


def _weights_pair(raw: str) -> tuple[float, float]:
    bm25_weight, sep, vector_weight = raw.partition(":")
    if not sep:
        msg = f"weights {raw!r} must look like bm25:vector, e.g. 0.3:0.7"
        raise ValueError(msg)
    try:
        weights = check_weights((float(bm25_weight), float(vector_weight)), 2)
    except InvalidQueryError as e:
        raise ValueError(str(e)) from e
    return (weights[0], weights[1])


def _rrf_k(raw: str) -> float:
    try:
        return check_rrf_k(float(raw))
    except InvalidQueryError as e:
        raise ValueError(str(e)) from e


def _fetch_k(raw: str) -> int:
    try:
        return check_count("fetch_k", int(raw))
    except InvalidQueryError as e:
        raise ValueError(str(e)) from e


def _fusion(raw: str) -> str:
    if raw not in FUSION_METHODS:
        msg = f"unknown fusion method {raw!r}; expected one of {', '.join(sorted(FUSION_METHODS))}"
        raise ValueError(msg)
    return raw


_SWEEP_PARSERS: dict[str, Callable[[str], Any]] = {
    "rrf_k": _rrf_k,
    "fetch_k": _fetch_k,
    "weights": _weights_pair,
    "fusion": _fusion,
}


def parse_sweep(specs: Sequence[str]) -> list[dict[str, Any]]:
    """Expand ``name=v1,v2`` specs into the grid of settings they describe.

    Weights are given as ``weights=0.5:0.5,0.3:0.7`` (bm25:vector). Names: ``rrf_k``,
    ``fetch_k``, ``weights``, ``fusion``; each at most once.

    Raises:
        ConfigError: a spec is malformed, a name repeats, or a value is out of range.
    """
    axes: list[list[tuple[str, Any]]] = []
    seen: set[str] = set()
    for spec in specs:
        name, sep, values = spec.partition("=")
        if not sep or not values:
            msg = f"sweep spec {spec!r} must look like name=v1,v2"
            raise ConfigError(msg)
        if name not in _SWEEP_PARSERS:
            msg = f"cannot sweep {name!r}; use {', '.join(sorted(_SWEEP_PARSERS))}"
            raise ConfigError(msg)
        if name in seen:
            msg = f"sweep spec names {name!r} twice; give all its values at once: {name}=v1,v2"
            raise ConfigError(msg)
        seen.add(name)
        try:
            parsed = [_SWEEP_PARSERS[name](raw.strip()) for raw in values.split(",")]
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
def embedding_id(embedding: Embeddings) -> str:
    """A stable name for an embedding model, for cache keys.

    Weights other than ``fp32`` are appended: the ``weights_id`` of a
    :class:`~langchain_hybrid.embeddings.MiniLMEmbeddings` (``int8-<recipe>``, so an index
    embedded by another int8 recipe is not reused), else a ``precision`` attribute. fp32 keeps
    the name it had before precisions existed, so existing caches stay valid.
    """
    name = type(embedding).__name__
    for attribute in ("model", "model_name", "max_length"):
        value = getattr(embedding, attribute, None)
        if value is not None:
            name += f"-{value}"
    weights = getattr(embedding, "weights_id", None) or getattr(embedding, "precision", None)
    if weights is not None and weights != "fp32":
        name += f"-{weights}"
    return name


def default_cache_dir() -> Path:
    """Where evaluation indexes are kept between runs: ``~/.cache/langchain-hybrid/eval``."""
    return Path.home() / ".cache" / "langchain-hybrid" / "eval"


def open_eval_index(
    dataset_dir: str | Path,
    dataset: BeirDataset,
    embedding: Embeddings,
    *,
    settings: HybridConfig | None = None,
    cache_dir: str | Path | None = None,
    batch_size: int = 256,
    progress: bool = False,
) -> HybridRetriever:
    """Open the persisted evaluation index of a dataset, embedding only what is missing.

    The index lives in ``cache_dir/<dataset>-<key>`` (see :func:`index_key`); a second run
    with the same dataset, embedding model and HNSW graph settings embeds nothing. ``settings``
    (a :class:`~langchain_hybrid.config.HybridConfig`) supplies the HNSW settings
    (``store.hnsw``; the rest of ``store`` is ignored: the index is always a persistent
    collection in the cache directory) and the BM25 and fusion settings.
    """
    from langchain_hybrid.config import HybridConfig  # noqa: PLC0415
    from langchain_hybrid.retrievers import HybridRetriever  # noqa: PLC0415
    from langchain_hybrid.stores import ChromaStore, StoreConfig  # noqa: PLC0415

    config = settings if settings is not None else HybridConfig()
    directory = Path(cache_dir or default_cache_dir()) / index_key(
        dataset_dir, embedding_id(embedding), config.store.hnsw
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
        adaptive=fusion.adaptive,
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


def mode_search(retriever: HybridRetriever, mode: str) -> Callable[[str, int], list[str]]:
    """A (query, k) -> ranked ids function for ``hybrid``, ``bm25`` or ``vector`` mode."""
    if mode == "hybrid":

        def hybrid(query: str, k: int) -> list[str]:
            return [str(d.id) for d in retriever.invoke(query, k=k)]

        return hybrid
    if mode in {"bm25", "vector"}:
        name: Literal["bm25", "vector"] = "bm25" if mode == "bm25" else "vector"

        def leg(query: str, k: int) -> list[str]:
            return [h.id for h in retriever.search_leg(name, query, k=k)]

        return leg
    msg = f"unknown mode {mode!r}; expected hybrid, bm25 or vector"
    raise ConfigError(msg)


def langchain_baseline(
    retriever: HybridRetriever, dataset: BeirDataset
) -> Callable[[str, int], list[str]]:
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


LegRuns = dict[str, dict[str, LegRun]]  # leg -> query id -> ranked list (hits and population)


def leg_runs(
    retriever: HybridRetriever,
    dataset: BeirDataset,
    depths: Iterable[int],
    *,
    progress: bool = False,
) -> dict[int, LegRuns]:
    """Each leg's ranked list (a :class:`~langchain_hybrid.fusion.LegRun`) per query and depth.

    ``out[depth][leg][query_id]`` is what the retriever's leg returns when a hybrid search
    fetches ``depth`` candidates per leg (:meth:`HybridRetriever.rank_leg`, the call a search
    makes; each query is embedded once).
    Depths are searched separately, not cut from the deepest list: Chroma searches HNSW with a
    beam of ``max(ef_search, n)``, so a deeper search need not start with a shallower one.
    """
    from langchain_hybrid.retrievers import LEGS, leg_run  # noqa: PLC0415

    wanted = sorted(set(depths))
    out: dict[int, LegRuns] = {d: {leg: {} for leg in LEGS} for d in wanted}
    items: Iterable[tuple[str, str]] = dataset.queries.items()
    if progress:
        from tqdm.auto import tqdm  # noqa: PLC0415

        items = tqdm(items, total=len(dataset.queries), desc="legs", unit="q")
    for qid, text in items:
        vector = retriever.embedding.embed_query(text)
        for depth in wanted:
            for leg in LEGS:
                hits = retriever.rank_leg(leg, text, fetch_k=depth, embedding=vector)
                out[depth][leg][qid] = leg_run(leg, hits, depth)
    return out


def sweep(
    retriever: HybridRetriever,
    dataset: BeirDataset,
    grid: Sequence[Mapping[str, Any]],
    *,
    depth: int = RUN_DEPTH,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Score every setting of ``grid`` (see :func:`parse_sweep`) on ``dataset``.

    The legs run once per query and candidate depth (:func:`leg_runs`); every grid point is
    then fused offline with the same pure functions the retriever uses, so a sweep costs about
    one evaluation plus a little arithmetic. Each point is fused from exactly the candidates
    the retriever fetches for it, as :func:`evaluate_search` calls it: ``max(fetch_k, 10)``
    per leg for the @10 metrics (and P@1, P@5), cut to 10, and ``max(fetch_k, depth)`` for
    Recall@100 and MAP@100, cut to ``depth``; a leg weighted 0 is left out, as the retriever
    does not run it, and the retriever's adaptive weights (if any) split the weight of two
    running legs as they do in a search. So a row's metrics equal those
    :func:`run_evaluation` reports for the hybrid mode with that setting. Settings not in a
    point are the retriever's. Rows hold the setting and the metrics, best nDCG@10 first.
    """
    from langchain_hybrid.adaptive import leg_weights  # noqa: PLC0415
    from langchain_hybrid.fusion import fuse  # noqa: PLC0415
    from langchain_hybrid.retrievers import LEGS  # noqa: PLC0415

    points = [
        (
            str(point.get("fusion", retriever.fusion)),
            float(point.get("rrf_k", retriever.rrf_k)),
            tuple(float(w) for w in point.get("weights", retriever.weights)),
            int(point.get("fetch_k", retriever.fetch_k)),
        )
        for point in grid
    ]
    depths = {max(fetch_k, cut) for *_, fetch_k in points for cut in (SHALLOW_K, depth)}
    runs = leg_runs(retriever, dataset, depths, progress=progress)

    def fused(
        method: str, rrf_k: float, weights: tuple[float, ...], fetch_k: int, cut: int
    ) -> dict[str, list[str]]:
        legs = runs[max(fetch_k, cut)]
        out: dict[str, list[str]] = {}
        for qid, text in dataset.queries.items():
            query_legs = [
                legs[leg][qid] if weight > 0 else LegRun([])
                for leg, weight in zip(LEGS, weights, strict=True)
            ]
            pair = (weights[0], weights[1])
            used = leg_weights(retriever.adaptive, text, pair, query_legs)
            out[qid] = [f.id for f in fuse(method, query_legs, used, rrf_k=rrf_k)[:cut]]
        return out

    rows: list[dict[str, Any]] = []
    for method, rrf_k, weights, fetch_k in points:
        metrics = evaluate_run(fused(method, rrf_k, weights, fetch_k, depth), dataset.qrels)
        shallow = evaluate_run(fused(method, rrf_k, weights, fetch_k, SHALLOW_K), dataset.qrels)
        metrics.update({k: v for k, v in shallow.items() if k in SHALLOW_METRICS})
        setting = {"fusion": method, "rrf_k": rrf_k, "weights": weights, "fetch_k": fetch_k}
        rows.append({**setting, **metrics})
    rows.sort(key=lambda r: -r["ndcg@10"])
    return rows


MODES = ("hybrid", "bm25", "vector")
TABLE_COLUMNS = ("mode", *METRICS, "p50_ms", "p95_ms", "p99_ms")


def run_evaluation(
    dataset_dir: str | Path,
    embedding: Embeddings,
    *,
    split: str = "test",
    modes: Sequence[str] = MODES,
    baseline: bool = False,
    settings: HybridConfig | None = None,
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


def tune_adaptive(
    retriever: HybridRetriever,
    dataset: BeirDataset,
    *,
    regularization: float = 1.0,
    progress: bool = False,
) -> tuple[AdaptiveWeights, list[dict[str, Any]]]:
    """Fit query-adaptive fusion weights on a judged split (see :mod:`langchain_hybrid.adaptive`).

    Each query's legs are searched once at the retriever's candidate depth (``max(fetch_k,
    10)``) and fused offline at every BM25 share of
    :data:`~langchain_hybrid.adaptive.WEIGHT_GRID`; its signals, best share and the spread of
    its nDCG@10 are the training example (see
    :func:`~langchain_hybrid.adaptive.weight_targets`). Returns the fitted
    :class:`~langchain_hybrid.adaptive.AdaptiveWeights` and rows comparing, on the same
    queries, the fixed weights with the fitted model (nDCG@10 and the other @10 metrics): an
    in-sample figure, to be checked on another split before trusting it.

    Raises:
        ConfigError: scikit-learn is missing, or the weights change no query's result.
    """
    from langchain_hybrid.adaptive import (  # noqa: PLC0415
        WEIGHT_GRID,
        fit_adaptive_weights,
        leg_weights,
        query_signals,
        weight_targets,
    )
    from langchain_hybrid.fusion import fuse  # noqa: PLC0415

    depth = max(retriever.fetch_k, SHALLOW_K)
    runs = leg_runs(retriever, dataset, [depth], progress=progress)[depth]

    def top(
        qid: str, text: str, weights: tuple[float, float], model: AdaptiveWeights | None = None
    ) -> list[str]:
        legs = [runs["bm25"][qid], runs["vector"][qid]]
        used = leg_weights(model, text, weights, legs)
        kept = [leg if w > 0 else LegRun([]) for leg, w in zip(legs, used, strict=True)]
        return [f.id for f in fuse(retriever.fusion, kept, used, rrf_k=retriever.rrf_k)]

    signals, targets, importance = [], [], []
    for qid, text in dataset.queries.items():
        signals.append(query_signals(text, runs["bm25"][qid], runs["vector"][qid]))
        utilities = [
            query_metrics(top(qid, text, (share, 1.0 - share))[:SHALLOW_K], dataset.qrels[qid])[
                "ndcg@10"
            ]
            for share in WEIGHT_GRID
        ]
        target, weight = weight_targets(utilities)
        targets.append(target)
        importance.append(weight)
    model = fit_adaptive_weights(signals, targets, importance, regularization=regularization)
    weights = (retriever.weights[0], retriever.weights[1])
    rows = []
    for name, adaptive in (("fixed weights", None), ("adaptive", model)):
        run = {
            qid: top(qid, text, weights, adaptive)[:SHALLOW_K]
            for qid, text in dataset.queries.items()
        }
        metrics = evaluate_run(run, dataset.qrels)
        rows.append({"fusion": name, **{k: metrics[k] for k in SHALLOW_METRICS}})
    return model, rows
