"""The default offline embedding: all-MiniLM-L6-v2 run with onnxruntime and ``tokenizers``.

This is the same model and the same files that ChromaDB's ``DefaultEmbeddingFunction``
(``ONNXMiniLM_L6_V2``) downloads, run without torch or sentence-transformers: tokenize
(truncate at ``max_length`` tokens), group the texts of a call by token count so that each
batch is padded only to its longest text and short texts never share a batch with long ones,
run the ONNX graph, mean-pool the last hidden state over the attention mask and L2-normalise.
The fp32 vectors equal sentence-transformers' ``all-MiniLM-L6-v2`` output to float precision.

``precision="int8"`` runs the same model quantised with onnxruntime's dynamic quantisation
(see :mod:`langchain_hybrid._quantize`, which also says where the file lives).

Nothing is read at import time: the model directory is resolved, and the onnxruntime session
and tokenizer created, on the first call to embed something.
"""

from __future__ import annotations

__all__ = ["MiniLMEmbeddings"]

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from langchain_hybrid.errors import EmbeddingMismatchError, EmbeddingModelNotFoundError

if TYPE_CHECKING:
    import numpy.typing as npt
    from tokenizers import Tokenizer
    from typing_extensions import Self

logger = logging.getLogger(__name__)

MODEL_DIR_ENV_VAR = "LANGCHAIN_HYBRID_MODEL_DIR"
"""Environment variable naming a folder that holds ``model.onnx`` and ``tokenizer.json``."""

REQUIRED_FILES = ("model.onnx", "tokenizer.json")
"""The files a model directory must hold to count."""

MODEL_NAME = "all-MiniLM-L6-v2"
"""The model's name, the first part of :attr:`MiniLMEmbeddings.model_id`."""

Precision = Literal["fp32", "int8"]
"""Weights the model runs with: the shipped float32 graph, or its dynamic int8 quantisation."""


EMBEDDING_METADATA_KEY = "langchain_hybrid_embedding"
"""Collection metadata key under which an index records :func:`embedding_model_id`."""


def embedding_model_id(embedding: Embeddings) -> str:
    """Which model (and precision) makes an embedding's vectors.

    Args:
        embedding: Any LangChain embeddings object.

    Returns:
        Its ``model_id`` if it has one (``"all-MiniLM-L6-v2/fp32"``,
        ``"all-MiniLM-L6-v2/int8-rfde59fc4"``), else its class name with its ``model`` or
        ``model_name`` attribute, e.g. ``"OpenAIEmbeddings/text-embedding-3-small"``.
    """
    model_id = getattr(embedding, "model_id", None)
    if isinstance(model_id, str) and model_id:
        return model_id
    name = type(embedding).__name__
    for attribute in ("model", "model_name"):
        value = getattr(embedding, attribute, None)
        if isinstance(value, str) and value:
            return f"{name}/{value}"
    return name


def check_embedding_model(
    recorded: str | None, embedding: Embeddings, *, allow_mismatch: bool = False
) -> None:
    """Refuse to query (or extend) an index with vectors of another model or precision.

    Args:
        recorded: The model id the index records (None for an index from before ids were
            recorded, or an empty one: nothing to check).
        embedding: The embedding about to be used with the index.
        allow_mismatch: Log a warning instead of raising.

    Raises:
        EmbeddingMismatchError: ``recorded`` differs from :func:`embedding_model_id`.
    """
    given = embedding_model_id(embedding)
    if recorded is None or recorded == given:
        return
    msg = (
        f"this index was embedded with {recorded!r} but the embedding in use is {given!r}: "
        "their vectors do not rank against each other. Configure the recorded model (e.g. "
        "`embedding.precision`), re-index, or override the check to accept the mismatch."
    )
    if allow_mismatch:
        logger.warning("%s (overridden)", msg)
        return
    raise EmbeddingMismatchError(msg, recorded=recorded, given=given)


