"""Tests of MiniLMEmbeddings (the real all-MiniLM-L6-v2 ONNX model) and model resolution."""

from __future__ import annotations

import copy
import os
import pickle
import re
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from chromadb.utils.embedding_functions import ONNXMiniLM_L6_V2
from helpers import HashEmbeddings, report
from langchain_core.documents import Document
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests
from pydantic import ValidationError

from langchain_hybrid import _quantize as quantize_module
from langchain_hybrid import cli
from langchain_hybrid._quantize import (
    _KEPT_FP32,
    INT8_FILENAME,
    INT8_RECIPE,
    RECIPE_METADATA_KEY,
    find_int8_model,
    int8_cache_dir,
    quantize_model,
    recipe_fingerprint,
)
from langchain_hybrid.config import EmbeddingSettings, make_embedding
from langchain_hybrid.embeddings import (
    MODEL_DIR_ENV_VAR,
    MiniLMEmbeddings,
    available_cores,
    check_embedding_model,
    chroma_cache_dir,
    embedding_model_id,
    resolve_model_dir,
)
from langchain_hybrid.errors import (
    EmbeddingMismatchError,
    EmbeddingModelNotFoundError,
    HybridRetrieverError,
)
from langchain_hybrid.evaluation import embedding_id
from langchain_hybrid.retrievers import HybridRetriever

# Reference values from shared/models/README.md (equal to sentence-transformers + torch).
WEATHER = "The weather is lovely today."
SUNNY = "It's so sunny outside!"
STADIUM = "He drove to the stadium."
WEATHER_FIRST_DIMS = [0.019196, 0.120085, 0.159598, 0.067066, 0.050075, -0.025919]
COSINES = {(WEATHER, SUNNY): 0.6660, (WEATHER, STADIUM): 0.1046, (SUNNY, STADIUM): 0.1411}

WORDS = [
    "river",
    "mountain",
    "library",
    "engine",
    "quiet",
    "market",
    "window",
    "garden",
    "signal",
    "paper",
    "storm",
    "bridge",
    "column",
    "harbor",
    "lantern",
    "orbit",
    "pepper",
    "quartz",
    "saddle",
    "timber",
    "velvet",
    "walnut",
    "yellow",
    "zephyr",
    "anchor",
    "basket",
    "candle",
    "desert",
    "ember",
    "falcon",
    "glacier",
    "hollow",
    "island",
    "jungle",
    "kettle",
    "meadow",
    "needle",
    "oyster",
    "pillow",
    "rocket",
    "silver",
    "thunder",
    "valley",
    "wander",
    "fabric",
    "copper",
    "marble",
]


def _passage(seed: int, n_words: int) -> str:
    rng = np.random.default_rng(seed)
    return " ".join(rng.choice(WORDS, size=n_words).tolist()).capitalize() + "."


