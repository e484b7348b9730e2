"""Embedding speed: fp32 and int8 all-MiniLM-L6-v2, before and after token-length batching.

The same ``BENCH_EMBED_PASSAGES`` SciFact passages (title + abstract, the first of
``corpus.jsonl``; 1000, or 32 with ``--benchmark-disable``) are embedded by four variants in
the ``embed-passages`` group, each timed over ``BENCH_EMBED_ROUNDS`` whole passes (1):

* ``fp32_before`` (the baseline): the previous code path, kept here: texts sorted by
  *character* length within the call, padding by the tokenizer, onnxruntime's default thread
  count (one per physical core of the machine, whatever the process's affinity);
* ``fp32``: :class:`MiniLMEmbeddings` now: the call tokenized once and batched by *token*
  count, one intra-op thread per CPU this process may use;
* ``int8_before`` / ``int8``: the same two paths on the dynamically quantised model.

Passages per second = ``docs`` / p50 seconds; the report's ratio column compares each with
the fp32 baseline measured in the same run. ``extra_info["padding_share"]`` is the share of
the tokens fed to the model that were padding. The ``embed-query`` group times one short query
(SciFact's test queries, in turn) per round, fp32 against int8: ``BENCH_EMBED_QUERY_ROUNDS``
(300) rounds after 20 warm-up rounds.

``test_embed_interleaved`` runs the four variants in turn, round after round, on the first 200
passages (``BENCH_EMBED_INTERLEAVED``, ``BENCH_EMBED_INTERLEAVED_ROUNDS`` = 3) and stores each
one's median passages/s and speed relative to ``fp32_before`` in
``extra_info["interleaved"]``: load from other jobs then hits every variant alike, which one
variant after another does not.

Every variant's vectors are checked: unit norm, fp32 paths equal to each other (1e-5), int8
within 0.95 cosine of fp32 on every passage. The machine's other processes share its cores,
so the ratios are more robust than the absolute figures.

Ingest, before and after the pipeline (``ingest-passages`` group): the same passages are
embedded *and written* (a persistent Chroma collection and its BM25 index, in a new directory
per round) by ``HybridRetriever``, for fp32 and int8, in batches of ``BENCH_INGEST_BATCH`` (64,
the CLI's default; with ``--benchmark-disable`` 8 passages in batches of 4):

* ``sequential`` (the baseline of each precision): the CLI's loop before the pipeline, one
  ``add_documents`` per batch (embed it, then write it), BM25 saved once at the end;
* ``pipeline``: one ``add_documents(..., batch_size=64)``: the next batch is embedded while one
  is written (:mod:`langchain_hybrid.ingest`).

``test_ingest_interleaved`` runs the four in turn, round after round
(``BENCH_INGEST_INTERLEAVED`` passages, 300; ``BENCH_INGEST_INTERLEAVED_ROUNDS``, 3) and stores
the median passages/s of each and the pipeline's speed-up over ``sequential`` of the same
precision in ``extra_info["interleaved"]``. Each run's stored count and a search are checked.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from itertools import cycle
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from langchain_core.documents import Document
from tokenizers import Tokenizer

from langchain_hybrid import HybridRetriever
from langchain_hybrid._quantize import INT8_FILENAME, quantize_model
from langchain_hybrid.embeddings import MiniLMEmbeddings

pytestmark = pytest.mark.model

SHARED = Path(__file__).resolve().parents[2] / "shared"
GROUP, QUERY_GROUP = "embed-passages", "embed-query"
CHECKED = 32  # passages whose vectors every variant is checked on
MAX_LENGTH, BATCH_SIZE = 256, 32
FP32: dict[str, np.ndarray] = {}  # "vectors": fp32 vectors of every passage, once computed


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def _scifact() -> Path:
    configured = os.environ.get("LANGCHAIN_HYBRID_SCIFACT")
    path = Path(configured) if configured else SHARED / "data" / "scifact"
    if not (path / "corpus.jsonl").is_file():
        pytest.fail(f"SciFact (BEIR layout) not found at {path}: set LANGCHAIN_HYBRID_SCIFACT")
    return path


def _read_jsonl(path: Path, limit: int, text: Callable[[dict[str, Any]], str]) -> list[str]:
    out: list[str] = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if len(out) == limit:
                break
            out.append(text(json.loads(line)))
    return out


@pytest.fixture(scope="module")
def passages(pytestconfig: pytest.Config) -> list[str]:
    disabled = bool(pytestconfig.getoption("benchmark_disable", default=False))
    count = _env_int("BENCH_EMBED_PASSAGES", CHECKED if disabled else 1_000)
    return _read_jsonl(
        _scifact() / "corpus.jsonl",
        count,
        lambda row: f"{row.get('title', '')} {row['text']}".strip(),
    )


@pytest.fixture(scope="module")
def queries() -> list[str]:
    return _read_jsonl(_scifact() / "queries.jsonl", 300, lambda row: str(row["text"]))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder linking the fp32 files, with ``model_int8.onnx`` quantised into it."""
    configured = os.environ.get("LANGCHAIN_HYBRID_MODEL_DIR")
    source = Path(configured) if configured else SHARED / "models/all-MiniLM-L6-v2/onnx"
    if not (source / "model.onnx").is_file():
        pytest.fail(f"all-MiniLM-L6-v2 not found at {source}: set LANGCHAIN_HYBRID_MODEL_DIR")
    directory = tmp_path_factory.mktemp("minilm")
    for name in ("model.onnx", "tokenizer.json"):
        (directory / name).symlink_to(source / name)
    quantize_model(directory, out_dir=directory)
    return directory