def available_cores() -> int:
    """The number of CPUs this process may run on (its affinity mask, else ``os.cpu_count()``).

    onnxruntime's own default is one thread per *physical* core of the machine, which ignores
    the affinity mask a container or ``taskset`` gives the process, and counts no
    hyper-threads.

    Returns:
        At least 1.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS and Windows have no sched_getaffinity
        return max(1, os.cpu_count() or 1)


class _Session(Protocol):
    """The part of ``onnxruntime.InferenceSession`` used here (onnxruntime ships no types)."""

    def run(self, output_names: list[str] | None, input_feed: dict[str, Any]) -> list[Any]:
        """Run the graph."""
        ...  # pragma: no cover


_CHROMA_CACHE_PARTS = (".cache", "chroma", "onnx_models", "all-MiniLM-L6-v2", "onnx")


def chroma_cache_dir() -> Path:
    """Return Chroma's cache folder for all-MiniLM-L6-v2 (whether or not it exists).

    Returns:
        ``~/.cache/chroma/onnx_models/all-MiniLM-L6-v2/onnx``, expanded for the current user.
    """
    return Path.home().joinpath(*_CHROMA_CACHE_PARTS)


def _missing_files(directory: Path) -> list[str]:
    return [name for name in REQUIRED_FILES if not (directory / name).is_file()]


def _how_to_provide(cache_dir: Path) -> str:
    return (
        "Provide the all-MiniLM-L6-v2 ONNX files (a folder with model.onnx and tokenizer.json, "
        "as in Chroma's onnx.tar.gz) in one of these ways: "
        f"(1) set the environment variable {MODEL_DIR_ENV_VAR}=/path/to/onnx; "
        "(2) set `embedding.model_dir` in the config file, or pass "
        "MiniLMEmbeddings(model_dir=...); "
        f"(3) copy the folder's files into Chroma's cache at {cache_dir}; "
        "(4) run once on a machine with internet access, so that Chroma downloads the model "
        "into that cache."
    )


def _explicit_dir(directory: Path, source: str) -> Path:
    """Check a directory that the user named explicitly; never fall back from it."""
    directory = directory.expanduser()
    missing = _missing_files(directory)
    if missing:
        msg = (
            f"The embedding model directory {directory} (from {source}) does not hold "
            f"{', '.join(missing)}. {_how_to_provide(chroma_cache_dir())}"
        )
        raise EmbeddingModelNotFoundError(msg)
    return directory


def _download_with_chroma() -> Path:
    """Fetch the model into Chroma's cache with Chroma's own downloader.

    Returns:
        The folder Chroma extracted the model into.
    """
    # Imported here: chromadb is slow to import and only needed for a first download.
    from chromadb.utils.embedding_functions import ONNXMiniLM_L6_V2  # noqa: PLC0415

    logger.info(
        "all-MiniLM-L6-v2 not found locally; downloading it into %s with Chroma's downloader",
        ONNXMiniLM_L6_V2.DOWNLOAD_PATH,
    )
    ONNXMiniLM_L6_V2()._download_model_if_not_exists()  # noqa: SLF001
    return Path(ONNXMiniLM_L6_V2.DOWNLOAD_PATH) / ONNXMiniLM_L6_V2.EXTRACTED_FOLDER_NAME


def resolve_model_dir(model_dir: Path | None = None) -> Path:
    """Find the folder holding all-MiniLM-L6-v2's ``model.onnx`` and ``tokenizer.json``.

    Sources, in order:

    1. ``model_dir`` if given;
    2. the environment variable ``LANGCHAIN_HYBRID_MODEL_DIR`` if set and non-empty;
    3. Chroma's cache, ``~/.cache/chroma/onnx_models/all-MiniLM-L6-v2/onnx``;
    4. Chroma's own downloader, which fetches the model into that cache (needs internet).

    A directory counts only if it holds both files. A directory named explicitly (1 or 2) that
    lacks them is an error rather than a reason to look elsewhere, so that a typo does not
    silently load a different copy of the model or start a download.

    Args:
        model_dir: Folder given by the caller (constructor argument or config file).

    Returns:
        The folder holding the model files.

    Raises:
        EmbeddingModelNotFoundError: An explicitly named folder lacks the files, or nothing was
            found and the download failed. The message says how to provide the files.
    """
    if model_dir is not None:
        return _explicit_dir(Path(model_dir), "model_dir")
    env_value = os.environ.get(MODEL_DIR_ENV_VAR, "").strip()
    if env_value:
        return _explicit_dir(Path(env_value), f"${MODEL_DIR_ENV_VAR}")
    cache_dir = chroma_cache_dir()
    if not _missing_files(cache_dir):
        return cache_dir
    try:
        downloaded = _download_with_chroma()
    except Exception as e:  # any failure (network, disk, archive) means "not found"
        msg = (
            f"all-MiniLM-L6-v2 was not found (no model_dir, ${MODEL_DIR_ENV_VAR} unset, nothing "
            f"in {cache_dir}) and Chroma's download failed: {type(e).__name__}: {e}. "
            f"{_how_to_provide(cache_dir)}"
        )
        raise EmbeddingModelNotFoundError(msg) from e
    missing = _missing_files(downloaded)
    if missing:
        msg = (
            f"Chroma's download finished but {downloaded} lacks {', '.join(missing)}. "
            f"{_how_to_provide(cache_dir)}"
        )
        raise EmbeddingModelNotFoundError(msg)
    return downloaded


def _spans(total: int, size: int) -> list[tuple[int, int]]:
    """``(start, end)`` of consecutive slices of at most ``size`` items covering ``total``."""
    return [(start, min(start + size, total)) for start in range(0, total, size)]


class _Runtime:
    """The lazily created session and tokenizer of one embeddings instance.

    Copies and unpickled instances start empty and create their own session on first use: a
    lock cannot be copied, and a session is cheap to recreate relative to sharing a wrong one.
    Runtimes all compare equal, so two embeddings with the same settings are equal whether or
    not either has loaded its model.
    """

    __slots__ = ("input_names", "lock", "model_path", "pad_id", "session", "tokenizer")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.session: _Session | None = None
        self.tokenizer: Tokenizer | None = None
        self.input_names: frozenset[str] = frozenset()
        self.pad_id = 0
        self.model_path: Path | None = None

    def __copy__(self) -> _Runtime:
        return _Runtime()

    def __deepcopy__(self, memo: dict[int, Any]) -> _Runtime:
        return _Runtime()

    def __reduce__(self) -> tuple[type[_Runtime], tuple[()]]:
        return (_Runtime, ())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Runtime)

    __hash__ = object.__hash__


class MiniLMEmbeddings(BaseModel, Embeddings):
    """all-MiniLM-L6-v2 sentence embeddings (384-d, unit norm), offline with onnxruntime.

    The default embedding of langchain-hybrid: the model Chroma uses by default, run directly
    with onnxruntime and ``tokenizers`` (no torch). Texts longer than ``max_length`` tokens are
    truncated. The texts of a call are tokenized once and grouped by token count, so each batch
    holds texts of similar length and is padded only to its longest one; results come back in
    input order. The onnxruntime session is created once per instance on first use and shared
    by all threads; it runs one intra-op thread per CPU this process may use unless
    ``intra_op_threads`` says otherwise. ``precision="int8"`` runs the dynamically quantised
    model: about 1.4x faster on CPU, vectors within 0.998 cosine of fp32, SciFact test
    nDCG@10 hybrid +0.0003 and vector leg -0.0046 (README "Embedding speed"); opt-in, fp32
    stays the default.

    Setup:
        The model files are not bundled. They are found, in order, in ``model_dir``, the folder
        named by ``LANGCHAIN_HYBRID_MODEL_DIR``, or Chroma's cache
        ``~/.cache/chroma/onnx_models/all-MiniLM-L6-v2/onnx``; failing that, Chroma's
        downloader fetches them into that cache (needs internet once).

        ```bash
        pip install langchain-hybrid
        export LANGCHAIN_HYBRID_MODEL_DIR=/path/to/all-MiniLM-L6-v2/onnx  # optional
        ```

    Key init args:
        model_dir: Path | None
            Folder holding ``model.onnx`` and ``tokenizer.json``; None to search as above.
        batch_size: int
            Texts per onnxruntime run (default 32).
        max_length: int
            Tokens kept per text, at most 512 (default 256, as sentence-transformers).
        intra_op_threads: int | None
            onnxruntime intra-op threads; None for one per CPU this process may run on
            (:func:`available_cores`).
        precision: "fp32" | "int8"
            ``int8`` uses ``model_int8.onnx`` (beside ``model.onnx`` or in
            ``~/.cache/langchain-hybrid/models``), made from the fp32 file on first use if
            the ``onnx`` package is installed (``pip install langchain-hybrid[int8]``).

    Instantiate:
        ```python
        from langchain_hybrid.embeddings import MiniLMEmbeddings

        embeddings = MiniLMEmbeddings(batch_size=32, intra_op_threads=2)
        fast = MiniLMEmbeddings(precision="int8")
        fast.model_id  # "all-MiniLM-L6-v2/int8-<recipe>", e.g. "all-MiniLM-L6-v2/int8-rfde59fc4"
        ```

    Usage:
        ```python
        vectors = embeddings.embed_documents(["The weather is lovely today.", "Hi"])
        query_vector = embeddings.embed_query("Is it sunny?")
        vectors = await embeddings.aembed_documents(["runs in a worker thread"])
        len(query_vector)  # 384
        ```

    """

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    model_dir: Path | None = None
    """Folder holding ``model.onnx`` and ``tokenizer.json``; None to search for it."""
    batch_size: int = Field(32, gt=0)
    """Texts per onnxruntime run."""
    max_length: int = Field(256, gt=0, le=512)
    """Tokens kept per text (truncation length); the model's position table has 512."""
    intra_op_threads: int | None = Field(None, gt=0)
    """onnxruntime ``SessionOptions.intra_op_num_threads``; None for :func:`available_cores`."""
    precision: Precision = "fp32"
    """``fp32`` (the shipped graph) or ``int8`` (its dynamic quantisation)."""

    _runtime: _Runtime = PrivateAttr(default_factory=_Runtime)

    @property
    def weights_id(self) -> str:
        """Which weights make the vectors: ``"fp32"``, or ``"int8-<recipe>"`` for int8.

        ``<recipe>`` is :data:`~langchain_hybrid._quantize.INT8_RECIPE`, the fingerprint of the
        quantisation settings, so int8 vectors of two recipes have different ids.
        """
        if self.precision == "fp32":
            return "fp32"
        from langchain_hybrid._quantize import INT8_RECIPE  # noqa: PLC0415 - quantize imports us

        return f"int8-{INT8_RECIPE}"

    @property
    def model_id(self) -> str:
        """Which model and weights make the vectors, e.g. ``"all-MiniLM-L6-v2/int8-rfde59fc4"``.

        ``"<model>/<weights_id>"`` (see :attr:`weights_id`). Vectors of two embeddings are
        comparable only if their ``model_id`` is equal: an index records the id of the model
        that embedded it and refuses queries embedded by another.
        """
        return f"{MODEL_NAME}/{self.weights_id}"

    @property
    def threads(self) -> int:
        """The intra-op threads the session runs (or will run) with."""
        return self.intra_op_threads if self.intra_op_threads is not None else available_cores()

    def __copy__(self) -> Self:
        """Copy the settings; the copy creates its own session on first use.

        ``model_copy(update={"max_length": 128})`` goes through here, so a copy never reuses a
        tokenizer built for other settings.
        """
        copied = super().__copy__()
        copied._runtime = _Runtime()  # noqa: SLF001 - same class
        return copied

    def _load(self) -> _Runtime:
        """Return the runtime with its session created (once per instance, under a lock)."""
        runtime = self._runtime
        if runtime.session is None:
            with runtime.lock:
                if runtime.session is None:
                    self._create_session(runtime)
        return runtime

    def _create_session(self, runtime: _Runtime) -> None:
        import onnxruntime as ort  # noqa: PLC0415 - heavy; only needed once a text is embedded
        from tokenizers import Tokenizer  # noqa: PLC0415

        directory = resolve_model_dir(self.model_dir)
        if self.precision == "int8":
            from langchain_hybrid._quantize import ensure_int8_model  # noqa: PLC0415

            model_path = ensure_int8_model(directory)
        else:
            model_path = directory / "model.onnx"
        tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        # The shipped tokenizer.json truncates and pads to a fixed 128; sentence-transformers
        # uses 256. Padding is done here, per batch of texts grouped by token count.
        tokenizer.enable_truncation(max_length=self.max_length)
        tokenizer.no_padding()
        pad_id = tokenizer.token_to_id("[PAD]")

        options = ort.SessionOptions()
        options.log_severity_level = 3  # the graph has unused initializers that warn on load
        options.intra_op_num_threads = self.threads
        session = ort.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        if self.precision == "int8":
            from langchain_hybrid._quantize import (  # noqa: PLC0415
                RECIPE_METADATA_KEY,
                check_int8_recipe,
            )

            stamped = session.get_modelmeta().custom_metadata_map.get(RECIPE_METADATA_KEY)
            check_int8_recipe(stamped, model_path, directory)
        runtime.input_names = frozenset(i.name for i in session.get_inputs())
        runtime.tokenizer = tokenizer
        runtime.pad_id = 0 if pad_id is None else pad_id
        runtime.model_path = model_path
        runtime.session = session  # last: a non-None session means the runtime is ready
        logger.debug(
            "Loaded %s from %s (inputs %s, max_length %d, %d threads)",
            self.model_id,
            model_path,
            sorted(runtime.input_names),
            self.max_length,
            self.threads,
        )

    @staticmethod
    def _embed_batch(runtime: _Runtime, token_ids: list[list[int]]) -> npt.NDArray[np.float32]:
        """Embed one batch of token id lists, padded here to the longest of them."""
        session = runtime.session
        if session is None:  # pragma: no cover - _load() sets it
            msg = "the embedding session is not loaded"
            raise RuntimeError(msg)
        width = max(len(ids) for ids in token_ids)
        input_ids = np.full((len(token_ids), width), runtime.pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(token_ids), width), dtype=np.int64)
        for row, ids in enumerate(token_ids):
            input_ids[row, : len(ids)] = ids
            attention_mask[row, : len(ids)] = 1
        feeds = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": np.zeros_like(input_ids),
        }
        outputs = session.run(None, {k: v for k, v in feeds.items() if k in runtime.input_names})
        hidden = np.asarray(outputs[0], dtype=np.float32)  # (batch, tokens, 384)
        mask = attention_mask[:, :, np.newaxis].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        normalized: npt.NDArray[np.float32] = (pooled / np.clip(norms, 1e-12, None)).astype(
            np.float32, copy=False
        )
        return normalized

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts, batch by batch.

        Args:
            texts: The texts to embed.

        Returns:
            One 384-d unit vector per text, in the order of ``texts``.

        Raises:
            EmbeddingModelNotFoundError: On first use, when the model files cannot be found
                (see :func:`resolve_model_dir`); the next call tries again.
        """
        if not texts:
            return []
        runtime = self._load()
        tokenizer = runtime.tokenizer
        if tokenizer is None:  # pragma: no cover - _load() sets it
            msg = "the embedding tokenizer is not loaded"
            raise RuntimeError(msg)
        # Tokenize the whole call once, then batch texts of similar token count: no batch pads
        # a short text to a long one. Input order is restored at the end.
        token_ids = [encoding.ids for encoding in tokenizer.encode_batch(texts)]
        order = np.argsort([len(ids) for ids in token_ids], kind="stable")
        sorted_vectors = np.concatenate(
            [
                self._embed_batch(runtime, [token_ids[i] for i in order[start:end]])
                for start, end in _spans(len(order), self.batch_size)
            ]
        )
        vectors = np.empty_like(sorted_vectors)
        vectors[order] = sorted_vectors
        embeddings: list[list[float]] = vectors.tolist()
        return embeddings

    def embed_query(self, text: str) -> list[float]:
        """Embed one text.

        Args:
            text: The text to embed.

        Returns:
            Its 384-d unit vector.
        """
        return self.embed_documents([text])[0]