def _shared_model_dir() -> Path:
    env_value = os.environ.get(MODEL_DIR_ENV_VAR, "").strip()
    if env_value:
        return Path(env_value)
    return Path(__file__).resolve().parents[3] / "shared/models/all-MiniLM-L6-v2/onnx"


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The all-MiniLM-L6-v2 folder: $LANGCHAIN_HYBRID_MODEL_DIR, else shared/ beside the repo."""
    directory = _shared_model_dir()
    if not (directory / "model.onnx").is_file() or not (directory / "tokenizer.json").is_file():
        pytest.fail(
            f"all-MiniLM-L6-v2 not found at {directory}: set {MODEL_DIR_ENV_VAR} or put shared/ "
            "beside the repo (deselect these tests with -m 'not model')"
        )
    return directory


@pytest.fixture(scope="session")
def embeddings(model_dir: Path) -> MiniLMEmbeddings:
    """One instance (and so one onnxruntime session) for the whole test session."""
    return MiniLMEmbeddings(model_dir=model_dir)


def _cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


# --- reference values --------------------------------------------------------------------------


@pytest.mark.model
def test_reference_first_dims(embeddings: MiniLMEmbeddings) -> None:
    vector = embeddings.embed_query(WEATHER)
    assert len(vector) == 384
    np.testing.assert_allclose(vector[:6], WEATHER_FIRST_DIMS, atol=1e-5)


@pytest.mark.model
def test_reference_cosines(embeddings: MiniLMEmbeddings) -> None:
    vectors = dict(
        zip(
            [WEATHER, SUNNY, STADIUM],
            embeddings.embed_documents([WEATHER, SUNNY, STADIUM]),
            strict=True,
        )
    )
    for (a, b), expected in COSINES.items():
        assert _cosine(vectors[a], vectors[b]) == pytest.approx(expected, abs=1e-3)


@pytest.mark.model
def test_unit_norm(embeddings: MiniLMEmbeddings) -> None:
    texts = [WEATHER, "", "a", _passage(1, 300), "ünïcödé and emoji 🙂"]
    for vector in embeddings.embed_documents(texts):
        assert len(vector) == 384
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.model
def test_empty_list(embeddings: MiniLMEmbeddings) -> None:
    assert embeddings.embed_documents([]) == []


# --- batching, padding, order ------------------------------------------------------------------


@pytest.mark.model
def test_batch_equals_single(embeddings: MiniLMEmbeddings) -> None:
    # Very different lengths in one batch: the short ones get many padding tokens.
    texts = [WEATHER, _passage(2, 150), "Hi", SUNNY, _passage(3, 40), STADIUM]
    batched = np.array(embeddings.embed_documents(texts))
    single = np.array([embeddings.embed_query(text) for text in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)


@pytest.mark.model
@pytest.mark.parametrize("batch_size", [1, 2, 3, 32])
def test_order_preserved(embeddings: MiniLMEmbeddings, batch_size: int) -> None:
    texts = [
        _passage(4, 220),
        "cat",
        _passage(5, 12),
        WEATHER,
        _passage(6, 90),
        "dog",
        _passage(7, 3),
    ]
    singles = np.array([embeddings.embed_query(text) for text in texts])
    small_batches = embeddings.model_copy(update={"batch_size": batch_size})
    result = np.array(small_batches.embed_documents(texts))
    np.testing.assert_allclose(result, singles, atol=1e-5)
    # Each result is closest to its own text's vector, so nothing was swapped.
    assert (result @ singles.T).argmax(axis=1).tolist() == list(range(len(texts)))


@pytest.mark.model
def test_long_text_truncated_at_256(embeddings: MiniLMEmbeddings) -> None:
    base = _passage(8, 400)  # well over 256 tokens
    tokenizer = embeddings._load().tokenizer
    assert tokenizer is not None
    assert len(tokenizer.encode(base).ids) == 256
    # Texts that differ only after token 256 get the same vector.
    a, b = embeddings.embed_documents([base + " cats purr", base + " engines roar"])
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.model
def test_max_length_128_differs(embeddings: MiniLMEmbeddings, model_dir: Path) -> None:
    short_window = MiniLMEmbeddings(model_dir=model_dir, max_length=128)
    text = _passage(9, 400)
    full, cut = embeddings.embed_query(text), short_window.embed_query(text)
    assert np.abs(np.subtract(full, cut)).max() > 1e-3
    # A short text fits both windows, so both give the same vector.
    np.testing.assert_allclose(
        embeddings.embed_query(WEATHER), short_window.embed_query(WEATHER), atol=1e-5
    )


@pytest.mark.model
def test_model_copy_with_other_max_length_gets_own_session(
    embeddings: MiniLMEmbeddings,
) -> None:
    text = _passage(10, 400)
    copied = embeddings.model_copy(update={"max_length": 128})
    assert copied._runtime is not embeddings._runtime
    assert np.abs(np.subtract(copied.embed_query(text), embeddings.embed_query(text))).max() > 1e-3


@pytest.mark.model
def test_deepcopy_and_pickle(embeddings: MiniLMEmbeddings) -> None:
    expected = embeddings.embed_query(WEATHER)
    for clone in (copy.deepcopy(embeddings), pickle.loads(pickle.dumps(embeddings))):  # noqa: S301
        assert clone == embeddings
        np.testing.assert_allclose(clone.embed_query(WEATHER), expected, atol=1e-6)


@pytest.mark.model
def test_intra_op_threads(model_dir: Path, embeddings: MiniLMEmbeddings) -> None:
    one_thread = MiniLMEmbeddings(model_dir=model_dir, intra_op_threads=1)
    np.testing.assert_allclose(
        one_thread.embed_documents([WEATHER, SUNNY]),
        embeddings.embed_documents([WEATHER, SUNNY]),
        atol=1e-5,
    )


@pytest.mark.model
def test_concurrent_first_calls_create_one_session(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    created: list[object] = []
    real_session = ort.InferenceSession

    def counting_session(*args: object, **kwargs: object) -> object:
        created.append(object())
        time.sleep(0.05)  # widen the window in which a second creation could start
        return real_session(*args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", counting_session)
    fresh = MiniLMEmbeddings(model_dir=model_dir)
    barrier = threading.Barrier(6)
    results: list[list[float]] = []

    def work() -> None:
        barrier.wait()
        results.append(fresh.embed_query(WEATHER))

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(created) == 1
    assert len(results) == 6
    for vector in results:
        np.testing.assert_allclose(vector, results[0], atol=1e-6)


# --- async -------------------------------------------------------------------------------------


@pytest.mark.model
async def test_async_equals_sync(embeddings: MiniLMEmbeddings) -> None:
    texts = [WEATHER, SUNNY, _passage(11, 80)]
    np.testing.assert_allclose(
        await embeddings.aembed_documents(texts), embeddings.embed_documents(texts), atol=1e-6
    )
    np.testing.assert_allclose(
        await embeddings.aembed_query(STADIUM), embeddings.embed_query(STADIUM), atol=1e-6
    )
    assert await embeddings.aembed_documents([]) == []


# --- model resolution (no model needed, no network) --------------------------------------------


def _fake_model_dir(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.onnx").write_bytes(b"")
    (directory / "tokenizer.json").write_text("{}")
    return directory


@pytest.fixture
def no_model_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No env var, an empty home (so an empty Chroma cache), and a downloader that fails."""

    def offline(_self: object) -> None:
        msg = "no network in tests"
        raise ConnectionError(msg)

    monkeypatch.delenv(MODEL_DIR_ENV_VAR, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(ONNXMiniLM_L6_V2, "DOWNLOAD_PATH", tmp_path / "chroma-download")
    monkeypatch.setattr(ONNXMiniLM_L6_V2, "_download_model_if_not_exists", offline)
    return tmp_path


def test_bogus_model_dir_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODEL_DIR_ENV_VAR, str(_shared_model_dir()))  # must not fall back to it
    bogus = MiniLMEmbeddings(model_dir=tmp_path / "no-such-model")
    with pytest.raises(EmbeddingModelNotFoundError) as info:
        bogus.embed_query(WEATHER)
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, HybridRetrieverError)
    message = str(info.value)
    assert "no-such-model" in message
    assert "model.onnx" in message
    assert MODEL_DIR_ENV_VAR in message
    assert "embedding.model_dir" in message