class Before:
    """The embedding code path before token-length batching and machine-sized threads."""

    def __init__(self, model_file: Path, tokenizer_file: Path) -> None:
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.tokenizer.enable_truncation(max_length=MAX_LENGTH)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(
            str(model_file), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.input_names = {i.name for i in self.session.get_inputs()}

    def _batch(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = self.session.run(None, {k: v for k, v in feeds.items() if k in self.input_names})[
            0
        ]
        weights = mask[:, :, np.newaxis].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        order = np.argsort([len(text) for text in texts], kind="stable")
        batches = np.array_split(order, range(BATCH_SIZE, len(order), BATCH_SIZE))
        stacked = np.concatenate([self._batch([texts[i] for i in batch]) for batch in batches])
        vectors = np.empty_like(stacked)
        vectors[order] = stacked
        result: list[list[float]] = vectors.tolist()
        return result


def _padding_share(tokenizer_file: Path, texts: list[str], *, by_tokens: bool) -> float:
    """Share of the fed tokens that are padding when batching sorted by tokens or characters."""
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.enable_truncation(max_length=MAX_LENGTH)
    tokenizer.no_padding()
    lengths = np.array([len(e.ids) for e in tokenizer.encode_batch(texts)])
    key = lengths if by_tokens else np.array([len(text) for text in texts])
    ordered = lengths[np.argsort(key, kind="stable")]
    fed = sum(
        len(batch) * int(batch.max())
        for batch in np.array_split(ordered, range(BATCH_SIZE, len(ordered), BATCH_SIZE))
    )
    return round(1 - int(lengths.sum()) / fed, 4)


@pytest.fixture(scope="module")
def variants(model_dir: Path) -> dict[str, Any]:
    tokenizer_file = model_dir / "tokenizer.json"
    return {
        "fp32_before": Before(model_dir / "model.onnx", tokenizer_file),
        "fp32": MiniLMEmbeddings(model_dir=model_dir, batch_size=BATCH_SIZE),
        "int8_before": Before(model_dir / INT8_FILENAME, tokenizer_file),
        "int8": MiniLMEmbeddings(model_dir=model_dir, batch_size=BATCH_SIZE, precision="int8"),
    }


@pytest.fixture(scope="module")
def expected(variants: dict[str, Any], passages: list[str], model_dir: Path) -> dict[str, Any]:
    """fp32 vectors of the checked passages, and the padding share of each batching."""
    tokenizer_file = model_dir / "tokenizer.json"
    return {
        "reference": np.array(variants["fp32"].embed_documents(passages[:CHECKED])),
        "padding_share": {
            by_tokens: _padding_share(tokenizer_file, passages, by_tokens=by_tokens)
            for by_tokens in (False, True)
        },
    }


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("variant", ["fp32_before", "fp32", "int8_before", "int8"])
def test_embed_passages(
    benchmark: Any,
    variant: str,
    variants: dict[str, Any],
    passages: list[str],
    expected: dict[str, Any],
) -> None:
    model = variants[variant]
    model.embed_documents(passages[:2])  # load the session outside the timing
    benchmark.extra_info.update(
        docs=len(passages),
        padding_share=expected["padding_share"][not variant.endswith("before")],
    )
    if variant == "fp32_before":
        benchmark.extra_info["role"] = "baseline"
    rounds = _env_int("BENCH_EMBED_ROUNDS", 1)
    vectors = np.array(
        benchmark.pedantic(
            model.embed_documents, args=(passages,), rounds=rounds, warmup_rounds=0, iterations=1
        )
    )
    assert vectors.shape == (len(passages), 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    checked = vectors[:CHECKED]
    if variant.startswith("fp32"):
        np.testing.assert_allclose(checked, expected["reference"], atol=1e-5)
        FP32["vectors"] = vectors
    else:
        if "vectors" not in FP32:  # the fp32 benchmarks were deselected
            FP32["vectors"] = np.array(variants["fp32"].embed_documents(passages))
        cosines = (vectors * FP32["vectors"]).sum(axis=1)
        assert cosines.min() > 0.95, f"int8 cosine to fp32: min {cosines.min():.4f}"
        benchmark.extra_info["cosine_to_fp32"] = {
            "min": round(float(cosines.min()), 4),
            "mean": round(float(cosines.mean()), 4),
        }


@pytest.mark.benchmark(group=QUERY_GROUP)
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_embed_query(
    benchmark: Any, precision: str, variants: dict[str, Any], queries: list[str]
) -> None:
    model: MiniLMEmbeddings = variants[precision]
    if precision == "fp32":
        benchmark.extra_info["role"] = "baseline"
    texts = cycle(queries)
    rounds = _env_int("BENCH_EMBED_QUERY_ROUNDS", 300)
    benchmark.pedantic(
        lambda: model.embed_query(next(texts)), rounds=rounds, warmup_rounds=20, iterations=1
    )
    vector = np.array(model.embed_query(queries[0]))
    fp32 = np.array(variants["fp32"].embed_query(queries[0]))
    assert vector.shape == (384,)
    assert float(vector @ fp32) > (0.999 if precision == "fp32" else 0.95)


@pytest.mark.benchmark(group="embed-interleaved")
def test_embed_interleaved(
    benchmark: Any, variants: dict[str, Any], passages: list[str], expected: dict[str, Any]
) -> None:
    """The four variants in turn, round after round: load from other jobs hits them alike.

    ``extra_info["interleaved"]``: median passages/s of each variant over
    ``BENCH_EMBED_INTERLEAVED_ROUNDS`` (3) rounds of the first ``BENCH_EMBED_INTERLEAVED``
    (200) passages, and each one's speed relative to ``fp32_before``.
    """
    texts = passages[: _env_int("BENCH_EMBED_INTERLEAVED", 200)]
    rounds = _env_int("BENCH_EMBED_INTERLEAVED_ROUNDS", 3)
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    outputs: dict[str, np.ndarray] = {}

    def cycle_once() -> None:
        for name, model in variants.items():
            start = time.perf_counter()
            outputs[name] = np.array(model.embed_documents(texts))
            seconds[name].append(time.perf_counter() - start)

    benchmark.pedantic(cycle_once, rounds=rounds, warmup_rounds=0, iterations=1)
    speed = {name: len(texts) / float(np.median(times)) for name, times in seconds.items()}
    benchmark.extra_info["interleaved"] = {
        name: {
            "passages_per_s": round(value, 2),
            "speedup_vs_fp32_before": round(value / speed["fp32_before"], 3),
        }
        for name, value in speed.items()
    }
    benchmark.extra_info["docs"] = len(texts)
    reference = expected["reference"][: len(texts)]
    for name, vectors in outputs.items():
        checked = vectors[: len(reference)]
        if name.startswith("fp32"):
            np.testing.assert_allclose(checked, reference, atol=1e-5)
        else:
            assert (checked * reference).sum(axis=1).min() > 0.95


# ---------------------------------------------------------------------- ingest: before/after
INGEST_GROUP = "ingest-passages"


def _ingest(
    model: MiniLMEmbeddings, docs: list[Document], directory: Path, mode: str, batch: int
) -> float:
    """Embed and write ``docs`` into a new index in ``directory``; passages per second."""
    retriever = HybridRetriever.from_documents(
        [], model, persist_directory=directory, collection_name="bench", cache=False
    )
    start = time.perf_counter()
    if mode == "sequential":  # the CLI's loop before the pipeline
        with retriever.deferred_save():
            for first in range(0, len(docs), batch):
                retriever.add_documents(docs[first : first + batch])
    else:
        retriever.add_documents(docs, batch_size=batch)
    seconds = time.perf_counter() - start
    assert retriever.store.count() == len(retriever.bm25) == len(docs)
    hit = retriever.invoke(docs[-1].page_content[:200], k=1)
    assert hit[0].id == docs[-1].id
    return len(docs) / seconds


@pytest.fixture(scope="module")
def ingest_docs(passages: list[str], pytestconfig: pytest.Config) -> list[Document]:
    """The benchmark's passages as documents (8 with ``--benchmark-disable``: CI stays fast)."""
    disabled = bool(pytestconfig.getoption("benchmark_disable", default=False))
    texts = passages[:8] if disabled else passages
    return [Document(page_content=text, id=f"p{i}") for i, text in enumerate(texts)]


def _ingest_batch(docs: list[Document]) -> int:
    return min(_env_int("BENCH_INGEST_BATCH", 64), max(1, len(docs) // 2))


@pytest.mark.benchmark(group=INGEST_GROUP)
@pytest.mark.parametrize(
    "variant", ["fp32-sequential", "fp32-pipeline", "int8-sequential", "int8-pipeline"]
)
def test_ingest_passages(
    benchmark: Any,
    variant: str,
    variants: dict[str, Any],
    ingest_docs: list[Document],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    precision, mode = variant.split("-")
    model: MiniLMEmbeddings = variants[precision]
    model.embed_documents(["warm up"])
    benchmark.extra_info.update(docs=len(ingest_docs), precision=precision, mode=mode)
    if variant == "fp32-sequential":
        benchmark.extra_info["role"] = "baseline"
    batch = _ingest_batch(ingest_docs)
    speeds: list[float] = []
    benchmark.pedantic(
        lambda: speeds.append(
            _ingest(model, ingest_docs, tmp_path_factory.mktemp("ingest"), mode, batch)
        ),
        rounds=_env_int("BENCH_EMBED_ROUNDS", 1),
        warmup_rounds=0,
        iterations=1,
    )
    benchmark.extra_info["passages_per_s"] = round(float(np.median(speeds)), 2)


@pytest.mark.benchmark(group="ingest-interleaved")
def test_ingest_interleaved(
    benchmark: Any,
    variants: dict[str, Any],
    ingest_docs: list[Document],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Sequential and pipelined ingest, fp32 and int8, in turn: load hits them alike."""
    docs = ingest_docs[: _env_int("BENCH_INGEST_INTERLEAVED", 300)]
    batch = _ingest_batch(docs)
    names = [(p, m) for p in ("fp32", "int8") for m in ("sequential", "pipeline")]
    speeds: dict[tuple[str, str], list[float]] = {name: [] for name in names}
    for precision in ("fp32", "int8"):
        variants[precision].embed_documents(["warm up"])

    def cycle_once() -> None:
        for precision, mode in names:
            directory = tmp_path_factory.mktemp("ingest")
            speed = _ingest(variants[precision], docs, directory, mode, batch)
            speeds[precision, mode].append(speed)

    benchmark.pedantic(
        cycle_once,
        rounds=_env_int("BENCH_INGEST_INTERLEAVED_ROUNDS", 3),
        warmup_rounds=0,
        iterations=1,
    )
    median = {name: float(np.median(values)) for name, values in speeds.items()}
    benchmark.extra_info["docs"] = len(docs)
    benchmark.extra_info["interleaved"] = {
        f"{precision}_{mode}": {
            "passages_per_s": round(median[precision, mode], 2),
            "speedup_vs_sequential": round(
                median[precision, mode] / median[precision, "sequential"], 3
            ),
            "speedup_vs_fp32_sequential": round(
                median[precision, mode] / median["fp32", "sequential"], 3
            ),
        }
        for precision, mode in names
    }