def test_dir_missing_tokenizer_does_not_count(tmp_path: Path) -> None:
    half = tmp_path / "half"
    half.mkdir()
    (half / "model.onnx").write_bytes(b"")
    with pytest.raises(EmbeddingModelNotFoundError, match=r"tokenizer\.json"):
        resolve_model_dir(half)


def test_bogus_env_var_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODEL_DIR_ENV_VAR, str(tmp_path / "typo"))
    with pytest.raises(EmbeddingModelNotFoundError, match=MODEL_DIR_ENV_VAR):
        resolve_model_dir()


def test_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = _fake_model_dir(tmp_path / "explicit")
    from_env = _fake_model_dir(tmp_path / "env")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cache = _fake_model_dir(chroma_cache_dir())
    assert cache == tmp_path / "home/.cache/chroma/onnx_models/all-MiniLM-L6-v2/onnx"

    monkeypatch.setenv(MODEL_DIR_ENV_VAR, str(from_env))
    assert resolve_model_dir(explicit) == explicit
    assert resolve_model_dir() == from_env
    monkeypatch.setenv(MODEL_DIR_ENV_VAR, "")
    assert resolve_model_dir() == cache
    monkeypatch.delenv(MODEL_DIR_ENV_VAR)
    assert resolve_model_dir() == cache


def test_downloads_with_chroma_when_nothing_found(
    no_model_anywhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake_download(self: ONNXMiniLM_L6_V2) -> None:
        _fake_model_dir(Path(self.DOWNLOAD_PATH) / self.EXTRACTED_FOLDER_NAME)

    monkeypatch.setattr(ONNXMiniLM_L6_V2, "_download_model_if_not_exists", fake_download)
    assert resolve_model_dir() == no_model_anywhere / "chroma-download/onnx"


@pytest.mark.usefixtures("no_model_anywhere")
def test_not_found_and_download_fails() -> None:
    with pytest.raises(EmbeddingModelNotFoundError) as info:
        MiniLMEmbeddings().embed_documents([WEATHER])
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value.__cause__, ConnectionError)
    message = str(info.value)
    for hint in (MODEL_DIR_ENV_VAR, "embedding.model_dir", str(chroma_cache_dir()), "internet"):
        assert hint in message


@pytest.mark.usefixtures("no_model_anywhere")
def test_nothing_read_at_construction() -> None:
    MiniLMEmbeddings()  # no lookup, no download, no error until something is embedded


# --- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"batch_size": 0},
        {"max_length": 0},
        {"max_length": 513},
        {"intra_op_threads": 0},
        {"precision": "int4"},
        {"batch_sise": 8},
    ],
)
def test_invalid_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        MiniLMEmbeddings(**kwargs)


# --- speed (printed, never asserted) -----------------------------------------------------------


@pytest.mark.model
def test_speed_report(embeddings: MiniLMEmbeddings) -> None:
    passages = [_passage(100 + i, 200) for i in range(64)]
    queries = [
        f"what about the {WORDS[i % len(WORDS)]} near the {WORDS[-1 - i % len(WORDS)]}?"
        for i in range(50)
    ]
    embeddings.embed_documents(passages[:4])  # warm up
    start = time.perf_counter()
    vectors = embeddings.embed_documents(passages)
    elapsed = time.perf_counter() - start
    assert len(vectors) == len(passages)

    latencies = []
    for query in queries:
        start = time.perf_counter()
        embeddings.embed_query(query)
        latencies.append(time.perf_counter() - start)
    report(
        f"\nMiniLMEmbeddings speed: {len(passages) / elapsed:.1f} passages/s "
        f"({len(passages)} x 200 words, batch {embeddings.batch_size}); single short query "
        f"p50 {statistics.median(latencies) * 1000:.2f} ms, "
        f"max {max(latencies) * 1000:.2f} ms over {len(queries)} queries"
    )


# ------------------------------------------------------------ LangChain's standard suites
def _standard_model_dir() -> Path:
    """The model files as the ``model_dir`` fixture finds them (a property cannot take one)."""
    configured = os.environ.get(MODEL_DIR_ENV_VAR)
    return Path(configured) if configured else SHARED_MODEL


SHARED_MODEL = Path(__file__).resolve().parents[3] / "shared/models/all-MiniLM-L6-v2/onnx"


class _MiniLMUnderTest:
    """What langchain-tests' embeddings suites build: the real model, small batches."""

    @property
    def embeddings_class(self) -> type[MiniLMEmbeddings]:
        return MiniLMEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, object]:
        return {"model_dir": _standard_model_dir(), "batch_size": 8}


class TestMiniLMStandardUnit(_MiniLMUnderTest, EmbeddingsUnitTests):
    """langchain-tests' unit suite: construction from parameters (nothing loaded yet)."""


class TestMiniLMStandardIntegration(_MiniLMUnderTest, EmbeddingsIntegrationTests):
    """langchain-tests' integration suite on the real model: sync and async, query and docs."""


# --- threads, token-length grouping ------------------------------------------------------------


def test_threads_default_to_the_cpus_this_process_may_use() -> None:
    assert available_cores() == len(os.sched_getaffinity(0))
    assert MiniLMEmbeddings().threads == available_cores()
    assert MiniLMEmbeddings(intra_op_threads=3).threads == 3


@pytest.mark.model
def test_session_runs_with_the_machines_threads(embeddings: MiniLMEmbeddings) -> None:
    session = embeddings._load().session
    assert session is not None
    options = session.get_session_options()  # type: ignore[attr-defined]
    assert options.intra_op_num_threads == available_cores()


class _RecordingSession:
    """The real onnxruntime session, recording the shape of each batch it is given."""

    def __init__(self, session: object) -> None:
        self.session = session
        self.shapes: list[tuple[int, int]] = []

    def run(self, output_names: list[str] | None, input_feed: dict[str, object]) -> list[object]:
        ids = input_feed["input_ids"]
        assert isinstance(ids, np.ndarray)
        self.shapes.append((int(ids.shape[0]), int(ids.shape[1])))
        return self.session.run(output_names, input_feed)  # type: ignore[attr-defined]


@pytest.mark.model
def test_batches_grouped_by_token_count(model_dir: Path) -> None:
    # Character length misleads: a short code or dotted name is many word pieces, a long
    # run of one common word is few. Grouping by token count pads each batch to a text of the
    # same token count, so no padding at all here.
    fresh = MiniLMEmbeddings(model_dir=model_dir, batch_size=2)
    runtime = fresh._load()
    tokenizer = runtime.tokenizer
    assert tokenizer is not None
    many_pieces = ["q7x9z2k4", "a.b.c.d.e"]  # few characters, many tokens
    few_pieces = ["the " * 3, "and " * 3]  # more characters, few tokens
    texts = [many_pieces[0], few_pieces[0], many_pieces[1], few_pieces[1]]
    lengths = [len(tokenizer.encode(text).ids) for text in texts]
    assert lengths[0] > lengths[1]
    assert len(texts[0]) < len(texts[1])  # sorted by characters, they would be mixed
    recording = _RecordingSession(runtime.session)
    runtime.session = recording
    vectors = np.array(fresh.embed_documents(texts))
    padded = sum(rows * width for rows, width in recording.shapes)
    optimal = sum(
        len(batch) * max(batch)
        for batch in (sorted(lengths)[i : i + 2] for i in range(0, len(lengths), 2))
    )
    assert len(recording.shapes) == 2
    assert padded == optimal
    singles = np.array([fresh.embed_query(text) for text in texts])
    np.testing.assert_allclose(vectors, singles, atol=1e-5)


@pytest.mark.model
def test_call_sorted_by_token_count_once(embeddings: MiniLMEmbeddings) -> None:
    # 40 texts of random lengths, batches of 8: every batch's width is the longest of the
    # 8 consecutive token counts in sorted order, never more.
    texts = [
        _passage(100 + i, int(n))
        for i, n in enumerate(np.random.default_rng(0).integers(1, 120, 40))
    ]
    runtime = embeddings._load()
    tokenizer = runtime.tokenizer
    assert tokenizer is not None
    lengths = sorted(len(tokenizer.encode(text).ids) for text in texts)
    copy8 = embeddings.model_copy(update={"batch_size": 8})
    copy_runtime = copy8._load()
    recording = _RecordingSession(copy_runtime.session)
    copy_runtime.session = recording
    copy8.embed_documents(texts)
    assert [width for _, width in recording.shapes] == [
        max(lengths[i : i + 8]) for i in range(0, 40, 8)
    ]


# --- int8 ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def int8_dir(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder (links to the fp32 files) with ``model_int8.onnx`` quantised into it."""
    directory = tmp_path_factory.mktemp("int8-model")
    for name in ("model.onnx", "tokenizer.json"):
        (directory / name).symlink_to(model_dir / name)
    made = quantize_model(directory, out_dir=directory)
    assert made == directory / INT8_FILENAME
    return directory


@pytest.fixture(scope="session")
def int8(int8_dir: Path) -> MiniLMEmbeddings:
    return MiniLMEmbeddings(model_dir=int8_dir, precision="int8")


def test_model_id() -> None:
    assert MiniLMEmbeddings().model_id == "all-MiniLM-L6-v2/fp32"
    int8_id = f"all-MiniLM-L6-v2/int8-{INT8_RECIPE}"
    assert MiniLMEmbeddings(precision="int8").model_id == int8_id
    assert embedding_model_id(MiniLMEmbeddings(precision="int8")) == int8_id
    assert (MiniLMEmbeddings().weights_id, MiniLMEmbeddings(precision="int8").weights_id) == (
        "fp32",
        f"int8-{INT8_RECIPE}",
    )


def test_recipe_fingerprint_follows_every_setting() -> None:
    settings = {"weight_type": "QInt8", "per_channel": True, "kept_fp32": _KEPT_FP32.pattern}
    assert recipe_fingerprint(**settings) == INT8_RECIPE  # type: ignore[arg-type]
    assert re.fullmatch(r"r[0-9a-f]{8}", INT8_RECIPE)
    changed = [
        {**settings, "weight_type": "QUInt8"},
        {**settings, "per_channel": False},
        {**settings, "kept_fp32": r"(^|\.)layer\.\d+\.output\.dense\."},  # the previous recipe
    ]
    fingerprints = {recipe_fingerprint(**c) for c in changed}  # type: ignore[arg-type]
    assert len(fingerprints) == len(changed)
    assert INT8_RECIPE not in fingerprints


def test_int8_cache_key_follows_the_recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = _fake_model_dir(tmp_path / "model")
    current = int8_cache_dir(directory)
    monkeypatch.setattr(quantize_module, "INT8_RECIPE", "r00000000")
    assert int8_cache_dir(directory) != current


def test_index_of_the_unfingerprinted_int8_id_is_a_mismatch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An index embedded before the recipe was part of the id (``all-MiniLM-L6-v2/int8``)."""
    HybridRetriever.from_documents(
        [Document(page_content="router reset steps", id="a")],
        _UnfingerprintedInt8(),
        persist_directory=tmp_path,
        collection_name="kb",
    )
    int8 = MiniLMEmbeddings(precision="int8")  # nothing is loaded: the check reads model_id
    with pytest.raises(EmbeddingMismatchError) as info:
        HybridRetriever.load(tmp_path, collection_name="kb", embedding=int8)
    assert (info.value.recorded, info.value.given) == ("all-MiniLM-L6-v2/int8", int8.model_id)
    with caplog.at_level("WARNING", logger="langchain_hybrid.embeddings"):
        opened = HybridRetriever.load(
            tmp_path, collection_name="kb", embedding=int8, allow_embedding_mismatch=True
        )
    assert "(overridden)" in caplog.text
    assert opened.store.count() == 1


@pytest.mark.model
def test_int8_close_to_fp32(int8: MiniLMEmbeddings, embeddings: MiniLMEmbeddings) -> None:
    texts = [WEATHER, SUNNY, STADIUM, "Hi", _passage(12, 60), _passage(13, 300)]
    low, full = np.array(int8.embed_documents(texts)), np.array(embeddings.embed_documents(texts))
    np.testing.assert_allclose(np.linalg.norm(low, axis=1), 1.0, atol=1e-5)
    cosines = (low * full).sum(axis=1)
    assert cosines.min() > 0.95
    assert not np.allclose(low, full, atol=1e-4)  # really another model
    # The reference pairs keep their order: similar stays similar.
    sims = low[:3] @ low[:3].T
    assert sims[0, 1] > sims[1, 2] > sims[0, 2]


@pytest.mark.model
def test_int8_runs_the_int8_file(int8: MiniLMEmbeddings, int8_dir: Path) -> None:
    int8.embed_query(WEATHER)
    assert int8._runtime.model_path == int8_dir / INT8_FILENAME
    assert (int8_dir / INT8_FILENAME).stat().st_size < (int8_dir / "model.onnx").stat().st_size / 2


@pytest.mark.model
def test_quantize_stamps_the_recipe(int8: MiniLMEmbeddings) -> None:
    int8.embed_query(WEATHER)
    session = int8._runtime.session
    assert isinstance(session, ort.InferenceSession)
    stamped = session.get_modelmeta().custom_metadata_map.get(RECIPE_METADATA_KEY)
    assert stamped == INT8_RECIPE


@pytest.mark.model
def test_int8_file_of_another_recipe_is_refused(int8_dir: Path, tmp_path: Path) -> None:
    import onnx  # noqa: PLC0415 - the int8 extra

    made = onnx.load(str(int8_dir / INT8_FILENAME))
    for stamp, named in ((None, "an unrecorded int8 recipe"), ("r00000000", "'r00000000'")):
        directory = tmp_path / f"model-{stamp}"
        directory.mkdir()
        for name in ("model.onnx", "tokenizer.json"):
            (directory / name).symlink_to(int8_dir / name)
        del made.metadata_props[:]
        if stamp is not None:
            entry = made.metadata_props.add()
            entry.key, entry.value = RECIPE_METADATA_KEY, stamp
        onnx.save(made, str(directory / INT8_FILENAME))
        other = MiniLMEmbeddings(model_dir=directory, precision="int8")
        with pytest.raises(EmbeddingModelNotFoundError) as info:
            other.embed_query(WEATHER)
        message = str(info.value)
        for hint in (named, INT8_RECIPE, "--force", str(directory / INT8_FILENAME)):
            assert hint in message
        assert other._runtime.session is None  # nothing embedded with it
        assert (directory / INT8_FILENAME).is_file()  # and the file left where it was


@pytest.mark.model
def test_int8_order_preserved(int8: MiniLMEmbeddings) -> None:
    texts = [_passage(14, 200), "cat", _passage(15, 10), WEATHER, _passage(16, 70)]
    singles = np.array([int8.embed_query(text) for text in texts])
    batched = np.array(int8.model_copy(update={"batch_size": 2}).embed_documents(texts))
    # Activations are quantised with one scale per batch (dynamic quantisation), so a text's
    # int8 vector depends a little on its batch mates: measured cosine 0.985-1.0 here.
    assert ((batched * singles).sum(axis=1)).min() > 0.97
    assert (batched @ singles.T).argmax(axis=1).tolist() == list(range(len(texts)))


@pytest.mark.model
def test_quantize_keeps_an_existing_file(int8_dir: Path) -> None:
    target = int8_dir / INT8_FILENAME
    before = target.stat().st_mtime_ns
    assert quantize_model(int8_dir, out_dir=int8_dir) == target
    assert target.stat().st_mtime_ns == before
    assert not [p for p in int8_dir.iterdir() if p.name.endswith(".tmp")]


def test_int8_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    directory = _fake_model_dir(tmp_path / "model")
    assert find_int8_model(directory) is None
    cached = int8_cache_dir(directory) / INT8_FILENAME
    assert cached.parent.parent == tmp_path / "home/.cache/langchain-hybrid/models"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"")
    assert find_int8_model(directory) == cached
    (directory / INT8_FILENAME).write_bytes(b"")
    assert find_int8_model(directory) == directory / INT8_FILENAME  # beside the fp32 file wins


def test_int8_cache_key_follows_the_fp32_file(tmp_path: Path) -> None:
    directory = _fake_model_dir(tmp_path / "model")
    first = int8_cache_dir(directory)
    assert first == int8_cache_dir(directory)
    (directory / "model.onnx").write_bytes(b"another model")
    assert int8_cache_dir(directory) != first


def test_int8_without_onnx_says_how(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if the int8 extra were not installed
    directory = _fake_model_dir(tmp_path / "model")
    with pytest.raises(EmbeddingModelNotFoundError) as info:
        MiniLMEmbeddings(model_dir=directory, precision="int8").embed_query(WEATHER)
    message = str(info.value)
    for hint in ("langchain-hybrid[int8]", "langchain-hybrid quantize", INT8_FILENAME):
        assert hint in message
    with pytest.raises(EmbeddingModelNotFoundError, match="onnx package"):
        quantize_model(directory)
    assert not (tmp_path / "home").exists()  # nothing written


# --- the model id an index records -----------------------------------------------------------


def test_check_embedding_model(caplog: pytest.LogCaptureFixture) -> None:
    fp32, int8_model = MiniLMEmbeddings(), MiniLMEmbeddings(precision="int8")
    check_embedding_model("all-MiniLM-L6-v2/fp32", fp32)
    check_embedding_model(None, int8_model)  # an index that records nothing
    with pytest.raises(EmbeddingMismatchError) as info:
        check_embedding_model("all-MiniLM-L6-v2/fp32", int8_model)
    assert isinstance(info.value, HybridRetrieverError)
    assert isinstance(info.value, ValueError)
    assert (info.value.recorded, info.value.given) == ("all-MiniLM-L6-v2/fp32", int8_model.model_id)
    assert int8_model.model_id in str(info.value)
    check_embedding_model("all-MiniLM-L6-v2/fp32", int8_model, allow_mismatch=True)
    assert "overridden" in caplog.text


def test_config_precision(tmp_path: Path) -> None:
    made = make_embedding(EmbeddingSettings(precision="int8", threads=1, model_dir=str(tmp_path)))
    assert isinstance(made, MiniLMEmbeddings)
    assert (made.precision, made.threads, made.model_dir) == ("int8", 1, tmp_path)
    with pytest.raises(ValidationError, match="minilm provider only"):
        EmbeddingSettings(provider="openai", precision="int8")
    with pytest.raises(ValidationError):
        EmbeddingSettings(precision="int4")  # type: ignore[arg-type]


def test_eval_cache_keys_on_precision_and_recipe() -> None:
    assert embedding_id(MiniLMEmbeddings()) == "MiniLMEmbeddings-256"  # as before precisions
    int8 = embedding_id(MiniLMEmbeddings(precision="int8"))
    assert int8 == f"MiniLMEmbeddings-256-int8-{INT8_RECIPE}"  # an old recipe's index: not reused


@pytest.mark.model
def test_cli_quantize(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert cli.main(["quantize", "--model-dir", str(model_dir), "--out", str(out)]) == 0
    assert (out / INT8_FILENAME).is_file()
    assert str(out / INT8_FILENAME) in capsys.readouterr().out
    assert cli.main(["quantize", "--model-dir", str(tmp_path / "nothing"), "--out", str(out)]) == 1
    assert "does not hold" in capsys.readouterr().err


class _UnfingerprintedInt8(HashEmbeddings):
    """Records the int8 model id as it was before the recipe was part of it."""

    model_id = "all-MiniLM-L6-v2/int8"

    def __init__(self) -> None:
        super().__init__(dim=384)
